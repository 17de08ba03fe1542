//! Path rules shared by every stage.
//!
//! * Paths inside a manifest are UTF-8 strings with `/` separators.
//! * A relative path in a manifest resolves against the directory of the manifest file
//!   (the working directory when the manifest came on stdin). Stages work on absolute,
//!   lexically normalised paths in memory and write paths relative to the directory of the
//!   manifest they write (see [`crate::manifest`]).
//! * Names taken from a dataset (e.g. `training.xml`) must stay inside the dataset folder:
//!   see [`dataset_relative`].

use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result, bail};

/// Makes `p` absolute (against the working directory) and removes `.` and `..` lexically,
/// without touching the file system (so symlinks are not resolved and the path need not exist).
pub fn absolute(p: &Path) -> Result<PathBuf> {
    let abs = std::path::absolute(p).with_context(|| format!("making {} absolute", p.display()))?;
    Ok(normalize(&abs))
}

/// Lexical normalisation: drops `.` components and folds `a/..`.
pub fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// `target` relative to the directory `base` (both absolute and normalised), using `..`
/// where needed. Falls back to `target` itself when they share no root.
pub fn relative_to(target: &Path, base: &Path) -> PathBuf {
    let t: Vec<Component> = target.components().collect();
    let b: Vec<Component> = base.components().collect();
    let common = t.iter().zip(&b).take_while(|(x, y)| x == y).count();
    if common == 0 {
        return target.to_path_buf();
    }
    let mut out = PathBuf::new();
    for _ in common..b.len() {
        out.push("..");
    }
    for c in &t[common..] {
        out.push(c.as_os_str());
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

/// A path as a manifest string (UTF-8, `/` separators).
pub fn to_manifest_string(p: &Path) -> Result<String> {
    let s = p
        .to_str()
        .with_context(|| format!("path is not valid UTF-8: {}", p.display()))?;
    Ok(s.replace('\\', "/"))
}

/// Checks a dataset-relative name (as found in `training.xml`, with `\` or `/` separators)
/// and returns it with `/` separators and without `.` components.
///
/// Rejected: empty names, absolute paths, Windows drive letters (`C:`), UNC paths and any `..`
/// component: a dataset may only name files inside its own folder.
pub fn dataset_relative(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() {
        bail!("empty file name");
    }
    let unified = name.replace('\\', "/");
    if unified.starts_with('/') {
        bail!("absolute path {name:?} escapes the dataset folder");
    }
    let b = unified.as_bytes();
    if b.len() >= 2 && b[1] == b':' && b[0].is_ascii_alphabetic() {
        bail!("drive-letter path {name:?} escapes the dataset folder");
    }
    let mut parts = Vec::new();
    for part in unified.split('/') {
        match part {
            "" | "." => {}
            ".." => bail!("path {name:?} contains '..' and could escape the dataset folder"),
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        bail!("file name {name:?} names no file");
    }
    Ok(parts.join("/"))
}

/// The relative output stem (a path without extension) of an item id: its `/`- or
/// `\\`-separated parts, each made a safe file name (control and Windows-reserved characters →
/// `_`, `.` and `..` → `_`). Two ids whose stems are equal ignoring case would share output
/// files on some file systems: the stages that write per-item files refuse them.
pub fn output_stem(id: &str) -> String {
    id.split(['/', '\\'])
        .filter(|p| !p.is_empty())
        .map(|p| {
            let p: String = p
                .chars()
                .map(|c| {
                    if c.is_control() || ":*?\"<>|".contains(c) {
                        '_'
                    } else {
                        c
                    }
                })
                .collect();
            if p == "." || p == ".." { "_".to_string() } else { p }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Why two items cannot both have per-item output files (see [`output_clash`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clash {
    /// Item `.0` gives no file name at all.
    NoName(usize),
    /// Items `.0` and `.1` have the same output stem (ignoring case).
    SameStem(usize, usize),
    /// Item `.0`'s output file (its stem + `.2`) would have to be a folder of item `.1`'s.
    FileIsFolder(usize, usize, &'static str),
}

/// The first clash among `ids`' output files, each written as `STEM.tif` or `STEM.png`
/// ([`output_stem`]): an id that names no file, two stems equal ignoring case, or one id's file
/// a folder of another's (`x` → `x.tif`, `x.tif/y` → `x.tif/y.tif`). Found before anything is
/// written, by every stage that writes per-item files.
pub fn output_clash<'a>(ids: impl IntoIterator<Item = &'a str>) -> Option<Clash> {
    let mut stems: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (k, id) in ids.into_iter().enumerate() {
        let stem = output_stem(id).to_lowercase();
        if stem.is_empty() {
            return Some(Clash::NoName(k));
        }
        if let Some(&j) = stems.get(&stem) {
            return Some(Clash::SameStem(j, k));
        }
        stems.insert(stem, k);
    }
    for (stem, &k) in &stems {
        for (i, _) in stem.match_indices('/') {
            for ext in [".tif", ".png"] {
                if let Some(&j) = stem[..i].strip_suffix(ext).and_then(|s| stems.get(s)) {
                    return Some(Clash::FileIsFolder(j, k, ext));
                }
            }
        }
    }
    None
}

/// The longest common ancestor directory of a set of absolute file paths.
pub fn common_dir<'a>(paths: impl IntoIterator<Item = &'a Path>) -> Option<PathBuf> {
    let mut acc: Option<Vec<Component<'a>>> = None;
    for p in paths {
        let parent: Vec<Component> = p.parent().map(|d| d.components().collect()).unwrap_or_default();
        acc = Some(match acc {
            None => parent,
            Some(a) => a
                .into_iter()
                .zip(parent)
                .take_while(|(x, y)| x == y)
                .map(|(x, _)| x)
                .collect(),
        });
    }
    acc.map(|c| c.iter().map(|c| c.as_os_str()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_walk_up_and_down() {
        let r = relative_to(Path::new("/a/b/c/x.png"), Path::new("/a/d"));
        assert_eq!(r, PathBuf::from("../b/c/x.png"));
        assert_eq!(relative_to(Path::new("/a/x"), Path::new("/a")), PathBuf::from("x"));
        assert_eq!(relative_to(Path::new("/a"), Path::new("/a")), PathBuf::from("."));
    }

    #[test]
    fn normalize_folds_dots() {
        assert_eq!(normalize(Path::new("/a/./b/../c")), PathBuf::from("/a/c"));
    }

    #[test]
    fn dataset_names_are_confined() {
        assert_eq!(dataset_relative(r"samples\g1\a.png").unwrap(), "samples/g1/a.png");
        assert_eq!(dataset_relative("./x//y.png").unwrap(), "x/y.png");
        for bad in [
            "",
            "  ",
            "/etc/passwd",
            r"C:\x.png",
            "c:x.png",
            r"\\server\share\x.png",
            r"a\..\..\x.png",
            "..",
            ".",
        ] {
            assert!(dataset_relative(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn stems_are_safe_relative_names() {
        assert_eq!(output_stem("samples/g000/face_00000"), "samples/g000/face_00000");
        assert_eq!(output_stem("../x/./a:b"), "_/x/_/a_b");
        assert_eq!(output_stem("/abs\\win"), "abs/win");
    }

    #[test]
    fn output_clashes_are_found() {
        assert_eq!(output_clash(["a", "b/c"]), None);
        assert_eq!(output_clash(["a", "b", "A"]), Some(Clash::SameStem(0, 2)));
        assert_eq!(output_clash(["x:y", "x_y"]), Some(Clash::SameStem(0, 1)));
        assert_eq!(output_clash(["x", "x.tif/y"]), Some(Clash::FileIsFolder(0, 1, ".tif")));
        assert_eq!(output_clash(["ok", "/"]), Some(Clash::NoName(1)));
    }

    #[test]
    fn common_dir_of_files() {
        let ps = [PathBuf::from("/d/labels/g1/a.png"), PathBuf::from("/d/labels/g2/b.png")];
        assert_eq!(
            common_dir(ps.iter().map(|p| p.as_path())),
            Some(PathBuf::from("/d/labels"))
        );
        assert_eq!(common_dir(std::iter::empty()), None);
    }
}
