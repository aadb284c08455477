//! Who is calling: the client's IP (behind trusted proxies, from `X-Forwarded-For`) and
//! its User-Agent. One extractor builds it for every endpoint; a ticket keeps the
//! creating browser's as its origin, shown on the phone.

use crate::server::state::AppState;
use axum::extract::{ConnectInfo, FromRef, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};

/// The client of the request being served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// Client IP, or `unknown` when the socket's peer is not known (oneshot tests).
    pub ip: String,
    /// User-Agent, at most 300 characters.
    pub user_agent: String,
}

/// The client behind trusted proxies: the rightmost `X-Forwarded-For` entry that is not
/// itself a trusted proxy (entries further left are whatever the client claimed).
pub fn forwarded_client(headers: &HeaderMap, trusted: &[IpAddr]) -> Option<IpAddr> {
    let hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    hops.into_iter().rev().find(|ip| !trusted.contains(ip))
}

impl Caller {
    /// Reads the caller from a request: the socket's peer, unless it is a trusted proxy;
    /// then `X-Forwarded-For` says who is behind it.
    pub fn of(parts: &Parts, trusted: &[IpAddr]) -> Caller {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
        let ip = match peer {
            Some(p) if trusted.contains(&p) => forwarded_client(&parts.headers, trusted).unwrap_or(p).to_string(),
            Some(p) => p.to_string(),
            None => "unknown".into(),
        };
        let user_agent =
            parts.headers.get(axum::http::header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("").chars().take(300).collect();
        Caller { ip, user_agent }
    }
}

impl Caller {
    /// The caller of the request a server function is serving.
    pub async fn current(st: &AppState) -> Result<Caller, crate::error::AppError> {
        leptos_axum::extract_with_state::<Caller, AppState>(st).await.map_err(crate::error::AppError::internal)
    }
}

impl<S> FromRequestParts<S> for Caller
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Infallible> {
        let st = AppState::from_ref(state);
        Ok(Caller::of(parts, &st.site.trusted_proxies))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_is_read_from_the_right_past_trusted_hops() {
        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", "6.6.6.6, 1.2.3.4".parse().unwrap());
        h.append("x-forwarded-for", "10.0.0.2".parse().unwrap());
        let trusted: Vec<IpAddr> = vec!["10.0.0.2".parse().unwrap()];
        assert_eq!(forwarded_client(&h, &trusted), Some("1.2.3.4".parse().unwrap()));
        assert_eq!(forwarded_client(&HeaderMap::new(), &trusted), None);
    }
}
