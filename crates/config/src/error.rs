//! The config crate's one error type.

use std::path::PathBuf;

/// Everything that can be wrong with a configuration.
///
/// Each variant renders as one line naming the file, the value and what was
/// expected, so the CLI can print it as it is.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file holds a value that does not parse or is out of range.
    #[error("{path}: invalid value '{value}': expected {expected}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The offending value (one line, shortened).
        value: String,
        /// What would have been accepted.
        expected: String,
    },
    /// A list file names something this kind of list does not have.
    #[error("{path}: unknown {kind} '{name}': expected {expected}")]
    UnknownName {
        /// The file.
        path: PathBuf,
        /// "context flag", "capability", ...
        kind: &'static str,
        /// The name as written.
        name: String,
        /// What would have been accepted (one line).
        expected: String,
    },
    /// Two values contradict each other.
    #[error("{path}: {message}")]
    Conflict {
        /// The file.
        path: PathBuf,
        /// What contradicts what.
        message: String,
    },
    /// A guest name that cannot be used as one.
    #[error("invalid guest name '{name}': {reason}")]
    InvalidName {
        /// The name as given (control characters escaped).
        name: String,
        /// Why not.
        reason: &'static str,
    },
    /// A required file is missing.
    #[error("{path}: missing: {what}")]
    Missing {
        /// The file that should exist.
        path: PathBuf,
        /// What it should hold.
        what: &'static str,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {op}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done ("read", "write", "create directory" ...).
        op: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
}

impl ConfigError {
    pub(crate) fn invalid(
        path: impl Into<PathBuf>,
        value: &str,
        expected: impl Into<String>,
    ) -> Self {
        let mut value: String = value.escape_debug().collect();
        if value.len() > 80 {
            let cut = (0..=77)
                .rev()
                .find(|i| value.is_char_boundary(*i))
                .unwrap_or(0);
            value.truncate(cut);
            value.push_str("...");
        }
        ConfigError::Invalid {
            path: path.into(),
            value,
            expected: expected.into(),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, op: &'static str, source: std::io::Error) -> Self {
        ConfigError::Io {
            path: path.into(),
            op,
            source,
        }
    }
}

/// Something the configuration asks for that this host does not honour.
///
/// Loading never fails on these: an existing util-vserver tree keeps working,
/// and the CLI prints each one once, by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// The file.
    pub path: PathBuf,
    /// What is not honoured and why.
    pub message: String,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.message)
    }
}

/// The crate's result type.
pub type Result<T, E = ConfigError> = std::result::Result<T, E>;
