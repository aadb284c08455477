//! The relying parties, from the TOML file named by `OIDC_CLIENTS` (read at start):
//!
//! ```toml
//! [[client]]
//! id = "grafana"
//! name = "Grafana"                      # shown on the login page and the phone
//! secret = "…"                          # or secret_file = "…", or secret_sha256 = "<hex>"; none → public client (PKCE required)
//! redirect_uris = ["https://grafana.example.com/login/generic_oauth"]
//! post_logout_redirect_uris = ["https://grafana.example.com/login"]
//! allow = ["group:ops", "admins"]       # who may sign in to it (server::access); none: any active user
//! require_email = true                  # no code until the person has a verified email (apps that insist on one)
//! ```

use crate::server::tokens::constant_time_eq;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientsFile {
    #[serde(default)]
    client: Vec<ClientEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientEntry {
    id: String,
    name: String,
    secret: Option<String>,
    secret_file: Option<PathBuf>,
    /// The SHA-256 (hex) of the secret, so the file holds no usable secret: for a secret
    /// of at least 128 random bits (`openssl rand -hex 32`), where a salted slow hash adds
    /// nothing.
    secret_sha256: Option<String>,
    redirect_uris: Vec<String>,
    #[serde(default)]
    post_logout_redirect_uris: Vec<String>,
    allow: Option<Vec<toml::Spanned<String>>>,
    /// `sub` = the scanlogin user id, as before pairwise subjects: for a client that already
    /// knows its people by it (turning it off there would make everyone a new account).
    #[serde(default)]
    legacy_subject: bool,
    /// The client refuses people without an email (Grafana, Gitea …): a person without a
    /// verified one is sent to add it before a code is issued.
    #[serde(default)]
    require_email: bool,
}

/// One relying party.
#[derive(Debug)]
pub struct Client {
    pub id: String,
    /// Shown to people: "登录到 {name}".
    pub name: String,
    /// `None`: a public client, which must use PKCE (S256).
    secret: Option<ClientSecret>,
    /// Compared exactly with `redirect_uri`.
    pub redirect_uris: Vec<String>,
    /// Compared exactly with `post_logout_redirect_uri`.
    pub post_logout_redirect_uris: Vec<String>,
    /// Who may sign in to it.
    pub allow: crate::server::access::Policy,
    /// `sub` is the user id (an upgrade's compatibility), not the pairwise subject.
    pub legacy_subject: bool,
    /// No code for a person without a verified email: they add one first.
    pub require_email: bool,
}

impl Client {
    /// A client without a secret: it proves itself by PKCE alone.
    pub fn is_public(&self) -> bool {
        self.secret.is_none()
    }

    /// True when `given` is this client's secret (constant time).
    pub fn secret_matches(&self, given: &str) -> bool {
        match &self.secret {
            Some(ClientSecret::Plain(s)) => constant_time_eq(s.expose_secret(), given),
            Some(ClientSecret::Sha256(hex)) => constant_time_eq(hex, &sha256_hex(given)),
            None => false,
        }
    }
}

/// How a client's secret is kept.
enum ClientSecret {
    Plain(SecretString),
    /// Lowercase hex of its SHA-256.
    Sha256(String),
}

impl std::fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ClientSecret::Plain(_) => "Plain(..)",
            ClientSecret::Sha256(_) => "Sha256(..)",
        })
    }
}

fn sha256_hex(s: &str) -> String {
    use sha2::Digest as _;
    crate::server::tokens::hex(&sha2::Sha256::digest(s.as_bytes()))
}

/// All relying parties, by id.
#[derive(Debug, Default)]
pub struct Clients(HashMap<String, Client>);

impl Clients {
    /// Every client, for `check-config`.
    pub fn iter(&self) -> impl Iterator<Item = &Client> {
        self.0.values()
    }

    /// The client `id`.
    pub fn get(&self, id: &str) -> Option<&Client> {
        self.0.get(id)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Reads and checks the file: ids unique and non-empty, redirect URIs absolute
    /// http(s) URLs without a fragment, secrets from the file or inline, not both.
    pub fn load(path: &Path) -> Result<Clients, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read OIDC_CLIENTS {}: {e}", path.display()))?;
        Clients::parse(&text, path.parent().unwrap_or(Path::new(".")))
    }

    fn parse(text: &str, dir: &Path) -> Result<Clients, String> {
        let file: ClientsFile = toml::from_str(text).map_err(|e| format!("OIDC_CLIENTS: {e}"))?;
        let mut clients = HashMap::new();
        for c in file.client {
            if c.id.trim().is_empty() || c.name.trim().is_empty() {
                return Err("OIDC_CLIENTS: every client needs an id and a name".into());
            }
            let given = [c.secret.is_some(), c.secret_file.is_some(), c.secret_sha256.is_some()].iter().filter(|g| **g).count();
            if given > 1 {
                return Err(format!("OIDC_CLIENTS: client {}: one of secret, secret_file and secret_sha256, not several", c.id));
            }
            if let Some(hex) = &c.secret_sha256
                && (hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()))
            {
                return Err(format!("OIDC_CLIENTS: client {}: secret_sha256 must be 64 hex digits (`printf %s SECRET | sha256sum`)", c.id));
            }
            let secret = match (c.secret, c.secret_file) {
                (Some(_), Some(_)) => unreachable!("refused above"),
                (Some(s), None) => Some(s),
                (None, Some(f)) => {
                    let f = if f.is_absolute() { f } else { dir.join(f) };
                    Some(
                        std::fs::read_to_string(&f)
                            .map_err(|e| format!("client {}: cannot read {}: {e}", c.id, f.display()))?
                            .trim()
                            .to_string(),
                    )
                }
                (None, None) => None,
            };
            if secret.as_deref().is_some_and(|s| s.len() < 16) {
                return Err(format!("OIDC_CLIENTS: client {}: a secret needs at least 16 characters", c.id));
            }
            if c.redirect_uris.is_empty() {
                return Err(format!("OIDC_CLIENTS: client {}: no redirect_uris", c.id));
            }
            for uri in c.redirect_uris.iter().chain(&c.post_logout_redirect_uris) {
                let ok = url::Url::parse(uri).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.fragment().is_none());
                if !ok {
                    return Err(format!("OIDC_CLIENTS: client {}: {uri:?} is not an absolute http(s) URL without a fragment", c.id));
                }
                // RFC 8252 §7.3 / RFC 9700: plain http only back to this machine.
                let loopback = |u: &url::Url| matches!(u.host_str(), Some("127.0.0.1" | "[::1]" | "localhost"));
                if url::Url::parse(uri).is_ok_and(|u| u.scheme() == "http" && !loopback(&u)) {
                    return Err(format!(
                        "OIDC_CLIENTS: client {}: {uri:?} is plain http to another machine (https, or http to loopback only)",
                        c.id
                    ));
                }
            }
            let allow = crate::server::access::parse_allow(&c.allow, text, "OIDC_CLIENTS")?;
            let client = Client {
                legacy_subject: c.legacy_subject,
                require_email: c.require_email,
                allow,
                id: c.id.clone(),
                name: c.name,
                secret: match c.secret_sha256 {
                    Some(hex) => Some(ClientSecret::Sha256(hex.to_ascii_lowercase())),
                    None => secret.map(|s| ClientSecret::Plain(SecretString::from(s))),
                },
                redirect_uris: c.redirect_uris,
                post_logout_redirect_uris: c.post_logout_redirect_uris,
            };
            if clients.insert(c.id.clone(), client).is_some() {
                return Err(format!("OIDC_CLIENTS: client id {} appears twice", c.id));
            }
        }
        Ok(Clients(clients))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clients_file_is_read_and_checked() {
        let ok = r#"
            [[client]]
            id = "grafana"
            name = "Grafana"
            secret = "0123456789abcdef0123"
            redirect_uris = ["https://grafana.example.com/login/generic_oauth"]
            post_logout_redirect_uris = ["https://grafana.example.com/login"]

            [[client]]
            id = "spa"
            name = "单页应用"
            redirect_uris = ["http://127.0.0.1:8080/cb"]
        "#;
        let c = Clients::parse(ok, Path::new(".")).unwrap();
        assert_eq!(c.len(), 2);
        let g = c.get("grafana").unwrap();
        assert!(!g.is_public() && g.secret_matches("0123456789abcdef0123") && !g.secret_matches("nope"));
        assert!(c.get("spa").unwrap().is_public());
        assert!(!format!("{g:?}").contains("0123456789abcdef0123"), "secrets stay out of Debug");
        for bad in [
            r#"[[client]]
               id = "a"
               name = "A"
               redirect_uris = ["http://app.example.com/cb"]"#,
            r#"[[client]]
               id = "a"
               name = "A"
               redirect_uris = ["/relative"]"#,
            r#"[[client]]
               id = "a"
               name = "A"
               redirect_uris = ["https://x.example/cb#frag"]"#,
            r#"[[client]]
               id = "a"
               name = "A"
               secret = "short"
               redirect_uris = ["https://x.example/cb"]"#,
            r#"[[client]]
               id = "a"
               name = "A"
               redirect_uris = []"#,
            r#"[[client]]
               id = "a"
               name = "A"
               redirect_uri = ["https://x.example/cb"]"#,
        ] {
            assert!(Clients::parse(bad, Path::new(".")).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_hashed_secret_matches_only_its_secret_and_the_file_holds_no_usable_one() {
        // printf %s 'correct horse battery staple 42' | sha256sum
        let hex = sha256_hex("correct horse battery staple 42");
        let text = format!(
            r#"[[client]]
               id = "gitea"
               name = "Gitea"
               secret_sha256 = "{}"
               redirect_uris = ["https://git.example.com/cb"]"#,
            hex.to_uppercase()
        );
        let c = Clients::parse(&text, Path::new(".")).unwrap();
        let g = c.get("gitea").unwrap();
        assert!(!g.is_public());
        assert!(g.secret_matches("correct horse battery staple 42"));
        assert!(!g.secret_matches(&hex), "the hash itself is not the secret");
        assert!(!g.secret_matches("correct horse battery staple 43"));
        for bad in [
            format!("secret_sha256 = \"{}\"", &hex[..63]),
            "secret_sha256 = \"zz\"".to_string(),
            format!("secret_sha256 = \"{hex}\"\nsecret = \"0123456789abcdef0123\""),
        ] {
            let text = format!("[[client]]\nid = \"a\"\nname = \"A\"\n{bad}\nredirect_uris = [\"https://x.example/cb\"]");
            assert!(Clients::parse(&text, Path::new(".")).is_err(), "{bad}");
        }
    }
}
