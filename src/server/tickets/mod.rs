//! Login tickets: the pure state machine, its store, and the service over both.

pub mod machine;
pub mod service;
pub mod store;

pub use machine::{Finalize, FinalizeAttempt, Lifetimes, Miss, Ticket, TicketError};
pub use service::Tickets;
pub use store::{SqlTicketStore, TicketStore};
