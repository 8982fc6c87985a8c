//! The resolved guest: every default applied, every decision made.

use std::collections::BTreeSet;
use std::path::PathBuf;

use caps::Capability as C;

use crate::error::{ConfigError, Result, Warning};
use crate::model::*;
use crate::names::{CCap, CFlag, Cap, NCap, NFlag, Named};
use crate::paths::Paths;
use crate::read::{Reader, read_guest};
use crate::values::{GuestName, IdMap, Xid};

/// The start runlevel without `apps/init/runlevel.start` or `runlevel`.
pub const DEFAULT_RUNLEVEL_START: &str = "3";
/// The stop runlevel without `apps/init/runlevel.stop`.
pub const DEFAULT_RUNLEVEL_STOP: &str = "0";

/// Host-wide defaults from `/etc/vservers/.defaults/`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Defaults {
    /// `.defaults/shell`.
    pub shell: Option<String>,
    /// `.defaults/fstab`.
    pub fstab: Option<Vec<FstabEntry>>,
    /// `.defaults/apps/init/environment`.
    pub environment: Option<Vec<(String, String)>>,
    /// `.defaults/apps/debootstrap/mirror`.
    pub debootstrap_mirror: Option<String>,
    /// `.defaults/context.dynamic` exists.
    pub context_dynamic: bool,
}

impl Defaults {
    /// Reads `.defaults/`; a missing directory gives the built-in defaults.
    pub fn read(paths: &Paths) -> Result<(Defaults, Vec<Warning>)> {
        let dir = paths.defaults();
        if !dir.is_dir() {
            return Ok((Defaults::default(), Vec::new()));
        }
        let mut r = Reader::new(&dir);
        let d = Defaults {
            shell: r.scalar("shell")?.filter(|s| !s.is_empty()),
            fstab: r.fstab()?,
            environment: r.environment("apps/init/environment")?,
            debootstrap_mirror: r
                .scalar("apps/debootstrap/mirror")?
                .filter(|s| !s.is_empty()),
            context_dynamic: r.flag("context.dynamic"),
        };
        Ok((d, r.warnings))
    }
}

/// How the guest's init is run and stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitSpec {
    /// The style (default `sysv`).
    pub style: InitStyle,
    /// Runlevel for start (default 3).
    pub runlevel_start: String,
    /// Runlevel for stop (default 0).
    pub runlevel_stop: String,
    /// Signals and waits after the stop command (default `15 5 9`).
    pub killseq: KillSeq,
    /// `cmd.start` (required for the `cmd` style).
    pub cmd_start: Option<Vec<String>>,
    /// `cmd.stop`.
    pub cmd_stop: Option<Vec<String>>,
    /// The environment init starts with (cleared otherwise).
    pub environment: Vec<(String, String)>,
}

/// A guest, resolved.
#[derive(Debug, Clone)]
pub struct GuestSpec {
    /// The directory name.
    pub name: GuestName,
    /// `/etc/vservers/NAME`.
    pub cfgdir: PathBuf,
    /// The guest root.
    pub vdir: PathBuf,
    /// The context id.
    pub context: Xid,
    /// No user namespace (util-vserver semantics, not a security boundary).
    pub privileged: bool,
    /// The user-namespace range; `None` for privileged guests.
    pub idmap: Option<IdMap>,
    /// The host name inside.
    pub hostname: String,
    /// The NIS domain name inside.
    pub domainname: Option<String>,
    /// The capability bounding set.
    pub bcaps: BTreeSet<Cap>,
    /// Context capabilities.
    pub ccaps: BTreeSet<CCap>,
    /// Context flags.
    pub cflags: BTreeSet<CFlag>,
    /// Network flags.
    pub nflags: BTreeSet<NFlag>,
    /// Network capabilities.
    pub ncaps: BTreeSet<NCap>,
    /// Init.
    pub init: InitSpec,
    /// The `enter` shell command line, if configured (else the runtime looks
    /// for `/bin/bash -login`, `/bin/sh -l`).
    pub shell: Option<String>,
    /// Mounts made inside the guest at start.
    pub fstab: Vec<FstabEntry>,
    /// Everything the files said.
    pub config: GuestConfig,
    /// What is not honoured.
    pub warnings: Vec<Warning>,
}

/// The default `fstab` of a new guest: util-vserver's `/tmp` tmpfs (its proc
/// and devpts lines are made by the runtime itself).
pub fn default_fstab() -> Vec<FstabEntry> {
    vec![FstabEntry {
        spec: "none".into(),
        file: "/tmp".into(),
        vfstype: "tmpfs".into(),
        options: "size=16m,mode=1777".into(),
        freq: 0,
        passno: 0,
    }]
}

/// The bounding set before `bcapabilities` applies (DESIGN §4).
pub fn default_bcaps(privileged: bool) -> BTreeSet<Cap> {
    if privileged {
        // The paper's secure list, corrected for a stock kernel: no
        // DAC_READ_SEARCH (open_by_handle_at escapes), SYS_BOOT only because
        // kexec is blocked by seccomp, no NET_RAW, no MKNOD.
        [
            C::CAP_CHOWN,
            C::CAP_DAC_OVERRIDE,
            C::CAP_FOWNER,
            C::CAP_FSETID,
            C::CAP_KILL,
            C::CAP_SETGID,
            C::CAP_SETUID,
            C::CAP_NET_BIND_SERVICE,
            C::CAP_SYS_CHROOT,
            C::CAP_SYS_PTRACE,
            C::CAP_SYS_TTY_CONFIG,
            C::CAP_LEASE,
            C::CAP_SETFCAP,
            C::CAP_AUDIT_WRITE,
            C::CAP_SYS_BOOT,
        ]
        .into_iter()
        .map(Cap)
        .collect()
    } else {
        // LXC's unprivileged default: everything scoped to the guest's user
        // namespace, minus what reaches the host kernel or hardware.
        let denied = [
            C::CAP_SYS_MODULE,
            C::CAP_SYS_RAWIO,
            C::CAP_SYS_TIME,
            C::CAP_MAC_ADMIN,
            C::CAP_MAC_OVERRIDE,
            C::CAP_SYSLOG,
            C::CAP_WAKE_ALARM,
            C::CAP_BLOCK_SUSPEND,
            C::CAP_NET_RAW,
        ];
        Cap::all()
            .iter()
            .copied()
            .filter(|c| !denied.contains(&c.0))
            .collect()
    }
}

impl GuestSpec {
    /// Loads and resolves guest `name`.
    pub fn load(paths: &Paths, name: &GuestName) -> Result<GuestSpec> {
        let cfgdir = paths.guest_cfg(name);
        if !cfgdir.is_dir() {
            return Err(ConfigError::Missing {
                path: cfgdir,
                what: "no such guest",
            });
        }
        let (config, mut warnings) = read_guest(&cfgdir)?;
        let (defaults, dw) = Defaults::read(paths)?;
        warnings.extend(dw);
        Self::resolve(paths, name, config, &defaults, warnings)
    }

    /// Resolves a configuration read elsewhere.
    pub fn resolve(
        paths: &Paths,
        name: &GuestName,
        config: GuestConfig,
        defaults: &Defaults,
        warnings: Vec<Warning>,
    ) -> Result<GuestSpec> {
        let cfgdir = paths.guest_cfg(name);
        let context = config.context.ok_or_else(|| ConfigError::Missing {
            path: cfgdir.join("context"),
            what: "a static context id in 2..49151",
        })?;
        let vdir = match &config.vdir {
            Some(t) if t.is_absolute() => t.clone(),
            Some(t) => cfgdir.join(t),
            None => paths.vdirbase().join(name),
        };
        let privileged = config.privileged;
        let idmap = (!privileged).then(|| config.uidmap.unwrap_or(IdMap::for_context(context)));

        let mut bcaps = default_bcaps(privileged);
        ListItem::apply(&config.bcapabilities, &mut bcaps);
        let mut ccaps: BTreeSet<CCap> = [CCap::SetUtsname, CCap::RawIcmp].into();
        ListItem::apply(&config.ccapabilities, &mut ccaps);
        let mut cflags: BTreeSet<CFlag> = [
            CFlag::HideNetif,
            CFlag::VirtUptime,
            CFlag::ScHelper,
            CFlag::FakeInit,
        ]
        .into();
        ListItem::apply(&config.cflags, &mut cflags);
        let mut nflags: BTreeSet<NFlag> = [NFlag::HideNetif].into();
        ListItem::apply(&config.nflags, &mut nflags);
        let mut ncaps: BTreeSet<NCap> = [NCap::RawIcmp].into();
        ListItem::apply(&config.ncapabilities, &mut ncaps);

        let i = &config.init;
        let style = i.style.unwrap_or(InitStyle::Sysv);
        if style == InitStyle::Cmd && i.cmd_start.is_none() {
            return Err(ConfigError::Missing {
                path: cfgdir.join("apps/init/cmd.start"),
                what: "the 'cmd' init style needs the command to run",
            });
        }
        let init = InitSpec {
            style,
            runlevel_start: i
                .runlevel_start
                .clone()
                .or_else(|| i.runlevel.clone())
                .unwrap_or_else(|| DEFAULT_RUNLEVEL_START.into()),
            runlevel_stop: i
                .runlevel_stop
                .clone()
                .unwrap_or_else(|| DEFAULT_RUNLEVEL_STOP.into()),
            killseq: i.killseq.clone().unwrap_or_default(),
            cmd_start: i.cmd_start.clone(),
            cmd_stop: i.cmd_stop.clone(),
            environment: i
                .environment
                .clone()
                .or_else(|| defaults.environment.clone())
                .unwrap_or_else(|| vec![("PATH".into(), "/bin:/usr/bin:/sbin:/usr/sbin".into())]),
        };
        Ok(GuestSpec {
            name: name.clone(),
            vdir,
            context,
            privileged,
            idmap,
            hostname: config
                .uts
                .nodename
                .clone()
                .unwrap_or_else(|| name.to_string()),
            domainname: config.uts.domainname.clone(),
            bcaps,
            ccaps,
            cflags,
            nflags,
            ncaps,
            init,
            shell: config.shell.clone().or_else(|| defaults.shell.clone()),
            fstab: config
                .fstab
                .clone()
                .or_else(|| defaults.fstab.clone())
                .unwrap_or_else(default_fstab),
            config,
            warnings,
            cfgdir,
        })
    }
}
