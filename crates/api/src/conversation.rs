//! A multi-turn request seen as a conversation: its system messages (kept
//! exact, in the coarse fingerprint), its earlier turns (compared by
//! embedding) and its closing question.
//!
//! Only plain text turns qualify: an earlier turn carrying anything an
//! embedding of its text would lose (tool calls, tool results, images,
//! names, unknown fields) makes the request no conversation candidate at all.

use serde_json::Value;

/// Roles whose messages are instructions, hashed exactly into the coarse fingerprint.
const SYSTEM_ROLES: [&str; 2] = ["system", "developer"];

/// One earlier turn: its role and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    pub role: String,
    pub text: String,
}

/// The parts of a conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct Conversation<'a> {
    /// System and developer messages, in order.
    pub system: Vec<&'a Value>,
    /// The user and assistant turns before the question, in order (at least one).
    pub turns: Vec<Turn>,
    /// The closing user message.
    pub question: &'a Value,
}

impl Conversation<'_> {
    /// The earlier turns' text, one per line as `role: text`: what the history
    /// embedding is made of.
    pub fn history_text(&self) -> String {
        transcript(&self.turns)
    }
}

/// The earlier turns as `role: text` lines.
pub fn transcript(turns: &[Turn]) -> String {
    let lines: Vec<String> = turns.iter().map(|t| format!("{}: {}", t.role, t.text)).collect();
    lines.join("\n")
}

/// Splits `messages` into a conversation, or `None` when it is not one:
/// no closing user question, no earlier user or assistant turn, or an
/// earlier turn that is not plain text.
pub fn split(messages: &[Value]) -> Option<Conversation<'_>> {
    let (question, earlier) = messages.split_last()?;
    if role(question) != Some("user") {
        return None;
    }
    let mut system = Vec::new();
    let mut turns = Vec::new();
    for m in earlier {
        match role(m) {
            Some(r) if SYSTEM_ROLES.contains(&r) => system.push(m),
            Some(r @ ("user" | "assistant")) => turns.push(Turn { role: r.to_string(), text: plain_text(m)? }),
            _ => return None,
        }
    }
    if turns.is_empty() {
        return None;
    }
    Some(Conversation { system, turns, question })
}

fn role(m: &Value) -> Option<&str> {
    m.get("role").and_then(Value::as_str)
}

/// The text of a message that holds nothing but `role` and text `content`.
fn plain_text(m: &Value) -> Option<String> {
    let map = m.as_object()?;
    if map.keys().any(|k| k != "role" && k != "content") {
        return None;
    }
    match map.get("content")? {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => {
            let mut texts = Vec::with_capacity(parts.len());
            for p in parts {
                let p = p.as_object()?;
                if p.len() != 2 || p.get("type").and_then(Value::as_str) != Some("text") {
                    return None;
                }
                texts.push(p.get("text")?.as_str()?);
            }
            (!texts.is_empty()).then(|| texts.join("\n"))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_conversation_keeps_system_apart_from_its_turns() {
        let m = json!([
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": [{"type": "text", "text": "hello"}]},
            {"role": "user", "content": "cancel it"}
        ]);
        let c = split(m.as_array().map(Vec::as_slice).unwrap_or_default()).expect("a conversation");
        assert_eq!(c.system.len(), 1);
        assert_eq!(c.history_text(), "user: hi\nassistant: hello");
        assert_eq!(c.question["content"], "cancel it");
    }

    #[test]
    fn anything_but_plain_text_turns_is_not_a_conversation() {
        for messages in [
            json!([{"role": "user", "content": "only a question"}]),
            json!([{"role": "system", "content": "s"}, {"role": "user", "content": "q"}]),
            json!([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]),
            json!([{"role": "user", "content": "a", "name": "bob"}, {"role": "user", "content": "q"}]),
            json!([{"role": "assistant", "content": null, "tool_calls": []}, {"role": "user", "content": "q"}]),
            json!([{"role": "tool", "content": "42", "tool_call_id": "x"}, {"role": "user", "content": "q"}]),
            json!([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "u"}}]}, {"role": "user", "content": "q"}]),
        ] {
            assert!(split(messages.as_array().map(Vec::as_slice).unwrap_or_default()).is_none(), "{messages}");
        }
    }
}
