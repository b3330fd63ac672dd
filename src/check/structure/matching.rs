//! Matching what a check asks for with what a section has: the table closest to the
//! columns wanted, and the stages a subsection title covers (word forms folded, compounds
//! joined, "Stage 3:" and the like dropped).

use super::quoted;
use crate::markdown::{self, Joinable, Scan, TableInfo, WordSet};

/// The index of the table's column whose header matches one of `column`'s alternatives.
pub(crate) fn column_of(t: &TableInfo, column: &str) -> Option<usize> {
    let alts: Vec<String> = column.split('|').map(|a| a.trim().to_lowercase()).collect();
    t.headers
        .iter()
        .position(|h| alts.iter().any(|a| h.contains(a.as_str())))
}

/// What the table closest to `columns` lacks, and the line it starts on (`None`: no table
/// at all); `None` when one has them all and enough rows.
pub(crate) fn table_problem(scan: &Scan, columns: &[String], min_rows: usize) -> Option<(Option<usize>, String)> {
    let names: Vec<&str> = columns
        .iter()
        .map(|c| c.split('|').next().unwrap_or(c).trim())
        .collect();
    if scan.tables.is_empty() {
        return Some((None, format!("no table; expected columns {}", quoted(&names))));
    }
    /// The table closest to what the check wants, and what it lacks.
    struct Closest<'a> {
        score: usize,
        table: &'a TableInfo,
        lacking: Vec<&'a str>,
    }
    let mut best: Option<Closest> = None;
    for t in &scan.tables {
        let lacking: Vec<&str> = columns
            .iter()
            .zip(&names)
            .filter(|(spec, _)| {
                !spec
                    .split('|')
                    .any(|alt| t.headers.iter().any(|h| h.contains(&alt.trim().to_lowercase())))
            })
            .map(|(_, n)| *n)
            .collect();
        let rows = t.rows;
        if lacking.is_empty() && rows >= min_rows {
            return None;
        }
        let score = lacking.len() * 1000 + min_rows.saturating_sub(rows);
        if best.as_ref().is_none_or(|b| score < b.score) {
            best = Some(Closest {
                score,
                table: t,
                lacking,
            });
        }
    }
    // Every problem of the closest table at once, so one fix is not followed by another.
    let Closest { table: t, lacking, .. } = best.expect("at least one table");
    let mut problems = Vec::new();
    if !lacking.is_empty() {
        problems.push(format!("the table has no column for {}", quoted(&lacking)));
    }
    if t.rows < min_rows {
        problems.push(format!(
            "{} {} row{}; expected at least {min_rows}",
            if problems.is_empty() { "the table has" } else { "it has" },
            t.rows,
            if t.rows == 1 { "" } else { "s" }
        ));
    }
    Some((Some(t.line), problems.join(", and ")))
}

/// Words that say "this is a stage" and nothing about which.
const STAGE_WORDS: &[&str] = &["stage", "phase", "step"];

/// A stage name or title as tokens, made once. Every non-alphanumeric character splits
/// words, so no hyphen is left whose reading depends on a vocabulary.
fn phrase(s: &str) -> Joinable {
    let split: String = s.chars().map(|c| if c.is_alphanumeric() { c } else { ' ' }).collect();
    Joinable::new(markdown::tokens(&split))
}

/// Significant words of a phrase: forms folded, neighbours joined when `vocab` knows them
/// as one word ("cut over" → "cutover"), generic words ("stage", "phase") and numbers dropped.
fn stage_words<'a>(phrase: &'a Joinable, vocab: &'a WordSet) -> Vec<&'a str> {
    // The stems of the generic words, made once.
    static GENERIC: std::sync::LazyLock<Vec<String>> =
        std::sync::LazyLock::new(|| STAGE_WORDS.iter().map(|s| markdown::stem(s)).collect());
    let mut words = phrase.join(vocab);
    words.retain(|w| !GENERIC.iter().any(|g| g == w) && !w.chars().all(|c| c.is_ascii_digit()));
    words
}

/// A subsection title's tokens and its own words, worked out once per section rather than
/// once per stage.
pub(crate) struct Title {
    words: Joinable,
    vocab: WordSet,
}

impl Title {
    fn new(text: &str) -> Title {
        let words = phrase(text);
        let vocab = stage_words(&words, &WordSet::default())
            .into_iter()
            .map(String::from)
            .collect();
        Title { words, vocab }
    }
}

/// The name in a stage subsection's title: "Stage 3: Read cutover" → "Read cutover".
pub(crate) fn stage_title(h: &str) -> Option<&str> {
    let t = h.trim();
    let word = STAGE_WORDS
        .iter()
        .find(|w| t.len() > w.len() && t[..w.len()].eq_ignore_ascii_case(w))?;
    let rest = t[word.len()..].trim_start();
    let digits = rest.chars().take_while(char::is_ascii_digit).count();
    let name = rest[digits..].trim_start().strip_prefix([':', '—', '-', '.'])?.trim();
    (digits > 0 && !name.is_empty()).then_some(name)
}

/// Titles made from plain names.
pub(crate) fn titles_from(names: &[String]) -> Vec<Title> {
    names.iter().map(|n| Title::new(n)).collect()
}

pub(crate) fn titles_of(scan: &Scan) -> Vec<Title> {
    let subheadings = scan.subheadings.iter().map(|(_, h)| h);
    subheadings.chain(&scan.bold_leads).map(|t| Title::new(t)).collect()
}

/// A stage is covered by a subsection (a subheading or a bold lead) that carries more than
/// half of its significant words ("Read cutover" does not cover "Write cutover"). Word
/// forms fold ("Backfilling new columns" covers "Backfill the new column"), and a word one
/// side writes as two is joined ("Cutting over reads" covers "Read cutover").
pub(crate) fn stage_covered(titles: &[Title], stage: &str) -> bool {
    let stage = Title::new(stage);
    if stage.vocab.is_empty() {
        return true;
    }
    titles.iter().any(|t| {
        let want = stage_words(&stage.words, &t.vocab);
        let have = stage_words(&t.words, &stage.vocab);
        let need = want.len() / 2 + 1;
        want.iter().filter(|w| have.contains(w)).count() >= need
    })
}
