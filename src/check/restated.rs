//! A prose line that restates the prompt's instructions ("It must contain:", "Do not
//! write its heading") instead of following them. Code, tables and headings are not
//! prose; list markers, checkboxes and emphasis are stripped before matching.

use crate::spec::Patterns;

/// The first restating line of `body`: its byte offset in `body` and its text.
pub(super) fn first<'a>(body: &'a str, pats: &Patterns) -> Option<(usize, &'a str)> {
    let mut fence: Option<&str> = None;
    let mut at = 0;
    for line in body.split_inclusive('\n') {
        let start = at;
        at += line.len();
        let t = line.trim();
        if let Some(f) = fence {
            fence = (!t.starts_with(f)).then_some(f);
            continue;
        }
        if t.starts_with("```") || t.starts_with("~~~") {
            fence = Some(&t[..3]);
            continue;
        }
        if t.starts_with('|') || t.starts_with('#') {
            continue;
        }
        let prose = strip(t);
        if !prose.is_empty() && pats.set.is_match(prose.as_bytes()) {
            return Some((start + (prose.as_ptr() as usize - line.as_ptr() as usize), t));
        }
    }
    None
}

/// A line without its list marker, checkbox, quote marker and leading emphasis.
fn strip(mut t: &str) -> &str {
    loop {
        let before = t.len();
        t = t.trim_start_matches(['>', '-', '*', '+', '_', ' ', '\t']);
        let digits = t.len() - t.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits > 0 && t[digits..].starts_with(['.', ')']) {
            t = &t[digits + 1..];
        }
        for cb in ["[ ]", "[x]", "[X]"] {
            t = t.strip_prefix(cb).unwrap_or(t);
        }
        if t.len() == before {
            return t.trim_end_matches(['*', '_', ' ']);
        }
    }
}

/// A line as a finding quotes it: at most 80 characters.
pub(super) fn clip(line: &str) -> String {
    match line.char_indices().nth(80) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Patterns, RESTATED};

    fn hit(body: &str) -> Option<&str> {
        first(body, &Patterns::new(RESTATED).unwrap()).map(|(_, l)| l)
    }

    #[test]
    fn restated_instructions_are_found_in_prose() {
        for line in [
            "The plan should contain the following content:",
            "The rollback plan for this migration must contain:",
            "- **It must contain:**",
            "It must have 5-10 scenarios specific to this migration, each a question",
            "1. The rollback plan must contain at least 2 sections with each section",
            "This is the outline for the migration. The plan must agree with it, including the details.",
            "The content of this section is written only, in Markdown. Do not write its heading.",
            "Writing only one section of the rollback plan for this migration: 9.",
            "When you are ready, write the content of this section.",
            "> * [ ] The plan must include the following:",
        ] {
            assert_eq!(hit(&format!("Some text.\n\n{line}\n")), Some(line), "{line}");
        }
    }

    #[test]
    fn plans_and_runbooks_that_say_must_are_not_restating() {
        for line in [
            "This section describes how to roll back the orders database.",
            "You must have the following permissions:",
            "When you are ready to upgrade, run the drain script.",
            "The rollback plan must be approved by the DBA on call.",
            "It must have finished replicating before the switch.",
            "The section of pipe must contain no air.",
            "I will post the next update at 14:30 UTC.",
            "Rollback must be done within 15 minutes of the write cutover.",
        ] {
            assert_eq!(hit(&format!("{line}\n")), None, "{line}");
        }
    }

    #[test]
    fn code_tables_and_headings_are_not_prose() {
        let body = "```text\nIt must contain:\n```\n| The plan must contain: | x |\n### It must contain:\n";
        assert_eq!(hit(body), None);
        let (at, _) = first("Intro.\n- It must contain:\n", &Patterns::new(RESTATED).unwrap()).unwrap();
        assert_eq!(at, "Intro.\n- ".len());
    }

    #[test]
    fn long_lines_are_clipped_for_the_message() {
        assert_eq!(clip("short"), "short");
        assert_eq!(clip(&"é".repeat(100)).chars().count(), 81);
    }
}
