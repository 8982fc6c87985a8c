//! Validated scalar values: guest names, context ids, id maps, limits, sizes.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::str::FromStr;

use crate::error::{ConfigError, Result};

/// A guest name: safe to use as one path component everywhere.
///
/// Not empty, at most 64 bytes, no `/`, no `..`, no leading `-` or `.`, no
/// whitespace or control characters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct GuestName(String);

impl GuestName {
    /// Longest name accepted, in bytes.
    pub const MAX_LEN: usize = 64;

    /// Validates `name` before any path is made from it.
    pub fn new(name: &str) -> Result<Self> {
        let bad = |reason| ConfigError::InvalidName {
            name: name.escape_debug().collect(),
            reason,
        };
        if name.is_empty() {
            return Err(bad("it is empty"));
        }
        if name.len() > Self::MAX_LEN {
            return Err(bad("it is longer than 64 bytes"));
        }
        if name.contains("..") {
            return Err(bad("it contains '..'"));
        }
        if name.contains('/') {
            return Err(bad("it contains '/'"));
        }
        if name.starts_with('-') {
            return Err(bad("it starts with '-'"));
        }
        if name.starts_with('.') {
            return Err(bad("it starts with '.'"));
        }
        if name.chars().any(|c| c.is_control()) {
            return Err(bad("it contains a control character"));
        }
        if name.chars().any(char::is_whitespace) {
            return Err(bad("it contains white space"));
        }
        Ok(GuestName(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for GuestName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<Path> for GuestName {
    fn as_ref(&self) -> &Path {
        Path::new(&self.0)
    }
}

/// A static security-context id (util-vserver's xid), 2..=49151.
///
/// 0 is the host and 1 the spectator context; 49152 and above were dynamic
/// contexts, which a stock kernel does not hand out (`UV lib/getxidtype.c`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct Xid(u32);

impl Xid {
    /// Smallest static context.
    pub const MIN: u32 = 2;
    /// Largest static context.
    pub const MAX: u32 = 49151;
    /// Where util-vserver starts allocating (`UV distrib/misc/context.start`).
    pub const FIRST_ALLOCATED: u32 = 40000;

    /// A context id, if `n` is a static one.
    pub fn new(n: u32) -> Option<Self> {
        (Self::MIN..=Self::MAX).contains(&n).then_some(Xid(n))
    }

    /// Parses a context id as written in a file or on the command line.
    pub fn parse(path: &Path, s: &str) -> Result<Self> {
        s.trim()
            .parse::<u32>()
            .ok()
            .and_then(Xid::new)
            .ok_or_else(|| ConfigError::invalid(path, s, "a static context id in 2..49151"))
    }

    /// The number.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Display for Xid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A guest's user-namespace range: guest ids `0..count` are host ids
/// `base..base+count` (the `uidmap` file, `BASE COUNT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct IdMap {
    /// First host id.
    pub base: u32,
    /// Number of ids.
    pub count: u32,
}

impl IdMap {
    /// The host's own ids that a guest range must never include.
    pub const HOST_RESERVED: u32 = 65536;

    /// The default range of a context: `xid*65536 65536` (DESIGN §3), so
    /// the context lives in the upper bits as the paper's UID tagging did.
    pub fn for_context(xid: Xid) -> IdMap {
        IdMap {
            base: xid.get() * 65536,
            count: 65536,
        }
    }

    /// Parses `BASE COUNT`.
    pub fn parse(path: &Path, s: &str) -> Result<Self> {
        let expected = "'BASE COUNT' with BASE >= 65536, COUNT >= 1 and BASE+COUNT <= 4294967295";
        let mut it = s.split_whitespace();
        let (Some(b), Some(c), None) = (it.next(), it.next(), it.next()) else {
            return Err(ConfigError::invalid(path, s, expected));
        };
        let (Ok(base), Ok(count)) = (b.parse::<u32>(), c.parse::<u32>()) else {
            return Err(ConfigError::invalid(path, s, expected));
        };
        let map = IdMap { base, count };
        if !map.is_valid() {
            return Err(ConfigError::invalid(path, s, expected));
        }
        Ok(map)
    }

    /// Whether the range stays clear of the host's ids and of the invalid id
    /// `u32::MAX`.
    pub fn is_valid(&self) -> bool {
        self.count >= 1
            && self.base >= Self::HOST_RESERVED
            && u64::from(self.base) + u64::from(self.count) <= u64::from(u32::MAX)
    }

    /// Whether two ranges share an id.
    pub fn overlaps(&self, other: &IdMap) -> bool {
        let (a0, a1) = (
            u64::from(self.base),
            u64::from(self.base) + u64::from(self.count),
        );
        let (b0, b1) = (
            u64::from(other.base),
            u64::from(other.base) + u64::from(other.count),
        );
        a0 < b1 && b0 < a1
    }
}

impl fmt::Display for IdMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.base, self.count)
    }
}

/// One limit value: a number in the resource's unit, or unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum LimitValue {
    /// `inf`.
    Inf,
    /// A finite amount in the resource's unit (pages for rss/as/memlock).
    Amount(u64),
}

impl fmt::Display for LimitValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LimitValue::Inf => f.write_str("inf"),
            LimitValue::Amount(n) => n.fmt(f),
        }
    }
}

/// The unit a resource is counted in, which decides what a size suffix means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Memory pages: `64M` is converted to pages.
    Pages,
    /// Bytes: `64M` is 64 MiB.
    Bytes,
    /// A plain count (processes, files) or seconds: no suffix.
    Count,
}

/// The host's page size, for converting byte sizes of page-counted limits.
pub fn page_size() -> u64 {
    rustix::param::page_size() as u64
}

impl LimitValue {
    /// Parses a limit: a non-negative number, `inf` (also `infinity`,
    /// `unlimited`, `-1` as util-vserver's tools print), or for byte and page
    /// resources a size with a K/M/G/T suffix.
    pub fn parse(path: &Path, s: &str, unit: Unit) -> Result<Self> {
        let t = s.trim();
        let lower = t.to_ascii_lowercase();
        if matches!(lower.as_str(), "inf" | "infinity" | "unlimited" | "-1") {
            return Ok(LimitValue::Inf);
        }
        let expected = match unit {
            Unit::Count => "a non-negative number or 'inf'",
            Unit::Pages => "a number of pages, a size like 64M, or 'inf'",
            Unit::Bytes => "a number of bytes, a size like 64M, or 'inf'",
        };
        if let Ok(n) = t.parse::<u64>() {
            return Ok(LimitValue::Amount(n));
        }
        if unit == Unit::Count {
            return Err(ConfigError::invalid(path, s, expected));
        }
        let bytes = parse_size(t).ok_or_else(|| ConfigError::invalid(path, s, expected))?;
        Ok(LimitValue::Amount(match unit {
            Unit::Pages => bytes.div_ceil(page_size()),
            _ => bytes,
        }))
    }
}

/// Parses `N`, `NK`, `NM`, `NG`, `NT` (binary multiples, optional `B`/`iB`).
pub fn parse_size(s: &str) -> Option<u64> {
    let t = s.trim();
    let upper = t.to_ascii_uppercase();
    let upper = upper
        .strip_suffix("IB")
        .or_else(|| upper.strip_suffix('B'))
        .unwrap_or(&upper);
    let (digits, shift) = match upper.chars().last()? {
        'K' => (&upper[..upper.len() - 1], 10),
        'M' => (&upper[..upper.len() - 1], 20),
        'G' => (&upper[..upper.len() - 1], 30),
        'T' => (&upper[..upper.len() - 1], 40),
        _ => (upper, 0),
    };
    let n: u64 = digits.trim().parse().ok()?;
    n.checked_mul(1u64 << shift)
}

/// Validates an interface or device name as the kernel does (IFNAMSIZ).
pub fn valid_ifname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 15
        && s != "."
        && s != ".."
        && !s
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
}

/// Parses a dotted netmask into a prefix length; it must be contiguous.
pub fn mask_to_prefix(mask: Ipv4Addr) -> Option<u8> {
    let bits = u32::from(mask);
    let ones = bits.leading_ones();
    (bits.checked_shl(ones).unwrap_or(0) == 0).then_some(ones as u8)
}

/// Parses an IP address, naming the file on error.
pub fn parse_ip(path: &Path, s: &str) -> Result<IpAddr> {
    IpAddr::from_str(s.trim()).map_err(|_| ConfigError::invalid(path, s, "an IPv4 or IPv6 address"))
}

/// Parses a CPU or memory-node list (`0-3,5`), returning it normalised.
pub fn parse_cpu_list(path: &Path, s: &str) -> Result<String> {
    let expected = "a list like 0-3,5";
    let t = s.trim();
    if t.is_empty() {
        return Err(ConfigError::invalid(path, s, expected));
    }
    for part in t.split(',') {
        let ok = match part.split_once('-') {
            Some((a, b)) => {
                matches!((a.parse::<u32>(), b.parse::<u32>()), (Ok(a), Ok(b)) if a <= b)
            }
            None => part.parse::<u32>().is_ok(),
        };
        if !ok {
            return Err(ConfigError::invalid(path, s, expected));
        }
    }
    Ok(t.to_owned())
}

/// Signal names and numbers accepted in `apps/init/killseq`.
pub fn parse_signal(s: &str) -> Option<i32> {
    if let Ok(n) = s.parse::<i32>() {
        return (1..=64).contains(&n).then_some(n);
    }
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    Some(match name {
        "HUP" => 1,
        "INT" => 2,
        "QUIT" => 3,
        "KILL" => 9,
        "USR1" => 10,
        "USR2" => 12,
        "ALRM" => 14,
        "TERM" => 15,
        "CONT" => 18,
        "STOP" => 19,
        "PWR" => 30,
        _ => {
            let off = name.strip_prefix("RTMIN")?;
            let n = if off.is_empty() {
                0
            } else {
                off.strip_prefix('+')?.parse::<i32>().ok()?
            };
            // glibc reserves the first two real-time signals: SIGRTMIN is 34.
            let sig = 34 + n;
            if sig > 64 {
                return None;
            }
            sig
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_names() {
        for good in ["demo", "web1", "a.b_c-d", &"x".repeat(64)] {
            assert!(GuestName::new(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "a/b",
            "..",
            "a..b",
            "-x",
            ".defaults",
            "a\nb",
            "a b",
            &"x".repeat(65),
        ] {
            assert!(GuestName::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn contexts() {
        let p = Path::new("context");
        assert_eq!(Xid::parse(p, "4242\n").unwrap().get(), 4242);
        for bad in ["0", "1", "49152", "70000", "-3", "x", ""] {
            let e = Xid::parse(p, bad).unwrap_err().to_string();
            assert!(e.contains("context") && e.contains("2..49151"), "{e}");
        }
    }

    #[test]
    fn idmaps() {
        let p = Path::new("uidmap");
        assert_eq!(IdMap::parse(p, "131072 65536").unwrap().base, 131072);
        for bad in [
            "0 65536",
            "131072",
            "131072 0",
            "4294967000 65536",
            "a b",
            "1 2 3",
        ] {
            assert!(IdMap::parse(p, bad).is_err(), "{bad}");
        }
        let a = IdMap::for_context(Xid::new(2).unwrap());
        let b = IdMap::for_context(Xid::new(3).unwrap());
        assert!(!a.overlaps(&b));
        assert!(a.overlaps(&IdMap {
            base: 196607,
            count: 2
        }));
        assert!(IdMap::for_context(Xid::new(Xid::MAX).unwrap()).is_valid());
    }

    #[test]
    fn limits_and_sizes() {
        let p = Path::new("rlimits/rss");
        assert_eq!(
            LimitValue::parse(p, "inf", Unit::Pages).unwrap(),
            LimitValue::Inf
        );
        assert_eq!(
            LimitValue::parse(p, "16384", Unit::Pages).unwrap(),
            LimitValue::Amount(16384)
        );
        assert_eq!(
            LimitValue::parse(p, "64M", Unit::Pages).unwrap(),
            LimitValue::Amount((64 << 20) / page_size())
        );
        assert_eq!(
            LimitValue::parse(p, "1K", Unit::Bytes).unwrap(),
            LimitValue::Amount(1024)
        );
        let e = LimitValue::parse(p, "lots", Unit::Pages)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "rlimits/rss: invalid value 'lots': expected a number of pages, a size like 64M, or 'inf'"
        );
        assert!(LimitValue::parse(p, "-5", Unit::Pages).is_err());
        assert!(LimitValue::parse(p, "5M", Unit::Count).is_err());
        assert_eq!(parse_size("10G"), Some(10 << 30));
        assert_eq!(parse_size("10GiB"), Some(10 << 30));
        assert_eq!(parse_size("x"), None);
    }

    #[test]
    fn masks_signals_cpus() {
        assert_eq!(mask_to_prefix("255.255.255.0".parse().unwrap()), Some(24));
        assert_eq!(mask_to_prefix("0.0.0.0".parse().unwrap()), Some(0));
        assert_eq!(mask_to_prefix("255.255.255.255".parse().unwrap()), Some(32));
        assert_eq!(mask_to_prefix("255.0.255.0".parse().unwrap()), None);
        assert_eq!(parse_signal("TERM"), Some(15));
        assert_eq!(parse_signal("sigkill"), Some(9));
        assert_eq!(parse_signal("RTMIN+3"), Some(37));
        assert_eq!(parse_signal("65"), None);
        assert_eq!(parse_signal("BOGUS"), None);
        let p = Path::new("cpuset/cpus");
        assert_eq!(parse_cpu_list(p, "0-3,5\n").unwrap(), "0-3,5");
        assert!(parse_cpu_list(p, "3-1").is_err());
        assert!(parse_cpu_list(p, "a").is_err());
    }
}
