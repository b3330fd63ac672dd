//! `rbplan check`: lint plan files (hand-written or generated) against a template's spec,
//! like a linter: error findings fail, warnings fail with --strict. Output as text, JSON,
//! GitHub annotations, JUnit XML or SARIF (`formats`).

use std::path::{Path, PathBuf};

mod concerns;
mod filter;
mod formats;

use crate::check::{CheckReport, Checker, Code, Finding, Migration};
use crate::cli::{CheckArgs, Format};
use crate::error::{Error, Outcome, Result};
use crate::input;
use crate::markdown;
use crate::output::Provenance;
use crate::spec::Severity;
use crate::template::Template;
use crate::term::{Ui, print_stdout};
pub(super) use filter::Filter;

pub async fn run(args: CheckArgs, ui: Ui) -> Result<Outcome> {
    if args.list_codes {
        print_stdout(&formats::code_list())?;
        return Ok(Outcome::Complete);
    }
    let filter = Filter::new(&args.select, &args.ignore)?;
    let template = Template::resolve(args.template.template.as_deref())?;
    let checker = Checker::new(&template);
    let given = Given::from(args.input.given().read()?)?;
    let files = collect(&args.paths)?;
    // Only a judge sends anything; check alone works offline.
    let judge = match &args.judge.judge_model {
        Some(m) => {
            let (settings, client) = super::connect(&args.conn, &crate::config::Env::load()?)?;
            Some((m.as_str(), settings.shape, client))
        }
        None => None,
    };
    // One file that cannot be read is reported in its place; the others are still checked.
    let mut results = Vec::with_capacity(files.len());
    for path in &files {
        let mut result = check_file(path, &checker, &template, &given, !args.no_concerns);
        if let (Some((model, shape, client)), Ok(r)) = (&judge, result.as_mut()) {
            let inputs = r.inputs(&given);
            let text = input::read_text(path, "the plan")?;
            let plan = &text[markdown::parse(&text).body_start..];
            let judge = (shape, *model);
            r.judgement = crate::judge::judge_into(client, &template, judge, &inputs, plan, &mut r.report).await;
        }
        if let Ok(r) = result.as_mut() {
            filter.apply(&mut r.report);
        }
        results.push(Checked {
            path: path.clone(),
            result,
        });
    }
    let gate = Gate { strict: args.strict };
    let format = if args.json { Format::Json } else { args.format };
    print_stdout(&formats::render(format, &results, &template, gate))?;
    let _ = ui;
    outcome(results, gate)
}

/// Error findings fail; warnings fail with --strict.
#[derive(Debug, Clone, Copy)]
pub struct Gate {
    pub strict: bool,
}

impl Gate {
    pub fn passes(self, r: &CheckReport) -> bool {
        r.passes() && (!self.strict || r.findings.is_empty())
    }
}

/// The exit: an input error wins over the check's verdict (exit 2, not 3 or 0).
fn outcome(results: Vec<Checked>, gate: Gate) -> Result<Outcome> {
    let failed = results
        .iter()
        .any(|c| c.result.as_ref().is_ok_and(|r| !gate.passes(&r.report)));
    let mut unreadable: Vec<(PathBuf, Error)> = results
        .into_iter()
        .filter_map(|c| c.result.err().map(|e| (c.path, e)))
        .collect();
    match unreadable.len() {
        0 => Ok(if failed { Outcome::Failing } else { Outcome::Complete }),
        1 => Err(unreadable.remove(0).1),
        n => Err(Error::usage(format!(
            "{n} plans could not be read (see above): {}",
            unreadable
                .iter()
                .map(|(p, _)| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// What the command line says every plan is about; a plan's own front matter fills in
/// what it does not say.
struct Given {
    stages: Option<Vec<String>>,
    summary: Option<String>,
}

impl Given {
    /// What was given, as check takes it: stage names, and a summary that is not empty.
    fn from(r: input::Supplied) -> Result<Given> {
        let stages = match r.stages {
            Some(t) => Some(input::stage_list(&t.text, &t.origin)?),
            None => None,
        };
        if r.summary.as_ref().is_some_and(|t| t.text.trim().is_empty()) {
            return Err(Error::usage("the summary given to check is empty"));
        }
        Ok(Given {
            stages,
            summary: r.summary.map(|t| t.text),
        })
    }
}

/// Read and check one plan: against the stages and summary given, else those its front
/// matter records; a plan from another template version gets a warning.
fn check_file(path: &Path, checker: &Checker, template: &Template, given: &Given, concerns: bool) -> Result<Report> {
    let text = input::read_text(path, "the plan")?;
    let prov = markdown::parse(&text)
        .front_matter
        .and_then(Provenance::from_front_matter);
    // Without --stages, a plan rbplan wrote is checked against the stages it was made for.
    let own_stages = prov.as_ref().map(|p| p.stages.clone()).filter(|s| !s.is_empty());
    let own_summary = prov.as_ref().and_then(|p| p.summary.clone());
    let mut migration = Migration::new(
        given.stages.clone().or(own_stages),
        given.summary.as_deref().or(own_summary.as_deref()),
    );
    if let Some(g) = prov.as_ref().and_then(grounding) {
        migration = migration.with_grounding(g);
    }
    let (_, mut report) = checker.check_with(&text, &migration, concerns);
    if let Some(p) = &prov
        && !p.template_hash.is_empty()
        && p.template_hash != template.hash
    {
        let msg = format!(
            "made from another template version ({}); the current one is {} — regenerate it (rbplan batch redoes such plans)",
            p.template_hash, template.hash
        );
        report
            .findings
            .push(Finding::new(Severity::Warning, Code::StaleTemplate, None, Some(1), msg));
    }
    if let Some(p) = &prov {
        report.findings.extend(context_drift(p));
    }
    report
        .findings
        .sort_by_key(|f| (f.line.unwrap_or(0), f.severity != Severity::Error));
    Ok(Report {
        report,
        prov,
        judgement: None,
    })
}

/// The context files `p` records that are still there and have changed since (paths as
/// recorded, read from the working directory; files no longer there are not judged).
fn context_drift(p: &Provenance) -> Vec<Finding> {
    p.context
        .iter()
        .filter(|(path, _)| path.as_str() != "-")
        .filter_map(|(path, hash)| {
            let bytes = std::fs::read(path).ok()?;
            (crate::util::short_hash(&[&bytes]) != *hash).then(|| {
                let msg = format!(
                    "context {path} has changed since this plan was made from it: regenerate the plan (the same rbplan ask --out, or rbplan batch, redoes it)"
                );
                Finding::new(Severity::Warning, Code::ContextDrift, None, Some(1), msg)
            })
        })
        .collect()
}

/// The names in the context files `p` records that are still there (read from the working
/// directory, as `context_drift` reads them), with the steps of its runbook.
fn grounding(p: &Provenance) -> Option<crate::check::grounding::Grounding> {
    let files: Vec<(String, String)> = p
        .context
        .keys()
        .filter(|path| path.as_str() != "-")
        .filter_map(|path| Some((path.clone(), std::fs::read_to_string(path).ok()?)))
        .collect();
    if files.is_empty() {
        return None;
    }
    let runbook = p
        .runbook
        .as_ref()
        .and_then(|r| files.iter().find(|(path, _)| path == r));
    let steps: Vec<(String, String)> = runbook
        .and_then(|(_, text)| input::runbook::derive(text).ok())
        .map(|rb| rb.steps.into_iter().map(|s| (s.name, s.text)).collect())
        .unwrap_or_default();
    Some(crate::check::grounding::Grounding::new(&files, &steps))
}

/// One file's result.
pub struct Checked {
    pub path: PathBuf,
    pub result: Result<Report>,
}

/// A plan that was read and checked.
pub struct Report {
    pub report: CheckReport,
    pub prov: Option<Provenance>,
    /// With --judge-model: what the judge said.
    pub judgement: Option<crate::judge::Judgement>,
}

impl Report {
    /// What the judge is told the plan was for: what the command line gives, else what
    /// the plan's front matter records, else "(not given)".
    fn inputs(&self, given: &Given) -> crate::template::Inputs {
        let own = self.prov.as_ref();
        let not_given = || "(not given)".to_string();
        let summary = given
            .summary
            .clone()
            .or_else(|| own.and_then(|p| p.summary.clone()))
            .unwrap_or_else(not_given);
        let stages = given
            .stages
            .clone()
            .or_else(|| own.map(|p| p.stages.clone()).filter(|s| !s.is_empty()))
            .map_or_else(not_given, |s| s.join("\n"));
        crate::template::Inputs::new(summary, stages)
    }
}

/// Why a plan could not be read, for its place in the report.
pub struct Unreadable {
    pub line: Option<usize>,
    pub msg: String,
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

/// What a checked plan has, whatever the gate: the worst of its findings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    Clean,
    Warnings,
    Errors,
    /// A required section is missing or empty.
    Incomplete,
}

impl Verdict {
    pub fn of(r: &CheckReport) -> Verdict {
        if !r.complete() {
            Verdict::Incomplete
        } else if r.has_errors() {
            Verdict::Errors
        } else if r.findings.is_empty() {
            Verdict::Clean
        } else {
            Verdict::Warnings
        }
    }

    /// As `--format json` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Clean => "clean",
            Verdict::Warnings => "warnings",
            Verdict::Errors => "errors",
            Verdict::Incomplete => "incomplete",
        }
    }
}

/// `NAME.new.md` with `NAME.md` beside it: a new version rbplan wrote next to a file it
/// left alone.
fn is_new_beside(f: &std::path::Path) -> bool {
    let name = f
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    name.strip_suffix(".new.md")
        .is_some_and(|stem| f.with_file_name(format!("{stem}.md")).is_file())
}

/// Files as given; folders expand to their .md files (sorted, not recursively), skipping a
/// README.md (any case; it describes the folder, it is not a plan), a batch's report.md,
/// and a NAME.new.md that rbplan left beside NAME.md for a person to compare (name it to
/// check it).
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
                .filter(|f| !is_new_beside(f))
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
