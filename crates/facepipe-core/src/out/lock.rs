//! Advisory locks (`flock`) on `.NAME.lock` beside each output, so that two runs never write
//! the same outputs at once.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::{Kind, kind, sweep_temps};

/// Held advisory locks on a stage's outputs; released when dropped (or when the process ends,
/// however it ends).
#[derive(Debug, Default)]
pub(crate) struct Locks {
    files: Vec<fs::File>,
    /// The lock files held: a path given twice is locked once (two `flock`s on one file from
    /// one process would refuse each other).
    held: BTreeSet<PathBuf>,
}

/// [`Locks::lock`] on each of `outputs`.
#[cfg(test)]
pub(crate) fn lock_outputs<'a>(stage: &str, outputs: impl IntoIterator<Item = &'a Path>) -> Result<Locks> {
    let mut locks = Locks::default();
    for p in outputs {
        locks.lock(stage, p, false)?;
    }
    Ok(locks)
}

impl Locks {
    /// Locks the output `p` (a file or folder; `-` and FIFOs/devices are skipped) with a
    /// `flock` on `.NAME.lock` beside it, and sweeps the temporary files interrupted runs left
    /// there. A second run on the same output refuses, naming the first (its pid, stage and
    /// command line). `shared`: a folder that the shards of one stage write
    /// into together (`--shard K/N`, each shard its own files) is locked shared, so shards run
    /// side by side while an unsharded run of the stage on the same folder (which takes it
    /// exclusively) refuses, and the other way round; nothing is swept then, as another
    /// shard's temporary files may be in flight.
    pub(crate) fn lock(&mut self, stage: &str, p: &Path, shared: bool) -> Result<()> {
        if p == Path::new("-") {
            return Ok(());
        }
        // the lock goes beside the file that is written: a symlink's target (so that
        // `-o /dev/stdout` redirected to a file locks beside that file, not in /dev)
        let abs = match kind(p)? {
            Kind::Through => return Ok(()),
            Kind::Regular(target) => crate::paths::absolute(&target)?,
            _ => crate::paths::absolute(p)?,
        };
        let (Some(dir), Some(name)) = (abs.parent(), abs.file_name()) else {
            return Ok(());
        };
        // a folder that does not exist yet holds no one else's run (and is made later)
        if !dir.is_dir() || self.held.contains(&abs) {
            return Ok(());
        }
        let lock_path = dir.join(format!(".{}.lock", name.to_string_lossy()));
        let f = take(&lock_path, p, shared)?;
        note_holder(&f, stage);
        if !shared {
            sweep_temps(&abs);
        }
        self.held.insert(abs);
        self.files.push(f);
        Ok(())
    }
}

/// Opens (creating) `lock_path` and takes its lock without waiting; a lock held elsewhere is
/// refused, naming the holder and the output `p`.
fn take(lock_path: &Path, p: &Path, shared: bool) -> Result<fs::File> {
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(lock_path)
        .with_context(|| format!("cannot create the lock file {}", lock_path.display()))?;
    match if shared { f.try_lock_shared() } else { f.try_lock() } {
        Ok(()) => Ok(f),
        Err(fs::TryLockError::WouldBlock) => {
            let holder = fs::read_to_string(lock_path).unwrap_or_default();
            let holder = holder.trim();
            bail!(
                "{} is being written by another run ({}); wait for it to finish, or choose another output",
                p.display(),
                if holder.is_empty() { "unknown process" } else { holder }
            );
        }
        Err(fs::TryLockError::Error(e)) => Err(e).with_context(|| format!("cannot lock {}", lock_path.display())),
    }
}

/// Writes who holds the lock into the lock file, best effort: the lock holds even if the note
/// cannot be written (shared holders overwrite each other's: the note names one of them).
fn note_holder(mut f: &fs::File, stage: &str) {
    let args: Vec<String> = std::env::args().collect();
    let who = format!("pid {}, {stage}: {}\n", std::process::id(), args.join(" "));
    let _ = f.set_len(0).and_then(|()| f.write_all(who.as_bytes()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::out::TEMP_TAG;

    #[test]
    fn a_second_run_on_the_same_output_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("m.json");
        fs::write(d.path().join(format!(".m.json{TEMP_TAG}x1")), "half").unwrap();
        let held = lock_outputs("stage", [f.as_path()]).unwrap();
        assert!(!d.path().join(format!(".m.json{TEMP_TAG}x1")).exists(), "temps swept");
        let e = format!("{:#}", lock_outputs("other", [f.as_path()]).unwrap_err());
        assert!(
            e.contains("another run") && e.contains(&format!("pid {}", std::process::id())),
            "{e}"
        );
        drop(held);
        lock_outputs("other", [f.as_path()]).unwrap();
    }
}
