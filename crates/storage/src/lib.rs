//! Guest root storage. This crate owns the guest's root directory on the
//! host: creating it for a storage backend ([`create_root`]), removing it
//! without ever leaving it ([`remove_root`]), and populating a new one with a
//! build method ([`build`]: skeleton, busybox, debootstrap, template). The
//! guest owns its tree and may plant symlinks anywhere in it, so no host
//! path inside a guest tree is ever followed: writes go through
//! [`vs_sys::root::RootDir`], which resolves paths as if chrooted, and
//! removal walks directory fds with `*at` calls that do not follow symlinks.
//! Cloning, export/import and the btrfs and image backends come later.

pub mod build;
mod error;

use std::ffi::OsStr;
use std::fs;
use std::io::ErrorKind;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, fchmod, fstat, openat, statat, unlinkat};
use rustix::io::Errno;

pub use error::{Error, Result};

/// Where a guest's root directory lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A plain directory on the host's filesystem.
    Dir,
}

/// Creates the (empty) guest root `path` for `backend`: missing parent
/// directories are made with mode 0755, the root itself with mode 0755.
/// It is an error if `path` exists already.
pub fn create_root(path: &Path, backend: Backend) -> Result<()> {
    match backend {
        Backend::Dir => create_dir_root(path),
    }
}

fn create_dir_root(path: &Path) -> Result<()> {
    if fs::symlink_metadata(path).is_ok() {
        return Err(Error::Exists {
            path: path.to_path_buf(),
        });
    }
    let mut missing = Vec::new();
    let mut cur = path.parent();
    while let Some(dir) = cur.filter(|d| !d.as_os_str().is_empty()) {
        if fs::symlink_metadata(dir).is_ok() {
            break;
        }
        missing.push(dir);
        cur = dir.parent();
    }
    for dir in missing.iter().rev().copied().chain([path]) {
        match fs::DirBuilder::new().mode(0o755).create(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists && dir == path => {
                return Err(Error::Exists {
                    path: path.to_path_buf(),
                });
            }
            // A parent made by someone else meanwhile is fine.
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io(dir, "create directory", e)),
        }
        // The umask must not decide the mode.
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
            .map_err(|e| Error::io(dir, "change mode", e))?;
    }
    Ok(())
}

/// Removes the guest root `path` and everything in it.
///
/// Symlinks are removed, never followed. Nothing mounted inside the tree is
/// touched: if a mount point is found inside (from `/proc/self/mountinfo`,
/// which also shows bind mounts, and by `st_dev` while walking), the removal
/// is refused with an error naming it. Files with the immutable or
/// append-only flag have it cleared. As a guard, `/`, paths with fewer than
/// two components (`/var`), a symlink and a mount point itself are refused.
pub fn remove_root(path: &Path) -> Result<()> {
    let refuse = |reason: &str| Error::RefuseRemove {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    let meta = fs::symlink_metadata(path).map_err(|e| Error::io(path, "remove guest root", e))?;
    if meta.file_type().is_symlink() {
        return Err(refuse(
            "it is a symlink; name the guest root directory itself",
        ));
    }
    if !meta.is_dir() {
        return Err(refuse("not a directory"));
    }
    let canon = fs::canonicalize(path).map_err(|e| Error::io(path, "resolve path", e))?;
    let depth = canon
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .count();
    if depth < 2 {
        return Err(refuse("too close to / (fewer than two path components)"));
    }
    for mount in mount_points()? {
        if mount == canon {
            return Err(refuse("it is a mount point; unmount it first"));
        }
        if mount.starts_with(&canon) {
            return Err(Error::MountInside {
                path: path.to_path_buf(),
                mount,
            });
        }
    }
    let (Some(parent), Some(name)) = (canon.parent(), canon.file_name()) else {
        return Err(refuse("no parent directory"));
    };
    let parent_fd = rustix::fs::open(
        parent,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io(parent, "open", e.into()))?;
    let root_fd = open_dir_at(&parent_fd, name, &canon)?;
    let dev = fstat(&root_fd)
        .map_err(|e| Error::io(&canon, "stat", e.into()))?
        .st_dev;
    let walk = Walk { root: path, dev };
    walk.remove_contents(&root_fd, &canon)?;
    drop(root_fd);
    walk.unlink(&parent_fd, name, true, &canon)
}

/// Opens the directory `name` in `dir` for reading, not following a symlink.
fn open_dir_at(dir: &OwnedFd, name: &OsStr, path: &Path) -> Result<OwnedFd> {
    openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io(path, "open directory", e.into()))
}

struct Walk<'a> {
    /// The guest root as given, for errors.
    root: &'a Path,
    /// The root's device: a directory on another one is a mount point.
    dev: u64,
}

impl Walk<'_> {
    fn remove_contents(&self, dir: &OwnedFd, path: &Path) -> Result<()> {
        // Names are collected first: removing entries while reading a
        // directory may make getdents skip some.
        let mut names = Vec::new();
        let mut reader = rustix::fs::Dir::read_from(dir)
            .map_err(|e| Error::io(path, "read directory", e.into()))?;
        while let Some(entry) = reader.read() {
            let entry = entry.map_err(|e| Error::io(path, "read directory", e.into()))?;
            let name = entry.file_name().to_bytes();
            if name != b"." && name != b".." {
                names.push(OsStr::from_bytes(name).to_os_string());
            }
        }
        drop(reader);
        for name in names {
            let child = path.join(&name);
            let st = match statat(dir, &name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(Error::io(&child, "stat", e.into())),
            };
            let is_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
            if is_dir {
                if st.st_dev != self.dev {
                    return Err(Error::MountInside {
                        path: self.root.to_path_buf(),
                        mount: child,
                    });
                }
                let sub = open_dir_at(dir, &name, &child)?;
                self.remove_contents(&sub, &child)?;
            }
            self.unlink(dir, &name, is_dir, &child)?;
        }
        Ok(())
    }

    /// Removes `name` from `dir`; on EPERM clears the immutable and
    /// append-only flags of the entry and of `dir` and tries once more.
    fn unlink(&self, dir: &OwnedFd, name: &OsStr, is_dir: bool, path: &Path) -> Result<()> {
        let flags = if is_dir {
            AtFlags::REMOVEDIR
        } else {
            AtFlags::empty()
        };
        match unlinkat(dir, name, flags) {
            Ok(()) | Err(Errno::NOENT) => return Ok(()),
            Err(Errno::PERM) => {}
            Err(Errno::ACCESS) => {
                // Only unprivileged callers get here (root bypasses modes):
                // a read-only directory of their own is made writable.
                let err = || Error::io(path, "remove", Errno::ACCESS.into());
                let st = fstat(dir).map_err(|_| err())?;
                fchmod(dir, Mode::from_raw_mode((st.st_mode | 0o700) & 0o7777))
                    .map_err(|_| err())?;
                return unlinkat(dir, name, flags).map_err(|e| Error::io(path, "remove", e.into()));
            }
            Err(e) => return Err(Error::io(path, "remove", e.into())),
        }
        let mut cleared = vs_sys::inode::clear_immutable(dir, path.parent().unwrap_or(path))?;
        // Only files and directories are opened for the ioctl: opening a
        // device node or fifo could block or have side effects.
        if let Ok(st) = statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
            && matches!(
                FileType::from_raw_mode(st.st_mode),
                FileType::RegularFile | FileType::Directory
            )
            && let Ok(fd) = openat(
                dir,
                name,
                OFlags::RDONLY
                    | OFlags::NOFOLLOW
                    | OFlags::NONBLOCK
                    | OFlags::NOCTTY
                    | OFlags::CLOEXEC,
                Mode::empty(),
            )
        {
            cleared |= vs_sys::inode::clear_immutable(&fd, path)?;
        }
        if !cleared {
            return Err(Error::io(path, "remove", Errno::PERM.into()));
        }
        unlinkat(dir, name, flags).map_err(|e| Error::io(path, "remove", e.into()))
    }
}

/// The mount points of this process's mount namespace.
fn mount_points() -> Result<Vec<PathBuf>> {
    let path = Path::new("/proc/self/mountinfo");
    let text = fs::read(path).map_err(|e| Error::io(path, "read", e))?;
    Ok(parse_mountinfo(&text))
}

/// The mount point field (the fifth) of each mountinfo line, with the
/// kernel's octal escapes (`\040` for a space ...) undone.
fn parse_mountinfo(text: &[u8]) -> Vec<PathBuf> {
    text.split(|&b| b == b'\n')
        .filter_map(|line| line.split(|&b| b == b' ').nth(4))
        .map(|field| PathBuf::from(OsStr::from_bytes(&unescape_octal(field))))
        .collect()
}

fn unescape_octal(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        if field[i] == b'\\'
            && i + 4 <= field.len()
            && field[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let v = field[i + 1..i + 4]
                .iter()
                .fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
            out.push(v as u8);
            i += 4;
        } else {
            out.push(field[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn create_root_makes_parents_and_refuses_existing() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("a/b/guest");
        create_root(&root, Backend::Dir).unwrap();
        for p in [tmp.path().join("a"), tmp.path().join("a/b"), root.clone()] {
            assert_eq!(fs::metadata(&p).unwrap().mode() & 0o7777, 0o755, "{p:?}");
        }
        let err = create_root(&root, Backend::Dir).unwrap_err();
        assert!(matches!(err, Error::Exists { .. }), "{err}");
        assert!(
            err.to_string()
                .ends_with("guest: guest root already exists")
        );
    }

    #[test]
    fn remove_root_does_not_follow_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        fs::create_dir_all(outside.join("sub")).unwrap();
        fs::write(outside.join("keep"), b"x").unwrap();
        fs::write(outside.join("sub/keep"), b"y").unwrap();
        let root = tmp.path().join("vservers/g");
        create_root(&root, Backend::Dir).unwrap();
        fs::create_dir_all(root.join("etc/deep/er")).unwrap();
        fs::write(root.join("etc/deep/er/f"), b"z").unwrap();
        std::os::unix::fs::symlink(&outside, root.join("etc/out")).unwrap();
        std::os::unix::fs::symlink(outside.join("sub"), root.join("sub")).unwrap();
        std::os::unix::fs::symlink("/", root.join("slash")).unwrap();
        std::os::unix::fs::symlink("../../..", root.join("etc/deep/up")).unwrap();
        fs::hard_link(outside.join("keep"), root.join("hl")).unwrap_or(());
        remove_root(&root).unwrap();
        assert!(!root.exists());
        assert!(tmp.path().join("vservers").is_dir());
        assert_eq!(fs::read(outside.join("keep")).unwrap(), b"x");
        assert_eq!(fs::read(outside.join("sub/keep")).unwrap(), b"y");
    }

    #[test]
    fn remove_root_guards() {
        for p in ["/", "/var", "/tmp/.."] {
            let err = remove_root(Path::new(p)).unwrap_err();
            assert!(matches!(err, Error::RefuseRemove { .. }), "{p}: {err}");
        }
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("dir");
        fs::create_dir(&dir).unwrap();
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        let err = remove_root(&link).unwrap_err();
        assert!(err.to_string().contains("symlink"), "{err}");
        assert!(dir.is_dir());
        let err = remove_root(&tmp.path().join("missing")).unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{err}");
    }

    fn is_root() -> bool {
        rustix::process::geteuid().is_root()
    }

    #[test]
    #[ignore = "needs root: scripts/test runs it (cargo test -- --ignored root_)"]
    fn root_remove_root_clears_immutable_flags() {
        // Setting the flags needs CAP_LINUX_IMMUTABLE: as another user there
        // is nothing to test.
        assert!(is_root(), "this test needs root");
        use rustix::fs::{IFlags, ioctl_setflags};
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("vservers/g");
        create_root(&root, Backend::Dir).unwrap();
        fs::create_dir_all(root.join("a/b")).unwrap();
        fs::write(root.join("a/b/immutable"), b"x").unwrap();
        fs::write(root.join("a/plain"), b"y").unwrap();
        let file = fs::File::open(root.join("a/b/immutable")).unwrap();
        match ioctl_setflags(&file, IFlags::IMMUTABLE) {
            Ok(()) => {}
            // a filesystem without inode flags (tmpfs before 6.0, overlayfs)
            Err(Errno::NOTTY | Errno::OPNOTSUPP | Errno::INVAL) => return,
            Err(e) => panic!("{e}"),
        }
        let dir = fs::File::open(root.join("a")).unwrap();
        ioctl_setflags(&dir, IFlags::APPEND).unwrap();
        assert!(fs::remove_file(root.join("a/b/immutable")).is_err());
        remove_root(&root).unwrap();
        assert!(!root.exists());
    }

    /// Unmounts on drop, so a failing test leaves no mount behind.
    struct Mounted(PathBuf);

    impl Drop for Mounted {
        fn drop(&mut self) {
            let _ = rustix::mount::unmount(&self.0, rustix::mount::UnmountFlags::DETACH);
        }
    }

    #[test]
    #[ignore = "needs root: scripts/test runs it (cargo test -- --ignored root_)"]
    fn root_remove_root_refuses_mounts_inside() {
        assert!(is_root(), "this test needs root");
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("vservers/g");
        create_root(&root, Backend::Dir).unwrap();
        for d in ["proc", "mnt", "etc"] {
            fs::create_dir(root.join(d)).unwrap();
        }
        fs::write(root.join("etc/keep"), b"k").unwrap();
        let canon = fs::canonicalize(&root).unwrap();

        // another filesystem
        rustix::mount::mount(
            "tmpfs",
            root.join("proc"),
            "tmpfs",
            rustix::mount::MountFlags::empty(),
            None,
        )
        .unwrap();
        let guard = Mounted(root.join("proc"));
        fs::write(root.join("proc/on-tmpfs"), b"t").unwrap();
        let err = remove_root(&root).unwrap_err();
        match &err {
            Error::MountInside { mount, .. } => assert_eq!(mount, &canon.join("proc")),
            other => panic!("{other}"),
        }
        assert!(
            err.to_string().contains("proc is a mount point inside it"),
            "{err}"
        );
        assert!(root.join("etc/keep").exists() && root.join("proc/on-tmpfs").exists());
        drop(guard);

        // a bind mount of the same filesystem (same st_dev): mountinfo tells
        let outside = tmp.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("precious"), b"p").unwrap();
        rustix::mount::mount_bind(&outside, root.join("mnt")).unwrap();
        let guard = Mounted(root.join("mnt"));
        let err = remove_root(&root).unwrap_err();
        assert!(matches!(err, Error::MountInside { .. }), "{err}");
        drop(guard);
        assert!(outside.join("precious").exists());

        // the root itself a mount point
        rustix::mount::mount_bind(&root, &root).unwrap();
        let guard = Mounted(root.clone());
        let err = remove_root(&root).unwrap_err();
        assert!(err.to_string().contains("it is a mount point"), "{err}");
        drop(guard);

        remove_root(&root).unwrap();
        assert!(!root.exists() && outside.join("precious").exists());
    }

    #[test]
    fn mountinfo_parsing() {
        let text = b"22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n\
            30 22 0:5 / /var/lib/vservers/g\\040x/proc rw - proc proc rw\n";
        assert_eq!(
            parse_mountinfo(text),
            vec![
                PathBuf::from("/"),
                PathBuf::from("/var/lib/vservers/g x/proc")
            ]
        );
        assert_eq!(unescape_octal(b"a\\134b\\01"), b"a\\b\\01");
    }
}
