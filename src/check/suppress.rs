//! Inline suppression, as Markdown linters have it: `<!-- rbplan-disable CODE, CODE -->`
//! up to `<!-- rbplan-enable -->` (or the end of the file), `<!-- rbplan-disable-next-line
//! CODE -->`, and a bare `rbplan-disable` for every code. Suppressed findings are kept
//! apart and counted, never dropped; a suppression that matched nothing is a warning.
//! Missing and empty sections cannot be suppressed: the verdict would lie.

use super::finding::{CODES, Code, Finding, Suppressor};
use crate::markdown::{BlockKind, Doc};
use crate::spec::Severity;

/// One directive, where it stands and what it covers.
#[derive(Debug, Clone)]
struct Directive {
    line: usize,
    /// None: every code.
    codes: Option<Vec<Code>>,
    /// The lines it covers, inclusive.
    from: usize,
    to: usize,
    used: bool,
}

/// What suppression leaves: the findings that count, those suppressed, and warnings about
/// the directives themselves (unknown codes, unused or unsuppressible ones).
pub(crate) struct Applied {
    pub kept: Vec<Finding>,
    pub suppressed: Vec<Finding>,
}

/// Apply the directives of `doc` to `findings`.
pub(crate) fn apply(doc: &Doc, findings: Vec<Finding>) -> Applied {
    let (mut dirs, mut notes) = directives(doc);
    if dirs.is_empty() && notes.is_empty() {
        return Applied {
            kept: findings,
            suppressed: Vec::new(),
        };
    }
    let last = doc.src.lines().count().max(1);
    let (mut kept, mut suppressed) = (Vec::new(), Vec::new());
    for f in findings {
        match dirs.iter_mut().find(|d| covers(d, &f, last)) {
            Some(d) if f.code.is_presence() => {
                d.used = true;
                notes.push(note(
                    d.line,
                    format!("{} cannot be suppressed: a missing section is missing", f.code),
                ));
                kept.push(f);
            }
            Some(d) => {
                d.used = true;
                suppressed.push(Finding {
                    suppressed_by: Some(Suppressor::Comment { line: d.line }),
                    ..f
                });
            }
            None => kept.push(f),
        }
    }
    for d in dirs.iter().filter(|d| !d.used) {
        notes.push(note(
            d.line,
            "this rbplan-disable suppresses nothing: no finding it names is there".into(),
        ));
    }
    kept.extend(notes);
    Applied { kept, suppressed }
}

/// `d` covers `f`: its code, and its line (a finding with no line only by a directive that
/// runs from the top or to the end of the file).
fn covers(d: &Directive, f: &Finding, last: usize) -> bool {
    let code = d.codes.as_ref().is_none_or(|c| c.contains(&f.code));
    let at = match f.line {
        Some(l) => (d.from..=d.to).contains(&l),
        None => d.to >= last,
    };
    code && at
}

fn note(line: usize, msg: String) -> Finding {
    Finding::new(Severity::Warning, Code::Suppression, None, Some(line), msg)
}

/// The directives in the document's top-level HTML comments, and warnings about bad ones.
fn directives(doc: &Doc) -> (Vec<Directive>, Vec<Finding>) {
    let mut lines = crate::util::Lines::new(doc.src);
    let (mut out, mut notes) = (Vec::new(), Vec::new());
    let mut open: Vec<Directive> = Vec::new();
    for b in doc
        .blocks
        .iter()
        .filter(|b| b.kind == BlockKind::Html && b.comment_only)
    {
        let first = lines.at(b.start);
        for (i, l) in doc.src[b.start..b.end].lines().enumerate() {
            let line = first + i;
            let Some((verb, rest)) = parse(l) else { continue };
            let codes = match codes(rest) {
                Ok(c) => c,
                Err(bad) => {
                    notes.push(note(
                        line,
                        format!("unknown code {bad:?} in an rbplan comment; see rbplan check --list-codes"),
                    ));
                    continue;
                }
            };
            match verb {
                "disable-next-line" => out.push(Directive {
                    line,
                    codes,
                    from: line + 1,
                    to: line + 1,
                    used: false,
                }),
                "disable" => open.push(Directive {
                    line,
                    codes,
                    from: line,
                    to: usize::MAX,
                    used: false,
                }),
                _ => out.extend(open.drain(..).map(|d| Directive { to: line, ..d })),
            }
        }
    }
    out.extend(open);
    (out, notes)
}

/// `<!-- rbplan-VERB REST -->` → (VERB, REST).
fn parse(line: &str) -> Option<(&str, &str)> {
    let inner = line.trim().strip_prefix("<!--")?.strip_suffix("-->")?.trim();
    let rest = inner.strip_prefix("rbplan-")?;
    for verb in ["disable-next-line", "disable", "enable"] {
        if let Some(r) = rest
            .strip_prefix(verb)
            .filter(|r| r.is_empty() || r.starts_with([' ', '\t']))
        {
            return Some((verb, r.trim()));
        }
    }
    None
}

/// "loop, copied" → the codes; empty → every code (None); an unknown name is returned.
fn codes(rest: &str) -> Result<Option<Vec<Code>>, String> {
    let names: Vec<&str> = rest
        .split([',', ' '])
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect();
    if names.is_empty() {
        return Ok(None);
    }
    names
        .iter()
        .map(|n| by_name(n).ok_or_else(|| n.to_string()))
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// The code named `name` (as `[code]` labels spell it; `-` for `_` too).
pub fn by_name(name: &str) -> Option<Code> {
    let n = name.trim().replace('-', "_").to_ascii_lowercase();
    CODES.iter().find(|c| c.name == n).map(|c| c.code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(code: Code, line: Option<usize>) -> Finding {
        Finding::new(Severity::Error, code, None, line, "x".into())
    }

    fn run(text: &str, findings: Vec<Finding>) -> Applied {
        apply(&crate::markdown::parse(text), findings)
    }

    #[test]
    fn regions_next_lines_and_bare_disables() {
        let text = "# T\n\n<!-- rbplan-disable loop, copied -->\n\ntext\n\nmore\n\n<!-- rbplan-enable -->\n\nafter\n\n<!-- rbplan-disable-next-line durations -->\n| a |\n";
        let a = run(
            text,
            vec![
                f(Code::Loop, Some(5)),
                f(Code::Loop, Some(11)),
                f(Code::Durations, Some(14)),
                f(Code::Table, Some(14)),
            ],
        );
        let lines = |v: &[Finding]| v.iter().map(|f| (f.code, f.line)).collect::<Vec<_>>();
        assert_eq!(
            lines(&a.suppressed),
            [(Code::Loop, Some(5)), (Code::Durations, Some(14))]
        );
        // The disable of `copied` matched nothing: a warning at its line.
        assert_eq!(
            lines(&a.kept),
            [(Code::Loop, Some(11)), (Code::Table, Some(14))],
            "copied is unused but the directive was used: {:?}",
            a.kept
        );
        let a = run(
            "<!-- rbplan-disable -->\n\n# T\n",
            vec![f(Code::Generic, None), f(Code::Table, Some(3))],
        );
        assert_eq!(a.suppressed.len(), 2, "a bare disable to the end covers every code");
    }

    #[test]
    fn unused_unknown_and_unsuppressible_directives_are_warnings() {
        let a = run(
            "<!-- rbplan-disable loop -->\n\n<!-- rbplan-disable nosuch -->\n",
            vec![],
        );
        let msgs: Vec<(Option<usize>, &str)> = a.kept.iter().map(|f| (f.line, f.message.as_str())).collect();
        assert!(
            msgs.iter()
                .any(|(l, m)| *l == Some(3) && m.contains("unknown code \"nosuch\"")),
            "{msgs:?}"
        );
        assert!(
            msgs.iter()
                .any(|(l, m)| *l == Some(1) && m.contains("suppresses nothing")),
            "{msgs:?}"
        );
        let a = run("<!-- rbplan-disable -->\n", vec![f(Code::Missing, None)]);
        assert!(a.suppressed.is_empty() && a.kept[0].code == Code::Missing);
        assert!(a.kept[1].message.contains("cannot be suppressed"), "{:?}", a.kept);
        // In a code block it is an example, not a directive.
        let a = run("```\n<!-- rbplan-disable -->\n```\n", vec![f(Code::Loop, Some(2))]);
        assert!(a.suppressed.is_empty() && a.kept.len() == 1);
    }
}
