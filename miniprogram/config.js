// Where the scanlogin server is, per version of the mini program.
//
// WeChat only lets wx.request reach HTTPS domains whitelisted in the admin console
// (开发管理 → 开发设置 → 服务器域名 → request 合法域名); no IPs or localhost in trial or
// release. In the developer tools, with "不校验合法域名" ticked, `develop` may point at a LAN
// address, and a develop build may override it at runtime by saving a URL under the
// storage key `scanlogin.baseUrl` (handy for a phone on the same network).
const BASE_URL = {
  develop: 'http://127.0.0.1:3000',
  trial: 'https://staging.example.com',
  release: 'https://example.com',
};

function envVersion() {
  try {
    return wx.getAccountInfoSync().miniProgram.envVersion || 'release';
  } catch (e) {
    return 'release';
  }
}

function baseUrl() {
  const env = envVersion();
  if (env === 'develop') {
    try {
      const override = wx.getStorageSync('scanlogin.baseUrl');
      if (override) return String(override).replace(/\/+$/, '');
    } catch (e) { /* no storage: use the default */ }
  }
  return BASE_URL[env] || BASE_URL.release;
}

module.exports = { baseUrl, envVersion };
