//! The guest's seccomp filter (DESIGN §4): a deny list on top of what user
//! namespaces, the bounding set and cgroups already forbid, for every ABI a
//! process on this host can call the kernel through (x86_64, i386 via
//! `int 0x80`, x32). Everything not listed is allowed; listed calls fail with
//! `EPERM` (the guest's programs see an ordinary refusal, nothing is killed).
//!
//! Denied always ([`DENIED`]): kexec, kernel modules, `open_by_handle_at`
//! (the "shocker" escape), the kernel keyring (`keyctl`, `add_key`,
//! `request_key`: not namespaced), `perf_event_open`, `bpf`, `userfaultfd`
//! (a classic exploit helper), `swapon`/`swapoff`, `iopl`/`ioperm`, `acct`,
//! `lookup_dcookie`, `quotactl`/`quotactl_fd`, io_uring (`io_uring_setup`,
//! `_enter`, `_register`: a large attack surface whose operations bypass
//! this very filter, denied by Docker's and ChromeOS's defaults too;
//! programs fall back to ordinary I/O); and the terminal injection
//! ioctls `TIOCLINUX` always and `TIOCSTI` unless
//! [`SeccompOptions::allow_tiocsti`] (CVE-2017-5226 class: a guest process
//! pushing input into a terminal it shares).
//!
//! Denied unless [`SeccompOptions::allow_user_namespaces`] (ccap
//! `NAMESPACE`): new user namespaces — `clone` and `unshare` with
//! `CLONE_NEWUSER` in their flags and `setns` with `CLONE_NEWUSER` in its
//! type. `clone3` passes its flags inside a `struct clone_args` in memory,
//! which a seccomp filter cannot read, so then `clone3` fails as a whole, with
//! `ENOSYS`: glibc (and other libcs) take that as "kernel too old" and fall
//! back to `clone`, whose flags the filter does see. `setns(fd, 0)` is left
//! alone: it can only enter a user namespace that exists and in which the
//! caller already has `CAP_SYS_ADMIN`, never make one.
//!
//! Deliberately *not* denied: `reboot` (inside the guest's PID namespace it
//! signals the guest's init: that is how a guest restarts or halts,
//! DESIGN §1), `name_to_handle_at` (harmless without `open_by_handle_at`;
//! systemd uses it to find mount points), `mount` & co. (a user-namespace
//! guest's init needs them; the kernel scopes them), `personality`.
//!
//! Not setting `no_new_privs`: libseccomp sets it before loading unless told
//! not to, and with it set the guest's setuid programs (`su`, `sudo`,
//! `passwd`) stop working. So the filter is loaded with the caller's
//! `CAP_SYS_ADMIN` instead; a caller without it (and without `no_new_privs`)
//! gets [`SecurityError::SeccompNotPermitted`].

use std::fs::File;
use std::io::{Read, Seek};

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};

use super::{Result, SecurityError};

/// What the filter lets through beyond the default deny list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeccompOptions {
    /// ccap `NAMESPACE`: the guest may create user namespaces (and `clone3`
    /// works).
    pub allow_user_namespaces: bool,
    /// The guest may use the `TIOCSTI` ioctl (push a byte into a terminal's
    /// input).
    pub allow_tiocsti: bool,
    /// Without ccap `SET_UTSNAME`: sethostname(2) and setdomainname(2) fail
    /// (the guest's UTS namespace would otherwise let its root rename it).
    pub deny_set_utsname: bool,
}

/// System calls that always fail with `EPERM`, by name.
pub const DENIED: &[&str] = &[
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "open_by_handle_at",
    "keyctl",
    "add_key",
    "request_key",
    "perf_event_open",
    "bpf",
    "userfaultfd",
    "swapon",
    "swapoff",
    "iopl",
    "ioperm",
    "acct",
    "lookup_dcookie",
    "quotactl",
    "quotactl_fd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
];

/// The ABIs a process on this host can enter the kernel through, each with
/// the name [`Skipped::abi`] reports.
#[cfg(target_arch = "x86_64")]
const ABIS: &[(ScmpArch, &str)] = &[
    (ScmpArch::X8664, "x86_64"),
    (ScmpArch::X86, "x86"),
    (ScmpArch::X32, "x32"),
];
#[cfg(target_arch = "aarch64")]
const ABIS: &[(ScmpArch, &str)] = &[(ScmpArch::Aarch64, "aarch64"), (ScmpArch::Arm, "arm")];
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const ABIS: &[(ScmpArch, &str)] = &[(ScmpArch::Native, "native")];

/// `TIOCSTI` and `TIOCLINUX` (asm-generic/ioctls.h): the same numbers on
/// every x86 ABI (and most others), whatever the C library calls them.
const TIOCSTI: u64 = 0x5412;
const TIOCLINUX: u64 = 0x541c;

/// A rule left out for one ABI because that ABI has no such system call
/// (`kexec_file_load` on i386, say), or because the libseccomp in use does
/// not know the name at all (then it is left out for every ABI).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Skipped {
    /// `x86_64`, `x86` or `x32`.
    pub abi: &'static str,
    /// The system call's name.
    pub syscall: &'static str,
}

/// A built filter, not yet loaded.
pub struct Filter {
    ctx: ScmpFilterContext,
    skipped: Vec<Skipped>,
}

impl std::fmt::Debug for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Filter")
            .field("skipped", &self.skipped)
            .finish_non_exhaustive()
    }
}

fn scmp(op: &'static str) -> impl FnOnce(libseccomp::error::SeccompError) -> SecurityError {
    move |source| SecurityError::Seccomp { op, source }
}

/// The condition `args[arg] & mask == value`.
fn masked(arg: u32, mask: u64, value: u64) -> ScmpArgCompare {
    ScmpArgCompare::new(arg, ScmpCompareOp::MaskedEqual(mask), value)
}

/// Builds the rules for one ABI in a filter of its own. Per ABI because a
/// name may exist on one and not on another; the filters are merged after.
struct AbiFilter {
    arch: ScmpArch,
    abi: &'static str,
    ctx: ScmpFilterContext,
    skipped: Vec<Skipped>,
}

impl AbiFilter {
    fn new(arch: ScmpArch, abi: &'static str) -> Result<Self> {
        let mut ctx = ScmpFilterContext::new(ScmpAction::Allow).map_err(scmp("create a filter"))?;
        if arch != ScmpArch::Native && arch != ScmpArch::native() {
            ctx.add_arch(arch).map_err(scmp("add an architecture"))?;
            ctx.remove_arch(ScmpArch::Native)
                .map_err(scmp("remove the native architecture"))?;
        }
        // See the module documentation: no no_new_privs.
        ctx.set_ctl_nnp(false)
            .map_err(scmp("turn off no_new_privs"))?;
        // Report the kernel's errno from load() instead of ECANCELED.
        ctx.set_api_sysrawrc(true)
            .map_err(scmp("ask for raw error codes"))?;
        Ok(AbiFilter {
            arch,
            abi,
            ctx,
            skipped: Vec::new(),
        })
    }

    /// Adds `name` → `action` when `conds` all hold, or records it as skipped
    /// when this ABI has no such call.
    fn rule(
        &mut self,
        name: &'static str,
        action: ScmpAction,
        conds: &[ScmpArgCompare],
    ) -> Result<()> {
        // Resolving on this ABI says whether it has the call (a negative
        // number is libseccomp's placeholder for "not on this ABI").
        let on_abi = ScmpSyscall::from_name_by_arch(name, self.arch)
            .ok()
            .filter(|nr| nr.as_raw_syscall() >= 0);
        // The rule itself takes the *native* number: libseccomp translates
        // rule numbers from the native ABI to the filter's ABI by name (a
        // foreign number given here would be misread as a native one).
        let native = ScmpSyscall::from_name(name).ok();
        let (Some(_), Some(native)) = (on_abi, native) else {
            self.skipped.push(Skipped {
                abi: self.abi,
                syscall: name,
            });
            return Ok(());
        };
        self.ctx
            .add_rule_conditional(action, native, conds)
            .map_err(scmp("add a rule"))?;
        Ok(())
    }

    /// This ABI's part of the filter for `opts`.
    fn build(arch: ScmpArch, abi: &'static str, opts: &SeccompOptions) -> Result<Self> {
        let eperm = ScmpAction::Errno(libc::EPERM);
        let newuser = libc::CLONE_NEWUSER as u64;
        let mut f = AbiFilter::new(arch, abi)?;
        for &name in DENIED {
            f.rule(name, eperm, &[])?;
        }
        if !opts.allow_user_namespaces {
            // clone's flags are its first argument on x86_64, i386 and x32
            // alike (only s390 and cris swap the first two).
            f.rule("clone", eperm, &[masked(0, newuser, newuser)])?;
            f.rule("unshare", eperm, &[masked(0, newuser, newuser)])?;
            f.rule("setns", eperm, &[masked(1, newuser, newuser)])?;
            f.rule("clone3", ScmpAction::Errno(libc::ENOSYS), &[])?;
        }
        // ioctl's request is `unsigned int` in the kernel: compare only its
        // low 32 bits, or TIOCSTI | 1 << 32 would pass the filter and still
        // be TIOCSTI to the kernel.
        f.rule("ioctl", eperm, &[masked(1, 0xffff_ffff, TIOCLINUX)])?;
        if !opts.allow_tiocsti {
            f.rule("ioctl", eperm, &[masked(1, 0xffff_ffff, TIOCSTI)])?;
        }
        if opts.deny_set_utsname {
            f.rule("sethostname", eperm, &[])?;
            f.rule("setdomainname", eperm, &[])?;
        }
        Ok(f)
    }
}

impl Filter {
    /// Builds the filter for every ABI of the host.
    pub fn new(opts: &SeccompOptions) -> Result<Self> {
        let Some((&(arch, abi), rest)) = ABIS.split_first() else {
            unreachable!("ABIS is a non-empty constant")
        };
        let first = AbiFilter::build(arch, abi, opts)?;
        let mut ctx = first.ctx;
        let mut skipped = first.skipped;
        for &(arch, abi) in rest {
            let f = AbiFilter::build(arch, abi, opts)?;
            skipped.extend(f.skipped);
            // seccomp_merge(3): same attributes, disjoint architectures.
            ctx.merge(f.ctx)
                .map_err(scmp("merge the per-architecture filters"))?;
        }
        Ok(Filter { ctx, skipped })
    }

    /// The rules left out because an ABI lacks the system call.
    pub fn skipped(&self) -> &[Skipped] {
        &self.skipped
    }

    /// Loads the filter on the calling thread (inherited by its children and
    /// kept across exec). Does not set `no_new_privs`.
    pub fn load(&self) -> Result<()> {
        self.ctx.load().map_err(|e| match e.sysrawrc() {
            Some(rc) if rc == -libc::EACCES => SecurityError::SeccompNotPermitted,
            Some(rc) if rc < 0 => SecurityError::SeccompLoad {
                source: std::io::Error::from_raw_os_error(-rc),
            },
            _ => SecurityError::Seccomp {
                op: "load the filter",
                source: e,
            },
        })
    }

    /// The filter as the kernel gets it: an array of 8-byte
    /// `struct sock_filter` instructions in host byte order.
    pub fn export_bpf(&self) -> Result<Vec<u8>> {
        let mut file = scratch()?;
        self.ctx.export_bpf(&file).map_err(scmp("export BPF"))?;
        read_back(&mut file)
    }

    /// The filter as libseccomp's pseudo filter code (human-readable).
    pub fn export_pfc(&self) -> Result<String> {
        let mut file = scratch()?;
        self.ctx.export_pfc(&file).map_err(scmp("export PFC"))?;
        let bytes = read_back(&mut file)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
}

/// An anonymous memory file to export into (libseccomp 2.5 writes exports
/// to a file descriptor only).
fn scratch() -> Result<File> {
    let fd = rustix::fs::memfd_create(c"vs-seccomp-export", rustix::fs::MemfdFlags::CLOEXEC)
        .map_err(|e| crate::Error::io("memfd:vs-seccomp-export", "create", e))?;
    Ok(File::from(fd))
}

fn read_back(file: &mut File) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    file.rewind()
        .and_then(|()| file.read_to_end(&mut out))
        .map_err(|e| crate::Error::io("memfd:vs-seccomp-export", "read", e))?;
    Ok(out)
}

/// Builds the filter and loads it on the calling thread; see [`Filter::load`].
pub fn install(opts: &SeccompOptions) -> Result<()> {
    Filter::new(opts)?.load()
}

/// The filter [`install`] would load, as BPF; see [`Filter::export_bpf`].
pub fn export_bpf(opts: &SeccompOptions) -> Result<Vec<u8>> {
    Filter::new(opts)?.export_bpf()
}

#[cfg(test)]
mod tests {
    //! The filter is checked in a small classic-BPF interpreter (DESIGN §6.5),
    //! so every ABI is covered without root and without loading anything,
    //! including x32, which this host's kernel does not even offer.

    use super::*;

    const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
    const AUDIT_ARCH_I386: u32 = 0x4000_0003;
    const AUDIT_ARCH_AARCH64: u32 = 0xc000_00b7;
    const X32_SYSCALL_BIT: i32 = 0x4000_0000;

    const RET_ALLOW: u32 = 0x7fff_0000;
    const RET_KILL_PROCESS: u32 = 0x8000_0000;
    const RET_KILL_THREAD: u32 = 0;
    const fn errno(e: i32) -> u32 {
        0x0005_0000 | e as u32
    }
    const EPERM: u32 = errno(libc::EPERM);

    #[derive(Clone, Copy)]
    struct Abi {
        audit: u32,
        scmp: ScmpArch,
    }
    const X86_64: Abi = Abi {
        audit: AUDIT_ARCH_X86_64,
        scmp: ScmpArch::X8664,
    };
    const I386: Abi = Abi {
        audit: AUDIT_ARCH_I386,
        scmp: ScmpArch::X86,
    };
    const X32: Abi = Abi {
        audit: AUDIT_ARCH_X86_64,
        scmp: ScmpArch::X32,
    };
    const ALL: [Abi; 3] = [X86_64, I386, X32];

    /// The filter as (code, jt, jf, k) instructions.
    fn program(opts: &SeccompOptions) -> Vec<(u16, u8, u8, u32)> {
        let bytes = export_bpf(opts).unwrap();
        assert!(
            !bytes.is_empty() && bytes.len().is_multiple_of(8),
            "{} bytes",
            bytes.len()
        );
        bytes
            .chunks_exact(8)
            .map(|c| {
                (
                    u16::from_ne_bytes([c[0], c[1]]),
                    c[2],
                    c[3],
                    u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
                )
            })
            .collect()
    }

    /// Runs a seccomp classic-BPF program on one `struct seccomp_data`.
    fn run(prog: &[(u16, u8, u8, u32)], audit: u32, nr: i32, args: [u64; 6]) -> u32 {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&nr.to_ne_bytes());
        data[4..8].copy_from_slice(&audit.to_ne_bytes());
        data[8..16].copy_from_slice(&0x1000u64.to_ne_bytes());
        for (i, arg) in args.iter().enumerate() {
            data[16 + 8 * i..24 + 8 * i].copy_from_slice(&arg.to_ne_bytes());
        }
        let word = |off: u32| {
            let o = off as usize;
            assert!(o.is_multiple_of(4) && o + 4 <= data.len(), "load at {o}");
            u32::from_ne_bytes([data[o], data[o + 1], data[o + 2], data[o + 3]])
        };
        let (mut a, mut x, mut mem) = (0u32, 0u32, [0u32; 16]);
        let mut pc = 0usize;
        for _ in 0..100_000 {
            let (code, jt, jf, k) = prog[pc];
            pc += 1;
            let src = if code & 0x08 != 0 { x } else { k };
            match code & 0x07 {
                // BPF_LD: only BPF_W loads exist in seccomp.
                0x00 => match code & 0xe0 {
                    0x00 => a = k,
                    0x20 => a = word(k),
                    0x60 => a = mem[k as usize],
                    0x80 => a = 64,
                    m => panic!("ld mode {m:#x}"),
                },
                0x01 => match code & 0xe0 {
                    0x00 => x = k,
                    0x60 => x = mem[k as usize],
                    0x80 => x = 64,
                    m => panic!("ldx mode {m:#x}"),
                },
                0x02 => mem[k as usize] = a,
                0x03 => mem[k as usize] = x,
                0x04 => {
                    a = match code & 0xf0 {
                        0x00 => a.wrapping_add(src),
                        0x10 => a.wrapping_sub(src),
                        0x20 => a.wrapping_mul(src),
                        0x30 => a / src,
                        0x40 => a | src,
                        0x50 => a & src,
                        0x60 => a << src,
                        0x70 => a >> src,
                        0x80 => a.wrapping_neg(),
                        0x90 => a % src,
                        0xa0 => a ^ src,
                        op => panic!("alu op {op:#x}"),
                    }
                }
                0x05 => {
                    let taken = match code & 0xf0 {
                        0x00 => {
                            pc += k as usize;
                            continue;
                        }
                        0x10 => a == src,
                        0x20 => a > src,
                        0x30 => a >= src,
                        0x40 => a & src != 0,
                        op => panic!("jmp op {op:#x}"),
                    };
                    pc += usize::from(if taken { jt } else { jf });
                }
                0x06 => return if code & 0x18 == 0x10 { a } else { k },
                _ => {
                    if code & 0xf8 == 0x80 {
                        a = x;
                    } else {
                        x = a;
                    }
                }
            }
        }
        panic!("program did not return");
    }

    fn nr(abi: Abi, name: &str) -> i32 {
        let n = ScmpSyscall::from_name_by_arch(name, abi.scmp)
            .unwrap()
            .as_raw_syscall();
        assert!(n >= 0, "{name} on {:?}", abi.scmp);
        n
    }

    fn call(prog: &[(u16, u8, u8, u32)], abi: Abi, name: &str, args: [u64; 6]) -> u32 {
        run(prog, abi.audit, nr(abi, name), args)
    }

    const NEWUSER: u64 = libc::CLONE_NEWUSER as u64;
    #[allow(clippy::unnecessary_cast)] // `Ioctl` is not u64 everywhere
    const TIOCGWINSZ: u64 = libc::TIOCGWINSZ as u64;

    #[test]
    #[allow(clippy::unnecessary_cast)] // `Ioctl` is not u64 everywhere
    fn ioctl_numbers_are_the_c_librarys() {
        assert_eq!(TIOCSTI, libc::TIOCSTI as u64);
        assert_eq!(TIOCLINUX, libc::TIOCLINUX as u64);
    }

    #[test]
    fn syscall_numbers_are_the_kernels() {
        // Cross-check a few against the kernel's tables
        // (arch/x86/entry/syscalls/syscall_{32,64}.tbl).
        assert_eq!(nr(X86_64, "keyctl"), 250);
        assert_eq!(nr(I386, "keyctl"), 288);
        assert_eq!(nr(X32, "keyctl"), X32_SYSCALL_BIT + 250);
        assert_eq!(nr(X32, "ioctl"), X32_SYSCALL_BIT + 514);
        assert_eq!(nr(I386, "clone"), 120);
        assert_eq!(nr(X86_64, "clone3"), 435);
    }

    #[test]
    fn denied_calls_fail_with_eperm_on_every_abi() {
        let prog = program(&SeccompOptions::default());
        for abi in ALL {
            for &name in DENIED {
                let Ok(n) = ScmpSyscall::from_name_by_arch(name, abi.scmp) else {
                    continue;
                };
                if n.as_raw_syscall() < 0 {
                    continue;
                }
                assert_eq!(
                    run(&prog, abi.audit, n.as_raw_syscall(), [0; 6]),
                    EPERM,
                    "{name} on {:?}",
                    abi.scmp
                );
            }
        }
    }

    #[test]
    fn ordinary_calls_pass_on_every_abi() {
        let prog = program(&SeccompOptions::default());
        for abi in ALL {
            for name in [
                "getpid",
                "uname",
                "reboot",
                "name_to_handle_at",
                "personality",
                "mount",
                "read",
            ] {
                assert_eq!(
                    call(&prog, abi, name, [0; 6]),
                    RET_ALLOW,
                    "{name} on {:?}",
                    abi.scmp
                );
            }
        }
    }

    #[test]
    fn user_namespaces_are_denied_by_default() {
        let prog = program(&SeccompOptions::default());
        let sigchld = libc::SIGCHLD as u64;
        let newuts = libc::CLONE_NEWUTS as u64;
        let newns = libc::CLONE_NEWNS as u64;
        for abi in ALL {
            let s = abi.scmp;
            assert_eq!(
                call(&prog, abi, "clone", [NEWUSER | sigchld, 0, 0, 0, 0, 0]),
                EPERM,
                "{s:?}"
            );
            assert_eq!(
                call(&prog, abi, "clone", [NEWUSER | newns, 0, 0, 0, 0, 0]),
                EPERM,
                "{s:?}"
            );
            assert_eq!(
                call(&prog, abi, "clone", [sigchld, 0, 0, 0, 0, 0]),
                RET_ALLOW,
                "{s:?}"
            );
            assert_eq!(
                call(&prog, abi, "clone", [newuts | newns, 0, 0, 0, 0, 0]),
                RET_ALLOW,
                "{s:?}"
            );
            assert_eq!(
                call(&prog, abi, "unshare", [NEWUSER, 0, 0, 0, 0, 0]),
                EPERM,
                "{s:?}"
            );
            assert_eq!(
                call(&prog, abi, "unshare", [newns, 0, 0, 0, 0, 0]),
                RET_ALLOW,
                "{s:?}"
            );
            assert_eq!(
                call(&prog, abi, "setns", [3, NEWUSER, 0, 0, 0, 0]),
                EPERM,
                "{s:?}"
            );
            // With a pidfd, the type is a set of namespaces.
            assert_eq!(
                call(&prog, abi, "setns", [3, NEWUSER | newns, 0, 0, 0, 0]),
                EPERM,
                "{s:?}"
            );
            assert_eq!(
                call(&prog, abi, "setns", [3, newns, 0, 0, 0, 0]),
                RET_ALLOW,
                "{s:?}"
            );
            assert_eq!(
                call(&prog, abi, "setns", [3, 0, 0, 0, 0, 0]),
                RET_ALLOW,
                "{s:?}"
            );
            assert_eq!(
                call(&prog, abi, "clone3", [0; 6]),
                errno(libc::ENOSYS),
                "{s:?}"
            );
        }
    }

    #[test]
    fn user_namespaces_when_allowed() {
        let opts = SeccompOptions {
            allow_user_namespaces: true,
            allow_tiocsti: false,
            deny_set_utsname: false,
        };
        let prog = program(&opts);
        for abi in ALL {
            let s = abi.scmp;
            assert_eq!(
                call(&prog, abi, "clone", [NEWUSER, 0, 0, 0, 0, 0]),
                RET_ALLOW,
                "{s:?}"
            );
            assert_eq!(
                call(&prog, abi, "unshare", [NEWUSER, 0, 0, 0, 0, 0]),
                RET_ALLOW,
                "{s:?}"
            );
            assert_eq!(
                call(&prog, abi, "setns", [3, NEWUSER, 0, 0, 0, 0]),
                RET_ALLOW,
                "{s:?}"
            );
            assert_eq!(call(&prog, abi, "clone3", [0; 6]), RET_ALLOW, "{s:?}");
            // The rest of the list stays.
            assert_eq!(call(&prog, abi, "keyctl", [0; 6]), EPERM, "{s:?}");
            assert_eq!(
                call(&prog, abi, "ioctl", [0, TIOCSTI, 0, 0, 0, 0]),
                EPERM,
                "{s:?}"
            );
        }
    }

    #[test]
    fn terminal_injection_ioctls() {
        let prog = program(&SeccompOptions::default());
        for abi in ALL {
            let s = abi.scmp;
            assert_eq!(
                call(&prog, abi, "ioctl", [0, TIOCSTI, 0, 0, 0, 0]),
                EPERM,
                "{s:?}"
            );
            assert_eq!(
                call(&prog, abi, "ioctl", [0, TIOCLINUX, 0, 0, 0, 0]),
                EPERM,
                "{s:?}"
            );
            assert_eq!(
                call(&prog, abi, "ioctl", [0, TIOCGWINSZ, 0, 0, 0, 0]),
                RET_ALLOW,
                "{s:?}"
            );
        }
        // The kernel ignores the request's upper 32 bits; so does the filter.
        for abi in [X86_64, X32] {
            let s = abi.scmp;
            let high = 0x1_0000_0000 | TIOCSTI;
            assert_eq!(
                call(&prog, abi, "ioctl", [0, high, 0, 0, 0, 0]),
                EPERM,
                "{s:?}"
            );
            let high = 0xdead_beef_0000_0000 | TIOCLINUX;
            assert_eq!(
                call(&prog, abi, "ioctl", [0, high, 0, 0, 0, 0]),
                EPERM,
                "{s:?}"
            );
        }

        let opts = SeccompOptions {
            allow_user_namespaces: false,
            allow_tiocsti: true,
            deny_set_utsname: false,
        };
        let prog = program(&opts);
        for abi in ALL {
            let s = abi.scmp;
            assert_eq!(
                call(&prog, abi, "ioctl", [0, TIOCSTI, 0, 0, 0, 0]),
                RET_ALLOW,
                "{s:?}"
            );
            assert_eq!(
                call(&prog, abi, "ioctl", [0, TIOCLINUX, 0, 0, 0, 0]),
                EPERM,
                "{s:?}"
            );
        }
    }

    #[test]
    fn x32_and_x86_64_are_told_apart() {
        let prog = program(&SeccompOptions::default());
        // keyctl's x86_64 number with the x32 bit is x32's keyctl: denied;
        // x32 numbers of allowed calls pass.
        assert_eq!(
            run(&prog, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT + 250, [0; 6]),
            EPERM
        );
        assert_eq!(
            run(&prog, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT + 39, [0; 6]),
            RET_ALLOW
        );
        // i386's keyctl number on x86_64 is accept4's (288): allowed there.
        assert_eq!(run(&prog, AUDIT_ARCH_X86_64, 288, [0; 6]), RET_ALLOW);
        assert_eq!(run(&prog, AUDIT_ARCH_I386, 288, [0; 6]), EPERM);
    }

    #[test]
    fn foreign_abis_are_killed() {
        let prog = program(&SeccompOptions::default());
        let ret = run(&prog, AUDIT_ARCH_AARCH64, 39, [0; 6]);
        assert!(
            ret == RET_KILL_PROCESS || ret == RET_KILL_THREAD,
            "{ret:#x}"
        );
    }

    #[test]
    fn missing_calls_are_skipped_per_abi() {
        let filter = Filter::new(&SeccompOptions::default()).unwrap();
        let skipped = filter.skipped();
        // i386 has no kexec_file_load; x86_64 and x32 have it.
        assert!(skipped.contains(&Skipped {
            abi: "x86",
            syscall: "kexec_file_load"
        }));
        assert!(!skipped.iter().any(|s| s.abi == "x86_64"), "{skipped:?}");
        assert!(
            !skipped.iter().any(|s| s.syscall == "keyctl"),
            "{skipped:?}"
        );
    }

    #[test]
    fn pfc_names_every_abi() {
        let pfc = Filter::new(&SeccompOptions::default())
            .unwrap()
            .export_pfc()
            .unwrap();
        for arch in ["x86_64", "x86 ", "x32"] {
            assert!(
                pfc.contains(&format!("filter for arch {arch}")),
                "{arch}:\n{pfc}"
            );
        }
        assert!(!pfc.contains("\"reboot\""), "{pfc}");
    }
}
