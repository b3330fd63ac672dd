//! `rbplan adopt` against a local model: only the missing sections are asked for, the
//! team's plan is in the prompt, every non-blank line of it is in the written plan, and a
//! later `ask --out` keeps the adopted sections word for word.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rbplan::check::Checker;
use rbplan::output::living::{Existing, compare};
use rbplan::template::Template;

use super::common::{example_input, rbplan, repo, tempdir};
use super::model::{asked_headings, authored, is_repair, reply};
use super::server::Server;

const BILLING: &str = "fixtures/adopt/billing-queue-cutover.md";

/// A model that writes the authored plan's sections, whichever are asked for.
fn server() -> Server {
    let a = authored();
    Server::start(move |req, n| reply(req, n, &a.only(&asked_headings(&req.last_user())), "stop"))
}

fn adopt(dir: &Path, server: &Server, plan: &Path, extra: &[&str]) -> super::common::Out {
    let (summary, stages) = example_input();
    rbplan(dir)
        .args(["adopt"])
        .arg_path(plan)
        .args(["--out", "plan.md", "--model", "m", "--base-url", &server.url()])
        .args(["--summary", &summary, "--stages", &stages])
        .args(extra)
        .run()
}

/// Each non-blank line of `original` (after its front matter) with how often it occurs.
fn line_counts(text: &str) -> HashMap<&str, usize> {
    let body = &text[rbplan::markdown::parse(text).body_start..];
    let mut m = HashMap::new();
    for l in body.lines().filter(|l| !l.trim().is_empty()) {
        *m.entry(l).or_insert(0) += 1;
    }
    m
}

/// Of `original`'s non-blank lines, how many `result` holds (as often as the original
/// does), and how many there are.
fn kept(original: &str, result: &str) -> (usize, usize, Vec<String>) {
    let have = line_counts(result);
    let (mut k, mut t, mut lost) = (0, 0, Vec::new());
    for (line, n) in line_counts(original) {
        t += n;
        let got = have.get(line).copied().unwrap_or(0).min(n);
        k += got;
        if got < n {
            lost.push(line.to_string());
        }
    }
    (k, t, lost)
}

fn checker() -> Checker {
    Checker::new(&Template::builtin())
}

#[test]
fn adopt_asks_only_for_the_missing_sections_and_keeps_the_teams_word_for_word() {
    let dir = tempdir();
    let s = server();
    let plan = repo().join(BILLING);
    let original = std::fs::read_to_string(&plan).unwrap();
    let out = adopt(dir.path(), &s, &plan, &[]);
    // The team's own sections have no decision table and three checkboxes: the plan is
    // written, and fails its checks, as ask's would.
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(
        out.stderr.contains("Rollback decision matrix"),
        "the findings are shown: {}",
        out.stderr
    );
    let spec = Template::builtin().spec;
    let id = |i: usize| spec.sections[i].id.clone();
    let chats = s.chats();
    assert!(!chats.is_empty());
    let mut asked: Vec<String> = Vec::new();
    for req in &chats {
        assert!(is_repair(req), "the team's plan stands in for the first answer");
        asked.extend(asked_headings(&req.last_user()).into_iter().map(id));
        let user = req.json()["messages"][1]["content"].as_str().unwrap_or("").to_string();
        for line in original.lines().filter(|l| !l.trim().is_empty()) {
            assert!(user.contains(line), "the original is in the prompt: {line:?}");
        }
    }
    asked.sort();
    let mut missing = vec![
        "philosophy",
        "by-component",
        "rehearsal",
        "post-mortem",
        "what-if",
        "hard-truth",
    ];
    missing.sort();
    assert_eq!(asked, missing, "only the missing sections are asked for");
    let written = std::fs::read_to_string(dir.path().join("plan.md")).unwrap();
    let (k, t, lost) = kept(&original, &written);
    assert_eq!(k, t, "lost: {lost:?}");
    assert!(
        written.contains("## 2. Rollback decision matrix\n\n## Go/No-go\n")
            || written.contains("# 2. Rollback decision matrix\n\n## Go/No-go\n"),
        "{written}"
    );
    let closing = written
        .find("\n# From the original plan\n")
        .expect("the closing section");
    assert!(written[closing..].contains("billing-events, billing-retries, billing-dlq."));
    assert!(
        !written[closing..].contains("\n# 10. "),
        "the closing section is last: {written}"
    );
    // The team's sections are a person's edits, in the front matter.
    let Existing::Plan(e) = compare(&written, &checker()) else {
        panic!("rbplan front matter")
    };
    let edited = e.edited_ids(&checker());
    assert_eq!(edited, ["decision-matrix", "by-stage", "communication", "checklist"]);
    assert!(e.other_edited, "the title and the closing section are the team's too");
}

#[test]
fn a_rerun_of_ask_after_adopt_keeps_the_adopted_sections() {
    let dir = tempdir();
    let s = server();
    let plan = repo().join(BILLING);
    adopt(dir.path(), &s, &plan, &[]);
    let before = std::fs::read_to_string(dir.path().join("plan.md")).unwrap();
    let s2 = server();
    let (summary, stages) = example_input();
    let out = rbplan(dir.path())
        .args(["ask", "--model", "m", "--base-url", &s2.url(), "--no-stream"])
        .args(["--summary", &summary, "--stages", &stages, "--out", "plan.md"])
        .run();
    assert!(
        out.stderr
            .contains("keeping decision-matrix, by-stage, communication, checklist"),
        "{}",
        out.stderr
    );
    let after = std::fs::read_to_string(dir.path().join("plan.md")).unwrap();
    let c = checker();
    let section = |text: &str, id: &str| {
        let body = &text[rbplan::markdown::parse(text).body_start..];
        let o = c.outline(body);
        let l = o.primary(c.spec.index_of(id).unwrap()).expect(id).clone();
        body[l.start..l.end].to_string()
    };
    for id in ["decision-matrix", "by-stage", "communication", "checklist"] {
        assert_eq!(section(&before, id), section(&after, id), "{id} kept word for word");
    }
    let original = std::fs::read_to_string(&plan).unwrap();
    assert_eq!(kept(&original, &after).0, kept(&original, &after).1);
    for req in s2.chats() {
        let asked = asked_headings(&req.last_user());
        assert!(
            !asked.iter().any(|&i| [1, 2, 5, 6].contains(&i)),
            "an adopted section re-asked: {asked:?}"
        );
    }
}

#[test]
fn dry_run_shows_the_mapping_and_sends_nothing() {
    let dir = tempdir();
    let s = server();
    let out = adopt(dir.path(), &s, &repo().join(BILLING), &["--dry-run"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(s.received(), 0);
    assert!(!dir.path().join("plan.md").exists());
    assert!(out.stdout.contains("3. Rollback by stage"), "{}", out.stdout);
    assert!(
        out.stdout.contains("← line 15: \"Backout plan\" (by heading)"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("would generate (6):"), "{}", out.stdout);
    assert!(
        out.stdout.contains("lines kept: 22 of 22 non-blank lines"),
        "{}",
        out.stdout
    );
}

#[test]
fn an_existing_out_file_is_not_written_over() {
    let dir = tempdir();
    std::fs::write(dir.path().join("plan.md"), "mine\n").unwrap();
    let s = server();
    let out = adopt(dir.path(), &s, &repo().join(BILLING), &[]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("plan.md exists"), "{}", out.stderr);
    assert_eq!(s.received(), 0);
    assert_eq!(std::fs::read_to_string(dir.path().join("plan.md")).unwrap(), "mine\n");
}

fn plans(dir: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(repo().join(dir))
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.retain(|p| p.extension().is_some_and(|x| x == "md"));
    v.sort();
    v
}

#[test]
fn every_line_of_every_collected_plan_is_kept() {
    let corpus = plans("fixtures/corpus/plans");
    if corpus.is_empty() {
        println!("note: fixtures/corpus/plans/*.md absent (git-ignored); only fixtures/adopt is adopted");
    }
    let (mut k, mut t) = (0, 0);
    for plan in plans("fixtures/adopt").into_iter().chain(corpus) {
        let dir = tempdir();
        let s = server();
        let out = adopt(dir.path(), &s, &plan, &[]);
        assert!(matches!(out.code, 0 | 3), "{}: {}", plan.display(), out.stderr);
        let original = std::fs::read_to_string(&plan).unwrap();
        let written = std::fs::read_to_string(dir.path().join("plan.md")).unwrap();
        let (pk, pt, lost) = kept(&original, &written);
        println!(
            "{:<44} {pk}/{pt} lines kept",
            plan.file_name().unwrap().to_string_lossy()
        );
        assert_eq!(pk, pt, "{}: lost {lost:?}", plan.display());
        let report = rbplan(dir.path()).args(["check", "--json", "plan.md"]).run();
        assert_eq!(
            report.json()["files"][0]["missing"],
            serde_json::json!([]),
            "{}: every section is there after adopt",
            plan.display()
        );
        k += pk;
        t += pt;
    }
    println!("lines kept: {k} of {t}");
}

#[test]
fn the_readme_example_replays_offline() {
    let dir = tempdir();
    let out_path = dir.path().join("plan.md");
    let out = rbplan(&repo())
        .args(["adopt", BILLING, "--out"])
        .arg_path(&out_path)
        .args(["--replay", "fixtures/adopt-quickstart"])
        .args(["--summary-file", "fixtures/adopt-quickstart/summary.txt"])
        .args(["--stages-file", "fixtures/adopt-quickstart/stages.txt"])
        .run();
    // The team's Go/No-go has no decision table and its smoke tests three checkboxes.
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("regenerated 6 section(s)"), "{}", out.stderr);
    let written = std::fs::read_to_string(&out_path).unwrap();
    assert!(
        written.contains("After T+7 days, when RabbitMQ is decommissioned"),
        "{written}"
    );
    let original = std::fs::read_to_string(repo().join(BILLING)).unwrap();
    let (k, t, _) = kept(&original, &written);
    assert_eq!(k, t);
}
