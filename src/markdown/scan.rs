//! One pass over a section's Markdown that reads what the structural checks look at: its
//! tables (header and cells), subheadings, bold-led paragraphs, list items, checkboxes, and
//! its plain text.

use pulldown_cmark::{Event, Tag, TagEnd};

use crate::util::line_of;

/// A table of the section.
pub(crate) struct TableInfo {
    pub(crate) line: usize,
    /// The header's cells, in lower case.
    pub(crate) headers: Vec<String>,
    /// How many rows its body has.
    pub(crate) rows: usize,
    /// The text of each body row's cells.
    pub(crate) cells: Vec<Vec<String>>,
}

/// What a section holds, read once.
pub(crate) struct Scan {
    pub(crate) tables: Vec<TableInfo>,
    /// Headings below the section's own level, with their levels.
    pub(crate) subheadings: Vec<(u8, String)>,
    /// Paragraphs that open with bold text: "**What if …?**".
    pub(crate) bold_leads: Vec<String>,
    pub(crate) list_items: usize,
    pub(crate) checkboxes: usize,
    /// The section's plain text, made as `Doc::text` is.
    pub(crate) text: String,
    /// Where the body's items may start (offsets in the body), for `item_starts`.
    starts: ItemStarts,
}

/// The blocks outside any other block that can start an item, as `markdown::parse` of
/// the body would find them: subheadings (with their levels), paragraphs that open with
/// `*` or `_`, and the items of lists.
#[derive(Default)]
struct ItemStarts {
    headings: Vec<(u8, usize)>,
    bold: Vec<usize>,
    list_items: Vec<usize>,
}

/// `Scan::new`'s state between parser events.
struct ScanState<'a> {
    scan: Scan,
    src: &'a str,
    /// Where the body starts in `src`, and the section's heading level.
    start: usize,
    level: u8,
    depth_list: usize,
    in_quote: usize,
    heading: Option<(u8, String)>,
    table: Option<TableInfo>,
    in_head: bool,
    cell: Option<String>,
    /// The next event is the first inside a top-level paragraph.
    para_first: bool,
    bold: Option<String>,
    /// How many blocks and headings are open, counted as `markdown::parse` counts them.
    depth: usize,
}

impl Scan {
    /// Reads `src[start..end]`, the body of a section whose heading has level `level`.
    #[cfg(test)]
    pub(crate) fn new(src: &str, start: usize, end: usize, level: u8) -> Scan {
        let events = pulldown_cmark::Parser::new_ext(&src[start..end], super::options()).into_offset_iter();
        Scan::from_events(src, start, end, level, events.map(|(ev, r)| (ev, r.start)))
    }

    /// `new` over the events of `doc`'s own parse that start inside `start..end`, a section
    /// body between two of its headings: the same blocks, read without parsing them again.
    pub(crate) fn in_doc(doc: &super::Doc, start: usize, end: usize, level: u8) -> Scan {
        let inside = doc.events.iter().filter(|(_, r)| (start..end).contains(&r.start));
        let events = inside.map(|(ev, r)| (ev.clone(), r.start - start));
        Scan::from_events(doc.src, start, end, level, events)
    }

    /// Reads a section body from its events, each with its offset in the body.
    fn from_events<'e>(
        src: &str,
        start: usize,
        end: usize,
        level: u8,
        events: impl Iterator<Item = (Event<'e>, usize)>,
    ) -> Scan {
        let body = &src[start..end];
        let mut st = ScanState {
            scan: Scan {
                tables: Vec::new(),
                subheadings: Vec::new(),
                bold_leads: Vec::new(),
                list_items: 0,
                checkboxes: 0,
                text: String::with_capacity(body.len()),
                starts: ItemStarts::default(),
            },
            src,
            start,
            level,
            depth_list: 0,
            in_quote: 0,
            heading: None,
            table: None,
            in_head: false,
            cell: None,
            para_first: false,
            bold: None,
            depth: 0,
        };
        for (ev, at) in events {
            let brk = matches!(ev, Event::SoftBreak | Event::HardBreak | Event::End(_));
            st.item_start(&ev, at);
            st.event(ev, at);
            // The section's plain text, as `Doc::text` is made, from the same parse.
            if brk {
                st.scan.text.push(' ');
            }
        }
        st.scan
    }

    /// Items of a list-like section: its subsections if it has some (the outermost ones:
    /// "#### Plan" under each "### What if …?" is part of its item), else its bold-led
    /// paragraphs, else its top-level list items.
    pub(crate) fn item_count(&self) -> usize {
        let top = self.subheadings.iter().map(|(l, _)| *l).min();
        let subsections = self.subheadings.iter().filter(|(l, _)| Some(*l) == top).count();
        if subsections >= 2 {
            subsections
        } else if self.bold_leads.len() >= 2 {
            self.bold_leads.len()
        } else {
            self.list_items
        }
    }

    /// Where the body's items start, as `check`'s item splitting reads them: its
    /// outermost subsections outside other blocks if there are two or more, else its
    /// paragraphs that open with `*` or `_`, else the items of its top-level lists.
    pub(crate) fn item_starts(&self) -> Vec<usize> {
        let s = &self.starts;
        let top = s.headings.iter().map(|(l, _)| *l).min();
        let subs: Vec<usize> = s
            .headings
            .iter()
            .filter(|(l, _)| Some(*l) == top)
            .map(|(_, at)| *at)
            .collect();
        if subs.len() >= 2 {
            subs
        } else if s.bold.len() >= 2 {
            s.bold.clone()
        } else {
            s.list_items.clone()
        }
    }
}

impl ScanState<'_> {
    /// Notes where an item may start, and keeps `depth` as `markdown::parse` keeps it.
    fn item_start(&mut self, ev: &Event, at: usize) {
        let starts = &mut self.scan.starts;
        match ev {
            Event::Start(Tag::Heading { level: l, .. }) => {
                if self.depth == 0 && (*l as u8) > self.level {
                    starts.headings.push((*l as u8, at));
                }
                self.depth += 1;
            }
            Event::End(TagEnd::Heading(_)) => self.depth -= 1,
            Event::Start(tag) if super::is_block(tag) => {
                match tag {
                    Tag::Paragraph
                        if self.depth == 0 && self.src[self.start + at..].trim_start().starts_with(['*', '_']) =>
                    {
                        starts.bold.push(at)
                    }
                    Tag::Item if self.depth == 1 => starts.list_items.push(at),
                    _ => {}
                }
                self.depth += 1;
            }
            Event::End(tag) if super::is_block_end(tag) => self.depth = self.depth.saturating_sub(1),
            _ => {}
        }
    }

    fn event(&mut self, ev: Event, at: usize) {
        let was_para_first = std::mem::replace(&mut self.para_first, false);
        match ev {
            Event::Start(Tag::Heading { level: l, .. }) if (l as u8) > self.level => {
                self.heading = Some((l as u8, String::new()))
            }
            Event::End(TagEnd::Heading(_)) => self.scan.subheadings.extend(self.heading.take()),
            Event::Start(Tag::Table(_)) => {
                self.table = Some(TableInfo {
                    line: line_of(self.src, self.start + at),
                    headers: Vec::new(),
                    rows: 0,
                    cells: Vec::new(),
                })
            }
            Event::End(TagEnd::Table) => self.scan.tables.extend(self.table.take()),
            Event::Start(Tag::TableHead) => self.in_head = true,
            Event::End(TagEnd::TableHead) => self.in_head = false,
            Event::Start(Tag::TableRow) => self.table.iter_mut().for_each(|t| t.cells.push(Vec::new())),
            Event::End(TagEnd::TableRow) => self.table.iter_mut().for_each(|t| t.rows += 1),
            Event::Start(Tag::TableCell) => self.cell = Some(String::new()),
            Event::End(TagEnd::TableCell) => self.end_cell(),
            Event::Start(Tag::List(_)) => self.depth_list += 1,
            Event::End(TagEnd::List(_)) => self.depth_list -= 1,
            Event::Start(Tag::Item) if self.depth_list == 1 && self.in_quote == 0 => self.scan.list_items += 1,
            Event::Start(Tag::BlockQuote(_)) => self.in_quote += 1,
            Event::End(TagEnd::BlockQuote(_)) => self.in_quote -= 1,
            Event::TaskListMarker(_) => self.scan.checkboxes += 1,
            Event::Start(Tag::Paragraph) if self.depth_list == 0 && self.in_quote == 0 => self.para_first = true,
            Event::Start(Tag::Strong) if was_para_first => self.bold = Some(String::new()),
            Event::End(TagEnd::Strong) => self.scan.bold_leads.extend(self.bold.take()),
            Event::Text(t) | Event::Code(t) => {
                let heading = self.heading.as_mut().map(|(_, h)| h);
                for buf in [heading, self.cell.as_mut(), self.bold.as_mut()].into_iter().flatten() {
                    buf.push_str(&t);
                }
                self.scan.text.push_str(&t);
            }
            _ => {}
        }
    }

    fn end_cell(&mut self) {
        let (Some(c), Some(t)) = (self.cell.take(), self.table.as_mut()) else {
            return;
        };
        if self.in_head {
            t.headers.push(c.to_lowercase());
        } else if let Some(row) = t.cells.last_mut() {
            row.push(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::markdown::testing::plain_text;

    #[test]
    fn the_scan_text_is_the_plain_text_of_the_section() {
        let md =
            "Intro **bold** and `code`.\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n- [ ] one\n- two\n\n### Sub\n\ntext\n";
        let scan = Scan::new(md, 0, md.len(), 2);
        assert_eq!(scan.text, plain_text(md));
    }

    /// The item starts read in the scan's pass are those a parse of the body gives.
    #[test]
    fn item_starts_are_those_of_the_body_parse() {
        let by_parse = |body: &str, level: u8| -> Vec<usize> {
            let doc = crate::markdown::parse(body);
            let heads: Vec<_> = doc.headings.iter().filter(|h| h.top_level && h.level > level).collect();
            let top = heads.iter().map(|h| h.level).min();
            let subs: Vec<usize> = heads.iter().filter(|h| Some(h.level) == top).map(|h| h.start).collect();
            let blocks = |k| doc.blocks.iter().filter(move |b| b.kind == k);
            let bold: Vec<usize> = blocks(crate::markdown::BlockKind::Paragraph)
                .filter(|b| body[b.start..].trim_start().starts_with(['*', '_']))
                .map(|b| b.start)
                .collect();
            let items = blocks(crate::markdown::BlockKind::List).flat_map(|b| {
                crate::markdown::list_item_starts(&body[b.start..b.end])
                    .into_iter()
                    .map(move |i| b.start + i)
            });
            if subs.len() >= 2 {
                subs
            } else if bold.len() >= 2 {
                bold
            } else {
                items.collect()
            }
        };
        for body in [
            "\n### A\n\nx\n\n#### A1\n\n### B\n\n> ### quoted\n",
            "\n**What if a?** x\n\n_b_ y\n\n- **c** z\n",
            "\n1. a\n   - a1\n2. b\n\n> - quoted\n\ntext\n\n* c\n* d\n",
            "\n- [ ] a\n- [x] b\n\n### Only one\n",
        ] {
            let scan = Scan::new(body, 0, body.len(), 2);
            assert_eq!(scan.item_starts(), by_parse(body, 2), "{body:?}");
        }
    }

    /// What a check reads of a scan, to compare two.
    fn seen(s: &Scan) -> String {
        let tables: Vec<_> = s
            .tables
            .iter()
            .map(|t| (t.line, &t.headers, t.rows, &t.cells))
            .collect();
        format!(
            "{tables:?} {:?} {:?} {} {} {:?} {:?}",
            s.subheadings,
            s.bold_leads,
            s.list_items,
            s.checkboxes,
            s.text,
            s.item_starts()
        )
    }

    /// A section read from the plan's own parse is read as a parse of its body alone reads
    /// it, over every section of every Markdown fixture.
    #[test]
    fn a_section_from_the_documents_parse_reads_as_its_body_alone() {
        let checker = crate::check::testing::checker();
        let mut files = Vec::new();
        let mut dirs = vec![std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")];
        while let Some(dir) = dirs.pop() {
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    dirs.push(p);
                } else if p.extension().is_some_and(|x| x == "md") {
                    files.extend(std::fs::read_to_string(p).ok());
                }
            }
        }
        let mut sections = 0;
        for md in &files {
            let doc = crate::markdown::parse(md);
            let outline = checker.outline(md);
            for l in outline.found.iter().filter(|l| !l.empty) {
                let alone = Scan::new(md, l.body_start, l.end, l.level);
                let in_doc = Scan::in_doc(&doc, l.body_start, l.end, l.level);
                assert_eq!(seen(&in_doc), seen(&alone), "{}", &md[l.body_start..l.end]);
                sections += 1;
            }
        }
        assert!(sections > 300, "{sections} sections");
    }
}
