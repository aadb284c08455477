//! What a careful attacker or an unlucky network finds (SECURITY.md): lost finalize
//! answers, fixation, sessions that must stay gone, cookieless floods, allocation by
//! unknown ids, spoofed client IPs, phishing text on the phone, https headers.

use crate::common::*;
use reqwest::header::{HeaderMap, SET_COOKIE};
use serde_json::{Value, json};
use tower_sessions::SessionStore as _;

/// A ticket scanned and confirmed by `user`, made by `b`.
async fn confirmed(app: &TestApp, b: &reqwest::Client, user: &str) -> String {
    let t = app.new_ticket(b).await;
    let token = app.scan(&t, user).await;
    app.confirm(&t, &token).await;
    t
}

/// The value of the session cookie a response sets, if any.
fn set_session(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.contains("scanlogin_session="))
        .map(|c| c.split(';').next().unwrap_or("").split_once('=').map(|(_, v)| v.to_string()).unwrap_or_default())
}

/// A POST carrying exactly `cookie` (no cookie jar): what a browser that lost a
/// `Set-Cookie` sends, or an attacker holding a copy.
async fn post_with_cookie(app: &TestApp, cookie: &str, path: &str, body: Value) -> (u16, Value, HeaderMap) {
    let res = reqwest::Client::new()
        .post(format!("{}{path}", app.base))
        .header("cookie", format!("scanlogin_session={cookie}"))
        .header("accept", "application/json")
        .json(&body)
        .send()
        .await
        .unwrap();
    let (status, headers) = (res.status().as_u16(), res.headers().clone());
    (status, res.json().await.unwrap(), headers)
}

/// The browser's pre-login session id, read off its first ticket's answer.
async fn ticket_with_cookie(app: &TestApp) -> (String, String, String) {
    let res = reqwest::Client::new()
        .post(format!("{}/api/login/ticket", app.base))
        .header("accept", "application/json")
        .json(&json!({ "next": "/account?from=lost" }))
        .send()
        .await
        .unwrap();
    let cookie = set_session(res.headers()).expect("a binding session");
    let v: Value = res.json().await.unwrap();
    (v["ticket"].as_str().unwrap().to_string(), v["finalize_key"].as_str().unwrap().to_string(), cookie)
}

#[tokio::test]
async fn a_lost_finalize_answer_is_repeated_within_a_minute_and_signs_in() {
    let app = spawn(&[]).await;
    let (t, key, cookie) = ticket_with_cookie(&app).await;
    let token = app.scan(&t, "zhangsan").await;
    app.confirm(&t, &token).await;
    let body = json!({ "ticket": t, "finalize_key": key });
    let (s, first, headers) = post_with_cookie(&app, &cookie, "/api/login/finalize", body.clone()).await;
    assert_eq!(s, 200, "{first}");
    let lost = set_session(&headers).expect("sign-in sets a new cookie");
    assert_ne!(lost, cookie);
    // The answer (and its Set-Cookie) never arrived: the page asks again, old cookie.
    let (s, again, headers) = post_with_cookie(&app, &cookie, "/api/login/finalize", body.clone()).await;
    assert_eq!((s, &again), (200, &first), "same answer, same next");
    let fresh = set_session(&headers).expect("signed in again");
    let (s, me, _) = post_with_cookie(&app, &fresh, "/api/me", json!({})).await;
    assert_eq!(s, 200, "{me}");
    let (_, me_lost, _) = post_with_cookie(&app, &lost, "/api/me", json!({})).await;
    assert_eq!(me["user"]["id"], me_lost["user"]["id"], "the same user either way");
    // With the new cookie, too.
    let (s, _, _) = post_with_cookie(&app, &fresh, "/api/login/finalize", body.clone()).await;
    assert_eq!(s, 200);
    assert_eq!(app.count("logins").await, 1, "one login, recorded once");
    // A minute later the ticket is used.
    sqlx::query("UPDATE tickets SET updated_at = updated_at - 61000 WHERE id = $1").bind(&t).execute(&app.pool).await.unwrap();
    app.state.tickets.forget_kept(); // the server keeps tickets in memory
    let (s, v, _) = post_with_cookie(&app, &fresh, "/api/login/finalize", body).await;
    assert_eq!((s, v["code"].as_str()), (409, Some("ticket_used")), "{v}");
}

#[tokio::test]
async fn a_copied_pre_login_cookie_can_neither_finalize_nor_ride_the_login() {
    let app = spawn(&[]).await;
    let (t, key, victim_cookie) = ticket_with_cookie(&app).await;
    let attacker_cookie = victim_cookie.clone(); // planted, or read off the victim's machine
    let token = app.scan(&t, "lisi").await;
    app.confirm(&t, &token).await;
    // Before the victim: the ticket id and the cookie are not enough.
    let (s, v, _) = post_with_cookie(&app, &attacker_cookie, "/api/login/finalize", json!({ "ticket": t })).await;
    assert_eq!((s, v["code"].as_str()), (404, Some("ticket_not_found")), "{v}");
    let guessed = json!({ "ticket": t, "finalize_key": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" });
    let (s, _, _) = post_with_cookie(&app, &attacker_cookie, "/api/login/finalize", guessed.clone()).await;
    assert_eq!(s, 404);
    // The victim signs in.
    let (s, _, headers) = post_with_cookie(&app, &victim_cookie, "/api/login/finalize", json!({ "ticket": t, "finalize_key": key })).await;
    assert_eq!(s, 200);
    let victim_now = set_session(&headers).unwrap();
    // After the victim: still nothing, and the copied cookie is not signed in.
    let (s, _, _) = post_with_cookie(&app, &attacker_cookie, "/api/login/finalize", guessed).await;
    assert_eq!(s, 404);
    let (s, _, _) = post_with_cookie(&app, &attacker_cookie, "/api/me", json!({})).await;
    assert_eq!(s, 401);
    // The old cookie's binding key is not the signed-in session's.
    let key_of = |id: String| {
        let pool = app.pool.clone();
        async move {
            let (data,): (String,) =
                sqlx::query_as("SELECT data FROM sessions WHERE id = $1").bind(stored_key(&id)).fetch_one(&pool).await.unwrap();
            serde_json::from_str::<Value>(&data).unwrap()["browser_key"].clone()
        }
    };
    assert_ne!(key_of(attacker_cookie).await, key_of(victim_now).await);
}

#[tokio::test]
async fn logged_out_and_revoked_sessions_stay_gone() {
    let app = spawn(&[]).await;
    let ((first, first_jar), second) = (browser_with_jar(), browser());
    for b in [&first, &second] {
        let t = confirmed(&app, b, "wangwu").await;
        assert_eq!(app.finalize(b, &t).await.0, 200);
    }
    // The second browser has a long-poll open when the first revokes it.
    let t = app.new_ticket(&second).await;
    let poll = {
        let (second, base, t) = (second.clone(), app.base.clone(), t.clone());
        tokio::spawn(async move {
            second.post(format!("{base}/api/login/status")).json(&json!({ "ticket": t, "seen": 1 })).send().await.unwrap().status()
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (s, v) = app.post(&first, "/api/sessions/revoke-others", json!({})).await;
    assert_eq!((s.as_u16(), &v["revoked"]), (200, &json!(1)));
    // The long-poll ends after the revocation (the phone scans).
    app.scan(&t, "wangwu").await;
    assert_eq!(poll.await.unwrap(), 200);
    assert_error(&app.post(&second, "/api/me", json!({})).await, 401, "unauthenticated");

    // A save arriving after the delete (a request that was already in flight and touched
    // its session) does not bring the row back.
    let id = session_cookie(&first_jar, &app.base).unwrap();
    let (key,): (String,) = sqlx::query_as("SELECT id FROM sessions WHERE user_id IS NOT NULL").fetch_one(&app.pool).await.unwrap();
    assert_eq!(key, stored_key(&id), "the first browser's session, by the digest of its id");
    let record = app.state.sessions.load(&id.parse().unwrap()).await.unwrap().expect("the first browser's session");
    let (s, _) = app.post(&first, "/api/logout", json!({})).await;
    assert_eq!(s, 200);
    app.state.sessions.save(&record).await.unwrap();
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM sessions WHERE id = $1").bind(&key).fetch_one(&app.pool).await.unwrap();
    assert_eq!(n, 0, "a logged-out session stays gone");
}

#[tokio::test]
async fn an_anonymous_session_is_short_lived_and_says_so() {
    let app = spawn(&[]).await;
    let res = reqwest::Client::new()
        .post(format!("{}/api/login/ticket", app.base))
        .header("accept", "application/json")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let cookie = res.headers().get(SET_COOKIE).unwrap().to_str().unwrap().to_string();
    // The longest ticket (300 s) plus the purge grace (600 s).
    assert!(cookie.contains("Max-Age=900"), "{cookie}");
    let (expires,): (i64,) = sqlx::query_as("SELECT expires_at FROM sessions").fetch_one(&app.pool).await.unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    assert!(expires <= now + 3_600_000, "an anonymous session lives at most an hour");
    // Signing in gives the 7-day idle expiry.
    let b = browser();
    let t = confirmed(&app, &b, "zhangsan").await;
    let res =
        b.post(format!("{}/api/login/finalize", app.base)).json(&json!({ "ticket": t, "finalize_key": app.key(&t) })).send().await.unwrap();
    let cookie = res.headers().get(SET_COOKIE).unwrap().to_str().unwrap().to_string();
    assert!(cookie.contains("Max-Age=604800"), "{cookie}");
}

/// A client behind the trusted proxy (this test, on 127.0.0.1) at address `ip`.
fn from(ip: &str) -> reqwest::Client {
    let mut h = HeaderMap::new();
    h.insert("x-forwarded-for", ip.parse().unwrap());
    h.insert("accept", "application/json".parse().unwrap());
    reqwest::Client::builder().default_headers(h).user_agent(CHROME_UA).build().unwrap()
}

#[tokio::test]
async fn a_cookieless_flood_is_bounded_per_ipv6_64_and_in_total() {
    let app = spawn(&["--trusted-proxies", "127.0.0.1", "--rate-tickets-per-ip", "3", "--max-live-tickets", "5"]).await;
    // Cookieless: every request is a new browser, so only the per-client limit binds.
    for i in 1..=3 {
        assert_eq!(app.post(&from(&format!("2001:db8:0:1::{i}")), "/api/login/ticket", json!({})).await.0, 200);
    }
    let refused = app.post(&from("2001:db8:0:1:ffff::9"), "/api/login/ticket", json!({})).await;
    assert_error(&refused, 429, "rate_limited");
    // Another /64 is another client.
    assert_eq!(app.post(&from("2001:db8:0:2::1"), "/api/login/ticket", json!({})).await.0, 200);
    assert_eq!(app.post(&from("192.0.2.1"), "/api/login/ticket", json!({})).await.0, 200);
    // Five tickets alive: the ceiling holds against every other address.
    let before = app.count("tickets").await;
    let busy = app.post(&from("192.0.2.2"), "/api/login/ticket", json!({})).await;
    assert_error(&busy, 503, "busy");
    assert_eq!(app.count("tickets").await, before, "nothing stored");
    let c = app.counters().await;
    assert_eq!(c["getwxacodeunlimit"], 5, "no WeChat call for a refused ticket: {c}");
}

#[tokio::test]
async fn unknown_ids_allocate_nothing_that_stays() {
    let app = spawn(&["--rate-phone-per-ip", "0"]).await;
    let b = browser();
    let _mine = app.new_ticket(&b).await;
    let random_id = |i: usize| format!("{:0>22}", format!("{i:x}Zz"));
    for batch in (0..5000).collect::<Vec<usize>>().chunks(250) {
        let calls: Vec<_> = batch
            .iter()
            .map(|&i| {
                let (b, url, id) = (b.clone(), format!("{}/api/login/status", app.base), random_id(i));
                tokio::spawn(async move { b.post(url).json(&json!({ "ticket": id, "seen": 1 })).send().await.unwrap().status().as_u16() })
            })
            .collect();
        for c in calls {
            assert_eq!(c.await.unwrap(), 404);
        }
    }
    assert_eq!(app.state.tickets.waiting(), (0, 0), "no waiter entry left for unknown ids");
    for i in 0..200 {
        let answer = app.post(&phone(), "/api/mp/scan", json!({ "ticket": random_id(i), "code": "x" })).await;
        assert_error(&answer, 404, "ticket_not_found");
    }
    assert_eq!(app.state.limits.phone_per_ticket.len(), 0, "no limiter key for unknown tickets");
}

#[tokio::test]
async fn garbage_scans_from_one_client_do_not_lock_out_the_real_scanner() {
    let app = spawn(&["--trusted-proxies", "127.0.0.1", "--rate-phone-per-ticket", "20"]).await;
    let t = app.new_ticket(&browser()).await;
    let attacker = from("203.0.113.66");
    for _ in 0..20 {
        let answer = app.post(&attacker, "/api/mp/scan", json!({ "ticket": t, "code": "SIMCODE_garbage" })).await;
        assert_error(&answer, 400, "invalid_wx_code");
    }
    assert_error(&app.post(&attacker, "/api/mp/scan", json!({ "ticket": t, "code": "SIMCODE_garbage" })).await, 429, "rate_limited");
    let code = app.wx_code("zhangsan").await;
    let (s, v) = app.post(&from("198.51.100.7"), "/api/mp/scan", json!({ "ticket": t, "code": code })).await;
    assert_eq!(s, 200, "{v}");
}

#[tokio::test]
async fn the_phone_sees_the_real_client_ip_and_never_raw_user_agent_text() {
    let app = spawn(&["--trusted-proxies", "127.0.0.1"]).await;
    for (ua, lang, shown) in [("请放心点击登录", "zh-CN", "未知浏览器"), ("Safe: please tap the green button", "en", "Unknown browser")]
    {
        // The client's own entry carries a port; the attacker-written one to its left must not win.
        let b = reqwest::Client::builder()
            .cookie_store(true)
            .user_agent(reqwest::header::HeaderValue::from_bytes(ua.as_bytes()).unwrap())
            .build()
            .unwrap();
        let res = b
            .post(format!("{}/api/login/ticket", app.base))
            .header("x-forwarded-for", "6.6.6.6, 192.0.2.10:5678")
            .header("accept", "application/json")
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        let t = res.json::<Value>().await.unwrap()["ticket"].as_str().unwrap().to_string();
        let code = app.wx_code("zhangsan").await;
        let scanned: Value = phone()
            .post(format!("{}/api/mp/scan", app.base))
            .header("accept-language", lang)
            .json(&json!({ "ticket": t, "code": code }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(scanned["requester"]["browser"], shown, "{scanned}");
        assert_eq!(scanned["requester"]["ip"], "192.0.2.10", "{scanned}");
    }
}

#[tokio::test]
async fn https_deployments_pin_the_cookie_and_forbid_caching() {
    let app = spawn(&["--public-url", "https://login.example.com"]).await;
    let res = reqwest::Client::new()
        .post(format!("{}/api/login/ticket", app.local))
        .header("accept", "application/json")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let cookie = res.headers().get(SET_COOKIE).unwrap().to_str().unwrap().to_string();
    assert!(cookie.starts_with("__Host-scanlogin_session="), "{cookie}");
    assert!(cookie.contains("Secure") && cookie.contains("Path=/") && !cookie.contains("Domain"), "{cookie}");
    assert!(res.headers().get("strict-transport-security").is_some());
    let page = reqwest::get(format!("{}/login", app.local)).await.unwrap();
    assert_eq!(page.headers()["cache-control"], "no-store");
    assert!(page.headers()["strict-transport-security"].to_str().unwrap().contains("max-age="));
}

#[tokio::test]
async fn the_simulator_refuses_cross_site_posts() {
    let app = spawn(&[]).await;
    let res = reqwest::Client::new()
        .post(format!("{}/_wechat/sim/faults", app.base))
        .header("origin", "https://evil.example")
        .json(&json!({ "endpoint": "getwxacodeunlimit", "kind": "garbage" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(res.json::<Value>().await.unwrap()["code"], "cross_site");
    // The QR still works: the fault was not added.
    app.new_ticket(&browser()).await;
}

#[tokio::test]
async fn a_busy_wechat_costs_a_bounded_number_of_requests() {
    let app = spawn(&[]).await;
    app.fault("getwxacodeunlimit", json!({ "kind": "errcode", "errcode": -1 }), 50).await;
    let started = std::time::Instant::now();
    assert_error(&app.post(&browser(), "/api/login/ticket", json!({})).await, 502, "wechat_unavailable");
    let c = app.counters().await;
    let requests = c["stable_token"].as_u64().unwrap_or(0) + c["getwxacodeunlimit"].as_u64().unwrap_or(0);
    assert_eq!(requests, 4, "the request budget: {c}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}
