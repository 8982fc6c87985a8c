//! The command line's manners that no verb owns.

use std::os::unix::process::ExitStatusExt;

const SIGPIPE: i32 = 13;
use std::process::{Command, Stdio};

use vs_tests::{Env, unique, vserver_bin};

/// Output into a pipe nobody reads (`vserver NAME status | head -0`) ends
/// the command quietly by SIGPIPE, as C tools end, not with a panic.
#[test]
fn output_to_a_closed_pipe_ends_quietly() {
    let env = Env::new();
    let name = unique("pipe");
    env.run(&[&name, "build", "-m", "skeleton"]).ok();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(vserver_bin())
        .args([&name, "status"])
        .env("VSERVER_ROOT", env.root())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.signal(), Some(SIGPIPE), "{out:?}");
}
