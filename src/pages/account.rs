//! `/account`: who is signed in, recent logins, signed-in browsers, sign out. All of it
//! server HTML: the two buttons are forms (`POST /logout`, `POST
//! /account/sign-out-others`), so the page needs no WASM and works without JavaScript.

use crate::api::browser::me;
use crate::app::use_ui;
use crate::model::MeView;
use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

/// The query parameter the page comes back with after 退出其他设备
/// (`/account?signed_out_others=1`).
pub const REVOKED_PARAM: &str = "signed_out_others";

fn show_time(rfc3339: &str) -> String {
    rfc3339.replacen('T', " ", 1).replace('Z', " UTC")
}

/// The account page (signed-out visitors are redirected by the server).
#[component]
pub fn AccountPage() -> impl IntoView {
    let ui = use_ui();
    let me = Resource::new(|| (), |_| me());
    view! {
        <section class="card account-card">
            <h1>{ui.account_title}</h1>
            <Suspense fallback=|| view! { <p class="muted">"…"</p> }>
                {move || Suspend::new(async move {
                    match me.await {
                        Ok(m) => view! { <AccountDetails m /> }.into_any(),
                        Err(_) => view! {
                            <p>{ui.not_signed_in}</p>
                            <a class="button" href="/login">{ui.go_login}</a>
                        }.into_any(),
                    }
                })}
            </Suspense>
        </section>
    }
}

#[component]
fn AccountDetails(m: MeView) -> impl IntoView {
    let ui = use_ui();
    let lang = crate::app::use_page_env().lang;
    let revoked = use_query_map().get_untracked().get(REVOKED_PARAM).is_some();
    let others = m.sessions.len() > 1;
    view! {
        <div class="profile">
            {match m.user.picture.clone() {
                Some(src) => view! { <img class="avatar" src=src alt="" data-testid="avatar" /> }.into_any(),
                None => view! { <div class="avatar" aria-hidden="true">{m.user.name.chars().next().map(String::from).unwrap_or_default()}</div> }.into_any(),
            }}
            <div>
                <div class="name" data-testid="user-name">{m.user.name.clone()}</div>
                <div class="muted">{ui.openid}": " <code data-testid="openid">{m.user.openid_masked.clone()}</code></div>
            </div>
        </div>
        {(m.user.status == crate::domain::UserStatus::Pending).then(|| view! {
            <p class="notice" data-testid="account-pending">{ui.account_pending}</p>
        })}
        {m.user.admin.then(|| view! {
            <p><a class="button secondary" href="/admin" rel="external" data-testid="admin-link">{ui.admin_link}</a></p>
        })}
        <form method="post" action="/account/name" class="inline-form rename" data-testid="rename">
            <input type="text" name="name" value=m.user.name.clone() maxlength="32" required />
            " "
            <button type="submit" class="button secondary">{ui.change_name}</button>
        </form>
        <dl class="facts">
            <div><dt>{ui.user_id}</dt><dd data-testid="user-id">{m.user.id.0}</dd></div>
            <div><dt>{ui.member_since}</dt><dd>{show_time(&m.user.created_at)}</dd></div>
            <div>
                <dt>{ui.email}</dt>
                <dd data-testid="email">
                    {m.user.email.clone().unwrap_or_else(|| ui.email_unset.to_string())}
                    " · "
                    <a href="/account/email" rel="external" data-testid="email-link">{ui.email_change}</a>
                </dd>
            </div>
        </dl>
        <h2>{ui.recent_logins}</h2>
        <table class="logins" data-testid="recent-logins">
            <thead><tr><th>{ui.login_at}</th><th>{ui.login_ip}</th><th>{ui.login_browser}</th></tr></thead>
            <tbody>
                {m.recent_logins.into_iter().map(|l| view! {
                    <tr><td>{show_time(&l.at)}</td><td>{l.ip}</td><td>{l.browser}</td></tr>
                }).collect_view()}
            </tbody>
        </table>
        <h2>{ui.devices}</h2>
        <table class="logins" data-testid="devices">
            <thead><tr><th>{ui.login_browser}</th><th>{ui.login_ip}</th><th>{ui.last_seen}</th></tr></thead>
            <tbody>
                {m.sessions.into_iter().map(|s| view! {
                    <tr>
                        <td>{s.browser}{s.current.then(|| view! { " " <span class="tag">{ui.this_device}</span> })}</td>
                        <td>{s.ip}</td>
                        <td>{show_time(&s.last_seen)}</td>
                    </tr>
                }).collect_view()}
            </tbody>
        </table>
        {(!m.apps.is_empty()).then(|| view! {
            <h2>{ui.apps}</h2>
            <table class="logins" data-testid="apps">
                <tbody>
                    {m.apps.clone().into_iter().map(|a| view! {
                        <tr>
                            <td>{a.name}</td>
                            <td>{show_time(&a.since)}</td>
                            <td>
                                <form method="post" action="/account/apps/revoke" class="inline-form">
                                    <input type="hidden" name="client" value=a.client.clone() />
                                    <button type="submit" class="button secondary" data-testid=format!("revoke-app-{}", a.client)>{ui.revoke_app}</button>
                                </form>
                            </td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        })}
        <h2>{ui.activity}</h2>
        <table class="logins" data-testid="events">
            <thead><tr><th>{ui.login_at}</th><th>{ui.event_what}</th><th>{ui.login_ip}</th><th>{ui.login_browser}</th></tr></thead>
            <tbody>
                {m.events.into_iter().map(|e| {
                    let what = crate::i18n::event_label(&e.kind, lang);
                    let what = if e.detail.is_empty() { what.to_string() } else { format!("{what} · {}", e.detail) };
                    view! { <tr><td>{show_time(&e.at)}</td><td>{what}</td><td>{e.ip}</td><td>{e.browser}</td></tr> }
                }).collect_view()}
            </tbody>
        </table>
        <p class="muted notice-ok" data-testid="revoked">{revoked.then_some(ui.signed_out_others)}</p>
        <div class="account-actions">
            {others.then(|| view! {
                <form method="post" action="/account/sign-out-others" class="inline-form">
                    <button type="submit" class="button secondary" data-testid="sign-out-others">{ui.sign_out_others}</button>
                </form>
            })}
            <form method="post" action="/logout" class="inline-form">
                <button type="submit" class="button secondary" data-testid="logout">{ui.logout}</button>
            </form>
        </div>
    }
}
