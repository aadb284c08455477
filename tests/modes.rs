//! Start-up modes and operations: real-credential mode, configuration errors, demo
//! loopback, WeChat timeouts, the purge task.

mod common;

use common::*;
use leptos::config::LeptosOptions;
use scanlogin::server::startup::Application;
use serde_json::json;
use std::process::Command;

#[tokio::test]
async fn real_mode_has_no_simulator_and_reports_wechat_down() {
    // Credentials set, WeChat unreachable (nothing listens on port 9).
    let app = spawn(&["--wechat-appid", "wx0123456789abcdef", "--wechat-secret", "not-a-real-secret", "--wechat-api-base", "http://127.0.0.1:9"]).await;
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
    ] {
        let out = run_binary(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(!out.stderr.is_empty());
    }
    let help = run_binary(&["--help"]);
    assert_eq!(help.status.code(), Some(0));
    let text = String::from_utf8_lossy(&help.stdout);
    for var in ["WECHAT_APPID", "WECHAT_SECRET_FILE", "WECHAT_API_BASE", "WECHAT_MP_PAGE", "WECHAT_ENV_VERSION", "WECHAT_CHECK_PATH", "WECHAT_QR_API", "PUBLIC_URL", "DATABASE_URL"] {
        assert!(text.contains(var), "--help documents {var}");
    }
}
