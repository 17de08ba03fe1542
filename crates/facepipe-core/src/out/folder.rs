//! Output folders with a ledger: a stage deletes only what it wrote there.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use super::{Kind, describe, is_temp_name, kind};

/// The ledger an output folder holds: which files the stage wrote there.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Ledger {
    written_by: String,
    note: String,
    files: BTreeSet<String>,
}

/// An output folder, inspected before a stage writes anything and taken for the run with
/// [`OutDir::begin`].
#[derive(Debug)]
pub struct OutDir {
    dir: PathBuf,
    marker: String,
    flag: String,
    stage: String,
    /// Files the previous run wrote (from the ledger, or recognised by name), relative.
    previous: BTreeSet<String>,
    /// Everything else found (relative paths): kept, and refused without `--force`.
    foreign: Vec<String>,
    /// Temporary files of an interrupted run (relative).
    temps: Vec<String>,
    ledger: BTreeSet<String>,
}

impl OutDir {
    /// Looks at `dir` (writes nothing). `ours` recognises names only this stage writes (for a
    /// stage whose file names are fixed); other files count as the stage's only if its ledger
    /// (`marker`) lists them. Refuses a folder with other files unless `force`.
    pub(crate) fn inspect(
        dir: &Path,
        marker: &str,
        flag: &str,
        stage: &str,
        force: bool,
        ours: &dyn Fn(&str) -> bool,
    ) -> Result<Self> {
        let mut me = OutDir {
            dir: dir.to_path_buf(),
            marker: marker.into(),
            flag: flag.into(),
            stage: stage.into(),
            previous: BTreeSet::new(),
            foreign: Vec::new(),
            temps: Vec::new(),
            ledger: BTreeSet::new(),
        };
        match kind(dir)? {
            Kind::Missing => return Ok(me),
            Kind::Dir => {}
            _ => bail!("{flag} {} exists and is not a directory", dir.display()),
        }
        me.sort_files(ours)?;
        me.foreign.sort();
        if !me.foreign.is_empty() {
            let shown: Vec<&str> = me.foreign.iter().take(5).map(String::as_str).collect();
            let more = me.foreign.len().saturating_sub(shown.len());
            let list = format!(
                "{}{}",
                shown.join(", "),
                if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                }
            );
            if !force {
                bail!(
                    "{flag} {} holds files {stage} did not write ({list}): move them, choose another folder, or use --force to write beside them (they are kept); nothing was changed",
                    dir.display()
                );
            }
            log::warn!(
                "{flag} {}: keeping {} files {stage} did not write ({list})",
                dir.display(),
                me.foreign.len()
            );
        }
        Ok(me)
    }

    /// Sorts what the folder holds into the previous run's files (listed in the ledger, or
    /// recognised by `ours`), temporary files of an interrupted run, and everything else.
    fn sort_files(&mut self, ours: &dyn Fn(&str) -> bool) -> Result<()> {
        let listed: BTreeSet<String> = match fs::read(self.dir.join(&self.marker)) {
            Ok(b) => serde_json::from_slice::<Ledger>(&b)
                .map(|l| l.files)
                .unwrap_or_default(),
            Err(_) => BTreeSet::new(),
        };
        let mut stack = vec![(self.dir.clone(), String::new())];
        while let Some((d, rel)) = stack.pop() {
            let entries = fs::read_dir(&d).with_context(|| format!("reading {} {}", self.flag, d.display()))?;
            for e in entries {
                let e = e.with_context(|| format!("reading {} {}", self.flag, d.display()))?;
                let name = e.file_name().to_string_lossy().into_owned();
                let r = if rel.is_empty() {
                    name.clone()
                } else {
                    format!("{rel}/{name}")
                };
                let t = e
                    .file_type()
                    .with_context(|| format!("cannot look at {}", e.path().display()))?;
                if t.is_dir() {
                    stack.push((e.path(), r));
                } else if rel.is_empty() && name == self.marker && t.is_file() {
                } else if t.is_file() && is_temp_name(&name) {
                    self.temps.push(r);
                } else if t.is_file() && (listed.contains(&r) || ours(&r)) {
                    self.previous.insert(r);
                } else {
                    self.foreign.push(r);
                }
            }
        }
        Ok(())
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Takes the folder for this run: removes the previous run's files and the temporary files
    /// of an interrupted one (regular files only; folders left empty by that are removed too),
    /// checks that none of `planned` (relative `/` paths) would replace or pass through a
    /// symlink, FIFO or device, and writes the ledger listing `planned`, all before the
    /// stage writes its first file. A run killed later leaves a ledger that covers it.
    pub fn begin(&mut self, planned: impl IntoIterator<Item = String>) -> Result<()> {
        let planned: BTreeSet<String> = planned.into_iter().collect();
        for rel in &planned {
            self.check_planned(rel)?;
        }
        self.keep_foreign(&planned)?;
        let mut emptied = BTreeSet::new();
        for rel in self.previous.iter().chain(&self.temps) {
            let p = self.dir.join(rel);
            match fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("removing the previous run's {}", p.display())),
            }
            let mut d = Path::new(rel).parent();
            while let Some(x) = d.filter(|x| !x.as_os_str().is_empty()) {
                emptied.insert(x.to_path_buf());
                d = x.parent();
            }
        }
        // deepest first; a folder that still holds anything stays
        for d in emptied.iter().rev() {
            let _ = fs::remove_dir(self.dir.join(d));
        }
        crate::atomic::create_dir_all(&self.dir)?;
        self.ledger = planned;
        self.save_ledger()
    }

    /// Adds files to the ledger before they are written.
    pub fn extend(&mut self, more: impl IntoIterator<Item = String>) -> Result<()> {
        let more: Vec<String> = more.into_iter().filter(|r| !self.ledger.contains(r)).collect();
        if more.is_empty() {
            return Ok(());
        }
        for rel in &more {
            self.check_planned(rel)?;
        }
        self.keep_foreign(&more)?;
        self.ledger.extend(more);
        self.save_ledger()
    }

    /// Refuses to write over a file the stage did not write that has the name of one it
    /// writes (a user's own `report.md` in the folder): `--force` writes beside such files and
    /// keeps them, so it cannot replace one either.
    fn keep_foreign<'a>(&self, planned: impl IntoIterator<Item = &'a String>) -> Result<()> {
        let clash: Vec<&String> = planned.into_iter().filter(|r| self.foreign.contains(r)).collect();
        if let Some(first) = clash.first() {
            bail!(
                "{} {} holds {} (and {} more) that {} did not write but would write now; it keeps such files, even with --force: move or rename {}, or choose another folder (nothing was changed)",
                self.flag,
                self.dir.display(),
                first,
                clash.len() - 1,
                self.stage,
                if clash.len() == 1 { "it" } else { "them" }
            );
        }
        Ok(())
    }

    fn check_planned(&self, rel: &str) -> Result<()> {
        let mut p = self.dir.clone();
        let parts: Vec<&str> = rel.split('/').collect();
        for (i, part) in parts.iter().enumerate() {
            if part.is_empty() || *part == "." || *part == ".." {
                bail!("internal: output name {rel:?} is not a plain relative path");
            }
            p.push(part);
            let last = i + 1 == parts.len();
            match fs::symlink_metadata(&p) {
                Err(_) => break,
                Ok(m) if last && m.file_type().is_file() => {}
                Ok(m) if !last && m.file_type().is_dir() => {}
                Ok(m) => bail!(
                    "{} {} must write {}, but {} is {}; facepipe never follows or replaces one (nothing was changed)",
                    self.flag,
                    self.dir.display(),
                    rel,
                    p.display(),
                    describe(&m.file_type())
                ),
            }
        }
        Ok(())
    }

    fn save_ledger(&self) -> Result<()> {
        let l = Ledger {
            written_by: self.stage.clone(),
            note: format!(
                "the files {} wrote here; a rerun removes these and keeps anything else",
                self.stage
            ),
            files: self.ledger.clone(),
        };
        crate::atomic::write_json(&self.dir.join(&self.marker), &l)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::out::TEMP_TAG;

    fn none(_: &str) -> bool {
        false
    }

    #[test]
    fn a_rerun_removes_only_its_own_files() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out");
        let mut o = OutDir::inspect(&out, ".mine", "--out-dir", "stage", false, &none).unwrap();
        o.begin(["a/x.png".to_string(), "r.json".into()]).unwrap();
        fs::create_dir_all(out.join("a")).unwrap();
        fs::write(out.join("a/x.png"), "1").unwrap();
        fs::write(out.join("r.json"), "1").unwrap();
        fs::write(out.join(format!(".r.json{TEMP_TAG}abc")), "half").unwrap();
        // a rerun with nothing foreign: no --force needed, the old files go
        let mut o = OutDir::inspect(&out, ".mine", "--out-dir", "stage", false, &none).unwrap();
        o.begin(["b.png".to_string()]).unwrap();
        assert!(!out.join("a").exists() && !out.join("r.json").exists());
        assert_eq!(fs::read_dir(&out).unwrap().count(), 1, "only the ledger is left");
        // a user's files make it refuse, and with --force they are kept
        fs::create_dir_all(out.join("mine")).unwrap();
        fs::write(out.join("notes.txt"), "keep").unwrap();
        fs::write(out.join("mine/k.txt"), "keep").unwrap();
        fs::write(out.join("b.png"), "1").unwrap();
        let e = OutDir::inspect(&out, ".mine", "--out-dir", "stage", false, &none).unwrap_err();
        let e = format!("{e:#}");
        assert!(
            e.contains("mine/k.txt") && e.contains("notes.txt") && e.contains("--force"),
            "{e}"
        );
        assert!(out.join("b.png").exists(), "a refusal changes nothing");
        let mut o = OutDir::inspect(&out, ".mine", "--out-dir", "stage", true, &none).unwrap();
        o.begin(["c.png".to_string()]).unwrap();
        assert!(!out.join("b.png").exists());
        assert_eq!(fs::read_to_string(out.join("notes.txt")).unwrap(), "keep");
        assert_eq!(fs::read_to_string(out.join("mine/k.txt")).unwrap(), "keep");
        // a user's file with the name of one the stage writes is not replaced, even with --force
        let mut o = OutDir::inspect(&out, ".mine", "--out-dir", "stage", true, &none).unwrap();
        let e = format!("{:#}", o.begin(["notes.txt".to_string()]).unwrap_err());
        assert!(
            e.contains("holds notes.txt (and 0 more) that stage did not write"),
            "{e}"
        );
        let e = format!("{:#}", o.extend(["mine/k.txt".to_string()]).unwrap_err());
        assert!(e.contains("holds mine/k.txt"), "{e}");
        assert_eq!(fs::read_to_string(out.join("notes.txt")).unwrap(), "keep");
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_inside_are_never_followed_even_with_force() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out");
        let elsewhere = d.path().join("elsewhere");
        fs::create_dir_all(&out).unwrap();
        fs::create_dir_all(&elsewhere).unwrap();
        fs::write(elsewhere.join("x.png"), "precious").unwrap();
        std::os::unix::fs::symlink(&elsewhere, out.join("a")).unwrap();
        let mut o = OutDir::inspect(&out, ".mine", "--out-dir", "stage", true, &none).unwrap();
        let e = format!("{:#}", o.begin(["a/x.png".to_string()]).unwrap_err());
        assert!(e.contains("symbolic link"), "{e}");
        assert_eq!(fs::read_to_string(elsewhere.join("x.png")).unwrap(), "precious");
        assert!(!out.join(".mine").exists(), "nothing written");
    }
}
