//! `manifest-merge`: joins the manifests that the N shards of one stage wrote (`--shard K/N`)
//! into the manifest one unsharded run would have written.
//!
//! Every shard must come from the same run of the same stage on the same input: the same
//! schema version, classes (names, colours), root and top-level fields, the same provenance up
//! to the stage's own step, and that step the same apart from its `shard` parameter and its
//! counts. Each of the N parts must be there exactly once, and no item id may be in two parts.
//! The result:
//!
//! * items: in the order of `--expect INPUT` (the manifest the shards read) when given, which
//!   also requires that the parts hold exactly its items; sorted by id otherwise;
//! * classes: per-class pixel counts summed where the stage counted its part's pixels
//!   (rgb2class); where it passed its input's counts through (unet-eval), they are kept: counts
//!   equal to `--expect`'s, or without it, the same in every shard, are the input's;
//! * provenance: the shared history, the stage's step with the `shard` parameter removed and its
//!   counts summed (so equal to an unsharded run's), then a `manifest-merge` step that lists
//!   every shard file with its sha256.
//!
//! Everything but that last step is what the unsharded run writes, byte for byte.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use facepipe_core::manifest::Loaded;
use facepipe_core::shard::{Shard, ShardSpec};
use facepipe_core::{Class, Item, Manifest, Step};
use serde_json::{Map, Value};

pub const STAGE: &str = "manifest-merge";

/// The count a sharded stage's step keeps of the items it wrote (see
/// [`facepipe_core::manifest::ITEMS_WRITTEN`]): each shard must still hold that many.
use facepipe_core::manifest::ITEMS_WRITTEN;

/// The top-level fields without `skipped` (the photos a shard of `photos` left out, which
/// differ between shards and are joined).
fn without_skipped(extra: &Map<String, Value>) -> Map<String, Value> {
    let mut e = extra.clone();
    e.remove("skipped");
    e
}

/// Every shard's `skipped` list joined, in file order (none if no shard has one).
fn joined_skipped(shards: &[Loaded]) -> Option<Value> {
    let mut all: Vec<Value> = shards
        .iter()
        .filter_map(|l| l.manifest.extra.get("skipped")?.as_array().cloned())
        .flatten()
        .collect();
    all.sort_by(|a, b| a["file"].as_str().cmp(&b["file"].as_str()));
    (!all.is_empty()).then_some(Value::Array(all))
}

/// The shard a manifest holds, from its last provenance step.
fn shard_of(m: &Manifest, shown: &str) -> Result<(Shard, Step)> {
    let step = m
        .provenance
        .last()
        .with_context(|| format!("{shown} has no provenance: it is not the output of a stage run with --shard"))?;
    let spec = step.params.get("shard").and_then(Value::as_str).with_context(|| {
        format!(
            "{shown} is not a shard: its last step ({}) has no `shard` parameter",
            step.stage
        )
    })?;
    match spec.parse::<ShardSpec>() {
        Ok(ShardSpec::Fixed(s)) => Ok((s, step.clone())),
        _ => bail!("{shown}: its shard {spec:?} is not K/N"),
    }
}

/// A shard's step without what differs between shards (its `shard` parameter and counts).
fn bare(step: &Step) -> Step {
    let mut b = step.clone();
    b.params.remove("shard");
    b.summary = Map::new();
    b
}

/// Classes without their pixel counts (the part that must agree across shards).
fn palette_of(classes: &[Class]) -> Vec<Class> {
    classes
        .iter()
        .map(|c| Class {
            pixels: None,
            ..c.clone()
        })
        .collect()
}

/// Adds `b`'s counts into `a`: whole numbers summed, anything else must be equal (a fraction,
/// such as a score, is refused: the part's score is not a share of the whole's).
fn add_counts(a: &mut Map<String, Value>, b: &Map<String, Value>, shown: &str) -> Result<()> {
    ensure!(
        a.keys().eq(b.keys()),
        "{shown}: its step reports other counts ({:?}) than the first shard's ({:?})",
        b.keys().collect::<Vec<_>>(),
        a.keys().collect::<Vec<_>>()
    );
    for (k, v) in b {
        let sum = match (&a[k], v) {
            (Value::Number(x), Value::Number(y)) => match (x.as_u64(), y.as_u64()) {
                (Some(x), Some(y)) => Value::from(x + y),
                // a score or a share is its part's alone: adding it up would be wrong
                _ => bail!(
                    "{shown}: its count {k} is {y} (the first shard's {x}): not a whole number, so it cannot be added up across shards"
                ),
            },
            (x, y) if x == y => x.clone(),
            (x, y) => bail!("{shown}: its count {k} is {y}, the first shard's {x}, and they do not add up"),
        };
        a.insert(k.clone(), sum);
    }
    Ok(())
}

/// What every shard must share with the first: its manifest (named `name` in errors), the
/// history before the stage's step, and that step without its shard and counts.
struct Reference<'a> {
    first: &'a Manifest,
    name: &'a str,
    history: &'a [Step],
    settings: Step,
}

impl Reference<'_> {
    /// Refuses a shard (`m`, named `name`, whose own step is `own`) that is not from the same
    /// run of the same stage on the same input as the first.
    fn check(&self, m: &Manifest, name: &str, own: &Step) -> Result<()> {
        let (first, first_name) = (self.first, self.name);
        ensure!(
            m.schema_version == first.schema_version,
            "{name} has schema version {}, {first_name} has {}",
            m.schema_version,
            first.schema_version
        );
        if palette_of(&m.classes) != palette_of(&first.classes) {
            bail!("{name} has other classes than {first_name} (another palette or class order)");
        }
        let root = |m: &Manifest| m.root.clone().unwrap_or_else(|| "none".into());
        ensure!(
            m.root == first.root,
            "{name} has root {}, {first_name} has {}",
            root(m),
            root(first)
        );
        ensure!(
            without_skipped(&m.extra) == without_skipped(&first.extra),
            "{name} has other top-level fields than {first_name}"
        );

        ensure!(
            m.provenance[..m.provenance.len() - 1] == *self.history,
            "{name} has another history than {first_name} (its provenance before {} differs): not from the same input",
            own.stage
        );
        ensure!(
            bare(own) == self.settings,
            "{name}'s {} step differs from {first_name}'s in more than its shard (stage, version, parameters or inputs)",
            own.stage
        );
        Ok(())
    }
}

/// Refuses a shard (`m`, named `name`) that holds other than the items its stage's step `own`
/// says it wrote: an item removed from (or added to) it by hand.
fn check_count(m: &Manifest, name: &str, own: &Step) -> Result<()> {
    if let Some(n) = own.summary.get(ITEMS_WRITTEN).and_then(Value::as_u64)
        && n != m.items.len() as u64
    {
        bail!(
            "{name} holds {} items, but its {} step wrote {n}: items were added or removed after the stage ran; rerun that shard",
            m.items.len(),
            own.stage
        );
    }
    Ok(())
}

/// Up to five ids, quoted, and how many more there are.
fn few(ids: &[&str]) -> String {
    let mut s = ids
        .iter()
        .take(5)
        .map(|id| format!("{id:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    if ids.len() > 5 {
        s.push_str(&format!(" and {} more", ids.len() - 5));
    }
    s
}

/// Puts the merged items in the order of `--expect`'s, refusing parts that do not hold exactly
/// its items (`merged` holds the id of every merged item).
fn order_as_expected(items: &mut [Item], merged: &HashMap<&str, usize>, input: &Loaded) -> Result<()> {
    let want: Vec<&str> = input.manifest.items.iter().map(|it| it.id.as_str()).collect();
    let not_merged: Vec<&str> = want.iter().copied().filter(|id| !merged.contains_key(id)).collect();
    let position: HashMap<&str, usize> = want.iter().enumerate().map(|(p, &id)| (id, p)).collect();
    let extra: Vec<&str> = items
        .iter()
        .map(|it| it.id.as_str())
        .filter(|id| !position.contains_key(id))
        .collect();
    if !not_merged.is_empty() || !extra.is_empty() {
        let mut why = vec![];
        if !not_merged.is_empty() {
            why.push(format!(
                "{} of its items are in no shard: {}",
                not_merged.len(),
                few(&not_merged)
            ));
        }
        if !extra.is_empty() {
            why.push(format!("{} shard items are not in it: {}", extra.len(), few(&extra)));
        }
        bail!(
            "the shards do not hold exactly the items of --expect {}: {}",
            input.input.path,
            why.join("; ")
        );
    }
    items.sort_by_key(|it| position[it.id.as_str()]);
    Ok(())
}

/// Sets the merged classes' pixel counts: the summed `pixels` where the stage counted its
/// part's pixels, left as they are where every shard passed its input's counts through
/// (equal to `--expect`'s, or without it, the same in every shard).
fn merge_pixels(out: &mut Manifest, shards: &[Loaded], expect: Option<&Loaded>, pixels: Vec<Option<u64>>) {
    let counts = |m: &Manifest| m.classes.iter().map(|c| c.pixels).collect::<Vec<_>>();
    let passed_through = match expect {
        Some(input) => shards.iter().all(|l| counts(&l.manifest) == counts(&input.manifest)),
        None => shards
            .iter()
            .all(|l| counts(&l.manifest) == counts(&shards[0].manifest)),
    };
    if !passed_through {
        for (c, p) in out.classes.iter_mut().zip(pixels) {
            c.pixels = p;
        }
    }
}

/// This stage's own step: the shard files in part order (then `--expect`) and the item count.
fn merge_step(
    count: usize,
    shards: &[Loaded],
    by_index: &BTreeMap<usize, usize>,
    expect: Option<&Loaded>,
    items: usize,
) -> Step {
    let mut me = Step::new(STAGE, facepipe_core::VERSION)
        .param("shards", count)
        .param("order", if expect.is_some() { "expect" } else { "id" });
    me.inputs = by_index.values().map(|&i| shards[i].input.clone()).collect();
    if let Some(e) = expect {
        me.inputs.push(e.input.clone());
    }
    me.count("items", items);
    me
}

/// Merges shard manifests (each read with [`Manifest::read`], named by `files` in errors).
pub fn merge(shards: &[Loaded], files: &[PathBuf], expect: Option<&Loaded>) -> Result<Manifest> {
    ensure!(!shards.is_empty(), "no shard manifests given");
    let shown: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    let first = &shards[0].manifest;
    let (s0, step0) = shard_of(first, &shown[0])?;
    let reference = Reference {
        first,
        name: &shown[0],
        history: &first.provenance[..first.provenance.len() - 1],
        settings: bare(&step0),
    };
    let mut step = reference.settings.clone();
    let mut by_index: BTreeMap<usize, usize> = BTreeMap::new();
    let mut owner: HashMap<&str, usize> = HashMap::new();
    let mut bytes: HashMap<&str, (&str, usize)> = HashMap::new();
    let mut pixels: Vec<Option<u64>> = vec![Some(0); first.classes.len()];
    let parts = shards
        .iter()
        .zip(&shown)
        .map(|(l, name)| shard_of(&l.manifest, name))
        .collect::<Result<Vec<_>>>()?;
    facepipe_core::shard::check_complete(parts.iter().zip(&shown).map(|((s, _), n)| (*s, n.as_str())))?;
    for (i, l) in shards.iter().enumerate() {
        let (m, name) = (&l.manifest, &shown[i]);
        let (s, own) = &parts[i];
        by_index.insert(s.index, i);
        reference.check(m, name, own)?;
        if i == 0 {
            step.summary = own.summary.clone();
        } else {
            add_counts(&mut step.summary, &own.summary, name)?;
        }
        for it in &m.items {
            if let Some(j) = owner.insert(it.id.as_str(), i) {
                bail!("item {:?} is in both {} and {name}", it.id, shown[j]);
            }
            // the same photo twice (photos finds copies only within a part)
            if let Some(sha) = it.extra.get("sha256").and_then(Value::as_str)
                && let Some((other, j)) = bytes.insert(sha, (it.id.as_str(), i))
            {
                bail!(
                    "items {other:?} ({}) and {:?} ({name}) have the same bytes (sha256 {sha}): one photo twice; remove one and rerun its part",
                    shown[j],
                    it.id
                );
            }
        }
        check_count(m, name, own)?;
        for (p, c) in pixels.iter_mut().zip(&m.classes) {
            *p = p.zip(c.pixels).map(|(a, b)| a + b);
        }
    }
    let mut items: Vec<_> = shards.iter().flat_map(|l| l.manifest.items.iter().cloned()).collect();
    match expect {
        Some(input) => order_as_expected(&mut items, &owner, input)?,
        None => items.sort_by(|a, b| a.id.cmp(&b.id)),
    }

    let mut out = first.clone();
    out.items = items;
    out.extra.remove("skipped");
    if let Some(skipped) = joined_skipped(shards) {
        out.extra.insert("skipped".into(), skipped);
    }
    merge_pixels(&mut out, shards, expect, pixels);
    out.provenance = reference.history.to_vec();
    out.provenance.push(step);
    out.provenance
        .push(merge_step(s0.count, shards, &by_index, expect, out.items.len()));
    out.validate()?;
    Ok(out)
}

/// Refuses an output that is one of the inputs (a shard or `--expect`): merging would replace
/// the file it reads.
pub fn refuse_input_as_output<'a>(output: &Path, inputs: impl IntoIterator<Item = &'a PathBuf>) -> Result<()> {
    let Ok(out) = std::fs::canonicalize(output) else {
        return Ok(()); // not there yet (or `-`): no input is it
    };
    for f in inputs {
        if std::fs::canonicalize(f).is_ok_and(|p| p == out) {
            bail!(
                "-o {} is also an input ({}); write the merged manifest elsewhere",
                output.display(),
                f.display()
            );
        }
    }
    Ok(())
}

/// Reads the shard files (and the expected input) and merges them.
pub fn run(files: &[PathBuf], expect: Option<&Path>) -> Result<Manifest> {
    let shards = files.iter().map(|f| Manifest::read(f)).collect::<Result<Vec<_>>>()?;
    let expect = expect.map(Manifest::read).transpose()?;
    merge(&shards, files, expect.as_ref())
}
