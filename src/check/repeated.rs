//! Text said again: a paragraph that another section (or the preamble) already holds,
//! the same or nearly the same, and one sentence said over and over in one section. A
//! weak model asked for one section at a time answers each request with the same generic
//! paragraph; every section then "has content" and the plan says nothing.
//!
//! Only prose counts: headings, table rows, checkbox items and fence lines are never part
//! of a paragraph, and short paragraphs ("Owner: the DBE on call.") are labels a plan
//! repeats on purpose.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::quality::Word;

/// A paragraph of fewer words is not compared.
const PARAGRAPH_WORDS: usize = 20;
/// Paragraphs are compared by their sequences of this many words ...
const SHINGLE: usize = 5;
/// ... and are copies when this share of the sequences of both is common to them (Jaccard).
const SAME: f64 = 0.5;
/// A sentence of this many words or more ...
pub const SENTENCE_WORDS: usize = 10;
/// ... said this many times in one section is a loop.
pub const SENTENCE_TIMES: usize = 4;

/// Prose of one part of a plan: the preamble (`owner` None) or a section.
pub struct Prose<'a> {
    pub owner: Option<usize>,
    pub body: &'a str,
    /// The body's words, positions relative to `body`.
    pub words: &'a [Word],
}

/// A paragraph that repeats one before it in another part.
#[derive(Debug, PartialEq)]
pub struct Copy {
    /// Index into the `Prose` list of the copy, and the copy's offset in its body.
    pub part: usize,
    pub at: usize,
    /// The part (index into the list) and offset of the paragraph it repeats.
    pub of: usize,
    pub of_at: usize,
    /// The share of word sequences the two have in common.
    pub share: f64,
}

/// Byte ranges of the paragraphs of `body` that are prose: runs of plain lines, each list
/// item starting one of its own.
fn paragraphs(body: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut open: Option<(usize, usize)> = None;
    let mut at = 0;
    for raw in body.split_inclusive('\n') {
        let (start, end) = (at, at + raw.trim_end().len());
        at += raw.len();
        let line = raw.trim();
        let item = list_item(line);
        let skip = line.is_empty()
            || line.starts_with(['#', '|', '<'])
            || line.starts_with("```")
            || line.starts_with("~~~")
            || item.is_some_and(is_checkbox);
        if skip || item.is_some() {
            out.extend(open.take());
        }
        if skip {
            continue;
        }
        match &mut open {
            Some((_, e)) => *e = end,
            None => open = Some((start, end)),
        }
    }
    out.extend(open);
    out
}

/// The text after a list marker ("- ", "* ", "+ ", "3. ", "3) "), if the line is an item.
fn list_item(line: &str) -> Option<&str> {
    if let Some(rest) = line.strip_prefix(['-', '*', '+']) {
        return rest.strip_prefix(' ');
    }
    let digits = line.bytes().take_while(u8::is_ascii_digit).count();
    (digits > 0).then(|| line[digits..].strip_prefix(". ").or(line[digits..].strip_prefix(") ")))?
}

fn is_checkbox(item: &str) -> bool {
    ["[ ]", "[x]", "[X]"].iter().any(|b| item.starts_with(b))
}

/// The words of `ws` inside the byte range.
fn within(ws: &[Word], (start, end): (usize, usize)) -> &[Word] {
    let from = ws.partition_point(|w| w.start < start);
    let to = ws.partition_point(|w| w.start < end);
    &ws[from..to]
}

fn key(ws: &[Word]) -> u64 {
    ws.iter()
        .fold(0x9e37_79b9_7f4a_7c15u64, |h, w| (h ^ w.hash).wrapping_mul(0x0100_0000_01b3).rotate_left(31))
}

/// Keys that are already hashes need no hashing again.
#[derive(Default)]
struct Id(u64);

impl Hasher for Id {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | b as u64;
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

type ById<V> = HashMap<u64, V, BuildHasherDefault<Id>>;

/// Every paragraph of 20+ words that repeats, the same or nearly, one in an earlier part:
/// each copy after the first, in the order of `parts` (document order).
pub fn copies(parts: &[Prose]) -> Vec<Copy> {
    // Each paragraph's part, offset and number of distinct sequences.
    let mut seen: Vec<(usize, usize, usize)> = Vec::new();
    // A sequence -> the first paragraph that has it.
    let mut first: ById<u32> = ById::default();
    let mut out = Vec::new();
    for (pi, p) in parts.iter().enumerate() {
        for range in paragraphs(p.body) {
            let ws = within(p.words, range);
            if ws.len() < PARAGRAPH_WORDS {
                continue;
            }
            let mut grams: Vec<u64> = ws.windows(SHINGLE).map(key).collect();
            grams.sort_unstable();
            grams.dedup();
            let id = seen.len() as u32;
            // (earlier paragraph, sequences in common)
            let mut common: Vec<(u32, usize)> = Vec::new();
            for &g in &grams {
                match first.get(&g) {
                    Some(&q) if seen[q as usize].0 != pi => match common.iter_mut().find(|c| c.0 == q) {
                        Some(c) => c.1 += 1,
                        None => common.push((q, 1)),
                    },
                    Some(_) => {}
                    None => {
                        first.insert(g, id);
                    }
                }
            }
            let best = common
                .iter()
                .map(|&(q, n)| (q, n as f64 / (grams.len() + seen[q as usize].2 - n) as f64))
                .max_by(|a, b| a.1.total_cmp(&b.1));
            if let Some((q, share)) = best.filter(|b| b.1 >= SAME) {
                let (of, of_at, _) = seen[q as usize];
                out.push(Copy {
                    part: pi,
                    at: ws[0].start,
                    of,
                    of_at,
                    share,
                });
            }
            seen.push((pi, ws[0].start, grams.len()));
        }
    }
    out
}

/// The first sentence of 10+ words that `body` says 4+ times (table rows, headings and
/// checkbox items aside): where it is first, the sentence and how many times.
pub fn sentence_loop(body: &str, ws: &[Word]) -> Option<(usize, String, usize)> {
    // Key -> (times, first word's offset, end of the sentence).
    let mut count: ById<(usize, usize, usize)> = ById::default();
    for range in paragraphs(body) {
        let text = &body[range.0..range.1];
        let mut from = range.0;
        let ends = text
            .char_indices()
            .filter(|&(i, c)| {
                c == '\n' || matches!(c, '.' | '!' | '?') && text[i + 1..].starts_with(char::is_whitespace)
            })
            .map(|(i, _)| range.0 + i + 1)
            .chain(std::iter::once(range.1));
        for end in ends {
            let sentence = within(ws, (from, end));
            from = end;
            if sentence.len() < SENTENCE_WORDS {
                continue;
            }
            let c = count.entry(key(sentence)).or_insert((0, sentence[0].start, end));
            c.0 += 1;
        }
    }
    let (times, at, end) = count
        .into_values()
        .filter(|c| c.0 >= SENTENCE_TIMES)
        .min_by_key(|c| c.1)?;
    Some((at, body[at..end].trim().to_string(), times))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::quality::words;

    fn prose(texts: &[(Option<usize>, &str)]) -> Vec<Vec<Word>> {
        texts.iter().map(|(_, t)| words(t)).collect()
    }

    fn found(texts: &[(Option<usize>, &str)]) -> Vec<(usize, usize)> {
        let ws = prose(texts);
        let parts: Vec<Prose> = texts
            .iter()
            .zip(&ws)
            .map(|((owner, body), words)| Prose {
                owner: *owner,
                body,
                words,
            })
            .collect();
        copies(&parts).iter().map(|c| (c.part, c.of)).collect()
    }

    const BOILER: &str = "Rollback is a critical part of the migration process and it ensures that the system can be restored to its previous state if anything goes wrong during the migration.";

    #[test]
    fn a_paragraph_in_several_parts_is_a_copy_in_each_after_the_first() {
        let other = "The read cutover flips the feature flag for the orders service back to MySQL within five minutes when the p99 latency passes 300 ms for ten minutes.";
        let texts = [
            (None, BOILER),
            (Some(0), other),
            (Some(3), &*format!("{BOILER}\n\n- [ ] Checked")),
            (Some(4), &*format!("Intro line.\n\n{}", BOILER.replace("critical", "vital"))),
        ];
        assert_eq!(found(&texts), [(2, 0), (3, 0)]);
        // Within one part it is not a copy (a loop finds that).
        assert!(found(&[(Some(0), &*format!("{BOILER}\n\n{BOILER}"))]).is_empty());
    }

    #[test]
    fn short_lines_tables_and_checkboxes_are_never_copies() {
        let labels = "**Owner:** the DBE on call.\n\n**Rollback procedure:**\n\n| Problem type | Decision authority | Time to decide | Default action | Notes on it |\n|---|---|---|---|---|\n- [ ] Error rate back to its baseline for thirty minutes with no new alerts raised by the on-call team at all\n";
        assert!(found(&[(Some(0), labels), (Some(1), labels), (Some(2), labels)]).is_empty());
        let a = format!("{BOILER} The orders service keeps MySQL as the writer until T+2h.");
        let b = "Rollback at this stage means that PostgreSQL is dropped and rebuilt from the snapshot, and the team accepts a day of delay before it tries again.";
        assert!(found(&[(Some(0), &a), (Some(1), b)]).is_empty());
    }

    #[test]
    fn one_sentence_said_over_and_over_is_a_loop() {
        let s = "The rollback plan is a critical part of the migration, and it must be followed carefully by every team that takes part in the migration of the orders service to PostgreSQL.";
        assert_eq!(words(s).len(), 31);
        let body = format!("**Plan**\n\n{}", [s; 6].join(" "));
        let (at, sentence, times) = sentence_loop(&body, &words(&body)).unwrap();
        assert_eq!((at, sentence.as_str(), times), (10, s, 6));
        // Three times, or a short sentence, or table rows, is not a loop.
        let thrice = [s; 3].join(" ");
        assert!(sentence_loop(&thrice, &words(&thrice)).is_none());
        let short = "Page the IC now. ".repeat(8);
        assert!(sentence_loop(&short, &words(&short)).is_none());
        let rows = "| Latency regression on the read path | IC and the tech lead decide | within 15 minutes | roll back |\n".repeat(5);
        assert!(sentence_loop(&rows, &words(&rows)).is_none());
    }
}
