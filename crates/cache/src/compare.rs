//! What a semantic match compares.
//!
//! Requests in one context often share most of their text: a fixed
//! instruction around a variable ticket, a pasted document before different
//! questions, `Ticket:`/`Label:` scaffolding. Mean-pooled over the whole
//! text, the shared block dominates the vector (and past the model's window
//! it is all the model reads), so two different inputs look identical. A
//! match is therefore decided on what differs: the segments (lines,
//! sentences, `Label:`-style prefixes) both texts share at their start and
//! at their end are set aside, and the rest of each is embedded on its own
//! and compared, through the guards.
//!
//! And what the model cannot read is never matched: a text (after the shared
//! segments are set aside) longer than the model's window, with a large share
//! of pieces its vocabulary does not know, or whose unknown pieces differ from
//! the other text's (the model sees them all as one `[UNK]`), is served by its
//! exact key only.

use crate::guards::{GuardSettings, Guards, Refusal};
use crate::spans::SpanVectors;
use deja_embed::{cosine, EmbedError, Embedder, Reading};

/// Past this share of unknown tokens a text is not read well enough to be
/// matched (MiniLM reads most Hanzi, kana and Hangul as `[UNK]`).
pub const MAX_UNKNOWN_SHARE: f32 = 0.25;

/// Why a text cannot be compared by its embedding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unreadable {
    /// Longer than the model's window: the rest never reaches the vector.
    TooLong,
    /// Too many pieces the vocabulary cannot represent.
    UnknownTokens,
}

impl Unreadable {
    pub const ALL: [Unreadable; 2] = [Unreadable::TooLong, Unreadable::UnknownTokens];

    pub fn as_str(self) -> &'static str {
        match self {
            Unreadable::TooLong => "too_long",
            Unreadable::UnknownTokens => "unknown_tokens",
        }
    }

    pub fn refusal(self) -> Refusal {
        match self {
            Unreadable::TooLong => Refusal::TooLong,
            Unreadable::UnknownTokens => Refusal::UnknownTokens,
        }
    }
}

/// Whether the model reads `reading` well enough for its vector to stand for the text.
pub fn readable(reading: &Reading, window: usize) -> Result<(), Unreadable> {
    if reading.tokens > window {
        return Err(Unreadable::TooLong);
    }
    if reading.unknown_share() > MAX_UNKNOWN_SHARE {
        return Err(Unreadable::UnknownTokens);
    }
    Ok(())
}

/// Stands for a request's own part in a template shown to people and to the verifier.
pub const DIFFERING_PART: &str = "[PART THAT DIFFERS]";

/// The part of two texts that differs: each text without the segments both
/// share at their start and at their end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Differing<'a> {
    pub query: &'a str,
    pub candidate: &'a str,
    /// Where `query` sits in the query's text (bytes).
    pub query_at: std::ops::Range<usize>,
    /// Bytes of the longer text set aside as shared; 0 when nothing is shared.
    pub shared_bytes: usize,
}

impl Differing<'_> {
    /// The query's text with its differing part replaced by [`DIFFERING_PART`].
    pub fn template(&self, query: &str) -> String {
        let head = query.get(..self.query_at.start).unwrap_or_default();
        let tail = query.get(self.query_at.end..).unwrap_or_default();
        format!("{head}{DIFFERING_PART}{tail}")
    }
}

/// Splits `text` into segments: a boundary follows a line break, and
/// sentence or label punctuation (`.`, `!`, `?`, `:`, `;`) followed by white
/// space, or the full-width `。！？：；` (which need none). A segment keeps the
/// white space that follows it.
pub fn segments(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let next = chars.peek().map(|(_, n)| *n);
        let boundary = match c {
            '\n' => true,
            '.' | '!' | '?' | ':' | ';' => next.is_some_and(char::is_whitespace),
            '。' | '！' | '？' | '：' | '；' => true,
            _ => false,
        };
        if !boundary {
            continue;
        }
        // The white space after a boundary belongs to the segment it ends.
        let mut end = i + c.len_utf8();
        while let Some((j, w)) = chars.peek().copied() {
            if !w.is_whitespace() {
                break;
            }
            end = j + w.len_utf8();
            chars.next();
        }
        if let Some(seg) = text.get(start..end) {
            out.push(seg);
        }
        start = end;
    }
    if let Some(rest) = text.get(start..).filter(|r| !r.is_empty()) {
        out.push(rest);
    }
    out
}

/// Segments are equal when their words are: white space is not content.
fn same_segment(a: &str, b: &str) -> bool {
    a.split_whitespace().eq(b.split_whitespace())
}

/// Sets aside the segments `query` and `candidate` share at their start and
/// at their end (never overlapping), and returns what is left of each.
pub fn differing<'a>(query: &'a str, candidate: &'a str) -> Differing<'a> {
    let (q, c) = (segments(query), segments(candidate));
    let lead = q.iter().zip(&c).take_while(|(a, b)| same_segment(a, b)).count();
    let max_tail = q.len().min(c.len()) - lead;
    let tail = q.iter().rev().zip(c.iter().rev()).take(max_tail).take_while(|(a, b)| same_segment(a, b)).count();
    // The byte range of what is left between the shared segments, trimmed.
    let middle = |segs: &[&'a str], whole: &'a str| -> std::ops::Range<usize> {
        let head: usize = segs.iter().take(lead).map(|s| s.len()).sum();
        let end: usize = whole.len() - segs.iter().rev().take(tail).map(|s| s.len()).sum::<usize>();
        let part = whole.get(head..end.max(head)).unwrap_or_default();
        let start = head + (part.len() - part.trim_start().len());
        start..(start + part.trim().len()).max(start)
    };
    let (qa, ca) = (middle(&q, query), middle(&c, candidate));
    let (query_part, candidate_part) =
        (query.get(qa.clone()).unwrap_or_default(), candidate.get(ca).unwrap_or_default());
    let shared_bytes = if lead + tail == 0 {
        0
    } else {
        query.len().max(candidate.len()) - query_part.len().max(candidate_part.len())
    };
    Differing { query: query_part, candidate: candidate_part, query_at: qa, shared_bytes }
}

/// Whether two texts are the same text (white space aside).
pub fn identical(a: &str, b: &str) -> bool {
    a.split_whitespace().eq(b.split_whitespace())
}

/// One candidate compared with the query.
#[derive(Debug, Clone, PartialEq)]
pub struct Compared {
    /// The similarity the decision rests on: of the differing parts when the
    /// texts share segments, of the whole texts otherwise.
    pub similarity: f32,
    /// The query's part that was compared (the whole text when nothing is shared).
    pub query_part: String,
    /// The candidate's part that was compared.
    pub candidate_part: String,
    /// Whether shared segments were set aside.
    pub framed: bool,
    /// When they were: the query's text with its part replaced by
    /// [`DIFFERING_PART`], the template both requests share.
    pub template: Option<String>,
    /// Why the pair may not be served, whatever its similarity.
    pub refusal: Option<Refusal>,
}

/// Compares one query with candidates, embedding differing parts as needed.
pub struct Comparer<'a> {
    reader: &'a dyn Embedder,
    guards: &'a GuardSettings,
    spans: Option<&'a SpanVectors>,
    query: &'a str,
    reading: Reading,
}

impl<'a> Comparer<'a> {
    pub fn new(
        reader: &'a dyn Embedder,
        guards: &'a GuardSettings,
        spans: Option<&'a SpanVectors>,
        query: &'a str,
    ) -> Self {
        let reading = reader.read(query);
        Self { reader, guards, spans, query, reading }
    }

    /// Why the query's whole text cannot be matched, if it cannot. A text
    /// that is only too long may still be matched on what differs from a
    /// candidate sharing its opening or closing segments.
    pub fn query_unreadable(&self) -> Option<Unreadable> {
        readable(&self.reading, self.reader.window()).err()
    }

    /// Decides the pair (query, `candidate`), whose whole vectors have cosine `whole_similarity`.
    pub fn compare(&self, candidate: &str, whole_similarity: f32) -> Result<Compared, EmbedError> {
        let whole = |similarity: f32, refusal: Option<Refusal>| Compared {
            similarity,
            query_part: self.query.to_string(),
            candidate_part: candidate.to_string(),
            framed: false,
            template: None,
            refusal,
        };
        if identical(self.query, candidate) {
            return Ok(whole(1.0, None));
        }
        let d = differing(self.query, candidate);
        let longer = self.query.len().max(candidate.len());
        // One text is the other plus segments of its own: what they add may
        // change the answer, and there is nothing of one to compare it with.
        // Unless the shared part is the smaller one, compare whole texts.
        let one_sided = d.query.is_empty() != d.candidate.is_empty();
        if d.shared_bytes == 0 || (one_sided && d.shared_bytes * 2 < longer) {
            return Ok(whole(whole_similarity, self.whole_refusal(candidate)));
        }
        let framed = |similarity: f32, refusal: Option<Refusal>| Compared {
            similarity,
            query_part: d.query.to_string(),
            candidate_part: d.candidate.to_string(),
            framed: true,
            template: Some(d.template(self.query)),
            refusal,
        };
        if one_sided {
            return Ok(framed(0.0, Some(Refusal::ExtraText)));
        }
        if d.query.is_empty() {
            // Only white space differed inside: the same text.
            return Ok(framed(1.0, None));
        }
        let (qr, cr) = (self.reader.read(d.query), self.reader.read(d.candidate));
        if let Some(r) = self.unreadable_pair(&qr, &cr) {
            return Ok(framed(0.0, Some(r)));
        }
        if let Some(r) = Guards::check_texts(self.guards, d.query, d.candidate) {
            return Ok(framed(0.0, Some(r)));
        }
        let (qv, cv) = (self.part_vector(d.query)?, self.part_vector(d.candidate)?);
        Ok(framed(cosine(&qv, &cv), None))
    }

    /// Whole texts: both must be read whole, unknown pieces alike, and pass the guards.
    fn whole_refusal(&self, candidate: &str) -> Option<Refusal> {
        let other = self.reader.read(candidate);
        self.unreadable_pair(&self.reading, &other).or_else(|| Guards::check_texts(self.guards, self.query, candidate))
    }

    fn unreadable_pair(&self, q: &Reading, c: &Reading) -> Option<Refusal> {
        let window = self.reader.window();
        if let Err(u) = readable(q, window).and_then(|()| readable(c, window)) {
            return Some(u.refusal());
        }
        // Unknown pieces all look alike to the model: they must be the same.
        (q.unknown_digest != c.unknown_digest).then_some(Refusal::UnknownTokens)
    }

    /// The vector of a differing part, reused when already computed.
    pub fn part_vector(&self, text: &str) -> Result<Vec<f32>, EmbedError> {
        if let Some(v) = self.spans.and_then(|s| s.get(text)) {
            return Ok(v);
        }
        let v = self.reader.embed_batch(&[text.to_string()])?.pop().ok_or(EmbedError::Stopped)?;
        if let Some(s) = self.spans {
            s.put(text, v.clone());
        }
        Ok(v)
    }
}

#[cfg(test)]
#[path = "compare_tests.rs"]
mod tests;
