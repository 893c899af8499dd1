//! The server's HTTP limits over raw TCP on loopback: header-read timeout,
//! request timeout, connection cap, range checks on numeric parameters, and
//! that every error the application can shape is JSON. Raw sockets rather
//! than reqwest because the cases are half-sent requests, bytes a client
//! library would refuse or normalise, and connections held open on purpose.
//!
//! Every wait is bounded by [`DEADLINE`]; the limits under test are set far
//! below it, so nothing here measures speed: a deadline only turns "never"
//! into a failure.

mod common;

use common::start_with;
use depin_rewards::RewardPolicy;
use depin_server::RunningServer;
use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The longest any single step waits for the server.
const DEADLINE: Duration = Duration::from_secs(10);
/// An operator or device key that parses (it is registered nowhere).
const KEY: &str = "abababababababababababababababababababababababababababababababab";

/// One HTTP response as read off the socket.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts the reply is our JSON error shape with this status and code.
    fn expect_error(&self, what: &str, status: u16, code: &str) {
        let v = self.expect_json_error(what);
        assert_eq!(self.status, status, "{what}: {}", self.text());
        assert_eq!(v["error"], code, "{what}: {v}");
    }

    /// Asserts the reply is `{ "error": code, "message": text }` with a
    /// 4xx/5xx status, a non-empty code and message; returns the body.
    fn expect_json_error(&self, what: &str) -> Value {
        assert!(self.status >= 400, "{what}: status {}", self.status);
        assert!(
            self.header("content-type")
                .is_some_and(|t| t.starts_with("application/json")),
            "{what}: {} with content-type {:?}: {:?}",
            self.status,
            self.header("content-type"),
            self.text()
        );
        let v: Value = serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{what}: body is not JSON ({e}): {:?}", self.text()));
        assert!(
            v["error"].as_str().is_some_and(|c| !c.is_empty()),
            "{what}: {v}"
        );
        assert!(
            v["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{what}: {v}"
        );
        v
    }
}

/// Parses a complete response from `buf`: `None` while more bytes are needed.
/// At end of stream (`eof`) a head without a length takes the rest as body.
fn parse_reply(buf: &[u8], eof: bool) -> Option<Reply> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&buf[..end]).expect("response head is text");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let rest = &buf[end + 4..];
    let length = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.parse::<usize>().expect("numeric content-length"));
    let body = match length {
        Some(n) if rest.len() >= n => rest[..n].to_vec(),
        None if eof => rest.to_vec(),
        _ => return None,
    };
    Some(Reply {
        status,
        headers,
        body,
    })
}

/// Reads one response from `s`. `None` if the server closed (or reset) the
/// connection before sending a single byte.
async fn read_reply(s: &mut TcpStream) -> Option<Reply> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let read = async {
        loop {
            if let Some(reply) = parse_reply(&buf, false) {
                return Some(reply);
            }
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) if buf.is_empty() => return None,
                Ok(0) | Err(_) => {
                    return Some(parse_reply(&buf, true).unwrap_or_else(|| {
                        panic!("truncated response {:?}", String::from_utf8_lossy(&buf))
                    }));
                }
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(DEADLINE, read)
        .await
        .expect("the server answered or closed the connection within the deadline")
}

/// Sends `request` on a new connection and reads the answer, if any.
async fn exchange(addr: SocketAddr, request: &[u8]) -> Option<Reply> {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    // The server may answer and close before reading all of a huge request;
    // whether the write completed is not the verdict, the answer is.
    let _ = tokio::time::timeout(DEADLINE, s.write_all(request)).await;
    read_reply(&mut s).await
}

fn request(method: &str, target: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "{method} {target} HTTP/1.1\r\nhost: test\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

/// A request that must be answered (not just closed).
async fn call(addr: SocketAddr, method: &str, target: &str) -> Reply {
    exchange(addr, &request(method, target, b""))
        .await
        .unwrap_or_else(|| panic!("{method} {target}: closed without an answer"))
}

async fn expect_healthy(addr: SocketAddr, after: &str) {
    let r = call(addr, "GET", "/healthz").await;
    assert_eq!((r.status, r.text().as_str()), (200, "ok"), "after {after}");
}

/// Waits until the server closes `s` (end of stream or reset); false if it
/// is still open at the deadline. Bytes the server sends are skipped.
async fn closed_by_server(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 1024];
    let wait = async {
        loop {
            match s.read(&mut b).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(DEADLINE, wait).await.is_ok()
}

async fn start(
    dir: &std::path::Path,
    adjust: impl FnOnce(&mut depin_server::ServerConfig),
) -> RunningServer {
    start_with(dir, RewardPolicy::default_v1(), adjust).await
}

/// A client that stops half-way through its request line, one that sends
/// nothing, one that trickles a header byte by byte and an idle kept-alive
/// connection are all closed by the 1 s header-read timeout, and the server
/// keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_read_timeout_closes_stalled_and_slow_clients() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), |c| {
        c.header_read_timeout = Duration::from_secs(1);
    })
    .await;
    let addr = server.addr;

    let mut half = TcpStream::connect(addr).await.unwrap();
    half.write_all(b"GET /healthz HTT").await.unwrap();
    let mut half_headers = TcpStream::connect(addr).await.unwrap();
    half_headers
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: test\r\nx-unfinished: ")
        .await
        .unwrap();
    let mut silent = TcpStream::connect(addr).await.unwrap();
    assert!(closed_by_server(&mut half).await, "half a request line");
    assert!(
        closed_by_server(&mut half_headers).await,
        "half a header block"
    );
    assert!(closed_by_server(&mut silent).await, "nothing sent");

    // The timeout is for the whole head, not per read: a byte every 200 ms
    // does not keep the connection alive. At most DEADLINE / 200 ms bytes.
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nx-slow: ")
        .await
        .unwrap();
    let mut closed = false;
    let mut b = [0u8; 64];
    for _ in 0..(DEADLINE.as_millis() / 200) {
        tokio::select! {
            r = slow.read(&mut b) => {
                assert!(matches!(r, Ok(0) | Err(_)), "no answer expected: {r:?}");
                closed = true;
                break;
            }
            _ = tokio::time::sleep(Duration::from_millis(200)) => {
                if slow.write_all(b"a").await.is_err() {
                    closed = true;
                    break;
                }
            }
        }
    }
    assert!(closed, "a trickled header was not cut off");

    // After a complete exchange, a kept-alive connection waiting for its next
    // request is under the same timeout.
    let mut kept = TcpStream::connect(addr).await.unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nhost: test\r\n\r\n")
        .await
        .unwrap();
    let r = read_reply(&mut kept).await.expect("an answer");
    assert_eq!(r.status, 200);
    assert!(
        closed_by_server(&mut kept).await,
        "idle kept-alive connection"
    );

    expect_healthy(addr, "stalled clients").await;
    server.stop().await.unwrap();
}

/// A request announcing a body that never comes gets a JSON 408 from the 1 s
/// request timeout; so does one whose body stops half-way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_timeout_answers_json_408() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), |c| {
        c.request_timeout = Duration::from_secs(1);
    })
    .await;
    let addr = server.addr;

    let r = exchange(
        addr,
        b"POST /v1/reports HTTP/1.1\r\nhost: test\r\ncontent-length: 100\r\n\r\n",
    )
    .await
    .expect("an answer");
    r.expect_error("body never sent", 408, "request_timeout");

    let r = exchange(
        addr,
        b"PUT /v1/operators/abababababababababababababababababababababababababababababababab/settings HTTP/1.1\r\nhost: test\r\ncontent-length: 100\r\n\r\n{\"half\":",
    )
    .await
    .expect("an answer");
    r.expect_error("body stopped half-way", 408, "request_timeout");

    expect_healthy(addr, "timed-out requests").await;
    server.stop().await.unwrap();
}

/// With a cap of 4, four idle connections are served and a fifth gets a
/// JSON 503 and is closed; once the four close, the server answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_get_json_503() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), |c| {
        c.max_connections = 4;
        // Longer than the test, so the held connections stay open until we
        // drop them.
        c.header_read_timeout = Duration::from_secs(60);
    })
    .await;
    let addr = server.addr;

    // The server accepts in arrival order, so these four hold every permit
    // before the fifth is accepted.
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(TcpStream::connect(addr).await.unwrap());
    }
    for attempt in 0..3 {
        let r = exchange(addr, &request("GET", "/healthz", b""))
            .await
            .unwrap_or_else(|| panic!("refusal {attempt}: closed without an answer"));
        r.expect_error("over the cap", 503, "too_many_connections");
        assert_eq!(r.header("connection"), Some("close"));
    }

    // A held connection is a real one: it is served (and stays open).
    held[0]
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: test\r\n\r\n")
        .await
        .unwrap();
    let r = read_reply(&mut held[0]).await.expect("an answer");
    assert_eq!((r.status, r.text().as_str()), (200, "ok"));

    drop(held);
    // The server notices the closes asynchronously: ask again, at most
    // DEADLINE / 100 ms times, until a permit is free.
    let mut last = None;
    for _ in 0..(DEADLINE.as_millis() / 100) {
        let r = call(addr, "GET", "/healthz").await;
        if r.status == 200 {
            last = Some(r);
            break;
        }
        r.expect_error(
            "while the held connections close",
            503,
            "too_many_connections",
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = last.expect("/healthz answers once the held connections are closed");
    assert_eq!(r.text(), "ok");
    server.stop().await.unwrap();
}

/// Every numeric path and query parameter takes 0..=i64::MAX: in range it is
/// looked up (nothing is closed here, so 404, or 409 for rates), beyond it is
/// `out_of_range`, garbage and negatives are `bad_request`; never a 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numeric_parameters_are_range_checked() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), |_| {}).await;
    let addr = server.addr;
    let i64_max = i64::MAX.to_string();
    let over_i64 = (i64::MAX as u64 + 1).to_string();
    let u64_max = u64::MAX.to_string();
    let over_u64 = (u64::MAX as u128 + 1).to_string();
    let huge = "9".repeat(400);
    // value, expected (status, code) for a lookup by epoch
    let cases: Vec<(&str, u16, &str)> = vec![
        ("0", 404, "not_found"),
        (&i64_max, 404, "not_found"),
        (&over_i64, 400, "out_of_range"),
        (&u64_max, 400, "out_of_range"),
        (&over_u64, 400, "out_of_range"),
        (&huge, 400, "out_of_range"),
        ("-1", 400, "bad_request"),
        ("-9223372036854775809", 400, "bad_request"),
        ("abc", 400, "bad_request"),
        ("1.5", 400, "bad_request"),
        ("0x10", 400, "bad_request"),
        ("1e3", 400, "bad_request"),
        ("%20", 400, "bad_request"),
    ];
    for (value, status, code) in &cases {
        for target in [
            format!("/v1/epochs/{value}"),
            format!("/v1/claims/{value}"),
            format!("/v1/claims/{value}/{KEY}"),
        ] {
            call(addr, "GET", &target)
                .await
                .expect_error(&target, *status, code);
        }
        // The window is clamped into 1..=720 once parsed, so every value in
        // range asks for rates, which need a closed epoch.
        let target = format!("/v1/economics/rates?window={value}");
        let (status, code) = if *status == 404 {
            (409, "no_epochs")
        } else {
            (*status, *code)
        };
        call(addr, "GET", &target)
            .await
            .expect_error(&target, status, code);
        // The order number inside a locked-escrow account is the ledger's to
        // parse (a u64 only ever compared as text): a balance or a 400.
        let target = format!("/v1/balances/locked:{KEY}:{value}");
        let r = call(addr, "GET", &target).await;
        if r.status == 200 {
            let v: Value = serde_json::from_slice(&r.body).expect("JSON balance");
            assert_eq!(v["balance"], 0, "{target}: {v}");
        } else {
            r.expect_error(&target, 400, "bad_request");
        }
    }
    let r = call(addr, "GET", &format!("/v1/epochs/{over_i64}")).await;
    let v = r.expect_json_error("limit named");
    assert!(
        v["message"].as_str().unwrap().contains(&i64_max),
        "the message names the limit: {v}"
    );
    expect_healthy(addr, "numeric parameters").await;
    server.stop().await.unwrap();
}

/// Percent-encoding garbage in every path parameter of every route, bad
/// query strings, long targets, unknown routes and wrong methods all get the
/// JSON error shape. Requests hyper refuses before routing (documented in
/// `lib.rs`) get a 4xx or a closed connection, and the server keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_application_error_is_json() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), |_| {}).await;
    let addr = server.addr;

    // Invalid escapes (kept literally by the decoder), bytes that are not
    // UTF-8 once decoded (rejected by the path extractor), and a decoded
    // slash and NUL.
    let garbage = [
        "%ZZ", "%FF%FE", "%", "%2", "%C0%AF", "%E2%82", "%00", "%2F..%2F", "a%FFb",
    ];
    for g in garbage {
        let targets = [
            ("GET", format!("/v1/devices/{g}")),
            ("GET", format!("/v1/operators/{g}/devices")),
            ("GET", format!("/v1/epochs/{g}")),
            ("GET", format!("/v1/balances/{g}")),
            ("GET", format!("/v1/claims/{g}")),
            ("GET", format!("/v1/claims/{g}/{KEY}")),
            ("GET", format!("/v1/claims/0/{g}")),
            ("GET", format!("/v1/operators/{g}/settings")),
            ("PUT", format!("/v1/operators/{g}/settings")),
            ("GET", format!("/v1/operators/{g}/economics")),
            ("GET", format!("/v1/operators/{g}/alerts")),
        ];
        for (method, target) in targets {
            let r = exchange(addr, &request(method, &target, b"{}"))
                .await
                .unwrap_or_else(|| panic!("{method} {target}: no answer"));
            r.expect_error(&format!("{method} {target}"), 400, "bad_request");
        }
    }

    // Query strings: a repeated parameter, values that are not numbers once
    // decoded (or not UTF-8), and keys that mean nothing.
    for (query, status, code) in [
        ("window=1&window=2", 400, "bad_request"),
        ("window=%FF", 400, "bad_request"),
        ("window=%ZZ", 400, "bad_request"),
        ("window=", 400, "bad_request"),
        ("window", 400, "bad_request"),
        ("%FF%FE=1", 409, "no_epochs"),
        ("&&==&", 409, "no_epochs"),
    ] {
        let target = format!("/v1/economics/rates?{query}");
        call(addr, "GET", &target)
            .await
            .expect_error(&target, status, code);
    }

    // Long targets: exactly at the 8 KiB limit the request is routed (and the
    // key refused); one byte more, or anything up to what hyper's buffer
    // holds, is `uri_too_long`, on any route or none.
    let at_limit = format!(
        "/v1/devices/{}",
        "a".repeat(8 * 1024 - "/v1/devices/".len())
    );
    assert_eq!(at_limit.len(), 8 * 1024);
    call(addr, "GET", &at_limit)
        .await
        .expect_error("target at the limit", 400, "bad_request");
    for target in [
        format!("{at_limit}a"),
        format!("/v1/devices/{}", "a".repeat(10 * 1024)),
        format!("/v1/nope/{}", "a".repeat(10 * 1024)),
        format!("/v1/economics/rates?window=1&pad={}", "a".repeat(10 * 1024)),
        format!("/v1/epochs/{}", "%FF".repeat(10 * 1024)),
        format!("/v1/devices/{}", "a".repeat(40 * 1024)),
    ] {
        call(addr, "GET", &target).await.expect_error(
            &format!("{} byte target", target.len()),
            414,
            "uri_too_long",
        );
    }

    // Unknown routes and wrong methods.
    for (method, target, status, code) in [
        // `/` is the dashboard; beside it, nothing outside /v1 is routed.
        ("GET", "/nope", 404, "not_found"),
        ("GET", "/dashboard/nope.js", 404, "not_found"),
        ("GET", "/v1/nope", 404, "not_found"),
        ("GET", "/v1/epochs/0/extra", 404, "not_found"),
        ("GET", "/v1/%FF%FE", 404, "not_found"),
        ("DELETE", "/v1/reports", 405, "method_not_allowed"),
        ("GET", "/v1/reports", 405, "method_not_allowed"),
        ("POST", "/v1/epochs", 405, "method_not_allowed"),
        (
            "PATCH",
            &format!("/v1/operators/{KEY}/settings"),
            405,
            "method_not_allowed",
        ),
        (
            "POST",
            &format!("/v1/operators/{KEY}/alerts"),
            405,
            "method_not_allowed",
        ),
    ] {
        call(addr, method, target)
            .await
            .expect_error(&format!("{method} {target}"), status, code);
    }

    // Hyper's own refusals: before any request exists, so not ours to shape.
    // Each gets a 4xx (with hyper's empty body) or a closed connection; none
    // may hurt the server.
    let many_headers: String = (0..200).map(|i| format!("x-h{i}: v\r\n")).collect();
    // what, bytes, the status hyper answers with (None: it just closes)
    let hyper_level: Vec<(&str, Vec<u8>, Option<u16>)> = vec![
        (
            "80 KB path",
            request(
                "GET",
                &format!("/v1/devices/{}", "a".repeat(80 * 1024)),
                b"",
            ),
            Some(431),
        ),
        (
            "request line garbage",
            b"GARBAGE\r\n\r\n".to_vec(),
            Some(400),
        ),
        (
            "unknown version",
            b"GET / HTTP/9.9\r\nhost: test\r\n\r\n".to_vec(),
            Some(400),
        ),
        (
            "header without colon",
            b"GET / HTTP/1.1\r\nno colon here\r\n\r\n".to_vec(),
            Some(400),
        ),
        (
            "control byte in target",
            b"GET /v1/\x01 HTTP/1.1\r\nhost: test\r\n\r\n".to_vec(),
            Some(400),
        ),
        (
            "200 headers",
            format!("GET /healthz HTTP/1.1\r\nhost: test\r\n{many_headers}\r\n").into_bytes(),
            Some(431),
        ),
        (
            "100 KB header",
            format!(
                "GET /healthz HTTP/1.1\r\nhost: test\r\nx-big: {}\r\n\r\n",
                "a".repeat(100 * 1024)
            )
            .into_bytes(),
            Some(431),
        ),
        (
            "HTTP/2 preface",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
            None,
        ),
        (
            "binary",
            (0..=255u8).rev().cycle().take(4096).collect(),
            Some(400),
        ),
    ];
    for (what, bytes, expected) in hyper_level {
        // Hyper closes right after answering, possibly with part of a large
        // request unread; the kernel may then reset the connection and drop
        // the answer, so a closed connection is accepted too.
        if let Some(r) = exchange(addr, &bytes).await {
            assert_eq!(Some(r.status), expected, "{what}: {:?}", r.text());
        }
        expect_healthy(addr, what).await;
    }
    server.stop().await.unwrap();
}
