//! Where a batch's answers come from, beside the live chat API (which is
//! `repair::LiveSource`, one request per call through the shared client):
//!
//! - `export`: no answers; write the first requests as Batch API request files;
//! - `import`: answers from Batch API or `vllm run-batch` output files, joined by
//!   custom_id, with the rounds they lack asked live or exported again;
//! - `batch_api`: upload, create, poll and download through `/v1/files` and
//!   `/v1/batches`, then import what came back.

pub mod batch_api;
pub mod export;
pub mod import;

use serde::Serialize;

/// The engine of a run, as the report names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Engine {
    Live,
    Import,
    BatchApi,
}

impl std::fmt::Display for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Engine::Live => "live",
            Engine::Import => "import",
            Engine::BatchApi => "batch-api",
        })
    }
}
