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
    /// Client IP; `None` when the socket's peer is not known (a request served without a
    /// socket, e.g. `oneshot` tests).
    pub ip: Option<IpAddr>,
    /// User-Agent, at most 300 characters.
    pub user_agent: String,
}

/// One `X-Forwarded-For` entry: an IP, with or without a port (`1.2.3.4:5678`,
/// `[2001:db8::1]:443`), IPv4-mapped IPv6 read as IPv4.
fn parse_hop(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    let ip = entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| entry.strip_prefix('[').and_then(|e| e.strip_suffix(']')).and_then(|e| e.parse().ok()))?;
    Some(ip.to_canonical())
}

/// True when `ip` is one of the trusted proxies (IPv4-mapped peers match IPv4 entries).
fn is_trusted(ip: IpAddr, trusted: &[IpAddr]) -> bool {
    let ip = ip.to_canonical();
    trusted.iter().any(|t| t.to_canonical() == ip)
}

/// The client behind a trusted proxy `peer`: walk `X-Forwarded-For` from the right
/// past trusted proxies; the first entry that is not one is the client. An entry that
/// does not parse stops the walk: everything left of it is the client's own writing,
/// so the last trusted hop is the best we know.
pub fn forwarded_client(headers: &HeaderMap, peer: IpAddr, trusted: &[IpAddr]) -> IpAddr {
    let entries: Vec<&str> = headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).collect();
    let mut client = peer.to_canonical();
    for entry in entries.into_iter().rev() {
        let Some(hop) = parse_hop(entry) else { break };
        client = hop;
        if !is_trusted(hop, trusted) {
            break;
        }
    }
    client
}

impl Caller {
    /// Reads the caller from a request: the socket's peer, unless it is a trusted proxy;
    /// then `X-Forwarded-For` says who is behind it.
    pub fn of(parts: &Parts, trusted: &[IpAddr]) -> Caller {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_canonical());
        let ip = peer.map(|p| if is_trusted(p, trusted) { forwarded_client(&parts.headers, p, trusted) } else { p });
        // Kept as sent (for the login history); only ever shown through a browser parser.
        let user_agent = parts
            .headers
            .get(axum::http::header::USER_AGENT)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).chars().take(300).collect())
            .unwrap_or_default();
        Caller { ip, user_agent }
    }
}

impl Caller {
    /// A caller nothing is known about (a logout that could not read its request).
    pub fn unknown() -> Caller {
        Caller { ip: None, user_agent: String::new() }
    }

    /// The IP as stored and shown: empty when unknown.
    pub fn ip_text(&self) -> String {
        self.ip.map(|ip| ip.to_string()).unwrap_or_default()
    }

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

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_for_is_read_from_the_right_past_trusted_hops() {
        let trusted = [ip("10.0.0.2"), ip("10.0.0.3")];
        let peer = ip("10.0.0.3");
        assert_eq!(forwarded_client(&xff(&["6.6.6.6, 1.2.3.4", "10.0.0.2"]), peer, &trusted), ip("1.2.3.4"));
        assert_eq!(forwarded_client(&HeaderMap::new(), peer, &trusted), peer, "no header: the proxy itself");
    }

    #[test]
    fn ports_brackets_and_mapped_addresses_are_understood() {
        let trusted = [ip("10.0.0.2")];
        let peer = ip("10.0.0.2");
        // Entries with ports were skipped once, making the attacker's entry the client.
        assert_eq!(forwarded_client(&xff(&["6.6.6.6, 1.2.3.4:5678"]), peer, &trusted), ip("1.2.3.4"));
        assert_eq!(forwarded_client(&xff(&["6.6.6.6, [2001:db8::1]:443"]), peer, &trusted), ip("2001:db8::1"));
        assert_eq!(forwarded_client(&xff(&["6.6.6.6, [2001:db8::1]"]), peer, &trusted), ip("2001:db8::1"));
        assert_eq!(forwarded_client(&xff(&["::ffff:1.2.3.4"]), peer, &trusted), ip("1.2.3.4"));
        assert!(is_trusted(ip("::ffff:10.0.0.2"), &trusted), "LISTEN=[::] gives IPv4-mapped peers");
    }

    #[test]
    fn an_entry_that_does_not_parse_stops_the_walk() {
        let trusted = [ip("10.0.0.2"), ip("10.0.0.3")];
        let peer = ip("10.0.0.3");
        // "junk" was written by the client: nothing left of it is believed.
        assert_eq!(forwarded_client(&xff(&["6.6.6.6, junk, 10.0.0.2"]), peer, &trusted), ip("10.0.0.2"));
        assert_eq!(forwarded_client(&xff(&["6.6.6.6, unknown"]), peer, &trusted), peer);
    }
}
