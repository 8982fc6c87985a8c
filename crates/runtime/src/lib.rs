//! Running guests: state, locks, and (with the security-context issue) the
//! monitor, the init side, start/stop/exec/enter.
//!
//! What exists now is what `build`, `delete`, `status` and `list` need: the
//! per-guest and host-wide locks, and the run-state record that says whether
//! a guest is running. A guest is running when its state file names an init
//! process that is still alive with the start time recorded, so a stale file
//! left by a crash never makes a stopped guest look running.

pub mod error;
pub mod lock;
pub mod state;

pub use error::{Error, Result};
pub use lock::Lock;
pub use state::{RunState, Status, status};
