//! Revising a plan in place (`rbplan revise`): named sections rewritten following a
//! reviewer's note in one request, or (`--fix`) the sections with findings re-asked
//! through the repair rounds, as a `Job`. Every other section stays byte for byte.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{Job, PlanInput, Written};
use crate::check::{CheckReport, Checker, SectionState};
use crate::client::{ChatRequest, Client, Message, Usage};
use crate::error::{Error, Result};
use crate::markdown;
use crate::output::living::{self, OTHER};
use crate::output::{self, PlanStatus, Provenance};
use crate::repair::{self, Event, LiveSource};

/// The plan file as read: its front matter, provenance and body.
pub struct PlanFile {
    pub path: PathBuf,
    pub text: String,
    pub front: Option<String>,
    pub provenance: Option<Provenance>,
    pub body: String,
}

impl PlanFile {
    /// The plan at `path`: exit 2 if it does not exist or is not UTF-8 text.
    pub fn read(path: &Path) -> Result<PlanFile> {
        if !path.is_file() {
            return Err(Error::usage(format!("{}: no such plan file", path.display())));
        }
        let text = crate::input::read_text(path, "the plan")?;
        let doc = markdown::parse(&text);
        let front = doc.front_matter.map(str::to_string);
        let provenance = doc.front_matter.and_then(Provenance::from_front_matter);
        let body = text[doc.body_start..].trim_start_matches(['\r', '\n']).to_string();
        Ok(PlanFile {
            path: path.to_path_buf(),
            text,
            front,
            provenance,
            body,
        })
    }
}

/// What is asked of the model.
pub enum Wanted {
    /// These sections, following this note.
    Note { sections: Vec<usize>, note: String },
    /// Every section with findings, through the repair rounds.
    Fix,
}

/// A revision as it came back: the new body, its check, what changed, what it cost.
pub struct Revised {
    pub body: String,
    pub report: CheckReport,
    /// Sections whose text is new.
    pub changed: Vec<usize>,
    /// Sections asked for that did not come back usable.
    pub not_returned: Vec<usize>,
    /// Revised sections with more problems than before (their problem counts, before
    /// and after).
    pub worse: Vec<(usize, usize, usize)>,
    pub requests: u32,
    pub usage: Usage,
    /// What became of the file.
    pub written: Written,
}

impl Revised {
    /// A revision that makes a section fail more checks does not replace it unasked.
    pub fn refused(&self) -> bool {
        !self.worse.is_empty()
    }
}

/// Revise the plan of `job` (a `Start::Revise`) as `wanted` says. With `force`, a revision
/// that makes sections worse is written all the same; else it goes to NAME.new.md.
pub async fn revise(
    job: &Job<'_>,
    file: &PlanFile,
    wanted: &Wanted,
    force: bool,
    on_event: &(dyn Fn(Event) + Send + Sync),
) -> Result<Revised> {
    match wanted {
        Wanted::Note { sections, note } => {
            let req = note_request(job, &file.body, sections, note)?;
            let mut r = by_note(job.client, &req, &file.body, sections, job.checker, job.input).await?;
            r.written = write_note(job, file, &r, wanted, force);
            Ok(r)
        }
        Wanted::Fix => fix(job, file, on_event).await,
    }
}

/// `--fix`: the repair rounds of `ask`, starting from the plan as it is.
async fn fix(job: &Job<'_>, file: &PlanFile, on_event: &(dyn Fn(Event) + Send + Sync)) -> Result<Revised> {
    let mut live = LiveSource::new(job.client, None).until(job.settings.deadline);
    let p = job.make(&mut live, on_event).await?;
    let changed = changed_sections(&file.body, &p.g.state.plan, job.checker);
    Ok(Revised {
        body: p.g.state.plan,
        report: p.g.state.report,
        changed,
        not_returned: Vec::new(),
        worse: Vec::new(),
        requests: p.g.tally.requests,
        usage: p.g.tally.usage,
        written: p.written,
    })
}

/// Write a note's revision: in place, or beside the plan when it is refused.
fn write_note(job: &Job<'_>, file: &PlanFile, r: &Revised, wanted: &Wanted, force: bool) -> Written {
    if r.changed.is_empty() {
        return Written::Nowhere;
    }
    let prov = provenance(job, file, &r.body, &r.report, wanted.revision());
    let target = if r.refused() && !force {
        living::beside(&file.path)
    } else {
        file.path.clone()
    };
    super::write_plan(&target, &prov, file.front.as_deref(), &r.body, true)
}

impl Wanted {
    fn revision(&self) -> Revision {
        match self {
            Wanted::Note { .. } => Revision::Note,
            Wanted::Fix => Revision::Fix,
        }
    }
}

/// How a revision's sections are recorded.
#[derive(Clone, Copy)]
pub(super) enum Revision {
    /// A reviewer's note: the revised sections read as a person's, kept on regeneration.
    Note,
    /// `--fix`: rbplan's own text again.
    Fix,
}

/// The provenance to write for a revision: the plan's own, with its status and hashes
/// brought up to date; a plan without one gets a new one.
pub(super) fn provenance(
    job: &Job<'_>,
    file: &PlanFile,
    body: &str,
    report: &CheckReport,
    how: Revision,
) -> Provenance {
    let changed = changed_sections(&file.body, body, job.checker);
    let sections = hashes(file, body, &changed, job.checker, how);
    let new = job.made(report, &[], None, sections);
    updated(file.provenance.as_ref(), new, report)
}

/// The one request of a note revision: the plan as the model's own draft, then the note.
pub fn note_request(job: &Job<'_>, body: &str, sections: &[usize], note: &str) -> Result<ChatRequest> {
    let inputs = &job.input.inputs;
    let mut messages = job.template.messages(inputs)?;
    messages.push(Message::assistant(body.to_string()));
    messages.push(Message::user(job.template.revise_prompt(inputs, sections, note)?));
    Ok(ChatRequest::new(job.settings.repair.shape.clone(), messages))
}

/// The requests a revision would send, for `--dry-run`: the note's one, or `--fix`'s first
/// round (none when the plan passes).
pub fn dry_run_requests(job: &Job<'_>, file: &PlanFile, wanted: &Wanted) -> Result<Vec<ChatRequest>> {
    if let Wanted::Note { sections, note } = wanted {
        return Ok(vec![note_request(job, &file.body, sections, note)?]);
    }
    let (shape, input) = (&job.settings.repair.shape, job.input);
    let state = repair::State::resume(&file.body, &[], job.checker, &input.migration, &shape.model);
    let Some(ask) = state.next(job.checker) else {
        return Ok(Vec::new());
    };
    let base = job.template.messages(&input.inputs)?;
    Ok(state
        .requests(&ask, job.template, &input.inputs, &base)?
        .into_iter()
        .map(|(_, messages)| ChatRequest::new(shape.clone(), messages))
        .collect())
}

async fn by_note(
    client: &Client,
    req: &ChatRequest,
    body: &str,
    sections: &[usize],
    checker: &Checker,
    input: &PlanInput,
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
    let before = checker.check(body, &input.migration).1;
    let report = checker.check(&new_body, &input.migration).1;
    let worse = worse_sections(&before, &report, &changed, checker);
    Ok(Revised {
        body: new_body,
        report,
        changed,
        not_returned,
        worse,
        requests: 1,
        usage: reply.usage.unwrap_or_default(),
        written: Written::Nowhere,
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
        let present = r.sections[i].state == SectionState::Found;
        r.problem_count(&checker.spec, i) + usize::from(!present)
    };
    changed
        .iter()
        .map(|&i| (i, count(before, i), count(after, i)))
        .filter(|(_, b, a)| a > b)
        .collect()
}

/// The sections whose text differs between two versions of a plan.
pub fn changed_sections(before: &str, after: &str, checker: &Checker) -> Vec<usize> {
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
    body: &str,
    changed: &[usize],
    checker: &Checker,
    how: Revision,
) -> BTreeMap<String, String> {
    let now = living::section_hashes(body, checker);
    let mut h = file.provenance.as_ref().map(|p| p.sections.clone()).unwrap_or_default();
    if matches!(how, Revision::Fix) {
        for &i in changed {
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
