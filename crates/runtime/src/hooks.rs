//! Host hooks: `scripts/{prepre-start,pre-start,post-start,pre-stop,
//! post-stop,postpost-stop}` and their `.d/` directories, run on the host
//! with util-vserver's arguments `<hook> <name>`. A guest's own hook takes
//! the place of `.defaults/scripts/`'s; executable files are run, others
//! are run by `/bin/sh` (util-vserver sourced them into its shell).

use std::path::{Path, PathBuf};
use std::process::Command;

use vs_config::{GuestSpec, Hook, Paths};

use crate::error::{Error, Result};

fn scripts_of(dir: &Path, hook: Hook) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let main = dir.join(hook.name());
    if main.is_file() {
        out.push(main);
    }
    let d = dir.join(format!("{}.d", hook.name()));
    if let Ok(entries) = std::fs::read_dir(&d) {
        let mut files: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        out.extend(files);
    }
    out
}

/// Runs the scripts of `hook` for `spec`; the first failure is an error
/// naming the script and its status.
pub fn run(paths: &Paths, spec: &GuestSpec, hook: Hook) -> Result<()> {
    let mut scripts = scripts_of(&spec.cfgdir.join("scripts"), hook);
    if scripts.is_empty() {
        scripts = scripts_of(&paths.defaults().join("scripts"), hook);
    }
    let cwd = match hook {
        Hook::Initialize | Hook::PrepreStart => spec.cfgdir.clone(),
        _ if spec.vdir.is_dir() => spec.vdir.clone(),
        _ => spec.cfgdir.clone(),
    };
    for s in scripts {
        let executable = std::fs::metadata(&s)
            .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0)
            .unwrap_or(false);
        let mut cmd = if executable {
            Command::new(&s)
        } else {
            let mut c = Command::new("/bin/sh");
            c.arg(&s);
            c
        };
        let status = cmd
            .arg(hook.name())
            .arg(spec.name.as_str())
            .current_dir(&cwd)
            .env("VSERVER_NAME", spec.name.as_str())
            .env("VSERVER_DIR", &spec.cfgdir)
            .env("VSERVER_ROOT_DIR", &spec.vdir)
            .status()
            .map_err(|e| Error::io(&s, "run hook", e))?;
        if !status.success() {
            return Err(Error::Setup(format!(
                "{}: {} hook failed ({status})",
                s.display(),
                hook.name()
            )));
        }
    }
    Ok(())
}
