//! The audit trail: who signed in as whom and from where, who ended or refused what; the
//! person sees their own events.

use crate::common::*;
use serde_json::json;

async fn kinds(app: &TestApp) -> Vec<(String, Option<i64>, String)> {
    sqlx::query_as("SELECT kind, user_id, detail FROM audit_events ORDER BY id").fetch_all(&app.pool).await.unwrap()
}

#[tokio::test]
async fn sign_ins_refusals_and_sign_outs_are_recorded() {
    let app = spawn(&[]).await;
    let (a, b) = (browser(), browser());
    for br in [&a, &b] {
        let t = app.new_ticket(br).await;
        let token = app.scan(&t, "zhangsan").await;
        app.confirm(&t, &token).await;
        assert_eq!(app.finalize(br, &t).await.0, 200);
    }
    // A second WeChat user tries someone's scanned ticket; a wrong token tries to confirm.
    let t = app.new_ticket(&browser()).await;
    let token = app.scan(&t, "zhangsan").await;
    let code = app.wx_code("lisi").await;
    assert_error(&app.post(&phone(), "/api/mp/scan", json!({ "ticket": t, "code": code })).await, 409, "already_scanned");
    let wrong = app.post(&phone(), "/api/mp/confirm", json!({ "ticket": t, "confirm_token": format!("{token}x") })).await;
    assert_error(&wrong, 403, "not_scanner");
    let (s, _) = app.post(&b, "/api/sessions/revoke-others", json!({})).await;
    assert_eq!(s, 200);

    let (_, me) = app.post(&b, "/api/me", json!({})).await;
    let user = me["user"]["id"].as_i64().unwrap();
    let events = me["events"].as_array().unwrap();
    let seen: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    // A refused confirm on their scan is theirs to see (someone held a wrong token).
    assert_eq!(seen, vec!["revoke_others", "confirm_refused", "sign_in", "sign_in"], "newest first: {me}");
    assert_eq!(events[0]["detail"], "1");
    assert_eq!(events[2]["browser"], "Chrome 131 · Windows 10");
    assert_eq!(events[2]["ip"], "127.0.0.1");

    let (s, _) = app.post(&b, "/api/logout", json!({})).await;
    assert_eq!(s, 200);
    let all = kinds(&app).await;
    let expected = vec![
        ("sign_in".to_string(), Some(user), String::new()),
        ("sign_in".into(), Some(user), String::new()),
        ("scan_refused".into(), None, "already_scanned".into()),
        ("confirm_refused".into(), Some(user), "not_scanner".into()),
        ("revoke_others".into(), Some(user), "1".into()),
        ("logout".into(), Some(user), String::new()),
    ];
    assert_eq!(all, expected);
    let secrets: Vec<(String,)> = sqlx::query_as("SELECT detail FROM audit_events").fetch_all(&app.pool).await.unwrap();
    assert!(secrets.iter().all(|(d,)| !d.contains(&token)), "no confirm token in the trail");
}
