//! What a check found: one finding per problem, naming its section and line.

use serde::Serialize;

use crate::spec::Severity;

/// What kind of problem a finding is. Spelled in snake case in JSON and in `[code]` labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Code {
    /// A required section has no heading.
    Missing,
    /// A required section has a heading and nothing under it.
    Empty,
    Duplicate,
    OutOfOrder,
    Table,
    StageCoverage,
    Items,
    Checkboxes,
    Mentions,
    Durations,
    Conditionals,
    /// Items (scenarios) that name neither a stage nor anything the summary names.
    Specific,
    /// A repetition loop: a word sequence or lines repeated over and over.
    Loop,
    /// A section many times longer than the others.
    Runaway,
    /// A section that talks about its task or the prompt instead of the migration.
    AboutPrompt,
    /// A section that copies the prompt's own text.
    Copied,
    /// A plan that names nothing its migration's summary names.
    Generic,
    /// A judge model's low score (`--judge-model`), or its failure.
    Judge,
    /// With `--parallel`: a section disagrees with the shared outline (a stage it does not
    /// name, another point of no return).
    Coherence,
    StaleTemplate,
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

    pub fn as_str(self) -> &'static str {
        match self {
            Code::Missing => "missing",
            Code::Empty => "empty",
            Code::Duplicate => "duplicate",
            Code::OutOfOrder => "out_of_order",
            Code::Table => "table",
            Code::StageCoverage => "stage_coverage",
            Code::Items => "items",
            Code::Checkboxes => "checkboxes",
            Code::Mentions => "mentions",
            Code::Durations => "durations",
            Code::Conditionals => "conditionals",
            Code::Specific => "specific",
            Code::Loop => "loop",
            Code::Runaway => "runaway",
            Code::AboutPrompt => "about_prompt",
            Code::Copied => "copied",
            Code::Generic => "generic",
            Code::Judge => "judge",
            Code::Coherence => "coherence",
            Code::StaleTemplate => "stale_template",
        }
    }
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
        }
    }
}
