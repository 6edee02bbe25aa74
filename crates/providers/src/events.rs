//! The events of an upstream stream as OpenAI `chat.completion.chunk`
//! payloads, whatever the provider speaks: the relay sees one dialect.

use crate::anthropic::StreamTranslator;
use crate::ProviderKind;
use deja_api::sse::{EventTooLarge, SseParser};

/// An [`SseParser`] followed, for providers that do not stream OpenAI
/// chunks, by a translator into them.
pub struct UpstreamEvents {
    parser: SseParser,
    anthropic: Option<StreamTranslator>,
}

impl UpstreamEvents {
    /// `created` stamps translated chunks (Anthropic sends no timestamp).
    pub fn new(kind: ProviderKind, created: u64) -> Self {
        let anthropic = match kind {
            ProviderKind::OpenAi => None,
            ProviderKind::Anthropic => Some(StreamTranslator::new(created)),
        };
        Self { parser: SseParser::new(), anthropic }
    }

    /// Appends `chunk` and returns the `data` payloads of the OpenAI events it
    /// completed (`[DONE]` included), as [`SseParser::push`] does.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<String>, EventTooLarge> {
        let events = self.parser.push(chunk)?;
        match &mut self.anthropic {
            None => Ok(events),
            Some(t) => Ok(events.iter().flat_map(|e| t.push(e)).collect()),
        }
    }
}
