//! `chbind` (multicall name): run a host command confined like a
//! shared-mode guest, util-vserver's recipe for keeping host daemons off
//! guest addresses: `chbind --ip IP[/PREFIX]... [--lback IP] -- CMD...`.

use std::net::IpAddr;
use std::path::Path;
use std::process::ExitCode;

use crate::exit::{Exit, USAGE};

/// Whether a path names this program as `chbind`.
pub fn is_chbind_name(argv0: &str) -> bool {
    Path::new(argv0).file_name().is_some_and(|n| n == "chbind")
}

/// Parses `chbind`'s arguments into the addresses and the command.
pub fn parse(args: &[String]) -> Result<(vs_net::GuestAddrs, Vec<String>), String> {
    let mut addrs = vs_net::GuestAddrs {
        v4: Vec::new(),
        v6: Vec::new(),
        lback4: std::net::Ipv4Addr::new(127, 0, 0, 1),
        lback6: None,
    };
    let mut it = args.iter();
    let mut cmd = Vec::new();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--ip" => {
                let v = it.next().ok_or("--ip: an address is missing")?;
                let ip: IpAddr = v
                    .split('/')
                    .next()
                    .unwrap_or("")
                    .parse()
                    .map_err(|_| format!("--ip '{v}': not an IP address"))?;
                match ip {
                    IpAddr::V4(x) => addrs.v4.push(x),
                    IpAddr::V6(x) => addrs.v6.push(x),
                }
            }
            "--lback" => {
                let v = it.next().ok_or("--lback: an address is missing")?;
                addrs.lback4 = v
                    .parse()
                    .map_err(|_| format!("--lback '{v}': not an IPv4 address"))?;
            }
            "--silent" => {}
            "--" => {
                cmd.extend(it.by_ref().cloned());
            }
            other if other.starts_with('-') => return Err(format!("'{other}': unknown option")),
            other => {
                cmd.push(other.to_owned());
                cmd.extend(it.by_ref().cloned());
            }
        }
    }
    if addrs.v4.is_empty() && addrs.v6.is_empty() {
        return Err("at least one --ip is needed".into());
    }
    if cmd.is_empty() {
        return Err("no command given".into());
    }
    Ok((addrs, cmd))
}

/// Runs `chbind`.
pub fn main(args: &[String]) -> anyhow::Result<ExitCode> {
    let (addrs, cmd) = parse(args).map_err(|e| Exit::error(USAGE, format!("chbind: {e}")))?;
    let base = vs_config::Paths::from_env(None).cgroup_base()?;
    let code = vs_runtime::net::chbind(&addrs, &cmd, base.as_deref())?;
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn parses_util_vserver_options() {
        let (a, cmd) = parse(&v(
            "--ip 192.0.2.10/24 --ip fd00::1 --lback 127.0.5.1 -- sshd -D",
        ))
        .unwrap();
        assert_eq!(a.v4, ["192.0.2.10".parse::<std::net::Ipv4Addr>().unwrap()]);
        assert_eq!(a.v6.len(), 1);
        assert_eq!(a.lback4.to_string(), "127.0.5.1");
        assert_eq!(cmd, ["sshd", "-D"]);
        assert!(
            parse(&v("--ip 1.2.3.4"))
                .unwrap_err()
                .contains("no command")
        );
        assert!(parse(&v("-- true")).unwrap_err().contains("--ip"));
        assert!(parse(&v("--ip nope -- true")).unwrap_err().contains("nope"));
    }
}
