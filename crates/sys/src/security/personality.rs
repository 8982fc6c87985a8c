//! The execution domain (personality(2)): util-vserver's `personality`
//! file; `linux_32bit` makes `uname -m` say `i686` on an x86_64 host, so a
//! 32-bit distribution installs and runs its own packages.
//!
//! Written with libc because rustix does not wrap personality(2).

use super::{Result, SecurityError};

/// `PER_LINUX`: the default persona.
pub const PER_LINUX: u32 = 0x0000;
/// `PER_LINUX32`: `uname` reports the 32-bit machine (`i686` on x86_64).
pub const PER_LINUX32: u32 = 0x0008;

/// The value that makes personality(2) only report the current persona.
const QUERY: u32 = 0xffff_ffff;

/// The calling thread's persona.
pub fn personality() -> u32 {
    // SAFETY: personality(2) takes a plain integer and touches no memory;
    // 0xffffffff only reads the current persona and cannot fail.
    let current = unsafe { libc::personality(libc::c_ulong::from(QUERY)) };
    // The kernel returns the persona as an int; it is a bit set.
    current as u32
}

/// Sets the calling thread's persona (inherited by children and kept across
/// exec) and reads it back: an error if the kernel refuses it or does not
/// apply it exactly.
pub fn set_personality(value: u32) -> Result<()> {
    if value == QUERY {
        return Err(SecurityError::Personality {
            value,
            reason: "0xffffffff only queries the persona".to_owned(),
        });
    }
    // SAFETY: as in `personality`: an integer argument, no memory involved.
    let previous = unsafe { libc::personality(libc::c_ulong::from(value)) };
    if previous == -1 {
        return Err(SecurityError::Personality {
            value,
            reason: std::io::Error::last_os_error().to_string(),
        });
    }
    let now = personality();
    if now != value {
        return Err(SecurityError::Personality {
            value,
            reason: format!("the kernel kept {now:#x}"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_value_is_refused() {
        let err = set_personality(QUERY).unwrap_err();
        assert_eq!(
            err.to_string(),
            "personality 0xffffffff: 0xffffffff only queries the persona"
        );
    }

    #[test]
    fn setting_the_current_persona_is_a_no_op() {
        // Needs no privilege and changes nothing for the test thread.
        let now = personality();
        set_personality(now).unwrap();
        assert_eq!(personality(), now);
    }
}
