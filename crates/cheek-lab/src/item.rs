//! One item: its photo and mask read, its faces found ([`crate::faces`]) and each measured
//! ([`crate::measure`]) into a row of the CSV.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};
use facepipe_core::Item;

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
        }
    }
}

/// Reads a photo as 8-bit sRGB; warns when it embeds an ICC profile that is not sRGB.
fn read_photo(path: &Path) -> Result<(image::RgbImage, Option<String>)> {
    use image::ImageDecoder as _;
    let shown = path.display();
    let mut dec = facepipe_core::images::decoder(path, "image")?;
    let icc = dec.icc_profile().ok().flatten();
    let warn = icc.filter(|p| !p.windows(4).any(|w| w == b"sRGB")).map(|_| {
        format!("image {shown} embeds an ICC profile that is not sRGB; its values are measured as if they were sRGB")
    });
    let img = image::DynamicImage::from_decoder(dec)
        .with_context(|| format!("cannot decode image {shown}"))?
        .to_rgb8();
    Ok((img, warn))
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
        let head = RowHead {
            id: &it.id,
            image: shown(&image),
            mask: shown(&mask),
        };
        let (mut rows, warning) = match (&image, &mask) {
            (Some(i), Some(m)) => self.faces(&head, i, m)?,
            _ => {
                let why = if image.is_none() {
                    "item has no image".to_string()
                } else {
                    format!("item has no {}", self.cfg.mask_field)
                };
                (vec![head.without_face(&why)], None)
            }
        };
        if rows.is_empty() {
            rows.push(head.without_face("no face in the mask"));
        }
        Ok(ItemResult {
            rows,
            warnings: warning.into_iter().collect(),
            image,
            mask,
        })
    }

    /// Reads the photo and its mask (they must be the same size), finds the faces and measures
    /// them; returns the rows and the photo's warning.
    fn faces(&self, head: &RowHead, image: &Path, mask_path: &Path) -> Result<(Vec<FaceRow>, Option<String>)> {
        let (photo, warn) = read_photo(image)?;
        let mask = facepipe_core::mask::read(mask_path, self.n_classes)?;
        ensure!(
            photo.dimensions() == mask.dimensions(),
            "image {} is {}×{} but its {} {} is {}×{}",
            image.display(),
            photo.width(),
            photo.height(),
            self.cfg.mask_field,
            mask_path.display(),
            mask.width(),
            mask.height()
        );
        let (w, h) = (photo.width() as usize, photo.height() as usize);
        let (labels, found) = faces::find_faces(mask.as_raw(), w, h, self.roles, &self.cfg.placement);
        let wanted = if self.cfg.faces == Faces::Largest {
            1
        } else {
            found.len()
        };
        let rows = (found.iter().enumerate().take(wanted))
            .map(|(k, f)| {
                let skin = SkinOf {
                    photo: &photo,
                    mask: mask.as_raw(),
                    labels: &labels,
                    label: f.label,
                    skin: self.roles.skin,
                };
                self.face_row(head, (k, found.len()), f, &skin)
            })
            .collect();
        Ok((rows, warn))
    }

    /// Face `k` of `n` found: its patches placed, scaled and measured.
    fn face_row(&self, head: &RowHead, (k, n): (usize, usize), f: &Face, skin: &SkinOf) -> FaceRow {
        let (side, scale_from) = self.patch_side(f);
        let how = Method {
            min_skin: self.cfg.min_skin,
            white: self.cfg.white,
            averaging: self.cfg.averaging,
        };
        let cheek = |c: &Cheek| -> CheekResult {
            match c {
                Cheek::Missing(why) => CheekResult::missing(why),
                Cheek::At(p) => measure::measure(skin, *p, side, &how),
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
            eyes: f.eyes.clone(),
            label: f.label,
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
