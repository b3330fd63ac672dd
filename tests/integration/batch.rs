//! `rbplan batch` end to end: the binary against a local "fleet" server whose behaviour
//! per service is chosen by the service's name, with assertions on the requests it got,
//! the plan files, report.json and the exit code.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::common::{Out, Run, example_input, files_in, interrupt, rbplan, tempdir, wait};
use super::model::{Authored, asked_headings, authored, is_repair, reply};
use super::server::{Reply, Request, Server};

/// What the fleet server does for a service, chosen from its name's prefix.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    /// `ok…`: a complete plan at once.
    Ok,
    /// `gap…`: the draft lacks sections 5 and 8; the repair returns them.
    Gap,
    /// `stuck…`: the draft lacks sections 9 and 10; repairs return nothing useful.
    Stuck,
    /// `down…`: always 500.
    Down,
}

fn mode_of(name: &str) -> Mode {
    if name.starts_with("gap") {
        Mode::Gap
    } else if name.starts_with("stuck") {
        Mode::Stuck
    } else if name.starts_with("down") {
        Mode::Down
    } else {
        Mode::Ok
    }
}

/// The service a request is about: every summary starts with "Service <name>.".
pub(super) fn service_of(req: &Request) -> String {
    let v = req.json();
    let first_user = v["messages"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["role"] == "user"))
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_string();
    let Some(i) = first_user.find("Service ") else {
        return String::new();
    };
    let rest = &first_user[i + "Service ".len()..];
    rest[..rest.find(". ").unwrap_or(rest.len())].to_string()
}

/// A chat reply, after `delay` (sent as a delayed chunked body, so the server never blocks).
fn delayed(r: Reply, delay: Duration) -> Reply {
    match r {
        Reply::Full { status, headers, body } if !delay.is_zero() => Reply::Chunks {
            status,
            headers,
            chunks: vec![(delay, body)],
            reset: false,
        },
        other => other,
    }
}

pub(super) fn fleet_reply(a: &Authored, req: &Request, n: usize) -> Reply {
    let name = service_of(req);
    match mode_of(&name) {
        Mode::Down => Reply::json(
            500,
            &json!({"error": {"message": "backend down", "type": "server_error"}}),
        ),
        Mode::Ok => reply(req, n, &a.text, "stop"),
        Mode::Gap if is_repair(req) => reply(req, n, &a.only(&asked_headings(&req.last_user())), "stop"),
        Mode::Gap => reply(req, n, &a.without(&[4, 7]), "stop"),
        Mode::Stuck if is_repair(req) => reply(req, n, "I have nothing to add.", "stop"),
        Mode::Stuck => reply(req, n, &a.without(&[8, 9]), "stop"),
    }
}

pub(super) fn fleet(delay: Duration) -> Server {
    let a = Arc::new(authored());
    Server::start(move |req, n| delayed(fleet_reply(&a, req, n), delay))
}

/// A JSONL input of services with the example migration (so the authored plan covers
/// their stages), each summary naming its service.
pub(super) fn jsonl(dir: &Path, names: &[&str]) -> PathBuf {
    let (summary, stages) = example_input();
    let p = dir.join("services.jsonl");
    let text: String = names
        .iter()
        .map(|n| json!({"name": n, "summary": format!("Service {n}. {summary}"), "stages": stages}).to_string() + "\n")
        .collect();
    std::fs::write(&p, text).unwrap();
    p
}

/// `rbplan batch INPUT --out-dir out --model m --base-url SERVER EXTRA` in `dir`, to run
/// or spawn.
pub(super) fn batch_cmd(dir: &Path, server: &Server, input: &Path, extra: &[&str]) -> Run {
    rbplan(dir)
        .args(["batch"])
        .arg_path(input)
        .args(["--out-dir", "out", "--model", "m", "--base-url", &server.url()])
        .args(extra)
}

pub(super) fn batch(dir: &Path, server: &Server, input: &Path, extra: &[&str]) -> Out {
    batch_cmd(dir, server, input, extra).run()
}

pub(super) fn report(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("out/report.json")).unwrap()).unwrap()
}

pub(super) fn item<'a>(r: &'a Value, name: &str) -> &'a Value {
    r["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in report"))
}

/// Names of services the server was asked about, one per chat request.
fn asked(server: &Server) -> Vec<String> {
    server.chats().iter().map(service_of).collect()
}

#[test]
fn mixed_outcomes_are_isolated_and_reported_field_by_field() {
    let server = fleet(Duration::ZERO);
    let dir = tempdir();
    let input = jsonl(dir.path(), &["ok-a", "gap-b", "stuck-c", "down-d", "ok-e"]);
    let out = batch(
        dir.path(),
        &server,
        &input,
        &["--max-retries", "1", "--max-repairs", "1", "--json"],
    );
    assert_eq!(out.code, 4, "some failed → exit 4\n{}", out.stderr);

    // stdout is the report, the same as report.json.
    let r = report(dir.path());
    assert_eq!(out.json(), r);
    assert_eq!(r["engine"], "live");
    assert_eq!(r["interrupted"], false);
    assert_eq!(r["model"], "m");
    let t = &r["totals"];
    assert_eq!(
        (
            &t["items"],
            &t["complete"],
            &t["incomplete"],
            &t["failed"],
            &t["pending"]
        ),
        (&json!(5), &json!(3), &json!(1), &json!(1), &json!(0))
    );
    // ok: 1 each; gap: draft + 1 repair; stuck: draft + 1 repair; down: 1 request, retried
    // once (retries are counted apart, as for a success).
    assert_eq!(t["requests"], 1 + 2 + 2 + 1 + 1);
    assert_eq!(t["transport_retries"], 1);
    assert_eq!(t["repair_rounds"], 2);

    let ok = item(&r, "ok-a");
    assert_eq!(ok["status"], "complete");
    assert_eq!(ok["file"], "ok-a.md");
    assert_eq!(ok["line"], 1);
    assert_eq!(ok["missing"], json!([]));
    assert_eq!(ok["repair_rounds"], 0);
    assert_eq!(ok["transport_retries"], 0);
    assert_eq!(ok["requests"], 1);
    assert!(ok["tokens"]["total_tokens"].as_u64().unwrap() > 0);
    assert!(ok["duration_ms"].is_u64());
    assert!(ok.get("error").is_none());

    let gap = item(&r, "gap-b");
    assert_eq!(gap["status"], "complete");
    assert_eq!(gap["repair_rounds"], 1);
    assert_eq!(gap["requests"], 2);

    let stuck = item(&r, "stuck-c");
    assert_eq!(stuck["status"], "incomplete");
    assert_eq!(stuck["missing"], json!(["what-if", "hard-truth"]));
    assert_eq!(stuck["repair_rounds"], 1);

    let down = item(&r, "down-d");
    assert_eq!(down["status"], "failed");
    assert_eq!(down["transport_retries"], 1);
    assert_eq!(down["requests"], 1);
    let err = down["error"].as_str().unwrap();
    assert!(err.contains("HTTP 500") && err.contains("backend down"), "{err}");

    // Plans on disk: complete and incomplete ones, with provenance; none for the failure.
    assert_eq!(
        files_in(&dir.path().join("out")),
        [
            "gap-b.md",
            "ok-a.md",
            "ok-e.md",
            "report.json",
            "report.md",
            "stuck-c.md"
        ]
    );
    let stuck_md = std::fs::read_to_string(dir.path().join("out/stuck-c.md")).unwrap();
    assert!(
        stuck_md.starts_with("---\nrbplan:\n  name: \"stuck-c\"\n"),
        "{stuck_md}"
    );
    assert!(stuck_md.contains("  status: \"incomplete\"\n  missing: [\"what-if\", \"hard-truth\"]"));
    let report_md = std::fs::read_to_string(dir.path().join("out/report.md")).unwrap();
    assert!(
        report_md.contains("| [stuck-c](stuck-c.md) | incomplete | what-if, hard-truth |"),
        "{report_md}"
    );
    assert!(report_md.contains("| down-d | failed |"), "{report_md}");
    assert!(out.stderr.contains("1 incomplete, 1 failed"), "{}", out.stderr);

    // The written plans check clean with `rbplan check`, the gap one after its splice.
    let chk = rbplan(dir.path()).args(["check", "out/gap-b.md", "out/ok-a.md"]).run();
    assert_eq!(chk.code, 0, "{}", chk.stdout);
}

#[test]
fn exit_code_3_when_some_are_incomplete_and_none_failed() {
    let server = fleet(Duration::ZERO);
    let dir = tempdir();
    let input = jsonl(dir.path(), &["ok-a", "stuck-b"]);
    let out = batch(dir.path(), &server, &input, &["--max-repairs", "1"]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert_eq!(out.stdout, "", "stdout stays clean without --json");
    let all_ok = batch(dir.path(), &server, &jsonl(dir.path(), &["ok-a", "ok-c"]), &[]);
    assert_eq!(all_ok.code, 0, "{}", all_ok.stderr);
}

#[test]
fn rate_limited_server_pauses_every_worker_and_every_plan_completes() {
    // The third request gets a 429 asking for 1 s; everything else succeeds.
    let a = Arc::new(authored());
    let server = Server::start(move |req, n| {
        if n == 2 {
            Reply::json(
                429,
                &json!({"error": {"message": "Rate limit reached", "type": "requests"}}),
            )
            .with_header("retry-after", "1")
        } else {
            delayed(fleet_reply(&a, req, n), Duration::from_millis(300))
        }
    });
    let dir = tempdir();
    let names: Vec<String> = (0..8).map(|i| format!("ok-{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let input = jsonl(dir.path(), &names);
    let out = batch(dir.path(), &server, &input, &["--concurrency", "4"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let r = report(dir.path());
    assert_eq!(r["totals"]["complete"], 8);
    assert_eq!(r["totals"]["failed"], 0);
    // A 429 is waited out, not a retry: --max-retries is untouched.
    assert_eq!(r["totals"]["transport_retries"], 0);
    assert_eq!(r["totals"]["rate_limited"], 1);
    let reqs = server.chats();
    assert_eq!(reqs.len(), 9, "8 plans + the rate-limited one again");
    // Requests already on their way when the 429 went out arrive within a few ms; every
    // later one came ~1 s after it. Unpaused, the other workers would have sent their next
    // requests when their 300 ms replies landed, inside the pause.
    let limited_at = reqs[2].at;
    let after: Vec<Duration> = reqs[3..].iter().map(|q| q.at.duration_since(limited_at)).collect();
    let sent_during_pause: Vec<&Duration> = after
        .iter()
        .filter(|d| **d > Duration::from_millis(150) && **d < Duration::from_millis(900))
        .collect();
    assert!(
        sent_during_pause.is_empty(),
        "requests arrived during the 1 s pause: {after:?}"
    );
}

#[test]
fn interrupted_run_resumes_without_asking_for_finished_plans_again() {
    let server = fleet(Duration::from_millis(400));
    let dir = tempdir();
    let names: Vec<String> = (0..6).map(|i| format!("ok-{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let input = jsonl(dir.path(), &names);
    let child = batch_cmd(dir.path(), &server, &input, &["-j", "1"]).spawn();
    // Wait for two plans, then press Ctrl-C once.
    let t0 = Instant::now();
    while plans_in(dir.path()) < 2 {
        assert!(t0.elapsed() < Duration::from_secs(20), "no plans appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
    interrupt(&child);
    let first = wait(child);
    assert_eq!(first.code, 130, "{}", first.stderr);
    assert!(first.stderr.contains("Ctrl-C"), "{}", first.stderr);
    let r = report(dir.path());
    assert_eq!(r["interrupted"], true);
    let done: Vec<String> = r["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["status"] == "complete")
        .map(|i| i["name"].as_str().unwrap().to_string())
        .collect();
    // The one in flight at Ctrl-C was allowed to finish: at least the two seen, not all.
    assert!(done.len() >= 2 && done.len() < 6, "{done:?}");
    assert_eq!(r["totals"]["pending"].as_u64().unwrap() as usize, 6 - done.len());
    let mut seen = asked(&server);
    seen.sort();
    let mut finished = done.clone();
    finished.sort();
    assert_eq!(seen, finished, "nothing was asked that did not finish");
    assert!(no_temp_files(&dir.path().join("out")));

    let before = server.chats().len();
    let second = batch(dir.path(), &server, &input, &["-j", "2"]);
    assert_eq!(second.code, 0, "{}", second.stderr);
    let rerun: Vec<String> = asked(&server)[before..].to_vec();
    for d in &done {
        assert!(!rerun.contains(d), "{d} was finished but asked again: {rerun:?}");
    }
    assert_eq!(rerun.len(), 6 - done.len());
    let r = report(dir.path());
    assert_eq!(r["totals"]["complete"], 6);
    assert_eq!(r["totals"]["resumed"].as_u64().unwrap() as usize, done.len());
    assert_eq!(item(&r, &done[0])["resumed"], true);
}

#[test]
fn a_second_ctrl_c_stops_at_once_and_leaves_no_half_written_plan() {
    // Every request hangs for a minute: only cancelling can end the run.
    let server = Server::start(|_, _| Reply::Hang(Duration::from_secs(60)));
    let dir = tempdir();
    let input = jsonl(dir.path(), &["ok-a", "ok-b", "ok-c"]);
    let child = batch_cmd(dir.path(), &server, &input, &["-j", "2"]).spawn();
    let t0 = Instant::now();
    while server.chats().len() < 2 {
        assert!(t0.elapsed() < Duration::from_secs(20), "requests never arrived");
        std::thread::sleep(Duration::from_millis(20));
    }
    interrupt(&child);
    std::thread::sleep(Duration::from_millis(300));
    interrupt(&child);
    let t1 = Instant::now();
    let out = wait(child);
    assert!(t1.elapsed() < Duration::from_secs(10), "did not stop at once");
    assert_eq!(out.code, 130, "{}", out.stderr);
    let r = report(dir.path());
    assert_eq!(r["interrupted"], true);
    assert_eq!(r["totals"]["pending"], 3);
    assert_eq!(server.chats().len(), 2, "nothing new started after Ctrl-C");
    assert_eq!(files_in(&dir.path().join("out")), ["report.json", "report.md"]);
}

#[test]
fn malformed_input_names_the_line_and_nothing_is_sent() {
    let server = fleet(Duration::ZERO);
    let dir = tempdir();
    let (summary, stages) = example_input();
    let good = json!({"name": "ok-a", "summary": summary, "stages": stages}).to_string();
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "bad.jsonl",
            format!("{good}\n{{\"name\": \"ok-b\", \"summary\": \n"),
            "bad.jsonl:2:",
        ),
        (
            "bad.csv",
            "name,summary,stages\nok-a,S,x\nok-b,\"unclosed\n".into(),
            "bad.csv:3:",
        ),
        (
            "short.csv",
            "name,summary,stages\nok-a,S,x\nok-b,S\n".into(),
            "short.csv:3:",
        ),
        (
            "bad.yaml",
            "- name: ok-a\n  summary: S\n  stages: x\n- name: ok-b\n  summary: S\n".into(),
            "bad.yaml:4:",
        ),
        (
            "empty.jsonl",
            format!("{good}\n{{\"name\":\"ok-b\",\"summary\":\"  \",\"stages\":\"x\"}}\n"),
            "empty.jsonl:2:",
        ),
    ];
    for (file, text, want) in cases {
        std::fs::write(dir.path().join(file), text).unwrap();
        let out = batch(dir.path(), &server, &dir.path().join(file), &[]);
        assert_eq!(out.code, 2, "{file}: {}", out.stderr);
        assert!(out.stderr.contains(want), "{file}: want {want} in\n{}", out.stderr);
    }
    assert_eq!(server.requests().len(), 0, "nothing is sent when the input is invalid");
    assert!(!dir.path().join("out").exists(), "no output folder for a refused input");
}

#[test]
fn duplicate_names_are_refused_and_hostile_names_stay_inside_the_folder() {
    let server = fleet(Duration::ZERO);
    let dir = tempdir();
    let dup = jsonl(dir.path(), &["ok-a", "ok-b", "ok-a"]);
    let out = batch(dir.path(), &server, &dup, &[]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("services.jsonl:3:") && out.stderr.contains("duplicate name \"ok-a\" (first on line 1)"),
        "{}",
        out.stderr
    );
    assert_eq!(server.requests().len(), 0);

    let hostile = [
        "ok/../../x",
        "/etc/ok",
        "",
        "ok..",
        "OK",
        "ok",
        "ok\u{1F600}",
        "report",
        ".ok",
    ];
    let input = jsonl(dir.path(), &hostile);
    let out = batch(dir.path(), &server, &input, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let files = files_in(&dir.path().join("out"));
    assert_eq!(
        files.len(),
        hostile.len() + 2,
        "one plan per name, plus the reports: {files:?}"
    );
    for f in &files {
        assert!(!f.starts_with('.'), "{f}");
        assert!(f.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)), "{f}");
    }
    assert!(!dir.path().join("x.md").exists() && !dir.path().join("x").exists());
    // Each name's plan is where the report says, and its front matter names it.
    let r = report(dir.path());
    for n in hostile {
        let file = item(&r, n)["file"].as_str().unwrap().to_string();
        let text = std::fs::read_to_string(dir.path().join("out").join(&file)).unwrap();
        assert!(text.contains(&format!("  name: {}\n", json!(n))), "{file}");
    }
    assert_eq!(item(&r, "ok")["file"], "ok.md");
    assert_ne!(item(&r, "report")["file"], "report.md");
    // The blank name's progress line points at its input line and plan file, and its
    // link in report.md has text.
    let blank = item(&r, "")["file"].as_str().unwrap().to_string();
    assert!(
        out.stderr.contains(&format!("(no name, line 3 → {blank}): complete")),
        "{}",
        out.stderr
    );
    let md = std::fs::read_to_string(dir.path().join("out/report.md")).unwrap();
    assert!(md.contains(&format!("| [(no name, line 3)]({blank}) |")), "{md}");
}

#[test]
fn csv_and_yaml_inputs_run_like_jsonl_with_per_item_models() {
    let server = fleet(Duration::ZERO);
    let dir = tempdir();
    let (summary, stages) = example_input();
    let csv_text = format!(
        "name,summary,stages,model\nok-csv,\"Service ok-csv. {}\",\"{stages}\",\nok-csv2,\"Service ok-csv2. {}\",\"{stages}\",other-model\n",
        summary.replace('"', "\"\""),
        summary.replace('"', "\"\"")
    );
    std::fs::write(dir.path().join("s.csv"), csv_text).unwrap();
    let yaml_text = format!(
        "- name: ok-yaml\n  summary: {}\n  stages: {}\n",
        json!(format!("Service ok-yaml. {summary}")),
        json!(stages)
    );
    std::fs::write(dir.path().join("s.yml"), yaml_text).unwrap();
    for f in ["s.csv", "s.yml"] {
        let out = batch(dir.path(), &server, &dir.path().join(f), &[]);
        assert_eq!(out.code, 0, "{f}: {}", out.stderr);
    }
    // Items run concurrently, so the order requests arrive in is not fixed.
    let mut models: Vec<(String, String)> = server
        .chats()
        .iter()
        .map(|q| (service_of(q), q.json()["model"].as_str().unwrap().to_string()))
        .collect();
    models.sort();
    assert_eq!(
        models,
        [
            ("ok-csv".to_string(), "m".to_string()),
            ("ok-csv2".into(), "other-model".into()),
            ("ok-yaml".into(), "m".into())
        ]
    );
    let r = report(dir.path());
    assert_eq!(item(&r, "ok-yaml")["line"], 1);
}

#[test]
fn reruns_redo_only_what_changed_and_force_redoes_everything() {
    let server = fleet(Duration::ZERO);
    let dir = tempdir();
    let input = jsonl(dir.path(), &["ok-a", "ok-b", "ok-c"]);
    assert_eq!(batch(dir.path(), &server, &input, &[]).code, 0);
    assert_eq!(server.chats().len(), 3);

    // Same command: nothing is asked.
    assert_eq!(batch(dir.path(), &server, &input, &[]).code, 0);
    assert_eq!(server.chats().len(), 3);

    // One input changes: only it is redone.
    let text = std::fs::read_to_string(&input)
        .unwrap()
        .replace("Service ok-b.", "Service ok-b. Now with a cache.");
    std::fs::write(&input, text).unwrap();
    let out = batch(dir.path(), &server, &input, &[]);
    assert_eq!(out.code, 0);
    assert_eq!(asked(&server)[3..], ["ok-b"]);
    assert!(
        out.stderr
            .contains("redone from an earlier run: 1 because the input changed"),
        "says why: {}",
        out.stderr
    );
    assert!(out.stderr.contains("ok-b: complete ("), "{}", out.stderr);
    assert_eq!(item(&report(dir.path()), "ok-b")["redone"], "the input changed");
    assert!(item(&report(dir.path()), "ok-a").get("redone").is_none());

    // A plan someone broke by hand is redone.
    let c = dir.path().join("out/ok-c.md");
    let broken = std::fs::read_to_string(&c)
        .unwrap()
        .replace("## 10. The hard truth about rollback", "Closing words");
    std::fs::write(&c, broken).unwrap();
    let out = batch(dir.path(), &server, &input, &[]);
    assert_eq!(out.code, 0);
    assert_eq!(asked(&server)[4..], ["ok-c"]);
    assert!(
        out.stderr.contains("1 because it no longer passes the check"),
        "{}",
        out.stderr
    );

    // Another model: everything is redone. So is --force.
    let with_model = |model: &str, extra: &[&str]| {
        rbplan(dir.path())
            .args(["batch"])
            .arg_path(&input)
            .args(["--out-dir", "out", "--model", model, "--base-url", &server.url()])
            .args(extra)
            .run()
    };
    let out = with_model("m2", &[]);
    assert_eq!(out.code, 0);
    assert_eq!(server.chats().len(), 8);
    assert!(server.chats()[5..].iter().all(|q| q.json()["model"] == "m2"));
    assert!(out.stderr.contains("3 because the model changed"), "{}", out.stderr);
    assert_eq!(with_model("m2", &[]).code, 0);
    assert_eq!(server.chats().len(), 8);
    let out = with_model("m2", &["--force"]);
    assert_eq!(out.code, 0);
    assert_eq!(server.chats().len(), 11);
    assert!(out.stderr.contains("3 because --force was given"), "{}", out.stderr);
}

#[test]
fn unauthorized_stops_the_whole_run_at_once() {
    // Like some gateways, the server echoes the credentials it was sent in its error, and
    // (regression) in its request id, which `--json` printed on stdout unscrubbed.
    let server = Server::start(|req, _| {
        let sent = req.header("authorization").unwrap_or_default().to_string();
        Reply::json(
            401,
            &json!({"error": {"message": format!("Incorrect API key provided ({sent})"), "type": "invalid_request_error", "code": "invalid_api_key"}}),
        )
        .with_header("x-request-id", &format!("req_{sent}"))
    });
    let dir = tempdir();
    let names: Vec<String> = (0..20).map(|i| format!("ok-{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let input = jsonl(dir.path(), &names);
    let out = batch_cmd(dir.path(), &server, &input, &["-j", "2", "--json"])
        .env("OPENAI_API_KEY", "fake-key-for-tests-batch")
        .run();
    assert_eq!(out.code, 4, "{}", out.stderr);
    assert!(out.stderr.contains("Incorrect API key provided"), "{}", out.stderr);
    assert!(out.stdout.contains("req_Bearer [REDACTED]"), "{}", out.stdout);
    assert!(server.chats().len() <= 2, "401 is not retried and stops the run");
    let r = report(dir.path());
    // Every request the server got is counted, an aborted item's included (one aborted
    // before the server read all of it may be counted too: at most the 2 in flight).
    let counted = r["totals"]["requests"].as_u64().unwrap();
    assert!(
        counted >= server.chats().len() as u64 && counted <= 2,
        "{counted} counted, {} received",
        server.chats().len()
    );
    assert!(r["stopped"].as_str().unwrap().contains("401"));
    assert!(r["totals"]["pending"].as_u64().unwrap() >= 18);
    let everything = format!(
        "{}{}{}",
        out.stdout,
        out.stderr,
        super::common::all_text_under(dir.path())
    );
    assert!(
        everything.contains("[REDACTED]"),
        "the echo reached the output, scrubbed"
    );
    assert!(!everything.contains("fake-key-for-tests-batch"), "the key leaked");
}

fn plans_in(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("out"))
        .map(|rd| {
            rd.filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".md"))
            })
            .count()
        })
        .unwrap_or(0)
}

pub(super) fn no_temp_files(dir: &Path) -> bool {
    files_in(dir).iter().all(|f| !f.starts_with(".rbplan-tmp-"))
}

#[test]
fn a_plan_with_every_section_and_error_findings_left_is_status_errors_and_exits_3() {
    let server = fleet(Duration::ZERO);
    let dir = tempdir();
    let (summary, stages) = example_input();
    let input = dir.path().join("s.jsonl");
    std::fs::write(
        &input,
        [
            json!({"name": "ok-a", "summary": format!("Service ok-a. {summary}"), "stages": stages}),
            json!({"name": "ok-b", "summary": format!("Service ok-b. {summary}"), "stages": "Quantum flux migration (high)"}),
        ]
        .iter()
        .map(|v| v.to_string() + "\n")
        .collect::<String>(),
    )
    .unwrap();
    let out = batch(dir.path(), &server, &input, &["--max-repairs", "1"]);
    // Every section is there, but a stage is not covered after repair: not complete.
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("1 plan(s) have every section but do not pass their checks"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("ok-b: ERRORS, 1 error finding"), "{}", out.stderr);
    let r = report(dir.path());
    assert_eq!(r["totals"]["with_findings"], 1);
    assert_eq!(r["totals"]["errors"], 1);
    assert_eq!(r["totals"]["complete"], 1);
    assert_eq!(item(&r, "ok-a")["findings"], 0);
    assert!(item(&r, "ok-a").get("problems").is_none());
    assert_eq!(item(&r, "ok-b")["status"], "errors");
    assert_eq!(item(&r, "ok-b")["findings"], 1);
    assert_eq!(
        item(&r, "ok-b")["problems"][0],
        "stage \"Quantum flux migration\" has no subsection in \"3. Rollback by stage\""
    );
    let md = std::fs::read_to_string(dir.path().join("out/report.md")).unwrap();
    assert!(
        md.contains("| findings |") && md.contains("Quantum flux migration"),
        "{md}"
    );

    // The plans remember their stages: a later `rbplan check` of the folder, with no
    // --stages, checks each plan against its own.
    let plan = std::fs::read_to_string(dir.path().join("out/ok-b.md")).unwrap();
    assert!(plan.contains("stages: [\"Quantum flux migration\"]"), "{plan}");
    assert!(plan.contains("status: \"errors\""), "{plan}");
    let out = rbplan(dir.path()).args(["check", "out", "--json"]).run();
    assert_eq!(out.code, 3, "an error finding fails the check: {}", out.stderr);
    let files = out.json()["files"].as_array().unwrap().clone();
    let findings = |name: &str| -> Vec<String> {
        files
            .iter()
            .find(|f| f["path"].as_str().unwrap().ends_with(name))
            .unwrap()["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["message"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(findings("ok-a.md").is_empty(), "{:?}", findings("ok-a.md"));
    // Its scenarios are checked against its own stages and summary too: two name
    // neither (a warning, as they are not most of them).
    assert_eq!(
        findings("ok-b.md"),
        [
            "stage \"Quantum flux migration\" has no subsection in \"3. Rollback by stage\"",
            "\"9. Rollback what-if scenarios\": 2 of 6 scenarios name no stage or system of this migration: \"What if the backfill runs 50% over its 36-hour budget?\", \"What if the rollback drill in staging takes longer than 45 m…\""
        ]
    );
}
