use super::{completion, echo_of};
use crate::responses::{answer, Echo};
use serde_json::{json, Value};

fn text_of(response: &Value) -> String {
    // What the SDK's `response.output_text` computes.
    let mut text = String::new();
    for item in response["output"].as_array().expect("output") {
        if item["type"] == "message" {
            for part in item["content"].as_array().expect("content") {
                if part["type"] == "output_text" {
                    text.push_str(part["text"].as_str().expect("text"));
                }
            }
        }
    }
    text
}

#[test]
fn a_text_answer_is_a_completed_response_with_one_message() {
    let echo = echo_of(json!({"model": "gpt-4o", "input": "hi"}));
    let r =
        answer(&echo, &completion(json!({"role": "assistant", "content": "Hello there!", "refusal": null}), "stop"));
    assert_eq!(r["id"], "resp_B9MBs8CjcvOU2jLn4n570S5qMJKcT");
    assert_eq!(r["object"], "response");
    assert_eq!(r["created_at"], 1_741_569_952u64);
    assert_eq!(r["status"], "completed");
    assert_eq!(r["model"], "gpt-4o-2024-08-06");
    assert_eq!(r["error"], Value::Null);
    assert_eq!(r["incomplete_details"], Value::Null);
    assert_eq!(r["previous_response_id"], Value::Null);
    assert_eq!(
        r["output"],
        json!([{
            "type": "message", "id": "msg_B9MBs8CjcvOU2jLn4n570S5qMJKcT", "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "text": "Hello there!", "annotations": []}],
        }])
    );
    assert_eq!(text_of(&r), "Hello there!");
    assert_eq!(
        r["usage"],
        json!({
            "input_tokens": 19, "input_tokens_details": {"cached_tokens": 3},
            "output_tokens": 10, "output_tokens_details": {"reasoning_tokens": 2}, "total_tokens": 29,
        })
    );
    // Defaults echoed as OpenAI fills them; nothing is stored.
    for (field, value) in [
        ("instructions", Value::Null),
        ("temperature", Value::Null),
        ("top_p", Value::Null),
        ("max_output_tokens", Value::Null),
        ("tools", json!([])),
        ("tool_choice", json!("auto")),
        ("parallel_tool_calls", json!(true)),
        ("text", json!({"format": {"type": "text"}})),
        ("metadata", json!({})),
        ("store", json!(false)),
        ("background", json!(false)),
        ("truncation", json!("disabled")),
    ] {
        assert_eq!(r[field], value, "{field}");
    }
}

#[test]
fn the_request_fields_are_echoed() {
    let tools = json!([{"type": "function", "name": "f", "parameters": {"type": "object"}}]);
    let text = json!({"format": {"type": "json_schema", "name": "n", "schema": {"type": "object"}}});
    let echo = echo_of(json!({
        "model": "gpt-4o", "input": "hi", "instructions": "Be brief.", "temperature": 0.5, "top_p": 0.8,
        "max_output_tokens": 100, "tools": tools, "tool_choice": "required", "parallel_tool_calls": false,
        "text": text, "metadata": {"k": "v"}, "store": true, "user": "u", "reasoning": {"effort": "low"},
    }));
    let r = answer(&echo, &completion(json!({"role": "assistant", "content": "{}"}), "stop"));
    assert_eq!(r["instructions"], "Be brief.");
    assert_eq!(r["temperature"], 0.5);
    assert_eq!(r["top_p"], 0.8);
    assert_eq!(r["max_output_tokens"], 100);
    assert_eq!(r["tools"], tools);
    assert_eq!(r["tool_choice"], "required");
    assert_eq!(r["parallel_tool_calls"], false);
    assert_eq!(r["text"], text);
    assert_eq!(r["metadata"], json!({"k": "v"}));
    assert_eq!(r["user"], "u");
    assert_eq!(r["reasoning"], json!({"effort": "low"}));
    // Deja stores nothing, whatever was asked.
    assert_eq!(r["store"], false);
}

#[test]
fn tool_calls_are_function_call_items_after_the_text() {
    let calls = json!([
        {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
        {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
    ]);
    let echo = Echo::default();
    let r =
        answer(&echo, &completion(json!({"role": "assistant", "content": null, "tool_calls": calls}), "tool_calls"));
    assert_eq!(r["status"], "completed");
    assert_eq!(
        r["output"],
        json!([
            {"type": "function_call", "id": "fc_B9MBs8CjcvOU2jLn4n570S5qMJKcT_0", "call_id": "call_a",
             "name": "get_weather", "arguments": "{\"city\":\"Paris\"}", "status": "completed"},
            {"type": "function_call", "id": "fc_B9MBs8CjcvOU2jLn4n570S5qMJKcT_1", "call_id": "call_b",
             "name": "get_time", "arguments": "{}", "status": "completed"},
        ])
    );
    assert_eq!(text_of(&r), "");
    let r = answer(
        &echo,
        &completion(json!({"role": "assistant", "content": "Checking.", "tool_calls": calls}), "tool_calls"),
    );
    let kinds: Vec<&str> =
        r["output"].as_array().expect("output").iter().map(|i| i["type"].as_str().unwrap_or("")).collect();
    assert_eq!(kinds, ["message", "function_call", "function_call"]);
    assert_eq!(text_of(&r), "Checking.");
}

#[test]
fn a_length_finish_is_incomplete_for_max_output_tokens() {
    let r = answer(&Echo::default(), &completion(json!({"role": "assistant", "content": "Once upon"}), "length"));
    assert_eq!(r["status"], "incomplete");
    assert_eq!(r["incomplete_details"], json!({"reason": "max_output_tokens"}));
    assert_eq!(r["output"][0]["status"], "incomplete");
    assert_eq!(text_of(&r), "Once upon");
    let r = answer(&Echo::default(), &completion(json!({"role": "assistant", "content": ""}), "content_filter"));
    assert_eq!(r["status"], "incomplete");
    assert_eq!(r["incomplete_details"], json!({"reason": "content_filter"}));
}

#[test]
fn a_refusal_is_a_refusal_part() {
    let r = answer(
        &Echo::default(),
        &completion(json!({"role": "assistant", "content": null, "refusal": "I can't help with that."}), "stop"),
    );
    assert_eq!(r["output"][0]["content"], json!([{"type": "refusal", "refusal": "I can't help with that."}]));
}

#[test]
fn ids_follow_the_chat_id_so_a_cached_answer_keeps_them() {
    let chat = completion(json!({"role": "assistant", "content": "x"}), "stop");
    assert_eq!(answer(&Echo::default(), &chat)["id"], answer(&Echo::default(), &chat)["id"]);
    let mut anthropic = chat.clone();
    anthropic["id"] = json!("msg_01XFDUDYJgAACzvnptvVoYEL");
    assert_eq!(answer(&Echo::default(), &anthropic)["id"], "resp_01XFDUDYJgAACzvnptvVoYEL");
    let mut none = chat;
    none["id"] = Value::Null;
    let id = answer(&Echo::default(), &none)["id"].as_str().expect("an id").to_string();
    assert!(id.len() > "resp_".len() && id.starts_with("resp_"), "{id}");
}

#[test]
fn an_answer_without_usage_or_model_still_shapes() {
    let echo = echo_of(json!({"model": "auto", "input": "hi"}));
    let chat = json!({"id": "chatcmpl-1", "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                      "finish_reason": "stop"}]});
    let r = answer(&echo, &chat);
    assert_eq!(r["usage"], Value::Null);
    assert_eq!(r["model"], "auto");
    assert_eq!(text_of(&r), "ok");
    let r = answer(&echo, &json!({"id": "chatcmpl-1", "choices": []}));
    assert_eq!(r["status"], "failed");
    assert_eq!(r["error"]["code"], "server_error");
}
