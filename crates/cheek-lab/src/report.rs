//! `--report`: what was measured and how it compares, as JSON, and its human summary.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};
use facepipe_core::colour::WhitePoint;
use facepipe_core::io::InputFile;
use serde::{Deserialize, Serialize};

use crate::*;
use measure::Averaging;

/// The comparison with the reference, as the report holds it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Agreement {
    pub reference: InputFile,
    pub id_column: String,
    pub join: JoinOn,
    pub faces_joined: usize,
    pub faces_without_reference: usize,
    pub reference_rows_unmatched: usize,
    pub cheeks_compared: usize,
    /// Joined cheeks with a reference value that could not be measured.
    pub cheeks_not_measurable: usize,
    pub delta_e76: reference::Spread,
    pub delta_e2000: reference::Spread,
    pub channels: Vec<reference::Channel>,
}

/// `--report`: what was measured and how it compares.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    pub format: String,
    pub format_version: u32,
    pub input: InputFile,
    pub mask_field: String,
    pub faces_mode: Faces,
    pub white_point: WhitePoint,
    pub averaging: Averaging,
    pub patch_px: f64,
    pub reference_face_width: f64,
    pub min_skin: f64,
    pub items: usize,
    pub faces: usize,
    pub cheeks_measured: usize,
    pub cheeks_not_measurable: usize,
    /// Reasons a cheek was not measurable, with counts.
    pub not_measurable: BTreeMap<String, usize>,
    pub fwhr_measured: usize,
    /// The photos read, by the colour profile applied (`sRGB (no profile)` where a photo has
    /// none and was taken as sRGB, `Display P3 → sRGB`, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub colour_profiles: BTreeMap<String, usize>,
    /// The photos shown turned or flipped by their EXIF orientation.
    #[serde(default)]
    pub photos_oriented: usize,
    pub warnings: Vec<String>,
    pub agreement: Option<Agreement>,
    /// The CSV (`-o`) and QC folder (`--qc-dir`) this run wrote, for readers of the report
    /// (the `report` stage): relative to the report's folder (absolute when the report went to
    /// stdout); absent when written to stdout or not asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csv: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qc_dir: Option<String>,
    /// A shard's measurements (`--shard K/N`): its counts and agreement are its part's only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardPart>,
    /// The shard reports a `--merge` joined.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<ShardRef>,
    pub facepipe_version: String,
}

/// What a shard's report holds so that `--merge` can rebuild the whole run's CSV and
/// agreement: every row at full precision and what the join needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShardPart {
    /// `K/N`.
    pub shard: String,
    /// `--reference` as given (its sha256 is in `agreement.reference`).
    pub reference: Option<String>,
    pub ref_columns: reference::Columns,
    pub join: JoinOn,
    /// The part's items in input order, each with its rows and warnings.
    pub items: Vec<ShardItem>,
}

/// One item of a shard.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShardItem {
    pub id: String,
    pub rows: Vec<FaceRow>,
    pub warnings: Vec<String>,
}

/// One shard of a merged report.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ShardRef {
    pub shard: String,
    pub report: String,
    pub sha256: String,
}

/// Where the scatter plot goes: next to the report.
pub fn scatter_path(report: &Path) -> PathBuf {
    let stem = report.file_stem().unwrap_or_default().to_string_lossy();
    report.with_file_name(format!("{stem}_scatter.png"))
}

/// A short human summary of a report (what `make all` prints).
pub fn summary(path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    ensure!(
        v["format"] == REPORT_FORMAT,
        "{} is not a cheek-lab report",
        path.display()
    );
    let g = |x: &serde_json::Value| x.as_f64().map_or("–".to_string(), |v| format!("{v:.2}"));
    let mut s = format!(
        "cheeks on `{}` ({}): {} faces in {} items, {} cheeks measured, {} not measurable, fWHR on {} faces",
        v["mask_field"].as_str().unwrap_or("?"),
        path.display(),
        v["faces"],
        v["items"],
        v["cheeks_measured"],
        v["cheeks_not_measurable"],
        v["fwhr_measured"]
    );
    if let Some(p) = v.get("colour_profiles").and_then(|p| p.as_object()) {
        let each: Vec<String> = p.iter().map(|(k, n)| format!("{n} {k}")).collect();
        s.push_str(&format!(
            "\n  photos: {}; {} shown turned or flipped by their EXIF orientation",
            each.join(", "),
            v["photos_oriented"]
        ));
    }
    if let Some(a) = v.get("agreement").filter(|a| !a.is_null()) {
        let d = &a["delta_e2000"];
        s.push_str(&format!(
            "\n  vs reference ({} cheeks of {} faces): CIEDE2000 median {}, mean {}, 90th percentile {}; ΔE*ab median {}",
            a["cheeks_compared"],
            a["faces_joined"],
            g(&d["median"]),
            g(&d["mean"]),
            g(&d["p90"]),
            g(&a["delta_e76"]["median"])
        ));
        let ch: Vec<String> = a["channels"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                format!(
                    "{} r {} bias {}",
                    c["channel"].as_str().unwrap_or("?"),
                    g(&c["pearson_r"]),
                    g(&c["mean_bias"])
                )
            })
            .collect();
        s.push_str(&format!("\n  {}", ch.join("; ")));
    }
    Ok(s)
}
