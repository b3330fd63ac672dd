//! Benchmark of `rbplan check` over 300 plans, with the concern map (the default) and
//! without it (`--no-concerns`: the template's headings alone, as before the map), in one
//! run, rows interleaved. Not a test: it prints the table for BENCHMARKS.md.
//!
//!   cargo bench --bench concerns
//!   RBPLAN_BENCH_REPEAT=5 cargo bench --bench concerns
//!   RBPLAN_BENCH_BASELINE=/path/to/older/rbplan cargo bench --bench concerns
//!
//! The 300 plans are copies, round-robin, of: the authored plan (rbplan's shape, where the
//! map does not apply), every plan of fixtures/check/problems and fixtures/adopt, and the
//! public plans of fixtures/corpus/plans when they are there (git-ignored). CPU time is
//! the user + system time of the rbplan process, from wait4.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const BIN: &str = env!("CARGO_BIN_EXE_rbplan");
const PLANS: usize = 300;

fn md_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.retain(|p| p.extension().is_some_and(|x| x == "md") && !p.ends_with("README.md"));
    v.sort();
    v
}

/// The 300 plan files in `dir`; how many are in their own shape (not rbplan's).
fn write_plans(dir: &Path) -> (usize, usize) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let own_shape: Vec<PathBuf> = md_in(&root.join("fixtures/adopt"))
        .into_iter()
        .chain(md_in(&root.join("fixtures/corpus/plans")))
        .collect();
    let mut sources = vec![root.join("fixtures/authored/plan.md")];
    sources.extend(md_in(&root.join("fixtures/check/problems")));
    let rbplan_shape = sources.len();
    sources.extend(own_shape);
    for i in 0..PLANS {
        let text = std::fs::read(&sources[i % sources.len()]).expect("a plan");
        std::fs::write(dir.join(format!("plan-{i:03}.md")), text).expect("write");
    }
    let own = (0..PLANS).filter(|i| i % sources.len() >= rbplan_shape).count();
    (own, sources.len())
}

fn wait4(pid: libc::pid_t) -> (i32, libc::rusage) {
    let mut status = 0;
    // SAFETY: rusage is plain data; wait4 fills it for the child we started.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid, "wait4");
    (libc::WEXITSTATUS(status), usage)
}

fn secs(t: libc::timeval) -> f64 {
    t.tv_sec as f64 + t.tv_usec as f64 / 1e6
}

/// One `check --json` of the folder: (CPU seconds, wall seconds).
fn run(bin: &str, dir: &Path, extra: &[&str]) -> (f64, f64) {
    let t0 = Instant::now();
    #[allow(clippy::zombie_processes)]
    let child = Command::new(bin)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .args(["check", "--json"])
        .args(extra)
        .arg(dir)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("run rbplan");
    let (status, u) = wait4(child.id() as libc::pid_t);
    let wall = t0.elapsed().as_secs_f64();
    assert_eq!(status, 3, "check exits 3: some plans fail");
    (secs(u.ru_utime) + secs(u.ru_stime), wall)
}

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (own, kinds) = write_plans(dir.path());
    let repeat: usize = std::env::var("RBPLAN_BENCH_REPEAT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let baseline = std::env::var("RBPLAN_BENCH_BASELINE").ok();
    println!(
        "rbplan check --json, {PLANS} plans ({kinds} distinct; {own} in their own shape), {repeat} runs each, interleaved\n"
    );
    let mut rows: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "without concern map (--no-concerns)",
            BIN.to_string(),
            vec!["--no-concerns"],
        ),
        ("with concern map (default)", BIN.to_string(), vec![]),
    ];
    if let Some(b) = &baseline {
        rows.push(("baseline binary", b.clone(), vec![]));
    }
    let mut cpu = vec![Vec::new(); rows.len()];
    let mut wall = vec![Vec::new(); rows.len()];
    run(BIN, dir.path(), &[]); // warm the page cache
    for _ in 0..repeat {
        for (k, (_, bin, extra)) in rows.iter().enumerate() {
            let (c, w) = run(bin, dir.path(), extra);
            cpu[k].push(c);
            wall[k].push(w);
        }
    }
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    let base = median(&cpu[0]);
    println!("| run | CPU (median) | per plan | wall (median) | CPU ÷ without |");
    println!("|---|---:|---:|---:|---:|");
    for (k, (name, _, _)) in rows.iter().enumerate() {
        let c = median(&cpu[k]);
        println!(
            "| {name} | {:.3} s | {:.2} ms | {:.3} s | {:.2}× |",
            c,
            c * 1000.0 / PLANS as f64,
            median(&wall[k]),
            c / base
        );
    }
}
