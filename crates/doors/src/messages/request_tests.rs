//! Fixtures follow the examples in Anthropic's Messages API reference and
//! its tool-use and vision guides.

use super::*;
use deja_api::ChatRequest;
use serde_json::{json, Value};

fn translated(body: Value) -> crate::Translated<Echo> {
    translate(body.to_string().as_bytes()).expect("translatable")
}

fn chat(body: Value) -> Value {
    let chat = translated(body).chat;
    // Whatever the door produces, the chat path must accept as it is.
    ChatRequest::parse(chat.to_string().as_bytes()).expect("a valid chat request");
    chat
}

fn refused(body: Value) -> deja_api::ApiError {
    translate(body.to_string().as_bytes()).expect_err("refused")
}

/// A minimal valid request with `field` set to `value`.
fn with(field: &str, value: Value) -> Value {
    let mut body = hello();
    body[field] = value;
    body
}

fn hello() -> Value {
    json!({"model": "claude-sonnet-4-5", "max_tokens": 1024, "messages": [{"role": "user", "content": "Hello, world"}]})
}

fn assert_names(e: &deja_api::ApiError, param: &str) {
    assert_eq!(e.status(), 400, "{e}");
    assert_eq!(e.param.as_deref(), Some(param), "{e}");
    assert!(e.message.contains(param), "the message names `{param}`: {}", e.message);
}

#[test]
fn the_reference_hello_world_request_is_the_chat_request_a_chat_client_sends() {
    let t = translated(hello());
    assert_eq!(
        t.chat,
        json!({"model": "claude-sonnet-4-5", "max_tokens": 1024, "messages": [{"role": "user", "content": "Hello, world"}]})
    );
    assert!(!t.stream);
    assert_eq!(t.echo.model, "claude-sonnet-4-5");
    assert!(t.echo.input_tokens > 0);
}

#[test]
fn sampling_and_stop_fields_are_carried_over() {
    let mut body = hello();
    body["temperature"] = json!(0.5);
    body["top_p"] = json!(0.9);
    body["top_k"] = json!(40);
    body["stop_sequences"] = json!(["\n\nHuman:", "END"]);
    body["metadata"] = json!({"user_id": "user-42"});
    let t = translated(body);
    let c = &t.chat;
    assert_eq!(c["temperature"], 0.5);
    assert_eq!(c["top_p"], 0.9);
    assert_eq!(c["stop"], json!(["\n\nHuman:", "END"]));
    assert_eq!(c["user"], "user-42");
    assert_eq!(t.echo.stop_sequences, vec!["\n\nHuman:".to_string(), "END".to_string()]);
    // No chat field for top_k: it goes as an extra field, which the exact
    // key covers and the chat path forwards.
    let parsed = ChatRequest::parse(c.to_string().as_bytes()).expect("valid");
    assert_eq!(parsed.extra.get("top_k"), Some(&json!(40)));
    assert!(c.get("metadata").is_none());
}

#[test]
fn an_empty_stop_list_and_null_fields_are_left_out() {
    let mut body = hello();
    for field in ["temperature", "top_p", "top_k", "system", "tools", "tool_choice", "metadata", "thinking", "stream"] {
        body[field] = Value::Null;
    }
    body["stop_sequences"] = json!([]);
    assert_eq!(chat(body), chat(hello()));
}

#[test]
fn streaming_asks_chat_for_usage_so_message_delta_can_carry_it() {
    let t = translated(with("stream", json!(true)));
    assert!(t.stream);
    assert_eq!(t.chat["stream"], true);
    assert_eq!(t.chat["stream_options"], json!({"include_usage": true}));
    let t = translated(with("stream", json!(false)));
    assert!(!t.stream);
    assert!(t.chat.get("stream").is_none() && t.chat.get("stream_options").is_none());
}

#[test]
fn metadata_task_is_the_routing_tag_and_other_keys_are_refused() {
    let c = chat(with("metadata", json!({"user_id": null, "task": "reasoning"})));
    assert_eq!(c["metadata"], json!({"task": "reasoning"}));
    assert!(c.get("user").is_none());
    assert_names(&refused(with("metadata", json!({"session": "x"}))), "metadata.session");
    assert_names(&refused(with("metadata", json!({"user_id": 7}))), "metadata.user_id");
}

#[test]
fn the_system_prompt_becomes_one_leading_system_message() {
    let c = chat(with("system", json!("You are a helpful assistant.")));
    assert_eq!(c["messages"][0], json!({"role": "system", "content": "You are a helpful assistant."}));
    assert_eq!(c["messages"][1], json!({"role": "user", "content": "Hello, world"}));
    // Blocks, with prompt-cache hints that cannot change the answer.
    let c = chat(with(
        "system",
        json!([
            {"type": "text", "text": "You are Claude Code."},
            {"type": "text", "text": "Be terse.", "cache_control": {"type": "ephemeral"}},
        ]),
    ));
    assert_eq!(
        c["messages"][0],
        json!({"role": "system", "content": [
            {"type": "text", "text": "You are Claude Code."}, {"type": "text", "text": "Be terse."},
        ]})
    );
    let c =
        chat(with("system", json!([{"type": "text", "text": "Only one.", "cache_control": {"type": "ephemeral"}}])));
    assert_eq!(c["messages"][0], json!({"role": "system", "content": "Only one."}));
    assert_eq!(chat(with("system", json!(""))), chat(hello()));
    assert_names(&refused(with("system", json!([{"type": "image", "source": {}}]))), "system[0]");
    assert_names(&refused(with("system", json!(7))), "system");
}

#[test]
fn a_single_text_block_is_the_same_request_as_a_string() {
    let blocks = with(
        "messages",
        json!([{"role": "user", "content": [{"type": "text", "text": "Hello, world", "cache_control": {"type": "ephemeral"}}]}]),
    );
    assert_eq!(chat(blocks), chat(hello()));
}

#[test]
fn images_become_image_url_parts() {
    let c = chat(with(
        "messages",
        json!([{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQ"}},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/ant.jpg"}},
            {"type": "text", "text": "Describe these images."},
        ]}]),
    ));
    assert_eq!(
        c["messages"][0]["content"],
        json!([
            {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/ant.jpg"}},
            {"type": "text", "text": "Describe these images."},
        ])
    );
    let file = json!([{"role": "user", "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}]}]);
    assert_names(&refused(with("messages", file)), "messages[0].content[0].source.type");
    let bad = json!([{"role": "user", "content": [{"type": "image", "source": {"type": "base64", "data": "x"}}]}]);
    assert_names(&refused(with("messages", bad)), "messages[0].content[0].source");
}

/// The tool-use guide's get_weather round trip.
fn weather_tool() -> Value {
    json!({
        "name": "get_weather",
        "description": "Get the current weather in a given location",
        "input_schema": {
            "type": "object",
            "properties": {"location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"}},
            "required": ["location"],
        },
    })
}

#[test]
fn a_tool_round_trip_becomes_tool_calls_and_tool_messages() {
    let mut body = hello();
    body["tools"] = json!([weather_tool()]);
    body["messages"] = json!([
        {"role": "user", "content": "What is the weather like in San Francisco?"},
        {"role": "assistant", "content": [
            {"type": "text", "text": "I'll check the weather."},
            {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_weather",
             "input": {"location": "San Francisco, CA"}},
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_01A09q90qw90lq917835lq9", "content": "15 degrees"},
            {"type": "text", "text": "And tomorrow?"},
        ]},
    ]);
    let c = chat(body);
    assert_eq!(
        c["tools"],
        json!([{"type": "function", "function": {
            "name": "get_weather",
            "description": "Get the current weather in a given location",
            "parameters": weather_tool()["input_schema"],
        }}])
    );
    let messages = c["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 4);
    assert_eq!(messages[1]["role"], "assistant");
    assert_eq!(messages[1]["content"], "I'll check the weather.");
    let call = &messages[1]["tool_calls"][0];
    assert_eq!(call["id"], "toolu_01A09q90qw90lq917835lq9");
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value = serde_json::from_str(call["function"]["arguments"].as_str().expect("a string")).expect("JSON");
    assert_eq!(args, json!({"location": "San Francisco, CA"}));
    assert_eq!(
        messages[2],
        json!({"role": "tool", "tool_call_id": "toolu_01A09q90qw90lq917835lq9", "content": "15 degrees"})
    );
    assert_eq!(messages[3], json!({"role": "user", "content": "And tomorrow?"}));
}

#[test]
fn tool_results_take_text_blocks_and_say_when_they_are_errors() {
    let turn = |result: Value| {
        let mut body = hello();
        body["messages"] = json!([
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "get_weather", "input": {}}]},
            {"role": "user", "content": [result]},
        ]);
        body
    };
    let c = chat(turn(json!({"type": "tool_result", "tool_use_id": "t1", "content": [
        {"type": "text", "text": "15 degrees"}, {"type": "text", "text": "sunny"},
    ]})));
    assert_eq!(c["messages"][1]["content"], Value::Null, "an assistant turn of calls only has no text");
    assert_eq!(c["messages"][1]["tool_calls"][0]["function"]["arguments"], "{}");
    assert_eq!(
        c["messages"][2]["content"],
        json!([{"type": "text", "text": "15 degrees"}, {"type": "text", "text": "sunny"}])
    );
    assert_eq!(c["messages"].as_array().map(Vec::len), Some(3), "no empty user message after the results");
    let c =
        chat(turn(json!({"type": "tool_result", "tool_use_id": "t1", "content": "no such city", "is_error": true})));
    assert_eq!(c["messages"][2]["content"], "Error: no such city");
    let c = chat(turn(json!({"type": "tool_result", "tool_use_id": "t1", "is_error": true})));
    assert_eq!(c["messages"][2]["content"], "Error");
    let c = chat(turn(json!({"type": "tool_result", "tool_use_id": "t1"})));
    assert_eq!(c["messages"][2]["content"], "");
    let image = json!({"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "image", "source": {}}]});
    assert_names(&refused(turn(image)), "messages[2].content[0].content[0]");
    assert_names(&refused(turn(json!({"type": "tool_result", "content": "x"}))), "messages[2].content[0].tool_use_id");
}

#[test]
fn tool_choice_maps_to_chat_and_parallel_use_can_be_disabled() {
    let choose = |choice: Value| {
        let mut body = hello();
        body["tools"] = json!([weather_tool()]);
        body["tool_choice"] = choice;
        chat(body)
    };
    assert_eq!(choose(json!({"type": "auto"}))["tool_choice"], "auto");
    assert_eq!(choose(json!({"type": "any"}))["tool_choice"], "required");
    assert_eq!(choose(json!({"type": "none"}))["tool_choice"], "none");
    let c = choose(json!({"type": "tool", "name": "get_weather", "disable_parallel_tool_use": true}));
    assert_eq!(c["tool_choice"], json!({"type": "function", "function": {"name": "get_weather"}}));
    assert_eq!(c["parallel_tool_calls"], false);
    assert!(choose(json!({"type": "auto", "disable_parallel_tool_use": false})).get("parallel_tool_calls").is_none());
    assert!(choose(json!({"type": "none", "disable_parallel_tool_use": true})).get("parallel_tool_calls").is_none());
    let mut body = hello();
    body["tools"] = json!([weather_tool()]);
    body["tool_choice"] = json!({"type": "sometimes"});
    assert_names(&refused(body.clone()), "tool_choice.type");
    body["tool_choice"] = json!({"type": "tool"});
    assert_names(&refused(body), "tool_choice.name");
}

#[test]
fn a_tool_choice_without_tools_is_dropped_when_it_means_nothing() {
    assert_eq!(chat(with("tool_choice", json!({"type": "auto"}))), chat(hello()));
    assert_eq!(chat(with("tool_choice", json!({"type": "none"}))), chat(hello()));
    assert_eq!(chat(with("tools", json!([]))), chat(hello()));
    assert_names(&refused(with("tool_choice", json!({"type": "any"}))), "tool_choice");
}

#[test]
fn custom_tools_keep_strict_and_server_tools_are_refused() {
    let mut tool = weather_tool();
    tool["type"] = json!("custom");
    tool["strict"] = json!(true);
    tool["cache_control"] = json!({"type": "ephemeral"});
    let c = chat(with("tools", json!([tool])));
    assert_eq!(c["tools"][0]["function"]["strict"], true);
    for server in [
        json!({"type": "web_search_20250305", "name": "web_search", "max_uses": 5}),
        json!({"type": "bash_20250124", "name": "bash"}),
        json!({"type": "computer_20250124", "name": "computer", "display_width_px": 1024, "display_height_px": 768}),
        json!({"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"}),
    ] {
        let e = refused(with("tools", json!([weather_tool(), server])));
        assert_names(&e, "tools[1].type");
    }
    assert_names(&refused(with("tools", json!([{"name": "x"}]))), "tools[0].input_schema");
    assert_names(&refused(with("tools", json!([{"input_schema": {"type": "object"}}]))), "tools[0].name");
    assert_names(&refused(with("tools", json!({"name": "x"}))), "tools");
}

#[test]
fn required_fields_are_named_when_missing() {
    let mut body = hello();
    body.as_object_mut().expect("object").remove("max_tokens");
    assert_names(&refused(body), "max_tokens");
    let mut body = hello();
    body.as_object_mut().expect("object").remove("model");
    assert_names(&refused(body), "model");
    let mut body = hello();
    body.as_object_mut().expect("object").remove("messages");
    assert_names(&refused(body), "messages");
    assert_names(&refused(with("max_tokens", json!(0))), "max_tokens");
    assert_names(&refused(with("max_tokens", Value::Null)), "max_tokens");
    assert_names(&refused(with("model", json!(""))), "model");
    assert_names(&refused(with("messages", json!([]))), "messages");
}

#[test]
fn values_of_the_wrong_kind_are_refused_by_name() {
    assert_names(&refused(with("temperature", json!(1.5))), "temperature");
    assert_names(&refused(with("top_p", json!("high"))), "top_p");
    assert_names(&refused(with("top_k", json!(-1))), "top_k");
    assert_names(&refused(with("stop_sequences", json!("END"))), "stop_sequences");
    assert_names(&refused(with("stream", json!("yes"))), "stream");
    assert_names(&refused(with("metadata", json!("x"))), "metadata");
    let e = translate(b"{not json").expect_err("refused");
    assert_eq!(e.status(), 400);
    assert_eq!(translate(b"[1]").expect_err("refused").status(), 400);
}

#[test]
fn thinking_is_refused_unless_disabled() {
    assert_eq!(chat(with("thinking", json!({"type": "disabled"}))), chat(hello()));
    assert_names(&refused(with("thinking", json!({"type": "enabled", "budget_tokens": 2048}))), "thinking");
    assert_names(&refused(with("thinking", json!({"type": "adaptive"}))), "thinking");
}

#[test]
fn hints_that_cannot_change_the_answer_are_accepted_and_the_rest_refused() {
    for (field, value) in [
        ("cache_control", json!({"type": "ephemeral"})),
        ("service_tier", json!("auto")),
        ("inference_geo", json!("us")),
        ("speed", json!("standard")),
        ("diagnostics", json!({"previous_message_id": "msg_1"})),
    ] {
        assert_eq!(chat(with(field, value)), chat(hello()), "{field}");
    }
    for field in ["container", "context_management", "mcp_servers", "output_config", "frobnicate"] {
        assert_names(&refused(with(field, json!({"x": 1}))), field);
    }
}

#[test]
fn blocks_without_a_chat_equivalent_are_refused_with_their_path() {
    let turn = |role: &str, block: Value| {
        with("messages", json!([{"role": "user", "content": "hi"}, {"role": role, "content": [block]}]))
    };
    let document = json!({"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "x"}});
    assert_names(&refused(turn("user", document)), "messages[1].content[0]");
    let thinking = json!({"type": "thinking", "thinking": "hmm", "signature": "sig"});
    assert_names(&refused(turn("assistant", thinking)), "messages[1].content[0]");
    assert_names(
        &refused(turn("assistant", json!({"type": "redacted_thinking", "data": "x"}))),
        "messages[1].content[0]",
    );
    let server = json!({"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}});
    assert_names(&refused(turn("assistant", server)), "messages[1].content[0]");
    assert_names(&refused(turn("assistant", json!({"type": "image", "source": {}}))), "messages[1].content[0]");
    assert_names(&refused(turn("user", json!({"text": "no type"}))), "messages[1].content[0]");
    assert_names(&refused(turn("user", json!({"type": "text"}))), "messages[1].content[0].text");
    assert_names(&refused(turn("assistant", json!({"type": "tool_use", "name": "x"}))), "messages[1].content[0]");
    let args = json!({"type": "tool_use", "id": "t", "name": "x", "input": "[1]"});
    assert_names(&refused(turn("assistant", args)), "messages[1].content[0].input");
}

#[test]
fn turns_need_a_known_role_and_content() {
    let msgs = |m: Value| with("messages", json!([m]));
    assert_names(&refused(msgs(json!({"role": "system", "content": "x"}))), "messages[0].role");
    assert_names(&refused(msgs(json!({"content": "x"}))), "messages[0].role");
    assert_names(&refused(msgs(json!({"role": "user"}))), "messages[0].content");
    assert_names(&refused(msgs(json!({"role": "user", "content": []}))), "messages[0].content");
    assert_names(&refused(msgs(json!({"role": "user", "content": 3}))), "messages[0].content");
}

#[test]
fn an_assistant_prefill_is_passed_on_as_the_last_turn() {
    let c = chat(with(
        "messages",
        json!([
            {"role": "user", "content": "What's the Greek name for Sun? (A) Sol (B) Helios (C) Sun"},
            {"role": "assistant", "content": "The best answer is ("},
        ]),
    ));
    assert_eq!(c["messages"][1], json!({"role": "assistant", "content": "The best answer is ("}));
}

#[test]
fn count_tokens_estimates_without_max_tokens() {
    let body = json!({"model": "claude-sonnet-4-5", "system": "You are a scientist",
                      "messages": [{"role": "user", "content": "Hello, Claude"}]});
    let n = count_tokens(body.to_string().as_bytes()).expect("counted")["input_tokens"].as_u64().expect("a count");
    // ("You are a scientist" + 8) + ("Hello, Claude" + 8) = 48 characters, 4 a token.
    assert_eq!(n, 12);
    let mut with_tools = body.clone();
    with_tools["tools"] = json!([weather_tool()]);
    let more = count_tokens(with_tools.to_string().as_bytes()).expect("counted")["input_tokens"].as_u64();
    assert!(more > Some(n), "tool definitions count: {more:?}");
    let e = count_tokens(json!({"model": "m"}).to_string().as_bytes()).expect_err("refused");
    assert_names(&e, "messages");
}
