//! The two inputs of a plan, from flags, files, stdin or the template's example.
//! Empty input (and stages that name no stage) is refused here, before anything is sent. Also reads the other text files
//! a user names (plans to check), with the same errors.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::template::{Inputs, Template};

pub mod runbook;
mod stages;
pub use stages::parse_stages;

/// Where the two inputs come from, as given on the command line.
#[derive(Debug, Clone, Default)]
pub struct Given {
    pub summary: Option<String>,
    pub summary_file: Option<PathBuf>,
    pub stages: Option<String>,
    pub stages_file: Option<PathBuf>,
    /// The template's own example instead.
    pub example: bool,
}

/// One input as given: its text, and where it came from ("--summary", a file name), for
/// messages.
#[derive(Debug, Clone)]
pub struct Text {
    pub text: String,
    pub origin: String,
}

/// What was given of the two inputs, each read from its flag, its file or stdin. Each
/// command completes it in its own way: `ask` needs both (`required`), `check` takes what
/// there is, `revise` falls back on what the plan records.
#[derive(Debug, Clone, Default)]
pub struct Supplied {
    pub summary: Option<Text>,
    pub stages: Option<Text>,
}

impl Given {
    /// Read what was given (nothing for `--example`, which `resolve` answers).
    pub fn read(&self) -> Result<Supplied> {
        if self.summary_file.as_deref() == Some(Path::new("-")) && self.stages_file.as_deref() == Some(Path::new("-")) {
            return Err(Error::usage(
                "--summary-file and --stages-file cannot both read stdin (-)",
            ));
        }
        Ok(Supplied {
            summary: one(self.summary.as_deref(), self.summary_file.as_deref(), "summary")?,
            stages: one(self.stages.as_deref(), self.stages_file.as_deref(), "stages")?,
        })
    }
}

impl Supplied {
    /// What the runbook at `path` gives where nothing was given: the stages from its
    /// procedure's steps (a runbook from which none can be derived is then an error that
    /// says what was looked for), the summary from its title and opening paragraph.
    pub fn or_runbook(mut self, path: &str, rb: &std::result::Result<runbook::Runbook, String>) -> Result<Supplied> {
        if self.stages.is_none() {
            let r = rb
                .as_ref()
                .map_err(|why| Error::input(path, None, format!("{why}; give the stages with --stages")))?;
            let names: Vec<String> = r.steps.iter().map(|s| s.name.replace(['\n', '\r'], " ")).collect();
            self.stages = Some(Text {
                text: names.join("\n"),
                origin: format!("the steps of runbook {path}"),
            });
        }
        if self.summary.is_none()
            && let Ok(r) = rb
            && let Some(s) = &r.summary
        {
            self.summary = Some(Text {
                text: s.clone(),
                origin: format!("the title and first paragraph of runbook {path}"),
            });
        }
        Ok(self)
    }
}

/// A runbook's path and what was derived from it (`Supplied::or_runbook`).
pub type RunbookSource<'a> = (&'a str, &'a std::result::Result<runbook::Runbook, String>);

/// The inputs as given (a runbook filling in what was not), or the template's example
/// with `--example`.
pub fn resolve(a: &Given, template: &Template, runbook: Option<RunbookSource>) -> Result<Inputs> {
    if a.example {
        let ex = template
            .spec
            .example
            .as_ref()
            .ok_or_else(|| Error::usage(format!("template {} has no [example]", template.origin)))?;
        return Ok(Inputs::new(ex.summary.clone(), ex.stages.clone()));
    }
    let mut r = a.read()?;
    if let Some((path, rb)) = runbook {
        r = r.or_runbook(path, rb)?;
    }
    required(r)
}

/// Both inputs, neither empty: a usage error says which is missing or empty.
pub fn required(r: Supplied) -> Result<Inputs> {
    let summary = r.summary.ok_or_else(|| missing("summary"))?;
    if summary.text.trim().is_empty() {
        return Err(Error::usage(format!("the summary from {} is empty", summary.origin)));
    }
    let stages = r.stages.ok_or_else(|| missing("stages"))?;
    stage_list(&stages.text, &stages.origin)?;
    Ok(Inputs::new(summary.text, stages.text))
}

fn missing(what: &str) -> Error {
    let verb = if what == "stages" { "are" } else { "is" };
    Error::usage(format!(
        "the {what} {verb} required: --{what} TEXT or --{what}-file PATH (or --example to try the tool)"
    ))
}

/// The stages named in `text` (as `parse_stages` reads them). Text that names
/// none, such as only separators or list markers (";;", "- \n-"), is a usage error, not
/// "nothing to cover": `origin` says where the text came from (--stages, a file name).
pub fn stage_list(text: &str, origin: &str) -> Result<Vec<String>> {
    let stages = parse_stages(text);
    if stages.is_empty() {
        return Err(Error::usage(format!(
            "the stages from {origin} are empty: give one stage per line, or separate them with \";\""
        )));
    }
    Ok(stages)
}

/// A file the user named for `what`, or stdin when the path is "-"; with where it came
/// from, for messages.
pub fn read_arg(path: &Path, what: &str) -> Result<(String, String)> {
    if path == Path::new("-") {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| Error::input("<stdin>", None, format!("cannot read {what}: {e}")))?;
        Ok((s, format!("--{what}-file - (stdin)")))
    } else {
        Ok((read_text(path, what)?, path.display().to_string()))
    }
}

/// A text file the user named: an error naming the file (and the line of the first bad
/// byte) if it cannot be read or is not UTF-8. `what` says what the file was for.
/// A byte-order mark (which some Windows editors write) is dropped: it is not text, and
/// before a heading or front matter it would hide them from the Markdown parser.
pub fn read_text(path: &Path, what: &str) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| Error::input(path, None, format!("cannot read {what}: {e}")))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let line = crate::util::line_of(&String::from_utf8_lossy(e.as_bytes()), e.utf8_error().valid_up_to());
        Error::input(path, Some(line), "not valid UTF-8 text")
    })?;
    Ok(match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_string(),
        None => text,
    })
}

/// The text of one input, from its flag or its file, with where it came from; None when
/// neither was given.
fn one(text: Option<&str>, file: Option<&Path>, what: &str) -> Result<Option<Text>> {
    let (value, origin) = match (text, file) {
        (Some(t), _) => (typed(t, what)?, format!("--{what}")),
        (None, Some(p)) => read_arg(p, what)?,
        (None, None) => return Ok(None),
    };
    // Keep the user's text as typed; only a trailing newline from a file is dropped.
    Ok(Some(Text {
        text: value.trim_end_matches(['\n', '\r']).to_string(),
        origin,
    }))
}

/// The text typed after `--{what}`. Such flags take text that starts with "-" (a pasted
/// "- Expand" list), so a lone option name ("--stages --json") is refused rather than taken
/// as the text. In stages, a "\n" typed inside shell quotes is a line break, unless the
/// text already has real ones.
pub fn typed(text: &str, what: &str) -> Result<String> {
    let t = text.trim();
    let flag_like = t.starts_with('-')
        && t.len() > 1
        && t.trim_start_matches('-')
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
        && t.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if flag_like {
        return Err(Error::usage(format!(
            "--{what} was given {t:?}, which looks like an option, not the {what}: put the text right after --{what} (or use --{what}-file)"
        )));
    }
    if what == "stages" && text.contains("\\n") && !text.contains('\n') {
        return Ok(text.replace("\\r\\n", "\n").replace("\\n", "\n"));
    }
    Ok(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_text_refuses_a_lone_option_and_reads_a_typed_line_break() {
        for t in ["--json", "-q", "--max-tokens"] {
            let e = typed(t, "stages").unwrap_err().to_string();
            assert!(e.contains("looks like an option"), "{t}: {e}");
        }
        assert_eq!(typed("- Expand\n- Backfill", "stages").unwrap(), "- Expand\n- Backfill");
        assert_eq!(
            typed("-x fix for the thing", "summary").unwrap(),
            "-x fix for the thing"
        );
        assert_eq!(typed(r"A, high risk\nB", "stages").unwrap(), "A, high risk\nB");
        assert_eq!(typed(r"A\r\nB", "stages").unwrap(), "A\nB");
        // Only stages, and only without real line breaks.
        assert_eq!(typed(r"a\nb", "summary").unwrap(), r"a\nb");
        assert_eq!(typed("Copy C:\\new\nB", "stages").unwrap(), "Copy C:\\new\nB");
    }

    #[test]
    fn stages_that_name_no_stage_are_refused() {
        for text in ["", "  ", ";;", " ; ; ", "\n\n", "- \n-\n", "1.\n2.\n"] {
            let e = stage_list(text, "--stages").unwrap_err().to_string();
            assert!(e.starts_with("the stages from --stages are empty: "), "{text:?}: {e}");
        }
        assert_eq!(
            stage_list("backfill; cutover;", "--stages").unwrap(),
            ["backfill", "cutover"]
        );
    }

    #[test]
    fn read_text_names_the_line_of_the_first_bad_byte() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("plan.md");
        std::fs::write(&p, b"# ok\n\ncaf\xe9\n").unwrap();
        match read_text(&p, "the plan") {
            Err(Error::Input { path, line, msg }) => {
                assert_eq!((path, line, msg.as_str()), (p.clone(), Some(3), "not valid UTF-8 text"));
            }
            other => panic!("{other:?}"),
        }
        std::fs::write(&p, "# ok\n").unwrap();
        assert_eq!(read_text(&p, "the plan").unwrap(), "# ok\n");
        std::fs::write(&p, "\u{feff}## 1. Rollback philosophy\r\n").unwrap();
        assert_eq!(read_text(&p, "the plan").unwrap(), "## 1. Rollback philosophy\r\n");
        let e = read_text(&dir.path().join("none.md"), "the plan").unwrap_err();
        assert!(e.to_string().contains("none.md: cannot read the plan: "), "{e}");
    }
}
