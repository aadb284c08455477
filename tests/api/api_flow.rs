//! The whole login over HTTP against the real app (demo mode), and every refusal of
//! docs/api.md with a before/after snapshot showing it changed nothing.

use crate::common::*;
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test]
async fn scan_confirm_finalize_signs_the_browser_in() {
    let app = spawn(&[]).await;
    let (browser, other) = (browser(), browser());
    let (s, issued) = app.post(&browser, "/api/login/ticket", json!({ "next": "/account?tab=1" })).await;
    assert_eq!(s, 200, "{issued}");
    let ticket = issued["ticket"].as_str().unwrap().to_string();
    assert!(ticket.len() >= 22 && ticket.len() <= 32);
    assert_eq!(issued["expires_in"], 120);

    // The QR is a real JPEG whose code links to the simulated phone for this ticket.
    let link = qr_link(issued["qr"].as_str().unwrap());
    assert_eq!(format!("{}://{}", link.scheme(), link.host_str().unwrap()), app.base.rsplit_once(':').unwrap().0);
    assert_eq!(link.path(), "/_wechat/phone");
    let scene = link.query_pairs().find(|(k, _)| k == "scene").map(|(_, v)| v.into_owned());
    assert_eq!(scene.as_deref(), Some(ticket.as_str()), "the scene is the ticket");

    let (s, st) = app.status(&browser, &ticket, 0).await;
    assert_eq!((s.as_u16(), &st["status"], &st["version"]), (200, &json!("waiting"), &json!(1)));

    // A long-poll that is waiting answers as soon as the phone scans.
    let poll = {
        let (app_base, browser, ticket) = (app.base.clone(), browser.clone(), ticket.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let v: serde_json::Value = browser
                .post(format!("{app_base}/api/login/status"))
                .json(&json!({ "ticket": ticket, "seen": 1 }))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            (v, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (s, scanned) = app.post(&phone(), "/api/mp/scan", json!({ "ticket": ticket, "code": app.wx_code("zhangsan").await })).await;
    assert_eq!(s, 200, "{scanned}");
    assert_eq!(scanned["requester"]["browser"], "Chrome 131 · Windows 10");
    assert_eq!(scanned["requester"]["ip"], "127.0.0.1");
    assert_eq!(scanned["requester"]["site"], "127.0.0.1");
    assert!(scanned.to_string().find("session_key").is_none());
    let (polled, waited) = poll.await.unwrap();
    assert_eq!(polled["status"], "scanned", "{polled}");
    assert_eq!(polled["version"], 2);
    assert!(waited >= Duration::from_millis(250), "the poll waited for the change ({waited:?})");
    assert!(polled.get("scanner").is_none() && !polled.to_string().contains("openid"));

    app.confirm(&ticket, scanned["confirm_token"].as_str().unwrap()).await;
    let (_, st) = app.status(&browser, &ticket, 2).await;
    assert_eq!((&st["status"], &st["version"]), (&json!("confirmed"), &json!(3)));

    let (s, me) = app.post(&browser, "/api/me", json!({})).await;
    assert_error(&(s, me), 401, "unauthenticated");
    let (s, fin) = app.finalize(&browser, &ticket).await;
    assert_eq!((s.as_u16(), &fin["next"]), (200, &json!("/account?tab=1")), "{fin}");

    let (s, me) = app.post(&browser, "/api/me", json!({})).await;
    assert_eq!(s, 200, "{me}");
    let masked = me["user"]["openid_masked"].as_str().unwrap();
    assert!(masked.contains('…') && masked.chars().count() == 9, "{masked}");
    assert_eq!(me["recent_logins"].as_array().unwrap().len(), 1);
    assert_eq!(me["recent_logins"][0]["browser"], "Chrome 131 · Windows 10");

    // The other browser is not signed in, and the ticket is spent. The browser's binding
    // key was rotated at sign-in: the ticket is no longer its to follow.
    assert_error(&app.post(&other, "/api/me", json!({})).await, 401, "unauthenticated");
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM tickets WHERE status = 'consumed'").fetch_one(&app.pool).await.unwrap();
    assert_eq!(n, 1);
    assert_error(&app.status(&browser, &ticket, 3).await, 404, "ticket_not_found");

    // Logout ends the session server-side.
    let (s, _) = app.post(&browser, "/api/logout", json!({})).await;
    assert_eq!(s, 200);
    assert_error(&app.post(&browser, "/api/me", json!({})).await, 401, "unauthenticated");
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM sessions WHERE user_id IS NOT NULL").fetch_one(&app.pool).await.unwrap();
    assert_eq!(n, 0, "logout deleted the signed-in session from the store");
}

#[tokio::test]
async fn session_id_and_binding_key_change_at_login() {
    let app = spawn(&[]).await;
    let (browser, jar) = browser_with_jar();
    let t1 = app.new_ticket(&browser).await;
    let t2 = app.new_ticket(&browser).await; // a second tab
    let ids_before: Vec<(String,)> = sqlx::query_as("SELECT id FROM sessions").fetch_all(&app.pool).await.unwrap();
    let cookie_before = session_cookie(&jar, &app.base).unwrap();
    assert_eq!(ids_before[0].0, stored_key(&cookie_before), "stored under the digest of the cookie's id");
    let token = app.scan(&t1, "lisi").await;
    app.confirm(&t1, &token).await;
    let (s, _) = app.finalize(&browser, &t1).await;
    assert_eq!(s, 200);
    let signed_in: Vec<(String,)> = sqlx::query_as("SELECT id FROM sessions WHERE user_id IS NOT NULL").fetch_all(&app.pool).await.unwrap();
    assert_eq!(ids_before.len(), 1);
    assert_eq!(signed_in.len(), 1);
    assert_ne!(ids_before[0].0, signed_in[0].0, "session fixation: the id must change at login");
    // The old id lives on briefly without any user, holding only the binding key.
    let (old_data, old_user): (String, Option<i64>) =
        sqlx::query_as("SELECT data, user_id FROM sessions WHERE id = $1").bind(&ids_before[0].0).fetch_one(&app.pool).await.unwrap();
    assert_eq!(old_user, None);
    let old: serde_json::Value = serde_json::from_str(&old_data).unwrap();
    assert_eq!(old.as_object().unwrap().keys().collect::<Vec<_>>(), vec!["browser_key"]);
    let (new_data,): (String,) =
        sqlx::query_as("SELECT data FROM sessions WHERE id = $1").bind(&signed_in[0].0).fetch_one(&app.pool).await.unwrap();
    let new: serde_json::Value = serde_json::from_str(&new_data).unwrap();
    assert_ne!(new["browser_key"], old["browser_key"], "the binding key is rotated at sign-in");
    // A request still carrying the old cookie is anonymous: not signed in, cookie untouched.
    let stale = reqwest::Client::new()
        .post(format!("{}/api/me", app.base))
        .header("cookie", format!("scanlogin_session={cookie_before}"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 401);
    assert!(stale.headers().get("set-cookie").is_none(), "no removal cookie for a rotated id");
    // The signed-in session no longer owns what the anonymous one made; a request
    // still carrying the old cookie does, for a moment, as an anonymous browser.
    assert_error(&app.status(&browser, &t2, 0).await, 404, "ticket_not_found");
    let stale = reqwest::Client::new()
        .post(format!("{}/api/login/status", app.base))
        .header("cookie", format!("scanlogin_session={cookie_before}"))
        .json(&json!({ "ticket": t2, "seen": 0 }))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 200);
}

#[tokio::test]
async fn rescan_by_the_same_user_rotates_the_confirm_token() {
    let app = spawn(&[]).await;
    let a = browser();
    let t = app.new_ticket(&a).await;
    let first = app.scan(&t, "zhangsan").await;
    let second = app.scan(&t, "zhangsan").await;
    assert_ne!(first, second);
    let answer = app.post(&phone(), "/api/mp/confirm", json!({ "ticket": t, "confirm_token": first })).await;
    assert_error(&answer, 403, "not_scanner");
    app.confirm(&t, &second).await;
}

#[tokio::test]
async fn expiry_is_answered_promptly_and_refuses_the_phone() {
    let app = spawn(&["--ticket-ttl-secs", "2", "--ticket-scanned-ttl-secs", "3"]).await;
    let a = browser();
    let t = app.new_ticket(&a).await;
    let started = Instant::now();
    let (s, st) = app.status(&a, &t, 1).await;
    let waited = started.elapsed();
    assert_eq!((s.as_u16(), &st["status"], &st["version"]), (200, &json!("expired"), &json!(2)), "{st}");
    assert!(waited < Duration::from_millis(3000), "answered within a second of expiring ({waited:?})");
    let answer = app.post(&phone(), "/api/mp/scan", json!({ "ticket": t, "code": "whatever" })).await;
    assert_error(&answer, 410, "ticket_expired");

    // A confirmed ticket that expires before finalize.
    let t = app.new_ticket(&a).await;
    let token = app.scan(&t, "zhangsan").await;
    app.confirm(&t, &token).await;
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let before = app.snapshot().await;
    let answer = app.finalize(&a, &t).await;
    assert_error(&answer, 410, "ticket_expired");
    // The expiry itself is recorded (time changed the ticket, not the request).
    let after = app.snapshot().await;
    assert!(after.contains("\"expired\""));
    assert_eq!(before.lines().skip(1).collect::<Vec<_>>(), after.lines().skip(1).collect::<Vec<_>>());
    assert_error(&app.post(&a, "/api/me", json!({})).await, 401, "unauthenticated");
}

#[tokio::test]
async fn wechat_failures_are_clear_errors_and_store_nothing() {
    let app = spawn(&[]).await;
    let a = browser();
    let before = app.count("tickets").await;

    app.fault("getwxacodeunlimit", json!({ "kind": "http_status", "status": 500 }), 1).await;
    assert_error(&app.post(&a, "/api/login/ticket", json!({})).await, 502, "wechat_unavailable");
    app.fault("getwxacodeunlimit", json!({ "kind": "garbage" }), 1).await;
    assert_error(&app.post(&a, "/api/login/ticket", json!({})).await, 502, "wechat_unavailable");
    app.fault("getwxacodeunlimit", json!({ "kind": "json" }), 1).await;
    assert_error(&app.post(&a, "/api/login/ticket", json!({})).await, 502, "wechat_unavailable");
    app.fault("getwxacodeunlimit", json!({ "kind": "errcode", "errcode": 41030 }), 1).await;
    assert_error(&app.post(&a, "/api/login/ticket", json!({})).await, 502, "wechat_unavailable");
    app.fault("getwxacodeunlimit", json!({ "kind": "errcode", "errcode": 45009 }), 1).await;
    let res = a.post(format!("{}/api/login/ticket", app.base)).json(&json!({})).send().await.unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["retry-after"], "60");
    assert_eq!(res.json::<serde_json::Value>().await.unwrap()["code"], "wechat_quota");
    // -1 four times in a row (the token is cached): the request budget of 4 runs out,
    // then a clear error.
    app.fault("getwxacodeunlimit", json!({ "kind": "errcode", "errcode": -1 }), 4).await;
    assert_error(&app.post(&a, "/api/login/ticket", json!({})).await, 502, "wechat_unavailable");
    assert_eq!(app.count("tickets").await, before, "no ticket stored for a failed code");

    // An image where JSON was expected (code2Session).
    let t = app.new_ticket(&a).await;
    app.fault("jscode2session", json!({ "kind": "image" }), 1).await;
    let answer = app.post(&phone(), "/api/mp/scan", json!({ "ticket": t, "code": app.wx_code("zhangsan").await })).await;
    assert_error(&answer, 502, "wechat_unavailable");
    let (_, st) = app.status(&a, &t, 0).await;
    assert_eq!(st["status"], "waiting", "a failed scan leaves the ticket waiting");
}

#[tokio::test]
async fn token_errors_refetch_once_and_busy_is_retried() {
    let app = spawn(&[]).await;
    let a = browser();
    app.new_ticket(&a).await;
    assert_eq!(app.counters().await["stable_token"], 1);
    app.new_ticket(&a).await;
    assert_eq!(app.counters().await["stable_token"], 1, "the token is cached");

    // 40001 mid-flight: drop the token, fetch a new one, retry once, succeed.
    app.fault("getwxacodeunlimit", json!({ "kind": "errcode", "errcode": 40001 }), 1).await;
    app.new_ticket(&a).await;
    let c = app.counters().await;
    assert_eq!((c["stable_token"].as_u64(), c["getwxacodeunlimit"].as_u64()), (Some(2), Some(4)), "{c}");
    // 42001 twice: the single retry also fails, the caller sees a clear error.
    app.fault("getwxacodeunlimit", json!({ "kind": "errcode", "errcode": 42001 }), 2).await;
    assert_error(&app.post(&a, "/api/login/ticket", json!({})).await, 502, "wechat_unavailable");
    // -1 once: retried with backoff, then fine.
    app.fault("getwxacodeunlimit", json!({ "kind": "errcode", "errcode": -1 }), 1).await;
    app.new_ticket(&a).await;
}

#[tokio::test]
async fn messages_follow_accept_language() {
    let app = spawn(&[]).await;
    let res = reqwest::Client::new()
        .post(format!("{}/api/me", app.base))
        .header("accept-language", "en-US,en;q=0.9")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = res.json().await.unwrap();
    assert_eq!(v["message"], "Please sign in first");
    let (_, v) = app.post(&browser(), "/api/me", json!({})).await;
    assert_eq!(v["message"], "请先登录");
}

#[tokio::test]
async fn a_restart_loses_nothing() {
    let app = spawn(&[]).await;
    let a = browser();
    let t = app.new_ticket(&a).await;
    let token = app.scan(&t, "wangwu").await;
    // Stop the server; start a new one on the same database.
    app.server.abort();
    let _ = app.server.await;
    let TestApp { dir, db_url, keys, .. } = app;
    let app = spawn_on(dir, db_url, &[]).await;
    *app.keys.lock().unwrap() = keys.into_inner().unwrap();
    // The browser's cookie (same host), its finalize key and the phone's token still work.
    app.confirm(&t, &token).await;
    let (s, v) = app.finalize(&a, &t).await;
    assert_eq!(s, 200, "{v}");
    let (s, me) = app.post(&a, "/api/me", json!({})).await;
    assert_eq!(s, 200, "{me}");
}

/// Sessions written by a version that stored the id itself (the cookie's value) move to
/// its digest at start: nobody is signed out by the upgrade, and the id leaves the table.
#[tokio::test]
async fn sessions_stored_under_their_id_move_to_its_digest_at_start() {
    let app = spawn(&[]).await;
    let (b, jar) = browser_with_jar();
    app.sign_in(&b, "wangwu").await;
    let id = session_cookie(&jar, &app.base).unwrap();
    let digest = stored_key(&id);
    // As the previous version left it.
    let legacy = sqlx::query("UPDATE sessions SET id = $1 WHERE id = $2").bind(&id).bind(&digest).execute(&app.pool).await.unwrap();
    assert_eq!(legacy.rows_affected(), 1, "the signed-in session is stored under the digest of its cookie");
    app.server.abort();
    let _ = app.server.await;
    let TestApp { dir, db_url, .. } = app;
    let app = spawn_on(dir, db_url, &[]).await;
    let (s, me) = app.post(&b, "/api/me", json!({})).await;
    assert_eq!(s, 200, "still signed in after the upgrade: {me}");
    let keys: Vec<(String,)> = sqlx::query_as("SELECT id FROM sessions").fetch_all(&app.pool).await.unwrap();
    assert!(keys.iter().any(|(k,)| k == &digest), "{keys:?}");
    assert!(keys.iter().all(|(k,)| k.len() == 64 && k != &id), "no session id left in the table: {keys:?}");
}

#[tokio::test]
async fn signed_in_browsers_are_listed_and_others_can_be_signed_out() {
    let app = spawn(&[]).await;
    let (first, second) = (browser(), browser());
    for b in [&first, &second] {
        let t = app.new_ticket(b).await;
        let token = app.scan(&t, "zhangsan").await;
        app.confirm(&t, &token).await;
        let (s, _) = app.finalize(b, &t).await;
        assert_eq!(s, 200);
    }
    let (_, me) = app.post(&second, "/api/me", json!({})).await;
    let sessions = me["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2, "{me}");
    assert_eq!(sessions.iter().filter(|s| s["current"] == true).count(), 1);
    assert_eq!(sessions[0]["browser"], "Chrome 131 · Windows 10");
    assert!(!me.to_string().contains("scanlogin_session"), "session ids are never sent");

    // Cross-site attempts are refused before anything happens.
    let res = second
        .post(format!("{}/api/sessions/revoke-others", app.base))
        .header("origin", "https://evil.example")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert_error(&app.post(&phone(), "/api/sessions/revoke-others", json!({})).await, 401, "unauthenticated");

    let (s, v) = app.post(&second, "/api/sessions/revoke-others", json!({})).await;
    assert_eq!((s.as_u16(), &v["revoked"]), (200, &json!(1)));
    assert_error(&app.post(&first, "/api/me", json!({})).await, 401, "unauthenticated");
    let (s, me) = app.post(&second, "/api/me", json!({})).await;
    assert_eq!(s, 200);
    assert_eq!(me["sessions"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn concurrent_finalizes_from_one_page_consume_once_and_all_sign_in() {
    let app = spawn(&[]).await;
    let b = browser();
    let t = app.new_ticket(&b).await;
    let token = app.scan(&t, "zhangsan").await;
    app.confirm(&t, &token).await;
    let calls: Vec<_> = (0..6)
        .map(|_| {
            let (b, url, body) =
                (b.clone(), format!("{}/api/login/finalize", app.base), json!({ "ticket": t, "finalize_key": app.key(&t) }));
            tokio::spawn(async move {
                let res = b.post(url).json(&body).send().await.unwrap();
                let status = res.status().as_u16();
                (status, res.json::<serde_json::Value>().await.unwrap())
            })
        })
        .collect();
    for c in calls {
        let (status, body) = c.await.unwrap();
        // The first consumes; the others are repeats within the minute: each signs in.
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["next"], "/account");
    }
    assert_eq!(app.count("logins").await, 1, "consumed exactly once");
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM tickets WHERE status = 'consumed'").fetch_one(&app.pool).await.unwrap();
    assert_eq!(n, 1);
    // Whichever session cookie the browser kept, it is signed in.
    let (s, me) = app.post(&b, "/api/me", json!({})).await;
    assert_eq!(s, 200, "{me}");
}

#[tokio::test]
async fn the_account_page_lists_logins_events_and_browsers_newest_first() {
    let app = spawn(&[]).await;
    check_account_overview(&app).await;
}
