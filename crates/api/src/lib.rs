//! The OpenAI wire format as Deja speaks it, with no IO.
//!
//! Requests keep every field they arrived with (unknown ones in `extra`), so
//! Deja forwards what it does not understand and keys the cache on it too.

pub mod assemble;
pub mod chat;
pub mod embeddings;
pub mod error;
pub mod key;
pub mod replay;
pub mod sse;

pub use assemble::StreamAssembler;
pub use chat::{ChatCompletion, ChatRequest, Usage};
pub use embeddings::EmbeddingsRequest;
pub use error::{ApiError, ErrorKind};
pub use key::{CacheKey, ContextFingerprint, Namespace};
