//! `xml-pairs`: read a Mut1ny `training.xml` into a manifest of image/label pairs.
//!
//! The file is a flat sequence of `<srcimg name="samples\g\f.png"/>` each followed by its
//! `<labelimg name="labels\g\f.png"/>`, under any root element, with other elements (such as
//! `<bboxes>`) anywhere in between; those are skipped. Names are Windows paths relative to the
//! folder holding the XML.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use facepipe_core::io::InputFile;
use facepipe_core::{Item, Manifest, Step, paths};
use quick_xml::events::{BytesStart, Event};

pub const STAGE: &str = "xml-pairs";

/// What to do.
#[derive(Clone, Debug)]
pub struct Config {
    pub xml: PathBuf,
    /// Drop pairs whose files are missing (with a warning) instead of failing.
    pub skip_missing: bool,
}

/// A pair as found in the XML.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pair {
    pub image: String,
    pub label: String,
    /// Line and column (1-based) of the `<srcimg>`.
    pub at: (usize, usize),
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Src,
    Label,
}

/// A line and column (1-based).
type Pos = (usize, usize);

/// Pairs up `<srcimg>`s and `<labelimg>`s as they come, refusing what does not pair up.
struct Pairing<'a> {
    /// Names the file in errors.
    file: &'a str,
    /// The `<srcimg>` waiting for its `<labelimg>`.
    pending: Option<(String, Pos)>,
    pairs: Vec<Pair>,
    seen_img: HashMap<String, Pos>,
    seen_lab: HashMap<String, Pos>,
}

impl<'a> Pairing<'a> {
    fn new(file: &'a str) -> Self {
        Pairing {
            file,
            pending: None,
            pairs: Vec::new(),
            seen_img: HashMap::new(),
            seen_lab: HashMap::new(),
        }
    }

    /// A `<srcimg>` naming `rel` at `pos`: the previous one must have had its label.
    fn src(&mut self, rel: String, pos: Pos) -> Result<()> {
        let (file, (l, c)) = (self.file, pos);
        if let Some((img, (pl, pc))) = self.pending.take() {
            bail!(
                "{file}:{pl}:{pc}: <srcimg name=\"{img}\"> has no <labelimg>: the next <srcimg> follows at line {l}, column {c}"
            );
        }
        if let Some((dl, dc)) = self.seen_img.get(&rel) {
            bail!("{file}:{l}:{c}: duplicate pair: image {rel} is already listed at line {dl}, column {dc}");
        }
        self.seen_img.insert(rel.clone(), pos);
        self.pending = Some((rel, pos));
        Ok(())
    }

    /// A `<labelimg>` naming `rel` (written `raw` in the file) at `pos`: it pairs with the
    /// pending `<srcimg>`.
    fn label(&mut self, raw: &str, rel: String, pos: Pos) -> Result<()> {
        let (file, (l, c)) = (self.file, pos);
        let Some((img, src_at)) = self.pending.take() else {
            bail!("{file}:{l}:{c}: <labelimg name=\"{raw}\"> has no <srcimg> before it");
        };
        if let Some((dl, dc)) = self.seen_lab.get(&rel) {
            bail!("{file}:{l}:{c}: label {rel} is already paired at line {dl}, column {dc}");
        }
        self.seen_lab.insert(rel.clone(), pos);
        self.pairs.push(Pair {
            image: img,
            label: rel,
            at: src_at,
        });
        Ok(())
    }

    /// The pairs at the end of the file; `open` is the innermost element still open there.
    fn finish(self, open: Option<&(String, Pos)>) -> Result<Vec<Pair>> {
        let file = self.file;
        if let Some((img, (l, c))) = self.pending {
            bail!("{file}:{l}:{c}: <srcimg name=\"{img}\"> has no <labelimg> before the end of the file");
        }
        if let Some((name, (l, c))) = open {
            bail!("{file}: the file ends inside <{name}> (opened at line {l}, column {c}): truncated XML?");
        }
        if self.pairs.is_empty() {
            bail!("{file}: no <srcimg>/<labelimg> pairs found");
        }
        Ok(self.pairs)
    }
}

/// Parses the pairs out of `training.xml` text. `file` names the file in errors.
pub fn parse_pairs(text: &str, file: &str) -> Result<Vec<Pair>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = quick_xml::Reader::from_str(text);
    reader.config_mut().check_end_names = true;
    let at = |off: u64| line_col(text, off as usize);
    // the elements open (name, where), to name the one a truncated file ends in
    let mut open: Vec<(String, Pos)> = Vec::new();
    let mut pairing = Pairing::new(file);
    loop {
        let pos = at(reader.buffer_position());
        let ev = match reader.read_event() {
            Ok(ev) => ev,
            Err(e) => {
                let (l, c) = at(reader.error_position());
                bail!("{file}:{l}:{c}: malformed XML: {e}");
            }
        };
        let (e, is_start) = match &ev {
            Event::Start(e) => (e, true),
            Event::Empty(e) => (e, false),
            Event::End(_) => {
                open.pop();
                continue;
            }
            Event::Eof => break,
            _ => continue,
        };
        let name = e.local_name().as_ref().to_string();
        if is_start {
            open.push((name.clone(), pos));
        }
        let Some((kind, raw, rel)) = image_element(e, &name, pos, file)? else {
            continue;
        };
        match kind {
            Kind::Src => pairing.src(rel, pos)?,
            Kind::Label => pairing.label(&raw, rel, pos)?,
        }
    }
    pairing.finish(open.last())
}

/// For a `<srcimg>` or `<labelimg>` (named `name`, at `pos`): its kind, its `name` attribute
/// as written, and that as a dataset-relative path. None for any other element.
fn image_element(e: &BytesStart, name: &str, pos: Pos, file: &str) -> Result<Option<(Kind, String, String)>> {
    let kind = if name.eq_ignore_ascii_case("srcimg") {
        Kind::Src
    } else if name.eq_ignore_ascii_case("labelimg") {
        Kind::Label
    } else {
        return Ok(None);
    };
    let (l, c) = pos;
    let raw = name_attr(e).with_context(|| format!("{file}:{l}:{c}: <{name}>"))?;
    let rel = paths::dataset_relative(&raw).with_context(|| format!("{file}:{l}:{c}: <{name} name=\"{raw}\">"))?;
    Ok(Some((kind, raw, rel)))
}

fn name_attr(e: &BytesStart) -> Result<String> {
    let attr = e
        .try_get_attribute("name")
        .context("malformed attributes")?
        .context("missing the `name` attribute")?;
    let v = attr
        .normalized_value(quick_xml::XmlVersion::Implicit1_0)
        .context("malformed `name` attribute")?;
    Ok(v.into_owned())
}

/// Finds `rel` under `root`, matching components case-insensitively (Mut1ny was made on
/// Windows, whose file names ignore case). Only a unique match counts.
fn find_ignoring_case(root: &Path, rel: &str, cache: &mut HashMap<PathBuf, Vec<String>>) -> Option<String> {
    let parts: Vec<&str> = rel.split('/').collect();
    let mut found = Vec::new();
    search(root, &parts, &mut Vec::new(), &mut found, cache);
    match found.as_slice() {
        [one] => Some(one.clone()),
        _ => None,
    }
}

fn search(
    dir: &Path,
    parts: &[&str],
    prefix: &mut Vec<String>,
    found: &mut Vec<String>,
    cache: &mut HashMap<PathBuf, Vec<String>>,
) {
    let Some((first, rest)) = parts.split_first() else {
        return;
    };
    let names = cache.entry(dir.to_path_buf()).or_insert_with(|| {
        std::fs::read_dir(dir)
            .map(|rd| rd.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect())
            .unwrap_or_default()
    });
    let hits: Vec<String> = names
        .iter()
        .filter(|n| n.eq_ignore_ascii_case(first))
        .cloned()
        .collect();
    for hit in hits {
        let path = dir.join(&hit);
        prefix.push(hit);
        if rest.is_empty() {
            if path.is_file() {
                found.push(prefix.join("/"));
            }
        } else if path.is_dir() {
            search(&path, rest, prefix, found, cache);
        }
        prefix.pop();
    }
}

/// The id of an item: the image's dataset path without its extension.
fn item_id(image: &str) -> String {
    match image.rsplit_once('.') {
        Some((stem, ext)) if !ext.contains('/') => stem.to_string(),
        _ => image.to_string(),
    }
}

/// The folder(s) between the top folder and the file, e.g. `samples/0012/a.png` → `0012`.
fn group_of(image: &str) -> Option<String> {
    let parts: Vec<&str> = image.split('/').collect();
    (parts.len() >= 3).then(|| parts[1..parts.len() - 1].join("/"))
}

/// Finds the pairs' files under the dataset root, by their exact names or else ignoring case.
struct Resolver<'a> {
    root: &'a Path,
    /// Folder listings read for the case-insensitive search.
    cache: HashMap<PathBuf, Vec<String>>,
    /// Names found only when ignoring case.
    case_fixed: usize,
}

impl Resolver<'_> {
    /// The real dataset-relative name of `rel`, if it is there.
    fn resolve(&mut self, rel: &str) -> Option<String> {
        if self.root.join(rel).is_file() {
            return Some(rel.to_string());
        }
        let fixed = find_ignoring_case(self.root, rel, &mut self.cache);
        self.case_fixed += usize::from(fixed.is_some());
        fixed
    }
}

/// The items of the pairs whose files are both there, and the missing files (each with where
/// the XML names it). `shown` names the XML in errors.
fn items_of(pairs: &[Pair], resolver: &mut Resolver, shown: &str) -> Result<(Vec<Item>, Vec<String>)> {
    let mut missing = Vec::new();
    let mut items = Vec::with_capacity(pairs.len());
    let mut ids: HashMap<String, String> = HashMap::new();
    for p in pairs {
        let mut resolved = [p.image.as_str(), p.label.as_str()].map(|rel| resolver.resolve(rel));
        let (l, c) = p.at;
        for (i, rel) in [&p.image, &p.label].into_iter().enumerate() {
            if resolved[i].is_none() {
                missing.push(format!("{rel} (line {l}, column {c})"));
            }
        }
        let (Some(img), Some(lab)) = (resolved[0].take(), resolved[1].take()) else {
            continue;
        };
        let id = item_id(&p.image);
        if let Some(other) = ids.insert(id.clone(), p.image.clone()) {
            bail!(
                "{shown}:{l}:{c}: images {other} and {} would share the id {id:?}",
                p.image
            );
        }
        let mut it = Item::new(id);
        it.group = group_of(&p.image);
        it.image = Some(paths::to_manifest_string(&resolver.root.join(&img))?);
        it.label_rgb = Some(paths::to_manifest_string(&resolver.root.join(&lab))?);
        items.push(it);
    }
    Ok((items, missing))
}

/// Refuses missing files, or with `--skip-missing` warns about the pairs dropped for them.
fn check_missing(cfg: &Config, missing: &[String], shown: &str, root: &Path) -> Result<()> {
    if missing.is_empty() {
        return Ok(());
    }
    let n = missing.len();
    if !cfg.skip_missing {
        bail!(
            "{n} file(s) named in {shown} do not exist under {} (use --skip-missing to drop their pairs):\n  {}",
            root.display(),
            missing.join("\n  ")
        );
    }
    log::warn!(
        "skipping pairs with {n} missing file(s): {}",
        missing.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
    );
    Ok(())
}

/// Reads the XML, checks the files, and builds the pairs manifest.
pub fn build(cfg: &Config) -> Result<Manifest> {
    let (bytes, input): (Vec<u8>, InputFile) = facepipe_core::io::read_input(&cfg.xml)?;
    let shown = cfg.xml.display().to_string();
    let text = String::from_utf8(bytes).with_context(|| format!("{shown} is not UTF-8 text"))?;
    let pairs = parse_pairs(&text, &shown)?;
    let root = paths::absolute(&cfg.xml)?
        .parent()
        .map(Path::to_path_buf)
        .context("XML file has no folder")?;

    let mut resolver = Resolver {
        root: &root,
        cache: HashMap::new(),
        case_fixed: 0,
    };
    let (items, missing) = items_of(&pairs, &mut resolver, &shown)?;
    let case_fixed = resolver.case_fixed;
    if case_fixed > 0 {
        log::warn!(
            "{case_fixed} file names in {shown} matched files on disk only when ignoring case; using the files' real names"
        );
    }
    check_missing(cfg, &missing, &shown, &root)?;
    if items.is_empty() {
        bail!("{shown}: none of the {} pairs has both files present", pairs.len());
    }

    let mut step = Step::new(STAGE, facepipe_core::VERSION).param("skip_missing", cfg.skip_missing);
    step.inputs.push(input);
    step.count("pairs_in_xml", pairs.len());
    step.count("items", items.len());
    step.count("missing_files", missing.len());
    step.count("pairs_skipped", pairs.len() - items.len());
    step.count("names_matched_ignoring_case", case_fixed);
    let mut m = Manifest::new(items);
    m.root = Some(paths::to_manifest_string(&root)?);
    m.provenance.push(step);
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = "<?xml version=\"1.0\"?>\r\n<!-- made by hand -->\r\n<set>\r\n\
        <srcimg name=\"samples\\g1\\a.png\"/>\r\n<labelimg name=\"labels\\g1\\a.png\"/>\r\n\
        <bboxes><bbox x=\"1\"/></bboxes>\r\n\
        <srcimg name=\"samples\\g1\\b.png\"></srcimg>\r\n<labelimg name=\"labels\\g1\\b.png\"/>\r\n</set>\r\n";

    #[test]
    fn pairs_in_document_order_with_forward_slashes() {
        let p = parse_pairs(&format!("\u{feff}{OK}"), "t.xml").unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].image, "samples/g1/a.png");
        assert_eq!(p[1].label, "labels/g1/b.png");
        assert_eq!(p[0].at, (4, 1));
    }

    fn err(xml: &str) -> String {
        format!("{:#}", parse_pairs(xml, "t.xml").unwrap_err())
    }

    #[test]
    fn errors_name_file_line_and_column() {
        let e = err("<s>\n<srcimg name=\"a.png\"/>\n<srcimg name=\"b.png\"/>\n<labelimg name=\"l.png\"/></s>");
        assert!(
            e.starts_with("t.xml:2:1:") && e.contains("no <labelimg>") && e.contains("line 3"),
            "{e}"
        );
        let e = err("<s>\n  <labelimg name=\"l.png\"/></s>");
        assert!(e.starts_with("t.xml:2:3:") && e.contains("no <srcimg>"), "{e}");
        let e = err("<s><srcimg name=\"a.png\"/></s>");
        assert!(e.contains("before the end"), "{e}");
        let e = err("<s>\n<srcimg nom=\"a.png\"/><labelimg name=\"l.png\"/></s>");
        assert!(e.starts_with("t.xml:2:1:") && e.contains("missing the `name`"), "{e}");
        let e = err("<s><srcimg name=\"..\\x.png\"/><labelimg name=\"l.png\"/></s>");
        assert!(e.contains("'..'"), "{e}");
        let e = err("<s><srcimg name=\"C:\\x.png\"/><labelimg name=\"l.png\"/></s>");
        assert!(e.contains("drive-letter"), "{e}");
        let e = err("<s><srcimg name=\"/x.png\"/><labelimg name=\"l.png\"/></s>");
        assert!(e.contains("absolute"), "{e}");
    }

    #[test]
    fn malformed_and_truncated_xml() {
        let e = err("<s>\n<srcimg name=\"a.png\"/>\n<labelimg name=\"l.png\"/>\n</t>");
        assert!(e.starts_with("t.xml:4:") && e.contains("malformed"), "{e}");
        let e = err("<s>\n<srcimg name=\"a.png\"/>\n<labelimg name=\"l.png\"/>\n");
        assert!(e.contains("ends inside <s>") && e.contains("truncated"), "{e}");
        let e = err("<s>\n<srcimg name=\"a.png\"/>\n<labelimg name=\"l.p");
        assert!(e.contains("t.xml:3:1") && e.contains("malformed"), "{e}");
        let e = err("<s></s>");
        assert!(e.contains("no <srcimg>"), "{e}");
    }

    #[test]
    fn duplicates_are_errors() {
        let e = err(
            "<s><srcimg name=\"a.png\"/><labelimg name=\"l.png\"/>\n<srcimg name=\"a.png\"/><labelimg name=\"m.png\"/></s>",
        );
        assert!(e.contains("duplicate pair") && e.contains("line 1"), "{e}");
    }

    #[test]
    fn ids_and_groups() {
        assert_eq!(item_id("samples/g1/a.png"), "samples/g1/a");
        assert_eq!(item_id("samples/g.1/a"), "samples/g.1/a");
        assert_eq!(group_of("samples/0012/a.png").as_deref(), Some("0012"));
        assert_eq!(group_of("samples/a.png"), None);
    }

    #[test]
    fn case_insensitive_lookup_finds_unique_match() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("Samples/G1")).unwrap();
        std::fs::write(d.path().join("Samples/G1/A.PNG"), b"x").unwrap();
        let mut cache = HashMap::new();
        assert_eq!(
            find_ignoring_case(d.path(), "samples/g1/a.png", &mut cache).as_deref(),
            Some("Samples/G1/A.PNG")
        );
        assert_eq!(find_ignoring_case(d.path(), "samples/g1/b.png", &mut cache), None);
        // the exact-case folder exists but holds a different file: look in the other one
        std::fs::create_dir_all(d.path().join("samples/g2")).unwrap();
        let mut cache = HashMap::new();
        assert_eq!(
            find_ignoring_case(d.path(), "samples/g1/a.png", &mut cache).as_deref(),
            Some("Samples/G1/A.PNG")
        );
        // two candidates: ambiguous, no match
        std::fs::create_dir_all(d.path().join("samples/g1")).unwrap();
        std::fs::write(d.path().join("samples/g1/a.png"), b"x").unwrap();
        std::fs::write(d.path().join("samples/g1/A.png"), b"x").unwrap();
        let mut cache = HashMap::new();
        assert_eq!(find_ignoring_case(d.path(), "SAMPLES/G1/a.png", &mut cache), None);
    }
}
