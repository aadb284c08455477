//! Forward-auth behind a real nginx (Debian's, started here on a loopback port) in front
//! of a tiny upstream: anonymous → our login; after a scan login → the upstream sees the
//! user; a `Remote-User` sent by the client never gets through; a foreign `rd` is refused.

use crate::common::*;
use axum::http::HeaderMap;
use serde_json::json;
use std::process::{Child, Command};

/// The protected app: answers with the user nginx passed it.
async fn upstream() -> String {
    let app = axum::Router::new().fallback(|headers: HeaderMap| async move {
        let user = headers.get("remote-user").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        format!("upstream: user={user}")
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr.to_string()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// nginx with `auth_request` against scanlogin, as docs/integrations.md configures it.
struct Nginx {
    child: Child,
    _dir: tempfile::TempDir,
    base: String,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn nginx(scanlogin: &str, upstream: &str) -> Nginx {
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
      auth_request_set $scanlogin_login $upstream_http_x_redirection_url;
      # The upstream believes this header: it is always ours, never the client's.
      proxy_set_header Remote-User $scanlogin_user;
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
    let child = Command::new("/usr/sbin/nginx")
        .args(["-p", &d.to_string(), "-c", &format!("{d}/nginx.conf"), "-g", "daemon off;"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("nginx installed by scripts/setup --test (nginx-light)");
    let base = format!("http://127.0.0.1:{port}");
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    Nginx { child, _dir: dir, base }
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().cookie_store(true).user_agent(CHROME_UA).redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_auth_request_protects_an_app_with_scan_login() {
    let app = spawn(&["--forward-auth-domains", "127.0.0.1"]).await;
    let up = upstream().await;
    let proxy = nginx(&app.base, &up).await;
    let b = no_redirects();
    let page = format!("{}/dashboard?x=1", proxy.base);

    // Anonymous: to our login page, carrying where the person was going.
    let res = b.get(&page).header("remote-user", "1").send().await.unwrap();
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

    // Signed in: the upstream sees our user, whatever the client claims.
    let (_, me) = app.post(&b, "/api/me", json!({})).await;
    let res = b.get(&page).header("remote-user", "999").send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), format!("upstream: user={}", me["user"]["id"]));

    // A foreign return address is refused, never followed.
    let evil = b.get(format!("{}/auth/return?rd=https://evil.example/", app.base)).send().await.unwrap();
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
