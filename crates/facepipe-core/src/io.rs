//! Input hashing for provenance, and where a stage's `-o` output goes ([`Output`]). The atomic
//! writes themselves are [`crate::atomic`]'s, re-exported here.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use crate::atomic::{create_dir_all, json_bytes, write_atomic, write_atomic_fast, write_atomic_with, write_json};

/// sha256 (lower-case hex) of a byte slice.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// An input file as recorded in a manifest's provenance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct InputFile {
    /// Path of the input (relative to the manifest holding this record), or `-` for stdin.
    pub path: String,
    /// sha256 of the file's bytes, lower-case hex.
    pub sha256: String,
    /// Size in bytes.
    pub bytes: u64,
}

/// Reads a whole input, `-` meaning stdin, and describes it for provenance.
/// The path in the returned record is absolute (or `-`); manifests rebase it on write.
pub fn read_input(path: &Path) -> Result<(Vec<u8>, InputFile)> {
    let (bytes, shown) = if path == Path::new("-") {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf).context("reading stdin")?;
        (buf, "-".to_string())
    } else {
        let bytes = fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let abs = crate::paths::absolute(path)?;
        (bytes, crate::paths::to_manifest_string(&abs)?)
    };
    let rec = InputFile {
        path: shown,
        sha256: sha256_hex(&bytes),
        bytes: bytes.len() as u64,
    };
    Ok((bytes, rec))
}

/// Where a stage writes its main output: a file or stdout (`-`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    Stdout,
    File(PathBuf),
}

impl Output {
    pub fn parse(s: &Path) -> Self {
        if s == Path::new("-") {
            Output::Stdout
        } else {
            Output::File(s.to_path_buf())
        }
    }

    /// The directory relative paths written into this output resolve against: the working
    /// directory for stdout and for a FIFO or device (whose reader has no folder either).
    pub fn base_dir(&self) -> Result<PathBuf> {
        match self {
            Output::Stdout => crate::paths::absolute(Path::new(".")),
            Output::File(p) if crate::out::kind(p)? == crate::out::Kind::Through => {
                crate::paths::absolute(Path::new("."))
            }
            Output::File(p) => {
                let abs = crate::paths::absolute(p)?;
                Ok(abs.parent().map(Path::to_path_buf).unwrap_or(abs))
            }
        }
    }

    /// Writes the whole output at once: atomically to a file (the file a symlink points to,
    /// keeping the link), through to a FIFO or device, or to stdout in one go.
    /// A closed stdout pipe surfaces as an error whose root cause is `BrokenPipe`.
    pub fn write(&self, bytes: &[u8]) -> Result<()> {
        match self {
            Output::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(bytes).context("writing to stdout")?;
                out.flush().context("writing to stdout")
            }
            Output::File(p) => match crate::out::kind(p)? {
                crate::out::Kind::Through => crate::out::write_through(p, bytes),
                crate::out::Kind::Regular(target) => write_atomic(&target, bytes),
                _ => write_atomic(p, bytes),
            },
        }
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Output::Stdout => f.write_str("<stdout>"),
            Output::File(p) => write!(f, "{}", p.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_abc() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn atomic_write_replaces_whole_file_and_leaves_no_temp() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn failed_fill_leaves_nothing() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.json");
        let r = write_atomic_with(&p, |_| anyhow::bail!("boom"));
        assert!(r.is_err());
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 0);
    }

    #[test]
    fn unwritable_dir_is_named() {
        let err = write_atomic(Path::new("/nonexistent-dir/x.json"), b"x").unwrap_err();
        assert!(format!("{err:#}").contains("/nonexistent-dir"), "{err:#}");
    }
}
