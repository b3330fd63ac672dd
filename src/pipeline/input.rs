//! The migration one plan is for, read once: its two inputs, the stage names in them, the
//! team's context files (`--context`, `--runbook`), and what the checks compare the plan
//! with.

use std::path::Path;
use std::sync::Arc;

use crate::check::grounding::Grounding;
use crate::check::{Migration, Stages};
use crate::context::{self, Budget, Context};
use crate::error::Result;
use crate::input::runbook::{self, Runbook};
use crate::template::Inputs;

#[derive(Debug, Clone)]
pub struct PlanInput {
    /// The inputs, the context rendered into them.
    pub inputs: Inputs,
    /// The stage names read from `inputs.stages`.
    pub stages: Vec<String>,
    /// The stages the plan must cover and the names its summary gives.
    pub migration: Migration,
    /// `inputs.hash()`, recorded in the front matter.
    pub hash: String,
    /// The context files as sent (shared ones first), with what was skipped and redacted.
    pub context: Context,
    /// The runbook's path among them, when there is one.
    pub runbook: Option<String>,
    /// The context's tokens, and how they were counted.
    pub context_tokens: Option<context::Counted>,
}

impl PlanInput {
    pub fn new(inputs: Inputs) -> PlanInput {
        let stages = crate::input::parse_stages(&inputs.stages);
        PlanInput::with_stages(inputs, stages)
    }

    /// With the stage names already read from `inputs.stages`.
    pub fn with_stages(inputs: Inputs, stages: Vec<String>) -> PlanInput {
        PlanInput::with_shared_stages(inputs, &Stages::new(Some(stages)))
    }

    /// With the stage names read from `inputs.stages` and their words made already (the
    /// items of a batch share them).
    pub fn with_shared_stages(inputs: Inputs, stages: &Arc<Stages>) -> PlanInput {
        let migration = Migration::with_stages(stages.clone(), Some(&inputs.summary));
        let hash = inputs.hash();
        PlanInput {
            inputs,
            stages: stages.names().unwrap_or_default().to_vec(),
            migration,
            hash,
            context: Context::default(),
            runbook: None,
            context_tokens: None,
        }
    }

    /// With context: `ctx` and then the runbook's file, held to the budget for `model`
    /// (an error before anything is sent) and rendered into the inputs.
    pub fn with_context(
        self,
        ctx: Context,
        rb: Option<&RunbookRead>,
        budget: Budget,
        model: &str,
    ) -> Result<PlanInput> {
        let mut ctx = ctx;
        if let Some(rb) = rb {
            ctx = ctx.then(rb.file.clone());
        }
        if ctx.is_empty() {
            return Ok(self);
        }
        let counted = context::fit(&mut ctx, model, budget)?;
        let mut inputs = self.inputs;
        inputs.context = context::render(&ctx.files);
        let mut p = PlanInput::with_shared_stages(inputs, self.migration.shared_stages());
        p.migration = p.migration.with_grounding(grounding(&ctx, rb));
        p.context = ctx;
        p.runbook = rb.map(|r| r.path.clone());
        p.context_tokens = Some(counted);
        Ok(p)
    }
}

/// The names the context files hold, and the runbook's derived steps.
fn grounding(ctx: &Context, rb: Option<&RunbookRead>) -> Grounding {
    let files: Vec<(String, String)> = ctx.files.iter().map(|f| (f.path.clone(), f.text.clone())).collect();
    let steps: Vec<(String, String)> = rb
        .and_then(|r| r.derived.as_ref().ok())
        .map(|r| r.steps.iter().map(|s| (s.name.clone(), s.text.clone())).collect())
        .unwrap_or_default();
    Grounding::new(&files, &steps)
}

/// What `--context` and `--runbook` ask for, as plain values.
#[derive(Debug, Clone)]
pub struct ContextAsk {
    /// Files, folders, globs or `-`, as typed.
    pub paths: Vec<String>,
    pub runbook: Option<String>,
    pub budget: Budget,
    /// Off only with `--no-redact`.
    pub redact: bool,
}

/// A runbook as read: its file as sent (credentials redacted), and its derived steps or
/// why none could be derived.
#[derive(Debug, Clone)]
pub struct RunbookRead {
    pub path: String,
    pub file: Context,
    pub derived: std::result::Result<Runbook, String>,
}

impl RunbookRead {
    /// What `input::resolve` fills the inputs from.
    pub fn source(&self) -> crate::input::RunbookSource<'_> {
        (&self.path, &self.derived)
    }
}

impl ContextAsk {
    /// The context files, read from `base` (`shared`: given for every plan of a run).
    pub fn load(&self, base: &Path, shared: bool) -> Result<Context> {
        let o = self.options(base, shared);
        context::load(&self.paths, &o)
    }

    /// The runbook, read as context and its steps derived; None without one.
    pub fn read_runbook(&self, base: &Path, shared: bool) -> Result<Option<RunbookRead>> {
        let Some(path) = &self.runbook else { return Ok(None) };
        let file = context::load(std::slice::from_ref(path), &self.options(base, shared))?;
        let derived = match file.files.first() {
            Some(f) => {
                runbook::derive(&f.text).map_err(|why| format!("no stages could be derived from the runbook: {why}"))
            }
            None => Err("the runbook is not a text file".into()),
        };
        let path = file.files.first().map_or_else(|| path.clone(), |f| f.path.clone());
        Ok(Some(RunbookRead { path, file, derived }))
    }

    fn options(&self, base: &Path, shared: bool) -> context::Options {
        context::Options {
            redact: self.redact,
            base: base.to_path_buf(),
            shared,
        }
    }
}
