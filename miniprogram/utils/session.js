// The mini program's own login (the seed's 自定义登录态): one wx.login, then our opaque
// token, kept with wx.setStorageSync and renewed before it expires. wx.checkSession is
// respected: once WeChat's own login of this person has ended, the token is made again
// from a fresh wx.login. A token the server refuses (401: expired, renewed elsewhere, or
// the person was disabled) is dropped and made again once.
const api = require('./api.js');

const KEY = 'scanlogin.phone';
// Renewed when less than this is left of its 30 days.
const RENEW_BEFORE_MS = 3 * 86400 * 1000;

function stored() {
  try {
    const v = wx.getStorageSync(KEY);
    return v && typeof v === 'object' && v.token ? v : null;
  } catch (e) {
    return null;
  }
}

function save(res) {
  const v = { token: res.token, expiresAt: Date.now() + res.expires_in * 1000, name: res.name };
  try {
    wx.setStorageSync(KEY, v);
  } catch (e) { /* storage full: the token lives for this run only */ }
  return v;
}

function forget() {
  try {
    wx.removeStorageSync(KEY);
  } catch (e) { /* nothing stored */ }
}

/** Whether WeChat's login of this person (its session_key) is still valid. */
function checkSession() {
  return new Promise((resolve) => {
    if (!wx.checkSession) return resolve(true);
    wx.checkSession({ success: () => resolve(true), fail: () => resolve(false) });
  });
}

/** A token from a fresh wx.login. */
function fresh() {
  forget();
  return api.login().then((code) => api.phoneLogin(code)).then(save);
}

/** Our token: the stored one, renewed when it is near its end, or a fresh one. */
function ensure() {
  const s = stored();
  return checkSession().then((valid) => {
    const left = s ? s.expiresAt - Date.now() : 0;
    if (!s || !valid || left <= 0) return fresh();
    if (left > RENEW_BEFORE_MS) return s;
    return api.renew(s.token).then(save, () => fresh());
  });
}

/** Runs `call(token)`; a token the server no longer knows is made again, once. */
function withToken(call) {
  return ensure().then((s) =>
    call(s.token).catch((err) => {
      if (!err || err.status !== 401) throw err;
      return fresh().then((again) => call(again.token));
    }),
  );
}

module.exports = { ensure, withToken, forget, KEY, RENEW_BEFORE_MS };
