//! One file per command: the top layer. Only `ask` and `batch` wire several stages
//! together (and `batch` the parts in `batch/`).

pub mod adopt;
pub mod ask;
pub mod batch;
pub mod check;
pub mod config;
pub mod doctor;
pub mod init;
pub mod render;
pub mod revise;
pub mod shell;
pub mod stages;

use crate::client::Client;
use crate::config::{Env, Settings, Source};
use crate::error::{Error, Result};

/// Resolve the connection settings and build the client. With --replay and no model
/// chosen, the model the fixtures were recorded with is used.
pub fn connect(conn: &crate::cli::ConnArgs, env: &Env) -> Result<(Settings, Client)> {
    let mut settings = crate::config::resolve(&conn.flags(), env)?;
    let mut client = Client::new(settings.client.clone()).map_err(|e| match e {
        // Building the client sends nothing: a --replay folder that is missing, empty or
        // malformed, or a setting the HTTP client refuses, is bad input (exit 2).
        crate::client::ApiError::Replay(msg) | crate::client::ApiError::Config(msg) => Error::Usage(msg),
        e => Error::from(e),
    })?;
    if let Some(dir) = &settings.record {
        client = client.with_recorder(std::sync::Arc::new(crate::output::fixtures::FixtureDir::open(dir)?));
    }
    if settings.model_source == Source::Default
        && let Some(models) = client.replay_models()
        && let [only] = models.as_slice()
    {
        settings.shape.model = only.clone();
        settings.model_source = Source::Replay;
    }
    tracing::info!(base_url = %settings.client.base_url, model = %settings.shape.model, model_source = %settings.model_source, key = settings.key_source.map(|s| s.to_string()).unwrap_or("none".into()), "configuration");
    Ok((settings, client))
}

/// `--max-cost` on the client, refused before anything is sent when it cannot be kept:
/// a model of the run without a price, or no `--max-tokens` to bound each request.
pub fn budgeted(
    client: Client,
    cost: &crate::cli::CostArgs,
    prices: &crate::price::Prices,
    models: &[&str],
    max_tokens: Option<u32>,
) -> Result<Client> {
    let Some(max) = cost.max_cost else { return Ok(client) };
    if let Some(m) = models.iter().find(|m| prices.of(m).is_none()) {
        return Err(Error::usage(format!(
            "--max-cost needs a price for model {m}: give --price IN:OUT (USD per million tokens), e.g. --price 0.15:0.60"
        )));
    }
    if max_tokens.is_none_or(|t| t == 0) {
        return Err(Error::usage(
            "--max-cost needs --max-tokens above 0: without a limit a request's worst case is unknown",
        ));
    }
    Ok(client.with_budget(crate::client::budget::Budget::new(max, prices.clone())))
}

/// What `usage` of `model` cost, in words ("$0.0123"), or why it is not known.
pub fn cost_words(prices: &crate::price::Prices, model: &str, usage: &crate::client::Usage) -> String {
    match usage.priced(prices, model) {
        Some(usd) => crate::price::usd(usd),
        None => format!("cost unknown: no price for model {model} (give --price IN:OUT)"),
    }
}

/// `--context`, `--runbook` and their limits as plain values; the budget from the flag,
/// else `RBPLAN_CONTEXT_MAX_TOKENS`, else the default.
pub fn context_ask(a: &crate::cli::ContextArgs, env: &Env) -> Result<crate::pipeline::ContextAsk> {
    let max = match (a.context_max_tokens, env.get("RBPLAN_CONTEXT_MAX_TOKENS")) {
        (Some(n), _) => n,
        (None, Some((v, src))) => v.trim().parse().map_err(|_| {
            Error::usage(format!(
                "RBPLAN_CONTEXT_MAX_TOKENS={v:?} (from {src}) is not a whole number"
            ))
        })?,
        (None, None) => crate::context::DEFAULT_MAX_TOKENS,
    };
    Ok(crate::pipeline::ContextAsk {
        paths: a.context.clone(),
        runbook: a.runbook.clone(),
        budget: crate::context::Budget {
            max,
            truncate: a.context_truncate,
        },
        redact: !a.no_redact,
    })
}

/// Say on stderr what the context holds: files left out of folders, credentials replaced
/// (where, never what), and that nothing was redacted with `--no-redact`.
pub fn say_context(input: &crate::pipeline::PlanInput, redact: bool, ui: crate::term::Ui) {
    let c = &input.context;
    if c.is_empty() {
        return;
    }
    if let Some(n) = &input.context_tokens {
        ui.note(format!(
            "context: {}, {} tokens ({})",
            crate::term::count(c.files.len() as u64, "file"),
            crate::term::thousands(n.tokens),
            n.how
        ));
    }
    if !c.skipped.is_empty() {
        let shown: Vec<String> = c
            .skipped
            .iter()
            .map(|s| format!("{} ({})", s.path, s.why.as_str()))
            .collect();
        ui.note(format!("context: left out {}", shown.join(", ")));
    }
    say_redactions(c.redactions.iter(), ui);
    if !redact {
        ui.warn("context: --no-redact: the files are sent as they are, credentials included");
    }
}

/// Each credential replaced in a context file: its file, line and kind, never its value.
pub fn say_redactions<'a>(rs: impl Iterator<Item = &'a crate::context::Redaction>, ui: crate::term::Ui) {
    for r in rs {
        ui.warn(format!(
            "context: {} line {}: a {} replaced by [REDACTED:{}] before sending (the value is not shown)",
            r.path, r.line, r.kind, r.kind
        ));
    }
}

/// The context of a plan for `--json`: each file with its hash, what was left out of
/// folders, the credentials replaced (file, line, kind) and the tokens.
pub fn context_json(input: &crate::pipeline::PlanInput) -> serde_json::Value {
    let c = &input.context;
    let files: Vec<serde_json::Value> = c
        .files
        .iter()
        .map(|f| serde_json::json!({"path": f.path, "hash": f.hash, "lang": f.lang, "shared": f.shared}))
        .collect();
    serde_json::json!({
        "files": files,
        "runbook": input.runbook,
        "skipped": c.skipped,
        "redactions": c.redactions,
        "tokens": input.context_tokens.map(|n| n.tokens),
    })
}

/// `--out` names a file (not a folder) in a folder that exists.
pub(super) fn check_out_path(out: &std::path::Path) -> Result<()> {
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    if !parent.is_dir() {
        return Err(Error::usage(format!(
            "cannot write {}: folder {} does not exist",
            out.display(),
            parent.display()
        )));
    }
    if out.is_dir() {
        return Err(Error::usage(format!(
            "--out {} is a folder; give a file name",
            out.display()
        )));
    }
    Ok(())
}
