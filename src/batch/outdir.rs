//! The output folder is the batch's only state: one plan file per service (with
//! provenance front matter), the reports, and nothing half-written. A rerun reads the
//! plans' front matter to decide what is already done.

use std::path::{Path, PathBuf};

use crate::batch::report::BatchReport;
use crate::check::Checker;
use crate::error::{Error, Result};
use crate::markdown;
use crate::output::lock::Lock;
use crate::output::{self, Provenance, TMP_PREFIX};

pub struct OutDir {
    /// This run's exclusive lock on the folder, held until the run ends.
    _lock: Lock,
    /// As given, for messages.
    pub path: PathBuf,
    /// Absolute, for writing (no working-directory lookup per file).
    abs: PathBuf,
    /// The folder's files (as listed at the start, plus what this run wrote): a plan
    /// that is not there is not looked for on disk.
    existing: std::sync::Mutex<std::collections::HashSet<std::ffi::OsString>>,
}

/// A plan file from an earlier run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Earlier {
    /// No plan file.
    None,
    /// Complete, and made from the same template, model and input: kept.
    Current,
    /// Redone, for this reason.
    Stale(Redo),
}

pub use crate::output::living::{Redo, Wanted};

impl OutDir {
    /// Create the folder if needed and sweep temp files a killed run may have left.
    pub fn prepare(path: &Path) -> Result<OutDir> {
        if path.exists() && !path.is_dir() {
            return Err(Error::usage(format!(
                "--out-dir {} exists and is not a folder",
                path.display()
            )));
        }
        std::fs::create_dir_all(path).map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
        // One run per folder: before anything is swept, read or written.
        let lock = Lock::folder(path, "rbplan batch")?;
        let rd = std::fs::read_dir(path).map_err(|e| Error::io(format!("listing {}", path.display()), e))?;
        let mut existing = std::collections::HashSet::new();
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
                let swept = match e.file_type() {
                    Ok(t) if t.is_dir() => std::fs::remove_dir_all(e.path()),
                    _ => std::fs::remove_file(e.path()),
                };
                drop(swept);
            } else {
                existing.insert(e.file_name());
            }
        }
        let abs = std::path::absolute(path).map_err(|e| Error::io(format!("resolving {}", path.display()), e))?;
        Ok(OutDir {
            _lock: lock,
            path: path.to_path_buf(),
            abs,
            existing: std::sync::Mutex::new(existing),
        })
    }

    pub fn file_name(slug: &str) -> String {
        format!("{slug}.md")
    }

    pub fn plan_path(&self, slug: &str) -> PathBuf {
        self.abs.join(Self::file_name(slug))
    }

    /// What an earlier run left for `slug`, and if it must be redone, why.
    pub fn earlier(&self, slug: &str, want: &Wanted, checker: &Checker) -> Earlier {
        self.earlier_in(&Self::file_name(slug), want, checker)
    }

    /// `earlier` for the file `name` in the folder.
    pub fn earlier_in(&self, name: &str, want: &Wanted, checker: &Checker) -> Earlier {
        if !self
            .existing
            .lock()
            .expect("not poisoned")
            .contains(std::ffi::OsStr::new(name))
        {
            return Earlier::None;
        }
        let Ok(text) = std::fs::read_to_string(self.abs.join(name)) else {
            return Earlier::None;
        };
        let doc = markdown::parse(&text);
        let Some(p) = doc
            .front_matter
            .and_then(Provenance::from_front_matter)
            .filter(|p| !p.template_hash.is_empty())
        else {
            return Earlier::Stale(Redo::NotRbplans);
        };
        match want.redo(&p, &text, checker) {
            Some(why) => Earlier::Stale(why),
            None => Earlier::Current,
        }
    }

    /// Write one plan atomically, front matter first.
    pub fn write_plan(&self, slug: &str, prov: &Provenance, plan: &str) -> Result<()> {
        self.write_plan_to(&self.plan_path(slug), prov, None, plan)
    }

    /// `write_plan` to a path in the folder (the plan's own, or `NAME.new.md` beside it),
    /// keeping a person's own keys of the earlier front matter `front`.
    pub fn write_plan_to(&self, path: &Path, prov: &Provenance, front: Option<&str>, plan: &str) -> Result<()> {
        let text = prov.to_front_matter_keeping(front) + plan;
        // No fsync per plan (see write_atomic_with); the reports at the end are durable.
        output::write_atomic_with(path, text.as_bytes(), false)
            .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
        self.wrote(path);
        Ok(())
    }

    /// A plan this run wrote into the folder: looked for on disk from now on.
    pub fn wrote(&self, path: &Path) {
        if let Some(name) = path.file_name() {
            self.existing.lock().expect("not poisoned").insert(name.to_os_string());
        }
    }

    /// `report.json` and `report.md`, each atomically.
    pub fn write_report(&self, r: &BatchReport) -> Result<()> {
        // One at a time: at 10,000 services each text is megabytes.
        type Render = fn(&BatchReport) -> String;
        let texts: [(&str, Render); 2] = [
            ("report.json", BatchReport::to_json),
            ("report.md", BatchReport::to_markdown),
        ];
        for (name, make) in texts {
            let text = make(r);
            // Errors are scrubbed where they arise; this is the last line of defence.
            let text = crate::logging::scrub_cow(&text);
            let p = self.path.join(name);
            output::write_atomic(&p, text.as_bytes()).map_err(|e| Error::io(format!("writing {}", p.display()), e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::PlanStatus;
    use crate::template::Template;

    #[test]
    fn current_only_when_everything_matches_and_the_plan_checks() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join(format!("{TMP_PREFIX}abc")), "half").unwrap();
        let out = OutDir::prepare(d.path()).unwrap();
        let names: Vec<String> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [crate::output::lock::FOLDER_LOCK],
            "temp file swept, the lock held"
        );
        let t = Template::builtin();
        let c = Checker::new(&t);
        // A plan that passes the check: the one written for the template's example.
        let full = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/authored/plan.md")).unwrap();
        let prov = |status: PlanStatus| Provenance {
            template: "t".into(),
            template_hash: "th".into(),
            model: "m".into(),
            input_hash: "ih".into(),
            status,
            missing: vec![],
            generated_by: "rbplan".into(),
            name: Some("svc".into()),
            stages: vec![],
            summary: None,
            fallback_model: None,
            by_fallback: vec![],
            requests: Default::default(),
            judge_model: None,
            judge_score: None,
            sections: Default::default(),
            context: Default::default(),
            runbook: None,
        };
        let m = crate::check::Migration::default();
        let want = Wanted {
            template_hash: "th",
            model: "m",
            input_hash: "ih",
            migration: &m,
            context: &[],
        };
        assert_ne!(out.earlier("svc", &want, &c), Earlier::Current, "no file yet");
        out.write_plan("svc", &prov(PlanStatus::Complete), &full).unwrap();
        assert_eq!(out.earlier("svc", &want, &c), Earlier::Current);
        for other in [
            Wanted {
                template_hash: "new",
                ..want
            },
            Wanted { model: "m2", ..want },
            Wanted {
                input_hash: "changed",
                ..want
            },
        ] {
            assert_ne!(out.earlier("svc", &other, &c), Earlier::Current);
        }
        out.write_plan("svc", &prov(PlanStatus::Incomplete), &full).unwrap();
        assert_ne!(
            out.earlier("svc", &want, &c),
            Earlier::Current,
            "status says incomplete"
        );
        // Someone edited the plan and removed a section: redo it.
        let cut = full[..full.find("## 10. The hard truth about rollback").unwrap()].to_string();
        out.write_plan("svc", &prov(PlanStatus::Complete), &cut).unwrap();
        assert_ne!(out.earlier("svc", &want, &c), Earlier::Current);
    }
}
