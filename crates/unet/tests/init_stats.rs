//! Both decoders start from their twins' initial weights: every decoder parameter's mean and
//! standard deviation at initialisation against the tables `tests/parity/fastai_init_stats.py`
//! and `tests/parity/smp_init_stats.py` generated from fastai's own `DynamicUnet` and
//! segmentation_models_pytorch's `Unet` (committed in tests/data). A constant tensor
//! (zero biases, BatchNorm's 1 and 1e-3) must be that constant; a random one must match in
//! mean and spread within what sampling allows for its size.

use burn::backend::Flex;
use serde_json::Value;
use unet::model::{FastaiUnet, SmpUnet};

type B = Flex;

/// Seeding burn's RNG and drawing a model's weights, one test at a time: the tests of this file
/// run on parallel threads and share the backend's one generator, so without it their draws
/// interleave differently from run to run.
fn seeded<M>(build: impl FnOnce(&burn::backend::flex::FlexDevice) -> M) -> M {
    static DRAW: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = DRAW.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let device = burn::backend::flex::FlexDevice;
    <B as burn::tensor::backend::Backend>::seed(&device, 7);
    build(&device)
}

/// Our parameter (as burn's `collect` names it) for each of fastai's names.
fn ours(fastai: &str) -> String {
    let (head, leaf) = fastai.rsplit_once('.').unwrap();
    let parts: Vec<&str> = head.split('.').collect();
    let conv = |p: &str| format!("{p}.{leaf}");
    let bn = |p: &str| format!("{p}.{}", if leaf == "weight" { "gamma" } else { "beta" });
    match parts[1..] {
        ["1"] => bn("bn"),
        ["3", "0", "0"] => conv("middle1"),
        ["3", "1", "0"] => conv("middle2"),
        [b @ ("4" | "5" | "6" | "7"), ref rest @ ..] => {
            let i = b.parse::<usize>().unwrap() - 4;
            match rest {
                ["shuf", "0", "0"] => conv(&format!("blocks.{i}.shuf.conv")),
                ["bn"] => bn(&format!("blocks.{i}.bn")),
                ["conv1", "0"] => conv(&format!("blocks.{i}.conv1")),
                ["conv2", "0"] => conv(&format!("blocks.{i}.conv2")),
                _ => panic!("unknown fastai parameter {fastai}"),
            }
        }
        ["8", "0", "0"] => conv("shuf.conv"),
        ["11", "convpath", "0", "0"] => conv("res1"),
        ["11", "convpath", "1", "0"] => conv("res2"),
        ["12", "0"] => conv("head"),
        _ => panic!("unknown fastai parameter {fastai}"),
    }
}

/// Each parameter of `table` (the twin's names, mapped to ours by `ours`) against `net`'s:
/// the list of those unlike the twin's.
fn unlike<M: burn_store::ModuleSnapshot<B>>(
    net: &M,
    table: &Value,
    ours: impl Fn(&str) -> String,
    twin: &str,
) -> Vec<String> {
    let snaps: std::collections::HashMap<String, Vec<f32>> = net
        .collect(None, None, true)
        .into_iter()
        // the downsample path's enum variants are no part of a PyTorch name
        .map(|s| {
            let path = s.full_path().replace(".Conv.", ".").replace(".Norm.", ".");
            (path, s.to_data().unwrap().to_vec::<f32>().unwrap())
        })
        .collect();
    let mut wrong = Vec::new();
    for p in table["params"].as_array().unwrap() {
        let name = p["name"].as_str().unwrap();
        let ours = ours(name);
        let v = snaps
            .get(&ours)
            .unwrap_or_else(|| panic!("{ours} ({twin}'s {name}) is not in the model"));
        let n = v.len() as f64;
        // ICNR repeats each sub-pixel filter four times: a quarter as many independent draws
        let n_eff = if ours.contains("shuf") { n / 4.0 } else { n };
        let shape: Vec<usize> = serde_json::from_value(p["shape"].clone()).unwrap();
        assert_eq!(v.len(), shape.iter().product::<usize>(), "{ours} vs {name}: size");
        let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
        let std = (v.iter().map(|&x| (f64::from(x) - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0)).sqrt();
        let (fm, fs) = (p["mean"].as_f64().unwrap(), p["std"].as_f64().unwrap());
        let ok = if fs == 0.0 {
            // a constant: exactly it, everywhere
            v.iter().all(|&x| (f64::from(x) - fm).abs() < 1e-7)
        } else {
            // both sides are samples of one distribution: the difference of two means spreads
            // by σ·√(2/n), of two standard deviations by about σ/√(n−1); 4 of those, with σ
            // estimated from both samples (pooled), not from the twin's alone, which for a
            // small tensor (a head bias of a dozen values) may itself have come out narrow
            let sigma = ((std * std + fs * fs) / 2.0).sqrt();
            let mean_tol = 4.0 * sigma * (2.0 / n_eff).sqrt();
            let std_tol = 4.0 * sigma / (n_eff - 1.0).sqrt() + 0.01 * fs;
            (mean - fm).abs() <= mean_tol && (std - fs).abs() <= std_tol
        };
        if !ok {
            wrong.push(format!(
                "{ours} ({twin} {name}): mean {mean:.5} std {std:.5}, {twin} mean {fm:.5} std {fs:.5}"
            ));
        }
    }
    wrong
}

#[test]
fn decoder_parameters_start_as_fastais() {
    let table: Value = serde_json::from_str(include_str!("data/fastai_init_stats.json")).expect("the committed table");
    let net = seeded(|device| FastaiUnet::<B>::new(12, device));
    assert_eq!(table["params"].as_array().unwrap().len(), 46);
    let wrong = unlike(&net, &table, ours, "fastai");
    assert!(
        wrong.is_empty(),
        "initial weights unlike fastai's:\n{}",
        wrong.join("\n")
    );
}

/// Our parameter for each of segmentation_models_pytorch's names.
fn ours_smp(smp: &str) -> String {
    let (head, leaf) = smp.rsplit_once('.').unwrap();
    let parts: Vec<&str> = head.split('.').collect();
    let norm = |l: &str| if l == "weight" { "gamma" } else { "beta" };
    match parts[..] {
        ["encoder", ..] if head.ends_with("bn1") || head.ends_with("bn2") || head.ends_with("downsample.1") => {
            format!("{head}.{}", norm(leaf))
        }
        ["encoder", ..] => smp.to_string(),
        ["decoder", "blocks", i, conv, "0"] => format!("blocks.{i}.{conv}.conv.{leaf}"),
        ["decoder", "blocks", i, conv, "1"] => {
            format!(
                "blocks.{i}.{conv}.bn.{}",
                if leaf == "weight" { "gamma" } else { "beta" }
            )
        }
        ["segmentation_head", "0"] => format!("head.{leaf}"),
        _ => panic!("unknown smp parameter {smp}"),
    }
}

/// The smp UNet starts as segmentation_models_pytorch's (`initialize_decoder`: convs
/// kaiming-uniform for ReLU, BatchNorm 1 and 0; `initialize_head`: xavier-uniform, bias 0; the
/// encoder torchvision's: convs kaiming-normal over fan-out), by the table
/// `tests/parity/smp_init_stats.py` generated. burn's default (PyTorch's layer default) draws
/// the decoder's convs √6 and the encoder's about 2.5 times narrower, and trained less well on
/// real faces (docs/limits.md).
#[test]
fn parameters_start_as_smps() {
    let table: Value = serde_json::from_str(include_str!("data/smp_init_stats.json")).expect("the committed table");
    let net = seeded(|device| SmpUnet::<B>::new(12, device));
    assert_eq!(table["params"].as_array().unwrap().len(), 32 + 108);
    let wrong = unlike(&net, &table, ours_smp, "smp");
    assert!(
        wrong.is_empty(),
        "initial weights unlike segmentation_models_pytorch's:\n{}",
        wrong.join("\n")
    );
}
