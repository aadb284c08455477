//! Pure input rules: ticket ids, `next` targets, random tokens, masking.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// The longest ticket id that could ever be issued (WeChat's `scene` limit).
pub const MAX_TICKET_LEN: usize = 32;

/// `n` bytes from the OS CSPRNG, URL-safe base64 without padding.
pub fn random_token(n: usize) -> String {
    use rand::RngCore as _;
    let mut bytes = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A fresh ticket id: 128 bits, 22 characters of `[A-Za-z0-9_-]`, all inside WeChat's
/// `scene` charset.
pub fn new_ticket_id() -> String {
    random_token(16)
}

/// True when `id` could have been issued by [`new_ticket_id`] (charset and length):
/// anything else is a 400, not a 404.
pub fn is_plausible_ticket_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_TICKET_LEN
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// True when `scene` fits WeChat's rules: 1–32 visible characters of
/// `0-9A-Za-z!#$&'()*+,/:;=?@-._~`.
pub fn is_valid_scene(scene: &str) -> bool {
    const EXTRA: &[u8] = b"!#$&'()*+,/:;=?@-._~";
    !scene.is_empty()
        && scene.len() <= 32
        && scene.bytes().all(|b| b.is_ascii_alphanumeric() || EXTRA.contains(&b))
}

/// The default place to go after login.
pub const DEFAULT_NEXT: &str = "/account";

/// Checks a `next` target: only a same-site relative path (`/x`), never `//x`, `/\x`,
/// a scheme, control characters or anything over 512 bytes.
pub fn validate_next(next: &str) -> Option<&str> {
    let ok = next.len() <= 512
        && next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && !next.chars().any(|c| c.is_control() || c == '\\')
        && !next.contains("://");
    ok.then_some(next)
}

/// SHA-256 of a secret token, hex; tokens are stored only as hashes.
pub fn hash_token(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares two strings in time independent of where they differ.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Masks an openid for display: `oAbc…xyz9`.
pub fn mask_openid(openid: &str) -> String {
    let chars: Vec<char> = openid.chars().collect();
    if chars.len() <= 8 {
        return "…".to_string();
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}…{tail}")
}

/// A short description of a user agent: "Chrome 131 · Windows".
pub fn describe_browser(user_agent: &str) -> String {
    match woothee::parser::Parser::new().parse(user_agent) {
        Some(r) if r.name != "UNKNOWN" => {
            let major = r.version.split('.').next().unwrap_or("");
            let name = if major.is_empty() || major == "UNKNOWN" {
                r.name.to_string()
            } else {
                format!("{} {}", r.name, major)
            };
            if r.os == "UNKNOWN" { name } else { format!("{name} · {}", r.os) }
        }
        _ => {
            let short: String = user_agent.chars().take(40).collect();
            if short.is_empty() { "unknown".to_string() } else { short }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticket_ids_are_128_bit_scene_safe_and_distinct() {
        let a = new_ticket_id();
        let b = new_ticket_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 22);
        assert!(is_plausible_ticket_id(&a));
        assert!(is_valid_scene(&a));
    }

    #[test]
    fn implausible_ticket_ids() {
        for bad in ["", "a b", "abc%20", "ü", "a/b", &"a".repeat(33), "a.b"] {
            assert!(!is_plausible_ticket_id(bad), "{bad:?}");
        }
        assert!(is_plausible_ticket_id(&"a".repeat(32)));
    }

    #[test]
    fn scene_charset_and_length() {
        assert!(is_valid_scene("a=1&b=2"));
        assert!(is_valid_scene("!#$&'()*+,/:;=?@-._~"));
        assert!(!is_valid_scene("100%"));
        assert!(!is_valid_scene("a b"));
        assert!(!is_valid_scene(""));
        assert!(!is_valid_scene(&"x".repeat(33)));
        assert!(!is_valid_scene("中文"));
    }

    #[test]
    fn next_must_be_same_site_relative() {
        for good in ["/", "/account", "/a/b?c=d#e", "/%2F%2Fx"] {
            assert_eq!(validate_next(good), Some(good));
        }
        for bad in [
            "", "account", "//evil.com", "/\\evil.com", "https://evil.com", "javascript:alert(1)",
            "/a\\b", "/x\n", "/redirect?u=https://evil.com", &format!("/{}", "a".repeat(600)),
        ] {
            assert!(validate_next(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn masking_and_hashing() {
        assert_eq!(mask_openid("oAbcdefghijklmnxyz9"), "oAbc…xyz9");
        assert_eq!(mask_openid("short"), "…");
        assert_eq!(hash_token("abc").len(), 64);
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "ab"));
    }

    #[test]
    fn browser_descriptions() {
        let ua = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
        assert_eq!(describe_browser(ua), "Chrome 131 · Windows 10");
        assert_eq!(describe_browser(""), "unknown");
    }
}

#[cfg(all(test, feature = "test-support"))]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// The ticket-id check never panics, accepts only the issuable alphabet and
        /// length, and every accepted id is a valid WeChat scene.
        #[test]
        fn ticket_ids(s in "\\PC{0,40}") {
            if is_plausible_ticket_id(&s) {
                prop_assert!(!s.is_empty() && s.len() <= MAX_TICKET_LEN);
                prop_assert!(is_valid_scene(&s));
            }
        }

        /// Whatever `next` is accepted stays on this site: it is a path on the same
        /// origin once resolved against it.
        #[test]
        fn accepted_next_stays_on_site(s in "[/\\\\a-z:.%?#@ \t]{0,20}") {
            if validate_next(&s).is_some() {
                let base = url::Url::parse("https://site.example/").unwrap();
                let joined = base.join(&s).unwrap();
                prop_assert_eq!(joined.host_str(), Some("site.example"), "{} escaped", s);
                prop_assert_eq!(joined.scheme(), "https");
            }
        }
    }
}
