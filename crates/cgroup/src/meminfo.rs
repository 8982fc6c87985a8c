//! VIRT_MEM's `/proc/meminfo`: the host's file with the memory lines
//! replaced by the guest's, from its memory cgroup.
//!
//! util-vserver's promise (Memory_Limits): "the rss soft limit is shown
//! inside the guest as the maximum available memory". So `MemTotal` is the
//! smallest of the guest's soft limit (cgroup2 `memory.high`, v1
//! `memory.soft_limit_in_bytes`), its hard limit (`memory.max`,
//! `memory.limit_in_bytes`) — each also taken from the ancestors, which
//! bound the guest too — and the host's `MemTotal`. lxcfs, which serves the
//! other VIRT_MEM files, reads only the hard limit; that is why this one
//! file is ours.
//!
//! The other figures follow lxcfs's choices: `MemFree` is what the guest
//! has left of `MemTotal` (usage counts page cache, as the cgroup does),
//! `MemAvailable` adds back its reclaimable file pages, `Buffers` is 0, the
//! LRU lines and `Cached`, `Dirty`, `Writeback`, `AnonPages`, `Mapped`,
//! `Shmem` (and with cgroup2 `Slab`, `SReclaimable`, `SUnreclaim`,
//! `KernelStack`, `PageTables`) come from `memory.stat`. Swap lines are the
//! guest's where the host accounts swap per cgroup (v1 `memory.memsw.*`,
//! cgroup2 `memory.swap.*`), else the host's. Every other line is the
//! host's, unchanged.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use crate::fs::read_file;
use crate::{Error, GuestCgroup, Hierarchy, Result, V1Controller};

/// Which memory controller a [`MemoryView`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryKind {
    /// cgroup2 `memory.*`.
    V2,
    /// The v1 memory controller.
    V1,
}

/// Where a guest's memory figures are: its memory cgroup and the ancestors
/// below the hierarchy's root. Owned paths, so a server thread can keep it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryView {
    kind: MemoryKind,
    /// The guest's directory first, then each parent up to (without) the
    /// hierarchy root.
    dirs: Vec<PathBuf>,
}

/// A guest's memory, bytes; limits `None` when unlimited.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryFigures {
    /// Smallest hard limit of the guest's cgroup and its ancestors.
    pub hard: Option<u64>,
    /// Smallest soft limit (`memory.high`, `memory.soft_limit_in_bytes`).
    pub soft: Option<u64>,
    /// Memory charged, page cache included.
    pub usage: u64,
    /// Smallest swap limit, where swap is accounted per cgroup (v1: the
    /// memory+swap limit minus the memory limit).
    pub swap_limit: Option<u64>,
    /// Swap used, where swap is accounted per cgroup.
    pub swap_usage: Option<u64>,
    /// `memory.stat`, v1's hierarchical `total_` names without the prefix.
    pub stat: BTreeMap<String, u64>,
}

impl GuestCgroup {
    /// Where this guest's memory figures are: cgroup2 when it has the
    /// memory controller there, else the v1 memory hierarchy; `None` when
    /// neither does.
    pub fn memory_view(&self) -> Option<MemoryView> {
        let fs = self.cgroup_fs();
        let (kind, hierarchy) = if self.v2_file("memory.current").is_some() {
            (MemoryKind::V2, Hierarchy::V2)
        } else if self.v1_file("memory.usage_in_bytes").is_some() {
            (MemoryKind::V1, Hierarchy::V1(V1Controller::Memory))
        } else {
            return None;
        };
        let dir = self.dir(hierarchy)?;
        let root = fs.hierarchy_root(hierarchy)?;
        let dirs = dir
            .ancestors()
            .take_while(|d| *d != root && d.starts_with(&root))
            .map(Path::to_path_buf)
            .collect();
        Some(MemoryView { kind, dirs })
    }
}

/// v1's "no limit": PAGE_COUNTER_MAX pages, rounded to pages. Anything at
/// least this large is no limit.
const V1_UNLIMITED: u64 = 0x7FFF_FFFF_FFFF_F000;

fn read_opt(path: &Path) -> Result<Option<String>> {
    match read_file(path) {
        Ok(t) => Ok(Some(t)),
        Err(Error::Io { source, .. }) if source.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// A limit file: `max` (cgroup2) or v1's huge value is no limit.
fn limit(path: &Path) -> Result<Option<u64>> {
    let Some(text) = read_opt(path)? else {
        return Ok(None);
    };
    let t = text.trim();
    if t == "max" {
        return Ok(None);
    }
    let v = crate::limits::parse_u64(path, t)?;
    Ok((v < V1_UNLIMITED).then_some(v))
}

fn min_opt(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl MemoryView {
    /// The guest's memory cgroup directory.
    pub fn dir(&self) -> Option<&Path> {
        self.dirs.first().map(PathBuf::as_path)
    }

    /// The smallest limit in file `name` over the guest's cgroup and its
    /// ancestors.
    fn smallest(&self, name: &str) -> Result<Option<u64>> {
        let mut best = None;
        for d in &self.dirs {
            best = min_opt(best, limit(&d.join(name))?);
        }
        Ok(best)
    }

    /// Reads the figures now.
    pub fn figures(&self) -> Result<MemoryFigures> {
        let Some(dir) = self.dir() else {
            return Ok(MemoryFigures::default());
        };
        let number = |name: &str| -> Result<Option<u64>> {
            let p = dir.join(name);
            read_opt(&p)?
                .map(|t| crate::limits::parse_u64(&p, &t))
                .transpose()
        };
        let stat_path = dir.join("memory.stat");
        let mut stat = BTreeMap::new();
        for line in read_opt(&stat_path)?.unwrap_or_default().lines() {
            let Some((k, v)) = line.split_once(' ') else {
                continue;
            };
            let Ok(v) = v.trim().parse::<u64>() else {
                continue;
            };
            match self.kind {
                MemoryKind::V2 => {
                    stat.insert(k.to_owned(), v);
                }
                // v1: the hierarchical totals only (sub-cgroups count).
                MemoryKind::V1 => {
                    if let Some(k) = k.strip_prefix("total_") {
                        stat.insert(k.to_owned(), v);
                    }
                }
            }
        }
        Ok(match self.kind {
            MemoryKind::V2 => MemoryFigures {
                hard: self.smallest("memory.max")?,
                soft: self.smallest("memory.high")?,
                usage: number("memory.current")?.unwrap_or(0),
                swap_limit: if dir.join("memory.swap.max").is_file() {
                    self.smallest("memory.swap.max")?
                } else {
                    None
                },
                swap_usage: number("memory.swap.current")?,
                stat,
            },
            MemoryKind::V1 => {
                let hard = self.smallest("memory.limit_in_bytes")?;
                let usage = number("memory.usage_in_bytes")?.unwrap_or(0);
                let memsw_usage = number("memory.memsw.usage_in_bytes")?;
                let memsw_limit = self.smallest("memory.memsw.limit_in_bytes")?;
                MemoryFigures {
                    hard,
                    soft: self.smallest("memory.soft_limit_in_bytes")?,
                    usage,
                    swap_limit: match (memsw_usage, memsw_limit, hard) {
                        (Some(_), Some(sw), Some(h)) => Some(sw.saturating_sub(h)),
                        _ => None,
                    },
                    swap_usage: memsw_usage.map(|m| m.saturating_sub(usage)),
                    stat,
                }
            }
        })
    }

    /// The guest's `/proc/meminfo`, made from the host's text `host`.
    pub fn meminfo(&self, host: &str) -> Result<String> {
        Ok(render(self.kind, host, &self.figures()?))
    }
}

/// `host`'s meminfo with the guest's figures in place of the host's; see
/// the module's text for each line.
pub fn render(kind: MemoryKind, host: &str, f: &MemoryFigures) -> String {
    let host_kb = |key: &str| -> Option<u64> {
        host.lines().find_map(|l| {
            let (k, rest) = l.split_once(':')?;
            (k == key).then(|| rest.trim().trim_end_matches("kB").trim().parse().ok())?
        })
    };
    let st = |k: &str| f.stat.get(k).copied().unwrap_or(0);
    let kb = |bytes: u64| bytes / 1024;

    let host_total = host_kb("MemTotal").unwrap_or(u64::MAX / 1024);
    let total = min_opt(f.soft, f.hard)
        .map(kb)
        .unwrap_or(host_total)
        .min(host_total);
    let free = total.saturating_sub(kb(f.usage));
    let reclaimable = kb(st("active_file") + st("inactive_file") + st("slab_reclaimable"));
    let available = (free + reclaimable).min(total);
    let (cache, anon, mapped, dirty, writeback) = match kind {
        MemoryKind::V2 => (
            st("file"),
            st("anon"),
            st("file_mapped"),
            st("file_dirty"),
            st("file_writeback"),
        ),
        MemoryKind::V1 => (
            st("cache"),
            st("rss"),
            st("mapped_file"),
            st("dirty"),
            st("writeback"),
        ),
    };
    let mut ours: Vec<(&str, u64)> = vec![
        ("MemTotal", total),
        ("MemFree", free),
        ("MemAvailable", available),
        ("Buffers", 0),
        ("Cached", kb(cache)),
        ("SwapCached", 0),
        ("Active", kb(st("active_anon") + st("active_file"))),
        ("Inactive", kb(st("inactive_anon") + st("inactive_file"))),
        ("Active(anon)", kb(st("active_anon"))),
        ("Inactive(anon)", kb(st("inactive_anon"))),
        ("Active(file)", kb(st("active_file"))),
        ("Inactive(file)", kb(st("inactive_file"))),
        ("Unevictable", kb(st("unevictable"))),
        ("Dirty", kb(dirty)),
        ("Writeback", kb(writeback)),
        ("AnonPages", kb(anon)),
        ("Mapped", kb(mapped)),
        ("Shmem", kb(st("shmem"))),
    ];
    if kind == MemoryKind::V2 {
        ours.extend([
            ("Slab", kb(st("slab"))),
            ("SReclaimable", kb(st("slab_reclaimable"))),
            ("SUnreclaim", kb(st("slab_unreclaimable"))),
            ("KernelStack", kb(st("kernel_stack"))),
            ("PageTables", kb(st("pagetables"))),
        ]);
    }
    if let Some(used) = f.swap_usage {
        let host_swap = host_kb("SwapTotal").unwrap_or(0);
        let swap_total = f.swap_limit.map(kb).unwrap_or(host_swap).min(host_swap);
        ours.push(("SwapTotal", swap_total));
        ours.push(("SwapFree", swap_total.saturating_sub(kb(used))));
    }

    let mut out = String::with_capacity(host.len());
    for line in host.lines() {
        let key = line.split_once(':').map(|(k, _)| k);
        match key.and_then(|k| ours.iter().find(|(o, _)| *o == k)) {
            // The host line's layout and length ("Key:", the value right
            // aligned, " kB"): the file's size stays the host's, which is
            // what a reader that trusts st_size (sendfile) gets.
            Some((k, v)) => {
                let width = line.len().saturating_sub(k.len() + 1 + 3).max(1);
                let _ = writeln!(out, "{k}:{v:>width$} kB");
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Layout;
    use crate::fixture::testutil::{HOST_V1, put, unified, v1_host};

    const HOST: &str = "MemTotal:       24570228 kB\n\
MemFree:        20000000 kB\n\
MemAvailable:   22000000 kB\n\
Buffers:          100000 kB\n\
Cached:          1000000 kB\n\
SwapCached:            0 kB\n\
Active:           500000 kB\n\
Inactive:         400000 kB\n\
Active(anon):     300000 kB\n\
Inactive(anon):   200000 kB\n\
Active(file):     200000 kB\n\
Inactive(file):   200000 kB\n\
Unevictable:           0 kB\n\
Mlocked:               0 kB\n\
SwapTotal:       2097148 kB\n\
SwapFree:        2097148 kB\n\
Dirty:               100 kB\n\
Writeback:             0 kB\n\
AnonPages:        500000 kB\n\
Mapped:           100000 kB\n\
Shmem:             10000 kB\n\
Slab:             200000 kB\n\
SReclaimable:     100000 kB\n\
SUnreclaim:       100000 kB\n\
KernelStack:       10000 kB\n\
PageTables:        10000 kB\n\
HugePages_Total:       0\n\
Hugepagesize:       2048 kB\n";

    fn value(text: &str, key: &str) -> u64 {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{key}:")))
            .unwrap_or_else(|| panic!("no {key} in {text}"));
        line[key.len() + 1..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .unwrap()
    }

    const MIB: u64 = 1024 * 1024;

    #[test]
    fn v1_soft_limit_is_the_total_and_other_lines_stay() {
        let (_tmp, fs) = v1_host(Layout::Hybrid, HOST_V1);
        let g = GuestCgroup::create(&fs, None, "g").unwrap();
        let view = g.memory_view().expect("v1 memory view");
        let d = view.dir().unwrap().to_path_buf();
        put(
            &d.join("memory.limit_in_bytes"),
            &format!("{}\n", 512 * MIB),
        );
        put(
            &d.join("memory.soft_limit_in_bytes"),
            &format!("{}\n", 256 * MIB),
        );
        put(&d.join("memory.usage_in_bytes"), &format!("{}\n", 56 * MIB));
        put(
            &d.join("memory.stat"),
            &format!(
                "cache 1\nrss 2\ntotal_cache {}\ntotal_rss {}\ntotal_shmem {}\ntotal_mapped_file 0\n\
                 total_active_file {}\ntotal_inactive_file {}\ntotal_active_anon {}\ntotal_inactive_anon 0\n",
                20 * MIB,
                36 * MIB,
                MIB,
                8 * MIB,
                4 * MIB,
                30 * MIB
            ),
        );
        put(
            &d.join("memory.memsw.limit_in_bytes"),
            &format!("{}\n", 768 * MIB),
        );
        put(
            &d.join("memory.memsw.usage_in_bytes"),
            &format!("{}\n", 60 * MIB),
        );
        let m = view.meminfo(HOST).unwrap();
        assert_eq!(value(&m, "MemTotal"), 262_144, "{m}");
        assert_eq!(value(&m, "MemFree"), 200 * 1024, "{m}");
        assert_eq!(value(&m, "MemAvailable"), 212 * 1024, "{m}");
        assert_eq!(value(&m, "Cached"), 20 * 1024);
        assert_eq!(value(&m, "AnonPages"), 36 * 1024);
        assert_eq!(value(&m, "Shmem"), 1024);
        assert_eq!(value(&m, "Active"), 38 * 1024);
        assert_eq!(value(&m, "Buffers"), 0);
        assert_eq!(value(&m, "SwapTotal"), 256 * 1024);
        assert_eq!(value(&m, "SwapFree"), 252 * 1024);
        // Lines the cgroup has nothing for are the host's, as they were.
        assert!(m.contains("Slab:             200000 kB\n"), "{m}");
        assert!(m.contains("HugePages_Total:       0\n"), "{m}");
        assert!(m.contains("MemTotal:         262144 kB\n"), "{m}");
        assert_eq!(m.lines().count(), HOST.lines().count());
        assert_eq!(m.len(), HOST.len(), "same layout, same size");
    }

    #[test]
    fn v1_without_limits_shows_the_host_total_and_hard_alone_counts() {
        let (_tmp, fs) = v1_host(Layout::Hybrid, HOST_V1);
        let g = GuestCgroup::create(&fs, None, "g").unwrap();
        let view = g.memory_view().unwrap();
        let d = view.dir().unwrap().to_path_buf();
        put(
            &d.join("memory.usage_in_bytes"),
            &format!("{}\n", 100 * MIB),
        );
        let m = view.meminfo(HOST).unwrap();
        assert_eq!(value(&m, "MemTotal"), 24_570_228);
        assert_eq!(value(&m, "MemFree"), 24_570_228 - 100 * 1024);
        put(&d.join("memory.limit_in_bytes"), &format!("{}\n", 64 * MIB));
        let m = view.meminfo(HOST).unwrap();
        assert_eq!(value(&m, "MemTotal"), 64 * 1024);
        assert_eq!(value(&m, "MemFree"), 0, "usage above the total");
    }

    #[test]
    fn v2_takes_the_smallest_limit_of_the_ancestors() {
        let (_tmp, fs) = unified("cpu memory pids");
        let g = GuestCgroup::create(&fs, None, "g").unwrap();
        let view = g.memory_view().expect("v2 memory view");
        let d = view.dir().unwrap().to_path_buf();
        assert!(view.dirs.len() >= 2, "{view:?}");
        put(&d.join("memory.high"), "max\n");
        put(&d.join("memory.max"), &format!("{}\n", 1024 * MIB));
        // An ancestor (the guests' parent) bounds it further.
        put(
            &view.dirs[1].join("memory.high"),
            &format!("{}\n", 300 * MIB),
        );
        put(&d.join("memory.current"), &format!("{}\n", 100 * MIB));
        put(
            &d.join("memory.stat"),
            &format!(
                "anon {}\nfile {}\nslab {}\nslab_reclaimable {}\nslab_unreclaimable {}\n\
                 active_file {}\ninactive_file 0\nkernel_stack 4096\n",
                60 * MIB,
                30 * MIB,
                4 * MIB,
                3 * MIB,
                MIB,
                10 * MIB
            ),
        );
        put(&d.join("memory.swap.max"), "max\n");
        put(&d.join("memory.swap.current"), "0\n");
        let m = view.meminfo(HOST).unwrap();
        assert_eq!(value(&m, "MemTotal"), 300 * 1024, "{m}");
        assert_eq!(value(&m, "MemFree"), 200 * 1024);
        assert_eq!(value(&m, "MemAvailable"), 213 * 1024);
        assert_eq!(value(&m, "Cached"), 30 * 1024);
        assert_eq!(value(&m, "Slab"), 4 * 1024);
        assert_eq!(value(&m, "KernelStack"), 4);
        // Unlimited swap: the host's size, the guest's use.
        assert_eq!(value(&m, "SwapTotal"), 2_097_148);
        assert_eq!(value(&m, "SwapFree"), 2_097_148);
    }
}
