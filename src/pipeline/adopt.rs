//! `rbplan adopt`: a plan a team wrote, laid out as the template's sections. Each section
//! its headings cover (`check::concerns`) is placed under the template's heading with the
//! team's text verbatim; the title and what comes before the first section stay on top;
//! everything else goes to a closing "From the original plan" section. The sections placed
//! are recorded as a person's edits, so generation fills only the others and every later
//! run keeps them word for word.

use crate::check::Checker;
use crate::check::concerns::By;
use crate::markdown::{self, Located};
use crate::output::Provenance;
use crate::output::living::{Decision, Earlier, Working};

/// The closing section's title.
pub const CLOSING: &str = "From the original plan";

/// One of the team's sections, placed as a template section.
#[derive(Debug, Clone)]
pub struct Placed {
    pub section: usize,
    /// The team's heading, as written, and its line in the original.
    pub heading: String,
    pub line: usize,
    /// Found by the template's own heading, or by a concern's alias or cues.
    pub by: Option<By>,
}

/// The original plan laid out as the template's sections.
#[derive(Debug, Clone)]
pub struct Adoption {
    /// The Markdown without front matter: the team's sections under the template's
    /// headings, the missing ones absent, then the closing section.
    pub body: String,
    /// The original's front matter, whose keys the written plan keeps.
    pub front: Option<String>,
    pub placed: Vec<Placed>,
    /// Sections no heading of the team's covers (or whose text is placed under another
    /// section already), in template order: what is generated.
    pub missing: Vec<usize>,
    /// Non-blank lines that went to the closing section.
    pub closing_lines: usize,
    /// Heading lines that had to go one level deeper to stay inside their section.
    pub relevelled: usize,
}

impl Adoption {
    /// Lay `text` (a plan file, front matter and all) out as `checker`'s sections.
    pub fn read(text: &str, checker: &Checker) -> Adoption {
        let doc = markdown::parse(text);
        let (outline, mapped) = checker.concern_map(text);
        let src = doc.src;
        // The template's own sections first, then the mapped ones, in template order; a
        // span overlapping one taken already is left to generation.
        let mut taken: Vec<(Located, Option<By>)> = Vec::new();
        let own = (0..checker.spec.sections.len()).filter_map(|i| outline.primary(i).filter(|l| !l.empty));
        for l in own.cloned() {
            taken.push((l, None));
        }
        let mut mapped = mapped;
        mapped.sort_by_key(|(l, _)| l.section);
        for (l, by) in mapped {
            if !taken.iter().any(|(t, _)| l.start < t.end && t.start < l.end) {
                taken.push((l, Some(by)));
            }
        }
        taken.sort_by_key(|(l, _)| l.section);
        let level = section_level(&doc, &taken);
        let head_end = preamble_end(&doc);
        let mut body = src[doc.body_start..head_end.max(doc.body_start)]
            .trim_matches('\n')
            .to_string();
        let mut relevelled = 0;
        let mut placed = Vec::new();
        for (l, by) in &taken {
            let own_heading = by.is_none();
            // A code block the team left open at the end of the file must not swallow what
            // now follows it.
            let text = markdown::close_open_blocks(&src[l.start..l.end]);
            let (text, n) = if own_heading { (text, 0) } else { deepen(&text, level) };
            relevelled += n;
            if own_heading {
                // Under the template's own heading already.
                push_part(&mut body, text.trim_matches('\n'));
            } else {
                let heading = checker.spec.heading(l.section);
                push_part(&mut body, &format!("{} {heading}", "#".repeat(level.into())));
                push_part(&mut body, text.trim_matches('\n'));
            }
            placed.push(Placed {
                section: l.section,
                heading: l.heading.clone(),
                line: l.line,
                by: *by,
            });
        }
        let mut spans: Vec<(usize, usize)> = taken.iter().map(|(l, _)| (l.start, l.end)).collect();
        spans.push((doc.body_start, head_end.max(doc.body_start)));
        let rest = leftover(src, doc.body_start, spans);
        let closing_lines = rest.lines().filter(|l| !l.trim().is_empty()).count();
        if closing_lines > 0 {
            // At the top level, after every section: the team's headings in it stay as
            // written, whatever their level.
            push_part(&mut body, &format!("# {CLOSING}"));
            push_part(&mut body, rest.trim_matches('\n'));
        }
        body.push('\n');
        let missing = (0..checker.spec.sections.len())
            .filter(|i| !placed.iter().any(|p| p.section == *i))
            .collect();
        Adoption {
            body,
            front: doc.front_matter.map(str::to_string),
            placed,
            missing,
            closing_lines,
            relevelled,
        }
    }

    /// Of the original's non-blank lines outside its front matter, how many the adopted
    /// body holds as they were (or, for a heading, one level deeper), and how many there are.
    pub fn lines_kept(&self, original: &str) -> (usize, usize) {
        let doc = markdown::parse(original);
        let body: std::collections::HashSet<&str> = self.body.lines().collect();
        let lines: Vec<&str> = original[doc.body_start..]
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect();
        let kept = lines
            .iter()
            .filter(|l| body.contains(*l) || (l.starts_with('#') && body.contains(format!("#{l}").as_str())))
            .count();
        (kept, lines.len())
    }

    /// Where the adopted plan is written, as a plan a person edited: the placed sections
    /// and the text around them kept, the missing sections generated.
    pub fn working(&self, out: &std::path::Path) -> Working {
        let earlier = Earlier {
            provenance: Provenance::default(),
            front: self.front.clone().unwrap_or_default(),
            body: self.body.clone(),
            edited: self.placed.iter().map(|p| p.section).collect(),
            other_edited: true,
        };
        Working {
            path: out.to_path_buf(),
            decision: Decision::KeepEdits(Box::new(earlier)),
            followed: None,
        }
    }
}

/// `text` (a written plan) with the closing section moved back to the end, after the
/// sections generated after it; None when it is last already (or absent).
pub fn closing_last(text: &str, checker: &Checker) -> Option<String> {
    let doc = markdown::parse(text);
    let closing = doc
        .headings
        .iter()
        .find(|h| h.top_level && h.level == 1 && h.text.trim() == CLOSING)?;
    let body = &text[doc.body_start..];
    let start = closing.start - doc.body_start;
    let end = checker
        .outline(body)
        .found
        .iter()
        .map(|l| l.start)
        .filter(|&s| s > start)
        .min()?;
    let mut out = text[..doc.body_start].to_string();
    out.push_str(body[..start].trim_end_matches(['\r', '\n']));
    out.push_str("\n\n");
    out.push_str(body[end..].trim_end_matches(['\r', '\n']));
    out.push_str("\n\n");
    out.push_str(body[start..end].trim_end_matches(['\r', '\n']));
    out.push('\n');
    Some(out)
}

/// The level the template's headings go at: one above the team's shallowest heading
/// inside what is placed, so the team's headings stay as written (at least 1).
fn section_level(doc: &markdown::Doc, taken: &[(Located, Option<By>)]) -> u8 {
    let shallowest = doc
        .headings
        .iter()
        .filter(|h| {
            h.top_level
                && taken
                    .iter()
                    .any(|(l, by)| by.is_some() && h.start >= l.start && h.start < l.end)
        })
        .map(|h| h.level)
        .min()
        .unwrap_or(3);
    shallowest.saturating_sub(1).clamp(1, 2)
}

/// Where the top of the plan ends: after its title and the text under it, or at its
/// first heading when it has no title.
fn preamble_end(doc: &markdown::Doc) -> usize {
    let mut top = doc.headings.iter().filter(|h| h.top_level);
    match top.next() {
        Some(first) if first.level == 1 => top.next().map_or(doc.src.len(), |h| h.start),
        Some(first) => first.start,
        None => doc.src.len(),
    }
}

/// Add a part after a blank line.
fn push_part(body: &mut String, part: &str) {
    if !body.is_empty() {
        body.push_str("\n\n");
    }
    body.push_str(part);
}

/// The text outside `spans`, from `start` on, in order.
fn leftover(src: &str, start: usize, mut spans: Vec<(usize, usize)>) -> String {
    spans.sort_unstable();
    let mut out = String::new();
    let mut pos = start;
    for (s, e) in spans {
        if s > pos {
            out.push_str(&src[pos..s]);
        }
        pos = pos.max(e);
    }
    out.push_str(&src[pos.min(src.len())..]);
    out
}

/// `text` with every heading at `level` or above one `#` deeper (ATX ones; a setext
/// heading is left as written), and how many there were.
fn deepen(text: &str, level: u8) -> (String, usize) {
    let doc = markdown::parse(text);
    let mut out = String::with_capacity(text.len() + 8);
    let mut pos = 0;
    let mut n = 0;
    for h in doc.headings.iter().filter(|h| h.top_level && h.level <= level) {
        let line = &text[h.start..];
        if !line.starts_with('#') {
            continue;
        }
        out.push_str(&text[pos..h.start]);
        out.push('#');
        pos = h.start;
        n += 1;
    }
    out.push_str(&text[pos..]);
    (out, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAN: &str = "# Billing cutover\n\nOwner: payments.\n\n## Go/No-go\n\nStop if errors pass 2%.\n\n## Backout plan\n\n1. Flip the flag back.\n\n## Appendix\n\nQueue names.\n";

    #[test]
    fn the_teams_sections_go_under_the_template_headings_and_the_rest_at_the_end() {
        let c = crate::check::testing::checker();
        let a = Adoption::read(PLAN, &c);
        assert!(
            a.body
                .starts_with("# Billing cutover\n\nOwner: payments.\n\n# 2. Rollback decision matrix\n\n## Go/No-go\n"),
            "{}",
            a.body
        );
        assert!(
            a.body
                .contains("# 3. Rollback by stage\n\n## Backout plan\n\n1. Flip the flag back."),
            "{}",
            a.body
        );
        assert!(
            a.body
                .ends_with("# From the original plan\n\n## Appendix\n\nQueue names.\n"),
            "{}",
            a.body
        );
        assert_eq!(a.missing.len(), 8);
        assert_eq!((a.closing_lines, a.relevelled), (2, 0));
        for line in PLAN.lines().filter(|l| !l.trim().is_empty()) {
            assert!(a.body.lines().any(|l| l == line), "{line:?} kept");
        }
    }

    #[test]
    fn the_closing_section_goes_back_to_the_end() {
        let c = crate::check::testing::checker();
        let written = "---\nrbplan: {}\n---\n# T\n\n# 7. Post-rollback checklist\n\nx\n\n# From the original plan\n\n## A\n\nold\n\n# 8. Post-mortem template\n\ny\n";
        let moved = closing_last(written, &c).unwrap();
        assert_eq!(
            moved,
            "---\nrbplan: {}\n---\n# T\n\n# 7. Post-rollback checklist\n\nx\n\n# 8. Post-mortem template\n\ny\n\n# From the original plan\n\n## A\n\nold\n"
        );
        assert!(closing_last(&moved, &c).is_none());
    }
}
