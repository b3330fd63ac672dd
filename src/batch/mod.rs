//! The parts of a batch run below the `batch` command (`commands/batch.rs`, which picks
//! the engine and wires these together):
//!
//! input file → `items` (checked whole before anything is sent) → `runner` (N items in
//! flight, Ctrl-C) → per item, `Ctx::plan_one` (`plan.rs`): keep a current plan, or
//! generate one with answers from an `engine` → the plan written atomically into
//! `outdir` with provenance → `report`. The output folder is the resume state: a rerun
//! keeps every plan that is complete and was made from the same input, template and model.

pub mod engine;
pub mod estimate;
pub mod items;
pub mod outdir;
mod plan;
pub mod progress;
pub mod report;
pub mod runner;

use std::sync::Arc;

use crate::check::{Checker, Stages};
use crate::client::Client;
use crate::pipeline::PlanInput;
use crate::template::Template;
use engine::import::Imported;
use items::Item;
use outdir::{Earlier, OutDir, Wanted};

/// Why a run ended before every item was done.
#[derive(Debug, Clone)]
pub enum Stop {
    Interrupted,
    /// An error no other item can get past (401, exhausted quota): requests in flight
    /// are dropped.
    Fatal(String),
    /// The budget is reached, or rate limits left no progress for the patience: no new
    /// request starts, those in flight finish, a rerun resumes.
    Paused(String),
}

/// What every item of a run shares.
pub struct Ctx {
    pub client: Client,
    pub template: Template,
    pub checker: Checker,
    /// The output folder; only `--export` runs without one (see `Ctx::out`).
    pub out: Option<OutDir>,
    /// What every plan is made with: `--model` (or its default; an item's own `model`
    /// wins), the request shape, repairs, fallback, judge, `--parallel`.
    pub settings: crate::pipeline::Settings,
    pub force: bool,
    /// `--context` (read once, sent first for every item), the budget and redaction.
    pub context: crate::context::Context,
    pub context_ask: crate::pipeline::ContextAsk,
    /// What tokens cost (`--price`, the built-in table), for each plan's cost.
    pub prices: crate::price::Prices,
    /// Where answers come from.
    pub answers: Answers,
    /// The last item's stages with their words, for the next item that has the same.
    pub last_stages: std::sync::Mutex<Option<Arc<Stages>>>,
}

/// Where an item's answers come from.
pub enum Answers {
    /// Asked live, item by item.
    Live,
    /// Read from Batch API or vLLM output files (`--import`, `--via batch-api`), then
    /// live or exported for the rounds the files do not answer.
    Files(Box<Imported>),
}

impl Ctx {
    /// `--model`, or its default: the model of items that name none.
    pub fn default_model(&self) -> &str {
        &self.settings.repair.shape.model
    }

    /// The model `item` is made with.
    pub fn model_of(&self, item: &Item) -> String {
        item.model.clone().unwrap_or_else(|| self.default_model().to_string())
    }

    /// The output folder. The command refuses every engine but `--export` without one.
    pub fn out(&self) -> &OutDir {
        self.out.as_ref().expect("--out-dir is checked before any engine runs")
    }

    /// What an earlier run left in the output folder for `item`'s `input` made with `model`.
    fn earlier(&self, item: &Item, input: &PlanInput, model: &str) -> Earlier {
        let want = Wanted {
            template_hash: &self.template.hash,
            model,
            input_hash: &input.hash,
            migration: &input.migration,
            context: &input.context.files,
        };
        self.out().earlier(&item.slug, &want, &self.checker)
    }

    /// A current plan for `item` is in the output folder and no --force asks to redo it
    /// (false without an output folder): an export leaves such services out.
    pub fn keeps(&self, item: &Item, input: &PlanInput, model: &str) -> bool {
        self.out.is_some() && !self.force && self.earlier(item, input, model) == Earlier::Current
    }

    /// `item`'s stages with their words: the last item's when they are the same.
    fn stages_of(&self, item: &Item) -> Arc<Stages> {
        let mut last = self
            .last_stages
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match &*last {
            Some(s) if s.are(&item.stages) => s.clone(),
            _ => last.insert(Stages::new(Some(item.stages.clone()))).clone(),
        }
    }

    /// What `item`'s plan is made from: its inputs, the run's `--context` and then its own
    /// `context` and `runbook` (read from the input file's folder), held to the budget.
    pub fn item_input(&self, item: &Item, model: &str) -> crate::error::Result<PlanInput> {
        let input = PlanInput::with_shared_stages(item.inputs.clone(), &self.stages_of(item));
        if self.context.is_empty() && item.context.is_empty() && item.runbook.is_none() {
            return Ok(input);
        }
        let own = crate::pipeline::ContextAsk {
            paths: item.context.clone(),
            runbook: item.runbook.clone(),
            ..self.context_ask.clone()
        };
        let ctx = self.context.then(own.load(&item.dir, false)?);
        let rb = own.read_runbook(&item.dir, false)?;
        input.with_context(ctx, rb.as_ref(), self.context_ask.budget, model)
    }
}
