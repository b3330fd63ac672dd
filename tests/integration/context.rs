//! Plans grounded in the team's own files: `--context`, `--runbook`, a batch item's own
//! `context`. What the server received is asserted: the blocks and their paths, their
//! order, credentials absent, and nothing at all when the context is over its budget.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use super::batch::{batch, fleet, item, report};
use super::common::{example_input, rbplan, tempdir};
use super::model::{authored, reply};
use super::server::{Request, Server};

/// A model that always writes the authored plan.
fn server() -> Server {
    let a = authored();
    Server::start(move |req, n| reply(req, n, &a.text, "stop"))
}

fn user_text(req: &Request) -> String {
    let v: Value = req.json();
    v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "user")
        .map(|m| m["content"].as_str().unwrap_or("").to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// A credential that looks real to the rules, assembled here so that no file holds one.
fn planted_aws_key() -> String {
    ["AKIA", "Q7", "ZX4M", "R2TB", "W9KD", "L3PF"].concat()
}

/// One line per kind of credential (assembled here), the secret it holds and its kind;
/// then two lines that hold none.
fn planted_of_every_kind() -> Vec<(String, String, &'static str)> {
    let run = |alphabet: &str, n: usize| -> String { alphabet.chars().cycle().skip(n % 7).take(n).collect() };
    let b62 = "q7ZkP2mXw9RtB4nLc8VhJ3sDf6GyA5uE";
    let pem = format!(
        "{}{}{}",
        concat!("-----BEGIN EC ", "PRIVATE KEY-----"),
        run(b62, 70),
        concat!("-----END EC ", "PRIVATE KEY-----")
    );
    let pw = format!("{}{}", "Pl4nted-", "pw!x");
    let one = |line: String, secret: String, kind| (line, secret, kind);
    vec![
        one(format!("SIGNING_KEY=\"{pem}\""), pem.clone(), "private-key"),
        one(
            format!(
                "AWS_ACCESS_KEY_ID={}{}",
                "AKIA",
                run("ABCDEFGHJKMNPQRSTUVWXYZ234567", 16)
            ),
            format!("{}{}", "AKIA", run("ABCDEFGHJKMNPQRSTUVWXYZ234567", 16)),
            "aws-access-key-id",
        ),
        one(
            format!("aws_secret_access_key = {}", run(b62, 40)),
            run(b62, 40),
            "aws-secret-access-key",
        ),
        one(
            format!("STORAGE=AccountName=ops;AccountKey={}==", run(b62, 86)),
            run(b62, 86),
            "azure-storage-key",
        ),
        one(
            format!("OPENAI=sk-proj-{}", run(b62, 48)),
            format!("sk-proj-{}", run(b62, 48)),
            "openai-api-key",
        ),
        one(
            format!("CLAUDE={}{}", "sk-ant-api03-", run(b62, 95)),
            run(b62, 95),
            "anthropic-api-key",
        ),
        one(
            format!("GH={}{}", "ghp_", run(b62, 36)),
            format!("{}{}", "ghp_", run(b62, 36)),
            "github-token",
        ),
        one(
            format!("GL={}{}", "glpat-", run(b62, 20)),
            format!("{}{}", "glpat-", run(b62, 20)),
            "gitlab-token",
        ),
        one(
            format!("SLACK={}-{}-{}", "xoxb", "1234567890123", run(b62, 24)),
            run(b62, 24),
            "slack-token",
        ),
        one(
            format!("STRIPE={}{}", "sk_live_", run(b62, 24)),
            format!("{}{}", "sk_live_", run(b62, 24)),
            "stripe-key",
        ),
        one(
            format!("MAPS={}{}", "AIza", run(b62, 35)),
            format!("{}{}", "AIza", run(b62, 35)),
            "google-api-key",
        ),
        one(
            format!("DATABASE_URL=postgres://app:{pw}@db:5432/orders"),
            pw.clone(),
            "url-password",
        ),
        one(
            format!("MSSQL=Server=db;User Id=app;Password={pw}7;"),
            format!("{pw}7"),
            "connection-string-password",
        ),
        one(format!("db_password: \"{pw}8\""), format!("{pw}8"), "password"),
        one(format!("client_secret: {pw}9"), format!("{pw}9"), "secret"),
        one(format!("token: {pw}0"), format!("{pw}0"), "token"),
        one(
            format!("SESSION=ey{}.ey{}.{}", run(b62, 20), run(b62, 30), run(b62, 43)),
            format!("ey{}.ey{}", run(b62, 20), run(b62, 30)),
            "jwt",
        ),
    ]
}

fn ask(dir: &Path, server: &Server, extra: &[&str]) -> super::common::Out {
    let (summary, stages) = example_input();
    rbplan(dir)
        .args(["ask", "--model", "m", "--base-url", &server.url(), "--no-stream"])
        .args(["--summary", &summary, "--stages", &stages])
        .args(extra)
        .run()
}

#[test]
fn context_files_reach_the_model_as_fenced_blocks_in_order_as_data() {
    let server = server();
    let dir = tempdir();
    let d = dir.path();
    write(
        d,
        "db/001_orders.sql",
        "ALTER TABLE orders ADD COLUMN region text;\n```\n",
    );
    write(d, "db/.hidden.sql", "DROP TABLE nope;\n");
    write(d, "ops/README.md", "Run {{ rollback }} with {% raw %} care.\n");
    let out = ask(d, &server, &["--context", "ops/README.md", "--context", "db", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let chats = server.chats();
    assert_eq!(chats.len(), 1);
    let text = user_text(&chats[0]);
    let (readme, sql) = (
        text.find("### File: ops/README.md").expect("the README's block"),
        text.find("### File: db/001_orders.sql").expect("the SQL's block"),
    );
    assert!(
        readme < sql && sql < text.find("## Input").unwrap(),
        "in order, before the input:\n{text}"
    );
    assert!(
        text.contains("Run {{ rollback }} with {% raw %} care."),
        "template syntax verbatim:\n{text}"
    );
    assert!(
        text.contains("````sql\nALTER TABLE orders"),
        "a fence longer than the file's:\n{text}"
    );
    assert!(!text.contains("DROP TABLE nope"), "hidden files are left out");
    assert!(
        out.stderr.contains("db/.hidden.sql (hidden)"),
        "and said: {}",
        out.stderr
    );
    let v = out.json();
    let paths: Vec<&str> = v["context"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["ops/README.md", "db/001_orders.sql"]);
    // The front matter of a plan written with context records each file and its hash.
    let out = ask(d, &server, &["--context", "db", "--out", "plan.md"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let plan = std::fs::read_to_string(d.join("plan.md")).unwrap();
    assert!(
        plan.contains("  context:\n  - {path: \"db/001_orders.sql\", hash: \"sha256:"),
        "{plan}"
    );
}

#[test]
fn credentials_in_context_are_replaced_and_reported_never_sent() {
    let server = server();
    let dir = tempdir();
    let key = planted_aws_key();
    write(
        dir.path(),
        "runbook.md",
        &format!("# Cutover\n\n1. Export\n\n   aws_access_key_id = {key}\n"),
    );
    let out = ask(dir.path(), &server, &["--context", "runbook.md", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let sent = user_text(&server.chats()[0]);
    assert!(!sent.contains(&key), "the key was sent:\n{sent}");
    assert!(sent.contains("[REDACTED:"), "a marker naming its kind:\n{sent}");
    assert!(out.stderr.contains("runbook.md line 5"), "{}", out.stderr);
    let r = &out.json()["context"]["redactions"][0];
    assert_eq!(
        (r["path"].as_str(), r["line"].as_u64()),
        (Some("runbook.md"), Some(5)),
        "{r}"
    );
    assert!(!out.stdout.contains(&key) && !out.stderr.contains(&key));
    // Every kind, in a second file: each absent from what was sent, each reported where it was.
    let planted = planted_of_every_kind();
    let body: String = planted.iter().map(|(line, _, _)| format!("{line}\n")).collect();
    let kept = "PASSWORD_FILE=/run/secrets/db\npassword: ${DB_PASSWORD}\n";
    write(
        dir.path(),
        "ops/deploy.env",
        &format!("# deploy settings\n{body}{kept}"),
    );
    let out = ask(
        dir.path(),
        &server,
        &["--context", "runbook.md", "--context", "ops", "--json"],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let sent = user_text(server.chats().last().unwrap());
    let reported = out.json()["context"]["redactions"].as_array().unwrap().clone();
    for (i, (_, secret, kind)) in planted.iter().enumerate() {
        let line = i as u64 + 2;
        assert!(!sent.contains(secret.as_str()), "{kind} was sent:\n{sent}");
        assert!(sent.contains(&format!("[REDACTED:{kind}]")), "{kind}:\n{sent}");
        assert!(!out.stdout.contains(secret.as_str()) && !out.stderr.contains(secret.as_str()));
        let said = format!("ops/deploy.env line {line}: a {kind} replaced by [REDACTED:{kind}]");
        assert!(out.stderr.contains(&said), "{said}:\n{}", out.stderr);
        assert!(
            reported
                .iter()
                .any(|r| r["path"] == "ops/deploy.env" && r["line"] == line && r["kind"] == *kind),
            "{kind} at line {line}: {reported:?}"
        );
    }
    assert!(sent.contains("PASSWORD_FILE=/run/secrets/db") && sent.contains("password: ${DB_PASSWORD}"));
    // Turned off, it is sent, and the run says so.
    let out = ask(dir.path(), &server, &["--context", "runbook.md", "--no-redact"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(user_text(server.chats().last().unwrap()).contains(&key));
    assert!(out.stderr.contains("--no-redact"), "{}", out.stderr);
}

#[test]
fn a_context_over_its_budget_sends_nothing_and_names_the_largest_files() {
    let server = server();
    let dir = tempdir();
    write(
        dir.path(),
        "ctx/dump.sql",
        &"INSERT INTO orders VALUES (1, 'x');\n".repeat(2000),
    );
    write(dir.path(), "ctx/notes.md", "small\n");
    let out = ask(
        dir.path(),
        &server,
        &["--context", "ctx", "--context-max-tokens", "1000"],
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert_eq!(server.received(), 0, "nothing sent");
    assert!(out.stderr.contains("over --context-max-tokens 1,000"), "{}", out.stderr);
    assert!(out.stderr.contains("ctx/dump.sql: "), "{}", out.stderr);
    // Opted in, each file keeps its head and tail, with a marker where lines were cut.
    let out = ask(
        dir.path(),
        &server,
        &["--context", "ctx", "--context-max-tokens", "1000", "--context-truncate"],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let sent = user_text(&server.chats()[0]);
    assert!(sent.contains("[… rbplan cut ") && sent.contains("small\n"), "{sent}");
}

#[test]
fn batch_sends_shared_context_first_and_redoes_only_the_item_whose_file_changed() {
    let server = fleet(Duration::ZERO);
    let dir = tempdir();
    let d = dir.path();
    write(
        d,
        "shared/platform.md",
        "Platform: every service runs on the orders cluster.\n",
    );
    write(d, "in/a/schema.sql", "CREATE TABLE a_orders (id int);\n");
    write(d, "in/b/schema.sql", "CREATE TABLE b_orders (id int);\n");
    let (summary, stages) = example_input();
    let line = |n: &str| {
        json!({"name": format!("ok-{n}"), "summary": format!("Service {n}. {summary}"), "stages": stages, "context": [format!("{n}/schema.sql")]})
            .to_string()
    };
    let input = d.join("in/services.jsonl");
    std::fs::write(&input, format!("{}\n{}\n", line("a"), line("b"))).unwrap();
    let out = batch(d, &server, &input, &["--context", "shared"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    for q in server.chats() {
        let t = user_text(&q);
        let shared = t.find("### File: shared/platform.md").expect("shared context");
        let own = t.find("### File: in/").expect("the item's own");
        assert!(shared < own, "shared first:\n{t}");
    }
    // The same run again sends nothing; a changed file redoes exactly its item.
    assert_eq!(batch(d, &server, &input, &["--context", "shared"]).code, 0);
    assert_eq!(server.chats().len(), 2);
    write(d, "in/b/schema.sql", "CREATE TABLE b_orders (id int, region text);\n");
    let out = batch(d, &server, &input, &["--context", "shared"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(server.chats().len(), 3);
    assert!(user_text(&server.chats()[2]).contains("b_orders (id int, region text)"));
    let r = report(d);
    assert_eq!(item(&r, "ok-b")["redone"], "the input changed: context in/b/schema.sql");
    assert!(item(&r, "ok-a").get("redone").is_none());
    // check says so of the plan whose file changed since.
    write(d, "in/a/schema.sql", "CREATE TABLE a_orders (id bigint);\n");
    let out = rbplan(d).args(["check", "out/ok-a.md"]).run();
    assert!(
        out.stdout.contains("context in/a/schema.sql has changed"),
        "{}",
        out.stdout
    );
}

#[test]
fn a_missing_item_context_file_names_the_item_and_line_before_anything_is_sent() {
    let server = fleet(Duration::ZERO);
    let dir = tempdir();
    let (summary, stages) = example_input();
    let ok = json!({"name": "ok-a", "summary": summary, "stages": stages});
    let bad = json!({"name": "ok-b", "summary": summary, "stages": stages, "context": ["nope.sql"]});
    let input = dir.path().join("services.jsonl");
    std::fs::write(&input, format!("{ok}\n{bad}\n")).unwrap();
    let out = batch(dir.path(), &server, &input, &[]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert_eq!(server.received(), 0);
    assert!(
        out.stderr.contains("services.jsonl:2: item \"ok-b\": ") && out.stderr.contains("nope.sql"),
        "{}",
        out.stderr
    );
}

#[test]
fn render_shows_the_context_exactly_as_it_would_be_sent() {
    let dir = tempdir();
    write(dir.path(), "m.sql", "ALTER TABLE orders ADD COLUMN region text;\n");
    let out = rbplan(dir.path())
        .args(["render", "--example", "--context", "m.sql"])
        .run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("### File: m.sql\n\n```sql\nALTER TABLE orders"),
        "{}",
        out.stdout
    );
}
