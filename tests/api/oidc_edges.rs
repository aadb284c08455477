//! The provider's edge cases from the security review (SECURITY.md, "OpenID Connect"):
//! `iss` in every authorization answer, what the authorization endpoint refuses and how,
//! bounded request sizes, PKCE verifiers outside RFC 7636, a code replay that loses the
//! race, claims by scope, RP-initiated logout by POST, and a login hand-off that names a
//! site only for an exact resume path.

use crate::common::*;
use crate::oidc::*;
use openidconnect::PkceCodeChallenge;
use scanlogin::domain::UserId;
use serde_json::{Value, json};

/// A signed-in browser and a code for `grafana` with PKCE; the verifier.
async fn code_for_grafana(app: &TestApp, b: &reqwest::Client, scope: &str) -> (String, String) {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let url = auth_url(app, "grafana", RP, &[("code_challenge", challenge.as_str()), ("code_challenge_method", "S256")]);
    let url = url.replace("scope=openid", &format!("scope={}", scope.replace(' ', "+")));
    let back = authorize(app, b, &url).await;
    let q = query_of(&back);
    assert_eq!(q["iss"], app.base, "a code answer names its issuer (RFC 9207): {back}");
    (q["code"].clone(), verifier.secret().clone())
}

pub(crate) async fn redeem(app: &TestApp, code: &str, verifier: &str) -> (u16, Value) {
    exchange(
        app,
        &[("grant_type", "authorization_code"), ("code", code), ("redirect_uri", RP), ("code_verifier", verifier)],
        Some(("grafana", SECRET)),
    )
    .await
}

pub(crate) async fn userinfo(app: &TestApp, token: &str) -> (u16, Value) {
    let res = reqwest::Client::new().get(format!("{}/oidc/userinfo", app.base)).bearer_auth(token).send().await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap_or(Value::Null))
}

/// The claims of an ID token, unverified (the real relying party test verifies them).
fn id_claims(id_token: &str) -> Value {
    use base64::Engine as _;
    let payload = id_token.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

#[tokio::test]
async fn the_authorization_endpoint_refuses_what_it_does_not_do_and_says_who_it_is() {
    let app = provider().await;
    let b = browser_no_redirects();
    let (challenge, _) = PkceCodeChallenge::new_random_sha256();
    let pkce = [("code_challenge", challenge.as_str()), ("code_challenge_method", "S256")];
    let long_state = "s".repeat(1025);
    let long_nonce = "n".repeat(257);
    let long_scope = format!("openid {}", "x".repeat(250));
    /// A case's name, its extra parameters, the error it gets.
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        ("a request object", vec![("request", "eyJhbGciOiJub25lIn0.e30.")], "request_not_supported"),
        ("a request_uri", vec![("request_uri", "https://evil.example/r")], "request_uri_not_supported"),
        ("response_mode=fragment", vec![("response_mode", "fragment")], "invalid_request"),
        ("response_mode=form_post", vec![("response_mode", "form_post")], "invalid_request"),
        ("prompt=consent", vec![("prompt", "consent")], "consent_required"),
        ("prompt=none with login", vec![("prompt", "none login")], "invalid_request"),
        ("a nonce over 256 characters", vec![("nonce", &long_nonce)], "invalid_request"),
        ("a state over 1024 characters", vec![("state", &long_state)], "invalid_request"),
        ("a scope over 256 characters", vec![("scope", &long_scope)], "invalid_scope"),
    ];
    for (name, extra, error) in cases {
        let mut params = pkce.to_vec();
        params.extend(extra);
        let res = b.get(auth_url(&app, "grafana", RP, &params)).send().await.unwrap();
        assert_eq!(res.status(), 302, "{name}");
        let to = location(&res);
        assert!(to.starts_with(RP), "{name}: back to the client, not our login: {to}");
        let q = query_of(&to);
        assert_eq!(q["error"], error, "{name}");
        assert_eq!(q["iss"], app.base, "{name}: iss (RFC 9207)");
        if name.starts_with("a state") {
            assert!(!q.contains_key("state"), "an over-long state is not sent back");
        } else {
            assert_eq!(q["state"], "st", "{name}");
        }
    }
    // No response_type at all: invalid_request; another one: unsupported_response_type.
    let no_type = auth_url(&app, "grafana", RP, &pkce).replace("response_type=code&", "");
    let q = query_of(&location(&b.get(no_type).send().await.unwrap()));
    assert_eq!(q["error"], "invalid_request");
    let token_type = auth_url(&app, "grafana", RP, &pkce).replace("response_type=code", "response_type=token");
    let q = query_of(&location(&b.get(token_type).send().await.unwrap()));
    assert_eq!(q["error"], "unsupported_response_type");
    assert_eq!(app.count("oidc_requests").await, 0, "nothing refused was kept");

    // The error an anonymous prompt=none gets carries iss too.
    let q = query_of(&location(&b.get(auth_url(&app, "grafana", RP, &[("prompt", "none")])).send().await.unwrap()));
    assert_eq!((q["error"].as_str(), q["iss"].as_str()), ("login_required", app.base.as_str()));

    let meta: Value = reqwest::get(format!("{}/.well-known/openid-configuration", app.base)).await.unwrap().json().await.unwrap();
    assert_eq!(meta["authorization_response_iss_parameter_supported"], json!(true));
    assert_eq!(meta["response_modes_supported"], json!(["query"]));
    assert_eq!(meta["request_uri_parameter_supported"], json!(false));
    assert_eq!(meta["request_parameter_supported"], json!(false));
}

#[tokio::test]
async fn verifiers_outside_rfc_7636_get_an_answer_and_leave_the_code_usable() {
    let app = provider().await;
    let b = browser_no_redirects();
    let (code, verifier) = code_for_grafana(&app, &b, "openid").await;
    // These lengths panicked inside the PKCE library before: no HTTP answer at all.
    for bad in ["x".repeat(42), "x".repeat(129), "x".repeat(10_000), format!("{}!", "x".repeat(50))] {
        let (s, v) = redeem(&app, &code, &bad).await;
        assert_eq!((s, v["error"].as_str()), (400, Some("invalid_request")), "{} characters: {v}", bad.len());
    }
    assert_eq!(app.count("oidc_tokens").await, 0);
    let (s, v) = redeem(&app, &code, &verifier).await;
    assert_eq!(s, 200, "the code was not spent by the malformed attempts: {v}");
}

#[tokio::test]
async fn a_code_replay_that_loses_the_race_revokes_what_the_winner_got() {
    let app = provider().await;
    let b = browser_no_redirects();
    let (code, verifier) = code_for_grafana(&app, &b, "openid").await;
    // Both exchanges read the code as unused; the winner redeems it first, then the
    // loser's redeem finds it used: the store revokes the winner's token in that branch.
    let store = &app.state.oidc.as_ref().unwrap().store;
    let hash = scanlogin::server::tokens::TokenHash::of(&code);
    let grant = store.code(&hash).await.unwrap().unwrap();
    assert!(grant.used_at.is_none());
    let now = scanlogin::domain::UnixMillis(4_000_000_000_000);
    let winner = scanlogin::server::tokens::TokenHash::of("winner-token");
    let first = store.redeem(&hash, &grant, &winner, now, now.plus(std::time::Duration::from_secs(60))).await.unwrap();
    assert_eq!(first, scanlogin::server::oidc::store::Redeemed::Issued);
    assert_eq!(app.count("oidc_tokens").await, 1);
    let loser = scanlogin::server::tokens::TokenHash::of("loser-token");
    let second = store.redeem(&hash, &grant, &loser, now, now.plus(std::time::Duration::from_secs(60))).await.unwrap();
    assert_eq!(second, scanlogin::server::oidc::store::Redeemed::AlreadyUsed { revoked: 1 });
    assert_eq!(app.count("oidc_tokens").await, 0, "the loser stored nothing and revoked the winner's");

    // Over HTTP, many exchanges at once: one wins, and nothing it got survives the others.
    let (code, verifier2) = code_for_grafana(&app, &b, "openid").await;
    let _ = verifier;
    let answers = futures_util::future::join_all((0..6).map(|_| redeem(&app, &code, &verifier2))).await;
    let ok: Vec<&Value> = answers.iter().filter(|(s, _)| *s == 200).map(|(_, v)| v).collect();
    assert_eq!(ok.len(), 1, "exactly one exchange succeeds: {answers:?}");
    assert!(answers.iter().all(|(s, v)| *s == 200 || v["error"] == "invalid_grant"), "{answers:?}");
    let (s, _) = userinfo(&app, ok[0]["access_token"].as_str().unwrap()).await;
    assert_eq!(s, 401, "the replays revoked the winner's token");
    assert_eq!(app.count("oidc_tokens").await, 0);
}

#[tokio::test]
async fn claims_follow_the_granted_scopes() {
    let app = provider().await;
    let b = browser_no_redirects();
    for (scope, named) in [("openid", false), ("openid profile", true)] {
        let (code, verifier) = code_for_grafana(&app, &b, scope).await;
        let (s, tokens) = redeem(&app, &code, &verifier).await;
        assert_eq!(s, 200, "{tokens}");
        let claims = id_claims(tokens["id_token"].as_str().unwrap());
        let (s, info) = userinfo(&app, tokens["access_token"].as_str().unwrap()).await;
        assert_eq!(s, 200);
        assert_eq!(info["sub"], claims["sub"], "{scope}: one subject");
        for (what, c) in [("ID token", &claims), ("userinfo", &info)] {
            assert_eq!(c.get("name").is_some(), named, "{scope}: name in the {what} only with profile: {c}");
        }
    }
}

#[tokio::test]
async fn logout_by_post_ends_the_session_and_is_audited() {
    let app = provider().await;
    let b = browser_no_redirects();
    let _ = code_for_grafana(&app, &b, "openid").await;
    assert_eq!(app.post(&b, "/api/me", json!({})).await.0, 200);
    let params = [("client_id", "grafana"), ("post_logout_redirect_uri", "https://grafana.example.com/login"), ("state", "s2")];
    // Security review #6: without an id_token_hint naming this person, a link or another
    // site's form signs nobody out: the person is asked, on a page whose form posts back.
    let res = b.post(format!("{}/oidc/logout", app.base)).form(&params).send().await.unwrap();
    assert_eq!(res.status(), 200, "POST is RP-initiated logout too (not 405), confirmed first");
    let page = res.text().await.unwrap();
    assert!(page.contains("confirm-logout") && page.contains("value=\"s2\""), "{page}");
    let get = b.get(format!("{}/oidc/logout?client_id=grafana", app.base)).send().await.unwrap();
    assert_eq!(get.status(), 200, "a bare GET asks too");
    let mut confirmed = params.to_vec();
    confirmed.push(("confirm", "1"));
    let cross = b.post(format!("{}/oidc/logout", app.base)).header("origin", "https://evil.example").form(&confirmed).send().await.unwrap();
    assert_eq!(cross.status(), 200, "another site cannot confirm for the person");
    assert_eq!(app.post(&b, "/api/me", json!({})).await.0, 200, "still signed in");
    let res = b.post(format!("{}/oidc/logout", app.base)).form(&confirmed).send().await.unwrap();
    assert_eq!(location(&res), "https://grafana.example.com/login?state=s2");
    assert_error(&app.post(&b, "/api/me", json!({})).await, 401, "unauthenticated");
    let logouts: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_events WHERE kind = 'logout'").fetch_one(&app.pool).await.unwrap();
    assert_eq!(logouts, 1, "the logout is in the audit trail");
}

#[tokio::test]
async fn only_an_exact_resume_path_shows_a_site_on_the_login_page_and_the_phone() {
    let app = provider().await;
    let b = browser_no_redirects();
    let (challenge, _) = PkceCodeChallenge::new_random_sha256();
    let res = b
        .get(auth_url(&app, "grafana", RP, &[("code_challenge", challenge.as_str()), ("code_challenge_method", "S256")]))
        .send()
        .await
        .unwrap();
    let login = location(&res);
    let next = query_of(&format!("{}{login}", app.base))["next"].clone();
    let (_, exact) = app.post(&b, "/api/login/ticket", json!({ "next": next })).await;
    assert_eq!(exact["client"], "Grafana", "{exact}");
    // The review's proof: 登录到 Grafana on the phone, but the login ends on /account.
    let tricky = format!("{next}&/../../../account");
    let (s, issued) = app.post(&b, "/api/login/ticket", json!({ "next": tricky })).await;
    assert_eq!(s, 200, "{issued}");
    assert!(issued.get("client").is_none_or(Value::is_null), "no site is named for a path that is not exactly the request: {issued}");
    let t = issued["ticket"].as_str().unwrap();
    let code = app.wx_code("zhangsan").await;
    let (_, scanned) = app.post(&phone(), "/api/mp/scan", json!({ "ticket": t, "code": code })).await;
    assert!(scanned["requester"].get("client").is_none_or(Value::is_null), "nor on the phone: {scanned}");
}

#[tokio::test]
async fn authorize_and_token_are_rate_limited_per_client_ip() {
    let app = provider_with(&["--rate-oidc-authorize-per-ip", "3", "--rate-oidc-token-per-ip", "2"]).await;
    let b = browser_no_redirects();
    let url = auth_url(&app, "grafana", RP, &[]);
    for _ in 0..3 {
        let res = b.get(&url).send().await.unwrap();
        assert_eq!(res.status(), 302);
    }
    assert_eq!(app.count("oidc_requests").await, 3);
    let res = b.get(&url).send().await.unwrap();
    assert_eq!(res.status(), 429, "the fourth within the minute");
    assert!(res.headers().get("retry-after").is_some());
    assert!(res.headers().get("location").is_none(), "a page of ours, not a redirect");
    assert_eq!(app.count("oidc_requests").await, 3, "nothing stored for the refused one");

    let form = [("grant_type", "authorization_code"), ("code", "no-such-code"), ("redirect_uri", RP)];
    for _ in 0..2 {
        let (s, v) = exchange(&app, &form, Some(("grafana", SECRET))).await;
        assert_eq!((s, v["error"].as_str()), (400, Some("invalid_grant")));
    }
    let (s, v) = exchange(&app, &form, Some(("grafana", SECRET))).await;
    assert_eq!((s, v["error"].as_str()), (429, Some("rate_limited")), "{v}");
}

#[tokio::test]
async fn the_groups_claim_comes_with_the_groups_scope() {
    let app = provider().await;
    let b = browser_no_redirects();
    let _ = code_for_grafana(&app, &b, "openid").await; // signs the browser in
    let (_, me) = app.post(&b, "/api/me", json!({})).await;
    let mut user = app.state.users.get(UserId(me["user"]["id"].as_i64().unwrap())).await.unwrap().unwrap();
    user.groups = vec![scanlogin::domain::GroupName::try_from("dev").unwrap(), scanlogin::domain::GroupName::try_from("ops").unwrap()];
    app.state.users.save_access(&user).await.unwrap();
    for (scope, groups) in [("openid", None), ("openid groups", Some(json!(["dev", "ops"])))] {
        let (code, verifier) = code_for_grafana(&app, &b, scope).await;
        let (s, tokens) = redeem(&app, &code, &verifier).await;
        assert_eq!(s, 200, "{tokens}");
        let claims = id_claims(tokens["id_token"].as_str().unwrap());
        let (_, info) = userinfo(&app, tokens["access_token"].as_str().unwrap()).await;
        for (what, c) in [("ID token", &claims), ("userinfo", &info)] {
            assert_eq!(c.get("groups").cloned(), groups, "{scope}: groups in the {what}: {c}");
        }
    }
    let meta: Value = reqwest::get(format!("{}/.well-known/openid-configuration", app.base)).await.unwrap().json().await.unwrap();
    assert!(meta["scopes_supported"].as_array().unwrap().contains(&json!("groups")), "{meta}");
    assert!(meta["claims_supported"].as_array().unwrap().contains(&json!("groups")), "{meta}");
}

/// Security review #7: access tokens end with the session that authorized them (logout,
/// 退出其他设备), and a client can revoke one (RFC 7009).
#[tokio::test]
async fn tokens_end_with_their_session_and_can_be_revoked() {
    let app = provider().await;
    let access = async |b: &reqwest::Client| {
        let (code, verifier) = code_for_grafana(&app, b, "openid").await;
        let (s, tokens) = redeem(&app, &code, &verifier).await;
        assert_eq!(s, 200, "{tokens}");
        tokens["access_token"].as_str().unwrap().to_string()
    };
    // Logout ends the tokens its session authorized.
    let laptop = browser_no_redirects();
    let t1 = access(&laptop).await;
    assert_eq!(userinfo(&app, &t1).await.0, 200);
    assert_eq!(app.post(&laptop, "/api/logout", json!({})).await.0, 200);
    assert_eq!(userinfo(&app, &t1).await.0, 401, "logout revoked the token");

    // 退出其他设备: the other browser's tokens end, this one's stay.
    let (here, there) = (browser_no_redirects(), browser_no_redirects());
    let (mine, theirs) = (access(&here).await, access(&there).await);
    let (s, v) = app.post(&here, "/api/sessions/revoke-others", json!({})).await;
    assert_eq!((s.as_u16(), v["revoked"].as_i64()), (200, Some(1)), "{v}");
    assert_eq!(userinfo(&app, &theirs).await.0, 401);
    assert_eq!(userinfo(&app, &mine).await.0, 200);

    // RFC 7009: only the client holding it revokes it; unknown tokens answer 200 too.
    let revoke = async |token: &str, basic: (&str, &str)| {
        let res = reqwest::Client::new()
            .post(format!("{}/oidc/revoke", app.base))
            .basic_auth(basic.0, Some(basic.1))
            .form(&[("token", token), ("token_type_hint", "access_token")])
            .send()
            .await
            .unwrap();
        res.status().as_u16()
    };
    assert_eq!(revoke(&mine, ("grafana", "not-the-secret-at-all")).await, 401, "the client must authenticate");
    assert_eq!(revoke("no-such-token", ("grafana", SECRET)).await, 200);
    assert_eq!(userinfo(&app, &mine).await.0, 200);
    assert_eq!(revoke(&mine, ("grafana", SECRET)).await, 200);
    assert_eq!(userinfo(&app, &mine).await.0, 401, "revoked");
    let meta: Value = reqwest::get(format!("{}/.well-known/openid-configuration", app.base)).await.unwrap().json().await.unwrap();
    assert_eq!(meta["revocation_endpoint"], format!("{}/oidc/revoke", app.base));
}

/// Security review #11: each client knows a person by its own opaque subject, stable
/// across logins; `legacy_subject = true` keeps the user id for a client that already
/// knows people by it.
#[tokio::test]
async fn subjects_are_pairwise_per_client() {
    let app = provider_from(
        format!(
            "[[client]]\nid = \"grafana\"\nname = \"Grafana\"\nsecret = \"{SECRET}\"\nredirect_uris = [\"{RP}\"]\n\n\
         [[client]]\nid = \"old\"\nname = \"Old\"\nsecret = \"{SECRET}\"\nredirect_uris = [\"{RP}\"]\nlegacy_subject = true\n"
        ),
        &[],
    )
    .await;
    let b = browser_no_redirects();
    let sub_for = async |client: &str| {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let back =
            authorize(&app, &b, &auth_url(&app, client, RP, &[("code_challenge", challenge.as_str()), ("code_challenge_method", "S256")]))
                .await;
        let code = query_of(&back)["code"].clone();
        let form =
            [("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", RP), ("code_verifier", verifier.secret())];
        let (s, tokens) = exchange(&app, &form, Some((client, SECRET))).await;
        assert_eq!(s, 200, "{tokens}");
        id_claims(tokens["id_token"].as_str().unwrap())["sub"].as_str().unwrap().to_string()
    };
    let first = sub_for("grafana").await;
    assert_eq!(sub_for("grafana").await, first, "stable for the client");
    let old = sub_for("old").await;
    let (_, me) = app.post(&b, "/api/me", json!({})).await;
    assert_eq!(old, me["user"]["id"].to_string(), "legacy_subject: the user id");
    assert_ne!(first, old, "another client, another subject");
}

/// Security review #5: confirming a login for one site is consent to that site only; any
/// other site asks once (remembered, withdrawable on the account page), and `prompt=none`
/// without consent is `consent_required`.
#[tokio::test]
async fn each_site_is_allowed_once_and_withdrawable() {
    let app = provider_from(
        format!(
            "[[client]]\nid = \"grafana\"\nname = \"Grafana\"\nsecret = \"{SECRET}\"\nredirect_uris = [\"{RP}\"]\n\n\
         [[client]]\nid = \"wiki\"\nname = \"Wiki\"\nsecret = \"{SECRET}\"\nredirect_uris = [\"{RP}\"]\n"
        ),
        &[],
    )
    .await;
    let b = browser_no_redirects();
    let (challenge, _) = PkceCodeChallenge::new_random_sha256();
    let pkce = [("code_challenge", challenge.as_str()), ("code_challenge_method", "S256")];
    // The scan names Grafana: Grafana gets its code without a question.
    let back = authorize(&app, &b, &auth_url(&app, "grafana", RP, &pkce)).await;
    assert!(query_of(&back).contains_key("code"), "{back}");
    // The wiki was never confirmed: silently, nothing; shown, a question.
    let mut none = pkce.to_vec();
    none.push(("prompt", "none"));
    let q = query_of(&location(&b.get(auth_url(&app, "wiki", RP, &none)).send().await.unwrap()));
    assert_eq!(q["error"], "consent_required");
    let res = b.get(auth_url(&app, "wiki", RP, &pkce)).send().await.unwrap();
    let consent = location(&res);
    assert!(consent.starts_with("/oidc/consent/"), "{consent}");
    assert_eq!(app.count("oidc_codes").await, 1, "no code for the wiki yet");
    let page = b.get(format!("{}{consent}", app.base)).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("允许「Wiki」使用你的账号登录吗"), "{page}");
    // Another site's form cannot allow it for the person; denying goes back empty-handed.
    let cross = b
        .post(format!("{}{consent}", app.base))
        .header("origin", "https://evil.example")
        .form(&[("decision", "allow")])
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), 403);
    let denied = b.post(format!("{}{consent}", app.base)).form(&[("decision", "deny")]).send().await.unwrap();
    let q = query_of(&location(&denied));
    assert_eq!((q["error"].as_str(), q["state"].as_str()), ("access_denied", "st"));
    // Allowed: a code, and from then on without asking.
    let back = authorize(&app, &b, &auth_url(&app, "wiki", RP, &pkce)).await;
    assert!(query_of(&back).contains_key("code"));
    let again = location(&b.get(auth_url(&app, "wiki", RP, &pkce)).send().await.unwrap());
    assert!(again.starts_with(RP) && query_of(&again).contains_key("code"), "remembered: {again}");
    // Withdrawn on the account page: asked again.
    let (_, me) = app.post(&b, "/api/me", json!({})).await;
    let apps: Vec<&str> = me["apps"].as_array().unwrap().iter().map(|a| a["client"].as_str().unwrap()).collect();
    assert_eq!(apps, ["grafana", "wiki"]);
    let res = b.post(format!("{}/account/apps/revoke", app.base)).form(&[("client", "wiki")]).send().await.unwrap();
    assert_eq!(location(&res), "/account");
    let asked = location(&b.get(auth_url(&app, "wiki", RP, &pkce)).send().await.unwrap());
    assert!(asked.starts_with("/oidc/consent/"), "{asked}");
}
