//! What the checks read out of a section's text: its items (subsections, bold leads or
//! list items), whether a text gives a time or a condition, and text normalized for
//! phrase matching.

use std::cell::OnceCell;

use crate::markdown::Scan;
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

/// The items of a section body, cut where `scan` (the body's) says they start.
pub(crate) fn items(body: &str, scan: &Scan) -> Vec<Item> {
    let starts = scan.item_starts();
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
    // Read word by word, up to the first time word.
    let mut toks = lower
        .split(|c: char| !(c.is_alphanumeric() || c == '.'))
        .map(|t| t.trim_matches('.'))
        .filter(|t| !t.is_empty())
        .peekable();
    while let Some(t) = toks.next() {
        let digits = t.trim_end_matches(char::is_alphabetic);
        let unit = &t[digits.len()..];
        let number = !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit() || c == '.');
        if (number && UNITS.contains(&unit))
            || (number && unit.is_empty() && toks.peek().is_some_and(|u| UNITS.contains(u)))
            || WORDS.contains(&t)
        {
            return true;
        }
    }
    false
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

/// A text searched as `normalize` makes it, without making it when it need not be: an
/// ASCII phrase is compared in place, unless the text holds one of the two characters
/// whose lower case is ASCII (the Kelvin sign, 'İ').
pub(crate) struct Normalized<'a> {
    raw: &'a str,
    in_place: bool,
    /// `normalize(raw)`, made once, for phrases that cannot be compared in place.
    whole: OnceCell<String>,
}

impl Normalized<'_> {
    pub(crate) fn new(raw: &str) -> Normalized<'_> {
        Normalized {
            raw,
            in_place: !raw.contains(['\u{212A}', '\u{0130}']),
            whole: OnceCell::new(),
        }
    }

    /// Whether the normalized text contains `phrase`, itself normalized.
    pub(crate) fn contains(&self, phrase: &str) -> bool {
        if self.in_place && phrase.is_ascii() {
            let first = phrase.as_bytes().first().copied();
            let t = self.raw.as_bytes();
            return first.is_none_or(|f| {
                (0..t.len()).any(|i| t[i].to_ascii_lowercase() == f && starts_with_at(self.raw, i, phrase.as_bytes()))
            });
        }
        self.whole.get_or_init(|| normalize(self.raw)).contains(phrase)
    }
}

/// Whether `normalize(&t[i..])` starts with `n` (normalized, ASCII), for `t[i]` ASCII
/// and not white space.
fn starts_with_at(t: &str, mut i: usize, n: &[u8]) -> bool {
    let b = t.as_bytes();
    for &c in n {
        match c {
            // One space stands for any run of white space.
            b' ' => {
                let k = skip_space(t, i);
                if k == i {
                    return false;
                }
                i = k;
            }
            // White space either side of a `+` is dropped.
            b'+' => {
                i = skip_space(t, i);
                if b.get(i) != Some(&b'+') {
                    return false;
                }
                i = skip_space(t, i + 1);
            }
            _ => {
                if b.get(i).map(u8::to_ascii_lowercase) != Some(c) {
                    return false;
                }
                i += 1;
            }
        }
    }
    true
}

/// Past the white space (as `normalize` reads it) at `t[i..]`.
fn skip_space(t: &str, mut i: usize) -> usize {
    let b = t.as_bytes();
    while i < b.len() {
        let len = if b[i].is_ascii() {
            if !(b[i].is_ascii_whitespace() || b[i] == 0x0b) {
                break;
            }
            1
        } else {
            let c = t[i..].chars().next().expect("i is a char boundary");
            if !c.is_whitespace() {
                break;
            }
            c.len_utf8()
        };
        i += len;
    }
    i
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
    fn normalized_text_is_searched_in_place_as_when_made() {
        let texts = [
            "After  T + 4h, the Point of no return",
            "a +b+ c + d",
            "Status\u{a0}Page and the\tSTATUS\n\npage+",
            "x  +c and x c",
            "\u{212A}afka is K",
            "İstanbul istanbul",
            "é point  of\u{2003}no return is T+ 30",
            "\u{b}a\u{b}b",
            "",
        ];
        let phrases = [
            "t+4h",
            "point of no return",
            "a+b+c+d",
            "status page",
            "page+",
            "x c",
            "x+c",
            "kafka",
            "istanbul",
            "no return is t+30",
            "a b",
            "",
            "é",
            "+",
            "d",
        ];
        for t in texts {
            let n = Normalized::new(t);
            for p in phrases {
                let p = normalize(p);
                assert_eq!(n.contains(&p), normalize(t).contains(&p), "{t:?} {p:?}");
            }
        }
    }

    /// `Normalized` compares ASCII phrases in place only when no character lower-cases
    /// to ASCII but these two.
    #[test]
    fn only_two_characters_lower_case_to_ascii() {
        let found: Vec<char> = (0x80..=char::MAX as u32)
            .filter_map(char::from_u32)
            .filter(|c| c.to_lowercase().any(|l| l.is_ascii()))
            .collect();
        assert_eq!(found, ['\u{130}', '\u{212A}']);
    }
}
