//! Compare a document with a template's spec: which required sections are found,
//! missing, empty, duplicated or out of order, the structural checks the spec declares
//! (`structure`), what the text says (`quality`: loops, runaway sections, talk about the
//! prompt, copying) and whether it is about its own migration (`specific`). The result is
//! a report with one finding per problem, each naming its section and line.

use std::sync::Arc;

use serde::Serialize;

pub mod coherence;
pub mod concerns;
pub mod finding;
pub mod grounding;
pub mod quality;
pub mod repeated;
mod restated;
pub mod specific;
pub mod structure;
pub mod suppress;

pub use finding::{Code, Finding};

use crate::markdown::{self, Matcher, Outline, WordSet};
use crate::spec::{Severity, Spec};
use crate::template::Template;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SectionState {
    Found,
    Missing,
    /// A heading with nothing under it: counts as missing.
    Empty,
}

#[derive(Debug, Clone, Serialize)]
pub struct SectionReport {
    pub id: String,
    pub number: usize,
    pub title: String,
    pub state: SectionState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// How many headings name this section (more than one is a duplicate).
    pub occurrences: usize,
    /// In a plan in its own shape: the heading of its own that covers this section.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concern: Option<concerns::Covered>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub sections: Vec<SectionReport>,
    pub findings: Vec<Finding>,
    /// Findings an `rbplan-disable` comment (or `check --ignore`) set aside: counted in every
    /// output, never in the verdict.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub suppressed: Vec<Finding>,
    /// The plan was read in its own shape: sections are its headings mapped to concerns.
    #[serde(skip)]
    pub mapped: bool,
}

impl CheckReport {
    /// Indices of required sections that are missing or empty.
    pub fn missing(&self) -> Vec<usize> {
        (0..self.sections.len())
            .filter(|&i| self.sections[i].state != SectionState::Found)
            .collect()
    }

    pub fn missing_ids(&self) -> Vec<String> {
        self.missing()
            .into_iter()
            .map(|i| self.sections[i].id.clone())
            .collect()
    }

    /// Every required section is present with content.
    pub fn complete(&self) -> bool {
        self.sections.iter().all(|s| s.state == SectionState::Found)
    }

    /// Complete, and no error finding: the plan passes the check (warnings may remain).
    pub fn passes(&self) -> bool {
        self.complete() && !self.has_errors()
    }

    pub fn found_count(&self) -> usize {
        self.sections.iter().filter(|s| s.state == SectionState::Found).count()
    }

    pub fn has_errors(&self) -> bool {
        self.findings.iter().any(|f| f.severity == Severity::Error)
    }

    /// How many of `problems_by_section`'s problems section `idx` has.
    pub fn problem_count(&self, spec: &Spec, idx: usize) -> usize {
        self.problems_by_section(spec)
            .into_iter()
            .find(|(i, _)| *i == idx)
            .map_or(0, |(_, p)| p.len())
    }

    /// Error findings (not missing/empty, not the order) of present sections, grouped by
    /// section index: what a repair round asks to be rewritten.
    pub fn problems_by_section(&self, spec: &Spec) -> Vec<(usize, Vec<String>)> {
        let mut out: Vec<(usize, Vec<String>)> = Vec::new();
        for f in &self.findings {
            // A section written twice is rewritten once; the order is the splice's to fix.
            if f.code.is_presence() || f.code == Code::OutOfOrder || f.severity != Severity::Error {
                continue;
            }
            let Some(idx) = f.section.as_deref().and_then(|id| spec.index_of(id)) else {
                continue;
            };
            if self.sections[idx].state != SectionState::Found {
                continue;
            }
            match out.iter_mut().find(|(i, _)| *i == idx) {
                Some((_, v)) => v.push(f.message.clone()),
                None => out.push((idx, vec![f.message.clone()])),
            }
        }
        // Asked for in canonical order, whatever order the checks found them in.
        out.sort_by_key(|(i, _)| *i);
        out
    }
}

/// A spec with its heading matcher, built once and reused for every document.
pub struct Checker {
    pub spec: Spec,
    pub matcher: Matcher,
    prompt: quality::PromptText,
    concerns: concerns::Concerns,
}

/// What a plan is about, as far as it is known: the risky stages it must cover and the
/// summary whose systems it must name. Made once per plan; checks run many times.
#[derive(Debug, Clone, Default)]
pub struct Migration {
    stages: Arc<Stages>,
    names: Vec<String>,
    /// With `--parallel`: what the shared outline fixed, that every section must agree on.
    agreed: Option<coherence::Agreed>,
    /// Stems of the names: with the stages' stems, what makes a scenario specific.
    name_vocab: WordSet,
    /// With context files: the names they hold, that the plan must use.
    grounding: Option<Arc<grounding::Grounding>>,
}

/// The stage names a plan must cover and the stems of their words. The same for every
/// plan of a batch whose items share their stages, so made once and shared.
#[derive(Debug, Default)]
pub struct Stages {
    names: Option<Vec<String>>,
    vocab: WordSet,
}

impl Stages {
    pub fn new(names: Option<Vec<String>>) -> Arc<Stages> {
        let vocab = specific::vocabulary(names.as_deref().unwrap_or_default());
        Arc::new(Stages { names, vocab })
    }

    /// Whether these are the stages `names`.
    pub fn are(&self, names: &[String]) -> bool {
        self.names.as_deref() == Some(names)
    }

    pub fn names(&self) -> Option<&[String]> {
        self.names.as_deref()
    }
}

impl Migration {
    pub fn new(stages: Option<Vec<String>>, summary: Option<&str>) -> Migration {
        Migration::with_stages(Stages::new(stages), summary)
    }

    /// With stages whose words are made already.
    pub fn with_stages(stages: Arc<Stages>, summary: Option<&str>) -> Migration {
        let names = summary.map(specific::names).unwrap_or_default();
        let name_vocab = specific::vocabulary(&names);
        Migration {
            stages,
            names,
            name_vocab,
            agreed: None,
            grounding: None,
        }
    }

    /// The same migration, grounded in context files (`--context`, `--runbook`).
    pub fn with_grounding(self, g: grounding::Grounding) -> Migration {
        Migration {
            grounding: Some(Arc::new(g)),
            ..self
        }
    }

    pub fn grounding(&self) -> Option<&grounding::Grounding> {
        self.grounding.as_deref()
    }

    /// The same migration, with what an outline fixed (`--parallel`).
    pub fn with_outline(&self, outline: &str) -> Migration {
        let agreed = coherence::Agreed::from_outline(outline, self.stages.names().unwrap_or_default());
        Migration {
            agreed: Some(agreed),
            ..self.clone()
        }
    }

    pub fn agreed(&self) -> Option<&coherence::Agreed> {
        self.agreed.as_ref()
    }

    /// Only the stages (no summary known).
    pub fn stages(stages: &[String]) -> Migration {
        Migration::new(Some(stages.to_vec()), None)
    }

    pub fn stage_list(&self) -> Option<&[String]> {
        self.stages.names()
    }

    /// The stages with their words, to share with another plan's migration.
    pub fn shared_stages(&self) -> &Arc<Stages> {
        &self.stages
    }

    /// The systems, products and services the summary names.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// A text names a stage or something the summary names.
    pub fn is_named_in(&self, text: &str) -> bool {
        specific::names_any(text, &self.names)
            || specific::stems(text)
                .into_iter()
                .any(|w| self.stages.vocab.contains(&w) || self.name_vocab.contains(&w))
    }
}

impl Checker {
    pub fn new(template: &Template) -> Checker {
        Checker {
            spec: template.spec.clone(),
            matcher: Matcher::new(&template.spec),
            prompt: quality::PromptText::new(&template.prompts, &template.spec),
            concerns: concerns::Concerns::new(&template.spec),
        }
    }

    /// A checker for a spec alone, with no prompt text to compare plans with.
    pub fn from_spec(spec: Spec) -> Checker {
        Checker {
            matcher: Matcher::new(&spec),
            prompt: quality::PromptText::new(&[], &spec),
            concerns: concerns::Concerns::new(&spec),
            spec,
        }
    }

    pub fn outline(&self, text: &str) -> Outline {
        markdown::outline(&markdown::parse(text), &self.matcher)
    }

    /// The headings of `text` that cover the sections the template's headings do not,
    /// with the template's own outline (`adopt`).
    pub fn concern_map(&self, text: &str) -> (Outline, Vec<(markdown::Located, concerns::By)>) {
        let doc = markdown::parse(text);
        let outline = markdown::outline(&doc, &self.matcher);
        let mapped = self.concerns.map(&doc, &outline);
        (outline, mapped)
    }

    /// Check `text` as a plan for migration `m`, by the template's headings alone.
    pub fn check(&self, text: &str, m: &Migration) -> (Outline, CheckReport) {
        self.check_with(text, m, false)
    }

    /// `check`, and with `concerns` a plan in its own shape (few of the template's
    /// headings) is read by its concerns: its own headings stand for the sections they
    /// cover, and the section checks run on them. The outline returned is the template's.
    pub fn check_with(&self, text: &str, m: &Migration, concerns: bool) -> (Outline, CheckReport) {
        let doc = markdown::parse(text);
        let outline = markdown::outline(&doc, &self.matcher);
        let n = self.spec.sections.len();
        let mapped = if concerns && concerns::Concerns::applies(&outline, n) {
            Some(self.concerns.map(&doc, &outline))
        } else {
            None
        };
        // The outline with the mapped concerns added; the outline itself when none are.
        let full = match &mapped {
            None => std::borrow::Cow::Borrowed(&outline),
            Some(m) => {
                let mut full = outline.clone();
                full.found.extend(m.iter().map(|(l, _)| l.clone()));
                std::borrow::Cow::Owned(full)
            }
        };
        let mut sections = Vec::with_capacity(n);
        let mut findings = Vec::new();
        for i in 0..n {
            let (mut section, found) = self.presence(i, &full);
            section.concern = mapped
                .iter()
                .flatten()
                .find(|(l, _)| l.section == i)
                .map(|(l, by)| concerns::Covered {
                    heading: l.heading.clone(),
                    line: l.line,
                    by: *by,
                });
            sections.push(section);
            findings.extend(found);
        }
        findings.extend(order_findings(&self.spec, &outline));
        findings.extend(structure::run(&self.spec, &doc, &full, m));
        findings.extend(quality::run(&self.spec, &self.prompt, &doc, &full));
        if let Some(g) = m.grounding() {
            findings.extend(grounding::run(&self.spec, &doc, &full, g));
        }
        if self.spec.quality.names && !m.names.is_empty() && !specific::names_any(&doc.text, &m.names) {
            let shown: Vec<String> = m.names.iter().map(|n| format!("\"{n}\"")).collect();
            let msg = format!(
                "the plan never names what its migration is about ({}): it reads as a plan for another migration, or for none",
                shown.join(", ")
            );
            findings.push(Finding::new(Severity::Error, Code::Generic, None, Some(1), msg));
        }
        let s = suppress::apply(&doc, findings);
        let report = CheckReport {
            sections,
            findings: s.kept,
            suppressed: s.suppressed,
            mapped: mapped.is_some(),
        };
        (outline, report)
    }

    /// Whether section `i` is there, with content, and only once.
    fn presence(&self, i: usize, outline: &Outline) -> (SectionReport, Vec<Finding>) {
        let s = &self.spec.sections[i];
        let occurrences = outline.found.iter().filter(|l| l.section == i).count();
        let primary = outline.primary(i);
        let line = primary.map(|l| l.line);
        let state = match primary {
            None => SectionState::Missing,
            Some(l) if l.empty => SectionState::Empty,
            Some(_) => SectionState::Found,
        };
        let heading = self.spec.heading(i);
        let finding = |severity, code, line, message| Finding::new(severity, code, Some(&s.id), line, message);
        let mut findings = Vec::new();
        match state {
            SectionState::Missing => findings.push(finding(
                Severity::Error,
                Code::Missing,
                None,
                format!("section \"{heading}\" is missing"),
            )),
            SectionState::Empty => findings.push(finding(
                Severity::Error,
                Code::Empty,
                line,
                format!("section \"{heading}\" has a heading but nothing under it"),
            )),
            SectionState::Found => {}
        }
        if occurrences > 1 {
            let copies: Vec<&markdown::Located> = outline.found.iter().filter(|l| l.section == i).collect();
            let lines: Vec<String> = copies.iter().map(|l| l.line.to_string()).collect();
            // Written twice is an error (which copy holds?); a stray empty heading is not.
            let written = copies.iter().filter(|l| !l.empty).count();
            let lines = lines.join(", ");
            let (severity, msg) = if written > 1 {
                let msg = format!("section \"{heading}\" is written out {written} times (lines {lines}); keep one");
                (Severity::Error, msg)
            } else {
                let msg = format!("section \"{heading}\" appears {occurrences} times (lines {lines})");
                (Severity::Warning, msg)
            };
            findings.push(finding(severity, Code::Duplicate, line, msg));
        }
        let report = SectionReport {
            id: s.id.clone(),
            number: i + 1,
            title: s.title.clone(),
            state,
            line,
            occurrences,
            concern: None,
        };
        (report, findings)
    }
}

/// A section that comes after one with a higher number is out of order (an empty one is
/// reported as empty, not also as out of order).
fn order_findings(spec: &Spec, outline: &Outline) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut prev: Option<(usize, usize)> = None; // (highest section index so far, its line)
    let primaries = outline
        .found
        .iter()
        .filter(|l| !l.empty && outline.primary(l.section).is_some_and(|p| p.start == l.start));
    for l in primaries {
        match prev {
            Some((hi, hi_line)) if l.section < hi => out.push(Finding {
                severity: Severity::Warning,
                code: Code::OutOfOrder,
                section: Some(spec.sections[l.section].id.clone()),
                line: Some(l.line),
                message: format!(
                    "section \"{}\" comes after \"{}\" (line {hi_line}); the template puts it before",
                    spec.heading(l.section),
                    spec.heading(hi)
                ),
                stage: None,
                suppressed_by: None,
            }),
            _ => prev = Some((l.section, l.line)),
        }
    }
    out
}

/// What tests across the crate check against: the built-in template's checker and the
/// authored plan (fixtures/authored/plan.md), which passes every check.
#[cfg(test)]
pub(crate) mod testing {
    pub fn checker() -> super::Checker {
        super::Checker::new(&crate::template::Template::builtin())
    }

    pub fn authored() -> String {
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/authored/plan.md")).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testing::checker;

    #[test]
    fn missing_empty_duplicate_and_order() {
        let md = "## 1. Rollback philosophy\n\ntext\n\n## 3. Rollback by stage\n\nsteps\n\n## 2. Rollback decision matrix\n\nrows\n\n## 4. Specific rollback procedures by component\n\n## 1. Rollback philosophy\n\nagain\n";
        let (_, r) = checker().check(md, &Migration::default());
        let state = |id: &str| r.sections.iter().find(|s| s.id == id).unwrap().state;
        assert_eq!(state("philosophy"), SectionState::Found);
        assert_eq!(state("by-component"), SectionState::Empty);
        assert_eq!(state("rehearsal"), SectionState::Missing);
        assert_eq!(r.missing().len(), 7);
        let codes: Vec<(&str, Option<&str>)> = r
            .findings
            .iter()
            .map(|f| (f.code.as_str(), f.section.as_deref()))
            .collect();
        assert!(codes.contains(&("duplicate", Some("philosophy"))));
        assert!(codes.contains(&("out_of_order", Some("decision-matrix"))));
        assert!(codes.contains(&("empty", Some("by-component"))));
        let empty = r.findings.iter().find(|f| f.code == Code::Empty).unwrap();
        assert_eq!(empty.line, Some(13));
    }
}

#[cfg(test)]
mod coherence_tests {
    use super::*;

    #[test]
    fn a_stage_the_outline_does_not_name_is_a_coherence_finding() {
        let c = testing::checker();
        let plan = testing::authored();
        let stages: Vec<String> = [
            "Schema conversion and backfill",
            "CDC dual-running",
            "Read cutover",
            "Write cutover",
            "Decommission MySQL",
        ]
        .map(String::from)
        .to_vec();
        let outline = "**Stages:**\n- Schema conversion and backfill\n- CDC dual-running\n- Read cutover\n- Write cutover\n- Decommission MySQL\n\n**Point of no return:** After T+2h.\n";
        let m = Migration::new(Some(stages), None).with_outline(outline);
        let codes = |p: &str| -> Vec<Code> { c.check(p, &m).1.findings.iter().map(|f| f.code).collect() };
        assert!(
            !codes(&plan).contains(&Code::Coherence),
            "the authored plan agrees with its outline"
        );
        // A stage's own numbered steps are not stages.
        let steps = plan.replace(
            "### Stage 3: Read cutover\n",
            "### Stage 3: Read cutover\n\n#### Step 1: Pause the reporting jobs\n\nPause them.\n\n#### Phase 2: Flip the flag\n\nFlip it.\n",
        );
        assert!(
            steps.contains("Step 1: Pause") && !codes(&steps).contains(&Code::Coherence),
            "{:?}",
            codes(&steps)
        );
        let renamed = plan.replace("### Stage 3: Read cutover", "### Stage 3: Blue-green switch");
        let found = c.check(&renamed, &m).1.findings;
        let f = found
            .iter()
            .find(|f| f.code == Code::Coherence)
            .expect("a coherence finding");
        assert!(f.message.contains("\"Blue-green switch\""), "{}", f.message);
        // Without an outline, no coherence check runs.
        let plain = Migration::new(m.stage_list().map(<[String]>::to_vec), None);
        assert!(
            !c.check(&renamed, &plain)
                .1
                .findings
                .iter()
                .any(|f| f.code == Code::Coherence)
        );
    }
}
