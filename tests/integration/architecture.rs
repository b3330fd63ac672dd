//! ARCHITECTURE.md's layer table is the rule for imports: a module imports only from
//! lower layers (or from inside itself). This reads the table and every production line
//! of every source file.

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
/// several lines and nested ones too), outside its test-only items and comments.
fn imports(text: &str) -> Vec<String> {
    let code: String = production(text)
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

/// The file without its test-only items: every top-level `#[cfg(test)]` item is cut out
/// whole (a module, a function, an import), wherever it stands, and every other line kept.
fn production(text: &str) -> String {
    let mut out = String::new();
    let mut from = 0;
    for r in test_items(text) {
        out.push_str(&text[from..r.start]);
        from = r.end;
    }
    out.push_str(&text[from..]);
    out
}

/// Where each top-level `#[cfg(test)]` item is: from its attribute to the `}` or `;` that
/// ends it. Brackets are counted outside comments, strings and character literals.
fn test_items(text: &str) -> Vec<std::ops::Range<usize>> {
    const ATTR: &[u8] = b"#[cfg(test)]";
    let b = text.as_bytes();
    let ident = |i: usize| i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
    let (mut out, mut open) = (Vec::new(), None);
    let (mut i, mut depth) = (0usize, 0usize);
    while i < b.len() {
        let next = b.get(i + 1).copied();
        match b[i] {
            b'/' if next == Some(b'/') => {
                i = text[i..].find('\n').map_or(b.len(), |n| i + n);
                continue;
            }
            b'/' if next == Some(b'*') => {
                let mut nest = 0;
                while i < b.len() {
                    if b[i..].starts_with(b"/*") {
                        (nest, i) = (nest + 1, i + 2);
                    } else if b[i..].starts_with(b"*/") {
                        (nest, i) = (nest - 1, i + 2);
                        if nest == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
                continue;
            }
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
            }
            // A raw string: r"..", r#".."#, br#".."#.
            b'r' if !ident(i) || (b[i - 1] == b'b' && !ident(i - 1)) => {
                let hashes = b[i + 1..].iter().take_while(|&&c| c == b'#').count();
                if b.get(i + 1 + hashes) == Some(&b'"') {
                    let close = format!("\"{}", "#".repeat(hashes));
                    let body = i + 2 + hashes;
                    i = text[body..].find(&close).map_or(b.len(), |n| body + n + close.len());
                    continue;
                }
            }
            // A character literal ('x', '\n', '{'), or else a lifetime ('a).
            b'\'' => {
                if next == Some(b'\\') {
                    i += 2;
                    while i < b.len() && b[i] != b'\'' {
                        i += 1;
                    }
                } else if let Some(c) = text[i + 1..].chars().next()
                    && b.get(i + 1 + c.len_utf8()) == Some(&b'\'')
                {
                    i += 1 + c.len_utf8();
                }
            }
            b'#' if depth == 0 && open.is_none() && b[i..].starts_with(ATTR) => {
                open = Some(i);
                i += ATTR.len();
                continue;
            }
            b'{' | b'(' | b'[' => depth += 1,
            b')' | b']' => depth = depth.saturating_sub(1),
            b'}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    out.extend(open.take().map(|s| s..i + 1));
                }
            }
            b';' if depth == 0 => out.extend(open.take().map(|s| s..i + 1)),
            _ => {}
        }
        i += 1;
    }
    out.extend(open.map(|s| s..b.len()));
    out
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

/// A test-only item in the middle of a file hides none of the lines after it, whatever
/// braces its strings and characters hold.
#[test]
fn a_test_only_item_hides_no_production_line() {
    let text = "use crate::a;\n#[cfg(test)]\nfn helper() -> &'static str { \"}\" }\nuse crate::b;\n#[cfg(test)]\nuse crate::c;\n#[cfg(test)]\n#[allow(dead_code)]\npub(crate) mod tests {\n    use crate::d;\n    const X: char = '{';\n    const Y: &str = r#\"}\"#; /* } */\n}\npub fn f<'a>(x: &'a str) -> char { crate::e::g(x); '}' }\n#[cfg(test)]\nstruct S;\nuse crate::h;\n";
    assert_eq!(imports(text), ["a", "b", "e", "h"]);
    let cut: Vec<&str> = test_items(text).into_iter().map(|r| &text[r]).collect();
    assert_eq!(cut.len(), 4, "{cut:#?}");
    assert!(cut[0].starts_with("#[cfg(test)]\nfn helper") && cut[0].ends_with("\" }"));
    assert_eq!(cut[1], "#[cfg(test)]\nuse crate::c;");
    assert!(cut[2].contains("mod tests") && cut[2].ends_with("*/\n}"), "{}", cut[2]);
    assert_eq!(cut[3], "#[cfg(test)]\nstruct S;");
}

/// Test-only code sits at the end of each file (`#[cfg(test)] mod tests`, helpers in a
/// `mod testing`), so a reader finds the production code whole, above it.
#[test]
fn test_only_code_sits_at_the_end_of_each_file() {
    let mut files = Vec::new();
    rust_files(&repo().join("src"), &mut files);
    let mut wrong = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let rel = f.strip_prefix(repo()).unwrap().display().to_string();
        let items = test_items(&text);
        // Each item read to its own end, not to the end of the file.
        for r in &items {
            assert!(
                text[r.clone()].ends_with(['}', ';']),
                "{rel}: an unended item at {}",
                r.start
            );
        }
        let Some(first) = items.first().map(|r| r.start) else {
            continue;
        };
        let after = production(&text[first..]);
        if let Some(line) = after
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with("//"))
        {
            wrong.push(format!("{rel}: {line:?} comes after test-only code"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// No file in src is over 700 lines, and none in src/commands over 400: a longer one
/// holds more than one concern.
#[test]
fn no_file_is_too_long() {
    let mut files = Vec::new();
    rust_files(&repo().join("src"), &mut files);
    let mut long = Vec::new();
    for f in files {
        let rel = f.strip_prefix(repo()).unwrap().to_string_lossy().replace('\\', "/");
        let limit = if rel.starts_with("src/commands/") { 400 } else { 700 };
        let lines = std::fs::read_to_string(&f).unwrap().lines().count();
        if lines > limit {
            long.push(format!("{rel}: {lines} lines (at most {limit})"));
        }
    }
    assert!(long.is_empty(), "{}", long.join("\n"));
}

#[test]
fn every_variable_rbplan_reads_is_in_env_example() {
    let mut files = Vec::new();
    rust_files(&repo().join("src"), &mut files);
    let example = std::fs::read_to_string(repo().join(".env.example")).unwrap();
    let mut missing = std::collections::BTreeSet::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for (at, _) in text.match_indices("RBPLAN_") {
            let name: String = text[at..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            if name.len() > "RBPLAN_".len() && !name.ends_with('_') && !example.contains(&name) {
                missing.insert(name);
            }
        }
    }
    assert!(missing.is_empty(), ".env.example lacks {missing:?}");
}
