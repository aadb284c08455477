//! `/login`: the mini-program code, following its ticket by long-poll, and finalizing
//! when the phone confirms.

use super::{navigate, sleep_ms};
use crate::api::browser::{create_ticket, finalize_login, login_status, me};
use crate::app::{PageEnv, use_ui};
use crate::error::{AppError, ErrorCode};
use crate::model::TicketStatus;
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::hooks::use_query_map;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// What the QR box shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Loading,
    Live(TicketStatus),
    Failed(ErrorCode),
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Loading => "loading",
            Phase::Live(TicketStatus::Waiting) => "waiting",
            Phase::Live(TicketStatus::Scanned) => "scanned",
            Phase::Live(TicketStatus::Confirmed | TicketStatus::Consumed) => "confirmed",
            Phase::Live(TicketStatus::Cancelled) => "cancelled",
            Phase::Live(TicketStatus::Expired) => "expired",
            Phase::Live(TicketStatus::Unknown) | Phase::Failed(_) => "error",
        }
    }
}

/// Everything the background loop touches. `alive` turns false when the page unmounts;
/// `run` counts refreshes so an old loop stops when a new ticket replaces its own.
#[derive(Clone)]
struct Flow {
    next: Option<String>,
    phase: RwSignal<Phase>,
    qr: RwSignal<Option<String>>,
    ticket: RwSignal<Option<String>>,
    remaining: RwSignal<u64>,
    reconnecting: RwSignal<bool>,
    alive: Arc<AtomicBool>,
    run: Arc<AtomicU64>,
}

/// Backoff after `n` consecutive failures: 0.5 s, 1 s, 2 s … capped at 10 s.
fn backoff_ms(n: u32) -> u32 {
    (500u32 << n.min(5).saturating_sub(1)).min(10_000)
}

fn quietly_retryable(code: ErrorCode) -> bool {
    matches!(code, ErrorCode::Network | ErrorCode::Internal | ErrorCode::Unknown | ErrorCode::RateLimited)
}

impl Flow {
    fn current(&self, run: u64) -> bool {
        self.alive.load(Ordering::SeqCst) && self.run.load(Ordering::SeqCst) == run
    }

    fn start(&self) {
        let run = self.run.fetch_add(1, Ordering::SeqCst) + 1;
        let flow = self.clone();
        spawn_local(async move { flow.drive(run).await });
    }

    /// Waits after a failure; says so once failures pile up.
    async fn pause(&self, err: &AppError, failures: u32) {
        if failures >= 3 {
            self.reconnecting.set(true);
        }
        let ms = err.retry_after.map(|s| (s.min(60) * 1000) as u32).unwrap_or_else(|| backoff_ms(failures));
        sleep_ms(ms).await;
    }

    async fn drive(self, run: u64) {
        self.phase.set(Phase::Loading);
        self.qr.set(None);
        self.reconnecting.set(false);
        let mut failures = 0;
        let issued = loop {
            match create_ticket(self.next.clone()).await {
                Ok(t) => break t,
                Err(e) if quietly_retryable(e.code) && failures < 6 => {
                    failures += 1;
                    self.pause(&e, failures).await;
                    if !self.current(run) {
                        return;
                    }
                }
                Err(e) => {
                    if self.current(run) {
                        self.reconnecting.set(false);
                        self.phase.set(Phase::Failed(e.code));
                    }
                    return;
                }
            }
        };
        if !self.current(run) {
            return;
        }
        self.reconnecting.set(false);
        self.qr.set(Some(issued.qr));
        self.ticket.set(Some(issued.ticket.clone()));
        self.remaining.set(issued.expires_in);
        self.phase.set(Phase::Live(TicketStatus::Waiting));
        self.tick(run);

        let mut seen = 1;
        failures = 0;
        loop {
            // After a failure, ask with seen = 0: the server answers at once, so the page
            // knows it is connected again instead of waiting out a quiet long-poll.
            let answer = login_status(issued.ticket.clone(), if failures > 0 { 0 } else { seen }).await;
            if !self.current(run) {
                return;
            }
            match answer {
                Ok(s) => {
                    failures = 0;
                    self.reconnecting.set(false);
                    seen = s.version;
                    self.remaining.set(s.expires_in);
                    self.phase.set(Phase::Live(s.status));
                    match s.status {
                        TicketStatus::Waiting | TicketStatus::Scanned => {}
                        TicketStatus::Confirmed => return self.finish(&issued.ticket).await,
                        // Finalized already (e.g. a lost answer): proceed if signed in.
                        TicketStatus::Consumed => return self.proceed_if_signed_in().await,
                        TicketStatus::Cancelled | TicketStatus::Expired => return,
                        // Fail closed on anything this build does not know.
                        TicketStatus::Unknown => return,
                    }
                }
                // Purged, or the session is gone (e.g. cookies cleared): a new code is needed.
                Err(e) if matches!(e.code, ErrorCode::TicketNotFound | ErrorCode::TicketExpired) => {
                    self.phase.set(Phase::Live(TicketStatus::Expired));
                    return;
                }
                Err(e) if quietly_retryable(e.code) || e.code == ErrorCode::WechatUnavailable => {
                    failures += 1;
                    self.pause(&e, failures).await;
                }
                Err(e) => {
                    self.phase.set(Phase::Failed(e.code));
                    return;
                }
            }
        }
    }

    /// The countdown, one second at a time, while this run lives.
    fn tick(&self, run: u64) {
        let flow = self.clone();
        spawn_local(async move {
            loop {
                sleep_ms(1000).await;
                if !flow.current(run) {
                    return;
                }
                match flow.phase.get_untracked() {
                    Phase::Live(TicketStatus::Waiting | TicketStatus::Scanned) => {
                        flow.remaining.update(|r| *r = r.saturating_sub(1))
                    }
                    _ => return,
                }
            }
        });
    }

    async fn finish(&self, ticket: &str) {
        let mut failures = 0;
        loop {
            match finalize_login(ticket.to_string()).await {
                Ok(f) => return navigate(&f.next),
                // A retry after a lost answer: the first finalize may have signed us in.
                Err(e) if e.code == ErrorCode::TicketUsed => return self.proceed_if_signed_in().await,
                Err(e) if quietly_retryable(e.code) && failures < 5 => {
                    failures += 1;
                    self.pause(&e, failures).await;
                }
                Err(e) => return self.phase.set(Phase::Failed(e.code)),
            }
        }
    }

    async fn proceed_if_signed_in(&self) {
        match me().await {
            Ok(_) => navigate(self.next.as_deref().unwrap_or("/account")),
            Err(e) => self.phase.set(Phase::Failed(e.code)),
        }
    }
}

/// The login page.
#[component]
pub fn LoginPage() -> impl IntoView {
    let ui = use_ui();
    let env = use_context::<PageEnv>().unwrap_or_default();
    let next = use_query_map().get_untracked().get("next");
    let flow = Flow {
        next,
        phase: RwSignal::new(Phase::Loading),
        qr: RwSignal::new(None),
        ticket: RwSignal::new(None),
        remaining: RwSignal::new(0),
        reconnecting: RwSignal::new(false),
        alive: Arc::new(AtomicBool::new(true)),
        run: Arc::new(AtomicU64::new(0)),
    };
    // The ticket is made from the browser after hydration: creating it binds the
    // browser's session, and a cookie set while a page streams would be lost.
    Effect::new({
        let flow = flow.clone();
        move |_| flow.start()
    });
    on_cleanup({
        let alive = flow.alive.clone();
        move || alive.store(false, Ordering::SeqCst)
    });

    let Flow { phase, qr, ticket, remaining, reconnecting, .. } = flow.clone();
    let restart = move |_| flow.start();
    let overlay = move || {
        let (title, sub, button): (&str, Option<&str>, bool) = match phase.get() {
            Phase::Loading | Phase::Live(TicketStatus::Waiting) => return None,
            Phase::Live(TicketStatus::Scanned) => (ui.scanned, Some(ui.scanned_hint), false),
            Phase::Live(TicketStatus::Confirmed | TicketStatus::Consumed) => (ui.confirmed, None, false),
            Phase::Live(TicketStatus::Cancelled) => (ui.cancelled, None, true),
            Phase::Live(TicketStatus::Expired) => (ui.expired, None, true),
            Phase::Live(TicketStatus::Unknown) => (ui.unknown_state, None, true),
            Phase::Failed(code) => (code.message(env.lang), None, true),
        };
        let label = if matches!(phase.get(), Phase::Failed(_)) { ui.retry } else { ui.refresh };
        Some(view! {
            <div class="overlay" role="status">
                <p class="overlay-title" data-testid="overlay-title">{title}</p>
                {sub.map(|s| view! { <p class="overlay-sub">{s}</p> })}
                {button.then(|| view! { <button class="button" data-testid="refresh" on:click=restart.clone()>{label}</button> })}
            </div>
        })
    };
    let phone_link = move || {
        ticket.get().filter(|_| env.demo && phase.get() == Phase::Live(TicketStatus::Waiting)).map(|t| {
            view! {
                <p class="demo-hint">
                    {ui.demo_phone_hint}" · "
                    <a href=format!("/_wechat/phone?scene={t}") target="_blank" rel="noopener">{ui.open_phone}</a>
                </p>
            }
        })
    };
    view! {
        <section class="card login-card">
            <h1>{ui.login_title}</h1>
            <p class="muted">{ui.login_hint}</p>
            <div class=move || format!("qr-box state-{}", phase.get().name()) data-state=move || phase.get().name() data-testid="qr-box">
                {move || match (qr.get(), phase.get()) {
                    (Some(src), _) => view! { <img class="qr" src=src alt=ui.login_title data-testid="qr" /> }.into_any(),
                    (None, Phase::Loading) => view! { <div class="qr-placeholder"><span class="spinner"></span>{ui.loading_qr}</div> }.into_any(),
                    (None, _) => ().into_any(),
                }}
                {overlay}
            </div>
            <p class="countdown" data-testid="countdown">
                {move || matches!(phase.get(), Phase::Live(TicketStatus::Waiting | TicketStatus::Scanned))
                    .then(|| format!("{} {} {}", ui.expires_in, remaining.get(), ui.seconds))}
            </p>
            <p class="notice" data-testid="reconnecting">{move || reconnecting.get().then_some(ui.reconnecting)}</p>
            {phone_link}
        </section>
    }
}
