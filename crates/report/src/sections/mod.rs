//! The page's sections, one per stage output, and the overview at the top.

pub mod cheeks;
pub mod dataset;
pub mod evaluation;
pub mod provenance;
pub mod training;

use facepipe_core::Split;

use crate::html::{Page, num};
use crate::inputs::Inputs;

/// The headline figures of every input given, as cards.
pub fn overview(page: &mut Page, inputs: &Inputs) {
    page.section("overview", "Overview");
    let mut cards = vec![];
    if let Some(m) = &inputs.manifest {
        let items = &m.manifest.items;
        let n = |s: Split| items.iter().filter(|i| i.split == Some(s)).count();
        cards.push((items.len().to_string(), "items".to_string()));
        cards.push((
            format!("{} / {}", n(Split::Train), n(Split::Valid)),
            "train / valid".into(),
        ));
    }
    if let Some(m) = &inputs.model {
        let i = &m.info;
        cards.push((format!("{} {}²", i.arch, i.preprocessing.input_size), "model".into()));
        cards.push((i.epochs.to_string(), "epochs trained".into()));
    }
    if let Some(e) = &inputs.eval
        && let Some(g) = evaluation::headline(&e.info)
    {
        let s = &g.full_resolution;
        cards.push((num(s.mean_iou_fg), format!("{} foreground mean IoU", g.name)));
        cards.push((num(s.pixel_accuracy), format!("{} pixel accuracy", g.name)));
    }
    for c in &inputs.cheeks {
        let i = &c.info;
        cards.push((
            format!(
                "{} / {}",
                i.cheeks_measured,
                i.cheeks_measured + i.cheeks_not_measurable
            ),
            format!("cheeks measured ({})", i.mask_field),
        ));
        if let Some(a) = &i.agreement {
            cards.push((num(a.delta_e2000.median), format!("median ΔE2000 ({})", i.mask_field)));
        }
    }
    page.cards(&cards);
    let given: Vec<&str> = [
        (inputs.manifest.is_some(), "dataset"),
        (inputs.model.is_some(), "training"),
        (inputs.eval.is_some(), "evaluation"),
        (!inputs.cheeks.is_empty(), "cheek colour"),
    ]
    .iter()
    .filter(|(on, _)| !on)
    .map(|(_, s)| *s)
    .collect();
    if !given.is_empty() {
        page.note(&format!("Not given to the report, so not shown: {}.", given.join(", ")));
    }
}
