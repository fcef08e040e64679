//! A real SMTP sink on loopback, for tests that send mail.
//!
//! [`SmtpSink`] listens on `127.0.0.1` and speaks enough plain SMTP (RFC 5321,
//! no TLS) for an ordinary client such as `lettre` to deliver: `EHLO`/`HELO`,
//! `AUTH PLAIN` and `AUTH LOGIN` (any credentials are accepted), `MAIL FROM`,
//! `RCPT TO`, `DATA` (with dot-unstuffing), `RSET`, `NOOP` and `QUIT`. Several
//! messages per connection and several connections at once are fine. Every
//! message is kept in memory as a [`ReceivedMail`], with helpers to read its
//! headers ([`ReceivedMail::header`]) and its decoded text body
//! ([`ReceivedMail::body_text`]).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use base64::Engine as _;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, oneshot};
use tokio::task::{JoinHandle, JoinSet};

/// The name the sink gives itself in its greeting and `EHLO` reply.
const SERVER_NAME: &str = "homi-testkit.smtp";

/// Longest command line accepted, in bytes (RFC 5321 asks for at least 512).
const MAX_COMMAND_LINE: usize = 4096;

/// Largest message accepted, in bytes.
const MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// One message as the sink received it.
#[derive(Debug, Clone)]
pub struct ReceivedMail {
    /// The `MAIL FROM` address, without the angle brackets (empty for `<>`).
    pub from: String,
    /// The `RCPT TO` addresses, without the angle brackets, in order.
    pub to: Vec<String>,
    /// The raw message sent after `DATA`: headers and body, dot-unstuffed, up to
    /// (not including) the `CRLF . CRLF` that ends it.
    pub data: String,
    /// The user name, if the client authenticated (`AUTH PLAIN` or `AUTH LOGIN`).
    pub auth_user: Option<String>,
}

impl ReceivedMail {
    /// The value of the first header called `name` (case-insensitive), unfolded,
    /// trimmed, with RFC 2047 encoded words (`=?utf-8?b?...?=`,
    /// `=?utf-8?q?...?=`) decoded.
    pub fn header(&self, name: &str) -> Option<String> {
        let (head, _) = split_message(&self.data);
        unfolded_headers(head)
            .into_iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| decode_encoded_words(v.trim()))
    }

    /// The decoded body of a single-part text message, as UTF-8 (invalid
    /// sequences replaced). Handles the `Content-Transfer-Encoding`s `7bit`,
    /// `8bit` and `binary` (kept as they are), `quoted-printable` (soft line
    /// breaks removed, `=XX` decoded) and `base64`. Line breaks come back as
    /// `\n` (SMTP carries them as `\r\n`).
    pub fn body_text(&self) -> String {
        let (_, body) = split_message(&self.data);
        let encoding = self
            .header("content-transfer-encoding")
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        let bytes = match encoding.as_str() {
            "quoted-printable" => decode_quoted_printable(body),
            "base64" => {
                let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
                base64::engine::general_purpose::STANDARD_NO_PAD
                    .decode(compact.trim_end_matches('='))
                    .unwrap_or_else(|_| body.as_bytes().to_vec())
            }
            _ => body.as_bytes().to_vec(),
        };
        String::from_utf8_lossy(&bytes).replace("\r\n", "\n")
    }
}

struct Shared {
    messages: Mutex<Vec<ReceivedMail>>,
    arrived: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Vec<ReceivedMail>> {
        // A poisoned lock only means a task panicked mid-push; the list is usable.
        self.messages.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, mail: ReceivedMail) {
        self.lock().push(mail);
        self.arrived.notify_waiters();
    }
}

/// A running SMTP sink on `127.0.0.1`. Dropping it stops the server and closes
/// its connections.
pub struct SmtpSink {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for SmtpSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSink")
            .field("addr", &self.addr)
            .field("messages", &self.shared.lock().len())
            .finish()
    }
}

impl SmtpSink {
    /// Starts on a free port of 127.0.0.1.
    pub async fn start() -> std::io::Result<SmtpSink> {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            messages: Mutex::new(Vec::new()),
            arrived: Notify::new(),
        });
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(accept_loop(listener, shared.clone(), rx));
        Ok(SmtpSink {
            addr,
            shared,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL to give an SMTP client: `smtp://127.0.0.1:PORT` (plain, no TLS).
    /// Credentials may be added as `smtp://user:pass@127.0.0.1:PORT`; any are
    /// accepted.
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    /// All messages received so far, oldest first.
    pub fn messages(&self) -> Vec<ReceivedMail> {
        self.shared.lock().clone()
    }

    /// Waits until at least `count` messages have been received and returns all
    /// of them, or `None` if that takes longer than `timeout`.
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> Option<Vec<ReceivedMail>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Registered before the check, so a message pushed in between still
            // wakes it.
            let arrived = self.shared.arrived.notified();
            {
                let messages = self.shared.lock();
                if messages.len() >= count {
                    return Some(messages.clone());
                }
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return None;
            }
        }
    }

    /// Forgets the messages received so far.
    pub fn clear(&self) {
        self.shared.lock().clear();
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            // Aborting the accept loop drops its JoinSet, which aborts the
            // connection tasks.
            task.abort();
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: oneshot::Receiver<()>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    let _ = stream.set_nodelay(true);
                    connections.spawn(serve_connection(stream, shared.clone()));
                }
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.abort_all();
}

/// One SMTP transaction in progress.
#[derive(Default)]
struct Transaction {
    from: Option<String>,
    to: Vec<String>,
}

struct Connection {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl Connection {
    async fn reply(&mut self, text: &str) -> std::io::Result<()> {
        self.writer.write_all(text.as_bytes()).await?;
        self.writer.write_all(b"\r\n").await?;
        self.writer.flush().await
    }

    /// Reads one line, without its line ending. `None` at end of stream.
    async fn line(&mut self, limit: usize) -> std::io::Result<Option<Vec<u8>>> {
        let mut buf = Vec::new();
        let n = (&mut self.reader)
            .take(limit as u64 + 2)
            .read_until(b'\n', &mut buf)
            .await?;
        if n == 0 {
            return Ok(None);
        }
        if buf.last() != Some(&b'\n') {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "line too long",
            ));
        }
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
        Ok(Some(buf))
    }
}

async fn serve_connection(stream: TcpStream, shared: Arc<Shared>) {
    let (read, write) = stream.into_split();
    let mut conn = Connection {
        reader: BufReader::new(read),
        writer: write,
    };
    let _ = session(&mut conn, &shared).await;
    let _ = conn.writer.shutdown().await;
}

fn decode_b64_text(text: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()
}

/// Runs the SMTP dialogue until `QUIT`, end of stream or an I/O error.
async fn session(conn: &mut Connection, shared: &Shared) -> std::io::Result<()> {
    conn.reply(&format!(
        "220 {SERVER_NAME} ESMTP homi-testkit SMTP sink ready"
    ))
    .await?;
    let mut greeted = false;
    let mut auth_user: Option<String> = None;
    let mut tx = Transaction::default();
    loop {
        let Some(raw) = conn.line(MAX_COMMAND_LINE).await? else {
            return Ok(());
        };
        let line = String::from_utf8_lossy(&raw).into_owned();
        let (verb, arg) = match line.split_once(' ') {
            Some((v, a)) => (v.to_ascii_uppercase(), a.trim().to_owned()),
            None => (line.trim().to_ascii_uppercase(), String::new()),
        };
        match verb.as_str() {
            "EHLO" => {
                if arg.is_empty() {
                    conn.reply("501 5.5.4 Syntax: EHLO hostname").await?;
                    continue;
                }
                greeted = true;
                tx = Transaction::default();
                conn.reply(&format!(
                    "250-{SERVER_NAME} greets {arg}\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 AUTH PLAIN LOGIN"
                ))
                .await?;
            }
            "HELO" => {
                if arg.is_empty() {
                    conn.reply("501 5.5.4 Syntax: HELO hostname").await?;
                    continue;
                }
                greeted = true;
                tx = Transaction::default();
                conn.reply(&format!("250 {SERVER_NAME}")).await?;
            }
            "AUTH" => {
                if !greeted {
                    conn.reply("503 5.5.1 Error: send HELO/EHLO first").await?;
                } else if auth_user.is_some() {
                    conn.reply("503 5.5.1 Error: already authenticated").await?;
                } else if tx.from.is_some() {
                    conn.reply("503 5.5.1 Error: MAIL transaction in progress")
                        .await?;
                } else {
                    match authenticate(conn, &arg).await? {
                        Ok(user) => {
                            auth_user = Some(user);
                            conn.reply("235 2.7.0 Authentication successful").await?;
                        }
                        Err(reply) => conn.reply(reply).await?,
                    }
                }
            }
            "MAIL" => {
                if !greeted {
                    conn.reply("503 5.5.1 Error: send HELO/EHLO first").await?;
                } else if tx.from.is_some() {
                    conn.reply("503 5.5.1 Error: nested MAIL command").await?;
                } else {
                    match path_argument(&arg, "FROM:") {
                        Some(addr) => {
                            tx.from = Some(addr);
                            conn.reply("250 2.1.0 Ok").await?;
                        }
                        None => conn.reply("501 5.5.4 Syntax: MAIL FROM:<address>").await?,
                    }
                }
            }
            "RCPT" => {
                if tx.from.is_none() {
                    conn.reply("503 5.5.1 Error: need MAIL command").await?;
                } else {
                    match path_argument(&arg, "TO:") {
                        Some(addr) if !addr.is_empty() => {
                            tx.to.push(addr);
                            conn.reply("250 2.1.5 Ok").await?;
                        }
                        _ => conn.reply("501 5.5.4 Syntax: RCPT TO:<address>").await?,
                    }
                }
            }
            "DATA" => {
                if !arg.is_empty() {
                    conn.reply("501 5.5.4 Syntax: DATA").await?;
                } else if tx.from.is_none() {
                    conn.reply("503 5.5.1 Error: need MAIL command").await?;
                } else if tx.to.is_empty() {
                    conn.reply("503 5.5.1 Error: need RCPT command").await?;
                } else {
                    conn.reply("354 End data with <CR><LF>.<CR><LF>").await?;
                    let Some(data) = read_data(conn).await? else {
                        return Ok(());
                    };
                    let done = std::mem::take(&mut tx);
                    shared.push(ReceivedMail {
                        from: done.from.unwrap_or_default(),
                        to: done.to,
                        data,
                        auth_user: auth_user.clone(),
                    });
                    let id = shared.lock().len();
                    conn.reply(&format!("250 2.0.0 Ok: queued as {id}")).await?;
                }
            }
            "RSET" => {
                tx = Transaction::default();
                conn.reply("250 2.0.0 Ok").await?;
            }
            "NOOP" => conn.reply("250 2.0.0 Ok").await?,
            "QUIT" => {
                conn.reply("221 2.0.0 Bye").await?;
                return Ok(());
            }
            _ => {
                conn.reply("502 5.5.2 Error: command not recognized")
                    .await?;
            }
        }
    }
}

/// Runs an `AUTH` exchange. The outer error is I/O; the inner one the reply
/// to send on failure.
async fn authenticate(
    conn: &mut Connection,
    arg: &str,
) -> std::io::Result<Result<String, &'static str>> {
    let (mechanism, initial) = match arg.split_once(' ') {
        Some((m, i)) => (m.to_ascii_uppercase(), Some(i.trim().to_owned())),
        None => (arg.to_ascii_uppercase(), None),
    };
    const CANCELLED: &str = "501 5.7.0 Authentication cancelled";
    const UNDECODABLE: &str = "501 5.5.2 Cannot decode response";
    match mechanism.as_str() {
        "PLAIN" => {
            let response = match initial {
                Some(i) => i,
                None => {
                    conn.reply("334 ").await?;
                    match conn.line(MAX_COMMAND_LINE).await? {
                        Some(l) => String::from_utf8_lossy(&l).into_owned(),
                        None => return Ok(Err(CANCELLED)),
                    }
                }
            };
            if response.trim() == "*" {
                return Ok(Err(CANCELLED));
            }
            // authzid NUL authcid NUL password ("=" is an empty initial response).
            let decoded = if response.trim() == "=" {
                Vec::new()
            } else {
                match decode_b64_text(&response) {
                    Some(d) => d,
                    None => return Ok(Err(UNDECODABLE)),
                }
            };
            let parts: Vec<&[u8]> = decoded.split(|b| *b == 0).collect();
            match parts.as_slice() {
                [_, user, _] => Ok(Ok(String::from_utf8_lossy(user).into_owned())),
                _ => Ok(Err(UNDECODABLE)),
            }
        }
        "LOGIN" => {
            let user = match initial {
                Some(i) => i,
                None => {
                    // "Username:"
                    conn.reply("334 VXNlcm5hbWU6").await?;
                    match conn.line(MAX_COMMAND_LINE).await? {
                        Some(l) => String::from_utf8_lossy(&l).into_owned(),
                        None => return Ok(Err(CANCELLED)),
                    }
                }
            };
            if user.trim() == "*" {
                return Ok(Err(CANCELLED));
            }
            let Some(user) = decode_b64_text(&user) else {
                return Ok(Err(UNDECODABLE));
            };
            // "Password:"
            conn.reply("334 UGFzc3dvcmQ6").await?;
            let password = match conn.line(MAX_COMMAND_LINE).await? {
                Some(l) => String::from_utf8_lossy(&l).into_owned(),
                None => return Ok(Err(CANCELLED)),
            };
            if password.trim() == "*" {
                return Ok(Err(CANCELLED));
            }
            if decode_b64_text(&password).is_none() {
                return Ok(Err(UNDECODABLE));
            }
            Ok(Ok(String::from_utf8_lossy(&user).into_owned()))
        }
        _ => Ok(Err("504 5.5.4 Unrecognized authentication type")),
    }
}

/// Parses `FROM:<addr> [params]` / `TO:<addr> [params]`; returns the address
/// without brackets.
fn path_argument(arg: &str, keyword: &str) -> Option<String> {
    let head = arg.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = arg.get(keyword.len()..)?.trim_start();
    if let Some(inner) = rest.strip_prefix('<') {
        let end = inner.find('>')?;
        Some(inner[..end].to_owned())
    } else {
        // Some clients omit the brackets.
        let addr = rest.split_whitespace().next()?;
        Some(addr.to_owned())
    }
}

/// Reads the message after `354` up to the line holding a single `.`, undoing
/// dot-stuffing. `None` if the connection ended first.
async fn read_data(conn: &mut Connection) -> std::io::Result<Option<String>> {
    let mut data: Vec<u8> = Vec::new();
    let mut first = true;
    loop {
        let Some(line) = conn.line(MAX_MESSAGE).await? else {
            return Ok(None);
        };
        if line == b"." {
            break;
        }
        if !first {
            data.extend_from_slice(b"\r\n");
        }
        first = false;
        let line = line.strip_prefix(b".").unwrap_or(&line);
        data.extend_from_slice(line);
        if data.len() > MAX_MESSAGE {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "message too large",
            ));
        }
    }
    Ok(Some(String::from_utf8_lossy(&data).into_owned()))
}

/// Splits a message into its header block and its body.
fn split_message(data: &str) -> (&str, &str) {
    if let Some(i) = data.find("\r\n\r\n") {
        (&data[..i], &data[i + 4..])
    } else if let Some(i) = data.find("\n\n") {
        (&data[..i], &data[i + 2..])
    } else {
        (data, "")
    }
}

/// `(name, value)` pairs, with folded continuation lines joined.
fn unfolded_headers(head: &str) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = headers.last_mut() {
                value.push_str(line);
            }
        } else if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_owned(), value.to_owned()));
        }
    }
    headers
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes a quoted-printable body (RFC 2045 §6.7).
fn decode_quoted_printable(body: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut lines = body.split('\n').peekable();
    while let Some(line) = lines.next() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        // Transport padding: trailing white space is not part of the text.
        let line = line.trim_end_matches([' ', '\t']);
        let bytes = line.as_bytes();
        let mut soft_break = false;
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'=' {
                if i + 1 == bytes.len() {
                    soft_break = true;
                    break;
                }
                if let (Some(h), Some(l)) = (
                    bytes.get(i + 1).copied().and_then(hex_value),
                    bytes.get(i + 2).copied().and_then(hex_value),
                ) {
                    out.push(h * 16 + l);
                    i += 3;
                    continue;
                }
            }
            out.push(bytes[i]);
            i += 1;
        }
        if !soft_break && lines.peek().is_some() {
            out.extend_from_slice(b"\r\n");
        }
    }
    out
}

/// Decodes the `Q` encoding of RFC 2047 (`_` is a space).
fn decode_q(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'_' => out.push(b' '),
            b'=' => {
                if let (Some(h), Some(l)) = (
                    bytes.get(i + 1).copied().and_then(hex_value),
                    bytes.get(i + 2).copied().and_then(hex_value),
                ) {
                    out.push(h * 16 + l);
                    i += 3;
                    continue;
                }
                out.push(b'=');
            }
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// Parses one encoded word `=?charset?enc?text?=` at the start of `s`; returns
/// the decoded bytes, whether the charset is Latin-1, and the length consumed.
fn encoded_word(s: &str) -> Option<(Vec<u8>, bool, usize)> {
    let rest = s.strip_prefix("=?")?;
    let (charset, rest) = rest.split_once('?')?;
    let (encoding, rest) = rest.split_once('?')?;
    let end = rest.find("?=")?;
    let text = &rest[..end];
    if text.contains(' ') {
        return None;
    }
    let consumed = 2 + charset.len() + 1 + encoding.len() + 1 + end + 2;
    // RFC 2231 allows a language after '*': "utf-8*en".
    let charset = charset.split('*').next().unwrap_or("").to_ascii_lowercase();
    let latin1 = matches!(charset.as_str(), "iso-8859-1" | "latin1" | "windows-1252");
    let decoded = match encoding.to_ascii_uppercase().as_str() {
        "B" => base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(text.trim_end_matches('='))
            .ok()?,
        "Q" => decode_q(text),
        _ => return None,
    };
    Some((decoded, latin1, consumed))
}

fn flush_word_bytes(out: &mut String, pending: &mut Vec<u8>, latin1: bool) {
    if pending.is_empty() {
        return;
    }
    if latin1 {
        out.extend(pending.iter().map(|b| char::from(*b)));
    } else {
        out.push_str(&String::from_utf8_lossy(pending));
    }
    pending.clear();
}

/// Decodes the RFC 2047 encoded words in a header value. White space between
/// two adjacent encoded words is dropped, and their bytes are joined before
/// UTF-8 decoding (a character may be split across words).
fn decode_encoded_words(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut pending: Vec<u8> = Vec::new();
    let mut pending_latin1 = false;
    // White space seen since the last encoded word, kept in case plain text follows.
    let mut gap = String::new();
    let mut rest = value;
    while !rest.is_empty() {
        if rest.starts_with("=?")
            && let Some((bytes, latin1, consumed)) = encoded_word(rest)
        {
            if !pending.is_empty() && latin1 != pending_latin1 {
                flush_word_bytes(&mut out, &mut pending, pending_latin1);
            }
            if pending.is_empty() {
                out.push_str(&gap);
            }
            gap.clear();
            pending.extend_from_slice(&bytes);
            pending_latin1 = latin1;
            rest = &rest[consumed..];
            continue;
        }
        let Some(c) = rest.chars().next() else {
            break;
        };
        if c.is_whitespace() && !pending.is_empty() {
            gap.push(c);
        } else {
            flush_word_bytes(&mut out, &mut pending, pending_latin1);
            out.push_str(&gap);
            gap.clear();
            out.push(c);
        }
        rest = &rest[c.len_utf8()..];
    }
    flush_word_bytes(&mut out, &mut pending, pending_latin1);
    out.push_str(&gap);
    out
}

#[cfg(test)]
mod tests;
