//! Benchmark of `rbplan batch` against servers that enforce rate limits, with the
//! openai-python SDK (default retries, an asyncio semaphore) as the peer in the same run.
//! Not a test: it prints the table for BENCHMARKS.md.
//!
//!   cargo bench --bench ratelimit
//!
//! Two servers (tests/integration/limited.rs), each fresh for every client:
//! - storm: 300 requests a minute enforced per second (5 a second), past it 429 with
//!   `Retry-After: 1` and `retry-after-ms` of about 200; 80 services, 32 in flight;
//! - tpm: 600,000 tokens a minute (10,000 a second, bursts up to 100,000), told only in
//!   `x-ratelimit-*` headers, 429s with no hint; 40 services, 16 in flight.
//!
//! Per client: items lost, requests answered 429, the peak of accepted requests in
//! flight, wall time, and wall time over the ideal the limit sets. The SDK peer needs
//! `pip install openai`; without it its rows say so. `RBPLAN_BEFORE=path/to/rbplan` adds
//! that binary's rows, run in the same way against a fresh server, for before/after
//! figures in one run; the storm also runs once with `--rpm 300`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

#[path = "../tests/integration/limited.rs"]
#[allow(dead_code)]
mod limited;
#[path = "../tests/integration/server.rs"]
#[allow(dead_code)]
mod server;

const BIN: &str = env!("CARGO_BIN_EXE_rbplan");
const LATENCY: Duration = Duration::from_millis(200);
const MAX_TOKENS: &str = "3000";

struct Case {
    name: &'static str,
    n: usize,
    c: usize,
    /// The shortest time the limit allows for `n` first requests, in seconds.
    ideal: f64,
    start: fn(String) -> (server::Server, std::sync::Arc<limited::Stats>),
}

fn storm(text: String) -> (server::Server, std::sync::Arc<limited::Stats>) {
    limited::rpm_server(5, Duration::from_secs(1), LATENCY, text)
}

fn tpm(text: String) -> (server::Server, std::sync::Arc<limited::Stats>) {
    limited::tpm_server(100_000.0, 10_000.0, LATENCY, text)
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("fixtures/authored/plan.md")).unwrap();
    let (summary, stages) = example(root);
    let work = tempfile::tempdir().unwrap();
    let body = first_request(work.path(), &summary, &stages);
    let prompt_tokens = body_chars(&body) / 4;
    let cost = (prompt_tokens + MAX_TOKENS.parse::<usize>().unwrap()) as f64;
    let cases = [
        Case {
            name: "storm",
            n: 80,
            c: 32,
            ideal: 80.0 / 5.0,
            start: storm,
        },
        // The first 100,000 tokens go at once; the rest at 10,000 a second.
        Case {
            name: "tpm",
            n: 40,
            c: 16,
            ideal: ((40.0 * cost - 100_000.0) / 10_000.0).max(0.0),
            start: tpm,
        },
    ];
    println!("| server | client | items | lost | 429s | peak in flight | wall s | ideal s | wall/ideal |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for case in &cases {
        let input = services(work.path(), case.n, &summary, &stages);
        let before = std::env::var("RBPLAN_BEFORE").ok();
        let mut runs: Vec<(String, &str, Vec<&str>)> = Vec::new();
        if let Some(b) = before.as_deref() {
            runs.push(("rbplan before".into(), b, vec![]));
        }
        runs.push(("rbplan".into(), BIN, vec![]));
        if case.name == "storm" {
            if let Some(b) = before.as_deref() {
                runs.push(("rbplan before --rpm 300".into(), b, vec!["--rpm", "300"]));
            }
            runs.push(("rbplan --rpm 300".into(), BIN, vec!["--rpm", "300"]));
        }
        for (label, bin, extra) in &runs {
            let (srv, stats) = (case.start)(text.clone());
            let (lost, secs) = run_rbplan(bin, work.path(), &srv, &input, case.c, extra);
            row(case, label, lost, &stats, secs);
        }
        let (srv, stats) = (case.start)(text.clone());
        match run_sdk(root, &srv, case, work.path(), &body) {
            Some((lost, secs)) => row(case, "openai-python", lost, &stats, secs),
            None => println!(
                "| {} | openai-python | not run: `pip install openai` | | | | | | |",
                case.name
            ),
        }
    }
    println!(
        "\nprompt ≈ {prompt_tokens} tokens (chars/4), max_tokens {MAX_TOKENS}, latency {} ms",
        LATENCY.as_millis()
    );
}

fn row(case: &Case, client: &str, lost: usize, stats: &limited::Stats, secs: f64) {
    println!(
        "| {} | {client} | {} | {lost} | {} | {} | {secs:.1} | {:.1} | {:.2}× |",
        case.name,
        case.n,
        stats.limited(),
        stats.peak_in_flight(LATENCY),
        case.ideal,
        secs / case.ideal
    );
}

fn example(root: &Path) -> (String, String) {
    let t: toml::Value =
        toml::from_str(&std::fs::read_to_string(root.join("prompts/rollback-plan/template.toml")).unwrap()).unwrap();
    let e = &t["example"];
    (
        e["summary"].as_str().unwrap().into(),
        e["stages"].as_str().unwrap().into(),
    )
}

fn services(dir: &Path, n: usize, summary: &str, stages: &str) -> std::path::PathBuf {
    let p = dir.join(format!("services-{n}.jsonl"));
    let text: String = (0..n)
        .map(|i| serde_json::json!({"name": format!("svc-{i:02}"), "summary": format!("Service svc-{i:02}. {summary}"), "stages": stages}).to_string() + "\n")
        .collect();
    std::fs::write(&p, text).unwrap();
    p
}

/// The body rbplan sends first for service svc-00, for the SDK to send too.
fn first_request(dir: &Path, summary: &str, stages: &str) -> std::path::PathBuf {
    let out = Command::new(BIN)
        .args(["render", "--json", "--model", "m", "--max-tokens", MAX_TOKENS])
        .args(["--summary", &format!("Service svc-00. {summary}"), "--stages", stages])
        .output()
        .unwrap();
    let p = dir.join("body.json");
    std::fs::write(&p, &out.stdout).unwrap();
    p
}

fn body_chars(p: &Path) -> usize {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
    v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap().len())
        .sum()
}

/// `rbplan batch` into a fresh folder: items not complete, and seconds.
fn run_rbplan(bin: &str, dir: &Path, srv: &server::Server, input: &Path, c: usize, extra: &[&str]) -> (usize, f64) {
    let out = dir.join(format!("out-{}", fastrand::u32(..)));
    let t0 = Instant::now();
    let status = Command::new(bin)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .args(["batch"])
        .arg(input)
        .arg("--out-dir")
        .arg(&out)
        .args([
            "--model",
            "m",
            "--base-url",
            &srv.url(),
            "-j",
            &c.to_string(),
            "--max-tokens",
            MAX_TOKENS,
            "-q",
        ])
        .args(extra)
        .status()
        .unwrap();
    let secs = t0.elapsed().as_secs_f64();
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    let complete = r["totals"]["complete"].as_u64().unwrap() as usize;
    let n = r["totals"]["items"].as_u64().unwrap() as usize;
    if !status.success() {
        eprintln!("rbplan exited {status}");
    }
    (n - complete, secs)
}

fn run_sdk(root: &Path, srv: &server::Server, case: &Case, _dir: &Path, body: &Path) -> Option<(usize, f64)> {
    let out = Command::new("python3")
        .arg(root.join("benches/sdk_peer.py"))
        .args([&srv.url(), &case.n.to_string(), &case.c.to_string()])
        .arg(body)
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or(""));
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    Some((v["lost"].as_u64()? as usize, v["secs"].as_f64()?))
}
