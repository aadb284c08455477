//! The login page's first HTML: the server makes the ticket while it renders `/login`,
//! so the QR is in the page before any JavaScript runs, the cookie that binds the ticket
//! comes with it, and a browser without JavaScript signs in through the page's form.

use crate::common::*;
use serde_json::json;

/// The value of the hidden input `name` in `html`.
fn hidden(html: &str, name: &str) -> String {
    let at = html.find(&format!("name=\"{name}\"")).unwrap_or_else(|| panic!("no {name} input in the page"));
    let rest = &html[at..];
    let v = rest.find("value=\"").unwrap() + 7;
    rest[v..v + rest[v..].find('"').unwrap()].to_string()
}

/// A browser that does not follow redirects, so a test sees where each form's answer
/// points.
fn form_browser() -> reqwest::Client {
    reqwest::Client::builder().cookie_store(true).user_agent(CHROME_UA).redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// Loads `/login` as `browser`: the page, its ticket and its finalize key.
async fn login_page(app: &TestApp, browser: &reqwest::Client, query: &str) -> (String, String, String) {
    let res = browser.get(format!("{}/login{query}", app.base)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("set-cookie").is_some(), "the session that binds the ticket comes with the page");
    let html = res.text().await.unwrap();
    let (ticket, key) = (hidden(&html, "ticket"), hidden(&html, "finalize_key"));
    (html, ticket, key)
}

#[tokio::test]
async fn the_qr_is_in_the_first_html_and_bound_to_this_browser() {
    let app = spawn(&[]).await;
    let b = browser();
    let (html, ticket, _) = login_page(&app, &b, "").await;
    let src_at = html.find("<img src=\"data:image/").expect("the QR image is in the HTML") + 10;
    let src = &html[src_at..src_at + html[src_at..].find('"').unwrap()];
    let link = qr_link(src);
    assert_eq!(link.query_pairs().find(|(k, _)| k == "scene").unwrap().1, ticket.as_str(), "the QR's scene is the page's ticket");
    assert!(html.contains("data-state=\"waiting\""), "the page is already waiting for the scan");
    // Once: the island's props leave the image out (the island reads it from the <img>).
    assert_eq!(html.matches("data:image/").count(), 1, "the QR image is in the page once");
    assert!(html.contains(&format!("&quot;ticket&quot;:&quot;{ticket}&quot;")), "the island's props carry the ticket");
    // The ticket belongs to this browser's session, and to no other.
    let (s, v) = app.status(&b, &ticket, 0).await;
    assert_eq!((s.as_u16(), &v["status"]), (200, &json!("waiting")), "{v}");
    assert_error(&app.status(&browser(), &ticket, 0).await, 404, "ticket_not_found");
    assert_eq!(app.count("tickets").await, 1, "one page, one ticket");
}

#[tokio::test]
async fn without_javascript_the_form_signs_in_after_the_phone_confirms() {
    let app = spawn(&["--longpoll-secs", "1"]).await;
    let b = form_browser();
    let (_, ticket, key) = login_page(&app, &b, "?next=/account?tab=1").await;
    let form = |key: &str| [("ticket", ticket.clone()), ("finalize_key", key.to_string())];
    let post = |body: [(&'static str, String); 2]| b.post(format!("{}/login/complete", app.base)).form(&body).send();

    // Pressed before the phone has confirmed: after a long-poll's wait, the same form again.
    let token = app.scan(&ticket, "lisi").await;
    let res = post(form(&key)).await.unwrap();
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(html.contains("还没有在手机上确认登录"), "{html}");
    assert_eq!(hidden(&html, "finalize_key"), key);

    // Confirmed on the phone: the form signs in and goes on to `next`.
    app.confirm(&ticket, &token).await;
    // A wrong key, another site's form, a malformed body: refused, nothing signed in.
    let before = app.snapshot().await;
    let wrong = post(form("A".repeat(32).as_str())).await.unwrap();
    assert_eq!(wrong.status(), 404);
    let cross =
        b.post(format!("{}/login/complete", app.base)).header("origin", "https://evil.example").form(&form(&key)).send().await.unwrap();
    assert_eq!(cross.status(), 403);
    let junk = b
        .post(format!("{}/login/complete", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("ticket=%%")
        .send()
        .await
        .unwrap();
    assert_eq!(junk.status(), 400);
    assert_eq!(app.snapshot().await, before, "refusals change nothing");

    let res = post(form(&key)).await.unwrap();
    assert_eq!(res.status(), 302, "{}", res.text().await.unwrap_or_default());
    assert_eq!(res.headers()["location"], "/account?tab=1");
    let (s, me) = app.post(&b, "/api/me", json!({})).await;
    assert_eq!(s, 200, "{me}");

    // 退出登录 as a plain form: another site's post is refused; ours signs out.
    let cross = b.post(format!("{}/logout", app.base)).header("origin", "https://evil.example").send().await.unwrap();
    assert_eq!(cross.status(), 403);
    assert_eq!(app.post(&b, "/api/me", json!({})).await.0, 200, "still signed in");
    let out = b.post(format!("{}/logout", app.base)).send().await.unwrap();
    assert_eq!((out.status().as_u16(), out.headers()["location"].to_str().unwrap()), (302, "/login"));
    assert_error(&app.post(&b, "/api/me", json!({})).await, 401, "unauthenticated");
}

/// The account page is server HTML with forms: 退出其他设备 works without JavaScript,
/// refuses another site's post and a signed-out browser, and comes back saying so.
#[tokio::test]
async fn the_account_page_signs_out_other_browsers_with_a_form() {
    let app = spawn(&[]).await;
    let (first, second) = (form_browser(), form_browser());
    app.sign_in(&first, "form-revoke").await;
    app.sign_in(&second, "form-revoke").await;
    let page = second.get(format!("{}/account", app.base)).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("action=\"/account/sign-out-others\""), "the button is a form");
    assert!(!page.contains("<leptos-island"), "nothing on the page needs WASM");
    let post = |b: &reqwest::Client| b.post(format!("{}/account/sign-out-others", app.base));

    let before = app.snapshot().await;
    let cross = post(&second).header("origin", "https://evil.example").send().await.unwrap();
    assert_eq!(cross.status(), 403);
    let stranger = post(&form_browser()).send().await.unwrap();
    assert_eq!((stranger.status().as_u16(), stranger.headers()["location"].to_str().unwrap()), (302, "/login?next=/account"));
    assert_eq!(app.snapshot().await, before, "refusals change nothing");
    assert_eq!(app.post(&first, "/api/me", json!({})).await.0, 200);

    let done = post(&second).send().await.unwrap();
    assert_eq!((done.status().as_u16(), done.headers()["location"].to_str().unwrap()), (302, "/account?signed_out_others=1"));
    assert_error(&app.post(&first, "/api/me", json!({})).await, 401, "unauthenticated");
    assert_eq!(app.post(&second, "/api/me", json!({})).await.0, 200, "this browser stays signed in");
    let back = second.get(format!("{}/account?signed_out_others=1", app.base)).send().await.unwrap().text().await.unwrap();
    assert!(back.contains("已退出其他设备"), "the page says so");
    assert!(!back.contains("action=\"/account/sign-out-others\""), "no other browser is left to sign out");
}

/// Pages that load data while they render keep rendering while more servers start in
/// the same process (the tests, the bench): listing the app's routes, which every server
/// once did as it started, held every page resource first polled meanwhile in the whole
/// process pending forever (leptos-rs/leptos#4773). Each `/login` render makes a ticket in
/// a resource, so each must come back with its QR.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_render_while_other_servers_start() {
    let app = std::sync::Arc::new(spawn(&["--rate-tickets-per-ip", "0"]).await);
    let renders = {
        let app = app.clone();
        tokio::spawn(async move {
            // Eight at a time, 400 in all: the window a route listing opens is short.
            let render = async |n: usize| {
                let page = async { browser().get(format!("{}/login", app.base)).send().await.unwrap().text().await.unwrap() };
                let html = tokio::time::timeout(std::time::Duration::from_secs(10), page)
                    .await
                    .unwrap_or_else(|_| panic!("render {n} of /login never finished"));
                assert!(html.contains("<img src=\"data:image/"), "render {n} has its QR");
            };
            for round in 0..50 {
                futures_util::future::join_all((0..8).map(|i| render(round * 8 + i))).await;
            }
        })
    };
    let mut started = 0;
    while !renders.is_finished() {
        let other = spawn(&[]).await;
        other.server.abort();
        started += 1;
    }
    renders.await.unwrap();
    assert!(started > 1, "servers started beside the renders: {started}");
}
