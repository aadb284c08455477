//! Mail: the one kind scanlogin sends, the link that verifies an email address.
//!
//! Over SMTP (`SMTP_URL`, `MAIL_FROM`; `lettre`) when configured. In demo mode without
//! SMTP the mails go to a demo mailbox, a page like the simulated phone
//! (`/_wechat/mailbox`), so the whole flow can be tried on one machine. In real mode
//! without SMTP there is no email: the account page does not offer it.

use crate::domain::UnixMillis;
use crate::server::config::MailArgs;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

/// One mail as the demo mailbox keeps it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub body: String,
    pub at: UnixMillis,
}

/// How long one SMTP exchange may take.
const SMTP_TIMEOUT: Duration = Duration::from_secs(10);
/// Mails the demo mailbox keeps (the newest).
const DEMO_KEPT: usize = 50;

/// Where mails go.
pub enum Mailer {
    Smtp { transport: lettre::AsyncSmtpTransport<lettre::Tokio1Executor>, from: lettre::message::Mailbox },
    Demo(Mutex<VecDeque<Mail>>),
    Off,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mailer::Smtp { .. } => "Mailer::Smtp(..)",
            Mailer::Demo(_) => "Mailer::Demo",
            Mailer::Off => "Mailer::Off",
        })
    }
}

impl Mailer {
    /// From the settings: SMTP when `SMTP_URL` is set (then `MAIL_FROM` is required), else
    /// the demo mailbox in demo mode, else none.
    pub fn from_config(args: &MailArgs, demo: bool) -> Result<Mailer, String> {
        let Some(url) = args.smtp_url.as_deref().filter(|u| !u.is_empty()) else {
            return Ok(if demo { Mailer::Demo(Mutex::default()) } else { Mailer::Off });
        };
        let from = args.mail_from.as_deref().ok_or("MAIL_FROM is required with SMTP_URL (e.g. \"scanlogin <login@example.com>\")")?;
        let from: lettre::message::Mailbox = from.parse().map_err(|e| format!("MAIL_FROM {from:?}: {e}"))?;
        // The URL may carry a password: its parse error is told without the URL.
        let transport = lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::from_url(url)
            .map_err(|e| format!("SMTP_URL is not an smtp:// or smtps:// URL lettre understands: {}", redact(&e.to_string(), url)))?
            .timeout(Some(SMTP_TIMEOUT))
            .build();
        Ok(Mailer::Smtp { transport, from })
    }

    /// Whether mails can be sent at all.
    pub fn is_on(&self) -> bool {
        !matches!(self, Mailer::Off)
    }

    /// Sends one plain-text mail. The error is for the log (no credentials in it).
    pub async fn send(&self, to: &str, subject: &str, body: &str, now: UnixMillis) -> Result<(), String> {
        match self {
            Mailer::Off => Err("no mail transport (SMTP_URL unset)".into()),
            Mailer::Demo(kept) => {
                let mut kept = kept.lock().unwrap_or_else(|e| e.into_inner());
                kept.push_front(Mail { to: to.into(), subject: subject.into(), body: body.into(), at: now });
                kept.truncate(DEMO_KEPT);
                Ok(())
            }
            Mailer::Smtp { transport, from } => {
                use lettre::AsyncTransport as _;
                let to: lettre::message::Mailbox = to.parse().map_err(|e| format!("recipient: {e}"))?;
                // Quoted-printable: the link stays readable in the raw mail, whatever the
                // text around it.
                let body = lettre::message::Body::new_with_encoding(
                    body.to_string(),
                    lettre::message::header::ContentTransferEncoding::QuotedPrintable,
                )
                .map_err(|_| "message: body not encodable".to_string())?;
                let message = lettre::Message::builder()
                    .from(from.clone())
                    .to(to)
                    .subject(subject)
                    .header(lettre::message::header::ContentType::TEXT_PLAIN)
                    .body(body)
                    .map_err(|e| format!("message: {e}"))?;
                transport.send(message).await.map(|_| ()).map_err(|e| format!("smtp: {e}"))
            }
        }
    }

    /// The demo mailbox's mails, newest first (none outside the demo mailbox).
    pub fn demo_mails(&self) -> Vec<Mail> {
        match self {
            Mailer::Demo(kept) => kept.lock().unwrap_or_else(|e| e.into_inner()).iter().cloned().collect(),
            _ => Vec::new(),
        }
    }
}

/// `text` with `url`'s password, if any, replaced.
fn redact(text: &str, url: &str) -> String {
    match url::Url::parse(url).ok().and_then(|u| u.password().map(str::to_string)) {
        Some(p) if !p.is_empty() => text.replace(&p, "***"),
        _ => text.to_string(),
    }
}

/// `GET /_wechat/mailbox` (demo mode): the demo mailbox as a page, links clickable.
pub async fn mailbox_page(axum::extract::State(st): axum::extract::State<crate::server::state::AppState>) -> axum::response::Response {
    use crate::server::http::esc;
    let mails = st.mailer.demo_mails();
    let mut body =
        String::from("<p>演示邮箱：scanlogin 在演示模式下发出的邮件都在这里。Demo mailbox: the mails scanlogin sends in demo mode.</p>");
    if mails.is_empty() {
        body.push_str("<p data-testid=\"mailbox-empty\">（空 · empty）</p>");
    }
    for m in mails {
        // Links become clickable; everything else is text.
        let text: String = esc(&m.body)
            .split('\n')
            .map(|line| match line.trim() {
                l if l.starts_with("http://") || l.starts_with("https://") => format!("<a href=\"{l}\" data-testid=\"mail-link\">{l}</a>"),
                l => l.to_string(),
            })
            .collect::<Vec<_>>()
            .join("<br>");
        body.push_str(&format!(
            "<section class=\"mail\" data-testid=\"mail\"><p><b>{}</b> → {}</p><p>{text}</p></section><hr>",
            esc(&m.subject),
            esc(&m.to)
        ));
    }
    crate::server::http::message_page(axum::http::StatusCode::OK, "zh-CN", "演示邮箱 · Demo mailbox", &body)
}

/// `GET /_wechat/sim/mails` (demo mode): the same as JSON, for tests.
pub async fn mails_json(axum::extract::State(st): axum::extract::State<crate::server::state::AppState>) -> axum::Json<Vec<Mail>> {
    axum::Json(st.mailer.demo_mails())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_settings_are_checked_and_passwords_stay_out_of_errors() {
        let args =
            |url: Option<&str>, from: Option<&str>| MailArgs { smtp_url: url.map(str::to_string), mail_from: from.map(str::to_string) };
        assert!(matches!(Mailer::from_config(&args(None, None), true), Ok(Mailer::Demo(_))));
        assert!(matches!(Mailer::from_config(&args(None, None), false), Ok(Mailer::Off)));
        let no_from = Mailer::from_config(&args(Some("smtp://127.0.0.1:2525"), None), false).unwrap_err();
        assert!(no_from.contains("MAIL_FROM"), "{no_from}");
        assert!(Mailer::from_config(&args(Some("smtp://127.0.0.1:2525"), Some("not an address")), false).is_err());
        let bad =
            Mailer::from_config(&args(Some("ftp://user:hunter2secret@mail.example.com"), Some("a <a@example.com>")), false).unwrap_err();
        assert!(!bad.contains("hunter2secret"), "{bad}");
        assert!(matches!(
            Mailer::from_config(&args(Some("smtp://127.0.0.1:2525"), Some("scanlogin <login@example.com>")), false),
            Ok(Mailer::Smtp { .. })
        ));
    }
}
