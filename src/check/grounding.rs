//! Is a plan grounded in the context it was given? The concrete names the context files
//! hold (SQL tables and columns, Terraform resources and modules, Kubernetes workloads,
//! hosts, commands in code blocks, literals in code spans, the runbook's step names) are
//! extracted once; a plan that names none of them is `ungrounded`, and a stage subsection
//! that names nothing of its runbook step is `ungrounded_stage`.

use super::{Code, Finding};

mod extract;

use crate::markdown::{self, Doc, Outline};
use crate::spec::{CheckSpec, Severity, Spec};
use extract::{extract, generic};

/// What kind of thing a name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Table,
    Column,
    Resource,
    Workload,
    Host,
    Command,
    Literal,
    Step,
}

/// One concrete name from the context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name {
    pub kind: Kind,
    /// Lowercase, spaces collapsed: what is looked for.
    pub key: String,
    /// For a qualified name (`schema.table`, `type.name`): the last part, looked for too.
    pub short: Option<String>,
}

/// A runbook step: its name and the names its text holds.
#[derive(Debug, Clone)]
struct StepNames {
    name: String,
    /// Significant words of the name, stemmed.
    words: Vec<String>,
    names: Vec<Name>,
}

/// A context with fewer names says too little: a plan may rightly leave out its one table.
const MIN_NAMES: usize = 2;

/// The context's names, made once per plan input.
#[derive(Debug, Clone, Default)]
pub struct Grounding {
    names: Vec<Name>,
    steps: Vec<StepNames>,
}

impl Grounding {
    /// From the context files (path, text) and the runbook's steps (name, text).
    pub fn new(files: &[(String, String)], steps: &[(String, String)]) -> Grounding {
        let mut names = Vec::new();
        for (path, text) in files {
            for n in extract(path, text) {
                push(&mut names, n);
            }
        }
        let steps: Vec<StepNames> = steps
            .iter()
            .map(|(name, text)| StepNames {
                name: name.clone(),
                words: significant(name),
                names: extract("step.md", text),
            })
            .collect();
        for s in &steps {
            if let Some(n) = step_name(&s.name) {
                push(&mut names, n);
            }
        }
        Grounding { names, steps }
    }

    pub fn names(&self) -> &[Name] {
        &self.names
    }

    /// The names `plan` mentions.
    pub fn matched(&self, plan: &str) -> Vec<&Name> {
        let text = Text::new(plan);
        self.names.iter().filter(|n| text.names(n)).collect()
    }

    /// Why `plan` reads as ungrounded: it names none of the context's names (a context
    /// with fewer than `MIN_NAMES` judges nothing).
    pub fn ungrounded(&self, plan: &str) -> Option<String> {
        if self.names.len() < MIN_NAMES || !self.matched(plan).is_empty() {
            return None;
        }
        Some(format!(
            "the plan names nothing from its context files ({} names, e.g. {}): write the procedures with the context's own tables, resources, workloads, hosts, commands and steps",
            self.names.len(),
            self.sample()
        ))
    }

    /// Up to six names, one of each kind in turn.
    fn sample(&self) -> String {
        let mut kinds: Vec<Kind> = self.names.iter().map(|n| n.kind).collect();
        kinds.sort();
        kinds.dedup();
        let mut shown: Vec<String> = Vec::new();
        for round in 0..6 {
            for k in &kinds {
                if let Some(n) = self.names.iter().filter(|n| n.kind == *k).nth(round)
                    && shown.len() < 6
                {
                    shown.push(format!("\"{}\"", n.key));
                }
            }
        }
        shown.join(", ")
    }

    /// The step a stage subsection's title stands for: more than half of the step's
    /// significant words are in the title.
    fn step_of(&self, title: &str) -> Option<&StepNames> {
        let have = significant(title);
        self.steps
            .iter()
            .filter(|s| !s.words.is_empty())
            .map(|s| (s, s.words.iter().filter(|w| have.contains(w)).count()))
            .filter(|(s, n)| *n > s.words.len() / 2)
            .max_by_key(|(_, n)| *n)
            .map(|(s, _)| s)
    }

    /// Stage subsections (title, body, line) whose body names nothing of their step.
    pub fn ungrounded_stages(&self, subsections: &[(String, String, usize)]) -> Vec<(usize, String)> {
        let mut out = Vec::new();
        for (title, body, line) in subsections {
            let Some(step) = self.step_of(title) else { continue };
            let text = Text::new(body);
            let words = significant(body);
            if step.names.iter().any(|n| text.names(n)) || step.words.iter().any(|w| words.contains(w)) {
                continue;
            }
            let msg = format!(
                "stage \"{title}\" names nothing from its runbook step \"{}\": say what the step does and with what",
                step.name
            );
            out.push((*line, msg));
        }
        out
    }
}

fn push(names: &mut Vec<Name>, n: Name) {
    if !names.iter().any(|m| m.key == n.key) {
        names.push(n);
    }
}

/// The findings for `m`'s grounding: `ungrounded` on the section that declares a
/// `grounding` check, `ungrounded_stage` in the section that declares `stage_coverage`.
pub fn run(spec: &Spec, doc: &Doc, outline: &Outline, g: &Grounding) -> Vec<Finding> {
    let mut out = Vec::new();
    let declared = |want: fn(&CheckSpec) -> bool| {
        spec.sections.iter().enumerate().find_map(|(i, s)| {
            s.checks
                .with_severity()
                .find(|(c, _)| want(c))
                .map(|(_, sev)| (i, s.id.as_str(), sev))
        })
    };
    if let Some((i, id, severity)) = declared(|c| matches!(c, CheckSpec::Grounding {}))
        && let Some(msg) = g.ungrounded(&doc.src[doc.body_start..])
    {
        let line = outline.primary(i).map_or(1, |l| l.line);
        out.push(Finding::new(severity, Code::Ungrounded, Some(id), Some(line), msg));
    }
    if let Some((i, id, _)) = declared(|c| matches!(c, CheckSpec::StageCoverage {}))
        && let Some(loc) = outline.primary(i).filter(|l| !l.empty)
    {
        let subs = subsections(doc.src, loc.body_start, loc.end, loc.level);
        for (line, msg) in g.ungrounded_stages(&subs) {
            out.push(Finding::new(
                Severity::Warning,
                Code::UngroundedStage,
                Some(id),
                Some(line),
                msg,
            ));
        }
    }
    out
}

/// The outermost subsections of a section: title, body (without the title), line.
fn subsections(src: &str, start: usize, end: usize, level: u8) -> Vec<(String, String, usize)> {
    let body = &src[start..end];
    let doc = markdown::parse(body);
    let heads: Vec<&markdown::Heading> = doc.headings.iter().filter(|h| h.top_level && h.level > level).collect();
    let top = heads.iter().map(|h| h.level).min();
    let heads: Vec<&&markdown::Heading> = heads.iter().filter(|h| Some(h.level) == top).collect();
    let first = crate::util::line_of(src, start);
    heads
        .iter()
        .enumerate()
        .map(|(n, h)| {
            let stop = heads.get(n + 1).map_or(body.len(), |x| x.start);
            (
                h.text.clone(),
                body[h.end.min(stop)..stop].to_string(),
                first + h.line - 1,
            )
        })
        .collect()
}

/// A text prepared for matching: lowercase, whitespace collapsed; and its words alone.
struct Text {
    raw: String,
    words: String,
}

impl Text {
    fn new(s: &str) -> Text {
        let lower = s.to_lowercase();
        let raw = lower.split_whitespace().collect::<Vec<_>>().join(" ");
        Text {
            raw,
            words: phrase(&lower),
        }
    }

    fn names(&self, n: &Name) -> bool {
        let hay = if n.kind == Kind::Step { &self.words } else { &self.raw };
        has_word(hay, &n.key) || n.short.as_deref().is_some_and(|s| has_word(hay, s))
    }
}

/// `needle` in `hay` with no word character on either side.
fn has_word(hay: &str, needle: &str) -> bool {
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    hay.match_indices(needle).any(|(i, _)| {
        let before = hay[..i].chars().next_back().is_none_or(|c| !is_word(c));
        let after = hay[i + needle.len()..].chars().next().is_none_or(|c| !is_word(c));
        before && after
    })
}

/// Lowercase words, anything else a single space.
fn phrase(s: &str) -> String {
    s.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A runbook step's name as a phrase, numbering dropped; two significant words at least.
fn step_name(s: &str) -> Option<Name> {
    let p = phrase(s);
    let words: Vec<&str> = p
        .split(' ')
        .skip_while(|w| w.chars().all(|c| c.is_ascii_digit()) || ["step", "stage", "phase"].contains(w))
        .collect();
    let key = words.join(" ");
    let significant = words.iter().filter(|w| !generic(w)).count();
    (significant >= 2 && key.len() >= 8).then_some(Name {
        kind: Kind::Step,
        key,
        short: None,
    })
}

/// Stemmed significant words.
fn significant(s: &str) -> Vec<String> {
    phrase(s)
        .split(' ')
        .filter(|w| !generic(w) && w.chars().any(char::is_alphabetic))
        .map(markdown::stem)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runbook_step_names_need_two_significant_words() {
        assert_eq!(
            step_name("Step 3: Switch read traffic").unwrap().key,
            "switch read traffic"
        );
        assert!(step_name("2. Upgrade").is_none());
    }

    #[test]
    fn matching_is_case_insensitive_on_word_boundaries_and_tolerates_schemas() {
        let files = [(
            "db/m.sql".to_string(),
            "ALTER TABLE billing.invoices ADD COLUMN region_code text;".to_string(),
        )];
        let g = Grounding::new(&files, &[]);
        assert!(g.ungrounded("Backfill `REGION_CODE` first.").is_none());
        assert!(
            g.ungrounded("Restore the invoices table.").is_none(),
            "schema.table by its table"
        );
        assert!(g.ungrounded("Restore public.invoices.").is_none());
        let none = g.ungrounded("Restore invoices_old and the region_codes view.").unwrap();
        assert!(
            none.contains("\"billing.invoices\"") && none.contains("2 names"),
            "{none}"
        );
        // No names, or one, no judgement.
        assert!(
            Grounding::new(&[("a.md".into(), "Just prose.".into())], &[])
                .ungrounded("x")
                .is_none()
        );
        assert!(
            Grounding::new(&[("a.sql".into(), "DROP TABLE a_orders;".into())], &[])
                .ungrounded("x")
                .is_none()
        );
    }

    #[test]
    fn a_stage_that_names_nothing_of_its_step() {
        let steps = [(
            "Switch read traffic".to_string(),
            "```sh\nvtctldclient SwitchTraffic --tablet-types=rdonly\n```".to_string(),
        )];
        let g = Grounding::new(&[], &steps);
        let subs = |body: &str| vec![("Stage 2: Switch read traffic".to_string(), body.to_string(), 9)];
        assert!(
            g.ungrounded_stages(&subs("Run vtctldclient SwitchTraffic again."))
                .is_empty()
        );
        assert!(
            g.ungrounded_stages(&subs("If reads fail, move the traffic back."))
                .is_empty()
        );
        let got = g.ungrounded_stages(&subs("Roll back if it goes wrong."));
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, 9);
        assert!(got[0].1.contains("\"Switch read traffic\""), "{}", got[0].1);
        // A subsection for no step is not judged.
        let other = vec![("Stage 9: Something else".to_string(), "x".to_string(), 1)];
        assert!(g.ungrounded_stages(&other).is_empty());
    }
}
