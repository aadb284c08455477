//! Forward-auth for reverse proxies (nginx `auth_request`, Traefik `forwardAuth`, Caddy
//! `forward_auth`): the proxy asks `GET /auth/verify` before every request to a
//! protected app; a signed-in browser gets 200 and the user in headers, anyone else 401
//! with the way to our login page. After the scan the person lands back where they were
//! going, but only on hosts in `FORWARD_AUTH_DOMAINS`.

use crate::server::handoff::Handoff;
use crate::server::session::WebSession;
use crate::server::state::AppState;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

/// The longest `rd` accepted.
const MAX_RD: usize = 2048;

/// `/auth/return`, a page of the site like the others.
pub fn router() -> axum::Router<AppState> {
    axum::Router::new().route("/auth/return", axum::routing::get(back)).route("/auth/denied", axum::routing::get(denied))
}

/// `/auth/verify`, which answers the proxy rather than a browser, before every request
/// of every protected app: mounted with the session layer only (no page to frame, no
/// body to compress; see `http::router`).
pub fn verify_router() -> axum::Router<AppState> {
    axum::Router::new().route("/auth/verify", axum::routing::get(verify))
}

/// True when `host` is one of `domains` or below one of them on a dot boundary
/// (`app.example.com` under `example.com`; never `evilexample.com`).
pub fn host_allowed(host: &str, domains: &[String]) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    !host.is_empty()
        && domains.iter().any(|d| {
            let d = d.trim_start_matches('.').trim_end_matches('.').to_ascii_lowercase();
            !d.is_empty() && (host == d || host.strip_suffix(&d).is_some_and(|rest| rest.ends_with('.')))
        })
}

/// `rd` as a URL we may send a browser to: absolute http(s), no userinfo, a host in
/// `domains`, at most [`MAX_RD`] bytes; with `strict` (`FORWARD_AUTH_STRICT_RETURN`, on
/// when `PUBLIC_URL` is https), https on the default port only. Anything else is refused,
/// never followed.
pub fn safe_return(rd: &str, domains: &[String], strict: bool) -> Option<url::Url> {
    if rd.len() > MAX_RD || rd.chars().any(|c| c.is_control() || c == '\\') {
        return None;
    }
    let url = url::Url::parse(rd).ok()?;
    let plain = matches!(url.scheme(), "http" | "https") && url.username().is_empty() && url.password().is_none();
    // `Url::port` is `None` for the scheme's default port, written or not.
    let strict_ok = !strict || (url.scheme() == "https" && url.port().is_none());
    (plain && strict_ok && host_allowed(url.host_str()?, domains)).then_some(url)
}

/// The URL the proxy was asked for: `X-Original-URL` (nginx), else
/// `X-Forwarded-Proto` + `X-Forwarded-Host` + `X-Forwarded-Uri` (Traefik, Caddy).
fn original_url(headers: &HeaderMap) -> Option<String> {
    let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    h("x-original-url").or_else(|| {
        let proto = h("x-forwarded-proto").unwrap_or_else(|| "https".into());
        Some(format!("{proto}://{}{}", h("x-forwarded-host")?, h("x-forwarded-uri").unwrap_or_else(|| "/".into())))
    })
}

#[derive(Deserialize)]
struct VerifyQuery {
    /// `1`: answer an anonymous browser with 302 to the login page instead of 401 (for
    /// proxies that hand the answer to the browser as is: Traefik, Caddy).
    redirect: Option<String>,
}

/// `GET /auth/verify`.
async fn verify(
    State(st): State<AppState>,
    Query(q): Query<VerifyQuery>,
    web: WebSession,
    caller: crate::server::caller::Caller,
    headers: HeaderMap,
) -> Response {
    let signed_in = match web.signed_in_now(&st).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = ?e, "forward-auth: the session store failed; refusing");
            None
        }
    };
    let user = match signed_in {
        Some(who) => match st.users.cached(who.user).await {
            Ok(u) => u,
            Err(e) => {
                tracing::error!(error = %e, "forward-auth: the user store failed; refusing");
                return StatusCode::SERVICE_UNAVAILABLE.into_response();
            }
        },
        None => None,
    };
    if let Some(user) = user {
        return decide(&st, &q, &caller, &headers, user).await;
    }
    let mut login = format!("{}/login", st.site.public_url);
    if let Some(rd) = original_url(&headers).filter(|rd| safe_return(rd, &st.site.forward_auth_domains, st.site.strict_return).is_some()) {
        login = format!("{}{}", st.site.public_url, Handoff::forward_auth(&rd).login_url());
    }
    let status = if q.redirect.as_deref() == Some("1") { StatusCode::FOUND } else { StatusCode::UNAUTHORIZED };
    let mut res = status.into_response();
    if let Ok(v) = HeaderValue::from_str(&login) {
        res.headers_mut().insert(header::LOCATION, v.clone());
        res.headers_mut().insert("x-redirection-url", v);
    }
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// A signed-in user at the proxy's door: the rule of the host asked for decides. Admitted:
/// 200 and who they are in headers. Refused: 403 (with `?redirect=1` a 302, and always
/// `X-Redirection-URL`) to our page that says which site and why, and an audit line
/// naming the site and the rule.
async fn decide(
    st: &AppState,
    q: &VerifyQuery,
    caller: &crate::server::caller::Caller,
    headers: &HeaderMap,
    user: crate::server::users::User,
) -> Response {
    let host = original_url(headers).and_then(|u| url::Url::parse(&u).ok()?.host_str().map(str::to_string));
    let rules = st.rules();
    let domains = &st.site.forward_auth_domains;
    let verdict = match &host {
        // A host outside FORWARD_AUTH_DOMAINS is no site of ours to let anyone into.
        Some(h) if !domains.is_empty() && !host_allowed(h, domains) => Err(format!("{h}: outside FORWARD_AUTH_DOMAINS")),
        Some(h) => {
            let (policy, rule) = rules.for_host(h);
            policy.check(&user).map_err(|why| {
                let rule = rule.map(|r| format!(" [rule {r}]")).unwrap_or_else(|| " [default rule]".into());
                format!("{}{rule}", crate::server::access::refusal_detail(h, why, policy))
            })
        }
        None => rules.default.check(&user).map_err(|why| crate::server::access::refusal_detail("?", why, &rules.default)),
    };
    if let Err(detail) = verdict {
        st.audit.record(st.clock.now(), crate::server::audit::Kind::AccessDenied, Some(user.id), caller, &detail).await;
        let site = host.unwrap_or_default();
        let page = format!(
            "{}/auth/denied?site={}",
            st.site.public_url,
            percent_encoding::utf8_percent_encode(&site, percent_encoding::NON_ALPHANUMERIC)
        );
        let status = if q.redirect.as_deref() == Some("1") { StatusCode::FOUND } else { StatusCode::FORBIDDEN };
        let mut res = status.into_response();
        if let Ok(v) = HeaderValue::from_str(&page) {
            res.headers_mut().insert(header::LOCATION, v.clone());
            res.headers_mut().insert("x-redirection-url", v);
        }
        res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return res;
    }
    let mut res = StatusCode::OK.into_response();
    let h = res.headers_mut();
    let id = HeaderValue::from(user.id.0);
    h.insert("remote-user", id.clone());
    h.insert("x-auth-request-user", id);
    // Header values are bytes; the proxy passes the UTF-8 name on unchanged. Groups are
    // always sent (empty too), so a proxy that copies them replaces whatever the client
    // wrote.
    if let Ok(v) = HeaderValue::from_bytes(user.name.as_bytes()) {
        h.insert("remote-name", v);
    }
    let groups = HeaderValue::from_str(&crate::server::users::join_groups(&user.groups)).unwrap_or(HeaderValue::from_static(""));
    h.insert("remote-groups", groups.clone());
    h.insert("x-auth-request-groups", groups);
    // The verified email, for apps that want one; empty without, like the groups.
    let email = user.email.as_deref().and_then(|e| HeaderValue::from_str(e).ok()).unwrap_or(HeaderValue::from_static(""));
    h.insert("remote-email", email.clone());
    h.insert("x-auth-request-email", email);
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

#[derive(Deserialize)]
struct Denied {
    site: Option<String>,
}

/// `GET /auth/denied?site=…`: "你没有访问 grafana.example.com 的权限 — 请联系管理员", with who
/// is signed in and a way to sign out (to try as someone else).
async fn denied(State(st): State<AppState>, web: WebSession, headers: HeaderMap, Query(q): Query<Denied>) -> Response {
    use crate::server::http::esc;
    let lang = crate::server::error::request_lang(&headers);
    let t = lang.people();
    let site: String = q.site.unwrap_or_default().chars().filter(|c| !c.is_control()).take(253).collect();
    let who = match web.signed_in_now(&st).await {
        Ok(Some(s)) => st.users.cached(s.user).await.ok().flatten(),
        _ => None,
    };
    let mut body = format!("<p data-testid=\"denied\">{}</p>", esc(&t.denied_body.replace("{site}", &site)));
    if let Some(u) = who {
        let why = match u.status {
            crate::domain::UserStatus::Pending => Some(t.pending_site),
            crate::domain::UserStatus::Disabled => Some(t.disabled_site),
            crate::domain::UserStatus::Active => None,
        };
        if let Some(why) = why {
            body.push_str(&format!("<p>{}</p>", esc(why)));
        }
        body.push_str(&format!(
            "<p>{} <b>{}</b> (#{})</p><form method=\"post\" action=\"/logout\"><button type=\"submit\">{}</button></form>",
            esc(t.signed_in_as),
            esc(&u.name),
            u.id,
            esc(t.sign_out)
        ));
    }
    crate::server::http::message_page(StatusCode::FORBIDDEN, lang.tag(), t.denied_title, &body)
}

#[derive(Deserialize)]
struct Back {
    rd: Option<String>,
}

/// `GET /auth/return?rd=…`: where the login page sends the person after the scan.
async fn back(State(st): State<AppState>, Query(q): Query<Back>) -> Response {
    match q.rd.as_deref().and_then(|rd| safe_return(rd, &st.site.forward_auth_domains, st.site.strict_return)) {
        Some(url) => crate::server::http::found(url.as_str()),
        None => crate::server::http::message_page(
            StatusCode::BAD_REQUEST,
            "zh-CN",
            "跳转地址无效 · Refused redirect",
            "<p><a href=\"/account\">我的账号 · My account</a></p>",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_match_on_a_dot_boundary() {
        let d = vec!["example.com".to_string()];
        assert!(host_allowed("example.com", &d));
        assert!(host_allowed("app.example.com", &d));
        assert!(host_allowed("A.B.Example.COM.", &d));
        assert!(!host_allowed("evilexample.com", &d));
        assert!(!host_allowed("example.com.evil.net", &d));
        assert!(!host_allowed("", &d));
        assert!(!host_allowed("example.com", &[]));
    }

    #[test]
    fn return_urls_are_refused_unless_plainly_ours() {
        let d = vec!["example.com".to_string()];
        assert!(safe_return("https://grafana.example.com/d/abc?x=1", &d, false).is_some());
        for bad in [
            "https://evil.example/",
            "javascript:alert(1)",
            "//grafana.example.com/",
            "/relative",
            "https://user:pw@grafana.example.com/",
            "https://grafana.example.com\\@evil.example/",
            "https://evil.example#.example.com",
            "https://evil.example/?.example.com",
            "ftp://grafana.example.com/",
            "https://grafana.example.com/\n",
        ] {
            assert!(safe_return(bad, &d, false).is_none(), "{bad}");
        }
        let long = format!("https://grafana.example.com/{}", "a".repeat(MAX_RD));
        assert!(safe_return(&long, &d, false).is_none(), "over-long");
    }

    #[test]
    fn a_strict_return_is_https_on_the_default_port() {
        let d = vec!["example.com".to_string()];
        for ok in ["https://grafana.example.com/d/abc", "https://grafana.example.com:443/d/abc"] {
            assert!(safe_return(ok, &d, true).is_some(), "{ok}");
        }
        for bad in ["http://grafana.example.com/", "https://grafana.example.com:8443/", "http://grafana.example.com:80/"] {
            assert!(safe_return(bad, &d, true).is_none(), "{bad}");
            assert!(safe_return(bad, &d, false).is_some(), "{bad} is fine when not strict");
        }
    }
}
