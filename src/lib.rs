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

/// The server's allocator: mimalloc, in every binary that links the server (the bench's
/// baselines too, so its ratios compare like with like). glibc's malloc and free were a
/// fifth of a login's CPU, spread over every caller (docs/benchmarks.md, issue 31).
#[cfg(feature = "ssr")]
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
