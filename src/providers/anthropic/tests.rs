use super::*;

#[test]
fn a_chat_request_becomes_a_messages_request() {
    let body = json!({
        "model": "claude-x", "temperature": 0.2, "stop": "END", "n": 1, "logprobs": false, "seed": 7,
        "response_format": { "type": "json_object" }, "user": "u1",
        "messages": [
            { "role": "system", "content": "be brief" },
            { "role": "user", "content": [
                { "type": "text", "text": "what is this?" },
                { "type": "image_url", "image_url": { "url": "data:image/png;base64,iVBORw0" } },
                { "type": "image_url", "image_url": { "url": "https://example.com/cat.png" } },
            ]},
            { "role": "assistant", "content": null, "tool_calls": [
                { "id": "call_1", "type": "function", "function": { "name": "lookup", "arguments": "{\"q\":\"cat\"}" } },
                { "id": "call_2", "type": "function", "function": { "name": "lookup", "arguments": "{\"q\":\"dog\"}" } },
            ]},
            { "role": "tool", "tool_call_id": "call_1", "content": "a cat" },
            { "role": "tool", "tool_call_id": "call_2", "content": "a dog" },
        ],
        "tools": [{ "type": "function", "function": { "name": "lookup", "description": "find", "parameters": { "type": "object", "properties": { "q": { "type": "string" } } } } }],
        "tool_choice": "required",
    });
    let out = request(body.to_string().as_bytes(), 1024).unwrap();
    let expected = json!({
        "model": "claude-x", "max_tokens": 1024, "temperature": 0.2, "stop_sequences": ["END"],
        "metadata": { "user_id": "u1" },
        "system": [{ "type": "text", "text": "be brief" }],
        "messages": [
            { "role": "user", "content": [
                { "type": "text", "text": "what is this?" },
                { "type": "image", "source": { "type": "base64", "media_type": "image/png", "data": "iVBORw0" } },
                { "type": "image", "source": { "type": "url", "url": "https://example.com/cat.png" } },
            ]},
            { "role": "assistant", "content": [
                { "type": "tool_use", "id": "call_1", "name": "lookup", "input": { "q": "cat" } },
                { "type": "tool_use", "id": "call_2", "name": "lookup", "input": { "q": "dog" } },
            ]},
            { "role": "user", "content": [
                { "type": "tool_result", "tool_use_id": "call_1", "content": "a cat" },
                { "type": "tool_result", "tool_use_id": "call_2", "content": "a dog" },
            ]},
        ],
        "tools": [{ "name": "lookup", "description": "find", "input_schema": { "type": "object", "properties": { "q": { "type": "string" } } } }],
        "tool_choice": { "type": "any" },
    });
    assert_eq!(out, expected, "unknown and OpenAI-only fields are left out");
    let named = json!({ "model": "m", "max_tokens": 5, "stop": ["a", "b"], "stream": true,
        "tool_choice": { "type": "function", "function": { "name": "f" } }, "messages": [{ "role": "user", "content": "hi" }] });
    let out = request(named.to_string().as_bytes(), 1024).unwrap();
    assert_eq!(
        (out["max_tokens"].clone(), out["stop_sequences"].clone(), out["stream"].clone()),
        (json!(5), json!(["a", "b"]), json!(true))
    );
    assert_eq!(out["tool_choice"], json!({ "type": "tool", "name": "f" }));
    assert!(request(b"{\"messages\":[{\"role\":\"wizard\",\"content\":\"x\"}]}", 1).unwrap_err().contains("wizard"));
    assert!(request(b"[1]", 1).is_err());
}

#[test]
fn a_messages_answer_becomes_a_chat_completion() {
    let m = json!({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
        "content": [{ "type": "text", "text": "Let me look." }, { "type": "tool_use", "id": "toolu_1", "name": "lookup", "input": { "q": "cat" } }],
        "stop_reason": "tool_use", "usage": { "input_tokens": 12, "output_tokens": 7 },
    });
    let out = answer(m.to_string().as_bytes(), 5).unwrap();
    assert_eq!(out["choices"][0]["message"]["content"], "Let me look.");
    assert_eq!(out["choices"][0]["finish_reason"], "tool_calls");
    let call = &out["choices"][0]["message"]["tool_calls"][0];
    assert_eq!((call["id"].as_str(), call["function"]["name"].as_str()), (Some("toolu_1"), Some("lookup")));
    let args: Value = serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({ "q": "cat" }), "arguments intact");
    assert_eq!(out["usage"], json!({ "prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19 }));
    for (stop, finish) in
        [("end_turn", "stop"), ("max_tokens", "length"), ("stop_sequence", "stop"), ("refusal", "content_filter")]
    {
        assert_eq!(finish_reason(&json!(stop)), json!(finish));
    }
}

#[test]
fn a_messages_stream_becomes_a_chat_stream() {
    let events = [
        json!({ "type": "message_start", "message": { "id": "msg_1", "model": "claude-x", "usage": { "input_tokens": 9, "output_tokens": 1 } } }),
        json!({ "type": "content_block_start", "index": 0, "content_block": { "type": "text", "text": "" } }),
        json!({ "type": "ping" }),
        json!({ "type": "content_block_delta", "index": 0, "delta": { "type": "text_delta", "text": "Hel" } }),
        json!({ "type": "content_block_delta", "index": 0, "delta": { "type": "text_delta", "text": "lo" } }),
        json!({ "type": "content_block_stop", "index": 0 }),
        json!({ "type": "content_block_start", "index": 1, "content_block": { "type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {} } }),
        json!({ "type": "content_block_delta", "index": 1, "delta": { "type": "input_json_delta", "partial_json": "{\"q\":" } }),
        json!({ "type": "content_block_delta", "index": 1, "delta": { "type": "input_json_delta", "partial_json": "\"cat\"}" } }),
        json!({ "type": "message_delta", "delta": { "stop_reason": "tool_use" }, "usage": { "output_tokens": 15 } }),
        json!({ "type": "message_stop" }),
    ];
    let wire: String =
        events.iter().map(|e| format!("event: {}\ndata: {e}\n\n", e["type"].as_str().unwrap())).collect();
    let mut t = Translator::new(3, true);
    // Fed in awkward pieces, as the network delivers it.
    let mut out = Vec::new();
    for piece in wire.as_bytes().chunks(7) {
        out.extend_from_slice(&t.push(piece));
    }
    let text = String::from_utf8(out).unwrap();
    let chunks: Vec<Value> = text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert!(text.ends_with("data: [DONE]\n\n"));
    assert!(chunks.iter().all(|c| c["id"] == "msg_1" && c["model"] == "claude-x"));
    assert_eq!(chunks[0]["choices"][0]["delta"], json!({ "role": "assistant", "content": "" }));
    let content: String =
        chunks.iter().filter_map(|c| c.pointer("/choices/0/delta/content").and_then(Value::as_str)).collect();
    assert_eq!(content, "Hello");
    let args: String = chunks
        .iter()
        .filter_map(|c| c.pointer("/choices/0/delta/tool_calls/0/function/arguments").and_then(Value::as_str))
        .collect();
    assert_eq!(args, "{\"q\":\"cat\"}", "tool input deltas, in order");
    assert!(chunks.iter().any(|c| c.pointer("/choices/0/delta/tool_calls/0/id") == Some(&json!("toolu_1"))));
    assert!(chunks.iter().any(|c| c.pointer("/choices/0/finish_reason") == Some(&json!("tool_calls"))));
    let usage = &chunks.last().unwrap()["usage"];
    assert_eq!(usage, &json!({ "prompt_tokens": 9, "completion_tokens": 15, "total_tokens": 24 }));
    // An error mid-stream is an OpenAI-style error event, which the relay treats as a break.
    let mut t = Translator::new(3, false);
    let err = t.push(b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n");
    assert!(crate::providers::sse::error_event_at(&err) == Some(0), "{}", String::from_utf8_lossy(&err));
}

#[test]
fn errors_are_told_in_the_openai_shape() {
    let e = error(br#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: too big"}}"#);
    assert_eq!(
        e,
        json!({ "error": { "message": "max_tokens: too big", "type": "invalid_request_error", "param": null, "code": null } })
    );
}

#[test]
fn a_messages_request_becomes_a_chat_request() {
    let req = json!({
        "model": "m", "max_tokens": 100, "system": "be brief", "stop_sequences": ["END"], "temperature": 0.5,
        "metadata": { "user_id": "u1" }, "stream": true,
        "tools": [{ "name": "lookup", "description": "find", "input_schema": { "type": "object" } }],
        "tool_choice": { "type": "tool", "name": "lookup" },
        "messages": [
            { "role": "user", "content": [
                { "type": "text", "text": "look", "cache_control": { "type": "ephemeral" } },
                { "type": "image", "source": { "type": "base64", "media_type": "image/png", "data": "iVBOR" } },
            ]},
            { "role": "assistant", "content": [
                { "type": "text", "text": "Let me." },
                { "type": "tool_use", "id": "toolu_1", "name": "lookup", "input": { "q": "cat" } },
            ]},
            { "role": "user", "content": [{ "type": "tool_result", "tool_use_id": "toolu_1", "content": [{ "type": "text", "text": "a cat" }] }] },
        ],
    });
    let out = inbound::chat_request(req.to_string().as_bytes()).unwrap();
    let expected = json!({
        "model": "m", "max_tokens": 100, "temperature": 0.5, "stop": ["END"], "user": "u1",
        "stream": true, "stream_options": { "include_usage": true },
        "tools": [{ "type": "function", "function": { "name": "lookup", "description": "find", "parameters": { "type": "object" } } }],
        "tool_choice": { "type": "function", "function": { "name": "lookup" } },
        "messages": [
            { "role": "system", "content": "be brief" },
            { "role": "user", "content": [
                { "type": "text", "text": "look" },
                { "type": "image_url", "image_url": { "url": "data:image/png;base64,iVBOR" } },
            ]},
            { "role": "assistant", "content": "Let me.", "tool_calls": [
                { "id": "toolu_1", "type": "function", "function": { "name": "lookup", "arguments": "{\"q\":\"cat\"}" } },
            ]},
            { "role": "tool", "tool_call_id": "toolu_1", "content": "a cat" },
        ],
    });
    assert_eq!(out, expected);
}

#[test]
fn a_chat_answer_and_stream_become_the_messages_apis() {
    let chat = json!({ "id": "c1", "model": "m", "choices": [{ "index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": "Sure.",
        "tool_calls": [{ "id": "call_1", "type": "function", "function": { "name": "f", "arguments": "{\"a\":1}" } }] } }],
        "usage": { "prompt_tokens": 4, "completion_tokens": 6 } });
    let m = inbound::message(chat.to_string().as_bytes()).unwrap();
    assert_eq!(
        m["content"],
        json!([{ "type": "text", "text": "Sure." }, { "type": "tool_use", "id": "call_1", "name": "f", "input": { "a": 1 } }])
    );
    assert_eq!((m["stop_reason"].as_str(), m["usage"]["input_tokens"].as_u64()), (Some("tool_use"), Some(4)));

    let chunks = [
        json!({ "id": "c1", "model": "m", "choices": [{ "index": 0, "delta": { "role": "assistant", "content": "" }, "finish_reason": null }] }),
        json!({ "id": "c1", "model": "m", "choices": [{ "index": 0, "delta": { "content": "Hi" }, "finish_reason": null }] }),
        json!({ "id": "c1", "model": "m", "choices": [{ "index": 0, "delta": { "tool_calls": [{ "index": 0, "id": "call_1", "type": "function", "function": { "name": "f", "arguments": "{\"a\"" } }] }, "finish_reason": null }] }),
        json!({ "id": "c1", "model": "m", "choices": [{ "index": 0, "delta": { "tool_calls": [{ "index": 0, "function": { "arguments": ":1}" } }] }, "finish_reason": null }] }),
        json!({ "id": "c1", "model": "m", "choices": [{ "index": 0, "delta": {}, "finish_reason": "tool_calls" }] }),
        json!({ "id": "c1", "model": "m", "choices": [], "usage": { "prompt_tokens": 4, "completion_tokens": 6 } }),
    ];
    let wire: String = chunks.iter().map(|c| format!("data: {c}\n\n")).collect::<String>() + "data: [DONE]\n\n";
    let mut t = inbound::ToMessages::default();
    let out = String::from_utf8(t.push(wire.as_bytes()).to_vec()).unwrap();
    let ev: Vec<Value> = out
        .split("\n\n")
        .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let types: Vec<&str> = ev.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(ev[4]["content_block"], json!({ "type": "tool_use", "id": "call_1", "name": "f", "input": {} }));
    let args: String = ev.iter().filter_map(|e| e.pointer("/delta/partial_json").and_then(Value::as_str)).collect();
    assert_eq!(args, "{\"a\":1}");
    assert_eq!(
        (ev[8]["delta"]["stop_reason"].as_str(), ev[8]["usage"]["output_tokens"].as_u64()),
        (Some("tool_use"), Some(6))
    );
}

#[tokio::test]
async fn an_event_that_never_ends_is_passed_on_raw_not_held() {
    use futures_util::StreamExt;
    // A provider sends one endless event: 64 KiB pieces, no blank line.
    let piece = bytes::Bytes::from(vec![b'x'; 64 * 1024]);
    let up = futures_util::stream::iter((0..20).map(move |_| Ok::<_, crate::providers::client::Error>(piece.clone())));
    let mut out = Box::pin(translate(up, Translator::new(1, false), 256 * 1024));
    let mut passed = 0;
    while let Some(Ok(b)) = out.next().await {
        passed += b.len();
    }
    assert!(passed >= 20 * 64 * 1024 - 256 * 1024, "held back at most the bound, passed on {passed}");
}
