//! One module per command.

pub mod generate;
pub mod guard;
pub mod keys;
pub mod models;
pub mod spend;
