//! The services of a batch: read from JSON Lines, CSV (with a header) or YAML (a list),
//! chosen by extension. Each item has `name`, `summary`, `stages` and optionally `model`.
//!
//! Reading happens twice. `validate` streams the whole file first, so a bad line, an
//! empty field, a duplicate name or two names that would share a file is an error naming
//! the file and line before anything is sent; it keeps only names and file names. `open`
//! then streams the items again for the workers, one at a time.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::template::Inputs;
use crate::util;

/// One service to plan.
#[derive(Debug, Clone)]
pub struct Item {
    pub name: String,
    pub inputs: Inputs,
    /// Overrides `--model` for this item.
    pub model: Option<String>,
    /// 1-based line the item starts on, for messages.
    pub line: usize,
    /// The plan's file name inside the output folder, without `.md`.
    pub slug: String,
    /// The stage names read from `inputs.stages`, once.
    pub stages: Vec<String>,
    /// The item's own context paths and runbook, relative to `dir`.
    pub context: Vec<String>,
    pub runbook: Option<String>,
    /// The input file's folder.
    pub dir: PathBuf,
}

/// What the input file declares, before checks.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    name: Option<String>,
    summary: Option<String>,
    #[serde(default, deserialize_with = "text_or_list")]
    stages: Option<String>,
    #[serde(default)]
    model: Option<String>,
    /// Paths or globs, relative to the input file.
    #[serde(default, deserialize_with = "paths")]
    context: Vec<String>,
    #[serde(default)]
    runbook: Option<String>,
}

/// `context` as one path or a list of them (CSV: `;`-separated in one cell).
fn paths<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Vec<String>, D::Error> {
    Ok(text_or_list(d)?.map(|t| split_paths(&t)).unwrap_or_default())
}

fn split_paths(t: &str) -> Vec<String> {
    t.split(['\n', ';'])
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

/// `stages` as one text, or (JSON and YAML) as a list of stage names: one line each.
fn text_or_list<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Option<String>, D::Error> {
    struct V;
    impl<'de> serde::de::Visitor<'de> for V {
        type Value = Option<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a text, or a list of stage names")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_unit<E: serde::de::Error>(self) -> std::result::Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: serde::de::Error>(self) -> std::result::Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Self::Value, A::Error> {
            let mut lines = Vec::new();
            while let Some(s) = seq.next_element::<String>()? {
                lines.push(s.replace('\n', " "));
            }
            Ok(Some(lines.join("\n")))
        }
    }
    d.deserialize_any(V)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jsonl,
    Csv,
    Yaml,
}

impl Format {
    pub fn of(path: &Path) -> Result<Format> {
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        match ext.as_str() {
            "jsonl" | "ndjson" => Ok(Format::Jsonl),
            "csv" => Ok(Format::Csv),
            "yaml" | "yml" => Ok(Format::Yaml),
            _ => Err(Error::input(
                path,
                None,
                "unknown input format: use .jsonl (one JSON object per line), .csv (with a header row) or .yaml/.yml (a list)",
            )),
        }
    }
}

/// Names, lines and file names of every item, in input order: the result of a full
/// check. Small: the texts are read again when the items run.
pub struct Manifest {
    pub path: PathBuf,
    pub format: Format,
    pub entries: Vec<Entry>,
    /// The per-item `model` values used, and whether any item uses `--model`.
    pub models: std::collections::BTreeSet<String>,
    pub uses_default_model: bool,
    /// Some item has its own `context` or `runbook`.
    pub uses_context: bool,
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub name: String,
    pub line: usize,
    pub slug: String,
}

impl Item {
    /// What the item's plan is checked against: its stages and its summary's names.
    pub fn migration(&self) -> crate::check::Migration {
        crate::check::Migration::new(Some(self.stages.clone()), Some(&self.inputs.summary))
    }
}

impl Manifest {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Read the whole input once and refuse it if anything is wrong.
pub fn validate(path: &Path) -> Result<Manifest> {
    let format = Format::of(path)?;
    let mut entries = Vec::new();
    let mut by_name: HashMap<String, usize> = HashMap::new();
    let mut by_slug: HashMap<String, (usize, String)> = HashMap::new();
    let mut models = std::collections::BTreeSet::new();
    let mut uses_default_model = false;
    let mut uses_context = false;
    for item in open(path)? {
        let item = item?;
        uses_context |= !item.context.is_empty() || item.runbook.is_some();
        match &item.model {
            Some(m) => {
                models.insert(m.clone());
            }
            None => uses_default_model = true,
        }
        if let Some(first) = by_name.get(&item.name) {
            return Err(Error::input(
                path,
                Some(item.line),
                format!(
                    "duplicate name {:?} (first on line {first}); names must be unique",
                    item.name
                ),
            ));
        }
        // Case-insensitive file systems would merge "Orders" and "orders": compare lowercased.
        if let Some((first, other)) = by_slug.get(&item.slug.to_lowercase()) {
            return Err(Error::input(
                path,
                Some(item.line),
                format!(
                    "name {:?} would be written to the same file as {other:?} (line {first}); rename one",
                    item.name
                ),
            ));
        }
        by_name.insert(item.name.clone(), item.line);
        by_slug.insert(item.slug.to_lowercase(), (item.line, item.name.clone()));
        entries.push(Entry {
            name: item.name,
            line: item.line,
            slug: item.slug,
        });
    }
    if entries.is_empty() {
        return Err(Error::input(path, None, "no items: nothing to plan"));
    }
    Ok(Manifest {
        path: path.to_path_buf(),
        format,
        entries,
        models,
        uses_default_model,
        uses_context,
    })
}

pub type Items = Box<dyn Iterator<Item = Result<Item>> + Send>;

/// Stream the items of `path`. JSON Lines and CSV are read a record at a time; a YAML
/// list is parsed whole (YAML has no record boundaries), which holds the inputs only.
pub fn open(path: &Path) -> Result<Items> {
    let format = Format::of(path)?;
    let file = File::open(path).map_err(|e| Error::input(path, None, format!("cannot read: {e}")))?;
    let p = path.to_path_buf();
    Ok(match format {
        Format::Jsonl => Box::new(jsonl(p, BufReader::new(file))),
        Format::Csv => Box::new(csv_items(p, file)),
        Format::Yaml => yaml(p, file)?,
    })
}

fn jsonl(path: PathBuf, reader: BufReader<File>) -> impl Iterator<Item = Result<Item>> + Send {
    let mut n = 0usize;
    reader.split(b'\n').filter_map(move |line| {
        n += 1;
        let bytes = match line {
            Ok(b) => b,
            Err(e) => return Some(Err(Error::input(&path, Some(n), format!("cannot read: {e}")))),
        };
        let Ok(text) = std::str::from_utf8(&bytes) else {
            return Some(Err(Error::input(&path, Some(n), "not valid UTF-8 text")));
        };
        let text = text.trim_start_matches('\u{feff}').trim();
        if text.is_empty() {
            return None;
        }
        let raw: Raw = match serde_json::from_str(text) {
            Ok(r) => r,
            Err(e) => {
                return Some(Err(Error::input(
                    &path,
                    Some(n),
                    format!("not a JSON object with name, summary, stages: {}", strip_json_pos(&e)),
                )));
            }
        };
        Some(finish(&path, n, raw))
    })
}

/// serde_json appends "at line 1 column 7"; within one line only the column helps.
fn strip_json_pos(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.rfind(" at line ") {
        Some(i) => format!("{} (column {})", &s[..i], e.column()),
        None => s,
    }
}

fn csv_items(path: PathBuf, file: File) -> impl Iterator<Item = Result<Item>> + Send {
    let mut rdr = csv::ReaderBuilder::new().trim(csv::Trim::Headers).from_reader(file);
    // Column names as written, without a byte-order mark; matched in any case ("Name").
    let headers: std::result::Result<Vec<String>, csv::Error> = rdr
        .headers()
        .map(|h| h.iter().map(|c| c.trim_start_matches('\u{feff}').to_string()).collect());
    let mut records = rdr.into_records();
    let mut header_checked = false;
    std::iter::from_fn(move || {
        if !header_checked {
            header_checked = true;
            let checked = match &headers {
                Err(e) => Err(csv_error(&path, e, 1)),
                Ok(h) => check_csv_header(h).map_err(|m| Error::input(&path, Some(1), m)),
            };
            if let Err(e) = checked {
                return Some(Err(e));
            }
        }
        let h = headers.as_ref().ok()?;
        Some(match records.next()? {
            Err(e) => {
                let line = e.position().map(|p| p.line() as usize).unwrap_or(0);
                Err(csv_error(&path, &e, line))
            }
            Ok(r) => {
                let line = r.position().map(|p| p.line() as usize).unwrap_or(0);
                let get = |k: &str| {
                    h.iter()
                        .position(|c| c.eq_ignore_ascii_case(k))
                        .and_then(|i| r.get(i))
                        .map(str::to_string)
                };
                let raw = Raw {
                    name: get("name"),
                    summary: get("summary"),
                    stages: get("stages"),
                    model: get("model").filter(|m| !m.trim().is_empty()),
                    context: get("context").map(|c| split_paths(&c)).unwrap_or_default(),
                    runbook: get("runbook").filter(|r| !r.trim().is_empty()),
                };
                finish(&path, line, raw)
            }
        })
    })
}

/// The header row names each column once, only known ones, and the three required.
fn check_csv_header(h: &[String]) -> std::result::Result<(), String> {
    if h.iter().all(|c| c.trim().is_empty()) {
        return Err("the file is empty: expected a header row (name,summary,stages) and a row per service".into());
    }
    for (i, col) in h.iter().enumerate() {
        if h[..i].iter().any(|c| c.eq_ignore_ascii_case(col)) {
            return Err(format!(
                "column {col:?} appears twice in the header (names match in any case)"
            ));
        }
        if !["name", "summary", "stages", "model", "context", "runbook"]
            .iter()
            .any(|k| col.eq_ignore_ascii_case(k))
        {
            return Err(format!(
                "unknown column {col:?} in the header; expected name, summary, stages and optionally model, context, runbook"
            ));
        }
    }
    let has = |k: &str| h.iter().any(|c| c.eq_ignore_ascii_case(k));
    // With a runbook column, its steps and title may stand in for stages and summary.
    let needed: &[&str] = if has("runbook") {
        &["name"]
    } else {
        &["name", "summary", "stages"]
    };
    match needed.iter().find(|need| !has(need)) {
        Some(need) => Err(format!(
            "the header has no {need:?} column; expected name, summary, stages and optionally model"
        )),
        None => Ok(()),
    }
}

fn csv_error(path: &Path, e: &csv::Error, line: usize) -> Error {
    let msg = match e.kind() {
        csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
            format!("this row has {len} fields but the header has {expected_len}")
        }
        csv::ErrorKind::Utf8 { .. } => "not valid UTF-8 text".to_string(),
        _ => e.to_string(),
    };
    Error::input(path, (line > 0).then_some(line), msg)
}

fn yaml(path: PathBuf, file: File) -> Result<Items> {
    let mut text = String::new();
    std::io::Read::read_to_string(&mut BufReader::new(file), &mut text)
        .map_err(|e| Error::input(&path, None, format!("cannot read (YAML must be UTF-8 text): {e}")))?;
    let list: Vec<serde_saphyr::Spanned<Raw>> = serde_saphyr::from_str(&text).map_err(|e| {
        let line = e.location().map(|l| l.line() as usize).filter(|&l| l > 0);
        let msg = e.to_string();
        // The library's message can carry a rendered snippet; the first line says what,
        // after an "error: line N column M: " prefix the file:line already says.
        let first = msg.lines().next().unwrap_or("invalid YAML").trim();
        let first = first.strip_prefix("error: ").unwrap_or(first);
        let (what, column) = match first.strip_prefix("line ").and_then(|r| r.split_once(": ")) {
            Some((pos, rest)) => (rest, pos.split_once(" column ").map(|(_, c)| c.to_string())),
            None => (first, None),
        };
        let column = column.map(|c| format!(" (column {c})")).unwrap_or_default();
        let hint = if what.contains("expected") && !what.contains("sequence") {
            ""
        } else {
            " (expected a list of items with name, summary, stages)"
        };
        Error::input(&path, line, format!("{what}{column}{hint}"))
    })?;
    Ok(Box::new(
        list.into_iter()
            .map(move |s| finish(&path, s.defined.line() as usize, s.value)),
    ))
}

/// Check one item's fields and give it a file name.
fn finish(path: &Path, line: usize, mut raw: Raw) -> Result<Item> {
    let err = |msg: String| Error::input(path, Some(line), msg);
    let name = raw.name.take().ok_or_else(|| err("missing \"name\"".into()))?;
    let who = if name.trim().is_empty() {
        "the item with an empty name".to_string()
    } else {
        format!("{name:?}")
    };
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    from_runbook(&mut raw, &dir).map_err(|m| err(format!("{who}: {m}")))?;
    let text = |v: Option<String>, field: &str| -> Result<String> {
        match v {
            None => Err(err(format!("{who} has no \"{field}\""))),
            Some(s) if s.trim().is_empty() => Err(err(format!("{who} has an empty \"{field}\""))),
            Some(s) => Ok(s.trim_end_matches(['\n', '\r']).to_string()),
        }
    };
    let summary = text(raw.summary, "summary")?;
    let stages = text(raw.stages, "stages")?;
    let stage_names = crate::input::parse_stages(&stages);
    if stage_names.is_empty() {
        // Only separators or list markers: nothing a plan could be checked against.
        return Err(err(format!(
            "{who} names no stage in \"stages\": give one per line, or separate them with \";\""
        )));
    }
    let model = raw.model.map(|m| m.trim().to_string()).filter(|m| !m.is_empty());
    Ok(Item {
        slug: slug(&name),
        name,
        inputs: Inputs::new(summary, stages),
        model,
        line,
        stages: stage_names,
        context: raw.context,
        runbook: raw.runbook.filter(|r| !r.trim().is_empty()),
        dir,
    })
}

/// An item with a `runbook` and no `stages` (or `summary`): its runbook's steps (title
/// and first paragraph) stand in, as for `ask --runbook`.
fn from_runbook(raw: &mut Raw, dir: &Path) -> std::result::Result<(), String> {
    let Some(rb) = raw.runbook.as_deref().filter(|r| !r.trim().is_empty()) else {
        return Ok(());
    };
    let blank = |v: &Option<String>| v.as_deref().is_none_or(|t| t.trim().is_empty());
    if !blank(&raw.stages) && !blank(&raw.summary) {
        return Ok(());
    }
    let p = dir.join(rb);
    let text = std::fs::read_to_string(&p).map_err(|e| format!("cannot read its runbook {}: {e}", p.display()))?;
    let derived = crate::input::runbook::derive(&text);
    let given = crate::input::Supplied {
        summary: raw
            .summary
            .clone()
            .filter(|t| !t.trim().is_empty())
            .map(|t| text_of(t, "summary")),
        stages: raw
            .stages
            .clone()
            .filter(|t| !t.trim().is_empty())
            .map(|t| text_of(t, "stages")),
    };
    let filled = given.or_runbook(rb, &derived).map_err(|e| e.to_string())?;
    raw.summary = filled.summary.map(|t| t.text);
    raw.stages = filled.stages.map(|t| t.text);
    Ok(())
}

fn text_of(text: String, field: &str) -> crate::input::Text {
    crate::input::Text {
        text,
        origin: format!("\"{field}\""),
    }
}

/// File names that would clash with the report or mean something special somewhere.
const RESERVED: &[&str] = &[
    "report", "con", "prn", "aux", "nul", "com1", "com2", "com3", "lpt1", "lpt2", "lpt3",
];
const MAX_SLUG: usize = 80;

/// A safe file name (without extension) for a service name: ASCII letters, digits, `.`,
/// `_` and `-`, never starting with a dot, never a path. A name that is not already such a
/// name in lower case gets a hash of the original, so two names never share a file.
pub fn slug(name: &str) -> String {
    let mut s = String::with_capacity(name.len().min(MAX_SLUG));
    let mut push = |c: char| {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
            s.push(c);
        } else if !s.ends_with('-') {
            s.push('-');
        }
    };
    for c in name.chars() {
        // Letters outside ASCII keep a readable form ("zürich" → "zurich"); the hash added
        // below keeps such names apart from their ASCII twins.
        match deunicode::deunicode_char(c).filter(|_| !c.is_ascii() && c.is_alphabetic()) {
            Some(ascii) => ascii.chars().for_each(&mut push),
            None => push(c),
        }
    }
    let mut s = s.trim_matches(|c| c == '-' || c == '.').to_string();
    s.truncate(MAX_SLUG);
    let exact = s == name && !RESERVED.contains(&s.as_str()) && !s.is_empty();
    if exact {
        return s;
    }
    let h = util::short_hash(&[name.as_bytes()]);
    let h = &h["sha256:".len().."sha256:".len() + 8];
    if s.is_empty() {
        format!("unnamed-{h}")
    } else {
        format!("{}-{h}", s.trim_end_matches(['-', '.']))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_are_kept() {
        assert_eq!(slug("orders-db"), "orders-db");
        assert_eq!(slug("payments_v2.eu"), "payments_v2.eu");
    }

    #[test]
    fn letters_outside_ascii_keep_a_readable_form() {
        let s = slug("zürich-api");
        assert!(
            s.starts_with("zurich-api-") && s.len() == "zurich-api-".len() + 8,
            "{s}"
        );
        assert_ne!(s, slug("zurich-api"));
        assert!(slug("Straße").starts_with("strasse-"), "{}", slug("Straße"));
        assert!(slug("ok\u{1F600}").starts_with("ok-"), "{}", slug("ok\u{1F600}"));
    }

    #[test]
    fn hostile_names_stay_inside_and_never_collide() {
        for hostile in [
            "../x",
            "/etc/x",
            "..",
            ".",
            "",
            "a/../../b",
            "x\0y",
            "report",
            "CON",
            "~root",
        ] {
            let s = slug(hostile);
            assert!(!s.is_empty() && !s.starts_with('.'), "{hostile:?} → {s:?}");
            assert!(
                s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)),
                "{s:?}"
            );
            assert_ne!(s, "report");
        }
        assert_ne!(slug("../x"), slug("/etc/x"));
        assert_ne!(slug("a b"), slug("a/b"));
        assert_ne!(slug("Orders"), slug("orders"));
        assert_ne!(slug(""), slug(" "));
        assert!(slug(&"x".repeat(500)).len() <= MAX_SLUG + 9);
        assert_eq!(slug("Orders DB (EU)").split('-').next(), Some("orders"));
    }

    fn write(name: &str, text: &str) -> (tempfile::TempDir, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(name);
        std::fs::write(&p, text).unwrap();
        (d, p)
    }

    fn err(name: &str, text: &str) -> String {
        let (_d, p) = write(name, text);
        match validate(&p) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("{name} was accepted:\n{text}"),
        }
    }

    #[test]
    fn three_formats_read_the_same_items() {
        let (_a, j) = write(
            "s.jsonl",
            "{\"name\":\"a\",\"summary\":\"S1\",\"stages\":\"x; y\"}\n\n{\"name\":\"b\",\"summary\":\"S2\",\"stages\":\"z\",\"model\":\"m2\"}\n",
        );
        let (_b, c) = write("s.csv", "name,summary,stages,model\na,S1,x; y,\nb,S2,z,m2\n");
        // Column names in any case, as spreadsheets like to write them.
        let (_d, c2) = write("t.csv", "Name,Summary,STAGES,Model\na,S1,x; y,\nb,S2,z,m2\n");
        let (_c, y) = write(
            "s.yaml",
            "- name: a\n  summary: S1\n  stages: x; y\n- name: b\n  summary: S2\n  stages: z\n  model: m2\n",
        );
        for p in [j, c, c2, y] {
            let items: Vec<Item> = open(&p).unwrap().map(|i| i.unwrap()).collect();
            assert_eq!(items.len(), 2, "{}", p.display());
            assert_eq!(items[0].name, "a");
            assert_eq!(items[0].inputs.summary, "S1");
            assert_eq!(items[0].inputs.stages, "x; y");
            assert_eq!(items[0].model, None);
            assert_eq!(items[1].model.as_deref(), Some("m2"));
            assert!(items[1].line > items[0].line);
            let names: Vec<String> = validate(&p).unwrap().entries.into_iter().map(|e| e.name).collect();
            assert_eq!(names, vec!["a", "b"]);
        }
    }

    #[test]
    fn errors_name_the_line() {
        let e = err(
            "s.jsonl",
            "{\"name\":\"a\",\"summary\":\"S\",\"stages\":\"x\"}\n{\"name\":\"b\",\"summary\":\"S\"\n",
        );
        assert!(e.contains("s.jsonl:2:"), "{e}");
        let e = err(
            "s.jsonl",
            "{\"name\":\"a\",\"summary\":\"S\",\"stages\":\"x\"}\n{\"name\":\"b\",\"summary\":\"S\",\"stage\":\"x\"}\n",
        );
        assert!(e.contains(":2:") && e.contains("unknown field `stage`"), "{e}");
        let e = err("s.csv", "name,summary,stages\na,S,x\nb,S\n");
        assert!(e.contains("s.csv:3:") && e.contains("2 fields"), "{e}");
        let e = err("s.csv", "");
        assert!(e.contains("s.csv:1:") && e.contains("the file is empty"), "{e}");
        let e = err("s.csv", "name,Name,summary,stages\na,b,S,x\n");
        assert!(e.contains("s.csv:1:") && e.contains("\"Name\" appears twice"), "{e}");
        let e = err("s.csv", "name,summary,stage\na,S,x\n");
        assert!(e.contains("s.csv:1:") && e.contains("\"stage\""), "{e}");
        let e = err("s.csv", "name,summary,stages\na,S,x\nb,   ,x\n");
        assert!(e.contains("s.csv:3:") && e.contains("empty \"summary\""), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.jsonl");
        std::fs::write(&p, "{\"name\":\"a\",\"summary\":\"s\",\"stages\":\"x\"}\n{\"name\":\"b\",\"summary\":\"s\",\"stages\":\" ; - ;\"}\n").unwrap();
        let e = validate(&p).err().unwrap().to_string();
        assert!(e.contains("s.jsonl:2:") && e.contains("names no stage"), "{e}");
        let e = err(
            "s.yaml",
            "- name: a\n  summary: S\n  stages: x\n- name: b\n  summary: S\n",
        );
        assert!(e.contains("s.yaml:4:") && e.contains("\"stages\""), "{e}");
        let e = err("s.yaml", "- name: a\n  summary: [unclosed\n");
        assert!(e.contains("s.yaml:"), "{e}");
        // No "error:" of the library's own (main adds one), the position once, the field named.
        let e = err("s.yaml", "- name: a\n  summary: S\n  stages: x\n  bogus: 1\n");
        assert!(
            e.contains("s.yaml:4: unknown field `bogus`") && !e.contains("error"),
            "{e}"
        );
        assert!(e.contains("(column 3)") && !e.contains("line 4 column"), "{e}");
        let e = err("s.yaml", "name: a\n");
        assert!(e.contains("expected a list of items"), "{e}");
        let e = err("s.jsonl", "{\"name\":\"a\",\"summary\":\"S\",\"stages\":7}\n");
        assert!(e.contains("expected a text, or a list of stage names"), "{e}");
        let e = err("s.txt", "");
        assert!(e.contains("unknown input format"), "{e}");
    }

    #[test]
    fn stages_may_be_a_list_in_json_and_yaml() {
        let (_a, j) = write(
            "s.jsonl",
            "{\"name\":\"a\",\"summary\":\"S\",\"stages\":[\"Backfill (high)\",\"Cutover\"]}\n",
        );
        let (_b, y) = write(
            "s.yaml",
            "- name: a\n  summary: S\n  stages: [Backfill (high), Cutover]\n",
        );
        for p in [j, y] {
            let items: Vec<Item> = open(&p).unwrap().map(|i| i.unwrap()).collect();
            assert_eq!(items[0].inputs.stages, "Backfill (high)\nCutover", "{}", p.display());
            assert_eq!(items[0].stages, ["Backfill", "Cutover"]);
        }
    }

    #[test]
    fn duplicates_and_shared_files_are_refused() {
        let e = err(
            "s.jsonl",
            "{\"name\":\"a\",\"summary\":\"S\",\"stages\":\"x\"}\n{\"name\":\"b\",\"summary\":\"S\",\"stages\":\"x\"}\n{\"name\":\"a\",\"summary\":\"S\",\"stages\":\"x\"}\n",
        );
        assert!(
            e.contains(":3:") && e.contains("duplicate name \"a\" (first on line 1)"),
            "{e}"
        );
        let e = err("s.csv", "name,summary,stages\n,S,x\n,S,y\n");
        assert!(e.contains(":3:") && e.contains("duplicate"), "{e}");
    }
}
