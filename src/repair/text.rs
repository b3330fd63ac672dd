//! Text operations of repair, all pure: find the usable sections in a reply, drop what
//! a cut-off or padded reply left unfinished or empty, and splice sections into a plan in
//! canonical order.

use crate::check::Checker;
use crate::markdown;

/// A reply cut off by the token limit: its last section may be unfinished, so drop it
/// (from its heading on). Text before the first section is kept.
pub fn drop_unfinished_tail(text: &str, checker: &Checker) -> String {
    let outline = checker.outline(text);
    match outline.found.last() {
        Some(last) => text[..last.start].trim_end().to_string() + "\n",
        None => markdown::close_open_blocks(text),
    }
}

/// The requested sections found in a repair reply: (section index, body without heading).
pub fn sections_from_reply(reply: &str, checker: &Checker, wanted: &[usize], truncated: bool) -> Vec<(usize, String)> {
    let outline = checker.outline(reply);
    let usable = if truncated {
        outline.found.len().saturating_sub(1)
    } else {
        outline.found.len()
    };
    let mut out: Vec<(usize, String)> = Vec::new();
    for l in &outline.found[..usable] {
        if l.empty || !wanted.contains(&l.section) || out.iter().any(|(i, _)| *i == l.section) {
            continue;
        }
        let body = drop_empty_headings(reply[l.body_start..l.end].trim());
        if has_content(&body) {
            out.push((l.section, body));
        }
    }
    out
}

/// The body of a one-section reply. The model was told not to write the heading; if it did,
/// it is dropped. Anything from another required section's heading on is dropped too.
pub fn body_from_fill(reply: &str, checker: &Checker, idx: usize, truncated: bool) -> Option<String> {
    let outline = checker.outline(reply);
    // The part of the reply that is this section, and whether it runs to the reply's end
    // (only then can a cut-off reply have cut it).
    let (mut text, mut runs_to_end) = match outline.found.iter().find(|l| l.section == idx && !l.empty) {
        Some(l) => (&reply[l.body_start..l.end], l.end >= reply.len()),
        None => match outline.found.iter().find(|l| l.section != idx) {
            Some(other) => (&reply[..other.start], false),
            None => (reply, true),
        },
    };
    // A leading heading that names this section (e.g. "# Rollback philosophy for X") goes;
    // any other leading heading is the body's own subsection and stays.
    let doc = markdown::parse(text);
    if let Some(h) = doc.headings.first()
        && text[..h.start].trim().is_empty()
        && checker.matcher.match_heading(&h.text).is_some_and(|m| m.section == idx)
    {
        text = &text[h.end..];
    }
    // A title line of another section with that section's number starts that section,
    // heading or not: weak models list sections as "**2. Rollback decision matrix**" lines.
    // (A numbered step that happens to use a section's name, "**3. Communication**" in a
    // by-stage body, carries another number and stays.)
    let doc = markdown::parse(text);
    let other = doc.blocks.iter().find(|b| {
        title_line(&text[b.start..b.end], checker).is_some_and(|(m, n)| m.section != idx && n == Some(m.section + 1))
    });
    if let Some(b) = other {
        text = &text[..b.start];
        runs_to_end = false;
    }
    let mut body = text.trim().to_string();
    if truncated && runs_to_end {
        body = drop_unfinished_block(&body);
    }
    // A leading line that only restates this section's title is the heading echoed, not
    // content: "**10. The hard truth about rollback:**", "\"6. Communication during rollback.\"".
    // Models repeat it in several forms, so each leading echo goes.
    loop {
        let doc = markdown::parse(&body);
        match doc.blocks.first() {
            Some(b)
                if body[..b.start].trim().is_empty()
                    && title_line(&body[b.start..b.end], checker).is_some_and(|(m, _)| m.section == idx) =>
            {
                body = body[b.end..].trim().to_string();
            }
            _ => break,
        }
    }
    let body = drop_empty_headings(&body);
    has_content(&body).then_some(body)
}

/// The section a paragraph names when it is one decorated line and nothing else: bold,
/// quoted or code, numbered, or ending in a colon (`**3. Rollback by stage**`,
/// `"6. Communication during rollback."`, `Rollback philosophy:`). A plain sentence that
/// happens to use a section's words is not a title. Also gives its leading number, if any.
fn title_line(block: &str, checker: &Checker) -> Option<(markdown::HeadingMatch, Option<usize>)> {
    let line = block.trim();
    if line.is_empty() || line.contains('\n') {
        return None;
    }
    let wrappers = |c: char| matches!(c, '*' | '_' | '"' | '\'' | '`' | '“' | '”' | ' ' | '-' | '+');
    let bare = line.trim_matches(wrappers);
    let digits: String = bare.chars().take_while(char::is_ascii_digit).collect();
    let number = digits.parse::<usize>().ok();
    let decorated = bare.len() < line.len() || number.is_some() || bare.ends_with(':');
    if !decorated {
        return None;
    }
    checker.matcher.match_heading(bare).map(|m| (m, number))
}

/// Whether a body has something under its headings: a block that is not a rule or a comment.
fn has_content(body: &str) -> bool {
    markdown::parse(body).blocks.iter().any(|b| b.is_content())
}

/// Drop headings with nothing under them (before the next heading at their level or above,
/// or the end). Weak models pad a reply with runs of empty numbered subheadings.
pub fn drop_empty_headings(body: &str) -> String {
    let doc = markdown::parse(body);
    let heads: Vec<&markdown::Heading> = doc.headings.iter().filter(|h| h.top_level).collect();
    let mut out = String::with_capacity(body.len());
    let mut pos = 0;
    for (i, h) in heads.iter().enumerate() {
        let until = heads[i + 1..]
            .iter()
            .find(|n| n.level <= h.level)
            .map_or(body.len(), |n| n.start);
        let empty = !doc
            .blocks
            .iter()
            .any(|b| b.start >= h.end && b.start < until && b.is_content());
        if empty {
            out.push_str(&body[pos..h.start]);
            pos = h.end;
        }
    }
    out.push_str(&body[pos..]);
    tidy_blank_lines(&out)
}

/// At most one blank line in a row, none at the ends (outside code blocks, lines are
/// compared trimmed).
fn tidy_blank_lines(text: &str) -> String {
    let doc = markdown::parse(text);
    let in_code = |at: usize| {
        doc.blocks
            .iter()
            .any(|b| b.kind == markdown::BlockKind::Code && b.start < at && at < b.end)
    };
    let mut out = String::with_capacity(text.len());
    let mut blank_run = 0;
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        let blank = line.trim().is_empty() && !in_code(at);
        at += line.len();
        if blank {
            blank_run += 1;
            if blank_run > 1 {
                continue;
            }
        } else {
            blank_run = 0;
        }
        out.push_str(line);
    }
    out.trim().to_string()
}

/// A body cut off by the token limit, without its unfinished end. The last element goes,
/// whether a block or a heading (a heading with nothing after it is no content); from a
/// list, only its last item. A body that is a single block is kept whole: a cut paragraph
/// says more than nothing.
pub fn drop_unfinished_block(body: &str) -> String {
    let doc = markdown::parse(body);
    let last_heading = doc.headings.iter().filter(|h| h.top_level).map(|h| h.start).max();
    let cut = match doc.blocks.last() {
        Some(b) if last_heading.is_none_or(|h| b.start > h) => {
            let items = if b.kind == markdown::BlockKind::List {
                markdown::list_item_starts(&body[b.start..b.end])
            } else {
                Vec::new()
            };
            match items.last() {
                Some(&last) if items.len() > 1 => b.start + last,
                _ if doc.blocks.len() > 1 => b.start,
                _ => body.len(),
            }
        }
        _ => last_heading.unwrap_or(body.len()),
    };
    body[..cut].trim_end().to_string()
}

/// One change to a plan: replace `start..end` with `text` (an insertion when they are
/// equal, a removal when `text` is empty). Edits at one point go in canonical order.
struct Edit {
    start: usize,
    end: usize,
    section: usize,
    text: String,
}

impl Edit {
    fn new(start: usize, end: usize, section: usize, text: String) -> Edit {
        Edit {
            start,
            end,
            section,
            text,
        }
    }
}

/// A regenerated plan laid back over the one a person edited: each section of `new` not
/// in `keep` takes the place of its text in `old`, so what the person added between
/// sections stays where they put it, and the `keep` sections stay byte for byte.
/// A section of `old` that `new` lacks goes too: old text must not pass for new.
pub fn merge(old: &str, new: &str, keep: &[usize], checker: &Checker) -> String {
    let outline = checker.outline(new);
    let (edits, lacking): (Vec<_>, Vec<_>) = (0..checker.spec.sections.len())
        .filter(|i| !keep.contains(i))
        .map(|i| {
            (
                i,
                outline
                    .primary(i)
                    .filter(|l| !l.empty)
                    .map(|l| new[l.body_start..l.end].to_string()),
            )
        })
        .partition(|(_, body)| body.is_some());
    let edits: Vec<(usize, String)> = edits.into_iter().map(|(i, b)| (i, b.unwrap_or_default())).collect();
    let merged = splice(old, checker, &edits);
    let lacking: Vec<usize> = lacking.into_iter().map(|(i, _)| i).collect();
    let stale = checker.outline(&merged);
    let mut out = String::with_capacity(merged.len());
    let mut pos = 0;
    for l in stale.found.iter().filter(|l| lacking.contains(&l.section)) {
        out.push_str(&merged[pos..l.start.max(pos)]);
        pos = pos.max(l.end);
    }
    out.push_str(&merged[pos..]);
    out
}

/// Put each (section, body) into `plan`: replacing the section where it has content, else
/// inserting it before the first section that comes after it in canonical order. Other
/// occurrences of an edited section (a copy written twice), and empty ones (a heading with
/// nothing under it, often repeated by weak models) of a section present elsewhere, are
/// removed: each section ends up once.
pub fn splice(plan: &str, checker: &Checker, edits: &[(usize, String)]) -> String {
    let plan = &markdown::close_open_blocks(plan);
    let outline = checker.outline(plan);
    let level = outline.level.max(1);
    let edited = |section: usize| edits.iter().any(|(i, _)| *i == section);
    // The new text replaces every copy of an edited section: its primary in place, the
    // others (a section written twice) go. An empty copy goes when the section is present.
    let is_primary = |l: &markdown::Located| outline.primary(l.section).is_some_and(|p| p.start == l.start);
    let removed = |l: &markdown::Located| {
        let replaced_in_place = is_primary(l) && !l.empty;
        (edited(l.section) && !replaced_in_place) || (l.empty && outline.is_present(l.section))
    };
    let mut ops: Vec<Edit> = Vec::new();
    for l in outline.found.iter().filter(|l| removed(l)) {
        ops.push(Edit::new(l.start, l.end, l.section, String::new()));
    }
    for (idx, body) in edits {
        let body = markdown::demote_headings(&markdown::close_open_blocks(body.trim()), level + 1);
        let text = format!(
            "{} {}\n\n{}\n\n",
            "#".repeat(level as usize),
            checker.spec.heading(*idx),
            body.trim_end()
        );
        match outline.primary(*idx).filter(|l| !l.empty) {
            Some(l) => ops.push(Edit::new(l.start, l.end, *idx, text)),
            None => {
                // Before the first section after this one that stays where it is.
                let stays = |l: &&markdown::Located| l.section > *idx && !removed(l) && is_primary(l);
                let at = outline.found.iter().filter(stays).map(|l| l.start).min();
                let at = at.unwrap_or(plan.len());
                ops.push(Edit::new(at, at, *idx, text));
            }
        }
    }
    // Walk the plan once, emitting original text between the edits; equal points keep
    // canonical order. Inserted text always starts after a blank line.
    ops.sort_by_key(|e| (e.start, e.section, e.end));
    let mut out = String::with_capacity(plan.len() + ops.iter().map(|o| o.text.len()).sum::<usize>());
    let mut cursor = 0;
    for Edit { start, end, text, .. } in ops {
        out.push_str(&plan[cursor.min(start)..start]);
        cursor = cursor.max(end);
        if text.is_empty() {
            continue;
        }
        let kept = out.trim_end().len();
        out.truncate(kept);
        if !out.is_empty() {
            out.push_str("\n\n");
        }
        out.push_str(&text);
    }
    out.push_str(&plan[cursor.min(plan.len())..]);
    let kept = out.trim_end().len();
    out.truncate(kept);
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Code;
    use crate::check::Migration;
    use crate::check::testing::checker;

    fn ids(plan: &str) -> Vec<usize> {
        checker().outline(plan).found.iter().map(|l| l.section).collect()
    }

    #[test]
    fn splice_inserts_in_canonical_order_and_replaces_empty() {
        let c = checker();
        let plan = "# Plan\n\nintro\n\n## 1. Rollback philosophy\n\nA\n\n## 4. Specific rollback procedures by component\n\n## 9. Rollback what-if scenarios\n\nW\n";
        let edits = vec![
            (2, "stages".to_string()),
            (1, "matrix".to_string()),
            (3, "components".to_string()),
            (9, "truth".to_string()),
        ];
        let out = splice(plan, &c, &edits);
        assert_eq!(ids(&out), vec![0, 1, 2, 3, 8, 9]);
        assert!(
            out.starts_with(
                "# Plan\n\nintro\n\n## 1. Rollback philosophy\n\nA\n\n## 2. Rollback decision matrix\n\nmatrix\n\n## 3."
            ),
            "{out}"
        );
        assert!(
            out.contains("## 4. Specific rollback procedures by component\n\ncomponents\n\n## 9."),
            "{out}"
        );
        assert!(
            out.ends_with("## 10. The hard truth about rollback\n\ntruth\n"),
            "{out}"
        );
        let (_, r) = c.check(&out, &Migration::default());
        assert!(
            r.findings
                .iter()
                .all(|f| f.code != Code::Empty && f.code != Code::Duplicate)
        );
    }

    // SmolLM2-135M's first answer was nothing but empty headings, each section two to five
    // times ("### 11. The hard truth about rollback", "## 12. Rollback philosophy", ...
    // "## 46. Pre-cutover rehearsal"). Each filled section went into its first empty
    // heading, so the plan opened with section 10, and 36 empty duplicates stayed at its end.
    #[test]
    fn splice_removes_empty_duplicates_and_keeps_canonical_order() {
        let c = checker();
        let plan = "### 11. The hard truth about rollback\n## 12. Rollback philosophy\n## 13. Rollback decision matrix\n## 21. The hard truth about rollback\n## 22. Rollback philosophy\n";
        let out = splice(plan, &c, &[(0, "A".into()), (9, "T".into())]);
        // The unedited empty heading of section 2 stays, and 1 goes before it.
        assert_eq!(
            out,
            "## 1. Rollback philosophy\n\nA\n\n## 13. Rollback decision matrix\n\n## 10. The hard truth about rollback\n\nT\n"
        );
        let out = splice(plan, &c, &[(0, "A".into()), (1, "B".into()), (9, "T".into())]);
        assert_eq!(ids(&out), vec![0, 1, 9]);
        let (_, r) = c.check(&out, &Migration::default());
        assert!(r.findings.iter().all(|f| f.code != Code::Duplicate), "{:?}", r.findings);
        // A present section keeps its place when rewritten; its empty duplicates go.
        let plan = "## 1. Rollback philosophy\n\nA\n\n## 2. Rollback decision matrix\n\nold\n\n## 2. Rollback decision matrix\n";
        let out = splice(plan, &c, &[(1, "new".into())]);
        assert_eq!(
            out,
            "## 1. Rollback philosophy\n\nA\n\n## 2. Rollback decision matrix\n\nnew\n"
        );
    }

    // SmolLM2-135M's first answer: "## Rollback what-if scenarios" empty near the top, and
    // "## The rollback what-if scenarios" with text at the end. The empty one stayed in the
    // assembled plan as a duplicate, out of order.
    #[test]
    fn splice_removes_empty_duplicates_of_sections_present_elsewhere() {
        let c = checker();
        let plan = "## Rollback philosophy\n\nA\n\n## Rollback what-if scenarios\n\n## Rollback decision matrix\n\n## The rollback what-if scenarios\n\nW\n";
        let out = splice(plan, &c, &[(1, "B".into())]);
        assert_eq!(
            out,
            "## Rollback philosophy\n\nA\n\n## 2. Rollback decision matrix\n\nB\n\n## The rollback what-if scenarios\n\nW\n"
        );
    }

    #[test]
    fn splice_after_prose_without_trailing_newline() {
        let c = checker();
        let out = splice("Some prose with no headings.", &c, &[(1, "B".into()), (0, "A".into())]);
        assert_eq!(
            out,
            "Some prose with no headings.\n\n## 1. Rollback philosophy\n\nA\n\n## 2. Rollback decision matrix\n\nB\n"
        );
    }

    #[test]
    fn spliced_bodies_cannot_break_out_of_their_section() {
        let c = checker();
        let plan = "## 1. Rollback philosophy\n\nA\n\n## 3. Rollback by stage\n\nS\n";
        let out = splice(
            plan,
            &c,
            &[(1, "# Matrix title\n\n| a | b |\n|---|---|\n| 1 | 2 |".into())],
        );
        assert!(out.contains("### Matrix title"), "{out}");
        assert_eq!(ids(&out), vec![0, 1, 2]);
    }

    #[test]
    fn truncated_reply_loses_its_last_section_only() {
        let c = checker();
        let text = "## 1. Rollback philosophy\n\nA\n\n## 2. Rollback decision matrix\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n## 3. Rollback by stage\n\nStep 1: stop the";
        let kept = drop_unfinished_tail(text, &c);
        assert_eq!(ids(&kept), vec![0, 1]);
        assert!(!kept.contains("stop the"));
        let got = sections_from_reply(text, &c, &[1, 2], true);
        assert_eq!(got.iter().map(|(i, _)| *i).collect::<Vec<_>>(), vec![1]);
    }

    #[test]
    fn fill_body_drops_headings_and_other_sections() {
        let c = checker();
        assert_eq!(
            body_from_fill("# Rollback philosophy\n\nBody text.", &c, 0, false).as_deref(),
            Some("Body text.")
        );
        assert_eq!(
            body_from_fill("### Stage 1: backfill\n\nSteps.", &c, 2, false).as_deref(),
            Some("### Stage 1: backfill\n\nSteps.")
        );
        assert_eq!(
            body_from_fill("Body.\n\n## 2. Rollback decision matrix\n\nx", &c, 0, false).as_deref(),
            Some("Body.")
        );
        assert_eq!(body_from_fill("   ", &c, 0, false), None);
        assert_eq!(
            body_from_fill("Para one.\n\nPara two is cut", &c, 0, true).as_deref(),
            Some("Para one.")
        );
    }

    // Replies of SmolLM2-135M to one-section requests that were taken as content: the
    // title echoed as a line, and a list of every section's title as bold lines.
    #[test]
    fn echoed_titles_are_not_content_and_numbered_titles_end_the_section() {
        let c = checker();
        assert_eq!(
            body_from_fill("\"6. Communication during rollback.\"", &c, 5, false),
            None
        );
        let titles =
            "**1. Rollback philosophy**\n\n**2. Rollback decision matrices**\n\n**3. Rollback rollback procedures**\n";
        assert_eq!(body_from_fill(titles, &c, 0, false), None);
        assert_eq!(
            body_from_fill(
                "**Rolling 8. Post-mortem template**\n\nTo roll this migration, we need both.",
                &c,
                7,
                false
            )
            .as_deref(),
            Some("To roll this migration, we need both.")
        );
        let chapters = "**3. Rollback by stage: CHAPTER 1: Rollback by stage**\n\n**3. Rollback by stage: CHAPTER 2: CHAPTER 3: CH";
        assert_eq!(body_from_fill(chapters, &c, 2, true), None);
        let echo_then_list =
            "**10. The hard truth about rollback:**\n\n- Some migrations cannot roll back\n- Reduces the amo";
        assert_eq!(
            body_from_fill(echo_then_list, &c, 9, true).as_deref(),
            Some("- Some migrations cannot roll back")
        );
        // The title twice, as code-ish text and as a list item, then empty headings to the limit.
        let twice = "`Rollback what-if scenarios: \n- \"9. Rollback what-if scenarios\"\n\n# \n#\n\n## \n## \n##";
        assert_eq!(body_from_fill(twice, &c, 8, true), None);
        // A numbered step that uses another section's name, with another number, stays.
        let steps = "**1. Stop CDC**\n\nPause the connector.\n\n**3. Communication**\n\nTell the channel.";
        assert_eq!(body_from_fill(steps, &c, 2, false).as_deref(), Some(steps));
        // A plain sentence using a section's words, or a bold line naming no section, stays.
        let plain = "Rollback by stage is covered below.\n\n**Dual-running**\n\nStop CDC.";
        assert_eq!(body_from_fill(plain, &c, 2, false).as_deref(), Some(plain));
    }

    // SmolLM2-135M padded a "Pre-cutover rehearsal" reply with 27 empty headings
    // ("### 2. Rollback to previous version", ...), and a repair reply with nothing but
    // headings. Those headings said nothing and only cluttered the plan.
    #[test]
    fn empty_subheadings_are_dropped_and_a_body_of_headings_is_no_body() {
        let c = checker();
        let reply = "The drill, timed in staging.\n\n### 1. Rollback to previous version\n\n### 2. Rollback to previous version\n\n### Timing\n\n#### Measured\n\nIt took 20 minutes.\n\n### 3. Rollback to previous version\n";
        assert_eq!(
            body_from_fill(reply, &c, 4, false).as_deref(),
            Some("The drill, timed in staging.\n\n### Timing\n\n#### Measured\n\nIt took 20 minutes.")
        );
        assert_eq!(body_from_fill("### A\n\n### B\n\n---\n", &c, 4, false), None);
        let repair = "## 5. Pre-cutover rehearsal\n\n### Drill\n\n### Timing\n\n## 7. Post-rollback checklist\n\n### Traffic\n\n- [ ] 100% on MySQL\n\n### Notes\n";
        let got = sections_from_reply(repair, &c, &[4, 6], false);
        assert_eq!(got, vec![(6, "### Traffic\n\n- [ ] 100% on MySQL".to_string())]);
        // Code blocks keep their blank lines.
        assert_eq!(
            drop_empty_headings("```\na\n\n\nb\n```\n\n### x\n"),
            "```\na\n\n\nb\n```"
        );
    }

    // SmolLM2-135M, asked for "5. Pre-cutover rehearsal" with --max-tokens 400: one paragraph,
    // then empty numbered headings until the limit cut "### 28." in half. The old rule only
    // looked at non-heading blocks, saw one, and kept the cut heading.
    #[test]
    fn cut_off_fill_loses_its_last_heading_or_list_item_not_the_whole_list() {
        let c = checker();
        let reply = "The drill, timed in staging.\n\n### 1. Rollback to previous version\n\n### 28.";
        let body = body_from_fill(reply, &c, 4, true).unwrap();
        assert!(!body.contains("### 28."), "{body}");
        assert!(body.starts_with("The drill, timed in staging."), "{body}");
        // Its "hard truth" reply was one long list cut mid-item: the list stays, minus that item.
        let reply = "Intro.\n\n- Reduces the amount of data to backfill\n- Reduces data\n- Reduces the amo";
        assert_eq!(
            body_from_fill(reply, &c, 9, true).as_deref(),
            Some("Intro.\n\n- Reduces the amount of data to backfill\n- Reduces data")
        );
        // Cut by another section's heading, the body is whole even if the reply was cut later.
        let reply = "Para one.\n\nPara two.\n\n## 2. Rollback decision matrix\n\nrows are cu";
        assert_eq!(
            body_from_fill(reply, &c, 0, true).as_deref(),
            Some("Para one.\n\nPara two.")
        );
        // The section's own heading, then a cut: the unfinished block still goes.
        let reply = "## 1. Rollback philosophy\n\nWhole.\n\nCut in the mid";
        assert_eq!(body_from_fill(reply, &c, 0, true).as_deref(), Some("Whole."));
    }
}
