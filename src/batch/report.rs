//! The report of a batch: one entry per service, then totals, as `report.json` (for
//! machines) and `report.md` (for people). Its outcome picks the exit status.

use std::fmt::Write as _;

use serde::Serialize;

use crate::client::Usage;
use crate::error::Outcome;
use crate::term::{count, count_as};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Every required section is present, and no check found an error.
    Complete,
    /// Written with every section, but error findings remain after repairs.
    Errors,
    /// Written, but sections are still missing after repairs.
    Incomplete,
    /// The API failed for this item (after retries); no plan was written.
    Failed,
    /// Not done in this run: interrupted, or the run stopped before reaching it.
    Pending,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Complete => "complete",
            Status::Errors => "errors",
            Status::Incomplete => "incomplete",
            Status::Failed => "failed",
            Status::Pending => "pending",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ItemReport {
    pub name: String,
    /// The plan file, relative to the output folder.
    pub file: String,
    /// Line of the input file the item came from.
    pub line: usize,
    pub status: Status,
    /// True when an up-to-date complete plan from an earlier run was kept.
    pub resumed: bool,
    pub model: String,
    /// The fallback model, when it wrote sections of this plan, and which it wrote.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback_model: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub by_fallback: Vec<String>,
    /// `--judge-model`: the judge and its mean score ("judge-m 3.4/5").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub judge: Option<String>,
    pub missing: Vec<String>,
    /// Error-severity findings beyond missing sections (tables, stage coverage…).
    pub findings: usize,
    /// Those findings, as `rbplan check` words them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    pub repair_rounds: u32,
    pub transport_retries: u32,
    /// Attempts answered with a rate limit (429) and waited out; not failures.
    pub rate_limited: u32,
    pub requests: u32,
    pub tokens: Usage,
    /// What the tokens cost in USD, when the model's price is known (`--price`, or the
    /// built-in table).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    pub duration_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Why a plan from an earlier run was redone (the template, model or input changed…).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redone: Option<String>,
    /// Sections a person edited in the earlier plan, kept word for word (`_other`: text a
    /// person added outside the sections).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kept: Vec<String>,
    /// The earlier file could not be merged into and was left alone; the plan went here
    /// (`NAME.new.md`), for this reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub written_beside: Option<String>,
    /// `--force` copied the earlier file here (`NAME.md.bak`) before writing over it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup: Option<String>,
    /// Credentials replaced in the item's context before sending: file, line and kind.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub redactions: Vec<crate::context::Redaction>,
}

impl ItemReport {
    /// The kept edits in words: section ids, and "added text" for text outside them.
    pub fn kept_shown(&self) -> String {
        let words: Vec<&str> = self
            .kept
            .iter()
            .map(|k| {
                if k == crate::output::living::OTHER {
                    "added text"
                } else {
                    k.as_str()
                }
            })
            .collect();
        words.join(", ")
    }

    /// The name to show: a blank one as its input line (and, `with_file`, its plan file),
    /// so it still has something to point at.
    pub fn shown_name(&self, with_file: bool) -> std::borrow::Cow<'_, str> {
        if !self.name.trim().is_empty() {
            return self.name.as_str().into();
        }
        match with_file {
            true => format!("(no name, line {} → {})", self.line, self.file).into(),
            false => format!("(no name, line {})", self.line).into(),
        }
    }

    /// The entry for a plan generation made (written or not: the caller says).
    pub fn generated(name: &str, file: String, line: usize, model: &str, g: &crate::repair::Generated) -> ItemReport {
        let report = &g.state.report;
        let problems: Vec<String> = report
            .findings
            .iter()
            .filter(|f| f.severity == crate::spec::Severity::Error && !f.code.is_presence())
            .map(|f| f.message.clone())
            .collect();
        ItemReport {
            status: match crate::output::PlanStatus::of(report) {
                crate::output::PlanStatus::Complete => Status::Complete,
                crate::output::PlanStatus::Errors => Status::Errors,
                crate::output::PlanStatus::Incomplete => Status::Incomplete,
            },
            missing: report.missing_ids(),
            findings: problems.len(),
            problems,
            repair_rounds: g.repair_rounds() as u32,
            transport_retries: g.tally.retries,
            rate_limited: g.tally.rate_limited,
            requests: g.tally.requests,
            tokens: g.tally.usage,
            error: g.stopped.as_ref().map(ToString::to_string),
            ..ItemReport::pending(name, &file, line, model, "")
        }
    }

    /// An entry for an item that did not run (or was cut short).
    pub fn pending(name: &str, file: &str, line: usize, model: &str, why: &str) -> ItemReport {
        ItemReport {
            name: name.into(),
            file: file.into(),
            line,
            status: Status::Pending,
            resumed: false,
            model: model.into(),
            fallback_model: None,
            by_fallback: Vec::new(),
            judge: None,
            missing: Vec::new(),
            findings: 0,
            problems: Vec::new(),
            repair_rounds: 0,
            transport_retries: 0,
            rate_limited: 0,
            requests: 0,
            tokens: Usage::default(),
            cost_usd: None,
            duration_ms: 0,
            error: Some(why.into()),
            redone: None,
            kept: Vec::new(),
            written_beside: None,
            backup: None,
            redactions: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Totals {
    pub items: usize,
    pub complete: usize,
    /// Plans with every section and error findings left.
    pub errors: usize,
    pub incomplete: usize,
    pub failed: usize,
    pub pending: usize,
    /// Complete plans kept from an earlier run (counted in `complete` too).
    pub resumed: usize,
    /// Plans regenerated around sections a person edited, which were kept.
    pub with_kept_edits: usize,
    /// Plans written to NAME.new.md beside a file that was left alone.
    pub written_beside: usize,
    /// Plans (complete or not) with error findings beyond missing sections.
    pub with_findings: usize,
    pub requests: u64,
    pub repair_rounds: u64,
    pub transport_retries: u64,
    /// Attempts answered with a rate limit and waited out.
    pub rate_limited: u64,
    pub tokens: Usage,
    /// What the run cost in USD; None when some plan's model has no price.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    /// Models with tokens spent and no price (`--price MODEL=IN:OUT` prices them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unpriced: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BatchReport {
    pub input: String,
    pub template: String,
    pub template_hash: String,
    pub model: String,
    pub engine: super::engine::Engine,
    pub interrupted: bool,
    /// Why the run stopped early (a 401, exhausted quota, the budget), if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    /// `--max-cost`: the budget, what was spent, and whether it stopped the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetReport>,
    pub duration_ms: u64,
    pub totals: Totals,
    pub items: Vec<ItemReport>,
}

/// `--max-cost` as the run ended.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct BudgetReport {
    pub max_usd: f64,
    pub spent_usd: f64,
    pub reached: bool,
}

/// What a run was: its input, template, model and engine, and how long it took.
pub struct RunInfo<'a> {
    pub input: String,
    pub template: &'a crate::template::Template,
    pub model: String,
    pub engine: super::engine::Engine,
    pub duration: std::time::Duration,
    pub budget: Option<BudgetReport>,
}

impl BatchReport {
    /// The report of a run, totals filled in. `sent` is every request the client sent,
    /// those of items stopped mid-request (which report none) included.
    pub fn new(run: RunInfo, stop: Option<super::Stop>, items: Vec<ItemReport>, sent: u64) -> BatchReport {
        let mut r = BatchReport {
            input: run.input,
            template: run.template.origin.clone(),
            template_hash: run.template.hash.clone(),
            model: run.model,
            engine: run.engine,
            interrupted: matches!(stop, Some(super::Stop::Interrupted)),
            stopped: match stop {
                Some(super::Stop::Fatal(e) | super::Stop::Paused(e)) => Some(e),
                _ => None,
            },
            duration_ms: run.duration.as_millis() as u64,
            budget: run.budget,
            totals: Totals::default(),
            items,
        };
        r.tally();
        r.totals.requests = r.totals.requests.max(sent);
        r
    }

    /// How many plans from an earlier run were redone, by reason.
    pub fn redone_by_reason(&self) -> std::collections::BTreeMap<&str, usize> {
        let mut redone = std::collections::BTreeMap::new();
        for why in self.items.iter().filter_map(|i| i.redone.as_deref()) {
            *redone.entry(why).or_default() += 1;
        }
        redone
    }

    /// Fill in totals from the items.
    fn tally(&mut self) {
        let mut t = Totals {
            items: self.items.len(),
            ..Totals::default()
        };
        for i in &self.items {
            match i.status {
                Status::Complete => t.complete += 1,
                Status::Errors => t.errors += 1,
                Status::Incomplete => t.incomplete += 1,
                Status::Failed => t.failed += 1,
                Status::Pending => t.pending += 1,
            }
            t.resumed += usize::from(i.resumed);
            t.with_kept_edits += usize::from(!i.kept.is_empty());
            t.written_beside += usize::from(i.written_beside.is_some() && !i.resumed);
            t.with_findings += usize::from(i.findings > 0);
            t.requests += u64::from(i.requests);
            t.repair_rounds += u64::from(i.repair_rounds);
            t.transport_retries += u64::from(i.transport_retries);
            t.rate_limited += u64::from(i.rate_limited);
            t.tokens += i.tokens;
            if i.tokens.total_tokens > 0 && i.cost_usd.is_none() && !t.unpriced.contains(&i.model) {
                t.unpriced.push(i.model.clone());
            }
        }
        let costs = self.items.iter().filter_map(|i| i.cost_usd);
        // fold from +0.0: an empty f64 sum is -0.0.
        t.cost_usd = t.unpriced.is_empty().then(|| costs.fold(0.0, |a, c| a + c));
        self.totals = t;
    }

    /// Interrupted > some failed (or stopped) > some with errors, incomplete or pending >
    /// all complete.
    pub fn outcome(&self) -> Outcome {
        let t = &self.totals;
        if self.interrupted {
            Outcome::Interrupted
        } else if self.budget.is_some_and(|b| b.reached) {
            Outcome::BudgetReached
        } else if t.failed > 0 || self.stopped.is_some() {
            Outcome::ApiProblem
        } else if t.errors + t.incomplete + t.pending > 0 {
            Outcome::Failing
        } else {
            Outcome::Complete
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("report serializes") + "\n"
    }

    pub fn to_markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# rbplan batch report\n");
        let _ = writeln!(
            s,
            "- input: `{}`\n- template: {} (`{}`)\n- model: `{}`\n- engine: {}\n- duration: {:.1} s",
            self.input,
            self.template,
            self.template_hash,
            self.model,
            self.engine,
            self.duration_ms as f64 / 1000.0
        );
        if self.interrupted {
            let _ = writeln!(s, "- **interrupted**: rerun the same command to finish");
        }
        if let Some(why) = &self.stopped {
            let _ = writeln!(s, "- **stopped early**: {}", md_cell(why));
        }
        let _ = writeln!(s, "\n{}\n", self.totals_line());
        let _ = writeln!(
            s,
            "| service | status | missing | findings | repairs | retries | tokens | cost | seconds | error |\n|---|---|---|---|---|---|---|---|---|---|"
        );
        for i in &self.items {
            s.push_str(&i.markdown_row());
        }
        s
    }

    fn totals_line(&self) -> String {
        let t = &self.totals;
        let findings = match t.with_findings {
            0 => String::new(),
            n => format!(" {n} with error findings (see the findings column)."),
        };
        format!(
            "**{}.**{findings} {}, {}, {}, {}, {}, {}.",
            self.counts_sentence(),
            count(t.requests, "request"),
            count(t.repair_rounds, "repair round"),
            count_as(t.transport_retries, "transport retry", "transport retries"),
            count(t.rate_limited, "rate-limited attempt"),
            count(t.tokens.total_tokens, "token"),
            self.cost_words()
        )
    }

    /// The items by outcome: "3 items: 2 complete (1 kept from an earlier run), 0 with
    /// errors, …, 1 pending", for report.md and the closing line alike.
    pub fn counts_sentence(&self) -> String {
        let t = &self.totals;
        format!(
            "{}: {} complete ({} kept from an earlier run), {} with errors, {} incomplete, {} failed, {} pending",
            count(t.items as u64, "item"),
            t.complete,
            t.resumed,
            t.errors,
            t.incomplete,
            t.failed,
            t.pending
        )
    }

    /// The run's cost in words, or which models have no price.
    pub fn cost_words(&self) -> String {
        match self.totals.cost_usd {
            Some(c) => crate::price::usd(c),
            None => format!(
                "cost unknown: no price for {} (give --price IN:OUT)",
                self.totals.unpriced.join(", ")
            ),
        }
    }
}

impl ItemReport {
    /// This item's row of report.md; a plan that was written is linked.
    fn markdown_row(&self) -> String {
        let mut status = match (&self.redone, self.resumed) {
            (_, true) => "complete (kept)".to_string(),
            (Some(why), _) => format!("{} (redone: {why})", self.status.as_str()),
            (None, _) => self.status.as_str().to_string(),
        };
        if !self.kept.is_empty() {
            status.push_str(&format!("; a person's edits kept: {}", self.kept_shown()));
        }
        if let Some(b) = &self.written_beside {
            status.push_str(&format!("; written to {b}"));
        }
        if let Some(b) = &self.backup {
            status.push_str(&format!("; old file in {b}"));
        }
        // A failed redo writes nothing: the earlier plan is still there.
        if self.status == Status::Failed && self.redone.is_some() {
            status.push_str(&format!("; the earlier plan is kept: [{0}]({0})", self.file));
        }
        let shown = md_cell(&self.shown_name(false));
        let name = match self.status {
            Status::Complete | Status::Errors | Status::Incomplete => format!("[{shown}]({})", self.file),
            _ => shown,
        };
        format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {:.1} | {} |\n",
            name,
            status,
            md_cell(&self.missing.join(", ")),
            md_cell(&self.problems.join("; ")),
            self.repair_rounds,
            self.transport_retries,
            crate::term::thousands(self.tokens.total_tokens),
            self.cost_usd.map(crate::price::usd).unwrap_or_default(),
            self.duration_ms as f64 / 1000.0,
            md_cell(self.error.as_deref().unwrap_or(""))
        )
    }
}

/// Text safe inside a Markdown table cell.
fn md_cell(s: &str) -> String {
    let one_line = s.split_whitespace().collect::<Vec<_>>().join(" ");
    one_line.replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(name: &str, status: Status) -> ItemReport {
        let mut i = ItemReport::pending(name, &format!("{name}.md"), 1, "m", "x");
        i.status = status;
        i.error = None;
        i.requests = 2;
        i.tokens = Usage {
            prompt_tokens: 10,
            completion_tokens: 5,
            total_tokens: 15,
            cached_tokens: 0,
        };
        i
    }

    fn report(items: Vec<ItemReport>) -> BatchReport {
        let mut r = BatchReport {
            input: "in.jsonl".into(),
            template: "t".into(),
            template_hash: "h".into(),
            model: "m".into(),
            engine: super::super::engine::Engine::Live,
            interrupted: false,
            stopped: None,
            budget: None,
            duration_ms: 1500,
            totals: Totals::default(),
            items,
        };
        r.tally();
        r
    }

    #[test]
    fn outcome_follows_the_worst_item() {
        let all = report(vec![item("a", Status::Complete), item("b", Status::Complete)]);
        assert_eq!(all.outcome(), Outcome::Complete);
        assert_eq!(all.totals.requests, 4);
        assert_eq!(all.totals.tokens.total_tokens, 30);
        let inc = report(vec![item("a", Status::Complete), item("b", Status::Incomplete)]);
        assert_eq!(inc.outcome(), Outcome::Failing);
        let failed = report(vec![item("a", Status::Failed), item("b", Status::Incomplete)]);
        assert_eq!(failed.outcome(), Outcome::ApiProblem);
        let mut int = report(vec![item("a", Status::Failed)]);
        int.interrupted = true;
        assert_eq!(int.outcome(), Outcome::Interrupted);
    }

    #[test]
    fn markdown_escapes_cells_and_links_written_plans() {
        let mut bad = item("x|y", Status::Failed);
        bad.error = Some("HTTP 500:\n a | b".into());
        let md = report(vec![item("a", Status::Complete), bad]).to_markdown();
        assert!(md.contains("| [a](a.md) | complete |"), "{md}");
        assert!(md.contains("| x\\|y | failed |"), "{md}");
        assert!(md.contains("HTTP 500: a \\| b |"), "{md}");
        assert!(md.contains("**2 items: 1 complete"), "{md}");
    }
}
