//! `rbplan revise`: one request with the note and the plan, the named sections spliced in,
//! every other section byte for byte, the diff shown; `--fix`; and its bad input.

use std::path::Path;

use super::common::{Out, example_input, rbplan, repo, tempdir};
use super::model::{asked_headings, authored, is_repair, reply};
use super::server::Server;

const NOTE: &str = "Cover the Kafka consumer offsets at each stage; keep {{ braces }} as typed.";
const REVISED: &str = "Kafka consumer offsets: recorded before each stage, restored on rollback.";

/// A model that writes the authored plan, and answers a revision (or repair) with the
/// sections it names, each with a line saying it was revised.
fn server() -> Server {
    let a = authored();
    Server::start(move |req, n| {
        if !is_repair(req) {
            return reply(req, n, &a.text, "stop");
        }
        let text: Vec<String> = asked_headings(&req.last_user())
            .into_iter()
            .map(|i| format!("{}\n\n{REVISED}", a.sections[i].0))
            .collect();
        reply(req, n, &(text.join("\n\n") + "\n"), "stop")
    })
}

/// A plan written by `rbplan ask --out plan.md` in `dir`.
fn written_plan(dir: &Path, server: &Server) -> String {
    let (summary, stages) = example_input();
    let out = rbplan(dir)
        .args(["ask", "--model", "m", "--base-url", &server.url(), "--no-stream"])
        .args(["--summary", &summary, "--stages", &stages, "--out", "plan.md"])
        .run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    std::fs::read_to_string(dir.join("plan.md")).unwrap()
}

fn revise(dir: &Path, server: &Server, args: &[&str]) -> Out {
    rbplan(dir)
        .args(["revise", "plan.md", "--model", "m", "--base-url", &server.url()])
        .args(args)
        .run()
}

/// Each section's text ("## N." to the next "## "), by number.
fn sections(plan: &str) -> Vec<String> {
    (1..=10)
        .map(|n| {
            let start = plan.find(&format!("\n## {n}. ")).unwrap() + 1;
            let rest = &plan[start..];
            rest[..rest[3..].find("\n## ").map_or(rest.len(), |e| e + 3)].to_string()
        })
        .collect()
}

#[test]
fn revise_asks_once_with_the_note_and_changes_only_that_section() {
    let server = server();
    let dir = tempdir();
    let before = written_plan(dir.path(), &server);
    let out = revise(
        dir.path(),
        &server,
        &["--section", "by-stage", "--note", NOTE, "--diff"],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("revised by-stage (1 request,"), "{}", out.stderr);

    // Exactly one request: the plan as the model's draft, then the note, verbatim.
    let chats = server.chats();
    assert_eq!(chats.len(), 2, "the plan, then one revision");
    let req = chats[1].json();
    assert_eq!(chats[1].roles(), ["system", "user", "assistant", "user"]);
    let draft = req["messages"][2]["content"].as_str().unwrap();
    let body = &before[before.find("\n---\n").unwrap() + 5..];
    assert_eq!(draft.trim(), body.trim(), "the whole plan, front matter aside");
    let ask = chats[1].last_user();
    assert!(ask.contains(NOTE), "{ask}");
    assert_eq!(asked_headings(&ask), [2]);

    // Every other section byte for byte; section 3 has the revision.
    let after = std::fs::read_to_string(dir.path().join("plan.md")).unwrap();
    let (old, new) = (sections(&before), sections(&after));
    for i in (0..10).filter(|&i| i != 2) {
        assert_eq!(old[i], new[i], "section {}", i + 1);
    }
    assert!(new[2].contains(REVISED) && !old[2].contains(REVISED));
    // The diff on stdout shows the new line and the front matter's new hash for by-stage.
    assert!(
        out.stdout.starts_with("--- a/plan.md\n+++ b/plan.md\n"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains(&format!("+{REVISED}")), "{}", out.stdout);
    let changed: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with(['+', '-']) && !l.starts_with("+++") && !l.starts_with("---"))
        .collect();
    assert!(
        changed
            .iter()
            .all(|l| l.contains(REVISED) || l.contains("sections:") || l.trim().len() <= 1),
        "{changed:#?}"
    );

    // The front matter's status is the new check's. The revised section keeps the hash
    // rbplan recorded, so it reads as a person's edit: a regeneration keeps it.
    assert!(after.contains("status: \"complete\""));
    let hashes = |t: &str| {
        t.lines()
            .find(|l| l.trim_start().starts_with("sections:"))
            .unwrap()
            .to_string()
    };
    assert_eq!(hashes(&after), hashes(&before));
}

#[test]
fn dry_run_prints_the_request_and_sends_nothing() {
    let server = server();
    let dir = tempdir();
    let before = written_plan(dir.path(), &server);
    let out = revise(
        dir.path(),
        &server,
        &[
            "-s",
            "3",
            "-s",
            "Rollback what-if scenarios",
            "--note",
            NOTE,
            "--dry-run",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let ask = v[0]["messages"][3]["content"].as_str().unwrap();
    assert!(
        ask.contains(NOTE) && ask.contains("## 3. Rollback by stage\n## 9. Rollback what-if scenarios"),
        "{ask}"
    );
    assert_eq!(server.chats().len(), 1, "only the ask that wrote the plan");
    assert_eq!(std::fs::read_to_string(dir.path().join("plan.md")).unwrap(), before);
}

#[test]
fn fix_reasks_the_sections_with_findings_and_keeps_the_rest() {
    let server = server();
    let dir = tempdir();
    // A hand-written plan whose decision matrix has no table.
    let plan = std::fs::read_to_string(repo().join("fixtures/check/problems/matrix-no-table.md")).unwrap();
    std::fs::write(dir.path().join("plan.md"), &plan).unwrap();
    let out = revise(dir.path(), &server, &["--fix"]);
    assert_eq!(out.code, 2, "no front matter, no summary: {}", out.stderr);
    assert!(out.stderr.contains("--summary"), "{}", out.stderr);

    let (summary, stages) = example_input();
    let out = revise(
        dir.path(),
        &server,
        &["--fix", "--summary", &summary, "--stages", &stages],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(server.chats().len(), 1, "one repair round, one request");
    assert_eq!(asked_headings(&server.chats()[0].last_user()), [1]);
    let after = std::fs::read_to_string(dir.path().join("plan.md")).unwrap();
    let (old, new) = (sections(&plan), sections(&after));
    for i in (0..10).filter(|&i| i != 1) {
        assert_eq!(old[i], new[i], "section {}", i + 1);
    }
    assert!(new[1].contains("| Problem type"));
    assert!(after.starts_with("---\nrbplan:\n"), "front matter added");
    // Fixed: a second --fix has nothing to do and sends nothing.
    let out = revise(dir.path(), &server, &["--fix"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("nothing to fix"), "{}", out.stderr);
    assert_eq!(server.chats().len(), 1);
}

#[test]
fn bad_input_is_refused_before_anything_is_sent() {
    let server = server();
    let dir = tempdir();
    written_plan(dir.path(), &server);
    let unknown = revise(dir.path(), &server, &["--section", "kafka", "--note", NOTE]);
    assert_eq!(unknown.code, 2);
    assert!(
        unknown.stderr.contains("no section \"kafka\"") && unknown.stderr.contains("by-stage"),
        "{}",
        unknown.stderr
    );
    assert!(unknown.stderr.contains("3. Rollback by stage"), "{}", unknown.stderr);
    let empty = revise(dir.path(), &server, &["--section", "3", "--note", "  "]);
    assert_eq!(empty.code, 2, "{}", empty.stderr);
    assert!(empty.stderr.contains("the note is empty"));
    let missing = rbplan(dir.path())
        .args([
            "revise",
            "nope.md",
            "-s",
            "3",
            "--note",
            NOTE,
            "--base-url",
            &server.url(),
        ])
        .run();
    assert_eq!(missing.code, 2);
    assert!(
        missing.stderr.contains("nope.md: no such plan file"),
        "{}",
        missing.stderr
    );
    let no_note = revise(dir.path(), &server, &["--section", "3"]);
    assert_eq!(no_note.code, 2);
    // Another run writing the plan.
    let held = std::fs::File::create(dir.path().join(".plan.md.rbplan-lock")).unwrap();
    held.try_lock().unwrap();
    let locked = revise(dir.path(), &server, &["-s", "3", "--note", NOTE]);
    assert_eq!(locked.code, 5, "{}", locked.stderr);
    assert_eq!(server.chats().len(), 1, "only the ask that wrote the plan");
}

/// fixtures/revise-smollm2: a real revision by SmolLM2-135M that lost every stage
/// subsection. It is refused: the plan stays byte for byte, the attempt goes beside it.
#[test]
fn a_real_weak_revision_is_refused_and_the_plan_is_untouched() {
    let dir = tempdir();
    let quickstart = repo().join("fixtures/quickstart");
    let out = rbplan(dir.path())
        .args(["ask", "--example", "--out", "plan.md", "--replay"])
        .arg_path(&quickstart)
        .run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let before = std::fs::read_to_string(dir.path().join("plan.md")).unwrap();
    let server = super::model::fixture_server("revise-smollm2");
    let note = "Cover the Kafka consumer offsets: record them before each stage and restore them on rollback.";
    let revise = |extra: &str| {
        rbplan(dir.path())
            .args(["revise", "plan.md", "--section", "by-stage", "--note", note, extra])
            .args(["--base-url", &server.url(), "--model", "smollm2-135m-instruct"])
            .args(["--max-tokens", "600"])
            .run()
    };
    let out = revise("--diff");
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("\"3. Rollback by stage\" as revised has 5 problems (it had 0)"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("plan.md is unchanged: the revision is in plan.new.md (the diff above)"),
        "{}",
        out.stderr
    );
    assert_eq!(std::fs::read_to_string(dir.path().join("plan.md")).unwrap(), before);
    // Without --diff and off a terminal no diff is printed, and the message says how to see it.
    let quiet = revise("--max-retries=2");
    assert_eq!(quiet.code, 3, "{}", quiet.stderr);
    assert!(quiet.stdout.is_empty(), "{}", quiet.stdout);
    assert!(
        quiet
            .stderr
            .contains("(--diff shows it, `rbplan check plan.new.md` its findings)"),
        "{}",
        quiet.stderr
    );
    let attempt = std::fs::read_to_string(dir.path().join("plan.new.md")).unwrap();
    assert!(
        attempt.contains("## 3. Rollback by stage\n\nThe rollback is a feature of the plan, and it is not a failure.")
    );
    assert!(
        out.stdout.contains("-### Stage 1: Schema conversion and backfill"),
        "{}",
        out.stdout
    );
    let chats = server.chats();
    assert_eq!(chats.len(), 2);
    assert!(chats[0].last_user().contains(note));
    // --force writes it anyway (the same recorded reply).
    let out = revise("--force");
    assert_eq!(out.code, 3, "written, and it fails its checks: {}", out.stderr);
    assert!(
        std::fs::read_to_string(dir.path().join("plan.md"))
            .unwrap()
            .contains("The rollback is a feature of the plan")
    );
}
