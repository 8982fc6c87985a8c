//! `vlimit` (multicall name) and `vserver NAME limit`: util-vserver's
//! context limits, changed on a running guest at once.
//!
//! `vlimit [-c|--xid XID|NAME] [-a] [-n] [-d] [[-M|-S|-H] --RES VALUE]...
//! [--dir DIR [--missingok]] [--persist]`; `-M`, `-S`, `-H` pick which
//! limit the next `--RES` sets (hard when none is given), as in the
//! original.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use vs_config::{GuestName, GuestSpec, LimitValue, Paths, RlimitResource};
use vs_runtime::limits::Which;

use crate::exit::{Exit, USAGE};

/// A parsed `vlimit` command line.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct VlimitArgs {
    /// `-c`/`--xid`: a context id or a guest name.
    pub ctx: Option<String>,
    /// `-a`.
    pub all: bool,
    /// `-n`: numbers instead of names.
    pub numeric: bool,
    /// `-d`: decimal instead of hex.
    pub decimal: bool,
    /// The limits to set.
    pub sets: Vec<(RlimitResource, Which, LimitValue)>,
    /// `--dir DIR`: read `<res>[.min|.soft|.hard]` files from DIR.
    pub dir: Option<PathBuf>,
    /// `--missingok`.
    pub missing_ok: bool,
    /// `--persist`: also write the guest's `rlimits/`.
    pub persist: bool,
}

/// Parses `vlimit`'s arguments (without the program name).
pub fn parse(args: &[String]) -> Result<VlimitArgs, String> {
    let mut a = VlimitArgs::default();
    let mut which = Which::default();
    let mut it = args.iter().peekable();
    let value_of = |opt: &str, it: &mut std::iter::Peekable<std::slice::Iter<'_, String>>| {
        it.next()
            .cloned()
            .ok_or_else(|| format!("{opt}: a value is missing"))
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "-c" | "--xid" => a.ctx = Some(value_of(arg, &mut it)?),
            "-a" | "--all" => a.all = true,
            "-n" => a.numeric = true,
            "-d" => a.decimal = true,
            "-M" => which.min = true,
            "-S" => which.soft = true,
            "-H" => which.hard = true,
            "--dir" => a.dir = Some(PathBuf::from(value_of(arg, &mut it)?)),
            "--missingok" => a.missing_ok = true,
            "--persist" => a.persist = true,
            "--" => {
                if it.peek().is_some() {
                    return Err(
                        "running a program under vlimit is not supported: use 'vserver NAME exec'"
                            .into(),
                    );
                }
            }
            opt if opt.starts_with("--") => {
                let name = &opt[2..];
                let res = RlimitResource::from_file(name)
                    .ok_or_else(|| format!("{opt}: unknown option or resource"))?;
                let raw = value_of(opt, &mut it)?;
                let v = LimitValue::parse(Path::new(opt), &raw, res.unit())
                    .map_err(|e| e.to_string())?;
                let w = if which == Which::default() {
                    Which {
                        hard: true,
                        ..Which::default()
                    }
                } else {
                    which
                };
                a.sets.push((res, w, v));
                which = Which::default();
            }
            // Combined short flags such as -ad.
            opt if opt.starts_with('-')
                && opt.len() > 2
                && opt[1..].chars().all(|c| "anMSHd".contains(c)) =>
            {
                for c in opt[1..].chars() {
                    match c {
                        'a' => a.all = true,
                        'n' => a.numeric = true,
                        'd' => a.decimal = true,
                        'M' => which.min = true,
                        'S' => which.soft = true,
                        _ => which.hard = true,
                    }
                }
            }
            other => return Err(format!("'{other}': unexpected argument")),
        }
    }
    Ok(a)
}

/// Finds the guest `-c` names: a context id of a configured guest, or a name.
pub fn resolve_guest(paths: &Paths, ctx: &str) -> anyhow::Result<GuestName> {
    if let Ok(n) = ctx.parse::<u32>() {
        for g in paths.guests()? {
            if let Ok(spec) = GuestSpec::load(paths, &g)
                && spec.context.get() == n
            {
                return Ok(g);
            }
        }
        return Err(Exit::error(
            crate::exit::NO_GUEST,
            format!("no guest has context {n}"),
        ));
    }
    GuestName::new(ctx).map_err(|e| Exit::error(USAGE, e.to_string()))
}

/// Runs `vlimit` with the already parsed arguments on guest `name`.
pub fn run(paths: &Paths, name: &GuestName, mut a: VlimitArgs) -> anyhow::Result<ExitCode> {
    let spec = crate::cmd::status::load(paths, name)?;
    if let Some(dir) = &a.dir {
        match read_dir_limits(dir) {
            Ok(extra) => {
                // Limits given on the command line win over the files.
                for (r, w, v) in extra {
                    if !a.sets.iter().any(|(res, _, _)| *res == r) {
                        a.sets.push((r, w, v));
                    }
                }
            }
            Err(e) if a.missing_ok && e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => anyhow::bail!("{}: {e}", dir.display()),
        }
    }
    let running = vs_runtime::status(paths, name)?.is_running();
    if !a.sets.is_empty() {
        if running {
            for note in vs_runtime::limits::set_live(paths, &spec, &a.sets)? {
                eprintln!("vserver: warning: {note}");
            }
        } else if !a.persist {
            anyhow::bail!(
                "guest '{name}' is not running: use --persist to change its configuration"
            );
        }
        if a.persist {
            vs_runtime::limits::persist(&spec, &a.sets)?;
        }
    }
    if a.all {
        for line in vs_runtime::limits::report(paths, &spec)? {
            let label = if a.numeric {
                line.resource.number().to_string()
            } else {
                line.resource.file().to_string()
            };
            let d = a.decimal;
            let f = |v: Option<Option<u64>>| crate::format::limit_value(v, d);
            println!(
                "{}",
                crate::format::vlimit_row(
                    &label,
                    &[
                        f(line.min),
                        f(line.soft),
                        f(line.hard),
                        f(line.current),
                        f(line.max),
                        f(line.hits)
                    ]
                )
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads `<res>`, `<res>.min`, `<res>.soft`, `<res>.hard` files from `dir`.
fn read_dir_limits(dir: &Path) -> std::io::Result<Vec<(RlimitResource, Which, LimitValue)>> {
    std::fs::metadata(dir)?;
    let mut out = Vec::new();
    for r in RlimitResource::ALL {
        for (suffix, w) in [
            (
                "",
                Which {
                    min: true,
                    soft: true,
                    hard: true,
                },
            ),
            (
                ".min",
                Which {
                    min: true,
                    ..Which::default()
                },
            ),
            (
                ".soft",
                Which {
                    soft: true,
                    ..Which::default()
                },
            ),
            (
                ".hard",
                Which {
                    hard: true,
                    ..Which::default()
                },
            ),
        ] {
            let p = dir.join(format!("{}{suffix}", r.file()));
            if let Ok(text) = std::fs::read_to_string(&p) {
                let v = LimitValue::parse(&p, text.lines().next().unwrap_or(""), r.unit())
                    .map_err(|e| {
                        std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string())
                    })?;
                out.push((*r, w, v));
            }
        }
    }
    Ok(out)
}

/// `vserver NAME limit ARGS`: vlimit's options without `-c`.
#[derive(Debug, clap::Args)]
pub struct LimitArgs {
    /// vlimit options: [-a] [-d] [-n] [[-M|-S|-H] --RES VALUE]... [--dir DIR [--missingok]] [--persist]
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "OPTIONS"
    )]
    args: Vec<String>,
}

/// Runs `vserver NAME limit`.
pub fn run_args(paths: &Paths, name: &GuestName, a: LimitArgs) -> anyhow::Result<ExitCode> {
    let parsed = parse(&a.args).map_err(|e| Exit::error(USAGE, e))?;
    if parsed.ctx.is_some() {
        return Err(Exit::error(USAGE, "-c: the guest is already named"));
    }
    run(paths, name, parsed)
}

/// `vlimit ARGS` (the multicall name).
pub fn vlimit_main(args: &[String]) -> anyhow::Result<ExitCode> {
    let parsed = parse(args).map_err(|e| Exit::error(USAGE, format!("vlimit: {e}")))?;
    let paths = Paths::from_env(None);
    let ctx = parsed.ctx.clone().ok_or_else(|| {
        Exit::error(
            USAGE,
            "vlimit: -c XID|NAME is required (the host has no context limits)",
        )
    })?;
    let name = resolve_guest(&paths, &ctx)?;
    run(&paths, &name, parsed)
}

/// Whether a path names this program as `vlimit`.
pub fn is_vlimit_name(argv0: &str) -> bool {
    Path::new(argv0).file_name().is_some_and(|n| n == "vlimit")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn parses_like_util_vserver() {
        let a = parse(&args("-c demo --rss 10000 -S --rss 7000 -a -d")).unwrap();
        assert_eq!(a.ctx.as_deref(), Some("demo"));
        assert!(a.all && a.decimal);
        assert_eq!(
            a.sets,
            vec![
                (
                    RlimitResource::Rss,
                    Which {
                        hard: true,
                        ..Which::default()
                    },
                    LimitValue::Amount(10000)
                ),
                (
                    RlimitResource::Rss,
                    Which {
                        soft: true,
                        ..Which::default()
                    },
                    LimitValue::Amount(7000)
                ),
            ]
        );
        let a = parse(&args("--xid 42 -MS --nproc inf")).unwrap();
        assert_eq!(
            a.sets[0].1,
            Which {
                min: true,
                soft: true,
                hard: false
            }
        );
        assert_eq!(a.sets[0].2, LimitValue::Inf);
        assert!(parse(&args("--rss lots")).unwrap_err().contains("lots"));
        assert!(parse(&args("--bogus 1")).unwrap_err().contains("--bogus"));
        assert!(parse(&args("-c")).unwrap_err().contains("missing"));
        assert!(parse(&args("-- /bin/sh")).is_err());
    }
}
