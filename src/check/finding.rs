//! What a check found: one finding per problem, naming its section and line.

use serde::Serialize;

use crate::spec::{CheckSpec, Scope, Severity};

/// Declares `Code` and `CODES` from one list, so that every code has its row; each
/// variant's doc is what it checks.
macro_rules! codes {
    ($($code:ident { name: $name:literal, severity: $severity:expr, checks: $checks:literal, fix: $fix:literal $(,)? })*) => {
        /// What kind of problem a finding is. Spelled in snake case in JSON and in `[code]`
        /// labels; what each means is in `CODES`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(rename_all = "snake_case")]
        pub enum Code {
            $(#[doc = $checks] $code,)*
        }

        /// Every code, in the order `Code` declares them.
        pub const CODES: &[CodeInfo] = &[$(CodeInfo {
            code: Code::$code,
            name: $name,
            severity: $severity,
            checks: $checks,
            fix: $fix,
        }),*];
    };
}

codes! {
    Missing {
        name: "missing",
        severity: Graded::Fixed(Severity::Error),
        checks: "A required section has no heading.",
        fix: "Add the section under its own heading, e.g. \"## 5. Pre-cutover rehearsal\".",
    }
    Empty {
        name: "empty",
        severity: Graded::Fixed(Severity::Error),
        checks: "A required section has a heading and nothing under it.",
        fix: "Write the section's content under its heading; a heading alone does not count.",
    }
    Duplicate {
        name: "duplicate",
        severity: Graded::Varies,
        checks: "A section appears more than once: an error when two copies have content, else a warning.",
        fix: "Keep one copy: merge the two \"## 6. Communication during rollback\" sections into one.",
    }
    OutOfOrder {
        name: "out_of_order",
        severity: Graded::Fixed(Severity::Warning),
        checks: "A section comes after one that the template puts after it.",
        fix: "Move \"## 2. Rollback decision matrix\" above \"## 3. Rollback by stage\".",
    }
    Table {
        name: "table",
        severity: Graded::Check(|| CheckSpec::Table {
            columns: Vec::new(),
            min_rows: 1,
        }),
        checks: "A section lacks the table its check asks for: no table, a missing column, or too few rows.",
        fix: "Add the missing column, e.g. \"| Time to decide |\", and one row per problem type.",
    }
    StageCoverage {
        name: "stage_coverage",
        severity: Graded::Check(|| CheckSpec::StageCoverage {}),
        checks: "A risky stage given with --stages has no subsection of its own.",
        fix: "Add a subsection for the stage, e.g. \"### Stage 4: Write cutover\".",
    }
    Items {
        name: "items",
        severity: Graded::Check(|| CheckSpec::Items {
            what: String::new(),
            min: None,
            max: None,
        }),
        checks: "A section has fewer or more items (subsections, bold leads or list items) than its check allows.",
        fix: "Add scenarios until there are five, e.g. \"**What if replication lag passes 10 minutes?**\".",
    }
    Checkboxes {
        name: "checkboxes",
        severity: Graded::Check(|| CheckSpec::Checkboxes { min: 1 }),
        checks: "A section has fewer task-list checkboxes than its check asks for.",
        fix: "Write each item as a checkbox: \"- [ ] Error rate back to its baseline\".",
    }
    Mentions {
        name: "mentions",
        severity: Graded::Check(|| CheckSpec::Mentions {
            all: Vec::new(),
            scope: Scope::Section,
            what: None,
        }),
        checks: "A section, or the whole plan, never mentions a phrase its check asks for.",
        fix: "State it, e.g. \"After T+4h, rollback loses the orders written since cutover.\"",
    }
    Durations {
        name: "durations",
        severity: Graded::Check(|| CheckSpec::Durations { column: None }),
        checks: "Rows or items that give no time (\"5 min\", \"T+2h\", \"within 30 minutes\").",
        fix: "Give each a time bound, e.g. \"Decide within 15 min\".",
    }
    Conditionals {
        name: "conditionals",
        severity: Graded::Check(|| CheckSpec::Conditionals {}),
        checks: "A section reads as steps, not decisions: it never says \"if …, then …\".",
        fix: "State the trigger, e.g. \"If replication lag passes 5 min, stop the cutover.\"",
    }
    Specific {
        name: "specific",
        severity: Graded::Check(|| CheckSpec::Specific { what: String::new() }),
        checks: "Items that name no stage and nothing the summary names; a warning when they are half or fewer.",
        fix: "Tie each scenario to this migration, e.g. \"What if the CDC connector drops events?\"",
    }
    Loop {
        name: "loop",
        severity: Graded::Fixed(Severity::Error),
        checks: "The model repeated itself: the same lines or word sequence over and over.",
        fix: "Delete the repeated text and write the section once.",
    }
    Repeated {
        name: "repeated",
        severity: Graded::Fixed(Severity::Error),
        checks: "A paragraph (20+ words) that another section or the preamble already holds, the same or nearly.",
        fix: "Write each section about its own subject; say a thing once, where it belongs.",
    }
    Runaway {
        name: "runaway",
        severity: Graded::Fixed(Severity::Error),
        checks: "A section many times longer than the others (see runaway_factor in template.toml).",
        fix: "Cut the section to what a reader needs during a rollback.",
    }
    AboutPrompt {
        name: "about_prompt",
        severity: Graded::Fixed(Severity::Error),
        checks: "A section talks about its task or the prompt (\"I hope this helps\") instead of the migration.",
        fix: "Delete the sentences about the task; keep what is about the migration.",
    }
    Copied {
        name: "copied",
        severity: Graded::Fixed(Severity::Error),
        checks: "A section copies the prompt's own text instead of writing for this migration.",
        fix: "Replace the copied instructions with this migration's own steps, systems and times.",
    }
    Generic {
        name: "generic",
        severity: Graded::Fixed(Severity::Error),
        checks: "The plan names nothing its summary names (a system, a product, a service).",
        fix: "Name the systems in the steps, e.g. \"Stop the MySQL-to-PostgreSQL CDC connector\".",
    }
    Judge {
        name: "judge",
        severity: Graded::Fixed(Severity::Warning),
        checks: "The second model (--judge-model) scored a rule or a section low, or could not score the plan.",
        fix: "Act on the judge's reason, e.g. give the rehearsal an owner and a pass/fail time.",
    }
    Coherence {
        name: "coherence",
        severity: Graded::Check(|| CheckSpec::PointOfNoReturn {}),
        checks: "With --parallel: a section names a stage or a point of no return the shared outline does not.",
        fix: "Use the outline's stage names and its \"T+…\" point of no return in every section.",
    }
    StaleTemplate {
        name: "stale_template",
        severity: Graded::Fixed(Severity::Warning),
        checks: "The plan was made from another version of its template (its front matter says which).",
        fix: "Regenerate the plan with rbplan ask, or let rbplan batch redo it.",
    }
    Suppression {
        name: "suppression",
        severity: Graded::Fixed(Severity::Warning),
        checks: "An rbplan-disable comment that suppresses nothing, names an unknown code, or would hide a missing section.",
        fix: "Remove the comment, or name the code of a finding that is there: <!-- rbplan-disable-next-line durations -->.",
    }
    ContextDrift {
        name: "context_drift",
        severity: Graded::Fixed(Severity::Warning),
        checks: "A context file the plan was made from (its front matter records its hash) has changed since.",
        fix: "Regenerate the plan from the current files: rerun the same rbplan ask --out or rbplan batch.",
    }
    Ungrounded {
        name: "ungrounded",
        severity: Graded::Check(|| CheckSpec::Grounding {}),
        checks: "With --context or --runbook: the plan names no table, resource, host, command or step they hold.",
        fix: "Use the context's own names, e.g. \"ALTER TABLE orders DROP COLUMN region\", \"kubectl rollout undo\".",
    }
    UngroundedStage {
        name: "ungrounded_stage",
        severity: Graded::Fixed(Severity::Warning),
        checks: "With --runbook: a stage subsection names nothing from its runbook step's name or text.",
        fix: "Say what the step does and with what: its command, table or host, e.g. \"vtctldclient SwitchTraffic\".",
    }
}

impl Code {
    /// A required section is absent: missing, or a heading with nothing under it.
    pub fn is_presence(self) -> bool {
        matches!(self, Code::Missing | Code::Empty)
    }

    /// About where sections are (twice, out of order), not what one holds.
    pub fn is_placement(self) -> bool {
        matches!(self, Code::Duplicate | Code::OutOfOrder)
    }

    /// The code's row of `CODES`.
    pub fn info(self) -> &'static CodeInfo {
        &CODES[self as usize]
    }

    /// Its name in JSON and in `[code]` labels: "out_of_order".
    pub fn as_str(self) -> &'static str {
        self.info().name
    }

    /// The severity of its findings when nothing else decides: the fixed one, or the
    /// default of the check kind that finds it. `None` when it depends on the finding.
    pub fn default_severity(self) -> Option<Severity> {
        match self.info().severity {
            Graded::Fixed(s) => Some(s),
            Graded::Check(kind) => Some(kind().default_severity()),
            Graded::Varies => None,
        }
    }
}

/// How bad a code's findings are.
#[derive(Debug, Clone, Copy)]
pub enum Graded {
    /// Always this severity.
    Fixed(Severity),
    /// The severity of the spec's check that finds it (`severity = ...` in
    /// `template.toml`), by default its kind's (`CheckSpec::default_severity`). The
    /// function gives a check of that kind.
    Check(fn() -> CheckSpec),
    /// It depends on the finding; `checks` says how.
    Varies,
}

/// What a code means, for a reader: a row of `CODES`.
#[derive(Debug)]
pub struct CodeInfo {
    pub code: Code,
    /// As serde spells it (tested).
    pub name: &'static str,
    pub severity: Graded,
    /// What it checks, in a line.
    pub checks: &'static str,
    /// An example of a fix, in a line.
    pub fix: &'static str,
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub severity: Severity,
    pub code: Code,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub section: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    pub message: String,
    /// For stage coverage: the stage that is not covered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// What set it aside, for a suppressed finding.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suppressed_by: Option<Suppressor>,
}

/// What suppressed a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Suppressor {
    /// An `rbplan-disable` comment, at this line.
    Comment { line: usize },
    /// `check --ignore`, or a code `--select` leaves out.
    Flag,
    /// `[check] ignore` or `select` in a config file, at this line.
    Config {
        file: &'static std::path::Path,
        line: usize,
    },
}

impl Suppressor {
    /// What set the finding aside, as a report says it.
    pub fn label(self) -> String {
        match self {
            Suppressor::Comment { line } => format!("rbplan-disable at line {line}"),
            Suppressor::Flag => "--select/--ignore".to_string(),
            Suppressor::Config { file, line } => format!("{}:{line}", file.display()),
        }
    }
}

impl Finding {
    pub fn new(severity: Severity, code: Code, section: Option<&str>, line: Option<usize>, message: String) -> Finding {
        Finding {
            severity,
            code,
            section: section.map(str::to_string),
            line,
            message,
            stage: None,
            suppressed_by: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_in_the_table_once_in_order() {
        // `codes!` gives each variant its row, in order: `Code::info` indexes by it.
        for (i, info) in CODES.iter().enumerate() {
            assert_eq!(info.code as usize, i, "{:?} is not at its place in CODES", info.code);
            assert_eq!(info.code.info().code, info.code);
            assert_eq!(CODES.iter().filter(|c| c.code == info.code).count(), 1);
        }
    }

    #[test]
    fn the_table_names_each_code_as_serde_does() {
        for info in CODES {
            let serde = serde_json::to_value(info.code).unwrap();
            assert_eq!(serde, serde_json::json!(info.name), "{:?}", info.code);
            assert_eq!(info.code.as_str(), info.name);
            assert_eq!(info.code.to_string(), info.name);
        }
    }

    #[test]
    fn each_code_says_what_it_checks_and_how_to_fix_it_in_a_line() {
        for info in CODES {
            for text in [info.checks, info.fix] {
                assert!(!text.is_empty() && !text.contains('\n'), "{}: {text:?}", info.name);
                assert!(text.len() <= 110, "{}: {} characters: {text}", info.name, text.len());
            }
        }
    }

    #[test]
    fn default_severities_come_from_the_spec_for_its_checks() {
        let of = |c: Code| c.default_severity();
        assert_eq!(of(Code::Missing), Some(Severity::Error));
        assert_eq!(of(Code::OutOfOrder), Some(Severity::Warning));
        assert_eq!(of(Code::Durations), Some(Severity::Warning));
        assert_eq!(of(Code::Conditionals), Some(Severity::Warning));
        assert_eq!(of(Code::Table), Some(Severity::Error));
        assert_eq!(of(Code::Duplicate), None);
    }

    /// The checks give a code with a fixed severity that severity, in every fixture plan.
    #[test]
    fn fixed_severities_are_what_the_checks_give() {
        let checker = crate::check::testing::checker();
        let example = checker.spec.example.clone().unwrap();
        let stages = crate::input::parse_stages(&example.stages);
        let m = crate::check::Migration::new(Some(stages), Some(&example.summary));
        let mut seen = std::collections::BTreeSet::new();
        let mut dirs = vec![std::path::PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/check"
        ))];
        while let Some(dir) = dirs.pop() {
            for e in std::fs::read_dir(&dir).unwrap().flatten() {
                let path = e.path();
                if path.is_dir() {
                    dirs.push(path);
                    continue;
                }
                let Ok(text) = std::fs::read_to_string(&path) else {
                    continue; // not UTF-8: a test of its own
                };
                if path.extension().is_none_or(|x| x != "md") {
                    continue;
                }
                for f in checker.check(&text, &m).1.findings {
                    if let Graded::Fixed(want) = f.code.info().severity {
                        assert_eq!(f.severity, want, "{}: {f:?}", path.display());
                        seen.insert(f.code);
                    }
                }
            }
        }
        for code in [Code::Missing, Code::Empty, Code::OutOfOrder, Code::Loop, Code::Generic] {
            assert!(seen.contains(&code), "no fixture gives {code}: {seen:?}");
        }
    }
}
