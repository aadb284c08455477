// 「我的网页登录」: every browser signed in as this person — browser, IP, when, which
// sites — with 退出 on each and 全部退出, for the shared computer someone forgot to
// sign out of. The browser is signed out at once, on every instance of the server.
const api = require('../../utils/api.js');
const session = require('../../utils/session.js');
const { formatTime } = require('../../utils/format.js');

const MOTTO = {
  user_not_found: '你还没有用微信扫码登录过网站',
  account_disabled: '你的账号已被管理员停用',
  not_found: '该网页登录已经结束',
  network: '网络连接失败，请检查网络后重试',
  rate_limited: '操作太频繁，请稍后重试',
  wechat_unavailable: '微信服务暂时不可用，请稍后重试',
  wx_login: '微信登录失败，请重试',
};

Page({
  data: {
    // loading | ready | error
    phase: 'loading',
    motto: '正在读取…',
    sessions: [],
    // More than one browser: 全部退出 is offered.
    several: false,
    busy: false,
  },

  onLoad() {
    return this.refresh();
  },

  refresh() {
    this.setData({ phase: 'loading', motto: '正在读取…' });
    return session
      .withToken((token) => api.webSessions(token))
      .then((res) => {
        const sessions = (res.sessions || []).map((s) => ({
          id: s.id,
          browser: s.browser,
          ip: s.ip,
          signedInAt: formatTime(s.signed_in_at),
          lastSeen: formatTime(s.last_seen),
          sites: (s.sites || []).join('、'),
        }));
        this.setData({ phase: 'ready', busy: false, sessions, several: sessions.length > 1, motto: sessions.length ? '' : '没有已登录的网页' });
      })
      .catch((err) => this.fail(err));
  },

  // 退出 on one browser.
  signOut(e) {
    const id = e && e.currentTarget && e.currentTarget.dataset && e.currentTarget.dataset.id;
    if (!id || this.data.busy) return Promise.resolve();
    this.setData({ busy: true });
    return session
      .withToken((token) => api.signOut(token, id))
      .then(() => this.refresh(), (err) => (err && err.code === 'not_found' ? this.refresh() : this.fail(err)))
      .then(() => this.data.phase === 'ready' && this.setData({ motto: this.data.sessions.length ? '已退出该网页' : '已退出，没有已登录的网页' }));
  },

  // 全部退出.
  signOutAll() {
    if (this.data.busy) return Promise.resolve();
    this.setData({ busy: true });
    return session
      .withToken((token) => api.signOutAll(token))
      .then(() => this.refresh())
      .then(() => this.data.phase === 'ready' && this.setData({ motto: '已全部退出' }))
      .catch((err) => this.fail(err));
  },

  fail(err) {
    const code = (err && err.code) || 'internal';
    this.setData({ phase: 'error', busy: false, motto: MOTTO[code] || '读取失败，请重试' });
  },
});
