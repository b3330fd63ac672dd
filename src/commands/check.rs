//! `rbplan check`: lint plan files (hand-written or generated) against a template's spec.

use std::path::{Path, PathBuf};

use serde_json::json;

use super::{Ui, print_stdout};
use crate::check::{CheckReport, Checker, Finding};
use crate::cli::CheckArgs;
use crate::error::{Error, Outcome, Result};
use crate::input;
use crate::markdown;
use crate::output::Provenance;
use crate::spec::Severity;
use crate::template::Template;

pub fn run(args: CheckArgs, ui: Ui) -> Result<Outcome> {
    let template = Template::resolve(args.template.template.as_deref())?;
    let checker = Checker::new(&template);
    let stages = match (&args.stages, &args.stages_file) {
        (Some(s), _) => Some(input::stage_list(s, "--stages")?),
        (None, Some(p)) => {
            let (text, origin) = input::read_arg(p, "stages")?;
            Some(input::stage_list(&text, &origin)?)
        }
        (None, None) => None,
    };
    let files = collect(&args.paths)?;

    // One file that cannot be read is reported in its place; the others are still checked.
    let mut results = Vec::new();
    let mut unreadable = Vec::new();
    let mut failed = false;
    for path in &files {
        let text = match input::read_text(path, "the plan") {
            Ok(t) => t,
            Err(e) => {
                results.push((path.clone(), Err(Unreadable::from(&e))));
                unreadable.push(e);
                continue;
            }
        };
        let (_, mut report) = checker.check(&text, stages.as_deref());
        let prov = markdown::parse(&text)
            .front_matter
            .and_then(Provenance::from_front_matter);
        if let Some(p) = &prov
            && p.template_hash != template.hash
        {
            report.findings.push(Finding {
                severity: Severity::Warning,
                code: "stale_template".into(),
                section: None,
                line: Some(1),
                message: format!(
                    "made from another template version ({}); the current one is {} — regenerate it (rbplan batch redoes such plans)",
                    p.template_hash, template.hash
                ),
                stage: None,
            });
        }
        report
            .findings
            .sort_by_key(|f| (f.line.unwrap_or(0), f.severity != Severity::Error));
        let bad = !report.complete() || (args.strict && !report.findings.is_empty());
        failed |= bad;
        results.push((path.clone(), Ok(Checked { report, prov, bad })));
    }

    if args.json {
        let files: Vec<serde_json::Value> = results
            .iter()
            .map(|(p, r)| match r {
                Ok(c) => json!({
                    "path": p.display().to_string(),
                    "ok": !c.bad,
                    "complete": c.report.complete(),
                    "missing": c.report.missing_ids(),
                    "sections": c.report.sections,
                    "findings": c.report.findings,
                    "provenance": c.prov,
                }),
                Err(e) => json!({
                    "path": p.display().to_string(),
                    "ok": false,
                    "error": e.msg,
                    "line": e.line,
                }),
            })
            .collect();
        let v = json!({
            "template": {"origin": template.origin, "hash": template.hash},
            "files": files,
            "ok": !failed && unreadable.is_empty(),
        });
        print_stdout(&(serde_json::to_string_pretty(&v).expect("json") + "\n"))?;
    } else {
        let mut out = String::new();
        for (p, r) in &results {
            match r {
                Ok(c) => out.push_str(&text_report(p, &c.report, c.bad)),
                Err(e) => out.push_str(&format!(
                    "{}: UNREADABLE\n  {}{}: error: {} [unreadable]\n",
                    p.display(),
                    p.display(),
                    e.line.map(|l| format!(":{l}")).unwrap_or_default(),
                    e.msg
                )),
            }
        }
        let n_bad = results.iter().filter(|(_, r)| r.as_ref().is_ok_and(|c| c.bad)).count();
        let n_ok = results.len() - n_bad - unreadable.len();
        out.push_str(&format!(
            "{} file{} checked: {n_ok} ok, {n_bad} with problems{}\n",
            results.len(),
            if results.len() == 1 { "" } else { "s" },
            if unreadable.is_empty() {
                String::new()
            } else {
                format!(", {} unreadable", unreadable.len())
            }
        ));
        print_stdout(&out)?;
        let _ = ui;
    }
    // An input error wins over the check's verdict (exit 2, not 3 or 0).
    match unreadable.len() {
        0 => Ok(if failed { Outcome::Incomplete } else { Outcome::Complete }),
        1 => Err(unreadable.remove(0)),
        n => Err(Error::usage(format!(
            "{n} plans could not be read (see above): {}",
            results
                .iter()
                .filter(|(_, r)| r.is_err())
                .map(|(p, _)| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// A plan that was read and checked.
struct Checked {
    report: CheckReport,
    prov: Option<Provenance>,
    bad: bool,
}

/// Why a plan could not be read, for its place in the report.
struct Unreadable {
    line: Option<usize>,
    msg: String,
}

impl From<&Error> for Unreadable {
    fn from(e: &Error) -> Self {
        match e {
            Error::Input { line, msg, .. } => Unreadable {
                line: *line,
                msg: msg.clone(),
            },
            other => Unreadable {
                line: None,
                msg: other.to_string(),
            },
        }
    }
}

fn text_report(path: &Path, r: &CheckReport, bad: bool) -> String {
    let found = r.found_count();
    let total = r.sections.len();
    let mut s = format!(
        "{}: {} ({found}/{total} sections, {} finding{})\n",
        path.display(),
        if bad { "FAIL" } else { "ok" },
        r.findings.len(),
        if r.findings.len() == 1 { "" } else { "s" }
    );
    for f in &r.findings {
        let sev = match f.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let loc = f.line.map(|l| format!(":{l}")).unwrap_or_default();
        s.push_str(&format!(
            "  {}{loc}: {sev}: {} [{}]\n",
            path.display(),
            f.message,
            f.code
        ));
    }
    s
}

/// Files as given; folders expand to their .md files (sorted, not recursively), skipping a
/// README.md (any case; it describes the folder, it is not a plan) and a batch's report.md.
/// Nothing to check is an error naming the folders that held nothing.
fn collect(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut empty = Vec::new();
    for p in paths {
        if p.is_dir() {
            let rd = std::fs::read_dir(p).map_err(|e| Error::input(p, None, format!("cannot list: {e}")))?;
            let mut found: Vec<PathBuf> = rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "md") && f.is_file())
                .filter(|f| !f.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
                .filter(|f| !f.file_name().is_some_and(|n| n.eq_ignore_ascii_case("README.md")))
                .filter(|f| !(f.file_name().is_some_and(|n| n == "report.md") && p.join("report.json").is_file()))
                .collect();
            found.sort();
            if found.is_empty() {
                empty.push(p.display().to_string());
            }
            out.extend(found);
        } else if p.is_file() {
            out.push(p.clone());
        } else {
            return Err(Error::input(p, None, "no such file or folder"));
        }
    }
    if out.is_empty() {
        return Err(Error::usage(format!("no .md files in {}", empty.join(", "))));
    }
    Ok(out)
}
