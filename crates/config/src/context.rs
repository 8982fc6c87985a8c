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
}

/// The contexts and id ranges of every configured guest. A guest whose
/// files cannot be read is reported as a warning and left out.
pub fn claims(paths: &Paths) -> Result<(Vec<Claim>, Vec<Warning>)> {
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    for name in paths.guests()? {
        let dir = paths.guest_cfg(&name);
        let mut r = Reader::new(&dir);
        let claim = (|| -> Result<Claim> {
            let context = match r.scalar("context")? {
                Some(s) => Some(Xid::parse(&dir.join("context"), &s)?),
                None => None,
            };
            let privileged = r.flag("privileged");
            let uidmap = match r.scalar("uidmap")? {
                Some(s) => Some(IdMap::parse(&dir.join("uidmap"), &s)?),
                None => None,
            };
            let idmap = if privileged {
                None
            } else {
                uidmap.or(context.map(IdMap::for_context))
            };
            Ok(Claim {
                name: name.clone(),
                context,
                idmap,
            })
        })();
        match claim {
            Ok(c) => out.push(c),
            Err(e) => warnings.push(Warning {
                path: dir.clone(),
                message: format!("guest skipped while checking contexts: {e}"),
            }),
        }
    }
    Ok((out, warnings))
}

/// Checks that `name` may have `context` and `idmap` beside `others`.
pub fn check_free(
    paths: &Paths,
    name: &GuestName,
    context: Xid,
    idmap: Option<IdMap>,
    others: &[Claim],
) -> Result<()> {
    for c in others.iter().filter(|c| &c.name != name) {
        if c.context == Some(context) {
            return Err(ConfigError::Conflict {
                path: paths.guest_cfg(&c.name).join("context"),
                message: format!("context {context} is already used by guest '{}'", c.name),
            });
        }
        if let (Some(a), Some(b)) = (idmap, c.idmap)
            && a.overlaps(&b)
        {
            return Err(ConfigError::Conflict {
                path: paths.guest_cfg(&c.name),
                message: format!("id range {a} overlaps guest '{}' (range {b})", c.name),
            });
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
