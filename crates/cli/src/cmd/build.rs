//! `vserver NAME build -m METHOD ...`: a new guest's configuration and tree.
//!
//! The order is what makes a failed build leave nothing behind: everything
//! is checked before the first write (name, options, method arguments,
//! context, id range); the configuration directory is reserved under the
//! host lock; then the tree is made. Any failure after that removes what
//! this build made and puts back what `--force` moved aside.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use clap::Args;
use vs_config::context::{self, Claim};
use vs_config::values::{mask_to_prefix, valid_ifname};
use vs_config::{
    CFlag, GuestConfig, GuestName, GuestSpec, InitStyle, Interface, ListItem, ListValue, Named,
    Paths, StorageType, Xid, spec::Defaults,
};
use vs_runtime::Lock;
use vs_storage::build::{BuildOptions, Method};

use crate::exit::{Exit, USAGE};
use crate::output::{self, Progress};

/// `build` options (util-vserver's `vserver-build`).
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Build method: skeleton, busybox, debootstrap or template
    #[arg(short = 'm', long = "method", value_name = "METHOD")]
    method: String,
    /// Static context id, 2..49151 (default: the next from .defaults/context.next)
    #[arg(long, value_name = "N")]
    context: Option<String>,
    /// Host name inside the guest (default: the guest's name)
    #[arg(long, value_name = "H")]
    hostname: Option<String>,
    /// An address: [NAME=][DEV:]IP[/PREFIX|/MASK]; without DEV nothing is added to host interfaces
    #[arg(long = "interface", value_name = "SPEC")]
    interfaces: Vec<String>,
    /// Default device for every interface (interfaces/dev)
    #[arg(long, value_name = "DEV")]
    netdev: Option<String>,
    /// Default prefix length (interfaces/prefix)
    #[arg(long, value_name = "P")]
    netprefix: Option<String>,
    /// Default netmask (interfaces/mask)
    #[arg(long, value_name = "M")]
    netmask: Option<String>,
    /// Context flags, comma-separated (cflags)
    #[arg(long, value_name = "FLAGS")]
    flags: Option<String>,
    /// Init style: sysv (default), plain or cmd
    #[arg(long, value_name = "STYLE", value_parser = ["sysv", "plain", "cmd"])]
    initstyle: Option<String>,
    /// Cpuset name (cpuset/name)
    #[arg(long, value_name = "NAME")]
    cpuset: Option<String>,
    /// CPUs of the cpuset, e.g. 0-3,5; ':1' makes them exclusive (cpuset/cpus, cpu_exclusive)
    #[arg(long, value_name = "LIST[:EXCL]")]
    cpusetcpus: Option<String>,
    /// Memory nodes of the cpuset; ':1' makes them exclusive (cpuset/mems, mem_exclusive)
    #[arg(long, value_name = "LIST[:EXCL]")]
    cpusetmems: Option<String>,
    /// The guest sees only its cpuset's CPUs (cpuset/virtualized)
    #[arg(long)]
    cpusetvirt: bool,
    /// No user namespace: util-vserver semantics, not a security boundary
    #[arg(long)]
    privileged: bool,
    /// Storage backend for the guest root
    #[arg(long, value_name = "TYPE", value_parser = ["dir"])]
    storage: Option<String>,
    /// Directory the guest root goes into (default /var/lib/vservers)
    #[arg(long, value_name = "DIR")]
    rootdir: Option<PathBuf>,
    /// Move an existing guest of this name aside (NAME.~EPOCH~) and build anew
    #[arg(long)]
    force: bool,
    /// Keep what was made when the build fails
    #[arg(long)]
    keep: bool,
    /// Arguments of the method, after --
    #[arg(last = true, value_name = "METHOD-ARGS")]
    method_args: Vec<String>,
}

fn usage(msg: impl Into<String>) -> anyhow::Error {
    Exit::error(USAGE, msg)
}

/// Parses `[NAME=][DEV:]IP[/PREFIX|/MASK]` (util-vserver's `--interface`).
/// A missing device or the device `nodev` makes a `nodev` address: nothing
/// is added to any host interface.
pub fn parse_interface(spec: &str) -> Result<(Option<String>, Interface), String> {
    let bad = |why: &str| format!("--interface '{spec}': {why}; expected [NAME=][DEV:]IP[/PREFIX]");
    let (label, rest) = match spec.split_once('=') {
        Some((l, r)) => (Some(l), r),
        None => (None, spec),
    };
    let (addr, len) = match rest.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (rest, None),
    };
    let (dev, ip) = match addr.parse::<IpAddr>() {
        Ok(ip) => (None, ip),
        Err(_) => {
            let (d, a) = addr
                .split_once(':')
                .ok_or_else(|| bad("not an IP address"))?;
            (
                Some(d),
                a.parse::<IpAddr>().map_err(|_| bad("not an IP address"))?,
            )
        }
    };
    let mut iface = Interface::new(ip);
    if let Some(l) = label {
        if !valid_ifname(l) {
            return Err(bad("bad alias name"));
        }
        iface.name = Some(l.to_owned());
    }
    match dev {
        None | Some("nodev") => iface.nodev = true,
        Some(d) if valid_ifname(d) => iface.dev = Some(d.to_owned()),
        Some(_) => return Err(bad("bad device name")),
    }
    if let Some(l) = len {
        let max = if ip.is_ipv4() { 32 } else { 128 };
        if let Ok(p) = l.parse::<u8>() {
            if p > max {
                return Err(bad(&format!("prefix longer than {max}")));
            }
            iface.prefix = Some(p);
        } else if let Some(m) = l.parse().ok().filter(|_| ip.is_ipv4()) {
            mask_to_prefix(m).ok_or_else(|| bad("netmask is not contiguous"))?;
            iface.mask = Some(m);
        } else {
            return Err(bad("bad prefix or netmask"));
        }
    }
    Ok((label.map(str::to_owned), iface))
}

/// `apps/init/cmd.start` and `cmd.stop` that `--initstyle cmd` writes: what
/// the sysv style runs at its default start (3) and stop (0) runlevels.
fn cmd_style_defaults() -> (Vec<String>, Vec<String>) {
    let rc = |level: &str| vec!["/etc/init.d/rc".to_owned(), level.to_owned()];
    (
        rc(vs_config::spec::DEFAULT_RUNLEVEL_START),
        rc(vs_config::spec::DEFAULT_RUNLEVEL_STOP),
    )
}

/// The configuration `build` writes, from the options; no side effects.
fn config_from_args(
    paths: &Paths,
    name: &GuestName,
    a: &BuildArgs,
    defaults: &Defaults,
    vdir: &Path,
) -> anyhow::Result<GuestConfig> {
    let mut cfg = GuestConfig {
        name: Some(name.to_string()),
        vdir: Some(vdir.to_owned()),
        run: Some(paths.guest_run(name)),
        cache: Some(paths.cachebase().join(name)),
        privileged: a.privileged,
        ..GuestConfig::default()
    };
    cfg.uts.nodename = Some(a.hostname.clone().unwrap_or_else(|| name.to_string()));
    cfg.fstab = Some(
        defaults
            .fstab
            .clone()
            .unwrap_or_else(vs_config::spec::default_fstab),
    );
    if let Some(s) = &a.initstyle {
        cfg.init.style = InitStyle::lookup(s);
        if cfg.init.style == Some(InitStyle::Cmd) {
            // The commands the sysv style would run: the guest's
            // /etc/init.d/rc (the busybox method writes one) for the start
            // and the stop runlevel. Edit apps/init/cmd.start and cmd.stop
            // (one argument per line) for anything else.
            let (start, stop) = cmd_style_defaults();
            cfg.init.cmd_start = Some(start);
            cfg.init.cmd_stop = Some(stop);
        }
    }
    if let Some(s) = &a.storage {
        cfg.storage.kind = StorageType::lookup(s);
    }
    if let Some(d) = &a.netdev {
        if !valid_ifname(d) {
            return Err(usage(format!("--netdev '{d}': not a device name")));
        }
        cfg.interfaces.dev = Some(d.clone());
    }
    if let Some(p) = &a.netprefix {
        cfg.interfaces.prefix = Some(
            p.parse::<u8>()
                .ok()
                .filter(|p| *p <= 128)
                .ok_or_else(|| usage(format!("--netprefix '{p}': expected 0..128")))?,
        );
    }
    if let Some(m) = &a.netmask {
        cfg.interfaces.mask = Some(
            m.parse()
                .ok()
                .filter(|m| mask_to_prefix(*m).is_some())
                .ok_or_else(|| {
                    usage(format!(
                        "--netmask '{m}': expected a contiguous IPv4 netmask"
                    ))
                })?,
        );
    }
    if let Some(n) = &a.cpuset {
        if n.is_empty()
            || n == "."
            || n == ".."
            || n.chars()
                .any(|c| c == '/' || c.is_whitespace() || c.is_control())
        {
            return Err(usage(format!(
                "--cpuset '{}': expected a cpuset name without '/', spaces or control characters",
                n.escape_debug()
            )));
        }
        cfg.cpuset.name = Some(n.clone());
    }
    for (opt, value, list, excl) in [
        (
            "--cpusetcpus",
            &a.cpusetcpus,
            &mut cfg.cpuset.cpus,
            &mut cfg.cpuset.cpu_exclusive,
        ),
        (
            "--cpusetmems",
            &a.cpusetmems,
            &mut cfg.cpuset.mems,
            &mut cfg.cpuset.mem_exclusive,
        ),
    ] {
        let Some(v) = value else { continue };
        let (l, e) = match v.split_once(':') {
            Some((l, e)) => (l, Some(e)),
            None => (v.as_str(), None),
        };
        *list = Some(
            vs_config::values::parse_cpu_list(Path::new(opt), l).map_err(|_| {
                usage(format!(
                    "{opt} '{v}': expected a list like 0-3,5, optionally with :1 (exclusive) or :0"
                ))
            })?,
        );
        *excl = match e {
            None | Some("0") => false,
            Some("1") => true,
            Some(_) => {
                return Err(usage(format!(
                    "{opt} '{v}': expected a list like 0-3,5, optionally with :1 (exclusive) or :0"
                )));
            }
        };
    }
    cfg.cpuset.virtualized = a.cpusetvirt;
    for (i, spec) in a.interfaces.iter().enumerate() {
        let (_, iface) = parse_interface(spec).map_err(usage)?;
        cfg.interfaces.list.insert(i.to_string(), iface);
    }
    // New guests see their own memory size (VIRT_MEM, through lxcfs);
    // `--flags ~virt_mem` turns it off.
    cfg.cflags.push(ListItem {
        clear: false,
        value: ListValue::Name(CFlag::VirtMem),
    });
    if let Some(flags) = &a.flags {
        for f in flags.split(',').map(str::trim).filter(|f| !f.is_empty()) {
            let (clear, n) = match f.strip_prefix(['~', '!']) {
                Some(n) => (true, n),
                None => (false, f),
            };
            let items: Vec<CFlag> = match CFlag::pseudo(n) {
                Some(set) => set.to_vec(),
                None => vec![
                    CFlag::lookup(n).ok_or_else(|| {
                        let mut names: Vec<&str> = CFlag::all().iter().map(|v| v.name()).collect();
                        names.extend(CFlag::pseudo_names());
                        usage(format!(
                            "--flags: unknown context flag '{f}': expected one of: {} (any case, optional VXF_ prefix, '~' to clear, comma-separated)",
                            names.join(", ")
                        ))
                    })?,
                ],
            };
            cfg.cflags.extend(items.into_iter().map(|v| ListItem {
                clear,
                value: ListValue::Name(v),
            }));
        }
    }
    Ok(cfg)
}

/// What this build made, to undo on failure.
#[derive(Default)]
struct Undo {
    cfgdir: Option<PathBuf>,
    vdir: Option<PathBuf>,
    rundir: Option<PathBuf>,
    /// The guest's cache directory, when this build made it.
    cache: Option<PathBuf>,
    /// (moved-aside copy, original place)
    moved: Vec<(PathBuf, PathBuf)>,
}

impl Undo {
    fn run(self) {
        if let Some(v) = &self.vdir
            && v.exists()
            && let Err(e) = vs_storage::remove_root(v)
        {
            eprintln!("vserver: warning: could not remove {}: {e}", v.display());
        }
        for d in [&self.cfgdir, &self.rundir, &self.cache]
            .into_iter()
            .flatten()
        {
            if d.exists()
                && let Err(e) = std::fs::remove_dir_all(d)
            {
                eprintln!("vserver: warning: could not remove {}: {e}", d.display());
            }
        }
        for (aside, orig) in self.moved.iter().rev() {
            if let Err(e) = std::fs::rename(aside, orig) {
                eprintln!(
                    "vserver: warning: could not move {} back to {}: {e}",
                    aside.display(),
                    orig.display()
                );
            }
        }
    }
}

/// Runs `build`.
pub fn run(paths: &Paths, name: &GuestName, a: BuildArgs) -> anyhow::Result<ExitCode> {
    // Everything that can be checked without touching anything, first.
    let method = Method::parse(&a.method, &a.method_args).map_err(|e| usage(e.to_string()))?;
    method.check()?;
    let requested = a
        .context
        .as_deref()
        .map(|c| Xid::parse(Path::new("--context"), c))
        .transpose()
        .map_err(|e| usage(e.to_string()))?;
    if let Some(h) = &a.hostname
        && (h.is_empty()
            || h.len() > 64
            || h.chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '/'))
    {
        return Err(usage(format!(
            "--hostname '{h}': expected 1 to 64 characters without spaces or '/'"
        )));
    }
    if let Some(d) = &a.rootdir
        && !d.is_absolute()
    {
        return Err(usage(format!(
            "--rootdir '{}': expected an absolute path",
            d.display()
        )));
    }
    let (defaults, warnings) = Defaults::read(paths)?;
    output::warnings(&warnings);
    let vdir = a
        .rootdir
        .clone()
        .unwrap_or_else(|| paths.vdirbase())
        .join(name);
    let cfg = config_from_args(paths, name, &a, &defaults, &vdir)?;

    // A run directory this build creates (for the lock) goes on failure;
    // one that was there (a running guest's) stays.
    let rundir_existed = paths.guest_run(name).exists();
    let guest_lock = Lock::guest(paths, name)?;
    let mut undo = Undo::default();
    let result = build(
        paths,
        name,
        &a,
        Checked {
            method,
            requested,
            context_dynamic: defaults.context_dynamic,
            debootstrap_mirror: defaults.debootstrap_mirror.clone(),
            cfg,
        },
        &mut undo,
    );
    match result {
        Ok(summary) => {
            drop(guest_lock);
            // Moved-aside copies are the user's to keep or delete.
            println!("{summary}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            if a.keep {
                eprintln!("vserver: build failed; --keep leaves what was made in place");
            } else {
                if !rundir_existed {
                    undo.rundir = Some(paths.guest_run(name));
                }
                undo.run();
            }
            drop(guest_lock);
            Err(e)
        }
    }
}

/// Everything `build` checked before it touched anything.
struct Checked {
    method: Method,
    /// `--context`, if given.
    requested: Option<Xid>,
    /// `.defaults/context.dynamic` exists.
    context_dynamic: bool,
    /// `.defaults/apps/debootstrap/mirror`.
    debootstrap_mirror: Option<String>,
    /// The configuration to write, without its context yet.
    cfg: GuestConfig,
}

fn build(
    paths: &Paths,
    name: &GuestName,
    a: &BuildArgs,
    checked: Checked,
    undo: &mut Undo,
) -> anyhow::Result<String> {
    let Checked {
        method,
        requested,
        context_dynamic,
        debootstrap_mirror,
        mut cfg,
    } = checked;
    let cfgdir = paths.guest_cfg(name);
    let vdir = cfg.vdir.clone().unwrap_or_default();

    // Reserve the name and the context under the host lock.
    let context = {
        let _host = Lock::host(paths)?;
        if vs_runtime::status(paths, name)?.is_running() {
            return Err(anyhow::anyhow!(
                "guest '{name}' is running; stop it before rebuilding"
            ));
        }
        let existing: Vec<&PathBuf> = [&cfgdir, &vdir]
            .into_iter()
            .filter(|p| std::fs::symlink_metadata(p).is_ok())
            .collect();
        if !existing.is_empty() && !a.force {
            return Err(anyhow::anyhow!(
                "guest '{name}' already exists ({}); use --force to move it aside and build anew",
                existing[0].display()
            ));
        }
        let epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        for p in existing {
            let mut aside = p.clone().into_os_string();
            aside.push(format!(".~{epoch}~"));
            let aside = PathBuf::from(aside);
            std::fs::rename(p, &aside)
                .with_context(|| format!("{}: move aside to {}", p.display(), aside.display()))?;
            eprintln!("vserver: moved {} to {}", p.display(), aside.display());
            undo.moved.push((aside, p.clone()));
        }

        let (claims, warnings) = context::claims(paths)?;
        output::warnings(&warnings);
        let others: Vec<Claim> = claims.into_iter().filter(|c| &c.name != name).collect();
        let xid = match requested {
            Some(x) => x,
            None => {
                if context_dynamic {
                    eprintln!(
                        "vserver: warning: {}: dynamic contexts do not exist here; allocating a static one",
                        paths.defaults().join("context.dynamic").display()
                    );
                }
                context::next_free(paths, &others)?
            }
        };
        let idmap = (!a.privileged).then(|| vs_config::IdMap::for_context(xid));
        context::check_free(paths, name, xid, idmap, &others)?;

        cfg.context = Some(xid);
        undo.cfgdir = Some(cfgdir.clone());
        vs_config::write_guest(&cfgdir, &cfg)?;
        xid
    };

    // The configuration must resolve, as `start` will resolve it.
    let spec = GuestSpec::load(paths, name)?;
    output::warnings(&spec.warnings);

    undo.vdir = Some(vdir.clone());
    vs_storage::create_root(&vdir, vs_storage::Backend::Dir)?;
    let mut progress = Progress::new(&format!("building '{name}' with {}", a.method));
    let files = paths.defaults().join("files");
    let opts = BuildOptions {
        hostname: spec.hostname.clone(),
        defaults_files: files.is_dir().then_some(files),
        debootstrap_mirror,
    };
    let made = method.run(&vdir, &opts, &mut |line| progress.line(line));
    progress.finish();
    made?;
    let cache = paths.cachebase().join(name);
    if std::fs::symlink_metadata(&cache).is_err() {
        undo.cache = Some(cache.clone());
    }
    for d in [paths.logdir(), cache] {
        std::fs::create_dir_all(&d)
            .with_context(|| format!("{}: create directory", d.display()))?;
    }
    // Only a build that worked moves context.next on. Meanwhile the written
    // configuration directory is what keeps others off this context.
    if requested.is_none() {
        let _host = Lock::host(paths)?;
        context::commit_next(paths, context)?;
    }
    Ok(format!(
        "built guest '{name}' (context {context}, method {}) in {}",
        a.method,
        vdir.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_specs() {
        let (_, i) = parse_interface("127.0.42.1/32").unwrap();
        assert!(i.nodev);
        assert_eq!(i.prefix, Some(32));
        assert_eq!(i.dev, None);
        let (label, i) = parse_interface("web=eth0:192.0.2.10/24").unwrap();
        assert_eq!(label.as_deref(), Some("web"));
        assert_eq!(i.dev.as_deref(), Some("eth0"));
        assert!(!i.nodev);
        let (_, i) = parse_interface("eth0:192.0.2.10/255.255.255.0").unwrap();
        assert_eq!(i.mask, Some("255.255.255.0".parse().unwrap()));
        let (_, i) = parse_interface("nodev:10.1.1.1").unwrap();
        assert!(i.nodev);
        let (_, i) = parse_interface("fd00::1/64").unwrap();
        assert_eq!(i.prefix, Some(64));
        let (_, i) = parse_interface("eth0:fd00::1/64").unwrap();
        assert_eq!(i.dev.as_deref(), Some("eth0"));
        for bad in [
            "",
            "eth0:",
            "10.0.0.300",
            "10.0.0.1/33",
            "10.0.0.1/255.0.255.0",
            "a/b:10.0.0.1",
            "fd00::1/255.0.0.0",
        ] {
            let e = parse_interface(bad).unwrap_err();
            assert!(e.starts_with(&format!("--interface '{bad}'")), "{e}");
        }
    }
}
