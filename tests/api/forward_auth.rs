//! Forward-auth behind real reverse proxies (Debian's nginx and Caddy, started here on
//! loopback ports, configured as docs/integrations.md says) in front of a tiny upstream:
//! anonymous → our login; after a scan login → the upstream sees the user; a
//! forged identity header sent by the client (every one `/auth/verify` emits) never gets
//! through; a foreign `rd` is refused.

use crate::common::*;
use axum::http::HeaderMap;
use scanlogin::domain::UserId;
use serde_json::json;
use std::process::{Child, Command};

/// Every identity header `/auth/verify` emits, as the upstream reads them.
const IDENTITY_HEADERS: [&str; 5] = ["remote-user", "remote-name", "x-auth-request-user", "remote-email", "x-auth-request-email"];

/// The protected app: answers with the identity headers the proxy passed it.
async fn upstream() -> String {
    let app = axum::Router::new().fallback(|headers: HeaderMap| async move {
        let seen: Vec<String> = IDENTITY_HEADERS
            .iter()
            .map(|h| format!("{h}={}", headers.get(*h).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()).unwrap_or_default()))
            .collect();
        format!("upstream: {}", seen.join(" "))
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr.to_string()
}

/// A reverse proxy we started, stopped on drop.
struct Proxy {
    child: Child,
    _dir: tempfile::TempDir,
    base: String,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// nginx with `auth_request` against scanlogin.
async fn nginx(scanlogin: &str, upstream: &str) -> Proxy {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let d = dir.path().display();
    let scanlogin = scanlogin.trim_start_matches("http://");
    let conf = format!(
        r#"
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
  server {{
    listen 127.0.0.1:{port};
    location = /_scanlogin_verify {{
      internal;
      proxy_pass http://{scanlogin}/auth/verify;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Original-URL $scheme://$http_host$request_uri;
    }}
    location / {{
      auth_request /_scanlogin_verify;
      auth_request_set $scanlogin_user $upstream_http_remote_user;
      auth_request_set $scanlogin_name $upstream_http_remote_name;
      auth_request_set $scanlogin_email $upstream_http_remote_email;
      auth_request_set $scanlogin_login $upstream_http_x_redirection_url;
      # The upstream believes these headers: always ours, never the client's.
      proxy_set_header Remote-User $scanlogin_user;
      proxy_set_header Remote-Name $scanlogin_name;
      proxy_set_header X-Auth-Request-User $scanlogin_user;
      proxy_set_header Remote-Email $scanlogin_email;
      proxy_set_header X-Auth-Request-Email $scanlogin_email;
      proxy_pass http://{upstream};
      error_page 401 = @scanlogin_login;
    }}
    location @scanlogin_login {{
      return 302 $scanlogin_login;
    }}
  }}
}}
"#
    );
    std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
    let mut cmd = Command::new("/usr/sbin/nginx");
    cmd.args(["-p", &d.to_string(), "-c", &format!("{d}/nginx.conf"), "-g", "daemon off;"]);
    start(cmd, dir, port, "nginx installed by scripts/setup --test (nginx-light)").await
}

/// Caddy with `forward_auth` against scanlogin (`?redirect=1`: Caddy hands our answer
/// to the browser as it is).
async fn caddy(scanlogin: &str, upstream: &str) -> Proxy {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let d = dir.path().display();
    let scanlogin = scanlogin.trim_start_matches("http://");
    let conf = format!(
        r#"
{{
  admin off
  auto_https off
  storage file_system {d}/data
}}
http://127.0.0.1:{port} {{
  forward_auth {scanlogin} {{
    uri /auth/verify?redirect=1
    copy_headers Remote-User Remote-Name X-Auth-Request-User Remote-Email X-Auth-Request-Email
  }}
  reverse_proxy {upstream}
}}
"#
    );
    std::fs::write(dir.path().join("Caddyfile"), conf).unwrap();
    let mut cmd = Command::new("caddy");
    cmd.args(["run", "--adapter", "caddyfile", "--config", &format!("{d}/Caddyfile")])
        .env("HOME", d.to_string())
        .env("XDG_DATA_HOME", format!("{d}/data"));
    start(cmd, dir, port, "caddy installed by scripts/setup --test").await
}

/// Starts a proxy and waits for its port.
async fn start(mut cmd: Command, dir: tempfile::TempDir, port: u16, missing: &str) -> Proxy {
    let log = std::fs::File::create(dir.path().join("proxy.log")).unwrap();
    let mut child = cmd.stdin(std::process::Stdio::null()).stdout(log.try_clone().unwrap()).stderr(log).spawn().expect(missing);
    let base = format!("http://127.0.0.1:{port}");
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Proxy { child, _dir: dir, base };
        }
        if child.try_wait().ok().flatten().is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the proxy did not start: {}", std::fs::read_to_string(dir.path().join("proxy.log")).unwrap_or_default());
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().cookie_store(true).user_agent(CHROME_UA).redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_auth_request_protects_an_app_with_scan_login() {
    let app = spawn(&["--forward-auth-domains", "127.0.0.1"]).await;
    let proxy = nginx(&app.base, &upstream().await).await;
    protects_an_app(&app, &proxy).await;
    refuses_foreign_return_addresses(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caddy_forward_auth_protects_an_app_with_scan_login() {
    let app = spawn(&["--forward-auth-domains", "127.0.0.1"]).await;
    let proxy = caddy(&app.base, &upstream().await).await;
    protects_an_app(&app, &proxy).await;
}

/// A request to the protected app carrying a forged value of every identity header.
fn forged(b: &reqwest::Client, page: &str) -> reqwest::RequestBuilder {
    IDENTITY_HEADERS.iter().fold(b.get(page), |req, h| req.header(*h, "999"))
}

/// Anonymous → our login, carrying the original URL; the scan login; back to the app,
/// which sees our user and never the one the client claims.
async fn protects_an_app(app: &TestApp, proxy: &Proxy) {
    let b = no_redirects();
    let page = format!("{}/dashboard?x=1", proxy.base);

    // Anonymous: to our login page, carrying where the person was going.
    let res = forged(&b, &page).send().await.unwrap();
    assert_eq!(res.status(), 302, "{}", res.text().await.unwrap_or_default());
    let login = res.headers()["location"].to_str().unwrap().to_string();
    assert!(login.starts_with(&format!("{}/login?next=", app.base)), "{login}");
    let next: String = url::Url::parse(&login).unwrap().query_pairs().find(|(k, _)| k == "next").unwrap().1.into_owned();
    let rd: String =
        url::Url::parse(&format!("{}{next}", app.base)).unwrap().query_pairs().find(|(k, _)| k == "rd").unwrap().1.into_owned();
    assert!(next.starts_with("/auth/return?rd="), "{next}");
    assert_eq!(rd, page, "the original URL travels as rd");

    // The scan login, then back to the app.
    let (s, issued) = app.post(&b, "/api/login/ticket", json!({ "next": next })).await;
    assert_eq!(s, 200, "{issued}");
    let t = issued["ticket"].as_str().unwrap().to_string();
    let token = app.scan(&t, "lisi").await;
    app.confirm(&t, &token).await;
    let (s, fin) = app.finalize(&b, &t).await;
    assert_eq!(s, 200);
    let res = b.get(format!("{}{}", app.base, fin["next"].as_str().unwrap())).send().await.unwrap();
    assert_eq!(res.headers()["location"].to_str().unwrap(), page);

    // Signed in: the upstream sees our user (and the verified email), whatever the client claims.
    let (_, me) = app.post(&b, "/api/me", json!({})).await;
    let (id, name) = (&me["user"]["id"], me["user"]["name"].as_str().unwrap());
    app.state.users.set_email(UserId(id.as_i64().unwrap()), Some("lisi@example.com")).await.unwrap();
    let res = forged(&b, &page).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.text().await.unwrap(),
        format!(
            "upstream: remote-user={id} remote-name={name} x-auth-request-user={id} remote-email=lisi@example.com x-auth-request-email=lisi@example.com"
        )
    );
    // Signed out: the client's own claim still does not get through.
    let (s, _) = app.post(&b, "/api/logout", json!({})).await;
    assert_eq!(s, 200);
    let res = forged(&b, &page).send().await.unwrap();
    assert_eq!(res.status(), 302, "{}", res.text().await.unwrap_or_default());
}

/// A foreign return address is refused, never followed.
async fn refuses_foreign_return_addresses(app: &TestApp) {
    let evil = no_redirects().get(format!("{}/auth/return?rd=https://evil.example/", app.base)).send().await.unwrap();
    assert_eq!(evil.status(), 400);
    assert!(evil.headers().get("location").is_none());
    let verify = reqwest::Client::new()
        .get(format!("{}/auth/verify", app.base))
        .header("x-original-url", "https://evil.example/steal")
        .send()
        .await
        .unwrap();
    assert_eq!(verify.status(), 401);
    assert!(!verify.headers()["location"].to_str().unwrap().contains("evil"), "no rd for a foreign host");
    // Traefik / Caddy hand the answer to the browser: ?redirect=1 makes it a 302.
    let traefik = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/auth/verify?redirect=1", app.base))
        .header("x-forwarded-proto", "http")
        .header("x-forwarded-host", "127.0.0.1:8080")
        .header("x-forwarded-uri", "/grafana/")
        .send()
        .await
        .unwrap();
    assert_eq!(traefik.status(), 302);
    assert!(traefik.headers()["location"].to_str().unwrap().contains("8080%252Fgrafana"), "{:?}", traefik.headers());
}

/// `/auth/verify` reads sessions through an in-memory cache: a logout or 退出其他设备
/// must still end access at once, not when a cache entry ages out.
#[tokio::test]
async fn logouts_and_revocations_end_verify_at_once_despite_the_session_cache() {
    let app = spawn(&[]).await;
    let (laptop, phone_browser) = (no_redirects(), no_redirects());
    app.sign_in(&laptop, "lisi").await;
    app.sign_in(&phone_browser, "lisi").await;
    for _ in 0..3 {
        assert_eq!(app.verify(&laptop).await, 200);
        assert_eq!(app.verify(&phone_browser).await, 200);
    }
    assert!(app.state.sessions.cache().len() >= 2, "verify is served from the cache");

    let (s, v) = app.post(&phone_browser, "/api/sessions/revoke-others", json!({})).await;
    assert_eq!((s.as_u16(), &v["revoked"]), (200, &json!(1)), "{v}");
    assert_eq!(app.verify(&laptop).await, 401, "the revoked browser is out at once");
    assert_eq!(app.verify(&phone_browser).await, 200);

    let (s, _) = app.post(&phone_browser, "/api/logout", json!({})).await;
    assert_eq!(s, 200);
    assert_eq!(app.verify(&phone_browser).await, 401, "a logout ends access at once");
}

/// An upstream that names itself and echoes the identity headers, groups included.
async fn named_upstream(name: &'static str) -> String {
    let app = axum::Router::new().fallback(move |headers: HeaderMap| async move {
        let h = |k: &str| headers.get(k).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()).unwrap_or_default();
        format!("{name}: user={} groups={} x-groups={}", h("remote-user"), h("remote-groups"), h("x-auth-request-groups"))
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr.to_string()
}

/// nginx in front of grafana.test and wiki.test, as docs/integrations.md's access recipe.
async fn nginx_two_sites(scanlogin: &str, grafana: &str, wiki: &str) -> Proxy {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let d = dir.path().display();
    let scanlogin = scanlogin.trim_start_matches("http://");
    let site = |name: &str, upstream: &str| {
        format!(
            r#"
  server {{
    listen 127.0.0.1:{port};
    server_name {name};
    location = /_scanlogin_verify {{
      internal;
      proxy_pass http://{scanlogin}/auth/verify;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Original-URL $scheme://$http_host$request_uri;
    }}
    location / {{
      auth_request /_scanlogin_verify;
      auth_request_set $scanlogin_user $upstream_http_remote_user;
      auth_request_set $scanlogin_name $upstream_http_remote_name;
      auth_request_set $scanlogin_groups $upstream_http_remote_groups;
      auth_request_set $scanlogin_email $upstream_http_remote_email;
      auth_request_set $scanlogin_login $upstream_http_x_redirection_url;
      proxy_set_header Remote-User $scanlogin_user;
      proxy_set_header Remote-Name $scanlogin_name;
      proxy_set_header Remote-Groups $scanlogin_groups;
      proxy_set_header Remote-Email $scanlogin_email;
      proxy_set_header X-Auth-Request-User $scanlogin_user;
      proxy_set_header X-Auth-Request-Groups $scanlogin_groups;
      proxy_set_header X-Auth-Request-Email $scanlogin_email;
      proxy_pass http://{upstream};
      error_page 401 403 = @scanlogin_login;
    }}
    location @scanlogin_login {{
      return 302 $scanlogin_login;
    }}
  }}"#
        )
    };
    let conf = format!(
        "master_process off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{ worker_connections 64; }}\nhttp {{\n  access_log off;\n  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n{}\n{}\n}}\n",
        site("grafana.test", grafana),
        site("wiki.test", wiki)
    );
    std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
    let mut cmd = Command::new("/usr/sbin/nginx");
    cmd.args(["-p", &d.to_string(), "-c", &format!("{d}/nginx.conf"), "-g", "daemon off;"]);
    start(cmd, dir, port, "nginx installed by scripts/setup --test (nginx-light)").await
}

/// Caddy in front of grafana.test and wiki.test.
async fn caddy_two_sites(scanlogin: &str, grafana: &str, wiki: &str) -> Proxy {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let d = dir.path().display();
    let scanlogin = scanlogin.trim_start_matches("http://");
    let site = |name: &str, upstream: &str| {
        format!(
            "http://{name}:{port} {{\n  forward_auth {scanlogin} {{\n    uri /auth/verify?redirect=1\n    copy_headers Remote-User Remote-Name Remote-Groups Remote-Email X-Auth-Request-User X-Auth-Request-Groups X-Auth-Request-Email\n  }}\n  reverse_proxy {upstream}\n}}\n"
        )
    };
    let conf = format!(
        "{{\n  admin off\n  auto_https off\n  storage file_system {d}/data\n}}\n{}{}",
        site("grafana.test", grafana),
        site("wiki.test", wiki)
    );
    std::fs::write(dir.path().join("Caddyfile"), conf).unwrap();
    let mut cmd = Command::new("caddy");
    cmd.args(["run", "--adapter", "caddyfile", "--config", &format!("{d}/Caddyfile")])
        .env("HOME", d.to_string())
        .env("XDG_DATA_HOME", format!("{d}/data"));
    start(cmd, dir, port, "caddy installed by scripts/setup --test").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sites_behind_nginx_and_caddy_admit_each_group_only() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        "[[rule]]\nhost = \"grafana.test\"\nallow = [\"group:ops\"]\n\n[[rule]]\nhost = \"wiki.test\"\nallow = [\"group:dev\"]\n",
    )
    .unwrap();
    let db_url = format!("sqlite://{}/scanlogin.db", dir.path().display());
    let rules = rules.display().to_string();
    let app = spawn_on(dir, db_url, &["--forward-auth-domains", "test", "--access-rules", &rules]).await;
    let (grafana, wiki) = (named_upstream("grafana").await, named_upstream("wiki").await);
    let (ops, ops_jar) = browser_with_jar();
    let (dev, dev_jar) = browser_with_jar();
    app.sign_in(&ops, "zhangsan").await;
    app.sign_in(&dev, "lisi").await;
    let groups = |name: &str| vec![scanlogin::domain::GroupName::try_from(name).unwrap()];
    let id_of = async |b: &reqwest::Client| app.post(b, "/api/me", json!({})).await.1["user"]["id"].as_i64().unwrap();
    let (ops_id, dev_id) = (id_of(&ops).await, id_of(&dev).await);
    for (id, g) in [(ops_id, "ops"), (dev_id, "dev")] {
        let mut u = app.state.users.get(UserId(id)).await.unwrap().unwrap();
        u.groups = groups(g);
        app.state.users.save_access(&u).await.unwrap();
    }
    // The browsers' cookies, sent to the protected sites as COOKIE_DOMAIN would make them.
    let cookie = |jar: &reqwest::cookie::Jar| format!("scanlogin_session={}", session_cookie(jar, &app.base).unwrap());
    let (ops_cookie, dev_cookie) = (cookie(&ops_jar), cookie(&dev_jar));

    for (proxy, which) in
        [(nginx_two_sites(&app.base, &grafana, &wiki).await, "nginx"), (caddy_two_sites(&app.base, &grafana, &wiki).await, "caddy")]
    {
        let port = proxy.base.rsplit(':').next().unwrap().to_string();
        let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .resolve("grafana.test", addr)
            .resolve("wiki.test", addr)
            .build()
            .unwrap();
        let get = async |site: &str, cookie: &str| {
            let res = client
                .get(format!("http://{site}:{port}/page"))
                .header("cookie", cookie)
                .header("remote-groups", "admins")
                .header("x-auth-request-groups", "admins")
                .header("remote-user", "1")
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            let location = res.headers().get("location").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
            (status, location, res.text().await.unwrap_or_default())
        };
        let (s, _, body) = get("grafana.test", &ops_cookie).await;
        assert_eq!(
            (s, body.as_str()),
            (200, format!("grafana: user={ops_id} groups=ops x-groups=ops").as_str()),
            "{which}: ops in grafana, forged groups replaced"
        );
        let (s, _, body) = get("wiki.test", &dev_cookie).await;
        assert_eq!((s, body.as_str()), (200, format!("wiki: user={dev_id} groups=dev x-groups=dev").as_str()), "{which}: dev in the wiki");
        for (site, cookie) in [("wiki.test", &ops_cookie), ("grafana.test", &dev_cookie)] {
            let (s, location, body) = get(site, cookie).await;
            assert_eq!(s, 302, "{which}: {site} refuses the other group: {body}");
            assert!(location.ends_with(&format!("/auth/denied?site={}", site.replace('.', "%2E"))), "{which}: {location}");
        }
    }
    // Out of the group: refused on the next request, through the proxy too.
    let mut u = app.state.users.get(UserId(ops_id)).await.unwrap().unwrap();
    u.groups = vec![];
    app.state.users.save_access(&u).await.unwrap();
    let proxy = nginx_two_sites(&app.base, &grafana, &wiki).await;
    let port = proxy.base.rsplit(':').next().unwrap().to_string();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .resolve("grafana.test", format!("127.0.0.1:{port}").parse().unwrap())
        .build()
        .unwrap();
    let res = client.get(format!("http://grafana.test:{port}/")).header("cookie", &ops_cookie).send().await.unwrap();
    assert_eq!(res.status(), 302, "no cache lets a removed member through");
}

/// Security review #3: with COOKIE_DOMAIN, the apps under the domain get a forward-auth
/// cookie of its own, which only `/auth/verify` accepts; scanlogin's session cookie stays
/// host-only. Replayed at scanlogin, the forward-auth cookie signs nobody in; it ends with
/// the session (logout, 退出其他设备).
#[tokio::test]
async fn cookie_domain_gives_forward_auth_a_cookie_of_its_own() {
    let app =
        spawn(&["--public-url", "https://login.example.test", "--cookie-domain", "example.test", "--forward-auth-domains", "example.test"])
            .await;
    // https: the cookies are Secure, so this test carries them by hand over loopback http.
    let raw = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let local = app.local.clone();
    let post = async |path: &str, cookie: Option<&str>, body: serde_json::Value| {
        let mut req = raw.post(format!("{local}{path}")).header("accept", "application/json").json(&body);
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        req.send().await.unwrap()
    };
    let cookie_of = |headers: &reqwest::header::HeaderMap, name: &str| {
        headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.starts_with(&format!("{name}=")))
            .map(str::to_string)
    };
    let pair = |c: String| c.split(';').next().unwrap().to_string();
    // A whole login as `user`: the session's Set-Cookie and the forward-auth one.
    let login = async |user: &str| {
        let issued = post("/api/login/ticket", None, json!({})).await;
        let anon = pair(cookie_of(issued.headers(), "__Host-scanlogin_session").expect("a host-only session cookie"));
        let body: serde_json::Value = issued.json().await.unwrap();
        let ticket = body["ticket"].as_str().unwrap().to_string();
        let code: serde_json::Value = post("/_wechat/sim/wx-login", None, json!({ "user": user })).await.json().await.unwrap();
        let scanned: serde_json::Value =
            post("/api/mp/scan", None, json!({ "ticket": ticket, "code": code["code"] })).await.json().await.unwrap();
        let confirmed = post("/api/mp/confirm", None, json!({ "ticket": ticket, "confirm_token": scanned["confirm_token"] })).await;
        assert_eq!(confirmed.status(), 200);
        let fin = post("/api/login/finalize", Some(&anon), json!({ "ticket": ticket, "finalize_key": body["finalize_key"] })).await;
        assert_eq!(fin.status(), 200);
        let session = cookie_of(fin.headers(), "__Host-scanlogin_session").unwrap();
        let fa = cookie_of(fin.headers(), "__Secure-scanlogin_fa").expect("a forward-auth cookie");
        (session, fa)
    };
    let (session, fa) = login("zhangsan").await;
    assert!(!session.to_ascii_lowercase().contains("domain="), "scanlogin's own cookie stays on its host: {session}");
    assert!(fa.contains("Domain=example.test") && fa.contains("Secure") && fa.contains("HttpOnly"), "{fa}");
    let (session, fa) = (pair(session), pair(fa));
    let verify = async |cookie: &str| {
        raw.get(format!("{local}/auth/verify"))
            .header("cookie", cookie)
            .header("x-original-url", "https://grafana.example.test/")
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    let me = async |cookie: &str| post("/api/me", Some(cookie), json!({})).await.status().as_u16();
    assert_eq!(verify(&fa).await, 200, "the apps' cookie opens the apps");
    assert_eq!(verify(&session).await, 401, "scanlogin's own cookie is not the apps' key");
    assert_eq!(me(&fa).await, 401, "replayed at scanlogin, the apps' cookie signs nobody in");
    assert_eq!(me(&session).await, 200);
    let me_view: serde_json::Value = post("/api/me", Some(&session), json!({})).await.json().await.unwrap();
    assert_eq!(me_view["sessions"].as_array().unwrap().len(), 1, "the forward-auth session is not listed as a browser");
    // 退出其他设备 from another browser ends this one's forward-auth session too.
    let (other, other_fa) = login("zhangsan").await;
    let (other, other_fa) = (pair(other), pair(other_fa));
    let res = post("/api/sessions/revoke-others", Some(&other), json!({})).await;
    let v: serde_json::Value = res.json().await.unwrap();
    assert_eq!(v["revoked"], 1, "one browser, whatever it had: {v}");
    assert_eq!(verify(&fa).await, 401, "gone with its session");
    assert_eq!(verify(&other_fa).await, 200, "the browser that asked keeps its own");
    // Logout ends the forward-auth session with the browser's.
    assert_eq!(post("/api/logout", Some(&other), json!({})).await.status(), 200);
    assert_eq!(verify(&other_fa).await, 401);
}
