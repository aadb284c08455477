//! The security review's remaining items (issue 33): signing keys sealed at rest and
//! retired (#12), the age of a logout hint (#12), pending requests bounded per browser
//! (#2), hashed client secrets and a strict `/auth/return` (#13).

use crate::common::*;
use crate::oidc::{RP, SECRET, auth_url, browser_no_redirects, exchange, location, provider_with, query_of};
use scanlogin::domain::UnixMillis;
use serde_json::json;

fn key_file(dir: &std::path::Path, name: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, scanlogin::server::tokens::random_token(48)).unwrap();
    path.display().to_string()
}

async fn stored_keys(app: &TestApp) -> Vec<(String, String, Option<String>)> {
    sqlx::query_as("SELECT kid, private_pem, public_jwk FROM oidc_keys ORDER BY created_at").fetch_all(&app.pool).await.unwrap()
}

/// The arguments the provider was started with, to start it again on its database.
fn clients_arg(app: &TestApp) -> String {
    app.dir.path().join("clients.toml").display().to_string()
}

async fn restart(app: &TestApp, extra: &[&str]) -> Result<scanlogin::server::startup::Application, String> {
    let clients = clients_arg(app);
    let mut args = vec!["--oidc-clients", clients.as_str()];
    args.extend_from_slice(extra);
    scanlogin::server::startup::Application::build(&config(&app.db_url, &args), leptos_options()).await.map_err(|e| e.to_string())
}

#[tokio::test]
async fn signing_keys_are_sealed_with_the_key_file_and_unreadable_without_it() {
    let files = tempfile::tempdir().unwrap();
    let (good, other) = (key_file(files.path(), "oidc.key"), key_file(files.path(), "other.key"));
    // Made in plaintext first (no key file), then sealed when a file is given.
    let app = provider_with(&[]).await;
    let before = stored_keys(&app).await;
    assert!(before[0].1.starts_with("-----BEGIN"), "without a file: plaintext PEM");
    let sealed = restart(&app, &["--oidc-key-file", &good]).await.unwrap();
    let after = stored_keys(&app).await;
    assert_eq!(after.len(), 1);
    assert!(after[0].1.starts_with("enc:v1:") && !after[0].1.contains("PRIVATE KEY"), "{}", &after[0].1[..20]);
    drop(sealed);

    // Without the file, or with another one, the keys cannot be read: start-up says why.
    let err = restart(&app, &[]).await.err().expect("a sealed key needs the file");
    assert!(err.contains("OIDC_KEY_FILE"), "{err}");
    let err = restart(&app, &["--oidc-key-file", &other]).await.err().expect("another file does not open it");
    assert!(err.contains("cannot be opened"), "{err}");
    let short = files.path().join("short.key");
    std::fs::write(&short, "too short").unwrap();
    let err = restart(&app, &["--oidc-key-file", short.to_str().unwrap()]).await.err().expect("a short file is refused");
    assert!(err.contains("32"), "{err}");

    // A row moved to another key id does not open either (the id is bound into the seal).
    sqlx::query("INSERT INTO oidc_keys (kid, private_pem, created_at) VALUES ('moved', $1, 1)")
        .bind(&after[0].1)
        .execute(&app.pool)
        .await
        .unwrap();
    let err = restart(&app, &["--oidc-key-file", &good]).await.err().expect("a moved row does not open");
    assert!(err.contains("moved"), "{err}");
    sqlx::query("DELETE FROM oidc_keys WHERE kid = 'moved'").execute(&app.pool).await.unwrap();

    // With the file, tokens are signed as before.
    let sealed = restart(&app, &["--oidc-key-file", &good]).await.unwrap();
    let key = sealed.state().oidc.as_ref().unwrap().keys.current(UnixMillis(i64::MAX / 4)).await;
    assert!(key.is_ok());
}

#[tokio::test]
async fn a_key_that_no_longer_signs_keeps_only_its_public_part_then_goes() {
    use openidconnect::JsonWebKey as _;
    use scanlogin::server::oidc::keys::PUBLISH_AHEAD;
    use std::time::Duration;
    const DAY: Duration = Duration::from_secs(86_400);
    let app = provider_with(&[]).await;
    let keys = &app.state.oidc.as_ref().unwrap().keys;
    let old_kid = stored_keys(&app).await[0].0.clone();
    let t0 = UnixMillis(4_000_000_000_000);
    keys.rotate(t0).await.unwrap();
    // Before the new key signs, nothing is retired.
    assert_eq!(keys.retire(t0.plus(PUBLISH_AHEAD - Duration::from_millis(1)), DAY).await.unwrap(), (0, 0));
    // Once it signs, the old key's private part is erased; its public key stays published.
    let later = t0.plus(PUBLISH_AHEAD + Duration::from_millis(1));
    assert_eq!(keys.retire(later, DAY).await.unwrap(), (1, 0));
    let rows = stored_keys(&app).await;
    let old = rows.iter().find(|r| r.0 == old_kid).unwrap();
    assert_eq!(old.1, "", "no private material left");
    assert!(old.2.as_deref().is_some_and(|j| j.contains("\"n\"")), "the public JWK is kept");
    let published: Vec<String> =
        keys.jwks(later, Duration::MAX).await.unwrap().keys().iter().map(|k| k.key_id().unwrap().to_string()).collect();
    assert!(published.contains(&old_kid), "{published:?}");
    assert!(keys.current(later).await.is_ok(), "the new key signs");
    // Past the keep window it is deleted.
    assert_eq!(keys.retire(later.plus(DAY + Duration::from_millis(1)), DAY).await.unwrap(), (0, 1));
    assert!(stored_keys(&app).await.iter().all(|r| r.0 != old_kid));
}

/// A hint signed by us but older than a login can last is refused like a forged one.
#[tokio::test]
async fn an_id_token_hint_older_than_a_login_is_refused() {
    use openidconnect::core::{CoreIdToken, CoreIdTokenClaims, CoreJwsSigningAlgorithm};
    use openidconnect::{Audience, EmptyAdditionalClaims, IssuerUrl, StandardClaims, SubjectIdentifier};
    let app = provider_with(&[]).await;
    let p = app.state.oidc.as_ref().unwrap();
    let key = p.keys.current(app.state.clock.now()).await.unwrap();
    let hint = |age_days: i64| {
        let iat = chrono::Utc::now() - chrono::Duration::days(age_days);
        let claims = CoreIdTokenClaims::new(
            IssuerUrl::new(app.base.clone()).unwrap(),
            vec![Audience::new("grafana".into())],
            iat + chrono::Duration::minutes(10),
            iat,
            StandardClaims::new(SubjectIdentifier::new("someone".into())),
            EmptyAdditionalClaims {},
        );
        CoreIdToken::new(claims, &*key, CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256, None, None).unwrap().to_string()
    };
    let logout = |hint: String| {
        let url = format!(
            "{}/oidc/logout?id_token_hint={hint}&post_logout_redirect_uri={}",
            app.base,
            url::form_urlencoded::byte_serialize(b"https://grafana.example.com/login").collect::<String>()
        );
        async move { browser_no_redirects().get(url).send().await.unwrap() }
    };
    let fresh = logout(hint(29)).await;
    assert_eq!((fresh.status().as_u16(), location(&fresh)), (302, "https://grafana.example.com/login".to_string()));
    let stale = logout(hint(31)).await;
    assert_eq!(stale.status(), 400, "older than SESSION_ABSOLUTE_SECS (30 days)");
}

/// Security review #2: one browser keeps at most ten pending authorization requests.
#[tokio::test]
async fn a_browser_keeps_at_most_ten_pending_requests() {
    let app = provider_with(&[]).await;
    let b = browser_no_redirects();
    // A browser with a binding key (it opened the login page).
    app.new_ticket(&b).await;
    let mut resumes = Vec::new();
    for i in 0..15 {
        let res = b.get(auth_url(&app, "grafana", RP, &[("state", &format!("s{i}"))])).send().await.unwrap();
        assert_eq!(res.status(), 302);
        let next = query_of(&format!("{}{}", app.base, location(&res)))["next"].clone();
        resumes.push(next);
    }
    assert_eq!(app.count("oidc_requests").await, 10, "the oldest five are forgotten");
    let newest = b.get(format!("{}{}", app.base, resumes[14])).send().await.unwrap();
    assert_eq!(newest.status(), 302, "the newest still resumes");
    let oldest = b.get(format!("{}{}", app.base, resumes[0])).send().await.unwrap();
    assert_ne!(oldest.status(), 302, "the oldest is gone");
    // Another browser's requests are its own.
    let other = browser_no_redirects();
    app.new_ticket(&other).await;
    other.get(auth_url(&app, "grafana", RP, &[])).send().await.unwrap();
    assert_eq!(app.count("oidc_requests").await, 11);
}

/// Security review #13: a client whose secret is stored as its SHA-256 authenticates with
/// the secret, never with the hash.
#[tokio::test]
async fn a_hashed_client_secret_authenticates_with_the_secret() {
    use sha2::Digest as _;
    let hex: String = sha2::Sha256::digest(SECRET.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    let clients = format!("[[client]]\nid = \"grafana\"\nname = \"Grafana\"\nsecret_sha256 = \"{hex}\"\nredirect_uris = [\"{RP}\"]\n");
    let app = crate::oidc::provider_from(clients, &[]).await;
    let b = browser_no_redirects();
    let (challenge, verifier) = openidconnect::PkceCodeChallenge::new_random_sha256();
    let back = crate::oidc::authorize(
        &app,
        &b,
        &auth_url(&app, "grafana", RP, &[("code_challenge", challenge.as_str()), ("code_challenge_method", "S256")]),
    )
    .await;
    let code = query_of(&back)["code"].clone();
    let form = [("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", RP), ("code_verifier", verifier.secret())];
    let (s, v) = exchange(&app, &form, Some(("grafana", &hex))).await;
    assert_eq!((s, &v["error"]), (401, &json!("invalid_client")), "the hash is not the secret: {v}");
    let (s, v) = exchange(&app, &form, Some(("grafana", SECRET))).await;
    assert_eq!(s, 200, "{v}");
    assert!(v["id_token"].is_string());
}

/// Security review #13: with an https PUBLIC_URL, `/auth/return` goes only to https on the
/// default port; `FORWARD_AUTH_STRICT_RETURN=false` lifts it.
#[tokio::test]
async fn auth_return_is_https_on_the_default_port_behind_an_https_site() {
    let app = spawn(&["--public-url", "https://login.example.com", "--forward-auth-domains", "example.com"]).await;
    let go = |rd: &str| {
        let url = format!("{}/auth/return?rd={}", app.local, url::form_urlencoded::byte_serialize(rd.as_bytes()).collect::<String>());
        async move { browser_no_redirects().get(url).send().await.unwrap() }
    };
    let ok = go("https://grafana.example.com/d/1").await;
    assert_eq!((ok.status().as_u16(), location(&ok)), (302, "https://grafana.example.com/d/1".to_string()));
    for bad in ["http://grafana.example.com/d/1", "https://grafana.example.com:8443/d/1"] {
        assert_eq!(go(bad).await.status(), 400, "{bad}");
    }
    let lax = spawn(&[
        "--public-url",
        "https://login.example.com",
        "--forward-auth-domains",
        "example.com",
        "--forward-auth-strict-return",
        "false",
    ])
    .await;
    let url = format!(
        "{}/auth/return?rd={}",
        lax.local,
        url::form_urlencoded::byte_serialize(b"http://grafana.example.com:3000/").collect::<String>()
    );
    assert_eq!(browser_no_redirects().get(url).send().await.unwrap().status(), 302);
}
