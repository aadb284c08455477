//! People (docs/api.md, "People and access"): the sign-up policy, the setup link that
//! makes the first admin, the admin API, and what a status change does at once —
//! driven over HTTP like the browser, the phone and the admin would.

use crate::common::*;
use crate::oidc::{RP, SECRET, auth_url, browser_no_redirects, exchange, location, provider_with, query_of};
use scanlogin::domain::UserId;
use serde_json::{Value, json};

/// A fresh setup link's secret, as `scanlogin admin setup-link` makes one.
async fn setup_secret(app: &TestApp) -> String {
    scanlogin::server::people::new_setup_link(&app.state.db, app.state.clock.now()).await.unwrap()
}

/// Spends a setup link for the browser `b` (signed in), as its form would.
async fn claim(app: &TestApp, b: &reqwest::Client, secret: &str) -> reqwest::Response {
    b.post(format!("{}/setup/{secret}", app.base)).send().await.unwrap()
}

/// Signs `b` in as `user` through a setup link (whatever the sign-up policy) and makes
/// them an admin with it.
pub(crate) async fn sign_in_admin(app: &TestApp, b: &reqwest::Client, user: &str) {
    let secret = setup_secret(app).await;
    let (_, issued) = app.post(b, "/api/login/ticket", json!({ "next": format!("/setup/{secret}") })).await;
    let t = issued["ticket"].as_str().unwrap().to_string();
    let token = app.scan(&t, user).await;
    app.confirm(&t, &token).await;
    assert_eq!(app.finalize(b, &t).await.0, 200);
    let res = claim(app, b, &secret).await;
    assert_eq!(res.status(), 302, "{}", res.text().await.unwrap_or_default());
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().cookie_store(true).user_agent(CHROME_UA).redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

async fn me(app: &TestApp, b: &reqwest::Client) -> Value {
    let (s, v) = app.post(b, "/api/me", json!({})).await;
    assert_eq!(s, 200, "{v}");
    v["user"].clone()
}

/// The phone scans `ticket` as `user`: the whole answer.
async fn scan_answer(app: &TestApp, ticket: &str, user: &str) -> (reqwest::StatusCode, Value) {
    let code = app.wx_code(user).await;
    app.post(&phone(), "/api/mp/scan", json!({ "ticket": ticket, "code": code })).await
}

#[tokio::test]
async fn the_signup_policy_decides_what_a_first_scan_makes() {
    // open (the demo's default): active at once.
    let app = spawn(&[]).await;
    let b = browser();
    let t = app.new_ticket(&b).await;
    let (s, v) = scan_answer(&app, &t, "zhangsan").await;
    assert_eq!((s.as_u16(), v["account_status"].as_str()), (200, Some("active")), "{v}");

    // approval: pending — signed in to scanlogin, told so, admitted by no protected site.
    let app = spawn(&["--signup", "approval", "--forward-auth-domains", "127.0.0.1"]).await;
    let b = browser();
    let t = app.new_ticket(&b).await;
    let (s, v) = scan_answer(&app, &t, "lisi").await;
    assert_eq!((s.as_u16(), v["account_status"].as_str()), (200, Some("pending")), "the phone is told: {v}");
    app.confirm(&t, v["confirm_token"].as_str().unwrap()).await;
    assert_eq!(app.finalize(&b, &t).await.0, 200, "the browser is signed in");
    let user = me(&app, &b).await;
    assert_eq!((user["status"].as_str(), user["admin"].as_bool()), (Some("pending"), Some(false)));
    let verify = b.get(format!("{}/auth/verify", app.base)).header("x-original-url", "http://127.0.0.1/app").send().await.unwrap();
    assert_eq!(verify.status(), 403, "no protected site admits a pending user");
    assert!(verify.headers().get("remote-user").is_none());
    let denied: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM audit_events WHERE kind = 'access_denied'").fetch_one(&app.pool).await.unwrap();
    assert_eq!(denied, 1, "the refusal is in the audit trail");

    // invite: a newcomer without an invitation is refused on the phone, before confirm.
    let app = spawn(&["--signup", "invite"]).await;
    let b = browser();
    let t = app.new_ticket(&b).await;
    let answer = scan_answer(&app, &t, "wangwu").await;
    assert_error(&answer, 403, "invitation_required");
    assert!(answer.1["message"].as_str().is_some_and(|m| m.contains("邀请")), "with words: {}", answer.1);
    assert_eq!(app.count("users").await, 0, "no account made");
    assert_eq!(app.status(&b, &t, 0).await.1["status"], "waiting", "the ticket is unchanged");
}

#[tokio::test]
async fn the_setup_link_makes_the_first_admin_once() {
    let app = spawn(&["--signup", "invite"]).await;
    let (links,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM setup_links").fetch_one(&app.pool).await.unwrap();
    assert_eq!(links, 1, "with no admin, start-up made (and logged) a link");
    let secret = setup_secret(&app).await;
    let b = no_redirects();
    // Signed out: to the scan page, and back.
    let res = b.get(format!("{}/setup/{secret}", app.base)).send().await.unwrap();
    assert_eq!(location(&res), format!("/login?next=/setup/{secret}"));
    let (_, issued) = app.post(&b, "/api/login/ticket", json!({ "next": format!("/setup/{secret}") })).await;
    let t = issued["ticket"].as_str().unwrap().to_string();
    let (s, v) = scan_answer(&app, &t, "zhangsan").await;
    assert_eq!(s, 200, "the owner gets in through the setup link, invitations or not: {v}");
    app.confirm(&t, v["confirm_token"].as_str().unwrap()).await;
    let (_, fin) = app.finalize(&b, &t).await;
    assert_eq!(fin["next"], format!("/setup/{secret}"));
    // Signed in: a page whose button claims the link.
    let page = b.get(format!("{}/setup/{secret}", app.base)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains(&format!("action=\"/setup/{secret}\"")));
    let cross = b.post(format!("{}/setup/{secret}", app.base)).header("origin", "https://evil.example").send().await.unwrap();
    assert_eq!(cross.status(), 403, "a cross-site post claims nothing");
    let res = claim(&app, &b, &secret).await;
    assert_eq!(location(&res), "/admin");
    let user = me(&app, &b).await;
    assert_eq!((user["status"].as_str(), user["admin"].as_bool()), (Some("active"), Some(true)));
    // Spent: a second use, by anyone, is refused with a page.
    assert_eq!(claim(&app, &b, &secret).await.status(), 410);
    assert_eq!(b.get(format!("{}/setup/{secret}", app.base)).send().await.unwrap().status(), 410);
    let kinds: Vec<(String,)> =
        sqlx::query_as("SELECT kind FROM audit_events WHERE kind = 'admin_setup'").fetch_all(&app.pool).await.unwrap();
    assert_eq!(kinds.len(), 1);

    // Two phones at once on one link: one admin. (Signed-in users made where anyone may
    // sign up: here only setup links let newcomers in.)
    let app = spawn(&[]).await;
    let (x, y) = (no_redirects(), no_redirects());
    app.sign_in(&x, "lisi").await;
    app.sign_in(&y, "wangwu").await;
    let secret = setup_secret(&app).await;
    let (a, b2) = tokio::join!(claim(&app, &x, &secret), claim(&app, &y, &secret));
    let mut statuses = [a.status().as_u16(), b2.status().as_u16()];
    statuses.sort();
    assert_eq!(statuses, [302, 410], "exactly one claim wins");
    let (admins,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users WHERE admin = 1").fetch_one(&app.pool).await.unwrap();
    assert_eq!(admins, 1, "one of the two");
}

#[tokio::test]
async fn admins_manage_users_and_a_disable_acts_at_once() {
    let app = spawn(&["--forward-auth-domains", "127.0.0.1"]).await;
    let admin = no_redirects();
    sign_in_admin(&app, &admin, "zhangsan").await;
    let (b1, b2) = (browser(), browser());
    app.sign_in(&b1, "lisi").await;
    app.sign_in(&b2, "lisi").await;
    let lisi = me(&app, &b1).await["id"].as_i64().unwrap();
    let zhangsan = me(&app, &admin).await["id"].as_i64().unwrap();
    assert_eq!(app.verify(&b2).await, 200);

    // Not an admin: 403 on every endpoint, nothing changed; signed out: 401.
    let before = app.snapshot().await;
    let calls = [
        ("/api/admin/users", json!({})),
        ("/api/admin/user", json!({ "id": zhangsan, "status": "disabled" })),
        ("/api/admin/user", json!({ "id": lisi, "admin": true })),
        ("/api/admin/audit", json!({})),
    ];
    for (path, body) in &calls {
        assert_error(&app.post(&b1, path, body.clone()).await, 403, "forbidden");
        assert_error(&app.post(&browser(), path, body.clone()).await, 401, "unauthenticated");
    }
    assert_eq!(app.snapshot().await, before, "refused calls changed nothing");

    // The list.
    let (s, list) = app.post(&admin, "/api/admin/users", json!({})).await;
    assert_eq!(s, 200, "{list}");
    let users = list["users"].as_array().unwrap();
    assert_eq!(users.len(), 2);
    let row = users.iter().find(|u| u["id"] == lisi).unwrap();
    for key in ["id", "name", "picture", "status", "admin", "groups", "created_at", "last_login_at"] {
        assert!(row.get(key).is_some(), "{key}: {row}");
    }
    assert!(row["last_login_at"].as_str().is_some());

    // Groups: validated, sorted, deduplicated; the user sees them.
    assert_error(&app.post(&admin, "/api/admin/user", json!({ "id": lisi, "groups": ["Ops"] })).await, 400, "bad_request");
    let (s, v) = app.post(&admin, "/api/admin/user", json!({ "id": lisi, "groups": ["ops", "dev", "ops"] })).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["user"]["groups"], json!(["dev", "ops"]));
    assert_eq!(me(&app, &b1).await["groups"], json!(["dev", "ops"]));
    assert_error(&app.post(&admin, "/api/admin/user", json!({ "id": 999_999, "admin": true })).await, 404, "user_not_found");

    // The last admin cannot leave.
    assert_error(&app.post(&admin, "/api/admin/user", json!({ "id": zhangsan, "status": "disabled" })).await, 409, "last_admin");
    assert_error(&app.post(&admin, "/api/admin/user", json!({ "id": zhangsan, "admin": false })).await, 409, "last_admin");
    assert!(me(&app, &admin).await["admin"].as_bool().unwrap());

    // Disable: every browser signed out at once, forward-auth refuses, the phone says so.
    let (s, v) = app.post(&admin, "/api/admin/user", json!({ "id": lisi, "status": "disabled" })).await;
    assert_eq!((s.as_u16(), v["user"]["status"].as_str()), (200, Some("disabled")), "{v}");
    for b in [&b1, &b2] {
        assert_error(&app.post(b, "/api/me", json!({})).await, 401, "unauthenticated");
        assert_eq!(app.verify(b).await, 401);
    }
    let t = app.new_ticket(&b1).await;
    let answer = scan_answer(&app, &t, "lisi").await;
    assert_error(&answer, 403, "account_disabled");
    assert!(answer.1["message"].as_str().is_some_and(|m| m.contains("停用")), "{}", answer.1);

    // The audit trail names each change and who made it.
    let (s, audit) = app.post(&admin, "/api/admin/audit", json!({ "user": lisi })).await;
    assert_eq!(s, 200);
    let events = audit["events"].as_array().unwrap();
    let updates: Vec<&str> = events.iter().filter(|e| e["kind"] == "user_updated").map(|e| e["site"].as_str().unwrap()).collect();
    assert!(
        updates
            .iter()
            .any(|d| d.contains("status active→disabled") && d.contains(&format!("by {zhangsan}")) && d.contains("2 sessions ended")),
        "{updates:?}"
    );
    assert!(updates.iter().any(|d| d.contains("groups →dev,ops")), "{updates:?}");
    assert!(events.iter().any(|e| e["kind"] == "scan_refused" && e["site"] == "account_disabled"), "{audit}");
    let (_, all) = app.post(&admin, "/api/admin/audit", json!({})).await;
    assert!(
        all["events"].as_array().unwrap().iter().any(|e| e["user"] == zhangsan && e["kind"] == "user_updated"),
        "the refused self-demotion"
    );

    // Approve again: back in.
    let (s, _) = app.post(&admin, "/api/admin/user", json!({ "id": lisi, "status": "active" })).await;
    assert_eq!(s, 200);
    app.sign_in(&b1, "lisi").await;
    assert_eq!(app.verify(&b1).await, 200);
}

#[tokio::test]
async fn approval_opens_protected_sites_and_disabling_revokes_oidc_tokens() {
    let app = provider_with(&["--signup", "approval", "--forward-auth-domains", "127.0.0.1"]).await;
    let admin = no_redirects();
    sign_in_admin(&app, &admin, "zhangsan").await;
    // A pending user: the OIDC client gets access_denied, nothing issued.
    let b = browser_no_redirects();
    let (challenge, verifier) = openidconnect::PkceCodeChallenge::new_random_sha256();
    let pkce = [("code_challenge", challenge.as_str()), ("code_challenge_method", "S256")];
    app.sign_in(&b, "lisi").await;
    let lisi = me(&app, &b).await["id"].as_i64().unwrap();
    let q = query_of(&crate::oidc::authorize(&app, &b, &auth_url(&app, "grafana", RP, &pkce)).await);
    assert_eq!((q["error"].as_str(), q["state"].as_str(), q["iss"].as_str()), ("access_denied", "st", app.base.as_str()));
    assert_eq!(app.count("oidc_codes").await, 0);
    assert_eq!(app.verify(&b).await, 403);

    // Approved: admitted at once (this instance forgot its cached copy of the user).
    let (s, _) = app.post(&admin, "/api/admin/user", json!({ "id": lisi, "status": "active" })).await;
    assert_eq!(s, 200);
    assert_eq!(app.verify(&b).await, 200);
    let code = query_of(&crate::oidc::authorize(&app, &b, &auth_url(&app, "grafana", RP, &pkce)).await)["code"].clone();
    let form = [("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", RP), ("code_verifier", verifier.secret())];
    let (s, tokens) = exchange(&app, &form, Some(("grafana", SECRET))).await;
    assert_eq!(s, 200, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap();
    let userinfo = |t: String| {
        let base = app.base.clone();
        async move { reqwest::Client::new().get(format!("{base}/oidc/userinfo")).bearer_auth(t).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(userinfo(access.to_string()).await, 200);

    // Disabled: the token is revoked at once.
    let (s, v) = app.post(&admin, "/api/admin/user", json!({ "id": lisi, "status": "disabled" })).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(userinfo(access.to_string()).await, 401);
    assert_eq!(app.count("oidc_tokens").await, 0);
}

/// `scanlogin admin setup-link` (the real binary, on the server's database) prints a link
/// as its last line, and that link makes an admin.
#[tokio::test]
async fn the_setup_link_command_prints_a_working_link() {
    let app = spawn(&[]).await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_scanlogin"))
        .args(["admin", "setup-link"])
        .env("DATABASE_URL", &app.db_url)
        .env("PUBLIC_URL", "https://login.example.com")
        .env_remove("WECHAT_APPID")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let url = stdout.lines().last().unwrap();
    let secret = url.strip_prefix("https://login.example.com/setup/").unwrap_or_else(|| panic!("{stdout}"));
    let b = no_redirects();
    app.sign_in(&b, "zhangsan").await;
    assert_eq!(location(&claim(&app, &b, secret).await), "/admin");
    assert_eq!(me(&app, &b).await["admin"], true);
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_scanlogin")).args(["admin", "nonsense"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2), "a wrong subcommand says how to use it");
}

/// The console: server HTML with forms, for admins only.
#[tokio::test]
async fn the_admin_console_works_with_forms_alone() {
    let app = spawn(&["--signup", "approval"]).await;
    let admin = no_redirects();
    sign_in_admin(&app, &admin, "zhangsan").await;
    let pending = no_redirects();
    app.sign_in(&pending, "lisi").await;
    let lisi = me(&app, &pending).await["id"].as_i64().unwrap();

    // Signed out: to the scan page; not an admin: refused with words.
    let res = no_redirects().get(format!("{}/admin", app.base)).send().await.unwrap();
    assert_eq!(location(&res), "/login?next=/admin");
    let res = pending.get(format!("{}/admin", app.base)).send().await.unwrap();
    assert_eq!(res.status(), 403);
    assert!(res.text().await.unwrap().contains("admin-forbidden"));
    let res = pending.get(format!("{}/account", app.base)).send().await.unwrap();
    assert!(res.text().await.unwrap().contains("account-pending"), "the account page says the user waits");

    // The admin's page: the pending count and the user's row with its actions.
    let page = admin.get(format!("{}/admin", app.base)).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("待批准 1"), "the pending count");
    assert!(page.contains(&format!("data-testid=\"approve-{lisi}\"")), "an approve button for the pending user");
    let searched = admin.get(format!("{}/admin?q=nobody-by-that-name", app.base)).send().await.unwrap().text().await.unwrap();
    assert!(!searched.contains(&format!("user-{lisi}")), "search filters the rows");

    // A cross-site post changes nothing; the form approves.
    let form = [("id", lisi.to_string()), ("action", "approve".to_string())];
    let res = admin.post(format!("{}/admin/user", app.base)).header("origin", "https://evil.example").form(&form).send().await.unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(me(&app, &pending).await["status"], "pending");
    let res = pending.post(format!("{}/admin/user", app.base)).form(&form).send().await.unwrap();
    assert_eq!(res.status(), 403, "a non-admin's post is refused");
    let res = admin.post(format!("{}/admin/user", app.base)).form(&form).send().await.unwrap();
    assert_eq!(location(&res), format!("/admin#user-{lisi}"));
    assert_eq!(me(&app, &pending).await["status"], "active");
    let groups = [("id", lisi.to_string()), ("action", "groups".to_string()), ("groups", "ops, dev".to_string())];
    assert_eq!(admin.post(format!("{}/admin/user", app.base)).form(&groups).send().await.unwrap().status(), 302);
    assert_eq!(me(&app, &pending).await["groups"], json!(["dev", "ops"]));
    let bad = [("id", lisi.to_string()), ("action", "groups".to_string()), ("groups", "Ops!".to_string())];
    assert_eq!(admin.post(format!("{}/admin/user", app.base)).form(&bad).send().await.unwrap().status(), 400);

    // The audit page, filtered by user and kind.
    let audit = admin.get(format!("{}/admin/audit?user={lisi}&kind=user_updated", app.base)).send().await.unwrap().text().await.unwrap();
    assert!(audit.contains("status pending→active"), "the approval is listed");
    assert!(audit.contains("<td>管理员修改了账号") && !audit.contains("<td>扫码登录"), "other kinds are filtered out: {audit}");
}

#[tokio::test]
async fn invitations_let_newcomers_in_with_their_groups_and_count_each_use() {
    let app = spawn(&["--signup", "invite"]).await;
    let admin = no_redirects();
    sign_in_admin(&app, &admin, "zhangsan").await;
    // Bad requests change nothing.
    for bad in [
        json!({ "groups": [], "max_uses": 0, "expires_in": 3600 }),
        json!({ "groups": [], "max_uses": 1, "expires_in": 10 }),
        json!({ "groups": ["Ops"], "max_uses": 1, "expires_in": 3600 }),
    ] {
        assert_error(&app.post(&admin, "/api/admin/invite", bad.clone()).await, 400, "bad_request");
    }
    let (s, made) = app.post(&admin, "/api/admin/invite", json!({ "groups": ["ops"], "max_uses": 2, "expires_in": 3600 })).await;
    assert_eq!(s, 200, "{made}");
    let url = made["url"].as_str().unwrap();
    let secret = url.rsplit('/').next().unwrap().to_string();
    assert!(url.starts_with(&format!("{}/invite/", app.base)));
    let stored: Vec<(String,)> = sqlx::query_as("SELECT token_hash FROM invitations").fetch_all(&app.pool).await.unwrap();
    assert!(stored.iter().all(|(h,)| !h.contains(&secret)), "only a hash is kept");
    assert_error(
        &app.post(&no_redirects(), "/api/admin/invite", json!({ "groups": [], "max_uses": 1, "expires_in": 3600 })).await,
        401,
        "unauthenticated",
    );

    // The page says who invites to what; signed out it leads to the scan page.
    let b = no_redirects();
    let page = b.get(format!("{}/invite/{secret}", app.base)).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("邀请你使用本站") && page.contains("ops"), "{page}");
    assert!(
        page.contains(&format!("/login?next=%2Finvite%2F{secret}")) || page.contains(&format!("/login?next=/invite/{secret}")),
        "{page}"
    );
    // Under SIGNUP=invite a newcomer gets in through it, and is active with its groups.
    let (_, issued) = app.post(&b, "/api/login/ticket", json!({ "next": format!("/invite/{secret}") })).await;
    let t = issued["ticket"].as_str().unwrap().to_string();
    let (s, v) = scan_answer(&app, &t, "lisi").await;
    assert_eq!(s, 200, "{v}");
    app.confirm(&t, v["confirm_token"].as_str().unwrap()).await;
    assert_eq!(app.finalize(&b, &t).await.1["next"], format!("/invite/{secret}"));
    let res = b.post(format!("{}/invite/{secret}", app.base)).send().await.unwrap();
    assert_eq!(location(&res), "/account");
    let user = me(&app, &b).await;
    assert_eq!((user["status"].as_str(), user["groups"].clone()), (Some("active"), json!(["ops"])));
    // The same person again counts nothing.
    assert_eq!(b.post(format!("{}/invite/{secret}", app.base)).send().await.unwrap().status(), 302);
    let (_, list) = app.post(&admin, "/api/admin/invitations", json!({})).await;
    assert_eq!(list["invitations"][0]["uses"], 1, "{list}");

    // One use left, two people at once: one gets in.
    let (x, y) = (no_redirects(), no_redirects());
    for (who, name) in [(&x, "wangwu"), (&y, "zhaoliu")] {
        let (_, issued) = app.post(who, "/api/login/ticket", json!({ "next": format!("/invite/{secret}") })).await;
        let t = issued["ticket"].as_str().unwrap().to_string();
        let (s, v) = scan_answer(&app, &t, name).await;
        assert_eq!(s, 200, "{v}");
        app.confirm(&t, v["confirm_token"].as_str().unwrap()).await;
        assert_eq!(app.finalize(who, &t).await.0, 200);
    }
    let (a, b2) =
        tokio::join!(x.post(format!("{}/invite/{secret}", app.base)).send(), y.post(format!("{}/invite/{secret}", app.base)).send());
    let mut statuses = [a.unwrap().status().as_u16(), b2.unwrap().status().as_u16()];
    statuses.sort();
    assert_eq!(statuses, [302, 410], "more people than uses: the extra one is refused");
    let (_, list) = app.post(&admin, "/api/admin/invitations", json!({})).await;
    assert_eq!((list["invitations"][0]["uses"].as_i64(), list["invitations"][0]["usable"].as_bool()), (Some(2), Some(false)));
    // Used up: the page says so; a newcomer scanning through it is refused on the phone.
    assert_eq!(no_redirects().get(format!("{}/invite/{secret}", app.base)).send().await.unwrap().status(), 410);
    let c = no_redirects();
    let (_, issued) = app.post(&c, "/api/login/ticket", json!({ "next": format!("/invite/{secret}") })).await;
    assert_error(&scan_answer(&app, issued["ticket"].as_str().unwrap(), "sunqi").await, 403, "invitation_required");

    // Revoked: its link stops working at once.
    let (_, made) = app.post(&admin, "/api/admin/invite", json!({ "groups": [], "max_uses": 5, "expires_in": 3600 })).await;
    let id = made["id"].as_i64().unwrap();
    let secret = made["url"].as_str().unwrap().rsplit('/').next().unwrap().to_string();
    assert_eq!(app.post(&admin, "/api/admin/invitation/revoke", json!({ "id": id })).await.0, 200);
    assert_eq!(no_redirects().get(format!("{}/invite/{secret}", app.base)).send().await.unwrap().status(), 410);
    assert_error(&app.post(&admin, "/api/admin/invitation/revoke", json!({ "id": id })).await, 410, "link_invalid");
    let kinds: Vec<(String,)> =
        sqlx::query_as("SELECT kind FROM audit_events WHERE kind LIKE 'invitation_%' ORDER BY id").fetch_all(&app.pool).await.unwrap();
    let kinds: Vec<&str> = kinds.iter().map(|k| k.0.as_str()).collect();
    assert_eq!(kinds, ["invitation_created", "invitation_used", "invitation_used", "invitation_created", "invitation_revoked"]);

    // The console makes one with a form: the link and its QR, once.
    let res =
        admin.post(format!("{}/admin/invite", app.base)).form(&[("groups", "dev"), ("max_uses", "3"), ("days", "7")]).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let page = res.text().await.unwrap();
    assert!(page.contains("data-testid=\"invite-url\"") && page.contains("data:image/png;base64,"), "{page}");
    let console = admin.get(format!("{}/admin/invitations", app.base)).send().await.unwrap().text().await.unwrap();
    assert!(console.contains("0 / 3"), "the console shows each invitation's uses");
}

#[tokio::test]
async fn an_admin_signs_a_user_out_everywhere() {
    let app = spawn(&["--forward-auth-domains", "127.0.0.1"]).await;
    let admin = no_redirects();
    sign_in_admin(&app, &admin, "zhangsan").await;
    let (laptop, phone_browser) = (no_redirects(), no_redirects());
    app.sign_in(&laptop, "lisi").await;
    app.sign_in(&phone_browser, "lisi").await;
    let lisi = me(&app, &laptop).await["id"].as_i64().unwrap();
    let (_, list) = app.post(&admin, "/api/admin/users", json!({})).await;
    let row = list["users"].as_array().unwrap().iter().find(|u| u["id"] == lisi).unwrap().clone();
    assert_eq!(row["sessions"], 2, "{row}");
    let page = admin.get(format!("{}/admin", app.base)).send().await.unwrap().text().await.unwrap();
    assert!(page.contains(&format!("data-testid=\"sign_out-{lisi}\"")), "the console offers it");
    assert_error(&app.post(&laptop, "/api/admin/user/sign-out", json!({ "id": lisi })).await, 403, "forbidden");
    let (s, v) = app.post(&admin, "/api/admin/user/sign-out", json!({ "id": lisi })).await;
    assert_eq!((s.as_u16(), v["revoked"].as_i64()), (200, Some(2)), "{v}");
    for b in [&laptop, &phone_browser] {
        assert_error(&app.post(b, "/api/me", json!({})).await, 401, "unauthenticated");
        assert_eq!(app.verify(b).await, 401);
    }
    assert_eq!(me(&app, &admin).await["status"], "active", "the account itself stays");
    let (_, audit) = app.post(&admin, "/api/admin/audit", json!({ "user": lisi, "kind": "user_updated" })).await;
    assert!(audit["events"][0]["site"].as_str().unwrap().contains("signed out everywhere"), "{audit}");
    assert_error(&app.post(&admin, "/api/admin/user/sign-out", json!({ "id": 999_999 })).await, 404, "user_not_found");
}

/// Setup links that can no longer be used are purged (each start without an admin makes one).
#[tokio::test]
async fn the_upkeep_forgets_spent_and_expired_setup_links() {
    use scanlogin::server::maintenance::{Schedule, purge};
    let app = spawn(&[]).await;
    let b = no_redirects();
    sign_in_admin(&app, &b, "zhangsan").await; // spends one link
    let _unused = setup_secret(&app).await;
    let schedule = Schedule {
        every: std::time::Duration::from_secs(60),
        ticket_grace: std::time::Duration::from_secs(600),
        audit_retention: std::time::Duration::from_secs(100 * 365 * 86_400),
    };
    let now = app.state.clock.now();
    purge(&app.state, schedule, now).await;
    let (left,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM setup_links").fetch_one(&app.pool).await.unwrap();
    assert_eq!(left, 2, "the unused ones (the one made at start and ours) stay; the spent one is gone");
    purge(&app.state, schedule, now.plus(std::time::Duration::from_secs(2 * 86_400))).await;
    let (left,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM setup_links").fetch_one(&app.pool).await.unwrap();
    assert_eq!(left, 0, "a day later every link has expired");
}

/// Two admins demoting each other at the same moment: one of them stays an admin.
pub async fn two_admins_demote_each_other(app: &TestApp) {
    let (a, b) = (no_redirects(), no_redirects());
    sign_in_admin(app, &a, "zhangsan").await;
    sign_in_admin(app, &b, "lisi").await;
    let (ida, idb) = (me(app, &a).await["id"].as_i64().unwrap(), me(app, &b).await["id"].as_i64().unwrap());
    for _ in 0..5 {
        let (ra, rb) = tokio::join!(
            app.post(&a, "/api/admin/user", json!({ "id": idb, "admin": false })),
            app.post(&b, "/api/admin/user", json!({ "id": ida, "admin": false }))
        );
        let ok = [ra.0.as_u16(), rb.0.as_u16()].iter().filter(|s| **s == 200).count();
        assert_eq!(ok, 1, "exactly one demotion wins: {ra:?} {rb:?}");
        let (admins,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM users WHERE admin = 1 AND status = 'active'").fetch_one(&app.pool).await.unwrap();
        assert_eq!(admins, 1, "never no admin");
        // Back to two admins for the next round.
        let (winner, loser) = if ra.0 == 200 { (&a, idb) } else { (&b, ida) };
        assert_eq!(app.post(winner, "/api/admin/user", json!({ "id": loser, "admin": true })).await.0, 200);
    }
}

#[tokio::test]
async fn two_admins_demoting_each_other_leave_one() {
    two_admins_demote_each_other(&spawn(&[]).await).await;
}

/// The console's per-browser list of a person, and 退出 on one of them (API and form).
#[tokio::test]
async fn an_admin_sees_a_persons_browsers_and_signs_one_out() {
    let app = spawn(&[]).await;
    let admin = no_redirects();
    sign_in_admin(&app, &admin, "zhangsan").await;
    let (b1, b2) = (browser(), browser());
    app.sign_in(&b1, "lisi").await;
    app.sign_in(&b2, "lisi").await;
    let lisi = me(&app, &b1).await["id"].as_i64().unwrap();
    let signed_in = async |b: &reqwest::Client| app.post(b, "/api/me", json!({})).await.0 == 200;

    // Not for anyone but an admin.
    assert_error(&app.post(&b1, "/api/admin/user/sessions", json!({ "id": lisi })).await, 403, "forbidden");
    // The console shows a person's verified email.
    app.state.users.set_email(UserId(lisi), Some("lisi@example.com")).await.unwrap();
    let (_, users) = app.post(&admin, "/api/admin/users", json!({})).await;
    let row = users["users"].as_array().unwrap().iter().find(|u| u["id"] == lisi).unwrap().clone();
    assert_eq!(row["email"], "lisi@example.com");
    let console = admin.get(format!("{}/admin", app.base)).send().await.unwrap().text().await.unwrap();
    assert!(console.contains("lisi@example.com"), "{console}");
    let (s, list) = app.post(&admin, "/api/admin/user/sessions", json!({ "id": lisi })).await;
    assert_eq!(s, 200, "{list}");
    let sessions = list["sessions"].as_array().unwrap().clone();
    assert_eq!(sessions.len(), 2);
    assert!(list["pending"].is_i64());

    // Another person's session named for lisi: 404, nothing changed.
    let (_, own) = app.post(&admin, "/api/admin/user/sessions", json!({ "id": 1 })).await;
    let admins_own = own["sessions"][0]["id"].as_str().unwrap().to_string();
    let before = app.snapshot().await;
    let wrong = app.post(&admin, "/api/admin/user/session/sign-out", json!({ "id": lisi, "session": admins_own })).await;
    assert_error(&wrong, 404, "not_found");
    assert_eq!(app.snapshot().await, before);

    // One browser through the API.
    let first = sessions[0]["id"].as_str().unwrap();
    let (s, v) = app.post(&admin, "/api/admin/user/session/sign-out", json!({ "id": lisi, "session": first })).await;
    assert_eq!(s, 200, "{v}");
    let states = [signed_in(&b1).await, signed_in(&b2).await];
    assert_eq!(states.iter().filter(|s| **s).count(), 1, "{states:?}");

    // The other through the console's form.
    let page = admin.get(format!("{}/admin/sessions?user={lisi}", app.base)).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("data-testid=\"sign-out-session\""), "{page}");
    let (_, left) = app.post(&admin, "/api/admin/user/sessions", json!({ "id": lisi })).await;
    let last = left["sessions"][0]["id"].as_str().unwrap().to_string();
    assert!(page.contains(&last));
    let res = admin
        .post(format!("{}/admin/user", app.base))
        .header("origin", &app.base)
        .form(&[("id", lisi.to_string()), ("action", "sign_out_session".into()), ("session", last)])
        .send()
        .await
        .unwrap();
    assert_eq!(
        (res.status().as_u16(), res.headers()["location"].to_str().unwrap()),
        (302, format!("/admin/sessions?user={lisi}").as_str())
    );
    assert!(!signed_in(&b1).await && !signed_in(&b2).await);
    let trail: Vec<(String,)> = sqlx::query_as("SELECT detail FROM audit_events WHERE kind = 'user_updated' AND user_id = $1 ORDER BY id")
        .bind(lisi)
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(trail.iter().filter(|(d,)| d.starts_with("signed out one browser (by ")).count(), 2, "{trail:?}");
}
