//! What a guest process needs, decided once from the [`GuestSpec`] before
//! any process is made: the namespaces, the id map, the mounts, the
//! privilege limits and the command pid 1 runs.

use std::path::PathBuf;

use vs_config::{CCap, CFlag, FstabEntry, GuestSpec, InitStyle, Named, UlimitResource};
use vs_sys::ns::{IdMapping, flags};
use vs_sys::security::rlimit::{Resource, Rlimit};
use vs_sys::security::seccomp::SeccompOptions;

/// capabilities(7) number of CAP_SYS_RESOURCE.
pub const CAP_SYS_RESOURCE: u32 = 24;

/// What pid 1 of the guest is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Init {
    /// The guest's own init (`plain` style) is exec'd as pid 1.
    Exec(Vec<String>),
    /// The built-in reaper is pid 1 and runs `main`.
    Reaper {
        /// The command it starts (`/etc/init.d/rc 3`, `cmd.start`, a rescue or run command).
        main: Vec<String>,
        /// What ends the guest.
        mode: ReaperMode,
    },
}

/// When a reaper-run guest ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReaperMode {
    /// Runs until stopped (sysv, cmd): `main` only starts services.
    Service,
    /// Ends when `main` ends, with its status (`run`, `start --rescue`).
    Run,
}

/// Everything the init side and `exec` apply, resolved.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The guest's name.
    pub name: String,
    /// The guest root on the host.
    pub vdir: PathBuf,
    /// Namespaces to create ([`flags`]).
    pub namespaces: u64,
    /// The id map (`None`: privileged, no user namespace).
    pub idmap: Option<IdMapping>,
    /// Host and domain name inside.
    pub hostname: String,
    /// NIS domain name.
    pub domainname: Option<String>,
    /// Mounts from `fstab`.
    pub fstab: Vec<FstabEntry>,
    /// Capability numbers kept in the bounding set.
    pub bcaps: Vec<u8>,
    /// The seccomp filter's switches.
    pub seccomp: SeccompOptions,
    /// Per-process limits.
    pub rlimits: Vec<Rlimit>,
    /// personality(2) value, if not the default.
    pub personality: Option<u32>,
    /// A new time namespace with the clocks at zero (VIRT_UPTIME).
    pub virt_uptime: bool,
    /// `enter`/`exec` refused (PRIVATE).
    pub private: bool,
    /// The environment guest processes start with.
    pub environment: Vec<(String, String)>,
    /// pid 1.
    pub init: Init,
    /// The init style, for `stop`.
    pub style: InitStyle,
    /// The `enter` shell, if configured.
    pub shell: Option<String>,
    /// The nice level the guest starts with.
    pub nice: Option<i32>,
    /// The lxcfs mount whose `/proc` files VIRT_MEM binds over the guest's
    /// (set by the monitor once lxcfs runs).
    pub lxcfs: Option<PathBuf>,
    /// VIRT_MEM's own `/proc/meminfo`: the descriptor of the monitor's
    /// detached meminfo mount ([`crate::memfs`]), which each init inherits
    /// and clones.
    pub meminfo: Option<i32>,
    /// Shared network mode: the guest's addresses, confined by BPF.
    pub shared_net: Option<crate::net::SharedNet>,
    /// Private network mode (`netns/`).
    pub private_net: Option<crate::net::PrivateNet>,
    /// `run`: the caller's stdin, stdout and stderr wait at
    /// [`crate::start::RUN_STDIO`] in the monitor; the init makes them its
    /// own 0, 1, 2, so the command reads and writes the caller's terminal
    /// or pipes (set by the monitor).
    pub stdio: bool,
}

/// What a guest's processes got at its start, recorded in its state so
/// that `exec` gives a new process the same, whatever the configuration
/// says by then (and with the monitor's adjustments, e.g. RLIMIT_AS).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Recorded {
    /// [`Plan::namespaces`].
    pub namespaces: u64,
    /// [`Plan::idmap`]: inside, outside, count.
    pub idmap: Option<[u32; 3]>,
    /// [`Plan::bcaps`].
    pub bcaps: Vec<u8>,
    /// [`Plan::seccomp`]: user namespaces, TIOCSTI allowed; sethostname denied.
    pub seccomp: [bool; 3],
    /// [`Plan::rlimits`]: resource name, soft, hard.
    pub rlimits: Vec<(String, Option<u64>, Option<u64>)>,
    /// [`Plan::personality`].
    pub personality: Option<u32>,
    /// [`Plan::virt_uptime`].
    pub virt_uptime: bool,
    /// [`Plan::private`].
    pub private: bool,
    /// [`Plan::environment`].
    pub environment: Vec<(String, String)>,
}

fn ulimit_resource(r: UlimitResource) -> Resource {
    match r {
        UlimitResource::Cpu => Resource::Cpu,
        UlimitResource::Data => Resource::Data,
        UlimitResource::Fsize => Resource::Fsize,
        UlimitResource::Locks => Resource::Locks,
        UlimitResource::Memlock => Resource::Memlock,
        UlimitResource::Nofile => Resource::Nofile,
        UlimitResource::Nproc => Resource::Nproc,
        UlimitResource::Rss => Resource::Rss,
        UlimitResource::Stack => Resource::Stack,
        UlimitResource::Core => Resource::Core,
        UlimitResource::As => Resource::As,
        UlimitResource::Msgqueue => Resource::Msgqueue,
        UlimitResource::Sigpending => Resource::Sigpending,
        UlimitResource::Rtprio => Resource::Rtprio,
        UlimitResource::Nice => Resource::Nice,
    }
}

fn amount(v: Option<vs_config::LimitValue>, scale: u64) -> Option<u64> {
    match v {
        Some(vs_config::LimitValue::Amount(n)) => Some(n.saturating_mul(scale)),
        _ => None,
    }
}

/// How to run the guest.
#[derive(Debug, Clone, Default)]
pub enum Mode {
    /// Boot it with its init style.
    #[default]
    Boot,
    /// `start --rescue CMD`: the reaper runs CMD instead of the init style.
    Rescue(Vec<String>),
    /// `run -- CMD`: the guest lives as long as CMD.
    Run(Vec<String>),
}

impl Plan {
    /// Resolves the plan of `spec`.
    pub fn new(spec: &GuestSpec, mode: &Mode) -> Plan {
        // Shared network mode (util-vserver's): a guest with addresses and
        // no netns/ stays in the host's network namespace, confined to its
        // addresses by cgroup BPF; any other guest gets its own.
        let shared_net = spec.config.netns.is_none()
            && spec.config.interfaces.list.values().any(|i| !i.disabled);
        let mut namespaces = flags::MOUNT | flags::PID | flags::UTS | flags::IPC | flags::CGROUP;
        if !shared_net {
            namespaces |= flags::NET;
        }
        let idmap = spec.idmap.map(|m| IdMapping {
            inside: 0,
            outside: m.base,
            count: m.count,
        });
        if idmap.is_some() {
            namespaces |= flags::USER;
        }
        // Per-process limits: ulimits/ first, then the rlimits/ a process
        // limit carries (the cgroup-backed ones come with the limits issue).
        let mut rlimits: Vec<Rlimit> = spec
            .config
            .ulimits
            .iter()
            .map(|(r, set)| Rlimit {
                resource: ulimit_resource(*r),
                soft: amount(set.soft(), 1),
                hard: amount(set.hard(), 1),
            })
            .collect();
        let page = vs_config::values::page_size();
        for (r, set) in &spec.config.rlimits {
            use vs_config::RlimitResource as R;
            let (res, scale) = match r {
                R::Nofile => (Resource::Nofile, 1),
                R::Memlock => (Resource::Memlock, page),
                R::As => (Resource::As, page),
                R::Core => (Resource::Core, 1),
                R::Locks => (Resource::Locks, 1),
                R::Msgqueue => (Resource::Msgqueue, 1),
                R::Cpu => (Resource::Cpu, 1),
                R::Fsize => (Resource::Fsize, 1),
                R::Data => (Resource::Data, 1),
                R::Stack => (Resource::Stack, 1),
                _ => continue,
            };
            rlimits.retain(|l| l.resource != res);
            rlimits.push(Rlimit {
                resource: res,
                soft: amount(set.soft(), scale),
                hard: amount(set.hard(), scale),
            });
        }
        let linux32 = spec
            .config
            .uts
            .machine
            .as_deref()
            .is_some_and(|m| matches!(m, "i386" | "i486" | "i586" | "i686"));
        let personality = match &spec.config.personality {
            // linux_32bit in util-vserver means a 32-bit guest: on a stock
            // kernel only PER_LINUX32 makes uname say i686.
            Some(p)
                if matches!(
                    p.kind,
                    vs_config::PersonalityType::Linux32bit | vs_config::PersonalityType::Linux32
                ) =>
            {
                Some(0x0008 | p.flags.iter().fold(0, |a, f| a | f.value()))
            }
            Some(p) => Some(p.kind.value() | p.flags.iter().fold(0, |a, f| a | f.value())),
            None if linux32 => Some(0x0008),
            None => None,
        }
        .filter(|v| *v != 0);
        let env = &spec.init.environment;
        let init = match (mode, spec.init.style) {
            (Mode::Run(cmd), _) => Init::Reaper {
                main: cmd.clone(),
                mode: ReaperMode::Run,
            },
            (Mode::Rescue(cmd), _) => Init::Reaper {
                main: cmd.clone(),
                mode: ReaperMode::Run,
            },
            (Mode::Boot, InitStyle::Plain) => Init::Exec(vec!["/sbin/init".into()]),
            (Mode::Boot, InitStyle::Cmd) => Init::Reaper {
                main: spec.init.cmd_start.clone().unwrap_or_default(),
                mode: ReaperMode::Service,
            },
            (Mode::Boot, _) => Init::Reaper {
                main: vec!["/etc/init.d/rc".into(), spec.init.runlevel_start.clone()],
                mode: ReaperMode::Service,
            },
        };
        let mut environment = env.clone();
        // What systemd (systemd-detect-virt, ConditionVirtualization=) and
        // other programs read to know they run in a container.
        if !environment.iter().any(|(k, _)| k == "container") {
            environment.push(("container".into(), "vserver".into()));
        }
        if matches!(
            init,
            Init::Reaper {
                mode: ReaperMode::Service,
                ..
            }
        ) && spec.init.style == InitStyle::Sysv
            && matches!(mode, Mode::Boot)
        {
            environment.push(("RUNLEVEL".into(), spec.init.runlevel_start.clone()));
            environment.push(("PREVLEVEL".into(), "N".into()));
        }
        let mut bcaps: Vec<u8> = spec.bcaps.iter().map(|c| c.bit() as u8).collect();
        // ccap SET_RLIMIT: Linux-VServer let a context raise a hard rlimit
        // only with CAP_SYS_RESOURCE and VXC_SET_RLIMIT. A privileged guest
        // shares the host's user namespace, where CAP_SYS_RESOURCE lifts
        // every hard limit (rlimits are not namespaced): without the ccap it
        // goes, whatever `bcapabilities` says. In a user namespace the guest
        // never has it where rlimits are checked (the initial namespace).
        if spec.idmap.is_none() && !spec.ccaps.contains(&CCap::SetRlimit) {
            bcaps.retain(|c| u32::from(*c) != CAP_SYS_RESOURCE);
        }
        Plan {
            name: spec.name.to_string(),
            vdir: spec.vdir.clone(),
            namespaces,
            idmap,
            hostname: spec.hostname.clone(),
            domainname: spec.domainname.clone(),
            fstab: spec.fstab.clone(),
            bcaps,
            seccomp: SeccompOptions {
                allow_user_namespaces: spec.ccaps.contains(&CCap::Namespace),
                allow_tiocsti: spec.ccaps.contains(&CCap::Tiocsti),
                deny_set_utsname: !spec.ccaps.contains(&CCap::SetUtsname),
            },
            rlimits,
            personality,
            virt_uptime: spec.cflags.contains(&CFlag::VirtUptime),
            private: spec.cflags.contains(&CFlag::Private),
            environment,
            init,
            style: spec.init.style,
            shell: spec.shell.clone(),
            nice: spec.config.nice,
            lxcfs: None,
            meminfo: None,
            shared_net: shared_net.then(|| crate::net::SharedNet::new(spec)),
            private_net: crate::net::PrivateNet::new(spec),
            stdio: false,
        }
    }

    /// What [`Recorded`] keeps of this plan.
    pub fn record(&self) -> Recorded {
        Recorded {
            namespaces: self.namespaces,
            idmap: self.idmap.map(|m| [m.inside, m.outside, m.count]),
            bcaps: self.bcaps.clone(),
            seccomp: [
                self.seccomp.allow_user_namespaces,
                self.seccomp.allow_tiocsti,
                self.seccomp.deny_set_utsname,
            ],
            rlimits: self
                .rlimits
                .iter()
                .map(|l| (l.resource.name().to_owned(), l.soft, l.hard))
                .collect(),
            personality: self.personality,
            virt_uptime: self.virt_uptime,
            private: self.private,
            environment: self.environment.clone(),
        }
    }

    /// Puts what `r` recorded in place of this plan's own.
    pub fn apply_recorded(&mut self, r: &Recorded) {
        self.namespaces = r.namespaces;
        self.idmap = r.idmap.map(|[inside, outside, count]| IdMapping {
            inside,
            outside,
            count,
        });
        self.bcaps = r.bcaps.clone();
        let [allow_user_namespaces, allow_tiocsti, deny_set_utsname] = r.seccomp;
        self.seccomp = SeccompOptions {
            allow_user_namespaces,
            allow_tiocsti,
            deny_set_utsname,
        };
        self.rlimits = r
            .rlimits
            .iter()
            .filter_map(|(name, soft, hard)| {
                Some(Rlimit {
                    resource: Resource::from_name(name)?,
                    soft: *soft,
                    hard: *hard,
                })
            })
            .collect();
        self.personality = r.personality;
        self.virt_uptime = r.virt_uptime;
        self.private = r.private;
        self.environment = r.environment.clone();
    }

    /// The environment as `KEY=VALUE` strings.
    pub fn env_strings(&self) -> Vec<String> {
        self.environment
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vs_config::{GuestName, Paths};

    fn plan_of(files: &[(&str, &str)]) -> Plan {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(dir.path());
        let name = GuestName::new("demo").unwrap();
        let cfg = paths.guest_cfg(&name);
        std::fs::create_dir_all(&cfg).unwrap();
        std::fs::write(cfg.join("context"), "1234\n").unwrap();
        for (f, text) in files {
            std::fs::write(cfg.join(f), text).unwrap();
        }
        Plan::new(&GuestSpec::load(&paths, &name).unwrap(), &Mode::Boot)
    }

    #[test]
    fn set_rlimit_decides_cap_sys_resource_of_a_privileged_guest() {
        let res = CAP_SYS_RESOURCE as u8;
        let base = [("privileged", ""), ("bcapabilities", "SYS_RESOURCE\n")];
        assert!(!plan_of(&base).bcaps.contains(&res));
        let mut with = base.to_vec();
        with.push(("ccapabilities", "SET_RLIMIT\n"));
        assert!(plan_of(&with).bcaps.contains(&res));
        // Without bcapabilities naming it, the ccap adds nothing.
        assert!(
            !plan_of(&[("privileged", ""), ("ccapabilities", "SET_RLIMIT\n")])
                .bcaps
                .contains(&res)
        );
        // A user-namespace guest keeps it (scoped to its namespace).
        assert!(plan_of(&[]).bcaps.contains(&res));
    }
}
