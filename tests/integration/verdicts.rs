//! Verdicts that can be trusted: degenerate text is re-asked until the plan is free of
//! it, copied text too; what is left is not called complete; check's CI formats parse.

use serde_json::Value;

use super::common::{Out, example_input, rbplan, repo, section_ids, tempdir};
use super::model::{authored, reply};
use super::server::Server;

fn ask(server: &Server, extra: &[&str]) -> Out {
    let dir = tempdir();
    rbplan(dir.path())
        .args(["ask", "--example", "--model", "m", "--base-url", &server.url()])
        .args(["--no-stream", "--json"])
        .args(extra)
        .run()
}

/// The authored plan with section `idx`'s body replaced.
fn with_body(idx: usize, body: &str) -> String {
    let a = authored();
    let (whole, old) = &a.sections[idx];
    a.text.replace(whole, &whole.replace(old, body))
}

/// A server whose first answer is `first`; every later request gets, for each section it
/// asks to rewrite, the authored section.
fn server_rewriting(first: String) -> Server {
    let a = authored();
    Server::start(move |req, n| {
        if n == 0 {
            return reply(req, n, &first, "stop");
        }
        let asked: Vec<usize> = (0..10)
            .filter(|&i| req.last_user().contains(&format!("## {}. ", i + 1)))
            .collect();
        reply(req, n, &a.only(&asked), "stop")
    })
}

fn codes(v: &Value) -> Vec<String> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_loop_in_the_first_answer_is_asked_again_and_the_final_plan_is_free_of_it() {
    let looped = with_body(1, &"**Imperium** [Imperium]\n".repeat(120));
    let server = server_rewriting(looped);
    let out = ask(&server, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v = out.json();
    assert_eq!(v["status"], "complete");
    assert!(codes(&v).is_empty(), "{:?}", codes(&v));
    assert!(!v["plan"].as_str().unwrap().contains("Imperium"));
    // What the server was asked: the draft, then a rewrite of exactly the looping section,
    // naming the loop.
    let chats = server.chats();
    assert_eq!(chats.len(), 2);
    let repair = chats[1].last_user();
    assert!(repair.contains("## 2. Rollback decision matrix"), "{repair}");
    assert!(!repair.contains("## 3. Rollback by stage"), "{repair}");
    assert!(repair.contains("repeats itself: \"imperium\" 240 times"), "{repair}");
    assert_eq!(
        v["repairs"]["detail"][0]["rewritten"],
        serde_json::json!(["decision-matrix"])
    );
}

#[test]
fn a_section_copied_from_the_prompt_is_asked_again_for_this_migration() {
    let system = std::fs::read_to_string(repo().join("prompts/rollback-plan/system.md")).unwrap();
    let start = system.find("**\"What if the database backfill").unwrap();
    let end = system.find("Generate 5-10 specific scenarios").unwrap();
    let copied = system[start..end].trim().to_string()
        + "\n\n**\"What if the rollback itself fails?\"**\nPlan: If the rollback itself fails, escalate to the IC and freeze writes.";
    let server = server_rewriting(with_body(8, &copied));
    let out = ask(&server, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v = out.json();
    assert_eq!(v["status"], "complete", "{:?}", codes(&v));
    let repair = server.chats()[1].last_user();
    assert!(repair.contains("## 9. Rollback what-if scenarios"), "{repair}");
    assert!(repair.contains("copies the prompt's own text"), "{repair}");
    assert!(!v["plan"].as_str().unwrap().contains("50% slower than expected"));
}

#[test]
fn a_section_written_twice_is_rewritten_once() {
    let a = authored();
    // Section 10 twice, the second copy different.
    let twice = a.text.clone()
        + "\n## 10. The hard truth about rollback\n\nSometimes rollback works. After T+1h it does not.\n";
    let server = server_rewriting(twice);
    let out = ask(&server, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v = out.json();
    let plan = v["plan"].as_str().unwrap();
    assert_eq!(
        plan.matches("## 10. The hard truth about rollback").count(),
        1,
        "{plan}"
    );
    assert!(!plan.contains("Sometimes rollback works"));
    assert!(server.chats()[1].last_user().contains("is written out 2 times"));
}

#[test]
fn errors_left_after_repair_are_not_complete_and_exit_3() {
    // The model answers every rewrite with the same loop: it never gets better.
    let looped = with_body(1, &"**Imperium** [Imperium]\n".repeat(120));
    let again = looped.clone();
    let server = Server::start(move |req, n| reply(req, n, if n == 0 { &looped } else { &again }, "stop"));
    let dir = tempdir();
    let out = rbplan(dir.path())
        .args(["ask", "--example", "--model", "m", "--base-url", &server.url()])
        .args(["--no-stream", "--out", "plan.md"])
        .run();
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("plan has ERRORS: 10/10 sections"), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("the plan does not pass its checks: 2 error findings"),
        "{}",
        out.stderr
    );
    let written = std::fs::read_to_string(dir.path().join("plan.md")).unwrap();
    assert!(written.contains("status: \"errors\""), "{written}");
    // And `check` agrees, from the plan's own front matter.
    let out = rbplan(dir.path()).args(["check", "plan.md"]).run();
    assert_eq!(out.code, 3, "{}", out.stdout);
    assert!(out.stdout.contains("[loop]"), "{}", out.stdout);
}

// ---------------------------------------------------------------------------
// check's formats, each read back by a real parser

const FILES: [&str; 3] = [
    "fixtures/authored/plan.md",
    "fixtures/check/problems/loop.md",
    "fixtures/check/problems/communication-audiences.md",
];

fn check(format: &str) -> Out {
    rbplan(&repo()).args(["check", "--format", format]).args(FILES).run()
}

#[test]
fn github_annotations_name_file_line_and_code() {
    let out = check("github");
    assert_eq!(out.code, 3);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "::error file=fixtures/check/problems/loop.md,line=24,title=rbplan loop::\"2. Rollback decision matrix\" repeats itself: \"imperium\" 240 times in a row",
            "::warning file=fixtures/check/problems/communication-audiences.md,line=115,title=rbplan mentions::\"6. Communication during rollback\" does not cover every audience: \"status page\", \"customer\"",
        ]
    );
}

#[test]
fn junit_has_a_test_case_per_file_and_a_failure_per_failing_finding() {
    use quick_xml::Reader;
    use quick_xml::events::Event;
    let out = check("junit");
    assert_eq!(out.code, 3);
    let mut r = Reader::from_str(&out.stdout);
    let (mut cases, mut failures, mut suite) = (Vec::new(), Vec::new(), None);
    loop {
        match r.read_event().expect("well-formed XML") {
            Event::Start(e) | Event::Empty(e) => {
                let attr = |k: &str| {
                    e.try_get_attribute(k)
                        .unwrap()
                        .map(|a| a.unescape_value().unwrap().into_owned())
                };
                match e.name().as_ref() {
                    b"testsuite" => suite = Some((attr("tests"), attr("failures"))),
                    b"testcase" => cases.push(attr("name").unwrap()),
                    b"failure" => failures.push((cases.last().cloned().unwrap(), attr("type").unwrap())),
                    _ => {}
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    assert_eq!(suite, Some((Some("3".into()), Some("1".into()))));
    assert_eq!(cases, FILES);
    // A warning is no failure without --strict.
    assert_eq!(failures, [(FILES[1].to_string(), "loop".to_string())]);
}

#[test]
fn sarif_results_carry_rule_level_file_and_line() {
    let out = check("sarif");
    assert_eq!(out.code, 3);
    let v: Value = serde_json::from_str(&out.stdout).expect("SARIF is JSON");
    assert_eq!(v["version"], "2.1.0");
    let run = &v["runs"][0];
    assert_eq!(run["tool"]["driver"]["name"], "rbplan");
    let results = run["results"].as_array().unwrap();
    let brief: Vec<(String, String, String, u64)> = results
        .iter()
        .map(|r| {
            let loc = &r["locations"][0]["physicalLocation"];
            (
                r["ruleId"].as_str().unwrap().into(),
                r["level"].as_str().unwrap().into(),
                loc["artifactLocation"]["uri"].as_str().unwrap().into(),
                loc["region"]["startLine"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        brief,
        [
            ("loop".into(), "error".into(), FILES[1].into(), 24),
            ("mentions".into(), "warning".into(), FILES[2].into(), 115),
        ]
    );
    let rules: Vec<&str> = run["tool"]["driver"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(rules, ["loop", "mentions"]);
}

#[test]
fn an_unknown_format_is_refused_with_the_list() {
    let out = check("xml");
    assert_eq!(out.code, 2);
    for v in ["text", "json", "github", "junit", "sarif"] {
        assert!(out.stderr.contains(v), "{}", out.stderr);
    }
}

// ---------------------------------------------------------------------------
// --fallback-model

/// "small" answers the draft with a looping matrix and repeats the loop when asked again;
/// "big" answers each rewrite with the authored section.
fn small_and_big() -> Server {
    let a = authored();
    let looped = with_body(1, &"**Imperium** [Imperium]\n".repeat(120));
    Server::start(move |req, n| {
        let model = req.json()["model"].as_str().unwrap().to_string();
        if n == 0 || model == "small" {
            return reply(req, n, &looped, "stop");
        }
        let asked: Vec<usize> = (0..10)
            .filter(|&i| req.last_user().contains(&format!("## {}. ", i + 1)))
            .collect();
        reply(req, n, &a.only(&asked), "stop")
    })
}

#[test]
fn a_fallback_model_repairs_the_draft_the_first_could_not() {
    let server = small_and_big();
    let dir = tempdir();
    let out = rbplan(dir.path())
        .args(["ask", "--example", "--model", "small", "--fallback-model", "big"])
        .args([
            "--base-url",
            &server.url(),
            "--no-stream",
            "--max-repairs",
            "1",
            "--json",
            "--out",
            "plan.md",
        ])
        .run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("switching to the fallback model big: small did not reduce the error findings in repair round 1"),
        "{}",
        out.stderr
    );
    // What the server saw: the draft and one repair from "small", then one repair from
    // "big" over the same draft (the assistant turn), not a new first answer.
    let chats = server.chats();
    let models: Vec<String> = chats
        .iter()
        .map(|c| c.json()["model"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(models, ["small", "small", "big"]);
    assert_eq!(chats[2].roles(), ["system", "user", "assistant", "user"]);
    assert!(
        chats[2].json()["messages"][2]["content"]
            .as_str()
            .unwrap()
            .contains("Imperium")
    );
    let v = out.json();
    assert_eq!(v["status"], "complete");
    assert_eq!(v["models"], serde_json::json!(["small", "big"]));
    assert_eq!(v["sections"][1]["model"], "big");
    assert_eq!(v["sections"][0]["model"], "small");
    let plan = std::fs::read_to_string(dir.path().join("plan.md")).unwrap();
    assert!(plan.contains("fallback_model: \"big\""), "{plan}");
    assert!(plan.contains("by_fallback: [\"decision-matrix\"]"), "{plan}");
}

#[test]
fn a_model_that_is_not_there_hands_the_first_answer_to_the_fallback() {
    let a = authored();
    let server = Server::start(move |req, n| {
        if req.json()["model"] == "gone" {
            return super::server::Reply::json(
                404,
                &serde_json::json!({"error": {"message": "The model `gone` does not exist", "type": "invalid_request_error", "code": "model_not_found"}}),
            );
        }
        reply(req, n, &a.text, "stop")
    });
    let run = |extra: &[&str]| {
        rbplan(tempdir().path())
            .args(["ask", "--example", "--base-url", &server.url(), "--no-stream", "--json"])
            .args(extra)
            .run()
    };
    let out = run(&["--model", "gone", "--fallback-model", "there"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("switching to the fallback model there: gone failed: HTTP 404"),
        "{}",
        out.stderr
    );
    let models: Vec<String> = server
        .chats()
        .iter()
        .map(|c| c.json()["model"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(models, ["gone", "there"]);
    assert_eq!(out.json()["models"], serde_json::json!(["there"]));
    // Without a fallback, the same failure fails the plan (exit 4), as before.
    let out = run(&["--model", "gone"]);
    assert_eq!(out.code, 4, "{}", out.stderr);
}

// ---------------------------------------------------------------------------
// --judge-model

#[test]
fn a_recorded_judge_scores_the_plan_and_its_low_score_is_a_warning() {
    let dir = tempdir();
    let out = rbplan(dir.path())
        .args(["ask", "--example", "--replay"])
        .arg_path(&super::common::fixture_dir("judge"))
        .args(["--model", "scripted-demo", "--judge-model", "scripted-judge"])
        .args(["--no-stream", "--json", "--out", "plan.md"])
        .run();
    assert_eq!(out.code, 0, "a warning does not fail: {}", out.stderr);
    let v = out.json();
    assert_eq!(v["status"], "complete");
    assert_eq!(v["judge"]["model"], "scripted-judge");
    assert_eq!(v["judge"]["mean"], 4.0);
    let judged: Vec<&Value> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "judge")
        .collect();
    assert_eq!(judged.len(), 1, "{judged:?}");
    assert_eq!(judged[0]["severity"], "warning");
    assert_eq!(judged[0]["section"], "rehearsal");
    assert!(
        judged[0]["message"]
            .as_str()
            .unwrap()
            .contains("2/5: the drill has no owner")
    );
    let plan = std::fs::read_to_string(dir.path().join("plan.md")).unwrap();
    assert!(
        plan.contains("judge_model: \"scripted-judge\"") && plan.contains("judge_score: \"4/5\""),
        "{plan}"
    );
}

/// A local judge that answers every request with `text` and a status.
fn judge_server(status: u16, text: &'static str) -> Server {
    Server::start(move |req, n| {
        if status != 200 {
            return super::server::Reply::json(status, &serde_json::json!({"error": {"message": "judge is down"}}));
        }
        reply(req, n, text, "stop")
    })
}

fn check_judged(server: &Server, files: &[&str]) -> Out {
    rbplan(&repo())
        .args([
            "check",
            "--json",
            "--judge-model",
            "j",
            "--base-url",
            &server.url(),
            "--max-retries",
            "0",
        ])
        .args(["--summary", &super::common::example_input().0])
        .args(files)
        .run()
}

#[test]
fn check_asks_a_judge_per_plan_and_the_judge_never_makes_a_plan_pass() {
    let server = judge_server(200, super::regen::JUDGEMENT);
    let out = check_judged(
        &server,
        &["fixtures/authored/plan.md", "fixtures/check/problems/loop.md"],
    );
    // The loop still fails: a judge adds warnings, it never takes an error away.
    assert_eq!(out.code, 3, "{}", out.stdout);
    let chats = server.chats();
    assert_eq!(chats.len(), 2, "one judge request per plan");
    let prompt = chats[0].last_user();
    assert_eq!(chats[0].json()["model"], "j");
    assert!(prompt.contains("**Migration:** Move the orders service"), "{prompt}");
    assert!(
        prompt.contains("## 10. The hard truth about rollback"),
        "the plan is in the request"
    );
    assert!(
        prompt.contains("- time-bounded:"),
        "the seed's style rules are in the request"
    );
    let files = out.json()["files"].as_array().unwrap().clone();
    assert_eq!(files[0]["ok"], true);
    assert_eq!(files[0]["judge"]["mean"], 4.0);
    assert_eq!(files[1]["ok"], false);
    assert_eq!(files[1]["verdict"], "errors");
    // A judge that fails is said, as a warning; the verdicts stay what the checks say.
    let down = judge_server(400, "");
    let out = check_judged(&down, &["fixtures/authored/plan.md"]);
    assert_eq!(out.code, 0, "{}", out.stdout);
    let f = &out.json()["files"][0]["findings"][0];
    assert_eq!(
        (f["code"].as_str(), f["severity"].as_str()),
        (Some("judge"), Some("warning"))
    );
    assert!(
        f["message"].as_str().unwrap().contains("gave no judgement: HTTP 400"),
        "{f}"
    );
    // Nonsense is no judgement either.
    let babble = judge_server(200, "The plan looks great to me!");
    let out = check_judged(&babble, &["fixtures/authored/plan.md"]);
    assert!(
        out.json()["files"][0]["findings"][0]["message"]
            .as_str()
            .unwrap()
            .contains("not a judgement")
    );
}

// ---------------------------------------------------------------------------
// Shell and manual

#[test]
fn completions_and_the_manual_come_from_the_command_line_itself() {
    let dir = tempdir();
    for (shell, marker) in [
        ("bash", "_rbplan()"),
        ("zsh", "#compdef rbplan"),
        ("fish", "complete -c rbplan"),
    ] {
        let out = rbplan(dir.path()).args(["completions", shell]).run();
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert!(
            out.stdout.contains(marker),
            "{shell}: {}",
            &out.stdout[..200.min(out.stdout.len())]
        );
        for word in ["check", "judge-model", "fallback-model", "format"] {
            assert!(out.stdout.contains(word), "{shell} completes {word}");
        }
    }
    let man = rbplan(dir.path()).args(["man"]).run();
    assert_eq!(man.code, 0);
    assert!(man.stdout.contains(".TH rbplan 1"), "{}", &man.stdout[..200]);
    assert!(man.stdout.contains("rbplan\\-check"), "the subcommands are listed");
    let out = rbplan(dir.path()).args(["completions", "tcsh"]).run();
    assert_eq!(out.code, 2, "an unknown shell is a usage error with the list");
    assert!(
        out.stderr.contains("bash") && out.stderr.contains("powershell"),
        "{}",
        out.stderr
    );
}

/// What SmolLM2-135M really wrote (fixtures/check/smollm2, recorded live): a list of
/// contents as headings with the sections under it, and a plan with two loops.
#[test]
fn real_smollm2_output_a_list_of_contents_and_loops() {
    let dir = repo().join("fixtures/check/smollm2");
    let (summary, stages) = example_input();
    let check = |file: &str| {
        let out = rbplan(&dir)
            .args([
                "check",
                "--format",
                "json",
                "--summary",
                &summary,
                "--stages",
                &stages,
                file,
            ])
            .run();
        assert_eq!(out.code, 3, "{}", out.stderr);
        out.json()["files"][0].clone()
    };
    let toc = check("toc-draft.md");
    let found: Vec<&str> = toc["sections"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["state"] == "found")
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    // Sections 1-6 are written under the list of contents; the reply was cut off there.
    assert_eq!(found, section_ids()[..6]);
    let looped = check("looped-plan.md");
    let loops: Vec<(&str, u64)> = looped["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "loop")
        .map(|f| (f["section"].as_str().unwrap(), f["line"].as_u64().unwrap()))
        .collect();
    assert_eq!(loops, [("by-component", 72), ("post-mortem", 169)]);
}
