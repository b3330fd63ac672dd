//! Findings about what a section says rather than how it is laid out: a repetition loop,
//! a runaway section, text that talks about the prompt instead of the migration, text
//! copied from the prompt's own examples, and a plan that names nothing of its own
//! migration. All deterministic; each finding names its line. The thresholds and phrases
//! are data (`[quality]` in template.toml).

use super::{Code, Finding, repeated, restated};
use crate::markdown::{Doc, Outline};
use crate::spec::{Patterns, Quality, Severity, Spec};
use crate::util::line_of;

/// A run of one word sequence, back to back, this many times or more is a loop.
const LOOP_REPEATS: usize = 6;
/// ... and covering at least this many words.
const LOOP_WORDS: usize = 24;
/// Lines (of `LOOP_LINE_WORDS` words or more, leading numbering aside) that each repeat
/// an earlier line, this many in a row: a loop.
const LOOP_LINES: usize = 6;
/// Shorter lines are labels ("What can go wrong:", "#### Plan") that a plan repeats on purpose.
const LOOP_LINE_WORDS: usize = 4;
/// The same non-blank line this many times in a row is a loop whatever it holds (a model
/// writing "* " a hundred times).
const LOOP_SAME_LINES: usize = 16;
/// Sequences of this many words are compared with the prompt's.
const COPY_WORDS: usize = 4;
/// Fewer sequences than this say too little to call a section copied.
const COPY_MIN: usize = 30;
/// Sequences of this many words copied from the instructions mean talk about the task.
const ECHO_WORDS: usize = 6;

/// The prompt files of a template, read once into the sets the detectors compare with.
/// Word sequences are kept as hashes, sorted, so a plan's are looked up without copies.
#[derive(Debug, Default)]
pub struct PromptText {
    /// Every four-word sequence of every prompt file and section guidance.
    all: Hashes,
    /// Six-word sequences of the instructions (the user, repair and section prompts).
    instructions: Hashes,
    /// Headings of the prompt files that name no section ("Output", "Style", "Input").
    headings: Vec<String>,
    /// `[quality] meta` phrases, as said and as word hashes.
    meta: Vec<(String, Vec<u64>)>,
    /// A bit per `meta` phrase's first word (the top 10 bits of its hash): most words
    /// miss on it.
    meta_first: [u64; 16],
    /// `[quality] restated`: lines that restate the instructions.
    restated: Option<Patterns>,
}

impl PromptText {
    /// `files`: (name, text) of the prompt files; tera tags are not text and are dropped.
    pub fn new(files: &[(String, String)], spec: &Spec) -> PromptText {
        let mut p = PromptText::default();
        let guidance = spec.sections.iter().filter_map(|s| s.guidance.as_deref());
        // The judge's prompt is never shown to the model that writes the plan.
        let judge = spec.files.judge.as_deref().unwrap_or("judge");
        let written_with = files.iter().filter(|(n, _)| n != judge);
        for (name, text) in written_with
            .map(|(n, t)| (n.as_str(), t.as_str()))
            .chain(guidance.map(|g| ("", g)))
        {
            let plain = strip_tera(text);
            let ws = words(&plain);
            p.all.0.extend(grams(&ws, COPY_WORDS));
            if name != spec.files.system.as_deref().unwrap_or("") && !name.is_empty() {
                p.instructions.0.extend(grams(&ws, ECHO_WORDS));
            }
            p.headings.extend(prompt_headings(&plain, spec));
        }
        p.meta = spec
            .quality
            .meta
            .iter()
            .map(|m| (norm_phrase(m), words(m).iter().map(|w| w.hash).collect::<Vec<u64>>()))
            .filter(|(_, seq)| !seq.is_empty())
            .collect();
        for (_, seq) in &p.meta {
            let bit = (seq[0] >> 54) as usize;
            p.meta_first[bit >> 6] |= 1 << (bit & 63);
        }
        p.restated = Some(spec.quality.restated.clone());
        p.all.seal();
        p.instructions.seal();
        p
    }
}

/// Sorted word-sequence hashes, a bitmap of their top bits in front (most miss on one bit).
#[derive(Debug, Default)]
struct Hashes(Vec<u64>, Vec<u64>);

impl Hashes {
    const BITS: u32 = 17;

    fn seal(&mut self) {
        self.0.sort_unstable();
        self.0.dedup();
        self.1 = vec![0; 1 << (Self::BITS - 6)];
        for &h in &self.0 {
            let k = (h >> (64 - Self::BITS)) as usize;
            self.1[k >> 6] |= 1 << (k & 63);
        }
    }

    fn contains(&self, h: u64) -> bool {
        let k = (h >> (64 - Self::BITS)) as usize;
        self.1.get(k >> 6).is_some_and(|w| w >> (k & 63) & 1 == 1) && self.0.binary_search(&h).is_ok()
    }
}

/// The hash of each `n`-word sequence of `ws`.
fn grams(ws: &[Word], n: usize) -> impl Iterator<Item = u64> + '_ {
    ws.windows(n)
        .map(|g| g.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, w| mix(h, w.hash)))
}

fn mix(h: u64, v: u64) -> u64 {
    (h ^ v).wrapping_mul(0x0100_0000_01b3).rotate_left(29)
}

/// Text between tera's `{{ }}`, `{% %}` and `{# #}` is template code, not prompt text.
fn strip_tera(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let close = match rest[i..].chars().nth(1) {
            Some('{') => "}}",
            Some('%') => "%}",
            Some('#') => "#}",
            _ => {
                out.push('{');
                rest = &rest[i + 1..];
                continue;
            }
        };
        match rest[i..].find(close) {
            Some(j) => {
                out.push(' ');
                rest = &rest[i + j + 2..];
            }
            None => {
                rest = &rest[i..];
                break;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Level-1 and level-2 headings of a prompt file that name no section of the spec.
fn prompt_headings(text: &str, spec: &Spec) -> Vec<String> {
    let matcher = crate::markdown::Matcher::new(spec);
    crate::markdown::parse(text)
        .headings
        .iter()
        .filter(|h| h.level <= 2 && matcher.match_heading(&h.text).is_none())
        .map(|h| norm_phrase(&h.text))
        .filter(|h| !h.is_empty())
        .collect()
}

/// A word of a text: where it is, and a hash of its lower-case form.
#[derive(Debug, Clone, Copy)]
pub struct Word {
    pub start: usize,
    pub end: usize,
    pub hash: u64,
}

impl Word {
    pub fn text(self, src: &str) -> String {
        src[self.start..self.end].to_lowercase()
    }
}

/// Each ASCII byte's lower case if it is a letter or digit, else 0.
const ALNUM_LOWER: [u8; 128] = {
    let mut t = [0u8; 128];
    let mut c = 0;
    while c < 128 {
        let b = c as u8;
        if b.is_ascii_alphanumeric() {
            t[c] = b.to_ascii_lowercase();
        }
        c += 1;
    }
    t
};

/// The words of `text` (letters and digits; an apostrophe inside a word is part of it).
pub fn words(text: &str) -> Vec<Word> {
    const SEED: u64 = 0xcbf2_9ce4_8422_2325;
    let step = |h: u64, v: u64| (h ^ v).wrapping_mul(0x0100_0000_01b3);
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len() / 6);
    let mut i = 0usize;
    while i < b.len() {
        if b[i] < 0x80 {
            if ALNUM_LOWER[b[i] as usize] == 0 {
                i += 1;
                continue;
            }
        } else {
            let c = text[i..].chars().next().unwrap_or(' ');
            if !c.is_alphanumeric() {
                i += c.len_utf8();
                continue;
            }
        }
        let (start, mut hash) = (i, SEED);
        while i < b.len() {
            let byte = b[i];
            if byte < 0x80 {
                let l = ALNUM_LOWER[byte as usize];
                if l != 0 {
                    hash = step(hash, l as u64);
                } else if byte == b'\'' && text[i + 1..].starts_with(char::is_alphanumeric) {
                    hash = step(hash, byte as u64);
                } else {
                    break;
                }
                i += 1;
                continue;
            }
            let c = text[i..].chars().next().unwrap_or(' ');
            if !c.is_alphanumeric() {
                break;
            }
            for l in c.to_lowercase() {
                hash = step(hash, l as u64);
            }
            i += c.len_utf8();
        }
        out.push(Word { start, end: i, hash });
    }
    out
}

/// A phrase as lower-case words joined by one space, for comparing headings and phrases.
fn norm_phrase(s: &str) -> String {
    words(s).into_iter().map(|w| w.text(s)).collect::<Vec<_>>().join(" ")
}

/// A present section being looked at: its span in the document and its heading.
pub(super) struct Part<'a> {
    pub(super) id: &'a str,
    pub(super) heading: String,
    line: usize,
    /// The Markdown under the heading, and where it starts in the document.
    pub(super) body: &'a str,
    pub(super) offset: usize,
    /// The body's words (and their hashes) and prose paragraphs, read once for every detector.
    pub(super) words: Vec<Word>,
    hashes: Vec<u64>,
    pub(super) paragraphs: Vec<(usize, usize, bool)>,
}

impl Part<'_> {
    pub(super) fn finding(&self, code: Code, line: usize, message: String) -> Finding {
        Finding::new(Severity::Error, code, Some(self.id), Some(line), message)
    }

    pub(super) fn line_at(&self, doc: &Doc, pos: usize) -> usize {
        line_of(doc.src, self.offset + pos)
    }
}

/// The findings of `[quality]` over every present section.
pub fn run(spec: &Spec, prompt: &PromptText, doc: &Doc, outline: &Outline) -> Vec<Finding> {
    let q = &spec.quality;
    let parts: Vec<Part> = (0..spec.sections.len())
        .filter_map(|i| outline.primary(i).filter(|l| !l.empty).map(|l| (i, l)))
        .map(|(i, l)| {
            let body = &doc.src[l.body_start..l.end];
            let words = words(body);
            Part {
                id: &spec.sections[i].id,
                heading: spec.heading(i),
                line: l.line,
                body,
                offset: l.body_start,
                hashes: words.iter().map(|w| w.hash).collect(),
                words,
                paragraphs: repeated::paragraphs(body),
            }
        })
        .collect();
    let mut out = Vec::new();
    for p in &parts {
        if q.loops {
            out.extend(repetition(p, doc));
        }
        out.extend(about_the_prompt(p, doc, prompt));
        if q.copied > 0.0 {
            out.extend(copied(p, q.copied, prompt));
        }
    }
    if q.runaway {
        out.extend(runaway(&parts, q));
    }
    if q.loops {
        out.extend(repeated::findings(&parts, doc, outline));
    }
    out
}

/// A loop: one word sequence back to back many times, or most lines repeating earlier ones.
fn repetition(p: &Part, doc: &Doc) -> Option<Finding> {
    if let Some((at, phrase, times)) = word_run_in(&p.words, &p.hashes, p.body) {
        let msg = format!(
            "\"{}\" repeats itself: \"{}\" {times} times in a row",
            p.heading,
            crate::util::snippet(&phrase, 60)
        );
        return Some(p.finding(Code::Loop, p.line_at(doc, at), msg));
    }
    if let Some((at, line, times)) = same_lines(p.body) {
        let msg = format!(
            "\"{}\" repeats itself: the line \"{}\" {times} times in a row",
            p.heading,
            crate::util::snippet(&line, 60)
        );
        return Some(p.finding(Code::Loop, p.line_at(doc, at), msg));
    }
    if let Some((at, line, times)) = repeated_lines_in(&p.words, p.body) {
        let msg = format!(
            "\"{}\" repeats itself: the line \"{}\" {times} times, and most of its lines repeat earlier ones",
            p.heading,
            crate::util::snippet(&line, 60)
        );
        return Some(p.finding(Code::Loop, p.line_at(doc, at), msg));
    }
    let (at, sentence, times) = repeated::sentence_loop(p.body, &p.words, &p.paragraphs)?;
    let msg = format!(
        "\"{}\" repeats itself: the sentence \"{}\" {times} times",
        p.heading,
        crate::util::snippet(&sentence, 60)
    );
    Some(p.finding(Code::Loop, p.line_at(doc, at), msg))
}

/// The first word sequence (1 to 8 words) repeated back to back `LOOP_REPEATS` times or
/// more over `LOOP_WORDS` words: its offset, the sequence and the count.
pub fn word_run(text: &str) -> Option<(usize, String, usize)> {
    let ws = words(text);
    let h: Vec<u64> = ws.iter().map(|w| w.hash).collect();
    word_run_in(&ws, &h, text)
}

/// `word_run` over the words `ws` (hashes `h`) of `text`. A sequence of `len` words
/// repeated `t` times from word `s` is a streak of `(t - 1) * len` words each equal to
/// the one `len` further on: the earliest streak long enough wins, then the shorter length.
fn word_run_in(ws: &[Word], h: &[u64], text: &str) -> Option<(usize, String, usize)> {
    let long_enough = |streak: usize, len: usize| {
        let times = streak / len + 1;
        times >= LOOP_REPEATS && times * len >= LOOP_WORDS
    };
    // (first word, length, times)
    let mut first: Option<(usize, usize, usize)> = None;
    for len in 1..=8 {
        let need = (1..)
            .find(|&s| long_enough(s, len))
            .expect("a long enough streak exists");
        let stop = first.map_or(usize::MAX, |f| f.0);
        if let Some((s, streak)) = first_streak(h, len, need, stop) {
            first = Some((s, len, streak / len + 1));
        }
    }
    let (i, k, r) = first?;
    let phrase = ws[i..i + k].iter().map(|w| w.text(text)).collect::<Vec<_>>().join(" ");
    Some((ws[i].start, phrase, r))
}

/// The first maximal run of `j`s with `h[j] == h[j + len]`, `need` long or more and
/// starting before `stop`: its start and length. Such a run holds one of every `need`th
/// position, so only those are read until one matches.
fn first_streak(h: &[u64], len: usize, need: usize, stop: usize) -> Option<(usize, usize)> {
    let m = h.len().saturating_sub(len);
    let eq = |j: usize| h[j] == h[j + len];
    let mut p = need - 1;
    while p < m {
        if !eq(p) {
            p += need;
            continue;
        }
        let mut s = p;
        while s > 0 && eq(s - 1) {
            s -= 1;
        }
        if s >= stop {
            return None;
        }
        let mut e = p + 1;
        while e < m && eq(e) {
            e += 1;
        }
        if e - s >= need {
            return Some((s, e - s));
        }
        p = e + need;
    }
    None
}

/// The first run of one non-blank line `LOOP_SAME_LINES` times or more in a row: where it
/// starts, the line (trimmed) and how many times.
pub fn same_lines(text: &str) -> Option<(usize, String, usize)> {
    let (mut offset, mut run_at, mut run, mut prev) = (0usize, 0usize, 0usize, "");
    for raw in text.split_inclusive('\n') {
        let line = raw.trim();
        if !line.is_empty() && line == prev {
            run += 1;
        } else {
            if run >= LOOP_SAME_LINES {
                break;
            }
            (run_at, run, prev) = (offset, 1, line);
        }
        offset += raw.len();
    }
    (run >= LOOP_SAME_LINES).then(|| (run_at, prev.to_string(), run))
}

/// Lines of four words or more (leading numbering and Markdown marks aside) each repeating an
/// earlier one, `LOOP_LINES` in a row: where that run starts, the most repeated line and
/// its count. A label repeated per stage ("Cost of rolling back at this stage: low") has
/// other lines between its copies and is no loop.
pub fn repeated_lines(text: &str) -> Option<(usize, String, usize)> {
    repeated_lines_in(&words(text), text)
}

/// `repeated_lines` over the words `ws` of `text`: each line is keyed by a hash of its
/// words, not a copy of them.
fn repeated_lines_in(ws: &[Word], text: &str) -> Option<(usize, String, usize)> {
    // Key -> (times seen, where first seen).
    let mut seen: std::collections::HashMap<u64, (usize, usize)> = std::collections::HashMap::new();
    let (mut run, mut run_start, mut found) = (0usize, 0usize, None);
    let (mut offset, mut w) = (0usize, 0usize);
    for raw in text.split_inclusive('\n') {
        let (at, end) = (offset, offset + raw.len());
        offset = end;
        let first = w;
        while w < ws.len() && ws[w].start < end {
            w += 1;
        }
        let mut line = &ws[first..w];
        // Leading numbering ("### 12.", "3)") is not content: a model that loops on a
        // numbered title repeats only the title.
        if line
            .first()
            .is_some_and(|x| text[x.start..x.end].chars().all(|c| c.is_ascii_digit()))
        {
            line = &line[1..];
        }
        if line.len() < LOOP_LINE_WORDS {
            continue;
        }
        let key = line.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, x| mix(h, x.hash));
        let n = seen.entry(key).or_insert((0, line[0].start));
        n.0 += 1;
        if n.0 == 1 {
            run = 0;
            continue;
        }
        if run == 0 {
            run_start = at;
        }
        run += 1;
        if run >= LOOP_LINES && found.is_none() {
            found = Some(run_start);
        }
    }
    let at = found?;
    let (times, from) = seen
        .into_values()
        .max_by_key(|(n, from)| (*n, std::cmp::Reverse(*from)))?;
    let line_end = text[from..].find('\n').map_or(text.len(), |e| from + e);
    Some((at, norm_phrase(&text[from..line_end]), times))
}

/// A section many times longer than the median section, and long in itself.
fn runaway(parts: &[Part], q: &Quality) -> Vec<Finding> {
    if parts.len() < 3 {
        return Vec::new();
    }
    let mut sizes: Vec<usize> = parts.iter().map(|p| p.body.len()).collect();
    sizes.sort_unstable();
    let median = sizes[sizes.len() / 2].max(1);
    parts
        .iter()
        .filter(|p| p.body.len() > q.runaway_chars && p.body.len() as f64 > q.runaway_factor * median as f64)
        .map(|p| {
            let msg = format!(
                "\"{}\" runs away: {} characters, {:.0} times the median section; write it again, concisely",
                p.heading,
                p.body.len(),
                p.body.len() as f64 / median as f64
            );
            p.finding(Code::Runaway, p.line, msg)
        })
        .collect()
}

/// A section that talks about its task instead of the migration: a phrase of the
/// `meta` list, a heading of the prompt ("Output", "Input"), or instructions copied.
fn about_the_prompt(p: &Part, doc: &Doc, prompt: &PromptText) -> Option<Finding> {
    let said = |why: String, at: usize| {
        let msg = format!(
            "\"{}\" talks about the prompt instead of the migration ({why}); write it about this migration",
            p.heading
        );
        Some(p.finding(Code::AboutPrompt, at, msg))
    };
    if let Some((k, i)) = first_meta(&p.hashes, prompt) {
        let phrase = &prompt.meta[k].0;
        return said(format!("\"{phrase}\""), p.line_at(doc, p.words[i].start));
    }
    let end = p.offset + p.body.len();
    let inside = doc.headings.iter().filter(|h| h.start >= p.offset && h.start < end);
    if let Some(h) = inside
        .into_iter()
        .find(|h| prompt.headings.contains(&norm_phrase(&h.text)))
    {
        return said(format!("a \"{}\" heading from the prompt", h.text), h.line);
    }
    let restating = prompt.restated.as_ref().and_then(|r| restated::first(p.body, r));
    if let Some((at, line)) = restating {
        let why = format!("it restates its instructions: \"{}\"", restated::clip(line));
        return said(why, p.line_at(doc, at));
    }
    let ws = &p.words;
    let copied: Vec<usize> = grams(ws, ECHO_WORDS)
        .enumerate()
        .filter(|(_, g)| prompt.instructions.contains(*g))
        .map(|(i, _)| i)
        .collect();
    if copied.len() >= 2 {
        let i = copied[0];
        let phrase = ws[i..i + ECHO_WORDS]
            .iter()
            .map(|w| w.text(p.body))
            .collect::<Vec<_>>()
            .join(" ");
        return said(
            format!("the prompt's own words: \"{phrase}\""),
            p.line_at(doc, ws[i].start),
        );
    }
    None
}

/// The first `meta` phrase (in the list's order) that the words `h` say, and the word
/// where they first say it.
fn first_meta(h: &[u64], prompt: &PromptText) -> Option<(usize, usize)> {
    let mut best: Option<(usize, usize)> = None;
    for (i, &w) in h.iter().enumerate() {
        let bit = (w >> 54) as usize;
        if prompt.meta_first[bit >> 6] >> (bit & 63) & 1 == 0 {
            continue;
        }
        let upto = best.map_or(prompt.meta.len(), |b| b.0);
        for (k, (_, seq)) in prompt.meta[..upto].iter().enumerate() {
            if seq[0] == w && h[i..].starts_with(seq) {
                best = Some((k, i));
                break;
            }
        }
        if best.is_some_and(|b| b.0 == 0) {
            break;
        }
    }
    best
}

/// Most of a section's word sequences found in the prompt files: copied, not written for
/// this migration.
fn copied(p: &Part, threshold: f64, prompt: &PromptText) -> Option<Finding> {
    let seqs: Vec<u64> = grams(&p.words, COPY_WORDS).collect();
    if seqs.len() < COPY_MIN {
        return None;
    }
    let hits = seqs.iter().filter(|g| prompt.all.contains(**g)).count();
    let share = hits as f64 / seqs.len() as f64;
    (share >= threshold).then(|| {
        let msg = format!(
            "\"{}\" copies the prompt's own text ({:.0}% of its word sequences are the prompt's); write it for this migration",
            p.heading,
            share * 100.0
        );
        p.finding(Code::Copied, p.line, msg)
    })
}

#[cfg(test)]
mod tests;
