//! `rbplan ask`: one plan. cli → config → template → client → check/repair → output.

use std::io::{IsTerminal, Write};
use std::path::Path;

use serde_json::json;

use super::connect;
use crate::check::Checker;
use crate::cli::AskArgs;
use crate::config::Env;
use crate::error::{Error, Outcome, Result};
use crate::input::parse_stages;
use crate::output::{self, Provenance};
use crate::repair::{self, Event, Generated, Strategy};
use crate::template::Template;
use crate::term::{Ui, print_stdout, thousands};
use crate::{input, logging};

pub async fn run(args: AskArgs, ui: Ui) -> Result<Outcome> {
    let env = Env::load()?;
    let template = Template::resolve(args.template.template.as_deref())?;
    let inputs = input::resolve(&args.input, &template)?;
    if let Some(out) = &args.out {
        check_out_path(out)?;
    }
    let (settings, client) = connect(&args.conn, &env)?;
    let stdout_tty = std::io::stdout().is_terminal();
    let stream = if args.no_stream {
        false
    } else {
        args.stream || (stdout_tty && !args.json)
    };
    // Where streamed text is shown: stdout when the plan goes there, else a terminal stderr.
    let show_on_stdout = stream && args.out.is_none() && !args.json;
    let show_on_stderr = stream && !show_on_stdout && std::io::stderr().is_terminal() && !ui.quiet;
    let on_delta = move |piece: &str| {
        if show_on_stdout {
            let mut o = std::io::stdout().lock();
            let _ = o.write_all(piece.as_bytes());
            let _ = o.flush();
        } else if show_on_stderr {
            let mut e = std::io::stderr().lock();
            let _ = e.write_all(logging::scrub(piece).as_bytes());
            let _ = e.flush();
        }
    };
    let streamed_any = std::sync::atomic::AtomicBool::new(false);
    let on_delta_tracked = |piece: &str| {
        streamed_any.store(true, std::sync::atomic::Ordering::Relaxed);
        on_delta(piece);
    };

    let checker = Checker::new(&template);
    let stages = parse_stages(&inputs.stages);
    let opts = repair::Options {
        model: settings.model.clone(),
        temperature: settings.temperature,
        max_tokens: settings.max_tokens,
        max_repairs: args.repair.max_repairs,
        stream,
    };
    let on_event = |ev: Event| {
        let line = match ev {
            Event::Draft {
                found,
                total,
                truncated,
            } => {
                if streamed_any.load(std::sync::atomic::Ordering::Relaxed) && (show_on_stdout || show_on_stderr) {
                    eprintln!();
                }
                if truncated {
                    format!("draft: cut off before the end; kept {found}/{total} complete sections")
                } else {
                    format!("draft: {found}/{total} sections")
                }
            }
            Event::RoundStart {
                round,
                strategy,
                missing,
                rewrite,
            } => {
                let mut parts = Vec::new();
                if !missing.is_empty() {
                    parts.push(format!("missing {}", missing.join(", ")));
                }
                if !rewrite.is_empty() {
                    parts.push(format!("to rewrite {}", rewrite.join(", ")));
                }
                format!(
                    "repair round {round} ({}): {}",
                    match strategy {
                        Strategy::Section => "one section per request",
                        _ => "one request",
                    },
                    parts.join("; ")
                )
            }
            Event::RoundEnd {
                round,
                recovered,
                rewritten,
            } => format!("repair round {round}: {recovered} section(s) recovered, {rewritten} rewritten"),
            Event::Warning(w) => format!("warning: {w}"),
        };
        ui.note(line);
    };
    let job = repair::Job {
        client: &client,
        template: &template,
        checker: &checker,
        inputs: &inputs,
        stages: &stages,
        opts: &opts,
    };
    let g = repair::generate(job, Some(&on_delta_tracked), &on_event).await?;

    let complete = g.report.complete();
    let model_reported = g.model.clone().unwrap_or_else(|| settings.model.clone());
    let prov = Provenance {
        template: template.origin.clone(),
        template_hash: template.hash.clone(),
        model: settings.model.clone(),
        input_hash: inputs.hash(),
        status: if complete { "complete" } else { "incomplete" }.into(),
        missing: g.report.missing_ids(),
        generated_by: format!("rbplan {}", env!("CARGO_PKG_VERSION")),
        name: None,
        stages: stages.clone(),
    };
    if let Some(out) = &args.out {
        let text = prov.to_front_matter() + &g.plan;
        output::write_atomic(out, text.as_bytes()).map_err(|e| Error::io(format!("writing {}", out.display()), e))?;
    }
    if args.json {
        let mut v = json_report(
            &g,
            &settings.model,
            &model_reported,
            &template,
            &inputs.hash(),
            args.out.as_deref(),
            args.repair.max_repairs,
        );
        v["plan"] = json!(g.plan);
        print_stdout(&(serde_json::to_string_pretty(&v).expect("json") + "\n"))?;
    } else if args.out.is_none() {
        let already_shown = show_on_stdout
            && streamed_any.load(std::sync::atomic::Ordering::Relaxed)
            && g.rounds.iter().all(|r| r.recovered.is_empty())
            && !g.first_truncated;
        if !already_shown {
            if show_on_stdout && streamed_any.load(std::sync::atomic::Ordering::Relaxed) {
                ui.note("── the assembled plan, with repaired sections in place ──");
            }
            print_stdout(&g.plan)?;
        }
    }
    summarize(&g, ui, args.out.as_deref(), &checker);
    Ok(if complete {
        Outcome::Complete
    } else {
        Outcome::Incomplete
    })
}

fn check_out_path(out: &Path) -> Result<()> {
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !parent.is_dir() {
        return Err(Error::usage(format!(
            "cannot write {}: folder {} does not exist",
            out.display(),
            parent.display()
        )));
    }
    if out.is_dir() {
        return Err(Error::usage(format!(
            "--out {} is a folder; give a file name",
            out.display()
        )));
    }
    Ok(())
}

fn summarize(g: &Generated, ui: Ui, out: Option<&Path>, checker: &Checker) {
    let rounds = g.rounds.len();
    let tokens = if g.usage_complete {
        format!("{} tokens", thousands(g.usage.total_tokens))
    } else {
        format!(
            "≥{} tokens (some replies had no usage)",
            thousands(g.usage.total_tokens)
        )
    };
    // Why the repair rounds ended early comes before the verdict it explains.
    if let Some(e) = &g.repair_error {
        ui.warn(format!("repair stopped on an API error: {e}"));
    }
    let dest = out.map(|p| format!(" → {}", p.display())).unwrap_or_default();
    let found = g.report.found_count();
    let total = g.report.sections.len();
    let head = if g.report.complete() {
        "plan complete"
    } else {
        "plan INCOMPLETE"
    };
    ui.note(format!(
        "{head}: {found}/{total} sections, {rounds} repair round{}, {} request{}, {tokens}{dest}",
        if rounds == 1 { "" } else { "s" },
        g.calls,
        if g.calls == 1 { "" } else { "s" }
    ));
    if !g.report.complete() {
        // Always said, even with --quiet: the plan on disk or stdout is not whole.
        let names: Vec<String> = g.report.missing().iter().map(|&i| checker.spec.heading(i)).collect();
        eprintln!("missing sections: {}", names.join("; "));
    }
    for f in g.report.findings.iter().filter(|f| !f.code.is_presence()) {
        ui.note(format!(
            "{}: {}{}",
            match f.severity {
                crate::spec::Severity::Error => "finding",
                crate::spec::Severity::Warning => "note",
            },
            f.message,
            // A duplicate's message already names its lines ("appears 2 times (lines 67, 71)").
            f.line
                .filter(|_| f.code != crate::check::Code::Duplicate)
                .map(|l| format!(" (line {l})"))
                .unwrap_or_default()
        ));
    }
}

/// The `--json` object (without the plan text, which the caller adds).
pub fn json_report(
    g: &Generated,
    model: &str,
    model_reported: &str,
    template: &Template,
    input_hash: &str,
    out: Option<&Path>,
    max_repairs: u32,
) -> serde_json::Value {
    let sections: Vec<serde_json::Value> = g
        .report
        .sections
        .iter()
        .map(|s| {
            let strategy = g.strategies.iter().find(|(id, _)| *id == s.id).map(|(_, st)| *st);
            json!({
                "id": s.id, "number": s.number, "title": s.title,
                "found": s.state == crate::check::SectionState::Found,
                "state": s.state, "line": s.line, "occurrences": s.occurrences,
                "strategy": strategy,
            })
        })
        .collect();
    json!({
        "status": if g.report.complete() { "complete" } else { "incomplete" },
        "missing": g.report.missing_ids(),
        "sections": sections,
        "findings": g.report.findings,
        "repairs": {
            "rounds": g.rounds.len(),
            "max_repairs": max_repairs,
            "detail": g.rounds,
        },
        "usage": {
            "prompt_tokens": g.usage.prompt_tokens,
            "completion_tokens": g.usage.completion_tokens,
            "total_tokens": g.usage.total_tokens,
            "complete": g.usage_complete,
        },
        "model": model,
        "model_reported": model_reported,
        "request_ids": g.request_ids,
        "requests": g.calls,
        "transport_retries": g.transport_retries,
        "first_answer": {
            "found": g.first_found.len(),
            "sections": g.first_found,
            "truncated": g.first_truncated,
        },
        "first_answer_truncated": g.first_truncated,
        "repair_error": g.repair_error,
        "template": {"origin": template.origin, "hash": template.hash},
        "input_hash": input_hash,
        "out": out.map(|p| p.display().to_string()),
    })
}
