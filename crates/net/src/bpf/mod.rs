//! Cgroup BPF confinement of a shared-mode guest: `sock_addr` programs
//! ([`progs`]) and traffic counters ([`count`]), assembled here ([`asm`]),
//! loaded and attached with raw `bpf(2)` ([`sys`]).
//!
//! The programs are attached with `BPF_PROG_ATTACH` (not a BPF link), so
//! they stay in force when the process that attached them exits: a killed
//! monitor leaves its guest confined. They go away with [`Attached::detach`],
//! [`detach_all`], or when the cgroup is removed.

pub mod asm;
pub mod btf;
pub mod count;
pub mod devices;
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

/// One of our programs: its type, where it attaches, and its name (in
/// the kernel prefixed `vs_`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prog {
    /// `enum bpf_prog_type`.
    pub prog_type: u32,
    /// `enum bpf_attach_type`.
    pub attach_type: u32,
    /// Short name.
    pub name: &'static str,
}

impl Hook {
    /// The `sock_addr` program of this hook.
    pub fn prog(self) -> Prog {
        Prog {
            prog_type: sys::BPF_PROG_TYPE_CGROUP_SOCK_ADDR,
            attach_type: self.attach_type(),
            name: self.name(),
        }
    }
}

/// Every program [`attach`] attaches.
pub fn every_prog() -> impl Iterator<Item = Prog> {
    Hook::ALL
        .into_iter()
        .map(Hook::prog)
        .chain([count::COUNT_IN, count::COUNT_OUT])
}

/// Loads one program; on failure loads it again with the verifier's log
/// and returns that log in the error.
pub fn load(prog: Prog, insns: &[asm::Insn]) -> Result<OwnedFd, Error> {
    let name = format!("vs_{}", prog.name);
    let load = |log: Option<&mut Vec<u8>>| {
        sys::prog_load(prog.prog_type, prog.attach_type, &name, insns, log)
    };
    let first = match load(None) {
        Ok(fd) => return Ok(fd),
        Err(e) => e,
    };
    let mut size = 1 << 20;
    loop {
        let mut buf = vec![0u8; size];
        let r = load(Some(&mut buf));
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
                    prog: prog.name,
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
    progs: Vec<(Prog, OwnedFd)>,
}

impl Attached {
    /// The programs attached.
    pub fn progs(&self) -> Vec<Prog> {
        self.progs.iter().map(|(p, _)| *p).collect()
    }

    /// Detaches every program from `cgroup` (the directory they were
    /// attached to). Tries all of them; returns the first error.
    pub fn detach(self, cgroup: BorrowedFd<'_>) -> Result<(), Error> {
        let mut first = None;
        for (prog, fd) in &self.progs {
            if let Err(source) = sys::prog_detach(cgroup, fd.as_fd(), prog.attach_type) {
                first.get_or_insert(Error::Detach {
                    prog: prog.name,
                    source,
                });
            }
        }
        first.map_or(Ok(()), Err)
    }
}

/// Builds, loads and attaches every shared-mode program for `addrs` (and
/// the traffic counters) to the cgroup v2 directory `cgroup` (open
/// `O_RDONLY|O_DIRECTORY`). Nothing stays attached when it fails; a load
/// failure carries the verifier log.
pub fn attach(cgroup: BorrowedFd<'_>, addrs: &GuestAddrs) -> Result<Attached, Error> {
    attach_with(cgroup, addrs, &UnixLayout::running_kernel()?)
}

/// [`attach`] with the kernel's unix layout already known (see
/// [`UnixLayout::running_kernel_cached`]).
pub fn attach_with(
    cgroup: BorrowedFd<'_>,
    addrs: &GuestAddrs,
    unix: &UnixLayout,
) -> Result<Attached, Error> {
    addrs.validate()?;
    let unix = *unix;
    let mut loaded = Vec::new();
    for hook in Hook::ALL {
        let insns = progs::build(hook, addrs, &unix)?;
        loaded.push((hook.prog(), load(hook.prog(), &insns)?));
    }
    loaded.extend(count::load_both()?);
    let mut done = Attached { progs: Vec::new() };
    for (prog, fd) in loaded {
        if let Err(source) = sys::prog_attach(cgroup, fd.as_fd(), prog.attach_type) {
            let _ = done.detach(cgroup);
            return Err(Error::Attach {
                prog: prog.name,
                source,
            });
        }
        done.progs.push((prog, fd));
    }
    Ok(done)
}

fn query(cgroup: BorrowedFd<'_>, prog: Prog) -> Result<Vec<u32>, Error> {
    sys::prog_query(cgroup, prog.attach_type).map_err(|source| Error::Query {
        prog: prog.name,
        source,
    })
}

/// How many programs are attached to `cgroup` itself on the hooks
/// [`attach`] uses (ours or anyone's; inherited ones not counted).
pub fn attached_count(cgroup: BorrowedFd<'_>) -> Result<usize, Error> {
    let mut n = 0;
    for prog in every_prog() {
        n += query(cgroup, prog)?.len();
    }
    Ok(n)
}

/// Detaches every program attached to `cgroup` on those hooks, for a
/// caller that no longer holds the [`Attached`] (a restarted monitor).
/// Returns how many it detached.
pub fn detach_all(cgroup: BorrowedFd<'_>) -> Result<usize, Error> {
    let mut n = 0;
    for prog in every_prog() {
        for id in query(cgroup, prog)? {
            let fd = match sys::prog_get_fd_by_id(id) {
                Ok(fd) => fd,
                // Gone meanwhile.
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
                Err(source) => {
                    return Err(Error::Detach {
                        prog: prog.name,
                        source,
                    });
                }
            };
            match sys::prog_detach(cgroup, fd.as_fd(), prog.attach_type) {
                Ok(()) => n += 1,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                Err(source) => {
                    return Err(Error::Detach {
                        prog: prog.name,
                        source,
                    });
                }
            }
        }
    }
    Ok(n)
}
