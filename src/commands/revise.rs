//! `rbplan revise`: rewrite named sections of a plan following a reviewer's note, or
//! (`--fix`) re-ask the sections with findings (`pipeline::revise`). Every other section
//! stays byte for byte; the change is shown as a diff.

use std::io::IsTerminal;
use std::path::Path;

use super::connect;
use crate::check::Checker;
use crate::cli::ReviseArgs;
use crate::config::Env;
use crate::error::{Error, Outcome, Result};
use crate::input::{self, Given, Text};
use crate::output::lock::Lock;
use crate::pipeline::revise::{self, PlanFile, Revised, Wanted};
use crate::pipeline::{self, ContextAsk, Job, PlanInput, RunbookRead, Start, Written};
use crate::present;
use crate::repair::Event;
use crate::template::{Inputs, Template};
use crate::term::{Ui, count, print_stdout};

pub async fn run(args: ReviseArgs, ui: Ui) -> Result<Outcome> {
    let env = Env::load()?;
    let template = Template::resolve(args.template.template.as_deref())?;
    let checker = Checker::new(&template);
    let file = PlanFile::read(&args.plan)?;
    let wanted = wanted(&args, &checker)?;
    let cask = context_ask(&args, &file, &env, ui)?;
    let rb = cask.read_runbook(Path::new(""), true)?;
    let inputs = inputs_for(&args, &file, rb.as_ref())?;
    let ctx = cask.load(Path::new(""), true)?;
    let _lock = match args.dry_run {
        true => None,
        false => Some(Lock::file(&args.plan, "rbplan revise")?),
    };
    let (settings, client) = connect(&args.conn, &env)?;
    let input = PlanInput::new(inputs).with_context(ctx, rb.as_ref(), cask.budget, &settings.shape.model)?;
    super::say_context(&input, cask.redact, ui);
    let plan = pipeline::Settings::new(
        settings.shape.clone(),
        args.repair.max_repairs,
        args.repair.fallback_model.clone(),
        None,
        None,
    );
    let job = Job {
        template: &template,
        checker: &checker,
        settings: &plan,
        input: &input,
        start: Start::Revise(&file),
        name: None,
        client: &client,
    };
    if args.dry_run {
        return dry_run(&job, &file, &wanted);
    }
    let on_event = |ev: Event| {
        if let Event::RoundStart {
            round,
            missing,
            rewrite,
            ..
        } = ev
        {
            let what: Vec<&str> = missing.iter().chain(rewrite).map(String::as_str).collect();
            ui.note(format!("round {round}: re-asking {}", what.join(", ")));
        }
    };
    let mut r = revise::revise(&job, &file, &wanted, args.force, &on_event).await?;
    let (target, new_text) = match std::mem::replace(&mut r.written, Written::Nowhere) {
        Written::Nowhere => return nothing_changed(&wanted, &r, &args.plan, &checker, ui),
        Written::Failed { error, .. } => return Err(error),
        Written::To { path, text } => (path, text),
    };
    let shown = args.diff || std::io::stdout().is_terminal();
    if shown {
        print_stdout(&present::unified_diff(&file.text, &new_text, &args.plan))?;
    }
    if r.refused() && !args.force {
        return Ok(refuse(&r, &args.plan, &target, &checker, shown));
    }
    Ok(say(&r, &args.plan, &checker, ui))
}

/// The revision made sections worse: the plan is left as it was; say where the attempt is.
/// `shown`: the diff was printed above.
fn refuse(r: &Revised, plan: &Path, attempt: &Path, checker: &Checker, shown: bool) -> Outcome {
    for &(i, before, after) in &r.worse {
        say!(
            "\"{}\" as revised has {} (it had {before})",
            checker.spec.heading(i),
            count(after as u64, "problem")
        );
    }
    let see = if shown {
        "the diff above".to_string()
    } else {
        format!("--diff shows it, `rbplan check {}` its findings", attempt.display())
    };
    say!(
        "{} is unchanged: the revision is in {} ({see}); revise again, edit it by hand, or rerun with --force to write it",
        plan.display(),
        attempt.display()
    );
    Outcome::Failing
}

/// The sections and note asked for, checked: unknown sections and empty notes are exit 2.
fn wanted(args: &ReviseArgs, checker: &Checker) -> Result<Wanted> {
    if args.fix {
        return Ok(Wanted::Fix);
    }
    let mut sections = Vec::new();
    for s in &args.sections {
        let i = section_index(s, checker)?;
        if !sections.contains(&i) {
            sections.push(i);
        }
    }
    sections.sort_unstable();
    let note = match (&args.note, &args.note_file) {
        (Some(n), _) => n.clone(),
        (None, Some(p)) if p.as_os_str() == "-" => {
            std::io::read_to_string(std::io::stdin()).map_err(|e| Error::io("reading the note from stdin", e))?
        }
        (None, Some(p)) => input::read_text(p, "the note")?,
        (None, None) => {
            return Err(Error::usage(
                "a note is required: --note TEXT or --note-file PATH (or --fix)",
            ));
        }
    };
    if note.trim().is_empty() {
        return Err(Error::usage("the note is empty: say what the reviewer wants changed"));
    }
    Ok(Wanted::Note { sections, note })
}

/// A section by id, number or title (the tolerant heading match); else the valid ones.
fn section_index(given: &str, checker: &Checker) -> Result<usize> {
    let spec = &checker.spec;
    let t = given.trim();
    let by_id = spec.sections.iter().position(|s| s.id.eq_ignore_ascii_case(t));
    let by_number = t
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=spec.sections.len()).contains(n))
        .map(|n| n - 1);
    let by_title = || {
        checker
            .matcher
            .match_heading(t)
            .filter(|m| m.extra == 0)
            .map(|m| m.section)
    };
    if let Some(i) = by_id.or(by_number).or_else(by_title) {
        return Ok(i);
    }
    let valid: Vec<String> = (0..spec.sections.len())
        .map(|i| format!("  {:<16} {}", spec.sections[i].id, spec.heading(i)))
        .collect();
    Err(Error::usage(format!(
        "no section \"{given}\" in this template; give an id, a number or a title:\n{}",
        valid.join("\n")
    )))
}

/// The context asked for; without `--context` and `--runbook`, the files the plan's front
/// matter records, when they are all still there.
fn context_ask(args: &ReviseArgs, file: &PlanFile, env: &Env, ui: Ui) -> Result<ContextAsk> {
    let mut ask = super::context_ask(&args.context, env)?;
    let recorded = file.provenance.as_ref().map(|p| &p.context).filter(|c| !c.is_empty());
    if let (true, None, Some(paths)) = (ask.paths.is_empty(), &ask.runbook, recorded) {
        let runbook = file.provenance.as_ref().and_then(|p| p.runbook.clone());
        let others: Vec<String> = paths.keys().filter(|k| Some(*k) != runbook.as_ref()).cloned().collect();
        if paths.keys().all(|p| p == "-" || Path::new(p).exists()) && !paths.contains_key("-") {
            ui.note(format!(
                "context: the files {} records ({})",
                args.plan.display(),
                paths.keys().cloned().collect::<Vec<_>>().join(", ")
            ));
            ask.paths = others;
            ask.runbook = runbook;
        }
    }
    Ok(ask)
}

/// The migration the plan is for: flags first, else what its front matter recorded, else
/// what the runbook gives.
fn inputs_for(args: &ReviseArgs, file: &PlanFile, rb: Option<&RunbookRead>) -> Result<Inputs> {
    let given: Given = args.input.given();
    let mut read = given.read()?;
    let recorded_summary = file.provenance.as_ref().is_some_and(|p| p.summary.is_some());
    if let (Some(rb), false) = (rb, recorded_summary) {
        read = read.or_runbook(&rb.path, &rb.derived)?;
    }
    let recorded = file
        .provenance
        .as_ref()
        .and_then(|p| p.summary.clone().map(|s| (s, p.stages.join("\n"))));
    match (recorded, read.summary.is_some()) {
        (Some((summary, stages)), false) if read.stages.is_none() => Ok(Inputs::new(summary, stages)),
        (Some((summary, _)), false) => input::required(input::Supplied {
            summary: Some(Text {
                text: summary,
                origin: "the plan's front matter".into(),
            }),
            ..read
        }),
        (_, true) => input::required(read),
        (None, false) => Err(Error::usage(format!(
            "{} records no migration (no rbplan front matter with a summary): give --summary or --summary-file, and --stages or --stages-file",
            args.plan.display()
        ))),
    }
}

/// `--dry-run`: the request bodies that would be sent, as JSON.
fn dry_run(job: &Job<'_>, file: &PlanFile, wanted: &Wanted) -> Result<Outcome> {
    let requests = revise::dry_run_requests(job, file, wanted)?;
    if requests.is_empty() {
        print_stdout("[]\n")?;
        return Ok(Outcome::Complete);
    }
    let bodies: Vec<serde_json::Value> = requests.iter().map(crate::client::request_body).collect();
    print_stdout(&(serde_json::to_string_pretty(&bodies).expect("json") + "\n"))?;
    Ok(Outcome::Complete)
}

/// Nothing came back to change: say so; the file is not touched.
fn nothing_changed(wanted: &Wanted, r: &Revised, path: &Path, checker: &Checker, ui: Ui) -> Result<Outcome> {
    match wanted {
        Wanted::Fix if r.requests == 0 => {
            ui.note(format!(
                "{}: nothing to fix, the plan passes its checks",
                path.display()
            ));
            Ok(Outcome::Complete)
        }
        _ if r.not_returned.is_empty() => {
            say!(
                "{} is unchanged: the model gave the sections back as they were",
                path.display()
            );
            Ok(Outcome::Failing)
        }
        _ => {
            let names: Vec<String> = r.not_returned.iter().map(|&i| checker.spec.heading(i)).collect();
            say!(
                "{} is unchanged: the model's {} held none of the sections asked for ({})",
                path.display(),
                if r.requests == 1 { "reply" } else { "replies" },
                names.join("; ")
            );
            Ok(Outcome::Failing)
        }
    }
}

/// Say what was revised and how the plan stands; the outcome its verdict gives.
fn say(r: &Revised, path: &Path, checker: &Checker, ui: Ui) -> Outcome {
    let ids: Vec<String> = r.changed.iter().map(|&i| checker.spec.sections[i].id.clone()).collect();
    let missing: Vec<String> = r.not_returned.iter().map(|&i| checker.spec.heading(i)).collect();
    let usage = (r.requests, r.usage.total_tokens);
    match present::say_revised(&ids, &missing, usage, &r.report, path, ui) {
        true => Outcome::Complete,
        false => Outcome::Failing,
    }
}
