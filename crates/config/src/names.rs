//! Typed names for util-vserver's flag and capability lists.
//!
//! util-vserver matches names case-insensitively, with an optional prefix
//! (`VXF_` for context flags, `VXC_` for context capabilities, `CAP_` for
//! system capabilities, `NXF_`/`NXC_` for the network side), and also accepts
//! `^N` for bit N and plain numbers for a whole mask
//! (`UV lib/listparser.hc`). Every name resolves to an enum variant here;
//! anything else is an error at the edge.

use std::fmt;
use std::sync::OnceLock;

/// Whether a stock kernel can honour a flag or capability, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// Carried by a stock-kernel mechanism (DESIGN §1).
    Yes,
    /// Always in effect here; naming it changes nothing.
    Implicit,
    /// Has no stock-kernel equivalent; the reason says why.
    No(&'static str),
}

/// A name that can appear in a util-vserver list file.
pub trait Named: Sized + Copy + Eq + Ord + fmt::Debug + 'static {
    /// Optional prefix, upper case, including the underscore.
    const PREFIXES: &'static [&'static str];
    /// What the list holds, for error messages ("context flag").
    const KIND: &'static str;
    /// Every variant.
    fn all() -> &'static [Self];
    /// Accepted names, lower case; the first is canonical.
    fn names(self) -> &'static [&'static str];
    /// The bit number util-vserver gives this item (for `^N` and masks).
    fn bit(self) -> u32;
    /// Whether a stock kernel can honour it.
    fn support(self) -> Support {
        Support::Yes
    }
    /// Pseudo names that expand to several items (`default`, `secure`).
    fn pseudo(_name: &str) -> Option<&'static [Self]> {
        None
    }
    /// The pseudo names [`Named::pseudo`] knows, lower case.
    fn pseudo_names() -> &'static [&'static str] {
        &[]
    }

    /// What a list of this kind accepts, for error messages: every canonical
    /// name and the other forms of a list entry, on one line.
    fn expected() -> String {
        let mut names: Vec<&str> = Self::all().iter().map(|v| v.name()).collect();
        names.extend(Self::pseudo_names());
        let prefixes = Self::PREFIXES.join("/");
        format!(
            "one of: {} (any case, optional {prefixes} prefix; also all, none, ^BIT or a number mask, '!' or '~' to clear)",
            names.join(", ")
        )
    }

    /// The canonical name, lower case, without prefix.
    fn name(self) -> &'static str {
        self.names()[0]
    }

    /// Looks a name up: case-insensitive, with or without the prefix.
    fn lookup(raw: &str) -> Option<Self> {
        let lower = raw.to_ascii_lowercase();
        let mut candidates = vec![lower.as_str()];
        for p in Self::PREFIXES {
            if let Some(stripped) = lower.strip_prefix(&p.to_ascii_lowercase()) {
                candidates.push(stripped);
            }
        }
        Self::all()
            .iter()
            .copied()
            .find(|v| v.names().iter().any(|n| candidates.contains(n)))
    }

    /// The item with util-vserver bit number `bit`.
    fn from_bit(bit: u32) -> Option<Self> {
        Self::all().iter().copied().find(|v| v.bit() == bit)
    }
}

macro_rules! named_enum {
    (
        $(#[$meta:meta])*
        $name:ident, kind = $kind:literal, prefixes = [$($prefix:literal),*], pseudo = $pseudo:expr,
        { $( $(#[$vmeta:meta])* $variant:ident = $bit:literal : [$($alias:literal),+] => $support:expr ),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl Named for $name {
            const PREFIXES: &'static [&'static str] = &[$($prefix),*];
            const KIND: &'static str = $kind;
            fn all() -> &'static [Self] {
                &[$($name::$variant),+]
            }
            fn names(self) -> &'static [&'static str] {
                match self { $($name::$variant => &[$($alias),+]),+ }
            }
            fn bit(self) -> u32 {
                match self { $($name::$variant => $bit),+ }
            }
            fn support(self) -> Support {
                match self { $($name::$variant => $support),+ }
            }
            fn pseudo(name: &str) -> Option<&'static [Self]> {
                let lower = name.to_ascii_lowercase();
                let table: &[(&str, &'static [Self])] = $pseudo;
                table.iter().find(|(n, _)| {
                    *n == lower || $(lower.strip_prefix(&$prefix.to_ascii_lowercase()) == Some(*n) ||)* false
                }).map(|(_, set)| *set)
            }
            fn pseudo_names() -> &'static [&'static str] {
                static NAMES: OnceLock<Vec<&'static str>> = OnceLock::new();
                NAMES.get_or_init(|| {
                    let table: &[(&'static str, &'static [$name])] = $pseudo;
                    table.iter().map(|(n, _)| *n).collect()
                })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

use Support::{Implicit, No, Yes};

// Context flags (`cflags`): names and bits from `UV lib/cflags-v13.c`,
// meanings from util-vserver.md §3.1; mechanisms from DESIGN §1.
named_enum!(
    /// A context flag (`cflags`, old name `flags`).
    CFlag, kind = "context flag", prefixes = ["VXF_"],
    pseudo = &[("secure", &[CFlag::HideNetif]), ("default", &[CFlag::VirtUptime, CFlag::ScHelper])], {
        Lock = 0: ["lock", "info_lock"] => Implicit,
        Nproc = 2: ["nproc", "info_nproc"] => No("context-wide ulimits do not exist; use rlimits/nproc"),
        Private = 3: ["private", "info_private"] => Yes,
        FakeInit = 4: ["fakeinit", "info_init"] => Implicit,
        HideInfo = 5: ["hideinfo", "info_hideinfo"] => Implicit,
        Ulimit = 6: ["ulimit", "info_ulimit"] => No("context-wide ulimits do not exist; use rlimits/"),
        Namespace = 7: ["namespace", "info_namespace", "info_nspace"] => Implicit,
        SchedHard = 8: ["sched_hard"] => Yes,
        SchedPrio = 9: ["sched_prio"] => Yes,
        SchedPause = 10: ["sched_pause"] => Yes,
        VirtMem = 16: ["virt_mem"] => Yes,
        VirtUptime = 17: ["virt_uptime"] => Yes,
        VirtCpu = 18: ["virt_cpu"] => Yes,
        VirtLoad = 19: ["virt_load"] => Yes,
        VirtTime = 20: ["virt_time"] => No("time namespaces cannot offset the real-time clock"),
        HideMount = 24: ["hide_mount"] => Implicit,
        HideNetif = 25: ["hide_netif"] => Yes,
        HideVinfo = 26: ["hide_vinfo"] => Implicit,
        StateSetup = 32: ["state_setup"] => Implicit,
        StateInit = 33: ["state_init"] => Implicit,
        StateAdmin = 34: ["state_admin"] => Implicit,
        ScHelper = 36: ["sc_helper"] => Yes,
        RebootKill = 37: ["reboot_kill"] => Implicit,
        Persistent = 38: ["persistent"] => No("a guest ends with its last process"),
        ForkRss = 48: ["fork_rss"] => No("the memory cgroup cannot refuse fork over rss"),
        Prolific = 49: ["prolific"] => No("guests cannot create nested contexts"),
        IgnegNice = 52: ["igneg_nice"] => No("no stock-kernel hook ignores priority raises"),
        IgnegIonice = 53: ["igneg_ionice"] => No("no stock-kernel hook ignores io priority raises"),
    }
);

// Context capabilities (`ccapabilities`): `UV lib/ccaps-v13.c`.
named_enum!(
    /// A context capability (`ccapabilities`).
    CCap, kind = "context capability", prefixes = ["VXC_"], pseudo = &[], {
        SetUtsname = 0: ["set_utsname", "utsname"] => Yes,
        SetRlimit = 1: ["set_rlimit", "rlimit"] => Yes,
        FsSecurity = 2: ["fs_security"] => No("security.* xattrs follow the user namespace rules"),
        FsTrusted = 3: ["fs_trusted"] => No("trusted.* xattrs need CAP_SYS_ADMIN in the host namespace"),
        Tiocsti = 4: ["tiocsti"] => Yes,
        RawIcmp = 8: ["raw_icmp", "icmp", "ping"] => Yes,
        Syslog = 12: ["syslog"] => No("the kernel log is not namespaced"),
        OomAdjust = 13: ["oom_adjust"] => No("lowering oom_score_adj needs CAP_SYS_RESOURCE on the host"),
        AuditControl = 14: ["audit_control"] => No("audit is not namespaced"),
        SecureMount = 16: ["secure_mount", "mount"] => Yes,
        SecureRemount = 17: ["secure_remount", "remount"] => Yes,
        BinaryMount = 18: ["binary_mount"] => No("network filesystems cannot be mounted from a user namespace"),
        DevMount = 19: ["dev_mount"] => No("block-device mounts need the host's CAP_SYS_ADMIN"),
        QuotaCtl = 20: ["quota_ctl"] => No("quotactl is not namespaced"),
        AdminMapper = 21: ["admin_mapper"] => No("device-mapper is not namespaced"),
        AdminCloop = 22: ["admin_cloop"] => No("loop devices are not namespaced"),
        Kthread = 24: ["kthread"] => No("kernel threads are not namespaced"),
        Namespace = 25: ["namespace"] => Yes,
    }
);

// Network flags (`nflags`): `UV lib/nflags-net.c`.
named_enum!(
    /// A network flag (`nflags`).
    NFlag, kind = "network flag", prefixes = ["NXF_"], pseudo = &[], {
        Lock = 0: ["lock", "info_lock"] => Implicit,
        Private = 3: ["private", "info_private"] => Implicit,
        SingleIp = 8: ["single_ip"] => Implicit,
        LbackRemap = 9: ["lback_remap", "remap_lback"] => Yes,
        LbackAllow = 10: ["lback_allow"] => Yes,
        HideNetif = 25: ["hide_netif"] => Yes,
        HideLback = 26: ["hide_lback"] => Implicit,
        StateSetup = 32: ["state_setup"] => Implicit,
        StateAdmin = 34: ["state_admin"] => Implicit,
        ScHelper = 36: ["sc_helper"] => Implicit,
        Persistent = 38: ["persistent"] => No("a guest ends with its last process"),
    }
);

// Network capabilities (`ncapabilities`): `UV lib/ncaps-net.c`; bit 12 is the
// kernel's NXC_MULTICAST, which util-vserver only reaches as `^12`.
named_enum!(
    /// A network capability (`ncapabilities`).
    NCap, kind = "network capability", prefixes = ["NXC_"], pseudo = &[], {
        TunCreate = 0: ["tun_create"] => Yes,
        RawIcmp = 8: ["raw_icmp", "icmp", "ping"] => Yes,
        Multicast = 12: ["multicast"] => Yes,
    }
);

/// A POSIX capability, ordered by its number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cap(pub caps::Capability);

impl PartialOrd for Cap {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Cap {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.index().cmp(&other.0.index())
    }
}

struct CapTable {
    all: Vec<Cap>,
    names: Vec<(Cap, &'static [&'static str])>,
}

fn cap_table() -> &'static CapTable {
    static TABLE: OnceLock<CapTable> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut all: Vec<Cap> = caps::all().into_iter().map(Cap).collect();
        all.sort();
        let names = all
            .iter()
            .map(|c| {
                let upper = c.0.to_string();
                let lower = upper
                    .strip_prefix("CAP_")
                    .unwrap_or(&upper)
                    .to_ascii_lowercase();
                let leaked: &'static str = Box::leak(lower.into_boxed_str());
                let slice: &'static [&'static str] = Box::leak(vec![leaked].into_boxed_slice());
                (*c, slice)
            })
            .collect();
        CapTable { all, names }
    })
}

impl Named for Cap {
    const PREFIXES: &'static [&'static str] = &["CAP_"];
    const KIND: &'static str = "capability";
    fn all() -> &'static [Self] {
        &cap_table().all
    }
    fn names(self) -> &'static [&'static str] {
        cap_table()
            .names
            .iter()
            .find(|(c, _)| *c == self)
            .map(|(_, n)| *n)
            .unwrap_or(&["unknown"])
    }
    fn bit(self) -> u32 {
        u32::from(self.0.index())
    }
}

impl fmt::Display for Cap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // util-vserver writes capability names upper case without the prefix.
        f.write_str(&self.name().to_ascii_uppercase())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_is_case_insensitive_with_optional_prefix() {
        assert_eq!(CFlag::lookup("VIRT_MEM"), Some(CFlag::VirtMem));
        assert_eq!(CFlag::lookup("vxf_virt_mem"), Some(CFlag::VirtMem));
        assert_eq!(CFlag::lookup("Info_Init"), Some(CFlag::FakeInit));
        assert_eq!(CCap::lookup("VXC_SET_UTSNAME"), Some(CCap::SetUtsname));
        assert_eq!(CCap::lookup("ping"), Some(CCap::RawIcmp));
        assert_eq!(
            Cap::lookup("CAP_NET_RAW"),
            Some(Cap(caps::Capability::CAP_NET_RAW))
        );
        assert_eq!(
            Cap::lookup("sys_boot"),
            Some(Cap(caps::Capability::CAP_SYS_BOOT))
        );
        assert_eq!(NFlag::lookup("NXF_remap_lback"), Some(NFlag::LbackRemap));
        assert_eq!(CFlag::lookup("virt_memory"), None);
        assert_eq!(Cap::lookup("VXF_CHOWN"), None);
    }

    #[test]
    fn bits_round_trip() {
        assert_eq!(NCap::from_bit(12), Some(NCap::Multicast));
        assert_eq!(CCap::from_bit(8), Some(CCap::RawIcmp));
        assert_eq!(
            Cap::from_bit(21),
            Some(Cap(caps::Capability::CAP_SYS_ADMIN))
        );
        for f in CFlag::all() {
            assert_eq!(CFlag::from_bit(f.bit()), Some(*f));
            assert_eq!(CFlag::lookup(f.name()), Some(*f));
        }
        for c in Cap::all() {
            assert_eq!(Cap::lookup(&c.to_string()), Some(*c));
        }
    }

    #[test]
    fn pseudo_names_expand() {
        assert_eq!(
            CFlag::pseudo("default"),
            Some(&[CFlag::VirtUptime, CFlag::ScHelper][..])
        );
        assert_eq!(CFlag::pseudo("SECURE"), Some(&[CFlag::HideNetif][..]));
        assert_eq!(CCap::pseudo("default"), None);
    }
}
