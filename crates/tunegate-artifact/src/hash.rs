//! Parallel SHA-256 of model files and folders.
//!
//! A Hugging Face model is a folder of a few small text files and a handful of multi-gigabyte
//! weight shards. SHA-256 of one file is inherently sequential, so the parallelism is across
//! files: [`hash_tree`] walks the folder, then hashes every regular file on the rayon pool, each
//! file read exactly once. Files of at least [`HashOptions::mmap_min`] bytes are memory-mapped in
//! windows of [`HashOptions::mmap_chunk`] bytes (bounded address space, no copy into a buffer);
//! smaller files, and anything that is not a regular file (a pipe, `/dev/stdin`, a process
//! substitution) named as the root, are streamed through a 1 MiB buffer.
//!
//! Walk rules (the same for `model approve` and `model verify`):
//! - Entries are sorted by their relative path, `/`-separated, compared as UTF-8 bytes.
//! - The root itself may be a symlink (the user named it); inside the folder a symlink is never
//!   followed: it is returned in [`Tree::symlinks`] with its target, and callers report it. This
//!   keeps a link from pulling content from outside the checked folder into a verdict.
//! - Two top-level folders are skipped and listed in [`Tree::ignored`]: `.git/` (version
//!   control, not model content) and `.cache/huggingface/` (the download metadata that
//!   `huggingface-cli download --local-dir` writes, with per-download timestamps). The same
//!   names deeper in the tree are not skipped; nothing else is skipped.
//! - A fifo, socket or device inside the folder is an error ([`Error::Special`]): reading it
//!   could block forever, and a model folder has no business holding one. A file name that is
//!   not UTF-8 is an error too ([`Error::NotUtf8`]): it could not be listed unambiguously.
//!
//! A file that changes size while it is being hashed is an error ([`Error::Changed`]); a
//! memory-mapped file truncated by another process during hashing ends the process with SIGBUS,
//! which is the usual, documented limit of mmap.
use crate::{Error, Result};
use rayon::prelude::*;
use sha2::{Digest as _, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};
use tunegate_core::progress::{NoProgress, Progress};

/// Top-level folders [`walk`] skips (relative paths, no trailing slash).
pub const IGNORED_TOP_LEVEL: &[&str] = &[".git", ".cache/huggingface"];

/// How files are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashOptions {
    /// Regular files of at least this many bytes are memory-mapped; smaller ones are streamed.
    pub mmap_min: u64,
    /// Bytes mapped at a time (at least one page; rounded up to 64 KiB multiples).
    pub mmap_chunk: u64,
}

impl Default for HashOptions {
    fn default() -> Self {
        HashOptions {
            mmap_min: 4 << 20,
            mmap_chunk: 64 << 20,
        }
    }
}

/// One hashed file. Invariant: `path` is relative to the hashed root, `/`-separated, without
/// `.` or `..` components; `sha256` is 64 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashedFile {
    /// Relative path (`model-00001-of-00004.safetensors`, `tokenizer/vocab.json`).
    pub path: String,
    /// Lowercase hex SHA-256 of the content.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

/// A symlink found inside a walked folder (never followed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Symlink {
    /// Relative path of the link.
    pub path: String,
    /// The link's target as stored in the link (lossy UTF-8).
    pub target: String,
}

/// What [`walk`] found before hashing: files to hash, links to report, folders skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// `(relative path, absolute path)` of each regular file, sorted by relative path.
    pub files: Vec<(String, PathBuf)>,
    /// Symlinks inside the folder, sorted by path.
    pub symlinks: Vec<Symlink>,
    /// Skipped top-level folders that exist (from [`IGNORED_TOP_LEVEL`]).
    pub ignored: Vec<String>,
    /// Whether the root was a single file (then `files` has exactly one entry named by the
    /// file's own name).
    pub single_file: bool,
}

/// A hashed file or folder.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tree {
    /// Hashed files, sorted by path.
    pub files: Vec<HashedFile>,
    /// Symlinks inside the folder (not hashed), sorted by path.
    pub symlinks: Vec<Symlink>,
    /// Skipped top-level folders that exist.
    pub ignored: Vec<String>,
    /// Whether the root was a single file.
    pub single_file: bool,
}

impl Tree {
    /// The folder digest of these files: see [`folder_digest`].
    pub fn folder_digest(&self) -> String {
        folder_digest(
            self.files
                .iter()
                .map(|f| (f.path.as_str(), f.sha256.as_str())),
        )
    }
}

/// The folder digest: lowercase hex SHA-256 of the canonical manifest, one line per file,
/// `"<64 hex sha256>  <relative path>\n"`, sorted by path as UTF-8 bytes. That is exactly what
/// `sha256sum` prints for the sorted relative paths, so the digest can be recomputed without
/// tunegate:
///
/// ```text
/// cd MODEL && find . -type f ! -path './.git/*' ! -path './.cache/huggingface/*' \
///   | sed 's|^\./||' | LC_ALL=C sort | xargs -d '\n' sha256sum | sha256sum
/// ```
///
/// `files` need not be sorted; paths are used as given.
pub fn folder_digest<'a>(files: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut v: Vec<(&str, &str)> = files.into_iter().collect();
    v.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut h = Sha256::new();
    for (path, digest) in v {
        h.update(digest.as_bytes());
        h.update(b"  ");
        h.update(path.as_bytes());
        h.update(b"\n");
    }
    hex::encode(h.finalize())
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn kind_name(ft: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_fifo() {
            return "a fifo";
        }
        if ft.is_socket() {
            return "a socket";
        }
        if ft.is_block_device() || ft.is_char_device() {
            return "a device";
        }
    }
    let _ = ft;
    "not a regular file"
}

/// Lists a file or folder by the rules in the module doc, without reading file content.
pub fn walk(root: &Path) -> Result<Listing> {
    let meta = std::fs::metadata(root).map_err(io(root))?;
    let mut out = Listing::default();
    if !meta.is_dir() {
        let name = root
            .file_name()
            .map(|n| {
                n.to_str()
                    .map(str::to_string)
                    .ok_or_else(|| Error::NotUtf8 {
                        path: root.to_path_buf(),
                    })
            })
            .transpose()?
            .unwrap_or_else(|| "-".to_string());
        out.files.push((name, root.to_path_buf()));
        out.single_file = true;
        return Ok(out);
    }
    walk_dir(root, "", &mut out)?;
    out.files
        .sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    out.symlinks
        .sort_unstable_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
    out.ignored.sort();
    Ok(out)
}

fn walk_dir(dir: &Path, prefix: &str, out: &mut Listing) -> Result<()> {
    let mut kids = Vec::new();
    for e in std::fs::read_dir(dir).map_err(io(dir))? {
        let e = e.map_err(io(dir))?;
        let path = e.path();
        let name = e
            .file_name()
            .into_string()
            .map_err(|_| Error::NotUtf8 { path: path.clone() })?;
        kids.push((name, path));
    }
    kids.sort_unstable();
    for (name, path) in kids {
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let meta = std::fs::symlink_metadata(&path).map_err(io(&path))?;
        let ft = meta.file_type();
        if ft.is_symlink() {
            let target = std::fs::read_link(&path).map_err(io(&path))?;
            out.symlinks.push(Symlink {
                path: rel,
                target: target.to_string_lossy().into_owned(),
            });
        } else if ft.is_dir() {
            if IGNORED_TOP_LEVEL.contains(&rel.as_str()) {
                out.ignored.push(rel);
                continue;
            }
            walk_dir(&path, &rel, out)?;
        } else if ft.is_file() {
            out.files.push((rel, path));
        } else {
            return Err(Error::Special {
                path,
                kind: kind_name(&ft),
            });
        }
    }
    Ok(())
}

/// Walks `root` and hashes every file in parallel (see the module doc).
pub fn hash_tree(root: &Path, opts: &HashOptions) -> Result<Tree> {
    hash_tree_with(root, opts, &NoProgress)
}

/// [`hash_tree`] reporting bytes hashed to `progress` (step `hashing`).
pub fn hash_tree_with(root: &Path, opts: &HashOptions, progress: &dyn Progress) -> Result<Tree> {
    let l = walk(root)?;
    let total = l
        .files
        .iter()
        .filter_map(|(_, p)| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    progress.start("hashing", total);
    let files = l
        .files
        .par_iter()
        .map(|(rel, abs)| {
            let (sha256, size) = hash_file_with(abs, opts, progress)?;
            Ok(HashedFile {
                path: rel.clone(),
                sha256,
                size,
            })
        })
        .collect::<Result<Vec<_>>>();
    progress.finish();
    let files = files?;
    Ok(Tree {
        files,
        symlinks: l.symlinks,
        ignored: l.ignored,
        single_file: l.single_file,
    })
}

/// Hex SHA-256 and size of one file: memory-mapped in windows when it is a regular file of at
/// least `opts.mmap_min` bytes, streamed otherwise (pipes and special files included).
pub fn hash_file(path: &Path, opts: &HashOptions) -> Result<(String, u64)> {
    hash_file_with(path, opts, &NoProgress)
}

fn hash_file_with(
    path: &Path,
    opts: &HashOptions,
    progress: &dyn Progress,
) -> Result<(String, u64)> {
    let f = std::fs::File::open(path).map_err(io(path))?;
    let meta = f.metadata().map_err(io(path))?;
    if meta.is_file() && meta.len() >= opts.mmap_min.max(1) {
        if let Some(r) = hash_mapped(&f, path, meta.len(), opts, progress)? {
            return Ok(r);
        }
    }
    hash_stream(f, path, progress)
}

/// Maps `size` bytes of `f` window by window. `Ok(None)` when the first window cannot be mapped
/// (a filesystem without mmap): the caller streams instead.
fn hash_mapped(
    f: &std::fs::File,
    path: &Path,
    size: u64,
    opts: &HashOptions,
    progress: &dyn Progress,
) -> Result<Option<(String, u64)>> {
    let chunk = opts.mmap_chunk.max(1).div_ceil(1 << 16) * (1 << 16);
    let mut h = Sha256::new();
    let mut off = 0u64;
    while off < size {
        let len = chunk.min(size - off);
        let len_usize = usize::try_from(len).unwrap_or(usize::MAX);
        // SAFETY: the map is read-only and private to this function. Another process truncating
        // the file while it is mapped raises SIGBUS (documented in the module doc); modifying it
        // in place yields whatever bytes are read, like any read, and the size check below turns
        // a resize into an error.
        let map = unsafe {
            memmap2::MmapOptions::new()
                .offset(off)
                .len(len_usize)
                .map(f)
        };
        let map = match map {
            Ok(m) => m,
            Err(_) if off == 0 => return Ok(None),
            Err(e) => return Err(io(path)(e)),
        };
        #[cfg(unix)]
        let _ = map.advise(memmap2::Advice::Sequential);
        h.update(&map[..]);
        progress.advance(len);
        off += len;
    }
    let now = f.metadata().map_err(io(path))?.len();
    if now != size {
        return Err(Error::Changed {
            path: path.to_path_buf(),
        });
    }
    Ok(Some((hex::encode(h.finalize()), size)))
}

fn hash_stream(
    mut f: std::fs::File,
    path: &Path,
    progress: &dyn Progress,
) -> Result<(String, u64)> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = match f.read(&mut buf) {
            Ok(k) => k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io(path)(e)),
        };
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        progress.advance(k as u64);
        n += k as u64;
    }
    Ok((hex::encode(h.finalize()), n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_digest_is_sha256sum_of_sorted_listing() {
        let a = "a".repeat(64);
        let b = "b".repeat(64);
        let listing = format!("{b}  a.txt\n{a}  a/b\n");
        // '.' (0x2e) sorts before '/' (0x2f): byte order of the whole path, not folder order.
        assert_eq!(
            folder_digest([("a/b", a.as_str()), ("a.txt", b.as_str())]),
            hex::encode(Sha256::digest(listing.as_bytes()))
        );
    }

    #[test]
    fn known_vector_streamed_and_mapped() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("abc");
        std::fs::write(&p, b"abc").unwrap();
        let want = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        let streamed = hash_file(&p, &HashOptions::default()).unwrap();
        let mapped = hash_file(
            &p,
            &HashOptions {
                mmap_min: 1,
                mmap_chunk: 1,
            },
        )
        .unwrap();
        assert_eq!(streamed, (want.to_string(), 3));
        assert_eq!(mapped, (want.to_string(), 3));
    }
}
