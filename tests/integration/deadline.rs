//! A bound on a slow model: `--deadline` starts no request after it and writes the plan
//! as it stands with its verdict; SIGTERM (what `timeout` sends) writes what `ask` has and
//! exits 3.

use std::time::{Duration, Instant};

use super::common::{rbplan, tempdir};
use super::model::{asked_single, authored, reply};
use super::server::{Reply, Server};

/// Every reply after `latency`: the draft lacks sections 5-10, and each one-section
/// request gets its authored section.
fn slow_server(latency: Duration) -> Server {
    let a = authored();
    Server::start(move |req, n| {
        let text = match asked_single(&req.last_user()) {
            Some(i) => a.sections[i].1.clone(),
            None => a.without(&[4, 5, 6, 7, 8, 9]),
        };
        Reply::After(latency, Box::new(reply(req, n, &text, "stop")))
    })
}

#[test]
fn no_request_starts_after_the_deadline_and_the_plan_is_written_with_its_verdict() {
    let server = slow_server(Duration::from_millis(600));
    let dir = tempdir();
    let t0 = Instant::now();
    let out = rbplan(dir.path())
        .args(["ask", "--example", "--model", "m", "--base-url", &server.url()])
        .args([
            "--no-stream",
            "--max-repairs",
            "3",
            "--deadline",
            "2s",
            "--out",
            "plan.md",
        ])
        .run();
    assert_eq!(out.code, 3, "{}", out.stderr);
    let chats = server.chats();
    // The draft and a few of the six one-section requests: not all of them.
    assert!((2..7).contains(&chats.len()), "{} requests", chats.len());
    for c in &chats {
        let at = c.at.duration_since(t0);
        assert!(at < Duration::from_millis(2300), "a request started at {at:?}");
    }
    assert!(out.stderr.contains("the deadline passed"), "{}", out.stderr);
    assert!(out.stderr.contains("plan INCOMPLETE"), "{}", out.stderr);
    // The progress line: the round, the section asked for, the time so far.
    assert!(out.stderr.contains("writing rehearsal (1/6) ["), "{}", out.stderr);
    let plan = std::fs::read_to_string(dir.path().join("plan.md")).unwrap();
    assert!(plan.contains("status: \"incomplete\""), "{plan}");
    assert!(
        plan.contains("## 5. Pre-cutover rehearsal"),
        "the recovered section is kept"
    );
    // Its verdict is the checker's: `check` says the same.
    let check = rbplan(dir.path()).args(["check", "plan.md"]).run();
    assert_ne!(check.code, 0, "{}", check.stdout);
}

#[test]
fn with_parallel_the_parts_the_deadline_stops_show_as_failed_not_written() {
    let server = slow_server(Duration::from_millis(500));
    let dir = tempdir();
    let out = rbplan(dir.path())
        .args(["ask", "--example", "--model", "m", "--base-url", &server.url()])
        .args(["--no-stream", "--parallel", "2", "--deadline", "1200ms"])
        .args(["--out", "plan.md"])
        .run();
    assert_eq!(out.code, 3, "{}", out.stderr);
    let lines: Vec<&str> = out.stderr.lines().collect();
    let label = |l: &str, word: &str| {
        l.strip_prefix(word)
            .and_then(|r| r.split_once(": "))
            .map(|(_, id)| id.to_string())
    };
    let written: Vec<String> = lines.iter().filter_map(|l| label(l, "written ")).collect();
    let failed: Vec<String> = lines.iter().filter_map(|l| label(l, "failed ")).collect();
    assert!(!written.is_empty() && !failed.is_empty(), "{}", out.stderr);
    assert_eq!(written.len() + failed.len(), 14, "{}", out.stderr);
    for id in &failed {
        let why = format!("warning: {id} failed: the deadline passed");
        assert!(out.stderr.contains(&why), "{why} in {}", out.stderr);
        assert!(!written.contains(id), "{id} both written and failed");
    }
    assert!(out.stderr.contains("plan INCOMPLETE"), "{}", out.stderr);
}

#[test]
fn a_deadline_holds_for_each_batch_item() {
    let server = slow_server(Duration::from_millis(600));
    let dir = tempdir();
    let (summary, stages) = super::common::example_input();
    let line = |name: &str| serde_json::json!({"name": name, "summary": summary, "stages": stages}).to_string();
    std::fs::write(dir.path().join("s.jsonl"), format!("{}\n{}\n", line("a"), line("b"))).unwrap();
    let out = rbplan(dir.path())
        .args(["batch", "s.jsonl", "--out-dir", "out", "-j", "2", "--model", "m"])
        .args(["--base-url", &server.url(), "--deadline", "1500ms"])
        .run();
    assert_ne!(out.code, 0, "{}", out.stderr);
    // Each item: its draft and one or two one-section requests, never all six.
    let n = server.chats().len();
    assert!((4..=6).contains(&n), "{n} requests\n{}", out.stderr);
    for name in ["a", "b"] {
        let plan = std::fs::read_to_string(dir.path().join(format!("out/{name}.md"))).unwrap();
        assert!(plan.contains("status: \"incomplete\""), "{plan}");
    }
}

#[cfg(unix)]
#[test]
fn sigterm_writes_what_ask_has_and_exits_3() {
    let a = authored();
    let server = Server::start(move |req, n| {
        if n == 0 {
            return reply(req, n, &a.without(&[8, 9]), "stop");
        }
        // A repair that would take far longer than the test.
        Reply::Hang(Duration::from_secs(60))
    });
    let dir = tempdir();
    let child = rbplan(dir.path())
        .args(["ask", "--example", "--model", "m", "--base-url", &server.url()])
        .args(["--no-stream", "--out", "plan.md"])
        .spawn();
    let t0 = Instant::now();
    while server.chats().len() < 2 {
        assert!(t0.elapsed() < Duration::from_secs(20), "the repair request never came");
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let t1 = Instant::now();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(t1.elapsed() < Duration::from_secs(10), "it went on after SIGTERM");
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    let plan = std::fs::read_to_string(dir.path().join("plan.md")).unwrap();
    assert!(plan.contains("status: \"incomplete\""), "{plan}");
    assert!(plan.contains("## 8. Post-mortem template"), "the draft is kept");
    assert_eq!(server.chats().len(), 2, "nothing more was sent");
}
