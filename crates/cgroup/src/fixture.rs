//! What a fixture ([`crate::CgroupFs::fixture`]) plays of the kernel: the
//! control files a new cgroup gets, and the effect of enabling a cgroup2
//! controller in `cgroup.subtree_control`.
//!
//! The file sets and initial values are those of Linux 6.18 (machine.md
//! §1-§2), trimmed to the files this crate reads or writes.

use std::collections::BTreeSet;
use std::path::Path;

/// The cgroup2 controllers vserver uses, in the kernel's listing order.
pub(crate) const V2_CONTROLLERS: [&str; 5] = ["cpuset", "cpu", "io", "memory", "pids"];

/// Every cgroup2 cgroup's `cpu.stat` (core accounting, no controller).
const V2_CPU_STAT_CORE: &str = "usage_usec 0\nuser_usec 0\nsystem_usec 0\nnice_usec 0\n";
/// `cpu.stat` once the cpu controller is enabled.
const V2_CPU_STAT_FULL: &str = "usage_usec 0\nuser_usec 0\nsystem_usec 0\nnice_usec 0\n\
nr_periods 0\nnr_throttled 0\nthrottled_usec 0\nnr_bursts 0\nburst_usec 0\n";

/// The files a cgroup2 controller adds to a (non-root) cgroup.
fn v2_files(controller: &str) -> &'static [(&'static str, &'static str)] {
    match controller {
        "memory" => &[
            ("memory.current", "0\n"),
            ("memory.min", "0\n"),
            ("memory.low", "0\n"),
            ("memory.high", "max\n"),
            ("memory.max", "max\n"),
            ("memory.peak", "0\n"),
            (
                "memory.events",
                "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n",
            ),
            ("memory.stat", "anon 0\nfile 0\nkernel 0\nshmem 0\n"),
            ("memory.swap.current", "0\n"),
            ("memory.swap.max", "max\n"),
            ("memory.swap.peak", "0\n"),
            ("memory.swap.events", "high 0\nmax 0\nfail 0\n"),
        ],
        "pids" => &[
            ("pids.current", "0\n"),
            ("pids.max", "max\n"),
            ("pids.peak", "0\n"),
            ("pids.events", "max 0\n"),
        ],
        "cpu" => &[
            ("cpu.max", "max 100000\n"),
            ("cpu.max.burst", "0\n"),
            ("cpu.weight", "100\n"),
            ("cpu.stat", V2_CPU_STAT_FULL),
        ],
        "cpuset" => &[
            ("cpuset.cpus", "\n"),
            ("cpuset.mems", "\n"),
            ("cpuset.cpus.effective", "\n"),
            ("cpuset.mems.effective", "\n"),
        ],
        "io" => &[("io.weight", "default 100\n"), ("io.stat", "")],
        _ => &[],
    }
}

/// The files a v1 controller puts in a (non-root) cgroup of its hierarchy.
fn v1_files(controller: &str) -> &'static [(&'static str, &'static str)] {
    const UNLIMITED: &str = "9223372036854771712\n";
    match controller {
        "memory" => &[
            ("memory.limit_in_bytes", UNLIMITED),
            ("memory.soft_limit_in_bytes", UNLIMITED),
            ("memory.usage_in_bytes", "0\n"),
            ("memory.max_usage_in_bytes", "0\n"),
            ("memory.failcnt", "0\n"),
            ("memory.memsw.limit_in_bytes", UNLIMITED),
            ("memory.memsw.usage_in_bytes", "0\n"),
            ("memory.memsw.max_usage_in_bytes", "0\n"),
            ("memory.memsw.failcnt", "0\n"),
            (
                "memory.oom_control",
                "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
            ),
            (
                "memory.stat",
                "cache 0\nrss 0\nswap 0\ntotal_cache 0\ntotal_rss 0\ntotal_swap 0\n",
            ),
        ],
        "pids" => &[
            ("pids.current", "0\n"),
            ("pids.max", "max\n"),
            ("pids.peak", "0\n"),
            ("pids.events", "max 0\n"),
        ],
        "cpu" => &[
            ("cpu.cfs_period_us", "100000\n"),
            ("cpu.cfs_quota_us", "-1\n"),
            ("cpu.cfs_burst_us", "0\n"),
            ("cpu.shares", "1024\n"),
            (
                "cpu.stat",
                "nr_periods 0\nnr_throttled 0\nthrottled_time 0\nnr_bursts 0\nburst_time 0\n",
            ),
        ],
        "cpuacct" => &[
            ("cpuacct.usage", "0\n"),
            ("cpuacct.usage_user", "0\n"),
            ("cpuacct.usage_sys", "0\n"),
            ("cpuacct.stat", "user 0\nsystem 0\n"),
        ],
        // A new v1 cpuset starts empty (machine.md §1e).
        "cpuset" => &[
            ("cpuset.cpus", "\n"),
            ("cpuset.mems", "\n"),
            ("cpuset.effective_cpus", "\n"),
            ("cpuset.effective_mems", "\n"),
            ("cgroup.clone_children", "0\n"),
        ],
        // CFQ's blkio.weight is gone since Linux 5.0; BFQ's is what exists.
        "blkio" => &[("blkio.bfq.weight", "100\n")],
        "freezer" => &[("freezer.state", "THAWED\n")],
        // A new cgroup inherits its parent's list (the root's allows all).
        "devices" => &[
            ("devices.allow", ""),
            ("devices.deny", ""),
            ("devices.list", "a *:* rwm\n"),
        ],
        _ => &[],
    }
}

fn create_missing(dir: &Path, files: &[(&str, &str)]) -> std::io::Result<()> {
    for (name, content) in files {
        let p = dir.join(name);
        if !p.exists() {
            std::fs::write(p, content)?;
        }
    }
    Ok(())
}

/// The words of a list file (`cgroup.controllers`); empty if missing.
pub(crate) fn read_words(path: &Path) -> BTreeSet<String> {
    std::fs::read_to_string(path)
        .map(|t| t.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default()
}

fn write_words(path: &Path, words: &BTreeSet<String>) -> std::io::Result<()> {
    // The kernel lists in its own order; ours is sorted, which readers must
    // not care about either.
    let mut text = words.iter().cloned().collect::<Vec<_>>().join(" ");
    text.push('\n');
    std::fs::write(path, text)
}

/// The control files of a new cgroup2 cgroup `dir` (beyond `cgroup.procs`
/// and friends): one set per controller its parent enables.
pub(crate) fn populate_v2(dir: &Path) -> std::io::Result<()> {
    let enabled = dir
        .parent()
        .map(|p| read_words(&p.join("cgroup.subtree_control")))
        .unwrap_or_default();
    write_words(&dir.join("cgroup.controllers"), &enabled)?;
    std::fs::write(dir.join("cgroup.subtree_control"), "\n")?;
    std::fs::write(dir.join("cpu.stat"), V2_CPU_STAT_CORE)?;
    for c in &enabled {
        add_v2_controller(dir, c)?;
    }
    Ok(())
}

fn add_v2_controller(dir: &Path, controller: &str) -> std::io::Result<()> {
    if controller == "cpu" {
        std::fs::write(dir.join("cpu.stat"), V2_CPU_STAT_FULL)?;
    }
    create_missing(dir, v2_files(controller))
}

/// The control files of a new cgroup `dir` of the v1 hierarchy mounted at
/// `hierarchy_root` (whose name lists its controllers: `cpu,cpuacct`).
pub(crate) fn populate_v1(dir: &Path, hierarchy_root: &Path) -> std::io::Result<()> {
    let name = hierarchy_root
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    for c in name.split(',') {
        create_missing(dir, v1_files(c))?;
    }
    Ok(())
}

/// A write of `data` to `dir/cgroup.subtree_control`: `+NAME` enables (it
/// must be listed in `dir/cgroup.controllers`, else `ENOENT` as from the
/// kernel), `-NAME` disables; enabling adds the controller's files to every
/// child cgroup. Enabling in a cgroup that is not the hierarchy's root
/// (`is_root`) and has processes of its own fails with `EBUSY`, as the
/// kernel's no-internal-processes rule has it (cgroup-v2.rst, "No Internal
/// Process Constraint").
pub(crate) fn write_subtree_control(dir: &Path, data: &str, is_root: bool) -> std::io::Result<()> {
    let enabling = data.split_whitespace().any(|t| t.starts_with('+'));
    let has_procs = std::fs::read_to_string(dir.join("cgroup.procs"))
        .map(|t| !t.trim().is_empty())
        .unwrap_or(false);
    if enabling && !is_root && has_procs {
        return Err(std::io::Error::from_raw_os_error(libc::EBUSY));
    }
    let available = read_words(&dir.join("cgroup.controllers"));
    let path = dir.join("cgroup.subtree_control");
    let mut enabled = read_words(&path);
    let mut added = Vec::new();
    let mut removed = Vec::new();
    for token in data.split_whitespace() {
        let (on, name) = match token.split_at(1) {
            ("+", n) => (true, n),
            ("-", n) => (false, n),
            _ => return Err(std::io::Error::from_raw_os_error(libc::EINVAL)),
        };
        if !available.contains(name) {
            return Err(std::io::Error::from_raw_os_error(libc::ENOENT));
        }
        if on {
            if enabled.insert(name.to_owned()) {
                added.push(name.to_owned());
            }
        } else if enabled.remove(name) {
            removed.push(name.to_owned());
        }
    }
    write_words(&path, &enabled)?;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if !entry.file_type()?.is_dir() {
            continue;
        }
        let child = entry.path();
        let mut controllers = read_words(&child.join("cgroup.controllers"));
        for c in &added {
            controllers.insert(c.clone());
            add_v2_controller(&child, c)?;
        }
        for c in &removed {
            controllers.remove(c);
        }
        write_words(&child.join("cgroup.controllers"), &controllers)?;
    }
    Ok(())
}

/// Fixture mount roots for the unit tests of every module.
#[cfg(test)]
pub(crate) mod testutil {
    use std::path::Path;

    use crate::{CgroupFs, Layout};

    pub(crate) fn put(path: &Path, content: &str) {
        if let Some(p) = path.parent() {
            std::fs::create_dir_all(p).unwrap();
        }
        std::fs::write(path, content).unwrap();
    }

    pub(crate) fn get(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap()
    }

    /// A pure cgroup2 root offering `controllers` (none enabled yet); the
    /// caller is in the root cgroup.
    pub(crate) fn unified(controllers: &str) -> (tempfile::TempDir, CgroupFs) {
        let tmp = tempfile::tempdir().unwrap();
        let r = tmp.path();
        put(&r.join("cgroup.procs"), "");
        put(&r.join("cgroup.controllers"), &format!("{controllers}\n"));
        put(&r.join("cgroup.subtree_control"), "\n");
        let fs = CgroupFs::fixture(r.to_path_buf(), Layout::Unified).with_self_cgroup("0::/\n");
        (tmp, fs)
    }

    /// The v1 hierarchies of this host (machine.md §0) as directories named
    /// in `v1`, plus a controller-less cgroup2 at `unified` unless `layout`
    /// is legacy; the caller is in every root cgroup. The cpuset root has
    /// CPUs 0-1 and node 0.
    pub(crate) fn v1_host(layout: Layout, v1: &[&str]) -> (tempfile::TempDir, CgroupFs) {
        let tmp = tempfile::tempdir().unwrap();
        let r = tmp.path();
        let mut membership = String::new();
        for (i, d) in v1.iter().enumerate() {
            put(&r.join(d).join("cgroup.procs"), "");
            membership.push_str(&format!("{}:{d}:/\n", i + 1));
        }
        if v1.iter().any(|d| d.split(',').any(|c| c == "cpuset")) {
            let d = v1
                .iter()
                .find(|d| d.split(',').any(|c| c == "cpuset"))
                .unwrap();
            put(&r.join(d).join("cpuset.cpus"), "0-1\n");
            put(&r.join(d).join("cpuset.mems"), "0\n");
        }
        if layout != Layout::Legacy {
            put(&r.join("unified/cgroup.procs"), "");
            put(&r.join("unified/cgroup.controllers"), "hugetlb\n");
            put(&r.join("unified/cgroup.subtree_control"), "\n");
            membership.push_str("0::/\n");
        }
        let fs = CgroupFs::fixture(r.to_path_buf(), layout).with_self_cgroup(membership);
        (tmp, fs)
    }

    /// Every v1 controller vserver uses, each mounted on its own.
    pub(crate) const HOST_V1: &[&str] = &[
        "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids",
    ];
}

#[cfg(test)]
mod tests {
    use super::testutil::{HOST_V1, get, put, v1_host};
    use crate::{GuestCgroup, Hierarchy, Layout, V1Controller};
    use std::path::Path;

    /// A new v1 cpuset (and the `vserver` level above it) gets the parent's
    /// cpus and mems before anything joins.
    #[test]
    fn v1_cpusets_inherit_before_join() {
        for layout in [Layout::Hybrid, Layout::Legacy] {
            let (tmp, fs) = v1_host(layout, HOST_V1);
            let r = tmp.path();
            let g = GuestCgroup::create(&fs, None, "g").unwrap();
            let want: Vec<Hierarchy> = match layout {
                Layout::Hybrid => vec![Hierarchy::V2],
                _ => vec![Hierarchy::V1(V1Controller::Freezer)],
            }
            .into_iter()
            .chain(
                [
                    V1Controller::Pids,
                    V1Controller::Memory,
                    V1Controller::Cpu,
                    V1Controller::Cpuacct,
                    V1Controller::Cpuset,
                    V1Controller::Blkio,
                ]
                .map(Hierarchy::V1),
            )
            // Legacy only: no cgroup2, so no BPF device filter.
            .chain((layout == Layout::Legacy).then_some(Hierarchy::V1(V1Controller::Devices)))
            .collect();
            assert_eq!(g.hierarchies(), want);
            g.join(42).unwrap();
            let w: Vec<(String, String)> = fs
                .take_fixture_writes()
                .into_iter()
                .map(|(p, d)| (p.strip_prefix(r).unwrap().display().to_string(), d))
                .collect();
            let cpuset: Vec<(&str, &str)> = w
                .iter()
                .filter(|(p, _)| p.starts_with("cpuset/"))
                .map(|(p, d)| (p.as_str(), d.as_str()))
                .collect();
            assert_eq!(
                cpuset,
                [
                    ("cpuset/vserver/cpuset.cpus", "0-1"),
                    ("cpuset/vserver/cpuset.mems", "0"),
                    ("cpuset/vserver/g/cpuset.cpus", "0-1"),
                    ("cpuset/vserver/g/cpuset.mems", "0"),
                    ("cpuset/vserver/g/cgroup.clone_children", "1"),
                    ("cpuset/vserver/g/cgroup.procs", "42"),
                ],
                "{layout:?}"
            );
            assert_eq!(get(&r.join("cpuset/vserver/g/cpuset.cpus")), "0-1");
            // Other hierarchies have no cpuset files: nothing written there
            // but the join.
            assert!(
                w.iter()
                    .filter(|(p, _)| !p.starts_with("cpuset/"))
                    .all(|(p, _)| p.ends_with("cgroup.procs")),
                "{w:?}"
            );
        }
    }

    #[test]
    fn cpuset_inheritance_covers_leftovers_and_new_bases() {
        let (tmp, fs) = v1_host(Layout::Hybrid, &["cpuset"]);
        let r = tmp.path();
        // A leftover level and guest directory with empty cpusets.
        for d in ["cpuset/vserver", "cpuset/vserver/g"] {
            put(&r.join(d).join("cgroup.procs"), "");
            put(&r.join(d).join("cpuset.cpus"), "\n");
            put(&r.join(d).join("cpuset.mems"), "\n");
        }
        let g = GuestCgroup::create(&fs, None, "g").unwrap();
        let d = g.dir(Hierarchy::V1(V1Controller::Cpuset)).unwrap();
        assert_eq!(get(&d.join("cpuset.cpus")), "0-1");
        assert_eq!(get(&d.join("cpuset.mems")), "0");
        // A configured value is kept.
        put(&d.join("cpuset.cpus"), "1\n");
        GuestCgroup::create(&fs, None, "g").unwrap();
        assert_eq!(get(&d.join("cpuset.cpus")), "1\n");
        // A new explicit base is filled level by level.
        let g = GuestCgroup::create(&fs, Some(Path::new("/a/b")), "h").unwrap();
        for d in [
            "cpuset/a",
            "cpuset/a/b",
            "cpuset/a/b/vserver",
            "cpuset/a/b/vserver/h",
        ] {
            assert_eq!(get(&r.join(d).join("cpuset.mems")), "0", "{d}");
        }
        g.remove().unwrap();
    }

    /// The legacy layout's guests get the v1 device lists: deny all, mknod
    /// allowed, then read/write of exactly the listed char devices; the
    /// hybrid layout's (BPF filter on cgroup2) get no devices directory.
    #[test]
    fn legacy_device_lists() {
        let allowed = [(1, Some(3)), (136, None)];
        let (tmp, fs) = v1_host(Layout::Legacy, HOST_V1);
        let g = GuestCgroup::create(&fs, None, "g").unwrap();
        let dir = g.dir(Hierarchy::V1(V1Controller::Devices)).unwrap();
        assert_eq!(dir, tmp.path().join("devices/vserver/g"));
        fs.take_fixture_writes();
        assert!(g.restrict_devices_v1(&allowed).unwrap());
        let w: Vec<(String, String)> = fs
            .take_fixture_writes()
            .into_iter()
            .map(|(p, d)| (p.strip_prefix(dir).unwrap().display().to_string(), d))
            .collect();
        let want: Vec<(String, String)> = [
            ("devices.deny", "a"),
            ("devices.allow", "c *:* m"),
            ("devices.allow", "b *:* m"),
            ("devices.allow", "c 1:3 rw"),
            ("devices.allow", "c 136:* rw"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        assert_eq!(w, want);
        g.remove().unwrap();
        assert!(!tmp.path().join("devices/vserver").exists());
        let (_tmp, fs) = v1_host(Layout::Hybrid, HOST_V1);
        let g = GuestCgroup::create(&fs, None, "g").unwrap();
        assert_eq!(g.dir(Hierarchy::V1(V1Controller::Devices)), None);
        fs.take_fixture_writes();
        assert!(!g.restrict_devices_v1(&allowed).unwrap());
        assert!(fs.take_fixture_writes().is_empty());
    }

    #[test]
    fn subtree_control_emulation() {
        let tmp = tempfile::tempdir().unwrap();
        let r = tmp.path();
        put(&r.join("cgroup.controllers"), "memory pids\n");
        put(&r.join("cgroup.subtree_control"), "\n");
        put(&r.join("c/cgroup.controllers"), "\n");
        let err = super::write_subtree_control(r, "+cpu", true).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
        super::write_subtree_control(r, "+memory +pids", true).unwrap();
        assert_eq!(get(&r.join("cgroup.subtree_control")), "memory pids\n");
        assert_eq!(get(&r.join("c/cgroup.controllers")), "memory pids\n");
        assert!(r.join("c/memory.max").is_file());
        super::write_subtree_control(r, "-pids", true).unwrap();
        assert_eq!(get(&r.join("cgroup.subtree_control")), "memory\n");
        assert_eq!(get(&r.join("c/cgroup.controllers")), "memory\n");
        // A non-root cgroup with processes: enabling is EBUSY, disabling
        // is not; the root is exempt.
        put(&r.join("cgroup.procs"), "42\n");
        let err = super::write_subtree_control(r, "+pids", false).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EBUSY));
        assert_eq!(get(&r.join("cgroup.subtree_control")), "memory\n");
        super::write_subtree_control(r, "-memory", false).unwrap();
        super::write_subtree_control(r, "+pids", true).unwrap();
        assert_eq!(get(&r.join("cgroup.subtree_control")), "pids\n");
    }
}
