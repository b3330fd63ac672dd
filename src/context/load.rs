//! Reading context paths: a file, a folder (walked with ripgrep's ignore rules: hidden
//! files, `.gitignore`, `.ignore` and git excludes; binaries skipped), a glob, or `-` for
//! stdin. Every file read must be UTF-8 text; credentials are replaced as it is read.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::{Context, File, Redaction, Skip, Skipped, redact};
use crate::error::{Error, Result};

/// How context paths are read.
#[derive(Debug, Clone)]
pub struct Options {
    /// Replace credentials (off only with `--no-redact`).
    pub redact: bool,
    /// Relative paths are read from here (a batch input file's folder; else the working
    /// directory).
    pub base: PathBuf,
    /// Given for every plan of a run (the command line), not by one batch item.
    pub shared: bool,
}

/// Read every path of `specs` (as typed: a file, folder, glob or `-`), in order, each
/// file once.
pub fn load(specs: &[String], o: &Options) -> Result<Context> {
    let mut r = Reader {
        o,
        cwd: std::env::current_dir().map_err(|e| Error::io("reading the working directory", e))?,
        seen: BTreeSet::new(),
        ctx: Context::default(),
        stdin_read: false,
    };
    for spec in specs {
        r.spec(spec)?;
    }
    Ok(r.ctx)
}

struct Reader<'a> {
    o: &'a Options,
    cwd: PathBuf,
    seen: BTreeSet<PathBuf>,
    ctx: Context,
    stdin_read: bool,
}

impl Reader<'_> {
    fn spec(&mut self, spec: &str) -> Result<()> {
        if spec == "-" {
            return self.stdin();
        }
        let path = self.o.base.join(spec);
        if spec.contains(['*', '?', '[']) && !path.exists() {
            return self.glob(spec, &path);
        }
        if path.is_dir() {
            return self.folder(&path);
        }
        if path.is_file() {
            return self.file(&path, true);
        }
        Err(Error::input(path, None, "no such context file or folder"))
    }

    fn stdin(&mut self) -> Result<()> {
        if std::mem::replace(&mut self.stdin_read, true) {
            return Err(Error::usage("--context - (stdin) is given twice"));
        }
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .map_err(|e| Error::input("<stdin>", None, format!("cannot read the context: {e}")))?;
        self.add(Path::new("-"), "-".into(), bytes, true)
    }

    fn glob(&mut self, spec: &str, pattern: &Path) -> Result<()> {
        let shown = pattern.to_string_lossy();
        let paths = glob::glob(&shown).map_err(|e| Error::usage(format!("--context {spec}: not a valid glob: {e}")))?;
        let mut matched = 0;
        for p in paths.flatten() {
            matched += 1;
            if p.is_dir() {
                self.folder(&p)?;
            } else {
                self.file(&p, false)?;
            }
        }
        if matched == 0 {
            return Err(Error::usage(format!("--context {spec}: the pattern matches no file")));
        }
        Ok(())
    }

    /// A folder: the files ripgrep would read, in name order; what it leaves out is
    /// reported as skipped.
    fn folder(&mut self, dir: &Path) -> Result<()> {
        let (files, dirs) = walk(dir);
        let mut skipped = Vec::new();
        left_out(dir, dir, &files, &dirs, &mut skipped);
        for (p, why) in skipped {
            let path = self.shown(&p);
            self.ctx.skipped.push(Skipped { path, why });
        }
        for f in files {
            self.file(&f, false)?;
        }
        Ok(())
    }

    /// One file. Named on its own (`named`), a binary is refused; found in a folder or by
    /// a glob, it is skipped.
    fn file(&mut self, path: &Path, named: bool) -> Result<()> {
        let bytes =
            std::fs::read(path).map_err(|e| Error::input(path, None, format!("cannot read context file: {e}")))?;
        if is_binary(&bytes) {
            if named {
                return Err(Error::input(
                    path,
                    None,
                    "not a text file: a context file must be UTF-8 text",
                ));
            }
            let shown = self.shown(path);
            self.ctx.skipped.push(Skipped {
                path: shown,
                why: Skip::Binary,
            });
            return Ok(());
        }
        let shown = self.shown(path);
        self.add(path, shown, bytes, false)
    }

    fn add(&mut self, path: &Path, shown: String, bytes: Vec<u8>, stdin: bool) -> Result<()> {
        let key = if stdin {
            PathBuf::from("-")
        } else {
            std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
        };
        if !self.seen.insert(key) {
            return Ok(());
        }
        let hash = crate::util::short_hash(&[&bytes]);
        let text = String::from_utf8(bytes).map_err(|e| {
            let line = crate::util::line_of(&String::from_utf8_lossy(e.as_bytes()), e.utf8_error().valid_up_to());
            Error::input(path, Some(line), "not valid UTF-8 text: a context file must be text")
        })?;
        let text = text.strip_prefix('\u{feff}').map(str::to_string).unwrap_or(text);
        let text = self.redacted(&shown, text);
        self.ctx.files.push(File {
            lang: super::lang_of(&shown),
            path: shown,
            text,
            hash,
            shared: self.o.shared,
        });
        Ok(())
    }

    fn redacted(&mut self, shown: &str, text: String) -> String {
        if !self.o.redact {
            return text;
        }
        let (out, found) = redact::redact(&text);
        for f in found {
            self.ctx.redactions.push(Redaction {
                path: shown.to_string(),
                line: f.line,
                kind: f.kind.name(),
            });
        }
        out.into_owned()
    }

    /// `path` relative to the working directory when it is under it.
    fn shown(&self, path: &Path) -> String {
        let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let rel = abs.strip_prefix(&self.cwd).map(Path::to_path_buf).unwrap_or(abs);
        rel.to_string_lossy().replace('\\', "/")
    }
}

/// The files (sorted) and folders under `dir` that ripgrep's rules keep.
fn walk(dir: &Path) -> (BTreeSet<PathBuf>, BTreeSet<PathBuf>) {
    let (mut files, mut dirs) = (BTreeSet::new(), BTreeSet::new());
    let walker = ignore::WalkBuilder::new(dir).require_git(false).build();
    for e in walker.flatten() {
        match e.file_type() {
            Some(t) if t.is_dir() => dirs.insert(e.into_path()),
            Some(t) if t.is_file() => files.insert(e.into_path()),
            _ => false,
        };
    }
    (files, dirs)
}

/// What under `at` the walk left out: each file, or a folder as a whole; `.git` is not
/// reported.
fn left_out(
    root: &Path,
    at: &Path,
    files: &BTreeSet<PathBuf>,
    dirs: &BTreeSet<PathBuf>,
    out: &mut Vec<(PathBuf, Skip)>,
) {
    let Ok(rd) = std::fs::read_dir(at) else { return };
    let mut entries: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.file_name().is_some_and(|n| n == ".git") {
            continue;
        }
        let why = || match hidden_under(root, &p) {
            true => Skip::Hidden,
            false => Skip::Ignored,
        };
        if p.is_dir() {
            match dirs.contains(&p) {
                true => left_out(root, &p, files, dirs, out),
                false => out.push((p.clone(), why())),
            }
        } else if !files.contains(&p) {
            out.push((p.clone(), why()));
        }
    }
}

fn hidden_under(root: &Path, p: &Path) -> bool {
    p.strip_prefix(root)
        .unwrap_or(p)
        .components()
        .any(|c| c.as_os_str().to_string_lossy().starts_with('.'))
}

/// Not text: a NUL byte in its first 8 kB, as git and ripgrep decide.
fn is_binary(bytes: &[u8]) -> bool {
    bytes[..bytes.len().min(8192)].contains(&0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(base: &Path) -> Options {
        Options {
            redact: true,
            base: base.to_path_buf(),
            shared: true,
        }
    }

    #[test]
    fn a_folder_is_read_with_ignore_rules_and_what_is_left_out_is_said() {
        let d = tempfile::tempdir().unwrap();
        let w = |p: &str, b: &[u8]| {
            let p = d.path().join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b).unwrap();
        };
        w("ctx/.gitignore", b"build/\n*.log\n");
        w("ctx/b.sql", b"ALTER TABLE orders ADD COLUMN x int;\n");
        w("ctx/a.md", b"# Runbook\n");
        w("ctx/run.log", b"noise\n");
        w("ctx/build/out.txt", b"noise\n");
        w("ctx/.secret/key.txt", b"noise\n");
        w("ctx/logo.png", b"\x89PNG\r\n\x1a\n\0\0\0");
        let c = load(&["ctx".into()], &opts(d.path())).unwrap();
        let names: Vec<&str> = c.files.iter().map(|f| f.path.rsplit('/').next().unwrap()).collect();
        assert_eq!(names, ["a.md", "b.sql"]);
        assert_eq!(c.files[1].lang, "sql");
        let skipped: Vec<(String, Skip)> = c
            .skipped
            .iter()
            .map(|s| (s.path.rsplit("ctx/").next().unwrap().to_string(), s.why))
            .collect();
        assert!(skipped.contains(&(".secret".into(), Skip::Hidden)), "{skipped:?}");
        assert!(skipped.contains(&(".gitignore".into(), Skip::Hidden)), "{skipped:?}");
        assert!(skipped.contains(&("build".into(), Skip::Ignored)), "{skipped:?}");
        assert!(skipped.contains(&("run.log".into(), Skip::Ignored)), "{skipped:?}");
        assert!(skipped.contains(&("logo.png".into(), Skip::Binary)), "{skipped:?}");
    }

    #[test]
    fn files_that_are_not_text_are_refused_with_their_path() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("latin1.md"), b"ok\ncaf\xe9\n").unwrap();
        std::fs::write(d.path().join("bin.dat"), b"\0\0").unwrap();
        let e = load(&["latin1.md".into()], &opts(d.path())).unwrap_err().to_string();
        assert!(e.contains("latin1.md:2: not valid UTF-8"), "{e}");
        let e = load(&["bin.dat".into()], &opts(d.path())).unwrap_err().to_string();
        assert!(e.contains("bin.dat: not a text file"), "{e}");
        let e = load(&["nope.md".into()], &opts(d.path())).unwrap_err().to_string();
        assert!(e.contains("nope.md: no such context file or folder"), "{e}");
        let e = load(&["*.nothing".into()], &opts(d.path())).unwrap_err().to_string();
        assert!(e.contains("matches no file"), "{e}");
    }

    #[test]
    fn globs_and_repeats_read_each_file_once_in_order() {
        let d = tempfile::tempdir().unwrap();
        for n in ["m/2.sql", "m/1.sql", "m/x.md"] {
            std::fs::create_dir_all(d.path().join("m")).unwrap();
            std::fs::write(d.path().join(n), "select 1;\n").unwrap();
        }
        let c = load(&["m/x.md".into(), "m/*.sql".into(), "m/x.md".into()], &opts(d.path())).unwrap();
        let names: Vec<&str> = c.files.iter().map(|f| f.path.rsplit('/').next().unwrap()).collect();
        assert_eq!(names, ["x.md", "1.sql", "2.sql"]);
    }
}
