//! Runs the ResNet34 encoder (inference: BatchNorm with running statistics) on a batch and
//! writes its feature maps, for `tests/parity/encoder_parity.py` to compare with torchvision.
//!
//! ```text
//! encoder_features WEIGHTS(.pth|.safetensors) INPUT.safetensors(x: [n,3,h,w] f32) OUT.safetensors
//! ```
//! OUT holds `stem`, `layer1` … `layer4` as f32.

use std::path::Path;

use anyhow::{Context, Result};
use burn::backend::Flex;
use burn::backend::flex::FlexDevice;
use burn::tensor::{Tensor, TensorData};
use safetensors::tensor::{Dtype, TensorView};
use unet::model::resnet::ResNet;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(
        args.len() == 4,
        "usage: encoder_features WEIGHTS INPUT.safetensors OUT.safetensors"
    );
    let d = FlexDevice;
    let mut enc = ResNet::<Flex>::resnet34(&d);
    let report = unet::model::weights::load_resnet(&mut enc, Path::new(&args[1]))?;
    eprintln!("{report}");
    let bytes = std::fs::read(&args[2]).with_context(|| format!("reading {}", args[2]))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)?;
    let x = st.tensor("x").context("no tensor x")?;
    let shape: [usize; 4] = x.shape().try_into().context("x must be 4-d")?;
    let values: Vec<f32> = x
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let f = enc.forward(Tensor::<Flex, 4>::from_data(TensorData::new(values, shape), &d));
    let named = [
        ("stem", f.stem),
        ("layer1", f.stages[0].clone()),
        ("layer2", f.stages[1].clone()),
        ("layer3", f.stages[2].clone()),
        ("layer4", f.stages[3].clone()),
    ];
    let out: Vec<(String, Vec<usize>, Vec<u8>)> = named
        .into_iter()
        .map(|(k, t)| {
            let dims = t.dims().to_vec();
            let v: Vec<f32> = t.into_data().to_vec().expect("f32");
            (k.to_string(), dims, v.iter().flat_map(|x| x.to_le_bytes()).collect())
        })
        .collect();
    let views: Vec<(String, TensorView<'_>)> = out
        .iter()
        .map(|(k, s, b)| Ok((k.clone(), TensorView::new(Dtype::F32, s.clone(), b)?)))
        .collect::<Result<_, safetensors::SafeTensorError>>()?;
    std::fs::write(&args[3], safetensors::tensor::serialize(views, None)?)?;
    Ok(())
}
