//! Property tests of the cache key: over random requests, every field that can
//! change an answer moves the key, and nothing else does.

use super::*;
use proptest::prelude::*;
use serde_json::{json, Map};

/// A named top-level field with a value for it; `present` says whether the
/// generated request carries it.
#[derive(Clone, Debug)]
struct Param {
    name: &'static str,
    present: bool,
    value: Value,
}

/// Fields that are keyed: typed ones and OpenAI parameters that land in `extra`.
fn keyed_params() -> Vec<(&'static str, BoxedStrategy<Value>)> {
    let ratio = || (0u32..200).prop_map(|x| json!(f64::from(x) / 100.0)).boxed();
    let word = || "[a-z]{1,6}".prop_map(Value::String).boxed();
    vec![
        ("temperature", ratio()),
        ("top_p", ratio()),
        ("max_tokens", any::<u64>().prop_map(|x| json!(x)).boxed()),
        ("max_completion_tokens", any::<u64>().prop_map(|x| json!(x)).boxed()),
        ("seed", any::<i64>().prop_map(|x| json!(x)).boxed()),
        ("n", (1u32..5).prop_map(|x| json!(x)).boxed()),
        ("stop", prop_oneof![word(), prop::collection::vec(word(), 1..3).prop_map(|v| json!(v))].boxed()),
        ("tools", word().prop_map(|n| json!([{"type": "function", "function": {"name": n}}])).boxed()),
        ("tool_choice", prop_oneof![Just(json!("auto")), Just(json!("required"))].boxed()),
        ("response_format", prop_oneof![Just(json!({"type": "json_object"})), Just(json!({"type": "text"}))].boxed()),
        ("logit_bias", (0u32..50_000).prop_map(|t| json!({ t.to_string(): -100 })).boxed()),
        ("presence_penalty", ratio()),
        ("frequency_penalty", ratio()),
        ("logprobs", any::<bool>().prop_map(Value::Bool).boxed()),
        ("top_logprobs", (0u32..20).prop_map(|x| json!(x)).boxed()),
        ("parallel_tool_calls", any::<bool>().prop_map(Value::Bool).boxed()),
        ("modalities", Just(json!(["text"])).boxed()),
        ("audio", word().prop_map(|v| json!({"voice": v, "format": "wav"})).boxed()),
        ("reasoning_effort", prop_oneof![Just(json!("low")), Just(json!("high"))].boxed()),
        ("service_tier", prop_oneof![Just(json!("auto")), Just(json!("flex"))].boxed()),
        ("prediction", word().prop_map(|c| json!({"type": "content", "content": c})).boxed()),
        ("web_search_options", Just(json!({"search_context_size": "low"})).boxed()),
        ("x_future_parameter", any::<u64>().prop_map(|x| json!(x)).boxed()),
    ]
}

/// Documented non-key fields: transport and bookkeeping.
fn unkeyed_params() -> Vec<(&'static str, BoxedStrategy<Value>)> {
    vec![
        ("stream", any::<bool>().prop_map(Value::Bool).boxed()),
        ("stream_options", any::<bool>().prop_map(|u| json!({"include_usage": u})).boxed()),
        ("user", "[a-z]{1,6}".prop_map(Value::String).boxed()),
        ("metadata", "[a-z]{1,6}".prop_map(|t| json!({"task": t})).boxed()),
    ]
}

fn params(list: Vec<(&'static str, BoxedStrategy<Value>)>) -> impl Strategy<Value = Vec<Param>> {
    list.into_iter()
        .map(|(name, s)| (any::<bool>(), s).prop_map(move |(present, value)| Param { name, present, value }))
        .collect::<Vec<_>>()
}

fn part() -> impl Strategy<Value = Value> {
    prop_oneof![
        "[a-z ]{0,12}".prop_map(|t| json!({"type": "text", "text": t})),
        "[a-z]{1,6}".prop_map(|u| json!({"type": "image_url", "image_url": {"url": format!("https://img/{u}.png")}})),
        "[A-Z]{1,6}".prop_map(|d| json!({"type": "input_audio", "input_audio": {"data": d, "format": "wav"}})),
        "[a-z0-9]{1,6}".prop_map(|f| json!({"type": "file", "file": {"file_id": format!("file-{f}")}})),
        any::<i64>().prop_map(|x| json!({"type": "future_part", "x": x})),
    ]
}

fn message(role: &'static str) -> impl Strategy<Value = Value> {
    let content = prop_oneof![
        "[a-z ?]{1,20}".prop_map(Value::String),
        prop::collection::vec(part(), 1..4).prop_map(Value::Array)
    ];
    (content, prop::option::of("[a-z]{1,4}")).prop_map(move |(content, name)| {
        let mut m = json!({"role": role, "content": content});
        if let Some(n) = name {
            m["name"] = json!(n);
        }
        m
    })
}

fn messages() -> impl Strategy<Value = Vec<Value>> {
    let earlier = prop::collection::vec(prop_oneof![message("system"), message("user"), message("assistant")], 0..3);
    (earlier, message("user")).prop_map(|(mut all, last)| {
        all.push(last);
        all
    })
}

fn assemble(model: &str, messages: &[Value], params: &[Param]) -> Value {
    let mut body = Map::new();
    body.insert("model".into(), json!(model));
    body.insert("messages".into(), json!(messages));
    for p in params.iter().filter(|p| p.present) {
        body.insert(p.name.into(), p.value.clone());
    }
    Value::Object(body)
}

fn keys_of(body: &Value) -> (CacheKey, ContextFingerprint) {
    let req = ChatRequest::parse(body.to_string().as_bytes()).expect("generated requests parse");
    chat_keys(&Namespace::new(Some("sk-prop"), None), &req)
}

/// A different value of the same shape. Integers flip their lowest bit, so
/// neighbours past 2^53 are exercised.
fn bump(v: &Value) -> Value {
    match v {
        Value::Null => json!(true),
        Value::Bool(b) => json!(!b),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => json!(i ^ 1),
            (None, Some(u), _) => json!(u ^ 1),
            (_, _, f) => json!(f.unwrap_or(0.0) + 0.25),
        },
        Value::String(s) => json!(format!("{s}x")),
        Value::Array(items) => {
            let mut items = items.clone();
            items.push(json!("x"));
            Value::Array(items)
        }
        Value::Object(map) => {
            let mut map = map.clone();
            map.insert("bumped".into(), json!(true));
            Value::Object(map)
        }
    }
}

/// The field of a content part that carries its payload.
fn payload_key(part: &Value) -> Option<String> {
    part.as_object()?.keys().find(|k| k.as_str() != "type").cloned()
}

/// Changes to the messages that must move both the key and the fingerprint.
fn context_mutations(messages: &[Value]) -> Vec<(String, Vec<Value>)> {
    let mut out = Vec::new();
    let last = messages.len() - 1;
    for (i, m) in messages.iter().enumerate() {
        let mut named = messages.to_vec();
        named[i]["name"] = m.get("name").map_or(json!("n"), bump);
        out.push((format!("name of message {i}"), named));
        if let Some(parts) = m["content"].as_array() {
            for (j, part) in parts.iter().enumerate() {
                let is_text = part["type"] == "text";
                if is_text && i == last {
                    let mut tagged = messages.to_vec();
                    tagged[i]["content"][j]["cache_control"] = json!({"type": "ephemeral"});
                    out.push((format!("field of text part {j} of the question"), tagged));
                    continue;
                }
                let Some(k) = payload_key(part) else { continue };
                let mut changed = messages.to_vec();
                changed[i]["content"][j][&k] = bump(&part[&k]);
                out.push((format!("part {j} of message {i}"), changed));
            }
        } else if i != last {
            let mut changed = messages.to_vec();
            changed[i]["content"] = bump(&m["content"]);
            out.push((format!("text of message {i}"), changed));
        }
    }
    let mut with_image = messages.to_vec();
    let image = json!({"type": "image_url", "image_url": {"url": "https://img/extra.png"}});
    match &mut with_image[last]["content"] {
        Value::Array(parts) => parts.push(image),
        text => *text = json!([{"type": "text", "text": text.clone()}, image]),
    }
    out.push(("an image added to the question".into(), with_image));
    let mut answered = messages.to_vec();
    answered.push(json!({"role": "assistant", "content": "ok"}));
    out.push(("a trailing assistant turn".into(), answered));
    out
}

/// The question's text changed and nothing else, if it has text.
fn question_text_mutation(messages: &[Value]) -> Option<Vec<Value>> {
    let last = messages.len() - 1;
    let mut changed = messages.to_vec();
    match &mut changed[last]["content"] {
        Value::String(s) => s.push_str(" please"),
        Value::Array(parts) => {
            let part = parts.iter_mut().find(|p| p["type"] == "text")?;
            part["text"] = bump(&part["text"]);
        }
        _ => return None,
    }
    Some(changed)
}

/// JSON text of `v` with every object's keys reversed and `ws` between tokens.
fn respell(v: &Value, ws: &str, out: &mut String) {
    match v {
        Value::Object(map) => {
            out.push('{');
            for (i, (k, val)) in map.iter().rev().enumerate() {
                out.push_str(if i == 0 { ws } else { "," });
                out.push_str(&Value::String(k.clone()).to_string());
                out.push_str(ws);
                out.push(':');
                out.push_str(ws);
                respell(val, ws, out);
            }
            out.push_str(ws);
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                    out.push_str(ws);
                }
                respell(item, ws, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_field_that_shapes_an_answer_moves_the_key(
        model in "[a-z]{1,4}",
        messages in messages(),
        keyed in params(keyed_params()),
        unkeyed in params(unkeyed_params()),
        ws in prop_oneof![Just(" "), Just("\n\t"), Just("  \r\n")],
    ) {
        let all: Vec<Param> = keyed.iter().chain(&unkeyed).cloned().collect();
        let base_body = assemble(&model, &messages, &all);
        let base = keys_of(&base_body);

        let mut text = String::new();
        respell(&base_body, ws, &mut text);
        let req = ChatRequest::parse(text.as_bytes()).expect("respelled request parses");
        prop_assert_eq!(chat_keys(&Namespace::new(Some("sk-prop"), None), &req), base, "{}", text);

        let other_model = assemble(&format!("{model}x"), &messages, &all);
        let k = keys_of(&other_model);
        prop_assert_ne!(k.0, base.0, "model");
        prop_assert_ne!(k.1, base.1, "model");

        for (i, p) in keyed.iter().enumerate() {
            let mut changed = all.clone();
            if p.present {
                changed[i].value = bump(&p.value);
                let k = keys_of(&assemble(&model, &messages, &changed));
                prop_assert_ne!(k.0, base.0, "{} bumped", p.name);
                prop_assert_ne!(k.1, base.1, "{} bumped", p.name);
            }
            changed[i] = Param { present: !p.present, ..p.clone() };
            let k = keys_of(&assemble(&model, &messages, &changed));
            prop_assert_ne!(k.0, base.0, "{} added or removed", p.name);
            prop_assert_ne!(k.1, base.1, "{} added or removed", p.name);
        }

        for (i, p) in unkeyed.iter().enumerate() {
            let at = keyed.len() + i;
            let mut changed = all.clone();
            changed[at] = Param { present: !p.present, ..p.clone() };
            prop_assert_eq!(keys_of(&assemble(&model, &messages, &changed)), base, "{} added or removed", p.name);
            changed[at] = Param { present: true, name: p.name, value: bump(&p.value) };
            prop_assert_eq!(keys_of(&assemble(&model, &messages, &changed)), base, "{} changed", p.name);
        }

        for (what, changed) in context_mutations(&messages) {
            let k = keys_of(&assemble(&model, &changed, &all));
            prop_assert_ne!(k.0, base.0, "{}", what);
            prop_assert_ne!(k.1, base.1, "{}", what);
        }

        if let Some(changed) = question_text_mutation(&messages) {
            let k = keys_of(&assemble(&model, &changed, &all));
            prop_assert_ne!(k.0, base.0, "question text");
            prop_assert_eq!(k.1, base.1, "question text");
        }
    }
}
