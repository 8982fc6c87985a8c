//! Exit codes, as util-vserver's `vserver` uses them.

/// A failure with a specific exit code.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Exit {
    /// The code.
    pub code: u8,
    /// What to print (one line).
    pub message: String,
}

/// No such guest (util-vserver: "configuration not found").
pub const NO_GUEST: u8 = 5;
/// A usage error (unknown command or option).
pub const USAGE: u8 = 2;
/// `status` of a stopped guest.
pub const STOPPED: u8 = 3;

impl Exit {
    /// An error with exit code `code`.
    pub fn error(code: u8, message: impl Into<String>) -> anyhow::Error {
        anyhow::Error::new(Exit {
            code,
            message: message.into(),
        })
    }
}

/// The exit code for an error: its own if it carries one, else 1.
pub fn code_of(e: &anyhow::Error) -> u8 {
    e.downcast_ref::<Exit>().map_or(1, |x| x.code)
}
