//! Small helpers shared by several steps.

use sha2::{Digest, Sha256};

/// `sha256:` and the first 16 hex digits of the digest: short enough for front matter,
/// long enough that two different inputs never collide in practice.
pub fn short_hash(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        // Length-prefix each part so ("ab","c") and ("a","bc") differ.
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    format!("sha256:{}", hex(&h.finalize()[..8]))
}

/// Lower-case hex of `bytes`, two digits each.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// `text` with every occurrence of `secret` replaced by `[REDACTED]`, in any ASCII case (a
/// server may echo a key upper-cased). Borrowed when there is nothing to replace.
pub fn redact_secret<'a>(text: &'a str, secret: &str) -> std::borrow::Cow<'a, str> {
    let (hay, needle) = (text.as_bytes(), secret.as_bytes());
    if needle.is_empty() || hay.len() < needle.len() {
        return text.into();
    }
    let mut out = String::new();
    let (mut from, mut i) = (0, 0);
    while i + needle.len() <= hay.len() {
        // The first byte alone rules out almost every position.
        if hay[i].eq_ignore_ascii_case(&needle[0]) && hay[i..i + needle.len()].eq_ignore_ascii_case(needle) {
            // A match starts and ends on char boundaries: `secret` is a whole str.
            out.push_str(&text[from..i]);
            out.push_str("[REDACTED]");
            i += needle.len();
            from = i;
        } else {
            i += 1;
        }
    }
    if from == 0 {
        return text.into();
    }
    out.push_str(&text[from..]);
    out.into()
}

/// 1-based line number of byte offset `pos` in `text`.
pub fn line_of(text: &str, pos: usize) -> usize {
    let pos = pos.min(text.len());
    // Counted in bytes per chunk, which the compiler turns into vector compares.
    let in_chunk = |c: &[u8]| c.iter().fold(0u8, |n, &b| n + u8::from(b == b'\n')) as usize;
    text.as_bytes()[..pos].chunks(255).map(in_chunk).sum::<usize>() + 1
}

/// Line numbers for offsets that mostly come in increasing order (a parser's events):
/// counts newlines only since the last offset asked, so a document costs one pass.
pub struct Lines<'a> {
    text: &'a [u8],
    pos: usize,
    line: usize,
}

impl<'a> Lines<'a> {
    pub fn new(text: &'a str) -> Self {
        Lines {
            text: text.as_bytes(),
            pos: 0,
            line: 1,
        }
    }

    /// 1-based line of byte offset `pos`, as `line_of` gives it.
    pub fn at(&mut self, pos: usize) -> usize {
        let pos = pos.min(self.text.len());
        if pos < self.pos {
            (self.pos, self.line) = (0, 1);
        }
        self.line += self.text[self.pos..pos].iter().filter(|&&b| b == b'\n').count();
        self.pos = pos;
        self.line
    }
}

/// First `n` characters of `s` on one line, for error messages.
pub fn snippet(s: &str, n: usize) -> String {
    let one_line: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= n {
        one_line
    } else {
        let cut: String = one_line.chars().take(n).collect();
        format!("{cut}…")
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_secret_is_redacted_in_any_ascii_case() {
        let k = "sk-test-xyz";
        assert_eq!(redact_secret("Bearer sk-test-xyz!", k), "Bearer [REDACTED]!");
        assert_eq!(
            redact_secret("SK-TEST-XYZ and Sk-Test-Xyz", k),
            "[REDACTED] and [REDACTED]"
        );
        assert_eq!(
            redact_secret("é sk-test-xyzsk-test-xyz é", k),
            "é [REDACTED][REDACTED] é"
        );
        assert!(matches!(
            redact_secret("nothing here", k),
            std::borrow::Cow::Borrowed(_)
        ));
        assert_eq!(redact_secret("sk-test-xy", k), "sk-test-xy");
    }

    use super::*;

    #[test]
    fn hash_is_stable_and_separates_parts() {
        assert_eq!(short_hash(&[b"ab", b"c"]), short_hash(&[b"ab", b"c"]));
        assert_ne!(short_hash(&[b"ab", b"c"]), short_hash(&[b"a", b"bc"]));
        assert_eq!(short_hash(&[b"x"]).len(), "sha256:".len() + 16);
    }

    #[test]
    fn line_numbers_are_one_based() {
        let t = "a\nb\nc";
        assert_eq!(line_of(t, 0), 1);
        assert_eq!(line_of(t, 2), 2);
        assert_eq!(line_of(t, 4), 3);
        assert_eq!(line_of(t, 99), 3);
        let mut l = Lines::new(t);
        for pos in [0, 2, 4, 99, 2, 0, 3] {
            assert_eq!(l.at(pos), line_of(t, pos), "at {pos}");
        }
        // Past the 255-byte chunks the count is made in, and with 255 newlines in one.
        let long: String = (0..700)
            .map(|i| {
                if i % 3 == 0 || (300..555).contains(&i) {
                    '\n'
                } else {
                    'x'
                }
            })
            .collect();
        for pos in [0, 254, 255, 256, 300, 554, 555, 556, 699, 700] {
            let want = long.as_bytes()[..pos].iter().filter(|&&b| b == b'\n').count() + 1;
            assert_eq!(line_of(&long, pos), want, "at {pos}");
        }
    }

    #[test]
    fn snippet_cuts_and_flattens() {
        assert_eq!(snippet("a\n  b", 10), "a b");
        assert_eq!(snippet("abcdef", 3), "abc…");
    }
}
