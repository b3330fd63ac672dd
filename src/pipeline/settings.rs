//! What every plan of a run is made with: the request shape, the repair rounds, the
//! fallback and judge models, `--parallel`. Built once per run.

use crate::client::Shape;
use crate::repair;

#[derive(Debug, Clone)]
pub struct Settings {
    pub repair: repair::Options,
    /// `--judge-model`.
    pub judge: Option<String>,
    /// `--deadline`: no request of a plan starts this long after the plan's first.
    pub deadline: Option<std::time::Duration>,
}

impl Settings {
    /// A run's settings, not streamed (see `streamed`).
    pub fn new(
        shape: Shape,
        max_repairs: u32,
        fallback: Option<String>,
        parallel: Option<usize>,
        judge: Option<String>,
    ) -> Settings {
        Settings {
            repair: repair::Options {
                shape,
                fallback,
                max_repairs,
                stream: false,
                parallel,
            },
            judge,
            deadline: None,
        }
    }

    /// No request of a plan starts `after` its start (`--deadline`).
    pub fn until(mut self, after: Option<std::time::Duration>) -> Settings {
        self.deadline = after;
        self
    }

    /// The first answer streamed, or not.
    pub fn streamed(mut self, stream: bool) -> Settings {
        self.repair.stream = stream;
        self
    }

    /// The same settings for an item's own model.
    pub fn for_model(&self, model: &str) -> Settings {
        let mut s = self.clone();
        s.repair.shape = s.repair.shape.for_model(model);
        s
    }

    /// Every model a plan may ask: the first, the fallback, the judge.
    pub fn models(&self) -> Vec<&str> {
        let mut m = vec![self.repair.shape.model.as_str()];
        m.extend(self.repair.fallback.as_deref());
        m.extend(self.judge.as_deref());
        m
    }
}
