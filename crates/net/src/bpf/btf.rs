//! A minimal reader of the kernel's BTF (`/sys/kernel/btf/vmlinux`): just
//! enough to name a kernel function (kfunc) by BTF id and to find a member's
//! offset in a kernel struct (Documentation/bpf/btf.rst, "Type encoding").

use std::path::{Path, PathBuf};

use crate::Error;

/// Where the running kernel publishes its BTF.
pub const VMLINUX: &str = "/sys/kernel/btf/vmlinux";

const MAGIC: u16 = 0xeb9f;

// BTF_KIND_*.
const KIND_INT: u32 = 1;
const KIND_PTR: u32 = 2;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_FWD: u32 = 7;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_FUNC: u32 = 12;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_FLOAT: u32 = 16;
const KIND_DECL_TAG: u32 = 17;
const KIND_TYPE_TAG: u32 = 18;
const KIND_ENUM64: u32 = 19;

#[derive(Debug, Clone, Copy)]
struct Type {
    name_off: u32,
    info: u32,
    /// Offset of the kind-specific data after the 12-byte common part.
    extra: usize,
}

impl Type {
    fn kind(&self) -> u32 {
        (self.info >> 24) & 0x1f
    }
    fn vlen(&self) -> usize {
        (self.info & 0xffff) as usize
    }
    fn kind_flag(&self) -> bool {
        self.info >> 31 == 1
    }
}

/// Parsed BTF: types (id 1 is `types[0]`) and the string section.
#[derive(Debug)]
pub struct Btf {
    path: PathBuf,
    data: Vec<u8>,
    types: Vec<Type>,
    str_start: usize,
    str_len: usize,
}

fn u32_at(d: &[u8], at: usize) -> Option<u32> {
    d.get(at..at + 4)
        .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
}

impl Btf {
    /// Reads and parses the running kernel's BTF.
    pub fn vmlinux() -> Result<Btf, Error> {
        Btf::load(Path::new(VMLINUX))
    }

    /// Reads and parses a raw BTF file.
    pub fn load(path: &Path) -> Result<Btf, Error> {
        let data = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        Btf::parse(path, data)
    }

    /// Parses raw BTF bytes (`path` only names them in errors).
    pub fn parse(path: &Path, data: Vec<u8>) -> Result<Btf, Error> {
        let bad = |reason: String| Error::Btf {
            path: path.to_owned(),
            reason,
        };
        if data.len() < 24 || u16::from_ne_bytes([data[0], data[1]]) != MAGIC {
            return Err(bad("not BTF (bad magic)".into()));
        }
        let field = |at| u32_at(&data, at).unwrap_or(0) as usize;
        let hdr_len = field(4);
        let (type_off, type_len) = (field(8), field(12));
        let (str_off, str_len) = (field(16), field(20));
        let type_start = hdr_len + type_off;
        let type_end = type_start + type_len;
        let str_start = hdr_len + str_off;
        if type_end > data.len() || str_start + str_len > data.len() {
            return Err(bad("sections run past the end of the file".into()));
        }
        let mut types = Vec::new();
        let mut at = type_start;
        while at < type_end {
            let (Some(name_off), Some(info)) = (u32_at(&data, at), u32_at(&data, at + 4)) else {
                return Err(bad(format!("truncated type at byte {at}")));
            };
            let t = Type {
                name_off,
                info,
                extra: at + 12,
            };
            let vlen = t.vlen();
            let extra = match t.kind() {
                KIND_INT | KIND_VAR | KIND_DECL_TAG => 4,
                KIND_PTR | KIND_FWD | KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT
                | KIND_FUNC | KIND_FLOAT | KIND_TYPE_TAG => 0,
                KIND_ARRAY => 12,
                KIND_STRUCT | KIND_UNION | KIND_DATASEC | KIND_ENUM64 => 12 * vlen,
                KIND_ENUM | KIND_FUNC_PROTO => 8 * vlen,
                k => return Err(bad(format!("unknown BTF kind {k} at byte {at}"))),
            };
            types.push(t);
            at += 12 + extra;
        }
        Ok(Btf {
            path: path.to_owned(),
            data,
            types,
            str_start,
            str_len,
        })
    }

    fn name(&self, off: u32) -> &[u8] {
        let start = self.str_start + off as usize;
        let end = self.str_start + self.str_len;
        if start >= end {
            return b"";
        }
        let s = &self.data[start..end];
        &s[..s.iter().position(|&b| b == 0).unwrap_or(s.len())]
    }

    fn find(&self, kind: u32, name: &str) -> Option<(u32, Type)> {
        self.types
            .iter()
            .enumerate()
            .find(|(_, t)| t.kind() == kind && self.name(t.name_off) == name.as_bytes())
            .map(|(i, t)| (i as u32 + 1, *t))
    }

    fn missing(&self, what: String) -> Error {
        Error::Btf {
            path: self.path.clone(),
            reason: what,
        }
    }

    /// The BTF id of the kernel function `name`.
    pub fn func_id(&self, name: &str) -> Result<u32, Error> {
        self.find(KIND_FUNC, name)
            .map(|(id, _)| id)
            .ok_or_else(|| self.missing(format!("no function {name}")))
    }

    /// The byte offset of `member` in `struct name`.
    pub fn member_offset(&self, name: &str, member: &str) -> Result<u32, Error> {
        let (_, t) = self
            .find(KIND_STRUCT, name)
            .ok_or_else(|| self.missing(format!("no struct {name}")))?;
        for i in 0..t.vlen() {
            let at = t.extra + 12 * i;
            let name_off = u32_at(&self.data, at).unwrap_or(0);
            if self.name(name_off) == member.as_bytes() {
                let raw = u32_at(&self.data, at + 8).unwrap_or(0);
                let bits = if t.kind_flag() {
                    raw & 0x00ff_ffff
                } else {
                    raw
                };
                if bits % 8 != 0 {
                    return Err(self.missing(format!("{name}.{member} is a bit field")));
                }
                return Ok(bits / 8);
            }
        }
        Err(self.missing(format!("struct {name} has no member {member}")))
    }

    /// The value of `variant` in `enum name`.
    pub fn enum_value(&self, name: &str, variant: &str) -> Result<i64, Error> {
        let (_, t) = self
            .find(KIND_ENUM, name)
            .ok_or_else(|| self.missing(format!("no enum {name}")))?;
        for i in 0..t.vlen() {
            let at = t.extra + 8 * i;
            if self.name(u32_at(&self.data, at).unwrap_or(0)) == variant.as_bytes() {
                return Ok(i64::from(u32_at(&self.data, at + 4).unwrap_or(0) as i32));
            }
        }
        Err(self.missing(format!("enum {name} has no {variant}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hand-made BTF: int, struct s { int a; int b; }, func f, enum e.
    fn sample() -> Vec<u8> {
        let strings: &[u8] = b"\0int\0s\0a\0b\0f\0e\0X\0Y\0";
        let off = |s: &str| {
            let needle = format!("\0{s}\0");
            strings
                .windows(needle.len())
                .position(|w| w == needle.as_bytes())
                .unwrap() as u32
                + 1
        };
        let mut t: Vec<u32> = Vec::new();
        // [1] int: 4 bytes, encoding word.
        t.extend([off("int"), KIND_INT << 24, 4, 32]);
        // [2] struct s { a at 0, b at 32 bits }.
        t.extend([off("s"), (KIND_STRUCT << 24) | 2, 8]);
        t.extend([off("a"), 1, 0, off("b"), 1, 32]);
        // [3] func_proto void(void), [4] func f.
        t.extend([0, KIND_FUNC_PROTO << 24, 0]);
        t.extend([off("f"), KIND_FUNC << 24, 3]);
        // [5] enum e { X = 7, Y = 49 }.
        t.extend([off("e"), (KIND_ENUM << 24) | 2, 4]);
        t.extend([off("X"), 7, off("Y"), 49]);
        let types: Vec<u8> = t.iter().flat_map(|w| w.to_ne_bytes()).collect();
        let mut d = Vec::new();
        d.extend(MAGIC.to_ne_bytes());
        d.extend([1, 0]);
        for w in [
            24u32,
            0,
            types.len() as u32,
            types.len() as u32,
            strings.len() as u32,
        ] {
            d.extend(w.to_ne_bytes());
        }
        d.extend(types);
        d.extend(strings);
        d
    }

    #[test]
    fn parses_a_hand_made_blob() {
        let b = Btf::parse(Path::new("sample"), sample()).unwrap();
        assert_eq!(b.func_id("f").unwrap(), 4);
        assert_eq!(b.member_offset("s", "b").unwrap(), 4);
        assert_eq!(b.enum_value("e", "Y").unwrap(), 49);
        assert!(b.member_offset("s", "c").is_err());
        assert!(b.func_id("g").is_err());
        assert!(Btf::parse(Path::new("x"), vec![0; 30]).is_err());
    }

    #[test]
    fn reads_the_running_kernel() {
        // The kernel this project targets publishes BTF
        // (CONFIG_DEBUG_INFO_BTF=y); the file is world-readable.
        let b = Btf::vmlinux().expect("kernel BTF is readable");
        assert!(b.func_id("bpf_cast_to_kern_ctx").unwrap() > 0);
        assert_eq!(b.member_offset("bpf_sock_addr_kern", "uaddr").unwrap(), 8);
    }
}
