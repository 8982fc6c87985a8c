//! `ps`, `kill` and `wait`: a guest's processes from the host.

use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use clap::Args;
use vs_config::values::parse_signal;
use vs_config::{GuestName, Paths};
use vs_runtime::procs;

use crate::cmd::status::load;
use crate::exit::{Exit, USAGE};

/// `ps` options.
#[derive(Debug, Args)]
pub struct PsArgs {
    /// Options for ps(1) (default -ef)
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "PS-OPTIONS"
    )]
    options: Vec<String>,
}

/// `kill` options.
#[derive(Debug, Args)]
pub struct KillArgs {
    /// Signal name or number (default TERM)
    #[arg(
        short = 's',
        long = "signal",
        value_name = "SIG",
        default_value = "TERM"
    )]
    signal: String,
    /// Pids inside the guest (default: every process, init first)
    #[arg(value_name = "PID")]
    pids: Vec<i32>,
}

/// `wait` options.
#[derive(Debug, Args)]
pub struct WaitArgs {
    /// Give up after S seconds (exit 2)
    #[arg(long, value_name = "S")]
    timeout: Option<f64>,
}

/// Inserts util-vserver's 20-column `CONTEXT` field after `PID`.
fn with_context_column(ps_output: &str, keep: &[i32], context: &str) -> String {
    let mut lines = ps_output.lines();
    let Some(header) = lines.next() else {
        return String::new();
    };
    let cols: Vec<&str> = header.split_whitespace().collect();
    let Some(idx) = cols.iter().position(|c| *c == "PID") else {
        return ps_output.to_owned();
    };
    // The PID column ends where its header ends (ps right-aligns it).
    let end = header.find("PID").map_or(0, |p| p + 3);
    let mut out = format!("{} {:<20}{}\n", &header[..end], "CONTEXT", &header[end..]);
    for l in lines {
        let Some(pid) = l
            .split_whitespace()
            .nth(idx)
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        if keep.contains(&pid) && l.len() >= end {
            out.push_str(&format!("{} {:<20}{}\n", &l[..end], context, &l[end..]));
        }
    }
    out
}

/// `ps`: ps(1) of the host, only the guest's processes, with `CONTEXT`.
pub fn ps(paths: &Paths, name: &GuestName, a: PsArgs) -> anyhow::Result<ExitCode> {
    let spec = load(paths, name)?;
    let pids: Vec<i32> = procs::list(paths, name)?
        .iter()
        .map(|p| p.host_pid)
        .collect();
    let opts = if a.options.is_empty() {
        vec!["-ef".to_string()]
    } else {
        a.options
    };
    let out = Command::new("ps").args(&opts).output()?;
    if !out.status.success() {
        anyhow::bail!(
            "ps {}: {}",
            opts.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let context: String = format!("{} {}", spec.context, name)
        .chars()
        .take(20)
        .collect();
    print!(
        "{}",
        with_context_column(&String::from_utf8_lossy(&out.stdout), &pids, &context)
    );
    Ok(ExitCode::SUCCESS)
}

/// `kill`: signal guest processes by their pid inside the guest.
pub fn kill(paths: &Paths, name: &GuestName, a: KillArgs) -> anyhow::Result<ExitCode> {
    load(paths, name)?;
    let sig = parse_signal(&a.signal).ok_or_else(|| {
        Exit::error(
            USAGE,
            format!("-s '{}': not a signal name or number", a.signal),
        )
    })?;
    if !vs_runtime::status(paths, name)?.is_running() {
        anyhow::bail!("guest '{name}' is not running");
    }
    let mut list = procs::list(paths, name)?;
    // Init first, then the rest (util-vserver's killContext order).
    list.sort_by_key(|p| (p.guest_pid != 1, p.host_pid));
    let targets: Vec<i32> = if a.pids.is_empty() {
        list.iter().map(|p| p.host_pid).collect()
    } else {
        let mut t = Vec::new();
        for want in &a.pids {
            let p = list
                .iter()
                .find(|p| p.guest_pid == *want)
                .ok_or_else(|| anyhow::anyhow!("guest '{name}' has no process {want}"))?;
            t.push(p.host_pid);
        }
        t
    };
    let cg = vs_runtime::monitor::find_cgroup(paths, name)?
        .ok_or_else(|| anyhow::anyhow!("guest '{name}' has no cgroup"))?;
    // Init first, then the rest; each one only if it is still the guest's.
    for pid in targets {
        cg.signal(sig, &[pid])?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `wait`: until the guest has stopped (exit 0), or the timeout (exit 2).
pub fn wait(paths: &Paths, name: &GuestName, a: WaitArgs) -> anyhow::Result<ExitCode> {
    load(paths, name)?;
    let deadline = a
        .timeout
        .map(|t| Instant::now() + Duration::from_secs_f64(t.max(0.0)));
    while vs_runtime::status(paths, name)?.is_running() {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            eprintln!("vserver: guest '{name}' still running after the timeout");
            return Ok(ExitCode::from(2));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_column_goes_after_pid() {
        let ps = "UID          PID    PPID  C STIME TTY          TIME CMD\nroot           1       0  0 10:00 ?        00:00:01 init\nroot          77       1  0 10:00 ?        00:00:00 sleep 9\n";
        let out = with_context_column(ps, &[77], "42 demo");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(
            lines[0],
            "UID          PID CONTEXT                 PPID  C STIME TTY          TIME CMD"
        );
        assert_eq!(
            lines[1],
            "root          77 42 demo                    1  0 10:00 ?        00:00:00 sleep 9"
        );
    }
}
