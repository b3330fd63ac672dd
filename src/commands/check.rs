//! `rbplan check`: lint plan files (hand-written or generated) against a template's spec.

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::check::{CheckReport, Checker, Code, Finding};
use crate::cli::CheckArgs;
use crate::error::{Error, Outcome, Result};
use crate::input;
use crate::markdown;
use crate::output::Provenance;
use crate::spec::Severity;
use crate::template::Template;
use crate::term::{Ui, print_stdout};

pub fn run(args: CheckArgs, ui: Ui) -> Result<Outcome> {
    let template = Template::resolve(args.template.template.as_deref())?;
    let checker = Checker::new(&template);
    let stages = given_stages(&args)?;
    let files = collect(&args.paths)?;
    // One file that cannot be read is reported in its place; the others are still checked.
    let results: Vec<(PathBuf, std::result::Result<Checked, Error>)> = files
        .iter()
        .map(|path| {
            (
                path.clone(),
                check_file(path, &checker, &template, stages.as_deref(), args.strict),
            )
        })
        .collect();
    let failed = results.iter().any(|(_, r)| r.as_ref().is_ok_and(|c| c.bad));
    let unreadable: Vec<&PathBuf> = results.iter().filter(|(_, r)| r.is_err()).map(|(p, _)| p).collect();
    if args.json {
        print_json(&results, &template, !failed && unreadable.is_empty())?;
    } else {
        print_text(&results)?;
    }
    let _ = ui;
    // An input error wins over the check's verdict (exit 2, not 3 or 0).
    match unreadable.as_slice() {
        [] => Ok(if failed { Outcome::Incomplete } else { Outcome::Complete }),
        [_] => Err(results.into_iter().find_map(|(_, r)| r.err()).expect("one unreadable")),
        many => Err(Error::usage(format!(
            "{} plans could not be read (see above): {}",
            many.len(),
            many.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// `--stages` or `--stages-file`, as stage names.
fn given_stages(args: &CheckArgs) -> Result<Option<Vec<String>>> {
    Ok(match (&args.stages, &args.stages_file) {
        (Some(s), _) => Some(input::stage_list(&input::typed(s, "stages")?, "--stages")?),
        (None, Some(p)) => {
            let (text, origin) = input::read_arg(p, "stages")?;
            Some(input::stage_list(&text, &origin)?)
        }
        (None, None) => None,
    })
}

/// Read and check one plan: against `stages` if given, else the stages its front matter
/// records; a plan from another template version gets a warning.
fn check_file(
    path: &Path,
    checker: &Checker,
    template: &Template,
    stages: Option<&[String]>,
    strict: bool,
) -> Result<Checked> {
    let text = input::read_text(path, "the plan")?;
    let prov = markdown::parse(&text)
        .front_matter
        .and_then(Provenance::from_front_matter);
    // Without --stages, a plan rbplan wrote is checked against the stages it was made for.
    let own = prov.as_ref().map(|p| p.stages.clone()).filter(|s| !s.is_empty());
    let (_, mut report) = checker.check(&text, stages.or(own.as_deref()));
    if let Some(p) = &prov
        && p.template_hash != template.hash
    {
        report.findings.push(Finding {
            severity: Severity::Warning,
            code: Code::StaleTemplate,
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
    let bad = !report.complete() || (strict && !report.findings.is_empty());
    Ok(Checked { report, prov, bad })
}

type Results = [(PathBuf, std::result::Result<Checked, Error>)];

fn print_json(results: &Results, template: &Template, ok: bool) -> Result<()> {
    let files: Vec<serde_json::Value> = results
        .iter()
        .map(|(p, r)| match r {
            Ok(c) => json!({
                "path": p.display().to_string(),
                "ok": !c.bad,
                "verdict": c.verdict().name(),
                "complete": c.report.complete(),
                "missing": c.report.missing_ids(),
                "sections": c.report.sections,
                "findings": c.report.findings,
                "provenance": c.prov,
            }),
            Err(e) => {
                let u = Unreadable::from(e);
                json!({
                    "path": p.display().to_string(),
                    "ok": false,
                    "verdict": "unreadable",
                    "error": u.msg,
                    "line": u.line,
                })
            }
        })
        .collect();
    let v = json!({
        "template": {"origin": template.origin, "hash": template.hash},
        "files": files,
        "ok": ok,
    });
    print_stdout(&(serde_json::to_string_pretty(&v).expect("json") + "\n"))
}

fn print_text(results: &Results) -> Result<()> {
    let mut out = String::new();
    for (p, r) in results {
        match r {
            Ok(c) => out.push_str(&text_report(p, c)),
            Err(e) => {
                let u = Unreadable::from(e);
                let at = u.line.map(|l| format!(":{l}")).unwrap_or_default();
                let p = p.display();
                out.push_str(&format!("{p}: UNREADABLE\n  {p}{at}: error: {} [unreadable]\n", u.msg));
            }
        }
    }
    out.push_str(&summary(results));
    print_stdout(&out)
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

/// How a checked plan fared. Only `Fail` makes the exit code non-zero; which findings
/// fail is the spec's rule (a missing or empty required section, or any finding with
/// --strict), but the label still says when a plan has errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Clean,
    Warnings,
    Errors,
    Fail,
}

impl Verdict {
    /// As `--json` spells it.
    fn name(self) -> &'static str {
        match self {
            Verdict::Clean => "clean",
            Verdict::Warnings => "warnings",
            Verdict::Errors => "errors",
            Verdict::Fail => "fail",
        }
    }
}

impl Checked {
    fn count(&self, severity: Severity) -> usize {
        self.report.findings.iter().filter(|f| f.severity == severity).count()
    }

    fn verdict(&self) -> Verdict {
        if self.bad {
            Verdict::Fail
        } else if self.count(Severity::Error) > 0 {
            Verdict::Errors
        } else if self.count(Severity::Warning) > 0 {
            Verdict::Warnings
        } else {
            Verdict::Clean
        }
    }
}

/// "2 errors, 1 warning", or "0 findings".
fn finding_counts(c: &Checked) -> String {
    let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    let parts: Vec<String> = [
        (c.count(Severity::Error), "error"),
        (c.count(Severity::Warning), "warning"),
    ]
    .into_iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, what)| plural(n, what))
    .collect();
    if parts.is_empty() {
        "0 findings".into()
    } else {
        parts.join(", ")
    }
}

fn text_report(path: &Path, c: &Checked) -> String {
    let r = &c.report;
    let label = match c.verdict() {
        Verdict::Fail => "FAIL",
        Verdict::Errors => "ERRORS",
        Verdict::Warnings | Verdict::Clean => "ok",
    };
    let mut s = format!(
        "{}: {label} ({}/{} sections, {})\n",
        path.display(),
        r.found_count(),
        r.sections.len(),
        finding_counts(c)
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

/// The last line: how many files were clean, had warnings or errors, failed or could not
/// be read, and, when errors or warnings pass, that --strict would fail on them.
fn summary(results: &Results) -> String {
    let n = |v: Verdict| {
        results
            .iter()
            .filter(|(_, r)| r.as_ref().is_ok_and(|c| c.verdict() == v))
            .count()
    };
    let unreadable = results.iter().filter(|(_, r)| r.is_err()).count();
    let (warnings, errors, fail) = (n(Verdict::Warnings), n(Verdict::Errors), n(Verdict::Fail));
    let mut parts = vec![format!("{} clean", n(Verdict::Clean))];
    for (count, what) in [
        (warnings, "with warnings"),
        (errors, "with errors"),
        (fail, "failing"),
        (unreadable, "unreadable"),
    ] {
        if count > 0 {
            parts.push(format!("{count} {what}"));
        }
    }
    let note = if warnings + errors > 0 && fail + unreadable == 0 {
        " (exit 0; --strict fails on them)"
    } else {
        ""
    };
    format!(
        "{} file{}: {}{note}\n",
        results.len(),
        if results.len() == 1 { "" } else { "s" },
        parts.join(", ")
    )
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
