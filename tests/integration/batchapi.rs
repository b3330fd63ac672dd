//! `rbplan batch` past one machine: `--export` request files, `--import` of Batch API and
//! vLLM run-batch output (joined by custom_id, repaired live or through `--export-repairs`),
//! and `--via batch-api` against a local server that implements the Files and Batches
//! endpoints with scripted statuses. Assertions cover the requests each server received,
//! the plan files and report.json.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::{Value, json};

use super::batch::{batch, batch_cmd, fleet, fleet_reply, item, jsonl, no_temp_files, report};
use super::common::{Out, interrupt, rbplan, tempdir, wait_at_most};
use super::model::{Authored, asked_headings, authored};
use super::server::{Reply, Request, Server};

/// `rbplan batch INPUT --export FILE --model m EXTRA` in `dir`.
fn export(dir: &Path, input: &Path, file: &str, extra: &[&str]) -> Out {
    rbplan(dir)
        .args(["batch"])
        .arg_path(input)
        .args(["--export", file, "--model", "m"])
        .args(extra)
        .run()
}

/// `--via batch-api`, polling fast enough for a test.
const VIA_API: [&str; 4] = ["--via", "batch-api", "--poll-interval", "0.05"];

/// `rbplan batch INPUT --via batch-api` in `dir` against `server` (see `batch`).
fn via_api(dir: &Path, server: &Server, input: &Path) -> Out {
    batch(dir, server, input, &VIA_API)
}

fn read_lines(p: &Path) -> Vec<Value> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// What the fleet server would answer to one request line: (status, JSON body).
fn answer(a: &Authored, line: &Value, n: usize) -> (u16, Value) {
    let req = Request {
        method: "POST".into(),
        path: "/v1/chat/completions".into(),
        headers: Vec::new(),
        body: line["body"].to_string().into_bytes(),
        at: Instant::now(),
    };
    match fleet_reply(a, &req, n) {
        Reply::Full { status, body, .. } => (status, serde_json::from_slice(&body).unwrap()),
        _ => unreachable!("the fleet answers whole bodies"),
    }
}

/// `vllm run-batch` output: one line per request, in input order, errors inline (a 400
/// response with no body and the message as a string).
fn vllm_output(a: &Authored, requests: &[Value]) -> String {
    requests
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let (status, body) = answer(a, l, i);
            let v = if status == 200 {
                json!({"id": format!("vllm-{i}"), "custom_id": l["custom_id"], "response": {"status_code": 200, "request_id": format!("vllm-batch-{i}"), "body": body}, "error": null})
            } else {
                json!({"id": format!("vllm-{i}"), "custom_id": l["custom_id"], "response": {"status_code": 400, "request_id": format!("vllm-batch-{i}"), "body": null}, "error": body["error"]["message"]})
            };
            v.to_string() + "\n"
        })
        .collect()
}

/// Batch API output: successes in the output file in a shuffled order, failures in the
/// error file. Only the first `ran` requests ran (an expired batch runs some).
fn api_output(a: &Authored, requests: &[Value], ran: usize) -> (String, String) {
    let mut ok = Vec::new();
    let mut err = String::new();
    for (i, l) in requests.iter().enumerate().take(ran) {
        let (status, body) = answer(a, l, i);
        let line = json!({"id": format!("batch_req_{i}"), "custom_id": l["custom_id"], "response": {"status_code": status, "request_id": format!("req_{i}"), "body": body}, "error": null}).to_string() + "\n";
        if status == 200 {
            ok.push(line)
        } else {
            err.push_str(&line)
        }
    }
    // A fixed shuffle: reversed, then odd positions first.
    ok.reverse();
    let (odd, even): (Vec<_>, Vec<_>) = ok.into_iter().enumerate().partition(|(i, _)| i % 2 == 1);
    let out = odd.into_iter().chain(even).map(|(_, l)| l).collect();
    for l in requests.iter().skip(ran) {
        err.push_str(&(json!({"id": "x", "custom_id": l["custom_id"], "response": null, "error": {"code": "batch_expired", "message": "This request could not be executed before the completion window expired."}}).to_string() + "\n"));
    }
    (out, err)
}

#[test]
fn export_writes_one_request_per_service_and_splits_at_the_limit() {
    let dir = tempdir();
    let input = jsonl(dir.path(), &["ok-a", "gap-b", "ok-c"]);
    let out = export(
        dir.path(),
        &input,
        "req.jsonl",
        &["--max-tokens", "3000", "--temperature", "0.2"],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("vllm run-batch -i req.jsonl"), "{}", out.stderr);
    let lines = read_lines(&dir.path().join("req.jsonl"));
    let ids: Vec<&str> = lines.iter().map(|l| l["custom_id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["ok-a", "gap-b", "ok-c"]);
    for l in &lines {
        assert_eq!(l["method"], "POST");
        assert_eq!(l["url"], "/v1/chat/completions");
        assert_eq!(l["body"]["model"], "m");
        assert_eq!(l["body"]["max_tokens"], 3000);
        assert_eq!(l["body"]["temperature"], 0.2);
        assert!(l["body"].get("stream").is_none_or(|s| s == false));
        let msgs = l["body"]["messages"].as_array().unwrap();
        assert_eq!(msgs[0]["role"], "system");
        let svc = l["custom_id"].as_str().unwrap();
        assert!(
            msgs[1]["content"]
                .as_str()
                .unwrap()
                .contains(&format!("Service {svc}."))
        );
    }
    // The same export, split at two requests per file.
    let out = export(
        dir.path(),
        &input,
        "split.jsonl",
        &["--file-max-requests", "2", "--json"],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let j = out.json();
    assert_eq!(j["requests"], 3);
    assert_eq!(j["parts"].as_array().unwrap().len(), 2);
    let p1 = read_lines(&dir.path().join("split-001.jsonl"));
    let p2 = read_lines(&dir.path().join("split-002.jsonl"));
    assert_eq!((p1.len(), p2.len()), (2, 1));
    assert_eq!(p2[0]["custom_id"], "ok-c");
    assert!(!dir.path().join("split.jsonl").exists());
    assert!(no_temp_files(dir.path()));

    // A Batch API file serves one model: services with their own model get their own file.
    let (summary, stages) = super::common::example_input();
    let mixed = dir.path().join("mixed.jsonl");
    std::fs::write(
        &mixed,
        [
            json!({"name": "a", "summary": summary, "stages": stages}),
            json!({"name": "b", "summary": summary, "stages": stages, "model": "big/model:v2"}),
            json!({"name": "c", "summary": summary, "stages": stages}),
        ]
        .iter()
        .map(|v| v.to_string() + "\n")
        .collect::<String>(),
    )
    .unwrap();
    let out = export(dir.path(), &mixed, "mixed-req.jsonl", &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let small = read_lines(&dir.path().join("mixed-req-m.jsonl"));
    let big_file = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("mixed-req-big"))
        .expect("a file for the other model");
    let big = read_lines(&dir.path().join(&big_file));
    assert_eq!(
        small
            .iter()
            .map(|l| l["custom_id"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["a", "c"]
    );
    assert!(small.iter().all(|l| l["body"]["model"] == "m"));
    assert_eq!(big.len(), 1);
    assert_eq!(big[0]["body"]["model"], "big/model:v2");
}

#[test]
fn vllm_round_trip_export_run_import_with_live_repair() {
    let a = authored();
    let server = fleet(std::time::Duration::ZERO);
    let dir = tempdir();
    let input = jsonl(dir.path(), &["ok-a", "gap-b", "down-c", "stuck-d"]);
    let out = export(dir.path(), &input, "req.jsonl", &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let requests = read_lines(&dir.path().join("req.jsonl"));
    std::fs::write(dir.path().join("out.jsonl"), vllm_output(&a, &requests)).unwrap();

    let out = batch(
        dir.path(),
        &server,
        &input,
        &["--import", "out.jsonl", "--max-repairs", "1"],
    );
    assert_eq!(out.code, 4, "one service failed in the batch: {}", out.stderr);
    let r = report(dir.path());
    assert_eq!(r["engine"], "import");
    assert_eq!(item(&r, "ok-a")["status"], "complete");
    assert_eq!(item(&r, "ok-a")["requests"], 1);
    assert_eq!(item(&r, "ok-a")["repair_rounds"], 0);
    assert_eq!(item(&r, "gap-b")["status"], "complete");
    assert_eq!(item(&r, "gap-b")["repair_rounds"], 1);
    assert_eq!(item(&r, "gap-b")["requests"], 2);
    assert_eq!(item(&r, "down-c")["status"], "failed");
    let err = item(&r, "down-c")["error"].as_str().unwrap();
    assert!(
        err.contains("failed in the batch") && err.contains("backend down"),
        "{err}"
    );
    assert_eq!(item(&r, "stuck-d")["status"], "incomplete");
    assert_eq!(r["totals"]["complete"], 2);
    // The live server saw only repairs, never a first answer: one per service needing one.
    let chats = server.chats();
    let asked: Vec<String> = chats.iter().map(super::batch::service_of).collect();
    let mut sorted = asked.clone();
    sorted.sort();
    assert_eq!(sorted, ["gap-b", "stuck-d"]);
    let gap = chats.iter().find(|q| super::batch::service_of(q) == "gap-b").unwrap();
    assert_eq!(
        asked_headings(&gap.last_user()),
        [4, 7],
        "asked for exactly sections 5 and 8"
    );
    let msgs = gap.json()["messages"].as_array().unwrap().clone();
    assert_eq!(
        msgs[msgs.len() - 2]["role"],
        "assistant",
        "the draft from the batch is the assistant turn"
    );
    let plan = std::fs::read_to_string(dir.path().join("out/gap-b.md")).unwrap();
    assert!(plan.contains("status: \"complete\""), "{plan}");
    assert!(
        !dir.path().join("out/down-c.md").exists(),
        "no plan for a failed service"
    );
}

#[test]
fn repairs_can_go_out_as_a_second_batch_and_come_back_in() {
    let a = authored();
    let server = fleet(std::time::Duration::ZERO);
    let dir = tempdir();
    let input = jsonl(dir.path(), &["ok-a", "gap-b"]);
    let out = export(dir.path(), &input, "req.jsonl", &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let requests = read_lines(&dir.path().join("req.jsonl"));
    let (o, e) = api_output(&a, &requests, requests.len());
    std::fs::write(dir.path().join("out.jsonl"), o).unwrap();
    assert!(e.is_empty());

    let out = batch(
        dir.path(),
        &server,
        &input,
        &["--import", "out.jsonl", "--export-repairs", "repairs.jsonl"],
    );
    assert_eq!(out.code, 3, "gap-b waits for its repair: {}", out.stderr);
    assert!(server.chats().is_empty(), "nothing is asked live");
    let r = report(dir.path());
    assert_eq!(item(&r, "gap-b")["status"], "incomplete");
    assert!(item(&r, "gap-b")["error"].as_str().unwrap().contains("repairs.jsonl"));
    let repairs = read_lines(&dir.path().join("repairs.jsonl"));
    assert_eq!(repairs.len(), 1, "only the service that needs repair");
    assert_eq!(repairs[0]["custom_id"], "gap-b::repair-1");
    let msgs = repairs[0]["body"]["messages"].as_array().unwrap();
    assert_eq!(msgs[msgs.len() - 2]["role"], "assistant");
    assert_eq!(
        asked_headings(msgs.last().unwrap()["content"].as_str().unwrap()),
        [4, 7]
    );

    // Run the repair batch, then import both outputs.
    let (o2, _) = api_output(&a, &repairs, repairs.len());
    std::fs::write(dir.path().join("repairs-out.jsonl"), o2).unwrap();
    let out = batch(
        dir.path(),
        &server,
        &input,
        &[
            "--import",
            "out.jsonl",
            "--import",
            "repairs-out.jsonl",
            "--export-repairs",
            "repairs2.jsonl",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(server.chats().is_empty());
    let r = report(dir.path());
    assert_eq!(item(&r, "gap-b")["status"], "complete");
    assert_eq!(item(&r, "gap-b")["repair_rounds"], 1);
    assert_eq!(item(&r, "gap-b")["requests"], 2);
    assert_eq!(item(&r, "ok-a")["resumed"], true, "a current plan is kept, not redone");
    assert!(!dir.path().join("repairs2.jsonl").exists(), "no repairs left, no file");
}

#[test]
fn an_output_file_from_another_input_is_refused_before_anything_is_written() {
    let server = fleet(std::time::Duration::ZERO);
    let dir = tempdir();
    let input = jsonl(dir.path(), &["ok-a"]);
    let stray =
        json!({"id": "1", "custom_id": "someone-else", "response": null, "error": {"code": "x", "message": "y"}})
            .to_string();
    std::fs::write(dir.path().join("out.jsonl"), format!("{stray}\n{{not json\n")).unwrap();
    let out = batch(dir.path(), &server, &input, &["--import", "out.jsonl"]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("out.jsonl:2"),
        "names the file and line: {}",
        out.stderr
    );
    std::fs::write(dir.path().join("out.jsonl"), format!("{stray}\n")).unwrap();
    let out = batch(dir.path(), &server, &input, &["--import", "out.jsonl"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("another input"), "{}", out.stderr);
    assert!(!dir.path().join("out/report.json").exists());
}

/// How a scripted batch ends.
#[derive(Clone, Copy, PartialEq, Debug)]
enum End {
    Completed,
    /// Validation fails: no output at all.
    Failed,
    /// Only the first N requests ran.
    Expired(usize),
    /// Stays in progress until released.
    Held,
}

#[derive(Default)]
struct Fake {
    files: HashMap<String, Vec<u8>>,
    batches: HashMap<String, FakeBatch>,
    released: bool,
    /// Create the first batch, then drop the connection before answering.
    lose_first_create_reply: bool,
}

struct FakeBatch {
    input_file_id: String,
    polls: usize,
    status: String,
    output: Option<String>,
    errors: Option<String>,
    total: usize,
    failed_validation: bool,
}

fn batch_json(id: &str, b: &FakeBatch) -> Value {
    let done = if b.status == "completed" || b.status == "expired" {
        b.total
    } else {
        b.polls.min(b.total)
    };
    let mut v = json!({
        "id": id, "object": "batch", "endpoint": "/v1/chat/completions", "status": b.status,
        "input_file_id": b.input_file_id, "completion_window": "24h",
        "output_file_id": b.output, "error_file_id": b.errors,
        "request_counts": {"total": b.total, "completed": done, "failed": 0},
    });
    if b.failed_validation {
        v["errors"] = json!({"object": "list", "data": [{"code": "invalid_model", "message": "The model `m` does not exist.", "line": 1}]});
    }
    v
}

/// The JSONL file inside a multipart upload.
fn uploaded_file(body: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(body);
    let at = text.find("name=\"file\"").expect("a file part");
    let start = at + text[at..].find("\r\n\r\n").unwrap() + 4;
    let end = start + text[start..].find("\r\n--").unwrap();
    text[start..end].as_bytes().to_vec()
}

fn batch_api(end: End) -> (Server, Arc<Mutex<Fake>>) {
    let a = Arc::new(authored());
    let state = Arc::new(Mutex::new(Fake::default()));
    let st = state.clone();
    let server = Server::start(move |req, n| {
        let mut s = st.lock().unwrap();
        let path = req.path.split('?').next().unwrap().to_string();
        match (req.method.as_str(), path.as_str()) {
            ("POST", "/v1/chat/completions") => fleet_reply(&a, req, n),
            ("POST", "/v1/files") => {
                let id = format!(
                    "file-in-{}",
                    s.files.keys().filter(|k| k.starts_with("file-in-")).count() + 1
                );
                let content = uploaded_file(&req.body);
                let len = content.len();
                s.files.insert(id.clone(), content);
                Reply::json(
                    200,
                    &json!({"id": id, "object": "file", "purpose": "batch", "bytes": len}),
                )
            }
            ("POST", "/v1/batches") => {
                let body = req.json();
                let fid = body["input_file_id"].as_str().unwrap().to_string();
                let total = String::from_utf8_lossy(&s.files[&fid]).lines().count();
                let id = format!("batch_{}", s.batches.len() + 1);
                let b = FakeBatch {
                    input_file_id: fid,
                    polls: 0,
                    status: "validating".into(),
                    output: None,
                    errors: None,
                    total,
                    failed_validation: false,
                };
                let v = batch_json(&id, &b);
                s.batches.insert(id, b);
                if std::mem::take(&mut s.lose_first_create_reply) {
                    return Reply::Reset;
                }
                Reply::json(200, &v)
            }
            ("GET", "/v1/batches") => {
                let data: Vec<Value> = s.batches.iter().map(|(id, b)| batch_json(id, b)).collect();
                Reply::json(200, &json!({"object": "list", "data": data, "has_more": false}))
            }
            ("GET", p) if p.starts_with("/v1/batches/") => {
                let id = p.trim_start_matches("/v1/batches/").to_string();
                let released = s.released;
                let b = s.batches.get_mut(&id).unwrap();
                b.polls += 1;
                let script: &[&str] = match end {
                    End::Completed => &["validating", "in_progress", "finalizing", "completed"],
                    End::Failed => &["validating", "failed"],
                    End::Expired(_) => &["in_progress", "expired"],
                    End::Held if released => &["completed"],
                    End::Held => &["in_progress"],
                };
                let status = if b.status == "cancelling" {
                    "cancelled".to_string()
                } else if end == End::Held && released {
                    "completed".to_string()
                } else {
                    script[(b.polls - 1).min(script.len() - 1)].to_string()
                };
                b.status = status.clone();
                let needs_output =
                    matches!(status.as_str(), "completed" | "expired" | "cancelled") && b.output.is_none();
                if status == "failed" {
                    b.failed_validation = true;
                }
                let mut v = batch_json(&id, b);
                if needs_output {
                    let fid = b.input_file_id.clone();
                    let reqs: Vec<Value> = String::from_utf8_lossy(&s.files[&fid])
                        .lines()
                        .map(|l| serde_json::from_str(l).unwrap())
                        .collect();
                    let ran = match end {
                        End::Expired(k) => k,
                        _ => reqs.len(),
                    };
                    let (o, e) = api_output(&a, &reqs, ran);
                    let (oid, eid) = (format!("file-out-{id}"), format!("file-err-{id}"));
                    s.files.insert(oid.clone(), o.into_bytes());
                    s.files.insert(eid.clone(), e.into_bytes());
                    let b = s.batches.get_mut(&id).unwrap();
                    b.output = Some(oid);
                    b.errors = Some(eid);
                    v = batch_json(&id, b);
                }
                Reply::json(200, &v)
            }
            ("POST", p) if p.starts_with("/v1/batches/") && p.ends_with("/cancel") => {
                let id = p
                    .trim_start_matches("/v1/batches/")
                    .trim_end_matches("/cancel")
                    .to_string();
                let b = s.batches.get_mut(&id).unwrap();
                b.status = "cancelling".into();
                Reply::json(200, &batch_json(&id, b))
            }
            ("GET", p) if p.starts_with("/v1/files/") && p.ends_with("/content") => {
                let id = p.trim_start_matches("/v1/files/").trim_end_matches("/content");
                Reply::Full {
                    status: 200,
                    headers: vec![("content-type".into(), "application/octet-stream".into())],
                    body: s.files[id].clone(),
                }
            }
            _ => Reply::json(
                404,
                &json!({"error": {"message": format!("no route {} {}", req.method, req.path)}}),
            ),
        }
    });
    (server, state)
}

/// Requests with this method whose path starts with `prefix` (a trailing `$` means exactly).
fn calls(server: &Server, method: &str, prefix: &str) -> Vec<Request> {
    if let Some(exact) = prefix.strip_suffix('$') {
        return server
            .requests()
            .into_iter()
            .filter(|r| r.method == method && r.path == exact)
            .collect();
    }
    server
        .requests()
        .into_iter()
        .filter(|r| r.method == method && r.path.starts_with(prefix))
        .collect()
}

#[test]
fn via_batch_api_uploads_creates_polls_downloads_and_imports() {
    let (server, fake) = batch_api(End::Completed);
    let dir = tempdir();
    let input = jsonl(dir.path(), &["ok-a", "gap-b", "down-c", "ok-d"]);
    let out = via_api(dir.path(), &server, &input);
    assert_eq!(out.code, 4, "down-c failed in the batch: {}", out.stderr);

    let uploads = calls(&server, "POST", "/v1/files$");
    assert_eq!(uploads.len(), 1);
    let body = String::from_utf8_lossy(&uploads[0].body);
    assert!(body.contains("name=\"purpose\"\r\n\r\nbatch"), "purpose=batch");
    let uploaded = fake.lock().unwrap().files["file-in-1"].clone();
    let ids: Vec<String> = String::from_utf8_lossy(&uploaded)
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["custom_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(ids, ["ok-a", "gap-b", "down-c", "ok-d"]);
    let creates = calls(&server, "POST", "/v1/batches$");
    assert_eq!(creates.len(), 1);
    let c = creates[0].json();
    assert_eq!(c["input_file_id"], "file-in-1");
    assert_eq!(c["endpoint"], "/v1/chat/completions");
    assert_eq!(c["completion_window"], "24h");
    assert_eq!(
        calls(&server, "GET", "/v1/batches/batch_1").len(),
        4,
        "validating → in_progress → finalizing → completed"
    );
    let downloads: Vec<String> = calls(&server, "GET", "/v1/files/")
        .iter()
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(
        downloads,
        [
            "/v1/files/file-out-batch_1/content",
            "/v1/files/file-err-batch_1/content"
        ]
    );
    // Only gap-b's repair went to chat completions, live.
    let chats = server.chats();
    assert_eq!(chats.len(), 1);
    assert_eq!(super::batch::service_of(&chats[0]), "gap-b");

    let r = report(dir.path());
    assert_eq!(r["engine"], "batch-api");
    for n in ["ok-a", "gap-b", "ok-d"] {
        assert_eq!(item(&r, n)["status"], "complete", "{n}");
    }
    assert_eq!(item(&r, "gap-b")["repair_rounds"], 1);
    assert_eq!(item(&r, "down-c")["status"], "failed");
    assert!(item(&r, "down-c")["error"].as_str().unwrap().contains("backend down"));
    let rec: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("out/batch-api.json")).unwrap()).unwrap();
    assert_eq!(rec["parts"][0]["batch_id"], "batch_1");
    assert_eq!(rec["parts"][0]["status"], "completed");
    assert_eq!(rec["imported"], true);
    assert!(dir.path().join("out/batch-output.jsonl").exists());
    assert!(no_temp_files(&dir.path().join("out")));

    // A rerun submits only what is not done: down-c.
    let out = via_api(dir.path(), &server, &input);
    assert_eq!(out.code, 4, "{}", out.stderr);
    assert_eq!(calls(&server, "POST", "/v1/batches$").len(), 2);
    let second = fake.lock().unwrap().files["file-in-2"].clone();
    assert_eq!(String::from_utf8_lossy(&second).lines().count(), 1);
    assert!(String::from_utf8_lossy(&second).contains("\"custom_id\":\"down-c\""));
}

#[test]
fn a_rerun_resumes_the_recorded_batch_and_cancel_cancels_it() {
    let (server, fake) = batch_api(End::Held);
    let dir = tempdir();
    let input = jsonl(dir.path(), &["ok-a", "ok-b"]);
    let child = batch_cmd(dir.path(), &server, &input, &VIA_API).spawn();
    let t0 = Instant::now();
    while calls(&server, "GET", "/v1/batches/").len() < 2 {
        assert!(t0.elapsed().as_secs() < 20, "never polled");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    interrupt(&child);
    let out = wait_at_most(child, std::time::Duration::from_secs(20));
    assert_eq!(out.code, 130, "{}", out.stderr);
    assert!(
        out.stderr.contains("keeps running") && out.stderr.contains("batch_1"),
        "{}",
        out.stderr
    );
    assert!(!dir.path().join("out/report.json").exists(), "nothing imported yet");

    // --cancel cancels the recorded batch.
    let out = batch(dir.path(), &server, &input, &["--via", "batch-api", "--cancel"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(calls(&server, "POST", "/v1/batches/batch_1/cancel").len(), 1);

    // The rerun resumes batch_1: no new upload, no new batch. Cancelled batches keep
    // the output of what finished; here the fake finishes everything.
    fake.lock().unwrap().released = true;
    let out = via_api(dir.path(), &server, &input);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("resuming"), "{}", out.stderr);
    assert_eq!(calls(&server, "POST", "/v1/files$").len(), 1);
    assert_eq!(calls(&server, "POST", "/v1/batches$").len(), 1);
    let r = report(dir.path());
    assert_eq!(r["totals"]["complete"], 2);
}

#[test]
fn a_batch_that_fails_validation_marks_every_service_failed_with_its_reason() {
    let (server, _) = batch_api(End::Failed);
    let dir = tempdir();
    let input = jsonl(dir.path(), &["ok-a", "ok-b"]);
    let out = via_api(dir.path(), &server, &input);
    assert_eq!(out.code, 4, "{}", out.stderr);
    assert!(out.stderr.contains("does not exist"), "{}", out.stderr);
    let r = report(dir.path());
    assert_eq!(r["totals"]["failed"], 2);
    let e = item(&r, "ok-a")["error"].as_str().unwrap();
    assert!(
        e.contains("batch_1 ended failed") && e.contains("line 1: The model `m` does not exist."),
        "{e}"
    );
    assert!(calls(&server, "GET", "/v1/files/").is_empty(), "nothing to download");
}

#[test]
fn an_expired_batch_keeps_what_ran_and_marks_the_rest() {
    let (server, _) = batch_api(End::Expired(2));
    let dir = tempdir();
    let input = jsonl(dir.path(), &["ok-a", "ok-b", "ok-c"]);
    let out = via_api(dir.path(), &server, &input);
    assert_eq!(out.code, 4, "{}", out.stderr);
    let r = report(dir.path());
    assert_eq!(item(&r, "ok-a")["status"], "complete");
    assert_eq!(item(&r, "ok-b")["status"], "complete");
    assert_eq!(item(&r, "ok-c")["status"], "failed");
    let e = item(&r, "ok-c")["error"].as_str().unwrap();
    assert!(e.contains("batch_expired"), "{e}");
    assert!(server.chats().is_empty());
}

#[test]
fn a_server_without_the_batch_api_gets_an_error_that_says_what_to_do_instead() {
    let server = Server::start(|_, _| Reply::json(404, &json!({"detail": "Not Found"})));
    let dir = tempdir();
    let input = jsonl(dir.path(), &["ok-a"]);
    let out = via_api(dir.path(), &server, &input);
    assert_eq!(out.code, 4, "{}", out.stderr);
    assert!(
        out.stderr.contains("uploading") && out.stderr.contains("/v1/files"),
        "names the step: {}",
        out.stderr
    );
    assert!(
        out.stderr.contains("vllm run-batch") && out.stderr.contains("--export"),
        "{}",
        out.stderr
    );
    assert_eq!(server.requests().len(), 1, "a 404 is not retried");
}

#[test]
fn a_batch_created_but_not_recorded_is_found_again_not_paid_for_twice() {
    let (server, fake) = batch_api(End::Completed);
    fake.lock().unwrap().lose_first_create_reply = true;
    let dir = tempdir();
    let input = jsonl(dir.path(), &["ok-a", "ok-b"]);
    let out = via_api(dir.path(), &server, &input);
    assert_eq!(out.code, 4, "the create reply was lost: {}", out.stderr);
    assert_eq!(
        calls(&server, "POST", "/v1/batches$").len(),
        1,
        "a create is not retried blind"
    );

    let out = via_api(dir.path(), &server, &input);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("found batch batch_1"), "{}", out.stderr);
    assert_eq!(calls(&server, "POST", "/v1/batches$").len(), 1, "no second batch");
    assert_eq!(calls(&server, "POST", "/v1/files$").len(), 1, "no second upload");
    assert!(calls(&server, "GET", "/v1/batches?limit=100$").len() == 1);
    assert_eq!(report(dir.path())["totals"]["complete"], 2);
}
