//! Batch API and `vllm run-batch` output files, joined to the input by `custom_id`
//! (output order is not guaranteed). The index holds only where each line is, so a
//! large output is never all in memory; a line is read again when its item runs.
//!
//! Output line: `{"id","custom_id","response":{"status_code","request_id","body"}|null,
//! "error":{"code","message"}|"text"|null}`. vLLM puts errors inline, with the error
//! as a string and a 400 response with no body.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use reqwest::header::HeaderMap;
use serde::Deserialize;
use serde_json::Value;

use super::export::{self, Writer};
use crate::batch::Ctx;
use crate::batch::items::Manifest;
use crate::client::{ApiError, ChatRequest, ChatResult, request_body, wire};
use crate::error::{Error, Result};
use crate::repair::{Answer, LiveSource, Source, Stop, Target};
use crate::spec::Spec;
use crate::term::Ui;

/// Output files joined by custom_id, and where exported repairs go.
pub struct Imported {
    pub index: Index,
    /// Why an item has no line in the output (expired, cancelled, failed validation…).
    pub missing_note: String,
    repairs: Option<(PathBuf, Mutex<Option<Writer>>)>,
}

impl Imported {
    pub fn new(files: &[PathBuf], missing_note: String, export_repairs: Option<&Path>, ctx: &Ctx) -> Result<Imported> {
        Ok(Imported {
            index: Index::build(files)?,
            missing_note,
            repairs: export_repairs.map(|p| {
                let w = Writer::new(p, export::Limits::default(), ctx.client.batch_endpoint());
                (p.to_path_buf(), Mutex::new(Some(w)))
            }),
        })
    }

    /// Move the exported repair requests into place and say what to run next.
    pub fn finish_repairs(&self, ui: Ui) -> Result<()> {
        let Some((path, w)) = &self.repairs else { return Ok(()) };
        let Some(w) = w.lock().expect("not poisoned").take() else {
            return Ok(());
        };
        let parts = w.finish()?;
        if parts.is_empty() {
            ui.note(format!("no repairs needed: {} not written", path.display()));
        }
        for p in &parts {
            ui.note(format!(
                "wrote {} to {}: run them as a batch, then rerun with its output as one more --import",
                crate::term::count(p.requests as u64, "repair request"),
                p.path.display()
            ));
        }
        Ok(())
    }
}

/// Refuse output files that answer none of the input's services (the wrong input file,
/// most likely), and warn about lines that answer nothing in it.
pub fn check_matches(imp: &Imported, manifest: &Manifest, files: &[PathBuf]) -> Result<()> {
    let names: std::collections::HashSet<&str> = manifest.entries.iter().map(|e| e.name.as_str()).collect();
    let known = |id: &str| {
        names.contains(id)
            || id
                .match_indices(export::REPAIR_MARK)
                .any(|(i, _)| names.contains(&id[..i]))
    };
    let matched = names.iter().filter(|n| imp.index.contains(n)).count();
    let stray = imp.index.ids().filter(|id| !known(id)).count();
    let list = files
        .iter()
        .map(|f| f.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    if matched == 0 && imp.index.lines > 0 {
        return Err(Error::usage(format!(
            "none of the {} lines in {list} has a custom_id naming a service in {}; was it made from another input?",
            imp.index.lines,
            manifest.path.display()
        )));
    }
    if stray > 0 {
        say!(
            "warning: {stray} line(s) in {list} answer no service in {}; ignored",
            manifest.path.display()
        );
    }
    Ok(())
}

/// Answers for one item from the output files: its first answer, then every repair round
/// the files answer (`NAME::repair-N…`). The rounds after those are asked live, or, with
/// --export-repairs, the next one is written out as a request file and repair stops.
pub struct FileSource<'a> {
    imp: &'a Imported,
    name: &'a str,
    spec: &'a Spec,
    /// Reading from the files; false once a round is not in them.
    in_files: bool,
    live: LiveSource<'a>,
}

impl<'a> FileSource<'a> {
    pub fn new(imp: &'a Imported, ctx: &'a Ctx, name: &'a str) -> Self {
        FileSource {
            imp,
            name,
            spec: &ctx.checker.spec,
            in_files: true,
            live: LiveSource::new(&ctx.client, None),
        }
    }

    /// The custom_id of the request for `at`.
    fn id(&self, at: Target) -> String {
        match at.round {
            0 => self.name.to_string(),
            n => export::repair_id(
                self.name,
                n as usize,
                at.section.map(|i| self.spec.sections[i].id.as_str()),
            ),
        }
    }

    fn in_the_files(&self, at: Target) -> Result<Answer> {
        let id = self.id(at);
        if at.attempt > 0 {
            return Ok(Answer::Skipped(None)); // one line per request: nothing to ask again
        }
        Ok(match (self.imp.index.get(&id)?, at.round) {
            (Some(Line::Ok(c)), _) => Answer::Reply(c),
            (Some(Line::Failed(m)), 0) => Answer::Failed(ApiError::InBatch(m)),
            (Some(Line::Failed(m)), _) => Answer::Skipped(Some(format!("{id} failed in the batch: {m}"))),
            (None, 0) => Answer::Failed(ApiError::Unanswered(self.imp.missing_note.clone())),
            (None, _) => Answer::Skipped(None),
        })
    }

    /// The round is not in the files: write it out as the next batch file and stop.
    fn export(&self, path: &Path, w: &Mutex<Option<Writer>>, requests: &[(Target, ChatRequest)]) -> Result<Stop> {
        let mut guard = w.lock().expect("not poisoned");
        let w = guard.as_mut().expect("open until the run ends");
        for (at, req) in requests {
            let body = request_body(&ChatRequest {
                stream: false,
                ..req.clone()
            });
            w.push(&self.id(*at), &body)?;
        }
        Ok(Stop::Exported {
            round: requests.first().map_or(1, |(at, _)| at.round),
            path: path.to_path_buf(),
        })
    }
}

impl Source for FileSource<'_> {
    async fn answer(&mut self, at: Target, req: &ChatRequest) -> Result<Answer> {
        if self.in_files {
            self.in_the_files(at)
        } else {
            self.live.answer(at, req).await
        }
    }

    async fn begin_round(&mut self, requests: &[(Target, ChatRequest)]) -> Result<Option<Stop>> {
        if !self.in_files || requests.iter().any(|(at, _)| self.imp.index.contains(&self.id(*at))) {
            return Ok(None);
        }
        self.in_files = false;
        match &self.imp.repairs {
            Some((path, w)) => self.export(path, w, requests).map(Some),
            None => Ok(None),
        }
    }
}

/// What the batch said about one request.
#[derive(Debug, Clone)]
pub enum Line {
    Ok(ChatResult),
    /// Failed in the batch: the provider's message, with status and request id.
    Failed(String),
}

#[derive(Debug, Clone, Copy)]
struct Loc {
    file: usize,
    offset: u64,
}

pub struct Index {
    files: Vec<PathBuf>,
    at: HashMap<String, Vec<Loc>>,
    /// Lines read, over every file.
    pub lines: usize,
}

#[derive(Deserialize)]
struct IdOnly {
    custom_id: String,
}

#[derive(Deserialize)]
struct OutLine {
    custom_id: String,
    #[serde(default)]
    response: Option<Response>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct Response {
    status_code: u16,
    #[serde(default)]
    request_id: Option<String>,
    /// Kept as the text it was, and parsed once, by the same code as a live reply.
    #[serde(default)]
    body: Option<Box<serde_json::value::RawValue>>,
}

impl Index {
    /// Read every file once, noting where each custom_id's lines are. A line that is not
    /// JSON with a custom_id is an error naming the file and line.
    pub fn build(files: &[PathBuf]) -> Result<Index> {
        let mut at: HashMap<String, Vec<Loc>> = HashMap::new();
        let mut lines = 0;
        for (fi, path) in files.iter().enumerate() {
            let f = File::open(path).map_err(|e| Error::io(format!("cannot open {}", path.display()), e))?;
            let mut r = BufReader::new(f);
            let (mut offset, mut no, mut buf) = (0u64, 0usize, Vec::new());
            loop {
                buf.clear();
                let n = r
                    .read_until(b'\n', &mut buf)
                    .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
                if n == 0 {
                    break;
                }
                no += 1;
                let start = offset;
                offset += n as u64;
                if buf.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let id: IdOnly = serde_json::from_slice(&buf).map_err(|e| {
                    Error::input(
                        path,
                        Some(no),
                        format!("not a batch output line (JSON with a custom_id): {e}"),
                    )
                })?;
                lines += 1;
                at.entry(id.custom_id).or_default().push(Loc {
                    file: fi,
                    offset: start,
                });
            }
        }
        Ok(Index {
            files: files.to_vec(),
            at,
            lines,
        })
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.at.keys().map(String::as_str)
    }

    pub fn contains(&self, custom_id: &str) -> bool {
        self.at.contains_key(custom_id)
    }

    /// The answer for `custom_id`. When a request appears more than once (in both an
    /// output and an error file, say), a successful answer wins.
    pub fn get(&self, custom_id: &str) -> Result<Option<Line>> {
        let Some(locs) = self.at.get(custom_id) else {
            return Ok(None);
        };
        let mut first = None;
        for loc in locs {
            let a = self.read(loc)?;
            if matches!(a, Line::Ok(_)) {
                return Ok(Some(a));
            }
            first.get_or_insert(a);
        }
        Ok(first)
    }

    fn read(&self, loc: &Loc) -> Result<Line> {
        let path = &self.files[loc.file];
        let io = |e| Error::io(format!("cannot read {}", path.display()), e);
        let mut f = File::open(path).map_err(io)?;
        f.seek(SeekFrom::Start(loc.offset)).map_err(io)?;
        let mut line = Vec::new();
        BufReader::new(f.by_ref()).read_until(b'\n', &mut line).map_err(io)?;
        let out: OutLine = serde_json::from_slice(&line)
            .map_err(|e| Error::input(path, None, format!("a batch output line changed while reading: {e}")))?;
        Ok(answer_of(out))
    }
}

fn answer_of(out: OutLine) -> Line {
    let rid = out.response.as_ref().and_then(|r| r.request_id.clone());
    let with_rid = |m: String| match &rid {
        Some(r) => format!("{m} [request id {r}]"),
        None => m,
    };
    if let Some(e) = out.error.filter(|e| !e.is_null()) {
        let msg = match &e {
            Value::String(s) => s.clone(),
            v => {
                let m = v.get("message").and_then(Value::as_str).unwrap_or("error");
                match v.get("code").and_then(Value::as_str) {
                    Some(c) => format!("{m} ({c})"),
                    None => m.to_string(),
                }
            }
        };
        return Line::Failed(with_rid(msg));
    }
    let Some(resp) = out.response else {
        return Line::Failed(format!("no response for {:?} in the output", out.custom_id));
    };
    let body = resp.body.as_ref().map_or(&b""[..], |b| b.get().as_bytes());
    let headers = HeaderMap::new();
    let r = if (200..300).contains(&resp.status_code) {
        wire::parse_completion(resp.status_code, &headers, body)
    } else {
        Err(wire::status_error(resp.status_code, &headers, body))
    };
    match r {
        Ok(mut c) => {
            c.request_id = rid.or(c.request_id);
            Line::Ok(c)
        }
        Err(e) => Line::Failed(with_rid(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ok_line(id: &str, text: &str) -> String {
        json!({"id": "b1", "custom_id": id, "response": {"status_code": 200, "request_id": "req-1", "body": {
            "id": "chatcmpl-1", "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}}}, "error": null})
        .to_string()
    }

    #[test]
    fn joins_by_custom_id_in_any_order_and_reads_each_error_shape() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out.jsonl");
        let errs = d.path().join("errors.jsonl");
        let text = [
            ok_line("b", "B plan"),
            json!({"id": "x", "custom_id": "c", "response": {"status_code": 429, "request_id": "req-9",
                "body": {"error": {"message": "Rate limit", "type": "tokens"}}}, "error": null})
            .to_string(),
            String::new(),
            ok_line("a", "A plan"),
            json!({"id": "v", "custom_id": "d", "response": {"status_code": 400, "request_id": "vllm-1", "body": null},
                "error": "prompt too long"})
            .to_string(),
        ]
        .join("\n");
        std::fs::write(&out, text).unwrap();
        std::fs::write(
            &errs,
            json!({"id": "e", "custom_id": "e", "response": null,
                "error": {"code": "batch_expired", "message": "This request could not be executed before the completion window expired."}})
            .to_string()
                + "\n"
                + &ok_line("c", "C plan after all"),
        )
        .unwrap();
        let ix = Index::build(&[out, errs]).unwrap();
        assert_eq!(ix.lines, 6);
        let text_of = |id: &str| match ix.get(id).unwrap() {
            Some(Line::Ok(c)) => c.text,
            other => panic!("{id}: {other:?}"),
        };
        let failure = |id: &str| match ix.get(id).unwrap() {
            Some(Line::Failed(m)) => m,
            other => panic!("{id}: {other:?}"),
        };
        assert_eq!(text_of("a"), "A plan");
        assert_eq!(text_of("b"), "B plan");
        assert_eq!(text_of("c"), "C plan after all", "a success beats an earlier failure");
        assert_eq!(failure("d"), "prompt too long [request id vllm-1]");
        assert!(failure("e").contains("(batch_expired)"), "{}", failure("e"));
        assert!(ix.get("zzz").unwrap().is_none());
        match ix.get("a").unwrap() {
            Some(Line::Ok(c)) => {
                assert_eq!(c.request_id.as_deref(), Some("req-1"));
                assert_eq!(c.usage.unwrap().total_tokens, 7);
            }
            _ => unreachable!(),
        }
    }

    #[test]
    fn a_malformed_line_names_the_file_and_line() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out.jsonl");
        std::fs::write(&out, format!("{}\n{{\"custom_id\": 3}}\n", ok_line("a", "x"))).unwrap();
        let e = Index::build(std::slice::from_ref(&out)).err().unwrap().to_string();
        assert!(e.contains("out.jsonl:2: not a batch output line"), "{e}");
    }
}
