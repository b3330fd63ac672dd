//! `check --select` and `--ignore` (or `[check] select` and `ignore` in a config file):
//! which codes count, and what set the others aside.

use crate::check::finding::Suppressor;
use crate::check::{CheckReport, Code, Finding};
use crate::config::Source;
use crate::error::{Error, Result};

/// `--select` and `--ignore`: which codes count. The others are set aside as suppressed.
pub(crate) struct Filter {
    select: Vec<Code>,
    ignore: Vec<Code>,
    /// What set aside a code each list leaves out: the flag, or the config file's line.
    select_by: Suppressor,
    ignore_by: Suppressor,
}

/// Who gave a `check` list: the config file's line when the values are the file's.
fn given_by(name: &str, values: &[String]) -> (String, Suppressor) {
    let file = crate::config::files::installed().and_then(|l| l.origin_of("check", name, values));
    match file {
        Some(Source::File(file, line)) => (
            format!("{}:{line}: {name}", file.display()),
            Suppressor::Config { file, line },
        ),
        _ => (format!("--{name}"), Suppressor::Flag),
    }
}

impl Filter {
    /// The codes named; an unknown one is exit 2 with every valid code.
    pub(crate) fn new(select: &[String], ignore: &[String]) -> Result<Filter> {
        let (select_flag, select_by) = given_by("select", select);
        let (ignore_flag, ignore_by) = given_by("ignore", ignore);
        let parse = |names: &[String], flag: &str| -> Result<Vec<Code>> {
            names
                .iter()
                .filter(|n| !n.trim().is_empty())
                .map(|n| {
                    crate::check::suppress::by_name(n).ok_or_else(|| {
                        let valid: Vec<&str> = crate::check::finding::CODES.iter().map(|c| c.name).collect();
                        Error::usage(format!(
                            "{flag} {n:?}: no such code; the codes are {}",
                            valid.join(", ")
                        ))
                    })
                })
                .collect()
        };
        Ok(Filter {
            select: parse(select, &select_flag)?,
            ignore: parse(ignore, &ignore_flag)?,
            select_by,
            ignore_by,
        })
    }

    pub(super) fn counts(&self, c: Code) -> bool {
        c.is_presence() || ((self.select.is_empty() || self.select.contains(&c)) && !self.ignore.contains(&c))
    }

    pub(super) fn apply(&self, r: &mut CheckReport) {
        let (kept, set_aside): (Vec<Finding>, Vec<Finding>) = r.findings.drain(..).partition(|f| self.counts(f.code));
        r.findings = kept;
        r.suppressed.extend(set_aside.into_iter().map(|f| Finding {
            suppressed_by: Some(if self.ignore.contains(&f.code) {
                self.ignore_by
            } else {
                self.select_by
            }),
            ..f
        }));
    }
}
