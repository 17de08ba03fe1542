//! `--report`: what was measured and how it compares, as JSON, and its human summary.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

pub use facepipe_formats::cheeks::{Agreement, Report, ShardItem, ShardPart, ShardRef};

/// Where the scatter plot goes: next to the report.
pub fn scatter_path(report: &Path) -> PathBuf {
    let stem = report.file_stem().unwrap_or_default().to_string_lossy();
    report.with_file_name(format!("{stem}_scatter.png"))
}

/// A short human summary of a report (what `make all` prints).
pub fn summary(path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    facepipe_formats::tag::CHEEK_LAB.check(path, &v)?;
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
