//! Stages derived from runbooks: the 14 public runbooks of the corpus against a human's
//! list of their steps (skipped when the documents are absent), and small runbooks of our
//! own that always run, through the library and through `rbplan stages`.

use std::path::Path;

use rbplan::input::parse_stages;
use rbplan::input::runbook::derive;

use super::common::{rbplan, repo};

/// Matched names over all the corpus runbooks (of 98 listed by hand), as measured (and
/// no derived name matched none).
const CORPUS_FLOOR: usize = 98;

/// Lowercase words, punctuation and markup dropped.
fn words(t: &str) -> Vec<String> {
    t.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// The same step: one name's words run inside the other's, or at least three quarters of
/// the shorter name's words are in the longer.
fn same_step(a: &str, b: &str) -> bool {
    let (a, b) = (words(a), words(b));
    let (short, long) = if a.len() <= b.len() { (&a, &b) } else { (&b, &a) };
    if short.is_empty() {
        return false;
    }
    let shared = short.iter().filter(|w| long.contains(w)).count();
    long.join(" ").contains(&short.join(" ")) || shared * 4 >= short.len() * 3
}

/// For each expected name, whether a derived one (each used once, in order) matches it.
fn matched(derived: &[String], expected: &[String]) -> Vec<Option<usize>> {
    let mut used = vec![false; derived.len()];
    expected
        .iter()
        .map(|e| {
            let i = (0..derived.len()).find(|&i| !used[i] && same_step(&derived[i], e))?;
            used[i] = true;
            Some(i)
        })
        .collect()
}

#[test]
fn corpus_runbooks_give_the_steps_a_reader_listed() {
    let dir = repo().join("fixtures/corpus/runbooks");
    let mut lists: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".steps.txt"))
        .collect();
    lists.sort();
    assert_eq!(lists.len(), 14, "the committed step lists");
    assert!(same_step(
        "Take your app offline",
        "Take your app(s) offline and ensure no writes"
    ));
    assert!(!same_step("Restore Database", "Redirect DNS") && !same_step("Upgrade masters", "Upgrade node pools"));
    let (mut total, mut expected_total, mut seen, mut extras) = (0, 0, 0, 0);
    println!("{:<36} {:>7} {:>8} {:>7}", "runbook", "derived", "expected", "matched");
    for list in &lists {
        let name = list.file_name().unwrap().to_string_lossy().replace(".steps.txt", "");
        let md = dir.join(format!("{name}.md"));
        let Ok(text) = std::fs::read_to_string(&md) else {
            println!("{name}: document absent, skipped (see fixtures/corpus/SOURCES.md)");
            continue;
        };
        seen += 1;
        let expected: Vec<String> = std::fs::read_to_string(list)
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .map(str::to_string)
            .collect();
        let derived: Vec<String> = match derive(&text) {
            Ok(rb) => rb.steps.into_iter().map(|s| s.name).collect(),
            Err(e) => {
                println!("{name}: {e}");
                Vec::new()
            }
        };
        assert_eq!(
            parse_stages(&derived.join("\n")),
            derived,
            "{name}: names that parse_stages keeps"
        );
        let m = matched(&derived, &expected);
        let hits = m.iter().flatten().count();
        println!("{name:<36} {:>7} {:>8} {hits:>7}", derived.len(), expected.len());
        for (e, _) in expected.iter().zip(&m).filter(|(_, m)| m.is_none()) {
            println!("    miss:  {e}");
        }
        for (i, d) in derived.iter().enumerate().filter(|(i, _)| !m.contains(&Some(*i))) {
            println!("    extra: {d} ({i})");
            extras += 1;
        }
        total += hits;
        expected_total += expected.len();
    }
    if seen == 0 {
        println!("the corpus runbooks are absent: nothing compared (see fixtures/corpus/SOURCES.md)");
        return;
    }
    println!("matched {total} of {expected_total} listed steps in {seen} runbooks; {extras} extra");
    if seen == lists.len() {
        assert!(total >= CORPUS_FLOOR, "matched {total}, below the floor {CORPUS_FLOOR}");
        assert_eq!(extras, 0, "derived steps that match no listed one");
    }
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(repo().join("fixtures/runbooks").join(name)).unwrap()
}

fn names(name: &str) -> Vec<String> {
    derive(&fixture(name))
        .unwrap()
        .steps
        .into_iter()
        .map(|s| s.name)
        .collect()
}

#[test]
fn numbered_step_headings_are_the_steps_and_code_and_other_lists_are_not() {
    let rb = derive(&fixture("numbered-steps.md")).unwrap();
    let got: Vec<(&str, usize)> = rb.steps.iter().map(|s| (s.name.as_str(), s.line)).collect();
    assert_eq!(
        got,
        [
            ("Freeze writes to orders", 13),
            ("Copy the last changes", 22),
            ("Point the app at the new cluster", 30),
            ("Unfreeze writes", 34),
        ]
    );
    assert_eq!(rb.title.as_deref(), Some("Move the orders table to the new cluster"));
    assert_eq!(
        rb.summary.as_deref(),
        Some(
            "Move the orders table to the new cluster\n\nThe orders table moves from the shared cluster \
             to its own, with writes frozen for about ten minutes."
        )
    );
    assert!(
        rb.steps[1].text.contains("Counts may differ"),
        "a step's text keeps its subsections"
    );
    assert!(
        !rb.steps[3].text.contains("Keep the old table"),
        "and stops at the next section"
    );
}

#[test]
fn step_headings_under_a_steps_heading_skip_overview_and_next_steps() {
    assert_eq!(
        names("step-headings.md"),
        [
            "Generate the new key",
            "Publish both keys",
            "Switch signing to the new key",
            "Retire the old key"
        ]
    );
    let rb = derive(&fixture("step-headings.md")).unwrap();
    assert_eq!(rb.title.as_deref(), Some("Rotate the payments signing key"));
    assert!(rb.summary.unwrap().ends_with("with both keys valid during the change."));
}

#[test]
fn a_numbered_overview_list_names_the_steps_and_takes_the_sections_it_links_to() {
    let rb = derive(&fixture("overview-list.md")).unwrap();
    let got: Vec<(&str, usize)> = rb.steps.iter().map(|s| (s.name.as_str(), s.line)).collect();
    assert_eq!(
        got,
        [
            ("Stop the writers so that nothing changes during the copy", 9),
            ("Take an encrypted snapshot", 10),
            ("Restore the database from the snapshot", 13),
            ("Start the writers again", 14),
        ]
    );
    assert!(rb.steps[0].text.contains("--replicas 0"), "{}", rb.steps[0].text);
    assert!(rb.steps[1].text.contains("copy it with encryption on") && rb.steps[1].text.contains("Copy snapshot"));
}

#[test]
fn a_runbook_without_a_procedure_is_refused_with_what_was_looked_for() {
    let e = derive(&fixture("no-procedure.md")).unwrap_err();
    assert!(
        e.starts_with("no procedure found: looked for numbered step headings"),
        "{e}"
    );
}

#[test]
fn the_stages_command_prints_the_derived_steps_as_lines_or_json() {
    let dir = repo().join("fixtures/runbooks");
    let run = |args: &[&str]| rbplan(Path::new(&dir)).args(["stages"]).args(args).run();
    let out = run(&["step-headings.md"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "Generate the new key\nPublish both keys\nSwitch signing to the new key\nRetire the old key\n"
    );
    let out = run(&["numbered-steps.md", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.json(),
        serde_json::json!([
            "Freeze writes to orders",
            "Copy the last changes",
            "Point the app at the new cluster",
            "Unfreeze writes"
        ])
    );
    let out = run(&["no-procedure.md"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("no-procedure.md") && out.stderr.contains("no procedure found: looked for"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.is_empty());
}

/// The names derived from `text`.
fn derived(text: &str) -> Vec<String> {
    derive(text).unwrap().steps.into_iter().map(|s| s.name).collect()
}

#[test]
fn a_bare_step_label_takes_its_first_sentence_and_other_headings_are_skipped() {
    let md = "# Up\n\n## Procedure\n\n### Step 0.1\n\nThe first step is to pick a version. Then more.\n\n\
              ### Summary\n\nx\n\n### Step 1: Upgrade masters\n\nrun it\n\n## Post upgrade\n\nlater\n";
    let rb = derive(md).unwrap();
    let got: Vec<(&str, usize)> = rb.steps.iter().map(|s| (s.name.as_str(), s.line)).collect();
    assert_eq!(
        got,
        [("The first step is to pick a version", 5), ("Upgrade masters", 13)]
    );
    assert!(rb.steps[0].text.contains("Then more") && !rb.steps[0].text.contains("Upgrade masters"));
    assert!(!rb.steps[1].text.contains("later"));
}

#[test]
fn headings_in_code_fences_and_tight_hashes() {
    let md = "# T\n\n## Upgrade Steps\n\n### Check\n\n```sh\n# 1. not a heading\n## nor this\n```\n\n\
              ###Prepare the nodes\n\n### Notes\n\n### Finish\n";
    assert_eq!(derived(md), ["Check", "Prepare the nodes", "Finish"]);
}

#[test]
fn title_and_summary_come_from_front_matter_or_the_first_heading() {
    let md = "---\ntitle: \"Move Tables\"\nweight: 2\n---\n\n{{< info >}}\nnote\n{{< /info >}}\n\n\
              Moves tables\nbetween keyspaces.\n\n## Create tablets\n\n## Switch traffic\n";
    let rb = derive(md).unwrap();
    assert_eq!(rb.title.as_deref(), Some("Move Tables"));
    assert_eq!(
        rb.summary.as_deref(),
        Some("Move Tables\n\nMoves tables between keyspaces.")
    );
    assert_eq!(rb.steps[0].line, 13);
    let rb = derive("## Failover\n\n## Context\n\nWhy.\n\n## 1. Go\n\n## 2. Back\n").unwrap();
    assert_eq!(rb.title.as_deref(), Some("Failover"));
}

#[test]
fn nothing_found_says_what_was_looked_for() {
    let e = derive("# Team notes\n\nWe meet on Mondays.\n\n## Background\n\n## Contacts\n").unwrap_err();
    assert!(
        e.starts_with("no procedure found: looked for numbered step headings"),
        "{e}"
    );
}
