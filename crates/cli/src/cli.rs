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
  start [--rescue CMD...] | stop | restart | condrestart
  run -- CMD...                                a new instance whose only job is CMD; exits with its status
  exec CMD... | suexec USER CMD... | enter     run inside the running guest
  ps [PS-OPTIONS] | kill [-s SIG] [PID...] | wait [--timeout S]
  pause | resume                               freeze and thaw all of the guest's processes
  limit [vlimit options] | stats [--json]      context limits, use, maxima and hits
Host-wide: vserver list [--json], vserver stat (also as 'vserver-stat'), 'vlimit -c NAME ...',
'chbind --ip IP... -- CMD' (a host command confined to addresses, as a shared-mode guest).

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
    /// util-vserver's vserver-stat: the host and every running guest
    Stat,
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
    /// Start the guest: its init style, or --rescue CMD
    Start(cmd::run::StartArgs),
    /// Stop the guest: the style's stop, apps/init/killseq, then whatever is left
    Stop,
    /// Stop, then start
    Restart,
    /// Restart only if the guest is running
    Condrestart,
    /// Start a new instance whose only job is CMD; exit with its status
    Run(cmd::run::CommandArgs),
    /// Run CMD inside the running guest as root
    Exec(cmd::run::CommandArgs),
    /// Run CMD inside the running guest as USER
    Suexec(cmd::run::SuexecArgs),
    /// A login shell inside the running guest, on a new pty of the guest
    Enter,
    /// The guest's processes as the host sees them, with a CONTEXT column
    Ps(cmd::procs::PsArgs),
    /// Signal guest processes by their pid inside the guest (default: all)
    Kill(cmd::procs::KillArgs),
    /// Wait until the guest has stopped
    Wait(cmd::procs::WaitArgs),
    /// util-vserver's vlimit for this guest: [-a] [-d] [-n] [[-M|-S|-H] --RES VALUE]... [--persist]
    Limit(cmd::limit::LimitArgs),
    /// Figures of the guest: limits, use, maxima, hits, throttling
    Stats {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Freeze every process of the guest (SCHED_PAUSE)
    Pause,
    /// Thaw a paused guest
    Resume,
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

/// The monitor: `VSERVER_ROOT=DIR vserver --monitor NAME MODE...` (made
/// by `start`, never typed; the channel to the CLI is fd 3).
fn monitor(args: &[String]) -> Option<ExitCode> {
    if args.len() < 4 || args[1] != "--monitor" {
        return None;
    }
    let paths = Paths::from_env(None);
    let name = GuestName::new(&args[2]).ok()?;
    let mode = vs_runtime::start::parse_mode(&args[3..])?;
    // SAFETY: fd 3 is the channel `start` put there for us; nothing else
    // in this process owns it.
    let report = vs_runtime::channel::Channel::from_fd(unsafe {
        <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(3)
    });
    let _ = rustix::io::fcntl_setfd(report.fd(), rustix::io::FdFlags::CLOEXEC);
    let code = vs_runtime::monitor::run(&paths, &name, mode, report);
    Some(ExitCode::from(code as u8))
}

/// Parses the command line and runs it.
pub fn run() -> anyhow::Result<ExitCode> {
    let args: Vec<String> = std::env::args().collect();
    if let Some(code) = monitor(&args) {
        return Ok(code);
    }
    // Multicall names: util-vserver's separate tools.
    if let Some(argv0) = args.first() {
        if cmd::chbind::is_chbind_name(argv0) {
            return cmd::chbind::main(&args[1..]);
        }
        if cmd::limit::is_vlimit_name(argv0) {
            return cmd::limit::vlimit_main(&args[1..]);
        }
        if cmd::stat::is_stat_name(argv0) {
            if args.len() > 1
                && !args[1..]
                    .iter()
                    .all(|a| a.starts_with("--sort") || a == "-O")
            {
                return Err(Exit::error(USAGE, "vserver-stat takes no arguments"));
            }
            return cmd::stat::run(&Paths::from_env(None));
        }
    }
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => return Ok(usage_exit(e, "")),
    };
    let root = cli.root.filter(|r| !r.as_os_str().is_empty());
    let paths = Paths::from_env(root);
    match cli.top {
        Top::List { json } => cmd::list::run(&paths, json),
        Top::Stat => cmd::stat::run(&paths),
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
                        .filter(|s| {
                            [
                                "build",
                                "delete",
                                "status",
                                "running",
                                "start",
                                "stop",
                                "restart",
                                "condrestart",
                                "run",
                                "exec",
                                "suexec",
                                "enter",
                                "ps",
                                "kill",
                                "wait",
                            ]
                            .contains(s)
                        })
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
                GuestCmd::Start(a) => cmd::run::start(&paths, &name, a),
                GuestCmd::Stop => cmd::run::stop(&paths, &name),
                GuestCmd::Restart => cmd::run::restart(&paths, &name, false),
                GuestCmd::Condrestart => cmd::run::restart(&paths, &name, true),
                GuestCmd::Run(a) => cmd::run::run(&paths, &name, a),
                GuestCmd::Exec(a) => cmd::run::exec(&paths, &name, a),
                GuestCmd::Suexec(a) => cmd::run::suexec(&paths, &name, a),
                GuestCmd::Enter => cmd::run::enter(&paths, &name),
                GuestCmd::Ps(a) => cmd::procs::ps(&paths, &name, a),
                GuestCmd::Kill(a) => cmd::procs::kill(&paths, &name, a),
                GuestCmd::Wait(a) => cmd::procs::wait(&paths, &name, a),
                GuestCmd::Limit(a) => cmd::limit::run_args(&paths, &name, a),
                GuestCmd::Stats { json } => cmd::stat::stats(&paths, &name, json),
                GuestCmd::Pause => cmd::run::pause(&paths, &name, true),
                GuestCmd::Resume => cmd::run::pause(&paths, &name, false),
            }
        }
    }
}
