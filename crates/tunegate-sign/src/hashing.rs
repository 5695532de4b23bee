//! Parallel SHA-256 of files: each file is opened and memory-mapped once, then hashed whole or
//! in fixed-size shards, with rayon spreading files and the shards of one big file over the
//! cores. Small files are read with one `read` call instead (a mapping costs more than it saves).
use crate::error::{Error, Result};
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use std::path::PathBuf;

/// Files below this size are read, not mapped.
const MMAP_MIN: u64 = 256 * 1024;

/// One file to hash.
#[derive(Debug, Clone)]
pub struct FileToHash {
    /// Where to read it.
    pub path: PathBuf,
    /// Its length when it was listed (re-checked after opening: a file that changed size
    /// while being signed is an error, not a silent mismatch).
    pub len: u64,
}

/// The digest of one byte range `[start, end)` of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeDigest {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
    /// SHA-256 of the range.
    pub digest: [u8; 32],
}

/// How files are cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// One digest per file (empty files included: the digest of no bytes).
    WholeFiles,
    /// One digest per `[k·n, min((k+1)·n, len))`; empty files get no range at all.
    Shards(u64),
}

/// The shard boundaries of a file of `len` bytes.
pub fn shard_ranges(len: u64, shard: u64) -> Vec<(u64, u64)> {
    let shard = shard.max(1);
    let mut v = Vec::with_capacity(len.div_ceil(shard) as usize);
    let mut s = 0;
    while s < len {
        let e = (s + shard).min(len);
        v.push((s, e));
        s = e;
    }
    v
}

fn sha256(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

enum Bytes {
    Owned(Vec<u8>),
    Mapped(memmap2::Mmap),
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Owned(v) => v,
            Bytes::Mapped(m) => m,
        }
    }
}

fn open(f: &FileToHash) -> Result<Bytes> {
    let file = std::fs::File::open(&f.path).map_err(|e| Error::io(&f.path, e))?;
    let len = file.metadata().map_err(|e| Error::io(&f.path, e))?.len();
    if len != f.len {
        return Err(Error::Model(format!(
            "{}: changed size while being hashed ({} -> {len} bytes)",
            f.path.display(),
            f.len
        )));
    }
    if len < MMAP_MIN {
        let mut v = Vec::with_capacity(len as usize);
        use std::io::Read;
        (&file)
            .take(len)
            .read_to_end(&mut v)
            .map_err(|e| Error::io(&f.path, e))?;
        if v.len() as u64 != len {
            return Err(Error::Model(format!("{}: short read", f.path.display())));
        }
        return Ok(Bytes::Owned(v));
    }
    // SAFETY: the mapping is read-only and private to this call. A file truncated by another
    // process while mapped can fault the reader; signing assumes the folder is not being
    // rewritten concurrently (the size check above catches changes made before the map).
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(&f.path, e))?;
    #[cfg(unix)]
    let _ = map.advise(memmap2::Advice::Sequential);
    Ok(Bytes::Mapped(map))
}

/// Hashes every file (in parallel) and returns, per input file in input order, its range
/// digests: one for [`Plan::WholeFiles`], one per shard for [`Plan::Shards`]. Each file is read
/// exactly once.
pub fn hash_files(files: &[FileToHash], plan: Plan) -> Result<Vec<Vec<RangeDigest>>> {
    // Biggest first, so a large file does not start last and leave a core idle.
    let mut order: Vec<usize> = (0..files.len()).collect();
    order.sort_by(|&a, &b| files[b].len.cmp(&files[a].len));
    let mut out: Vec<(usize, Vec<RangeDigest>)> = order
        .par_iter()
        .map(|&i| {
            let f = &files[i];
            let ranges = match plan {
                Plan::WholeFiles => vec![(0, f.len)],
                Plan::Shards(n) => shard_ranges(f.len, n),
            };
            if ranges.is_empty() {
                return Ok((i, Vec::new()));
            }
            if f.len == 0 {
                return Ok((
                    i,
                    vec![RangeDigest {
                        start: 0,
                        end: 0,
                        digest: sha256(b""),
                    }],
                ));
            }
            let bytes = open(f)?;
            let digests: Vec<RangeDigest> = if ranges.len() == 1 {
                vec![RangeDigest {
                    start: 0,
                    end: f.len,
                    digest: sha256(&bytes),
                }]
            } else {
                ranges
                    .par_iter()
                    .map(|&(s, e)| RangeDigest {
                        start: s,
                        end: e,
                        digest: sha256(&bytes[s as usize..e as usize]),
                    })
                    .collect()
            };
            Ok((i, digests))
        })
        .collect::<Result<Vec<_>>>()?;
    out.sort_by_key(|(i, _)| *i);
    Ok(out.into_iter().map(|(_, d)| d).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(shard_ranges(0, 8), vec![]);
        assert_eq!(shard_ranges(8, 8), vec![(0, 8)]);
        assert_eq!(shard_ranges(23, 8), vec![(0, 8), (8, 16), (16, 23)]);
    }

    #[test]
    fn whole_and_sharded_match_direct_sha256() {
        let dir = tempfile::tempdir().unwrap();
        let big: Vec<u8> = (0..(MMAP_MIN as usize * 3 + 17))
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let small = b"This is a simple model".to_vec();
        let files: Vec<FileToHash> = [("big", &big), ("small", &small), ("empty", &Vec::new())]
            .iter()
            .map(|(n, b)| {
                let p = dir.path().join(n);
                std::fs::write(&p, b).unwrap();
                FileToHash {
                    path: p,
                    len: b.len() as u64,
                }
            })
            .collect();
        let whole = hash_files(&files, Plan::WholeFiles).unwrap();
        assert_eq!(whole[0][0].digest, sha256(&big));
        assert_eq!(whole[1][0].digest, sha256(&small));
        assert_eq!(whole[2][0].digest, sha256(b""));
        let n = MMAP_MIN;
        let sh = hash_files(&files, Plan::Shards(n)).unwrap();
        assert_eq!(sh[0].len(), 4);
        for r in &sh[0] {
            assert_eq!(r.digest, sha256(&big[r.start as usize..r.end as usize]));
        }
        assert!(sh[2].is_empty(), "empty files have no shards");
        // A size change between listing and hashing is refused.
        let mut lie = files[1].clone();
        lie.len += 1;
        assert!(hash_files(&[lie], Plan::WholeFiles).is_err());
    }
}
