//! Resource limits on a guest's cgroups: memory, pids, cpu, cpuset, io.
//!
//! [`GuestCgroup::apply`] writes a [`Limits`] to whichever backend the
//! guest's directories offer for each controller: the cgroup2 file where the
//! controller is enabled in the guest's cgroup2 directory (a pure cgroup2
//! host, or a hybrid one whose cgroup2 has it), else the v1 hierarchy's
//! file (hybrid and legacy hosts). A limit with neither is reported as
//! [`Unsupported`], not as an error: the caller decides whether that is
//! fatal. [`GuestCgroup::limits`] reads the current values back.

use std::fmt;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use crate::fs::read_file;
use crate::{Error, GuestCgroup, Hierarchy, Result};

/// A limit value: unlimited or an amount (bytes, processes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    /// No limit (`max` in cgroup2, `-1` in v1).
    Max,
    /// This many.
    Value(u64),
}

impl Limit {
    /// The amount, `None` if unlimited.
    pub fn value(self) -> Option<u64> {
        match self {
            Limit::Max => None,
            Limit::Value(v) => Some(v),
        }
    }

    /// The amount with unlimited as `u64::MAX`, for comparisons.
    fn ceiling(self) -> u64 {
        self.value().unwrap_or(u64::MAX)
    }

    /// As written to a cgroup2 file: `max` or the number.
    fn v2(self) -> String {
        match self {
            Limit::Max => "max".to_owned(),
            Limit::Value(v) => v.to_string(),
        }
    }

    /// As written to a v1 memory file: `-1` (the kernel's "unlimited") or
    /// the number.
    fn v1(self) -> String {
        match self {
            Limit::Max => "-1".to_owned(),
            Limit::Value(v) => v.to_string(),
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Limit::Max => f.write_str("max"),
            Limit::Value(v) => write!(f, "{v}"),
        }
    }
}

/// `"max"` or the number.
impl serde::Serialize for Limit {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Limit::Max => s.serialize_str("max"),
            Limit::Value(v) => s.serialize_u64(*v),
        }
    }
}

/// Limits to put on a guest's cgroups. Every `None` (and a `false`
/// `cpu_max_clear`) leaves the current value as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Limits {
    /// Memory limit, bytes: over it the OOM killer acts inside the guest
    /// (cgroup2 `memory.max`, v1 `memory.limit_in_bytes`).
    pub memory_max: Option<Limit>,
    /// Soft memory limit, bytes (cgroup2 `memory.high`, v1
    /// `memory.soft_limit_in_bytes`).
    pub memory_soft: Option<Limit>,
    /// Guaranteed minimum, bytes (util-vserver's `rss` minimum, `vlimit
    /// -M`): memory the kernel reclaims from the guest only when nothing
    /// else is left (cgroup2 `memory.low`; v1 memory has no such file:
    /// unsupported).
    pub memory_low: Option<Limit>,
    /// Memory + swap limit, bytes: the TOTAL, not the swap alone
    /// (util-vserver's `as`). v1 `memory.memsw.limit_in_bytes`; cgroup2
    /// `memory.swap.max` = this − the memory limit (with no memory limit,
    /// swap alone is capped at this). Must not be below `memory_max`.
    pub memory_swap_max: Option<Limit>,
    /// Process (task) count limit (`pids.max`).
    pub pids_max: Option<Limit>,
    /// CPU bandwidth: `(quota_us, period_us)`, the guest may use `quota_us`
    /// of CPU time per `period_us` (cgroup2 `cpu.max`, v1
    /// `cpu.cfs_quota_us` / `cpu.cfs_period_us`).
    pub cpu_max: Option<(u64, u64)>,
    /// Removes the CPU quota (`cpu.max` = `max`, v1 `cpu.cfs_quota_us` =
    /// -1). Cannot be combined with `cpu_max`.
    pub cpu_max_clear: bool,
    /// CPU burst, µs of unused quota that may be used later (cgroup2
    /// `cpu.max.burst`, v1 `cpu.cfs_burst_us`); at most the quota. When a
    /// new quota is below the current burst and no burst is given, the
    /// burst is lowered to the quota (the kernel refuses the quota
    /// otherwise).
    pub cpu_burst_us: Option<u64>,
    /// CPU weight 1..=10000, default 100 (cgroup2 `cpu.weight`; v1
    /// `cpu.shares` = weight × 1024 / 100, at least 2).
    pub cpu_weight: Option<u64>,
    /// CPUs the guest may run on, a cpu list (`0-1,3`).
    pub cpuset_cpus: Option<String>,
    /// Memory nodes the guest may allocate on, a node list.
    pub cpuset_mems: Option<String>,
    /// Block I/O weight 1..=10000, default 100 (cgroup2 `io.weight`, else
    /// `io.bfq.weight` clamped to 1..=1000; v1 `blkio.weight` clamped to
    /// 10..=1000, else `blkio.bfq.weight` clamped to 1..=1000).
    pub io_weight: Option<u64>,
}

impl Limits {
    /// Whether this changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == Limits::default()
    }
}

/// A limit this host cannot put on the guest: the hierarchy or control
/// file it needs is missing.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Unsupported {
    /// Which limit (`"memory limit"`, `"cpu burst"` ...).
    pub what: &'static str,
    /// Why it cannot be set (names what is missing, or the
    /// `cgroup.subtree_control` write the kernel refused).
    pub why: String,
    /// The kernel refused the controller with `EBUSY`: the guests' parent
    /// cgroup is not the root and has processes of its own (cgroup2's
    /// no-internal-processes rule); a parent without processes fixes it.
    pub busy: bool,
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.what, self.why)
    }
}

/// The limits currently on a guest's cgroups, as [`GuestCgroup::limits`]
/// reads them (for `vlimit -a`). `None`: this host has no such limit for
/// the guest (the file is missing).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CurrentLimits {
    /// Memory limit, bytes.
    pub memory_max: Option<Limit>,
    /// Soft memory limit, bytes.
    pub memory_soft: Option<Limit>,
    /// Guaranteed minimum, bytes (cgroup2 `memory.low`).
    pub memory_low: Option<Limit>,
    /// Memory + swap limit (total), bytes. In cgroup2: `memory.max` +
    /// `memory.swap.max`, `Max` if either is.
    pub memory_swap_max: Option<Limit>,
    /// Process count limit.
    pub pids_max: Option<Limit>,
    /// CPU quota per period, µs (`Max`: none).
    pub cpu_quota_us: Option<Limit>,
    /// CPU period, µs.
    pub cpu_period_us: Option<u64>,
    /// CPU burst, µs.
    pub cpu_burst_us: Option<u64>,
    /// CPU weight 1..=10000 (v1: converted back from `cpu.shares`).
    pub cpu_weight: Option<u64>,
    /// The cpuset's CPU list as configured (empty in cgroup2: inherited).
    pub cpuset_cpus: Option<String>,
    /// The cpuset's memory node list as configured.
    pub cpuset_mems: Option<String>,
    /// Block I/O weight (the value in whichever file
    /// [`Limits::io_weight`] writes).
    pub io_weight: Option<u64>,
}

/// v1 memory values at or above this read as unlimited: the kernel reports
/// "unlimited" as `PAGE_COUNTER_MAX` pages in bytes
/// (9223372036854771712 with 4 KiB pages), which depends on the page size.
const V1_UNLIMITED_FROM: u64 = 1 << 62;

/// Where a controller's files are for this guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    V2,
    V1,
}

/// What each limit is called in [`Unsupported`] and [`Error::InvalidLimit`].
mod what {
    pub const MEMORY_MAX: &str = "memory limit";
    pub const MEMORY_SOFT: &str = "memory soft limit";
    pub const MEMORY_LOW: &str = "memory guaranteed minimum";
    pub const MEMORY_SWAP: &str = "memory+swap limit";
    pub const PIDS_MAX: &str = "pids limit";
    pub const CPU_MAX: &str = "cpu quota";
    pub const CPU_BURST: &str = "cpu burst";
    pub const CPU_WEIGHT: &str = "cpu weight";
    pub const CPUSET_CPUS: &str = "cpuset cpus";
    pub const CPUSET_MEMS: &str = "cpuset mems";
    pub const IO_WEIGHT: &str = "io weight";
}

impl GuestCgroup {
    /// The guest's cgroup2 control file `name`, if it exists (the
    /// controller is enabled there).
    pub(crate) fn v2_file(&self, name: &str) -> Option<PathBuf> {
        self.v2_dir().map(|d| d.join(name)).filter(|p| p.is_file())
    }

    /// The guest's v1 control file `name` in whichever v1 hierarchy has it
    /// (co-mounted controllers share a directory).
    pub(crate) fn v1_file(&self, name: &str) -> Option<PathBuf> {
        self.hierarchies()
            .into_iter()
            .filter(|h| matches!(h, Hierarchy::V1(_)))
            .filter_map(|h| self.dir(h).map(|d| d.join(name)))
            .find(|p| p.is_file())
    }

    /// The backend whose `probe` file exists: cgroup2 first.
    fn backend(&self, v2_probe: &str, v1_probe: &str) -> Option<(Backend, PathBuf)> {
        if let Some(f) = self.v2_file(v2_probe) {
            return Some((Backend::V2, parent_of(&f)));
        }
        self.v1_file(v1_probe).map(|f| (Backend::V1, parent_of(&f)))
    }

    fn missing(&self, what: &'static str, files: &str) -> Unsupported {
        let controller = match what {
            what::MEMORY_MAX | what::MEMORY_SOFT | what::MEMORY_SWAP | what::MEMORY_LOW => "memory",
            what::PIDS_MAX => "pids",
            what::CPU_MAX | what::CPU_BURST | what::CPU_WEIGHT => "cpu",
            what::CPUSET_CPUS | what::CPUSET_MEMS => "cpuset",
            _ => "io",
        };
        if let Some(r) = self.refused(controller) {
            return Unsupported {
                what,
                why: format!(
                    "the kernel refused the {controller} controller for the guest's cgroup: {}",
                    r.error
                ),
                busy: r.busy,
            };
        }
        let dirs = self
            .paths()
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        Unsupported {
            what,
            why: format!("no {files} in the guest's cgroups ({dirs})"),
            busy: false,
        }
    }

    /// Puts `limits` on the guest's cgroups; fields that are `None` are left
    /// alone. Returns the limits this host cannot put (their hierarchy or
    /// control file is missing), each once; the rest is applied anyway.
    ///
    /// Fails with [`Error::InvalidLimit`] before writing anything when the
    /// values contradict each other or are out of range, and with
    /// [`Error::Write`] (naming the file and the value) when the kernel
    /// refuses a value (`cpuset.cpus` = `99` on a 2-CPU host); limits
    /// written before that stay.
    ///
    /// Order matters where the kernel checks one file against another:
    /// v1 `memory.memsw.limit_in_bytes` must never be below
    /// `memory.limit_in_bytes`, so when raising the memory limit above the
    /// current memory+swap limit the latter is written first, otherwise the
    /// memory limit is; a CPU burst must never exceed the quota, so it is
    /// written before the quota when it fits the current one, after it
    /// otherwise.
    pub fn apply(&self, limits: &Limits) -> Result<Vec<Unsupported>> {
        validate(limits)?;
        let mut unsupported = Vec::new();
        self.apply_memory(limits, &mut unsupported)?;
        self.apply_pids(limits, &mut unsupported)?;
        self.apply_cpu(limits, &mut unsupported)?;
        self.apply_cpuset(limits, &mut unsupported)?;
        self.apply_io(limits, &mut unsupported)?;
        Ok(unsupported)
    }

    fn write(&self, path: &Path, data: &str) -> Result<()> {
        self.cgroup_fs().write(path, data)
    }

    /// Writes `value` to the guest's control file `name`
    /// (`<subsys>.<knob>`, util-vserver's `cgroup/` directory) in the
    /// hierarchy that has it: the guest's cgroup2 directory if the file is
    /// there (the controller is enabled in cgroup2), else the v1 hierarchy
    /// whose directory has it. `blkio.weight`, gone with CFQ in Linux 5.0,
    /// goes to `blkio.bfq.weight` where only that exists. Returns the file
    /// written, `None` if no hierarchy of the guest has such a file.
    /// `cgroup.*`, `tasks` and names with `/` are refused: they are not
    /// limits.
    pub fn write_knob(&self, name: &str, value: &str) -> Result<Option<PathBuf>> {
        if name.starts_with("cgroup.") || name.contains('/') || !name.contains('.') {
            return Err(Error::InvalidLimit {
                what: "cgroup control file",
                value: name.to_owned(),
                reason: "not a <subsys>.<knob> limit file",
            });
        }
        let file = self
            .v2_file(name)
            .or_else(|| self.v1_file(name))
            .or_else(|| (name == "blkio.weight").then(|| self.v1_file("blkio.bfq.weight"))?);
        match file {
            Some(f) => {
                self.write(&f, value)?;
                Ok(Some(f))
            }
            None => Ok(None),
        }
    }

    fn apply_memory(&self, l: &Limits, out: &mut Vec<Unsupported>) -> Result<()> {
        if l.memory_max.is_none()
            && l.memory_soft.is_none()
            && l.memory_swap_max.is_none()
            && l.memory_low.is_none()
        {
            return Ok(());
        }
        let Some((backend, dir)) = self.backend("memory.max", "memory.limit_in_bytes") else {
            for (set, what) in [
                (l.memory_max.is_some(), what::MEMORY_MAX),
                (l.memory_soft.is_some(), what::MEMORY_SOFT),
                (l.memory_swap_max.is_some(), what::MEMORY_SWAP),
                (l.memory_low.is_some(), what::MEMORY_LOW),
            ] {
                if set {
                    out.push(self.missing(
                        what,
                        "memory controller (memory.max, memory.limit_in_bytes)",
                    ));
                }
            }
            return Ok(());
        };
        match backend {
            Backend::V2 => {
                if let Some(m) = l.memory_max {
                    self.write(&dir.join("memory.max"), &m.v2())?;
                }
                if let Some(s) = l.memory_soft {
                    self.soft_or_missing(&dir.join("memory.high"), &s.v2(), out)?;
                }
                if let Some(low) = l.memory_low {
                    let file = dir.join("memory.low");
                    if file.is_file() {
                        self.write(&file, &low.v2())?;
                    } else {
                        out.push(self.missing(what::MEMORY_LOW, "memory.low"));
                    }
                }
                if let Some(total) = l.memory_swap_max {
                    let file = dir.join("memory.swap.max");
                    if !file.is_file() {
                        out.push(
                            self.missing(what::MEMORY_SWAP, "memory.swap.max (no swap accounting)"),
                        );
                    } else {
                        let memory = match l.memory_max {
                            Some(m) => m,
                            None => read_v2_limit(&dir.join("memory.max"))?,
                        };
                        let swap = match (total, memory) {
                            (Limit::Max, _) => Limit::Max,
                            (Limit::Value(t), Limit::Max) => Limit::Value(t),
                            (Limit::Value(t), Limit::Value(m)) => {
                                Limit::Value(t.checked_sub(m).ok_or_else(|| {
                                    Error::InvalidLimit {
                                        what: what::MEMORY_SWAP,
                                        value: t.to_string(),
                                        reason: "below the memory limit",
                                    }
                                })?)
                            }
                        };
                        self.write(&file, &swap.v2())?;
                    }
                }
            }
            Backend::V1 => {
                let mem_file = dir.join("memory.limit_in_bytes");
                let sw_file = dir.join("memory.memsw.limit_in_bytes");
                let total = match l.memory_swap_max {
                    Some(_) if !sw_file.is_file() => {
                        out.push(self.missing(
                            what::MEMORY_SWAP,
                            "memory.memsw.limit_in_bytes (no swap accounting)",
                        ));
                        None
                    }
                    t => t,
                };
                match (l.memory_max, total) {
                    (Some(m), Some(t)) => {
                        // The kernel keeps memory <= memory+swap after
                        // every write: raise the total first if the new
                        // memory limit does not fit under the current one.
                        let current = read_v1_limit(&sw_file)?;
                        if m.ceiling() <= current.ceiling() {
                            self.write(&mem_file, &m.v1())?;
                            self.write(&sw_file, &t.v1())?;
                        } else {
                            self.write(&sw_file, &t.v1())?;
                            self.write(&mem_file, &m.v1())?;
                        }
                    }
                    (Some(m), None) => self.write(&mem_file, &m.v1())?,
                    (None, Some(t)) => self.write(&sw_file, &t.v1())?,
                    (None, None) => {}
                }
                if let Some(s) = l.memory_soft {
                    self.soft_or_missing(&dir.join("memory.soft_limit_in_bytes"), &s.v1(), out)?;
                }
                if l.memory_low.is_some() {
                    out.push(Unsupported {
                        what: what::MEMORY_LOW,
                        why: format!(
                            "the v1 memory controller ({}) has no guaranteed minimum (memory.low is cgroup2 only)",
                            dir.display()
                        ),
                        busy: false,
                    });
                }
            }
        }
        Ok(())
    }

    fn soft_or_missing(&self, file: &Path, data: &str, out: &mut Vec<Unsupported>) -> Result<()> {
        if file.is_file() {
            return self.write(file, data);
        }
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        out.push(Unsupported {
            what: what::MEMORY_SOFT,
            why: format!("no {name} in {}", parent_of(file).display()),
            busy: false,
        });
        Ok(())
    }

    fn apply_pids(&self, l: &Limits, out: &mut Vec<Unsupported>) -> Result<()> {
        let Some(p) = l.pids_max else {
            return Ok(());
        };
        match self
            .v2_file("pids.max")
            .or_else(|| self.v1_file("pids.max"))
        {
            Some(f) => self.write(&f, &p.v2()),
            None => {
                out.push(self.missing(what::PIDS_MAX, "pids controller (pids.max)"));
                Ok(())
            }
        }
    }

    fn apply_cpu(&self, l: &Limits, out: &mut Vec<Unsupported>) -> Result<()> {
        let quota_set = l.cpu_max.is_some() || l.cpu_max_clear;
        if quota_set || l.cpu_burst_us.is_some() {
            match self.backend("cpu.max", "cpu.cfs_quota_us") {
                None => {
                    if quota_set {
                        out.push(
                            self.missing(
                                what::CPU_MAX,
                                "cpu controller (cpu.max, cpu.cfs_quota_us)",
                            ),
                        );
                    }
                    if l.cpu_burst_us.is_some() {
                        out.push(self.missing(
                            what::CPU_BURST,
                            "cpu controller (cpu.max.burst, cpu.cfs_burst_us)",
                        ));
                    }
                }
                Some((backend, dir)) => self.apply_bandwidth(backend, &dir, l, out)?,
            }
        }
        if let Some(w) = l.cpu_weight {
            if let Some(f) = self.v2_file("cpu.weight") {
                self.write(&f, &w.to_string())?;
            } else if let Some(f) = self.v1_file("cpu.shares") {
                self.write(&f, &weight_to_shares(w).to_string())?;
            } else {
                out.push(self.missing(what::CPU_WEIGHT, "cpu.weight or cpu.shares"));
            }
        }
        Ok(())
    }

    /// Quota, period and burst, ordered so that the burst never exceeds
    /// the quota in between (the kernel checks after every write).
    fn apply_bandwidth(
        &self,
        backend: Backend,
        dir: &Path,
        l: &Limits,
        out: &mut Vec<Unsupported>,
    ) -> Result<()> {
        let (burst_name, quota_file) = match backend {
            Backend::V2 => ("cpu.max.burst", dir.join("cpu.max")),
            Backend::V1 => ("cpu.cfs_burst_us", dir.join("cpu.cfs_quota_us")),
        };
        let burst_file = dir.join(burst_name);
        let has_burst = burst_file.is_file();
        let mut burst = l.cpu_burst_us;
        if burst.is_some() && !has_burst {
            out.push(Unsupported {
                what: what::CPU_BURST,
                why: format!(
                    "no {burst_name} in {} (kernel older than 5.14?)",
                    dir.display()
                ),
                busy: false,
            });
            burst = None;
        }
        // The new quota: None = leave, Some(Max) = remove.
        let quota = match (l.cpu_max, l.cpu_max_clear) {
            (Some((q, _)), _) => Some(Limit::Value(q)),
            (None, true) => Some(Limit::Max),
            (None, false) => None,
        };
        let write_quota = |this: &Self| -> Result<()> {
            match (backend, l.cpu_max) {
                (Backend::V2, Some((q, p))) => this.write(&quota_file, &format!("{q} {p}")),
                (Backend::V2, None) => this.write(&quota_file, "max"),
                (Backend::V1, Some((q, p))) => {
                    this.write(&dir.join("cpu.cfs_period_us"), &p.to_string())?;
                    this.write(&quota_file, &q.to_string())
                }
                (Backend::V1, None) => this.write(&quota_file, "-1"),
            }
        };
        let write_burst = |this: &Self, b: u64| this.write(&burst_file, &b.to_string());
        match (quota, burst) {
            (None, None) => {}
            (None, Some(b)) => write_burst(self, b)?,
            (Some(q), None) => {
                if has_burst
                    && let Limit::Value(q) = q
                    && read_u64(&burst_file)? > q
                {
                    write_burst(self, q)?;
                }
                write_quota(self)?;
            }
            (Some(_), Some(b)) => {
                let current = match backend {
                    Backend::V2 => read_v2_quota(&quota_file)?,
                    Backend::V1 => read_v1_quota(&quota_file)?,
                };
                if b <= current.ceiling() {
                    write_burst(self, b)?;
                    write_quota(self)?;
                } else {
                    write_quota(self)?;
                    write_burst(self, b)?;
                }
            }
        }
        Ok(())
    }

    fn apply_cpuset(&self, l: &Limits, out: &mut Vec<Unsupported>) -> Result<()> {
        for (value, name, what) in [
            (&l.cpuset_cpus, "cpuset.cpus", what::CPUSET_CPUS),
            (&l.cpuset_mems, "cpuset.mems", what::CPUSET_MEMS),
        ] {
            let Some(value) = value else {
                continue;
            };
            match self.v2_file(name).or_else(|| self.v1_file(name)) {
                Some(f) => self.write(&f, value.trim())?,
                None => out.push(self.missing(what, name)),
            }
        }
        Ok(())
    }

    fn apply_io(&self, l: &Limits, out: &mut Vec<Unsupported>) -> Result<()> {
        let Some(w) = l.io_weight else {
            return Ok(());
        };
        if let Some(f) = self.v2_file("io.weight") {
            self.write(&f, &format!("default {w}"))?;
        } else if let Some(f) = self.v2_file("io.bfq.weight") {
            self.write(&f, &format!("default {}", w.clamp(1, 1000)))?;
        } else if let Some(f) = self.v1_file("blkio.weight") {
            self.write(&f, &w.clamp(10, 1000).to_string())?;
        } else if let Some(f) = self.v1_file("blkio.bfq.weight") {
            self.write(&f, &w.clamp(1, 1000).to_string())?;
        } else {
            out.push(self.missing(
                what::IO_WEIGHT,
                "io.weight, io.bfq.weight, blkio.weight or blkio.bfq.weight",
            ));
        }
        Ok(())
    }

    /// The limits currently on the guest's cgroups (same backends as
    /// [`GuestCgroup::apply`]); a field is `None` where the host has no
    /// such limit for the guest.
    pub fn limits(&self) -> Result<CurrentLimits> {
        let mut c = CurrentLimits::default();
        match self.backend("memory.max", "memory.limit_in_bytes") {
            Some((Backend::V2, dir)) => {
                let max = read_v2_limit(&dir.join("memory.max"))?;
                c.memory_max = Some(max);
                c.memory_soft = opt(&dir.join("memory.high"), read_v2_limit)?;
                c.memory_low = opt(&dir.join("memory.low"), read_v2_limit)?;
                c.memory_swap_max = opt(&dir.join("memory.swap.max"), read_v2_limit)?.map(|swap| {
                    match (max, swap) {
                        (Limit::Value(m), Limit::Value(s)) => Limit::Value(m.saturating_add(s)),
                        _ => Limit::Max,
                    }
                });
            }
            Some((Backend::V1, dir)) => {
                c.memory_max = Some(read_v1_limit(&dir.join("memory.limit_in_bytes"))?);
                c.memory_soft = opt(&dir.join("memory.soft_limit_in_bytes"), read_v1_limit)?;
                c.memory_swap_max = opt(&dir.join("memory.memsw.limit_in_bytes"), read_v1_limit)?;
            }
            None => {}
        }
        if let Some(f) = self
            .v2_file("pids.max")
            .or_else(|| self.v1_file("pids.max"))
        {
            c.pids_max = Some(read_v2_limit(&f)?);
        }
        match self.backend("cpu.max", "cpu.cfs_quota_us") {
            Some((Backend::V2, dir)) => {
                let f = dir.join("cpu.max");
                let text = read_file(&f)?;
                let mut words = text.split_whitespace();
                let (q, p) = (words.next(), words.next());
                c.cpu_quota_us = Some(parse_v2_limit(&f, q.unwrap_or_default())?);
                c.cpu_period_us = p.map(|p| parse_u64(&f, p)).transpose()?;
                c.cpu_burst_us = opt(&dir.join("cpu.max.burst"), read_u64)?;
            }
            Some((Backend::V1, dir)) => {
                c.cpu_quota_us = Some(read_v1_quota(&dir.join("cpu.cfs_quota_us"))?);
                c.cpu_period_us = opt(&dir.join("cpu.cfs_period_us"), read_u64)?;
                c.cpu_burst_us = opt(&dir.join("cpu.cfs_burst_us"), read_u64)?;
            }
            None => {}
        }
        if let Some(f) = self.v2_file("cpu.weight") {
            c.cpu_weight = Some(read_u64(&f)?);
        } else if let Some(f) = self.v1_file("cpu.shares") {
            c.cpu_weight = Some(shares_to_weight(read_u64(&f)?));
        }
        let list = |name: &str| -> Result<Option<String>> {
            match self.v2_file(name).or_else(|| self.v1_file(name)) {
                Some(f) => Ok(Some(read_file(&f)?.trim().to_owned())),
                None => Ok(None),
            }
        };
        c.cpuset_cpus = list("cpuset.cpus")?;
        c.cpuset_mems = list("cpuset.mems")?;
        c.io_weight = match self
            .v2_file("io.weight")
            .or_else(|| self.v2_file("io.bfq.weight"))
            .or_else(|| self.v1_file("blkio.weight"))
            .or_else(|| self.v1_file("blkio.bfq.weight"))
        {
            Some(f) => Some(read_weight(&f)?),
            None => None,
        };
        Ok(c)
    }
}

fn validate(l: &Limits) -> Result<()> {
    let invalid = |what, value: &dyn fmt::Display, reason| {
        Err(Error::InvalidLimit {
            what,
            value: value.to_string(),
            reason,
        })
    };
    if let Some(w) = l.cpu_weight
        && !(1..=10_000).contains(&w)
    {
        return invalid(what::CPU_WEIGHT, &w, "must be 1..=10000");
    }
    if let Some(w) = l.io_weight
        && !(1..=10_000).contains(&w)
    {
        return invalid(what::IO_WEIGHT, &w, "must be 1..=10000");
    }
    if let Some((q, p)) = l.cpu_max {
        if l.cpu_max_clear {
            return invalid(
                what::CPU_MAX,
                &format!("{q} {p}"),
                "cannot be both set and cleared",
            );
        }
        if q == 0 || p == 0 {
            return invalid(
                what::CPU_MAX,
                &format!("{q} {p}"),
                "quota and period must be positive",
            );
        }
        if let Some(b) = l.cpu_burst_us
            && b > q
        {
            return invalid(what::CPU_BURST, &b, "exceeds the cpu quota");
        }
    }
    if let (Some(m), Some(t)) = (l.memory_max, l.memory_swap_max)
        && t.ceiling() < m.ceiling()
    {
        return invalid(
            what::MEMORY_SWAP,
            &t,
            "below the memory limit (it is memory + swap)",
        );
    }
    Ok(())
}

/// cgroup2 `cpu.weight` → v1 `cpu.shares`: 100 ↔ 1024 (both defaults),
/// at least 2 (the kernel's minimum).
pub(crate) fn weight_to_shares(weight: u64) -> u64 {
    (weight.saturating_mul(1024) / 100).clamp(2, 262_144)
}

/// v1 `cpu.shares` → cgroup2 `cpu.weight`, rounded.
pub(crate) fn shares_to_weight(shares: u64) -> u64 {
    ((shares.saturating_mul(100) + 512) / 1024).clamp(1, 10_000)
}

fn parent_of(file: &Path) -> PathBuf {
    file.parent().map(Path::to_path_buf).unwrap_or_default()
}

/// `read(path)`, or `None` if the file does not exist.
fn opt<T>(path: &Path, read: impl FnOnce(&Path) -> Result<T>) -> Result<Option<T>> {
    if !path.is_file() {
        return Ok(None);
    }
    match read(path) {
        Ok(v) => Ok(Some(v)),
        Err(Error::Io { source, .. }) if source.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

pub(crate) fn parse_u64(path: &Path, word: &str) -> Result<u64> {
    word.trim().parse().map_err(|_| Error::Parse {
        path: path.to_path_buf(),
        line: word.to_owned(),
        reason: "expected a number",
    })
}

pub(crate) fn read_u64(path: &Path) -> Result<u64> {
    parse_u64(path, &read_file(path)?)
}

fn parse_v2_limit(path: &Path, word: &str) -> Result<Limit> {
    match word.trim() {
        "max" => Ok(Limit::Max),
        w => parse_u64(path, w).map(Limit::Value),
    }
}

/// A cgroup2 limit file (or v1 `pids.max`): `max` or a number.
fn read_v2_limit(path: &Path) -> Result<Limit> {
    parse_v2_limit(path, &read_file(path)?)
}

/// A v1 memory limit file: bytes, "unlimited" as a huge number (or `-1`,
/// as written).
fn read_v1_limit(path: &Path) -> Result<Limit> {
    let text = read_file(path)?;
    if text.trim() == "-1" {
        return Ok(Limit::Max);
    }
    let v = parse_u64(path, &text)?;
    Ok(if v >= V1_UNLIMITED_FROM {
        Limit::Max
    } else {
        Limit::Value(v)
    })
}

/// The quota in cgroup2 `cpu.max` (`max 100000`, `25000 100000`).
fn read_v2_quota(path: &Path) -> Result<Limit> {
    let text = read_file(path)?;
    parse_v2_limit(path, text.split_whitespace().next().unwrap_or_default())
}

/// v1 `cpu.cfs_quota_us`: `-1` or µs.
fn read_v1_quota(path: &Path) -> Result<Limit> {
    let text = read_file(path)?;
    match text.trim() {
        "-1" => Ok(Limit::Max),
        w => parse_u64(path, w).map(Limit::Value),
    }
}

/// An I/O weight file: `default N` (cgroup2, maybe followed by per-device
/// lines) or `N` (v1).
fn read_weight(path: &Path) -> Result<u64> {
    let text = read_file(path)?;
    let line = text
        .lines()
        .find(|l| l.starts_with("default"))
        .or_else(|| text.lines().next())
        .unwrap_or_default();
    parse_u64(path, line.trim_start_matches("default"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::testutil::{HOST_V1, get, put, unified, v1_host};
    use crate::{CgroupFs, Layout, V1Controller};

    const MIB: u64 = 1 << 20;

    fn full() -> Limits {
        Limits {
            memory_max: Some(Limit::Value(64 * MIB)),
            memory_soft: Some(Limit::Value(48 * MIB)),
            memory_low: None,
            memory_swap_max: Some(Limit::Value(96 * MIB)),
            pids_max: Some(Limit::Value(20)),
            cpu_max: Some((25_000, 100_000)),
            cpu_max_clear: false,
            cpu_burst_us: Some(10_000),
            cpu_weight: Some(200),
            cpuset_cpus: Some("0-1".to_owned()),
            cpuset_mems: Some("0".to_owned()),
            io_weight: Some(300),
        }
    }

    /// The writes since the last call, as (file name relative to `dir`,
    /// data).
    fn writes(fs: &CgroupFs, dir: &Path) -> Vec<(String, String)> {
        fs.take_fixture_writes()
            .into_iter()
            .map(|(p, d)| {
                let rel = p.strip_prefix(dir).unwrap_or(&p).display().to_string();
                (rel, d)
            })
            .collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn unified_create_enables_controllers() {
        let (tmp, fs) = unified("cpuset cpu io memory pids hugetlb");
        let g = GuestCgroup::create(&fs, None, "g").unwrap();
        let r = tmp.path();
        // Enabled in the parent (here the root) and in the vserver level,
        // one controller per write; hugetlb is not ours to enable.
        let w = writes(&fs, r);
        let mut want = Vec::new();
        for d in ["cgroup.subtree_control", "vserver/cgroup.subtree_control"] {
            for c in ["cpuset", "cpu", "io", "memory", "pids"] {
                want.push((d.to_owned(), format!("+{c}")));
            }
        }
        assert_eq!(w, want);
        assert_eq!(
            get(&r.join("vserver/cgroup.subtree_control")).trim(),
            "cpu cpuset io memory pids"
        );
        let dir = g.v2_dir().unwrap();
        for f in [
            "memory.max",
            "pids.max",
            "cpu.max",
            "cpuset.cpus",
            "io.weight",
        ] {
            assert!(dir.join(f).is_file(), "{f}");
        }
        // A second guest: nothing left to enable.
        GuestCgroup::create(&fs, None, "h").unwrap();
        assert!(writes(&fs, r).is_empty());
    }

    #[test]
    fn unified_apply_writes_exactly_the_v2_files() {
        let (_tmp, fs) = unified("cpuset cpu io memory pids");
        let g = GuestCgroup::create(&fs, None, "g").unwrap();
        let dir = g.v2_dir().unwrap().to_path_buf();
        fs.take_fixture_writes();
        assert!(g.apply(&full()).unwrap().is_empty());
        assert_eq!(
            writes(&fs, &dir),
            pairs(&[
                ("memory.max", "67108864"),
                ("memory.high", "50331648"),
                // memory+swap total minus memory.
                ("memory.swap.max", "33554432"),
                ("pids.max", "20"),
                // The burst fits the current (unlimited) quota: first.
                ("cpu.max.burst", "10000"),
                ("cpu.max", "25000 100000"),
                ("cpu.weight", "200"),
                ("cpuset.cpus", "0-1"),
                ("cpuset.mems", "0"),
                ("io.weight", "default 300"),
            ])
        );
        assert_eq!(get(&dir.join("cpu.max")), "25000 100000");
        let back = g.limits().unwrap();
        assert_eq!(
            back,
            CurrentLimits {
                memory_max: Some(Limit::Value(64 * MIB)),
                memory_soft: Some(Limit::Value(48 * MIB)),
                memory_low: Some(Limit::Value(0)),
                memory_swap_max: Some(Limit::Value(96 * MIB)),
                pids_max: Some(Limit::Value(20)),
                cpu_quota_us: Some(Limit::Value(25_000)),
                cpu_period_us: Some(100_000),
                cpu_burst_us: Some(10_000),
                cpu_weight: Some(200),
                cpuset_cpus: Some("0-1".to_owned()),
                cpuset_mems: Some("0".to_owned()),
                io_weight: Some(300),
            }
        );

        // Max writes "max"; clearing the quota writes "max" to cpu.max.
        let unlimited = Limits {
            memory_max: Some(Limit::Max),
            memory_soft: Some(Limit::Max),
            memory_swap_max: Some(Limit::Max),
            pids_max: Some(Limit::Max),
            cpu_max_clear: true,
            ..Limits::default()
        };
        assert!(g.apply(&unlimited).unwrap().is_empty());
        assert_eq!(
            writes(&fs, &dir),
            pairs(&[
                ("memory.max", "max"),
                ("memory.high", "max"),
                ("memory.swap.max", "max"),
                ("pids.max", "max"),
                ("cpu.max", "max"),
            ])
        );
        let back = g.limits().unwrap();
        assert_eq!(back.memory_max, Some(Limit::Max));
        assert_eq!(back.memory_swap_max, Some(Limit::Max));
        assert_eq!(back.pids_max, Some(Limit::Max));
        assert_eq!(back.cpu_quota_us, Some(Limit::Max));
        assert_eq!(back.cpu_period_us, None);

        // Nothing set: nothing written.
        assert!(g.apply(&Limits::default()).unwrap().is_empty());
        assert!(Limits::default().is_empty());
        assert!(writes(&fs, &dir).is_empty());
    }

    #[test]
    fn v2_swap_total_uses_the_current_memory_limit() {
        let (_tmp, fs) = unified("memory");
        let g = GuestCgroup::create(&fs, None, "g").unwrap();
        let dir = g.v2_dir().unwrap().to_path_buf();
        put(&dir.join("memory.max"), "67108864\n");
        fs.take_fixture_writes();
        let l = Limits {
            memory_swap_max: Some(Limit::Value(100 * MIB)),
            ..Limits::default()
        };
        g.apply(&l).unwrap();
        assert_eq!(
            writes(&fs, &dir),
            pairs(&[("memory.swap.max", &(36 * MIB).to_string())])
        );
        // Below the current memory limit: refused, nothing written.
        let l = Limits {
            memory_swap_max: Some(Limit::Value(32 * MIB)),
            ..Limits::default()
        };
        let err = g.apply(&l).unwrap_err();
        assert!(matches!(err, Error::InvalidLimit { .. }), "{err}");
        assert!(writes(&fs, &dir).is_empty());
        // No memory limit: swap capped at the total.
        put(&dir.join("memory.max"), "max\n");
        g.apply(&Limits {
            memory_swap_max: Some(Limit::Value(32 * MIB)),
            ..Limits::default()
        })
        .unwrap();
        assert_eq!(get(&dir.join("memory.swap.max")), (32 * MIB).to_string());
        // No swap accounting: unsupported, the memory limit still applies.
        std::fs::remove_file(dir.join("memory.swap.max")).unwrap();
        let u = g
            .apply(&Limits {
                memory_max: Some(Limit::Value(MIB)),
                memory_swap_max: Some(Limit::Value(2 * MIB)),
                ..Limits::default()
            })
            .unwrap();
        assert_eq!(u.len(), 1, "{u:?}");
        assert_eq!(u[0].what, "memory+swap limit");
        assert!(u[0].why.contains("memory.swap.max"), "{}", u[0]);
        assert_eq!(get(&dir.join("memory.max")), MIB.to_string());
        assert_eq!(g.limits().unwrap().memory_swap_max, None);
    }

    #[test]
    fn unified_without_controllers_reports_unsupported() {
        // The parent offers memory and pids only.
        let (_tmp, fs) = unified("memory pids");
        let g = GuestCgroup::create(&fs, None, "g").unwrap();
        let dir = g.v2_dir().unwrap().to_path_buf();
        fs.take_fixture_writes();
        let u = g.apply(&full()).unwrap();
        let what: Vec<&str> = u.iter().map(|u| u.what).collect();
        assert_eq!(
            what,
            [
                "cpu quota",
                "cpu burst",
                "cpu weight",
                "cpuset cpus",
                "cpuset mems",
                "io weight"
            ]
        );
        assert!(u[0].why.contains("cpu.max"), "{}", u[0]);
        let files: Vec<String> = writes(&fs, &dir).into_iter().map(|(f, _)| f).collect();
        assert_eq!(
            files,
            ["memory.max", "memory.high", "memory.swap.max", "pids.max"]
        );
        let back = g.limits().unwrap();
        assert_eq!(back.cpu_quota_us, None);
        assert_eq!(back.cpu_weight, None);
        assert_eq!(back.io_weight, None);
        assert_eq!(back.pids_max, Some(Limit::Value(20)));

        // A hybrid host's controller-less cgroup2 and no v1 hierarchy:
        // everything unsupported, nothing fails.
        let (_tmp, fs) = v1_host(Layout::Hybrid, &[]);
        let g = GuestCgroup::create(&fs, None, "g").unwrap();
        assert_eq!(g.apply(&full()).unwrap().len(), 10);
        assert_eq!(g.limits().unwrap(), CurrentLimits::default());
    }

    #[test]
    fn unified_parent_with_processes_refuses_controllers() {
        let (tmp, fs) = unified("cpuset cpu io memory pids");
        let r = tmp.path();
        // The caller's cgroup /user is offered every controller but has
        // processes of its own: the kernel refuses to enable any below it.
        put(
            &r.join("cgroup.subtree_control"),
            "cpu cpuset io memory pids\n",
        );
        put(&r.join("user/cgroup.procs"), "4242\n");
        put(
            &r.join("user/cgroup.controllers"),
            "cpu cpuset io memory pids\n",
        );
        put(&r.join("user/cgroup.subtree_control"), "\n");
        let fs = fs.with_self_cgroup("0::/user\n");
        let g = GuestCgroup::create(&fs, None, "g").unwrap();
        assert_eq!(get(&r.join("user/cgroup.subtree_control")), "\n");
        let u = g.apply(&full()).unwrap();
        assert_eq!(u.len(), 10, "{u:?}");
        for x in &u {
            assert!(x.busy, "{x}");
            assert!(
                x.why.contains("user/cgroup.subtree_control")
                    && x.why.contains("busy")
                    && x.why.starts_with("the kernel refused the "),
                "{x}"
            );
        }
        assert!(u[0].why.contains("memory controller"), "{}", u[0]);
        // Nothing limits: no limit asked, nothing unsupported.
        assert!(g.apply(&Limits::default()).unwrap().is_empty());
        g.remove().unwrap();
        // A base without processes (a delegated slice): every limit applies.
        let g = GuestCgroup::create(&fs, Some(Path::new("/machine")), "g").unwrap();
        let u = g.apply(&full()).unwrap();
        assert!(u.is_empty(), "{u:?}");
        assert_eq!(get(&g.v2_dir().unwrap().join("pids.max")), "20");
    }

    /// `cgroup/<subsys>.<knob>`: v2 where the file is in cgroup2, else the
    /// v1 hierarchy that has it; `blkio.weight` falls back to BFQ's.
    #[test]
    fn knobs_go_to_the_hierarchy_that_has_them() {
        let (tmp, fs) = v1_host(Layout::Hybrid, HOST_V1);
        let r = tmp.path();
        let g = GuestCgroup::create(&fs, None, "g").unwrap();
        fs.take_fixture_writes();
        let f = g.write_knob("cpu.shares", "2048").unwrap().unwrap();
        assert_eq!(f, r.join("cpu/vserver/g/cpu.shares"));
        let f = g.write_knob("blkio.weight", "500").unwrap().unwrap();
        assert_eq!(f, r.join("blkio/vserver/g/blkio.bfq.weight"));
        assert_eq!(get(&f), "500");
        // cgroup2 names on the hybrid host's controller-less cgroup2: none.
        assert_eq!(g.write_knob("memory.max", "1").unwrap(), None);
        assert_eq!(g.write_knob("io.weight", "1").unwrap(), None);
        assert_eq!(fs.take_fixture_writes().len(), 2);
        for bad in ["cgroup.procs", "tasks", "../cpu.shares"] {
            assert!(g.write_knob(bad, "1").is_err(), "{bad}");
        }
        let (_tmp, fs) = unified("cpu io memory pids");
        let g = GuestCgroup::create(&fs, None, "g").unwrap();
        let f = g.write_knob("io.weight", "default 300").unwrap().unwrap();
        assert_eq!(f, g.v2_dir().unwrap().join("io.weight"));
        assert_eq!(get(&f), "default 300");
        assert_eq!(g.write_knob("cpu.shares", "1").unwrap(), None);
    }

    /// The guaranteed minimum (`vlimit -M`): cgroup2 `memory.low`; the v1
    /// memory controller has none, said so by name.
    #[test]
    fn guaranteed_minimum_is_memory_low_on_v2_only() {
        let low = Limits {
            memory_low: Some(Limit::Value(32 * MIB)),
            ..Limits::default()
        };
        let (_tmp, fs) = unified("memory");
        let g = GuestCgroup::create(&fs, None, "g").unwrap();
        let dir = g.v2_dir().unwrap().to_path_buf();
        fs.take_fixture_writes();
        assert!(g.apply(&low).unwrap().is_empty());
        assert_eq!(
            writes(&fs, &dir),
            pairs(&[("memory.low", &(32 * MIB).to_string())])
        );
        assert_eq!(g.limits().unwrap().memory_low, Some(Limit::Value(32 * MIB)));
        let (_tmp, fs) = v1_host(Layout::Hybrid, HOST_V1);
        let g = GuestCgroup::create(&fs, None, "g").unwrap();
        fs.take_fixture_writes();
        let u = g.apply(&low).unwrap();
        assert_eq!(u.len(), 1, "{u:?}");
        assert_eq!(u[0].what, "memory guaranteed minimum");
        assert!(u[0].why.contains("no guaranteed minimum"), "{}", u[0]);
        assert!(fs.take_fixture_writes().is_empty());
        assert_eq!(g.limits().unwrap().memory_low, None);
    }

    #[test]
    fn hybrid_apply_writes_v1_files() {
        let (tmp, fs) = v1_host(Layout::Hybrid, HOST_V1);
        let g = GuestCgroup::create(&fs, None, "g").unwrap();
        let r = tmp.path();
        assert_eq!(
            g.paths(),
            [
                "unified", "pids", "memory", "cpu", "cpuacct", "cpuset", "blkio"
            ]
            .map(|h| r.join(h).join("vserver/g"))
        );
        fs.take_fixture_writes();
        assert!(g.apply(&full()).unwrap().is_empty());
        assert_eq!(
            writes(&fs, r),
            pairs(&[
                // Raising from unlimited: memory first fits.
                ("memory/vserver/g/memory.limit_in_bytes", "67108864"),
                ("memory/vserver/g/memory.memsw.limit_in_bytes", "100663296"),
                ("memory/vserver/g/memory.soft_limit_in_bytes", "50331648"),
                ("pids/vserver/g/pids.max", "20"),
                ("cpu/vserver/g/cpu.cfs_burst_us", "10000"),
                ("cpu/vserver/g/cpu.cfs_period_us", "100000"),
                ("cpu/vserver/g/cpu.cfs_quota_us", "25000"),
                // weight 200 × 1024 / 100
                ("cpu/vserver/g/cpu.shares", "2048"),
                ("cpuset/vserver/g/cpuset.cpus", "0-1"),
                ("cpuset/vserver/g/cpuset.mems", "0"),
                ("blkio/vserver/g/blkio.bfq.weight", "300"),
            ])
        );
        let back = g.limits().unwrap();
        assert_eq!(back.memory_max, Some(Limit::Value(64 * MIB)));
        assert_eq!(back.memory_swap_max, Some(Limit::Value(96 * MIB)));
        assert_eq!(back.memory_soft, Some(Limit::Value(48 * MIB)));
        assert_eq!(back.cpu_quota_us, Some(Limit::Value(25_000)));
        assert_eq!(back.cpu_period_us, Some(100_000));
        assert_eq!(back.cpu_burst_us, Some(10_000));
        assert_eq!(back.cpu_weight, Some(200));
        assert_eq!(back.io_weight, Some(300));
        assert_eq!(back.cpuset_cpus.as_deref(), Some("0-1"));

        // Max in v1: -1 for memory and the quota, "max" for pids.
        g.apply(&Limits {
            memory_max: Some(Limit::Max),
            memory_swap_max: Some(Limit::Max),
            pids_max: Some(Limit::Max),
            cpu_max_clear: true,
            ..Limits::default()
        })
        .unwrap();
        assert_eq!(
            writes(&fs, r),
            pairs(&[
                // Raising the memory limit above the current total (96M):
                // the total goes first.
                ("memory/vserver/g/memory.memsw.limit_in_bytes", "-1"),
                ("memory/vserver/g/memory.limit_in_bytes", "-1"),
                ("pids/vserver/g/pids.max", "max"),
                ("cpu/vserver/g/cpu.cfs_quota_us", "-1"),
            ])
        );
        // What the kernel reads back for -1.
        put(
            &r.join("memory/vserver/g/memory.limit_in_bytes"),
            "9223372036854771712\n",
        );
        put(&r.join("cpu/vserver/g/cpu.cfs_quota_us"), "-1\n");
        let back = g.limits().unwrap();
        assert_eq!(back.memory_max, Some(Limit::Max));
        assert_eq!(back.cpu_quota_us, Some(Limit::Max));
    }

    #[test]
    fn v1_memsw_order_raising_and_lowering() {
        let (tmp, fs) = v1_host(Layout::Hybrid, &["memory"]);
        let g = GuestCgroup::create(&fs, None, "g").unwrap();
        let dir = tmp.path().join("memory/vserver/g");
        let set = |m: u64, t: u64| Limits {
            memory_max: Some(Limit::Value(m)),
            memory_swap_max: Some(Limit::Value(t)),
            ..Limits::default()
        };
        let files = |fs: &CgroupFs| -> Vec<String> {
            writes(fs, &dir).into_iter().map(|(f, _)| f).collect()
        };
        put(
            &dir.join("memory.limit_in_bytes"),
            &format!("{}\n", 64 * MIB),
        );
        put(
            &dir.join("memory.memsw.limit_in_bytes"),
            &format!("{}\n", 96 * MIB),
        );
        fs.take_fixture_writes();
        // Raising 64M/96M → 1G/2G: 1G does not fit under the current 96M
        // total, so the total goes first.
        g.apply(&set(1024 * MIB, 2048 * MIB)).unwrap();
        assert_eq!(
            files(&fs),
            ["memory.memsw.limit_in_bytes", "memory.limit_in_bytes"]
        );
        // Lowering 1G/2G → 32M/48M: the memory limit goes first, else the
        // total would be below it.
        g.apply(&set(32 * MIB, 48 * MIB)).unwrap();
        assert_eq!(
            files(&fs),
            ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"]
        );
        assert_eq!(
            get(&dir.join("memory.limit_in_bytes")),
            (32 * MIB).to_string()
        );
        assert_eq!(
            get(&dir.join("memory.memsw.limit_in_bytes")),
            (48 * MIB).to_string()
        );
        // Raising within the current total: memory first.
        g.apply(&set(40 * MIB, 200 * MIB)).unwrap();
        assert_eq!(
            files(&fs),
            ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"]
        );
        // A total below the memory limit is refused before any write.
        let err = g.apply(&set(64 * MIB, 32 * MIB)).unwrap_err();
        assert!(matches!(err, Error::InvalidLimit { .. }), "{err}");
        assert!(err.to_string().contains("memory+swap"), "{err}");
        assert!(files(&fs).is_empty());
        // No memsw files (no swap accounting): the total is unsupported.
        std::fs::remove_file(dir.join("memory.memsw.limit_in_bytes")).unwrap();
        let u = g.apply(&set(8 * MIB, 16 * MIB)).unwrap();
        assert_eq!(u.len(), 1);
        assert!(u[0].why.contains("memory.memsw.limit_in_bytes"), "{}", u[0]);
        assert_eq!(files(&fs), ["memory.limit_in_bytes"]);
    }

    #[test]
    fn burst_never_exceeds_the_quota_in_between() {
        for layout in [Layout::Unified, Layout::Hybrid] {
            let (_tmp, fs) = match layout {
                Layout::Unified => unified("cpu"),
                _ => v1_host(Layout::Hybrid, &["cpu"]),
            };
            let g = GuestCgroup::create(&fs, None, "g").unwrap();
            let (quota, burst) = match layout {
                Layout::Unified => ("cpu.max", "cpu.max.burst"),
                _ => ("cpu.cfs_quota_us", "cpu.cfs_burst_us"),
            };
            let dir = g.paths().last().unwrap().clone();
            let order = |fs: &CgroupFs| -> Vec<String> {
                writes(fs, &dir)
                    .into_iter()
                    .map(|(f, _)| f)
                    .filter(|f| f != "cpu.cfs_period_us")
                    .collect()
            };
            let bw = |q, b| Limits {
                cpu_max: Some((q, 100_000)),
                cpu_burst_us: b,
                ..Limits::default()
            };
            g.apply(&bw(25_000, None)).unwrap();
            fs.take_fixture_writes();
            // 40000 does not fit the current quota 25000: quota first.
            g.apply(&bw(50_000, Some(40_000))).unwrap();
            assert_eq!(order(&fs), [quota, burst], "{layout:?}");
            // 10000 fits the current quota: burst first.
            g.apply(&bw(20_000, Some(10_000))).unwrap();
            assert_eq!(order(&fs), [burst, quota], "{layout:?}");
            // A quota below the current burst, no burst given: the burst is
            // lowered to the quota first.
            g.apply(&bw(5_000, None)).unwrap();
            assert_eq!(order(&fs), [burst, quota], "{layout:?}");
            assert_eq!(g.limits().unwrap().cpu_burst_us, Some(5_000));
            // A burst alone is written alone.
            g.apply(&Limits {
                cpu_burst_us: Some(1_000),
                ..Limits::default()
            })
            .unwrap();
            assert_eq!(order(&fs), [burst], "{layout:?}");
            // Burst above the requested quota: refused up front.
            let err = g.apply(&bw(5_000, Some(6_000))).unwrap_err();
            assert!(matches!(err, Error::InvalidLimit { .. }), "{err}");
            assert!(order(&fs).is_empty());
        }
    }

    #[test]
    fn invalid_values_are_refused_before_writing() {
        let (_tmp, fs) = unified("cpu io memory");
        let g = GuestCgroup::create(&fs, None, "g").unwrap();
        fs.take_fixture_writes();
        let bad = [
            Limits {
                cpu_weight: Some(0),
                ..Limits::default()
            },
            Limits {
                cpu_weight: Some(10_001),
                ..Limits::default()
            },
            Limits {
                io_weight: Some(0),
                ..Limits::default()
            },
            Limits {
                cpu_max: Some((25_000, 100_000)),
                cpu_max_clear: true,
                ..Limits::default()
            },
            Limits {
                cpu_max: Some((0, 100_000)),
                ..Limits::default()
            },
            Limits {
                memory_max: Some(Limit::Max),
                memory_swap_max: Some(Limit::Value(MIB)),
                ..Limits::default()
            },
            Limits {
                // Valid memory, invalid weight: nothing at all written.
                memory_max: Some(Limit::Value(MIB)),
                cpu_weight: Some(0),
                ..Limits::default()
            },
        ];
        for l in bad {
            let err = g.apply(&l).unwrap_err();
            assert!(matches!(err, Error::InvalidLimit { .. }), "{l:?}: {err}");
        }
        assert!(fs.take_fixture_writes().is_empty());
    }

    #[test]
    fn io_weight_files_and_ranges() {
        // cgroup2 with BFQ only: io.bfq.weight, at most 1000.
        let (_tmp, fs) = unified("io");
        let g = GuestCgroup::create(&fs, None, "g").unwrap();
        let dir = g.v2_dir().unwrap().to_path_buf();
        std::fs::remove_file(dir.join("io.weight")).unwrap();
        put(&dir.join("io.bfq.weight"), "default 100\n");
        fs.take_fixture_writes();
        let io = |w| Limits {
            io_weight: Some(w),
            ..Limits::default()
        };
        g.apply(&io(5000)).unwrap();
        assert_eq!(
            writes(&fs, &dir),
            pairs(&[("io.bfq.weight", "default 1000")])
        );
        assert_eq!(g.limits().unwrap().io_weight, Some(1000));

        // v1 CFQ-style blkio.weight: 10..=1000.
        let (tmp, fs) = v1_host(Layout::Hybrid, &["blkio"]);
        let g = GuestCgroup::create(&fs, None, "g").unwrap();
        let dir = tmp.path().join("blkio/vserver/g");
        std::fs::remove_file(dir.join("blkio.bfq.weight")).unwrap();
        put(&dir.join("blkio.weight"), "500\n");
        fs.take_fixture_writes();
        g.apply(&io(1)).unwrap();
        assert_eq!(writes(&fs, &dir), pairs(&[("blkio.weight", "10")]));
        // Neither: unsupported.
        std::fs::remove_file(dir.join("blkio.weight")).unwrap();
        let u = g.apply(&io(100)).unwrap();
        assert_eq!(u.len(), 1);
        assert_eq!(u[0].what, "io weight");
    }

    #[test]
    fn shares_conversion() {
        assert_eq!(weight_to_shares(100), 1024);
        assert_eq!(weight_to_shares(1), 10);
        assert_eq!(weight_to_shares(50), 512);
        assert_eq!(weight_to_shares(10_000), 102_400);
        assert_eq!(weight_to_shares(0), 2);
        for w in [1, 7, 80, 100, 125, 333, 10_000] {
            assert_eq!(shares_to_weight(weight_to_shares(w)), w, "{w}");
        }
        assert_eq!(shares_to_weight(2), 1);
    }

    #[test]
    fn comounted_cpu_cpuacct() {
        // Mounted as one `cpu,cpuacct` hierarchy, without symlinks.
        let (tmp, fs) = v1_host(Layout::Hybrid, &["cpu,cpuacct", "memory"]);
        let r = tmp.path();
        assert_eq!(
            fs.hierarchy_root(Hierarchy::V1(V1Controller::Cpuacct)),
            Some(r.join("cpu,cpuacct"))
        );
        let g = GuestCgroup::create(&fs, None, "g").unwrap();
        let cpu = r.join("cpu,cpuacct/vserver/g");
        assert_eq!(
            g.paths(),
            vec![
                r.join("unified/vserver/g"),
                r.join("memory/vserver/g"),
                cpu.clone()
            ]
        );
        assert_eq!(g.dir(Hierarchy::V1(V1Controller::Cpu)), Some(cpu.as_path()));
        assert_eq!(g.dir(Hierarchy::V1(V1Controller::Cpuacct)), None);
        assert!(cpu.join("cpuacct.stat").is_file() && cpu.join("cpu.shares").is_file());
        g.apply(&Limits {
            cpu_weight: Some(50),
            ..Limits::default()
        })
        .unwrap();
        assert_eq!(get(&cpu.join("cpu.shares")), "512");
        // The saved paths find the same directories again.
        let back = GuestCgroup::from_paths(&fs, &g.paths()).unwrap();
        assert_eq!(back.hierarchies(), g.hierarchies());
        let opened = GuestCgroup::open(&fs, None, "g").unwrap().unwrap();
        assert_eq!(opened.paths(), g.paths());

        // The same with the usual symlinks cpu and cpuacct → cpu,cpuacct.
        std::os::unix::fs::symlink("cpu,cpuacct", r.join("cpu")).unwrap();
        std::os::unix::fs::symlink("cpu,cpuacct", r.join("cpuacct")).unwrap();
        g.remove().unwrap();
        let g = GuestCgroup::create(&fs, None, "g").unwrap();
        assert_eq!(
            g.paths(),
            vec![
                r.join("unified/vserver/g"),
                r.join("memory/vserver/g"),
                r.join("cpu/vserver/g")
            ]
        );
        assert_eq!(g.limits().unwrap().cpu_weight, Some(100));
    }

    #[test]
    fn limit_serializes_as_max_or_number() {
        let l = Limits {
            memory_max: Some(Limit::Max),
            pids_max: Some(Limit::Value(20)),
            ..Limits::default()
        };
        let v = serde_json::to_value(&l).unwrap();
        assert_eq!(v["memory_max"], "max");
        assert_eq!(v["pids_max"], 20);
        assert!(v["cpu_max"].is_null());
        assert_eq!(Limit::Value(5).to_string(), "5");
        assert_eq!(Limit::Max.to_string(), "max");
        assert_eq!(Limit::Max.value(), None);
    }
}
