//! Each CPU kernel against burn's reference operation on random shapes: forward outputs and
//! every gradient, on `Autodiff<Flex>` (our nodes) vs the same tensors through burn's ops.
//! Tolerances are float32 relative to the largest magnitude: 1e-4 for outputs, 2e-4 for
//! gradients (sums over thousands of products in another order).

use burn::backend::flex::FlexDevice;
use burn::backend::{Autodiff, Flex};
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Distribution, Tensor, TensorData};

use super::{Kernels, reference};

pub(crate) type Ad = Autodiff<Flex>;

pub(crate) fn close(ours: TensorData, want: TensorData, tol: f32, what: &str) {
    assert_eq!(ours.shape, want.shape, "{what}: shape");
    let (a, b) = (ours.to_vec::<f32>().unwrap(), want.to_vec::<f32>().unwrap());
    let scale = b.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
    let worst = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    assert!(worst <= tol * scale, "{what}: max diff {worst} (largest value {scale})");
}

pub(crate) fn rand<const D: usize>(shape: [usize; D]) -> Tensor<Ad, D> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), &FlexDevice)
}

/// Same values, a separate leaf.
pub(crate) fn twin<const D: usize>(t: &Tensor<Ad, D>) -> Tensor<Ad, D> {
    Tensor::from_data(t.to_data(), &FlexDevice).require_grad()
}

#[allow(clippy::too_many_arguments)]
fn check_conv(
    batch: usize,
    cin: usize,
    cout: usize,
    hw: [usize; 2],
    k: [usize; 2],
    stride: usize,
    pad: usize,
    dilation: usize,
    bias: bool,
) {
    let what = format!("conv b{batch} {cin}->{cout} {hw:?} k{k:?} s{stride} p{pad} d{dilation} bias {bias}");
    let x = rand([batch, cin, hw[0], hw[1]]).require_grad();
    let w = rand([cout, cin, k[0], k[1]]).require_grad();
    let b = bias.then(|| rand([cout]).require_grad());
    let (x2, w2, b2) = (twin(&x), twin(&w), b.as_ref().map(twin));
    let opts = ConvOptions::new([stride, stride], [pad, pad], [dilation, dilation], 1);
    let ours = <Ad as Kernels>::conv2d(x.clone(), w.clone(), b.clone(), opts.clone());
    let want = reference::conv2d(x2.clone(), w2.clone(), b2.clone(), opts);
    close(ours.to_data(), want.to_data(), 1e-4, &format!("{what}: output"));
    let probe = Tensor::<Ad, 4>::random(ours.dims(), Distribution::Default, &FlexDevice);
    let g1 = (ours * probe.clone()).sum().backward();
    let g2 = (want * probe).sum().backward();
    close(
        x.grad(&g1).unwrap().to_data(),
        x2.grad(&g2).unwrap().to_data(),
        2e-4,
        &format!("{what}: d/dx"),
    );
    close(
        w.grad(&g1).unwrap().to_data(),
        w2.grad(&g2).unwrap().to_data(),
        2e-4,
        &format!("{what}: d/dw"),
    );
    if let (Some(b), Some(b2)) = (b, b2) {
        close(
            b.grad(&g1).unwrap().to_data(),
            b2.grad(&g2).unwrap().to_data(),
            2e-4,
            &format!("{what}: d/db"),
        );
    }
    // the inference backend's forward pass too
    let xi = x.inner();
    let wi = w.inner();
    let ours = <Flex as Kernels>::conv2d(
        xi.clone(),
        wi.clone(),
        None,
        ConvOptions::new([stride, stride], [pad, pad], [dilation, dilation], 1),
    );
    let want = reference::conv2d(
        xi,
        wi,
        None,
        ConvOptions::new([stride, stride], [pad, pad], [dilation, dilation], 1),
    );
    close(ours.to_data(), want.to_data(), 1e-4, &format!("{what}: inference"));
}

#[test]
fn convolution_matches_burn_forward_and_gradients() {
    // the model's kinds: 3x3 same, 7x7 stride-2 stem, 1x1 stride-2 downsample, 1x1 head/shuffle
    check_conv(2, 5, 7, [9, 11], [3, 3], 1, 1, 1, false);
    check_conv(2, 3, 8, [16, 15], [7, 7], 2, 3, 1, false);
    check_conv(3, 6, 4, [9, 8], [1, 1], 2, 0, 1, false);
    check_conv(2, 6, 5, [7, 9], [1, 1], 1, 0, 1, true);
    // odd sizes, batch 1, dilation, no padding, a bias
    check_conv(1, 4, 6, [33, 97], [3, 3], 1, 1, 1, true);
    check_conv(1, 3, 2, [33, 97], [3, 3], 2, 1, 1, false);
    check_conv(2, 3, 4, [12, 13], [3, 3], 1, 2, 2, true);
    check_conv(3, 2, 3, [10, 6], [3, 2], 1, 0, 1, false);
    // padding beyond the kernel's span (the input gradient by scatter, not as a convolution)
    check_conv(2, 3, 4, [6, 7], [1, 1], 1, 1, 1, true);
    // more output pixels than one im2col tile (tiles stitched together); deep-layer shapes
    // where all images share one product
    check_conv(4, 64, 32, [4, 4], [3, 3], 1, 1, 1, false);
    check_conv(2, 2, 3, [600, 300], [3, 3], 1, 1, 1, false);
}

#[test]
fn convolution_sizes_follow_pytorch() {
    use super::conv::ConvShape;
    let s = |h, w, k, stride, pad, dil| ConvShape {
        batch: 1,
        cin: 1,
        h,
        w,
        cout: 1,
        kh: k,
        kw: k,
        stride: [stride, stride],
        pad: [pad, pad],
        dilation: [dil, dil],
    };
    assert_eq!(s(224, 224, 7, 2, 3, 1).out_hw(), [112, 112]);
    assert_eq!(s(33, 97, 3, 2, 1, 1).out_hw(), [17, 49]);
    assert_eq!(s(5, 5, 3, 1, 0, 2).out_hw(), [1, 1]);
}

fn check_bn(shape: [usize; 4], relu: bool) {
    let what = format!("batch norm {shape:?} relu {relu}");
    let c = shape[1];
    // an offset mean and spread, like a conv output
    let x = (rand(shape) * 3.0 + 0.5).detach().require_grad();
    let gamma = (rand([c]) * 0.5 + 1.0).detach().require_grad();
    let beta = rand([c]).require_grad();
    let (x2, g2, b2) = (twin(&x), twin(&gamma), twin(&beta));
    let (ours, mean, var) = <Ad as Kernels>::batch_norm_train(x.clone(), gamma.clone(), beta.clone(), 1e-5, relu);
    let (want, mean2, var2) = reference::batch_norm_train(x2.clone(), g2.clone(), b2.clone(), 1e-5, relu);
    close(ours.to_data(), want.to_data(), 1e-4, &format!("{what}: output"));
    close(mean.to_data(), mean2.to_data(), 1e-5, &format!("{what}: mean"));
    close(var.to_data(), var2.to_data(), 1e-5, &format!("{what}: var"));
    let probe = Tensor::<Ad, 4>::random(shape, Distribution::Default, &FlexDevice);
    let ga = (ours * probe.clone()).sum().backward();
    let gb = (want * probe).sum().backward();
    close(
        x.grad(&ga).unwrap().to_data(),
        x2.grad(&gb).unwrap().to_data(),
        2e-4,
        &format!("{what}: d/dx"),
    );
    close(
        gamma.grad(&ga).unwrap().to_data(),
        g2.grad(&gb).unwrap().to_data(),
        2e-4,
        &format!("{what}: d/dgamma"),
    );
    close(
        beta.grad(&ga).unwrap().to_data(),
        b2.grad(&gb).unwrap().to_data(),
        2e-4,
        &format!("{what}: d/dbeta"),
    );
    // running statistics
    let (xi, gi, bi) = (x.inner(), gamma.inner(), beta.inner());
    let rm = Tensor::<Flex, 1>::random([c], Distribution::Normal(0.0, 1.0), &FlexDevice);
    let rv = Tensor::<Flex, 1>::random([c], Distribution::Uniform(0.5, 2.0), &FlexDevice);
    let ours =
        <Flex as Kernels>::batch_norm_eval(xi.clone(), gi.clone(), bi.clone(), rm.clone(), rv.clone(), 1e-5, relu);
    let want = reference::batch_norm_eval(xi, gi, bi, rm, rv, 1e-5, relu);
    close(ours.to_data(), want.to_data(), 1e-4, &format!("{what}: inference"));
}

#[test]
fn batch_norm_matches_burn_forward_and_gradients() {
    check_bn([3, 5, 6, 7], false);
    check_bn([3, 5, 6, 7], true);
    check_bn([1, 4, 33, 97], true);
    check_bn([4, 64, 1, 1], true);
    check_bn([2, 3, 130, 70], false);
}

#[test]
fn the_layer_helpers_match_burns_layers() {
    use burn::module::Param;
    use burn::nn::conv::Conv2dConfig;
    use burn::nn::{BatchNormConfig, PaddingConfig2d};
    let d = FlexDevice;
    let conv = Conv2dConfig::new([3, 4], [3, 3])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .with_stride([2, 2])
        .init::<Ad>(&d);
    let x = rand([2, 3, 11, 10]);
    close(
        super::conv2d(&conv, x.clone()).to_data(),
        conv.forward(x.clone()).to_data(),
        1e-4,
        "conv layer",
    );
    // burn's BatchNorm in training: ours with relu=false matches it (outputs, running mean)
    let mut stock = BatchNormConfig::new(3).init::<Ad>(&d);
    stock.gamma = Param::from_tensor(rand([3]).require_grad());
    let mut ours = BatchNormConfig::new(3).init::<Ad>(&d);
    ours.gamma = Param::from_tensor(twin(&stock.gamma.val()));
    close(
        super::batch_norm(&ours, x.clone(), false).to_data(),
        stock.forward(x.clone()).to_data(),
        1e-4,
        "norm layer",
    );
    close(
        ours.running_mean.value_sync().to_data(),
        stock.running_mean.value_sync().to_data(),
        1e-5,
        "running mean",
    );
    // ReLU fused = ReLU after
    let y = super::batch_norm(&ours, x.clone(), true);
    let want = burn::tensor::activation::relu(super::batch_norm(&ours, x, false));
    close(y.to_data(), want.to_data(), 1e-5, "fused relu");
}

fn rand_inner(n: usize) -> Tensor<Flex, 1> {
    Tensor::random([n], Distribution::Normal(0.0, 1.0), &FlexDevice)
}

#[test]
fn adam_step_matches_burn_ops() {
    use super::AdamStep;
    // sizes below, at and across the kernel's chunks; with and without weight decay; the first
    // step (zero moments) and a later one
    for (n, decay, step) in [
        (1, None, 1),
        (37, Some(1.0 - 1e-3 * 0.01), 1),
        (40_000, Some(0.99), 7),
        (16_384, None, 3),
    ] {
        let h = AdamStep {
            lr: 3e-3,
            beta1: 0.93,
            beta2: 0.99,
            eps: 1e-5,
            decay,
            step,
        };
        let (p, g) = (rand_inner(n), rand_inner(n));
        let (m, v) = if step == 1 {
            (p.zeros_like(), p.zeros_like())
        } else {
            (rand_inner(n).mul_scalar(0.1), rand_inner(n).abs().mul_scalar(0.01))
        };
        // the caller keeps a handle on p and m: the kernel must not write into them
        let (p_before, m_before) = (p.to_data(), m.to_data());
        let kept = (p.clone(), m.clone());
        let ours = <Flex as Kernels>::adam_step(p.clone(), g.clone(), m.clone(), v.clone(), &h);
        let want = reference::adam_step(p, g, m, v, &h);
        for (i, (a, b)) in ours.into_iter().zip(want).enumerate() {
            close(
                a.to_data(),
                b.to_data(),
                1e-6,
                &format!("adam n {n} step {step} output {i}"),
            );
        }
        assert_eq!(kept.0.to_data(), p_before, "adam n {n}: the caller's parameter changed");
        assert_eq!(kept.1.to_data(), m_before, "adam n {n}: the caller's moment changed");
    }
}
