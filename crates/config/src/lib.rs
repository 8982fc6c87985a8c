//! The util-vserver configuration model.
//!
//! This crate owns everything about `/etc/vservers`: it reads a guest's
//! directory (and `.defaults/`) into a typed [`GuestConfig`] that mirrors the
//! files, writes one back, and resolves it into a [`GuestSpec`] in which every
//! decision is made (defaults applied, names resolved to enums, the id map
//! derived from the context). It validates once, at the edge: a malformed
//! value is an error naming the file, the value and what was expected; a file
//! that a stock kernel cannot honour is a [`Warning`]. It makes no system
//! calls beyond reading and writing the configuration files.

pub mod context;
pub mod error;
pub mod model;
pub mod names;
pub mod paths;
pub mod read;
pub mod spec;
pub mod values;
pub mod write;

pub use error::{ConfigError, Result, Warning};
pub use model::*;
pub use names::{CCap, CFlag, Cap, NCap, NFlag, Named, Support};
pub use paths::Paths;
pub use read::read_guest;
pub use spec::GuestSpec;
pub use values::{GuestName, IdMap, LimitValue, Xid};
pub use write::write_guest;
