//! The busybox method: the host's static busybox, its applet links, the
//! account files and an `/etc/init.d/rc` for the sysv init style.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path};
use std::process::{Command, Stdio};

use vs_sys::root::RootDir;

use crate::{Error, Result};

const PACKAGE: &str = "busybox-static";

fn missing(path: &Path, problem: &str) -> Error {
    Error::MissingTool {
        what: format!("{}: {problem}", path.display()),
        package: PACKAGE,
    }
}

/// Checks that `path` is an executable, statically linked ELF file.
pub(super) fn check(path: &Path) -> Result<()> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Err(missing(path, "not found")),
        Err(e) => return Err(Error::io(path, "open", e)),
    };
    let meta = file.metadata().map_err(|e| Error::io(path, "stat", e))?;
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return Err(missing(path, "not an executable file"));
    }
    // Program headers sit near the start of any sane executable.
    let mut head = Vec::new();
    file.by_ref()
        .take(64 * 1024)
        .read_to_end(&mut head)
        .map_err(|e| Error::io(path, "read", e))?;
    match elf_is_static(&head) {
        Some(true) => Ok(()),
        Some(false) => Err(missing(path, "not a static executable")),
        None => Err(missing(path, "not an ELF executable")),
    }
}

/// Whether the ELF image starting with `head` is statically linked, i.e. has
/// no `PT_INTERP` program header (a static-pie has `PT_DYNAMIC` but no
/// interpreter). `None` if it is not a readable ELF executable.
///
/// Hand-written: a few dozen lines against a parser crate (goblin, object)
/// that the workspace does not otherwise need.
fn elf_is_static(head: &[u8]) -> Option<bool> {
    const PT_INTERP: u32 = 3;
    if head.len() < 52 || &head[..4] != b"\x7fELF" {
        return None;
    }
    let is64 = match head[4] {
        1 => false,
        2 => true,
        _ => return None,
    };
    let le = match head[5] {
        1 => true,
        2 => false,
        _ => return None,
    };
    let u16_at = |o: usize| -> Option<u16> {
        let b: [u8; 2] = head.get(o..o + 2)?.try_into().ok()?;
        Some(if le {
            u16::from_le_bytes(b)
        } else {
            u16::from_be_bytes(b)
        })
    };
    let u32_at = |o: usize| -> Option<u32> {
        let b: [u8; 4] = head.get(o..o + 4)?.try_into().ok()?;
        Some(if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    };
    let u64_at = |o: usize| -> Option<u64> {
        let b: [u8; 8] = head.get(o..o + 8)?.try_into().ok()?;
        Some(if le {
            u64::from_le_bytes(b)
        } else {
            u64::from_be_bytes(b)
        })
    };
    // e_type: ET_EXEC or ET_DYN
    if !matches!(u16_at(16)?, 2 | 3) {
        return None;
    }
    let (phoff, phentsize, phnum) = if is64 {
        (u64_at(32)?, u16_at(54)?, u16_at(56)?)
    } else {
        (u64::from(u32_at(28)?), u16_at(42)?, u16_at(44)?)
    };
    for i in 0..u64::from(phnum) {
        let off = phoff.checked_add(i.checked_mul(u64::from(phentsize))?)?;
        if u32_at(usize::try_from(off).ok()?)? == PT_INTERP {
            return Some(false);
        }
    }
    Some(true)
}

/// The guest's `/etc/init.d/rc`, run by the sysv init style as
/// `/etc/init.d/rc RUNLEVEL`.
const RC_SCRIPT: &str = r#"#!/bin/sh
# /etc/init.d/rc RUNLEVEL: start or stop the guest's services.
# Written by "vserver NAME build -m busybox". Runlevels 0 and 6 run
# /etc/rcN.d/K* with "stop" (or, if there are none, every /etc/init.d
# service in reverse order); other runlevels run /etc/rcN.d/S* with "start".
PATH=/sbin:/bin:/usr/sbin:/usr/bin
export PATH
runlevel="${1:-3}"
mkdir -p /run
echo "$runlevel" > /run/runlevel

case "$runlevel" in
0|6)
    ran=
    for script in "/etc/rc$runlevel.d"/K*; do
        [ -x "$script" ] || continue
        ran=1
        "$script" stop
    done
    if [ -z "$ran" ]; then
        services=
        for script in /etc/init.d/*; do
            [ "$script" = /etc/init.d/rc ] && continue
            [ -x "$script" ] || continue
            services="$script $services"
        done
        for script in $services; do
            "$script" stop
        done
    fi
    ;;
*)
    if command -v syslogd >/dev/null 2>&1; then
        syslogd
    fi
    for script in "/etc/rc$runlevel.d"/S*; do
        [ -x "$script" ] || continue
        "$script" start
    done
    ;;
esac
exit 0
"#;

/// Installs busybox and the base files into the skeleton at `rd`.
pub(super) fn install(
    rd: &RootDir,
    busybox: &Path,
    hostname: &str,
    progress: &mut dyn FnMut(&str),
) -> Result<()> {
    progress(&format!("copying {}", busybox.display()));
    let mut file = File::open(busybox).map_err(|e| Error::io(busybox, "open", e))?;
    rd.write_file_from("bin/busybox", &mut file, 0o755, None)?;

    // The list comes from the host's binary: nothing inside the guest is
    // ever run on the host.
    let out = Command::new(busybox)
        .arg("--list-full")
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| Error::io(busybox, "run --list-full", e))?;
    if !out.status.success() {
        return Err(Error::CommandFailed {
            command: format!("{} --list-full", busybox.display()),
            status: out.status.to_string(),
            tail: String::new(),
        });
    }
    let list = String::from_utf8_lossy(&out.stdout);
    let mut links = 0;
    for applet in list.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let path = Path::new(applet);
        if applet == "bin/busybox" || !path.components().all(|c| matches!(c, Component::Normal(_)))
        {
            continue;
        }
        if let Some(parent) = path.parent() {
            rd.mkdir_all(parent, 0o755)?;
        }
        if !rd.exists(path)? {
            rd.symlink("/bin/busybox", path)?;
            links += 1;
        }
    }
    progress(&format!("linked {links} busybox applets"));

    progress("writing /etc");
    rd.write_file(
        "etc/passwd",
        b"root:x:0:0:root:/root:/bin/sh\n\
          nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        0o644,
    )?;
    rd.write_file(
        "etc/group",
        b"root:x:0:\ntty:x:5:\nnogroup:x:65534:\n",
        0o644,
    )?;
    rd.write_file("etc/shadow", b"root:!:::::::\nnobody:!:::::::\n", 0o640)?;
    let mut hosts = String::from("127.0.0.1\tlocalhost\n");
    if !hostname.is_empty() {
        hosts.push_str(&format!("127.0.1.1\t{hostname}\n"));
    }
    hosts.push_str("::1\tlocalhost ip6-localhost ip6-loopback\n");
    rd.write_file("etc/hosts", hosts.as_bytes(), 0o644)?;
    for dir in ["etc/init.d", "etc/rc0.d", "etc/rc3.d", "etc/rc6.d"] {
        rd.mkdir_all(dir, 0o755)?;
    }
    rd.write_file("etc/init.d/rc", RC_SCRIPT.as_bytes(), 0o755)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elf_detection() {
        assert_eq!(elf_is_static(b"#!/bin/sh\n"), None);
        let sh = std::fs::read("/bin/sh").unwrap();
        assert_eq!(elf_is_static(&sh), Some(false), "/bin/sh is dynamic");
    }

    #[test]
    fn check_rejects_dynamic_and_missing() {
        let err = check(Path::new("/bin/sh")).unwrap_err().to_string();
        assert!(err.contains("not a static executable"), "{err}");
        assert!(err.contains("busybox-static"), "{err}");
        let err = check(Path::new("/nonexistent/busybox"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "/nonexistent/busybox: not found: install the Debian package busybox-static"
        );
    }
}
