//! `rbplan ask`: one plan. cli → config → template → client → check/repair → output.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::json;

use super::connect;
use crate::check::{Checker, Code, Migration, SectionState};
use crate::cli::AskArgs;
use crate::config::Env;
use crate::error::{Error, Outcome, Result};
use crate::input;
use crate::judge;
use crate::output::{self, Made, PlanStatus, Provenance};
use crate::repair::{self, Event, Generated, Stop, Strategy};
use crate::spec::Severity;
use crate::template::Template;
use crate::term::{Ui, count, print_stdout, thousands};

pub async fn run(args: AskArgs, ui: Ui) -> Result<Outcome> {
    let env = Env::load()?;
    let template = Template::resolve(args.template.template.as_deref())?;
    let inputs = input::resolve(&args.input.given(), &template)?;
    if let Some(out) = &args.out {
        check_out_path(out)?;
    }
    let (settings, client) = connect(&args.conn, &env)?;
    let view = View::new(&args, ui);
    let checker = Checker::new(&template);
    let stages = input::parse_stages(&inputs.stages);
    let opts = repair::Options {
        model: settings.model.clone(),
        temperature: settings.temperature,
        max_tokens: settings.max_tokens,
        max_repairs: args.repair.max_repairs,
        fallback: args.repair.fallback_model.clone(),
        stream: view.stream,
    };
    let migration = Migration::new(Some(stages.clone()), Some(&inputs.summary));
    let job = repair::Job {
        template: &template,
        checker: &checker,
        inputs: &inputs,
        migration: &migration,
        opts: &opts,
    };
    let on_delta = |piece: &str| view.delta(piece);
    let on_event = |ev: Event| view.event(ev);
    let mut live = repair::LiveSource {
        client: &client,
        on_delta: Some(&on_delta),
    };
    let mut g = repair::generate(&job, &mut live, &on_event).await?;
    let judgement = match &args.judge.judge_model {
        Some(m) => judge::judge_into(&client, &template, m, &inputs, &g.state.plan, &mut g.state.report).await,
        None => None,
    };

    let status = PlanStatus::of(&g.state.report);
    if let Some(out) = &args.out {
        let prov = Provenance::new(&Made {
            template: &template,
            model: &settings.model,
            inputs: &inputs,
            stages: &stages,
            report: &g.state.report,
            written_by: &g.state.written_by,
            name: None,
            judge: judgement.as_ref().map(|j| (j.model.as_str(), j.mean)),
        });
        let text = prov.to_front_matter() + &g.state.plan;
        output::write_atomic(out, text.as_bytes()).map_err(|e| Error::io(format!("writing {}", out.display()), e))?;
    }
    if args.json {
        let mut v = json_report(&g, &settings.model, &template, &inputs.hash(), &args);
        v["plan"] = json!(g.state.plan);
        if let Some(j) = &judgement {
            v["judge"] = json!(j);
        }
        print_stdout(&(serde_json::to_string_pretty(&v).expect("json") + "\n"))?;
    } else if args.out.is_none() {
        view.print_plan(&g)?;
    }
    summarize(&g, ui, args.out.as_deref(), &checker);
    Ok(if status == PlanStatus::Complete {
        Outcome::Complete
    } else {
        Outcome::Failing
    })
}

/// Where the first answer is shown as it streams, and the status lines.
struct View {
    ui: Ui,
    stream: bool,
    /// Streamed text goes to stdout when the plan goes there, else to a terminal stderr.
    on_stdout: bool,
    on_stderr: bool,
    streamed_any: AtomicBool,
}

impl View {
    fn new(args: &AskArgs, ui: Ui) -> View {
        let stream = !args.no_stream && (args.stream || (std::io::stdout().is_terminal() && !args.json));
        let on_stdout = stream && args.out.is_none() && !args.json;
        let on_stderr = stream && !on_stdout && std::io::stderr().is_terminal() && !ui.quiet;
        View {
            ui,
            stream,
            on_stdout,
            on_stderr,
            streamed_any: AtomicBool::new(false),
        }
    }

    fn streamed(&self) -> bool {
        self.streamed_any.load(Ordering::Relaxed) && (self.on_stdout || self.on_stderr)
    }

    fn delta(&self, piece: &str) {
        self.streamed_any.store(true, Ordering::Relaxed);
        if self.on_stdout {
            let mut o = std::io::stdout().lock();
            let _ = o.write_all(piece.as_bytes());
            let _ = o.flush();
        } else if self.on_stderr {
            let mut e = std::io::stderr().lock();
            let _ = e.write_all(piece.as_bytes());
            let _ = e.flush();
        }
    }

    fn event(&self, ev: Event) {
        if matches!(ev, Event::Draft { .. }) && self.streamed() {
            eprintln!();
        }
        self.ui.note(event_line(ev));
    }

    /// The plan on stdout, unless the stream already showed it exactly as it stands.
    fn print_plan(&self, g: &Generated) -> Result<()> {
        let shown_whole = self.on_stdout && self.streamed() && unchanged_since_first_answer(g);
        if shown_whole {
            return Ok(());
        }
        if self.on_stdout && self.streamed() {
            self.ui
                .note("── the assembled plan, with repaired sections in place ──");
        }
        print_stdout(&g.state.plan)
    }
}

/// No repair round changed the first answer, and nothing was cut from it.
fn unchanged_since_first_answer(g: &Generated) -> bool {
    let s = &g.state;
    !s.first_truncated
        && s.rounds
            .iter()
            .all(|r| r.recovered.is_empty() && r.rewritten.is_empty())
}

/// A status line for a repair event.
fn event_line(ev: Event) -> String {
    match ev {
        Event::Draft {
            found,
            total,
            truncated: true,
        } => format!("draft: cut off before the end; kept {found}/{total} complete sections"),
        Event::Draft { found, total, .. } => format!("draft: {found}/{total} sections"),
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
            let how = match strategy {
                Strategy::Section => "one section per request",
                _ => "one request",
            };
            format!("repair round {round} ({how}): {}", parts.join("; "))
        }
        Event::RoundEnd {
            round,
            recovered,
            rewritten,
        } => format!("repair round {round}: {recovered} section(s) recovered, {rewritten} rewritten"),
        Event::Fallback { model, why } => format!("switching to the fallback model {model}: {why}"),
        Event::Warning(w) => format!("warning: {w}"),
    }
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
    let (report, t) = (&g.state.report, &g.tally);
    let rounds = g.state.rounds.len();
    let tokens = if t.usage_complete {
        format!("{} tokens", thousands(t.usage.total_tokens))
    } else {
        format!(
            "≥{} tokens (some replies had no usage)",
            thousands(t.usage.total_tokens)
        )
    };
    // Why the repair rounds ended early comes before the verdict it explains.
    if let Some(Stop::Failed(e)) = &g.stopped {
        ui.warn(format!("repair stopped on an API error: {e}"));
    }
    let dest = out.map(|p| format!(" → {}", p.display())).unwrap_or_default();
    let head = match PlanStatus::of(report) {
        PlanStatus::Complete => "plan complete",
        PlanStatus::Errors => "plan has ERRORS",
        PlanStatus::Incomplete => "plan INCOMPLETE",
    };
    ui.note(format!(
        "{head}: {}/{} sections, {rounds} repair round{}, {} request{}, {tokens}{dest}",
        report.found_count(),
        report.sections.len(),
        if rounds == 1 { "" } else { "s" },
        t.requests,
        if t.requests == 1 { "" } else { "s" }
    ));
    if !report.complete() {
        // Always said, even with --quiet: the plan on disk or stdout is not whole.
        let names: Vec<String> = report.missing().iter().map(|&i| checker.spec.heading(i)).collect();
        eprintln!("missing sections: {}", names.join("; "));
    }
    let errors = report
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error && !f.code.is_presence());
    if report.complete() && report.has_errors() {
        // Also said with --quiet: every section is there, but the plan does not pass.
        eprintln!(
            "the plan does not pass its checks: {} (repair left them; the plan is written as it is)",
            count(errors.count() as u64, "error finding")
        );
    }
    for f in report.findings.iter().filter(|f| !f.code.is_presence()) {
        let kind = match f.severity {
            Severity::Error => "finding",
            Severity::Warning => "note",
        };
        // A duplicate's message already names its lines ("appears 2 times (lines 67, 71)").
        let line = f.line.filter(|_| f.code != Code::Duplicate);
        let at = line.map(|l| format!(" (line {l})")).unwrap_or_default();
        ui.note(format!("{kind}: {}{at}", f.message));
    }
}

/// The `--json` object (without the plan text, which the caller adds).
fn json_report(g: &Generated, model: &str, template: &Template, input_hash: &str, args: &AskArgs) -> serde_json::Value {
    let (s, t) = (&g.state, &g.tally);
    let sections: Vec<serde_json::Value> = s
        .report
        .sections
        .iter()
        .map(|sec| {
            let strategy = s.strategies.iter().find(|(id, _)| *id == sec.id).map(|(_, st)| *st);
            let model = s.written_by.iter().find(|(id, _)| *id == sec.id).map(|(_, m)| m);
            json!({
                "id": sec.id, "number": sec.number, "title": sec.title,
                "found": sec.state == SectionState::Found,
                "state": sec.state, "line": sec.line, "occurrences": sec.occurrences,
                "strategy": strategy, "model": model,
            })
        })
        .collect();
    json!({
        "status": PlanStatus::of(&s.report),
        "missing": s.report.missing_ids(),
        "sections": sections,
        "findings": s.report.findings,
        "repairs": {
            "rounds": s.rounds.len(),
            "max_repairs": args.repair.max_repairs,
            "detail": s.rounds,
        },
        "usage": {
            "prompt_tokens": t.usage.prompt_tokens,
            "completion_tokens": t.usage.completion_tokens,
            "total_tokens": t.usage.total_tokens,
            "complete": t.usage_complete,
        },
        "model": model,
        "models": s.models(),
        "model_reported": t.model.as_deref().unwrap_or(model),
        "request_ids": t.request_ids,
        "requests": t.requests,
        "transport_retries": t.retries,
        "first_answer": {
            "found": s.first_found.len(),
            "sections": s.first_found,
            "truncated": s.first_truncated,
        },
        "first_answer_truncated": s.first_truncated,
        "repair_error": g.stopped.as_ref().map(ToString::to_string),
        "template": {"origin": template.origin, "hash": template.hash},
        "input_hash": input_hash,
        "out": args.out.as_ref().map(|p| p.display().to_string()),
    })
}
