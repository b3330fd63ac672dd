//! The section spec of a template: which sections a plan must have, in canonical order,
//! how each may be titled, and the structural checks each must pass. Loaded from
//! `template.toml` in a prompts folder; nothing here is specific to rollback plans.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub files: Files,
    pub inputs: InputNames,
    #[serde(default)]
    pub example: Option<Example>,
    /// Checks of the whole plan and of every section, beside each section's own checks.
    #[serde(default)]
    pub quality: Quality,
    pub sections: Vec<SectionSpec>,
}

/// What makes a plan degenerate or generic whatever its sections say: loops, a runaway
/// section, text about the prompt instead of the migration, text copied from the prompt,
/// a plan that names nothing of its own migration. Each can be turned off.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Quality {
    /// Repeated lines or word sequences.
    pub loops: bool,
    /// A section many times longer than the others (and over `runaway_chars`).
    pub runaway: bool,
    pub runaway_factor: f64,
    pub runaway_chars: usize,
    /// The share of a section's four-word sequences found in the prompt files above which
    /// it counts as copied from them (0 turns the check off).
    pub copied: f64,
    /// The plan must name something the migration's summary names (a system, a product,
    /// a service), when the summary is known.
    pub names: bool,
    /// Phrases that mean a section talks to the reader about its task instead of about
    /// the migration ("i hope this helps"). Matched in any case.
    pub meta: Vec<String>,
}

impl Default for Quality {
    fn default() -> Self {
        Quality {
            loops: true,
            runaway: true,
            runaway_factor: 6.0,
            runaway_chars: 16_000,
            copied: 0.6,
            names: true,
            meta: [
                "i hope this helps",
                "as an ai",
                "as a language model",
                "i'm sorry, but",
                "i cannot help",
                "here is the section",
                "here's the section",
                "the user's message",
                "the user wants",
                "you are asked to",
                "you asked me to",
                "how can i assist",
                "how can i help",
                "i'm ready to help",
                "i'd be happy to help",
            ]
            .map(String::from)
            .to_vec(),
        }
    }
}

/// Prompt files, relative to the folder holding `template.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Files {
    pub system: Option<String>,
    pub user: String,
    pub repair: Option<String>,
    pub section: Option<String>,
    /// Asks a second model to score a plan (`--judge-model`).
    pub judge: Option<String>,
    /// Asks to rewrite named sections following a reviewer's note (`rbplan revise`).
    pub revise: Option<String>,
    /// Asks for the outline every section must agree on (`--parallel`).
    pub outline: Option<String>,
}

/// The template variable names that `--summary` and `--stages` bind to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputNames {
    pub summary: String,
    pub stages: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Example {
    pub summary: String,
    pub stages: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SectionSpec {
    pub id: String,
    pub title: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    /// What the section must contain, in a sentence; used when asking for it alone.
    #[serde(default)]
    pub guidance: Option<String>,
    #[serde(default)]
    pub checks: Vec<CheckSpec>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    #[default]
    Error,
}

/// Where a `mentions` check looks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    #[default]
    Section,
    Document,
}

/// A structural check on a section. Alternatives inside one string are separated by `|`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum CheckSpec {
    /// A table whose header has a column for each entry of `columns`, with at least `min_rows` rows.
    Table {
        columns: Vec<String>,
        #[serde(default = "one")]
        min_rows: usize,
        #[serde(default)]
        severity: Severity,
    },
    /// Every risky stage from the input has a subsection (a heading inside this section).
    StageCoverage {
        #[serde(default)]
        severity: Severity,
    },
    /// The section lists between `min` and `max` items (subheadings, else list items or bold leads).
    Items {
        what: String,
        min: Option<usize>,
        max: Option<usize>,
        #[serde(default)]
        severity: Severity,
    },
    /// At least `min` task-list checkboxes (`- [ ]`).
    Checkboxes {
        #[serde(default = "one")]
        min: usize,
        #[serde(default)]
        severity: Severity,
    },
    /// Each row of a table (`column` names the column, alternatives split by `|`), or
    /// without `column` each item of the section (subsection, bold lead, list item),
    /// carries a duration ("5 min", "T+2h", "hourly", "immediately").
    Durations {
        #[serde(default)]
        column: Option<String>,
        #[serde(default = "warning")]
        severity: Severity,
    },
    /// At least half of the section's items read as a decision: "if", "when", "unless"...
    Conditionals {
        #[serde(default = "warning")]
        severity: Severity,
    },
    /// Each item names a stage or something the summary names (checked when both the
    /// stages and the summary are known). Items that do not are listed: a warning, or `severity` when they are
    /// more than half.
    Specific {
        what: String,
        #[serde(default)]
        severity: Severity,
    },
    /// With `--parallel`: the section's point of no return ("T+…") is the outline's.
    PointOfNoReturn {
        #[serde(default)]
        severity: Severity,
    },
    /// Each entry of `all` is mentioned (case-insensitive phrase) in the section or the document.
    Mentions {
        all: Vec<String>,
        #[serde(default)]
        scope: Scope,
        /// How to name what is missing in a finding, e.g. "a point of no return".
        #[serde(default)]
        what: Option<String>,
        #[serde(default)]
        severity: Severity,
    },
}

fn one() -> usize {
    1
}

fn warning() -> Severity {
    Severity::Warning
}

impl CheckSpec {
    pub fn severity(&self) -> Severity {
        match self {
            CheckSpec::Table { severity, .. }
            | CheckSpec::StageCoverage { severity }
            | CheckSpec::Items { severity, .. }
            | CheckSpec::Checkboxes { severity, .. }
            | CheckSpec::Durations { severity, .. }
            | CheckSpec::Conditionals { severity }
            | CheckSpec::Specific { severity, .. }
            | CheckSpec::PointOfNoReturn { severity }
            | CheckSpec::Mentions { severity, .. } => *severity,
        }
    }
}

impl Spec {
    /// Checks what serde cannot: at least one section, unique ids and non-empty titles.
    pub fn validate(&self) -> Result<(), String> {
        if self.sections.is_empty() {
            return Err("the spec lists no [[sections]]".into());
        }
        let mut seen = std::collections::HashSet::new();
        for s in &self.sections {
            if s.id.trim().is_empty() || s.title.trim().is_empty() {
                return Err("every section needs a non-empty id and title".into());
            }
            if !seen.insert(s.id.as_str()) {
                return Err(format!("section id {:?} appears twice", s.id));
            }
        }
        if self.inputs.summary == self.inputs.stages {
            return Err("inputs.summary and inputs.stages must name different variables".into());
        }
        Ok(())
    }

    /// The heading a plan should use for section `idx`: "3. Rollback by stage".
    pub fn heading(&self, idx: usize) -> String {
        format!("{}. {}", idx + 1, self.sections[idx].title)
    }

    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.sections.iter().position(|s| s.id == id)
    }
}
