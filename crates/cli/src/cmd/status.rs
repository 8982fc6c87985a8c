//! `vserver NAME status` and `vserver NAME running`.

use std::process::ExitCode;
use std::time::Duration;

use vs_config::{GuestName, GuestSpec, Paths};
use vs_runtime::Status;

use crate::exit::{Exit, NO_GUEST, STOPPED};

/// Fails with util-vserver's exit code 5 unless guest `name` is configured.
pub fn require_guest(paths: &Paths, name: &GuestName) -> anyhow::Result<()> {
    let dir = paths.guest_cfg(name);
    if !dir.is_dir() {
        return Err(Exit::error(
            NO_GUEST,
            format!("no guest '{name}' ({} does not exist)", dir.display()),
        ));
    }
    Ok(())
}

/// util-vserver's uptime wording: `1d 02h 03m 04s`, leading zero units left out.
pub fn format_uptime(d: Duration) -> String {
    let s = d.as_secs();
    let (days, h, m, sec) = (s / 86400, s / 3600 % 24, s / 60 % 60, s % 60);
    if days > 0 {
        format!("{days}d {h:02}h {m:02}m {sec:02}s")
    } else if h > 0 {
        format!("{h}h {m:02}m {sec:02}s")
    } else if m > 0 {
        format!("{m}m {sec:02}s")
    } else {
        format!("{sec}s")
    }
}

/// Counts the processes of a running guest: every process whose pid
/// namespace is the init's.
fn process_count(init_pid: i32) -> usize {
    let Ok(ns) = std::fs::read_link(format!("/proc/{init_pid}/ns/pid")) else {
        return 0;
    };
    std::fs::read_dir("/proc")
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
                .filter(|e| std::fs::read_link(e.path().join("ns/pid")).is_ok_and(|l| l == ns))
                .count()
        })
        .unwrap_or(0)
}

/// Loads and checks a guest's configuration, printing its warnings.
pub fn load(paths: &Paths, name: &GuestName) -> anyhow::Result<GuestSpec> {
    require_guest(paths, name)?;
    let spec = GuestSpec::load(paths, name)?;
    crate::output::warnings(&spec.warnings);
    Ok(spec)
}

/// `status`: util-vserver's text; exit 0 running, 3 stopped. The
/// configuration is read and checked too: a malformed file is an error.
pub fn status(paths: &Paths, name: &GuestName) -> anyhow::Result<ExitCode> {
    load(paths, name)?;
    match vs_runtime::status(paths, name)? {
        Status::Stopped => {
            println!("Vserver '{name}' is stopped");
            Ok(ExitCode::from(STOPPED))
        }
        Status::Running { state, uptime } => {
            println!("Vserver '{name}' is running at context '{}'", state.context);
            println!("Number of processes: {}", process_count(state.init_pid));
            println!("Uptime: {}", format_uptime(uptime));
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `running`: silent; exit 0 running, 1 not.
pub fn running(paths: &Paths, name: &GuestName) -> anyhow::Result<ExitCode> {
    require_guest(paths, name)?;
    Ok(if vs_runtime::status(paths, name)?.is_running() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptimes() {
        assert_eq!(format_uptime(Duration::from_secs(5)), "5s");
        assert_eq!(format_uptime(Duration::from_secs(65)), "1m 05s");
        assert_eq!(
            format_uptime(Duration::from_secs(3 * 3600 + 61)),
            "3h 01m 01s"
        );
        assert_eq!(
            format_uptime(Duration::from_secs(86400 + 1)),
            "1d 00h 00m 01s"
        );
    }
}
