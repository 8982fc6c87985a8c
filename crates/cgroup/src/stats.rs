//! Usage figures of a guest's cgroups, for `vserver-stat` and
//! `stats --json`.

use std::io::ErrorKind;
use std::path::Path;

use crate::fs::read_file;
use crate::limits::parse_u64;
use crate::{Error, GuestCgroup, Result};

/// A guest's resource usage, from its cgroups' accounting files (all of
/// them hierarchical: the guest's own sub-cgroups count). Each field is
/// `None` when the file it comes from is missing (controller not available
/// for the guest, older kernel, cgroup gone).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    /// Processes in the guest's cgroups (sub-cgroups included).
    pub processes: Option<u64>,
    /// Memory charged, bytes, page cache included (cgroup2
    /// `memory.current`, v1 `memory.usage_in_bytes`).
    pub memory_current: Option<u64>,
    /// Anonymous (resident, not file-backed) memory, bytes (cgroup2
    /// `memory.stat` `anon`, v1 `memory.stat` `total_rss`).
    pub memory_rss: Option<u64>,
    /// Highest memory charged, bytes (cgroup2 `memory.peak`, v1
    /// `memory.max_usage_in_bytes`).
    pub memory_peak: Option<u64>,
    /// How often the memory limit was hit (cgroup2 `memory.events` `max`,
    /// v1 `memory.failcnt`).
    pub memory_limit_hits: Option<u64>,
    /// Processes the OOM killer killed in the guest (`memory.events`
    /// `oom_kill`, v1 `memory.oom_control` `oom_kill`).
    pub oom_kills: Option<u64>,
    /// Memory + swap charged, bytes (v1 `memory.memsw.usage_in_bytes`;
    /// cgroup2 `memory.current` + `memory.swap.current`).
    pub memsw_current: Option<u64>,
    /// Highest memory + swap charged, bytes (v1
    /// `memory.memsw.max_usage_in_bytes`).
    pub memsw_peak: Option<u64>,
    /// How often the memory + swap limit was hit (v1
    /// `memory.memsw.failcnt`; cgroup2 `memory.swap.events` `max`).
    pub memsw_limit_hits: Option<u64>,
    /// Tasks (threads) in the guest (`pids.current`).
    pub pids_current: Option<u64>,
    /// Highest task count (`pids.peak`).
    pub pids_peak: Option<u64>,
    /// How often a fork failed at the pids limit (`pids.events` `max`).
    pub pids_limit_hits: Option<u64>,
    /// CPU time used, µs (cgroup2 `cpu.stat` `usage_usec`, v1
    /// `cpuacct.usage`).
    pub cpu_usage_usec: Option<u64>,
    /// CPU time in user mode, µs (cgroup2 `cpu.stat` `user_usec`, v1
    /// `cpuacct.usage_user`, else `cpuacct.stat` `user` ticks).
    pub cpu_user_usec: Option<u64>,
    /// CPU time in kernel mode, µs (`system_usec`, `cpuacct.usage_sys`,
    /// `cpuacct.stat` `system`).
    pub cpu_system_usec: Option<u64>,
    /// CPU bandwidth periods in which the guest was runnable (`cpu.stat`
    /// `nr_periods`).
    pub cpu_periods: Option<u64>,
    /// Periods in which the guest was throttled at its quota (`cpu.stat`
    /// `nr_throttled`).
    pub cpu_throttled_periods: Option<u64>,
    /// Time throttled, µs (cgroup2 `throttled_usec`, v1 `throttled_time`
    /// ns).
    pub cpu_throttled_usec: Option<u64>,
    /// Whether the guest is frozen (paused).
    pub frozen: Option<bool>,
}

/// A flat keyed file (`KEY VALUE` lines), or `None` if it is missing.
struct Keyed {
    path: std::path::PathBuf,
    text: String,
}

impl Keyed {
    fn read(path: Option<std::path::PathBuf>) -> Result<Option<Keyed>> {
        let Some(path) = path else {
            return Ok(None);
        };
        Ok(read_opt(&path)?.map(|text| Keyed { path, text }))
    }

    /// The value of `key`, `None` if the file has no such line.
    fn get(&self, key: &str) -> Result<Option<u64>> {
        for line in self.text.lines() {
            let mut words = line.split_whitespace();
            if words.next() == Some(key) {
                return parse_u64(&self.path, words.next().unwrap_or_default()).map(Some);
            }
        }
        Ok(None)
    }
}

/// `get` of the first file that has the key.
fn first(files: &[&Option<Keyed>], key: &str) -> Result<Option<u64>> {
    for f in files.iter().copied().flatten() {
        if let Some(v) = f.get(key)? {
            return Ok(Some(v));
        }
    }
    Ok(None)
}

/// The content of `path`, `None` if missing.
fn read_opt(path: &Path) -> Result<Option<String>> {
    match read_file(path) {
        Ok(t) => Ok(Some(t)),
        Err(Error::Io { source, .. }) if source.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// A one-number file, `None` if missing.
fn number(path: Option<std::path::PathBuf>) -> Result<Option<u64>> {
    let Some(path) = path else {
        return Ok(None);
    };
    read_opt(&path)?.map(|t| parse_u64(&path, &t)).transpose()
}

fn add(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    Some(a?.saturating_add(b?))
}

impl GuestCgroup {
    /// The guest's resource usage (see [`Stats`] for the files). In the
    /// hybrid layout the CPU times come from the cgroup2 `cpu.stat`, which
    /// accounts CPU time even without controllers, else from v1 `cpuacct`.
    pub fn stats(&self) -> Result<Stats> {
        let mut s = Stats {
            processes: Some(self.procs()?.len() as u64),
            ..Stats::default()
        };

        if self.v2_file("memory.current").is_some() {
            let f = |n: &str| self.v2_file(n);
            s.memory_current = number(f("memory.current"))?;
            s.memory_peak = number(f("memory.peak"))?;
            let stat = Keyed::read(f("memory.stat"))?;
            s.memory_rss = first(&[&stat], "anon")?;
            let events = Keyed::read(f("memory.events"))?;
            s.memory_limit_hits = first(&[&events], "max")?;
            s.oom_kills = first(&[&events], "oom_kill")?;
            s.memsw_current = add(s.memory_current, number(f("memory.swap.current"))?);
            let swap_events = Keyed::read(f("memory.swap.events"))?;
            s.memsw_limit_hits = first(&[&swap_events], "max")?;
        } else if self.v1_file("memory.usage_in_bytes").is_some() {
            let f = |n: &str| self.v1_file(n);
            s.memory_current = number(f("memory.usage_in_bytes"))?;
            s.memory_peak = number(f("memory.max_usage_in_bytes"))?;
            let stat = Keyed::read(f("memory.stat"))?;
            s.memory_rss = first(&[&stat], "total_rss")?;
            s.memory_limit_hits = number(f("memory.failcnt"))?;
            let oom = Keyed::read(f("memory.oom_control"))?;
            s.oom_kills = first(&[&oom], "oom_kill")?;
            s.memsw_current = number(f("memory.memsw.usage_in_bytes"))?;
            s.memsw_peak = number(f("memory.memsw.max_usage_in_bytes"))?;
            s.memsw_limit_hits = number(f("memory.memsw.failcnt"))?;
        }

        let pids = |n: &str| self.v2_file(n).or_else(|| self.v1_file(n));
        s.pids_current = number(pids("pids.current"))?;
        s.pids_peak = number(pids("pids.peak"))?;
        s.pids_limit_hits = first(&[&Keyed::read(pids("pids.events"))?], "max")?;

        let v2_cpu = Keyed::read(self.v2_file("cpu.stat"))?;
        let v1_cpu = Keyed::read(self.v1_file("cpu.stat"))?;
        let acct = Keyed::read(self.v1_file("cpuacct.stat"))?;
        let ns_to_us = |v: Option<u64>| v.map(|ns| ns / 1000);
        let ticks_to_us = |v: Option<u64>| {
            let hz = rustix::param::clock_ticks_per_second().max(1);
            v.map(|t| t.saturating_mul(1_000_000) / hz)
        };
        s.cpu_usage_usec = match first(&[&v2_cpu], "usage_usec")? {
            Some(v) => Some(v),
            None => ns_to_us(number(self.v1_file("cpuacct.usage"))?),
        };
        s.cpu_user_usec = match first(&[&v2_cpu], "user_usec")? {
            Some(v) => Some(v),
            None => match number(self.v1_file("cpuacct.usage_user"))? {
                Some(ns) => Some(ns / 1000),
                None => ticks_to_us(first(&[&acct], "user")?),
            },
        };
        s.cpu_system_usec = match first(&[&v2_cpu], "system_usec")? {
            Some(v) => Some(v),
            None => match number(self.v1_file("cpuacct.usage_sys"))? {
                Some(ns) => Some(ns / 1000),
                None => ticks_to_us(first(&[&acct], "system")?),
            },
        };
        s.cpu_periods = first(&[&v2_cpu, &v1_cpu], "nr_periods")?;
        s.cpu_throttled_periods = first(&[&v2_cpu, &v1_cpu], "nr_throttled")?;
        s.cpu_throttled_usec = match first(&[&v2_cpu], "throttled_usec")? {
            Some(v) => Some(v),
            None => ns_to_us(first(&[&v1_cpu], "throttled_time")?),
        };

        s.frozen = match self.is_frozen() {
            Ok(f) => Some(f),
            Err(Error::Unsupported { .. }) => None,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => None,
            Err(e) => return Err(e),
        };
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::testutil::{HOST_V1, put, unified, v1_host};
    use crate::{Hierarchy, Layout, V1Controller};

    #[test]
    fn v2_stats_from_fixture_files() {
        let (_tmp, fs) = unified("cpuset cpu io memory pids");
        let g = GuestCgroup::create(&fs, None, "g").unwrap();
        g.join(10).unwrap();
        g.join(11).unwrap();
        let d = g.v2_dir().unwrap().to_path_buf();
        put(&d.join("memory.current"), "104857600\n");
        put(&d.join("memory.peak"), "134217728\n");
        put(
            &d.join("memory.stat"),
            "anon 52428800\nfile 41943040\nkernel 1048576\nanon_thp 0\n",
        );
        put(
            &d.join("memory.events"),
            "low 0\nhigh 3\nmax 52\noom 2\noom_kill 1\noom_group_kill 0\n",
        );
        put(&d.join("memory.swap.current"), "4096\n");
        put(&d.join("memory.swap.events"), "high 0\nmax 7\nfail 0\n");
        put(&d.join("pids.current"), "5\n");
        put(&d.join("pids.peak"), "20\n");
        put(&d.join("pids.events"), "max 181\n");
        put(
            &d.join("cpu.stat"),
            "usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\nnice_usec 0\n\
             nr_periods 52\nnr_throttled 50\nthrottled_usec 3750000\nnr_bursts 0\nburst_usec 0\n",
        );
        put(&d.join("cgroup.events"), "populated 1\nfrozen 1\n");
        let s = g.stats().unwrap();
        assert_eq!(
            s,
            Stats {
                processes: Some(2),
                memory_current: Some(104_857_600),
                memory_rss: Some(52_428_800),
                memory_peak: Some(134_217_728),
                memory_limit_hits: Some(52),
                oom_kills: Some(1),
                memsw_current: Some(104_857_600 + 4096),
                memsw_peak: None,
                memsw_limit_hits: Some(7),
                pids_current: Some(5),
                pids_peak: Some(20),
                pids_limit_hits: Some(181),
                cpu_usage_usec: Some(1_500_000),
                cpu_user_usec: Some(1_000_000),
                cpu_system_usec: Some(500_000),
                cpu_periods: Some(52),
                cpu_throttled_periods: Some(50),
                cpu_throttled_usec: Some(3_750_000),
                frozen: Some(true),
            }
        );
        // Missing files (older kernel): None, not an error.
        std::fs::remove_file(d.join("memory.peak")).unwrap();
        std::fs::remove_file(d.join("pids.peak")).unwrap();
        let s = g.stats().unwrap();
        assert_eq!((s.memory_peak, s.pids_peak), (None, None));
        // A malformed value is an error naming the file.
        put(&d.join("pids.events"), "max lots\n");
        let err = g.stats().unwrap_err();
        assert!(err.to_string().contains("pids.events"), "{err}");
    }

    #[test]
    fn v2_without_controllers_has_cpu_times_only() {
        let (_tmp, fs) = unified("");
        let g = GuestCgroup::create(&fs, None, "g").unwrap();
        let d = g.v2_dir().unwrap();
        put(
            &d.join("cpu.stat"),
            "usage_usec 1000269\nuser_usec 1000000\nsystem_usec 269\nnice_usec 0\n",
        );
        let s = g.stats().unwrap();
        assert_eq!(s.cpu_usage_usec, Some(1_000_269));
        assert_eq!(s.cpu_system_usec, Some(269));
        assert_eq!(s.cpu_periods, None);
        assert_eq!(s.memory_current, None);
        assert_eq!(s.pids_current, None);
        assert_eq!(s.frozen, Some(false));
        assert_eq!(s.processes, Some(0));
    }

    #[test]
    fn v1_stats_from_fixture_files() {
        let (tmp, fs) = v1_host(Layout::Legacy, HOST_V1);
        let g = GuestCgroup::create(&fs, None, "g").unwrap();
        let r = tmp.path();
        let m = r.join("memory/vserver/g");
        put(&m.join("memory.usage_in_bytes"), "67108864\n");
        put(&m.join("memory.max_usage_in_bytes"), "67108864\n");
        put(&m.join("memory.failcnt"), "52\n");
        put(
            &m.join("memory.stat"),
            "cache 4096\nrss 8192\nswap 0\ntotal_cache 1048576\ntotal_rss 66060288\n",
        );
        put(
            &m.join("memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
        );
        put(&m.join("memory.memsw.usage_in_bytes"), "67112960\n");
        put(&m.join("memory.memsw.max_usage_in_bytes"), "67112960\n");
        put(&m.join("memory.memsw.failcnt"), "3\n");
        let p = r.join("pids/vserver/g");
        put(&p.join("pids.current"), "20\n");
        put(&p.join("pids.events"), "max 31468\n");
        let c = r.join("cpu/vserver/g");
        put(
            &c.join("cpu.stat"),
            "nr_periods 52\nnr_throttled 50\nthrottled_time 3750000000\nnr_bursts 7\nburst_time 105128657\n",
        );
        let a = r.join("cpuacct/vserver/g");
        put(&a.join("cpuacct.usage"), "1260000000\n");
        put(&a.join("cpuacct.usage_user"), "1250000000\n");
        put(&a.join("cpuacct.usage_sys"), "10000000\n");
        put(&a.join("cpuacct.stat"), "user 125\nsystem 1\n");
        let s = g.stats().unwrap();
        assert_eq!(s.memory_current, Some(67_108_864));
        assert_eq!(s.memory_rss, Some(66_060_288));
        assert_eq!(s.memory_peak, Some(67_108_864));
        assert_eq!(s.memory_limit_hits, Some(52));
        assert_eq!(s.oom_kills, Some(1));
        assert_eq!(s.memsw_current, Some(67_112_960));
        assert_eq!(s.memsw_peak, Some(67_112_960));
        assert_eq!(s.memsw_limit_hits, Some(3));
        assert_eq!(s.pids_current, Some(20));
        assert_eq!(s.pids_peak, Some(0));
        assert_eq!(s.pids_limit_hits, Some(31_468));
        assert_eq!(s.cpu_usage_usec, Some(1_260_000));
        assert_eq!(s.cpu_user_usec, Some(1_250_000));
        assert_eq!(s.cpu_system_usec, Some(10_000));
        assert_eq!(s.cpu_periods, Some(52));
        assert_eq!(s.cpu_throttled_periods, Some(50));
        assert_eq!(s.cpu_throttled_usec, Some(3_750_000));
        // The legacy layout's freezer.
        assert_eq!(s.frozen, Some(false));

        // Without cpuacct.usage_user/_sys: cpuacct.stat, in USER_HZ ticks.
        std::fs::remove_file(a.join("cpuacct.usage_user")).unwrap();
        std::fs::remove_file(a.join("cpuacct.usage_sys")).unwrap();
        let hz = rustix::param::clock_ticks_per_second();
        let s = g.stats().unwrap();
        assert_eq!(s.cpu_user_usec, Some(125 * 1_000_000 / hz));
        assert_eq!(s.cpu_system_usec, Some(1_000_000 / hz));
    }

    #[test]
    fn hybrid_prefers_v2_cpu_times_and_v1_throttling() {
        let (tmp, fs) = v1_host(Layout::Hybrid, HOST_V1);
        let g = GuestCgroup::create(&fs, None, "g").unwrap();
        let r = tmp.path();
        put(
            &g.v2_dir().unwrap().join("cpu.stat"),
            "usage_usec 500000\nuser_usec 400000\nsystem_usec 100000\nnice_usec 0\n",
        );
        put(&r.join("cpuacct/vserver/g/cpuacct.usage_user"), "1\n");
        put(
            &r.join("cpu/vserver/g/cpu.stat"),
            "nr_periods 20\nnr_throttled 15\nthrottled_time 1000\n",
        );
        put(&r.join("memory/vserver/g/memory.usage_in_bytes"), "4096\n");
        let s = g.stats().unwrap();
        assert_eq!(s.cpu_user_usec, Some(400_000));
        assert_eq!(s.cpu_usage_usec, Some(500_000));
        assert_eq!(s.cpu_throttled_periods, Some(15));
        assert_eq!(s.cpu_throttled_usec, Some(1));
        assert_eq!(s.memory_current, Some(4096));
        assert_eq!(s.pids_peak, Some(0));
        // A guest with no memory directory: memory figures are None.
        let only_v2 = GuestCgroup::from_paths(&fs, &g.paths()[..1]).unwrap();
        assert_eq!(only_v2.hierarchies(), [Hierarchy::V2]);
        let s = only_v2.stats().unwrap();
        assert_eq!(s.memory_current, None);
        assert_eq!(s.pids_current, None);
        assert_eq!(s.cpu_user_usec, Some(400_000));
        // Only a v1 pids directory: no freezer, frozen is None.
        let p = g
            .dir(Hierarchy::V1(V1Controller::Pids))
            .unwrap()
            .to_path_buf();
        let only_pids = GuestCgroup::from_paths(&fs, &[p]).unwrap();
        assert_eq!(only_pids.stats().unwrap().frozen, None);
        // Removed: everything None, no error.
        g.remove().unwrap();
        let s = g.stats().unwrap();
        assert_eq!(s.frozen, None);
        assert_eq!(s.cpu_usage_usec, None);
        assert_eq!(s.processes, Some(0));
    }

    #[test]
    fn stats_serialize() {
        let s = Stats {
            oom_kills: Some(1),
            ..Stats::default()
        };
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["oom_kills"], 1);
        assert!(v["memory_rss"].is_null());
    }
}
