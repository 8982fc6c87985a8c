//! Argument parsing: host-wide verbs, or `NAME COMMAND [ARGS]`.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use vs_config::{GuestName, Paths};

use crate::cmd;
use crate::exit::{Exit, USAGE};

const GUEST_COMMANDS: &str = "\
Guest commands (vserver NAME COMMAND):
  build -m METHOD [OPTIONS] [-- METHOD-ARGS]   make a new guest (methods: skeleton, busybox, debootstrap, template)
  delete [--force]                             remove a stopped guest, its tree and its configuration
  status                                       say whether the guest runs (exit 0 running, 3 stopped)
  running                                      exit 0 if the guest runs, 1 if not; no output

Run 'vserver NAME COMMAND --help' for a command's options.";

/// Linux-VServer on a stock kernel.
#[derive(Debug, Parser)]
#[command(
    name = "vserver",
    version,
    about = "Linux-VServer guests on a stock Linux kernel",
    override_usage = "vserver [--root DIR] NAME COMMAND [ARGS]...\n       vserver [--root DIR] list [--json]",
    after_help = GUEST_COMMANDS,
    subcommand_value_name = "NAME|list",
)]
struct Cli {
    /// Prefix for every path (/etc/vservers, /var/lib/vservers, /run/vservers ...)
    #[arg(long, value_name = "DIR", env = "VSERVER_ROOT", global = true)]
    root: Option<PathBuf>,
    #[command(subcommand)]
    top: Top,
}

#[derive(Debug, Subcommand)]
enum Top {
    /// List every configured guest and whether it runs
    List {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// NAME COMMAND [ARGS]: act on one guest
    #[command(external_subcommand)]
    Guest(Vec<OsString>),
}

/// The commands that act on one guest.
#[derive(Debug, Parser)]
#[command(name = "vserver NAME", no_binary_name = true)]
struct GuestCli {
    #[command(subcommand)]
    cmd: GuestCmd,
}

#[derive(Debug, Subcommand)]
enum GuestCmd {
    /// Make a new guest: configuration and root tree
    Build(Box<cmd::build::BuildArgs>),
    /// Remove a stopped guest: its tree, configuration, run state and log
    Delete(cmd::delete::DeleteArgs),
    /// Say whether the guest runs: exit 0 running, 3 stopped
    Status,
    /// Exit 0 if the guest runs, 1 if not; print nothing
    Running,
}

/// Prints a clap error as one line (help and version as they are).
fn usage_exit(e: clap::Error, context: &str) -> ExitCode {
    if !e.use_stderr() {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        let _ = e.print();
        return ExitCode::from(USAGE);
    }
    let text = e.render().to_string();
    let first = text.lines().next().unwrap_or("invalid arguments");
    let first = first.strip_prefix("error: ").unwrap_or(first);
    eprintln!("vserver: {first} (try 'vserver {context}--help')");
    ExitCode::from(USAGE)
}

/// Parses the command line and runs it.
pub fn run() -> anyhow::Result<ExitCode> {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => return Ok(usage_exit(e, "")),
    };
    let root = cli.root.filter(|r| !r.as_os_str().is_empty());
    let paths = Paths::from_env(root);
    match cli.top {
        Top::List { json } => cmd::list::run(&paths, json),
        Top::Guest(args) => {
            let (name, rest) = args
                .split_first()
                .ok_or_else(|| Exit::error(USAGE, "missing guest name"))?;
            let name = name
                .to_str()
                .ok_or_else(|| Exit::error(USAGE, "the guest name is not valid UTF-8"))?;
            let name = GuestName::new(name).map_err(|e| Exit::error(USAGE, e.to_string()))?;
            let guest = match GuestCli::try_parse_from(rest) {
                Ok(g) => g,
                Err(e) => {
                    let sub = rest
                        .first()
                        .and_then(|s| s.to_str())
                        .filter(|s| ["build", "delete", "status", "running"].contains(s))
                        .map(|s| format!("NAME {s} "))
                        .unwrap_or_else(|| "NAME ".into());
                    return Ok(usage_exit(e, &sub));
                }
            };
            match guest.cmd {
                GuestCmd::Build(a) => cmd::build::run(&paths, &name, *a),
                GuestCmd::Delete(a) => cmd::delete::run(&paths, &name, a),
                GuestCmd::Status => cmd::status::status(&paths, &name),
                GuestCmd::Running => cmd::status::running(&paths, &name),
            }
        }
    }
}
