//! `vserver list [--json]`: every configured guest.

use std::process::ExitCode;

use serde::Serialize;
use vs_config::{GuestName, GuestSpec, Paths};

/// One guest as `list` shows it.
#[derive(Debug, Serialize)]
struct Entry {
    name: GuestName,
    /// `running`, `stopped` or `error`.
    state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    context: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hostname: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    vdir: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    privileged: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    init_style: Option<&'static str>,
    addresses: Vec<String>,
    disabled: bool,
    /// Limits in force and figures (running guests).
    #[serde(skip_serializing_if = "Option::is_none")]
    limits: Option<vs_cgroup::CurrentLimits>,
    /// Use, maxima, hits, throttling (running guests).
    #[serde(skip_serializing_if = "Option::is_none")]
    stats: Option<vs_cgroup::Stats>,
    /// Network traffic (running private-mode guests).
    #[serde(skip_serializing_if = "Option::is_none")]
    network: Option<vs_runtime::limits::NetCounters>,
    /// vserver-stat's VSZ, bytes (running guests).
    #[serde(skip_serializing_if = "Option::is_none")]
    vsz_bytes: Option<u64>,
    /// vserver-stat's UPTIME, ms (running guests).
    #[serde(skip_serializing_if = "Option::is_none")]
    uptime_ms: Option<u64>,
    /// Why the configuration could not be read (state `error`).
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

fn entry(paths: &Paths, name: GuestName) -> Entry {
    let spec = GuestSpec::load(paths, &name);
    let state = match vs_runtime::status(paths, &name) {
        Ok(s) if s.is_running() => "running",
        Ok(_) => "stopped",
        Err(_) => "error",
    };
    let figures = match (&spec, state) {
        (Ok(s), "running") => vs_runtime::limits::figures(paths, s).ok(),
        _ => None,
    };
    let (limits, stats, network, vsz_bytes, uptime_ms) = figures
        .map_or((None, None, None, None, None), |f| {
            (f.limits, f.stats, f.network, f.vsz_bytes, f.uptime_ms)
        });
    match spec {
        Ok(s) => Entry {
            limits,
            stats,
            network,
            vsz_bytes,
            uptime_ms,
            state,
            context: Some(s.context.get()),
            hostname: Some(s.hostname.clone()),
            vdir: Some(s.vdir.display().to_string()),
            privileged: Some(s.privileged),
            init_style: Some(s.init.style.name()),
            addresses: s
                .config
                .interfaces
                .list
                .values()
                .filter(|i| !i.disabled)
                .map(|i| match i.prefix.or(s.config.interfaces.prefix) {
                    Some(p) => format!("{}/{p}", i.ip),
                    None => i.ip.to_string(),
                })
                .collect(),
            disabled: s.config.disabled,
            error: None,
            name,
        },
        Err(e) => Entry {
            name,
            state: "error",
            context: None,
            hostname: None,
            vdir: None,
            privileged: None,
            init_style: None,
            addresses: Vec::new(),
            disabled: false,
            limits: None,
            stats: None,
            network: None,
            vsz_bytes: None,
            uptime_ms: None,
            error: Some(e.to_string()),
        },
    }
}

/// Prints the guests as a table or as JSON.
pub fn run(paths: &Paths, json: bool) -> anyhow::Result<ExitCode> {
    let entries: Vec<Entry> = paths
        .guests()?
        .into_iter()
        .map(|n| entry(paths, n))
        .collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&entries)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = comfy_table::Table::new();
    table.load_style(comfy_table::presets::NOTHING);
    table.set_header(["NAME", "CTX", "STATE", "HOSTNAME", "ADDRESSES", "VDIR"]);
    for e in &entries {
        let state = match (&e.error, e.disabled) {
            (Some(_), _) => "error".to_string(),
            (None, true) => format!("{} (disabled)", e.state),
            (None, false) => e.state.to_string(),
        };
        table.add_row([
            e.name.to_string(),
            e.context.map_or("-".into(), |c| c.to_string()),
            state,
            e.hostname.clone().unwrap_or_else(|| "-".into()),
            if e.addresses.is_empty() {
                "-".into()
            } else {
                e.addresses.join(",")
            },
            e.vdir
                .clone()
                .or_else(|| e.error.clone())
                .unwrap_or_default(),
        ]);
    }
    println!("{table}");
    Ok(ExitCode::SUCCESS)
}
