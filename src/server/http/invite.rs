//! Invitations in the browser: `/invite/<secret>` (who invites to what; signed out, the
//! way to the scan page and back; signed in, a same-site form that accepts it), and the
//! admin console's forms that make one (the answer shows the link once, as text and as a
//! QR, since an invitation is often passed phone to phone) and revoke one.

use super::{esc, found, message_page, refusal_page};
use crate::domain::GroupName;
use crate::error::{AppError, ErrorCode};
use crate::i18n::Lang;
use crate::server::caller::Caller;
use crate::server::error::request_lang;
use crate::server::handoff::Handoff;
use crate::server::http::api::check_same_site;
use crate::server::people;
use crate::server::session::WebSession;
use crate::server::state::AppState;
use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;

fn refusal(lang: Lang, e: &AppError) -> Response {
    refusal_page(lang, e, lang.people().invite_title, None)
}

/// "张三 邀请你加入（分组：ops, dev）".
async fn describe(st: &AppState, inv: &people::Invitation, lang: Lang) -> String {
    let t = lang.people();
    let inviter = st.users.cached(inv.created_by).await.ok().flatten().map(|u| u.name).unwrap_or_default();
    let groups = inv.groups.iter().map(GroupName::as_str).collect::<Vec<_>>().join(", ");
    let mut text = t.invite_body.replace("{who}", &inviter);
    if !groups.is_empty() {
        text.push_str(&t.invite_groups.replace("{groups}", &groups));
    }
    format!("<p data-testid=\"invite\">{}</p>", esc(&text))
}

/// `GET /invite/{secret}`.
pub async fn show(State(st): State<AppState>, web: WebSession, headers: HeaderMap, Path(secret): Path<String>) -> Response {
    let lang = request_lang(&headers);
    let t = lang.people();
    let now = st.clock.now();
    let inv = match people::invitation_by_secret(&st.db, &secret).await {
        Ok(Some(i)) if i.usable(now) => i,
        Ok(_) => return refusal(lang, &ErrorCode::LinkInvalid.into()),
        Err(e) => return refusal(lang, &AppError::internal(e)),
    };
    let mut body = describe(&st, &inv, lang).await;
    match web.signed_in(now, st.site.session_absolute).await {
        Ok(Some(_)) => body.push_str(&format!(
            "<form method=\"post\" action=\"/invite/{}\"><button type=\"submit\">{}</button></form>",
            esc(&secret),
            esc(t.invite_accept)
        )),
        Ok(None) => body.push_str(&format!("<p><a href=\"{}\">{}</a></p>", esc(&Handoff::invite(&secret).login_url()), esc(t.invite_scan))),
        Err(e) => return refusal(lang, &e),
    }
    message_page(StatusCode::OK, lang.tag(), t.invite_title, &body)
}

/// `POST /invite/{secret}`: the signed-in person accepts.
pub async fn accept(State(st): State<AppState>, web: WebSession, who: Caller, headers: HeaderMap, Path(secret): Path<String>) -> Response {
    let lang = request_lang(&headers);
    if let Err(e) = check_same_site(&headers, &st.site.public_url) {
        return refusal(lang, &e);
    }
    let signed_in = match web.signed_in_now(&st).await {
        Ok(Some(s)) => s,
        Ok(None) => return found(&Handoff::invite(&secret).login_url()),
        Err(e) => return refusal(lang, &e),
    };
    match people::redeem_invitation(&st, &secret, signed_in.user, &who).await {
        Ok(_) => found("/account"),
        Err(e) => refusal(lang, &e),
    }
}

/// The console's form that makes an invitation.
#[derive(Deserialize)]
pub struct NewInvitation {
    #[serde(default)]
    groups: String,
    max_uses: i64,
    days: u64,
}

/// `POST /admin/invite`: makes an invitation; the answer shows its link and QR once.
pub async fn create(
    State(st): State<AppState>,
    web: WebSession,
    who: Caller,
    headers: HeaderMap,
    form: Result<Form<NewInvitation>, FormRejection>,
) -> Response {
    let lang = request_lang(&headers);
    let actor = match console_admin(&st, &web, &headers, "/admin/invitations").await {
        Ok(a) => a,
        Err(res) => return res,
    };
    let Ok(Form(f)) = form else { return refusal(lang, &ErrorCode::BadRequest.into()) };
    let Ok(groups) = parse_groups(&f.groups) else { return refusal(lang, &ErrorCode::BadRequest.into()) };
    match people::create_invitation(&st, &actor, &who, groups, f.max_uses, f.days.saturating_mul(86_400)).await {
        Ok((secret, _)) => {
            let url = invite_url(&st, &secret);
            let t = lang.people();
            let body = format!(
                "<p>{}</p><p><input readonly size=\"60\" value=\"{u}\" data-testid=\"invite-url\"></p>\
                 <p><img alt=\"QR\" width=\"240\" height=\"240\" src=\"{qr}\" data-testid=\"invite-qr\"></p>\
                 <p><a href=\"/admin/invitations\">{}</a></p>",
                esc(t.invite_made),
                esc(lang.ui().admin_invitations),
                u = esc(&url),
                qr = qr_data_url(&url)
            );
            message_page(StatusCode::OK, lang.tag(), t.invite_title, &body)
        }
        Err(e) => refusal(lang, &e),
    }
}

/// The console's revoke button.
#[derive(Deserialize)]
pub struct RevokeInvitation {
    id: i64,
}

/// `POST /admin/invitation/revoke`.
pub async fn revoke(
    State(st): State<AppState>,
    web: WebSession,
    who: Caller,
    headers: HeaderMap,
    form: Result<Form<RevokeInvitation>, FormRejection>,
) -> Response {
    let lang = request_lang(&headers);
    let actor = match console_admin(&st, &web, &headers, "/admin/invitations").await {
        Ok(a) => a,
        Err(res) => return res,
    };
    let Ok(Form(f)) = form else { return refusal(lang, &ErrorCode::BadRequest.into()) };
    match people::revoke_invitation(&st, &actor, &who, f.id).await {
        Ok(()) => found("/admin/invitations"),
        Err(e) => refusal(lang, &e),
    }
}

/// The admin behind one of the console's forms: a same-site post from a signed-in active
/// admin; otherwise the answer to send (the scan page, back to `page`; or a refusal).
pub async fn console_admin(
    st: &AppState,
    web: &WebSession,
    headers: &HeaderMap,
    page: &str,
) -> Result<crate::server::users::User, Response> {
    let lang = request_lang(headers);
    let refuse = |e: &AppError| refusal_page(lang, e, lang.ui().admin_title, None);
    check_same_site(headers, &st.site.public_url).map_err(|e| refuse(&e))?;
    match people::require_admin(st, web).await {
        Ok(a) => Ok(a),
        Err(e) if e.code == ErrorCode::Unauthenticated => Err(found(&format!("/login?next={page}"))),
        Err(e) => Err(refuse(&e)),
    }
}

/// Group names as typed in a form: separated by commas or spaces.
pub fn parse_groups(text: &str) -> Result<Vec<GroupName>, crate::domain::Invalid> {
    text.split([',', ' ', '，']).map(str::trim).filter(|g| !g.is_empty()).map(GroupName::try_from).collect()
}

/// The link of the invitation `secret`.
pub fn invite_url(st: &AppState, secret: &str) -> String {
    format!("{}/invite/{secret}", st.site.public_url)
}

/// `text` as a PNG QR code, as a `data:` URL (the page's CSP allows `data:` images).
fn qr_data_url(text: &str) -> String {
    use base64::Engine as _;
    use image::ImageEncoder as _;
    let Ok(code) = qrcode::QrCode::new(text.as_bytes()) else { return String::new() };
    let img = code.render::<image::Luma<u8>>().min_dimensions(240, 240).build();
    let mut png = Vec::new();
    if image::codecs::png::PngEncoder::new(&mut png)
        .write_image(img.as_raw(), img.width(), img.height(), image::ExtendedColorType::L8)
        .is_err()
    {
        return String::new();
    }
    format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(png))
}
