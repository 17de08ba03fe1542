//! [`Outputs`]: the one way a stage claims what it writes.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

use super::folder::OutDir;
use super::lock::Locks;

/// Every output of one run, claimed before the stage does any work: each output is locked
/// against a second run (see the module rules), then checked; the locks hold until this is
/// dropped, so keep it until the last output is written.
///
/// ```no_run
/// # fn main() -> anyhow::Result<()> {
/// # use std::path::Path;
/// let mut outputs = facepipe_core::out::Outputs::new("my-stage", false);
/// outputs.manifest(Path::new("out.json"))?;
/// let mut folder = outputs.folder(Path::new("pictures"), ".my-stage", "--out-dir", &|_| false)?;
/// // ... the work ...
/// folder.begin(["a.png".to_string()])?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
#[must_use = "the outputs are locked only while this is held"]
pub struct Outputs {
    stage: String,
    force: bool,
    locks: Locks,
    /// The files and folders claimed so far (where they are, and the flag that named them):
    /// two outputs on one path would overwrite each other.
    claimed: Vec<(PathBuf, String)>,
}

impl Outputs {
    /// Outputs of `stage`; `force` (the stage's `--force`) lets it replace files it did not
    /// write and write beside other files in its folders (which it keeps).
    pub fn new(stage: &str, force: bool) -> Self {
        Outputs {
            stage: stage.into(),
            force,
            locks: Locks::default(),
            claimed: Vec::new(),
        }
    }

    /// Refuses a second output on a path already claimed by another flag (`cheek-lab -o x
    /// --report x`): the same path, or one that leads to the same place through `..` or a
    /// link. Two outputs to stdout (`-`) are refused alike.
    pub(crate) fn claim(&mut self, path: &Path, flag: &str) -> Result<()> {
        let place = if path == Path::new("-") {
            PathBuf::from("-")
        } else {
            let abs = crate::paths::absolute(path)?;
            // the real folder (links followed) and the name in it
            match (abs.parent().map(std::fs::canonicalize), abs.file_name()) {
                (Some(Ok(dir)), Some(name)) => dir.join(name),
                _ => abs,
            }
        };
        if let Some((_, prev)) = self.claimed.iter().find(|(p, _)| *p == place) {
            // the same output claimed again (a retry after a refusal)
            if prev == flag {
                return Ok(());
            }
            if path == Path::new("-") {
                bail!("{prev} and {flag} both go to stdout (-): give one of them a file");
            }
            bail!(
                "{prev} and {flag} are the same path {}: one output would overwrite the other; give each its own",
                path.display()
            );
        }
        self.claimed.push((place, flag.to_string()));
        Ok(())
    }

    /// An output file (`-` is stdout): locked, then checked. A file that exists must be one the
    /// stage recognises by its bytes (`ours`) unless `--force`; `flag` names the option and
    /// `what` the kind of file in the refusal ("a cheek-lab report"); the folder it goes in
    /// must exist and be writable. FIFOs and devices are written through, never read.
    pub fn file(&mut self, path: &Path, flag: &str, what: &str, ours: impl Fn(&[u8]) -> bool) -> Result<()> {
        self.claim(path, flag)?;
        self.locks.lock(&self.stage, path, false)?;
        super::check_file(path, flag, what, self.force, ours)
    }

    /// An output file named after another output already claimed (a report's picture beside
    /// it), which that output's lock covers: checked as [`Outputs::file`], not locked again.
    pub fn beside(&mut self, path: &Path, flag: &str, what: &str, ours: impl Fn(&[u8]) -> bool) -> Result<()> {
        self.claim(path, flag)?;
        super::check_file(path, flag, what, self.force, ours)
    }

    /// An output folder that keeps a ledger (`marker`) of the files the stage writes there:
    /// locked, then inspected (nothing is written yet); a folder holding files the stage did
    /// not write is refused unless `--force`. `ours` recognises names only this stage writes
    /// (for fixed names); [`OutDir::begin`] takes the folder when the work starts.
    pub fn folder(&mut self, dir: &Path, marker: &str, flag: &str, ours: &dyn Fn(&str) -> bool) -> Result<OutDir> {
        self.claim(dir, flag)?;
        self.locks.lock(&self.stage, dir, false)?;
        OutDir::inspect(dir, marker, flag, &self.stage, self.force, ours)
    }

    /// An output the stage checks by rules of its own (rgb2class's per-item masks, a model
    /// folder being resumed): locked only.
    pub fn lock(&mut self, path: &Path) -> Result<()> {
        self.locks.lock(&self.stage, path, false)
    }

    /// A folder that the shards of one run write into together: locked shared (shards run side
    /// by side; an unsharded run on it refuses while they do).
    pub fn shared(&mut self, dir: &Path) -> Result<()> {
        self.claim(dir, "--out-dir")?;
        self.locks.lock(&self.stage, dir, true)
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    #[test]
    fn a_path_given_twice_is_locked_once_and_a_second_run_refuses() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("m.json");
        let mut a = Outputs::new("stage", false);
        a.manifest(&f).unwrap();
        a.lock(&f).unwrap();
        let mut b = Outputs::new("other", false);
        let e = format!("{:#}", b.manifest(&f).unwrap_err());
        assert!(e.contains("another run"), "{e}");
        drop(a);
        b.manifest(&f).unwrap();
    }

    #[test]
    fn two_outputs_on_one_path_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("x");
        let mut o = Outputs::new("stage", false);
        o.file(&f, "-o", "a CSV", |_| true).unwrap();
        let e = format!(
            "{:#}",
            o.file(&d.path().join("sub/../x"), "--report", "a report", |_| true)
                .unwrap_err()
        );
        assert!(e.contains("-o and --report are the same path"), "{e}");
        let e = format!("{:#}", o.folder(&f, ".s", "--qc-dir", &|_| false).unwrap_err());
        assert!(e.contains("-o and --qc-dir are the same path"), "{e}");
        o.file(Path::new("-"), "-o", "", |_| true).unwrap();
        let e = format!("{:#}", o.file(Path::new("-"), "--report", "", |_| true).unwrap_err());
        assert!(e.contains("both go to stdout"), "{e}");
    }

    #[test]
    fn files_and_folders_follow_the_rules_and_force() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("m.json");
        fs::write(&f, "not a manifest").unwrap();
        let e = format!("{:#}", Outputs::new("s", false).manifest(&f).unwrap_err());
        assert!(e.contains("is not a facepipe manifest") && e.contains("--force"), "{e}");
        Outputs::new("s", true).manifest(&f).unwrap();
        let dir = d.path().join("pics");
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("user.txt"), "keep").unwrap();
        let e = format!(
            "{:#}",
            Outputs::new("s", false)
                .folder(&dir, ".s", "--out-dir", &|_| false)
                .unwrap_err()
        );
        assert!(e.contains("user.txt"), "{e}");
        let mut forced = Outputs::new("s", true);
        forced
            .folder(&dir, ".s", "--out-dir", &|_| false)
            .unwrap()
            .begin(["a.png".to_string()])
            .unwrap();
        assert_eq!(fs::read_to_string(dir.join("user.txt")).unwrap(), "keep");
        drop(forced);
        // a shared lock admits another shard, not an exclusive run
        let mut s1 = Outputs::new("s", false);
        s1.shared(&dir).unwrap();
        let mut s2 = Outputs::new("s", false);
        s2.shared(&dir).unwrap();
        assert!(Outputs::new("s", false).lock(&dir).is_err());
        drop((s1, s2));
        Outputs::new("s", false).lock(&dir).unwrap();
    }
}
