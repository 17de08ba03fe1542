//! `--check-device`: every operation the model trains with, run on a device and on the CPU from
//! the same inputs, forward and gradients, with the largest difference of each.
//!
//! On the CPU the [`Kernels`] are facepipe's own; on a GPU they are burn's operations (the
//! trait's defaults). The two must agree to float32 rounding, or a model trained on one would
//! not be the model trained on the other. Each check draws its inputs from a fixed seed on the
//! CPU, runs there and on the device, and compares every output and every gradient, scaled by
//! the largest magnitude of the CPU's values (so a difference of 1e-6 means one millionth of the
//! tensor's range). The whole model is checked too: both UNets in training mode on one batch,
//! the loss and the gradient of every parameter.

use anyhow::Result;
use burn::module::AutodiffModule;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Int, Tensor, TensorData};

use crate::device::{BackendTask, DeviceSpec, dispatch};
use crate::kernels::{AdamStep, Kernels, TrainBackend};
use crate::model::Infer;
use crate::model::{Arch, Architecture, FastaiUnet, SmpUnet, start_as_on_cpu};
use crate::training::loss::{Loss, Objective};

/// The largest difference an operation may show, relative to the largest magnitude of its
/// CPU result: float32 rounding differs with the order of a sum (a GPU sums in tiles), which
/// moves a result of a few thousand terms by some 1e-6 of its range.
pub const OP_TOL: f64 = 1e-4;
/// The same for the whole model's loss and parameter gradients (some 100 layers deep), or ten
/// times what moving the input images by float32 rounding does to them on the CPU, if more.
pub const MODEL_TOL: f64 = 1e-2;

/// One compared tensor.
#[derive(Clone, Debug)]
pub struct Diff {
    pub what: String,
    /// max |device − cpu| / max |cpu|
    pub rel: f64,
    pub tol: f64,
    /// More to say (a model's worst parameters).
    pub detail: Option<String>,
}

impl Diff {
    pub fn ok(&self) -> bool {
        self.rel <= self.tol
    }
}

/// Runs every check on `device`; the differences, in order. A model's parameter gradients
/// are one result, scaled by the largest gradient of the whole model (a bias before a
/// BatchNorm has a gradient of zero up to rounding, which no scale of its own would pass),
/// named by the parameter that differs most.
pub fn check(device: DeviceSpec) -> Result<Vec<Diff>> {
    let cpu = dispatch(DeviceSpec::Cpu, Checks { nudge: false })?;
    let nudged = dispatch(DeviceSpec::Cpu, Checks { nudge: true })?;
    let dev = dispatch(device, Checks { nudge: false })?;
    let mut out: Vec<Diff> = Vec::new();
    let mut i = 0;
    while i < cpu.len() {
        let (what, a) = &cpu[i];
        let Some((model, _)) = what.split_once(GRAD) else {
            let tol = if what.starts_with("model") { MODEL_TOL } else { OP_TOL };
            out.push(Diff {
                what: what.clone(),
                rel: rel_diff(a, &dev[i].1),
                tol,
                detail: None,
            });
            i += 1;
            continue;
        };
        let prefix = format!("{model}{GRAD}");
        let end = i + cpu[i..].iter().take_while(|(w, _)| w.starts_with(&prefix)).count();
        let scale = cpu[i..end].iter().map(|(_, v)| max_abs(v)).fold(1e-30, f64::max);
        let scaled = |other: &[(String, Vec<f32>)]| -> Vec<(f64, &str)> {
            let mut per: Vec<(f64, &str)> = (i..end)
                .map(|j| {
                    (
                        rel_diff(&cpu[j].1, &other[j].1) * max_abs(&cpu[j].1) / scale,
                        &cpu[j].0[prefix.len()..],
                    )
                })
                .collect();
            per.sort_by(|x, y| y.0.total_cmp(&x.0));
            per
        };
        // how far rounding alone moves these gradients on the CPU: the limit is ten times that
        let floor = scaled(&nudged).first().map_or(0.0, |p| p.0);
        let tol = MODEL_TOL.max(10.0 * floor);
        let per = scaled(&dev);
        let beyond = per.iter().filter(|(r, _)| *r > tol).count();
        let worst: Vec<String> = per.iter().take(3).map(|(r, n)| format!("{n} {r:.1e}")).collect();
        out.push(Diff {
            what: format!("{model}: gradients of {} parameters", per.len()),
            rel: per.first().map_or(0.0, |p| p.0),
            tol,
            detail: Some(format!(
                "{beyond} beyond the limit; the largest: {}; input images moved by float32 rounding move them by {floor:.1e} on the CPU (the limit is 10x that, at least {MODEL_TOL:e})",
                worst.join(", ")
            )),
        });
        i = end;
    }
    Ok(out)
}

/// Separates a model check's name from a parameter's path.
const GRAD: &str = " gradient of ";

fn max_abs(v: &[f32]) -> f64 {
    v.iter().fold(0f64, |m, x| m.max(f64::from(x.abs())))
}

/// The checks; `nudge` moves the models' input images by float32 rounding (each pixel times
/// 1 + u·2⁻²³, u uniform in [-1, 1)).
struct Checks {
    nudge: bool,
}

impl BackendTask for Checks {
    type Output = Vec<(String, Vec<f32>)>;
    fn run<B: TrainBackend>(self, device: B::Device) -> Result<Self::Output> {
        Ok(run::<B>(device, self.nudge))
    }
}

/// max |b − a| / max |a| (NaN or a length mismatch counts as infinitely far).
fn rel_diff(a: &[f32], b: &[f32]) -> f64 {
    if a.len() != b.len() {
        return f64::INFINITY;
    }
    let scale = max_abs(a).max(1e-30);
    let mut worst = 0f64;
    for (x, y) in a.iter().zip(b) {
        let d = f64::from(x - y).abs();
        if d.is_nan() {
            return f64::INFINITY;
        }
        worst = worst.max(d);
    }
    worst / scale
}

/// Deterministic inputs, drawn on the CPU.
struct Draw(u64);

impl Draw {
    fn next(&mut self) -> f32 {
        // splitmix64, mapped to [-1, 1)
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        ((z >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    fn tensor<B: Backend, const D: usize>(&mut self, shape: [usize; D], device: &B::Device) -> Tensor<B, D> {
        let n = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| self.next()).collect();
        Tensor::from_data(TensorData::new(v, shape), device)
    }
    fn classes<B: Backend>(&mut self, shape: [usize; 3], n: usize, device: &B::Device) -> Tensor<B, 3, Int> {
        let count = shape.iter().product();
        let v: Vec<i64> = (0..count)
            .map(|_| {
                let u = (self.next() + 1.0) / 2.0;
                // about one pixel in twelve unlabelled (255), as label borders are
                if u > 0.92 {
                    255
                } else {
                    ((u / 0.92) * n as f32).min(n as f32 - 1.0) as i64
                }
            })
            .collect();
        Tensor::from_data(TensorData::new(v, shape), device)
    }
}

fn values<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec::<f32>().unwrap_or_default()
}

/// Every check's results on backend `B`, named.
fn run<B: TrainBackend>(device: B::Device, nudge: bool) -> Vec<(String, Vec<f32>)> {
    let d = &device;
    let mut out = Vec::new();
    let mut draw = Draw(2020);
    let mut put = |what: String, v: Vec<f32>| out.push((what, v));

    // convolutions as the model has them: 3×3 stride 1 and 2, the 7×7 stem, the 1×1 shortcut
    for (name, x, w, stride, pad, bias) in [
        ("conv 3x3", [2, 16, 12, 12], [24, 16, 3, 3], 1, 1, true),
        ("conv 3x3 stride 2", [2, 16, 12, 12], [24, 16, 3, 3], 2, 1, false),
        ("conv 7x7 stem", [2, 3, 32, 32], [16, 3, 7, 7], 2, 3, false),
        ("conv 1x1 stride 2", [2, 16, 12, 12], [32, 16, 1, 1], 2, 0, false),
    ] {
        let xt = draw.tensor::<B, 4>(x, d).require_grad();
        let wt = draw.tensor::<B, 4>(w, d).mul_scalar(0.2).require_grad();
        let bt = bias.then(|| draw.tensor::<B, 1>([w[0]], d).require_grad());
        let opts = ConvOptions::new([stride; 2], [pad; 2], [1, 1], 1);
        let y = <B as Kernels>::conv2d(xt.clone(), wt.clone(), bt.clone(), opts);
        let r = draw.tensor::<B, 4>(y.dims(), d);
        let g = (y.clone() * r).sum().backward();
        put(format!("{name}: output"), values(y));
        put(format!("{name}: input gradient"), values(xt.grad(&g).unwrap()));
        put(format!("{name}: weight gradient"), values(wt.grad(&g).unwrap()));
        if let Some(b) = bt {
            put(format!("{name}: bias gradient"), values(b.grad(&g).unwrap()));
        }
    }

    // BatchNorm with the batch's statistics, with and without the fused ReLU
    for relu in [false, true] {
        let name = if relu {
            "batchnorm+relu (train)"
        } else {
            "batchnorm (train)"
        };
        let x = draw
            .tensor::<B, 4>([4, 8, 6, 6], d)
            .mul_scalar(3.0)
            .add_scalar(0.5)
            .require_grad();
        let gamma = draw.tensor::<B, 1>([8], d).add_scalar(1.0).require_grad();
        let beta = draw.tensor::<B, 1>([8], d).require_grad();
        let (y, mean, var) = B::batch_norm_train(x.clone(), gamma.clone(), beta.clone(), 1e-5, relu);
        let r = draw.tensor::<B, 4>(y.dims(), d);
        let g = (y.clone() * r).sum().backward();
        put(format!("{name}: output"), values(y));
        put(format!("{name}: batch mean"), values(mean));
        put(format!("{name}: batch variance"), values(var));
        put(format!("{name}: input gradient"), values(x.grad(&g).unwrap()));
        put(format!("{name}: gamma gradient"), values(gamma.grad(&g).unwrap()));
        put(format!("{name}: beta gradient"), values(beta.grad(&g).unwrap()));
    }
    {
        let x = draw.tensor::<B, 4>([4, 8, 6, 6], d);
        let gamma = draw.tensor::<B, 1>([8], d);
        let beta = draw.tensor::<B, 1>([8], d);
        let mean = draw.tensor::<B, 1>([8], d);
        let var = draw.tensor::<B, 1>([8], d).abs().add_scalar(0.1);
        put(
            "batchnorm+relu (eval): output".into(),
            values(B::batch_norm_eval(x, gamma, beta, mean, var, 1e-5, true)),
        );
    }

    // the operations between the kernels: max pool (the stem's), nearest upsampling (both
    // decoders), pixel shuffle (fastai's), each with its gradient; the pool's input has the
    // ties a ReLU leaves (zeros)
    {
        let x = draw.tensor::<B, 4>([2, 4, 16, 16], d).clamp_min(0.0).require_grad();
        let pool = burn::nn::pool::MaxPool2dConfig::new([3, 3])
            .with_strides([2, 2])
            .with_padding(burn::nn::PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init();
        let y = pool.forward(x.clone());
        let r = draw.tensor::<B, 4>(y.dims(), d);
        let g = (y.clone() * r).sum().backward();
        put("max pool 3x3 stride 2: output".into(), values(y));
        put(
            "max pool 3x3 stride 2: input gradient".into(),
            values(x.grad(&g).unwrap()),
        );
    }
    for (name, size) in [
        ("nearest upsampling x2", [16, 16]),
        ("nearest resize 7 -> 12", [12, 12]),
    ] {
        let src = if size == [16, 16] { [2, 4, 8, 8] } else { [2, 4, 7, 7] };
        let x = draw.tensor::<B, 4>(src, d).require_grad();
        let y = crate::model::nearest(x.clone(), size);
        let r = draw.tensor::<B, 4>(y.dims(), d);
        let g = (y.clone() * r).sum().backward();
        put(format!("{name}: output"), values(y));
        put(format!("{name}: input gradient"), values(x.grad(&g).unwrap()));
    }
    {
        let x = draw.tensor::<B, 4>([2, 16, 5, 5], d).require_grad();
        let y = crate::model::pixel_shuffle(x.clone(), 2);
        let r = draw.tensor::<B, 4>(y.dims(), d);
        let g = (y.clone() * r).sum().backward();
        put("pixel shuffle x2: output".into(), values(y));
        put("pixel shuffle x2: input gradient".into(), values(x.grad(&g).unwrap()));
    }

    // every training loss, with unlabelled (255) pixels
    for loss in Loss::ALL {
        let logits = draw.tensor::<B, 4>([2, 5, 9, 7], d).mul_scalar(3.0).require_grad();
        let target = draw.classes::<B>([2, 9, 7], 5, d);
        let l = loss.compute(logits.clone(), target);
        let g = l.clone().backward();
        put(format!("loss {loss}: value"), values(l));
        put(
            format!("loss {loss}: logits gradient"),
            values(logits.grad(&g).unwrap()),
        );
    }

    // one Adam step (fastai's, with decoupled weight decay)
    {
        let [p, g, m] = [0; 3].map(|_| draw.tensor::<B::InnerBackend, 1>([1000], d).mul_scalar(0.1));
        let v = draw.tensor::<B::InnerBackend, 1>([1000], d).abs().mul_scalar(0.01);
        let h = AdamStep {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.99,
            eps: 1e-5,
            step: 3,
            decay: Some(1.0 - 1e-3 * 0.01),
        };
        let [p, m, v] = <B::InnerBackend as Kernels>::adam_step(p, g, m, v, &h);
        put("adam step: parameter".into(), values(p));
        put("adam step: first moment".into(), values(m));
        put("adam step: second moment".into(), values(v));
    }

    // the whole model, training mode, one batch: loss and every parameter's gradient
    for arch in [Arch::Smp, Arch::Fastai] {
        let mut x = draw.tensor::<B, 4>([2, 3, 64, 64], d);
        if nudge {
            let u = Draw(7).tensor::<B, 4>(x.dims(), d);
            x = x.clone() + x * u.mul_scalar(f64::from(f32::EPSILON) / 2.0);
        }
        let target = draw.classes::<B>([2, 64, 64], 4, d);
        let (loss, grads) = match arch {
            Arch::Smp => model_step::<B, SmpUnet<B>>(arch, x, target, d),
            Arch::Fastai => model_step::<B, FastaiUnet<B>>(arch, x, target, d),
        };
        put(format!("model {arch} (train mode): loss"), loss);
        for (path, g) in grads {
            put(format!("model {arch} (train mode){GRAD}{path}"), g);
        }
    }
    out
}

/// The model `M` from the CPU's initial weights (seed 2020), one training-mode forward and
/// backward of the cross-entropy loss: the loss, and every float parameter's gradient with its
/// path, in the module's order.
fn model_step<B: TrainBackend, M>(
    arch: Arch,
    x: Tensor<B, 4>,
    target: Tensor<B, 3, Int>,
    d: &B::Device,
) -> (Vec<f32>, Vec<(String, Vec<f32>)>)
where
    M: Architecture<B> + AutodiffModule<B> + Infer<B>,
{
    use burn_store::ModuleSnapshot;
    let mut net = M::build(4, d);
    start_as_on_cpu(&mut net, arch, 4, 2020).expect("the CPU's weights fit the model they were drawn for");
    let names: std::collections::HashMap<burn::module::ParamId, String> = net
        .collect(None, None, false)
        .into_iter()
        .filter_map(|s| Some((s.tensor_id?, s.full_path())))
        .collect();
    let loss = Loss::CrossEntropy.compute(net.logits(x), target);
    let g = loss.clone().backward();
    let mut grads = Vec::new();
    net.visit(&mut GradVisitor::<B> {
        grads: &g,
        names: &names,
        out: &mut grads,
    });
    (values(loss), grads)
}

/// Collects every float parameter's gradient with its path, in the module's order.
struct GradVisitor<'a, B: AutodiffBackend> {
    grads: &'a B::Gradients,
    names: &'a std::collections::HashMap<burn::module::ParamId, String>,
    out: &'a mut Vec<(String, Vec<f32>)>,
}

impl<B: AutodiffBackend> burn::module::ModuleVisitor<B> for GradVisitor<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<B, D>>) {
        if let Some(g) = param.val().grad(self.grads) {
            let name = self
                .names
                .get(&param.id)
                .cloned()
                .unwrap_or_else(|| format!("parameter {}", param.id));
            self.out.push((name, values(g)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::CpuBackend;
    use burn::backend::flex::FlexDevice;

    #[test]
    fn the_cpu_agrees_with_itself_and_a_changed_value_shows() {
        let a = run::<CpuBackend>(FlexDevice, false);
        let b = run::<CpuBackend>(FlexDevice, false);
        assert!(a.len() > 300, "{} checks", a.len());
        for ((w, x), (_, y)) in a.iter().zip(&b) {
            assert!(!x.is_empty(), "{w}: no values");
            // the models draw their weights from burn's process-wide generator, which the
            // other tests of this process use at the same time: their own run (unet-train's
            // CLI test of --check-device --device cpu) checks them
            if !w.starts_with("model") {
                assert_eq!(rel_diff(x, y), 0.0, "{w}");
            }
        }
        let mut c = a[0].1.clone();
        c[3] += 1.0;
        assert!(rel_diff(&a[0].1, &c) > OP_TOL);
        assert_eq!(rel_diff(&[1.0, f32::NAN], &[1.0, 2.0]), f64::INFINITY);
    }
}
