//! The terminal proxy of `vserver NAME enter`.
//!
//! A guest shell never gets a file descriptor for the user's terminal: a
//! process holding one could push input into it (`TIOCSTI`), change its
//! settings or read what the user types after the session ends. Instead the
//! enter helper, already inside the guest's namespaces, opens the guest's own
//! `/dev/pts/ptmx`, opens the peer with [`peer_of`], makes it the shell's
//! controlling terminal with [`make_controlling_tty`] and hands the master to
//! the host side over a [`crate::channel::Channel`]. The host side takes it,
//! puts the user's terminal into [`RawMode`] and runs [`proxy`], which only
//! copies bytes between the user's terminal and the master, and the window
//! size from the user's terminal to the master.
//!
//! The order, as the caller runs it:
//!
//! ```text
//! host (CLI)                             helper (in the guest's namespaces)
//! socketpair, fork ───────────────────▶  open /dev/pts/ptmx (the guest's devpts)
//!                                        peer_of(master) → slave
//!                                        channel.send("pty", master), close master
//!                                        fork/exec shell: make_controlling_tty(slave)
//! master = channel.recv()
//! copy_window_size(stdin, master)
//! let _raw = RawMode::enable(stdin)?
//! proxy(master, stdin, stdout, pidfd)
//! ```

use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::pty::OpenptFlags;
use rustix::termios::{self, OptionalActions, Termios, Winsize};

use crate::error::{Error, Result};

/// How many bytes the proxy reads at a time in each direction.
const BUF_SIZE: usize = 16 * 1024;

/// How often the proxy looks at the user's window size. There is no
/// SIGWINCH handler (that needs `sigprocmask`/`signalfd`, which rustix does
/// not offer), so the size is polled; a resize reaches the guest within
/// this time.
const WINSIZE_TICK: Duration = Duration::from_millis(250);

/// After the session's process has exited, the proxy returns once the
/// master has been quiet this long (a background job may still hold the
/// guest's pty open, so the master need not report a hangup).
const DRAIN_QUIET: Duration = Duration::from_millis(100);

/// ... or at the latest this long after the exit.
const DRAIN_MAX: Duration = Duration::from_secs(1);

/// Puts a terminal into raw mode and restores its settings when dropped.
///
/// Raw mode is `cfmakeraw(3)`: no echo, no line editing, no signals from
/// `^C`/`^Z`, no output processing, so every byte the user types goes to the
/// guest's pty, whose own line discipline does that work. The saved settings
/// come back on drop, which also runs when a panic unwinds; a process killed
/// by a signal leaves the terminal raw (`reset` fixes it).
#[derive(Debug)]
#[must_use = "the terminal goes back to its old settings when the guard is dropped"]
pub struct RawMode<'fd> {
    tty: BorrowedFd<'fd>,
    saved: Termios,
}

impl<'fd> RawMode<'fd> {
    /// Puts `tty` into raw mode if it is a terminal; returns `None`, changing
    /// nothing, if it is not (input from a pipe or file).
    pub fn enable(tty: BorrowedFd<'fd>) -> Result<Option<Self>> {
        if !termios::isatty(tty) {
            return Ok(None);
        }
        let saved = retry(|| termios::tcgetattr(tty)).map_err(err("terminal", "tcgetattr"))?;
        let mut raw = saved.clone();
        raw.make_raw();
        retry(|| termios::tcsetattr(tty, OptionalActions::Now, &raw))
            .map_err(err("terminal", "tcsetattr"))?;
        Ok(Some(Self { tty, saved }))
    }

    /// The settings that come back on drop.
    pub fn saved(&self) -> &Termios {
        &self.saved
    }
}

impl Drop for RawMode<'_> {
    fn drop(&mut self) {
        // Nothing useful to do on failure (the terminal may be gone).
        let _ = retry(|| termios::tcsetattr(self.tty, OptionalActions::Now, &self.saved));
    }
}

/// Copies the window size of the terminal `from_tty` to the pty master
/// `to_master`; the kernel sends SIGWINCH to the guest's foreground process
/// group when the size changes.
pub fn copy_window_size(from_tty: BorrowedFd<'_>, to_master: BorrowedFd<'_>) -> Result<()> {
    let size = termios::tcgetwinsize(from_tty).map_err(err("terminal", "tcgetwinsize"))?;
    termios::tcsetwinsize(to_master, size).map_err(err("pty master", "tcsetwinsize"))
}

/// Unlocks the pty `master` (an fd of a `ptmx`) and opens its peer.
///
/// The peer is opened with `TIOCGPTPEER` (Linux 4.13), from the master
/// itself, not by path: a guest that controls its `/dev/pts` cannot swap in
/// a symlink or another file between `ptsname` and `open`. The peer is
/// opened `O_NOCTTY | O_CLOEXEC`; [`make_controlling_tty`] makes it a
/// controlling terminal on purpose.
pub fn peer_of(master: BorrowedFd<'_>) -> Result<OwnedFd> {
    rustix::pty::unlockpt(master).map_err(err("pty master", "unlockpt"))?;
    rustix::pty::ioctl_tiocgptpeer(
        master,
        OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC,
    )
    .map_err(err("pty master", "TIOCGPTPEER"))
}

/// Makes `slave` the controlling terminal of a new session and the calling
/// process's stdin, stdout and stderr.
///
/// Meant for the child between `fork` and `exec` (for example in
/// `CommandExt::pre_exec`): it only makes system calls and does not
/// allocate, which is why it returns a plain `std::io::Error`. It fails
/// with `EPERM` if the caller already leads a process group (`setsid(2)`).
/// `slave` itself stays open; if it came from [`peer_of`] it is close-on-exec.
pub fn make_controlling_tty(slave: BorrowedFd<'_>) -> io::Result<()> {
    rustix::process::setsid()?;
    // TIOCSCTTY with argument 0: never steal a terminal that is already
    // another session's controlling terminal (ioctl_tty(2)).
    rustix::process::ioctl_tiocsctty(slave)?;
    for target in 0..=2 {
        // SAFETY: `from_raw_fd` only wraps the number; `ManuallyDrop` makes
        // sure this `OwnedFd` never closes it, so it claims no ownership of
        // whatever fd 0, 1 or 2 is (or of no fd, if it is closed, which
        // `dup2` accepts as a target).
        let mut stdio = ManuallyDrop::new(unsafe { OwnedFd::from_raw_fd(target) });
        if slave.as_raw_fd() != target {
            rustix::io::dup2(slave, &mut stdio)?;
        } else {
            // dup2 onto itself would keep FD_CLOEXEC; clear it so the fd
            // survives exec.
            rustix::io::fcntl_setfd(slave, rustix::io::FdFlags::empty())?;
        }
    }
    Ok(())
}

/// Proxies a terminal session until the guest side is done.
///
/// Copies what arrives on `stdin` to `master` and what arrives on `master`
/// to `stdout`, each through a bounded buffer, and nothing else: the guest
/// only ever sees bytes the user typed. `master` is made non-blocking so a
/// guest that stops reading its input can never stall its output (and so
/// the proxy); `stdin` and `stdout` are left as they are, since their file
/// descriptions are shared with the user's shell.
///
/// - If `stdin` (else `stdout`) is a terminal, its window size is copied to
///   the master at the start and whenever it changes (checked every 250 ms).
///   Put that terminal into [`RawMode`] before calling this.
/// - At end of input on `stdin` the proxy stops reading it but keeps copying
///   the guest's output.
/// - The session ends when the master reports a hangup (`EIO`), which
///   happens when the last fd of the guest's pty slave closes; everything
///   the guest wrote has then been copied to `stdout`.
/// - `child`, if given, is an fd that becomes readable when the session's
///   process exits: a pidfd of the shell (or of the helper waiting for it).
///   Once it is readable the proxy stops reading `stdin`, copies what the
///   guest still writes until the master has been quiet for 100 ms (at most
///   1 s), and returns, even if a background job keeps the pty open.
///
/// Dropping `master` on return hangs up the guest's pty, so processes still
/// attached to it get SIGHUP.
pub fn proxy(
    master: OwnedFd,
    stdin: BorrowedFd<'_>,
    stdout: BorrowedFd<'_>,
    child: Option<BorrowedFd<'_>>,
) -> Result<()> {
    let owned_master = master;
    let master = owned_master.as_fd();
    let flags = rustix::fs::fcntl_getfl(master).map_err(err("pty master", "fcntl"))?;
    rustix::fs::fcntl_setfl(master, flags | rustix::fs::OFlags::NONBLOCK)
        .map_err(err("pty master", "fcntl"))?;

    let window = [stdin, stdout].into_iter().find(|fd| termios::isatty(fd));
    let mut last_size: Option<Winsize> = None;

    let mut input = Buf::new();
    let mut output = Buf::new();
    let mut stdin_open = true;
    let mut master_writable = true;
    let mut master_open = true;
    let mut exited: Option<Instant> = None;

    loop {
        if let (Some(tty), None) = (window, exited) {
            sync_window_size(tty, master, &mut last_size);
        }

        let mut fds = [PollFd::UNUSED; 4];
        let want_stdin = stdin_open && master_writable && exited.is_none() && input.is_empty();
        if want_stdin {
            fds[0] = PollFd::new(stdin, POLLIN);
        }
        let mut master_events = 0;
        if master_open && output.is_empty() {
            master_events |= POLLIN;
        }
        if master_writable && !input.is_empty() {
            master_events |= POLLOUT;
        }
        if master_events != 0 {
            fds[1] = PollFd::new(master, master_events);
        }
        if !output.is_empty() {
            fds[2] = PollFd::new(stdout, POLLOUT);
        }
        if let (Some(child), None) = (child, exited) {
            fds[3] = PollFd::new(child, POLLIN);
        }

        let timeout = if exited.is_some() {
            Some(DRAIN_QUIET)
        } else if window.is_some() {
            Some(WINSIZE_TICK)
        } else {
            None
        };
        let ready = match poll(&mut fds, timeout) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io("pty master", "poll", e)),
        };
        for (fd, name) in fds.iter().zip(["stdin", "pty master", "stdout", "child"]) {
            if fd.revents() & POLLNVAL != 0 {
                return Err(Error::io(name, "poll", Errno::BADF.into()));
            }
        }

        // The user's input.
        if fds[0].revents() != 0 {
            match input.fill_from(stdin) {
                Ok(0) | Err(Errno::IO) => stdin_open = false,
                Ok(_) | Err(Errno::INTR | Errno::AGAIN) => {}
                Err(e) => return Err(Error::io("stdin", "read", e.into())),
            }
        }

        // Input to the guest. A hangup means the slave is closed: nobody
        // will read input any more.
        if fds[1].revents() & POLLHUP != 0 {
            master_writable = false;
        }
        if master_writable && !input.is_empty() {
            match rustix::io::write(master, input.pending()) {
                Ok(n) => input.consume(n),
                Err(Errno::INTR | Errno::AGAIN) => {}
                Err(Errno::IO) => master_writable = false,
                Err(e) => return Err(Error::io("pty master", "write", e.into())),
            }
        }
        if !master_writable {
            input.clear();
        }

        // The guest's output.
        if fds[1].revents() & (POLLIN | POLLHUP | POLLERR) != 0 && output.is_empty() {
            match output.fill_from(master) {
                Ok(0) | Err(Errno::IO) => master_open = false,
                Ok(_) | Err(Errno::INTR | Errno::AGAIN) => {}
                Err(e) => return Err(Error::io("pty master", "read", e.into())),
            }
        }
        if !output.is_empty() {
            match rustix::io::write(stdout, output.pending()) {
                Ok(n) => output.consume(n),
                Err(Errno::INTR | Errno::AGAIN) => {}
                Err(e) => return Err(Error::io("stdout", "write", e.into())),
            }
        }

        if fds[3].revents() != 0 {
            exited = Some(Instant::now());
        }

        if !master_open && output.is_empty() {
            return Ok(());
        }
        if let Some(at) = exited
            && ((ready == 0 && !fds[3].is_used()) || at.elapsed() >= DRAIN_MAX)
        {
            return flush(&mut output, stdout);
        }
    }
}

/// Writes out what is left in `output`, waiting for `stdout` as needed.
fn flush(output: &mut Buf, stdout: BorrowedFd<'_>) -> Result<()> {
    while !output.is_empty() {
        match rustix::io::write(stdout, output.pending()) {
            Ok(n) => output.consume(n),
            Err(Errno::INTR) => {}
            Err(Errno::AGAIN) => {
                let mut fds = [PollFd::new(stdout, POLLOUT)];
                match poll(&mut fds, None) {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(Error::io("stdout", "poll", e)),
                }
            }
            Err(e) => return Err(Error::io("stdout", "write", e.into())),
        }
    }
    Ok(())
}

/// Copies the size of `tty` to `master` if it changed since `last`. A
/// failure is ignored: a wrong window size is no reason to end a session.
fn sync_window_size(tty: BorrowedFd<'_>, master: BorrowedFd<'_>, last: &mut Option<Winsize>) {
    if let Ok(size) = termios::tcgetwinsize(tty)
        && *last != Some(size)
        && termios::tcsetwinsize(master, size).is_ok()
    {
        *last = Some(size);
    }
}

/// A bounded buffer: filled by one read when empty, then written out
/// (possibly in parts) before the next read.
struct Buf {
    data: Box<[u8]>,
    start: usize,
    end: usize,
}

impl Buf {
    fn new() -> Self {
        Self {
            data: vec![0; BUF_SIZE].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }

    fn is_empty(&self) -> bool {
        self.start == self.end
    }

    fn pending(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start >= self.end {
            self.clear();
        }
    }

    fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    fn fill_from(&mut self, fd: BorrowedFd<'_>) -> rustix::io::Result<usize> {
        debug_assert!(self.is_empty());
        let n = rustix::io::read(fd, &mut self.data[..])?;
        self.start = 0;
        self.end = n;
        Ok(n)
    }
}

/// Retries `f` while it fails with `EINTR`.
fn retry<T>(mut f: impl FnMut() -> rustix::io::Result<T>) -> rustix::io::Result<T> {
    loop {
        match f() {
            Err(Errno::INTR) => {}
            result => return result,
        }
    }
}

/// Maps an errno to the crate's error, naming the fd by what it is (these
/// fds have no path).
fn err(what: &'static str, op: &'static str) -> impl FnOnce(Errno) -> Error {
    move |e| Error::io(what, op, e.into())
}

// poll(2): rustix has it only behind its `event` feature, which the
// workspace does not enable; the crate already depends on `libc`.

const POLLIN: i16 = libc::POLLIN;
const POLLOUT: i16 = libc::POLLOUT;
const POLLERR: i16 = libc::POLLERR;
const POLLHUP: i16 = libc::POLLHUP;
const POLLNVAL: i16 = libc::POLLNVAL;

/// A `struct pollfd` that borrows its fd for `'fd`.
#[repr(transparent)]
#[derive(Clone, Copy)]
struct PollFd<'fd> {
    raw: libc::pollfd,
    _fd: std::marker::PhantomData<BorrowedFd<'fd>>,
}

impl<'fd> PollFd<'fd> {
    /// An entry poll(2) skips (negative fd); its `revents` stays 0.
    const UNUSED: Self = Self {
        raw: libc::pollfd {
            fd: -1,
            events: 0,
            revents: 0,
        },
        _fd: std::marker::PhantomData,
    };

    fn new(fd: BorrowedFd<'fd>, events: i16) -> Self {
        Self {
            raw: libc::pollfd {
                fd: fd.as_raw_fd(),
                events,
                revents: 0,
            },
            _fd: std::marker::PhantomData,
        }
    }

    fn revents(&self) -> i16 {
        self.raw.revents
    }

    fn is_used(&self) -> bool {
        self.raw.fd >= 0
    }
}

/// Waits for the events in `fds`; `None` waits without a time limit.
/// Entries with a negative fd are skipped.
fn poll(fds: &mut [PollFd<'_>], timeout: Option<Duration>) -> io::Result<usize> {
    let timeout = timeout.map_or(-1, |t| {
        libc::c_int::try_from(t.as_millis()).unwrap_or(libc::c_int::MAX)
    });
    // SAFETY: `PollFd` is `repr(transparent)` over `libc::pollfd`, so `fds` is a valid, writable array of `fds.len()`
    // `struct pollfd`s for the duration of the call, of which poll(2) only
    // writes `revents`. Every fd in it is borrowed for at least this long,
    // or negative, which poll(2) ignores.
    let n = unsafe {
        libc::poll(
            fds.as_mut_ptr().cast::<libc::pollfd>(),
            fds.len() as libc::nfds_t,
            timeout,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}
