//! The mini program's own login and 「我的网页登录」: the person's browsers listed on the
//! phone and signed out from there, at once, on SQLite and on every PostgreSQL instance.

use crate::common::*;
use serde_json::{Value, json};

/// A phone token for `user` (who has an account).
async fn phone_login(app: &TestApp, user: &str) -> String {
    let (s, v) = app.post(&phone(), "/api/mp/login", json!({ "code": app.wx_code(user).await })).await;
    assert_eq!(s, 200, "{v}");
    assert!(v["expires_in"].as_u64().unwrap() > 86_400, "{v}");
    v["token"].as_str().unwrap().to_string()
}

async fn list(app: &TestApp, token: &str) -> Vec<Value> {
    let (s, v) = app.post(&phone(), "/api/mp/web-sessions", json!({ "token": token })).await;
    assert_eq!(s, 200, "{v}");
    v["sessions"].as_array().unwrap().clone()
}

async fn signed_in(app: &TestApp, b: &reqwest::Client) -> bool {
    app.post(b, "/api/me", json!({})).await.0 == 200
}

#[tokio::test]
async fn the_phone_lists_its_browsers_and_signs_them_out() {
    let app = spawn(&[]).await;
    let (office, home, other) = (browser(), browser(), browser());
    app.sign_in(&office, "zhangsan").await;
    app.sign_in(&home, "zhangsan").await;
    app.sign_in(&other, "lisi").await;
    let token = phone_login(&app, "zhangsan").await;

    let sessions = list(&app, &token).await;
    assert_eq!(sessions.len(), 2, "zhangsan's two browsers, not lisi's: {sessions:?}");
    for s in &sessions {
        assert!(s["browser"].as_str().unwrap().starts_with("Chrome 131"), "{s}");
        assert_eq!(s["ip"], "127.0.0.1");
        assert!(s["signed_in_at"].as_str().unwrap().contains('T') && s["last_seen"].is_string(), "{s}");
        assert!(s["id"].as_str().is_some_and(|id| !id.is_empty()));
    }

    // Another person's browser cannot be named: 404, and it stays signed in.
    let lisi_token = phone_login(&app, "lisi").await;
    let lisi_session = list(&app, &lisi_token).await[0]["id"].as_str().unwrap().to_string();
    let before = app.snapshot().await;
    let refused = app.post(&phone(), "/api/mp/web-sessions/sign-out", json!({ "token": token, "session": lisi_session })).await;
    assert_error(&refused, 404, "not_found");
    assert_eq!(app.snapshot().await, before, "a refused sign-out changes nothing");
    assert!(signed_in(&app, &other).await);

    // 退出 on one: that browser at once, the other stays.
    let first = sessions[0]["id"].as_str().unwrap().to_string();
    let (s, v) = app.post(&phone(), "/api/mp/web-sessions/sign-out", json!({ "token": token, "session": first })).await;
    assert_eq!((s.as_u16(), &v["revoked"]), (200, &json!(1)), "{v}");
    let still = [signed_in(&app, &office).await, signed_in(&app, &home).await];
    assert_eq!(still.iter().filter(|s| **s).count(), 1, "one of the two signed out: {still:?}");
    assert_eq!(list(&app, &token).await.len(), 1);
    let again = app.post(&phone(), "/api/mp/web-sessions/sign-out", json!({ "token": token, "session": first })).await;
    assert_error(&again, 404, "not_found");

    // 全部退出.
    let (s, v) = app.post(&phone(), "/api/mp/web-sessions/sign-out-all", json!({ "token": token })).await;
    assert_eq!((s.as_u16(), &v["revoked"]), (200, &json!(1)), "{v}");
    assert!(!signed_in(&app, &office).await && !signed_in(&app, &home).await);
    assert!(signed_in(&app, &other).await, "lisi is untouched");
    let kinds: Vec<(String, String)> = sqlx::query_as("SELECT kind, detail FROM audit_events WHERE kind = 'phone_sign_out' ORDER BY id")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(kinds, vec![("phone_sign_out".to_string(), "1".to_string()), ("phone_sign_out".to_string(), "all: 1".to_string())]);
}

#[tokio::test]
async fn phone_tokens_are_refused_when_unknown_renewed_or_the_person_is_disabled() {
    let app = spawn(&[]).await;
    for token in ["", "not-a-token", &"x".repeat(500)] {
        assert_error(&app.post(&phone(), "/api/mp/web-sessions", json!({ "token": token })).await, 401, "unauthenticated");
    }
    assert_error(&app.post(&phone(), "/api/mp/web-sessions", json!({})).await, 400, "bad_request");
    // Nobody who never signed in to a site gets a phone login (sign-up happens at a scan).
    let unknown = app.post(&phone(), "/api/mp/login", json!({ "code": app.wx_code("wangwu").await })).await;
    assert_error(&unknown, 404, "user_not_found");
    assert_eq!(app.count("users").await, 0);

    let b = browser();
    app.sign_in(&b, "zhangsan").await;
    let old = phone_login(&app, "zhangsan").await;
    let (s, renewed) = app.post(&phone(), "/api/mp/renew", json!({ "token": old })).await;
    assert_eq!(s, 200, "{renewed}");
    let new = renewed["token"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    assert_error(&app.post(&phone(), "/api/mp/web-sessions", json!({ "token": old })).await, 401, "unauthenticated");
    assert_eq!(list(&app, &new).await.len(), 1);
    let stored: Vec<(String,)> = sqlx::query_as("SELECT token_hash FROM phone_sessions").fetch_all(&app.pool).await.unwrap();
    assert!(stored.iter().all(|(h,)| h != &new && h != &old), "only digests are stored");

    // An expired token is refused.
    sqlx::query("UPDATE phone_sessions SET expires_at = 1").execute(&app.pool).await.unwrap();
    assert_error(&app.post(&phone(), "/api/mp/web-sessions", json!({ "token": new })).await, 401, "unauthenticated");

    // Disabled by an admin: the phone's tokens end with the person's sessions.
    let token = phone_login(&app, "zhangsan").await;
    let admin =
        reqwest::Client::builder().cookie_store(true).user_agent(CHROME_UA).redirect(reqwest::redirect::Policy::none()).build().unwrap();
    crate::people::sign_in_admin(&app, &admin, "lisi").await;
    let zhangsan: i64 = sqlx::query_scalar("SELECT id FROM users ORDER BY id LIMIT 1").fetch_one(&app.pool).await.unwrap();
    let (s, v) = app.post(&admin, "/api/admin/user", json!({ "id": zhangsan, "status": "disabled" })).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(app.count("phone_sessions").await, 0);
    assert_error(&app.post(&phone(), "/api/mp/web-sessions", json!({ "token": token })).await, 401, "unauthenticated");
    let again = app.post(&phone(), "/api/mp/login", json!({ "code": app.wx_code("zhangsan").await })).await;
    assert_error(&again, 403, "account_disabled");
}

/// On PostgreSQL a browser signed out from the phone through instance A is refused by
/// instance B at once, although B had its session cached.
#[tokio::test]
async fn a_browser_signed_out_from_the_phone_is_out_on_every_instance() {
    let Some((url, name)) = crate::postgres::fresh_database().await else { return };
    let a = spawn_on(tempfile::tempdir().unwrap(), url.clone(), &[]).await;
    let b = spawn_on(tempfile::tempdir().unwrap(), url, &[]).await;
    let desk = browser();
    a.sign_in(&desk, "lisi").await;
    // B caches the session once its change listener is connected.
    for _ in 0..100 {
        assert_eq!(b.verify(&desk).await, 200);
        if b.state.sessions.cache().len() == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(b.state.sessions.cache().len(), 1, "B cached the session");
    let token = phone_login(&a, "lisi").await;
    let session = list(&b, &token).await[0]["id"].as_str().unwrap().to_string();
    let (s, v) = a.post(&phone(), "/api/mp/web-sessions/sign-out", json!({ "token": token, "session": session })).await;
    assert_eq!(s, 200, "{v}");
    eventually("B still lets the browser in", async || b.verify(&desk).await != 200).await;
    assert_eq!(b.verify(&desk).await, 401);
    assert!(list(&b, &token).await.is_empty());
    for app in [a, b] {
        app.server.abort();
        app.pool.close().await;
    }
    crate::postgres::drop_database(&name).await;
}
