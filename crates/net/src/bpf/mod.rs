//! Cgroup BPF `sock_addr` confinement of a shared-mode guest: programs
//! assembled here ([`asm`], [`progs`]), loaded and attached with raw
//! `bpf(2)` ([`sys`]).
//!
//! The programs are attached with `BPF_PROG_ATTACH` (not a BPF link), so
//! they stay in force when the process that attached them exits: a killed
//! monitor leaves its guest confined. They go away with [`Attached::detach`],
//! [`detach_all`], or when the cgroup is removed.

pub mod asm;
pub mod btf;
pub mod progs;
pub mod sys;

#[cfg(test)]
mod tests;

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::{Error, GuestAddrs};
pub use progs::{Hook, UnixLayout};

/// Largest verifier log we ask for (older kernels refuse more than 16 MiB
/// - 1; newer ones keep the tail of a log that does not fit).
const MAX_LOG: usize = 16 << 20;

/// Loads one program; on failure loads it again with the verifier's log
/// and returns that log in the error.
pub fn load(hook: Hook, insns: &[asm::Insn]) -> Result<OwnedFd, Error> {
    let name = format!("vs_{}", hook.name());
    let first = match sys::prog_load(hook.attach_type(), &name, insns, None) {
        Ok(fd) => return Ok(fd),
        Err(e) => e,
    };
    let mut size = 1 << 20;
    loop {
        let mut buf = vec![0u8; size];
        let r = sys::prog_load(hook.attach_type(), &name, insns, Some(&mut buf));
        let text = || {
            let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
            String::from_utf8_lossy(&buf[..end]).trim_end().to_owned()
        };
        match r {
            // Loaded this time (the first failure was passing).
            Ok(fd) => return Ok(fd),
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) && size < MAX_LOG => {
                size = (size * 4).min(MAX_LOG - 1);
            }
            Err(_) => {
                return Err(Error::Load {
                    prog: hook.name(),
                    source: first,
                    log: text(),
                });
            }
        }
    }
}

/// The programs attached to one cgroup, with the descriptors that detach
/// them. Dropping it closes the descriptors and leaves the programs
/// attached.
#[derive(Debug)]
pub struct Attached {
    progs: Vec<(Hook, OwnedFd)>,
}

impl Attached {
    /// The hooks that have a program.
    pub fn hooks(&self) -> Vec<Hook> {
        self.progs.iter().map(|(h, _)| *h).collect()
    }

    /// Detaches every program from `cgroup` (the directory they were
    /// attached to). Tries all of them; returns the first error.
    pub fn detach(self, cgroup: BorrowedFd<'_>) -> Result<(), Error> {
        let mut first = None;
        for (hook, fd) in &self.progs {
            if let Err(source) = sys::prog_detach(cgroup, fd.as_fd(), hook.attach_type()) {
                first.get_or_insert(Error::Detach {
                    prog: hook.name(),
                    source,
                });
            }
        }
        first.map_or(Ok(()), Err)
    }
}

/// Builds, loads and attaches every shared-mode program for `addrs` to the
/// cgroup v2 directory `cgroup` (open `O_RDONLY|O_DIRECTORY`). Nothing stays
/// attached when it fails; a load failure carries the verifier log.
pub fn attach(cgroup: BorrowedFd<'_>, addrs: &GuestAddrs) -> Result<Attached, Error> {
    addrs.validate()?;
    let unix = UnixLayout::running_kernel()?;
    let mut loaded = Vec::new();
    for hook in Hook::ALL {
        let insns = progs::build(hook, addrs, &unix)?;
        loaded.push((hook, load(hook, &insns)?));
    }
    let mut done = Attached { progs: Vec::new() };
    for (hook, fd) in loaded {
        if let Err(source) = sys::prog_attach(cgroup, fd.as_fd(), hook.attach_type()) {
            let _ = done.detach(cgroup);
            return Err(Error::Attach {
                prog: hook.name(),
                source,
            });
        }
        done.progs.push((hook, fd));
    }
    Ok(done)
}

fn query(cgroup: BorrowedFd<'_>, hook: Hook) -> Result<Vec<u32>, Error> {
    sys::prog_query(cgroup, hook.attach_type()).map_err(|source| Error::Query {
        prog: hook.name(),
        source,
    })
}

/// How many programs are attached to `cgroup` itself on the hooks
/// [`attach`] uses (ours or anyone's; inherited ones not counted).
pub fn attached_count(cgroup: BorrowedFd<'_>) -> Result<usize, Error> {
    let mut n = 0;
    for hook in Hook::ALL {
        n += query(cgroup, hook)?.len();
    }
    Ok(n)
}

/// Detaches every program attached to `cgroup` on those hooks, for a
/// caller that no longer holds the [`Attached`] (a restarted monitor).
/// Returns how many it detached.
pub fn detach_all(cgroup: BorrowedFd<'_>) -> Result<usize, Error> {
    let mut n = 0;
    for hook in Hook::ALL {
        for id in query(cgroup, hook)? {
            let fd = match sys::prog_get_fd_by_id(id) {
                Ok(fd) => fd,
                // Gone meanwhile.
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
                Err(source) => {
                    return Err(Error::Detach {
                        prog: hook.name(),
                        source,
                    });
                }
            };
            match sys::prog_detach(cgroup, fd.as_fd(), hook.attach_type()) {
                Ok(()) => n += 1,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                Err(source) => {
                    return Err(Error::Detach {
                        prog: hook.name(),
                        source,
                    });
                }
            }
        }
    }
    Ok(n)
}
