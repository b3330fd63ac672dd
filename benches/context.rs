//! Prompt tokens per request with and without shared context, for `ask --parallel 4` and
//! for a batch of four items, and the share of each request that is a prefix shared by
//! every request of the run (what a provider's prompt cache can serve). Not a test: it
//! prints the table for BENCHMARKS.md.
//!
//!   cargo bench --bench context
//!
//! The local server answers every request with one short paragraph and no repairs are
//! run (`--max-repairs 0`), so each run's requests are the first pass only. Tokens are
//! counted with o200k (`rbplan::price::text_tokens` for gpt-4o) over the messages' text.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

#[path = "../tests/integration/server.rs"]
#[allow(dead_code)]
mod server;
use server::{Reply, Request, Server};

const BIN: &str = env!("CARGO_BIN_EXE_rbplan");
const MODEL: &str = "gpt-4o";
const EXAMPLE: &str = "fixtures/grounding-example";

fn answer(req: &Request, _: usize) -> Reply {
    let body = json!({
        "id": "c", "object": "chat.completion", "model": req.json()["model"],
        "choices": [{"index": 0, "finish_reason": "stop",
            "message": {"role": "assistant", "content": "## 1. Rollback philosophy\n\nRoll back early."}}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
    });
    Reply::json(200, &body)
}

/// The text a request's messages carry, in order.
fn text_of(req: &Request) -> String {
    let v = req.json();
    let msgs = v["messages"].as_array().cloned().unwrap_or_default();
    msgs.iter()
        .map(|m| m["content"].as_str().unwrap_or_default().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

fn tokens(text: &str) -> u64 {
    rbplan::price::text_tokens(MODEL, text).0
}

/// The longest prefix, in characters cut at a char boundary, that every text starts with.
fn common_prefix(texts: &[String]) -> &str {
    let first = texts[0].as_str();
    let mut end = first.len();
    for t in &texts[1..] {
        end = end.min(first.bytes().zip(t.bytes()).take_while(|(a, b)| a == b).count());
    }
    while !first.is_char_boundary(end) {
        end -= 1;
    }
    &first[..end]
}

struct Row {
    requests: usize,
    mean: u64,
    prefix: u64,
}

fn measure(reqs: &[Request]) -> Row {
    let texts: Vec<String> = reqs.iter().map(text_of).collect();
    let total: u64 = texts.iter().map(|t| tokens(t)).sum();
    Row {
        requests: texts.len(),
        mean: total / texts.len() as u64,
        prefix: tokens(common_prefix(&texts)),
    }
}

fn rbplan(server: &Server, args: &[&str]) {
    let out = Command::new(BIN)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("OPENAI_API_KEY", "sk-bench-not-a-key")
        .args(args)
        .args(["--model", MODEL, "--base-url", &server.url(), "-q"])
        .args(["--max-repairs", "0"])
        .output()
        .unwrap();
    assert!(out.status.code().is_some(), "rbplan was killed");
    assert!(
        server.received() > 0,
        "nothing sent: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn parallel(context: bool) -> Row {
    let server = Server::start(answer);
    let mut args = vec!["ask", "--example", "--parallel", "4", "--no-stream"];
    if context {
        args.extend(["--context", EXAMPLE]);
    }
    rbplan(&server, &args);
    measure(&server.chats())
}

fn batch(dir: &Path, shared: bool, own: bool) -> Row {
    let server = Server::start(answer);
    let input = dir.join(format!("items-{shared}-{own}.jsonl"));
    let lines: Vec<String> = (0..4)
        .map(|i| {
            let mut item = json!({"name": format!("svc-{i}"),
                "summary": format!("Move service {i}'s database to PostgreSQL 15."),
                "stages": "Backfill; Read cutover; Write cutover"});
            if own {
                let f = dir.join(format!("svc-{i}.sql"));
                std::fs::write(&f, format!("CREATE TABLE svc_{i}_events (id BIGINT PRIMARY KEY);\n")).unwrap();
                item["context"] = Value::from(f.to_string_lossy().to_string());
            }
            item.to_string()
        })
        .collect();
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let out = dir.join(format!("out-{shared}-{own}"));
    let mut args = vec!["batch", input.to_str().unwrap(), "--out-dir", out.to_str().unwrap()];
    if shared {
        args.extend(["--context", EXAMPLE]);
    }
    rbplan(&server, &args);
    measure(&server.chats())
}

fn print(name: &str, r: &Row) {
    let share = 100.0 * r.prefix as f64 / r.mean.max(1) as f64;
    println!("| {name} | {} | {} | {} | {share:.0}% |", r.requests, r.mean, r.prefix);
}

fn main() {
    let dir = std::env::temp_dir().join(format!("rbplan-bench-context-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    println!("| run | requests | prompt tokens per request (mean) | shared prefix (tokens) | prefix share |");
    println!("|---|---|---|---|---|");
    print("ask --parallel 4, no context", &parallel(false));
    print("ask --parallel 4, --context runbook + SQL", &parallel(true));
    print("batch of 4, no context", &batch(&dir, false, false));
    print("batch of 4, own context only", &batch(&dir, false, true));
    print("batch of 4, shared --context + own context", &batch(&dir, true, true));
    let _ = std::fs::remove_dir_all(&dir);
}
