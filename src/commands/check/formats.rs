//! The check's results as text, JSON, GitHub workflow annotations, JUnit XML or SARIF
//! 2.1.0. Every format carries each finding's file, line, code and message.

use std::path::Path;

use quick_xml::Writer;
use quick_xml::events::{BytesCData, BytesDecl, BytesEnd, BytesStart, Event};
use serde_json::json;

use super::{Checked, Gate, Unreadable, Verdict};
use crate::check::finding::Suppressor;
use crate::check::{CheckReport, Finding};
use crate::cli::Format;
use crate::spec::Severity;
use crate::template::Template;

pub fn render(format: Format, results: &[Checked], template: &Template, gate: Gate) -> String {
    match format {
        Format::Text => text(results, gate),
        Format::Json => json_report(results, template, gate),
        Format::Github => github(results),
        Format::Junit => junit(results, gate),
        Format::Sarif => sarif(results, template),
    }
}

fn severity_name(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
    }
}

fn count(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

/// "2 errors, 1 warning, 1 suppressed", or "0 findings".
fn finding_counts(r: &CheckReport) -> String {
    let n = |s: Severity| r.findings.iter().filter(|f| f.severity == s).count();
    let mut parts: Vec<String> = [(n(Severity::Error), "error"), (n(Severity::Warning), "warning")]
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| count(n, what))
        .collect();
    if !r.suppressed.is_empty() {
        parts.push(format!("{} suppressed", r.suppressed.len()));
    }
    if parts.is_empty() {
        "0 findings".into()
    } else {
        parts.join(", ")
    }
}

fn text(results: &[Checked], gate: Gate) -> String {
    let mut out = String::new();
    for c in results {
        let p = c.path.display();
        match &c.result {
            Ok(r) => {
                let label = if gate.passes(&r.report) { "ok" } else { "FAIL" };
                let rep = &r.report;
                out.push_str(&format!(
                    "{p}: {label} ({}/{} sections, {})\n",
                    rep.found_count(),
                    rep.sections.len(),
                    finding_counts(rep)
                ));
                out.push_str(&super::concerns::text(rep));
                for f in &rep.findings {
                    let loc = f.line.map(|l| format!(":{l}")).unwrap_or_default();
                    let sev = severity_name(f.severity);
                    out.push_str(&format!("  {p}{loc}: {sev}: {} [{}]\n", f.message, f.code));
                }
            }
            Err(e) => {
                let u = Unreadable::from(e);
                let at = u.line.map(|l| format!(":{l}")).unwrap_or_default();
                out.push_str(&format!("{p}: UNREADABLE\n  {p}{at}: error: {} [unreadable]\n", u.msg));
            }
        }
    }
    out + &summary(results, gate)
}

/// The last line: how many files were clean, had warnings or errors, were incomplete or
/// could not be read, and what the exit says.
fn summary(results: &[Checked], gate: Gate) -> String {
    let n = |v: Verdict| {
        results
            .iter()
            .filter(|c| c.result.as_ref().is_ok_and(|r| Verdict::of(&r.report) == v))
            .count()
    };
    let unreadable = results.iter().filter(|c| c.result.is_err()).count();
    let mut parts = vec![format!("{} clean", n(Verdict::Clean))];
    for (k, what) in [
        (n(Verdict::Warnings), "with warnings"),
        (n(Verdict::Errors), "with errors"),
        (n(Verdict::Incomplete), "incomplete"),
        (unreadable, "unreadable"),
    ] {
        if k > 0 {
            parts.push(format!("{k} {what}"));
        }
    }
    let failing = results
        .iter()
        .filter(|c| c.result.as_ref().is_ok_and(|r| !gate.passes(&r.report)))
        .count();
    let note = match (unreadable, failing, n(Verdict::Warnings)) {
        (u, _, _) if u > 0 => " (exit 2)".to_string(),
        (_, f, _) if f > 0 => format!(" ({} fail: exit 3)", f),
        (_, _, w) if w > 0 => " (exit 0; warnings pass, --strict fails on them)".to_string(),
        _ => String::new(),
    };
    format!("{}: {}{note}\n", count(results.len(), "file"), parts.join(", "))
}

fn json_report(results: &[Checked], template: &Template, gate: Gate) -> String {
    let files: Vec<serde_json::Value> = results
        .iter()
        .map(|c| {
            let path = c.path.display().to_string();
            match &c.result {
                Ok(r) => {
                    let mut v = json!({
                        "path": path,
                        "ok": gate.passes(&r.report),
                        "verdict": Verdict::of(&r.report).name(),
                        "complete": r.report.complete(),
                        "missing": r.report.missing_ids(),
                        "sections": r.report.sections,
                        "findings": r.report.findings,
                        "suppressed": r.report.suppressed,
                        "provenance": r.prov,
                    });
                    super::concerns::add_optional(&mut v, r);
                    v
                }
                Err(e) => {
                    let u = Unreadable::from(e);
                    json!({"path": path, "ok": false, "verdict": "unreadable", "error": u.msg, "line": u.line})
                }
            }
        })
        .collect();
    let ok = results
        .iter()
        .all(|c| c.result.as_ref().is_ok_and(|r| gate.passes(&r.report)));
    let v = json!({
        "template": {"origin": template.origin, "hash": template.hash},
        "files": files,
        "ok": ok,
    });
    serde_json::to_string_pretty(&v).expect("json") + "\n"
}

/// GitHub Actions workflow commands: `::error file=…,line=…,title=…::message`.
fn github(results: &[Checked]) -> String {
    let mut out = String::new();
    for c in results {
        let file = gh_property(&c.path.display().to_string());
        match &c.result {
            Ok(r) => {
                for f in &r.report.findings {
                    let line = f.line.map(|l| format!(",line={l}")).unwrap_or_default();
                    let title = gh_property(&format!("rbplan {}", f.code));
                    let level = severity_name(f.severity);
                    out.push_str(&format!(
                        "::{level} file={file}{line},title={title}::{}\n",
                        gh_data(&f.message)
                    ));
                }
                if !r.report.suppressed.is_empty() {
                    out.push_str(&format!(
                        "::notice file={file},title=rbplan suppressed::{}\n",
                        gh_data(&suppressed_words(&r.report))
                    ));
                }
            }
            Err(e) => {
                let u = Unreadable::from(e);
                let line = u.line.map(|l| format!(",line={l}")).unwrap_or_default();
                out.push_str(&format!(
                    "::error file={file}{line},title=rbplan unreadable::{}\n",
                    gh_data(&u.msg)
                ));
            }
        }
    }
    out
}

/// A workflow command's message: `%`, CR and LF escaped.
fn gh_data(s: &str) -> String {
    s.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}

/// A workflow command's property value: also `:` and `,`.
fn gh_property(s: &str) -> String {
    gh_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// JUnit XML: one test suite, one test case per file, a failure per failing finding.
fn junit(results: &[Checked], gate: Gate) -> String {
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    let failures = results
        .iter()
        .filter(|c| c.result.as_ref().map_or(true, |r| !gate.passes(&r.report)))
        .count();
    let mut suite = BytesStart::new("testsuite");
    suite.push_attribute(("name", "rbplan check"));
    suite.push_attribute(("tests", results.len().to_string().as_str()));
    suite.push_attribute(("failures", failures.to_string().as_str()));
    // Writing to memory cannot fail.
    let written = w
        .write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))
        .and_then(|_| w.write_event(Event::Start(suite)))
        .and_then(|_| results.iter().try_for_each(|c| junit_case(&mut w, c, gate)))
        .and_then(|_| w.write_event(Event::End(BytesEnd::new("testsuite"))));
    written.expect("writing XML to memory");
    String::from_utf8(w.into_inner()).expect("XML written from strings") + "\n"
}

fn junit_case(w: &mut Writer<Vec<u8>>, c: &Checked, gate: Gate) -> std::io::Result<()> {
    let path = c.path.display().to_string();
    let mut case = BytesStart::new("testcase");
    case.push_attribute(("classname", "rbplan.check"));
    case.push_attribute(("name", path.as_str()));
    w.write_event(Event::Start(case))?;
    match &c.result {
        Ok(r) => {
            let failing: Vec<&Finding> = r
                .report
                .findings
                .iter()
                .filter(|f| f.severity == Severity::Error || (gate.strict && f.severity == Severity::Warning))
                .collect();
            for f in failing {
                junit_failure(w, &path, f.line, f.code.as_str(), &f.message)?;
            }
            if !r.report.suppressed.is_empty() {
                w.write_event(Event::Start(BytesStart::new("system-out")))?;
                w.write_event(Event::CData(BytesCData::new(suppressed_words(&r.report))))?;
                w.write_event(Event::End(BytesEnd::new("system-out")))?;
            }
        }
        Err(e) => {
            let u = Unreadable::from(e);
            junit_failure(w, &path, u.line, "unreadable", &u.msg)?;
        }
    }
    w.write_event(Event::End(BytesEnd::new("testcase")))
}

fn junit_failure(
    w: &mut Writer<Vec<u8>>,
    path: &str,
    line: Option<usize>,
    code: &str,
    msg: &str,
) -> std::io::Result<()> {
    let mut fail = BytesStart::new("failure");
    fail.push_attribute(("type", code));
    fail.push_attribute(("message", msg));
    w.write_event(Event::Start(fail))?;
    let at = line.map(|l| format!(":{l}")).unwrap_or_default();
    w.write_event(Event::CData(BytesCData::new(format!("{path}{at}: {msg} [{code}]"))))?;
    w.write_event(Event::End(BytesEnd::new("failure")))
}

/// SARIF 2.1.0: one run, `ruleId` the finding code, locations with file and line.
fn sarif(results: &[Checked], template: &Template) -> String {
    let mut rules: Vec<String> = Vec::new();
    let mut found = Vec::new();
    for c in results {
        let uri = uri_of(&c.path);
        type Entry = (String, Severity, String, Option<usize>, Option<Suppressor>);
        let entries: Vec<Entry> = match &c.result {
            Ok(r) => r
                .report
                .findings
                .iter()
                .chain(&r.report.suppressed)
                .map(|f| {
                    (
                        f.code.to_string(),
                        f.severity,
                        f.message.clone(),
                        f.line,
                        f.suppressed_by,
                    )
                })
                .collect(),
            Err(e) => {
                let u = Unreadable::from(e);
                vec![("unreadable".into(), Severity::Error, u.msg, u.line, None)]
            }
        };
        for (code, sev, message, line, by) in entries {
            if !rules.contains(&code) {
                rules.push(code.clone());
            }
            let mut region = json!({});
            if let Some(l) = line {
                region = json!({"startLine": l});
            }
            let mut result = json!({
                "ruleId": code,
                "level": severity_name(sev),
                "message": {"text": message},
                "locations": [{"physicalLocation": {"artifactLocation": {"uri": uri}, "region": region}}],
            });
            if let Some(by) = by {
                result["suppressions"] = json!([sarif_suppression(by)]);
            }
            found.push(result);
        }
    }
    let v = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "rbplan",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules.iter().map(|r| sarif_rule(r)).collect::<Vec<_>>(),
            }},
            "properties": {"template": template.origin, "templateHash": template.hash},
            "results": found,
        }],
    });
    serde_json::to_string_pretty(&v).expect("json") + "\n"
}

/// A rule's entry: its description and a fix, from the code table.
fn sarif_rule(id: &str) -> serde_json::Value {
    match crate::check::suppress::by_name(id).map(|c| c.info()) {
        Some(i) => json!({"id": id, "shortDescription": {"text": i.checks}, "help": {"text": i.fix}}),
        None => json!({"id": id, "shortDescription": {"text": format!("rbplan check: {id}")}}),
    }
}

fn sarif_suppression(by: Suppressor) -> serde_json::Value {
    match by {
        Suppressor::Comment { line } => {
            json!({"kind": "inSource", "justification": format!("rbplan-disable comment at line {line}")})
        }
        Suppressor::Flag => json!({"kind": "external", "justification": "check --select/--ignore"}),
        by => json!({"kind": "external", "justification": format!("[check] select/ignore at {}", by.label())}),
    }
}

/// "2 findings suppressed: loop (line 12, rbplan-disable at line 10), table (--ignore)".
fn suppressed_words(r: &CheckReport) -> String {
    let each: Vec<String> = r
        .suppressed
        .iter()
        .map(|f| {
            let at = f.line.map(|l| format!("line {l}, ")).unwrap_or_default();
            let by = f
                .suppressed_by
                .map_or_else(|| Suppressor::Flag.label(), Suppressor::label);
            format!("{} ({at}{by})", f.code)
        })
        .collect();
    format!(
        "{} suppressed: {}",
        count(r.suppressed.len(), "finding"),
        each.join(", ")
    )
}

/// `check --list-codes`: every code, its severity, what it checks and a fix.
pub fn code_list() -> String {
    let mut out = String::new();
    for i in crate::check::finding::CODES {
        let sev = match i.code.default_severity() {
            Some(s) => severity_name(s),
            None => "varies",
        };
        out.push_str(&format!(
            "{:<18} {sev:<8} {}\n{:<27}fix: {}\n",
            i.name, i.checks, "", i.fix
        ));
    }
    out
}

/// A path as a relative URI reference (forward slashes, spaces and `%` escaped).
fn uri_of(p: &Path) -> String {
    p.display()
        .to_string()
        .replace('\\', "/")
        .replace('%', "%25")
        .replace(' ', "%20")
}
