//! `rbplan check` on plans in their own shape: the concern map it gives against a human's
//! (`NAME.concerns.toml` beside each plan), on the real public plans of fixtures/corpus
//! (git-ignored: skipped with a note when absent) and the two synthetic plans of
//! fixtures/adopt (always there). No quality finding may fire on human text.

use std::path::Path;

use serde_json::Value;

use super::common::{rbplan, repo};

/// Codes about presence and structure: what a human plan may rightly get. Every other
/// code (loops, copying, talk about the prompt, duplicates, ...) is a quality finding.
const STRUCTURAL: &[&str] = &[
    "missing",
    "empty",
    "table",
    "stage_coverage",
    "items",
    "checkboxes",
    "mentions",
    "durations",
    "conditionals",
    "specific",
];

/// One plan's comparison with its human map.
struct Compared {
    name: String,
    verdict: String,
    found: usize,
    missing: Vec<String>,
    /// Concerns whose covered/missing status matches the human's.
    agree: usize,
    total: usize,
    /// Of the concerns both call covered, those located at the same line.
    same_line: usize,
    both: usize,
    quality: Vec<String>,
}

fn expected(md: &Path) -> toml::Table {
    let t = std::fs::read_to_string(md.with_extension("concerns.toml")).expect("a .concerns.toml beside the plan");
    t.parse().expect("toml")
}

fn compare(md: &Path) -> Compared {
    let out = rbplan(&repo()).args(["check", "--json"]).arg_path(md).run();
    assert_eq!(
        out.code,
        3,
        "{}: a plan in its own shape is incomplete: {}",
        md.display(),
        out.stderr
    );
    let file = out.json()["files"][0].clone();
    let concerns = file["concerns"].as_array().expect("a concern map").clone();
    let got = |id: &str| concerns.iter().find(|c| c["id"] == id).cloned().unwrap_or(Value::Null);
    let exp = expected(md);
    let mut c = Compared {
        name: md.file_name().unwrap().to_string_lossy().into_owned(),
        verdict: file["verdict"].as_str().unwrap_or("").to_string(),
        found: concerns.iter().filter(|c| c["covered"] == true).count(),
        missing: file["missing"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect(),
        agree: 0,
        total: exp.len(),
        same_line: 0,
        both: 0,
        quality: file["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["code"].as_str().unwrap().to_string())
            .filter(|code| !STRUCTURAL.contains(&code.as_str()))
            .collect(),
    };
    for (id, e) in &exp {
        let g = got(id);
        let human = e["status"].as_str() == Some("covered");
        let ours = g["covered"] == true;
        c.agree += usize::from(human == ours);
        if human && ours {
            c.both += 1;
            c.same_line += usize::from(e["line"].as_integer() == g["line"].as_i64());
        }
        // `missing` names exactly the concerns the map does not cover.
        assert_eq!(c.missing.contains(id), !ours, "{}: {id} in missing", c.name);
    }
    c
}

fn plans(dir: &str) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(repo().join(dir))
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.retain(|p: &std::path::PathBuf| p.extension().is_some_and(|x| x == "md"));
    v.sort();
    v
}

fn table(rows: &[Compared]) {
    println!(
        "{:<42} {:<10} {:>5} {:>6} {:>6}  missing",
        "plan", "verdict", "found", "agree", "lines"
    );
    for c in rows {
        println!(
            "{:<42} {:<10} {:>5} {:>3}/{:<2} {:>3}/{:<2}  {}",
            c.name,
            c.verdict,
            c.found,
            c.agree,
            c.total,
            c.same_line,
            c.both,
            c.missing.join(", ")
        );
    }
}

#[test]
fn the_corpus_plans_map_as_a_human_mapped_them() {
    let md = plans("fixtures/corpus/plans");
    if md.is_empty() {
        println!("note: fixtures/corpus/plans/*.md absent (git-ignored); the corpus concern map is not tested");
        return;
    }
    let rows: Vec<Compared> = md.iter().map(|p| compare(p)).collect();
    table(&rows);
    let sum = |f: fn(&Compared) -> usize| rows.iter().map(f).sum::<usize>();
    let (agree, total) = (sum(|c| c.agree), sum(|c| c.total));
    let (same, both) = (sum(|c| c.same_line), sum(|c| c.both));
    println!("status agreement {agree}/{total}, same heading line {same}/{both}");
    for c in &rows {
        assert!(
            c.quality.is_empty(),
            "{}: quality findings on human text: {:?}",
            c.name,
            c.quality
        );
        assert_eq!(c.verdict, "incomplete", "{}", c.name);
        assert!(c.found >= 1, "{}: every corpus plan covers some concern", c.name);
    }
    // Measured: 138/150 and 35/38.
    assert!(agree * 100 >= total * 90, "status agreement {agree}/{total} under 90%");
    assert!(same * 100 >= both * 90, "same line {same}/{both} under 90%");
}

#[test]
fn the_synthetic_plans_map_exactly() {
    let rows: Vec<Compared> = plans("fixtures/adopt").iter().map(|p| compare(p)).collect();
    table(&rows);
    assert_eq!(rows.len(), 2);
    for c in &rows {
        assert!(c.quality.is_empty(), "{}: {:?}", c.name, c.quality);
        assert_eq!((c.agree, c.same_line), (c.total, c.both), "{}", c.name);
        assert!(c.both >= 4, "{}", c.name);
    }
}

#[test]
fn the_text_output_shows_the_map_and_no_concerns_turns_it_off() {
    let plan = "fixtures/adopt/billing-queue-cutover.md";
    let out = rbplan(&repo()).args(["check", plan]).run();
    assert_eq!(out.code, 3);
    assert!(out.stdout.contains("concerns: 4 of 10 covered"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("by-stage        line 15: \"Backout plan\" (by heading)"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("philosophy      missing"), "{}", out.stdout);
    let off = rbplan(&repo()).args(["check", "--json", "--no-concerns", plan]).run();
    let f = &off.json()["files"][0];
    assert!(f.get("concerns").is_none());
    assert_eq!(f["missing"].as_array().unwrap().len(), 10);
    // The structural checks ran on the mapped sections: "Go/No-go" has no table.
    let on = rbplan(&repo()).args(["check", "--json", plan]).run();
    let findings = on.json()["files"][0]["findings"].clone();
    let table = findings
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "table")
        .expect("a table finding");
    assert_eq!(
        (table["section"].as_str(), table["line"].as_i64()),
        (Some("decision-matrix"), Some(5))
    );
}
