//! Running guests: the per-guest monitor, the init side (namespaces, mounts,
//! `pivot_root`, privilege limits), the built-in reaper init, and the CLI
//! sides of start, stop and exec; plus the locks and the run-state record
//! that say whether a guest runs. A guest is running when its state file
//! names an init process that is still alive with the start time recorded,
//! so a stale file left by a crash never makes a stopped guest look running.

pub mod broker;
pub mod channel;
pub mod console;
pub mod error;
pub mod exec;
pub mod hooks;
pub mod limits;
pub mod lock;
pub mod lxcfs;
pub mod memfs;
pub mod monitor;
pub mod net;
pub mod plan;
pub mod procs;
pub mod reaper;
pub mod sequence;
pub mod setup;
pub mod start;
pub mod state;
pub mod stop;
pub mod timing;

pub use error::{Error, Result};
pub use lock::Lock;
pub use plan::Mode;
pub use state::{RunState, Status, status};
