//! `--via batch-api`: export the requests, upload them (`/v1/files`, purpose batch),
//! create the batches (`/v1/batches`, 24 h window), poll until each ends, download the
//! output and error files, and hand them to the import engine. The batch ids are
//! recorded in `DIR/batch-api.json` as soon as they exist, so a rerun resumes them
//! instead of paying twice; `--cancel` cancels them.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::export::{self, Limits};
use crate::batch::Ctx;
use crate::batch::items::Manifest;
use crate::client::batches::{BatchInfo, BatchStatus};
use crate::error::{Error, Outcome, Result};
use crate::output;
use crate::term::{Ui, count};

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
    pub status: Option<BatchStatus>,
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
        if b.is_terminal() || b.status == BatchStatus::Cancelling {
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
    let Some(mut rec) = to_submit(ctx, manifest, limits, ui)? else {
        return Ok(Collected::Files {
            files: Vec::new(),
            note: "not submitted".into(),
        });
    };
    let n = rec.parts.len();
    for i in 0..n {
        let meta = json!({
            "rbplan_input": manifest.path.file_name().map(|f| f.to_string_lossy()).unwrap_or_default(),
            "part": format!("{}/{n}", i + 1),
        });
        create(ctx, &mut rec, i, meta, ui).await?;
    }
    let Some(done) = wait(ctx, &mut rec, poll, ui).await? else {
        ui.warn(format!(
            "stopped waiting; the batch keeps running at the provider. Rerun the same command to resume it, \
             or add --cancel to cancel it ({})",
            ids(&rec)
        ));
        return Ok(Collected::Interrupted);
    };
    download(ctx, dir, &done, ui).await
}

/// The record of what to submit: the one recorded, if the requests are the same and not
/// yet imported (a resume); else a new one over freshly written request files. None when
/// every plan is current.
fn to_submit(ctx: &Ctx, manifest: &Manifest, limits: Limits, ui: Ui) -> Result<Option<Recorded>> {
    let dir = &ctx.out().path;
    // Render the requests into a scratch folder first, to compare with what was sent.
    let scratch = tempfile::Builder::new()
        .prefix(output::TMP_PREFIX)
        .tempdir_in(dir)
        .map_err(|e| Error::io(format!("creating a folder in {}", dir.display()), e))?;
    let (parts, kept) = export::write_requests(ctx, manifest, &scratch.path().join("batch-requests.jsonl"), limits)?;
    let hash = fingerprint(&parts);
    match load(dir)? {
        Some(r) if !r.imported && r.requests_sha256 == hash => {
            ui.note(format!(
                "resuming the batch recorded in {} ({})",
                state_path(dir).display(),
                ids(&r)
            ));
            Ok(Some(r))
        }
        Some(r) if !r.imported && !ctx.force => Err(Error::usage(format!(
            "{} records batch(es) {} that are not imported yet, made from other requests (the input, \
             template or model changed). Rerun the old command to collect them, --cancel to cancel them, \
             or --force to submit a new batch anyway",
            state_path(dir).display(),
            ids(&r)
        ))),
        _ if parts.is_empty() => {
            ui.note(format!(
                "nothing to submit: all {kept} plans in {} are current",
                dir.display()
            ));
            Ok(None)
        }
        _ => {
            if kept > 0 {
                ui.note(format!("{kept} services have current plans and are not submitted"));
            }
            new_record(dir, &parts, hash).map(Some)
        }
    }
}

/// Move the request files in beside the plans, where the record points.
fn new_record(dir: &Path, parts: &[export::Written], hash: String) -> Result<Recorded> {
    let mut rec = Recorded {
        requests_sha256: hash,
        parts: Vec::new(),
        imported: false,
    };
    for p in parts {
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
    Ok(rec)
}

/// Upload part `i` and create its batch, unless done already; each id is recorded as
/// soon as it exists.
async fn create(ctx: &Ctx, rec: &mut Recorded, i: usize, meta: serde_json::Value, ui: Ui) -> Result<()> {
    let dir = &ctx.out().path;
    if rec.parts[i].batch_id.is_some() {
        return Ok(());
    }
    if rec.parts[i].input_file_id.is_none() {
        upload(ctx, dir, &mut rec.parts[i], ui).await?;
        save(dir, rec)?;
    }
    let part = &mut rec.parts[i];
    let fid = part.input_file_id.clone().expect("uploaded above");
    // A run that stopped between creating the batch and recording it (a crash, a
    // timeout on the create call) left a batch over this file: adopt it, don't pay twice.
    if part.attempted_create
        && let Some(b) = ctx.client.find_batch_for_file(&fid).await?
    {
        ui.note(format!("found batch {} ({}) already created for {fid}", b.id, b.status));
        part.record(&b);
        return save(dir, rec);
    }
    part.attempted_create = true;
    save(dir, rec)?;
    let b = ctx.client.create_batch(&fid, meta).await?;
    ui.note(format!("created batch {} ({})", b.id, b.status));
    rec.parts[i].record(&b);
    save(dir, rec)
}

async fn upload(ctx: &Ctx, dir: &Path, part: &mut Part, ui: Ui) -> Result<()> {
    let file = dir.join(&part.file);
    let bytes = std::fs::read(&file).map_err(|e| Error::io(format!("reading {}", file.display()), e))?;
    let id = ctx.client.upload_batch_file(&part.file, bytes.into()).await?;
    ui.note(format!(
        "uploaded {} ({}) as {id}",
        file.display(),
        count(part.requests as u64, "request")
    ));
    part.input_file_id = Some(id);
    Ok(())
}

impl Part {
    fn record(&mut self, b: &BatchInfo) {
        self.batch_id = Some(b.id.clone());
        self.status = Some(b.status);
    }
}

/// Download what each batch produced, each file put in place atomically; say why services
/// may be absent from it.
async fn download(ctx: &Ctx, dir: &Path, done: &[BatchInfo], ui: Ui) -> Result<Collected> {
    let mut files = Vec::new();
    let mut notes = Vec::new();
    for (i, b) in done.iter().enumerate() {
        let suffix = if done.len() > 1 {
            format!("-{:03}", i + 1)
        } else {
            String::new()
        };
        for (fid, kind) in [(&b.output_file_id, "output"), (&b.error_file_id, "errors")] {
            if let Some(fid) = fid {
                let dest = dir.join(format!("batch-{kind}{suffix}.jsonl"));
                let bytes = download_to(ctx, fid, &dest).await?;
                ui.note(format!("downloaded {} ({})", dest.display(), export::size(bytes)));
                files.push(dest);
            }
        }
        if b.status != BatchStatus::Completed {
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

/// One file, into a temp file beside `dest`, renamed into place once whole and synced.
async fn download_to(ctx: &Ctx, fid: &str, dest: &Path) -> Result<u64> {
    let io = |e: std::io::Error| Error::io(format!("writing {}", dest.display()), e);
    let tmp = output::temp_beside(dest).map_err(io)?;
    let mut f = tokio::fs::File::from_std(tmp.reopen().map_err(io)?);
    let n = ctx.client.download_file(fid, &mut f).await?;
    f.sync_all().await.map_err(io)?;
    drop(f);
    tmp.persist(dest).map_err(|e| io(e.error))?;
    Ok(n)
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
        crate::batch::progress::bar(
            total,
            "{spinner} [{bar:30}] {pos}/{len} requests  {elapsed}  {wide_msg}",
        )
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
            changed |= p.status != Some(b.status);
            p.status = Some(b.status);
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
            None if !ui.quiet && line != last_line => say!("batch {line}"),
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
