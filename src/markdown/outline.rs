//! Where each required section is in a document, and the edits a splice needs: closing
//! blocks a cut-off reply left open, demoting headings that would end a section.

use pulldown_cmark::{Event, Parser, Tag, TagEnd};

use super::{Doc, HeadingMatch, Matcher, options, parse};

/// One occurrence of a required section in a document.
#[derive(Debug, Clone)]
pub struct Located {
    pub section: usize,
    /// Byte range of the whole section, heading included.
    pub start: usize,
    pub end: usize,
    /// Where the content after the heading starts.
    pub body_start: usize,
    pub line: usize,
    pub level: u8,
    pub heading: String,
    /// No content under the heading (a heading alone does not make a section).
    pub empty: bool,
}

#[derive(Debug, Clone)]
pub struct Outline {
    /// Every occurrence, in document order (duplicates included).
    pub found: Vec<Located>,
    /// The heading level most sections use; new sections are spliced in at this level.
    pub level: u8,
}

impl Outline {
    /// The occurrence that counts for a section: the first non-empty one, else the first.
    pub fn primary(&self, section: usize) -> Option<&Located> {
        let mut all = self.found.iter().filter(|l| l.section == section);
        let first = all.clone().next();
        all.find(|l| !l.empty).or(first)
    }

    pub fn is_present(&self, section: usize) -> bool {
        self.primary(section).is_some_and(|l| !l.empty)
    }
}

/// An outline with the text it was made from, so a later step reuses it for that text only.
#[derive(Debug, Clone)]
pub struct Outlined {
    text: String,
    outline: Outline,
}

impl Outlined {
    pub fn new(text: &str, outline: Outline) -> Outlined {
        Outlined {
            text: text.to_string(),
            outline,
        }
    }

    /// The outline, when `text` is the text it was made from.
    pub fn of(&self, text: &str) -> Option<&Outline> {
        (self.text == text).then_some(&self.outline)
    }
}

pub fn outline(doc: &Doc, matcher: &Matcher) -> Outline {
    let (matches, sec_level) = section_headings(doc, matcher);
    let mut found = locate(doc, &matches, matcher.sections());
    for l in &mut found {
        l.empty = !doc
            .blocks
            .iter()
            .any(|b| b.start >= l.body_start && b.start < l.end && b.is_content());
    }
    let level = most_common(found.iter().map(|l| l.level)).unwrap_or(sec_level);
    Outline { found, level }
}

/// The section each heading names (None for the rest), and the level sections are at: the
/// shallowest exact match, else the shallowest match. Deeper loose matches are
/// subsections ("Scenario 4: rollback by stage fails").
fn section_headings(doc: &Doc, matcher: &Matcher) -> (Vec<Option<HeadingMatch>>, u8) {
    let matches: Vec<Option<HeadingMatch>> = doc
        .headings
        .iter()
        .map(|h| h.top_level.then(|| matcher.match_heading(&h.text)).flatten())
        .collect();
    let level_of = |exact_only: bool| {
        doc.headings
            .iter()
            .zip(&matches)
            .filter(|(_, m)| m.is_some_and(|m| !exact_only || m.extra == 0))
            .map(|(h, _)| h.level)
            .min()
    };
    let sec_level = level_of(true).or_else(|| level_of(false)).unwrap_or(2);
    let matches = doc
        .headings
        .iter()
        .zip(matches)
        .map(|(h, m)| m.filter(|m| h.level <= sec_level || m.extra == 0))
        .collect();
    (matches, sec_level)
}

/// Each section's span, from its heading to the next heading that ends it.
fn locate(doc: &Doc, matches: &[Option<HeadingMatch>], sections: usize) -> Vec<Located> {
    // A heading with nothing before the next one is bare: a list of contents ("## 1. …",
    // "## 2. …", then each section under "### 1. …") names the sections but holds none,
    // so a bare heading does not make a deeper one naming the same section a subsection.
    let bare = bare_headings(doc);
    // The shallowest heading naming each section, wherever it is, bare ones aside.
    let mut shallowest = vec![u8::MAX; sections];
    for ((h, m), _) in doc.headings.iter().zip(matches).zip(&bare).filter(|(_, b)| !**b) {
        if let Some(m) = m {
            shallowest[m.section] = shallowest[m.section].min(h.level);
        }
    }
    let mut found: Vec<Located> = Vec::new();
    let mut current: Option<Located> = None;
    let mut seen = vec![false; sections];
    for ((h, m), &bare) in doc
        .headings
        .iter()
        .zip(matches)
        .zip(&bare)
        .filter(|((h, _), _)| h.top_level)
    {
        let ends_current = match m {
            // A heading deeper than the current section is its subsection when it names the
            // same section, one seen already, or one that a shallower heading elsewhere
            // names ("#### Communication" inside a stage, with "## 6. Communication" below).
            Some(m) => !current.as_ref().is_some_and(|c| {
                h.level > c.level && (c.section == m.section || seen[m.section] || shallowest[m.section] < h.level)
            }),
            // An unrelated heading at the same level or above ends the section.
            None => current.as_ref().is_some_and(|c| h.level <= c.level),
        };
        if !ends_current {
            continue;
        }
        if let Some(mut c) = current.take() {
            c.end = h.start;
            found.push(c);
        }
        if let Some(m) = m {
            seen[m.section] |= !bare;
            current = Some(Located {
                section: m.section,
                start: h.start,
                end: doc.src.len(),
                body_start: h.end,
                line: h.line,
                level: h.level,
                heading: h.text.clone(),
                empty: true,
            });
        }
    }
    found.extend(current);
    found
}

/// For each heading: no content block between it and the next heading.
fn bare_headings(doc: &Doc) -> Vec<bool> {
    let ends = doc
        .headings
        .iter()
        .skip(1)
        .map(|h| h.start)
        .chain(std::iter::once(doc.src.len()));
    doc.headings
        .iter()
        .zip(ends)
        .map(|(h, end)| {
            !doc.blocks
                .iter()
                .any(|b| b.start >= h.end && b.start < end && b.is_content())
        })
        .collect()
}

fn most_common(it: impl Iterator<Item = u8>) -> Option<u8> {
    let mut counts = [0usize; 7];
    for l in it {
        counts[l as usize] += 1;
    }
    (1..7)
        .filter(|&l| counts[l] > 0)
        .max_by_key(|&l| (counts[l], std::cmp::Reverse(l)))
        .map(|l| l as u8)
}

/// Byte offsets (into `list`) where the items of the outermost list in `list` start.
pub fn list_item_starts(list: &str) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut depth = 0usize;
    for (ev, range) in Parser::new_ext(list, options()).into_offset_iter() {
        match ev {
            Event::Start(Tag::List(_)) => depth += 1,
            Event::End(TagEnd::List(_)) => depth = depth.saturating_sub(1),
            Event::Start(Tag::Item) if depth == 1 => starts.push(range.start),
            _ => {}
        }
    }
    starts
}

/// Shift headings in `body` so none is shallower than `min_level` (a section's content
/// must not open a heading that would end the section). Setext headings become ATX.
pub fn demote_headings(body: &str, min_level: u8) -> String {
    let doc = parse(body);
    let mut out = String::with_capacity(body.len() + 16);
    let mut pos = 0;
    for h in doc.headings.iter().filter(|h| h.top_level && h.level < min_level) {
        out.push_str(&body[pos..h.start]);
        out.push_str(&"#".repeat(min_level.min(6) as usize));
        out.push(' ');
        out.push_str(&h.text);
        out.push('\n');
        pos = h.end;
    }
    out.push_str(&body[pos..]);
    out
}

/// A reply written inside one code fence ("```markdown" … "```", or a bare "```" around
/// headings): the text inside, with whatever came before the fence and after its close.
/// Code blocks inside it (```sql … ```) stay; a fence never closed (a reply cut off) loses
/// only its opening line. Any other text comes back as it is.
pub fn unwrap_fence(text: &str) -> std::borrow::Cow<'_, str> {
    let Some((open_at, body_at, info)) = outer_fence(text) else {
        return text.into();
    };
    let body = &text[body_at..];
    let close = closing_fence(body);
    let inner = &body[..close.map_or(body.len(), |(s, _)| s)];
    let wraps_markdown = matches!(info.as_str(), "markdown" | "md" | "gfm")
        || (info.is_empty() && inner.lines().any(|l| l.trim_start().starts_with('#')));
    if !wraps_markdown {
        return text.into();
    }
    let after = close.map_or("", |(_, e)| &body[e..]);
    format!("{}{}{}", &text[..open_at], inner, after).into()
}

/// The fence that opens a reply: it starts the text, or follows a line or two of prose (no
/// heading). Where it starts, where its content starts, and its info string, lower case.
fn outer_fence(text: &str) -> Option<(usize, usize, String)> {
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        let t = line.trim();
        if let Some(info) = t.strip_prefix("```") {
            let prose = &text[..at];
            return (prose.len() <= 300 && !prose.lines().any(|l| l.trim_start().starts_with('#')))
                .then(|| (at, at + line.len(), info.trim().to_lowercase()));
        }
        if t.starts_with('#') || t.starts_with("~~~") {
            return None;
        }
        at += line.len();
    }
    None
}

/// The line that closes the outer fence in `body` (its content): the first bare "```" that
/// closes no inner block opened with an info string ("```sql"). Its start and end.
fn closing_fence(body: &str) -> Option<(usize, usize)> {
    let (mut at, mut inner_open) = (0, false);
    for line in body.split_inclusive('\n') {
        let t = line.trim();
        if let Some(info) = t.strip_prefix("```") {
            match (info.trim().is_empty(), inner_open) {
                (false, false) => inner_open = true,
                (true, true) => inner_open = false,
                (true, false) => return Some((at, at + line.len())),
                (false, true) => {}
            }
        }
        at += line.len();
    }
    None
}

/// Close a fenced code block or HTML comment left open at the end of `text` (a reply cut
/// off mid-block), so that text spliced after it is not swallowed into it.
pub fn close_open_blocks(text: &str) -> String {
    let mut out = text.to_string();
    let mut fence: Option<(usize, usize)> = None; // (block start, end)
    for (ev, range) in Parser::new_ext(text, options()).into_offset_iter() {
        if let Event::Start(Tag::CodeBlock(pulldown_cmark::CodeBlockKind::Fenced(_))) = ev {
            fence = Some((range.start, range.end));
        }
    }
    if let Some((start, end)) = fence
        && end >= text.trim_end().len()
    {
        let block = &text[start..end];
        let first = block.lines().next().unwrap_or("").trim_start();
        let marker: String = first.chars().take_while(|&c| c == '`' || c == '~').collect();
        let last = block.trim_end().lines().last().unwrap_or("").trim();
        let closed = block.trim_end().lines().count() > 1
            && last.starts_with(&marker)
            && last.chars().all(|c| c == marker.chars().next().unwrap_or('`'));
        if !marker.is_empty() && !closed {
            if !out.ends_with('\n') {
                out.push('\n');
            }
            out.push_str(&marker);
            out.push('\n');
        }
    }
    let opened = out.rfind("<!--");
    if opened.is_some_and(|o| !out[o..].contains("-->")) {
        out.push_str("\n-->\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::testing::{located_ids, matcher};
    use super::*;

    #[test]
    fn a_reply_inside_one_markdown_fence_is_unwrapped() {
        let plan =
            "## 1. Rollback philosophy\n\nWhy.\n\n```sql\nSELECT 1;\n```\n\n## 2. Rollback decision matrix\n\nRows.\n";
        for wrapped in [
            format!("```markdown\n{plan}```\n"),
            format!("```\n{plan}```"),
            format!("Here is the plan:\n\n```md\n{plan}```\n"),
        ] {
            let got = unwrap_fence(&wrapped);
            assert!(
                got.contains(plan) && !got.contains("```md") && !got.ends_with("```"),
                "{got}"
            );
            assert_eq!(located_ids(&got).len(), 2, "{got}");
        }
        // Cut off inside the fence (found live with SmolLM2): the opener goes.
        let cut = "```markdown\n### 1. Rollback philosophy\n\nWhy.\n\n### 2. Rollback decision";
        assert!(unwrap_fence(cut).starts_with("### 1. Rollback philosophy"));
        // What is not a plan in a fence stays as it is: code, or a fence after a heading.
        for keep in [
            "```sql\nSELECT 1;\n```\n",
            "```\nplain text\n```\n",
            "## 1. Rollback philosophy\n\n```markdown\n# x\n```\n",
        ] {
            assert_eq!(unwrap_fence(keep), keep);
        }
    }

    #[test]
    fn a_list_of_contents_as_headings_does_not_swallow_the_sections_under_it() {
        // Found live with SmolLM2: every title as "## N.", then the text under "### N.".
        let md = "## 1. Rollback philosophy\n## 2. Rollback decision matrix\n## 3. Rollback by stage\n\n\
                  ### 1. Rollback philosophy\n\nwhy\n\n### 2. Rollback decision matrix\n\nrows\n";
        let ids = located_ids(md);
        let written: Vec<&str> = ids.iter().filter(|(_, e)| !e).map(|(id, _)| id.as_str()).collect();
        assert_eq!(written, ["philosophy", "decision-matrix"]);
        // A section whose subsection has the content is not bare in that sense.
        let md = "## 3. Rollback by stage\n### Read cutover\n\nsteps\n\n## 6. Communication during rollback\n\nmsgs\n";
        assert_eq!(
            located_ids(md),
            [("by-stage".into(), false), ("communication".into(), false)]
        );
    }

    #[test]
    fn open_fences_and_comments_are_closed() {
        assert_eq!(
            close_open_blocks("text\n\n```sql\nselect 1;"),
            "text\n\n```sql\nselect 1;\n```\n"
        );
        assert_eq!(close_open_blocks("~~~~\nx\n"), "~~~~\nx\n~~~~\n");
        let closed = "```\nx\n```\n";
        assert_eq!(close_open_blocks(closed), closed);
        assert_eq!(close_open_blocks("a <!-- note"), "a <!-- note\n-->\n");
        let after = close_open_blocks("```\ncut") + "\n## 2. Rollback decision matrix\n\nrows\n";
        let (m, _) = matcher();
        assert_eq!(outline(&parse(&after), &m).found.len(), 1);
    }

    #[test]
    fn setext_bold_and_levels() {
        let md = "# Plan\n\nRollback philosophy\n===================\n\ntext\n\n## **2. Rollback decision matrix**\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n#### 3. Rollback by stage\n\nsteps\n";
        assert_eq!(
            located_ids(md),
            vec![
                ("philosophy".into(), false),
                ("decision-matrix".into(), false),
                ("by-stage".into(), false)
            ]
        );
    }

    #[test]
    fn prose_code_fences_and_quotes_do_not_count() {
        let md = "# Plan\n\nThe rollback philosophy is covered below.\n\n```\n## 2. Rollback decision matrix\n```\n\n> ## 3. Rollback by stage\n\n- ## 4. Specific rollback procedures by component\n";
        assert!(located_ids(md).is_empty());
    }

    #[test]
    fn empty_section_is_located_but_empty() {
        let md = "## 1. Rollback philosophy\n\n## 2. Rollback decision matrix\n\nrows\n\n## 3. Rollback by stage\n\n---\n\n<!-- todo -->\n";
        assert_eq!(
            located_ids(md),
            vec![
                ("philosophy".into(), true),
                ("decision-matrix".into(), false),
                ("by-stage".into(), true)
            ]
        );
    }

    #[test]
    fn subsections_stay_inside_their_section() {
        let md = "## 3. Rollback by stage\n\n### Stage: backfill\n\ntext\n\n### Rollback by stage: notes\n\nmore\n\n## 9. What-if scenarios\n\n### Scenario 4: rollback by stage fails\n\nplan\n\n## Appendix\n\nnot a section\n";
        let (m, _) = matcher();
        let doc = parse(md);
        let o = outline(&doc, &m);
        assert_eq!(o.found.len(), 2);
        assert!(md[o.found[0].start..o.found[0].end].contains("notes"));
        assert!(md[o.found[1].start..o.found[1].end].contains("Scenario 4"));
        assert!(!md[o.found[1].start..o.found[1].end].contains("Appendix"));
    }

    #[test]
    fn subsections_named_like_a_later_section_stay_subsections() {
        let md = "## 3. Rollback by stage\n\n### Stage 4: Write cutover\n\nsteps\n\n#### Communication\n\ntell people\n\n### Stage 5: Decommission\n\nmore\n\n## 4. Specific rollback procedures by component\n\ncmds\n\n### Rollback drill\n\ntimed\n\n## 5. Pre-cutover rehearsal\n\ndrill\n\n## 6. Communication during rollback\n\nmessages\n";
        let (m, spec) = matcher();
        let o = outline(&parse(md), &m);
        let ids: Vec<(&str, usize)> = o
            .found
            .iter()
            .map(|l| (spec.sections[l.section].id.as_str(), l.line))
            .collect();
        assert_eq!(
            ids,
            [
                ("by-stage", 1),
                ("by-component", 15),
                ("rehearsal", 23),
                ("communication", 27)
            ]
        );
        assert!(md[o.found[0].start..o.found[0].end].contains("Stage 5"));
        // With no shallower heading naming it, a deeper numbered heading is still a section.
        let mixed = "## 1. Rollback philosophy\n\ntext\n\n### 2. Rollback decision matrix\n\nrows\n";
        assert_eq!(
            located_ids(mixed),
            vec![("philosophy".into(), false), ("decision-matrix".into(), false)]
        );
    }

    #[test]
    fn demote_keeps_body_under_its_section() {
        let body = "intro\n\n# Big\n\ntext\n\nSub\n---\n\nmore\n\n### deep\n";
        let out = demote_headings(body, 3);
        assert!(out.contains("### Big\n"), "{out}");
        assert!(out.contains("### Sub\n"), "{out}");
        assert!(out.contains("### deep"));
        assert!(out.contains("intro") && out.contains("more"));
    }
}
