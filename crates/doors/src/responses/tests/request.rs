use super::{refused, translate};
use serde_json::{json, Value};

#[test]
fn a_string_input_is_the_chat_request_a_chat_client_would_send() {
    // Nothing but model and messages: the same exact-cache key as the chat door's request.
    let (chat, stream, _) = translate(json!({"model": "gpt-4o", "input": "What is Deja?"}));
    assert_eq!(chat, json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "What is Deja?"}]}));
    assert!(!stream);
}

#[test]
fn every_supported_field_is_translated() {
    let (chat, stream, _) = translate(json!({
        "model": "gpt-4o",
        "instructions": "Be brief.",
        "input": [{"role": "user", "content": "Weather in Paris?"}],
        "temperature": 0.2,
        "top_p": 0.9,
        "max_output_tokens": 300,
        "metadata": {"task": "reasoning"},
        "user": "user-123",
        "service_tier": "default",
        "tools": [{
            "type": "function", "name": "get_weather", "description": "Current weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            "strict": true,
        }],
        "tool_choice": {"type": "function", "name": "get_weather"},
        "parallel_tool_calls": false,
        "text": {"format": {"type": "json_schema", "name": "weather", "description": "A forecast",
                            "schema": {"type": "object"}, "strict": true},
                 "verbosity": "low"},
        "reasoning": {"effort": "low", "summary": "auto"},
        "store": false,
        "stream": true,
    }));
    assert!(stream);
    assert_eq!(
        chat,
        json!({
            "model": "gpt-4o",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Weather in Paris?"},
            ],
            "temperature": 0.2,
            "top_p": 0.9,
            "max_tokens": 300,
            "metadata": {"task": "reasoning"},
            "user": "user-123",
            "service_tier": "default",
            "tools": [{"type": "function", "function": {
                "name": "get_weather", "description": "Current weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
                "strict": true,
            }}],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            "parallel_tool_calls": false,
            "response_format": {"type": "json_schema", "json_schema": {
                "name": "weather", "description": "A forecast", "schema": {"type": "object"}, "strict": true,
            }},
            "verbosity": "low",
            "reasoning_effort": "low",
            "stream": true,
            "stream_options": {"include_usage": true},
        })
    );
}

#[test]
fn null_fields_are_absent_fields() {
    let nulls = json!({
        "model": "gpt-4o", "input": "hi", "instructions": null, "temperature": null, "top_p": null,
        "max_output_tokens": null, "metadata": null, "user": null, "tools": null, "tool_choice": null,
        "parallel_tool_calls": null, "text": null, "reasoning": null, "store": null, "stream": null,
        "previous_response_id": null, "conversation": null, "prompt": null, "background": null,
        "include": null, "truncation": null, "service_tier": null, "top_logprobs": null, "some_new_field": null,
    });
    let (chat, stream, _) = translate(nulls);
    assert_eq!(chat, json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}));
    assert!(!stream);
    let (chat, _, _) = translate(json!({"model": "m", "input": "hi", "text": {"format": null, "verbosity": null},
                                        "reasoning": {"effort": null, "summary": null}}));
    assert_eq!(chat, json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}));
}

#[test]
fn hints_that_cannot_change_the_answer_are_accepted_and_not_sent() {
    let (chat, _, _) = translate(json!({
        "model": "m", "input": "hi", "store": true, "include": ["reasoning.encrypted_content"],
        "truncation": "disabled", "safety_identifier": "u1", "prompt_cache_key": "k", "prompt_cache_retention": "24h",
        "max_tool_calls": 3, "background": false, "stream_options": {"include_obfuscation": false},
        "top_logprobs": 0, "reasoning": {"summary": "detailed"},
    }));
    assert_eq!(chat, json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}));
}

#[test]
fn text_formats() {
    let format = |f: Value| translate(json!({"model": "m", "input": "x", "text": {"format": f}})).0;
    assert_eq!(format(json!({"type": "text"})).get("response_format"), None);
    assert_eq!(format(json!({"type": "json_object"}))["response_format"], json!({"type": "json_object"}));
    assert_eq!(
        format(json!({"type": "json_schema", "name": "n", "schema": {"type": "object"}}))["response_format"],
        json!({"type": "json_schema", "json_schema": {"name": "n", "schema": {"type": "object"}}})
    );
}

#[test]
fn tool_choices() {
    let tools = json!([{"type": "function", "name": "f"}, {"type": "function", "name": "g"}]);
    let choice = |c: Value| translate(json!({"model": "m", "input": "x", "tools": tools, "tool_choice": c})).0;
    for s in ["auto", "none", "required"] {
        assert_eq!(choice(json!(s))["tool_choice"], json!(s));
    }
    assert_eq!(
        choice(json!({"type": "function", "name": "g"}))["tool_choice"],
        json!({"type": "function", "function": {"name": "g"}})
    );
    assert_eq!(
        choice(json!({"type": "allowed_tools", "mode": "required", "tools": [{"type": "function", "name": "f"}]}))
            ["tool_choice"],
        json!({"type": "allowed_tools", "allowed_tools": {"mode": "required", "tools": [
            {"type": "function", "function": {"name": "f"}},
        ]}})
    );
    // A function tool with nothing but a name stays that small.
    assert_eq!(
        choice(json!("auto"))["tools"],
        json!([
            {"type": "function", "function": {"name": "f"}}, {"type": "function", "function": {"name": "g"}},
        ])
    );
    // Without tools, tool_choice and parallel_tool_calls mean nothing and chat refuses them.
    let (chat, _, _) =
        translate(json!({"model": "m", "input": "x", "tool_choice": "none", "parallel_tool_calls": true}));
    assert_eq!(chat, json!({"model": "m", "messages": [{"role": "user", "content": "x"}]}));
    // A call the client requires cannot be made without tools.
    for required in [json!("required"), json!({"type": "function", "name": "g"})] {
        let (param, _) = refused(json!({"model": "m", "input": "x", "tool_choice": required}));
        assert_eq!(param, "tool_choice");
    }
}

#[test]
fn input_items_become_chat_messages() {
    let (chat, _, _) = translate(json!({
        "model": "m",
        "instructions": "Be brief.",
        "input": [
            {"role": "developer", "content": [{"type": "input_text", "text": "Answer in French."}]},
            {"type": "message", "role": "user", "content": [
                {"type": "input_text", "text": "What is in this image?"},
                {"type": "input_image", "image_url": "https://example.com/cat.png", "detail": "low"},
                {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo="},
                {"type": "input_file", "filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBER"},
            ]},
            {"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
             "content": [{"type": "output_text", "text": "A cat", "annotations": []},
                         {"type": "output_text", "text": ".", "annotations": []}]},
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {"type": "function_call", "id": "fc_1", "call_id": "call_a", "name": "look", "arguments": "{\"x\":1}"},
            {"type": "function_call", "call_id": "call_b", "name": "look", "arguments": "{}", "status": "completed"},
            {"type": "function_call_output", "call_id": "call_a", "output": "{\"seen\": true}"},
            {"type": "function_call_output", "call_id": "call_b",
             "output": [{"type": "input_text", "text": "nothing"}]},
            {"role": "user", "content": "And now?"},
            {"type": "function_call", "call_id": "call_c", "name": "look", "arguments": "{}"},
        ],
    }));
    assert_eq!(
        chat["messages"],
        json!([
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
            {"role": "user", "content": [
                {"type": "text", "text": "What is in this image?"},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "low"}},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBER"}},
            ]},
            {"role": "assistant", "content": "A cat.", "tool_calls": [
                {"id": "call_a", "type": "function", "function": {"name": "look", "arguments": "{\"x\":1}"}},
                {"id": "call_b", "type": "function", "function": {"name": "look", "arguments": "{}"}},
            ]},
            {"role": "tool", "tool_call_id": "call_a", "content": "{\"seen\": true}"},
            {"role": "tool", "tool_call_id": "call_b", "content": [{"type": "text", "text": "nothing"}]},
            {"role": "user", "content": "And now?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_c", "type": "function", "function": {"name": "look", "arguments": "{}"}},
            ]},
        ])
    );
    // Every translated message passes the chat door's own checks.
    deja_api::chat::ChatRequest::parse(chat.to_string().as_bytes()).expect("a valid chat request");
}

#[test]
fn an_assistant_refusal_is_kept_as_the_refusal() {
    let (chat, _, _) = translate(json!({"model": "m", "input": [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": [{"type": "refusal", "refusal": "I can't help with that."}]},
        {"role": "user", "content": "y"},
    ]}));
    assert_eq!(
        chat["messages"][1],
        json!({"role": "assistant", "content": null, "refusal": "I can't help with that."})
    );
}

#[test]
fn each_refusal_names_its_field() {
    let base = |extra: Value| {
        let mut body = json!({"model": "m", "input": "x"});
        for (k, v) in extra.as_object().expect("object") {
            body[k] = v.clone();
        }
        body
    };
    let cases = [
        (base(json!({"previous_response_id": "resp_1"})), "previous_response_id"),
        (base(json!({"conversation": "conv_1"})), "conversation"),
        (base(json!({"background": true})), "background"),
        (base(json!({"prompt": {"id": "pmpt_1"}})), "prompt"),
        (base(json!({"input": [{"type": "item_reference", "id": "msg_1"}]})), "input[0].type"),
        (base(json!({"tools": [{"type": "web_search"}]})), "tools[0].type"),
        (base(json!({"tools": [{"type": "function", "name": "f"}, {"type": "file_search"}]})), "tools[1].type"),
        (base(json!({"tools": [{"type": "code_interpreter", "container": {"type": "auto"}}]})), "tools[0].type"),
        (base(json!({"tools": [{"type": "custom", "name": "c"}]})), "tools[0].type"),
        (base(json!({"tools": [{"type": "function"}]})), "tools[0].name"),
        (base(json!({"tools": "f"})), "tools"),
        (base(json!({"tool_choice": {"type": "web_search_preview"}})), "tool_choice"),
        (base(json!({"tool_choice": {"type": "function"}})), "tool_choice.name"),
        (base(json!({"tool_choice": "any"})), "tool_choice"),
        (base(json!({"truncation": "auto"})), "truncation"),
        (base(json!({"top_logprobs": 5})), "top_logprobs"),
        (base(json!({"include": ["message.output_text.logprobs"]})), "include"),
        (base(json!({"context_management": [{"type": "compaction"}]})), "context_management"),
        (base(json!({"frobnicate": 1})), "frobnicate"),
        (base(json!({"max_output_tokens": 0})), "max_output_tokens"),
        (base(json!({"temperature": "hot"})), "temperature"),
        (base(json!({"stream": "yes"})), "stream"),
        (base(json!({"metadata": "x"})), "metadata"),
        (base(json!({"instructions": ["x"]})), "instructions"),
        (base(json!({"text": {"format": {"type": "json_schema", "schema": {}}}})), "text.format.name"),
        (base(json!({"text": {"format": {"type": "json_schema", "name": "n"}}})), "text.format.schema"),
        (base(json!({"text": {"format": {"type": "grammar"}}})), "text.format.type"),
        (base(json!({"text": {"colour": "red"}})), "text.colour"),
        (base(json!({"reasoning": {"effort": 3}})), "reasoning.effort"),
        (base(json!({"model": ""})), "model"),
        (json!({"input": "x"}), "model"),
        (json!({"model": "m"}), "input"),
        (base(json!({"input": 42})), "input"),
        (base(json!({"input": []})), "input"),
        (base(json!({"input": [{"type": "reasoning", "summary": []}]})), "input"),
        (base(json!({"input": [{"content": "x"}]})), "input[0].type"),
        (base(json!({"input": [{"role": "tool", "content": "x"}]})), "input[0].role"),
        (base(json!({"input": [{"role": "user", "content": 1}]})), "input[0].content"),
        (
            base(json!({"input": [{"role": "user", "content": "x"}, {"type": "web_search_call", "id": "ws"}]})),
            "input[1].type",
        ),
        (base(json!({"input": [{"type": "function_call", "name": "f", "arguments": "{}"}]})), "input[0].call_id"),
        (base(json!({"input": [{"type": "function_call", "call_id": "c", "name": "f"}]})), "input[0].arguments"),
        (base(json!({"input": [{"type": "function_call_output", "output": "x"}]})), "input[0].call_id"),
        (
            base(json!({"input": [{"type": "function_call_output", "call_id": "c",
                                   "output": [{"type": "input_image", "image_url": "https://x"}]}]})),
            "input[0].output[0].type",
        ),
        (
            base(json!({"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file-1"}]}]})),
            "input[0].content[0].file_id",
        ),
        (
            base(json!({"input": [{"role": "user", "content": [{"type": "input_image", "detail": "auto"}]}]})),
            "input[0].content[0].image_url",
        ),
        (
            base(json!({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "file-1"}]}]})),
            "input[0].content[0].file_id",
        ),
        (
            base(json!({"input": [{"role": "user", "content": [{"type": "input_file", "file_url": "https://x"}]}]})),
            "input[0].content[0].file_url",
        ),
        (
            base(
                json!({"input": [{"role": "system", "content": [{"type": "input_image", "image_url": "https://x"}]}]}),
            ),
            "input[0].content[0].type",
        ),
        (
            base(json!({"input": [{"role": "user", "content": [{"type": "output_text", "text": "x"}]}]})),
            "input[0].content[0].type",
        ),
        (
            base(json!({"input": [{"role": "assistant", "content": [{"type": "input_image", "image_url": "x"}]}]})),
            "input[0].content[0].type",
        ),
        (base(json!({"input": [{"role": "user", "content": [{"type": "input_text"}]}]})), "input[0].content[0].text"),
    ];
    for (body, param) in cases {
        let (got, message) = refused(body.clone());
        assert_eq!(got, param, "{body}: {message}");
        let field = param.rsplit(['.', '[']).next().unwrap_or(param).trim_end_matches(']');
        assert!(message.contains(field) || message.contains(param), "{param}: {message}");
    }
}

#[test]
fn a_body_that_is_not_a_json_object_is_refused() {
    for body in [&b"{"[..], b"[1]", b"\"x\""] {
        let e = super::super::translate(body).expect_err("refused");
        assert_eq!(e.status(), 400);
    }
}

#[test]
fn the_messages_for_stateful_fields_say_why() {
    let (_, message) = refused(json!({"model": "m", "input": "x", "previous_response_id": "resp_1"}));
    assert!(message.contains("input"), "{message}");
    let (_, message) = refused(json!({"model": "m", "input": "x", "tools": [{"type": "web_search_preview"}]}));
    assert!(message.contains("web_search_preview") && message.contains("function"), "{message}");
}
