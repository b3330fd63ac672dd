//! Generation with bounded repair. Ask once; check the reply; re-ask for only what is
//! missing or malformed; splice each returned section into its canonical place. Three
//! strategies, reported per section:
//! - `first`: present in the first answer;
//! - `repair`: re-asked in the same conversation (draft as the assistant turn, then a
//!   user message naming the exact headings), all missing sections at once;
//! - `section`: asked for one at a time with the heading supplied by us, for models that
//!   write no headings at all (or after a repair round that left a missing section missing,
//!   or when the conversation no longer fits the model's context). A missing section
//!   whose reply held nothing usable is asked again in the same round, up to three times.

//!
//! `state` and `text` are pure (what a round asks for, how replies are spliced in);
//! `driver` runs the rounds against a `Source` of answers: the live client, or a batch
//! output file read by the import engine.

mod driver;
mod parallel;
mod state;
mod text;

use serde::Serialize;

use crate::check::{Checker, Migration};
use crate::client::{ChatResult, Shape, Usage};
use crate::template::{Inputs, Template};

pub use driver::{Answer, LiveSource, Source, Stop, Target, generate};
pub use parallel::{Part, part_prompts};

pub use state::{Ask, State};
pub use text::{merge, sections_from_reply, splice};

/// How each request of a plan is made.
#[derive(Debug, Clone)]
pub struct Options {
    /// The model asked first, the temperature and the token limit of every request.
    pub shape: Shape,
    /// Carries on when `model` leaves the plan failing after its rounds, or fails in a way
    /// that will not heal; it repairs the same draft, it does not start over.
    pub fallback: Option<String>,
    pub max_repairs: u32,
    pub stream: bool,
    /// `--parallel N`: an outline first, then one request per section, N at a time.
    pub parallel: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    First,
    Repair,
    Section,
    /// Written from the outline in its own request, beside the others (`--parallel`).
    Parallel,
    /// As it was in the plan generation started from (`Start::From`).
    Kept,
}

/// Where generation starts.
#[derive(Debug, Clone, Default)]
pub enum Start {
    /// A first answer from the model.
    #[default]
    Fresh,
    /// A plan already written: its missing sections are asked for and those with
    /// findings rewritten, as after a first answer, except the `pinned` ones, which stay
    /// word for word (a person's edits). The model sees the plan as its own draft.
    /// `regenerate`: the missing sections are being made again (a rerun over an edited
    /// plan), so the first round is reported as that, not as a repair.
    From {
        plan: String,
        pinned: Vec<usize>,
        regenerate: bool,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct Round {
    pub round: u32,
    pub strategy: Strategy,
    /// Section ids asked for (missing) or asked to be rewritten.
    pub asked: Vec<String>,
    pub rewrite: Vec<String>,
    /// Missing section ids that came back usable and are now present.
    pub recovered: Vec<String>,
    /// Present section ids whose rewrite fixed some of their problems and replaced them.
    /// A rewrite that fixes nothing is dropped, keeping the text it would have replaced.
    pub rewritten: Vec<String>,
    pub requests: u32,
    /// The round that made again the sections nobody edited (`Start::From`), not a repair.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub regenerate: bool,
}

/// Progress worth telling a user about.
pub enum Event<'a> {
    Draft {
        found: usize,
        total: usize,
        truncated: bool,
    },
    RoundStart {
        round: u32,
        /// Regenerating the sections nobody edited, not repairing.
        regenerate: bool,
        strategy: Strategy,
        missing: &'a [String],
        rewrite: &'a [String],
    },
    RoundEnd {
        round: u32,
        regenerate: bool,
        recovered: usize,
        rewritten: usize,
    },
    /// A one-section request of a repair round is sent (asked one after another).
    Asking {
        round: u32,
        id: &'a str,
        n: usize,
        of: usize,
    },
    /// `--parallel`: the outline request is sent.
    OutlineAsked,
    /// `--parallel`: the outline came back.
    Outline {
        words: usize,
    },
    /// `--parallel`: one section's request ended; `answered`: with a reply, not an error.
    SectionDone {
        id: &'a str,
        done: usize,
        total: usize,
        answered: bool,
    },
    /// The run goes on with the fallback model, and why.
    Fallback {
        model: &'a str,
        why: String,
    },
    Warning(String),
}

/// Everything one plan needs; borrowed, so a batch can share the heavy parts.
pub struct Job<'a> {
    pub template: &'a Template,
    pub checker: &'a Checker,
    pub inputs: &'a Inputs,
    /// The migration the plan is for: its stages (which "Rollback by stage" must cover)
    /// and the names its summary gives.
    pub migration: &'a Migration,
    pub opts: &'a Options,
    pub start: Start,
}

/// What the answers for one plan add up to: usage, request ids, the model the server
/// named, requests made and their transport retries.
#[derive(Debug, Clone)]
pub struct Tally {
    pub usage: Usage,
    /// False once an answer came without usage (the total is then a lower bound).
    pub usage_complete: bool,
    pub request_ids: Vec<String>,
    /// The model the server says answered.
    pub model: Option<String>,
    /// Requests made, answered or not.
    pub requests: u32,
    /// The same requests by model, in the order the models were first asked.
    pub by_model: Vec<(String, u32)>,
    pub retries: u32,
    /// Attempts answered with a rate limit and waited out.
    pub rate_limited: u32,
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            usage: Usage::default(),
            usage_complete: true,
            request_ids: Vec::new(),
            model: None,
            requests: 0,
            by_model: Vec::new(),
            retries: 0,
            rate_limited: 0,
        }
    }
}

impl Tally {
    /// Count one request made to `model`.
    pub fn made(&mut self, model: &str) {
        self.requests += 1;
        match self.by_model.iter_mut().find(|(m, _)| m == model) {
            Some((_, n)) => *n += 1,
            None => self.by_model.push((model.to_string(), 1)),
        }
    }

    /// Count one answer's usage, request id, model and retries.
    pub fn add(&mut self, c: &ChatResult) {
        match c.usage {
            Some(u) => self.usage += u,
            None => self.usage_complete = false,
        }
        self.request_ids.extend(c.request_id.clone());
        if self.model.is_none() {
            self.model = c.model.clone();
        }
        self.retries += c.retries;
        self.rate_limited += c.rate_limited;
    }
}

/// A plan as generation left it.
pub struct Generated {
    /// The plan (no front matter), its check, the rounds and where each section came from.
    pub state: State,
    pub tally: Tally,
    /// Why repair stopped before it ran out of rounds or work, if it did.
    pub stopped: Option<Stop>,
}

impl Generated {
    /// Repair rounds, not counting a regeneration.
    pub fn repair_rounds(&self) -> usize {
        self.state.rounds.iter().filter(|r| !r.regenerate).count()
    }

    /// Lay the plan over `old`, the plan a person edited (see `merge`), and check it again.
    pub fn lay_over(&mut self, old: &str, keep: &[usize], checker: &Checker, m: &Migration) {
        self.state.plan = merge(old, &self.state.plan, keep, checker);
        let (outline, report) = checker.check(&self.state.plan, m);
        self.state.report = report;
        self.state.checked = Some(crate::markdown::Outlined::new(&self.state.plan, outline));
    }
}
