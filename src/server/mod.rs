//! Everything that runs only on the server (`ssr` feature).

pub mod audit;
pub mod caller;
pub mod changes;
pub mod clock;
pub mod codes;
pub mod config;
pub mod db;
pub mod display;
pub mod error;
pub mod forward_auth;
pub mod handoff;
pub mod http;
pub mod limits;
#[cfg(feature = "test-support")]
pub mod loadgen;
pub mod metrics;
pub mod oidc;
pub mod session;
pub mod signin;
pub mod simulator;
pub mod startup;
pub mod state;
pub mod tickets;
pub mod tokens;
pub mod users;
pub mod wechat;
