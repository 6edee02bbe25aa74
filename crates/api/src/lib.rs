//! The OpenAI wire format as Deja speaks it, with no IO.
//!
//! Requests keep every field they arrived with (unknown ones in `extra`), so
//! Deja forwards what it does not understand and keys the cache on it too.

// A panic on the request path drops the client's connection: these crates
// may not index, slice strings, `expect` or `panic!` outside tests.
#![cfg_attr(not(test), deny(clippy::expect_used, clippy::indexing_slicing, clippy::panic, clippy::string_slice))]

pub mod assemble;
pub mod chat;
pub mod conversation;
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
