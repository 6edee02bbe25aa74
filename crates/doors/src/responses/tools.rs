//! Responses `tools` and `tool_choice` → chat's.
//!
//! A Responses function tool is flat (`{type, name, description, parameters,
//! strict}`); chat nests the same fields under `function`. Built-in tools run
//! on OpenAI's servers and are refused by name.

use crate::invalid;
use deja_api::ApiError;
use serde_json::{json, Map, Value};

/// `tools` → chat's `tools`. `strict` is sent only when the client set it:
/// chat's default (off) then applies, where OpenAI's Responses default is on,
/// since providers that cannot enforce a schema refuse a strict tool.
pub(super) fn translate(value: &Value) -> Result<Vec<Value>, ApiError> {
    let Some(list) = value.as_array() else { return Err(invalid("`tools` must be an array", "tools")) };
    list.iter()
        .enumerate()
        .map(|(i, tool)| {
            let at = |field: &str| format!("tools[{i}].{field}");
            match tool.get("type").and_then(Value::as_str) {
                Some("function") => {}
                Some(other) => {
                    return Err(invalid(
                        format!(
                            "`{}` is `{other}`: only `function` tools are served; built-in tools (web_search, \
                             file_search, code_interpreter, ...) run on OpenAI's servers",
                            at("type")
                        ),
                        &at("type"),
                    ))
                }
                None => return Err(invalid(format!("`{}` must be a string", at("type")), &at("type"))),
            }
            let Some(name) = tool.get("name").and_then(Value::as_str).filter(|n| !n.is_empty()) else {
                return Err(invalid(format!("`{}` must be a non-empty string", at("name")), &at("name")));
            };
            let mut function = Map::new();
            function.insert("name".into(), json!(name));
            for key in ["description", "parameters", "strict"] {
                if let Some(v) = tool.get(key).filter(|v| !v.is_null()) {
                    function.insert(key.into(), v.clone());
                }
            }
            Ok(json!({"type": "function", "function": function}))
        })
        .collect()
}

/// `auto` / `none` / `required`, a named function (`{type: function, name}`),
/// or `allowed_tools` listing functions; anything else names a built-in tool.
pub(super) fn choice(value: &Value) -> Result<Value, ApiError> {
    let refuse = || {
        invalid(
            "`tool_choice` must be `auto`, `none`, `required`, `{\"type\": \"function\", \"name\": ...}` or \
             `allowed_tools` listing functions",
            "tool_choice",
        )
    };
    match value {
        Value::String(s) if matches!(s.as_str(), "auto" | "none" | "required") => Ok(value.clone()),
        Value::Object(_) => match value.get("type").and_then(Value::as_str) {
            Some("function") => Ok(json!({"type": "function", "function": {"name": function_name(value)?}})),
            Some("allowed_tools") => {
                let mode = value.get("mode").and_then(Value::as_str).filter(|m| matches!(*m, "auto" | "required"));
                let Some(mode) = mode else { return Err(refuse()) };
                let tools = value.get("tools").and_then(Value::as_array).ok_or_else(refuse)?;
                let tools = tools
                    .iter()
                    .map(|t| match t.get("type").and_then(Value::as_str) {
                        Some("function") => Ok(json!({"type": "function", "function": {"name": function_name(t)?}})),
                        _ => Err(refuse()),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(json!({"type": "allowed_tools", "allowed_tools": {"mode": mode, "tools": tools}}))
            }
            _ => Err(refuse()),
        },
        _ => Err(refuse()),
    }
}

fn function_name(value: &Value) -> Result<&str, ApiError> {
    value
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| invalid("a function `tool_choice` needs a string `name`", "tool_choice.name"))
}
