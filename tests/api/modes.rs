//! Start-up modes and operations: real-credential mode, configuration errors, demo
//! loopback, WeChat timeouts, the purge task.

use crate::common::*;
use leptos::config::LeptosOptions;
use scanlogin::server::startup::Application;
use serde_json::json;
use std::process::Command;

#[tokio::test]
async fn real_mode_has_no_simulator_and_reports_wechat_down() {
    // Credentials set, WeChat unreachable (nothing listens on port 9).
    let app =
        spawn(&["--wechat-appid", "wx0123456789abcdef", "--wechat-secret", "not-a-real-secret", "--wechat-api-base", "http://127.0.0.1:9"])
            .await;
    for path in ["/_wechat/phone", "/_wechat/sim/counters"] {
        let res = reqwest::get(format!("{}{path}", app.base)).await.unwrap();
        assert_eq!(res.status(), 404, "{path} must not exist with real credentials");
    }
    let res = phone().post(format!("{}/_wechat/sim/wx-login", app.base)).json(&json!({ "user": "x" })).send().await.unwrap();
    assert_eq!(res.status(), 404);
    let b = browser();
    let answer = app.post(&b, "/api/login/ticket", json!({})).await;
    assert_error(&answer, 502, "wechat_unavailable");
    assert!(!answer.1.to_string().contains("not-a-real-secret"));
    assert_eq!(app.count("tickets").await, 0);
    // No demo banner outside demo mode.
    let html = b.get(format!("{}/login", app.base)).send().await.unwrap().text().await.unwrap();
    assert!(!html.contains("demo-banner"));
}

#[tokio::test]
async fn a_wechat_answer_slower_than_the_timeout_is_a_clear_error() {
    let app = spawn(&["--wechat-timeout-secs", "1"]).await;
    let b = browser();
    app.new_ticket(&b).await; // token cached
    app.fault("getwxacodeunlimit", json!({ "kind": "delay", "ms": 1600 }), 1).await;
    let started = std::time::Instant::now();
    assert_error(&app.post(&b, "/api/login/ticket", json!({})).await, 502, "wechat_unavailable");
    assert!(started.elapsed() < std::time::Duration::from_millis(1500), "the timeout bounded the wait");
    assert_eq!(app.count("tickets").await, 1);
}

#[tokio::test]
async fn demo_mode_stays_on_loopback_unless_told() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/l.db", dir.path().display());
    let wide = LeptosOptions::builder().output_name("scanlogin").site_addr(std::net::SocketAddr::from(([0, 0, 0, 0], 0))).build();
    let args = ["scanlogin", "--database-url", db.as_str()];
    let config = <scanlogin::server::config::Config as clap::Parser>::try_parse_from(args).unwrap();
    let app = Application::build(&config, wide).await.unwrap();
    assert!(app.local_addr().ip().is_loopback(), "{}", app.local_addr());
}

/// A burst of browsers arriving at once must not overflow the listen queue (tokio's
/// default of 1024 did: the kernel dropped handshakes and each browser waited a second to
/// retry). `ss` reads the queue's length as an operator would: Send-Q of the listening socket.
#[tokio::test]
async fn the_listen_queue_holds_a_burst() {
    let app = spawn(&[]).await;
    let port = app.local.rsplit(':').next().unwrap();
    let out = Command::new("ss").args(["-ltnH", &format!("sport = :{port}")]).output().expect("ss (iproute2) is installed");
    let line = String::from_utf8_lossy(&out.stdout).to_string();
    let backlog: u32 = line.split_whitespace().nth(2).and_then(|q| q.parse().ok()).unwrap_or_else(|| panic!("ss said {line:?}"));
    let somaxconn: u32 = std::fs::read_to_string("/proc/sys/net/core/somaxconn").unwrap().trim().parse().unwrap();
    assert_eq!(backlog, scanlogin::server::startup::LISTEN_BACKLOG.min(somaxconn), "{line}");
    assert!(backlog > 1024 || somaxconn <= 1024, "{line}");
}

#[tokio::test]
async fn the_purge_task_removes_finished_tickets() {
    let app = spawn(&["--ticket-ttl-secs", "1", "--purge-grace-secs", "0", "--purge-interval-secs", "1"]).await;
    let b = browser();
    let t = app.new_ticket(&b).await;
    assert_eq!(app.count("tickets").await, 1);
    let mut gone = false;
    for _ in 0..40 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        if app.count("tickets").await == 0 {
            gone = true;
            break;
        }
    }
    assert!(gone, "expired ticket purged");
    assert_error(&app.status(&b, &t, 0).await, 404, "ticket_not_found");
}

fn run_binary(args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_scanlogin"));
    for (k, _) in std::env::vars() {
        if k.starts_with("WECHAT_") || k == "DATABASE_URL" || k == "LISTEN" {
            cmd.env_remove(k);
        }
    }
    cmd.args(args).output().unwrap()
}

#[test]
fn invalid_configuration_exits_2_with_a_clear_message() {
    for args in [
        &["--longpoll-secs", "0"][..],
        &["--wechat-env-version", "beta"],
        &["--wechat-check-path", "maybe"],
        &["--wechat-appid", "wx1"],
        &["--wechat-mp-page", "/pages/login/index"],
        &["--public-url", "ftp://example.com"],
        // Durations that overflow stop the server; they never wrap into "purge everything".
        &["--session-idle-secs", "18446744073709551615"],
        &["--session-absolute-secs", "18446744073709551615"],
        &["--purge-grace-secs", "18446744073709551615"],
        // The appsecret never travels over plain http beyond this machine.
        &["--wechat-appid", "wx1", "--wechat-secret", "s", "--wechat-api-base", "http://api.weixin.qq.com"],
    ] {
        let out = run_binary(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(!out.stderr.is_empty());
    }
    let help = run_binary(&["--help"]);
    assert_eq!(help.status.code(), Some(0));
    let text = String::from_utf8_lossy(&help.stdout);
    for var in [
        "WECHAT_APPID",
        "WECHAT_SECRET_FILE",
        "WECHAT_API_BASE",
        "WECHAT_MP_PAGE",
        "WECHAT_ENV_VERSION",
        "WECHAT_CHECK_PATH",
        "WECHAT_QR_API",
        "PUBLIC_URL",
        "DATABASE_URL",
    ] {
        assert!(text.contains(var), "--help documents {var}");
    }
}

/// Secrets never reach a log, even at `trace`: the real binary, in real-credential mode
/// with a known appsecret, talks to a demo server's simulator (which refuses that secret),
/// serves a login attempt, and everything it printed is searched.
#[tokio::test]
async fn secrets_never_reach_the_log() {
    use std::io::{BufRead as _, Read as _};
    let wechat = spawn(&[]).await; // plays WeChat
    let dir = tempfile::tempdir().unwrap();
    let secret = "TOPSECRET-appsecret-4f1c9e";
    let mut child = Command::new(env!("CARGO_BIN_EXE_scanlogin"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("LISTEN", "127.0.0.1:0")
        .env("DATABASE_URL", format!("sqlite://{}/s.db", dir.path().display()))
        .env("WECHAT_APPID", "wxdemo0000000000")
        .env("WECHAT_SECRET", secret)
        .env("WECHAT_API_BASE", format!("{}/_wechat", wechat.base))
        .env("RUST_LOG", "trace")
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Read stdout on a thread; hand over lines until the address shows up.
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line.clone());
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let base = loop {
        let line = rx.recv_timeout(std::time::Duration::from_secs(20)).expect("the server starts");
        if let Some(rest) = line.split("listening on http://").nth(1) {
            break format!("http://{}", rest.split_whitespace().next().unwrap());
        }
    };
    let res = browser().post(format!("{base}/api/login/ticket")).json(&json!({})).send().await.unwrap();
    assert_eq!(res.status(), 502, "the simulator refuses the secret");
    let body = res.text().await.unwrap();
    // A waiting ticket, planted in its database, makes the scan call code2Session, whose
    // URL carries the appsecret in its query string.
    sqlx::any::install_default_drivers();
    let db = sqlx::AnyPool::connect(&format!("sqlite://{}/s.db", dir.path().display())).await.unwrap();
    sqlx::query(
        "INSERT INTO tickets (id, status, version, browser_key, next, created_at, expires_at, origin_ip, origin_ua, updated_at) \
         VALUES ('AAAAAAAAAAAAAAAAAAAAAA', 'waiting', 1, 'k', '/account', 0, 9999999999999, '127.0.0.1', 'ua', 0)",
    )
    .execute(&db)
    .await
    .unwrap();
    let res =
        phone().post(format!("{base}/api/mp/scan")).json(&json!({ "ticket": "AAAAAAAAAAAAAAAAAAAAAA", "code": "x" })).send().await.unwrap();
    assert_eq!(res.status(), 502, "code2Session refused the secret");
    assert!(wechat.counters().await["jscode2session"].as_u64() >= Some(1), "code2Session was really called");
    child.kill().unwrap();
    let _ = child.wait();
    let mut log = reader.join().unwrap();
    child.stderr.take().unwrap().read_to_string(&mut log).unwrap();
    assert!(log.contains("40125"), "the WeChat failure itself is logged:\n{log}");
    assert!(!log.contains(secret), "the appsecret leaked into the log");
    assert!(!body.contains(secret));
}

/// SIGTERM (systemd, Docker, Kubernetes): a browser mid-login gets its long-poll answered
/// at once with the ticket's state, requests in flight finish, and the process exits 0.
#[tokio::test]
async fn sigterm_answers_open_long_polls_and_exits_cleanly() {
    use std::io::BufRead as _;
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_scanlogin"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("LISTEN", "127.0.0.1:0")
        .env("DATABASE_URL", format!("sqlite://{}/s.db", dir.path().display()))
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let base = loop {
        let line = rx.recv_timeout(std::time::Duration::from_secs(20)).expect("the server starts");
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    assert_eq!(reqwest::get(format!("{base}/healthz")).await.unwrap().status(), 200);
    assert_eq!(reqwest::get(format!("{base}/readyz")).await.unwrap().text().await.unwrap(), "ready");

    // A browser mid-login, waiting on its long-poll.
    let b = browser();
    let res = b.post(format!("{base}/api/login/ticket")).json(&json!({})).send().await.unwrap();
    let ticket = res.json::<serde_json::Value>().await.unwrap()["ticket"].as_str().unwrap().to_string();
    let poll = {
        let (b, url) = (b.clone(), format!("{base}/api/login/status"));
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let res = b.post(url).json(&json!({ "ticket": ticket, "seen": 1 })).send().await.unwrap();
            (res.status().as_u16(), res.json::<serde_json::Value>().await.unwrap(), started.elapsed())
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let sent = std::time::Instant::now();
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let (status, body, waited) = poll.await.unwrap();
    assert_eq!((status, &body["status"]), (200, &json!("waiting")), "{body}");
    assert!(waited < std::time::Duration::from_secs(5), "answered at once, not at the 25 s deadline: {waited:?}");
    let code = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s.code();
        }
        assert!(sent.elapsed() < std::time::Duration::from_secs(15), "exits within the drain limit");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(code, Some(0));
}

/// `LOG_FORMAT=json`: every line the real binary prints is one JSON object, and the lines
/// a request causes carry its request id (the proxy's, when it is a plain token; ours
/// otherwise), which the answer names in `X-Request-Id`.
#[tokio::test]
async fn json_logs_carry_the_request_id_on_every_line_of_a_request() {
    use std::io::BufRead as _;
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_scanlogin"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("LISTEN", "127.0.0.1:0")
        .env("DATABASE_URL", format!("sqlite://{}/s.db", dir.path().display()))
        .env("QR_POOL_SIZE", "0")
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut lines: Vec<serde_json::Value> = Vec::new();
    let next_line = |lines: &mut Vec<serde_json::Value>| {
        let line = rx.recv_timeout(std::time::Duration::from_secs(20)).expect("a log line");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        lines.push(v.clone());
        v
    };
    let base = loop {
        let v = next_line(&mut lines);
        if let Some(rest) = v["message"].as_str().and_then(|m| m.split("listening on ").nth(1)) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    let b = browser();
    let res = b.post(format!("{base}/api/login/ticket")).json(&json!({})).send().await.unwrap();
    let ticket = res.json::<serde_json::Value>().await.unwrap()["ticket"].as_str().unwrap().to_string();
    // A refused wx.login code is logged (a warning) inside the request's span.
    let res = phone()
        .post(format!("{base}/api/mp/scan"))
        .header("x-request-id", "edge-7f3a_1")
        .json(&json!({ "ticket": ticket, "code": "not-a-real-code" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(res.headers()["x-request-id"], "edge-7f3a_1");
    let warned = loop {
        let v = next_line(&mut lines);
        if v["level"] == "WARN" {
            break v;
        }
    };
    let http = warned["spans"].as_array().and_then(|s| s.iter().find(|s| s["name"] == "http")).unwrap_or_else(|| panic!("{warned}"));
    assert_eq!(http["request_id"], "edge-7f3a_1", "{warned}");
    assert_eq!(http["path"], "/api/mp/scan", "{warned}");
    // An id that is not a plain token is replaced.
    let res = b.get(format!("{base}/healthz")).header("x-request-id", "a b<script>").send().await.unwrap();
    let id = res.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(id.len() == 16 && id.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'), "{id}");
    child.kill().unwrap();
    let _ = child.wait();
    assert!(lines.len() >= 2);
}

/// `scanlogin simulator`: the simulator as a server of its own. An instance in real mode
/// gets its token, codes and code2Session there; the codes link to the simulator's phone
/// page, whose mini-program calls reach the site through the simulator. A whole login.
#[tokio::test]
async fn the_standalone_simulator_serves_an_instance_in_real_mode() {
    let (appid, secret) = ("wxsim00000000001", "sim-secret-7d01c4");
    // The instance must know the simulator's address, and the simulator the instance's.
    let app_port = free_port();
    let app_base = format!("http://127.0.0.1:{app_port}");
    let (_sim, api) = standalone_simulator(appid, secret, &app_base).await;
    let sim_base = api.trim_end_matches("/_wechat").to_string();
    let listen = format!("127.0.0.1:{app_port}");
    let app = spawn(&["--listen", &listen, "--wechat-appid", appid, "--wechat-secret", secret, "--wechat-api-base", &api]).await;
    let b = browser();
    let (s, issued) = app.post(&b, "/api/login/ticket", json!({})).await;
    assert_eq!(s, 200, "{issued}");
    let ticket = issued["ticket"].as_str().unwrap().to_string();
    let link = qr_link(issued["qr"].as_str().unwrap());
    assert_eq!(link.as_str(), format!("{sim_base}/_wechat/phone?scene={ticket}"), "the code opens the simulator's phone");
    assert_eq!(reqwest::get(link.as_str()).await.unwrap().status(), 200);

    let phone = phone();
    let code = phone.post(format!("{sim_base}/_wechat/sim/wx-login")).json(&json!({ "user": "lisi" })).send().await.unwrap();
    let code = code.json::<serde_json::Value>().await.unwrap()["code"].as_str().unwrap().to_string();
    let scan = phone.post(format!("{sim_base}/api/mp/scan")).json(&json!({ "ticket": ticket, "code": code })).send().await.unwrap();
    assert_eq!(scan.status(), 200);
    let token = scan.json::<serde_json::Value>().await.unwrap()["confirm_token"].as_str().unwrap().to_string();
    let confirm =
        phone.post(format!("{sim_base}/api/mp/confirm")).json(&json!({ "ticket": ticket, "confirm_token": token })).send().await.unwrap();
    assert_eq!(confirm.status(), 200);
    let (s, v) = app.finalize(&b, &ticket).await;
    assert_eq!(s, 200, "{v}");
    // The finished ticket refuses another scan, through the simulator too.
    let replay = phone.post(format!("{sim_base}/api/mp/scan")).json(&json!({ "ticket": ticket, "code": code })).send().await.unwrap();
    assert_eq!(replay.status(), 409, "{:?}", replay.text().await);
    assert_eq!(reqwest::get(format!("{}/_wechat/sim/counters", app.base)).await.unwrap().status(), 404, "no simulator inside");
}

/// Plain-text HTTP/2 (prior knowledge, what Caddy's `versions h2c` speaks upstream) is
/// served beside HTTP/1.1: a proxy can carry many waiting browsers on a few connections.
#[tokio::test]
async fn a_proxy_may_speak_http2_without_tls() {
    let app = spawn(&[]).await;
    let h2 = reqwest::Client::builder().http2_prior_knowledge().build().unwrap();
    let res = h2.get(format!("{}/healthz", app.base)).send().await.unwrap();
    assert_eq!((res.status().as_u16(), res.version()), (200, reqwest::Version::HTTP_2));
    // The API behaves the same over it: a ticket, bound to the cookie it sets.
    let res = h2.post(format!("{}/api/login/ticket", app.base)).json(&serde_json::json!({})).send().await.unwrap();
    assert_eq!((res.status().as_u16(), res.version()), (200, reqwest::Version::HTTP_2));
    assert!(res.headers()["set-cookie"].to_str().unwrap().starts_with("scanlogin_session="));
    let plain = reqwest::get(format!("{}/healthz", app.base)).await.unwrap();
    assert_eq!(plain.version(), reqwest::Version::HTTP_11);
}
