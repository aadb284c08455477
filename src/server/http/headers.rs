//! Headers: the request id's name, the assets' caching and the security headers.

use crate::server::state::AppState;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

/// The request-id header (a name of its own, built once: none parsed per request).
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The value of the request's cookie `name`, from any of its `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(name)?.strip_prefix('='))
}

/// Caching of the built assets (`/pkg/…`: WASM, JS, CSS): with hashed file names
/// (`LEPTOS_HASH_FILES`, release builds) a name never changes content, so a year and
/// `immutable`; without, browsers revalidate each time (`no-cache`, answered 304 by the
/// file server when unchanged).
pub async fn asset_caching(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let asset = req.uri().path().starts_with(&format!("/{}/", st.leptos.site_pkg_dir));
    let mut res = next.run(req).await;
    if asset && res.status().is_success() {
        let policy = if st.leptos.hash_files { "public, max-age=31536000, immutable" } else { "no-cache" };
        res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static(policy));
    }
    res
}

/// No framing (the QR cannot be shown inside another site), no MIME sniffing, no
/// referrer leaking to other origins; a strict policy for what is not a page; pages
/// (signed-in ones above all) never cached; HSTS when the site is https (`secure`).
/// Set on every answer a browser reads, by [`super::edge::Edge`].
pub fn security_headers(h: &mut HeaderMap, secure: bool) {
    // Room for what follows at once: growing the map header by header showed in a
    // login's profile.
    h.reserve(7);
    let html = h.get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
    if html && !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if secure {
        h.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000; includeSubDomains"));
    }
    // The http crate's own names: no name parsed per answer.
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // Pages set their own policy (with the script nonce); everything else gets this one.
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; object-src 'none'",
            ),
        );
    }
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
}
