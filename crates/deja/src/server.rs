//! The listener: accepts connections (plain or TLS), hands each one the
//! per-request edge (`crate::edge`, a tower stack), and shuts down gracefully.

use crate::edge::{self, Edge};
use deja_api::{ApiError, ErrorKind};
use deja_gateway::state::AppState;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

pub use crate::edge::Serves;

/// Connections over the cap that are being told so at once; past this many
/// more, excess connections are closed without a word.
const MAX_REFUSING: usize = 64;

/// Serves `listener` until `shutdown` resolves, then lets open requests finish.
///
/// At most `limits.max_connections` connections are served at once. A plain
/// connection over the cap gets an immediate `503` (`too_many_connections`,
/// `Retry-After: 1`) and is closed; a TLS one is closed before its handshake.
pub async fn serve(
    state: Arc<AppState>,
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    serves: Serves,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let places = Arc::new(Semaphore::new(state.config().limits.max_connections));
    let refusing = Arc::new(Semaphore::new(MAX_REFUSING));
    let edge = Arc::new(Edge::new(state.clone(), serves));
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let Ok(place) = places.clone().try_acquire_owned() else {
            tracing::debug!("connection refused: at max_connections");
            if let (None, Ok(refusal)) = (&tls, refusing.clone().try_acquire_owned()) {
                tokio::spawn(async move {
                    refuse(stream).await;
                    drop(refusal);
                });
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let svc = TowerToHyperService::new(edge::service(&edge, peer.ip()));
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder.http1().timer(TokioTimer::new()).header_read_timeout(state.config().limits.header_read_timeout);
        match &tls {
            None => {
                let conn = builder.serve_connection(TokioIo::new(stream), svc).into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    let _ = conn.await;
                    drop(place);
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let watcher = graceful.watcher();
                let handshake = state.config().limits.header_read_timeout;
                tokio::spawn(async move {
                    match tokio::time::timeout(handshake, acceptor.accept(stream)).await {
                        Ok(Ok(tls_stream)) => {
                            let conn = builder.serve_connection(TokioIo::new(tls_stream), svc).into_owned();
                            let _ = watcher.watch(conn).await;
                        }
                        Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    }
                    drop(place);
                });
            }
        }
    }
    tracing::info!("shutting down: waiting for open requests");
    if tokio::time::timeout(std::time::Duration::from_secs(30), graceful.shutdown()).await.is_err() {
        tracing::warn!("some connections were still open after 30s");
    }
}

/// Tells a connection over the cap so and closes it, reading (and dropping)
/// what the client sent meanwhile so the answer is not lost to a reset.
async fn refuse(mut stream: TcpStream) {
    let mut body = ApiError::new(ErrorKind::Unavailable, "the server is at its connection limit; try again shortly")
        .with_code("too_many_connections")
        .to_json();
    if let Some(kind) = body.pointer_mut("/error/type") {
        *kind = serde_json::json!("server_error");
    }
    let body = body.to_string();
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         retry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        let mut read = 0;
        while read < 64 * 1024 {
            match stream.read(&mut sink).await? {
                0 => break,
                n => read += n,
            }
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
}
