//! Property test: writing any valid configuration and reading it back gives
//! the same value, field by field.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use proptest::prelude::*;
use vs_config::*;

fn token() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9_-]{0,5}(\\.[a-z0-9_-]{1,5})?"
}

fn opt<T: std::fmt::Debug + Clone + 'static>(
    s: impl Strategy<Value = T> + 'static,
) -> BoxedStrategy<Option<T>> {
    proptest::option::of(s).boxed()
}

fn ifname() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9]{0,9}"
}

fn ipv4() -> impl Strategy<Value = Ipv4Addr> {
    any::<u32>().prop_map(Ipv4Addr::from)
}

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        ipv4().prop_map(IpAddr::V4),
        any::<u128>().prop_map(|n| IpAddr::V6(Ipv6Addr::from(n))),
    ]
}

fn prefix_mask(p: u8) -> Ipv4Addr {
    Ipv4Addr::from(if p == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(p))
    })
}

fn scope() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("global".to_string()),
        Just("link".to_string()),
        Just("host".to_string()),
        (0u8..=255).prop_map(|n| n.to_string()),
    ]
}

fn interface() -> impl Strategy<Value = Interface> {
    (
        ip(),
        0u8..=128,
        any::<(bool, bool)>(),
        opt(ifname()),
        opt(ifname()),
        any::<(bool, bool, bool, bool, bool)>(),
        opt(ipv4()),
        opt(scope()),
        opt(ip()),
    )
        .prop_map(
            |(ip, p, (with_prefix, with_mask), dev, name, flags, bcast, scope, peer)| {
                let max = if ip.is_ipv4() { 32 } else { 128 };
                let p = p % (max + 1);
                let mut i = Interface::new(ip);
                i.prefix = with_prefix.then_some(p);
                i.mask = (with_mask && ip.is_ipv4()).then(|| prefix_mask(p));
                i.dev = dev;
                i.name = name;
                (i.nodev, i.disabled, i.down, i.vlandev, i.novlandev) = flags;
                i.bcast = bcast;
                i.scope = scope;
                i.peer = peer;
                i
            },
        )
}

fn interfaces() -> impl Strategy<Value = Interfaces> {
    (
        opt(ifname()),
        opt(0u8..=128),
        opt((0u8..=32).prop_map(prefix_mask)),
        opt(ipv4()),
        opt(scope()),
        opt(ip()),
        any::<(bool, bool)>(),
        proptest::collection::btree_map("[0-9]{1,3}", interface(), 0..4),
    )
        .prop_map(
            |(dev, prefix, mask, bcast, scope, lback, (vlandev, novlandev), list)| Interfaces {
                dev,
                prefix,
                mask,
                bcast,
                scope,
                lback,
                vlandev,
                novlandev,
                list,
            },
        )
}

fn limit_value() -> impl Strategy<Value = LimitValue> {
    prop_oneof![
        Just(LimitValue::Inf),
        (0u64..1 << 40).prop_map(LimitValue::Amount)
    ]
}

/// Limits whose min <= soft <= hard, as the reader demands.
fn limit_set(with_min: bool) -> impl Strategy<Value = LimitSet> {
    prop_oneof![
        limit_value().prop_map(|v| LimitSet {
            all: Some(v),
            ..LimitSet::default()
        }),
        (
            any::<bool>(),
            proptest::collection::vec(0u64..1 << 40, 3),
            any::<(bool, bool, bool)>()
        )
            .prop_map(move |(inf_all, mut v, (h, s, m))| {
                v.sort();
                LimitSet {
                    all: inf_all.then_some(LimitValue::Inf),
                    min: (m && with_min).then_some(LimitValue::Amount(v[0])),
                    soft: s.then_some(LimitValue::Amount(v[1])),
                    hard: h.then_some(LimitValue::Amount(v[2])),
                }
            }),
    ]
    .prop_filter("at least one value", |s| {
        s.all.is_some() || s.hard.is_some() || s.soft.is_some() || s.min.is_some()
    })
}

fn list<T: Named>() -> impl Strategy<Value = Vec<ListItem<T>>> {
    let n = T::all().len();
    proptest::collection::vec(
        (any::<bool>(), 0..n + 2).prop_map(move |(clear, i)| ListItem {
            clear,
            value: if i < n {
                ListValue::Name(T::all()[i])
            } else if i == n {
                ListValue::All
            } else {
                ListValue::None
            },
        }),
        0..6,
    )
}

fn fstab() -> impl Strategy<Value = FstabEntry> {
    (
        "[a-z][a-z0-9]{0,6}",
        "(/[a-z0-9]{1,6}){1,3}",
        token(),
        "[a-z0-9=,]{1,16}",
        0u32..3,
        0u32..3,
    )
        .prop_map(|(spec, file, vfstype, options, freq, passno)| FstabEntry {
            spec,
            file,
            vfstype,
            options,
            freq,
            passno,
        })
}

fn pick<T: Copy + std::fmt::Debug + 'static>(all: &'static [T]) -> impl Strategy<Value = T> {
    (0..all.len()).prop_map(move |i| all[i])
}

fn signal() -> impl Strategy<Value = i32> {
    1i32..=64
}

fn init() -> impl Strategy<Value = InitConfig> {
    let argv = proptest::collection::vec("[a-zA-Z0-9/=._-][a-zA-Z0-9/ =._-]{0,10}", 1..4);
    (
        opt(pick(InitStyle::ALL)),
        opt("[0-6S]"),
        opt("[0-6]"),
        opt("[0-6]"),
        opt((
            signal(),
            proptest::collection::vec((0u32..100, signal()), 0..3),
        )
            .prop_map(|(first, then)| KillSeq { first, then })),
        opt(argv.clone()),
        opt(argv),
        proptest::collection::vec("[a-z][a-z0-9_]{0,7}", 0..3),
        proptest::collection::vec("[a-z][a-z0-9]{0,7}", 0..3),
        opt(proptest::collection::vec(
            ("[A-Z_][A-Z0-9_]{0,7}", "[a-z0-9/:=]{0,10}"),
            0..4,
        )),
    )
        .prop_map(
            |(
                style,
                runlevel,
                runlevel_start,
                runlevel_stop,
                killseq,
                cmd_start,
                cmd_stop,
                mark,
                depends,
                environment,
            )| {
                InitConfig {
                    style,
                    runlevel,
                    runlevel_start,
                    runlevel_stop,
                    killseq,
                    cmd_start,
                    cmd_stop,
                    mark,
                    depends,
                    environment,
                }
            },
        )
}

fn sched() -> impl Strategy<Value = Sched> {
    (
        opt(1u64..1000),
        opt(1u64..1000),
        opt(0u64..1000),
        opt(0u64..1000),
        opt(0u64..1000),
        opt(-100i64..100),
        opt(1u64..1000),
        opt(1u64..1000),
        any::<bool>(),
    )
        .prop_map(
            |(
                fill_rate,
                interval,
                tokens,
                tokens_min,
                tokens_max,
                priority_bias,
                fill_rate2,
                interval2,
                idle_time,
            )| Sched {
                fill_rate,
                interval,
                tokens,
                tokens_min,
                tokens_max,
                priority_bias,
                fill_rate2,
                interval2,
                idle_time,
            },
        )
}

fn cpu_list() -> impl Strategy<Value = String> {
    proptest::collection::vec((0u32..16, 0u32..4), 1..3).prop_map(|parts| {
        parts
            .iter()
            .map(|(a, w)| {
                if *w == 0 {
                    a.to_string()
                } else {
                    format!("{a}-{}", a + w)
                }
            })
            .collect::<Vec<_>>()
            .join(",")
    })
}

fn cpuset() -> impl Strategy<Value = Cpuset> {
    (
        opt(token()),
        opt(cpu_list()),
        opt(cpu_list()),
        any::<(bool, bool, bool, bool)>(),
    )
        .prop_map(
            |(name, cpus, mems, (cpu_exclusive, mem_exclusive, virtualized, nocreate))| Cpuset {
                name,
                cpus,
                mems,
                cpu_exclusive,
                mem_exclusive,
                virtualized,
                nocreate,
            },
        )
}

fn script() -> impl Strategy<Value = Script> {
    (proptest::collection::vec(any::<u8>(), 0..64), any::<bool>()).prop_map(
        |(content, executable)| Script {
            content,
            executable,
        },
    )
}

fn hook_scripts() -> impl Strategy<Value = HookScripts> {
    (
        opt(script()),
        proptest::collection::btree_map("[a-z0-9][a-z0-9_-]{0,6}", script(), 0..3),
    )
        .prop_map(|(main, dir)| HookScripts { main, dir })
        .prop_filter("something to write", |h| {
            h.main.is_some() || !h.dir.is_empty()
        })
}

fn netns() -> impl Strategy<Value = Netns> {
    (
        opt(token()),
        (any::<bool>(), opt(ifname()), opt(ip()), any::<bool>()),
        proptest::collection::btree_map(
            "[0-9]{1,2}",
            (opt(ifname()), opt(ifname()), opt(Just("veth".to_string())))
                .prop_map(|(host, guest, kind)| NetnsInterface { host, guest, kind }),
            0..3,
        ),
    )
        .prop_map(|(name, (shared, bridge, gateway, nat), interfaces)| Netns {
            name,
            shared,
            bridge,
            gateway,
            nat,
            interfaces,
        })
}

fn config() -> impl Strategy<Value = GuestConfig> {
    let ids = (
        opt(token()),
        opt((2u32..=49151).prop_map(|n| Xid::new(n).unwrap())),
        opt("(/[a-z0-9]{1,8}){1,3}".prop_map(PathBuf::from)),
        opt("(/[a-z0-9]{1,8}){1,3}".prop_map(PathBuf::from)),
        opt("(/[a-z0-9]{1,8}){1,3}".prop_map(PathBuf::from)),
        (
            opt(token()),
            opt(token()),
            opt(token()),
            opt(token()),
            opt(token()),
            opt(token()),
        ),
    );
    let limits = (
        proptest::collection::btree_map(pick(RlimitResource::ALL), limit_set(true), 0..5),
        proptest::collection::btree_map(pick(UlimitResource::ALL), limit_set(false), 0..5),
    );
    let lists = (
        list::<Cap>(),
        list::<CCap>(),
        list::<CFlag>(),
        list::<NFlag>(),
        list::<NCap>(),
    );
    let misc = (
        opt(proptest::collection::vec(fstab(), 0..4)),
        opt((
            pick(PersonalityType::ALL),
            proptest::collection::vec(pick(PersonalityFlag::ALL), 0..3),
        )
            .prop_map(|(kind, flags)| Personality { kind, flags })),
        opt(-20i32..=19),
        opt("/bin/[a-z]{1,5}( -[a-z]{1,5})?"),
        any::<(bool, bool)>(),
        opt((65536u32..1 << 31, 1u32..1 << 20).prop_map(|(base, count)| IdMap { base, count })),
        (opt(pick(StorageType::ALL)), opt(1u64..1 << 45)),
    );
    let dirs = (
        init(),
        sched(),
        cpuset(),
        proptest::collection::btree_map(
            "[a-z]{1,5}",
            (
                "(/[a-z0-9]{1,8}){1,2}",
                any::<u64>(),
                any::<u64>(),
                0u8..=100,
                any::<bool>(),
            )
                .prop_map(
                    |(directory, space_total, inodes_total, reserved, disabled)| Dlimit {
                        directory,
                        space_total,
                        inodes_total,
                        reserved,
                        disabled,
                    },
                ),
            0..2,
        ),
        proptest::collection::btree_map(pick(Hook::ALL), hook_scripts(), 0..3),
        opt(netns()),
        interfaces(),
        proptest::collection::btree_map(
            "(blkio|cpu|memory|io)\\.[a-z]{1,6}(\\.[a-z]{1,3})?",
            "[0-9a-z]{1,6}",
            0..3,
        ),
    );
    (ids, limits, lists, misc, dirs).prop_map(
        |(
            (
                name,
                context,
                vdir,
                run,
                cache,
                (nodename, domainname, sysname, release, version, machine),
            ),
            (rlimits, ulimits),
            (bcapabilities, ccapabilities, cflags, nflags, ncapabilities),
            (fstab, personality, nice, shell, (disabled, privileged), uidmap, (kind, size)),
            (init, sched, cpuset, dlimits, scripts, netns, interfaces, cgroup),
        )| GuestConfig {
            name,
            context,
            vdir,
            run,
            cache,
            uts: Uts {
                nodename,
                domainname,
                sysname,
                release,
                version,
                machine,
            },
            interfaces,
            rlimits,
            ulimits,
            bcapabilities,
            ccapabilities,
            cflags,
            nflags,
            ncapabilities,
            fstab,
            personality,
            nice,
            shell,
            init,
            sched,
            cpuset,
            dlimits,
            scripts,
            disabled,
            privileged,
            uidmap,
            storage: Storage { kind, size },
            netns,
            cgroup,
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn write_then_read_gives_the_same_config(cfg in config()) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("guest");
        write_guest(&path, &cfg).unwrap();
        let (back, _warnings) = read_guest(&path).unwrap();
        prop_assert_eq!(&back, &cfg);
        // Writing the same value over it changes nothing.
        write_guest(&path, &back).unwrap();
        let (again, _) = read_guest(&path).unwrap();
        prop_assert_eq!(again, cfg);
    }

    #[test]
    fn rewriting_with_less_removes_the_rest(a in config(), b in config()) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("guest");
        write_guest(&path, &a).unwrap();
        write_guest(&path, &b).unwrap();
        let (back, warnings) = read_guest(&path).unwrap();
        prop_assert_eq!(back, b);
        prop_assert!(
            !warnings.iter().any(|w| w.message.contains("unknown configuration file")),
            "{:?}", warnings
        );
    }
}

#[test]
fn empty_config_round_trips_to_an_empty_dir() {
    let dir = tempfile::tempdir().unwrap();
    write_guest(dir.path(), &GuestConfig::default()).unwrap();
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    let (back, w) = read_guest(dir.path()).unwrap();
    assert_eq!(back, GuestConfig::default());
    assert!(w.is_empty(), "{w:?}");
    let _ = BTreeMap::<u8, u8>::new();
}
