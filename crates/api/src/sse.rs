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

/// Incremental parser: feed bytes as they arrive, take complete events out.
/// Handles `\n\n` and `\r\n\r\n` separators, multi-line data and comments.
#[derive(Default)]
pub struct SseParser {
    buf: Vec<u8>,
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `chunk` and returns the `data` payloads of every event it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<String> {
        self.buf.extend_from_slice(chunk);
        let mut events = Vec::new();
        while let Some((end, sep)) = find_event_end(&self.buf) {
            let raw: Vec<u8> = self.buf.drain(..end + sep).collect();
            if let Some(data) = event_data(&raw[..end]) {
                events.push(data);
            }
        }
        events
    }

    /// Bytes received that do not yet form a complete event.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

fn find_event_end(buf: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i + 1 < buf.len() {
        if buf[i] == b'\n' && buf[i + 1] == b'\n' {
            return Some((i, 2));
        }
        if i + 3 < buf.len() && &buf[i..i + 4] == b"\r\n\r\n" {
            return Some((i, 4));
        }
        i += 1;
    }
    None
}

fn event_data(raw: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(raw);
    let mut data: Option<String> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("data:") {
            let rest = rest.strip_prefix(' ').unwrap_or(rest);
            match &mut data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(rest);
                }
                None => data = Some(rest.to_string()),
            }
        }
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks_are_reassembled() {
        let mut p = SseParser::new();
        assert!(p.push(b"data: {\"a\"").is_empty());
        let ev = p.push(b":1}\n\ndata: [DONE]\n\n");
        assert_eq!(ev, vec!["{\"a\":1}".to_string(), "[DONE]".to_string()]);
        assert_eq!(p.pending(), 0);
    }

    #[test]
    fn crlf_and_comments_are_handled() {
        let mut p = SseParser::new();
        let ev = p.push(b": keep-alive\r\n\r\ndata: x\r\n\r\n");
        assert_eq!(ev, vec!["x".to_string()]);
    }

    #[test]
    fn frame_matches_openai_format() {
        assert_eq!(&frame("{}")[..], b"data: {}\n\n");
    }
}
