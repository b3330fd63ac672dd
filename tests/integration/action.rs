//! The GitHub Action (`action.yml`): its check steps' `run:` scripts, read from the file
//! and run by bash here with the built binary on PATH, against fixture plans. The
//! install step (cargo install from git) and GitHub itself are not run here.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde::Deserialize;

use super::common::{BIN, repo, tempdir};

#[derive(Deserialize)]
struct Action {
    runs: Runs,
}

#[derive(Deserialize)]
struct Runs {
    using: String,
    steps: Vec<Step>,
}

#[derive(Deserialize)]
struct Step {
    name: String,
    run: String,
    #[serde(default)]
    env: BTreeMap<String, String>,
}

fn steps() -> Vec<Step> {
    let a: Action = serde_saphyr::from_str(&super::common::read("action.yml")).expect("action.yml parses");
    assert_eq!(a.runs.using, "composite");
    a.runs.steps
}

/// Run the step named `name` as the runner would: its env with `${{ inputs.X }}` filled in.
fn run_step(name: &str, inputs: &[(&str, &str)], cwd: &Path) -> (i32, String) {
    let step = steps()
        .into_iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no step {name}"));
    let bin_dir = Path::new(BIN).parent().unwrap();
    let mut cmd = Command::new("bash");
    cmd.env_clear()
        .current_dir(cwd)
        .env("PATH", format!("{}:/usr/bin:/bin", bin_dir.display()))
        .args(["-e", "-c", &step.run]);
    for (k, v) in &step.env {
        let input = v.trim().trim_start_matches("${{ inputs.").trim_end_matches(" }}");
        let value = inputs.iter().find(|(n, _)| *n == input).map_or("", |(_, v)| *v);
        cmd.env(k, value);
    }
    let o = cmd.output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
    )
}

#[test]
fn the_check_step_annotates_and_fails_on_a_failing_plan() {
    let plans = repo().join("fixtures/check/problems");
    let loop_plan = plans.join("loop.md");
    let (code, out) = run_step("Check", &[("paths", loop_plan.to_str().unwrap())], &repo());
    assert_eq!(code, 3, "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("::error file=") || l.starts_with("::warning file=")),
        "{out}"
    );
    assert!(out.contains("loop.md"), "{out}");
}

#[test]
fn the_check_step_passes_a_clean_plan_with_extra_args() {
    let plan = repo().join("fixtures/authored/plan.md");
    let (code, out) = run_step("Check", &[("paths", plan.to_str().unwrap()), ("args", "")], &repo());
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("::error"), "{out}");
}

#[test]
fn the_sarif_step_writes_sarif_whatever_the_verdict() {
    let dir = tempdir();
    let sarif = dir.path().join("rbplan.sarif");
    let plan = repo().join("fixtures/check/problems/loop.md");
    let (code, _) = run_step(
        "SARIF",
        &[("paths", plan.to_str().unwrap()), ("sarif", sarif.to_str().unwrap())],
        &repo(),
    );
    assert_eq!(code, 0, "a failing plan does not stop the SARIF step");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&sarif).unwrap()).unwrap();
    assert_eq!(v["version"], "2.1.0");
    assert!(!v["runs"][0]["results"].as_array().unwrap().is_empty());
    // A file that cannot be read still fails the step (exit 2 is not a verdict).
    let (code, _) = run_step(
        "SARIF",
        &[("paths", "no-such-plan.md"), ("sarif", sarif.to_str().unwrap())],
        &repo(),
    );
    assert_ne!(code, 0);
}
