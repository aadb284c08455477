//! The HTTP API (docs/api.md) as Leptos server functions under `/api`: JSON in, JSON
//! out. Each function is its endpoint's handler; arguments arrive already parsed into
//! the types of `crate::domain`.

pub mod admin;
pub mod browser;
pub mod mp;
