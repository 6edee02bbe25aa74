//! Server-sent events as OpenAI streams them: `data: {json}\n\n`, ending with
//! `data: [DONE]\n\n`.

use bytes::{Bytes, BytesMut};

pub const DONE: &str = "[DONE]";

/// Frames one `data:` event.
pub fn frame(data: &str) -> Bytes {
    let mut b = BytesMut::with_capacity(data.len() + 8);
    b.extend_from_slice(b"data: ");
    b.extend_from_slice(data.as_bytes());
    b.extend_from_slice(b"\n\n");
    b.freeze()
}

pub fn done_frame() -> Bytes {
    frame(DONE)
}

/// Largest single event the parser holds before giving up on a stream: a
/// provider that never ends an event must not grow Deja's memory without bound.
pub const MAX_EVENT_BYTES: usize = 4 * 1024 * 1024;

/// An event grew past [`SseParser`]'s cap before it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventTooLarge(pub usize);

impl std::fmt::Display for EventTooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "an event exceeded {} bytes", self.0)
    }
}

impl std::error::Error for EventTooLarge {}

/// Incremental parser, as the SSE specification reads a stream: lines end in
/// `\n`, `\r\n` or `\r`; a blank line ends an event; `data` lines are joined
/// with newlines; comments and other fields are skipped. Feed bytes as they
/// arrive and take complete events out. Each byte is scanned once, however
/// finely the events are split, and one event may not exceed its cap.
pub struct SseParser {
    /// Received bytes from the start of the unfinished line.
    buf: Vec<u8>,
    /// How much of `buf` is known to hold no line end.
    scanned: usize,
    /// `data` of the event being read, if it has any.
    data: Option<String>,
    /// Bytes of the event being read, in finished lines.
    event_bytes: usize,
    max_event_bytes: usize,
}

impl Default for SseParser {
    fn default() -> Self {
        Self::with_max_event_bytes(MAX_EVENT_BYTES)
    }
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_max_event_bytes(max_event_bytes: usize) -> Self {
        Self { buf: Vec::new(), scanned: 0, data: None, event_bytes: 0, max_event_bytes }
    }

    /// Appends `chunk` and returns the `data` payloads of every event it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<String>, EventTooLarge> {
        self.buf.extend_from_slice(chunk);
        let mut events = Vec::new();
        let mut start = 0;
        let mut from = self.scanned;
        while let Some(rel) = self.buf.get(from..).and_then(|rest| rest.iter().position(|b| matches!(b, b'\n' | b'\r')))
        {
            let end = from + rel;
            let ending = match (self.buf.get(end), self.buf.get(end + 1)) {
                (Some(b'\r'), Some(b'\n')) => 2,
                // A `\r` that ends the chunk may be half of `\r\n`: wait for more.
                (Some(b'\r'), None) => break,
                _ => 1,
            };
            let line = self.buf.get(start..end).unwrap_or_default();
            self.event_bytes += line.len() + ending;
            if line.is_empty() {
                events.extend(self.data.take());
                self.event_bytes = 0;
            } else {
                read_field(line, &mut self.data);
            }
            start = end + ending;
            from = start;
        }
        self.buf.drain(..start);
        self.scanned = from - start;
        let pending = self.event_bytes + self.buf.len();
        if pending > self.max_event_bytes {
            return Err(EventTooLarge(self.max_event_bytes));
        }
        Ok(events)
    }

    /// Bytes received that do not yet form a complete event.
    pub fn pending(&self) -> usize {
        self.event_bytes + self.buf.len()
    }
}

/// One line of an event: `data` is kept, comments and other fields skipped.
fn read_field(line: &[u8], data: &mut Option<String>) {
    let (name, value) = match line.iter().position(|b| *b == b':') {
        Some(0) => return,
        Some(i) => (line.get(..i).unwrap_or_default(), line.get(i + 1..).unwrap_or_default()),
        None => (line, &[][..]),
    };
    if name != b"data" {
        return;
    }
    let value = value.strip_prefix(b" ").unwrap_or(value);
    let value = String::from_utf8_lossy(value);
    match data {
        Some(d) => {
            d.push('\n');
            d.push_str(&value);
        }
        None => *data = Some(value.into_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks_are_reassembled() {
        let mut p = SseParser::new();
        assert!(p.push(b"data: {\"a\"").expect("small").is_empty());
        let ev = p.push(b":1}\n\ndata: [DONE]\n\n").expect("small");
        assert_eq!(ev, vec!["{\"a\":1}".to_string(), "[DONE]".to_string()]);
        assert_eq!(p.pending(), 0);
    }

    #[test]
    fn crlf_and_comments_are_handled() {
        let mut p = SseParser::new();
        let ev = p.push(b": keep-alive\r\n\r\ndata: x\r\n\r\n").expect("small");
        assert_eq!(ev, vec!["x".to_string()]);
    }

    #[test]
    fn every_line_ending_the_specification_allows_ends_lines() {
        let mut p = SseParser::new();
        let ev = p.push(b"data: a\r\n\ndata: b\r\rdata: c\ndata: d\n\nevent: x\ndata\n\n").expect("small");
        assert_eq!(ev, vec!["a".to_string(), "b".to_string(), "c\nd".to_string(), String::new()]);
    }

    #[test]
    fn a_crlf_split_between_chunks_is_one_line_end() {
        let mut p = SseParser::new();
        assert!(p.push(b"data: a\r").expect("small").is_empty());
        assert!(p.push(b"\n").expect("small").is_empty());
        assert_eq!(p.push(b"\r\n").expect("small"), vec!["a".to_string()]);
        assert_eq!(p.pending(), 0);
    }

    #[test]
    fn an_event_split_byte_by_byte_is_reassembled() {
        let mut p = SseParser::new();
        let mut events = Vec::new();
        for b in b"data: {\"k\": 1}\n\n: ping\n\ndata: [DONE]\n\n" {
            events.extend(p.push(&[*b]).expect("small"));
        }
        assert_eq!(events, vec!["{\"k\": 1}".to_string(), "[DONE]".to_string()]);
    }

    #[test]
    fn an_event_that_never_ends_is_refused_past_the_cap() {
        let mut p = SseParser::with_max_event_bytes(64);
        assert!(p.push(b"data: short\n\n").is_ok());
        let mut refused = None;
        for _ in 0..10 {
            if let Err(e) = p.push(b"data: 0123456789\n") {
                refused = Some(e);
                break;
            }
        }
        assert_eq!(refused, Some(EventTooLarge(64)));
        let mut line = SseParser::with_max_event_bytes(64);
        assert!(line.push(&[b'x'; 65]).is_err(), "one endless line is refused too");
    }

    #[test]
    fn frame_matches_openai_format() {
        assert_eq!(&frame("{}")[..], b"data: {}\n\n");
    }
}
