//! Everything that runs only on the server (`ssr` feature).

pub mod clock;
pub mod config;
pub mod db;
pub mod handlers;
pub mod http;
pub mod limits;
pub mod loadgen;
pub mod rules;
pub mod session;
pub mod simulator;
pub mod startup;
pub mod state;
pub mod tickets;
pub mod users;
pub mod wechat;
