//! Progress on stderr: an indicatif bar on a terminal (done/total, ETA, counts, what is in
//! flight), one plain line per service otherwise, nothing with --quiet. stdout is never
//! touched, so `--json` stays clean.

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::batch::report::{ItemReport, Status};
use crate::term::count;

#[derive(Default)]
struct Counts {
    done: usize,
    complete: usize,
    errors: usize,
    incomplete: usize,
    failed: usize,
    in_flight: BTreeSet<String>,
}

pub struct Progress {
    bar: Option<ProgressBar>,
    plain: bool,
    total: usize,
    counts: Mutex<Counts>,
}

impl Progress {
    pub fn new(total: usize, quiet: bool) -> Progress {
        let tty = std::io::stderr().is_terminal();
        let bar = (!quiet && tty).then(|| {
            bar(
                total,
                "{spinner} [{bar:30}] {pos}/{len} ETA {eta}  {prefix}\n  {wide_msg}",
            )
        });
        let p = Progress {
            plain: !quiet && !tty,
            bar,
            total,
            counts: Mutex::new(Counts::default()),
        };
        p.redraw(&p.counts.lock().expect("progress lock"));
        p
    }

    pub fn started(&self, name: &str) {
        let mut c = self.counts.lock().expect("progress lock");
        c.in_flight.insert(name.to_string());
        self.redraw(&c);
    }

    /// An item that was started but will not run (the run is stopping).
    pub fn dropped(&self, name: &str) {
        let mut c = self.counts.lock().expect("progress lock");
        c.in_flight.remove(name);
        self.redraw(&c);
    }

    pub fn finished(&self, r: &ItemReport) {
        let mut c = self.counts.lock().expect("progress lock");
        c.in_flight.remove(&r.name);
        c.done += 1;
        match r.status {
            Status::Complete => c.complete += 1,
            Status::Errors => c.errors += 1,
            Status::Incomplete => c.incomplete += 1,
            Status::Failed => c.failed += 1,
            Status::Pending => {}
        }
        if self.plain {
            say!("[{}/{}] {}", c.done, self.total, crate::logging::scrub(&line(r)));
        }
        if let Some(b) = &self.bar {
            b.set_position(c.done as u64);
            if r.status != Status::Complete {
                b.println(crate::logging::scrub(&line(r)));
            }
        }
        self.redraw(&c);
    }

    /// A message above the bar, or a plain line.
    pub fn note(&self, msg: &str) {
        let msg = &crate::logging::scrub(msg);
        match &self.bar {
            Some(b) => b.println(msg),
            None if self.plain => say!("{msg}"),
            None => {}
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }

    fn redraw(&self, c: &Counts) {
        let Some(b) = &self.bar else { return };
        b.set_prefix(format!(
            "✓ {} complete  ! {} with errors  ~ {} incomplete  ✗ {} failed",
            c.complete, c.errors, c.incomplete, c.failed
        ));
        let names: Vec<&str> = c.in_flight.iter().map(String::as_str).take(6).collect();
        let more = c.in_flight.len().saturating_sub(names.len());
        b.set_message(if names.is_empty() {
            String::new()
        } else if more > 0 {
            format!("working on: {} +{more}", names.join(", "))
        } else {
            format!("working on: {}", names.join(", "))
        });
    }
}

/// A progress bar on stderr in rbplan's style, ticking on its own.
pub fn bar(total: usize, template: &str) -> ProgressBar {
    let b = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
    b.set_style(
        ProgressStyle::with_template(template)
            .expect("valid template")
            .progress_chars("=> "),
    );
    b.enable_steady_tick(Duration::from_millis(200));
    b
}

/// One line about a finished item, and what happened to an earlier file.
pub fn line(r: &ItemReport) -> String {
    let mut l = status_line(r);
    if let (Status::Errors | Status::Incomplete, Some(e)) = (r.status, &r.error) {
        l.push_str(&format!("; stopped: {e}"));
    }
    if !r.kept.is_empty() {
        l.push_str(&format!("; kept a person's edits: {}", r.kept_shown()));
    }
    if let Some(b) = &r.written_beside {
        l.push_str(&format!("; written to {b}"));
    }
    if let Some(b) = &r.backup {
        l.push_str(&format!("; old file kept as {b}"));
    }
    l
}

fn status_line(r: &ItemReport) -> String {
    let secs = r.duration_ms as f64 / 1000.0;
    let name = r.shown_name(true);
    match r.status {
        Status::Complete if r.resumed => format!("{}: complete (kept from an earlier run)", name),
        Status::Complete => format!(
            "{}: complete ({}, {}, {:.1}s){}",
            name,
            count(r.repair_rounds, "repair round"),
            count(r.requests, "request"),
            secs,
            r.redone.as_ref().map(|w| format!("; redone: {w}")).unwrap_or_default()
        ),
        Status::Errors => format!(
            "{}: ERRORS, {} ({}, {:.1}s)",
            name,
            count(r.findings as u64, "error finding"),
            count(r.repair_rounds, "repair round"),
            secs
        ),
        Status::Incomplete => format!(
            "{}: INCOMPLETE, missing {} ({}, {:.1}s)",
            name,
            r.missing.join(", "),
            count(r.repair_rounds, "repair round"),
            secs
        ),
        Status::Failed => format!("{}: FAILED: {}", name, r.error.as_deref().unwrap_or("unknown error")),
        Status::Pending => format!("{}: not done ({})", name, r.error.as_deref().unwrap_or("pending")),
    }
}
