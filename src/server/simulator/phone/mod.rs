//! The simulated phone: a page that looks and behaves like the mini program's login
//! page, for demo mode. It calls the same `/api/mp/*` endpoints the mini program calls;
//! `wx.login()` is played by `/_wechat/sim/wx-login`.

use axum::http::header;
use axum::response::{Html, IntoResponse, Response};

/// `GET /_wechat/phone?scene=…` (or `?path=pages/login/index?scene=…`).
pub async fn page() -> Html<&'static str> {
    Html(PAGE)
}

/// The page's script (a file, not inline, so a strict CSP can apply).
pub async fn script() -> Response {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], SCRIPT).into_response()
}

/// The page's style.
pub async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response()
}

const PAGE: &str = include_str!("index.html");
const SCRIPT: &str = include_str!("phone.js");
const STYLE: &str = include_str!("phone.css");
