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
use crate::output::living::{self, Decision};
use crate::output::lock::Lock;
use crate::output::{self, Made, PlanStatus, Provenance};
use crate::repair::{self, Event, Generated, Start, Stop, Strategy};
use crate::spec::Severity;
use crate::template::Template;
use crate::term::{Ui, count, print_stdout, thousands};

pub async fn run(mut args: AskArgs, ui: Ui) -> Result<Outcome> {
    let env = Env::load()?;
    let template = Template::resolve(args.template.template.as_deref())?;
    let inputs = input::resolve(&args.input.given(), &template)?;
    let checker = Checker::new(&template);
    let (_lock, decision) = prepare_out(&mut args, &checker, ui)?.unzip();
    let (settings, client) = connect(&args.conn, &env)?;
    let prices = crate::config::prices(&args.cost.price, &env)?;
    let client = budget(client, &args, &prices, &settings)?;
    if let Some(out) = current_plan(&args, decision.as_ref(), &template, &settings.model, &inputs, &checker) {
        return say_current(out, args.json, ui);
    }
    announce(decision.as_ref(), &args, &checker, ui)?;
    let view = View::new(&args, ui);
    let stages = input::parse_stages(&inputs.stages);
    let opts = options(&args, &settings, view.stream);
    let migration = Migration::new(Some(stages.clone()), Some(&inputs.summary));
    let job = repair::Job {
        template: &template,
        checker: &checker,
        inputs: &inputs,
        migration: &migration,
        opts: &opts,
        start: start_from(decision.as_ref(), &checker),
    };
    let (on_delta, on_event) = (|piece: &str| view.delta(piece), |ev: Event| view.event(ev));
    let mut live = repair::LiveSource {
        client: &client,
        on_delta: Some(&on_delta),
    };
    let mut g = repair::generate(&job, &mut live, &on_event).await?;
    if let Some(e) = decision.as_ref().and_then(Decision::earlier) {
        g.lay_over(&e.body, &e.edited, &checker, &migration);
    }
    let judgement = judge_step(&args, &client, &template, &inputs, &mut g).await;
    let meta = Meta {
        template: &template,
        checker: &checker,
        model: &settings.model,
        inputs: &inputs,
        stages: &stages,
    };
    let written_to = match (&args.out, &decision) {
        (Some(out), Some(d)) => Some(write_out(out, d, &g, &meta, judgement.as_ref())?),
        _ => None,
    };
    show(
        &args,
        &view,
        &g,
        &meta,
        judgement.as_ref(),
        &prices,
        written_to.as_deref(),
    )?;
    let cost = super::cost_words(&prices, &settings.model, &g.tally.usage);
    summarize(&g, ui, written_to.as_deref(), &checker, &cost);
    Ok(outcome(&g, &client))
}

/// `--judge-model`: the second model's scores, added to the report as findings.
async fn judge_step(
    args: &AskArgs,
    client: &crate::client::Client,
    template: &Template,
    inputs: &crate::template::Inputs,
    g: &mut Generated,
) -> Option<judge::Judgement> {
    let m = args.judge.judge_model.as_ref()?;
    judge::judge_into(client, template, m, inputs, &g.state.plan, &mut g.state.report).await
}

/// The exit: complete, failing, or stopped by the budget short of a plan that passes.
fn outcome(g: &Generated, client: &crate::client::Client) -> Outcome {
    let budget_reached = client.budget().is_some_and(|(_, _, reached)| reached);
    match PlanStatus::of(&g.state.report) {
        PlanStatus::Complete => Outcome::Complete,
        _ if budget_reached => Outcome::BudgetReached,
        _ => Outcome::Failing,
    }
}

/// The plan on stdout, or the `--json` object (nothing when it went to `--out`);
/// `written_to` is where it went: `--out`, or `NAME.new.md` beside a file left alone.
fn show(
    args: &AskArgs,
    view: &View,
    g: &Generated,
    m: &Meta,
    judgement: Option<&judge::Judgement>,
    prices: &crate::price::Prices,
    written_to: Option<&Path>,
) -> Result<()> {
    if args.json {
        let mut v = json_report(g, m.model, m.template, &m.inputs.hash(), args);
        v["plan"] = json!(g.state.plan);
        v["written_to"] = json!(written_to.map(|p| p.display().to_string()));
        v["judge"] = json!(judgement);
        v["cost_usd"] = json!(g.tally.usage.priced(prices, m.model));
        print_stdout(&(serde_json::to_string_pretty(&v).expect("json") + "\n"))
    } else if args.out.is_none() {
        view.print_plan(g)
    } else {
        Ok(())
    }
}

/// `--max-cost` over every model this plan may ask.
fn budget(
    client: crate::client::Client,
    args: &AskArgs,
    prices: &crate::price::Prices,
    settings: &crate::config::Settings,
) -> Result<crate::client::Client> {
    let mut models = vec![settings.model.as_str()];
    models.extend(args.repair.fallback_model.as_deref());
    models.extend(args.judge.judge_model.as_deref());
    super::budgeted(client, &args.cost, prices, &models, settings.max_tokens)
}

/// How each request is made, from the flags and settings.
fn options(args: &AskArgs, settings: &crate::config::Settings, stream: bool) -> repair::Options {
    repair::Options {
        model: settings.model.clone(),
        temperature: settings.temperature,
        max_tokens: settings.max_tokens,
        max_repairs: args.repair.max_repairs,
        fallback: args.repair.fallback_model.clone(),
        stream,
        parallel: args.parallel.parallel,
    }
}

/// The file at `--out`: locked and looked at (a person's edits, a file not rbplan's).
/// None without `--out`. The `NAME.new.md` an earlier run left beside a file it could not
/// merge into becomes `--out`: current, edited or not, it is treated as `--out` would be.
fn prepare_out(args: &mut AskArgs, checker: &Checker, ui: Ui) -> Result<Option<(Lock, Decision)>> {
    let Some(out) = args.out.clone() else { return Ok(None) };
    check_out_path(&out)?;
    let lock = Lock::file(&out, "rbplan ask")?;
    let working = living::decide_following(&out, checker, args.force);
    if let Some(why) = working.followed {
        ui.note(format!(
            "{} is left as it is: {why}; working on {}, which an earlier run wrote beside it",
            out.display(),
            working.path.display()
        ));
        args.out = Some(working.path);
    }
    Ok(Some((lock, working.decision)))
}

/// What a plan is made from, for its front matter.
struct Meta<'a> {
    template: &'a Template,
    checker: &'a Checker,
    model: &'a str,
    inputs: &'a crate::template::Inputs,
    stages: &'a [String],
}

/// Write the plan where `d` says (`--out`, or beside it), keeping a person's own front
/// matter keys and the hashes of the sections kept; the path written.
fn write_out(
    out: &Path,
    d: &Decision,
    g: &Generated,
    m: &Meta,
    judgement: Option<&judge::Judgement>,
) -> Result<std::path::PathBuf> {
    let earlier = d.earlier();
    let prov = Provenance::new(&Made {
        template: m.template,
        model: m.model,
        inputs: m.inputs,
        stages: m.stages,
        report: &g.state.report,
        written_by: &g.state.written_by,
        name: None,
        judge: judgement.map(|j| (j.model.as_str(), j.mean)),
        sections: living::hashes_after(&g.state.plan, m.checker, earlier),
    });
    let text = prov.to_front_matter_keeping(d.front()) + &g.state.plan;
    let path = d.target(out);
    output::write_atomic(path, text.as_bytes()).map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    Ok(path.to_path_buf())
}

/// `--out` already holds this very plan: same template, model and input, and it passes
/// (with a person's edits or not). Asking again would only pay for the same thing.
fn current_plan<'a>(
    args: &'a AskArgs,
    d: Option<&Decision>,
    template: &Template,
    model: &str,
    inputs: &crate::template::Inputs,
    checker: &Checker,
) -> Option<&'a Path> {
    // An edited plan is current too: its other sections were made from this same input.
    let e = match d {
        Some(Decision::Replace(e) | Decision::KeepEdits(e)) => e,
        _ => return None,
    };
    let migration = Migration::new(Some(input::parse_stages(&inputs.stages)), Some(&inputs.summary));
    let want = living::Wanted {
        template_hash: &template.hash,
        model,
        input_hash: &inputs.hash(),
        migration: &migration,
    };
    let current = want.redo(&e.provenance, &e.body, checker).is_none();
    (current && !args.force).then_some(args.out.as_deref()?)
}

/// The plan at `--out` is current: say so (and, with `--json`, as an object).
fn say_current(out: &Path, json: bool, ui: Ui) -> Result<Outcome> {
    ui.note(format!(
        "{} is current: made from this template, model and input, and it passes its checks (a person's edits included); nothing sent (--force makes a new one)",
        out.display()
    ));
    if json {
        print_stdout(&(json!({"status": "current", "out": out.display().to_string()}).to_string() + "\n"))?;
    }
    Ok(Outcome::Complete)
}

/// Say what will happen to the file at `--out`, and back it up under `--force`.
fn announce(d: Option<&Decision>, args: &AskArgs, checker: &Checker, ui: Ui) -> Result<()> {
    if let (Some(d), Some(out)) = (d, &args.out) {
        say_decision(d, out, checker, ui);
        d.make_backup(out)?;
    }
    Ok(())
}

/// Say what will happen to the file at `--out` before anything is sent.
fn say_decision(d: &Decision, out: &Path, checker: &Checker, ui: Ui) {
    match d {
        Decision::Fresh | Decision::Replace(_) => {}
        Decision::KeepEdits(e) => {
            let mut kept = e.edited_ids(checker);
            if e.other_edited {
                kept.push("text outside the sections".into());
            }
            ui.note(format!(
                "{} was edited since rbplan wrote it: keeping {} word for word, regenerating the rest",
                out.display(),
                kept.join(", ")
            ));
        }
        Decision::Beside { why, to } => ui.warn(format!(
            "{} is left as it is: {why}. The new plan goes to {}; compare them, or rerun with --force (keeps a .bak)",
            out.display(),
            to.display()
        )),
        Decision::Backup { to, .. } => ui.note(format!(
            "--force: {} is copied to {} and regenerated whole",
            out.display(),
            to.display()
        )),
    }
}

/// Where generation starts: fresh, or from the kept sections of an edited plan.
fn start_from(d: Option<&Decision>, checker: &Checker) -> Start {
    match d.and_then(Decision::earlier) {
        Some(e) => Start::From {
            plan: e.kept_only(checker),
            pinned: e.edited.clone(),
            regenerate: true,
        },
        None => Start::Fresh,
    }
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
        // --parallel has no single reply to show as it streams: its progress is per section.
        let stream = !args.no_stream
            && args.parallel.parallel.is_none()
            && (args.stream || (std::io::stdout().is_terminal() && !args.json));
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

fn how(strategy: Strategy) -> &'static str {
    match strategy {
        Strategy::Section => "one section per request",
        _ => "one request",
    }
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
            regenerate: true,
            strategy,
            missing,
            ..
        } => format!(
            "regenerating what nobody edited ({}): {}",
            how(strategy),
            missing.join(", ")
        ),
        Event::RoundStart {
            round,
            strategy,
            missing,
            rewrite,
            ..
        } => {
            let mut parts = Vec::new();
            if !missing.is_empty() {
                parts.push(format!("missing {}", missing.join(", ")));
            }
            if !rewrite.is_empty() {
                parts.push(format!("to rewrite {}", rewrite.join(", ")));
            }
            format!("repair round {round} ({}): {}", how(strategy), parts.join("; "))
        }
        Event::RoundEnd {
            regenerate: true,
            recovered,
            ..
        } => format!("regenerated {recovered} section(s)"),
        Event::RoundEnd {
            round,
            recovered,
            rewritten,
            ..
        } => format!("repair round {round}: {recovered} section(s) recovered, {rewritten} rewritten"),
        Event::OutlineAsked => "asking for the outline: the facts every section must share".into(),
        Event::Outline { words } => format!("outline: {words} words; now every section in its own request"),
        Event::SectionDone { id, done, total, .. } => format!("written {done}/{total}: {id}"),
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

fn summarize(g: &Generated, ui: Ui, out: Option<&Path>, checker: &Checker, cost: &str) {
    let (report, t) = (&g.state.report, &g.tally);
    let rounds = g.repair_rounds();
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
        "{head}: {}/{} sections, {rounds} repair round{}, {} request{}, {tokens}, {cost}{dest}",
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
            "the plan does not pass its checks: {}, left after {} (the plan is written as it is)",
            count(errors.count() as u64, "error finding"),
            count(rounds as u64, "repair round")
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
        "rate_limited": t.rate_limited,
        "first_answer": {
            "found": s.first_found.len(),
            "sections": s.first_found,
            "truncated": s.first_truncated,
        },
        "first_answer_truncated": s.first_truncated,
        "repair_error": g.stopped.as_ref().map(ToString::to_string),
        "template": {"origin": template.origin, "hash": template.hash},
        "input_hash": input_hash,
        "parallel": args.parallel.parallel,
        "outline": s.outline,
        "out": args.out.as_ref().map(|p| p.display().to_string()),
    })
}
