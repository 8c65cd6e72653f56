//! One module per command.

pub mod image;
pub mod keys;
pub mod models;
