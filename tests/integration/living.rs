//! Plans people edit: a rerun keeps what a person changed word for word and regenerates
//! the rest; files rbplan cannot merge into are left alone; one writer per folder.

use std::path::Path;
use std::time::Duration;

use serde_json::json;

use super::batch::{batch, batch_cmd, item, report, service_of};
use super::common::{example_input, rbplan, tempdir, wait};
use super::model::{Authored, asked_headings, authored, is_repair, reply};
use super::server::{Reply, Request, Server};

/// The line a reviewer adds to section 4, and the section a reviewer adds after 5.
const EDIT: &str = "- Page the DBA on call before any reverse migration.";
const ADDED: &str = "## Contacts\n\nDBA on call: extension 4100.\n";

/// The input version a request was made for: summaries end "Input vN.".
fn version(req: &Request) -> String {
    let v = req.json();
    let text = v["messages"].to_string();
    let at = text.find("Input v").map(|i| i + "Input ".len()).unwrap_or(0);
    text[at..].chars().take_while(|c| c.is_alphanumeric()).collect()
}

/// The authored sections `which`, each ending with a line naming the input version.
fn marked(a: &Authored, which: &[usize], v: &str) -> String {
    let body: Vec<String> = which
        .iter()
        .map(|&i| format!("{}\n\nWritten for input {v}.", a.sections[i].0))
        .collect();
    body.join("\n\n") + "\n"
}

/// A model that writes the authored plan, marked with the input version; asked for
/// sections (a repair), it writes those.
fn server() -> Server {
    let a = authored();
    Server::start(move |req, n| {
        let v = version(req);
        let which = if is_repair(req) {
            asked_headings(&req.last_user())
        } else {
            (0..10).collect()
        };
        // A revision says so, so that it differs from the text it replaces.
        let v = if req.last_user().contains("reviewer") {
            format!("{v}, revised")
        } else {
            v
        };
        reply(req, n, &marked(&a, &which, &v), "stop")
    })
}

/// A server that fails every request.
fn down() -> Server {
    Server::start(|_, _| Reply::json(500, &json!({"error": {"message": "upstream down"}})))
}

fn summary(v: &str) -> String {
    format!("{} Input {v}.", example_input().0)
}

fn ask_out(dir: &Path, server: &Server, v: &str, extra: &[&str]) -> super::common::Out {
    rbplan(dir)
        .args(["ask", "--model", "m", "--base-url", &server.url(), "--no-stream"])
        .args([
            "--summary",
            &summary(v),
            "--stages",
            &example_input().1,
            "--out",
            "plan.md",
        ])
        .args(extra)
        .run()
}

/// The text of section `n` ("## 4." up to the next "## ").
fn section(plan: &str, n: usize) -> &str {
    let start = plan
        .find(&format!("\n## {n}. "))
        .unwrap_or_else(|| panic!("section {n} in {plan}"));
    let rest = &plan[start + 1..];
    &rest[..rest[3..].find("\n## ").map_or(rest.len(), |e| e + 3)]
}

/// Add the reviewer's line at the end of section 4 and a Contacts section after 5.
fn edit(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let s4 = section(&text, 4).trim_end().to_string();
    let s5 = section(&text, 5).trim_end().to_string();
    let text = text
        .replace(&s4, &format!("{s4}\n{EDIT}"))
        .replace(&s5, &format!("{s5}\n\n{ADDED}"));
    std::fs::write(path, &text).unwrap();
    text
}

#[test]
fn an_edited_section_and_an_added_one_survive_a_rerun_with_new_input() {
    let server = server();
    let dir = tempdir();
    let plan = dir.path().join("plan.md");
    assert_eq!(ask_out(dir.path(), &server, "v1", &[]).code, 0);
    let edited = edit(&plan);
    let s4_before = section(&edited, 4).to_string();

    let out = ask_out(dir.path(), &server, "v2", &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("keeping by-component, text outside the sections word for word"),
        "{}",
        out.stderr
    );
    let now = std::fs::read_to_string(&plan).unwrap();
    assert_eq!(section(&now, 4), s4_before, "the edited section, byte for byte");
    assert!(now.contains(&format!("Written for input v1.\n{EDIT}")));
    // The added section is still after 5, before 6; every other section is new.
    let (c, s5, s6) = (
        now.find("## Contacts").unwrap(),
        now.find("## 5. ").unwrap(),
        now.find("## 6. ").unwrap(),
    );
    assert!(s5 < c && c < s6, "{now}");
    for n in [1, 2, 3, 5, 6, 7, 8, 9, 10] {
        assert!(section(&now, n).contains("Written for input v2."), "section {n}: {now}");
    }
    // What the model was asked: one request, the kept text as its own draft, the nine
    // other sections named.
    let chats = server.chats();
    assert_eq!(chats.len(), 2, "one for v1, one for v2");
    let second = chats[1].json();
    let draft = second["messages"][2]["content"].as_str().unwrap();
    assert!(
        draft.contains(EDIT) && draft.contains("## Contacts") && !draft.contains("## 1. "),
        "{draft}"
    );
    assert_eq!(asked_headings(&chats[1].last_user()), [0, 1, 2, 4, 5, 6, 7, 8, 9]);

    // A third input: the section is still the person's (its recorded hash is rbplan's).
    let out = ask_out(dir.path(), &server, "v3", &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let third = std::fs::read_to_string(&plan).unwrap();
    assert_eq!(section(&third, 4), s4_before);
    assert!(section(&third, 1).contains("input v3"));
}

#[test]
fn a_regeneration_cut_short_leaves_the_fuller_plan_and_writes_beside_it() {
    let server = server();
    let dir = tempdir();
    let plan = dir.path().join("plan.md");
    assert_eq!(ask_out(dir.path(), &server, "v1", &[]).code, 0);
    let edited = edit(&plan);
    // New input, and the server is down: nothing of the nine sections comes back.
    let down = down();
    let out = ask_out(dir.path(), &down, "v2", &["--max-retries", "0"]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(!down.chats().is_empty(), "the regeneration was asked for");
    assert_eq!(
        std::fs::read_to_string(&plan).unwrap(),
        edited,
        "the fuller plan, byte for byte"
    );
    let want =
        "plan.md is left as it is: it has 10/10 sections and this run made 1, so the new plan goes to plan.new.md";
    assert!(out.stderr.contains(want), "{}", out.stderr);
    let beside = std::fs::read_to_string(dir.path().join("plan.new.md")).unwrap();
    assert!(beside.contains(EDIT) && beside.contains("## Contacts"), "{beside}");
    assert!(beside.contains("status: \"incomplete\""), "{beside}");
}

#[test]
fn force_regenerates_everything_and_keeps_a_backup() {
    let server = server();
    let dir = tempdir();
    let plan = dir.path().join("plan.md");
    ask_out(dir.path(), &server, "v1", &[]);
    let edited = edit(&plan);
    let out = ask_out(dir.path(), &server, "v2", &["--force"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("plan.md.bak"), "{}", out.stderr);
    assert_eq!(std::fs::read_to_string(dir.path().join("plan.md.bak")).unwrap(), edited);
    let now = std::fs::read_to_string(&plan).unwrap();
    assert!(!now.contains(EDIT) && section(&now, 4).contains("input v2"));
}

#[test]
fn a_hand_written_plan_is_left_alone_and_the_new_one_goes_beside_it() {
    let server = server();
    let dir = tempdir();
    let mine = authored().text;
    std::fs::write(dir.path().join("plan.md"), &mine).unwrap();
    let out = ask_out(dir.path(), &server, "v1", &["--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    // A script learns where the plan went from --json, not only from stderr.
    let v = out.json();
    assert!(v["written_to"].as_str().unwrap().ends_with("plan.new.md"), "{v}");
    assert!(v["out"].as_str().unwrap().ends_with("plan.md"));
    assert!(
        out.stderr
            .contains("plan.md is left as it is: it has no rbplan front matter"),
        "{}",
        out.stderr
    );
    assert_eq!(std::fs::read_to_string(dir.path().join("plan.md")).unwrap(), mine);
    let new = std::fs::read_to_string(dir.path().join("plan.new.md")).unwrap();
    assert!(new.starts_with("---\nrbplan:") && new.contains("input v1"));
}

#[test]
fn the_plan_beside_a_hand_written_file_is_kept_current_and_its_edits_kept() {
    let server = server();
    let dir = tempdir();
    let mine = authored().text;
    std::fs::write(dir.path().join("plan.md"), &mine).unwrap();
    let new = dir.path().join("plan.new.md");
    assert_eq!(ask_out(dir.path(), &server, "v1", &[]).code, 0);
    let sent = server.chats().len();
    // The same input again: plan.new.md is current, nothing is paid for twice.
    let again = ask_out(dir.path(), &server, "v1", &["--json"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(server.chats().len(), sent, "nothing sent");
    assert!(again.stderr.contains("plan.new.md is current"), "{}", again.stderr);
    // A person edits plan.new.md; a new input keeps the edit there, plan.md untouched.
    edit(&new);
    let v2 = ask_out(dir.path(), &server, "v2", &[]);
    assert_eq!(v2.code, 0, "{}", v2.stderr);
    assert!(
        v2.stderr.contains("working on") && v2.stderr.contains("plan.new.md was edited"),
        "{}",
        v2.stderr
    );
    let now = std::fs::read_to_string(&new).unwrap();
    assert!(
        now.contains(EDIT) && now.contains(ADDED) && section(&now, 6).contains("input v2"),
        "{now}"
    );
    assert_eq!(std::fs::read_to_string(dir.path().join("plan.md")).unwrap(), mine);
    assert!(!dir.path().join("plan.new.new.md").exists());
}

#[test]
fn a_batch_rerun_keeps_the_edits_in_the_plan_beside_a_hand_written_one() {
    let server = server();
    let dir = tempdir();
    std::fs::create_dir_all(dir.path().join("out")).unwrap();
    let mine = authored().text;
    std::fs::write(dir.path().join("out/beta.md"), &mine).unwrap();
    let input = write_input(dir.path(), &[("beta", "v1")]);
    assert_eq!(batch(dir.path(), &server, &input, &[]).code, 0);
    let new = dir.path().join("out/beta.new.md");
    let edited = edit(&new);
    let input = write_input(dir.path(), &[("beta", "v2")]);
    let out = batch(dir.path(), &server, &input, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let now = std::fs::read_to_string(&new).unwrap();
    assert_eq!(section(&now, 4), section(&edited, 4), "the person's line is kept");
    assert!(now.contains(ADDED) && section(&now, 1).contains("input v2"));
    assert_eq!(std::fs::read_to_string(dir.path().join("out/beta.md")).unwrap(), mine);
    let r = report(dir.path());
    let beta = item(&r, "beta");
    assert_eq!(beta["kept"], json!(["by-component", "_other"]));
    assert!(
        beta["written_beside"]
            .as_str()
            .unwrap()
            .contains("beta.md is left as it is"),
        "{beta}"
    );
    assert!(!dir.path().join("out/beta.new.new.md").exists());
}

fn write_input(dir: &Path, v_of: &[(&str, &str)]) -> std::path::PathBuf {
    let p = dir.join("services.jsonl");
    let (_, stages) = example_input();
    let text: String = v_of
        .iter()
        .map(|(n, v)| {
            json!({"name": n, "summary": format!("Service {n}. {}", summary(v)), "stages": stages}).to_string() + "\n"
        })
        .collect();
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn a_batch_regeneration_cut_short_leaves_the_fuller_plan_and_says_where_the_new_one_is() {
    let server = server();
    let dir = tempdir();
    let input = write_input(dir.path(), &[("alpha", "v1")]);
    assert_eq!(batch(dir.path(), &server, &input, &[]).code, 0);
    let alpha = dir.path().join("out/alpha.md");
    let edited = edit(&alpha);
    let down = down();
    let input = write_input(dir.path(), &[("alpha", "v2")]);
    let out = batch(dir.path(), &down, &input, &["--max-retries", "0"]);
    assert_ne!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        std::fs::read_to_string(&alpha).unwrap(),
        edited,
        "the fuller plan, byte for byte"
    );
    assert!(dir.path().join("out/alpha.new.md").exists());
    let r = report(dir.path());
    let beside = item(&r, "alpha")["written_beside"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        beside.starts_with("alpha.new.md (alpha.md is left as it is: it has 10/10 sections, this run made 1"),
        "{r}"
    );
}

#[test]
fn a_failed_redo_says_the_earlier_plan_is_kept() {
    let server = server();
    let dir = tempdir();
    let input = write_input(dir.path(), &[("alpha", "v1")]);
    assert_eq!(batch(dir.path(), &server, &input, &[]).code, 0);
    let alpha = dir.path().join("out/alpha.md");
    let before = std::fs::read_to_string(&alpha).unwrap();
    let down = down();
    let input = write_input(dir.path(), &[("alpha", "v2")]);
    let out = batch(dir.path(), &down, &input, &["--max-retries", "0"]);
    assert_eq!(out.code, 4, "{}", out.stderr);
    assert_eq!(std::fs::read_to_string(&alpha).unwrap(), before);
    let md = std::fs::read_to_string(dir.path().join("out/report.md")).unwrap();
    assert!(
        md.contains("failed (redone: the input changed); the earlier plan is kept: [alpha.md](alpha.md)"),
        "{md}"
    );
}

#[test]
fn a_batch_rerun_keeps_the_edit_and_says_so_per_plan() {
    let server = server();
    let dir = tempdir();
    let input = write_input(dir.path(), &[("alpha", "v1"), ("beta", "v1"), ("gamma", "v1")]);
    assert_eq!(batch(dir.path(), &server, &input, &[]).code, 0);
    let beta = dir.path().join("out/beta.md");
    let edited = edit(&beta);
    let input = write_input(dir.path(), &[("alpha", "v1"), ("beta", "v2"), ("gamma", "v1")]);
    let out = batch(dir.path(), &server, &input, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("kept a person's edits: by-component, added text"),
        "{}",
        out.stderr
    );
    let r = report(dir.path());
    assert_eq!(item(&r, "beta")["kept"], json!(["by-component", "_other"]));
    assert_eq!(item(&r, "alpha")["resumed"], true);
    assert_eq!(r["totals"]["with_kept_edits"], 1);
    let md = std::fs::read_to_string(dir.path().join("out/report.md")).unwrap();
    assert!(md.contains("a person's edits kept: by-component, added text"), "{md}");
    let now = std::fs::read_to_string(&beta).unwrap();
    assert_eq!(section(&now, 4), section(&edited, 4));
    assert!(section(&now, 1).contains("input v2"));
    // Only beta was asked about again, once.
    let again: Vec<String> = server.chats()[3..].iter().map(service_of).collect();
    assert_eq!(again, ["beta"]);
}

/// The second of two runs on one folder refuses at once; the server sees only the first.
#[test]
fn two_runs_on_one_folder_the_second_refuses_and_spends_nothing() {
    let a = authored();
    let server = Server::start(move |req, n| {
        Reply::After(
            Duration::from_millis(300),
            Box::new(reply(req, n, &marked(&a, &(0..10).collect::<Vec<_>>(), "v1"), "stop")),
        )
    });
    let dir = tempdir();
    let names: Vec<(String, &str)> = (0..6).map(|i| (format!("svc{i}"), "v1")).collect();
    let refs: Vec<(&str, &str)> = names.iter().map(|(n, v)| (n.as_str(), *v)).collect();
    let input = write_input(dir.path(), &refs);
    let first = batch_cmd(dir.path(), &server, &input, &["-j", "1"]).spawn();
    // Wait until the first run holds the folder (its first request reached the server).
    let t0 = std::time::Instant::now();
    while server.received() == 0 && t0.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = batch(dir.path(), &server, &input, &[]);
    assert_eq!(second.code, 5, "{}", second.stderr);
    assert!(
        second.stderr.contains("out is in use by another rbplan run (pid "),
        "{}",
        second.stderr
    );
    let first = wait(first);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(
        server.chats().len(),
        6,
        "one request per service, all from the first run"
    );
    let services: Vec<String> = server.chats().iter().map(service_of).collect();
    let mut sorted = services.clone();
    sorted.dedup();
    assert_eq!(sorted.len(), 6, "{services:?}");
    // The lock went with the first run: a third run proceeds (and keeps every plan).
    let third = batch(dir.path(), &server, &input, &[]);
    assert_eq!(third.code, 0, "{}", third.stderr);
    assert_eq!(report(dir.path())["totals"]["resumed"], 6);
}

#[test]
fn ask_out_locks_its_file() {
    let server = server();
    let dir = tempdir();
    // Hold the lock the way a running `ask --out plan.md` does.
    let held = std::fs::File::create(dir.path().join(".plan.md.rbplan-lock")).unwrap();
    held.try_lock().unwrap();
    let out = ask_out(dir.path(), &server, "v1", &[]);
    assert_eq!(out.code, 5, "{}", out.stderr);
    assert!(
        out.stderr.contains("plan.md is in use by another rbplan run"),
        "{}",
        out.stderr
    );
    assert_eq!(server.chats().len(), 0, "nothing sent");
    drop(held);
    assert_eq!(ask_out(dir.path(), &server, "v1", &[]).code, 0);
}

/// A reviewer's revision is kept by a later regeneration, like a person's edit; and an
/// `ask --out` over a current, unedited plan sends nothing.
#[test]
fn a_revision_survives_regeneration_and_a_current_plan_is_not_paid_for_twice() {
    let server = server();
    let dir = tempdir();
    let plan = dir.path().join("plan.md");
    assert_eq!(ask_out(dir.path(), &server, "v1", &[]).code, 0);
    let again = ask_out(dir.path(), &server, "v1", &[]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(again.stderr.contains("plan.md is current"), "{}", again.stderr);
    assert_eq!(server.chats().len(), 1, "nothing sent for a current plan");

    let revise = rbplan(dir.path())
        .args([
            "revise",
            "plan.md",
            "--section",
            "3",
            "--note",
            "Cover the Kafka consumer offsets.",
        ])
        .args(["--model", "m", "--base-url", &server.url()])
        .run();
    assert_eq!(revise.code, 0, "{}", revise.stderr);
    let revised = section(&std::fs::read_to_string(&plan).unwrap(), 3).to_string();
    let out = ask_out(dir.path(), &server, "v2", &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("keeping by-stage"), "{}", out.stderr);
    assert!(
        out.stderr.contains("regenerating what nobody edited (one request)"),
        "{}",
        out.stderr
    );
    let now = std::fs::read_to_string(&plan).unwrap();
    assert_eq!(section(&now, 3), revised);
    assert!(section(&now, 1).contains("input v2"));
    // The same input again: the plan (a reviewer's section in it) is current.
    let sent = server.chats().len();
    let same = ask_out(dir.path(), &server, "v2", &[]);
    assert!(same.stderr.contains("plan.md is current"), "{}", same.stderr);
    assert_eq!(server.chats().len(), sent);
}
