//! The integration tests, one binary (one link, shared helpers in `common`): the real
//! application spawned on port 0 and driven over HTTP, as browsers with their own
//! cookie jars and as the phone.

// Tests may unwrap: a panic there is a failed test with its reason.
#![allow(clippy::unwrap_used)]

mod abuse;
mod access;
mod api_flow;
mod audit;
mod bad_input;
mod common;
mod deploy;
mod email;
mod first_html;
mod fleet;
mod forward_auth;
mod guards;
mod hardening;
mod metrics;
mod modes;
mod oidc;
mod oidc_edges;
mod oidc_hardening;
mod people;
mod phone_sessions;
mod pool;
mod postgres;
mod profile;
mod same_phone;
