//! `vs_sys::security` where only root can go: dropping from the bounding set
//! (needs CAP_SETPCAP) and loading the filter without no_new_privs (needs
//! CAP_SYS_ADMIN). Run as root; as anyone else each test fails with a
//! message saying so (tests needing root are never skipped).
//!
//! Every test body runs in a re-executed copy of this binary
//! (`security_support::in_child`): what it changes dies with that process.

mod security_support;

use rustix::thread::CapabilitySet;
use security_support::*;
use vs_sys::security::caps;
use vs_sys::security::seccomp::{self, SeccompOptions};

const CAP_CHOWN: u8 = 0;
const CAP_NET_BIND_SERVICE: u8 = 10;

#[test]
fn bounding_set_keeps_only_what_is_asked_and_nothing_comes_back() {
    require_root("bounding_set_keeps_only_what_is_asked_and_nothing_comes_back");
    in_child(
        "bounding_set_keeps_only_what_is_asked_and_nothing_comes_back",
        || {
            // Put a kept and a dropped capability into the inheritable and the
            // ambient set first: the dropped one must leave both.
            let both = CapabilitySet::CHOWN | CapabilitySet::NET_BIND_SERVICE;
            let mut sets = rustix::thread::capabilities(None).unwrap();
            sets.inheritable |= both;
            rustix::thread::set_capabilities(None, sets).unwrap();
            for cap in [CapabilitySet::CHOWN, CapabilitySet::NET_BIND_SERVICE] {
                rustix::thread::configure_capability_in_ambient_set(cap, true).unwrap();
            }
            assert_eq!(
                cap_mask("CapAmb"),
                1 << CAP_CHOWN | 1 << CAP_NET_BIND_SERVICE
            );

            caps::limit_bounding_set(&[CAP_CHOWN]).unwrap();

            assert_eq!(caps::bounding_set().unwrap(), vec![CAP_CHOWN]);
            assert_eq!(status_field("CapBnd"), "0000000000000001");
            assert_eq!(cap_mask("CapInh"), 1 << CAP_CHOWN);
            assert_eq!(cap_mask("CapAmb"), 1 << CAP_CHOWN);

            // A program root execs now gets CAP_CHOWN at most.
            let out = std::process::Command::new("/bin/cat")
                .arg("/proc/self/status")
                .output()
                .unwrap();
            let status = String::from_utf8(out.stdout).unwrap();
            for field in ["CapBnd", "CapPrm", "CapEff"] {
                assert_eq!(
                    field_of(&status, field),
                    "0000000000000001",
                    "{field}:\n{status}"
                );
            }
            for field in ["CapInh", "CapAmb"] {
                let mask = u64::from_str_radix(&field_of(&status, field), 16).unwrap();
                assert_eq!(mask & !1, 0, "{field}:\n{status}");
            }

            // Idempotent, and a second, smaller call drops the rest.
            caps::limit_bounding_set(&[CAP_CHOWN]).unwrap();
            caps::limit_bounding_set(&[]).unwrap();
            assert_eq!(caps::bounding_set().unwrap(), Vec::<u8>::new());
            assert_eq!(cap_mask("CapInh"), 0);
            assert_eq!(cap_mask("CapAmb"), 0);
        },
    );
}

#[test]
fn seccomp_loads_as_root_without_no_new_privs() {
    require_root("seccomp_loads_as_root_without_no_new_privs");
    in_child("seccomp_loads_as_root_without_no_new_privs", || {
        assert_eq!(status_field("NoNewPrivs"), "0");
        seccomp::install(&SeccompOptions::default()).unwrap();
        assert_eq!(status_field("Seccomp"), "2");
        // Setuid programs in the guest keep working: no_new_privs stays off.
        assert_eq!(status_field("NoNewPrivs"), "0");
        assert_eq!(
            sys(libc::SYS_keyctl, [0, -3, 0, 0, 0]),
            Err(libc::EPERM),
            "keyctl"
        );
        assert_eq!(
            int80(288, 0, (-3i32) as u32, 0),
            -libc::EPERM,
            "i386 keyctl"
        );
        // Root is refused too, where the kernel would have let it.
        assert_eq!(
            sys(libc::SYS_init_module, [0, 0, 0, 0, 0]),
            Err(libc::EPERM),
            "init_module"
        );
        // A second filter stacks on the first (exec helpers of a guest
        // whose init installed one already).
        seccomp::install(&SeccompOptions::default()).unwrap();
    });
}
