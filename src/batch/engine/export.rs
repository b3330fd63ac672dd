//! Batch API request files: one chat-completions request per line,
//! `{"custom_id","method":"POST","url","body"}`, split at the provider's limits (by
//! default 50,000 requests and 200 MB per file). `vllm run-batch` reads the same format.
//! Parts are written to temp files and renamed into place only when complete.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use tempfile::NamedTempFile;

use crate::batch::Ctx;
use crate::batch::items::{self, Manifest};
use crate::client::{ChatRequest, Message, request_body};
use crate::error::{Error, Result};
use crate::output;
use crate::term::{Ui, print_stdout};
use sha2::{Digest, Sha256};

/// Repair requests are `NAME::repair-ROUND`, or `NAME::repair-ROUND::SECTION` when
/// sections are asked for one at a time.
pub const REPAIR_MARK: &str = "::repair-";

pub fn repair_id(name: &str, round: usize, section: Option<&str>) -> String {
    match section {
        Some(s) => format!("{name}{REPAIR_MARK}{round}::{s}"),
        None => format!("{name}{REPAIR_MARK}{round}"),
    }
}

/// The chat-completions body for one conversation, as a live request would send it.
pub fn body(ctx: &Ctx, model: &str, messages: Vec<Message>) -> Value {
    request_body(&ChatRequest::new(ctx.settings.repair.shape.for_model(model), messages))
}

/// One first-answer request per service, streamed from the input. Services with a current
/// plan in the output folder are left out (`Ctx::keeps`); returns the parts written and
/// how many were left out.
/// A Batch API file (and a `vllm run-batch` run) serves one model, so when services use
/// several models each gets its own file: `requests-<model>.jsonl`.
pub fn write_requests(ctx: &Ctx, manifest: &Manifest, path: &Path, limits: Limits) -> Result<(Vec<Written>, usize)> {
    let mut all: std::collections::BTreeSet<&str> = manifest.models.iter().map(String::as_str).collect();
    if manifest.uses_default_model {
        all.insert(ctx.default_model());
    }
    let per_model = all.len() > 1;
    let mut writers: std::collections::BTreeMap<String, Writer> = Default::default();
    let mut kept = 0;
    for item in items::open(&manifest.path)? {
        let item = item?;
        let model = ctx.model_of(&item);
        let input = ctx.item_input(&item, &model)?;
        if ctx.keeps(&item, &input, &model) {
            kept += 1;
            continue;
        }
        let messages = ctx.template.messages(&input.inputs)?;
        let w = writers.entry(model.clone()).or_insert_with(|| {
            let p = if per_model {
                model_path(path, &model)
            } else {
                path.to_path_buf()
            };
            Writer::new(&p, limits, ctx.client.batch_endpoint())
        });
        w.push(&item.name, &body(ctx, &model, messages))?;
    }
    let mut parts = Vec::new();
    for (_, w) in writers {
        parts.extend(w.finish()?);
    }
    Ok((parts, kept))
}

/// `requests.jsonl` for model `gpt-4o` → `requests-gpt-4o.jsonl`.
fn model_path(path: &Path, model: &str) -> PathBuf {
    with_suffix(path, &items::slug(model))
}

/// `stem.ext` → `stem-SUFFIX.ext`.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = path
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    path.with_file_name(format!("{stem}-{suffix}{ext}"))
}

/// Say what was written and what to run next.
pub fn summarize(parts: &[Written], kept: usize, manifest: &Manifest, model: &str, json: bool, ui: Ui) -> Result<()> {
    if json {
        let v = json!({
            "parts": parts.iter().map(|p| json!({"path": p.path, "requests": p.requests, "bytes": p.bytes})).collect::<Vec<_>>(),
            "requests": parts.iter().map(|p| p.requests).sum::<usize>(),
            "kept": kept,
        });
        print_stdout(&serde_json::to_string_pretty(&v).expect("JSON serializes"))?;
    }
    if parts.is_empty() {
        ui.note(format!(
            "nothing to export: all {kept} plans in --out-dir are current (use --force to export them all)"
        ));
        return Ok(());
    }
    for p in parts {
        ui.note(format!(
            "wrote {} ({}) to {}",
            crate::term::count(p.requests as u64, "request"),
            size(p.bytes),
            p.path.display()
        ));
    }
    if kept > 0 {
        ui.note(format!("left out {kept} services whose plans in --out-dir are current"));
    }
    let first = parts[0].path.display();
    let (each, model) = if parts.len() > 1 {
        (" each file", "<its model>".to_string())
    } else {
        ("", model.to_string())
    };
    ui.note(format!(
        "next: submit{each} to the Batch API, or run `vllm run-batch -i {first} -o out.jsonl --model {model}`; then\n  rbplan batch {} --import out.jsonl --out-dir DIR  (one --import per output file)",
        manifest.path.display()
    ));
    Ok(())
}

/// Bytes for people: "840 B", "12.3 kB", "4.1 MB".
pub fn size(n: u64) -> String {
    match n {
        0..1_000 => format!("{n} B"),
        1_000..1_000_000 => format!("{:.1} kB", n as f64 / 1e3),
        _ => format!("{:.1} MB", n as f64 / 1e6),
    }
}

/// The OpenAI Batch API's per-file limits.
pub const MAX_REQUESTS: usize = 50_000;
pub const MAX_BYTES: u64 = 200 * 1000 * 1000;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_requests: usize,
    pub max_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_requests: MAX_REQUESTS,
            max_bytes: MAX_BYTES,
        }
    }
}

struct Part {
    file: BufWriter<NamedTempFile>,
    requests: usize,
    bytes: u64,
    /// Of the bytes written, so nobody reads the file again to fingerprint it.
    sha256: Sha256,
}

/// One line of a request file, fields in the documented order (custom_id first).
#[derive(serde::Serialize)]
struct RequestLine<'a> {
    custom_id: &'a str,
    method: &'static str,
    url: &'a str,
    body: &'a Value,
}

/// Writes request lines into as many parts as the limits need.
pub struct Writer {
    path: PathBuf,
    limits: Limits,
    url: String,
    parts: Vec<Part>,
}

/// A finished part: where it is and how many requests it holds.
#[derive(Debug, Clone)]
pub struct Written {
    pub path: PathBuf,
    pub requests: usize,
    pub bytes: u64,
    /// sha256 of the file's bytes, in hex.
    pub sha256: String,
}

impl Writer {
    /// `url` is the request line's url (`/v1/chat/completions`, or Azure's `/chat/completions`).
    pub fn new(path: &Path, limits: Limits, url: &str) -> Writer {
        Writer {
            path: path.to_path_buf(),
            limits,
            url: url.to_string(),
            parts: Vec::new(),
        }
    }

    /// Add one request. A single request larger than the byte limit is an error.
    pub fn push(&mut self, custom_id: &str, body: &Value) -> Result<()> {
        let mut line = serde_json::to_vec(&RequestLine {
            custom_id,
            method: "POST",
            url: &self.url,
            body,
        })
        .expect("a request line serializes");
        line.push(b'\n');
        let n = line.len() as u64;
        if n > self.limits.max_bytes {
            return Err(Error::usage(format!(
                "the request for {custom_id:?} is {n} bytes, more than the {} bytes allowed per file",
                self.limits.max_bytes
            )));
        }
        let full = self
            .parts
            .last()
            .is_none_or(|p| p.requests >= self.limits.max_requests || p.bytes + n > self.limits.max_bytes);
        if full {
            let tmp = output::temp_beside(&self.path)
                .map_err(|e| Error::io(format!("cannot create a file beside {}", self.path.display()), e))?;
            self.parts.push(Part {
                file: BufWriter::new(tmp),
                requests: 0,
                bytes: 0,
                sha256: Sha256::new(),
            });
        }
        let part = self.parts.last_mut().expect("a part exists");
        part.file
            .write_all(&line)
            .map_err(|e| Error::io(format!("cannot write {}", self.path.display()), e))?;
        part.sha256.update(&line);
        part.requests += 1;
        part.bytes += n;
        Ok(())
    }

    /// The name of part `i` (1-based) of `n`: the path itself when there is one part,
    /// else `stem-001.jsonl`, `stem-002.jsonl`…
    pub fn part_path(path: &Path, i: usize, n: usize) -> PathBuf {
        if n <= 1 {
            return path.to_path_buf();
        }
        with_suffix(path, &format!("{i:03}"))
    }

    /// Move every part into place. With no requests, nothing is written.
    pub fn finish(self) -> Result<Vec<Written>> {
        let n = self.parts.len();
        let mut out = Vec::new();
        for (i, p) in self.parts.into_iter().enumerate() {
            let dest = Self::part_path(&self.path, i + 1, n);
            let err = |e: std::io::Error| Error::io(format!("cannot write {}", dest.display()), e);
            let tmp = p.file.into_inner().map_err(|e| err(e.into_error()))?;
            tmp.as_file().sync_all().map_err(err)?;
            tmp.persist(&dest).map_err(|e| err(e.error))?;
            out.push(Written {
                path: dest,
                requests: p.requests,
                bytes: p.bytes,
                sha256: crate::util::hex(&p.sha256.finalize()),
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(p: &Path) -> Vec<Value> {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn splits_at_the_request_limit_and_names_the_parts() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("req.jsonl");
        let limits = Limits {
            max_requests: 2,
            max_bytes: MAX_BYTES,
        };
        let mut w = Writer::new(&path, limits, "/v1/chat/completions");
        for i in 0..5 {
            w.push(&format!("svc-{i}"), &json!({"model": "m"})).unwrap();
        }
        let parts = w.finish().unwrap();
        let counts: Vec<usize> = parts.iter().map(|p| p.requests).collect();
        assert_eq!(counts, [2, 2, 1]);
        assert_eq!(parts[0].path, d.path().join("req-001.jsonl"));
        assert_eq!(parts[2].path, d.path().join("req-003.jsonl"));
        assert!(!path.exists(), "one name per part, no unsplit file");
        let first = lines(&parts[1].path);
        assert_eq!(first[0]["custom_id"], "svc-2");
        assert_eq!(first[0]["method"], "POST");
        assert_eq!(first[0]["url"], "/v1/chat/completions");
        assert_eq!(first[0]["body"]["model"], "m");
    }

    #[test]
    fn splits_at_the_byte_limit_and_refuses_a_request_over_it() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("req.jsonl");
        let body = json!({"x": "y".repeat(100)});
        let one = serde_json::to_vec(&json!({"custom_id": "a", "method": "POST", "url": "/u", "body": body}))
            .unwrap()
            .len() as u64
            + 1;
        let limits = Limits {
            max_requests: 100,
            max_bytes: one * 2,
        };
        let mut w = Writer::new(&path, limits, "/u");
        for id in ["a", "b", "c"] {
            w.push(id, &body).unwrap();
        }
        let parts = w.finish().unwrap();
        assert_eq!(parts.iter().map(|p| p.requests).collect::<Vec<_>>(), [2, 1]);
        assert!(
            parts
                .iter()
                .all(|p| std::fs::metadata(&p.path).unwrap().len() <= one * 2)
        );

        let mut w = Writer::new(
            &path,
            Limits {
                max_requests: 10,
                max_bytes: 10,
            },
            "/u",
        );
        let e = w.push("a", &body).unwrap_err().to_string();
        assert!(e.contains("\"a\"") && e.contains("bytes"), "{e}");
    }

    #[test]
    fn one_part_keeps_the_given_name_and_nothing_is_left_half_written() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("req.jsonl");
        let mut w = Writer::new(&path, Limits::default(), "/u");
        w.push("a", &json!({})).unwrap();
        // Dropped before finish: no file, no temp file.
        drop(w);
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
        let mut w = Writer::new(&path, Limits::default(), "/u");
        w.push("a", &json!({})).unwrap();
        let parts = w.finish().unwrap();
        assert_eq!(parts[0].path, path);
        assert_eq!(lines(&path).len(), 1);
    }
}
