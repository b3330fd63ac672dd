//! The Files and Batches endpoints, for `rbplan batch --via batch-api`: upload a request
//! file (`purpose=batch`), create a batch, poll it, cancel it, download its output.
//! Same retry rules as chat requests, except that creating a batch is not retried once
//! the request may have reached the server (a duplicate batch costs money).

use std::future::Future;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

use super::http::{HttpTransport, resource_url, send_checked};
use super::{ApiError, Client, ClientConfig, Provider, Transport, wire};

/// A batch as the server describes it.
#[derive(Debug, Clone, Deserialize)]
pub struct BatchInfo {
    pub id: String,
    pub status: BatchStatus,
    #[serde(default)]
    pub output_file_id: Option<String>,
    #[serde(default)]
    pub error_file_id: Option<String>,
    #[serde(default)]
    pub request_counts: Option<Counts>,
    /// Validation errors (status `failed`): `{"data": [{"code","message","line"}]}`.
    #[serde(default)]
    pub errors: Option<Value>,
}

/// Where a batch stands, as the Batch API names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchStatus {
    Validating,
    Failed,
    InProgress,
    Finalizing,
    Completed,
    Expired,
    Cancelling,
    Cancelled,
    /// A status this version of rbplan does not know; waited on like any other.
    #[serde(other)]
    Unknown,
}

impl BatchStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            BatchStatus::Validating => "validating",
            BatchStatus::Failed => "failed",
            BatchStatus::InProgress => "in_progress",
            BatchStatus::Finalizing => "finalizing",
            BatchStatus::Completed => "completed",
            BatchStatus::Expired => "expired",
            BatchStatus::Cancelling => "cancelling",
            BatchStatus::Cancelled => "cancelled",
            BatchStatus::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for BatchStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct Counts {
    #[serde(default)]
    pub completed: u64,
    #[serde(default)]
    pub failed: u64,
}

impl BatchInfo {
    /// No further status change will come.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self.status,
            BatchStatus::Completed | BatchStatus::Failed | BatchStatus::Expired | BatchStatus::Cancelled
        )
    }

    pub fn counts(&self) -> Counts {
        self.request_counts.unwrap_or_default()
    }

    /// The server's validation errors in one line, e.g. "line 3: invalid model (model_not_found)".
    pub fn error_summary(&self) -> Option<String> {
        let data = self.errors.as_ref()?.get("data")?.as_array()?;
        let parts: Vec<String> = data
            .iter()
            .take(5)
            .map(|e| {
                let msg = e.get("message").and_then(Value::as_str).unwrap_or("error");
                let code = e
                    .get("code")
                    .and_then(Value::as_str)
                    .map(|c| format!(" ({c})"))
                    .unwrap_or_default();
                match e.get("line").and_then(Value::as_u64) {
                    Some(l) => format!("line {l}: {msg}{code}"),
                    None => format!("{msg}{code}"),
                }
            })
            .collect();
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

impl Client {
    /// The `url` of each request line and the batch's `endpoint`.
    pub fn batch_endpoint(&self) -> &'static str {
        match self.cfg.provider {
            Provider::OpenAi => "/v1/chat/completions",
            Provider::Azure => "/chat/completions",
        }
    }

    fn http(&self) -> Result<&HttpTransport, ApiError> {
        match &*self.transport {
            Transport::Http(h) => Ok(h),
            Transport::Replay(_) => Err(ApiError::Config(
                "--via batch-api talks to a live server; --replay cannot answer it".into(),
            )),
        }
    }

    /// Upload a request file's bytes as `name`, with `purpose=batch`; returns the file id.
    pub async fn upload_batch_file(&self, name: &str, bytes: Bytes) -> Result<String, ApiError> {
        let h = self.http()?;
        let u = resource_url(&self.cfg, "files");
        let v = self
            .with_retries(true, |_| async {
                // A new body per attempt: a multipart body cannot be replayed.
                let part = reqwest::multipart::Part::stream_with_length(bytes.clone(), bytes.len() as u64)
                    .file_name(name.to_string())
                    .mime_str("application/jsonl")
                    .expect("a valid MIME type");
                let form = reqwest::multipart::Form::new()
                    .text("purpose", "batch")
                    .part("file", part);
                send(&self.cfg, h.http.post(&u).multipart(form), &u).await
            })
            .await
            .map_err(|e| step(format!("uploading {name} (POST {u})"), e))?;
        v.id("a file")
    }

    /// Create a batch over an uploaded file, with a 24 h completion window.
    pub async fn create_batch(&self, input_file_id: &str, metadata: Value) -> Result<BatchInfo, ApiError> {
        let h = self.http()?;
        let u = resource_url(&self.cfg, "batches");
        let body = json!({
            "input_file_id": input_file_id,
            "endpoint": self.batch_endpoint(),
            "completion_window": "24h",
            "metadata": metadata,
        });
        let v = self
            .with_retries(false, |_| async {
                send(&self.cfg, h.http.post(&u).json(&body), &u).await
            })
            .await
            .map_err(|e| step(format!("creating the batch (POST {u})"), e))?;
        v.batch()
    }

    pub async fn get_batch(&self, id: &str) -> Result<BatchInfo, ApiError> {
        let h = self.http()?;
        let u = resource_url(&self.cfg, &format!("batches/{id}"));
        let v = self
            .with_retries(true, |_| async { send(&self.cfg, h.http.get(&u), &u).await })
            .await
            .map_err(|e| step(format!("checking batch {id} (GET {u})"), e))?;
        v.batch()
    }

    /// The most recent batch (among the last 100) created over `input_file_id`, if any.
    pub async fn find_batch_for_file(&self, input_file_id: &str) -> Result<Option<BatchInfo>, ApiError> {
        let h = self.http()?;
        let u = resource_url(&self.cfg, "batches");
        let u = format!("{u}{}limit=100", if u.contains('?') { '&' } else { '?' });
        let v = self
            .with_retries(true, |_| async { send(&self.cfg, h.http.get(&u), &u).await })
            .await
            .map_err(|e| step(format!("listing batches (GET {u})"), e))?;
        let list = v
            .json
            .get("data")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        Ok(list
            .into_iter()
            .filter(|b| b.get("input_file_id").and_then(Value::as_str) == Some(input_file_id))
            .filter_map(|b| serde_json::from_value::<BatchInfo>(b).ok())
            .next())
    }

    pub async fn cancel_batch(&self, id: &str) -> Result<BatchInfo, ApiError> {
        let h = self.http()?;
        let u = resource_url(&self.cfg, &format!("batches/{id}/cancel"));
        let v = self
            .with_retries(true, |_| async { send(&self.cfg, h.http.post(&u), &u).await })
            .await
            .map_err(|e| step(format!("cancelling batch {id} (POST {u})"), e))?;
        v.batch()
    }

    /// Download a file's content into `out` (emptied first at each attempt); returns its
    /// size in bytes. Where `out` lives and how it is put in place is the caller's.
    pub async fn download_file(&self, id: &str, out: &mut tokio::fs::File) -> Result<u64, ApiError> {
        let h = self.http()?;
        let u = resource_url(&self.cfg, &format!("files/{id}/content"));
        let out = tokio::sync::Mutex::new(out);
        self.with_retries(true, |_| async {
            let resp = send_checked(&self.cfg, h.http.get(&u), &u, "waiting for the file").await?;
            let mut out = out.lock().await;
            copy_body(resp, &mut out, self.cfg.idle_timeout).await
        })
        .await
        .map_err(|e| step(format!("downloading file {id} (GET {u})"), e))
    }

    /// Retry what the retry policy allows; `after_send` false retries only failures that
    /// mean the request never arrived (connection refused, or a status the server sent).
    async fn with_retries<T, F, Fut>(&self, after_send: bool, mut f: F) -> Result<T, ApiError>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, ApiError>>,
    {
        let mut attempt = 0u32;
        loop {
            self.gate.wait().await;
            let err = match f(attempt).await {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            // A request that may have reached the server is not sent again blind.
            if !(after_send || matches!(err, ApiError::Connect { .. } | ApiError::Status { .. })) {
                return Err(super::give_up(err, attempt));
            }
            self.back_off(err, attempt).await?;
            attempt += 1;
        }
    }
}

fn step(step: String, source: ApiError) -> ApiError {
    ApiError::Step {
        step,
        source: Box::new(source),
    }
}

/// A Files/Batches reply that was JSON.
struct Replied {
    status: u16,
    request_id: Option<String>,
    json: Value,
}

impl Replied {
    fn bad(&self, expected: &'static str, why: String) -> ApiError {
        ApiError::BadBody {
            status: self.status,
            expected,
            snippet: format!("{why}: {}", crate::util::snippet(&self.json.to_string(), 200)),
            request_id: self.request_id.clone(),
        }
    }

    /// The `id` of the object the reply describes.
    fn id(&self, what: &'static str) -> Result<String, ApiError> {
        self.json
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| self.bad(what, "it has no id".into()))
    }

    fn batch(self) -> Result<BatchInfo, ApiError> {
        serde_json::from_value(self.json.clone()).map_err(|e| self.bad("a batch", e.to_string()))
    }
}

/// Send with the request timeout (the whole reply, not only its head: these bodies are
/// small); any non-2xx status becomes the provider's error, a body that is not JSON a
/// BadBody.
async fn send(cfg: &ClientConfig, rb: reqwest::RequestBuilder, u: &str) -> Result<Replied, ApiError> {
    let rb = rb.timeout(cfg.request_timeout);
    let resp = send_checked(cfg, rb, u, "waiting for the response").await?;
    let status = resp.status().as_u16();
    let request_id = wire::request_id(resp.headers());
    let body = resp.bytes().await.map_err(|e| ApiError::Transport(e.to_string()))?;
    let json = serde_json::from_slice(&body).map_err(|_| ApiError::BadBody {
        status,
        expected: "JSON",
        snippet: wire::body_snippet(&body),
        request_id: request_id.clone(),
    })?;
    Ok(Replied {
        status,
        request_id,
        json,
    })
}

/// Stream a response body into `out`, from its start, under the idle timeout.
async fn copy_body(
    mut resp: reqwest::Response,
    out: &mut tokio::fs::File,
    idle: std::time::Duration,
) -> Result<u64, ApiError> {
    let io = |e: std::io::Error| ApiError::Local(format!("cannot write the downloaded file: {e}"));
    out.set_len(0).await.map_err(io)?;
    out.seek(std::io::SeekFrom::Start(0)).await.map_err(io)?;
    let mut n = 0u64;
    loop {
        match tokio::time::timeout(idle, resp.chunk()).await {
            Err(_) => {
                return Err(ApiError::Timeout {
                    phase: "downloading the file",
                    after: idle,
                });
            }
            Ok(Err(e)) => return Err(ApiError::Transport(e.to_string())),
            Ok(Ok(None)) => break,
            Ok(Ok(Some(c))) => {
                out.write_all(&c).await.map_err(io)?;
                n += c.len() as u64;
            }
        }
    }
    out.flush().await.map_err(io)?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_errors_read_as_one_line() {
        let b: BatchInfo = serde_json::from_value(json!({
            "id": "batch_1", "status": "failed",
            "errors": {"data": [{"code": "invalid_model", "message": "model not found", "line": 2}]}
        }))
        .unwrap();
        assert!(b.is_terminal());
        assert_eq!(b.error_summary().unwrap(), "line 2: model not found (invalid_model)");
    }

    #[test]
    fn azure_paths_carry_the_api_version() {
        let d = std::time::Duration::from_secs(1);
        let cfg = ClientConfig {
            base_url: "https://r.openai.azure.com/".into(),
            api_key: None,
            provider: Provider::Azure,
            api_version: Some("2024-10-21".into()),
            headers: Vec::new(),
            connect_timeout: d,
            request_timeout: d,
            idle_timeout: d,
            max_retries: 0,
            patience: d,
            replay: None,
        };
        assert_eq!(
            resource_url(&cfg, "batches"),
            "https://r.openai.azure.com/openai/batches?api-version=2024-10-21"
        );
    }
}
