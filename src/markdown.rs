//! Markdown parsing (pulldown-cmark) and the tolerant heading match that decides which
//! part of a document is which required section. No regexes over raw text: headings in
//! code fences, prose mentions and front matter never count because the parser says so.

use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd};

use crate::spec::Spec;
use crate::util::Lines;

pub fn options() -> Options {
    Options::ENABLE_TABLES
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_YAML_STYLE_METADATA_BLOCKS
}

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

#[derive(Debug, Clone)]
pub struct Heading {
    pub level: u8,
    /// The heading's text with inline markup removed (`**x**` → `x`).
    pub text: String,
    pub start: usize,
    pub end: usize,
    pub line: usize,
    /// False for headings inside block quotes or list items.
    pub top_level: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockKind {
    Paragraph,
    List,
    Table,
    Code,
    Quote,
    Html,
    Rule,
    Other,
}

/// A top-level block that is not a heading.
#[derive(Debug, Clone)]
pub struct Block {
    pub kind: BlockKind,
    pub start: usize,
    pub end: usize,
    /// Only for Html blocks: true when it is nothing but a comment.
    pub comment_only: bool,
}

impl Block {
    /// Whether the block gives a section content (a rule or an HTML comment does not).
    pub fn is_content(&self) -> bool {
        !matches!(self.kind, BlockKind::Rule) && !self.comment_only
    }
}

#[derive(Debug)]
pub struct Doc<'a> {
    pub src: &'a str,
    pub headings: Vec<Heading>,
    pub blocks: Vec<Block>,
    /// The YAML front matter block (between `---` lines), if the document starts with one.
    pub front_matter: Option<&'a str>,
    /// Byte offset where the document proper starts (after any front matter).
    pub body_start: usize,
    /// The body as plain text: text and code spans, a space at each line break and at the
    /// end of each element. Made in the same pass, for checks that search the whole plan.
    pub text: String,
}

pub fn parse(src: &str) -> Doc<'_> {
    let mut headings = Vec::new();
    let mut blocks = Vec::new();
    let mut front_matter: Option<(usize, usize)> = None;
    let mut body_start = 0;
    let mut depth = 0usize;
    let mut in_heading: Option<(u8, usize, bool, String)> = None;
    let mut in_meta = false;
    let mut open_block: Option<(BlockKind, usize, String)> = None;
    let mut text = String::with_capacity(src.len());
    let mut lines = Lines::new(src);

    for (ev, range) in Parser::new_ext(src, options()).into_offset_iter() {
        if !in_meta {
            match &ev {
                Event::Text(t) | Event::Code(t) => text.push_str(t),
                Event::SoftBreak | Event::HardBreak => text.push(' '),
                Event::End(e) if !matches!(e, TagEnd::MetadataBlock(_)) => text.push(' '),
                _ => {}
            }
        }
        match ev {
            Event::Start(Tag::MetadataBlock(_)) => in_meta = true,
            Event::End(TagEnd::MetadataBlock(_)) => {
                in_meta = false;
                body_start = range.end;
            }
            // The parser splits the block's text at line ends (every one, with CRLF): keep it all.
            Event::Text(_) if in_meta => {
                front_matter = Some((front_matter.map_or(range.start, |(s, _)| s), range.end));
            }
            Event::Start(Tag::Heading { level, .. }) => {
                in_heading = Some((level_num(level), range.start, depth == 0, String::new()));
                depth += 1;
            }
            Event::End(TagEnd::Heading(_)) => {
                depth -= 1;
                if let Some((level, start, top_level, text)) = in_heading.take() {
                    headings.push(Heading {
                        level,
                        text: text.split_whitespace().collect::<Vec<_>>().join(" "),
                        start,
                        end: range.end,
                        line: lines.at(start),
                        top_level,
                    });
                }
            }
            Event::Text(t) | Event::Code(t) if in_heading.is_some() => {
                if let Some(h) = in_heading.as_mut() {
                    h.3.push_str(&t);
                }
            }
            Event::SoftBreak | Event::HardBreak if in_heading.is_some() => {
                if let Some(h) = in_heading.as_mut() {
                    h.3.push(' ');
                }
            }
            Event::Start(tag) if is_block(&tag) => {
                if depth == 0 {
                    open_block = Some((block_kind(&tag), range.start, String::new()));
                }
                depth += 1;
            }
            Event::End(tag) if is_block_end(&tag) => {
                depth = depth.saturating_sub(1);
                if depth == 0
                    && let Some((kind, start, html)) = open_block.take()
                {
                    let comment_only = kind == BlockKind::Html && is_comment(&html);
                    blocks.push(Block {
                        kind,
                        start,
                        end: range.end,
                        comment_only,
                    });
                }
            }
            Event::Html(h) => {
                if let Some((BlockKind::Html, _, buf)) = open_block.as_mut() {
                    buf.push_str(&h);
                }
            }
            Event::Rule if depth == 0 => blocks.push(Block {
                kind: BlockKind::Rule,
                start: range.start,
                end: range.end,
                comment_only: false,
            }),
            _ => {}
        }
    }
    Doc {
        src,
        headings,
        blocks,
        front_matter: front_matter.map(|(s, e)| &src[s..e]).filter(|t| !t.is_empty()),
        body_start,
        text,
    }
}

fn level_num(l: HeadingLevel) -> u8 {
    l as u8
}

fn is_block(tag: &Tag) -> bool {
    matches!(
        tag,
        Tag::Paragraph
            | Tag::BlockQuote(_)
            | Tag::CodeBlock(_)
            | Tag::HtmlBlock
            | Tag::List(_)
            | Tag::Item
            | Tag::FootnoteDefinition(_)
            | Tag::DefinitionList
            | Tag::DefinitionListTitle
            | Tag::DefinitionListDefinition
            | Tag::Table(_)
            | Tag::TableHead
            | Tag::TableRow
            | Tag::TableCell
    )
}

fn is_block_end(tag: &TagEnd) -> bool {
    matches!(
        tag,
        TagEnd::Paragraph
            | TagEnd::BlockQuote(_)
            | TagEnd::CodeBlock
            | TagEnd::HtmlBlock
            | TagEnd::List(_)
            | TagEnd::Item
            | TagEnd::FootnoteDefinition
            | TagEnd::DefinitionList
            | TagEnd::DefinitionListTitle
            | TagEnd::DefinitionListDefinition
            | TagEnd::Table
            | TagEnd::TableHead
            | TagEnd::TableRow
            | TagEnd::TableCell
    )
}

fn block_kind(tag: &Tag) -> BlockKind {
    match tag {
        Tag::Paragraph => BlockKind::Paragraph,
        Tag::List(_) => BlockKind::List,
        Tag::Table(_) => BlockKind::Table,
        Tag::CodeBlock(_) => BlockKind::Code,
        Tag::BlockQuote(_) => BlockKind::Quote,
        Tag::HtmlBlock => BlockKind::Html,
        _ => BlockKind::Other,
    }
}

fn is_comment(html: &str) -> bool {
    let t = html.trim();
    t.starts_with("<!--") && t.ends_with("-->") && !t[4..t.len() - 3].contains("-->")
}

// ---------------------------------------------------------------------------
// Tolerant heading match

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

    /// Which section a heading names, if any. Questions ("What if …?") never name a section.
    pub fn match_heading(&self, text: &str) -> Option<HeadingMatch> {
        if text.trim_end().ends_with('?') {
            return None;
        }
        let heading: WordSet = words(text, &self.vocab).into_iter().collect();
        let mut best: Option<(usize, usize, usize)> = None; // (section, name size, extra)
        for (i, name) in &self.names {
            if name.is_subset(&heading) {
                let extra = heading.len() - name.len();
                if extra > MAX_EXTRA_WORDS {
                    continue;
                }
                let better = match best {
                    None => true,
                    Some((_, size, ex)) => name.len() > size || (name.len() == size && extra < ex),
                };
                if better {
                    best = Some((*i, name.len(), extra));
                }
            }
        }
        best.map(|(section, _, extra)| HeadingMatch { section, extra })
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
    let lowered = text.to_lowercase().replace('&', " and ");
    // Apostrophes inside words join; hyphens inside words are decided below; other
    // punctuation separates.
    let mut cleaned = String::with_capacity(lowered.len());
    let chars: Vec<char> = lowered.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let between_letters =
            i > 0 && i + 1 < chars.len() && chars[i - 1].is_alphanumeric() && chars[i + 1].is_alphanumeric();
        match c {
            '\'' | '’' if between_letters => {}
            '-' if between_letters => cleaned.push('-'),
            c if c.is_alphanumeric() => cleaned.push(c),
            _ => cleaned.push(' '),
        }
    }
    let mut toks: Vec<String> = Vec::new();
    for t in cleaned.split_whitespace() {
        let whole = t.replace('-', "");
        if join_hyphens || !t.contains('-') || (!vocab.is_empty() && vocab.contains(&stem(&whole))) {
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
        .map(|t| strip_suffix(&t))
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
    let mut i = 0;
    while i < stripped.len() {
        // With no vocabulary nothing can join (the common case for plain word lists).
        if i + 1 < stripped.len() && !vocab.is_empty() {
            let (a, b) = (&stripped[i], &stripped[i + 1]);
            let joined = [format!("{a}{b}"), format!("{}{b}", single_final(a.clone()))]
                .into_iter()
                .map(|j| stem(&j))
                .find(|j| vocab.contains(j));
            if let Some(j) = joined {
                out.push(j);
                i += 2;
                continue;
            }
        }
        out.push(finish(stripped[i].clone()));
        i += 1;
    }
    out
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
    finish(strip_suffix(w))
}

/// Drop one inflection: "-ies"/"-ied" (→ "y"), "-ing", "-ed", or a plural "-s".
fn strip_suffix(w: &str) -> String {
    let n = w.chars().count();
    let cut = |k: usize| w[..w.len() - k].to_string();
    if n > 4 && (w.ends_with("ies") || w.ends_with("ied")) {
        return cut(3) + "y";
    }
    if n > 5 && w.ends_with("ing") {
        return cut(3);
    }
    if n > 4 && w.ends_with("ed") && !w.ends_with("eed") {
        return cut(2);
    }
    if n > 3 && w.ends_with('s') && !w.ends_with("ss") && !w.ends_with("us") && !w.ends_with("is") {
        return cut(1);
    }
    w.to_string()
}

/// Make the forms `strip_suffix` leaves agree with the bare word: a final "e" goes
/// ("write" / "writ(ing)") and a final doubled consonant is single ("cutt(ing)" / "cut").
fn finish(mut w: String) -> String {
    if w.chars().count() > 3 && w.ends_with('e') {
        w.pop();
    }
    single_final(w)
}

fn single_final(mut w: String) -> String {
    let b = w.as_bytes();
    if b.len() > 2 && b[b.len() - 1] == b[b.len() - 2] && b"bcdfgklmnprstvz".contains(&b[b.len() - 1]) {
        w.pop();
    }
    w
}

// ---------------------------------------------------------------------------
// Outline: where each required section is in a document

/// One occurrence of a required section in a document.
#[derive(Debug, Clone)]
pub struct Located {
    pub section: usize,
    /// Byte range of the whole section, heading included.
    pub start: usize,
    pub end: usize,
    /// Where the content after the heading starts.
    pub body_start: usize,
    pub line: usize,
    pub level: u8,
    pub heading: String,
    /// No content under the heading (a heading alone does not make a section).
    pub empty: bool,
}

#[derive(Debug, Clone)]
pub struct Outline {
    /// Every occurrence, in document order (duplicates included).
    pub found: Vec<Located>,
    /// The heading level most sections use; new sections are spliced in at this level.
    pub level: u8,
}

impl Outline {
    /// The occurrence that counts for a section: the first non-empty one, else the first.
    pub fn primary(&self, section: usize) -> Option<&Located> {
        let mut all = self.found.iter().filter(|l| l.section == section);
        let first = all.clone().next();
        all.find(|l| !l.empty).or(first)
    }

    pub fn is_present(&self, section: usize) -> bool {
        self.primary(section).is_some_and(|l| !l.empty)
    }
}

pub fn outline(doc: &Doc, matcher: &Matcher) -> Outline {
    let matches: Vec<Option<HeadingMatch>> = doc
        .headings
        .iter()
        .map(|h| {
            if h.top_level {
                matcher.match_heading(&h.text)
            } else {
                None
            }
        })
        .collect();
    // The section level: the shallowest exact match, else the shallowest match.
    let level_of = |exact_only: bool| {
        doc.headings
            .iter()
            .zip(&matches)
            .filter(|(_, m)| m.is_some_and(|m| !exact_only || m.extra == 0))
            .map(|(h, _)| h.level)
            .min()
    };
    let sec_level = level_of(true).or_else(|| level_of(false)).unwrap_or(2);
    // Deeper loose matches are subsections ("Scenario 4: rollback by stage fails").
    let matches: Vec<Option<HeadingMatch>> = doc
        .headings
        .iter()
        .zip(matches)
        .map(|(h, m)| m.filter(|m| h.level <= sec_level || m.extra == 0))
        .collect();
    // The shallowest heading naming each section, wherever it is.
    let sections = matcher.names.iter().map(|(i, _)| i + 1).max().unwrap_or(0);
    let mut shallowest = vec![u8::MAX; sections];
    for (h, m) in doc.headings.iter().zip(&matches) {
        if let Some(m) = m {
            shallowest[m.section] = shallowest[m.section].min(h.level);
        }
    }

    let mut found: Vec<Located> = Vec::new();
    let mut current: Option<Located> = None;
    let mut seen = vec![false; sections];
    for (h, m) in doc.headings.iter().zip(&matches) {
        if !h.top_level {
            continue;
        }
        if let Some(m) = *m {
            // A heading deeper than the current section is its subsection when it names the
            // same section, one seen already, or one that a shallower heading elsewhere
            // names ("#### Communication" inside a stage, with "## 6. Communication" below).
            let is_sub = current.as_ref().is_some_and(|c| {
                h.level > c.level && (c.section == m.section || seen[m.section] || shallowest[m.section] < h.level)
            });
            if is_sub {
                continue;
            }
            if let Some(mut c) = current.take() {
                c.end = h.start;
                found.push(c);
            }
            seen[m.section] = true;
            current = Some(Located {
                section: m.section,
                start: h.start,
                end: doc.src.len(),
                body_start: h.end,
                line: h.line,
                level: h.level,
                heading: h.text.clone(),
                empty: true,
            });
        } else if current.as_ref().is_some_and(|c| h.level <= c.level) {
            // An unrelated heading at the same level or above ends the section.
            let mut c = current.take().expect("checked");
            c.end = h.start;
            found.push(c);
        }
    }
    if let Some(c) = current.take() {
        found.push(c);
    }
    for l in &mut found {
        l.empty = !doc
            .blocks
            .iter()
            .any(|b| b.start >= l.body_start && b.start < l.end && b.is_content());
    }
    let level = most_common(found.iter().map(|l| l.level)).unwrap_or(sec_level);
    Outline { found, level }
}

fn most_common(it: impl Iterator<Item = u8>) -> Option<u8> {
    let mut counts = [0usize; 7];
    for l in it {
        counts[l as usize] += 1;
    }
    (1..7)
        .filter(|&l| counts[l] > 0)
        .max_by_key(|&l| (counts[l], std::cmp::Reverse(l)))
        .map(|l| l as u8)
}

/// Byte offsets (into `list`) where the items of the outermost list in `list` start.
pub fn list_item_starts(list: &str) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut depth = 0usize;
    for (ev, range) in Parser::new_ext(list, options()).into_offset_iter() {
        match ev {
            Event::Start(Tag::List(_)) => depth += 1,
            Event::End(TagEnd::List(_)) => depth = depth.saturating_sub(1),
            Event::Start(Tag::Item) if depth == 1 => starts.push(range.start),
            _ => {}
        }
    }
    starts
}

/// Shift headings in `body` so none is shallower than `min_level` (a section's content
/// must not open a heading that would end the section). Setext headings become ATX.
pub fn demote_headings(body: &str, min_level: u8) -> String {
    let doc = parse(body);
    let mut out = String::with_capacity(body.len() + 16);
    let mut pos = 0;
    for h in doc.headings.iter().filter(|h| h.top_level && h.level < min_level) {
        out.push_str(&body[pos..h.start]);
        out.push_str(&"#".repeat(min_level.min(6) as usize));
        out.push(' ');
        out.push_str(&h.text);
        out.push('\n');
        pos = h.end;
    }
    out.push_str(&body[pos..]);
    out
}

/// Close a fenced code block or HTML comment left open at the end of `text` (a reply cut
/// off mid-block), so that text spliced after it is not swallowed into it.
pub fn close_open_blocks(text: &str) -> String {
    let mut out = text.to_string();
    let mut fence: Option<(usize, usize)> = None; // (block start, end)
    for (ev, range) in Parser::new_ext(text, options()).into_offset_iter() {
        if let Event::Start(Tag::CodeBlock(pulldown_cmark::CodeBlockKind::Fenced(_))) = ev {
            fence = Some((range.start, range.end));
        }
    }
    if let Some((start, end)) = fence
        && end >= text.trim_end().len()
    {
        let block = &text[start..end];
        let first = block.lines().next().unwrap_or("").trim_start();
        let marker: String = first.chars().take_while(|&c| c == '`' || c == '~').collect();
        let last = block.trim_end().lines().last().unwrap_or("").trim();
        let closed = block.trim_end().lines().count() > 1
            && last.starts_with(&marker)
            && last.chars().all(|c| c == marker.chars().next().unwrap_or('`'));
        if !marker.is_empty() && !closed {
            if !out.ends_with('\n') {
                out.push('\n');
            }
            out.push_str(&marker);
            out.push('\n');
        }
    }
    let opened = out.rfind("<!--");
    if opened.is_some_and(|o| !out[o..].contains("-->")) {
        out.push_str("\n-->\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::Template;

    #[test]
    fn open_fences_and_comments_are_closed() {
        assert_eq!(
            close_open_blocks("text\n\n```sql\nselect 1;"),
            "text\n\n```sql\nselect 1;\n```\n"
        );
        assert_eq!(close_open_blocks("~~~~\nx\n"), "~~~~\nx\n~~~~\n");
        let closed = "```\nx\n```\n";
        assert_eq!(close_open_blocks(closed), closed);
        assert_eq!(close_open_blocks("a <!-- note"), "a <!-- note\n-->\n");
        let after = close_open_blocks("```\ncut") + "\n## 2. Rollback decision matrix\n\nrows\n";
        let (m, _) = matcher();
        assert_eq!(outline(&parse(&after), &m).found.len(), 1);
    }

    fn matcher() -> (Matcher, Spec) {
        let spec = Template::builtin().spec;
        (Matcher::new(&spec), spec)
    }

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

    fn located_ids(md: &str) -> Vec<(String, bool)> {
        let (m, spec) = matcher();
        let doc = parse(md);
        outline(&doc, &m)
            .found
            .iter()
            .map(|l| (spec.sections[l.section].id.clone(), l.empty))
            .collect()
    }

    #[test]
    fn setext_bold_and_levels() {
        let md = "# Plan\n\nRollback philosophy\n===================\n\ntext\n\n## **2. Rollback decision matrix**\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n#### 3. Rollback by stage\n\nsteps\n";
        assert_eq!(
            located_ids(md),
            vec![
                ("philosophy".into(), false),
                ("decision-matrix".into(), false),
                ("by-stage".into(), false)
            ]
        );
    }

    #[test]
    fn prose_code_fences_and_quotes_do_not_count() {
        let md = "# Plan\n\nThe rollback philosophy is covered below.\n\n```\n## 2. Rollback decision matrix\n```\n\n> ## 3. Rollback by stage\n\n- ## 4. Specific rollback procedures by component\n";
        assert!(located_ids(md).is_empty());
    }

    #[test]
    fn empty_section_is_located_but_empty() {
        let md = "## 1. Rollback philosophy\n\n## 2. Rollback decision matrix\n\nrows\n\n## 3. Rollback by stage\n\n---\n\n<!-- todo -->\n";
        assert_eq!(
            located_ids(md),
            vec![
                ("philosophy".into(), true),
                ("decision-matrix".into(), false),
                ("by-stage".into(), true)
            ]
        );
    }

    #[test]
    fn subsections_stay_inside_their_section() {
        let md = "## 3. Rollback by stage\n\n### Stage: backfill\n\ntext\n\n### Rollback by stage: notes\n\nmore\n\n## 9. What-if scenarios\n\n### Scenario 4: rollback by stage fails\n\nplan\n\n## Appendix\n\nnot a section\n";
        let (m, _) = matcher();
        let doc = parse(md);
        let o = outline(&doc, &m);
        assert_eq!(o.found.len(), 2);
        assert!(md[o.found[0].start..o.found[0].end].contains("notes"));
        assert!(md[o.found[1].start..o.found[1].end].contains("Scenario 4"));
        assert!(!md[o.found[1].start..o.found[1].end].contains("Appendix"));
    }

    #[test]
    fn subsections_named_like_a_later_section_stay_subsections() {
        let md = "## 3. Rollback by stage\n\n### Stage 4: Write cutover\n\nsteps\n\n#### Communication\n\ntell people\n\n### Stage 5: Decommission\n\nmore\n\n## 4. Specific rollback procedures by component\n\ncmds\n\n### Rollback drill\n\ntimed\n\n## 5. Pre-cutover rehearsal\n\ndrill\n\n## 6. Communication during rollback\n\nmessages\n";
        let (m, spec) = matcher();
        let o = outline(&parse(md), &m);
        let ids: Vec<(&str, usize)> = o
            .found
            .iter()
            .map(|l| (spec.sections[l.section].id.as_str(), l.line))
            .collect();
        assert_eq!(
            ids,
            [
                ("by-stage", 1),
                ("by-component", 15),
                ("rehearsal", 23),
                ("communication", 27)
            ]
        );
        assert!(md[o.found[0].start..o.found[0].end].contains("Stage 5"));
        // With no shallower heading naming it, a deeper numbered heading is still a section.
        let mixed = "## 1. Rollback philosophy\n\ntext\n\n### 2. Rollback decision matrix\n\nrows\n";
        assert_eq!(
            located_ids(mixed),
            vec![("philosophy".into(), false), ("decision-matrix".into(), false)]
        );
    }

    #[test]
    fn front_matter_is_not_content() {
        let md = "---\nrbplan: {model: x}\n---\n\n## 1. Rollback philosophy\n\ntext\n";
        let doc = parse(md);
        assert!(doc.front_matter.unwrap().contains("rbplan"));
        assert!(doc.body_start > 0);
        assert_eq!(located_ids(md), vec![("philosophy".into(), false)]);
    }

    #[test]
    fn front_matter_is_whole_with_crlf_line_ends() {
        let md = "---\r\nrbplan:\r\n  model: \"m\"\r\n  status: \"complete\"\r\n---\r\n\r\n## 1. Rollback philosophy\r\n\r\ntext\r\n";
        let fm = parse(md).front_matter.unwrap();
        assert_eq!(
            fm.lines().collect::<Vec<_>>(),
            ["rbplan:", "  model: \"m\"", "  status: \"complete\""]
        );
        let lf = md.replace("\r\n", "\n");
        assert_eq!(
            parse(&lf).front_matter.unwrap(),
            "rbplan:\n  model: \"m\"\n  status: \"complete\"\n"
        );
    }

    #[test]
    fn demote_keeps_body_under_its_section() {
        let body = "intro\n\n# Big\n\ntext\n\nSub\n---\n\nmore\n\n### deep\n";
        let out = demote_headings(body, 3);
        assert!(out.contains("### Big\n"), "{out}");
        assert!(out.contains("### Sub\n"), "{out}");
        assert!(out.contains("### deep"));
        assert!(out.contains("intro") && out.contains("more"));
    }
}
