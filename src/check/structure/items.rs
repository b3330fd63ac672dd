//! What the checks read out of a section's text: its items (subsections, bold leads or
//! list items), whether a text gives a time or a condition, and text normalized for
//! phrase matching.

use crate::markdown;
use crate::util::line_of;

/// An item of a list-like section: a subsection, a bold-led paragraph or a list item.
pub(crate) struct Item {
    /// Its first line, as a name for messages.
    pub(crate) title: String,
    /// All its Markdown.
    pub(crate) text: String,
    /// Its first line, counted from the start of the body (1-based).
    pub(crate) line: usize,
}

/// The items of a section body, as `Scan::item_count` counts them: its outermost
/// subsections if there are two or more, else its bold-led paragraphs, else the items of
/// its top-level lists.
pub(crate) fn items(body: &str, level: u8) -> Vec<Item> {
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

/// Time words: a number with a unit ("5 min", "2h", "36-hour"), T+ ("T+30"), or a word
/// that is a time in itself ("immediately", "hourly").
pub(crate) fn has_duration(text: &str) -> bool {
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
pub(crate) fn has_condition(text: &str) -> bool {
    const WORDS: &[&str] = &["if", "when", "unless", "otherwise", "until", "whenever"];
    let lower = text.to_lowercase();
    lower.split(|c: char| !c.is_alphanumeric()).any(|w| WORDS.contains(&w))
        || ["after t+", "before t+", "after t +", "before t +"]
            .iter()
            .any(|p| lower.contains(p))
}

/// Lower case, whitespace collapsed, no spaces around `+` ("T + 4h" reads as "t+4h").
/// This runs over every section of every plan checked, so runs of bytes that stay as
/// they are (lower-case ASCII, digits, punctuation) are copied whole; only white space,
/// `+`, capitals and non-ASCII characters are looked at one by one.
pub(crate) fn normalize(s: &str) -> String {
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
}
