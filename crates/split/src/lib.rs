//! `split`: a seeded, platform-independent train/valid split.
//!
//! Exactly ⌊valid_pct · n⌋ items get `split: "valid"`, the rest `"train"`. The permutation
//! depends only on the seed and the set of item ids, not on the order of the items in the
//! manifest (so a manifest merged from shards splits the same way):
//!
//! 1. sort the item ids (byte order);
//! 2. Fisher–Yates shuffle them with SplitMix64 seeded with `--seed`
//!    (see [`facepipe_core::rng`]);
//! 3. the first ⌊valid_pct · n⌋ are valid.
//!
//! With `--group-by FIELD` the same is done over the distinct values of FIELD (sorted, then
//! shuffled), and whole groups are taken for valid in shuffled order as long as they fit in
//! ⌊valid_pct · n⌋ items, so every group stays on one side; the valid count is then the
//! largest that this greedy fill reaches, which can fall short of the target.
//!
//! `pipelines/split.py` implements the same steps in plain Python and gives the same split.
//! (fastai's `RandomSplitter` draws from torch's generator instead, so the items it picks
//! differ; the proportions are the same.)

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Result, bail};
use facepipe_core::rng::SplitMix64;
use facepipe_core::{Manifest, Split, Step};
use serde_json::Value;

pub const STAGE: &str = "split";

#[derive(Clone, Debug)]
pub struct Config {
    pub input: PathBuf,
    pub valid_pct: f64,
    pub seed: u64,
    pub group_by: Option<String>,
}

/// ⌊pct · n⌋, robust to binary rounding (0.29 · 100 is 28.999… in floating point).
pub fn valid_count(pct: f64, n: usize) -> usize {
    (pct * n as f64 + 1e-9).floor() as usize
}

/// The valid/train assignment for items with these ids and group keys.
pub fn assign(ids: &[&str], groups: Option<&[String]>, valid_pct: f64, seed: u64) -> Vec<Split> {
    let n = ids.len();
    let target = valid_count(valid_pct, n);
    let mut rng = SplitMix64::new(seed);
    let mut out = vec![Split::Train; n];
    match groups {
        None => {
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_by(|&a, &b| ids[a].cmp(ids[b]));
            rng.shuffle(&mut order);
            for &i in &order[..target] {
                out[i] = Split::Valid;
            }
        }
        Some(keys) => {
            let mut members: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
            for (i, k) in keys.iter().enumerate() {
                members.entry(k.as_str()).or_default().push(i);
            }
            let mut order: Vec<&Vec<usize>> = members.values().collect();
            rng.shuffle(&mut order);
            let mut taken = 0;
            for g in order {
                if taken + g.len() <= target {
                    taken += g.len();
                    for &i in g {
                        out[i] = Split::Valid;
                    }
                }
            }
        }
    }
    out
}

fn group_key(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Reads the manifest and sets every item's `split`.
pub fn run(cfg: &Config) -> Result<Manifest> {
    if !(0.0..1.0).contains(&cfg.valid_pct) {
        bail!("--valid-pct must be at least 0 and less than 1 (got {})", cfg.valid_pct);
    }
    let loaded = Manifest::read(&cfg.input)?;
    let mut m = loaded.manifest;
    let n = m.items.len();
    if n == 0 {
        bail!("manifest {} has no items to split", cfg.input.display());
    }
    let groups = match &cfg.group_by {
        None => None,
        Some(field) => Some(
            m.items
                .iter()
                .map(|it| match it.field(field) {
                    Some(v) if !v.is_null() => Ok(group_key(&v)),
                    _ => bail!(
                        "item {:?} in {} has no field {field:?} to group by",
                        it.id,
                        cfg.input.display()
                    ),
                })
                .collect::<Result<Vec<_>>>()?,
        ),
    };
    let ids: Vec<&str> = m.items.iter().map(|it| it.id.as_str()).collect();
    let splits = assign(&ids, groups.as_deref(), cfg.valid_pct, cfg.seed);
    for (it, s) in m.items.iter_mut().zip(&splits) {
        it.split = Some(*s);
    }
    let valid = splits.iter().filter(|&&s| s == Split::Valid).count();
    let target = valid_count(cfg.valid_pct, n);
    if valid != target {
        log::warn!(
            "grouping by {:?} put {valid} items in valid, not {target}: groups are kept whole",
            cfg.group_by
        );
    }
    if valid == 0 && cfg.valid_pct > 0.0 {
        log::warn!("no item went to valid (n = {n}, --valid-pct {})", cfg.valid_pct);
    }
    let mut step = Step::new(STAGE, facepipe_core::VERSION)
        .param("valid_pct", cfg.valid_pct)
        .param("seed", cfg.seed)
        .param("group_by", &cfg.group_by);
    step.inputs.push(loaded.input);
    step.count("items", n);
    step.count("train", n - valid);
    step.count("valid", valid);
    if let Some(g) = &groups {
        step.count("groups", g.iter().collect::<std::collections::BTreeSet<_>>().len());
    }
    m.provenance.push(step);
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("item{i:04}")).collect()
    }

    #[test]
    fn exact_floor_counts() {
        for (n, pct, want) in [
            (100, 0.35, 35),
            (20, 0.35, 7),
            (3, 0.35, 1),
            (1, 0.35, 0),
            (100, 0.29, 29),
            (10, 0.0, 0),
        ] {
            let ids = ids(n);
            let r: Vec<&str> = ids.iter().map(String::as_str).collect();
            let s = assign(&r, None, pct, 2020);
            assert_eq!(
                s.iter().filter(|&&x| x == Split::Valid).count(),
                want,
                "n={n} pct={pct}"
            );
        }
    }

    #[test]
    fn independent_of_item_order_and_seeded() {
        let ids = ids(50);
        let fwd: Vec<&str> = ids.iter().map(String::as_str).collect();
        let rev: Vec<&str> = fwd.iter().rev().copied().collect();
        let a = assign(&fwd, None, 0.35, 7);
        let mut b = assign(&rev, None, 0.35, 7);
        b.reverse();
        assert_eq!(a, b);
        assert_ne!(a, assign(&fwd, None, 0.35, 8));
    }

    #[test]
    fn known_permutation() {
        // Pinned so that a change of PRNG or shuffle is noticed (pipelines/split.py agrees).
        let ids = ids(10);
        let r: Vec<&str> = ids.iter().map(String::as_str).collect();
        let s = assign(&r, None, 0.35, 2020);
        let valid: Vec<usize> = (0..10).filter(|&i| s[i] == Split::Valid).collect();
        assert_eq!(valid, [2, 3, 8]);
    }

    #[test]
    fn groups_stay_whole() {
        let ids = ids(40);
        let r: Vec<&str> = ids.iter().map(String::as_str).collect();
        let groups: Vec<String> = (0..40).map(|i| format!("g{}", i / 4)).collect();
        let s = assign(&r, Some(&groups), 0.35, 1);
        for g in 0..10 {
            let sides: std::collections::HashSet<_> = (0..4).map(|k| s[g * 4 + k]).collect();
            assert_eq!(sides.len(), 1);
        }
        let v = s.iter().filter(|&&x| x == Split::Valid).count();
        assert!((12..=14).contains(&v), "{v}");
    }
}
