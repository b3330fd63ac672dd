//! Resolve flags, the environment, `.env`, the config files and defaults into one
//! configuration. Precedence: flag > real environment > `.env` in the working directory >
//! project `rbplan.toml` > user config file > default. A `.env` never overrides the real
//! environment. The key is held as a secret; config files may not hold it (`files`).

pub mod files;
pub mod keys;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;

use crate::client::{ClientConfig, MaxTokensField, Provider, Shape};
use crate::error::{Error, Result};

pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";
pub const DEFAULT_MODEL: &str = "gpt-4o-mini";
pub const DEFAULT_MAX_TOKENS: u32 = 4096;
pub const DEFAULT_MAX_RETRIES: u32 = 3;
pub const DEFAULT_PATIENCE: f64 = 300.0;
const DEFAULT_TIMEOUT: f64 = 600.0;
const DEFAULT_CONNECT_TIMEOUT: f64 = 10.0;
const DEFAULT_IDLE_TIMEOUT: f64 = 120.0;

/// Where a setting came from, for `doctor`, `config` and `-v`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Flag,
    Env,
    DotEnv,
    /// A config file and the line of the key (the path lives as long as the process).
    File(&'static Path, usize),
    Replay,
    Default,
}

impl Source {
    /// One word for the kind of origin, for `config --json`.
    pub fn kind(&self) -> &'static str {
        match self {
            Source::Flag => "flag",
            Source::Env => "environment",
            Source::DotEnv => "dotenv",
            Source::File(..) => "file",
            Source::Replay => "fixtures",
            Source::Default => "default",
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Source::File(path, line) = self {
            return write!(f, "{}:{line}", path.display());
        }
        f.write_str(match self {
            Source::Flag => "flag",
            Source::Env => "environment",
            Source::DotEnv => ".env",
            Source::Replay => "fixtures",
            Source::File(..) | Source::Default => "default",
        })
    }
}

/// The environment as rbplan sees it: real variables first, then `.env`, then the values
/// of the config files under the variables they stand for.
#[derive(Debug, Default, Clone)]
pub struct Env {
    real: HashMap<String, String>,
    dotenv: HashMap<String, String>,
    files: HashMap<String, (String, Source)>,
    /// `api_key_env` from a config file: the variable that holds the key.
    key_var: Option<String>,
    pub dotenv_path: Option<PathBuf>,
}

impl Env {
    /// The process environment plus `./.env` if there is one, plus the config files
    /// `files::install` chose for this run. A malformed `.env` is an error naming its line.
    pub fn load() -> Result<Env> {
        let mut env = Env::load_without_files()?;
        if let Some(loaded) = files::installed() {
            env.files = loaded.env_values();
            env.key_var = loaded.key_var();
        }
        Ok(env)
    }

    /// The process environment plus `./.env`, without the config files.
    pub fn load_without_files() -> Result<Env> {
        let real = std::env::vars().collect();
        let path = Path::new(".env");
        let (dotenv, dotenv_path) = if path.is_file() {
            (read_dotenv(path)?, Some(path.to_path_buf()))
        } else {
            (HashMap::new(), None)
        };
        Ok(Env {
            real,
            dotenv,
            dotenv_path,
            ..Env::default()
        })
    }

    pub fn from_maps(real: HashMap<String, String>, dotenv: HashMap<String, String>) -> Env {
        Env {
            real,
            dotenv,
            ..Env::default()
        }
    }

    /// `from_maps` with config-file values, keyed by the variable each stands for.
    pub fn with_files(mut self, files: HashMap<String, (String, Source)>, key_var: Option<String>) -> Env {
        self.files = files;
        self.key_var = key_var;
        self
    }

    /// The variable the key is read from: `api_key_env` from a config file, else
    /// OPENAI_API_KEY.
    pub fn key_var(&self) -> &str {
        self.key_var.as_deref().unwrap_or("OPENAI_API_KEY")
    }

    /// Real environment, then `.env`, never a config file: for the key.
    fn get_secret(&self, key: &str) -> Option<(String, Source)> {
        self.get(key).filter(|(_, s)| !matches!(s, Source::File(..)))
    }

    /// A non-empty value and where it came from.
    pub fn get(&self, key: &str) -> Option<(String, Source)> {
        let nonempty = |v: &String| !v.trim().is_empty();
        if let Some(v) = self.real.get(key).filter(|v| nonempty(v)) {
            return Some((v.clone(), Source::Env));
        }
        if let Some(v) = self.dotenv.get(key).filter(|v| nonempty(v)) {
            return Some((v.clone(), Source::DotEnv));
        }
        self.files.get(key).filter(|(v, _)| nonempty(v)).cloned()
    }
}

fn read_dotenv(path: &Path) -> Result<HashMap<String, String>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::input(path, None, format!("cannot read: {e}")))?;
    let mut map = HashMap::new();
    for item in dotenvy::from_read_iter(text.as_bytes()) {
        match item {
            Ok((k, v)) => {
                map.insert(k, v);
            }
            Err(dotenvy::Error::LineParse(line, _)) => {
                let n = text
                    .lines()
                    .position(|l| l.trim() == line.trim() || l.contains(line.trim()))
                    .map(|i| i + 1);
                return Err(Error::input(path, n, "not a KEY=value line"));
            }
            Err(e) => return Err(Error::input(path, None, e.to_string())),
        }
    }
    Ok(map)
}

/// Everything needed to call the model.
pub struct Settings {
    pub client: ClientConfig,
    /// The model, temperature and token limit every request of the run is made with.
    pub shape: Shape,
    pub model_source: Source,
    pub base_url_source: Source,
    pub key_source: Option<Source>,
    /// `--record DIR`: where every exchange is saved as a fixture.
    pub record: Option<PathBuf>,
}

impl std::fmt::Debug for Settings {
    // Never print the key, even in debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("base_url", &self.client.base_url)
            .field("model", &self.shape.model)
            .field("key", &self.client.api_key.as_ref().map(|_| "[set]"))
            .finish_non_exhaustive()
    }
}

fn pick<T>(flag: Option<T>, env: &Env, key: &str, parse: impl Fn(&str) -> Option<T>) -> Result<Option<(T, Source)>> {
    if let Some(v) = flag {
        return Ok(Some((v, Source::Flag)));
    }
    match env.get(key) {
        Some((raw, src)) => match parse(raw.trim()) {
            Some(v) => Ok(Some((v, src))),
            None => Err(Error::usage(format!("{} is not a valid value", given(key, &raw, &src)))),
        },
        None => Ok(None),
    }
}

/// A value as its origin spells it: `rbplan.toml:6: max_tokens = "-5"` from a config
/// file, `RBPLAN_MAX_TOKENS="-5" (from environment)` from a variable.
fn given(var: &str, raw: &str, src: &Source) -> String {
    let Source::File(..) = src else {
        return format!("{var}={raw:?} (from {src})");
    };
    let name = keys::KEYS
        .iter()
        .find(|k| matches!(k.apply, keys::Apply::Env(v) if v == var))
        .map_or(var, |k| k.name);
    format!("{src}: {name} = {raw:?}")
}

fn secs(name: &str, v: f64) -> Result<Duration> {
    if v.is_finite() && v > 0.0 && v < 1e7 {
        Ok(Duration::from_secs_f64(v))
    } else {
        Err(Error::usage(format!("{name} must be a positive number of seconds")))
    }
}

/// The connection settings as given on the command line, before the environment and the
/// defaults are applied: plain values (the command line's types stay in `cli`).
#[derive(Debug, Clone, Default)]
pub struct Flags {
    pub base_url: Option<String>,
    pub model: Option<String>,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
    pub max_tokens_field: Option<String>,
    pub timeout: Option<f64>,
    pub connect_timeout: Option<f64>,
    pub idle_timeout: Option<f64>,
    pub max_retries: Option<u32>,
    pub patience: Option<f64>,
    pub provider: Option<Provider>,
    pub api_version: Option<String>,
    /// "Name: value", as typed.
    pub headers: Vec<String>,
    pub record: Option<PathBuf>,
    pub replay: Option<PathBuf>,
}

pub fn resolve(a: &Flags, env: &Env) -> Result<Settings> {
    let provider = pick(a.provider, env, "RBPLAN_PROVIDER", Provider::parse)?.map_or(Provider::OpenAi, |p| p.0);
    let (base_url, base_url_source) = base_url(a, env, provider)?;
    let api_version = match provider {
        Provider::OpenAi => None,
        Provider::Azure => Some(
            pick(a.api_version.clone(), env, "OPENAI_API_VERSION", |s| {
                Some(s.to_string())
            })?
            .ok_or_else(|| Error::usage("Azure needs --api-version or OPENAI_API_VERSION (e.g. 2024-10-21)"))?
            .0,
        ),
    };
    let (api_key, key_source) = api_key(env, provider);
    let (model, model_source) = pick(a.model.clone(), env, "RBPLAN_MODEL", |s| Some(s.to_string()))?
        .unwrap_or((DEFAULT_MODEL.to_string(), Source::Default));
    let shape = shape(model, a, env)?;
    let secs = |flag: Option<f64>, key: &str, default: f64| -> Result<Duration> {
        let v = pick(flag, env, key, |s| s.parse().ok())?.map_or(default, |v| v.0);
        secs(key, v)
    };
    // In this order, so that of several bad values the same one is reported as before.
    let request_timeout = secs(a.timeout, "RBPLAN_TIMEOUT", DEFAULT_TIMEOUT)?;
    let connect_timeout = secs(a.connect_timeout, "RBPLAN_CONNECT_TIMEOUT", DEFAULT_CONNECT_TIMEOUT)?;
    let idle_timeout = secs(a.idle_timeout, "RBPLAN_IDLE_TIMEOUT", DEFAULT_IDLE_TIMEOUT)?;
    let patience = secs(a.patience, "RBPLAN_PATIENCE", DEFAULT_PATIENCE)?;
    let max_retries =
        pick(a.max_retries, env, "RBPLAN_MAX_RETRIES", |s| s.parse().ok())?.map_or(DEFAULT_MAX_RETRIES, |v| v.0);
    Ok(Settings {
        client: ClientConfig {
            base_url,
            api_key,
            provider,
            api_version,
            headers: headers(a, env)?,
            connect_timeout,
            request_timeout,
            idle_timeout,
            max_retries,
            patience,
            replay: a.replay.clone(),
        },
        record: a.record.clone(),
        shape,
        model_source,
        base_url_source,
        key_source,
    })
}

/// The prices a run knows: `--price` values, else `RBPLAN_PRICE` (`;`-separated), over
/// the built-in table. A malformed price is a usage error naming it.
pub fn prices(given: &[String], env: &Env) -> Result<crate::price::Prices> {
    let specs = match (given.is_empty(), env.get("RBPLAN_PRICE")) {
        (true, Some((v, _))) => vec![v],
        _ => given.to_vec(),
    };
    crate::price::Prices::parse(&specs).map_err(Error::usage)
}

/// The key and where it came from: trimmed (a trailing newline from `cat key.txt` breaks
/// auth), never logged. Azure also reads its own variable.
fn api_key(env: &Env, provider: Provider) -> (Option<SecretString>, Option<Source>) {
    let mut key = env.get_secret(env.key_var());
    if key.is_none() && provider == Provider::Azure {
        key = env.get_secret("AZURE_OPENAI_API_KEY");
    }
    let source = key.as_ref().map(|(_, s)| *s);
    // Scrubbed from everything printed from here on, whatever the command.
    if let Some((k, _)) = &key {
        crate::logging::register_secret(k.trim());
    }
    (key.map(|(k, _)| SecretString::from(k.trim().to_string())), source)
}

/// The base URL and where it came from; Azure has its own variable and no default.
fn base_url(a: &Flags, env: &Env, provider: Provider) -> Result<(String, Source)> {
    let (url, source) = match pick(a.base_url.clone(), env, "OPENAI_BASE_URL", |s| Some(s.to_string()))? {
        Some(v) => v,
        None if provider == Provider::Azure => env.get("AZURE_OPENAI_ENDPOINT").ok_or_else(|| {
            Error::usage("Azure needs --base-url or AZURE_OPENAI_ENDPOINT (https://RESOURCE.openai.azure.com)")
        })?,
        None => (DEFAULT_BASE_URL.to_string(), Source::Default),
    };
    let url = url.trim().trim_end_matches('/').to_string();
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(Error::usage(format!(
            "base URL {url:?} must start with http:// or https://"
        )));
    }
    Ok((url, source))
}

/// What shapes every request body: the model, the temperature, and the token limit with
/// its field name.
fn shape(model: String, a: &Flags, env: &Env) -> Result<Shape> {
    let temperature = pick(a.temperature, env, "RBPLAN_TEMPERATURE", |s| s.parse().ok())?;
    if let Some((t, src)) = &temperature
        && !(0.0..=2.0).contains(t)
    {
        let what = match src {
            Source::Flag => format!("--temperature {t}"),
            _ => given("RBPLAN_TEMPERATURE", &t.to_string(), src),
        };
        return Err(Error::usage(format!("{what}: the temperature must be between 0 and 2")));
    }
    let temperature = temperature.map(|v| v.0);
    let max_tokens = match pick(a.max_tokens, env, "RBPLAN_MAX_TOKENS", |s| s.parse().ok())? {
        Some((0, _)) => None,
        Some((n, _)) => Some(n),
        None => Some(DEFAULT_MAX_TOKENS),
    };
    let max_tokens_field = match pick(a.max_tokens_field.clone(), env, "RBPLAN_MAX_TOKENS_FIELD", |s| {
        Some(s.to_string())
    })? {
        None => MaxTokensField::MaxTokens,
        Some((f, _)) => MaxTokensField::parse(&f)
            .ok_or_else(|| Error::usage("--max-tokens-field must be max_tokens or max_completion_tokens"))?,
    };
    Ok(Shape {
        model,
        temperature,
        max_tokens,
        max_tokens_field,
    })
}

/// Extra headers from RBPLAN_HEADERS, then --header (a flag wins on the same name).
fn headers(a: &Flags, env: &Env) -> Result<Vec<(String, String)>> {
    // Each header with where it came from, for messages: "RBPLAN_HEADERS (.env), item 2".
    let mut specs: Vec<(String, String)> = match env.get("RBPLAN_HEADERS") {
        Some((v, src)) => v
            .split(';')
            .enumerate()
            .filter(|(_, s)| !s.trim().is_empty())
            .map(|(i, s)| {
                let origin = format!("RBPLAN_HEADERS ({src}), item {} of the \";\"-separated list", i + 1);
                (s.to_string(), origin)
            })
            .collect(),
        None => Vec::new(),
    };
    let n = a.headers.len();
    specs.extend(a.headers.iter().enumerate().map(|(i, h)| {
        let which = if n > 1 {
            format!(" (#{} of {n})", i + 1)
        } else {
            String::new()
        };
        (h.clone(), format!("--header{which}"))
    }));
    let mut headers: Vec<(String, String)> = Vec::new();
    for (h, origin) in specs {
        let (k, v) = parse_header(&h, &origin)?;
        headers.retain(|(n, _)| !n.eq_ignore_ascii_case(&k));
        headers.push((k, v));
    }
    Ok(headers)
}

/// "Name: value" → (name, value), refusing what rbplan sets itself. A value is never
/// echoed in a message: gateway headers often carry tokens.
fn parse_header(h: &str, origin: &str) -> Result<(String, String)> {
    let (k, v) = h.split_once(':').ok_or_else(|| {
        let hint = if origin.starts_with("RBPLAN_HEADERS") {
            "; a \";\" inside a value splits it there"
        } else {
            ""
        };
        // Nothing of it is shown: with no name to tell it by, any part may be a token.
        Error::usage(format!(
            "{origin}: a header must look like \"Name: value\", with a \":\" after the name (the text given is not shown, as it may hold a token{hint})"
        ))
    })?;
    let k = k.trim().to_string();
    let lower = k.to_ascii_lowercase();
    if matches!(lower.as_str(), "authorization" | "api-key") {
        return Err(Error::usage(format!(
            "{origin}: set the key with OPENAI_API_KEY, not as a header ({k})"
        )));
    }
    // rbplan frames every request itself; these would contradict it.
    if matches!(
        lower.as_str(),
        "content-length" | "content-type" | "transfer-encoding" | "connection" | "x-rbplan-retry-count"
    ) {
        return Err(Error::usage(format!(
            "{origin}: header {k} is set by rbplan for each request and cannot be given"
        )));
    }
    if reqwest::header::HeaderName::from_bytes(k.as_bytes()).is_err() {
        return Err(Error::usage(format!(
            "{origin}: the text before the first \":\" is not a header name (one word, such as \"X-Team\", then \": value\"); it is not shown, as it may hold a token"
        )));
    }
    if reqwest::header::HeaderValue::from_str(v.trim()).is_err() {
        return Err(Error::usage(format!(
            "{origin}: the value of header {k} has characters a header cannot carry (control characters)"
        )));
    }
    Ok((k, v.trim().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn env(real: &[(&str, &str)], dot: &[(&str, &str)]) -> Env {
        let m = |v: &[(&str, &str)]| v.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Env::from_maps(m(real), m(dot))
    }

    #[test]
    fn precedence_flag_env_dotenv_default() {
        let none = Flags::default();
        let s = resolve(&none, &env(&[], &[])).unwrap();
        assert_eq!(s.shape.model, DEFAULT_MODEL);
        assert_eq!(s.model_source, Source::Default);
        assert_eq!(s.client.base_url, DEFAULT_BASE_URL);
        assert!(s.client.api_key.is_none());

        let s = resolve(&none, &env(&[], &[("RBPLAN_MODEL", "from-dotenv")])).unwrap();
        assert_eq!(
            (s.shape.model.as_str(), s.model_source),
            ("from-dotenv", Source::DotEnv)
        );

        let both = env(&[("RBPLAN_MODEL", "from-env")], &[("RBPLAN_MODEL", "from-dotenv")]);
        let s = resolve(&none, &both).unwrap();
        assert_eq!(
            (s.shape.model.as_str(), s.model_source),
            ("from-env", Source::Env),
            ".env never overrides the environment"
        );

        let flag = Flags {
            model: Some("from-flag".into()),
            ..Default::default()
        };
        let s = resolve(&flag, &both).unwrap();
        assert_eq!((s.shape.model.as_str(), s.model_source), ("from-flag", Source::Flag));
    }

    #[test]
    fn key_is_trimmed_and_optional() {
        let s = resolve(&Flags::default(), &env(&[], &[("OPENAI_API_KEY", "sk-test-abc\n")])).unwrap();
        assert_eq!(s.client.api_key.unwrap().expose_secret(), "sk-test-abc");
        assert_eq!(s.key_source, Some(Source::DotEnv));
        // An empty variable counts as unset.
        let s = resolve(&Flags::default(), &env(&[("OPENAI_API_KEY", " ")], &[])).unwrap();
        assert!(s.client.api_key.is_none());
        assert!(!format!("{s:?}").contains("sk-"));
    }

    #[test]
    fn bad_values_are_usage_errors_naming_the_variable() {
        let e = resolve(&Flags::default(), &env(&[("RBPLAN_MAX_RETRIES", "lots")], &[]))
            .err()
            .unwrap();
        assert!(e.to_string().contains("RBPLAN_MAX_RETRIES"));
        let e = resolve(&Flags::default(), &env(&[("OPENAI_BASE_URL", "localhost:8080")], &[]))
            .err()
            .unwrap();
        assert!(e.to_string().contains("http://"));
    }

    #[test]
    fn azure_needs_version_and_uses_its_endpoint_variable() {
        let a = Flags {
            provider: Some(Provider::Azure),
            ..Default::default()
        };
        assert!(
            resolve(
                &a,
                &env(&[("AZURE_OPENAI_ENDPOINT", "https://r.openai.azure.com")], &[])
            )
            .is_err()
        );
        let s = resolve(
            &a,
            &env(
                &[
                    ("AZURE_OPENAI_ENDPOINT", "https://r.openai.azure.com/"),
                    ("OPENAI_API_VERSION", "2024-10-21"),
                    ("AZURE_OPENAI_API_KEY", "k1234"),
                ],
                &[],
            ),
        )
        .unwrap();
        assert_eq!(s.client.base_url, "https://r.openai.azure.com");
        assert_eq!(s.client.provider, Provider::Azure);
        assert_eq!(s.client.api_version.as_deref(), Some("2024-10-21"));
        assert!(s.client.api_key.is_some());
    }

    #[test]
    fn headers_from_env_and_flags() {
        let a = Flags {
            headers: vec!["X-Team: platform".into()],
            ..Default::default()
        };
        let s = resolve(&a, &env(&[("RBPLAN_HEADERS", "X-Team: sre; X-Env: prod")], &[])).unwrap();
        assert_eq!(
            s.client.headers,
            vec![
                ("X-Env".to_string(), "prod".to_string()),
                ("X-Team".to_string(), "platform".to_string())
            ]
        );
        let bad = Flags {
            headers: vec!["Authorization: Bearer x".into()],
            ..Default::default()
        };
        assert!(resolve(&bad, &env(&[], &[])).is_err());
        // Refused before anything is sent, as usage errors naming the header but never
        // echoing its value.
        for (h, says) in [
            ("Content-Length: 5", "Content-Length is set by rbplan"),
            ("X-Rbplan-Retry-Count: 7", "X-Rbplan-Retry-Count is set by rbplan"),
            ("Bad Name: x", "is not a header name"),
            // A forgotten ":" after the name: nothing of what follows is echoed.
            ("Authorization Bearer sec\u{1}ret:x", "is not a header name"),
            ("X-Token: sec\u{1}ret", "value of header X-Token has characters"),
        ] {
            let a = Flags {
                headers: vec![h.into()],
                ..Default::default()
            };
            let Err(e) = resolve(&a, &env(&[], &[])) else {
                panic!("{h} was accepted")
            };
            assert!(e.to_string().starts_with("--header: "), "{e}");
            assert_eq!(e.exit_code(), crate::error::code::USAGE, "{h}");
            let msg = e.to_string();
            assert!(msg.contains(says), "{h}: {msg}");
            assert!(!msg.contains("sec\u{1}ret") && !msg.contains("Bearer"), "{msg}");
        }
        // From the environment: which item of the list, and no part of a value.
        let Err(e) = resolve(
            &Flags::default(),
            &env(&[("RBPLAN_HEADERS", "X-Token: abc;def-secret")], &[]),
        ) else {
            panic!("a header without a name was accepted")
        };
        let msg = e.to_string();
        assert!(msg.starts_with("RBPLAN_HEADERS (environment), item 2"), "{msg}");
        assert!(!msg.contains("def-secret") && !msg.contains("abc"), "{msg}");
        // Which of several flags.
        let two = Flags {
            headers: vec!["X-A: 1".into(), "X-B 2".into()],
            ..Default::default()
        };
        let Err(e) = resolve(&two, &env(&[], &[])) else {
            panic!("accepted")
        };
        assert!(e.to_string().starts_with("--header (#2 of 2): "), "{e}");
    }

    #[test]
    fn max_tokens_zero_sends_none() {
        let a = Flags {
            max_tokens: Some(0),
            ..Default::default()
        };
        assert_eq!(resolve(&a, &env(&[], &[])).unwrap().shape.max_tokens, None);
        assert_eq!(
            resolve(&Flags::default(), &env(&[], &[])).unwrap().shape.max_tokens,
            Some(DEFAULT_MAX_TOKENS)
        );
    }

    #[test]
    fn dotenv_errors_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(".env");
        std::fs::write(&p, "# comment\nOPENAI_BASE_URL=http://x\nthis is not valid\n").unwrap();
        let e = read_dotenv(&p).unwrap_err().to_string();
        assert!(e.contains(".env:3"), "{e}");
        std::fs::write(&p, "A=1\nexport B=\"two words\"\n").unwrap();
        let m = read_dotenv(&p).unwrap();
        assert_eq!(m["B"], "two words");
    }
}
