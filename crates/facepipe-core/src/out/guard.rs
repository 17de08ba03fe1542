//! [`Outputs`]: the one way a stage claims what it writes.

use std::path::Path;

use anyhow::Result;

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
}

impl Outputs {
    /// Outputs of `stage`; `force` (the stage's `--force`) lets it replace files it did not
    /// write and write beside other files in its folders (which it keeps).
    pub fn new(stage: &str, force: bool) -> Self {
        Outputs {
            stage: stage.into(),
            force,
            locks: Locks::default(),
        }
    }

    /// An output file (`-` is stdout): locked, then checked. A file that exists must be one the
    /// stage recognises by its bytes (`ours`) unless `--force`; `flag` names the option and
    /// `what` the kind of file in the refusal ("a cheek-lab report"); the folder it goes in
    /// must exist and be writable. FIFOs and devices are written through, never read.
    pub fn file(&mut self, path: &Path, flag: &str, what: &str, ours: impl Fn(&[u8]) -> bool) -> Result<()> {
        self.locks.lock(&self.stage, path, false)?;
        super::check_file(path, flag, what, self.force, ours)
    }

    /// An output file named after another output already claimed (a report's picture beside
    /// it), which that output's lock covers: checked as [`Outputs::file`], not locked again.
    pub fn beside(&mut self, path: &Path, flag: &str, what: &str, ours: impl Fn(&[u8]) -> bool) -> Result<()> {
        super::check_file(path, flag, what, self.force, ours)
    }

    /// The output manifest (`-o`): a file that exists must be a facepipe manifest.
    pub fn manifest(&mut self, path: &Path) -> Result<()> {
        self.file(
            path,
            "output",
            "a facepipe manifest",
            crate::manifest::is_manifest_bytes,
        )
    }

    /// An output folder that keeps a ledger (`marker`) of the files the stage writes there:
    /// locked, then inspected (nothing is written yet); a folder holding files the stage did
    /// not write is refused unless `--force`. `ours` recognises names only this stage writes
    /// (for fixed names); [`OutDir::begin`] takes the folder when the work starts.
    pub fn folder(&mut self, dir: &Path, marker: &str, flag: &str, ours: &dyn Fn(&str) -> bool) -> Result<OutDir> {
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
