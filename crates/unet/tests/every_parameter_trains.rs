//! Every parameter of both UNets trains: one backward pass gives each a gradient, and one
//! optimiser step moves each — as built, and as loaded from the files a run writes (burn's
//! `.bpk` and the PyTorch-named `.safetensors` `--pretrained` takes). A parameter whose
//! starting value was set without `require_grad` silently stays at it: every bias of the fastai
//! decoder did, until the step-by-step comparison with fastai found it (`make parity-step`).

use burn::backend::flex::FlexDevice;
use burn::backend::{Autodiff, Flex};
use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor, TensorData};
use unet::model::weights::load_pretrained;
use unet::model::{Arch, Architecture, FastaiUnet, SmpUnet};
use unet::model_dir::{load_weights, save_weights};
use unet::training::fit::Infer;
use unet::training::loss::{Loss, Objective};
use unet::training::optim::GroupAdam;

type AB = Autodiff<Flex>;

/// BatchNorm's running statistics: visited as float tensors, but no parameters.
fn running(path: &[String]) -> bool {
    path.last().is_some_and(|l| l.starts_with("running_"))
}

/// Each float parameter's path, and whether it has a (non-zero) gradient.
struct Grads<'a> {
    stack: Vec<String>,
    grads: &'a <AB as AutodiffBackend>::Gradients,
    without: Vec<String>,
    n: usize,
}

impl ModuleVisitor<AB> for Grads<'_> {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.stack.push(name.into());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.stack.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<AB, D>>) {
        if running(&self.stack) {
            return;
        }
        self.n += 1;
        let moved = param
            .val()
            .grad(self.grads)
            .is_some_and(|g| g.abs().max().into_scalar() > 0.0);
        if !moved {
            self.without.push(self.stack.join("."));
        }
    }
}

/// Every float parameter, flattened, by path.
struct Values {
    stack: Vec<String>,
    out: Vec<(String, Vec<f32>)>,
}

impl<B: Backend> ModuleVisitor<B> for Values {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.stack.push(name.into());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.stack.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if running(&self.stack) {
            return;
        }
        let v = param.val().into_data().convert::<f32>().into_vec().unwrap();
        self.out.push((self.stack.join("."), v));
    }
}

fn values<M: Module<AB>>(m: &M) -> Vec<(String, Vec<f32>)> {
    let mut v = Values {
        stack: vec![],
        out: vec![],
    };
    m.visit(&mut v);
    v.out
}

/// Checks one backward pass and one Adam step on a 64² batch of 2.
fn trains<M: Module<AB> + burn::module::AutodiffModule<AB> + Infer<AB> + Clone>(net: M, what: &str) {
    let device = FlexDevice;
    let n = 2 * 3 * 64 * 64;
    let x = Tensor::<AB, 4>::from_data(
        TensorData::new(
            (0..n).map(|i| ((i * 7919) % 255) as f32 / 64.0 - 2.0).collect(),
            [2, 3, 64, 64],
        ),
        &device,
    );
    let y = Tensor::<AB, 3, Int>::from_data(
        TensorData::new((0..2 * 64 * 64).map(|i| (i % 3) as i64).collect(), [2, 64, 64]),
        &device,
    );
    let loss = Loss::CrossEntropy.compute(net.logits(x), y);
    let grads = loss.backward();
    let mut g = Grads {
        stack: vec![],
        grads: &grads,
        without: vec![],
        n: 0,
    };
    net.visit(&mut g);
    assert!(g.n > 100, "{what}: only {} parameters seen", g.n);
    assert!(
        g.without.is_empty(),
        "{what}: {} of {} parameters get no gradient, so never train: {:?}",
        g.without.len(),
        g.n,
        g.without
    );
    let before = values(&net);
    let mut opt = GroupAdam::new(&net);
    let after = values(&opt.step(net, &grads, [1e-3; 3], 0.9));
    let still: Vec<&str> = before
        .iter()
        .zip(&after)
        .filter(|((_, a), (_, b))| a == b)
        .map(|((p, _), _)| p.as_str())
        .collect();
    assert!(
        still.is_empty(),
        "{what}: one Adam step left these unchanged: {still:?}"
    );
}

fn check<M>(arch: Arch)
where
    M: Architecture<AB> + burn::module::AutodiffModule<AB> + Infer<AB> + Clone,
{
    let device = FlexDevice;
    <AB as Backend>::seed(&device, 7);
    let built = M::build(3, &device);
    let dir = tempfile::tempdir().unwrap();
    save_weights(&built, dir.path(), "w", Some(arch)).unwrap();
    trains(built, &format!("{arch} as built"));

    let mut from_bpk = M::build(3, &device);
    load_weights(&mut from_bpk, &dir.path().join("w.bpk")).unwrap();
    trains(from_bpk, &format!("{arch} loaded from .bpk"));

    let mut from_torch = M::build(3, &device);
    load_pretrained(&mut from_torch, &dir.path().join("w.safetensors"), arch).unwrap();
    trains(from_torch, &format!("{arch} loaded from PyTorch-named .safetensors"));
}

#[test]
fn every_parameter_of_the_fastai_unet_trains() {
    check::<FastaiUnet<AB>>(Arch::Fastai);
}

#[test]
fn every_parameter_of_the_smp_unet_trains() {
    check::<SmpUnet<AB>>(Arch::Smp);
}
