//! Inference from a model directory: the model `unet-train` wrote, rebuilt from `model.json`
//! and its weights, on a device picked at run time, behind a backend-free interface
//! ([`Predict`]) so that callers need no burn types.

use std::path::{Path, PathBuf};

use crate::kernels::TrainBackend;
use anyhow::{Context, Result, bail, ensure};
use burn::tensor::activation::softmax;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use facepipe_core::io::{InputFile, read_input};

use crate::device::{BackendTask, DeviceSpec, dispatch};
use crate::model::Infer;
use crate::model::{Arch, Architecture};
use crate::model::{FastaiUnet, SmpUnet};
use crate::model_dir::{ModelInfo, load_weights};

pub use facepipe_formats::model::Weights;

/// A model directory opened for inference: its description, the weight file and the hashes
/// that identify both.
#[derive(Clone, Debug)]
pub struct Model {
    pub dir: PathBuf,
    pub info: ModelInfo,
    pub which: Weights,
    /// The burnpack file used.
    pub weights: PathBuf,
    /// `model.json` and the weight file as provenance records (absolute path, sha256, size).
    pub model_json: InputFile,
    pub weights_file: InputFile,
}

impl Model {
    /// Reads `dir/model.json` and checks that the chosen weight file is there.
    pub fn open(dir: &Path, which: Weights) -> Result<Model> {
        let info = ModelInfo::read(dir)?;
        let json = dir.join("model.json");
        let shown = json.display();
        ensure!(!info.classes.is_empty(), "{shown}: no classes");
        facepipe_core::palette::validate(&info.classes).with_context(|| format!("{shown}: classes"))?;
        crate::check_input_size(info.preprocessing.input_size).map_err(|e| anyhow::anyhow!("{shown}: {e}"))?;
        ensure!(
            info.preprocessing.std.iter().all(|&s| s > 0.0),
            "{shown}: preprocessing std must be positive"
        );
        let files = match which {
            Weights::Best => &info.best,
            Weights::Last => &info.last,
        };
        let weights = dir.join(&files.burnpack);
        if !weights.is_file() {
            bail!(
                "model directory {}: the {which} weights {} are missing (model.json names them; was the directory copied without its .bpk files?)",
                dir.display(),
                weights.display()
            );
        }
        let model_json = read_input(&json)?.1;
        let weights_file = read_input(&weights)?.1;
        if let Some(want) = &files.burnpack_sha256
            && *want != weights_file.sha256
        {
            bail!(
                "model directory {}: the {which} weights {} are not the ones {shown} was written with (sha256 {}…, expected {}…): a file copied in from another run? Use that run's model.json, or retrain",
                dir.display(),
                weights.display(),
                weights_file.sha256.chars().take(12).collect::<String>(),
                want.chars().take(12).collect::<String>()
            );
        }
        Ok(Model {
            dir: dir.to_path_buf(),
            info,
            which,
            weights,
            model_json,
            weights_file,
        })
    }

    pub fn n_classes(&self) -> usize {
        self.info.classes.len()
    }

    pub fn input_size(&self) -> u32 {
        self.info.preprocessing.input_size
    }
}

/// A network that turns normalised images into class probabilities.
pub trait Predict {
    /// `images`: `n × 3 × s × s` normalised, channel first. Returns softmax probabilities,
    /// `n × classes × s × s`.
    fn probabilities(&mut self, images: &[f32], n: usize) -> Result<Vec<f32>>;
}

struct Net<B: Backend, M> {
    net: M,
    device: B::Device,
    size: usize,
}

impl<B: Backend, M: Infer<B>> Predict for Net<B, M> {
    fn probabilities(&mut self, images: &[f32], n: usize) -> Result<Vec<f32>> {
        let s = self.size;
        ensure!(
            images.len() == n * 3 * s * s,
            "a batch of {n} needs {} values",
            n * 3 * s * s
        );
        let x = Tensor::<B, 4>::from_data(TensorData::new(images.to_vec(), [n, 3, s, s]), &self.device);
        softmax(self.net.logits(x), 1)
            .into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .map_err(|e| anyhow::anyhow!("reading probabilities: {e}"))
    }
}

/// Builds the model on `device`, loads its weights and hands a [`Predict`] to `f`.
pub fn with_predictor<T>(
    model: &Model,
    device: DeviceSpec,
    f: impl FnOnce(&mut dyn Predict) -> Result<T>,
) -> Result<T> {
    dispatch(device, Task { model, f })
}

struct Task<'a, F> {
    model: &'a Model,
    f: F,
}

impl<T, F: FnOnce(&mut dyn Predict) -> Result<T>> BackendTask for Task<'_, F> {
    type Output = T;
    fn run<B: TrainBackend>(self, device: B::Device) -> Result<T> {
        match self.model.info.arch {
            Arch::Fastai => self.go::<B::InnerBackend, FastaiUnet<B::InnerBackend>>(device),
            Arch::Smp => self.go::<B::InnerBackend, SmpUnet<B::InnerBackend>>(device),
        }
    }
}

impl<T, F: FnOnce(&mut dyn Predict) -> Result<T>> Task<'_, F> {
    fn go<B: Backend, M: Architecture<B> + Infer<B>>(self, device: B::Device) -> Result<T> {
        let m = self.model;
        let mut net = M::build(m.n_classes(), &device);
        load_weights(&mut net, &m.weights).with_context(|| {
            format!(
                "model directory {}: the weights do not fit a {} UNet with {} classes as model.json describes",
                m.dir.display(),
                m.info.arch,
                m.n_classes()
            )
        })?;
        let mut p = Net::<B, M> {
            net,
            device,
            size: m.input_size() as usize,
        };
        (self.f)(&mut p)
    }
}
