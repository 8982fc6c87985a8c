//! Reading `/etc/vservers/NAME/` into a [`GuestConfig`].

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::error::{ConfigError, Result, Warning};
use crate::model::*;
use crate::names::{CCap, CFlag, Cap, NCap, NFlag, Named, Support};
use crate::values::{
    GuestName, IdMap, LimitValue, Xid, mask_to_prefix, parse_cpu_list, parse_ip, parse_signal,
    parse_size, valid_ifname,
};

/// Reads a guest's configuration directory.
///
/// Fails on the first malformed value, naming the file, the value and what
/// was expected. Files that this host cannot honour, old names and unknown
/// files come back as warnings.
pub fn read_guest(dir: &Path) -> Result<(GuestConfig, Vec<Warning>)> {
    let meta = fs::metadata(dir).map_err(|e| ConfigError::io(dir, "read configuration", e))?;
    if !meta.is_dir() {
        return Err(ConfigError::invalid(
            dir,
            "not a directory",
            "a configuration directory",
        ));
    }
    let mut r = Reader {
        dir,
        warnings: Vec::new(),
        seen: BTreeSet::new(),
    };
    let cfg = r.guest()?;
    r.report_leftovers()?;
    Ok((cfg, r.warnings))
}

pub(crate) struct Reader<'a> {
    pub(crate) dir: &'a Path,
    pub(crate) warnings: Vec<Warning>,
    /// Relative paths consumed (files, or whole directories).
    seen: BTreeSet<PathBuf>,
}

/// util-vserver files and directories this host does not honour, with why.
const NOT_HONOURED: &[(&str, &str)] = &[
    (
        "ncontext",
        "network contexts do not exist here; addresses are confined through the guest's cgroup",
    ),
    (
        "noncontext",
        "network contexts do not exist here; use netns/ for an unconfined private network",
    ),
    (
        "tag",
        "filesystem tagging needs the Linux-VServer kernel patch",
    ),
    ("capabilities", "2.4-kernel capabilities; use bcapabilities"),
    (
        "umask",
        "use ccapabilities NAMESPACE to let the guest make namespaces",
    ),
    ("schedule", "deprecated; use sched/"),
    (
        "fstab.remote",
        "mounts are made by the host before the guest starts; use fstab",
    ),
    ("fstab.local", "obsolete; use fstab"),
    ("namespace", "every guest has its own mount namespace"),
    ("nonamespace", "every guest has its own mount namespace"),
    (
        "namespace-cleanup",
        "the guest's mount namespace is built from scratch",
    ),
    (
        "namespace-cleanup-skip",
        "the guest's mount namespace is built from scratch",
    ),
    ("keepfds", "a guest never inherits host file descriptors"),
    ("noisy", "not used"),
    ("legacy", "old-style configurations are not read"),
    ("hostname", "legacy name; use uts/nodename"),
    ("domainname", "legacy name; use uts/domainname"),
    ("nocgroup", "every guest has its own cgroup"),
    ("nonetns", "use netns/ only where wanted"),
    ("badness", "not supported by this version"),
    ("ionice", "not supported by this version"),
    ("sysctl", "not supported by this version"),
    (
        "spaces",
        "namespaces are chosen by the guest's mode, not per space",
    ),
    (
        "apps/vshelper",
        "reboot and halt inside a guest are handled by its monitor",
    ),
    ("apps/vdevmap", "guests get a fixed minimal /dev"),
    ("apps/vunify", "not supported by this version"),
    ("apps/pkgmgmt", "not supported by this version"),
    ("apps/vlogin", "enter always uses a pty proxy"),
    ("apps/build", "not supported by this version"),
    ("apps/init/mtab", "/etc/mtab is the guest's own business"),
    ("apps/init/tty", "start output goes to the guest's log"),
    ("apps/init/sync", "start and stop are always synchronous"),
    ("apps/init/cmd.prepare", "not supported by this version"),
    (
        "apps/init/cmd.start-sync",
        "start and stop are always synchronous",
    ),
    (
        "apps/init/cmd.stop-sync",
        "start and stop are always synchronous",
    ),
];

fn is_comment_or_empty(line: &str) -> bool {
    let t = line.trim();
    t.is_empty() || t.starts_with('#')
}

impl<'a> Reader<'a> {
    pub(crate) fn new(dir: &'a Path) -> Self {
        Reader {
            dir,
            warnings: Vec::new(),
            seen: BTreeSet::new(),
        }
    }

    pub(crate) fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    pub(crate) fn warn(&mut self, rel: &str, message: impl Into<String>) {
        let path = self.path(rel);
        self.warnings.push(Warning {
            path,
            message: message.into(),
        });
    }

    fn mark(&mut self, rel: &str) {
        self.seen.insert(PathBuf::from(rel));
    }

    /// The file's content, if it exists; `\r\n` becomes `\n` with a warning.
    pub(crate) fn raw(&mut self, rel: &str) -> Result<Option<String>> {
        self.mark(rel);
        let path = self.path(rel);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) if e.kind() == ErrorKind::IsADirectory => {
                return Err(ConfigError::invalid(&path, "a directory", "a file"));
            }
            Err(e) => return Err(ConfigError::io(&path, "read", e)),
        };
        let text = String::from_utf8(bytes)
            .map_err(|_| ConfigError::invalid(&path, "non-UTF-8 bytes", "UTF-8 text"))?;
        if text.contains('\r') {
            self.warn(rel, "DOS line endings; read as if they were UNIX ones");
            return Ok(Some(text.replace("\r\n", "\n").replace('\r', "\n")));
        }
        Ok(Some(text))
    }

    /// A scalar file: only the first line, trimmed.
    pub(crate) fn scalar(&mut self, rel: &str) -> Result<Option<String>> {
        Ok(self
            .raw(rel)?
            .map(|t| t.lines().next().unwrap_or("").trim().to_owned()))
    }

    /// A scalar file parsed with `f`.
    fn parse<T>(
        &mut self,
        rel: &str,
        f: impl FnOnce(&Path, &str) -> Result<T>,
    ) -> Result<Option<T>> {
        match self.scalar(rel)? {
            Some(s) => Ok(Some(f(&self.path(rel), &s)?)),
            None => Ok(None),
        }
    }

    /// A boolean file: its existence.
    pub(crate) fn flag(&mut self, rel: &str) -> bool {
        self.mark(rel);
        fs::symlink_metadata(self.path(rel)).is_ok()
    }

    /// A boolean file that may hold `0` to mean false.
    fn bool_file(&mut self, rel: &str) -> Result<bool> {
        Ok(match self.scalar(rel)? {
            None => false,
            Some(s) => s != "0",
        })
    }

    /// A list file: non-empty, non-comment lines, trimmed.
    pub(crate) fn lines(&mut self, rel: &str) -> Result<Option<Vec<String>>> {
        Ok(self.raw(rel)?.map(|t| {
            t.lines()
                .filter(|l| !is_comment_or_empty(l))
                .map(|l| l.trim().to_owned())
                .collect()
        }))
    }

    fn link(&mut self, rel: &str) -> Result<Option<PathBuf>> {
        self.mark(rel);
        let path = self.path(rel);
        match fs::read_link(&path) {
            Ok(t) => Ok(Some(t)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) if e.kind() == ErrorKind::InvalidInput => Err(ConfigError::invalid(
                &path,
                "not a symbolic link",
                "a symbolic link",
            )),
            Err(e) => Err(ConfigError::io(&path, "read link", e)),
        }
    }

    /// Names of the subdirectories of `rel`, sorted; marks `rel` seen.
    fn subdirs(&mut self, rel: &str) -> Result<Vec<String>> {
        let path = self.path(rel);
        let entries = match fs::read_dir(&path) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(ConfigError::io(&path, "read directory", e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| ConfigError::io(&path, "read directory", e))?;
            let is_dir = fs::metadata(entry.path())
                .map(|m| m.is_dir())
                .unwrap_or(false);
            if is_dir {
                let name = entry.file_name().to_string_lossy().into_owned();
                self.seen.insert(Path::new(rel).join(&name));
                out.push(name);
            }
        }
        out.sort();
        Ok(out)
    }

    /// A list of flags or capabilities.
    pub(crate) fn list<T: Named>(&mut self, rel: &str) -> Result<Vec<ListItem<T>>> {
        let Some(lines) = self.lines(rel)? else {
            return Ok(Vec::new());
        };
        let path = self.path(rel);
        let mut out = Vec::new();
        for line in &lines {
            for token in line.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                out.extend(parse_list_token::<T>(&path, token)?);
            }
        }
        for item in &out {
            if let (ListValue::Name(n), false) = (item.value, item.clear)
                && let Support::No(why) = n.support()
            {
                let msg = format!("{} '{}' is not supported: {why}", T::KIND, n.name());
                if !self.warnings.iter().any(|w| w.message == msg) {
                    self.warn(rel, msg);
                }
            }
        }
        Ok(out)
    }

    fn guest(&mut self) -> Result<GuestConfig> {
        let mut c = GuestConfig {
            name: self.scalar("name")?,
            context: self.parse("context", Xid::parse)?,
            vdir: self.link("vdir")?,
            run: self.link("run")?,
            cache: self.link("cache")?,
            ..GuestConfig::default()
        };
        c.uts = self.uts()?;
        c.interfaces = self.interfaces()?;
        c.rlimits = self.limits(
            "rlimits",
            RlimitResource::from_file,
            RlimitResource::file,
            RlimitResource::files,
            RlimitResource::unit,
            true,
        )?;
        for r in c.rlimits.keys() {
            if let Some(why) = r.unsupported() {
                self.warn(
                    &format!("rlimits/{}", r.file()),
                    format!("not supported: {why}"),
                );
            }
        }
        c.ulimits = self.limits(
            "ulimits",
            UlimitResource::from_file,
            UlimitResource::file,
            UlimitResource::files,
            UlimitResource::unit,
            false,
        )?;
        c.bcapabilities = self.list::<Cap>("bcapabilities")?;
        c.ccapabilities = self.list::<CCap>("ccapabilities")?;
        c.cflags = if self.flag("cflags") {
            if self.flag("flags") {
                self.warn("flags", "ignored: cflags exists (flags is its old name)");
            }
            self.list::<CFlag>("cflags")?
        } else if self.flag("flags") {
            self.warn("flags", "old name of cflags; read as cflags");
            self.list::<CFlag>("flags")?
        } else {
            Vec::new()
        };
        c.nflags = self.list::<NFlag>("nflags")?;
        c.ncapabilities = self.list::<NCap>("ncapabilities")?;
        c.fstab = self.fstab()?;
        c.personality = self.personality()?;
        c.nice = self.parse("nice", |p, s| {
            s.parse::<i32>()
                .ok()
                .filter(|n| (-20..=19).contains(n))
                .ok_or_else(|| ConfigError::invalid(p, s, "a nice level in -20..19"))
        })?;
        c.shell = self.parse("shell", |p, s| {
            if s.is_empty() {
                Err(ConfigError::invalid(
                    p,
                    s,
                    "a command line such as '/bin/sh -l'",
                ))
            } else {
                Ok(s.to_owned())
            }
        })?;
        c.init = self.init()?;
        c.sched = self.sched()?;
        c.cpuset = self.cpuset()?;
        c.dlimits = self.dlimits()?;
        c.cgroup = self.cgroup_knobs()?;
        c.scripts = self.scripts()?;
        c.disabled = self.flag("disabled");
        c.privileged = self.flag("privileged");
        c.uidmap = self.parse("uidmap", IdMap::parse)?;
        if c.privileged && c.uidmap.is_some() {
            self.warn(
                "uidmap",
                "ignored: the guest is privileged (no user namespace)",
            );
        }
        c.storage = Storage {
            kind: self.parse("storage/type", |p, s| {
                StorageType::lookup(s)
                    .ok_or_else(|| ConfigError::invalid(p, s, "one of dir, btrfs, image"))
            })?,
            size: self.parse("storage/size", |p, s| {
                parse_size(s)
                    .filter(|n| *n > 0)
                    .ok_or_else(|| ConfigError::invalid(p, s, "a size such as 10G"))
            })?,
        };
        self.mark("storage");
        c.netns = self.netns()?;
        Ok(c)
    }

    fn uts(&mut self) -> Result<Uts> {
        let field = |r: &mut Self, rel: &str| {
            r.parse(rel, |p, s| {
                if s.is_empty() || s.len() > 64 || s.chars().any(|c| c.is_control()) {
                    Err(ConfigError::invalid(p, s, "1 to 64 printable bytes"))
                } else {
                    Ok(s.to_owned())
                }
            })
        };
        let uts = Uts {
            nodename: field(self, "uts/nodename")?,
            domainname: field(self, "uts/domainname")?,
            sysname: field(self, "uts/sysname")?,
            release: field(self, "uts/release")?,
            version: field(self, "uts/version")?,
            machine: field(self, "uts/machine")?,
        };
        if let Some(n) = &uts.nodename
            && n.chars().any(|c| c.is_whitespace() || c == '/')
        {
            return Err(ConfigError::invalid(
                self.path("uts/nodename"),
                n,
                "a host name without spaces or '/'",
            ));
        }
        for (rel, v) in [
            ("uts/sysname", &uts.sysname),
            ("uts/release", &uts.release),
            ("uts/version", &uts.version),
        ] {
            if v.is_some() {
                self.warn(
                    rel,
                    "not supported: a stock kernel cannot fake this uname field",
                );
            }
        }
        if let Some(m) = &uts.machine
            && !matches!(m.as_str(), "i386" | "i486" | "i586" | "i686")
        {
            self.warn(
                "uts/machine",
                "not supported: only i386..i686 can be shown, through the linux32 personality",
            );
        }
        self.mark("uts/context");
        self.mark("uts");
        Ok(uts)
    }

    fn prefix(&mut self, rel: &str, max: u8) -> Result<Option<u8>> {
        self.parse(rel, |p, s| {
            s.parse::<u8>()
                .ok()
                .filter(|n| *n <= max)
                .ok_or_else(|| ConfigError::invalid(p, s, format!("a prefix length 0..{max}")))
        })
    }

    fn mask(&mut self, rel: &str) -> Result<Option<std::net::Ipv4Addr>> {
        self.parse(rel, |p, s| {
            s.parse::<std::net::Ipv4Addr>()
                .ok()
                .filter(|m| mask_to_prefix(*m).is_some())
                .ok_or_else(|| ConfigError::invalid(p, s, "a contiguous IPv4 netmask"))
        })
    }

    fn ipv4(&mut self, rel: &str) -> Result<Option<std::net::Ipv4Addr>> {
        self.parse(rel, |p, s| {
            s.parse()
                .map_err(|_| ConfigError::invalid(p, s, "an IPv4 address"))
        })
    }

    fn ifname(&mut self, rel: &str, what: &str) -> Result<Option<String>> {
        self.parse(rel, |p, s| {
            if valid_ifname(s) {
                Ok(s.to_owned())
            } else {
                Err(ConfigError::invalid(
                    p,
                    s,
                    format!("{what}: 1 to 15 characters without '/', ':' or spaces"),
                ))
            }
        })
    }

    fn scope(&mut self, rel: &str) -> Result<Option<String>> {
        self.parse(rel, |p, s| {
            if matches!(s, "global" | "site" | "link" | "host" | "nowhere")
                || s.parse::<u8>().is_ok()
            {
                Ok(s.to_owned())
            } else {
                Err(ConfigError::invalid(
                    p,
                    s,
                    "global, site, link, host, nowhere or a number 0..255",
                ))
            }
        })
    }

    fn interfaces(&mut self) -> Result<Interfaces> {
        self.mark("interfaces");
        let mut ifs = Interfaces {
            dev: self.ifname("interfaces/dev", "a device name")?,
            prefix: self.prefix("interfaces/prefix", 128)?,
            mask: self.mask("interfaces/mask")?,
            bcast: self.ipv4("interfaces/bcast")?,
            scope: self.scope("interfaces/scope")?,
            lback: self.parse("interfaces/lback", parse_ip)?,
            vlandev: self.flag("interfaces/vlandev"),
            novlandev: self.flag("interfaces/novlandev"),
            list: BTreeMap::new(),
        };
        for name in self.subdirs("interfaces")? {
            let base = format!("interfaces/{name}");
            let ip = self
                .parse(&format!("{base}/ip"), parse_ip)?
                .ok_or_else(|| ConfigError::Missing {
                    path: self.path(&format!("{base}/ip")),
                    what: "the interface's IP address",
                })?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let mut iface = Interface::new(ip);
            iface.prefix = self.prefix(&format!("{base}/prefix"), max)?;
            iface.mask = self.mask(&format!("{base}/mask"))?;
            if iface.mask.is_some() && ip.is_ipv6() {
                return Err(ConfigError::Conflict {
                    path: self.path(&format!("{base}/mask")),
                    message: format!("a netmask cannot apply to the IPv6 address {ip}; use prefix"),
                });
            }
            if let (Some(p), Some(m)) = (iface.prefix, iface.mask)
                && mask_to_prefix(m) != Some(p)
            {
                return Err(ConfigError::Conflict {
                    path: self.path(&format!("{base}/mask")),
                    message: format!("netmask {m} disagrees with prefix {p} in the same directory"),
                });
            }
            iface.dev = self.ifname(&format!("{base}/dev"), "a device name")?;
            iface.name = self.ifname(&format!("{base}/name"), "an alias label")?;
            iface.nodev = self.flag(&format!("{base}/nodev"));
            if self.flag(&format!("{base}/only_ip")) {
                self.warn(
                    &format!("{base}/only_ip"),
                    "old name of nodev; read as nodev",
                );
                iface.nodev = true;
            }
            iface.disabled = self.flag(&format!("{base}/disabled"));
            iface.down = self.flag(&format!("{base}/down"));
            iface.bcast = self.ipv4(&format!("{base}/bcast"))?;
            iface.scope = self.scope(&format!("{base}/scope"))?;
            iface.peer = self.parse(&format!("{base}/peer"), parse_ip)?;
            iface.vlandev = self.flag(&format!("{base}/vlandev"));
            iface.novlandev = self.flag(&format!("{base}/novlandev"));
            for (f, why) in [
                (
                    "tun",
                    "tun/tap devices for guests are not supported by this version",
                ),
                (
                    "tap",
                    "tun/tap devices for guests are not supported by this version",
                ),
                ("indirect", "dummy interfaces with nameif are not supported"),
                ("mac", "dummy interfaces with nameif are not supported"),
                ("extip", "never implemented by util-vserver either"),
            ] {
                let rel = format!("{base}/{f}");
                if self.flag(&rel) {
                    self.warn(&rel, format!("not supported: {why}"));
                }
            }
            for f in ["nocsum", "shared", "uid", "gid", "linktype"] {
                self.mark(&format!("{base}/{f}"));
            }
            ifs.list.insert(name, iface);
        }
        Ok(ifs)
    }

    fn limits<R: Ord + Copy>(
        &mut self,
        dir: &str,
        from_file: fn(&str) -> Option<R>,
        file_of: fn(R) -> &'static str,
        names_of: fn() -> Vec<&'static str>,
        unit: fn(R) -> crate::values::Unit,
        with_min: bool,
    ) -> Result<BTreeMap<R, LimitSet>> {
        self.mark(dir);
        let path = self.path(dir);
        let entries = match fs::read_dir(&path) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(e) => return Err(ConfigError::io(&path, "read directory", e)),
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let mut out: BTreeMap<R, LimitSet> = BTreeMap::new();
        for file in names {
            let rel = format!("{dir}/{file}");
            let (res, suffix) = match file.split_once('.') {
                Some((r, s)) => (r, Some(s)),
                None => (file.as_str(), None),
            };
            let known_suffix = matches!(suffix, None | Some("hard") | Some("soft"))
                || (with_min && suffix == Some("min"));
            let Some(r) = from_file(res).filter(|_| known_suffix) else {
                let mut suffixes = vec![".hard", ".soft"];
                if with_min {
                    suffixes.push(".min");
                }
                return Err(ConfigError::UnknownName {
                    path: self.path(&rel),
                    kind: "limit",
                    name: file.clone(),
                    expected: format!(
                        "one of: {} (lower case), optionally with {}",
                        names_of().join(", "),
                        suffixes.join(", ")
                    ),
                });
            };
            let value = self
                .parse(&rel, |p, s| LimitValue::parse(p, s, unit(r)))?
                .unwrap_or(LimitValue::Inf);
            let set = out.entry(r).or_default();
            match suffix {
                None => set.all = Some(value),
                Some("hard") => set.hard = Some(value),
                Some("soft") => set.soft = Some(value),
                _ => set.min = Some(value),
            }
        }
        for (r, set) in &out {
            let order = [
                ("min", set.min()),
                ("soft", set.soft()),
                ("hard", set.hard()),
            ];
            for w in order.windows(2) {
                if let (
                    (lo_name, Some(LimitValue::Amount(lo))),
                    (hi_name, Some(LimitValue::Amount(hi))),
                ) = (w[0], w[1])
                    && lo > hi
                {
                    return Err(ConfigError::Conflict {
                        path: self.path(&format!("{dir}/{}", file_of(*r))),
                        message: format!(
                            "the {lo_name} limit {lo} is above the {hi_name} limit {hi}"
                        ),
                    });
                }
            }
        }
        Ok(out)
    }

    pub(crate) fn fstab(&mut self) -> Result<Option<Vec<FstabEntry>>> {
        let Some(text) = self.raw("fstab")? else {
            return Ok(None);
        };
        let path = self.path("fstab");
        let mut out = Vec::new();
        for (n, line) in text.lines().enumerate() {
            if is_comment_or_empty(line) {
                continue;
            }
            let f: Vec<&str> = line.split_whitespace().collect();
            let bad = || {
                ConfigError::invalid(
                    format!("{}:{}", path.display(), n + 1),
                    line,
                    "'SPEC FILE TYPE OPTIONS [FREQ [PASSNO]]' with an absolute FILE",
                )
            };
            if !(4..=6).contains(&f.len())
                || !f[1].starts_with('/')
                || f[1].split('/').any(|c| c == "..")
            {
                return Err(bad());
            }
            let num = |i: usize| -> Result<u32> {
                f.get(i).map_or(Ok(0), |s| s.parse().map_err(|_| bad()))
            };
            out.push(FstabEntry {
                spec: f[0].to_owned(),
                file: f[1].to_owned(),
                vfstype: f[2].to_owned(),
                options: f[3].to_owned(),
                freq: num(4)?,
                passno: num(5)?,
            });
        }
        Ok(Some(out))
    }

    fn personality(&mut self) -> Result<Option<Personality>> {
        let Some(lines) = self.lines("personality")? else {
            return Ok(None);
        };
        let path = self.path("personality");
        let Some((first, rest)) = lines.split_first() else {
            return Err(ConfigError::invalid(
                &path,
                "",
                "a personality type such as linux_32bit",
            ));
        };
        let kind = PersonalityType::lookup(first).ok_or_else(|| ConfigError::UnknownName {
            path: path.clone(),
            kind: "personality type",
            name: first.clone(),
            expected: format!(
                "one of: {} on the first line (any case, optional PER_ prefix)",
                PersonalityType::names().join(", ")
            ),
        })?;
        let flags = rest
            .iter()
            .map(|l| {
                PersonalityFlag::lookup(l).ok_or_else(|| ConfigError::UnknownName {
                    path: path.clone(),
                    kind: "personality flag",
                    name: l.clone(),
                    expected: format!(
                        "one of: {} after the first line (any case, optional PER_ prefix)",
                        PersonalityFlag::names().join(", ")
                    ),
                })
            })
            .collect::<Result<_>>()?;
        Ok(Some(Personality { kind, flags }))
    }

    fn token(&mut self, rel: &str, expected: &str) -> Result<Option<String>> {
        self.parse(rel, |p, s| {
            if s.is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
                Err(ConfigError::invalid(p, s, expected))
            } else {
                Ok(s.to_owned())
            }
        })
    }

    fn init(&mut self) -> Result<InitConfig> {
        self.mark("apps");
        self.mark("apps/init");
        let style = self.parse("apps/init/style", |p, s| {
            InitStyle::lookup(s).ok_or_else(|| {
                ConfigError::invalid(
                    p,
                    s,
                    "one of sysv, plain, cmd (or util-vserver's minit, gentoo, openrc, arch)",
                )
            })
        })?;
        if let Some(why) = style.and_then(InitStyle::unsupported) {
            self.warn("apps/init/style", format!("not supported: {why}"));
        }
        let runlevel = "a runlevel such as 3";
        let mut init = InitConfig {
            style,
            runlevel: self.token("apps/init/runlevel", runlevel)?,
            runlevel_start: self.token("apps/init/runlevel.start", runlevel)?,
            runlevel_stop: self.token("apps/init/runlevel.stop", runlevel)?,
            ..InitConfig::default()
        };
        if let Some(text) = self.raw("apps/init/killseq")? {
            let path = self.path("apps/init/killseq");
            init.killseq = Some(parse_killseq(&path, &text)?);
        }
        for (rel, slot) in [
            ("apps/init/cmd.start", &mut init.cmd_start),
            ("apps/init/cmd.stop", &mut init.cmd_stop),
        ] {
            if let Some(text) = self.raw(rel)? {
                let argv: Vec<String> = text
                    .lines()
                    .filter(|l| !l.trim_start().starts_with('#') && !l.is_empty())
                    .map(str::to_owned)
                    .collect();
                if argv.is_empty() {
                    return Err(ConfigError::invalid(
                        self.path(rel),
                        "",
                        "a command, one argument per line",
                    ));
                }
                *slot = Some(argv);
            }
        }
        init.mark = self.lines("apps/init/mark")?.unwrap_or_default();
        for m in &init.mark {
            if m.chars()
                .any(|c| c.is_whitespace() || c == ',' || c == '!' || c == '~')
            {
                return Err(ConfigError::invalid(
                    self.path("apps/init/mark"),
                    m,
                    "one mark per line, without spaces, ',', '!' or '~'",
                ));
            }
        }
        init.depends = self.lines("apps/init/depends")?.unwrap_or_default();
        for d in &init.depends {
            if GuestName::new(d).is_err() {
                return Err(ConfigError::invalid(
                    self.path("apps/init/depends"),
                    d,
                    "one guest name per line",
                ));
            }
        }
        init.environment = self.environment("apps/init/environment")?;
        Ok(init)
    }

    /// `VAR=VALUE` lines.
    pub(crate) fn environment(&mut self, rel: &str) -> Result<Option<Vec<(String, String)>>> {
        let Some(lines) = self.lines(rel)? else {
            return Ok(None);
        };
        let path = self.path(rel);
        let expected = "VAR=VALUE lines with VAR a shell variable name";
        let mut env = Vec::new();
        for l in lines {
            let Some((k, v)) = l.split_once('=') else {
                return Err(ConfigError::invalid(&path, &l, expected));
            };
            let ok = k
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ok {
                return Err(ConfigError::invalid(&path, &l, expected));
            }
            env.push((k.to_owned(), v.to_owned()));
        }
        Ok(Some(env))
    }

    fn sched(&mut self) -> Result<Sched> {
        self.mark("sched");
        let positive = |r: &mut Self, rel: &str| {
            r.parse(rel, |p, s| {
                s.parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| ConfigError::invalid(p, s, "a number greater than 0"))
            })
        };
        let count = |r: &mut Self, rel: &str| {
            r.parse(rel, |p, s| {
                s.parse::<u64>()
                    .map_err(|_| ConfigError::invalid(p, s, "a non-negative number"))
            })
        };
        let sched = Sched {
            fill_rate: positive(self, "sched/fill-rate")?,
            interval: positive(self, "sched/interval")?,
            tokens: count(self, "sched/tokens")?,
            tokens_min: count(self, "sched/tokens-min")?,
            tokens_max: count(self, "sched/tokens-max")?,
            priority_bias: self.parse("sched/priority-bias", |p, s| {
                s.parse::<i64>()
                    .map_err(|_| ConfigError::invalid(p, s, "a whole number"))
            })?,
            fill_rate2: positive(self, "sched/fill-rate2")?,
            interval2: positive(self, "sched/interval2")?,
            idle_time: self.flag("sched/idle-time"),
        };
        for d in self.subdirs("sched")? {
            self.warn(
                &format!("sched/{d}"),
                "not supported: per-CPU token buckets; the guest gets one bucket",
            );
            self.mark(&format!("sched/{d}"));
        }
        Ok(sched)
    }

    fn cpuset(&mut self) -> Result<Cpuset> {
        self.mark("cpuset");
        let set = Cpuset {
            name: self.token("cpuset/name", "a cpuset name without spaces")?,
            cpus: self.parse("cpuset/cpus", parse_cpu_list)?,
            mems: self.parse("cpuset/mems", parse_cpu_list)?,
            cpu_exclusive: self.bool_file("cpuset/cpu_exclusive")?,
            mem_exclusive: self.bool_file("cpuset/mem_exclusive")?,
            virtualized: self.flag("cpuset/virtualized"),
            nocreate: self.flag("cpuset/nocreate"),
        };
        if let Some(n) = &set.name
            && (n.contains('/') || n.contains(".."))
        {
            return Err(ConfigError::invalid(
                self.path("cpuset/name"),
                n,
                "a cpuset name without '/' or '..'",
            ));
        }
        Ok(set)
    }

    /// `cgroup/`: every `<subsys>.<knob>` file (letters, digits, `_`; the
    /// knob may have more dots), but none of the `cgroup.*` or `devices.*`
    /// files, which would move processes or undo the device filter.
    fn cgroup_knobs(&mut self) -> Result<BTreeMap<String, String>> {
        self.mark("cgroup");
        let mut out = BTreeMap::new();
        let dir = self.path("cgroup");
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(ConfigError::io(&dir, "read directory", e)),
        };
        let mut names: Vec<String> = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| ConfigError::io(&dir, "read directory", e))?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        for name in names {
            let rel = format!("cgroup/{name}");
            if name == "name" {
                self.mark(&rel);
                self.warn(
                    &rel,
                    "not honoured: the guest's cgroup is always <parent>/vserver/NAME",
                );
                continue;
            }
            let word = |w: &str| {
                !w.is_empty()
                    && w.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            };
            let valid = name.split_once('.').is_some_and(|(subsys, knob)| {
                word(subsys)
                    && knob.split('.').all(word)
                    && !["cgroup", "devices"].contains(&subsys)
            });
            if !valid {
                return Err(ConfigError::invalid(
                    self.path("cgroup"),
                    &name,
                    "control file names <subsys>.<knob> (e.g. blkio.weight, cpu.shares), not cgroup.* or devices.*",
                ));
            }
            if let Some(v) = self.scalar(&rel)? {
                out.insert(name, v);
            }
        }
        Ok(out)
    }

    fn dlimits(&mut self) -> Result<BTreeMap<String, Dlimit>> {
        self.mark("dlimits");
        let mut out = BTreeMap::new();
        for name in self.subdirs("dlimits")? {
            let base = format!("dlimits/{name}");
            let need = |r: &mut Self, f: &str| -> Result<u64> {
                let rel = format!("{base}/{f}");
                r.parse(&rel, |p, s| {
                    s.parse::<u64>()
                        .map_err(|_| ConfigError::invalid(p, s, "a non-negative number"))
                })?
                .ok_or_else(|| ConfigError::Missing {
                    path: r.path(&rel),
                    what: "every dlimits entry needs directory, space_total, inodes_total and reserved",
                })
            };
            let directory = self
                .parse(&format!("{base}/directory"), |p, s| {
                    if s.starts_with('/') {
                        Ok(s.to_owned())
                    } else {
                        Err(ConfigError::invalid(p, s, "an absolute path inside the guest"))
                    }
                })?
                .ok_or_else(|| ConfigError::Missing {
                    path: self.path(&format!("{base}/directory")),
                    what: "every dlimits entry needs directory, space_total, inodes_total and reserved",
                })?;
            let space_total = need(self, "space_total")?;
            let inodes_total = need(self, "inodes_total")?;
            let reserved = need(self, "reserved")?;
            if reserved > 100 {
                return Err(ConfigError::invalid(
                    self.path(&format!("{base}/reserved")),
                    &reserved.to_string(),
                    "a percentage 0..100",
                ));
            }
            let disabled = self.flag(&format!("{base}/disabled"));
            if !disabled {
                self.warn(
                    &base,
                    "not supported: no per-context disk quota on a stock kernel; use storage/type image or btrfs with storage/size",
                );
            }
            out.insert(
                name,
                Dlimit {
                    directory,
                    space_total,
                    inodes_total,
                    reserved: reserved as u8,
                    disabled,
                },
            );
        }
        Ok(out)
    }

    fn script(&mut self, rel: &str) -> Result<Script> {
        self.mark(rel);
        let path = self.path(rel);
        let content = fs::read(&path).map_err(|e| ConfigError::io(&path, "read", e))?;
        let mode = fs::metadata(&path)
            .map_err(|e| ConfigError::io(&path, "stat", e))?
            .permissions()
            .mode();
        Ok(Script {
            content,
            executable: mode & 0o111 != 0,
        })
    }

    fn scripts(&mut self) -> Result<BTreeMap<Hook, HookScripts>> {
        self.mark("scripts");
        let dir = self.path("scripts");
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(e) => return Err(ConfigError::io(&dir, "read directory", e)),
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let mut out: BTreeMap<Hook, HookScripts> = BTreeMap::new();
        for name in names {
            let rel = format!("scripts/{name}");
            let is_dir = fs::metadata(self.path(&rel))
                .map(|m| m.is_dir())
                .unwrap_or(false);
            if let Some(hook) = Hook::lookup(&name).filter(|_| !is_dir) {
                out.entry(hook).or_default().main = Some(self.script(&rel)?);
            } else if let Some(hook) = name
                .strip_suffix(".d")
                .and_then(Hook::lookup)
                .filter(|_| is_dir)
            {
                self.mark(&rel);
                let mut files: Vec<String> = fs::read_dir(self.path(&rel))
                    .map_err(|e| ConfigError::io(self.path(&rel), "read directory", e))?
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect();
                files.sort();
                for f in files {
                    let frel = format!("{rel}/{f}");
                    if fs::metadata(self.path(&frel))
                        .map(|m| m.is_file())
                        .unwrap_or(false)
                    {
                        let s = self.script(&frel)?;
                        out.entry(hook).or_default().dir.insert(f, s);
                    }
                }
            }
        }
        Ok(out)
    }

    fn netns(&mut self) -> Result<Option<Netns>> {
        self.mark("netns");
        if !self.path("netns").is_dir() {
            return Ok(None);
        }
        let mut ns = Netns {
            name: self.token("netns/name", "a namespace name without spaces")?,
            shared: self.flag("netns/shared"),
            bridge: self.ifname("netns/bridge", "a bridge name")?,
            gateway: self.parse("netns/gateway", parse_ip)?,
            nat: self.flag("netns/nat"),
            interfaces: BTreeMap::new(),
        };
        if let Some(n) = &ns.name
            && n.contains('/')
        {
            return Err(ConfigError::invalid(
                self.path("netns/name"),
                n,
                "a namespace name without '/'",
            ));
        }
        self.mark("netns/interfaces");
        for name in self.subdirs("netns/interfaces")? {
            let base = format!("netns/interfaces/{name}");
            let iface = NetnsInterface {
                host: self.ifname(&format!("{base}/host"), "a device name")?,
                guest: self.ifname(&format!("{base}/guest"), "a device name")?,
                kind: self.parse(&format!("{base}/type"), |p, s| {
                    if s == "veth" {
                        Ok(s.to_owned())
                    } else {
                        Err(ConfigError::invalid(p, s, "veth"))
                    }
                })?,
            };
            ns.interfaces.insert(name, iface);
        }
        Ok(Some(ns))
    }

    /// Warns about every file nobody read.
    fn report_leftovers(&mut self) -> Result<()> {
        let mut stack = vec![PathBuf::new()];
        let mut leftovers = Vec::new();
        while let Some(rel) = stack.pop() {
            let dir = self.dir.join(&rel);
            let entries =
                fs::read_dir(&dir).map_err(|e| ConfigError::io(&dir, "read directory", e))?;
            for entry in entries {
                let entry = entry.map_err(|e| ConfigError::io(&dir, "read directory", e))?;
                let child = rel.join(entry.file_name());
                let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
                if self.seen.contains(&child) {
                    if is_dir {
                        stack.push(child);
                    }
                    continue;
                }
                let covered = child.ancestors().skip(1).any(|a| {
                    !a.as_os_str().is_empty()
                        && self.seen.contains(a)
                        && NOT_HONOURED.iter().any(|(n, _)| Path::new(n) == a)
                });
                if !covered {
                    leftovers.push(child);
                }
            }
        }
        leftovers.sort();
        for rel in leftovers {
            let key = rel.to_string_lossy().into_owned();
            if let Some((_, why)) = NOT_HONOURED.iter().find(|(n, _)| *n == key) {
                self.warn(&key, format!("not supported: {why}"));
            } else {
                self.warn(&key, "unknown configuration file; ignored");
            }
            self.mark(&key);
        }
        Ok(())
    }
}

fn parse_list_token<T: Named>(path: &Path, token: &str) -> Result<Vec<ListItem<T>>> {
    let (clear, name) = match token.strip_prefix(['~', '!']) {
        Some(rest) => (true, rest.trim()),
        None => (false, token),
    };
    let one = |value| ListItem { clear, value };
    let lower = name.to_ascii_lowercase();
    if lower == "all" || lower == "any" {
        return Ok(vec![one(ListValue::All)]);
    }
    if lower == "none" {
        return Ok(vec![one(ListValue::None)]);
    }
    let unknown = || ConfigError::UnknownName {
        path: path.to_owned(),
        kind: T::KIND,
        name: token.to_owned(),
        expected: T::expected(),
    };
    if let Some(bit) = lower.strip_prefix('^') {
        let bit: u32 = bit.parse().map_err(|_| unknown())?;
        let v = T::from_bit(bit).ok_or_else(unknown)?;
        return Ok(vec![one(ListValue::Name(v))]);
    }
    let mask = if let Some(hex) = lower.strip_prefix("0x") {
        Some(u64::from_str_radix(hex, 16).map_err(|_| unknown())?)
    } else if lower.chars().all(|c| c.is_ascii_digit()) {
        Some(lower.parse::<u64>().map_err(|_| unknown())?)
    } else {
        None
    };
    if let Some(mask) = mask {
        let mut out = Vec::new();
        for bit in 0..64 {
            if mask & (1u64 << bit) != 0 {
                out.push(one(ListValue::Name(T::from_bit(bit).ok_or_else(unknown)?)));
            }
        }
        return Ok(out);
    }
    if let Some(set) = T::pseudo(name) {
        return Ok(set.iter().map(|v| one(ListValue::Name(*v))).collect());
    }
    T::lookup(name)
        .map(|v| vec![one(ListValue::Name(v))])
        .ok_or_else(unknown)
}

/// Parses `apps/init/killseq`: `signal [wait signal]*`, on one or more lines.
pub fn parse_killseq(path: &Path, text: &str) -> Result<KillSeq> {
    let tokens: Vec<&str> = text
        .lines()
        .filter(|l| !is_comment_or_empty(l))
        .flat_map(str::split_whitespace)
        .collect();
    let expected = "'SIGNAL [WAIT SIGNAL]...', e.g. '15 5 9'";
    let bad = || ConfigError::invalid(path, text.trim(), expected);
    if tokens.is_empty() || tokens.len().is_multiple_of(2) {
        return Err(bad());
    }
    let first = parse_signal(tokens[0]).ok_or_else(bad)?;
    let mut then = Vec::new();
    for pair in tokens[1..].chunks(2) {
        let wait: u32 = pair[0].parse().map_err(|_| bad())?;
        then.push((wait, parse_signal(pair[1]).ok_or_else(bad)?));
    }
    Ok(KillSeq { first, then })
}
