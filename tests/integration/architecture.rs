//! ARCHITECTURE.md's layer table is the rule for imports: a module imports only from
//! lower layers (or from inside itself). This reads the table and every source file.

use std::collections::BTreeMap;
use std::path::Path;

use super::common::{read, repo};

/// Module → layer, from the table's rows: "| 6 | `repair` `output` | ... |".
fn layers() -> BTreeMap<String, u32> {
    let doc = read("ARCHITECTURE.md");
    let mut out = BTreeMap::new();
    for line in doc.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let Some(layer) = cells.get(1).and_then(|c| c.parse::<u32>().ok()) else {
            continue;
        };
        for name in cells[2].split('`').skip(1).step_by(2) {
            out.insert(name.to_string(), layer);
        }
    }
    out
}

/// The crate's own modules a file names (`crate::x`, `use crate::{x, y}`, groups over
/// several lines and nested ones too), outside its test-only code and comments.
fn imports(text: &str) -> Vec<String> {
    // Test-only modules (`mod tests`, helpers for them) sit at the end of a file.
    let code = match text.find("#[cfg(test)]\n") {
        Some(i) => &text[..i],
        None => text,
    };
    let code: String = code
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let mut names = Vec::new();
    let mut rest = code.as_str();
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        match rest.strip_prefix('{') {
            Some(group) => names.extend(top_level(group).into_iter().filter_map(|p| first_word(p.trim()))),
            None => names.extend(first_word(rest)),
        }
    }
    names
}

/// The comma-separated parts of a `{...}` group (text after its `{`), nested groups whole.
fn top_level(group: &str) -> Vec<&str> {
    let (mut depth, mut from, mut parts) = (0usize, 0usize, Vec::new());
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                parts.push(&group[from..i]);
                return parts;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&group[from..i]);
                from = i + 1;
            }
            _ => {}
        }
    }
    parts
}

fn first_word(s: &str) -> Option<String> {
    let w: String = s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
    (!w.is_empty()).then_some(w)
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn imports_follow_the_layers() {
    let layers = layers();
    assert!(layers.len() >= 10, "the layer table was not found: {layers:?}");
    let src = repo().join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut wrong = Vec::new();
    for f in files {
        let rel = f.strip_prefix(&src).unwrap().to_string_lossy().replace('\\', "/");
        let module = rel.split('/').next().unwrap().trim_end_matches(".rs").to_string();
        if module == "lib" || module == "main" {
            continue;
        }
        let Some(&own) = layers.get(&module) else {
            wrong.push(format!("src/{rel}: module {module} is not in ARCHITECTURE.md's table"));
            continue;
        };
        for name in imports(&std::fs::read_to_string(&f).unwrap()) {
            if name == module {
                continue;
            }
            match layers.get(&name) {
                Some(&l) if l < own => {}
                Some(&l) => wrong.push(format!("src/{rel} (layer {own}) imports {name} (layer {l})")),
                None => wrong.push(format!("src/{rel} imports {name}, which is not in the table")),
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against ARCHITECTURE.md:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn nothing_below_the_commands_imports_them() {
    let mut files = Vec::new();
    rust_files(&repo().join("src"), &mut files);
    for f in files {
        let rel = f.strip_prefix(repo()).unwrap().to_string_lossy().into_owned();
        if rel.starts_with("src/commands") || rel.ends_with("lib.rs") || rel.ends_with("main.rs") {
            continue;
        }
        let names = imports(&std::fs::read_to_string(&f).unwrap());
        assert!(!names.iter().any(|n| n == "commands"), "{rel} imports crate::commands");
    }
}

/// The parser above finds what it should (a check that cannot fail is no check).
#[test]
fn the_import_reader_sees_grouped_and_plain_paths() {
    let text = "use crate::check::{Checker, Code};\nuse crate::{input, logging};\nlet x = crate::term::count(1, \"a\"); // crate::cli in a comment\n#[cfg(test)]\nmod tests {\n    use crate::commands;\n}\n";
    assert_eq!(imports(text), ["check", "input", "logging", "term"]);
    let nested = "use crate::{\n    batch::{report::X, Stop},\n    // crate::cli\n    client,\n};\n";
    assert_eq!(imports(nested), ["batch", "client"]);
}
