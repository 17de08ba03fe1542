//! Every stage that made what the page shows: its version, parameters, inputs with their
//! hashes, and what it counted. The manifest's own record first, then the model's and the
//! cheek-lab runs' (they write no manifest, but their reports say the same).

use std::path::Path;

use facepipe_core::io::InputFile;
use serde_json::{Map, Value, json};

use crate::html::{Cell, Page, esc};
use crate::inputs::Inputs;

/// One stage's line.
struct Row {
    stage: String,
    version: String,
    params: Map<String, Value>,
    inputs: Vec<String>,
    summary: Map<String, Value>,
}

pub fn write(page: &mut Page, inputs: &Inputs) {
    page.section("provenance", "Provenance");
    let mut rows = vec![];
    if let Some(m) = &inputs.manifest {
        let base = Path::new(&m.input.path).parent();
        rows.extend(m.manifest.provenance.iter().map(|s| Row {
            stage: s.stage.clone(),
            version: s.version.clone(),
            params: s.params.clone(),
            inputs: s.inputs.iter().map(|i| shown(i, base)).collect(),
            summary: s.summary.clone(),
        }));
    }
    if let Some(m) = &inputs.model {
        let i = &m.info;
        rows.push(Row {
            stage: "unet-train".into(),
            version: i.facepipe_version.clone(),
            params: object(json!({
                "arch": i.arch, "input_size": i.preprocessing.input_size, "batch_size": i.batch_size,
                "seed": i.seed, "device": i.device, "pretrained": i.pretrained, "recipe": i.recipe,
            })),
            inputs: vec![format!("{} (sha256 {})", i.manifest, i.manifest_sha256)],
            summary: object(json!({"n_train": i.n_train, "n_valid": i.n_valid, "epochs": i.epochs})),
        });
    }
    for c in &inputs.cheeks {
        let i = &c.info;
        let dir = facepipe_core::paths::absolute(&c.path).ok();
        let base = dir.as_deref().and_then(Path::parent);
        let mut files = vec![shown(&i.input, base)];
        files.extend(i.agreement.as_ref().map(|a| shown(&a.reference, base)));
        rows.push(Row {
            stage: "cheek-lab".into(),
            version: i.facepipe_version.clone(),
            params: object(json!({
                "mask_field": i.mask_field, "faces": i.faces_mode, "white": i.white_point,
                "averaging": i.averaging, "patch_px": i.patch_px,
                "reference_face_width": i.reference_face_width, "min_skin": i.min_skin,
            })),
            inputs: files,
            summary: object(json!({
                "faces": i.faces, "cheeks_measured": i.cheeks_measured,
                "cheeks_not_measurable": i.cheeks_not_measurable,
            })),
        });
    }
    if rows.is_empty() {
        page.note("No stage recorded in the inputs given.");
        return;
    }
    let cells: Vec<Vec<Cell>> = rows
        .iter()
        .map(|r| {
            vec![
                Cell::text(&r.stage),
                Cell::text(&r.version),
                Cell::code(&compact(&r.params)),
                Cell {
                    html: r.inputs.iter().map(|i| esc(i)).collect::<Vec<_>>().join("<br>"),
                    class: Some("code"),
                    background: None,
                },
                Cell::code(&compact(&r.summary)),
            ]
        })
        .collect();
    page.table_cells(&["stage", "version", "parameters", "inputs", "summary"], &cells, 2);
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// An input file as `path (bytes, sha256)`, its path relative to `base` where it is inside.
fn shown(i: &InputFile, base: Option<&Path>) -> String {
    let path = match base {
        Some(b) if Path::new(&i.path).is_absolute() => facepipe_core::paths::relative_to(Path::new(&i.path), b)
            .display()
            .to_string(),
        _ => i.path.clone(),
    };
    format!("{path} ({} bytes, sha256 {})", i.bytes, i.sha256)
}

/// A JSON object on one line, `key: value` separated by commas.
fn compact(map: &Map<String, Value>) -> String {
    map.iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}
