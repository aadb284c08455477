//! A fleet: three scanlogin processes in real mode on one fresh PostgreSQL database, one
//! standalone simulated WeChat (`scanlogin simulator`), and Debian's nginx in front,
//! round robin without stickiness. Every request lands wherever nginx sends it; the
//! login, the refusals, the shared rate limit and the shared token hold, a confirm on one
//! instance wakes a long-poll held by another, and a login survives an instance killed
//! (SIGKILL) in the middle of it.

use crate::common::*;
use serde_json::{Value, json};
use std::io::BufRead as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const APPID: &str = "wxfleet000000002";
const SECRET: &str = "fleet-secret-91b0";

/// One instance; its direct address.
fn instance(db: &str, api: &str, public: &str) -> (Proc, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_scanlogin"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("LISTEN", "127.0.0.1:0")
        .env("PUBLIC_URL", public)
        .env("TRUSTED_PROXIES", "127.0.0.1")
        .env("DATABASE_URL", db)
        .env("WECHAT_APPID", APPID)
        .env("WECHAT_SECRET", SECRET)
        .env("WECHAT_API_BASE", api)
        .env("QR_POOL_SIZE", "0")
        .env("RATE_TICKETS_PER_IP", "5")
        .env("RUST_LOG", "warn,scanlogin=info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let addr = loop {
        let line = rx.recv_timeout(Duration::from_secs(30)).expect("the instance starts");
        if let Some(rest) = line.split("listening on http://").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    (Proc(child), addr)
}

fn nginx(port: u16, upstreams: &[String], dir: &std::path::Path) -> Proc {
    let d = dir.display();
    let servers: String = upstreams.iter().map(|u| format!("server {u} max_fails=0;\n")).collect();
    let conf = format!(
        r#"
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
  upstream scanlogin {{ {servers} }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://scanlogin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_read_timeout 60s;
    }}
  }}
}}
"#
    );
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    let child = Command::new("/usr/sbin/nginx")
        .args(["-p", &d.to_string(), "-c", &format!("{d}/nginx.conf"), "-g", "daemon off;"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nginx installed by scripts/setup --test (nginx-light)");
    Proc(child)
}

/// A browser behind an address of its own (nginx appends to the X-Forwarded-For it
/// sends; the instances trust nginx).
fn browser_at(ip: &str) -> reqwest::Client {
    let mut h = reqwest::header::HeaderMap::new();
    h.insert("x-forwarded-for", ip.parse().unwrap());
    reqwest::Client::builder().cookie_store(true).user_agent(CHROME_UA).default_headers(h).build().unwrap()
}

async fn post(client: &reqwest::Client, url: String, body: Value) -> (reqwest::StatusCode, Value) {
    let res = client.post(url).header("accept", "application/json").json(&body).send().await.unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_behind_nginx_act_as_one() {
    let Some((db, name)) = crate::postgres::fresh_database().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let front_port = free_port();
    let front = format!("http://127.0.0.1:{front_port}");
    let (_sim, api) = standalone_simulator(APPID, SECRET, &front).await;
    let mut instances: Vec<(Proc, String)> = (0..3).map(|_| instance(&db, &api, &front)).collect();
    let addrs: Vec<String> = instances.iter().map(|(_, a)| a.clone()).collect();
    let _nginx = nginx(front_port, &addrs, dir.path());
    wait_for_port(front_port).await;
    let counters = || async { reqwest::get(format!("{api}/sim/counters")).await.unwrap().json::<Value>().await.unwrap() };

    // A cold fleet: 100 browsers (100 addresses) ask for a code at once; one token fetch.
    let calls: Vec<_> = (0..100)
        .map(|i| {
            let url = format!("{front}/api/login/ticket");
            tokio::spawn(async move { post(&browser_at(&format!("10.1.{}.{}", i / 250, i % 250 + 1)), url, json!({})).await.0 })
        })
        .collect();
    for c in calls {
        assert_eq!(c.await.unwrap(), 200);
    }
    assert_eq!(counters().await["stable_token"], 1, "one token fetch for the fleet: {}", counters().await);

    // The per-IP ticket limit (5 a minute) holds for the fleet: 5, not 15.
    let mut allowed = 0;
    for _ in 0..8 {
        if post(&browser_at("10.9.9.9"), format!("{front}/api/login/ticket"), json!({})).await.0 == 200 {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 5, "the limit counts across the three instances");

    // The whole login through nginx, with refusals along the way.
    let b = browser_at("10.2.0.1");
    let (s, issued) = post(&b, format!("{front}/api/login/ticket"), json!({})).await;
    assert_eq!(s, 200, "{issued}");
    let ticket = issued["ticket"].as_str().unwrap().to_string();
    let key = issued["finalize_key"].as_str().unwrap().to_string();
    let link = qr_link(issued["qr"].as_str().unwrap());
    assert!(link.as_str().starts_with(&format!("{api}/phone?scene=")));
    let wx_code = |user: &'static str| {
        let api = api.clone();
        async move {
            let v = post(&phone(), format!("{api}/sim/wx-login"), json!({ "user": user })).await.1;
            v["code"].as_str().unwrap().to_string()
        }
    };
    let (s, scanned) = post(&phone(), format!("{front}/api/mp/scan"), json!({ "ticket": ticket, "code": wx_code("lisi").await })).await;
    assert_eq!(s, 200, "{scanned}");
    let token = scanned["confirm_token"].as_str().unwrap().to_string();
    let second = post(&phone(), format!("{front}/api/mp/scan"), json!({ "ticket": ticket, "code": wx_code("wangwu").await })).await;
    assert_error(&second, 409, "already_scanned");
    let other = browser_at("10.2.0.2");
    assert_error(&post(&other, format!("{front}/api/login/status"), json!({ "ticket": ticket, "seen": 0 })).await, 404, "ticket_not_found");
    let bad = reqwest::Client::new()
        .post(format!("{front}/api/mp/confirm"))
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);

    // The browser's long-poll held by instance 0, the confirm sent to instance 1: the
    // NOTIFY between them wakes it.
    let poll = {
        let (b, url, ticket) = (b.clone(), format!("http://{}/api/login/status", addrs[0]), ticket.clone());
        tokio::spawn(async move {
            let v = post(&b, url, json!({ "ticket": ticket, "seen": 2 })).await.1;
            (v, Instant::now())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = Instant::now();
    let (s, v) = post(&phone(), format!("http://{}/api/mp/confirm", addrs[1]), json!({ "ticket": ticket, "confirm_token": token })).await;
    assert_eq!(s, 200, "{v}");
    let (answer, at) = poll.await.unwrap();
    assert_eq!(answer["status"], "confirmed", "{answer}");
    let woke = at.duration_since(sent);
    eprintln!("confirm on instance 1 → long-poll on instance 0 answered after {woke:?}");
    assert!(woke < Duration::from_secs(3), "woken by the NOTIFY, not the 25 s deadline: {woke:?}");
    let (s, fin) = post(&b, format!("{front}/api/login/finalize"), json!({ "ticket": ticket, "finalize_key": key })).await;
    assert_eq!(s, 200, "{fin}");
    for _ in 0..3 {
        assert_eq!(post(&b, format!("{front}/api/me"), json!({})).await.0, 200, "signed in on every instance");
    }

    // An instance killed in the middle of a login: the others finish it.
    let c = browser_at("10.3.0.1");
    let (_, issued) = post(&c, format!("{front}/api/login/ticket"), json!({})).await;
    let ticket = issued["ticket"].as_str().unwrap().to_string();
    let key = issued["finalize_key"].as_str().unwrap().to_string();
    let (s, scanned) = post(&phone(), format!("{front}/api/mp/scan"), json!({ "ticket": ticket, "code": wx_code("zhangsan").await })).await;
    assert_eq!(s, 200, "{scanned}");
    let (mut killed, _) = instances.remove(2);
    killed.0.kill().unwrap(); // SIGKILL
    let _ = killed.0.wait();
    let token = scanned["confirm_token"].as_str().unwrap().to_string();
    for (path, body) in [
        ("/api/mp/confirm", json!({ "ticket": ticket, "confirm_token": token })),
        ("/api/login/finalize", json!({ "ticket": ticket, "finalize_key": key })),
        ("/api/me", json!({})),
    ] {
        let client = if path.starts_with("/api/mp") { phone() } else { c.clone() };
        let (s, v) = post(&client, format!("{front}{path}"), body).await;
        assert_eq!(s, 200, "{path} with one instance gone: {v}");
    }
    drop(instances);
    drop_database(&name).await;
}

async fn drop_database(name: &str) {
    crate::postgres::drop_database(name).await;
}
