use crate::answer::{embedding_for, Answer};
use crate::control::{Fault, MockControl, PromptCache, StreamStyle};
use crate::frame;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

type Body = BoxBody<Bytes, std::io::Error>;

/// A running mock: its address, its control handle, and the task serving it.
pub struct MockUpstream {
    pub addr: SocketAddr,
    pub control: MockControl,
    task: tokio::task::JoinHandle<()>,
}

impl MockUpstream {
    /// Starts a mock on `127.0.0.1:0`.
    pub async fn start() -> std::io::Result<Self> {
        Self::on(TcpListener::bind("127.0.0.1:0").await?)
    }

    /// Starts a mock on a listener the caller has already bound, so its
    /// address is known before it serves and no port is ever picked twice.
    pub fn on(listener: TcpListener) -> std::io::Result<Self> {
        let control = MockControl::default();
        let addr = listener.local_addr()?;
        let task = tokio::spawn(serve(listener, control.clone()));
        Ok(Self { addr, control, task })
    }

    /// The base URL a provider entry points at, e.g. `http://127.0.0.1:4242/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves the mock on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, control: MockControl) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let _ = stream.set_nodelay(true);
        let control = control.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| handle(req, control.clone()));
            let _ = auto::Builder::new(TokioExecutor::new()).serve_connection(TokioIo::new(stream), svc).await;
        });
    }
}

fn full(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()).map_err(|never: Infallible| match never {}).boxed());
    *r.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        r.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    r
}

fn json_response(status: StatusCode, v: &Value) -> Response<Body> {
    full(status, "application/json", v.to_string())
}

fn error(status: u16, message: &str) -> Response<Body> {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_response(code, &json!({"error": {"message": message, "type": "mock_error", "param": null, "code": null}}))
}

async fn handle(req: Request<Incoming>, control: MockControl) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    let method = req.method().clone();
    let auth = req.headers().get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_string);
    let headers = req.headers().clone();
    let Ok(body) = req.into_body().collect().await.map(|c| c.to_bytes()) else {
        return Ok(error(400, "unreadable body"));
    };
    let response = match (method, path.as_str()) {
        (Method::GET, "/v1/models") => json_response(StatusCode::OK, &json!({"object": "list", "data": []})),
        (Method::GET, "/_mock/calls") => json_response(
            StatusCode::OK,
            &json!({"total": control.total_calls(), "by_model": control.calls_by_model(), "authorization": control.authorizations()}),
        ),
        (Method::POST, "/_mock/faults") => control_faults(&control, &body),
        (Method::POST, "/_mock/stream_style") => match serde_json::from_slice::<StreamStyle>(&body) {
            Ok(style) => {
                control.set_stream_style(style);
                json_response(StatusCode::OK, &json!({"ok": true}))
            }
            Err(e) => error(400, &format!("expected a stream style: {e}")),
        },
        (Method::POST, "/_mock/prompt_cache") => match serde_json::from_slice::<PromptCache>(&body) {
            Ok(cache) => {
                control.set_prompt_cache(cache);
                json_response(StatusCode::OK, &json!({"ok": true}))
            }
            Err(e) => error(400, &format!("expected {{\"read\": n, \"write\": n}}: {e}")),
        },
        (Method::POST, "/_mock/judge") => match serde_json::from_slice::<Value>(&body) {
            Ok(v) if v["verdict"].is_string() => {
                control.set_judge_verdict(v["verdict"].as_str().unwrap_or_default());
                json_response(StatusCode::OK, &json!({"ok": true}))
            }
            _ => error(400, "expected {\"verdict\": \"yes\" | \"no\" | ...}"),
        },
        (Method::POST, "/_mock/reset") => {
            control.reset();
            json_response(StatusCode::OK, &json!({"ok": true}))
        }
        (Method::POST, "/v1/chat/completions") => chat(&control, auth, &body).await,
        (Method::POST, "/v1/embeddings") => embeddings(&control, auth, &body).await,
        (Method::POST, "/v1/messages") => crate::anthropic::messages(&control, &headers, &body).await,
        (Method::POST, p) if p.starts_with("/v1beta/models/") => {
            crate::gemini::generate(&control, p, query.as_deref(), &headers, &body).await
        }
        _ => error(404, "no such route on the mock upstream"),
    };
    Ok(response)
}

/// `{"model": "...", "faults": [...], "sticky": fault|null}`
fn control_faults(control: &MockControl, body: &[u8]) -> Response<Body> {
    let Ok(v) = serde_json::from_slice::<Value>(body) else { return error(400, "expected JSON") };
    let Some(model) = v["model"].as_str() else { return error(400, "`model` is required") };
    if let Ok(faults) = serde_json::from_value::<Vec<Fault>>(v["faults"].clone()) {
        control.push_faults(model, faults);
    }
    if let Some(sticky) = v.get("sticky") {
        control.set_sticky(model, serde_json::from_value(sticky.clone()).ok());
    }
    json_response(StatusCode::OK, &json!({"ok": true}))
}

/// Applies a fault that acts before the response head. Returns a response
/// if the fault replaces the answer.
async fn pre_response(fault: &Option<Fault>) -> Option<Response<Body>> {
    match fault {
        Some(Fault::Status { status, retry_after_s, retry_after }) => {
            let mut r = error(*status, "injected failure");
            let raw = retry_after.clone().or_else(|| retry_after_s.map(|s| s.to_string()));
            if let Some(v) = raw.and_then(|v| http::HeaderValue::from_str(&v).ok()) {
                r.headers_mut().insert(http::header::RETRY_AFTER, v);
            }
            Some(r)
        }
        Some(Fault::Delay { ms }) => {
            tokio::time::sleep(Duration::from_millis(*ms)).await;
            None
        }
        Some(Fault::Malformed) => Some(full(StatusCode::OK, "application/json", "{\"choices\": [ this is not json")),
        Some(Fault::Body { body }) => Some(json_response(StatusCode::OK, body)),
        _ => None,
    }
}

/// Parses and records a call, then applies any fault that acts before the
/// response head. `Err` is the response the fault (or bad JSON) replaces it with.
async fn accept(
    control: &MockControl,
    auth: Option<String>,
    body: &[u8],
) -> Result<(Value, Option<Fault>), Response<Body>> {
    let Ok(req) = serde_json::from_slice::<Value>(body) else { return Err(error(400, "invalid JSON")) };
    let model = req["model"].as_str().unwrap_or("unknown").to_string();
    let fault = control.on_call(&model, auth, &req);
    // Dropped mid-delay when the caller hangs up (hyper drops the handler).
    let mut watch = HangupWatch { control, model, armed: true };
    let response = pre_response(&fault).await;
    watch.armed = false;
    match response {
        Some(r) => Err(r),
        None => Ok((req, fault)),
    }
}

/// Counts a hang-up if dropped while armed.
struct HangupWatch<'a> {
    control: &'a MockControl,
    model: String,
    armed: bool,
}

impl Drop for HangupWatch<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.control.count_hangup(&self.model);
        }
    }
}

async fn chat(control: &MockControl, auth: Option<String>, body: &[u8]) -> Response<Body> {
    let (req, fault) = match accept(control, auth, body).await {
        Ok(call) => call,
        Err(r) => return r,
    };
    if req["model"] == crate::control::JUDGE_MODEL {
        return json_response(StatusCode::OK, &judge_completion(&control.judge_verdict(), &req));
    }
    let (mut answer, fault) = match fault {
        // The role chunk is event 0: content chunk `n` is event `n`, so the
        // cut falls after `n` content chunks.
        Some(Fault::LongStream { chunks, chunk_bytes, cut_after }) => {
            (Answer::long(&req, chunks, chunk_bytes), cut_after.map(|n| Fault::CutAfter { chunks: n + 1 }))
        }
        other => (Answer::for_request(&req), other),
    };
    answer.cached_tokens = control.prompt_cache().read;
    if req["stream"].as_bool() != Some(true) {
        return json_response(StatusCode::OK, &answer.completion());
    }
    let include_usage = req["stream_options"]["include_usage"].as_bool() == Some(true);
    let style = control.stream_style();
    let (content, tail) = answer.stream_chunks(include_usage, style.usage);
    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(16);
    let delay = control.chunk_delay();
    let control = control.clone();
    let model = req["model"].as_str().unwrap_or("unknown").to_string();
    tokio::spawn(async move {
        for (i, chunk) in content.iter().enumerate() {
            if crate::stream::strike(&fault, i, &tx, &control).await {
                return;
            }
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if !send_event(&tx, &style, &chunk.to_string()).await {
                control.count_hangup(&model);
                return;
            }
        }
        for chunk in &tail {
            if !send_event(&tx, &style, &chunk.to_string()).await {
                control.count_hangup(&model);
                return;
            }
        }
        if !send_event(&tx, &style, frame::DONE).await {
            control.count_hangup(&model);
        }
    });
    crate::stream::response(rx)
}

/// The judge's answer: the scripted verdict, whatever it was asked.
fn judge_completion(verdict: &str, req: &Value) -> Value {
    let prompt_tokens = (req["messages"].to_string().len() as u64).div_ceil(4);
    json!({
        "id": "chatcmpl-mockjudge",
        "object": "chat.completion",
        "created": 1_700_000_000u64,
        "model": crate::control::JUDGE_MODEL,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": verdict}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 1, "total_tokens": prompt_tokens + 1},
    })
}

/// Writes one event, piece by piece. False once the client has gone.
async fn send_event(tx: &mpsc::Sender<Result<Frame<Bytes>, std::io::Error>>, style: &StreamStyle, data: &str) -> bool {
    let pieces = frame::event(style, data);
    let last = pieces.len().saturating_sub(1);
    for (i, piece) in pieces.into_iter().enumerate() {
        if tx.send(Ok(Frame::data(piece))).await.is_err() {
            return false;
        }
        if i < last {
            // Long enough for the first piece to leave in a write of its own.
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    true
}

async fn embeddings(control: &MockControl, auth: Option<String>, body: &[u8]) -> Response<Body> {
    let req = match accept(control, auth, body).await {
        Ok((req, _)) => req,
        Err(r) => return r,
    };
    let model = req["model"].as_str().unwrap_or("unknown");
    let inputs: Vec<String> = match &req["input"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items.iter().map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_string)).collect(),
        _ => return error(400, "`input` must be a string or an array"),
    };
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, t)| json!({"object": "embedding", "index": i, "embedding": embedding_for(t, 8)}))
        .collect();
    let tokens: u64 = inputs.iter().map(|t| (t.len() as u64).div_ceil(4)).sum();
    json_response(
        StatusCode::OK,
        &json!({"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// POSTs `body` to the mock's chat endpoint with `Connection: close` and
    /// returns the de-chunked response body (whatever arrived before EOF).
    async fn post_chat(mock: &MockUpstream, body: &Value) -> String {
        let mut sock = tokio::net::TcpStream::connect(mock.addr).await.expect("connect");
        let body = body.to_string();
        let head = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: mock\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        );
        sock.write_all(head.as_bytes()).await.expect("write");
        sock.write_all(body.as_bytes()).await.expect("write");
        let mut raw = Vec::new();
        let _ = sock.read_to_end(&mut raw).await;
        let raw = String::from_utf8_lossy(&raw).to_string();
        let (head, mut rest) = raw.split_once("\r\n\r\n").expect("a response head");
        if !head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
            return rest.to_string();
        }
        let mut out = String::new();
        while let Some((size, tail)) = rest.split_once("\r\n") {
            let Ok(size) = usize::from_str_radix(size.trim(), 16) else { break };
            if size == 0 || tail.len() < size {
                out.push_str(tail.get(..size.min(tail.len())).unwrap_or_default());
                break;
            }
            out.push_str(tail.get(..size).unwrap_or_default());
            rest = tail.get(size + 2..).unwrap_or_default();
        }
        out
    }

    fn data(sse: &str) -> Vec<String> {
        sse.split("\n\n").filter_map(|e| e.strip_prefix("data: ")).map(str::to_string).collect()
    }

    fn content(events: &[String]) -> Vec<String> {
        events
            .iter()
            .filter_map(|e| serde_json::from_str::<Value>(e).ok())
            .filter_map(|v| v["choices"][0]["delta"]["content"].as_str().map(str::to_string))
            .filter(|c| !c.is_empty())
            .collect()
    }

    fn ask(question: &str, stream: bool) -> Value {
        json!({"model": "m", "stream": stream, "stream_options": {"include_usage": true},
               "messages": [{"role": "user", "content": question}]})
    }

    #[tokio::test]
    async fn a_long_stream_sends_every_piece_then_usage_then_done_and_can_be_cut() {
        let mock = MockUpstream::start().await.expect("mock");
        mock.control.set_sticky("m", Some(Fault::LongStream { chunks: 50, chunk_bytes: 100, cut_after: None }));
        let events = data(&post_chat(&mock, &ask("first question", true)).await);
        let pieces = content(&events);
        assert_eq!(pieces.len(), 50);
        assert!(pieces.iter().all(|p| p.len() == 100), "{pieces:?}");
        assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
        let usage: Value = serde_json::from_str(&events[events.len() - 2]).expect("usage chunk");
        assert_eq!(usage["usage"]["completion_tokens"], 50, "{usage}");
        assert!(usage["usage"]["prompt_tokens"].as_u64().is_some_and(|t| t > 0), "{usage}");
        let finish = serde_json::from_str::<Value>(&events[events.len() - 3]).expect("finish chunk");
        assert_eq!(finish["choices"][0]["finish_reason"], "stop");

        // Sticky: the same again; another prompt, other text; unstreamed, the pieces joined.
        let again = content(&data(&post_chat(&mock, &ask("first question", true)).await));
        assert_eq!(again, pieces);
        let other = content(&data(&post_chat(&mock, &ask("second question", true)).await));
        assert_eq!(other.len(), 50);
        assert_ne!(other, pieces);
        let whole: Value = serde_json::from_str(&post_chat(&mock, &ask("first question", false)).await).expect("json");
        assert_eq!(whole["choices"][0]["message"]["content"].as_str(), Some(pieces.concat().as_str()));
        assert_eq!(whole["usage"]["completion_tokens"], 50);

        // Pushed, with a cut: exactly `cut_after` content chunks, no [DONE].
        mock.control.push_faults("m", [Fault::LongStream { chunks: 50, chunk_bytes: 10, cut_after: Some(7) }]);
        let cut = data(&post_chat(&mock, &ask("first question", true)).await);
        assert_eq!(content(&cut).len(), 7, "{cut:?}");
        assert!(!cut.iter().any(|e| e == "[DONE]"), "{cut:?}");
        assert_eq!(mock.control.calls("m"), 5);
    }

    #[test]
    fn a_long_stream_fault_reads_from_json() {
        let f: Fault =
            serde_json::from_value(json!({"kind": "long_stream", "chunks": 3, "chunk_bytes": 8})).expect("parses");
        assert_eq!(f, Fault::LongStream { chunks: 3, chunk_bytes: 8, cut_after: None });
    }
}
