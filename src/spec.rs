//! The section spec of a template: which sections a plan must have, in canonical order,
//! how each may be titled, and the structural checks each must pass. Loaded from
//! `template.toml` in a prompts folder; nothing here is specific to rollback plans.

use std::fmt;

use serde::{Deserialize, de};

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
    /// Patterns (regular expressions, any case) of a prose line that restates the
    /// prompt's instructions ("It must contain:") instead of following them.
    pub restated: Patterns,
}

/// The `restated` patterns shipped with the rollback-plan template.
pub const RESTATED: [&str; 5] = [
    r"(?:^|[.!?] )(?:the |this |these )?(?:rollback )?(?:plan|section|answer|response|content|output)s?(?: for this migration)? (?:should|must) (?:only )?(?:contain|include|have|agree with)(?::| the following| the question| at least \d+ sections?| the first \d+| it\b| exactly\b)",
    r"^it (?:must|should) (?:contain|include|have)\b[^.]*(?::|\d+ ?- ?\d+)",
    r"\bdo not write (?:its|the) heading\b|\bdo not write any other sections?\b",
    r"\b(?:write|writing) only (?:one|this) section\b",
    r"^when you are ready, write\b",
];

/// Regular expressions matched together, in any case, as one set.
#[derive(Debug, Clone)]
pub struct Patterns {
    pub set: regex::bytes::RegexSet,
}

impl Patterns {
    pub fn new<I: IntoIterator<Item = S>, S: AsRef<str>>(pats: I) -> Result<Patterns, regex::Error> {
        let set = regex::bytes::RegexSetBuilder::new(pats)
            .case_insensitive(true)
            .unicode(false)
            .build()?;
        Ok(Patterns { set })
    }

    /// `RESTATED`, compiled once per process.
    fn shipped() -> Patterns {
        static SHIPPED: std::sync::LazyLock<Patterns> =
            std::sync::LazyLock::new(|| Patterns::new(RESTATED).expect("the shipped patterns compile"));
        SHIPPED.clone()
    }
}

impl<'de> Deserialize<'de> for Patterns {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let pats = Vec::<String>::deserialize(d)?;
        if pats == RESTATED {
            return Ok(Patterns::shipped());
        }
        Patterns::new(&pats).map_err(de::Error::custom)
    }
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
            restated: Patterns::shipped(),
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
    pub checks: Checks,
    /// How a plan in its own shape says it covers this section (`check`, `adopt`).
    #[serde(default)]
    pub concern: Concern,
}

/// A section as a concern: the headings a person's plan gives it, and phrases in the text
/// under a heading that say the heading covers it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Concern {
    /// Headings that name the concern; each alias's words must all be in the heading.
    pub aliases: Vec<String>,
    /// Phrases (any case) that, found under a heading, show it covers the concern.
    pub cues: Vec<String>,
    /// Distinct cues a heading's own text needs to cover the concern without an alias.
    pub min_cues: Option<usize>,
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

/// A section's structural checks, in the order declared. Each is one table in
/// `template.toml`, `{ kind = "table", columns = [...], severity = "warning" }`:
/// `severity` is the one field every kind takes, so it is read here, once, and the rest of
/// the table as a `CheckSpec`, which refuses any field its kind does not know.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct Checks(Vec<Declared>);

/// One check as declared: what it looks for, and its severity if the table gives one.
#[derive(Debug, Clone)]
struct Declared {
    spec: CheckSpec,
    severity: Option<Severity>,
}

impl Checks {
    pub fn iter(&self) -> impl Iterator<Item = &CheckSpec> {
        self.0.iter().map(|c| &c.spec)
    }

    /// Each check with the severity of its findings: the declared one, else its kind's default.
    pub fn with_severity(&self) -> impl Iterator<Item = (&CheckSpec, Severity)> {
        self.0
            .iter()
            .map(|c| (&c.spec, c.severity.unwrap_or_else(|| c.spec.default_severity())))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'de> Deserialize<'de> for Declared {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(DeclaredVisitor)
    }
}

/// Reads a check's table: `severity` is set aside as the keys go by, and every other key
/// goes to `CheckSpec`'s own reader, so errors keep the place the format gives them.
struct DeclaredVisitor;

impl<'de> de::Visitor<'de> for DeclaredVisitor {
    type Value = Declared;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a check: a table with a `kind`")
    }

    fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Declared, A::Error> {
        let mut severity = None;
        let rest = WithoutSeverity {
            map,
            severity: &mut severity,
        };
        match CheckSpec::deserialize(de::value::MapAccessDeserializer::new(rest)) {
            Ok(spec) => Ok(Declared { spec, severity }),
            Err(CheckError::Format(e)) => Err(e),
            Err(CheckError::Check(msg)) => Err(de::Error::custom(msg)),
        }
    }
}

/// A check's table without its `severity`, which goes into `severity` instead.
struct WithoutSeverity<'a, A> {
    map: A,
    severity: &'a mut Option<Severity>,
}

impl<'de, A: de::MapAccess<'de>> de::MapAccess<'de> for WithoutSeverity<'_, A> {
    type Error = CheckError<A::Error>;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Self::Error> {
        use de::IntoDeserializer;
        while let Some(key) = self.map.next_key::<String>().map_err(CheckError::Format)? {
            if key != "severity" {
                return seed.deserialize(key.into_deserializer()).map(Some);
            }
            *self.severity = Some(self.map.next_value().map_err(CheckError::Format)?);
        }
        Ok(None)
    }

    fn next_value_seed<V: de::DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Self::Error> {
        self.map.next_value_seed(seed).map_err(CheckError::Format)
    }
}

/// An error reading a check: the format's own (it knows where it is), or one about the
/// check's fields, whose list of known fields names `severity` too.
#[derive(Debug)]
enum CheckError<E> {
    Format(E),
    Check(String),
}

impl<E: fmt::Display> fmt::Display for CheckError<E> {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            CheckError::Format(e) => e.fmt(f),
            CheckError::Check(msg) => f.write_str(msg),
        }
    }
}

impl<E: de::Error> std::error::Error for CheckError<E> {}

impl<E: de::Error> de::Error for CheckError<E> {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        CheckError::Check(msg.to_string())
    }

    /// As serde words it, with `severity` among the fields every kind knows.
    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        let known: Vec<String> = expected.iter().chain(&["severity"]).map(|f| format!("`{f}`")).collect();
        let list = match known.as_slice() {
            [one] => one.clone(),
            [a, b] => format!("{a} or {b}"),
            all => format!("one of {}", all.join(", ")),
        };
        CheckError::Check(format!("unknown field `{field}`, expected {list}"))
    }
}

/// What a structural check on a section looks for. Alternatives inside one string are
/// separated by `|`. A new check is a variant here, a `Code` in `check/finding.rs` and a
/// function in `check/structure/checks.rs`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum CheckSpec {
    /// A table whose header has a column for each entry of `columns`, with at least `min_rows` rows.
    Table {
        columns: Vec<String>,
        #[serde(default = "one")]
        min_rows: usize,
    },
    /// Every risky stage from the input has a subsection (a heading inside this section).
    StageCoverage {},
    /// The section lists between `min` and `max` items (subheadings, else list items or bold leads).
    Items {
        what: String,
        min: Option<usize>,
        max: Option<usize>,
    },
    /// At least `min` task-list checkboxes (`- [ ]`).
    Checkboxes {
        #[serde(default = "one")]
        min: usize,
    },
    /// Each row of a table (`column` names the column, alternatives split by `|`), or
    /// without `column` each item of the section (subsection, bold lead, list item),
    /// carries a duration ("5 min", "T+2h", "hourly", "immediately").
    Durations {
        #[serde(default)]
        column: Option<String>,
    },
    /// At least half of the section's items read as a decision: "if", "when", "unless"...
    Conditionals {},
    /// Each item names a stage or something the summary names (checked when both the
    /// stages and the summary are known). Items that do not are listed: a warning, or `severity` when they are
    /// more than half.
    Specific { what: String },
    /// With `--parallel`: the section's point of no return ("T+…") is the outline's.
    PointOfNoReturn {},
    /// With context files (`--context`, `--runbook`): the plan names something they hold
    /// (a table, resource, workload, host, command or step). Checked on the whole plan; its
    /// findings go to this section.
    Grounding {},
    /// Each entry of `all` is mentioned (case-insensitive phrase) in the section or the document.
    Mentions {
        all: Vec<String>,
        #[serde(default)]
        scope: Scope,
        /// How to name what is missing in a finding, e.g. "a point of no return".
        #[serde(default)]
        what: Option<String>,
    },
}

fn one() -> usize {
    1
}

impl CheckSpec {
    /// The severity of a check that declares none: the style checks (time bounds,
    /// decisions) warn, the others are errors.
    pub fn default_severity(&self) -> Severity {
        match self {
            CheckSpec::Durations { .. } | CheckSpec::Conditionals {} => Severity::Warning,
            CheckSpec::Table { .. }
            | CheckSpec::StageCoverage {}
            | CheckSpec::Items { .. }
            | CheckSpec::Checkboxes { .. }
            | CheckSpec::Specific { .. }
            | CheckSpec::PointOfNoReturn {}
            | CheckSpec::Grounding {}
            | CheckSpec::Mentions { .. } => Severity::Error,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A spec of one section with these checks, which start on line 7.
    fn spec_text(checks: &str) -> String {
        format!(
            "name = 'x'\nfiles = {{ user = 'u.md' }}\ninputs = {{ summary = 's', stages = 't' }}\n[[sections]]\nid = 'a'\ntitle = 'A'\n{checks}"
        )
    }

    fn spec(checks: &str) -> Result<Spec, toml::de::Error> {
        toml::from_str(&spec_text(checks))
    }

    /// The built-in template's spec.
    fn shipped() -> Spec {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/prompts/rollback-plan/template.toml");
        toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    /// Each check of the built-in template as (section, kind, severity).
    fn checks_of(spec: &Spec) -> Vec<(String, String, Severity)> {
        let mut out = Vec::new();
        for s in &spec.sections {
            for (c, severity) in s.checks.with_severity() {
                let kind = format!("{c:?}");
                let kind = kind.split([' ', '{']).next().unwrap().to_string();
                out.push((s.id.clone(), kind, severity));
            }
        }
        out
    }

    #[test]
    fn every_check_of_the_template_reads_with_its_severity() {
        let spec = shipped();
        let want = |id: &str, kind: &str, sev| (id.to_string(), kind.to_string(), sev);
        use Severity::{Error, Warning};
        assert_eq!(
            checks_of(&spec),
            [
                want("decision-matrix", "Table", Error),
                want("decision-matrix", "Durations", Warning),
                want("by-stage", "StageCoverage", Error),
                want("by-stage", "Durations", Warning),
                want("by-stage", "Conditionals", Warning),
                want("by-component", "Grounding", Error),
                want("communication", "Mentions", Warning),
                want("checklist", "Checkboxes", Error),
                want("what-if", "Items", Error),
                want("what-if", "Specific", Error),
                want("hard-truth", "Mentions", Error),
                want("hard-truth", "PointOfNoReturn", Error),
            ]
        );
        // The fields, as declared.
        let matrix: Vec<&CheckSpec> = spec.sections[1].checks.iter().collect();
        assert!(
            matches!(matrix[0], CheckSpec::Table { columns, min_rows: 4 } if columns.len() == 4),
            "{matrix:?}"
        );
        assert!(matches!(matrix[1], CheckSpec::Durations { column: Some(c) } if c.starts_with("Time to decide|")));
        let what_if: Vec<&CheckSpec> = spec.sections[8].checks.iter().collect();
        assert!(matches!(
            what_if[0],
            CheckSpec::Items { what, min: Some(5), max: Some(10) } if what == "scenarios"
        ));
        let truth: Vec<&CheckSpec> = spec.sections[9].checks.iter().collect();
        assert!(matches!(
            truth[0],
            CheckSpec::Mentions { scope: Scope::Document, what: Some(_), all } if all.len() == 1
        ));
        assert!(spec.sections[0].checks.is_empty());
    }

    #[test]
    fn the_template_restates_the_shipped_patterns_and_a_bad_one_names_its_line() {
        let spec = shipped();
        let compiled = Patterns::new(RESTATED).unwrap();
        assert_eq!(spec.quality.restated.set.patterns(), compiled.set.patterns());
        let bad = format!("{}\n[quality]\nrestated = ['(unclosed']\n", spec_text(""));
        let e = toml::from_str::<Spec>(&bad).unwrap_err().to_string();
        assert!(e.contains("line 9") && e.contains("unclosed"), "{e}");
    }

    #[test]
    fn a_declared_severity_overrides_the_default_of_any_kind() {
        let s = spec("checks = [{ kind = 'conditionals', severity = 'error' }, { severity = 'warning', kind = 'table', columns = ['a'] }, { kind = 'checkboxes' }]").unwrap();
        let got: Vec<Severity> = s.sections[0].checks.with_severity().map(|(_, sev)| sev).collect();
        assert_eq!(got, [Severity::Error, Severity::Warning, Severity::Error]);
    }

    /// A field a check's kind does not know is refused, with the same words and place as
    /// when every kind declared `severity` itself.
    #[test]
    fn an_unknown_field_in_a_check_is_refused() {
        let cases = [
            (
                "[[sections.checks]]\nkind = 'table'\ncolumns = ['x']\nbogus = 1\n",
                "unknown field `bogus`, expected one of `columns`, `min_rows`, `severity`",
            ),
            (
                "checks = [{ kind = 'stage_coverage', bogus = 1 }]",
                "unknown field `bogus`, expected `severity`",
            ),
            (
                "checks = [{ kind = 'durations', severity = 'warning', colum = 'x' }]",
                "unknown field `colum`, expected `column` or `severity`",
            ),
            (
                "checks = [{ kind = 'conditionals', severity = 'fatal' }]",
                "unknown variant `fatal`, expected `warning` or `error`",
            ),
            (
                "checks = [{ kind = 'nope' }]",
                "unknown variant `nope`, expected one of `table`, `stage_coverage`, `items`, `checkboxes`, `durations`, `conditionals`, `specific`, `point_of_no_return`, `grounding`, `mentions`",
            ),
            ("checks = [{ severity = 'error' }]", "missing field `kind`"),
        ];
        for (checks, want) in cases {
            let e = spec(checks).unwrap_err();
            assert_eq!(e.message(), want, "{checks}");
            assert!(e.span().is_some(), "{checks}: no place");
        }
        // The place: the check's table (line 7), or the value that is wrong.
        let line = |checks: &str| {
            let e = spec(checks).unwrap_err();
            let text = spec_text(checks);
            crate::util::line_of(&text, e.span().unwrap().start)
        };
        assert_eq!(
            line("[[sections.checks]]\nkind = 'table'\ncolumns = ['x']\nbogus = 1\n"),
            7
        );
        assert_eq!(line("[[sections.checks]]\nkind = 'nope'\n"), 8);
        assert_eq!(
            line("[[sections.checks]]\nkind = 'items'\nwhat = 'x'\nseverity = 'fatal'\n"),
            10
        );
    }
}
