//! Runs a model directory's best weights (inference: BatchNorm with running statistics) on a
//! batch and writes the class probabilities, for `tests/interop/torch_parity.py` to compare
//! with the PyTorch model (segmentation_models_pytorch's Unet or fastai's DynamicUnet) that
//! loads the same directory's `.safetensors`.
//!
//! ```text
//! model_probabilities MODEL_DIR INPUT.safetensors(x: [n,3,s,s] f32) OUT.safetensors(p)
//! ```

use std::path::Path;

use anyhow::{Context, Result, ensure};
use safetensors::tensor::{Dtype, TensorView};
use unet::device::DeviceSpec;
use unet::inference::{Model, Weights, with_predictor};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    ensure!(
        args.len() == 4,
        "usage: model_probabilities MODEL_DIR INPUT.safetensors OUT.safetensors"
    );
    let model = Model::open(Path::new(&args[1]), Weights::Best)?;
    let bytes = std::fs::read(&args[2]).with_context(|| format!("reading {}", args[2]))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)?;
    let x = st.tensor("x").context("no tensor x")?;
    let [n, c, h, w]: [usize; 4] = x.shape().try_into().context("x must be 4-d")?;
    let s = model.input_size() as usize;
    ensure!(c == 3 && h == s && w == s, "x must be [n, 3, {s}, {s}]");
    let values: Vec<f32> = x
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let p = with_predictor(&model, DeviceSpec::Cpu, |net| net.probabilities(&values, n))?;
    let out: Vec<u8> = p.iter().flat_map(|v| v.to_le_bytes()).collect();
    let view = TensorView::new(Dtype::F32, vec![n, model.n_classes(), s, s], &out)?;
    std::fs::write(&args[3], safetensors::tensor::serialize([("p", view)], None)?)?;
    Ok(())
}
