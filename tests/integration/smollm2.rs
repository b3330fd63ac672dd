//! The real exchange in fixtures/llama-smollm2 (llama-server, SmolLM2-135M-Instruct),
//! replayed over HTTP by the local test server: what rbplan made of a weak model's real
//! output, and exactly what it asked. fixtures/README.md tells the story this checks.

use rbplan::check::Checker;
use rbplan::client::fixture::read_dir_fixtures;
use rbplan::template::Template;
use serde_json::{Value, json};

use super::common::{all_text_under, fixture_dir, rbplan, tempdir};
use super::model::{asked_single, fixture_server};
use super::server::Server;

const NAME: &str = "llama-smollm2";
const MODEL: &str = "smollm2-135m-instruct";

fn ask(server: &Server) -> super::common::Out {
    let dir = tempdir();
    let template = without_restated(dir.path());
    rbplan(dir.path())
        .args(["ask", "--example", "--base-url", &server.url(), "--model", MODEL])
        .args(["--max-tokens", "400", "--no-stream", "--json"])
        .args(["--template"])
        .arg_path(&template)
        .run()
}

/// The built-in template with `[quality] restated = []`. The recording predates that
/// check: with it on, rbplan asks rewrites the recording has no answer for (sections 1
/// and 10 restate their instructions). The template's prompts, and so the requests, are
/// the same; `smollm2_sections_that_restate_their_instructions_are_found` runs the check.
fn without_restated(dir: &std::path::Path) -> std::path::PathBuf {
    let src = super::common::repo().join("prompts/rollback-plan");
    let dst = dir.join("template");
    std::fs::create_dir_all(&dst).unwrap();
    for e in std::fs::read_dir(&src).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
    }
    let toml = std::fs::read_to_string(dst.join("template.toml")).unwrap();
    let start = toml.find("restated = [").expect("the template lists restated patterns");
    let end = start + toml[start..].find("\n]\n").unwrap() + 3;
    let toml = format!("{}restated = []\n{}", &toml[..start], &toml[end..]);
    std::fs::write(dst.join("template.toml"), toml).unwrap();
    dst
}

fn ids(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

/// Sections 2-10 in the order round 2 asked to rewrite them, and the ones that went in.
const REWRITE: [&str; 8] = [
    "decision-matrix",
    "by-stage",
    "by-component",
    "communication",
    "checklist",
    "post-mortem",
    "what-if",
    "hard-truth",
];
const REWRITTEN: [&str; 3] = ["by-component", "communication", "post-mortem"];

#[test]
fn smollm2_loops_and_prompt_talk_are_rewritten_and_the_plan_is_not_passed() {
    let server = fixture_server(NAME);
    let out = ask(&server);
    // Every section is there after repair, but the plan still fails its checks: exit 3.
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("plan has ERRORS: 10/10 sections"), "{}", out.stderr);
    let v = out.json();
    assert_eq!(v["status"], "errors");
    assert_eq!(v["missing"], json!([]));
    let errors: Vec<(String, String)> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "error")
        .map(|f| {
            (
                f["code"].as_str().unwrap().to_string(),
                f["section"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    for want in [
        ("table", "decision-matrix"),
        ("checkboxes", "checklist"),
        ("items", "what-if"),
        ("mentions", "hard-truth"),
        ("generic", ""),
    ] {
        assert!(
            errors.contains(&(want.0.into(), want.1.into())),
            "{want:?} in {errors:?}"
        );
    }
    // The loops and the prompt talk of round 1 were rewritten away.
    for gone in ["loop", "about_prompt", "copied"] {
        assert!(!errors.iter().any(|(c, _)| c == gone), "{gone} in {errors:?}");
    }

    // The first answer was one line, "[The Hard Truth about Rollback]": no section.
    assert_eq!(v["first_answer"]["found"], 0);
    assert_eq!(v["first_answer"]["truncated"], false);

    // Round 1 asks each section alone and gets all ten; round 2 rewrites the eight with
    // error findings, and three rewrites have fewer problems and go in.
    let rounds = v["repairs"]["detail"].as_array().unwrap();
    assert_eq!(rounds.len(), 2);
    let all = ids(&json!(
        Template::builtin()
            .spec
            .sections
            .iter()
            .map(|s| s.id.clone())
            .collect::<Vec<_>>()
    ));
    assert_eq!(
        (ids(&rounds[0]["asked"]), ids(&rounds[0]["recovered"])),
        (all.clone(), all)
    );
    assert_eq!(
        (&rounds[0]["strategy"], &rounds[0]["requests"]),
        (&json!("section"), &json!(10))
    );
    assert_eq!(rounds[1]["rewrite"], json!(REWRITE));
    assert_eq!(rounds[1]["rewritten"], json!(REWRITTEN));
    assert_eq!(
        (&rounds[1]["strategy"], &rounds[1]["requests"]),
        (&json!("section"), &json!(8))
    );

    // Usage is the sum of what the server reported.
    assert_eq!(v["requests"], 19);
    let (mut prompt, mut completion) = (0, 0);
    for (_, f) in read_dir_fixtures(&fixture_dir(NAME)).unwrap() {
        let u = &f.responses[0].json.as_ref().unwrap()["usage"];
        prompt += u["prompt_tokens"].as_u64().unwrap();
        completion += u["completion_tokens"].as_u64().unwrap();
    }
    assert_eq!((prompt, completion), (53_027, 5_227));
    assert_eq!(v["usage"]["prompt_tokens"], prompt);
    assert_eq!(v["usage"]["completion_tokens"], completion);
    assert_eq!(v["usage"]["total_tokens"], prompt + completion);
    assert_eq!(v["usage"]["complete"], true);
    assert_eq!(v["model_reported"], "/tmp/llama/model.gguf");

    // The plan: every section once, in canonical order, and none of round 1's loops.
    let plan = v["plan"].as_str().unwrap();
    let checker = Checker::new(&Template::builtin());
    let outline = checker.outline(plan);
    let primaries: Vec<usize> = (0..10).map(|i| outline.primary(i).expect("present").start).collect();
    assert!(
        primaries.windows(2).all(|w| w[0] < w[1]),
        "canonical order: {primaries:?}"
    );
    let looped = |i: usize| {
        read_dir_fixtures(&fixture_dir(NAME)).unwrap()[i].1.responses[0]
            .json
            .clone()
            .unwrap()
    };
    let (component, chat) = (looped(4).to_string(), looped(6).to_string());
    assert!(component.contains("[Service]\\n\\n[Service]") && chat.contains("Sender: [Sender: [Sender"));
    assert!(
        !plan.contains("[Service]\n\n[Service]") && !plan.contains("Sender: [Sender"),
        "{plan}"
    );
    assert!(
        plan.contains("## 6. Communication during rollback\n\nrollback migration rollback 6 6"),
        "{plan}"
    );
}

#[test]
fn smollm2_repair_requests_name_what_is_wrong_with_each_section() {
    let server = fixture_server(NAME);
    let out = ask(&server);
    assert_eq!(out.code, 3, "{}", out.stderr);
    let chats = server.chats();
    assert_eq!(chats.len(), 19, "every request was answered from the recording");
    for c in &chats {
        assert!(c.header("authorization").is_none(), "no key, no Authorization header");
        let body = c.json();
        assert_eq!(body["model"], MODEL);
        assert_eq!(body["max_tokens"], 400);
        assert_eq!(
            c.roles(),
            ["system", "user"],
            "no conversation: one request per section"
        );
    }
    // Round 1: each section alone, in order; round 2: the eight rewrites, in order.
    let singles: Vec<usize> = chats[1..]
        .iter()
        .map(|c| asked_single(&c.last_user()).expect("a one-section request"))
        .collect();
    assert_eq!(singles, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 1, 2, 3, 5, 6, 7, 8, 9]);
    // Each rewrite says what was wrong: the loops and the prompt heading included.
    let fix = |i: usize| chats[i].last_user();
    assert!(
        fix(13).contains("repeats itself: \"service\" 61 times in a row"),
        "{}",
        fix(13)
    );
    assert!(
        fix(14).contains("repeats itself: \"sender\" 90 times in a row"),
        "{}",
        fix(14)
    );
    assert!(fix(16).contains("talks about the prompt instead of the migration (a \"Output\" heading from the prompt)"));
    assert!(fix(17).contains("has 0 scenarios; expected between 5 and 10"));
    for i in 1..11 {
        assert!(
            !fix(i).contains("Make sure that"),
            "round 1 asks for missing sections only"
        );
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

/// With the shipped template, `check` finds the lines of the replayed plan that restate
/// the prompt's instructions, which the recording's run could not yet see.
#[test]
fn smollm2_sections_that_restate_their_instructions_are_found() {
    let server = fixture_server(NAME);
    let out = ask(&server);
    let dir = tempdir();
    let plan = dir.path().join("plan.md");
    std::fs::write(&plan, out.json()["plan"].as_str().unwrap()).unwrap();
    let check = rbplan(dir.path())
        .args(["check", "--format", "json"])
        .arg_path(&plan)
        .run();
    // Exit 3: the plan has error findings.
    assert_eq!(check.code, 3, "{}", check.stderr);
    let restated: Vec<String> = check.json()["files"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "about_prompt" && f["message"].as_str().unwrap().contains("restates its instructions"))
        .map(|f| f["section"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(restated, ["philosophy", "hard-truth"], "{}", check.stdout);
}
