//! Writing results: atomically (temp file in the same folder, then rename), so a reader
//! or a crash never sees half a plan, and the front matter that traces a plan to its inputs.

pub mod fixtures;
pub mod living;
pub mod lock;

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// Temp files start with this, so a batch can sweep ones left by a killed run.
pub const TMP_PREFIX: &str = ".rbplan-tmp-";

/// Write `path` atomically and durably: temp file, fsync, rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomic_with(path, bytes, true)
}

/// Atomic always (a reader or a killed process never sees half a file); `durable` adds an
/// fsync before the rename, which survives a machine crash too. A batch skips the fsync per
/// plan: it costs about as much CPU as checking the plan, and a plan a crash empties is
/// re-checked and redone by the rerun.
pub fn write_atomic_with(path: &Path, bytes: &[u8], durable: bool) -> std::io::Result<()> {
    let mut tmp = temp_beside(path)?;
    tmp.write_all(bytes)?;
    if durable {
        tmp.as_file().sync_all()?;
    }
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// A temp file in `path`'s folder (so the final rename is atomic), named with
/// `TMP_PREFIX` (so a batch sweeps one a killed run left), with ordinary 0644 permissions
/// (tempfile makes 0600; the umask still applies). Every file rbplan writes starts here.
pub fn temp_beside(path: &Path) -> std::io::Result<tempfile::NamedTempFile> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut b = tempfile::Builder::new();
    b.prefix(TMP_PREFIX);
    #[cfg(unix)]
    b.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644));
    b.tempfile_in(dir)
}

/// What rbplan concluded about a plan it wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlanStatus {
    /// Every required section is present, and no check found an error.
    Complete,
    /// Every section is present, but error findings remain after repair.
    Errors,
    /// Sections are missing after repairs (also: no status recorded, or one not known).
    #[default]
    #[serde(other)]
    Incomplete,
}

impl PlanStatus {
    pub fn of(report: &crate::check::CheckReport) -> PlanStatus {
        if !report.complete() {
            PlanStatus::Incomplete
        } else if report.has_errors() {
            PlanStatus::Errors
        } else {
            PlanStatus::Complete
        }
    }
}

/// "rbplan 0.1.0", for the front matter.
pub fn generated_by() -> String {
    format!("rbplan {}", env!("CARGO_PKG_VERSION"))
}

/// Provenance written at the top of every plan file rbplan makes (YAML front matter,
/// under an `rbplan:` key, so a person's own keys beside it are left alone). A person may
/// write one by hand too, with only `summary` and `stages`, to tell `rbplan check` what a
/// hand-written plan is for; the hashes are then empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// The service name, for plans written by `rbplan batch`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub template: String,
    #[serde(default)]
    pub template_hash: String,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub input_hash: String,
    #[serde(default)]
    pub status: PlanStatus,
    #[serde(default)]
    pub missing: Vec<String>,
    /// The risky stages the plan was asked to cover, so `rbplan check` can check them later.
    #[serde(default)]
    pub stages: Vec<String>,
    /// The migration's summary, so `rbplan check` can tell whether the plan is about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// The fallback model, when it wrote some sections (`--fallback-model`), and which.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_model: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub by_fallback: Vec<String>,
    /// Requests made to each model, when more than one was asked (a fallback).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub requests: std::collections::BTreeMap<String, u32>,
    /// `--judge-model`: the judge and the mean of its scores, out of 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judge_model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judge_score: Option<String>,
    /// The context files the plan was made from (`--context`, `--runbook`), by path as
    /// shown then, with a short hash of each as read: a changed file makes the plan stale.
    #[serde(
        default,
        skip_serializing_if = "std::collections::BTreeMap::is_empty",
        deserialize_with = "context_list"
    )]
    pub context: std::collections::BTreeMap<String, String>,
    /// The runbook among them, whose steps are the stages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runbook: Option<String>,
    /// A short hash of each section as rbplan wrote it, by id (`_other`: the text outside
    /// the sections), to tell a person's edits from rbplan's text before writing over it.
    #[serde(default)]
    pub sections: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub generated_by: String,
}

#[derive(Deserialize)]
struct FrontMatter {
    rbplan: Provenance,
}

/// How the front matter is written: every text double-quoted, lists on one line, so that
/// no value (a name like `no`, `1.0` or `a: b`) can be read back as something else.
#[derive(Serialize)]
struct Written<'a> {
    rbplan: WrittenProvenance<'a>,
}

type Quoted<'a> = serde_saphyr::DoubleQuoted<&'a str>;

#[derive(Serialize)]
struct WrittenProvenance<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<Quoted<'a>>,
    template: Quoted<'a>,
    template_hash: Quoted<'a>,
    model: Quoted<'a>,
    input_hash: Quoted<'a>,
    status: Quoted<'a>,
    missing: serde_saphyr::FlowSeq<Vec<Quoted<'a>>>,
    #[serde(skip_serializing_if = "is_empty_seq")]
    stages: serde_saphyr::FlowSeq<Vec<Quoted<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    summary: Option<Quoted<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fallback_model: Option<Quoted<'a>>,
    #[serde(skip_serializing_if = "is_empty_seq")]
    by_fallback: serde_saphyr::FlowSeq<Vec<Quoted<'a>>>,
    #[serde(skip_serializing_if = "is_empty_counts")]
    requests: serde_saphyr::FlowMap<Counts<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    judge_model: Option<Quoted<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    judge_score: Option<Quoted<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    context: Vec<serde_saphyr::FlowMap<ContextEntry<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    runbook: Option<Quoted<'a>>,
    #[serde(skip_serializing_if = "is_empty_map")]
    sections: serde_saphyr::FlowMap<std::collections::BTreeMap<&'a str, Quoted<'a>>>,
    generated_by: Quoted<'a>,
}

fn is_empty_counts(m: &serde_saphyr::FlowMap<Counts<'_>>) -> bool {
    m.0.0.is_empty()
}

/// A count per name, each name a quoted key: `{"big": 3, "small": 11}`.
struct Counts<'a>(&'a std::collections::BTreeMap<String, u32>);

impl Serialize for Counts<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            m.serialize_entry(&serde_saphyr::DoubleQuoted(k.as_str()), v)?;
        }
        m.end()
    }
}

fn is_empty_map(m: &serde_saphyr::FlowMap<std::collections::BTreeMap<&str, Quoted<'_>>>) -> bool {
    m.0.is_empty()
}

/// One context file in the front matter: `{path: "…", hash: "…"}`.
#[derive(Serialize)]
struct ContextEntry<'a> {
    path: Quoted<'a>,
    hash: Quoted<'a>,
}

/// The `context:` list of `{path, hash}` entries, read back by path.
fn context_list<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<std::collections::BTreeMap<String, String>, D::Error> {
    #[derive(Deserialize)]
    struct Entry {
        path: String,
        hash: String,
    }
    let list: Vec<Entry> = Deserialize::deserialize(d)?;
    Ok(list.into_iter().map(|e| (e.path, e.hash)).collect())
}

fn is_empty_seq(s: &serde_saphyr::FlowSeq<Vec<Quoted<'_>>>) -> bool {
    s.0.is_empty()
}

impl PlanStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PlanStatus::Complete => "complete",
            PlanStatus::Errors => "errors",
            PlanStatus::Incomplete => "incomplete",
        }
    }
}

/// What a generated plan's front matter is made from.
pub struct Made<'a> {
    pub template: &'a crate::template::Template,
    /// The model asked first (`--model`, or the item's own).
    pub model: &'a str,
    pub inputs: &'a crate::template::Inputs,
    pub stages: &'a [String],
    pub report: &'a crate::check::CheckReport,
    /// (section id, model) for each section's text as it stands.
    pub written_by: &'a [(String, String)],
    /// The service name, for `rbplan batch`.
    pub name: Option<&'a str>,
    /// The judge model and the mean of its scores, when one was asked.
    pub judge: Option<(&'a str, f64)>,
    /// The section hashes to record (`living::hashes_after`).
    pub sections: std::collections::BTreeMap<String, String>,
    /// The context files as sent, and the runbook among them.
    pub context: &'a [crate::context::File],
    pub runbook: Option<&'a str>,
}

impl Provenance {
    pub fn new(m: &Made) -> Provenance {
        let by_fallback: Vec<String> = m
            .written_by
            .iter()
            .filter(|(_, w)| w != m.model)
            .map(|(id, _)| id.clone())
            .collect();
        let fallback_model = m.written_by.iter().find(|(_, w)| w != m.model).map(|(_, w)| w.clone());
        Provenance {
            name: m.name.map(str::to_string),
            template: m.template.origin.clone(),
            template_hash: m.template.hash.clone(),
            model: m.model.to_string(),
            input_hash: m.inputs.hash(),
            status: PlanStatus::of(m.report),
            missing: m.report.missing_ids(),
            stages: m.stages.to_vec(),
            summary: Some(m.inputs.summary.clone()),
            fallback_model,
            by_fallback,
            requests: Default::default(),
            judge_model: m.judge.map(|(model, _)| model.to_string()),
            judge_score: m.judge.map(|(_, mean)| format!("{mean}/5")),
            sections: m.sections.clone(),
            context: m.context.iter().map(|f| (f.path.clone(), f.hash.clone())).collect(),
            runbook: m.runbook.map(str::to_string),
            generated_by: generated_by(),
        }
    }

    /// The front matter block, `---` lines included, and a blank line after it.
    pub fn to_front_matter(&self) -> String {
        fn q(s: &str) -> Quoted<'_> {
            serde_saphyr::DoubleQuoted(s)
        }
        fn list(v: &[String]) -> serde_saphyr::FlowSeq<Vec<Quoted<'_>>> {
            serde_saphyr::FlowSeq(v.iter().map(|s| q(s)).collect())
        }
        type Map<'a> = serde_saphyr::FlowMap<std::collections::BTreeMap<&'a str, Quoted<'a>>>;
        fn map(m: &std::collections::BTreeMap<String, String>) -> Map<'_> {
            serde_saphyr::FlowMap(m.iter().map(|(k, v)| (k.as_str(), q(v))).collect())
        }
        let w = Written {
            rbplan: WrittenProvenance {
                name: self.name.as_deref().map(q),
                template: q(&self.template),
                template_hash: q(&self.template_hash),
                model: q(&self.model),
                input_hash: q(&self.input_hash),
                status: q(self.status.as_str()),
                missing: list(&self.missing),
                stages: list(&self.stages),
                summary: self.summary.as_deref().map(q),
                fallback_model: self.fallback_model.as_deref().map(q),
                by_fallback: list(&self.by_fallback),
                requests: serde_saphyr::FlowMap(Counts(&self.requests)),
                judge_model: self.judge_model.as_deref().map(q),
                judge_score: self.judge_score.as_deref().map(q),
                // Paths may hold anything YAML reads as syntax: each a quoted value.
                context: self
                    .context
                    .iter()
                    .map(|(path, hash)| {
                        serde_saphyr::FlowMap(ContextEntry {
                            path: q(path),
                            hash: q(hash),
                        })
                    })
                    .collect(),
                runbook: self.runbook.as_deref().map(q),
                sections: map(&self.sections),
                generated_by: q(&self.generated_by),
            },
        };
        let yaml = serde_saphyr::to_string(&w).expect("provenance serializes");
        format!("---\n{}\n---\n\n", yaml.trim_end())
    }

    /// `to_front_matter`, keeping a person's own keys of `old` (the text inside an earlier
    /// file's front matter) where they were: rbplan's block replaces the old one in place.
    pub fn to_front_matter_keeping(&self, old: Option<&str>) -> String {
        let ours = self.to_front_matter();
        let Some(old) = old.filter(|o| !without_own_block(o).trim().is_empty()) else {
            return ours;
        };
        let block = &ours["---\n".len()..ours.len() - "\n---\n\n".len()];
        format!("---\n{}\n---\n\n", with_own_block(old, Some(block)).trim_end())
    }

    /// Read the provenance from a front matter block (the text between the `---` lines).
    /// None when it has no `rbplan:` key or that key is not rbplan's provenance.
    /// A block a person broke elsewhere (a `title: a: b`, a key written twice) still
    /// gives rbplan's own part: then its `rbplan:` block is read alone.
    pub fn from_front_matter(fm: &str) -> Option<Provenance> {
        if let Ok(f) = serde_saphyr::from_str::<FrontMatter>(fm) {
            return Some(f.rbplan);
        }
        serde_saphyr::from_str::<FrontMatter>(&own_block(fm)?)
            .ok()
            .map(|f| f.rbplan)
    }
}

/// A front matter block without its `rbplan:` block.
fn without_own_block(fm: &str) -> String {
    with_own_block(fm, None)
}

/// `fm` with its `rbplan:` block (that line and the indented lines under it) replaced by
/// `block` where it stood, or `block` added at the end when there was none; with None,
/// the block is taken out.
fn with_own_block(fm: &str, block: Option<&str>) -> String {
    let mut out: Vec<&str> = Vec::new();
    let (mut in_ours, mut placed) = (false, false);
    for l in fm.lines() {
        if l.trim_end() == "rbplan:" {
            (in_ours, placed) = (true, true);
            out.extend(block);
            continue;
        }
        if in_ours && (l.is_empty() || l.starts_with([' ', '\t'])) {
            continue;
        }
        in_ours = false;
        out.push(l);
    }
    if !placed {
        out.extend(block);
    }
    out.join("\n")
}

/// The `rbplan:` line of a front matter block and the indented lines under it.
fn own_block(fm: &str) -> Option<String> {
    let mut lines = fm.lines().skip_while(|l| l.trim_end() != "rbplan:");
    let head = lines.next()?;
    let body: Vec<&str> = lines
        .take_while(|l| l.is_empty() || l.starts_with([' ', '\t']))
        .collect();
    Some(format!("{head}\n{}\n", body.join("\n")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_whole_file_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("plan.md");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn front_matter_round_trips_odd_values() {
        let p = Provenance {
            template: "built-in rollback-plan".into(),
            template_hash: "sha256:0011".into(),
            model: "my: \"model\"".into(),
            input_hash: "sha256:22".into(),
            status: PlanStatus::Incomplete,
            missing: vec!["what-if".into(), "a, b".into()],
            generated_by: "rbplan 0.1.0".into(),
            name: Some("../odd: \"name\"".into()),
            stages: vec!["Backfill (high)".into(), "Write \"cutover\"".into()],
            summary: Some("Move \"orders\" to PostgreSQL 15:\n{{ not tera }} and a # that is not a comment".into()),
            fallback_model: Some("big-model".into()),
            by_fallback: vec!["what-if".into()],
            requests: [("big-model", 3), ("my: \"model\"", 11)]
                .map(|(k, v)| (k.to_string(), v))
                .into(),
            judge_model: Some("judge".into()),
            judge_score: Some("3.5/5".into()),
            sections: [("philosophy", "0123456789ab"), ("_other", "ba9876543210")]
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .into(),
            context: [("db/001 \"odd\": name.sql", "0123456789ab")]
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .into(),
            runbook: Some("ops/runbook.md".into()),
        };
        let fm = p.to_front_matter();
        let doc = crate::markdown::parse(&fm);
        let inner = doc.front_matter.unwrap();
        assert_eq!(Provenance::from_front_matter(inner).unwrap(), p);
        // Saved by an editor that writes CRLF line ends.
        let crlf = (fm + "## 1. Rollback philosophy\n\ntext\n").replace('\n', "\r\n");
        let doc = crate::markdown::parse(&crlf);
        assert_eq!(Provenance::from_front_matter(doc.front_matter.unwrap()).unwrap(), p);
    }

    #[test]
    fn a_persons_own_front_matter_keys_are_kept() {
        let p = Provenance::from_front_matter("rbplan:\n  model: \"m\"\n").unwrap();
        let old = "title: Orders DB rollback\nrbplan:\n  model: \"old\"\n  status: \"complete\"\nowner: alice\n";
        let fm = p.to_front_matter_keeping(Some(old));
        assert!(fm.starts_with("---\ntitle: Orders DB rollback\nrbplan:\n"), "{fm}");
        assert!(fm.ends_with("\nowner: alice\n---\n\n"), "kept in place: {fm}");
        assert!(!fm.contains("old") && fm.ends_with("---\n\n"), "{fm}");
        let doc = crate::markdown::parse(&fm);
        assert_eq!(
            Provenance::from_front_matter(doc.front_matter.unwrap()).unwrap().model,
            "m"
        );
        assert_eq!(
            p.to_front_matter_keeping(Some("rbplan:\n  model: x\n")),
            p.to_front_matter()
        );
    }

    /// The form rbplan 0.1.0 wrote by hand (JSON-quoted scalars, flow lists) still reads.
    #[test]
    fn front_matter_of_earlier_plans_still_reads() {
        let old = "rbplan:\n  name: \"svc\"\n  template: \"built-in rollback-plan\"\n  template_hash: \"sha256:00\"\n  model: \"m\"\n  input_hash: \"sha256:11\"\n  status: \"complete\"\n  missing: []\n  stages: [\"Backfill\", \"Cutover\"]\n  generated_by: \"rbplan 0.1.0\"\n";
        let p = Provenance::from_front_matter(old).unwrap();
        assert_eq!(p.status, PlanStatus::Complete);
        assert_eq!(p.stages, ["Backfill", "Cutover"]);
        assert_eq!(p.name.as_deref(), Some("svc"));
        // Other keys beside rbplan's are fine; a block without rbplan's is not provenance.
        assert!(Provenance::from_front_matter(&format!("title: x\n{old}")).is_some());
        assert!(Provenance::from_front_matter("title: x\n").is_none());
        // A person's own key that is not valid YAML, or written twice, does not hide ours.
        for broken in [
            format!("title: Orders DB: rollback\n{old}"),
            format!("owner: a\nowner: b\n{old}"),
        ] {
            assert_eq!(Provenance::from_front_matter(&broken).unwrap().model, "m", "{broken}");
        }
        // Written by hand for a hand-written plan: only what the plan is for.
        let own = Provenance::from_front_matter("rbplan:\n  summary: Move X to Y\n").unwrap();
        assert_eq!(
            (own.summary.as_deref(), own.template_hash.as_str()),
            (Some("Move X to Y"), "")
        );
    }
}
