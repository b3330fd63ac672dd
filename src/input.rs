//! The two inputs of a plan, from flags, files, stdin or the template's example.
//! Empty input is refused here, before anything is sent. Also reads the other text files
//! a user names (plans to check), with the same errors.

use std::io::Read;
use std::path::Path;

use crate::cli::InputArgs;
use crate::error::{Error, Result};
use crate::template::{Inputs, Template};

pub fn resolve(a: &InputArgs, template: &Template) -> Result<Inputs> {
    if a.example {
        let ex = template
            .spec
            .example
            .as_ref()
            .ok_or_else(|| Error::usage(format!("template {} has no [example]", template.origin)))?;
        return Ok(Inputs {
            summary: ex.summary.clone(),
            stages: ex.stages.clone(),
        });
    }
    if a.summary_file.as_deref() == Some(Path::new("-")) && a.stages_file.as_deref() == Some(Path::new("-")) {
        return Err(Error::usage(
            "--summary-file and --stages-file cannot both read stdin (-)",
        ));
    }
    let summary = one(a.summary.as_deref(), a.summary_file.as_deref(), "summary")?;
    let stages = one(a.stages.as_deref(), a.stages_file.as_deref(), "stages")?;
    Ok(Inputs { summary, stages })
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

fn one(text: Option<&str>, file: Option<&Path>, what: &str) -> Result<String> {
    let (value, origin) = match (text, file) {
        (Some(t), _) => (t.to_string(), format!("--{what}")),
        (None, Some(p)) if p == Path::new("-") => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(|e| Error::input("<stdin>", None, format!("cannot read {what}: {e}")))?;
            (s, format!("--{what}-file - (stdin)"))
        }
        (None, Some(p)) => (read_text(p, what)?, p.display().to_string()),
        (None, None) => {
            return Err(Error::usage(format!(
                "the {what} is required: --{what} TEXT or --{what}-file PATH (or --example to try the tool)"
            )));
        }
    };
    if value.trim().is_empty() {
        return Err(Error::usage(format!("the {what} from {origin} is empty")));
    }
    // Keep the user's text as typed; only a trailing newline from a file is dropped.
    Ok(value.trim_end_matches(['\n', '\r']).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

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
