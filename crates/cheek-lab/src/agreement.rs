//! The join with the reference and what a whole run and a merge both compute from all rows:
//! counts, ΔE statistics and the CSV.

use std::collections::BTreeMap;

use anyhow::Result;
use facepipe_core::colour;
use facepipe_core::io::InputFile;

use crate::table::csv_bytes;
use crate::*;

/// Reference values, ΔE and the reference row of each face (by index into `rows`).
pub(crate) struct Joined<'a> {
    pub(crate) per_face: Vec<Option<&'a reference::Row>>,
    pub(crate) agreement: Agreement,
}

pub(crate) fn join<'a>(
    rows: &[FaceRow],
    r: &'a reference::Reference,
    on: &JoinOn,
    id_column: &str,
    input: InputFile,
) -> Joined<'a> {
    let per_face: Vec<Option<&reference::Row>> = rows
        .iter()
        .map(|row| join_key(row, on).and_then(|k| r.rows.get(&k)))
        .collect();
    let used: std::collections::HashSet<String> = rows
        .iter()
        .zip(&per_face)
        .filter(|(_, m)| m.is_some())
        .filter_map(|(row, _)| join_key(row, on))
        .collect();
    let (mut de76, mut de00) = (Vec::new(), Vec::new());
    let mut ch: [(Vec<f64>, Vec<f64>); 3] = Default::default();
    let (mut compared, mut not_measurable) = (0, 0);
    for (row, m) in rows.iter().zip(&per_face) {
        let Some(m) = m else { continue };
        for (res, refv) in [(&row.left, m.left), (&row.right, m.right)] {
            let Some(rv) = refv else { continue };
            match res.lab {
                Some(lab) => {
                    compared += 1;
                    de76.push(colour::delta_e76(lab, rv));
                    de00.push(colour::ciede2000(lab, rv));
                    for c in 0..3 {
                        ch[c].0.push(lab[c]);
                        ch[c].1.push(rv[c]);
                    }
                }
                None => not_measurable += 1,
            }
        }
    }
    let joined = per_face.iter().filter(|m| m.is_some()).count();
    Joined {
        agreement: Agreement {
            reference: input,
            id_column: id_column.to_string(),
            join: on.clone(),
            faces_joined: joined,
            faces_without_reference: rows
                .iter()
                .zip(&per_face)
                .filter(|(r, m)| r.faces_in_image > 0 && m.is_none())
                .count(),
            reference_rows_unmatched: r.rows.len() - used.len(),
            cheeks_compared: compared,
            cheeks_not_measurable: not_measurable,
            delta_e76: reference::spread(&de76),
            delta_e2000: reference::spread(&de00),
            channels: ["L*", "a*", "b*"]
                .iter()
                .zip(&ch)
                .map(|(n, (m, r))| reference::channel(n, m, r))
                .collect(),
        },
        per_face,
    }
}

/// A face's key into the reference (none for an item without the field joined on).
pub(crate) fn join_key(row: &FaceRow, on: &JoinOn) -> Option<String> {
    match on {
        JoinOn::FaceId => Some(row.face_id.clone()),
        JoinOn::Id => Some(row.id.clone()),
        JoinOn::Field(_) => row.join_key.clone(),
    }
}

/// The reference as read: its rows, its provenance record and the path as the user gave it.
pub(crate) struct RefInput<'a> {
    pub data: &'a reference::Reference,
    pub input: &'a InputFile,
    pub shown: &'a str,
    pub columns: &'a reference::Columns,
    pub join: JoinOn,
}

/// Counts, agreement and CSV of every row: what a whole run and a merge compute alike.
/// `head` holds the settings; its counts are filled in here.
pub(crate) fn assemble<'a>(
    mut head: Report,
    rows: &[FaceRow],
    mut warnings: Vec<String>,
    reference: Option<&RefInput<'a>>,
) -> Result<(Report, Vec<u8>, Option<Joined<'a>>)> {
    // the reference's values outside L*a*b* (a whole run and a merge alike)
    if let Some(r) = reference {
        for w in &r.data.warnings {
            log::warn!("{w}");
            warnings.push(w.clone());
        }
    }
    let joined = reference.map(|r| join(rows, r.data, &r.join, &r.columns.id, r.input.clone()));
    if let (Some(j), Some(r)) = (&joined, reference)
        && j.agreement.faces_joined == 0
    {
        let example = r.data.rows.keys().min().cloned().unwrap_or_default();
        let ours = rows.first().and_then(|row| join_key(row, &r.join));
        let other = if r.join == JoinOn::FaceId { "id" } else { "face-id" };
        let w = format!(
            "reference {}: none of its {} ids matches a face (its ids look like {example:?}, the faces' like {:?}); with --join {} the id is {}; is it the right file, or should --join be {other} or an item field?",
            r.shown,
            r.data.rows.len(),
            ours.unwrap_or_default(),
            r.join,
            r.join.describe(),
        );
        log::warn!("{w}");
        warnings.push(w);
    }
    let mut not_measurable = BTreeMap::new();
    let (mut measured, mut missing) = (0, 0);
    for row in rows {
        for c in [&row.left, &row.right] {
            if c.lab.is_some() {
                measured += 1;
            } else {
                missing += 1;
                *not_measurable.entry(c.reason.clone()).or_insert(0) += 1;
            }
        }
    }
    head.faces = rows.iter().filter(|r| r.faces_in_image > 0).count();
    head.cheeks_measured = measured;
    head.cheeks_not_measurable = missing;
    head.not_measurable = not_measurable;
    head.fwhr_measured = rows.iter().filter(|r| r.fwhr.is_some()).count();
    // one row per photo read: its first face (or the row saying it has none)
    let photos = || rows.iter().filter(|r| r.face == 0 && r.orientation.is_some());
    head.colour_profiles = BTreeMap::new();
    for r in photos() {
        *head.colour_profiles.entry(r.colour_profile.clone()).or_insert(0) += 1;
    }
    head.photos_oriented = photos().filter(|r| r.orientation != Some(1)).count();
    head.warnings = warnings;
    head.agreement = joined.as_ref().map(|j| j.agreement.clone());
    let columns = reference.map_or_else(reference::Columns::default, |r| r.columns.clone());
    let csv = csv_bytes(rows, joined.as_ref().zip(reference).map(|(j, r)| (j, r.data)), &columns)?;
    Ok((head, csv, joined))
}
