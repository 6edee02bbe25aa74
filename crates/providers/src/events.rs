//! The events of an upstream stream as OpenAI `chat.completion.chunk`
//! payloads, whatever the provider speaks: the relay sees one dialect.

use crate::ProviderKind;
use crate::{anthropic, gemini};
use deja_api::sse::{EventTooLarge, SseParser};

enum Translator {
    None,
    Anthropic(anthropic::StreamTranslator),
    Gemini(gemini::StreamTranslator),
}

/// An [`SseParser`] followed, for providers that do not stream OpenAI
/// chunks, by a translator into them.
pub struct UpstreamEvents {
    parser: SseParser,
    translator: Translator,
}

impl UpstreamEvents {
    /// `created` stamps translated chunks (Anthropic and Gemini send no
    /// timestamp); `model` names them until the provider does (Gemini's
    /// `modelVersion` is optional).
    pub fn new(kind: ProviderKind, model: &str, created: u64) -> Self {
        let translator = match kind {
            ProviderKind::OpenAi => Translator::None,
            ProviderKind::Anthropic => Translator::Anthropic(anthropic::StreamTranslator::new(model, created)),
            ProviderKind::Gemini => Translator::Gemini(gemini::StreamTranslator::new(model, created)),
        };
        Self { parser: SseParser::new(), translator }
    }

    /// The prompt tokens the answer wrote to the provider's prompt cache, as
    /// far as the stream has said: Anthropic's `cache_creation_input_tokens`,
    /// which OpenAI's usage chunk has no field for. 0 for the others.
    pub fn cache_write_tokens(&self) -> u64 {
        match &self.translator {
            Translator::Anthropic(t) => t.cache_write_tokens(),
            Translator::None | Translator::Gemini(_) => 0,
        }
    }

    /// Appends `chunk` and returns the `data` payloads of the OpenAI events it
    /// completed (`[DONE]` included), as [`SseParser::push`] does.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<String>, EventTooLarge> {
        let events = self.parser.push(chunk)?;
        match &mut self.translator {
            Translator::None => Ok(events),
            Translator::Anthropic(t) => Ok(events.iter().flat_map(|e| t.push(e)).collect()),
            Translator::Gemini(t) => Ok(events.iter().flat_map(|e| t.push(e)).collect()),
        }
    }
}
