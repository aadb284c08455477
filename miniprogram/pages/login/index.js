// The web-login page: opened by scanning a website's code (options.scene = the ticket),
// by a URL Link from a phone's browser (options.scene again), or by a link code (options.q).
// On load it identifies the user (wx.login → /api/mp/scan) and shows who asks to sign
// in; 点击登录 confirms, 取消 cancels. A person without a profile yet is offered
// 头像昵称填写 (chooseAvatar, a nickname input) above 点击登录: optional, 跳过 hides it.
const api = require('../../utils/api.js');
const { formatTime } = require('../../utils/format.js');

// What the person reads for each error code of the server's contract.
const MOTTO = {
  ticket_expired: '二维码已过期，请在网页上刷新后重新扫码',
  ticket_not_found: '二维码无效或已失效，请在网页上刷新后重新扫码',
  ticket_used: '此次登录已完成，二维码不能重复使用',
  ticket_cancelled: '此次登录已取消，请在网页上刷新后重新扫码',
  already_scanned: '该二维码已被其他微信用户扫描',
  already_confirmed: '此次登录已确认',
  not_scanner: '只有扫码的微信用户可以确认此次登录，请重新扫码',
  invalid_wx_code: '微信登录凭证无效，请重试',
  rate_limited: '操作太频繁，请稍后重试',
  wechat_unavailable: '微信服务暂时不可用，请稍后重试',
  wechat_quota: '微信服务繁忙，请稍后重试',
  network: '网络连接失败，请检查网络后重试',
  server_unavailable: '服务暂时不可用，请稍后重试',
  bad_scene: '二维码内容无效，请在网页上刷新后重新扫码',
  wx_login: '微信登录失败，请重试',
  account_disabled: '你的账号已被管理员停用，无法登录',
  invitation_required: '本站仅限受邀用户注册，请向管理员索取邀请链接',
  wrong_number: '数字不对，请选择网页上显示的数字',
  pick_number: '请先选择网页上显示的数字',
};
// What the profile step says when saving fails (the login itself goes on).
const PROFILE_ERROR = {
  nickname_rejected: '该昵称未通过微信内容安全检测，请换一个',
  bad_request: '昵称须为 1–32 个字符',
  bad_image: '头像须为 1 MB 以内的图片，请换一张',
  payload_too_large: '头像须为 1 MB 以内的图片，请换一张',
};
// Errors worth a 重试 button (trying again may work).
const RETRYABLE = ['network', 'server_unavailable', 'wechat_unavailable', 'wechat_quota', 'busy', 'rate_limited', 'invalid_wx_code', 'wx_login', 'internal'];

/** The ticket in a scan's `scene`, or null when it cannot be one. */
function sceneTicket(scene) {
  let ticket;
  try {
    ticket = decodeURIComponent(scene);
  } catch (e) {
    return null; // a malformed escape such as "%E4%"
  }
  return /^[A-Za-z0-9_-]{1,32}$/.test(ticket) ? ticket : null;
}

/**
 * The ticket as the launch carried it, still URL-encoded: `scene` from a mini-program
 * code, or from a URL Link's query (WeChat passes an appended `cq`'s keys as plain query
 * keys; `cq` itself is read too, should it arrive whole); from a link code
 * (扫普通链接二维码打开小程序) `q` is the code's URL, PUBLIC_URL/q/<ticket>.
 */
function launchScene(options) {
  if (options.scene) return options.scene;
  // The first group of `pattern` in the decoded `value`; '%' (which never decodes, so
  // the page says the code is invalid) when there is none.
  const within = (value, pattern) => {
    try {
      const m = pattern.exec(decodeURIComponent(value));
      return m ? m[1] : '%';
    } catch (e) {
      return '%';
    }
  };
  if (options.q) return within(options.q, /\/q\/([^/?#]+)(?:[?#]|$)/);
  if (options.cq) return within(options.cq, /(?:^|&)scene=([^&]*)/);
  return '';
}

Page({
  data: {
    // loading | ready | busy | done | error | noscene
    phase: 'loading',
    motto: '正在确认登录信息…',
    ticket: '',
    confirmToken: '',
    requester: null,
    canRetry: false,
    // 头像昵称填写: shown while the person has neither a nickname nor an avatar.
    profileMissing: false,
    nickname: '',
    avatarUrl: '',
    profileBusy: false,
    profileNote: '',
    // Number matching: three numbers, one of them shown on the web page; 点击登录 needs
    // the person's pick (0: none yet).
    choices: [],
    picked: 0,
  },

  onLoad(options) {
    const scene = launchScene(options || {});
    if (!scene) {
      this.setData({ phase: 'noscene', motto: '请在电脑上打开网站的登录页，用微信扫描其中的小程序码进入此页面' });
      return;
    }
    const ticket = sceneTicket(scene);
    if (!ticket) {
      this.setData({ phase: 'error', motto: MOTTO.bad_scene, canRetry: false });
      return;
    }
    this.setData({ ticket });
    return this.scan();
  },

  // Identify the person and show who asks. Reopening the page scans again and gets a
  // fresh confirm token.
  scan() {
    // One scan at a time: a second tap on 重试 (or a tap during the first scan) arrives
    // before the view hides the button, and a second scan would rotate the token.
    if (this.scanning) return Promise.resolve();
    this.scanning = true;
    this.setData({ phase: 'loading', motto: '正在确认登录信息…', canRetry: false });
    return api
      .login()
      .then((code) => api.scan(this.data.ticket, code))
      .then((res) => {
        const r = res.requester;
        if (!res.confirm_token || !r) throw { code: 'server_unavailable' };
        this.setData({
          phase: 'ready',
          profileMissing: !!res.profile_missing,
          profileNote: res.account_status === 'pending' ? '你的账号需要管理员批准后才能进入受保护的网站' : '',
          confirmToken: res.confirm_token,
          choices: res.number_choices || [],
          picked: 0,
          requester: { client: r.client || '', site: r.site, browser: r.browser, ip: r.ip, time: formatTime(r.created_at) },
          motto: '请确认是你本人在上述网页发起的登录',
        });
      })
      .catch((err) => this.fail(err))
      .then(() => {
        this.scanning = false;
      });
  },

  // 头像昵称填写: the chosen avatar is uploaded at once (a temporary file).
  onChooseAvatar(e) {
    const path = e && e.detail && e.detail.avatarUrl;
    if (!path || this.data.phase !== 'ready') return Promise.resolve();
    this.setData({ avatarUrl: path, profileBusy: true, profileNote: '' });
    return api
      .uploadAvatar(this.data.ticket, this.data.confirmToken, path)
      .then(() => this.setData({ profileBusy: false, profileNote: '头像已保存' }))
      .catch((err) => this.profileFailed(err));
  },

  onNickname(e) {
    this.setData({ nickname: (e && e.detail && e.detail.value) || '' });
  },

  // 保存: the nickname (WeChat's input has already checked it; the server checks again).
  saveProfile() {
    const nickname = (this.data.nickname || '').trim();
    if (this.data.profileBusy || this.data.phase !== 'ready') return Promise.resolve();
    if (!nickname) {
      this.setData({ profileNote: '请输入昵称，或点击跳过' });
      return Promise.resolve();
    }
    this.setData({ profileBusy: true, profileNote: '' });
    return api
      .profile(this.data.ticket, this.data.confirmToken, nickname)
      .then((res) => this.setData({ profileBusy: false, profileMissing: false, profileNote: '资料已保存：' + res.name }))
      .catch((err) => this.profileFailed(err));
  },

  // 跳过: no profile now (the account page can set the name later).
  skipProfile() {
    this.setData({ profileMissing: false, profileNote: '' });
  },

  profileFailed(err) {
    const code = (err && err.code) || 'internal';
    this.setData({ profileBusy: false, profileNote: PROFILE_ERROR[code] || MOTTO[code] || '保存失败，可以跳过，直接登录' });
  },

  // Number matching: the person picks the number the web page shows.
  pick(e) {
    const n = Number(e && e.currentTarget && e.currentTarget.dataset && e.currentTarget.dataset.n);
    if (this.data.phase !== 'ready' || this.data.choices.indexOf(n) < 0) return;
    this.setData({ picked: n, motto: '请确认是你本人在上述网页发起的登录' });
  },

  // 点击登录
  getUserLogin() {
    if (this.data.choices.length && !this.data.picked) {
      this.setData({ motto: MOTTO.pick_number });
      return Promise.resolve();
    }
    const number = this.data.choices.length ? this.data.picked : undefined;
    // WeChat cannot switch back to the browser: the person goes back themselves, and the
    // page there finalizes (it re-polls as soon as it is in the foreground again).
    return this.finish((ticket, token) => api.confirm(ticket, token, number), '已确认，请返回浏览器');
  },

  // 取消
  cancelLogin() {
    return this.finish(api.cancel, '已取消');
  },

  finish(call, doneMotto) {
    // setData updates this.data at once (the view follows later), so a second tap
    // that arrives before the button shows as disabled stops here: one request.
    if (this.data.phase !== 'ready') return Promise.resolve();
    this.setData({ phase: 'busy' });
    return call(this.data.ticket, this.data.confirmToken)
      .then(() => this.setData({ phase: 'done', motto: doneMotto, canRetry: false }))
      .catch((err) => {
        // A wrong number may be picked again (the server cancels after the second).
        if (err && err.code === 'wrong_number') return this.setData({ phase: 'ready', picked: 0, motto: MOTTO.wrong_number });
        return this.fail(err);
      });
  },

  retry() {
    if (this.data.phase !== 'error') return Promise.resolve();
    return this.scan();
  },

  // 「我的网页登录」: the browsers signed in as this person.
  openSessions() {
    wx.navigateTo({ url: '/pages/sessions/index' });
  },

  backToWeChat() {
    if (wx.exitMiniProgram) wx.exitMiniProgram({});
    else wx.navigateBack({ delta: 1 });
  },

  fail(err) {
    const code = (err && err.code) || 'internal';
    this.setData({
      phase: 'error',
      motto: MOTTO[code] || (err && err.message) || '登录失败，请重试',
      canRetry: RETRYABLE.indexOf(code) >= 0,
    });
  },
});
