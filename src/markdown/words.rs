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

    /// Whether every word is in `other`, a sorted list without repeats: one walk through each.
    pub fn is_subset(&self, other: &[&str]) -> bool {
        if self.0.len() > other.len() {
            return false;
        }
        let mut theirs = other.iter();
        self.0.iter().all(|w| theirs.any(|o| o == w))
    }

    /// The set's own copy of `w`.
    fn get(&self, w: &str) -> Option<&str> {
        let i = self.0.binary_search_by(|x| x.as_str().cmp(w)).ok()?;
        Some(&self.0[i])
    }

    /// Whether a word of the set starts with `p`.
    fn has_prefix(&self, p: &str) -> bool {
        let i = self.0.partition_point(|x| x.as_str() < p);
        self.0.get(i).is_some_and(|x| x.starts_with(p))
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
    /// (section index, the words of one of its names, their `bloom`)
    names: Vec<(usize, WordSet, u64)>,
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
                    let b = bloom(w.0.iter().map(String::as_str));
                    names.push((i, w, b));
                }
            }
        }
        Matcher { names, vocab }
    }

    /// How many sections the names belong to.
    pub fn sections(&self) -> usize {
        self.names.iter().map(|(i, ..)| i + 1).max().unwrap_or(0)
    }

    /// Which section a heading names, if any. Questions ("What if …?") never name a section.
    pub fn match_heading(&self, text: &str) -> Option<HeadingMatch> {
        if text.trim_end().ends_with('?') {
            return None;
        }
        let tokens = Joinable::new(stripped_tokens(text, &self.vocab, false));
        let mut heading = tokens.join(&self.vocab);
        heading.sort_unstable();
        heading.dedup();
        // The longest name the heading holds wins; of two as long, the one with fewer
        // extra words.
        let has = bloom(heading.iter().copied());
        self.names
            .iter()
            .filter(|(_, name, b)| {
                b & !has == 0 && name.is_subset(&heading) && heading.len() - name.len() <= MAX_EXTRA_WORDS
            })
            .min_by_key(|(i, name, _)| (std::cmp::Reverse(name.len()), heading.len() - name.len(), *i))
            .map(|(section, name, _)| HeadingMatch {
                section: *section,
                extra: heading.len() - name.len(),
            })
    }
}

/// One bit per word, from its length and first and last bytes: a set's bits are not all
/// in another's only when it has a word the other lacks.
fn bloom<'a>(words: impl Iterator<Item = &'a str>) -> u64 {
    words.fold(0, |acc, w| {
        let b = w.as_bytes();
        let (first, last) = (b.first().copied().unwrap_or(0), b.last().copied().unwrap_or(0));
        let k = (usize::from(first) * 31 + usize::from(last) * 7 + b.len()) % 64;
        acc | 1 << k
    })
}

/// Normalised words of a heading: lower case, numbering and stop words dropped, plurals
/// folded, compounds `vocab` knows joined ("post-mortem", "roll back"); other hyphenated
/// words are split ("rollback-decision-matrix").
pub fn words(text: &str, vocab: &WordSet) -> Vec<String> {
    words_in(text, vocab, false)
}

/// `words`, with every hyphenated word kept whole when `join_hyphens` (to build a vocabulary).
fn words_in(text: &str, vocab: &WordSet, join_hyphens: bool) -> Vec<String> {
    join_tokens(stripped_tokens(text, vocab, join_hyphens), vocab)
}

/// The tokens of `words` before joining.
fn stripped_tokens(text: &str, vocab: &WordSet, join_hyphens: bool) -> Vec<String> {
    let cleaned = cleaned(text);
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

/// `text` in lower case with apostrophes inside words dropped, hyphens inside words kept
/// (`stripped_tokens` decides them), and other punctuation a space.
fn cleaned(text: &str) -> String {
    if text.is_ascii() && !text.contains('&') {
        let b = text.as_bytes();
        let between =
            |i: usize| i > 0 && b[i - 1].is_ascii_alphanumeric() && b.get(i + 1).is_some_and(u8::is_ascii_alphanumeric);
        let mut out = String::with_capacity(b.len());
        for (i, &c) in b.iter().enumerate() {
            match c {
                b'\'' if between(i) => {}
                b'-' if between(i) => out.push('-'),
                c if c.is_ascii_alphanumeric() => out.push(char::from(c.to_ascii_lowercase())),
                _ => out.push(' '),
            }
        }
        return out;
    }
    let mut lowered = text.to_lowercase();
    if lowered.contains('&') {
        lowered = lowered.replace('&', " and ");
    }
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
    cleaned
}

/// Words of a text without hyphens, up to the joining step, which is the only part that
/// depends on a vocabulary: for matching one text against many vocabularies.
pub fn tokens(text: &str) -> Vec<String> {
    debug_assert!(!text.contains('-'), "hyphenated words depend on the vocabulary");
    stripped_tokens(text, &WordSet::default(), false)
}

/// `words` from `tokens`: neighbours joined where the vocabulary knows the joined word.
fn join_tokens(stripped: Vec<String>, vocab: &WordSet) -> Vec<String> {
    // Join neighbours whose concatenation is a known word: "roll back" → "rollback",
    // "cutting over" → "cutover".
    let mut out: Vec<String> = Vec::with_capacity(stripped.len());
    let mut joined = String::new();
    let mut rest = stripped.into_iter().peekable();
    while let Some(mut w) = rest.next() {
        // With no vocabulary nothing can join (the common case for plain word lists).
        if !vocab.is_empty() && rest.peek().is_some_and(|b| joins(&w, b, vocab, &mut joined)) {
            out.push(std::mem::take(&mut joined));
            rest.next();
            continue;
        }
        finish(&mut w);
        out.push(w);
    }
    out
}

/// Tokens made ready for joining against many vocabularies without allocating: each
/// token, and how much of it `finish` leaves (it only drops final letters).
pub struct Joinable {
    tokens: Vec<String>,
    finished: Vec<usize>,
}

impl Joinable {
    pub fn new(tokens: Vec<String>) -> Joinable {
        let finished = tokens.iter().map(|t| finished_len(t)).collect();
        Joinable { tokens, finished }
    }

    /// `join_tokens` of the tokens; every word is borrowed, a joined one from `vocab`.
    pub fn join<'a>(&'a self, vocab: &'a WordSet) -> Vec<&'a str> {
        let mut out = Vec::with_capacity(self.tokens.len());
        let mut buf = String::new();
        let mut i = 0;
        while i < self.tokens.len() {
            let joined = match self.tokens.get(i + 1) {
                Some(b) if !vocab.is_empty() && vocab.has_prefix(join_prefix(&self.tokens[i], b)) => {
                    joins(&self.tokens[i], b, vocab, &mut buf)
                        .then(|| vocab.get(&buf))
                        .flatten()
                }
                _ => None,
            };
            match joined {
                Some(j) => {
                    out.push(j);
                    i += 2;
                }
                None => {
                    out.push(&self.tokens[i][..self.finished[i]]);
                    i += 1;
                }
            }
        }
        out
    }
}

/// What both forms `joins` tries for `a` and `b` start with: the second drops one of `a`'s
/// final bytes, and stemming then drops at most five.
fn join_prefix<'a>(a: &'a str, b: &str) -> &'a str {
    let mut k = a.len().saturating_sub(1).min((a.len() + b.len()).saturating_sub(6));
    while !a.is_char_boundary(k) {
        k -= 1;
    }
    &a[..k]
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
    w.truncate(finished_len(w));
}

/// How much of `w` `finish` keeps.
fn finished_len(w: &str) -> usize {
    let mut n = w.len();
    if w.ends_with('e') && (if w.is_ascii() { n } else { w.chars().count() }) > 3 {
        n -= 1;
    }
    n - single_final_cut(&w.as_bytes()[..n])
}

fn single_final(w: &mut String) {
    w.truncate(w.len() - single_final_cut(w.as_bytes()));
}

/// 1 when `b` ends in a doubled consonant, else 0.
fn single_final_cut(b: &[u8]) -> usize {
    let n = b.len();
    usize::from(n > 2 && b[n - 1] == b[n - 2] && b"bcdfgklmnprstvz".contains(&b[n - 1]))
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
    fn ascii_text_is_cleaned_as_any_text_is() {
        let pool = [
            "Roll", "back", "-", "'", " ", "s", "3.", "(x)", "--", "a-b", "O'Neil", "&", "Z", "é",
        ];
        let mut rng = fastrand::Rng::with_seed(11);
        for _ in 0..20_000 {
            let text: String = (0..rng.usize(0..8)).map(|_| pool[rng.usize(..pool.len())]).collect();
            // The same text with one non-ASCII letter after it takes the general path.
            let general = cleaned(&format!("{text} é"));
            assert_eq!(cleaned(&text), general.strip_suffix(" é").unwrap(), "{text:?}");
        }
    }

    #[test]
    fn joinable_joins_as_join_tokens_does() {
        let pool = [
            "roll", "back", "cut", "cutt", "over", "stage", "read", "writ", "s", "post", "mortem", "ing", "ies", "e",
            "é", "dés", "ed", "pp", "cop", "copied",
        ];
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..20_000 {
            let toks: Vec<String> = (0..rng.usize(0..6))
                .map(|_| pool[rng.usize(..pool.len())].to_string())
                .collect();
            let vocab: WordSet = (0..rng.usize(0..4))
                .map(|_| {
                    stem(&format!(
                        "{}{}",
                        pool[rng.usize(..pool.len())],
                        pool[rng.usize(..pool.len())]
                    ))
                })
                .collect();
            let want = join_tokens(toks.clone(), &vocab);
            assert_eq!(Joinable::new(toks).join(&vocab), want, "{vocab:?}");
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
