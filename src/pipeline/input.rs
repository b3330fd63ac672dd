//! The migration one plan is for, read once: its two inputs, the stage names in them, and
//! what the checks compare the plan with.

use crate::check::Migration;
use crate::template::Inputs;

#[derive(Debug, Clone)]
pub struct PlanInput {
    pub inputs: Inputs,
    /// The stage names read from `inputs.stages`.
    pub stages: Vec<String>,
    /// The stages the plan must cover and the names its summary gives.
    pub migration: Migration,
    /// `inputs.hash()`, recorded in the front matter.
    pub hash: String,
}

impl PlanInput {
    pub fn new(inputs: Inputs) -> PlanInput {
        let stages = crate::input::parse_stages(&inputs.stages);
        PlanInput::with_stages(inputs, stages)
    }

    /// With the stage names already read from `inputs.stages`.
    pub fn with_stages(inputs: Inputs, stages: Vec<String>) -> PlanInput {
        let migration = Migration::new(Some(stages.clone()), Some(&inputs.summary));
        let hash = inputs.hash();
        PlanInput {
            inputs,
            stages,
            migration,
            hash,
        }
    }
}
