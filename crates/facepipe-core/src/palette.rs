//! Class palettes: which RGB colour in a label image means which class index.

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Mask value meaning "no label here": ignored by training and metrics.
pub const IGNORE: u8 = 255;

/// One segmentation class.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Class {
    /// Class index as written in the masks; classes are numbered 0..n-1 in order.
    pub id: u8,
    /// Human-readable name.
    pub name: String,
    /// Colour of this class in RGB label images.
    pub rgb: [u8; 3],
    /// Pixels of this class over the whole dataset (class balance), when a stage counted them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pixels: Option<u64>,
    /// Fields this version does not know, carried through unchanged.
    #[serde(flatten)]
    #[cfg_attr(feature = "schema", schemars(skip))]
    pub extra: Map<String, Value>,
}

impl Class {
    pub fn new(id: u8, name: &str, rgb: [u8; 3]) -> Self {
        Class {
            id,
            name: name.to_string(),
            rgb,
            pixels: None,
            extra: Map::new(),
        }
    }
}

/// The palette of the reference workflow (Mut1ny head segmentation), in its order.
pub fn mut1ny() -> Vec<Class> {
    [
        ("background", [0, 0, 0]),
        ("lips", [255, 0, 0]),
        ("eyes", [0, 255, 0]),
        ("nose", [0, 0, 255]),
        ("hair", [255, 255, 0]),
        ("ears", [0, 255, 255]),
        ("eyebrows", [255, 0, 255]),
        ("teeth", [255, 255, 255]),
        ("general face", [128, 128, 128]),
        ("facial hair", [255, 192, 192]),
        ("specs/sunglasses", [0, 128, 128]),
        ("unnamed", [255, 128, 128]),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, (n, c))| Class::new(i as u8, n, c))
    .collect()
}

/// Index of a class by name in the Mut1ny palette (panics on a typo: for constants).
pub fn mut1ny_index(name: &str) -> u8 {
    mut1ny()
        .iter()
        .position(|c| c.name == name)
        .unwrap_or_else(|| panic!("no class {name:?}")) as u8
}

/// A class name as a CSV column-name word: every character but ASCII letters and digits
/// becomes `_` ("general face" → `general_face`, "specs/sunglasses" → `specs_sunglasses`). The
/// one rule every table with per-class columns uses.
pub fn column_name(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// A palette file: either a bare array of classes or any object with a `classes` array
/// (so a facepipe manifest can serve as a palette file).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(untagged)]
pub enum PaletteFile {
    List(Vec<Class>),
    Object { classes: Vec<Class> },
}

/// Checks the rules every palette obeys: 1 to 255 classes, ids 0..n-1 in order, distinct
/// colours and non-empty names. Index 255 is reserved for "ignore".
pub fn validate(classes: &[Class]) -> Result<()> {
    if classes.is_empty() {
        bail!("palette has no classes");
    }
    if classes.len() > 255 {
        bail!(
            "palette has {} classes; at most 255 are allowed (255 means 'ignore')",
            classes.len()
        );
    }
    for (i, c) in classes.iter().enumerate() {
        if usize::from(c.id) != i {
            bail!(
                "class {:?} has id {} but is at position {i}: ids must be 0..n-1 in order",
                c.name,
                c.id
            );
        }
        if c.name.trim().is_empty() {
            bail!("class {i} has an empty name");
        }
        if let Some(other) = classes[..i].iter().find(|o| o.rgb == c.rgb) {
            bail!("classes {:?} and {:?} share the colour {:?}", other.name, c.name, c.rgb);
        }
    }
    Ok(())
}

/// Reads and validates a palette file.
pub fn load(path: &Path) -> Result<Vec<Class>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read palette {}", path.display()))?;
    let file: PaletteFile = serde_json::from_str(&text).with_context(|| {
        format!(
            "palette {} is not a JSON array of {{id, name, rgb}} classes nor an object with `classes`",
            path.display()
        )
    })?;
    let classes = match file {
        PaletteFile::List(c) | PaletteFile::Object { classes: c } => c,
    };
    validate(&classes).with_context(|| format!("palette {}", path.display()))?;
    Ok(classes)
}

/// A stable fingerprint of a palette's colours and order (used to tell whether a mask was
/// made with the same palette).
pub fn fingerprint(classes: &[Class]) -> String {
    let mut bytes = Vec::with_capacity(classes.len() * 4);
    for c in classes {
        bytes.push(c.id);
        bytes.extend_from_slice(&c.rgb);
    }
    crate::io::sha256_hex(&bytes)[..16].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_names_become_one_kind_of_column_name() {
        assert_eq!(column_name("general face"), "general_face");
        assert_eq!(column_name("specs/sunglasses"), "specs_sunglasses");
        assert_eq!(column_name("eyes"), "eyes");
    }

    #[test]
    fn default_palette_is_valid_and_ordered() {
        let p = mut1ny();
        validate(&p).unwrap();
        assert_eq!(p.len(), 12);
        assert_eq!(p[8].rgb, [128, 128, 128]);
        assert_eq!(mut1ny_index("general face"), 8);
    }

    #[test]
    fn bad_palettes_are_rejected() {
        let mut p = mut1ny();
        p[3].rgb = p[2].rgb;
        assert!(validate(&p).unwrap_err().to_string().contains("share the colour"));
        let mut p = mut1ny();
        p.swap(0, 1);
        assert!(validate(&p).unwrap_err().to_string().contains("ids must be 0..n-1"));
        assert!(validate(&[]).is_err());
    }

    #[test]
    fn palette_file_forms() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a.json");
        std::fs::write(
            &a,
            r#"[{"id":0,"name":"bg","rgb":[0,0,0]},{"id":1,"name":"skin","rgb":[9,9,9]}]"#,
        )
        .unwrap();
        assert_eq!(load(&a).unwrap().len(), 2);
        let b = d.path().join("b.json");
        std::fs::write(&b, r#"{"schema":"x","classes":[{"id":0,"name":"bg","rgb":[0,0,0]}]}"#).unwrap();
        assert_eq!(load(&b).unwrap().len(), 1);
        let c = d.path().join("c.json");
        std::fs::write(&c, r#"{"colours": []}"#).unwrap();
        let e = format!("{:#}", load(&c).unwrap_err());
        assert!(e.contains("c.json"), "{e}");
    }
}
