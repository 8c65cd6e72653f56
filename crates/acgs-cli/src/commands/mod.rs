//! One module per command.

pub mod guard;
pub mod image;
pub mod keys;
pub mod models;
pub mod spend;
