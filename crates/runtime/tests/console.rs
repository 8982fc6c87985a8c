//! The terminal proxy of `enter`, against ptys of the host's devpts: one pty
//! plays the guest's (a shell runs on its slave), another the user's
//! terminal (the test plays the terminal emulator on its master). No root
//! needed.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use rustix::io::FdFlags;
use rustix::pipe::PipeFlags;
use rustix::process::{Pid, PidfdFlags};
use rustix::pty::OpenptFlags;
use rustix::termios::{self, InputModes, LocalModes, OutputModes, Winsize};
use vs_runtime::channel::Channel;
use vs_runtime::console::{self, RawMode};

/// No test may take longer than this; a hang fails the test instead.
const LIMIT: Duration = Duration::from_secs(10);

/// Runs `f` on its own thread and fails the test if it does not finish
/// within [`LIMIT`]. A panic in `f` fails the test with `f`'s message.
fn with_timeout<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, finished) = mpsc::channel();
    let handle = thread::spawn(move || {
        let value = f();
        let _ = done.send(());
        value
    });
    match finished.recv_timeout(LIMIT) {
        // Disconnected: `f` panicked, `join` passes the panic on.
        Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => match handle.join() {
            Ok(value) => value,
            Err(panic) => std::panic::resume_unwind(panic),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("test did not finish within {LIMIT:?}"),
    }
}

/// A new pty of the host's devpts: (master, slave).
fn pty_pair() -> (OwnedFd, OwnedFd) {
    let master =
        rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)
            .expect("open /dev/ptmx");
    let slave = console::peer_of(master.as_fd()).expect("peer_of");
    (master, slave)
}

/// `/bin/sh` with `slave` as its controlling terminal and stdio.
fn spawn_shell(slave: &OwnedFd) -> Child {
    let raw = slave.as_raw_fd();
    let mut cmd = Command::new("/bin/sh");
    cmd.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("PS1", "$ ")
        .env("TERM", "dumb")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: the closure runs between fork and exec and only calls
    // `make_controlling_tty`, which makes system calls and does not
    // allocate.
    unsafe {
        cmd.pre_exec(move || {
            // SAFETY: `slave` is open in the parent for the whole spawn, so
            // the forked child has it too (it is close-on-exec, so it goes
            // away at exec, after the dup onto 0, 1 and 2).
            let slave = BorrowedFd::borrow_raw(raw);
            console::make_controlling_tty(slave)
        });
    }
    cmd.spawn().expect("spawn /bin/sh")
}

fn pipe() -> (File, File) {
    let (r, w) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC).expect("pipe");
    (File::from(r), File::from(w))
}

fn winsize(rows: u16, cols: u16) -> Winsize {
    Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

fn text(buf: &[u8]) -> String {
    String::from_utf8_lossy(buf).into_owned()
}

/// Reads from `f` into `buf` until `buf` contains `needle`.
fn read_until(f: &mut File, buf: &mut Vec<u8>, needle: &str) {
    while !text(buf).contains(needle) {
        let mut chunk = [0u8; 4096];
        match f.read(&mut chunk) {
            Ok(0) => panic!("end of output before {needle:?}; got {:?}", text(buf)),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => panic!("read before {needle:?}: {e}; got {:?}", text(buf)),
        }
    }
}

/// Reads from `f` into `buf` until end of file, or `EIO` on a pty master
/// (its slave closed).
fn read_to_hangup(f: &mut File, buf: &mut Vec<u8>) {
    let mut chunk = [0u8; 4096];
    loop {
        match f.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::IO.raw_os_error()) => return,
            Err(e) => panic!("read: {e}; got {:?}", text(buf)),
        }
    }
}

/// Waits until the window size of `tty` is `want`.
fn wait_for_size(tty: BorrowedFd<'_>, want: Winsize) {
    loop {
        let size = termios::tcgetwinsize(tty).expect("tcgetwinsize");
        if size == want {
            return;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn shell_session_through_pipes() {
    with_timeout(|| {
        let (guest_master, guest_slave) = pty_pair();
        let mut shell = spawn_shell(&guest_slave);
        // Only the shell holds the slave now: its exit hangs up the master.
        drop(guest_slave);

        let (stdin_r, mut stdin_w) = pipe();
        let (mut stdout_r, stdout_w) = pipe();
        let proxy = thread::spawn(move || {
            console::proxy(guest_master, stdin_r.as_fd(), stdout_w.as_fd(), None)
        });

        // `hel""lo` so the echo of the typed line does not match.
        stdin_w.write_all(b"echo hel\"\"lo; exit 3\n").unwrap();
        // End of input right away: the proxy must keep copying output.
        drop(stdin_w);

        let mut out = Vec::new();
        read_to_hangup(&mut stdout_r, &mut out);
        proxy.join().unwrap().expect("proxy");
        assert!(text(&out).contains("hello"), "output: {:?}", text(&out));
        assert_eq!(shell.wait().unwrap().code(), Some(3));
    });
}

#[test]
fn large_output_arrives_whole() {
    with_timeout(|| {
        let (guest_master, guest_slave) = pty_pair();
        let mut shell = spawn_shell(&guest_slave);
        drop(guest_slave);

        let (stdin_r, mut stdin_w) = pipe();
        let (mut stdout_r, stdout_w) = pipe();
        let proxy = thread::spawn(move || {
            console::proxy(guest_master, stdin_r.as_fd(), stdout_w.as_fd(), None)
        });
        stdin_w
            .write_all(
                b"i=0; while [ $i -lt 5000 ]; do echo line$i; i=$((i+1)); done; echo do\"\"ne; exit 0\n",
            )
            .unwrap();

        // Read slowly at first so the bounded buffers fill up.
        thread::sleep(Duration::from_millis(300));
        let mut out = Vec::new();
        read_to_hangup(&mut stdout_r, &mut out);
        proxy.join().unwrap().expect("proxy");
        let out = text(&out);
        // The first line may follow the prompt: take "lineN" from anywhere
        // in a line (the echoed command has "line$i", which is no number).
        let numbers: Vec<u32> = out
            .lines()
            .filter_map(|l| {
                let l = l.trim_end_matches('\r');
                l[l.find("line")? + 4..].parse().ok()
            })
            .collect();
        let missing = (0..5000).find(|&i| numbers.get(i as usize) != Some(&i));
        assert_eq!(
            missing,
            None,
            "{} lines, first gap at {missing:?}",
            numbers.len()
        );
        assert_eq!(numbers.len(), 5000);
        assert!(out.contains("done"));
        assert_eq!(shell.wait().unwrap().code(), Some(0));
        drop(stdin_w);
    });
}

#[test]
fn shell_session_through_user_terminal() {
    with_timeout(|| {
        // The user's terminal: the test is the terminal emulator on
        // `user_master`; the proxy's stdin and stdout are `user_slave`.
        let (user_master, user_slave) = pty_pair();
        termios::tcsetwinsize(&user_master, winsize(33, 77)).unwrap();

        let (guest_master, guest_slave) = pty_pair();
        let mut shell = spawn_shell(&guest_slave);
        let pidfd =
            rustix::process::pidfd_open(Pid::from_child(&shell), PidfdFlags::empty()).unwrap();
        // The test keeps `guest_slave` open, like a background job in the
        // guest would: the master never hangs up, so the proxy has to end
        // on the shell's exit (the pidfd).
        let proxy = thread::spawn(move || {
            let _raw = RawMode::enable(user_slave.as_fd())
                .unwrap()
                .expect("a terminal");
            console::proxy(
                guest_master,
                user_slave.as_fd(),
                user_slave.as_fd(),
                Some(pidfd.as_fd()),
            )
        });

        // The size at the start reaches the guest.
        wait_for_size(guest_slave.as_fd(), winsize(33, 77));
        let mut term = File::from(user_master.try_clone().unwrap());
        let mut out = Vec::new();
        // Enter sends CR; the guest's ICRNL makes it a newline.
        term.write_all(b"stty size\r").unwrap();
        read_until(&mut term, &mut out, "33 77");

        // The shell holds no fd of the user's terminal, only of its own pty:
        // nothing it can do (TIOCSTI, tcsetattr, ...) reaches the user's.
        let user_tty = rustix::pty::ptsname(&user_master, Vec::new()).unwrap();
        let guest_tty = termios::ttyname(&guest_slave, Vec::new()).unwrap();
        let (user_tty, guest_tty) = (
            user_tty.to_string_lossy().into_owned(),
            guest_tty.to_string_lossy().into_owned(),
        );
        let mut fds_out = Vec::new();
        term.write_all(b"for f in /proc/$$/fd/*; do readlink $f; done; echo en\"\"d\r")
            .unwrap();
        read_until(&mut term, &mut fds_out, "end\r\n");
        let fds_text = text(&fds_out);
        let targets: Vec<&str> = fds_text
            .lines()
            .map(|l| l.trim_end_matches('\r'))
            .filter(|l| l.starts_with('/'))
            .collect();
        assert!(targets.contains(&guest_tty.as_str()), "fds: {targets:?}");
        assert!(!targets.contains(&user_tty.as_str()), "fds: {targets:?}");
        out.extend_from_slice(&fds_out);

        // A resize of the user's terminal reaches the guest.
        termios::tcsetwinsize(&user_master, winsize(44, 99)).unwrap();
        wait_for_size(guest_slave.as_fd(), winsize(44, 99));
        term.write_all(b"stty size; echo hel\"\"lo; exit 3\r")
            .unwrap();

        // The proxy returns after the shell exits, the guard restores the
        // terminal, the thread closes `user_slave`: the master hangs up.
        read_to_hangup(&mut term, &mut out);
        proxy.join().unwrap().expect("proxy");
        let out = text(&out);
        assert!(out.contains("44 99"), "output: {out:?}");
        assert!(out.contains("hello"), "output: {out:?}");
        assert_eq!(shell.wait().unwrap().code(), Some(3));
        drop(guest_slave);
    });
}

#[test]
fn bytes_pass_unchanged_both_ways() {
    with_timeout(|| {
        let (user_master, user_slave) = pty_pair();
        let (guest_master, guest_slave) = pty_pair();
        // A raw guest pty, so what arrives is exactly what was sent.
        let mut raw = termios::tcgetattr(&guest_slave).unwrap();
        raw.make_raw();
        termios::tcsetattr(&guest_slave, termios::OptionalActions::Now, &raw).unwrap();
        let proxy = thread::spawn(move || {
            let _raw = RawMode::enable(user_slave.as_fd())
                .unwrap()
                .expect("a terminal");
            console::proxy(guest_master, user_slave.as_fd(), user_slave.as_fd(), None)
        });
        let mut term = File::from(user_master);
        let mut guest = File::from(guest_slave);

        guest.write_all(b"from guest\n").unwrap();
        let mut out = Vec::new();
        read_until(&mut term, &mut out, "from guest\n");
        assert_eq!(out, b"from guest\n");

        // ^C, CR and ^Z typed by the user are bytes for the guest: the
        // user's terminal is raw (a cooked one would eat ^C and the line
        // before it, and turn CR into LF).
        let typed = b"a\x03b\rc\x1ad";
        term.write_all(typed).unwrap();
        let mut got = Vec::new();
        while got.len() < typed.len() {
            let mut chunk = [0u8; 64];
            let n = guest.read(&mut chunk).unwrap();
            assert_ne!(n, 0);
            got.extend_from_slice(&chunk[..n]);
        }
        assert_eq!(got, typed);

        // The guest closing its side ends the proxy.
        drop(guest);
        read_to_hangup(&mut term, &mut out);
        proxy.join().unwrap().expect("proxy");
    });
}

#[test]
fn peer_of_gives_a_working_slave() {
    with_timeout(|| {
        let (master, slave) = pty_pair();
        let name = termios::ttyname(&slave, Vec::new()).unwrap();
        assert_eq!(name, rustix::pty::ptsname(&master, Vec::new()).unwrap());
        assert!(
            rustix::io::fcntl_getfd(&slave)
                .unwrap()
                .contains(FdFlags::CLOEXEC)
        );

        let mut master = File::from(master);
        let mut slave = File::from(slave);
        slave.write_all(b"ping\n").unwrap();
        let mut buf = Vec::new();
        read_until(&mut master, &mut buf, "ping\r\n");
        master.write_all(b"pong\n").unwrap();
        let mut buf = Vec::new();
        read_until(&mut slave, &mut buf, "pong\n");
    });
}

#[test]
fn fd_passing_over_a_socketpair() {
    with_timeout(|| {
        let (a, b) = Channel::pair().unwrap();
        let (mut pipe_r, pipe_w) = pipe();
        a.send("fd", Some(pipe_w.as_fd())).unwrap();
        drop(pipe_w);
        let got = b.recv().unwrap().unwrap().1.unwrap();
        assert!(
            rustix::io::fcntl_getfd(&got)
                .unwrap()
                .contains(FdFlags::CLOEXEC)
        );
        File::from(got).write_all(b"through").unwrap();
        let mut buf = Vec::new();
        pipe_r.read_to_end(&mut buf).unwrap();
        assert_eq!(buf, b"through");

        // A pty master travels the same way and still works.
        let (master, slave) = pty_pair();
        a.send("pty", Some(master.as_fd())).unwrap();
        drop(master);
        let mut master = File::from(b.recv().unwrap().unwrap().1.unwrap());
        File::from(slave).write_all(b"pty\n").unwrap();
        let mut buf = Vec::new();
        read_until(&mut master, &mut buf, "pty\r\n");

        // The peer went away.
        drop(a);
        assert!(b.recv().unwrap().is_none());
    });
}

#[test]
fn raw_mode_is_restored_on_drop_and_on_panic() {
    with_timeout(|| {
        let (_master, tty) = pty_pair();
        let before = termios::tcgetattr(&tty).unwrap();
        assert!(
            before
                .local_modes
                .contains(LocalModes::ICANON | LocalModes::ECHO)
        );

        let modes = |t: &termios::Termios| {
            (
                t.input_modes,
                t.output_modes,
                t.control_modes,
                t.local_modes,
            )
        };
        {
            let guard = RawMode::enable(tty.as_fd()).unwrap().expect("a terminal");
            assert_eq!(modes(guard.saved()), modes(&before));
            let raw = termios::tcgetattr(&tty).unwrap();
            assert!(!raw.local_modes.intersects(
                LocalModes::ICANON | LocalModes::ECHO | LocalModes::ISIG | LocalModes::IEXTEN
            ));
            assert!(
                !raw.input_modes
                    .intersects(InputModes::ICRNL | InputModes::IXON)
            );
            assert!(!raw.output_modes.contains(OutputModes::OPOST));
        }
        assert_eq!(modes(&termios::tcgetattr(&tty).unwrap()), modes(&before));

        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _guard = RawMode::enable(tty.as_fd()).unwrap().expect("a terminal");
            panic!("unwinding through the guard");
        }));
        assert!(unwound.is_err());
        assert_eq!(modes(&termios::tcgetattr(&tty).unwrap()), modes(&before));

        // Not a terminal: nothing to do.
        let (r, _w) = pipe();
        assert!(RawMode::enable(r.as_fd()).unwrap().is_none());
    });
}

#[test]
fn copy_window_size_sets_the_guest_size() {
    with_timeout(|| {
        let (_user_master, user) = pty_pair();
        let (guest_master, guest) = pty_pair();
        termios::tcsetwinsize(&user, winsize(12, 34)).unwrap();
        console::copy_window_size(user.as_fd(), guest_master.as_fd()).unwrap();
        assert_eq!(termios::tcgetwinsize(&guest).unwrap(), winsize(12, 34));
    });
}

#[test]
fn proxy_returns_when_the_slave_is_already_closed() {
    // Nobody will ever write: the proxy must not wait for input or output.
    with_timeout(|| {
        let (master, slave) = pty_pair();
        drop(slave);
        let (stdin_r, _stdin_w) = pipe();
        let (_stdout_r, stdout_w) = pipe();
        console::proxy(master, stdin_r.as_fd(), stdout_w.as_fd(), None).expect("proxy");
    });
}
