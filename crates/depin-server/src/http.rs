//! The HTTP/1.1 accept loop. It replaces `axum::serve`, which offers neither
//! a header-read timeout nor a cap on connections: without them ~20,000
//! connections that sent half a request line each held a file descriptor
//! forever, and `/healthz` stopped answering.
//!
//! What stays hyper's own: hyper answers some protocol errors itself, before
//! a request exists to route, with an empty body, and offers no hook to shape
//! that answer:
//! - an unparsable request line or header (bad method, version, header
//!   syntax, invalid URI characters): empty `400`;
//! - a request head (request line and headers) longer than
//!   [`MAX_HEAD_BYTES`], or with more than 100 headers: empty `431`.
//!   Hyper's own fixed limit on the request target, 65,534 bytes (empty
//!   `414`), is never reached: a head holding such a target is already too
//!   long. Targets up to the head limit reach our JSON `414 uri_too_long`;
//! - a head not complete within the header-read timeout: the connection is
//!   closed without an answer (there is no request to answer);
//! - an HTTP/2 preface: the connection is closed (the server speaks HTTP/1.1).
//!
//! Each of these closes only the offending connection. Anything that parses
//! as a request reaches the router, so from there on every error is JSON.

use super::{ApiError, ServerConfig};
use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt;

/// Longest request head (request line and headers) hyper reads. Without
/// it a head may grow to hyper's whole read buffer (~400 KiB), which would
/// let the connection cap's worth of clients trickling headers pin
/// ~400 MiB; 64 KiB is eight times the longest target we route and far
/// above any real client's headers. It does not limit bodies.
pub(crate) const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Connections over the cap being answered at once; beyond this they are
/// closed without an answer, so a flood cannot turn refusals into the very
/// descriptor exhaustion the cap prevents.
const MAX_REFUSALS_IN_FLIGHT: usize = 64;
/// How long a refusal waits for the client to read it and hang up.
const REFUSAL_LINGER: Duration = Duration::from_millis(500);
/// Pause after an accept error that is not about one connection (such as
/// running out of file descriptors), as hyper and axum do, rather than
/// spinning on it.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_secs(1);

pub(crate) struct Limits {
    header_read_timeout: Duration,
    max_connections: usize,
}

impl From<&ServerConfig> for Limits {
    fn from(c: &ServerConfig) -> Self {
        Limits {
            header_read_timeout: c.header_read_timeout,
            max_connections: c.max_connections,
        }
    }
}

/// Serves `app` on `listener` until `shutdown` changes (or its sender is
/// dropped), then stops accepting and waits for the open connections:
/// requests in flight finish, idle connections are closed.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_header_size(MAX_HEAD_BYTES);
    let graceful = GracefulShutdown::new();
    // A permit is held for a connection's whole life, so the count is of
    // open connections, not of requests.
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let refusals = Arc::new(Semaphore::new(MAX_REFUSALS_IN_FLIGHT));
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    tracing::error!(error = %e, "accept failed; pausing");
                    tokio::select! {
                        _ = tokio::time::sleep(ACCEPT_ERROR_PAUSE) => continue,
                        _ = shutdown.changed() => break,
                    }
                }
            },
            _ = shutdown.changed() => break,
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            metrics::counter!("depin_http_errors_total", "code" => "too_many_connections")
                .increment(1);
            if let Ok(slot) = refusals.clone().try_acquire_owned() {
                let max = limits.max_connections;
                tokio::spawn(async move {
                    refuse(stream, max).await;
                    drop(slot);
                });
            }
            continue;
        };
        // Handlers see the peer address as `ConnectInfo<SocketAddr>`,
        // as with `into_make_service_with_connect_info`.
        let service = app
            .clone()
            .map_request(move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                req.map(Body::new)
            });
        let conn =
            builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Errors that concern only the connection being accepted.
fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

/// Answers a connection over the cap with a JSON `503` and closes it.
/// Written by hand because no hyper connection exists for it: that is the
/// point of the cap.
async fn refuse(mut stream: TcpStream, max: usize) {
    let body = ApiError::too_many_connections(format!(
        "the server is serving its maximum of {max} connections; retry shortly"
    ))
    .body()
    .to_string();
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\nretry-after: 1\r\n\r\n{body}",
        body.len()
    );
    let answer = async {
        stream.write_all(response.as_bytes()).await?;
        // Half-close, then read what the client sent until it hangs up:
        // closing a socket with unread input makes the kernel send a
        // reset, which can destroy the answer before the client reads it.
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<(), std::io::Error>(())
    };
    let _ = tokio::time::timeout(REFUSAL_LINGER, answer).await;
}
