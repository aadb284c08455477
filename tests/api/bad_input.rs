//! The bad-input table (SECURITY.md): every row is a request the service must refuse,
//! with its expected status and code, and a check that it changed nothing — tickets,
//! sessions, users, logins, and the calls made to WeChat.

use crate::common::*;
use serde_json::{Value, json};

#[derive(Clone, Copy)]
enum Who {
    /// Browser A, which created the fixture's tickets.
    A,
    /// Browser B, with a session of its own.
    B,
    /// No cookie at all.
    Anon,
    /// A session cookie that was never issued.
    Forged,
    /// The phone (no cookie).
    Phone,
}

struct Row {
    name: &'static str,
    who: Who,
    method: &'static str,
    path: &'static str,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    headers: Vec<(&'static str, &'static str)>,
    status: u16,
    code: &'static str,
    /// The request reaches WeChat (code2Session) before it can be refused.
    asks_wechat: bool,
}

fn row(name: &'static str, who: Who, path: &'static str, body: Value, status: u16, code: &'static str) -> Row {
    Row {
        name,
        who,
        method: "POST",
        path,
        content_type: Some("application/json"),
        body: body.to_string().into_bytes(),
        headers: vec![],
        status,
        code,
        asks_wechat: false,
    }
}

fn raw(name: &'static str, path: &'static str, content_type: Option<&'static str>, body: Vec<u8>, status: u16, code: &'static str) -> Row {
    Row { content_type, body, ..row(name, Who::A, path, Value::Null, status, code) }
}

#[tokio::test]
async fn every_row_of_the_bad_input_table_is_refused_and_changes_nothing() {
    let app = spawn(&[]).await;
    let (a, b) = (browser(), browser());
    // Fixture: tickets of browser A in every state.
    // First a used ticket: signing in rotates A's binding key, so A's other tickets
    // are made after it.
    let tu = app.new_ticket(&a).await;
    let tu_tok = app.scan(&tu, "wangwu").await;
    app.confirm(&tu, &tu_tok).await;
    let (s, _) = app.finalize(&a, &tu).await;
    assert_eq!(s, 200);
    // Used more than the minute ago in which a lost answer may be repeated.
    sqlx::query("UPDATE tickets SET updated_at = updated_at - 120000 WHERE id = $1").bind(&tu).execute(&app.pool).await.unwrap();
    app.state.tickets.forget_kept(); // the server keeps tickets in memory
    let tw = app.new_ticket(&a).await;
    let ts = app.new_ticket(&a).await;
    let ts_tok = app.scan(&ts, "zhangsan").await;
    let tc = app.new_ticket(&a).await;
    let tc_tok = app.scan(&tc, "zhangsan").await;
    app.confirm(&tc, &tc_tok).await;
    let tx = app.new_ticket(&a).await;
    let tx_tok = app.scan(&tx, "lisi").await;
    let (s, _) = app.post(&phone(), "/api/mp/cancel", json!({ "ticket": tx, "confirm_token": tx_tok })).await;
    assert_eq!(s, 200);
    let te = app.new_ticket(&a).await;
    let te_tok = app.scan(&te, "zhangsan").await;
    // Expired: as time would leave it (status and version updated by the expiry).
    sqlx::query("UPDATE tickets SET status = 'expired', version = version + 1, expires_at = 0 WHERE id = $1")
        .bind(&te)
        .execute(&app.pool)
        .await
        .unwrap();
    app.state.tickets.forget_kept(); // the server keeps tickets in memory
    let _ = app.new_ticket(&b).await;
    let used_code = app.wx_code("zhangsan").await;
    let (s, _) = app.post(&phone(), "/api/mp/scan", json!({ "ticket": ts, "code": used_code })).await;
    assert_eq!(s, 200, "rescan by the scanner rotates the token");
    let ts_tok_old = ts_tok;
    let ts_tok = {
        let (_, v) = app.post(&phone(), "/api/mp/scan", json!({ "ticket": ts, "code": app.wx_code("zhangsan").await })).await;
        v["confirm_token"].as_str().unwrap().to_string()
    };
    let unknown = "AAAAAAAAAAAAAAAAAAAAAA";
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    let huge = format!(r#"{{"ticket":"{}","seen":1}}"#, "a".repeat(17 * 1024));

    let k = |t: &str| app.key(t);
    use Who::*;
    let mut rows = vec![
        // The ticket id itself.
        row("status: ticket id with a space", A, "/api/login/status", json!({"ticket": "has space", "seen": 0}), 400, "bad_request"),
        row("status: ticket id with %", A, "/api/login/status", json!({"ticket": "abc%41", "seen": 0}), 400, "bad_request"),
        row("status: ticket id of 33 characters", A, "/api/login/status", json!({"ticket": "a".repeat(33), "seen": 0}), 400, "bad_request"),
        row("status: empty ticket id", A, "/api/login/status", json!({"ticket": "", "seen": 0}), 400, "bad_request"),
        row("status: non-ASCII ticket id", A, "/api/login/status", json!({"ticket": "票据", "seen": 0}), 400, "bad_request"),
        row("status: unknown ticket", A, "/api/login/status", json!({"ticket": unknown, "seen": 0}), 404, "ticket_not_found"),
        row("status: another browser's ticket", B, "/api/login/status", json!({"ticket": tw, "seen": 0}), 404, "ticket_not_found"),
        row("status: no cookie", Anon, "/api/login/status", json!({"ticket": tw, "seen": 0}), 404, "ticket_not_found"),
        row("status: forged session cookie", Forged, "/api/login/status", json!({"ticket": tw, "seen": 0}), 404, "ticket_not_found"),
        row("status: negative seen", A, "/api/login/status", json!({"ticket": tw, "seen": -1}), 400, "bad_request"),
        row("status: seen as a string", A, "/api/login/status", json!({"ticket": tw, "seen": "1"}), 400, "bad_request"),
        row("status: seen missing", A, "/api/login/status", json!({"ticket": tw}), 400, "bad_request"),
        // Finalize.
        row(
            "finalize: unknown ticket",
            A,
            "/api/login/finalize",
            json!({"ticket": unknown, "finalize_key": k(&tc)}),
            404,
            "ticket_not_found",
        ),
        row(
            "finalize: another browser's confirmed ticket",
            B,
            "/api/login/finalize",
            json!({"ticket": tc, "finalize_key": k(&tc)}),
            404,
            "ticket_not_found",
        ),
        row("finalize: no cookie", Anon, "/api/login/finalize", json!({"ticket": tc, "finalize_key": k(&tc)}), 404, "ticket_not_found"),
        row(
            "finalize: forged session cookie",
            Forged,
            "/api/login/finalize",
            json!({"ticket": tc, "finalize_key": k(&tc)}),
            404,
            "ticket_not_found",
        ),
        row("finalize: no finalize key", A, "/api/login/finalize", json!({"ticket": tc}), 404, "ticket_not_found"),
        row(
            "finalize: another ticket's finalize key",
            A,
            "/api/login/finalize",
            json!({"ticket": tc, "finalize_key": k(&tw)}),
            404,
            "ticket_not_found",
        ),
        row(
            "finalize: malformed finalize key",
            A,
            "/api/login/finalize",
            json!({"ticket": tc, "finalize_key": "not a key"}),
            400,
            "bad_request",
        ),
        row(
            "finalize: before anyone scanned",
            A,
            "/api/login/finalize",
            json!({"ticket": tw, "finalize_key": k(&tw)}),
            409,
            "not_confirmed",
        ),
        row(
            "finalize: scanned, not confirmed",
            A,
            "/api/login/finalize",
            json!({"ticket": ts, "finalize_key": k(&ts)}),
            409,
            "not_confirmed",
        ),
        row("finalize: after cancel", A, "/api/login/finalize", json!({"ticket": tx, "finalize_key": k(&tx)}), 409, "ticket_cancelled"),
        row(
            "finalize: a second time, a minute later",
            A,
            "/api/login/finalize",
            json!({"ticket": tu, "finalize_key": k(&tu)}),
            409,
            "ticket_used",
        ),
        row("finalize: expired ticket", A, "/api/login/finalize", json!({"ticket": te, "finalize_key": k(&te)}), 410, "ticket_expired"),
        // Scan.
        row("scan: malformed ticket id", Phone, "/api/mp/scan", json!({"ticket": "a/b", "code": "x"}), 400, "bad_request"),
        row("scan: unknown ticket", Phone, "/api/mp/scan", json!({"ticket": unknown, "code": "x"}), 404, "ticket_not_found"),
        row("scan: empty wx code", Phone, "/api/mp/scan", json!({"ticket": tw, "code": ""}), 400, "bad_request"),
        row("scan: over-long wx code", Phone, "/api/mp/scan", json!({"ticket": tw, "code": "c".repeat(200)}), 400, "bad_request"),
        row("scan: fields of the wrong type", Phone, "/api/mp/scan", json!({"ticket": 1, "code": 2}), 400, "bad_request"),
        Row {
            asks_wechat: true,
            ..row("scan: invalid wx code", Phone, "/api/mp/scan", json!({"ticket": tw, "code": "SIMCODE_forged"}), 400, "invalid_wx_code")
        },
        Row {
            asks_wechat: true,
            ..row("scan: reused wx code", Phone, "/api/mp/scan", json!({"ticket": tw, "code": used_code}), 400, "invalid_wx_code")
        },
        row("scan: cancelled ticket", Phone, "/api/mp/scan", json!({"ticket": tx, "code": "x"}), 409, "ticket_cancelled"),
        row("scan: consumed ticket", Phone, "/api/mp/scan", json!({"ticket": tu, "code": "x"}), 409, "ticket_used"),
        row("scan: expired ticket", Phone, "/api/mp/scan", json!({"ticket": te, "code": "x"}), 410, "ticket_expired"),
        // Confirm and cancel.
        row("confirm: wrong token", Phone, "/api/mp/confirm", json!({"ticket": ts, "confirm_token": "wrong"}), 403, "not_scanner"),
        row(
            "confirm: the scanner's previous token",
            Phone,
            "/api/mp/confirm",
            json!({"ticket": ts, "confirm_token": ts_tok_old}),
            403,
            "not_scanner",
        ),
        row(
            "confirm: another ticket's token",
            Phone,
            "/api/mp/confirm",
            json!({"ticket": ts, "confirm_token": tc_tok}),
            403,
            "not_scanner",
        ),
        row("confirm: nobody scanned yet", Phone, "/api/mp/confirm", json!({"ticket": tw, "confirm_token": ts_tok}), 403, "not_scanner"),
        row("confirm: replayed", Phone, "/api/mp/confirm", json!({"ticket": tc, "confirm_token": tc_tok}), 409, "already_confirmed"),
        row("confirm: after cancel", Phone, "/api/mp/confirm", json!({"ticket": tx, "confirm_token": tx_tok}), 409, "ticket_cancelled"),
        row("confirm: expired ticket", Phone, "/api/mp/confirm", json!({"ticket": te, "confirm_token": te_tok}), 410, "ticket_expired"),
        row("confirm: empty token", Phone, "/api/mp/confirm", json!({"ticket": ts, "confirm_token": ""}), 400, "bad_request"),
        row(
            "confirm: over-long token",
            Phone,
            "/api/mp/confirm",
            json!({"ticket": ts, "confirm_token": "t".repeat(65)}),
            400,
            "bad_request",
        ),
        row("confirm: unknown ticket", Phone, "/api/mp/confirm", json!({"ticket": unknown, "confirm_token": "t"}), 404, "ticket_not_found"),
        row("cancel: after confirm", Phone, "/api/mp/cancel", json!({"ticket": tc, "confirm_token": tc_tok}), 409, "already_confirmed"),
        row("cancel: wrong token", Phone, "/api/mp/cancel", json!({"ticket": ts, "confirm_token": tc_tok}), 403, "not_scanner"),
        row("cancel: a second time", Phone, "/api/mp/cancel", json!({"ticket": tx, "confirm_token": tx_tok}), 409, "ticket_cancelled"),
        // Where to go after login.
        row("ticket: next //evil.example", A, "/api/login/ticket", json!({"next": "//evil.example"}), 400, "bad_request"),
        row("ticket: next https://evil.example", A, "/api/login/ticket", json!({"next": "https://evil.example"}), 400, "bad_request"),
        row("ticket: next /\\evil.example", A, "/api/login/ticket", json!({"next": "/\\evil.example"}), 400, "bad_request"),
        row("ticket: next javascript:", A, "/api/login/ticket", json!({"next": "javascript:alert(1)"}), 400, "bad_request"),
        row("ticket: next with a line break", A, "/api/login/ticket", json!({"next": "/a\r\nSet-Cookie: x=1"}), 400, "bad_request"),
        row("ticket: next not a string", A, "/api/login/ticket", json!({"next": 5}), 400, "bad_request"),
        // The request's shape.
        raw("body: Content-Type text/plain", "/api/login/ticket", Some("text/plain"), b"{}".to_vec(), 415, "unsupported_media_type"),
        raw(
            "body: form-encoded",
            "/api/login/ticket",
            Some("application/x-www-form-urlencoded"),
            b"next=%2F".to_vec(),
            415,
            "unsupported_media_type",
        ),
        raw("body: no Content-Type", "/api/login/ticket", None, b"{}".to_vec(), 415, "unsupported_media_type"),
        raw(
            "body: invalid UTF-8",
            "/api/login/status",
            Some("application/json"),
            b"{\"ticket\":\"\xff\xfe\",\"seen\":0}".to_vec(),
            400,
            "bad_request",
        ),
        raw("body: broken JSON", "/api/login/status", Some("application/json"), b"{not json".to_vec(), 400, "bad_request"),
        raw("body: a JSON array", "/api/login/status", Some("application/json"), b"[]".to_vec(), 400, "bad_request"),
        raw("body: JSON nested 200 deep", "/api/login/status", Some("application/json"), deep.into_bytes(), 400, "bad_request"),
        raw("body: 17 KiB", "/api/login/status", Some("application/json"), huge.into_bytes(), 413, "payload_too_large"),
        row("path: unknown /api endpoint", A, "/api/nope", json!({}), 404, "not_found"),
        Row { method: "GET", ..row("method: GET on an endpoint", A, "/api/login/status", json!({}), 405, "method_not_allowed") },
        Row { method: "PUT", ..row("method: PUT on an endpoint", A, "/api/login/ticket", json!({}), 405, "method_not_allowed") },
        // Cross-site requests riding on the cookie.
        Row {
            headers: vec![("origin", "https://evil.example")],
            ..row("cross-site: Origin of another site", A, "/api/login/ticket", json!({}), 403, "cross_site")
        },
        Row {
            headers: vec![("sec-fetch-site", "cross-site")],
            ..row("cross-site: logout with Sec-Fetch-Site cross-site", A, "/api/logout", json!({}), 403, "cross_site")
        },
        Row { headers: vec![("origin", "null")], ..row("cross-site: Origin null", A, "/api/logout", json!({}), 403, "cross_site") },
        Row {
            headers: vec![("origin", "https://evil.example")],
            ..row(
                "cross-site: a simulator hook from another site",
                Phone,
                "/_wechat/sim/faults",
                json!({"endpoint": "token", "kind": "garbage"}),
                403,
                "cross_site",
            )
        },
        // Signed-in calls.
        row("me: no cookie", Anon, "/api/me", json!({}), 401, "unauthenticated"),
        row("me: forged session cookie", Forged, "/api/me", json!({}), 401, "unauthenticated"),
        row("me: a browser that never signed in", B, "/api/me", json!({}), 401, "unauthenticated"),
    ];
    // A's session is signed in (it finalized `tu`): it must stay so through all of this.
    let (s, _) = app.post(&a, "/api/me", json!({})).await;
    assert_eq!(s, 200);

    let mut failures = Vec::new();
    for r in rows.drain(..) {
        let client = match r.who {
            Who::A => a.clone(),
            Who::B => b.clone(),
            Who::Anon | Who::Forged | Who::Phone => phone(),
        };
        let mut req = client
            .request(r.method.parse().unwrap(), format!("{}{}", app.base, r.path))
            .header("accept", "application/json")
            .body(r.body.clone());
        if let Some(ct) = r.content_type {
            req = req.header("content-type", ct);
        }
        if matches!(r.who, Who::Forged) {
            req = req.header("cookie", "scanlogin_session=AAAAAAAAAAAAAAAAAAAAAA");
        }
        for (k, v) in &r.headers {
            req = req.header(*k, *v);
        }
        let before = app.snapshot().await;
        let before_counters = app.counters().await;
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let retry_after = res.headers().get("retry-after").is_some();
        let text = res.text().await.unwrap();
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let after = app.snapshot().await;
        let mut problems = Vec::new();
        if status != r.status || body["code"] != r.code {
            problems.push(format!("answered {status} {text}"));
        }
        if body["message"].as_str().is_none_or(str::is_empty) {
            problems.push("no message".into());
        }
        if retry_after {
            problems.push("unexpected Retry-After".into());
        }
        if r.asks_wechat {
            // Only the WeChat call itself may differ: one more code2Session.
            let db = |s: &str| s.lines().take(4).collect::<Vec<_>>().join("\n");
            if db(&before) != db(&after) {
                problems.push("changed the database".into());
            }
            let c = app.counters().await;
            let n = |v: &Value| v["jscode2session"].as_u64().unwrap_or(0);
            if n(&c) != n(&before_counters) + 1 || c["stable_token"] != before_counters["stable_token"] {
                problems.push(format!("WeChat calls {before_counters} → {c}"));
            }
        } else if before != after {
            problems.push(format!("changed state:\n  before {before}\n  after  {after}"));
        }
        if !problems.is_empty() {
            failures.push(format!("{}: {}", r.name, problems.join("; ")));
        }
        if std::env::var("PRINT_TABLE").is_ok() {
            println!("| {} | {} | {} `{}` |", r.name.replace('|', "\\|"), r.path, r.status, r.code);
        }
    }
    assert!(failures.is_empty(), "{} rows failed:\n{}", failures.len(), failures.join("\n"));
    let (s, _) = app.post(&a, "/api/me", json!({})).await;
    assert_eq!(s, 200, "browser A is still signed in");
}

#[test]
fn the_table_in_security_md_lists_every_row() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/SECURITY.md")).unwrap();
    let test = std::fs::read_to_string(file!()).unwrap();
    let names: Vec<&str> = test
        .lines()
        .filter_map(|l| l.split("row(\"").nth(1).or_else(|| l.split("raw(\"").nth(1)))
        .filter_map(|rest| rest.split('"').next())
        .filter(|n| !n.is_empty())
        .collect();
    assert!(names.len() >= 40, "the table has {} rows", names.len());
    for name in names {
        let cell = format!("| {} |", name.replace("\\\\", "\\").replace('|', "\\|"));
        assert!(doc.contains(&cell), "SECURITY.md lacks the row {cell}");
    }
}
