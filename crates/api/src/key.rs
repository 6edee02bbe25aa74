//! Cache keys: blake3 over a canonical form of everything that shapes an answer.
//!
//! The request is destructured field by field, so a field added to
//! [`ChatRequest`] breaks this file until someone decides whether it belongs in
//! the key. Objects are hashed with sorted keys, so key order and whitespace
//! do not matter. Numbers are hashed exactly: integers as integers, whatever
//! their size, and a float as the integer it equals when it has no fraction,
//! so `1` and `1.0` agree but 2^53 and 2^53 + 1 do not.

use crate::chat::ChatRequest;
use crate::embeddings::EmbeddingsRequest;
use serde_json::Value;
use std::fmt;

/// The exact-cache key of a request, and the id of the entry it stores.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey(pub [u8; 32]);

/// Hash of everything in a request but the text of its closing user question:
/// two requests may share a semantic entry only if their fingerprints are
/// equal. The question's other parts (images, audio, files, unknown parts,
/// `name`) are in it; only the text is left to the embedding.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContextFingerprint(pub [u8; 32]);

impl CacheKey {
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
    /// Parses 64 hex digits (either case); anything else is `None`.
    pub fn from_hex(s: &str) -> Option<Self> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(Self(out))
    }
}

impl ContextFingerprint {
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
    /// Parses 64 hex digits (either case); anything else is `None`.
    pub fn from_hex(s: &str) -> Option<Self> {
        CacheKey::from_hex(s).map(|k| Self(k.0))
    }
}

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CacheKey({})", self.to_hex())
    }
}
impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}
impl fmt::Debug for ContextFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContextFingerprint({})", self.to_hex())
    }
}

/// The longest `x-deja-namespace` value a request may send.
pub const MAX_NARROWING_BYTES: usize = 128;

/// The tenant scope of an entry. Built from the client key (hashed, never
/// stored raw) and narrowed, never widened, by the `x-deja-namespace` header.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Namespace(String);

impl Namespace {
    pub fn new(client_key: Option<&str>, narrowing: Option<&str>) -> Self {
        let mut ns = match client_key {
            // The first six bytes of the hash: twelve hex digits.
            Some(k) => format!("key-{}", hex::encode(&blake3::hash(k.as_bytes()).as_bytes()[..6])),
            None => "default".to_string(),
        };
        if let Some(sub) = narrowing.map(str::trim).filter(|s| !s.is_empty()) {
            ns.push('/');
            ns.push_str(sub);
        }
        Self(ns)
    }
    /// [`Namespace::new`] for a client's request: a narrowing longer than
    /// [`MAX_NARROWING_BYTES`] or with characters outside
    /// `[A-Za-z0-9._:@+=/-]` is a 400. Namespaces name stored entries,
    /// counters and dashboard rows: they are identifiers, not free text.
    pub fn for_request(client_key: Option<&str>, narrowing: Option<&str>) -> Result<Self, crate::ApiError> {
        if let Some(sub) = narrowing.map(str::trim) {
            let allowed = |c: char| c.is_ascii_alphanumeric() || "._:@+=/-".contains(c);
            if sub.len() > MAX_NARROWING_BYTES || !sub.chars().all(allowed) {
                let message = format!(
                    "x-deja-namespace must be at most {MAX_NARROWING_BYTES} characters of A-Z, a-z, 0-9 and ._:@+=/-"
                );
                return Err(crate::ApiError::invalid_request(message, None).with_code("invalid_namespace"));
            }
        }
        Ok(Self::new(client_key, narrowing))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// Rebuilds a namespace read back from the store.
    pub fn from_stored(s: impl Into<String>) -> Self {
        Self(s.into())
    }
}

/// Feeds canonical JSON into blake3, tagging every value with its type.
struct Canonical(blake3::Hasher);

impl Canonical {
    fn new(domain: &str, ns: &Namespace, model: &str) -> Self {
        let mut c = Self(blake3::Hasher::new());
        c.str(domain);
        c.str(ns.as_str());
        c.str(model);
        c
    }

    fn str(&mut self, s: &str) {
        self.0.update(&(s.len() as u64).to_le_bytes());
        self.0.update(s.as_bytes());
    }

    fn field(&mut self, name: &str, value: Option<&Value>) {
        self.str(name);
        match value {
            None => {
                self.0.update(b"-");
            }
            Some(v) => self.value(v),
        }
    }

    fn float(&mut self, name: &str, value: Option<f64>) {
        self.str(name);
        match value {
            None => {
                self.0.update(b"-");
            }
            Some(f) => self.f64(f),
        }
    }

    fn int(&mut self, name: &str, value: Option<impl Into<i128>>) {
        self.str(name);
        match value {
            None => {
                self.0.update(b"-");
            }
            Some(i) => self.i128(i.into()),
        }
    }

    /// Every integer JSON can carry (i64 and u64) has one encoding.
    fn i128(&mut self, i: i128) {
        self.0.update(b"i");
        self.0.update(&i.to_le_bytes());
    }

    /// A float with no fraction is the integer it equals; any other float
    /// (there is no NaN or infinity in JSON) is hashed by its bits.
    fn f64(&mut self, f: f64) {
        // Every integral float of magnitude below 2^64 converts to i128 exactly.
        const TWO_64: f64 = 18_446_744_073_709_551_616.0;
        if f.fract() == 0.0 && (-TWO_64..TWO_64).contains(&f) {
            self.i128(f as i128);
        } else {
            self.0.update(b"r");
            self.0.update(&f.to_bits().to_le_bytes());
        }
    }

    fn values(&mut self, items: &[Value]) {
        self.0.update(b"[");
        self.0.update(&(items.len() as u64).to_le_bytes());
        for item in items {
            self.value(item);
        }
    }

    fn object(&mut self, map: &serde_json::Map<String, Value>) {
        self.object_with(map, |c, _, v| c.value(v));
    }

    /// An object whose member values are hashed by `member(self, key, value)`.
    fn object_with(&mut self, map: &serde_json::Map<String, Value>, member: impl Fn(&mut Self, &str, &Value)) {
        self.0.update(b"{");
        self.0.update(&(map.len() as u64).to_le_bytes());
        let mut keys: Vec<&String> = map.keys().collect();
        keys.sort();
        for k in keys {
            self.str(k);
            member(self, k, &map[k]);
        }
    }

    /// The closing question with the text that [`crate::chat::message_text`]
    /// reads (a string `content`, or the `text` of each text part) replaced by
    /// a marker. Every other part and field is hashed in place, so it must
    /// match exactly for a semantic hit.
    fn question(&mut self, message: &Value) {
        let Some(map) = message.as_object() else { return self.value(message) };
        self.object_with(map, |c, k, v| match (k, v) {
            ("content", Value::String(_)) => {
                c.0.update(b"T");
            }
            ("content", Value::Array(parts)) => {
                c.0.update(b"[");
                c.0.update(&(parts.len() as u64).to_le_bytes());
                for part in parts {
                    match part.as_object() {
                        Some(p) if p.get("type").and_then(Value::as_str) == Some("text") => {
                            c.object_with(p, |c, k, v| match (k, v) {
                                ("text", Value::String(_)) => {
                                    c.0.update(b"T");
                                }
                                _ => c.value(v),
                            })
                        }
                        _ => c.value(part),
                    }
                }
            }
            _ => c.value(v),
        });
    }

    fn value(&mut self, v: &Value) {
        match v {
            Value::Null => {
                self.0.update(b"n");
            }
            Value::Bool(b) => {
                self.0.update(if *b { b"t" } else { b"f" });
            }
            Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
                (Some(i), _, _) => self.i128(i.into()),
                (None, Some(u), _) => self.i128(u.into()),
                (None, None, Some(f)) => self.f64(f),
                // Only reachable with serde_json's arbitrary precision: keep every digit.
                (None, None, None) => {
                    self.0.update(b"d");
                    self.str(&n.to_string());
                }
            },
            Value::String(s) => {
                self.0.update(b"s");
                self.str(s);
            }
            Value::Array(items) => self.values(items),
            Value::Object(map) => self.object(map),
        }
    }

    fn finish(&self) -> [u8; 32] {
        *self.0.finalize().as_bytes()
    }
}

/// The domain of chat keys and fingerprints; bumped when their encoding changes.
const CHAT_DOMAIN: &str = "deja/chat/v2";
/// The domain of coarse conversation fingerprints.
const CONVERSATION_DOMAIN: &str = "deja/chat-conversation/v1";

/// Everything in a chat request but its messages, hashed under `domain`.
fn params(domain: &str, ns: &Namespace, req: &ChatRequest, task: Option<&str>) -> Canonical {
    let ChatRequest {
        model,
        // Hashed by the callers: whole, or split into context and question.
        messages: _,
        // Transport and bookkeeping only: the same answer serves both.
        stream: _,
        stream_options: _,
        user: _,
        metadata: _,
        temperature,
        top_p,
        max_tokens,
        max_completion_tokens,
        stop,
        seed,
        n,
        tools,
        tool_choice,
        response_format,
        logit_bias,
        presence_penalty,
        frequency_penalty,
        extra,
    } = req;
    let mut params = Canonical::new(domain, ns, model);
    params.float("temperature", *temperature);
    params.float("top_p", *top_p);
    params.int("max_tokens", *max_tokens);
    params.int("max_completion_tokens", *max_completion_tokens);
    params.field("stop", stop.as_ref());
    params.int("seed", *seed);
    params.int("n", *n);
    params.field("tools", tools.as_ref());
    params.field("tool_choice", tool_choice.as_ref());
    params.field("response_format", response_format.as_ref());
    params.field("logit_bias", logit_bias.as_ref());
    params.float("presence_penalty", *presence_penalty);
    params.float("frequency_penalty", *frequency_penalty);
    // Unknown fields are keyed too, so a new OpenAI parameter never collides.
    params.str("extra");
    params.object(extra);
    if let Some(task) = task {
        params.str("task");
        params.str(task);
    }

    params
}

/// The coarse fingerprint of a multi-turn request
/// ([`crate::conversation::split`]): everything the context fingerprint
/// holds but the earlier user and assistant turns. The namespace, model,
/// every parameter, the system and developer messages and the question's
/// non-text parts stay exact; the turns are left to the history embedding.
/// `None` when the request is not a conversation.
pub fn conversation_fingerprint(ns: &Namespace, req: &ChatRequest, task: Option<&str>) -> Option<ContextFingerprint> {
    let conversation = crate::conversation::split(&req.messages)?;
    let mut c = params(CONVERSATION_DOMAIN, ns, req, task);
    c.str("system");
    c.0.update(&(conversation.system.len() as u64).to_le_bytes());
    for m in conversation.system {
        c.value(m);
    }
    c.str("question");
    c.question(conversation.question);
    Some(ContextFingerprint(c.finish()))
}

/// The exact key and the semantic context fingerprint of a chat request.
pub fn chat_keys(ns: &Namespace, req: &ChatRequest) -> (CacheKey, ContextFingerprint) {
    routed_chat_keys(ns, req, None)
}

/// [`chat_keys`] for a request carrying a routing task tag (`x-deja-task` or
/// `metadata.task`): the tag picks the rung that answers, so requests with
/// different tags never share an entry. Without a tag the keys equal
/// [`chat_keys`].
pub fn routed_chat_keys(ns: &Namespace, req: &ChatRequest, task: Option<&str>) -> (CacheKey, ContextFingerprint) {
    let messages = &req.messages;
    let params = params(CHAT_DOMAIN, ns, req, task);

    // A trailing user message is the question; what comes before is context.
    // A trailing user message is the question; what comes before is context.
    let split = req.last_user_index().filter(|i| i + 1 == messages.len()).and_then(|_| messages.split_last());
    let mut context = Canonical(params.0.clone());
    context.str("context");
    match split {
        Some((question, earlier)) => {
            context.values(earlier);
            // The question counts whole, but for the text the embedding compares.
            context.str("question");
            context.question(question);
        }
        None => {
            context.values(messages);
            // No trailing user question: nothing may match semantically but itself.
            context.str("no-question");
        }
    }

    // The whole messages array, every field of every message.
    let mut exact = params;
    exact.str("messages");
    exact.values(messages);
    (CacheKey(exact.finish()), ContextFingerprint(context.finish()))
}

/// The fingerprint of a request a semantic route sent to `start_rung`.
/// Paraphrases can route differently, so a semantic entry is shared only
/// between requests routed alike; an unrouted request keeps its fingerprint.
pub fn route_fingerprint(fingerprint: ContextFingerprint, start_rung: &str) -> ContextFingerprint {
    let mut h = blake3::Hasher::new();
    h.update(b"deja/route/v1\0");
    h.update(&fingerprint.0);
    h.update(start_rung.as_bytes());
    ContextFingerprint(*h.finalize().as_bytes())
}

/// The fingerprint of the requests that share `template` in `fingerprint`'s
/// context: the question's text with its own part replaced by a marker
/// (white space normalised). Their entries are indexed by the vector of that
/// part alone, so a search among them compares inputs, not the template.
pub fn template_fingerprint(fingerprint: ContextFingerprint, template: &str) -> ContextFingerprint {
    let mut h = blake3::Hasher::new();
    h.update(b"deja/template/v1\0");
    h.update(&fingerprint.0);
    for word in template.split_whitespace() {
        h.update(word.as_bytes());
        h.update(b"\0");
    }
    ContextFingerprint(*h.finalize().as_bytes())
}

/// The exact key of an embeddings request (`user` aside).
pub fn embeddings_key(ns: &Namespace, req: &EmbeddingsRequest) -> CacheKey {
    let EmbeddingsRequest { model, input, encoding_format, dimensions, user: _, extra } = req;
    let mut c = Canonical::new("deja/embeddings/v2", ns, model);
    c.field("input", Some(input));
    c.field("encoding_format", encoding_format.as_ref().map(|s| Value::from(s.as_str())).as_ref());
    c.int("dimensions", *dimensions);
    c.str("extra");
    c.object(extra);
    CacheKey(c.finish())
}

#[cfg(test)]
#[path = "key_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "key_props.rs"]
mod props;
