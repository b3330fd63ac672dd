//! Server-sent events, as chat-completion streams use them: `data:` lines, blank-line
//! dispatch, `:` comments, LF / CRLF / CR line endings, and a flush at EOF because
//! llama-server may send `[DONE]` with no trailing blank line. Works on bytes, so a
//! UTF-8 character split across two network chunks is never mangled.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The `event:` field, if any (some servers send `event: error`).
    pub event: Option<String>,
    pub data: String,
}

#[derive(Default)]
pub struct Parser {
    line: Vec<u8>,
    data: Vec<u8>,
    has_data: bool,
    event: Option<String>,
    last_was_cr: bool,
}

impl Parser {
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<Event>) {
        for &b in chunk {
            match b {
                b'\n' if self.last_was_cr => self.last_was_cr = false, // the LF of a CRLF
                b'\n' | b'\r' => {
                    self.last_was_cr = b == b'\r';
                    self.end_line(out);
                }
                _ => {
                    self.last_was_cr = false;
                    self.line.push(b);
                }
            }
        }
    }

    /// End of input: a pending line and a pending event are dispatched.
    pub fn finish(&mut self, out: &mut Vec<Event>) {
        if !self.line.is_empty() {
            self.end_line(out);
        }
        self.dispatch(out);
    }

    fn end_line(&mut self, out: &mut Vec<Event>) {
        let line = std::mem::take(&mut self.line);
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        if line[0] == b':' {
            return; // comment / keep-alive
        }
        let (field, value) = match line.iter().position(|&c| c == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (&line[..], &b""[..]),
        };
        match field {
            b"data" => {
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
            b"event" => self.event = Some(String::from_utf8_lossy(value).into_owned()),
            _ => {} // id, retry: not used by chat completions
        }
    }

    fn dispatch(&mut self, out: &mut Vec<Event>) {
        if self.has_data {
            out.push(Event {
                event: self.event.take(),
                data: String::from_utf8_lossy(&std::mem::take(&mut self.data)).into_owned(),
            });
        }
        self.has_data = false;
        self.event = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_chunks(chunks: &[&[u8]]) -> Vec<String> {
        let mut p = Parser::default();
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c, &mut out);
        }
        p.finish(&mut out);
        out.into_iter().map(|e| e.data).collect()
    }

    #[test]
    fn lf_crlf_and_cr() {
        assert_eq!(parse_chunks(&[b"data: a\n\ndata: b\n\n"]), ["a", "b"]);
        assert_eq!(parse_chunks(&[b"data: a\r\n\r\ndata: b\r\n\r\n"]), ["a", "b"]);
        assert_eq!(parse_chunks(&[b"data: a\r\rdata: b\r\r"]), ["a", "b"]);
    }

    #[test]
    fn crlf_split_across_chunks() {
        assert_eq!(parse_chunks(&[b"data: a\r", b"\n\r", b"\ndata: b\r\n\r\n"]), ["a", "b"]);
    }

    #[test]
    fn comments_multiline_and_no_space() {
        assert_eq!(
            parse_chunks(&[b": keep-alive\n\ndata:x\ndata: y\n\nid: 3\nretry: 10\n\n"]),
            ["x\ny"]
        );
    }

    #[test]
    fn flush_at_eof_without_blank_line() {
        assert_eq!(parse_chunks(&[b"data: {}\n\ndata: [DONE]"]), ["{}", "[DONE]"]);
        assert_eq!(parse_chunks(&[b"data: [DONE]\n"]), ["[DONE]"]);
    }

    #[test]
    fn utf8_split_across_chunks() {
        let s = "data: é€\n\n".as_bytes();
        assert_eq!(parse_chunks(&[&s[..7], &s[7..9], &s[9..]]), ["é€"]);
    }

    #[test]
    fn event_field_is_kept() {
        let mut p = Parser::default();
        let mut out = Vec::new();
        p.feed(b"event: error\ndata: {\"error\":{}}\n\n", &mut out);
        assert_eq!(out[0].event.as_deref(), Some("error"));
    }
}
