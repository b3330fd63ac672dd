//! The fault suite: one test per way a real server fails. Each asserts the outcome (a
//! complete plan, or a fast clear failure) and how many requests the server saw.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::common::{Out, rbplan, tempdir};
use super::model::{Authored, asked_headings, authored, reply};
use super::server::{Reply, Request, Server};

fn plan() -> Arc<Authored> {
    Arc::new(authored())
}

/// `ask` with the example input against `server`, with extra flags.
pub(super) fn ask(server: &Server, extra: &[&str]) -> Out {
    let dir = tempdir();
    rbplan(dir.path())
        .args([
            "ask",
            "--example",
            "--model",
            "m",
            "--base-url",
            &server.url(),
            "--json",
        ])
        .args(extra)
        .run()
}

fn ok_after(fault: impl Fn(&Request) -> Reply + Send + Sync + 'static, faults: usize) -> Server {
    let a = plan();
    Server::start(move |req, n| {
        if n < faults {
            fault(req)
        } else {
            reply(req, n, &a.text, "stop")
        }
    })
}

fn sse_event(v: serde_json::Value) -> Vec<u8> {
    format!("data: {v}\n\n").into_bytes()
}

fn delta(text: &str) -> Vec<u8> {
    sse_event(json!({"id": "c", "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": null}]}))
}

fn sse_reply(chunks: Vec<(Duration, Vec<u8>)>, reset: bool) -> Reply {
    Reply::Chunks {
        status: 200,
        headers: vec![("content-type".into(), "text/event-stream".into())],
        chunks,
        reset,
    }
}

fn complete(out: &Out) {
    assert_eq!(out.code, 0, "stderr:\n{}", out.stderr);
    assert_eq!(out.json()["status"], "complete");
}

#[test]
fn rate_limited_429_waits_as_told_then_succeeds() {
    let server = ok_after(
        |_| {
            Reply::json(
                429,
                &json!({"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}),
            )
            .with_header("retry-after", "1")
        },
        1,
    );
    let out = ask(&server, &["--no-stream"]);
    complete(&out);
    let chats = server.chats();
    assert_eq!(chats.len(), 2);
    let waited = chats[1].at - chats[0].at;
    assert!(
        waited >= Duration::from_millis(950),
        "Retry-After: 1 was honoured (waited {waited:?})"
    );
    assert_eq!(chats[0].body, chats[1].body, "the retried body is identical");
    assert_eq!(chats[0].header("x-rbplan-retry-count"), Some("0"));
    assert_eq!(chats[1].header("x-rbplan-retry-count"), Some("1"));
    assert_eq!(
        out.json()["transport_retries"],
        0,
        "a rate limit is waited out, not retried"
    );
    assert_eq!(out.json()["rate_limited"], 1);
}

#[test]
fn retry_after_ms_takes_precedence() {
    let server = ok_after(
        |_| {
            Reply::json(429, &json!({"error": {"message": "slow down"}}))
                .with_header("retry-after-ms", "200")
                .with_header("retry-after", "30")
        },
        1,
    );
    let t0 = Instant::now();
    complete(&ask(&server, &["--no-stream"]));
    assert!(
        t0.elapsed() < Duration::from_secs(20),
        "retry-after-ms (200 ms) won over retry-after (30 s)"
    );
    assert_eq!(server.chats().len(), 2);
}

#[test]
fn service_unavailable_503_is_retried() {
    let server = ok_after(|_| Reply::json(503, &json!({"error": {"message": "overloaded"}})), 2);
    let out = ask(&server, &["--no-stream"]);
    complete(&out);
    assert_eq!(server.chats().len(), 3);
    assert_eq!(out.json()["transport_retries"], 2);
}

#[test]
fn server_can_forbid_a_retry_with_x_should_retry() {
    let server = ok_after(
        |_| Reply::json(503, &json!({"error": {"message": "gone for good"}})).with_header("x-should-retry", "false"),
        5,
    );
    let out = ask(&server, &["--no-stream"]);
    assert_eq!(out.code, 4);
    assert_eq!(server.chats().len(), 1);
}

#[test]
fn connection_reset_is_retried() {
    let server = ok_after(|_| Reply::Reset, 1);
    complete(&ask(&server, &["--no-stream"]));
    assert_eq!(server.chats().len(), 2);
}

#[test]
fn a_hung_server_times_out_and_the_retry_succeeds() {
    let server = ok_after(|_| Reply::Hang(Duration::from_secs(30)), 1);
    let t0 = Instant::now();
    complete(&ask(&server, &["--no-stream", "--timeout", "1"]));
    assert_eq!(server.chats().len(), 2);
    assert!(t0.elapsed() < Duration::from_secs(25), "did not wait for the hang");

    let server = ok_after(|_| Reply::Hang(Duration::from_secs(30)), 9);
    let out = ask(&server, &["--no-stream", "--timeout", "1", "--max-retries", "0"]);
    assert_eq!(out.code, 4);
    assert!(out.stderr.contains("timed out"), "{}", out.stderr);
    assert_eq!(server.chats().len(), 1);
}

#[test]
fn a_slow_answer_within_the_timeout_is_waited_for_not_retried() {
    let a = plan();
    let server = Server::start_with(
        move |req, n| Reply::After(Duration::from_millis(1500), Box::new(reply(req, n, &a.text, "stop"))),
        false,
    );
    let t0 = Instant::now();
    complete(&ask(&server, &["--no-stream", "--timeout", "5"]));
    assert_eq!(server.received(), 1, "one request, waited for");
    assert!(t0.elapsed() >= Duration::from_millis(1500));
    assert!(server.requests().is_empty(), "start_with(.., false) keeps no copy");
}

#[test]
fn html_page_with_status_200_is_an_error_and_is_retried() {
    let html = |_: &Request| Reply::Full {
        status: 200,
        headers: vec![("content-type".into(), "text/html".into())],
        body: b"<html><body><h1>Gateway maintenance</h1></body></html>".to_vec(),
    };
    let server = ok_after(html, 1);
    complete(&ask(&server, &["--no-stream"]));
    assert_eq!(server.chats().len(), 2);

    let server = ok_after(html, 9);
    let out = ask(&server, &["--no-stream", "--max-retries", "0"]);
    assert_eq!(out.code, 4);
    assert!(
        out.stderr.contains("not a chat completion") && out.stderr.contains("Gateway maintenance"),
        "{}",
        out.stderr
    );
}

#[test]
fn empty_or_null_content_is_retried() {
    let server = ok_after(
        |_| {
            Reply::json(
                200,
                &json!({"id": "x", "choices": [{"index": 0, "message": {"role": "assistant", "content": null}, "finish_reason": "stop"}]}),
            )
        },
        1,
    );
    complete(&ask(&server, &["--no-stream"]));
    assert_eq!(server.chats().len(), 2);
}

#[test]
fn unauthorized_401_fails_fast_with_the_providers_message() {
    let server = ok_after(
        |_| {
            Reply::json(401, &json!({"error": {"message": "Incorrect API key provided: sk-test-***", "type": "invalid_request_error", "code": "invalid_api_key"}}))
                .with_header("x-request-id", "req_401abc")
        },
        9,
    );
    let out = ask(&server, &["--no-stream"]);
    assert_eq!(out.code, 4);
    assert_eq!(server.chats().len(), 1, "a 401 is not retried");
    for part in [
        "HTTP 401",
        "Incorrect API key provided",
        "invalid_api_key",
        "req_401abc",
    ] {
        assert!(out.stderr.contains(part), "{part}: {}", out.stderr);
    }
}

#[test]
fn quota_exhausted_429_fails_fast() {
    let server = ok_after(
        |_| {
            Reply::json(429, &json!({"error": {"message": "You exceeded your current quota", "type": "insufficient_quota", "code": "insufficient_quota"}})).with_header("retry-after", "1")
        },
        9,
    );
    let t0 = Instant::now();
    let out = ask(&server, &["--no-stream"]);
    assert_eq!(out.code, 4);
    assert_eq!(server.chats().len(), 1);
    assert!(
        out.stderr.contains("insufficient_quota") && out.stderr.contains("HTTP 429"),
        "{}",
        out.stderr
    );
    assert!(t0.elapsed() < Duration::from_secs(5));
}

#[test]
fn retry_after_beyond_the_cap_gives_up_and_says_why() {
    let server = ok_after(
        |_| Reply::json(429, &json!({"error": {"message": "come back tomorrow"}})).with_header("retry-after", "86400"),
        9,
    );
    let out = ask(&server, &["--no-stream"]);
    assert_eq!(out.code, 4);
    assert_eq!(server.chats().len(), 1);
    assert!(out.stderr.contains("asked to wait 86400s"), "{}", out.stderr);
}

#[test]
fn stream_cut_without_done_is_retried_not_accepted() {
    let a = plan();
    let first_half = a.text[..a.text.len() / 2].to_string();
    let server = Server::start(move |req, n| {
        if n == 0 {
            sse_reply(vec![(Duration::ZERO, delta(&first_half))], false)
        } else {
            reply(req, n, &a.text, "stop")
        }
    });
    let out = ask(&server, &["--stream"]);
    complete(&out);
    assert_eq!(server.chats().len(), 2);
    assert_eq!(
        out.json()["repairs"]["rounds"],
        0,
        "the retry gave a whole plan; no repair needed"
    );
}

#[test]
fn stream_cut_with_no_retries_left_keeps_complete_sections_and_repairs() {
    let a = plan();
    let cut = a.without(&[8, 9]) + "## 9. Rollback what-if scenarios\n\n**\"What if";
    let tail = a.only(&[8, 9]);
    let server = Server::start(move |req, n| {
        if n == 0 {
            sse_reply(vec![(Duration::ZERO, delta(&cut))], true) // connection reset mid-stream
        } else {
            reply(req, n, &tail, "stop")
        }
    });
    let out = ask(&server, &["--stream", "--max-retries", "0"]);
    complete(&out);
    let v = out.json();
    assert_eq!(v["first_answer_truncated"], true);
    assert_eq!(v["repairs"]["detail"][0]["asked"], json!(["what-if", "hard-truth"]));
    assert_eq!(server.chats().len(), 2);
}

#[test]
fn error_chunk_mid_stream_is_an_error_then_retried() {
    let a = plan();
    let server = Server::start(move |req, n| {
        if n == 0 {
            sse_reply(
                vec![
                    (Duration::ZERO, delta("## 1. Rollback philosophy\n\n")),
                    (
                        Duration::ZERO,
                        sse_event(json!({"error": {"message": "upstream model crashed", "type": "server_error"}})),
                    ),
                ],
                false,
            )
        } else {
            reply(req, n, &a.text, "stop")
        }
    });
    let out = ask(&server, &["--stream"]);
    complete(&out);
    assert_eq!(server.chats().len(), 2);
}

#[test]
fn finish_reason_length_in_a_stream_triggers_repair() {
    let a = plan();
    let head = a.without(&[9]);
    let server = Server::start(move |req, n| {
        if n == 0 {
            reply(req, n, &head, "length")
        } else {
            reply(req, n, &a.only(&asked_headings(&req.last_user())), "stop")
        }
    });
    let out = ask(&server, &["--stream"]);
    complete(&out);
    let v = out.json();
    assert_eq!(v["first_answer_truncated"], true);
    // The last section of a cut reply is distrusted and asked for again with the missing one.
    assert_eq!(v["repairs"]["detail"][0]["asked"], json!(["what-if", "hard-truth"]));
}

#[test]
fn a_long_healthy_stream_outlives_the_request_timeout() {
    let a = plan();
    let server = Server::start(move |_, _| {
        let pieces: Vec<String> = a
            .text
            .as_bytes()
            .chunks(a.text.len() / 8 + 1)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        let mut chunks: Vec<(Duration, Vec<u8>)> =
            pieces.iter().map(|p| (Duration::from_millis(400), delta(p))).collect();
        chunks.push((
            Duration::ZERO,
            sse_event(json!({"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})),
        ));
        chunks.push((Duration::ZERO, b"data: [DONE]\n\n".to_vec()));
        sse_reply(chunks, false)
    });
    // About 3.6 s of streaming against a 1 s first-byte timeout and a 2 s idle timeout.
    let out = ask(&server, &["--stream", "--timeout", "1", "--idle-timeout", "2"]);
    complete(&out);
    assert_eq!(server.chats().len(), 1);
}

#[test]
fn a_stalled_stream_hits_the_idle_timeout_and_is_retried() {
    let a = plan();
    let server = Server::start(move |req, n| {
        if n == 0 {
            sse_reply(
                vec![
                    (Duration::ZERO, delta("## 1. Rollback")),
                    (Duration::from_secs(30), delta(" never")),
                ],
                false,
            )
        } else {
            reply(req, n, &a.text, "stop")
        }
    });
    let t0 = Instant::now();
    complete(&ask(&server, &["--stream", "--idle-timeout", "1"]));
    assert_eq!(server.chats().len(), 2);
    assert!(t0.elapsed() < Duration::from_secs(25));
}

#[test]
fn azure_uses_api_key_header_deployment_path_and_version() {
    let a = plan();
    let server = Server::start(move |req, n| reply(req, n, &a.text, "stop"));
    let dir = tempdir();
    let out = rbplan(dir.path())
        .args([
            "ask",
            "--example",
            "--no-stream",
            "--provider",
            "azure",
            "--api-version",
            "2024-10-21",
            "--model",
            "plans-gpt4o",
        ])
        .args(["--base-url", &format!("http://{}", server.addr)])
        .env("AZURE_OPENAI_API_KEY", "azure-test-key-123")
        .run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let r = &server.requests()[0];
    assert_eq!(
        r.path,
        "/openai/deployments/plans-gpt4o/chat/completions?api-version=2024-10-21"
    );
    assert_eq!(r.header("api-key"), Some("azure-test-key-123"));
    assert!(r.header("authorization").is_none());
}

#[test]
fn gateway_headers_and_max_completion_tokens() {
    let a = plan();
    let server = Server::start(move |req, n| reply(req, n, &a.text, "stop"));
    let dir = tempdir();
    let out = rbplan(dir.path())
        .args([
            "ask",
            "--example",
            "--no-stream",
            "--base-url",
            &server.url(),
            "--header",
            "X-Team: sre",
            "--header",
            "User-Agent: team-gateway/1",
        ])
        .args([
            "--max-tokens-field",
            "max_completion_tokens",
            "--max-tokens",
            "3000",
            "--temperature",
            "0.2",
        ])
        .env("RBPLAN_HEADERS", "X-Env: prod")
        .run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let r = &server.chats()[0];
    assert_eq!(r.header("x-team"), Some("sre"));
    assert_eq!(r.header("x-env"), Some("prod"));
    // A gateway's own User-Agent replaces rbplan's, not the other way round.
    assert_eq!(r.header("user-agent"), Some("team-gateway/1"));
    let body = r.json();
    assert_eq!(body["max_completion_tokens"], 3000);
    assert!(body.get("max_tokens").is_none());
    assert!((body["temperature"].as_f64().unwrap() - 0.2).abs() < 1e-6);
}

#[test]
fn unreachable_server_fails_with_a_clear_message() {
    // Bind and drop a listener to get a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempdir();
    let out = rbplan(dir.path())
        .args([
            "ask",
            "--example",
            "--no-stream",
            "--max-retries",
            "1",
            "--base-url",
            &format!("http://127.0.0.1:{port}/v1"),
        ])
        .run();
    assert_eq!(out.code, 4);
    assert!(
        out.stderr.contains("cannot connect to http://127.0.0.1"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("gave up after 2 attempts"), "{}", out.stderr);
}

#[test]
fn doctor_reports_server_key_and_model_in_plain_words() {
    let key = "sk-test-doctor-0000000000";
    let server = Server::start(move |req, _| {
        if req.path.ends_with("/models") {
            if req.header("authorization") == Some(&format!("Bearer {key}")) {
                Reply::json(
                    200,
                    &json!({"object": "list", "data": [{"id": "gpt-4o-mini"}, {"id": "other"}]}),
                )
            } else {
                Reply::json(
                    401,
                    &json!({"error": {"message": "bad key", "code": "invalid_api_key"}}),
                )
            }
        } else {
            Reply::json(404, &json!({}))
        }
    });
    let dir = tempdir();
    let good = rbplan(dir.path())
        .args(["doctor", "--base-url", &server.url()])
        .env("OPENAI_API_KEY", key)
        .run();
    assert_eq!(good.code, 0, "{}\n{}", good.stdout, good.stderr);
    assert!(
        good.stdout.contains("\"gpt-4o-mini\" is listed") && good.stdout.contains("all good"),
        "{}",
        good.stdout
    );
    assert!(!good.stdout.contains(key) && !good.stderr.contains(key));
    let first = &server.requests()[0];
    assert_eq!((first.method.as_str(), first.path.as_str()), ("GET", "/v1/models"));

    let missing = rbplan(dir.path())
        .args(["doctor", "--base-url", &server.url(), "--model", "gpt-5"])
        .env("OPENAI_API_KEY", key)
        .run();
    assert_eq!(missing.code, 4);
    assert!(
        missing
            .stdout
            .contains("\"gpt-5\" is not among the 2 models the server lists: gpt-4o-mini, other"),
        "{}",
        missing.stdout
    );

    let bad = rbplan(dir.path())
        .args(["doctor", "--base-url", &server.url()])
        .env("OPENAI_API_KEY", "sk-test-wrong-111111")
        .run();
    assert_eq!(bad.code, 4);
    assert!(bad.stdout.contains("the key was rejected"), "{}", bad.stdout);
    assert!(!bad.stdout.contains("sk-test-wrong-111111"));
}

/// llama-server lists the one file it loaded and answers to any model name: doctor warns
/// and leaves the verdict to --ping; a server that refuses the name fails the ping.
#[test]
fn doctor_on_a_one_model_server_warns_and_the_ping_decides() {
    let one_model = |answers: bool| {
        Server::start(move |req, n| match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/v1/models") => Reply::json(
                200,
                &json!({"object": "list", "data": [{"id": "/tmp/llama/model.gguf"}]}),
            ),
            _ if answers => reply(req, n, "ok", "stop"),
            _ => Reply::json(
                404,
                &json!({"error": {"message": "The model `smollm2` does not exist."}}),
            ),
        })
    };
    let dir = tempdir();
    let doctor = |server: &Server, extra: &[&str]| {
        rbplan(dir.path())
            .args(["doctor", "--base-url", &server.url(), "--model", "smollm2"])
            .args(extra)
            .run()
    };
    let llama = one_model(true);
    let plain = doctor(&llama, &[]);
    assert_eq!(plain.code, 0, "{}", plain.stdout);
    assert!(
        plain.stdout.contains("WARNING: \"smollm2\" is not among the 1 models")
            && plain.stdout.contains("--ping checks")
    );
    assert_eq!(llama.chats().len(), 0, "no chat request without --ping");
    let pinged = doctor(&llama, &["--ping"]);
    assert_eq!(pinged.code, 0, "{}", pinged.stdout);
    assert!(pinged.stdout.contains("the ping below decides") && pinged.stdout.contains("the model answered"));
    let strict = one_model(false);
    assert_eq!(doctor(&strict, &["--ping"]).code, 4);
}
