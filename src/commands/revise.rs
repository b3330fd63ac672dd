//! `rbplan revise`: rewrite named sections of a plan following a reviewer's note, or
//! (`--fix`) re-ask the sections with findings. Every other section stays byte for byte;
//! the plan is re-checked, its front matter updated, and the change shown as a diff.

use std::io::IsTerminal;
use std::path::Path;

use super::connect;
use crate::check::{CheckReport, Checker, Migration};
use crate::cli::ReviseArgs;
use crate::client::{ChatRequest, Client, Message, Usage};
use crate::config::{Env, Settings};
use crate::error::{Error, Outcome, Result};
use crate::input::{self, Given};
use crate::markdown;
use crate::output::living::{self, OTHER};
use crate::output::lock::Lock;
use crate::output::{self, Made, PlanStatus, Provenance};
use crate::repair::{self, Event, Start};
use crate::spec::Severity;
use crate::template::{Inputs, Template};
use crate::term::{Ui, count, print_stdout, thousands};

/// The plan file as read: its front matter, provenance and body.
struct PlanFile {
    text: String,
    front: Option<String>,
    provenance: Option<Provenance>,
    body: String,
}

/// What was asked of the model.
enum Wanted {
    /// These sections, following this note.
    Note { sections: Vec<usize>, note: String },
    /// Every section with findings, through the repair rounds.
    Fix,
}

/// A revision as it came back: the new body, its check, what changed, what it cost.
struct Revised {
    body: String,
    report: CheckReport,
    /// Sections whose text is new.
    changed: Vec<usize>,
    /// Sections asked for that did not come back usable.
    not_returned: Vec<usize>,
    /// Revised sections with more problems than before (their problem counts, before
    /// and after).
    worse: Vec<(usize, usize, usize)>,
    requests: u32,
    usage: Usage,
}

pub async fn run(args: ReviseArgs, ui: Ui) -> Result<Outcome> {
    let env = Env::load()?;
    let template = Template::resolve(args.template.template.as_deref())?;
    let checker = Checker::new(&template);
    let file = read_plan(&args.plan)?;
    let wanted = wanted(&args, &checker)?;
    let inputs = inputs_for(&args, file.provenance.as_ref(), &template)?;
    let stages = input::parse_stages(&inputs.stages);
    let migration = Migration::new(Some(stages.clone()), Some(&inputs.summary));
    if args.dry_run {
        let (settings, _) = connect(&args.conn, &env)?;
        return dry_run(&wanted, &file, &template, &inputs, &checker, &migration, &settings);
    }
    let _lock = Lock::file(&args.plan, "rbplan revise")?;
    let (settings, client) = connect(&args.conn, &env)?;
    let revised = match &wanted {
        Wanted::Note { sections, note } => {
            let req = note_request(&template, &inputs, &file.body, sections, note, &settings)?;
            revise_by_note(&client, &req, &file.body, sections, &checker, &migration).await?
        }
        Wanted::Fix => {
            fix(
                &args, &client, &settings, &template, &checker, &inputs, &migration, &file.body, ui,
            )
            .await?
        }
    };
    if revised.changed.is_empty() {
        return nothing_changed(&wanted, &revised, &args.plan, &checker, ui);
    }
    let made = Made {
        template: &template,
        model: &settings.model,
        inputs: &inputs,
        stages: &stages,
        report: &revised.report,
        written_by: &[],
        name: None,
        judge: None,
        sections: hashes(&file, &revised, &checker, &wanted),
    };
    let prov = updated(file.provenance.as_ref(), Provenance::new(&made), &revised.report);
    let new_text = prov.to_front_matter_keeping(file.front.as_deref()) + &revised.body;
    // A revision that makes a section fail more checks does not replace it unasked.
    let refused = !revised.worse.is_empty() && !args.force;
    let target = if refused {
        living::beside(&args.plan)
    } else {
        args.plan.clone()
    };
    output::write_atomic(&target, new_text.as_bytes())
        .map_err(|e| Error::io(format!("writing {}", target.display()), e))?;
    if args.diff || std::io::stdout().is_terminal() {
        print_stdout(&unified_diff(&file.text, &new_text, &args.plan))?;
    }
    if refused {
        return Ok(refuse(&revised, &args.plan, &target, &checker));
    }
    Ok(say(&revised, &args.plan, &checker, ui))
}

/// The revision made sections worse: the plan is left as it was; say where the attempt is.
fn refuse(r: &Revised, plan: &Path, attempt: &Path, checker: &Checker) -> Outcome {
    for &(i, before, after) in &r.worse {
        eprintln!(
            "\"{}\" as revised has {} (it had {before})",
            checker.spec.heading(i),
            count(after as u64, "problem")
        );
    }
    eprintln!(
        "{} is unchanged: the revision is in {} (the diff above); revise again, edit it by hand, or rerun with --force to write it",
        plan.display(),
        attempt.display()
    );
    Outcome::Failing
}

/// The plan at `path`: exit 2 if it does not exist or is not UTF-8 text.
fn read_plan(path: &Path) -> Result<PlanFile> {
    if !path.is_file() {
        return Err(Error::usage(format!("{}: no such plan file", path.display())));
    }
    let text = input::read_text(path, "the plan")?;
    let doc = markdown::parse(&text);
    let front = doc.front_matter.map(str::to_string);
    let provenance = doc.front_matter.and_then(Provenance::from_front_matter);
    let body = text[doc.body_start..].trim_start_matches(['\r', '\n']).to_string();
    Ok(PlanFile {
        text,
        front,
        provenance,
        body,
    })
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

/// The migration the plan is for: flags first, else what its front matter recorded.
fn inputs_for(args: &ReviseArgs, prov: Option<&Provenance>, template: &Template) -> Result<Inputs> {
    let g = args.input.given();
    let recorded = prov.and_then(|p| p.summary.clone().map(|s| (s, p.stages.join("\n"))));
    let given = g.example || g.summary.is_some() || g.summary_file.is_some();
    let stages_given = g.stages.is_some() || g.stages_file.is_some();
    match recorded {
        Some((summary, stages)) if !given && !stages_given => Ok(Inputs { summary, stages }),
        Some((summary, _)) if !given => input::resolve(
            &Given {
                summary: Some(summary),
                ..g
            },
            template,
        ),
        _ if given => input::resolve(&g, template),
        _ => Err(Error::usage(format!(
            "{} records no migration (no rbplan front matter with a summary): give --summary or --summary-file, and --stages or --stages-file",
            args.plan.display()
        ))),
    }
}

/// The one request of a note revision: the plan as the model's own draft, then the note.
fn note_request(
    template: &Template,
    inputs: &Inputs,
    body: &str,
    sections: &[usize],
    note: &str,
    settings: &Settings,
) -> Result<ChatRequest> {
    let mut messages = template.messages(inputs)?;
    messages.push(Message::assistant(body.to_string()));
    messages.push(Message::user(template.revise_prompt(inputs, sections, note)?));
    Ok(ChatRequest {
        model: settings.model.clone(),
        messages,
        temperature: settings.temperature,
        max_tokens: settings.max_tokens,
        stream: false,
    })
}

async fn revise_by_note(
    client: &Client,
    req: &ChatRequest,
    body: &str,
    sections: &[usize],
    checker: &Checker,
    m: &Migration,
) -> Result<Revised> {
    let reply = client.chat(req, None).await?;
    let edits = repair::sections_from_reply(
        &markdown::unwrap_fence(&reply.text),
        checker,
        sections,
        reply.truncated(),
    );
    let returned: Vec<usize> = edits.iter().map(|(i, _)| *i).collect();
    let not_returned = sections.iter().copied().filter(|i| !returned.contains(i)).collect();
    let new_body = if edits.is_empty() {
        body.to_string()
    } else {
        repair::splice(body, checker, &edits)
    };
    // A section given back word for word is not revised.
    let changed: Vec<usize> = changed_sections(body, &new_body, checker)
        .into_iter()
        .filter(|i| returned.contains(i))
        .collect();
    let before = checker.check(body, m).1;
    let report = checker.check(&new_body, m).1;
    let worse = worse_sections(&before, &report, &changed, checker);
    Ok(Revised {
        body: new_body,
        report,
        changed,
        not_returned,
        worse,
        requests: 1,
        usage: reply.usage.unwrap_or_default(),
    })
}

/// `--fix`: the repair rounds of `ask`, starting from the plan as it is.
#[allow(clippy::too_many_arguments)]
async fn fix(
    args: &ReviseArgs,
    client: &Client,
    settings: &Settings,
    template: &Template,
    checker: &Checker,
    inputs: &Inputs,
    m: &Migration,
    body: &str,
    ui: Ui,
) -> Result<Revised> {
    let opts = repair::Options {
        model: settings.model.clone(),
        fallback: args.repair.fallback_model.clone(),
        temperature: settings.temperature,
        max_tokens: settings.max_tokens,
        max_repairs: args.repair.max_repairs,
        stream: false,
        parallel: None,
    };
    let job = repair::Job {
        template,
        checker,
        inputs,
        migration: m,
        opts: &opts,
        start: Start::From {
            plan: body.to_string(),
            pinned: Vec::new(),
            regenerate: false,
        },
    };
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
    let mut live = repair::LiveSource { client, on_delta: None };
    let g = repair::generate(&job, &mut live, &on_event).await?;
    let changed = changed_sections(body, &g.state.plan, checker);
    Ok(Revised {
        body: g.state.plan,
        report: g.state.report,
        changed,
        not_returned: Vec::new(),
        worse: Vec::new(),
        requests: g.tally.requests,
        usage: g.tally.usage,
    })
}

/// Changed sections with more problems after than before: (section, before, after).
fn worse_sections(
    before: &CheckReport,
    after: &CheckReport,
    changed: &[usize],
    checker: &Checker,
) -> Vec<(usize, usize, usize)> {
    let count = |r: &CheckReport, i: usize| {
        let present = r.sections[i].state == crate::check::SectionState::Found;
        r.problem_count(&checker.spec, i) + usize::from(!present)
    };
    changed
        .iter()
        .map(|&i| (i, count(before, i), count(after, i)))
        .filter(|(_, b, a)| a > b)
        .collect()
}

/// The sections whose text differs between two versions of a plan.
fn changed_sections(before: &str, after: &str, checker: &Checker) -> Vec<usize> {
    let (a, b) = (
        living::section_hashes(before, checker),
        living::section_hashes(after, checker),
    );
    (0..checker.spec.sections.len())
        .filter(|&i| {
            let id = &checker.spec.sections[i].id;
            a.get(id) != b.get(id)
        })
        .collect()
}

/// The hashes to record. A section revised by a reviewer's note keeps the hash rbplan
/// recorded before (or none): like a person's edit, a later regeneration keeps it. A
/// section `--fix` rewrote is rbplan's own text again: its new hash. A plan that had none
/// gets the hash of its text outside the sections, so each of its sections reads as a
/// person's and is kept.
fn hashes(
    file: &PlanFile,
    r: &Revised,
    checker: &Checker,
    wanted: &Wanted,
) -> std::collections::BTreeMap<String, String> {
    let now = living::section_hashes(&r.body, checker);
    let mut h = file.provenance.as_ref().map(|p| p.sections.clone()).unwrap_or_default();
    if matches!(wanted, Wanted::Fix) {
        for &i in &r.changed {
            let id = &checker.spec.sections[i].id;
            match now.get(id) {
                Some(v) => h.insert(id.clone(), v.clone()),
                None => h.remove(id),
            };
        }
    }
    if h.is_empty()
        && let Some(other) = now.get(OTHER)
    {
        h.insert(OTHER.to_string(), other.clone());
    }
    h
}

/// The provenance to write: the plan's own, with its status and hashes brought up to
/// date; a plan without one gets a new one.
fn updated(old: Option<&Provenance>, new: Provenance, report: &CheckReport) -> Provenance {
    let Some(old) = old.filter(|p| !p.template_hash.is_empty()) else {
        return new;
    };
    let mut p = old.clone();
    p.status = PlanStatus::of(report);
    p.missing = report.missing_ids();
    p.sections = new.sections;
    p.summary = p.summary.or(new.summary);
    if p.stages.is_empty() {
        p.stages = new.stages;
    }
    p.generated_by = output::generated_by();
    p
}

fn dry_run(
    wanted: &Wanted,
    file: &PlanFile,
    template: &Template,
    inputs: &Inputs,
    checker: &Checker,
    m: &Migration,
    settings: &Settings,
) -> Result<Outcome> {
    let requests = match wanted {
        Wanted::Note { sections, note } => vec![note_request(template, inputs, &file.body, sections, note, settings)?],
        Wanted::Fix => {
            let state = repair::State::resume(&file.body, &[], checker, m, &settings.model);
            let Some(ask) = state.next(checker) else {
                print_stdout("[]\n")?;
                return Ok(Outcome::Complete);
            };
            let base = template.messages(inputs)?;
            state
                .requests(&ask, template, inputs, &base)?
                .into_iter()
                .map(|(_, messages)| ChatRequest {
                    model: settings.model.clone(),
                    messages,
                    temperature: settings.temperature,
                    max_tokens: settings.max_tokens,
                    stream: false,
                })
                .collect()
        }
    };
    let bodies: Vec<serde_json::Value> = requests
        .iter()
        .map(|r| crate::client::request_body(r, settings.client.max_tokens_field))
        .collect();
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
            eprintln!(
                "{} is unchanged: the model gave the sections back as they were",
                path.display()
            );
            Ok(Outcome::Failing)
        }
        _ => {
            let names: Vec<String> = r.not_returned.iter().map(|&i| checker.spec.heading(i)).collect();
            eprintln!(
                "{} is unchanged: the model's {} held none of the sections asked for ({})",
                path.display(),
                if r.requests == 1 { "reply" } else { "replies" },
                names.join("; ")
            );
            Ok(Outcome::Failing)
        }
    }
}

/// A unified diff of the file, before and after.
fn unified_diff(before: &str, after: &str, path: &Path) -> String {
    let name = path.display().to_string();
    similar::TextDiff::from_lines(before, after)
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{name}"), &format!("b/{name}"))
        .to_string()
}

/// Say what was revised and how the plan stands; the outcome its verdict gives.
fn say(r: &Revised, path: &Path, checker: &Checker, ui: Ui) -> Outcome {
    let ids: Vec<&str> = r
        .changed
        .iter()
        .map(|&i| checker.spec.sections[i].id.as_str())
        .collect();
    ui.note(format!(
        "revised {} ({}, {} tokens) → {}",
        ids.join(", "),
        count(u64::from(r.requests), "request"),
        thousands(r.usage.total_tokens),
        path.display()
    ));
    if !r.not_returned.is_empty() {
        let names: Vec<String> = r.not_returned.iter().map(|&i| checker.spec.heading(i)).collect();
        ui.warn(format!("the reply did not hold {}: left as it was", names.join("; ")));
    }
    let errors: Vec<_> = r
        .report
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .collect();
    let status = PlanStatus::of(&r.report);
    match status {
        PlanStatus::Complete => ui.note(format!(
            "plan complete: {}/{} sections",
            r.report.found_count(),
            r.report.sections.len()
        )),
        _ => eprintln!(
            "the plan does not pass its checks: {} (run `rbplan check {}` for every finding)",
            count(errors.len() as u64, "error finding"),
            path.display()
        ),
    }
    for f in errors {
        ui.note(format!("finding: {}", f.message));
    }
    if status == PlanStatus::Complete && r.not_returned.is_empty() {
        Outcome::Complete
    } else {
        Outcome::Failing
    }
}
