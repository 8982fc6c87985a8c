//! util-vserver's list syntax, read from files (util-vserver.md §2.1): `#`
//! comments and blank lines, `~`/`!` to clear an item, case-insensitive
//! names with optional prefixes, comma-separated items, `all`/`any`/`none`,
//! `^N` bits and number masks. Asserted on the resolved sets, so a cleared
//! item is shown to be absent, not just counted.

use std::collections::BTreeSet;
use std::fs;

use vs_config::*;

struct Guest {
    root: tempfile::TempDir,
    name: GuestName,
}

impl Guest {
    fn new() -> Self {
        let g = Guest {
            root: tempfile::tempdir().unwrap(),
            name: GuestName::new("g").unwrap(),
        };
        g.write("context", "4242\n");
        g
    }

    fn paths(&self) -> Paths {
        Paths::new(self.root.path())
    }

    fn write(&self, rel: &str, content: &str) {
        let p = self.paths().guest_cfg(&self.name).join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, content).unwrap();
    }

    fn remove(&self, rel: &str) {
        fs::remove_file(self.paths().guest_cfg(&self.name).join(rel)).unwrap();
    }

    fn spec(&self) -> GuestSpec {
        GuestSpec::load(&self.paths(), &self.name).unwrap()
    }
}

fn cap(name: &str) -> Cap {
    Cap::lookup(name).unwrap()
}

#[test]
fn cflags_comments_blank_lines_prefixes_case_and_clearing() {
    let g = Guest::new();
    // Without the file, the defaults include virt_uptime and sc_helper.
    let base = g.spec().cflags;
    assert!(base.contains(&CFlag::VirtUptime) && base.contains(&CFlag::ScHelper));
    assert!(!base.contains(&CFlag::VirtMem) && !base.contains(&CFlag::VirtLoad));

    g.write(
        "cflags",
        "# a comment line\n\
         \n\
         \x20  \n\
         VXF_VIRT_MEM\n\
         \x20 # an indented comment naming turbo_mode\n\
         Virt_Load\n\
         vxf_Hide_Mount\n\
         ~VIRT_UPTIME\n\
         !vxf_sc_helper\n",
    );
    let f = g.spec().cflags;
    for on in [CFlag::VirtMem, CFlag::VirtLoad, CFlag::HideMount] {
        assert!(f.contains(&on), "{on:?} in {f:?}");
    }
    // Cleared: default items that are otherwise set.
    assert!(!f.contains(&CFlag::VirtUptime), "{f:?}");
    assert!(!f.contains(&CFlag::ScHelper), "{f:?}");
    // Untouched defaults stay.
    assert!(f.contains(&CFlag::HideNetif) && f.contains(&CFlag::FakeInit));

    // A later line wins: set, clear, set again.
    g.write(
        "cflags",
        "virt_cpu\n!virt_cpu\nvirt_time\n~virt_time\nvirt_time\n",
    );
    let f = g.spec().cflags;
    assert!(!f.contains(&CFlag::VirtCpu) && f.contains(&CFlag::VirtTime));

    // The old name `flags` is read the same way.
    g.remove("cflags");
    g.write("flags", "#x\n\nvirt_mem\n!virt_uptime\n");
    let f = g.spec().cflags;
    assert!(f.contains(&CFlag::VirtMem) && !f.contains(&CFlag::VirtUptime));
}

#[test]
fn commas_all_none_any_bits_and_masks() {
    let g = Guest::new();
    // Comma-separated on one line, with spaces and a clear among them.
    g.write("cflags", "virt_mem, virt_load ,~virt_uptime,,sched_hard\n");
    let f = g.spec().cflags;
    assert!(f.contains(&CFlag::VirtMem) && f.contains(&CFlag::VirtLoad));
    assert!(f.contains(&CFlag::SchedHard) && !f.contains(&CFlag::VirtUptime));

    // `none` empties the set, then items are added.
    g.write("ccapabilities", "none\nVXC_SET_RLIMIT\n");
    assert_eq!(g.spec().ccaps, BTreeSet::from([CCap::SetRlimit]));
    // `all` (and `any`) fill it, `!x` takes one out.
    g.write("ccapabilities", "ALL\n!kthread\n");
    let c = g.spec().ccaps;
    assert_eq!(c.len(), CCap::all().len() - 1);
    assert!(!c.contains(&CCap::Kthread) && c.contains(&CCap::AdminCloop));
    g.write("ccapabilities", "any\n");
    assert_eq!(g.spec().ccaps.len(), CCap::all().len());
    // `~all` clears everything; `!none` is the same as all.
    g.write("ccapabilities", "~all\nping\n");
    assert_eq!(g.spec().ccaps, BTreeSet::from([CCap::RawIcmp]));
    g.write("ccapabilities", "!none\n");
    assert_eq!(g.spec().ccaps.len(), CCap::all().len());

    // `^N` is bit N; a plain or 0x number is a whole mask.
    g.write("ccapabilities", "none\n^2\n^24\n");
    assert_eq!(
        g.spec().ccaps,
        BTreeSet::from([CCap::FsSecurity, CCap::Kthread])
    );
    g.write("ccapabilities", "none\n0x101\n");
    assert_eq!(
        g.spec().ccaps,
        BTreeSet::from([CCap::SetUtsname, CCap::RawIcmp])
    );
    g.write("ccapabilities", "none\n257\n~^0\n");
    assert_eq!(g.spec().ccaps, BTreeSet::from([CCap::RawIcmp]));
    // A default that a ~^N clears is gone.
    g.write("ncapabilities", "~^8\n^12\n");
    assert_eq!(g.spec().ncaps, BTreeSet::from([NCap::Multicast]));
}

#[test]
fn capabilities_with_and_without_cap_prefix_in_any_case() {
    let g = Guest::new();
    let base = g.spec().bcaps;
    assert!(base.contains(&cap("CHOWN")) && base.contains(&cap("KILL")));
    assert!(!base.contains(&cap("NET_RAW")) && !base.contains(&cap("SYS_TIME")));
    g.write(
        "bcapabilities",
        "# what the guest may keep\nCAP_NET_RAW\ncap_Sys_Time\n\n!CAP_CHOWN\n~kill\n",
    );
    let b = g.spec().bcaps;
    assert!(b.contains(&cap("NET_RAW")) && b.contains(&cap("SYS_TIME")));
    assert!(!b.contains(&cap("CHOWN")), "cleared with !CAP_");
    assert!(!b.contains(&cap("KILL")), "cleared with ~ and no prefix");
    assert!(b.contains(&cap("SETUID")), "others stay");
}

#[test]
fn network_flags_and_caps_take_their_prefixes() {
    let g = Guest::new();
    assert!(g.spec().nflags.contains(&NFlag::HideNetif));
    assert!(g.spec().ncaps.contains(&NCap::RawIcmp));
    g.write(
        "nflags",
        "NXF_LBACK_REMAP\nnxf_lback_allow\n!NXF_HIDE_NETIF\n",
    );
    let n = g.spec().nflags;
    assert!(n.contains(&NFlag::LbackRemap) && n.contains(&NFlag::LbackAllow));
    assert!(!n.contains(&NFlag::HideNetif));
    g.write("ncapabilities", "NXC_TUN_CREATE\n~nxc_raw_icmp\n");
    assert_eq!(g.spec().ncaps, BTreeSet::from([NCap::TunCreate]));
}

#[test]
fn dos_line_endings_are_read_with_a_warning() {
    let g = Guest::new();
    g.write("cflags", "virt_mem\r\n~virt_uptime\r\n");
    let s = g.spec();
    assert!(s.cflags.contains(&CFlag::VirtMem) && !s.cflags.contains(&CFlag::VirtUptime));
    assert!(
        s.warnings
            .iter()
            .any(|w| w.path.ends_with("cflags") && w.message.contains("DOS line endings")),
        "{:?}",
        s.warnings
    );
}

#[test]
fn pseudo_names_expand_and_clear() {
    let g = Guest::new();
    // `secure` is hide_netif; clearing it removes that default.
    g.write("cflags", "~secure\n");
    assert!(!g.spec().cflags.contains(&CFlag::HideNetif));
    // `default` is virt_uptime and sc_helper.
    g.write("cflags", "none\ndefault\n");
    assert_eq!(
        g.spec().cflags,
        BTreeSet::from([CFlag::VirtUptime, CFlag::ScHelper])
    );
}
