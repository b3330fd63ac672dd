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

use super::quality::{Part, Word, words};
use super::{Code, Finding};
use crate::markdown::{Doc, Outline};
use crate::util::line_of;

/// A paragraph: its byte range and whether it is plain prose.
pub type Para = (usize, usize, bool);

/// A paragraph of fewer words is not compared.
const PARAGRAPH_WORDS: usize = 20;
/// Paragraphs are compared by their sequences of this many words ...
const SHINGLE: usize = 5;
/// ... and are copies when this share of the sequences of both is common to them (Jaccard).
const SAME: f64 = 0.5;
/// A preamble with more paragraphs of 20+ words than this is not compared.
const PREAMBLE_PARAGRAPHS: usize = 3;
/// A sentence of this many words or more ...
pub const SENTENCE_WORDS: usize = 10;
/// ... said this many times in one section is a loop.
pub const SENTENCE_TIMES: usize = 4;

/// Prose of one part of a plan: the preamble (`owner` None) or a section.
pub struct Prose<'a> {
    pub owner: Option<usize>,
    pub body: &'a str,
    /// The body's words and `paragraphs`, positions relative to `body`.
    pub words: &'a [Word],
    pub paragraphs: &'a [(usize, usize, bool)],
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

/// Byte ranges of the paragraphs of `body` outside code fences: runs of plain lines, each
/// list item starting one of its own. The flag is true for plain prose, false for a list
/// item or a note (a quote, a `{{ callout }}`, `:::` or `!!!` admonition): a step or a
/// warning repeated in two procedures is there on purpose.
pub fn paragraphs(body: &str) -> Vec<(usize, usize, bool)> {
    let mut out = Vec::new();
    let mut open: Option<(usize, usize, bool)> = None;
    let (mut at, mut fence) = (0, false);
    for raw in body.split_inclusive('\n') {
        let (start, end) = (at, at + raw.trim_end().len());
        at += raw.len();
        let line = raw.trim();
        let marker = line.starts_with("```") || line.starts_with("~~~");
        fence ^= marker;
        let item = list_item(line);
        let skip =
            line.is_empty() || marker || fence || line.starts_with(['#', '|', '<']) || item.is_some_and(is_checkbox);
        if skip || item.is_some() {
            out.extend(open.take());
        }
        if skip {
            continue;
        }
        let note = line.starts_with(['>', '{']) || line.starts_with(":::") || line.starts_with("!!!");
        match &mut open {
            Some((_, e, _)) => *e = end,
            None => open = Some((start, end, item.is_none() && !note)),
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
    ws.iter().fold(0x9e37_79b9_7f4a_7c15u64, |h, w| {
        (h ^ w.hash).wrapping_mul(0x0100_0000_01b3).rotate_left(31)
    })
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
    let words = parts.iter().map(|p| p.words.len()).sum();
    let mut first: ById<u32> = ById::with_capacity_and_hasher(words, Default::default());
    let mut out = Vec::new();
    for (pi, p) in parts.iter().enumerate() {
        for &(start, end, prose) in p.paragraphs {
            let ws = within(p.words, (start, end));
            if !prose || ws.len() < PARAGRAPH_WORDS {
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

/// The first sentence of 10+ words that one paragraph of `body` says 4+ times: where it
/// is first, the sentence and how many times.
pub fn sentence_loop(body: &str, ws: &[Word], paragraphs: &[(usize, usize, bool)]) -> Option<(usize, String, usize)> {
    // (key, first word's offset, end of the sentence), sorted by key below; the key holds
    // the paragraph's number, so that a line repeated per scenario or per subsection,
    // with other lines between its copies, is no loop.
    let mut said: Vec<(u64, usize, usize)> = Vec::new();
    let b = body.as_bytes();
    // A sentence ends at a line end, or at . ! ? before white space: never inside a word,
    // so only the gaps between words are read.
    let stop = |i: usize| {
        b[i] == b'\n' || matches!(b[i], b'.' | b'!' | b'?') && b.get(i + 1).is_none_or(u8::is_ascii_whitespace)
    };
    for (n, &(start, end, _)) in paragraphs.iter().enumerate() {
        let under = (n as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let pw = within(ws, (start, end));
        let mut from = 0;
        for k in 0..pw.len() {
            let gap_end = pw.get(k + 1).map_or(end, |w| w.start);
            let ends = match (pw[k].end..gap_end).find(|&i| stop(i)) {
                Some(i) => (i + 1).min(end),
                None if k + 1 == pw.len() => end,
                None => continue,
            };
            let sentence = &pw[from..=k];
            from = k + 1;
            if sentence.len() >= SENTENCE_WORDS {
                said.push((key(sentence) ^ under, sentence[0].start, ends));
            }
        }
    }
    if said.len() < SENTENCE_TIMES {
        return None;
    }
    said.sort_unstable();
    said.chunk_by(|a, b| a.0 == b.0)
        .filter(|run| run.len() >= SENTENCE_TIMES)
        .map(|run| (run[0].1, run[0].2, run.len()))
        .min()
        .map(|(at, end, times)| (at, body[at..end].trim().to_string(), times))
}

/// A paragraph another section or the preamble already holds: an error on each copy after
/// the first, once per section. A preamble of more than `PREAMBLE_PARAGRAPHS` long
/// paragraphs is a draft that lost its headings, which the sections restate: not compared.
pub(super) fn findings(parts: &[Part], doc: &Doc, outline: &Outline) -> Vec<Finding> {
    let Some(first) = outline.found.iter().map(|l| l.start).min() else {
        return Vec::new();
    };
    let preamble = doc.src.get(doc.body_start..first).unwrap_or("");
    let (preamble_words, mut preamble_paragraphs) = (words(preamble), paragraphs(preamble));
    let long =
        |&&(s, e, prose): &&(usize, usize, bool)| prose && within(&preamble_words, (s, e)).len() >= PARAGRAPH_WORDS;
    if preamble_paragraphs.iter().filter(long).count() > PREAMBLE_PARAGRAPHS {
        preamble_paragraphs.clear();
    }
    let mut order: Vec<usize> = (0..parts.len()).collect();
    order.sort_by_key(|&i| parts[i].offset);
    let prose: Vec<Prose> = std::iter::once(Prose {
        owner: None,
        body: preamble,
        words: &preamble_words,
        paragraphs: &preamble_paragraphs,
    })
    .chain(order.iter().map(|&i| Prose {
        owner: Some(i),
        body: parts[i].body,
        words: &parts[i].words,
        paragraphs: &parts[i].paragraphs,
    }))
    .collect();
    let offset = |k: usize| prose[k].owner.map_or(doc.body_start, |i| parts[i].offset);
    let mut out: Vec<Finding> = Vec::new();
    for c in copies(&prose) {
        let Some(p) = prose[c.part].owner.map(|i| &parts[i]) else {
            continue;
        };
        // Two concerns mapped to one heading hold the same text: that is no copy.
        let same_text = offset(c.part) + c.at == offset(c.of) + c.of_at;
        if same_text || out.iter().any(|f| f.section.as_deref() == Some(p.id)) {
            continue;
        }
        let of_line = line_of(doc.src, offset(c.of) + c.of_at);
        let place = match prose[c.of].owner {
            Some(i) => format!("\"{}\" (line {of_line})", parts[i].heading),
            None => format!("the preamble (line {of_line})"),
        };
        let end = p.body[c.at..].find("\n\n").map_or(p.body.len(), |e| c.at + e);
        let msg = format!(
            "\"{}\" repeats a paragraph of {place}, {:.0}% the same: \"{}\"; write this section about its own subject",
            p.heading,
            c.share * 100.0,
            crate::util::snippet(&p.body[c.at..end], 60)
        );
        out.push(p.finding(Code::Repeated, p.line_at(doc, c.at), msg));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prose(texts: &[(Option<usize>, &str)]) -> Vec<(Vec<Word>, Vec<Para>)> {
        texts.iter().map(|(_, t)| (words(t), paragraphs(t))).collect()
    }

    fn looped(body: &str) -> Option<(usize, String, usize)> {
        sentence_loop(body, &words(body), &paragraphs(body))
    }

    fn found(texts: &[(Option<usize>, &str)]) -> Vec<(usize, usize)> {
        let ws = prose(texts);
        let parts: Vec<Prose> = texts
            .iter()
            .zip(&ws)
            .map(|((owner, body), (words, paragraphs))| Prose {
                owner: *owner,
                body,
                words,
                paragraphs,
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
            (
                Some(4),
                &*format!("Intro line.\n\n{}", BOILER.replace("critical", "vital")),
            ),
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
        let (at, sentence, times) = looped(&body).unwrap();
        assert_eq!((at, sentence.as_str(), times), (10, s, 6));
        // Three times, or a short sentence, or table rows, is not a loop.
        let thrice = [s; 3].join(" ");
        assert!(looped(&thrice).is_none());
        let short = "Page the IC now. ".repeat(8);
        assert!(looped(&short).is_none());
        let rows =
            "| Latency regression on the read path | IC and the tech lead decide | within 15 minutes | roll back |\n"
                .repeat(5);
        assert!(looped(&rows).is_none());
    }

    /// The public plans and runbooks of fixtures/corpus (git-ignored), cut at their own
    /// level-2 headings: no plan repeats a paragraph or says a sentence four times. One
    /// runbook gives the same three instructions in two procedures, word for word: a real
    /// repeat, flagged, and the only one.
    #[test]
    fn human_plans_and_runbooks_repeat_nothing_across_their_own_sections() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/corpus");
        let mut files: Vec<std::path::PathBuf> = ["plans", "runbooks"]
            .iter()
            .filter_map(|d| std::fs::read_dir(format!("{root}/{d}")).ok())
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "md"))
            .collect();
        files.sort();
        if files.is_empty() {
            eprintln!("note: no fixtures/corpus/*/*.md (git-ignored, see fixtures/corpus/SOURCES.md): skipped");
            return;
        }
        let mut found = Vec::new();
        for f in &files {
            let text = std::fs::read_to_string(f).unwrap();
            let mut cuts: Vec<usize> = vec![0];
            let mut at = 0;
            for line in text.split_inclusive('\n') {
                if line.starts_with("## ") {
                    cuts.push(at);
                }
                at += line.len();
            }
            cuts.push(text.len());
            let bodies: Vec<&str> = cuts.windows(2).map(|w| &text[w[0]..w[1]]).collect();
            let read: Vec<(Vec<Word>, Vec<Para>)> = bodies.iter().map(|b| (words(b), paragraphs(b))).collect();
            let parts: Vec<Prose> = bodies
                .iter()
                .zip(&read)
                .enumerate()
                .map(|(i, (body, (words, paragraphs)))| Prose {
                    owner: (i > 0).then_some(i),
                    body,
                    words,
                    paragraphs,
                })
                .collect();
            let dir = f.parent().and_then(|d| d.file_name()).unwrap().to_string_lossy();
            let name = format!("{dir}/{}", f.file_name().unwrap().to_string_lossy());
            for c in copies(&parts) {
                let b = parts[c.part].body;
                found.push(format!(
                    "{name}: copy {:.2}: {}",
                    c.share,
                    crate::util::snippet(&b[c.at..], 80)
                ));
            }
            for p in &parts {
                if let Some((_, s, n)) = sentence_loop(p.body, p.words, p.paragraphs) {
                    found.push(format!("{name}: loop {n}x: {s}"));
                }
            }
        }
        eprintln!("{} corpus files read: {found:#?}", files.len());
        let unexpected: Vec<&String> = found
            .iter()
            .filter(|f| !f.starts_with("runbooks/govuk-rds-encryption.md: copy 1.00"))
            .collect();
        assert!(unexpected.is_empty(), "{unexpected:#?}");
        assert!(found.len() <= 3, "{found:#?}");
    }
}
