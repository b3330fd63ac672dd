//! The README's "Grounding a plan" example: a runbook and a migration SQL file, replayed
//! offline from fixtures/grounding-quickstart. `regen_grounding_quickstart` records it
//! (not run by default):
//!
//!     RBPLAN_REGEN_FIXTURES=1 cargo test --test integration grounding_example -- --ignored

use std::sync::Arc;

use rbplan::client::fixture::read_dir_fixtures;

use super::common::{fixture_dir, rbplan, repo, tempdir};
use super::model::{asked_headings, asked_single, authored, is_repair, reply};
use super::regen::MODEL;
use super::server::Server;

const RUNBOOK: &str = "fixtures/grounding-example/runbook.md";
const SQL: &str = "fixtures/grounding-example/migration.sql";

fn example_args() -> Vec<&'static str> {
    vec!["ask", "--runbook", RUNBOOK, "--context", SQL]
}

#[test]
fn the_readme_grounding_example_replays_offline() {
    let dir = tempdir();
    let out_file = dir.path().join("plan.md");
    let out = rbplan(&repo())
        .args(example_args())
        .args(["--replay", "fixtures/grounding-quickstart", "--out"])
        .arg_path(&out_file)
        .run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("plan complete"), "{}", out.stderr);
    let plan = std::fs::read_to_string(&out_file).unwrap();
    for name in ["Write cutover", "order_items", "orders_write_target"] {
        assert!(plan.contains(name), "the plan names {name}");
    }
    assert!(
        plan.contains("fixtures/grounding-example/runbook.md"),
        "front matter records the runbook"
    );

    // The recorded request holds both files as blocks, with their paths, and the stages
    // came from the runbook.
    let fixtures = read_dir_fixtures(&fixture_dir("grounding-quickstart")).unwrap();
    let first = serde_json::to_string(&fixtures[0].1.request).unwrap();
    for needle in [RUNBOOK, SQL, "CREATE TABLE order_items", "CDC dual-running"] {
        assert!(first.contains(needle), "the request holds {needle}");
    }

    let check = rbplan(&repo()).args(["check"]).arg_path(&out_file).run();
    assert_eq!(check.code, 0, "{}{}", check.stdout, check.stderr);
}

#[test]
#[ignore = "rewrites fixtures/grounding-quickstart; run with RBPLAN_REGEN_FIXTURES=1 and --ignored"]
fn regen_grounding_quickstart() {
    if std::env::var("RBPLAN_REGEN_FIXTURES").is_err() {
        eprintln!("set RBPLAN_REGEN_FIXTURES=1 to rewrite fixtures/");
        return;
    }
    let a = Arc::new(authored());
    let served = a.clone();
    let server = Server::start(move |req, n| {
        let user = req.last_user();
        if let Some(i) = asked_single(&user) {
            return reply(req, n, &served.sections[i].1, "stop");
        }
        if is_repair(req) {
            return reply(req, n, &served.only(&asked_headings(&user)), "stop");
        }
        reply(req, n, &served.text, "stop")
    });
    let tmp = tempdir();
    let rec = tmp.path().join("rec");
    let out = rbplan(&repo())
        .args(example_args())
        .args(["--model", MODEL, "--base-url", &server.url(), "--no-stream", "--record"])
        .arg_path(&rec)
        .run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let dest = fixture_dir("grounding-quickstart");
    let _ = std::fs::remove_dir_all(&dest);
    std::fs::create_dir_all(&dest).unwrap();
    for (file, mut f) in read_dir_fixtures(&rec).unwrap() {
        f.note = "scenario grounding-quickstart: ask --runbook fixtures/grounding-example/runbook.md --context fixtures/grounding-example/migration.sql; the first answer has all ten sections. Model text written by hand (fixtures/authored/plan.md), served by the scripted server in tests/integration; exchange recorded by rbplan --record.".into();
        std::fs::write(dest.join(file), serde_json::to_string_pretty(&f).unwrap() + "\n").unwrap();
    }
}
