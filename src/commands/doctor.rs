//! `rbplan doctor`: is the configuration sane, does the server answer, is the key
//! accepted, does the model exist? Plain words, and never the key.

use std::time::Instant;

use serde_json::Value;

use super::connect;
use crate::cli::DoctorArgs;
use crate::client::{ApiError, ChatRequest, Client, Message, Provider};
use crate::config::{Env, Settings};
use crate::error::{Error, Outcome, Result};
use crate::logging::scrub;
use crate::term::print_stdout;

pub async fn run(args: DoctorArgs) -> Result<Outcome> {
    let env = Env::load()?;
    if args.conn.replay.is_some() || args.conn.record.is_some() {
        return Err(Error::usage("doctor checks a live server; drop --replay/--record"));
    }
    let (s, client) = connect(&args.conn, &env)?;
    show_settings(&s, &env)?;
    let mut ok = check_server(&s, &client, args.ping).await?;
    if args.ping {
        ok &= ping(&s, &client).await?;
    }
    print_stdout(if ok {
        "all good\n"
    } else {
        "problems found (see above)\n"
    })?;
    Ok(if ok { Outcome::Complete } else { Outcome::ApiProblem })
}

/// One line of the report. Every line is scrubbed of the key (a server may echo it in an
/// error body), and a closed stdout (`rbplan doctor | head -1`) only stops the printing.
fn line(label: &str, msg: &str) -> Result<()> {
    print_stdout(&scrub(&format!("{label:<8} {msg}\n")))
}

/// Where each setting came from; the key only as "set" or not.
fn show_settings(s: &Settings, env: &Env) -> Result<()> {
    if let Some(l) = crate::config::files::installed() {
        let files: Vec<String> = l
            .project
            .iter()
            .chain(l.user.iter())
            .map(|p| p.display().to_string())
            .collect();
        let profile = l
            .profile
            .as_ref()
            .map(|(p, src)| format!("; profile {p} (from {src})"))
            .unwrap_or_default();
        let shown = if files.is_empty() {
            "no config file".to_string()
        } else {
            files.join(", ")
        };
        line(
            "config",
            &format!("{shown}{profile} (rbplan config lists every setting)"),
        )?;
    }
    line(
        "base URL",
        &format!("{} (from {})", s.client.base_url, s.base_url_source),
    )?;
    line("model", &format!("{} (from {})", s.shape.model, s.model_source))?;
    match (&s.client.api_key, s.key_source) {
        (Some(_), Some(src)) => line("key", &format!("set (from {src}); not shown"))?,
        _ => line(
            "key",
            "not set: no Authorization header is sent (fine for local servers; OpenAI and Azure need one)",
        )?,
    }
    if let (Provider::Azure, Some(api_version)) = (s.client.provider, &s.client.api_version) {
        line(
            "azure",
            &format!("api-version {api_version}; the model is used as the deployment name"),
        )?;
    }
    let dotenv = env.dotenv_path.as_ref().map(|p| format!("{} loaded", p.display()));
    line(".env", dotenv.as_deref().unwrap_or("none in this folder"))
}

/// GET /models: does the server answer, take the key, and list the model? A model the
/// server does not list is left to the ping when there is one.
async fn check_server(s: &Settings, client: &Client, ping: bool) -> Result<bool> {
    let t0 = Instant::now();
    let (status, body) = match client.list_models().await {
        Ok(v) => v,
        Err(e) => {
            line("server", &format!("PROBLEM: {}", explain(&e)))?;
            return Ok(false);
        }
    };
    let ms = t0.elapsed().as_millis();
    line("server", &format!("answered GET /models with HTTP {status} in {ms} ms"))?;
    let key = if s.client.api_key.is_some() {
        "accepted"
    } else {
        "not needed by this server"
    };
    line("key", key)?;
    let ids: Vec<&str> = body
        .get("data")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|m| m.get("id").and_then(Value::as_str)).collect())
        .unwrap_or_default();
    if ids.is_empty() {
        line(
            "model",
            "the server lists no models; cannot confirm the model exists (try --ping)",
        )?;
        return Ok(true);
    }
    if ids.contains(&s.shape.model.as_str()) {
        line("model", &format!("{:?} is listed", s.shape.model))?;
        return Ok(true);
    }
    let shown: Vec<&str> = ids.iter().take(12).copied().collect();
    let more = if ids.len() > shown.len() { ", …" } else { "" };
    let listed = format!(
        "{:?} is not among the {} models the server lists: {}{more}",
        s.shape.model,
        ids.len(),
        shown.join(", ")
    );
    let (ok, verdict) = match (ping, ids.len()) {
        (true, _) => (true, format!("{listed}; the ping below decides")),
        // llama-server lists the one model it loaded and answers to any name; vLLM does not.
        (false, 1) => (
            true,
            format!("WARNING: {listed}. A server with one model (llama-server) may answer to any name: --ping checks"),
        ),
        (false, _) => (false, format!("PROBLEM: {listed}")),
    };
    line("model", &verdict)?;
    Ok(ok)
}

/// A tiny chat request (16 tokens at most): does the model answer?
async fn ping(s: &Settings, client: &Client) -> Result<bool> {
    let shape = crate::client::Shape {
        temperature: None,
        max_tokens: Some(16),
        ..s.shape.clone()
    };
    let req = ChatRequest::new(shape, vec![Message::user("Reply with the single word: ok")]);
    let t0 = Instant::now();
    match client.chat(&req, None).await {
        Ok(r) => line(
            "ping",
            &format!(
                "the model answered in {} ms ({:?})",
                t0.elapsed().as_millis(),
                crate::util::snippet(&r.text, 40)
            ),
        )?,
        Err(ApiError::Empty { .. }) => line("ping", "the model answered, with no text (fine for a ping)")?,
        Err(e) => {
            line("ping", &format!("PROBLEM: {}", explain(&e)))?;
            return Ok(false);
        }
    }
    Ok(true)
}

/// The error, plus what to do about it.
fn explain(e: &ApiError) -> String {
    let hint = match e.root() {
        ApiError::Connect { .. } => " — is the server running, and is the base URL right (it usually ends in /v1)?",
        ApiError::Timeout { .. } => " — the server did not answer in time; check the URL or raise --timeout",
        ApiError::Status { status: 401, .. } => " — the key was rejected: check OPENAI_API_KEY",
        ApiError::Status { status: 403, .. } => " — the key lacks access to this resource",
        ApiError::Status { status: 404, .. } => {
            " — wrong base URL or path (OpenAI-compatible servers serve /v1/models)"
        }
        _ if e.is_quota() => " — the account is out of quota",
        _ => "",
    };
    format!("{e}{hint}")
}
