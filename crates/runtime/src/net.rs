//! Shared network mode on the host side: the guest's addresses on their
//! host devices (util-vserver's `interfaces/`), added at start and removed
//! at stop, and the cgroup BPF programs that confine the guest to them.
//!
//! An address is put on a device only when the interface names one (`dev`,
//! or the inherited `interfaces/dev`) and is not `nodev`; one that is
//! already there is left alone at stop. Before removing a primary address
//! the device's `promote_secondaries` is switched on, so the host's other
//! addresses on it survive (util-vserver's FAQ).

use std::net::IpAddr;
use std::process::Command;

use vs_config::{GuestSpec, Interface};

use crate::error::{Error, Result};

/// One address of a shared-mode guest.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Address {
    /// The address.
    pub ip: IpAddr,
    /// Its prefix length.
    pub prefix: u8,
    /// The host device it goes on (`None`: nodev).
    pub dev: Option<String>,
    /// The alias label (`dev:name`).
    pub label: Option<String>,
}

/// The network side of a shared-mode guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedNet {
    /// Its addresses, in `interfaces/` order.
    pub addresses: Vec<Address>,
    /// Its loopback address (`interfaces/lback`, else derived from the context).
    pub lback4: std::net::Ipv4Addr,
}

fn prefix_of(i: &Interface, spec: &GuestSpec) -> u8 {
    let ifs = &spec.config.interfaces;
    let max = if i.ip.is_ipv4() { 32 } else { 128 };
    i.prefix
        .or(i.mask.and_then(vs_config::values::mask_to_prefix))
        .or(ifs.prefix)
        .or(ifs.mask.and_then(vs_config::values::mask_to_prefix))
        .unwrap_or(max)
        .min(max)
}

impl SharedNet {
    /// The addresses `spec` configures.
    pub fn new(spec: &GuestSpec) -> SharedNet {
        let ifs = &spec.config.interfaces;
        let addresses = ifs
            .list
            .values()
            .filter(|i| !i.disabled)
            .map(|i| {
                let dev = if i.nodev {
                    None
                } else {
                    i.dev.clone().or(ifs.dev.clone())
                };
                Address {
                    ip: i.ip,
                    prefix: prefix_of(i, spec),
                    label: match (&dev, &i.name) {
                        (Some(d), Some(n)) if i.ip.is_ipv4() => Some(format!("{d}:{n}")),
                        _ => None,
                    },
                    dev,
                }
            })
            .collect();
        let lback4 = match ifs.lback {
            Some(IpAddr::V4(a)) => a,
            _ => vs_net::default_lback4(spec.context.get()),
        };
        SharedNet { addresses, lback4 }
    }

    /// What the BPF programs allow.
    pub fn guest_addrs(&self) -> vs_net::GuestAddrs {
        let mut a = vs_net::GuestAddrs {
            v4: Vec::new(),
            v6: Vec::new(),
            lback4: self.lback4,
            lback6: None,
        };
        for addr in &self.addresses {
            match addr.ip {
                IpAddr::V4(v) => a.v4.push(v),
                IpAddr::V6(v) => a.v6.push(v),
            }
        }
        a
    }
}

fn ip(args: &[String]) -> Result<String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| Error::io("ip", "run iproute2", e))?;
    if !out.status.success() {
        return Err(Error::Setup(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn present(a: &Address, dev: &str) -> Result<bool> {
    let out = ip(&[
        "-o".into(),
        "addr".into(),
        "show".into(),
        "dev".into(),
        dev.into(),
    ])?;
    Ok(out
        .split_whitespace()
        .any(|w| w.split('/').next() == Some(&a.ip.to_string())))
}

/// Puts the guest's addresses on their devices; returns those it added
/// (and so must remove at stop). On failure, removes what it added.
pub fn add_addresses(net: &SharedNet) -> Result<Vec<Address>> {
    let mut added = Vec::new();
    for a in &net.addresses {
        let Some(dev) = &a.dev else { continue };
        let r = (|| {
            if present(a, dev)? {
                return Ok(false);
            }
            let mut args = vec![
                "addr".to_string(),
                "add".into(),
                format!("{}/{}", a.ip, a.prefix),
                "dev".into(),
                dev.clone(),
            ];
            if let Some(l) = &a.label {
                args.extend(["label".into(), l.clone()]);
            }
            ip(&args).map(|_| true)
        })();
        match r {
            Ok(true) => added.push(a.clone()),
            Ok(false) => {}
            Err(e) => {
                remove_addresses(&added);
                return Err(e);
            }
        }
    }
    Ok(added)
}

/// Removes addresses [`add_addresses`] added; errors are not fatal (the
/// address may be gone already).
pub fn remove_addresses(added: &[Address]) {
    for a in added {
        let Some(dev) = &a.dev else { continue };
        if a.ip.is_ipv4() {
            let _ = std::fs::write(
                format!("/proc/sys/net/ipv4/conf/{dev}/promote_secondaries"),
                "1",
            );
        }
        let _ = ip(&[
            "addr".into(),
            "del".into(),
            format!("{}/{}", a.ip, a.prefix),
            "dev".into(),
            dev.clone(),
        ]);
    }
}

/// Runs `cmd` on the host confined to `addrs` (util-vserver's `chbind`):
/// a cgroup of its own with the shared-mode programs, removed after the
/// command ends, under `base` as a guest's (`.defaults/cgroup/base`).
/// Returns the command's exit status.
pub fn chbind(
    addrs: &vs_net::GuestAddrs,
    cmd: &[String],
    base: Option<&std::path::Path>,
) -> Result<i32> {
    use std::os::fd::AsFd;
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    let fs = vs_cgroup::CgroupFs::system()?;
    let name = format!("chbind-{}", std::process::id());
    let cg = vs_cgroup::GuestCgroup::create(&fs, base, &name)?;
    let run = || -> Result<i32> {
        let fd = cg.v2_dir_fd()?;
        vs_net::attach(fd.as_fd(), addrs).map_err(|e| Error::Setup(format!("chbind: {e}")))?;
        let cg2 = cg.clone();
        let mut c = Command::new(&cmd[0]);
        c.args(&cmd[1..]);
        // SAFETY: the CLI is single-threaded, so the forked child may
        // allocate; it only writes its pid into the cgroup's files.
        unsafe {
            c.pre_exec(move || {
                cg2.join(std::process::id() as i32)
                    .map_err(|e| std::io::Error::other(e.to_string()))
            });
        }
        let status = c.status().map_err(|e| Error::io(&cmd[0], "run", e))?;
        Ok(status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
    };
    let result = run();
    let _ = cg.kill_all();
    let _ = cg.remove();
    result
}

/// Private network mode (`netns/`): the guest's own network namespace,
/// joined to the host by a veth pair whose host end is on a bridge (or
/// routed), with the guest's addresses, its default route and optionally
/// NAT for its addresses through nftables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrivateNet {
    /// The guest's name (NAT rules carry it as their comment).
    pub name: String,
    /// The host end of the veth pair (`vs<context>`).
    pub host_if: String,
    /// The bridge the host end joins.
    pub bridge: Option<String>,
    /// The guest's addresses, on its `eth0`.
    pub addresses: Vec<Address>,
    /// The default route inside.
    pub gateway: Option<IpAddr>,
    /// Masquerade the guest's addresses.
    pub nat: bool,
    /// ccap RAW_ICMP: unprivileged ping sockets inside.
    pub ping: bool,
}

impl PrivateNet {
    /// The private network of `spec`, if it has `netns/`.
    pub fn new(spec: &GuestSpec) -> Option<PrivateNet> {
        let ns = spec.config.netns.as_ref()?;
        let shared = SharedNet::new(spec);
        Some(PrivateNet {
            name: spec.name.to_string(),
            host_if: format!("vs{}", spec.context),
            bridge: ns.bridge.clone(),
            addresses: shared
                .addresses
                .into_iter()
                .map(|a| Address {
                    dev: None,
                    label: None,
                    ..a
                })
                .collect(),
            gateway: ns.gateway,
            nat: ns.nat,
            ping: spec.ccaps.contains(&vs_config::CCap::RawIcmp),
        })
    }
}

/// Routed mode (no bridge): each guest address is routed to the host end
/// of the veth, which answers as the guest's gateway on link-local
/// addresses ([`ROUTED_GW4`], [`ROUTED_GW6`]) for each family the guest
/// has and `netns/gateway` does not cover, and answers ARP for the guest's
/// on-link neighbours (proxy_arp), so they are reached through the host.
/// Everything here goes with the veth.
fn route_host_end(net: &PrivateNet, pid: i32) -> Result<()> {
    let h = net.host_if.as_str();
    let has = |v4: bool| net.addresses.iter().any(|a| a.ip.is_ipv4() == v4);
    let gw_covers = |v4: bool| net.gateway.is_some_and(|g| g.is_ipv4() == v4);
    let run = |args: &[&str]| ip(&args.iter().map(|a| a.to_string()).collect::<Vec<_>>());
    if has(true) {
        run(&["addr", "add", &format!("{ROUTED_GW4}/32"), "dev", h])?;
        let knob = format!("/proc/sys/net/ipv4/conf/{h}/proxy_arp");
        std::fs::write(&knob, "1").map_err(|e| Error::io(&knob, "enable proxy_arp on", e))?;
        if !gw_covers(true) {
            let gw = ROUTED_GW4.to_string();
            in_netns(
                pid,
                &[
                    "ip", "route", "add", "default", "via", &gw, "dev", "eth0", "onlink",
                ],
            )?;
        }
    }
    if has(false) {
        run(&[
            "-6",
            "addr",
            "add",
            &format!("{ROUTED_GW6}/64"),
            "dev",
            h,
            "nodad",
        ])?;
        if !gw_covers(false) {
            let gw = ROUTED_GW6.to_string();
            in_netns(
                pid,
                &[
                    "ip", "-6", "route", "add", "default", "via", &gw, "dev", "eth0",
                ],
            )?;
        }
    }
    for a in &net.addresses {
        let full = if a.ip.is_ipv4() { 32 } else { 128 };
        run(&["route", "add", &format!("{}/{full}", a.ip), "dev", h])?;
    }
    Ok(())
}

/// The gateway a routed guest's IPv4 default route points at (the host
/// end of its veth; link-local, so it is no address of any network).
pub const ROUTED_GW4: std::net::Ipv4Addr = std::net::Ipv4Addr::new(169, 254, 0, 1);
/// The IPv6 one.
pub const ROUTED_GW6: std::net::Ipv6Addr = std::net::Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);

fn in_netns(pid: i32, args: &[&str]) -> Result<()> {
    let netns = format!("--net=/proc/{pid}/ns/net");
    let out = Command::new("nsenter")
        .arg(&netns)
        .args(args)
        .output()
        .map_err(|e| Error::io("nsenter", "run", e))?;
    if !out.status.success() {
        return Err(Error::Setup(format!(
            "in the guest's network namespace: {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

fn nat_comment(name: &str) -> String {
    format!("vserver:{name}")
}

/// Builds the private network of the guest whose init is `pid` (before
/// the init runs anything of the guest).
pub fn setup_private(net: &PrivateNet, pid: i32) -> Result<()> {
    // Leftovers of a previous init of this guest (a reboot): its NAT rules.
    teardown_private(&net.name, &net.host_if);
    if let Some(br) = &net.bridge
        && ip(&["link".into(), "show".into(), br.clone()]).is_err()
    {
        ip(&[
            "link".into(),
            "add".into(),
            br.clone(),
            "type".into(),
            "bridge".into(),
        ])?;
        ip(&["link".into(), "set".into(), br.clone(), "up".into()])?;
    }
    let h = net.host_if.clone();
    ip(&[
        "link".into(),
        "add".into(),
        h.clone(),
        "type".into(),
        "veth".into(),
        "peer".into(),
        "name".into(),
        "eth0".into(),
        "netns".into(),
        pid.to_string(),
    ])?;
    let r = (|| {
        if let Some(br) = &net.bridge {
            ip(&[
                "link".into(),
                "set".into(),
                h.clone(),
                "master".into(),
                br.clone(),
            ])?;
        }
        ip(&["link".into(), "set".into(), h.clone(), "up".into()])?;
        in_netns(pid, &["ip", "link", "set", "lo", "up"])?;
        for a in &net.addresses {
            let cidr = format!("{}/{}", a.ip, a.prefix);
            let mut args = vec!["ip", "addr", "add", &cidr, "dev", "eth0"];
            if a.ip.is_ipv6() {
                // Usable at once: no duplicate address detection wait.
                args.push("nodad");
            }
            in_netns(pid, &args)?;
        }
        in_netns(pid, &["ip", "link", "set", "eth0", "up"])?;
        if let Some(gw) = net.gateway {
            let gw = gw.to_string();
            let mut args = vec!["ip", "route", "add", "default", "via", &gw];
            if net.bridge.is_none() {
                args.extend(["dev", "eth0", "onlink"]);
            }
            in_netns(pid, &args)?;
        }
        if net.bridge.is_none() {
            route_host_end(net, pid)?;
        }
        if net.ping {
            // ping without CAP_NET_RAW: ICMP datagram sockets for every group.
            in_netns(
                pid,
                &[
                    "sh",
                    "-c",
                    "echo '0 2147483647' > /proc/sys/net/ipv4/ping_group_range",
                ],
            )?;
        }
        if net.nat {
            let mut rules = String::from(
                "add table inet vserver\nadd chain inet vserver postrouting { type nat hook postrouting priority srcnat; }\n",
            );
            for a in &net.addresses {
                let fam = if a.ip.is_ipv4() { "ip" } else { "ip6" };
                rules.push_str(&format!(
                    "add rule inet vserver postrouting {fam} saddr {} masquerade comment \"{}\"\n",
                    a.ip,
                    nat_comment(&net.name)
                ));
            }
            nft_stdin(&rules)?;
        }
        Ok(())
    })();
    if r.is_err() {
        teardown_private(&net.name, &net.host_if);
    }
    r
}

fn nft_stdin(rules: &str) -> Result<()> {
    use std::io::Write;
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| Error::io("nft", "run nftables (Debian package nftables)", e))?;
    if let Some(mut i) = child.stdin.take() {
        let _ = i.write_all(rules.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| Error::io("nft", "wait", e))?;
    if !out.status.success() {
        return Err(Error::Setup(format!(
            "nft: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Removes what [`setup_private`] made on the host: the veth (gone with the
/// guest's namespace anyway) and the guest's NAT rules, and the `vserver`
/// table once it holds none.
pub fn teardown_private(name: &str, host_if: &str) {
    let _ = ip(&["link".into(), "del".into(), host_if.into()]);
    let Ok(out) = Command::new("nft")
        .args(["-a", "list", "chain", "inet", "vserver", "postrouting"])
        .output()
    else {
        return;
    };
    if !out.status.success() {
        return;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let comment = format!("comment \"{}\"", nat_comment(name));
    let mut remaining = 0;
    for line in text
        .lines()
        .filter(|l| l.contains(" handle ") && l.contains("masquerade"))
    {
        if line.contains(&comment) {
            if let Some(h) = line.rsplit("handle ").next() {
                let _ = Command::new("nft")
                    .args([
                        "delete",
                        "rule",
                        "inet",
                        "vserver",
                        "postrouting",
                        "handle",
                        h.trim(),
                    ])
                    .status();
            }
        } else {
            remaining += 1;
        }
    }
    if remaining == 0 {
        let _ = Command::new("nft")
            .args(["delete", "table", "inet", "vserver"])
            .status();
    }
}
