//! `rbplan check` on the plans in fixtures/check (see fixtures/check/README.md): heading
//! styles that must pass, plans with one problem each, stage coverage, `--json`, folders
//! and bad input. Runs in the repository, so paths in the output are as typed here.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};

use super::common::{Out, example_input, files_in, rbplan, read, repo, section_headings, section_ids, spec, tempdir};

const STYLES: &str = "fixtures/check/styles";
const PROBLEMS: &str = "fixtures/check/problems";

fn check(args: &[&str]) -> Out {
    rbplan(&repo()).args(["check"]).args(args).run()
}

fn check_in(dir: &Path, args: &[&str]) -> Out {
    rbplan(dir).args(["check"]).args(args).run()
}

/// The risky stages of the template's example migration, which every fixture plan covers.
fn stages() -> String {
    example_input().1
}

/// 1-based line of the only line of `rel` that starts with `start` (or is exactly `start`
/// when it ends with a newline).
fn line(rel: &str, start: &str) -> u64 {
    let text = read(rel);
    let hits: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| match start.strip_suffix('\n') {
            Some(exact) => *l == exact,
            None => l.starts_with(start),
        })
        .map(|(i, _)| i + 1)
        .collect();
    assert_eq!(hits.len(), 1, "{rel}: lines starting with {start:?}: {hits:?}");
    hits[0] as u64
}

fn md_files(dir: &str) -> Vec<String> {
    files_in(&repo().join(dir))
        .into_iter()
        .filter(|n| n.ends_with(".md"))
        .map(|n| format!("{dir}/{n}"))
        .collect()
}

/// The JSON report's files, by path.
fn by_path(out: &Out) -> BTreeMap<String, Value> {
    out.json()["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| (f["path"].as_str().unwrap().to_string(), f.clone()))
        .collect()
}

/// (severity, code, section, line, stage) of each finding, in report order.
type Brief = (String, String, Option<String>, Option<u64>, Option<String>);

fn briefs(file: &Value) -> Vec<Brief> {
    file["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["severity"].as_str().unwrap().to_string(),
                f["code"].as_str().unwrap().to_string(),
                f["section"].as_str().map(String::from),
                f["line"].as_u64(),
                f["stage"].as_str().map(String::from),
            )
        })
        .collect()
}

fn brief(sev: &str, code: &str, section: Option<&str>, line: Option<u64>) -> Brief {
    (sev.into(), code.into(), section.map(String::from), line, None)
}

// ---------------------------------------------------------------------------
// Plans that pass

#[test]
fn every_heading_style_passes_strict_with_the_example_stages() {
    let files = md_files(STYLES);
    assert!(files.len() >= 9, "{files:?}");
    let stages = stages();
    let out = check(&["--strict", "--stages", &stages, STYLES, "fixtures/authored/plan.md"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    for f in files.iter().map(String::as_str).chain(["fixtures/authored/plan.md"]) {
        assert!(
            out.stdout.contains(&format!("{f}: ok (10/10 sections, 0 findings)\n")),
            "{f}:\n{}",
            out.stdout
        );
    }
    let n = files.len() + 1;
    assert!(
        out.stdout.ends_with(&format!("{n} files: {n} clean\n")),
        "{}",
        out.stdout
    );
}

/// Each section is found at the line of its own heading, whatever the style: the line
/// holds a word of that section's title (or alias) and the lines go up in order.
#[test]
fn each_style_finds_every_section_at_its_heading_line() {
    let words: &[&[&str]] = &[
        &["philosophy", "approach"],
        &["decision"],
        &["stage"],
        &["component"],
        &["rehearsal", "drill"],
        &["communication"],
        &["checklist"],
        &["post mortem", "postmortem", "retrospective"],
        &["scenario"],
        &["hard truth", "limits"],
    ];
    let ids = section_ids();
    assert_eq!(words.len(), ids.len(), "a list of words for each section of the spec");
    let out = check(&["--json", STYLES]);
    assert_eq!(out.code, 0, "{}", out.stdout);
    let files = by_path(&out);
    assert_eq!(files.keys().cloned().collect::<Vec<_>>(), md_files(STYLES));
    for (path, f) in &files {
        let text = read(path);
        let lines: Vec<&str> = text.lines().collect();
        let mut prev = 0;
        let sections = f["sections"].as_array().unwrap();
        assert_eq!(sections.len(), ids.len());
        for (i, s) in sections.iter().enumerate() {
            assert_eq!(s["id"], ids[i], "{path}: {s}");
            assert_eq!(s["state"], "found", "{path}: {s}");
            assert_eq!(s["occurrences"], 1, "{path}: {s}");
            assert_eq!(s["number"], i + 1);
            let at = s["line"].as_u64().unwrap() as usize;
            let heading = lines[at - 1].to_lowercase().replace('-', " ");
            assert!(
                words[i].iter().any(|w| heading.contains(w)),
                "{path}: section {} at line {at} is {heading:?}",
                s["id"]
            );
            assert!(at > prev, "{path}: section {} at line {at} after {prev}", s["id"]);
            prev = at;
        }
    }
}

/// The system prompt asks for the sections the spec checks: its numbered headings
/// ("### 1. Rollback philosophy") are the spec's titles, all of them and in order.
#[test]
fn the_system_prompts_numbered_titles_are_the_specs_sections() {
    let system = spec().files.system.expect("the template has a system prompt");
    let text = read(&format!("prompts/rollback-plan/{system}"));
    let numbered: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("### "))
        .filter(|h| {
            h.split_once(". ")
                .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
        .map(str::trim)
        .collect();
    assert_eq!(numbered, section_headings());
}

#[test]
fn section_lines_for_setext_and_alias_headings() {
    let out = check(&[
        "--json",
        "fixtures/check/styles/setext.md",
        "fixtures/check/styles/aliases.md",
    ]);
    let files = by_path(&out);
    let line_of = |path: &str, id: &str| {
        files[path]["sections"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id)
            .unwrap()["line"]
            .as_u64()
            .unwrap()
    };
    // A setext heading's line is its text, not its underline.
    let setext = "fixtures/check/styles/setext.md";
    let at = line(setext, "Rollback by stage\n");
    assert_eq!(line_of(setext, "by-stage"), at);
    assert!(read(setext).lines().nth(at as usize).unwrap().starts_with("-----"));
    let aliases = "fixtures/check/styles/aliases.md";
    assert_eq!(
        line_of(aliases, "post-mortem"),
        line(aliases, "### Retrospective template")
    );
    assert_eq!(line_of(aliases, "hard-truth"), line(aliases, "### Limits of rollback"));
}

#[test]
fn crlf_fixtures_really_have_crlf_line_endings() {
    for f in ["crlf.md", "bom-crlf.md"] {
        let bytes = std::fs::read(repo().join(STYLES).join(f)).unwrap();
        let crlf = bytes.windows(2).filter(|w| w == b"\r\n").count();
        let lf = bytes.iter().filter(|&&b| b == b'\n').count();
        assert!(crlf > 100 && crlf == lf, "{f}: {crlf} CRLF of {lf} line ends");
    }
}

/// Regression: a UTF-8 byte-order mark hid the heading on the first line, so a plan saved
/// by a Windows editor lost its first section.
#[test]
fn a_byte_order_mark_hides_no_heading() {
    let bom = "fixtures/check/styles/bom-crlf.md";
    assert!(
        std::fs::read(repo().join(bom))
            .unwrap()
            .starts_with(b"\xef\xbb\xbf# Rollback plan")
    );
    let dir = tempdir();
    // The first section's heading on the very first line, right after the BOM.
    let text = read(bom);
    let first = text.find("## 1.").unwrap();
    std::fs::write(dir.path().join("plan.md"), format!("\u{feff}{}", &text[first..])).unwrap();
    let out = check_in(dir.path(), &["--strict", "--json", "plan.md"]);
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert_eq!(out.json()["files"][0]["sections"][0]["line"], 1);
}

// ---------------------------------------------------------------------------
// Plans with problems

/// Plans in fixtures/check/problems with one finding each: file, severity, code, section,
/// and the text its line starts with.
#[rustfmt::skip]
const ONE_FINDING: &[(&str, &str, &str, &str, &str)] = &[
    ("empty-section.md", "error", "empty", "by-component", "## 4. Specific rollback procedures"),
    ("duplicate.md", "error", "duplicate", "communication", "## 6. Communication during rollback\n"),
    ("out-of-order.md", "warning", "out_of_order", "checklist", "## 7. Post-rollback checklist"),
    ("matrix-columns.md", "error", "table", "decision-matrix", "| Problem type"),
    ("matrix-rows.md", "error", "table", "decision-matrix", "| Problem type"),
    ("matrix-no-table.md", "error", "table", "decision-matrix", "## 2. Rollback decision matrix"),
    ("few-scenarios.md", "error", "items", "what-if", "## 9. Rollback what-if"),
    ("many-scenarios.md", "error", "items", "what-if", "## 9. Rollback what-if"),
    ("no-checkboxes.md", "error", "checkboxes", "checklist", "## 7. Post-rollback checklist"),
    ("no-point-of-no-return.md", "error", "mentions", "hard-truth", "## 10. The hard truth"),
    ("communication-audiences.md", "warning", "mentions", "communication", "## 6. Communication"),
];

/// Every plan in fixtures/check/problems, with exactly the findings it must produce.
fn expected_problems() -> BTreeMap<String, Vec<Brief>> {
    let p = |name: &str| format!("{PROBLEMS}/{name}");
    let at = |name: &str, start: &str| Some(line(&p(name), start));
    let mut m = BTreeMap::new();
    // One missing section each.
    for (name, section) in [("prose-mention.md", "rehearsal"), ("code-fence.md", "post-mortem")] {
        m.insert(p(name), vec![brief("error", "missing", Some(section), None)]);
    }
    for &(name, sev, code, section, start) in ONE_FINDING {
        m.insert(p(name), vec![brief(sev, code, Some(section), at(name, start))]);
    }
    m.insert(
        p("missing-sections.md"),
        vec![
            brief("error", "missing", Some("by-component"), None),
            brief("error", "missing", Some("rehearsal"), None),
            brief("error", "missing", Some("post-mortem"), None),
        ],
    );
    m.insert(
        p("uncovered-stage.md"),
        vec![(
            "error".into(),
            "stage_coverage".into(),
            Some("by-stage".into()),
            at("uncovered-stage.md", "## 3. Rollback by stage"),
            Some("Decommission MySQL".into()),
        )],
    );
    for name in ["stale-template.md", "stale-template-crlf.md"] {
        m.insert(p(name), vec![brief("warning", "stale_template", None, Some(1))]);
    }
    // Degenerate or generic text: a loop, the prompt's own examples, another migration.
    m.insert(
        p("loop.md"),
        vec![brief("error", "loop", Some("decision-matrix"), Some(24))],
    );
    m.insert(
        p("parroted.md"),
        vec![
            brief("error", "copied", Some("decision-matrix"), at("parroted.md", "## 2.")),
            brief("error", "copied", Some("what-if"), at("parroted.md", "## 9.")),
        ],
    );
    m.insert(p("other-migration.md"), vec![brief("error", "generic", None, Some(1))]);
    m.insert(
        p("draft.md"),
        vec![
            brief("error", "missing", Some("by-stage"), None),
            brief("error", "missing", Some("by-component"), None),
            brief("error", "missing", Some("rehearsal"), None),
            brief("error", "missing", Some("checklist"), None),
            brief("error", "missing", Some("post-mortem"), None),
            brief("error", "missing", Some("hard-truth"), None),
            brief("error", "table", Some("decision-matrix"), at("draft.md", "| Problem |")),
            brief(
                "warning",
                "mentions",
                Some("communication"),
                at("draft.md", "## Communication"),
            ),
            brief(
                "error",
                "empty",
                Some("what-if"),
                at("draft.md", "## What-if scenarios"),
            ),
        ],
    );
    m
}

#[test]
fn each_problem_plan_reports_exactly_its_findings() {
    let stages = stages();
    let out = check(&["--json", "--stages", &stages, PROBLEMS]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    let files = by_path(&out);
    let want = expected_problems();
    assert_eq!(
        files.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "every problem plan has an expectation here"
    );
    for (path, findings) in &want {
        assert_eq!(&briefs(&files[path]), findings, "{path}");
    }
}

#[test]
fn text_report_names_each_problem_with_file_and_line() {
    let out = check(&[
        "fixtures/check/problems/missing-sections.md",
        "fixtures/check/problems/empty-section.md",
        "fixtures/check/problems/matrix-columns.md",
        "fixtures/check/problems/few-scenarios.md",
        "fixtures/check/problems/out-of-order.md",
    ]);
    assert_eq!(out.code, 3);
    let want = "\
fixtures/check/problems/missing-sections.md: FAIL (7/10 sections, 3 errors)
  fixtures/check/problems/missing-sections.md: error: section \"4. Specific rollback procedures by component\" is missing [missing]
  fixtures/check/problems/missing-sections.md: error: section \"5. Pre-cutover rehearsal\" is missing [missing]
  fixtures/check/problems/missing-sections.md: error: section \"8. Post-mortem template\" is missing [missing]
fixtures/check/problems/empty-section.md: FAIL (9/10 sections, 1 error)
  fixtures/check/problems/empty-section.md:92: error: section \"4. Specific rollback procedures by component\" has a heading but nothing under it [empty]
fixtures/check/problems/matrix-columns.md: FAIL (10/10 sections, 1 error)
  fixtures/check/problems/matrix-columns.md:13: error: \"2. Rollback decision matrix\": the table has no column for \"Decision authority\", \"Time to decide\" [table]
fixtures/check/problems/few-scenarios.md: FAIL (10/10 sections, 1 error)
  fixtures/check/problems/few-scenarios.md:150: error: \"9. Rollback what-if scenarios\" has 3 scenarios; expected between 5 and 10 [items]
fixtures/check/problems/out-of-order.md: ok (10/10 sections, 1 warning)
  fixtures/check/problems/out-of-order.md:137: warning: section \"7. Post-rollback checklist\" comes after \"8. Post-mortem template\" (line 127); the template puts it before [out_of_order]
5 files: 0 clean, 1 with warnings, 2 with errors, 2 incomplete (4 fail: exit 3)
";
    assert_eq!(out.stdout, want);
}

#[test]
fn structural_messages_say_what_is_wrong() {
    let stages = stages();
    let out = check(&["--json", "--stages", &stages, PROBLEMS]);
    let files = by_path(&out);
    let msg = |name: &str| {
        files[&format!("{PROBLEMS}/{name}")]["findings"][0]["message"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(msg("matrix-rows.md").contains("the table has 3 rows; expected at least 4"));
    assert!(msg("matrix-no-table.md").contains("no table; expected columns \"Problem type\""));
    assert!(msg("many-scenarios.md").contains("has 11 scenarios; expected between 5 and 10"));
    assert!(msg("no-checkboxes.md").contains("has 0 checkboxes"));
    assert_eq!(
        msg("uncovered-stage.md"),
        "stage \"Decommission MySQL\" has no subsection in \"3. Rollback by stage\""
    );
    assert!(msg("no-point-of-no-return.md").contains("point of no return"));
    assert!(msg("communication-audiences.md").ends_with("\"status page\", \"customer\""));
    assert!(msg("duplicate.md").contains("is written out 2 times (lines 115, 127); keep one"));
}

/// Regression: a plan with error findings was labelled "ok (10/10 sections, 2 findings)"
/// and counted "1 ok, 0 with problems". The exit code keeps the spec's rule (errors fail
/// only with --strict); the words say what was found.
#[test]
fn error_findings_fail_and_warnings_fail_only_with_strict() {
    let plan = "fixtures/check/problems/matrix-columns.md";
    let out = check(&[plan]);
    assert_eq!(out.code, 3, "{}", out.stdout);
    assert!(
        out.stdout
            .starts_with(&format!("{plan}: FAIL (10/10 sections, 1 error)\n")),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .ends_with("1 file: 0 clean, 1 with errors (1 fail: exit 3)\n"),
        "{}",
        out.stdout
    );
    let warned = "fixtures/check/problems/communication-audiences.md";
    let out = check(&[warned]);
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert!(
        out.stdout
            .ends_with("1 file: 0 clean, 1 with warnings (exit 0; warnings pass, --strict fails on them)\n"),
        "{}",
        out.stdout
    );
    let out = check(&["--strict", warned]);
    assert_eq!(out.code, 3);
    assert!(out.stdout.starts_with(&format!("{warned}: FAIL")), "{}", out.stdout);
    let help = check(&["--help"]);
    assert!(
        help.stdout.contains("Error findings fail without it"),
        "{}",
        help.stdout
    );
}

#[test]
fn exit_code_fails_on_error_findings_and_with_strict_on_warnings_too() {
    // (plan, exit code, exit code with --strict)
    let cases = [
        ("fixtures/authored/plan.md", 0, 0),
        ("problems/missing-sections.md", 3, 3),
        ("problems/empty-section.md", 3, 3),
        ("problems/prose-mention.md", 3, 3),
        ("problems/code-fence.md", 3, 3),
        ("problems/duplicate.md", 3, 3),
        ("problems/out-of-order.md", 0, 3),
        ("problems/matrix-columns.md", 3, 3),
        ("problems/few-scenarios.md", 3, 3),
        ("problems/no-checkboxes.md", 3, 3),
        ("problems/uncovered-stage.md", 3, 3),
        ("problems/communication-audiences.md", 0, 3),
        ("problems/stale-template.md", 0, 3),
        ("problems/stale-template-crlf.md", 0, 3),
    ];
    let stages = stages();
    for (plan, plain, strict) in cases {
        let path = if plan.starts_with("fixtures") {
            plan.to_string()
        } else {
            format!("fixtures/check/{plan}")
        };
        let out = check(&["--stages", &stages, &path]);
        assert_eq!(out.code, plain, "{plan}: {}", out.stdout);
        let out = check(&["--strict", "--stages", &stages, &path]);
        assert_eq!(out.code, strict, "{plan} --strict: {}", out.stdout);
        let verdict = if strict == 0 { "ok" } else { "FAIL" };
        assert!(
            out.stdout.starts_with(&format!("{path}: {verdict} (")),
            "{}",
            out.stdout
        );
    }
    // Without --stages there is nothing to cover.
    assert_eq!(
        check(&["--strict", "fixtures/check/problems/uncovered-stage.md"]).code,
        0
    );
}

// ---------------------------------------------------------------------------
// --json

#[test]
fn json_report_shape_field_by_field() {
    let out = check(&[
        "--json",
        "fixtures/check/problems/empty-section.md",
        "fixtures/check/problems/duplicate.md",
    ]);
    assert_eq!(out.code, 3);
    let v = out.json();
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&v), ["files", "ok", "template"]);
    assert_eq!(v["ok"], false);
    assert_eq!(v["template"]["origin"], "built-in rollback-plan");
    assert!(v["template"]["hash"].as_str().unwrap().starts_with("sha256:"));
    let files = v["files"].as_array().unwrap();
    assert_eq!(files.len(), 2);

    let empty = &files[0];
    assert_eq!(
        keys(empty),
        [
            "complete",
            "findings",
            "missing",
            "ok",
            "path",
            "provenance",
            "sections",
            "suppressed",
            "verdict"
        ]
    );
    assert_eq!(empty["path"], "fixtures/check/problems/empty-section.md");
    assert_eq!(empty["ok"], false);
    assert_eq!(empty["verdict"], "incomplete");
    assert_eq!(empty["complete"], false);
    assert_eq!(empty["missing"], json!(["by-component"]));
    assert_eq!(empty["provenance"], Value::Null);
    assert_eq!(empty["suppressed"], json!([]));
    assert_eq!(
        empty["findings"],
        json!([{
            "severity": "error",
            "code": "empty",
            "section": "by-component",
            "line": 92,
            "message": "section \"4. Specific rollback procedures by component\" has a heading but nothing under it",
        }])
    );
    let sections = empty["sections"].as_array().unwrap();
    let ids: Vec<&str> = sections.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, section_ids());
    assert_eq!(
        sections[3],
        json!({"id": "by-component", "number": 4, "title": "Specific rollback procedures by component",
               "state": "empty", "line": 92, "occurrences": 1})
    );
    assert_eq!(
        sections[0],
        json!({"id": "philosophy", "number": 1, "title": "Rollback philosophy",
               "state": "found", "line": 3, "occurrences": 1})
    );

    // A section written out twice is an error: which copy holds?
    let dup = &files[1];
    assert_eq!(dup["ok"], false, "an error finding fails");
    assert_eq!(dup["verdict"], "errors");
    assert_eq!(dup["complete"], true);
    assert_eq!(dup["missing"], json!([]));
    assert_eq!(dup["sections"][5]["occurrences"], 2);
    assert_eq!(dup["sections"][5]["line"], 115);
    assert_eq!(dup["findings"][0]["severity"], "error");
    // A warning alone does not fail without --strict.
    let out = check(&["--json", "fixtures/check/problems/out-of-order.md"]);
    let f = &out.json()["files"][0];
    assert_eq!(
        (f["ok"].clone(), f["verdict"].clone()),
        (json!(true), json!("warnings"))
    );
    assert_eq!(out.code, 0);

    // A missing section has no line; its section entry has none either.
    let out = check(&["--json", "fixtures/check/problems/missing-sections.md"]);
    let f = &out.json()["files"][0];
    assert_eq!(
        f["findings"][0],
        json!({"severity": "error", "code": "missing", "section": "by-component",
               "message": "section \"4. Specific rollback procedures by component\" is missing"})
    );
    assert_eq!(
        f["sections"][4],
        json!({"id": "rehearsal", "number": 5, "title": "Pre-cutover rehearsal", "state": "missing", "occurrences": 0})
    );
    assert_eq!(f["missing"], json!(["by-component", "rehearsal", "post-mortem"]));

    // With --strict, "ok" follows the exit code; the verdict says what the plan has.
    let out = check(&["--json", "--strict", "fixtures/check/problems/out-of-order.md"]);
    assert_eq!(out.code, 3);
    assert_eq!(out.json()["ok"], false);
    assert_eq!(out.json()["files"][0]["ok"], false);
    assert_eq!(out.json()["files"][0]["verdict"], "warnings");

    // Error findings fail without --strict: "ok" is false, the verdict says "errors".
    let out = check(&["--json", "fixtures/check/problems/matrix-columns.md"]);
    assert_eq!(out.code, 3);
    let f = &out.json()["files"][0];
    assert_eq!((f["ok"].clone(), f["verdict"].clone()), (json!(false), json!("errors")));
    let clean = check(&["--json", "fixtures/authored/plan.md"]);
    assert_eq!(clean.json()["files"][0]["verdict"], "clean", "{}", clean.stdout);
}

#[test]
fn stage_finding_in_json_names_the_stage() {
    let stages = stages();
    let out = check(&[
        "--json",
        "--stages",
        &stages,
        "fixtures/check/problems/uncovered-stage.md",
    ]);
    assert_eq!(out.code, 3, "an uncovered stage is an error finding");
    let f = &out.json()["files"][0]["findings"][0];
    assert_eq!(
        f,
        &json!({"severity": "error", "code": "stage_coverage", "section": "by-stage", "line": 24,
                "stage": "Decommission MySQL",
                "message": "stage \"Decommission MySQL\" has no subsection in \"3. Rollback by stage\""})
    );
}

// ---------------------------------------------------------------------------
// Provenance

#[test]
fn plans_from_another_template_version_are_flagged() {
    let stale = "fixtures/check/problems/stale-template.md";
    let out = check(&["--json", stale]);
    assert_eq!(out.code, 0);
    let v = out.json();
    let current = v["template"]["hash"].as_str().unwrap().to_string();
    let f = &v["files"][0];
    assert_eq!(f["provenance"]["template_hash"], "sha256:0000000000000000");
    assert_eq!(f["provenance"]["model"], "scripted-demo");
    assert_eq!(f["findings"][0]["code"], "stale_template");
    assert_eq!(f["findings"][0]["line"], 1);
    let msg = f["findings"][0]["message"].as_str().unwrap();
    assert!(
        msg.contains("sha256:0000000000000000") && msg.contains(&current),
        "{msg}"
    );
    assert_eq!(check(&["--strict", stale]).code, 3);

    // The same plan stamped with the current template's hash is not flagged.
    let dir = tempdir();
    let fresh = read(stale).replace("sha256:0000000000000000", &current);
    std::fs::write(dir.path().join("fresh.md"), fresh).unwrap();
    let out = check_in(dir.path(), &["--strict", "--json", "fresh.md"]);
    assert_eq!(out.code, 0, "{}", out.stdout);
    let f = &out.json()["files"][0];
    assert_eq!(f["findings"], json!([]));
    assert_eq!(f["provenance"]["template_hash"], current.as_str());
    // Regression: with CRLF line ends the provenance was not read, so a stale plan passed.
    let out = check(&["--json", "fixtures/check/problems/stale-template-crlf.md"]);
    let f = &out.json()["files"][0];
    assert_eq!(f["provenance"]["template_hash"], "sha256:0000000000000000");
    assert_eq!(f["findings"][0]["code"], "stale_template");
    // Front matter that is not rbplan's is no provenance and no finding.
    let out = check(&["--strict", "--json", "fixtures/check/styles/front-matter.md"]);
    assert_eq!(out.code, 0);
    assert_eq!(out.json()["files"][0]["provenance"], Value::Null);
}

// ---------------------------------------------------------------------------
// Stage coverage

#[test]
fn stages_are_matched_on_word_forms_and_uncovered_ones_named() {
    let plan = "fixtures/check/stages/add-column.md";
    // Stage "Backfill the new column" vs subsection "Backfilling new columns".
    let out = check(&[
        "--strict",
        "--stages",
        "Add the nullable column; Backfill the new column",
        plan,
    ]);
    assert_eq!(out.code, 0, "{}", out.stdout);
    let out = check(&[
        "--json",
        "--stages",
        "Backfill the new column (high)\nRename the table (low)\nBACKFILL NEW COLUMNS",
        plan,
    ]);
    let findings = out.json()["files"][0]["findings"].clone();
    assert_eq!(
        findings,
        json!([{"severity": "error", "code": "stage_coverage", "section": "by-stage",
                "line": line(plan, "## 3. Rollback by stage"), "stage": "Rename the table",
                "message": "stage \"Rename the table\" has no subsection in \"3. Rollback by stage\""}])
    );
    // A stage that shares only one of its two words with a subsection is not covered.
    let out = check(&["--stages", "Write backfill", plan]);
    assert!(
        out.stdout.contains("stage \"Write backfill\" has no subsection"),
        "{}",
        out.stdout
    );
}

#[test]
fn stages_from_a_file() {
    let dir = tempdir();
    std::fs::write(
        dir.path().join("stages.txt"),
        "- Stage 2: Backfill the new column\n- Rename the table\n",
    )
    .unwrap();
    let plan = repo().join("fixtures/check/stages/add-column.md");
    let out = check_in(dir.path(), &["--stages-file", "stages.txt", plan.to_str().unwrap()]);
    assert_eq!(out.code, 3, "an uncovered stage is an error finding");
    assert!(
        out.stdout.contains("stage \"Rename the table\" has no subsection"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("Backfill"), "{}", out.stdout);
}

// ---------------------------------------------------------------------------
// Folders

#[test]
fn a_folder_checks_its_md_files_in_name_order() {
    let dir = tempdir();
    let d = dir.path();
    let plan = read("fixtures/authored/plan.md");
    let broken = read("fixtures/check/problems/missing-sections.md");
    std::fs::create_dir_all(d.join("plans/sub")).unwrap();
    std::fs::create_dir_all(d.join("batch-out")).unwrap();
    std::fs::write(d.join("plans/b.md"), &broken).unwrap();
    std::fs::write(d.join("plans/a.md"), &plan).unwrap();
    std::fs::write(d.join("plans/notes.txt"), "not a plan").unwrap();
    std::fs::write(d.join("plans/.draft.md"), "hidden").unwrap();
    std::fs::write(d.join("plans/sub/c.md"), "not looked at").unwrap();
    // A batch's report.md (next to report.json) is not a plan; a lone report.md is.
    std::fs::write(d.join("batch-out/svc.md"), &plan).unwrap();
    std::fs::write(d.join("batch-out/report.md"), "# rbplan batch report\n").unwrap();
    std::fs::write(d.join("batch-out/report.json"), "{}").unwrap();
    std::fs::write(d.join("plans/report.md"), &plan).unwrap();
    std::fs::write(d.join("single.md"), &plan).unwrap();

    let out = check_in(d, &["--json", "single.md", "plans", "batch-out"]);
    assert_eq!(out.code, 3, "b.md misses sections");
    let paths: Vec<String> = out.json()["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        paths,
        [
            "single.md",
            "plans/a.md",
            "plans/b.md",
            "plans/report.md",
            "batch-out/svc.md"
        ]
    );
    let out = check_in(d, &["plans"]);
    assert!(
        out.stdout.contains("plans/a.md: ok (10/10 sections, 0 findings)"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("plans/b.md: FAIL (7/10 sections, 3 errors)"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .ends_with("3 files: 2 clean, 1 incomplete (1 fail: exit 3)\n"),
        "{}",
        out.stdout
    );
}

// ---------------------------------------------------------------------------
// Bad input

#[test]
fn a_missing_file_is_an_input_error_naming_it() {
    let out = check(&["fixtures/authored/plan.md", "fixtures/check/no-such-plan.md"]);
    assert_eq!(out.code, 2);
    assert_eq!(out.stdout, "", "nothing is reported when an argument is bad");
    assert_eq!(
        out.stderr.trim(),
        "error: fixtures/check/no-such-plan.md: no such file or folder"
    );
}

#[test]
fn a_bad_template_is_an_input_error() {
    let out = check(&[
        "--template",
        "fixtures/check/no-such-template",
        "fixtures/authored/plan.md",
    ]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("fixtures/check/no-such-template"), "{}", out.stderr);
}

#[test]
fn no_plan_argument_is_a_usage_error() {
    let out = check(&[]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("<PLAN>"), "{}", out.stderr);
}

/// Regression: a plan that is not UTF-8 was read lossily and checked as if it were fine.
#[test]
fn a_plan_that_is_not_utf8_is_an_input_error_naming_file_and_line() {
    let bad = "fixtures/check/bad-input/latin1.md";
    let out = check(&[bad]);
    assert_eq!(out.code, 2, "{}", out.stdout);
    assert!(
        out.stdout.starts_with(&format!(
            "{bad}: UNREADABLE\n  {bad}:5: error: not valid UTF-8 text [unreadable]\n"
        )),
        "{}",
        out.stdout
    );
    assert_eq!(out.stderr.trim(), format!("error: {bad}:5: not valid UTF-8 text"));
    // Also among good plans, and from a folder.
    let out = check(&["fixtures/authored/plan.md", "fixtures/check/bad-input"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains(&format!("{bad}:5:")), "{}", out.stderr);
}

/// Regression: one unreadable plan in a folder aborted the whole check (exit 2) and no
/// other result was shown. It is now reported in its place; the input error still wins.
#[test]
fn an_unreadable_plan_is_reported_in_place_and_the_others_are_checked() {
    let dir = tempdir();
    let d = dir.path();
    std::fs::create_dir_all(d.join("plans")).unwrap();
    std::fs::write(d.join("plans/a.md"), read("fixtures/authored/plan.md")).unwrap();
    std::fs::copy(repo().join("fixtures/check/bad-input/latin1.md"), d.join("plans/b.md")).unwrap();
    std::fs::write(
        d.join("plans/c.md"),
        read("fixtures/check/problems/missing-sections.md"),
    )
    .unwrap();
    std::fs::copy(repo().join("fixtures/check/bad-input/latin1.md"), d.join("plans/d.md")).unwrap();
    let out = check_in(d, &["plans"]);
    assert_eq!(
        out.code, 2,
        "an unreadable plan wins over a failing one: {}",
        out.stdout
    );
    for want in [
        "plans/a.md: ok (10/10 sections",
        "plans/b.md: UNREADABLE\n  plans/b.md:5: error: not valid UTF-8 text [unreadable]\n",
        "plans/c.md: FAIL (7/10 sections",
        "plans/d.md: UNREADABLE\n",
    ] {
        assert!(out.stdout.contains(want), "{want:?}:\n{}", out.stdout);
    }
    assert_eq!(
        out.stderr.trim(),
        "error: 2 plans could not be read (see above): plans/b.md, plans/d.md"
    );

    let out = check_in(d, &["--json", "plans"]);
    assert_eq!(out.code, 2);
    let v = out.json();
    assert_eq!(v["ok"], false);
    let files = v["files"].as_array().unwrap();
    assert_eq!(files.len(), 4);
    assert_eq!(
        files[1],
        json!({"path": "plans/b.md", "ok": false, "verdict": "unreadable", "error": "not valid UTF-8 text", "line": 5})
    );
    assert_eq!(files[0]["ok"], true);
}

/// A README.md in a folder of plans describes the folder; it is not a plan.
#[test]
fn a_folder_readme_is_not_checked() {
    let dir = tempdir();
    let d = dir.path();
    std::fs::create_dir_all(d.join("plans/sub")).unwrap();
    std::fs::write(d.join("plans/a.md"), read("fixtures/authored/plan.md")).unwrap();
    std::fs::write(d.join("plans/README.md"), "# Our plans\n").unwrap();
    std::fs::write(d.join("plans/Readme.md"), "# Our plans\n").unwrap();
    std::fs::write(d.join("plans/sub/b.md"), "# not looked at\n").unwrap();
    let out = check_in(d, &["plans"]);
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert!(!out.stdout.to_lowercase().contains("readme"), "{}", out.stdout);
    assert!(
        !out.stdout.contains("sub"),
        "folders are not searched recursively: {}",
        out.stdout
    );
    // Named on its own, it is checked like any file.
    let out = check_in(d, &["plans/README.md"]);
    assert_eq!(out.code, 3, "{}", out.stdout);
}

/// Regression: empty stages were taken as "no stages to cover", so nothing was checked.
#[test]
fn empty_stages_are_a_usage_error() {
    let plan = "fixtures/check/problems/uncovered-stage.md";
    for stages in ["", "   ", " ; ; ", "\n\n"] {
        let out = check(&["--stages", stages, plan]);
        assert_eq!(out.code, 2, "{stages:?}: {}", out.stdout);
        assert_eq!(out.stdout, "");
        assert!(
            out.stderr.starts_with("error: the stages from --stages are empty"),
            "{}",
            out.stderr
        );
    }
    let dir = tempdir();
    std::fs::write(dir.path().join("stages.txt"), " \n- \n").unwrap();
    let plan = repo().join(plan);
    let out = check_in(dir.path(), &["--stages-file", "stages.txt", plan.to_str().unwrap()]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.starts_with("error: the stages from stages.txt are empty"),
        "{}",
        out.stderr
    );
    let out = check_in(dir.path(), &["--stages-file", "none.txt", plan.to_str().unwrap()]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.starts_with("error: none.txt: cannot read stages: "),
        "{}",
        out.stderr
    );
}

/// Regression: `check --stages-file -` read a file named "-" instead of stdin, as `ask` does.
#[test]
fn stages_file_dash_reads_stdin() {
    let plan = "fixtures/check/stages/add-column.md";
    let out = rbplan(&repo())
        .args(["check", "--stages-file", "-", plan])
        .stdin("- Stage 2: Backfill the new column\n- Rename the table\n")
        .run();
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(
        out.stdout.contains("stage \"Rename the table\" has no subsection"),
        "{}",
        out.stdout
    );
    let out = rbplan(&repo())
        .args(["check", "--stages-file", "-", plan])
        .stdin(";\n")
        .run();
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .starts_with("error: the stages from --stages-file - (stdin) are empty"),
        "{}",
        out.stderr
    );
}

/// Regression: a subsection named like another section ("#### Communication" inside a
/// stage) was taken for that section: a false duplicate, out-of-order sections, and the
/// stage section cut short so its later stages looked uncovered.
#[test]
fn a_subsection_named_like_another_section_stays_a_subsection() {
    let plan = "fixtures/check/styles/subsection-names.md";
    let stages = stages();
    let out = check(&["--strict", "--json", "--stages", &stages, plan]);
    assert_eq!(out.code, 0, "{}", out.stdout);
    let f = &out.json()["files"][0];
    assert_eq!(f["findings"], json!([]));
    assert_eq!(f["sections"][5]["line"], line(plan, "## 6. Communication"));
    assert_eq!(f["sections"][4]["line"], line(plan, "## 5. Pre-cutover"));
    assert!(line(plan, "#### Communication") < line(plan, "### Stage 5"));
}

/// Regression: headings inside a scenario ("#### Plan" under "### What if …?") were
/// counted as scenarios, so six scenarios read as twelve ("expected between 5 and 10").
#[test]
fn headings_inside_a_scenario_are_not_scenarios() {
    let plan = "fixtures/check/styles/nested-scenarios.md";
    assert_eq!(read(plan).matches("\n#### Plan\n").count(), 6);
    let out = check(&["--strict", plan]);
    assert_eq!(out.code, 0, "{}", out.stdout);
    // Seven more scenarios of the same shape are too many.
    let dir = tempdir();
    let more: String = (1..=7)
        .map(|i| format!("### What if region {i} fails over?\n\n#### Plan\n\nHold.\n\n"))
        .collect();
    let text = read(plan).replace("## 10. The hard truth", &format!("{more}## 10. The hard truth"));
    std::fs::write(dir.path().join("plan.md"), text).unwrap();
    let out = check_in(dir.path(), &["plan.md"]);
    assert!(
        out.stdout.contains("has 13 scenarios; expected between 5 and 10"),
        "{}",
        out.stdout
    );
}

/// Regression: stage coverage missed common word forms: "-ing" of verbs ending in "e"
/// ("Validating" for "Validate"), doubled consonants ("Cutting"), "-ed" forms, and words
/// written apart ("cut over" for "cutover"), so covered stages were reported uncovered.
#[test]
fn every_stage_of_the_stages_file_is_covered_whatever_its_word_forms() {
    let plan = "fixtures/check/stages/add-column.md";
    let out = check(&["--strict", "--stages-file", "fixtures/check/stages/stages.txt", plan]);
    assert_eq!(out.code, 0, "{}", out.stdout);
    for (stage, subsection) in [
        ("Validate data", "### Stage 3 — Validating the data"),
        ("Read cutover", "### Stage 4 — Cutting over reads"),
        ("Cut over the reads", "### Stage 4 — Cutting over reads"),
        ("Dropped legacy columns", "### Stage 5 — Dropping the legacy column"),
        ("Added a nullable column", "### Stage 1 — Adding a nullable column"),
    ] {
        line(plan, subsection);
        let out = check(&["--strict", "--stages", stage, plan]);
        assert_eq!(out.code, 0, "{stage}: {}", out.stdout);
    }
    // Still by name: a stage sharing one word of two is not covered.
    for stage in ["Write cutover", "Validate schema", "Drop the table"] {
        let out = check(&["--json", "--stages", stage, plan]);
        let f = &out.json()["files"][0]["findings"];
        assert_eq!(f[0]["stage"], stage, "{stage}: {f}");
    }
}

/// Regression: a heading with hyphens between all its words ("Post-Rollback-Checklist")
/// named no section, because hyphenated words were always glued into one.
#[test]
fn hyphens_between_words_are_punctuation() {
    let plan = "fixtures/check/styles/kebab-case.md";
    line(plan, "## 7. Post-Rollback-Checklist");
    line(plan, "## 2. Rollback-Decision-Matrix");
    let stages = stages();
    let out = check(&["--strict", "--stages", &stages, plan]);
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert!(out.stdout.contains("(10/10 sections, 0 findings)"), "{}", out.stdout);
}

/// Regression: a folder with no plans gave "no .md files found in the given folders"
/// without saying which folder.
#[test]
fn folders_with_nothing_to_check_are_named() {
    let dir = tempdir();
    std::fs::create_dir_all(dir.path().join("empty")).unwrap();
    std::fs::create_dir_all(dir.path().join("notes")).unwrap();
    std::fs::write(dir.path().join("notes/todo.txt"), "x").unwrap();
    let out = check_in(dir.path(), &["empty", "notes"]);
    assert_eq!(out.code, 2);
    assert_eq!(out.stderr.trim(), "error: no .md files in empty, notes");
    // An empty folder next to plans is no error: there is something to check.
    std::fs::write(dir.path().join("plan.md"), read("fixtures/authored/plan.md")).unwrap();
    let out = check_in(dir.path(), &["empty", "plan.md"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
}

/// Regression: a risk note in brackets ("Backfill [high]") stayed in the stage name, so
/// no subsection could cover it.
#[test]
fn a_risk_note_in_brackets_is_not_part_of_the_stage() {
    let stages = "Schema conversion and backfill [high]; Decommission MySQL [low]";
    let out = check(&["--strict", "--stages", stages, "fixtures/authored/plan.md"]);
    assert_eq!(out.code, 0, "{}", out.stdout);
    let out = check(&[
        "--json",
        "--stages",
        stages,
        "fixtures/check/problems/uncovered-stage.md",
    ]);
    let f = &out.json()["files"][0]["findings"];
    assert_eq!(f.as_array().unwrap().len(), 1, "{f}");
    assert_eq!(f[0]["stage"], "Decommission MySQL");
}

/// The matrix-rows plan with its table finding (line 13) suppressed by a comment before it.
fn suppressed_plan(dir: &Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(repo().join("fixtures/check/problems/matrix-rows.md")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let at = lines.iter().position(|l| l.starts_with("| ")).expect("the table");
    let mut out: Vec<&str> = lines[..at].to_vec();
    out.push("<!-- rbplan-disable-next-line table -->");
    out.extend(&lines[at..]);
    let p = dir.join("plan.md");
    std::fs::write(&p, out.join("\n") + "\n").unwrap();
    p
}

#[test]
fn a_suppressed_finding_is_counted_in_every_format_and_never_fails_the_plan() {
    let dir = tempdir();
    suppressed_plan(dir.path());
    let out = check_in(dir.path(), &["plan.md"]);
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert!(
        out.stdout.starts_with("plan.md: ok (10/10 sections, 1 suppressed)"),
        "{}",
        out.stdout
    );
    let v = check_in(dir.path(), &["plan.md", "--json"]).json();
    let s = &v["files"][0]["suppressed"][0];
    assert_eq!(
        (s["code"].as_str(), s["line"].as_u64()),
        (Some("table"), Some(14)),
        "{v}"
    );
    assert_eq!(s["suppressed_by"]["comment"]["line"], 13, "{v}");
    let gh = check_in(dir.path(), &["plan.md", "--format", "github"]).stdout;
    assert!(
        gh.starts_with("::notice file=plan.md,title=rbplan suppressed::1 finding suppressed: table (line 14"),
        "{gh}"
    );
    let junit = check_in(dir.path(), &["plan.md", "--format", "junit"]).stdout;
    assert!(
        junit.contains("<system-out><![CDATA[1 finding suppressed: table"),
        "{junit}"
    );
    assert!(junit.contains("failures=\"0\""), "{junit}");
    let sarif: serde_json::Value =
        serde_json::from_str(&check_in(dir.path(), &["plan.md", "--format", "sarif"]).stdout).unwrap();
    let r = &sarif["runs"][0]["results"][0];
    assert_eq!(
        (r["ruleId"].as_str(), r["suppressions"][0]["kind"].as_str()),
        (Some("table"), Some("inSource")),
        "{r}"
    );
    // Without the comment it fails; a comment that matches nothing is a warning.
    let plan = dir.path().join("plan.md");
    let text = std::fs::read_to_string(&plan)
        .unwrap()
        .replace("next-line table", "next-line loop");
    std::fs::write(&plan, text).unwrap();
    let out = check_in(dir.path(), &["plan.md"]);
    assert_eq!(out.code, 3, "{}", out.stdout);
    assert!(
        out.stdout
            .contains("plan.md:13: warning: this rbplan-disable suppresses nothing"),
        "{}",
        out.stdout
    );
}

#[test]
fn select_and_ignore_choose_codes_and_an_unknown_one_lists_the_valid_codes() {
    let plan = "fixtures/check/problems/matrix-rows.md";
    let out = check(&[plan, "--ignore", "table"]);
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert!(out.stdout.contains("1 suppressed"), "{}", out.stdout);
    assert_eq!(check(&[plan, "--select", "loop,durations"]).code, 0);
    assert_eq!(check(&[plan, "--select", "table"]).code, 3);
    // Missing sections always count.
    assert_eq!(
        check(&["fixtures/check/problems/missing-sections.md", "--ignore", "missing"]).code,
        3
    );
    let out = check(&[plan, "--ignore", "tabel"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("--ignore \"tabel\": no such code; the codes are missing, empty,"),
        "{}",
        out.stderr
    );
    let list = check(&["--list-codes"]);
    assert_eq!(list.code, 0);
    assert!(
        list.stdout.contains("stage_coverage") && list.stdout.contains("fix: "),
        "{}",
        list.stdout
    );
}
