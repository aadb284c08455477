//! The pages.

pub mod account;
pub mod admin;
pub mod login;

/// Sends the browser to `path` with a full page load (so server-side guards apply).
pub fn navigate(path: &str) {
    if let Some(w) = web_sys::window() {
        let _ = w.location().set_href(path);
    }
}

/// Waits in the browser.
pub async fn sleep_ms(ms: u32) {
    gloo_timers::future::TimeoutFuture::new(ms).await;
}

/// Marks `<html data-hydrated="1">` once an island's handlers are attached: browser
/// tests (and anyone curious) wait for it before clicking. Call from an `Effect`, which
/// runs after the island has hydrated.
pub fn mark_hydrated() {
    if let Some(root) = web_sys::window().and_then(|w| w.document()).and_then(|d| d.document_element()) {
        let _ = root.set_attribute("data-hydrated", "1");
    }
}

/// Resolves the next time the page comes back to the foreground (`visibilitychange` to
/// visible): a phone's browser may have frozen a request while the person was in WeChat.
/// One listener serves every waiter. Never resolves while the server renders.
pub async fn foreground_again() {
    #[cfg(all(feature = "hydrate", not(feature = "ssr")))]
    {
        use std::cell::{Cell, RefCell};
        use std::task::{Poll, Waker};
        thread_local! {
            static SHOWN: Cell<u64> = const { Cell::new(0) };
            static WAITERS: RefCell<Vec<Waker>> = const { RefCell::new(Vec::new()) };
            static LISTENING: Cell<bool> = const { Cell::new(false) };
        }
        let Some(doc) = web_sys::window().and_then(|w| w.document()) else { return std::future::pending().await };
        if !LISTENING.replace(true) {
            let seen = doc.clone();
            let on_change = wasm_bindgen::closure::Closure::<dyn FnMut()>::new(move || {
                if !seen.hidden() {
                    SHOWN.set(SHOWN.get() + 1);
                    WAITERS.take().into_iter().for_each(Waker::wake);
                }
            });
            use wasm_bindgen::JsCast as _;
            let _ = doc.add_event_listener_with_callback("visibilitychange", on_change.as_ref().unchecked_ref());
            on_change.forget();
        }
        let start = SHOWN.get();
        std::future::poll_fn(|cx| {
            if SHOWN.get() != start {
                return Poll::Ready(());
            }
            WAITERS.with_borrow_mut(|w| {
                if !w.iter().any(|x| x.will_wake(cx.waker())) {
                    w.push(cx.waker().clone());
                }
            });
            Poll::Pending
        })
        .await
    }
    #[cfg(not(all(feature = "hydrate", not(feature = "ssr"))))]
    std::future::pending::<()>().await
}

/// `a`'s answer, or `None` if `b` finishes first.
pub async fn unless<T>(a: impl std::future::Future<Output = T>, b: impl std::future::Future<Output = ()>) -> Option<T> {
    let (mut a, mut b) = (std::pin::pin!(a), std::pin::pin!(b));
    std::future::poll_fn(|cx| {
        if let std::task::Poll::Ready(v) = a.as_mut().poll(cx) {
            return std::task::Poll::Ready(Some(v));
        }
        b.as_mut().poll(cx).map(|()| None)
    })
    .await
}
