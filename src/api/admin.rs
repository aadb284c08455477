//! The admin API (docs/api.md, "Admin"): the user directory for whoever is an active
//! admin. Cookie session and same-site rules as `/api/me`; anyone else gets 401 or 403
//! `forbidden` and nothing changes. Every change is in the audit trail.

use crate::domain::{GroupName, UserId, UserStatus};
use crate::error::AppError;
use crate::model::{AuditList, Empty, InvitationList, InvitationMade, UserAnswer, UserList};
use leptos::prelude::*;
use leptos::server_fn::codec::Json;

#[cfg(feature = "ssr")]
use crate::server::{caller::Caller, people, session::WebSession, state::AppState};

/// Users listed at most.
#[cfg(feature = "ssr")]
const LIST_LIMIT: i64 = 1000;

/// A user as an admin sees them.
#[cfg(feature = "ssr")]
pub fn admin_view(
    u: crate::server::users::User,
    last_login: Option<crate::domain::UnixMillis>,
    sessions: i64,
    public_url: &str,
) -> crate::model::AdminUserView {
    use crate::server::clock::rfc3339;
    crate::model::AdminUserView {
        sessions,
        picture: u.picture(public_url),
        email: u.email.clone(),
        id: u.id,
        name: u.name,
        status: u.status,
        admin: u.admin,
        groups: u.groups,
        created_at: rfc3339(u.created_at),
        last_login_at: last_login.map(rfc3339),
    }
}

/// Every user, newest first.
#[server(prefix = "/api", endpoint = "admin/users", input = Json, output = Json)]
#[middleware(crate::server::http::api::SAME_SITE)]
#[middleware(crate::server::http::api::JSON_ONLY)]
pub async fn admin_users() -> Result<UserList, AppError> {
    let st = AppState::current()?;
    people::require_admin(&st, &WebSession::current(st.site.session_life).await?).await?;
    let users = st.users.list(LIST_LIMIT).await?;
    let pending = st.users.count_status(UserStatus::Pending).await?;
    let sessions = st.sessions.count_by_user(st.clock.now()).await?;
    let users = users.into_iter().map(|(u, last)| {
        let n = sessions.get(&u.id).copied().unwrap_or(0);
        admin_view(u, last, n, &st.site.public_url)
    });
    Ok(UserList { users: users.collect(), pending })
}

/// Changes a user's status, admin flag or groups (each optional).
#[server(prefix = "/api", endpoint = "admin/user", input = Json, output = Json)]
#[middleware(crate::server::http::api::SAME_SITE)]
#[middleware(crate::server::http::api::JSON_ONLY)]
pub async fn admin_user(
    id: UserId,
    status: Option<UserStatus>,
    admin: Option<bool>,
    groups: Option<Vec<GroupName>>,
) -> Result<UserAnswer, AppError> {
    let st = AppState::current()?;
    let actor = people::require_admin(&st, &WebSession::current(st.site.session_life).await?).await?;
    let caller = Caller::current(&st).await?;
    let user = people::update_user(&st, &actor, &caller, id, people::Change { status, admin, groups }).await?;
    let last = st.users.last_login(user.id).await?;
    let sessions = st.sessions.count_by_user(st.clock.now()).await?.get(&user.id).copied().unwrap_or(0);
    Ok(UserAnswer { user: admin_view(user, last, sessions, &st.site.public_url) })
}

/// The audit trail, newest first: everyone's, or one user's, of every kind or one.
#[server(prefix = "/api", endpoint = "admin/audit", input = Json, output = Json)]
#[middleware(crate::server::http::api::SAME_SITE)]
#[middleware(crate::server::http::api::JSON_ONLY)]
pub async fn admin_audit(user: Option<UserId>, kind: Option<String>) -> Result<AuditList, AppError> {
    use crate::model::AdminEventView;
    use crate::server::clock::rfc3339;
    let st = AppState::current()?;
    people::require_admin(&st, &WebSession::current(st.site.session_life).await?).await?;
    let events = st.audit.recent(user, kind.as_deref().filter(|k| !k.is_empty()), 500).await?;
    let pending = st.users.count_status(UserStatus::Pending).await?;
    Ok(AuditList {
        pending,
        events: events
            .into_iter()
            .map(|(e, user)| AdminEventView { at: rfc3339(e.at), kind: e.kind, user, ip: e.ip, site: e.detail })
            .collect(),
    })
}

/// Makes an invitation: `groups` given to whoever comes in through it, at most `max_uses`
/// people, for `expires_in` seconds. Its link is in the answer, and only there.
#[server(prefix = "/api", endpoint = "admin/invite", input = Json, output = Json)]
#[middleware(crate::server::http::api::SAME_SITE)]
#[middleware(crate::server::http::api::JSON_ONLY)]
pub async fn admin_invite(groups: Vec<GroupName>, max_uses: i64, expires_in: u64) -> Result<InvitationMade, AppError> {
    use crate::server::clock::rfc3339;
    let st = AppState::current()?;
    let actor = people::require_admin(&st, &WebSession::current(st.site.session_life).await?).await?;
    let caller = Caller::current(&st).await?;
    let (secret, inv) = people::create_invitation(&st, &actor, &caller, groups, max_uses, expires_in).await?;
    Ok(InvitationMade { url: crate::server::http::invite::invite_url(&st, &secret), expires_at: rfc3339(inv.expires_at), id: inv.id })
}

/// Every invitation with its uses, newest first.
#[server(prefix = "/api", endpoint = "admin/invitations", input = Json, output = Json)]
#[middleware(crate::server::http::api::SAME_SITE)]
#[middleware(crate::server::http::api::JSON_ONLY)]
pub async fn admin_invitations() -> Result<InvitationList, AppError> {
    use crate::model::InvitationView;
    use crate::server::clock::rfc3339;
    let st = AppState::current()?;
    people::require_admin(&st, &WebSession::current(st.site.session_life).await?).await?;
    let now = st.clock.now();
    let invitations = people::invitations(&st)
        .await?
        .into_iter()
        .map(|i| InvitationView {
            usable: i.usable(now),
            id: i.id,
            groups: i.groups,
            max_uses: i.max_uses,
            uses: i.uses,
            created_by: i.created_by.0,
            created_at: rfc3339(i.created_at),
            expires_at: rfc3339(i.expires_at),
            revoked_at: i.revoked_at.map(rfc3339),
        })
        .collect();
    Ok(InvitationList { invitations, pending: st.users.count_status(UserStatus::Pending).await? })
}

/// Revokes invitation `id`: its link stops working at once.
#[server(prefix = "/api", endpoint = "admin/invitation/revoke", input = Json, output = Json)]
#[middleware(crate::server::http::api::SAME_SITE)]
#[middleware(crate::server::http::api::JSON_ONLY)]
pub async fn admin_invitation_revoke(id: i64) -> Result<Empty, AppError> {
    let st = AppState::current()?;
    let actor = people::require_admin(&st, &WebSession::current(st.site.session_life).await?).await?;
    let caller = Caller::current(&st).await?;
    people::revoke_invitation(&st, &actor, &caller, id).await?;
    Ok(Empty {})
}

/// Signs user `id` out of every browser and revokes every OIDC token they hold.
#[server(prefix = "/api", endpoint = "admin/user/sign-out", input = Json, output = Json)]
#[middleware(crate::server::http::api::SAME_SITE)]
#[middleware(crate::server::http::api::JSON_ONLY)]
pub async fn admin_sign_out(id: UserId) -> Result<crate::model::Revoked, AppError> {
    let st = AppState::current()?;
    let actor = people::require_admin(&st, &WebSession::current(st.site.session_life).await?).await?;
    let caller = Caller::current(&st).await?;
    let revoked = people::sign_out_everywhere(&st, &actor, &caller, id).await?;
    Ok(crate::model::Revoked { revoked })
}

/// User `id`'s signed-in browsers (browser, IP, when, which sites), for the console.
#[server(prefix = "/api", endpoint = "admin/user/sessions", input = Json, output = Json)]
#[middleware(crate::server::http::api::SAME_SITE)]
#[middleware(crate::server::http::api::JSON_ONLY)]
pub async fn admin_user_sessions(id: UserId) -> Result<crate::model::AdminSessions, AppError> {
    let st = AppState::current()?;
    people::require_admin(&st, &WebSession::current(st.site.session_life).await?).await?;
    if st.users.get(id).await?.is_none() {
        return Err(crate::error::ErrorCode::UserNotFound.into());
    }
    Ok(crate::model::AdminSessions {
        sessions: crate::server::phone::web_sessions(&st, id).await?,
        pending: st.users.count_status(UserStatus::Pending).await?,
    })
}

/// Signs one browser of user `id` out (the `session` `admin/user/sessions` lists): at once,
/// on every instance. 404 `not_found` for a session that is not theirs. Audited.
#[server(prefix = "/api", endpoint = "admin/user/session/sign-out", input = Json, output = Json)]
#[middleware(crate::server::http::api::SAME_SITE)]
#[middleware(crate::server::http::api::JSON_ONLY)]
pub async fn admin_sign_out_session(id: UserId, session: String) -> Result<crate::model::Revoked, AppError> {
    let st = AppState::current()?;
    let actor = people::require_admin(&st, &WebSession::current(st.site.session_life).await?).await?;
    let caller = Caller::current(&st).await?;
    people::sign_out_browser(&st, &actor, &caller, id, &session).await?;
    Ok(crate::model::Revoked { revoked: 1 })
}
