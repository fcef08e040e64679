//! A real `homi-server` process for tests and benchmarks that kill and
//! restart it: its command against a database and the fake provider, and a
//! wait for it to answer.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::FakeProvider;

/// The command that runs the server binary `bin` (a test's
/// `env!("CARGO_BIN_EXE_homi-server")`) on `database_url` and 127.0.0.1:`port`,
/// with `fake` as its provider and 64-dimension embeddings; its output is
/// discarded. Add or override variables before spawning it.
pub fn server_command(bin: &str, database_url: &str, fake: &FakeProvider, port: u16) -> Command {
    let mut command = Command::new(bin);
    command
        .env("DATABASE_URL", database_url)
        .env("OPENAI_BASE_URL", fake.base_url())
        .env("OPENAI_API_KEY", "sk-test")
        .env("HOMI_EMBEDDER", "openai")
        .env("HOMI_EMBEDDING_MODEL", "text-embedding-3-small")
        .env("HOMI_EMBEDDING_DIMS", "64")
        .env("API_HOST", "127.0.0.1")
        .env("API_PORT", port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

/// A free port of 127.0.0.1 (free when asked; a server binds it next).
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Whether `GET /health` on 127.0.0.1:`port` answers 200.
async fn healthy(port: u16) -> bool {
    let Ok(mut tcp) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    let asked = tcp
        .write_all(b"GET /health HTTP/1.1\r\nHost: homi\r\nConnection: close\r\n\r\n")
        .await;
    let mut answer = Vec::new();
    asked.is_ok()
        && tcp.read_to_end(&mut answer).await.is_ok()
        && answer.starts_with(b"HTTP/1.1 200")
}

/// Waits until the server on `port` answers `GET /health`; `false` if it
/// did not within `within`.
pub async fn wait_healthy(port: u16, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if healthy(port).await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}
