//! The pool of ready codes: tickets come from it while WeChat refuses, their lifetime
//! counts from the hand-out, and a dry pool makes codes on the spot (then WeChat's
//! refusal is a clear `wechat_quota`).

use crate::common::*;
use serde_json::json;
use std::sync::atomic::Ordering;
use std::time::Duration;

#[tokio::test]
async fn the_pool_serves_while_wechat_refuses_and_a_dry_pool_says_quota_clearly() {
    let app = spawn(&["--qr-pool-size", "3"]).await;
    let pool = app.state.codes.clone();
    for _ in 0..200 {
        if pool.len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(pool.len(), 3, "the pool fills by itself");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    // WeChat now refuses every code (45009, the per-minute quota).
    app.fault("getwxacodeunlimit", json!({ "kind": "errcode", "errcode": 45009 }), 50).await;

    // The pool still serves: a whole login, then two more tickets.
    let b = browser();
    let (s, issued) = app.post(&b, "/api/login/ticket", json!({})).await;
    assert_eq!(s, 200, "{issued}");
    assert_eq!(issued["expires_in"], 120, "the lifetime counts from the hand-out, not from when the code was made");
    let link = qr_link(issued["qr"].as_str().unwrap());
    let ticket = issued["ticket"].as_str().unwrap().to_string();
    assert_eq!(link.query_pairs().find(|(k, _)| k == "scene").unwrap().1, ticket.as_str(), "the code's scene is the ticket");
    let token = app.scan(&ticket, "lisi").await;
    app.confirm(&ticket, &token).await;
    assert_eq!(app.finalize(&b, &ticket).await.0, 200);
    let more = [app.new_ticket(&browser()).await, app.new_ticket(&browser()).await];
    assert_ne!(more[0], more[1]);
    assert_eq!(pool.hits.load(Ordering::Relaxed), 3);

    // Dry: a code is made on the spot, and WeChat's refusal reaches the page as such.
    let tickets = app.count("tickets").await;
    assert_error(&app.post(&browser(), "/api/login/ticket", json!({})).await, 503, "wechat_quota");
    assert_eq!(pool.misses.load(Ordering::Relaxed), 1);
    assert_eq!(app.count("tickets").await, tickets, "a refused code stores nothing");
}
