//! The config files: the project's `rbplan.toml` (found by walking up from the working
//! directory, stopping at the first one or at a repository root), the user's
//! `config.toml`, or `--config FILE`. Each is checked whole before any value is used:
//! an unknown key, a wrong type or a secret is an input error naming the file and line.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::Source;
use super::keys::{self, Apply, Key, Kind};
use crate::error::{Error, Result};

pub const PROJECT_FILE: &str = "rbplan.toml";

/// What the command line chose: `--config`, `--no-config`, `--profile`.
#[derive(Debug, Clone, Default)]
pub struct Choice {
    pub file: Option<PathBuf>,
    pub none: bool,
    pub profile: Option<String>,
}

/// One value from a file, with the key it is for and where it was written.
#[derive(Debug, Clone)]
pub struct Entry {
    pub key: &'static Key,
    pub value: toml::Value,
    pub origin: Source,
}

/// The files of this run and the values they give, the higher layer's value kept.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    pub project: Option<PathBuf>,
    pub user: Option<PathBuf>,
    pub profile: Option<(String, Source)>,
    /// By (table, name).
    pub entries: BTreeMap<(&'static str, &'static str), Entry>,
}

static INSTALLED: OnceLock<Loaded> = OnceLock::new();

/// Make `loaded` the files every `Env::load` of this process reads.
pub fn install(loaded: Loaded) {
    let _ = INSTALLED.set(loaded);
}

pub fn installed() -> Option<&'static Loaded> {
    INSTALLED.get()
}

impl Loaded {
    /// Values that stand for environment variables, as the variable's text.
    pub fn env_values(&self) -> HashMap<String, (String, Source)> {
        self.entries
            .values()
            .filter_map(|e| match e.key.apply {
                Apply::Env(var) => Some((var.to_string(), (env_text(&e.value), e.origin))),
                _ => None,
            })
            .collect()
    }

    pub fn key_var(&self) -> Option<String> {
        self.entries
            .get(&("", "api_key_env"))
            .and_then(|e| e.value.as_str().map(str::to_string))
    }

    /// Where a flag default of `command` came from, if `values` are what a file gave it.
    pub fn origin_of(&self, command: &str, name: &str, values: &[String]) -> Option<Source> {
        self.flag_values(command)
            .into_iter()
            .find(|e| e.key.name == name && flag_texts(&e.value) == values)
            .map(|e| e.origin)
    }

    /// Values that are flag defaults for `command`: its own table's and the top level's.
    pub fn flag_values(&self, command: &str) -> Vec<&Entry> {
        self.entries
            .values()
            .filter(|e| e.key.apply == Apply::Flag && (e.key.table.is_empty() || e.key.table == command))
            .collect()
    }
}

/// A value as an environment variable would hold it (lists `;`-separated).
fn env_text(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Array(a) => a.iter().map(env_text).collect::<Vec<_>>().join(";"),
        other => other.to_string(),
    }
}

/// A value as flag arguments.
pub fn flag_texts(v: &toml::Value) -> Vec<String> {
    match v {
        toml::Value::Array(a) => a.iter().map(env_text).collect(),
        other => vec![env_text(other)],
    }
}

/// The files `choice` names, read and checked; `env_profile` is RBPLAN_PROFILE.
pub fn load(choice: &Choice, env_profile: Option<(String, Source)>) -> Result<Loaded> {
    let mut loaded = Loaded::default();
    if choice.none {
        return Ok(loaded);
    }
    loaded.profile = match &choice.profile {
        Some(p) => Some((p.clone(), Source::Flag)),
        None => env_profile,
    };
    let project = match &choice.file {
        Some(f) if !f.is_file() => return Err(Error::input(f, None, "no such config file (--config)")),
        Some(f) => Some(f.clone()),
        None => std::env::current_dir().ok().and_then(|d| discover(&d)),
    };
    let user = user_file().filter(|p| p.is_file());
    let profile = loaded.profile.as_ref().map(|(p, _)| p.as_str());
    let mut found_profile = false;
    // Lowest layer first: a later value replaces an earlier one.
    for path in user.iter().chain(project.iter()) {
        let file = read(path)?;
        found_profile |= file.apply(&mut loaded.entries, profile)?;
    }
    if let Some(p) = profile
        && !found_profile
    {
        let files: Vec<String> = user
            .iter()
            .chain(project.iter())
            .map(|p| p.display().to_string())
            .collect();
        let searched = if files.is_empty() {
            "no config file was found".to_string()
        } else {
            format!("none in {}", files.join(", "))
        };
        return Err(Error::usage(format!(
            "profile {p:?}: no [profile.{p}] table ({searched})"
        )));
    }
    loaded.project = project;
    loaded.user = user;
    Ok(loaded)
}

/// The first `rbplan.toml` from `dir` upwards, stopping at a repository root.
pub fn discover(dir: &Path) -> Option<PathBuf> {
    for d in dir.ancestors() {
        let candidate = d.join(PROJECT_FILE);
        if candidate.is_file() {
            return Some(candidate);
        }
        if d.join(".git").exists() {
            return None;
        }
    }
    None
}

/// `$XDG_CONFIG_HOME/rbplan/config.toml`, else the platform's usual folder.
pub fn user_file() -> Option<PathBuf> {
    let nonempty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    let base = nonempty("XDG_CONFIG_HOME").or_else(|| {
        if cfg!(windows) {
            nonempty("APPDATA")
        } else {
            nonempty("HOME").map(|h| h.join(".config"))
        }
    })?;
    Some(base.join("rbplan").join("config.toml"))
}

/// One file, parsed and with each key's line.
struct File {
    path: &'static Path,
    dir: PathBuf,
    table: toml::Table,
    lines: HashMap<String, usize>,
}

fn read(path: &Path) -> Result<File> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::input(path, None, format!("cannot read: {e}")))?;
    let at = |span: Option<std::ops::Range<usize>>| span.map(|s| crate::util::line_of(&text, s.start));
    let spanned =
        toml::de::DeTable::parse(&text).map_err(|e| Error::input(path, at(e.span()), e.message().to_string()))?;
    let mut lines = HashMap::new();
    key_lines(spanned.get_ref(), "", &text, &mut lines);
    let table: toml::Table =
        toml::from_str(&text).map_err(|e| Error::input(path, at(e.span()), e.message().to_string()))?;
    let path: &'static Path = Box::leak(path.to_path_buf().into_boxed_path());
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    Ok(File {
        path,
        dir,
        table,
        lines,
    })
}

/// The line of every key, by its dotted path ("check.ignore").
fn key_lines(t: &toml::de::DeTable<'_>, prefix: &str, text: &str, out: &mut HashMap<String, usize>) {
    for (k, v) in t {
        let path = format!("{prefix}{}", k.get_ref());
        out.insert(path.clone(), crate::util::line_of(text, k.span().start));
        if let toml::de::DeValue::Table(inner) = v.get_ref() {
            key_lines(inner, &format!("{path}."), text, out);
        }
    }
}

impl File {
    fn line(&self, path: &str) -> usize {
        self.lines.get(path).copied().unwrap_or(1)
    }

    fn bad(&self, path: &str, msg: impl Into<String>) -> Error {
        Error::input(self.path, Some(self.line(path)), msg)
    }

    /// Its values into `into`: the top level, then the chosen profile over it. Whether it
    /// has that profile.
    fn apply(&self, into: &mut BTreeMap<(&'static str, &'static str), Entry>, profile: Option<&str>) -> Result<bool> {
        let mut profiles = None;
        for (k, v) in &self.table {
            if k == "profile" {
                profiles = Some(v);
                continue;
            }
            self.item("", k, v, "", into)?;
        }
        let Some(profiles) = profiles else { return Ok(false) };
        let toml::Value::Table(profiles) = profiles else {
            return Err(self.bad("profile", "profile must be a table of tables: [profile.NAME]"));
        };
        // Every profile is checked, the chosen one or not: a typo waits for no one.
        let mut found = false;
        for (name, body) in profiles {
            let prefix = format!("profile.{name}.");
            let toml::Value::Table(body) = body else {
                return Err(self.bad(&format!("profile.{name}"), "a profile must be a table: [profile.NAME]"));
            };
            let chosen = profile == Some(name.as_str());
            found |= chosen;
            let mut scratch = BTreeMap::new();
            let target = if chosen { &mut *into } else { &mut scratch };
            for (k, v) in body {
                self.item(&prefix, k, v, "", target)?;
            }
        }
        Ok(found)
    }

    /// One key at `prefix` + `name` in `table`, or a command table.
    fn item(
        &self,
        prefix: &str,
        name: &str,
        v: &toml::Value,
        table: &str,
        into: &mut BTreeMap<(&'static str, &'static str), Entry>,
    ) -> Result<()> {
        let path = format!("{prefix}{name}");
        if keys::is_secret_name(name) {
            return Err(self.bad(
                &path,
                format!(
                    "{name}: a key or token does not belong in a config file (files get committed); set OPENAI_API_KEY in the environment or .env, or name the variable to read with api_key_env = \"NAME\""
                ),
            ));
        }
        if table.is_empty()
            && let Some(t) = keys::TABLES.iter().find(|t| **t == name)
        {
            let toml::Value::Table(body) = v else {
                return Err(self.bad(&path, format!("{name} must be a table: [{name}]")));
            };
            for (k, v) in body {
                self.item(&format!("{path}."), k, v, t, into)?;
            }
            return Ok(());
        }
        let Some(key) = keys::find(table, name) else {
            return Err(self.unknown(&path, table, name));
        };
        if !kind_fits(key.kind, v) {
            return Err(self.bad(
                &path,
                format!("{name} must be {}, not {}", key.kind.words(), v.type_str()),
            ));
        }
        refuse_secret_value(v).map_err(|m| self.bad(&path, format!("{name}: {m}")))?;
        let value = self.normalized(key, v);
        let origin = Source::File(self.path, self.line(&path));
        into.insert((key.table, key.name), Entry { key, value, origin });
        Ok(())
    }

    fn unknown(&self, path: &str, table: &str, name: &str) -> Error {
        let place = if table.is_empty() {
            "at the top level".to_string()
        } else {
            format!("in [{table}]")
        };
        let hint = match keys::nearest(table, name) {
            Some(n) => format!("; did you mean {n}?"),
            None => String::new(),
        };
        let elsewhere: Vec<String> = keys::KEYS
            .iter()
            .filter(|k| k.name == name && k.table != table)
            .map(|k| {
                if k.table.is_empty() {
                    "the top level".into()
                } else {
                    format!("[{}]", k.table)
                }
            })
            .collect();
        let moved = if elsewhere.is_empty() {
            String::new()
        } else {
            format!(" (it goes in {})", elsewhere.join(" or "))
        };
        self.bad(path, format!("unknown key {name} {place}{moved}{hint}"))
    }

    /// Paths made relative to the file's folder; a single string as a list of one.
    fn normalized(&self, key: &Key, v: &toml::Value) -> toml::Value {
        match (key.kind, v) {
            (Kind::Path, toml::Value::String(s)) => {
                toml::Value::String(self.dir.join(s).to_string_lossy().into_owned())
            }
            (Kind::Strs, toml::Value::String(s)) => toml::Value::Array(vec![toml::Value::String(s.clone())]),
            (Kind::Num, toml::Value::Integer(n)) => toml::Value::Float(*n as f64),
            _ => v.clone(),
        }
    }
}

/// Whether `v` has the type `kind` takes.
pub fn kind_fits(kind: Kind, v: &toml::Value) -> bool {
    use toml::Value as V;
    match (kind, v) {
        (Kind::Str | Kind::Path, V::String(_)) | (Kind::Int, V::Integer(_)) | (Kind::Bool, V::Boolean(_)) => true,
        (Kind::Num, V::Integer(_) | V::Float(_)) => true,
        (Kind::Strs, V::String(_)) => true,
        (Kind::Strs, V::Array(a)) => a.iter().all(|x| x.is_str()),
        _ => false,
    }
}

/// A string that looks like an API key, refused wherever it is (never echoed).
fn refuse_secret_value(v: &toml::Value) -> std::result::Result<(), String> {
    let looks = |s: &str| {
        let s = s.trim();
        let body = s.rsplit(['=', ':', ' ']).next().unwrap_or(s).trim();
        (body.starts_with("sk-") && body.len() >= 20) || body.to_ascii_lowercase().starts_with("bearer ")
    };
    let found = match v {
        toml::Value::String(s) => looks(s),
        toml::Value::Array(a) => a.iter().filter_map(|x| x.as_str()).any(looks),
        _ => false,
    };
    if found {
        return Err("the value looks like an API key (not shown); a key does not belong in a config file: set OPENAI_API_KEY, or name the variable with api_key_env".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walk_stops_at_the_first_file_or_the_repository_root() {
        let root = tempfile::tempdir().unwrap();
        let sub = root.path().join("a/b");
        std::fs::create_dir_all(&sub).unwrap();
        assert_eq!(discover(&sub), None);
        std::fs::write(root.path().join(PROJECT_FILE), "").unwrap();
        assert_eq!(discover(&sub), Some(root.path().join(PROJECT_FILE)));
        std::fs::create_dir(root.path().join("a/.git")).unwrap();
        assert_eq!(discover(&sub), None, "a/ is a repository root");
    }

    #[test]
    fn values_apply_with_their_lines_and_profiles_override() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(PROJECT_FILE);
        std::fs::write(
            &p,
            "model = \"m1\"\n\n[check]\nignore = \"durations\"\n\n[profile.local]\nmodel = \"m2\"\ntemperature = 1\n",
        )
        .unwrap();
        let f = read(&p).unwrap();
        let mut m = BTreeMap::new();
        assert!(!f.apply(&mut m, None).unwrap());
        assert_eq!(m[&("", "model")].value.as_str(), Some("m1"));
        assert!(matches!(m[&("", "model")].origin, Source::File(_, 1)));
        assert!(matches!(m[&("check", "ignore")].origin, Source::File(_, 4)));
        assert_eq!(flag_texts(&m[&("check", "ignore")].value), vec!["durations"]);
        let mut m = BTreeMap::new();
        assert!(f.apply(&mut m, Some("local")).unwrap());
        assert_eq!(m[&("", "model")].value.as_str(), Some("m2"));
        assert!(matches!(m[&("", "model")].origin, Source::File(_, 7)));
        assert_eq!(env_text(&m[&("", "temperature")].value), "1.0");
    }
}
