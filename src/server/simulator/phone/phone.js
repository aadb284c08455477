'use strict';
(function () {
  var $ = function (id) { return document.getElementById(id); };
  var params = new URLSearchParams(location.search);
  // WeChat hands the page options.scene; the wxacode mode carries it in the path's query.
  var ticket = params.get('scene');
  if (!ticket && params.get('path')) {
    var q = params.get('path').split('?')[1] || '';
    ticket = new URLSearchParams(q).get('scene');
  }
  // A link code (WECHAT_QR_MODE=link): WeChat's scanner passes the code's URL as
  // options.q; the ticket is its last path segment, /q/<ticket>.
  if (!ticket && params.get('q')) {
    var m = /\/q\/([A-Za-z0-9_-]{1,32})(?:[?#]|$)/.exec(params.get('q'));
    ticket = m ? m[1] : null;
  }
  // A URL Link's appended cq, should it arrive whole rather than as plain keys.
  if (!ticket && params.get('cq')) {
    ticket = new URLSearchParams(params.get('cq')).get('scene');
  }
  var confirmToken = null;
  var busy = false;
  // Number matching: the choices, and the person's pick (null: none yet).
  var choices = [];
  var picked = null;

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

  function note(text) { $('profile-note').textContent = text; show('profile-note', !!text); }

  function saveProfile() {
    var name = $('nickname').value.trim();
    if (!name) { note('请输入昵称，或点击跳过'); return; }
    call('/api/mp/profile', { ticket: ticket, confirm_token: confirmToken, nickname: name })
      .then(function (r) { show('profile', false); note('资料已保存：' + r.name); })
      .catch(function (e) { note(e.message); });
  }

  // chooseAvatar gives the mini program a file; wx.uploadFile sends it as multipart.
  function uploadAvatar() {
    var file = $('avatar').files[0];
    if (!file) return;
    var form = new FormData();
    form.append('ticket', ticket);
    form.append('confirm_token', confirmToken);
    form.append('file', file);
    fetch('/api/mp/avatar', { method: 'POST', headers: { 'Accept': 'application/json' }, body: form })
      .then(function (res) { return res.json().then(function (d) { if (!res.ok) throw new Error(d.message || ('HTTP ' + res.status)); return d; }); })
      .then(function () { note('头像已保存'); })
      .catch(function (e) { note(e.message); });
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
        $('req-client').textContent = r.requester.client || '';
        show('req-client-row', !!r.requester.client);
        // What the confirm grants: this site, and the browser signed in to scanlogin.
        $('grants').textContent = r.requester.client
          ? '确认后将登录「' + r.requester.client + '」，并在此浏览器登录 ' + r.requester.site + '；其他应用仍会先征得你的同意'
          : '';
        show('grants', !!r.requester.client);
        $('req-browser').textContent = r.requester.browser;
        $('req-ip').textContent = r.requester.ip;
        $('req-time').textContent = fmtTime(r.requester.created_at);
        show('pick', false); show('requester', true);
        // 头像昵称填写, as the mini program offers it; and whether the account waits.
        show('profile', !!r.profile_missing);
        note(r.account_status === 'pending' ? '你的账号需要管理员批准后才能进入受保护的网站' : '');
        show('confirm', true); show('cancel', true); show('again', false); enable(true);
        motto('请确认是你本人在上述网页发起的登录');
        showNumbers(r.number_choices || []);
      })
      .catch(function (e) { motto(e.message, 'error'); show('again', true); })
      .then(function () { busy = false; });
  }

  function showNumbers(list) {
    choices = list; picked = null;
    var row = $('number-row');
    row.textContent = '';
    list.forEach(function (n) {
      var b = document.createElement('button');
      b.className = 'number'; b.textContent = String(n); b.dataset.n = String(n);
      b.addEventListener('click', function () {
        picked = n;
        Array.prototype.forEach.call(row.children, function (c) { c.classList.toggle('picked', c === b); });
      });
      row.appendChild(b);
    });
    show('numbers', list.length > 0);
  }

  function finish(path, doneText, doneKind) {
    if (busy || !confirmToken) return;
    var body = { ticket: ticket, confirm_token: confirmToken };
    if (path === '/api/mp/confirm' && choices.length) {
      if (picked === null) { motto('请先选择网页上显示的数字', 'error'); return; }
      body.number = picked;
    }
    busy = true; enable(false);
    call(path, body)
      .then(function () { motto(doneText, doneKind); show('again', false); show('profile', false); show('numbers', false); note(''); })
      .catch(function (e) {
        motto(e.message, 'error');
        // A wrong number may be picked again; the second cancels the login.
        if (e.code === 'wrong_number') { showNumbers(choices); enable(true); } else { show('numbers', false); }
      })
      .then(function () { busy = false; });
  }

  document.addEventListener('DOMContentLoaded', function () {
    $('confirm').addEventListener('click', function () { finish('/api/mp/confirm', '已确认，请返回浏览器', 'ok'); });
    $('cancel').addEventListener('click', function () { finish('/api/mp/cancel', '已取消', ''); });
    $('save-profile').addEventListener('click', saveProfile);
    $('skip-profile').addEventListener('click', function () { show('profile', false); note(''); });
    $('avatar').addEventListener('change', uploadAvatar);
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
