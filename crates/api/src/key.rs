//! Cache keys: blake3 over a canonical form of everything that shapes an answer.
//!
//! The request is destructured field by field, so a field added to
//! [`ChatRequest`] breaks this file until someone decides whether it belongs in
//! the key. Objects are hashed with sorted keys and numbers by value, so key
//! order, whitespace and `1` versus `1.0` do not matter.

use crate::chat::ChatRequest;
use crate::embeddings::EmbeddingsRequest;
use serde_json::Value;
use std::fmt;

/// The exact-cache key of a request, and the id of the entry it stores.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey(pub [u8; 32]);

/// Hash of everything but the last user message: two requests may share a
/// semantic entry only if their fingerprints are equal.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContextFingerprint(pub [u8; 32]);

impl CacheKey {
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }
    pub fn from_hex(s: &str) -> Option<Self> {
        parse_hex32(s).map(Self)
    }
}

impl ContextFingerprint {
    pub fn to_hex(&self) -> String {
        hex(&self.0)
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

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
        let hi = (chunk[0] as char).to_digit(16)?;
        let lo = (chunk[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

/// The tenant scope of an entry. Built from the client key (hashed, never
/// stored raw) and narrowed, never widened, by the `x-deja-namespace` header.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Namespace(String);

impl Namespace {
    pub fn new(client_key: Option<&str>, narrowing: Option<&str>) -> Self {
        let mut ns = match client_key {
            Some(k) => format!("key-{}", &hex(blake3::hash(k.as_bytes()).as_bytes())[..12]),
            None => "default".to_string(),
        };
        if let Some(sub) = narrowing.map(str::trim).filter(|s| !s.is_empty()) {
            ns.push('/');
            ns.push_str(sub);
        }
        Self(ns)
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

    fn num(&mut self, name: &str, value: Option<f64>) {
        self.field(name, value.map(Value::from).as_ref());
    }

    fn values(&mut self, items: &[Value]) {
        self.0.update(b"[");
        self.0.update(&(items.len() as u64).to_le_bytes());
        for item in items {
            self.value(item);
        }
    }

    fn object(&mut self, map: &serde_json::Map<String, Value>) {
        self.0.update(b"{");
        self.0.update(&(map.len() as u64).to_le_bytes());
        let mut keys: Vec<&String> = map.keys().collect();
        keys.sort();
        for k in keys {
            self.str(k);
            self.value(&map[k]);
        }
    }

    fn value(&mut self, v: &Value) {
        match v {
            Value::Null => {
                self.0.update(b"n");
            }
            Value::Bool(b) => {
                self.0.update(if *b { b"t" } else { b"f" });
            }
            Value::Number(n) => {
                // Integral values hash the same whatever their JSON spelling.
                let f = n.as_f64().unwrap_or(f64::NAN);
                self.0.update(b"#");
                if f.fract() == 0.0 && f.abs() < 9.0e15 {
                    self.0.update(&(f as i64).to_le_bytes());
                } else {
                    self.0.update(&f.to_bits().to_le_bytes());
                }
            }
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

/// The exact key and the semantic context fingerprint of a chat request.
pub fn chat_keys(ns: &Namespace, req: &ChatRequest) -> (CacheKey, ContextFingerprint) {
    let ChatRequest {
        model,
        messages,
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
    let mut params = Canonical::new("deja/chat/v1", ns, model);
    params.num("temperature", *temperature);
    params.num("top_p", *top_p);
    params.num("max_tokens", max_tokens.map(|v| v as f64));
    params.num("max_completion_tokens", max_completion_tokens.map(|v| v as f64));
    params.field("stop", stop.as_ref());
    params.num("seed", seed.map(|v| v as f64));
    params.num("n", n.map(f64::from));
    params.field("tools", tools.as_ref());
    params.field("tool_choice", tool_choice.as_ref());
    params.field("response_format", response_format.as_ref());
    params.field("logit_bias", logit_bias.as_ref());
    params.num("presence_penalty", *presence_penalty);
    params.num("frequency_penalty", *frequency_penalty);
    // Unknown fields are keyed too, so a new OpenAI parameter never collides.
    params.str("extra");
    params.object(extra);

    let last = req.last_user_index().filter(|i| i + 1 == messages.len());
    let mut context = Canonical(params.0.clone());
    context.str("context");
    let earlier = match last {
        Some(i) => &messages[..i],
        None => &messages[..],
    };
    context.values(earlier);
    if last.is_none() {
        // No trailing user question: nothing may match semantically but itself.
        context.str("no-question");
    }

    let mut exact = params;
    exact.str("messages");
    exact.values(messages);
    (CacheKey(exact.finish()), ContextFingerprint(context.finish()))
}

/// The exact key of an embeddings request (`user` aside).
pub fn embeddings_key(ns: &Namespace, req: &EmbeddingsRequest) -> CacheKey {
    let EmbeddingsRequest { model, input, encoding_format, dimensions, user: _, extra } = req;
    let mut c = Canonical::new("deja/embeddings/v1", ns, model);
    c.field("input", Some(input));
    c.field("encoding_format", encoding_format.as_ref().map(|s| Value::from(s.as_str())).as_ref());
    c.num("dimensions", dimensions.map(|v| v as f64));
    c.str("extra");
    c.object(extra);
    CacheKey(c.finish())
}

#[cfg(test)]
#[path = "key_tests.rs"]
mod tests;
