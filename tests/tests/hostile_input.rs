//! Requests crafted to break the listener: malformed query strings and
//! handlers that panic must still get an OpenAI-shaped answer, never a
//! dropped connection.

mod common;

use common::*;
use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A response read off a raw socket.
struct Raw {
    status: u16,
    head: String,
    body: Value,
}

/// Sends `request` as raw bytes and reads until the server closes the connection.
async fn raw_request(addr: SocketAddr, request: &[u8]) -> Result<Raw, String> {
    let mut stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    stream.write_all(request).await.map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut buf))
        .await
        .map_err(|_| "no answer within 10s".to_string())?
        .map_err(|e| format!("connection failed after {} bytes: {e}", buf.len()))?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| format!("no response head in {text:?}"))?;
    let status =
        head.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| format!("no status line in {head:?}"))?;
    let body = serde_json::from_str(body).map_err(|e| format!("body is not JSON ({e}): {body:?}"))?;
    Ok(Raw { status, head: head.to_string(), body })
}

fn get(path: &[u8], token: &str) -> Vec<u8> {
    let mut req = b"GET ".to_vec();
    req.extend_from_slice(path);
    req.extend_from_slice(
        format!(" HTTP/1.1\r\nHost: deja\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    req
}

fn assert_openai_error(body: &Value) {
    let e = &body["error"];
    assert!(e["message"].is_string(), "{body}");
    assert!(e["type"].is_string(), "{body}");
    assert!(e.get("param").is_some() && e.get("code").is_some(), "{body}");
}

#[tokio::test]
async fn a_percent_before_a_multibyte_character_gets_an_answer() {
    let h = deja_testkit::spawn_proxy(exact_only()).await;
    for query in ["namespace=%é", "namespace=%aé", "namespace=%éa&limit=%", "namespace=%%C3%A9&model=%zz"] {
        let path = format!("/admin/cache?{query}");
        let r = raw_request(h.proxy.addr, &get(path.as_bytes(), "test-admin-token"))
            .await
            .unwrap_or_else(|e| panic!("{query}: {e}"));
        assert_eq!(r.status, 200, "{query}: {}", r.head);
        assert!(r.body["entries"].is_array(), "{query}: {}", r.body);
    }
}

#[tokio::test]
async fn query_values_are_still_decoded() {
    let h = deja_testkit::spawn_proxy(exact_only()).await;
    chat(&h, &ask("a question to list")).await;
    let listed = admin_get(&h, "/admin/cache").await.body;
    let namespace = listed["entries"][0]["namespace"].as_str().expect("an entry").to_string();
    let encoded: String = namespace.bytes().map(|b| format!("%{b:02X}")).collect();
    let r = admin_get(&h, &format!("/admin/cache?namespace={encoded}&limit=%31")).await;
    assert_eq!(r.body["entries"].as_array().map(Vec::len), Some(1), "{}", r.text);
    let r = admin_get(&h, "/admin/cache?namespace=someone+else").await;
    assert_eq!(r.body["entries"].as_array().map(Vec::len), Some(0), "{}", r.text);
}

#[tokio::test]
async fn a_panicking_handler_answers_500_and_the_server_lives_on() {
    let h = deja_testkit::spawn_proxy(exact_only()).await;
    let r = raw_request(h.proxy.addr, &get(b"/_test/panic", "test-admin-token"))
        .await
        .unwrap_or_else(|e| panic!("a panic dropped the connection: {e}"));
    assert_eq!(r.status, 500, "{}", r.head);
    assert_openai_error(&r.body);
    assert_eq!(r.body["error"]["type"], "server_error");
    assert!(r.head.to_ascii_lowercase().contains("x-request-id"), "{}", r.head);
    // The listener and its other routes carry on.
    let ok = client().get(h.url("/healthz")).send().await.expect("healthz");
    assert_eq!(ok.status().as_u16(), 200);
    let again = chat(&h, &ask("still serving?")).await;
    assert_eq!(again.status, 200, "{}", again.text);
}
