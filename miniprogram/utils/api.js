// The scanlogin endpoints the phone calls, as promises. wx.request fires `success` for
// every HTTP status, so the status code decides; `fail` means no answer came at all.
const config = require('../config.js');

/** The error code for an answer that is not ours: 429 is a limit, 5xx or a 200 that is
 *  not JSON means something between the phone and the server is failing. */
function unreadableCode(status) {
  if (status === 429) return 'rate_limited';
  if (status === 200 || status >= 500) return 'server_unavailable';
  return 'http_' + status;
}

function request(path, body) {
  return new Promise((resolve, reject) => {
    wx.request({
      url: config.baseUrl() + path,
      method: 'POST',
      data: body,
      // Accept JSON: the server treats text/html callers as form posts and redirects them.
      header: { 'Content-Type': 'application/json', Accept: 'application/json' },
      timeout: 15000,
      success(res) {
        // A JSON object is our answer; anything else (a proxy's HTML page, a captive
        // portal) is not, whatever its status says.
        const data = res.data && typeof res.data === 'object' ? res.data : null;
        if (res.statusCode === 200 && data) {
          resolve(data);
        } else if (data && data.code) {
          reject({ code: data.code, message: data.message || '', status: res.statusCode });
        } else {
          reject({ code: unreadableCode(res.statusCode), message: '', status: res.statusCode });
        }
      },
      fail(err) {
        reject({ code: 'network', message: (err && err.errMsg) || 'request:fail' });
      },
    });
  });
}

/** wx.login() → a single-use code, valid 5 minutes. */
function login() {
  return new Promise((resolve, reject) => {
    wx.login({
      success(res) {
        if (res && res.code) resolve(res.code);
        else reject({ code: 'wx_login', message: (res && res.errMsg) || 'wx.login gave no code' });
      },
      fail(err) {
        reject({ code: 'wx_login', message: (err && err.errMsg) || 'wx.login failed' });
      },
    });
  });
}

/** wx.uploadFile → POST /api/mp/avatar (multipart: ticket, confirm_token, file). */
function uploadAvatar(ticket, confirmToken, filePath) {
  return new Promise((resolve, reject) => {
    wx.uploadFile({
      url: config.baseUrl() + '/api/mp/avatar',
      filePath,
      name: 'file',
      formData: { ticket, confirm_token: confirmToken },
      header: { Accept: 'application/json' },
      timeout: 30000,
      success(res) {
        // uploadFile gives the body as text.
        let data = null;
        try {
          data = typeof res.data === 'string' ? JSON.parse(res.data) : res.data;
        } catch (e) {
          data = null;
        }
        if (res.statusCode === 200 && data && typeof data === 'object') resolve(data);
        else if (data && data.code) reject({ code: data.code, message: data.message || '', status: res.statusCode });
        else reject({ code: unreadableCode(res.statusCode), message: '', status: res.statusCode });
      },
      fail(err) {
        reject({ code: 'network', message: (err && err.errMsg) || 'uploadFile:fail' });
      },
    });
  });
}

module.exports = {
  login,
  uploadAvatar,
  profile: (ticket, confirmToken, nickname) => request('/api/mp/profile', { ticket, confirm_token: confirmToken, nickname }),
  scan: (ticket, code) => request('/api/mp/scan', { ticket, code }),
  // `number`: number matching's pick (left out when the site does not match numbers).
  confirm: (ticket, confirmToken, number) => request('/api/mp/confirm', { ticket, confirm_token: confirmToken, number }),
  cancel: (ticket, confirmToken) => request('/api/mp/cancel', { ticket, confirm_token: confirmToken }),
  // The mini program's own login (utils/session.js) and 「我的网页登录」.
  phoneLogin: (code) => request('/api/mp/login', { code }),
  renew: (token) => request('/api/mp/renew', { token }),
  webSessions: (token) => request('/api/mp/web-sessions', { token }),
  signOut: (token, session) => request('/api/mp/web-sessions/sign-out', { token, session }),
  signOutAll: (token) => request('/api/mp/web-sessions/sign-out-all', { token }),
};
