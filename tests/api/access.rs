//! Who may enter each site (docs/api.md, "Access to protected sites"): forward-auth's
//! `ACCESS_RULES` per host and each OIDC client's `allow`, with groups given by an admin;
//! a change to a person's groups acts on their next request; rule files with mistakes
//! stop the server (exit code 2, the line named); SIGHUP re-reads them.

use crate::common::*;
use crate::oidc::{RP, SECRET, auth_url, browser_no_redirects, exchange, location, provider_from, query_of};
use scanlogin::domain::UserId;
use serde_json::{Value, json};

const RULES: &str = r#"
[[rule]]
host = "grafana.test"
allow = ["group:ops", "admins"]

[[rule]]
host = "wiki.test"
allow = ["group:dev"]
"#;

/// An app with `rules` as ACCESS_RULES (and `extra` settings); the rules file's path.
async fn with_rules(rules: &str, extra: &[&str]) -> (TestApp, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rules.toml");
    std::fs::write(&path, rules).unwrap();
    let db_url = format!("sqlite://{}/scanlogin.db", dir.path().display());
    let p = path.display().to_string();
    let mut args = vec!["--access-rules", p.as_str(), "--forward-auth-domains", "test"];
    args.extend_from_slice(extra);
    (spawn_on(dir, db_url, &args).await, path)
}

/// What forward-auth answers `b` for a request to `url`.
async fn verify_for(app: &TestApp, b: &reqwest::Client, url: &str) -> reqwest::Response {
    b.get(format!("{}/auth/verify", app.base)).header("x-original-url", url).send().await.unwrap()
}

async fn user_id(app: &TestApp, b: &reqwest::Client) -> i64 {
    app.post(b, "/api/me", json!({})).await.1["user"]["id"].as_i64().unwrap()
}

/// Sets `user`'s groups as an admin would (the store's own write: the API has its tests).
async fn set_groups(app: &TestApp, user: i64, groups: &[&str]) {
    let mut u = app.state.users.get(UserId(user)).await.unwrap().unwrap();
    u.groups = groups.iter().map(|g| scanlogin::domain::GroupName::try_from(*g).unwrap()).collect();
    app.state.users.save_access(&u).await.unwrap();
}

#[tokio::test]
async fn each_host_admits_only_whom_its_rule_names() {
    let (app, _) = with_rules(RULES, &[]).await;
    let (ops, dev) = (browser_no_redirects(), browser_no_redirects());
    app.sign_in(&ops, "zhangsan").await;
    app.sign_in(&dev, "lisi").await;
    let (ops_id, dev_id) = (user_id(&app, &ops).await, user_id(&app, &dev).await);
    set_groups(&app, ops_id, &["ops"]).await;
    set_groups(&app, dev_id, &["dev", "qa"]).await;

    let res = verify_for(&app, &ops, "https://grafana.test/d/1").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["remote-user"], ops_id.to_string().as_str());
    assert_eq!(res.headers()["remote-groups"], "ops");
    assert_eq!(res.headers()["x-auth-request-groups"], "ops");
    let res = verify_for(&app, &dev, "https://wiki.test/").await;
    assert_eq!((res.status().as_u16(), res.headers()["remote-groups"].to_str().unwrap()), (200, "dev,qa"));
    // Below a host follows its rule; a host no rule names follows the default (any active user).
    assert_eq!(verify_for(&app, &ops, "https://eu.grafana.test/x").await.status(), 200);
    assert_eq!(verify_for(&app, &dev, "https://other.test/").await.status(), 200);

    // Refused: 403 with the way to our page; ?redirect=1 a 302 to it.
    let res = verify_for(&app, &dev, "https://grafana.test/d/1").await;
    assert_eq!(res.status(), 403);
    assert!(res.headers().get("remote-user").is_none());
    let page = res.headers()["x-redirection-url"].to_str().unwrap().to_string();
    assert!(page.ends_with("/auth/denied?site=grafana%2Etest"), "{page}");
    let res =
        dev.get(format!("{}/auth/verify?redirect=1", app.base)).header("x-original-url", "https://grafana.test/").send().await.unwrap();
    assert_eq!((res.status().as_u16(), location(&res)), (302, page.clone()));
    let text = dev.get(&page).send().await.unwrap().text().await.unwrap();
    assert!(text.contains("你没有访问 grafana.test 的权限 — 请联系管理员"), "{text}");
    assert!(text.contains("action=\"/logout\""), "with a sign-out button");
    assert_eq!(verify_for(&app, &ops, "https://wiki.test/").await.status(), 403);
    // A host outside FORWARD_AUTH_DOMAINS is nobody's.
    assert_eq!(verify_for(&app, &ops, "https://grafana.example.org/").await.status(), 403);

    // Each refusal is in the audit trail with the site and the rule.
    let details: Vec<(String,)> =
        sqlx::query_as("SELECT detail FROM audit_events WHERE kind = 'access_denied' ORDER BY id").fetch_all(&app.pool).await.unwrap();
    let details: Vec<&str> = details.iter().map(|d| d.0.as_str()).collect();
    assert!(details[0].starts_with("grafana.test: not allowed (allow: group:ops, admins) [rule grafana.test]"), "{details:?}");
    assert!(details.iter().any(|d| d.contains("outside FORWARD_AUTH_DOMAINS")), "{details:?}");

    // Taken out of the group: refused on the very next request (no cache lets them in).
    assert_eq!(verify_for(&app, &ops, "https://grafana.test/").await.status(), 200);
    set_groups(&app, ops_id, &[]).await;
    assert_eq!(verify_for(&app, &ops, "https://grafana.test/").await.status(), 403);
}

#[tokio::test]
async fn rules_are_re_read_on_sighup_and_a_broken_file_keeps_the_old_ones() {
    let (app, path) = with_rules(RULES, &[]).await;
    let b = browser_no_redirects();
    app.sign_in(&b, "zhangsan").await;
    let id = user_id(&app, &b).await;
    set_groups(&app, id, &["ops"]).await;
    assert_eq!(verify_for(&app, &b, "https://wiki.test/").await.status(), 403);
    // A long-poll open across the reload is not dropped.
    let other = browser();
    let t = app.new_ticket(&other).await;
    let poll = {
        let (other, base, t) = (other.clone(), app.base.clone(), t.clone());
        tokio::spawn(async move {
            other.post(format!("{base}/api/login/status")).json(&json!({ "ticket": t, "seen": 1 })).send().await.unwrap()
        })
    };
    std::fs::write(&path, "[[rule]]\nhost = \"wiki.test\"\nallow = [\"group:ops\"]\n").unwrap();
    let hup = |app: &TestApp| {
        let _ = app;
        let status = std::process::Command::new("kill").args(["-HUP", &std::process::id().to_string()]).status().unwrap();
        assert!(status.success());
    };
    hup(&app);
    eventually("the new rules never applied", async || verify_for(&app, &b, "https://wiki.test/").await.status() == 200).await;
    // A mistake: logged, the rules in force stay.
    std::fs::write(&path, "[[rule]]\nhost = \"https://wiki.test\"\n").unwrap();
    assert!(!scanlogin::server::startup::reload_rules(&app.state, &path));
    assert_eq!(verify_for(&app, &b, "https://wiki.test/").await.status(), 200);
    app.scan(&t, "lisi").await;
    let answer: Value = poll.await.unwrap().json().await.unwrap();
    assert_eq!(answer["status"], "scanned", "the long-poll lived through the reload: {answer}");
}

#[tokio::test]
async fn a_rule_file_with_a_mistake_stops_the_server_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rules.toml");
    std::fs::write(&path, "[[rule]]\nhost = \"grafana.test\"\nallow = [\"group:\"]\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_scanlogin"))
        .env("ACCESS_RULES", &path)
        .env("DATABASE_URL", format!("sqlite://{}/x.db", dir.path().display()))
        .env("LISTEN", "127.0.0.1:0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 3"), "{err}");
    // check-config says the same, and what a good file admits.
    let check = |rules: &str| {
        std::fs::write(&path, rules).unwrap();
        std::process::Command::new(env!("CARGO_BIN_EXE_scanlogin")).arg("check-config").env("ACCESS_RULES", &path).output().unwrap()
    };
    let bad = check("[[rule]]\nhost = \"a.test\"\n[[rule]]\nhost = \"a.test\"\n");
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("line 4"));
    let good = check("default = \"deny\"\n[[rule]]\nhost = \"grafana.test\"\nallow = [\"group:ops\", \"user:7\"]\n");
    assert!(good.status.success());
    let text = String::from_utf8(good.stdout).unwrap();
    assert!(text.contains("host grafana.test and below: group:ops, user:7"), "{text}");
    assert!(text.contains("any other host: nobody"), "{text}");
}

#[tokio::test]
async fn an_oidc_client_admits_only_its_allow_list_and_keeps_checking() {
    let app = provider_from(
        format!(
            "[[client]]\nid = \"grafana\"\nname = \"Grafana\"\nsecret = \"{SECRET}\"\nredirect_uris = [\"{RP}\"]\nallow = [\"group:ops\"]\n"
        ),
        &[],
    )
    .await;
    let b = browser_no_redirects();
    app.sign_in(&b, "zhangsan").await;
    let id = user_id(&app, &b).await;
    let (challenge, verifier) = openidconnect::PkceCodeChallenge::new_random_sha256();
    let pkce = [("code_challenge", challenge.as_str()), ("code_challenge_method", "S256")];
    let authorize = || async { query_of(&crate::oidc::authorize(&app, &b, &auth_url(&app, "grafana", RP, &pkce)).await) };

    // Not in the group: access_denied, nothing issued, the refusal audited.
    let q = authorize().await;
    assert_eq!((q["error"].as_str(), q["state"].as_str(), q["iss"].as_str()), ("access_denied", "st", app.base.as_str()));
    assert_eq!(app.count("oidc_codes").await, 0);
    let (detail,): (String,) =
        sqlx::query_as("SELECT detail FROM audit_events WHERE kind = 'access_denied'").fetch_one(&app.pool).await.unwrap();
    assert_eq!(detail, "Grafana: not allowed (allow: group:ops)");

    // In the group: a code; taken out before the exchange: the exchange is refused.
    set_groups(&app, id, &["ops"]).await;
    let code = authorize().await["code"].clone();
    set_groups(&app, id, &[]).await;
    let form = |code: &str| {
        [("grant_type", "authorization_code"), ("code", code), ("redirect_uri", RP), ("code_verifier", verifier.secret())]
            .map(|(k, v)| (k, v.to_string()))
    };
    let f = form(&code);
    let borrowed: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (s, v) = exchange(&app, &borrowed, Some(("grafana", SECRET))).await;
    assert_eq!((s, v["error"].as_str()), (400, Some("invalid_grant")), "{v}");

    // Tokens issued, then taken out: userinfo answers 401 at once.
    set_groups(&app, id, &["ops"]).await;
    let code = authorize().await["code"].clone();
    let f = form(&code);
    let borrowed: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (s, tokens) = exchange(&app, &borrowed, Some(("grafana", SECRET))).await;
    assert_eq!(s, 200, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap().to_string();
    let userinfo =
        || async { reqwest::Client::new().get(format!("{}/oidc/userinfo", app.base)).bearer_auth(&access).send().await.unwrap().status() };
    assert_eq!(userinfo().await, 200);
    set_groups(&app, id, &["dev"]).await;
    assert_eq!(userinfo().await, 401);
}
