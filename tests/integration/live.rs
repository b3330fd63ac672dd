//! Opt-in live check against a real OpenAI-compatible server with a real model. Ignored
//! unless asked for by name with `--ignored`, and then it needs `RBPLAN_LIVE_URL`:
//!
//!     ../shared/tools/setup-llama-server.sh /tmp/llama       # once, about 10 minutes
//!     /tmp/llama/run.sh 8088 &                               # llama-server on 127.0.0.1:8088
//!     RBPLAN_LIVE_URL=http://127.0.0.1:8088/v1 cargo test --test integration live -- --ignored --nocapture
//!
//! `RBPLAN_LIVE_MODEL` (default `smollm2-135m-instruct`, a label: llama-server answers
//! with the model it loaded), `RBPLAN_LIVE_MAX_TOKENS` (default 400) and
//! `RBPLAN_LIVE_RUNS` (default 1) tune it. Each run prints what happened and what the
//! plan was flagged for; the assertions are that every run ends with all ten sections
//! present, and that its verdict is honest: a plan with error findings is not `complete`
//! and exits 3.

use std::time::Instant;

use serde_json::Value;

use super::common::{rbplan, tempdir};

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default.to_string())
}

#[test]
#[ignore = "live: needs a model server; run with RBPLAN_LIVE_URL=http://127.0.0.1:8088/v1 and -- --ignored"]
fn live_example_plan_ends_with_every_section() {
    let url = std::env::var("RBPLAN_LIVE_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .expect("set RBPLAN_LIVE_URL (e.g. http://127.0.0.1:8088/v1) to run the live check");
    let model = env_or("RBPLAN_LIVE_MODEL", "smollm2-135m-instruct");
    let max_tokens = env_or("RBPLAN_LIVE_MAX_TOKENS", "400");
    let runs: usize = env_or("RBPLAN_LIVE_RUNS", "1")
        .parse()
        .expect("RBPLAN_LIVE_RUNS is a number");
    let dir = tempdir();
    let mut failed = Vec::new();
    for run in 1..=runs {
        let started = Instant::now();
        let out = rbplan(dir.path())
            .args([
                "ask",
                "--example",
                "--base-url",
                &url,
                "--model",
                &model,
                "--max-tokens",
                &max_tokens,
                "--no-stream",
                "--json",
            ])
            .run();
        let secs = started.elapsed().as_secs_f64();
        assert!(
            out.code == 0 || out.code == 3,
            "run {run}: rbplan failed (exit {}):\n{}",
            out.code,
            out.stderr
        );
        let v = out.json();
        println!("{}", summary(run, &v, secs));
        if v["missing"] != serde_json::json!([]) {
            failed.push(format!("run {run}: missing {}", v["missing"]));
        }
        let errors = !flagged(&v).is_empty();
        assert_eq!(
            (errors, out.code),
            (v["status"] != "complete", if errors { 3 } else { 0 }),
            "run {run}: the verdict does not follow the findings: {v}"
        );
    }
    assert!(failed.is_empty(), "sections missing after repair: {failed:?}");
}

/// The error findings, as `code (section)`, a repeated one with its count.
fn flagged(v: &Value) -> Vec<String> {
    let mut out: Vec<(String, usize)> = Vec::new();
    for f in v["findings"].as_array().expect("findings") {
        if f["severity"] != "error" {
            continue;
        }
        let code = f["code"].as_str().unwrap_or("?");
        let what = match f["section"].as_str() {
            Some(s) => format!("{code} ({s})"),
            None => code.to_string(),
        };
        match out.iter_mut().find(|(w, _)| *w == what) {
            Some((_, n)) => *n += 1,
            None => out.push((what, 1)),
        }
    }
    out.into_iter()
        .map(|(w, n)| if n > 1 { format!("{w} ×{n}") } else { w })
        .collect()
}

/// One run, as a person reads it: sections after the first answer and after repair, which
/// strategy made each section present, rounds, requests, tokens and time.
fn summary(run: usize, v: &Value, secs: f64) -> String {
    let sections = v["sections"].as_array().expect("sections");
    let found = sections.iter().filter(|s| s["found"] == true).count();
    let first = &v["first_answer"];
    let strategy_of = |name: &str| -> Vec<String> {
        sections
            .iter()
            .filter(|s| s["strategy"] == name)
            .map(|s| s["number"].to_string())
            .collect()
    };
    let rounds: Vec<String> = v["repairs"]["detail"]
        .as_array()
        .expect("repair detail")
        .iter()
        .map(|r| {
            let n = |k: &str| r[k].as_array().map_or(0, Vec::len);
            format!(
                "{}: {}/{} missing recovered, {}/{} rewritten, {} request(s)",
                r["strategy"].as_str().unwrap_or("?"),
                n("recovered"),
                n("asked"),
                n("rewritten"),
                n("rewrite"),
                r["requests"]
            )
        })
        .collect();
    let u = &v["usage"];
    format!(
        "live run {run}: {} — first answer {}/10 sections{}; after repair {found}/10 \
         (first: [{}], repair: [{}], section: [{}]); {} repair round(s) [{}]; {} requests; \
         {} prompt + {} completion tokens{}; {secs:.1} s; flagged for: {}",
        v["status"].as_str().unwrap_or("?"),
        first["found"],
        if first["truncated"] == true { " (cut off)" } else { "" },
        strategy_of("first").join(", "),
        strategy_of("repair").join(", "),
        strategy_of("section").join(", "),
        v["repairs"]["rounds"],
        rounds.join("; "),
        v["requests"],
        u["prompt_tokens"],
        u["completion_tokens"],
        if u["complete"] == true {
            ""
        } else {
            " (some replies had no usage)"
        },
        flagged(v).join(", "),
    )
}
