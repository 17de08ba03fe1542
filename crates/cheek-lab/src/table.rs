//! The CSV: one row per face, with the reference's values and ΔE where joined.

use anyhow::Result;
use facepipe_core::colour;

use crate::*;

pub(crate) fn f(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(String::new, |v| format!("{v:.digits$}"))
}

/// The CSV, one row per face.
pub(crate) fn csv_bytes(
    rows: &[FaceRow],
    joined: Option<(&Joined, &reference::Reference)>,
    cols: &reference::Columns,
) -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header: Vec<String> = [
        "id",
        "face",
        "face_id",
        "image",
        "mask",
        "faces_in_image",
        "face_pixels",
        "eye_distance_px",
        "face_width_px",
        "patch_scaled_from",
        "eyes_from_glasses",
        "patch_px",
        "fwhr",
        "fwhr_reason",
    ]
    .map(String::from)
    .to_vec();
    let side_cols = [
        "status",
        "reason",
        "L",
        "a",
        "b",
        "L_sd",
        "a_sd",
        "b_sd",
        "pixels",
        "x0",
        "y0",
        "x1",
        "y1",
        "ita",
        "ita_category",
    ];
    for s in ["left", "right"] {
        header.extend(side_cols.iter().map(|c| format!("{s}_{c}")));
    }
    let ref_keep: Vec<usize> = match joined {
        Some((_, r)) => {
            for s in ["left", "right"] {
                header.extend(["ref_L", "ref_a", "ref_b", "dE76", "dE2000"].map(|c| format!("{s}_{c}")));
            }
            let skip: Vec<&String> = std::iter::once(&cols.id).chain(&cols.left).chain(&cols.right).collect();
            let keep: Vec<usize> = (0..r.header.len()).filter(|&i| !skip.contains(&&r.header[i])).collect();
            header.extend(keep.iter().map(|&i| format!("ref.{}", r.header[i])));
            keep
        }
        None => vec![],
    };
    w.write_record(&header)?;
    for (k, row) in rows.iter().enumerate() {
        let mut rec = vec![
            row.id.clone(),
            row.face.to_string(),
            row.face_id.clone(),
            row.image.clone(),
            row.mask.clone(),
            row.faces_in_image.to_string(),
            row.face_pixels.to_string(),
            f(row.eye_distance_px, 1),
            f(row.face_width_px, 1),
            row.scale_from.to_string(),
            row.eyes_from_glasses.to_string(),
            row.patch_px.to_string(),
            f(row.fwhr, 4),
            row.fwhr_reason.clone(),
        ];
        for c in [&row.left, &row.right] {
            let lab = |i: usize| f(c.lab.map(|v| v[i]), 4);
            let sd = |i: usize| f(c.sd.map(|v| v[i]), 4);
            let b = |i: usize| c.patch.map_or(String::new(), |p| p[i].to_string());
            rec.extend([
                c.status.to_string(),
                c.reason.clone(),
                lab(0),
                lab(1),
                lab(2),
                sd(0),
                sd(1),
                sd(2),
                c.pixels.to_string(),
                b(0),
                b(1),
                b(2),
                b(3),
                f(c.ita, 2),
                c.ita.map(colour::ita_category).unwrap_or("").to_string(),
            ]);
        }
        if let Some((j, _)) = joined {
            let m = j.per_face[k];
            for (c, rv) in [
                (&row.left, m.and_then(|m| m.left)),
                (&row.right, m.and_then(|m| m.right)),
            ] {
                let both = c.lab.zip(rv);
                rec.extend([
                    f(rv.map(|v| v[0]), 4),
                    f(rv.map(|v| v[1]), 4),
                    f(rv.map(|v| v[2]), 4),
                    f(both.map(|(a, b)| colour::delta_e76(a, b)), 4),
                    f(both.map(|(a, b)| colour::ciede2000(a, b)), 4),
                ]);
            }
            rec.extend(
                ref_keep
                    .iter()
                    .map(|&i| m.map_or(String::new(), |m| m.fields[i].clone())),
            );
        }
        w.write_record(&rec)?;
    }
    Ok(w.into_inner()?)
}

/// The CSV header's first fields: how a previous output is recognised.
pub(crate) const CSV_SIGNATURE: &str = "id,face,face_id,image,mask,";
