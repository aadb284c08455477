// The mini program's login page, run unchanged against real servers.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { startServer, Browser, sim, openPage } = require('./harness');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function withServer(env, fn) {
  const server = await startServer(env);
  try {
    await fn(server);
  } finally {
    await server.stop();
  }
}

// The finalize key of each ticket, as the page keeps it (in memory).
const finalizeKeys = new Map();

async function newTicket(browser) {
  const r = await browser.post('/api/login/ticket', {});
  assert.equal(r.status, 200, JSON.stringify(r.body));
  finalizeKeys.set(r.body.ticket, r.body.finalize_key);
  return r.body.ticket;
}

async function ticketState(browser, ticket) {
  const r = await browser.post('/api/login/status', { ticket, seen: 0 });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body;
}

const scanned = (d) => d.phase === 'ready';

test('scan and 点击登录 sign the browser in', () => withServer({}, async ({ base }) => {
  const browser = new Browser(base);
  const ticket = await newTicket(browser);
  const phone = openPage({ base, wechat: base, user: 'zhangsan' });
  phone.load({ scene: encodeURIComponent(ticket) });
  await phone.until(scanned, 'the scan');
  assert.equal(phone.data.requester.site, '127.0.0.1');
  assert.equal(phone.data.requester.ip, '127.0.0.1');
  assert.match(phone.data.requester.browser, /^Chrome 131/);
  assert.equal(phone.data.motto, '请确认是你本人在上述网页发起的登录');
  assert.equal((await ticketState(browser, ticket)).status, 'scanned');

  assert.equal(phone.tap('点击登录'), true);
  await phone.until((d) => d.phase === 'done', 'the confirm');
  assert.equal(phone.data.motto, '已确认，请返回浏览器');
  assert.equal(phone.tap('点击登录'), false, 'buttons are disabled afterwards');
  assert.equal(phone.tap('取消'), false);
  assert.equal(phone.tap('返回微信'), true);
  assert.deepEqual(phone.calls, ['exitMiniProgram']);

  assert.equal((await ticketState(browser, ticket)).status, 'confirmed');
  const fin = await browser.post('/api/login/finalize', { ticket, finalize_key: finalizeKeys.get(ticket) });
  assert.equal(fin.status, 200, JSON.stringify(fin.body));
  const me = await browser.post('/api/me', {});
  assert.equal(me.status, 200);
  assert.match(me.body.user.openid_masked, /…/);
}));

test('取消 cancels the login', () => withServer({}, async ({ base }) => {
  const browser = new Browser(base);
  const ticket = await newTicket(browser);
  const phone = openPage({ base, wechat: base, user: 'lisi' });
  phone.load({ scene: encodeURIComponent(ticket) });
  await phone.until(scanned, 'the scan');
  assert.equal(phone.tap('取消'), true);
  await phone.until((d) => d.phase === 'done', 'the cancel');
  assert.equal(phone.data.motto, '已取消');
  assert.equal((await ticketState(browser, ticket)).status, 'cancelled');
  assert.equal(phone.tap('点击登录'), false);
}));

test('a double tap sends one request', () => withServer({}, async ({ base }) => {
  const browser = new Browser(base);
  const ticket = await newTicket(browser);
  const phone = openPage({ base, wechat: base, user: 'wangwu' });
  phone.load({ scene: encodeURIComponent(ticket) });
  await phone.until(scanned, 'the scan');
  // Both taps land before the view re-renders the button as disabled.
  assert.equal(phone.tap('点击登录'), true);
  assert.equal(phone.tap('点击登录'), true);
  await phone.until((d) => d.phase === 'done', 'the confirm');
  const confirms = phone.requests.filter((r) => r.url.endsWith('/api/mp/confirm'));
  assert.equal(confirms.length, 1);
  assert.equal(phone.data.motto, '已确认，请返回浏览器');
}));

test('reopening the page scans again with a fresh token; a replayed confirm changes nothing', () => withServer({}, async ({ base }) => {
  const browser = new Browser(base);
  const ticket = await newTicket(browser);
  const first = openPage({ base, wechat: base, user: 'zhangsan' });
  first.load({ scene: encodeURIComponent(ticket) });
  await first.until(scanned, 'the first scan');
  const again = openPage({ base, wechat: base, user: 'zhangsan' });
  again.load({ scene: encodeURIComponent(ticket) });
  await again.until(scanned, 'the second scan');
  assert.notEqual(again.data.confirmToken, first.data.confirmToken);
  // The first page's token stopped working.
  first.tap('点击登录');
  await first.until((d) => d.phase === 'error', 'the refusal');
  assert.equal(first.data.motto, '只有扫码的微信用户可以确认此次登录，请重新扫码');
  again.tap('点击登录');
  await again.until((d) => d.phase === 'done', 'the confirm');
  const before = await ticketState(browser, ticket);

  // Replay the confirm request as sent, and reopen the page: both refused, nothing changes.
  const replay = await fetch(base + '/api/mp/confirm', {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify({ ticket, confirm_token: again.data.confirmToken }),
  });
  assert.equal(replay.status, 409);
  assert.equal((await replay.json()).code, 'already_confirmed');
  const third = openPage({ base, wechat: base, user: 'zhangsan' });
  third.load({ scene: encodeURIComponent(ticket) });
  await third.until((d) => d.phase === 'error', 'the refusal');
  assert.equal(third.data.motto, '此次登录已确认');
  assert.deepEqual(await ticketState(browser, ticket), before);
}));

test('a second WeChat user scanning the same code is refused', () => withServer({}, async ({ base }) => {
  const browser = new Browser(base);
  const ticket = await newTicket(browser);
  const owner = openPage({ base, wechat: base, user: 'zhangsan' });
  owner.load({ scene: encodeURIComponent(ticket) });
  await owner.until(scanned, 'the scan');
  const before = await ticketState(browser, ticket);
  const intruder = openPage({ base, wechat: base, user: 'lisi' });
  intruder.load({ scene: encodeURIComponent(ticket) });
  await intruder.until((d) => d.phase === 'error', 'the refusal');
  assert.equal(intruder.data.motto, '该二维码已被其他微信用户扫描');
  assert.equal(intruder.data.requester, null, 'the intruder learns nothing about the requester');
  assert.equal(intruder.buttons().find((b) => b.text === '点击登录').visible, false);
  assert.deepEqual(await ticketState(browser, ticket), before);
}));

test('an expired code says so and changes nothing', () => withServer({ TICKET_TTL_SECS: '1' }, async ({ base }) => {
  const browser = new Browser(base);
  const ticket = await newTicket(browser);
  await sleep(1300);
  const before = await ticketState(browser, ticket);
  assert.equal(before.status, 'expired');
  const phone = openPage({ base, wechat: base, user: 'zhangsan' });
  phone.load({ scene: encodeURIComponent(ticket) });
  await phone.until((d) => d.phase === 'error', 'the refusal');
  assert.equal(phone.data.motto, '二维码已过期，请在网页上刷新后重新扫码');
  assert.equal(phone.data.canRetry, false);
  assert.deepEqual(await ticketState(browser, ticket), before);
}));

test('a server that is down gives a network message and a retry', () => withServer({}, async ({ base }) => {
  const browser = new Browser(base);
  const ticket = await newTicket(browser);
  // WeChat (wx.login) answers, but our server is unreachable.
  const phone = openPage({ base: 'http://127.0.0.1:9', wechat: base, user: 'zhangsan' });
  phone.load({ scene: encodeURIComponent(ticket) });
  await phone.until((d) => d.phase === 'error', 'the failure');
  assert.equal(phone.data.motto, '网络连接失败，请检查网络后重试');
  assert.equal(phone.buttons().find((b) => b.text === '重试').visible, true);
  assert.equal((await ticketState(browser, ticket)).status, 'waiting');
}));

test('WeChat failing (HTTP 5xx) shows wechat_unavailable and changes nothing', () => withServer({}, async ({ base }) => {
  const browser = new Browser(base);
  const ticket = await newTicket(browser);
  const before = await ticketState(browser, ticket);
  await sim(base, '/sim/faults', { endpoint: 'jscode2session', kind: 'http_status', status: 502, count: 1 });
  const phone = openPage({ base, wechat: base, user: 'zhangsan' });
  phone.load({ scene: encodeURIComponent(ticket) });
  await phone.until((d) => d.phase === 'error', 'the failure');
  assert.equal(phone.data.motto, '微信服务暂时不可用，请稍后重试');
  assert.deepEqual(await ticketState(browser, ticket), before);
  // 重试 works once WeChat is back.
  assert.equal(phone.tap('重试'), true);
  await phone.until(scanned, 'the retried scan');
  assert.equal((await ticketState(browser, ticket)).status, 'scanned');
}));

test('opened without a scene, the page explains how to get here', () => withServer({}, async ({ base }) => {
  const phone = openPage({ base, wechat: base, user: 'zhangsan' });
  phone.load({});
  await sleep(50);
  assert.equal(phone.data.phase, 'noscene');
  assert.match(phone.data.motto, /扫描/);
  assert.equal(phone.requests.length, 0);
  assert.equal(phone.buttons().find((b) => b.text === '点击登录').visible, false);
}));

/** A stand-in for what sits between the phone and the server: answers every request
 *  with `status` and an HTML page. */
async function htmlProxy(status) {
  const http = require('node:http');
  const server = http.createServer((req, res) => {
    req.resume();
    res.writeHead(status, { 'content-type': 'text/html' });
    res.end('<html><body>upstream says hello</body></html>');
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { base: `http://127.0.0.1:${server.address().port}`, close: () => new Promise((r) => server.close(r)) };
}

test('two taps on 重试 send one scan, and the page ends ready', () => withServer({}, async ({ base }) => {
  const browser = new Browser(base);
  const ticket = await newTicket(browser);
  await sim(base, '/sim/faults', { endpoint: 'jscode2session', kind: 'http_status', status: 502, count: 1 });
  const phone = openPage({ base, wechat: base, user: 'zhangsan' });
  phone.load({ scene: encodeURIComponent(ticket) });
  await phone.until((d) => d.phase === 'error', 'the failure');
  const scansBefore = phone.requests.filter((r) => r.url.endsWith('/api/mp/scan')).length;
  // Both taps land before the view hides 重试.
  assert.equal(phone.tap('重试'), true);
  assert.equal(phone.tap('重试'), true);
  await phone.until(scanned, 'the retried scan');
  const scans = phone.requests.filter((r) => r.url.endsWith('/api/mp/scan')).length - scansBefore;
  assert.equal(scans, 1, 'one scan for two taps');
  assert.equal(phone.buttons().find((b) => b.text === '点击登录').visible, true);
  assert.equal(phone.tap('点击登录'), true);
  await phone.until((d) => d.phase === 'done', 'the confirm');
  assert.equal((await ticketState(browser, ticket)).status, 'confirmed');
}));

test('a 200 that is not JSON is a failure with 重试, not a blank success', () => withServer({}, async ({ base }) => {
  const proxy = await htmlProxy(200);
  try {
    const phone = openPage({ base: proxy.base, wechat: base, user: 'zhangsan' });
    phone.load({ scene: 'AAAAAAAAAAAAAAAAAAAAAA' });
    await phone.until((d) => d.phase === 'error', 'the failure');
    assert.equal(phone.data.motto, '服务暂时不可用，请稍后重试');
    assert.equal(phone.data.requester, null);
    assert.equal(phone.buttons().find((b) => b.text === '点击登录').visible, false);
    assert.equal(phone.buttons().find((b) => b.text === '重试').visible, true);
  } finally {
    await proxy.close();
  }
}));

test('a 502 page from a proxy offers 重试', () => withServer({}, async ({ base }) => {
  const proxy = await htmlProxy(502);
  try {
    const phone = openPage({ base: proxy.base, wechat: base, user: 'zhangsan' });
    phone.load({ scene: 'AAAAAAAAAAAAAAAAAAAAAA' });
    await phone.until((d) => d.phase === 'error', 'the failure');
    assert.equal(phone.data.motto, '服务暂时不可用，请稍后重试');
    assert.equal(phone.buttons().find((b) => b.text === '重试').visible, true);
  } finally {
    await proxy.close();
  }
}));

test('a scene that does not decode says the code is invalid', () => withServer({}, async ({ base }) => {
  const phone = openPage({ base, wechat: base, user: 'zhangsan' });
  phone.load({ scene: '%E4%' });
  await phone.until((d) => d.phase === 'error', 'the refusal');
  assert.equal(phone.data.motto, '二维码内容无效，请在网页上刷新后重新扫码');
  assert.equal(phone.requests.length, 0, 'nothing sent');
}));

// The same phone (contract v3): the page opened by a URL Link from the phone's browser,
// by a link code (options.q), or with the link's cq arriving whole.
test('opened from a URL Link, a link code or a whole cq, the page scans that ticket', () => withServer({}, async ({ base }) => {
  for (const launch of [
    (t) => ({ scene: t }), // a URL Link's query (or its cq's keys as plain keys)
    (t) => ({ q: encodeURIComponent(`${base}/q/${t}`), scancode_time: '1765000000' }),
    (t) => ({ cq: encodeURIComponent(`scene=${t}`) }),
  ]) {
    const browser = new Browser(base);
    const ticket = await newTicket(browser);
    const options = launch(ticket);
    const phone = openPage({ base, wechat: base, user: 'lisi' });
    phone.load(options);
    await phone.until(scanned, 'the scan from ' + JSON.stringify(options));
    assert.equal(phone.data.ticket, ticket);
    assert.equal((await ticketState(browser, ticket)).status, 'scanned');
    assert.equal(phone.tap('点击登录'), true);
    await phone.until((d) => d.phase === 'done', 'the confirm');
    // WeChat cannot switch back to the browser: the page says to go back, and offers
    // no button that pretends to.
    assert.equal(phone.data.motto, '已确认，请返回浏览器');
    assert.equal(phone.buttons().some((b) => b.visible && /浏览器/.test(b.text)), false);
    assert.equal((await ticketState(browser, ticket)).status, 'confirmed');
  }
}));

test('a link code that is not ours, or a q that does not decode, is refused without a request', () => withServer({}, async ({ base }) => {
  for (const q of [encodeURIComponent('https://example.com/elsewhere'), '%E4%', encodeURIComponent(`${base}/q/bad!ticket`)]) {
    const phone = openPage({ base, wechat: base, user: 'zhangsan' });
    phone.load({ q });
    await phone.until((d) => d.phase === 'error', 'the refusal of ' + q);
    assert.equal(phone.data.motto, '二维码内容无效，请在网页上刷新后重新扫码');
    assert.equal(phone.requests.length, 0, 'nothing sent');
  }
}));

// 「我的网页登录」 and the mini program's own login (utils/session.js).

/** A browser signed in as `user` through the page: scan, 点击登录, finalize. */
async function signedInBrowser(base, user) {
  const browser = new Browser(base);
  const ticket = await newTicket(browser);
  const phone = openPage({ base, wechat: base, user });
  phone.load({ scene: ticket });
  await phone.until(scanned, 'the scan');
  phone.tap('点击登录');
  await phone.until((d) => d.phase === 'done', 'the confirm');
  const fin = await browser.post('/api/login/finalize', { ticket, finalize_key: finalizeKeys.get(ticket) });
  assert.equal(fin.status, 200, JSON.stringify(fin.body));
  return browser;
}

const signedIn = async (browser) => (await browser.post('/api/me', {})).status === 200;
const calledPath = (phone, p) => phone.requests.filter((r) => r.url.endsWith(p)).length;

test('the phone keeps its own login: stored, reused, renewed near its end, made again after checkSession fails', () => withServer({}, async ({ base }) => {
  await signedInBrowser(base, 'zhangsan');
  await signedInBrowser(base, 'zhangsan');
  const storage = {};
  const open = async (opts = {}) => {
    const page = openPage({ base, wechat: base, user: 'zhangsan', page: 'sessions', storage, ...opts });
    page.load({});
    await page.until((d) => d.phase === 'ready', 'the list');
    return page;
  };
  const first = await open();
  assert.equal(first.data.sessions.length, 2);
  assert.match(first.data.sessions[0].browser, /^Chrome 131/);
  assert.equal(first.data.sessions[0].ip, '127.0.0.1');
  assert.equal(calledPath(first, '/api/mp/login'), 1, 'one wx.login for a token');
  const kept = storage['scanlogin.phone'];
  assert.ok(kept && kept.token && kept.expiresAt > Date.now() + 29 * 86400 * 1000, JSON.stringify(kept));

  const second = await open();
  assert.equal(calledPath(second, '/api/mp/login') + calledPath(second, '/api/mp/renew'), 0, 'the stored token is used');
  assert.equal(storage['scanlogin.phone'].token, kept.token);

  // Two days left of thirty: renewed, the old token ends.
  storage['scanlogin.phone'] = { ...kept, expiresAt: Date.now() + 2 * 86400 * 1000 };
  const third = await open();
  assert.equal(calledPath(third, '/api/mp/renew'), 1);
  const renewed = storage['scanlogin.phone'].token;
  assert.notEqual(renewed, kept.token);
  const old = await new Browser(base).post('/api/mp/web-sessions', { token: kept.token });
  assert.equal(old.status, 401);

  // WeChat's own login of the person ended (wx.checkSession fails): a fresh wx.login.
  const fourth = await open({ sessionValid: false });
  assert.deepEqual(fourth.calls.slice(0, 1), ['checkSession']);
  assert.equal(calledPath(fourth, '/api/mp/login'), 1);
  assert.notEqual(storage['scanlogin.phone'].token, renewed);

  // A token the server no longer knows is made again, once.
  storage['scanlogin.phone'] = { token: 'stale-token-of-another-day', expiresAt: Date.now() + 20 * 86400 * 1000 };
  const fifth = await open();
  assert.deepEqual(fifth.requests.map((r) => r.url.replace(base, '')), ['/api/mp/web-sessions', '/api/mp/login', '/api/mp/web-sessions']);
  assert.equal(fifth.data.sessions.length, 2);
}));

test('退出 signs one browser out at once, 全部退出 the rest; another person is untouched', () => withServer({}, async ({ base }) => {
  const browsers = [];
  for (let i = 0; i < 3; i++) browsers.push(await signedInBrowser(base, 'lisi'));
  const other = await signedInBrowser(base, 'zhangsan');
  const page = openPage({ base, wechat: base, user: 'lisi', page: 'sessions' });
  page.load({});
  await page.until((d) => d.phase === 'ready', 'the list');
  assert.equal(page.data.sessions.length, 3);
  await page.page.signOut({ currentTarget: { dataset: { id: page.data.sessions[0].id } } });
  assert.equal(page.data.sessions.length, 2);
  assert.equal(page.data.motto, '已退出该网页');
  const states = await Promise.all(browsers.map(signedIn));
  assert.equal(states.filter((s) => !s).length, 1, 'one browser signed out: ' + states);

  await sleep(20);
  assert.equal(page.tap('全部退出'), true);
  await page.until((d) => d.motto === '已全部退出', 'the sign-out of all');
  assert.equal(page.data.sessions.length, 0);
  assert.deepEqual(await Promise.all(browsers.map(signedIn)), [false, false, false]);
  assert.equal(await signedIn(other), true, 'zhangsan is still signed in');
}));

test('a person who never signed in to a site is told so', () => withServer({}, async ({ base }) => {
  const page = openPage({ base, wechat: base, user: 'wangwu', page: 'sessions' });
  page.load({});
  await page.until((d) => d.phase === 'error', 'the refusal');
  assert.equal(page.data.motto, '你还没有用微信扫码登录过网站');
  assert.equal(page.page.data.sessions.length, 0);
}));

// Number matching (LOGIN_NUMBER_MATCH=true): three numbers on the phone, one shown in the browser.
test('number matching: 点击登录 waits for a pick, a wrong one may be picked again, the right one confirms', () => withServer({ LOGIN_NUMBER_MATCH: 'true' }, async ({ base }) => {
  const browser = new Browser(base);
  const ticket = await newTicket(browser);
  const phone = openPage({ base, wechat: base, user: 'zhangsan' });
  phone.load({ scene: ticket });
  await phone.until(scanned, 'the scan');
  assert.equal(phone.data.choices.length, 3);
  const shown = (await ticketState(browser, ticket)).number;
  assert.ok(phone.data.choices.includes(shown), `${shown} in ${phone.data.choices}`);
  await sleep(20);
  assert.equal(phone.tap('点击登录'), false, 'no pick yet: 点击登录 is disabled');

  const wrong = phone.data.choices.find((n) => n !== shown);
  phone.page.pick({ currentTarget: { dataset: { n: String(wrong) } } });
  await sleep(20);
  assert.equal(phone.tap('点击登录'), true);
  await phone.until((d) => d.motto === '数字不对，请选择网页上显示的数字', 'the refusal');
  assert.equal(phone.data.phase, 'ready');
  assert.equal(phone.data.picked, 0, 'the pick is cleared');
  assert.equal((await ticketState(browser, ticket)).status, 'scanned');

  phone.page.pick({ currentTarget: { dataset: { n: String(shown) } } });
  await sleep(20);
  assert.equal(phone.tap('点击登录'), true);
  await phone.until((d) => d.phase === 'done', 'the confirm');
  assert.equal(phone.data.motto, '已确认，请返回浏览器');
  assert.equal((await ticketState(browser, ticket)).status, 'confirmed');
  const confirms = phone.requests.filter((r) => r.url.endsWith('/api/mp/confirm'));
  assert.deepEqual(confirms.map((r) => r.data.number), [wrong, shown]);
}));

test('number matching: two wrong picks cancel the login, on the phone and in the browser', () => withServer({ LOGIN_NUMBER_MATCH: 'true' }, async ({ base }) => {
  const browser = new Browser(base);
  const ticket = await newTicket(browser);
  const phone = openPage({ base, wechat: base, user: 'lisi' });
  phone.load({ scene: ticket });
  await phone.until(scanned, 'the scan');
  const shown = (await ticketState(browser, ticket)).number;
  for (let i = 0; i < 2; i++) {
    await phone.until((d) => d.phase === 'ready', 'ready to pick');
    const wrong = phone.data.choices.find((n) => n !== shown);
    phone.page.pick({ currentTarget: { dataset: { n: String(wrong) } } });
    await sleep(20);
    assert.equal(phone.tap('点击登录'), true);
    await phone.until((d) => d.phase !== 'busy', 'the answer');
  }
  assert.equal(phone.data.phase, 'error');
  assert.equal(phone.data.motto, '此次登录已取消，请在网页上刷新后重新扫码');
  const state = await ticketState(browser, ticket);
  assert.deepEqual([state.status, state.reason], ['cancelled', 'wrong_number']);
}));
