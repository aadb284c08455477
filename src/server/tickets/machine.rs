//! The login ticket as a pure state machine. Every method takes `now` (epoch ms) from
//! the caller's clock; nothing here does I/O. Stores persist the result atomically.

use crate::error::ErrorCode;
use crate::model::TicketStatus;
use crate::server::rules::constant_time_eq;

/// Why a transition was refused. Maps 1:1 onto contract error codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TicketError {
    /// Bound to another browser: answered exactly like an unknown ticket.
    NotFound,
    /// The confirm token is not the scanner's.
    NotScanner,
    /// Past its expiry.
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
        }
    }
}

/// How long tickets live.
#[derive(Clone, Copy, Debug)]
pub struct Lifetimes {
    /// A waiting ticket expires this long after creation.
    pub waiting_ms: i64,
    /// A scanned or confirmed ticket expires this long after creation.
    pub active_ms: i64,
}

impl Default for Lifetimes {
    fn default() -> Self {
        Lifetimes { waiting_ms: 120_000, active_ms: 300_000 }
    }
}

/// Who asked for the ticket (shown on the phone).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// Client IP.
    pub ip: String,
    /// The browser's User-Agent (truncated).
    pub user_agent: String,
}

/// One login attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ticket {
    /// The id (the QR's scene).
    pub id: String,
    /// Current state.
    pub status: TicketStatus,
    /// 1 at creation, +1 per change.
    pub version: i64,
    /// The binding key of the browser that created it.
    pub browser_key: String,
    /// Where to go after login.
    pub next: String,
    /// Creation, epoch ms.
    pub created_at: i64,
    /// Expiry, epoch ms (moves to `created_at + active` on scan).
    pub expires_at: i64,
    /// The WeChat user who scanned it (our user id).
    pub scanner_id: Option<i64>,
    /// SHA-256 of the scanner's current confirm token.
    pub confirm_hash: Option<String>,
    /// Who asked.
    pub origin: Origin,
    /// Last change, epoch ms.
    pub updated_at: i64,
}

impl Ticket {
    /// A new waiting ticket.
    pub fn new(id: String, browser_key: String, next: String, origin: Origin, now: i64, life: Lifetimes) -> Self {
        Ticket {
            id,
            status: TicketStatus::Waiting,
            version: 1,
            browser_key,
            next,
            created_at: now,
            expires_at: now + life.waiting_ms,
            scanner_id: None,
            confirm_hash: None,
            origin,
            updated_at: now,
        }
    }

    fn bump(&mut self, status: TicketStatus, now: i64) {
        self.status = status;
        self.version += 1;
        self.updated_at = now;
    }

    /// Marks a live ticket expired once `now` reached its expiry. True when it changed.
    pub fn expire_at(&mut self, now: i64) -> bool {
        if !self.status.is_final() && now >= self.expires_at {
            self.bump(TicketStatus::Expired, now);
            true
        } else {
            false
        }
    }

    /// Whole seconds left (rounded up), 0 once final.
    pub fn expires_in(&self, now: i64) -> u64 {
        if self.status.is_final() { 0 } else { ((self.expires_at - now).max(0) as u64).div_ceil(1000) }
    }

    /// True when `key` is the creating browser's key.
    pub fn is_bound_to(&self, key: &str) -> bool {
        constant_time_eq(&self.browser_key, key)
    }

    fn is_scanner_token(&self, hash: &str) -> bool {
        self.confirm_hash.as_deref().is_some_and(|h| constant_time_eq(h, hash))
    }

    /// The phone scanned: `waiting → scanned` by `user`, or a re-scan by the same user
    /// (page reloaded), which replaces the confirm token.
    pub fn scan(&mut self, user: i64, confirm_hash: String, now: i64, life: Lifetimes) -> Result<(), TicketError> {
        self.expire_at(now);
        match self.status {
            TicketStatus::Waiting => {
                self.scanner_id = Some(user);
                self.confirm_hash = Some(confirm_hash);
                self.expires_at = self.created_at + life.active_ms;
                self.bump(TicketStatus::Scanned, now);
                Ok(())
            }
            TicketStatus::Scanned if self.scanner_id == Some(user) => {
                self.confirm_hash = Some(confirm_hash);
                self.bump(TicketStatus::Scanned, now);
                Ok(())
            }
            TicketStatus::Scanned => Err(TicketError::AlreadyScanned),
            TicketStatus::Confirmed if self.scanner_id == Some(user) => Err(TicketError::AlreadyConfirmed),
            TicketStatus::Confirmed => Err(TicketError::AlreadyScanned),
            TicketStatus::Consumed => Err(TicketError::Used),
            TicketStatus::Cancelled => Err(TicketError::Cancelled),
            TicketStatus::Expired | TicketStatus::Unknown => Err(TicketError::Expired),
        }
    }

    /// The scanner tapped 点击登录: `scanned → confirmed`.
    pub fn confirm(&mut self, confirm_hash: &str, now: i64) -> Result<(), TicketError> {
        if !self.is_scanner_token(confirm_hash) {
            return Err(TicketError::NotScanner);
        }
        self.expire_at(now);
        match self.status {
            TicketStatus::Scanned => {
                self.bump(TicketStatus::Confirmed, now);
                Ok(())
            }
            TicketStatus::Confirmed | TicketStatus::Consumed => Err(TicketError::AlreadyConfirmed),
            TicketStatus::Cancelled => Err(TicketError::Cancelled),
            TicketStatus::Waiting => Err(TicketError::NotScanner),
            TicketStatus::Expired | TicketStatus::Unknown => Err(TicketError::Expired),
        }
    }

    /// The scanner tapped 取消: `scanned → cancelled`.
    pub fn cancel(&mut self, confirm_hash: &str, now: i64) -> Result<(), TicketError> {
        if !self.is_scanner_token(confirm_hash) {
            return Err(TicketError::NotScanner);
        }
        self.expire_at(now);
        match self.status {
            TicketStatus::Scanned => {
                self.bump(TicketStatus::Cancelled, now);
                Ok(())
            }
            TicketStatus::Confirmed | TicketStatus::Consumed => Err(TicketError::AlreadyConfirmed),
            TicketStatus::Cancelled => Err(TicketError::Cancelled),
            TicketStatus::Waiting => Err(TicketError::NotScanner),
            TicketStatus::Expired | TicketStatus::Unknown => Err(TicketError::Expired),
        }
    }

    /// The creating browser finalizes: `confirmed → consumed`.
    pub fn consume(&mut self, browser_key: &str, now: i64) -> Result<(), TicketError> {
        if !self.is_bound_to(browser_key) {
            return Err(TicketError::NotFound);
        }
        self.expire_at(now);
        match self.status {
            TicketStatus::Confirmed => {
                self.bump(TicketStatus::Consumed, now);
                Ok(())
            }
            TicketStatus::Waiting | TicketStatus::Scanned => Err(TicketError::NotConfirmed),
            TicketStatus::Consumed => Err(TicketError::Used),
            TicketStatus::Cancelled => Err(TicketError::Cancelled),
            TicketStatus::Expired | TicketStatus::Unknown => Err(TicketError::Expired),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_800_000_000_000;
    const LIFE: Lifetimes = Lifetimes { waiting_ms: 120_000, active_ms: 300_000 };

    fn ticket() -> Ticket {
        let origin = Origin { ip: "127.0.0.1".into(), user_agent: "test".into() };
        Ticket::new("t1".into(), "browser-a".into(), "/account".into(), origin, T0, LIFE)
    }

    #[test]
    fn happy_path_bumps_version_each_step() {
        let mut t = ticket();
        assert_eq!((t.status, t.version), (TicketStatus::Waiting, 1));
        t.scan(7, "h1".into(), T0 + 1_000, LIFE).unwrap();
        assert_eq!((t.status, t.version, t.scanner_id), (TicketStatus::Scanned, 2, Some(7)));
        assert_eq!(t.expires_at, T0 + 300_000, "scanning extends the life to the active lifetime");
        t.confirm("h1", T0 + 2_000).unwrap();
        assert_eq!((t.status, t.version), (TicketStatus::Confirmed, 3));
        t.consume("browser-a", T0 + 3_000).unwrap();
        assert_eq!((t.status, t.version), (TicketStatus::Consumed, 4));
        assert_eq!(t.consume("browser-a", T0 + 4_000), Err(TicketError::Used));
        assert_eq!(t.version, 4, "a refused transition changes nothing");
    }

    #[test]
    fn rescan_by_same_user_rotates_token_other_user_refused() {
        let mut t = ticket();
        t.scan(7, "h1".into(), T0, LIFE).unwrap();
        assert_eq!(t.scan(8, "h2".into(), T0, LIFE), Err(TicketError::AlreadyScanned));
        t.scan(7, "h3".into(), T0, LIFE).unwrap();
        assert_eq!(t.confirm("h1", T0), Err(TicketError::NotScanner), "old token stops working");
        t.confirm("h3", T0).unwrap();
        assert_eq!(t.scan(7, "h4".into(), T0, LIFE), Err(TicketError::AlreadyConfirmed));
        assert_eq!(t.scan(8, "h4".into(), T0, LIFE), Err(TicketError::AlreadyScanned));
    }

    #[test]
    fn waiting_expires_after_120s_scanned_after_300s() {
        let mut t = ticket();
        assert!(!t.expire_at(T0 + 119_999));
        assert_eq!(t.expires_in(T0 + 119_001), 1);
        assert!(t.expire_at(T0 + 120_000));
        assert_eq!((t.status, t.version, t.expires_in(T0 + 120_000)), (TicketStatus::Expired, 2, 0));
        assert!(!t.expire_at(T0 + 500_000), "expiring twice is not a change");

        let mut t = ticket();
        t.scan(1, "h".into(), T0 + 100_000, LIFE).unwrap();
        assert!(!t.expire_at(T0 + 200_000));
        assert_eq!(t.confirm("h", T0 + 300_000), Err(TicketError::Expired));
        assert_eq!(t.status, TicketStatus::Expired);
    }

    #[test]
    fn scan_of_expired_ticket_is_refused() {
        let mut t = ticket();
        assert_eq!(t.scan(1, "h".into(), T0 + 120_000, LIFE), Err(TicketError::Expired));
    }

    #[test]
    fn cancel_rules() {
        let mut t = ticket();
        assert_eq!(t.cancel("h", T0), Err(TicketError::NotScanner), "nobody scanned: no token is valid");
        t.scan(1, "h".into(), T0, LIFE).unwrap();
        assert_eq!(t.cancel("x", T0), Err(TicketError::NotScanner));
        t.cancel("h", T0).unwrap();
        assert_eq!(t.status, TicketStatus::Cancelled);
        assert_eq!(t.confirm("h", T0), Err(TicketError::Cancelled));
        assert_eq!(t.scan(1, "h".into(), T0, LIFE), Err(TicketError::Cancelled));
        assert_eq!(t.consume("browser-a", T0), Err(TicketError::Cancelled));

        let mut t = ticket();
        t.scan(1, "h".into(), T0, LIFE).unwrap();
        t.confirm("h", T0).unwrap();
        assert_eq!(t.cancel("h", T0), Err(TicketError::AlreadyConfirmed));
        assert_eq!(t.confirm("h", T0), Err(TicketError::AlreadyConfirmed));
    }

    #[test]
    fn consume_rules_and_precedence() {
        let mut t = ticket();
        assert_eq!(t.consume("browser-a", T0), Err(TicketError::NotConfirmed));
        assert_eq!(t.consume("browser-b", T0), Err(TicketError::NotFound), "another browser sees not-found");
        t.scan(1, "h".into(), T0, LIFE).unwrap();
        assert_eq!(t.consume("browser-a", T0), Err(TicketError::NotConfirmed));
        t.confirm("h", T0).unwrap();
        // Binding (404) is checked before expiry (410).
        assert_eq!(t.clone().consume("browser-b", T0 + 400_000), Err(TicketError::NotFound));
        assert_eq!(t.clone().consume("browser-a", T0 + 400_000), Err(TicketError::Expired));
        // A wrong token (403) is checked before expiry (410).
        assert_eq!(t.clone().cancel("x", T0 + 400_000), Err(TicketError::NotScanner));
    }
}
