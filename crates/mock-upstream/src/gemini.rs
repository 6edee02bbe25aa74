//! `POST /v1beta/models/{model}:generateContent` and
//! `:streamGenerateContent?alt=sse`: a simulated Gemini API, written from
//! Google's published reference and sharing no code with Deja's translation.
//! It checks what the real API insists on (a key in `x-goog-api-key`, none
//! in the URL here, since Deja must never put it there; non-empty
//! `contents` with `user`/`model` roles; function responses that answer the
//! function calls of the model turn before them; no unknown fields),
//! answers with deterministic content and frames its own stream (`data:`
//! events separated by CRLF, no end marker). Status faults come back as
//! Gemini error bodies (`{"error": {"code", "message", "status"}}`).

use crate::control::{Fault, MockControl};
use crate::seen::GeminiCall;
use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};
use std::convert::Infallible;
use std::time::Duration;

type Body = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

impl MockControl {
    /// How the last Gemini call for `model` arrived.
    pub fn gemini_call(&self, model: &str) -> Option<GeminiCall> {
        self.gemini.lock().unwrap_or_else(|e| e.into_inner()).get(model).cloned()
    }
}

fn json_response(status: StatusCode, v: &Value) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(v.to_string())).map_err(|n: Infallible| match n {}).boxed());
    *r.status_mut() = status;
    r.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    r
}

/// The canonical status Google's error reference gives each HTTP status.
fn status_name(status: u16) -> &'static str {
    match status {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "INTERNAL",
    }
}

fn error(status: u16, message: &str) -> Response<Body> {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_response(code, &json!({"error": {"code": status, "message": message, "status": status_name(status)}}))
}

const FIELDS: &[&str] =
    &["contents", "systemInstruction", "tools", "toolConfig", "generationConfig", "safetySettings", "cachedContent"];

const CONFIG_FIELDS: &[&str] = &[
    "temperature",
    "topP",
    "topK",
    "maxOutputTokens",
    "stopSequences",
    "candidateCount",
    "seed",
    "presencePenalty",
    "frequencyPenalty",
    "responseMimeType",
    "responseSchema",
];

/// What the real API would refuse with a 400, if anything.
fn invalid(req: &Value) -> Option<String> {
    let obj = req.as_object()?;
    if let Some(k) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Some(format!("Invalid JSON payload received. Unknown name \"{k}\": Cannot find field."));
    }
    if let Some(config) = req.get("generationConfig").and_then(Value::as_object) {
        if let Some(k) = config.keys().find(|k| !CONFIG_FIELDS.contains(&k.as_str())) {
            return Some(format!("Invalid JSON payload received. Unknown name \"{k}\" at 'generation_config'."));
        }
    }
    let Some(contents) = req["contents"].as_array().filter(|c| !c.is_empty()) else {
        return Some("* GenerateContentRequest.contents: contents is not specified".into());
    };
    let mut calls: Vec<String> = Vec::new();
    for (i, c) in contents.iter().enumerate() {
        let role = c["role"].as_str().unwrap_or("user");
        if role != "user" && role != "model" {
            return Some(format!("Please use a valid role: user, model. (contents[{i}])"));
        }
        let Some(parts) = c["parts"].as_array().filter(|p| !p.is_empty()) else {
            return Some(format!("* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty."));
        };
        let mut made = Vec::new();
        for p in parts {
            if let Some(call) = p.get("functionCall") {
                if role != "model" {
                    return Some(format!("contents[{i}]: only a model turn may call functions"));
                }
                made.push(call["name"].as_str().unwrap_or("").to_string());
            } else if let Some(resp) = p.get("functionResponse") {
                let name = resp["name"].as_str().unwrap_or("");
                if role != "user" || !calls.iter().any(|c| c == name) || !resp["response"].is_object() {
                    return Some(format!("contents[{i}]: function response {name} answers no function call"));
                }
            } else if !(p["text"].is_string() || p["inlineData"].is_object() || p["fileData"].is_object()) {
                return Some(format!("contents[{i}]: a part needs text, data or a function call or response"));
            }
        }
        calls = made;
    }
    None
}

fn text_of(parts: &Value) -> String {
    parts.as_array().into_iter().flatten().filter_map(|p| p["text"].as_str()).collect::<Vec<_>>().join("\n")
}

/// The deterministic answer: a function call when functions are offered
/// (and the last turn holds no function response), text otherwise.
struct Reply {
    id: String,
    model: String,
    text: Option<String>,
    call: Option<(String, Value)>,
    finish: &'static str,
    prompt_tokens: u64,
}

impl Reply {
    fn for_request(model: &str, req: &Value) -> Self {
        let id = blake3::hash(req.to_string().as_bytes()).to_hex()[..16].to_string();
        let prompt_tokens = (req["contents"].to_string().len() as u64).div_ceil(4);
        let last = req["contents"].as_array().and_then(|c| c.last()).cloned().unwrap_or_default();
        let results: Vec<String> = last["parts"]
            .as_array()
            .map(|p| p.iter().filter_map(|p| p.get("functionResponse")).map(|r| r["response"].to_string()).collect())
            .unwrap_or_default();
        let question = text_of(&last["parts"]);
        let mode = req["toolConfig"]["functionCallingConfig"]["mode"].as_str().unwrap_or("AUTO");
        let functions = req["tools"][0]["functionDeclarations"].as_array().filter(|f| !f.is_empty() && mode != "NONE");
        let model = model.to_string();
        if let (Some(functions), true) = (functions, results.is_empty()) {
            let allowed = req["toolConfig"]["functionCallingConfig"]["allowedFunctionNames"][0].as_str();
            let name = allowed.or_else(|| functions[0]["name"].as_str()).unwrap_or("tool").to_string();
            let call = Some((name, json!({"query": question})));
            return Reply { id, model, text: None, call, finish: "STOP", prompt_tokens };
        }
        let text = if results.is_empty() {
            format!("[{model}] Simulated answer to: {question}")
        } else {
            format!("[{model}] Tool said: {}", results.join("; "))
        };
        let short = req["generationConfig"]["maxOutputTokens"].as_u64().is_some_and(|m| m < 5);
        Reply {
            id,
            model,
            text: Some(text),
            call: None,
            finish: if short { "MAX_TOKENS" } else { "STOP" },
            prompt_tokens,
        }
    }

    fn output_tokens(&self) -> u64 {
        self.text.as_deref().map_or(8, |t| t.split_whitespace().count() as u64)
    }

    fn usage(&self, output: u64) -> Value {
        json!({"promptTokenCount": self.prompt_tokens, "candidatesTokenCount": output,
            "totalTokenCount": self.prompt_tokens + output,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": self.prompt_tokens}]})
    }

    /// One `GenerateContentResponse` holding `parts`. In full, every
    /// response carries the candidate's `index` and safety ratings, the
    /// usage so far, `modelVersion` and `responseId`; sparse, only the last
    /// (`finish` set) carries usage, and none of the others appear.
    fn response(&self, parts: Vec<Value>, finish: Option<&str>, output: u64, sparse: bool) -> Value {
        let mut candidate = json!({"content": {"role": "model", "parts": parts}});
        if let Some(f) = finish {
            candidate["finishReason"] = json!(f);
        }
        let mut response = json!({"candidates": [candidate]});
        if !sparse {
            response["candidates"][0]["index"] = json!(0);
            response["candidates"][0]["safetyRatings"] = json!([
                {"category": "HARM_CATEGORY_HATE_SPEECH", "probability": "NEGLIGIBLE"},
                {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "NEGLIGIBLE"},
                {"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"},
                {"category": "HARM_CATEGORY_SEXUALLY_EXPLICIT", "probability": "NEGLIGIBLE"},
            ]);
            response["modelVersion"] = json!(self.model);
            response["responseId"] = json!(self.id);
        }
        if !sparse || finish.is_some() {
            response["usageMetadata"] = self.usage(output);
        }
        response
    }

    fn parts(&self) -> Vec<Value> {
        let mut parts = Vec::new();
        if let Some(t) = &self.text {
            parts.push(json!({"text": t}));
        }
        if let Some((name, args)) = &self.call {
            parts.push(json!({"functionCall": {"name": name, "args": args}}));
        }
        parts
    }

    fn whole(&self, sparse: bool) -> Value {
        self.response(self.parts(), Some(self.finish), self.output_tokens(), sparse)
    }

    /// The stream: text two words at a time; a function call comes whole.
    /// In full, the finish reason rides on the last piece of text; sparse,
    /// it comes alone, on a last response whose only part is empty text.
    fn events(&self, sparse: bool) -> Vec<Value> {
        let Some(text) = &self.text else {
            return vec![self.response(self.parts(), Some(self.finish), self.output_tokens(), sparse)];
        };
        let words: Vec<&str> = text.split_inclusive(' ').collect();
        let pieces: Vec<String> = words.chunks(2).map(|p| p.concat()).collect();
        let mut sent = 0;
        let last = pieces.len().saturating_sub(1);
        let mut events: Vec<Value> = pieces
            .iter()
            .enumerate()
            .map(|(i, piece)| {
                sent += piece.split_whitespace().count() as u64;
                let finish = (i == last && !sparse).then_some(self.finish);
                self.response(vec![json!({"text": piece})], finish, sent, sparse)
            })
            .collect();
        if sparse {
            events.push(self.response(vec![json!({"text": ""})], Some(self.finish), sent, true));
        }
        events
    }
}

/// The model and method of `/v1beta/models/{model}:{method}`.
fn route(path: &str) -> Option<(&str, &str)> {
    path.strip_prefix("/v1beta/models/")?.split_once(':')
}

pub(crate) async fn generate(
    control: &MockControl,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Response<Body> {
    let Some((model, method)) = route(path) else { return error(404, "no such method") };
    let stream = match method {
        "generateContent" => false,
        "streamGenerateContent" => true,
        _ => return error(404, &format!("method {method} is not served by the mock")),
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let seen = GeminiCall {
        x_goog_api_key: header("x-goog-api-key"),
        authorization: header("authorization"),
        query: query.map(str::to_string),
    };
    let Ok(req) = serde_json::from_slice::<Value>(body) else { return error(400, "Invalid JSON payload received.") };
    control.gemini.lock().unwrap_or_else(|e| e.into_inner()).insert(model.to_string(), seen.clone());
    let fault = control.on_call(model, seen.authorization.clone(), &req);
    if query.is_some_and(|q| q.split('&').any(|kv| kv.starts_with("key="))) {
        return error(400, "the mock refuses keys in the URL: send x-goog-api-key");
    }
    if seen.x_goog_api_key.is_none() {
        return error(403, "Method doesn't allow unregistered callers. Please use API Key.");
    }
    match &fault {
        Some(Fault::Status { status, retry_after_s, retry_after }) => {
            let message = match *status {
                429 => "Resource has been exhausted (e.g. check quota).",
                503 => "The model is overloaded. Please try again later.",
                _ => "injected failure",
            };
            let mut r = error(*status, message);
            let raw = retry_after.clone().or_else(|| retry_after_s.map(|s| s.to_string()));
            if let Some(v) = raw.and_then(|v| http::HeaderValue::from_str(&v).ok()) {
                r.headers_mut().insert(http::header::RETRY_AFTER, v);
            }
            return r;
        }
        Some(Fault::Delay { ms }) => tokio::time::sleep(Duration::from_millis(*ms)).await,
        Some(Fault::Malformed) => return json_response(StatusCode::OK, &json!("{\"candidates\": [ not json")),
        Some(Fault::Body { body }) => return json_response(StatusCode::OK, body),
        _ => {}
    }
    if let Some(why) = invalid(&req) {
        return error(400, &why);
    }
    let reply = Reply::for_request(model, &req);
    let sparse = control.stream_style().sparse;
    if !stream {
        return json_response(StatusCode::OK, &reply.whole(sparse));
    }
    if query != Some("alt=sse") {
        return error(400, "the mock streams server-sent events only: ask with alt=sse");
    }
    crate::stream::events(control, fault, reply.events(sparse), frame)
}

/// `data: <json>\r\n\r\n`, as Gemini frames each event.
fn frame(event: &Value) -> Bytes {
    Bytes::from(format!("data: {event}\r\n\r\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_responses_must_answer_the_calls_before_them() {
        let ok = json!({"contents": [
            {"role": "user", "parts": [{"text": "hi"}]},
            {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {"x": 1}}}]},
        ]});
        assert_eq!(invalid(&ok), None);
        let stray =
            json!({"contents": [{"role": "user", "parts": [{"functionResponse": {"name": "g", "response": {}}}]}]});
        assert!(invalid(&stray).is_some());
        let extra = json!({"model": "m", "contents": [{"role": "user", "parts": [{"text": "a"}]}]});
        assert!(invalid(&extra).is_some_and(|m| m.contains("\"model\"")));
        assert!(invalid(&json!({"contents": []})).is_some());
    }

    #[test]
    fn sparse_streams_carry_usage_and_the_finish_reason_only_at_the_end() {
        let req = json!({"contents": [{"role": "user", "parts": [{"text": "what is the answer to this"}]}]});
        let reply = Reply::for_request("gemini-x", &req);
        let full = reply.events(false);
        assert!(full.iter().all(|e| e["usageMetadata"].is_object() && e["modelVersion"] == "gemini-x"));
        assert!(full.iter().all(|e| e["candidates"][0]["safetyRatings"].is_array()));
        assert_eq!(full.iter().filter(|e| e["candidates"][0].get("finishReason").is_some()).count(), 1);
        let sparse = reply.events(true);
        assert_eq!(sparse.len(), full.len() + 1);
        let (last, rest) = sparse.split_last().expect("events");
        assert!(rest
            .iter()
            .all(|e| e.get("usageMetadata").is_none() && e["candidates"][0].get("finishReason").is_none()));
        assert!(sparse.iter().all(|e| e.get("modelVersion").is_none() && e["candidates"][0].get("index").is_none()));
        assert_eq!(last["candidates"][0]["finishReason"], "STOP");
        assert_eq!(last["candidates"][0]["content"]["parts"], json!([{"text": ""}]));
        assert_eq!(last["usageMetadata"], full.last().expect("events")["usageMetadata"]);
    }

    #[test]
    fn routes_and_frames() {
        assert_eq!(
            route("/v1beta/models/gemini-2.0-flash:generateContent"),
            Some(("gemini-2.0-flash", "generateContent"))
        );
        assert_eq!(&frame(&json!({"a": 1}))[..], b"data: {\"a\":1}\r\n\r\n");
    }
}
