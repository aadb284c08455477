//! `/admin` (users) and `/admin/audit` (the audit trail): the admin console. Server HTML
//! only, like the account page: every action is a small form posting to `/admin/user`
//! (same-site checked), and search and filters are GET forms, so the console needs no
//! WASM and works without JavaScript. Its data comes from the same server functions as
//! the JSON admin API.

use crate::api::admin::{admin_audit, admin_invitations, admin_users};
use crate::app::use_ui;
use crate::domain::{UserId, UserStatus};
use crate::error::ErrorCode;
use crate::i18n::Ui;
use crate::model::AdminUserView;
use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

fn show_time(rfc3339: &str) -> String {
    rfc3339.replacen('T', " ", 1).replace('Z', " UTC")
}

/// A status as people read it.
pub fn status_label(status: UserStatus, ui: &Ui) -> &'static str {
    match status {
        UserStatus::Active => ui.status_active,
        UserStatus::Pending => ui.status_pending,
        UserStatus::Disabled => ui.status_disabled,
    }
}

/// The refusal a non-admin sees (403 on the server).
fn refused(code: ErrorCode, ui: &'static Ui) -> AnyView {
    #[cfg(feature = "ssr")]
    if let Some(res) = use_context::<leptos_axum::ResponseOptions>() {
        res.set_status(axum::http::StatusCode::from_u16(code.status()).unwrap_or(axum::http::StatusCode::FORBIDDEN));
    }
    let _ = code;
    view! { <p data-testid="admin-forbidden">{ui.admin_forbidden}</p> }.into_any()
}

/// The console's header: its two pages and the count of users waiting for approval.
#[component]
fn AdminNav(pending: i64) -> impl IntoView {
    let ui = use_ui();
    view! {
        <nav class="admin-nav">
            <a href="/admin" rel="external">{ui.admin_users}</a>
            " · "
            <a href="/admin/invitations" rel="external">{ui.admin_invitations}</a>
            " · "
            <a href="/admin/audit" rel="external">{ui.admin_audit}</a>
            " "
            <span class="tag" data-testid="pending-count">{format!("{} {pending}", ui.pending_count)}</span>
        </nav>
    }
}

/// `/admin`: every user, searchable by name or id, with their actions.
#[component]
pub fn AdminPage() -> impl IntoView {
    let ui = use_ui();
    let q = use_query_map().get_untracked().get("q").unwrap_or_default();
    let list = Resource::new(|| (), |_| admin_users());
    view! {
        <section class="card admin-card">
            <h1>{ui.admin_title}</h1>
            <Suspense fallback=|| view! { <p class="muted">"…"</p> }>
                {move || {
                    let q = q.clone();
                    Suspend::new(async move {
                        match list.await {
                            Ok(l) => {
                                let needle = q.trim().to_lowercase();
                                let users: Vec<AdminUserView> = l
                                    .users
                                    .into_iter()
                                    .filter(|u| needle.is_empty() || u.name.to_lowercase().contains(&needle) || u.id.to_string() == needle)
                                    .collect();
                                view! {
                                    <AdminNav pending=l.pending />
                                    <form method="get" action="/admin" class="inline-form search">
                                        <input type="search" name="q" value=q.clone() placeholder=ui.search_hint data-testid="search" />
                                        <button type="submit" class="button secondary">{ui.search}</button>
                                    </form>
                                    <UserTable users />
                                }
                                .into_any()
                            }
                            Err(e) => refused(e.code, ui),
                        }
                    })
                }}
            </Suspense>
        </section>
    }
}

/// One form button posting an action for user `id`.
fn action(id: UserId, what: &'static str, label: &'static str, class: &'static str) -> impl IntoView {
    view! {
        <form method="post" action="/admin/user" class="inline-form">
            <input type="hidden" name="id" value=id.to_string() />
            <button type="submit" name="action" value=what class=class data-testid=format!("{what}-{id}")>{label}</button>
        </form>
    }
}

#[component]
fn UserTable(users: Vec<AdminUserView>) -> impl IntoView {
    let ui = use_ui();
    view! {
        <table class="logins admin-users" data-testid="users">
            <thead>
                <tr>
                    <th>{ui.col_user}</th><th>{ui.col_status}</th><th>{ui.col_groups}</th>
                    <th>{ui.col_created}</th><th>{ui.col_last_login}</th><th>{ui.col_actions}</th>
                </tr>
            </thead>
            <tbody>
                {users.into_iter().map(|u| {
                    let id = u.id;
                    let groups = u.groups.iter().map(|g| g.as_str()).collect::<Vec<_>>().join(",");
                    let initial = u.name.chars().next().map(String::from).unwrap_or_default();
                    view! {
                        <tr id=format!("user-{id}") data-testid=format!("user-{id}")>
                            <td>
                                <span class="avatar small" aria-hidden="true">{initial}</span>
                                " " {u.name.clone()} " " <span class="muted">"#"{id.0}</span>
                                {u.admin.then(|| view! { " " <span class="tag">{ui.admin_badge}</span> })}
                                {u.email.clone().map(|e| view! { <br /><span class="muted" data-testid=format!("email-{id}")>{e}</span> })}
                            </td>
                            <td data-testid=format!("status-{id}")>{status_label(u.status, ui)}</td>
                            <td>
                                <form method="post" action="/admin/user" class="inline-form">
                                    <input type="hidden" name="id" value=id.to_string() />
                                    <input type="text" name="groups" value=groups size="14" data-testid=format!("groups-{id}") />
                                    <button type="submit" name="action" value="groups" class="button secondary">{ui.save_groups}</button>
                                </form>
                            </td>
                            <td>{show_time(&u.created_at)}</td>
                            <td>
                                {u.last_login_at.as_deref().map(show_time).unwrap_or_else(|| ui.never.to_string())}
                                <br /><a class="muted" href=format!("/admin/sessions?user={id}") rel="external" data-testid=format!("sessions-{id}")>{format!("{} {}", u.sessions, ui.signed_in_browsers)}</a>
                            </td>
                            <td class="actions">
                                {match u.status {
                                    UserStatus::Pending => view! {
                                        {action(id, "approve", ui.approve, "button")}
                                        {action(id, "disable", ui.disable, "button secondary")}
                                    }.into_any(),
                                    UserStatus::Active => action(id, "disable", ui.disable, "button secondary").into_any(),
                                    UserStatus::Disabled => action(id, "enable", ui.enable, "button secondary").into_any(),
                                }}
                                {if u.admin {
                                    action(id, "remove_admin", ui.remove_admin, "button secondary").into_any()
                                } else {
                                    action(id, "make_admin", ui.make_admin, "button secondary").into_any()
                                }}
                                {(u.sessions > 0).then(|| action(id, "sign_out", ui.sign_out_everywhere, "button secondary"))}
                            </td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
    }
}

/// `/admin/sessions?user=<id>`: one person's signed-in browsers (browser, IP, when, which
/// sites), each with 退出 (a form posting `sign_out_session`).
#[component]
pub fn SessionsPage() -> impl IntoView {
    let ui = use_ui();
    let id = UserId(use_query_map().get_untracked().get("user").and_then(|u| u.parse().ok()).unwrap_or(0));
    let list = Resource::new(|| (), move |_| crate::api::admin::admin_user_sessions(id));
    view! {
        <section class="card admin-card">
            <h1>{ui.admin_title}</h1>
            <Suspense fallback=|| view! { <p class="muted">"…"</p> }>
                {move || Suspend::new(async move {
                    match list.await {
                        Ok(l) => view! {
                            <AdminNav pending=l.pending />
                            <h2>{format!("#{id} · {}", ui.devices)}</h2>
                            <table class="logins" data-testid="user-sessions">
                                <thead><tr><th>{ui.login_browser}</th><th>{ui.login_ip}</th><th>{ui.login_at}</th><th>{ui.last_seen}</th><th></th></tr></thead>
                                <tbody>
                                    {l.sessions.into_iter().map(|s| view! {
                                        <tr>
                                            <td>{s.browser}{(!s.sites.is_empty()).then(|| view! { <br /><span class="muted">{s.sites.join(", ")}</span> })}</td>
                                            <td>{s.ip}</td>
                                            <td>{show_time(&s.signed_in_at)}</td>
                                            <td>{show_time(&s.last_seen)}</td>
                                            <td>
                                                <form method="post" action="/admin/user" class="inline-form">
                                                    <input type="hidden" name="id" value=id.to_string() />
                                                    <input type="hidden" name="session" value=s.id.clone() />
                                                    <button type="submit" name="action" value="sign_out_session" class="button secondary" data-testid="sign-out-session">{ui.sign_out_one}</button>
                                                </form>
                                            </td>
                                        </tr>
                                    }).collect_view()}
                                </tbody>
                            </table>
                            <p><a href="/admin" rel="external">{ui.admin_users}</a></p>
                        }.into_any(),
                        Err(e) => refused(e.code, ui),
                    }
                })}
            </Suspense>
        </section>
    }
}

/// `/admin/invitations`: make one (a form whose answer shows the link and its QR once),
/// see each one's uses, revoke one.
#[component]
pub fn InvitationsPage() -> impl IntoView {
    let ui = use_ui();
    let list = Resource::new(|| (), |_| admin_invitations());
    view! {
        <section class="card admin-card">
            <h1>{ui.admin_invitations}</h1>
            <Suspense fallback=|| view! { <p class="muted">"…"</p> }>
                {move || Suspend::new(async move {
                    match list.await {
                        Ok(l) => view! {
                            <AdminNav pending=l.pending />
                            <h2>{ui.new_invitation}</h2>
                            <form method="post" action="/admin/invite" class="inline-form search" data-testid="new-invitation">
                                <label>{ui.col_groups}" " <input type="text" name="groups" size="14" placeholder="ops, dev" /></label>
                                <label>{ui.max_uses}" " <input type="number" name="max_uses" value="1" min="1" max="10000" /></label>
                                <label>{ui.days}" " <input type="number" name="days" value="7" min="1" max="90" /></label>
                                <button type="submit" class="button">{ui.create}</button>
                            </form>
                            <table class="logins admin-users" data-testid="invitations">
                                <thead><tr><th>"#"</th><th>{ui.col_groups}</th><th>{ui.col_uses}</th><th>{ui.col_expires}</th><th>{ui.col_actions}</th></tr></thead>
                                <tbody>
                                    {l.invitations.into_iter().map(|i| {
                                        let groups = i.groups.iter().map(|g| g.as_str()).collect::<Vec<_>>().join(", ");
                                        view! {
                                            <tr data-testid=format!("invitation-{}", i.id)>
                                                <td>{i.id}</td>
                                                <td>{groups}</td>
                                                <td data-testid=format!("uses-{}", i.id)>{format!("{} / {}", i.uses, i.max_uses)}</td>
                                                <td>{show_time(&i.expires_at)}{i.revoked_at.is_some().then(|| view! { " " <span class="tag">{ui.revoked}</span> })}</td>
                                                <td>
                                                    {i.usable.then(|| view! {
                                                        <form method="post" action="/admin/invitation/revoke" class="inline-form">
                                                            <input type="hidden" name="id" value=i.id.to_string() />
                                                            <button type="submit" class="button secondary" data-testid=format!("revoke-{}", i.id)>{ui.revoke}</button>
                                                        </form>
                                                    })}
                                                </td>
                                            </tr>
                                        }
                                    }).collect_view()}
                                </tbody>
                            </table>
                        }.into_any(),
                        Err(e) => refused(e.code, ui),
                    }
                })}
            </Suspense>
        </section>
    }
}

/// The event kinds the filter offers.
const KINDS: [&str; 14] = [
    "sign_in",
    "logout",
    "revoke_others",
    "scan_refused",
    "confirm_refused",
    "oidc_code",
    "oidc_tokens",
    "admin_setup",
    "user_updated",
    "access_denied",
    "invitation_created",
    "invitation_revoked",
    "invitation_used",
    "",
];

/// `/admin/audit?user=&kind=`: the audit trail, filtered.
#[component]
pub fn AuditPage() -> impl IntoView {
    let ui = use_ui();
    let lang = crate::app::use_page_env().lang;
    let query = use_query_map().get_untracked();
    let user_text = query.get("user").unwrap_or_default();
    let user = user_text.trim().parse::<i64>().ok().map(UserId);
    let kind = query.get("kind").filter(|k| KINDS.contains(&k.as_str()) && !k.is_empty());
    let list = Resource::new(move || (), {
        let kind = kind.clone();
        move |_| admin_audit(user, kind.clone())
    });
    view! {
        <section class="card admin-card">
            <h1>{ui.admin_audit}</h1>
            <Suspense fallback=|| view! { <p class="muted">"…"</p> }>
                {move || {
                    let (user_text, kind) = (user_text.clone(), kind.clone().unwrap_or_default());
                    Suspend::new(async move {
                        match list.await {
                            Ok(l) => view! {
                                <AdminNav pending=l.pending />
                                <form method="get" action="/admin/audit" class="inline-form search">
                                    <label>{ui.filter_user}" " <input type="text" name="user" value=user_text size="6" /></label>
                                    " "
                                    <label>{ui.filter_kind}" "
                                        <select name="kind">
                                            {KINDS.iter().rev().map(|k| {
                                                let label = if k.is_empty() { ui.all_kinds } else { crate::i18n::event_label(k, lang) };
                                                view! { <option value=*k selected=kind == *k>{label}</option> }
                                            }).collect_view()}
                                        </select>
                                    </label>
                                    " "
                                    <button type="submit" class="button secondary">{ui.filter}</button>
                                </form>
                                <table class="logins" data-testid="audit">
                                    <thead><tr><th>{ui.login_at}</th><th>{ui.event_what}</th><th>{ui.col_user}</th><th>{ui.login_ip}</th><th>{ui.col_detail}</th></tr></thead>
                                    <tbody>
                                        {l.events.into_iter().map(|e| view! {
                                            <tr>
                                                <td>{show_time(&e.at)}</td>
                                                <td>{crate::i18n::event_label(&e.kind, lang)}</td>
                                                <td>{e.user.map(|u| format!("#{u}")).unwrap_or_default()}</td>
                                                <td>{e.ip}</td>
                                                <td>{e.site}</td>
                                            </tr>
                                        }).collect_view()}
                                    </tbody>
                                </table>
                            }.into_any(),
                            Err(e) => refused(e.code, ui),
                        }
                    })
                }}
            </Suspense>
        </section>
    }
}
