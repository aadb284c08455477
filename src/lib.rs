//! scanlogin: sign in to a website by scanning a WeChat mini-program code.
//!
//! One crate, two targets: with `ssr` it is the server (axum + Leptos SSR, the WeChat
//! client, the embedded simulator); with `hydrate` it is the browser app (WASM).
#![recursion_limit = "256"]

pub mod api;
pub mod app;
pub mod domain;
pub mod error;
pub mod i18n;
pub mod model;
pub mod pages;
#[cfg(feature = "ssr")]
pub mod server;

/// The browser entry point: hydrates the server-rendered page.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
    // Tells browser tests (and anyone curious) that the page's handlers are attached.
    if let Some(root) = web_sys::window().and_then(|w| w.document()).and_then(|d| d.document_element()) {
        let _ = root.set_attribute("data-hydrated", "1");
    }
}
