//! fastai's Adam, with parameter groups built in (burn's Adam takes one learning rate and a
//! fixed β1; fastai's needs three groups and a β1 that the one-cycle schedule moves per batch).
//!
//! Per parameter with a gradient, in fastai 2.8's order (its `Adam`; the numbers are in docs/stages.md):
//! 1. decoupled weight decay `p ← p·(1 − lr·wd)`, except for BatchNorm weights/biases and biases;
//! 2. `m ← β1·m + (1 − β1)·g`, `v ← β2·v + (1 − β2)·g²`, `step += 1`;
//! 3. `p ← p − lr · (m / (1 − β1^step)) / (√(v / (1 − β2^step)) + eps)`, eps outside the root,
//!    the bias correction using the current β1.
//!
//! Groups, by parameter path: 0 = `encoder.{conv1,bn1,layer1,layer2}`, 1 = `encoder.{layer3,
//! layer4}`, 2 = everything else (the decoder). `freeze` leaves groups 0–1 untouched except
//! their BatchNorm weights and biases; `freeze` and `unfreeze` clear the optimiser state.

use std::collections::HashMap;

use anyhow::{Context, Result, ensure};

use burn::module::{AutodiffModule, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};

use crate::kernels::{AdamStep, Kernels};

/// Which of the three groups a parameter path belongs to.
pub fn group_of(path: &str) -> usize {
    let mut parts = path.split('.');
    match (parts.next(), parts.next()) {
        (Some("encoder"), Some("conv1" | "bn1" | "layer1" | "layer2")) => 0,
        (Some("encoder"), Some("layer3" | "layer4")) => 1,
        _ => 2,
    }
}

/// What the optimiser knows about a parameter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamInfo {
    pub path: String,
    pub group: usize,
    /// A BatchNorm weight or bias (`gamma`, `beta`).
    pub batchnorm: bool,
    /// A bias (no weight decay).
    pub bias: bool,
}

struct Paths {
    stack: Vec<String>,
    out: HashMap<ParamId, ParamInfo>,
}

impl<B: Backend> ModuleVisitor<B> for Paths {
    fn enter_module(&mut self, name: &str, _container: &str) {
        self.stack.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container: &str) {
        self.stack.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let path = self.stack.join(".");
        let last = self.stack.last().map(String::as_str).unwrap_or("");
        let info = ParamInfo {
            group: group_of(&path),
            batchnorm: matches!(last, "gamma" | "beta"),
            bias: matches!(last, "bias" | "beta"),
            path,
        };
        self.out.insert(param.id, info);
    }
}

/// Every float parameter of a module with its path, group and kind.
pub fn param_info<B: Backend, M: burn::module::Module<B>>(module: &M) -> HashMap<ParamId, ParamInfo> {
    let mut v = Paths {
        stack: vec![],
        out: HashMap::new(),
    };
    module.visit(&mut v);
    v.out
}

/// The optimiser's state in plain numbers (see [`GroupAdam::export`]).
#[derive(Clone, Debug, PartialEq)]
pub struct SavedAdam {
    pub frozen: bool,
    pub moments: Vec<SavedMoments>,
}

/// One parameter's Adam moments, flattened, with its path and step count.
#[derive(Clone, Debug, PartialEq)]
pub struct SavedMoments {
    pub path: String,
    pub m: Vec<f32>,
    pub v: Vec<f32>,
    pub step: i32,
}

/// Adam moments of one parameter, flattened.
#[derive(Clone, Debug)]
struct Moments<B: Backend> {
    m: Tensor<B, 1>,
    v: Tensor<B, 1>,
    step: i32,
}

/// fastai's Adam over three parameter groups.
#[derive(Debug, Clone)]
pub struct GroupAdam<B: AutodiffBackend> {
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    frozen: bool,
    info: HashMap<ParamId, ParamInfo>,
    state: HashMap<ParamId, Moments<B::InnerBackend>>,
}

impl<B: AutodiffBackend> GroupAdam<B> {
    /// fastai's defaults: β2 0.99, eps 1e-5, weight decay 0.01.
    pub fn new<M: AutodiffModule<B>>(module: &M) -> Self {
        GroupAdam {
            beta2: 0.99,
            eps: 1e-5,
            weight_decay: 0.01,
            frozen: false,
            info: param_info(module),
            state: HashMap::new(),
        }
    }

    /// Freezes groups 0–1 except their BatchNorm weights and biases; clears the state.
    pub fn freeze(&mut self) {
        self.frozen = true;
        self.state.clear();
    }

    /// Trains every group; clears the state.
    pub fn unfreeze(&mut self) {
        self.frozen = false;
        self.state.clear();
    }

    pub fn is_frozen(&self) -> bool {
        self.frozen
    }

    /// The state by parameter path (ids change when a model is rebuilt; paths do not), in
    /// path order, for checkpoints.
    pub fn export(&self) -> Result<SavedAdam> {
        let mut moments = Vec::new();
        for (id, st) in &self.state {
            let path = self
                .info
                .get(id)
                .map(|i| i.path.clone())
                .context("optimiser state of an unknown parameter")?;
            let read = |t: &Tensor<B::InnerBackend, 1>| {
                t.to_data()
                    .convert::<f32>()
                    .into_vec::<f32>()
                    .map_err(|e| anyhow::anyhow!("reading optimiser state of {path}: {e}"))
            };
            moments.push(SavedMoments {
                m: read(&st.m)?,
                v: read(&st.v)?,
                step: st.step,
                path,
            });
        }
        moments.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(SavedAdam {
            frozen: self.frozen,
            moments,
        })
    }

    /// Restores an exported state onto this optimiser's module (same architecture).
    pub fn import(&mut self, saved: SavedAdam, device: &B::Device) -> Result<()> {
        let by_path: HashMap<&str, (ParamId, &ParamInfo)> =
            self.info.iter().map(|(id, i)| (i.path.as_str(), (*id, i))).collect();
        let mut state = HashMap::new();
        for s in saved.moments {
            let (id, _) = by_path
                .get(s.path.as_str())
                .with_context(|| format!("optimiser state for {:?}, which the model does not have", s.path))?;
            ensure!(
                s.m.len() == s.v.len(),
                "optimiser state of {}: moments of different lengths",
                s.path
            );
            let t = |v: Vec<f32>| Tensor::from_data(burn::tensor::TensorData::new(v.clone(), [v.len()]), device);
            state.insert(
                *id,
                Moments {
                    m: t(s.m),
                    v: t(s.v),
                    step: s.step,
                },
            );
        }
        self.frozen = saved.frozen;
        self.state = state;
        Ok(())
    }

    fn trains(&self, info: &ParamInfo) -> bool {
        !self.frozen || info.group == 2 || info.batchnorm
    }

    /// One step with per-group learning rates and the current β1.
    pub fn step<M: AutodiffModule<B>>(&mut self, module: M, grads: &B::Gradients, lrs: [f64; 3], beta1: f64) -> M
    where
        B::InnerBackend: Kernels,
    {
        let mut mapper = StepMapper {
            opt: self,
            grads,
            lrs,
            beta1,
        };
        module.map(&mut mapper)
    }
}

struct StepMapper<'a, B: AutodiffBackend> {
    opt: &'a mut GroupAdam<B>,
    grads: &'a B::Gradients,
    lrs: [f64; 3],
    beta1: f64,
}

impl<B: AutodiffBackend<InnerBackend: Kernels>> ModuleMapper<B> for StepMapper<'_, B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        let Some(info) = self.opt.info.get(&id).cloned() else {
            return Param::from_mapped_value(id, tensor, mapper);
        };
        let grad = match tensor.grad(self.grads) {
            Some(g) if self.opt.trains(&info) => g,
            _ => return Param::from_mapped_value(id, tensor, mapper),
        };
        let require_grad = tensor.is_require_grad();
        let lr = self.lrs[info.group];
        let shape = tensor.shape();
        let n = shape.num_elements();
        let x: Tensor<B::InnerBackend, 1> = tensor.inner().reshape([n]);
        let g: Tensor<B::InnerBackend, 1> = grad.reshape([n]);
        let st = self.opt.state.remove(&id).unwrap_or_else(|| Moments {
            m: g.zeros_like(),
            v: g.zeros_like(),
            step: 0,
        });
        let h = AdamStep {
            lr,
            beta1: self.beta1,
            beta2: self.opt.beta2,
            eps: self.opt.eps,
            decay: (self.opt.weight_decay > 0.0 && !info.batchnorm && !info.bias)
                .then_some(1.0 - lr * self.opt.weight_decay),
            step: st.step + 1,
        };
        let [x, m, v] = <B::InnerBackend as Kernels>::adam_step(x, g, st.m, st.v, &h);
        self.opt.state.insert(id, Moments { m, v, step: h.step });
        let mut out = Tensor::from_inner(x.reshape(shape));
        if require_grad {
            out = out.require_grad();
        }
        Param::from_mapped_value(id, out, mapper)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::flex::FlexDevice;
    use burn::backend::{Autodiff, Flex};
    use burn::module::Module;
    use burn::nn::conv::{Conv2d, Conv2dConfig};
    use burn::nn::{BatchNorm, BatchNormConfig};

    type AB = Autodiff<Flex>;

    #[derive(Module, Debug)]
    struct Enc<B: Backend> {
        layer1: Conv2d<B>,
        bn1: BatchNorm<B>,
    }

    #[derive(Module, Debug)]
    struct Net<B: Backend> {
        encoder: Enc<B>,
        head: Conv2d<B>,
    }

    fn net() -> Net<AB> {
        let d = FlexDevice;
        Net {
            encoder: Enc {
                layer1: Conv2dConfig::new([2, 2], [1, 1]).init(&d),
                bn1: BatchNormConfig::new(2).init(&d),
            },
            head: Conv2dConfig::new([2, 1], [1, 1]).init(&d),
        }
    }

    /// Sum of squares: a plain sum would give BatchNorm's gamma a zero gradient (normalised
    /// values sum to zero).
    fn forward(n: &Net<AB>, x: Tensor<AB, 4>) -> Tensor<AB, 1> {
        let y = n.head.forward(n.encoder.bn1.forward(n.encoder.layer1.forward(x)));
        (y.clone() * y).sum()
    }

    fn vals<const D: usize>(t: Tensor<AB, D>) -> Vec<f32> {
        t.into_data().to_vec::<f32>().unwrap()
    }

    #[test]
    fn groups_and_kinds_from_paths() {
        assert_eq!(group_of("encoder.layer2.0.conv1.weight"), 0);
        assert_eq!(group_of("encoder.bn1.gamma"), 0);
        assert_eq!(group_of("encoder.layer4.2.bn2.beta"), 1);
        assert_eq!(group_of("blocks.0.conv1.weight"), 2);
        let info = param_info(&net());
        let by_path: HashMap<&str, &ParamInfo> = info.values().map(|i| (i.path.as_str(), i)).collect();
        assert!(by_path["encoder.bn1.gamma"].batchnorm && !by_path["encoder.bn1.gamma"].bias);
        assert!(by_path["encoder.bn1.beta"].batchnorm);
        assert!(by_path["head.bias"].bias && !by_path["head.weight"].bias);
        assert_eq!(by_path["head.weight"].group, 2);
    }

    #[test]
    fn first_step_matches_the_closed_form() {
        // After one step m̂ = g and v̂ = g², so p' = p·(1 − lr·wd) − lr·g/(|g| + eps).
        let d = FlexDevice;
        let n = net();
        let x = Tensor::<AB, 4>::from_floats([[[[1.0, 2.0]], [[0.5, -1.0]]]], &d);
        let grads = forward(&n, x).backward();
        let w = n.head.weight.val();
        let g = w.grad(&grads).unwrap().into_data().to_vec::<f32>().unwrap();
        let b = n.head.bias.as_ref().unwrap().val();
        let gb = b.grad(&grads).unwrap().into_data().to_vec::<f32>().unwrap();
        let (w0, b0) = (vals(w.clone()), vals(b.clone()));
        let mut opt = GroupAdam::<AB>::new(&n);
        let lrs = [0.001, 0.01, 0.1];
        let n2 = opt.step(n, &grads, lrs, 0.9);
        let w1 = vals(n2.head.weight.val());
        for i in 0..2 {
            let want = w0[i] as f64 * (1.0 - 0.1 * 0.01) - 0.1 * g[i] as f64 / ((g[i] as f64).abs() + 1e-5);
            assert!((w1[i] as f64 - want).abs() < 1e-5, "{} vs {want}", w1[i]);
        }
        let b1 = vals(n2.head.bias.as_ref().unwrap().val());
        let want = b0[0] as f64 - 0.1 * gb[0] as f64 / ((gb[0] as f64).abs() + 1e-5);
        assert!(
            (b1[0] as f64 - want).abs() < 1e-5,
            "bias gets no weight decay: {} vs {want}",
            b1[0]
        );
    }

    #[test]
    fn freeze_keeps_encoder_weights_but_trains_batchnorm() {
        let d = FlexDevice;
        let n = net();
        let x = Tensor::<AB, 4>::from_floats([[[[1.0, 2.0]], [[0.5, -1.0]]]], &d);
        let grads = forward(&n, x).backward();
        let before = (
            vals(n.encoder.layer1.weight.val()),
            vals(n.encoder.bn1.gamma.val()),
            vals(n.head.weight.val()),
        );
        let mut opt = GroupAdam::<AB>::new(&n);
        opt.freeze();
        let n2 = opt.step(n, &grads, [0.1, 0.1, 0.1], 0.9);
        assert_eq!(
            vals(n2.encoder.layer1.weight.val()),
            before.0,
            "frozen conv weights unchanged"
        );
        assert_ne!(
            vals(n2.encoder.bn1.gamma.val()),
            before.1,
            "encoder BatchNorm affine trains"
        );
        assert_ne!(vals(n2.head.weight.val()), before.2, "decoder trains");
        assert_eq!(
            opt.state.len(),
            4,
            "state for the bn gamma/beta and head weight/bias only"
        );
        opt.unfreeze();
        assert!(opt.state.is_empty());
    }
}
