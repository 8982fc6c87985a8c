//! The new mount API (fsopen/fsmount/open_tree/move_mount/mount_setattr):
//! every mount is made on a file descriptor and attached to a target that
//! was resolved inside the guest root, so a guest's symlinks cannot redirect
//! a host mount.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::mount::{
    FsMountFlags, FsOpenFlags, MountAttrFlags, MountPropagationFlags, MoveMountFlags,
    OpenTreeFlags, UnmountFlags,
};

use crate::{Error, Result};

pub use rustix::mount::MountAttrFlags as Attr;

/// Makes every mount of the caller's mount namespace private, so nothing it
/// mounts or unmounts propagates to the host.
pub fn make_private() -> Result<()> {
    rustix::mount::mount_change(
        "/",
        MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
    )
    .map_err(|e| Error::io("/", "make mounts private", e))
}

/// A detached copy of the mount tree at `path` (below `dir`), like a bind
/// mount not yet attached anywhere.
pub fn clone_tree(dir: BorrowedFd<'_>, path: &Path, recursive: bool) -> Result<OwnedFd> {
    let mut flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
    if recursive {
        flags |= OpenTreeFlags::AT_RECURSIVE;
    }
    if path.as_os_str().is_empty() {
        flags |= OpenTreeFlags::AT_EMPTY_PATH;
    }
    rustix::mount::open_tree(dir, path, flags).map_err(|e| Error::io(path, "clone mount", e))
}

/// `struct mount_attr` of mount_setattr(2).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Changes attributes of a (detached) mount: set/clear flags, and with
/// `userns` make it an idmapped mount showing ids as that user namespace
/// maps them. Written by hand: rustix does not wrap mount_setattr.
pub fn set_attr(
    mount: BorrowedFd<'_>,
    set: MountAttrFlags,
    clear: MountAttrFlags,
    recursive: bool,
    userns: Option<BorrowedFd<'_>>,
    what: &Path,
) -> Result<()> {
    let mut attr = MountAttr {
        attr_set: u64::from(set.bits()),
        attr_clr: u64::from(clear.bits()),
        propagation: 0,
        userns_fd: 0,
    };
    if let Some(ns) = userns {
        attr.attr_set |= u64::from(MountAttrFlags::MOUNT_ATTR_IDMAP.bits());
        attr.userns_fd = ns.as_raw_fd() as u64;
    }
    let flags = libc::AT_EMPTY_PATH as libc::c_uint
        | if recursive {
            libc::AT_RECURSIVE as libc::c_uint
        } else {
            0
        };
    // SAFETY: mount_setattr reads the valid mount_attr of the given size;
    // the empty path with AT_EMPTY_PATH refers to `mount` itself.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            mount.as_raw_fd(),
            c"".as_ptr(),
            flags,
            &mut attr as *mut MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if ret != 0 {
        return Err(Error::io(
            what,
            "set mount attributes",
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Attaches a detached mount onto the directory or file `target` (an fd
/// opened with `O_PATH`, resolved inside the guest root).
pub fn attach(mount: BorrowedFd<'_>, target: BorrowedFd<'_>, what: &Path) -> Result<()> {
    rustix::mount::move_mount(
        mount,
        "",
        target,
        "",
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
    )
    .map_err(|e| Error::io(what, "attach mount", e))
}

/// Attaches a detached mount at `path` (for the guest root itself, before
/// anything inside it exists).
pub fn attach_at(mount: BorrowedFd<'_>, path: &Path) -> Result<()> {
    rustix::mount::move_mount(
        mount,
        "",
        rustix::fs::CWD,
        path,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(|e| Error::io(path, "attach mount", e))
}

/// A new detached filesystem: `fstype` with `options` (`key` or
/// `key=value`), mounted with `attrs` (MOUNT_ATTR_RDONLY, NOSUID ...).
pub fn new_fs(
    fstype: &str,
    source: &str,
    options: &[&str],
    attrs: MountAttrFlags,
) -> Result<OwnedFd> {
    let what = Path::new(fstype);
    let fs = rustix::mount::fsopen(fstype, FsOpenFlags::FSOPEN_CLOEXEC)
        .map_err(|e| Error::io(what, "open filesystem context", e))?;
    rustix::mount::fsconfig_set_string(fs.as_fd(), "source", source)
        .map_err(|e| Error::io(what, "set source", e))?;
    for opt in options {
        let r = match opt.split_once('=') {
            Some((k, v)) => rustix::mount::fsconfig_set_string(fs.as_fd(), k, v),
            None => rustix::mount::fsconfig_set_flag(fs.as_fd(), *opt),
        };
        r.map_err(|e| Error::Io {
            path: format!("{fstype} option {opt}").into(),
            op: "set mount option",
            source: e.into(),
        })?;
    }
    rustix::mount::fsconfig_create(fs.as_fd())
        .map_err(|e| Error::io(what, "create filesystem", e))?;
    rustix::mount::fsmount(fs.as_fd(), FsMountFlags::FSMOUNT_CLOEXEC, attrs)
        .map_err(|e| Error::io(what, "mount filesystem", e))
}

/// Makes `root` the caller's root directory and detaches the old root, so
/// no path — not even `..` from a held directory fd — leads back to it.
pub fn pivot_into(root: BorrowedFd<'_>) -> Result<()> {
    rustix::process::fchdir(root).map_err(|e| Error::io("new root", "change directory", e))?;
    // pivot_root(".", "."): the old root is stacked on top of the new one,
    // then unmounted lazily (pivot_root(2), "NOTES").
    rustix::process::pivot_root(".", ".").map_err(|e| Error::io("new root", "pivot_root", e))?;
    rustix::mount::unmount(".", UnmountFlags::DETACH)
        .map_err(|e| Error::io("old root", "detach", e))?;
    rustix::process::chdir("/").map_err(|e| Error::io("/", "change directory", e))
}
