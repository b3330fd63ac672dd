//! Regenerates the scripted fixtures in fixtures/ (not run by default):
//!
//!     RBPLAN_REGEN_FIXTURES=1 cargo test --test integration regen -- --ignored
//!
//! For each scenario, the local server answers as a model would, with text cut from the
//! hand-written plan in fixtures/authored/plan.md, and rbplan records the real HTTP
//! exchanges with --record. fixtures/README.md describes each scenario.

use std::sync::Arc;

use rbplan::client::fixture::{Fixture, read_dir_fixtures};

use super::common::{fixture_dir, rbplan, tempdir};
use super::model::{Authored, asked_headings, asked_single, authored, is_repair, reply};
use super::server::{Reply, Request, Server};

pub const MODEL: &str = "scripted-demo";
/// The judge of the `judge` scenario.
pub const JUDGE: &str = "scripted-judge";

/// What the scripted judge answers: one low score, the rest fair.
pub const JUDGEMENT: &str = r#"{"rules": [{"id": "decision-tree", "score": 4, "reason": "most stages say when to roll back"}, {"id": "time-bounded", "score": 4, "reason": "the matrix and stages carry times"}, {"id": "honest", "score": 5, "reason": "the point of no return is stated"}, {"id": "specific", "score": 5, "reason": "it names MySQL, PostgreSQL and the flags"}], "sections": [{"id": "rehearsal", "score": 2, "reason": "the drill has no owner and no pass/fail time"}, {"id": "what-if", "score": 4, "reason": "six scenarios tied to the stages"}]}"#;

/// A model that does what it is told: whole plan `first`, then exactly the sections asked for.
fn obedient(
    a: Arc<Authored>,
    first: String,
    first_finish: &'static str,
    refuse_repairs: bool,
) -> impl Fn(&Request, usize) -> Reply + Send + Sync {
    move |req, n| {
        if req.json()["model"] == JUDGE {
            return reply(req, n, JUDGEMENT, "stop");
        }
        let user = req.last_user();
        if let Some(i) = asked_single(&user) {
            return reply(req, n, &a.sections[i].1, "stop");
        }
        if is_repair(req) {
            if refuse_repairs {
                return reply(
                    req,
                    n,
                    "I believe the plan above already covers everything that matters.",
                    "stop",
                );
            }
            return reply(req, n, &a.only(&asked_headings(&user)), "stop");
        }
        reply(req, n, &first, first_finish)
    }
}

pub struct Scenario {
    pub name: &'static str,
    pub args: Vec<&'static str>,
    pub note: &'static str,
    first: fn(&Authored) -> (String, &'static str),
    refuse_repairs: bool,
}

pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "complete",
            args: vec!["--no-stream"],
            note: "first answer has all ten sections",
            first: |a| (a.text.clone(), "stop"),
            refuse_repairs: false,
        },
        Scenario {
            name: "complete-stream",
            args: vec!["--stream"],
            note: "first answer has all ten sections, streamed as SSE",
            first: |a| (a.text.clone(), "stop"),
            refuse_repairs: false,
        },
        Scenario {
            name: "quickstart",
            args: vec!["--no-stream"],
            note: "first answer lacks sections 4, 5 and 8; one repair round returns exactly those",
            first: |a| (a.without(&[3, 4, 7]), "stop"),
            refuse_repairs: false,
        },
        Scenario {
            name: "truncated",
            args: vec!["--no-stream"],
            note: "first answer is cut off by max_tokens (finish_reason length) inside section 7; repair returns 7-10",
            first: |a| {
                let mut t = a.without(&[7, 8, 9]);
                let cut = t.len() - a.sections[6].0.len() / 2;
                t.truncate(t.floor_char_boundary(cut));
                (t, "length")
            },
            refuse_repairs: false,
        },
        Scenario {
            name: "stays-incomplete",
            args: vec!["--no-stream", "--max-repairs", "1"],
            note: "first answer lacks sections 9 and 10; the repair reply ignores the request",
            first: |a| (a.without(&[8, 9]), "stop"),
            refuse_repairs: true,
        },
        Scenario {
            name: "no-headings",
            args: vec!["--no-stream"],
            note: "first answer is prose with no headings at all; each section is then asked for alone",
            first: |a| {
                let prose: Vec<&str> = a.text.lines().filter(|l| !l.starts_with('#')).collect();
                (prose.join("\n"), "stop")
            },
            refuse_repairs: false,
        },
        Scenario {
            name: "judge",
            args: vec!["--no-stream", "--judge-model", JUDGE],
            note: "first answer has all ten sections; a judge model (--judge-model scripted-judge) scores it and finds the rehearsal weak",
            first: |a| (a.text.clone(), "stop"),
            refuse_repairs: false,
        },
        Scenario {
            name: "structure-repair",
            args: vec!["--no-stream"],
            note: "all ten sections, but the decision matrix has no table and 'Rollback by stage' skips the write cutover; one repair round rewrites both",
            first: |a| {
                let mut t = a.text.clone();
                let body = &a.sections[1].1;
                t = t.replace(
                    body.as_str(),
                    "The incident commander decides; most problems get fifteen minutes before we roll back.",
                );
                let s4 = t.find("### Stage 4: Write cutover").unwrap();
                let s5 = t.find("### Stage 5: Decommission MySQL").unwrap();
                t.replace_range(s4..s5, "");
                (t, "stop")
            },
            refuse_repairs: false,
        },
    ]
}

#[test]
#[ignore = "rewrites fixtures/; run with RBPLAN_REGEN_FIXTURES=1 and --ignored"]
fn regen_scripted_fixtures() {
    if std::env::var("RBPLAN_REGEN_FIXTURES").is_err() {
        eprintln!("set RBPLAN_REGEN_FIXTURES=1 to rewrite fixtures/");
        return;
    }
    let a = Arc::new(authored());
    for sc in scenarios() {
        let (first, finish) = (sc.first)(&a);
        let server = Server::start(obedient(a.clone(), first, finish, sc.refuse_repairs));
        let tmp = tempdir();
        let rec = tmp.path().join("rec");
        let out = rbplan(tmp.path())
            .args([
                "ask",
                "--example",
                "--model",
                MODEL,
                "--base-url",
                &server.url(),
                "--record",
                rec.to_str().unwrap(),
            ])
            .args(&sc.args)
            .run();
        eprintln!("{}: exit {}\n{}", sc.name, out.code, out.stderr);
        let dest = fixture_dir(sc.name);
        let _ = std::fs::remove_dir_all(&dest);
        std::fs::create_dir_all(&dest).unwrap();
        for (file, mut f) in read_dir_fixtures(&rec).unwrap() {
            f.note = format!(
                "scenario {}: {}. Model text written by hand (fixtures/authored/plan.md), served by the scripted server in tests/integration; exchange recorded by rbplan --record.",
                sc.name, sc.note
            );
            write(&dest.join(file), &f);
        }
    }
}

fn write(path: &std::path::Path, f: &Fixture) {
    std::fs::write(path, serde_json::to_string_pretty(f).unwrap() + "\n").unwrap();
}
