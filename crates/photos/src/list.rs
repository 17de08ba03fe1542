//! The photos to read: every photo file under a folder, or the rows of a CSV that lists them.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Map, Value};

/// File extensions (lower case) of the photos facepipe reads.
pub const READ: [&str; 6] = ["jpg", "jpeg", "png", "tif", "tiff", "bmp"];
/// Photo formats cameras and phones write that facepipe does not read: listed as bad photos,
/// with what to do, rather than passed over.
pub const UNREAD: [(&str, &str); 9] = [
    ("heic", "HEIC"),
    ("heif", "HEIF"),
    ("webp", "WebP"),
    ("dng", "raw DNG"),
    ("cr2", "raw Canon CR2"),
    ("cr3", "raw Canon CR3"),
    ("nef", "raw Nikon NEF"),
    ("arw", "raw Sony ARW"),
    ("raf", "raw Fujifilm RAF"),
];

/// Item fields a CSV column may not set (the stage sets them, or they mean something else).
pub const RESERVED: [&str; 15] = [
    "image",
    "group",
    "bit_depth",
    "label_rgb",
    "mask",
    "pred_mask",
    "split",
    "width",
    "height",
    "off_palette",
    "orientation",
    "colour_profile",
    "colour",
    "sha256",
    "bytes",
];

/// A photo to read.
#[derive(Clone, Debug)]
pub struct Candidate {
    /// Absolute path.
    pub path: PathBuf,
    /// How the user named it: relative to the folder, or as the CSV wrote it.
    pub name: String,
    /// The item id the CSV's `id` column gives, if it has one.
    pub id: Option<String>,
    /// The CSV's other columns.
    pub fields: Map<String, Value>,
}

/// What a listing found.
#[derive(Debug, Default)]
pub struct Listing {
    pub photos: Vec<Candidate>,
    /// Files under the folder that are no photos by their extension (left out, counted).
    pub others: Vec<String>,
}

fn extension(p: &Path) -> String {
    p.extension()
        .map(|e| e.to_string_lossy().to_lowercase())
        .unwrap_or_default()
}

/// Whether a file's extension names a photo format (read or not).
pub fn is_photo_name(p: &Path) -> bool {
    let e = extension(p);
    READ.contains(&e.as_str()) || UNREAD.iter().any(|(x, _)| *x == e)
}

/// Why a photo of a format facepipe does not read is refused, if it is one.
pub fn unread_format(p: &Path) -> Option<String> {
    let e = extension(p);
    UNREAD.iter().find(|(x, _)| *x == e).map(|(_, name)| {
        format!("{name} photos are not read: export them as JPEG, PNG or 16-bit TIFF (keeping their colour profile)")
    })
}

/// Every photo under `dir` (recursively, in name order; hidden files and folders, whose names
/// start with `.`, are passed over; a folder reached twice through links is read once).
pub fn folder(dir: &Path) -> Result<Listing> {
    let mut out = Listing::default();
    let mut seen = HashSet::new();
    walk(dir, dir, &mut out, &mut seen)?;
    Ok(out)
}

fn walk(root: &Path, dir: &Path, out: &mut Listing, seen: &mut HashSet<PathBuf>) -> Result<()> {
    let real = std::fs::canonicalize(dir).with_context(|| format!("cannot read folder {}", dir.display()))?;
    if !seen.insert(real) {
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read folder {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()
        .with_context(|| format!("cannot read folder {}", dir.display()))?;
    entries.sort();
    for p in entries {
        if p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')) {
            continue;
        }
        let name = relative_name(root, &p);
        // follows links; a broken link is a bad photo if it looks like one
        match std::fs::metadata(&p) {
            Ok(m) if m.is_dir() => walk(root, &p, out, seen)?,
            _ if is_photo_name(&p) => out.photos.push(Candidate {
                path: p,
                name,
                id: None,
                fields: Map::new(),
            }),
            _ => out.others.push(name),
        }
    }
    Ok(())
}

/// `p` below `root`, its parts joined with `/`.
pub(crate) fn relative_name(root: &Path, p: &Path) -> String {
    let rel = p.strip_prefix(root).unwrap_or(p);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

/// The rows of a CSV naming photos in `column` (by default the first of `image`, `photo`,
/// `path`, `file` it has), relative to the CSV's folder or absolute; its other columns are
/// carried into the items, an `id` column as the item id.
pub fn csv(file: &Path, column: Option<&str>) -> Result<Listing> {
    let shown = file.display().to_string();
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {shown}"))?;
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    let mut r = csv::ReaderBuilder::new().flexible(false).from_reader(bytes);
    let header: Vec<String> = r
        .headers()
        .with_context(|| format!("{shown}: cannot read its header"))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    let col = match column {
        Some(c) => header
            .iter()
            .position(|h| h == c)
            .with_context(|| format!("{shown} has no column {c:?} (its columns: {})", header.join(", ")))?,
        None => ["image", "photo", "path", "file"]
            .iter()
            .find_map(|c| header.iter().position(|h| h == c))
            .with_context(|| {
                format!(
                    "{shown} has no column naming the photos: call it image, photo, path or file, or give --path-column (its columns: {})",
                    header.join(", ")
                )
            })?,
    };
    let mut names = HashSet::new();
    for (k, h) in header.iter().enumerate() {
        ensure!(!h.is_empty(), "{shown}: column {} has no name", k + 1);
        ensure!(names.insert(h.as_str()), "{shown}: column {h:?} appears twice");
        if k != col && RESERVED.contains(&h.as_str()) {
            bail!("{shown}: column {h:?} would overwrite the item field of that name, which facepipe sets: rename it");
        }
    }
    // the CSV's folder (a bare file name is in the working directory)
    let abs = facepipe_core::paths::absolute(file)?;
    let base = abs.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut out = Listing::default();
    for (i, rec) in r.records().enumerate() {
        let line = i + 2;
        let rec = rec.with_context(|| format!("{shown}:{line}: cannot read the row"))?;
        if rec.iter().all(|v| v.trim().is_empty()) {
            continue;
        }
        let name = rec[col].trim().to_string();
        ensure!(!name.is_empty(), "{shown}:{line}: the {} column is empty", header[col]);
        let mut fields = Map::new();
        let mut id = None;
        for (k, v) in rec.iter().enumerate() {
            match header[k].as_str() {
                _ if k == col => {}
                "id" => id = Some(v.trim().to_string()).filter(|v| !v.is_empty()),
                h => {
                    fields.insert(h.to_string(), Value::String(v.to_string()));
                }
            }
        }
        ensure!(
            !header.iter().any(|h| h == "id") || id.is_some(),
            "{shown}:{line}: the id column is empty"
        );
        out.photos.push(Candidate {
            path: facepipe_core::paths::normalize(&base.join(&name)),
            name,
            id,
            fields,
        });
    }
    ensure!(!out.photos.is_empty(), "{shown} lists no photos");
    Ok(out)
}
