//! The keys a config file may hold: each with its table, its type, where its value goes
//! (the environment variable it stands for, or a command's flag) and its default.

/// The table a key lives in: the top level, or one command's.
pub const TABLES: [&str; 3] = ["ask", "batch", "check"];

/// The TOML type a key takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Str,
    /// A string naming a file or folder, relative to the config file's folder.
    Path,
    Int,
    /// A number (an integer is accepted).
    Num,
    Bool,
    /// A list of strings (a single string is accepted as a list of one).
    Strs,
}

impl Kind {
    pub fn words(self) -> &'static str {
        match self {
            Kind::Str => "a string",
            Kind::Path => "a string (a path)",
            Kind::Int => "a whole number",
            Kind::Num => "a number",
            Kind::Bool => "true or false",
            Kind::Strs => "a list of strings",
        }
    }
}

/// Where a key's value goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Apply {
    /// Read as this environment variable is, below the real environment and `.env`.
    Env(&'static str),
    /// The default of the flag with this name in every command that has it.
    Flag,
    /// `api_key_env`: the variable the key is read from.
    KeyVar,
}

#[derive(Debug, Clone, Copy)]
pub struct Key {
    /// "" for the top level, else the command's table.
    pub table: &'static str,
    pub name: &'static str,
    pub kind: Kind,
    pub apply: Apply,
    /// The default as TOML, or None when there is none (the server's, or unset).
    pub default: Option<&'static str>,
    pub help: &'static str,
}

const fn key(
    table: &'static str,
    name: &'static str,
    kind: Kind,
    apply: Apply,
    default: Option<&'static str>,
    help: &'static str,
) -> Key {
    Key {
        table,
        name,
        kind,
        apply,
        default,
        help,
    }
}

use Apply::{Env, Flag};
use Kind::{Bool, Int, Num, Path, Str, Strs};

pub const KEYS: &[Key] = &[
    key(
        "",
        "base_url",
        Str,
        Env("OPENAI_BASE_URL"),
        Some("\"https://api.openai.com/v1\""),
        "API base URL",
    ),
    key(
        "",
        "model",
        Str,
        Env("RBPLAN_MODEL"),
        Some("\"gpt-4o-mini\""),
        "model name (the deployment name on Azure)",
    ),
    key(
        "",
        "temperature",
        Num,
        Env("RBPLAN_TEMPERATURE"),
        None,
        "sampling temperature; unset: the server's",
    ),
    key(
        "",
        "max_tokens",
        Int,
        Env("RBPLAN_MAX_TOKENS"),
        Some("4096"),
        "completion token limit per request; 0 sends none",
    ),
    key(
        "",
        "max_tokens_field",
        Str,
        Env("RBPLAN_MAX_TOKENS_FIELD"),
        Some("\"max_tokens\""),
        "or max_completion_tokens for OpenAI reasoning models",
    ),
    key(
        "",
        "timeout",
        Num,
        Env("RBPLAN_TIMEOUT"),
        Some("600"),
        "seconds for a request, or to a stream's first byte",
    ),
    key(
        "",
        "connect_timeout",
        Num,
        Env("RBPLAN_CONNECT_TIMEOUT"),
        Some("10"),
        "seconds to open a connection",
    ),
    key(
        "",
        "idle_timeout",
        Num,
        Env("RBPLAN_IDLE_TIMEOUT"),
        Some("120"),
        "longest silence between stream chunks, seconds",
    ),
    key(
        "",
        "max_retries",
        Int,
        Env("RBPLAN_MAX_RETRIES"),
        Some("3"),
        "retries of connection errors, timeouts, 408/409/5xx",
    ),
    key(
        "",
        "patience",
        Num,
        Env("RBPLAN_PATIENCE"),
        Some("300"),
        "seconds of rate limits with no success before a run stops",
    ),
    key(
        "",
        "provider",
        Str,
        Env("RBPLAN_PROVIDER"),
        Some("\"openai\""),
        "openai or azure",
    ),
    key(
        "",
        "api_version",
        Str,
        Env("OPENAI_API_VERSION"),
        None,
        "Azure api-version, e.g. \"2024-10-21\"",
    ),
    key(
        "",
        "headers",
        Strs,
        Env("RBPLAN_HEADERS"),
        Some("[]"),
        "extra request headers, \"Name: value\" (never the key)",
    ),
    key(
        "",
        "price",
        Strs,
        Env("RBPLAN_PRICE"),
        Some("[]"),
        "USD per million tokens, \"IN:OUT\" or \"MODEL=IN:OUT[:CACHED]\"",
    ),
    key(
        "",
        "context_max_tokens",
        Int,
        Env("RBPLAN_CONTEXT_MAX_TOKENS"),
        Some("24000"),
        "most tokens --context may take",
    ),
    key(
        "",
        "api_key_env",
        Str,
        Apply::KeyVar,
        Some("\"OPENAI_API_KEY\""),
        "the environment variable that holds the key",
    ),
    key(
        "",
        "template",
        Path,
        Flag,
        None,
        "template folder; unset: the built-in rollback plan",
    ),
    key(
        "",
        "max_repairs",
        Int,
        Flag,
        Some("2"),
        "repair rounds; 0 disables repair",
    ),
    key(
        "",
        "fallback_model",
        Str,
        Flag,
        None,
        "a second model that carries on after failed repairs",
    ),
    key("", "judge_model", Str, Flag, None, "a model that scores each plan"),
    key("ask", "parallel", Int, Flag, None, "sections written N at a time"),
    key("ask", "max_cost", Num, Flag, None, "USD a run may spend at most"),
    key(
        "ask",
        "context_truncate",
        Bool,
        Flag,
        Some("false"),
        "over context_max_tokens, cut files instead of stopping",
    ),
    key(
        "batch",
        "concurrency",
        Int,
        Flag,
        Some("4"),
        "requests in flight at once",
    ),
    key(
        "batch",
        "rpm",
        Int,
        Flag,
        None,
        "client-side limit on requests per minute",
    ),
    key(
        "batch",
        "tpm",
        Int,
        Flag,
        None,
        "client-side limit on tokens per minute",
    ),
    key(
        "batch",
        "out_dir",
        Path,
        Flag,
        None,
        "folder for the plans and the report",
    ),
    key(
        "batch",
        "parallel",
        Int,
        Flag,
        None,
        "sections of a plan written N at a time",
    ),
    key("batch", "max_cost", Num, Flag, None, "USD a run may spend at most"),
    key(
        "batch",
        "context_truncate",
        Bool,
        Flag,
        Some("false"),
        "over context_max_tokens, cut files instead of stopping",
    ),
    key(
        "batch",
        "poll_interval",
        Num,
        Flag,
        Some("30.0"),
        "with --via batch-api: seconds between polls",
    ),
    key(
        "batch",
        "file_max_requests",
        Int,
        Flag,
        Some("50000"),
        "most requests per exported file",
    ),
    key(
        "batch",
        "file_max_mb",
        Num,
        Flag,
        Some("200.0"),
        "largest exported file in MB",
    ),
    key(
        "check",
        "select",
        Strs,
        Flag,
        Some("[]"),
        "report only these finding codes",
    ),
    key(
        "check",
        "ignore",
        Strs,
        Flag,
        Some("[]"),
        "set aside these finding codes",
    ),
    key("check", "strict", Bool, Flag, Some("false"), "fail on warnings too"),
    key(
        "check",
        "format",
        Str,
        Flag,
        Some("\"text\""),
        "text, json, github, junit or sarif",
    ),
];

/// The key `name` in `table` ("" for the top level).
pub fn find(table: &str, name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.table == table && k.name == name)
}

/// Names a config file may not hold a value under: the key is read from the environment.
pub fn is_secret_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase().replace('-', "_");
    n == "key"
        || n == "token"
        || n == "secret"
        || n == "password"
        || n.ends_with("api_key")
        || n.ends_with("_token")
        || n.ends_with("_secret")
}

/// The valid key nearest to `name` in `table` (or a table name), if any is near.
pub fn nearest(table: &str, name: &str) -> Option<String> {
    let mut names: Vec<String> = KEYS
        .iter()
        .filter(|k| k.table == table)
        .map(|k| k.name.to_string())
        .collect();
    if table.is_empty() {
        names.extend(TABLES.iter().map(|t| format!("[{t}]")));
        names.push("[profile.NAME]".into());
    }
    names
        .into_iter()
        .map(|n| (strsim::damerau_levenshtein(name, n.trim_matches(['[', ']'])), n))
        .filter(|(d, n)| *d <= 3.max(n.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_key_and_secret_names() {
        assert_eq!(nearest("", "modle").as_deref(), Some("model"));
        assert_eq!(nearest("check", "ignores").as_deref(), Some("ignore"));
        assert_eq!(nearest("", "chek").as_deref(), Some("[check]"));
        assert_eq!(nearest("", "zzzzzzzzzzzzzz"), None);
        assert!(is_secret_name("api_key") && is_secret_name("OPENAI_API_KEY") && is_secret_name("token"));
        assert!(!is_secret_name("api_key_env") && !is_secret_name("max_tokens"));
    }

    #[test]
    fn every_default_is_toml_of_its_kind() {
        for k in KEYS {
            if let Some(d) = k.default {
                let v: toml::Table = toml::from_str(&format!("v = {d}")).unwrap();
                assert!(super::super::files::kind_fits(k.kind, &v["v"]), "{}", k.name);
            }
        }
    }
}
