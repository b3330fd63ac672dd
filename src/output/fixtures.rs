//! `--record DIR`: every exchange as a fixture file, one per distinct request, each
//! response appended in the order it came (a 503 then a 200 replay as they happened).
//! The client hands over exchanges with the key already removed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde_json::Value;

use crate::client::fixture::{
    FORMAT, Fixture, RecordedRequest, RecordedResponse, Recorder, match_key, read_dir_fixtures,
};
use crate::error::{Error, Result};

pub struct FixtureDir {
    dir: PathBuf,
    /// match key → file name, for appending a retry's response to its request's file.
    files: Mutex<HashMap<String, String>>,
}

impl FixtureDir {
    /// The folder (created if needed), with the requests already recorded in it.
    pub fn open(dir: &Path) -> Result<FixtureDir> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating --record {}", dir.display()), e))?;
        let mut files = HashMap::new();
        for (name, f) in read_dir_fixtures(dir).map_err(Error::Usage)? {
            files.insert(match_key(&f.request.body), name);
        }
        Ok(FixtureDir {
            dir: dir.to_path_buf(),
            files: Mutex::new(files),
        })
    }
}

impl Recorder for FixtureDir {
    fn record(&self, request: &Value, response: RecordedResponse) -> std::result::Result<(), String> {
        let key = match_key(request);
        let mut files = self.files.lock().expect("recorder lock");
        let next = files.len() + 1;
        let name = files
            .entry(key.clone())
            .or_insert_with(|| format!("{next:03}-{key}.json"))
            .clone();
        let path = self.dir.join(&name);
        let mut fixture = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice::<Fixture>(&bytes).map_err(|e| format!("{}: {e}", path.display()))?,
            Err(_) => Fixture {
                rbplan_fixture: FORMAT,
                note: String::new(),
                request: RecordedRequest {
                    method: "POST".into(),
                    endpoint: "chat/completions".into(),
                    body: request.clone(),
                },
                responses: Vec::new(),
            },
        };
        fixture.responses.push(response);
        let mut out = serde_json::to_string_pretty(&fixture).expect("fixture serializes");
        out.push('\n');
        super::write_atomic(&path, out.as_bytes()).map_err(|e| format!("{}: {e}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::fixture::{ReplaySet, recorded};
    use reqwest::header::{HeaderMap, HeaderValue};
    use secrecy::SecretString;
    use serde_json::json;

    #[test]
    fn record_keeps_useful_headers_redacts_key_and_replays_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let body = json!({"model":"m","messages":[{"role":"user","content":"hi sk-test-SECRET-123"}]});
        let key: SecretString = "sk-test-SECRET-123".into();
        let rec = FixtureDir::open(dir.path()).unwrap();
        let record = |status: u16, h: &HeaderMap, raw: &[u8]| {
            let (req, resp) = recorded(Some(&key), &body, status, h, raw);
            rec.record(&req, resp).unwrap();
        };
        let mut h = HeaderMap::new();
        h.insert("x-request-id", HeaderValue::from_static("req_9"));
        h.insert("set-cookie", HeaderValue::from_static("session=abc"));
        h.insert("retry-after", HeaderValue::from_static("1"));
        record(503, &h, b"{\"error\":{\"message\":\"busy sk-test-SECRET-123\"}}");
        let ok = json!({"id":"c","choices":[{"message":{"content":"hello"},"finish_reason":"stop"}]});
        record(200, &HeaderMap::new(), ok.to_string().as_bytes());

        let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(files.len(), 1, "both attempts go in one file");
        let text = std::fs::read_to_string(files[0].as_ref().unwrap().path()).unwrap();
        assert!(!text.contains("SECRET"));
        assert!(!text.contains("set-cookie"));
        assert!(text.contains("req_9"));

        let replay = ReplaySet::load(dir.path()).unwrap();
        let body = json!({"model":"m","messages":[{"role":"user","content":"hi [REDACTED]"}]});
        assert_eq!(replay.lookup(&body).unwrap().1.status, 503);
        assert_eq!(replay.lookup(&body).unwrap().1.status, 200);
        assert_eq!(replay.lookup(&body).unwrap().1.status, 200, "the last response repeats");
        assert_eq!(replay.models(), vec!["m".to_string()]);
    }
}
