//! Repair with a fallback model: how soon a model that makes no progress hands over, and
//! how the requests of each model are counted.

use super::common::{rbplan, tempdir};
use super::model::{asked_single, authored, reply};
use super::server::Server;

/// Prose with no headings and nothing a plan needs: what a weak model writes to every
/// request, a draft or one section.
const PROSE: &str = "Rolling back a migration is an important task that requires careful planning. \
The team should make sure that everything is ready before starting, and communicate with \
stakeholders throughout the process so that nobody is surprised by what happens next.";

/// "weak" answers every request with `PROSE`; "strong" answers each one-section request
/// with the authored section, and a repair with the sections it names.
fn weak_and_strong() -> Server {
    let a = authored();
    Server::start(move |req, n| {
        if req.json()["model"] == "weak" {
            return reply(req, n, PROSE, "stop");
        }
        let user = req.last_user();
        if let Some(i) = asked_single(&user) {
            return reply(req, n, &a.sections[i].1, "stop");
        }
        let asked: Vec<usize> = (0..10).filter(|&i| user.contains(&format!("## {}. ", i + 1))).collect();
        reply(req, n, &a.only(&asked), "stop")
    })
}

fn models(server: &Server) -> Vec<String> {
    server
        .chats()
        .iter()
        .map(|c| c.json()["model"].as_str().unwrap().to_string())
        .collect()
}

/// A prose-only model gets its draft and at most one round that does not reduce the
/// error findings; then the fallback takes over. Each model's requests are counted apart.
#[test]
fn a_model_that_makes_no_progress_hands_over_after_one_round() {
    let server = weak_and_strong();
    let dir = tempdir();
    let out = rbplan(dir.path())
        .args(["ask", "--example", "--model", "weak", "--fallback-model", "strong"])
        .args(["--base-url", &server.url(), "--no-stream", "--json", "--out", "plan.md"])
        .run();
    let seen = models(&server);
    let weak = seen.iter().filter(|m| *m == "weak").count();
    let strong = seen.iter().filter(|m| *m == "strong").count();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains(
            "switching to the fallback model strong: weak did not reduce the error findings in repair round 1"
        ),
        "{}",
        out.stderr
    );
    // The draft and one round of ten one-section requests, not a second round of rewrites.
    assert_eq!(weak, 11, "{seen:?}");
    assert!(strong >= 1);
    // Once the fallback took over, the weak model was asked nothing more.
    let first_strong = seen.iter().position(|m| m == "strong").unwrap();
    assert!(seen[first_strong..].iter().all(|m| m == "strong"), "{seen:?}");
    let v = out.json();
    assert_eq!(v["status"], "complete");
    assert_eq!(v["requests"], (weak + strong) as u64);
    assert_eq!(v["requests_by_model"]["weak"], weak as u64);
    assert_eq!(v["requests_by_model"]["strong"], strong as u64);
    let plan = std::fs::read_to_string(dir.path().join("plan.md")).unwrap();
    let line = format!("requests: {{strong: {strong}, weak: {weak}}}");
    assert!(plan.contains(&line), "{line} in\n{plan}");
}
