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
