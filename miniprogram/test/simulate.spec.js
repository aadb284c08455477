/**
 * The login page under WeChat's official component test kit (miniprogram-simulate): the
 * real WXML compiled by WeChat's own compiler (`compiler: 'official'`), rendered into a
 * DOM, taps dispatched through `bindtap`, against a real scanlogin demo server.
 *
 * A Page is loaded as the kit loads components: `Page({...})` becomes `Component({data,
 * methods})`, and the test calls `onLoad` as WeChat would on a scan.
 */
'use strict';
const path = require('node:path');
const http = require('node:http');
const simulate = require('miniprogram-simulate');
const { startServer } = require('./harness');

const MP = path.resolve(__dirname, '..');
const PAGE = path.join(MP, 'pages', 'login', 'index');
const SESSIONS = path.join(MP, 'pages', 'sessions', 'index');

/** POST JSON with node's http (jsdom's window has no fetch). */
function post(url, body, headers = {}) {
  return new Promise((resolve, reject) => {
    const data = JSON.stringify(body);
    const req = http.request(url, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json', ...headers } }, (res) => {
      let text = '';
      res.on('data', (c) => (text += c));
      res.on('end', () => {
        let parsed = text;
        try { parsed = JSON.parse(text); } catch (e) { /* WeChat leaves non-JSON as a string */ }
        resolve({ statusCode: res.statusCode, data: parsed, headers: res.headers });
      });
    });
    req.on('error', reject);
    req.end(data);
  });
}

/** POST a multipart form as wx.uploadFile does: text fields and one file. */
function postMultipart(url, fields, fileField, file) {
  return new Promise((resolve, reject) => {
    const boundary = '----scanlogin' + Date.now();
    const parts = [];
    for (const [k, v] of Object.entries(fields)) {
      parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`));
    }
    parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${fileField}"; filename="tmp.png"\r\nContent-Type: image/png\r\n\r\n`));
    parts.push(file, Buffer.from(`\r\n--${boundary}--\r\n`));
    const body = Buffer.concat(parts);
    const req = http.request(url, { method: 'POST', headers: { 'content-type': `multipart/form-data; boundary=${boundary}`, 'content-length': body.length } }, (res) => {
      let text = '';
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ statusCode: res.statusCode, data: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

// A 2×2 PNG, as chooseAvatar's temporary file would hold.
const TINY_PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAFklEQVR4nGP8z8DAwMDAxMDAwMDAAAANHQEDasKb6QAAAABJRU5ErkJggg==',
  'base64',
);

let server;
let requests;
// The mini program's storage (the phone's own login lives there).
let storage = {};

/** `wx` as the page uses it: login (a real code from the simulator), request (real HTTP,
 *  success for any status, fail without an answer). */
function installWx(base, user) {
  requests = [];
  global.wx = {
    getAccountInfoSync: () => ({ miniProgram: { envVersion: 'develop' } }),
    getStorageSync: (k) => (k === 'scanlogin.baseUrl' ? base : storage[k] || ''),
    setStorageSync: (k, v) => { storage[k] = v; },
    removeStorageSync: (k) => { delete storage[k]; },
    checkSession: ({ success }) => success({}),
    login({ success, fail }) {
      post(base + '/_wechat/sim/wx-login', { user }).then((r) => success({ code: r.data.code, errMsg: 'login:ok' }), (e) => fail({ errMsg: e.message }));
    },
    request({ url, data, header, success, fail }) {
      requests.push(url);
      post(url, data, header).then(success, (e) => fail({ errMsg: 'request:fail ' + e.message }));
    },
    // The file is the test's own PNG whatever the temporary path says.
    uploadFile({ url, formData, name, success, fail }) {
      requests.push(url);
      postMultipart(url, formData, name, TINY_PNG).then(success, (e) => fail({ errMsg: 'uploadFile:fail ' + e.message }));
    },
    exitMiniProgram() {},
    navigateBack() {},
  };
}

global.Page = (definition) => {
  const methods = {};
  for (const [k, v] of Object.entries(definition)) if (typeof v === 'function') methods[k] = v;
  global.Component({ data: definition.data, methods });
};

let pageId;

/** Renders the page and calls onLoad as a scan of `ticket` would. */
function open(ticket) {
  pageId = pageId || simulate.load(PAGE, { compiler: 'official', rootPath: MP });
  const page = simulate.render(pageId);
  page.attach(document.createElement('parent-wrapper'));
  page.instance.onLoad({ scene: encodeURIComponent(ticket) });
  return page;
}

async function until(page, pred, what) {
  const t0 = Date.now();
  while (!pred(page.data)) {
    if (Date.now() - t0 > 10000) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(page.data)}`);
    await simulate.sleep(20);
  }
}

/** The rendered button whose text is `text`. */
function button(page, text) {
  const found = [...page.querySelectorAll('.primary'), ...page.querySelectorAll('.secondary')].find((b) => b.dom.textContent.trim() === text);
  if (!found) throw new Error(`no button ${text} in ${page.dom.innerHTML}`);
  return found;
}

async function newTicket() {
  const r = await post(server.base + '/api/login/ticket', {}, { 'user-agent': 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36' });
  expect(r.statusCode).toBe(200);
  return r.data.ticket;
}

beforeAll(async () => {
  server = await startServer();
});
afterAll(async () => {
  await server.stop();
});

test('the compiled page shows who asks, and 点击登录 confirms through bindtap', async () => {
  const ticket = await newTicket();
  installWx(server.base, 'zhangsan');
  const page = open(ticket);
  await until(page, (d) => d.phase === 'ready', 'the scan');
  await simulate.sleep(10);
  const text = page.dom.textContent;
  expect(text).toContain('网页登录确认');
  expect(text).toContain('Chrome 131 · Windows 10');
  expect(text).toContain('127.0.0.1');
  expect(text).toContain('请确认是你本人在上述网页发起的登录');

  // Two taps before the view disables the button: one confirm.
  button(page, '点击登录').dispatchEvent('tap');
  button(page, '点击登录').dispatchEvent('tap');
  await until(page, (d) => d.phase === 'done', 'the confirm');
  await simulate.sleep(10);
  expect(requests.filter((u) => u.endsWith('/api/mp/confirm'))).toHaveLength(1);
  expect(page.dom.textContent).toContain('已确认，请返回浏览器');
  expect(page.dom.textContent).toContain('返回微信');
  // A late tap changes nothing.
  button(page, '点击登录').dispatchEvent('tap');
  await simulate.sleep(50);
  expect(requests.filter((u) => u.endsWith('/api/mp/confirm'))).toHaveLength(1);
  expect(page.data.phase).toBe('done');
});

test('取消 through bindtap cancels the login', async () => {
  const ticket = await newTicket();
  installWx(server.base, 'lisi');
  const page = open(ticket);
  await until(page, (d) => d.phase === 'ready', 'the scan');
  button(page, '取消').dispatchEvent('tap');
  await until(page, (d) => d.phase === 'done', 'the cancel');
  await simulate.sleep(10);
  expect(page.dom.textContent).toContain('已取消');
});

test('two taps on 重试 after a WeChat failure send one scan', async () => {
  const ticket = await newTicket();
  await post(server.base + '/_wechat/sim/faults', { endpoint: 'jscode2session', kind: 'http_status', status: 502, count: 1 });
  installWx(server.base, 'wangwu');
  const page = open(ticket);
  await until(page, (d) => d.phase === 'error', 'the failure');
  await simulate.sleep(10);
  expect(page.dom.textContent).toContain('微信服务暂时不可用，请稍后重试');
  const scansBefore = requests.filter((u) => u.endsWith('/api/mp/scan')).length;
  button(page, '重试').dispatchEvent('tap');
  button(page, '重试').dispatchEvent('tap');
  await until(page, (d) => d.phase === 'ready', 'the retried scan');
  expect(requests.filter((u) => u.endsWith('/api/mp/scan')).length - scansBefore).toBe(1);
});

test('头像昵称填写: chooseAvatar uploads, the nickname input is saved, then 点击登录', async () => {
  const ticket = await newTicket();
  installWx(server.base, 'profile_user');
  const page = open(ticket);
  await until(page, (d) => d.phase === 'ready', 'the scan');
  await simulate.sleep(10);
  expect(page.data.profileMissing).toBe(true);
  expect(page.dom.textContent).toContain('设置头像和昵称');
  // The avatar button (open-type="chooseAvatar") and the nickname input, as WeChat fires them.
  const picker = page.querySelector('.avatar-picker');
  picker.dispatchEvent('chooseavatar', { detail: { avatarUrl: 'http://tmp/avatar.png' } });
  await until(page, (d) => d.profileNote === '头像已保存', 'the upload');
  expect(requests.filter((u) => u.endsWith('/api/mp/avatar'))).toHaveLength(1);
  // A nickname WeChat's content check refuses: said so, the login still possible.
  const input = page.querySelector('.nickname');
  input.dispatchEvent('input', { detail: { value: '违禁昵称' } });
  button(page, '保存').dispatchEvent('tap');
  await until(page, (d) => d.profileNote.includes('未通过'), 'the refusal');
  expect(page.data.phase).toBe('ready');
  input.dispatchEvent('input', { detail: { value: '小明' } });
  button(page, '保存').dispatchEvent('tap');
  await until(page, (d) => !d.profileMissing, 'the saved nickname');
  await simulate.sleep(10);
  expect(page.dom.textContent).toContain('资料已保存：小明');
  expect(page.dom.textContent).not.toContain('设置头像和昵称');
  button(page, '点击登录').dispatchEvent('tap');
  await until(page, (d) => d.phase === 'done', 'the confirm');
});

test('跳过 hides the profile step and 点击登录 works without one', async () => {
  const ticket = await newTicket();
  installWx(server.base, 'skipper');
  const page = open(ticket);
  await until(page, (d) => d.phase === 'ready', 'the scan');
  await simulate.sleep(10);
  button(page, '跳过').dispatchEvent('tap');
  await simulate.sleep(10);
  expect(page.dom.textContent).not.toContain('设置头像和昵称');
  button(page, '点击登录').dispatchEvent('tap');
  await until(page, (d) => d.phase === 'done', 'the confirm');
  expect(requests.filter((u) => u.endsWith('/api/mp/profile'))).toHaveLength(0);
});

/** A browser signed in as `user` (ticket, scan, confirm, finalize over HTTP). */
async function signedInCookie(user) {
  const ua = { 'user-agent': 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36' };
  const t = await post(server.base + '/api/login/ticket', {}, ua);
  const cookie = t.headers['set-cookie'].map((c) => c.split(';')[0]).join('; ');
  const code = (await post(server.base + '/_wechat/sim/wx-login', { user })).data.code;
  const scan = await post(server.base + '/api/mp/scan', { ticket: t.data.ticket, code });
  await post(server.base + '/api/mp/confirm', { ticket: t.data.ticket, confirm_token: scan.data.confirm_token });
  const fin = await post(server.base + '/api/login/finalize', { ticket: t.data.ticket, finalize_key: t.data.finalize_key }, { ...ua, cookie });
  expect(fin.statusCode).toBe(200);
  return fin.headers['set-cookie'].map((c) => c.split(';')[0]).join('; ');
}

test('「我的网页登录」: the compiled list, 退出 on one item through its data-id; 全部退出 only while several', async () => {
  const cookies = [await signedInCookie('sessions_user'), await signedInCookie('sessions_user')];
  installWx(server.base, 'sessions_user');
  storage = {};
  const id = simulate.load(SESSIONS, { compiler: 'official', rootPath: MP });
  const page = simulate.render(id);
  page.attach(document.createElement('parent-wrapper'));
  page.instance.onLoad({});
  await until(page, (d) => d.phase === 'ready', 'the list');
  await simulate.sleep(10);
  expect(page.querySelectorAll('.session')).toHaveLength(2);
  expect(page.dom.textContent).toContain('Chrome 131 · Windows 10');
  expect(page.dom.textContent).toContain('全部退出');
  expect(storage['scanlogin.phone'].token).toBeTruthy();

  page.querySelectorAll('.sign-out')[0].dispatchEvent('tap');
  await until(page, (d) => d.sessions.length === 1, 'one signed out');
  await simulate.sleep(10);
  expect(page.querySelectorAll('.session')).toHaveLength(1);
  expect(page.dom.textContent).not.toContain('全部退出');
  const me = await Promise.all(cookies.map((cookie) => post(server.base + '/api/me', {}, { cookie })));
  expect(me.map((r) => r.statusCode).sort()).toEqual([200, 401]);
  expect(requests.filter((u) => u.endsWith('/api/mp/login'))).toHaveLength(1);
});

test('number matching: the compiled page shows three numbers; 点击登录 confirms only with the picked one', async () => {
  const matching = await startServer({ LOGIN_NUMBER_MATCH: 'true' });
  try {
    const ua = { 'user-agent': 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36' };
    const t = await post(matching.base + '/api/login/ticket', {}, ua);
    const cookie = t.headers['set-cookie'].map((c) => c.split(';')[0]).join('; ');
    installWx(matching.base, 'numbers_user');
    const page = open(t.data.ticket);
    await until(page, (d) => d.phase === 'ready', 'the scan');
    await simulate.sleep(10);
    const buttons = page.querySelectorAll('.number');
    expect(buttons).toHaveLength(3);
    expect(page.dom.textContent).toContain('选择网页上显示的数字');
    const status = await post(matching.base + '/api/login/status', { ticket: t.data.ticket, seen: 0 }, { ...ua, cookie });
    const shown = status.data.number;
    const right = buttons.find((b) => b.dom.textContent.trim() === String(shown));
    expect(right).toBeTruthy();
    right.dispatchEvent('tap');
    await until(page, (d) => d.picked === shown, 'the pick');
    await simulate.sleep(10);
    expect(right.dom.className).toContain('picked');
    button(page, '点击登录').dispatchEvent('tap');
    await until(page, (d) => d.phase === 'done', 'the confirm');
    const after = await post(matching.base + '/api/login/status', { ticket: t.data.ticket, seen: 0 }, { ...ua, cookie });
    expect(after.data.status).toBe('confirmed');
  } finally {
    await matching.stop();
  }
});
