// A small runtime for the mini program's own files: `wx`, `Page`, `require` and a WXML
// reader, enough to run pages/login/index.js unchanged against a real scanlogin server.
//
// What it imitates from WeChat, because the page must cope with it:
// - wx.request calls `success` for every HTTP status (4xx/5xx included) and `fail` only
//   when no answer came;
// - setData renders asynchronously: two quick taps can both reach a handler before the
//   button shows as disabled;
// - a tap fires the element's `bindtap` handler, never on a disabled or hidden button.
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const vm = require('node:vm');
const { spawn } = require('node:child_process');

const MP = path.resolve(__dirname, '..');
const ROOT = path.resolve(MP, '..');
const SERVER = process.env.SCANLOGIN_BIN || path.join(ROOT, 'target', 'debug', 'scanlogin');

/** Starts a demo-mode server on a free port with its own database. */
async function startServer(env = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scanlogin-mp-'));
  const childEnv = { ...process.env, LISTEN: '127.0.0.1:0', DATABASE_URL: `sqlite://${dir}/db.sqlite`, RUST_LOG: 'info', NO_COLOR: '1', ...env };
  for (const k of Object.keys(childEnv)) if (k.startsWith('WECHAT_')) delete childEnv[k];
  const child = spawn(SERVER, [], { cwd: ROOT, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  const base = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('server did not start:\n' + log)), 20000);
    const onData = (chunk) => {
      log += chunk;
      const m = /listening on http:\/\/([0-9.]+:\d+)/.exec(log);
      if (m) {
        clearTimeout(timer);
        resolve('http://' + m[1]);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (code) => reject(new Error(`server exited (${code}):\n${log}`)));
  });
  return {
    base,
    async stop() {
      child.kill('SIGKILL');
      await new Promise((r) => (child.exitCode !== null ? r() : child.on('exit', r)));
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A browser with its own cookie jar, speaking the JSON API. */
class Browser {
  constructor(base) {
    this.base = base;
    this.cookies = new Map();
  }
  async post(p, body) {
    const res = await fetch(this.base + p, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json',
        'user-agent': 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36',
        cookie: [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; '),
      },
      body: JSON.stringify(body),
    });
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const i = pair.indexOf('=');
      const [k, v] = [pair.slice(0, i).trim(), pair.slice(i + 1).trim()];
      if (v === '' || /max-age=0/i.test(c)) this.cookies.delete(k);
      else this.cookies.set(k, v);
    }
    return { status: res.status, body: await res.json() };
  }
}

/** Calls the simulator's test hooks (the "WeChat" side). */
async function sim(base, p, body) {
  const res = await fetch(base + '/_wechat' + p, body === undefined ? {} : {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return res.json();
}

// --- WXML: enough of it to find buttons, their handlers and their conditions. -------

function evalBinding(expr, data) {
  const m = /^\s*\{\{([\s\S]*)\}\}\s*$/.exec(expr);
  if (!m) return expr;
  // eslint-disable-next-line no-new-func
  return new Function('data', `with (data) { return (${m[1]}); }`)(data);
}

function parseAttrs(s) {
  const attrs = {};
  for (const m of s.matchAll(/([\w:-]+)="([^"]*)"/g)) attrs[m[1]] = m[2];
  return attrs;
}

/** Buttons with their text, attributes and the `wx:if`s of their ancestors. */
function readButtons(wxml) {
  const out = [];
  const stack = [];
  const re = /<(\/?)([a-zA-Z-]+)([^>]*?)(\/?)>/g;
  let m;
  while ((m = re.exec(wxml))) {
    const [, closing, tag, rawAttrs, selfClosing] = m;
    if (closing) {
      stack.pop();
      continue;
    }
    const attrs = parseAttrs(rawAttrs);
    if (tag === 'button') {
      const end = wxml.indexOf('</button>', re.lastIndex);
      out.push({ text: wxml.slice(re.lastIndex, end).trim(), attrs, conditions: stack.map((e) => e['wx:if']).filter(Boolean) });
    }
    if (!selfClosing) stack.push(attrs);
  }
  return out;
}

// --- The page runtime. ---------------------------------------------------------------

/**
 * Loads pages/<page>/index (login unless said) in a fresh context with its own `wx`.
 * `base`: where wx.request goes (the scanlogin server per config.js); `wechat`: where
 * wx.login gets codes (the simulator); `user`: the WeChat user holding the phone.
 */
function openPage({ base, wechat, user, page: name = 'login', storage: kept, sessionValid = true }) {
  const requests = [];
  const calls = [];
  // `kept`: storage shared with an earlier page (the mini program's storage outlives pages).
  const storage = kept || {};
  storage['scanlogin.baseUrl'] = base;
  const wx = {
    getAccountInfoSync: () => ({ miniProgram: { envVersion: 'develop', appId: 'touristappid' } }),
    getStorageSync: (k) => (k in storage ? storage[k] : ''),
    setStorageSync: (k, v) => { storage[k] = JSON.parse(JSON.stringify(v)); },
    removeStorageSync: (k) => { delete storage[k]; },
    checkSession({ success, fail }) { calls.push('checkSession'); (sessionValid ? success : fail)({}); },
    navigateTo({ url }) { calls.push('navigateTo ' + url); },
    login({ success, fail }) {
      sim(wechat, '/sim/wx-login', { user }).then(
        (d) => success && success({ code: d.code, errMsg: 'login:ok' }),
        (e) => fail && fail({ errMsg: 'login:fail ' + e.message }),
      );
    },
    request({ url, method = 'GET', data, header = {}, timeout = 60000, success, fail, complete }) {
      requests.push({ url, data });
      const body = data === undefined ? undefined : typeof data === 'string' ? data : JSON.stringify(data);
      fetch(url, { method, headers: header, body, signal: AbortSignal.timeout(timeout) })
        .then(async (res) => {
          const text = await res.text();
          let parsed = text;
          try { parsed = JSON.parse(text); } catch (e) { /* WeChat leaves non-JSON as a string */ }
          return { statusCode: res.status, data: parsed, header: Object.fromEntries(res.headers) };
        })
        .then(
          (res) => { success && success(res); complete && complete(res); },
          (e) => { const r = { errMsg: 'request:fail ' + e.message }; fail && fail(r); complete && complete(r); },
        );
      return { abort() {} };
    },
    exitMiniProgram() { calls.push('exitMiniProgram'); },
    navigateBack() { calls.push('navigateBack'); },
  };

  let definition = null;
  const context = vm.createContext({
    wx,
    Page: (d) => { definition = d; },
    App: () => {},
    getApp: () => ({}),
    console, setTimeout, clearTimeout, Promise, Date, JSON, Math,
  });
  const cache = new Map();
  const load = (file) => {
    if (cache.has(file)) return cache.get(file).exports;
    const module = { exports: {} };
    cache.set(file, module);
    const code = fs.readFileSync(file, 'utf8');
    const fn = vm.runInContext(`(function (require, module, exports) {${code}\n})`, context, { filename: file });
    fn((p) => load(path.resolve(path.dirname(file), p.endsWith('.js') ? p : p + '.js')), module, module.exports);
    return module.exports;
  };
  load(path.join(MP, 'pages', name, 'index.js'));
  if (!definition) throw new Error('the page did not call Page()');

  const wxml = fs.readFileSync(path.join(MP, 'pages', name, 'index.wxml'), 'utf8');
  const page = Object.create(null);
  for (const [k, v] of Object.entries(definition)) if (typeof v === 'function') page[k] = v;
  page.data = JSON.parse(JSON.stringify(definition.data || {}));
  let rendered = JSON.parse(JSON.stringify(page.data));
  page.setData = function (patch) {
    Object.assign(this.data, patch);
    const snapshot = JSON.parse(JSON.stringify(this.data));
    setTimeout(() => { rendered = snapshot; }, 16); // the view updates a frame later
  };

  return {
    page,
    requests,
    calls,
    storage,
    get data() { return page.data; },
    /** What the view shows now (a frame behind setData). */
    get view() { return rendered; },
    load(options) { return page.onLoad.call(page, options); },
    buttons() {
      return readButtons(wxml).map((b) => ({
        text: b.text,
        handler: b.attrs.bindtap,
        visible: b.conditions.every((c) => evalBinding(c, rendered)) && (!b.attrs['wx:if'] || !!evalBinding(b.attrs['wx:if'], rendered)),
        disabled: b.attrs.disabled !== undefined && !!evalBinding(b.attrs.disabled, rendered),
      }));
    },
    /** Taps the button labelled `text`; returns false when it is hidden or disabled. */
    tap(text) {
      const b = this.buttons().find((x) => x.text === text);
      if (!b) throw new Error(`no button ${text}`);
      if (!b.visible || b.disabled) return false;
      page[b.handler].call(page, { type: 'tap', currentTarget: { dataset: {} } });
      return true;
    },
    async until(pred, what, timeout = 10000) {
      const t0 = Date.now();
      while (!pred(page.data)) {
        if (Date.now() - t0 > timeout) throw new Error(`timed out waiting for ${what}; data: ${JSON.stringify(page.data)}`);
        await new Promise((r) => setTimeout(r, 20));
      }
      await new Promise((r) => setTimeout(r, 40)); // let the view catch up
    },
  };
}

module.exports = { startServer, Browser, sim, openPage, readButtons };
