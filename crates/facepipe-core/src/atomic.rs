//! The temporary-file rule, in one place: every file a stage writes is written beside its
//! target under a temporary name (`.NAME` + [`TEMP_TAG`] + a random suffix) and renamed over it,
//! and only a regular file (or nothing) is ever replaced so. [`crate::out`] sweeps what killed
//! runs leave by the same names; [`crate::io`] re-exports the writers. This module imports no
//! other of the crate's.

use std::fs;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::Serialize;

/// Marks temporary files (`.NAME` + this + a random suffix).
pub const TEMP_TAG: &str = ".facepipe-tmp-";

/// The start of every temporary name beside a file called `name`: `.NAME.facepipe-tmp-`.
pub fn temp_prefix(name: &str) -> String {
    format!(".{name}{TEMP_TAG}")
}

/// Whether a file name is one of facepipe's temporary names (`.NAME.facepipe-tmp-…`).
pub(crate) fn is_temp_name(name: &str) -> bool {
    name.starts_with('.') && name.contains(TEMP_TAG)
}

/// Errors unless `path` is absent or a regular file (not a symlink): what every atomic
/// replacement checks, so that no stage ever replaces a symlink, FIFO, device or folder.
pub fn ensure_replaceable(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot look at {}", path.display())),
        Ok(m) if m.file_type().is_file() => Ok(()),
        Ok(m) => bail!(
            "{} is {}; facepipe never replaces one (move it away or choose another output)",
            path.display(),
            describe(&m.file_type())
        ),
    }
}

pub(crate) fn describe(t: &fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_char_device() || t.is_block_device() {
            return "a device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if t.is_symlink() {
        "a symbolic link"
    } else if t.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    }
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, synced to
/// disk, then renamed over the target. Readers see either the old file or the whole new one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |w| w.write_all(bytes).map_err(Into::into))
}

/// A value as the JSON files facepipe writes hold it: pretty-printed, ending in a newline.
pub fn json_bytes<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec_pretty(value).context("serialising JSON")?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Writes a value as pretty JSON ([`json_bytes`]), atomically ([`write_atomic`]).
pub fn write_json<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<()> {
    write_atomic(path, &json_bytes(value)?)
}

/// Like [`write_atomic`], with the content produced by a writer callback.
pub fn write_atomic_with(path: &Path, fill: impl FnOnce(&mut fs::File) -> Result<()>) -> Result<()> {
    write_atomic_inner(path, true, fill)
}

/// Like [`write_atomic_with`] but without syncing to disk before the rename: still atomic
/// for readers and against a killed process, not against a power cut (after which a file may
/// be empty or truncated, and the stage that reads it says so). For the many per-item data
/// files of a stage, where one fsync each would cost more than the work itself.
pub fn write_atomic_fast(path: &Path, fill: impl FnOnce(&mut fs::File) -> Result<()>) -> Result<()> {
    write_atomic_inner(path, false, fill)
}

fn write_atomic_inner(path: &Path, durable: bool, fill: impl FnOnce(&mut fs::File) -> Result<()>) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    ensure_replaceable(path)?;
    let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    let prefix = temp_prefix(&name);
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix);
    // tempfile's 0600 would make outputs private; ask for 0644 (the umask still applies)
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(fs::Permissions::from_mode(0o644));
    }
    let mut tmp = builder
        .tempfile_in(dir)
        .with_context(|| format!("cannot write in directory {}", dir.display()))?;
    fill(tmp.as_file_mut()).with_context(|| format!("writing {}", path.display()))?;
    if durable {
        tmp.as_file_mut()
            .sync_data()
            .with_context(|| format!("flushing {}", path.display()))?;
    }
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("renaming temporary file to {}", path.display()))?;
    Ok(())
}

/// Creates `dir` and its parents, with an error that names it.
pub fn create_dir_all(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create directory {}", dir.display()))
}
