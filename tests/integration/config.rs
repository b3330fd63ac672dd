//! Config files: precedence (one test per pair of adjacent layers), the walk up to a
//! repository root, profiles, bad files refused with their file and line, keys refused,
//! `rbplan config` and `rbplan init`; and values from a file reaching the server.

use std::path::Path;

use serde_json::{Value, json};

use super::common::{Out, rbplan, tempdir};
use super::server::{Reply, Server};

fn write(p: &Path, text: &str) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// `rbplan config --json` in `dir` (with `envs`): the setting `key`'s value and origin.
fn setting(out: &Out, key: &str) -> (Value, String) {
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v = out.json();
    let s = v["settings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["key"] == key)
        .unwrap()
        .clone();
    (s["value"].clone(), s["origin"].as_str().unwrap().to_string())
}

fn model_in(dir: &Path, envs: &[(&str, &str)], args: &[&str]) -> (Value, String) {
    let mut r = rbplan(dir).args(["config", "--json"]).args(args);
    for (k, v) in envs {
        r = r.env(k, v);
    }
    setting(&r.run(), "model")
}

/// A repository in a temp folder: `.git/`, and the user's config folder beside it.
fn repo() -> tempfile::TempDir {
    let t = tempdir();
    std::fs::create_dir_all(t.path().join("repo/.git")).unwrap();
    t
}

fn xdg(t: &tempfile::TempDir) -> String {
    t.path().join("xdg").to_string_lossy().into_owned()
}

#[test]
fn flag_beats_environment() {
    let t = repo();
    let (v, o) = model_in(
        &t.path().join("repo"),
        &[("RBPLAN_MODEL", "from-env")],
        &["--model", "from-flag"],
    );
    assert_eq!((v, o.as_str()), (json!("from-flag"), "flag"));
}

#[test]
fn environment_beats_dotenv() {
    let t = repo();
    let dir = t.path().join("repo");
    write(&dir.join(".env"), "RBPLAN_MODEL=from-dotenv\n");
    let (v, o) = model_in(&dir, &[("RBPLAN_MODEL", "from-env")], &[]);
    assert_eq!((v, o.as_str()), (json!("from-env"), "environment"));
}

#[test]
fn dotenv_beats_project_file() {
    let t = repo();
    let dir = t.path().join("repo");
    write(&dir.join(".env"), "RBPLAN_MODEL=from-dotenv\n");
    write(&dir.join("rbplan.toml"), "model = \"from-project\"\n");
    let (v, o) = model_in(&dir, &[], &[]);
    assert_eq!((v, o.as_str()), (json!("from-dotenv"), ".env"));
}

#[test]
fn project_file_beats_user_file() {
    let t = repo();
    let dir = t.path().join("repo");
    write(&dir.join("rbplan.toml"), "# team settings\nmodel = \"from-project\"\n");
    write(
        &t.path().join("xdg/rbplan/config.toml"),
        "model = \"from-user\"\nmax_tokens = 99\n",
    );
    let out = rbplan(&dir)
        .args(["config", "--json"])
        .env("XDG_CONFIG_HOME", &xdg(&t))
        .run();
    let (v, o) = setting(&out, "model");
    assert_eq!(v, json!("from-project"));
    assert!(o.ends_with("repo/rbplan.toml:2"), "{o}");
    // The user file still gives what the project file does not.
    let (v, o) = setting(&out, "max_tokens");
    assert_eq!(v, json!(99));
    assert!(o.ends_with("rbplan/config.toml:2"), "{o}");
}

#[test]
fn user_file_beats_default_and_home_is_the_fallback() {
    let t = repo();
    let dir = t.path().join("repo");
    let (v, o) = model_in(&dir, &[], &[]);
    assert_eq!((v, o.as_str()), (json!("gpt-4o-mini"), "default"));
    write(
        &t.path().join("home/.config/rbplan/config.toml"),
        "model = \"from-user\"\n",
    );
    let home = t.path().join("home").to_string_lossy().into_owned();
    let (v, o) = model_in(&dir, &[("HOME", &home)], &[]);
    assert_eq!(v, json!("from-user"));
    assert!(o.ends_with(".config/rbplan/config.toml:1"), "{o}");
    // --no-config ignores it.
    let (v, o) = model_in(&dir, &[("HOME", &home)], &["--no-config"]);
    assert_eq!((v, o.as_str()), (json!("gpt-4o-mini"), "default"));
}

#[test]
fn found_from_a_subfolder_and_not_past_the_repository_root() {
    let t = repo();
    let sub = t.path().join("repo/services/orders");
    std::fs::create_dir_all(&sub).unwrap();
    write(&t.path().join("repo/rbplan.toml"), "model = \"team\"\n");
    assert_eq!(model_in(&sub, &[], &[]).0, json!("team"));
    // A file above the repository's root is not the repository's.
    std::fs::remove_file(t.path().join("repo/rbplan.toml")).unwrap();
    write(&t.path().join("rbplan.toml"), "model = \"outside\"\n");
    let out = rbplan(&sub).args(["config", "--json"]).run();
    assert_eq!(setting(&out, "model").0, json!("gpt-4o-mini"));
    assert_eq!(out.json()["project_file"], Value::Null);
    // --config names one anywhere.
    let (v, o) = model_in(&sub, &[], &["--config", t.path().join("rbplan.toml").to_str().unwrap()]);
    assert_eq!(v, json!("outside"));
    assert!(o.ends_with("rbplan.toml:1"), "{o}");
}

#[test]
fn profiles_by_flag_or_environment() {
    let t = repo();
    let dir = t.path().join("repo");
    write(
        &dir.join("rbplan.toml"),
        "model = \"cloud\"\n\n[profile.local]\nmodel = \"llama\"\nbase_url = \"http://127.0.0.1:8080/v1\"\n",
    );
    assert_eq!(model_in(&dir, &[], &[]).0, json!("cloud"));
    let (v, o) = model_in(&dir, &[], &["--profile", "local"]);
    assert_eq!(v, json!("llama"));
    assert!(o.ends_with("rbplan.toml:4"), "{o}");
    assert_eq!(model_in(&dir, &[("RBPLAN_PROFILE", "local")], &[]).0, json!("llama"));
    let out = rbplan(&dir).args(["config", "--profile", "azure"]).run();
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("no [profile.azure]"), "{}", out.stderr);
}

/// Each bad file: exit 2, nothing sent, the file and line named.
#[test]
fn bad_files_name_their_file_and_line() {
    let cases: &[(&str, &[&str], &str)] = &[
        (
            "# ours\nmodle = \"x\"\n",
            &["config"],
            "rbplan.toml:2: unknown key modle at the top level; did you mean model?",
        ),
        (
            "[check]\n\nignores = [\"durations\"]\n",
            &["config"],
            "rbplan.toml:3: unknown key ignores in [check]; did you mean ignore?",
        ),
        (
            "concurrency = 8\n",
            &["config"],
            "rbplan.toml:1: unknown key concurrency at the top level (it goes in [batch])",
        ),
        (
            "model = \"m\"\nmax_tokens = \"lots\"\n",
            &["config"],
            "rbplan.toml:2: max_tokens must be a whole number, not string",
        ),
        (
            "[check]\nstrict = \"yes\"\n",
            &["config"],
            "rbplan.toml:2: strict must be true or false",
        ),
        ("model = \"unterminated\n", &["config"], "rbplan.toml:1:"),
        (
            "[batch]\nconcurrency = 0\n",
            &["batch", "services.jsonl"],
            "rbplan.toml:2: concurrency: invalid value '0'",
        ),
        (
            "[check]\nformat = \"html\"\n",
            &["check", "plan.md"],
            "rbplan.toml:2: format: invalid value 'html'",
        ),
    ];
    for (text, args, says) in cases {
        let t = repo();
        let dir = t.path().join("repo");
        write(&dir.join("rbplan.toml"), text);
        let out = rbplan(&dir).args(*args).run();
        assert_eq!(out.code, 2, "{text}: {}", out.stderr);
        assert!(out.stderr.contains(says), "{text}: {}", out.stderr);
    }
}

#[test]
fn a_key_or_token_in_a_config_file_is_refused_and_never_echoed() {
    let secret = format!("sk-{}", "x".repeat(30));
    let cases = [
        format!("model = \"m\"\napi_key = \"{secret}\"\n"),
        format!("[profile.azure]\ntoken = \"{secret}\"\n"),
        format!("[ask]\nOPENAI_API_KEY = \"{secret}\"\n"),
        format!("headers = [\"X-Auth: {secret}\"]\n"),
        format!("headers = [\"Authorization: Bearer {secret}\"]\n"),
    ];
    for text in &cases {
        let t = repo();
        let dir = t.path().join("repo");
        write(&dir.join("rbplan.toml"), text);
        let out = rbplan(&dir).args(["config"]).run();
        assert_eq!(out.code, 2, "{text}: {}", out.stderr);
        assert!(out.stderr.contains("OPENAI_API_KEY"), "{text}: {}", out.stderr);
        assert!(out.stderr.contains("rbplan.toml:"), "{text}: {}", out.stderr);
        assert!(
            !out.stderr.contains(&secret) && !out.stdout.contains(&secret),
            "{}",
            out.stderr
        );
    }
}

/// A server that lists `model` and answers a chat.
fn server() -> Server {
    Server::start(|r, _| {
        if r.path.ends_with("/models") {
            Reply::json(200, &json!({"object": "list", "data": [{"id": "team-model"}]}))
        } else {
            Reply::json(
                200,
                &json!({"id": "c1", "object": "chat.completion", "model": "team-model",
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": "pong"}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}}),
            )
        }
    })
}

#[test]
fn the_files_model_base_url_headers_and_key_variable_reach_the_server() {
    let s = server();
    let t = repo();
    let dir = t.path().join("repo");
    let key = format!("fake-{}", "team-key");
    write(
        &dir.join("rbplan.toml"),
        &format!(
            "base_url = \"{}\"\nmodel = \"team-model\"\nheaders = [\"X-Team: sre\", \"X-Env: test\"]\napi_key_env = \"TEAM_LLM_KEY\"\n",
            s.url()
        ),
    );
    let out = rbplan(&dir.join("."))
        .args(["doctor", "--ping"])
        .env("TEAM_LLM_KEY", &key)
        .run();
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("rbplan.toml:2"),
        "the model's origin: {}",
        out.stdout
    );
    assert!(out.stdout.contains("rbplan.toml"), "{}", out.stdout);
    assert!(!out.stdout.contains(&key) && !out.stderr.contains(&key));
    let reqs = s.requests();
    let chat = reqs.iter().find(|r| r.method == "POST").expect("the ping was sent");
    assert_eq!(chat.json()["model"], "team-model");
    assert_eq!(chat.header("x-team"), Some("sre"));
    assert_eq!(chat.header("x-env"), Some("test"));
    assert_eq!(chat.header("authorization"), Some(format!("Bearer {key}").as_str()));
}

#[test]
fn a_check_table_applies_to_check_and_a_flag_beats_it() {
    let t = repo();
    let dir = t.path().join("repo");
    let plan = super::common::repo().join("fixtures/check/problems/loop.md");
    let codes = |out: &Out| -> Vec<String> {
        let v = out.json();
        let f = &v["files"][0]["findings"];
        f.as_array()
            .unwrap()
            .iter()
            .map(|x| x["code"].as_str().unwrap().to_string())
            .collect()
    };
    let base = rbplan(&dir).args(["check", "--format", "json"]).arg_path(&plan).run();
    let all = codes(&base);
    let first = all.first().expect("the fixture has findings").clone();
    write(&dir.join("rbplan.toml"), &format!("[check]\nignore = [\"{first}\"]\n"));
    let out = rbplan(&dir).args(["check", "--format", "json"]).arg_path(&plan).run();
    assert!(!codes(&out).contains(&first), "{first} was not ignored: {}", out.stdout);
    let out = rbplan(&dir)
        .args(["check", "--format", "json", "--ignore", "judge"])
        .arg_path(&plan)
        .run();
    assert!(
        codes(&out).contains(&first),
        "--ignore on the command line replaces the file's list"
    );
}

#[test]
fn config_prints_each_origin_as_text() {
    let t = repo();
    let dir = t.path().join("repo");
    write(&dir.join("rbplan.toml"), "model = \"m\"\n\n[batch]\nconcurrency = 16\n");
    write(&dir.join(".env"), "RBPLAN_TIMEOUT=30\n");
    let out = rbplan(&dir)
        .args(["config", "--max-retries", "5"])
        .env("RBPLAN_PATIENCE", "60")
        .run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let line = |k: &str| {
        out.stdout
            .lines()
            .find(|l| l.starts_with(&format!("{k} ")))
            .unwrap_or_default()
            .to_string()
    };
    assert!(line("model").ends_with("rbplan.toml:1"), "{}", out.stdout);
    assert!(line("batch.concurrency").contains("16") && line("batch.concurrency").ends_with("rbplan.toml:4"));
    assert!(line("timeout").ends_with(".env"), "{}", line("timeout"));
    assert!(line("patience").ends_with("environment"), "{}", line("patience"));
    assert!(line("max_retries").ends_with("flag"), "{}", line("max_retries"));
    assert!(line("base_url").ends_with("default"));
    assert!(out.stdout.contains("project file: ") && out.stdout.contains("repo/rbplan.toml"));
}

#[test]
fn init_writes_a_commented_file_and_refuses_to_overwrite() {
    let t = repo();
    let dir = t.path().join("repo");
    let out = rbplan(&dir).args(["init"]).run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let text = std::fs::read_to_string(dir.join("rbplan.toml")).unwrap();
    assert!(
        text.contains("# model = \"gpt-4o-mini\"") && text.contains("# [check]"),
        "{text}"
    );
    assert!(
        text.lines().all(|l| l.is_empty() || l.starts_with('#')),
        "every key is commented out"
    );
    let example = std::fs::read_to_string(dir.join("services.example.yaml")).unwrap();
    // The example is a batch input rbplan reads: a dry run lists both services.
    let dry = rbplan(&dir)
        .args(["batch", "services.example.yaml", "--dry-run", "--json"])
        .run();
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert_eq!(dry.json()["items"], 2, "{}", dry.stdout);
    assert!(example.contains("orders-db") && example.contains("billing-queue"));
    // All defaults: every setting from the file is still the default.
    let (_, o) = model_in(&dir, &[], &[]);
    assert_eq!(o, "default");
    std::fs::write(dir.join("rbplan.toml"), "model = \"edited\"\n").unwrap();
    let again = rbplan(&dir).args(["init"]).run();
    assert_eq!(again.code, 2, "{}", again.stderr);
    assert!(again.stderr.contains("already exists"), "{}", again.stderr);
    assert_eq!(
        std::fs::read_to_string(dir.join("rbplan.toml")).unwrap(),
        "model = \"edited\"\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("services.example.yaml")).unwrap(),
        example
    );
}

#[test]
fn a_bad_value_from_a_file_is_named_by_its_key_file_and_line() {
    let t = repo();
    let dir = t.path().join("repo");
    let file = dir.join("rbplan.toml");
    let doctor = |text: &str| {
        write(&file, text);
        rbplan(&dir).args(["doctor"]).env("XDG_CONFIG_HOME", &xdg(&t)).run()
    };
    let out = doctor("model = \"m\"\ntemperature = 5\n");
    assert_eq!(out.code, 2, "{}", out.stderr);
    let want = format!(
        "{}:2: temperature = \"5\": the temperature must be between 0 and 2",
        file.display()
    );
    assert!(out.stderr.contains(&want), "{}", out.stderr);
    let out = doctor("model = \"m\"\nmax_tokens = -5\n");
    assert_eq!(out.code, 2, "{}", out.stderr);
    let want = format!("{}:2: max_tokens = \"-5\" is not a valid value", file.display());
    assert!(out.stderr.contains(&want), "{}", out.stderr);
    assert!(
        !out.stderr.contains("RBPLAN_MAX_TOKENS"),
        "no variable was set: {}",
        out.stderr
    );
}

#[test]
fn findings_a_config_file_sets_aside_name_the_file_not_a_flag() {
    let t = repo();
    let dir = t.path().join("repo");
    let file = dir.join("rbplan.toml");
    let plan = super::common::repo().join("fixtures/adopt/billing-queue-cutover.md");
    let check = |text: &str, fmt: &str| {
        write(&file, text);
        rbplan(&dir)
            .args(["check", "--format", fmt])
            .arg_path(&plan)
            .env("XDG_CONFIG_HOME", &xdg(&t))
            .run()
    };
    let out = check("[check]\nignore = [\"durations\"]\n", "json");
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    let by = &v["files"][0]["suppressed"][0]["suppressed_by"];
    assert_eq!(
        by,
        &json!({"config": {"file": file.display().to_string(), "line": 2}}),
        "{v}"
    );
    let out = check("[check]\nignore = [\"durations\"]\n", "github");
    assert!(out.stdout.contains("durations (line "), "{}", out.stdout);
    assert!(out.stdout.contains(&format!("{}:2)", file.display())), "{}", out.stdout);
    let out = check("[check]\nignore = [\"nosuchcode\"]\n", "text");
    assert_eq!(out.code, 2, "{}", out.stderr);
    let want = format!("{}:2: ignore \"nosuchcode\": no such code", file.display());
    assert!(out.stderr.contains(&want), "{}", out.stderr);
}

#[test]
fn config_shows_the_settings_and_refuses_a_value_that_cannot_be_used() {
    let t = repo();
    let dir = t.path().join("repo");
    let file = dir.join("rbplan.toml");
    for (text, want) in [
        (
            "temperature = 5\n",
            ":1: temperature = \"5\": the temperature must be between 0 and 2",
        ),
        (
            "[check]\nignore = [\"nosuchcode\"]\n",
            ":2: ignore \"nosuchcode\": no such code",
        ),
    ] {
        write(&file, text);
        let out = rbplan(&dir).args(["config"]).env("XDG_CONFIG_HOME", &xdg(&t)).run();
        assert_eq!(out.code, 2, "{text}: {}", out.stderr);
        assert!(
            out.stderr.contains(&format!("{}{want}", file.display())),
            "{}",
            out.stderr
        );
        assert!(
            out.stdout.contains("rbplan.toml:"),
            "the settings are shown first: {}",
            out.stdout
        );
    }
}

#[test]
fn the_key_given_by_mistake_as_another_value_is_not_shown_by_config() {
    let dir = tempdir();
    // Assembled here, so no file holds a key-shaped string.
    let key = ["sk", "test", &"k".repeat(24)].join("-");
    for json in [false, true] {
        let mut r = rbplan(dir.path()).args(["config", "--no-config", "--model", &key]);
        if json {
            r = r.args(["--json"]);
        }
        let out = r.env("OPENAI_API_KEY", &key).run();
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert!(
            !out.stdout.contains(&key) && !out.stderr.contains(&key),
            "{}",
            out.stdout
        );
        assert!(out.stdout.contains("[REDACTED]"), "{}", out.stdout);
    }
}
