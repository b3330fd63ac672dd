//! Making one plan, in one place. `ask`, a batch item and `revise --fix` each build a
//! `Job` and run it: decide what is current and what to regenerate, generate (a first
//! answer, or the sections nobody edited, then repair), lay the plan over a person's
//! edits, judge, build the provenance, write atomically. What was produced comes back for
//! the caller to show; the callers keep only their own presentation and wiring.

pub mod adopt;
mod input;
pub mod revise;
mod settings;

use std::path::{Path, PathBuf};

pub use input::{ContextAsk, PlanInput, RunbookRead};
pub use settings::Settings;

use crate::check::{CheckReport, Checker};
use crate::client::Client;
use crate::error::{Error, Result};
use crate::judge::Judgement;
use crate::output::living::{self, Decision, Earlier, Wanted, Working};
use crate::output::{self, Made, Provenance};
use crate::repair::{self, Event, Generated, Source};
use crate::template::Template;

/// Where a plan starts and where it goes.
pub enum Start<'a> {
    /// Nothing to keep, nowhere to write: the caller shows the plan (`ask` without `--out`).
    Fresh,
    /// A plan file, as `living::decide_following` found it: the plan is written there
    /// (or beside it), keeping a person's edits. `durable` adds an fsync (not per batch plan).
    File { working: &'a Working, durable: bool },
    /// `revise --fix`: the plan as it stands, its sections with findings asked again.
    Revise(&'a revise::PlanFile),
}

/// Everything one plan is made from.
pub struct Job<'a> {
    pub template: &'a Template,
    pub checker: &'a Checker,
    pub settings: &'a Settings,
    pub input: &'a PlanInput,
    pub start: Start<'a>,
    /// The service name, for a batch item's front matter.
    pub name: Option<&'a str>,
    /// Asks the judge (`--judge-model`); the answers come from the `Source`.
    pub client: &'a Client,
}

/// What a job produced.
pub struct Produced {
    pub g: Generated,
    pub judgement: Option<Judgement>,
    pub provenance: Provenance,
    pub written: Written,
    /// The plan at the destination had more sections than this run made (a regeneration
    /// cut short): it is left as it is, and the new plan is written beside it.
    pub left_alone: Option<LeftAlone>,
}

/// A plan file left as it was because the new one is less complete.
#[derive(Debug)]
pub struct LeftAlone {
    pub path: PathBuf,
    /// Sections present in it, and in the plan this run made.
    pub had: usize,
    pub made: usize,
}

/// What became of the plan file.
pub enum Written {
    /// Nothing was written: no file (`Start::Fresh`), or a revision that changed nothing.
    Nowhere,
    /// The file at `path` now holds `text` (front matter and plan).
    To { path: PathBuf, text: String },
    /// Writing failed; the plan is in `Produced` all the same.
    Failed { path: PathBuf, error: Error },
}

impl Written {
    /// Where the plan went, if it was written.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Written::To { path, .. } => Some(path),
            _ => None,
        }
    }

    /// The write's error, taken out (what is left says nothing was written).
    pub fn take_error(&mut self) -> Option<Error> {
        match std::mem::replace(self, Written::Nowhere) {
            Written::Failed { error, .. } => Some(error),
            other => {
                *self = other;
                None
            }
        }
    }
}

impl Job<'_> {
    /// What a plan at the destination must have been made from to be current.
    pub fn wanted(&self) -> Wanted<'_> {
        Wanted {
            template_hash: &self.template.hash,
            model: self.model(),
            input_hash: &self.input.hash,
            migration: &self.input.migration,
            context: &self.input.context.files,
        }
    }

    /// The plan an earlier run left at the destination is current: made from this
    /// template, model and input, and it passes its checks (a person's edits included).
    pub fn is_current(&self) -> bool {
        let Start::File { working, .. } = &self.start else {
            return false;
        };
        match &working.decision {
            Decision::Replace(e) | Decision::KeepEdits(e) => {
                self.wanted().redo(&e.provenance, &e.body, self.checker).is_none()
            }
            _ => false,
        }
    }

    /// Make the plan: backup, generate, lay over a person's edits, judge, provenance, write.
    pub async fn make<S: Source>(&self, source: &mut S, on_event: &(dyn Fn(Event) + Send + Sync)) -> Result<Produced> {
        if let Start::File { working, .. } = &self.start {
            working.decision.make_backup(&working.path)?;
        }
        let job = repair::Job {
            template: self.template,
            checker: self.checker,
            inputs: &self.input.inputs,
            migration: &self.input.migration,
            opts: &self.settings.repair,
            start: self.repair_start(),
        };
        let mut g = repair::generate(&job, source, on_event).await?;
        if let Some(e) = self.earlier() {
            g.lay_over(&e.body, &e.edited, self.checker, &self.input.migration);
        }
        let judgement = self.judge(&mut g).await;
        let mut provenance = match &self.start {
            Start::Revise(file) => {
                revise::provenance(self, file, &g.state.plan, &g.state.report, revise::Revision::Fix)
            }
            _ => self.provenance(&g.state, judgement.as_ref()),
        };
        // Each model's requests, counted apart once a fallback was asked too.
        if g.tally.by_model.len() > 1 {
            provenance.requests = g.tally.by_model.iter().cloned().collect();
        }
        let left_alone = self.less_complete(&g.state.report);
        let written = self.write(&provenance, &g.state.plan, left_alone.is_some());
        Ok(Produced {
            g,
            judgement,
            provenance,
            written,
            left_alone,
        })
    }

    /// The model asked first.
    pub fn model(&self) -> &str {
        &self.settings.repair.shape.model
    }

    /// The edited plan at the destination, whose edits are kept.
    fn earlier(&self) -> Option<&Earlier> {
        match &self.start {
            Start::File { working, .. } => working.decision.earlier(),
            _ => None,
        }
    }

    /// Where generation starts: fresh, from the kept sections of an edited plan, or (revise)
    /// from the plan as it is.
    fn repair_start(&self) -> repair::Start {
        if let Start::Revise(file) = &self.start {
            return repair::Start::From {
                plan: file.body.clone(),
                pinned: Vec::new(),
                regenerate: false,
            };
        }
        match self.earlier() {
            Some(e) => repair::Start::From {
                plan: e.kept_only(self.checker),
                pinned: e.edited.clone(),
                regenerate: true,
            },
            None => repair::Start::Fresh,
        }
    }

    /// `--judge-model`: the second model's scores, added to the report as findings.
    async fn judge(&self, g: &mut Generated) -> Option<Judgement> {
        let m = self.settings.judge.as_deref()?;
        let (plan, report) = (&g.state.plan, &mut g.state.report);
        let shape = (&self.settings.repair.shape, m);
        crate::judge::judge_into(self.client, self.template, shape, &self.input.inputs, plan, report).await
    }

    /// The front matter of a plan made new: what made it, its verdict and its section
    /// hashes, a person's edited sections keeping the hash rbplan recorded for them.
    pub fn provenance(&self, state: &repair::State, judgement: Option<&Judgement>) -> Provenance {
        let checked = state.checked.as_ref();
        let sections = living::hashes_after(&state.plan, checked, self.checker, self.earlier());
        self.made(&state.report, &state.written_by, judgement, sections)
    }

    /// The one place a plan's provenance is built.
    fn made(
        &self,
        report: &CheckReport,
        written_by: &[(String, String)],
        judgement: Option<&Judgement>,
        sections: std::collections::BTreeMap<String, String>,
    ) -> Provenance {
        Provenance::new(&Made {
            template: self.template,
            model: self.model(),
            inputs: &self.input.inputs,
            stages: &self.input.stages,
            report,
            written_by,
            name: self.name,
            judge: judgement.map(|j| (j.model.as_str(), j.mean)),
            sections,
            context: &self.input.context.files,
            runbook: self.input.runbook.as_deref(),
        })
    }

    /// Write the plan where the start says, atomically, keeping a person's own front
    /// matter keys.
    /// The plan rbplan wrote at the destination, when it has more sections than `made`: a
    /// regeneration that stopped short (an API error, the budget, the deadline) must not
    /// throw away sections already made.
    fn less_complete(&self, made: &CheckReport) -> Option<LeftAlone> {
        let Start::File { working, .. } = &self.start else {
            return None;
        };
        let (Decision::Replace(e) | Decision::KeepEdits(e)) = &working.decision else {
            return None;
        };
        // Present with content, as the check's `found_count` counts them.
        let o = self.checker.outline(&e.body);
        let had = (0..self.checker.spec.sections.len())
            .filter(|&i| o.primary(i).is_some_and(|l| !l.empty))
            .count();
        let made = made.found_count();
        (made < had).then(|| LeftAlone {
            path: working.target().to_path_buf(),
            had,
            made,
        })
    }

    /// Write the plan where it goes; `beside`: to the `NAME.new.md` beside it instead.
    fn write(&self, prov: &Provenance, plan: &str, beside: bool) -> Written {
        let (path, front, durable) = match &self.start {
            Start::Fresh => return Written::Nowhere,
            Start::File { working, durable } if beside => {
                let to = living::beside(working.target());
                return write_plan(&to, prov, working.decision.front(), plan, *durable);
            }
            Start::File { working, durable } => (working.target(), working.decision.front(), *durable),
            Start::Revise(file) if revise::changed_sections(&file.body, plan, self.checker).is_empty() => {
                return Written::Nowhere;
            }
            Start::Revise(file) => (file.path.as_path(), file.front.as_deref(), true),
        };
        write_plan(path, prov, front, plan, durable)
    }
}

/// Write a plan file atomically: its front matter (keeping a person's own keys of `front`),
/// then the plan.
pub fn write_plan(path: &Path, prov: &Provenance, front: Option<&str>, plan: &str, durable: bool) -> Written {
    let text = prov.to_front_matter_keeping(front) + plan;
    match output::write_atomic_with(path, text.as_bytes(), durable) {
        Ok(()) => Written::To {
            path: path.to_path_buf(),
            text,
        },
        Err(e) => Written::Failed {
            path: path.to_path_buf(),
            error: Error::io(format!("writing {}", path.display()), e),
        },
    }
}
