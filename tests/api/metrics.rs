//! `/metrics`: off without `METRICS_TOKEN`, refused without the token, and in
//! Prometheus' text format with the service's counters, never user data. (The recorder is
//! one per process, shared by the tests running beside this one: presence and lower
//! bounds are asserted, not exact counts.)

use crate::common::*;

/// The value of the sample `name{labels}` (exact text) in `body`.
fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines().find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')).and_then(|v| v.trim().parse().ok()))
}

#[tokio::test]
async fn metrics_need_the_token_and_count_what_happened_without_user_data() {
    let off = spawn(&[]).await;
    assert_eq!(reqwest::get(format!("{}/metrics", off.base)).await.unwrap().status(), 404, "no token configured: no /metrics");

    let app = spawn(&["--metrics-token", "m3trics-t0ken-0123", "--longpoll-secs", "1"]).await;
    let url = format!("{}/metrics", app.base);
    let client = reqwest::Client::new();
    assert_eq!(client.get(&url).send().await.unwrap().status(), 401);
    assert_eq!(client.get(&url).bearer_auth("wrong").send().await.unwrap().status(), 401);

    let b = browser();
    app.sign_in(&b, "lisi").await;
    assert_error(&app.status(&browser(), "AAAAAAAAAAAAAAAAAAAAAA", 0).await, 404, "ticket_not_found");
    let waiting = browser();
    let t = app.new_ticket(&waiting).await;
    assert_eq!(app.status(&waiting, &t, 1).await.0, 200, "a long-poll that waited its second");

    let res = client.get(&url).bearer_auth("m3trics-t0ken-0123").send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let body = res.text().await.unwrap();
    for series in [
        "scanlogin_tickets_created_total",
        "scanlogin_signins_total",
        "scanlogin_phone_calls_total{call=\"scan\"}",
        "scanlogin_phone_calls_total{call=\"confirm\"}",
        "scanlogin_wechat_calls_total{api=\"mini_program_code\",outcome=\"ok\"}",
        "scanlogin_wechat_calls_total{api=\"code2session\",outcome=\"ok\"}",
        "scanlogin_api_errors_total{code=\"ticket_not_found\"}",
        "scanlogin_finalize_seconds_count",
        "scanlogin_wechat_call_seconds_count{api=\"code2session\"}",
    ] {
        assert!(sample(&body, series).is_some_and(|v| v >= 1.0), "{series} missing or zero in:\n{body}");
    }
    assert!(body.contains("scanlogin_longpolls_open"), "{body}");
    let (openid,): (String,) = sqlx::query_as("SELECT openid FROM users").fetch_one(&app.pool).await.unwrap();
    assert!(!body.contains("lisi") && !body.contains(&openid), "no user data in metrics");
}
