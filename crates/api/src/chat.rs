//! Chat completion request and response types.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `POST /v1/chat/completions` body. Every field the cache key must consider is
/// named here; anything else lands in `extra` and is keyed and forwarded as is.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logit_bias: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ChatRequest {
    /// Parses and checks the shape OpenAI requires: a model, at least one
    /// message, and each message an object with a string `role`.
    pub fn parse(body: &[u8]) -> Result<Self, crate::ApiError> {
        let de = &mut serde_json::Deserializer::from_slice(body);
        let req: ChatRequest = parse_whole(de)?;
        if req.model.trim().is_empty() {
            return Err(crate::ApiError::invalid_request("`model` must not be empty", Some("model")));
        }
        if req.messages.is_empty() {
            return Err(crate::ApiError::invalid_request(
                "`messages` must contain at least one message",
                Some("messages"),
            ));
        }
        for (i, m) in req.messages.iter().enumerate() {
            check_message(i, m)?;
        }
        Ok(req)
    }

    pub fn is_stream(&self) -> bool {
        self.stream.unwrap_or(false)
    }

    pub fn wants_usage_chunk(&self) -> bool {
        self.stream_options.as_ref().is_some_and(|o| o.include_usage)
    }

    /// The task tag from `metadata.task`, used by the ladder's routing table.
    pub fn metadata_task(&self) -> Option<&str> {
        self.metadata.as_ref()?.get("task")?.as_str()
    }

    /// Index of the last `user` message, the one the semantic cache compares.
    pub fn last_user_index(&self) -> Option<usize> {
        self.messages.iter().rposition(|m| m.get("role").and_then(Value::as_str) == Some("user"))
    }

    /// The text of the last message if it is a user message. A conversation
    /// ending in a tool result or an assistant turn has no question to compare.
    pub fn last_user_text(&self) -> Option<String> {
        let idx = self.last_user_index()?;
        if idx + 1 != self.messages.len() {
            return None;
        }
        message_text(self.messages.get(idx)?)
    }

    /// All message text, for prompt-size estimates.
    pub fn prompt_chars(&self) -> usize {
        self.messages.iter().map(|m| message_text(m).map_or(0, |t| t.len()) + 8).sum()
    }
}

/// The roles OpenAI's chat reference accepts; `function` is the legacy form of
/// `tool`. Anything else would be forwarded only to be refused upstream.
const ROLES: [&str; 6] = ["system", "developer", "user", "assistant", "tool", "function"];

/// Checks one message against the fields its role requires: a known `role`;
/// `content` (a string or an array of parts) for `system`, `developer`, `user`
/// and `tool`; a string `tool_call_id` for `tool`. An `assistant` turn may
/// leave `content` out or null when it carries `tool_calls` or a legacy
/// `function_call`, replays a `refusal` or refers to earlier `audio`. `name` and fields Deja does not
/// know are left alone.
fn check_message(i: usize, message: &Value) -> Result<(), crate::ApiError> {
    let invalid = |field: &str, message: String| {
        crate::ApiError::invalid_request(message, Some(&format!("messages[{i}].{field}")))
    };
    let Some(role) = message.get("role").and_then(Value::as_str) else {
        return Err(invalid("role", format!("messages[{i}] must be an object with a string `role`")));
    };
    if !ROLES.contains(&role) {
        return Err(invalid(
            "role",
            format!("messages[{i}].role `{role}` is not one of {}", ROLES.map(|r| format!("`{r}`")).join(", ")),
        ));
    }
    let present = |field: &str| message.get(field).is_some_and(|v| !v.is_null());
    let content = message.get("content").filter(|v| !v.is_null());
    match content {
        Some(Value::String(_) | Value::Array(_)) => {}
        Some(_) => {
            return Err(invalid("content", format!("messages[{i}].content must be a string or an array of parts")));
        }
        None => {
            let optional = match role {
                "assistant" => {
                    present("tool_calls") || present("function_call") || present("refusal") || present("audio")
                }
                "function" => true,
                _ => false,
            };
            if !optional {
                let why = if role == "assistant" { " unless the message has `tool_calls`" } else { "" };
                return Err(invalid("content", format!("messages[{i}] ({role}) needs `content`{why}")));
            }
        }
    }
    if role == "tool" && !message.get("tool_call_id").is_some_and(Value::is_string) {
        return Err(invalid("tool_call_id", format!("messages[{i}] (tool) needs a string `tool_call_id`")));
    }
    Ok(())
}

/// The text content of a message: a plain string, or the text parts of a
/// content array joined by newlines. `None` when there is no text at all.
pub fn message_text(message: &Value) -> Option<String> {
    match message.get("content")? {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => {
            let texts: Vec<&str> = parts
                .iter()
                .filter(|p| p.get("type").and_then(Value::as_str) == Some("text"))
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect();
            (!texts.is_empty()).then(|| texts.join("\n"))
        }
        _ => None,
    }
}

/// Deserializes `T` and insists nothing but whitespace follows it.
fn parse_whole<'de, T: Deserialize<'de>>(
    de: &mut serde_json::Deserializer<serde_json::de::SliceRead<'de>>,
) -> Result<T, crate::ApiError> {
    let value = T::deserialize(&mut *de)
        .map_err(|e| crate::ApiError::invalid_request(format!("invalid request body: {e}"), None))?;
    de.end().map_err(|e| crate::ApiError::invalid_request(format!("invalid request body: {e}"), None))?;
    Ok(value)
}

/// Token counts as OpenAI reports them; extra detail fields are kept.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    #[serde(default)]
    pub total_tokens: u64,
    /// Of `prompt_tokens`, those the provider wrote to its prompt cache
    /// (Anthropic's `cache_creation_input_tokens`), priced apart. OpenAI's
    /// usage has no such field, so this one is never serialized: clients and
    /// the cache see OpenAI's shape, and whoever translated the answer sets it.
    #[serde(skip)]
    pub cache_write_tokens: u64,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Usage {
    /// Of `prompt_tokens`, those read from the provider's prompt cache:
    /// `prompt_tokens_details.cached_tokens`, 0 when absent, null or not a count.
    pub fn cached_tokens(&self) -> u64 {
        self.extra
            .get("prompt_tokens_details")
            .and_then(|d| d.get("cached_tokens"))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    }
}

/// A `chat.completion` object. Choices keep their raw `message` so tool calls,
/// refusals and fields Deja does not know survive a cache round trip.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ChatCompletion {
    pub id: String,
    #[serde(default = "completion_object")]
    pub object: String,
    #[serde(default)]
    pub created: u64,
    #[serde(default)]
    pub model: String,
    pub choices: Vec<Choice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn completion_object() -> String {
    "chat.completion".to_string()
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Choice {
    #[serde(default)]
    pub index: u32,
    pub message: Value,
    #[serde(default)]
    pub finish_reason: Option<String>,
    #[serde(default)]
    pub logprobs: Option<Value>,
}

impl ChatCompletion {
    /// A completion is worth caching only if every choice finished on its own
    /// terms (`stop`, `tool_calls` or `function_call`, not `length` or
    /// `content_filter`) and can be replayed as it was sent: see
    /// [`Choice::is_replayable`].
    pub fn is_complete(&self) -> bool {
        !self.choices.is_empty() && self.choices.iter().all(Choice::is_replayable)
    }
}

impl Choice {
    /// The message is an assistant object whose `content` is a string or null
    /// (or absent beside calls), whose `refusal` is text if present, whose tool calls each have a string `id`,
    /// type `function`, a non-empty string name and string arguments, and
    /// whose finish reason is backed by the call it names.
    pub fn is_replayable(&self) -> bool {
        let Some(msg) = self.message.as_object() else { return false };
        if msg.get("role").and_then(Value::as_str) != Some("assistant") {
            return false;
        }
        let tool_calls = match msg.get("tool_calls") {
            None | Some(Value::Null) => false,
            Some(Value::Array(calls)) if calls.iter().all(is_tool_call) => !calls.is_empty(),
            Some(_) => return false,
        };
        let function_call = match msg.get("function_call") {
            None | Some(Value::Null) => false,
            Some(f) if is_function(f) => true,
            Some(_) => return false,
        };
        if !matches!(msg.get("refusal"), None | Some(Value::String(_) | Value::Null)) {
            return false;
        }
        let content = match msg.get("content") {
            Some(Value::String(_) | Value::Null) => true,
            None => tool_calls || function_call,
            Some(_) => false,
        };
        content
            && match self.finish_reason.as_deref() {
                Some("stop") => true,
                Some("tool_calls") => tool_calls,
                Some("function_call") => function_call,
                _ => false,
            }
    }
}

fn is_tool_call(call: &Value) -> bool {
    call.get("id").and_then(Value::as_str).is_some_and(|id| !id.is_empty())
        && call.get("type").and_then(Value::as_str) == Some("function")
        && call.get("function").is_some_and(is_function)
}

/// `{"name": "...", "arguments": "..."}`; the arguments are not parsed, a
/// model may well send arguments that are not JSON.
fn is_function(f: &Value) -> bool {
    f.get("name").and_then(Value::as_str).is_some_and(|n| !n.is_empty())
        && f.get("arguments").is_some_and(Value::is_string)
}

#[cfg(test)]
#[path = "chat_tests.rs"]
mod tests;
