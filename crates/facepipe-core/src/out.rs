//! The rules every stage follows for what it writes.
//!
//! * **Output files** (`-o`, `--report`): `-` is stdout. A file that exists is replaced only if
//!   the stage recognises it as its own earlier output, or with `--force`. A FIFO, a device or
//!   anything else that is not a regular file (also behind a symlink, e.g. `/dev/stdout`) is
//!   written through, never read first and never replaced. A symlink to a regular file keeps
//!   the link: the file it points to is replaced atomically. See [`check_file`] and
//!   [`crate::Output::write`].
//! * **Output folders** (`--out-dir`, `--qc-dir`): a stage deletes only files it wrote, which
//!   it knows from the ledger it keeps in the folder (a JSON marker listing them) or from the
//!   names only it writes. A folder holding anything else is refused unless `--force`, and even
//!   then those files are kept, and a symlink, FIFO or device inside is never followed or
//!   replaced. See [`OutDir`].
//! * **Locks**: an advisory lock (`flock`) on a file beside each output (`.NAME.lock`) keeps two
//!   runs from writing the same outputs at once; the second refuses and names the first. The
//!   lock files stay (removing a lock file another process may be opening is itself a race).
//!   See [`lock_outputs`].
//! * **Temporary files** are named `.NAME.facepipe-tmp-` plus a random suffix, beside their target; a run that
//!   holds an output's lock removes the ones a killed run left (see [`sweep_temps`]).

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// Marks temporary files (`.NAME` + this + a random suffix).
pub const TEMP_TAG: &str = ".facepipe-tmp-";

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
pub fn check_file(path: &Path, flag: &str, what: &str, force: bool, ours: impl Fn(&[u8]) -> bool) -> Result<()> {
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

fn describe(t: &fs::FileType) -> &'static str {
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
    let prefix = format!(".{}{TEMP_TAG}", name.to_string_lossy());
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

/// Whether a file name is one of facepipe's temporary names (`.NAME.facepipe-tmp-…`).
fn is_temp_name(name: &str) -> bool {
    name.starts_with('.') && name.contains(TEMP_TAG)
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

/// Held advisory locks on a stage's outputs; released when dropped (or when the process ends,
/// however it ends).
#[derive(Debug, Default)]
pub struct Locks {
    _files: Vec<fs::File>,
}

impl Locks {
    /// Holds `other`'s locks too.
    pub fn add(&mut self, other: Locks) {
        self._files.extend(other._files);
    }
}

/// Locks every output (files and folders; `-` and FIFOs/devices are skipped) with a `flock` on
/// `.NAME.lock` beside it, and sweeps the temporary files interrupted runs left there. A second
/// run on the same outputs refuses, naming the first (its pid, stage and command line).
pub fn lock_outputs<'a>(stage: &str, outputs: impl IntoIterator<Item = &'a Path>) -> Result<Locks> {
    lock(stage, outputs, false)
}

/// Takes a shared lock on each output folder that the shards of one stage write into together
/// (`--shard K/N`, each shard its own files): shards run side by side, and an unsharded run of
/// the stage on the same folder (which takes it exclusively) refuses while any shard runs, and
/// the other way round. Nothing is swept: another shard's temporary files may be in flight.
pub fn lock_shared<'a>(stage: &str, outputs: impl IntoIterator<Item = &'a Path>) -> Result<Locks> {
    lock(stage, outputs, true)
}

fn lock<'a>(stage: &str, outputs: impl IntoIterator<Item = &'a Path>, shared: bool) -> Result<Locks> {
    let mut files = Vec::new();
    let mut seen = BTreeSet::new();
    for p in outputs {
        if p == Path::new("-") {
            continue;
        }
        // the lock goes beside the file that is written: a symlink's target (so that
        // `-o /dev/stdout` redirected to a file locks beside that file, not in /dev)
        let abs = match kind(p)? {
            Kind::Through => continue,
            Kind::Regular(target) => crate::paths::absolute(&target)?,
            _ => crate::paths::absolute(p)?,
        };
        let (Some(dir), Some(name)) = (abs.parent(), abs.file_name()) else {
            continue;
        };
        if !dir.is_dir() || !seen.insert(abs.clone()) {
            // a folder that does not exist yet holds no one else's run (and is made later)
            continue;
        }
        let lock_path = dir.join(format!(".{}.lock", name.to_string_lossy()));
        let mut f = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .with_context(|| format!("cannot create the lock file {}", lock_path.display()))?;
        match if shared { f.try_lock_shared() } else { f.try_lock() } {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let holder = fs::read_to_string(&lock_path).unwrap_or_default();
                let holder = holder.trim();
                bail!(
                    "{} is being written by another run ({}); wait for it to finish, or choose another output",
                    p.display(),
                    if holder.is_empty() { "unknown process" } else { holder }
                );
            }
            Err(fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock {}", lock_path.display()));
            }
        }
        let args: Vec<String> = std::env::args().collect();
        let who = format!("pid {}, {stage}: {}\n", std::process::id(), args.join(" "));
        // best effort: the lock holds even if the note cannot be written (shared holders
        // overwrite each other's: the note names one of them)
        let _ = f.set_len(0).and_then(|()| f.write_all(who.as_bytes()));
        if !shared {
            sweep_temps(&abs);
        }
        files.push(f);
    }
    Ok(Locks { _files: files })
}

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
    pub fn inspect(
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
        let listed: BTreeSet<String> = match fs::read(dir.join(marker)) {
            Ok(b) => serde_json::from_slice::<Ledger>(&b)
                .map(|l| l.files)
                .unwrap_or_default(),
            Err(_) => BTreeSet::new(),
        };
        let mut stack = vec![(dir.to_path_buf(), String::new())];
        while let Some((d, rel)) = stack.pop() {
            let entries = fs::read_dir(&d).with_context(|| format!("reading {flag} {}", d.display()))?;
            for e in entries {
                let e = e.with_context(|| format!("reading {flag} {}", d.display()))?;
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
                } else if rel.is_empty() && name == marker && t.is_file() {
                } else if t.is_file() && is_temp_name(&name) {
                    me.temps.push(r);
                } else if t.is_file() && (listed.contains(&r) || ours(&r)) {
                    me.previous.insert(r);
                } else {
                    me.foreign.push(r);
                }
            }
        }
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
        crate::io::create_dir_all(&self.dir)?;
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
        self.ledger.extend(more);
        self.save_ledger()
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
        crate::io::write_json(&self.dir.join(&self.marker), &l)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            let held = lock_outputs("stage", [l2.as_path()]).unwrap();
            assert!(sub.join(".t.json.lock").is_file() && !d.path().join(".l2.json.lock").exists());
            drop(held);
            crate::Output::File(l2.clone()).write(b"new").unwrap();
            assert!(fs::symlink_metadata(&l2).unwrap().file_type().is_symlink());
            assert_eq!(fs::read_to_string(sub.join("t.json")).unwrap(), "new");
            // a device behind a symlink: fine to write, nothing probed or locked beside it
            check_file(&null, "-o", "x", false, |_| false).unwrap();
            assert!(lock_outputs("stage", [null.as_path()]).is_ok());
            assert!(!d.path().join(".null.lock").exists());
        }
    }

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
