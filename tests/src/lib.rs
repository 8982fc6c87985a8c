//! Helpers for the root integration tests.
//!
//! Every test gets its own `VSERVER_ROOT` (a temporary directory removed at
//! the end) and unique guest names, and runs the `vserver` binary built by
//! `cargo build -p vserver` (or the one `VSERVER_BIN` names). The tests need
//! root; run as anyone else they fail and say so, they never skip.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// The `vserver` binary under test.
pub fn vserver_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("VSERVER_BIN") {
        return PathBuf::from(p);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let bin = target.join("debug/vserver");
    assert!(
        bin.exists(),
        "{} is missing: run 'cargo build -p vserver' first (or set VSERVER_BIN)",
        bin.display()
    );
    bin
}

/// Fails the test unless it runs as root.
pub fn require_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "this integration test needs root (CI runs as root): run it with sudo"
    );
}

/// Waits until `f` holds, at most `limit`; fails the test naming `what`.
pub fn wait_for(what: &str, limit: std::time::Duration, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while !f() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A unique guest name for this test process.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// One test's private prefix.
pub struct Env {
    root: tempfile::TempDir,
}

/// What a command did.
#[derive(Debug)]
pub struct Run {
    /// Exit code (`-1` if killed).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    fn from(o: Output) -> Self {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    /// Panics unless the command succeeded.
    #[track_caller]
    pub fn ok(self) -> Self {
        assert_eq!(self.code, 0, "command failed: {self:#?}");
        self
    }

    /// The error lines (`vserver: ...`, without warnings).
    pub fn errors(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| l.starts_with("vserver: ") && !l.starts_with("vserver: warning: "))
            .collect()
    }
}

impl Env {
    /// A new empty prefix; requires root.
    pub fn new() -> Self {
        require_root();
        Env {
            root: tempfile::Builder::new()
                .prefix("vserver-test-")
                .tempdir()
                .expect("create a temporary VSERVER_ROOT"),
        }
    }

    /// The prefix.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// A path below the prefix.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
    }

    /// `vserver ARGS` with this prefix.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(vserver_bin());
        c.args(args)
            .env("VSERVER_ROOT", self.root.path())
            .stdin(Stdio::null());
        c
    }

    /// Runs `vserver ARGS`.
    pub fn run(&self, args: &[&str]) -> Run {
        Run::from(self.command(args).output().expect("run vserver"))
    }

    /// Runs `vserver ARGS` with `input` on standard input.
    pub fn run_with_input(&self, args: &[&str], input: &str) -> Run {
        use std::io::Write;
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run vserver");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
        Run::from(child.wait_with_output().expect("wait for vserver"))
    }

    /// Every path below the prefix, relative, sorted (directories included).
    pub fn tree(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![self.root.path().to_owned()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).expect("read dir").flatten() {
                let p = e.path();
                out.push(
                    p.strip_prefix(self.root.path())
                        .expect("below root")
                        .display()
                        .to_string(),
                );
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(p);
                }
            }
        }
        out.sort();
        out
    }

    /// Writes `content` into the configuration file `rel` of guest `guest`.
    pub fn write_cfg(&self, guest: &str, rel: &str, content: &str) {
        let p = self.path(&format!("etc/vservers/{guest}/{rel}"));
        std::fs::create_dir_all(p.parent().expect("a parent")).expect("create config dir");
        std::fs::write(p, content).expect("write config file");
    }

    /// Everything on the host that would show a leak of guest `name`: its
    /// cgroups, processes in them, mounts of its tree, its state file, loop
    /// devices backed by its tree, a surviving monitor or exec broker.
    pub fn leftovers(&self, name: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![std::path::PathBuf::from("/sys/fs/cgroup")];
        while let Some(d) = stack.pop() {
            let Ok(entries) = fs::read_dir(&d) else {
                continue;
            };
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) && !e.file_type().unwrap().is_symlink() {
                    let p = e.path();
                    if e.file_name().to_string_lossy() == name {
                        out.push(format!("cgroup {}", p.display()));
                    }
                    stack.push(p);
                }
            }
        }
        let vdir = self.path(&format!("var/lib/vservers/{name}"));
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap();
        for l in mountinfo
            .lines()
            .filter(|l| l.contains(vdir.to_str().unwrap()))
        {
            out.push(format!("mount {l}"));
        }
        for p in fs::read_dir("/proc").unwrap().flatten() {
            if let Ok(cg) = fs::read_to_string(p.path().join("cgroup"))
                && cg.lines().any(|l| {
                    l.ends_with(&format!("/vserver/{name}"))
                        || l.contains(&format!("/vserver/{name}/"))
                })
            {
                out.push(format!("process {}", p.file_name().to_string_lossy()));
            }
        }
        if self
            .path(&format!("run/vservers/{name}/state.json"))
            .exists()
        {
            out.push("state.json".into());
        }
        // Loop devices backed by anything in the guest's tree.
        if let Ok(entries) = fs::read_dir("/sys/block") {
            for e in entries.flatten() {
                let backing = e.path().join("loop/backing_file");
                if let Ok(f) = fs::read_to_string(&backing)
                    && (f.contains(vdir.to_str().unwrap()) || f.contains(name))
                {
                    out.push(format!(
                        "loop {}: {}",
                        e.file_name().to_string_lossy(),
                        f.trim()
                    ));
                }
            }
        }
        // The guest's monitor and exec broker (a fork of it, same command
        // line), wherever their cgroup: `vserver:[NAME] --monitor NAME ...`.
        let monitor_arg = format!("\0--monitor\0{name}\0");
        for p in fs::read_dir("/proc").unwrap().flatten() {
            if let Ok(cmdline) = fs::read(p.path().join("cmdline")) {
                let cmdline = String::from_utf8_lossy(&cmdline);
                let zombie = fs::read_to_string(p.path().join("stat"))
                    .is_ok_and(|s| s[s.rfind(')').unwrap() + 2..].starts_with('Z'));
                if cmdline.contains(&monitor_arg) && !zombie {
                    out.push(format!(
                        "monitor or broker {}",
                        p.file_name().to_string_lossy()
                    ));
                }
            }
        }
        out
    }

    /// Runs `script` in a fresh network namespace with `lo` up, in the test's
    /// own root directory (its scratch files stay there); `$VS` is the
    /// vserver binary. Guests are stopped at the end whatever happens.
    pub fn in_netns(&self, guests: &[&str], script: &str) -> Run {
        let stops: String = guests
            .iter()
            .map(|g| format!("$VS {g} stop >/dev/null 2>&1; "))
            .collect();
        // Each waits at most 10 s: `ready FILE` until a server made FILE;
        // `listening PORT [NSENTER...]` until a TCP socket listens on PORT;
        // `own_netns PID` until PID is in a network namespace of its own.
        let full = format!(
            "set -u; trap '{stops}' EXIT; ip link set lo up\n\
             ready() {{ i=0; while [ ! -e \"$1\" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; }}\n\
             listening() {{ i=0; while ! ${{2:-}} ss -Hltn \"sport = :$1\" | grep -q . && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; }}\n\
             own_netns() {{ i=0; while [ \"$(readlink /proc/$1/ns/net)\" = \"$(readlink /proc/self/ns/net)\" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; }}\n\
             {script}"
        );
        let out = Command::new("unshare")
            .args(["-n", "sh", "-c", &full])
            .current_dir(self.root())
            .env("VSERVER_ROOT", self.root())
            .env("VS", vserver_bin())
            .output()
            .unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs `vserver GUEST exec CMD...`.
    pub fn exec(&self, guest: &str, cmd: &[&str]) -> Run {
        let mut args = vec![guest, "exec"];
        args.extend_from_slice(cmd);
        self.run(&args)
    }

    /// Paths below the prefix that hold anything of guest `name`.
    pub fn traces_of(&self, name: &str) -> Vec<String> {
        self.tree()
            .into_iter()
            .filter(|p| p.contains(name))
            .collect()
    }
}

impl Drop for Env {
    /// Stops the lxcfs instances VIRT_MEM guests of this prefix started
    /// (`<vdirbase>/.lxcfs`, and `.lxcfs-mntN` of other mount namespaces;
    /// pids in `DIR.pid`), so the prefix can go.
    fn drop(&mut self) {
        let base = self.path("var/lib/vservers");
        let Ok(entries) = std::fs::read_dir(&base) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(dir) = name
                .strip_suffix(".pid")
                .filter(|d| d.starts_with(".lxcfs"))
            else {
                continue;
            };
            let dir = base.join(dir);
            let mounted = std::fs::read_to_string("/proc/self/mountinfo")
                .map(|m| m.contains(&format!(" {} ", dir.display())))
                .unwrap_or(false);
            if mounted {
                let _ = Command::new("umount").arg("-l").arg(&dir).status();
            }
            if let Ok(pid) = std::fs::read_to_string(e.path())
                && let Ok(pid) = pid.trim().parse::<i32>()
            {
                // The lxcfs this test's guests started (its pid file is ours).
                let _ = Command::new("kill")
                    .arg(pid.to_string())
                    .stderr(std::process::Stdio::null())
                    .status();
            }
        }
    }
}

impl Default for Env {
    fn default() -> Self {
        Self::new()
    }
}

/// Stops a guest when dropped, so a failing test leaves nothing running.
pub struct Stopper<'a>(pub &'a Env, pub String);

impl Drop for Stopper<'_> {
    fn drop(&mut self) {
        let _ = self.0.run(&[&self.1, "stop"]);
    }
}

/// Runs `chroot ROOT ARGS` and returns its output.
pub fn chroot(root: &Path, args: &[&str]) -> Run {
    Run::from(
        Command::new("chroot")
            .arg(root)
            .args(args)
            .env_clear()
            .env("PATH", "/bin:/usr/bin:/sbin:/usr/sbin")
            .output()
            .expect("run chroot"),
    )
}
