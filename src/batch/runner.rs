//! Up to N items in flight, whatever engine answers them, each planned by
//! `Ctx::plan_one`. Pacing and the 429 pause are shared through the one `Client`. Ctrl-C
//! once: start nothing new, let in-flight items finish, write the report. Ctrl-C twice:
//! cancel them and write the report now.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::{JoinError, JoinSet};

use super::items::{self, Manifest};
use super::outdir::OutDir;
use super::progress::Progress;
use super::report::{ItemReport, Status};
use super::{Ctx, Stop};
use crate::error::Result;

/// What a finished item task gives back.
struct Done {
    /// Its index in the input.
    idx: usize,
    /// None: it never started (the run was stopping).
    report: Option<ItemReport>,
    /// An error that stops the whole run.
    fatal: Option<Stop>,
}

/// The items of a run as they go: tasks in flight, reports so far, and why it stops.
struct Run<'a> {
    ctx: Arc<Ctx>,
    manifest: &'a Manifest,
    progress: Arc<Progress>,
    tasks: JoinSet<Done>,
    in_flight: HashMap<tokio::task::Id, usize>,
    reports: Vec<Option<ItemReport>>,
    stop: Option<Stop>,
}

/// Run every item of `manifest`. Returns the reports in input order (None: not reached)
/// and why the run stopped early, if it did.
pub async fn run(
    ctx: Arc<Ctx>,
    manifest: &Manifest,
    concurrency: usize,
    progress: Arc<Progress>,
) -> Result<(Vec<Option<ItemReport>>, Option<Stop>)> {
    let mut items = items::open(&manifest.path)?.enumerate();
    let mut sigint = interrupts();
    let mut run = Run {
        ctx,
        manifest,
        progress,
        tasks: JoinSet::new(),
        in_flight: HashMap::new(),
        reports: vec![None; manifest.len()],
        stop: None,
    };
    loop {
        // Twice as many items as request slots: while some wait for a reply, others are
        // checked and written, and the next request goes out the moment a slot frees.
        while run.stop.is_none() && run.tasks.len() < concurrency * 2 {
            match items.next() {
                None => break,
                Some((idx, Ok(item))) => run.spawn(idx, item),
                // The file changed since it was checked: stop cleanly rather than guess.
                Some((_, Err(e))) => run.stop = Some(Stop::Fatal(e.to_string())),
            }
        }
        if run.tasks.is_empty() {
            break;
        }
        tokio::select! {
            _ = sigint.recv() => {
                if run.interrupted().await {
                    break;
                }
            }
            Some(done) = run.tasks.join_next_with_id() => run.finished(done),
        }
    }
    Ok((run.reports, run.stop))
}

impl Run<'_> {
    fn spawn(&mut self, idx: usize, item: items::Item) {
        let (ctx, progress) = (self.ctx.clone(), self.progress.clone());
        let h = self.tasks.spawn(async move {
            match ctx.plan_one(item, &progress).await {
                Some((r, fatal)) => Done {
                    idx,
                    report: Some(r),
                    fatal,
                },
                None => Done {
                    idx,
                    report: None,
                    fatal: None,
                },
            }
        });
        self.in_flight.insert(h.id(), idx);
    }

    /// Ctrl-C. The first starts nothing new; the second cancels what is in flight (true:
    /// the run is over).
    async fn interrupted(&mut self) -> bool {
        if matches!(self.stop, Some(Stop::Interrupted)) {
            self.progress
                .note("interrupted again: cancelling the requests in flight");
            self.tasks.abort_all();
            while self.tasks.join_next().await.is_some() {}
            return true;
        }
        self.progress
            .note("interrupted (Ctrl-C or SIGTERM): no new plan starts; the plans in progress finish, repairs included (interrupt again to stop now)");
        self.stop = Some(Stop::Interrupted);
        // Items still waiting for their first request will not start it.
        self.ctx.client.stop_new_work();
        false
    }

    fn finished(&mut self, done: std::result::Result<(tokio::task::Id, Done), JoinError>) {
        let Done { idx, report, fatal } = match done {
            Ok((id, v)) => {
                self.in_flight.remove(&id);
                v
            }
            Err(e) if e.is_cancelled() => {
                self.in_flight.remove(&e.id());
                return;
            }
            Err(e) => match self.panicked(e) {
                Some(v) => v,
                None => return,
            },
        };
        let Some(r) = report else { return }; // not started: stays pending
        self.progress.finished(&r);
        self.reports[idx] = Some(r);
        match fatal {
            Some(Stop::Fatal(why)) if !matches!(self.stop, Some(Stop::Fatal(_))) => {
                self.progress.note(&format!("stopping the run: {why}"));
                self.stop = Some(Stop::Fatal(why));
                self.tasks.abort_all();
            }
            // Requests in flight finish; nothing new starts.
            Some(Stop::Paused(why)) if self.stop.is_none() => {
                self.progress
                    .note(&format!("stopping the run: {why}; requests in flight finish"));
                self.ctx.client.stop_new_work();
                self.stop = Some(Stop::Paused(why));
            }
            _ => {}
        }
    }

    /// A panic in one item: reported as that item's failure; the run goes on.
    fn panicked(&mut self, e: JoinError) -> Option<Done> {
        let idx = self.in_flight.remove(&e.id())?;
        let entry = self.manifest.entries.get(idx)?;
        let file = OutDir::file_name(&entry.slug);
        let mut r = ItemReport::pending(
            &entry.name,
            &file,
            entry.line,
            self.ctx.default_model(),
            "internal error",
        );
        r.status = Status::Failed;
        r.error = Some(format!("internal error: {e}"));
        Some(Done {
            idx,
            report: Some(r),
            fatal: None,
        })
    }
}

/// Ctrl-C presses and SIGTERMs, as a channel (the handler replaces the default "exit at once").
pub fn interrupts() -> mpsc::UnboundedReceiver<()> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            crate::client::interrupted().await;
            if tx.send(()).is_err() {
                break;
            }
        }
    });
    rx
}
