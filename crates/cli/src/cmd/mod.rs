//! One module per verb.

pub mod build;
pub mod chbind;
pub mod delete;
pub mod limit;
pub mod list;
pub mod procs;
pub mod run;
pub mod stat;
pub mod status;
