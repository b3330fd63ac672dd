//! Benchmark of `ask --parallel 10` against single-shot `ask`, on a local server whose
//! answer time grows with the reply's length (a fixed time per completion token, as a
//! model writes), with and without a cap on how many replies it writes at once. Not a
//! test: it prints the table for BENCHMARKS.md.
//!
//!   cargo bench --bench parallel
//!
//! The "model" answers from the hand-written plan in fixtures/authored: the whole plan to
//! the single-shot request, a short outline to the outline request, and each section to
//! its own request. Tokens are counted as four characters.

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

#[path = "../tests/integration/server.rs"]
#[allow(dead_code)]
mod server;
use server::{Reply, Request, Server};

const BIN: &str = env!("CARGO_BIN_EXE_rbplan");
const BASE: Duration = Duration::from_millis(100);
const PER_TOKEN: Duration = Duration::from_millis(2);
const OUTLINE: &str = "## Outline\n\n**Stages:**\n- Schema conversion and backfill\n- CDC dual-running\n- Read cutover\n- Write cutover\n- Decommission MySQL\n\n**Point of no return:** After T+2h from the write cutover.\n\n**Roles and owners:** Incident Commander decides; Database Engineer executes; Tech Lead (orders) advises.\n\n**Systems:** MySQL 5.7 (2.1 TB), PostgreSQL 15, CDC connector, orders service, feature flags orders_read_source and orders_write_target.\n\n**Key numbers:** 4k writes/s at peak; CDC lag alarm at 5 min; read rollback in 10 min; write rollback before T+2h.\n";

/// The plan's sections: (heading line, body).
fn sections(plan: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for part in plan.split("\n## ").skip(1) {
        let (head, body) = part.split_once('\n').unwrap_or((part, ""));
        out.push((format!("## {head}"), body.trim().to_string()));
    }
    out
}

fn last_user(req: &Request) -> String {
    req.last_user()
}

/// What the model writes for `req`.
fn answer_text(req: &Request, plan: &str, secs: &[(String, String)]) -> String {
    let user = last_user(req);
    if user.contains("write the short outline of facts") {
        return OUTLINE.to_string();
    }
    if let Some(rest) = user.split("the part about the stage \"").nth(1) {
        let stage = &rest[..rest.find('"').unwrap()];
        let s3 = &secs[2].1;
        let at = s3.find(&format!(": {stage}\n")).unwrap();
        let body = &s3[at..];
        let body = &body[body.find('\n').unwrap()..];
        return body[..body.find("\n### ").unwrap_or(body.len())].trim().to_string();
    }
    let asked = secs
        .iter()
        .position(|(h, _)| user.contains(&format!("\"{}\"", &h[3..])));
    match asked {
        Some(i) if user.contains("Write only one section") => secs[i].1.clone(),
        _ => plan.to_string(),
    }
}

fn completion(req: &Request, text: &str) -> Value {
    let v = req.json();
    let prompt: usize = v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap().len() / 4)
        .sum();
    let out = text.len() / 4;
    json!({
        "id": "c", "object": "chat.completion", "model": v["model"],
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": out, "total_tokens": prompt + out},
    })
}

/// A server that takes `BASE + PER_TOKEN × tokens` per reply; with `cap`, it writes at most
/// that many replies at once and the rest wait their turn.
fn start(cap: Option<usize>, plan: String) -> Server {
    let secs = sections(&plan);
    let slots: Mutex<Vec<Instant>> = Mutex::new(vec![Instant::now(); cap.unwrap_or(0)]);
    Server::start(move |req, _| {
        let text = answer_text(req, &plan, &secs);
        let took = BASE + PER_TOKEN * (text.len() / 4) as u32;
        let now = Instant::now();
        let done = match cap {
            None => now + took,
            Some(_) => {
                let mut s = slots.lock().unwrap();
                let (i, free) = s
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, t)| **t)
                    .map(|(i, t)| (i, *t))
                    .unwrap();
                let end = free.max(now) + took;
                s[i] = end;
                end
            }
        };
        Reply::After(done - now, Box::new(Reply::json(200, &completion(req, &text))))
    })
}

/// One `ask`: wall seconds, requests, prompt and completion tokens, sections found.
fn run(server: &Server, parallel: Option<usize>) -> (f64, u64, u64, u64, u64) {
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .args([
            "ask",
            "--example",
            "--model",
            "m",
            "--base-url",
            &server.url(),
            "--json",
            "--no-stream",
            "-q",
        ]);
    if let Some(n) = parallel {
        cmd.args(["--parallel", &n.to_string()]);
    }
    let t0 = Instant::now();
    let out = cmd.output().unwrap();
    let secs = t0.elapsed().as_secs_f64();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let found = v["sections"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["found"] == true)
        .count() as u64;
    (
        secs,
        v["requests"].as_u64().unwrap(),
        v["usage"]["prompt_tokens"].as_u64().unwrap(),
        v["usage"]["completion_tokens"].as_u64().unwrap(),
        found,
    )
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let plan = std::fs::read_to_string(root.join("fixtures/authored/plan.md")).unwrap();
    let repeat: usize = std::env::var("RBPLAN_BENCH_REPEAT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    println!(
        "| server | mode | wall s (median of {repeat}) | ÷ single-shot | requests | prompt tokens | completion tokens | sections |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (label, cap) in [("uncapped", None), ("2 replies at a time", Some(2))] {
        let server = start(cap, plan.clone());
        let mut single = Vec::new();
        let mut par = Vec::new();
        for _ in 0..repeat {
            // Interleaved, so both modes meet the same machine.
            single.push(run(&server, None));
            par.push(run(&server, Some(10)));
        }
        let median = |v: &mut Vec<(f64, u64, u64, u64, u64)>| {
            v.sort_by(|a, b| a.0.total_cmp(&b.0));
            v[v.len() / 2]
        };
        let (s, p) = (median(&mut single), median(&mut par));
        for (mode, r) in [("single-shot", s), ("--parallel 10", p)] {
            println!(
                "| {label} | {mode} | {:.2} | {:.2}× | {} | {} | {} | {}/10 |",
                r.0,
                r.0 / s.0,
                r.1,
                r.2,
                r.3,
                r.4
            );
        }
    }
    println!(
        "\nreply time: {} ms + {} ms per completion token (chars/4)",
        BASE.as_millis(),
        PER_TOKEN.as_millis()
    );
}
