//! `rbplan config`: every setting a config file may hold, its effective value and where
//! it came from (flag, environment, `.env`, a file and line, or default). Never the key.

use serde_json::{Value, json};

use crate::cli::ConfigArgs;
use crate::config::files::{self, Loaded};
use crate::config::keys::{Apply, KEYS, Key, Kind};
use crate::config::{Env, Flags, Source};
use crate::error::{Outcome, Result};
use crate::term::print_stdout;

/// One setting as shown.
pub struct Shown {
    pub key: &'static Key,
    /// TOML text, or None when unset.
    pub value: Option<toml::Value>,
    pub origin: Source,
}

pub fn run(args: ConfigArgs) -> Result<Outcome> {
    let env = Env::load()?;
    // Resolved first, as a run would: the key is then scrubbed from what is shown.
    let usable = crate::config::resolve(&args.conn.flags(), &env);
    let loaded = files::installed().cloned().unwrap_or_default();
    let shown = effective(&args.conn.flags(), &env, &loaded);
    let key = key_words(&env);
    let text = if args.json {
        to_json(&loaded, &shown, &env, &key).to_string() + "\n"
    } else {
        to_text(&loaded, &shown, &key)
    };
    print_stdout(&crate::logging::scrub(&text))?;
    // The values shown must also be usable: a bad one is exit 2, named where it was set.
    usable?;
    crate::config::prices(&[], &env)?;
    check_codes(&loaded)
}

/// `[check] select` and `ignore` name codes that exist, as `check` reads them.
fn check_codes(loaded: &Loaded) -> Result<Outcome> {
    let list = |name| {
        let e = loaded.entries.get(&("check", name));
        e.map(|e| files::flag_texts(&e.value)).unwrap_or_default()
    };
    super::check::Filter::new(&list("select"), &list("ignore"))?;
    Ok(Outcome::Complete)
}

/// Every key's value and origin: flag > environment > `.env` > files > default.
pub fn effective(flags: &Flags, env: &Env, loaded: &Loaded) -> Vec<Shown> {
    KEYS.iter()
        .map(|key| {
            let file = loaded.entries.get(&(key.table, key.name));
            let from_file = || file.map(|e| (Some(e.value.clone()), e.origin));
            let (value, origin) = match key.apply {
                Apply::Env(var) => flag_value(flags, key)
                    .map(|v| (Some(v), Source::Flag))
                    .or_else(|| env.get(var).map(|(raw, src)| (Some(typed(key.kind, &raw)), src)))
                    .or_else(from_file),
                Apply::Flag | Apply::KeyVar => from_file(),
            }
            .unwrap_or_else(|| (key.default.and_then(default_value), Source::Default));
            let value = if key.name == "headers" {
                value.map(hide_header_values)
            } else {
                value
            };
            Shown { key, value, origin }
        })
        .collect()
}

fn default_value(toml_text: &str) -> Option<toml::Value> {
    let t: toml::Table = toml::from_str(&format!("v = {toml_text}")).ok()?;
    t.get("v").cloned()
}

/// An environment variable's text as the key's type (as given, when it does not parse).
fn typed(kind: Kind, raw: &str) -> toml::Value {
    let raw = raw.trim();
    match kind {
        Kind::Int => raw.parse().map(toml::Value::Integer).unwrap_or_else(|_| raw.into()),
        Kind::Num => raw.parse().map(toml::Value::Float).unwrap_or_else(|_| raw.into()),
        Kind::Bool => raw.parse().map(toml::Value::Boolean).unwrap_or_else(|_| raw.into()),
        Kind::Strs => toml::Value::Array(
            raw.split(';')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(toml::Value::from)
                .collect(),
        ),
        Kind::Str | Kind::Path => raw.into(),
    }
}

/// A header's name only: its value may be a token.
fn hide_header_values(v: toml::Value) -> toml::Value {
    let hide = |s: &str| format!("{}: (value not shown)", s.split(':').next().unwrap_or_default().trim());
    match v {
        toml::Value::Array(a) => a
            .iter()
            .filter_map(|x| x.as_str())
            .map(|s| toml::Value::from(hide(s)))
            .collect::<Vec<_>>()
            .into(),
        other => other,
    }
}

/// The flag `config` itself was given for `key`, if any.
fn flag_value(f: &Flags, key: &Key) -> Option<toml::Value> {
    let s = |v: &Option<String>| v.clone().map(toml::Value::from);
    let n = |v: Option<f64>| v.map(toml::Value::from);
    match key.name {
        "base_url" => s(&f.base_url),
        "model" => s(&f.model),
        "temperature" => n(f.temperature.map(f64::from)),
        "max_tokens" => f.max_tokens.map(|v| toml::Value::Integer(v.into())),
        "max_tokens_field" => s(&f.max_tokens_field),
        "timeout" => n(f.timeout),
        "connect_timeout" => n(f.connect_timeout),
        "idle_timeout" => n(f.idle_timeout),
        "patience" => n(f.patience),
        "max_retries" => f.max_retries.map(|v| toml::Value::Integer(v.into())),
        "provider" => f
            .provider
            .map(|p| toml::Value::from(format!("{p:?}").to_ascii_lowercase())),
        "api_version" => s(&f.api_version),
        "headers" if !f.headers.is_empty() => Some(
            f.headers
                .iter()
                .map(|h| toml::Value::from(h.as_str()))
                .collect::<Vec<_>>()
                .into(),
        ),
        _ => None,
    }
}

/// Whether the key is set and from where; never its value.
fn key_words(env: &Env) -> (bool, String) {
    let var = env.key_var().to_string();
    match env.get(&var).filter(|(_, s)| !matches!(s, Source::File(..))) {
        Some((_, src)) => (true, format!("set (from {var} in the {src}); not shown")),
        None => (false, format!("not set ({var} is empty or unset)")),
    }
}

fn label(k: &Key) -> String {
    if k.table.is_empty() {
        k.name.to_string()
    } else {
        format!("{}.{}", k.table, k.name)
    }
}

fn files_words(l: &Loaded) -> Vec<String> {
    let p = |f: &Option<std::path::PathBuf>| f.as_ref().map_or("none".to_string(), |p| p.display().to_string());
    let profile = match &l.profile {
        Some((name, src)) => format!("{name} (from {src})"),
        None => "none".into(),
    };
    vec![
        format!("project file: {}", p(&l.project)),
        format!("user file:    {}", p(&l.user)),
        format!("profile:      {profile}"),
    ]
}

fn to_text(l: &Loaded, shown: &[Shown], key: &(bool, String)) -> String {
    let mut out = files_words(l).join("\n") + "\n\n";
    for s in shown {
        let v = s.value.as_ref().map_or("(unset)".to_string(), |v| v.to_string());
        out.push_str(&format!("{:<24} {:<32} {}\n", label(s.key), v, s.origin));
    }
    out.push_str(&format!("{:<24} {}\n", "key", key.1));
    out
}

fn to_json(l: &Loaded, shown: &[Shown], env: &Env, key: &(bool, String)) -> Value {
    let settings: Vec<Value> = shown
        .iter()
        .map(|s| {
            json!({
                "key": label(s.key),
                "value": s.value.as_ref().and_then(|v| serde_json::to_value(v).ok()),
                "origin": s.origin.to_string(),
                "origin_kind": s.origin.kind(),
            })
        })
        .collect();
    json!({
        "project_file": l.project,
        "user_file": l.user,
        "profile": l.profile.as_ref().map(|(p, _)| p),
        "settings": settings,
        "key": {"set": key.0, "variable": env.key_var()},
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn flag_key_defaults_are_the_flags_defaults() {
        let cmd = crate::cli::Cli::command();
        for k in KEYS.iter().filter(|k| k.apply == Apply::Flag && !k.table.is_empty()) {
            let sub = cmd.find_subcommand(k.table).unwrap();
            let arg = sub.get_arguments().find(|a| a.get_id() == k.name);
            let arg = arg.unwrap_or_else(|| panic!("{} has no --{}", k.table, k.name));
            let clap: Vec<String> = arg
                .get_default_values()
                .iter()
                .map(|v| v.to_string_lossy().into())
                .collect();
            let ours = k
                .default
                .and_then(default_value)
                .map(|v| files::flag_texts(&v))
                .unwrap_or_default();
            let norm = |v: &[String]| {
                v.iter()
                    .map(|s| s.trim_end_matches(".0").to_string())
                    .collect::<Vec<_>>()
            };
            let clap = if k.kind == Kind::Bool && clap.is_empty() {
                vec!["false".to_string()]
            } else {
                clap
            };
            assert_eq!(norm(&ours), norm(&clap), "{}.{}", k.table, k.name);
        }
    }
}
