//! Benchmark of `rbplan batch` against a local OpenAI-compatible server with a fixed
//! latency. Not a test: it prints figures for BENCHMARKS.md.
//!
//!   cargo bench --bench batch                       # the standard runs
//!   cargo bench --bench batch -- ITEMS LATENCY_MS CONCURRENCY
//!
//! For each run it reports wall time ÷ the ideal ⌈N/C⌉ × latency, the client's CPU time
//! (user + system, from wait4) per request, and the client's peak resident memory.
//!
//! Where the plans are written matters: creating a file on this VM's ext4 disk costs
//! from 0.05 to 0.9 ms of system time, rbplan or not. So each run is made with the output
//! folder on tmpfs (`/dev/shm`: the client's own cost) and on disk (the system temp
//! folder, `TMPDIR`), and the last column gives what creating the same number of files
//! in a new folder beside it cost this process before the run, with no rbplan involved.
//!
//! Environment:
//!   RBPLAN_BENCH_BASELINE=/path/to/rbplan   also run this binary, interleaved, for ratios
//!                                           measured in one run
//!   RBPLAN_BENCH_REPEAT=N                   run every row N times (default 1)

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

#[path = "../tests/integration/server.rs"]
#[allow(dead_code)]
mod server;
use server::{Reply, Server};

const BIN: &str = env!("CARGO_BIN_EXE_rbplan");

/// One row: how many items, latency, concurrency, and where the output folder lives.
struct Run {
    n: usize,
    latency: Duration,
    c: usize,
    place: Place,
}

#[derive(Clone, Copy)]
enum Place {
    Tmpfs,
    Disk,
}

impl Place {
    fn label(self) -> &'static str {
        match self {
            Place::Tmpfs => "tmpfs",
            Place::Disk => "disk",
        }
    }
    fn parent(self) -> PathBuf {
        match self {
            Place::Tmpfs => PathBuf::from("/dev/shm"),
            Place::Disk => std::env::temp_dir(),
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let tmpfs = Path::new("/dev/shm").is_dir();
    let run = |n, lat, c, place| Run {
        n,
        latency: Duration::from_millis(lat),
        c,
        place,
    };
    let both = |n, lat, c| {
        let mut v = vec![];
        if tmpfs {
            v.push(run(n, lat, c, Place::Tmpfs));
        }
        v.push(run(n, lat, c, Place::Disk));
        v
    };
    let runs: Vec<Run> = if args.len() >= 3 {
        both(
            args[0].parse().expect("ITEMS"),
            args[1].parse().expect("LATENCY_MS"),
            args[2].parse().expect("CONCURRENCY"),
        )
    } else {
        let mut v = both(500, 100, 16);
        v.push(run(10_000, 100, 16, Place::Disk));
        v
    };
    let mut bins = vec![("current", PathBuf::from(BIN))];
    if let Some(b) = std::env::var_os("RBPLAN_BENCH_BASELINE") {
        bins.push(("baseline", PathBuf::from(b)));
    }
    let repeat: usize = std::env::var("RBPLAN_BENCH_REPEAT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    println!(
        "| binary | items | latency | concurrency | output on | wall | ideal | wall ÷ ideal | requests | client CPU / request (user + sys) | peak RSS | file create in a sibling folder, no rbplan |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    // The reply every request gets, and the template's example input for every service.
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let plan = std::fs::read_to_string(repo.join("fixtures/authored/plan.md")).unwrap();
    let t: toml::Value =
        toml::from_str(&std::fs::read_to_string(repo.join("prompts/rollback-plan/template.toml")).unwrap()).unwrap();
    let example = (
        t["example"]["summary"].as_str().unwrap(),
        t["example"]["stages"].as_str().unwrap(),
    );
    for run in &runs {
        for _ in 0..repeat {
            for (label, bin) in &bins {
                bench(run, label, bin, &plan, example);
            }
        }
    }
}

fn bench(run: &Run, label: &str, bin: &Path, plan: &str, (summary, stages): (&str, &str)) {
    let Run { n, latency, c, place } = *run;
    let dir = tempfile::tempdir_in(place.parent()).unwrap();
    let input = dir.path().join("fleet.jsonl");
    let mut text = String::new();
    for i in 0..n {
        text.push_str(
            &serde_json::json!({"name": format!("svc-{i:05}"), "summary": format!("Service svc-{i:05}. {summary}"), "stages": stages})
                .to_string(),
        );
        text.push('\n');
    }
    std::fs::write(&input, text).unwrap();

    // Before the run, in a fresh sibling folder, kept until the end so the run does not
    // reuse what it frees: the same pattern as the plans (n new files in a new folder).
    let create = file_create_cost(&dir.path().join("calib"), n);
    let server = start_server(latency, plan);
    let t0 = Instant::now();
    // Reaped by wait4 below, which also reads its CPU time and peak memory.
    #[allow(clippy::zombie_processes)]
    let child = Command::new(bin)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(dir.path())
        .args([
            "batch",
            "fleet.jsonl",
            "--out-dir",
            "out",
            "--quiet",
            "--model",
            "bench",
        ])
        .args(["--base-url", &server.url(), "--concurrency", &c.to_string()])
        .spawn()
        .expect("run rbplan");
    let (status, usage) = wait4(child.id() as libc::pid_t);
    let wall = t0.elapsed();
    assert_eq!(status, 0, "rbplan batch failed");
    let reqs = server.received();
    assert_eq!(reqs, n, "one request per plan");
    let ideal = latency * n.div_ceil(c) as u32;
    let (user, sys) = (tv(usage.ru_utime), tv(usage.ru_stime));
    let per = |d: Duration| d.as_secs_f64() * 1000.0 / reqs as f64;
    println!(
        "| {label} | {n} | {} ms | {c} | {} | {:.3} s | {:.3} s | {:.3}× | {reqs} | {:.3} ms ({:.3} + {:.3}) | {:.1} MiB | {:.3} ms |",
        latency.as_millis(),
        place.label(),
        wall.as_secs_f64(),
        ideal.as_secs_f64(),
        wall.as_secs_f64() / ideal.as_secs_f64(),
        per(user + sys),
        per(user),
        per(sys),
        usage.ru_maxrss as f64 / 1024.0,
        create.as_secs_f64() * 1000.0,
    );
    // System time on a VM varies with things outside the process; these say which.
    eprintln!(
        "  {label}, {n} items, {}: {} minor / {} major page faults, {} voluntary / {} involuntary context switches",
        place.label(),
        usage.ru_minflt,
        usage.ru_majflt,
        usage.ru_nvcsw,
        usage.ru_nivcsw
    );
}

/// CPU time (user + system) this thread spends creating one 12 kB file the way rbplan
/// does (temp file, write, rename) in the new folder `dir`, averaged over `k` files: what
/// the file system charges per plan, with no rbplan involved. On this VM's ext4 it falls
/// from about 0.9 ms to 0.05 ms per file as a new folder fills.
fn file_create_cost(dir: &Path, k: usize) -> Duration {
    use std::io::Write;
    std::fs::create_dir(dir).unwrap();
    let data = vec![b'x'; 12 * 1024];
    let before = thread_cpu();
    for i in 0..k {
        let (tmp, dst) = (dir.join(format!(".calib-{i}.tmp")), dir.join(format!("calib-{i}")));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .unwrap();
        f.write_all(&data).unwrap();
        drop(f);
        std::fs::rename(&tmp, &dst).unwrap();
    }
    (thread_cpu() - before) / k.max(1) as u32
}

fn thread_cpu() -> Duration {
    // SAFETY: rusage is plain data; getrusage fills it for the calling thread.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut u) }, 0);
    tv(u.ru_utime) + tv(u.ru_stime)
}

fn tv(t: libc::timeval) -> Duration {
    Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
}

/// Wait for our child and read its resource usage (CPU time, peak RSS in KiB).
fn wait4(pid: libc::pid_t) -> (i32, libc::rusage) {
    let mut status = 0;
    // SAFETY: rusage is plain data; wait4 fills it for the child we started.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid, "wait4");
    (libc::WEXITSTATUS(status), usage)
}

/// The tests' HTTP server on 127.0.0.1, answering every chat request with the same
/// complete plan after `latency`, keeping no copy of the requests.
fn start_server(latency: Duration, plan: &str) -> Server {
    let body = serde_json::json!({
        "id": "chatcmpl-bench", "object": "chat.completion", "model": "bench",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": plan}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 2900, "completion_tokens": 3000, "total_tokens": 5900},
    });
    Server::start_with(
        move |_, _| Reply::After(latency, Box::new(Reply::json(200, &body))),
        false,
    )
}
