//! Structural checks beyond headings, declared per section in the spec (`[[sections.checks]]`):
//! a table with given columns, a subsection per risky stage, a number of items, checkboxes,
//! and phrases that must be mentioned. Nothing here knows about rollback plans.

use crate::markdown::WordSet;

use pulldown_cmark::{Event, Parser, Tag, TagEnd};

use super::{Code, Finding, Migration};
use crate::markdown::{self, Doc, Outline};
use crate::spec::{CheckSpec, Scope, Severity, Spec};
use crate::util::line_of;

/// Run every check of every present section.
pub fn run(spec: &Spec, doc: &Doc, outline: &Outline, m: &Migration) -> Vec<Finding> {
    let mut out = Vec::new();
    // The whole plan as normalized text, made once, when a check first needs it.
    let mut doc_text: Option<String> = None;
    for (i, s) in spec.sections.iter().enumerate() {
        if s.checks.is_empty() {
            continue;
        }
        let Some(loc) = outline.primary(i).filter(|l| !l.empty) else {
            continue; // missing or empty is reported already
        };
        let sec = Section {
            scan: Scan::new(doc.src, loc.body_start, loc.end, loc.level),
            heading: spec.heading(i),
            line: loc.line,
            body: &doc.src[loc.body_start..loc.end],
            body_line: line_of(doc.src, loc.body_start),
            level: loc.level,
        };
        for (check, severity) in s.checks.with_severity() {
            let problems = match check {
                CheckSpec::Table { columns, min_rows, .. } => sec.table(columns, *min_rows),
                CheckSpec::StageCoverage { .. } => {
                    let mut p = sec.stage_coverage(m.stage_list().unwrap_or_default());
                    p.extend(m.agreed().map(|a| sec.stray_stages(&a.stages)).unwrap_or_default());
                    p
                }
                CheckSpec::PointOfNoReturn { .. } => m
                    .agreed()
                    .and_then(|a| super::coherence::point_of_no_return_differs(&sec.scan.text, a))
                    .map(|msg| sec.problem(Code::Coherence, format!("\"{}\": {msg}", sec.heading)))
                    .unwrap_or_default(),
                CheckSpec::Durations { column, .. } => sec.durations(column.as_deref()),
                CheckSpec::Conditionals { .. } => sec.conditionals(),
                CheckSpec::Specific { what, .. } => sec.specific(what, m),
                CheckSpec::Items { what, min, max, .. } => sec.items(what, *min, *max),
                CheckSpec::Checkboxes { min, .. } => sec.checkboxes(*min),
                CheckSpec::Mentions { all, scope, what, .. } => {
                    let text = match scope {
                        Scope::Section => &normalize(&sec.scan.text),
                        Scope::Document => &*doc_text.get_or_insert_with(|| normalize(&doc.text)),
                    };
                    sec.mentions(text, all, *scope, what.as_deref())
                }
            };
            out.extend(problems.into_iter().map(|p| Finding {
                severity: p.severity.unwrap_or(severity),
                code: p.code,
                section: Some(s.id.clone()),
                line: Some(p.line),
                message: p.message,
                stage: p.stage,
            }));
        }
    }
    out
}

/// A present section being checked.
struct Section<'a> {
    scan: Scan,
    /// "2. Rollback decision matrix", for messages.
    heading: String,
    line: usize,
    /// The Markdown under the heading, the line it starts on, and the heading's level.
    body: &'a str,
    body_line: usize,
    level: u8,
}

/// One problem a check found, before it becomes a finding.
struct Problem {
    code: Code,
    line: usize,
    message: String,
    stage: Option<String>,
    /// When the check's own severity does not apply.
    severity: Option<Severity>,
}

impl Section<'_> {
    fn problem(&self, code: Code, message: String) -> Vec<Problem> {
        vec![Problem {
            code,
            line: self.line,
            message,
            stage: None,
            severity: None,
        }]
    }

    /// The rows of the table's `column` that carry no duration; or, without a column, the
    /// items that carry none when they are more than half.
    fn durations(&self, column: Option<&str>) -> Vec<Problem> {
        let (what, lacking): (&str, Vec<String>) = match column {
            Some(col) => {
                let Some((t, i)) = self.scan.tables.iter().find_map(|t| column_of(t, col).map(|i| (t, i))) else {
                    return Vec::new(); // no such column: the table check says so
                };
                let cells = t.cells.iter().filter_map(|row| Some((row.first()?, row.get(i)?)));
                (
                    "rows",
                    cells
                        .filter(|(_, c)| !has_duration(c))
                        .map(|(first, _)| first.clone())
                        .collect(),
                )
            }
            None => {
                let all = items(self.body, self.level);
                let lacking: Vec<String> = all
                    .iter()
                    .filter(|i| !has_duration(&i.text))
                    .map(|i| i.title.clone())
                    .collect();
                if lacking.len() * 2 <= all.len() {
                    return Vec::new();
                }
                ("items", lacking)
            }
        };
        if lacking.is_empty() {
            return Vec::new();
        }
        let msg = format!(
            "\"{}\": {} {what} say no time (\"5 min\", \"T+2h\", \"within 30 minutes\"): {}",
            self.heading,
            lacking.len(),
            quoted_list(&lacking)
        );
        self.problem(Code::Durations, msg)
    }

    /// The section says at least once when to do what: "if", "when", "unless", "after T+…".
    fn conditionals(&self) -> Vec<Problem> {
        if has_condition(self.body) {
            return Vec::new();
        }
        let msg = format!(
            "\"{}\" reads as steps, not decisions: it never says \"if …, then …\" (or when, unless, after T+…)",
            self.heading
        );
        self.problem(Code::Conditionals, msg)
    }

    /// Items that name neither a stage nor anything the summary names; the check's
    /// severity when they are more than half, else a warning. Only when both are known:
    /// the stages alone, or the names alone, say too little to call a scenario generic.
    fn specific(&self, what: &str, m: &Migration) -> Vec<Problem> {
        if m.names().is_empty() || m.stage_list().is_none_or(<[String]>::is_empty) {
            return Vec::new();
        }
        let all = items(self.body, self.level);
        let generic: Vec<&Item> = all.iter().filter(|i| !m.is_named_in(&i.text)).collect();
        if generic.is_empty() {
            return Vec::new();
        }
        let titles: Vec<String> = generic.iter().map(|i| i.title.clone()).collect();
        let msg = format!(
            "\"{}\": {} of {} {what} name no stage or system of this migration: {}",
            self.heading,
            generic.len(),
            all.len(),
            quoted_list(&titles)
        );
        let mut p = self.problem(Code::Specific, msg);
        p[0].line = self.body_line + generic[0].line - 1;
        if generic.len() * 2 <= all.len() {
            p[0].severity = Some(Severity::Warning);
        }
        p
    }

    fn table(&self, columns: &[String], min_rows: usize) -> Vec<Problem> {
        let Some((line, msg)) = table_problem(&self.scan, columns, min_rows) else {
            return Vec::new();
        };
        let mut p = self.problem(Code::Table, format!("\"{}\": {msg}", self.heading));
        p[0].line = line.unwrap_or(self.line);
        p
    }

    /// Stage subsections ("Stage 3: Read cutover") that name no stage the outline agreed on
    /// (the input's, which the outline copies). "Step 1: …" and "Phase 2: …" are a stage's
    /// own steps, not stages.
    fn stray_stages(&self, agreed: &[String]) -> Vec<Problem> {
        if agreed.is_empty() {
            return Vec::new();
        }
        let is_stage = |h: &str| h.trim_start().get(..5).is_some_and(|w| w.eq_ignore_ascii_case("stage"));
        let named: Vec<&str> = self
            .scan
            .subheadings
            .iter()
            .filter(|(_, h)| is_stage(h))
            .filter_map(|(_, h)| stage_title(h))
            .collect();
        let stray: Vec<&str> = named
            .into_iter()
            .filter(|name| {
                let title = titles_from(&[name.to_string()]);
                !agreed
                    .iter()
                    .any(|s| stage_covered(&title, s) || stage_covered(&titles_from(std::slice::from_ref(s)), name))
            })
            .collect();
        if stray.is_empty() {
            return Vec::new();
        }
        let msg = format!(
            "\"{}\" names stages that are not this migration's: {} (its stages: {})",
            self.heading,
            quoted(&stray),
            quoted_list(agreed)
        );
        self.problem(Code::Coherence, msg)
    }

    fn stage_coverage(&self, stages: &[String]) -> Vec<Problem> {
        let titles = titles_of(&self.scan);
        stages
            .iter()
            .filter(|stage| !stage_covered(&titles, stage))
            .map(|stage| Problem {
                code: Code::StageCoverage,
                line: self.line,
                message: format!("stage \"{stage}\" has no subsection in \"{}\"", self.heading),
                stage: Some(stage.clone()),
                severity: None,
            })
            .collect()
    }

    fn items(&self, what: &str, min: Option<usize>, max: Option<usize>) -> Vec<Problem> {
        let n = self.scan.item_count();
        let range = match (min, max) {
            (Some(a), Some(b)) if n < a || n > b => format!("between {a} and {b}"),
            (Some(a), None) if n < a => format!("at least {a}"),
            (None, Some(b)) if n > b => format!("at most {b}"),
            _ => return Vec::new(),
        };
        self.problem(
            Code::Items,
            format!("\"{}\" has {n} {what}; expected {range}", self.heading),
        )
    }

    fn checkboxes(&self, min: usize) -> Vec<Problem> {
        let n = self.scan.checkboxes;
        if n >= min {
            return Vec::new();
        }
        let msg = format!(
            "\"{}\" has {n} checkboxes (\"- [ ] item\"); expected at least {min}",
            self.heading
        );
        self.problem(Code::Checkboxes, msg)
    }

    /// Each entry of `all` (alternatives split by `|`) must appear in `text`, normalized.
    fn mentions(&self, text: &str, all: &[String], scope: Scope, what: Option<&str>) -> Vec<Problem> {
        let absent: Vec<&str> = all
            .iter()
            .filter(|entry| !entry.split('|').any(|alt| text.contains(&normalize(alt))))
            .map(|entry| entry.split('|').next().unwrap_or(entry).trim())
            .collect();
        if absent.is_empty() {
            return Vec::new();
        }
        let heading = &self.heading;
        let msg = match (scope, what) {
            (Scope::Document, Some(w)) => format!("the plan never states {w}"),
            (Scope::Document, None) => format!("the plan never mentions {}", quoted(&absent)),
            (Scope::Section, Some(w)) => format!("\"{heading}\" does not cover {w}: {}", quoted(&absent)),
            (Scope::Section, None) => format!("\"{heading}\" does not mention {}", quoted(&absent)),
        };
        self.problem(Code::Mentions, msg)
    }
}

/// An item of a list-like section: a subsection, a bold-led paragraph or a list item.
struct Item {
    /// Its first line, as a name for messages.
    title: String,
    /// All its Markdown.
    text: String,
    /// Its first line, counted from the start of the body (1-based).
    line: usize,
}

/// The items of a section body, as `Scan::item_count` counts them: its outermost
/// subsections if there are two or more, else its bold-led paragraphs, else the items of
/// its top-level lists.
fn items(body: &str, level: u8) -> Vec<Item> {
    let doc = markdown::parse(body);
    let subs: Vec<usize> = {
        let heads: Vec<&markdown::Heading> = doc.headings.iter().filter(|h| h.top_level && h.level > level).collect();
        let top = heads.iter().map(|h| h.level).min();
        heads.iter().filter(|h| Some(h.level) == top).map(|h| h.start).collect()
    };
    let bold: Vec<usize> = doc
        .blocks
        .iter()
        .filter(|b| b.kind == markdown::BlockKind::Paragraph && body[b.start..].trim_start().starts_with(['*', '_']))
        .map(|b| b.start)
        .collect();
    let starts = if subs.len() >= 2 {
        subs
    } else if bold.len() >= 2 {
        bold
    } else {
        doc.blocks
            .iter()
            .filter(|b| b.kind == markdown::BlockKind::List)
            .flat_map(|b| {
                markdown::list_item_starts(&body[b.start..b.end])
                    .into_iter()
                    .map(move |i| b.start + i)
            })
            .collect()
    };
    starts
        .iter()
        .enumerate()
        .map(|(n, &s)| {
            let end = starts.get(n + 1).copied().unwrap_or(body.len());
            let text = &body[s..end];
            let title = text.lines().next().unwrap_or("").trim();
            Item {
                title: crate::util::snippet(title.trim_matches(['#', '-', '*', '_', ' ', '"', '“', '”']), 60),
                text: text.to_string(),
                line: line_of(body, s),
            }
        })
        .collect()
}

/// The index of the table's column whose header matches one of `column`'s alternatives.
fn column_of(t: &TableInfo, column: &str) -> Option<usize> {
    let alts: Vec<String> = column.split('|').map(|a| a.trim().to_lowercase()).collect();
    t.headers
        .iter()
        .position(|h| alts.iter().any(|a| h.contains(a.as_str())))
}

/// Time words: a number with a unit ("5 min", "2h", "36-hour"), T+ ("T+30"), or a word
/// that is a time in itself ("immediately", "hourly").
fn has_duration(text: &str) -> bool {
    const UNITS: &[&str] = &[
        "s", "sec", "secs", "second", "seconds", "m", "min", "mins", "minute", "minutes", "h", "hr", "hrs", "hour",
        "hours", "d", "day", "days", "week", "weeks", "month", "months", "year", "years", "ms",
    ];
    const WORDS: &[&str] = &[
        "immediate",
        "immediately",
        "instant",
        "instantly",
        "now",
        "asap",
        "hourly",
        "daily",
        "weekly",
        "nightly",
        "overnight",
        "seconds",
        "minutes",
        "hours",
    ];
    let lower = text.to_lowercase();
    if lower.contains("t+") || lower.contains("t +") {
        return true;
    }
    let toks: Vec<&str> = lower
        .split(|c: char| !(c.is_alphanumeric() || c == '.'))
        .map(|t| t.trim_matches('.'))
        .filter(|t| !t.is_empty())
        .collect();
    toks.iter().enumerate().any(|(i, t)| {
        let digits = t.trim_end_matches(char::is_alphabetic);
        let unit = &t[digits.len()..];
        let number = !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit() || c == '.');
        (number && UNITS.contains(&unit))
            || (number && unit.is_empty() && toks.get(i + 1).is_some_and(|u| UNITS.contains(u)))
            || WORDS.contains(t)
    })
}

/// A decision: "if", "when", "unless", "otherwise", "until", or a time that decides
/// ("after T+2h", "before T+30").
fn has_condition(text: &str) -> bool {
    const WORDS: &[&str] = &["if", "when", "unless", "otherwise", "until", "whenever"];
    let lower = text.to_lowercase();
    lower.split(|c: char| !c.is_alphanumeric()).any(|w| WORDS.contains(&w))
        || ["after t+", "before t+", "after t +", "before t +"]
            .iter()
            .any(|p| lower.contains(p))
}

fn quoted_list(v: &[String]) -> String {
    let shown: Vec<String> = v.iter().take(6).map(|s| format!("\"{s}\"")).collect();
    let more = if v.len() > 6 {
        format!(" and {} more", v.len() - 6)
    } else {
        String::new()
    };
    shown.join(", ") + &more
}

fn quoted(v: &[&str]) -> String {
    v.iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(", ")
}

/// Lower case, whitespace collapsed, no spaces around `+` ("T + 4h" reads as "t+4h").
/// This runs over every section of every plan checked, so runs of bytes that stay as
/// they are (lower-case ASCII, digits, punctuation) are copied whole; only white space,
/// `+`, capitals and non-ASCII characters are looked at one by one.
fn normalize(s: &str) -> String {
    let bytes = s.as_bytes();
    let plain = |b: u8| b.is_ascii() && !b.is_ascii_uppercase() && !b.is_ascii_whitespace() && b != b'+' && b != 0x0b;
    let mut out: Vec<u8> = Vec::with_capacity(s.len());
    // `space`: white space seen since the last character; `after_plus`: that was a `+`.
    let (mut space, mut after_plus) = (false, false);
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && plain(bytes[i]) {
            i += 1;
        }
        if i > start {
            if space && !after_plus {
                out.push(b' ');
            }
            out.extend_from_slice(&bytes[start..i]);
            (space, after_plus) = (false, false);
            if i == bytes.len() {
                break;
            }
        }
        let b = bytes[i];
        let c = if b.is_ascii() {
            b as char
        } else {
            s[i..].chars().next().expect("i is a char boundary")
        };
        i += c.len_utf8();
        if b.is_ascii_whitespace() || b == 0x0b || (!b.is_ascii() && c.is_whitespace()) {
            space = !out.is_empty();
            continue;
        }
        if c == '+' {
            after_plus = true;
        } else {
            if space && !after_plus {
                out.push(b' ');
            }
            after_plus = false;
        }
        space = false;
        if b.is_ascii() {
            out.push(b.to_ascii_lowercase());
        } else {
            let mut buf = [0u8; 4];
            for l in c.to_lowercase() {
                out.extend_from_slice(l.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    String::from_utf8(out).expect("built from whole chars")
}

/// Plain text of Markdown, as `Doc::text` and `Scan::text` build it in their own passes.
#[cfg(test)]
fn plain_text(md: &str) -> String {
    let mut out = String::new();
    for ev in Parser::new_ext(md, markdown::options()) {
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

struct TableInfo {
    line: usize,
    headers: Vec<String>,
    rows: usize,
    /// The text of each body row's cells.
    cells: Vec<Vec<String>>,
}

/// What a section holds, read once.
struct Scan {
    tables: Vec<TableInfo>,
    /// Headings below the section's own level, with their levels.
    subheadings: Vec<(u8, String)>,
    /// Paragraphs that open with bold text: "**What if …?**".
    bold_leads: Vec<String>,
    list_items: usize,
    checkboxes: usize,
    text: String,
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
}

impl Scan {
    fn new(src: &str, start: usize, end: usize, level: u8) -> Scan {
        let body = &src[start..end];
        let mut st = ScanState {
            scan: Scan {
                tables: Vec::new(),
                subheadings: Vec::new(),
                bold_leads: Vec::new(),
                list_items: 0,
                checkboxes: 0,
                text: String::with_capacity(body.len()),
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
        };
        for (ev, range) in Parser::new_ext(body, markdown::options()).into_offset_iter() {
            let brk = matches!(ev, Event::SoftBreak | Event::HardBreak | Event::End(_));
            st.event(ev, range.start);
            // The section's plain text, as `plain_text` makes it, from the same parse.
            if brk {
                st.scan.text.push(' ');
            }
        }
        st.scan
    }

    /// Items of a list-like section: its subsections if it has some (the outermost ones:
    /// "#### Plan" under each "### What if …?" is part of its item), else its bold-led
    /// paragraphs, else its top-level list items.
    fn item_count(&self) -> usize {
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
}

impl ScanState<'_> {
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

fn table_problem(scan: &Scan, columns: &[String], min_rows: usize) -> Option<(Option<usize>, String)> {
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
fn phrase(s: &str) -> Vec<String> {
    let split: String = s.chars().map(|c| if c.is_alphanumeric() { c } else { ' ' }).collect();
    markdown::tokens(&split)
}

/// Significant words of a phrase: forms folded, neighbours joined when `vocab` knows them
/// as one word ("cut over" → "cutover"), generic words ("stage", "phase") and numbers dropped.
fn stage_words_from(tokens: &[String], vocab: &WordSet) -> Vec<String> {
    // The stems of the generic words, made once.
    static GENERIC: std::sync::LazyLock<Vec<String>> =
        std::sync::LazyLock::new(|| STAGE_WORDS.iter().map(|s| markdown::stem(s)).collect());
    markdown::join_tokens(tokens, vocab)
        .into_iter()
        .filter(|w| !GENERIC.contains(w) && !w.chars().all(|c| c.is_ascii_digit()))
        .collect()
}

/// A subsection title's tokens and its own words, worked out once per section rather than
/// once per stage.
struct Title {
    tokens: Vec<String>,
    vocab: WordSet,
}

/// The name in a stage subsection's title: "Stage 3: Read cutover" → "Read cutover".
fn stage_title(h: &str) -> Option<&str> {
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
fn titles_from(names: &[String]) -> Vec<Title> {
    let none = WordSet::default();
    names
        .iter()
        .map(|n| {
            let tokens = phrase(n);
            let vocab = stage_words_from(&tokens, &none).into_iter().collect();
            Title { tokens, vocab }
        })
        .collect()
}

fn titles_of(scan: &Scan) -> Vec<Title> {
    let none = WordSet::default();
    let subheadings = scan.subheadings.iter().map(|(_, h)| h);
    subheadings
        .chain(&scan.bold_leads)
        .map(|t| {
            let tokens = phrase(t);
            let vocab = stage_words_from(&tokens, &none).into_iter().collect();
            Title { tokens, vocab }
        })
        .collect()
}

/// A stage is covered by a subsection (a subheading or a bold lead) that carries more than
/// half of its significant words ("Read cutover" does not cover "Write cutover"). Word
/// forms fold ("Backfilling new columns" covers "Backfill the new column"), and a word one
/// side writes as two is joined ("Cutting over reads" covers "Read cutover").
fn stage_covered(titles: &[Title], stage: &str) -> bool {
    let tokens = phrase(stage);
    let alone = stage_words_from(&tokens, &WordSet::default());
    if alone.is_empty() {
        return true;
    }
    let stage_vocab: WordSet = alone.into_iter().collect();
    titles.iter().any(|t| {
        let want = stage_words_from(&tokens, &t.vocab);
        let have = stage_words_from(&t.tokens, &stage_vocab);
        let need = want.len() / 2 + 1;
        want.iter().filter(|w| have.contains(w)).count() >= need
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_lowercases_collapses_and_joins_plus() {
        assert_eq!(normalize("  After  T + 4h,\n the\tPoint "), "after t+4h, the point");
        assert_eq!(normalize("a +b+ c + d"), "a+b+c+d");
        assert_eq!(normalize(""), "");
        // The one-pass version agrees with the obvious one.
        for s in [
            "X  +  Y",
            " +a",
            "b+ ",
            "ÄB  C\r\nD",
            "T+ 30 min  after T +1h",
            "ab+cd  ef+ gh +ij",
            "é\u{a0}É\u{2003}x  ",
            "\u{b}a\u{b}b",
            "İstanbul ΣΑ",
        ] {
            let slow = s.to_lowercase().split_whitespace().collect::<Vec<_>>().join(" ");
            assert_eq!(normalize(s), slow.replace(" +", "+").replace("+ ", "+"), "{s:?}");
        }
    }

    #[test]
    fn the_document_text_is_the_plain_text_of_the_body() {
        let md = "---\nname: x\n---\n# Title\n\nSome *text*\nand more.\n\n| a | b |\n|---|---|\n| 1 | 2 |\n";
        let doc = markdown::parse(md);
        assert_eq!(doc.text, plain_text(&md[doc.body_start..]));
        assert!(!doc.text.contains("name: x"));
    }

    #[test]
    fn the_scan_text_is_the_plain_text_of_the_section() {
        let md =
            "Intro **bold** and `code`.\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n- [ ] one\n- two\n\n### Sub\n\ntext\n";
        let scan = Scan::new(md, 0, md.len(), 2);
        assert_eq!(scan.text, plain_text(md));
    }
    use crate::check::Checker;
    use crate::spec::Severity;
    use crate::template::Template;

    fn findings(md: &str, stages: Option<&[String]>) -> Vec<Finding> {
        let c = Checker::new(&Template::builtin());
        c.check(md, &Migration::new(stages.map(<[String]>::to_vec), None))
            .1
            .findings
            .into_iter()
            .filter(|f| !f.code.is_presence())
            // The style checks (time bounds, decisions) have their own tests below; these
            // skeleton sections ("x", "steps") would trip them.
            .filter(|f| !matches!(f.code, Code::Durations | Code::Conditionals))
            .collect()
    }

    fn codes(md: &str, stages: Option<&[String]>) -> Vec<String> {
        findings(md, stages)
            .into_iter()
            .map(|f| format!("{}:{}", f.code, f.section.unwrap_or_default()))
            .collect()
    }

    const GOOD_MATRIX: &str = "## 2. Rollback decision matrix\n\n| Problem type | Decision authority | Time to decide | Default action |\n|---|---|---|---|\n| Critical bug | IC | 5 min | Roll back |\n| Perf > 50% | IC + TL | 15 min | Roll back |\n| Data integrity | IC + DBE | Immediate | Roll back |\n| Internal bug | TL | 30 min | Fix forward |\n";

    #[test]
    fn decision_matrix_table() {
        assert!(codes(GOOD_MATRIX, None).is_empty(), "{:?}", codes(GOOD_MATRIX, None));
        let no_table = "## 2. Rollback decision matrix\n\nThe IC decides.\n";
        let f = findings(no_table, None);
        assert_eq!(f[0].code, Code::Table);
        assert!(f[0].message.contains("no table"));
        let few_cols = "## 2. Rollback decision matrix\n\n| Problem | Action |\n|---|---|\n| a | b |\n| a | b |\n| a | b |\n| a | b |\n";
        let f = findings(few_cols, None);
        assert!(
            f[0].message.contains("\"Decision authority\", \"Time to decide\""),
            "{}",
            f[0].message
        );
        assert_eq!(f[0].line, Some(3));
        let few_rows = GOOD_MATRIX.lines().take(6).collect::<Vec<_>>().join("\n");
        assert!(findings(&few_rows, None)[0].message.contains("2 rows"));
        // Both problems of one table in one finding.
        let both = "## 2. Rollback decision matrix\n\n| Problem | Action |\n|---|---|\n| a | b |\n";
        let f = findings(both, None);
        assert_eq!(f.len(), 1);
        assert!(
            f[0].message
                .ends_with("\"Time to decide\", and it has 1 row; expected at least 4"),
            "{}",
            f[0].message
        );
    }

    #[test]
    fn stage_coverage_is_tolerant_and_names_the_stage() {
        use crate::input::parse_stages;
        let stages =
            parse_stages("Schema conversion and backfill (high); CDC dual-running (medium); Write cutover (high)");
        assert_eq!(
            stages,
            ["Schema conversion and backfill", "CDC dual-running", "Write cutover"]
        );
        let md = "## 3. Rollback by stage\n\n### Stage 1: schema conversions & backfills\n\nx\n\n**CDC / dual running**\n\ny\n\n### Read cutover\n\nz\n";
        let f = findings(md, Some(&stages));
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].stage.as_deref(), Some("Write cutover"));
        assert!(f[0].message.contains("\"Write cutover\""));
        // Word forms and compounds written apart.
        let md = "## 3. Rollback by stage\n\n### Stage 3 — Validating the data\n\nx\n\n### Cutting over reads\n\ny\n\n**Migrated users.** z\n\n### Re-indexing\n\nw\n";
        let stages = parse_stages("Validate data; Read cutover; Migrate users; Reindex; Writing cutover; Drop data");
        let f = findings(md, Some(&stages));
        let uncovered: Vec<_> = f.iter().filter_map(|f| f.stage.as_deref()).collect();
        assert_eq!(uncovered, ["Writing cutover", "Drop data"], "{f:?}");
        // Without known stages there is nothing to cover.
        assert!(findings(md, None).is_empty());
    }

    #[test]
    fn what_if_counts_subsections_bold_leads_or_items() {
        let bold = |n: usize| {
            let mut s = "## 9. Rollback what-if scenarios\n\n".to_string();
            for i in 0..n {
                s.push_str(&format!("**\"What if case {i}?\"**\nPlan: do x.\n\n"));
            }
            s
        };
        assert!(codes(&bold(5), None).is_empty());
        assert_eq!(codes(&bold(4), None), ["items:what-if"]);
        assert_eq!(codes(&bold(11), None), ["items:what-if"]);
        let heads: String = "## 9. What-if scenarios\n\n".to_string()
            + &(0..6)
                .map(|i| format!("### What if {i}?\n\n- step\n- step\n\n"))
                .collect::<String>();
        assert!(codes(&heads, None).is_empty(), "{:?}", codes(&heads, None));
        // Headings inside a scenario are part of it.
        let nested = |n: usize| {
            "## 9. What-if scenarios\n\n".to_string()
                + &(0..n)
                    .map(|i| format!("### What if {i}?\n\n#### Plan\n\nx\n\n#### Owner\n\ny\n\n"))
                    .collect::<String>()
        };
        assert!(codes(&nested(6), None).is_empty(), "{:?}", codes(&nested(6), None));
        assert!(findings(&nested(4), None)[0].message.contains("has 4 scenarios"));
        let list = "## 9. What-if scenarios\n\n1. What if a?\n2. What if b?\n3. What if c?\n";
        assert!(findings(list, None)[0].message.contains("has 3 scenarios"));
    }

    #[test]
    fn checklist_needs_checkboxes() {
        let ok = "## 7. Post-rollback checklist\n\n- [ ] a\n- [ ] b\n- [x] c\n- [ ] d\n- [ ] e\n";
        assert!(codes(ok, None).is_empty());
        let plain = "## 7. Post-rollback checklist\n\n- a\n- b\n";
        assert_eq!(codes(plain, None), ["checkboxes:checklist"]);
    }

    #[test]
    fn communication_audiences_and_point_of_no_return() {
        let ok = "## 6. Communication during rollback\n\n**Internal (Slack):** x\n\n**Status page:** y\n\n**Customer email:** z\n\n## 10. The hard truth about rollback\n\nAfter T + 4h, rollback loses data.\n";
        assert!(codes(ok, None).is_empty(), "{:?}", codes(ok, None));
        let bad = "## 6. Communication during rollback\n\nTell people.\n\n## 10. The hard truth about rollback\n\nIt is hard.\n";
        let f = findings(bad, None);
        assert!(
            f.iter()
                .any(|f| f.section.as_deref() == Some("communication") && f.message.contains("\"status page\"")),
            "{f:?}"
        );
        assert!(
            f.iter()
                .any(|f| f.section.as_deref() == Some("hard-truth") && f.message.contains("point of no return")),
            "{f:?}"
        );
    }

    #[test]
    fn checks_at_their_bounds() {
        let boxes =
            |n: usize| "## 7. Post-rollback checklist\n\n".to_string() + &"- [ ] item\n".repeat(n - 1) + "* [x] done\n";
        assert!(codes(&boxes(5), None).is_empty());
        let f = findings(&boxes(4), None);
        assert_eq!(codes(&boxes(4), None), ["checkboxes:checklist"]);
        assert!(f[0].message.contains("has 4 checkboxes"), "{}", f[0].message);
        let items = |n: usize| {
            "## 9. Rollback what-if scenarios\n\n".to_string()
                + &(1..=n)
                    .map(|i| format!("{i}. What if {i}? Plan.\n"))
                    .collect::<String>()
        };
        assert!(codes(&items(10), None).is_empty());
        assert!(codes(&items(5), None).is_empty());
        assert_eq!(codes(&items(11), None), ["items:what-if"]);
        // Any alternative of an entry will do: Slack is internal; "point of no return is T+".
        let ok = "## 6. Communication during rollback\n\nSlack first, then the STATUS PAGE, then each customer.\n\n## 10. The hard truth about rollback\n\nOur point of no return is T+45min.\n";
        assert!(codes(ok, None).is_empty(), "{:?}", codes(ok, None));
        // "before T+" is no point of no return.
        let before = "## 10. The hard truth about rollback\n\nRoll back before T+2h.\n";
        assert_eq!(codes(before, None), ["mentions:hard-truth"]);
    }

    #[test]
    fn findings_carry_severity_and_the_line_of_their_section() {
        let md = "# Plan\n\n## 2. Rollback decision matrix\n\nIC decides.\n\n## 6. Communication during rollback\n\nTell the team.\n\n## 7. Post-rollback checklist\n\n- a\n\n## 9. What-if scenarios\n\n- What if?\n\n## 10. The hard truth about rollback\n\nHard.\n";
        let got: Vec<(String, Severity, Option<usize>)> = findings(md, None)
            .into_iter()
            .map(|f| (f.section.unwrap(), f.severity, f.line))
            .collect();
        assert_eq!(
            got,
            [
                ("decision-matrix".to_string(), Severity::Error, Some(3)),
                ("communication".to_string(), Severity::Warning, Some(7)),
                ("checklist".to_string(), Severity::Error, Some(11)),
                ("what-if".to_string(), Severity::Error, Some(15)),
                ("hard-truth".to_string(), Severity::Error, Some(19)),
            ]
        );
    }

    /// The check kinds as a custom template might declare them, with their defaults.
    #[test]
    fn check_kinds_from_a_custom_spec() {
        let spec: Spec = toml::from_str(
            r#"
            name = "runbook"
            files = { user = "user.md" }
            inputs = { summary = "s", stages = "t" }
            [[sections]]
            id = "owners"
            title = "Owners"
            checks = [{ kind = "table", columns = ["Team|squad", "Pager"] }]
            [[sections]]
            id = "steps"
            title = "Steps"
            checks = [{ kind = "items", what = "steps", min = 3 }, { kind = "mentions", all = ["rollback"] }]
            [[sections]]
            id = "notes"
            title = "Notes"
            checks = [{ kind = "items", what = "notes", max = 2, severity = "warning" },
                      { kind = "mentions", all = ["DRI|on-call"], scope = "document" }]
            "#,
        )
        .unwrap();
        let c = Checker::from_spec(spec);
        let run = |md: &str| -> Vec<(String, String, Severity)> {
            c.check(md, &Migration::default())
                .1
                .findings
                .into_iter()
                .map(|f| (f.section.unwrap_or_default(), f.message, f.severity))
                .collect()
        };
        let good = "## Owners\n\n| Squad | Pager |\n|---|---|\n| db | #db |\n\n## Steps\n\n1. a\n2. b\n3. rollback\n\n## Notes\n\n- the DRI signs off\n";
        assert!(run(good).is_empty(), "{:?}", run(good));
        let bad =
            "## Owners\n\n| Squad | Phone |\n|---|---|\n| db | 1 |\n\n## Steps\n\n1. a\n\n## Notes\n\n- x\n- y\n- z\n";
        let want = |id: &str, msg: &str, sev: Severity| (id.to_string(), msg.to_string(), sev);
        assert_eq!(
            run(bad),
            [
                want(
                    "owners",
                    "\"1. Owners\": the table has no column for \"Pager\"",
                    Severity::Error
                ),
                want(
                    "steps",
                    "\"2. Steps\" has 1 steps; expected at least 3",
                    Severity::Error
                ),
                want("steps", "\"2. Steps\" does not mention \"rollback\"", Severity::Error),
                want(
                    "notes",
                    "\"3. Notes\" has 3 notes; expected at most 2",
                    Severity::Warning
                ),
                want("notes", "the plan never mentions \"DRI\"", Severity::Error),
            ]
        );
    }
}
