//! Paths inside a guest root, resolved so that they never leave it.
//!
//! A guest owns its tree and may plant symlinks anywhere in it (`etc -> /etc`,
//! `up -> ../../..`). The host must never follow such a path with plain
//! path-based calls. [`RootDir`] holds an `O_PATH` fd of the root directory
//! and resolves every path with `openat2(2)` and
//! `RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS`: absolute symlinks and `..` are
//! clamped at the root, exactly as if the process had been chrooted there,
//! and `/proc/PID/fd`-style magic links are refused. The final component of a
//! path that is created, replaced or changed is never followed: the parent
//! directory is resolved in the root and the final name is handled with the
//! `*at` call on that parent fd.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{
    AtFlags, Mode, ResolveFlags, Timestamps, XattrFlags, fchmod, fchown, fsetxattr, fstat, linkat,
    mkdirat, mknodat, openat2, renameat, statat, symlinkat, unlinkat, utimensat,
};
use rustix::io::Errno;
use rustix::process::{Gid, Uid};

pub use rustix::fs::{FileType, OFlags, Stat, Timespec};

use crate::{Error, Result};

/// How every path inside the root is resolved: as if chrooted, and no magic
/// links (openat2(2)).
const RESOLVE: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

/// openat2(2): "EAGAIN ... RESOLVE_IN_ROOT ... a race (rename or mount) was
/// detected ... the caller should retry". A few tries are plenty.
const EAGAIN_RETRIES: usize = 32;

/// Distinguishes temporary names of concurrent writers in one process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// An open guest root directory. Every operation takes a path relative to
/// the root (a leading `/` means the same thing: the guest's `/`).
#[derive(Debug)]
pub struct RootDir {
    fd: OwnedFd,
    path: PathBuf,
}

impl AsFd for RootDir {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// The path as openat2 should see it: relative, `.` for the root itself.
fn in_root(rel: &Path) -> &Path {
    let bytes = rel.as_os_str().as_bytes();
    let start = bytes.iter().position(|&b| b != b'/').unwrap_or(bytes.len());
    let trimmed = &bytes[start..];
    if trimmed.is_empty() {
        Path::new(".")
    } else {
        Path::new(OsStr::from_bytes(trimmed))
    }
}

/// Whether `st` is a symlink's (which has no mode of its own on Linux).
fn is_symlink(st: &Stat) -> bool {
    FileType::from_raw_mode(st.st_mode) == FileType::Symlink
}

impl RootDir {
    /// Opens the guest root at `path` (a host path, trusted).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let fd = rustix::fs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::io(path, "open guest root", e))?;
        Ok(RootDir {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// A root from an already open `O_PATH` directory fd (e.g. a mount
    /// attached in a new mount namespace); `path` names it in messages.
    pub fn from_fd(fd: OwnedFd, path: impl Into<PathBuf>) -> Self {
        RootDir {
            fd,
            path: path.into(),
        }
    }

    /// The host path the root was opened with (for messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The host path of `rel`, for messages only (never opened as such).
    pub fn host_path(&self, rel: impl AsRef<Path>) -> PathBuf {
        let rel = in_root(rel.as_ref());
        if rel == Path::new(".") {
            self.path.clone()
        } else {
            self.path.join(rel)
        }
    }

    /// Opens `rel` resolved in the root (never with `O_CREAT`, so no mode).
    fn resolve_raw(&self, rel: &Path, flags: OFlags) -> rustix::io::Result<OwnedFd> {
        let rel = in_root(rel);
        let mut tries = 0;
        loop {
            match openat2(
                &self.fd,
                rel,
                flags | OFlags::CLOEXEC,
                Mode::empty(),
                RESOLVE,
            ) {
                Err(Errno::AGAIN) if tries < EAGAIN_RETRIES => tries += 1,
                other => return other,
            }
        }
    }

    fn resolve(&self, rel: &Path, flags: OFlags, op: &'static str) -> Result<OwnedFd> {
        self.resolve_raw(rel, flags)
            .map_err(|e| Error::io(self.host_path(rel), op, e))
    }

    /// Opens `rel` with `flags` (`O_CLOEXEC` is added), resolved in the root.
    /// A symlink in the final component is followed, inside the root, unless
    /// `flags` has `O_NOFOLLOW`. `O_CREAT` is refused: use the writers.
    pub fn open_in(&self, rel: impl AsRef<Path>, flags: OFlags) -> Result<OwnedFd> {
        let rel = rel.as_ref();
        if flags.intersects(OFlags::CREATE | OFlags::TMPFILE) {
            return Err(Error::InvalidPath {
                path: self.host_path(rel),
                reason: "open_in does not create files",
            });
        }
        self.resolve(rel, flags, "open")
    }

    /// Resolves the parent directory of `rel` in the root and returns an
    /// `O_PATH` fd of it together with the final name, which is not resolved
    /// (use it with a `*at` call and no `AT_SYMLINK_FOLLOW`).
    pub fn open_parent(&self, rel: impl AsRef<Path>) -> Result<(OwnedFd, OsString)> {
        let rel = rel.as_ref();
        let bytes = in_root(rel).as_os_str().as_bytes();
        let end = bytes.iter().rposition(|&b| b != b'/').map_or(0, |i| i + 1);
        let trimmed = &bytes[..end];
        let (parent, name) = match trimmed.iter().rposition(|&b| b == b'/') {
            Some(i) => (&trimmed[..i], &trimmed[i + 1..]),
            None => (&b"."[..], trimmed),
        };
        if name.is_empty() || name == b"." || name == b".." {
            return Err(Error::InvalidPath {
                path: self.host_path(rel),
                reason: "path has no final name inside the guest root",
            });
        }
        let parent = if parent.is_empty() { &b"."[..] } else { parent };
        let fd = self.resolve(
            Path::new(OsStr::from_bytes(parent)),
            OFlags::PATH | OFlags::DIRECTORY,
            "open parent directory",
        )?;
        Ok((fd, OsStr::from_bytes(name).to_os_string()))
    }

    /// Metadata of `rel` without following a final symlink; `None` when it
    /// does not exist (also when a parent is missing or not a directory).
    pub fn lstat(&self, rel: impl AsRef<Path>) -> Result<Option<Stat>> {
        let rel = rel.as_ref();
        match self.resolve_raw(rel, OFlags::PATH | OFlags::NOFOLLOW) {
            Ok(fd) => fstat(&fd)
                .map(Some)
                .map_err(|e| Error::io(self.host_path(rel), "stat", e)),
            Err(Errno::NOENT | Errno::NOTDIR) => Ok(None),
            Err(e) => Err(Error::io(self.host_path(rel), "stat", e)),
        }
    }

    /// Whether `rel` exists (a dangling symlink exists).
    pub fn exists(&self, rel: impl AsRef<Path>) -> Result<bool> {
        Ok(self.lstat(rel)?.is_some())
    }

    /// Reads the whole file `rel` (a final symlink is followed inside the
    /// root).
    pub fn read_file(&self, rel: impl AsRef<Path>) -> Result<Vec<u8>> {
        let rel = rel.as_ref();
        let fd = self.resolve(rel, OFlags::RDONLY | OFlags::NOCTTY, "open")?;
        let mut data = Vec::new();
        File::from(fd)
            .read_to_end(&mut data)
            .map_err(|e| Error::io(self.host_path(rel), "read", e))?;
        Ok(data)
    }

    /// Creates the directory `rel` with exactly `mode` (not masked by the
    /// umask). The parent must exist; `rel` must not.
    pub fn create_dir(&self, rel: impl AsRef<Path>, mode: u32) -> Result<()> {
        let rel = rel.as_ref();
        let (parent, name) = self.open_parent(rel)?;
        mkdirat(&parent, &name, Mode::from_raw_mode(mode & 0o7777))
            .map_err(|e| Error::io(self.host_path(rel), "create directory", e))?;
        self.chmod(rel, mode)
    }

    /// Creates `rel` and its missing parents (like `mkdir -p`), each new one
    /// with exactly `mode`. Existing directories, and symlinks to directories
    /// inside the root, are kept as they are.
    pub fn mkdir_all(&self, rel: impl AsRef<Path>, mode: u32) -> Result<()> {
        let rel = in_root(rel.as_ref());
        // The common case: it is all there.
        if self
            .resolve_raw(rel, OFlags::PATH | OFlags::DIRECTORY)
            .is_ok()
        {
            return Ok(());
        }
        let mut prefix = PathBuf::new();
        for comp in rel.iter() {
            if comp == "." {
                continue;
            }
            prefix.push(comp);
            match self.resolve_raw(&prefix, OFlags::PATH | OFlags::DIRECTORY) {
                Ok(_) => continue,
                Err(Errno::NOENT) => {}
                Err(e) => return Err(Error::io(self.host_path(&prefix), "create directory", e)),
            }
            let (parent, name) = self.open_parent(&prefix)?;
            let made = match mkdirat(&parent, &name, Mode::from_raw_mode(mode & 0o7777)) {
                Ok(()) => true,
                // Lost a race with another creator, or a dangling symlink:
                // the check below tells which.
                Err(Errno::EXIST) => false,
                Err(e) => return Err(Error::io(self.host_path(&prefix), "create directory", e)),
            };
            match self.resolve_raw(&prefix, OFlags::PATH | OFlags::DIRECTORY) {
                Ok(_) if made => self.chmod(&prefix, mode)?,
                Ok(_) => {}
                // Something that is not a directory (a dangling symlink) is
                // in the way; say so as mkdir -p does.
                Err(Errno::NOENT) if !made => {
                    return Err(Error::io(
                        self.host_path(&prefix),
                        "create directory",
                        Errno::EXIST,
                    ));
                }
                Err(e) => return Err(Error::io(self.host_path(&prefix), "create directory", e)),
            }
        }
        Ok(())
    }

    /// Creates or replaces the file `rel` with `data` and exactly `mode`.
    /// See [`RootDir::write_file_from`].
    pub fn write_file(&self, rel: impl AsRef<Path>, data: &[u8], mode: u32) -> Result<()> {
        let mut src = data;
        self.write_file_from(rel, &mut src, mode, None).map(|_| ())
    }

    /// Creates or replaces the file `rel` with what `src` yields, and returns
    /// the number of bytes written.
    ///
    /// The data goes to a new temporary file in the parent directory, which
    /// gets `owner` (if given) and then exactly `mode` (so set-id bits
    /// survive the chown), and is then renamed over `rel`. Whatever `rel` was
    /// (a file, a symlink anywhere) is replaced, never followed; a directory
    /// is not replaced.
    pub fn write_file_from(
        &self,
        rel: impl AsRef<Path>,
        src: &mut dyn Read,
        mode: u32,
        owner: Option<(u32, u32)>,
    ) -> Result<u64> {
        let rel = rel.as_ref();
        let host = self.host_path(rel);
        let (parent, name) = self.open_parent(rel)?;
        let (file, temp) = loop {
            let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
            let temp = format!(".vs-tmp.{}.{n}", std::process::id());
            match rustix::fs::openat(
                &parent,
                temp.as_str(),
                OFlags::WRONLY
                    | OFlags::CREATE
                    | OFlags::EXCL
                    | OFlags::NOFOLLOW
                    | OFlags::NOCTTY
                    | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            ) {
                Ok(fd) => break (File::from(fd), temp),
                Err(Errno::EXIST) => continue,
                Err(e) => return Err(Error::io(&host, "create temporary file", e)),
            }
        };
        let result = (|| {
            let mut file = file;
            let written =
                std::io::copy(src, &mut file).map_err(|e| Error::io(&host, "write", e))?;
            file.flush().map_err(|e| Error::io(&host, "write", e))?;
            if let Some((uid, gid)) = owner {
                fchown(&file, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
                    .map_err(|e| Error::io(&host, "change owner", e))?;
            }
            fchmod(&file, Mode::from_raw_mode(mode & 0o7777))
                .map_err(|e| Error::io(&host, "change mode", e))?;
            renameat(&parent, temp.as_str(), &parent, &name)
                .map_err(|e| Error::io(&host, "replace", e))?;
            Ok(written)
        })();
        if result.is_err() {
            let _ = unlinkat(&parent, temp.as_str(), AtFlags::empty());
        }
        result
    }

    /// Creates the symlink `rel` pointing at `target` (stored verbatim).
    pub fn symlink(&self, target: impl AsRef<Path>, rel: impl AsRef<Path>) -> Result<()> {
        let rel = rel.as_ref();
        let (parent, name) = self.open_parent(rel)?;
        symlinkat(target.as_ref(), &parent, &name)
            .map_err(|e| Error::io(self.host_path(rel), "create symlink", e))
    }

    /// Creates the hard link `new` to the existing `existing`. Both parents
    /// are resolved in the root; a symlink in the final component of
    /// `existing` is linked itself, not followed (linkat(2) without
    /// `AT_SYMLINK_FOLLOW`).
    pub fn hard_link(&self, existing: impl AsRef<Path>, new: impl AsRef<Path>) -> Result<()> {
        let (existing, new) = (existing.as_ref(), new.as_ref());
        let err = |e: Errno| Error::Link {
            path: self.host_path(new),
            target: self.host_path(existing),
            source: e.into(),
        };
        let (src_parent, src_name) = self.open_parent(existing)?;
        let (dst_parent, dst_name) = self.open_parent(new)?;
        linkat(
            &src_parent,
            &src_name,
            &dst_parent,
            &dst_name,
            AtFlags::empty(),
        )
        .map_err(err)
    }

    /// Creates the special file `rel` of type `kind` (a fifo, a socket or a
    /// device node) with exactly `mode`; `dev` is the device number for
    /// device nodes.
    pub fn mknod(&self, rel: impl AsRef<Path>, kind: FileType, mode: u32, dev: u64) -> Result<()> {
        let rel = rel.as_ref();
        let (parent, name) = self.open_parent(rel)?;
        mknodat(
            &parent,
            &name,
            kind,
            Mode::from_raw_mode(mode & 0o7777),
            dev,
        )
        .map_err(|e| Error::io(self.host_path(rel), "create special file", e))?;
        self.chmod(rel, mode)
    }

    /// Removes `rel`: a file, symlink or special file, or an empty directory.
    /// A final symlink is removed itself.
    pub fn remove(&self, rel: impl AsRef<Path>) -> Result<()> {
        let rel = rel.as_ref();
        let host = self.host_path(rel);
        let (parent, name) = self.open_parent(rel)?;
        let st = statat(&parent, &name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| Error::io(&host, "stat", e))?;
        let flags = if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            AtFlags::REMOVEDIR
        } else {
            AtFlags::empty()
        };
        unlinkat(&parent, &name, flags).map_err(|e| Error::io(&host, "remove", e))
    }

    /// An `O_PATH` fd of `rel` itself (a final symlink is not followed).
    fn open_nofollow(&self, rel: &Path, op: &'static str) -> Result<OwnedFd> {
        self.resolve(rel, OFlags::PATH | OFlags::NOFOLLOW, op)
    }

    /// Changes the owner of `rel`; a final symlink is changed itself.
    pub fn chown(&self, rel: impl AsRef<Path>, uid: u32, gid: u32) -> Result<()> {
        let rel = rel.as_ref();
        let fd = self.open_nofollow(rel, "change owner")?;
        rustix::fs::chownat(
            &fd,
            "",
            Some(Uid::from_raw(uid)),
            Some(Gid::from_raw(gid)),
            AtFlags::EMPTY_PATH,
        )
        .map_err(|e| Error::io(self.host_path(rel), "change owner", e))
    }

    /// Sets the mode (permission, set-id and sticky bits) of `rel`. A final
    /// symlink is left alone: Linux symlinks have no mode of their own.
    pub fn chmod(&self, rel: impl AsRef<Path>, mode: u32) -> Result<()> {
        let rel = rel.as_ref();
        let fd = self.open_nofollow(rel, "change mode")?;
        let st = fstat(&fd).map_err(|e| Error::io(self.host_path(rel), "stat", e))?;
        if is_symlink(&st) {
            return Ok(());
        }
        chmod_o_path(fd.as_fd(), Mode::from_raw_mode(mode & 0o7777))
            .map_err(|e| Error::io(self.host_path(rel), "change mode", e))
    }

    /// Sets the access and modification times of `rel`; a final symlink is
    /// changed itself.
    pub fn set_times(&self, rel: impl AsRef<Path>, atime: Timespec, mtime: Timespec) -> Result<()> {
        let rel = rel.as_ref();
        let fd = self.open_nofollow(rel, "set times")?;
        let times = Timestamps {
            last_access: atime,
            last_modification: mtime,
        };
        // utimensat(2) honours AT_EMPTY_PATH (since Linux 5.8), which works on
        // O_PATH fds, symlinks included.
        utimensat(&fd, "", &times, AtFlags::EMPTY_PATH)
            .map_err(|e| Error::io(self.host_path(rel), "set times", e))
    }

    /// Sets the extended attribute `name` of `rel` to `value`.
    ///
    /// Only regular files and directories get xattrs; for anything else
    /// (symlinks above all: reaching them needs `/proc/self/fd`, which this
    /// crate does not use on guest symlinks) nothing is done and `false` is
    /// returned.
    pub fn set_xattr(&self, rel: impl AsRef<Path>, name: &OsStr, value: &[u8]) -> Result<bool> {
        let rel = rel.as_ref();
        let host = self.host_path(rel);
        let pfd = self.open_nofollow(rel, "set xattr")?;
        let st = fstat(&pfd).map_err(|e| Error::io(&host, "stat", e))?;
        match FileType::from_raw_mode(st.st_mode) {
            FileType::RegularFile | FileType::Directory => {}
            _ => return Ok(false),
        }
        // f*xattr needs a real open file. O_NONBLOCK|O_NOCTTY: harmless on
        // files and directories, and the inode is compared below in case it
        // was swapped between the two opens.
        let fd = self.resolve(
            rel,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY,
            "set xattr",
        )?;
        let st2 = fstat(&fd).map_err(|e| Error::io(&host, "stat", e))?;
        if (st.st_dev, st.st_ino) != (st2.st_dev, st2.st_ino) {
            return Err(Error::io(&host, "set xattr", Errno::AGAIN));
        }
        fsetxattr(&fd, name, value, XattrFlags::empty())
            .map_err(|e| Error::io(&host, "set xattr", e))?;
        Ok(true)
    }
}

/// chmod of the inode behind an `O_PATH` fd that is not a symlink.
///
/// fchmod(2) refuses `O_PATH` fds. fchmodat2(2) (Linux 6.6) takes
/// `AT_EMPTY_PATH`; on older kernels this falls back to what glibc's
/// `lchmod` does: chmod through `/proc/self/fd/N`. That is safe here because
/// the fd pins an inode that the caller checked is not a symlink, so the
/// magic link names exactly that inode.
fn chmod_o_path(fd: BorrowedFd<'_>, mode: Mode) -> rustix::io::Result<()> {
    // SAFETY: fchmodat2(int dirfd, const char *path, mode_t mode, unsigned
    // flags) only reads the NUL-terminated static path; `fd` is a valid open
    // fd for the duration of the call; nothing is retained by the kernel.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_fchmodat2,
            fd.as_raw_fd(),
            c"".as_ptr(),
            mode.bits() as libc::c_uint,
            libc::AT_EMPTY_PATH as libc::c_uint,
        )
    };
    if ret == 0 {
        return Ok(());
    }
    let errno = Errno::from_raw_os_error(
        std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO),
    );
    match errno {
        Errno::NOSYS | Errno::INVAL => chmod_via_proc(fd, mode),
        e => Err(e),
    }
}

/// The pre-6.6 fallback of [`chmod_o_path`].
fn chmod_via_proc(fd: BorrowedFd<'_>, mode: Mode) -> rustix::io::Result<()> {
    rustix::fs::chmod(format!("/proc/self/fd/{}", fd.as_raw_fd()), mode)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    /// A temp dir holding `root/` (the guest root) and `outside/` (the
    /// host), with hostile symlinks in the root.
    fn setup() -> (tempfile::TempDir, RootDir, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let outside = tmp.path().join("outside");
        std::fs::create_dir(&root).unwrap();
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("secret"), b"host").unwrap();
        std::os::unix::fs::symlink("/", root.join("escape")).unwrap();
        std::os::unix::fs::symlink("../..", root.join("up")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("out")).unwrap();
        std::os::unix::fs::symlink(outside.join("new"), root.join("dangling")).unwrap();
        let rd = RootDir::open(&root).unwrap();
        (tmp, rd, outside)
    }

    fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let data = std::fs::read(&p).unwrap_or_default();
            out.push((p, data));
        }
        out.sort();
        out
    }

    #[test]
    fn write_file_through_symlinks_stays_inside() {
        let (tmp, rd, outside) = setup();
        let before = snapshot(&outside);
        let root = rd.path().to_path_buf();
        // `escape -> /`: lands at ROOT/etc/x once ROOT/etc exists.
        assert!(rd.write_file("escape/etc/x", b"1", 0o644).is_err());
        rd.mkdir_all("etc", 0o755).unwrap();
        rd.write_file("escape/etc/x", b"1", 0o644).unwrap();
        assert_eq!(std::fs::read(root.join("etc/x")).unwrap(), b"1");
        rd.write_file("up/up/etc/y", b"2", 0o600).unwrap();
        assert_eq!(std::fs::read(root.join("etc/y")).unwrap(), b"2");
        rd.write_file("/../../etc/z", b"3", 0o600).unwrap();
        assert_eq!(std::fs::read(root.join("etc/z")).unwrap(), b"3");
        // `out -> /abs/outside`: resolves to ROOT/abs/outside, which is missing.
        assert!(rd.write_file("out/secret", b"pwned", 0o644).is_err());
        // A symlink as final component is replaced, not followed.
        rd.write_file("dangling", b"4", 0o640).unwrap();
        let meta = std::fs::symlink_metadata(root.join("dangling")).unwrap();
        assert!(meta.is_file());
        assert_eq!(meta.permissions().mode() & 0o7777, 0o640);
        rd.write_file("out", b"5", 0o644).unwrap();
        assert!(
            std::fs::symlink_metadata(root.join("out"))
                .unwrap()
                .is_file()
        );
        assert_eq!(before, snapshot(&outside));
        assert!(!outside.join("new").exists());
        assert!(!tmp.path().join("etc").exists());
        // no temporary files left behind
        let names: Vec<_> = std::fs::read_dir(root.join("etc"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 3, "{names:?}");
    }

    #[test]
    fn mkdir_all_through_symlinks_stays_inside() {
        let (tmp, rd, outside) = setup();
        let root = rd.path().to_path_buf();
        rd.mkdir_all("escape/a/b", 0o750).unwrap();
        assert!(root.join("a/b").is_dir());
        assert_eq!(
            std::fs::metadata(root.join("a/b"))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777,
            0o750
        );
        rd.mkdir_all("up/up/c/../d", 0o755).unwrap();
        assert!(root.join("c").is_dir() && root.join("d").is_dir());
        // out -> /tmp/.../outside resolves to ROOT/tmp/.../outside, which
        // does not exist: a dangling symlink inside the root, so this fails
        // like mkdir -p does, and the host dir gets nothing.
        assert!(rd.mkdir_all("out/x", 0o755).is_err());
        assert!(!outside.join("x").exists());
        // once the path exists inside the root, it is used
        rd.mkdir_all(outside.strip_prefix("/").unwrap(), 0o755)
            .unwrap();
        rd.mkdir_all("out/x", 0o755).unwrap();
        assert!(
            root.join(outside.strip_prefix("/").unwrap())
                .join("x")
                .is_dir()
        );
        assert!(!outside.join("x").exists());
        // dangling symlink as a component: mkdir -p fails like it does
        assert!(rd.mkdir_all("dangling/y", 0o755).is_err());
        assert!(!outside.join("new").exists());
        assert!(!tmp.path().join("a").exists());
        // mkdir_all of an existing file fails
        rd.write_file("f", b"", 0o644).unwrap();
        assert!(rd.mkdir_all("f/g", 0o755).is_err());
    }

    #[test]
    fn create_dir_exact_mode_and_exists_error() {
        let (_tmp, rd, _outside) = setup();
        rd.create_dir("t", 0o1777).unwrap();
        let m = std::fs::metadata(rd.path().join("t")).unwrap();
        assert_eq!(m.permissions().mode() & 0o7777, 0o1777);
        let err = rd.create_dir("t", 0o755).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EEXIST));
        assert!(
            err.to_string().contains("/root/t: create directory"),
            "{err}"
        );
        // final symlink: mkdirat does not follow it
        assert!(rd.create_dir("escape", 0o755).is_err());
        assert!(rd.create_dir("/", 0o755).is_err());
        assert!(rd.create_dir("a/..", 0o755).is_err());
    }

    #[test]
    fn hard_link_stays_inside() {
        let (_tmp, rd, outside) = setup();
        let root = rd.path().to_path_buf();
        // The source resolves in the root: the host file is unreachable.
        assert!(rd.hard_link("out/secret", "h1").is_err());
        assert!(rd.hard_link("up/up/etc/passwd", "h2").is_err());
        assert!(rd.hard_link("escape/etc/passwd", "h2").is_err());
        assert!(!root.join("h1").exists() && !root.join("h2").exists());
        // A symlink source is linked itself.
        rd.hard_link("out", "h3").unwrap();
        let meta = std::fs::symlink_metadata(root.join("h3")).unwrap();
        assert!(meta.file_type().is_symlink());
        assert_eq!(meta.nlink(), 2);
        // The destination's parent resolves in the root too.
        rd.mkdir_all("etc", 0o755).unwrap();
        rd.write_file("etc/f", b"x", 0o644).unwrap();
        rd.hard_link("etc/f", "escape/etc/g").unwrap();
        assert_eq!(std::fs::metadata(root.join("etc/g")).unwrap().nlink(), 2);
        assert!(rd.hard_link("etc/f", "out/pwn").is_err());
        assert!(!outside.join("pwn").exists());
        assert_eq!(std::fs::read(outside.join("secret")).unwrap(), b"host");
    }

    #[test]
    fn metadata_ops_do_not_follow() {
        let (_tmp, rd, outside) = setup();
        let root = rd.path().to_path_buf();
        let outside_mode = std::fs::metadata(&outside).unwrap().permissions().mode();
        // chmod on a symlink is a no-op, and never reaches the target
        rd.chmod("out", 0o700).unwrap();
        assert_eq!(
            std::fs::metadata(&outside).unwrap().permissions().mode(),
            outside_mode
        );
        // times on a symlink change the symlink
        let t = Timespec {
            tv_sec: 1_000_000,
            tv_nsec: 0,
        };
        rd.set_times("out", t, t).unwrap();
        let m = std::fs::symlink_metadata(root.join("out")).unwrap();
        assert_eq!(m.mtime(), 1_000_000);
        assert_ne!(std::fs::metadata(&outside).unwrap().mtime(), 1_000_000);
        // chown to ourselves is allowed unprivileged
        let (uid, gid) = (m.uid(), m.gid());
        rd.chown("out", uid, gid).unwrap();
        // xattrs on symlinks are skipped
        assert!(!rd.set_xattr("out", OsStr::new("user.x"), b"1").unwrap());
        // chmod of a file with mode 0
        rd.write_file("f", b"data", 0o000).unwrap();
        rd.chmod("f", 0o4755).unwrap();
        let m = std::fs::metadata(root.join("f")).unwrap();
        assert_eq!(m.permissions().mode() & 0o7777, 0o4755);
        rd.mknod("fifo", FileType::Fifo, 0o640, 0).unwrap();
        let m = std::fs::symlink_metadata(root.join("fifo")).unwrap();
        assert_eq!(m.permissions().mode() & 0o7777, 0o640);
        assert!(rd.exists("fifo").unwrap());
        assert!(rd.exists("dangling").unwrap());
        assert!(!rd.exists("nope/x").unwrap());
        assert_eq!(rd.read_file("f").unwrap(), b"data");
        assert!(rd.read_file("out/secret").is_err());
        rd.remove("fifo").unwrap();
        rd.remove("out").unwrap();
        assert!(outside.join("secret").exists());
    }

    #[test]
    fn write_file_from_with_owner() {
        let (_tmp, rd, _outside) = setup();
        let m = std::fs::metadata(rd.path()).unwrap();
        let mut src: &[u8] = b"hello";
        let n = rd
            .write_file_from("g", &mut src, 0o2755, Some((m.uid(), m.gid())))
            .unwrap();
        assert_eq!(n, 5);
        let m = std::fs::metadata(rd.path().join("g")).unwrap();
        assert_eq!(m.permissions().mode() & 0o7777, 0o2755);
    }

    #[test]
    fn chmod_fallback_for_old_kernels() {
        let (_tmp, rd, _outside) = setup();
        rd.write_file("f", b"", 0o600).unwrap();
        let fd = rd.open_nofollow(Path::new("f"), "test").unwrap();
        chmod_via_proc(fd.as_fd(), Mode::from_raw_mode(0o2711)).unwrap();
        let m = std::fs::metadata(rd.path().join("f")).unwrap();
        assert_eq!(m.permissions().mode() & 0o7777, 0o2711);
    }

    #[test]
    fn open_parent_splits() {
        let (_tmp, rd, _outside) = setup();
        rd.mkdir_all("a/b", 0o755).unwrap();
        let (_, name) = rd.open_parent("/a/b/c/").unwrap();
        assert_eq!(name, "c");
        let (_, name) = rd.open_parent("x").unwrap();
        assert_eq!(name, "x");
        assert!(rd.open_parent("").is_err());
        assert!(rd.open_parent("a/.").is_err());
        assert!(rd.open_parent("missing/x").is_err());
        assert_eq!(rd.host_path("/a/b"), rd.path().join("a/b"));
        assert_eq!(rd.host_path("/"), rd.path());
    }
}
