//! The login ticket as a pure state machine. Every method takes `now` from the caller's
//! clock; nothing here does I/O. Stores persist the result atomically.
//!
//! Each transition has a guard that answers "would this be refused, and why" without
//! changing anything (`scan_refusal`, `phone_refusal`, `consume_refusal`): callers ask
//! it before doing anything costly, and the transition itself is the guard plus the
//! change.

use crate::domain::{NextPath, TicketId, UnixMillis, UserId};
use crate::error::ErrorCode;
use crate::model::TicketStatus;
use crate::server::caller::Caller;
use crate::server::session::BrowserKey;
use crate::server::tokens::{TokenHash, constant_time_eq};
use std::time::Duration;

/// Why a transition was refused. Maps 1:1 onto contract error codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TicketError {
    /// Bound to another browser: answered exactly like an unknown ticket.
    NotFound,
    /// The confirm token is not the scanner's.
    NotScanner,
    Expired,
    /// Another WeChat user scanned it first.
    AlreadyScanned,
    /// Finalize before the phone confirmed.
    NotConfirmed,
    /// Confirm again, or cancel after confirm.
    AlreadyConfirmed,
    /// Anything after cancel.
    Cancelled,
    /// A second finalize.
    Used,
    /// Number matching: the phone chose another number than the browser shows.
    WrongNumber,
}

impl From<TicketError> for ErrorCode {
    fn from(e: TicketError) -> Self {
        match e {
            TicketError::NotFound => ErrorCode::TicketNotFound,
            TicketError::NotScanner => ErrorCode::NotScanner,
            TicketError::Expired => ErrorCode::TicketExpired,
            TicketError::AlreadyScanned => ErrorCode::AlreadyScanned,
            TicketError::NotConfirmed => ErrorCode::NotConfirmed,
            TicketError::AlreadyConfirmed => ErrorCode::AlreadyConfirmed,
            TicketError::Cancelled => ErrorCode::TicketCancelled,
            TicketError::Used => ErrorCode::TicketUsed,
            TicketError::WrongNumber => ErrorCode::WrongNumber,
        }
    }
}

/// How long tickets live.
#[derive(Clone, Copy, Debug)]
pub struct Lifetimes {
    /// A waiting ticket expires this long after creation.
    pub waiting: Duration,
    /// A scanned or confirmed ticket expires this long after creation.
    pub active: Duration,
}

impl Default for Lifetimes {
    fn default() -> Self {
        Lifetimes { waiting: Duration::from_secs(120), active: Duration::from_secs(300) }
    }
}

/// One login attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ticket {
    /// The id (the QR's scene).
    pub id: TicketId,
    pub status: TicketStatus,
    /// 1 at creation, +1 per change.
    pub version: u64,
    /// The binding key of the browser that created it.
    pub browser_key: BrowserKey,
    /// Where to go after login.
    pub next: NextPath,
    pub created_at: UnixMillis,
    /// Moves to `created_at + active` on scan.
    pub expires_at: UnixMillis,
    /// The WeChat user who scanned it (our user id).
    pub scanner_id: Option<UserId>,
    /// The hash of the scanner's current confirm token.
    pub confirm_hash: Option<TokenHash>,
    /// The hash of the finalize key given to the creating browser (`None`: a ticket
    /// made before finalize keys existed, which cannot be finalized).
    pub finalize_hash: Option<TokenHash>,
    /// The browser that asked, shown on the phone.
    pub origin: Caller,
    /// The site this login signs in to, when another site asked (OpenID Connect).
    pub client_name: Option<String>,
    /// Number matching (`LOGIN_NUMBER_MATCH`): the two digits the browser shows once
    /// scanned, which the phone must pick from three to confirm.
    pub match_number: Option<u8>,
    /// Wrong picks so far; the [`MAX_NUMBER_MISSES`]th cancels the ticket.
    pub match_misses: u8,
    pub updated_at: UnixMillis,
}

/// The wrong picks that cancel a ticket: the phone may try twice.
pub const MAX_NUMBER_MISSES: u8 = 2;

/// What a wrong pick did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Miss {
    /// The phone may pick again.
    TryAgain,
    /// That was the last try: the ticket is cancelled.
    Cancelled,
}

impl Ticket {
    /// A new waiting ticket.
    pub fn new(
        id: TicketId,
        browser_key: BrowserKey,
        finalize_hash: TokenHash,
        next: NextPath,
        origin: Caller,
        now: UnixMillis,
        life: Lifetimes,
    ) -> Self {
        Ticket {
            id,
            status: TicketStatus::Waiting,
            version: 1,
            browser_key,
            next,
            created_at: now,
            expires_at: now.plus(life.waiting),
            scanner_id: None,
            confirm_hash: None,
            finalize_hash: Some(finalize_hash),
            origin,
            client_name: None,
            match_number: None,
            match_misses: 0,
            updated_at: now,
        }
    }

    fn bump(&mut self, status: TicketStatus, now: UnixMillis) {
        self.status = status;
        self.version += 1;
        self.updated_at = now;
    }

    /// The status as time has left it: a live ticket past its expiry is expired.
    fn status_at(&self, now: UnixMillis) -> TicketStatus {
        if !self.status.is_final() && now >= self.expires_at { TicketStatus::Expired } else { self.status }
    }

    /// Marks a live ticket expired once `now` reached its expiry. True when it changed.
    pub fn expire_at(&mut self, now: UnixMillis) -> bool {
        let changed = self.status_at(now) != self.status;
        if changed {
            self.bump(TicketStatus::Expired, now);
        }
        changed
    }

    /// Whole seconds left (rounded up), 0 once final.
    pub fn expires_in(&self, now: UnixMillis) -> u64 {
        if self.status.is_final() { 0 } else { now.until(self.expires_at).as_millis().div_ceil(1000) as u64 }
    }

    /// True when `key` is the creating browser's key.
    pub fn is_bound_to(&self, key: &str) -> bool {
        constant_time_eq(&self.browser_key, key)
    }

    /// Why nobody at all could scan this ticket now (it is finished or expired), before
    /// anyone spends a `wx.login` code on it.
    pub fn closed_to_scans(&self, now: UnixMillis) -> Option<TicketError> {
        match self.status_at(now) {
            TicketStatus::Waiting | TicketStatus::Scanned | TicketStatus::Confirmed => None,
            TicketStatus::Consumed => Some(TicketError::Used),
            TicketStatus::Cancelled => Some(TicketError::Cancelled),
            TicketStatus::Expired | TicketStatus::Unknown => Some(TicketError::Expired),
        }
    }

    /// Why `user` could not scan this ticket now (`None`: the scan would be accepted).
    /// `user` is `None` for a WeChat user we have never seen, who is nobody's scanner.
    pub fn scan_refusal(&self, user: Option<UserId>, now: UnixMillis) -> Option<TicketError> {
        let by_scanner = user.is_some() && self.scanner_id == user;
        match self.status_at(now) {
            TicketStatus::Waiting => None,
            TicketStatus::Scanned if by_scanner => None,
            TicketStatus::Scanned => Some(TicketError::AlreadyScanned),
            TicketStatus::Confirmed if by_scanner => Some(TicketError::AlreadyConfirmed),
            TicketStatus::Confirmed => Some(TicketError::AlreadyScanned),
            _ => self.closed_to_scans(now),
        }
    }

    /// The phone scanned: `waiting → scanned` by `user`, or a re-scan by the same user
    /// (page reloaded), which replaces the confirm token. `number`: with number matching,
    /// the number the browser will show (a re-scan keeps the first one).
    pub fn scan(
        &mut self,
        user: UserId,
        confirm_hash: TokenHash,
        now: UnixMillis,
        life: Lifetimes,
        number: Option<u8>,
    ) -> Result<(), TicketError> {
        self.expire_at(now);
        if let Some(refusal) = self.scan_refusal(Some(user), now) {
            return Err(refusal);
        }
        if self.status == TicketStatus::Waiting {
            self.scanner_id = Some(user);
            self.expires_at = self.created_at.plus(life.active);
            self.match_number = number;
        }
        self.confirm_hash = Some(confirm_hash);
        self.bump(TicketStatus::Scanned, now);
        Ok(())
    }

    /// Why the holder of `confirm_hash` could not confirm or cancel now. A wrong token
    /// (403) is checked before expiry (410).
    pub fn phone_refusal(&self, confirm_hash: &TokenHash, now: UnixMillis) -> Option<TicketError> {
        if !self.confirm_hash.as_ref().is_some_and(|h| h.matches(confirm_hash)) {
            return Some(TicketError::NotScanner);
        }
        match self.status_at(now) {
            TicketStatus::Scanned => None,
            TicketStatus::Confirmed | TicketStatus::Consumed => Some(TicketError::AlreadyConfirmed),
            TicketStatus::Cancelled => Some(TicketError::Cancelled),
            TicketStatus::Waiting => Some(TicketError::NotScanner),
            TicketStatus::Expired | TicketStatus::Unknown => Some(TicketError::Expired),
        }
    }

    /// Whether `picked` is the number the browser shows (always, without number matching).
    pub fn number_matches(&self, picked: Option<u8>) -> bool {
        self.match_number.is_none_or(|n| picked == Some(n))
    }

    /// The scanner tapped 点击登录: `scanned → confirmed`. With number matching a wrong
    /// pick is refused here, changing nothing; [`Ticket::miss`] records it.
    pub fn confirm(&mut self, confirm_hash: &TokenHash, picked: Option<u8>, now: UnixMillis) -> Result<(), TicketError> {
        if self.phone_refusal(confirm_hash, now).is_none() && !self.number_matches(picked) {
            return Err(TicketError::WrongNumber);
        }
        self.phone_answer(confirm_hash, now, TicketStatus::Confirmed)
    }

    /// A wrong pick by the scanner: counted; the [`MAX_NUMBER_MISSES`]th cancels the
    /// ticket (a relayed code's victim cannot see the attacker's screen, and guessing one
    /// of three twice is a one-in-nine chance at best).
    pub fn miss(&mut self, confirm_hash: &TokenHash, now: UnixMillis) -> Result<Miss, TicketError> {
        let refusal = self.phone_refusal(confirm_hash, now);
        self.expire_at(now);
        if let Some(e) = refusal {
            return Err(e);
        }
        self.match_misses = self.match_misses.saturating_add(1);
        if self.match_misses >= MAX_NUMBER_MISSES {
            self.bump(TicketStatus::Cancelled, now);
            return Ok(Miss::Cancelled);
        }
        self.bump(TicketStatus::Scanned, now);
        Ok(Miss::TryAgain)
    }

    /// Cancelled by wrong numbers (the browser says so).
    pub fn cancelled_by_numbers(&self) -> bool {
        self.status == TicketStatus::Cancelled && self.match_misses >= MAX_NUMBER_MISSES
    }

    /// The scanner tapped 取消: `scanned → cancelled`.
    pub fn cancel(&mut self, confirm_hash: &TokenHash, now: UnixMillis) -> Result<(), TicketError> {
        self.phone_answer(confirm_hash, now, TicketStatus::Cancelled)
    }

    fn phone_answer(&mut self, confirm_hash: &TokenHash, now: UnixMillis, to: TicketStatus) -> Result<(), TicketError> {
        let refusal = self.phone_refusal(confirm_hash, now);
        self.expire_at(now);
        match refusal {
            Some(e) => Err(e),
            None => {
                self.bump(to, now);
                Ok(())
            }
        }
    }

    /// What a finalize asks of this ticket: the first one (consume it), a repeat after a
    /// lost answer, or a refusal.
    ///
    /// The caller must hold the finalize key (`key_hash`); without it, or with another
    /// one, the ticket is answered like another browser's (404). The first finalize
    /// also needs the creating browser (`browser_key`). A repeat within
    /// [`REPEAT_FINALIZE`] of the first is that browser with either cookie: the old
    /// one (same binding key) or the new one (signed in as the scanner).
    pub fn finalize_check(&self, fin: &FinalizeAttempt<'_>, now: UnixMillis) -> Result<Finalize, TicketError> {
        let holds_key = match (&self.finalize_hash, fin.key_hash) {
            (Some(ours), Some(theirs)) => ours.matches(theirs),
            _ => false,
        };
        if !holds_key {
            return Err(TicketError::NotFound);
        }
        let bound = fin.browser_key.is_some_and(|k| self.is_bound_to(k));
        let status = self.status_at(now);
        let same_browser = bound || (fin.signed_in_as.is_some() && fin.signed_in_as == self.scanner_id);
        if status == TicketStatus::Consumed && same_browser {
            let lost_answer = now.since(self.updated_at) <= REPEAT_FINALIZE;
            return if lost_answer { Ok(Finalize::Repeat) } else { Err(TicketError::Used) };
        }
        if !bound {
            return Err(TicketError::NotFound);
        }
        match status {
            TicketStatus::Confirmed => Ok(Finalize::First),
            TicketStatus::Waiting | TicketStatus::Scanned => Err(TicketError::NotConfirmed),
            TicketStatus::Consumed => Err(TicketError::Used),
            TicketStatus::Cancelled => Err(TicketError::Cancelled),
            TicketStatus::Expired | TicketStatus::Unknown => Err(TicketError::Expired),
        }
    }

    /// The first finalize: `confirmed → consumed`.
    pub fn consume(&mut self, fin: &FinalizeAttempt<'_>, now: UnixMillis) -> Result<(), TicketError> {
        let check = self.finalize_check(fin, now);
        self.expire_at(now);
        match check? {
            Finalize::First => {
                self.bump(TicketStatus::Consumed, now);
                Ok(())
            }
            Finalize::Repeat => Err(TicketError::Used),
        }
    }
}

/// How long after the first finalize a repeat (a lost answer) still signs the browser in.
pub const REPEAT_FINALIZE: Duration = Duration::from_secs(60);

/// Who asks to finalize.
#[derive(Clone, Copy, Debug)]
pub struct FinalizeAttempt<'a> {
    /// The binding key of the caller's session, if it has one.
    pub browser_key: Option<&'a str>,
    /// The user the caller's session is signed in as.
    pub signed_in_as: Option<UserId>,
    /// The hash of the finalize key the caller sent.
    pub key_hash: Option<&'a TokenHash>,
}

/// What a finalize is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finalize {
    /// The ticket is confirmed: consume it and sign the browser in.
    First,
    /// Consumed by this browser moments ago (its answer was lost): sign it in again.
    Repeat,
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: UnixMillis = UnixMillis(1_800_000_000_000);
    const LIFE: Lifetimes = Lifetimes { waiting: Duration::from_secs(120), active: Duration::from_secs(300) };

    fn ticket() -> Ticket {
        let origin = Caller { ip: Some(std::net::Ipv4Addr::LOCALHOST.into()), user_agent: "test".into() };
        Ticket::new(TicketId::try_from("t1").unwrap(), "browser-a".into(), h("key-a"), NextPath::default(), origin, T0, LIFE)
    }

    /// Browser `key` holding finalize key `fin`.
    fn by(key: &'static str, fin: &'static TokenHash) -> FinalizeAttempt<'static> {
        FinalizeAttempt { browser_key: Some(key), signed_in_as: None, key_hash: Some(fin) }
    }

    static KEY_A: std::sync::LazyLock<TokenHash> = std::sync::LazyLock::new(|| h("key-a"));
    static KEY_X: std::sync::LazyLock<TokenHash> = std::sync::LazyLock::new(|| h("key-x"));

    fn a() -> FinalizeAttempt<'static> {
        by("browser-a", &KEY_A)
    }

    /// The hash of confirm token `s`.
    fn h(s: &str) -> TokenHash {
        TokenHash::of(s)
    }

    /// `T0` plus `ms`.
    fn at(ms: u64) -> UnixMillis {
        T0.plus(Duration::from_millis(ms))
    }

    #[test]
    fn happy_path_bumps_version_each_step() {
        let mut t = ticket();
        assert_eq!((t.status, t.version), (TicketStatus::Waiting, 1));
        t.scan(UserId(7), h("h1"), at(1_000), LIFE, None).unwrap();
        assert_eq!((t.status, t.version, t.scanner_id), (TicketStatus::Scanned, 2, Some(UserId(7))));
        assert_eq!(t.expires_at, at(300_000), "scanning extends the life to the active lifetime");
        t.confirm(&h("h1"), None, at(2_000)).unwrap();
        assert_eq!((t.status, t.version), (TicketStatus::Confirmed, 3));
        t.consume(&a(), at(3_000)).unwrap();
        assert_eq!((t.status, t.version), (TicketStatus::Consumed, 4));
        assert_eq!(t.consume(&a(), at(4_000)), Err(TicketError::Used));
        assert_eq!(t.version, 4, "a refused transition changes nothing");
    }

    #[test]
    fn rescan_by_same_user_rotates_token_other_user_refused() {
        let mut t = ticket();
        t.scan(UserId(7), h("h1"), T0, LIFE, None).unwrap();
        assert_eq!(t.scan(UserId(8), h("h2"), T0, LIFE, None), Err(TicketError::AlreadyScanned));
        t.scan(UserId(7), h("h3"), T0, LIFE, None).unwrap();
        assert_eq!(t.confirm(&h("h1"), None, T0), Err(TicketError::NotScanner), "old token stops working");
        t.confirm(&h("h3"), None, T0).unwrap();
        assert_eq!(t.scan(UserId(7), h("h4"), T0, LIFE, None), Err(TicketError::AlreadyConfirmed));
        assert_eq!(t.scan(UserId(8), h("h4"), T0, LIFE, None), Err(TicketError::AlreadyScanned));
    }

    #[test]
    fn waiting_expires_after_120s_scanned_after_300s() {
        let mut t = ticket();
        assert!(!t.expire_at(at(119_999)));
        assert_eq!(t.expires_in(at(119_001)), 1);
        assert!(t.expire_at(at(120_000)));
        assert_eq!((t.status, t.version, t.expires_in(at(120_000))), (TicketStatus::Expired, 2, 0));
        assert!(!t.expire_at(at(500_000)), "expiring twice is not a change");

        let mut t = ticket();
        t.scan(UserId(1), h("h"), at(100_000), LIFE, None).unwrap();
        assert!(!t.expire_at(at(200_000)));
        assert_eq!(t.confirm(&h("h"), None, at(300_000)), Err(TicketError::Expired));
        assert_eq!(t.status, TicketStatus::Expired);
    }

    #[test]
    fn scan_of_expired_ticket_is_refused() {
        let mut t = ticket();
        assert_eq!(t.scan(UserId(1), h("h"), at(120_000), LIFE, None), Err(TicketError::Expired));
    }

    #[test]
    fn cancel_rules() {
        let mut t = ticket();
        assert_eq!(t.cancel(&h("h"), T0), Err(TicketError::NotScanner), "nobody scanned: no token is valid");
        t.scan(UserId(1), h("h"), T0, LIFE, None).unwrap();
        assert_eq!(t.cancel(&h("x"), T0), Err(TicketError::NotScanner));
        t.cancel(&h("h"), T0).unwrap();
        assert_eq!(t.status, TicketStatus::Cancelled);
        assert_eq!(t.confirm(&h("h"), None, T0), Err(TicketError::Cancelled));
        assert_eq!(t.scan(UserId(1), h("h"), T0, LIFE, None), Err(TicketError::Cancelled));
        assert_eq!(t.consume(&a(), T0), Err(TicketError::Cancelled));

        let mut t = ticket();
        t.scan(UserId(1), h("h"), T0, LIFE, None).unwrap();
        t.confirm(&h("h"), None, T0).unwrap();
        assert_eq!(t.cancel(&h("h"), T0), Err(TicketError::AlreadyConfirmed));
        assert_eq!(t.confirm(&h("h"), None, T0), Err(TicketError::AlreadyConfirmed));
    }

    #[test]
    fn consume_rules_and_precedence() {
        let mut t = ticket();
        assert_eq!(t.consume(&a(), T0), Err(TicketError::NotConfirmed));
        assert_eq!(t.consume(&by("browser-b", &KEY_A), T0), Err(TicketError::NotFound), "another browser sees not-found");
        t.scan(UserId(1), h("h"), T0, LIFE, None).unwrap();
        assert_eq!(t.consume(&a(), T0), Err(TicketError::NotConfirmed));
        t.confirm(&h("h"), None, T0).unwrap();
        // Binding (404) is checked before expiry (410).
        assert_eq!(t.clone().consume(&by("browser-b", &KEY_A), at(400_000)), Err(TicketError::NotFound));
        assert_eq!(t.clone().consume(&a(), at(400_000)), Err(TicketError::Expired));
        // A wrong token (403) is checked before expiry (410).
        assert_eq!(t.clone().cancel(&h("x"), at(400_000)), Err(TicketError::NotScanner));
    }

    #[test]
    fn guards_answer_without_changing_anything() {
        let mut t = ticket();
        t.scan(UserId(7), h("h"), T0, LIFE, None).unwrap();
        let before = t.clone();
        assert_eq!(t.closed_to_scans(T0), None, "the scanner may still re-scan");
        assert_eq!(t.scan_refusal(None, T0), Some(TicketError::AlreadyScanned), "a WeChat user never seen is not the scanner");
        assert_eq!(t.scan_refusal(Some(UserId(7)), T0), None);
        assert_eq!(t.scan_refusal(Some(UserId(7)), at(300_000)), Some(TicketError::Expired));
        assert_eq!(t.closed_to_scans(at(300_000)), Some(TicketError::Expired));
        assert_eq!(t.phone_refusal(&h("x"), T0), Some(TicketError::NotScanner));
        assert_eq!(t.finalize_check(&a(), T0), Err(TicketError::NotConfirmed));
        assert_eq!(t.finalize_check(&by("browser-b", &KEY_A), T0), Err(TicketError::NotFound));
        assert_eq!(t, before);
    }

    #[test]
    fn finalize_needs_the_key_and_a_lost_answer_can_be_repeated_for_a_minute() {
        let mut t = ticket();
        t.scan(UserId(7), h("h"), T0, LIFE, None).unwrap();
        t.confirm(&h("h"), None, T0).unwrap();
        let no_key = FinalizeAttempt { browser_key: Some("browser-a"), signed_in_as: None, key_hash: None };
        assert_eq!(t.finalize_check(&no_key, T0), Err(TicketError::NotFound), "no key: like another browser's");
        assert_eq!(t.finalize_check(&by("browser-a", &KEY_X), T0), Err(TicketError::NotFound), "wrong key");
        assert_eq!(t.finalize_check(&a(), T0), Ok(Finalize::First));
        t.consume(&a(), at(1_000)).unwrap();
        // The answer was lost: the same page retries, with the old cookie or the new one.
        assert_eq!(t.finalize_check(&a(), at(2_000)), Ok(Finalize::Repeat));
        let new_cookie = FinalizeAttempt { browser_key: Some("rotated"), signed_in_as: Some(UserId(7)), key_hash: Some(&KEY_A) };
        assert_eq!(t.finalize_check(&new_cookie, at(61_000)), Ok(Finalize::Repeat));
        assert_eq!(t.finalize_check(&a(), at(61_001)), Err(TicketError::Used), "after a minute: used");
        let other_user = FinalizeAttempt { signed_in_as: Some(UserId(8)), ..new_cookie };
        assert_eq!(t.finalize_check(&other_user, at(2_000)), Err(TicketError::NotFound));
        let cookie_copy = FinalizeAttempt { key_hash: None, ..a() };
        assert_eq!(t.finalize_check(&cookie_copy, at(2_000)), Err(TicketError::NotFound), "a copied cookie without the key");
        assert_eq!(t.consume(&a(), at(2_000)), Err(TicketError::Used), "a repeat never consumes twice");
    }

    #[test]
    fn number_matching_confirms_only_the_right_pick_and_cancels_after_two_wrong_ones() {
        let mut t = ticket();
        t.scan(UserId(7), h("h"), T0, LIFE, Some(47)).unwrap();
        assert_eq!(t.match_number, Some(47));
        t.scan(UserId(7), h("h2"), T0, LIFE, Some(12)).unwrap();
        assert_eq!(t.match_number, Some(47), "a re-scan keeps the number the browser shows");
        let before = t.clone();
        for wrong in [None, Some(12)] {
            assert_eq!(t.confirm(&h("h2"), wrong, T0), Err(TicketError::WrongNumber));
            assert_eq!(t, before, "a refused confirm changes nothing");
        }
        assert_eq!(t.miss(&h("nope"), T0), Err(TicketError::NotScanner), "only the scanner's picks count");
        assert_eq!(t.miss(&h("h2"), T0), Ok(Miss::TryAgain));
        assert_eq!((t.status, t.match_misses, t.version), (TicketStatus::Scanned, 1, before.version + 1));
        assert!(!t.cancelled_by_numbers());
        assert_eq!(t.miss(&h("h2"), T0), Ok(Miss::Cancelled));
        assert!(t.cancelled_by_numbers());
        assert_eq!(t.confirm(&h("h2"), Some(47), T0), Err(TicketError::Cancelled), "too late for the right number");

        let mut t = ticket();
        t.scan(UserId(7), h("h"), T0, LIFE, Some(47)).unwrap();
        t.miss(&h("h"), T0).unwrap();
        t.confirm(&h("h"), Some(47), T0).unwrap();
        assert_eq!(t.status, TicketStatus::Confirmed, "the second try may be right");
        let mut plain = ticket();
        plain.scan(UserId(7), h("h"), T0, LIFE, None).unwrap();
        assert!(plain.number_matches(None) && plain.number_matches(Some(3)), "without number matching any pick is fine");
    }

    #[test]
    fn a_ticket_in_a_log_line_shows_no_binding_key() {
        let t = ticket();
        let logged = format!("{t:?}");
        assert!(logged.contains("BrowserKey(..)"), "{logged}");
        assert!(!logged.contains("browser-a"), "the key itself never: {logged}");
        assert!(t.is_bound_to("browser-a"), "it still compares");
    }
}
