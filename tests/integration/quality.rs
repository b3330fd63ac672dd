//! A weak model that says the same thing under every heading: the paragraph is found in
//! each section that repeats it, repair asks for exactly those sections again, and a plan
//! that still repeats it is not complete. A sentence said over and over is a loop.

use super::common::{rbplan, section_headings, tempdir};
use super::model::{asked_headings, asked_single, authored, reply};
use super::server::Server;

/// What SmolLM2 answers to every one-section request: one generic paragraph, its
/// sentences repeating.
const BOILER: &str = "The rollback plan is a critical part of the migration. It ensures that the system can be restored to its previous state if anything goes wrong. The rollback plan is a critical part of the migration. It ensures that the system can be restored to its previous state if anything goes wrong.";

/// The sections (by index) the weak model's draft fills with the paragraph: 1, 4, 5, 6, 8.
const BOILED: [usize; 5] = [0, 3, 4, 5, 7];

/// The authored plan with the paragraph in the preamble and as the body of `BOILED`.
fn draft() -> String {
    let a = authored();
    let mut text = format!("{}{BOILER}\n\n", a.preamble);
    for (i, (whole, body)) in a.sections.iter().enumerate() {
        text.push_str(&if BOILED.contains(&i) {
            whole.replace(body, BOILER)
        } else {
            whole.clone()
        });
        text.push_str("\n\n");
    }
    text
}

#[test]
fn one_paragraph_under_many_headings_is_asked_again_and_never_called_complete() {
    let headings = section_headings();
    let first = draft();
    let answer = headings.clone();
    // The draft, then every rewrite: the requested headings over the same paragraph.
    let server = Server::start(move |req, n| {
        if n == 0 {
            return reply(req, n, &first, "stop");
        }
        let user = req.last_user();
        let mut asked = asked_headings(&user);
        asked.extend(asked_single(&user));
        let text: String = asked
            .iter()
            .map(|&i| format!("## {}\n\n{BOILER}\n\n", answer[i]))
            .collect();
        reply(req, n, &text, "stop")
    });
    let dir = tempdir();
    let out = rbplan(dir.path())
        .args(["ask", "--example", "--model", "weak", "--base-url", &server.url()])
        .args(["--no-stream", "--out", "plan.md"])
        .run();
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(!out.stderr.contains("plan complete"), "{}", out.stderr);
    assert!(out.stderr.contains("plan has ERRORS: 10/10 sections"), "{}", out.stderr);
    // What the server was asked after the draft: the five sections that repeat the
    // preamble's paragraph, each named with its finding, and no other section.
    let chats = server.chats();
    assert!(chats.len() >= 2, "{} requests", chats.len());
    let mut asked = std::collections::BTreeSet::new();
    for c in &chats[1..] {
        let user = c.last_user();
        let these: Vec<usize> = asked_headings(&user).into_iter().chain(asked_single(&user)).collect();
        assert!(!these.is_empty(), "{user}");
        for i in these {
            assert!(BOILED.contains(&i), "asked for section {}: {user}", i + 1);
            asked.insert(i);
        }
        assert!(user.contains("repeats a paragraph of"), "{user}");
    }
    assert_eq!(asked.into_iter().collect::<Vec<_>>(), BOILED);
    let first_repair = chats[1].last_user();
    assert!(
        first_repair.contains("repeats a paragraph of the preamble"),
        "{first_repair}"
    );
    // The written plan fails `check` on its own.
    let written = std::fs::read_to_string(dir.path().join("plan.md")).unwrap();
    assert!(written.contains("status: \"errors\""), "{written}");
    let check = rbplan(dir.path()).args(["check", "plan.md"]).run();
    assert_eq!(check.code, 3, "{}", check.stdout);
    assert_eq!(check.stdout.matches("[repeated]").count(), 5, "{}", check.stdout);
}

#[test]
fn a_long_sentence_said_six_times_in_one_paragraph_is_a_loop() {
    let sentence = "The rollback plan is a critical part of the migration, and it must be followed carefully by every team that takes part in the migration of the orders service to PostgreSQL.";
    assert_eq!(sentence.split_whitespace().count(), 31);
    let a = authored();
    let (whole, body) = &a.sections[7];
    let looped = a.text.replace(whole, &whole.replace(body, &[sentence; 6].join(" ")));
    let dir = tempdir();
    std::fs::write(dir.path().join("plan.md"), &looped).unwrap();
    std::fs::write(dir.path().join("clean.md"), &a.text).unwrap();
    let out = rbplan(dir.path())
        .args(["check", "--json", "plan.md", "clean.md"])
        .run();
    assert_eq!(out.code, 3, "{}", out.stdout);
    let v = out.json();
    let findings = |i: usize| v["files"][i]["findings"].as_array().unwrap().clone();
    let loops: Vec<_> = findings(0).into_iter().filter(|f| f["code"] == "loop").collect();
    assert_eq!(loops.len(), 1, "{:?}", findings(0));
    assert_eq!(loops[0]["section"], "post-mortem");
    assert!(
        loops[0]["message"]
            .as_str()
            .unwrap()
            .contains("the sentence \"The rollback plan is a critical part"),
        "{}",
        loops[0]["message"]
    );
    assert!(
        loops[0]["message"].as_str().unwrap().ends_with("6 times"),
        "{}",
        loops[0]["message"]
    );
    assert!(findings(1).is_empty(), "{:?}", findings(1));
}
