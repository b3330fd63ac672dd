//! Batch under real API limits, over HTTP to servers that enforce them: a 429 storm and a
//! token limit told only in headers lose no item; an exhausted quota still stops the run
//! at once; `--max-cost` stops a run cleanly and a rerun goes on where it stopped.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

use super::batch::{batch, report};
use super::common::{example_input, tempdir};
use super::limited::{rpm_server, tpm_server};
use super::model::{authored, reply};
use super::server::{Reply, Server};

fn services(dir: &Path, n: usize) -> PathBuf {
    let (summary, stages) = example_input();
    let p = dir.join("services.jsonl");
    let text: String = (0..n)
        .map(|i| json!({"name": format!("svc-{i:02}"), "summary": format!("Service svc-{i:02}. {summary}"), "stages": stages}).to_string() + "\n")
        .collect();
    std::fs::write(&p, text).unwrap();
    p
}

/// 40 services, 32 in flight, against 20 requests a second: most first attempts meet a
/// 429. Every item completes, and the client counted exactly the 429s the server sent.
#[test]
fn a_429_storm_loses_nothing() {
    let latency = Duration::from_millis(100);
    let (server, stats) = rpm_server(20, Duration::from_secs(1), latency, authored().text);
    let dir = tempdir();
    let input = services(dir.path(), 40);
    let out = batch(dir.path(), &server, &input, &["-j", "32", "--max-retries", "1"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let r = report(dir.path());
    assert_eq!(
        (r["totals"]["complete"].as_u64(), r["totals"]["failed"].as_u64()),
        (Some(40), Some(0))
    );
    assert_eq!(stats.accepted(), 40, "one answered request per service");
    assert!(stats.limited() > 0, "the storm happened");
    // The first wave meets the limit; after it the rate is learned and kept: at most one
    // 429 per plan, counted as the server answered them.
    assert!(stats.limited() <= 40, "{} 429s for 40 plans", stats.limited());
    assert_eq!(r["totals"]["rate_limited"].as_u64(), Some(stats.limited() as u64));
    assert_eq!(r["totals"]["transport_retries"], 0, "429s used none of --max-retries 1");
    assert!(stats.peak_in_flight(latency) <= 20, "{}", stats.peak_in_flight(latency));
}

/// `--rpm` paces the first wave too: against a limit of 20 a second, `--rpm 1140` (19 a
/// second) sends nothing the server refuses, where 32 at once would meet 12 429s.
#[test]
fn rpm_paces_the_first_wave() {
    let latency = Duration::from_millis(100);
    let (server, stats) = rpm_server(20, Duration::from_secs(1), latency, authored().text);
    let dir = tempdir();
    let input = services(dir.path(), 30);
    let out = batch(dir.path(), &server, &input, &["-j", "32", "--rpm", "1140"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(stats.accepted(), 30);
    assert!(stats.limited() <= 1, "{} 429s", stats.limited());
}

/// A token limit announced only in `x-ratelimit-*` headers, 429s with no hint: the client
/// paces by the headers and every item completes.
#[test]
fn a_token_limit_told_only_in_headers_loses_nothing() {
    let (server, stats) = tpm_server(24_000.0, 24_000.0, Duration::from_millis(50), authored().text);
    let dir = tempdir();
    let input = services(dir.path(), 20);
    let out = batch(dir.path(), &server, &input, &["-j", "16", "--max-tokens", "3000"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let r = report(dir.path());
    assert_eq!(
        (r["totals"]["complete"].as_u64(), r["totals"]["failed"].as_u64()),
        (Some(20), Some(0))
    );
    assert_eq!(stats.accepted(), 20);
    assert_eq!(r["totals"]["rate_limited"].as_u64(), Some(stats.limited() as u64));
    // The first wave goes out before any header is known: 16 requests, room for three.
    // After that the headers pace the run: few more 429s, where blind sending (and a
    // bucket that refills four requests a second) would meet one on most attempts.
    assert!(stats.limited() <= 16, "{} 429s", stats.limited());
}

/// An exhausted quota is no rate limit: the run stops at once, nothing more is sent.
#[test]
fn an_exhausted_quota_still_stops_the_run() {
    let server = Server::start(|_, _| {
        let body = json!({"error": {"message": "You exceeded your current quota", "type": "insufficient_quota", "code": "insufficient_quota"}});
        Reply::json(429, &body)
    });
    let dir = tempdir();
    let input = services(dir.path(), 12);
    let out = batch(dir.path(), &server, &input, &["-j", "2"]);
    assert_eq!(out.code, 4, "{}", out.stderr);
    assert!(out.stderr.contains("insufficient_quota"), "{}", out.stderr);
    assert!(server.chats().len() <= 2, "{} requests", server.chats().len());
    let r = report(dir.path());
    // The first answer fails its item; the other in flight fails too or is dropped, as the
    // race goes; none more start.
    let (failed, pending) = (
        r["totals"]["failed"].as_u64().unwrap(),
        r["totals"]["pending"].as_u64().unwrap(),
    );
    assert!(
        (1..=2).contains(&failed) && failed + pending == 12,
        "{failed} failed, {pending} pending"
    );
}

/// `--max-cost` starts no request that could pass the budget, finishes those in flight,
/// exits 6; a rerun with more goes on without redoing a finished plan.
#[test]
fn a_budget_stops_the_run_and_a_rerun_goes_on() {
    let a = authored();
    let server = Server::start(move |req, n| reply(req, n, &a.text, "stop"));
    let dir = tempdir();
    let input = services(dir.path(), 10);
    // $1 per million tokens each way: a first request is about 3,100 prompt tokens plus
    // 3,000 max tokens, a worst case of about $0.0061.
    let flags = ["-j", "2", "--max-tokens", "3000", "--price", "1:1"];
    let out = batch(
        dir.path(),
        &server,
        &input,
        &[&flags[..], &["--max-cost", "0.02"]].concat(),
    );
    assert_eq!(out.code, 6, "{}", out.stderr);
    assert!(out.stderr.contains("budget reached"), "{}", out.stderr);
    let r = report(dir.path());
    let done = r["totals"]["complete"].as_u64().unwrap();
    assert!((2..=3).contains(&done), "{done} plans within $0.02");
    assert_eq!(r["totals"]["failed"], 0);
    assert_eq!(r["totals"]["pending"].as_u64(), Some(10 - done));
    let spent = r["budget"]["spent_usd"].as_f64().unwrap();
    assert!(spent <= 0.02 && r["budget"]["reached"] == true, "{}", r["budget"]);
    assert_eq!(server.chats().len() as u64, done, "nothing sent past the budget");

    let out = batch(
        dir.path(),
        &server,
        &input,
        &[&flags[..], &["--max-cost", "1"]].concat(),
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let r = report(dir.path());
    assert_eq!(r["totals"]["complete"], 10);
    assert_eq!(r["totals"]["resumed"].as_u64(), Some(done));
    assert_eq!(server.chats().len(), 10, "each plan asked for once over both runs");
    assert!(r["totals"]["cost_usd"].as_f64().unwrap() > 0.0);
}

/// `--dry-run` sends nothing and counts what would run after resume, with the cost range.
#[test]
fn dry_run_counts_what_would_run_and_sends_nothing() {
    let a = authored();
    let server = Server::start(move |req, n| reply(req, n, &a.text, "stop"));
    let dir = tempdir();
    let input = services(dir.path(), 3);
    let batch = |_: &Path, _: &Server, input: &Path, extra: &[&str]| {
        super::common::rbplan(dir.path())
            .args(["batch"])
            .arg_path(input)
            .args(["--out-dir", "out", "--base-url", &server.url()])
            .args(extra)
            .run()
    };
    // One plan already made and current: a dry run counts it as kept.
    let one = dir.path().join("one.jsonl");
    std::fs::write(
        &one,
        std::fs::read_to_string(&input)
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .to_string()
            + "\n",
    )
    .unwrap();
    let first = batch(dir.path(), &server, &one, &["--model", "gpt-4o-mini"]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let sent = server.chats().len();
    let out = batch(
        dir.path(),
        &server,
        &input,
        &["--model", "gpt-4o-mini", "--max-tokens", "1000", "--dry-run", "--json"],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(server.chats().len(), sent, "nothing sent");
    let v = out.json();
    assert_eq!(
        (v["items"].as_u64(), v["to_run"].as_u64(), v["kept"].as_u64()),
        (Some(3), Some(2), Some(1))
    );
    let m = &v["models"][0];
    assert_eq!(
        (m["model"].as_str(), m["counting"].as_str()),
        (Some("gpt-4o-mini"), Some("o200k_base"))
    );
    assert_eq!(m["max_completion_tokens"], 2000);
    let prompt = m["prompt_tokens"].as_f64().unwrap();
    assert!((4000.0..8000.0).contains(&prompt), "{prompt}");
    // The built-in price: $0.15 in, $0.60 out per million.
    let (lo, hi) = (v["cost_usd_min"].as_f64().unwrap(), v["cost_usd_max"].as_f64().unwrap());
    assert!(
        (lo - prompt * 0.15e-6).abs() < 1e-12 && (hi - lo - 2000.0 * 0.60e-6).abs() < 1e-12,
        "{v}"
    );
    let text = batch(dir.path(), &server, &input, &["--model", "llama3", "--dry-run"]);
    assert!(
        text.stdout.contains("estimated at 4 characters a token") && text.stdout.contains("cost unknown"),
        "{}",
        text.stdout
    );
}

/// `ask --max-cost` refuses up front what it cannot bound, and a budget too small for the
/// first request sends nothing.
#[test]
fn ask_max_cost_checks_up_front_and_sends_nothing_past_it() {
    let a = authored();
    let server = Server::start(move |req, n| reply(req, n, &a.text, "stop"));
    let dir = tempdir();
    let ask = |extra: &[&str]| {
        super::common::rbplan(dir.path())
            .args(["ask", "--example", "--no-stream", "--base-url", &server.url()])
            .args(extra)
            .run()
    };
    let unpriced = ask(&["--model", "llama3", "--max-cost", "1"]);
    assert_eq!(unpriced.code, 2);
    assert!(
        unpriced.stderr.contains("--max-cost needs a price for model llama3"),
        "{}",
        unpriced.stderr
    );
    let tiny = ask(&["--model", "gpt-4o-mini", "--max-cost", "0.0001"]);
    assert_eq!(tiny.code, 6, "{}", tiny.stderr);
    assert!(tiny.stderr.contains("the budget is reached"), "{}", tiny.stderr);
    assert_eq!(server.chats().len(), 0);
    let ok = ask(&["--model", "gpt-4o-mini", "--max-cost", "1", "--json"]);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert!(ok.json()["cost_usd"].as_f64().unwrap() > 0.0);
}

/// `--dry-run --max-cost` says when the budget would not cover the first requests.
#[test]
fn dry_run_says_when_max_cost_would_stop_the_run() {
    let dir = tempdir();
    let input = services(dir.path(), 3);
    let dry = |max: &str| {
        super::common::rbplan(dir.path())
            .args(["batch"])
            .arg_path(&input)
            .args(["--out-dir", "out", "--model", "gpt-4o-mini", "--max-tokens", "1000"])
            .args(["--dry-run", "--max-cost", max])
            .run()
    };
    let out = dry("0.00001");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("is below even the lowest cost"), "{}", out.stderr);
    let out = dry("0.002");
    assert!(
        out.stderr.contains("the run may stop before every plan is made"),
        "{}",
        out.stderr
    );
    let out = dry("100");
    assert!(!out.stderr.contains("--max-cost"), "{}", out.stderr);
}
