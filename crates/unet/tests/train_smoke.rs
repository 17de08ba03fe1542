//! A short CPU training on tiny synthetic images: the loss must fall. Ties the model, the
//! ignore-aware loss, the grouped Adam and the one-cycle schedule together.

use burn::backend::flex::FlexDevice;
use burn::backend::{Autodiff, Flex};
use burn::tensor::{Int, Tensor, TensorData};
use facepipe_core::rng::SplitMix64;
use unet::model::SmpUnet;
use unet::training::loss::{Loss, Objective};
use unet::training::optim::GroupAdam;
use unet::training::schedule::{OneCycle, position};

type AB = Autodiff<Flex>;

/// `n` images of `s`×`s`: a bright square (class 1) and a dark disc (class 2) on a mid-grey
/// noisy background (class 0), at random places; the border row is labelled 255 (ignored).
fn batch(n: usize, s: usize, rng: &mut SplitMix64) -> (Vec<f32>, Vec<i64>) {
    let mut x = vec![0f32; n * 3 * s * s];
    let mut y = vec![0i64; n * s * s];
    for b in 0..n {
        let (sx, sy) = (rng.below((s / 2) as u64) as usize, rng.below((s / 2) as u64) as usize);
        let (cx, cy) = (rng.range(8.0, s as f64 - 8.0), rng.range(8.0, s as f64 - 8.0));
        for py in 0..s {
            for px in 0..s {
                let class = if (sx..sx + s / 3).contains(&px) && (sy..sy + s / 3).contains(&py) {
                    1
                } else if ((px as f64 - cx).powi(2) + (py as f64 - cy).powi(2)).sqrt() < s as f64 / 6.0 {
                    2
                } else {
                    0
                };
                let v = [0.0, 1.5, -1.5][class] + rng.range(-0.3, 0.3) as f32;
                for c in 0..3 {
                    x[((b * 3 + c) * s + py) * s + px] = v;
                }
                y[(b * s + py) * s + px] = if py == 0 { 255 } else { class as i64 };
            }
        }
    }
    (x, y)
}

/// Trains `steps` steps on one batch with `loss`; returns the losses seen.
fn short_run(loss: Loss, steps: usize) -> Vec<f64> {
    let d = FlexDevice;
    let (n, s) = (4, 32);
    let mut net = SmpUnet::<AB>::new(3, &d);
    let mut opt = GroupAdam::<AB>::new(&net);
    let sched = OneCycle::new(vec![1e-3, 1e-3, 3e-3]);
    let mut rng = SplitMix64::new(2020);
    let (xs, ys) = batch(n, s, &mut rng);
    let x = Tensor::<AB, 4>::from_data(TensorData::new(xs, [n, 3, s, s]), &d);
    let y = Tensor::<AB, 3, Int>::from_data(TensorData::new(ys, [n, s, s]), &d);
    let mut losses = Vec::new();
    for i in 0..steps {
        let value = loss.compute(net.forward(x.clone()), y.clone());
        losses.push(f64::from(value.clone().into_scalar()));
        let grads = value.backward();
        let (lrs, mom) = sched.at(position(0, i, 1, steps));
        net = opt.step(net, &grads, [lrs[0], lrs[1], lrs[2]], mom);
    }
    losses
}

#[test]
fn loss_falls_on_a_short_cpu_run() {
    let steps = 16;
    let losses = short_run(Loss::CrossEntropy, steps);
    eprintln!("losses: {losses:.3?}");
    let first = losses[0];
    let last: f64 = losses[steps - 3..].iter().sum::<f64>() / 3.0;
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    assert!(last < 0.4 * first, "loss did not fall: {losses:?}");
}

#[test]
fn every_recipe_loss_trains() {
    // dice and focal are slower to fall than cross-entropy from a random start; each must
    // still fall clearly in a few steps
    for loss in [Loss::Dice, Loss::Focal, Loss::CrossEntropyDice] {
        let losses = short_run(loss, 12);
        let (first, last) = (losses[0], losses[9..].iter().sum::<f64>() / 3.0);
        eprintln!("{loss}: {losses:.3?}");
        assert!(losses.iter().all(|l| l.is_finite()), "{loss}: {losses:?}");
        assert!(last < 0.8 * first, "{loss} did not fall: {losses:?}");
    }
}

#[test]
fn lr_find_sweeps_and_leaves_the_model_as_it_was() {
    let d = FlexDevice;
    let (n, s, num_it) = (2, 32, 20);
    let net = SmpUnet::<AB>::new(3, &d);
    let opt = GroupAdam::<AB>::new(&net);
    let mut rng = SplitMix64::new(7);
    let (images, masks) = batch(n, s, &mut rng);
    let b = unet::data::loader::Batch {
        n,
        size: s,
        images,
        masks,
    };
    let before = net.head.weight.val().into_data();
    let stats = |m: &SmpUnet<AB>| {
        (
            m.encoder.bn1.running_mean.value_sync().into_data(),
            m.blocks[0].conv1.bn.running_var.value_sync().into_data(),
        )
    };
    let stats_before = stats(&net);
    let found = unet::training::fit::lr_find(
        &net,
        SmpUnet::new(3, &d),
        &opt,
        unet::training::fit::ADAM_BETA1,
        Loss::CrossEntropy,
        |_| Ok(b.clone()),
        &unet::training::recipe::LrFindStep {
            start_lr: 1e-6,
            end_lr: 1.0,
            num_it,
        },
        &d,
    )
    .unwrap();
    assert_eq!(net.head.weight.val().into_data(), before, "the model is restored");
    // BatchNorm running statistics too: burn's clones share them, and a sweep that diverges
    // would leave NaN statistics that wreck every later validation
    assert_eq!(stats(&net), stats_before, "running statistics are restored");
    assert!((found.lrs[0] - 1e-6).abs() < 1e-18);
    assert!(found.lrs.windows(2).all(|w| w[1] > w[0]));
    assert!(found.lrs.len() <= num_it && found.lrs.len() == found.losses.len());
    eprintln!("lr_find: {} points, {:?}", found.lrs.len(), found.suggestions);
    assert_eq!(found.suggestions.is_some(), found.lrs.len() >= num_it / 10 + 7);
    if let Some(sug) = &found.suggestions {
        assert!(sug.valley >= 1e-6 && sug.valley <= 1.0, "{sug:?}");
    }
    // 20 iterations are too few for "auto" to take the valley: it says why
    let why = found.untrusted.as_deref().expect("a 20-iteration sweep is not trusted");
    assert!(why.contains("iterations"), "{why}");
    assert!(matches!(
        unet::training::phase::Valley::of(&found),
        unet::training::phase::Valley::Untrusted(_)
    ));
}

#[test]
fn evaluation_uses_running_statistics_and_counts_labelled_pixels() {
    let d = FlexDevice;
    let (n, s) = (2, 32);
    let net = SmpUnet::<AB>::new(3, &d);
    let mut rng = SplitMix64::new(3);
    let (images, masks) = batch(n, s, &mut rng);
    let b = unet::data::loader::Batch {
        n,
        size: s,
        images,
        masks,
    };
    let labelled = b.masks.iter().filter(|&&m| m != 255).count() as u64;
    let a = unet::training::fit::evaluate(&net, std::iter::once(Ok(b.clone())), 3, Loss::CrossEntropy, &d).unwrap();
    assert_eq!(a.pixels(), labelled);
    assert_eq!((0..3).map(|c| a.confusion.pred_pixels(c)).sum::<u64>(), labelled);
    // BatchNorm uses its running statistics at inference: the images scored one at a time give
    // the same predictions as scored together (batch statistics would differ)
    let half = s * s;
    let one = |k: usize| unet::data::loader::Batch {
        n: 1,
        size: s,
        images: b.images[k * 3 * half..(k + 1) * 3 * half].to_vec(),
        masks: b.masks[k * half..(k + 1) * half].to_vec(),
    };
    let split =
        unet::training::fit::evaluate(&net, [Ok(one(0)), Ok(one(1))].into_iter(), 3, Loss::CrossEntropy, &d).unwrap();
    assert_eq!(a.confusion, split.confusion);
}

/// A split manifest of `n` synthetic 32×32 photos (PNG) and masks (TIFF) in `dir`.
fn dataset(dir: &std::path::Path, n: usize) -> std::path::PathBuf {
    let mut rng = SplitMix64::new(11);
    let mut items = vec![];
    for i in 0..n {
        let s = 32u32;
        let (sx, sy) = (rng.below(16) as u32, rng.below(16) as u32);
        let mask = image::GrayImage::from_fn(s, s, |x, y| {
            image::Luma([u8::from((sx..sx + 10).contains(&x) && (sy..sy + 10).contains(&y))])
        });
        let photo = image::RgbImage::from_fn(s, s, |x, y| {
            let base = if mask.get_pixel(x, y).0[0] == 1 { 220 } else { 60 };
            image::Rgb([base, base, base])
        });
        photo.save(dir.join(format!("{i}.png"))).unwrap();
        mask.save(dir.join(format!("{i}.tif"))).unwrap();
        let split = if i < n - 2 { "train" } else { "valid" };
        items.push(serde_json::json!({"id": format!("s{i}"), "image": format!("{i}.png"), "mask": format!("{i}.tif"), "split": split}));
    }
    let classes = serde_json::json!([{"id":0,"name":"bg","rgb":[0,0,0]},{"id":1,"name":"box","rgb":[255,255,255]}]);
    let m = serde_json::json!({"schema":"facepipe/dataset","schema_version":1,"classes":classes,"items":items,"provenance":[]});
    let p = dir.join("split.json");
    std::fs::write(&p, m.to_string()).unwrap();
    p
}

#[test]
fn fit_one_cycle_records_epochs_and_stops_when_told() {
    let d = FlexDevice;
    let dir = tempfile::tempdir().unwrap();
    let set = unet::data::loader::SplitSet::read(&dataset(dir.path(), 8)).unwrap();
    let fit = unet::training::fit::FitData {
        data: &set,
        epochs: 2,
        phase: "fit",
        bs: 2,
        size: 32,
        seed: 2020,
        epoch_offset: 0,
        start_epoch: 0,
        loss: Loss::CrossEntropy,
        background: Some(0),
        progress: indicatif::ProgressBar::hidden(),
    };
    let net = SmpUnet::<AB>::new(2, &d);
    let mut opt = GroupAdam::<AB>::new(&net);
    let sched = OneCycle::new(unet::training::schedule::slice(1e-4, 1e-3, 3));
    let mut recs = vec![];
    let _net = unet::training::fit::fit_one_cycle(net, &mut opt, &fit, &sched, &d, |r, _, _| {
        recs.push(r.clone());
        Ok(false)
    })
    .unwrap();
    assert_eq!(recs.len(), 2);
    assert_eq!((recs[0].epoch, recs[1].epoch), (0, 1));
    for r in &recs {
        assert!(r.train_loss.is_finite() && r.valid_loss.is_finite(), "{r:?}");
        assert_eq!(r.dice.len(), 2);
        assert!((0.0..=1.0).contains(&r.pixel_accuracy));
    }
    // 6 training items in batches of 2: 3 batches an epoch; the last one is at position 5/6
    let want = sched.at(5.0 / 6.0).0;
    assert_eq!(recs[1].lrs.to_vec(), want, "per-batch positions in the cycle");
    let first_epoch_end = sched.at(2.0 / 6.0).0;
    assert_eq!(recs[0].lrs.to_vec(), first_epoch_end);

    let net = SmpUnet::<AB>::new(2, &d);
    let mut opt = GroupAdam::<AB>::new(&net);
    let mut seen = 0;
    let fit3 = unet::training::fit::FitData {
        epochs: 3,
        ..fit.clone()
    };
    unet::training::fit::fit_one_cycle(net, &mut opt, &fit3, &sched, &d, |_, _, _| {
        seen += 1;
        Ok(true)
    })
    .unwrap();
    assert_eq!(seen, 1, "stops after the epoch whose callback says so");
}

#[test]
fn fastai_unet_takes_optimiser_steps() {
    // the DynamicUnet has computed initial weights (ICNR); they must be trainable leaves
    let d = FlexDevice;
    let (n, s) = (2, 32);
    let mut net = unet::model::FastaiUnet::<AB>::new(3, &d);
    let mut opt = GroupAdam::<AB>::new(&net);
    let mut rng = SplitMix64::new(5);
    let (xs, ys) = batch(n, s, &mut rng);
    let x = Tensor::<AB, 4>::from_data(TensorData::new(xs, [n, 3, s, s]), &d);
    let y = Tensor::<AB, 3, Int>::from_data(TensorData::new(ys, [n, s, s]), &d);
    let w0 = net.blocks[0].shuf.conv.weight.val().into_data();
    for _ in 0..2 {
        let loss = unet::training::loss::masked_cross_entropy(net.forward(x.clone()), y.clone());
        assert!(f64::from(loss.clone().into_scalar()).is_finite());
        let grads = loss.backward();
        net = opt.step(net, &grads, [1e-3; 3], 0.9);
    }
    assert_ne!(
        net.blocks[0].shuf.conv.weight.val().into_data(),
        w0,
        "ICNR weights train"
    );
}
