//! `/login`: the mini-program code, following its ticket by long-poll, and finalizing
//! when the phone confirms.

use super::{foreground_again, mark_hydrated, navigate, sleep_ms, unless};
use crate::api::browser::{create_ticket, finalize_login, login_status};
use crate::app::{Device, use_page_env, use_ui};
use crate::domain::{FinalizeKey, NextPath, TicketId};
use crate::error::{AppError, ErrorCode};
use crate::model::{TicketIssued, TicketStatus};
use leptos::prelude::*;
use leptos::task::spawn_local_scoped_with_cancellation;
use leptos_router::hooks::use_query_map;
use std::future::Future;

/// What the QR box shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Loading,
    Live(TicketStatus),
    Failed(ErrorCode),
}

impl Phase {
    /// The box's `data-state`: the ticket's status, or `loading` / `error`.
    fn name(self) -> &'static str {
        match self {
            Phase::Loading => "loading",
            Phase::Live(TicketStatus::Consumed) => TicketStatus::Confirmed.as_str(),
            Phase::Live(TicketStatus::Unknown) | Phase::Failed(_) => "error",
            Phase::Live(s) => s.as_str(),
        }
    }
}

/// Backoff after `n` consecutive failures: 0.5 s, 1 s, 2 s … capped at 10 s.
fn backoff_ms(n: u32) -> u32 {
    (500u32 << n.min(5).saturating_sub(1)).min(10_000)
}

/// Failures that say nothing about the ticket: try again without bothering the person.
fn quietly_retryable(code: ErrorCode) -> bool {
    matches!(code, ErrorCode::Network | ErrorCode::Internal | ErrorCode::Unknown | ErrorCode::RateLimited | ErrorCode::Busy)
}

/// The signals one login round writes. A round runs in a task spawned by an `Effect`
/// keyed on the round counter: 刷新 / 重试 starts a new round, which cancels the old
/// task, and leaving the page cancels it too.
#[derive(Clone, Copy)]
struct Flow {
    next: StoredValue<Option<NextPath>>,
    phase: RwSignal<Phase>,
    qr: RwSignal<Option<String>>,
    ticket: RwSignal<Option<TicketId>>,
    /// The site this login signs in to, when another site asked.
    client: RwSignal<Option<String>>,
    /// The link that opens the mini program on this ticket from this phone.
    open_link: RwSignal<Option<String>>,
    /// Number matching: the number to pick on the phone, while scanned.
    number: RwSignal<Option<u8>>,
    /// Why the ticket ended, when the status alone does not say (`wrong_number`).
    reason: RwSignal<Option<String>>,
    remaining: RwSignal<u64>,
    reconnecting: RwSignal<bool>,
}

impl Flow {
    /// Calls `call` until it succeeds or fails for good: a failure `retryable` accepts
    /// is retried after a pause (the server's `Retry-After`, else backoff), at most
    /// `max` times in a row; after three, the page says it is reconnecting. `call`
    /// learns how many failures came just before it.
    async fn with_retries<T, Fut>(&self, max: u32, retryable: impl Fn(ErrorCode) -> bool, call: impl Fn(u32) -> Fut) -> Result<T, AppError>
    where
        Fut: Future<Output = Result<T, AppError>>,
    {
        let mut failures = 0;
        loop {
            match call(failures).await {
                Err(e) if retryable(e.code) && failures < max => {
                    failures += 1;
                    if failures >= 3 {
                        self.reconnecting.set(true);
                    }
                    let ms =
                        e.retry_after.map(|s| u32::try_from(s.min(60) * 1000).unwrap_or(60_000)).unwrap_or_else(|| backoff_ms(failures));
                    sleep_ms(ms).await;
                }
                answer => {
                    self.reconnecting.set(false);
                    return answer;
                }
            }
        }
    }

    /// One round: a ticket (`first`, the one the server made with the page, or a new
    /// one), then its status until it is final.
    async fn run(self, first: Option<Result<TicketIssued, ErrorCode>>) {
        self.phase.set(Phase::Loading);
        self.qr.set(None);
        self.ticket.set(None);
        self.open_link.set(None);
        self.number.set(None);
        self.reason.set(None);
        let issued = match first {
            Some(Ok(t)) => t,
            Some(Err(code)) if !quietly_retryable(code) => return self.phase.set(Phase::Failed(code)),
            _ => match self.with_retries(6, quietly_retryable, |_| create_ticket(self.next.get_value())).await {
                Ok(t) => t,
                Err(e) => return self.phase.set(Phase::Failed(e.code)),
            },
        };
        self.qr.set(Some(issued.qr));
        self.ticket.set(Some(issued.ticket.clone()));
        self.client.set(issued.client.clone());
        self.open_link.set(issued.open_link.clone());
        self.remaining.set(issued.expires_in);
        self.phase.set(Phase::Live(TicketStatus::Waiting));

        let mut seen = 1;
        loop {
            let follow = |failures: u32| {
                let ticket = issued.ticket.clone();
                async move {
                    // After a failure, ask with seen = 0: the server answers at once, so the
                    // page knows it is connected again instead of waiting out a quiet poll.
                    let asked = login_status(ticket.clone(), if failures > 0 { 0 } else { seen });
                    // Back in the foreground (the person comes back from WeChat): the open
                    // request may have been frozen with the page; ask again, answered at once.
                    match unless(asked, foreground_again()).await {
                        Some(answer) => answer,
                        None => login_status(ticket, 0).await,
                    }
                }
            };
            let retryable = |c: ErrorCode| quietly_retryable(c) || c == ErrorCode::WechatUnavailable;
            match self.with_retries(u32::MAX, retryable, follow).await {
                Ok(s) => {
                    seen = s.version;
                    self.remaining.set(s.expires_in);
                    self.number.set(s.number);
                    self.reason.set(s.reason);
                    self.phase.set(Phase::Live(s.status));
                    match s.status {
                        TicketStatus::Waiting | TicketStatus::Scanned => {}
                        TicketStatus::Confirmed => return self.finish(&issued.ticket, &issued.finalize_key).await,
                        // Finalized already (e.g. a lost answer).
                        TicketStatus::Consumed => return self.proceed(),
                        // Final, or unknown to this build: fail closed.
                        TicketStatus::Cancelled | TicketStatus::Expired | TicketStatus::Unknown => return,
                    }
                }
                // Purged, or the session is gone (e.g. cookies cleared): a new code is needed.
                Err(e) if matches!(e.code, ErrorCode::TicketNotFound | ErrorCode::TicketExpired) => {
                    return self.phase.set(Phase::Live(TicketStatus::Expired));
                }
                Err(e) => return self.phase.set(Phase::Failed(e.code)),
            }
        }
    }

    /// The countdown, one second at a time, while the ticket is live.
    async fn count_down(self) {
        loop {
            sleep_ms(1000).await;
            if matches!(self.phase.get_untracked(), Phase::Live(TicketStatus::Waiting | TicketStatus::Scanned)) {
                self.remaining.update(|r| *r = r.saturating_sub(1));
            }
        }
    }

    /// Finalizes with the key that came with the ticket (kept in this task's memory
    /// only). A lost answer is simply asked again: a repeat within a minute signs in.
    async fn finish(&self, ticket: &TicketId, key: &FinalizeKey) {
        match self.with_retries(5, quietly_retryable, |_| finalize_login(ticket.clone(), Some(key.clone()))).await {
            Ok(f) => navigate(&f.next),
            // A retry after a lost answer: the first finalize may have signed us in.
            Err(e) if e.code == ErrorCode::TicketUsed => self.proceed(),
            Err(e) => self.phase.set(Phase::Failed(e.code)),
        }
    }

    /// The ticket was finalized already (a lost answer, another tab): on to `next`. Signed
    /// in, the browser lands there; if not, the server's guard sends it back here for a
    /// new code.
    fn proceed(&self) {
        navigate(self.next.get_value().as_ref().map_or(crate::domain::DEFAULT_NEXT, NextPath::as_str));
    }
}

/// The login page. The first ticket is made while the server renders the page (the
/// route renders with `SsrMode::Async`, so the cookie that binds it still reaches the
/// browser): its QR is in the first HTML, scannable before any WASM has loaded, and the
/// island takes it over.
#[component]
pub fn LoginPage() -> impl IntoView {
    // A `next` that is not a same-site path is dropped here; the server would refuse it.
    let next = use_query_map().get_untracked().get("next").and_then(|n| NextPath::try_from(n).ok());
    let first = {
        let next = next.clone();
        // The code only: the error's own serialization would set this page's status.
        Resource::new(
            || (),
            move |_| {
                let next = next.clone();
                async move { create_ticket(next).await.map_err(|e| e.code) }
            },
        )
    };
    view! {
        <Suspense>
            {move || {
                let next = next.clone();
                Suspend::new(async move { view! { <LoginBox next first=FirstTicket(first.await) /> } })
            }}
        </Suspense>
    }
}

/// The server's first ticket as the island's prop. Its QR image is in the page already
/// (the `<img>` the server rendered), so the prop leaves it out — the page would carry
/// the image twice, and the copy in the prop comes first in the HTML, before the `<img>`
/// a person waits for — and the island reads it back from that `<img>`.
#[derive(Clone, Debug, PartialEq)]
pub struct FirstTicket(pub Result<TicketIssued, ErrorCode>);

impl serde::Serialize for FirstTicket {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let without_qr = self.0.clone().map(|t| TicketIssued { qr: String::new(), ..t });
        without_qr.serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for FirstTicket {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Result::<TicketIssued, ErrorCode>::deserialize(d).map(FirstTicket)
    }
}

/// The first ticket's QR, which its prop left out: the page's `<img>` has it.
fn with_page_qr(t: TicketIssued) -> TicketIssued {
    #[cfg(not(feature = "ssr"))]
    if t.qr.is_empty() {
        let img = web_sys::window().and_then(|w| w.document()).and_then(|d| d.query_selector("img.qr").ok().flatten());
        let qr = img.and_then(|img| img.get_attribute("src")).unwrap_or_default();
        return TicketIssued { qr, ..t };
    }
    t
}

/// The QR box and its login round, an island (the part of the page that runs in the
/// browser). `first` is the server's ticket: a failure worth showing is shown; after a
/// passing one (a rate limit, a busy server) the browser asks for a ticket itself, with
/// its retries.
#[island]
fn LoginBox(next: Option<NextPath>, first: FirstTicket) -> impl IntoView {
    let ui = use_ui();
    let env = use_page_env();
    let flow = Flow {
        next: StoredValue::new(next),
        phase: RwSignal::new(Phase::Loading),
        qr: RwSignal::new(None),
        ticket: RwSignal::new(None),
        client: RwSignal::new(None),
        open_link: RwSignal::new(None),
        number: RwSignal::new(None),
        reason: RwSignal::new(None),
        remaining: RwSignal::new(0),
        reconnecting: RwSignal::new(false),
    };
    let first = StoredValue::new(Some(first.0.map(with_page_qr)));
    let round = RwSignal::new(0u32);
    Effect::new(move |_| {
        let r = round.get();
        spawn_local_scoped_with_cancellation(async move {
            let seed = if r == 0 { first.get_value() } else { None };
            flow.run(seed).await
        });
        spawn_local_scoped_with_cancellation(flow.count_down());
    });
    Effect::new(|_| mark_hydrated());
    // Until the first round has started (the server's render, hydration), the page
    // shows the server's ticket.
    let seed = move || if round.get() == 0 && flow.phase.get() == Phase::Loading { first.get_value() } else { None };
    let issued = move || seed().and_then(Result::ok);

    let Flow { reconnecting, .. } = flow;
    let phase = move || match seed() {
        Some(Ok(_)) => Phase::Live(TicketStatus::Waiting),
        Some(Err(code)) if !quietly_retryable(code) => Phase::Failed(code),
        _ => flow.phase.get(),
    };
    let qr = move || issued().map(|s| s.qr).or_else(|| flow.qr.get());
    let ticket = move || issued().map(|s| s.ticket).or_else(|| flow.ticket.get());
    let client = move || issued().map_or_else(|| flow.client.get(), |s| s.client);
    let open_link = move || issued().map_or_else(|| flow.open_link.get(), |s| s.open_link);
    let remaining = move || issued().map_or_else(|| flow.remaining.get(), |s| s.expires_in);
    let restart = move |_| round.update(|r| *r += 1);
    let overlay = move || {
        let (title, sub, button): (&str, Option<&str>, bool) = match phase() {
            Phase::Loading | Phase::Live(TicketStatus::Waiting) => return None,
            Phase::Live(TicketStatus::Scanned) => {
                (ui.scanned, Some(if flow.number.get().is_some() { ui.number_hint } else { ui.scanned_hint }), false)
            }
            Phase::Live(TicketStatus::Confirmed | TicketStatus::Consumed) => (ui.confirmed, None, false),
            Phase::Live(TicketStatus::Cancelled) => {
                let by_numbers = flow.reason.get().as_deref() == Some("wrong_number");
                (if by_numbers { ui.number_mismatch } else { ui.cancelled }, None, true)
            }
            Phase::Live(TicketStatus::Expired) => (ui.expired, None, true),
            Phase::Live(TicketStatus::Unknown) => (ui.unknown_state, None, true),
            Phase::Failed(code) => (code.message(env.lang), None, true),
        };
        let label = if matches!(phase(), Phase::Failed(_)) { ui.retry } else { ui.refresh };
        Some(view! {
            <div class="overlay" role="status">
                <p class="overlay-title" data-testid="overlay-title">{title}</p>
                {(phase() == Phase::Live(TicketStatus::Scanned))
                    .then(|| flow.number.get())
                    .flatten()
                    .map(|n| view! { <p class="match-number" data-testid="match-number">{format!("{n:02}")}</p> })}
                {sub.map(|s| view! { <p class="overlay-sub">{s}</p> })}
                {button.then(|| view! { <button class="button" data-testid="refresh" on:click=restart>{label}</button> })}
            </div>
        })
    };
    let phone_link = move || {
        ticket().filter(|_| env.demo && phase() == Phase::Live(TicketStatus::Waiting)).map(|t| {
            view! {
                <p class="demo-hint">
                    {ui.demo_phone_hint}" · "
                    <a href=format!("/_wechat/phone?scene={t}") target="_blank" rel="noopener">{ui.open_phone}</a>
                </p>
            }
        })
    };
    // Without JavaScript: the form that finishes the server's ticket (see `http::nojs`).
    let no_script = move || {
        issued().map(|s| {
            view! {
                <form class="nojs-only" method="post" action="/login/complete">
                    <input type="hidden" name="ticket" value=s.ticket.to_string() />
                    <input type="hidden" name="finalize_key" value=s.finalize_key.as_str().to_string() />
                    <p class="muted">{ui.nojs_hint}</p>
                    <button class="button" type="submit" data-testid="nojs-continue">{ui.nojs_continue}</button>
                </form>
            }
        })
    };
    // On a phone the camera cannot scan its own screen: 「在微信中打开」 leads (CSS shows it
    // on phones and small screens only), the code stays below for a second device.
    let open_in_wechat = move || {
        open_link().filter(|_| phase() == Phase::Live(TicketStatus::Waiting)).map(|href| {
            view! {
                <div class="open-link">
                    <a class="button open-button" href=href data-testid="open-link">{ui.open_in_wechat}</a>
                    <p class="muted">{ui.open_in_wechat_hint}</p>
                    <p class="muted other-device">{ui.other_device_hint}</p>
                </div>
            }
        })
    };
    // Inside WeChat's browser long-press recognition may work too (documented for chats,
    // not for pages): a hint under the code, the button still leads.
    let long_press = move || (env.device == Device::WeChat).then(|| view! { <p class="muted">{ui.long_press_hint}</p> });
    view! {
        <section class="card login-card">
            <h1 data-testid="login-title">{move || match client() {
                Some(name) => format!("{} {name}", ui.sign_in_to),
                None => ui.login_title.to_string(),
            }}</h1>
            {open_in_wechat}
            <p class="muted login-hint">{ui.login_hint}</p>
            <div class=move || format!("qr-box state-{}", phase().name()) data-state=move || phase().name() data-testid="qr-box">
                {move || match (qr(), phase()) {
                    (Some(src), _) => view! { <img class="qr" src=src alt=ui.login_title data-testid="qr" /> }.into_any(),
                    (None, Phase::Loading) => view! { <div class="qr-placeholder"><span class="spinner"></span>{ui.loading_qr}</div> }.into_any(),
                    (None, _) => ().into_any(),
                }}
                {overlay}
            </div>
            {long_press}
            <p class="countdown" data-testid="countdown">
                {move || matches!(phase(), Phase::Live(TicketStatus::Waiting | TicketStatus::Scanned))
                    .then(|| format!("{} {} {}", ui.expires_in, remaining(), ui.seconds))}
            </p>
            <p class="notice" data-testid="reconnecting">{move || reconnecting.get().then_some(ui.reconnecting)}</p>
            {phone_link}
            {no_script}
        </section>
    }
}
