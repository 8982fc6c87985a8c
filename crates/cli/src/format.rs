//! util-vserver's fixed-width number formats, for `vserver-stat` and
//! `vlimit -a` (util-vserver.md §1.3, §1.4): scripts parse these columns,
//! so they are reproduced to the character.

/// A memory size in bytes as a 7-character right-aligned field: scaled by
/// 1024 while it has four digits, one decimal when there is one to show,
/// and a suffix (space, K, M, G, T, or + beyond).
pub fn mem7(bytes: u64) -> String {
    const SUFFIXES: [&str; 6] = [" ", "K", "M", "G", "T", "+"];
    let mut val = bytes;
    let mut tenth = 0;
    let mut suffix = "+";
    for s in SUFFIXES {
        if val < 1000 {
            suffix = s;
            break;
        }
        tenth = 10 * (val & 1023) / 1024;
        val >>= 10;
    }
    let val = val.min(9999);
    if val >= 1000 {
        tenth = 0;
    }
    let number = if tenth != 0 {
        format!("{val}.{tenth}")
    } else {
        val.to_string()
    };
    format!("{:>7}", format!("{number}{suffix}"))
}

/// A duration in milliseconds as a 10-character right-aligned field: `MmSSsCC` under an hour, `HhMMmSS` under a day, `DdHHhMM` under
/// 1000 days, then `YyDDdHH`, and `INVALID` past 999×999 days. The
/// hundredths are the first two digits of the milliseconds, as the
/// original prints them.
pub fn time10(ms: u64) -> String {
    let two = |n: u64| {
        let s = format!("{n:02}");
        s[..2].to_string()
    };
    let millis = ms % 1000;
    let t = ms / 1000;
    let (ss, t) = (t % 60, t / 60);
    let (mm, t) = (t % 60, t / 60);
    let (hh, days) = (t % 24, t / 24);
    let body = if days > 999 * 999 {
        "INVALID".to_string()
    } else if days > 999 {
        format!("{}y{}d{}", days / 365, two(days % 365), two(hh))
    } else if days > 0 {
        format!("{days}d{}h{}", two(hh), two(mm))
    } else if hh > 0 {
        format!("{hh}h{}m{}", two(mm), two(ss))
    } else {
        format!("{mm}m{}s{}", two(ss), two(millis))
    };
    format!("{body:>10}")
}

/// One `vserver-stat` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatRow {
    /// The context.
    pub ctx: u32,
    /// Number of processes.
    pub processes: u64,
    /// Virtual memory, bytes.
    pub vsz: u64,
    /// Resident memory, bytes.
    pub rss: u64,
    /// User CPU time, ms.
    pub user_ms: u64,
    /// System CPU time, ms.
    pub sys_ms: u64,
    /// Time since the context started, ms.
    pub uptime_ms: u64,
    /// Its name (cut to 20 characters).
    pub name: String,
}

/// The header `vserver-stat` prints.
pub const STAT_HEADER: &str = "CTX   PROC    VSZ    RSS  userTIME   sysTIME    UPTIME NAME";

/// Formats one row at util-vserver's columns: CTX from 0, PROC ending at
/// 10, VSZ 10..17, RSS 17..24, the times at 24, 34 and 44, NAME from 55.
pub fn stat_row(r: &StatRow) -> String {
    let mut line = vec![b' '; 55];
    let ctx = r.ctx.to_string();
    line[..ctx.len()].copy_from_slice(ctx.as_bytes());
    let procs = r.processes.to_string();
    let start = 10usize.saturating_sub(procs.len());
    line[start..10].copy_from_slice(&procs.as_bytes()[..10 - start]);
    line[10..17].copy_from_slice(mem7(r.vsz).as_bytes());
    line[17..24].copy_from_slice(mem7(r.rss).as_bytes());
    line[24..34].copy_from_slice(time10(r.user_ms).as_bytes());
    line[34..44].copy_from_slice(time10(r.sys_ms).as_bytes());
    line[44..54].copy_from_slice(time10(r.uptime_ms).as_bytes());
    let mut s = String::from_utf8(line).unwrap_or_default();
    s.extend(r.name.chars().take(20));
    s
}

/// A `vlimit -a` value: `0x…` (or decimal with `-d`), `inf`, or `N/A`.
pub fn limit_value(v: Option<Option<u64>>, decimal: bool) -> String {
    match v {
        None => "N/A".into(),
        Some(None) => "inf".into(),
        Some(Some(n)) if decimal => n.to_string(),
        Some(Some(n)) => format!("0x{n:x}"),
    }
}

/// One `vlimit -a` line: the name, then min, soft and hard at columns 10,
/// 30 and 50 (each preceded by two spaces), then what util-vserver did not
/// have: the current value, the observed maximum and the limit hits.
pub fn vlimit_row(name: &str, fields: &[String]) -> String {
    let mut line = format!("{name:<10}");
    for (i, f) in fields.iter().enumerate() {
        let col = 10 + 20 * i;
        if line.len() < col {
            line.push_str(&" ".repeat(col - line.len()));
        }
        line.push_str("  ");
        line.push_str(f);
        line.push(' ');
    }
    line.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_like_util_vserver() {
        // From util-vserver's FAQ example.
        assert_eq!(mem7(1_011_991_142), " 965.1M");
        assert_eq!(mem7(350_857_625), " 334.6M");
        assert_eq!(mem7(14 * 1024 * 1024), "    14M");
        assert_eq!(mem7(5_505_024), "   5.2M");
        assert_eq!(mem7(5_452_595), "   5.1M");
        assert_eq!(mem7(0), "     0 ");
        assert_eq!(mem7(999), "   999 ");
        assert_eq!(mem7(1000), "   0.9K");
        assert_eq!(mem7(1536), "   1.5K");
        assert_eq!(mem7(u64::MAX), "  15.9+");
    }

    #[test]
    fn times_like_util_vserver() {
        assert_eq!(time10(14 * 60_000 + 14_180), "  14m14s18");
        assert_eq!(time10(2 * 60_000 + 28_690), "   2m28s69");
        assert_eq!(time10(3_600_000 + 33 * 60_000 + 46_000), "   1h33m46");
        assert_eq!(time10(400), "   0m00s40");
        assert_eq!(time10(40), "   0m00s40");
        assert_eq!(
            time10(2 * 86_400_000 + 3 * 3_600_000 + 4 * 60_000),
            "   2d03h04"
        );
        // The original keeps two digits of the day count: 270 shows as 27.
        assert_eq!(time10(1000 * 86_400_000), "   2y27d00");
        assert_eq!(time10(u64::MAX / 2), "   INVALID");
        for ms in [0, 59_999, 3_599_999, 86_399_999] {
            assert_eq!(time10(ms).len(), 10);
        }
    }

    #[test]
    fn stat_rows_at_the_original_columns() {
        let row = StatRow {
            ctx: 49152,
            processes: 7,
            vsz: 14 * 1024 * 1024,
            rss: 5_505_024,
            user_ms: 400,
            sys_ms: 300,
            uptime_ms: 3_600_000 + 30 * 60_000 + 15_000,
            name: "chiffon".into(),
        };
        assert_eq!(
            stat_row(&row),
            "49152    7    14M   5.2M   0m00s40   0m00s30   1h30m15 chiffon"
        );
        let header_cols: Vec<usize> = [
            "PROC", "VSZ", "RSS", "userTIME", "sysTIME", "UPTIME", "NAME",
        ]
        .iter()
        .map(|h| STAT_HEADER.find(h).unwrap() + h.len())
        .collect();
        assert_eq!(header_cols, [10, 17, 24, 34, 44, 54, 59]);
        let long = StatRow {
            name: "x".repeat(30),
            ..row
        };
        assert_eq!(stat_row(&long).len(), 55 + 20);
    }

    #[test]
    fn vlimit_rows() {
        let f = [
            limit_value(Some(None), false),
            limit_value(Some(Some(16384)), false),
            limit_value(None, true),
        ];
        assert_eq!(
            vlimit_row("rss", &f),
            "rss         inf                 0x4000              N/A"
        );
    }
}
