//! The audit trail: sign-ins (user, IP, browser, and the site when another site asked),
//! logouts, 退出其他设备, refused scans and confirms (with the code), OIDC codes and
//! tokens issued. Kept `AUDIT_RETENTION_DAYS`; a person sees their own recent events on the
//! account page. Recording is best effort: a failure is logged and never fails the
//! request it describes.

use crate::domain::{TicketId, UnixMillis, UserId};
use crate::server::caller::Caller;
use crate::server::db::{Backend, Db};

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    SignIn,
    Logout,
    RevokeOthers,
    ScanRefused,
    ConfirmRefused,
    OidcCode,
    OidcTokens,
    /// Someone became an admin through a setup link.
    AdminSetup,
    /// An admin changed a user's status, admin flag or groups.
    UserUpdated,
    /// A signed-in user was refused by a protected site (forward-auth or OIDC).
    AccessDenied,
    InvitationCreated,
    InvitationRevoked,
    InvitationUsed,
    /// WeChat's content check refused a nickname.
    ProfileRefused,
    /// A person allowed a site to sign them in (the consent page).
    OidcConsent,
    /// A person withdrew a site's permission (the account page).
    OidcConsentRevoked,
    /// A person signed browsers out from the mini program (「我的网页登录」).
    PhoneSignOut,
    /// A verification link was mailed (detail: the masked address).
    EmailSent,
    /// A person verified their email address.
    EmailVerified,
}

impl Kind {
    /// The name stored and sent.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::SignIn => "sign_in",
            Kind::Logout => "logout",
            Kind::RevokeOthers => "revoke_others",
            Kind::ScanRefused => "scan_refused",
            Kind::ConfirmRefused => "confirm_refused",
            Kind::OidcCode => "oidc_code",
            Kind::OidcTokens => "oidc_tokens",
            Kind::AdminSetup => "admin_setup",
            Kind::UserUpdated => "user_updated",
            Kind::AccessDenied => "access_denied",
            Kind::InvitationCreated => "invitation_created",
            Kind::InvitationRevoked => "invitation_revoked",
            Kind::InvitationUsed => "invitation_used",
            Kind::ProfileRefused => "profile_refused",
            Kind::OidcConsent => "oidc_consent",
            Kind::OidcConsentRevoked => "oidc_consent_revoked",
            Kind::PhoneSignOut => "phone_sign_out",
            Kind::EmailSent => "email_sent",
            Kind::EmailVerified => "email_verified",
        }
    }
}

/// Who an audit event is by: a request (a browser's or the phone's: its IP and user
/// agent), or a relying party's server calling us (the token exchange: no person's
/// request is involved).
#[derive(Clone, Copy, Debug)]
pub enum Actor<'a> {
    Request(&'a Caller),
    /// The OIDC client id.
    Client(&'a str),
}

impl<'a> From<&'a Caller> for Actor<'a> {
    fn from(c: &'a Caller) -> Self {
        Actor::Request(c)
    }
}

/// An event's detail as stored: its first 200 characters.
fn clipped(detail: &str) -> String {
    detail.chars().take(200).collect()
}

/// One stored event.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Event {
    pub at: UnixMillis,
    pub kind: String,
    pub ip: String,
    pub user_agent: String,
    pub detail: String,
}

/// The `audit_events` table.
#[derive(Clone, Debug)]
pub struct Audit {
    pool: Db,
}

impl Audit {
    pub fn new(pool: Db) -> Self {
        Audit { pool }
    }

    /// Records `kind` for `user` (if known) by `who`, with a short `detail` (a refusal's
    /// code, the OIDC client, a count). Never fails the caller.
    pub async fn record<'a>(&self, at: UnixMillis, kind: Kind, user: Option<UserId>, who: impl Into<Actor<'a>>, detail: &str) {
        let (ip, user_agent) = match who.into() {
            Actor::Request(c) => (c.ip_text(), c.user_agent.clone()),
            Actor::Client(id) => (String::new(), format!("OIDC client {id}")),
        };
        let done = sqlx::query("INSERT INTO audit_events (at, kind, user_id, ip, user_agent, detail) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(at)
            .bind(kind.as_str())
            .bind(user)
            .bind(ip)
            .bind(user_agent)
            .bind(clipped(detail))
            .execute(&self.pool)
            .await;
        if let Err(e) = done {
            tracing::error!(error = %e, kind = kind.as_str(), "audit event not recorded");
        }
    }

    /// Records a sign-in through `ticket`: the login (the account page's recent logins;
    /// one per ticket) and its audit event, detail the site. On PostgreSQL one statement,
    /// a round trip and a commit fewer a login; on SQLite two, which its group commit
    /// writes together anyway. Never fails the caller.
    pub async fn record_sign_in(&self, at: UnixMillis, user: UserId, who: &Caller, site: &str, ticket: &TicketId) {
        let login = "INSERT INTO logins (user_id, at, ip, user_agent, ticket_id) VALUES ($1, $2, $3, $4, $5)";
        let (ip, user_agent) = (who.ip_text(), who.user_agent.as_str());
        if self.pool.backend() == Backend::Postgres {
            let both = format!(
                "WITH login AS ({login}) INSERT INTO audit_events (at, kind, user_id, ip, user_agent, detail) VALUES ($2, $6, $1, $3, $4, $7)"
            );
            let done = sqlx::query(&both)
                .bind(user)
                .bind(at)
                .bind(&ip)
                .bind(user_agent)
                .bind(ticket.as_str())
                .bind(Kind::SignIn.as_str())
                .bind(clipped(site))
                .execute(&self.pool)
                .await;
            if let Err(e) = done {
                tracing::error!(error = %e, "signed in, but neither the login nor its audit event was recorded");
            }
            return;
        }
        let done = sqlx::query(login).bind(user).bind(at).bind(&ip).bind(user_agent).bind(ticket.as_str()).execute(&self.pool).await;
        if let Err(e) = done {
            tracing::error!(error = %e, "signed in, but the login was not recorded");
        }
        self.record(at, Kind::SignIn, Some(user), who, site).await;
    }

    /// The latest events, newest first, with whom they concern: everyone's or `user`'s,
    /// of every kind or `kind`.
    pub async fn recent(&self, user: Option<UserId>, kind: Option<&str>, limit: i64) -> Result<Vec<(Event, Option<UserId>)>, sqlx::Error> {
        // Each filter compares only when given: one statement, bound parameters.
        let rows: Vec<(i64, String, String, String, String, Option<UserId>)> = sqlx::query_as(
            "SELECT at, kind, ip, user_agent, detail, user_id FROM audit_events \
             WHERE ($1 = 0 OR user_id = $2) AND ($3 = '' OR kind = $3) ORDER BY at DESC, id DESC LIMIT $4",
        )
        .bind(i64::from(user.is_some()))
        .bind(user.map_or(0, |u| u.0))
        .bind(kind.unwrap_or(""))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(at, kind, ip, user_agent, detail, user)| (Event { at: UnixMillis(at), kind, ip, user_agent, detail }, user))
            .collect())
    }

    /// Forgets events older than `before`.
    pub async fn purge(&self, before: UnixMillis) -> Result<u64, sqlx::Error> {
        Ok(sqlx::query("DELETE FROM audit_events WHERE at < $1").bind(before).execute(&self.pool).await?.rows_affected())
    }
}
