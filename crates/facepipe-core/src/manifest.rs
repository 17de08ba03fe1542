//! The dataset manifest: the one contract between stages.
//!
//! A manifest is a JSON document:
//!
//! ```json
//! { "schema": "facepipe/dataset", "schema_version": 1,
//!   "root": "../data",
//!   "classes": [{"id": 0, "name": "background", "rgb": [0, 0, 0]}],
//!   "items": [{"id": "samples/g01/face_00000", "image": "...", "label_rgb": "...",
//!              "mask": "...", "split": "train"}],
//!   "provenance": [{"stage": "xml-pairs", "version": "0.1.0", "params": {}, "inputs": []}] }
//! ```
//!
//! Rules every stage follows (and a custom stage should too):
//! * **Unknown fields are carried through.** Top level, per class and per item, fields this
//!   version does not know are kept verbatim and written back out.
//! * **Relative paths resolve against the manifest's directory** (the working directory when
//!   the manifest is read from stdin). The known path fields (`root`, item `image`,
//!   `label_rgb`, `mask`, `pred_mask`, provenance input paths) are rebased when a stage writes
//!   its manifest elsewhere; unknown fields are copied verbatim, so a custom path field should
//!   hold an absolute path.
//! * **Versions.** A reader refuses a document whose `schema` is not `facepipe/dataset` or
//!   whose `schema_version` is newer than it knows.
//! * **Provenance** is a list, one step per stage that touched the data, oldest first: stage,
//!   version, effective parameters (seeds included), sha256 and size of each input file, and a
//!   summary of counts. No timestamps or host names: the same inputs give a byte-identical
//!   manifest.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::io::{InputFile, Output};
use crate::palette::Class;
use crate::paths;

/// Value of the `schema` field.
pub const SCHEMA: &str = "facepipe/dataset";
/// The newest `schema_version` this build reads and the one it writes.
pub const SCHEMA_VERSION: u32 = 1;
/// Item fields that hold paths (rebased when a manifest is written elsewhere).
pub const PATH_FIELDS: [&str; 4] = ["image", "label_rgb", "mask", "pred_mask"];

/// The summary count, in the step of a stage that can run in shards (`--shard K/N`), of the
/// items in the manifest it wrote: `manifest-merge` refuses a shard that no longer holds that
/// many (an item deleted by hand).
pub const ITEMS_WRITTEN: &str = "manifest_items";

/// Which side of the train/valid split an item is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Valid,
}

/// One sample: a photo and whatever has been derived from it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Item {
    /// Unique within the manifest.
    pub id: String,
    /// The photo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// RGB colour-coded label image (classes by palette colour).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_rgb: Option<String>,
    /// Single-channel 8-bit class-index mask (255 = ignore).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask: Option<String>,
    /// Predicted class-index mask.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pred_mask: Option<String>,
    /// Sub-folder the sample came from (e.g. a subject or session), for grouped splits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Train or valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<Split>,
    /// Image width in pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// Image height in pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// Label pixels whose colour was not exactly a palette colour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub off_palette: Option<u64>,
    /// Fields this version does not know, carried through unchanged.
    #[serde(flatten)]
    #[cfg_attr(feature = "schema", schemars(skip))]
    pub extra: Map<String, Value>,
}

impl Item {
    pub fn new(id: impl Into<String>) -> Self {
        Item {
            id: id.into(),
            ..Default::default()
        }
    }

    fn path_fields_mut(&mut self) -> [(&'static str, &mut Option<String>); 4] {
        [
            ("image", &mut self.image),
            ("label_rgb", &mut self.label_rgb),
            ("mask", &mut self.mask),
            ("pred_mask", &mut self.pred_mask),
        ]
    }

    /// Value of a field by name, known or unknown, as JSON (for `--group-by` and the like).
    pub fn field(&self, name: &str) -> Option<Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(mut m)) => m.remove(name),
            _ => None,
        }
    }
}

/// One stage's record in the provenance chain.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Step {
    /// Stage name, e.g. `rgb2class`.
    pub stage: String,
    /// Stage version.
    pub version: String,
    /// Effective parameters, defaults included (seeds too).
    #[serde(default)]
    pub params: Map<String, Value>,
    /// Every input file the stage read as a whole (manifests, XML, palettes).
    #[serde(default)]
    pub inputs: Vec<InputFile>,
    /// Counts the stage reports (items written, skipped, pixels, ...).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub summary: Map<String, Value>,
}

impl Step {
    pub fn new(stage: &str, version: &str) -> Self {
        Step {
            stage: stage.into(),
            version: version.into(),
            params: Map::new(),
            inputs: vec![],
            summary: Map::new(),
        }
    }

    pub fn param(mut self, key: &str, value: impl Serialize) -> Self {
        self.params
            .insert(key.into(), serde_json::to_value(value).expect("parameter serialises"));
        self
    }

    pub fn count(&mut self, key: &str, value: impl Serialize) {
        self.summary.insert(
            key.into(),
            serde_json::to_value(value).expect("summary value serialises"),
        );
    }
}

/// A dataset manifest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(title = "facepipe dataset manifest"))]
pub struct Manifest {
    /// Always `facepipe/dataset`.
    pub schema: String,
    /// Format version; readers refuse newer versions than they know.
    pub schema_version: u32,
    /// The dataset folder (e.g. where `training.xml` lives); per-item outputs mirror paths
    /// below it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<String>,
    /// The palette: class index, name, label colour.
    #[serde(default)]
    pub classes: Vec<Class>,
    /// The samples.
    pub items: Vec<Item>,
    /// One step per stage that produced this manifest, oldest first.
    #[serde(default)]
    pub provenance: Vec<Step>,
    /// Fields this version does not know, carried through unchanged.
    #[serde(flatten)]
    #[cfg_attr(feature = "schema", schemars(skip))]
    pub extra: Map<String, Value>,
}

/// A manifest read from a file, with its paths made absolute, and the record of the input.
#[derive(Debug)]
pub struct Loaded {
    pub manifest: Manifest,
    pub input: InputFile,
}

impl Manifest {
    pub fn new(items: Vec<Item>) -> Self {
        Manifest {
            schema: SCHEMA.into(),
            schema_version: SCHEMA_VERSION,
            root: None,
            classes: vec![],
            items,
            provenance: vec![],
            extra: Map::new(),
        }
    }

    /// Parses a manifest document. Relative paths stay as they are; see [`Manifest::read`].
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        // a byte-order mark, as some Windows editors write, is not part of the JSON
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        let value: Value = serde_json::from_slice(bytes).context("not valid JSON")?;
        let obj = value.as_object().context("a manifest must be a JSON object")?;
        match obj.get("schema") {
            Some(Value::String(s)) if s == SCHEMA => {}
            Some(other) => bail!("`schema` is {other}, expected \"{SCHEMA}\": this is not a facepipe dataset manifest"),
            None => bail!("no `schema` field: this is not a facepipe dataset manifest"),
        }
        match obj.get("schema_version").and_then(Value::as_u64) {
            Some(v) if v > u64::from(SCHEMA_VERSION) => bail!(
                "schema_version {v} is newer than this facepipe understands (up to {SCHEMA_VERSION}); upgrade facepipe"
            ),
            Some(0) | None => bail!("`schema_version` must be a positive integer"),
            Some(_) => {}
        }
        // the JSON path of a bad field (`items[3].width`), not only what was wrong with it
        let m: Manifest = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            anyhow::anyhow!(
                "manifest does not match the facepipe/dataset schema: at {}: {}",
                if path == "." { "the top level".to_string() } else { path },
                e.inner()
            )
        })?;
        m.validate()?;
        Ok(m)
    }

    /// Structural checks beyond the types: unique non-empty ids, a valid palette if any.
    pub fn validate(&self) -> Result<()> {
        let mut seen = HashSet::with_capacity(self.items.len());
        for (i, it) in self.items.iter().enumerate() {
            if it.id.is_empty() {
                bail!("item {i} has an empty id");
            }
            if !seen.insert(it.id.as_str()) {
                bail!("item id {:?} appears more than once", it.id);
            }
        }
        if !self.classes.is_empty() {
            crate::palette::validate(&self.classes).context("manifest classes")?;
        }
        Ok(())
    }

    /// Reads a manifest from a file (`-` = stdin) and makes its known path fields absolute,
    /// resolving relative ones against the manifest's directory (the working directory for
    /// stdin). Errors name the file.
    pub fn read(path: &Path) -> Result<Loaded> {
        let (bytes, input) = crate::io::read_input(path)?;
        let shown = if input.path == "-" {
            "<stdin>".to_string()
        } else {
            path.display().to_string()
        };
        let mut manifest = Self::parse(&bytes).with_context(|| format!("manifest {shown}"))?;
        let base = if input.path == "-" {
            paths::absolute(Path::new("."))?
        } else {
            PathBuf::from(&input.path)
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default()
        };
        manifest.rebase(&base, None)?;
        Ok(Loaded { manifest, input })
    }

    /// Rewrites known path fields: from relative-to-`from` (absolute paths are kept) to
    /// absolute, then, with `to`, relative to `to`.
    fn rebase(&mut self, from: &Path, to: Option<&Path>) -> Result<()> {
        let conv = |s: &mut String| -> Result<()> {
            if s == "-" {
                return Ok(());
            }
            let abs = paths::normalize(&from.join(&*s));
            let out = match to {
                Some(t) => paths::relative_to(&abs, t),
                None => abs,
            };
            *s = paths::to_manifest_string(&out)?;
            Ok(())
        };
        if let Some(r) = self.root.as_mut() {
            conv(r)?;
        }
        for it in &mut self.items {
            for (_, f) in it.path_fields_mut() {
                if let Some(s) = f.as_mut() {
                    conv(s)?;
                }
            }
        }
        for step in &mut self.provenance {
            for inp in &mut step.inputs {
                conv(&mut inp.path)?;
            }
        }
        Ok(())
    }

    /// The manifest as it would be written to `out`: known path fields (absolute in memory, or
    /// relative to the working directory) made relative to the output's directory, pretty JSON with a final newline.
    pub fn to_bytes_for(&self, out: &Output) -> Result<Vec<u8>> {
        let base = out.base_dir()?;
        let cwd = paths::absolute(Path::new("."))?;
        let mut m = self.clone();
        m.rebase(&cwd, Some(&base))?;
        let mut bytes = serde_json::to_vec_pretty(&m).context("serialising manifest")?;
        bytes.push(b'\n');
        Ok(bytes)
    }

    /// Writes the manifest (last, after the stage's data files) atomically.
    ///
    /// An existing output file is replaced only if it is itself a facepipe manifest (a previous
    /// run's output) or `force` is set: a stage never overwrites a user's other files.
    pub fn write(&self, out: &Output, force: bool) -> Result<()> {
        if let Output::File(p) = out {
            guard_overwrite(p, force)?;
        }
        let bytes = self.to_bytes_for(out)?;
        out.write(&bytes)
    }
}

/// Refuses to replace `path` unless it does not exist, is a facepipe manifest, or `force`;
/// a FIFO or device is fine (written through, never read): the rule of
/// [`crate::out::Outputs::manifest`], checked again when the manifest is written.
pub(crate) fn guard_overwrite(path: &Path, force: bool) -> Result<()> {
    crate::out::check_file(path, "output", "a facepipe manifest", force, is_manifest_bytes)
}

// Here, not in `out`, so that `out` need not know what a manifest is (it knows its files only
// through the recogniser each output passes in).
impl crate::out::Outputs {
    /// The output manifest (`-o`): a file that exists must be a facepipe manifest.
    pub fn manifest(&mut self, path: &Path) -> Result<()> {
        self.file(path, "output", "a facepipe manifest", is_manifest_bytes)
    }
}

/// Whether `bytes` are a facepipe manifest (what a stage may replace without `--force`).
pub fn is_manifest_bytes(bytes: &[u8]) -> bool {
    serde_json::from_slice::<Value>(bytes)
        .ok()
        .is_some_and(|v| v.get("schema").and_then(Value::as_str) == Some(SCHEMA))
}

#[cfg(feature = "schema")]
/// JSON Schema of the manifest, as committed under `schemas/`.
pub fn json_schema() -> Value {
    let mut v = serde_json::to_value(schemars::schema_for!(Manifest)).expect("schema serialises");
    allow_extra_fields(&mut v);
    // Pin what readers check: the schema name, and the version range this build reads.
    v["properties"]["schema"]["const"] = SCHEMA.into();
    v["properties"]["schema_version"]["minimum"] = 1.into();
    v["properties"]["schema_version"]["maximum"] = SCHEMA_VERSION.into();
    v
}

/// Our types carry unknown fields through (`#[serde(flatten)] extra`); say so in the schema
/// by leaving `additionalProperties` open on every object type.
#[cfg(feature = "schema")]
fn allow_extra_fields(v: &mut Value) {
    match v {
        Value::Object(m) => {
            if m.get("type").and_then(Value::as_str) == Some("object") && m.contains_key("properties") {
                m.insert("additionalProperties".into(), Value::Bool(true));
            }
            for (k, child) in m.iter_mut() {
                if k != "additionalProperties" {
                    allow_extra_fields(child);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(allow_extra_fields),
        _ => {}
    }
}

#[cfg(feature = "schema")]
/// JSON Schema of a palette file.
pub fn palette_json_schema() -> Value {
    let mut v = serde_json::to_value(schemars::schema_for!(crate::palette::PaletteFile)).expect("schema serialises");
    allow_extra_fields(&mut v);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_byte_order_mark_is_accepted() {
        let doc = "\u{feff}{\"schema\":\"facepipe/dataset\",\"schema_version\":1,\"items\":[{\"id\":\"a\"}]}";
        assert_eq!(Manifest::parse(doc.as_bytes()).unwrap().items[0].id, "a");
    }

    fn doc(extra: &str) -> String {
        format!(
            r#"{{"schema":"facepipe/dataset","schema_version":1,"classes":[],"items":[
                {{"id":"a","image":"img/a.png","custom":{{"x":1}}}}],"provenance":[]{extra}}}"#
        )
    }

    #[test]
    fn unknown_fields_survive_a_round_trip() {
        let m = Manifest::parse(doc(r#","note":"hi""#).as_bytes()).unwrap();
        assert_eq!(m.extra["note"], "hi");
        assert_eq!(m.items[0].extra["custom"]["x"], 1);
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(v["note"], "hi");
        assert_eq!(v["items"][0]["custom"]["x"], 1);
    }

    #[test]
    fn a_bad_field_is_named_by_its_json_path() {
        let bad = doc("").replace(r#""custom":{"x":1}"#, r#""width":"wide""#);
        let e = format!("{:#}", Manifest::parse(bad.as_bytes()).unwrap_err());
        assert!(e.contains("at items[0].width") && e.contains("invalid type"), "{e}");
        let bad = doc("").replace(r#""classes":[]"#, r#""classes":[{"id":0,"name":"bg","rgb":[0,0]}]"#);
        let e = format!("{:#}", Manifest::parse(bad.as_bytes()).unwrap_err());
        assert!(e.contains("at classes[0].rgb"), "{e}");
    }

    #[test]
    fn newer_versions_and_wrong_schemas_are_refused() {
        let newer = doc("").replace(r#""schema_version":1"#, r#""schema_version":2"#);
        let e = Manifest::parse(newer.as_bytes()).unwrap_err().to_string();
        assert!(e.contains("newer"), "{e}");
        let wrong = doc("").replace("facepipe/dataset", "other/thing");
        let e = Manifest::parse(wrong.as_bytes()).unwrap_err().to_string();
        assert!(e.contains("not a facepipe dataset manifest"), "{e}");
        let dup = doc("").replace(
            r#"{"id":"a","image":"img/a.png","custom":{"x":1}}"#,
            r#"{"id":"a"},{"id":"a"}"#,
        );
        assert!(
            Manifest::parse(dup.as_bytes())
                .unwrap_err()
                .to_string()
                .contains("more than once")
        );
    }

    #[test]
    fn paths_resolve_against_the_manifest_dir_and_rebase_on_write() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("in/m.json");
        std::fs::create_dir_all(src.parent().unwrap()).unwrap();
        std::fs::write(&src, doc("")).unwrap();
        let loaded = Manifest::read(&src).unwrap();
        let img = loaded.manifest.items[0].image.clone().unwrap();
        assert_eq!(
            PathBuf::from(&img),
            paths::absolute(&d.path().join("in/img/a.png")).unwrap()
        );

        let dst = d.path().join("out/deeper/m.json");
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        loaded.manifest.write(&Output::File(dst.clone()), false).unwrap();
        let back: Value = serde_json::from_slice(&std::fs::read(&dst).unwrap()).unwrap();
        assert_eq!(back["items"][0]["image"], "../../in/img/a.png");
        // and reading it again lands on the same file
        let again = Manifest::read(&dst).unwrap();
        assert_eq!(again.manifest.items[0].image.as_deref(), Some(img.as_str()));
    }

    #[test]
    fn foreign_files_are_not_overwritten() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("notes.json");
        std::fs::write(&p, "{\"mine\": true}").unwrap();
        let m = Manifest::new(vec![Item::new("a")]);
        let e = m.write(&Output::File(p.clone()), false).unwrap_err().to_string();
        assert!(e.contains("refusing to overwrite"), "{e}");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "{\"mine\": true}");
        m.write(&Output::File(p.clone()), true).unwrap();
        m.write(&Output::File(p.clone()), false).unwrap(); // now it is a manifest
    }

    #[test]
    fn schema_accepts_extra_fields_and_rejects_missing_items() {
        let schema = json_schema();
        let v = jsonschema::validator_for(&schema).unwrap();
        let ok: Value = serde_json::from_str(&doc(r#","note":"hi""#)).unwrap();
        assert!(v.is_valid(&ok));
        let bad: Value = serde_json::json!({"schema": "facepipe/dataset", "schema_version": 1});
        assert!(!v.is_valid(&bad));
    }
}
