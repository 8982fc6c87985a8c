//! The debootstrap method, and finding a Debian mirror in the host's apt
//! sources.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs;
use std::io::{BufRead, BufReader, ErrorKind, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;

use crate::{Error, Result};

/// Arguments of the debootstrap method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebootstrapArgs {
    /// The suite (`-d`), e.g. `bookworm`.
    pub suite: String,
    /// The mirror (`-m`); default: [`host_debian_mirror`].
    pub mirror: Option<String>,
    /// `--variant`, default `minbase`.
    pub variant: String,
    /// `--include` packages.
    pub include: Vec<String>,
    /// Further debootstrap arguments (after a second `--`).
    pub extra: Vec<String>,
}

impl DebootstrapArgs {
    /// Arguments for `suite` with the defaults: host mirror, variant
    /// `minbase`, nothing included.
    pub fn new(suite: impl Into<String>) -> Self {
        DebootstrapArgs {
            suite: suite.into(),
            mirror: None,
            variant: "minbase".to_string(),
            include: Vec::new(),
            extra: Vec::new(),
        }
    }

    /// The command line that builds `root` from `mirror`, program first:
    /// `debootstrap --variant=V [--include=P,Q] [EXTRA...] SUITE ROOT MIRROR`.
    pub fn command_line(&self, root: &Path, mirror: &str) -> Vec<OsString> {
        let mut cmd: Vec<OsString> = vec![
            "debootstrap".into(),
            format!("--variant={}", self.variant).into(),
        ];
        if !self.include.is_empty() {
            cmd.push(format!("--include={}", self.include.join(",")).into());
        }
        cmd.extend(self.extra.iter().map(OsString::from));
        cmd.push(self.suite.clone().into());
        cmd.push(root.into());
        cmd.push(mirror.into());
        cmd
    }
}

/// `debootstrap` on `PATH`.
pub(super) fn find() -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join("debootstrap");
        if rustix::fs::access(&candidate, rustix::fs::Access::EXEC_OK).is_ok()
            && candidate.is_file()
        {
            return Ok(candidate);
        }
    }
    Err(Error::MissingTool {
        what: "debootstrap not found on PATH".to_string(),
        package: "debootstrap",
    })
}

/// How many lines of output a failure reports.
const TAIL_LINES: usize = 10;

/// Runs debootstrap into the empty `root`, streaming its output.
pub(super) fn run(
    args: &DebootstrapArgs,
    defaults_mirror: Option<&str>,
    root: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<()> {
    let program = find()?;
    let mirror = choose_mirror(args.mirror.as_deref(), defaults_mirror, host_debian_mirror)?;
    let argv = args.command_line(root, &mirror);
    progress(&format!(
        "running {}",
        argv.iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    ));
    run_streaming("debootstrap", &program, &argv[1..], progress)
}

/// The mirror to build from: `-m` if given, else
/// `.defaults/apps/debootstrap/mirror`, else the host's own (`host`, only
/// asked when needed).
pub fn choose_mirror(
    explicit: Option<&str>,
    defaults: Option<&str>,
    host: impl FnOnce() -> Result<String>,
) -> Result<String> {
    match explicit.or(defaults) {
        Some(m) => Ok(m.to_owned()),
        None => host(),
    }
}

/// Runs `program` with `args`, passing each line of its stdout and stderr
/// to `progress`; on failure the error names the command `name` and holds
/// the last lines.
fn run_streaming(
    name: &str,
    program: &Path,
    args: &[OsString],
    progress: &mut dyn FnMut(&str),
) -> Result<()> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::io(program, "run", e))?;

    // `progress` need not be Send: two threads read the pipes and this one
    // reports their lines.
    let (tx, rx) = mpsc::channel::<String>();
    let readers: Vec<_> = [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    .map(|pipe| {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).split(b'\n') {
                let Ok(line) = line else { break };
                let line = String::from_utf8_lossy(&line).trim_end().to_string();
                if tx.send(line).is_err() {
                    break;
                }
            }
        })
    })
    .collect();
    drop(tx);
    let mut tail = VecDeque::with_capacity(TAIL_LINES);
    for line in rx {
        if line.is_empty() {
            continue;
        }
        progress(&line);
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line);
    }
    for r in readers {
        let _ = r.join();
    }
    let status = child.wait().map_err(|e| Error::io(program, "wait", e))?;
    if !status.success() {
        return Err(Error::CommandFailed {
            command: name.to_string(),
            status: status.to_string(),
            tail: tail
                .iter()
                .map(|l| format!("  {l}"))
                .collect::<Vec<_>>()
                .join("\n"),
        });
    }
    Ok(())
}

/// The Debian mirror the host itself uses: see [`host_debian_mirror_in`]
/// (with `/etc/apt`).
pub fn host_debian_mirror() -> Result<String> {
    host_debian_mirror_in(Path::new("/etc/apt"))
}

/// The first `deb` URI in the apt sources under `etc_apt` whose suites
/// include the host's main suite, preferring one without `security` in it.
///
/// Sources are read as apt does: `sources.list`, then `sources.list.d/` in
/// name order, `*.list` in the one-line format and `*.sources` in the deb822
/// format (`Types: deb`, stanzas with `Enabled: no` skipped); other files
/// are ignored. The main suite is `VERSION_CODENAME` of the `os-release`
/// beside `etc_apt` (`/etc/os-release`); without one, any suite without a
/// `-` or `/` (not `-updates`, `-security`, `/updates` ...) counts.
pub fn host_debian_mirror_in(etc_apt: &Path) -> Result<String> {
    let main_suite = etc_apt
        .parent()
        .map(|etc| etc.join("os-release"))
        .and_then(|p| fs::read_to_string(p).ok())
        .and_then(|text| os_release_codename(&text));
    let mut sources = Vec::new();
    if let Some(text) = read_optional(&etc_apt.join("sources.list"))? {
        sources.extend(parse_one_line(&text));
    }
    let dir = etc_apt.join("sources.list.d");
    let mut files = match fs::read_dir(&dir) {
        Ok(rd) => rd
            .map(|e| e.map(|e| e.path()))
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(|e| Error::io(&dir, "read directory", e))?,
        Err(e) if e.kind() == ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(Error::io(&dir, "read directory", e)),
    };
    files.sort();
    for file in files {
        let name = file.file_name().unwrap_or_default().to_string_lossy();
        let deb822 = if name.ends_with(".sources") {
            true
        } else if name.ends_with(".list") {
            false
        } else {
            continue;
        };
        let Some(text) = read_optional(&file)? else {
            continue;
        };
        if deb822 {
            sources.extend(parse_deb822(&text));
        } else {
            sources.extend(parse_one_line(&text));
        }
    }
    let is_main = |suite: &str| match &main_suite {
        Some(main) => suite == main,
        None => !suite.contains(['-', '/']),
    };
    let candidates: Vec<&str> = sources
        .iter()
        .filter(|s| s.suites.iter().any(|suite| is_main(suite)))
        .map(|s| s.uri.as_str())
        .filter(|uri| {
            ["http://", "https://", "ftp://", "file:/"]
                .iter()
                .any(|p| uri.starts_with(p))
        })
        .collect();
    candidates
        .iter()
        .find(|uri| !uri.contains("security"))
        .or(candidates.first())
        .map(|uri| uri.to_string())
        .ok_or_else(|| Error::NoMirror {
            dir: etc_apt.to_path_buf(),
        })
}

fn read_optional(path: &Path) -> Result<Option<String>> {
    match fs::read(path) {
        Ok(data) => Ok(Some(String::from_utf8_lossy(&data).into_owned())),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, "read", e)),
    }
}

fn os_release_codename(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let value = line.trim().strip_prefix("VERSION_CODENAME=")?;
        let value = value.trim().trim_matches(|c| c == '"' || c == '\'');
        (!value.is_empty()).then(|| value.to_string())
    })
}

/// One `deb` source: a URI and its suites.
#[derive(Debug, PartialEq, Eq)]
struct Source {
    uri: String,
    suites: Vec<String>,
}

/// `deb [options] URI SUITE [COMPONENT...]` lines (sources.list(5)).
fn parse_one_line(text: &str) -> Vec<Source> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut words = line.split_whitespace();
        if words.next() != Some("deb") {
            continue;
        }
        let mut word = words.next();
        // Options: `[arch=amd64 signed-by=...]`, possibly with spaces.
        if word.is_some_and(|w| w.starts_with('[')) {
            while let Some(w) = word {
                word = words.next();
                if w.ends_with(']') {
                    break;
                }
            }
        }
        if let (Some(uri), Some(suite)) = (word, words.next()) {
            out.push(Source {
                uri: uri.to_string(),
                suites: vec![suite.to_string()],
            });
        }
    }
    out
}

/// deb822 stanzas (sources.list(5), "DEB822-STYLE FORMAT").
fn parse_deb822(text: &str) -> Vec<Source> {
    let mut out = Vec::new();
    let mut stanza: Vec<(String, String)> = Vec::new();
    let mut flush = |stanza: &mut Vec<(String, String)>| {
        let get = |key: &str| {
            stanza
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v.as_str())
        };
        let enabled = get("Enabled").is_none_or(|v| !v.trim().eq_ignore_ascii_case("no"));
        let is_deb = get("Types").is_some_and(|v| v.split_whitespace().any(|t| t == "deb"));
        if enabled && is_deb {
            let suites: Vec<String> = get("Suites")
                .unwrap_or("")
                .split_whitespace()
                .map(str::to_string)
                .collect();
            for uri in get("URIs").unwrap_or("").split_whitespace() {
                out.push(Source {
                    uri: uri.to_string(),
                    suites: suites.clone(),
                });
            }
        }
        stanza.clear();
    };
    for line in text.lines() {
        if line.trim().is_empty() {
            flush(&mut stanza);
        } else if line.starts_with('#') {
            continue;
        } else if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = stanza.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((key, value)) = line.split_once(':') {
            stanza.push((key.trim().to_string(), value.trim().to_string()));
        }
    }
    flush(&mut stanza);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_precedence_option_then_defaults_then_host() {
        let host_asked = std::cell::Cell::new(0);
        let host = || {
            host_asked.set(host_asked.get() + 1);
            Ok("http://host.example/debian".to_owned())
        };
        assert_eq!(
            choose_mirror(Some("http://m.example/"), Some("http://d.example/"), host).unwrap(),
            "http://m.example/"
        );
        assert_eq!(
            choose_mirror(None, Some("http://d.example/"), host).unwrap(),
            "http://d.example/"
        );
        assert_eq!(
            host_asked.get(),
            0,
            "the host's sources are not read when not needed"
        );
        assert_eq!(
            choose_mirror(None, None, host).unwrap(),
            "http://host.example/debian"
        );
        assert_eq!(host_asked.get(), 1);
        // Without any, the host's error (which says to pass -m) comes through.
        let err = choose_mirror(None, None, || {
            host_debian_mirror_in(Path::new("/nonexistent/apt"))
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("pass -m MIRROR"), "{err}");
    }

    fn fixture(files: &[(&str, &str)]) -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let p = tmp.path().join(name);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, text).unwrap();
        }
        tmp
    }

    const OS_RELEASE: (&str, &str) = (
        "etc/os-release",
        "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nVERSION_CODENAME=bookworm\n",
    );

    #[test]
    fn deb822_several_stanzas() {
        let tmp = fixture(&[
            OS_RELEASE,
            (
                "etc/apt/sources.list.d/debian.sources",
                "Types: deb\n\
                 URIs: http://security.debian.org/debian-security\n\
                 Suites: bookworm-security\n\
                 Components: main\n\
                 \n\
                 # a comment between stanzas\n\
                 Types: deb-src\n\
                 URIs: http://src.example.org/debian\n\
                 Suites: bookworm\n\
                 \n\
                 Types: deb\n\
                 # snapshot comment inside a stanza\n\
                 URIs: http://deb.debian.org/debian\n\
                 Suites: bookworm\n  bookworm-updates\n\
                 Components: main\n",
            ),
            (
                "etc/apt/sources.list.d/other.sources.disabled",
                "Types: deb\nURIs: http://wrong.example.org/\nSuites: bookworm\n",
            ),
        ]);
        assert_eq!(
            host_debian_mirror_in(&tmp.path().join("etc/apt")).unwrap(),
            "http://deb.debian.org/debian"
        );
    }

    #[test]
    fn deb822_disabled_stanza_skipped() {
        let tmp = fixture(&[
            OS_RELEASE,
            (
                "etc/apt/sources.list.d/a.sources",
                "Types: deb\nURIs: http://off.example.org/debian\nSuites: bookworm\nEnabled: no\n\n\
                 Types: deb deb-src\nURIs: https://on.example.org/debian http://second.example.org/\n\
                 Suites: bookworm\nComponents: main\n",
            ),
        ]);
        assert_eq!(
            host_debian_mirror_in(&tmp.path().join("etc/apt")).unwrap(),
            "https://on.example.org/debian"
        );
    }

    #[test]
    fn one_line_format_and_order() {
        let tmp = fixture(&[
            OS_RELEASE,
            (
                "etc/apt/sources.list",
                "# deb http://commented.example.org/debian bookworm main\n\
                 deb-src http://src.example.org/debian bookworm main\n\
                 deb http://security.debian.org/debian-security bookworm-security main\n\
                 deb [ arch=amd64 signed-by=/k.gpg ] http://ftp.de.debian.org/debian bookworm main contrib\n",
            ),
            (
                "etc/apt/sources.list.d/z.list",
                "deb http://later.example.org/debian bookworm main\n",
            ),
        ]);
        assert_eq!(
            host_debian_mirror_in(&tmp.path().join("etc/apt")).unwrap(),
            "http://ftp.de.debian.org/debian"
        );
    }

    #[test]
    fn security_only_is_an_error() {
        let tmp = fixture(&[
            OS_RELEASE,
            (
                "etc/apt/sources.list.d/debian.sources",
                "Types: deb\nURIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\n",
            ),
            (
                "etc/apt/sources.list.d/third.list",
                "deb https://packages.example.com/apt cloud-sdk-bookworm main\n",
            ),
        ]);
        let apt = tmp.path().join("etc/apt");
        let err = host_debian_mirror_in(&apt).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "no Debian mirror in the host's apt sources ({0}/sources.list, {0}/sources.list.d): pass -m MIRROR",
                apt.display()
            )
        );
        // nothing at all
        let empty = tempfile::tempdir().unwrap();
        assert!(host_debian_mirror_in(&empty.path().join("apt")).is_err());
    }

    #[test]
    fn without_os_release_plain_suites_count() {
        let tmp = fixture(&[(
            "etc/apt/sources.list",
            "deb http://deb.debian.org/debian-security bookworm-security main\n\
             deb http://deb.debian.org/debian sid main\n",
        )]);
        assert_eq!(
            host_debian_mirror_in(&tmp.path().join("etc/apt")).unwrap(),
            "http://deb.debian.org/debian"
        );
    }

    #[test]
    fn streaming_and_failure_tail() {
        let tmp = tempfile::tempdir().unwrap();
        let script = tmp.path().join("debootstrap");
        fs::write(
            &script,
            "#!/bin/sh\n\
             echo \"I: args $*\"\n\
             i=1; while [ $i -le 15 ]; do echo \"I: line $i\"; i=$((i+1)); done\n\
             echo 'E: broken' >&2\n\
             exit 3\n",
        )
        .unwrap();
        let mut lines = Vec::new();
        // Run through sh, not exec'd: a file just written may be held open
        // by a concurrent fork in another test thread (ETXTBSY).
        let sh = Path::new("/bin/sh");
        let args = [script.clone().into(), "a".into(), "b c".into()];
        let err = run_streaming("debootstrap", sh, &args, &mut |l| lines.push(l.to_string()))
            .unwrap_err();
        assert_eq!(lines.len(), 17, "{lines:?}");
        assert!(lines.contains(&"I: args a b c".to_string()), "{lines:?}");
        assert!(lines.contains(&"E: broken".to_string()));
        let msg = err.to_string();
        assert!(
            msg.starts_with("debootstrap failed (exit status: 3); its last lines of output:\n  "),
            "{msg}"
        );
        // stdout and stderr interleave in any order; the tail is the last
        // ten lines as reported
        let tail: Vec<String> = lines[7..].iter().map(|l| format!("  {l}")).collect();
        assert_eq!(msg.lines().skip(1).collect::<Vec<_>>(), tail, "{msg}");

        fs::write(&script, "#!/bin/sh\necho ok\n").unwrap();
        run_streaming("debootstrap", sh, &[script.into()], &mut |_| {}).unwrap();
    }

    #[test]
    fn command_line() {
        let mut args = DebootstrapArgs::new("bookworm");
        assert_eq!(
            args.command_line(Path::new("/var/lib/vservers/g"), "http://m/debian"),
            [
                "debootstrap",
                "--variant=minbase",
                "bookworm",
                "/var/lib/vservers/g",
                "http://m/debian"
            ]
            .map(OsString::from)
        );
        args.variant = "buildd".into();
        args.include = vec!["less".into(), "vim".into()];
        args.extra = vec!["--arch=amd64".into(), "--no-merged-usr".into()];
        assert_eq!(
            args.command_line(Path::new("/r"), "file:/mirror"),
            [
                "debootstrap",
                "--variant=buildd",
                "--include=less,vim",
                "--arch=amd64",
                "--no-merged-usr",
                "bookworm",
                "/r",
                "file:/mirror"
            ]
            .map(OsString::from)
        );
    }
}
