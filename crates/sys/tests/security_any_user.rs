//! `vs_sys::security` in real processes, as any user: these pass run as root
//! and as an unprivileged user alike (where root would be allowed more, the
//! child first drops the capability concerned from its effective set).
//!
//! Every test body runs in a re-executed copy of this binary
//! (`security_support::in_child`): what it changes dies with that process.

mod security_support;

use rustix::thread::CapabilitySet;
use security_support::*;
use vs_sys::security::rlimit::{self, Bound, Clamped, Resource, Rlimit};
use vs_sys::security::seccomp::{self, SeccompOptions};
use vs_sys::security::{SecurityError, caps, personality};

/// keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0): harmless,
/// allowed to anyone without a filter.
fn keyctl() -> Result<libc::c_long, i32> {
    sys(libc::SYS_keyctl, [0, -3, 0, 0, 0])
}

/// The same through the i386 ABI (keyctl is 288 there), as a raw result.
fn keyctl_i386() -> i32 {
    int80(288, 0, (-3i32) as u32, 0)
}

/// bpf() with a command that does not exist: EINVAL without a filter.
fn bpf() -> Result<libc::c_long, i32> {
    sys(libc::SYS_bpf, [0xffff, 0, 0, 0, 0])
}

/// perf_event_open(NULL, ...): EFAULT without a filter.
fn perf_event_open() -> Result<libc::c_long, i32> {
    sys(libc::SYS_perf_event_open, [0, 0, -1, -1, 0])
}

/// userfaultfd(UFFD_USER_MODE_ONLY): allowed to anyone without a filter.
fn userfaultfd() -> Result<libc::c_long, i32> {
    let r = sys(libc::SYS_userfaultfd, [1, 0, 0, 0, 0]);
    if let Ok(fd) = r {
        // SAFETY: fd is the descriptor userfaultfd just returned; nothing
        // else owns it.
        unsafe { libc::close(fd as libc::c_int) };
    }
    r
}

/// unshare(CLONE_NEWUSER) in this multi-threaded process: EINVAL without a
/// filter (a user namespace needs a single-threaded caller).
fn unshare_user_here() -> Result<libc::c_long, i32> {
    sys(
        libc::SYS_unshare,
        [libc::CLONE_NEWUSER as libc::c_long, 0, 0, 0, 0],
    )
}

/// clone3(NULL, 0): EINVAL without a filter (size below the first version).
fn clone3() -> Result<libc::c_long, i32> {
    sys(libc::SYS_clone3, [0, 0, 0, 0, 0])
}

/// ioctl with a full 64-bit request value, straight to the kernel.
fn ioctl(
    fd: &impl std::os::fd::AsRawFd,
    request: u64,
    arg: *const u8,
) -> Result<libc::c_long, i32> {
    sys(
        libc::SYS_ioctl,
        [
            fd.as_raw_fd() as libc::c_long,
            request as libc::c_long,
            arg as libc::c_long,
            0,
            0,
        ],
    )
}

// asm-generic/ioctls.h, as 64-bit request values for `ioctl` above.
const TIOCSTI: u64 = 0x5412;
const TIOCGWINSZ: u64 = 0x5413;
const TIOCLINUX: u64 = 0x541c;

fn not_eperm(what: &str, r: Result<libc::c_long, i32>) {
    assert_ne!(
        r,
        Err(libc::EPERM),
        "{what} already fails with EPERM without a filter"
    );
}

#[test]
fn seccomp_denies_the_list_on_x86_64_and_i386() {
    in_child("seccomp_denies_the_list_on_x86_64_and_i386", || {
        let (_master, slave) = controlling_pty();
        let byte = b'x';
        let subcode = 0u8; // TIOCLINUX sub-command (none valid on a pty)

        // Without a filter none of these fails with EPERM, so an EPERM
        // afterwards is the filter's.
        not_eperm("keyctl", keyctl());
        assert_ne!(keyctl_i386(), -libc::EPERM, "i386 keyctl without a filter");
        assert_eq!(bpf(), Err(libc::EINVAL));
        assert_eq!(perf_event_open(), Err(libc::EFAULT));
        not_eperm("userfaultfd", userfaultfd());
        assert_eq!(unshare_user_here(), Err(libc::EINVAL));
        assert_eq!(clone3(), Err(libc::EINVAL));
        // Allowed to a process on its own controlling terminal (EIO where
        // dev.tty.legacy_tiocsti is 0 and we lack CAP_SYS_ADMIN).
        not_eperm("TIOCSTI", ioctl(&slave, TIOCSTI, &byte));
        not_eperm("TIOCLINUX", ioctl(&slave, TIOCLINUX, &subcode));

        rustix::thread::set_no_new_privs(true).unwrap();
        seccomp::install(&SeccompOptions::default()).unwrap();
        assert_eq!(status_field("Seccomp"), "2");

        assert_eq!(keyctl(), Err(libc::EPERM), "keyctl");
        assert_eq!(keyctl_i386(), -libc::EPERM, "keyctl through int 0x80");
        assert_eq!(bpf(), Err(libc::EPERM), "bpf");
        assert_eq!(perf_event_open(), Err(libc::EPERM), "perf_event_open");
        assert_eq!(userfaultfd(), Err(libc::EPERM), "userfaultfd");
        assert_eq!(
            unshare_user_here(),
            Err(libc::EPERM),
            "unshare(CLONE_NEWUSER)"
        );
        assert_eq!(
            unshare_in_forked_child(libc::CLONE_NEWUSER).map_err(|e| e.raw_os_error()),
            Err(Some(libc::EPERM)),
            "unshare(CLONE_NEWUSER) in a single-threaded child"
        );
        assert_eq!(clone3(), Err(libc::ENOSYS), "clone3");
        assert_eq!(ioctl(&slave, TIOCSTI, &byte), Err(libc::EPERM), "TIOCSTI");
        assert_eq!(
            ioctl(&slave, TIOCSTI | 0xffff_ffff_0000_0000, &byte),
            Err(libc::EPERM),
            "TIOCSTI with the upper 32 bits set"
        );
        assert_eq!(
            ioctl(&slave, TIOCLINUX, &subcode),
            Err(libc::EPERM),
            "TIOCLINUX"
        );

        // Still allowed.
        assert_eq!(
            sys(libc::SYS_getpid, [0; 5]),
            Ok(std::process::id() as libc::c_long)
        );
        assert_eq!(rustix::system::uname().sysname().to_bytes(), b"Linux");
        let mut winsize = [0u8; 8];
        assert!(ioctl(&slave, TIOCGWINSZ, winsize.as_mut_ptr()).is_ok());
        // Spawning works: glibc's posix_spawn tries clone3, gets ENOSYS and
        // falls back to clone; the new program inherits the filter.
        let out = std::process::Command::new("/bin/cat")
            .arg("/proc/self/status")
            .output()
            .unwrap();
        assert!(out.status.success());
        let status = String::from_utf8(out.stdout).unwrap();
        assert_eq!(field_of(&status, "Seccomp"), "2");
        // That other namespace flags pass the filter (CLONE_NEWUTS ...) is
        // checked in the unit tests' BPF interpreter: unprivileged, the
        // kernel itself would refuse them here with EPERM.
    });
}

#[test]
fn seccomp_options_allow_user_namespaces_and_tiocsti() {
    in_child("seccomp_options_allow_user_namespaces_and_tiocsti", || {
        let (_master, slave) = controlling_pty();
        let byte = b'x';
        rustix::thread::set_no_new_privs(true).unwrap();
        let opts = SeccompOptions {
            allow_user_namespaces: true,
            allow_tiocsti: true,
            deny_set_utsname: false,
        };
        seccomp::install(&opts).unwrap();
        assert_eq!(status_field("Seccomp"), "2");

        unshare_in_forked_child(libc::CLONE_NEWUSER).expect("unshare(CLONE_NEWUSER) allowed");
        assert_eq!(
            unshare_user_here(),
            Err(libc::EINVAL),
            "the kernel's answer, not EPERM"
        );
        assert_eq!(clone3(), Err(libc::EINVAL), "clone3 reaches the kernel");
        not_eperm("TIOCSTI", ioctl(&slave, TIOCSTI, &byte));
        // The rest of the list still holds.
        assert_eq!(keyctl(), Err(libc::EPERM));
        assert_eq!(keyctl_i386(), -libc::EPERM);
        assert_eq!(ioctl(&slave, TIOCLINUX, &0u8), Err(libc::EPERM));
    });
}

#[test]
fn seccomp_without_no_new_privs_or_cap_sys_admin_is_refused() {
    in_child(
        "seccomp_without_no_new_privs_or_cap_sys_admin_is_refused",
        || {
            drop_effective(CapabilitySet::SYS_ADMIN);
            assert_eq!(status_field("NoNewPrivs"), "0");
            let err = seccomp::install(&SeccompOptions::default()).unwrap_err();
            assert!(matches!(err, SecurityError::SeccompNotPermitted), "{err:?}");
            assert!(err.to_string().contains("CAP_SYS_ADMIN"), "{err}");
            assert_eq!(err.raw_os_error(), Some(libc::EACCES));
            // libseccomp did not set no_new_privs behind our back (it would have,
            // by default, and then the load would have succeeded).
            assert_eq!(status_field("NoNewPrivs"), "0");
            assert_eq!(status_field("Seccomp"), "0");
        },
    );
}

#[test]
fn bounding_set_drop_without_cap_setpcap_fails_clearly() {
    in_child(
        "bounding_set_drop_without_cap_setpcap_fails_clearly",
        || {
            drop_effective(CapabilitySet::SETPCAP);
            let before = caps::bounding_set().unwrap();
            let keep = [0u8];
            if before.iter().all(|c| keep.contains(c)) {
                // Started with (almost) nothing in the bounding set (`setpriv
                // --bounding-set=-all`): nothing to drop needs no privilege.
                caps::limit_bounding_set(&keep).unwrap();
                return;
            }
            let err = caps::limit_bounding_set(&keep).unwrap_err();
            assert_eq!(err.raw_os_error(), Some(libc::EPERM), "{err}");
            let first = before.iter().find(|c| !keep.contains(c)).unwrap();
            assert!(
                err.to_string()
                    .starts_with(&format!("capability {first}: drop from the bounding set: ")),
                "{err}"
            );
            assert_eq!(caps::bounding_set().unwrap(), before);
        },
    );
}

#[test]
fn rlimits_are_set_and_clamped_to_the_hard_limit() {
    in_child("rlimits_are_set_and_clamped_to_the_hard_limit", || {
        // Root with CAP_SYS_RESOURCE could raise hard limits; without it
        // (root on the test machines, and every unprivileged user) not.
        drop_effective(CapabilitySet::SYS_RESOURCE);

        let clamps = rlimit::apply(&[Rlimit {
            resource: Resource::Nofile,
            soft: Some(64),
            hard: Some(128),
        }])
        .unwrap();
        assert!(clamps.is_empty(), "{clamps:?}");
        let got = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        assert_eq!((got.current, got.maximum), (Some(64), Some(128)));

        let clamps = rlimit::apply(&[Rlimit {
            resource: Resource::Nofile,
            soft: Some(500),
            hard: Some(1000),
        }])
        .unwrap();
        assert_eq!(
            clamps,
            vec![
                Clamped {
                    resource: Resource::Nofile,
                    bound: Bound::Hard,
                    requested: Some(1000),
                    granted: Some(128),
                },
                Clamped {
                    resource: Resource::Nofile,
                    bound: Bound::Soft,
                    requested: Some(500),
                    granted: Some(128),
                },
            ]
        );
        let now = rlimit::current(Resource::Nofile);
        assert_eq!((now.soft, now.hard), (Some(128), Some(128)));

        // Unlimited asked, the current hard limit given; lowering others
        // in the same call still works.
        let clamps = rlimit::apply(&[
            Rlimit {
                resource: Resource::Nofile,
                soft: Some(32),
                hard: None,
            },
            Rlimit {
                resource: Resource::Core,
                soft: Some(0),
                hard: Some(0),
            },
        ])
        .unwrap();
        assert_eq!(clamps.len(), 1, "{clamps:?}");
        assert_eq!((clamps[0].requested, clamps[0].granted), (None, Some(128)));
        let core = rlimit::current(Resource::Core);
        assert_eq!((core.soft, core.hard), (Some(0), Some(0)));

        // Kept across exec.
        let out = std::process::Command::new("/bin/sh")
            .args(["-c", "ulimit -Sn; ulimit -Hn"])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "32\n128\n");
    });
}

#[test]
fn personality_linux32_makes_uname_say_i686() {
    in_child("personality_linux32_makes_uname_say_i686", || {
        assert_eq!(rustix::system::uname().machine().to_bytes(), b"x86_64");
        personality::set_personality(personality::PER_LINUX32).unwrap();
        assert_eq!(personality::personality(), personality::PER_LINUX32);
        assert_eq!(rustix::system::uname().machine().to_bytes(), b"i686");
        // Kept across exec.
        let out = std::process::Command::new("uname")
            .arg("-m")
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "i686\n");
        personality::set_personality(personality::PER_LINUX).unwrap();
        assert_eq!(rustix::system::uname().machine().to_bytes(), b"x86_64");
    });
}
