//! One item: its photo and mask read, its faces found ([`crate::faces`]) and each measured
//! ([`crate::measure`]) into a row of the CSV.

use std::path::{Path, PathBuf};

use anyhow::{Result, ensure};
use facepipe_core::Item;
use facepipe_core::photo::{self, Colour, PhotoInfo};

use crate::faces::{self, Cheek, Face};
use crate::measure::{self, CheekResult, Method, SkinOf};
use crate::roles::Roles;
use crate::{Config, FaceRow, Faces, ItemResult};

/// What measuring an item needs besides the item: the settings and the palette's roles.
pub(crate) struct Measurer<'a> {
    pub(crate) cfg: &'a Config,
    pub(crate) roles: &'a Roles,
    /// Classes in the palette (a mask value past them is an error).
    pub(crate) n_classes: usize,
}

/// What every row of an item shares: its id and its files as the CSV shows them.
struct RowHead<'a> {
    id: &'a str,
    image: String,
    mask: String,
    /// How the photo was read, once it has been.
    photo: Option<PhotoInfo>,
    /// The value of the field `--join FIELD` names.
    join_key: Option<String>,
}

impl RowHead<'_> {
    /// The one row of an item without a face: nothing measured, for `reason`.
    fn without_face(&self, reason: &str) -> FaceRow {
        FaceRow {
            id: self.id.to_string(),
            face: 0,
            face_id: format!("{}#0", self.id),
            image: self.image.clone(),
            mask: self.mask.clone(),
            faces_in_image: 0,
            face_pixels: 0,
            eye_distance_px: None,
            face_width_px: None,
            scale_from: "".into(),
            eyes_from_glasses: false,
            patch_px: 0,
            fwhr: None,
            fwhr_reason: reason.into(),
            left: CheekResult::missing(reason),
            right: CheekResult::missing(reason),
            eyes: vec![],
            label: 0,
            orientation: self.photo.as_ref().map(|p| p.orientation),
            colour_profile: self.photo.as_ref().map(|p| p.profile.clone()).unwrap_or_default(),
            join_key: self.join_key.clone(),
        }
    }
}

/// Why a photo's cheeks have no colour, if they have none: a grayscale or CMYK photo.
fn no_colour(info: &PhotoInfo) -> Option<&'static str> {
    match info.colour {
        Colour::Rgb => None,
        Colour::Grayscale => Some("no colour: grayscale photo"),
        Colour::Cmyk => Some("no colour: CMYK photo (its colours depend on a print profile facepipe does not apply)"),
    }
}

/// How a photo was shown, for an error about its size: the orientation applied.
fn shown_as(info: &PhotoInfo) -> String {
    if photo::swaps_sides(
        image::metadata::Orientation::from_exif(info.orientation).unwrap_or(image::metadata::Orientation::NoTransforms),
    ) {
        format!(
            " as shown (EXIF orientation {} turns it a quarter; it is stored {}×{})",
            info.orientation, info.height, info.width
        )
    } else if info.orientation != 1 {
        format!(" as shown (EXIF orientation {} applied)", info.orientation)
    } else {
        String::new()
    }
}

impl Measurer<'_> {
    /// An item's faces (the largest, or all with `--faces all`), one row each; an item without
    /// a photo, a mask or a face gets one row saying why.
    pub(crate) fn item(&self, it: &Item) -> Result<ItemResult> {
        let image = it.image.as_ref().map(PathBuf::from);
        let mask = it
            .field(&self.cfg.mask_field)
            .and_then(|v| v.as_str().map(PathBuf::from));
        let shown = |p: &Option<PathBuf>| p.as_ref().map_or(String::new(), |p| p.display().to_string());
        let mut head = RowHead {
            id: &it.id,
            image: shown(&image),
            mask: shown(&mask),
            photo: None,
            join_key: match &self.cfg.join {
                crate::JoinOn::Field(f) => it.field(f).and_then(|v| match v {
                    serde_json::Value::Null => None,
                    serde_json::Value::String(s) => Some(s),
                    other => Some(other.to_string()),
                }),
                _ => None,
            },
        };
        let mut rows = match (&image, &mask) {
            (Some(i), Some(m)) => self.faces(&mut head, i, m)?,
            _ => {
                let why = if image.is_none() {
                    "item has no image".to_string()
                } else {
                    format!("item has no {}", self.cfg.mask_field)
                };
                vec![head.without_face(&why)]
            }
        };
        if rows.is_empty() {
            rows.push(head.without_face("no face in the mask"));
        }
        Ok(ItemResult {
            rows,
            warnings: vec![],
            image,
            mask,
        })
    }

    /// Reads the photo (as shown, in sRGB) and its mask (they must be the same size), finds
    /// the faces and measures them.
    fn faces(&self, head: &mut RowHead, image: &Path, mask_path: &Path) -> Result<Vec<FaceRow>> {
        let photo = photo::read(image)?;
        head.photo = Some(photo.info.clone());
        let mask = facepipe_core::mask::read(mask_path, self.n_classes)?;
        let (pw, ph) = photo.pixels.dimensions();
        ensure!(
            (pw, ph) == mask.dimensions(),
            "image {} is {pw}×{ph}{} but its {} {} is {}×{}: a mask must match the photo as a viewer shows it",
            image.display(),
            shown_as(&photo.info),
            self.cfg.mask_field,
            mask_path.display(),
            mask.width(),
            mask.height()
        );
        let (w, h) = (pw as usize, ph as usize);
        let colourless = no_colour(&photo.info);
        let (labels, found) = faces::find_faces(mask.as_raw(), w, h, self.roles, &self.cfg.placement);
        let wanted = if self.cfg.faces == Faces::Largest {
            1
        } else {
            found.len()
        };
        let rows = (found.iter().enumerate().take(wanted))
            .map(|(k, f)| {
                let skin = SkinOf {
                    photo: &photo.pixels,
                    mask: mask.as_raw(),
                    labels: &labels,
                    label: f.label,
                    skin: self.roles.skin,
                };
                self.face_row(head, (k, found.len()), f, &skin, colourless)
            })
            .collect();
        Ok(rows)
    }

    /// Face `k` of `n` found: its patches placed, scaled and measured (none measured, for
    /// `colourless`'s reason, in a photo without colour).
    fn face_row(
        &self,
        head: &RowHead,
        (k, n): (usize, usize),
        f: &Face,
        skin: &SkinOf,
        colourless: Option<&str>,
    ) -> FaceRow {
        let (side, scale_from) = self.patch_side(f);
        let how = Method {
            min_skin: self.cfg.min_skin,
            white: self.cfg.white,
            averaging: self.cfg.averaging,
        };
        let cheek = |c: &Cheek| -> CheekResult {
            match (c, colourless) {
                (Cheek::Missing(why), _) => CheekResult::missing(why),
                (Cheek::At(_), Some(why)) => CheekResult::missing(why),
                (Cheek::At(p), None) => measure::measure(skin, *p, side, &how),
            }
        };
        FaceRow {
            id: head.id.to_string(),
            face: k,
            face_id: format!("{}#{k}", head.id),
            image: head.image.clone(),
            mask: head.mask.clone(),
            faces_in_image: n,
            face_pixels: f.pixels.len(),
            eye_distance_px: f.eye_distance,
            face_width_px: f.width,
            scale_from: scale_from.into(),
            eyes_from_glasses: f.eyes_from_glasses,
            patch_px: side,
            fwhr: f.fwhr.clone().ok(),
            fwhr_reason: f.fwhr.clone().err().unwrap_or_default(),
            left: cheek(&f.left),
            right: cheek(&f.right),
            eyes: f.eyes.iter().map(|e| [e.x, e.y]).collect(),
            label: f.label,
            orientation: head.photo.as_ref().map(|p| p.orientation),
            colour_profile: head.photo.as_ref().map(|p| p.profile.clone()).unwrap_or_default(),
            join_key: head.join_key.clone(),
        }
    }

    /// The patch side for face `f` (`--patch-px` at `--reference-face-width`, scaled by the
    /// face's width, else by 2.6 eye distances; at least 3; 0 with neither), and what it was
    /// scaled from.
    fn patch_side(&self, f: &Face) -> (u32, &'static str) {
        let (scale, scale_from) = match (f.width, f.eye_distance) {
            (Some(wd), _) => (Some(wd), "face width"),
            // the face width of the reference geometry is about 2.6 eye distances
            (None, Some(d)) => (Some(2.6 * d), "eye distance"),
            _ => (None, ""),
        };
        let side = scale.map_or(0, |s| {
            (self.cfg.patch_px * s / self.cfg.reference_face_width).round().max(3.0) as u32
        });
        (side, scale_from)
    }
}
