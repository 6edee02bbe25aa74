//! Server-sent events written out byte by byte, independently of Deja's own
//! framing code, so the two cannot share a mistake.

use crate::control::StreamStyle;
use bytes::Bytes;

/// The end-of-stream marker OpenAI sends as the last `data:` line.
pub(crate) const DONE: &str = "[DONE]";

/// The pieces one event goes out in: each piece is its own write.
pub(crate) fn event(style: &StreamStyle, data: &str) -> Vec<Bytes> {
    let sep = if style.crlf { "\r\n\r\n" } else { "\n\n" };
    let mut wire = String::with_capacity(data.len() + 32);
    if style.keep_alive {
        wire.push_str(": keep-alive");
        wire.push_str(sep);
    }
    wire.push_str("data: ");
    wire.push_str(data);
    wire.push_str(sep);
    let wire = Bytes::from(wire);
    if !style.split_events {
        return vec![wire];
    }
    // Mid-payload, possibly mid-character: a reader must buffer until the separator.
    let mid = wire.len() / 2;
    vec![wire.slice(..mid), wire.slice(mid..)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_framing_is_data_then_a_blank_line() {
        assert_eq!(event(&StreamStyle::default(), "{}"), vec![Bytes::from_static(b"data: {}\n\n")]);
    }

    #[test]
    fn variants_add_crlf_comments_and_split_writes() {
        let style = StreamStyle { crlf: true, keep_alive: true, split_events: true, ..Default::default() };
        let pieces = event(&style, "{\"a\":1}");
        assert_eq!(pieces.len(), 2);
        assert_eq!(pieces.concat(), b": keep-alive\r\n\r\ndata: {\"a\":1}\r\n\r\n".to_vec());
    }
}
