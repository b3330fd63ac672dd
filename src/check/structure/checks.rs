//! The structural checks, one function each, and which function a spec's check calls.
//! A new check is a variant of `CheckSpec` (spec.rs), a `Code` (finding.rs), and an arm
//! and a function here.

use super::items::{Item, Normalized, has_condition, has_duration, items, normalize};
use super::matching::{column_of, stage_covered, stage_title, table_problem, titles_from, titles_of};
use super::{Plan, Problem, Section, quoted, quoted_list};
use crate::check::{Code, Migration};
use crate::spec::{CheckSpec, Scope, Severity};

impl Section<'_> {
    /// What `check` finds wrong with the section.
    pub(super) fn check(&self, check: &CheckSpec, plan: &Plan) -> Vec<Problem> {
        let m = plan.migration;
        match check {
            CheckSpec::Table { columns, min_rows } => self.table(columns, *min_rows),
            CheckSpec::StageCoverage {} => {
                let mut p = self.stage_coverage(m.stage_list().unwrap_or_default());
                p.extend(m.agreed().map(|a| self.stray_stages(&a.stages)).unwrap_or_default());
                p
            }
            CheckSpec::PointOfNoReturn {} => m
                .agreed()
                .and_then(|a| crate::check::coherence::point_of_no_return_differs(&self.scan.text, a))
                .map(|msg| self.problem(Code::Coherence, format!("\"{}\": {msg}", self.heading)))
                .unwrap_or_default(),
            CheckSpec::Durations { column } => self.durations(column.as_deref()),
            CheckSpec::Conditionals {} => self.conditionals(),
            // On the whole plan, present section or not: `check::grounding::run`.
            CheckSpec::Grounding {} => Vec::new(),
            CheckSpec::Specific { what } => self.specific(what, m),
            CheckSpec::Items { what, min, max } => self.items(what, *min, *max),
            CheckSpec::Checkboxes { min } => self.checkboxes(*min),
            CheckSpec::Mentions { all, scope, what } => {
                let text = match scope {
                    Scope::Section => &self.scan.text,
                    Scope::Document => &plan.doc.text,
                };
                self.mentions(text, all, *scope, what.as_deref())
            }
        }
    }

    /// The rows of the table's `column` that carry no duration; or, without a column, the
    /// items that carry none when they are more than half.
    fn durations(&self, column: Option<&str>) -> Vec<Problem> {
        let (what, lacking): (&str, Vec<String>) = match column {
            Some(col) => {
                let Some((t, i)) = self.scan.tables.iter().find_map(|t| column_of(t, col).map(|i| (t, i))) else {
                    return Vec::new(); // no such column: the table check says so
                };
                let cells = t.cells.iter().filter_map(|row| Some((row.first()?, row.get(i)?)));
                (
                    "rows",
                    cells
                        .filter(|(_, c)| !has_duration(c))
                        .map(|(first, _)| first.clone())
                        .collect(),
                )
            }
            None => {
                let all = items(self.body, &self.scan);
                let lacking: Vec<String> = all
                    .iter()
                    .filter(|i| !has_duration(&i.text))
                    .map(|i| i.title.clone())
                    .collect();
                if lacking.len() * 2 <= all.len() {
                    return Vec::new();
                }
                ("items", lacking)
            }
        };
        if lacking.is_empty() {
            return Vec::new();
        }
        let msg = format!(
            "\"{}\": {} {what} say no time (\"5 min\", \"T+2h\", \"within 30 minutes\"): {}",
            self.heading,
            lacking.len(),
            quoted_list(&lacking)
        );
        self.problem(Code::Durations, msg)
    }

    /// The section says at least once when to do what: "if", "when", "unless", "after T+…".
    fn conditionals(&self) -> Vec<Problem> {
        if has_condition(self.body) {
            return Vec::new();
        }
        let msg = format!(
            "\"{}\" reads as steps, not decisions: it never says \"if …, then …\" (or when, unless, after T+…)",
            self.heading
        );
        self.problem(Code::Conditionals, msg)
    }

    /// Items that name neither a stage nor anything the summary names; the check's
    /// severity when they are more than half, else a warning. Only when both are known:
    /// the stages alone, or the names alone, say too little to call a scenario generic.
    fn specific(&self, what: &str, m: &Migration) -> Vec<Problem> {
        if m.names().is_empty() || m.stage_list().is_none_or(<[String]>::is_empty) {
            return Vec::new();
        }
        let all = items(self.body, &self.scan);
        let generic: Vec<&Item> = all.iter().filter(|i| !m.is_named_in(&i.text)).collect();
        if generic.is_empty() {
            return Vec::new();
        }
        let titles: Vec<String> = generic.iter().map(|i| i.title.clone()).collect();
        let msg = format!(
            "\"{}\": {} of {} {what} name no stage or system of this migration: {}",
            self.heading,
            generic.len(),
            all.len(),
            quoted_list(&titles)
        );
        let mut p = self.problem(Code::Specific, msg);
        p[0].line = self.body_line + generic[0].line - 1;
        if generic.len() * 2 <= all.len() {
            p[0].severity = Some(Severity::Warning);
        }
        p
    }

    fn table(&self, columns: &[String], min_rows: usize) -> Vec<Problem> {
        let Some((line, msg)) = table_problem(&self.scan, columns, min_rows) else {
            return Vec::new();
        };
        let mut p = self.problem(Code::Table, format!("\"{}\": {msg}", self.heading));
        p[0].line = line.unwrap_or(self.line);
        p
    }

    /// Stage subsections ("Stage 3: Read cutover") that name no stage the outline agreed on
    /// (the input's, which the outline copies). "Step 1: …" and "Phase 2: …" are a stage's
    /// own steps, not stages.
    fn stray_stages(&self, agreed: &[String]) -> Vec<Problem> {
        if agreed.is_empty() {
            return Vec::new();
        }
        let is_stage = |h: &str| h.trim_start().get(..5).is_some_and(|w| w.eq_ignore_ascii_case("stage"));
        let named: Vec<&str> = self
            .scan
            .subheadings
            .iter()
            .filter(|(_, h)| is_stage(h))
            .filter_map(|(_, h)| stage_title(h))
            .collect();
        let stray: Vec<&str> = named
            .into_iter()
            .filter(|name| {
                let title = titles_from(&[name.to_string()]);
                !agreed
                    .iter()
                    .any(|s| stage_covered(&title, s) || stage_covered(&titles_from(std::slice::from_ref(s)), name))
            })
            .collect();
        if stray.is_empty() {
            return Vec::new();
        }
        let msg = format!(
            "\"{}\" names stages that are not this migration's: {} (its stages: {})",
            self.heading,
            quoted(&stray),
            quoted_list(agreed)
        );
        self.problem(Code::Coherence, msg)
    }

    fn stage_coverage(&self, stages: &[String]) -> Vec<Problem> {
        let titles = titles_of(&self.scan);
        stages
            .iter()
            .filter(|stage| !stage_covered(&titles, stage))
            .map(|stage| Problem {
                code: Code::StageCoverage,
                line: self.line,
                message: format!("stage \"{stage}\" has no subsection in \"{}\"", self.heading),
                stage: Some(stage.clone()),
                severity: None,
            })
            .collect()
    }

    fn items(&self, what: &str, min: Option<usize>, max: Option<usize>) -> Vec<Problem> {
        let n = self.scan.item_count();
        let range = match (min, max) {
            (Some(a), Some(b)) if n < a || n > b => format!("between {a} and {b}"),
            (Some(a), None) if n < a => format!("at least {a}"),
            (None, Some(b)) if n > b => format!("at most {b}"),
            _ => return Vec::new(),
        };
        self.problem(
            Code::Items,
            format!("\"{}\" has {n} {what}; expected {range}", self.heading),
        )
    }

    fn checkboxes(&self, min: usize) -> Vec<Problem> {
        let n = self.scan.checkboxes;
        if n >= min {
            return Vec::new();
        }
        let msg = format!(
            "\"{}\" has {n} checkboxes (\"- [ ] item\"); expected at least {min}",
            self.heading
        );
        self.problem(Code::Checkboxes, msg)
    }

    /// Each entry of `all` (alternatives split by `|`) must appear in `text`, both normalized.
    fn mentions(&self, text: &str, all: &[String], scope: Scope, what: Option<&str>) -> Vec<Problem> {
        let text = Normalized::new(text);
        let absent: Vec<&str> = all
            .iter()
            .filter(|entry| !entry.split('|').any(|alt| text.contains(&normalize(alt))))
            .map(|entry| entry.split('|').next().unwrap_or(entry).trim())
            .collect();
        if absent.is_empty() {
            return Vec::new();
        }
        let heading = &self.heading;
        let msg = match (scope, what) {
            (Scope::Document, Some(w)) => format!("the plan never states {w}"),
            (Scope::Document, None) => format!("the plan never mentions {}", quoted(&absent)),
            (Scope::Section, Some(w)) => format!("\"{heading}\" does not cover {w}: {}", quoted(&absent)),
            (Scope::Section, None) => format!("\"{heading}\" does not mention {}", quoted(&absent)),
        };
        self.problem(Code::Mentions, msg)
    }
}
