//! The simulated phone: a page that looks and behaves like the mini program's login
//! page, for demo mode. It calls the same `/api/mp/*` endpoints the mini program calls;
//! `wx.login()` is played by `/_wechat/sim/wx-login`.

use axum::http::header;
use axum::response::{Html, IntoResponse, Response};

/// `GET /_wechat/phone?scene=…` (or `?path=pages/login/index?scene=…`).
pub async fn page() -> Html<&'static str> {
    Html(PAGE)
}

/// The page's script (a file, not inline, so a strict CSP can apply).
pub async fn script() -> Response {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], SCRIPT).into_response()
}

/// The page's style.
pub async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response()
}

const PAGE: &str = r#"<!DOCTYPE html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>模拟手机 · 微信小程序登录</title>
<link rel="stylesheet" href="/_wechat/phone.css">
<script src="/_wechat/phone.js" defer></script>
</head>
<body>
<div class="demo-banner" role="note">演示模式：这是模拟的微信小程序页面</div>
<main class="phone">
  <header class="navbar"><span>扫码登录</span></header>
  <section class="content">
    <div class="logo" aria-hidden="true">✓</div>
    <h1 id="title">网页登录确认</h1>
    <div id="pick" class="pick" hidden>
      <p class="label">选择一个演示微信用户进行扫码：</p>
      <div id="users" class="users"></div>
    </div>
    <dl id="requester" class="requester" hidden>
      <div><dt>网站</dt><dd id="req-site"></dd></div>
      <div><dt>浏览器</dt><dd id="req-browser"></dd></div>
      <div><dt>IP 地址</dt><dd id="req-ip"></dd></div>
      <div><dt>时间</dt><dd id="req-time"></dd></div>
    </dl>
    <p id="motto" class="motto" role="status">正在读取二维码…</p>
    <div class="actions">
      <button id="confirm" class="primary" hidden disabled>点击登录</button>
      <button id="cancel" class="secondary" hidden disabled>取消</button>
      <button id="again" class="secondary" hidden>重新扫码</button>
    </div>
  </section>
</main>
</body>
</html>
"#;

const SCRIPT: &str = r#"'use strict';
(function () {
  var $ = function (id) { return document.getElementById(id); };
  var params = new URLSearchParams(location.search);
  // WeChat hands the page options.scene; the wxacode mode carries it in the path's query.
  var ticket = params.get('scene');
  if (!ticket && params.get('path')) {
    var q = params.get('path').split('?')[1] || '';
    ticket = new URLSearchParams(q).get('scene');
  }
  var confirmToken = null;
  var busy = false;

  function motto(text, kind) { var m = $('motto'); m.textContent = text; m.className = 'motto ' + (kind || ''); }
  function show(id, on) { $(id).hidden = !on; }
  function enable(on) { $('confirm').disabled = !on; $('cancel').disabled = !on; }

  function call(path, body) {
    return fetch(path, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'Accept': 'application/json' },
      body: JSON.stringify(body)
    }).then(function (res) {
      return res.json().catch(function () { return {}; }).then(function (data) {
        if (!res.ok) { var e = new Error(data.message || ('HTTP ' + res.status)); e.code = data.code; throw e; }
        return data;
      });
    });
  }

  function fmtTime(iso) { try { return new Date(iso).toLocaleString('zh-CN'); } catch (e) { return iso; } }

  function scanAs(user) {
    if (busy) return;
    busy = true;
    motto('正在登录微信…');
    call('/_wechat/sim/wx-login', { user: user })
      .then(function (r) { return call('/api/mp/scan', { ticket: ticket, code: r.code }); })
      .then(function (r) {
        confirmToken = r.confirm_token;
        $('req-site').textContent = r.requester.site;
        $('req-browser').textContent = r.requester.browser;
        $('req-ip').textContent = r.requester.ip;
        $('req-time').textContent = fmtTime(r.requester.created_at);
        show('pick', false); show('requester', true);
        show('confirm', true); show('cancel', true); show('again', false); enable(true);
        motto('请确认是你本人在上述网页发起的登录');
      })
      .catch(function (e) { motto(e.message, 'error'); show('again', true); })
      .then(function () { busy = false; });
  }

  function finish(path, doneText, doneKind) {
    if (busy || !confirmToken) return;
    busy = true; enable(false);
    call(path, { ticket: ticket, confirm_token: confirmToken })
      .then(function () { motto(doneText, doneKind); show('again', false); })
      .catch(function (e) { motto(e.message, 'error'); })
      .then(function () { busy = false; });
  }

  document.addEventListener('DOMContentLoaded', function () {
    $('confirm').addEventListener('click', function () { finish('/api/mp/confirm', '已在网页端登录', 'ok'); });
    $('cancel').addEventListener('click', function () { finish('/api/mp/cancel', '已取消', ''); });
    $('again').addEventListener('click', function () { show('requester', false); show('pick', true); show('again', false); motto('选择一个演示微信用户'); });
    if (!ticket) { motto('请在网站上扫描小程序码进入此页面', 'error'); return; }
    fetch('/_wechat/sim/users').then(function (r) { return r.json(); }).then(function (list) {
      list.forEach(function (u) {
        var b = document.createElement('button');
        b.className = 'user'; b.textContent = u.name; b.dataset.user = u.user;
        b.addEventListener('click', function () { scanAs(u.user); });
        $('users').appendChild(b);
      });
      show('pick', true);
      motto('模拟扫码：选择扫码的微信用户');
    });
  });
})();
"#;

const STYLE: &str = r#"
* { box-sizing: border-box; }
body { margin: 0; font-family: -apple-system, "PingFang SC", "Microsoft YaHei", sans-serif; background: #ededed; color: #191919; }
.demo-banner { background: #fff3cd; color: #664d03; text-align: center; font-size: 13px; padding: 6px 12px; border-bottom: 1px solid #ffe69c; }
.phone { max-width: 420px; margin: 0 auto; min-height: calc(100vh - 32px); background: #f7f7f7; display: flex; flex-direction: column; }
.navbar { height: 48px; display: flex; align-items: center; justify-content: center; background: #f7f7f7; font-weight: 600; border-bottom: 1px solid #e5e5e5; }
.content { padding: 32px 24px; display: flex; flex-direction: column; align-items: center; gap: 16px; }
.logo { width: 72px; height: 72px; border-radius: 50%; background: #07c160; color: #fff; font-size: 40px; display: flex; align-items: center; justify-content: center; }
h1 { font-size: 20px; margin: 0; }
.label { margin: 0 0 8px; color: #666; font-size: 14px; text-align: center; }
.users { display: flex; gap: 8px; justify-content: center; flex-wrap: wrap; }
.user { border: 1px solid #07c160; background: #fff; color: #07c160; border-radius: 20px; padding: 8px 18px; font-size: 15px; cursor: pointer; }
.requester { width: 100%; background: #fff; border-radius: 8px; padding: 8px 16px; margin: 0; }
.requester div { display: flex; justify-content: space-between; padding: 8px 0; border-bottom: 1px solid #f0f0f0; font-size: 14px; }
.requester div:last-child { border-bottom: none; }
.requester dt { color: #888; } .requester dd { margin: 0; text-align: right; word-break: break-all; }
.motto { color: #576b95; font-size: 14px; text-align: center; min-height: 20px; margin: 0; }
.motto.error { color: #fa5151; } .motto.ok { color: #07c160; font-weight: 600; }
.actions { width: 100%; display: flex; flex-direction: column; gap: 12px; margin-top: 8px; }
button.primary, button.secondary { width: 100%; height: 46px; border-radius: 8px; font-size: 17px; border: none; cursor: pointer; }
button.primary { background: #07c160; color: #fff; } button.secondary { background: #fff; color: #191919; border: 1px solid #e0e0e0; }
button:disabled { opacity: .5; cursor: default; }
"#;
