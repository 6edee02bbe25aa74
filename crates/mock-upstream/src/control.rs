use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One injected misbehaviour, consumed by one call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// Answer with this status and an OpenAI error body.
    Status {
        status: u16,
        #[serde(default)]
        retry_after_s: Option<u64>,
        /// A raw `Retry-After` value, sent as is (wins over `retry_after_s`).
        #[serde(default)]
        retry_after: Option<String>,
    },
    /// Wait before sending the response head.
    Delay { ms: u64 },
    /// 200 with a body that is not JSON.
    Malformed,
    /// Stream `chunks` content chunks, then go silent with the connection open.
    StallAfter { chunks: usize },
    /// Stream `chunks` content chunks, then drop the connection.
    CutAfter { chunks: usize },
    /// Stream `chunks` content chunks, then one event that never ends: `data: `
    /// followed by bytes without a line end (up to 256 MiB, or until the reader hangs up).
    EndlessEventAfter { chunks: usize },
    /// 200 with exactly this JSON body, whatever the request asked for.
    Body { body: serde_json::Value },
    /// A long answer from the OpenAI chat endpoint (`/v1/chat/completions`
    /// only): `chunks` pieces of `chunk_bytes` bytes of ASCII text each,
    /// derived from the last user message (other prompts, other text), with
    /// `completion_tokens = chunks`. Streamed: the role chunk, one content
    /// chunk per piece (each after the chunk delay), the finish chunk, usage
    /// as the stream style puts it, then `[DONE]`; unstreamed: the pieces
    /// joined in one completion. With `cut_after = Some(n)`, `n < chunks`, a
    /// stream drops the connection after `n` content chunks (as `CutAfter`
    /// does); a larger `n` cuts nothing.
    LongStream {
        chunks: usize,
        chunk_bytes: usize,
        #[serde(default)]
        cut_after: Option<usize>,
    },
}

/// Where a streamed answer carries its token usage. Providers differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UsageStyle {
    /// OpenAI: when asked, `"usage": null` in every chunk, then a usage-only
    /// chunk with empty `choices`.
    #[default]
    NullInEveryChunk,
    /// No `usage` key in content chunks; a usage-only chunk when asked.
    AbsentUntilLast,
    /// No `usage` key in content chunks; usage on the chunk that carries
    /// `finish_reason`, with no separate chunk, whether asked or not.
    OnFinalChunk,
    /// Never any usage, even when asked.
    Never,
}

/// How the mock streams: where usage goes, and how events are framed on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StreamStyle {
    pub usage: UsageStyle,
    /// `\r\n\r\n` between events instead of `\n\n`.
    pub crlf: bool,
    /// A `: keep-alive` comment before the first event and between events.
    pub keep_alive: bool,
    /// Each event written in two pieces, in separate TCP writes.
    pub split_events: bool,
    /// Anthropic and Gemini answers (whole and streamed) leave out what
    /// their references mark optional or nullable: Anthropic's usage carries
    /// no cache counts (and `message_start` no `output_tokens`); Gemini's
    /// `usageMetadata` comes only on the last chunk, which holds the
    /// `finishReason` and an empty text part, with no `index`,
    /// `safetyRatings`, `modelVersion` or `responseId` anywhere. Off, they
    /// carry every field the references show.
    pub sparse: bool,
}

/// Prompt-cache counts the mock reports in its usage, as a provider whose
/// prompt cache served (or took) part of the prompt would. None by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PromptCache {
    /// Prompt tokens read from the cache: OpenAI's
    /// `prompt_tokens_details.cached_tokens` (a part of `prompt_tokens`),
    /// Anthropic's `cache_read_input_tokens` (beside `input_tokens`).
    pub read: u64,
    /// Prompt tokens written to the cache: Anthropic's
    /// `cache_creation_input_tokens` (beside `input_tokens`). OpenAI reports none.
    pub write: u64,
}

#[derive(Default)]
struct Inner {
    faults: HashMap<String, VecDeque<Fault>>,
    sticky: HashMap<String, Fault>,
    calls: HashMap<String, u64>,
    /// Calls whose caller hung up before the answer was sent whole.
    hangups: HashMap<String, u64>,
    authorization: HashMap<String, Option<String>>,
    requests: Vec<serde_json::Value>,
    stream_style: StreamStyle,
    prompt_cache: PromptCache,
    judge_verdict: Option<String>,
}

/// Requests to this model are answered by the judge: the verdict set with
/// [`MockControl::set_judge_verdict`] ("none" until set).
pub const JUDGE_MODEL: &str = "judge";

/// Shared handle to the mock's behaviour and its call log.
#[derive(Clone, Default)]
pub struct MockControl {
    inner: Arc<Mutex<Inner>>,
    total: Arc<AtomicU64>,
    /// Delay between streamed chunks, in milliseconds.
    chunk_delay_ms: Arc<AtomicU64>,
    /// Filler bytes of never-ending events the client accepted before it hung up.
    endless_bytes: Arc<AtomicU64>,
    /// The headers of the last Anthropic Messages call, per model.
    pub(crate) anthropic: Arc<Mutex<HashMap<String, crate::seen::AnthropicHeaders>>>,
    /// How the last Gemini call arrived, per model.
    pub(crate) gemini: Arc<Mutex<HashMap<String, crate::seen::GeminiCall>>>,
}

impl MockControl {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues faults for the next calls to `model`, in order.
    pub fn push_faults(&self, model: &str, faults: impl IntoIterator<Item = Fault>) {
        self.lock().faults.entry(model.to_string()).or_default().extend(faults);
    }

    /// Applies `fault` to every call to `model` until cleared.
    pub fn set_sticky(&self, model: &str, fault: Option<Fault>) {
        let mut inner = self.lock();
        match fault {
            Some(f) => inner.sticky.insert(model.to_string(), f),
            None => inner.sticky.remove(model),
        };
    }

    /// How many bytes of never-ending events were written before the reader hung up.
    pub fn endless_bytes_sent(&self) -> u64 {
        self.endless_bytes.load(Ordering::Relaxed)
    }

    pub(crate) fn count_endless_bytes(&self, n: usize) {
        self.endless_bytes.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn set_chunk_delay(&self, delay: Duration) {
        self.chunk_delay_ms.store(delay.as_millis() as u64, Ordering::Relaxed);
    }

    pub(crate) fn chunk_delay(&self) -> Duration {
        Duration::from_millis(self.chunk_delay_ms.load(Ordering::Relaxed))
    }

    /// How every later streamed answer is sent, until changed or reset.
    pub fn set_stream_style(&self, style: StreamStyle) {
        self.lock().stream_style = style;
    }

    pub fn stream_style(&self) -> StreamStyle {
        self.lock().stream_style
    }

    /// The prompt-cache counts every later answer reports, until changed or reset.
    pub fn set_prompt_cache(&self, cache: PromptCache) {
        self.lock().prompt_cache = cache;
    }

    pub fn prompt_cache(&self) -> PromptCache {
        self.lock().prompt_cache
    }

    /// What the judge ([`JUDGE_MODEL`]) answers from now on: "yes", "no", "1", "none", ...
    pub fn set_judge_verdict(&self, verdict: &str) {
        self.lock().judge_verdict = Some(verdict.to_string());
    }

    pub fn judge_verdict(&self) -> String {
        self.lock().judge_verdict.clone().unwrap_or_else(|| "none".into())
    }

    pub fn calls(&self, model: &str) -> u64 {
        self.lock().calls.get(model).copied().unwrap_or(0)
    }

    /// Calls to `model` whose caller hung up before getting the whole answer
    /// (during an injected delay, or mid-stream).
    pub fn hangups(&self, model: &str) -> u64 {
        self.lock().hangups.get(model).copied().unwrap_or(0)
    }

    pub(crate) fn count_hangup(&self, model: &str) {
        *self.lock().hangups.entry(model.to_string()).or_default() += 1;
    }

    pub fn total_calls(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    pub fn calls_by_model(&self) -> HashMap<String, u64> {
        self.lock().calls.clone()
    }

    /// The `Authorization` header of the last call to `model`.
    pub fn last_authorization(&self, model: &str) -> Option<String> {
        self.lock().authorization.get(model).cloned().flatten()
    }

    /// The last `Authorization` header seen per model (`None`: none was sent).
    pub fn authorizations(&self) -> HashMap<String, Option<String>> {
        self.lock().authorization.clone()
    }

    /// Every request body received, oldest first (the last 1,000).
    pub fn requests(&self) -> Vec<serde_json::Value> {
        self.lock().requests.clone()
    }

    pub fn reset(&self) {
        *self.lock() = Inner::default();
        self.anthropic.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.gemini.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.total.store(0, Ordering::Relaxed);
    }

    /// Records a call and returns the fault it must suffer, if any.
    pub(crate) fn on_call(
        &self,
        model: &str,
        authorization: Option<String>,
        body: &serde_json::Value,
    ) -> Option<Fault> {
        self.total.fetch_add(1, Ordering::Relaxed);
        let mut inner = self.lock();
        *inner.calls.entry(model.to_string()).or_default() += 1;
        inner.authorization.insert(model.to_string(), authorization);
        if inner.requests.len() >= 1_000 {
            inner.requests.remove(0);
        }
        inner.requests.push(body.clone());
        if let Some(f) = inner.faults.get_mut(model).and_then(VecDeque::pop_front) {
            return Some(f);
        }
        inner.sticky.get(model).cloned()
    }
}
