//! Context limits on cgroups (issue: Context Limits, Token Bucket, Memory
//! Limits): what `rlimits/`, `sched/`, `cpuset/` and `cflags` ask of the
//! guest's cgroup, and the figures `vserver-stat` and `vlimit` show.
//!
//! Mapping, in util-vserver's units:
//! - `rss` hard (pages) → the memory limit (over it the OOM killer acts
//!   inside the guest only), which is also what VIRT_MEM shows the guest as
//!   its memory size (lxcfs reads only the hard limit); `rss` soft → the
//!   memory soft limit (`memory.high` / `memory.soft_limit_in_bytes`);
//! - `rss.min` (pages; `vlimit -M`) → the guaranteed minimum
//!   (`memory.low`), cgroup2 only;
//! - `as` (pages) → memory + swap where the host accounts swap, else the
//!   per-process RLIMIT_AS (the plan keeps it there);
//! - `nproc` → the pids limit;
//! - `sched/` as util-vserver's token bucket (util-vserver.md §2.9: "the
//!   `sched_hard` flag is needed for a hard CPU cap"; §3.1: `sched_prio`,
//!   the bucket's fill level adjusts the priority):
//!   - with `cflags` `sched_hard`, `fill-rate` per `interval` → CPU quota
//!     per 100 ms period (fill-rate 1, interval 4 = 25 % of one CPU) and
//!     `tokens-max` → burst (one token = 1 ms of CPU);
//!   - without `sched_hard` (or with `sched_prio` too) the bucket weighs
//!     instead: the CPU weight is 100 × (fill-rate/interval) / (1/4), the
//!     kernel's default bucket (fill-rate 1, interval 4) weighing as a
//!     plain cgroup (100); without `sched_hard` no quota and no burst;
//!   - `priority-bias` scales that weight (or the default 100) as nice
//!     levels do (×1.25 per step down);
//! - `cpuset/cpus`, `cpuset/mems` → the cpuset;
//! - `cgroup/<subsys>.<knob>` → that control file, written as it is after
//!   the rest, in whichever hierarchy has it.

use vs_cgroup::{GuestCgroup, Limit, Limits};
use vs_config::{CFlag, GuestName, GuestSpec, LimitSet, LimitValue, Paths, RlimitResource};

use crate::error::{Error, Result};

/// The CFS period quotas are expressed against, µs.
pub const CPU_PERIOD_US: u64 = 100_000;

fn bytes(v: Option<LimitValue>, page: u64) -> Option<Limit> {
    match v? {
        LimitValue::Inf => Some(Limit::Max),
        LimitValue::Amount(n) => Some(Limit::Value(n.saturating_mul(page))),
    }
}

/// The CPU weight for a priority bias: 100 at 0, ×1.25 per step down.
pub fn weight_for_bias(bias: i64) -> u64 {
    weight_for(None, bias)
}

/// The token bucket Linux-VServer's kernel gave a context by default
/// (fill-rate 1 per interval 4): what weighs as a plain cgroup.
const DEFAULT_BUCKET: (u64, u64) = (1, 4);

/// The CPU weight of a bucket (`Some((fill_rate, interval))`: its share
/// relative to the default bucket's) scaled by a priority bias (×1.25 per
/// step down, as nice levels weigh); 1..=10000, 100 for the default.
pub fn weight_for(bucket: Option<(u64, u64)>, bias: i64) -> u64 {
    let share = bucket.map_or(1.0, |(fill, interval)| {
        (fill as f64 / interval as f64) / (DEFAULT_BUCKET.0 as f64 / DEFAULT_BUCKET.1 as f64)
    });
    let w = 100.0 * share * 1.25f64.powi(-(bias.clamp(-40, 40) as i32));
    (w.round() as u64).clamp(1, 10_000)
}

/// What the guest's configuration asks of its cgroup.
pub fn cgroup_limits(spec: &GuestSpec) -> Limits {
    let page = vs_config::values::page_size();
    let cfg = &spec.config;
    let get = |r: RlimitResource| cfg.rlimits.get(&r).copied().unwrap_or_default();
    let rss = get(RlimitResource::Rss);
    let mut l = Limits {
        memory_max: bytes(rss.hard(), page),
        memory_soft: bytes(rss.soft(), page),
        // Only an explicit `rss.min`: a plain `rss` (all three) as the
        // minimum would protect the whole limit from reclaim.
        memory_low: bytes(rss.min, page),
        memory_swap_max: bytes(get(RlimitResource::As).hard(), page),
        pids_max: match get(RlimitResource::Nproc).hard() {
            Some(LimitValue::Inf) => Some(Limit::Max),
            Some(LimitValue::Amount(n)) => Some(Limit::Value(n)),
            None => None,
        },
        cpuset_cpus: cfg.cpuset.cpus.clone(),
        cpuset_mems: cfg.cpuset.mems.clone(),
        ..Limits::default()
    };
    let s = &cfg.sched;
    let hard = spec.cflags.contains(&CFlag::SchedHard);
    let prio = spec.cflags.contains(&CFlag::SchedPrio);
    let bucket = s.fill_rate.zip(s.interval);
    if let Some((fill, interval)) = bucket
        && hard
    {
        let quota = (CPU_PERIOD_US.saturating_mul(fill) / interval).max(1000);
        l.cpu_max = Some((quota, CPU_PERIOD_US));
        if let Some(max) = s.tokens_max {
            l.cpu_burst_us = Some(max.saturating_mul(1000).min(quota));
        }
    }
    let weighing_bucket = bucket.filter(|_| !hard || prio);
    if weighing_bucket.is_some() || s.priority_bias.is_some() {
        l.cpu_weight = Some(weight_for(weighing_bucket, s.priority_bias.unwrap_or(0)));
    }
    l
}

/// The CPUs (or memory nodes) a list names, if it parses.
fn list_members(list: &str) -> Option<Vec<u32>> {
    let mut out = Vec::new();
    for part in list.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => out.extend(a.parse::<u32>().ok()?..=b.parse::<u32>().ok()?),
            None => out.push(part.parse().ok()?),
        }
    }
    Some(out)
}

/// Checks what only the host can judge, before anything is applied:
/// `cpuset/cpus` and `cpuset/mems` must name CPUs and nodes this host has.
pub fn check(spec: &GuestSpec) -> Result<()> {
    for (rel, value, online) in [
        (
            "cpuset/cpus",
            &spec.config.cpuset.cpus,
            "/sys/devices/system/cpu/online",
        ),
        (
            "cpuset/mems",
            &spec.config.cpuset.mems,
            "/sys/devices/system/node/online",
        ),
    ] {
        let Some(value) = value else { continue };
        let Ok(host) = std::fs::read_to_string(online) else {
            continue;
        };
        let have = list_members(&host).unwrap_or_default();
        let want = list_members(value).unwrap_or_default();
        if want.iter().any(|c| !have.contains(c)) {
            return Err(Error::Config(vs_config::ConfigError::Invalid {
                path: spec.cfgdir.join(rel),
                value: value.clone(),
                expected: format!("members of this host's {}", host.trim()),
            }));
        }
    }
    Ok(())
}

/// The configuration file a cgroup limit comes from (for messages).
fn limit_file(what: &str) -> &'static str {
    match what {
        "memory limit" | "memory soft limit" | "memory guaranteed minimum" => "rlimits/rss",
        "memory+swap limit" => "rlimits/as",
        "pids limit" => "rlimits/nproc",
        "cpu quota" => "sched/fill-rate",
        "cpu burst" => "sched/tokens-max",
        "cpu weight" => "sched/priority-bias",
        "cpuset cpus" => "cpuset/cpus",
        "cpuset mems" => "cpuset/mems",
        _ => "sched",
    }
}

/// Applies the limits to a guest's cgroup. A configured limit this host
/// cannot put on the guest fails with one line naming its file, the
/// cgroup and the reason (and what to do when the guests' parent cgroup
/// has processes of its own), but the memory+swap limit (`as`), which
/// falls back to the per-process RLIMIT_AS: that one is returned, for the
/// log.
pub fn apply(cgroup: &GuestCgroup, spec: &GuestSpec) -> Result<Vec<String>> {
    let unsupported = cgroup.apply(&cgroup_limits(spec))?;
    let mut fallbacks = Vec::new();
    for u in unsupported {
        if u.what == "memory+swap limit" {
            fallbacks.push(format!(
                "{}: {} (RLIMIT_AS per process instead)",
                u.what, u.why
            ));
            continue;
        }
        let mut msg = format!(
            "{}: cannot apply the {}: {}",
            spec.cfgdir.join(limit_file(u.what)).display(),
            u.what,
            u.why
        );
        if u.busy {
            msg.push_str(
                "; set .defaults/cgroup/base to a cgroup without processes of its own (e.g. a slice delegated to vserver)",
            );
        }
        return Err(Error::Setup(msg));
    }
    // util-vserver's `cgroup/<subsys>.<knob>`, after the typed limits (so
    // a knob can refine what they set).
    for (knob, value) in &spec.config.cgroup {
        let file = spec.cfgdir.join("cgroup").join(knob);
        match cgroup.write_knob(knob, value) {
            Ok(Some(_)) => {}
            Ok(None) => {
                let dirs: Vec<String> = cgroup
                    .paths()
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect();
                return Err(Error::Setup(format!(
                    "{}: no control file '{knob}' in the guest's cgroups ({})",
                    file.display(),
                    dirs.join(", ")
                )));
            }
            Err(e) => return Err(Error::Setup(format!("{}: {e}", file.display()))),
        }
    }
    Ok(fallbacks)
}

/// What `vserver-stat` needs of a guest's cgroup.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct GuestFigures {
    /// Resident memory, bytes.
    pub rss_bytes: Option<u64>,
    /// User CPU time, ms.
    pub user_ms: Option<u64>,
    /// System CPU time, ms.
    pub sys_ms: Option<u64>,
}

/// The cgroup figures of a running guest.
pub fn stats(paths: &Paths, name: &GuestName) -> Result<Option<GuestFigures>> {
    let Some(cg) = crate::monitor::find_cgroup(paths, name)? else {
        return Ok(None);
    };
    let s = cg.stats()?;
    Ok(Some(GuestFigures {
        rss_bytes: s.memory_rss.or(s.memory_current),
        user_ms: s.cpu_user_usec.map(|u| u / 1000),
        sys_ms: s.cpu_system_usec.map(|u| u / 1000),
    }))
}

/// Everything `stats --json` and `list --json` show of a guest.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Figures {
    /// The guest.
    pub name: String,
    /// Its context.
    pub context: u32,
    /// `running` or `stopped`.
    pub state: &'static str,
    /// The limits in force (read from the cgroup when running).
    pub limits: Option<vs_cgroup::CurrentLimits>,
    /// Use, maxima, hits, throttling (when running). `processes` counts
    /// the guest's own processes, as `vserver-stat` does: not the exec
    /// broker, which the cgroup (and so `pids_current` and the pids limit)
    /// counts.
    pub stats: Option<vs_cgroup::Stats>,
    /// `vserver-stat`'s VSZ: the virtual sizes of the guest's processes
    /// added up, bytes (when running).
    pub vsz_bytes: Option<u64>,
    /// `vserver-stat`'s UPTIME: time since the guest's init started, ms
    /// (when running).
    pub uptime_ms: Option<u64>,
    /// Network traffic of the guest, as the guest sees it: a private-mode
    /// guest's from the counters of its veth's host end, a shared-mode
    /// guest's from the BPF counters on its cgroup (IP packets its sockets
    /// sent and received). None for a guest with only `lo`.
    pub network: Option<NetCounters>,
}

/// Bytes and packets in and out of a guest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct NetCounters {
    /// Received by the guest.
    pub rx_bytes: u64,
    /// Packets received by the guest.
    pub rx_packets: u64,
    /// Sent by the guest.
    pub tx_bytes: u64,
    /// Packets sent by the guest.
    pub tx_packets: u64,
}

/// The traffic counters of a running guest: see [`Figures::network`].
pub fn net_counters(
    spec: &GuestSpec,
    cgroup: Option<&vs_cgroup::GuestCgroup>,
) -> Result<Option<NetCounters>> {
    if spec.config.netns.is_some() {
        return Ok(veth_counters(spec));
    }
    // Guests without addresses have no counter programs: None.
    let Some(cg) = cgroup else {
        return Ok(None);
    };
    let fd = cg.v2_dir_fd()?;
    let t = vs_net::read_traffic(std::os::fd::AsFd::as_fd(&fd))
        .map_err(|e| Error::Setup(format!("traffic counters of {}: {e}", spec.name)))?;
    Ok(t.map(|t| NetCounters {
        rx_bytes: t.rx_bytes,
        rx_packets: t.rx_packets,
        tx_bytes: t.tx_bytes,
        tx_packets: t.tx_packets,
    }))
}

/// The counters of a private-mode guest's veth (host end `vs<context>`;
/// what the host end sends, the guest receives), from `/proc/net/dev`,
/// which follows the reader's network namespace (`/sys/class/net` follows
/// the one sysfs was mounted in).
fn veth_counters(spec: &GuestSpec) -> Option<NetCounters> {
    let dev = std::fs::read_to_string("/proc/net/dev").ok()?;
    let want = format!("vs{}", spec.context);
    let line = dev
        .lines()
        .find(|l| l.trim_start().split(':').next() == Some(want.as_str()))?;
    let f: Vec<u64> = line
        .split_once(':')?
        .1
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    // rx: bytes packets errs drop fifo frame compressed multicast; tx: bytes packets ...
    Some(NetCounters {
        rx_bytes: *f.get(8)?,
        rx_packets: *f.get(9)?,
        tx_bytes: *f.first()?,
        tx_packets: *f.get(1)?,
    })
}

/// The figures of a guest.
pub fn figures(paths: &Paths, spec: &GuestSpec) -> Result<Figures> {
    let uptime = match crate::status(paths, &spec.name)? {
        crate::Status::Running { uptime, .. } => Some(uptime),
        _ => None,
    };
    let running = uptime.is_some();
    let cg = if running {
        crate::monitor::find_cgroup(paths, &spec.name)?
    } else {
        None
    };
    let mut stats = cg.as_ref().map(|c| c.stats()).transpose()?;
    let mut vsz_bytes = None;
    if running {
        let procs = crate::procs::list(paths, &spec.name)?;
        let proc_root = std::path::Path::new("/proc");
        vsz_bytes = Some(
            procs
                .iter()
                .filter_map(|p| crate::procs::vsize(proc_root, p.host_pid))
                .sum(),
        );
        if let Some(s) = &mut stats {
            s.processes = Some(procs.len() as u64);
        }
    }
    Ok(Figures {
        name: spec.name.to_string(),
        context: spec.context.get(),
        state: if running { "running" } else { "stopped" },
        limits: cg.as_ref().map(|c| c.limits()).transpose()?,
        stats,
        vsz_bytes,
        uptime_ms: uptime.map(|u| u.as_millis() as u64),
        network: if running {
            net_counters(spec, cg.as_ref())?
        } else {
            None
        },
    })
}

/// Which of a resource's limits a change sets (`vlimit -M/-S/-H`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Which {
    /// The guaranteed minimum.
    pub min: bool,
    /// The soft limit.
    pub soft: bool,
    /// The hard limit.
    pub hard: bool,
}

/// One `vlimit` change.
pub type Change = (RlimitResource, Which, LimitValue);

fn per_process(r: RlimitResource) -> Option<(libc::__rlimit_resource_t, u64)> {
    let page = vs_config::values::page_size();
    Some(match r {
        RlimitResource::Cpu => (libc::RLIMIT_CPU, 1),
        RlimitResource::Fsize => (libc::RLIMIT_FSIZE, 1),
        RlimitResource::Data => (libc::RLIMIT_DATA, 1),
        RlimitResource::Stack => (libc::RLIMIT_STACK, 1),
        RlimitResource::Core => (libc::RLIMIT_CORE, 1),
        RlimitResource::Nofile => (libc::RLIMIT_NOFILE, 1),
        RlimitResource::Memlock => (libc::RLIMIT_MEMLOCK, page),
        RlimitResource::Locks => (libc::RLIMIT_LOCKS, 1),
        RlimitResource::Msgqueue => (libc::RLIMIT_MSGQUEUE, 1),
        _ => return None,
    })
}

/// Sets resource `res` (`v` in units of `scale` bytes or items) of every
/// process in `pids` with prlimit(2): the hard limit only lowered (the
/// host's root may not raise it past what it was), the soft limit kept at
/// or below the hard one. Failures go to `notes`, naming `file`.
fn prlimit_all(
    pids: &[i32],
    (res, scale): (libc::__rlimit_resource_t, u64),
    w: Which,
    v: LimitValue,
    file: &str,
    notes: &mut Vec<String>,
) {
    for pid in pids {
        let mut cur = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: prlimit reads the limit of a guest process (pid from its
        // cgroup) into `cur`.
        unsafe { libc::prlimit(*pid, res, std::ptr::null(), &mut cur) };
        let val = match v {
            LimitValue::Inf => libc::RLIM_INFINITY,
            LimitValue::Amount(n) => n.saturating_mul(scale),
        };
        let mut new = cur;
        if w.hard {
            new.rlim_max = val.min(cur.rlim_max);
        }
        if w.soft {
            new.rlim_cur = val;
        }
        new.rlim_cur = new.rlim_cur.min(new.rlim_max);
        // SAFETY: prlimit sets the limit from the valid `new`.
        if unsafe { libc::prlimit(*pid, res, &new, std::ptr::null_mut()) } != 0 {
            notes.push(format!(
                "{file}: process {pid}: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
}

/// Changes the limits of a running guest at once: cgroup limits for rss
/// (hard, soft, and the minimum as `memory.low` on cgroup2), as and
/// nproc, prlimit(2) on every guest process for the per-process ones, and
/// for `as` where the host has no swap accounting (RLIMIT_AS, as at
/// start). Returns what could not be applied.
pub fn set_live(paths: &Paths, spec: &GuestSpec, changes: &[Change]) -> Result<Vec<String>> {
    let cg = crate::monitor::find_cgroup(paths, &spec.name)?
        .ok_or_else(|| Error::NotRunning(spec.name.to_string()))?;
    let page = vs_config::values::page_size();
    let mut limits = Limits::default();
    let mut notes = Vec::new();
    let mut as_change = None;
    let pids: Vec<i32> = crate::procs::list(paths, &spec.name)?
        .iter()
        .map(|p| p.host_pid)
        .collect();
    for (r, w, v) in changes {
        let as_bytes = bytes(Some(*v), page);
        let as_count = match v {
            LimitValue::Inf => Limit::Max,
            LimitValue::Amount(n) => Limit::Value(*n),
        };
        match r {
            RlimitResource::Rss => {
                if w.hard {
                    limits.memory_max = as_bytes;
                }
                if w.soft {
                    limits.memory_soft = as_bytes;
                }
                if w.min {
                    limits.memory_low = as_bytes;
                }
            }
            RlimitResource::As => {
                if w.hard {
                    limits.memory_swap_max = as_bytes;
                }
                as_change = Some((*w, *v));
            }
            RlimitResource::Nproc if w.hard => limits.pids_max = Some(as_count),
            _ => {}
        }
        if w.min && *r != RlimitResource::Rss {
            notes.push(format!(
                "{}: no guaranteed minimum for this resource (only rss has one, on cgroup2)",
                r.file()
            ));
        }
        if let Some(res) = per_process(*r) {
            prlimit_all(&pids, res, *w, *v, r.file(), &mut notes);
        } else if !matches!(
            r,
            RlimitResource::Rss | RlimitResource::As | RlimitResource::Nproc
        ) {
            notes.push(format!(
                "{}: {}",
                r.file(),
                r.unsupported().unwrap_or("not supported on this host")
            ));
        }
    }
    let mut swap_unsupported = false;
    for u in cg.apply(&limits)? {
        if u.what == "memory+swap limit" {
            swap_unsupported = true;
            notes.push(format!(
                "{}: {} (RLIMIT_AS set on each guest process instead)",
                u.what, u.why
            ));
        } else if u.what == "memory guaranteed minimum" {
            notes.push(format!(
                "rss minimum (-M) not supported on this host: {}",
                u.why
            ));
        } else {
            notes.push(format!("{}: {}", u.what, u.why));
        }
    }
    // `as` without swap accounting (or a soft `as`, which memory+swap has
    // not): the per-process RLIMIT_AS the start sets too.
    if let Some((w, v)) = as_change
        && let Some(w) = as_rlimit(w, swap_unsupported)
    {
        prlimit_all(&pids, (libc::RLIMIT_AS, page), w, v, "as", &mut notes);
    }
    Ok(notes)
}

/// Which of a live `as` change goes to the per-process RLIMIT_AS: the
/// hard limit where the host has no swap accounting (the memory+swap
/// limit is unsupported), the soft limit always (memory+swap has none).
fn as_rlimit(w: Which, swap_unsupported: bool) -> Option<Which> {
    let out = Which {
        min: false,
        soft: w.soft,
        hard: w.hard && swap_unsupported,
    };
    (out.soft || out.hard).then_some(out)
}

/// Writes the changes into the guest's `rlimits/` (`vlimit --persist`).
pub fn persist(spec: &GuestSpec, changes: &[Change]) -> Result<()> {
    let mut cfg = spec.config.clone();
    for (r, w, v) in changes {
        let set: &mut LimitSet = cfg.rlimits.entry(*r).or_default();
        if let Some(all) = set.all.take() {
            set.min.get_or_insert(all);
            set.soft.get_or_insert(all);
            set.hard.get_or_insert(all);
        }
        if w.min {
            set.min = Some(*v);
        }
        if w.soft {
            set.soft = Some(*v);
        }
        if w.hard {
            set.hard = Some(*v);
        }
    }
    vs_config::write_guest(&spec.cfgdir, &cfg)?;
    Ok(())
}

/// One line of `vlimit -a`: `None` = not available, `Some(None)` = unlimited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportLine {
    /// The resource.
    pub resource: RlimitResource,
    /// Guaranteed minimum.
    pub min: Option<Option<u64>>,
    /// Soft limit.
    pub soft: Option<Option<u64>>,
    /// Hard limit.
    pub hard: Option<Option<u64>>,
    /// Current use.
    pub current: Option<Option<u64>>,
    /// Observed maximum.
    pub max: Option<Option<u64>>,
    /// Times the limit was hit.
    pub hits: Option<Option<u64>>,
}

/// `vlimit -a` for a guest: live cgroup figures when it runs, the
/// configuration otherwise; rss and as in pages as util-vserver shows them.
pub fn report(paths: &Paths, spec: &GuestSpec) -> Result<Vec<ReportLine>> {
    let page = vs_config::values::page_size();
    let cg = if crate::status(paths, &spec.name)?.is_running() {
        crate::monitor::find_cgroup(paths, &spec.name)?
    } else {
        None
    };
    let (cur, st) = match &cg {
        Some(c) => (Some(c.limits()?), Some(c.stats()?)),
        None => (None, None),
    };
    let pages = |v: Option<u64>| Some(v.map(|b| b / page));
    let lim_pages = |l: Option<Limit>| l.map(|l| l.value().map(|b| b / page));
    let lim = |l: Option<Limit>| l.map(|l| l.value());
    let cfgv = |v: Option<LimitValue>| {
        v.map(|v| match v {
            LimitValue::Inf => None,
            LimitValue::Amount(n) => Some(n),
        })
    };
    let mut out = Vec::new();
    for r in RlimitResource::ALL {
        if r.unsupported().is_some() {
            continue;
        }
        let set = spec.config.rlimits.get(r).copied().unwrap_or_default();
        let mut line = ReportLine {
            resource: *r,
            min: cfgv(set.min()),
            soft: cfgv(set.soft()).or(Some(None)),
            hard: cfgv(set.hard()).or(Some(None)),
            current: None,
            max: None,
            hits: None,
        };
        if let (Some(c), Some(s)) = (&cur, &st) {
            match r {
                RlimitResource::Rss => {
                    line.min = lim_pages(c.memory_low).or(line.min);
                    line.soft = lim_pages(c.memory_soft).or(line.soft);
                    line.hard = lim_pages(c.memory_max).or(line.hard);
                    line.current = pages(s.memory_rss.or(s.memory_current));
                    line.max = pages(s.memory_peak);
                    line.hits = Some(s.memory_limit_hits);
                }
                RlimitResource::As => {
                    line.hard = lim_pages(c.memory_swap_max).or(line.hard);
                    line.current = s.memsw_current.map(|b| Some(b / page));
                    line.max = s.memsw_peak.map(|b| Some(b / page));
                    line.hits = s.memsw_limit_hits.map(Some);
                }
                RlimitResource::Nproc => {
                    line.hard = lim(c.pids_max).or(line.hard);
                    line.current = Some(s.pids_current);
                    line.max = Some(s.pids_peak);
                    line.hits = Some(s.pids_limit_hits);
                }
                _ => {}
            }
        }
        out.push(line);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Guest `g` with `context` 4242 and `files` (relative to its
    /// configuration directory).
    fn spec_with(files: &[(&str, &str)]) -> (tempfile::TempDir, GuestSpec) {
        let tmp = tempfile::tempdir().unwrap();
        let paths = Paths::new(tmp.path());
        let name = GuestName::new("g").unwrap();
        let dir = paths.guest_cfg(&name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("context"), "4242\n").unwrap();
        for (rel, content) in files {
            let p = dir.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, content).unwrap();
        }
        let spec = GuestSpec::load(&paths, &name).unwrap();
        (tmp, spec)
    }

    /// A pure cgroup2 fixture whose caller sits in `/user`, a cgroup with
    /// processes of its own that is offered every controller.
    fn busy_unified() -> (tempfile::TempDir, vs_cgroup::CgroupFs) {
        let tmp = tempfile::tempdir().unwrap();
        let r = tmp.path();
        let all = "cpuset cpu io memory pids\n";
        for (rel, content) in [
            ("cgroup.procs", ""),
            ("cgroup.controllers", all),
            ("cgroup.subtree_control", all),
            ("user/cgroup.procs", "4242\n"),
            ("user/cgroup.controllers", all),
            ("user/cgroup.subtree_control", "\n"),
        ] {
            std::fs::create_dir_all(r.join(rel).parent().unwrap()).unwrap();
            std::fs::write(r.join(rel), content).unwrap();
        }
        let fs = vs_cgroup::CgroupFs::fixture(r.to_path_buf(), vs_cgroup::Layout::Unified)
            .with_self_cgroup("0::/user\n");
        (tmp, fs)
    }

    #[test]
    fn a_limit_the_host_refuses_fails_the_start_naming_file_and_fix() {
        let (_c, fs) = busy_unified();
        let cg = GuestCgroup::create(&fs, None, "g").unwrap();
        let (_t, spec) = spec_with(&[("rlimits/rss.hard", "16384\n")]);
        let err = apply(&cg, &spec).unwrap_err().to_string();
        assert!(!err.contains('\n'), "{err}");
        assert!(
            err.starts_with(&format!("{}: ", spec.cfgdir.join("rlimits/rss").display())),
            "{err}"
        );
        assert!(err.contains("user/cgroup.subtree_control"), "{err}");
        assert!(err.contains("busy"), "{err}");
        assert!(
            err.contains("set .defaults/cgroup/base to a cgroup without processes"),
            "{err}"
        );
        // No limit configured: the guest may start.
        let (_t, spec) = spec_with(&[]);
        assert!(apply(&cg, &spec).unwrap().is_empty());
        // `as` alone falls back to RLIMIT_AS: not fatal.
        let (_t, spec) = spec_with(&[("rlimits/as", "100000\n")]);
        let notes = apply(&cg, &spec).unwrap();
        assert_eq!(notes.len(), 1, "{notes:?}");
        cg.remove().unwrap();
        // Under a base without processes the same limit applies.
        let cg = GuestCgroup::create(&fs, Some(std::path::Path::new("/machine")), "g").unwrap();
        let (_t, spec) = spec_with(&[("rlimits/rss.hard", "16384\n")]);
        assert!(apply(&cg, &spec).unwrap().is_empty());
        let max = std::fs::read_to_string(cg.v2_dir().unwrap().join("memory.max")).unwrap();
        assert_eq!(max, (16384 * vs_config::values::page_size()).to_string());
    }

    /// util-vserver's token bucket: a cap only with sched_hard; otherwise
    /// (or with sched_prio too) the bucket's share weighs, relative to the
    /// default bucket 1/4; priority-bias scales the weight.
    #[test]
    fn token_bucket_mapping() {
        let bucket = [
            ("sched/fill-rate", "1\n"),
            ("sched/interval", "4\n"),
            ("sched/tokens-max", "50\n"),
        ];
        // No flag: weight only (1/4 is the default bucket: 100).
        let (_t, spec) = spec_with(&bucket);
        let l = cgroup_limits(&spec);
        assert_eq!(
            (l.cpu_max, l.cpu_burst_us, l.cpu_weight),
            (None, None, Some(100))
        );
        // sched_hard: quota 25 ms per 100 ms, burst 50 tokens = 50 ms but at
        // most the quota; no weight.
        let mut files = bucket.to_vec();
        files.push(("cflags", "sched_hard\n"));
        let (_t, spec) = spec_with(&files);
        let l = cgroup_limits(&spec);
        assert_eq!(l.cpu_max, Some((25_000, CPU_PERIOD_US)));
        assert_eq!(l.cpu_burst_us, Some(25_000));
        assert_eq!(l.cpu_weight, None);
        // sched_hard + sched_prio: the cap and the weight.
        let (_t, spec) = spec_with(&[
            ("sched/fill-rate", "1\n"),
            ("sched/interval", "2\n"),
            ("sched/priority-bias", "-1\n"),
            ("cflags", "sched_hard\nsched_prio\n"),
        ]);
        let l = cgroup_limits(&spec);
        assert_eq!(l.cpu_max, Some((50_000, CPU_PERIOD_US)));
        assert_eq!(l.cpu_weight, Some(250)); // 200 for 1/2, ×1.25 for -1
        // sched_prio alone: 1/8 weighs half the default, bias +2 /1.5625.
        let (_t, spec) = spec_with(&[
            ("sched/fill-rate", "1\n"),
            ("sched/interval", "8\n"),
            ("sched/priority-bias", "2\n"),
            ("cflags", "sched_prio\n"),
        ]);
        let l = cgroup_limits(&spec);
        assert_eq!((l.cpu_max, l.cpu_weight), (None, Some(32)));
        // A bias alone; nothing at all.
        let (_t, spec) = spec_with(&[("sched/priority-bias", "-2\n")]);
        assert_eq!(cgroup_limits(&spec).cpu_weight, Some(156));
        let (_t, spec) = spec_with(&[]);
        assert!(cgroup_limits(&spec).is_empty());
        // Extreme shares stay in the kernel's range.
        assert_eq!(weight_for(Some((1000, 1)), 0), 10_000);
        assert_eq!(weight_for(Some((1, 1000)), 0), 1);
    }

    #[test]
    fn live_as_falls_back_to_rlimit_as_without_swap_accounting() {
        let hard = Which {
            hard: true,
            ..Which::default()
        };
        let soft = Which {
            soft: true,
            ..Which::default()
        };
        assert_eq!(as_rlimit(hard, true), Some(hard));
        assert_eq!(as_rlimit(hard, false), None);
        assert_eq!(as_rlimit(soft, false), Some(soft));
        let both = Which {
            soft: true,
            hard: true,
            min: false,
        };
        assert_eq!(as_rlimit(both, false), Some(soft));
        assert_eq!(as_rlimit(both, true), Some(both));
    }

    #[test]
    fn weights_follow_nice_steps() {
        assert_eq!(weight_for_bias(0), 100);
        assert_eq!(weight_for_bias(-1), 125);
        assert_eq!(weight_for_bias(1), 80);
        assert_eq!(weight_for_bias(-40), 10_000);
        assert_eq!(weight_for_bias(40), 1);
    }
}
