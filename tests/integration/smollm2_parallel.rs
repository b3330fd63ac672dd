//! Real exchanges with llama-server (4 slots, SmolLM2-135M-Instruct, `--parallel 4
//! --max-repairs 1`), replayed over HTTP by the local test server.
//! fixtures/llama-smollm2-parallel (2026-12-02) is replayed for its first pass only (its
//! repair round asked with findings worded as they were then): the outline first, every
//! part carrying it, the input's stages asked for whatever the outline said.
//! fixtures/llama-smollm2-parallel-repair (2026-12-06, this build) adds the repair round
//! of one-section requests sent together, and a plan not passed.

use rbplan::client::fixture::read_dir_fixtures;
use serde_json::{Value, json};

use super::common::{all_text_under, fixture_dir, rbplan, tempdir};
use super::model::{asked_single, fixture_server, is_repair};
use super::parallel::stage_asked;
use super::server::{Request, Server};

const NAME: &str = "llama-smollm2-parallel";
const REPAIR: &str = "llama-smollm2-parallel-repair";
const MODEL: &str = "smollm2-135m-instruct";
const STAGES: [&str; 5] = [
    "CDC dual-running",
    "Decommission MySQL",
    "Read cutover",
    "Schema conversion and backfill",
    "Write cutover",
];

fn ask(server: &Server, repairs: &str) -> super::common::Out {
    let dir = tempdir();
    rbplan(dir.path())
        .args(["ask", "--example", "--base-url", &server.url(), "--model", MODEL])
        .args(["--max-tokens", "400", "--no-stream", "--json"])
        .args(["--parallel", "4", "--max-repairs", repairs])
        .run()
}

fn errors(v: &Value) -> Vec<(String, String)> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "error")
        .map(|f| {
            let code = f["code"].as_str().unwrap().to_string();
            (code, f["section"].as_str().unwrap_or("").to_string())
        })
        .collect()
}

#[test]
fn smollm2_in_parallel_outline_then_parts_and_a_plan_not_passed() {
    let server = fixture_server(NAME);
    let out = ask(&server, "0");
    assert_eq!(out.code, 3, "{}", out.stderr);
    let v = out.json();
    assert_eq!((&v["status"], &v["missing"]), (&json!("errors"), &json!([])));
    // The outline renames the stages ("Dual-run phase", "Reverse migration", …); none of
    // the input's names is in it as written.
    let outline = v["outline"].as_str().unwrap();
    assert!(outline.starts_with("**Dual-run phase:"), "{outline}");
    assert!(STAGES.iter().all(|s| !outline.contains(s)), "{outline}");
    let chats = server.chats();
    assert_eq!((chats.len(), &v["requests"]), (15, &json!(15)));
    assert!(chats[0].last_user().contains("write the short outline of facts"));
    // Then 14 parts, each with the outline: 9 sections and the input's 5 stages.
    let parts: &[Request] = &chats[1..15];
    assert!(parts.iter().all(|c| c.last_user().contains(outline) && !is_repair(c)));
    let mut stages: Vec<String> = parts.iter().filter_map(|c| stage_asked(&c.last_user())).collect();
    stages.sort();
    assert_eq!(stages, STAGES);
    let mut sections: Vec<usize> = parts.iter().map(|c| asked_single(&c.last_user()).unwrap()).collect();
    sections.sort();
    sections.dedup();
    assert_eq!(sections, (0..10).collect::<Vec<_>>());
    // What is wrong is said: a loop, no table, no checkboxes, no scenarios, no point of no
    // return, the stage whose part was a fenced list of empty headings, and what-if, which
    // says by-stage's paragraphs again.
    let errs = errors(&v);
    for want in [
        ("loop", "by-stage"),
        ("stage_coverage", "by-stage"),
        ("table", "decision-matrix"),
        ("checkboxes", "checklist"),
        ("items", "what-if"),
        ("repeated", "what-if"),
        ("mentions", "hard-truth"),
    ] {
        assert!(errs.contains(&(want.0.into(), want.1.into())), "{want:?} in {errs:?}");
    }
    let read = stage_reply("Read cutover");
    assert!(read.starts_with("```\n# Migration:"), "{read}");
    // The first stage's reply opens a fence it never closes; the stages after it are still
    // headings, not code.
    assert!(stage_reply("Schema conversion and backfill").starts_with("```\n"));
    let plan = v["plan"].as_str().unwrap();
    for (k, stage) in STAGES_IN_ORDER.iter().enumerate().filter(|(k, _)| *k != 2) {
        assert!(plan.contains(&format!("\n### Stage {}: {stage}\n", k + 1)), "{stage}");
    }
    assert!(!plan.contains("Stage 3: Read cutover"));
}

#[test]
fn smollm2_in_parallel_a_repair_round_of_sections_sent_together_and_a_plan_not_passed() {
    let server = fixture_server(REPAIR);
    let out = ask(&server, "1");
    assert_eq!(out.code, 3, "{}", out.stderr);
    let v = out.json();
    assert_eq!((&v["status"], &v["missing"]), (&json!("errors"), &json!([])));
    let outline = v["outline"].as_str().unwrap();
    let chats = server.chats();
    assert_eq!((chats.len(), &v["requests"]), (20, &json!(20)));
    assert!(
        chats[1..15]
            .iter()
            .all(|c| c.last_user().contains(outline) && !is_repair(c))
    );
    // Repair: the five sections with error findings, each alone with the outline and what
    // was wrong with it, no conversation (that they go together is parallel.rs's test).
    let mut rewrites: Vec<usize> = chats[15..]
        .iter()
        .map(|c| asked_single(&c.last_user()).unwrap())
        .collect();
    rewrites.sort();
    assert_eq!(rewrites, [1, 2, 6, 8, 9]);
    assert!(
        chats[15..]
            .iter()
            .all(|c| !is_repair(c) && c.last_user().contains(outline))
    );
    assert!(chats[15..].iter().any(|c| c.last_user().contains("repeats itself")));
    let round = &v["repairs"]["detail"][0];
    assert_eq!((&round["strategy"], &round["requests"]), (&json!("section"), &json!(5)));
    assert_eq!(
        round["rewritten"],
        json!(["decision-matrix", "checklist", "hard-truth"])
    );
    let errs = errors(&v);
    for want in [
        ("loop", "by-stage"),
        ("loop", "hard-truth"),
        ("table", "decision-matrix"),
        ("checkboxes", "checklist"),
        ("items", "what-if"),
    ] {
        assert!(errs.contains(&(want.0.into(), want.1.into())), "{want:?} in {errs:?}");
    }
}

const STAGES_IN_ORDER: [&str; 5] = [
    "Schema conversion and backfill",
    "CDC dual-running",
    "Read cutover",
    "Write cutover",
    "Decommission MySQL",
];

/// The recorded reply to the part that asked for `stage`.
fn stage_reply(stage: &str) -> String {
    let files = read_dir_fixtures(&fixture_dir(NAME)).unwrap();
    let (_, f) = files
        .into_iter()
        .find(|(_, f)| {
            let last = f.request.body["messages"].as_array().unwrap().last().unwrap();
            stage_asked(last["content"].as_str().unwrap()).as_deref() == Some(stage)
        })
        .expect("the stage was asked for");
    let reply = &f.responses[0].json.as_ref().unwrap()["choices"][0]["message"]["content"];
    reply.as_str().unwrap().to_string()
}

/// The usage the recorded responses report, over the files `keep` takes.
fn recorded_usage(name: &str, keep: impl Fn(&str) -> bool) -> (u64, u64) {
    let (mut prompt, mut completion) = (0, 0);
    for (file, f) in read_dir_fixtures(&fixture_dir(name)).unwrap() {
        let Some(u) = f.responses[0].json.as_ref().map(|j| j["usage"].clone()) else {
            continue;
        };
        if keep(&file) {
            prompt += u["prompt_tokens"].as_u64().unwrap_or(0);
            completion += u["completion_tokens"].as_u64().unwrap_or(0);
        }
    }
    (prompt, completion)
}

#[test]
fn smollm2_parallel_usage_is_what_the_server_reported_and_the_fixtures_are_clean() {
    // The first pass of the older recording: its files 001-015 (numbered as answered).
    let first_pass = |f: &str| f[..3].parse::<u32>().unwrap() <= 15;
    let runs = [
        (NAME, "0", recorded_usage(NAME, first_pass)),
        (REPAIR, "1", recorded_usage(REPAIR, |_| true)),
    ];
    assert_eq!(recorded_usage(NAME, |_| true), (64_358, 6_962));
    assert_eq!(runs[1].2, (64_269, 7_634));
    for (name, repairs, (prompt, completion)) in runs {
        let v = ask(&fixture_server(name), repairs).json();
        assert_eq!(
            (&v["usage"]["prompt_tokens"], &v["usage"]["completion_tokens"]),
            (&json!(prompt), &json!(completion)),
            "{name}"
        );
        let text = all_text_under(&fixture_dir(name)).to_lowercase();
        for secret in ["authorization", "api-key", "bearer", "sk-"] {
            assert!(!text.contains(secret), "{secret} in fixtures/{name}");
        }
        for (file, f) in read_dir_fixtures(&fixture_dir(name)).unwrap() {
            assert!(f.note.starts_with("recorded from a real model"), "{file}: {}", f.note);
        }
    }
}
