//! Grounding in the context files: a plan that uses the context's tables, workloads and
//! runbook steps passes; one that names none of them gets `ungrounded` (an error, exit 3),
//! and repair asks for the flagged section again with the finding. Over the real corpus,
//! a human plan with related documents as context is measured for false alarms.

use std::path::Path;

use rbplan::check::grounding::Grounding;

use super::common::{example_input, rbplan, read, repo, tempdir};
use super::model::{authored, is_repair, reply};
use super::server::Server;

const CONTEXT: &[&str] = &["schema.sql", "manifest.yaml", "runbook.md"];

/// The grounding fixtures, copied into `dir` (the check reads recorded paths from there).
fn copy_fixtures(dir: &Path) {
    for f in CONTEXT {
        std::fs::write(dir.join(f), read(&format!("fixtures/grounding/{f}"))).unwrap();
    }
}

/// The front matter `rbplan ask` would write for these context files, with their hashes.
fn recorded(dir: &Path, plan: &str, runbook: bool) -> String {
    let hash = |f: &str| rbplan::util::short_hash(&[&std::fs::read(dir.join(f)).unwrap()]);
    let list: String = CONTEXT
        .iter()
        .map(|f| format!("  - {{path: \"{f}\", hash: \"{}\"}}\n", hash(f)))
        .collect();
    let rb = if runbook { "  runbook: \"runbook.md\"\n" } else { "" };
    format!("---\nrbplan:\n  context:\n{list}{rb}---\n\n{plan}")
}

/// The authored plan with the context's table and workload names taken out: what a model
/// writes when it ignores the context.
fn generic_plan() -> String {
    authored()
        .text
        .replace("order_items", "line_items")
        .replace("orders", "records")
        .replace("Orders", "Records")
}

fn check(dir: &Path, plan: &str) -> (i32, Vec<serde_json::Value>) {
    std::fs::write(dir.join("plan.md"), plan).unwrap();
    let out = rbplan(dir).args(["check", "--json", "plan.md"]).run();
    let v = out.json();
    let findings = v["files"][0]["findings"].as_array().unwrap().clone();
    (out.code, findings)
}

fn of<'a>(findings: &'a [serde_json::Value], code: &str) -> Vec<&'a serde_json::Value> {
    findings.iter().filter(|f| f["code"] == code).collect()
}

#[test]
fn a_plan_that_names_the_context_and_its_steps_passes() {
    let dir = tempdir();
    copy_fixtures(dir.path());
    let (code, findings) = check(dir.path(), &recorded(dir.path(), &authored().text, true));
    assert_eq!(code, 0, "{findings:?}");
    assert!(
        of(&findings, "ungrounded").is_empty() && of(&findings, "ungrounded_stage").is_empty(),
        "{findings:?}"
    );
    assert!(
        findings.is_empty(),
        "the hashes are current, nothing drifts: {findings:?}"
    );
}

#[test]
fn a_generic_plan_is_ungrounded_an_error_on_its_section() {
    let dir = tempdir();
    copy_fixtures(dir.path());
    let plan = recorded(dir.path(), &generic_plan(), false);
    let (code, findings) = check(dir.path(), &plan);
    assert_eq!(code, 3, "{findings:?}");
    let u = of(&findings, "ungrounded");
    assert_eq!(u.len(), 1, "{findings:?}");
    assert_eq!(u[0]["severity"], "error");
    assert_eq!(u[0]["section"], "by-component");
    let msg = u[0]["message"].as_str().unwrap();
    assert!(
        msg.contains("names nothing from its context files") && msg.contains("\"order_items\""),
        "{msg}"
    );
    // Context files no longer there judge nothing: the same plan passes.
    for f in CONTEXT {
        std::fs::remove_file(dir.path().join(f)).unwrap();
    }
    let (code, findings) = check(dir.path(), &plan);
    assert_eq!(code, 0, "{findings:?}");
    // Without context, nothing changes.
    let (code, findings) = check(dir.path(), &generic_plan());
    assert_eq!((code, findings.len()), (0, 0), "{findings:?}");
}

#[test]
fn a_stage_that_names_nothing_of_its_runbook_step_is_a_warning() {
    let dir = tempdir();
    copy_fixtures(dir.path());
    let text = authored().text;
    let start = text.find("### Stage 3: Read cutover").unwrap();
    let end = text.find("### Stage 4: Write cutover").unwrap();
    let vague = "### Stage 3: Read cutover\n\nIf it goes wrong, undo it within 5 min.\n\n";
    let plan = format!("{}{vague}{}", &text[..start], &text[end..]);
    let (code, findings) = check(dir.path(), &recorded(dir.path(), &plan, true));
    let w = of(&findings, "ungrounded_stage");
    assert_eq!(w.len(), 1, "{findings:?}");
    assert_eq!(w[0]["severity"], "warning");
    assert_eq!(w[0]["section"], "by-stage");
    assert!(
        w[0]["message"].as_str().unwrap().contains("Read cutover\": say what"),
        "{}",
        w[0]["message"]
    );
    assert_eq!(code, 0, "a warning does not fail without --strict");
}

#[test]
fn repair_asks_for_the_ungrounded_section_again_with_the_finding() {
    let a = authored();
    let generic = generic_plan();
    let component = a.only(&[3]);
    let server = Server::start(move |req, n| {
        let text = if is_repair(req) { &component } else { &generic };
        reply(req, n, text, "stop")
    });
    let dir = tempdir();
    copy_fixtures(dir.path());
    let (summary, stages) = example_input();
    let out = rbplan(dir.path())
        .args([
            "ask",
            "--model",
            "m",
            "--base-url",
            &server.url(),
            "--no-stream",
            "--json",
        ])
        .args(["--summary", &summary, "--stages", &stages])
        .args(["--context", "schema.sql", "--context", "manifest.yaml"])
        .run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v = out.json();
    assert_eq!(
        v["repairs"]["detail"][0]["rewrite"],
        serde_json::json!(["by-component"])
    );
    let chats = server.chats();
    assert_eq!(chats.len(), 2);
    let user = chats[1].last_user();
    assert!(user.contains("names nothing from its context files"), "{user}");
    assert!(user.contains("4. Specific rollback procedures by component"), "{user}");
    assert!(v["plan"].as_str().unwrap().contains("argocd app rollback orders"));
}

/// A plan file that records `context` (paths as the check will read them) in its front matter.
fn with_context(plan: &str, context: &[&str], runbook: Option<&str>) -> String {
    let list: String = context
        .iter()
        .map(|p| format!("  - {{path: \"{p}\", hash: \"sha256:0000000000000000\"}}\n"))
        .collect();
    let rb = runbook.map(|r| format!("  runbook: \"{r}\"\n")).unwrap_or_default();
    format!("---\nrbplan:\n  context:\n{list}{rb}---\n\n{plan}")
}

fn codes(v: &serde_json::Value) -> Vec<String> {
    v["files"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_string())
        .collect()
}

/// (runbook or related document, human plan): documents of one project.
const PAIRS: &[(&str, &str)] = &[
    ("runbooks/etcd-upgrade-3-5.md", "plans/etcd-upgrade-3-7.md"),
    ("runbooks/rook-operator-upgrade.md", "plans/rook-upgrade-design.md"),
    ("runbooks/vitess-movetables.md", "plans/vitess-revertible-migrations.md"),
    ("runbooks/tanf-rds-db-upgrade.md", "plans/tanf-release-tracker.md"),
    ("runbooks/tanf-rds-db-upgrade.md", "plans/tanf-failed-deployment.md"),
    (
        "runbooks/gitlab-gke-cluster-upgrade.md",
        "plans/gitlab-monitoring-upgrades.md",
    ),
    (
        "runbooks/gitlab-gke-cluster-upgrade.md",
        "plans/gitlab-app-upgrade-and-rollback.md",
    ),
    (
        "runbooks/gitlab-gke-cluster-upgrade.md",
        "plans/gitlab-gitaly-token-rotation.md",
    ),
    ("runbooks/govuk-eks-cluster-upgrade.md", "plans/govuk-roll-back-app.md"),
    ("runbooks/govuk-rds-encryption.md", "plans/govuk-roll-back-app.md"),
    ("runbooks/govuk-postgres-owner-roles.md", "plans/govuk-roll-back-app.md"),
    (
        "runbooks/moj-cloud-platform-eks-upgrade.md",
        "plans/moj-ingress-nginx-rollback-incident.md",
    ),
    (
        "runbooks/opg-lpa-failover-eu-west-2.md",
        "runbooks/opg-lpa-aurora-blue-green-upgrade.md",
    ),
    (
        "runbooks/opg-lpa-aurora-blue-green-upgrade.md",
        "runbooks/opg-lpa-failover-eu-west-2.md",
    ),
    (
        "plans/cockroach-upgrade-v23-1.md",
        "plans/cockroach-k8s-helm-migration.md",
    ),
    (
        "plans/cockroach-molt-rollback-plan.md",
        "plans/cockroach-upgrade-v23-1.md",
    ),
    (
        "plans/cockroach-k8s-helm-migration.md",
        "plans/cockroach-molt-rollback-plan.md",
    ),
    (
        "runbooks/commcare-couchdb-rolling-upgrade.md",
        "runbooks/commcare-es6-upgrade.md",
    ),
    (
        "plans/k8s-kep-625-csi-migration.md",
        "plans/k8s-kep-2436-leader-migration.md",
    ),
];

/// Each pair's plan with the related document as context, by the library (names found
/// and matched) and by `rbplan check` (the finding); every plan with itself as context
/// is grounded. Prints each result; skips when the corpus is not there.
#[test]
fn corpus_plans_with_their_projects_documents_as_context() {
    let corpus = repo().join("fixtures/corpus");
    if !corpus.join(PAIRS[0].0).is_file() {
        eprintln!("note: fixtures/corpus/*.md are absent (git-ignored); corpus grounding not measured");
        return;
    }
    let dir = tempdir();
    let mut alarms = Vec::new();
    let selves = PAIRS.iter().map(|(_, p)| (*p, *p));
    for (ctx, plan) in PAIRS.iter().copied().chain(selves) {
        let (c, p) = (corpus.join(ctx), corpus.join(plan));
        let (ctext, ptext) = (
            std::fs::read_to_string(&c).unwrap(),
            std::fs::read_to_string(&p).unwrap(),
        );
        // A runbook's derived steps count too, as for --runbook.
        let runbook = ctx.starts_with("runbooks/").then(|| c.to_str().unwrap());
        let steps: Vec<(String, String)> = runbook
            .and_then(|_| rbplan::input::runbook::derive(&ctext).ok())
            .map(|r| r.steps.into_iter().map(|s| (s.name, s.text)).collect())
            .unwrap_or_default();
        let g = Grounding::new(&[(c.to_str().unwrap().to_string(), ctext)], &steps);
        let matched: Vec<String> = g.matched(&ptext).iter().map(|n| n.key.clone()).collect();
        let file = dir.path().join("plan.md");
        std::fs::write(&file, with_context(&ptext, &[c.to_str().unwrap()], runbook)).unwrap();
        let out = rbplan(dir.path()).args(["check", "--json", "plan.md"]).run();
        let ungrounded = codes(&out.json()).contains(&"ungrounded".to_string());
        eprintln!(
            "{ctx} -> {plan}: {} names ({} steps), {} matched {:?}{}",
            g.names().len(),
            steps.len(),
            matched.len(),
            &matched[..matched.len().min(8)],
            if ungrounded { ": ungrounded" } else { "" }
        );
        assert_eq!(
            ungrounded,
            !g.names().is_empty() && matched.is_empty(),
            "{ctx} -> {plan}"
        );
        if ungrounded {
            alarms.push(format!("{ctx} -> {plan}"));
        }
    }
    eprintln!("ungrounded: {} of {}: {alarms:?}", alarms.len(), PAIRS.len() * 2);
    assert!(
        alarms
            .iter()
            .all(|a| !a.ends_with(&format!("-> {}", a.split(" -> ").next().unwrap()))),
        "a plan with itself as context is grounded: {alarms:?}"
    );
}
