//! The tolerant heading match: which required section a heading names, whatever its
//! numbering, case, punctuation or word forms, and the word folding it rests on.

use crate::spec::Spec;

/// A small set of words (a heading's, a stage's, a vocabulary): a sorted list. For sets of
/// a few words a binary search beats hashing, and needs no hasher crate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WordSet(Vec<String>);

impl WordSet {
    pub fn contains(&self, w: &str) -> bool {
        self.0.binary_search_by(|x| x.as_str().cmp(w)).is_ok()
    }

    /// Both lists are sorted: one walk through each.
    pub fn is_subset(&self, other: &WordSet) -> bool {
        if self.0.len() > other.0.len() {
            return false;
        }
        let mut theirs = other.0.iter();
        self.0.iter().all(|w| theirs.any(|o| o == w))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl IntoIterator for WordSet {
    type Item = String;
    type IntoIter = std::vec::IntoIter<String>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl FromIterator<String> for WordSet {
    fn from_iter<I: IntoIterator<Item = String>>(it: I) -> Self {
        let mut v: Vec<String> = it.into_iter().collect();
        v.sort_unstable();
        v.dedup();
        WordSet(v)
    }
}

impl Extend<String> for WordSet {
    fn extend<I: IntoIterator<Item = String>>(&mut self, it: I) {
        self.0.extend(it);
        self.0.sort_unstable();
        self.0.dedup();
    }
}

/// Words that never distinguish one section from another.
const STOPWORDS: &[&str] = &[
    "a", "an", "the", "of", "for", "and", "to", "by", "in", "on", "at", "about", "during", "with", "our", "your",
    "this", "its", "from", "per",
];
/// Words that introduce a number: "Section 3 —", "Part II".
const NUMBER_WORDS: &[&str] = &["section", "part", "step", "chapter", "sec"];
/// A heading may carry this many words beyond a section's name and still name it.
const MAX_EXTRA_WORDS: usize = 3;

/// Matches heading text against the section titles and aliases of a spec.
pub struct Matcher {
    /// (section index, the words of one of its names)
    names: Vec<(usize, WordSet)>,
    vocab: WordSet,
}

/// A heading that names a section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadingMatch {
    pub section: usize,
    /// Words in the heading beyond the section's name; 0 is an exact match.
    pub extra: usize,
}

impl Matcher {
    pub fn new(spec: &Spec) -> Matcher {
        // Vocabulary first (from the words as written, hyphenated ones whole), so compound
        // words can be joined: "roll back", "post-mortem" / "post mortem".
        let mut vocab = WordSet::default();
        for s in &spec.sections {
            for name in std::iter::once(&s.title).chain(&s.aliases) {
                vocab.extend(words_in(name, &WordSet::default(), true));
            }
        }
        let mut names = Vec::new();
        for (i, s) in spec.sections.iter().enumerate() {
            for name in std::iter::once(&s.title).chain(&s.aliases) {
                let w: WordSet = words(name, &vocab).into_iter().collect();
                if !w.is_empty() {
                    names.push((i, w));
                }
            }
        }
        Matcher { names, vocab }
    }

    /// How many sections the names belong to.
    pub fn sections(&self) -> usize {
        self.names.iter().map(|(i, _)| i + 1).max().unwrap_or(0)
    }

    /// Which section a heading names, if any. Questions ("What if …?") never name a section.
    pub fn match_heading(&self, text: &str) -> Option<HeadingMatch> {
        if text.trim_end().ends_with('?') {
            return None;
        }
        let heading: WordSet = words(text, &self.vocab).into_iter().collect();
        // The longest name the heading holds wins; of two as long, the one with fewer
        // extra words.
        self.names
            .iter()
            .filter(|(_, name)| name.is_subset(&heading) && heading.len() - name.len() <= MAX_EXTRA_WORDS)
            .min_by_key(|(i, name)| (std::cmp::Reverse(name.len()), heading.len() - name.len(), *i))
            .map(|(section, name)| HeadingMatch {
                section: *section,
                extra: heading.len() - name.len(),
            })
    }
}

/// Normalised words of a heading: lower case, numbering and stop words dropped, plurals
/// folded, compounds `vocab` knows joined ("post-mortem", "roll back"); other hyphenated
/// words are split ("rollback-decision-matrix").
pub fn words(text: &str, vocab: &WordSet) -> Vec<String> {
    words_in(text, vocab, false)
}

/// `words`, with every hyphenated word kept whole when `join_hyphens` (to build a vocabulary).
fn words_in(text: &str, vocab: &WordSet, join_hyphens: bool) -> Vec<String> {
    join_tokens(&stripped_tokens(text, vocab, join_hyphens), vocab)
}

/// The tokens of `words` before joining.
fn stripped_tokens(text: &str, vocab: &WordSet, join_hyphens: bool) -> Vec<String> {
    let mut lowered = text.to_lowercase();
    if lowered.contains('&') {
        lowered = lowered.replace('&', " and ");
    }
    // Apostrophes inside words join; hyphens inside words are decided below; other
    // punctuation separates.
    let mut cleaned = String::with_capacity(lowered.len());
    let mut chars = lowered.chars().peekable();
    let mut prev: Option<char> = None;
    while let Some(c) = chars.next() {
        let between_letters =
            prev.is_some_and(char::is_alphanumeric) && chars.peek().is_some_and(|n| n.is_alphanumeric());
        prev = Some(c);
        match c {
            '\'' | '’' if between_letters => {}
            '-' if between_letters => cleaned.push('-'),
            c if c.is_alphanumeric() => cleaned.push(c),
            _ => cleaned.push(' '),
        }
    }
    let mut toks: Vec<String> = Vec::new();
    for t in cleaned.split_whitespace() {
        if !t.contains('-') {
            toks.push(t.to_string());
            continue;
        }
        let whole = t.replace('-', "");
        if join_hyphens || (!vocab.is_empty() && vocab.contains(&stem(&whole))) {
            toks.push(whole);
        } else {
            toks.extend(t.split('-').map(String::from));
        }
    }
    // Leading numbering: "3", "section 3", "iv", "part ii".
    while toks.len() > 1 {
        let t = toks[0].as_str();
        if t.chars().all(|c| c.is_ascii_digit()) || NUMBER_WORDS.contains(&t) || is_roman(t) {
            toks.remove(0);
        } else {
            break;
        }
    }
    toks.into_iter()
        .filter(|t| !STOPWORDS.contains(&t.as_str()))
        .map(|mut t| {
            strip_suffix(&mut t);
            t
        })
        .collect()
}

/// Words of a text without hyphens, up to the joining step, which is the only part that
/// depends on a vocabulary: for matching one text against many vocabularies.
pub fn tokens(text: &str) -> Vec<String> {
    debug_assert!(!text.contains('-'), "hyphenated words depend on the vocabulary");
    stripped_tokens(text, &WordSet::default(), false)
}

/// `words` from `tokens`: neighbours joined where the vocabulary knows the joined word.
pub fn join_tokens(stripped: &[String], vocab: &WordSet) -> Vec<String> {
    // Join neighbours whose concatenation is a known word: "roll back" → "rollback",
    // "cutting over" → "cutover".
    let mut out: Vec<String> = Vec::with_capacity(stripped.len());
    let mut joined = String::new();
    let mut i = 0;
    while i < stripped.len() {
        // With no vocabulary nothing can join (the common case for plain word lists).
        if i + 1 < stripped.len() && !vocab.is_empty() && joins(&stripped[i], &stripped[i + 1], vocab, &mut joined) {
            out.push(joined.clone());
            i += 2;
            continue;
        }
        let mut w = stripped[i].clone();
        finish(&mut w);
        out.push(w);
        i += 1;
    }
    out
}

/// Whether `a` and `b` written as one word ("cutover"; "cutt" + "over" as "cutover") is a
/// word of `vocab`; that word is left in `buf`.
fn joins(a: &str, b: &str, vocab: &WordSet, buf: &mut String) -> bool {
    buf.clear();
    buf.push_str(a);
    buf.push_str(b);
    stem_in_place(buf);
    if vocab.contains(buf) {
        return true;
    }
    buf.clear();
    buf.push_str(a);
    single_final(buf);
    buf.push_str(b);
    stem_in_place(buf);
    vocab.contains(buf)
}

fn is_roman(t: &str) -> bool {
    matches!(
        t,
        "i" | "ii" | "iii" | "iv" | "v" | "vi" | "vii" | "viii" | "ix" | "x" | "xi" | "xii"
    )
}

/// Crude English stemming: enough to fold plurals, "-ing" and "-ed" forms onto one word
/// ("stages", "staging" and "staged" all give "stag"; "writing" and "write" give "writ").
pub fn stem(w: &str) -> String {
    let mut w = w.to_string();
    stem_in_place(&mut w);
    w
}

fn stem_in_place(w: &mut String) {
    strip_suffix(w);
    finish(w);
}

/// Drop one inflection: "-ies"/"-ied" (→ "y"), "-ing", "-ed", or a plural "-s".
fn strip_suffix(w: &mut String) {
    let n = if w.is_ascii() { w.len() } else { w.chars().count() };
    if n > 4 && (w.ends_with("ies") || w.ends_with("ied")) {
        w.truncate(w.len() - 3);
        w.push('y');
    } else if n > 5 && w.ends_with("ing") {
        w.truncate(w.len() - 3);
    } else if n > 4 && w.ends_with("ed") && !w.ends_with("eed") {
        w.truncate(w.len() - 2);
    } else if n > 3 && w.ends_with('s') && !w.ends_with("ss") && !w.ends_with("us") && !w.ends_with("is") {
        w.truncate(w.len() - 1);
    }
}

/// Make the forms `strip_suffix` leaves agree with the bare word: a final "e" goes
/// ("write" / "writ(ing)") and a final doubled consonant is single ("cutt(ing)" / "cut").
fn finish(w: &mut String) {
    if w.ends_with('e') && (if w.is_ascii() { w.len() } else { w.chars().count() }) > 3 {
        w.pop();
    }
    single_final(w);
}

fn single_final(w: &mut String) {
    let b = w.as_bytes();
    if b.len() > 2 && b[b.len() - 1] == b[b.len() - 2] && b"bcdfgklmnprstvz".contains(&b[b.len() - 1]) {
        w.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::matcher;
    use super::*;

    fn id_of(text: &str) -> Option<String> {
        let (m, spec) = matcher();
        m.match_heading(text).map(|h| spec.sections[h.section].id.clone())
    }

    #[test]
    fn heading_styles_that_name_a_section() {
        let cases = [
            ("1. Rollback philosophy", "philosophy"),
            ("1) Rollback Philosophy", "philosophy"),
            ("Section 1 — Rollback philosophy", "philosophy"),
            ("Section 1: ROLLBACK PHILOSOPHY", "philosophy"),
            ("Part II. Rollback decision matrix", "decision-matrix"),
            ("rollback decision matrix:", "decision-matrix"),
            ("Decision Matrix", "decision-matrix"),
            ("3. Rollback procedures by stage", "by-stage"),
            ("Rollback, by stage", "by-stage"),
            ("4. Specific Rollback Procedures by Component", "by-component"),
            ("Component rollback procedures", "by-component"),
            ("5. Pre-cutover rehearsal", "rehearsal"),
            ("Pre cutover rehearsals", "rehearsal"),
            ("6 - Communications during a rollback", "communication"),
            ("7. Post-rollback checklist", "checklist"),
            ("Post rollback checklist", "checklist"),
            ("8. Postmortem template", "post-mortem"),
            ("Post mortem template", "post-mortem"),
            ("9. Rollback What-If Scenarios", "what-if"),
            ("What if scenarios", "what-if"),
            ("10. The Hard Truth About Rollback", "hard-truth"),
            ("Hard truths about rolling back", "hard-truth"),
            ("`Rollback philosophy`", "philosophy"),
            ("Rollback-decision-matrix", "decision-matrix"),
            ("Post-Rollback-Checklist", "checklist"),
            ("What-If-Scenarios", "what-if"),
            ("Pre-cutover-rehearsal", "rehearsal"),
            ("post-mortem-template", "post-mortem"),
            ("Rollback-by-stage", "by-stage"),
            ("Hard-truths", "hard-truth"),
            ("Stage-by-stage rollback", "by-stage"),
        ];
        for (text, want) in cases {
            assert_eq!(id_of(text).as_deref(), Some(want), "{text}");
        }
    }

    #[test]
    fn headings_that_name_no_section() {
        for text in [
            "Rollback plan: orders database",
            "Stage: Cutover in progress",
            "What if the rollback by stage fails?",
            "Rollback",
            "Appendix",
            "Scenario 4: rollback procedures by stage fail under load at peak",
        ] {
            assert_eq!(id_of(text), None, "{text}");
        }
    }

    #[test]
    fn words_fold_forms() {
        let v: WordSet = [stem("rollback"), stem("cutover")].into_iter().collect();
        assert_eq!(words("Rolling back", &v), vec!["rollback"]);
        assert_eq!(words("Roll-backs", &v), vec!["rollback"]);
        assert_eq!(words("Cutting over", &v), vec!["cutover"]);
        assert_eq!(words("3) The Stages", &v), words("stage", &v));
        let none = WordSet::default();
        for forms in [
            &["stage", "stages", "staging", "staged"][..],
            &["write", "writes", "writing"],
            &["migrate", "migrating", "migrated", "migrates"],
            &["backfill", "backfilling", "backfilled", "backfills"],
            &["drop", "dropping", "dropped", "drops"],
            &["run", "running", "runs"],
            &["switch", "switches", "switching", "switched"],
            &["copy", "copies", "copying", "copied"],
            &["process", "processes", "processing"],
            &["status", "statuses"],
            &["proceed", "proceeds", "proceeded"],
        ] {
            let folded: Vec<Vec<String>> = forms.iter().map(|f| words(f, &none)).collect();
            assert!(folded.iter().all(|w| w == &folded[0]), "{forms:?} → {folded:?}");
        }
        assert_ne!(words("read", &none), words("write", &none));
    }
}
