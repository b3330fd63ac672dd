//! The real exchange in fixtures/llama-smollm2-parallel (llama-server with 4 slots,
//! SmolLM2-135M-Instruct, `--parallel 4 --max-repairs 1`), replayed over HTTP by the local
//! test server: the outline first, every part carrying it, the input's stages asked for
//! whatever the outline said, repair after a context overflow, and a plan not passed.

use rbplan::client::fixture::read_dir_fixtures;
use serde_json::{Value, json};

use super::common::{all_text_under, fixture_dir, rbplan, tempdir};
use super::model::{asked_single, fixture_server, is_repair};
use super::parallel::stage_asked;
use super::server::{Request, Server};

const NAME: &str = "llama-smollm2-parallel";
const MODEL: &str = "smollm2-135m-instruct";
const STAGES: [&str; 5] = [
    "CDC dual-running",
    "Decommission MySQL",
    "Read cutover",
    "Schema conversion and backfill",
    "Write cutover",
];

fn ask(server: &Server) -> super::common::Out {
    let dir = tempdir();
    rbplan(dir.path())
        .args(["ask", "--example", "--base-url", &server.url(), "--model", MODEL])
        .args(["--max-tokens", "400", "--no-stream", "--json"])
        .args(["--parallel", "4", "--max-repairs", "1"])
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
fn smollm2_in_parallel_outline_parts_repair_and_a_plan_not_passed() {
    let server = fixture_server(NAME);
    let out = ask(&server);
    assert_eq!(out.code, 3, "{}", out.stderr);
    let v = out.json();
    assert_eq!((&v["status"], &v["missing"]), (&json!("errors"), &json!([])));
    // The outline is a list of "[N. Rollback outline]" lines; it names no stage of the input.
    let outline = v["outline"].as_str().unwrap();
    assert!(
        outline.starts_with("## The plan is now complete.") && !outline.contains("cutover"),
        "{outline}"
    );
    let chats = server.chats();
    assert_eq!((chats.len(), &v["requests"]), (24, &json!(24)));
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
    // Repair: the conversation overflowed the slot's 4,096 tokens (a real 400), so each
    // section with error findings was asked alone, with what was wrong with it.
    assert!(is_repair(&chats[15]) && chats[15].roles().len() == 4);
    let rewrites: Vec<usize> = chats[16..]
        .iter()
        .map(|c| asked_single(&c.last_user()).unwrap())
        .collect();
    assert_eq!(rewrites, [0, 1, 2, 4, 5, 6, 8, 9]);
    assert!(chats[16..].iter().any(|c| c.last_user().contains("repeats itself")));
    assert!(
        out.stderr.contains("no longer fits the model's context"),
        "{}",
        out.stderr
    );
    let round = &v["repairs"]["detail"][0];
    assert_eq!(round["rewritten"], json!(["philosophy", "communication"]));
    // What is still wrong is said: loops, the prompt's own heading, no table, no
    // checkboxes, no scenarios, no point of no return.
    let errs = errors(&v);
    for want in [
        ("loop", "by-stage"),
        ("loop", "rehearsal"),
        ("about_prompt", "by-stage"),
        ("table", "decision-matrix"),
        ("checkboxes", "checklist"),
        ("items", "what-if"),
        ("mentions", "hard-truth"),
    ] {
        assert!(errs.contains(&(want.0.into(), want.1.into())), "{want:?} in {errs:?}");
    }
    // Every input stage has its subsection, though the "Read cutover" reply opens with a
    // code fence it never closes (read as a fenced reply; the stages after it stay headings).
    // A fence opened mid-reply is tests/integration/parallel.rs's case.
    assert!(!errs.iter().any(|(c, _)| c == "stage_coverage"), "{errs:?}");
    let read = stage_reply("Read cutover");
    let fences = read.lines().filter(|l| l.trim_start().starts_with("```")).count();
    assert_eq!(fences, 1, "{read}");
    let plan = v["plan"].as_str().unwrap();
    for (k, stage) in STAGES_IN_ORDER.iter().enumerate() {
        assert!(plan.contains(&format!("\n### Stage {}: {stage}\n", k + 1)), "{stage}");
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

#[test]
fn smollm2_parallel_usage_is_what_the_server_reported_and_the_fixture_is_clean() {
    let server = fixture_server(NAME);
    let v = ask(&server).json();
    let (mut prompt, mut completion) = (0, 0);
    for (_, f) in read_dir_fixtures(&fixture_dir(NAME)).unwrap() {
        let Some(u) = f.responses[0].json.as_ref().map(|j| j["usage"].clone()) else {
            continue;
        };
        prompt += u["prompt_tokens"].as_u64().unwrap_or(0);
        completion += u["completion_tokens"].as_u64().unwrap_or(0);
    }
    assert_eq!((prompt, completion), (73_986, 7_663));
    assert_eq!(
        (&v["usage"]["prompt_tokens"], &v["usage"]["completion_tokens"]),
        (&json!(prompt), &json!(completion))
    );
    let text = all_text_under(&fixture_dir(NAME)).to_lowercase();
    for secret in ["authorization", "api-key", "bearer", "sk-"] {
        assert!(!text.contains(secret), "{secret} in fixtures/{NAME}");
    }
    for (name, f) in read_dir_fixtures(&fixture_dir(NAME)).unwrap() {
        assert!(f.note.starts_with("recorded from a real model"), "{name}: {}", f.note);
    }
}
