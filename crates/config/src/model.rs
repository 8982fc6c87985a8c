//! The configuration of one guest as its files state it.
//!
//! [`GuestConfig`] mirrors `/etc/vservers/NAME/` (util-vserver.md §2): each
//! field is one file or directory, `None`/empty when the file is absent, so
//! writing a `GuestConfig` and reading it back gives the same value. The
//! resolved view with every default applied is [`crate::GuestSpec`].

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use crate::names::{CCap, CFlag, Cap, NCap, NFlag, Named};
use crate::values::{IdMap, LimitValue, Xid};

/// One line of a list file: set or clear an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListItem<T> {
    /// `~` or `!` in front: remove instead of add.
    pub clear: bool,
    /// The item.
    pub value: ListValue<T>,
}

/// What a list line names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListValue<T> {
    /// One flag or capability.
    Name(T),
    /// `all` (or `any`).
    All,
    /// `none`.
    None,
}

impl<T: Named> ListItem<T> {
    /// Applies a list of changes to `set`, in order.
    pub fn apply(items: &[ListItem<T>], set: &mut std::collections::BTreeSet<T>) {
        for item in items {
            match (item.value, item.clear) {
                (ListValue::Name(n), false) => {
                    set.insert(n);
                }
                (ListValue::Name(n), true) => {
                    set.remove(&n);
                }
                (ListValue::All, false) | (ListValue::None, true) => {
                    set.extend(T::all().iter().copied());
                }
                (ListValue::All, true) | (ListValue::None, false) => set.clear(),
            }
        }
    }
}

/// The whole per-guest directory.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GuestConfig {
    /// `name`: display name.
    pub name: Option<String>,
    /// `context`: the static context id.
    pub context: Option<Xid>,
    /// `vdir` symlink: the guest root.
    pub vdir: Option<PathBuf>,
    /// `run` symlink: the run-state directory.
    pub run: Option<PathBuf>,
    /// `cache` symlink: the cache directory.
    pub cache: Option<PathBuf>,
    /// `uts/`.
    pub uts: Uts,
    /// `interfaces/`.
    pub interfaces: Interfaces,
    /// `rlimits/`: context-wide limits.
    pub rlimits: BTreeMap<RlimitResource, LimitSet>,
    /// `ulimits/`: per-process limits.
    pub ulimits: BTreeMap<UlimitResource, LimitSet>,
    /// `bcapabilities`.
    pub bcapabilities: Vec<ListItem<Cap>>,
    /// `ccapabilities`.
    pub ccapabilities: Vec<ListItem<CCap>>,
    /// `cflags` (also read from the old name `flags`).
    pub cflags: Vec<ListItem<CFlag>>,
    /// `nflags`.
    pub nflags: Vec<ListItem<NFlag>>,
    /// `ncapabilities`.
    pub ncapabilities: Vec<ListItem<NCap>>,
    /// `fstab`; `None` when the file is absent.
    pub fstab: Option<Vec<FstabEntry>>,
    /// `personality`.
    pub personality: Option<Personality>,
    /// `nice`.
    pub nice: Option<i32>,
    /// `shell`: the command line of `enter`.
    pub shell: Option<String>,
    /// `apps/init/`.
    pub init: InitConfig,
    /// `sched/`.
    pub sched: Sched,
    /// `cpuset/`.
    pub cpuset: Cpuset,
    /// `dlimits/<name>/`.
    pub dlimits: BTreeMap<String, Dlimit>,
    /// `scripts/`.
    pub scripts: BTreeMap<Hook, HookScripts>,
    /// `disabled`.
    pub disabled: bool,
    /// `privileged` (extension): no user namespace.
    pub privileged: bool,
    /// `uidmap` (extension).
    pub uidmap: Option<IdMap>,
    /// `storage/` (extension).
    pub storage: Storage,
    /// `netns/` (private network mode); `None` when the directory is absent.
    pub netns: Option<Netns>,
    /// `cgroup/<subsys>.<knob>` (util-vserver 0.30.216): control files
    /// written into the guest's cgroup at start, name → value (first line).
    pub cgroup: BTreeMap<String, String>,
}

/// `uts/`: the guest's uname fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Uts {
    /// `uts/nodename`: the host name.
    pub nodename: Option<String>,
    /// `uts/domainname`: the NIS domain name.
    pub domainname: Option<String>,
    /// `uts/sysname`.
    pub sysname: Option<String>,
    /// `uts/release`.
    pub release: Option<String>,
    /// `uts/version`.
    pub version: Option<String>,
    /// `uts/machine`.
    pub machine: Option<String>,
}

/// `interfaces/`: the guest's addresses and their inherited defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Interfaces {
    /// `interfaces/dev`.
    pub dev: Option<String>,
    /// `interfaces/prefix`.
    pub prefix: Option<u8>,
    /// `interfaces/mask`.
    pub mask: Option<Ipv4Addr>,
    /// `interfaces/bcast`.
    pub bcast: Option<Ipv4Addr>,
    /// `interfaces/scope`.
    pub scope: Option<String>,
    /// `interfaces/lback`: the guest's loopback address.
    pub lback: Option<IpAddr>,
    /// `interfaces/vlandev`.
    pub vlandev: bool,
    /// `interfaces/novlandev`.
    pub novlandev: bool,
    /// `interfaces/<dir>/`, in alphabetical order of `<dir>`.
    pub list: BTreeMap<String, Interface>,
}

/// `interfaces/<dir>/`: one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// `ip`.
    pub ip: IpAddr,
    /// `prefix`.
    pub prefix: Option<u8>,
    /// `mask`.
    pub mask: Option<Ipv4Addr>,
    /// `dev`.
    pub dev: Option<String>,
    /// `name`: the alias label.
    pub name: Option<String>,
    /// `nodev` (old name `only_ip`): the address is not added to any device.
    pub nodev: bool,
    /// `disabled`.
    pub disabled: bool,
    /// `down`.
    pub down: bool,
    /// `bcast`.
    pub bcast: Option<Ipv4Addr>,
    /// `scope`.
    pub scope: Option<String>,
    /// `peer`.
    pub peer: Option<IpAddr>,
    /// `vlandev`.
    pub vlandev: bool,
    /// `novlandev`.
    pub novlandev: bool,
}

impl Interface {
    /// An address with nothing else set.
    pub fn new(ip: IpAddr) -> Self {
        Interface {
            ip,
            prefix: None,
            mask: None,
            dev: None,
            name: None,
            nodev: false,
            disabled: false,
            down: false,
            bcast: None,
            scope: None,
            peer: None,
            vlandev: false,
            novlandev: false,
        }
    }
}

/// The values of one limit: `<res>` sets all three, the suffixed files one each.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct LimitSet {
    /// `<res>`: min = soft = hard.
    pub all: Option<LimitValue>,
    /// `<res>.hard`.
    pub hard: Option<LimitValue>,
    /// `<res>.soft`.
    pub soft: Option<LimitValue>,
    /// `<res>.min` (context limits only).
    pub min: Option<LimitValue>,
}

impl LimitSet {
    /// The effective hard limit.
    pub fn hard(&self) -> Option<LimitValue> {
        self.hard.or(self.all)
    }
    /// The effective soft limit.
    pub fn soft(&self) -> Option<LimitValue> {
        self.soft.or(self.all)
    }
    /// The effective guaranteed minimum.
    pub fn min(&self) -> Option<LimitValue> {
        self.min.or(self.all)
    }
}

macro_rules! resource_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $file:literal : $unit:ident),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
        #[serde(rename_all = "lowercase")]
        pub enum $name { $($variant),+ }

        impl $name {
            /// Every resource.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// The file name.
            pub fn file(self) -> &'static str {
                match self { $($name::$variant => $file),+ }
            }
            /// The unit its values are counted in.
            pub fn unit(self) -> crate::values::Unit {
                match self { $($name::$variant => crate::values::Unit::$unit),+ }
            }
            /// Every file name, in order.
            pub fn files() -> Vec<&'static str> {
                Self::ALL.iter().map(|r| r.file()).collect()
            }
            /// The resource with this file name.
            pub fn from_file(s: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|r| r.file() == s)
            }
        }
    };
}

resource_enum!(
    /// A context-wide limit (`rlimits/`, `vlimit`); rss, as and memlock in pages.
    RlimitResource {
        Cpu = "cpu": Count, Fsize = "fsize": Bytes, Data = "data": Bytes,
        Stack = "stack": Bytes, Core = "core": Bytes, Rss = "rss": Pages,
        Nproc = "nproc": Count, Nofile = "nofile": Count, Memlock = "memlock": Pages,
        As = "as": Pages, Locks = "locks": Count, Msgqueue = "msgqueue": Bytes,
        Nsock = "nsock": Count, Openfd = "openfd": Count, Anon = "anon": Pages,
        Shmem = "shmem": Pages, Semary = "semary": Count, Nsems = "nsems": Count,
        Dentry = "dentry": Count,
    }
);

impl RlimitResource {
    /// util-vserver's number for it (`vlimit -n`): the kernel's RLIMIT_*
    /// for the first twelve, VC_VLIMIT_* (16..22) for the context-only ones.
    pub fn number(self) -> u32 {
        match self {
            RlimitResource::Cpu => 0,
            RlimitResource::Fsize => 1,
            RlimitResource::Data => 2,
            RlimitResource::Stack => 3,
            RlimitResource::Core => 4,
            RlimitResource::Rss => 5,
            RlimitResource::Nproc => 6,
            RlimitResource::Nofile => 7,
            RlimitResource::Memlock => 8,
            RlimitResource::As => 9,
            RlimitResource::Locks => 10,
            RlimitResource::Msgqueue => 12,
            RlimitResource::Nsock => 16,
            RlimitResource::Openfd => 17,
            RlimitResource::Anon => 18,
            RlimitResource::Shmem => 19,
            RlimitResource::Semary => 20,
            RlimitResource::Nsems => 21,
            RlimitResource::Dentry => 22,
        }
    }

    /// Why a stock kernel cannot honour this limit, if it cannot.
    pub fn unsupported(self) -> Option<&'static str> {
        match self {
            RlimitResource::Nsock => Some("no per-context socket count on a stock kernel"),
            RlimitResource::Openfd => Some("no per-context open-file count; use rlimits/nofile"),
            RlimitResource::Anon => Some("no separate anonymous-memory limit; use rlimits/rss"),
            RlimitResource::Shmem => Some("no per-context shared-memory limit"),
            RlimitResource::Semary | RlimitResource::Nsems => {
                Some("no per-context semaphore limit")
            }
            RlimitResource::Dentry => Some("no per-context dentry limit"),
            _ => None,
        }
    }
}

resource_enum!(
    /// A per-process limit (`ulimits/`, setrlimit(2) units).
    UlimitResource {
        Cpu = "cpu": Count, Data = "data": Bytes, Fsize = "fsize": Bytes,
        Locks = "locks": Count, Memlock = "memlock": Bytes, Nofile = "nofile": Count,
        Nproc = "nproc": Count, Rss = "rss": Bytes, Stack = "stack": Bytes,
        Core = "core": Bytes, As = "as": Bytes, Msgqueue = "msgqueue": Bytes,
        Sigpending = "sigpending": Count, Rtprio = "rtprio": Count, Nice = "nice": Count,
    }
);

/// One line of `fstab`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FstabEntry {
    /// What to mount.
    pub spec: String,
    /// Where, inside the guest (absolute).
    pub file: String,
    /// The filesystem type.
    pub vfstype: String,
    /// Mount options, comma-separated.
    pub options: String,
    /// dump frequency.
    pub freq: u32,
    /// fsck pass.
    pub passno: u32,
}

/// `personality`: the execution domain and its flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Personality {
    /// First line: the type.
    pub kind: PersonalityType,
    /// Further lines: flags.
    pub flags: Vec<PersonalityFlag>,
}

macro_rules! simple_names {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $text:literal => $value:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name { $($variant),+ }
        impl $name {
            /// Every value.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// The name, lower case.
            pub fn name(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
            /// The kernel's value (linux/personality.h).
            pub fn value(self) -> u32 {
                match self { $($name::$variant => $value),+ }
            }
            /// Every name, lower case.
            pub fn names() -> Vec<&'static str> {
                Self::ALL.iter().map(|v| v.name()).collect()
            }
            /// Case-insensitive lookup, with or without `PER_`.
            pub fn lookup(s: &str) -> Option<Self> {
                let l = s.trim().to_ascii_lowercase();
                let l = l.strip_prefix("per_").unwrap_or(&l);
                Self::ALL.iter().copied().find(|v| v.name() == l)
            }
        }
    };
}

simple_names!(
    /// The execution domain (`PER_*` in linux/personality.h).
    PersonalityType {
        Linux = "linux" => 0x0000,
        Linux32bit = "linux_32bit" => 0x0080_0000,
        LinuxFdpic = "linux_fdpic" => 0x0008_0000,
        Linux32 = "linux32" => 0x0008,
        Linux323gb = "linux32_3gb" => 0x0800_0008,
        Svr4 = "svr4" => 0x0410_0001,
        Svr3 = "svr3" => 0x0500_0002,
        Scosvr3 = "scosvr3" => 0x0700_0003,
        Osr5 = "osr5" => 0x0600_0003,
        Wysev386 = "wysev386" => 0x0500_0004,
        Iscr4 = "iscr4" => 0x0400_0005,
        Bsd = "bsd" => 0x0006,
        Sunos = "sunos" => 0x0400_0006,
        Xenix = "xenix" => 0x0500_0007,
        Irix32 = "irix32" => 0x0400_0009,
        Irixn32 = "irixn32" => 0x0400_000a,
        Irix64 = "irix64" => 0x0400_000b,
        Riscos = "riscos" => 0x000c,
        Solaris = "solaris" => 0x0400_000d,
        Uw7 = "uw7" => 0x0410_000e,
        Osf4 = "osf4" => 0x000f,
        Hpux = "hpux" => 0x0010,
    }
);

simple_names!(
    /// A personality flag (linux/personality.h).
    PersonalityFlag {
        Uname26 = "uname26" => 0x0002_0000,
        AddrNoRandomize = "addr_no_randomize" => 0x0004_0000,
        FdpicFuncptrs = "fdpic_funcptrs" => 0x0008_0000,
        MmapPageZero = "mmap_page_zero" => 0x0010_0000,
        AddrCompatLayout = "addr_compat_layout" => 0x0020_0000,
        ReadImpliesExec = "read_implies_exec" => 0x0040_0000,
        AddrLimit32bit = "addr_limit_32bit" => 0x0080_0000,
        ShortInode = "short_inode" => 0x0100_0000,
        WholeSeconds = "whole_seconds" => 0x0200_0000,
        StickyTimeouts = "sticky_timeouts" => 0x0400_0000,
        AddrLimit3gb = "addr_limit_3gb" => 0x0800_0000,
    }
);

simple_names!(
    /// `apps/init/style`.
    InitStyle {
        Sysv = "sysv" => 0,
        Plain = "plain" => 1,
        Cmd = "cmd" => 2,
        Minit = "minit" => 3,
        Gentoo = "gentoo" => 4,
        Openrc = "openrc" => 5,
        Arch = "arch" => 6,
    }
);

impl InitStyle {
    /// Why this style is not available, if it is not.
    pub fn unsupported(self) -> Option<&'static str> {
        match self {
            InitStyle::Sysv | InitStyle::Plain | InitStyle::Cmd => None,
            _ => Some("this init style is not supported; use 'cmd' with apps/init/cmd.start"),
        }
    }
}

/// `apps/init/`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InitConfig {
    /// `style`.
    pub style: Option<InitStyle>,
    /// `runlevel`.
    pub runlevel: Option<String>,
    /// `runlevel.start`.
    pub runlevel_start: Option<String>,
    /// `runlevel.stop`.
    pub runlevel_stop: Option<String>,
    /// `killseq`.
    pub killseq: Option<KillSeq>,
    /// `cmd.start`: one argument per line.
    pub cmd_start: Option<Vec<String>>,
    /// `cmd.stop`: one argument per line.
    pub cmd_stop: Option<Vec<String>>,
    /// `mark`: one mark per line.
    pub mark: Vec<String>,
    /// `depends`: guests that must run first.
    pub depends: Vec<String>,
    /// `environment`: `VAR=VAL` lines; `None` when absent.
    pub environment: Option<Vec<(String, String)>>,
}

/// `apps/init/killseq`: `signal [wait signal]*`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KillSeq {
    /// The first signal.
    pub first: i32,
    /// Then: wait this many seconds, send this signal.
    pub then: Vec<(u32, i32)>,
}

impl Default for KillSeq {
    /// util-vserver's default `15 5 9`.
    fn default() -> Self {
        KillSeq {
            first: 15,
            then: vec![(5, 9)],
        }
    }
}

/// `sched/`: the token bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sched {
    /// `fill-rate`.
    pub fill_rate: Option<u64>,
    /// `interval`.
    pub interval: Option<u64>,
    /// `tokens`.
    pub tokens: Option<u64>,
    /// `tokens-min`.
    pub tokens_min: Option<u64>,
    /// `tokens-max`.
    pub tokens_max: Option<u64>,
    /// `priority-bias`.
    pub priority_bias: Option<i64>,
    /// `fill-rate2`.
    pub fill_rate2: Option<u64>,
    /// `interval2`.
    pub interval2: Option<u64>,
    /// `idle-time`.
    pub idle_time: bool,
}

/// `cpuset/`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cpuset {
    /// `name`.
    pub name: Option<String>,
    /// `cpus`.
    pub cpus: Option<String>,
    /// `mems`.
    pub mems: Option<String>,
    /// `cpu_exclusive`.
    pub cpu_exclusive: bool,
    /// `mem_exclusive`.
    pub mem_exclusive: bool,
    /// `virtualized`.
    pub virtualized: bool,
    /// `nocreate`.
    pub nocreate: bool,
}

/// `dlimits/<name>/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dlimit {
    /// `directory`.
    pub directory: String,
    /// `space_total`, 1 KiB blocks.
    pub space_total: u64,
    /// `inodes_total`.
    pub inodes_total: u64,
    /// `reserved`, percent.
    pub reserved: u8,
    /// `disabled`.
    pub disabled: bool,
}

simple_names!(
    /// A host hook in `scripts/`, in the order util-vserver runs them.
    Hook {
        Initialize = "initialize" => 0,
        PrepreStart = "prepre-start" => 1,
        PreStart = "pre-start" => 2,
        PostStart = "post-start" => 3,
        PreStop = "pre-stop" => 4,
        PostStop = "post-stop" => 5,
        PostpostStop = "postpost-stop" => 6,
    }
);

/// `scripts/<hook>` and `scripts/<hook>.d/*`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HookScripts {
    /// `scripts/<hook>`.
    pub main: Option<Script>,
    /// `scripts/<hook>.d/<name>`, run in name order.
    pub dir: BTreeMap<String, Script>,
}

/// One hook script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    /// Its content.
    pub content: Vec<u8>,
    /// Executable scripts are run; others are run by `/bin/sh`.
    pub executable: bool,
}

simple_names!(
    /// `storage/type` (extension).
    StorageType {
        Dir = "dir" => 0,
        Btrfs = "btrfs" => 1,
        Image = "image" => 2,
    }
);

/// `storage/` (extension).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Storage {
    /// `storage/type`.
    pub kind: Option<StorageType>,
    /// `storage/size`, bytes.
    pub size: Option<u64>,
}

/// `netns/`: private network mode.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Netns {
    /// `netns/name`: a named namespace.
    pub name: Option<String>,
    /// `netns/shared`.
    pub shared: bool,
    /// `netns/bridge` (extension): the host bridge the guest's veth joins
    /// (created if missing); routed without one.
    pub bridge: Option<String>,
    /// `netns/gateway` (extension): the guest's default route.
    pub gateway: Option<IpAddr>,
    /// `netns/nat` (extension): masquerade the guest's addresses.
    pub nat: bool,
    /// `netns/interfaces/<dir>/`.
    pub interfaces: BTreeMap<String, NetnsInterface>,
}

/// `netns/interfaces/<dir>/`: one link into the namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetnsInterface {
    /// `host`: the host-side name.
    pub host: Option<String>,
    /// `guest`: the guest-side name.
    pub guest: Option<String>,
    /// `type` (default veth).
    pub kind: Option<String>,
}
