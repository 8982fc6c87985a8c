//! scripts/install-deps installs every Debian package whose programs the
//! code and the tests run. Needs no root; reads the sources and dpkg's
//! database.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Each program the code or the tests run by name, and the Debian package
/// install-deps must name for it.
const PROGRAMS: &[(&str, &str)] = &[
    ("cat", "coreutils"),
    ("chmod", "coreutils"),
    ("chroot", "coreutils"),
    ("find", "findutils"),
    ("free", "procps"),
    ("gcc", "gcc"),
    ("ip", "iproute2"),
    ("kill", "procps"),
    ("lxcfs", "lxcfs"),
    ("mknod", "coreutils"),
    ("nft", "nftables"),
    ("nsenter", "util-linux"),
    ("ps", "procps"),
    ("python3", "python3"),
    ("script", "bsdutils"),
    ("sh", "dash"),
    ("sleep", "coreutils"),
    ("tar", "tar"),
    ("true", "coreutils"),
    ("umount", "mount"),
    ("uname", "coreutils"),
    ("unshare", "util-linux"),
    ("debootstrap", "debootstrap"),
    ("busybox", "busybox-static"),
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            if e.file_name() != "target" {
                sources(&p, out);
            }
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The packages scripts/install-deps names.
fn install_deps_packages() -> BTreeSet<String> {
    let script = fs::read_to_string(workspace().join("scripts/install-deps")).unwrap();
    let list = script
        .split_once("packages=\"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .expect("install-deps has a packages=\"...\" list")
        .0;
    list.split_whitespace().map(str::to_owned).collect()
}

#[test]
fn install_deps_names_the_package_of_every_program_that_is_run() {
    let mut used = BTreeSet::new();
    let mut files = Vec::new();
    sources(&workspace().join("crates"), &mut files);
    sources(&workspace().join("tests"), &mut files);
    // Not this file: its dpkg-query is what install-deps itself relies on.
    files.retain(|f| !f.ends_with("tests/deps.rs"));
    for f in &files {
        let text = fs::read_to_string(f).unwrap();
        for part in text.split("Command::new(\"").skip(1) {
            let prog = part.split('"').next().unwrap();
            let base = prog.rsplit('/').next().unwrap();
            used.insert(base.to_owned());
        }
        // Shell scripts the tests run.
        if text.contains("python3 -") {
            used.insert("python3".to_owned());
        }
    }
    assert!(used.contains("ps") && used.contains("free"), "{used:?}");
    let table: BTreeSet<&str> = PROGRAMS.iter().map(|(p, _)| *p).collect();
    let unknown: Vec<&String> = used
        .iter()
        .filter(|p| !table.contains(p.as_str()))
        .collect();
    assert!(
        unknown.is_empty(),
        "programs run by the code or tests with no package in PROGRAMS: {unknown:?}"
    );
    let listed = install_deps_packages();
    let mut missing = Vec::new();
    for (prog, pkg) in PROGRAMS {
        if !listed.contains(*pkg) {
            missing.push(format!("{prog} ({pkg})"));
        }
    }
    assert!(
        missing.is_empty(),
        "scripts/install-deps does not install: {missing:?}"
    );
}

#[test]
fn the_package_table_is_right_on_this_host() {
    // Where dpkg knows the program's path, the package that owns it is the
    // one in the table or one the table's package depends on.
    for (prog, pkg) in PROGRAMS {
        // dpkg's database has the paths before the /usr merge.
        let candidates: Vec<PathBuf> = ["/bin", "/sbin", "/usr/bin", "/usr/sbin"]
            .iter()
            .map(|d| Path::new(d).join(prog))
            .filter(|p| p.exists())
            .collect();
        assert!(
            !candidates.is_empty(),
            "{prog}: not installed; run scripts/install-deps"
        );
        let mut owners: Vec<String> = Vec::new();
        let mut path = candidates[0].clone();
        for p in &candidates {
            let out = Command::new("dpkg-query")
                .arg("-S")
                .arg(p)
                .output()
                .expect("run dpkg-query");
            let text = String::from_utf8_lossy(&out.stdout);
            owners = text
                .lines()
                .filter_map(|l| l.split_once(": ").map(|(p, _)| p))
                .flat_map(|p| p.split(", "))
                .map(|p| p.split(':').next().unwrap().to_owned())
                .collect();
            if !owners.is_empty() {
                path = p.clone();
                break;
            }
        }
        let owners: Vec<&str> = owners.iter().map(String::as_str).collect();
        if owners.contains(pkg) {
            continue;
        }
        let deps = Command::new("dpkg-query")
            .args(["-W", "-f", "${Depends} ${Pre-Depends}", pkg])
            .output()
            .expect("run dpkg-query");
        let deps = String::from_utf8_lossy(&deps.stdout);
        assert!(
            owners.iter().any(|o| deps
                .split([',', ' ', '|'])
                .any(|d| d == *o || d.starts_with(&format!("{o}:")))),
            "{prog}: {} belongs to {owners:?}, not to {pkg} or what it depends on ({deps})",
            path.display()
        );
    }
}
