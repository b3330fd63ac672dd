//! Running the binary in a clean environment and reading what it did.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_rbplan");

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A file of the repository, by its path from the root.
pub fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

pub fn fixture_dir(name: &str) -> PathBuf {
    repo().join("fixtures").join(name)
}

#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}\nstderr:\n{}", self.stdout, self.stderr))
    }
}

/// A command run in `dir` with an empty environment plus `envs`: no stray OPENAI_* or
/// RBPLAN_* from the developer's shell, and no .env unless the test writes one.
pub struct Run {
    cmd: Command,
    stdin: Option<String>,
}

pub fn rbplan(dir: &Path) -> Run {
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .current_dir(dir)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("NO_COLOR", "1");
    Run { cmd, stdin: None }
}

impl Run {
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.cmd.args(args);
        self
    }

    pub fn arg_path(mut self, p: &Path) -> Self {
        self.cmd.arg(p);
        self
    }

    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.cmd.env(k, v);
        self
    }

    pub fn stdin(mut self, s: &str) -> Self {
        self.stdin = Some(s.to_string());
        self
    }

    /// Start the command and return at once (for tests that signal it).
    pub fn spawn(mut self) -> std::process::Child {
        self.cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        self.cmd.spawn().expect("spawn rbplan")
    }

    pub fn run(mut self) -> Out {
        self.cmd.stdin(if self.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        self.cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = self.cmd.spawn().expect("spawn rbplan");
        if let Some(s) = self.stdin.take() {
            child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
        }
        let o = child.wait_with_output().expect("wait rbplan");
        Out {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// The built-in template's spec, as prompts/rollback-plan/template.toml declares it: what
/// tests read the sections from, rather than lists of their own.
pub fn spec() -> rbplan::spec::Spec {
    toml::from_str(&read("prompts/rollback-plan/template.toml")).expect("template.toml is a spec")
}

/// The spec's section ids, in order: "philosophy", "decision-matrix", ...
pub fn section_ids() -> Vec<String> {
    spec().sections.into_iter().map(|s| s.id).collect()
}

/// The spec's section headings, in order, as a plan writes them: "1. Rollback philosophy", ...
pub fn section_headings() -> Vec<String> {
    let spec = spec();
    (0..spec.sections.len()).map(|i| spec.heading(i)).collect()
}

/// The example input of the built-in template (what `--example` sends).
pub fn example_input() -> (String, String) {
    let example = spec().example.expect("the template has an example");
    (example.summary, example.stages)
}

/// Every file under `dir`, concatenated, for "does this secret appear anywhere" checks.
/// The names of the files in `dir`, sorted.
pub fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

pub fn all_text_under(dir: &Path) -> String {
    let mut out = String::new();
    for e in walk(dir) {
        out.push_str(&String::from_utf8_lossy(&std::fs::read(&e).unwrap()));
    }
    out
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                v.extend(walk(&p));
            } else {
                v.push(p);
            }
        }
    }
    v
}

/// Wait for a spawned command and collect what it printed.
pub fn wait(child: std::process::Child) -> Out {
    let o = child.wait_with_output().expect("wait rbplan");
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// `wait`, but kill the child and fail if it runs longer than `limit`.
pub fn wait_at_most(mut child: std::process::Child, limit: std::time::Duration) -> Out {
    let t0 = std::time::Instant::now();
    while child.try_wait().expect("poll rbplan").is_none() {
        if t0.elapsed() > limit {
            let _ = child.kill();
            let out = wait(child);
            panic!("rbplan still running after {limit:?}; stderr:\n{}", out.stderr);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    wait(child)
}

/// Send SIGINT (what Ctrl-C sends) to a child we started.
pub fn interrupt(child: &std::process::Child) {
    let ok = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("run kill")
        .success();
    assert!(ok, "kill -INT failed");
}
