//! A bounded, incremental Server-Sent Events parser that only judges
//! events: content, an error, or neither (comments, `ping`s).
//!
//! It keeps at most one partial line (up to the line bound) and, for an
//! event that looks like an error, its data (up to the event bound). The
//! data of content events is counted, never copied.

use std::mem;

use crate::error::{StreamError, StreamErrorKind};

/// The event's name, as far as judging it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Name {
    #[default]
    Message,
    Error,
    Ping,
}

/// What one chunk held.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    /// A content event ended in the chunk (before `error`, if any).
    pub(crate) content: bool,
    /// The first error in the chunk, with how many of the chunk's bytes
    /// came before the event (or line) it is in.
    pub(crate) error: Option<(StreamError, usize)>,
}

#[derive(Debug)]
enum Judged {
    Content,
    Error(StreamError),
}

#[derive(Debug)]
pub(crate) struct Parser {
    max_line: usize,
    max_event: usize,
    /// The start of a line that began in an earlier chunk.
    line: Vec<u8>,
    /// The last chunk ended with `\r`: a `\n` right after it ends no line.
    after_cr: bool,
    /// A line of the current event was seen.
    in_event: bool,
    name: Name,
    has_data: bool,
    /// Data bytes of the current event, counted against `max_event`.
    event_bytes: usize,
    /// The current event's data is kept to be judged.
    keep: bool,
    data: Vec<u8>,
}

impl Parser {
    pub(crate) fn new(max_line: usize, max_event: usize) -> Self {
        Parser {
            max_line,
            max_event,
            line: Vec::new(),
            after_cr: false,
            in_event: false,
            name: Name::Message,
            has_data: false,
            event_bytes: 0,
            keep: false,
            data: Vec::new(),
        }
    }

    /// Parses `chunk`, stopping at the first error.
    pub(crate) fn scan(&mut self, chunk: &[u8]) -> Scan {
        let mut scan = Scan::default();
        // Where the current event began in this chunk; 0 when it began in
        // an earlier one.
        let mut event_start = 0;
        let mut pos = 0;
        while pos < chunk.len() {
            if mem::take(&mut self.after_cr) && chunk[pos] == b'\n' {
                pos += 1;
                continue;
            }
            let rest = &chunk[pos..];
            let starts_event = !self.in_event && self.line.is_empty();
            let Some(i) = memchr::memchr2(b'\n', b'\r', rest) else {
                if self.line.len() + rest.len() > self.max_line {
                    scan.error = Some((self.too_large("line"), event_start));
                    return scan;
                }
                self.line.extend_from_slice(rest);
                break;
            };
            if self.line.len() + i > self.max_line {
                scan.error = Some((self.too_large("line"), event_start));
                return scan;
            }
            self.after_cr = rest[i] == b'\r';
            let judged = if self.line.is_empty() {
                self.on_line(&rest[..i])
            } else {
                let mut line = mem::take(&mut self.line);
                line.extend_from_slice(&rest[..i]);
                let judged = self.on_line(&line);
                line.clear();
                self.line = line;
                judged
            };
            if starts_event && self.in_event {
                event_start = pos;
            }
            pos += i + 1;
            match judged {
                Ok(None) => {}
                Ok(Some(Judged::Content)) => scan.content = true,
                Ok(Some(Judged::Error(error))) | Err(error) => {
                    scan.error = Some((error, event_start));
                    return scan;
                }
            }
        }
        scan
    }

    fn too_large(&self, what: &str) -> StreamError {
        let bound = if what == "line" {
            self.max_line
        } else {
            self.max_event
        };
        StreamError::new(StreamErrorKind::TooLarge, None).with_message(format!(
            "an event-stream {what} is longer than {bound} bytes"
        ))
    }

    fn on_line(&mut self, line: &[u8]) -> Result<Option<Judged>, StreamError> {
        if line.is_empty() {
            return Ok(self.dispatch());
        }
        self.in_event = true;
        if std::str::from_utf8(line).is_err() {
            return Err(StreamError::new(StreamErrorKind::Malformed, None)
                .with_message("an event-stream line is not UTF-8"));
        }
        if line[0] == b':' {
            return Ok(None);
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"event" => {
                self.name = match value {
                    b"error" => Name::Error,
                    b"ping" => Name::Ping,
                    _ => Name::Message,
                };
                if self.name == Name::Error {
                    self.keep = true;
                }
            }
            b"data" => {
                self.event_bytes = self.event_bytes.saturating_add(value.len() + 1);
                if self.event_bytes > self.max_event {
                    return Err(self.too_large("event"));
                }
                if !self.has_data && looks_like_error(value) {
                    self.keep = true;
                }
                if self.keep {
                    self.data.extend_from_slice(value);
                    self.data.push(b'\n');
                }
                self.has_data = true;
            }
            // `id`, `retry` and unknown fields say nothing about the answer.
            _ => {}
        }
        Ok(None)
    }

    /// The blank line that ends an event.
    fn dispatch(&mut self) -> Option<Judged> {
        let judged = if !self.has_data || self.name == Name::Ping {
            None
        } else if self.keep {
            judge(&self.data, self.name == Name::Error)
        } else {
            Some(Judged::Content)
        };
        self.in_event = false;
        self.name = Name::Message;
        self.has_data = false;
        self.event_bytes = 0;
        self.keep = false;
        self.data.clear();
        judged
    }
}

/// OpenAI's stream errors are a `data:` JSON whose first key is `error`.
fn looks_like_error(value: &[u8]) -> bool {
    let trimmed = value.trim_ascii_start();
    trimmed
        .strip_prefix(b"{")
        .is_some_and(|rest| rest.trim_ascii_start().starts_with(b"\"error\""))
}

/// Judges a kept event: an error when its JSON has an `error` object (or
/// it was named `error`), else content.
fn judge(data: &[u8], named_error: bool) -> Option<Judged> {
    let value: Option<serde_json::Value> = serde_json::from_slice(data).ok();
    let error = value.as_ref().and_then(|v| v.get("error"));
    let Some(error) = error.filter(|e| e.is_object()) else {
        return Some(if named_error {
            Judged::Error(StreamError::new(StreamErrorKind::Server, None))
        } else {
            Judged::Content
        });
    };
    let field = |name: &str| error.get(name).and_then(serde_json::Value::as_str);
    let kind = match (field("type"), field("code")) {
        (Some("overloaded_error"), _) => StreamErrorKind::Overloaded,
        (Some("rate_limit_error" | "rate_limit_exceeded" | "tokens" | "requests"), _)
        | (_, Some("rate_limit_exceeded")) => StreamErrorKind::RateLimited,
        _ => StreamErrorKind::Server,
    };
    let mut stream = StreamError::new(kind, None);
    if let Some(message) = field("message") {
        stream = stream.with_message(message);
    }
    Some(Judged::Error(stream))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parser() -> Parser {
        Parser::new(1024, 4096)
    }

    #[test]
    fn anthropic_content_and_errors() {
        let mut p = parser();
        let scan = p.scan(b"event: message_start\ndata: {\"type\":\"message_start\"}\n\n");
        assert!(scan.content);
        assert!(scan.error.is_none());
        let scan = p.scan(b"event: ping\ndata: {\"type\": \"ping\"}\n\n: a comment\n\n");
        assert!(!scan.content, "pings and comments are not content");
        let text = b"event: content_block_delta\ndata: {\"delta\":{\"text\":\"x\"}}\n\n";
        let error = b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
        let chunk = [&text[..], &error[..]].concat();
        let scan = p.scan(&chunk);
        assert!(scan.content);
        let (err, prefix) = scan.error.expect("an error event");
        assert_eq!(err.kind(), StreamErrorKind::Overloaded);
        assert_eq!(err.message(), Some("Overloaded"));
        assert_eq!(prefix, text.len(), "the error event starts after the text");
    }

    #[test]
    fn openai_errors_and_kinds() {
        for (body, kind) in [
            (
                &b"data: {\"error\":{\"type\":\"tokens\",\"code\":\"rate_limit_exceeded\"}}\n\n"[..],
                StreamErrorKind::RateLimited,
            ),
            (
                b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\"}}\n\n",
                StreamErrorKind::RateLimited,
            ),
            (
                b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\"}}\n\n",
                StreamErrorKind::Server,
            ),
            (b"event: error\ndata: not json\n\n", StreamErrorKind::Server),
        ] {
            let scan = parser().scan(body);
            assert_eq!(scan.error.map(|(e, _)| e.kind()), Some(kind));
            assert!(!scan.content);
        }
        let scan = parser().scan(b"data: {\"error\": 3, \"id\": 1}\n\ndata: [DONE]\n\n");
        assert!(scan.content && scan.error.is_none(), "no error object");
    }

    #[test]
    fn events_split_anywhere_and_every_line_ending() {
        let stream = b"event: error\r\ndata: {\"type\":\"error\",\r\ndata: \"error\":{\"type\":\"overloaded_error\"}}\r\r";
        for cut in 0..stream.len() {
            let mut p = parser();
            let first = p.scan(&stream[..cut]);
            let second = p.scan(&stream[cut..]);
            let error = first.error.or(second.error).map(|(e, _)| e.kind());
            assert_eq!(error, Some(StreamErrorKind::Overloaded), "cut at {cut}");
        }
        let mut p = parser();
        assert!(p.scan(b"data: a\r").error.is_none());
        assert!(p.scan(b"\n\r\n").content, "CR LF split across chunks");
    }

    #[test]
    fn bounds_and_hostile_bytes() {
        let mut p = Parser::new(16, 32);
        let scan = p.scan(&[b'a'; 17]);
        assert_eq!(
            scan.error.map(|(e, _)| e.kind()),
            Some(StreamErrorKind::TooLarge)
        );
        let mut p = Parser::new(16, 32);
        assert!(p.scan(&[b'a'; 10]).error.is_none());
        assert!(p.scan(&[b'a'; 7]).error.is_some(), "a line over two chunks");
        let mut p = Parser::new(16, 32);
        let scan = p.scan(b"data: 0123456789\ndata: 0123456789\ndata: 0123456789\n");
        assert_eq!(
            scan.error.map(|(e, _)| e.kind()),
            Some(StreamErrorKind::TooLarge)
        );
        let scan = parser().scan(b"data: \xff\xfe\n\n");
        assert_eq!(
            scan.error.map(|(e, _)| e.kind()),
            Some(StreamErrorKind::Malformed)
        );
    }
}
