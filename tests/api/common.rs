//! Test harness: the real application on port 0, demo mode, a temp SQLite database.
#![allow(dead_code)]

use leptos::config::LeptosOptions;
use reqwest::StatusCode;
use scanlogin::server::config::Config;
use scanlogin::server::db::Db;
use scanlogin::server::startup::Application;
use serde_json::{Value, json};

pub struct TestApp {
    /// The public URL (also where the app listens, unless `--public-url` says otherwise).
    pub base: String,
    /// Where the app listens.
    pub local: String,
    /// The finalize key of every ticket made through [`TestApp::new_ticket`].
    pub keys: std::sync::Mutex<std::collections::HashMap<String, String>>,
    pub pool: Db,
    pub db_url: String,
    pub dir: tempfile::TempDir,
    pub server: tokio::task::JoinHandle<std::io::Result<()>>,
    /// The running app's state, to look inside (entry counts, the session store).
    pub state: scanlogin::server::state::AppState,
}

pub fn leptos_options() -> LeptosOptions {
    LeptosOptions::builder().output_name("scanlogin").site_root("target/site").build()
}

pub fn config(db_url: &str, extra: &[&str]) -> Config {
    let mut args = vec!["scanlogin", "--database-url", db_url];
    if !extra.contains(&"--listen") {
        args.extend_from_slice(&["--listen", "127.0.0.1:0"]);
    }
    if !extra.contains(&"--purge-interval-secs") {
        args.extend_from_slice(&["--purge-interval-secs", "3600"]);
    }
    // Codes made on demand, so that the simulator's counters and faults belong to the
    // test's own calls (tests/api/pool.rs tests the pool).
    if !extra.contains(&"--qr-pool-size") {
        args.extend_from_slice(&["--qr-pool-size", "0"]);
    }
    args.extend_from_slice(extra);
    <Config as clap::Parser>::try_parse_from(args).expect("test config parses")
}

/// Starts the app; `extra` are command-line flags.
pub async fn spawn(extra: &[&str]) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite://{}/scanlogin.db", dir.path().display());
    spawn_on(dir, db_url, extra).await
}

/// Starts the app on an existing database (a restart).
pub async fn spawn_on(dir: tempfile::TempDir, db_url: String, extra: &[&str]) -> TestApp {
    trace_to_file();
    let app = Application::build(&config(&db_url, extra), leptos_options()).await.expect("app builds");
    let base = app.public_url().to_string();
    let local = format!("http://{}", app.local_addr());
    let pool = app.state().db.clone();
    let state = app.state().clone();
    let server = tokio::spawn(app.run_until(std::future::pending()));
    TestApp { base, local, keys: Default::default(), pool, db_url, dir, server, state }
}

/// With `SCANLOGIN_TEST_TRACE=<file>`, every app's log lines (filtered by `RUST_LOG`) go
/// to that file, each named by its thread: a `#[tokio::test]`'s app runs on the test's
/// own thread, which is named after the test. For finding what a stuck test waits on.
fn trace_to_file() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    let Some(path) = std::env::var_os("SCANLOGIN_TEST_TRACE") else { return };
    ONCE.call_once(|| {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path).expect("the trace file opens");
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_thread_names(true)
            .with_ansi(false)
            .with_writer(std::sync::Mutex::new(file))
            .init();
    });
}

/// Waits until `holds` (checked every 10 ms), for what the app does a moment after it
/// answered (another instance hearing a change, rules re-read); fails with `what` if it
/// still does not hold after 5 s.
pub async fn eventually(what: impl std::fmt::Display, mut holds: impl AsyncFnMut() -> bool) {
    let started = std::time::Instant::now();
    while !holds().await {
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "{what}");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// How long the test clients wait for a whole answer (the longest long-poll is 120 s,
/// the tests' at most 25): an answer that never comes fails its test, naming the
/// request, instead of holding the run until CI's limit.
pub const REQUEST_LIMIT: std::time::Duration = std::time::Duration::from_secs(150);

/// A browser: its own cookie jar, JSON accept.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder().cookie_store(true).user_agent(CHROME_UA).timeout(REQUEST_LIMIT).build().unwrap()
}

/// A browser whose cookie jar the test can read: the client and its jar.
pub fn browser_with_jar() -> (reqwest::Client, std::sync::Arc<reqwest::cookie::Jar>) {
    let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    (reqwest::Client::builder().cookie_provider(jar.clone()).user_agent(CHROME_UA).timeout(REQUEST_LIMIT).build().unwrap(), jar)
}

/// The session id the jar holds for `base` (the cookie's value; the table stores only its
/// digest, `stored_key`).
pub fn session_cookie(jar: &reqwest::cookie::Jar, base: &str) -> Option<String> {
    use reqwest::cookie::CookieStore as _;
    let cookies = jar.cookies(&base.parse().unwrap())?;
    cookies.to_str().unwrap().split("; ").find_map(|c| c.strip_prefix("scanlogin_session=")).map(str::to_string)
}

/// What the `sessions` table stores the session `id` under.
pub fn stored_key(id: &str) -> String {
    scanlogin::server::tokens::TokenHash::of(id).as_str().to_string()
}

/// The phone: no cookies.
pub fn phone() -> reqwest::Client {
    reqwest::Client::builder().user_agent("Mozilla/5.0 MicroMessenger/8.0.50 miniProgram").timeout(REQUEST_LIMIT).build().unwrap()
}

pub const CHROME_UA: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

impl TestApp {
    pub async fn post(&self, client: &reqwest::Client, path: &str, body: Value) -> (StatusCode, Value) {
        let res = client.post(format!("{}{path}", self.base)).header("accept", "application/json").json(&body).send().await.unwrap();
        let status = res.status();
        let text = res.text().await.unwrap();
        let v: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{path}: not JSON: {text:?}"));
        if let (Some(t), Some(k)) = (v["ticket"].as_str(), v["finalize_key"].as_str()) {
            self.keys.lock().unwrap().insert(t.to_string(), k.to_string());
        }
        (status, v)
    }

    pub async fn post_raw(&self, path: &str, content_type: &str, body: Vec<u8>) -> (StatusCode, Value) {
        let res = reqwest::Client::new()
            .post(format!("{}{path}", self.base))
            .header("accept", "application/json")
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = res.status();
        let text = res.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or_else(|_| panic!("{path}: not JSON: {text:?}")))
    }

    /// `wx.login()` for `user` (via the simulator).
    pub async fn wx_code(&self, user: &str) -> String {
        let (s, v) = self.post(&phone(), "/_wechat/sim/wx-login", json!({ "user": user })).await;
        assert_eq!(s, 200, "{v}");
        v["code"].as_str().unwrap().to_string()
    }

    pub async fn new_ticket(&self, browser: &reqwest::Client) -> String {
        let (s, v) = self.post(browser, "/api/login/ticket", json!({})).await;
        assert_eq!(s, 200, "{v}");
        v["ticket"].as_str().unwrap().to_string()
    }

    /// The finalize key that came with `ticket`.
    pub fn key(&self, ticket: &str) -> String {
        self.keys.lock().unwrap().get(ticket).cloned().unwrap_or_default()
    }

    /// Finalizes `ticket` as `browser`, with the ticket's finalize key.
    pub async fn finalize(&self, browser: &reqwest::Client, ticket: &str) -> (StatusCode, Value) {
        self.post(browser, "/api/login/finalize", json!({ "ticket": ticket, "finalize_key": self.key(ticket) })).await
    }

    /// Scans as `user`; returns the confirm token.
    pub async fn scan(&self, ticket: &str, user: &str) -> String {
        let code = self.wx_code(user).await;
        let (s, v) = self.post(&phone(), "/api/mp/scan", json!({ "ticket": ticket, "code": code })).await;
        assert_eq!(s, 200, "{v}");
        v["confirm_token"].as_str().unwrap().to_string()
    }

    pub async fn confirm(&self, ticket: &str, token: &str) {
        let (s, v) = self.post(&phone(), "/api/mp/confirm", json!({ "ticket": ticket, "confirm_token": token })).await;
        assert_eq!((s, &v["status"]), (StatusCode::OK, &json!("confirmed")), "{v}");
    }

    /// The whole scan login of `browser` as WeChat user `user`.
    pub async fn sign_in(&self, browser: &reqwest::Client, user: &str) {
        let t = self.new_ticket(browser).await;
        let token = self.scan(&t, user).await;
        self.confirm(&t, &token).await;
        let (s, v) = self.finalize(browser, &t).await;
        assert_eq!(s, 200, "{v}");
    }

    /// What forward-auth answers for `browser`.
    pub async fn verify(&self, browser: &reqwest::Client) -> StatusCode {
        browser.get(format!("{}/auth/verify", self.base)).send().await.unwrap().status()
    }

    pub async fn status(&self, browser: &reqwest::Client, ticket: &str, seen: u64) -> (StatusCode, Value) {
        self.post(browser, "/api/login/status", json!({ "ticket": ticket, "seen": seen })).await
    }

    pub async fn fault(&self, endpoint: &str, fault: Value, count: u32) {
        let mut body = fault;
        body["endpoint"] = json!(endpoint);
        body["count"] = json!(count);
        let (s, v) = self.post(&phone(), "/_wechat/sim/faults", body).await;
        assert_eq!(s, 200, "{v}");
    }

    pub async fn counters(&self) -> Value {
        reqwest::get(format!("{}/_wechat/sim/counters", self.base)).await.unwrap().json().await.unwrap()
    }

    /// Everything a refusal must leave alone: tickets, sessions, users (with what they may
    /// do), logins and the
    /// simulator's call counters.
    pub async fn snapshot(&self) -> String {
        type TicketRow = (String, String, i64, Option<i64>, Option<String>, i64, i64);
        let tickets: Vec<TicketRow> =
            sqlx::query_as("SELECT id, status, version, scanner_id, confirm_hash, expires_at, updated_at FROM tickets ORDER BY id")
                .fetch_all(&self.pool)
                .await
                .unwrap();
        let sessions: Vec<(String, String, i64, Option<i64>)> =
            sqlx::query_as("SELECT id, data, expires_at, user_id FROM sessions ORDER BY id").fetch_all(&self.pool).await.unwrap();
        type UserRow = (i64, String, Option<String>, String, i64, String);
        let users: Vec<UserRow> = sqlx::query_as("SELECT id, openid, unionid, status, admin, group_names FROM users ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .unwrap();
        let logins: Vec<(i64, String)> =
            sqlx::query_as("SELECT user_id, ticket_id FROM logins ORDER BY id").fetch_all(&self.pool).await.unwrap();
        format!("{tickets:?}\n{sessions:?}\n{users:?}\n{logins:?}\n{}", self.counters().await)
    }

    pub async fn count(&self, table: &str) -> i64 {
        let (n,): (i64,) = sqlx::query_as(&format!("SELECT COUNT(*) FROM {table}")).fetch_one(&self.pool).await.unwrap();
        n
    }
}

/// Asserts the answer's status and code.
#[track_caller]
pub fn assert_error(answer: &(StatusCode, Value), status: u16, code: &str) {
    assert_eq!(answer.0.as_u16(), status, "{}", answer.1);
    assert_eq!(answer.1["code"], code, "{}", answer.1);
    assert!(answer.1["message"].as_str().is_some_and(|m| !m.is_empty()), "{}", answer.1);
}

/// Decodes a `data:image/jpeg;base64,…` QR (a real JPEG, one code) to the URL it holds.
pub fn qr_link(data_url: &str) -> url::Url {
    use base64::Engine as _;
    let b64 = data_url.strip_prefix("data:image/jpeg;base64,").expect("JPEG data URL");
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64).unwrap();
    assert_eq!(&bytes[..3], &[0xFF, 0xD8, 0xFF]);
    let img = image::load_from_memory(&bytes).unwrap().to_luma8();
    let mut prepared = rqrr::PreparedImage::prepare(img);
    let grids = prepared.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code in the image");
    let (_, content) = grids[0].decode().expect("QR decodes");
    url::Url::parse(&content).expect("the QR holds a URL")
}

/// A free loopback port (for servers that must know their address before they start).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Waits until something listens on `port`.
pub async fn wait_for_port(port: u16) {
    for _ in 0..400 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("nothing listens on {port}");
}

/// A child process, killed on drop.
pub struct Proc(pub std::process::Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `scanlogin simulator` for the mini program `appid` with `secret`, its phone calls
/// passed on to `site`; and its WeChat API base (`…/_wechat`).
pub async fn standalone_simulator(appid: &str, secret: &str, site: &str) -> (Proc, String) {
    let port = free_port();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_scanlogin"))
        .args(["simulator", "--listen", &format!("127.0.0.1:{port}"), "--appid", appid, "--site", site])
        .env_clear()
        .env("WECHAT_SECRET", secret)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let proc = Proc(child);
    wait_for_port(port).await;
    (proc, format!("http://127.0.0.1:{port}/_wechat"))
}

/// The account page's lists (`/api/me`, read in one statement): a person signed in on
/// twelve browsers sees their ten latest logins, their events newest first and all twelve
/// browsers, the asking one marked; after 退出其他设备 that event comes first and one
/// browser is left.
pub async fn check_account_overview(app: &TestApp) {
    let browsers: Vec<reqwest::Client> = (0..12).map(|_| browser()).collect();
    for b in &browsers {
        app.sign_in(b, "zhangsan").await;
    }
    let last = browsers.last().unwrap();
    let (s, me) = app.post(last, "/api/me", json!({})).await;
    assert_eq!(s, 200, "{me}");
    let logins = me["recent_logins"].as_array().unwrap();
    assert_eq!(logins.len(), 10, "the ten latest logins: {me}");
    let at = |v: &Value| v["at"].as_str().unwrap().to_string();
    assert!(logins.windows(2).all(|w| at(&w[0]) >= at(&w[1])), "newest first: {me}");
    let events = me["events"].as_array().unwrap();
    assert_eq!(events.len(), 12, "{me}");
    assert!(events.iter().all(|e| e["kind"] == "sign_in"), "{me}");
    let sessions = me["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 12, "{me}");
    assert_eq!(sessions.iter().filter(|s| s["current"] == true).count(), 1, "{me}");

    let (s, _) = app.post(last, "/api/sessions/revoke-others", json!({})).await;
    assert_eq!(s, 200);
    let (_, me) = app.post(last, "/api/me", json!({})).await;
    let kinds: Vec<&str> = me["events"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.len(), 13, "{me}");
    assert_eq!(&kinds[..2], ["revoke_others", "sign_in"], "newest first: {me}");
    let sessions = me["sessions"].as_array().unwrap();
    assert_eq!((sessions.len(), &sessions[0]["current"]), (1, &json!(true)), "{me}");
}
