//! Inode flags (`FS_IOC_GETFLAGS` / `FS_IOC_SETFLAGS`, see ioctl_iflags(2)).

use std::os::fd::AsFd;
use std::path::Path;

use rustix::fs::{IFlags, ioctl_getflags, ioctl_setflags};
use rustix::io::Errno;

use crate::{Error, Result};

/// Clears the immutable and append-only flags of the open file `fd`, so it
/// can be removed or changed.
///
/// `fd` must be opened for reading (the ioctls fail on `O_PATH` fds); `path`
/// is only used in errors. Returns whether a flag was set. A filesystem
/// without inode flags counts as "none set".
pub fn clear_immutable(fd: impl AsFd, path: &Path) -> Result<bool> {
    let flags = match ioctl_getflags(&fd) {
        Ok(flags) => flags,
        Err(Errno::NOTTY | Errno::OPNOTSUPP | Errno::INVAL) => return Ok(false),
        Err(e) => return Err(Error::io(path, "read inode flags", e)),
    };
    let sticky = IFlags::IMMUTABLE | IFlags::APPEND;
    if !flags.intersects(sticky) {
        return Ok(false);
    }
    ioctl_setflags(&fd, flags - sticky)
        .map_err(|e| Error::io(path, "clear immutable/append-only flags", e))?;
    Ok(true)
}
