//! A plan in its own shape: which of the template's sections (as concerns) its headings
//! cover, by a heading alias or by cues in the text under a heading (`[sections.concern]`
//! in `template.toml`). Used by `check` when few of the template's own headings match,
//! and by `adopt`.

use serde::Serialize;

use crate::markdown::{Doc, Heading, Located, Outline, stem};
use crate::spec::Spec;

/// How a heading was found to cover a concern.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum By {
    /// The heading's words hold one of the concern's aliases.
    Heading,
    /// The text under the heading holds enough of the concern's cues.
    Content,
}

/// Where a plan covers a concern: the heading as written, its line, how it was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Covered {
    pub heading: String,
    pub line: usize,
    pub by: By,
}

/// One concern's matchers.
struct Cues {
    aliases: Vec<Vec<String>>,
    cues: Vec<String>,
    min_cues: usize,
}

/// The concerns of a spec, built once per checker.
pub struct Concerns {
    per: Vec<Cues>,
}

/// Words that never tell one concern from another.
const STOPWORDS: &[&str] = &[
    "a", "an", "the", "of", "for", "and", "to", "by", "in", "on", "at", "with", "our", "your", "this", "its", "how",
    "is", "be", "can", "should", "will", "or",
];
/// Neighbouring words read as one ("roll back" and "rollback" alike).
const COMPOUNDS: &[(&str, &str, &str)] = &[
    ("roll", "back", "rollback"),
    ("back", "out", "backout"),
    ("post", "mortem", "postmortem"),
    ("dry", "run", "dryrun"),
    ("sign", "off", "signoff"),
    ("no", "go", "nogo"),
];

/// A heading's words: lower case, stemmed, stop words dropped, compounds joined.
fn words(text: &str) -> Vec<String> {
    let lower = text.to_lowercase();
    let raw: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let mut out: Vec<String> = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        // "rolling back", "rolled back": the first word in any form.
        let joined = raw.get(i + 1).and_then(|next| {
            COMPOUNDS
                .iter()
                .find(|(a, b, _)| stem(raw[i]) == stem(a) && next == b)
                .map(|(_, _, j)| j.to_string())
        });
        match joined {
            Some(j) => {
                out.push(j);
                i += 2;
            }
            None => {
                out.push(stem(raw[i]));
                i += 1;
            }
        }
    }
    out.retain(|w| !STOPWORDS.contains(&w.as_str()));
    out
}

/// A candidate heading: its span (subsections included) and its own text (up to the next
/// heading of any level).
struct Candidate<'a> {
    h: &'a Heading,
    end: usize,
    /// Its own text, in ASCII lower case.
    own: &'a str,
    words: Vec<String>,
    /// Per concern: how many of its cues the own text holds.
    hits: Vec<usize>,
    /// The longest alias of any concern the heading holds.
    longest: usize,
}

impl Concerns {
    pub fn new(spec: &Spec) -> Concerns {
        let per = spec
            .sections
            .iter()
            .map(|s| Cues {
                aliases: s
                    .concern
                    .aliases
                    .iter()
                    .map(|a| words(a))
                    .filter(|w| !w.is_empty())
                    .collect(),
                cues: s.concern.cues.iter().map(|c| c.to_ascii_lowercase()).collect(),
                min_cues: s.concern.min_cues.unwrap_or(2).max(1),
            })
            .collect();
        Concerns { per }
    }

    /// Whether a plan is in its own shape: fewer than half the sections under the
    /// template's headings.
    pub fn applies(outline: &Outline, sections: usize) -> bool {
        let present = (0..sections).filter(|&i| outline.is_present(i)).count();
        present * 2 < sections
    }

    /// For each section with no heading of its own: the heading that covers it, as a
    /// located section (its span, subsections included), and how it was found.
    pub fn map(&self, doc: &Doc, outline: &Outline) -> Vec<(Located, By)> {
        let lower = doc.src.to_ascii_lowercase();
        let mut candidates = candidates(doc, &lower, outline);
        for c in &mut candidates {
            c.longest = self.per.iter().map(|p| p.alias_len(&c.words)).max().unwrap_or(0);
            c.hits = self.per.iter().map(|p| p.hits(c.own)).collect();
        }
        let mut out = Vec::new();
        for (i, cues) in self.per.iter().enumerate() {
            if outline.found.iter().any(|l| l.section == i) {
                continue;
            }
            let Some((c, by)) = cues.best(i, &candidates) else {
                continue;
            };
            let loc = Located {
                section: i,
                start: c.h.start,
                end: c.end,
                body_start: c.h.end,
                line: c.h.line,
                level: c.h.level,
                heading: c.h.text.clone(),
                empty: false,
            };
            out.push((loc, by));
        }
        out
    }
}

impl Cues {
    fn hits(&self, own: &str) -> usize {
        self.cues.iter().filter(|c| own.contains(c.as_str())).count()
    }

    /// The longest alias the heading holds, in words.
    fn alias_len(&self, words: &[String]) -> usize {
        self.aliases
            .iter()
            .filter(|a| a.iter().all(|w| words.contains(w)))
            .map(Vec::len)
            .max()
            .unwrap_or(0)
    }

    /// A heading holding an alias (the closest, then the one with most cues, then the
    /// first); else the heading whose own text holds the most cues, at least `min_cues`.
    fn best<'a, 'b>(&self, i: usize, cands: &'b [Candidate<'a>]) -> Option<(&'b Candidate<'a>, By)> {
        // A heading belongs to the concerns whose alias in it is the longest of any
        // concern's ("Why plan for rollback" is the philosophy, not a rollback procedure).
        let by_alias = cands
            .iter()
            .filter_map(|c| {
                let n = self.alias_len(&c.words);
                (n > 0 && n == c.longest).then(|| (c, c.words.len() - n))
            })
            .min_by_key(|(c, x)| (*x, std::cmp::Reverse(c.hits[i]), c.h.start));
        if let Some((c, _)) = by_alias {
            return Some((c, By::Heading));
        }
        cands
            .iter()
            .map(|c| (c, c.hits[i]))
            .filter(|(_, n)| *n >= self.min_cues)
            .min_by_key(|(c, n)| (std::cmp::Reverse(*n), c.h.start))
            .map(|(c, _)| (c, By::Content))
    }
}

/// Headings outside the template's own sections (and not the title) with text under them.
fn candidates<'a>(doc: &'a Doc, lower: &'a str, outline: &Outline) -> Vec<Candidate<'a>> {
    let top: Vec<&Heading> = doc.headings.iter().filter(|h| h.top_level).collect();
    // The document's title (its one level-1 heading, first) names the whole plan.
    let title = match top.iter().filter(|h| h.level == 1).count() {
        1 if top.first().is_some_and(|h| h.level == 1) => top.first().map(|h| h.start),
        _ => None,
    };
    let mut out = Vec::new();
    for (k, h) in top.iter().enumerate() {
        if Some(h.start) == title || outline.found.iter().any(|l| h.start >= l.start && h.start < l.end) {
            continue;
        }
        let next = top.get(k + 1).map_or(doc.src.len(), |n| n.start);
        let end = top[k + 1..]
            .iter()
            .find(|n| n.level <= h.level)
            .map_or(doc.src.len(), |n| n.start);
        let has_text = doc
            .blocks
            .iter()
            .any(|b| b.start >= h.end && b.start < end && b.is_content());
        if !has_text {
            continue;
        }
        out.push(Candidate {
            h,
            end,
            own: &lower[h.end..next],
            words: words(&h.text),
            hits: Vec::new(),
            longest: 0,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_join_compounds_and_drop_stop_words() {
        assert_eq!(words("Rolling back the app"), words("Rollback app"));
        assert_eq!(words("Roll back")[0], "rollback");
        assert_eq!(words("Go/No-go"), ["go", "nogo"]);
        assert_eq!(words("Smoke tests"), words("smoke test"));
    }

    #[test]
    fn a_heading_alias_wins_over_cues_and_cues_need_their_minimum() {
        let checker = crate::check::testing::checker();
        let c = Concerns::new(&checker.spec);
        let md = "# Cutover of the billing queue\n\nWe move billing.\n\n## Backout plan\n\nRevert the deploy.\n\n## Notes\n\nNotify the team in Slack and update the status page.\n";
        let doc = crate::markdown::parse(md);
        let outline = checker.outline(md);
        let map = c.map(&doc, &outline);
        let of = |id: &str| {
            let i = checker.spec.index_of(id).unwrap();
            map.iter().find(|(l, _)| l.section == i).map(|(l, by)| (l.line, *by))
        };
        assert_eq!(of("by-stage"), Some((5, By::Heading)));
        assert_eq!(of("communication"), Some((9, By::Content)));
        assert_eq!(of("post-mortem"), None);
    }
}
