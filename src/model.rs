//! Types shared by the server and the browser: what the endpoints of docs/api.md
//! return.

use crate::domain::{ConfirmToken, FinalizeKey, TicketId, UserId};
use serde::{Deserialize, Serialize};

/// Where a login ticket is in its life (see docs/api.md, "Ticket"). Its names are
/// written once, in [`TicketStatus::as_str`]; serde's `snake_case` spells them alike
/// (a unit test checks).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketStatus {
    /// The QR is shown, nobody scanned it yet.
    Waiting,
    /// A WeChat user scanned it; waiting for 点击登录 on the phone.
    Scanned,
    /// The phone confirmed; the browser may finalize.
    Confirmed,
    /// The browser finalized: the login happened.
    Consumed,
    /// The phone cancelled.
    Cancelled,
    /// Too old.
    Expired,
    /// A status this build does not know; the browser fails closed on it.
    #[serde(other)]
    Unknown,
}

impl TicketStatus {
    /// Every status a ticket can be stored with.
    pub const KNOWN: [TicketStatus; 6] = [
        TicketStatus::Waiting,
        TicketStatus::Scanned,
        TicketStatus::Confirmed,
        TicketStatus::Consumed,
        TicketStatus::Cancelled,
        TicketStatus::Expired,
    ];

    /// The status's one name: on the wire, in the database and on the page.
    pub fn as_str(self) -> &'static str {
        match self {
            TicketStatus::Waiting => "waiting",
            TicketStatus::Scanned => "scanned",
            TicketStatus::Confirmed => "confirmed",
            TicketStatus::Consumed => "consumed",
            TicketStatus::Cancelled => "cancelled",
            TicketStatus::Expired => "expired",
            TicketStatus::Unknown => "unknown",
        }
    }

    /// True when the status can never change again.
    pub fn is_final(self) -> bool {
        !matches!(self, TicketStatus::Waiting | TicketStatus::Scanned | TicketStatus::Confirmed)
    }
}

impl std::str::FromStr for TicketStatus {
    type Err = crate::domain::Invalid;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TicketStatus::KNOWN.into_iter().find(|k| k.as_str() == s).ok_or(crate::domain::Invalid("not a ticket status"))
    }
}

/// `POST /api/login/ticket`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TicketIssued {
    /// The ticket id (also the QR's `scene`).
    pub ticket: TicketId,
    /// The mini-program code as a `data:image/...;base64,` URL.
    pub qr: String,
    /// Seconds until the ticket expires.
    pub expires_in: u64,
    /// The secret finalize needs; only this answer carries it.
    pub finalize_key: FinalizeKey,
    /// The site this login signs in to, when another site asked (OpenID Connect).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// A link that opens the mini program's login page on this ticket from the phone's
    /// own browser (WeChat URL Link or URL Scheme); null when there is none now.
    #[serde(default)]
    pub open_link: Option<String>,
}

/// `POST /api/login/status`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusView {
    /// Current status.
    pub status: TicketStatus,
    /// Grows by one with every change; 1 at creation.
    pub version: u64,
    /// Seconds until the ticket expires (0 when final).
    pub expires_in: u64,
    /// Number matching: while scanned, the number the person must pick on the phone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<u8>,
    /// Why a final ticket ended, when the status alone does not say: `wrong_number`
    /// (cancelled by two wrong picks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `POST /api/login/finalize`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Finalized {
    /// Where the browser goes now.
    pub next: String,
}

/// A signed-in user as the browser sees them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserView {
    /// Our user id.
    pub id: UserId,
    /// Display name.
    pub name: String,
    /// The openid with its middle hidden (`oAbc…xyz9`).
    pub openid_masked: String,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// `active`, `pending` (waiting for an admin) or `disabled`.
    #[serde(default)]
    pub status: crate::domain::UserStatus,
    /// Whether they administer scanlogin.
    #[serde(default)]
    pub admin: bool,
    /// Their groups.
    #[serde(default)]
    pub groups: Vec<crate::domain::GroupName>,
    /// Absolute URL of their avatar, if they set one.
    #[serde(default)]
    pub picture: Option<String>,
    /// Their verified email address, if any.
    #[serde(default)]
    pub email: Option<String>,
}

/// A user as an admin sees them (`/api/admin/users`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdminUserView {
    pub id: UserId,
    pub name: String,
    /// Absolute URL of their avatar, if they set one.
    pub picture: Option<String>,
    pub status: crate::domain::UserStatus,
    pub admin: bool,
    pub groups: Vec<crate::domain::GroupName>,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// RFC 3339 UTC, if they ever finished a login.
    pub last_login_at: Option<String>,
    /// Browsers signed in now.
    #[serde(default)]
    pub sessions: i64,
    /// Their verified email address, if any.
    #[serde(default)]
    pub email: Option<String>,
}

/// `/api/admin/users`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserList {
    pub users: Vec<AdminUserView>,
    /// How many users wait for approval (shown on every admin page).
    #[serde(default)]
    pub pending: i64,
}

/// `/api/admin/user`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserAnswer {
    pub user: AdminUserView,
}

/// One audit event as an admin sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdminEventView {
    /// RFC 3339 UTC.
    pub at: String,
    pub kind: String,
    /// The user it concerns, if any.
    pub user: Option<UserId>,
    pub ip: String,
    /// The site or detail (a refusal's code, the OIDC client, the change made).
    pub site: String,
}

/// `/api/admin/audit`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditList {
    pub events: Vec<AdminEventView>,
    /// How many users wait for approval (shown on every admin page).
    #[serde(default)]
    pub pending: i64,
}

/// One past login.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoginView {
    /// RFC 3339 UTC.
    pub at: String,
    /// Client IP the server saw.
    pub ip: String,
    /// Short browser description ("Chrome 131 · Windows").
    pub browser: String,
}

/// A browser where the user is signed in.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionView {
    /// Short browser description.
    pub browser: String,
    /// IP at login.
    pub ip: String,
    /// RFC 3339 UTC.
    pub signed_in_at: String,
    /// Last activity, to the hour (RFC 3339 UTC).
    pub last_seen: String,
    /// This browser.
    pub current: bool,
}

/// `POST /api/me`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MeView {
    /// The user.
    pub user: UserView,
    /// Latest logins first.
    pub recent_logins: Vec<LoginView>,
    /// Browsers where the user is signed in, this one included.
    #[serde(default)]
    pub sessions: Vec<SessionView>,
    /// The person's own recent audit events, newest first.
    #[serde(default)]
    pub events: Vec<EventView>,
    /// The sites the person allowed to sign them in without asking.
    #[serde(default)]
    pub apps: Vec<AppView>,
}

/// A site the person allowed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AppView {
    /// The OIDC client id.
    pub client: String,
    /// Its name.
    pub name: String,
    /// RFC 3339 UTC.
    pub since: String,
}

/// One audit event, as its person sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventView {
    /// RFC 3339 UTC.
    pub at: String,
    /// `sign_in`, `logout`, `revoke_others`, `scan_refused`, `confirm_refused`,
    /// `oidc_code`, `oidc_tokens`.
    pub kind: String,
    pub ip: String,
    pub browser: String,
    /// The site signed in to, a refusal's code, a count.
    pub detail: String,
}

/// `POST /api/sessions/revoke-others`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Revoked {
    /// How many other sessions ended.
    pub revoked: u64,
}

/// An empty JSON object, `{}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Empty {}

/// Who asks to sign in, shown on the phone so a person can tell a login they started
/// from one they did not.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Requester {
    /// The site's host.
    pub site: String,
    /// Short browser description.
    pub browser: String,
    /// The browser's IP.
    pub ip: String,
    /// When the browser asked (RFC 3339 UTC).
    pub created_at: String,
    /// The site this login signs in to, when another site asked (OpenID Connect).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
}

/// `POST /api/mp/scan`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScanAnswer {
    /// Always `scanned`.
    pub status: TicketStatus,
    /// The scanner's account: `active`, or `pending` (signed in, but waiting for an
    /// admin's approval before protected sites admit them).
    #[serde(default)]
    pub account_status: crate::domain::UserStatus,
    /// The scanner has neither chosen a nickname nor set an avatar: the mini program offers
    /// 头像昵称填写 before 点击登录 (skippable).
    #[serde(default)]
    pub profile_missing: bool,
    /// Proves to confirm / cancel that the caller is the scanner.
    pub confirm_token: ConfirmToken,
    /// Who asks.
    pub requester: Requester,
    /// Number matching (`LOGIN_NUMBER_MATCH`): three numbers, one of them the browser's;
    /// confirm must send the one the person picks as `number`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number_choices: Option<Vec<u8>>,
}

/// `POST /api/mp/confirm` and `/api/mp/cancel`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PhoneAnswer {
    /// `confirmed` or `cancelled`.
    pub status: TicketStatus,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_are_one_on_the_wire_and_in_the_store() {
        for s in TicketStatus::KNOWN {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
            assert_eq!(s.as_str().parse::<TicketStatus>(), Ok(s));
        }
        assert!("unknown".parse::<TicketStatus>().is_err(), "never stored");
        let newer: TicketStatus = serde_json::from_str(r#""teleported""#).unwrap();
        assert_eq!(newer, TicketStatus::Unknown);
    }
}

/// An invitation as an admin sees it (its secret is only ever in the link, shown once).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InvitationView {
    pub id: i64,
    pub groups: Vec<crate::domain::GroupName>,
    pub max_uses: i64,
    pub uses: i64,
    /// The admin who made it.
    pub created_by: i64,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// RFC 3339 UTC.
    pub expires_at: String,
    /// RFC 3339 UTC, once revoked.
    pub revoked_at: Option<String>,
    /// Whether it still lets someone in.
    pub usable: bool,
}

/// `/api/admin/invite`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InvitationMade {
    /// The link to pass on: `PUBLIC_URL/invite/<secret>`.
    pub url: String,
    /// RFC 3339 UTC.
    pub expires_at: String,
    pub id: i64,
}

/// `/api/admin/invitations`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InvitationList {
    pub invitations: Vec<InvitationView>,
    /// How many users wait for approval.
    pub pending: i64,
}

/// `/api/mp/profile` and `/api/mp/avatar`: the profile as it stands now.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProfileAnswer {
    pub name: String,
    /// Absolute URL of the avatar, if set.
    pub picture: Option<String>,
}

/// `POST /api/mp/login` and `/api/mp/renew`: the mini program's own login.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PhoneLogin {
    /// Opaque; sent as `token` with the phone's calls. Kept in `wx.setStorageSync`.
    pub token: String,
    /// Seconds until it expires (renew before).
    pub expires_in: u64,
    /// The person's name, as sites see it.
    pub name: String,
}

/// One browser signed in as the phone's person (「我的网页登录」).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BrowserSession {
    /// Names the session to `mp/web-sessions/sign-out` (not a credential).
    pub id: String,
    pub browser: String,
    pub ip: String,
    pub signed_in_at: String,
    pub last_seen: String,
    /// The sites it signed in to through scanlogin: OpenID Connect clients by name, and
    /// `forward-auth` for the sites behind the proxy.
    pub sites: Vec<String>,
}

/// `POST /api/mp/web-sessions`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BrowserSessions {
    pub sessions: Vec<BrowserSession>,
}

/// `POST /api/admin/user/sessions`: one person's browsers, and the pending count every
/// console page shows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdminSessions {
    pub sessions: Vec<BrowserSession>,
    pub pending: i64,
}
