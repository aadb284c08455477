//! The provider's requests, typed: an authorization request read from its query, and a
//! token request's client credentials and grant read from its form. Parsing checks what
//! can be checked without the database, in the order the RFCs want the errors.

use super::clients::{Client, Clients};
use super::error::{ClientRedirect, OidcError};
use crate::domain::UnixMillis;
use axum::http::{HeaderMap, StatusCode, header};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::Duration;

/// Longest `state` we keep and send back (clients use tens of characters; some encode a
/// return URL). Longer → `invalid_request`, so an anonymous request cannot park
/// kilobytes in the database.
pub const MAX_STATE: usize = 1024;
/// Longest `nonce`.
pub const MAX_NONCE: usize = 256;
/// Longest `scope`.
pub const MAX_SCOPE: usize = 256;

/// A checked authorization request: client and redirect URI registered, everything else
/// valid. Stored (as JSON) while the person scans; the field names are the stored form.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AuthorizeRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub scope: String,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub prompt: Option<String>,
}

/// The raw query of `GET /oidc/authorize`.
pub type AuthorizeQuery = HashMap<String, String>;

impl AuthorizeRequest {
    /// Reads `q` for one of `clients`. An unknown client or redirect URI is our own error
    /// page; every later error goes back to the client (with `iss` = `issuer`). Returns
    /// the request and the earliest login it accepts (`prompt=login`: from `now`;
    /// `max_age`: within that many seconds).
    pub fn parse(q: &AuthorizeQuery, clients: &Clients, issuer: &str, now: UnixMillis) -> Result<(Self, UnixMillis), OidcError> {
        let param = |k: &str| q.get(k).filter(|v| !v.is_empty()).cloned();
        let Some(client) = param("client_id").and_then(|id| clients.get(&id)) else {
            return Err(OidcError::Page { status: StatusCode::BAD_REQUEST, message: "未知的应用（client_id）。Unknown client." });
        };
        let Some(redirect_uri) = param("redirect_uri").filter(|r| client.redirect_uris.iter().any(|u| u == r)) else {
            return Err(OidcError::Page {
                status: StatusCode::BAD_REQUEST,
                message: "回调地址（redirect_uri）不在此应用的登记列表中。The redirect_uri is not registered for this client.",
            });
        };
        // An over-long state is not echoed back (that is the point of refusing it).
        let state = param("state");
        let state_ok = state.as_ref().is_none_or(|s| s.len() <= MAX_STATE);
        let req = AuthorizeRequest {
            client_id: client.id.clone(),
            redirect_uri,
            scope: param("scope").unwrap_or_default(),
            state: state.filter(|_| state_ok),
            nonce: param("nonce"),
            code_challenge: param("code_challenge"),
            prompt: param("prompt"),
        };
        let refuse = |error, description| Err(OidcError::Redirect(req.answer(issuer, error, description)));
        if !state_ok {
            return refuse("invalid_request", "state too long");
        }
        if q.contains_key("request") {
            return refuse("request_not_supported", "request objects are not supported");
        }
        if q.contains_key("request_uri") {
            return refuse("request_uri_not_supported", "request_uri is not supported");
        }
        if param("response_mode").is_some_and(|m| m != "query") {
            return refuse("invalid_request", "only response_mode=query");
        }
        match param("response_type").as_deref() {
            Some("code") => {}
            None => return refuse("invalid_request", "response_type missing"),
            Some(_) => return refuse("unsupported_response_type", "only response_type=code"),
        }
        if req.scope.len() > MAX_SCOPE {
            return refuse("invalid_scope", "scope too long");
        }
        if !req.scopes().any(|s| s == "openid") {
            return refuse("invalid_scope", "scope must include openid");
        }
        if req.nonce.as_ref().is_some_and(|n| n.len() > MAX_NONCE) {
            return refuse("invalid_request", "nonce too long");
        }
        match (param("code_challenge_method").as_deref(), &req.code_challenge) {
            (Some("S256"), Some(c)) if (43..=128).contains(&c.len()) => {}
            (None, None) if !client.is_public() => {}
            (None, None) => return refuse("invalid_request", "a public client must use PKCE (S256)"),
            (Some("plain") | None, Some(_)) => return refuse("invalid_request", "code_challenge_method must be S256"),
            _ => return refuse("invalid_request", "bad code_challenge"),
        }
        let max_age = match param("max_age").map(|m| m.parse::<i64>()) {
            None => None,
            Some(Ok(m)) if m >= 0 => Some(m),
            Some(_) => return refuse("invalid_request", "bad max_age"),
        };
        if req.prompts().any(|p| p == "none") && req.prompts().count() > 1 {
            return refuse("invalid_request", "prompt=none with other values");
        }
        if req.prompts().any(|p| p == "consent") {
            // Nothing here asks for consent yet: say so rather than pretend it was given.
            return refuse("consent_required", "consent cannot be asked for");
        }
        // prompt=login asks for a new scan whatever the session: only a login from now on
        // counts; max_age, only one within that many seconds of this request.
        let mut not_before = UnixMillis(0);
        if req.wants_login() {
            not_before = now;
        }
        if let Some(m) = max_age {
            not_before = not_before.max(now.minus(Duration::from_secs(u64::try_from(m).unwrap_or(0))));
        }
        Ok((req, not_before))
    }

    /// The requested scopes.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.split(' ').filter(|s| !s.is_empty())
    }

    fn prompts(&self) -> impl Iterator<Item = &str> {
        self.prompt.as_deref().unwrap_or_default().split(' ').filter(|s| !s.is_empty())
    }

    /// `prompt=login`: a new scan whatever the session.
    pub fn wants_login(&self) -> bool {
        self.prompts().any(|p| p == "login")
    }

    /// `prompt=none`: answer without showing anything.
    pub fn wants_none(&self) -> bool {
        self.prompts().any(|p| p == "none")
    }

    /// An error answer to this request's client.
    pub fn answer(&self, issuer: &str, error: &'static str, description: &'static str) -> ClientRedirect {
        self.redirect(issuer, vec![("error", error.to_string()), ("error_description", description.to_string())])
    }

    /// An answer to this request's client carrying `params` (plus `state` and `iss`).
    pub fn redirect(&self, issuer: &str, params: Vec<(&'static str, String)>) -> ClientRedirect {
        ClientRedirect { redirect_uri: self.redirect_uri.clone(), state: self.state.clone(), issuer: issuer.to_string(), params }
    }
}

/// What a `/token` request shows to authenticate its client: HTTP Basic, or
/// `client_id` (+ `client_secret`) in the body. A public client shows no secret.
#[derive(Clone)]
pub struct ClientCredentials {
    id: String,
    secret: Option<String>,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials").field("id", &self.id).field("secret", &self.secret.as_ref().map(|_| "…")).finish()
    }
}

/// The credentials of an `Authorization` header using `scheme` (case-insensitive, as
/// RFC 7235 says: clients send `Bearer` and `bearer` alike).
pub fn credentials<'a>(headers: &'a HeaderMap, scheme: &str) -> Option<&'a str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (given, rest) = value.split_once(' ')?;
    given.eq_ignore_ascii_case(scheme).then(|| rest.trim())
}

impl ClientCredentials {
    /// Basic first (RFC 6749 §2.3.1: form-urlencoded id and secret), else the form.
    pub fn from_request(headers: &HeaderMap, form: &HashMap<String, String>) -> Self {
        let basic = credentials(headers, "basic").and_then(|b| {
            use base64::Engine as _;
            let raw = base64::engine::general_purpose::STANDARD.decode(b.trim()).ok()?;
            let text = String::from_utf8(raw).ok()?;
            let (id, secret) = text.split_once(':')?;
            let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8().map(|c| c.into_owned()).ok();
            Some((decode(id)?, decode(secret)?))
        });
        match basic {
            Some((id, secret)) => ClientCredentials { id, secret: Some(secret) },
            None => {
                ClientCredentials { id: form.get("client_id").cloned().unwrap_or_default(), secret: form.get("client_secret").cloned() }
            }
        }
    }

    /// The client these credentials prove, if they do.
    pub fn authenticate<'c>(&self, clients: &'c Clients) -> Result<&'c Client, OidcError> {
        let client = clients.get(&self.id).ok_or_else(OidcError::invalid_client)?;
        match (client.is_public(), &self.secret) {
            (true, None) => Ok(client),
            (false, Some(s)) if client.secret_matches(s) => Ok(client),
            _ => Err(OidcError::invalid_client()),
        }
    }
}

/// A PKCE `code_verifier` as RFC 7636 §4.1 defines it: 43–128 characters of
/// `[A-Za-z0-9-._~]`.
#[derive(Clone)]
pub struct CodeVerifier(String);

impl CodeVerifier {
    /// Checks `s`; anything else is `invalid_request` (and never reaches the hashing).
    pub fn parse(s: &str) -> Result<Self, OidcError> {
        let ok = (43..=128).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
        if ok {
            Ok(CodeVerifier(s.to_string()))
        } else {
            Err(OidcError::invalid_token_request("code_verifier must be 43-128 characters of [A-Za-z0-9-._~]"))
        }
    }

    /// The S256 challenge this verifier answers.
    pub fn s256(&self) -> String {
        use base64::Engine as _;
        use sha2::Digest as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(self.0.as_bytes()))
    }
}

/// What a `/token` request asks for. Only the authorization code grant is offered.
#[derive(Clone)]
pub enum Grant {
    AuthorizationCode { code: String, redirect_uri: Option<String>, code_verifier: Option<CodeVerifier> },
}

impl Grant {
    /// Reads the grant from the token request's form.
    pub fn from_form(form: &HashMap<String, String>) -> Result<Self, OidcError> {
        match form.get("grant_type").map(String::as_str) {
            Some("authorization_code") => {
                let code = form.get("code").filter(|c| !c.is_empty()).ok_or(OidcError::invalid_token_request("code missing"))?;
                let code_verifier = form.get("code_verifier").map(|v| CodeVerifier::parse(v)).transpose()?;
                Ok(Grant::AuthorizationCode { code: code.clone(), redirect_uri: form.get("redirect_uri").cloned(), code_verifier })
            }
            _ => Err(OidcError::Token {
                status: StatusCode::BAD_REQUEST,
                error: "unsupported_grant_type",
                description: "only authorization_code",
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifiers_outside_rfc_7636_are_refused_before_hashing() {
        for bad in ["", "short", &"a".repeat(42), &"a".repeat(129), &format!("{}+", "a".repeat(43)), &format!("{} ", "a".repeat(43))] {
            assert!(CodeVerifier::parse(bad).is_err(), "{bad:?}");
        }
        // RFC 7636 appendix B.
        let v = CodeVerifier::parse("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk").unwrap();
        assert_eq!(v.s256(), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
        assert!(CodeVerifier::parse(&"~._-".repeat(32)).is_ok(), "128 characters of the allowed set");
    }
}
