//! Is a plan about its own migration? The summary names systems, products and services
//! ("MySQL 5.7", "PostgreSQL", "the orders service"); a plan that names none of them, or
//! scenarios that name neither a stage nor one of them, are generic.

use std::sync::LazyLock;

use crate::markdown::{self, WordSet};

/// Capitalised words that name nothing in particular.
const NOT_NAMES: &[&str] = &[
    "i", "a", "an", "the", "we", "our", "it", "this", "that", "then", "after", "before", "during", "once", "when",
    "if", "and", "or", "but", "to", "from", "for", "with", "in", "on", "at", "by", "of", "all", "each", "every", "no",
    "not",
];
/// Capitals that are units or kinds of thing, not names.
const UNITS_AND_KINDS: &[&str] = &[
    "tb", "gb", "mb", "kb", "pb", "ms", "db", "api", "id", "ids", "ui", "url", "qps", "rps", "p99", "p95", "sla", "slo",
];
/// Nouns after which the word before is a name: "the orders service", "a billing queue".
const KINDS: &[&str] = &[
    "service",
    "services",
    "database",
    "databases",
    "db",
    "cluster",
    "queue",
    "topic",
    "table",
    "tables",
    "bucket",
    "api",
    "pipeline",
    "cache",
    "index",
    "stream",
    "app",
    "application",
    "job",
    "schema",
];
/// Words before a kind noun that are not its name: "the primary database".
const NOT_KIND_NAMES: &[&str] = &[
    "the",
    "a",
    "an",
    "its",
    "our",
    "their",
    "primary",
    "secondary",
    "main",
    "new",
    "old",
    "legacy",
    "current",
    "target",
    "source",
    "managed",
    "self",
    "hosted",
    "existing",
    "single",
    "shared",
    "whole",
    "entire",
    "each",
];

/// The names a summary gives, as written, once each (compared in any case).
pub fn names(summary: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut push = |n: &str| {
        if !out.iter().any(|o| o.eq_ignore_ascii_case(n)) {
            out.push(n.to_string());
        }
    };
    for sentence in sentences(summary) {
        let toks = tokens(sentence);
        for (i, t) in toks.iter().enumerate() {
            if is_name(t, i == 0) {
                push(t.trim_matches(['.', '-', '\'']));
            }
            if i > 0 && KINDS.contains(&kind_word(t).as_str()) {
                let before = toks[i - 1].trim_end_matches("'s").trim_end_matches('\'');
                let lower = before.to_lowercase();
                if before.chars().any(char::is_alphabetic) && !NOT_KIND_NAMES.contains(&lower.as_str()) {
                    push(before);
                }
            }
        }
    }
    out
}

/// A kind noun as written, without a possessive: "service's" → "service".
fn kind_word(t: &str) -> String {
    t.to_lowercase()
        .trim_end_matches("'s")
        .trim_end_matches('\'')
        .to_string()
}

fn sentences(text: &str) -> impl Iterator<Item = &str> {
    text.split(['\n', ';', ':', '!', '?']).flat_map(|s| s.split(". "))
}

/// Words as written, keeping `_`, `-`, `.` and `'` inside them ("orders-db", "5.7").
fn tokens(s: &str) -> Vec<&str> {
    s.split(|c: char| !(c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '\'')))
        .map(|t| t.trim_matches(['.', '-', '\'', '_']))
        .filter(|t| !t.is_empty())
        .collect()
}

/// A product, system or identifier: mixed case ("MySQL"), capitals ("CDC"), a capitalised
/// word not at the start of a sentence, or a word joined with `_`, `-` or `.`.
fn is_name(t: &str, first: bool) -> bool {
    let letters = t.chars().filter(|c| c.is_alphabetic()).count();
    if letters == 0 {
        return false;
    }
    let lower = t.to_lowercase();
    if UNITS_AND_KINDS.contains(&lower.as_str()) {
        return false;
    }
    let upper = t.chars().filter(|c| c.is_uppercase()).count();
    let mixed = upper > 0 && t.chars().skip(1).any(char::is_uppercase) && upper < letters;
    let capitals = letters >= 2 && upper == letters;
    let capitalised = t.chars().next().is_some_and(char::is_uppercase) && !first;
    let joined = letters >= 2 && is_identifier(t);
    (mixed || capitals || joined || capitalised) && !NOT_NAMES.contains(&lower.as_str())
}

/// Joined like an identifier, not like an English compound ("self-managed"): with `_` or
/// `.`, or hyphenated with a digit or a kind of thing ("orders-db", "api-v2").
fn is_identifier(t: &str) -> bool {
    if t.contains(['_', '.']) && !t.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return true;
    }
    t.contains('-')
        && t.split('-').any(|part| {
            part.chars().any(|c| c.is_ascii_digit()) || KINDS.contains(&part.to_lowercase().as_str()) || part == "svc"
        })
}

/// Word stems of a text, for telling whether it names something.
pub fn stems(text: &str) -> WordSet {
    let split: String = text
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect();
    markdown::tokens(&split)
        .into_iter()
        .map(|t| markdown::stem(&t))
        .collect()
}

/// The stems that make a text specific, from the stages (without "stage", "phase"...) or
/// the summary's names.
pub fn vocabulary(phrases: &[String]) -> WordSet {
    static GENERIC: LazyLock<Vec<String>> = LazyLock::new(|| {
        ["stage", "phase", "step", "migration", "rollback", "data"]
            .iter()
            .map(|g| markdown::stem(g))
            .collect()
    });
    phrases
        .iter()
        .flat_map(|s| stems(s))
        .filter(|w| !GENERIC.contains(w) && !w.chars().all(|c| c.is_ascii_digit()))
        .collect()
}

/// `text` names one of `names` as a whole word or phrase, in any case.
pub fn names_any(text: &str, names: &[String]) -> bool {
    // Two characters lower-case to ASCII ('K' kelvin, 'İ'): only there is the slow way needed.
    if names.iter().all(|n| n.is_ascii()) && !lowers_to_ascii(text) {
        return names.iter().any(|n| names_ascii(text, n));
    }
    let lower = text.to_lowercase();
    let bounded = |at: usize, len: usize| {
        let before = lower[..at].chars().next_back();
        let after = lower[at + len..].chars().next();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    };
    names.iter().any(|n| {
        let n = n.to_lowercase();
        lower.match_indices(&n).any(|(at, m)| bounded(at, m.len()))
    })
}

/// Whether `text` holds one of the two characters that lower-case to ASCII ('K' kelvin, 'İ').
fn lowers_to_ascii(text: &str) -> bool {
    !text.is_ascii()
        && ['\u{212A}', '\u{0130}']
            .iter()
            .any(|c| memchr::memmem::find(text.as_bytes(), c.encode_utf8(&mut [0; 4]).as_bytes()).is_some())
}

/// `names_any` for one ASCII name, compared in place without lower-casing `text`.
fn names_ascii(text: &str, name: &str) -> bool {
    let (t, n) = (text.as_bytes(), name.as_bytes());
    let Some(&first) = n.first() else {
        return true;
    };
    let (lo, up) = (first.to_ascii_lowercase(), first.to_ascii_uppercase());
    let mut at = 0;
    while at + n.len() <= t.len() {
        let Some(i) = memchr::memchr2(lo, up, &t[at..=t.len() - n.len()]) else {
            return false;
        };
        let i = at + i;
        if t[i..i + n.len()].eq_ignore_ascii_case(n)
            && !text[..i].chars().next_back().is_some_and(char::is_alphanumeric)
            && !text[i + n.len()..].chars().next().is_some_and(char::is_alphanumeric)
        {
            return true;
        }
        at = i + 1;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_systems_products_and_services() {
        let ex = "Move the orders service's primary database from a self-managed MySQL 5.7 cluster (2.1 TB, 4k writes/s at peak) to a managed PostgreSQL 15 cluster. Change data capture keeps both in sync during dual-running; the application switches reads first, then writes.";
        assert_eq!(names(ex), ["orders", "MySQL", "PostgreSQL"]);
        assert_eq!(
            names("Move the ledger from Oracle 19c to CockroachDB 23.1 with Debezium CDC"),
            ["Oracle", "CockroachDB", "Debezium", "CDC"]
        );
        assert_eq!(
            names("Split billing_events off the payments-db Postgres; the billing queue moves to SQS."),
            ["billing_events", "payments-db", "Postgres", "billing", "SQS"]
        );
        // Nothing capitalised but the first word, no identifiers: no names to ask for.
        assert!(names("Move everything to the new cluster over a weekend.").is_empty());
    }

    #[test]
    fn a_name_counts_as_a_whole_word_in_any_case() {
        let n = vec!["MySQL".to_string(), "orders".to_string()];
        assert!(names_any("flip reads back to mysql", &n));
        assert!(names_any("the Orders table", &n));
        assert!(!names_any("the reorders count and mysqldump", &n));
        assert!(!names_any("nothing here", &[]));
        // 'K' (kelvin) lower-cases to ASCII 'k': the slow way finds the name, non-ASCII around it or not.
        let k = vec!["kafka".to_string()];
        assert!(names_any("the \u{212A}afka topic", &k));
        assert!(names_any("the \u{212A}afka topic → done", &k));
        assert!(!names_any("the Kafkaesque → topic", &k));
        assert!(lowers_to_ascii("İ") && lowers_to_ascii("a \u{212A}") && !lowers_to_ascii("a → é"));
    }
}
