//! `vserver-stat` (also `vserver stat`): util-vserver's table of running
//! contexts, the host first as context 0 `root server`.

use std::collections::HashSet;
use std::path::Path;
use std::process::ExitCode;

use vs_config::Paths;

use crate::format::{STAT_HEADER, StatRow, stat_row};

/// What `/proc/PID/stat` says of one process.
#[derive(Debug, Default, Clone, Copy)]
struct ProcStat {
    /// utime + stime + cutime + cstime, split: user and system ticks.
    user_ticks: u64,
    sys_ticks: u64,
    start_ticks: u64,
    vsize: u64,
    rss_pages: u64,
}

fn proc_stat(pid: i32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After ')': state is field 3, so field N is f[N - 3].
    let n = |i: usize| {
        f.get(i - 3)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Some(ProcStat {
        user_ticks: n(14) + n(16),
        sys_ticks: n(15) + n(17),
        start_ticks: n(22),
        vsize: n(23),
        rss_pages: n(24),
    })
}

fn all_pids() -> Vec<i32> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
                .collect()
        })
        .unwrap_or_default()
}

fn system_uptime_ms() -> u64 {
    std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0, |s| (s * 1000.0) as u64)
}

struct Totals {
    processes: u64,
    vsz: u64,
    rss: u64,
    user_ms: u64,
    sys_ms: u64,
    oldest_start_ms: u64,
}

fn totals(pids: &[i32], hz: u64, page: u64) -> Totals {
    let mut t = Totals {
        processes: 0,
        vsz: 0,
        rss: 0,
        user_ms: 0,
        sys_ms: 0,
        oldest_start_ms: u64::MAX,
    };
    for p in pids {
        if let Some(s) = proc_stat(*p) {
            t.processes += 1;
            t.vsz += s.vsize;
            t.rss += s.rss_pages * page;
            t.user_ms += s.user_ticks * 1000 / hz;
            t.sys_ms += s.sys_ticks * 1000 / hz;
            t.oldest_start_ms = t.oldest_start_ms.min(s.start_ticks * 1000 / hz);
        }
    }
    t
}

/// The rows: the host (context 0) and each running guest.
pub fn rows(paths: &Paths) -> anyhow::Result<Vec<StatRow>> {
    let hz = rustix::param::clock_ticks_per_second();
    let page = vs_config::values::page_size();
    let uptime = system_uptime_ms();
    let mut guest_rows = Vec::new();
    let mut in_guests = HashSet::new();
    for name in paths.guests()? {
        let Ok(status) = vs_runtime::status(paths, &name) else {
            continue;
        };
        let vs_runtime::Status::Running { state, uptime: up } = status else {
            continue;
        };
        let pids: Vec<i32> = vs_runtime::procs::list(paths, &name)?
            .iter()
            .map(|p| p.host_pid)
            .collect();
        in_guests.extend(pids.iter().copied());
        let t = totals(&pids, hz, page);
        let stats = vs_runtime::limits::stats(paths, &name).ok().flatten();
        guest_rows.push(StatRow {
            ctx: state.context.get(),
            processes: t.processes,
            vsz: t.vsz,
            rss: stats.as_ref().and_then(|s| s.rss_bytes).unwrap_or(t.rss),
            user_ms: stats.as_ref().and_then(|s| s.user_ms).unwrap_or(t.user_ms),
            sys_ms: stats.as_ref().and_then(|s| s.sys_ms).unwrap_or(t.sys_ms),
            uptime_ms: up.as_millis() as u64,
            name: name.to_string(),
        });
    }
    let host_pids: Vec<i32> = all_pids()
        .into_iter()
        .filter(|p| !in_guests.contains(p) && *p != std::process::id() as i32)
        .collect();
    let h = totals(&host_pids, hz, page);
    let mut out = vec![StatRow {
        ctx: 0,
        processes: h.processes,
        vsz: h.vsz,
        rss: h.rss,
        user_ms: h.user_ms,
        sys_ms: h.sys_ms,
        uptime_ms: uptime.saturating_sub(if h.oldest_start_ms == u64::MAX {
            uptime
        } else {
            h.oldest_start_ms
        }),
        name: "root server".into(),
    }];
    guest_rows.sort_by_key(|r| r.ctx);
    out.extend(guest_rows);
    Ok(out)
}

/// Prints the table.
pub fn run(paths: &Paths) -> anyhow::Result<ExitCode> {
    println!("{STAT_HEADER}");
    for r in rows(paths)? {
        println!("{}", stat_row(&r));
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether a path names this program as `vserver-stat`.
pub fn is_stat_name(argv0: &str) -> bool {
    Path::new(argv0)
        .file_name()
        .is_some_and(|n| n == "vserver-stat")
}

/// `vserver NAME stats [--json]`: limits and figures of one guest.
pub fn stats(paths: &Paths, name: &vs_config::GuestName, json: bool) -> anyhow::Result<ExitCode> {
    let spec = crate::cmd::status::load(paths, name)?;
    let figures = vs_runtime::limits::figures(paths, &spec)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&figures)?);
    } else {
        let v = serde_json::to_value(&figures)?;
        if let Some(map) = v.as_object() {
            for (k, val) in map {
                println!("{k}: {val}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
