//! Context ids and user-namespace ranges across all guests.
//!
//! A new guest's context is `--context N` or the next free one from
//! `.defaults/context.next` (starting at 40000, as util-vserver's
//! `context.start`); its id range must not overlap any other guest's.

use std::fs;
use std::io::ErrorKind;

use crate::error::{ConfigError, Result, Warning};
use crate::paths::Paths;
use crate::read::Reader;
use crate::values::{GuestName, IdMap, Xid};

/// What another guest occupies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The guest.
    pub name: GuestName,
    /// Its context, if its configuration has a valid one.
    pub context: Option<Xid>,
    /// Its id range (`None` for privileged guests).
    pub idmap: Option<IdMap>,
    /// The range is written in `uidmap` (else derived from the context).
    pub explicit_idmap: bool,
}

/// The contexts and id ranges of every configured guest. A guest whose
/// context cannot be read is reported as a warning and left out; one whose
/// `uidmap` is malformed keeps its context (and the range derived from it)
/// reserved, with a warning.
pub fn claims(paths: &Paths) -> Result<(Vec<Claim>, Vec<Warning>)> {
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    for name in paths.guests()? {
        let dir = paths.guest_cfg(&name);
        let mut r = Reader::new(&dir);
        let context = (|| -> Result<Option<Xid>> {
            match r.scalar("context")? {
                Some(s) => Ok(Some(Xid::parse(&dir.join("context"), &s)?)),
                None => Ok(None),
            }
        })();
        let context = match context {
            Ok(c) => c,
            Err(e) => {
                warnings.push(Warning {
                    path: dir.clone(),
                    message: format!("guest skipped while checking contexts: {e}"),
                });
                continue;
            }
        };
        let privileged = r.flag("privileged");
        let uidmap = (|| -> Result<Option<IdMap>> {
            match r.scalar("uidmap")? {
                Some(s) => Ok(Some(IdMap::parse(&dir.join("uidmap"), &s)?)),
                None => Ok(None),
            }
        })();
        let uidmap = match uidmap {
            Ok(m) => m,
            Err(e) => {
                warnings.push(Warning {
                    path: dir.clone(),
                    message: format!(
                        "its context stays reserved, with the id range derived from it: {e}"
                    ),
                });
                None
            }
        };
        let derived = context.map(IdMap::for_context);
        out.push(Claim {
            name: name.clone(),
            context,
            idmap: if privileged { None } else { uidmap.or(derived) },
            explicit_idmap: !privileged && uidmap.is_some(),
        });
    }
    Ok((out, warnings))
}

/// What two guests share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clash {
    /// The same context.
    Context(Xid),
    /// Overlapping id ranges: ours, theirs.
    Range(IdMap, IdMap),
}

/// What guest `name`, with `context` and `idmap`, shares with `other`, and
/// the other guest's file that says so; `None` if nothing.
pub fn clash(
    paths: &Paths,
    name: &GuestName,
    context: Xid,
    idmap: Option<IdMap>,
    other: &Claim,
) -> Option<(std::path::PathBuf, Clash)> {
    if &other.name == name {
        return None;
    }
    let dir = paths.guest_cfg(&other.name);
    if other.context == Some(context) {
        return Some((dir.join("context"), Clash::Context(context)));
    }
    if let (Some(a), Some(b)) = (idmap, other.idmap)
        && a.overlaps(&b)
    {
        let file = if other.explicit_idmap {
            "uidmap"
        } else {
            "context"
        };
        return Some((dir.join(file), Clash::Range(a, b)));
    }
    None
}

/// Checks that `name` may have `context` and `idmap` beside `others`.
pub fn check_free(
    paths: &Paths,
    name: &GuestName,
    context: Xid,
    idmap: Option<IdMap>,
    others: &[Claim],
) -> Result<()> {
    for c in others {
        match clash(paths, name, context, idmap, c) {
            None => {}
            Some((path, Clash::Context(x))) => {
                return Err(ConfigError::Conflict {
                    path,
                    message: format!("context {x} is already used by guest '{}'", c.name),
                });
            }
            Some((_, Clash::Range(a, b))) => {
                return Err(ConfigError::Conflict {
                    path: paths.guest_cfg(&c.name),
                    message: format!("id range {a} overlaps guest '{}' (range {b})", c.name),
                });
            }
        }
    }
    Ok(())
}

/// The next free context from `.defaults/context.next`, skipping contexts
/// and id ranges already taken. Nothing is written; see [`commit_next`].
pub fn next_free(paths: &Paths, others: &[Claim]) -> Result<Xid> {
    let file = paths.defaults().join("context.next");
    let start = match fs::read_to_string(&file) {
        Ok(s) => Xid::parse(&file, s.lines().next().unwrap_or(""))?.get(),
        Err(e) if e.kind() == ErrorKind::NotFound => Xid::FIRST_ALLOCATED,
        Err(e) => return Err(ConfigError::io(&file, "read", e)),
    };
    let span = Xid::MAX - Xid::MIN + 1;
    for step in 0..span {
        let n = Xid::MIN + (start - Xid::MIN + step) % span;
        let Some(x) = Xid::new(n) else { continue };
        let taken = others.iter().any(|c| {
            c.context == Some(x) || c.idmap.is_some_and(|m| m.overlaps(&IdMap::for_context(x)))
        });
        if !taken {
            return Ok(x);
        }
    }
    Err(ConfigError::Conflict {
        path: file,
        message: "no free context id left in 2..49151".into(),
    })
}

/// Records that `used` was handed out: `.defaults/context.next` = used+1.
pub fn commit_next(paths: &Paths, used: Xid) -> Result<()> {
    let dir = paths.defaults();
    fs::create_dir_all(&dir).map_err(|e| ConfigError::io(&dir, "create directory", e))?;
    let next = if used.get() >= Xid::MAX {
        Xid::MIN
    } else {
        used.get() + 1
    };
    let file = dir.join("context.next");
    let tmp = dir.join("context.next.~tmp~");
    fs::write(&tmp, format!("{next}\n"))
        .and_then(|_| fs::rename(&tmp, &file))
        .map_err(|e| ConfigError::io(&file, "write", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guest(root: &std::path::Path, name: &str, files: &[(&str, &str)]) {
        let dir = root.join("etc/vservers").join(name);
        fs::create_dir_all(&dir).unwrap();
        for (f, c) in files {
            fs::write(dir.join(f), c).unwrap();
        }
    }

    #[test]
    fn a_malformed_uidmap_keeps_the_context_reserved() {
        let root = tempfile::tempdir().unwrap();
        let paths = Paths::new(root.path());
        guest(
            root.path(),
            "bad",
            &[("context", "40000\n"), ("uidmap", "lots\n")],
        );
        guest(root.path(), "good", &[("context", "40001\n")]);
        let (claims, warnings) = claims(&paths).unwrap();
        let bad = claims.iter().find(|c| c.name.as_str() == "bad").unwrap();
        assert_eq!(bad.context, Xid::new(40000));
        assert_eq!(
            bad.idmap,
            Some(IdMap::for_context(Xid::new(40000).unwrap()))
        );
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].message.contains("context stays reserved")
                && warnings[0].message.contains("uidmap"),
            "{warnings:?}"
        );
        // Allocation skips it, and check_free refuses it.
        assert_eq!(
            next_free(&paths, &claims).unwrap(),
            Xid::new(40002).unwrap()
        );
        let me = GuestName::new("new").unwrap();
        let x = Xid::new(40000).unwrap();
        let e = check_free(&paths, &me, x, Some(IdMap::for_context(x)), &claims)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("context 40000 is already used by guest 'bad'"),
            "{e}"
        );
        // A malformed context is left out (nothing to reserve), with a warning.
        guest(root.path(), "worse", &[("context", "1\n")]);
        let (claims, warnings) = super::claims(&paths).unwrap();
        assert!(claims.iter().all(|c| c.name.as_str() != "worse"));
        assert!(
            warnings.iter().any(|w| w.path.ends_with("worse")),
            "{warnings:?}"
        );
    }

    #[test]
    fn clash_names_the_other_guests_file() {
        let root = tempfile::tempdir().unwrap();
        let paths = Paths::new(root.path());
        guest(
            root.path(),
            "a",
            &[("context", "40000\n"), ("uidmap", "5000000 65536\n")],
        );
        guest(root.path(), "b", &[("context", "40001\n")]);
        let (claims, _) = claims(&paths).unwrap();
        let me = GuestName::new("me").unwrap();
        let x = Xid::new(40000).unwrap();
        let (path, what) = clash(&paths, &me, x, None, &claims[0]).unwrap();
        assert_eq!(path, root.path().join("etc/vservers/a/context"));
        assert_eq!(what, Clash::Context(x));
        let mine = IdMap::parse(std::path::Path::new("x"), "5030000 10").unwrap();
        let y = Xid::new(300).unwrap();
        let (path, what) = clash(&paths, &me, y, Some(mine), &claims[0]).unwrap();
        assert_eq!(path, root.path().join("etc/vservers/a/uidmap"));
        assert!(matches!(what, Clash::Range(a, _) if a == mine));
        let theirs = IdMap::for_context(Xid::new(40001).unwrap());
        let (path, _) = clash(&paths, &me, y, Some(theirs), &claims[1]).unwrap();
        assert_eq!(path, root.path().join("etc/vservers/b/context"));
        // A guest never clashes with itself; privileged (no range) only by context.
        let b = GuestName::new("b").unwrap();
        assert_eq!(
            clash(&paths, &b, Xid::new(40001).unwrap(), None, &claims[1]),
            None
        );
        assert_eq!(clash(&paths, &me, y, None, &claims[1]), None);
    }
}
