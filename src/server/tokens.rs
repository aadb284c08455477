//! Secret random tokens: made from the OS CSPRNG, handed out once in plaintext, kept
//! only as a SHA-256 hash, compared in constant time.

use crate::domain::{ConfirmToken, FinalizeKey, TicketId};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// `n` bytes from the OS CSPRNG, URL-safe base64 without padding.
pub fn random_token(n: usize) -> String {
    use rand::RngCore as _;
    let mut bytes = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A fresh ticket id: 128 bits, 22 characters of `[A-Za-z0-9_-]`, all inside WeChat's
/// `scene` charset.
pub fn new_ticket_id() -> TicketId {
    TicketId::try_from(random_token(16)).unwrap_or_else(|_| unreachable!("22 base64url characters are a ticket id"))
}

/// A fresh confirm token for the phone: 192 bits.
pub fn new_confirm_token() -> ConfirmToken {
    ConfirmToken::try_from(random_token(24)).unwrap_or_else(|_| unreachable!("32 base64url characters are a token"))
}

/// A fresh finalize key for the page that creates a ticket: 192 bits.
pub fn new_finalize_key() -> FinalizeKey {
    FinalizeKey::try_from(random_token(24)).unwrap_or_else(|_| unreachable!("32 base64url characters are a key"))
}

/// The SHA-256 of a secret token, hex: what is stored in its place.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenHash(String);

/// `bytes` in lower-case hex, in one allocation (a login hashes a few session ids and
/// tokens; a `format!` a byte was 1–2% of its CPU).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

impl TokenHash {
    /// The hash of `token`.
    pub fn of(token: &str) -> Self {
        TokenHash(hex(&Sha256::digest(token.as_bytes())))
    }

    /// The hash of some bytes (an avatar's content address).
    pub fn of_bytes(bytes: &[u8]) -> Self {
        TokenHash(hex(&Sha256::digest(bytes)))
    }

    /// A hash as stored.
    pub fn from_stored(hex: String) -> Self {
        TokenHash(hex)
    }

    /// The hex text to store.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True when `token` hashes to this, compared in constant time.
    pub fn matches(&self, other: &TokenHash) -> bool {
        constant_time_eq(&self.0, &other.0)
    }
}

impl std::fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenHash(…)")
    }
}

/// Compares two strings in time independent of where they differ.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_lower_case_two_digits_a_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xab, 0xff]), "000fabff");
        assert_eq!(
            TokenHash::of("abc").as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            "SHA-256 of \"abc\" (FIPS 180-2)"
        );
    }

    /// WeChat's `scene` rules: 1–32 visible characters of `0-9A-Za-z!#$&'()*+,/:;=?@-._~`.
    fn is_valid_scene(scene: &str) -> bool {
        const EXTRA: &[u8] = b"!#$&'()*+,/:;=?@-._~";
        !scene.is_empty() && scene.len() <= 32 && scene.bytes().all(|b| b.is_ascii_alphanumeric() || EXTRA.contains(&b))
    }

    #[test]
    fn ticket_ids_are_128_bit_scene_safe_and_distinct() {
        let (a, b) = (new_ticket_id(), new_ticket_id());
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 22);
        assert!(is_valid_scene(a.as_str()));
        assert!(!is_valid_scene("100%") && !is_valid_scene("中文") && !is_valid_scene(&"x".repeat(33)));
    }

    #[test]
    fn hashing_and_comparing() {
        let t = new_confirm_token();
        assert_eq!(t.as_str().len(), 32);
        assert!(TokenHash::of(t.as_str()).matches(&TokenHash::of(t.as_str())));
        assert!(!TokenHash::of("abc").matches(&TokenHash::of("abd")));
        assert_eq!(TokenHash::of("abc").as_str().len(), 64);
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "ab"));
    }
}
