//! Writing results: atomically (temp file in the same folder, then rename), so a reader
//! or a crash never sees half a plan, and the front matter that traces a plan to its inputs.

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

/// Provenance written at the top of every plan file rbplan makes (YAML front matter).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    pub template: String,
    pub template_hash: String,
    pub model: String,
    pub input_hash: String,
    /// complete / incomplete
    pub status: String,
    #[serde(default)]
    pub missing: Vec<String>,
    #[serde(default)]
    pub generated_by: String,
    /// The service name, for plans written by `rbplan batch`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The risky stages the plan was asked to cover, so `rbplan check` can check them later.
    #[serde(default)]
    pub stages: Vec<String>,
}

impl Provenance {
    /// The front matter block, in the subset of YAML this module reads back.
    pub fn to_front_matter(&self) -> String {
        let list = |v: &[String]| format!("[{}]", v.iter().map(|s| quote(s)).collect::<Vec<_>>().join(", "));
        let name = self
            .name
            .as_ref()
            .map(|n| format!("  name: {}\n", quote(n)))
            .unwrap_or_default();
        let stages = if self.stages.is_empty() {
            String::new()
        } else {
            format!("  stages: {}\n", list(&self.stages))
        };
        format!(
            "---\nrbplan:\n{name}  template: {}\n  template_hash: {}\n  model: {}\n  input_hash: {}\n  status: {}\n  missing: {}\n{stages}  generated_by: {}\n---\n\n",
            quote(&self.template),
            quote(&self.template_hash),
            quote(&self.model),
            quote(&self.input_hash),
            quote(&self.status),
            list(&self.missing),
            quote(&self.generated_by),
        )
    }

    /// Read back the block written by `to_front_matter` (given the text between the `---` lines).
    pub fn from_front_matter(fm: &str) -> Option<Provenance> {
        let mut map = std::collections::HashMap::new();
        let mut in_rbplan = false;
        for line in fm.lines() {
            if line.trim_end() == "rbplan:" {
                in_rbplan = true;
                continue;
            }
            if !in_rbplan || line.trim() == "---" {
                continue;
            }
            if !line.starts_with("  ") {
                in_rbplan = false;
                continue;
            }
            if let Some((k, v)) = line.trim().split_once(':') {
                map.insert(k.trim().to_string(), v.trim().to_string());
            }
        }
        let get = |k: &str| map.get(k).map(|v| unquote(v));
        Some(Provenance {
            template: get("template").unwrap_or_default(),
            template_hash: get("template_hash")?,
            model: get("model")?,
            input_hash: get("input_hash")?,
            status: get("status").unwrap_or_default(),
            missing: map.get("missing").map(|v| parse_list(v)).unwrap_or_default(),
            generated_by: get("generated_by").unwrap_or_default(),
            name: get("name"),
            stages: map.get("stages").map(|v| parse_list(v)).unwrap_or_default(),
        })
    }
}

/// A JSON string is a valid YAML double-quoted scalar.
fn quote(s: &str) -> String {
    serde_json::to_string(s).expect("string")
}

fn unquote(s: &str) -> String {
    serde_json::from_str::<String>(s).unwrap_or_else(|_| s.trim_matches('\'').to_string())
}

fn parse_list(s: &str) -> Vec<String> {
    serde_json::from_str::<Vec<String>>(s).unwrap_or_default()
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
            status: "incomplete".into(),
            missing: vec!["what-if".into(), "a, b".into()],
            generated_by: "rbplan 0.1.0".into(),
            name: Some("../odd: \"name\"".into()),
            stages: vec!["Backfill (high)".into(), "Write \"cutover\"".into()],
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
}
