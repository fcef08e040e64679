//! Clients that try to hold the server: a request line sent a byte at a time,
//! idle connections up to the cap, a body that never ends. The server drops
//! them on time and keeps answering everyone else; a request that is being
//! answered (a slow model) is never cut by these limits.

use std::time::{Duration, Instant};

use homi_testkit::db::Backend;
use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{Server, start_configured};

const LIMIT: Duration = Duration::from_secs(1);

async fn tight_server(with_provider: bool) -> (Server, Option<homi_testkit::FakeProvider>) {
    start_configured(Backend::Sqlite, with_provider, |c| {
        c.server.header_timeout = LIMIT;
        c.server.keep_alive_timeout = LIMIT;
        c.server.body_timeout = LIMIT;
        c.server.max_connections = 4;
    })
    .await
    .unwrap()
}

async fn connect(s: &Server) -> TcpStream {
    TcpStream::connect(s.base.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// Reads until the server closes the connection (or `within` passes, which
/// fails the test); returns what it sent.
async fn read_until_closed(tcp: &mut TcpStream, within: Duration) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return String::from_utf8_lossy(&got).into_owned(),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => panic!(
                "the server kept the connection open for {within:?}; it sent: {}",
                String::from_utf8_lossy(&got)
            ),
        }
    }
}

/// `GET /health` on a new connection answers within `within`; returns how
/// long it took.
async fn health_within(s: &Server, within: Duration) -> Duration {
    let started = Instant::now();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let resp = tokio::time::timeout(within, client.get(format!("{}/health", s.base)).send())
        .await
        .expect("/health waited behind the held connections")
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let took = started.elapsed();
    assert!(took < within);
    took
}

#[tokio::test]
async fn a_request_line_sent_a_byte_at_a_time_is_dropped() {
    let (s, _fake) = tight_server(false).await;
    let mut slow = connect(&s).await;
    let started = Instant::now();
    let line = b"GET /health HTTP/1.1\r\nHost: homi\r\n";
    let mut closed = false;
    for (i, byte) in line.iter().enumerate() {
        if slow.write_all(&[*byte]).await.is_err() {
            closed = true;
            break;
        }
        if i == 1 {
            // Others are answered while it dribbles.
            health_within(&s, Duration::from_secs(2)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        if started.elapsed() > Duration::from_secs(8) {
            break;
        }
    }
    if !closed {
        read_until_closed(&mut slow, Duration::from_secs(3)).await;
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a slow request line held its connection for {:?}",
        started.elapsed()
    );
    health_within(&s, Duration::from_secs(2)).await;
}

#[tokio::test]
async fn idle_connections_at_the_cap_are_dropped_and_others_served() {
    let (s, _fake) = tight_server(false).await;
    // As many connections as the cap, each sending nothing at all.
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(connect(&s).await);
    }
    // A fifth client waits in the listen queue until the server drops one
    // (their header time runs out after a second), then is served.
    let waited = health_within(&s, Duration::from_secs(4)).await;
    assert!(
        waited >= Duration::from_millis(500),
        "served at once beside 4 held connections: the cap of 4 was not kept ({waited:?})"
    );
    for mut tcp in idle {
        let sent = read_until_closed(&mut tcp, Duration::from_secs(3)).await;
        assert!(sent.is_empty(), "{sent}");
    }

    // A kept-alive connection is closed once it has been idle for the limit.
    let mut kept = connect(&s).await;
    kept.write_all(b"GET /health HTTP/1.1\r\nHost: homi\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let sent = read_until_closed(&mut kept, Duration::from_secs(4)).await;
    assert!(sent.starts_with("HTTP/1.1 200"), "{sent}");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "closed too early"
    );
}

#[tokio::test]
async fn a_body_that_stops_is_answered_408() {
    let (s, _fake) = tight_server(false).await;
    let mut tcp = connect(&s).await;
    tcp.write_all(
        b"POST /api/v1/auth/signin HTTP/1.1\r\nHost: homi\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{\"email\": \"a",
    )
    .await
    .unwrap();
    let started = Instant::now();
    let sent = read_until_closed(&mut tcp, Duration::from_secs(4)).await;
    assert!(sent.starts_with("HTTP/1.1 408"), "{sent}");
    assert!(sent.contains("\"request_timeout\""), "{sent}");
    assert!(sent.contains("HOMI_BODY_TIMEOUT_SECS"), "{sent}");
    assert!(started.elapsed() < Duration::from_secs(3));
    health_within(&s, Duration::from_secs(2)).await;

    // The MCP door too: a 408, not a server failure.
    let token = s.signup("slow@example.com").await;
    let mut tcp = connect(&s).await;
    let head = format!(
        "POST /mcp HTTP/1.1\r\nHost: homi\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n\
         Content-Length: 200\r\n\r\n{{\"jsonrpc\": \"2.0\""
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let sent = read_until_closed(&mut tcp, Duration::from_secs(4)).await;
    assert!(sent.starts_with("HTTP/1.1 408"), "{sent}");
    assert!(sent.contains("\"request_timeout\""), "{sent}");
}

#[tokio::test]
async fn a_request_being_answered_outlasts_the_connection_limits() {
    let (s, fake) = tight_server(true).await;
    let fake = fake.unwrap();
    let token = s.signup("slow-model@example.com").await;
    // The model takes longer than every connection limit.
    fake.set_latency(Duration::from_millis(1800));
    fake.push_reply("Still here.");
    let (status, body) = s
        .post(
            "/api/v1/chat",
            Some(&token),
            json!({"message": "Are you there?"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["response"], "Still here.");
}
