//! The real exchange in fixtures/llama-smollm2 (llama-server, SmolLM2-135M-Instruct),
//! replayed over HTTP by the local test server: what rbplan made of a weak model's real
//! output, and exactly what it asked. fixtures/README.md tells the story this checks.

use rbplan::check::Checker;
use rbplan::client::fixture::read_dir_fixtures;
use rbplan::template::Template;
use serde_json::{Value, json};

use super::common::{all_text_under, fixture_dir, rbplan, tempdir};
use super::model::{asked_headings, asked_single, fixture_server};
use super::server::Server;

const NAME: &str = "llama-smollm2";
const MODEL: &str = "smollm2-135m-instruct";

fn ask(server: &Server) -> super::common::Out {
    let dir = tempdir();
    rbplan(dir.path())
        .args(["ask", "--example", "--base-url", &server.url(), "--model", MODEL])
        .args(["--max-tokens", "400", "--no-stream", "--json"])
        .run()
}

fn ids(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn smollm2_ends_with_every_section_after_repair_and_one_section_requests() {
    let server = fixture_server(NAME);
    let out = ask(&server);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v = out.json();
    assert_eq!(v["status"], "complete");
    assert_eq!(v["missing"], json!([]));

    // The first answer: 8 of 10, lacking the philosophy and the checklist.
    assert_eq!(v["first_answer"]["found"], 8);
    assert_eq!(v["first_answer"]["truncated"], false);
    let first = ids(&v["first_answer"]["sections"]);
    assert!(!first.contains(&"philosophy".into()) && !first.contains(&"checklist".into()));

    // Round 1 asks in the conversation and gets nothing usable; round 2 asks one section per
    // request and recovers both. No rewrite had fewer problems, so none went in. Round 1's
    // reply was cut off before any section, so its rewrites count as unanswered and round 2
    // asks them again; an answered rewrite that fixed nothing would not be.
    let rounds = v["repairs"]["detail"].as_array().unwrap();
    assert_eq!(rounds.len(), 2);
    let rewrite = json!(["decision-matrix", "by-stage", "what-if", "hard-truth"]);
    for (r, strategy, recovered, requests) in [
        (&rounds[0], "repair", json!([]), 1),
        (&rounds[1], "section", json!(["philosophy", "checklist"]), 6),
    ] {
        assert_eq!(r["strategy"], strategy);
        assert_eq!(r["asked"], json!(["philosophy", "checklist"]));
        assert_eq!(r["rewrite"], rewrite);
        assert_eq!(r["recovered"], recovered);
        assert_eq!(r["rewritten"], json!([]));
        assert_eq!(r["requests"], requests);
    }
    for s in v["sections"].as_array().unwrap() {
        assert_eq!(s["found"], true, "{s}");
        let want = if ["philosophy", "checklist"].contains(&s["id"].as_str().unwrap()) {
            "section"
        } else {
            "first"
        };
        assert_eq!(s["strategy"], want, "{s}");
    }

    // Usage is the sum of what the server reported.
    assert_eq!(v["requests"], 8);
    let (mut prompt, mut completion) = (0, 0);
    for (_, f) in read_dir_fixtures(&fixture_dir(NAME)).unwrap() {
        let u = &f.responses[0].json.as_ref().unwrap()["usage"];
        prompt += u["prompt_tokens"].as_u64().unwrap();
        completion += u["completion_tokens"].as_u64().unwrap();
    }
    assert_eq!((prompt, completion), (23_193, 2_630));
    assert_eq!(v["usage"]["prompt_tokens"], prompt);
    assert_eq!(v["usage"]["completion_tokens"], completion);
    assert_eq!(v["usage"]["total_tokens"], prompt + completion);
    assert_eq!(v["usage"]["complete"], true);
    assert_eq!(v["model_reported"], "/tmp/llama/model.gguf");

    // The plan: every section once where it counts, in canonical order; the first answer's
    // text kept where a rewrite was no better.
    let plan = v["plan"].as_str().unwrap();
    let checker = Checker::new(&Template::builtin());
    let outline = checker.outline(plan);
    let primaries: Vec<usize> = (0..10).map(|i| outline.primary(i).expect("present").start).collect();
    assert!(
        primaries.windows(2).all(|w| w[0] < w[1]),
        "canonical order: {primaries:?}"
    );
    assert!(plan.contains("### 1. Rollback philosophy\n\n**Migration:**"), "{plan}");
    assert!(plan.contains("### 7. Post-rollback checklist\n\n"), "{plan}");
    assert!(plan.contains("### 2. Rollback decision matrix:\nWhen a rollback goes wrong, it's a failure."));
    assert!(
        !plan.contains("### 35. Rollback decision matrix"),
        "the rejected rewrite is not in"
    );
}

#[test]
fn smollm2_repair_requests_name_exactly_the_missing_headings() {
    let server = fixture_server(NAME);
    let out = ask(&server);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let chats = server.chats();
    assert_eq!(chats.len(), 8, "every request was answered from the recording");
    for c in &chats {
        assert!(c.header("authorization").is_none(), "no key, no Authorization header");
        let body = c.json();
        assert_eq!(body["model"], MODEL);
        assert_eq!(body["max_tokens"], 400);
    }
    let roles = |i: usize| chats[i].roles();

    // Round 1: the draft as the assistant turn, then the two missing headings and the four
    // to rewrite, each exactly as the template words it.
    assert_eq!(roles(1), ["system", "user", "assistant", "user"]);
    let first: Value = read_dir_fixtures(&fixture_dir(NAME)).unwrap()[0].1.responses[0]
        .json
        .clone()
        .unwrap();
    let draft = first["choices"][0]["message"]["content"].as_str().unwrap();
    let second = chats[1].json();
    assert_eq!(second["messages"][2]["content"].as_str().unwrap().trim(), draft.trim());
    let repair = second["messages"][3]["content"].as_str().unwrap();
    let (missing, rewrite) = repair.split_once("Also rewrite").expect("both parts");
    assert_eq!(asked_headings(missing), vec![0, 6]);
    assert_eq!(asked_headings(rewrite), vec![1, 2, 8, 9]);
    assert!(
        rewrite.contains("has 0 scenarios; expected between 5 and 10"),
        "{rewrite}"
    );

    // Round 2: one request per section, heading supplied, no conversation: the missing
    // ones first, then the rewrites.
    let singles: Vec<usize> = chats[2..]
        .iter()
        .map(|c| asked_single(&c.last_user()).expect("a one-section request"))
        .collect();
    assert_eq!(singles, vec![0, 6, 1, 2, 8, 9]);
    for i in 2..8 {
        assert_eq!(roles(i), ["system", "user"]);
    }
}

#[test]
fn smollm2_fixture_holds_no_key_and_says_where_it_came_from() {
    let text = all_text_under(&fixture_dir(NAME)).to_lowercase();
    for secret in ["authorization", "api-key", "bearer", "sk-"] {
        assert!(!text.contains(secret), "{secret} in fixtures/{NAME}");
    }
    for (name, f) in read_dir_fixtures(&fixture_dir(NAME)).unwrap() {
        assert!(f.note.starts_with("recorded from a real model"), "{name}: {}", f.note);
    }
}
