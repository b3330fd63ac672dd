//! `--parallel N`: the outline request first, then one request per section carrying it,
//! spliced in canonical order whatever order they come back in; a section that disagrees
//! with the outline is a finding, and repair fixes it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use super::batch::{batch, item, jsonl, report, service_of};
use super::common::{rbplan, tempdir};
use super::faults::ask;
use super::model::{asked_headings, asked_single, authored, is_repair, reply};
use super::server::{Reply, Request, Server};

const OUTLINE: &str = "## Outline\n\n**Stages:**\n- Schema conversion and backfill\n- CDC dual-running\n- Read cutover\n- Write cutover\n- Decommission MySQL\n\n**Point of no return:** After T+2h from the write cutover.\n\n**Roles and owners:** IC decides; DBE executes.\n";

fn is_outline(req: &Request) -> bool {
    req.last_user().contains("write the short outline of facts")
}

/// The stage a one-stage request asks for.
pub fn stage_asked(user: &str) -> Option<String> {
    let rest = user.split("the part about the stage \"").nth(1)?;
    Some(rest[..rest.find('"')?].to_string())
}

/// The authored plan's subsection for `stage` in "Rollback by stage", heading dropped.
fn stage_body(a: &super::model::Authored, stage: &str) -> String {
    let section = &a.sections[2].1;
    let start = section
        .find(&format!(": {stage}\n"))
        .expect("the stage is in the authored plan");
    let rest = &section[start..];
    let rest = &rest[rest.find('\n').unwrap()..];
    rest[..rest.find("\n### ").unwrap_or(rest.len())].trim().to_string()
}

/// A model that answers the outline, then each section (later sections sooner, so the
/// replies come back out of order). `wrong_ponr`: section 10 first says "After T+4h".
fn server(wrong_ponr: bool) -> Server {
    server_with(OUTLINE, wrong_ponr, None)
}

/// `cdc`: what the part for the "CDC dual-running" stage answers instead.
fn server_with(outline: &'static str, wrong_ponr: bool, cdc: Option<&'static str>) -> Server {
    let a = authored();
    Server::start(move |req, n| {
        if is_outline(req) {
            return reply(req, n, outline, "stop");
        }
        if is_repair(req) {
            return reply(req, n, &a.only(&asked_headings(&req.last_user())), "stop");
        }
        let Some(i) = asked_single(&req.last_user()) else {
            return Reply::json(400, &json!({"error": {"message": "unexpected request"}}));
        };
        let first_try = !req.last_user().contains("Make sure that");
        if let Some(stage) = stage_asked(&req.last_user()) {
            let body = match cdc {
                Some(text) if stage == "CDC dual-running" => text.to_string(),
                _ => stage_body(&a, &stage),
            };
            return reply(req, n, &body, "stop");
        }
        let body = match i {
            9 if wrong_ponr && first_try => a.sections[9].1.replace("T+2h", "T+4h"),
            _ => a.sections[i].1.clone(),
        };
        let wait = Duration::from_millis(30 * (10 - i as u64));
        Reply::After(wait, Box::new(reply(req, n, &body, "stop")))
    })
}

#[test]
fn the_outline_first_then_every_section_with_it_spliced_in_order() {
    let server = server(false);
    let out = ask(&server, &["--parallel", "4"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let chats = server.chats();
    // One outline, nine sections, and "Rollback by stage" one stage at a time.
    assert_eq!(chats.len(), 15);
    assert!(is_outline(&chats[0]), "the outline goes first");
    let mut asked: Vec<(usize, Option<String>)> = chats[1..]
        .iter()
        .map(|c| {
            assert!(
                c.last_user().contains(OUTLINE.trim()),
                "every request carries the outline"
            );
            assert_eq!(c.roles(), ["system", "user"]);
            (asked_single(&c.last_user()).unwrap(), stage_asked(&c.last_user()))
        })
        .collect();
    asked.sort();
    let stages: Vec<&(usize, Option<String>)> = asked.iter().filter(|(i, _)| *i == 2).collect();
    assert_eq!(stages.len(), 5, "{asked:?}");
    assert_eq!(stages[0].1.as_deref(), Some("CDC dual-running"));
    let sections: std::collections::BTreeSet<usize> = asked.iter().map(|(i, _)| *i).collect();
    assert_eq!(sections.len(), 10);
    // Replies came back last section first; the plan is in canonical order.
    let v = out.json();
    let plan = v["plan"].as_str().unwrap();
    let at: Vec<usize> = (1..=10).map(|n| plan.find(&format!("## {n}. ")).unwrap()).collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{plan}");
    assert_eq!(v["status"], "complete");
    assert_eq!(v["outline"].as_str().unwrap(), OUTLINE.trim());
    assert_eq!(v["parallel"], 4);
    assert_eq!(v["requests"], 15);
    // The stage parts are joined under their headings, in the input's order.
    let s3 = &plan[plan.find("## 3. ").unwrap()..plan.find("## 4. ").unwrap()];
    let order: Vec<usize> = [
        "Stage 1: Schema",
        "Stage 2: CDC",
        "Stage 3: Read",
        "Stage 4: Write",
        "Stage 5: Decom",
    ]
    .iter()
    .map(|h| s3.find(h).unwrap_or_else(|| panic!("{h} in {s3}")))
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{s3}");
    assert!(
        v["sections"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["strategy"] == "parallel")
    );
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() > 0 && v["usage"]["completion_tokens"].as_u64().unwrap() > 0);
    assert!(out.stderr.contains("written 14/14: "), "{}", out.stderr);
    assert!(out.stderr.starts_with("asking for the outline"), "{}", out.stderr);
}

#[test]
fn a_point_of_no_return_that_is_not_the_outlines_is_found_and_repaired() {
    let server = server(true);
    let out = ask(&server, &["--parallel", "10"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v = out.json();
    let rounds = v["repairs"]["detail"].as_array().unwrap();
    assert_eq!(rounds.len(), 1);
    assert_eq!(rounds[0]["rewrite"], json!(["hard-truth"]));
    assert_eq!(rounds[0]["rewritten"], json!(["hard-truth"]));
    let repair = server.chats().last().unwrap().last_user();
    assert!(repair.contains("(T+4h) is not the outline's (T+2h)"), "{repair}");
    assert!(!v["plan"].as_str().unwrap().contains("T+4h"));
    assert_eq!(v["findings"], json!([]));
}

/// What SmolLM2's outline did live: a stage list that is not the input's at all.
const GARBAGE_OUTLINE: &str = "**Stages:**\n- Updated to a new version.\n- Updated to a new version.\n- Updated to a new version.\n- Data is safe\n- Rise: 55% of the 2023 rollback plan\n- Updated to a new version.\n- Updated to a new version.\n";

#[test]
fn the_input_names_the_stages_when_the_outline_lists_others() {
    let server = server_with(GARBAGE_OUTLINE, false, None);
    let out = ask(&server, &["--parallel", "4"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let chats = server.chats();
    // One request per input stage (5), not per item of the outline's list (7).
    let asked: Vec<String> = chats.iter().filter_map(|c| stage_asked(&c.last_user())).collect();
    assert_eq!(
        asked.iter().collect::<std::collections::BTreeSet<_>>().len(),
        5,
        "{asked:?}"
    );
    assert_eq!(chats.len(), 15);
    assert!(asked.iter().all(|s| !s.contains("Updated")), "{asked:?}");
    // The plan names the input's stages and no finding sends repair after the outline's.
    let v = out.json();
    assert_eq!(v["findings"], json!([]));
    assert_eq!(v["repairs"]["rounds"], 0);
    assert!(v["plan"].as_str().unwrap().contains("Stage 5: Decommission MySQL"));
}

#[test]
fn a_stage_part_that_leaves_a_code_fence_open_does_not_swallow_the_next_stages() {
    // As SmolLM2 did live: one stage's reply opens a fence and never closes it.
    let open_fence = "Stop the CDC connector, then compare row counts.\n\n```sql\nSELECT count(*) FROM orders;\n";
    let server = server_with(OUTLINE, false, Some(open_fence));
    let out = ask(&server, &["--parallel", "4"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v = out.json();
    assert_eq!(v["findings"], json!([]), "stages 3-5 are still headings, not code");
    assert_eq!((&v["requests"], &v["repairs"]["rounds"]), (&json!(15), &json!(0)));
    let plan = v["plan"].as_str().unwrap();
    let closed = "SELECT count(*) FROM orders;\n```\n\n### Stage 3: Read cutover";
    assert!(plan.contains(closed), "{plan}");
}

/// The most requests in flight at once, from their arrivals, each answered after `latency`.
fn peak(arrivals: &[Instant], latency: Duration) -> usize {
    let in_flight = |t: Instant| {
        arrivals
            .iter()
            .filter(|&&u| u <= t && t.duration_since(u) < latency)
            .count()
    };
    arrivals.iter().map(|&t| in_flight(t)).max().unwrap_or(0)
}

#[test]
fn batch_parallel_parts_of_every_plan_share_the_j_slots() {
    let a = authored();
    let seen: Arc<Mutex<Vec<(Instant, String, bool)>>> = Arc::default();
    let log = seen.clone();
    let latency = Duration::from_millis(300);
    let server = Server::start(move |req, n| {
        let user = req.last_user();
        log.lock()
            .unwrap()
            .push((Instant::now(), service_of(req), is_outline(req)));
        let body = match (is_outline(req), stage_asked(&user), asked_single(&user)) {
            (true, _, _) => OUTLINE.to_string(),
            (_, Some(stage), _) => stage_body(&a, &stage),
            (_, None, Some(i)) => a.sections[i].1.clone(),
            _ => return Reply::json(400, &json!({"error": {"message": "unexpected request"}})),
        };
        Reply::After(latency, Box::new(reply(req, n, &body, "stop")))
    });
    let dir = tempdir();
    let names = ["alpha", "beta", "gamma"];
    let input = jsonl(dir.path(), &names);
    let out = batch(dir.path(), &server, &input, &["-j", "4", "--parallel", "10"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let seen = seen.lock().unwrap().clone();
    // Three plans, each an outline then 14 parts; never more than -j 4 in flight in all,
    // though each plan alone would send 10 at a time.
    assert_eq!(seen.len(), 45);
    let times: Vec<Instant> = seen.iter().map(|(t, _, _)| *t).collect();
    let most = peak(&times, latency);
    assert!((2..=4).contains(&most), "peak in flight {most}");
    let r = report(dir.path());
    for name in names {
        let mine: Vec<bool> = seen.iter().filter(|(_, s, _)| s == name).map(|(_, _, o)| *o).collect();
        assert_eq!(mine.len(), 15, "{name}");
        assert!(
            mine[0] && mine[1..].iter().all(|o| !o),
            "{name}: the outline first, once"
        );
        assert_eq!(item(&r, name)["status"], "complete", "{name}");
        let plan = std::fs::read_to_string(dir.path().join(format!("out/{name}.md"))).unwrap();
        assert!(plan.contains("### Stage 5: Decommission MySQL"), "{name}");
    }
}

#[test]
fn with_parallel_a_repair_round_asks_its_sections_at_once() {
    let a = authored();
    let fixes: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let log = fixes.clone();
    let latency = Duration::from_millis(600);
    let server = Server::start(move |req, n| {
        let user = req.last_user();
        let fix = user.contains("Make sure that");
        if fix {
            log.lock().unwrap().push(Instant::now());
        }
        let body = match (is_outline(req), stage_asked(&user), asked_single(&user)) {
            (true, _, _) => OUTLINE.to_string(),
            (_, Some(stage), _) => stage_body(&a, &stage),
            // The decision matrix, the checklist and the scenarios come back empty first.
            (_, None, Some(1 | 6 | 8)) if !fix => "To be written.".to_string(),
            (_, None, Some(i)) => a.sections[i].1.clone(),
            _ => return Reply::json(400, &json!({"error": {"message": "unexpected request"}})),
        };
        Reply::After(latency, Box::new(reply(req, n, &body, "stop")))
    });
    let out = ask(&server, &["--parallel", "4"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v = out.json();
    let round = &v["repairs"]["detail"][0];
    assert_eq!(round["rewrite"], json!(["decision-matrix", "checklist", "what-if"]));
    assert_eq!(round["rewritten"], round["rewrite"]);
    assert_eq!((&round["strategy"], &v["requests"]), (&json!("section"), &json!(18)));
    // Each section alone with the outline, all three in flight at once; no conversation
    // with the whole draft (one reply writing the three in turn).
    let fixes = fixes.lock().unwrap().clone();
    assert_eq!((fixes.len(), peak(&fixes, latency)), (3, 3));
    assert!(server.chats().iter().all(|c| !is_repair(c)));
    assert!(
        server.chats()[15..]
            .iter()
            .all(|c| c.last_user().contains(OUTLINE.trim()))
    );
}

#[test]
fn a_budget_stop_inside_the_parallel_pass_counts_what_was_paid() {
    let server = server(false);
    let dir = tempdir();
    let input = jsonl(dir.path(), &["alpha", "beta"]);
    // $1 per million tokens: the outlines and a few parts fit, fourteen parts a plan do not.
    let out = rbplan(dir.path())
        .args(["batch"])
        .arg_path(&input)
        .args(["--out-dir", "out", "--base-url", &server.url(), "--model", "m"])
        .args(["--price", "1:1", "--max-tokens", "1000", "--max-cost", "0.02"])
        .args(["--parallel", "4", "-j", "2"])
        .run();
    assert_eq!(out.code, 6, "{}", out.stderr);
    let sent = server.chats().len();
    assert!((3..28).contains(&sent), "{sent} requests");
    let r = report(dir.path());
    let (spent, cost) = (
        r["budget"]["spent_usd"].as_f64().unwrap(),
        r["totals"]["cost_usd"].as_f64().unwrap(),
    );
    // Every answered request is in the report: its tokens priced add up to the spend.
    assert!(spent > 0.0 && (cost - spent).abs() < 1e-9, "cost {cost}, spent {spent}");
    assert_eq!(r["totals"]["requests"], sent);
    for name in ["alpha", "beta"] {
        let i = item(&r, name);
        assert_ne!(i["status"], "complete", "{i}");
        assert!(i["error"].as_str().unwrap().contains("budget is reached"), "{i}");
    }
    assert!(out.stderr.contains("held by requests in flight"), "{}", out.stderr);
}

#[test]
fn after_a_lasting_failure_the_queued_repair_requests_are_not_sent() {
    let a = authored();
    let server = Server::start(move |req, n| {
        let user = req.last_user();
        let fix = user.contains("Make sure that");
        let body = match (is_outline(req), stage_asked(&user), asked_single(&user)) {
            (true, _, _) => OUTLINE.to_string(),
            (_, Some(stage), _) => stage_body(&a, &stage),
            (_, None, Some(_)) if fix => {
                let gone = json!({"error": {"message": "The model `m` does not exist", "code": "model_not_found"}});
                return Reply::json(404, &gone);
            }
            (_, None, Some(1 | 6 | 8)) => "To be written.".to_string(),
            (_, None, Some(i)) => a.sections[i].1.clone(),
            _ => return Reply::json(400, &json!({"error": {"message": "unexpected request"}})),
        };
        reply(req, n, &body, "stop")
    });
    let out = ask(&server, &["--parallel", "2"]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    let v = out.json();
    // Three sections to fix, two at a time: the first two meet the 404, the third is not
    // sent (it would have met it too).
    let fixes = server
        .chats()
        .iter()
        .filter(|c| c.last_user().contains("Make sure that"))
        .count();
    assert_eq!((fixes, &v["requests"]), (2, &json!(17)));
    assert_eq!(
        v["repairs"]["detail"][0]["rewrite"],
        json!(["decision-matrix", "checklist", "what-if"])
    );
    assert!(v["repair_error"].as_str().unwrap().contains("404"), "{v}");
}

#[test]
fn ask_parallel_stopped_by_the_budget_exits_6_and_counts_what_was_paid() {
    let server = server(false);
    let budget = ["--price", "1:1", "--max-tokens", "1000", "--max-cost", "0.012"];
    let out = ask(&server, &[&["--parallel", "2"][..], &budget].concat());
    assert_eq!(out.code, 6, "{}", out.stderr);
    let v = out.json();
    let sent = server.chats().len();
    assert!((2..15).contains(&sent), "{sent}");
    assert_eq!(v["requests"], sent, "refused requests are not counted as made");
    let cost = v["cost_usd"].as_f64().unwrap();
    assert!(cost > 0.0 && cost <= 0.012, "{cost}");
    assert!(v["repair_error"].as_str().unwrap().contains("budget is reached"), "{v}");
    assert_eq!(v["status"], "incomplete");
}

#[test]
fn batch_dry_run_counts_every_part_of_a_parallel_plan() {
    let server = server(false);
    let dir = tempdir();
    let input = jsonl(dir.path(), &["alpha", "beta"]);
    let dry = |extra: &[&str]| {
        let out = rbplan(dir.path())
            .args(["batch"])
            .arg_path(&input)
            .args([
                "--out-dir",
                "out",
                "--base-url",
                &server.url(),
                "--model",
                "gpt-4o-mini",
            ])
            .args(["--max-tokens", "1000", "--dry-run", "--json"])
            .args(extra)
            .run();
        assert_eq!(out.code, 0, "{}", out.stderr);
        out.json()["models"][0].clone()
    };
    let (single, parallel) = (dry(&[]), dry(&["--parallel", "4"]));
    assert_eq!(server.chats().len(), 0, "nothing sent");
    // Per plan: the outline, nine sections and five stage parts, each with its own reply.
    assert_eq!((&single["requests"], &parallel["requests"]), (&json!(2), &json!(30)));
    assert_eq!(parallel["max_completion_tokens"], 30_000);
    assert_eq!(parallel["outline_tokens_max"], 28_000);
    let ratio = parallel["prompt_tokens"].as_f64().unwrap() / single["prompt_tokens"].as_f64().unwrap();
    assert!((8.0..20.0).contains(&ratio), "{ratio}");
    // The most it can cost counts the outline in every part: $0.15 in, $0.60 out.
    let prompt = parallel["prompt_tokens"].as_f64().unwrap() + 28_000.0;
    let hi = parallel["cost_usd_max"].as_f64().unwrap();
    assert!(
        (hi - (prompt * 0.15e-6 + 30_000.0 * 0.60e-6)).abs() < 1e-12,
        "{parallel}"
    );
    assert_eq!(
        parallel["prompt_tokens_held"], parallel["prompt_tokens"],
        "counted, no margin"
    );
    // A model without OpenAI's tokenizer: the upper bound is what --max-cost would hold,
    // the estimate plus a third per request.
    let est = rbplan(dir.path())
        .args(["batch"])
        .arg_path(&input)
        .args([
            "--out-dir",
            "out",
            "--model",
            "m",
            "--price",
            "1:1",
            "--max-tokens",
            "1000",
        ])
        .args(["--dry-run", "--json", "--parallel", "4"])
        .run()
        .json()["models"][0]
        .clone();
    let (counted, held) = (
        est["prompt_tokens"].as_u64().unwrap(),
        est["prompt_tokens_held"].as_u64().unwrap(),
    );
    assert!((counted * 4 / 3..=counted * 4 / 3 + 30).contains(&held), "{est}");
    let hi = est["cost_usd_max"].as_f64().unwrap();
    assert!((hi - (held + 28_000 + 30_000) as f64 * 1e-6).abs() < 1e-12, "{est}");
}

#[test]
fn bad_parallel_values_and_replay() {
    let server = server(false);
    let zero = ask(&server, &["--parallel", "0"]);
    assert_eq!(zero.code, 2, "{}", zero.stderr);
    let negative = ask(&server, &["--parallel", "-1"]);
    assert_eq!(negative.code, 2, "{}", negative.stderr);
    assert!(
        negative
            .stderr
            .contains("'-1' for '--parallel <N>': must be at least 1"),
        "{}",
        negative.stderr
    );
    assert_eq!(server.chats().len(), 0);
    // Recorded in parallel, replayed in parallel: the recordings carry every request.
    let dir = tempdir();
    let rec = dir.path().join("rec");
    let first = ask(&server, &["--parallel", "3", "--record", rec.to_str().unwrap()]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let replay = rbplan(dir.path())
        .args([
            "ask",
            "--example",
            "--json",
            "--parallel",
            "3",
            "--replay",
            rec.to_str().unwrap(),
        ])
        .run();
    assert_eq!(replay.code, 0, "{}", replay.stderr);
    assert_eq!(replay.json()["plan"], first.json()["plan"]);
}

#[test]
fn a_retry_the_budget_refuses_still_counts_the_request_that_failed() {
    let a = authored();
    let server = Server::start(move |req, n| {
        if is_outline(req) {
            return reply(req, n, OUTLINE, "stop");
        }
        match asked_single(&req.last_user()) {
            // Section 1 fails once, slowly: by its retry, section 2 has spent the budget.
            Some(0) => {
                let boom = Reply::json(500, &json!({"error": {"message": "upstream failed"}}));
                Reply::After(Duration::from_millis(300), Box::new(boom))
            }
            Some(i) => {
                let mut r = reply(req, n, &a.sections[i].1, "stop");
                if let Reply::Full { body, .. } = &mut r {
                    let mut v: serde_json::Value = serde_json::from_slice(body).unwrap();
                    v["usage"] = json!({"prompt_tokens": 100_000, "completion_tokens": 10, "total_tokens": 100_010});
                    *body = serde_json::to_vec(&v).unwrap();
                }
                r
            }
            None => Reply::json(400, &json!({"error": {"message": "unexpected request"}})),
        }
    });
    let budget = [
        "--price",
        "1:1",
        "--max-tokens",
        "1000",
        "--max-cost",
        "0.05",
        "--no-stream",
    ];
    let out = ask(&server, &[&["--parallel", "2"][..], &budget].concat());
    assert_eq!(out.code, 6, "{}", out.stderr);
    let v = out.json();
    let sent = server.chats();
    let first = sent.iter().filter(|c| asked_single(&c.last_user()) == Some(0)).count();
    // The outline, section 1 once (its retry refused) and section 2; the rest refused.
    assert_eq!((sent.len(), first), (3, 1), "{v}");
    assert_eq!(v["requests"], 3, "the failed request went out and counts: {v}");
    assert!(v["repair_error"].as_str().unwrap().contains("budget is reached"), "{v}");
}
