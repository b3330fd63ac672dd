//! Markdown parsing (pulldown-cmark) and the tolerant heading match that decides which
//! part of a document is which required section. No regexes over raw text: headings in
//! code fences, prose mentions and front matter never count because the parser says so.

use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd};

use crate::util::Lines;

mod outline;
mod scan;
mod words;

pub use outline::{
    Located, Outline, Outlined, close_open_blocks, demote_headings, list_item_starts, outline, unwrap_fence,
};
pub(crate) use scan::{Scan, TableInfo};
pub use words::{HeadingMatch, Joinable, Matcher, WordSet, stem, tokens, words};

pub fn options() -> Options {
    Options::ENABLE_TABLES
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_YAML_STYLE_METADATA_BLOCKS
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
    /// The parser's events with their ranges, kept for `Scan::in_doc`.
    pub(crate) events: Vec<(Event<'a>, std::ops::Range<usize>)>,
}

pub fn parse(src: &str) -> Doc<'_> {
    let mut b = Builder {
        doc: Doc {
            src,
            headings: Vec::new(),
            blocks: Vec::new(),
            front_matter: None,
            body_start: 0,
            text: String::with_capacity(src.len()),
            events: Vec::new(),
        },
        meta: None,
        in_meta: false,
        depth: 0,
        heading: None,
        block: None,
        lines: Lines::new(src),
    };
    let mut events = Vec::with_capacity(src.len() / 8);
    for (ev, range) in Parser::new_ext(src, options()).into_offset_iter() {
        b.event(&ev, &range);
        events.push((ev, range));
    }
    let mut doc = b.doc;
    doc.events = events;
    doc.front_matter = b.meta.map(|(s, e)| &src[s..e]).filter(|t| !t.is_empty());
    doc
}

/// A heading being read.
struct OpenHeading {
    level: u8,
    start: usize,
    top_level: bool,
    text: String,
}

/// A top-level block being read; `html` gathers an HTML block's text.
struct OpenBlock {
    kind: BlockKind,
    start: usize,
    html: String,
}

/// `parse`'s state between events.
struct Builder<'a> {
    doc: Doc<'a>,
    /// Where the front matter's text is, once the parser has given some.
    meta: Option<(usize, usize)>,
    in_meta: bool,
    /// How many blocks and headings are open.
    depth: usize,
    heading: Option<OpenHeading>,
    block: Option<OpenBlock>,
    lines: Lines<'a>,
}

impl Builder<'_> {
    fn event(&mut self, ev: &Event, range: &std::ops::Range<usize>) {
        if !self.in_meta {
            self.plain_text(ev);
        }
        match ev {
            Event::Start(Tag::MetadataBlock(_)) => self.in_meta = true,
            Event::End(TagEnd::MetadataBlock(_)) => {
                self.in_meta = false;
                self.doc.body_start = range.end;
            }
            // The parser splits the block's text at line ends (every one, with CRLF): keep it all.
            Event::Text(_) if self.in_meta => {
                self.meta = Some((self.meta.map_or(range.start, |(s, _)| s), range.end));
            }
            Event::Start(Tag::Heading { level, .. }) => {
                self.heading = Some(OpenHeading {
                    level: level_num(*level),
                    start: range.start,
                    top_level: self.depth == 0,
                    text: String::new(),
                });
                self.depth += 1;
            }
            Event::End(TagEnd::Heading(_)) => self.end_heading(range.end),
            Event::Text(t) | Event::Code(t) if self.heading.is_some() => {
                self.heading.as_mut().expect("checked").text.push_str(t);
            }
            Event::SoftBreak | Event::HardBreak if self.heading.is_some() => {
                self.heading.as_mut().expect("checked").text.push(' ');
            }
            Event::Start(tag) if is_block(tag) => {
                if self.depth == 0 {
                    let (kind, start, html) = (block_kind(tag), range.start, String::new());
                    self.block = Some(OpenBlock { kind, start, html });
                }
                self.depth += 1;
            }
            Event::End(tag) if is_block_end(tag) => self.end_block(range.end),
            Event::Html(h) => {
                if let Some(b) = self.block.as_mut().filter(|b| b.kind == BlockKind::Html) {
                    b.html.push_str(h);
                }
            }
            Event::Rule if self.depth == 0 => self.doc.blocks.push(Block {
                kind: BlockKind::Rule,
                start: range.start,
                end: range.end,
                comment_only: false,
            }),
            _ => {}
        }
    }

    /// The body as plain text, in the same pass.
    fn plain_text(&mut self, ev: &Event) {
        match ev {
            Event::Text(t) | Event::Code(t) => self.doc.text.push_str(t),
            Event::SoftBreak | Event::HardBreak => self.doc.text.push(' '),
            Event::End(e) if !matches!(e, TagEnd::MetadataBlock(_)) => self.doc.text.push(' '),
            _ => {}
        }
    }

    fn end_heading(&mut self, end: usize) {
        self.depth -= 1;
        if let Some(h) = self.heading.take() {
            self.doc.headings.push(Heading {
                level: h.level,
                text: h.text.split_whitespace().collect::<Vec<_>>().join(" "),
                start: h.start,
                end,
                line: self.lines.at(h.start),
                top_level: h.top_level,
            });
        }
    }

    fn end_block(&mut self, end: usize) {
        self.depth = self.depth.saturating_sub(1);
        if self.depth == 0
            && let Some(b) = self.block.take()
        {
            let comment_only = b.kind == BlockKind::Html && is_comment(&b.html);
            self.doc.blocks.push(Block {
                kind: b.kind,
                start: b.start,
                end,
                comment_only,
            });
        }
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

/// Helpers for this module's unit tests: the built-in template's matcher.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crate::spec::Spec;
    use crate::template::Template;

    pub fn matcher() -> (Matcher, Spec) {
        let spec = Template::builtin().spec;
        (Matcher::new(&spec), spec)
    }

    /// The sections `md` is found to have, by id, with whether each is empty.
    pub fn located_ids(md: &str) -> Vec<(String, bool)> {
        let (m, spec) = matcher();
        let doc = parse(md);
        outline(&doc, &m)
            .found
            .iter()
            .map(|l| (spec.sections[l.section].id.clone(), l.empty))
            .collect()
    }

    /// Plain text of Markdown, as `Doc::text` and `Scan::text` build it in their own passes.
    pub fn plain_text(md: &str) -> String {
        let mut out = String::new();
        for ev in Parser::new_ext(md, options()) {
            match ev {
                Event::Text(t) | Event::Code(t) => {
                    out.push_str(&t);
                }
                Event::SoftBreak | Event::HardBreak | Event::End(_) => out.push(' '),
                _ => {}
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{located_ids, plain_text};
    use super::*;

    #[test]
    fn the_document_text_is_the_plain_text_of_the_body() {
        let md = "---\nname: x\n---\n# Title\n\nSome *text*\nand more.\n\n| a | b |\n|---|---|\n| 1 | 2 |\n";
        let doc = parse(md);
        assert_eq!(doc.text, plain_text(&md[doc.body_start..]));
        assert!(!doc.text.contains("name: x"));
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
}
