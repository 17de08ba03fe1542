//! torchvision's ResNet34 state dict, written as safetensors with torchvision's own key names
//! and shapes (generated here from torchvision's architecture, not from our module), loads into
//! the encoder with every key landing where it should.

use std::path::Path;

use burn::backend::Flex;

use safetensors::Dtype;
use safetensors::tensor::TensorView;
use unet::model::resnet::ResNet;
use unet::model::weights::load_resnet;

type B = Flex;

use unet::model::weights::torchvision_resnet34;

/// Each tensor filled with its own value (index-derived), so we can tell where each landed.
fn value_of(k: usize) -> f32 {
    0.25 + k as f32 * 0.001
}

fn write(path: &Path, keys: &[(String, Vec<usize>)]) {
    write_typed(path, keys, Dtype::F32, |_, _, _| {});
}

fn index(keys: &[(String, Vec<usize>)], name: &str) -> usize {
    keys.iter().position(|(k, _)| k == name).unwrap()
}

fn all_equal<const D: usize>(t: burn::tensor::Tensor<B, D>, v: f32) -> bool {
    t.into_data()
        .to_vec::<f32>()
        .unwrap()
        .iter()
        .all(|&x| (x - v).abs() < 1e-7)
}

#[test]
fn every_torchvision_key_lands() {
    let device = burn::backend::flex::FlexDevice;
    let keys = torchvision_resnet34();
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("resnet34.safetensors");
    write(&file, &keys);
    let mut enc = ResNet::<B>::resnet34(&device);
    let report = load_resnet(&mut enc, &file).unwrap();
    assert_eq!(report.applied, 180, "{report}");
    assert!(report.missing.is_empty());
    // fc.weight, fc.bias and one num_batches_tracked per BatchNorm (36) are unused
    assert_eq!(report.unused.len(), 2 + 36, "{:?}", report.unused);

    assert!(all_equal(
        enc.conv1.weight.val(),
        value_of(index(&keys, "conv1.weight"))
    ));
    assert!(all_equal(enc.bn1.gamma.val(), value_of(index(&keys, "bn1.weight"))));
    assert!(all_equal(enc.bn1.beta.val(), value_of(index(&keys, "bn1.bias"))));
    assert!(all_equal(
        enc.layer3[2].conv1.weight.val(),
        value_of(index(&keys, "layer3.2.conv1.weight"))
    ));
    assert!(all_equal(
        enc.layer4[2].bn2.running_var.value(),
        value_of(index(&keys, "layer4.2.bn2.running_var"))
    ));
    let ds = enc.layer2[0].downsample.as_ref().unwrap();
    match (&ds[0], &ds[1]) {
        (unet::model::resnet::DownsampleLayer::Conv(c), unet::model::resnet::DownsampleLayer::Norm(n)) => {
            assert!(all_equal(
                c.weight.val(),
                value_of(index(&keys, "layer2.0.downsample.0.weight"))
            ));
            assert!(all_equal(
                n.running_mean.value(),
                value_of(index(&keys, "layer2.0.downsample.1.running_mean"))
            ));
        }
        _ => panic!("downsample layers out of order"),
    }
}

#[test]
fn a_wrong_shape_or_a_missing_key_names_the_key() {
    let device = burn::backend::flex::FlexDevice;
    let d = tempfile::tempdir().unwrap();

    let mut keys = torchvision_resnet34();
    let k = index(&keys, "layer2.1.conv2.weight");
    keys[k].1 = vec![128, 128, 5, 5];
    let file = d.path().join("shape.safetensors");
    write(&file, &keys);
    let e = format!(
        "{:#}",
        load_resnet(&mut ResNet::<B>::resnet34(&device), &file).unwrap_err()
    );
    assert!(
        e.contains("layer2.1.conv2.weight") && e.contains("shape.safetensors"),
        "{e}"
    );

    let mut keys = torchvision_resnet34();
    keys.retain(|(k, _)| k != "layer4.2.bn2.running_var");
    let file = d.path().join("missing.safetensors");
    write(&file, &keys);
    let e = format!(
        "{:#}",
        load_resnet(&mut ResNet::<B>::resnet34(&device), &file).unwrap_err()
    );
    assert!(e.contains("layer4.2.bn2.running_var"), "{e}");

    let e = format!(
        "{:#}",
        load_resnet(&mut ResNet::<B>::resnet34(&device), &d.path().join("nope.pth")).unwrap_err()
    );
    assert!(e.contains("nope.pth") && e.contains("does not exist"), "{e}");
}

#[test]
fn encoder_feature_shapes() {
    let device = burn::backend::flex::FlexDevice;
    let enc = ResNet::<B>::resnet34(&device);
    let x = burn::tensor::Tensor::<B, 4>::zeros([1, 3, 64, 96], &device);
    let f = enc.forward(x);
    assert_eq!(f.stem.dims(), [1, 64, 32, 48]);
    let dims: Vec<[usize; 4]> = f.stages.iter().map(|t| t.dims()).collect();
    assert_eq!(dims, [[1, 64, 16, 24], [1, 128, 8, 12], [1, 256, 4, 6], [1, 512, 2, 3]]);
}

#[test]
fn unet_logits_have_the_input_size_for_any_size() {
    let device = burn::backend::flex::FlexDevice;
    let net = unet::model::SmpUnet::<B>::new(12, &device);
    for (h, w) in [(64, 64), (50, 70), (33, 97)] {
        let y = net.forward(burn::tensor::Tensor::<B, 4>::zeros([2, 3, h, w], &device));
        assert_eq!(y.dims(), [2, 12, h, w]);
    }
}

#[test]
fn fastai_unet_matches_the_reference_size_and_shapes() {
    let device = burn::backend::flex::FlexDevice;
    let net = unet::model::FastaiUnet::<B>::new(12, &device);
    // fastai's DynamicUnet(resnet34, n_out=12): 41,222,168 parameters, worked out layer by
    // layer from fastai's code (docs/stages.md: 41.2 M). burn also counts BatchNorm running
    // means and variances: 9,536 BatchNorm channels (8,512 in the encoder, 512 after it, 512 on
    // the skips) add 2 × 9,536.
    assert_eq!(burn::module::Module::num_params(&net), 41_222_168 + 2 * 9_536);
    for (h, w) in [(64, 64), (50, 70)] {
        let y = net.forward(burn::tensor::Tensor::<B, 4>::zeros([1, 3, h, w], &device));
        assert_eq!(y.dims(), [1, 12, h, w]);
    }
}

#[test]
fn pixel_shuffle_follows_pytorch_order() {
    let device = burn::backend::flex::FlexDevice;
    // 4 channels of 1×1 → 1 channel of 2×2: channel k goes to (k / 2, k % 2)
    let x = burn::tensor::Tensor::<B, 4>::from_data(
        burn::tensor::TensorData::new(vec![0f32, 1.0, 2.0, 3.0], [1, 4, 1, 1]),
        &device,
    );
    let y = unet::model::pixel_shuffle(x, 2);
    assert_eq!(y.dims(), [1, 1, 2, 2]);
    assert_eq!(y.into_data().to_vec::<f32>().unwrap(), vec![0.0, 1.0, 2.0, 3.0]);
}

#[test]
fn icnr_starts_with_equal_subpixel_filters() {
    let device = burn::backend::flex::FlexDevice;
    let s = unet::model::PixelShuffleIcnr::<B>::new(5, 3, &device);
    let w = s.conv.weight.val().into_data().to_vec::<f32>().unwrap(); // [12, 5, 1, 1]
    for c in 0..3 {
        for k in 1..4 {
            assert_eq!(w[(4 * c) * 5..(4 * c + 1) * 5], w[(4 * c + k) * 5..(4 * c + k + 1) * 5]);
        }
    }
    assert_ne!(w[0..5], w[20..25], "different output channels differ");
}

/// Writes `keys` (torchvision's, possibly edited) with every float tensor in `dtype` (values `value_of(k)`),
/// then lets `edit` change one tensor's bytes/type.
fn write_typed(
    path: &Path,
    keys: &[(String, Vec<usize>)],
    dtype: Dtype,
    edit: impl Fn(&str, &mut Dtype, &mut Vec<u8>),
) {
    let bufs: Vec<(String, Vec<usize>, Dtype, Vec<u8>)> = keys
        .iter()
        .enumerate()
        .map(|(k, (name, shape))| {
            let n: usize = shape.iter().product();
            let v = value_of(k);
            let (mut d, mut b): (Dtype, Vec<u8>) = if name.ends_with("num_batches_tracked") {
                (Dtype::I64, 7i64.to_le_bytes().to_vec())
            } else {
                match dtype {
                    Dtype::F64 => (
                        dtype,
                        std::iter::repeat_n(f64::from(v).to_le_bytes(), n).flatten().collect(),
                    ),
                    // bf16: the top half of the f32
                    Dtype::BF16 => (
                        dtype,
                        std::iter::repeat_n(((v.to_bits() >> 16) as u16).to_le_bytes(), n)
                            .flatten()
                            .collect(),
                    ),
                    // f16 of 0.25 + k/1000 (k < 256): exponent -2 or -1, rounded mantissa
                    Dtype::F16 => {
                        let e = v.log2().floor() as i32;
                        let m = ((v / 2f32.powi(e) - 1.0) * 1024.0).round() as u16;
                        let h = (((e + 15) as u16) << 10) | m;
                        (dtype, std::iter::repeat_n(h.to_le_bytes(), n).flatten().collect())
                    }
                    _ => (Dtype::F32, std::iter::repeat_n(v.to_le_bytes(), n).flatten().collect()),
                }
            };
            edit(name, &mut d, &mut b);
            (name.clone(), shape.clone(), d, b)
        })
        .collect();
    let views: Vec<(String, TensorView)> = bufs
        .iter()
        .map(|(n, s, d, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

#[test]
fn f16_bf16_and_f64_files_are_converted() {
    let device = burn::backend::flex::FlexDevice;
    let d = tempfile::tempdir().unwrap();
    let keys = torchvision_resnet34();
    let k = index(&keys, "layer3.2.conv1.weight");
    for (dtype, tol) in [(Dtype::F64, 1e-7), (Dtype::F16, 1e-3), (Dtype::BF16, 4e-3)] {
        let file = d.path().join(format!("{dtype:?}.safetensors"));
        write_typed(&file, &keys, dtype, |_, _, _| {});
        let mut enc = ResNet::<B>::resnet34(&device);
        let report = load_resnet(&mut enc, &file).unwrap();
        assert_eq!(report.applied, 180, "{dtype:?}");
        let got = enc.layer3[2].conv1.weight.val().into_data().to_vec::<f32>().unwrap();
        assert!(
            got.iter().all(|&x| (x - value_of(k)).abs() < tol),
            "{dtype:?}: {}",
            got[0]
        );
    }
}

#[test]
fn integer_weights_and_non_finite_values_are_refused_by_name() {
    let device = burn::backend::flex::FlexDevice;
    let d = tempfile::tempdir().unwrap();
    let load = |file: &Path| {
        format!(
            "{:#}",
            load_resnet(&mut ResNet::<B>::resnet34(&device), file).unwrap_err()
        )
    };

    let file = d.path().join("i64.safetensors");
    write_typed(&file, &torchvision_resnet34(), Dtype::F32, |name, d, b| {
        if name == "conv1.weight" {
            *d = Dtype::I64;
            *b = vec![0u8; 64 * 3 * 7 * 7 * 8];
        }
    });
    let e = load(&file);
    assert!(
        e.contains("conv1.weight") && e.contains("integer") && e.contains("I64"),
        "{e}"
    );

    let file = d.path().join("nan.safetensors");
    write_typed(&file, &torchvision_resnet34(), Dtype::F32, |name, _, b| {
        if name == "layer1.0.bn2.bias" {
            b[8..12].copy_from_slice(&f32::NAN.to_le_bytes());
        }
    });
    let e = load(&file);
    // PyTorch's name (bias), not burn's (beta)
    assert!(e.contains("layer1.0.bn2.bias") && e.contains("non-finite"), "{e}");

    let file = d.path().join("inf.safetensors");
    write_typed(&file, &torchvision_resnet34(), Dtype::F64, |name, _, b| {
        if name == "bn1.running_var" {
            b[0..8].copy_from_slice(&1e300f64.to_le_bytes()); // beyond f32: inf after conversion
        }
    });
    let e = load(&file);
    assert!(e.contains("bn1.running_var") && e.contains("non-finite"), "{e}");

    // broken bytes: an error naming the file, never a panic
    let file = d.path().join("junk.safetensors");
    std::fs::write(&file, b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":1}").unwrap();
    let e = load(&file);
    assert!(e.contains("junk.safetensors"), "{e}");
    let file = d.path().join("junk.pth");
    std::fs::write(&file, b"PK\x03\x04 not really a zip").unwrap();
    let e = load(&file);
    assert!(e.contains("junk.pth"), "{e}");
}
