//! 头像昵称填写 (docs/api.md, "Profile"): the nickname and the avatar the scanner may set
//! between scan and confirm, WeChat's content check on the nickname, avatars re-encoded and
//! served from the database, the account page's rename form, and the `picture` claim.

use crate::common::*;
use serde_json::{Value, json};

/// A ticket scanned by `user`: its id and the confirm token.
async fn scanned(app: &TestApp, user: &str) -> (String, String, Value) {
    let b = browser();
    let t = app.new_ticket(&b).await;
    let code = app.wx_code(user).await;
    let (s, v) = app.post(&phone(), "/api/mp/scan", json!({ "ticket": t, "code": code })).await;
    assert_eq!(s, 200, "{v}");
    (t, v["confirm_token"].as_str().unwrap().to_string(), v)
}

async fn profile(app: &TestApp, t: &str, token: &str, nickname: &str) -> (reqwest::StatusCode, Value) {
    app.post(&phone(), "/api/mp/profile", json!({ "ticket": t, "confirm_token": token, "nickname": nickname })).await
}

/// The first user's name (the first to scan).
async fn first_name(app: &TestApp) -> String {
    let (name,): (String,) = sqlx::query_as("SELECT name FROM users ORDER BY id LIMIT 1").fetch_one(&app.pool).await.unwrap();
    name
}

fn png(w: u32, h: u32) -> Vec<u8> {
    use image::ImageEncoder as _;
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 7 % 256) as u8, (y * 3 % 256) as u8, 90]));
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out).write_image(img.as_raw(), w, h, image::ExtendedColorType::Rgb8).unwrap();
    out
}

/// `wx.uploadFile` as the mini program sends it.
async fn upload(app: &TestApp, t: &str, token: &str, file: Vec<u8>) -> (u16, Value) {
    let form = reqwest::multipart::Form::new()
        .text("ticket", t.to_string())
        .text("confirm_token", token.to_string())
        .part("file", reqwest::multipart::Part::bytes(file).file_name("tmp.jpg"));
    let res = reqwest::Client::new().post(format!("{}/api/mp/avatar", app.base)).multipart(form).send().await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_scanner_sets_a_checked_nickname_between_scan_and_confirm() {
    let app = spawn(&[]).await;
    let (t, token, scan) = scanned(&app, "zhangsan").await;
    assert_eq!(scan["profile_missing"], true, "a new user has no profile: {scan}");
    let before = first_name(&app).await;
    // Bad nicknames: nothing changes.
    for bad in ["", "   ", "a\u{0}b", &"字".repeat(33)] {
        assert_error(&profile(&app, &t, &token, bad).await, 400, "bad_request");
    }
    let refused = profile(&app, &t, &token, "我是违禁用户").await;
    assert_error(&refused, 400, "nickname_rejected");
    assert!(refused.1["message"].as_str().unwrap().contains("换一个"));
    let reviewed = profile(&app, &t, &token, "待审的名字").await;
    assert_error(&reviewed, 400, "nickname_rejected");
    app.fault("msg_sec_check", json!({ "kind": "http_status", "status": 500 }), 1).await;
    assert_error(&profile(&app, &t, &token, "小明").await, 502, "wechat_unavailable");
    assert_eq!(first_name(&app).await, before, "refusals and failures change nothing (fail closed)");
    // Someone else's token, a made-up one: not the scanner.
    let (_, other_token, _) = scanned(&app, "lisi").await;
    assert_error(&profile(&app, &t, &other_token, "小明").await, 403, "not_scanner");
    // The scanner's own: set, shown, and the next scan no longer asks.
    let (s, v) = profile(&app, &t, &token, "  小明 ").await;
    assert_eq!((s.as_u16(), v["name"].as_str()), (200, Some("小明")), "{v}");
    app.confirm(&t, &token).await;
    assert_error(&profile(&app, &t, &token, "小红").await, 409, "already_confirmed");
    let (_, _, again) = scanned(&app, "zhangsan").await;
    assert_eq!(again["profile_missing"], false);
    let (refusals,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM audit_events WHERE kind = 'profile_refused'").fetch_one(&app.pool).await.unwrap();
    assert_eq!(refusals, 2, "each refused nickname is recorded");
}

#[tokio::test]
async fn avatars_are_re_encoded_small_and_served_immutable() {
    let app = spawn(&[]).await;
    let (t, token, _) = scanned(&app, "wangwu").await;
    let (s, v) = upload(&app, &t, &token, png(300, 200)).await;
    assert_eq!(s, 200, "{v}");
    let picture = v["picture"].as_str().unwrap().to_string();
    assert!(picture.starts_with(&format!("{}/avatars/", app.base)) && picture.ends_with(".png"), "{picture}");
    let res = reqwest::get(&picture).await.unwrap();
    assert_eq!(res.headers()["content-type"], "image/png");
    assert!(res.headers()["cache-control"].to_str().unwrap().contains("immutable"));
    let img = image::load_from_memory(&res.bytes().await.unwrap()).unwrap();
    assert_eq!((img.width(), img.height()), (160, 160));

    // What is not an avatar: refused, the avatar unchanged.
    let mut huge = png(1, 1);
    huge[16..20].copy_from_slice(&20_000u32.to_be_bytes());
    huge[20..24].copy_from_slice(&20_000u32.to_be_bytes());
    for (name, file) in
        [("text", b"not an image at all".to_vec()), ("20,000 x 20,000 header", huge), ("GIF", b"GIF89a\x01\x00\x01\x00".to_vec())]
    {
        let (s, v) = upload(&app, &t, &token, file).await;
        assert_eq!((s, v["code"].as_str()), (400, Some("bad_image")), "{name}: {v}");
    }
    let (s, v) = upload(&app, &t, &token, vec![0u8; 5 << 20]).await;
    assert_eq!((s, v["code"].as_str()), (413, Some("payload_too_large")), "5 MiB: {v}");
    // A PNG carrying a large zTXt chunk: the pixels are kept, the chunk is not.
    let mut with_text = png(64, 64);
    let iend = with_text.len() - 12;
    let mut chunk = Vec::new();
    let data: Vec<u8> = [b"Comment\0\0".to_vec(), vec![0x78, 0x9c], vec![0u8; 600_000]].concat();
    chunk.extend_from_slice(&(data.len() as u32).to_be_bytes());
    chunk.extend_from_slice(b"zTXt");
    chunk.extend_from_slice(&data);
    chunk.extend_from_slice(&[0, 0, 0, 0]);
    with_text.splice(iend..iend, chunk);
    let (s, v) = upload(&app, &t, &token, with_text).await;
    if s == 200 {
        let bytes = reqwest::get(v["picture"].as_str().unwrap()).await.unwrap().bytes().await.unwrap();
        assert!(bytes.len() < 200_000 && !bytes.windows(4).any(|w| w == b"zTXt"), "re-encoded without the chunk");
    } else {
        assert_eq!((s, v["code"].as_str()), (400, Some("bad_image")), "{v}");
    }
    assert_eq!(reqwest::get(&picture).await.unwrap().status(), 200, "the first avatar is still served");
    // Only the scanner, only before confirm.
    let (_, other, _) = scanned(&app, "lisi").await;
    assert_eq!(upload(&app, &t, &other, png(10, 10)).await.0, 403);
    assert_eq!(reqwest::get(format!("{}/avatars/{}.png", app.base, "0".repeat(64))).await.unwrap().status(), 404);
}

#[tokio::test]
async fn the_account_page_shows_the_profile_and_renames() {
    let app = spawn(&[]).await;
    let b =
        reqwest::Client::builder().cookie_store(true).user_agent(CHROME_UA).redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let t = app.new_ticket(&b).await;
    let code = app.wx_code("zhangsan").await;
    let (_, v) = app.post(&phone(), "/api/mp/scan", json!({ "ticket": t, "code": code })).await;
    let token = v["confirm_token"].as_str().unwrap().to_string();
    assert_eq!(upload(&app, &t, &token, png(50, 50)).await.0, 200);
    app.confirm(&t, &token).await;
    assert_eq!(app.finalize(&b, &t).await.0, 200);
    let (_, me) = app.post(&b, "/api/me", json!({})).await;
    let picture = me["user"]["picture"].as_str().unwrap().to_string();
    let page = b.get(format!("{}/account", app.base)).send().await.unwrap().text().await.unwrap();
    assert!(page.contains(&picture) && page.contains("action=\"/account/name\""), "the avatar and the rename form");
    let res = b.post(format!("{}/account/name", app.base)).form(&[("name", "张小三")]).send().await.unwrap();
    assert_eq!(res.status(), 302);
    assert_eq!(app.post(&b, "/api/me", json!({})).await.1["user"]["name"], "张小三");
    let res = b.post(format!("{}/account/name", app.base)).form(&[("name", "违禁")]).send().await.unwrap();
    assert_eq!(res.status(), 400, "the same content check as the phone");
    let res =
        b.post(format!("{}/account/name", app.base)).header("origin", "https://evil.example").form(&[("name", "x")]).send().await.unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(app.post(&b, "/api/me", json!({})).await.1["user"]["name"], "张小三");
}
