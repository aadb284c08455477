//! An email for the apps that insist on one (issue 28): added on the account page,
//! verified by a link sent over a real SMTP exchange (to a small SMTP server the test
//! runs), then the `email` claim, `Remote-Email`, and `require_email` clients.

use crate::common::*;
use crate::oidc::{RP, SECRET, auth_url, authorize, browser_no_redirects, location, provider_from, query_of};
use scanlogin::domain::UserId;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// A tiny SMTP server on a loopback port: every message it accepts (envelope and data).
struct SmtpSink {
    port: u16,
    messages: Arc<Mutex<Vec<String>>>,
}

impl SmtpSink {
    async fn start() -> SmtpSink {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let messages: Arc<Mutex<Vec<String>>> = Arc::default();
        let kept = messages.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let kept = kept.clone();
                tokio::spawn(async move {
                    let (read, mut write) = socket.into_split();
                    let mut lines = BufReader::new(read).lines();
                    write.write_all(b"220 sink ESMTP\r\n").await.unwrap();
                    let mut message = String::new();
                    while let Ok(Some(line)) = lines.next_line().await {
                        let upper = line.to_ascii_uppercase();
                        let reply: &[u8] = if upper.starts_with("EHLO") {
                            b"250-sink\r\n250 8BITMIME\r\n"
                        } else if upper.starts_with("DATA") {
                            write.write_all(b"354 go ahead\r\n").await.unwrap();
                            while let Ok(Some(data)) = lines.next_line().await {
                                if data == "." {
                                    break;
                                }
                                message.push_str(&data);
                                message.push('\n');
                            }
                            kept.lock().unwrap().push(std::mem::take(&mut message));
                            b"250 queued\r\n"
                        } else if upper.starts_with("QUIT") {
                            let _ = write.write_all(b"221 bye\r\n").await;
                            return;
                        } else {
                            message.push_str(&line);
                            message.push('\n');
                            b"250 ok\r\n"
                        };
                        write.write_all(reply).await.unwrap();
                    }
                });
            }
        });
        SmtpSink { port, messages }
    }

    fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// The verification link of the last message (its body is quoted-printable or plain).
    fn last_link(&self) -> Option<String> {
        let all = self.messages.lock().unwrap();
        let text = all.last()?.replace("=\n", "").replace("=3D", "=");
        link_in(&text)
    }
}

/// The verification link in `body` (a mail's text).
fn link_in(body: &str) -> Option<String> {
    body.split_whitespace().find(|w| w.contains("/account/email/verify/")).map(str::to_string)
}

/// The link of the newest mail in `app`'s demo mailbox.
async fn demo_mailbox_link(app: &TestApp) -> String {
    let mails: Value = reqwest::get(format!("{}/_wechat/sim/mails", app.base)).await.unwrap().json().await.unwrap();
    link_in(mails[0]["body"].as_str().unwrap()).expect("the mail carries the link")
}

/// A signed-in browser (no redirects followed) for `user`.
async fn signed_in(app: &TestApp, user: &str) -> reqwest::Client {
    let b = browser_no_redirects();
    app.sign_in(&b, user).await;
    b
}

async fn post_email(app: &TestApp, b: &reqwest::Client, email: &str, next: &str) -> reqwest::Response {
    b.post(format!("{}/account/email", app.base))
        .header("origin", &app.base)
        .form(&[("email", email), ("next", next)])
        .send()
        .await
        .unwrap()
}

async fn me(app: &TestApp, b: &reqwest::Client) -> Value {
    app.post(b, "/api/me", json!({})).await.1
}

#[tokio::test]
async fn an_email_is_verified_by_the_mailed_link_over_smtp() {
    let sink = SmtpSink::start().await;
    let url = sink.url();
    let app = spawn(&["--smtp-url", &url, "--mail-from", "scanlogin <login@example.com>"]).await;
    let b = signed_in(&app, "zhangsan").await;
    let page = b.get(format!("{}/account/email", app.base)).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("data-testid=\"email-none\"") && page.contains("email-input"), "{page}");

    let res = post_email(&app, &b, " ZhangSan@Example.com ", "/account").await;
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("zhangsan@example.com"));
    let mail = sink.messages.lock().unwrap().last().cloned().expect("a mail went out over SMTP");
    assert!(mail.contains("RCPT TO:<zhangsan@example.com>") && mail.contains("MAIL FROM:<login@example.com>"), "{mail}");
    assert!(me(&app, &b).await["user"]["email"].is_null(), "not kept before it is verified");

    // The link, opened in the same browser: verified, and on to `next`.
    let link = sink.last_link().expect("the mail carries the link");
    assert!(link.starts_with(&format!("{}/account/email/verify/", app.base)), "{link}");
    let res = b.get(&link).send().await.unwrap();
    assert_eq!((res.status().as_u16(), location(&res)), (302, "/account".to_string()));
    assert_eq!(me(&app, &b).await["user"]["email"], "zhangsan@example.com");
    let account = b.get(format!("{}/account", app.base)).send().await.unwrap().text().await.unwrap();
    assert!(account.contains("zhangsan@example.com"));
    // Used once.
    assert_eq!(b.get(&link).send().await.unwrap().status(), 410);
    let trail: Vec<(String, String)> =
        sqlx::query_as("SELECT kind, detail FROM audit_events WHERE kind LIKE 'email%' ORDER BY id").fetch_all(&app.pool).await.unwrap();
    assert_eq!(trail, vec![("email_sent".into(), "z***@example.com".into()), ("email_verified".into(), "z***@example.com".into())]);
    let stored: Vec<(String,)> = sqlx::query_as("SELECT token_hash FROM email_verifications").fetch_all(&app.pool).await.unwrap();
    assert!(stored.is_empty(), "the person's links end once one is used");
}

#[tokio::test]
async fn bad_addresses_foreign_posts_taken_addresses_and_floods_change_nothing() {
    let sink = SmtpSink::start().await;
    let url = sink.url();
    let app = spawn(&["--smtp-url", &url, "--mail-from", "login@example.com"]).await;
    let b = signed_in(&app, "zhangsan").await;
    for bad in ["not-an-address", "a@b", "a@example.com\r\nBcc: x@evil.example", ""] {
        let res = post_email(&app, &b, bad, "/account").await;
        assert_eq!(res.status(), 400, "{bad:?}");
    }
    // Another site's form.
    let res = b
        .post(format!("{}/account/email", app.base))
        .header("origin", "https://evil.example")
        .form(&[("email", "z@example.com")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    // Signed out.
    let res = browser_no_redirects()
        .post(format!("{}/account/email", app.base))
        .header("origin", &app.base)
        .form(&[("email", "z@example.com")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 302);
    assert!(sink.messages.lock().unwrap().is_empty(), "no mail for any of these");
    assert_eq!(app.count("email_verifications").await, 0);

    // An address another person verified is theirs.
    let lisi = app.count("users").await + 1;
    let other = signed_in(&app, "lisi").await;
    app.state.users.set_email(UserId(lisi), Some("shared@example.com")).await.unwrap();
    let res = post_email(&app, &b, "Shared@example.com", "/account").await;
    assert_eq!(res.status(), 409);
    drop(other);

    // Five mails an hour.
    for i in 0..5 {
        assert_eq!(post_email(&app, &b, &format!("z{i}@example.com"), "/account").await.status(), 200);
    }
    assert_eq!(post_email(&app, &b, "z6@example.com", "/account").await.status(), 429);
    assert_eq!(sink.messages.lock().unwrap().len(), 5);

    // An unknown or expired link.
    assert_eq!(browser_no_redirects().get(format!("{}/account/email/verify/nope", app.base)).send().await.unwrap().status(), 410);
    let link = sink.last_link().unwrap();
    sqlx::query("UPDATE email_verifications SET expires_at = 1").execute(&app.pool).await.unwrap();
    assert_eq!(b.get(&link).send().await.unwrap().status(), 410);
    assert!(me(&app, &b).await["user"]["email"].is_null());
}

/// A mail server that is down: said so, nothing kept.
#[tokio::test]
async fn a_mail_server_that_is_down_is_said_so() {
    let port = free_port();
    let url = format!("smtp://127.0.0.1:{port}");
    let app = spawn(&["--smtp-url", &url, "--mail-from", "login@example.com"]).await;
    let b = signed_in(&app, "zhangsan").await;
    let res = post_email(&app, &b, "z@example.com", "/account").await;
    assert_eq!(res.status(), 503);
    assert_eq!(app.count("email_verifications").await, 0);
}

/// Demo mode without SMTP: the mail is in the demo mailbox.
#[tokio::test]
async fn the_demo_mailbox_holds_the_demos_mails() {
    let app = spawn(&[]).await;
    let b = signed_in(&app, "wangwu").await;
    assert_eq!(post_email(&app, &b, "wangwu@example.com", "/account").await.status(), 200);
    let mails: Value = reqwest::get(format!("{}/_wechat/sim/mails", app.base)).await.unwrap().json().await.unwrap();
    assert_eq!(mails[0]["to"], "wangwu@example.com");
    let body = mails[0]["body"].as_str().unwrap();
    let link = link_in(body).unwrap();
    let page = reqwest::get(format!("{}/_wechat/mailbox", app.base)).await.unwrap().text().await.unwrap();
    assert!(page.contains(&format!("href=\"{link}\"")), "{page}");
    // Opened in another browser (a mail app): verified, said so.
    let res = browser_no_redirects().get(&link).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("email-verified"));
    assert_eq!(me(&app, &b).await["user"]["email"], "wangwu@example.com");
}

/// The `email` claim and a client that requires one: no code until the person has a
/// verified address; then the same request goes on.
#[tokio::test]
async fn a_client_that_requires_an_email_gets_a_verified_one() {
    let clients = format!(
        "[[client]]\nid = \"grafana\"\nname = \"Grafana\"\nsecret = \"{SECRET}\"\nredirect_uris = [\"{RP}\"]\nrequire_email = true\n"
    );
    let app = provider_from(clients, &[]).await;
    let b = browser_no_redirects();
    let (challenge, verifier) = openidconnect::PkceCodeChallenge::new_random_sha256();
    let url = auth_url(&app, "grafana", RP, &[("code_challenge", challenge.as_str()), ("code_challenge_method", "S256")])
        .replace("scope=openid", "scope=openid+email+profile");
    let email_page = authorize(&app, &b, &url).await;
    assert!(email_page.starts_with("/account/email?next=/oidc/resume/"), "no code without an email: {email_page}");
    let page = b.get(format!("{}{email_page}", app.base)).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("「Grafana」需要你的邮箱地址"), "the site is named from our records: {page}");
    // prompt=none cannot ask: interaction_required.
    let none = b.get(format!("{}&prompt=none", url)).send().await.unwrap();
    assert_eq!(query_of(&location(&none))["error"], "interaction_required");

    let next = query_of(&format!("{}{email_page}", app.base))["next"].clone();
    assert_eq!(post_email(&app, &b, "zhangsan@example.com", &next).await.status(), 200);
    let link = demo_mailbox_link(&app).await;
    let res = b.get(&link).send().await.unwrap();
    assert_eq!(location(&res), next, "verified: back to the request");
    let res = b.get(format!("{}{next}", app.base)).send().await.unwrap();
    let back = location(&res);
    assert!(back.starts_with(RP), "the code now: {back}");
    let code = query_of(&back)["code"].clone();
    let (s, tokens) = crate::oidc_edges::redeem(&app, &code, verifier.secret()).await;
    assert_eq!(s, 200, "{tokens}");
    let (s, info) = crate::oidc_edges::userinfo(&app, tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(s, 200, "{info}");
    assert_eq!((&info["email"], &info["email_verified"]), (&json!("zhangsan@example.com"), &json!(true)), "{info}");
    let meta: Value = reqwest::get(format!("{}/.well-known/openid-configuration", app.base)).await.unwrap().json().await.unwrap();
    assert!(meta["scopes_supported"].as_array().unwrap().contains(&json!("email")));
    assert!(meta["claims_supported"].as_array().unwrap().contains(&json!("email_verified")));
}

/// The same on PostgreSQL: verified through the demo mailbox, and one address per person
/// (the partial unique index) across two instances.
#[tokio::test]
async fn emails_on_postgres_one_address_per_person() {
    let Some((url, name)) = crate::postgres::fresh_database().await else { return };
    let a = spawn_on(tempfile::tempdir().unwrap(), url.clone(), &[]).await;
    let b = spawn_on(tempfile::tempdir().unwrap(), url, &[]).await;
    let zhang = signed_in(&a, "zhangsan").await;
    assert_eq!(post_email(&a, &zhang, "same@example.com", "/account").await.status(), 200);
    let link = demo_mailbox_link(&a).await;
    // The link works on any instance (the table is shared).
    let on_b = link.replace(&a.base, &b.base);
    assert_eq!(browser_no_redirects().get(&on_b).send().await.unwrap().status(), 200);
    // A heard of the change through the users trigger's NOTIFY (its cached copy of the
    // user goes then), which may land a moment after B's answer.
    eventually("A still shows the address unset", async || me(&a, &zhang).await["user"]["email"] == "same@example.com").await;
    let li = signed_in(&b, "lisi").await;
    assert_eq!(post_email(&b, &li, "SAME@example.com", "/account").await.status(), 409);
    let lisi = me(&b, &li).await["user"]["id"].as_i64().unwrap();
    assert!(b.state.users.set_email(UserId(lisi), Some("same@example.com")).await.is_err(), "the unique index holds on PostgreSQL");
    for app in [a, b] {
        app.server.abort();
        app.pool.close().await;
    }
    crate::postgres::drop_database(&name).await;
}
