//! `--via batch-api`: export the requests, upload them (`/v1/files`, purpose batch),
//! create the batches (`/v1/batches`, 24 h window), poll until each ends, download the
//! output and error files, and hand them to the import engine. The batch ids are
//! recorded in `DIR/batch-api.json` as soon as they exist, so a rerun resumes them
//! instead of paying twice; `--cancel` cancels them.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::export::{self, Limits};
use crate::batch::Ctx;
use crate::batch::items::Manifest;
use crate::client::batches::BatchInfo;
use crate::error::{Error, Outcome, Result};
use crate::output;
use crate::term::Ui;

pub const STATE_FILE: &str = "batch-api.json";

/// What `DIR/batch-api.json` records.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Recorded {
    /// sha256 of the request files, to tell a resume from a changed run.
    pub requests_sha256: String,
    pub parts: Vec<Part>,
    /// True once the outputs were imported and the report written.
    #[serde(default)]
    pub imported: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Part {
    /// The request file, relative to the output folder.
    pub file: String,
    pub requests: usize,
    #[serde(default)]
    pub input_file_id: Option<String>,
    #[serde(default)]
    pub batch_id: Option<String>,
    /// A create call was sent; if no id was recorded, look for the batch before creating one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub attempted_create: bool,
    #[serde(default)]
    pub status: Option<String>,
}

pub enum Collected {
    /// Every batch has ended: its output and error files, downloaded, and what to say
    /// about services that have no line in them.
    Files { files: Vec<PathBuf>, note: String },
    /// Ctrl-C while waiting: the batches keep running at the provider.
    Interrupted,
}

fn state_path(dir: &Path) -> PathBuf {
    dir.join(STATE_FILE)
}

fn load(dir: &Path) -> Result<Option<Recorded>> {
    let p = state_path(dir);
    match std::fs::read_to_string(&p) {
        Ok(t) => serde_json::from_str(&t)
            .map(Some)
            .map_err(|e| Error::input(&p, Some(e.line()), format!("not an rbplan batch record: {e}"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(format!("reading {}", p.display()), e)),
    }
}

fn save(dir: &Path, r: &Recorded) -> Result<()> {
    let p = state_path(dir);
    let text = serde_json::to_string_pretty(r).expect("serializes") + "\n";
    output::write_atomic(&p, text.as_bytes()).map_err(|e| Error::io(format!("writing {}", p.display()), e))
}

pub fn mark_imported(out: &crate::batch::outdir::OutDir) -> Result<()> {
    if let Some(mut r) = load(&out.path)? {
        r.imported = true;
        save(&out.path, &r)?;
    }
    Ok(())
}

/// One fingerprint for all request files, from the hashes the writer made as it wrote them.
fn fingerprint(parts: &[export::Written]) -> String {
    match parts {
        [one] => one.sha256.clone(),
        many => {
            let mut h = Sha256::new();
            for p in many {
                h.update(p.sha256.as_bytes());
            }
            crate::util::hex(&h.finalize())
        }
    }
}

/// Cancel every recorded batch that has not ended.
pub async fn cancel(ctx: &Ctx, ui: Ui) -> Result<Outcome> {
    let Some(rec) = load(&ctx.out().path)? else {
        return Err(Error::usage(format!(
            "no batch is recorded in {}: nothing to cancel",
            state_path(&ctx.out().path).display()
        )));
    };
    for id in rec.parts.iter().filter_map(|p| p.batch_id.as_deref()) {
        let b = ctx.client.get_batch(id).await?;
        if b.is_terminal() || b.status == "cancelling" {
            ui.note(format!("batch {id}: already {}", b.status));
            continue;
        }
        let b = ctx.client.cancel_batch(id).await?;
        ui.note(format!(
            "batch {id}: {} (requests already finished are kept in its output)",
            b.status
        ));
    }
    ui.note("rerun without --cancel to collect what the cancelled batches finished");
    Ok(Outcome::Complete)
}

/// Submit (or resume), wait, download.
pub async fn submit_and_collect(
    ctx: &Ctx,
    manifest: &Manifest,
    limits: Limits,
    poll: Duration,
    ui: Ui,
) -> Result<Collected> {
    let dir = &ctx.out().path;
    // Render the requests into a scratch folder first, to compare with what was sent.
    let scratch = tempfile::Builder::new()
        .prefix(output::TMP_PREFIX)
        .tempdir_in(dir)
        .map_err(|e| Error::io(format!("creating a folder in {}", dir.display()), e))?;
    let (parts, kept) = export::write_requests(ctx, manifest, &scratch.path().join("batch-requests.jsonl"), limits)?;
    let hash = fingerprint(&parts);

    let mut rec = match load(dir)? {
        Some(r) if !r.imported && r.requests_sha256 == hash => {
            ui.note(format!(
                "resuming the batch recorded in {} ({})",
                state_path(dir).display(),
                ids(&r)
            ));
            r
        }
        Some(r) if !r.imported && !ctx.force => {
            return Err(Error::usage(format!(
                "{} records batch(es) {} that are not imported yet, made from other requests (the input, \
                 template or model changed). Rerun the old command to collect them, --cancel to cancel them, \
                 or --force to submit a new batch anyway",
                state_path(dir).display(),
                ids(&r)
            )));
        }
        _ if parts.is_empty() => {
            ui.note(format!(
                "nothing to submit: all {kept} plans in {} are current",
                dir.display()
            ));
            return Ok(Collected::Files {
                files: Vec::new(),
                note: "not submitted".into(),
            });
        }
        _ => {
            // Move the request files in beside the plans, where the record points.
            let mut rec = Recorded {
                requests_sha256: hash,
                parts: Vec::new(),
                imported: false,
            };
            for p in &parts {
                let name = p.path.file_name().expect("a file").to_string_lossy().into_owned();
                std::fs::rename(&p.path, dir.join(&name))
                    .map_err(|e| Error::io(format!("moving {name} into {}", dir.display()), e))?;
                rec.parts.push(Part {
                    file: name,
                    requests: p.requests,
                    input_file_id: None,
                    batch_id: None,
                    attempted_create: false,
                    status: None,
                });
            }
            if kept > 0 {
                ui.note(format!("{kept} services have current plans and are not submitted"));
            }
            rec
        }
    };
    drop(scratch);

    // Upload and create what is not yet created; record each id as soon as it exists.
    let n = rec.parts.len();
    for i in 0..n {
        if rec.parts[i].batch_id.is_some() {
            continue;
        }
        let file = dir.join(&rec.parts[i].file);
        if rec.parts[i].input_file_id.is_none() {
            let id = ctx.client.upload_batch_file(&file).await?;
            ui.note(format!(
                "uploaded {} ({}) as {id}",
                file.display(),
                crate::term::count(rec.parts[i].requests as u64, "request")
            ));
            rec.parts[i].input_file_id = Some(id);
            save(dir, &rec)?;
        }
        let fid = rec.parts[i].input_file_id.clone().expect("set above");
        // A run that stopped between creating the batch and recording it (a crash, a
        // timeout on the create call) left a batch over this file: adopt it, don't pay twice.
        if rec.parts[i].attempted_create
            && let Some(b) = ctx.client.find_batch_for_file(&fid).await?
        {
            ui.note(format!("found batch {} ({}) already created for {fid}", b.id, b.status));
            rec.parts[i].batch_id = Some(b.id);
            rec.parts[i].status = Some(b.status);
            save(dir, &rec)?;
            continue;
        }
        rec.parts[i].attempted_create = true;
        save(dir, &rec)?;
        let meta = json!({"rbplan_input": manifest.path.file_name().map(|f| f.to_string_lossy()).unwrap_or_default(), "part": format!("{}/{n}", i + 1)});
        let b = ctx.client.create_batch(&fid, meta).await?;
        ui.note(format!("created batch {} ({})", b.id, b.status));
        rec.parts[i].batch_id = Some(b.id);
        rec.parts[i].status = Some(b.status);
        save(dir, &rec)?;
    }

    let Some(done) = wait(ctx, &mut rec, poll, ui).await? else {
        ui.warn(format!(
            "stopped waiting; the batch keeps running at the provider. Rerun the same command to resume it, \
             or add --cancel to cancel it ({})",
            ids(&rec)
        ));
        return Ok(Collected::Interrupted);
    };

    // Download what each batch produced; say why services may be absent from it.
    let mut files = Vec::new();
    let mut notes = Vec::new();
    for (i, b) in done.iter().enumerate() {
        let suffix = if n > 1 { format!("-{:03}", i + 1) } else { String::new() };
        for (fid, kind) in [(&b.output_file_id, "output"), (&b.error_file_id, "errors")] {
            if let Some(fid) = fid {
                let dest = dir.join(format!("batch-{kind}{suffix}.jsonl"));
                let bytes = ctx.client.download_file(fid, &dest).await?;
                ui.note(format!("downloaded {} ({})", dest.display(), export::size(bytes)));
                files.push(dest);
            }
        }
        if b.status != "completed" {
            let why = b.error_summary().map(|e| format!(": {e}")).unwrap_or_default();
            ui.warn(format!("batch {} ended {}{why}", b.id, b.status));
            notes.push(format!("batch {} ended {}{why}", b.id, b.status));
        }
    }
    let note = if notes.is_empty() {
        "no result for this service in the batch output".to_string()
    } else {
        format!("not run by the batch: {}", notes.join("; "))
    };
    Ok(Collected::Files { files, note })
}

fn ids(r: &Recorded) -> String {
    let v: Vec<&str> = r.parts.iter().filter_map(|p| p.batch_id.as_deref()).collect();
    if v.is_empty() {
        "no batch created yet".into()
    } else {
        v.join(", ")
    }
}

/// Poll every batch until all have ended (Some) or Ctrl-C (None).
async fn wait(ctx: &Ctx, rec: &mut Recorded, poll: Duration, ui: Ui) -> Result<Option<Vec<BatchInfo>>> {
    let total: usize = rec.parts.iter().map(|p| p.requests).sum();
    let bar = (!ui.quiet && std::io::stderr().is_terminal()).then(|| {
        let b = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
        b.set_style(
            ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} requests  {elapsed}  {wide_msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        b.enable_steady_tick(Duration::from_millis(200));
        b
    });
    let mut last_line = String::new();
    // Listen from now on: a Ctrl-C that lands while a poll is in flight is not lost.
    let mut sigint = crate::batch::runner::interrupts();
    loop {
        let mut infos = Vec::new();
        let mut changed = false;
        for p in rec.parts.iter_mut() {
            let id = p.batch_id.as_deref().expect("created before waiting");
            let b = ctx.client.get_batch(id).await?;
            changed |= p.status.as_deref() != Some(b.status.as_str());
            p.status = Some(b.status.clone());
            infos.push(b);
        }
        // The record on disk changes only when a status does, not at every poll.
        if changed {
            save(&ctx.out().path, rec)?;
        }
        let done: u64 = infos.iter().map(|b| b.counts().completed + b.counts().failed).sum();
        let failed: u64 = infos.iter().map(|b| b.counts().failed).sum();
        let statuses = infos.iter().map(|b| b.status.as_str()).collect::<Vec<_>>().join(", ");
        let line = format!("{statuses}: {done}/{total} requests done, {failed} failed");
        match &bar {
            Some(b) => {
                b.set_position(done);
                b.set_message(format!("{statuses}, {failed} failed"));
            }
            None if !ui.quiet && line != last_line => eprintln!("batch {line}"),
            None => {}
        }
        last_line = line;
        if infos.iter().all(BatchInfo::is_terminal) {
            if let Some(b) = bar {
                b.finish_and_clear();
            }
            return Ok(Some(infos));
        }
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            _ = sigint.recv() => {
                if let Some(b) = bar {
                    b.abandon();
                }
                return Ok(None);
            }
        }
    }
}
