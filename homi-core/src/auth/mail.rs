//! Emails Homi sends (password resets, email confirmations), over SMTP with lettre.

use std::time::Duration;

use async_trait::async_trait;
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;

use crate::error::{Error, Result};

/// Sends one plain-text email.
#[async_trait]
pub trait Mailer: Send + Sync + std::fmt::Debug {
    /// Sends `body` to `to` with `subject`.
    async fn send(&self, to: &str, subject: &str, body: &str) -> Result<()>;
}

/// A [`Mailer`] over SMTP: `smtp://` (plain, for a local relay; add
/// `?tls=required` for STARTTLS) or `smtps://` (TLS), with credentials in the URL.
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl std::fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

impl SmtpMailer {
    /// A mailer for `HOMI_SMTP_URL` sending as `HOMI_SMTP_FROM`.
    pub fn new(url: &secrecy::SecretString, from: &str) -> Result<Self> {
        let from: Mailbox = from.parse().map_err(|e| {
            Error::config("HOMI_SMTP_FROM", format!("'{from}' is not a mailbox: {e}"))
        })?;
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose_secret())
            .map_err(|e| Error::config("HOMI_SMTP_URL", format!("not a usable SMTP URL: {e}")))?
            .timeout(Some(Duration::from_secs(20)))
            .build();
        Ok(Self { transport, from })
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, to: &str, subject: &str, body: &str) -> Result<()> {
        let to: Mailbox = to
            .parse()
            .map_err(|e| Error::invalid("email", format!("'{to}' is not a mailbox: {e}")))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(body.to_owned())
            .map_err(|e| Error::unavailable("the email could not be built", e))?;
        self.transport
            .send(message)
            .await
            .map_err(|e| Error::unavailable("the SMTP server did not take the email", e))?;
        Ok(())
    }
}
