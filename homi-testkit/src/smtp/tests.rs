//! The sink's own tests: SMTP sessions over real sockets and the decoding
//! of headers and bodies.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use super::*;

use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

fn mail(data: &str) -> ReceivedMail {
    ReceivedMail {
        from: String::new(),
        to: Vec::new(),
        data: data.to_owned(),
        auth_user: None,
    }
}

#[test]
fn headers_unfold_and_decode_encoded_words() {
    let m = mail(
        "Subject: =?utf-8?b?SGVsbG8g?=\r\n =?utf-8?q?w=C3=B6rld_!?=\r\nX-Plain: a\r\n\tb\r\n\r\nbody",
    );
    assert_eq!(m.header("subject").as_deref(), Some("Hello wörld !"));
    assert_eq!(m.header("X-PLAIN").as_deref(), Some("a\tb"));
    assert_eq!(m.header("missing"), None);
    assert_eq!(m.body_text(), "body");
}

#[test]
fn quoted_printable_and_base64_bodies_decode() {
    let qp =
        mail("Content-Transfer-Encoding: quoted-printable\r\n\r\nab=\r\ncd =3D caf=C3=A9\r\nnext");
    assert_eq!(qp.body_text(), "abcd = café\nnext");
    let b64 = mail("Content-Transfer-Encoding: base64\r\n\r\naGVsbG8g\r\nd29ybGQ=");
    assert_eq!(b64.body_text(), "hello world");
}

#[tokio::test]
async fn lettre_delivers_with_auth_and_long_lines() {
    let sink = SmtpSink::start().await.unwrap();
    let url = format!("smtp://alice%40example.com:secret@{}", sink.addr());
    let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&url)
        .unwrap()
        .build();
    let long_line = format!(
        "Confirm your account: https://homi.example/confirm?token={} — thanks",
        "x".repeat(120)
    );
    let body = format!("Hello Bob,\n\n{long_line}\n\nSee you.");
    let message = Message::builder()
        .from("Homi <noreply@homi.example>".parse().unwrap())
        .to("bob@example.com".parse().unwrap())
        .cc("carol@example.com".parse().unwrap())
        .subject("Confirm your Homi account ✓")
        .header(ContentType::TEXT_PLAIN)
        .body(body.clone())
        .unwrap();
    transport.send(message).await.unwrap();

    let plain = AsyncSmtpTransport::<Tokio1Executor>::from_url(&sink.url())
        .unwrap()
        .build();
    let second = Message::builder()
        .from("noreply@homi.example".parse().unwrap())
        .to("dave@example.com".parse().unwrap())
        .subject("Second")
        .body(".starts with a dot\n.\nend".to_owned())
        .unwrap();
    plain.send(second).await.unwrap();

    let got = sink.wait_for(2, Duration::from_secs(10)).await.unwrap();
    assert_eq!(got.len(), 2);
    let first = &got[0];
    assert_eq!(first.from, "noreply@homi.example");
    assert_eq!(first.to, vec!["bob@example.com", "carol@example.com"]);
    assert_eq!(first.auth_user.as_deref(), Some("alice@example.com"));
    assert_eq!(
        first
            .header("content-transfer-encoding")
            .map(|v| v.to_ascii_lowercase())
            .as_deref(),
        Some("quoted-printable")
    );
    assert_eq!(
        first.header("Subject").as_deref(),
        Some("Confirm your Homi account ✓")
    );
    assert_eq!(first.body_text(), body);
    assert!(first.body_text().contains(&long_line));

    assert_eq!(got[1].auth_user, None);
    assert_eq!(got[1].body_text(), ".starts with a dot\n.\nend");
    assert_eq!(got[1].header("subject").as_deref(), Some("Second"));

    sink.clear();
    assert!(sink.messages().is_empty());
    assert!(
        sink.wait_for(1, Duration::from_millis(50)).await.is_none(),
        "nothing new arrived"
    );
}

#[tokio::test]
async fn raw_dialogue_covers_the_other_commands() {
    let sink = SmtpSink::start().await.unwrap();
    let stream = TcpStream::connect(sink.addr()).await.unwrap();
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let mut expect = async |sent: &str, code: &str| {
        if !sent.is_empty() {
            write.write_all(sent.as_bytes()).await.unwrap();
        }
        loop {
            let line = lines.next_line().await.unwrap().unwrap();
            assert!(
                line.starts_with(code),
                "{sent:?} got {line:?}, wanted {code}"
            );
            if line.as_bytes().get(3) != Some(&b'-') {
                return line;
            }
        }
    };
    expect("", "220").await;
    expect("MAIL FROM:<a@b.c>\r\n", "503").await;
    expect("HELO client\r\n", "250").await;
    expect("STARTTLS\r\n", "502").await;
    expect("NOOP\r\n", "250").await;
    expect("AUTH PLAIN\r\n", "334").await;
    // \0bob\0pw
    expect("AGJvYgBwdw==\r\n", "235").await;
    expect("RCPT TO:<x@y.z>\r\n", "503").await;
    expect("MAIL FROM:<>\r\n", "250").await;
    expect("RSET\r\n", "250").await;
    expect("DATA\r\n", "503").await;
    expect("MAIL FROM:<a@b.c> BODY=8BITMIME\r\n", "250").await;
    expect("RCPT TO:<x@y.z>\r\n", "250").await;
    expect("DATA\r\n", "354").await;
    expect("Subject: hi\r\n\r\n..dot\r\nline\r\n.\r\n", "250").await;
    expect("QUIT\r\n", "221").await;
    let got = sink.wait_for(1, Duration::from_secs(5)).await.unwrap();
    assert_eq!(got[0].auth_user.as_deref(), Some("bob"));
    assert_eq!(got[0].data, "Subject: hi\r\n\r\n.dot\r\nline");

    // AUTH LOGIN with challenges, on a second connection.
    let stream = TcpStream::connect(sink.addr()).await.unwrap();
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let mut expect = async |sent: &str, code: &str| {
        if !sent.is_empty() {
            write.write_all(sent.as_bytes()).await.unwrap();
        }
        loop {
            let line = lines.next_line().await.unwrap().unwrap();
            assert!(
                line.starts_with(code),
                "{sent:?} got {line:?}, wanted {code}"
            );
            if line.as_bytes().get(3) != Some(&b'-') {
                return line;
            }
        }
    };
    expect("", "220").await;
    let last = expect("EHLO client\r\n", "250").await;
    assert_eq!(last, "250 AUTH PLAIN LOGIN");
    expect("AUTH LOGIN\r\n", "334 VXNlcm5hbWU6").await;
    expect("Y2Fyb2w=\r\n", "334 UGFzc3dvcmQ6").await;
    expect("cHc=\r\n", "235").await;
    expect("QUIT\r\n", "221").await;
}
