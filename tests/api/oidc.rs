//! The OpenID Connect provider, driven by a real relying party (the `openidconnect` crate
//! as a client: discovery, PKCE, the code exchange, ID-token signature and nonce,
//! userinfo) with the real scan flow in the middle, and the negative table: each RFC
//! error, nothing issued.

use crate::common::*;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreIdToken, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, OAuth2TokenResponse as _, PkceCodeChallenge, RedirectUrl,
    Scope, TokenResponse as _,
};
use serde_json::{Value, json};
use std::collections::HashMap;

pub(crate) const SECRET: &str = "grafana-secret-0123456789";
pub(crate) const RP: &str = "https://grafana.example.com/login/generic_oauth";
pub(crate) const SPA: &str = "http://127.0.0.1:9/callback";

pub(crate) async fn provider() -> TestApp {
    provider_with(&[]).await
}

/// The provider with `extra` settings.
pub(crate) async fn provider_with(extra: &[&str]) -> TestApp {
    let clients = format!(
        r#"
[[client]]
id = "grafana"
name = "Grafana"
secret = "{SECRET}"
redirect_uris = ["{RP}"]
post_logout_redirect_uris = ["https://grafana.example.com/login"]

[[client]]
id = "spa"
name = "单页应用"
redirect_uris = ["{SPA}"]
"#
    );
    provider_from(&clients, extra).await
}

/// A provider whose `OIDC_CLIENTS` file is `clients`, with `extra` settings.
pub(crate) async fn provider_from(clients: impl AsRef<str>, extra: &[&str]) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clients.toml");
    std::fs::write(&path, clients.as_ref()).unwrap();
    let db_url = format!("sqlite://{}/scanlogin.db", dir.path().display());
    let path = path.display().to_string();
    let mut args = vec!["--oidc-clients", path.as_str()];
    args.extend_from_slice(extra);
    spawn_on(dir, db_url, &args).await
}

/// A browser that does not follow redirects: each hop is looked at.
pub(crate) fn browser_no_redirects() -> reqwest::Client {
    reqwest::Client::builder().cookie_store(true).user_agent(CHROME_UA).redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

pub(crate) fn location(res: &reqwest::Response) -> String {
    res.headers().get("location").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default()
}

pub(crate) fn query_of(url: &str) -> HashMap<String, String> {
    url::Url::parse(url).unwrap().query_pairs().into_owned().collect()
}

/// The person signs in by scanning, from the login page `login` (a `/login?next=…` URL).
pub(crate) async fn scan_login(app: &TestApp, b: &reqwest::Client, login: &str) -> String {
    let next = query_of(&format!("{}{login}", app.base))["next"].clone();
    let (s, issued) = app.post(b, "/api/login/ticket", json!({ "next": next })).await;
    assert_eq!(s, 200, "{issued}");
    let t = issued["ticket"].as_str().unwrap().to_string();
    let token = app.scan(&t, "zhangsan").await;
    app.confirm(&t, &token).await;
    let (s, fin) = app.finalize(b, &t).await;
    assert_eq!(s, 200, "{fin}");
    fin["next"].as_str().unwrap().to_string()
}

/// Goes through `/oidc/authorize` with `url`, scanning if asked; returns the redirect to
/// the client.
pub(crate) async fn authorize(app: &TestApp, b: &reqwest::Client, url: &str) -> String {
    let res = b.get(url).send().await.unwrap();
    assert_eq!(res.status(), 302, "{}", res.text().await.unwrap());
    let mut to = location(&res);
    if to.starts_with("/login?") {
        let next = scan_login(app, b, &to).await;
        let res = b.get(format!("{}{next}", app.base)).send().await.unwrap();
        assert_eq!(res.status(), 302);
        to = location(&res);
    }
    if to.starts_with("/oidc/consent/") {
        to = allow(app, b, &to).await;
    }
    to
}

/// Allows the site on the consent page `consent`; the redirect to the client that follows.
pub(crate) async fn allow(app: &TestApp, b: &reqwest::Client, consent: &str) -> String {
    let page = b.get(format!("{}{consent}", app.base)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let res = b.post(format!("{}{consent}", app.base)).form(&[("decision", "allow")]).send().await.unwrap();
    assert_eq!(res.status(), 302);
    let resume = location(&res);
    assert!(resume.starts_with("/oidc/resume/"), "{resume}");
    let res = b.get(format!("{}{resume}", app.base)).send().await.unwrap();
    assert_eq!(res.status(), 302);
    location(&res)
}

#[tokio::test]
async fn a_real_relying_party_signs_in_through_the_scan() {
    let app = provider().await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let meta = CoreProviderMetadata::discover_async(IssuerUrl::new(app.base.clone()).unwrap(), &http).await.unwrap();
    let client = CoreClient::from_provider_metadata(meta, ClientId::new("grafana".into()), Some(ClientSecret::new(SECRET.into())))
        .set_redirect_uri(RedirectUrl::new(RP.into()).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, csrf, nonce) = client
        .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
        .add_scope(Scope::new("profile".into()))
        .set_pkce_challenge(challenge)
        .url();

    // No session yet: our login page, carrying the request ("登录到 Grafana").
    let b = browser_no_redirects();
    let res = b.get(auth_url.as_str()).send().await.unwrap();
    assert_eq!(res.status(), 302);
    let login = location(&res);
    assert!(login.starts_with("/login?next=/oidc/resume/"), "{login}");
    let next = query_of(&format!("{}{login}", app.base))["next"].clone();
    let (_, issued) = app.post(&b, "/api/login/ticket", json!({ "next": next })).await;
    assert_eq!(issued["client"], "Grafana", "the login page names the site: {issued}");
    let t = issued["ticket"].as_str().unwrap().to_string();
    let code = app.wx_code("zhangsan").await;
    let (_, scanned) = app.post(&phone(), "/api/mp/scan", json!({ "ticket": t, "code": code })).await;
    assert_eq!(scanned["requester"]["client"], "Grafana", "so does the phone: {scanned}");
    app.confirm(&t, scanned["confirm_token"].as_str().unwrap()).await;
    let (s, fin) = app.finalize(&b, &t).await;
    assert_eq!(s, 200);
    let res = b.get(format!("{}{}", app.base, fin["next"].as_str().unwrap())).send().await.unwrap();
    let back = location(&res);
    assert!(back.starts_with(RP), "{back}");
    let q = query_of(&back);
    assert_eq!(q["state"], *csrf.secret(), "state round-tripped");

    let tokens = client
        .exchange_code(AuthorizationCode::new(q["code"].clone()))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .unwrap();
    let id_token = tokens.id_token().expect("an ID token");
    let claims = id_token.claims(&client.id_token_verifier(), &nonce).expect("signature, issuer, audience and nonce verify");
    let (_, me) = app.post(&b, "/api/me", json!({})).await;
    // Security review #11: sub is opaque and pairwise, never the user id or the openid.
    let sub = claims.subject().as_str().to_string();
    assert_ne!(sub, me["user"]["id"].to_string(), "sub is not the sequential user id");
    assert!(sub.len() >= 22 && !me["user"]["openid_masked"].as_str().unwrap().contains(&sub[..4]), "{sub}");
    assert!(claims.auth_time().is_some());
    let amr: Vec<String> = claims.auth_method_refs().unwrap().iter().map(|a| a.to_string()).collect();
    assert_eq!(amr, vec!["wechat_miniprogram"]);
    assert!(claims.name().and_then(|n| n.get(None)).is_some_and(|n| n.as_str().starts_with("微信用户")));
    let info: openidconnect::core::CoreUserInfoClaims =
        client.user_info(tokens.access_token().clone(), None).unwrap().request_async(&http).await.unwrap();
    assert_eq!(info.subject(), claims.subject());

    // Signed in already: the next authorization answers at once.
    let (challenge, _verifier) = PkceCodeChallenge::new_random_sha256();
    let (again, _, _) = client
        .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
        .set_pkce_challenge(challenge)
        .url();
    let res = b.get(again.as_str()).send().await.unwrap();
    assert!(location(&res).starts_with(RP), "no second scan");

    // A tampered ID token is rejected by the client.
    let mut parts: Vec<String> = id_token.to_string().split('.').map(str::to_string).collect();
    parts[1] = {
        use base64::Engine as _;
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut payload: Value = serde_json::from_slice(&engine.decode(&parts[1]).unwrap()).unwrap();
        payload["sub"] = json!("1");
        engine.encode(payload.to_string())
    };
    let forged: CoreIdToken = parts.join(".").parse().unwrap();
    assert!(forged.claims(&client.id_token_verifier(), &nonce).is_err(), "a tampered token does not verify");

    // RP-initiated logout: back to the registered page, the session gone.
    let logout = format!(
        "{}/oidc/logout?id_token_hint={}&post_logout_redirect_uri={}&state=s1",
        app.base,
        id_token,
        urlencoding("https://grafana.example.com/login")
    );
    let res = b.get(logout).send().await.unwrap();
    assert_eq!(location(&res), "https://grafana.example.com/login?state=s1");
    assert_error(&app.post(&b, "/api/me", json!({})).await, 401, "unauthenticated");

    // The audit trail names the site at each step.
    let trail: Vec<(String, String)> =
        sqlx::query_as("SELECT kind, detail FROM audit_events WHERE kind IN ('sign_in', 'oidc_code', 'oidc_tokens') ORDER BY id")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(
        &trail[..3],
        &[("sign_in".into(), "Grafana".into()), ("oidc_code".into(), "Grafana".into()), ("oidc_tokens".into(), "Grafana".into())]
    );
}

fn urlencoding(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// An authorization URL for `client` with `extra` parameters.
pub(crate) fn auth_url(app: &TestApp, client: &str, redirect: &str, extra: &[(&str, &str)]) -> String {
    let mut u = url::Url::parse(&format!("{}/oidc/authorize", app.base)).unwrap();
    u.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client)
        .append_pair("redirect_uri", redirect)
        .append_pair("scope", "openid")
        .append_pair("state", "st")
        .append_pair("nonce", "n0");
    for (k, v) in extra {
        u.query_pairs_mut().append_pair(k, v);
    }
    u.to_string()
}

pub(crate) async fn exchange(app: &TestApp, form: &[(&str, &str)], basic: Option<(&str, &str)>) -> (u16, Value) {
    let mut req = reqwest::Client::new().post(format!("{}/oidc/token", app.base)).form(form);
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    let res = req.send().await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap_or(Value::Null))
}

pub(crate) async fn count_tokens(app: &TestApp) -> i64 {
    app.count("oidc_tokens").await
}

#[tokio::test]
async fn the_negative_table_answers_rfc_errors_and_issues_nothing() {
    let app = provider().await;
    let b = browser_no_redirects();
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let pkce = [("code_challenge", challenge.as_str()), ("code_challenge_method", "S256")];

    // prompt=none without a session → login_required, back to the client.
    let res = b.get(auth_url(&app, "grafana", RP, &[("prompt", "none")])).send().await.unwrap();
    let q = query_of(&location(&res));
    assert_eq!((q["error"].as_str(), q["state"].as_str()), ("login_required", "st"));
    // Unknown client and unregistered redirect URI: our error page, never a redirect.
    for url in [auth_url(&app, "nobody", RP, &[]), auth_url(&app, "grafana", "https://evil.example/cb", &[])] {
        let res = b.get(url).send().await.unwrap();
        assert_eq!(res.status(), 400);
        assert!(res.headers().get("location").is_none());
    }
    // `plain` PKCE, and a public client without PKCE: invalid_request to the client.
    let res =
        b.get(auth_url(&app, "spa", SPA, &[("code_challenge", &"a".repeat(43)), ("code_challenge_method", "plain")])).send().await.unwrap();
    assert_eq!(query_of(&location(&res))["error"], "invalid_request");
    let res = b.get(auth_url(&app, "spa", SPA, &[])).send().await.unwrap();
    assert_eq!(query_of(&location(&res))["error"], "invalid_request");

    // A real code, then everything that must not redeem it.
    let back = authorize(&app, &b, &auth_url(&app, "grafana", RP, &pkce)).await;
    let code = query_of(&back)["code"].clone();
    // One row of the table: a token request and the error it must get.
    struct Case<'a> {
        name: &'a str,
        verifier: &'a str,
        redirect: &'a str,
        basic: Option<(&'a str, &'a str)>,
        status: u16,
        error: &'a str,
    }
    let wrong = "wrong-verifier-wrong-verifier-wrong-verifier-x";
    let v = verifier.secret().as_str();
    let cases = [
        Case {
            name: "wrong PKCE verifier",
            verifier: wrong,
            redirect: RP,
            basic: Some(("grafana", SECRET)),
            status: 400,
            error: "invalid_grant",
        },
        Case {
            name: "redirect URI mismatch",
            verifier: v,
            redirect: "https://grafana.example.com/other",
            basic: Some(("grafana", SECRET)),
            status: 400,
            error: "invalid_grant",
        },
        Case {
            name: "bad client secret",
            verifier: v,
            redirect: RP,
            basic: Some(("grafana", "not-the-secret-at-all")),
            status: 401,
            error: "invalid_client",
        },
        Case { name: "unknown client", verifier: v, redirect: RP, basic: Some(("nobody", SECRET)), status: 401, error: "invalid_client" },
        Case { name: "a code for another client", verifier: v, redirect: RP, basic: None, status: 400, error: "invalid_grant" },
    ];
    for c in cases {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", c.redirect),
            ("code_verifier", c.verifier),
        ];
        if c.basic.is_none() {
            form.push(("client_id", "spa"));
        }
        let (s, answer) = exchange(&app, &form, c.basic).await;
        assert_eq!((s, answer["error"].as_str()), (c.status, Some(c.error)), "{}: {answer}", c.name);
        assert_eq!(count_tokens(&app).await, 0, "{}: nothing issued", c.name);
    }
    let form = |v: &str, code: &str, redirect: &str| {
        [("grant_type", "authorization_code"), ("code", code), ("redirect_uri", redirect), ("code_verifier", v)]
            .map(|(k, x)| (k, x.to_string()))
    };
    // The right exchange works once; a replay fails and revokes what the first issued.
    let ok = form(verifier.secret(), &code, RP);
    let borrowed: Vec<(&str, &str)> = ok.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (s, first) = exchange(&app, &borrowed, Some(("grafana", SECRET))).await;
    assert_eq!(s, 200, "{first}");
    let access = first["access_token"].as_str().unwrap().to_string();
    let userinfo = |t: String| {
        let base = app.base.clone();
        async move { reqwest::Client::new().get(format!("{base}/oidc/userinfo")).bearer_auth(t).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(userinfo(access.clone()).await, 200);
    let (s, v) = exchange(&app, &borrowed, Some(("grafana", SECRET))).await;
    assert_eq!((s, v["error"].as_str()), (400, Some("invalid_grant")), "reused code: {v}");
    assert_eq!(userinfo(access).await, 401, "the replay revoked the first exchange's token");
    assert_eq!(count_tokens(&app).await, 0);

    // An expired code.
    let back = authorize(&app, &b, &auth_url(&app, "grafana", RP, &pkce)).await;
    let code = query_of(&back)["code"].clone();
    sqlx::query("UPDATE oidc_codes SET expires_at = 0").execute(&app.pool).await.unwrap();
    let f = form(verifier.secret(), &code, RP);
    let borrowed: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (s, v) = exchange(&app, &borrowed, Some(("grafana", SECRET))).await;
    assert_eq!((s, v["error"].as_str()), (400, Some("invalid_grant")), "expired: {v}");
    assert_eq!(count_tokens(&app).await, 0);

    // A public client by PKCE alone, client_id in the body.
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let back =
        authorize(&app, &b, &auth_url(&app, "spa", SPA, &[("code_challenge", challenge.as_str()), ("code_challenge_method", "S256")]))
            .await;
    let code = query_of(&back)["code"].clone();
    let (s, v) = exchange(
        &app,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", SPA),
            ("code_verifier", verifier.secret()),
            ("client_id", "spa"),
        ],
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert!(v["id_token"].as_str().is_some());
}

#[tokio::test]
async fn discovery_and_jwks_name_everything() {
    let app = provider().await;
    let meta: Value = reqwest::get(format!("{}/.well-known/openid-configuration", app.base)).await.unwrap().json().await.unwrap();
    assert_eq!(meta["issuer"], app.base);
    for key in ["authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri", "end_session_endpoint"] {
        assert!(meta[key].as_str().is_some_and(|u| u.starts_with(&app.base)), "{key}: {meta}");
    }
    assert_eq!(meta["code_challenge_methods_supported"], json!(["S256"]));
    let jwks: Value = reqwest::get(meta["jwks_uri"].as_str().unwrap()).await.unwrap().json().await.unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["kty"], "RSA");
    assert!(keys[0].get("d").is_none(), "never the private part");
    // Rotation keeps the old key published.
    let keys_store = &app.state.oidc.as_ref().unwrap().keys;
    keys_store.rotate(scanlogin::domain::UnixMillis(i64::MAX / 4)).await.unwrap();
    let jwks: Value = reqwest::get(meta["jwks_uri"].as_str().unwrap()).await.unwrap().json().await.unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
}

/// A key made by another instance reaches this one's JWKS at its next reload, and signs
/// only once it has been published longer than any instance's reload interval.
#[tokio::test]
async fn a_key_rotated_elsewhere_is_published_before_it_signs() {
    use openidconnect::{JsonWebKey as _, PrivateSigningKey as _};
    use scanlogin::domain::UnixMillis;
    use scanlogin::server::oidc::keys::{PUBLISH_AHEAD, SigningKeys};
    use std::time::Duration;
    let app = provider().await;
    let here = SigningKeys::reloading_every(app.pool.clone(), std::time::Duration::from_millis(50));
    let elsewhere = SigningKeys::new(app.pool.clone());
    let kid = |k: &openidconnect::core::CoreRsaPrivateSigningKey| k.as_verification_key().key_id().unwrap().to_string();
    let t0 = UnixMillis(4_000_000_000_000);
    let before = kid(&here.current(t0).await.unwrap());
    assert_eq!(here.jwks(t0, Duration::from_millis(1)).await.unwrap().keys().len(), 1);

    let new_kid = elsewhere.rotate(t0).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(80)).await;
    let published: Vec<String> =
        here.jwks(t0, Duration::from_millis(1)).await.unwrap().keys().iter().map(|k| k.key_id().unwrap().to_string()).collect();
    assert!(published.contains(&new_kid) && published.contains(&before), "both published: {published:?}");
    assert_eq!(kid(&here.current(t0.plus(PUBLISH_AHEAD - Duration::from_millis(1))).await.unwrap()), before, "the new key waits");
    let later = t0.plus(PUBLISH_AHEAD);
    assert_eq!(kid(&here.current(later).await.unwrap()), new_kid, "then signs");
    let after_keep: Vec<String> = here
        .jwks(later.plus(Duration::from_secs(1)), Duration::from_secs(1))
        .await
        .unwrap()
        .keys()
        .iter()
        .map(|k| k.key_id().unwrap().to_string())
        .collect();
    assert_eq!(after_keep, vec![new_kid], "the old key leaves once its tokens are expired");
}

#[tokio::test]
async fn prompt_login_and_max_age_ask_for_a_new_scan() {
    let app = provider().await;
    let b = browser_no_redirects();
    let (challenge, _) = PkceCodeChallenge::new_random_sha256();
    let pkce = [("code_challenge", challenge.as_str()), ("code_challenge_method", "S256")];
    // Signed in through a first authorization.
    let back = authorize(&app, &b, &auth_url(&app, "grafana", RP, &pkce)).await;
    assert!(query_of(&back).contains_key("code"));
    for extra in [("prompt", "login"), ("max_age", "0")] {
        let mut params = pkce.to_vec();
        params.push(extra);
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await; // max_age is in seconds
        let res = b.get(auth_url(&app, "grafana", RP, &params)).send().await.unwrap();
        let to = location(&res);
        assert!(to.starts_with("/login?next=/oidc/resume/"), "{extra:?}: a new scan is needed, not a code: {to}");
        // The login page shows the scan even though the browser is signed in.
        let page = b.get(format!("{}{to}", app.base)).send().await.unwrap();
        if extra.0 == "prompt" {
            assert!(to.contains("fresh=1"));
            assert_eq!(page.status(), 200, "{extra:?}: the scan page, not a redirect");
        }
        // After the new scan, the code comes.
        let next = scan_login(&app, &b, &to).await;
        let res = b.get(format!("{}{next}", app.base)).send().await.unwrap();
        assert!(location(&res).starts_with(RP), "{extra:?}");
    }
}
