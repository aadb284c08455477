//! Limits that bite (each configured low here), proxy-aware client IPs, and the token
//! cache under a crowd.

use crate::common::*;
use serde_json::json;

#[tokio::test]
async fn ticket_creation_is_limited_per_ip_and_live_tickets_per_browser() {
    let app = spawn(&["--rate-tickets-per-ip", "3"]).await;
    for _ in 0..3 {
        app.new_ticket(&browser()).await;
    }
    let before = app.snapshot().await;
    let res = browser().post(format!("{}/api/login/ticket", app.base)).json(&json!({})).send().await.unwrap();
    assert_eq!(res.status(), 429);
    let retry: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=61).contains(&retry), "{retry}");
    assert_eq!(res.json::<serde_json::Value>().await.unwrap()["code"], "rate_limited");
    assert_eq!(before, app.snapshot().await, "a limited call changes nothing");

    let app = spawn(&["--live-tickets-per-browser", "2"]).await;
    let b = browser();
    app.new_ticket(&b).await;
    app.new_ticket(&b).await;
    assert_error(&app.post(&b, "/api/login/ticket", json!({})).await, 429, "rate_limited");
    app.new_ticket(&browser()).await; // another browser is not affected
}

#[tokio::test]
async fn phone_calls_are_limited_per_ticket() {
    let app = spawn(&["--rate-phone-per-ticket", "2"]).await;
    let t = app.new_ticket(&browser()).await;
    let token = app.scan(&t, "zhangsan").await;
    let answer = app.post(&phone(), "/api/mp/cancel", json!({ "ticket": t, "confirm_token": "wrong" })).await;
    assert_error(&answer, 403, "not_scanner");
    let before = app.snapshot().await;
    let answer = app.post(&phone(), "/api/mp/confirm", json!({ "ticket": t, "confirm_token": token })).await;
    assert_error(&answer, 429, "rate_limited");
    assert_eq!(before, app.snapshot().await);
    // Another ticket is not affected.
    let t2 = app.new_ticket(&browser()).await;
    app.scan(&t2, "lisi").await;
}

#[tokio::test]
async fn open_long_polls_are_bounded_per_browser() {
    let app = spawn(&["--longpolls-per-browser", "2", "--longpoll-secs", "3"]).await;
    let b = browser();
    let t = app.new_ticket(&b).await;
    let polls: Vec<_> = (0..2)
        .map(|_| {
            let (b, url, t) = (b.clone(), format!("{}/api/login/status", app.base), t.clone());
            tokio::spawn(async move { b.post(url).json(&json!({ "ticket": t, "seen": 1 })).send().await.unwrap().status() })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_error(&app.status(&b, &t, 1).await, 429, "rate_limited");
    // Another browser still gets through.
    let other = browser();
    let t2 = app.new_ticket(&other).await;
    let (s, _) = app.status(&other, &t2, 0).await;
    assert_eq!(s, 200);
    for p in polls {
        assert_eq!(p.await.unwrap(), 200);
    }
}

#[tokio::test]
async fn x_forwarded_for_counts_only_behind_a_trusted_proxy() {
    let app = spawn(&[]).await;
    let b = browser();
    let t = {
        let res = b
            .post(format!("{}/api/login/ticket", app.base))
            .header("x-forwarded-for", "203.0.113.7")
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        res.json::<serde_json::Value>().await.unwrap()["ticket"].as_str().unwrap().to_string()
    };
    let (_, v) = app.post(&phone(), "/api/mp/scan", json!({ "ticket": t, "code": app.wx_code("zhangsan").await })).await;
    assert_eq!(v["requester"]["ip"], "127.0.0.1", "a spoofed header is ignored");

    let app = spawn(&["--trusted-proxies", "127.0.0.1"]).await;
    let b = browser();
    let res = b
        .post(format!("{}/api/login/ticket", app.base))
        .header("x-forwarded-for", "198.51.100.1, 203.0.113.7")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let t = res.json::<serde_json::Value>().await.unwrap()["ticket"].as_str().unwrap().to_string();
    let (_, v) = app.post(&phone(), "/api/mp/scan", json!({ "ticket": t, "code": app.wx_code("zhangsan").await })).await;
    assert_eq!(v["requester"]["ip"], "203.0.113.7", "the proxy's client");
}

#[tokio::test]
async fn two_hundred_concurrent_codes_with_an_expired_token_fetch_one_token() {
    let app = spawn(&["--rate-tickets-per-ip", "0", "--rate-tickets-per-browser", "0", "--live-tickets-per-browser", "0"]).await;
    app.new_ticket(&browser()).await;
    assert_eq!(app.counters().await["stable_token"], 1);
    let (s, _) = app.post(&phone(), "/_wechat/sim/expire-tokens", json!({})).await;
    assert_eq!(s, 200);
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let url = format!("{}/api/login/ticket", app.base);
            tokio::spawn(async move { browser().post(url).json(&json!({})).send().await.unwrap().status().as_u16() })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let c = app.counters().await;
    assert_eq!(c["stable_token"], 2, "exactly one refetch for 200 callers: {c}");
    assert_eq!(app.count("tickets").await, 201);
}
