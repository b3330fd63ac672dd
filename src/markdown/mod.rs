//! Markdown parsing (pulldown-cmark) and the tolerant heading match that decides which
//! part of a document is which required section. No regexes over raw text: headings in
//! code fences, prose mentions and front matter never count because the parser says so.

use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd};

use crate::util::Lines;

mod outline;
mod words;

pub use outline::{Located, Outline, close_open_blocks, demote_headings, list_item_starts, outline};
pub use words::{HeadingMatch, Matcher, WordSet, join_tokens, stem, tokens, words};

pub fn options() -> Options {
    Options::ENABLE_TABLES
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_YAML_STYLE_METADATA_BLOCKS
}

/// A small set of words (a heading's, a stage's, a vocabulary): a sorted list. For sets of

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Spec;
    use crate::template::Template;

    fn matcher() -> (Matcher, Spec) {
        let spec = Template::builtin().spec;
        (Matcher::new(&spec), spec)
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
