// The scanlogin endpoints the phone calls, as promises. wx.request fires `success` for
// every HTTP status, so the status code decides; `fail` means no answer came at all.
const config = require('../config.js');

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
        const data = res.data && typeof res.data === 'object' ? res.data : {};
        if (res.statusCode === 200) {
          resolve(data);
        } else {
          reject({ code: data.code || 'http_' + res.statusCode, message: data.message || '', status: res.statusCode });
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

module.exports = {
  login,
  scan: (ticket, code) => request('/api/mp/scan', { ticket, code }),
  confirm: (ticket, confirmToken) => request('/api/mp/confirm', { ticket, confirm_token: confirmToken }),
  cancel: (ticket, confirmToken) => request('/api/mp/cancel', { ticket, confirm_token: confirmToken }),
};
