//! The addresses a shared-mode guest may use.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::Error;

/// What confines a shared-mode guest: its addresses and loopback addresses.
///
/// The programs built from it never limit the number of addresses (the old
/// kernel patch stopped at 16); see [`crate::bpf::progs`] for what each
/// hook does with them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestAddrs {
    /// IPv4 addresses, primary first: `bind(0.0.0.0)` and outgoing
    /// connections use `v4[0]`. Empty: the guest behaves like a host
    /// without IPv4 (apart from its loopback address).
    pub v4: Vec<Ipv4Addr>,
    /// IPv6 addresses, primary first. Empty: like a host without IPv6.
    pub v6: Vec<Ipv6Addr>,
    /// The guest's IPv4 loopback address (`interfaces/lback`), inside
    /// 127.0.0.0/8: 127.0.0.1 is rewritten to it. `127.0.0.1` itself means
    /// "no remapping" (util-vserver's `chbind` default).
    pub lback4: Ipv4Addr,
    /// The guest's IPv6 loopback address: `::1` is rewritten to it. `None`:
    /// the guest has no IPv6 loopback, and `::1` is refused (EPERM).
    pub lback6: Option<Ipv6Addr>,
}

/// The default loopback address of context `context`: `127.X.Y.1` where
/// `X.Y` is `context + 256` as a 16-bit number (high byte `X`).
///
/// The offset of 256 keeps every default out of 127.0.0.0/16, so no context
/// (0 and 1 included) can land on the host's 127.0.0.1, systemd-resolved's
/// 127.0.0.53 or Debian's 127.0.1.1. Contexts 0..=65279 get distinct
/// addresses (127.1.0.1 ..= 127.255.255.1); vserver's contexts (2..=49151)
/// all fit. Larger values wrap around and are not unique.
pub fn default_lback4(context: u32) -> Ipv4Addr {
    let n = context % 0xff00 + 0x100;
    Ipv4Addr::new(127, (n >> 8) as u8, n as u8, 1)
}

fn is_mapped(a: &Ipv6Addr) -> bool {
    a.to_ipv4_mapped().is_some()
}

impl GuestAddrs {
    /// Checks the addresses make sense as a guest's: loopback addresses in
    /// their range, no wildcard, multicast, broadcast or host loopback
    /// among the guest's own addresses, no IPv4-mapped IPv6 address.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |m: String| Err(Error::InvalidAddrs(m));
        if !self.lback4.is_loopback() {
            return bad(format!(
                "loopback address {} is not in 127.0.0.0/8",
                self.lback4
            ));
        }
        for a in &self.v4 {
            if a.is_unspecified()
                || a.is_broadcast()
                || a.is_multicast()
                || *a == Ipv4Addr::LOCALHOST
            {
                return bad(format!("{a} cannot be a guest address"));
            }
        }
        for a in self.v6.iter().chain(self.lback6.iter()) {
            if a.is_unspecified() || a.is_loopback() || a.is_multicast() || is_mapped(a) {
                return bad(format!("{a} cannot be a guest address"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_lback_is_unique_and_never_the_hosts() {
        let mut seen = std::collections::HashSet::new();
        for ctx in 0..0xff00 {
            let a = default_lback4(ctx);
            assert!(a.is_loopback());
            assert_ne!(a.octets()[1], 0, "{a} is in 127.0.0.0/16");
            assert!(seen.insert(a), "{ctx} collides");
        }
        assert_eq!(default_lback4(0), Ipv4Addr::new(127, 1, 0, 1));
        assert_eq!(default_lback4(2), Ipv4Addr::new(127, 1, 2, 1));
        assert_eq!(default_lback4(49151), Ipv4Addr::new(127, 192, 255, 1));
    }

    #[test]
    fn validation() {
        let ok = GuestAddrs {
            v4: vec![Ipv4Addr::new(10, 0, 0, 1)],
            v6: vec!["fd00::1".parse().unwrap()],
            lback4: Ipv4Addr::LOCALHOST,
            lback6: Some("fd00::42".parse().unwrap()),
        };
        ok.validate().unwrap();
        let mut b = ok.clone();
        b.lback4 = Ipv4Addr::new(10, 0, 0, 2);
        assert!(b.validate().is_err());
        let mut b = ok.clone();
        b.v4.push(Ipv4Addr::UNSPECIFIED);
        assert!(b.validate().is_err());
        let mut b = ok.clone();
        b.v6.push("::ffff:10.0.0.1".parse().unwrap());
        assert!(b.validate().is_err());
        let mut b = ok;
        b.lback6 = Some(Ipv6Addr::LOCALHOST);
        assert!(b.validate().is_err());
    }
}
