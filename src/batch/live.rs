//! The live engine: up to N items in flight against the chat API, each rendered, asked,
//! checked and repaired exactly as `rbplan ask` does. Pacing and the 429 pause are
//! shared through the one `Client`. Ctrl-C once: start nothing new, let in-flight items
//! finish, write the report. Ctrl-C twice: cancel them and write the report now.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::items::{self, Item, Manifest};
use super::progress::Progress;
use super::{Answers, Ctx, Stop};
use crate::batch::report::ItemReport;
use crate::error::{Error, Result};
use crate::repair::{self, Event};

/// Run every item of `manifest`. Returns the reports in input order (None: not reached)
/// and why the run stopped early, if it did.
pub async fn run(
    ctx: Arc<Ctx>,
    manifest: &Manifest,
    concurrency: usize,
    progress: Arc<Progress>,
) -> Result<(Vec<Option<ItemReport>>, Option<Stop>)> {
    let mut reports: Vec<Option<ItemReport>> = vec![None; manifest.len()];
    let mut items = items::open(&manifest.path)?.enumerate();
    let mut tasks: JoinSet<(usize, Option<ItemReport>, Option<String>)> = JoinSet::new();
    let mut in_flight: HashMap<tokio::task::Id, usize> = HashMap::new();
    let mut sigint = interrupts();
    let mut stop: Option<Stop> = None;

    loop {
        // Twice as many items as request slots: while some wait for a reply, others are
        // checked and written, and the next request goes out the moment a slot frees.
        while stop.is_none() && tasks.len() < concurrency * 2 {
            match items.next() {
                None => break,
                Some((idx, Ok(item))) => {
                    let (ctx, progress) = (ctx.clone(), progress.clone());
                    let h = tasks.spawn(async move {
                        match plan_one(&ctx, item, &progress).await {
                            Some((r, fatal)) => (idx, Some(r), fatal),
                            None => (idx, None, None),
                        }
                    });
                    in_flight.insert(h.id(), idx);
                }
                // The file changed since it was checked: stop cleanly rather than guess.
                Some((_, Err(e))) => stop = Some(Stop::Fatal(e.to_string())),
            }
        }
        if tasks.is_empty() {
            break;
        }
        tokio::select! {
            _ = sigint.recv() => {
                if matches!(stop, Some(Stop::Interrupted)) {
                    progress.note("second Ctrl-C: cancelling the requests in flight");
                    tasks.abort_all();
                    while tasks.join_next().await.is_some() {}
                    break;
                }
                progress.note(
                    "Ctrl-C: starting nothing new; letting the requests in flight finish (Ctrl-C again to stop now)",
                );
                stop = Some(Stop::Interrupted);
                // Items still waiting for their first request will not start it.
                ctx.client.stop_new_work();
            }
            Some(done) = tasks.join_next_with_id() => {
                let (idx, r, fatal) = match done {
                    Ok((id, v)) => {
                        in_flight.remove(&id);
                        v
                    }
                    Err(e) if e.is_cancelled() => {
                        in_flight.remove(&e.id());
                        continue;
                    }
                    Err(e) => {
                        // A panic in one item: report it as that item's failure, go on.
                        let idx = in_flight.remove(&e.id()).unwrap_or(usize::MAX);
                        let Some(entry) = manifest.entries.get(idx) else { continue };
                        let mut r = ItemReport::pending(&entry.name, &super::outdir::OutDir::file_name(&entry.slug), entry.line, &ctx.default_model, "internal error");
                        r.status = crate::batch::report::Status::Failed;
                        r.error = Some(format!("internal error: {e}"));
                        (idx, Some(r), None)
                    }
                };
                let Some(r) = r else { continue }; // not started: stays pending
                progress.finished(&r);
                reports[idx] = Some(r);
                if let Some(why) = fatal
                    && !matches!(stop, Some(Stop::Fatal(_)))
                {
                    progress.note(&format!("stopping the run: {why}"));
                    stop = Some(Stop::Fatal(why));
                    tasks.abort_all();
                }
            }
        }
    }
    Ok((reports, stop))
}

/// Ctrl-C presses, as a channel (the handler replaces the default "exit at once").
pub(super) fn interrupts() -> mpsc::UnboundedReceiver<()> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while tokio::signal::ctrl_c().await.is_ok() {
            if tx.send(()).is_err() {
                break;
            }
        }
    });
    rx
}

/// One item: keep a current plan, or generate, check, repair and write one. The second
/// value is set when the error means no other item can succeed either (401, no quota).
/// None when the item never started because the run is stopping.
pub async fn plan_one(ctx: &Ctx, item: Item, progress: &Progress) -> Option<(ItemReport, Option<String>)> {
    let model = item.model.clone().unwrap_or_else(|| ctx.default_model.clone());
    let file = super::outdir::OutDir::file_name(&item.slug);
    let input_hash = item.inputs.hash();
    let redo = match ctx.kept(&item, &model, &file, &input_hash) {
        Ok(r) => return Some((r, None)),
        Err(why) => why.map(str::to_string),
    };
    progress.started(&item.name);
    let t0 = Instant::now();
    let opts = repair::Options {
        model: model.clone(),
        temperature: ctx.temperature,
        max_tokens: ctx.max_tokens,
        max_repairs: ctx.max_repairs,
        stream: false,
    };
    let job = repair::Job {
        template: &ctx.template,
        checker: &ctx.checker,
        inputs: &item.inputs,
        stages: &item.stages,
        opts: &opts,
    };
    let quiet = |ev: Event| {
        if let Event::Warning(w) = ev {
            tracing::warn!(item = %item.name, "{w}");
        }
    };
    let generated = match &ctx.answers {
        Answers::Live => {
            let mut live = repair::LiveSource {
                client: &ctx.client,
                on_delta: None,
            };
            repair::generate(&job, &mut live, &quiet).await
        }
        Answers::Files(imp) => {
            let mut files = super::import::FileSource::new(imp, ctx, &item.name);
            repair::generate(&job, &mut files, &quiet).await
        }
    };
    let (mut r, fatal) = match generated {
        Ok(g) => ctx.finish(&item, &model, &file, &input_hash, g, t0),
        Err(Error::Api(crate::client::ApiError::NotStarted)) => {
            progress.dropped(&item.name);
            return None;
        }
        Err(e) => {
            let fatal = match &e {
                Error::Api(a) if a.is_auth() || a.is_quota() => Some(e.to_string()),
                _ => None,
            };
            (ctx.failed(&item, &model, &file, &e, t0), fatal)
        }
    };
    r.redone = redo;
    Some((r, fatal))
}
