//! HTTP around the Leptos app: the outermost layer of every request ([`edge`]), the API
//! contract's checks ([`api`]), the pages' guards, policy and language switch
//! ([`pages`]), the headers answers carry ([`headers`]), health checks ([`health`]), and
//! the router that puts them together ([`router`]).

pub mod api;
pub mod edge;
pub mod email;
pub mod headers;
pub mod health;
pub mod invite;
pub mod link;
pub mod nojs;
pub mod pages;
pub mod profile;
pub mod router;
pub mod setup;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

/// A `302 Found` to a same-site path.
pub fn found(location: &str) -> Response {
    let mut res = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// Escapes text for HTML.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A refusal as a page of ours: the error's message in `lang` under `title`, with its
/// status, and a link `back` (where, and its words) when there is somewhere to go.
pub fn refusal_page(lang: crate::i18n::Lang, e: &crate::error::AppError, title: &str, back: Option<(&str, &str)>) -> Response {
    let status = StatusCode::from_u16(e.code.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let mut body = format!("<p>{}</p>", esc(e.code.message(lang)));
    if let Some((href, words)) = back {
        body.push_str(&format!("<p><a href=\"{}\">{}</a></p>", esc(href), esc(words)));
    }
    message_page(status, lang.tag(), title, &body)
}

/// A small HTML page of our own outside the Leptos app (refusals, the no-JavaScript
/// login's answers): `title` (text) and `body` (HTML the caller escaped), never cached.
pub fn message_page(status: StatusCode, lang: &str, title: &str, body: &str) -> Response {
    let page = format!(
        "<!DOCTYPE html><html lang=\"{lang}\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <title>{t}</title><link rel=\"stylesheet\" href=\"/message.css\"></head><body>\
         <h1>{t}</h1>{body}</body></html>",
        lang = esc(lang),
        t = esc(title)
    );
    let mut res = (status, Html(page)).into_response();
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}
