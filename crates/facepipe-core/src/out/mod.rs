//! The rules every stage follows for what it writes.
//!
//! * **Output files** (`-o`, `--report`): `-` is stdout. A file that exists is replaced only if
//!   the stage recognises it as its own earlier output, or with `--force`. A FIFO, a device or
//!   anything else that is not a regular file (also behind a symlink, e.g. `/dev/stdout`) is
//!   written through, never read first and never replaced. A symlink to a regular file keeps
//!   the link: the file it points to is replaced atomically. See [`Outputs::file`] and
//!   [`crate::Output::write`].
//! * **Output folders** (`--out-dir`, `--qc-dir`): a stage deletes only files it wrote, which
//!   it knows from the ledger it keeps in the folder (a JSON marker listing them) or from the
//!   names only it writes. A folder holding anything else is refused unless `--force`, and even
//!   then those files are kept, and a symlink, FIFO or device inside is never followed or
//!   replaced. See [`Outputs::folder`] and [`OutDir`].
//! * **Locks**: an advisory lock (`flock`) on a file beside each output (`.NAME.lock`) keeps two
//!   runs from writing the same outputs at once; the second refuses and names the first. The
//!   lock files stay (removing a lock file another process may be opening is itself a race).
//!   See [`Outputs`].
//! * **Temporary files** are named `.NAME.facepipe-tmp-` plus a random suffix, beside their target; a run that
//!   holds an output's lock removes the ones a killed run left (see [`sweep_temps`]).

//!
//! A stage claims all its outputs through one [`Outputs`] before it does any work: each output
//! is locked, then checked by the rules above, and the locks hold until the `Outputs` is
//! dropped.

mod folder;
mod guard;
mod lock;

pub use folder::OutDir;
pub use guard::Outputs;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

pub use crate::atomic::{TEMP_TAG, ensure_replaceable, temp_prefix};
pub(crate) use crate::atomic::{describe, is_temp_name};

/// What is at an output path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Nothing (a dangling symlink counts as nothing only if it is not a symlink).
    Missing,
    /// A regular file, at this path (the symlink's final target when `path` is a symlink).
    Regular(PathBuf),
    /// A FIFO, character or block device, socket: written through, never replaced.
    Through,
    /// A directory.
    Dir,
    /// A symlink that points nowhere.
    Dangling,
}

/// What `path` is; symlinks are followed for the answer, never replaced.
pub fn kind(path: &Path) -> Result<Kind> {
    let lmeta = match fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Kind::Missing),
        Err(e) => return Err(e).with_context(|| format!("cannot look at {}", path.display())),
        Ok(m) => m,
    };
    let meta = if lmeta.file_type().is_symlink() {
        match fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Kind::Dangling),
            Err(e) => return Err(e).with_context(|| format!("cannot follow the symlink {}", path.display())),
            Ok(m) => m,
        }
    } else {
        lmeta.clone()
    };
    Ok(if meta.is_dir() {
        Kind::Dir
    } else if meta.is_file() {
        if lmeta.file_type().is_symlink() {
            Kind::Regular(
                fs::canonicalize(path).with_context(|| format!("cannot follow the symlink {}", path.display()))?,
            )
        } else {
            Kind::Regular(path.to_path_buf())
        }
    } else {
        Kind::Through
    })
}

/// Checks an output file before any work is done (nothing is read from a FIFO or device):
/// `flag` names the option, `ours` recognises the stage's own earlier output by its bytes and
/// `what` names that kind of file in the refusal ("a facepipe manifest").
pub(crate) fn check_file(path: &Path, flag: &str, what: &str, force: bool, ours: impl Fn(&[u8]) -> bool) -> Result<()> {
    if path == Path::new("-") {
        return Ok(());
    }
    let written = match kind(path)? {
        // written through where it is: nothing to replace, no folder to write in
        Kind::Through => return Ok(()),
        Kind::Missing => path.to_path_buf(),
        Kind::Dir => bail!("{flag} {} is a directory", path.display()),
        Kind::Dangling => bail!(
            "{flag} {} is a symlink to a file that does not exist; give the target's path instead",
            path.display()
        ),
        Kind::Regular(target) => {
            if !force {
                let bytes = fs::read(&target).with_context(|| format!("cannot read {flag} {}", path.display()))?;
                if !ours(&bytes) {
                    bail!(
                        "{flag} {} exists and is not {what}; refusing to overwrite it (use --force)",
                        path.display()
                    );
                }
            }
            // a symlink's target is what gets replaced, in its own folder
            target
        }
    };
    let parent = match written.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        bail!(
            "{flag} {}: the folder {} does not exist",
            path.display(),
            parent.display()
        );
    }
    // can a file be made there (read-only folder, no permission)? found now, not after the work
    tempfile::Builder::new()
        .prefix(&format!(".{}", TEMP_TAG.trim_start_matches('.')))
        .tempfile_in(parent)
        .with_context(|| format!("{flag} {}: cannot write in {}", path.display(), parent.display()))?;
    Ok(())
}

/// Writes `bytes` into a non-regular file (FIFO, device) as it is: opened for writing, no
/// temporary file, no rename.
pub fn write_through(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .open(path)
        .with_context(|| format!("cannot open {} for writing", path.display()))?;
    f.write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))?;
    f.flush().with_context(|| format!("writing {}", path.display()))
}

/// Removes the temporary files a killed run left beside `path` (`.NAME.facepipe-tmp-*`).
/// Call only while holding `path`'s lock.
pub fn sweep_temps(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let prefix = temp_prefix(&name.to_string_lossy());
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let is_file = e.file_type().is_ok_and(|t| t.is_file());
        if is_file && e.file_name().to_string_lossy().starts_with(&prefix) {
            remove_leftover(&e.path());
        }
    }
}

/// Removes a temporary file an interrupted run left, saying so (a failure is only a warning:
/// the run goes on, and the next one tries again).
fn remove_leftover(path: &Path) {
    match fs::remove_file(path) {
        Ok(()) => log::info!("removed {}, left by an interrupted run", path.display()),
        Err(err) => log::warn!("cannot remove {}: {err}", path.display()),
    }
}

/// Removes, in `dir` and below (symlinks are not followed), the temporary files interrupted
/// runs left (`.NAME.facepipe-tmp-*`). Call only while holding `dir`'s lock.
pub fn sweep_temps_under(dir: &Path) {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let Ok(t) = e.file_type() else { continue };
            let name = e.file_name().to_string_lossy().into_owned();
            if t.is_dir() {
                stack.push(e.path());
            } else if t.is_file() && is_temp_name(&name) {
                remove_leftover(&e.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_kinds_and_checks() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f.json");
        assert_eq!(kind(&f).unwrap(), Kind::Missing);
        fs::write(&f, "theirs").unwrap();
        let e = check_file(&f, "-o", "stage's output", false, |b| b == b"ours").unwrap_err();
        assert!(e.to_string().contains("is not stage's output"), "{e}");
        check_file(&f, "-o", "stage", true, |_| false).unwrap();
        fs::write(&f, "ours").unwrap();
        check_file(&f, "-o", "stage", false, |b| b == b"ours").unwrap();
        assert!(check_file(d.path(), "-o", "stage", true, |_| true).is_err());
        let e = check_file(&d.path().join("no/x.json"), "-o", "stage", false, |_| true).unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");
        #[cfg(unix)]
        {
            let null = d.path().join("null");
            std::os::unix::fs::symlink("/dev/null", &null).unwrap();
            assert_eq!(kind(&null).unwrap(), Kind::Through);
            assert!(ensure_replaceable(&null).is_err());
            let link = d.path().join("link.json");
            std::os::unix::fs::symlink(&f, &link).unwrap();
            assert_eq!(kind(&link).unwrap(), Kind::Regular(fs::canonicalize(&f).unwrap()));
            // written through a symlink: the target is replaced, the link stays; the lock is
            // taken beside the target
            let sub = d.path().join("sub");
            fs::create_dir(&sub).unwrap();
            fs::write(sub.join("t.json"), "old").unwrap();
            let l2 = d.path().join("l2.json");
            std::os::unix::fs::symlink(sub.join("t.json"), &l2).unwrap();
            let held = lock::lock_outputs("stage", [l2.as_path()]).unwrap();
            assert!(sub.join(".t.json.lock").is_file() && !d.path().join(".l2.json.lock").exists());
            drop(held);
            crate::Output::File(l2.clone()).write(b"new").unwrap();
            assert!(fs::symlink_metadata(&l2).unwrap().file_type().is_symlink());
            assert_eq!(fs::read_to_string(sub.join("t.json")).unwrap(), "new");
            // a device behind a symlink: fine to write, nothing probed or locked beside it
            check_file(&null, "-o", "x", false, |_| false).unwrap();
            assert!(lock::lock_outputs("stage", [null.as_path()]).is_ok());
            assert!(!d.path().join(".null.lock").exists());
        }
    }
}
