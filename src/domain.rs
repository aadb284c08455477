//! Values that come from outside, parsed once where they enter (parse, don't validate).
//!
//! Each type can only hold a value that passed its rules, and decodes with
//! `#[serde(try_from = "String")]`: a bad value fails while the request body is decoded
//! (400 `bad_request`), so no handler checks it again. The types are shared by the
//! server and the browser; the fuzz targets include this file by path, so it depends on
//! `serde` alone.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// A value that broke its type's rules (the detail is for logs and tests).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid(pub &'static str);

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Invalid {}

/// True for the URL-safe base64 alphabet our random ids and tokens are written in.
fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

macro_rules! string_newtype {
    ($(#[$meta:meta])* $name:ident, $check:expr) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The value as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = Invalid;
            fn try_from(s: String) -> Result<Self, Invalid> {
                let check: fn(&str) -> Result<(), Invalid> = $check;
                check(&s)?;
                Ok($name(s))
            }
        }

        impl TryFrom<&str> for $name {
            type Error = Invalid;
            fn try_from(s: &str) -> Result<Self, Invalid> {
                $name::try_from(s.to_string())
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

/// The longest ticket id that could ever be issued (WeChat's `scene` limit).
pub const MAX_TICKET_LEN: usize = 32;

string_newtype!(
    /// A login ticket's id, also the QR's `scene`: 1–32 characters of `[A-Za-z0-9_-]`.
    /// Anything else could never have been issued, so it is a 400, not a 404.
    TicketId,
    |s| {
        if s.is_empty() || s.len() > MAX_TICKET_LEN || !s.bytes().all(is_token_char) {
            return Err(Invalid("a ticket id is 1-32 characters of A-Z a-z 0-9 - _"));
        }
        Ok(())
    }
);

// Debug is written by hand for the secrets below so that they never reach a log.
impl fmt::Debug for TicketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TicketId({})", self.0)
    }
}

string_newtype!(
    /// The token the phone got from a scan; it proves to confirm / cancel that the
    /// caller is the scanner. Only its hash is stored.
    ConfirmToken,
    |s| {
        if s.is_empty() || s.len() > 64 || !s.bytes().all(is_token_char) {
            return Err(Invalid("a confirm token is 1-64 characters of A-Z a-z 0-9 - _"));
        }
        Ok(())
    }
);

string_newtype!(
    /// The secret that lets the page that created a ticket finalize it: returned once,
    /// with the ticket, held in the page's memory only. The server keeps its hash.
    FinalizeKey,
    |s| {
        if s.is_empty() || s.len() > 64 || !s.bytes().all(is_token_char) {
            return Err(Invalid("a finalize key is 1-64 characters of A-Z a-z 0-9 - _"));
        }
        Ok(())
    }
);

string_newtype!(
    /// The code from the mini program's `wx.login()`, spent once on `code2Session`.
    WxCode,
    |s| {
        if s.is_empty() || s.len() > 128 || !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Invalid("a wx.login code is 1-128 visible ASCII characters"));
        }
        Ok(())
    }
);

string_newtype!(
    /// Where the browser goes after login: a same-site path (`/x`), never `//x`, `/\x`,
    /// a scheme, control characters, or more than 512 bytes.
    NextPath,
    |s| {
        let ok = s.len() <= 512
            && s.starts_with('/')
            && !s.starts_with("//")
            && !s.chars().any(|c| c.is_control() || c == '\\')
            && !s.contains("://");
        if ok { Ok(()) } else { Err(Invalid("next must be a same-site path like /account")) }
    }
);

impl Default for NextPath {
    fn default() -> Self {
        NextPath(DEFAULT_NEXT.to_string())
    }
}

/// Where a browser goes after login when it did not say.
pub const DEFAULT_NEXT: &str = "/account";

impl fmt::Debug for ConfirmToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ConfirmToken(…)")
    }
}

impl fmt::Debug for FinalizeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FinalizeKey(…)")
    }
}

impl fmt::Debug for WxCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WxCode(…)")
    }
}

impl fmt::Debug for NextPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NextPath({})", self.0)
    }
}

string_newtype!(
    /// A group a user belongs to, named by the admin: 1–32 of `a-z 0-9 _ -`. Access rules
    /// and the `groups` claim speak of these.
    GroupName,
    |s| {
        let ok = (1..=32).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if ok { Ok(()) } else { Err(Invalid("a group name is 1-32 characters of a-z 0-9 _ -")) }
    }
);

impl fmt::Debug for GroupName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GroupName({})", self.0)
    }
}

/// Whether a person may use what scanlogin guards.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserStatus {
    /// Signs in, and passes the rules of protected sites.
    #[default]
    Active,
    /// Signs in to scanlogin, waits for an admin's approval; no protected site admits them.
    Pending,
    /// Refused on the phone; every session and token ended.
    Disabled,
}

impl UserStatus {
    /// The name stored and sent.
    pub fn as_str(self) -> &'static str {
        match self {
            UserStatus::Active => "active",
            UserStatus::Pending => "pending",
            UserStatus::Disabled => "disabled",
        }
    }

    /// Reads a stored name.
    pub fn parse(s: &str) -> Option<UserStatus> {
        [UserStatus::Active, UserStatus::Pending, UserStatus::Disabled].into_iter().find(|v| v.as_str() == s)
    }
}

/// A person's id: the key of their `users` row (never reused). Sent to the console and
/// the account page as a plain number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(sqlx::Type), sqlx(transparent))]
#[serde(transparent)]
pub struct UserId(pub i64);

impl std::fmt::Display for UserId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A point in time: milliseconds since the Unix epoch (UTC).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(sqlx::Type), sqlx(transparent))]
#[serde(transparent)]
pub struct UnixMillis(pub i64);

impl UnixMillis {
    /// This instant `d` later (saturating).
    pub fn plus(self, d: Duration) -> UnixMillis {
        UnixMillis(self.0.saturating_add(millis(d)))
    }

    /// This instant `d` earlier (saturating).
    pub fn minus(self, d: Duration) -> UnixMillis {
        UnixMillis(self.0.saturating_sub(millis(d)))
    }

    /// How long after `earlier` this instant is: zero when `earlier` is later.
    pub fn since(self, earlier: UnixMillis) -> Duration {
        Duration::from_millis(u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0))
    }

    /// How long from this instant until `later`: zero once it has passed.
    pub fn until(self, later: UnixMillis) -> Duration {
        later.since(self)
    }
}

/// `d` in whole milliseconds, saturating at `i64::MAX`.
fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_names_and_statuses() {
        for ok in ["ops", "a", "dev-team_2", &"x".repeat(32)] {
            assert!(GroupName::try_from(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Ops", "o ps", "运维", "a,b", &"x".repeat(33)] {
            assert!(GroupName::try_from(bad).is_err(), "{bad:?}");
        }
        for s in [UserStatus::Active, UserStatus::Pending, UserStatus::Disabled] {
            assert_eq!(UserStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert_eq!(UserStatus::parse("admin"), None);
    }

    #[test]
    fn ticket_ids() {
        for bad in ["", "a b", "abc%20", "ü", "a/b", &"a".repeat(33), "a.b"] {
            assert!(TicketId::try_from(bad).is_err(), "{bad:?}");
        }
        assert!(TicketId::try_from("a".repeat(32)).is_ok());
        let decoded: Result<TicketId, _> = serde_json::from_str(r#""a b""#);
        assert!(decoded.is_err(), "a bad id fails while decoding");
        let id: TicketId = serde_json::from_str(r#""AbC_-9""#).unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), r#""AbC_-9""#);
    }

    #[test]
    fn next_must_be_same_site_relative() {
        for good in ["/", "/account", "/a/b?c=d#e", "/%2F%2Fx"] {
            assert_eq!(NextPath::try_from(good).map(String::from), Ok(good.to_string()));
        }
        for bad in [
            "",
            "account",
            "//evil.com",
            "/\\evil.com",
            "https://evil.com",
            "javascript:alert(1)",
            "/a\\b",
            "/x\n",
            "/redirect?u=https://evil.com",
            &format!("/{}", "a".repeat(600)),
        ] {
            assert!(NextPath::try_from(bad).is_err(), "{bad:?}");
        }
        assert_eq!(NextPath::default().as_str(), "/account");
    }

    #[test]
    fn tokens_and_codes() {
        assert!(ConfirmToken::try_from("").is_err());
        assert!(ConfirmToken::try_from("x".repeat(65)).is_err());
        assert!(ConfirmToken::try_from("abc def").is_err());
        assert!(ConfirmToken::try_from("abc_DEF-09").is_ok());
        assert!(WxCode::try_from("").is_err());
        assert!(WxCode::try_from("c".repeat(129)).is_err());
        assert!(WxCode::try_from("a b").is_err());
        assert!(WxCode::try_from("sim:081AbC").is_ok());
        let t = ConfirmToken::try_from("secret123").unwrap();
        assert!(!format!("{t:?}").contains("secret123"), "tokens stay out of Debug");
    }

    #[test]
    fn millis_arithmetic_saturates() {
        assert_eq!(UnixMillis(5).plus(Duration::from_millis(10)), UnixMillis(15));
        assert_eq!(UnixMillis(i64::MAX).plus(Duration::from_millis(1)), UnixMillis(i64::MAX));
        assert_eq!(UnixMillis(i64::MIN).minus(Duration::MAX), UnixMillis(i64::MIN));
        assert_eq!(UnixMillis(15).since(UnixMillis(5)), Duration::from_millis(10));
        assert_eq!(UnixMillis(5).since(UnixMillis(15)), Duration::ZERO, "never negative");
        assert_eq!(UnixMillis(5).until(UnixMillis(15)), Duration::from_millis(10));
    }
}

#[cfg(all(test, feature = "test-support"))]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Parsing a ticket id never panics, and every id it accepts is a valid WeChat
        /// `scene` (1–32 of `0-9A-Za-z!#$&'()*+,/:;=?@-._~`).
        #[test]
        fn ticket_ids(s in "\\PC{0,40}") {
            if TicketId::try_from(s.as_str()).is_ok() {
                const EXTRA: &[u8] = b"!#$&'()*+,/:;=?@-._~";
                prop_assert!(!s.is_empty() && s.len() <= MAX_TICKET_LEN);
                prop_assert!(s.bytes().all(|b| b.is_ascii_alphanumeric() || EXTRA.contains(&b)));
            }
        }

        /// Whatever `next` is accepted stays on this site once resolved against it.
        #[test]
        fn accepted_next_stays_on_site(s in "[/\\\\a-z:.%?#@ \t]{0,20}") {
            if NextPath::try_from(s.as_str()).is_ok() {
                let base = url::Url::parse("https://site.example/").unwrap();
                let joined = base.join(&s).unwrap();
                prop_assert_eq!(joined.host_str(), Some("site.example"), "{} escaped", s);
                prop_assert_eq!(joined.scheme(), "https");
            }
        }
    }
}
