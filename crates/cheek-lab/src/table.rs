//! The CSV: one row per face, with the reference's values and ΔE where joined.
//!
//! A row is records the csv crate serializes one after the other: the face's own columns
//! ([`FaceColumns`]), each cheek's ([`CheekColumns`], left then right), with a reference each
//! cheek's reference values and ΔE ([`RefColumns`]) and the reference's other columns. The
//! header is the records' field names (a cheek's prefixed `left_`/`right_`), written first so
//! that a CSV without rows has it too. Numbers with decimals are written with a fixed number of
//! them ([`fixed`]), as the reference measurements are.

use anyhow::Result;
use facepipe_core::colour;
use serde::{Serialize, Serializer};

use crate::measure::CheekResult;
use crate::reference::{Columns, Reference, Row};
use crate::{FaceRow, Joined};

/// The CSV header's first fields: how a previous output is recognised.
pub(crate) const CSV_SIGNATURE: &str = "id,face,face_id,image,mask,";

/// serde `serialize_with`: a number with `D` decimals, or an empty field.
fn fixed<const D: usize, S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.serialize_str(&format!("{v:.prec$}", prec = D)),
        None => s.serialize_str(""),
    }
}

/// A face's own columns.
#[derive(Default, Serialize)]
struct FaceColumns<'a> {
    id: &'a str,
    face: usize,
    face_id: &'a str,
    image: &'a str,
    mask: &'a str,
    faces_in_image: usize,
    face_pixels: usize,
    #[serde(serialize_with = "fixed::<1, _>")]
    eye_distance_px: Option<f64>,
    #[serde(serialize_with = "fixed::<1, _>")]
    face_width_px: Option<f64>,
    patch_scaled_from: &'a str,
    eyes_from_glasses: bool,
    patch_px: u32,
    #[serde(serialize_with = "fixed::<4, _>")]
    fwhr: Option<f64>,
    fwhr_reason: &'a str,
    orientation: Option<u8>,
    colour_profile: &'a str,
}

impl<'a> From<&'a FaceRow> for FaceColumns<'a> {
    fn from(row: &'a FaceRow) -> Self {
        FaceColumns {
            id: &row.id,
            face: row.face,
            face_id: &row.face_id,
            image: &row.image,
            mask: &row.mask,
            faces_in_image: row.faces_in_image,
            face_pixels: row.face_pixels,
            eye_distance_px: row.eye_distance_px,
            face_width_px: row.face_width_px,
            patch_scaled_from: &row.scale_from,
            eyes_from_glasses: row.eyes_from_glasses,
            patch_px: row.patch_px,
            fwhr: row.fwhr,
            fwhr_reason: &row.fwhr_reason,
            orientation: row.orientation,
            colour_profile: &row.colour_profile,
        }
    }
}

/// One cheek's columns: its colour, the patch and ITA°.
#[derive(Default, Serialize)]
struct CheekColumns<'a> {
    status: &'a str,
    reason: &'a str,
    #[serde(rename = "L", serialize_with = "fixed::<4, _>")]
    l: Option<f64>,
    #[serde(serialize_with = "fixed::<4, _>")]
    a: Option<f64>,
    #[serde(serialize_with = "fixed::<4, _>")]
    b: Option<f64>,
    #[serde(rename = "L_sd", serialize_with = "fixed::<4, _>")]
    l_sd: Option<f64>,
    #[serde(serialize_with = "fixed::<4, _>")]
    a_sd: Option<f64>,
    #[serde(serialize_with = "fixed::<4, _>")]
    b_sd: Option<f64>,
    pixels: u32,
    x0: Option<u32>,
    y0: Option<u32>,
    x1: Option<u32>,
    y1: Option<u32>,
    #[serde(serialize_with = "fixed::<2, _>")]
    ita: Option<f64>,
    ita_category: &'static str,
}

impl<'a> From<&'a CheekResult> for CheekColumns<'a> {
    fn from(c: &'a CheekResult) -> Self {
        let [l, a, b] = c.lab.map_or([None; 3], |v| v.map(Some));
        let [l_sd, a_sd, b_sd] = c.sd.map_or([None; 3], |v| v.map(Some));
        let [x0, y0, x1, y1] = c.patch.map_or([None; 4], |v| v.map(Some));
        CheekColumns {
            status: &c.status,
            reason: &c.reason,
            l,
            a,
            b,
            l_sd,
            a_sd,
            b_sd,
            pixels: c.pixels,
            x0,
            y0,
            x1,
            y1,
            ita: c.ita,
            ita_category: c.ita.map(colour::ita_category).unwrap_or(""),
        }
    }
}

/// One cheek's reference values and how far the measurement is from them.
#[derive(Default, Serialize)]
struct RefColumns {
    #[serde(rename = "ref_L", serialize_with = "fixed::<4, _>")]
    ref_l: Option<f64>,
    #[serde(serialize_with = "fixed::<4, _>")]
    ref_a: Option<f64>,
    #[serde(serialize_with = "fixed::<4, _>")]
    ref_b: Option<f64>,
    #[serde(rename = "dE76", serialize_with = "fixed::<4, _>")]
    de76: Option<f64>,
    #[serde(rename = "dE2000", serialize_with = "fixed::<4, _>")]
    de2000: Option<f64>,
}

impl RefColumns {
    /// Cheek `c` against its reference values `rv` (either may be missing).
    fn new(c: &CheekResult, rv: Option<[f64; 3]>) -> Self {
        let both = c.lab.zip(rv);
        RefColumns {
            ref_l: rv.map(|v| v[0]),
            ref_a: rv.map(|v| v[1]),
            ref_b: rv.map(|v| v[2]),
            de76: both.map(|(a, b)| colour::delta_e76(a, b)),
            de2000: both.map(|(a, b)| colour::ciede2000(a, b)),
        }
    }
}

/// One CSV row, as the csv crate serializes it: each part's fields in turn.
type Record<'a> = (FaceColumns<'a>, [CheekColumns<'a>; 2], Vec<RefColumns>, Vec<&'a str>);

/// The row of `row`; with a reference, `joined` holds the face's reference row (if any) and
/// the indices of the reference columns carried.
fn record<'a>(row: &'a FaceRow, joined: Option<(Option<&'a Row>, &[usize])>) -> Record<'a> {
    let cheeks = [CheekColumns::from(&row.left), CheekColumns::from(&row.right)];
    let (refs, carried) = match joined {
        Some((m, carried)) => (
            vec![
                RefColumns::new(&row.left, m.and_then(|m| m.left)),
                RefColumns::new(&row.right, m.and_then(|m| m.right)),
            ],
            carried
                .iter()
                .map(|&i| m.map_or("", |m| m.fields[i].as_str()))
                .collect(),
        ),
        None => (vec![], vec![]),
    };
    (FaceColumns::from(row), cheeks, refs, carried)
}

/// The header the csv crate writes for a record type: its serde field names, read back.
fn column_names<T: Serialize + Default>() -> Result<Vec<String>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.serialize(T::default())?;
    let bytes = w.into_inner()?;
    let header = csv::Reader::from_reader(bytes.as_slice()).headers()?.clone();
    Ok(header.iter().map(String::from).collect())
}

/// The header: the face's columns, each cheek's, and with a reference each cheek's reference
/// columns and the reference's carried columns as `ref.NAME`.
fn header(reference: Option<(&Reference, &[usize])>) -> Result<Vec<String>> {
    let sided = |names: Vec<String>| -> Vec<String> {
        ["left", "right"]
            .iter()
            .flat_map(|s| names.iter().map(move |c| format!("{s}_{c}")))
            .collect()
    };
    let mut header = column_names::<FaceColumns>()?;
    header.extend(sided(column_names::<CheekColumns>()?));
    if let Some((r, carried)) = reference {
        header.extend(sided(column_names::<RefColumns>()?));
        header.extend(carried.iter().map(|&i| format!("ref.{}", r.header[i])));
    }
    Ok(header)
}

/// The reference's columns carried into the CSV: all but the id and the cheeks' L*a*b*.
fn carried_columns(r: &Reference, cols: &Columns) -> Vec<usize> {
    let skip: Vec<&String> = std::iter::once(&cols.id).chain(&cols.left).chain(&cols.right).collect();
    (0..r.header.len()).filter(|&i| !skip.contains(&&r.header[i])).collect()
}

/// The CSV, one row per face.
pub(crate) fn csv_bytes(rows: &[FaceRow], joined: Option<(&Joined, &Reference)>, cols: &Columns) -> Result<Vec<u8>> {
    let carried = joined.map_or_else(Vec::new, |(_, r)| carried_columns(r, cols));
    let mut w = csv::WriterBuilder::new().has_headers(false).from_writer(Vec::new());
    w.write_record(header(joined.map(|(_, r)| (r, carried.as_slice())))?)?;
    for (k, row) in rows.iter().enumerate() {
        w.serialize(record(row, joined.map(|(j, _)| (j.per_face[k], carried.as_slice()))))?;
    }
    Ok(w.into_inner()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_is_the_records_field_names_each_cheek_prefixed() {
        let h = header(None).unwrap().join(",");
        assert!(h.starts_with(CSV_SIGNATURE));
        let cheek = "status,reason,L,a,b,L_sd,a_sd,b_sd,pixels,x0,y0,x1,y1,ita,ita_category";
        let sided = |s: &str| {
            cheek
                .split(',')
                .map(|c| format!("{s}_{c}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        let face = "id,face,face_id,image,mask,faces_in_image,face_pixels,eye_distance_px,face_width_px,\
                    patch_scaled_from,eyes_from_glasses,patch_px,fwhr,fwhr_reason,orientation,colour_profile";
        assert_eq!(h, format!("{face},{},{}", sided("left"), sided("right")));
    }
}
