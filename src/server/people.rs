//! The user directory's decisions: who becomes a user on first scan (`SIGNUP`), who is
//! refused on the phone, what an admin may change (never the last active admin away),
//! what a change revokes at once, and the one-time setup links that make the first
//! admin. The HTTP sides (the admin API, the setup page) only call these.

use crate::domain::{GroupName, UnixMillis, UserId, UserStatus};
use crate::error::{AppError, ErrorCode};
use crate::server::audit::Kind;
use crate::server::caller::Caller;
use crate::server::config::Signup;
use crate::server::session::WebSession;
use crate::server::state::AppState;
use crate::server::tokens::{TokenHash, random_token};
use crate::server::users::User;
use std::time::Duration;

/// A setup link lives this long.
const SETUP_LINK_LIFE: Duration = Duration::from_secs(24 * 3600);

/// What a first scan of an unknown WeChat user makes of them under `signup`: their
/// status, or the refusal. `via_link`: the login came through a valid setup link (the
/// owner's own way in, whatever the policy).
pub fn newcomer_status(signup: Signup, via_link: bool) -> Result<UserStatus, ErrorCode> {
    match (signup, via_link) {
        (Signup::Open, _) => Ok(UserStatus::Active),
        (Signup::Approval, _) | (Signup::Invite, true) => Ok(UserStatus::Pending),
        (Signup::Invite, false) => Err(ErrorCode::InvitationRequired),
    }
}

/// Refuses a known user the phone must turn away before confirm.
pub fn phone_refusal(user: &User) -> Option<ErrorCode> {
    (user.status == UserStatus::Disabled).then_some(ErrorCode::AccountDisabled)
}

/// The signed-in admin of this request: 401 when nobody is signed in, 403 `forbidden`
/// for anyone who is not an active admin.
pub async fn require_admin(st: &AppState, session: &WebSession) -> Result<User, AppError> {
    let Some(who) = session.signed_in_now(st).await? else {
        return Err(ErrorCode::Unauthenticated.into());
    };
    match st.users.cached(who.user).await? {
        Some(u) if u.admin && u.is_active() => Ok(u),
        Some(_) => Err(ErrorCode::Forbidden.into()),
        None => Err(ErrorCode::Unauthenticated.into()),
    }
}

/// What an admin asks to change about a user; `None` leaves it as it is.
#[derive(Clone, Debug, Default)]
pub struct Change {
    pub status: Option<UserStatus>,
    pub admin: Option<bool>,
    pub groups: Option<Vec<GroupName>>,
}

/// Applies `change` to user `id` on behalf of `actor`: refused (409 `last_admin`) when it
/// would leave no active admin; recorded in the audit trail; a user who is no longer
/// active loses every OIDC token at once, and a disabled one every session too (on
/// every instance: the rows go, and the trigger tells the others' caches).
pub async fn update_user(st: &AppState, actor: &User, caller: &Caller, id: UserId, change: Change) -> Result<User, AppError> {
    let Some(before) = st.users.get(id).await? else { return Err(ErrorCode::UserNotFound.into()) };
    let mut after = before.clone();
    if let Some(s) = change.status {
        after.status = s;
    }
    if let Some(a) = change.admin {
        after.admin = a;
    }
    if let Some(mut g) = change.groups {
        g.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        g.dedup();
        after.groups = g;
    }
    if after == before {
        return Ok(after);
    }
    // Taking an active admin away is written only while another remains, decided in the
    // write itself (two admins demoting each other at once: one of them stays).
    let takes_an_admin = before.admin && before.is_active() && !(after.admin && after.is_active());
    let written = if takes_an_admin {
        st.users.save_access_keeping_an_admin(&after).await?
    } else {
        st.users.save_access(&after).await.map(|()| true)?
    };
    if !written {
        st.audit.record(st.clock.now(), Kind::UserUpdated, Some(id), caller, &format!("refused: last admin (by {})", actor.id)).await;
        return Err(ErrorCode::LastAdmin.into());
    }
    let mut revoked = String::new();
    if before.is_active()
        && !after.is_active()
        && let Some(p) = &st.oidc
    {
        let n = p.store.revoke_user(id).await?;
        revoked.push_str(&format!(", {n} OIDC tokens revoked"));
    }
    if after.status == UserStatus::Disabled && before.status != UserStatus::Disabled {
        let n = st.sessions.delete_user(id).await?;
        revoked.push_str(&format!(", {n} sessions ended"));
        let n = crate::server::phone::end_user(st, id).await?;
        revoked.push_str(&format!(", {n} phone logins ended"));
    }
    let detail = format!("{} (by {}){revoked}", describe_change(&before, &after), actor.id);
    tracing::info!(user = %id, admin = %actor.id, %detail, "user updated");
    st.audit.record(st.clock.now(), Kind::UserUpdated, Some(id), caller, &detail).await;
    Ok(after)
}

/// Signs user `id` out everywhere on behalf of `actor`: every session and every OIDC token
/// ends at once, on every instance. Audited; the number of sessions ended.
pub async fn sign_out_everywhere(st: &AppState, actor: &User, caller: &Caller, id: UserId) -> Result<u64, AppError> {
    if st.users.get(id).await?.is_none() {
        return Err(ErrorCode::UserNotFound.into());
    }
    let ended = st.sessions.delete_user(id).await?;
    let tokens = match &st.oidc {
        Some(p) => p.store.revoke_user(id).await?,
        None => 0,
    };
    let detail = format!("signed out everywhere (by {}): {ended} sessions ended, {tokens} OIDC tokens revoked", actor.id);
    st.audit.record(st.clock.now(), Kind::UserUpdated, Some(id), caller, &detail).await;
    Ok(ended)
}

/// Signs one browser of user `id` out on behalf of `actor` (the console's per-session
/// 退出). Audited, on the user.
pub async fn sign_out_browser(st: &AppState, actor: &User, caller: &Caller, id: UserId, session: &str) -> Result<(), AppError> {
    crate::server::phone::end_browser(st, id, session).await?;
    let detail = format!("signed out one browser (by {})", actor.id);
    st.audit.record(st.clock.now(), Kind::UserUpdated, Some(id), caller, &detail).await;
    Ok(())
}

/// "status active→disabled, admin false→true, groups ops→ops,dev": what changed.
fn describe_change(before: &User, after: &User) -> String {
    let mut parts = Vec::new();
    if before.status != after.status {
        parts.push(format!("status {}→{}", before.status.as_str(), after.status.as_str()));
    }
    if before.admin != after.admin {
        parts.push(format!("admin {}→{}", before.admin, after.admin));
    }
    if before.groups != after.groups {
        let j = crate::server::users::join_groups;
        parts.push(format!("groups {}→{}", j(&before.groups), j(&after.groups)));
    }
    parts.join(", ")
}

/// A new one-time setup link's secret (its hash stored), valid for a day.
pub async fn new_setup_link(st_db: &crate::server::db::Db, now: UnixMillis) -> Result<String, sqlx::Error> {
    let secret = random_token(24);
    sqlx::query("INSERT INTO setup_links (token_hash, created_at, expires_at) VALUES ($1, $2, $3)")
        .bind(TokenHash::of(&secret).as_str())
        .bind(now)
        .bind(now.plus(SETUP_LINK_LIFE))
        .execute(st_db)
        .await?;
    Ok(secret)
}

/// Whether `secret` is a setup link that can still be used at `now`.
pub async fn setup_link_usable(db: &crate::server::db::Db, secret: &str, now: UnixMillis) -> Result<bool, sqlx::Error> {
    if secret.len() > 64 {
        return Ok(false);
    }
    let row: Option<(i64,)> = sqlx::query_as("SELECT expires_at FROM setup_links WHERE token_hash = $1 AND used_at IS NULL")
        .bind(TokenHash::of(secret).as_str())
        .fetch_optional(db)
        .await?;
    Ok(row.is_some_and(|(exp,)| now < UnixMillis(exp)))
}

/// Makes the signed-in `user` an active admin through the setup link `secret`. The
/// link is spent by one conditional update: of two phones at once, one wins and the
/// other gets 410 `link_invalid`, as does a used or expired link.
pub async fn claim_setup_link(st: &AppState, secret: &str, user: UserId, caller: &Caller) -> Result<User, AppError> {
    let now = st.clock.now();
    let spent =
        sqlx::query("UPDATE setup_links SET used_at = $2, used_by = $3 WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2")
            .bind(TokenHash::of(secret).as_str())
            .bind(now)
            .bind(user)
            .execute(&st.db)
            .await?;
    if spent.rows_affected() != 1 {
        return Err(ErrorCode::LinkInvalid.into());
    }
    let Some(mut u) = st.users.get(user).await? else { return Err(ErrorCode::Unauthenticated.into()) };
    u.status = UserStatus::Active;
    u.admin = true;
    st.users.save_access(&u).await?;
    tracing::info!(user = %user, "became an admin through a setup link");
    st.audit.record(now, Kind::AdminSetup, Some(user), caller, "setup link").await;
    Ok(u)
}

/// Forgets setup links that can no longer be used (a start while no admin exists makes one).
pub async fn purge(st: &AppState, now: UnixMillis) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query("DELETE FROM setup_links WHERE expires_at < $1 OR used_at IS NOT NULL").bind(now).execute(&st.db).await?.rows_affected())
}

/// At start: while no active admin exists, a fresh setup link, logged for the owner.
pub async fn announce_setup_link(st: &AppState) -> Result<(), sqlx::Error> {
    if st.users.count_active_admins().await? > 0 {
        return Ok(());
    }
    let secret = new_setup_link(&st.db, st.clock.now()).await?;
    tracing::warn!(
        "no administrator yet: open {}/setup/{secret} and sign in by scanning to become the first one (valid for a day, once; \
         `scanlogin admin setup-link` prints another)",
        st.site.public_url
    );
    Ok(())
}

/// An invitation as the console lists it (never its secret, which only its link holds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invitation {
    pub id: i64,
    pub groups: Vec<GroupName>,
    pub max_uses: i64,
    pub uses: i64,
    pub created_by: UserId,
    pub created_at: UnixMillis,
    pub expires_at: UnixMillis,
    pub revoked_at: Option<UnixMillis>,
}

impl Invitation {
    /// Whether it still lets someone new in at `now`.
    pub fn usable(&self, now: UnixMillis) -> bool {
        self.revoked_at.is_none() && now < self.expires_at && self.uses < self.max_uses
    }
}

type InvitationRow = (i64, String, i64, i64, UserId, i64, i64, Option<i64>);
const INVITATION_COLUMNS: &str = "id, group_names, max_uses, uses, created_by, created_at, expires_at, revoked_at";

fn invitation((id, groups, max_uses, uses, created_by, created_at, expires_at, revoked_at): InvitationRow) -> Invitation {
    Invitation {
        id,
        groups: groups.split(',').filter_map(|g| GroupName::try_from(g).ok()).collect(),
        max_uses,
        uses,
        created_by,
        created_at: UnixMillis(created_at),
        expires_at: UnixMillis(expires_at),
        revoked_at: revoked_at.map(UnixMillis),
    }
}

/// Longest an invitation may live, and most uses it may have.
pub const MAX_INVITATION_SECS: u64 = 90 * 86_400;
pub const MAX_INVITATION_USES: i64 = 10_000;

/// Makes an invitation for `groups`, `max_uses` people, `expires_in` seconds; its secret
/// (for the link) and the invitation. Audited.
pub async fn create_invitation(
    st: &AppState,
    actor: &User,
    caller: &Caller,
    groups: Vec<GroupName>,
    max_uses: i64,
    expires_in: u64,
) -> Result<(String, Invitation), AppError> {
    if !(1..=MAX_INVITATION_USES).contains(&max_uses) || !(60..=MAX_INVITATION_SECS).contains(&expires_in) {
        return Err(ErrorCode::BadRequest.into());
    }
    let now = st.clock.now();
    let secret = random_token(24);
    let joined = crate::server::users::join_groups(&groups);
    let expires_at = now.plus(Duration::from_secs(expires_in));
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO invitations (token_hash, group_names, max_uses, created_by, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(TokenHash::of(&secret).as_str())
    .bind(&joined)
    .bind(max_uses)
    .bind(actor.id)
    .bind(now)
    .bind(expires_at)
    .fetch_one(&st.db)
    .await?;
    let detail = format!("invitation #{id}: groups {joined}, {max_uses} uses (by {})", actor.id);
    st.audit.record(now, Kind::InvitationCreated, None, caller, &detail).await;
    Ok((secret, Invitation { id, groups, max_uses, uses: 0, created_by: actor.id, created_at: now, expires_at, revoked_at: None }))
}

/// Every invitation, newest first.
pub async fn invitations(st: &AppState) -> Result<Vec<Invitation>, sqlx::Error> {
    let rows: Vec<InvitationRow> =
        sqlx::query_as(&format!("SELECT {INVITATION_COLUMNS} FROM invitations ORDER BY id DESC LIMIT 500")).fetch_all(&st.db).await?;
    Ok(rows.into_iter().map(invitation).collect())
}

/// The invitation whose secret is `secret`, whatever its state.
pub async fn invitation_by_secret(db: &crate::server::db::Db, secret: &str) -> Result<Option<Invitation>, sqlx::Error> {
    if secret.len() > 64 {
        return Ok(None);
    }
    let row: Option<InvitationRow> = sqlx::query_as(&format!("SELECT {INVITATION_COLUMNS} FROM invitations WHERE token_hash = $1"))
        .bind(TokenHash::of(secret).as_str())
        .fetch_optional(db)
        .await?;
    Ok(row.map(invitation))
}

/// Revokes invitation `id` (its link stops working; who came in stays). Audited.
pub async fn revoke_invitation(st: &AppState, actor: &User, caller: &Caller, id: i64) -> Result<(), AppError> {
    let now = st.clock.now();
    let done = sqlx::query("UPDATE invitations SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
        .bind(id)
        .bind(now)
        .execute(&st.db)
        .await?;
    if done.rows_affected() != 1 {
        return Err(ErrorCode::LinkInvalid.into());
    }
    st.audit.record(now, Kind::InvitationRevoked, None, caller, &format!("invitation #{id} (by {})", actor.id)).await;
    Ok(())
}

/// Lets the signed-in `user` in through the invitation `secret`: active, with its groups
/// added. A use is counted once per person, atomically: of more people at once than it
/// has uses left, the extra ones get 410 `link_invalid` and nothing changes for them. The
/// same person again is a success that counts nothing.
pub async fn redeem_invitation(st: &AppState, secret: &str, user: UserId, caller: &Caller) -> Result<User, AppError> {
    let now = st.clock.now();
    let Some(inv) = invitation_by_secret(&st.db, secret).await? else { return Err(ErrorCode::LinkInvalid.into()) };
    let Some(mut u) = st.users.get(user).await? else { return Err(ErrorCode::Unauthenticated.into()) };
    if u.status == UserStatus::Disabled {
        return Err(ErrorCode::AccountDisabled.into());
    }
    let mut conn = st.db.acquire().await?;
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    let first = sqlx::query("INSERT INTO invitation_uses (invitation_id, user_id, at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
        .bind(inv.id)
        .bind(user)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
        == 1;
    if first {
        let counted = sqlx::query(
            "UPDATE invitations SET uses = uses + 1 WHERE id = $1 AND revoked_at IS NULL AND expires_at > $2 AND uses < max_uses",
        )
        .bind(inv.id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if counted.rows_affected() != 1 {
            tx.rollback().await?;
            return Err(ErrorCode::LinkInvalid.into());
        }
    }
    tx.commit().await?;
    drop(conn);
    let mut groups = u.groups.clone();
    groups.extend(inv.groups.iter().cloned());
    groups.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    groups.dedup();
    if first || u.status != UserStatus::Active || groups != u.groups {
        u.status = UserStatus::Active;
        u.groups = groups;
        st.users.save_access(&u).await?;
    }
    if first {
        st.audit.record(now, Kind::InvitationUsed, Some(user), caller, &format!("invitation #{}", inv.id)).await;
    }
    Ok(u)
}

/// A nickname as typed: 1–32 characters once trimmed, no control characters.
pub fn valid_nickname(raw: &str) -> Option<String> {
    let name = raw.trim();
    let n = name.chars().count();
    ((1..=32).contains(&n) && !name.chars().any(char::is_control)).then(|| name.to_string())
}

/// Sets `user`'s nickname once WeChat's content check (`msgSecCheck`, with their openid)
/// lets it stand: refused → 400 `nickname_rejected`; the check unreachable → 502
/// `wechat_unavailable` and nothing changes (fail closed: a name other apps show is not
/// taken unchecked).
pub async fn set_nickname(st: &AppState, user: &User, raw: &str, caller: &Caller) -> Result<String, AppError> {
    let Some(name) = valid_nickname(raw) else { return Err(ErrorCode::BadRequest.into()) };
    if !st.wechat.nickname_allowed(&user.openid, &name).await? {
        st.audit.record(st.clock.now(), Kind::ProfileRefused, Some(user.id), caller, "nickname_rejected").await;
        return Err(ErrorCode::NicknameRejected.into());
    }
    st.users.set_name(user.id, &name, st.clock.now()).await?;
    Ok(name)
}

/// `scanlogin admin setup-link`: a fresh setup link on the database the configuration
/// names (migrated first), as the URL to open.
pub async fn setup_link_command(config: &crate::server::config::Config) -> Result<String, crate::server::error::StartupError> {
    use crate::server::clock::{Clock as _, SystemClock};
    let url = config.database_url.clone().unwrap_or_else(|| crate::server::db::DEFAULT_URL.to_string());
    let db = crate::server::db::connect(&url, "cli", Some(1)).await?;
    let secret = new_setup_link(&db, SystemClock.now()).await?;
    db.close().await;
    let base = match (&config.public_url, config.listen) {
        (Some(u), _) => u.as_str().trim_end_matches('/').to_string(),
        (None, Some(addr)) => format!("http://{addr}"),
        (None, None) => "http://127.0.0.1:3000".to_string(),
    };
    Ok(format!("{base}/setup/{secret}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nicknames_are_short_visible_text() {
        assert_eq!(valid_nickname("  小明 "), Some("小明".into()));
        assert_eq!(valid_nickname(&"字".repeat(32)), Some("字".repeat(32)));
        for bad in ["", "   ", "a\u{0}b", "line\nbreak", &"字".repeat(33)] {
            assert_eq!(valid_nickname(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn newcomers_follow_the_signup_policy() {
        assert_eq!(newcomer_status(Signup::Open, false), Ok(UserStatus::Active));
        assert_eq!(newcomer_status(Signup::Approval, false), Ok(UserStatus::Pending));
        assert_eq!(newcomer_status(Signup::Invite, false), Err(ErrorCode::InvitationRequired));
        assert_eq!(newcomer_status(Signup::Invite, true), Ok(UserStatus::Pending), "the owner's setup link gets in");
    }
}
