//! Tests of [`super`] (`recipe`).

use super::*;
use crate::training::phase::{LrSource, Valley};

#[test]
fn the_default_is_the_reference_workflow_in_numbers() {
    let text = r#"{"patience": 2, "steps": [
        {"fine_tune": {"epochs": 1}}, {"lr_find": {}},
        {"fit_one_cycle": {"epochs": 12, "lr_max": [1e-5, 1e-4]}}]}"#;
    let r = crate::training::recipe::parse(text).unwrap();
    assert_eq!(r, Recipe::default());
    let p = r.phases().unwrap();
    assert_eq!(p.len(), 4);
    let Phase::Cycle {
        name,
        lr: PhaseLr::Groups(g),
        pct_start,
        freeze,
        ..
    } = &p[0]
    else {
        panic!("{p:?}")
    };
    assert_eq!((name.as_str(), *freeze, *pct_start), ("frozen", Freeze::Freeze, 0.99));
    assert_eq!(*g, [2e-4, 2e-4, 2e-3], "slice(base_lr)");
    let Phase::Cycle {
        lr: PhaseLr::Groups(g),
        pct_start,
        div,
        freeze,
        epochs,
        ..
    } = &p[1]
    else {
        panic!()
    };
    assert_eq!((*freeze, *pct_start, *div, *epochs), (Freeze::Unfreeze, 0.3, 5.0, 1));
    // base_lr halved, then slice(1e-3/100, 1e-3)
    assert!((g[0] - 1e-5).abs() < 1e-18 && (g[1] - 1e-4).abs() < 1e-17 && (g[2] - 1e-3).abs() < 1e-16);
    assert!(matches!(p[2], Phase::LrFind { num_it: 100, .. }));
    let (s, from) = p[3].schedule(None).unwrap().unwrap();
    assert_eq!(from.source, LrSource::Stated);
    assert_eq!((s.div, s.div_final, s.pct_start), (25.0, 1e5, 0.25));
    assert!((s.lr_max[1] - 10f64.powf(-4.5)).abs() < 1e-15, "geometric middle");
}

#[test]
fn auto_takes_the_valley_and_needs_an_lr_find_before_it() {
    let r = crate::training::recipe::parse(
        r#"{"steps": [{"lr_find": {"num_it": 50}}, {"fit_one_cycle": {"epochs": 2, "lr_max": "auto"}}]}"#,
    )
    .unwrap();
    assert_eq!(r.patience, Some(2));
    let p = r.phases().unwrap();
    let (s, from) = p[1].schedule(Some(&Valley::Trusted(1e-3))).unwrap().unwrap();
    assert!((s.lr_max[0] - 1e-4).abs() < 1e-16 && (s.lr_max[2] - 1e-3).abs() < 1e-16);
    assert_eq!((from.source, from.reason), (LrSource::Valley, None));
    let e = p[1].schedule(None).unwrap_err().to_string();
    assert!(e.contains("lr_find"), "{e}");
    // nothing trained before and no lr_fallback: fastai's default rate
    let (s, from) = p[1]
        .schedule(Some(&Valley::Untrusted("too short".into())))
        .unwrap()
        .unwrap();
    assert_eq!(s.lr_max, vec![1e-3; 3]);
    assert_eq!(from.source, LrSource::Fallback);
    assert!(from.reason.unwrap().contains("too short; using fastai's default"));
    let e = crate::training::recipe::parse(r#"{"steps": [{"fit_one_cycle": {"epochs": 2, "lr_max": "auto"}}]}"#)
        .unwrap_err()
        .to_string();
    assert!(e.contains("no lr_find step before it"), "{e}");
}

#[test]
fn bad_recipes_say_what_is_wrong() {
    for (text, want) in [
        (r#"{"steps": []}"#, "no steps"),
        (
            r#"{"steps": [{"fit_one_cycle": {"epochs": 1, "lr_max": -1}}]}"#,
            "positive",
        ),
        (
            r#"{"steps": [{"fit_one_cycle": {"epochs": 1, "lr_max": "fast"}}]}"#,
            "did not match",
        ),
        (
            r#"{"steps": [{"fine_tune": {"epochs": 1, "base_lr": 1e-3, "speed": 2}}]}"#,
            "unknown field",
        ),
        (
            r#"{"steps": [{"fit_one_cycle": {"epochs": 1, "lr_max": 1e-3, "pct_start": 1.5}}]}"#,
            "[0, 1]",
        ),
        (r#"{"stepz": []}"#, "unknown field"),
        (
            r#"{"steps": [{"fit_one_cycle": {"epochs": 1, "lr_max": 1e-3, "size": 8}}]}"#,
            "step 1: size: input size 8 is outside",
        ),
    ] {
        let e = format!("{:#}", crate::training::recipe::parse(text).unwrap_err());
        assert!(e.contains(want), "{text}: {e}");
    }
    let r = crate::training::recipe::parse(
        r#"{"patience": null, "steps": [{"fit_one_cycle": {"epochs": 3, "lr_max": 1e-3}}]}"#,
    )
    .unwrap();
    assert_eq!(r.patience, None);
    assert_eq!(
        r.phases().unwrap()[0].schedule(None).unwrap().unwrap().0.lr_max,
        vec![1e-3; 3]
    );
    for (text, want) in [
        (
            r#"{"steps": [{"lr_find": {}}, {"fit_one_cycle": {"epochs": 1, "lr_max": "auto", "lr_fallback": "auto"}}]}"#,
            "lr_fallback cannot be \"auto\"",
        ),
        (
            r#"{"steps": [{"fit_one_cycle": {"epochs": 1, "lr_max": 1e-3, "lr_fallback": 1e-3}}]}"#,
            "for lr_max \"auto\" only",
        ),
        (
            r#"{"steps": [{"fit_one_cycle": {"epochs": 1, "lr_max": [1e-3, 1e-4]}}]}"#,
            "low rate comes first",
        ),
        (r#"{"loss": "bce", "steps": []}"#, "unknown variant"),
    ] {
        let e = format!("{:#}", crate::training::recipe::parse(text).unwrap_err());
        assert!(e.contains(want), "{text}: {e}");
    }
}

#[test]
fn auto_falls_back_to_the_recipes_own_rate() {
    // fine_tune before: its unfrozen fit's rates
    let r = crate::training::recipe::parse(
        r#"{"steps": [{"fine_tune": {"epochs": 2, "base_lr": 0.004}}, {"lr_find": {"num_it": 30}},
            {"fit_one_cycle": {"epochs": 2, "lr_max": "auto"}}]}"#,
    )
    .unwrap();
    let p = r.phases().unwrap();
    let why = Valley::Untrusted("the sweep ran 30 iterations".into());
    let (s, from) = p[3].schedule(Some(&why)).unwrap().unwrap();
    assert!(
        (s.lr_max[2] - 2e-3).abs() < 1e-15 && (s.lr_max[0] - 2e-5).abs() < 1e-18,
        "{s:?}"
    );
    let reason = from.reason.unwrap();
    assert!(
        reason.starts_with("the sweep ran 30 iterations; using the rates of the unfrozen fit"),
        "{reason}"
    );
    // lr_fallback given: that
    let r = crate::training::recipe::parse(
        r#"{"loss": "ce+dice", "steps": [{"fine_tune": {"epochs": 2}}, {"lr_find": {}},
            {"fit_one_cycle": {"epochs": 2, "lr_max": "auto", "lr_fallback": [1e-4, 1e-2]}}]}"#,
    )
    .unwrap();
    assert_eq!(r.loss, Loss::CrossEntropyDice);
    let (s, from) = r.phases().unwrap()[3].schedule(Some(&why)).unwrap().unwrap();
    assert!((s.lr_max[0] - 1e-4).abs() < 1e-18 && (s.lr_max[1] - 1e-3).abs() < 1e-16);
    assert!(from.reason.unwrap().contains("using lr_fallback"));
}

/// A sweep like fastai's: flat, falling through a valley near 1e-3, then diverging.
fn sweep(num_it: usize) -> (Vec<f64>, Vec<f64>) {
    let lrs: Vec<f64> = (0..num_it)
        .map(|i| crate::training::schedule::lr_find_lr(1e-7, 10.0, i, num_it))
        .collect();
    let losses = lrs
        .iter()
        .map(|lr| {
            let x = lr.log10();
            2.0 - 1.5 / (1.0 + (-(x + 4.0) * 2.0).exp()) + 0.5 * (x + 1.0).max(0.0).powi(2)
        })
        .collect();
    (lrs, losses)
}

#[test]
fn a_short_or_flat_sweep_is_not_trusted() {
    let (lrs, losses) = sweep(100);
    let v = crate::training::schedule::suggest(&lrs, &losses, 100).unwrap().valley;
    assert_eq!(Valley::judge(&losses, 100, Some(v)), Valley::Trusted(v));
    // the same curve in 30 iterations: too short
    let (lrs, losses) = sweep(30);
    let v = crate::training::schedule::suggest(&lrs, &losses, 30).unwrap().valley;
    let Valley::Untrusted(why) = Valley::judge(&losses, 30, Some(v)) else {
        panic!()
    };
    assert!(why.contains("the sweep ran 30 iterations, fewer than the 50"), "{why}");
    // long but flat (a 1 % dip)
    let flat: Vec<f64> = (0..100).map(|i| 1.0 - 0.01 * (i as f64 / 60.0).min(1.0)).collect();
    let Valley::Untrusted(why) = Valley::judge(&flat, 100, Some(1e-4)) else {
        panic!()
    };
    assert!(
        why.contains("fell only 0.8 % over the sweep (from 0.9983 to 0.9900"),
        "{why}"
    );
    // no suggestion at all
    assert!(matches!(Valley::judge(&flat[..8], 100, None), Valley::Untrusted(w) if w.contains("no valley")));
}

#[test]
fn a_fit_can_name_its_own_size() {
    let r = crate::training::recipe::parse(
        r#"{"steps": [{"fit_one_cycle": {"epochs": 2, "lr_max": 1e-3, "size": 64}},
                      {"fit_one_cycle": {"epochs": 3, "lr_max": 1e-3}}]}"#,
    )
    .unwrap();
    let sizes: Vec<Option<u32>> = r.phases().unwrap().iter().map(|p| p.size(128)).collect();
    assert_eq!(sizes, [Some(64), Some(128)]);
    // written back as read: no size where none was given
    let text = serde_json::to_string(&r).unwrap();
    assert_eq!(text.matches("\"size\"").count(), 1, "{text}");
    assert_eq!(crate::training::recipe::parse(&text).unwrap(), r);
}
