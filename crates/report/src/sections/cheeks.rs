//! The cheeks: what was measured, why some were not, and the agreement with the reference.

use crate::html::{Page, num};
use facepipe_formats::cheeks::Spread;

use crate::inputs::Cheeks;
use crate::svg::{Agreement, colour};

/// The warnings shown per report (the rest are counted).
const WARNINGS_SHOWN: usize = 20;

pub fn write(page: &mut Page, cheeks: &[Cheeks]) {
    page.section("cheeks", "Cheek colour");
    if cheeks.is_empty() {
        page.note("No cheek-lab report given (--cheeks).");
    }
    for c in cheeks {
        one(page, c);
    }
}

fn one(page: &mut Page, c: &Cheeks) {
    let i = &c.info;
    page.h3(&format!("On {} ({})", i.mask_field, c.path.display()));
    let mut cards = vec![
        (i.faces.to_string(), format!("faces in {} items", i.items)),
        (i.cheeks_measured.to_string(), "cheeks measured".to_string()),
        (i.cheeks_not_measurable.to_string(), "not measurable".into()),
        (i.fwhr_measured.to_string(), "fWHR measured".into()),
    ];
    if let Some(a) = &i.agreement {
        cards.push((num(a.delta_e2000.median), "median ΔE2000".into()));
        cards.push((num(a.delta_e2000.p90), "90th percentile ΔE2000".into()));
    }
    page.cards(&cards);
    page.p(&format!("L*a*b* under {:?}.", i.white_point));
    if !i.not_measurable.is_empty() {
        let mut reasons: Vec<(&String, &usize)> = i.not_measurable.iter().collect();
        reasons.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let rows: Vec<Vec<String>> = reasons
            .iter()
            .map(|(r, n)| vec![r.to_string(), n.to_string()])
            .collect();
        page.table(&["why not measurable", "cheeks"], &rows, 1);
    }
    match &i.agreement {
        Some(a) => {
            page.p(&format!(
                "Against the reference: {} faces joined, {} without a reference, {} cheeks compared.",
                a.faces_joined, a.faces_without_reference, a.cheeks_compared
            ));
            let spread = |name: &str, s: &Spread| {
                vec![
                    name.to_string(),
                    s.n.to_string(),
                    num(s.median),
                    num(s.mean),
                    num(s.p90),
                    num(s.max),
                ]
            };
            page.table(
                &["colour difference", "cheeks", "median", "mean", "90th pct", "max"],
                &[spread("ΔE*ab (1976)", &a.delta_e76), spread("ΔE2000", &a.delta_e2000)],
                1,
            );
            let rows: Vec<Vec<String>> = a
                .channels
                .iter()
                .map(|ch| {
                    vec![
                        ch.channel.clone(),
                        ch.n.to_string(),
                        num(ch.pearson_r),
                        num(ch.mean_bias),
                        num(ch.mean_abs_diff),
                    ]
                })
                .collect();
            page.table(
                &["channel", "cheeks", "Pearson r", "mean bias", "mean |difference|"],
                &rows,
                1,
            );
            scatter(page, c);
        }
        None => page.note("No reference was given to cheek-lab: no agreement to show."),
    }
    if let Some(p) = &c.qc_sheet {
        page.png(
            p,
            "cheek QC sheet",
            "Each face with its cheek patches (cheek-lab's QC contact sheet).",
        );
    }
    if !i.warnings.is_empty() {
        let mut rows: Vec<Vec<String>> = i
            .warnings
            .iter()
            .take(WARNINGS_SHOWN)
            .map(|w| vec![w.clone()])
            .collect();
        if i.warnings.len() > WARNINGS_SHOWN {
            rows.push(vec![format!(
                "… and {} more (in the report)",
                i.warnings.len() - WARNINGS_SHOWN
            )]);
        }
        page.table(&["warnings"], &rows, 1);
    }
}

fn scatter(page: &mut Page, c: &Cheeks) {
    if let Some(why) = &c.no_csv {
        page.note(&format!("No scatter plot: {why}."));
        return;
    }
    if c.pairs.is_empty() {
        page.note("No cheek in the CSV has both a measurement and a reference value.");
        return;
    }
    let group = |left: bool| -> Vec<[(f64, f64); 3]> {
        c.pairs
            .iter()
            .filter(|p| p.left == left)
            .map(|p| [0, 1, 2].map(|k| (p.reference[k], p.measured[k])))
            .collect()
    };
    let chart = Agreement {
        title: format!("Measured on {} against the reference", c.info.mask_field),
        channels: ["L*".into(), "a*".into(), "b*".into()],
        groups: vec![
            ("left cheek".into(), colour(0), group(true)),
            ("right cheek".into(), colour(1), group(false)),
        ],
    };
    page.svg(
        chart.to_svg(),
        &format!("{} cheeks; points on the grey line agree exactly.", c.pairs.len()),
    );
}
