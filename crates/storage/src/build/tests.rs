//! Tests of the build methods that need no root (and pass as root too).

use super::*;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

use tar::{EntryType, Header};

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn parse_err(name: &str, list: &[&str]) -> String {
    Method::parse(name, &args(list)).unwrap_err().to_string()
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

#[test]
fn parse_skeleton() {
    assert_eq!(Method::parse("skeleton", &[]).unwrap(), Method::Skeleton);
    assert_eq!(
        parse_err("skeleton", &["-d", "x"]),
        "unknown option '-d' for method skeleton"
    );
    assert_eq!(
        parse_err("rpm", &[]),
        "unknown build method 'rpm' (known: skeleton, busybox, debootstrap, template)"
    );
}

#[test]
fn parse_busybox() {
    assert_eq!(
        Method::parse("busybox", &[]).unwrap(),
        Method::Busybox {
            busybox: "/bin/busybox".into()
        }
    );
    assert_eq!(
        Method::parse("busybox", &args(&["--busybox", "/opt/bb"])).unwrap(),
        Method::Busybox {
            busybox: "/opt/bb".into()
        }
    );
    assert_eq!(
        Method::parse("busybox", &args(&["--busybox=/opt/bb"])).unwrap(),
        Method::Busybox {
            busybox: "/opt/bb".into()
        }
    );
    assert_eq!(
        parse_err("busybox", &["--busybox"]),
        "method busybox: option '--busybox' needs a value"
    );
    assert_eq!(
        parse_err("busybox", &["-x"]),
        "unknown option '-x' for method busybox"
    );
}

#[test]
fn parse_debootstrap() {
    let m = Method::parse("debootstrap", &args(&["-d", "bookworm"])).unwrap();
    assert_eq!(m, Method::Debootstrap(DebootstrapArgs::new("bookworm")));
    let m = Method::parse(
        "debootstrap",
        &args(&[
            "-d",
            "trixie",
            "-m",
            "http://mirror/debian",
            "--variant",
            "buildd",
            "--include",
            "less,vim",
            "--include=curl",
            "--",
            "--arch=amd64",
            "-v",
        ]),
    )
    .unwrap();
    let Method::Debootstrap(a) = m else {
        panic!("{m:?}")
    };
    assert_eq!(a.suite, "trixie");
    assert_eq!(a.mirror.as_deref(), Some("http://mirror/debian"));
    assert_eq!(a.variant, "buildd");
    assert_eq!(a.include, ["less", "vim", "curl"]);
    assert_eq!(a.extra, ["--arch=amd64", "-v"]);
    assert_eq!(
        parse_err("debootstrap", &[]),
        "method debootstrap: -d SUITE is required"
    );
    assert_eq!(
        parse_err("debootstrap", &["-m", "http://m/"]),
        "method debootstrap: -d SUITE is required"
    );
    assert_eq!(
        parse_err("debootstrap", &["-d"]),
        "method debootstrap: option '-d' needs a value"
    );
    assert_eq!(
        parse_err("debootstrap", &["-d", "-m"]),
        "method debootstrap: option '-d' needs a value"
    );
    assert_eq!(
        parse_err("debootstrap", &["-d", "bookworm", "-s", "script"]),
        "unknown option '-s' for method debootstrap"
    );
    assert_eq!(
        parse_err("debootstrap", &["bookworm"]),
        "unknown option 'bookworm' for method debootstrap"
    );
}

#[test]
fn parse_template() {
    let m = Method::parse("template", &args(&["-t", "a.tar", "-t", "b.tar.zst"])).unwrap();
    assert_eq!(
        m,
        Method::Template {
            archives: vec!["a.tar".into(), "b.tar.zst".into()]
        }
    );
    assert_eq!(
        parse_err("template", &[]),
        "method template: at least one -t ARCHIVE is required"
    );
    assert_eq!(
        parse_err("template", &["-t"]),
        "method template: option '-t' needs a value"
    );
    assert_eq!(
        parse_err("template", &["-t", "a.tar", "--nodevsanity"]),
        "unknown option '--nodevsanity' for method template"
    );
}

// ---- archives made in the test ------------------------------------------

const MTIME: u64 = 1_600_000_000;

/// A tar archive built entry by entry, names and link names written raw
/// (the tar crate's setters refuse the hostile ones these tests need).
struct Tar(tar::Builder<Vec<u8>>);

impl Tar {
    fn new() -> Self {
        Tar(tar::Builder::new(Vec::new()))
    }

    fn header(kind: EntryType, name: &str, mode: u32, size: u64) -> Header {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_uid(1234);
        h.set_gid(2345);
        h.set_mtime(MTIME);
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h
    }

    fn add(&mut self, mut h: Header, data: &[u8]) -> &mut Self {
        h.set_cksum();
        self.0.append(&h, data).unwrap();
        self
    }

    fn file(&mut self, name: &str, data: &[u8], mode: u32) -> &mut Self {
        let h = Self::header(EntryType::Regular, name, mode, data.len() as u64);
        self.add(h, data)
    }

    fn dir(&mut self, name: &str, mode: u32) -> &mut Self {
        let h = Self::header(EntryType::Directory, name, mode, 0);
        self.add(h, b"")
    }

    fn link(&mut self, kind: EntryType, name: &str, target: &str) -> &mut Self {
        let mut h = Self::header(kind, name, 0o777, 0);
        h.as_old_mut().linkname[..target.len()].copy_from_slice(target.as_bytes());
        self.add(h, b"")
    }

    fn node(&mut self, kind: EntryType, name: &str, mode: u32) -> &mut Self {
        let mut h = Self::header(kind, name, mode, 0);
        h.set_device_major(1).unwrap();
        h.set_device_minor(3).unwrap();
        self.add(h, b"")
    }

    fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        self.0
            .append_pax_extensions(records.iter().map(|(k, v)| (*k, *v)))
            .unwrap();
        self
    }

    fn finish(&mut self) -> Vec<u8> {
        let b = std::mem::replace(&mut self.0, tar::Builder::new(Vec::new()));
        b.into_inner().unwrap()
    }
}

#[derive(Clone, Copy, Debug)]
enum Comp {
    Plain,
    Gzip,
    Xz,
    Zstd,
}

fn compress(data: &[u8], comp: Comp) -> Vec<u8> {
    match comp {
        Comp::Plain => data.to_vec(),
        Comp::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        Comp::Xz => {
            let mut e = liblzma::write::XzEncoder::new(Vec::new(), 1);
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        Comp::Zstd => zstd::stream::encode_all(data, 1).unwrap(),
    }
}

/// A temp dir with an empty guest root `root/` in it.
struct Fixture {
    tmp: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        crate::create_root(&tmp.path().join("root"), crate::Backend::Dir).unwrap();
        Fixture { tmp }
    }

    fn root(&self) -> PathBuf {
        self.tmp.path().join("root")
    }

    fn archive(&self, name: &str, data: &[u8]) -> PathBuf {
        let p = self.tmp.path().join(name);
        fs::write(&p, data).unwrap();
        p
    }

    /// Runs the template method; returns its progress lines.
    fn template(&self, archives: Vec<PathBuf>) -> Result<Vec<String>> {
        let mut lines = Vec::new();
        let opts = BuildOptions {
            hostname: "guest1".into(),
            defaults_files: None,
            debootstrap_mirror: None,
        };
        Method::Template { archives }
            .run(&self.root(), &opts, &mut |l| lines.push(l.to_string()))?;
        Ok(lines)
    }
}

fn sample_archive() -> Vec<u8> {
    Tar::new()
        .dir("./", 0o755)
        .dir("./etc/", 0o755)
        .file("./etc/passwd", b"root:x:0:0::/root:/bin/sh\n", 0o644)
        .file("etc/secret", b"s", 0o600)
        .link(EntryType::Link, "etc/passwd-hl", "./etc/passwd")
        .dir("usr/", 0o755)
        .dir("usr/bin/", 0o755)
        .file("usr/bin/su", b"\x7fELF...", 0o4755)
        .link(EntryType::Symlink, "usr/bin/sh", "busybox")
        .link(EntryType::Symlink, "abs", "/etc/passwd")
        .dir("opt/ro/", 0o555)
        .file("opt/ro/inside", b"i", 0o444)
        // a file whose parents have no entries
        .file("deep/er/file", b"d", 0o640)
        .pax(&[
            ("SCHILY.xattr.user.test", b"value"),
            ("mtime", b"1600000123.25"),
        ])
        .file("etc/xattr", b"x", 0o644)
        .node(EntryType::Fifo, "run/fifo", 0o600)
        .node(EntryType::Char, "dev/null", 0o666)
        .node(EntryType::Block, "dev/sda", 0o660)
        // a merged-/usr symlink replacing the skeleton's empty bin/
        .link(EntryType::Symlink, "bin", "usr/bin")
        .finish()
}

fn check_sample(root: &Path) {
    let meta = |p: &str| fs::symlink_metadata(root.join(p)).unwrap();
    assert_eq!(
        fs::read(root.join("etc/passwd")).unwrap(),
        b"root:x:0:0::/root:/bin/sh\n"
    );
    assert_eq!(meta("etc/passwd").mode() & 0o7777, 0o644);
    assert_eq!(meta("etc/passwd").mtime(), MTIME as i64);
    assert_eq!(meta("etc/secret").mode() & 0o7777, 0o600);
    assert_eq!(meta("etc/passwd-hl").ino(), meta("etc/passwd").ino());
    assert_eq!(meta("usr/bin/su").mode() & 0o7777, 0o4755);
    assert_eq!(
        fs::read_link(root.join("usr/bin/sh")).unwrap(),
        Path::new("busybox")
    );
    assert_eq!(
        fs::read_link(root.join("abs")).unwrap(),
        Path::new("/etc/passwd")
    );
    assert_eq!(meta("abs").mtime(), MTIME as i64);
    assert_eq!(meta("opt/ro").mode() & 0o7777, 0o555);
    assert_eq!(meta("opt/ro").mtime(), MTIME as i64);
    assert_eq!(meta("opt/ro/inside").mode() & 0o7777, 0o444);
    assert_eq!(meta("deep/er/file").mode() & 0o7777, 0o640);
    let x = meta("etc/xattr");
    assert_eq!((x.mtime(), x.mtime_nsec()), (1_600_000_123, 250_000_000));
    assert!(meta("run/fifo").file_type().is_fifo());
    assert_eq!(meta("run/fifo").mode() & 0o7777, 0o600);
    assert!(!root.join("dev/null").exists());
    assert!(!root.join("dev/sda").exists());
    assert_eq!(
        fs::read_link(root.join("bin")).unwrap(),
        Path::new("usr/bin")
    );
    // the root entry "./" and the skeleton
    assert_eq!(meta(".").mode() & 0o7777, 0o755);
    assert_eq!(meta("tmp").mode() & 0o7777, 0o1777);
    assert_eq!(meta("root").mode() & 0o7777, 0o700);
    assert_eq!(
        fs::read_link(root.join("dev/fd")).unwrap(),
        Path::new("/proc/self/fd")
    );
    assert_eq!(fs::read(root.join("etc/hostname")).unwrap(), b"guest1\n");
    if is_root() {
        assert_eq!(
            (meta("etc/passwd").uid(), meta("etc/passwd").gid()),
            (1234, 2345)
        );
        assert_eq!(
            (meta("usr/bin/su").uid(), meta("usr/bin/su").gid()),
            (1234, 2345)
        );
        assert_eq!(meta("abs").uid(), 1234);
        assert_eq!(meta("opt/ro").uid(), 1234);
        assert_eq!(meta("run/fifo").gid(), 2345);
        match rustix::fs::getxattr(root.join("etc/xattr"), "user.test", &mut [0u8; 16][..]) {
            Ok(n) => assert_eq!(n, 5),
            // a filesystem without user xattrs: counted, not fatal
            Err(e) => assert_eq!(e, rustix::io::Errno::OPNOTSUPP),
        }
    } else {
        let me = rustix::process::geteuid().as_raw();
        assert_eq!(meta("etc/passwd").uid(), me);
    }
}

#[test]
fn template_all_compressions() {
    let tar = sample_archive();
    for comp in [Comp::Plain, Comp::Gzip, Comp::Xz, Comp::Zstd] {
        let f = Fixture::new();
        // the name says nothing about the format: magic bytes decide
        let archive = f.archive("template.bin", &compress(&tar, comp));
        let lines = f
            .template(vec![archive])
            .unwrap_or_else(|e| panic!("{comp:?}: {e}"));
        check_sample(&f.root());
        assert!(
            lines
                .iter()
                .any(|l| l == "skipped 2 device nodes (the runtime provides /dev)"),
            "{comp:?}: {lines:?}"
        );
        // removable afterwards, read-only directories and all
        crate::remove_root(&f.root()).unwrap();
    }
}

#[test]
fn template_archives_layer_in_order() {
    let f = Fixture::new();
    let a = f.archive(
        "a.tar",
        &Tar::new()
            .file("etc/motd", b"first", 0o644)
            .file("etc/issue", b"first", 0o644)
            .link(EntryType::Symlink, "etc/link", "motd")
            .finish(),
    );
    let b = f.archive(
        "b.tar.gz",
        &compress(
            &Tar::new()
                .file("etc/motd", b"second", 0o600)
                .link(EntryType::Symlink, "etc/issue", "motd")
                .file("etc/link", b"file now", 0o644)
                .finish(),
            Comp::Gzip,
        ),
    );
    f.template(vec![a, b]).unwrap();
    let root = f.root();
    assert_eq!(fs::read(root.join("etc/motd")).unwrap(), b"second");
    assert_eq!(
        fs::symlink_metadata(root.join("etc/motd")).unwrap().mode() & 0o7777,
        0o600
    );
    assert_eq!(
        fs::read_link(root.join("etc/issue")).unwrap(),
        Path::new("motd")
    );
    assert!(
        fs::symlink_metadata(root.join("etc/link"))
            .unwrap()
            .is_file()
    );
}

fn assert_archive_error(result: Result<Vec<String>>, archive: &Path, contains: &str) {
    let err = result.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Archive { .. }), "{msg}");
    assert!(
        msg.starts_with(&format!("{}: ", archive.display())),
        "{msg}"
    );
    assert!(msg.contains(contains), "{msg}");
    assert!(!msg.contains('\n'), "{msg}");
}

#[test]
fn template_refuses_dotdot() {
    for name in ["../x", "/abs/../../x", "./a/../../x"] {
        let f = Fixture::new();
        let archive = f.archive("evil.tar", &Tar::new().file(name, b"pwned", 0o644).finish());
        let result = f.template(vec![archive.clone()]);
        assert_archive_error(
            result,
            &archive,
            &format!("entry '{name}': name has a '..' component"),
        );
        assert!(!f.tmp.path().join("x").exists());
    }
}

#[test]
fn template_symlink_then_file_stays_inside() {
    let host = tempfile::tempdir().unwrap();
    let hostdir = host.path().join("HOSTDIR");
    fs::create_dir(&hostdir).unwrap();
    let hostdir_str = hostdir.to_str().unwrap();
    let inside = hostdir
        .strip_prefix("/")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();

    // The symlink's target does not exist inside the root: the file fails.
    let f = Fixture::new();
    let archive = f.archive(
        "evil.tar",
        &Tar::new()
            .link(EntryType::Symlink, "evil", hostdir_str)
            .file("evil/pwn", b"pwned", 0o644)
            .finish(),
    );
    let result = f.template(vec![archive.clone()]);
    assert_archive_error(result, &archive, "entry 'evil/pwn'");
    assert_eq!(fs::read_dir(&hostdir).unwrap().count(), 0);

    // It does exist inside the root: the file lands there.
    let f = Fixture::new();
    let archive = f.archive(
        "evil.tar",
        &Tar::new()
            .dir(&format!("{inside}/"), 0o755)
            .link(EntryType::Symlink, "evil", hostdir_str)
            .file("evil/pwn", b"pwned", 0o644)
            .link(EntryType::Symlink, "up", "../../../..")
            .file("up/up/x", b"x", 0o644)
            .link(EntryType::Symlink, "etc/e", "/etc")
            .file("etc/e/passwd", b"guest", 0o644)
            .finish(),
    );
    f.template(vec![archive]).unwrap();
    assert_eq!(fs::read_dir(&hostdir).unwrap().count(), 0);
    assert_eq!(
        fs::read(f.root().join(&inside).join("pwn")).unwrap(),
        b"pwned"
    );
    assert_eq!(fs::read(f.root().join("x")).unwrap(), b"x");
    assert!(!f.tmp.path().join("x").exists());
    assert_eq!(fs::read(f.root().join("etc/passwd")).unwrap(), b"guest");
    assert_ne!(fs::read("/etc/passwd").unwrap(), b"guest");
}

#[test]
fn template_hard_links_stay_inside() {
    let f = Fixture::new();
    let archive = f.archive(
        "evil.tar",
        &Tar::new()
            .link(EntryType::Link, "passwd", "../../etc/passwd")
            .finish(),
    );
    let result = f.template(vec![archive.clone()]);
    assert_archive_error(
        result,
        &archive,
        "entry 'passwd': hard link target '../../etc/passwd': name has a '..' component",
    );

    // Through a symlink to /etc: resolves to ROOT/etc/shadow, never the host's.
    let f = Fixture::new();
    let archive = f.archive(
        "evil.tar",
        &Tar::new()
            .link(EntryType::Symlink, "e", "/etc")
            .link(EntryType::Link, "stolen", "e/passwd")
            .finish(),
    );
    let result = f.template(vec![archive.clone()]);
    assert_archive_error(
        result,
        &archive,
        "hard link target 'e/passwd' does not exist",
    );
    assert!(!f.root().join("stolen").exists());

    // A missing target is an error.
    let f = Fixture::new();
    let archive = f.archive(
        "bad.tar",
        &Tar::new().link(EntryType::Link, "a", "b").finish(),
    );
    let result = f.template(vec![archive.clone()]);
    assert_archive_error(
        result,
        &archive,
        "entry 'a': hard link target 'b' does not exist",
    );
}

#[test]
fn template_corrupt_archives() {
    let f = Fixture::new();
    let mut tar = Tar::new()
        .file("first", b"1", 0o644)
        .file("second", b"2", 0o644)
        .finish();
    // break the second header's checksum
    tar[1024 + 148] ^= 0x01;
    let archive = f.archive("corrupt.tar", &tar);
    let result = f.template(vec![archive.clone()]);
    assert_archive_error(result, &archive, "after entry 'first'");

    // cut inside a file's data
    let f = Fixture::new();
    let tar = Tar::new().file("big", &[7u8; 4096], 0o644).finish();
    let archive = f.archive("cut.tar", &tar[..2048]);
    let result = f.template(vec![archive.clone()]);
    assert_archive_error(result, &archive, "entry 'big': read: ");

    let f = Fixture::new();
    let gz = compress(&sample_archive(), Comp::Gzip);
    let archive = f.archive("truncated.tgz", &gz[..gz.len() / 2]);
    let result = f.template(vec![archive.clone()]);
    assert!(matches!(result, Err(Error::Archive { .. })), "{result:?}");

    let f = Fixture::new();
    let archive = f.archive("x.tar.bz2", b"BZh91AY&SY");
    let err = f.template(vec![archive.clone()]).unwrap_err().to_string();
    assert!(err.contains("bzip2 archives are not supported"), "{err}");
    // check() sees it before anything is written
    assert_eq!(fs::read_dir(f.root()).unwrap().count(), 0);

    let missing = f.tmp.path().join("missing.tar");
    let err = f.template(vec![missing]).unwrap_err().to_string();
    assert!(err.contains("missing.tar: open archive"), "{err}");
}

#[test]
fn run_refuses_non_empty_root() {
    let f = Fixture::new();
    fs::write(f.root().join("x"), b"").unwrap();
    let err = Method::Skeleton
        .run(&f.root(), &BuildOptions::default(), &mut |_| {})
        .unwrap_err();
    assert!(matches!(err, Error::NotEmpty { .. }), "{err}");
}

#[test]
fn skeleton_method() {
    let f = Fixture::new();
    Method::Skeleton
        .run(&f.root(), &BuildOptions::default(), &mut |_| {})
        .unwrap();
    let root = f.root();
    for (dir, mode) in SKELETON_DIRS {
        let m = fs::symlink_metadata(root.join(dir)).unwrap();
        assert!(m.is_dir(), "{dir}");
        assert_eq!(m.mode() & 0o7777, *mode, "{dir}");
    }
    for (link, target) in SKELETON_LINKS {
        assert_eq!(fs::read_link(root.join(link)).unwrap(), Path::new(target));
    }
    assert!(!root.join("etc/hostname").exists());
    // no device nodes at all
    let devs: Vec<_> = fs::read_dir(root.join("dev"))
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| {
            let t = e.file_type().unwrap();
            t.is_char_device() || t.is_block_device()
        })
        .collect();
    assert!(devs.is_empty());
}

#[test]
fn busybox_method() {
    let busybox = Path::new(DEFAULT_BUSYBOX);
    assert!(
        busybox.exists(),
        "{DEFAULT_BUSYBOX} is missing: install the Debian package busybox-static (apt-get install busybox-static)"
    );
    let f = Fixture::new();
    let opts = BuildOptions {
        hostname: "bb1".into(),
        defaults_files: None,
        debootstrap_mirror: None,
    };
    let mut lines = Vec::new();
    Method::parse("busybox", &[])
        .unwrap()
        .run(&f.root(), &opts, &mut |l| lines.push(l.to_string()))
        .unwrap_or_else(|e| panic!("{e}"));
    let root = f.root();
    let meta = |p: &str| fs::symlink_metadata(root.join(p)).unwrap();
    assert_eq!(meta("bin/busybox").mode() & 0o7777, 0o755);
    assert_eq!(
        meta("bin/busybox").len(),
        fs::metadata(busybox).unwrap().len()
    );
    for applet in ["bin/sh", "usr/bin/awk", "sbin/syslogd"] {
        assert_eq!(
            fs::read_link(root.join(applet)).unwrap(),
            Path::new("/bin/busybox"),
            "{applet}"
        );
    }
    assert!(lines.iter().any(|l| l.starts_with("linked ")), "{lines:?}");
    let passwd = fs::read_to_string(root.join("etc/passwd")).unwrap();
    assert!(passwd.starts_with("root:x:0:0:root:/root:/bin/sh\n"));
    assert!(passwd.contains("nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"));
    let group = fs::read_to_string(root.join("etc/group")).unwrap();
    assert!(
        group.contains("root:x:0:")
            && group.contains("tty:x:5:")
            && group.contains("nogroup:x:65534:")
    );
    assert_eq!(meta("etc/shadow").mode() & 0o7777, 0o640);
    assert!(
        fs::read_to_string(root.join("etc/shadow"))
            .unwrap()
            .starts_with("root:!:")
    );
    assert_eq!(fs::read(root.join("etc/hostname")).unwrap(), b"bb1\n");
    assert!(
        fs::read_to_string(root.join("etc/hosts"))
            .unwrap()
            .contains("127.0.1.1\tbb1\n")
    );
    assert_eq!(meta("etc/init.d/rc").mode() & 0o7777, 0o755);
    for d in ["etc/rc0.d", "etc/rc3.d", "etc/rc6.d"] {
        assert!(meta(d).is_dir(), "{d}");
    }
    // The rc script is valid POSIX sh for dash and busybox ash.
    let rc = root.join("etc/init.d/rc");
    for sh in [&["/bin/sh", "-n"][..], &[DEFAULT_BUSYBOX, "sh", "-n"][..]] {
        let status = std::process::Command::new(sh[0])
            .args(&sh[1..])
            .arg(&rc)
            .status()
            .unwrap();
        assert!(status.success(), "{sh:?}");
    }
}

#[test]
fn busybox_missing_or_dynamic() {
    let f = Fixture::new();
    let m = Method::parse("busybox", &args(&["--busybox", "/nonexistent/bb"])).unwrap();
    let err = m
        .run(&f.root(), &BuildOptions::default(), &mut |_| {})
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "/nonexistent/bb: not found: install the Debian package busybox-static"
    );
    let m = Method::parse("busybox", &args(&["--busybox", "/bin/sh"])).unwrap();
    let err = m.check().unwrap_err().to_string();
    assert!(
        err.ends_with("not a static executable: install the Debian package busybox-static"),
        "{err}"
    );
    // nothing was written
    assert_eq!(fs::read_dir(f.root()).unwrap().count(), 0);
}

#[test]
fn host_files_from_defaults_and_host() {
    let f = Fixture::new();
    let root = f.root();
    let defaults = f.tmp.path().join("defaults/files");
    let host_etc = f.tmp.path().join("host-etc");
    fs::create_dir_all(&defaults).unwrap();
    fs::create_dir_all(&host_etc).unwrap();
    fs::write(defaults.join("hosts"), b"10.0.0.1 x\n").unwrap();
    fs::write(f.tmp.path().join("zone"), b"TZif-data").unwrap();
    std::os::unix::fs::symlink(f.tmp.path().join("zone"), defaults.join("localtime")).unwrap();
    fs::write(defaults.join("unrelated"), b"no").unwrap();
    fs::write(host_etc.join("resolv.conf"), b"nameserver 192.0.2.1\n").unwrap();

    fs::create_dir(root.join("etc")).unwrap();
    fs::write(root.join("etc/hosts"), b"old\n").unwrap();
    install_host_files_from(&root, Some(&defaults), &host_etc).unwrap();
    assert_eq!(fs::read(root.join("etc/hosts")).unwrap(), b"10.0.0.1 x\n");
    let lt = fs::symlink_metadata(root.join("etc/localtime")).unwrap();
    assert!(lt.is_file(), "localtime is copied, not linked");
    assert_eq!(fs::read(root.join("etc/localtime")).unwrap(), b"TZif-data");
    assert!(!root.join("etc/unrelated").exists());
    assert!(!root.join("etc/nsswitch.conf").exists());
    assert_eq!(
        fs::read(root.join("etc/resolv.conf")).unwrap(),
        b"nameserver 192.0.2.1\n"
    );

    // The guest's own resolv.conf is kept when the defaults have none ...
    fs::write(root.join("etc/resolv.conf"), b"guest\n").unwrap();
    install_host_files_from(&root, Some(&defaults), &host_etc).unwrap();
    assert_eq!(fs::read(root.join("etc/resolv.conf")).unwrap(), b"guest\n");
    // ... and replaced when they have one.
    fs::write(defaults.join("resolv.conf"), b"nameserver 198.51.100.1\n").unwrap();
    install_host_files_from(&root, Some(&defaults), &host_etc).unwrap();
    assert_eq!(
        fs::read(root.join("etc/resolv.conf")).unwrap(),
        b"nameserver 198.51.100.1\n"
    );

    // A guest etc/ that is a symlink to the host's /etc is resolved inside.
    let f = Fixture::new();
    let root = f.root();
    std::os::unix::fs::symlink("/etc", root.join("etc")).unwrap();
    let err = install_host_files_from(&root, Some(&defaults), &host_etc);
    // ROOT/etc -> /etc resolves to ROOT/etc itself: a loop, refused
    assert!(err.is_err());
    assert_ne!(fs::read("/etc/hosts").unwrap(), b"10.0.0.1 x\n");
}
