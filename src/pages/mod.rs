//! The pages.

pub mod account;
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
