//! Profiles over HTTP that a server function cannot carry: the mini program's avatar
//! upload (`wx.uploadFile` sends multipart), the avatars themselves (immutable URLs), and
//! the account page's form that changes the name.

use super::{found, refusal_page};
use crate::domain::{ConfirmToken, TicketId};
use crate::error::{AppError, ErrorCode};
use crate::server::caller::Caller;
use crate::server::error::{error_response, request_lang};
use crate::server::http::api::check_same_site;
use crate::server::session::WebSession;
use crate::server::state::AppState;
use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{Multipart, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

/// The largest upload body: the image and the form's other fields.
pub const UPLOAD_BODY: usize = crate::server::avatar::MAX_BYTES + 16 * 1024;

/// The fields of an avatar upload.
async fn read_upload(mut form: Multipart) -> Result<(TicketId, ConfirmToken, Vec<u8>), AppError> {
    let (mut ticket, mut token, mut file) = (None, None, None);
    while let Some(field) = form.next_field().await.map_err(|e| {
        tracing::debug!(error = %e, "avatar upload did not parse");
        AppError::new(ErrorCode::BadRequest)
    })? {
        match field.name() {
            Some("ticket") => ticket = field.text().await.ok().and_then(|t| TicketId::try_from(t).ok()),
            Some("confirm_token") => token = field.text().await.ok().and_then(|t| ConfirmToken::try_from(t).ok()),
            Some("file") => file = Some(field.bytes().await.map_err(|_| AppError::new(ErrorCode::BadImage))?.to_vec()),
            _ => {}
        }
    }
    match (ticket, token, file) {
        (Some(t), Some(c), Some(f)) => Ok((t, c, f)),
        _ => Err(ErrorCode::BadRequest.into()),
    }
}

/// `POST /api/mp/avatar` (multipart: `ticket`, `confirm_token`, `file`): the scanner's
/// avatar, between scan and confirm. Anything but a PNG or JPEG within the limits is
/// 400 `bad_image`, and changes nothing.
pub async fn upload(
    State(st): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    form: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Response {
    let answer = async {
        let form = form.map_err(|_| AppError::new(ErrorCode::UnsupportedMediaType))?;
        let (ticket, token, file) = read_upload(form).await?;
        let user = crate::api::mp::scanner_of(&st, &caller, &ticket, &token).await?;
        let png = crate::server::avatar::reencode(&file).map_err(|e| {
            tracing::info!(error = %e, user = %user.id, "avatar refused");
            AppError::new(ErrorCode::BadImage)
        })?;
        let key = st.users.set_avatar(user.id, &png, st.clock.now()).await?;
        let picture = Some(format!("{}/avatars/{key}.png", st.site.public_url));
        Ok::<_, AppError>(crate::model::ProfileAnswer { name: user.name, picture })
    };
    match answer.await {
        Ok(a) => axum::Json(a).into_response(),
        Err(e) => error_response(&e, &headers),
    }
}

/// `GET /avatars/{id}.png`: an avatar; its URL names its content, so it never changes.
pub async fn avatar(State(st): State<AppState>, Path(file): Path<String>) -> Response {
    let Some(key) = file.strip_suffix(".png").filter(|k| k.len() == 64 && k.bytes().all(|b| b.is_ascii_hexdigit())) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    match st.users.avatar(key).await {
        Ok(Some(png)) => {
            let mut res = png.into_response();
            let h = res.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/png"));
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable"));
            res
        }
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(e) => {
            tracing::error!(error = %e, "avatar not read");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// A refusal of the account page's forms, leading back to it.
pub(super) fn account_refusal(lang: crate::i18n::Lang, e: &AppError) -> Response {
    let ui = lang.ui();
    refusal_page(lang, e, ui.account_title, Some(("/account", ui.account_title)))
}

/// Who posts one of the account page's forms: a same-site post from a signed-in browser;
/// otherwise the answer to send (the scan page, or a refusal).
pub(super) async fn account_form(
    st: &AppState,
    web: &WebSession,
    headers: &HeaderMap,
) -> Result<crate::server::session::SignedIn, Response> {
    let lang = request_lang(headers);
    check_same_site(headers, &st.site.public_url).map_err(|e| account_refusal(lang, &e))?;
    match web.signed_in_now(st).await {
        Ok(Some(s)) => Ok(s),
        Ok(None) => Err(found("/login?next=/account")),
        Err(e) => Err(account_refusal(lang, &e)),
    }
}

/// [`account_form`], and the person it is signed in as (gone: the scan page).
pub(super) async fn account_user(st: &AppState, web: &WebSession, headers: &HeaderMap) -> Result<crate::server::users::User, Response> {
    let signed_in = account_form(st, web, headers).await?;
    match st.users.get(signed_in.user).await {
        Ok(Some(user)) => Ok(user),
        _ => Err(found("/login?next=/account")),
    }
}

/// The account page's name form.
#[derive(Deserialize)]
pub struct NameForm {
    name: String,
}

/// `POST /account/name`: the signed-in person renames themselves (the same checks as
/// the mini program's nickname).
pub async fn rename(
    State(st): State<AppState>,
    web: WebSession,
    who: Caller,
    headers: HeaderMap,
    form: Result<Form<NameForm>, FormRejection>,
) -> Response {
    let lang = request_lang(&headers);
    let user = match account_user(&st, &web, &headers).await {
        Ok(u) => u,
        Err(res) => return res,
    };
    let refuse = |e: &AppError| account_refusal(lang, e);
    let Ok(Form(f)) = form else { return refuse(&ErrorCode::BadRequest.into()) };
    match crate::server::people::set_nickname(&st, &user, &f.name, &who).await {
        Ok(_) => found("/account"),
        Err(e) => refuse(&e),
    }
}

/// The account page's form that withdraws a site's permission.
#[derive(Deserialize)]
pub struct RevokeApp {
    client: String,
}

/// `POST /account/apps/revoke`: the site must ask again, and what it holds for the person
/// (its tokens) ends.
pub async fn revoke_app(
    State(st): State<AppState>,
    web: WebSession,
    who: Caller,
    headers: HeaderMap,
    form: Result<Form<RevokeApp>, FormRejection>,
) -> Response {
    let lang = request_lang(&headers);
    let signed_in = match account_form(&st, &web, &headers).await {
        Ok(s) => s,
        Err(res) => return res,
    };
    let refuse = |e: &AppError| account_refusal(lang, e);
    let (Ok(Form(f)), Some(p)) = (form, &st.oidc) else { return refuse(&ErrorCode::BadRequest.into()) };
    match p.store.revoke_consent(signed_in.user, &f.client).await {
        Ok(_) => {
            st.audit.record(st.clock.now(), crate::server::audit::Kind::OidcConsentRevoked, Some(signed_in.user), &who, &f.client).await;
            found("/account")
        }
        Err(e) => refuse(&AppError::internal(e)),
    }
}
