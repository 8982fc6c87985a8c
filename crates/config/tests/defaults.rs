//! `.defaults/` files as the resolved spec sees them: `shell` and
//! `apps/init/environment` fill in what the guest does not set, and the
//! guest's own files win.

use std::fs;

use vs_config::*;

#[test]
fn shell_and_environment_fall_back_to_defaults() {
    let root = tempfile::tempdir().unwrap();
    let paths = Paths::new(root.path());
    let name = GuestName::new("g").unwrap();
    let cfg = paths.guest_cfg(&name);
    fs::create_dir_all(&cfg).unwrap();
    fs::write(cfg.join("context"), "4242\n").unwrap();

    // Nothing anywhere: no shell (the runtime picks one), the built-in PATH.
    let s = GuestSpec::load(&paths, &name).unwrap();
    assert_eq!(s.shell, None);
    assert_eq!(
        s.init.environment,
        [(
            "PATH".to_owned(),
            "/bin:/usr/bin:/sbin:/usr/sbin".to_owned()
        )]
    );

    let d = paths.defaults();
    fs::create_dir_all(d.join("apps/init")).unwrap();
    fs::write(d.join("shell"), "/bin/ash -l\n").unwrap();
    fs::write(
        d.join("apps/init/environment"),
        "# host-wide\nA=1\nB=two words\n",
    )
    .unwrap();
    let s = GuestSpec::load(&paths, &name).unwrap();
    assert_eq!(s.shell.as_deref(), Some("/bin/ash -l"));
    assert_eq!(
        s.init.environment,
        [
            ("A".to_owned(), "1".to_owned()),
            ("B".to_owned(), "two words".to_owned())
        ]
    );

    fs::write(cfg.join("shell"), "/bin/sh\n").unwrap();
    fs::create_dir_all(cfg.join("apps/init")).unwrap();
    fs::write(cfg.join("apps/init/environment"), "C=3\n").unwrap();
    let s = GuestSpec::load(&paths, &name).unwrap();
    assert_eq!(s.shell.as_deref(), Some("/bin/sh"));
    assert_eq!(s.init.environment, [("C".to_owned(), "3".to_owned())]);
}
