//! Which class of the palette plays which part: the `--*-class` flags ([`ClassNames`])
//! resolved against a manifest's classes ([`Roles`]).

use anyhow::{Context, Result};
use facepipe_core::Class;

/// Class names of the roles, as the flags give them. The flags in `--help` order.
#[derive(clap::Args, Clone, Debug)]
pub struct ClassNames {
    /// Class of cheek skin.
    #[arg(
        id = "skin_class",
        long = "skin-class",
        default_value = "general face",
        value_name = "NAME"
    )]
    pub skin: String,
    /// Class of the eyes (they place the cheeks).
    #[arg(id = "eye_class", long = "eye-class", default_value = "eyes", value_name = "NAME")]
    pub eyes: String,
    /// Class of the nose (the cheeks sit beside it).
    #[arg(id = "nose_class", long = "nose-class", default_value = "nose", value_name = "NAME")]
    pub nose: String,
    /// Class of the lips (the cheeks sit halfway down to them).
    #[arg(id = "lip_class", long = "lip-class", default_value = "lips", value_name = "NAME")]
    pub lips: String,
    /// Class of the eyebrows (the top of the fWHR height).
    #[arg(
        id = "brow_class",
        long = "brow-class",
        default_value = "eyebrows",
        value_name = "NAME"
    )]
    pub brows: String,
    /// Glasses: with sunglasses hiding the eyes, the lenses place them (ignored if not in the palette).
    #[arg(
        id = "glasses_class",
        long = "glasses-class",
        default_value = "specs/sunglasses",
        value_name = "NAME"
    )]
    pub glasses: String,
    /// Classes that make up a face region (comma-separated).
    // The full path keeps clap from taking a `Vec` as a repeatable flag: one value, split.
    #[arg(
        id = "face_classes",
        long = "face-classes",
        default_value = "general face,eyes,nose,lips,eyebrows,teeth,facial hair,specs/sunglasses",
        value_name = "NAMES",
        value_parser = class_list
    )]
    pub face_region: ::std::vec::Vec<String>,
}

impl Default for ClassNames {
    /// The flags' defaults: the Mut1ny palette's names.
    fn default() -> Self {
        facepipe_core::cli::arg_defaults()
    }
}

/// clap value parser of `--face-classes`: comma-separated names, each trimmed.
fn class_list(s: &str) -> Result<Vec<String>, std::convert::Infallible> {
    Ok(s.split(',').map(|s| s.trim().to_string()).collect())
}

/// The class indices the face finder needs.
#[derive(Clone, Debug)]
pub struct Roles {
    pub skin: u8,
    pub eyes: u8,
    pub nose: u8,
    pub lips: u8,
    pub brows: u8,
    /// Glasses: where no eye is visible (sunglasses), the lenses stand in for the eyes.
    pub glasses: Option<u8>,
    /// Every class that belongs to a face (lookup by class index).
    pub face_region: [bool; 256],
}

impl Roles {
    /// Finds each named class among `classes` (case-insensitively; `shown` names the manifest
    /// in errors). Glasses are optional; skin, eyes, nose, lips and brows always belong to the
    /// face region.
    pub fn resolve(classes: &[Class], names: &ClassNames, shown: &str) -> Result<Roles> {
        let find = |n: &str| -> Result<u8> {
            classes.iter().find(|c| c.name.eq_ignore_ascii_case(n)).map(|c| c.id).with_context(|| {
                format!(
                    "class {n:?} is not among the classes of {shown} ({}); name the classes with the --*-class flags",
                    classes.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
                )
            })
        };
        let mut face_region = [false; 256];
        for n in &names.face_region {
            face_region[usize::from(find(n)?)] = true;
        }
        let r = Roles {
            skin: find(&names.skin)?,
            eyes: find(&names.eyes)?,
            nose: find(&names.nose)?,
            lips: find(&names.lips)?,
            brows: find(&names.brows)?,
            glasses: find(&names.glasses).ok(),
            face_region,
        };
        for c in [r.skin, r.eyes, r.nose, r.lips, r.brows] {
            face_region[usize::from(c)] = true;
        }
        Ok(Roles { face_region, ..r })
    }

    /// Which pixels of a class mask belong to a face region.
    pub fn face_pixels(&self, mask: &[u8]) -> Vec<bool> {
        mask.iter().map(|&v| self.face_region[usize::from(v)]).collect()
    }
}
