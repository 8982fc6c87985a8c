//! `vserver NAME delete [--force]`: remove a stopped guest entirely.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use vs_config::{GuestName, Paths};
use vs_runtime::Lock;

use crate::cmd::status::require_guest;

/// `delete` options.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Do not ask
    #[arg(short, long)]
    force: bool,
}

/// The guest root as the configuration names it, without resolving more
/// than the `vdir` link itself.
fn vdir_of(paths: &Paths, name: &GuestName) -> Option<PathBuf> {
    let cfg = paths.guest_cfg(name);
    match std::fs::read_link(cfg.join("vdir")) {
        Ok(t) if t.is_absolute() => Some(t),
        Ok(t) => Some(cfg.join(t)),
        Err(_) => {
            let d = paths.vdirbase().join(name);
            d.exists().then_some(d)
        }
    }
}

fn remove_dir(p: &Path) -> anyhow::Result<()> {
    match std::fs::remove_dir_all(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("{}: remove", p.display())),
    }
}

/// Runs `delete`.
pub fn run(paths: &Paths, name: &GuestName, a: DeleteArgs) -> anyhow::Result<ExitCode> {
    require_guest(paths, name)?;
    let lock = Lock::guest(paths, name)?;
    if vs_runtime::status(paths, name)?.is_running() {
        anyhow::bail!("guest '{name}' is running; stop it first");
    }
    let vdir = vdir_of(paths, name);
    // A `vdir` link may point anywhere (a tree shared by several guests, a
    // tree kept elsewhere): only the guest's own tree under the vdir base
    // goes with it; any other is left in place and named.
    let own = paths.vdirbase().join(name.as_str());
    let canon = |p: &Path| std::fs::canonicalize(p).ok();
    let (vdir, kept) = match vdir {
        Some(v) if canon(&v).is_some() && canon(&v) != canon(&own) => (None, Some(v)),
        other => (other, None),
    };
    if !a.force {
        eprint!(
            "Delete guest '{name}', its configuration{} ? [y/N] ",
            vdir.as_ref()
                .map(|v| format!(" and all files in {}", v.display()))
                .unwrap_or_default()
        );
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes" | "Yes" | "YES") {
            eprintln!("vserver: '{name}' not deleted");
            return Ok(ExitCode::from(1));
        }
    }
    // The tree first: if it cannot go, the configuration stays to retry with.
    if let Some(v) = &vdir
        && std::fs::symlink_metadata(v).is_ok()
    {
        vs_storage::remove_root(v)?;
    }
    let cache = std::fs::read_link(paths.guest_cfg(name).join("cache"))
        .unwrap_or_else(|_| paths.cachebase().join(name));
    remove_dir(&cache)?;
    remove_dir(&paths.guest_cfg(name))?;
    let log = paths.guest_log(name);
    if log.exists() {
        std::fs::remove_file(&log).with_context(|| format!("{}: remove", log.display()))?;
    }
    // Last, the run directory with the lock we hold: nothing else can take
    // it for a guest that no longer exists.
    drop(lock);
    remove_dir(&paths.guest_run(name))?;
    if let Some(k) = kept {
        eprintln!(
            "vserver: kept the tree {}: it is not the guest's own ({}); remove it by hand when nothing uses it",
            k.display(),
            own.display()
        );
    }
    println!("deleted guest '{name}'");
    Ok(ExitCode::SUCCESS)
}
