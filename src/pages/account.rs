//! `/account`: who is signed in, recent logins, sign out.

use super::navigate;
use crate::api::browser::{logout, me, revoke_other_sessions};
use crate::app::use_ui;
use crate::model::MeView;
use leptos::prelude::*;
use leptos::task::spawn_local;

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
    let busy = RwSignal::new(false);
    let sessions = RwSignal::new(m.sessions.clone());
    let revoked = RwSignal::new(false);
    let sign_out_others = move |_| {
        if busy.get_untracked() {
            return;
        }
        busy.set(true);
        spawn_local(async move {
            if revoke_other_sessions().await.is_ok() {
                sessions.update(|list| list.retain(|s| s.current));
                revoked.set(true);
            }
            busy.set(false);
        });
    };
    let sign_out = move |_| {
        if busy.get_untracked() {
            return;
        }
        busy.set(true);
        spawn_local(async move {
            let _ = logout().await;
            navigate("/login");
        });
    };
    view! {
        <div class="profile">
            <div class="avatar" aria-hidden="true">{m.user.name.chars().next().map(String::from).unwrap_or_default()}</div>
            <div>
                <div class="name" data-testid="user-name">{m.user.name.clone()}</div>
                <div class="muted">{ui.openid}": " <code data-testid="openid">{m.user.openid_masked.clone()}</code></div>
            </div>
        </div>
        <dl class="facts">
            <div><dt>{ui.user_id}</dt><dd data-testid="user-id">{m.user.id}</dd></div>
            <div><dt>{ui.member_since}</dt><dd>{show_time(&m.user.created_at)}</dd></div>
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
                {move || sessions.get().into_iter().map(|s| view! {
                    <tr>
                        <td>{s.browser}{s.current.then(|| view! { " " <span class="tag">{ui.this_device}</span> })}</td>
                        <td>{s.ip}</td>
                        <td>{show_time(&s.last_seen)}</td>
                    </tr>
                }).collect_view()}
            </tbody>
        </table>
        <p class="muted notice-ok" data-testid="revoked">{move || revoked.get().then_some(ui.signed_out_others)}</p>
        <div class="account-actions">
            {move || (sessions.get().len() > 1).then(|| view! {
                <button class="button secondary" on:click=sign_out_others disabled=move || busy.get() data-testid="sign-out-others">{ui.sign_out_others}</button>
            })}
            <button class="button secondary" on:click=sign_out disabled=move || busy.get() data-testid="logout">{ui.logout}</button>
        </div>
    }
}
