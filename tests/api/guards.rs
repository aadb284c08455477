//! Server-side route guards, driven through the router with `oneshot`: they answer a
//! 302 before any HTML.

use crate::common::*;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use scanlogin::server::startup::Application;
use tower::ServiceExt as _;

async fn router() -> (axum::Router, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/g.db", dir.path().display());
    let app = Application::build(&config(&db, &[]), leptos_options()).await.unwrap();
    (app.router(), dir)
}

async fn get(router: &axum::Router, path: &str, cookie: Option<&str>) -> axum::response::Response {
    let mut req = Request::get(path);
    if let Some(c) = cookie {
        req = req.header(header::COOKIE, c);
    }
    router.clone().oneshot(req.body(Body::empty()).unwrap()).await.unwrap()
}

#[tokio::test]
async fn signed_out_account_goes_to_login() {
    let (r, _dir) = router().await;
    let res = get(&r, "/account", None).await;
    assert_eq!(res.status(), StatusCode::FOUND);
    assert_eq!(res.headers()[header::LOCATION], "/login?next=/account");
    let res = get(&r, "/", None).await;
    assert_eq!((res.status(), &res.headers()[header::LOCATION]), (StatusCode::FOUND, &"/login".parse().unwrap()));
    let res = get(&r, "/login", None).await;
    assert_eq!(res.status(), StatusCode::OK);
    let html = String::from_utf8(axum::body::to_bytes(res.into_body(), 1 << 20).await.unwrap().to_vec()).unwrap();
    assert!(html.contains("微信扫码登录"), "Chinese by default");
    assert!(html.contains("data-testid=\"demo-banner\""), "demo banner on every page");
}

#[tokio::test]
async fn signed_in_login_goes_on_to_next_or_account() {
    let app = spawn(&[]).await;
    let b = browser();
    let t = app.new_ticket(&b).await;
    let token = app.scan(&t, "zhangsan").await;
    app.confirm(&t, &token).await;
    let (s, _) = app.finalize(&b, &t).await;
    assert_eq!(s, 200);
    let no_redirects = |c: &reqwest::Client| c.get(format!("{}/login", app.base));
    let _ = no_redirects;
    // reqwest follows redirects; look at the final URL instead.
    let res = b.get(format!("{}/login", app.base)).send().await.unwrap();
    assert_eq!(res.url().path(), "/account");
    let res = b.get(format!("{}/login?next=/somewhere", app.base)).send().await.unwrap();
    assert_eq!(res.url().path(), "/somewhere");
    let res = b.get(format!("{}/login?next=//evil.example", app.base)).send().await.unwrap();
    assert_eq!(res.url().path(), "/account", "an off-site next is ignored");
    let res = b.get(format!("{}/account", app.base)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(html.contains("微信用户"), "account page renders the user server-side");
}

#[tokio::test]
async fn english_via_the_switch_and_unknown_pages_404() {
    let (r, _dir) = router().await;
    let res = get(&r, "/lang?set=en&back=/login", None).await;
    assert_eq!(res.status(), StatusCode::FOUND);
    assert_eq!(res.headers()[header::LOCATION], "/login");
    assert!(res.headers()[header::SET_COOKIE].to_str().unwrap().starts_with("lang=en"));
    let res = get(&r, "/lang?set=en&back=//evil.example", None).await;
    assert_eq!(res.headers()[header::LOCATION], "/login");
    let res = get(&r, "/login", Some("lang=en")).await;
    let html = String::from_utf8(axum::body::to_bytes(res.into_body(), 1 << 20).await.unwrap().to_vec()).unwrap();
    assert!(html.contains("Sign in with WeChat") && html.contains("lang=\"en\""));
    let res = get(&r, "/no-such-page", None).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(res.headers()["x-frame-options"], "DENY");
}

#[tokio::test]
async fn assets_are_compressed_and_cached_as_their_names_allow() {
    let app = spawn(&[]).await;
    // The stylesheet cargo-leptos built (the test command builds the site first).
    let css = format!("{}/pkg/scanlogin.css", app.base);
    let plain = reqwest::get(&css).await.unwrap();
    assert_eq!(plain.status(), 200);
    assert_eq!(plain.headers()["cache-control"], "no-cache", "unhashed names are revalidated");
    let size = plain.bytes().await.unwrap().len();
    let gz = reqwest::Client::new().get(&css).header("accept-encoding", "gzip").send().await.unwrap();
    assert_eq!(gz.headers()["content-encoding"], "gzip");
    let packed = gz.bytes().await.unwrap().len();
    assert!(packed * 2 < size, "gzip: {packed} of {size} bytes");
}

/// A release build leaves `.br` and `.gz` beside each asset (`cargo leptos build
/// --precompress`, scripts/release): they are sent as they are, not compressed again on
/// every request, and with hashed names cached for a year.
#[tokio::test]
async fn precompressed_assets_are_sent_as_built() {
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("site");
    std::fs::create_dir_all(site.join("pkg")).unwrap();
    let raw = b"\0asm raw bytes, uncompressed".repeat(64);
    std::fs::write(site.join("pkg/scanlogin-1a2b.wasm"), &raw).unwrap();
    std::fs::write(site.join("pkg/scanlogin-1a2b.wasm.br"), b"brotli bytes as built").unwrap();
    std::fs::write(site.join("pkg/scanlogin-1a2b.wasm.gz"), b"gzip bytes as built").unwrap();
    let leptos =
        leptos::config::LeptosOptions::builder().output_name("scanlogin").site_root(site.to_str().unwrap()).hash_files(true).build();
    let db = format!("sqlite://{}/a.db", dir.path().display());
    let app = Application::build(&config(&db, &[]), leptos).await.unwrap();
    let url = format!("{}/pkg/scanlogin-1a2b.wasm", app.public_url());
    let server = tokio::spawn(app.run_until(std::future::pending()));
    let client = reqwest::Client::builder().no_gzip().no_brotli().build().unwrap();
    for (accept, encoding, body) in [
        ("br, gzip", Some("br"), &b"brotli bytes as built"[..]),
        ("gzip", Some("gzip"), &b"gzip bytes as built"[..]),
        ("identity", None, &raw[..]),
    ] {
        let res = client.get(&url).header("accept-encoding", accept).send().await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers().get("content-encoding").map(|v| v.to_str().unwrap()), encoding, "{accept}");
        assert_eq!(res.headers()["cache-control"], "public, max-age=31536000, immutable");
        assert_eq!(&res.bytes().await.unwrap()[..], body, "{accept}: the file as built");
    }
    server.abort();
}

/// The status long-poll runs through a shorter stack of its own (what thousands of
/// waiting browsers hold): the API's rules still apply on it — bound to the browser,
/// JSON errors, the body limit, security headers, the request id — and its few bytes
/// are not compressed.
#[tokio::test]
async fn the_status_long_poll_keeps_the_api_rules_on_its_own_stack() {
    let app = spawn(&[]).await;
    let b = browser();
    let ticket = app.new_ticket(&b).await;
    let url = format!("{}/api/login/status", app.base);
    let res = b
        .post(&url)
        .header("accept-encoding", "gzip, br")
        .header("x-request-id", "poll-42")
        .json(&serde_json::json!({ "ticket": ticket, "seen": 0 }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("content-encoding").is_none(), "a few bytes of JSON are sent as they are");
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    assert_eq!(res.headers()["x-frame-options"], "DENY");
    assert_eq!(res.headers()["x-request-id"], "poll-42");
    assert!(res.headers().get("set-cookie").is_none(), "the long-poll reads the session, never writes it");
    assert_eq!(res.json::<serde_json::Value>().await.unwrap()["status"], "waiting");
    // Another browser, one with a made-up session cookie, malformed JSON, a body past the
    // limit: the same answers as anywhere.
    assert_error(&app.status(&browser(), &ticket, 0).await, 404, "ticket_not_found");
    let forged = reqwest::Client::new()
        .post(&url)
        .header("cookie", "scanlogin_session=AAAAAAAAAAAAAAAAAAAAAA")
        .json(&serde_json::json!({ "ticket": ticket, "seen": 0 }))
        .send()
        .await
        .unwrap();
    let forged = (forged.status(), forged.json::<serde_json::Value>().await.unwrap());
    assert_error(&forged, 404, "ticket_not_found");
    let bad = b.post(&url).header("content-type", "application/json").body("{\"ticket\":").send().await.unwrap();
    assert_eq!(bad.status(), 400);
    assert_eq!(bad.json::<serde_json::Value>().await.unwrap()["code"], "bad_request");
    let big = b.post(&url).header("content-type", "application/json").body(vec![b' '; 64 * 1024]).send().await.unwrap();
    assert_eq!(big.status(), 413);
    assert_eq!(big.json::<serde_json::Value>().await.unwrap()["code"], "payload_too_large");
}

/// The API endpoints and the demo's WeChat run through stacks of their own, shorter than
/// the pages' (issue 31): an endpoint still gets the session, compression, the security
/// headers and the request id; a route of the simulator with a path parameter still
/// reads it; what is no endpoint is still the API's JSON 404.
#[tokio::test]
async fn the_api_and_the_demo_wechat_keep_their_rules_on_their_own_stacks() {
    let app = spawn(&[]).await;
    let res = browser()
        .post(format!("{}/api/login/ticket", app.base))
        .header("accept-encoding", "gzip")
        .header("x-request-id", "ticket-7")
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-encoding"], "gzip", "the ticket's QR is worth compressing");
    assert!(res.headers()["set-cookie"].to_str().unwrap().starts_with("scanlogin_session="), "the session layer ran");
    assert_eq!(res.headers()["x-frame-options"], "DENY");
    assert_eq!(res.headers()["x-request-id"], "ticket-7");
    assert_eq!(res.headers()["cache-control"], "no-store");
    // A new request id when none (or no plain one) was sent: 16 base64url characters.
    let res =
        browser().post(format!("{}/api/me", app.base)).header("x-request-id", "a b").json(&serde_json::json!({})).send().await.unwrap();
    let id = res.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(id.len() == 16 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{id}");

    let missing = browser().post(format!("{}/api/no/such/endpoint", app.base)).json(&serde_json::json!({})).send().await.unwrap();
    let missing = (missing.status(), missing.json::<serde_json::Value>().await.unwrap());
    assert_error(&missing, 404, "not_found");

    // The phone's endpoints (no browser session behind them): the same API rules.
    let scan = phone()
        .post(format!("{}/api/mp/scan", app.base))
        .json(&serde_json::json!({ "ticket": "AAAAAAAAAAAAAAAAAAAAAA", "code": "nope" }))
        .send()
        .await
        .unwrap();
    assert_eq!(scan.headers()["x-frame-options"], "DENY");
    assert!(scan.headers().get("set-cookie").is_none());
    let scan = (scan.status(), scan.json::<serde_json::Value>().await.unwrap());
    assert_error(&scan, 404, "ticket_not_found");
    let unsupported = phone().post(format!("{}/api/mp/confirm", app.base)).body("x").send().await.unwrap();
    assert_eq!(unsupported.status(), 415);

    let link = phone().get(format!("{}/_wechat/sim/urllink/nosuchlink", app.base)).send().await.unwrap();
    assert_eq!(link.status(), 404, "the simulator's own answer for an unknown link, its parameter read");
    assert_eq!(link.headers()["x-content-type-options"], "nosniff");
    assert!(link.text().await.unwrap().contains("小程序链接不存在"));
    let phone = phone().get(format!("{}/_wechat/phone?scene=abc", app.base)).send().await.unwrap();
    assert_eq!(phone.status(), 200);
    assert!(phone.headers().get("set-cookie").is_none(), "WeChat's side has no session of ours");
}
