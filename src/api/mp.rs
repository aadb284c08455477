//! Endpoints the mini program (and the simulated phone) calls. No cookies: the caller
//! is identified by its `wx.login` code, then by the confirm token it got back.

use crate::domain::{ConfirmToken, TicketId, WxCode};
use crate::error::AppError;
use crate::model::{PhoneAnswer, ScanAnswer};
use leptos::prelude::*;
use leptos::server_fn::codec::Json;

#[cfg(feature = "ssr")]
use crate::server::{caller::Caller, state::AppState};

/// The state and the ticket, after the phone endpoints' rate limits: per client, then,
/// once the ticket is known to exist, per ticket and client (so one client's garbage
/// cannot lock the real scanner out, and unknown ids allocate no limiter entry).
/// `scanner`: the confirm token's hash of a call the scanner makes ([`phone_call_of`]).
#[cfg(feature = "ssr")]
async fn phone_call(
    ticket: &TicketId,
    scanner: Option<&crate::server::tokens::TokenHash>,
) -> Result<(AppState, crate::server::tickets::Ticket, Caller), AppError> {
    let st = AppState::current()?;
    let caller = Caller::current(&st).await?;
    let current = phone_call_of(&st, &caller, ticket, scanner).await?;
    Ok((st, current, caller))
}

/// [`phone_call`] for an axum handler, which has the state and the caller already.
///
/// A scan (`scanner` `None`) reads the stored ticket: what it decides before its
/// conditional write (whether to spend the WeChat code, to create an account) must not
/// rest on a copy another instance has changed since. The scanner's later calls take the
/// ticket as this instance knows it, and the stored one if that copy refuses them
/// ([`Tickets::newer`](crate::server::tickets::Tickets::newer)); what they change is
/// written conditionally.
#[cfg(feature = "ssr")]
pub async fn phone_call_of(
    st: &AppState,
    caller: &Caller,
    ticket: &TicketId,
    scanner: Option<&crate::server::tokens::TokenHash>,
) -> Result<crate::server::tickets::Ticket, AppError> {
    use crate::error::ErrorCode;
    use crate::server::limits::client_bucket;

    let client = client_bucket(caller.ip);
    st.limits.phone_per_ip.check(&client).await?;
    let known = match scanner {
        None => st.tickets.load_stored(ticket).await?,
        Some(_) => st.tickets.load(ticket).await?,
    };
    let Some(mut current) = known else {
        return Err(ErrorCode::TicketNotFound.into());
    };
    if let Some(hash) = scanner
        && current.phone_refusal(hash, st.tickets.now()).is_some()
        && let Some(stored) = st.tickets.newer(&current).await?
    {
        current = stored;
    }
    st.limits.phone_per_ticket.check(&format!("{ticket} {client}")).await?;
    Ok(current)
}

/// The phone scanned `ticket`; `code` comes from `wx.login()`. Exchanges the code for
/// the WeChat user, finds or creates our user, and moves `waiting → scanned`.
#[server(prefix = "/api", endpoint = "mp/scan", input = Json, output = Json)]
#[middleware(crate::server::http::api::JSON_ONLY)]
pub async fn mp_scan(ticket: TicketId, code: WxCode) -> Result<ScanAnswer, AppError> {
    use crate::model::Requester;
    use crate::server::clock::rfc3339;
    use crate::server::display::describe_browser;
    use crate::server::error::current_lang;
    use crate::server::tokens::{TokenHash, new_confirm_token};

    let (st, current, caller) = phone_call(&ticket, None).await?;
    // Refuse what cannot succeed before spending the single-use code.
    if let Some(refusal) = current.closed_to_scans(st.tickets.now()) {
        return Err(refusal.into());
    }
    let who = st.wechat.code_to_session(code.as_str()).await?;
    // Ask with the user as known so far, so that a refused scan (a second WeChat user)
    // creates no account.
    let known = st.users.find(&who).await?;
    if let Some(refusal) = current.scan_refusal(known.as_ref().map(|u| u.id), st.tickets.now()) {
        let code = crate::error::ErrorCode::from(refusal);
        st.audit.record(st.clock.now(), crate::server::audit::Kind::ScanRefused, known.map(|u| u.id), &caller, &code.name()).await;
        return Err(refusal.into());
    }
    // People: a disabled user is turned away before confirm; a newcomer follows the
    // sign-up policy (the setup link's login gets in whatever it is).
    let status = match &known {
        Some(u) => match crate::server::people::phone_refusal(u) {
            Some(code) => {
                st.audit.record(st.clock.now(), crate::server::audit::Kind::ScanRefused, Some(u.id), &caller, &code.name()).await;
                return Err(code.into());
            }
            None => u.status,
        },
        None => {
            let handoff = crate::server::handoff::Handoff::from_login(Some(current.next.clone()), false);
            let now = st.clock.now();
            let via_link = match (handoff.setup_secret(), handoff.invite_secret()) {
                (Some(s), _) => crate::server::people::setup_link_usable(&st.db, s, now).await?,
                (_, Some(s)) => crate::server::people::invitation_by_secret(&st.db, s).await?.is_some_and(|i| i.usable(now)),
                _ => false,
            };
            match crate::server::people::newcomer_status(st.site.signup, via_link) {
                Ok(s) => s,
                Err(code) => {
                    st.audit.record(st.clock.now(), crate::server::audit::Kind::ScanRefused, None, &caller, &code.name()).await;
                    return Err(code.into());
                }
            }
        }
    };
    let user = st.users.find_or_create(&who, known, st.clock.now(), status).await?;
    let confirm_token = new_confirm_token();
    let hash = TokenHash::of(confirm_token.as_str());
    let life = st.tickets.life;
    let number = st.site.number_match.then(|| rand::Rng::gen_range(&mut rand::thread_rng(), 10..=99u8));
    let (t, ()) = st.tickets.update_from(current, |t, now| t.scan(user.id, hash.clone(), now, life, number)).await?;
    metrics::counter!("scanlogin_phone_calls_total", "call" => "scan").increment(1);
    Ok(ScanAnswer {
        status: t.status,
        account_status: user.status,
        profile_missing: user.profile_missing(),
        confirm_token,
        requester: Requester {
            site: st.site.host.clone(),
            browser: describe_browser(&t.origin.user_agent).unwrap_or_else(|| current_lang().ui().unknown_browser.to_string()),
            ip: t.origin.ip_text(),
            created_at: rfc3339(t.created_at),
            client: t.client_name.clone(),
        },
        number_choices: t.match_number.map(number_choices),
    })
}

/// Number matching's three choices: `right` and two other two-digit numbers, shuffled.
#[cfg(feature = "ssr")]
fn number_choices(right: u8) -> Vec<u8> {
    use rand::Rng as _;
    use rand::seq::SliceRandom as _;
    let mut rng = rand::thread_rng();
    let mut choices = vec![right];
    while choices.len() < 3 {
        let n = rng.gen_range(10..=99u8);
        if !choices.contains(&n) {
            choices.push(n);
        }
    }
    choices.shuffle(&mut rng);
    choices
}

/// The scanner tapped 点击登录: `scanned → confirmed`. With number matching, `number` is
/// the person's pick: a wrong one is 400 `wrong_number` (counted), the second wrong one
/// cancels the ticket (409 `ticket_cancelled`; the browser says why).
#[server(prefix = "/api", endpoint = "mp/confirm", input = Json, output = Json)]
#[middleware(crate::server::http::api::JSON_ONLY)]
pub async fn mp_confirm(ticket: TicketId, confirm_token: ConfirmToken, number: Option<u8>) -> Result<PhoneAnswer, AppError> {
    use crate::server::tickets::Miss;
    use crate::server::tokens::TokenHash;

    let hash = TokenHash::of(confirm_token.as_str());
    let (st, current, caller) = phone_call(&ticket, Some(&hash)).await?;
    let scanner = current.scanner_id;
    // Disabled between the scan and this tap: refused with words, the ticket unchanged.
    // (Checked only when the confirm would otherwise succeed: other refusals come first.)
    if let Some(id) = scanner
        && current.phone_refusal(&hash, st.tickets.now()).is_none()
        && st.users.cached(id).await?.is_some_and(|u| u.status == crate::domain::UserStatus::Disabled)
    {
        let code = crate::error::ErrorCode::AccountDisabled;
        st.audit.record(st.clock.now(), crate::server::audit::Kind::ConfirmRefused, Some(id), &caller, &code.name()).await;
        return Err(code.into());
    }
    let answer = st.tickets.update_from(current, |t, now| t.confirm(&hash, number, now)).await;
    let mut note = None;
    let answer = match answer {
        // A wrong pick is a change of its own: counted, and the last one cancels.
        Err(e) if e.code == crate::error::ErrorCode::WrongNumber => match st.tickets.update(&ticket, |t, now| t.miss(&hash, now)).await {
            Ok((_, Miss::TryAgain)) => {
                note = Some("wrong_number");
                Err(e)
            }
            Ok((_, Miss::Cancelled)) => {
                note = Some("wrong_number: cancelled");
                Err(crate::error::ErrorCode::TicketCancelled.into())
            }
            Err(other) => Err(other),
        },
        other => other,
    };
    if let Err(e) = &answer {
        let what = note.map_or_else(|| e.code.name(), str::to_string);
        st.audit.record(st.clock.now(), crate::server::audit::Kind::ConfirmRefused, scanner, &caller, &what).await;
    }
    let (t, ()) = answer?;
    metrics::counter!("scanlogin_phone_calls_total", "call" => "confirm").increment(1);
    Ok(PhoneAnswer { status: t.status })
}

/// The scanner tapped 取消: `scanned → cancelled`.
#[server(prefix = "/api", endpoint = "mp/cancel", input = Json, output = Json)]
#[middleware(crate::server::http::api::JSON_ONLY)]
pub async fn mp_cancel(ticket: TicketId, confirm_token: ConfirmToken) -> Result<PhoneAnswer, AppError> {
    use crate::server::tokens::TokenHash;

    let hash = TokenHash::of(confirm_token.as_str());
    let (st, current, _) = phone_call(&ticket, Some(&hash)).await?;
    let (t, ()) = st.tickets.update_from(current, |t, now| t.cancel(&hash, now)).await?;
    metrics::counter!("scanlogin_phone_calls_total", "call" => "cancel").increment(1);
    Ok(PhoneAnswer { status: t.status })
}

/// The scanner's user while their confirm token is the current one of a scanned ticket
/// (between scan and confirm): the only moment the phone may set a profile.
#[cfg(feature = "ssr")]
pub async fn scanner_of(
    st: &AppState,
    caller: &Caller,
    ticket: &TicketId,
    confirm_token: &ConfirmToken,
) -> Result<crate::server::users::User, AppError> {
    use crate::server::tokens::TokenHash;
    let hash = TokenHash::of(confirm_token.as_str());
    let current = phone_call_of(st, caller, ticket, Some(&hash)).await?;
    if let Some(refusal) = current.phone_refusal(&hash, st.tickets.now()) {
        return Err(refusal.into());
    }
    let id = current.scanner_id.ok_or_else(|| AppError::internal("scanned ticket without scanner"))?;
    st.users.get(id).await?.ok_or_else(|| AppError::internal("the scanner's user is gone"))
}

/// 头像昵称填写: the scanner's nickname, between scan and confirm. 1–32 characters, no
/// control characters; checked by WeChat (`msgSecCheck`): refused → 400 `nickname_rejected`.
#[server(prefix = "/api", endpoint = "mp/profile", input = Json, output = Json)]
#[middleware(crate::server::http::api::JSON_ONLY)]
pub async fn mp_profile(ticket: TicketId, confirm_token: ConfirmToken, nickname: String) -> Result<crate::model::ProfileAnswer, AppError> {
    if crate::server::people::valid_nickname(&nickname).is_none() {
        return Err(crate::error::ErrorCode::BadRequest.into());
    }
    let st = AppState::current()?;
    let caller = Caller::current(&st).await?;
    let user = scanner_of(&st, &caller, &ticket, &confirm_token).await?;
    let name = crate::server::people::set_nickname(&st, &user, &nickname, &caller).await?;
    Ok(crate::model::ProfileAnswer { name, picture: user.picture(&st.site.public_url) })
}

/// The mini program's own login (`server::phone`): a `wx.login` code for a token.
#[server(prefix = "/api", endpoint = "mp/login", input = Json, output = Json)]
#[middleware(crate::server::http::api::JSON_ONLY)]
pub async fn mp_login(code: WxCode) -> Result<crate::model::PhoneLogin, AppError> {
    let st = AppState::current()?;
    let caller = Caller::current(&st).await?;
    crate::server::phone::login(&st, &caller, code.as_str()).await
}

/// The state, the caller and the person a phone token belongs to, after the phone
/// endpoints' per-client rate limit.
#[cfg(feature = "ssr")]
async fn token_holder(token: &str) -> Result<(AppState, Caller, crate::server::users::User), AppError> {
    let st = AppState::current()?;
    let caller = Caller::current(&st).await?;
    st.limits.phone_per_ip.check(&crate::server::limits::client_bucket(caller.ip)).await?;
    let user = crate::server::phone::user_of(&st, token).await?;
    Ok((st, caller, user))
}

/// A new token for the holder of `token` (which ends), before it expires.
#[server(prefix = "/api", endpoint = "mp/renew", input = Json, output = Json)]
#[middleware(crate::server::http::api::JSON_ONLY)]
pub async fn mp_renew(token: String) -> Result<crate::model::PhoneLogin, AppError> {
    let (st, _, user) = token_holder(&token).await?;
    crate::server::phone::renew(&st, &user, &token).await
}

/// 「我的网页登录」: the browsers signed in as the holder of `token`.
#[server(prefix = "/api", endpoint = "mp/web-sessions", input = Json, output = Json)]
#[middleware(crate::server::http::api::JSON_ONLY)]
pub async fn mp_web_sessions(token: String) -> Result<crate::model::BrowserSessions, AppError> {
    let (st, _, user) = token_holder(&token).await?;
    Ok(crate::model::BrowserSessions { sessions: crate::server::phone::web_sessions(&st, user.id).await? })
}

/// 退出 on one browser of the list: signed out at once, on every instance.
#[server(prefix = "/api", endpoint = "mp/web-sessions/sign-out", input = Json, output = Json)]
#[middleware(crate::server::http::api::JSON_ONLY)]
pub async fn mp_web_session_sign_out(token: String, session: String) -> Result<crate::model::Revoked, AppError> {
    let (st, caller, user) = token_holder(&token).await?;
    crate::server::phone::sign_out(&st, &user, &caller, &session).await?;
    Ok(crate::model::Revoked { revoked: 1 })
}

/// 全部退出: every browser signed out.
#[server(prefix = "/api", endpoint = "mp/web-sessions/sign-out-all", input = Json, output = Json)]
#[middleware(crate::server::http::api::JSON_ONLY)]
pub async fn mp_web_sessions_sign_out_all(token: String) -> Result<crate::model::Revoked, AppError> {
    let (st, caller, user) = token_holder(&token).await?;
    Ok(crate::model::Revoked { revoked: crate::server::phone::sign_out_all(&st, &user, &caller).await? })
}
