//! How one plan's making is shown: the first answer as it streams, a status line per
//! repair event, the closing verdict lines, `ask --json`'s object, and `revise`'s lines.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::json;

use crate::check::{CheckReport, Checker, Code, SectionState};
use crate::output::PlanStatus;
use crate::repair::{Event, Generated, Stop, Strategy};
use crate::spec::Severity;
use crate::template::Template;
use crate::term::{Ui, count, print_stdout, thousands};

/// Where the first answer is shown as it streams, and the status lines.
pub struct View {
    ui: Ui,
    /// The first answer is streamed.
    pub stream: bool,
    /// Streamed text goes to stdout when the plan goes there, else to a terminal stderr.
    on_stdout: bool,
    on_stderr: bool,
    streamed_any: AtomicBool,
    started: std::time::Instant,
}

impl View {
    /// `stream`: the first answer is streamed; `to_stdout`: the plan goes to stdout.
    pub fn new(ui: Ui, stream: bool, to_stdout: bool) -> View {
        let on_stdout = stream && to_stdout;
        let on_stderr = stream && !on_stdout && std::io::IsTerminal::is_terminal(&std::io::stderr()) && !ui.quiet;
        View {
            ui,
            stream,
            on_stdout,
            on_stderr,
            streamed_any: AtomicBool::new(false),
            started: std::time::Instant::now(),
        }
    }

    fn streamed(&self) -> bool {
        self.streamed_any.load(Ordering::Relaxed) && (self.on_stdout || self.on_stderr)
    }

    pub fn delta(&self, piece: &str) {
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

    pub fn event(&self, ev: Event) {
        if matches!(ev, Event::Draft { .. }) && self.streamed() {
            say!();
        }
        // A slow model's progress: which round, which section, how long so far.
        let elapsed = matches!(ev, Event::Asking { .. } | Event::RoundStart { .. })
            .then(|| format!(" [{}s]", self.started.elapsed().as_secs()));
        self.ui.note(event_line(ev) + elapsed.as_deref().unwrap_or(""));
    }

    /// The plan on stdout, unless the stream already showed it exactly as it stands.
    pub fn print_plan(&self, g: &Generated) -> crate::error::Result<()> {
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
pub fn event_line(ev: Event) -> String {
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
        } => round_start(round, strategy, missing, rewrite),
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
        Event::Asking { round, id, n, of } => format!("repair round {round}: writing {id} ({n}/{of})"),
        Event::OutlineAsked => "asking for the outline: the facts every section must share".into(),
        Event::Outline { words } => format!("outline: {words} words; now every section in its own request"),
        Event::SectionDone {
            id,
            done,
            total,
            answered,
        } => format!("{} {done}/{total}: {id}", if answered { "written" } else { "failed" }),
        Event::Fallback { model, why } => format!("switching to the fallback model {model}: {why}"),
        Event::Warning(w) => format!("warning: {w}"),
    }
}

fn round_start(round: u32, strategy: Strategy, missing: &[String], rewrite: &[String]) -> String {
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!("missing {}", missing.join(", ")));
    }
    if !rewrite.is_empty() {
        parts.push(format!("to rewrite {}", rewrite.join(", ")));
    }
    format!("repair round {round} ({}): {}", how(strategy), parts.join("; "))
}

/// The verdict's first words.
fn head(status: PlanStatus) -> &'static str {
    match status {
        PlanStatus::Complete => "plan complete",
        PlanStatus::Errors => "plan has ERRORS",
        PlanStatus::Incomplete => "plan INCOMPLETE",
    }
}

/// The closing lines of `ask`: the verdict with its counts, what is missing or failing,
/// and each finding.
pub fn summarize(g: &Generated, ui: Ui, out: Option<&Path>, checker: &Checker, cost: &str) {
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
    match &g.stopped {
        Some(Stop::Failed(e)) => ui.warn(format!("repair stopped on an API error: {e}")),
        Some(Stop::Halted(why)) => ui.warn(format!("stopped: {why}; the plan is written as it stands")),
        _ => {}
    }
    let dest = out.map(|p| format!(" → {}", p.display())).unwrap_or_default();
    ui.note(format!(
        "{}: {}/{} sections, {rounds} repair round{}, {} request{}, {tokens}, {cost}{dest}",
        head(PlanStatus::of(report)),
        report.found_count(),
        report.sections.len(),
        if rounds == 1 { "" } else { "s" },
        t.requests,
        if t.requests == 1 { "" } else { "s" }
    ));
    say_failing(report, rounds, checker);
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

/// Also said with --quiet: the plan on disk or stdout is not whole, or does not pass.
fn say_failing(report: &CheckReport, rounds: usize, checker: &Checker) {
    if !report.complete() {
        let names: Vec<String> = report.missing().iter().map(|&i| checker.spec.heading(i)).collect();
        say!("missing sections: {}", names.join("; "));
    }
    let errors = report
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error && !f.code.is_presence());
    if report.complete() && report.has_errors() {
        say!(
            "the plan does not pass its checks: {}, left after {} (the plan is written as it is)",
            count(errors.count() as u64, "error finding"),
            count(rounds as u64, "repair round")
        );
    }
}

/// What `ask` was asked for, as its `--json` object reports it.
pub struct Asked<'a> {
    pub model: &'a str,
    pub template: &'a Template,
    pub input_hash: &'a str,
    pub max_repairs: u32,
    pub parallel: Option<usize>,
    pub out: Option<&'a Path>,
}

/// `ask --json`'s object (without the plan text, which the caller adds).
pub fn json_report(g: &Generated, a: &Asked) -> serde_json::Value {
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
            "max_repairs": a.max_repairs,
            "detail": s.rounds,
        },
        "usage": {
            "prompt_tokens": t.usage.prompt_tokens,
            "completion_tokens": t.usage.completion_tokens,
            "total_tokens": t.usage.total_tokens,
            "complete": t.usage_complete,
        },
        "model": a.model,
        "models": s.models(),
        "model_reported": t.model.as_deref().unwrap_or(a.model),
        "request_ids": t.request_ids,
        "requests": t.requests,
        "requests_by_model": t.by_model.iter().map(|(m, n)| (m.clone(), json!(n))).collect::<serde_json::Map<_, _>>(),
        "transport_retries": t.retries,
        "rate_limited": t.rate_limited,
        "first_answer": {
            "found": s.first_found.len(),
            "sections": s.first_found,
            "truncated": s.first_truncated,
        },
        "first_answer_truncated": s.first_truncated,
        "repair_error": g.stopped.as_ref().map(ToString::to_string),
        "template": {"origin": a.template.origin, "hash": a.template.hash},
        "input_hash": a.input_hash,
        "parallel": a.parallel,
        "outline": s.outline,
        "out": a.out.map(|p| p.display().to_string()),
    })
}

/// `revise`: what was revised and how the plan stands; true when it passes.
pub fn say_revised(
    changed: &[String],
    not_returned: &[String],
    (requests, tokens): (u32, u64),
    report: &CheckReport,
    path: &Path,
    ui: Ui,
) -> bool {
    ui.note(format!(
        "revised {} ({}, {} tokens) → {}",
        changed.join(", "),
        count(u64::from(requests), "request"),
        thousands(tokens),
        path.display()
    ));
    if !not_returned.is_empty() {
        ui.warn(format!(
            "the reply did not hold {}: left as it was",
            not_returned.join("; ")
        ));
    }
    let errors: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .collect();
    let status = PlanStatus::of(report);
    match status {
        PlanStatus::Complete => ui.note(format!(
            "{}: {}/{} sections",
            head(status),
            report.found_count(),
            report.sections.len()
        )),
        _ => say!(
            "the plan does not pass its checks: {} (run `rbplan check {}` for every finding)",
            count(errors.len() as u64, "error finding"),
            path.display()
        ),
    }
    for f in errors {
        ui.note(format!("finding: {}", f.message));
    }
    status == PlanStatus::Complete && not_returned.is_empty()
}

/// A unified diff of a file, before and after.
pub fn unified_diff(before: &str, after: &str, path: &Path) -> String {
    let name = path.display().to_string();
    similar::TextDiff::from_lines(before, after)
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{name}"), &format!("b/{name}"))
        .to_string()
}
