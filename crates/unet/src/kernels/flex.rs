//! [`Kernels`](super::Kernels) for burn's CPU backend: `Flex` tensors in and out of the slice
//! kernels, and `Autodiff<Flex>` nodes whose backward passes call them.
//!
//! Anything the kernels do not cover (a dtype other than `f32`, grouped convolution) falls
//! back to [`reference`](super::reference).

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::{FlexTensor, Layout};
use burn::backend::{Autodiff, Flex};
use burn::tensor::backend::Backend;
use burn::tensor::ops::{ConvOptions, FloatTensor};
use burn::tensor::{Bytes, DType, Int, Shape, Tensor, TensorPrimitive};

use super::seg_loss::{DICE_SMOOTH, Terms};

use super::bn::{self, Planes};
use super::conv::{self, ConvShape};
use super::reference;

type Ad = Autodiff<Flex>;

fn prim<B: Backend, const D: usize>(t: Tensor<B, D>) -> FloatTensor<B> {
    t.into_primitive().tensor()
}

fn wrap<B: Backend, const D: usize>(t: FloatTensor<B>) -> Tensor<B, D> {
    Tensor::from_primitive(TensorPrimitive::Float(t))
}

/// A contiguous `f32` tensor (no copy when it already is one), when the tensor is `f32` and
/// the kernels are on; None sends the caller to the reference path.
fn contiguous(t: &FlexTensor) -> Option<FlexTensor> {
    (t.dtype() == DType::F32 && super::cpu_kernels_enabled()).then(|| t.to_contiguous())
}

fn f32s(t: &FlexTensor) -> &[f32] {
    t.storage::<f32>()
}

fn tensor(data: Vec<f32>, shape: &[usize]) -> FlexTensor {
    FlexTensor::new(
        Bytes::from_elems(data),
        Layout::contiguous(Shape::from(shape.to_vec())),
        DType::F32,
    )
}

fn dims(t: &FlexTensor) -> Vec<usize> {
    t.layout().shape().to_vec()
}

fn conv_shape(x: &[usize], w: &[usize], options: &ConvOptions<2>) -> Option<ConvShape> {
    (options.groups == 1 && x.len() == 4 && w.len() == 4 && x[1] == w[1]).then(|| ConvShape {
        batch: x[0],
        cin: x[1],
        h: x[2],
        w: x[3],
        cout: w[0],
        kh: w[2],
        kw: w[3],
        stride: options.stride,
        pad: options.padding,
        dilation: options.dilation,
    })
}

fn out_dims(s: &ConvShape) -> [usize; 4] {
    let [oh, ow] = s.out_hw();
    [s.batch, s.cout, oh, ow]
}

/// The inputs as contiguous `f32` tensors and the convolution's shape, or None for the
/// reference path.
fn conv_inputs(
    x: &FlexTensor,
    w: &FlexTensor,
    b: Option<&FlexTensor>,
    options: &ConvOptions<2>,
) -> Option<(FlexTensor, FlexTensor, Option<FlexTensor>, ConvShape)> {
    let s = conv_shape(&dims(x), &dims(w), options)?;
    let b = match b {
        Some(b) => Some(contiguous(b)?),
        None => None,
    };
    Some((contiguous(x)?, contiguous(w)?, b, s))
}

pub fn conv2d(
    x: Tensor<Flex, 4>,
    w: Tensor<Flex, 4>,
    b: Option<Tensor<Flex, 1>>,
    options: ConvOptions<2>,
) -> Tensor<Flex, 4> {
    let (xp, wp, bp) = (prim(x.clone()), prim(w.clone()), b.clone().map(prim));
    let Some((xc, wc, bc, s)) = conv_inputs(&xp, &wp, bp.as_ref(), &options) else {
        return reference::conv2d(x, w, b, options);
    };
    let out = conv::forward(&s, f32s(&xc), f32s(&wc), bc.as_ref().map(f32s));
    wrap(tensor(out, &out_dims(&s)))
}

#[derive(Debug)]
struct ConvBackward;

#[derive(Clone, Debug)]
struct ConvState {
    x: NodeId,
    w: NodeId,
    shape: ConvShape,
}

fn conv_grads(
    parents: &[Option<NodeId>],
    state: ConvState,
    grads: &mut Gradients,
    dy: FlexTensor,
    checkpointer: &mut Checkpointer,
) {
    let dy = dy.to_contiguous();
    let x: FlexTensor = checkpointer.retrieve_node_output(state.x);
    let w: FlexTensor = checkpointer.retrieve_node_output(state.w);
    let (x, w, s) = (x.to_contiguous(), w.to_contiguous(), state.shape);
    if let Some(id) = parents[0] {
        let dx = conv::backward_input(&s, f32s(&w), f32s(&dy));
        grads.register::<Flex>(id, tensor(dx, &[s.batch, s.cin, s.h, s.w]));
    }
    if let Some(id) = parents[1] {
        let dw = conv::backward_weight(&s, f32s(&x), f32s(&dy));
        grads.register::<Flex>(id, tensor(dw, &[s.cout, s.cin, s.kh, s.kw]));
    }
    if let Some(Some(id)) = parents.get(2) {
        grads.register::<Flex>(*id, tensor(conv::backward_bias(&s, f32s(&dy)), &[s.cout]));
    }
}

impl Backward<Flex, 2> for ConvBackward {
    type State = ConvState;
    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
        let dy = grads.consume::<Flex>(&ops.node);
        let parents = ops.parents.map(|p| p.map(|n| n.id));
        conv_grads(&parents, ops.state, grads, dy, checkpointer);
    }
}

impl Backward<Flex, 3> for ConvBackward {
    type State = ConvState;
    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
        let dy = grads.consume::<Flex>(&ops.node);
        let parents = ops.parents.map(|p| p.map(|n| n.id));
        conv_grads(&parents, ops.state, grads, dy, checkpointer);
    }
}

pub fn conv2d_autodiff(
    x: Tensor<Ad, 4>,
    w: Tensor<Ad, 4>,
    b: Option<Tensor<Ad, 1>>,
    options: ConvOptions<2>,
) -> Tensor<Ad, 4> {
    let (xa, wa, ba) = (prim(x.clone()), prim(w.clone()), b.clone().map(prim));
    let Some((xc, wc, bc, s)) = conv_inputs(
        &xa.primitive,
        &wa.primitive,
        ba.as_ref().map(|b| &b.primitive),
        &options,
    ) else {
        return reference::conv2d(x, w, b, options);
    };
    let out = tensor(
        conv::forward(&s, f32s(&xc), f32s(&wc), bc.as_ref().map(f32s)),
        &out_dims(&s),
    );
    // the same node with two parents (no bias) or three: `Backward` is generic over the count
    macro_rules! track {
        ($($node:expr),+) => {
            match ConvBackward.prepare::<NoCheckpointing>([$($node.clone()),+]).compute_bound().stateful() {
                OpsKind::Tracked(mut prep) => {
                    let state = ConvState { x: prep.checkpoint(&xa), w: prep.checkpoint(&wa), shape: s };
                    prep.finish(state, out)
                }
                OpsKind::UnTracked(prep) => prep.finish(out),
            }
        };
    }
    let out = match ba {
        Some(ba) => track!(xa.node, wa.node, ba.node),
        None => track!(xa.node, wa.node),
    };
    wrap(out)
}

fn planes(d: &[usize]) -> Option<Planes> {
    (d.len() == 4).then(|| Planes {
        batch: d[0],
        channels: d[1],
        pixels: d[2] * d[3],
    })
}

/// Contiguous `f32` copies of BatchNorm's inputs, or None for the reference path.
fn bn_inputs(
    x: &FlexTensor,
    gamma: &FlexTensor,
    beta: &FlexTensor,
) -> Option<(FlexTensor, FlexTensor, FlexTensor, Planes)> {
    let l = planes(&dims(x))?;
    Some((contiguous(x)?, contiguous(gamma)?, contiguous(beta)?, l))
}

pub fn batch_norm_train(
    x: Tensor<Flex, 4>,
    gamma: Tensor<Flex, 1>,
    beta: Tensor<Flex, 1>,
    epsilon: f64,
    relu: bool,
) -> (Tensor<Flex, 4>, Tensor<Flex, 1>, Tensor<Flex, 1>) {
    let Some((xc, gc, bc, l)) = bn_inputs(&prim(x.clone()), &prim(gamma.clone()), &prim(beta.clone())) else {
        return reference::batch_norm_train(x, gamma, beta, epsilon, relu);
    };
    let (mean, var) = bn::stats(&l, f32s(&xc));
    let y = bn::forward(
        &l,
        f32s(&xc),
        f32s(&gc),
        f32s(&bc),
        &mean,
        &bn::inv_std(&var, epsilon),
        relu,
    );
    let c = [l.channels];
    (
        wrap(tensor(y, &dims(&xc))),
        wrap(tensor(mean, &c)),
        wrap(tensor(var, &c)),
    )
}

#[allow(clippy::too_many_arguments)]
pub fn batch_norm_eval(
    x: Tensor<Flex, 4>,
    gamma: Tensor<Flex, 1>,
    beta: Tensor<Flex, 1>,
    mean: Tensor<Flex, 1>,
    var: Tensor<Flex, 1>,
    epsilon: f64,
    relu: bool,
) -> Tensor<Flex, 4> {
    let stats = contiguous(&prim(mean.clone())).zip(contiguous(&prim(var.clone())));
    let (Some((xc, gc, bc, l)), Some((mc, vc))) = (
        bn_inputs(&prim(x.clone()), &prim(gamma.clone()), &prim(beta.clone())),
        stats,
    ) else {
        return reference::batch_norm_eval(x, gamma, beta, mean, var, epsilon, relu);
    };
    let y = bn::forward(
        &l,
        f32s(&xc),
        f32s(&gc),
        f32s(&bc),
        f32s(&mc),
        &bn::inv_std(f32s(&vc), epsilon),
        relu,
    );
    wrap(tensor(y, &dims(&xc)))
}

#[derive(Debug)]
struct BnBackward;

#[derive(Clone, Debug)]
struct BnState {
    x: NodeId,
    gamma: FlexTensor,
    beta: FlexTensor,
    mean: Vec<f32>,
    inv_std: Vec<f32>,
    relu: bool,
    planes: Planes,
}

impl Backward<Flex, 3> for BnBackward {
    type State = BnState;
    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
        let dy = grads.consume::<Flex>(&ops.node).to_contiguous();
        let [nx, ng, nb] = ops.parents.map(|p| p.map(|n| n.id));
        let s = ops.state;
        let x: FlexTensor = checkpointer.retrieve_node_output(s.x);
        let x = x.to_contiguous();
        let (dx, dgamma, dbeta) = bn::backward(
            &s.planes,
            f32s(&x),
            f32s(&dy),
            f32s(&s.gamma),
            f32s(&s.beta),
            &s.mean,
            &s.inv_std,
            s.relu,
        );
        let c = [s.planes.channels];
        if let Some(id) = nx {
            grads.register::<Flex>(id, tensor(dx, &dims(&x)));
        }
        if let Some(id) = ng {
            grads.register::<Flex>(id, tensor(dgamma, &c));
        }
        if let Some(id) = nb {
            grads.register::<Flex>(id, tensor(dbeta, &c));
        }
    }
}

pub fn batch_norm_train_autodiff(
    x: Tensor<Ad, 4>,
    gamma: Tensor<Ad, 1>,
    beta: Tensor<Ad, 1>,
    epsilon: f64,
    relu: bool,
) -> (Tensor<Ad, 4>, Tensor<Ad, 1>, Tensor<Ad, 1>) {
    let (xa, ga, ba) = (prim(x.clone()), prim(gamma.clone()), prim(beta.clone()));
    let Some((xc, gc, bc, l)) = bn_inputs(&xa.primitive, &ga.primitive, &ba.primitive) else {
        return reference::batch_norm_train(x, gamma, beta, epsilon, relu);
    };
    let (mean, var) = bn::stats(&l, f32s(&xc));
    let inv_std = bn::inv_std(&var, epsilon);
    let y = tensor(
        bn::forward(&l, f32s(&xc), f32s(&gc), f32s(&bc), &mean, &inv_std, relu),
        &dims(&xc),
    );
    let c = [l.channels];
    let (mean_t, var_t) = (tensor(mean.clone(), &c), tensor(var, &c));
    let y = match BnBackward
        .prepare::<NoCheckpointing>([xa.node.clone(), ga.node.clone(), ba.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(mut prep) => {
            let state = BnState {
                x: prep.checkpoint(&xa),
                gamma: gc,
                beta: bc,
                mean,
                inv_std,
                relu,
                planes: l,
            };
            prep.finish(state, y)
        }
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    let detached = |t: FlexTensor| Tensor::<Ad, 1>::from_inner(wrap::<Flex, 1>(t));
    (wrap(y), detached(mean_t), detached(var_t))
}

pub fn adam_step(
    p: Tensor<Flex, 1>,
    g: Tensor<Flex, 1>,
    m: Tensor<Flex, 1>,
    v: Tensor<Flex, 1>,
    h: &super::AdamStep,
) -> [Tensor<Flex, 1>; 3] {
    let c = |t: &Tensor<Flex, 1>| contiguous(&prim(t.clone()));
    let parts = (|| Some((c(&p)?, c(&m)?, c(&v)?, c(&g)?)))();
    let Some((mut pc, mut mc, mut vc, gc)) = parts else {
        return reference::adam_step(p, g, m, v, h);
    };
    // with the callers' handles gone the buffers are ours alone (updated in place) unless
    // something else still holds one (then `storage_mut` copies it first)
    drop((p, m, v, g));
    super::adam::step(
        pc.storage_mut::<f32>(),
        mc.storage_mut::<f32>(),
        vc.storage_mut::<f32>(),
        f32s(&gc),
        h,
    );
    [wrap(pc), wrap(mc), wrap(vc)]
}

/// The loss's inputs for the fused kernel: contiguous logits, targets as `i64` and the shape;
/// None sends the caller to burn's operations (another rank or dtype, kernels off).
fn loss_inputs<B: Backend>(
    logits: &FlexTensor,
    target: &Tensor<B, 3, Int>,
) -> Option<(FlexTensor, Vec<i64>, super::seg_loss::Dims)> {
    let d = dims(logits);
    if d.len() != 4 {
        return None;
    }
    let z = contiguous(logits)?;
    let t = target.to_data().convert::<i64>().to_vec::<i64>().ok()?;
    let dims = super::seg_loss::Dims {
        batch: d[0],
        classes: d[1],
        pixels: d[2] * d[3],
    };
    Some((z, t, dims))
}

pub fn seg_loss(logits: Tensor<Flex, 4>, target: Tensor<Flex, 3, Int>, terms: Terms) -> Option<Tensor<Flex, 1>> {
    let (z, t, shape) = loss_inputs(&prim(logits), &target)?;
    let (value, _) = super::seg_loss::loss(f32s(&z), &t, shape, terms, DICE_SMOOTH, false);
    Some(wrap(tensor(vec![value as f32], &[1])))
}

#[derive(Debug)]
struct LossBackward;

impl Backward<Flex, 1> for LossBackward {
    /// The loss's gradient with respect to the logits, computed with its value.
    type State = FlexTensor;
    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let dy = grads.consume::<Flex>(&ops.node).to_contiguous();
        let scale = f32s(&dy)[0];
        let [parent] = ops.parents.map(|p| p.map(|n| n.id));
        if let Some(id) = parent {
            let mut g = ops.state;
            if scale != 1.0 {
                g.storage_mut::<f32>().iter_mut().for_each(|v| *v *= scale);
            }
            grads.register::<Flex>(id, g);
        }
    }
}

pub fn seg_loss_autodiff(logits: Tensor<Ad, 4>, target: Tensor<Ad, 3, Int>, terms: Terms) -> Option<Tensor<Ad, 1>> {
    let la = prim(logits);
    let (z, t, shape) = loss_inputs(&la.primitive, &target)?;
    let run = |with_grad| super::seg_loss::loss(f32s(&z), &t, shape, terms, DICE_SMOOTH, with_grad);
    let value = |v: f64| tensor(vec![v as f32], &[1]);
    let out = match LossBackward
        .prepare::<NoCheckpointing>([la.node])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let (v, g) = run(true);
            let g = g.expect("the kernel returns the gradient it was asked for");
            prep.finish(tensor(g, &dims(&z)), value(v))
        }
        OpsKind::UnTracked(prep) => prep.finish(value(run(false).0)),
    };
    Some(wrap(out))
}
