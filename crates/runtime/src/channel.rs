//! Messages between the CLI, the monitor and the guest's init side: short
//! text messages on a `SOCK_SEQPACKET` socket pair (one message per packet,
//! EOF when the other side is gone), optionally carrying one fd.

use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, SocketFlags, SocketType,
};

use crate::error::{Error, Result};

/// One end of a channel.
#[derive(Debug)]
pub struct Channel {
    fd: OwnedFd,
}

/// Largest message.
const MAX: usize = 64 * 1024;

impl Channel {
    /// A connected pair; both ends close on exec.
    pub fn pair() -> Result<(Channel, Channel)> {
        let (a, b) = rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )
        .map_err(|e| Error::io("socketpair", "create channel", e.into()))?;
        Ok((Channel { fd: a }, Channel { fd: b }))
    }

    /// Wraps an inherited socket.
    pub fn from_fd(fd: OwnedFd) -> Channel {
        Channel { fd }
    }

    /// The socket.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Gives the socket up (e.g. to pass it to a child process).
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }

    /// Sends `msg`, with `fd` attached if given.
    pub fn send(&self, msg: &str, fd: Option<BorrowedFd<'_>>) -> Result<()> {
        let fds;
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut anc = SendAncillaryBuffer::new(&mut space);
        if let Some(fd) = fd {
            fds = [fd];
            anc.push(SendAncillaryMessage::ScmRights(&fds));
        }
        rustix::net::sendmsg(
            &self.fd,
            &[IoSlice::new(msg.as_bytes())],
            &mut anc,
            SendFlags::NOSIGNAL,
        )
        .map_err(|e| Error::io("channel", "send", e.into()))?;
        Ok(())
    }

    /// Receives a message and its fd, if any; `None` when the other end
    /// closed.
    pub fn recv(&self) -> Result<Option<(String, Option<OwnedFd>)>> {
        let mut buf = vec![0u8; MAX];
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut anc = RecvAncillaryBuffer::new(&mut space);
        let r = loop {
            match rustix::net::recvmsg(
                &self.fd,
                &mut [IoSliceMut::new(&mut buf)],
                &mut anc,
                RecvFlags::CMSG_CLOEXEC,
            ) {
                Err(rustix::io::Errno::INTR) => continue,
                other => break other,
            }
        }
        .map_err(|e| Error::io("channel", "receive", e.into()))?;
        if r.flags.contains(rustix::net::ReturnFlags::CTRUNC) {
            return Err(Error::io(
                "channel",
                "receive",
                std::io::Error::new(std::io::ErrorKind::InvalidData, "more than one fd received"),
            ));
        }
        let mut fd = None;
        for m in anc.drain() {
            if let RecvAncillaryMessage::ScmRights(rights) = m {
                for f in rights {
                    fd.get_or_insert(f);
                }
            }
        }
        if r.bytes == 0 && fd.is_none() {
            return Ok(None);
        }
        let text = String::from_utf8_lossy(&buf[..r.bytes]).into_owned();
        Ok(Some((text, fd)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_and_fds_travel() {
        let (a, b) = Channel::pair().unwrap();
        let file = std::fs::File::open("/proc/self/stat").unwrap();
        a.send("hello", Some(file.as_fd())).unwrap();
        a.send("second", None).unwrap();
        let (m, fd) = b.recv().unwrap().unwrap();
        assert_eq!(m, "hello");
        assert!(fd.is_some());
        assert_eq!(b.recv().unwrap().unwrap().0, "second");
        drop(a);
        assert!(b.recv().unwrap().is_none());
    }
}
