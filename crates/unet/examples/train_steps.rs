//! Training steps with every tensor written out, for `tests/parity/parity_step.py` to repeat
//! in fastai and compare tensor by tensor (`make parity-step`).
//!
//! ```text
//! train_steps ARCH SPLIT.json OUT_DIR [--size 128] [--bs 4] [--seed 2020] [--epochs 40]
//!     [--lr 3e-3] [--steps 10] [--save 1,2,9,10] [--valid 8]
//! ```
//!
//! Builds the model as unet-train does (seeded, random weights) and trains it the way
//! `fit_one_cycle(EPOCHS, LR)` does (cross-entropy, fastai's Adam over three groups, the
//! one-cycle learning rate and momentum for a fit of `EPOCHS` epochs of this split's batches),
//! for `STEPS` batches of facepipe's own loader. Writes into OUT_DIR, under the PyTorch twin's
//! names (what unet-train's `.safetensors` use):
//!
//! * `init.safetensors`: the initial weights;
//! * `batches.safetensors`: `x.K`/`y.K` (step K's batch), `vx.J`/`vy.J` (the validation batches),
//!   `lr.K`/`mom.K` (the decoder group's learning rate and the momentum used at step K),
//!   `loss.K` (the batch loss);
//! * `act.safetensors`: step 1's forward results, by the name of the module computing them;
//! * `grad.K`, `param.K` (after the step, BatchNorm running statistics included), `m.K`, `v.K`
//!   (Adam's moments after the step) `.safetensors` for each K of `--save`;
//! * `eval.safetensors`: after step 1 and after the last step K, the inference network's
//!   logits on the first validation batch (`logits.K`) and the validation loss as unet-train
//!   computes it (`loss.K`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorData};
use safetensors::tensor::{Dtype, TensorView};

use unet::data::loader::{Batch, SplitSet, batches};
use unet::device::CpuBackend;
use unet::model::{Arch, Architecture, FastaiUnet, SmpUnet, Tap};
use unet::model_dir::save_weights;
use unet::training::fit::{Infer, Segmenter, evaluate, to_tensors};
use unet::training::loss::{Loss, Objective};
use unet::training::optim::GroupAdam;
use unet::training::schedule::{OneCycle, position};

type B = CpuBackend;

/// Both UNets' tapped forward.
trait Tapped<Bk: Backend> {
    fn tapped(&self, x: Tensor<Bk, 4>, tap: Tap<'_, Bk>) -> Tensor<Bk, 4>;
}

impl<Bk: unet::kernels::Kernels> Tapped<Bk> for FastaiUnet<Bk> {
    fn tapped(&self, x: Tensor<Bk, 4>, tap: Tap<'_, Bk>) -> Tensor<Bk, 4> {
        self.forward_tapped(x, tap)
    }
}

impl<Bk: unet::kernels::Kernels> Tapped<Bk> for SmpUnet<Bk> {
    fn tapped(&self, x: Tensor<Bk, 4>, tap: Tap<'_, Bk>) -> Tensor<Bk, 4> {
        self.forward_tapped(x, tap)
    }
}

struct Args {
    arch: Arch,
    split: PathBuf,
    out: PathBuf,
    size: u32,
    bs: usize,
    seed: u64,
    epochs: usize,
    lr: f64,
    steps: usize,
    save: Vec<usize>,
    valid: usize,
}

fn args() -> Result<Args> {
    let mut it = std::env::args().skip(1);
    let mut pos = Vec::new();
    let mut a = Args {
        arch: Arch::Fastai,
        split: PathBuf::new(),
        out: PathBuf::new(),
        size: 128,
        bs: 4,
        seed: 2020,
        epochs: 40,
        lr: 3e-3,
        steps: 10,
        save: vec![1, 2, 10],
        valid: 8,
    };
    while let Some(s) = it.next() {
        let mut val = |name: &str| it.next().with_context(|| format!("{name} needs a value"));
        match s.as_str() {
            "--size" => a.size = val("--size")?.parse()?,
            "--bs" => a.bs = val("--bs")?.parse()?,
            "--seed" => a.seed = val("--seed")?.parse()?,
            "--epochs" => a.epochs = val("--epochs")?.parse()?,
            "--lr" => a.lr = val("--lr")?.parse()?,
            "--steps" => a.steps = val("--steps")?.parse()?,
            "--valid" => a.valid = val("--valid")?.parse()?,
            "--save" => a.save = val("--save")?.split(',').map(str::parse).collect::<Result<_, _>>()?,
            f if f.starts_with("--") => bail!("unknown flag {f}"),
            _ => pos.push(s),
        }
    }
    let [arch, split, out]: [String; 3] = pos
        .try_into()
        .map_err(|_| anyhow::anyhow!("usage: train_steps ARCH SPLIT.json OUT_DIR [flags]"))?;
    a.arch = arch.parse().map_err(anyhow::Error::msg)?;
    a.split = split.into();
    a.out = out.into();
    ensure!(
        a.save.iter().all(|&k| (1..=a.steps).contains(&k)),
        "--save steps must be within 1..=--steps"
    );
    Ok(a)
}

fn main() -> Result<()> {
    let a = args()?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    match a.arch {
        Arch::Fastai => run::<FastaiUnet<B>>(&a),
        Arch::Smp => run::<SmpUnet<B>>(&a),
    }
}

/// Named f32 tensors, written as one safetensors file.
#[derive(Default)]
struct Out(Vec<(String, Dtype, Vec<usize>, Vec<u8>)>);

impl Out {
    fn f32(&mut self, name: &str, shape: Vec<usize>, v: &[f32]) {
        self.push(
            name,
            Dtype::F32,
            shape,
            v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        );
    }
    fn tensor<Bk: Backend, const D: usize>(&mut self, name: &str, t: &Tensor<Bk, D>) {
        let v: Vec<f32> = t.to_data().convert::<f32>().into_vec().expect("f32 tensor");
        self.f32(name, t.dims().to_vec(), &v);
    }
    fn i64(&mut self, name: &str, shape: Vec<usize>, v: &[i64]) {
        self.push(
            name,
            Dtype::I64,
            shape,
            v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        );
    }
    fn push(&mut self, name: &str, dtype: Dtype, shape: Vec<usize>, bytes: Vec<u8>) {
        self.0.push((name.into(), dtype, shape, bytes));
    }
    fn write(&self, path: &Path) -> Result<()> {
        let views = self
            .0
            .iter()
            .map(|(n, d, s, b)| Ok((n.clone(), TensorView::new(*d, s.clone(), b)?)))
            .collect::<Result<Vec<_>>>()?;
        std::fs::write(path, safetensors::tensor::serialize(views, None)?)
            .with_context(|| format!("writing {}", path.display()))
    }
}

/// A copy of a module whose float parameters hold other values, looked up by path (zeros
/// where none is given): gradients and Adam moments then save under the parameters' names.
/// Running statistics keep their values.
struct Replace<'a> {
    stack: Vec<String>,
    values: &'a HashMap<String, Vec<f32>>,
}

impl<Bk: Backend> ModuleMapper<Bk> for Replace<'_> {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.stack.push(name.into());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.stack.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<Bk, D>>) -> Param<Tensor<Bk, D>> {
        let (id, tensor, mapper) = param.consume();
        if self.stack.last().is_some_and(|l| l.starts_with("running_")) {
            // BatchNorm's running statistics: kept (burn shares them between a module's
            // clones, so replacing them here would replace the network's own)
            return Param::from_mapped_value(id, tensor, mapper);
        }
        let shape = tensor.shape();
        let v = match self.values.get(&self.stack.join(".")) {
            Some(v) => v.clone(),
            None => vec![0.0; shape.num_elements()],
        };
        let t = Tensor::from_data(TensorData::new(v, shape), &tensor.device());
        Param::from_mapped_value(id, t, mapper)
    }
}

/// Each float parameter's gradient by path.
struct Grads<'a> {
    stack: Vec<String>,
    grads: &'a <B as AutodiffBackend>::Gradients,
    out: HashMap<String, Vec<f32>>,
}

impl ModuleVisitor<B> for Grads<'_> {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.stack.push(name.into());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.stack.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(g) = param.val().grad(self.grads) {
            let v: Vec<f32> = g.to_data().convert::<f32>().into_vec().expect("f32 gradient");
            self.out.insert(self.stack.join("."), v);
        }
    }
}

/// `net` as `dir/stem.safetensors` under the PyTorch twin's names (only: save_weights also
/// writes burn's `.bpk`, which nothing here reads).
fn save_torch<Bk: Backend, M: Module<Bk>>(net: &M, dir: &Path, stem: &str, arch: Arch) -> Result<()> {
    save_weights(net, dir, stem, Some(arch))?;
    std::fs::remove_file(dir.join(format!("{stem}.bpk")))?;
    Ok(())
}

/// `net` with its parameters replaced by `values` (see [`Replace`]), saved as [`save_torch`].
fn save_as<M: Module<B>>(
    net: &M,
    values: &HashMap<String, Vec<f32>>,
    dir: &Path,
    stem: &str,
    arch: Arch,
) -> Result<()> {
    save_torch(
        &net.clone().map(&mut Replace { stack: vec![], values }),
        dir,
        stem,
        arch,
    )
}

/// The inference network's logits on the first validation batch and the validation loss as
/// unet-train computes it, after step `step`; returns the loss.
fn eval_into<M: Segmenter<B>>(
    ev: &mut Out,
    net: &M,
    valid: &[Batch],
    step: usize,
    n: usize,
    device: &burn::tensor::Device<B>,
) -> Result<f64> {
    let scores = evaluate(net, valid.iter().cloned().map(Ok), n, Loss::CrossEntropy, device)?;
    let (x, _) = to_tensors::<<B as AutodiffBackend>::InnerBackend>(&valid[0], device);
    ev.tensor(&format!("logits.{step}"), &net.valid().logits(x));
    ev.f32(&format!("loss.{step}"), vec![], &[scores.loss() as f32]);
    Ok(scores.loss())
}

fn run<M>(a: &Args) -> Result<()>
where
    M: Segmenter<B> + Architecture<B> + Tapped<B>,
{
    let device = Default::default();
    let data = SplitSet::read(&a.split)?;
    let n = data.n_classes;
    <B as Backend>::seed(&device, a.seed);
    let mut net = M::build(n, &device);
    save_torch(&net, &a.out, "init", a.arch)?;

    let n_iter = data.train.len() / a.bs;
    ensure!(n_iter > 0, "{} train items: fewer than a batch", data.train.len());
    let sched = OneCycle::new(vec![a.lr; 3]);
    let mut opt = GroupAdam::new(&net);
    let mut out = Out::default();
    let mut acts = Out::default();
    let mut ev = Out::default();
    let valid: Vec<Batch> = batches(data.valid.clone(), a.bs, a.size, n, false, a.seed, 0)
        .scan(0, |seen, b| {
            let keep = *seen < a.valid;
            *seen += a.bs;
            keep.then_some(b)
        })
        .collect::<Result<_>>()?;
    ensure!(!valid.is_empty(), "the split has no validation items");
    for (j, b) in valid.iter().enumerate() {
        out.f32(&format!("vx.{j}"), vec![b.n, 3, b.size, b.size], &b.images);
        out.i64(&format!("vy.{j}"), vec![b.n, b.size, b.size], &b.masks);
    }
    let (mut step, mut epoch, mut last_loss) = (0, 0, 0.0);
    'fit: loop {
        for (i, b) in batches(data.train.clone(), a.bs, a.size, n, true, a.seed, epoch as u64).enumerate() {
            let b = b?;
            step += 1;
            let (lrs, mom) = sched.at(position(epoch, i, a.epochs, n_iter));
            let lrs: [f64; 3] = lrs.try_into().expect("three groups");
            out.f32(&format!("x.{step}"), vec![b.n, 3, b.size, b.size], &b.images);
            out.i64(&format!("y.{step}"), vec![b.n, b.size, b.size], &b.masks);
            out.f32(&format!("lr.{step}"), vec![], &[lrs[2] as f32]);
            out.f32(&format!("mom.{step}"), vec![], &[mom as f32]);
            let (x, y) = to_tensors::<B>(&b, &device);
            let logits = net.tapped(x, &mut |name, t| {
                if step == 1 {
                    acts.tensor(name, t)
                }
            });
            let loss = Loss::CrossEntropy.compute(logits, y);
            out.tensor(&format!("loss.{step}"), &loss);
            let grads = loss.backward();
            let keep = a.save.contains(&step);
            if keep {
                let mut g = Grads {
                    stack: vec![],
                    grads: &grads,
                    out: HashMap::new(),
                };
                net.visit(&mut g);
                save_as(&net, &g.out, &a.out, &format!("grad.{step}"), a.arch)?;
            }
            net = opt.step(net, &grads, lrs, mom);
            if keep {
                // the inference twin: making it applies the step's pending running-statistics
                // update, which burn's RunningState otherwise holds back until the next forward
                save_torch(&net.valid(), &a.out, &format!("param.{step}"), a.arch)?;
                let saved = opt.export()?;
                let m = saved.moments.iter().map(|s| (s.path.clone(), s.m.clone())).collect();
                let v = saved.moments.iter().map(|s| (s.path.clone(), s.v.clone())).collect();
                save_as(&net, &m, &a.out, &format!("m.{step}"), a.arch)?;
                save_as(&net, &v, &a.out, &format!("v.{step}"), a.arch)?;
            }
            if step == 1 || step == a.steps {
                last_loss = eval_into(&mut ev, &net, &valid, step, n, &device)?;
            }
            if step == a.steps {
                break 'fit;
            }
        }
        epoch += 1;
    }

    out.write(&a.out.join("batches.safetensors"))?;
    acts.write(&a.out.join("act.safetensors"))?;

    ev.write(&a.out.join("eval.safetensors"))?;
    eprintln!(
        "{} {}: {} steps of {} ({} a epoch), valid loss {:.6} on {} images",
        a.arch,
        a.split.display(),
        step,
        a.bs,
        n_iter,
        last_loss,
        valid.iter().map(|b| b.n).sum::<usize>()
    );
    Ok(())
}
