//! A person's email address, for the apps that insist on one (Grafana, Gitea, Outline …):
//! added on the account page, verified by a one-time link sent to it, and only then kept
//! on the user — the `email` claim (`email_verified: true`, scope `email`) and
//! `Remote-Email`. One address belongs to one person: apps match accounts by email.

use crate::domain::{NextPath, UnixMillis, UserId};
use crate::error::{AppError, ErrorCode};
use crate::server::audit::Kind;
use crate::server::caller::Caller;
use crate::server::state::AppState;
use crate::server::tokens::{TokenHash, random_token};
use crate::server::users::User;
use std::time::Duration;

/// How long a verification link works.
pub const LINK_LIFE: Duration = Duration::from_secs(24 * 3600);
/// Verification mails one person may have sent in an hour.
const MAILS_PER_HOUR: i64 = 5;

/// The address as kept, or `None` when it is not one: one `@`, a dotted domain, no
/// spaces, quotes or angle brackets, at most 254 characters. Lowercased (one person,
/// one address, however it was typed).
pub fn valid_email(raw: &str) -> Option<String> {
    let email = raw.trim().to_lowercase();
    let (local, domain) = email.split_once('@')?;
    let bad = |c: char| c.is_whitespace() || c.is_control() || "<>()[]\\,;:\"@".contains(c);
    let ok = email.len() <= 254
        && !local.is_empty()
        && local.len() <= 64
        && !local.chars().any(bad)
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && !domain.chars().any(bad);
    ok.then_some(email)
}

/// `a***@example.com`: an address as the audit trail and pages show it to others.
pub fn masked(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => format!("{}***@{domain}", local.chars().next().unwrap_or('*')),
        None => "***".into(),
    }
}

/// Sends `user` a link that verifies `raw` as their address, then goes on to `next`; the
/// address as kept (where the mail went).
/// Refused: no mail transport (503 `mail_unavailable`), not an address (400
/// `invalid_email`), another person's address (409 `email_taken`), more than five mails
/// in an hour (429).
pub async fn start(st: &AppState, user: &User, caller: &Caller, raw: &str, next: &NextPath) -> Result<String, AppError> {
    if !st.mailer.is_on() {
        return Err(ErrorCode::MailUnavailable.into());
    }
    let Some(email) = valid_email(raw) else { return Err(ErrorCode::InvalidEmail.into()) };
    if taken_by_another(st, user.id, &email).await? {
        return Err(ErrorCode::EmailTaken.into());
    }
    let now = st.clock.now();
    let sent: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM email_verifications WHERE user_id = $1 AND created_at > $2")
        .bind(user.id)
        .bind(now.minus(Duration::from_secs(3600)))
        .fetch_one(&st.db)
        .await?;
    if sent >= MAILS_PER_HOUR {
        return Err(AppError::new(ErrorCode::RateLimited).retry_after(3600));
    }
    let token = random_token(24);
    let hash = TokenHash::of(&token);
    sqlx::query(
        "INSERT INTO email_verifications (token_hash, user_id, email, next, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(hash.as_str())
    .bind(user.id)
    .bind(&email)
    .bind(next.as_str())
    .bind(now)
    .bind(now.plus(LINK_LIFE))
    .execute(&st.db)
    .await?;
    let link = format!("{}/account/email/verify/{token}", st.site.public_url);
    let body = format!(
        "你好 {name}：\n\n请打开下面的链接，验证这个邮箱属于你（24 小时内有效）：\n{link}\n\n\
         Hello {name}, open the link above within 24 hours to verify that this address is yours.\n\n\
         不是你本人操作？忽略这封邮件即可。Not you? Ignore this mail.\n— {host}",
        name = user.name,
        host = st.site.host
    );
    if let Err(e) = st.mailer.send(&email, &format!("验证你的邮箱 · Verify your email ({})", st.site.host), &body, now).await {
        tracing::warn!(error = %e, user = %user.id, "a verification mail was not sent");
        sqlx::query("DELETE FROM email_verifications WHERE token_hash = $1").bind(hash.as_str()).execute(&st.db).await?;
        return Err(ErrorCode::MailUnavailable.into());
    }
    st.audit.record(now, Kind::EmailSent, Some(user.id), caller, &masked(&email)).await;
    Ok(email)
}

/// Whether another person has `email` already.
async fn taken_by_another(st: &AppState, user: UserId, email: &str) -> Result<bool, sqlx::Error> {
    let n: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE email = $1 AND id <> $2").bind(email).bind(user).fetch_one(&st.db).await?;
    Ok(n > 0)
}

/// Opens a verification link: the address becomes the person's (their other pending
/// links end). Unknown, used or expired: 410 `link_invalid`; another person took the
/// address meanwhile: 409 `email_taken`. The person and where to go next.
pub async fn verify(st: &AppState, token: &str, caller: &Caller) -> Result<(UserId, NextPath), AppError> {
    if token.is_empty() || token.len() > 64 {
        return Err(ErrorCode::LinkInvalid.into());
    }
    let now = st.clock.now();
    let row: Option<(UserId, String, String)> =
        sqlx::query_as("SELECT user_id, email, next FROM email_verifications WHERE token_hash = $1 AND expires_at > $2")
            .bind(TokenHash::of(token).as_str())
            .bind(now)
            .fetch_optional(&st.db)
            .await?;
    let Some((user, email, next)) = row else { return Err(ErrorCode::LinkInvalid.into()) };
    if taken_by_another(st, user, &email).await? {
        return Err(ErrorCode::EmailTaken.into());
    }
    // The unique index decides a race between two people verifying one address at once.
    if let Err(e) = st.users.set_email(user, Some(&email)).await {
        tracing::info!(error = %e, user = %user, "email not set (taken meanwhile?)");
        return Err(ErrorCode::EmailTaken.into());
    }
    sqlx::query("DELETE FROM email_verifications WHERE user_id = $1").bind(user).execute(&st.db).await?;
    st.audit.record(now, Kind::EmailVerified, Some(user), caller, &masked(&email)).await;
    Ok((user, NextPath::try_from(next).unwrap_or_default()))
}

/// Deletes expired links.
pub async fn purge(st: &AppState, now: UnixMillis) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query("DELETE FROM email_verifications WHERE expires_at <= $1").bind(now).execute(&st.db).await?.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_checked_and_kept_lowercase() {
        assert_eq!(valid_email("  Zhang.San@Example.COM "), Some("zhang.san@example.com".into()));
        assert_eq!(valid_email("a+tag@mail.example.cn"), Some("a+tag@mail.example.cn".into()));
        for bad in [
            "",
            "no-at.example.com",
            "a@b",
            "a@@example.com",
            "a b@example.com",
            "a@example..com",
            "a@.example.com",
            "\"a\"@example.com",
            "<a@example.com>",
            "a@example.com\r\nBcc: x@evil.example",
        ] {
            assert_eq!(valid_email(bad), None, "{bad:?}");
        }
        assert_eq!(valid_email(&format!("{}@example.com", "a".repeat(65))), None);
        assert_eq!(masked("zhangsan@example.com"), "z***@example.com");
    }
}
