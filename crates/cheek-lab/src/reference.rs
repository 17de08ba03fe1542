//! Reference measurements: a CSV with one row per face, joined on an id column, and how far
//! the measurements are from it.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result, bail};

pub use facepipe_formats::cheeks::Columns;

/// One reference row.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// 1-based line number in the file.
    pub line: usize,
    /// `None` where the cell was empty (no hand measurement).
    pub left: Option<[f64; 3]>,
    pub right: Option<[f64; 3]>,
    /// Every column, as text (carried into the output).
    pub fields: Vec<String>,
}

/// A reference file, read and checked.
#[derive(Clone, Debug)]
pub struct Reference {
    pub header: Vec<String>,
    pub rows: HashMap<String, Row>,
    /// Values outside what L*a*b* measurements of skin can be (L* outside 0–100, |a*| or
    /// |b*| over 128), one line each: a typo or another scale, kept and warned about.
    pub warnings: Vec<String>,
}

/// Warnings for a cheek's values outside the L*a*b* range.
fn out_of_range(shown: &str, line: usize, names: &[String; 3], v: Option<[f64; 3]>) -> Vec<String> {
    let Some([l, a, b]) = v else { return vec![] };
    let mut w = vec![];
    if !(0.0..=100.0).contains(&l) {
        w.push(format!(
            "{shown}:{line}: {} is {l}, outside L*'s 0–100: a typo, or another scale?",
            names[0]
        ));
    }
    for (name, x) in [(&names[1], a), (&names[2], b)] {
        if x.abs() > 128.0 {
            w.push(format!(
                "{shown}:{line}: {name} is {x}, beyond ±128: a typo, or another scale?"
            ));
        }
    }
    w
}

fn parse_cell(shown: &str, line: usize, col: &str, s: &str) -> Result<Option<f64>> {
    let t = s.trim();
    if t.is_empty() || t.eq_ignore_ascii_case("na") || t.eq_ignore_ascii_case("nan") {
        return Ok(None);
    }
    match t.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(Some(v)),
        _ => bail!("{shown}:{line}: column {col:?}: {s:?} is not a number"),
    }
}

/// Reads a reference CSV; errors name the file, the line and the column.
pub fn read(path: &Path, cols: &Columns) -> Result<Reference> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read reference {}", path.display()))?;
    parse(&bytes, &path.display().to_string(), cols)
}

/// Parses a reference CSV's bytes (`shown` names it in errors). Any input gives a reference
/// or an error, never a panic (what `facepipe-fuzz` checks).
pub fn parse(bytes: &[u8], shown: &str, cols: &Columns) -> Result<Reference> {
    let mut r = csv::ReaderBuilder::new().flexible(false).from_reader(bytes);
    let header: Vec<String> = r
        .headers()
        .with_context(|| format!("reference {shown}: no header row"))?
        .iter()
        .map(|s| s.trim().trim_start_matches('\u{feff}').to_string())
        .collect();
    for (i, h) in header.iter().enumerate() {
        if let Some(j) = header[..i].iter().position(|x| x == h) {
            bail!(
                "reference {shown}: column {h:?} appears twice (columns {} and {}); column names must be unique",
                j + 1,
                i + 1
            );
        }
    }
    let find = |name: &str| -> Result<usize> {
        header.iter().position(|h| h == name).with_context(|| {
            format!(
                "reference {shown} has no column {name:?} (columns: {}); name it with the --ref-* flags",
                header.join(", ")
            )
        })
    };
    let id = find(&cols.id)?;
    let left = [find(&cols.left[0])?, find(&cols.left[1])?, find(&cols.left[2])?];
    let right = [find(&cols.right[0])?, find(&cols.right[1])?, find(&cols.right[2])?];
    let mut rows: HashMap<String, Row> = HashMap::new();
    let mut warnings = Vec::new();
    for (k, rec) in r.records().enumerate() {
        let rec = rec.map_err(|e| match e.position() {
            Some(p) => anyhow::anyhow!("{shown}:{}: {}", p.line(), csv_problem(&e)),
            None => anyhow::anyhow!("reference {shown}: {}", csv_problem(&e)),
        })?;
        let line = rec.position().map_or(k + 2, |p| p.line() as usize);
        let key = rec.get(id).unwrap_or("").trim().to_string();
        if key.is_empty() {
            bail!("{shown}:{line}: empty {:?}", cols.id);
        }
        let side = |idx: [usize; 3], names: &[String; 3]| -> Result<Option<[f64; 3]>> {
            let v = [0, 1, 2].map(|c| parse_cell(shown, line, &names[c], rec.get(idx[c]).unwrap_or("")));
            let [a, b, c] = v;
            match (a?, b?, c?) {
                (Some(l), Some(a), Some(b)) => Ok(Some([l, a, b])),
                (None, None, None) => Ok(None),
                _ => bail!(
                    "{shown}:{line}: a cheek with some of L*, a*, b* missing ({})",
                    names.join(", ")
                ),
            }
        };
        let row = Row {
            line,
            left: side(left, &cols.left)?,
            right: side(right, &cols.right)?,
            fields: rec.iter().map(str::to_string).collect(),
        };
        warnings.extend(out_of_range(shown, line, &cols.left, row.left));
        warnings.extend(out_of_range(shown, line, &cols.right, row.right));
        if let Some(prev) = rows.insert(key.clone(), row) {
            bail!(
                "{shown}:{line}: id {key:?} appears again (first on line {}): ids must be unique",
                prev.line
            );
        }
    }
    Ok(Reference { header, rows, warnings })
}

/// A CSV error without the position (the caller puts `file:line` first).
fn csv_problem(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
            format!("{len} fields, but the header has {expected_len}")
        }
        csv::ErrorKind::Utf8 { .. } => "not valid UTF-8".into(),
        _ => e.to_string(),
    }
}

pub use facepipe_formats::cheeks::{Channel, Spread};

/// Linear-interpolated quantile (numpy's default) of sorted values.
fn quantile_sorted(v: &[f64], q: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let pos = (v.len() - 1) as f64 * q;
    let (i, f) = (pos.floor() as usize, pos.fract());
    Some(if i + 1 < v.len() {
        v[i] + (v[i + 1] - v[i]) * f
    } else {
        v[i]
    })
}

pub fn spread(values: &[f64]) -> Spread {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    Spread {
        n: v.len(),
        median: quantile_sorted(&v, 0.5),
        mean: (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64),
        p90: quantile_sorted(&v, 0.9),
        max: v.last().copied(),
    }
}

/// Pearson's correlation; `None` with fewer than 3 pairs or no variance.
pub fn pearson(x: &[f64], y: &[f64]) -> Option<f64> {
    let n = x.len();
    if n < 3 || n != y.len() {
        return None;
    }
    let (mx, my) = (x.iter().sum::<f64>() / n as f64, y.iter().sum::<f64>() / n as f64);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx).powi(2);
        syy += (b - my).powi(2);
    }
    (sxx > 0.0 && syy > 0.0).then(|| sxy / (sxx * syy).sqrt())
}

pub fn channel(name: &str, measured: &[f64], reference: &[f64]) -> Channel {
    let n = measured.len();
    let d: Vec<f64> = measured.iter().zip(reference).map(|(m, r)| m - r).collect();
    Channel {
        channel: name.into(),
        n,
        pearson_r: pearson(measured, reference),
        mean_bias: (n > 0).then(|| d.iter().sum::<f64>() / n as f64),
        mean_abs_diff: (n > 0).then(|| d.iter().map(|x| x.abs()).sum::<f64>() / n as f64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) -> std::path::PathBuf {
        let p = dir.join("ref.csv");
        std::fs::write(&p, text).unwrap();
        p
    }

    const HEAD: &str =
        "participant_id,age,left_cheek_L,left_cheek_a,left_cheek_b,right_cheek_L,right_cheek_a,right_cheek_b\n";

    #[test]
    fn reads_rows_and_empty_cells() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            &format!("{HEAD}a#0,30,60,12,15,61,12.5,15.5\nb#0,41,,,,55,10,14\n"),
        );
        let r = read(&p, &Columns::default()).unwrap();
        assert_eq!(r.rows["a#0"].left, Some([60.0, 12.0, 15.0]));
        assert_eq!(r.rows["b#0"].left, None);
        assert_eq!(r.rows["b#0"].right, Some([55.0, 10.0, 14.0]));
        assert_eq!(r.rows["b#0"].fields[1], "41");
    }

    #[test]
    fn values_outside_lab_are_kept_and_warned_about() {
        let cols = Columns::default();
        let h = "participant_id,left_cheek_L,left_cheek_a,left_cheek_b,right_cheek_L,right_cheek_a,right_cheek_b\n";
        let r = parse(
            format!("{h}a,250,10,20,60,10,-140\nb,60,10,20,60,10,20\n").as_bytes(),
            "ref.csv",
            &cols,
        )
        .unwrap();
        assert_eq!(r.rows.len(), 2);
        assert_eq!(r.warnings.len(), 2, "{:?}", r.warnings);
        assert!(
            r.warnings[0].starts_with("ref.csv:2: left_cheek_L is 250, outside L*'s 0–100"),
            "{:?}",
            r.warnings
        );
        assert!(
            r.warnings[1].contains("right_cheek_b is -140, beyond ±128"),
            "{:?}",
            r.warnings
        );
    }

    #[test]
    fn problems_are_named_with_file_line_and_column() {
        let d = tempfile::tempdir().unwrap();
        let cols = Columns::default();
        let e = |text: &str| read(&write(d.path(), text), &cols).unwrap_err().to_string();
        let missing = e("id,left_cheek_L\nx,1\n");
        assert!(
            missing.contains("no column \"participant_id\"") && missing.contains("ref.csv"),
            "{missing}"
        );
        let dup = e(&format!("{HEAD}a,1,1,1,1,1,1,1\na,1,1,1,1,1,1,1\n"));
        assert!(dup.contains(":3: id \"a\" appears again (first on line 2)"), "{dup}");
        let nan = e(&format!("{HEAD}a,1,6o,1,1,1,1,1\n"));
        assert!(
            nan.contains("ref.csv:2: column \"left_cheek_L\": \"6o\" is not a number"),
            "{nan}"
        );
        let part = e(&format!("{HEAD}a,1,60,,1,1,1,1\n"));
        assert!(part.contains("some of L*, a*, b* missing"), "{part}");
        let ragged = e(&format!("{HEAD}a,1,60\n"));
        assert!(ragged.contains("ref.csv:2"), "{ragged}");
    }

    #[test]
    fn statistics() {
        let s = spread(&[3.0, 1.0, 2.0, 4.0]);
        assert_eq!((s.n, s.median, s.mean, s.max), (4, Some(2.5), Some(2.5), Some(4.0)));
        assert!((s.p90.unwrap() - 3.7).abs() < 1e-12);
        assert_eq!(spread(&[]).median, None);
        assert!((pearson(&[1.0, 2.0, 3.0], &[2.0, 4.0, 6.0]).unwrap() - 1.0).abs() < 1e-12);
        assert!((pearson(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]).unwrap() + 1.0).abs() < 1e-12);
        assert_eq!(pearson(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]), None);
        let c = channel("L", &[51.0, 52.0, 50.0], &[50.0, 50.0, 50.0]);
        assert_eq!(
            (c.mean_bias, c.mean_abs_diff, c.pearson_r),
            (Some(1.0), Some(1.0), None)
        );
    }
}
