//! Per-process resource limits (setrlimit(2)): the part of util-vserver's
//! context limits (`rlimits/`) that no cgroup carries.
//!
//! A hard limit can only be raised with `CAP_SYS_RESOURCE`, and the host's
//! root may lack it (it does on the machines this project is tested on), so
//! [`apply`] never asks the kernel for a hard limit above the current one
//! unless the caller holds that capability, and clamps instead: the caller
//! gets every clamp back to warn about it, and starting a guest never fails
//! because its configured limit is higher than what the host can give.

use std::fmt;

use rustix::process::{self, Rlimit as RawRlimit};
use rustix::thread::{self, CapabilitySet};

use super::{Result, SecurityError};

/// A resource setrlimit(2) limits (`RLIMIT_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resource {
    /// CPU time in seconds (`RLIMIT_CPU`).
    Cpu,
    /// Largest file the process may create, bytes (`RLIMIT_FSIZE`).
    Fsize,
    /// Data segment size, bytes (`RLIMIT_DATA`).
    Data,
    /// Stack size, bytes (`RLIMIT_STACK`).
    Stack,
    /// Core file size, bytes (`RLIMIT_CORE`).
    Core,
    /// Resident set size; ignored by Linux since 2.6 (`RLIMIT_RSS`).
    Rss,
    /// Processes of the real user id (`RLIMIT_NPROC`).
    Nproc,
    /// Open file descriptors (`RLIMIT_NOFILE`).
    Nofile,
    /// Locked memory, bytes (`RLIMIT_MEMLOCK`).
    Memlock,
    /// Address space, bytes (`RLIMIT_AS`).
    As,
    /// File locks; ignored by Linux (`RLIMIT_LOCKS`).
    Locks,
    /// Queued signals (`RLIMIT_SIGPENDING`).
    Sigpending,
    /// POSIX message queue bytes (`RLIMIT_MSGQUEUE`).
    Msgqueue,
    /// Ceiling for raising the nice value, `20 - limit` (`RLIMIT_NICE`).
    Nice,
    /// Ceiling for the real-time priority (`RLIMIT_RTPRIO`).
    Rtprio,
    /// Real-time CPU time without blocking, microseconds (`RLIMIT_RTTIME`).
    Rttime,
}

impl Resource {
    /// Every resource, in `RLIMIT_*` number order.
    pub const ALL: [Resource; 16] = [
        Resource::Cpu,
        Resource::Fsize,
        Resource::Data,
        Resource::Stack,
        Resource::Core,
        Resource::Rss,
        Resource::Nproc,
        Resource::Nofile,
        Resource::Memlock,
        Resource::As,
        Resource::Locks,
        Resource::Sigpending,
        Resource::Msgqueue,
        Resource::Nice,
        Resource::Rtprio,
        Resource::Rttime,
    ];

    /// The lower-case name util-vserver's `rlimits/` files use (`nofile`,
    /// `as`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Resource::Cpu => "cpu",
            Resource::Fsize => "fsize",
            Resource::Data => "data",
            Resource::Stack => "stack",
            Resource::Core => "core",
            Resource::Rss => "rss",
            Resource::Nproc => "nproc",
            Resource::Nofile => "nofile",
            Resource::Memlock => "memlock",
            Resource::As => "as",
            Resource::Locks => "locks",
            Resource::Sigpending => "sigpending",
            Resource::Msgqueue => "msgqueue",
            Resource::Nice => "nice",
            Resource::Rtprio => "rtprio",
            Resource::Rttime => "rttime",
        }
    }

    /// The resource called `name` (see [`Resource::name`]).
    pub fn from_name(name: &str) -> Option<Resource> {
        Resource::ALL.into_iter().find(|r| r.name() == name)
    }

    fn raw(self) -> process::Resource {
        match self {
            Resource::Cpu => process::Resource::Cpu,
            Resource::Fsize => process::Resource::Fsize,
            Resource::Data => process::Resource::Data,
            Resource::Stack => process::Resource::Stack,
            Resource::Core => process::Resource::Core,
            Resource::Rss => process::Resource::Rss,
            Resource::Nproc => process::Resource::Nproc,
            Resource::Nofile => process::Resource::Nofile,
            Resource::Memlock => process::Resource::Memlock,
            Resource::As => process::Resource::As,
            Resource::Locks => process::Resource::Locks,
            Resource::Sigpending => process::Resource::Sigpending,
            Resource::Msgqueue => process::Resource::Msgqueue,
            Resource::Nice => process::Resource::Nice,
            Resource::Rtprio => process::Resource::Rtprio,
            Resource::Rttime => process::Resource::Rttime,
        }
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A limit to set: `None` is unlimited (`RLIM_INFINITY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rlimit {
    /// Which resource.
    pub resource: Resource,
    /// The soft (current) limit.
    pub soft: Option<u64>,
    /// The hard (maximum) limit.
    pub hard: Option<u64>,
}

/// Which of a resource's two limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// The soft limit.
    Soft,
    /// The hard limit.
    Hard,
}

/// A limit [`apply`] set lower than asked for (`None` is unlimited).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clamped {
    /// Which resource.
    pub resource: Resource,
    /// Which of its limits.
    pub bound: Bound,
    /// What was asked for.
    pub requested: Option<u64>,
    /// What was set.
    pub granted: Option<u64>,
}

impl fmt::Display for Clamped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bound = match self.bound {
            Bound::Soft => "soft",
            Bound::Hard => "hard",
        };
        write!(
            f,
            "rlimit {} {bound}: asked for {}, set to {}",
            self.resource,
            show(&self.requested),
            show(&self.granted)
        )
    }
}

/// Renders a limit the way util-vserver writes it: a number or `inf`.
pub(crate) fn show(limit: &Option<u64>) -> String {
    match limit {
        Some(n) => n.to_string(),
        None => "inf".to_owned(),
    }
}

/// `a > b` where `None` is infinity.
fn above(a: Option<u64>, b: Option<u64>) -> bool {
    match (a, b) {
        (_, None) => false,
        (None, Some(_)) => true,
        (Some(a), Some(b)) => a > b,
    }
}

/// Fits `req` under `ceiling` (`None`: no ceiling beyond infinity) and keeps
/// soft ≤ hard; returns the limits to set and the clamps made.
fn fit(req: &Rlimit, ceiling: Option<u64>) -> (RawRlimit, Vec<Clamped>) {
    let mut clamps = Vec::new();
    let mut hard = req.hard;
    if above(hard, ceiling) {
        hard = ceiling;
        clamps.push(Clamped {
            resource: req.resource,
            bound: Bound::Hard,
            requested: req.hard,
            granted: hard,
        });
    }
    let mut soft = req.soft;
    if above(soft, hard) {
        soft = hard;
        clamps.push(Clamped {
            resource: req.resource,
            bound: Bound::Soft,
            requested: req.soft,
            granted: soft,
        });
    }
    (
        RawRlimit {
            current: soft,
            maximum: hard,
        },
        clamps,
    )
}

/// The calling process's limits for `resource` (getrlimit(2)).
pub fn current(resource: Resource) -> Rlimit {
    let raw = process::getrlimit(resource.raw());
    Rlimit {
        resource,
        soft: raw.current,
        hard: raw.maximum,
    }
}

/// Sets each limit (setrlimit(2), process-wide) and returns the ones it had
/// to lower.
///
/// A hard limit above the current one is clamped to the current one when
/// the caller lacks `CAP_SYS_RESOURCE` (the kernel would refuse it), and
/// also when the kernel refuses it with `EPERM` anyway (`nofile` above
/// `fs.nr_open`); a soft limit above the resulting hard limit becomes the
/// hard limit. Each such change is one [`Clamped`]; it is never an error.
/// Any other refusal (`EINVAL` ...) is.
pub fn apply(limits: &[Rlimit]) -> Result<Vec<Clamped>> {
    let can_raise = thread::capabilities(None)
        .map(|c| c.effective.contains(CapabilitySet::SYS_RESOURCE))
        .unwrap_or(false);
    let mut clamps = Vec::new();
    for req in limits {
        let inherited = process::getrlimit(req.resource.raw()).maximum;
        let ceiling = if can_raise { None } else { inherited };
        let (raw, mut made) = fit(req, ceiling);
        match process::setrlimit(req.resource.raw(), raw) {
            Ok(()) => {}
            Err(rustix::io::Errno::PERM) if above(raw.maximum, inherited) => {
                // Even CAP_SYS_RESOURCE does not lift every ceiling
                // (RLIMIT_NOFILE stops at fs.nr_open): give what we have.
                let (raw, again) = fit(req, inherited);
                made = again;
                set(req, raw)?;
            }
            Err(e) => return Err(error(req, raw, e)),
        }
        clamps.extend(made);
    }
    Ok(clamps)
}

fn set(req: &Rlimit, raw: RawRlimit) -> Result<()> {
    process::setrlimit(req.resource.raw(), raw).map_err(|e| error(req, raw, e))
}

fn error(req: &Rlimit, raw: RawRlimit, e: rustix::io::Errno) -> SecurityError {
    SecurityError::Rlimit {
        resource: req.resource,
        soft: raw.current,
        hard: raw.maximum,
        source: e.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(soft: Option<u64>, hard: Option<u64>) -> Rlimit {
        Rlimit {
            resource: Resource::Nofile,
            soft,
            hard,
        }
    }

    #[test]
    fn names_round_trip() {
        for r in Resource::ALL {
            assert_eq!(Resource::from_name(r.name()), Some(r));
        }
        assert_eq!(Resource::from_name("nofile"), Some(Resource::Nofile));
        assert_eq!(Resource::from_name("as"), Some(Resource::As));
        assert_eq!(Resource::from_name("NOFILE"), None);
    }

    #[test]
    fn fit_under_ceiling_is_unchanged() {
        let (raw, clamps) = fit(&req(Some(64), Some(128)), Some(1024));
        assert_eq!((raw.current, raw.maximum), (Some(64), Some(128)));
        assert!(clamps.is_empty());
        let (raw, clamps) = fit(&req(None, None), None);
        assert_eq!((raw.current, raw.maximum), (None, None));
        assert!(clamps.is_empty());
    }

    #[test]
    fn fit_clamps_hard_then_soft() {
        let (raw, clamps) = fit(&req(Some(500), Some(1000)), Some(128));
        assert_eq!((raw.current, raw.maximum), (Some(128), Some(128)));
        assert_eq!(
            clamps,
            vec![
                Clamped {
                    resource: Resource::Nofile,
                    bound: Bound::Hard,
                    requested: Some(1000),
                    granted: Some(128)
                },
                Clamped {
                    resource: Resource::Nofile,
                    bound: Bound::Soft,
                    requested: Some(500),
                    granted: Some(128)
                },
            ]
        );
    }

    #[test]
    fn fit_infinite_request_under_finite_ceiling() {
        let (raw, clamps) = fit(&req(Some(10), None), Some(20));
        assert_eq!((raw.current, raw.maximum), (Some(10), Some(20)));
        assert_eq!(clamps.len(), 1);
        assert_eq!(clamps[0].requested, None);
        assert_eq!(clamps[0].granted, Some(20));
        assert_eq!(
            clamps[0].to_string(),
            "rlimit nofile hard: asked for inf, set to 20"
        );
    }

    #[test]
    fn fit_soft_above_requested_hard() {
        let (raw, clamps) = fit(&req(Some(300), Some(200)), None);
        assert_eq!((raw.current, raw.maximum), (Some(200), Some(200)));
        assert_eq!(clamps.len(), 1);
        assert_eq!(clamps[0].bound, Bound::Soft);
    }
}
