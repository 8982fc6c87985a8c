//! One module per verb.

pub mod build;
pub mod delete;
pub mod list;
pub mod status;
