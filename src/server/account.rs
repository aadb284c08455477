//! What the account page shows of a person (`/api/me`): their latest logins, their
//! latest audit events and their signed-in browsers, read in one statement. On
//! PostgreSQL each statement is a round trip, and the page is read once after every
//! login (issue 31); the three lists come back as the rows of one `UNION ALL`, each row
//! tagged with its list.

use crate::domain::{UnixMillis, UserId};
use crate::server::audit::Event;
use crate::server::db::Db;
use crate::server::session::{SessionKey, SignedInBrowser, signed_in_browsers};
use crate::server::users::Login;

/// A person's account at a glance.
#[derive(Debug, Default)]
pub struct Overview {
    /// Newest first, at most the `logins` asked for.
    pub logins: Vec<Login>,
    /// Newest first, at most the `events` asked for.
    pub events: Vec<Event>,
    /// Live signed-in browsers, most recently seen first.
    pub sessions: Vec<SignedInBrowser>,
}

/// The three lists' rows, in one shape: `what` says whose row it is ('l' a login, 'e' an
/// event, 's' a session, whose `id` column is 0 and whose key and data ride in `sid` and
/// `detail`).
const OVERVIEW: &str = "\
SELECT CAST('l' AS TEXT) AS what, at, id, ip, user_agent, CAST('' AS TEXT) AS kind, CAST('' AS TEXT) AS detail, CAST('' AS TEXT) AS sid \
  FROM (SELECT id, at, ip, user_agent FROM logins WHERE user_id = $1 ORDER BY at DESC, id DESC LIMIT $3) AS l \
UNION ALL \
SELECT CAST('e' AS TEXT), at, id, ip, user_agent, kind, detail, CAST('' AS TEXT) \
  FROM (SELECT id, at, kind, ip, user_agent, detail FROM audit_events WHERE user_id = $1 ORDER BY at DESC, id DESC LIMIT $4) AS e \
UNION ALL \
SELECT CAST('s' AS TEXT), CAST(0 AS BIGINT), CAST(0 AS BIGINT), CAST('' AS TEXT), CAST('' AS TEXT), CAST('' AS TEXT), data, id \
  FROM sessions WHERE user_id = $1 AND expires_at > $2 AND parent IS NULL";

type Row = (String, i64, i64, String, String, String, String, SessionKey);

/// `user`'s latest `logins` logins and `events` audit events, and their live signed-in
/// browsers at `now`.
pub async fn overview(db: &Db, user: UserId, now: UnixMillis, logins: i64, events: i64) -> Result<Overview, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(OVERVIEW).bind(user).bind(now).bind(logins).bind(events).fetch_all(db).await?;
    let mut found: Vec<(i64, i64, Login)> = Vec::new();
    let mut happened: Vec<(i64, i64, Event)> = Vec::new();
    let mut browsers = Vec::new();
    for (what, at, id, ip, user_agent, kind, detail, sid) in rows {
        match what.as_str() {
            "l" => found.push((at, id, Login { at: UnixMillis(at), ip, user_agent })),
            "e" => happened.push((at, id, Event { at: UnixMillis(at), kind, ip, user_agent, detail })),
            _ => browsers.push((sid, detail)),
        }
    }
    Ok(Overview { logins: newest_first(found), events: newest_first(happened), sessions: signed_in_browsers(browsers) })
}

/// A list's items by `(at, id)`, newest first: a union's rows come in no promised order,
/// so each list is put back in its own.
fn newest_first<T>(mut rows: Vec<(i64, i64, T)>) -> Vec<T> {
    rows.sort_by_key(|(at, id, _)| std::cmp::Reverse((*at, *id)));
    rows.into_iter().map(|(_, _, item)| item).collect()
}
