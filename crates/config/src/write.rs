//! Writing a [`GuestConfig`] back into `/etc/vservers/NAME/`.
//!
//! Each modelled file is written when the field is set and removed when it
//! is not, so the directory says exactly what the value says; files the
//! model does not know are left alone. Files are replaced atomically
//! (written beside, then renamed).

use std::fs;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use crate::error::{ConfigError, Result};
use crate::model::*;
use crate::names::Named;

/// Writes `cfg` into `dir` (created if missing).
///
/// The value is first written to a scratch directory and read back: a value
/// that would not read back the same (a name with `..`, a limit whose soft
/// value is above its hard one ...) is refused with the reader's error and
/// `dir` is not touched.
pub fn write_guest(dir: &Path, cfg: &GuestConfig) -> Result<()> {
    check_dir_names(dir, cfg)?;
    let scratch = std::env::temp_dir().join(format!(
        ".vserver-cfg-check-{}-{}",
        std::process::id(),
        SCRATCH.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let checked = write_unchecked(&scratch, cfg).and_then(|()| crate::read::read_guest(&scratch));
    let _ = fs::remove_dir_all(&scratch);
    let (back, _) = checked.map_err(|e| rebase(e, &scratch, dir))?;
    if &back != cfg {
        return Err(ConfigError::Conflict {
            path: dir.to_owned(),
            message: "the configuration would not read back as written".into(),
        });
    }
    write_unchecked(dir, cfg)
}

/// The names `cfg` makes directories and files from (interfaces, dlimits,
/// hook `.d` scripts, netns interfaces) must be one plain path component:
/// checked before anything is written, even to the scratch directory.
fn check_dir_names(dir: &Path, cfg: &GuestConfig) -> Result<()> {
    let mut sets: Vec<(String, Vec<&String>)> = vec![
        ("interfaces".into(), cfg.interfaces.list.keys().collect()),
        ("dlimits".into(), cfg.dlimits.keys().collect()),
        (
            "netns/interfaces".into(),
            cfg.netns.iter().flat_map(|n| n.interfaces.keys()).collect(),
        ),
    ];
    for (hook, set) in &cfg.scripts {
        sets.push((
            format!("scripts/{}.d", hook.name()),
            set.dir.keys().collect(),
        ));
    }
    for (rel, names) in sets {
        for name in names {
            if !is_plain_component(name) {
                return Err(ConfigError::invalid(
                    dir.join(rel),
                    name,
                    "a plain file name: not empty, not '.' or '..', without '/' or control characters",
                ));
            }
        }
    }
    Ok(())
}

/// Whether `name` is one path component that stays in its directory.
pub(crate) fn is_plain_component(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.chars().any(char::is_control)
}

static SCRATCH: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Points an error about the scratch directory at the real one.
fn rebase(e: ConfigError, scratch: &Path, dir: &Path) -> ConfigError {
    let fix = |p: PathBuf| match p.strip_prefix(scratch) {
        Ok(rel) => dir.join(rel),
        Err(_) => p,
    };
    match e {
        ConfigError::Invalid {
            path,
            value,
            expected,
        } => ConfigError::Invalid {
            path: fix(path),
            value,
            expected,
        },
        ConfigError::UnknownName {
            path,
            kind,
            name,
            expected,
        } => ConfigError::UnknownName {
            path: fix(path),
            kind,
            name,
            expected,
        },
        ConfigError::Conflict { path, message } => ConfigError::Conflict {
            path: fix(path),
            message,
        },
        ConfigError::Missing { path, what } => ConfigError::Missing {
            path: fix(path),
            what,
        },
        ConfigError::Io { path, op, source } => ConfigError::Io {
            path: fix(path),
            op,
            source,
        },
        other => other,
    }
}

fn write_unchecked(dir: &Path, cfg: &GuestConfig) -> Result<()> {
    let w = Writer { dir };
    w.mkdir("")?;
    w.scalar("name", cfg.name.as_deref())?;
    w.scalar("context", cfg.context.map(|x| x.to_string()).as_deref())?;
    w.link("vdir", cfg.vdir.as_deref())?;
    w.link("run", cfg.run.as_deref())?;
    w.link("cache", cfg.cache.as_deref())?;
    let u = &cfg.uts;
    for (f, v) in [
        ("uts/nodename", &u.nodename),
        ("uts/domainname", &u.domainname),
        ("uts/sysname", &u.sysname),
        ("uts/release", &u.release),
        ("uts/version", &u.version),
        ("uts/machine", &u.machine),
    ] {
        w.scalar(f, v.as_deref())?;
    }
    w.interfaces(&cfg.interfaces)?;
    w.limits("rlimits", &cfg.rlimits, RlimitResource::ALL, |r| r.file())?;
    w.limits("ulimits", &cfg.ulimits, UlimitResource::ALL, |r| r.file())?;
    w.list("bcapabilities", &cfg.bcapabilities)?;
    w.list("ccapabilities", &cfg.ccapabilities)?;
    w.list("cflags", &cfg.cflags)?;
    w.remove("flags")?;
    w.list("nflags", &cfg.nflags)?;
    w.list("ncapabilities", &cfg.ncapabilities)?;
    w.file(
        "fstab",
        cfg.fstab.as_ref().map(|entries| {
            entries
                .iter()
                .map(|e| {
                    format!(
                        "{}\t{}\t{}\t{}\t{} {}\n",
                        e.spec, e.file, e.vfstype, e.options, e.freq, e.passno
                    )
                })
                .collect::<String>()
        }),
    )?;
    w.file(
        "personality",
        cfg.personality.as_ref().map(|p| {
            std::iter::once(p.kind.name())
                .chain(p.flags.iter().map(|f| f.name()))
                .map(|l| format!("{l}\n"))
                .collect::<String>()
        }),
    )?;
    w.scalar("nice", cfg.nice.map(|n| n.to_string()).as_deref())?;
    w.scalar("shell", cfg.shell.as_deref())?;
    w.init(&cfg.init)?;
    w.sched(&cfg.sched)?;
    w.cpuset(&cfg.cpuset)?;
    w.dlimits(&cfg.dlimits)?;
    w.cgroup_knobs(&cfg.cgroup)?;
    w.scripts(&cfg.scripts)?;
    w.flag("disabled", cfg.disabled)?;
    w.flag("privileged", cfg.privileged)?;
    w.scalar("uidmap", cfg.uidmap.map(|m| m.to_string()).as_deref())?;
    w.scalar("storage/type", cfg.storage.kind.map(|k| k.name()))?;
    w.scalar(
        "storage/size",
        cfg.storage.size.map(|n| n.to_string()).as_deref(),
    )?;
    w.remove_if_empty("storage")?;
    w.remove_if_empty("uts")?;
    w.remove_if_empty("interfaces")?;
    w.netns(cfg.netns.as_ref())?;
    Ok(())
}

struct Writer<'a> {
    dir: &'a Path,
}

fn lines<I: IntoIterator<Item = S>, S: AsRef<str>>(items: I) -> String {
    items
        .into_iter()
        .map(|s| format!("{}\n", s.as_ref()))
        .collect()
}

impl Writer<'_> {
    fn path(&self, rel: &str) -> PathBuf {
        if rel.is_empty() {
            self.dir.to_owned()
        } else {
            self.dir.join(rel)
        }
    }

    fn mkdir(&self, rel: &str) -> Result<()> {
        let p = self.path(rel);
        fs::create_dir_all(&p).map_err(|e| ConfigError::io(&p, "create directory", e))
    }

    fn remove(&self, rel: &str) -> Result<()> {
        let p = self.path(rel);
        match fs::symlink_metadata(&p) {
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(ConfigError::io(&p, "stat", e)),
            Ok(m) if m.is_dir() => {
                fs::remove_dir_all(&p).map_err(|e| ConfigError::io(&p, "remove", e))
            }
            Ok(_) => fs::remove_file(&p).map_err(|e| ConfigError::io(&p, "remove", e)),
        }
    }

    /// Writes `content` (or removes the file when `None`).
    fn file_mode(&self, rel: &str, content: Option<&[u8]>, mode: u32) -> Result<()> {
        let Some(content) = content else {
            return self.remove(rel);
        };
        let p = self.path(rel);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent)
                .map_err(|e| ConfigError::io(parent, "create directory", e))?;
        }
        let mut tmp_name = p.file_name().unwrap_or_default().to_owned();
        tmp_name.push(".~tmp~");
        let tmp = p.with_file_name(tmp_name);
        let result = (|| {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(content)?;
            f.set_permissions(fs::Permissions::from_mode(mode))?;
            fs::rename(&tmp, &p)
        })();
        result.map_err(|e| {
            let _ = fs::remove_file(&tmp);
            ConfigError::io(&p, "write", e)
        })
    }

    fn file(&self, rel: &str, content: Option<String>) -> Result<()> {
        self.file_mode(rel, content.as_deref().map(str::as_bytes), 0o644)
    }

    fn scalar(&self, rel: &str, value: Option<&str>) -> Result<()> {
        if let Some(v) = value
            && v.contains('\n')
        {
            return Err(ConfigError::invalid(self.path(rel), v, "a single line"));
        }
        self.file(rel, value.map(|v| format!("{v}\n")))
    }

    fn flag(&self, rel: &str, on: bool) -> Result<()> {
        self.file(rel, on.then(String::new))
    }

    fn link(&self, rel: &str, target: Option<&Path>) -> Result<()> {
        self.remove(rel)?;
        if let Some(t) = target {
            let p = self.path(rel);
            symlink(t, &p).map_err(|e| ConfigError::io(&p, "create link", e))?;
        }
        Ok(())
    }

    fn list<T: Named + std::fmt::Display>(&self, rel: &str, items: &[ListItem<T>]) -> Result<()> {
        let content = (!items.is_empty()).then(|| {
            lines(items.iter().map(|i| {
                let body = match i.value {
                    ListValue::Name(n) => n.to_string(),
                    ListValue::All => "all".to_owned(),
                    ListValue::None => "none".to_owned(),
                };
                if i.clear { format!("~{body}") } else { body }
            }))
        });
        self.file(rel, content)
    }

    /// Removes subdirectories of `rel` that `keep` does not name.
    fn prune_dirs<'k>(&self, rel: &str, keep: impl Iterator<Item = &'k String>) -> Result<()> {
        let keep: Vec<&String> = keep.collect();
        let p = self.path(rel);
        let entries = match fs::read_dir(&p) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(ConfigError::io(&p, "read directory", e)),
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) && !keep.contains(&&name) {
                self.remove(&format!("{rel}/{name}"))?;
            }
        }
        Ok(())
    }

    fn interfaces(&self, ifs: &Interfaces) -> Result<()> {
        let s = |v: Option<String>| v;
        self.scalar("interfaces/dev", ifs.dev.as_deref())?;
        self.scalar(
            "interfaces/prefix",
            s(ifs.prefix.map(|p| p.to_string())).as_deref(),
        )?;
        self.scalar(
            "interfaces/mask",
            s(ifs.mask.map(|m| m.to_string())).as_deref(),
        )?;
        self.scalar(
            "interfaces/bcast",
            s(ifs.bcast.map(|m| m.to_string())).as_deref(),
        )?;
        self.scalar("interfaces/scope", ifs.scope.as_deref())?;
        self.scalar(
            "interfaces/lback",
            s(ifs.lback.map(|m| m.to_string())).as_deref(),
        )?;
        self.flag("interfaces/vlandev", ifs.vlandev)?;
        self.flag("interfaces/novlandev", ifs.novlandev)?;
        self.prune_dirs("interfaces", ifs.list.keys())?;
        for (name, i) in &ifs.list {
            let b = format!("interfaces/{name}");
            self.scalar(&format!("{b}/ip"), Some(&i.ip.to_string()))?;
            self.scalar(
                &format!("{b}/prefix"),
                i.prefix.map(|p| p.to_string()).as_deref(),
            )?;
            self.scalar(
                &format!("{b}/mask"),
                i.mask.map(|p| p.to_string()).as_deref(),
            )?;
            self.scalar(&format!("{b}/dev"), i.dev.as_deref())?;
            self.scalar(&format!("{b}/name"), i.name.as_deref())?;
            self.flag(&format!("{b}/nodev"), i.nodev)?;
            self.remove(&format!("{b}/only_ip"))?;
            self.flag(&format!("{b}/disabled"), i.disabled)?;
            self.flag(&format!("{b}/down"), i.down)?;
            self.scalar(
                &format!("{b}/bcast"),
                i.bcast.map(|p| p.to_string()).as_deref(),
            )?;
            self.scalar(&format!("{b}/scope"), i.scope.as_deref())?;
            self.scalar(
                &format!("{b}/peer"),
                i.peer.map(|p| p.to_string()).as_deref(),
            )?;
            self.flag(&format!("{b}/vlandev"), i.vlandev)?;
            self.flag(&format!("{b}/novlandev"), i.novlandev)?;
        }
        Ok(())
    }

    fn limits<R: Ord + Copy>(
        &self,
        dir: &str,
        map: &std::collections::BTreeMap<R, LimitSet>,
        all: &[R],
        file: fn(R) -> &'static str,
    ) -> Result<()> {
        for r in all {
            let set = map.get(r).copied().unwrap_or_default();
            let base = format!("{dir}/{}", file(*r));
            self.scalar(&base, set.all.map(|v| v.to_string()).as_deref())?;
            self.scalar(
                &format!("{base}.hard"),
                set.hard.map(|v| v.to_string()).as_deref(),
            )?;
            self.scalar(
                &format!("{base}.soft"),
                set.soft.map(|v| v.to_string()).as_deref(),
            )?;
            self.scalar(
                &format!("{base}.min"),
                set.min.map(|v| v.to_string()).as_deref(),
            )?;
        }
        self.remove_if_empty(dir)
    }

    fn remove_if_empty(&self, rel: &str) -> Result<()> {
        let p = self.path(rel);
        let empty = fs::read_dir(&p).is_ok_and(|mut it| it.next().is_none());
        if empty {
            fs::remove_dir(&p).map_err(|e| ConfigError::io(&p, "remove", e))?;
        }
        Ok(())
    }

    fn init(&self, i: &InitConfig) -> Result<()> {
        self.scalar("apps/init/style", i.style.map(|s| s.name()))?;
        self.scalar("apps/init/runlevel", i.runlevel.as_deref())?;
        self.scalar("apps/init/runlevel.start", i.runlevel_start.as_deref())?;
        self.scalar("apps/init/runlevel.stop", i.runlevel_stop.as_deref())?;
        self.scalar(
            "apps/init/killseq",
            i.killseq
                .as_ref()
                .map(|k| {
                    let mut s = k.first.to_string();
                    for (wait, sig) in &k.then {
                        s.push_str(&format!(" {wait} {sig}"));
                    }
                    s
                })
                .as_deref(),
        )?;
        for (rel, argv) in [
            ("apps/init/cmd.start", &i.cmd_start),
            ("apps/init/cmd.stop", &i.cmd_stop),
        ] {
            if let Some(a) = argv
                && a.iter()
                    .any(|x| x.contains('\n') || x.is_empty() || x.trim_start().starts_with('#'))
            {
                return Err(ConfigError::invalid(
                    self.path(rel),
                    &a.join(" "),
                    "arguments that are not empty, have no newline and do not start with '#'",
                ));
            }
            self.file(rel, argv.as_ref().map(lines))?;
        }
        self.file(
            "apps/init/mark",
            (!i.mark.is_empty()).then(|| lines(&i.mark)),
        )?;
        self.file(
            "apps/init/depends",
            (!i.depends.is_empty()).then(|| lines(&i.depends)),
        )?;
        self.file(
            "apps/init/environment",
            i.environment
                .as_ref()
                .map(|env| lines(env.iter().map(|(k, v)| format!("{k}={v}")))),
        )?;
        self.remove_if_empty("apps/init")?;
        self.remove_if_empty("apps")
    }

    fn sched(&self, s: &Sched) -> Result<()> {
        let n = |v: Option<u64>| v.map(|x| x.to_string());
        self.scalar("sched/fill-rate", n(s.fill_rate).as_deref())?;
        self.scalar("sched/interval", n(s.interval).as_deref())?;
        self.scalar("sched/tokens", n(s.tokens).as_deref())?;
        self.scalar("sched/tokens-min", n(s.tokens_min).as_deref())?;
        self.scalar("sched/tokens-max", n(s.tokens_max).as_deref())?;
        self.scalar(
            "sched/priority-bias",
            s.priority_bias.map(|x| x.to_string()).as_deref(),
        )?;
        self.scalar("sched/fill-rate2", n(s.fill_rate2).as_deref())?;
        self.scalar("sched/interval2", n(s.interval2).as_deref())?;
        self.flag("sched/idle-time", s.idle_time)?;
        self.remove_if_empty("sched")
    }

    fn cpuset(&self, c: &Cpuset) -> Result<()> {
        self.scalar("cpuset/name", c.name.as_deref())?;
        self.scalar("cpuset/cpus", c.cpus.as_deref())?;
        self.scalar("cpuset/mems", c.mems.as_deref())?;
        self.scalar("cpuset/cpu_exclusive", c.cpu_exclusive.then_some("1"))?;
        self.scalar("cpuset/mem_exclusive", c.mem_exclusive.then_some("1"))?;
        self.flag("cpuset/virtualized", c.virtualized)?;
        self.flag("cpuset/nocreate", c.nocreate)?;
        self.remove_if_empty("cpuset")
    }

    fn dlimits(&self, d: &std::collections::BTreeMap<String, Dlimit>) -> Result<()> {
        self.prune_dirs("dlimits", d.keys())?;
        for (name, l) in d {
            let b = format!("dlimits/{name}");
            self.scalar(&format!("{b}/directory"), Some(&l.directory))?;
            self.scalar(
                &format!("{b}/space_total"),
                Some(&l.space_total.to_string()),
            )?;
            self.scalar(
                &format!("{b}/inodes_total"),
                Some(&l.inodes_total.to_string()),
            )?;
            self.scalar(&format!("{b}/reserved"), Some(&l.reserved.to_string()))?;
            self.flag(&format!("{b}/disabled"), l.disabled)?;
        }
        self.remove_if_empty("dlimits")
    }

    /// `cgroup/<knob>` for each knob; other knob files go (`name` stays).
    fn cgroup_knobs(&self, knobs: &std::collections::BTreeMap<String, String>) -> Result<()> {
        if let Ok(entries) = fs::read_dir(self.path("cgroup")) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name != "name" && !knobs.contains_key(&name) {
                    self.remove(&format!("cgroup/{name}"))?;
                }
            }
        }
        for (name, value) in knobs {
            self.scalar(&format!("cgroup/{name}"), Some(value))?;
        }
        self.remove_if_empty("cgroup")
    }

    fn script(&self, rel: &str, s: Option<&Script>) -> Result<()> {
        let mode = if s.is_some_and(|s| s.executable) {
            0o755
        } else {
            0o644
        };
        self.file_mode(rel, s.map(|s| s.content.as_slice()), mode)
    }

    fn scripts(&self, scripts: &std::collections::BTreeMap<Hook, HookScripts>) -> Result<()> {
        for hook in Hook::ALL {
            let set = scripts.get(hook);
            let main = format!("scripts/{}", hook.name());
            self.script(&main, set.and_then(|s| s.main.as_ref()))?;
            let d = format!("{main}.d");
            match set.filter(|s| !s.dir.is_empty()) {
                None => self.remove(&d)?,
                Some(s) => {
                    self.remove(&d)?;
                    for (name, script) in &s.dir {
                        self.script(&format!("{d}/{name}"), Some(script))?;
                    }
                }
            }
        }
        self.remove_if_empty("scripts")
    }

    fn netns(&self, ns: Option<&Netns>) -> Result<()> {
        let Some(ns) = ns else {
            return self.remove("netns");
        };
        self.mkdir("netns")?;
        self.scalar("netns/name", ns.name.as_deref())?;
        self.flag("netns/shared", ns.shared)?;
        self.scalar("netns/bridge", ns.bridge.as_deref())?;
        self.scalar(
            "netns/gateway",
            ns.gateway.map(|g| g.to_string()).as_deref(),
        )?;
        self.flag("netns/nat", ns.nat)?;
        self.prune_dirs("netns/interfaces", ns.interfaces.keys())?;
        for (name, i) in &ns.interfaces {
            let b = format!("netns/interfaces/{name}");
            self.mkdir(&b)?;
            self.scalar(&format!("{b}/host"), i.host.as_deref())?;
            self.scalar(&format!("{b}/guest"), i.guest.as_deref())?;
            self.scalar(&format!("{b}/type"), i.kind.as_deref())?;
        }
        self.remove_if_empty("netns/interfaces")
    }
}
