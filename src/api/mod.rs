//! The HTTP API (docs/api.md) as Leptos server functions under `/api`: JSON in, JSON
//! out. Each is a thin wrapper around `server::handlers`.

pub mod browser;
pub mod mp;
