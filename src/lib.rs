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

/// With the `mimalloc` feature, the server's allocator is mimalloc, in every binary that
/// links the server (the bench's baselines too, so its ratios compare like with like).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The browser entry point: readies the islands (`#[island]` components), which
/// Leptos' script then hydrates one by one; the rest of the page stays server HTML.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_islands();
}
