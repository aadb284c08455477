//! User-facing text in Simplified Chinese (default) and English.
//!
//! A typed table rather than a string-keyed catalogue: a missing translation is a
//! compile error, and the same table serves the server (API error messages) and the
//! browser (the UI), so both always speak the same language for a request.

use crate::error::ErrorCode;
use serde::{Deserialize, Serialize};

/// The languages scanlogin speaks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Lang {
    /// Simplified Chinese, the default.
    #[default]
    ZhCn,
    /// English.
    En,
}

impl Lang {
    /// The BCP 47 tag, as used in `<html lang>` and the `lang` cookie.
    pub fn tag(self) -> &'static str {
        match self {
            Lang::ZhCn => "zh-CN",
            Lang::En => "en",
        }
    }

    /// Parses a tag as written by [`Lang::tag`] (case-insensitive, `zh*` and `en*`).
    pub fn from_tag(tag: &str) -> Option<Lang> {
        let tag = tag.trim().to_ascii_lowercase();
        if tag.starts_with("zh") {
            Some(Lang::ZhCn)
        } else if tag.starts_with("en") {
            Some(Lang::En)
        } else {
            None
        }
    }

    /// Picks the language from an explicit choice (the `lang` cookie) first, then the
    /// `Accept-Language` header (highest q-value among the languages we speak).
    pub fn negotiate(cookie: Option<&str>, accept_language: Option<&str>) -> Lang {
        if let Some(lang) = cookie.and_then(Lang::from_tag) {
            return lang;
        }
        let Some(header) = accept_language else {
            return Lang::default();
        };
        let mut best: Option<(f32, Lang)> = None;
        for part in header.split(',') {
            let mut pieces = part.split(';');
            let tag = pieces.next().unwrap_or("");
            let q = pieces.find_map(|p| p.trim().strip_prefix("q=")).and_then(|q| q.parse::<f32>().ok()).unwrap_or(1.0);
            if let Some(lang) = Lang::from_tag(tag)
                && best.is_none_or(|(bq, _)| q > bq)
            {
                best = Some((q, lang));
            }
        }
        best.map(|(_, l)| l).unwrap_or_default()
    }

    /// The other language, for the switch in the page header.
    pub fn other(self) -> Lang {
        match self {
            Lang::ZhCn => Lang::En,
            Lang::En => Lang::ZhCn,
        }
    }

    /// The UI text table for this language.
    pub fn ui(self) -> &'static Ui {
        match self {
            Lang::ZhCn => &ZH,
            Lang::En => &EN,
        }
    }
}

/// Every piece of UI text.
pub struct Ui {
    pub lang_name: &'static str,
    pub demo_banner: &'static str,
    pub app_name: &'static str,
    pub login_title: &'static str,
    pub sign_in_to: &'static str,
    pub login_hint: &'static str,
    pub loading_qr: &'static str,
    pub expires_in: &'static str,
    pub seconds: &'static str,
    pub scanned: &'static str,
    pub scanned_hint: &'static str,
    pub number_hint: &'static str,
    pub number_mismatch: &'static str,
    pub confirmed: &'static str,
    pub cancelled: &'static str,
    pub expired: &'static str,
    pub refresh: &'static str,
    pub retry: &'static str,
    pub reconnecting: &'static str,
    pub unknown_state: &'static str,
    pub demo_phone_hint: &'static str,
    pub open_phone: &'static str,
    pub open_in_wechat: &'static str,
    pub open_in_wechat_hint: &'static str,
    pub other_device_hint: &'static str,
    pub long_press_hint: &'static str,
    pub link_page_title: &'static str,
    pub link_page_body: &'static str,
    pub link_page_no_link: &'static str,
    pub nojs_hint: &'static str,
    pub nojs_continue: &'static str,
    pub nojs_waiting: &'static str,
    pub new_code: &'static str,
    pub account_title: &'static str,
    pub user_id: &'static str,
    pub openid: &'static str,
    pub member_since: &'static str,
    pub email: &'static str,
    pub email_unset: &'static str,
    pub email_change: &'static str,
    pub recent_logins: &'static str,
    pub login_at: &'static str,
    pub login_ip: &'static str,
    pub login_browser: &'static str,
    pub unknown_browser: &'static str,
    pub logout: &'static str,
    pub devices: &'static str,
    pub activity: &'static str,
    pub event_what: &'static str,
    pub this_device: &'static str,
    pub last_seen: &'static str,
    pub sign_out_others: &'static str,
    pub sign_out_one: &'static str,
    pub signed_out_others: &'static str,
    pub not_signed_in: &'static str,
    pub go_login: &'static str,
    pub not_found: &'static str,
    pub home: &'static str,
    pub admin_link: &'static str,
    pub admin_title: &'static str,
    pub admin_users: &'static str,
    pub admin_audit: &'static str,
    pub admin_badge: &'static str,
    pub pending_count: &'static str,
    pub search_hint: &'static str,
    pub search: &'static str,
    pub col_user: &'static str,
    pub col_status: &'static str,
    pub col_groups: &'static str,
    pub col_created: &'static str,
    pub col_last_login: &'static str,
    pub col_actions: &'static str,
    pub status_active: &'static str,
    pub status_pending: &'static str,
    pub status_disabled: &'static str,
    pub approve: &'static str,
    pub disable: &'static str,
    pub enable: &'static str,
    pub make_admin: &'static str,
    pub remove_admin: &'static str,
    pub save_groups: &'static str,
    pub filter_user: &'static str,
    pub filter_kind: &'static str,
    pub filter: &'static str,
    pub all_kinds: &'static str,
    pub account_pending: &'static str,
    pub admin_forbidden: &'static str,
    pub never: &'static str,
    pub col_detail: &'static str,
    pub admin_invitations: &'static str,
    pub change_name: &'static str,
    pub logout_question: &'static str,
    pub sign_out_everywhere: &'static str,
    pub consent_title: &'static str,
    /// `{site}`: the client's name.
    pub consent_question: &'static str,
    pub consent_scopes: &'static str,
    pub consent_allow: &'static str,
    pub consent_deny: &'static str,
    pub apps: &'static str,
    pub revoke_app: &'static str,
    pub signed_in_browsers: &'static str,
    pub col_uses: &'static str,
    pub col_expires: &'static str,
    pub revoke: &'static str,
    pub new_invitation: &'static str,
    pub max_uses: &'static str,
    pub days: &'static str,
    pub create: &'static str,
    pub revoked: &'static str,
}

const ZH: Ui = Ui {
    lang_name: "中文",
    demo_banner: "演示模式：微信接口由内置模拟器提供，请勿用于生产环境",
    app_name: "扫码登录",
    login_title: "微信扫码登录",
    sign_in_to: "登录到",
    login_hint: "请使用微信扫描小程序码登录",
    loading_qr: "正在获取小程序码…",
    expires_in: "有效期剩余",
    seconds: "秒",
    scanned: "扫码成功，请在手机上确认",
    scanned_hint: "在微信中点击「点击登录」完成登录",
    number_hint: "在手机上选择这个数字",
    number_mismatch: "手机上两次选错数字，登录已取消",
    confirmed: "登录成功，正在跳转",
    cancelled: "已在手机上取消登录",
    expired: "二维码已过期",
    refresh: "刷新",
    retry: "重试",
    reconnecting: "网络连接不稳定，正在重试…",
    unknown_state: "登录状态异常，请刷新二维码",
    demo_phone_hint: "演示：在另一个窗口打开二维码中的链接，模拟手机扫码",
    open_phone: "打开模拟手机",
    open_in_wechat: "在微信中打开",
    open_in_wechat_hint: "打开微信小程序确认登录，确认后返回此页面即可",
    other_device_hint: "也可以用另一台手机的微信扫描下方二维码",
    long_press_hint: "也可长按二维码识别",
    link_page_title: "在微信中登录",
    link_page_body: "这是一个网站的登录码。用微信扫一扫扫描它，或在这台手机上点击下方按钮，在微信小程序中确认登录。",
    link_page_no_link: "请用微信“扫一扫”扫描网站上的二维码。",
    nojs_hint: "页面没有自动跳转？在手机上确认登录后，点击“继续”。",
    nojs_continue: "继续",
    nojs_waiting: "还没有在手机上确认登录。请在微信中点击「点击登录」，然后再点“继续”。",
    new_code: "换一个二维码",
    admin_link: "用户管理",
    admin_title: "用户管理",
    admin_users: "用户",
    admin_audit: "审计日志",
    admin_badge: "管理员",
    pending_count: "待批准",
    search_hint: "姓名或编号",
    search: "搜索",
    col_user: "用户",
    col_status: "状态",
    col_groups: "分组",
    col_created: "注册时间",
    col_last_login: "最近登录",
    col_actions: "操作",
    status_active: "正常",
    status_pending: "待批准",
    status_disabled: "已停用",
    approve: "批准",
    disable: "停用",
    enable: "启用",
    make_admin: "设为管理员",
    remove_admin: "取消管理员",
    save_groups: "保存分组",
    filter_user: "用户编号",
    filter_kind: "事件",
    filter: "筛选",
    all_kinds: "全部",
    account_pending: "你的账号正在等待管理员批准：批准之前，受保护的网站不会让你进入。",
    admin_forbidden: "只有管理员可以查看此页面。",
    never: "从未",
    col_detail: "详情",
    admin_invitations: "邀请",
    change_name: "修改昵称",
    sign_out_everywhere: "退出所有设备",
    consent_title: "授权登录",
    consent_question: "允许「{site}」使用你的账号登录吗？以后它可以直接让你登录，不再询问；你可以在“我的账号”里撤销。",
    consent_scopes: "它将得到：你的编号，以及 ",
    consent_allow: "允许",
    consent_deny: "拒绝",
    apps: "已授权的应用",
    revoke_app: "撤销授权",
    signed_in_browsers: "个设备在线",
    logout_question: "一个网站请求让你退出登录。要退出 scanlogin 的登录吗？（退出后，用它登录的其他网站也需要重新扫码。）",
    col_uses: "已用 / 人数",
    col_expires: "有效期至",
    revoke: "撤销",
    new_invitation: "新建邀请",
    max_uses: "人数",
    days: "天数",
    create: "生成邀请链接",
    revoked: "已撤销",
    account_title: "我的账号",
    user_id: "用户编号",
    openid: "OpenID",
    member_since: "注册时间",
    email: "邮箱",
    email_unset: "未设置",
    email_change: "设置邮箱",
    recent_logins: "最近登录",
    login_at: "时间",
    login_ip: "IP 地址",
    login_browser: "浏览器",
    unknown_browser: "未知浏览器",
    logout: "退出登录",
    devices: "已登录的设备",
    activity: "账号活动",
    event_what: "事件",
    this_device: "本设备",
    last_seen: "最近活动",
    sign_out_others: "退出其他设备",
    sign_out_one: "退出",
    signed_out_others: "已退出其他设备",
    not_signed_in: "你尚未登录",
    go_login: "去登录",
    not_found: "页面不存在",
    home: "返回首页",
};

const EN: Ui = Ui {
    lang_name: "English",
    demo_banner: "Demo mode: WeChat is played by a built-in simulator. Not for production.",
    app_name: "Scan to sign in",
    login_title: "Sign in with WeChat",
    sign_in_to: "Sign in to",
    login_hint: "Scan the mini-program code with WeChat to sign in",
    loading_qr: "Fetching the code…",
    expires_in: "Expires in",
    seconds: "s",
    scanned: "Scanned. Please confirm on your phone",
    scanned_hint: "Tap 点击登录 in WeChat to finish",
    number_hint: "Pick this number on the phone",
    number_mismatch: "The wrong number was picked twice on the phone; sign-in cancelled",
    confirmed: "Signed in, redirecting",
    cancelled: "Sign-in was cancelled on the phone",
    expired: "The code has expired",
    refresh: "Refresh",
    retry: "Retry",
    reconnecting: "Connection unstable, retrying…",
    unknown_state: "Unexpected sign-in state; please refresh the code",
    demo_phone_hint: "Demo: open the code's link in another window to play the phone",
    open_phone: "Open simulated phone",
    open_in_wechat: "Open in WeChat",
    open_in_wechat_hint: "Confirm in the WeChat mini program, then come back to this page",
    other_device_hint: "Or scan the code below with WeChat on another phone",
    long_press_hint: "You can also long-press the code",
    link_page_title: "Sign in with WeChat",
    link_page_body: "This is a website's sign-in code. Scan it with WeChat, or tap the button below on this phone to confirm in the WeChat mini program.",
    link_page_no_link: "Scan the code on the website with WeChat's Scan.",
    nojs_hint: "Page not moving on? Confirm on your phone, then press Continue.",
    nojs_continue: "Continue",
    nojs_waiting: "Not confirmed on the phone yet. Tap 点击登录 in WeChat, then press Continue again.",
    new_code: "Get a new code",
    admin_link: "Users",
    admin_title: "Users",
    admin_users: "Users",
    admin_audit: "Audit trail",
    admin_badge: "Admin",
    pending_count: "pending",
    search_hint: "Name or id",
    search: "Search",
    col_user: "User",
    col_status: "Status",
    col_groups: "Groups",
    col_created: "Joined",
    col_last_login: "Last login",
    col_actions: "Actions",
    status_active: "Active",
    status_pending: "Pending",
    status_disabled: "Disabled",
    approve: "Approve",
    disable: "Disable",
    enable: "Enable",
    make_admin: "Make admin",
    remove_admin: "Remove admin",
    save_groups: "Save groups",
    filter_user: "User id",
    filter_kind: "Event",
    filter: "Filter",
    all_kinds: "All",
    account_pending: "Your account is waiting for an administrator's approval: until then, protected sites will not let you in.",
    admin_forbidden: "Only administrators can see this page.",
    never: "never",
    col_detail: "Detail",
    admin_invitations: "Invitations",
    change_name: "Change name",
    sign_out_everywhere: "Sign out everywhere",
    consent_title: "Allow sign-in",
    consent_question: "Allow “{site}” to sign you in with your account? It will then sign you in without asking; you can withdraw this on My account.",
    consent_scopes: "It will get: your id, and ",
    consent_allow: "Allow",
    consent_deny: "Deny",
    apps: "Sites you allowed",
    revoke_app: "Withdraw",
    signed_in_browsers: "browsers signed in",
    logout_question: "A site asks to sign you out. Sign out of scanlogin? (Other sites you signed in to with it will need a new scan.)",
    col_uses: "Used / uses",
    col_expires: "Valid until",
    revoke: "Revoke",
    new_invitation: "New invitation",
    max_uses: "Uses",
    days: "Days",
    create: "Make the link",
    revoked: "revoked",
    account_title: "My account",
    user_id: "User id",
    openid: "OpenID",
    member_since: "Member since",
    email: "Email",
    email_unset: "Not set",
    email_change: "Set email",
    recent_logins: "Recent sign-ins",
    login_at: "Time",
    login_ip: "IP address",
    login_browser: "Browser",
    unknown_browser: "Unknown browser",
    logout: "Sign out",
    devices: "Signed-in devices",
    activity: "Account activity",
    event_what: "Event",
    this_device: "This device",
    last_seen: "Last active",
    sign_out_others: "Sign out other devices",
    sign_out_one: "Sign out",
    signed_out_others: "Other devices signed out",
    not_signed_in: "You are not signed in",
    go_login: "Sign in",
    not_found: "Page not found",
    home: "Home",
};

/// What an audit event is called on the account page, in `lang`.
pub fn event_label(kind: &str, lang: Lang) -> &'static str {
    let (zh, en) = match kind {
        "sign_in" => ("扫码登录", "Signed in by scan"),
        "logout" => ("退出登录", "Signed out"),
        "revoke_others" => ("退出其他设备", "Signed out other devices"),
        "scan_refused" => ("扫码被拒绝", "Scan refused"),
        "confirm_refused" => ("确认被拒绝", "Confirm refused"),
        "oidc_code" => ("授权应用登录", "Sign-in granted to a site"),
        "oidc_tokens" => ("应用取得令牌", "Site received tokens"),
        "admin_setup" => ("通过设置链接成为管理员", "Became admin by setup link"),
        "user_updated" => ("管理员修改了账号", "Account changed by an admin"),
        "access_denied" => ("访问被拒绝", "Access denied"),
        "invitation_created" => ("生成邀请", "Invitation made"),
        "invitation_revoked" => ("撤销邀请", "Invitation revoked"),
        "invitation_used" => ("通过邀请加入", "Joined by invitation"),
        "profile_refused" => ("昵称被拒绝", "Nickname refused"),
        "oidc_consent" => ("授权应用登录", "Allowed a site"),
        "oidc_consent_revoked" => ("撤销应用授权", "Withdrew a site"),
        "phone_sign_out" => ("在手机上退出网页登录", "Signed browsers out from the phone"),
        "email_sent" => ("发送邮箱验证邮件", "Sent an email verification"),
        "email_verified" => ("邮箱已验证", "Email verified"),
        _ => ("其他", "Other"),
    };
    match lang {
        Lang::ZhCn => zh,
        Lang::En => en,
    }
}

/// Text of the server's own small pages about people and access (the setup link, refusals
/// of protected sites): server-only, so the browser's WASM carries none of it.
#[cfg(feature = "ssr")]
pub struct PeopleText {
    pub setup_title: &'static str,
    pub setup_body: &'static str,
    pub setup_button: &'static str,
    pub setup_done: &'static str,
    pub to_account: &'static str,
    pub pending_site: &'static str,
    pub disabled_site: &'static str,
    pub denied_title: &'static str,
    /// `{site}` is replaced by the host.
    pub denied_body: &'static str,
    pub signed_in_as: &'static str,
    pub sign_out: &'static str,
    pub invite_title: &'static str,
    /// `{who}`: the inviter's name.
    pub invite_body: &'static str,
    /// `{groups}`: the groups it gives.
    pub invite_groups: &'static str,
    pub invite_accept: &'static str,
    pub invite_scan: &'static str,
    pub invite_made: &'static str,
    pub email_title: &'static str,
    /// `{site}`: the site that asks for one.
    pub email_required: &'static str,
    /// `{email}`: the current address.
    pub email_current: &'static str,
    pub email_none: &'static str,
    pub email_placeholder: &'static str,
    pub email_send: &'static str,
    /// `{email}`: where the mail went.
    pub email_sent: &'static str,
    pub email_off: &'static str,
    pub email_verified: &'static str,
    pub email_continue: &'static str,
    pub demo_mailbox: &'static str,
}

#[cfg(feature = "ssr")]
impl Lang {
    /// The people pages' text in this language.
    pub fn people(self) -> &'static PeopleText {
        match self {
            Lang::ZhCn => &PEOPLE_ZH,
            Lang::En => &PEOPLE_EN,
        }
    }
}

#[cfg(feature = "ssr")]
static PEOPLE_ZH: PeopleText = PeopleText {
    setup_title: "成为管理员",
    setup_body: "这是一次性的设置链接：点击下面的按钮，当前登录的微信用户将成为本站的管理员。",
    setup_button: "成为管理员",
    setup_done: "你现在是管理员了。",
    to_account: "我的账号",
    pending_site: "你的账号正在等待管理员批准，批准后即可访问。",
    disabled_site: "你的账号已被停用。",
    denied_title: "无法访问",
    denied_body: "你没有访问 {site} 的权限 — 请联系管理员",
    signed_in_as: "当前登录：",
    sign_out: "退出登录",
    invite_title: "邀请",
    invite_body: "{who} 邀请你使用本站",
    invite_groups: "（分组：{groups}）",
    invite_accept: "接受邀请",
    invite_scan: "扫码登录并接受邀请",
    invite_made: "邀请链接已生成。它只显示这一次：请现在复制，或让对方用微信扫描下面的二维码。",
    email_title: "邮箱",
    email_required: "「{site}」需要你的邮箱地址才能登录。验证后会自动继续。",
    email_current: "当前邮箱：{email}（已验证）",
    email_none: "还没有邮箱。有些网站（如 Grafana、Gitea）需要它。",
    email_placeholder: "name@example.com",
    email_send: "发送验证邮件",
    email_sent: "验证邮件已发送到 {email}。请在 24 小时内打开邮件中的链接。",
    email_off: "本站没有配置邮件发送，暂时不能添加邮箱。",
    email_verified: "邮箱已验证。",
    email_continue: "继续",
    demo_mailbox: "打开演示邮箱",
};

#[cfg(feature = "ssr")]
static PEOPLE_EN: PeopleText = PeopleText {
    setup_title: "Become an administrator",
    setup_body: "This is a one-time setup link: press the button and the WeChat user signed in now becomes this site's administrator.",
    setup_button: "Become administrator",
    setup_done: "You are an administrator now.",
    to_account: "My account",
    pending_site: "Your account is waiting for an administrator's approval.",
    disabled_site: "Your account is disabled.",
    denied_title: "No access",
    denied_body: "You may not enter {site} — ask an administrator",
    signed_in_as: "Signed in as",
    sign_out: "Sign out",
    invite_title: "Invitation",
    invite_body: "{who} invites you to this site",
    invite_groups: " (groups: {groups})",
    invite_accept: "Accept the invitation",
    invite_scan: "Sign in by scanning to accept",
    invite_made: "The invitation link is ready. It is shown only this once: copy it now, or let the person scan the QR below with WeChat.",
    email_title: "Email",
    email_required: "{site} needs your email address to sign you in. Once it is verified, you go on by yourself.",
    email_current: "Your email: {email} (verified)",
    email_none: "No email yet. Some sites (Grafana, Gitea …) need one.",
    email_placeholder: "name@example.com",
    email_send: "Send a verification mail",
    email_sent: "A verification mail went to {email}. Open its link within 24 hours.",
    email_off: "This site sends no mail, so no email can be added for now.",
    email_verified: "Your email address is verified.",
    email_continue: "Continue",
    demo_mailbox: "Open the demo mailbox",
};

/// The message of an API error, in `lang`. Every code has one in each language.
pub fn error_message(code: ErrorCode, lang: Lang) -> &'static str {
    use ErrorCode::*;
    let (zh, en) = match code {
        BadRequest => ("请求格式不正确", "The request is malformed"),
        InvalidWxCode => ("微信登录凭证无效或已使用，请重新扫码", "The WeChat login code is invalid or already used; please scan again"),
        Unauthenticated => ("请先登录", "Please sign in first"),
        NotScanner => ("只有扫码的微信用户可以确认或取消此次登录", "Only the WeChat user who scanned can confirm or cancel this sign-in"),
        CrossSite => ("拒绝来自其他网站的请求", "Requests from other sites are refused"),
        TicketNotFound => ("登录二维码不存在或已失效", "This sign-in code does not exist or is no longer valid"),
        NotFound => ("接口不存在", "No such endpoint"),
        MethodNotAllowed => ("请求方法不被允许", "Method not allowed"),
        AlreadyScanned => ("该二维码已被其他微信用户扫描", "This code was already scanned by another WeChat user"),
        NotConfirmed => ("请先在手机上确认登录", "Please confirm on the phone first"),
        AlreadyConfirmed => ("此次登录已确认", "This sign-in was already confirmed"),
        TicketCancelled => ("此次登录已取消", "This sign-in was cancelled"),
        TicketUsed => ("此次登录已完成，二维码不能重复使用", "This sign-in is complete; the code cannot be used again"),
        TicketExpired => ("二维码已过期，请在网页上刷新", "The code has expired; refresh it on the website"),
        PayloadTooLarge => ("请求内容过大", "The request body is too large"),
        UnsupportedMediaType => ("请求内容类型必须是 JSON", "The request body must be JSON"),
        RateLimited => ("操作太频繁，请稍后再试", "Too many requests; please try again later"),
        WechatUnavailable => ("微信服务暂时不可用，请稍后重试", "WeChat is unavailable right now; please try again"),
        Busy => ("当前登录人数过多，请稍后再试", "Too many sign-ins in progress; please try again shortly"),
        AccountDisabled => ("你的账号已被管理员停用，无法登录", "Your account has been disabled by an administrator"),
        InvitationRequired => (
            "本站仅限受邀用户注册，请向管理员索取邀请链接",
            "Sign-up here is by invitation only; ask an administrator for an invitation link",
        ),
        Forbidden => ("你没有权限进行此操作", "You are not allowed to do this"),
        LastAdmin => ("不能停用或降级最后一位管理员", "The last administrator cannot be disabled or demoted"),
        LinkInvalid => ("链接无效、已使用或已过期", "This link is unknown, already used or expired"),
        UserNotFound => ("用户不存在", "No such user"),
        NicknameRejected => {
            ("该昵称未通过微信内容安全检测，请换一个", "WeChat's content check refused this nickname; please choose another")
        }
        BadImage => ("头像须为 1 MB 以内的 PNG 或 JPEG 图片", "The avatar must be a PNG or JPEG image of at most 1 MB"),
        WrongNumber => ("数字不对，请选择网页上显示的数字", "Wrong number: pick the one the web page shows"),
        InvalidEmail => ("这不是一个有效的邮箱地址", "That is not a valid email address"),
        EmailTaken => ("这个邮箱已属于另一个账号", "This email address belongs to another account"),
        MailUnavailable => ("暂时无法发送邮件，请稍后再试", "Mail cannot be sent right now; try again later"),
        WechatQuota => ("微信接口调用已达上限，请稍后再试", "WeChat is rate limiting us; please try again later"),
        Internal => ("服务器内部错误，请稍后重试", "Internal server error; please try again"),
        Network => ("无法连接服务器", "Cannot reach the server"),
        Unknown => ("未知错误", "Unknown error"),
    };
    match lang {
        Lang::ZhCn => zh,
        Lang::En => en,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_prefers_cookie_then_highest_q() {
        assert_eq!(Lang::negotiate(Some("en"), Some("zh-CN")), Lang::En);
        assert_eq!(Lang::negotiate(None, Some("en-US,en;q=0.9")), Lang::En);
        assert_eq!(Lang::negotiate(None, Some("fr, en;q=0.5, zh;q=0.8")), Lang::ZhCn);
        assert_eq!(Lang::negotiate(None, Some("fr")), Lang::ZhCn);
        assert_eq!(Lang::negotiate(Some("xx"), None), Lang::ZhCn);
    }
}
