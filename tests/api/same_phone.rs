//! The same phone (contract v3): `open_link` (a WeChat URL Link, the plain URL Scheme, or
//! none), link codes (`WECHAT_QR_MODE=link`, `/q/<ticket>`) and their verification file,
//! and the simulator's `generate_urllink`.

use crate::common::*;
use serde_json::{Value, json};

async fn ticket_answer(app: &TestApp) -> Value {
    let (s, v) = app.post(&browser(), "/api/login/ticket", json!({})).await;
    assert_eq!(s, 200, "{v}");
    assert!(v["qr"].as_str().is_some_and(|q| q.starts_with("data:image/")), "the QR is there whatever the link: {v}");
    v
}

fn calls(counters: &Value, endpoint: &str) -> u64 {
    counters[endpoint].as_u64().unwrap_or(0)
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// One URL Link serves every ticket, each riding in `cq`; opening it lands on the
/// simulated phone page on that ticket, where the login goes on as from a scan.
#[tokio::test]
async fn a_ticket_offers_a_url_link_that_opens_the_phone_on_it() {
    let app = spawn(&[]).await;
    let mut tickets = Vec::new();
    for _ in 0..3 {
        let v = ticket_answer(&app).await;
        let (ticket, link) = (v["ticket"].as_str().unwrap().to_string(), v["open_link"].as_str().unwrap().to_string());
        assert!(link.starts_with(&format!("{}/_wechat/sim/urllink/", app.base)), "{link}");
        assert!(link.ends_with(&format!("?cq=scene%3D{ticket}")), "{link}");
        tickets.push((ticket, link));
    }
    assert_eq!(calls(&app.counters().await, "generate_urllink"), 1, "one link for every ticket");
    let bases: std::collections::HashSet<_> = tickets.iter().map(|(_, l)| l.split('?').next().unwrap().to_string()).collect();
    assert_eq!(bases.len(), 1);

    let (ticket, link) = &tickets[1];
    let opened = no_redirects().get(link).send().await.unwrap();
    assert_eq!(opened.status(), 302);
    assert_eq!(opened.headers()["location"].to_str().unwrap(), format!("/_wechat/phone?scene={ticket}"));
    app.scan(ticket, "zhangsan").await;
    let (_, st) = app.status(&browser(), ticket, 0).await;
    assert_eq!(st["code"], "ticket_not_found", "only the ticket's own browser follows it");

    let missing = no_redirects().get(format!("{}/_wechat/sim/urllink/nosuchlink", app.base)).send().await.unwrap();
    assert_eq!(missing.status(), 404);
}

/// Each errcode WeChat answers `generate_urllink` with leaves the ticket whole (the QR
/// works, `open_link` is null) and waits before asking again: the next ticket makes no
/// call.
#[tokio::test]
async fn a_link_wechat_refuses_never_fails_the_ticket() {
    for errcode in [40165, 40212, 85401, 85402, 44993, 85406, 40002, -1] {
        let app = spawn(&[]).await;
        // -1 (busy) is retried within the call's budget: refuse every attempt.
        app.fault("generate_urllink", json!({ "kind": "errcode", "errcode": errcode }), 4).await;
        let first = ticket_answer(&app).await;
        assert!(first["open_link"].is_null(), "{errcode}: {first}");
        let before = calls(&app.counters().await, "generate_urllink");
        assert!(before >= 1, "{errcode}");
        let second = ticket_answer(&app).await;
        assert!(second["open_link"].is_null(), "{errcode}: {second}");
        assert_eq!(calls(&app.counters().await, "generate_urllink"), before, "{errcode}: no new attempt before the wait is over");
    }
}

/// Over WeChat's 100 a second (44990): the next second gets its link.
#[tokio::test]
async fn a_busy_second_passes() {
    let app = spawn(&[]).await;
    app.fault("generate_urllink", json!({ "kind": "errcode", "errcode": 44990 }), 1).await;
    assert!(ticket_answer(&app).await["open_link"].is_null());
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let v = ticket_answer(&app).await;
    assert!(v["open_link"].as_str().is_some_and(|l| l.contains("cq=scene%3D")), "{v}");
    assert_eq!(calls(&app.counters().await, "generate_urllink"), 2);
}

/// A slow `generate_urllink` does not hold the ticket: it comes without a link, and a
/// later one has it once WeChat has answered.
#[tokio::test]
async fn a_slow_link_is_not_waited_for() {
    let app = spawn(&[]).await;
    app.fault("generate_urllink", json!({ "kind": "delay", "ms": 2000 }), 1).await;
    assert!(ticket_answer(&app).await["open_link"].is_null(), "the ticket did not wait out WeChat's 2 s");
    tokio::time::sleep(std::time::Duration::from_millis(2300)).await;
    assert!(ticket_answer(&app).await["open_link"].is_string());
    assert_eq!(calls(&app.counters().await, "generate_urllink"), 1, "the slow call's answer was kept");
}

/// `WECHAT_OPEN_LINK=scheme` writes WeChat's plain URL Scheme with no call; `off`
/// answers no link.
#[tokio::test]
async fn the_scheme_needs_no_call_and_off_offers_nothing() {
    let app = spawn(&["--wechat-open-link", "scheme"]).await;
    let v = ticket_answer(&app).await;
    let ticket = v["ticket"].as_str().unwrap();
    assert_eq!(
        v["open_link"],
        format!("weixin://dl/business/?appid=wxdemo0000000000&path=pages/login/index&query=scene%3D{ticket}&env_version=release")
    );
    assert_eq!(calls(&app.counters().await, "generate_urllink"), 0);

    let app = spawn(&["--wechat-open-link", "off"]).await;
    assert!(ticket_answer(&app).await["open_link"].is_null());
    assert_eq!(calls(&app.counters().await, "generate_urllink"), 0);
}

/// The QR of a `PNG` data URL, decoded.
fn png_qr(data_url: &str) -> String {
    use base64::Engine as _;
    let b64 = data_url.strip_prefix("data:image/png;base64,").expect("PNG data URL");
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64).unwrap();
    let img = image::load_from_memory(&bytes).unwrap().to_luma8();
    let mut prepared = rqrr::PreparedImage::prepare(img);
    let grids = prepared.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code in the image");
    grids[0].decode().expect("QR decodes").1
}

/// `WECHAT_QR_MODE=link`: the code is ours (no WeChat call), holds `PUBLIC_URL/q/<ticket>`,
/// and that URL opened by another camera offers the same link while the ticket waits.
#[tokio::test]
async fn link_codes_are_drawn_here_and_their_page_offers_the_link() {
    let app = spawn(&["--wechat-qr-mode", "link"]).await;
    let v = ticket_answer(&app).await;
    let ticket = v["ticket"].as_str().unwrap().to_string();
    assert_eq!(png_qr(v["qr"].as_str().unwrap()), format!("{}/q/{ticket}", app.base));
    let c = app.counters().await;
    assert_eq!((calls(&c, "getwxacodeunlimit"), calls(&c, "getwxacode")), (0, 0), "{c}");

    let page = reqwest::get(format!("{}/q/{ticket}", app.base)).await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    let link = v["open_link"].as_str().unwrap();
    assert!(html.contains(&format!("href=\"{}\"", link.replace('&', "&amp;"))), "{html}");
    assert!(html.contains("在微信中打开"), "{html}");

    // Once scanned, the page says so and offers nothing.
    app.scan(&ticket, "lisi").await;
    let page = reqwest::get(format!("{}/q/{ticket}", app.base)).await.unwrap();
    assert_eq!(page.status(), 409);
    assert!(!page.text().await.unwrap().contains("open-link"));
    for bad in ["AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "not%20a%20ticket"] {
        assert_eq!(reqwest::get(format!("{}/q/{bad}", app.base)).await.unwrap().status(), 404, "{bad}");
    }
}

/// The verification file WeChat's admin console hands out is served at its name; a file
/// by any other name is a configuration error.
#[tokio::test]
async fn the_verification_file_is_served_at_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("Kq3vX9aB2c.txt");
    std::fs::write(&file, "d41d8cd98f00b204e9800998ecf8427e").unwrap();
    let app = spawn(&["--wechat-qr-mode", "link", "--wechat-qr-verify-file", file.to_str().unwrap()]).await;
    let res = reqwest::get(format!("{}/Kq3vX9aB2c.txt", app.base)).await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    assert_eq!(res.text().await.unwrap(), "d41d8cd98f00b204e9800998ecf8427e");

    let page = dir.path().join("login");
    std::fs::write(&page, "x").unwrap();
    let db = format!("sqlite://{}/other.db", dir.path().display());
    let built = scanlogin::server::startup::Application::build(
        &config(&db, &["--wechat-qr-verify-file", page.to_str().unwrap()]),
        leptos_options(),
    )
    .await;
    let err = built.err().expect("a file that is not WeChat's is refused").to_string();
    assert!(err.contains("WECHAT_QR_VERIFY_FILE"), "{err}");
}

/// The simulator's `generate_urllink` checks what WeChat checks, with WeChat's errcodes,
/// and a real-mode instance gets its link there.
#[tokio::test]
async fn the_simulator_refuses_links_as_wechat_does() {
    let (appid, secret) = ("wxsim00000000002", "sim-secret-91aa");
    let app_port = free_port();
    let app_base = format!("http://127.0.0.1:{app_port}");
    let (_sim, api) = standalone_simulator(appid, secret, &app_base).await;
    let http = reqwest::Client::new();
    let token: Value = http
        .post(format!("{api}/cgi-bin/stable_token"))
        .json(&json!({ "grant_type": "client_credential", "appid": appid, "secret": secret }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["access_token"].as_str().unwrap().to_string();
    let make = |body: Value| {
        let (http, url) = (http.clone(), format!("{api}/wxa/generate_urllink?access_token={token}"));
        async move { http.post(url).json(&body).send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let good = json!({ "path": "pages/login/index", "query": "scene=abc", "expire_type": 1, "expire_interval": 30 });
    let ok = make(good.clone()).await;
    assert_eq!(ok["errcode"], 0, "{ok}");
    assert!(ok["url_link"].as_str().unwrap().contains("/_wechat/sim/urllink/"));
    let cases = [
        (json!({ "path": "pages/nope/index", "expire_type": 1, "expire_interval": 1 }), 40165),
        (json!({ "path": "/pages/login/index", "expire_type": 1, "expire_interval": 1 }), 40165),
        (json!({ "path": "pages/login/index", "query": "scene=a b", "expire_type": 1, "expire_interval": 1 }), 40212),
        (json!({ "path": "pages/login/index", "expire_type": 1, "expire_interval": 31 }), 85401),
        (json!({ "path": "pages/login/index", "expire_type": 0, "expire_time": now + 10 }), 85401),
        (json!({ "path": "pages/login/index", "env_version": "beta" }), 85402),
    ];
    for (body, code) in cases {
        let v = make(body.clone()).await;
        assert_eq!(v["errcode"], code, "{body}: {v}");
    }
    // 100 a second: 250 at once are not all made.
    let started = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let answers = futures_util::future::join_all((0..250).map(|_| make(good.clone()))).await;
    let ended = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let made = answers.iter().filter(|a| a["errcode"] == 0).count() as u64;
    let capped = answers.iter().filter(|a| a["errcode"] == 44990).count() as u64;
    assert_eq!(made + capped, 250);
    assert!(made <= 100 * (ended - started + 1), "{made} made in {} s", ended - started + 1);
    assert!(capped > 0 || ended - started >= 2);

    // A real-mode instance's tickets carry the simulator's link.
    let listen = format!("127.0.0.1:{app_port}");
    let app = spawn(&["--listen", &listen, "--wechat-appid", appid, "--wechat-secret", secret, "--wechat-api-base", &api]).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let v = ticket_answer(&app).await;
    let sim_base = api.trim_end_matches("/_wechat");
    assert!(v["open_link"].as_str().is_some_and(|l| l.starts_with(&format!("{sim_base}/_wechat/sim/urllink/"))), "{v}");
}

/// Number matching (`LOGIN_NUMBER_MATCH=true`): the browser shows the number once scanned,
/// the phone picks it from three; a wrong pick is counted, the second cancels.
#[tokio::test]
async fn number_matching_takes_the_browsers_number_and_cancels_after_two_wrong_picks() {
    let app = spawn(&["--login-number-match", "true"]).await;
    let b = browser();
    let t = app.new_ticket(&b).await;
    let (s, scan) = app.post(&phone(), "/api/mp/scan", json!({ "ticket": t, "code": app.wx_code("zhangsan").await })).await;
    assert_eq!(s, 200, "{scan}");
    let choices: Vec<u64> = scan["number_choices"].as_array().unwrap().iter().map(|n| n.as_u64().unwrap()).collect();
    assert_eq!(choices.len(), 3, "{scan}");
    assert!(choices.iter().all(|n| (10..=99).contains(n)));
    assert_eq!(choices.iter().collect::<std::collections::HashSet<_>>().len(), 3, "three different numbers");
    let (_, st) = app.status(&b, &t, 0).await;
    let shown = st["number"].as_u64().unwrap();
    assert!(choices.contains(&shown), "{st}");
    let wrong = *choices.iter().find(|n| **n != shown).unwrap();
    let token = scan["confirm_token"].as_str().unwrap();

    // A re-scan by the same person keeps the number the browser shows.
    let (_, again) = app.post(&phone(), "/api/mp/scan", json!({ "ticket": t, "code": app.wx_code("zhangsan").await })).await;
    assert!(again["number_choices"].as_array().unwrap().iter().any(|n| n.as_u64() == Some(shown)), "{again}");
    assert_eq!(app.status(&b, &t, 0).await.1["number"].as_u64(), Some(shown));
    let token2 = again["confirm_token"].as_str().unwrap().to_string();
    assert_error(
        &app.post(&phone(), "/api/mp/confirm", json!({ "ticket": t, "confirm_token": token, "number": shown })).await,
        403,
        "not_scanner",
    );

    // One wrong pick: refused, counted; the right one then confirms.
    let miss = app.post(&phone(), "/api/mp/confirm", json!({ "ticket": t, "confirm_token": token2, "number": wrong })).await;
    assert_error(&miss, 400, "wrong_number");
    assert_eq!(app.status(&b, &t, 0).await.1["status"], "scanned");
    let (s, ok) = app.post(&phone(), "/api/mp/confirm", json!({ "ticket": t, "confirm_token": token2, "number": shown })).await;
    assert_eq!((s.as_u16(), &ok["status"]), (200, &json!("confirmed")), "{ok}");
    assert!(app.status(&b, &t, 0).await.1.get("number").is_none(), "the number is shown only while scanned");

    // Two wrong picks (no pick counts as a wrong one): cancelled, and the browser is told why.
    let t = app.new_ticket(&b).await;
    let token = app.scan(&t, "lisi").await;
    assert_error(&app.post(&phone(), "/api/mp/confirm", json!({ "ticket": t, "confirm_token": token })).await, 400, "wrong_number");
    let shown = app.status(&b, &t, 0).await.1["number"].as_u64().unwrap();
    let wrong = if shown == 99 { 98 } else { shown + 1 };
    let last = app.post(&phone(), "/api/mp/confirm", json!({ "ticket": t, "confirm_token": token, "number": wrong })).await;
    assert_error(&last, 409, "ticket_cancelled");
    let (_, st) = app.status(&b, &t, 0).await;
    assert_eq!((&st["status"], &st["reason"]), (&json!("cancelled"), &json!("wrong_number")), "{st}");
    let late = app.post(&phone(), "/api/mp/confirm", json!({ "ticket": t, "confirm_token": token, "number": shown })).await;
    assert_error(&late, 409, "ticket_cancelled");
    let notes: Vec<(String,)> =
        sqlx::query_as("SELECT detail FROM audit_events WHERE kind = 'confirm_refused' ORDER BY id").fetch_all(&app.pool).await.unwrap();
    let notes: Vec<&str> = notes.iter().map(|(d,)| d.as_str()).collect();
    assert_eq!(notes, ["not_scanner", "wrong_number", "wrong_number", "wrong_number: cancelled", "ticket_cancelled"]);
}

/// Without number matching nothing changes: no choices, no number, a confirm needs none.
#[tokio::test]
async fn without_number_matching_the_phone_is_offered_no_numbers() {
    let app = spawn(&[]).await;
    let b = browser();
    let t = app.new_ticket(&b).await;
    let (_, scan) = app.post(&phone(), "/api/mp/scan", json!({ "ticket": t, "code": app.wx_code("zhangsan").await })).await;
    assert!(scan.get("number_choices").is_none(), "{scan}");
    assert!(app.status(&b, &t, 0).await.1.get("number").is_none());
    let (s, _) = app.post(&phone(), "/api/mp/confirm", json!({ "ticket": t, "confirm_token": scan["confirm_token"], "number": 42 })).await;
    assert_eq!(s, 200, "a stray number is ignored");
}
