//! One file per command: the top layer. Only `ask` and `batch` wire several stages
//! together (and `batch` the parts in `batch/`).

pub mod ask;
pub mod batch;
pub mod check;
pub mod doctor;
pub mod render;
pub mod revise;
pub mod shell;

use crate::client::Client;
use crate::config::{self, Env, Settings, Source};
use crate::error::{Error, Result};

/// Resolve the connection settings and build the client. With --replay and no model
/// chosen, the model the fixtures were recorded with is used.
pub fn connect(conn: &crate::cli::ConnArgs, env: &Env) -> Result<(Settings, Client)> {
    let mut settings = config::resolve(&conn.flags(), env)?;
    if let Some(k) = &settings.client.api_key {
        use secrecy::ExposeSecret;
        crate::logging::register_secret(k.expose_secret());
    }
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
