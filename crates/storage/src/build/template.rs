//! The template method: unpack tar archives into the guest root, safely.
//!
//! Entries are written one by one through [`RootDir`] (never with the tar
//! crate's `unpack`): names with a `..` component are refused, and every
//! path, including one through a symlink that an earlier entry created,
//! resolves inside the root.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, Timespec};
use tar::EntryType;
use vs_sys::root::RootDir;

use crate::{Error, Result};

/// The compression of an archive, told by its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Compression {
    None,
    Gzip,
    Xz,
    Zstd,
}

fn detect(head: &[u8]) -> std::result::Result<Compression, &'static str> {
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        Compression::Xz
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else if head.starts_with(b"BZh") {
        return Err("bzip2 archives are not supported; recompress with gzip, xz or zstd");
    } else {
        Compression::None
    })
}

/// Opens `path` and returns a reader of the tar stream inside.
pub(super) fn open_archive(path: &Path) -> Result<(Compression, Box<dyn Read>)> {
    let file = File::open(path).map_err(|e| Error::io(path, "open archive", e))?;
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let head = reader
        .fill_buf()
        .map_err(|e| Error::io(path, "read archive", e))?;
    let kind = detect(head).map_err(|message| Error::Archive {
        archive: path.to_path_buf(),
        at: "at the start".to_string(),
        message: message.to_string(),
    })?;
    let stream: Box<dyn Read> = match kind {
        Compression::None => Box::new(reader),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(reader)),
        Compression::Xz => Box::new(liblzma::bufread::XzDecoder::new_multi_decoder(reader)),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::with_buffer(reader)
                .map_err(|e| Error::io(path, "start zstd decoder", e))?,
        ),
    };
    Ok((kind, stream))
}

/// A directory's metadata, applied once all archives are unpacked (its
/// children change its mtime, and a read-only mode would stop them).
struct DirMeta {
    /// False once a later entry replaced the directory.
    live: bool,
    rel: PathBuf,
    mode: u32,
    owner: Option<(u32, u32)>,
    times: (Timespec, Timespec),
}

/// An entry's data: remembers its error, to tell read from write failures,
/// and turns an early end (the tar crate reads a cut archive as a short
/// file) into an error.
struct TrackRead<'a, R> {
    inner: &'a mut R,
    remaining: u64,
    error: Option<String>,
}

impl<R: Read> Read for TrackRead<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let result = match self.inner.read(buf) {
            Ok(0) if self.remaining > 0 && !buf.is_empty() => Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!(
                    "the archive ends inside this file ({} bytes missing)",
                    self.remaining
                ),
            )),
            other => other,
        };
        match &result {
            Ok(n) => self.remaining = self.remaining.saturating_sub(*n as u64),
            Err(e) => self.error = Some(e.to_string()),
        }
        result
    }
}

/// The state of one template run.
struct Extractor<'a> {
    rd: &'a RootDir,
    /// Running as root: owners and xattrs are applied.
    privileged: bool,
    dirs: Vec<DirMeta>,
    dir_index: HashMap<PathBuf, usize>,
    entries: u64,
    devices: u64,
    xattrs_unsupported: u64,
    other_skipped: u64,
}

/// Unpacks `archives` in order into `rd`.
pub(super) fn extract_all(
    rd: &RootDir,
    archives: &[PathBuf],
    progress: &mut dyn FnMut(&str),
) -> Result<()> {
    let mut x = Extractor {
        rd,
        privileged: rustix::process::geteuid().is_root(),
        dirs: Vec::new(),
        dir_index: HashMap::new(),
        entries: 0,
        devices: 0,
        xattrs_unsupported: 0,
        other_skipped: 0,
    };
    for archive in archives {
        progress(&format!("unpacking {}", archive.display()));
        x.extract(archive)?;
    }
    // Children before parents: the reverse of creation order.
    for d in x.dirs.iter().rev().filter(|d| d.live) {
        if let Some((uid, gid)) = d.owner {
            rd.chown(&d.rel, uid, gid)?;
        }
        rd.chmod(&d.rel, d.mode)?;
        rd.set_times(&d.rel, d.times.0, d.times.1)?;
    }
    progress(&format!("unpacked {} entries", x.entries));
    if x.devices > 0 {
        progress(&format!(
            "skipped {} device nodes (the runtime provides /dev)",
            x.devices
        ));
    }
    if x.xattrs_unsupported > 0 {
        progress(&format!(
            "skipped {} extended attributes the filesystem does not support",
            x.xattrs_unsupported
        ));
    }
    if x.other_skipped > 0 {
        progress(&format!(
            "skipped {} entries of unsupported types",
            x.other_skipped
        ));
    }
    Ok(())
}

/// An entry's name as a path inside the root: leading `/` and `./` gone,
/// `.` and empty components dropped, `..` refused. Empty means the root.
fn normalise(raw: &[u8]) -> std::result::Result<PathBuf, &'static str> {
    let mut out: Vec<u8> = Vec::with_capacity(raw.len());
    for comp in raw.split(|&b| b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => return Err("name has a '..' component"),
            c => {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(c);
            }
        }
    }
    Ok(PathBuf::from(OsStr::from_bytes(&out)))
}

/// A name from an archive for a one-line message: lossy UTF-8, control
/// characters escaped.
fn printable(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw).escape_debug().to_string()
}

/// Parses a PAX time (`1700000000.5`, possibly negative).
fn pax_time(value: &[u8]) -> Option<Timespec> {
    let s = std::str::from_utf8(value).ok()?;
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let negative = secs.starts_with('-');
    let secs: i64 = secs.parse().ok()?;
    let digits: String = frac.chars().take(9).collect();
    if !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let mut nanos: i64 = if digits.is_empty() {
        0
    } else {
        format!("{digits:0<9}").parse().ok()?
    };
    let mut secs = secs;
    if negative && nanos > 0 {
        // -1.25 is 1.25 s before the epoch: -2 s + 0.75 s.
        secs -= 1;
        nanos = 1_000_000_000 - nanos;
    }
    Some(Timespec {
        tv_sec: secs,
        tv_nsec: nanos as _,
    })
}

/// What an entry says about itself beyond its type and names.
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    atime: Timespec,
    mtime: Timespec,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Extractor<'_> {
    fn extract(&mut self, archive: &Path) -> Result<()> {
        let (_, stream) = open_archive(archive)?;
        let mut ar = tar::Archive::new(stream);
        let err = |at: String, message: String| Error::Archive {
            archive: archive.to_path_buf(),
            at,
            message,
        };
        let entries = ar
            .entries()
            .map_err(|e| err("at the start".into(), e.to_string()))?;
        let mut last: Option<String> = None;
        for entry in entries {
            let at_last = || match &last {
                Some(name) => format!("after entry '{name}'"),
                None => "at the first entry".to_string(),
            };
            let mut entry = entry.map_err(|e| err(at_last(), e.to_string()))?;
            let name = printable(&entry.path_bytes());
            let at = format!("entry '{name}'");
            self.entry(&mut entry)
                .map_err(|message| err(at.clone(), message))?;
            last = Some(name);
        }
        Ok(())
    }

    fn meta<R: Read>(entry: &mut tar::Entry<'_, R>) -> std::result::Result<Meta, String> {
        let header = entry.header();
        let mode = header.mode().map_err(|e| e.to_string())? & 0o7777;
        let mut uid = header.uid().map_err(|e| e.to_string())?;
        let mut gid = header.gid().map_err(|e| e.to_string())?;
        let mtime = header.mtime().map_err(|e| e.to_string())?;
        let mut mtime = Timespec {
            tv_sec: i64::try_from(mtime).unwrap_or(i64::MAX),
            tv_nsec: 0,
        };
        let mut atime = None;
        let mut xattrs = Vec::new();
        if let Some(pax) = entry.pax_extensions().map_err(|e| e.to_string())? {
            for ext in pax {
                let ext = ext.map_err(|e| e.to_string())?;
                let key = ext.key_bytes();
                let value = ext.value_bytes();
                let num = || std::str::from_utf8(value).ok()?.parse::<u64>().ok();
                match key {
                    b"uid" => uid = num().ok_or("bad pax uid")?,
                    b"gid" => gid = num().ok_or("bad pax gid")?,
                    b"mtime" => mtime = pax_time(value).ok_or("bad pax mtime")?,
                    b"atime" => atime = pax_time(value),
                    _ => {
                        if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                            xattrs.push((name.to_vec(), value.to_vec()));
                        }
                    }
                }
            }
        }
        let id = |v: u64| u32::try_from(v).map_err(|_| format!("owner id {v} out of range"));
        Ok(Meta {
            mode,
            uid: id(uid)?,
            gid: id(gid)?,
            atime: atime.unwrap_or(mtime),
            mtime,
            xattrs,
        })
    }

    fn owner(&self, meta: &Meta) -> Option<(u32, u32)> {
        self.privileged.then_some((meta.uid, meta.gid))
    }

    /// Unpacks one entry; the error is a message for [`Error::Archive`].
    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> std::result::Result<(), String> {
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            return Ok(());
        }
        let rel = normalise(&entry.path_bytes())?;
        let meta = Self::meta(entry)?;
        let rd = self.rd;
        let s = |e: vs_sys::Error| e.to_string();
        if rel.as_os_str().is_empty() && kind != EntryType::Directory {
            return Err("names the root directory but is not a directory".into());
        }
        match kind {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                self.prepare(&rel, false)?;
                let mut src = TrackRead {
                    remaining: entry.size(),
                    inner: entry,
                    error: None,
                };
                if let Err(e) = rd.write_file_from(&rel, &mut src, meta.mode, self.owner(&meta)) {
                    // A failed copy is the archive's fault if reading failed.
                    return Err(match src.error {
                        Some(read) => format!("read: {read}"),
                        None => e.to_string(),
                    });
                }
                self.finish(&rel, &meta, false)?;
            }
            EntryType::Directory => {
                if !rel.as_os_str().is_empty() {
                    self.prepare(&rel, true)?;
                    if !rd.exists(&rel).map_err(s)? {
                        // Owner-writable until the end, so children fit in.
                        rd.create_dir(&rel, 0o700).map_err(s)?;
                    }
                }
                self.set_xattrs(&rel, &meta)?;
                let d = DirMeta {
                    live: true,
                    rel: if rel.as_os_str().is_empty() {
                        PathBuf::from(".")
                    } else {
                        rel.clone()
                    },
                    mode: meta.mode,
                    owner: self.owner(&meta),
                    times: (meta.atime, meta.mtime),
                };
                match self.dir_index.get(&rel) {
                    Some(&i) => self.dirs[i] = d,
                    None => {
                        self.dir_index.insert(rel, self.dirs.len());
                        self.dirs.push(d);
                    }
                }
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or("symlink without a target")?
                    .into_owned();
                self.prepare(&rel, false)?;
                // The target is kept verbatim: it is only ever resolved
                // inside the root.
                rd.symlink(OsStr::from_bytes(&target), &rel).map_err(s)?;
                if let Some((uid, gid)) = self.owner(&meta) {
                    rd.chown(&rel, uid, gid).map_err(s)?;
                }
                rd.set_times(&rel, meta.atime, meta.mtime).map_err(s)?;
            }
            EntryType::Link => {
                let raw = entry
                    .link_name_bytes()
                    .ok_or("hard link without a target")?
                    .into_owned();
                let target = normalise(&raw)
                    .map_err(|m| format!("hard link target '{}': {m}", printable(&raw)))?;
                if target.as_os_str().is_empty() {
                    return Err("hard link to the root directory".into());
                }
                if target == rel {
                    return Ok(());
                }
                if !rd.exists(&target).map_err(s)? {
                    return Err(format!(
                        "hard link target '{}' does not exist",
                        printable(target.as_os_str().as_bytes())
                    ));
                }
                self.prepare(&rel, false)?;
                rd.hard_link(&target, &rel).map_err(s)?;
            }
            EntryType::Fifo => {
                self.prepare(&rel, false)?;
                rd.mknod(&rel, FileType::Fifo, meta.mode, 0).map_err(s)?;
                self.finish(&rel, &meta, true)?;
            }
            EntryType::Char | EntryType::Block => {
                self.devices += 1;
                return Ok(());
            }
            _ => {
                self.other_skipped += 1;
                return Ok(());
            }
        }
        self.entries += 1;
        Ok(())
    }

    /// Makes the parents of `rel` and clears the way for it: an existing
    /// non-directory is removed, and so is an empty directory unless the
    /// new entry is a directory too.
    fn prepare(&mut self, rel: &Path, is_dir: bool) -> std::result::Result<(), String> {
        let rd = self.rd;
        if let Some(parent) = rel.parent().filter(|p| !p.as_os_str().is_empty()) {
            rd.mkdir_all(parent, 0o755).map_err(|e| e.to_string())?;
        }
        let Some(st) = rd.lstat(rel).map_err(|e| e.to_string())? else {
            return Ok(());
        };
        let existing_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
        if existing_dir && is_dir {
            return Ok(());
        }
        rd.remove(rel).map_err(|e| {
            if existing_dir {
                format!("cannot replace the directory {}: {e}", rel.display())
            } else {
                e.to_string()
            }
        })?;
        if let Some(i) = self.dir_index.remove(rel) {
            self.dirs[i].live = false;
        }
        Ok(())
    }

    /// Owner (unless already set), mode, xattrs and times of a new file or
    /// fifo, in that order: chown clears set-id bits and file capabilities.
    fn finish(&mut self, rel: &Path, meta: &Meta, chown: bool) -> std::result::Result<(), String> {
        let rd = self.rd;
        let s = |e: vs_sys::Error| e.to_string();
        if chown {
            if let Some((uid, gid)) = self.owner(meta) {
                rd.chown(rel, uid, gid).map_err(s)?;
            }
            rd.chmod(rel, meta.mode).map_err(s)?;
        }
        self.set_xattrs(rel, meta)?;
        rd.set_times(rel, meta.atime, meta.mtime).map_err(s)
    }

    fn set_xattrs(&mut self, rel: &Path, meta: &Meta) -> std::result::Result<(), String> {
        if !self.privileged {
            return Ok(());
        }
        for (name, value) in &meta.xattrs {
            match self.rd.set_xattr(rel, OsStr::from_bytes(name), value) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(rustix::io::Errno::OPNOTSUPP.raw_os_error()) => {
                    self.xattrs_unsupported += 1;
                }
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalise_names() {
        assert_eq!(
            normalise(b"./etc//passwd").unwrap(),
            Path::new("etc/passwd")
        );
        assert_eq!(normalise(b"/usr/bin/").unwrap(), Path::new("usr/bin"));
        assert_eq!(normalise(b"./").unwrap(), Path::new(""));
        assert!(normalise(b"../x").is_err());
        assert!(normalise(b"/abs/../../x").is_err());
        assert!(normalise(b"a/..").is_err());
        assert_eq!(normalise(b"a/..b").unwrap(), Path::new("a/..b"));
    }

    #[test]
    fn magic_detection() {
        assert_eq!(detect(&[0x1f, 0x8b, 8]).unwrap(), Compression::Gzip);
        assert_eq!(detect(b"\xfd7zXZ\x00\x00").unwrap(), Compression::Xz);
        assert_eq!(
            detect(&[0x28, 0xb5, 0x2f, 0xfd]).unwrap(),
            Compression::Zstd
        );
        assert_eq!(detect(b"etc/passwd\0").unwrap(), Compression::None);
        assert!(detect(b"BZh91AY").is_err());
    }

    #[test]
    fn pax_times() {
        let t = pax_time(b"1700000000.5").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (1_700_000_000, 500_000_000));
        let t = pax_time(b"-1.25").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (-2, 750_000_000));
        let t = pax_time(b"42").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (42, 0));
        assert!(pax_time(b"x").is_none());
    }
}
