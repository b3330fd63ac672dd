//! Plans people edit. rbplan records a short hash of each section as it wrote it, and of
//! the text around the sections; before it writes over a plan it compares them, so a
//! section a person changed (or text a person added) is kept word for word.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::Provenance;
use crate::check::{Checker, Migration};
use crate::markdown;

/// The key under which the text outside every required section is hashed (a title, a
/// section a person added). Not a section id: ids are the template's, `_` never starts one.
pub const OTHER: &str = "_other";

/// A short hash of `text` that line ends (CRLF or LF) and spaces at line ends do not
/// change, nor blank lines at either end: an editor that trims or converts them has not
/// edited the section.
pub fn text_hash(text: &str) -> String {
    let lines: Vec<&str> = text.lines().map(str::trim_end).collect();
    let norm = lines.join("\n");
    let digest = crate::util::short_hash(&[norm.trim_matches('\n').as_bytes()]);
    digest.trim_start_matches("sha256:")[..12].to_string()
}

/// Each present section's hash, by id, and the hash of the text outside them (`OTHER`).
/// `plan` is the Markdown without front matter.
pub fn section_hashes(plan: &str, checker: &Checker) -> BTreeMap<String, String> {
    section_hashes_in(plan, &checker.outline(plan), checker)
}

/// `section_hashes`, with `outline` the outline of `plan`.
fn section_hashes_in(plan: &str, outline: &markdown::Outline, checker: &Checker) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (i, s) in checker.spec.sections.iter().enumerate() {
        if let Some(l) = outline.primary(i).filter(|l| !l.empty) {
            out.insert(s.id.clone(), text_hash(&plan[l.start..l.end]));
        }
    }
    out.insert(OTHER.to_string(), text_hash(&outside_sections(plan, outline)));
    out
}

/// The text of `plan` outside every occurrence of a required section.
fn outside_sections(plan: &str, outline: &markdown::Outline) -> String {
    without_spans(plan, outline.found.iter().map(|l| (l.start, l.end)).collect())
}

/// `text` with the byte spans taken out (they may overlap).
fn without_spans(text: &str, mut spans: Vec<(usize, usize)>) -> String {
    spans.sort_unstable();
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    for (s, e) in spans {
        out.push_str(&text[pos..s.max(pos)]);
        pos = pos.max(e);
    }
    out.push_str(&text[pos.min(text.len())..]);
    out
}

/// Why a plan from an earlier run is made again.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Redo {
    NotRbplans,
    TemplateChanged,
    ModelChanged,
    InputChanged,
    /// A context file changed, was added or is gone (its path).
    ContextChanged(String),
    /// It was written with sections missing, or with error findings: its status.
    NotComplete(super::PlanStatus),
    NoLongerPasses,
    Forced,
}

impl std::fmt::Display for Redo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Redo::ContextChanged(path) = self {
            return write!(f, "the input changed: context {path}");
        }
        f.write_str(match self {
            Redo::ContextChanged(_) => unreachable!("written above"),
            Redo::NotRbplans => "not written by rbplan (no front matter)",
            Redo::TemplateChanged => "the template changed",
            Redo::ModelChanged => "the model changed",
            Redo::InputChanged => "the input changed",
            Redo::NotComplete(super::PlanStatus::Errors) => "it did not pass its checks when written",
            Redo::NotComplete(_) => "it was not complete",
            Redo::NoLongerPasses => "it no longer passes the check",
            Redo::Forced => "--force was given",
        })
    }
}

/// What a plan must have been made from to be kept on a rerun.
pub struct Wanted<'a> {
    pub template_hash: &'a str,
    pub model: &'a str,
    pub input_hash: &'a str,
    /// What it is checked against again.
    pub migration: &'a Migration,
    /// The context files it would be made from now, to say which one changed.
    pub context: &'a [crate::context::File],
}

impl Wanted<'_> {
    /// Why the plan `p` wrote (`text`, with or without its front matter) must be made
    /// again, or None when it is current: same template, model and input, complete when
    /// written, and it passes its checks now.
    pub fn redo(&self, p: &Provenance, text: &str, checker: &Checker) -> Option<Redo> {
        Some(if p.template_hash != self.template_hash {
            Redo::TemplateChanged
        } else if p.model != self.model {
            Redo::ModelChanged
        } else if p.input_hash != self.input_hash {
            self.context_changed(p).map_or(Redo::InputChanged, Redo::ContextChanged)
        } else if p.status != super::PlanStatus::Complete {
            Redo::NotComplete(p.status)
        } else if !checker.check(text, self.migration).1.passes() {
            Redo::NoLongerPasses
        } else {
            return None;
        })
    }
}

impl Wanted<'_> {
    /// The first context file (by path) whose hash is not the one `p` recorded, or that
    /// one side has and the other not.
    fn context_changed(&self, p: &Provenance) -> Option<String> {
        let now: BTreeMap<&str, &str> = self
            .context
            .iter()
            .map(|f| (f.path.as_str(), f.hash.as_str()))
            .collect();
        let then: BTreeMap<&str, &str> = p.context.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let paths: std::collections::BTreeSet<&str> = now.keys().chain(then.keys()).copied().collect();
        paths
            .into_iter()
            .find(|k| now.get(k) != then.get(k))
            .map(str::to_string)
    }
}

/// What is at the path rbplan is about to write a plan to.
#[derive(Debug)]
pub enum Existing {
    /// Nothing: write it.
    None,
    /// A file rbplan cannot merge into safely: left as it is, the new plan goes beside it.
    Foreign(Foreign),
    /// A plan rbplan wrote, with what a person changed since.
    Plan(Box<Earlier>),
}

/// Why a file is not merged into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Foreign {
    /// Not UTF-8, or not readable.
    Unreadable,
    /// No rbplan front matter: written by hand, or its front matter edited beyond
    /// recognition.
    NoProvenance,
    /// rbplan front matter without section hashes (rbplan before living plans): it may
    /// have been edited, and there is no telling where.
    NoHashes,
}

impl std::fmt::Display for Foreign {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Foreign::Unreadable => "it cannot be read as UTF-8 text",
            Foreign::NoProvenance => "it has no rbplan front matter (written by hand, or the front matter was edited)",
            Foreign::NoHashes => {
                "its front matter has no section hashes (an older rbplan wrote it), so edits cannot be told apart"
            }
        })
    }
}

/// A plan rbplan wrote earlier, as it is now.
#[derive(Debug)]
pub struct Earlier {
    pub provenance: Provenance,
    /// The text inside its front matter, for a person's own keys to be kept.
    pub front: String,
    /// The Markdown after the front matter.
    pub body: String,
    /// Required sections whose text is not what rbplan recorded (changed, or written by a
    /// person where rbplan recorded none), in template order.
    pub edited: Vec<usize>,
    /// Text outside the required sections changed (a section a person added, a note).
    pub other_edited: bool,
}

impl Earlier {
    /// Anything a person changed since rbplan wrote it.
    pub fn has_edits(&self) -> bool {
        !self.edited.is_empty() || self.other_edited
    }

    /// The plan with the sections nobody edited taken out: what a regeneration starts from,
    /// so the edited ones and any added text stay exactly where they are.
    pub fn kept_only(&self, checker: &Checker) -> String {
        let outline = checker.outline(&self.body);
        let spans = outline
            .found
            .iter()
            .filter(|l| !self.edited.contains(&l.section))
            .map(|l| (l.start, l.end))
            .collect();
        without_spans(&self.body, spans)
    }

    /// The ids of the edited sections.
    pub fn edited_ids(&self, checker: &Checker) -> Vec<String> {
        self.edited
            .iter()
            .map(|&i| checker.spec.sections[i].id.clone())
            .collect()
    }
}

/// The hashes to record for a new plan: the plan's own, except that a section kept as a
/// person edited it (`before.edited`) keeps the hash rbplan recorded before (or none), so
/// that it still reads as edited next time.
///
/// `checked` is the outline of the plan's last check; it is reused when it is `plan`'s.
pub fn hashes_after(
    plan: &str,
    checked: Option<&markdown::Outlined>,
    checker: &Checker,
    before: Option<&Earlier>,
) -> BTreeMap<String, String> {
    let mut h = match checked.and_then(|c| c.of(plan)) {
        Some(outline) => section_hashes_in(plan, outline, checker),
        None => section_hashes(plan, checker),
    };
    let recorded = before.map(|b| &b.provenance.sections);
    for &i in before.map_or(&[][..], |b| &b.edited) {
        let id = &checker.spec.sections[i].id;
        match recorded.and_then(|r| r.get(id)) {
            Some(old) => h.insert(id.clone(), old.clone()),
            None => h.remove(id),
        };
    }
    if before.is_some_and(|b| b.other_edited) {
        match recorded.and_then(|r| r.get(OTHER)) {
            Some(old) => h.insert(OTHER.to_string(), old.clone()),
            None => h.remove(OTHER),
        };
    }
    h
}

/// Read what is at `path` and compare it with what rbplan recorded there.
pub fn read_existing(path: &Path, checker: &Checker) -> Existing {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Existing::None,
        Err(_) => return Existing::Foreign(Foreign::Unreadable),
    };
    let Ok(text) = String::from_utf8(bytes) else {
        return Existing::Foreign(Foreign::Unreadable);
    };
    compare(&text, checker)
}

/// `compare` on a plan's text: see `read_existing`.
pub fn compare(text: &str, checker: &Checker) -> Existing {
    let doc = markdown::parse(text);
    let Some(p) = doc.front_matter.and_then(Provenance::from_front_matter) else {
        return Existing::Foreign(Foreign::NoProvenance);
    };
    if p.template_hash.is_empty() {
        return Existing::Foreign(Foreign::NoProvenance);
    }
    if p.sections.is_empty() {
        return Existing::Foreign(Foreign::NoHashes);
    }
    let body = text[doc.body_start..].trim_start_matches(['\r', '\n']).to_string();
    let now = section_hashes(&body, checker);
    let edited = checker
        .spec
        .sections
        .iter()
        .enumerate()
        .filter(|(_, s)| now.get(&s.id).is_some_and(|h| p.sections.get(&s.id) != Some(h)))
        .map(|(i, _)| i)
        .collect();
    let other_edited = now.get(OTHER) != p.sections.get(OTHER);
    Existing::Plan(Box::new(Earlier {
        provenance: p,
        front: doc.front_matter.unwrap_or_default().to_string(),
        body,
        edited,
        other_edited,
    }))
}

/// How a plan is written where a file may already be.
#[derive(Debug)]
pub enum Decision {
    /// Nothing there: generate the whole plan and write it there.
    Fresh,
    /// A plan rbplan wrote, nothing in it edited: generate the whole plan again and write
    /// it over this one (a person's own front matter keys kept).
    Replace(Box<Earlier>),
    /// A person edited it: regenerate only the sections nobody edited, keep the rest word
    /// for word (start from `Earlier::kept_only`, the edited sections pinned).
    KeepEdits(Box<Earlier>),
    /// It cannot be merged into: leave it as it is and write the new plan to `to`.
    Beside { why: Foreign, to: PathBuf },
    /// `--force`: copy it to `to` first, then write a whole new plan over it (keeping a
    /// person's own keys of its front matter, `front`).
    Backup { to: PathBuf, front: Option<String> },
}

/// What to do about `path` before writing a plan there.
pub fn decide(path: &Path, checker: &Checker, force: bool) -> Decision {
    match read_existing(path, checker) {
        Existing::None => Decision::Fresh,
        _ if force => Decision::Backup {
            to: backup_path(path),
            front: std::fs::read_to_string(path)
                .ok()
                .and_then(|t| markdown::parse(&t).front_matter.map(str::to_string)),
        },
        Existing::Foreign(why) => Decision::Beside { why, to: beside(path) },
        Existing::Plan(e) if e.has_edits() => Decision::KeepEdits(e),
        Existing::Plan(e) => Decision::Replace(e),
    }
}

/// Where a run works on a plan and what it does there.
pub struct Working {
    /// The file decided on: the path asked for, or the `NAME.new.md` beside it.
    pub path: PathBuf,
    pub decision: Decision,
    /// Set when `path` is the `NAME.new.md` an earlier run left beside the file asked for,
    /// which stays as it is: why it does.
    pub followed: Option<Foreign>,
}

impl Working {
    /// Where the plan is written.
    pub fn target(&self) -> &Path {
        self.decision.target(&self.path)
    }
}

/// `decide`, and when `path` is left alone and an earlier run wrote `NAME.new.md` beside
/// it, `decide` on that file instead: its edits are kept, it is not paid for twice, and a
/// foreign one is left alone in turn.
pub fn decide_following(path: &Path, checker: &Checker, force: bool) -> Working {
    match decide(path, checker, force) {
        Decision::Beside { why, to } if to.exists() => Working {
            decision: decide(&to, checker, false),
            path: to,
            followed: Some(why),
        },
        decision => Working {
            path: path.to_path_buf(),
            decision,
            followed: None,
        },
    }
}

impl Decision {
    /// The edited plan this starts from, if any.
    pub fn earlier(&self) -> Option<&Earlier> {
        match self {
            Decision::KeepEdits(e) => Some(e),
            _ => None,
        }
    }

    /// The earlier front matter whose own keys the new plan keeps.
    pub fn front(&self) -> Option<&str> {
        match self {
            Decision::KeepEdits(e) | Decision::Replace(e) => Some(&e.front),
            Decision::Backup { front, .. } => front.as_deref(),
            _ => None,
        }
    }

    /// Copy the file to its backup, for `Backup`; nothing for the others.
    pub fn make_backup(&self, path: &Path) -> crate::error::Result<()> {
        if let Decision::Backup { to, .. } = self {
            let bytes =
                std::fs::read(path).map_err(|e| crate::error::Error::io(format!("reading {}", path.display()), e))?;
            super::write_atomic(to, &bytes)
                .map_err(|e| crate::error::Error::io(format!("writing {}", to.display()), e))?;
        }
        Ok(())
    }

    /// Where the plan is written: `path`, or beside it.
    pub fn target<'a>(&'a self, path: &'a Path) -> &'a Path {
        match self {
            Decision::Beside { to, .. } => to,
            _ => path,
        }
    }
}

/// Where a new version goes when the file there is left alone: `NAME.new.md` beside it.
pub fn beside(path: &Path) -> PathBuf {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!("{stem}.new.md"))
}

/// Where `--force` keeps the old file: `NAME.md.bak` beside it, or `NAME.md.bak.2`, `.3`…
/// when an earlier backup is there: a backup is never written over.
pub fn backup_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let first = path.with_file_name(format!("{name}.bak"));
    if !first.exists() {
        return first;
    }
    (2..)
        .map(|n| path.with_file_name(format!("{name}.bak.{n}")))
        .find(|p| !p.exists())
        .expect("a free name")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testing::{authored, checker};

    #[test]
    fn a_plan_redone_for_its_status_says_which_one() {
        use super::super::PlanStatus;
        assert_eq!(
            Redo::NotComplete(PlanStatus::Errors).to_string(),
            "it did not pass its checks when written"
        );
        assert_eq!(
            Redo::NotComplete(PlanStatus::Incomplete).to_string(),
            "it was not complete"
        );
    }

    /// The authored plan as rbplan would write it: front matter with its hashes.
    fn written(plan: &str, c: &Checker) -> String {
        let mut p = Provenance::from_front_matter("rbplan:\n  template_hash: \"t\"\n").unwrap();
        p.sections = section_hashes(plan, c);
        p.to_front_matter() + plan
    }

    #[test]
    fn line_ends_and_trailing_spaces_are_not_edits() {
        assert_eq!(text_hash("a\nb\n"), text_hash("a  \r\nb\r\n\r\n"));
        assert_ne!(text_hash("a\nb\n"), text_hash("a\nb c\n"));
    }

    #[test]
    fn an_edited_section_and_added_text_are_found_and_kept() {
        let c = checker();
        let plan = authored();
        let file = written(&plan, &c);
        let Existing::Plan(e) = compare(&file, &c) else {
            panic!("a plan")
        };
        assert!(!e.has_edits(), "as written: {:?}", e.edited);
        // The same file saved with CRLF line ends is not edited either.
        let Existing::Plan(e) = compare(&file.replace('\n', "\r\n"), &c) else {
            panic!()
        };
        assert!(!e.has_edits(), "CRLF: {:?} {}", e.edited, e.other_edited);

        let line = "- Page the DBA on call before any reverse migration.\n";
        let at = file.find("## 5. Pre-cutover rehearsal").unwrap();
        let added = "## Contacts\n\nDBA on call: +1 555 0100\n\n";
        let edited = format!("{}{line}\n{added}{}", &file[..at], &file[at..]);
        let Existing::Plan(e) = compare(&edited, &c) else {
            panic!()
        };
        assert_eq!(
            (e.edited_ids(&c), e.other_edited),
            (vec!["by-component".to_string()], true)
        );
        let kept = e.kept_only(&c);
        assert!(kept.contains(line) && kept.contains(added), "{kept}");
        assert!(
            !kept.contains("## 1. Rollback philosophy") && !kept.contains("## 5."),
            "{kept}"
        );
    }

    #[test]
    fn files_that_cannot_be_merged_say_why() {
        let c = checker();
        let plan = authored();
        assert!(matches!(compare(&plan, &c), Existing::Foreign(Foreign::NoProvenance)));
        let old = "---\nrbplan:\n  template_hash: \"t\"\n  model: \"m\"\n---\n\n".to_string() + &plan;
        assert!(matches!(compare(&old, &c), Existing::Foreign(Foreign::NoHashes)));
        let d = tempfile::tempdir().unwrap();
        assert!(matches!(read_existing(&d.path().join("none.md"), &c), Existing::None));
        std::fs::write(d.path().join("latin1.md"), b"caf\xe9\n").unwrap();
        assert!(matches!(
            read_existing(&d.path().join("latin1.md"), &c),
            Existing::Foreign(Foreign::Unreadable)
        ));
    }

    #[test]
    fn a_kept_section_keeps_its_old_hash_so_it_stays_edited() {
        let c = checker();
        let plan = authored();
        let file = written(&plan, &c);
        let at = file.find("## 5. Pre-cutover rehearsal").unwrap();
        let edited = format!("{}- One more step.\n\n{}", &file[..at], &file[at..]);
        let Existing::Plan(e) = compare(&edited, &c) else {
            panic!()
        };
        let h = hashes_after(&e.body, None, &c, Some(&e));
        let again = e.provenance.clone();
        let mut p = again;
        p.sections = h;
        let Existing::Plan(e2) = compare(&(p.to_front_matter() + &e.body), &c) else {
            panic!()
        };
        assert_eq!(e2.edited_ids(&c), ["by-component"]);
    }
}
