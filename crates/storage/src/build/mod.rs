//! Build methods: populate a new, empty guest root (util-vserver's
//! `vserver NAME build -m METHOD -- ARGS`, `reference/util-vserver.md` §4.1).
//!
//! Every method leaves the same skeleton (directories a guest needs and the
//! `/dev` symlinks; no device nodes, the runtime mounts a minimal `/dev` at
//! start), writes `etc/hostname`, and installs the host files of
//! [`install_host_files`].

mod busybox;
mod debootstrap;
mod template;

use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use vs_sys::root::RootDir;

use crate::{Error, Result};

pub use debootstrap::{DebootstrapArgs, host_debian_mirror, host_debian_mirror_in};

/// A build method with its validated arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    /// Only the skeleton: a basis for hand-made guests.
    Skeleton,
    /// A minimal guest made of the host's static busybox.
    Busybox {
        /// The static busybox binary to copy (default `/bin/busybox`).
        busybox: PathBuf,
    },
    /// A Debian guest made by the host's `debootstrap`.
    Debootstrap(DebootstrapArgs),
    /// Unpacked from tar archives (plain, gzip, xz or zstd), in order.
    Template {
        /// The archives.
        archives: Vec<PathBuf>,
    },
}

/// Settings every build method honours.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildOptions {
    /// The guest's host name, written to `etc/hostname` (and `etc/hosts` by
    /// the busybox method). Empty: not written.
    pub hostname: String,
    /// The `.defaults/files/` directory whose files [`install_host_files`]
    /// copies into the guest.
    pub defaults_files: Option<PathBuf>,
    /// `.defaults/apps/debootstrap/mirror`: the debootstrap method's mirror
    /// when `-m` is not given (before the host's apt sources).
    pub debootstrap_mirror: Option<String>,
}

/// The default busybox binary: Debian's `busybox-static`.
pub const DEFAULT_BUSYBOX: &str = "/bin/busybox";

/// Walks a method's arguments.
struct Args<'a> {
    method: &'static str,
    rest: std::slice::Iter<'a, String>,
}

impl<'a> Args<'a> {
    fn new(method: &'static str, args: &'a [String]) -> Self {
        Args {
            method,
            rest: args.iter(),
        }
    }

    /// The next option, split at `=` for `--long=value`.
    fn next(&mut self) -> Option<(&'a str, Option<&'a str>)> {
        let arg = self.rest.next()?;
        if arg.starts_with("--")
            && let Some((name, value)) = arg.split_once('=')
        {
            return Some((name, Some(value)));
        }
        Some((arg.as_str(), None))
    }

    /// The value of `opt`: given inline, or the next argument.
    fn value(&mut self, opt: &str, inline: Option<&'a str>) -> Result<String> {
        let value = match inline {
            Some(v) => Some(v),
            None => self.rest.next().map(String::as_str),
        };
        match value {
            Some(v) if !v.is_empty() && !v.starts_with('-') => Ok(v.to_string()),
            _ => Err(Error::BadArgs {
                method: self.method,
                message: format!("option '{opt}' needs a value"),
            }),
        }
    }

    /// Everything after a `--`.
    fn remaining(&mut self) -> Vec<String> {
        self.rest.by_ref().cloned().collect()
    }

    fn unknown(&self, opt: &str) -> Error {
        Error::UnknownOption {
            option: opt.to_string(),
            method: self.method,
        }
    }

    fn no_value(&self, opt: &str, inline: Option<&str>) -> Result<()> {
        match inline {
            Some(_) => Err(Error::BadArgs {
                method: self.method,
                message: format!("option '{opt}' takes no value"),
            }),
            None => Ok(()),
        }
    }
}

impl Method {
    /// Parses a method name and its arguments (what follows `--` on the
    /// `vserver NAME build` command line):
    ///
    /// - `skeleton` (no arguments)
    /// - `busybox [--busybox PATH]`
    /// - `debootstrap -d SUITE [-m MIRROR] [--variant V] [--include PKG,PKG]
    ///   [-- DEBOOTSTRAP-ARGS]` (variant default `minbase`)
    /// - `template -t ARCHIVE [-t ARCHIVE]...`
    pub fn parse(name: &str, args: &[String]) -> Result<Method> {
        match name {
            "skeleton" => {
                let mut a = Args::new("skeleton", args);
                match a.next() {
                    Some((opt, _)) => Err(a.unknown(opt)),
                    None => Ok(Method::Skeleton),
                }
            }
            "busybox" => {
                let mut a = Args::new("busybox", args);
                let mut busybox = PathBuf::from(DEFAULT_BUSYBOX);
                while let Some((opt, inline)) = a.next() {
                    match opt {
                        "--busybox" => busybox = a.value(opt, inline)?.into(),
                        _ => return Err(a.unknown(opt)),
                    }
                }
                Ok(Method::Busybox { busybox })
            }
            "debootstrap" => {
                let mut a = Args::new("debootstrap", args);
                let mut suite = None;
                let mut out = DebootstrapArgs::new(String::new());
                while let Some((opt, inline)) = a.next() {
                    match opt {
                        "-d" => suite = Some(a.value(opt, inline)?),
                        "-m" => out.mirror = Some(a.value(opt, inline)?),
                        "--variant" => out.variant = a.value(opt, inline)?,
                        "--include" => {
                            let v = a.value(opt, inline)?;
                            out.include
                                .extend(v.split(',').filter(|p| !p.is_empty()).map(str::to_string));
                        }
                        "--" => {
                            a.no_value(opt, inline)?;
                            out.extra = a.remaining();
                        }
                        _ => return Err(a.unknown(opt)),
                    }
                }
                out.suite = suite.ok_or_else(|| Error::BadArgs {
                    method: "debootstrap",
                    message: "-d SUITE is required".to_string(),
                })?;
                Ok(Method::Debootstrap(out))
            }
            "template" => {
                let mut a = Args::new("template", args);
                let mut archives = Vec::new();
                while let Some((opt, inline)) = a.next() {
                    match opt {
                        "-t" => archives.push(a.value(opt, inline)?.into()),
                        _ => return Err(a.unknown(opt)),
                    }
                }
                if archives.is_empty() {
                    return Err(Error::BadArgs {
                        method: "template",
                        message: "at least one -t ARCHIVE is required".to_string(),
                    });
                }
                Ok(Method::Template { archives })
            }
            other => Err(Error::UnknownMethod(other.to_string())),
        }
    }

    /// The method's name, as given to [`Method::parse`].
    pub fn name(&self) -> &'static str {
        match self {
            Method::Skeleton => "skeleton",
            Method::Busybox { .. } => "busybox",
            Method::Debootstrap(_) => "debootstrap",
            Method::Template { .. } => "template",
        }
    }

    /// Checks that what the method needs from the host is there (a static
    /// busybox, `debootstrap` on `PATH`, readable archives in a known
    /// format), without touching any guest. [`Method::run`] does this first;
    /// callers may do it before creating anything.
    pub fn check(&self) -> Result<()> {
        match self {
            Method::Skeleton => Ok(()),
            Method::Busybox { busybox } => busybox::check(busybox),
            Method::Debootstrap(_) => debootstrap::find().map(|_| ()),
            Method::Template { archives } => archives
                .iter()
                .try_for_each(|a| template::open_archive(a).map(|_| ())),
        }
    }

    /// Populates the existing, empty guest root `root`, reporting progress
    /// as lines of text (for debootstrap: each line of its output).
    ///
    /// Runs [`Method::check`] first, then the method, the skeleton (before
    /// the method, or after it for debootstrap, which wants an empty
    /// directory), `etc/hostname` and [`install_host_files`]. On error the
    /// root is left as it is; the caller removes it.
    pub fn run(
        &self,
        root: &Path,
        opts: &BuildOptions,
        progress: &mut dyn FnMut(&str),
    ) -> Result<()> {
        self.check()?;
        ensure_empty(root)?;
        match self {
            Method::Skeleton => {
                progress("laying out the skeleton");
                skeleton(&RootDir::open(root)?)?;
            }
            Method::Busybox { busybox } => {
                let rd = RootDir::open(root)?;
                progress("laying out the skeleton");
                skeleton(&rd)?;
                busybox::install(&rd, busybox, &opts.hostname, progress)?;
            }
            Method::Debootstrap(args) => {
                // debootstrap wants an empty directory: the skeleton only
                // fills in what it left out.
                debootstrap::run(args, opts.debootstrap_mirror.as_deref(), root, progress)?;
                skeleton(&RootDir::open(root)?)?;
            }
            Method::Template { archives } => {
                let rd = RootDir::open(root)?;
                progress("laying out the skeleton");
                skeleton(&rd)?;
                template::extract_all(&rd, archives, progress)?;
                skeleton(&rd)?;
            }
        }
        let rd = RootDir::open(root)?;
        if !opts.hostname.is_empty() {
            rd.mkdir_all("etc", 0o755)?;
            rd.write_file(
                "etc/hostname",
                format!("{}\n", opts.hostname).as_bytes(),
                0o644,
            )?;
        }
        progress("installing host files");
        install_host_files(root, opts.defaults_files.as_deref())
    }
}

fn ensure_empty(root: &Path) -> Result<()> {
    let mut entries = fs::read_dir(root).map_err(|e| Error::io(root, "read directory", e))?;
    if entries.next().is_some() {
        return Err(Error::NotEmpty {
            path: root.to_path_buf(),
        });
    }
    Ok(())
}

/// The directories of the skeleton, in creation order, with their modes.
const SKELETON_DIRS: &[(&str, u32)] = &[
    ("bin", 0o755),
    ("dev", 0o755),
    ("dev/pts", 0o755),
    ("dev/shm", 0o1777),
    ("etc", 0o755),
    ("home", 0o755),
    ("mnt", 0o755),
    ("proc", 0o555),
    ("root", 0o700),
    ("run", 0o755),
    ("sbin", 0o755),
    ("sys", 0o555),
    ("tmp", 0o1777),
    ("usr", 0o755),
    ("usr/bin", 0o755),
    ("usr/sbin", 0o755),
    ("var", 0o755),
    ("var/log", 0o755),
    ("var/tmp", 0o1777),
];

/// The symlinks of the skeleton (`UV distrib/defaults/devs`, plus
/// `var/run`), as (path, target).
const SKELETON_LINKS: &[(&str, &str)] = &[
    ("dev/fd", "/proc/self/fd"),
    ("dev/stdin", "fd/0"),
    ("dev/stdout", "fd/1"),
    ("dev/stderr", "fd/2"),
    ("var/run", "../run"),
];

/// Lays down whatever of the skeleton is missing; what exists (a directory,
/// or a symlink such as a merged-/usr `bin -> usr/bin`) is kept.
fn skeleton(rd: &RootDir) -> Result<()> {
    for &(dir, mode) in SKELETON_DIRS {
        if !rd.exists(dir)? {
            rd.create_dir(dir, mode)?;
        }
    }
    for &(link, target) in SKELETON_LINKS {
        if !rd.exists(link)? {
            rd.symlink(target, link)?;
        }
    }
    Ok(())
}

/// The files util-vserver copies from `.defaults/files/` into new guests.
const HOST_FILES: &[&str] = &[
    "hosts",
    "nsswitch.conf",
    "krb5.conf",
    "krb.conf",
    "krb.realms",
    "ldap.conf",
    "localtime",
    "resolv.conf",
];

/// Copies into the guest's `etc/` each of `hosts nsswitch.conf krb5.conf
/// krb.conf krb.realms ldap.conf localtime resolv.conf` present in
/// `defaults_files` (the `.defaults/files/` directory), replacing the
/// guest's; and, when `resolv.conf` is not among them and the guest has
/// none, the host's `/etc/resolv.conf`. Contents are copied, never symlinks
/// (a symlinked `localtime` gets the file it points to).
pub fn install_host_files(root: &Path, defaults_files: Option<&Path>) -> Result<()> {
    install_host_files_from(root, defaults_files, Path::new("/etc"))
}

fn install_host_files_from(
    root: &Path,
    defaults_files: Option<&Path>,
    host_etc: &Path,
) -> Result<()> {
    let rd = RootDir::open(root)?;
    rd.mkdir_all("etc", 0o755)?;
    let mut have_resolv = false;
    if let Some(dir) = defaults_files {
        for name in HOST_FILES {
            if copy_host_file(&rd, &dir.join(name), name)? && *name == "resolv.conf" {
                have_resolv = true;
            }
        }
    }
    if !have_resolv && !rd.exists("etc/resolv.conf")? {
        copy_host_file(&rd, &host_etc.join("resolv.conf"), "resolv.conf")?;
    }
    Ok(())
}

/// Copies the host file `src` (symlinks followed: it is a host path) to
/// `etc/NAME` in the guest, keeping its mode. Returns false when `src` is
/// missing or not a regular file.
fn copy_host_file(rd: &RootDir, src: &Path, name: &str) -> Result<bool> {
    let meta = match fs::metadata(src) {
        Ok(m) if m.is_file() => m,
        Ok(_) => return Ok(false),
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(Error::io(src, "stat", e)),
    };
    // These are small configuration files: read whole, so a read error
    // names the host file and a write error the guest's.
    let data = fs::read(src).map_err(|e| Error::io(src, "read", e))?;
    rd.write_file(
        Path::new("etc").join(name),
        &data,
        meta.permissions().mode() & 0o7777,
    )?;
    Ok(true)
}

#[cfg(test)]
mod tests;
