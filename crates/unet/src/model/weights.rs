//! Loading ImageNet weights into the encoder from torchvision's files, with no key remapping.
//!
//! `resnet34-b627a593.pth` (torchvision's own download) loads through burn-store's PyTorch
//! reader; an equivalent `.safetensors` file (e.g. `safetensors.torch.save_file(model.state_dict())`)
//! through its safetensors reader with the PyTorch adapter (BatchNorm `weight`/`bias` become
//! `gamma`/`beta`). Keys burn has no place for (`fc.*`, `*.num_batches_tracked`) are reported
//! as unused; a missing key or a shape mismatch is an error naming the key.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{Context, Result, bail, ensure};
use burn::module::Module;
use burn::tensor::backend::Backend;
use burn_store::{BurnToPyTorchAdapter, KeyRemapper, ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore};
use safetensors::Dtype;
use safetensors::tensor::TensorView;

use crate::model::resnet::ResNet;
use crate::model::{Arch, Architecture};

/// What a load did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadReport {
    pub applied: usize,
    pub missing: Vec<String>,
    pub unused: Vec<String>,
}

impl std::fmt::Display for LoadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} tensors applied, {} missing, {} unused",
            self.applied,
            self.missing.len(),
            self.unused.len()
        )
    }
}

/// Keys a torchvision state dict has that the encoder does not use.
fn expected_unused(key: &str) -> bool {
    key.starts_with("fc.") || key.ends_with("num_batches_tracked")
}

/// torchvision.models.resnet34().state_dict(): names and shapes, in its order, written from
/// torchvision's architecture (not from our module), for tests and fuzz seeds that need a
/// weight file without downloading one.
pub fn torchvision_resnet34() -> Vec<(String, Vec<usize>)> {
    let mut keys: Vec<(String, Vec<usize>)> = vec![("conv1.weight".into(), vec![64, 3, 7, 7])];
    let bn = |keys: &mut Vec<(String, Vec<usize>)>, p: &str, c: usize| {
        for s in ["weight", "bias", "running_mean", "running_var"] {
            keys.push((format!("{p}.{s}"), vec![c]));
        }
        keys.push((format!("{p}.num_batches_tracked"), vec![]));
    };
    bn(&mut keys, "bn1", 64);
    let mut cin = 64;
    for (l, (blocks, c)) in [(3usize, 64usize), (4, 128), (6, 256), (3, 512)]
        .into_iter()
        .enumerate()
    {
        for b in 0..blocks {
            let p = format!("layer{}.{b}", l + 1);
            let i = if b == 0 { cin } else { c };
            keys.push((format!("{p}.conv1.weight"), vec![c, i, 3, 3]));
            bn(&mut keys, &format!("{p}.bn1"), c);
            keys.push((format!("{p}.conv2.weight"), vec![c, c, 3, 3]));
            bn(&mut keys, &format!("{p}.bn2"), c);
            if b == 0 && l > 0 {
                keys.push((format!("{p}.downsample.0.weight"), vec![c, cin, 1, 1]));
                bn(&mut keys, &format!("{p}.downsample.1"), c);
            }
        }
        cin = c;
    }
    keys.push(("fc.weight".into(), vec![1000, 512]));
    keys.push(("fc.bias".into(), vec![1000]));
    keys
}

/// One tensor of a weight file.
#[derive(Clone, Debug, PartialEq)]
pub struct FileTensor {
    pub shape: Vec<usize>,
    /// The file's type, as the file names it (`F32`, `F16`, `I64`, ...).
    pub dtype: String,
    /// The values as f32, or `None` for an integer or boolean tensor.
    pub values: Option<Vec<f32>>,
}

/// Reads every tensor of a weight file's bytes (`ext`: `safetensors`, or `pth`/`pt`/`bin`,
/// which burn-store reads from `file`). Any input gives a tensor map or an error, never a
/// panic: this is what `facepipe-fuzz` drives with broken files.
pub fn read_tensors(bytes: &[u8], ext: &str, file: &Path) -> Result<BTreeMap<String, FileTensor>> {
    match ext {
        "safetensors" => read_safetensors(bytes),
        "pth" | "pt" | "bin" => read_pth(file, bytes.len()),
        other => bail!("unknown extension {other:?} (expected .pth or .safetensors)"),
    }
}

fn f16_to_f32(h: u16) -> f32 {
    let sign = if h & 0x8000 != 0 { -1.0f32 } else { 1.0 };
    let exp = i32::from((h >> 10) & 0x1f);
    let frac = f32::from(h & 0x3ff);
    match exp {
        0 => sign * frac * 2f32.powi(-24),
        31 if frac == 0.0 => sign * f32::INFINITY,
        31 => f32::NAN,
        e => sign * (1.0 + frac / 1024.0) * 2f32.powi(e - 15),
    }
}

fn read_safetensors(bytes: &[u8]) -> Result<BTreeMap<String, FileTensor>> {
    use safetensors::Dtype;
    let st =
        safetensors::SafeTensors::deserialize(bytes).map_err(|e| anyhow::anyhow!("not a safetensors file: {e}"))?;
    let mut out = BTreeMap::new();
    for (name, view) in st.iter() {
        let data = view.data();
        let values = match view.dtype() {
            Dtype::F32 => Some(
                data.chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            ),
            Dtype::F16 => Some(
                data.chunks_exact(2)
                    .map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
                    .collect(),
            ),
            Dtype::BF16 => Some(
                data.chunks_exact(2)
                    .map(|c| f32::from_bits(u32::from(u16::from_le_bytes([c[0], c[1]])) << 16))
                    .collect(),
            ),
            Dtype::F64 => Some(
                data.chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
                    .collect(),
            ),
            _ => None,
        };
        out.insert(
            name.to_string(),
            FileTensor {
                shape: view.shape().to_vec(),
                dtype: format!("{:?}", view.dtype()),
                values,
            },
        );
    }
    Ok(out)
}

fn read_pth(file: &Path, file_len: usize) -> Result<BTreeMap<String, FileTensor>> {
    use burn_store::pytorch::PytorchReader;
    // burn-store's pickle reader is not hardened against every broken file: a panic in it
    // becomes an error here (its allocations are bounded below by the file's size first).
    let caught = std::panic::catch_unwind(|| -> Result<BTreeMap<String, FileTensor>> {
        let reader = PytorchReader::new(file).map_err(|e| anyhow::anyhow!("not a PyTorch file: {e}"))?;
        let mut out = BTreeMap::new();
        for (name, snap) in reader.tensors() {
            let n = snap.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
            let fits = n
                .and_then(|n| n.checked_mul(snap.dtype.size()))
                .is_some_and(|b| b <= file_len);
            ensure!(
                fits,
                "tensor {name} claims more data ({:?}) than the file holds",
                snap.shape
            );
            let values = if snap.dtype.is_float() {
                let data = snap.to_data().map_err(|e| anyhow::anyhow!("tensor {name}: {e}"))?;
                let v: Vec<f32> = data.iter::<f32>().collect();
                ensure!(
                    Some(v.len()) == n,
                    "tensor {name}: {} values for shape {:?}",
                    v.len(),
                    snap.shape
                );
                Some(v)
            } else {
                None
            };
            out.insert(
                name.clone(),
                FileTensor {
                    shape: snap.shape.to_vec(),
                    dtype: format!("{:?}", snap.dtype).to_uppercase(),
                    values,
                },
            );
        }
        Ok(out)
    });
    match caught {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| p.downcast_ref::<&str>().copied())
                .unwrap_or("unknown reason");
            bail!("not a readable PyTorch file (the reader failed: {msg})")
        }
    }
}

/// Loads torchvision ResNet34 weights (`.pth`/`.pt` or `.safetensors`) into `encoder`.
///
/// Everything is checked before any weight is applied: every key the encoder needs is there
/// with its shape (errors use PyTorch's names, as in the file), floating-point types other
/// than F32 (F16, BF16, F64) are converted with a note in the log, an integer or boolean
/// tensor where a weight belongs is refused, and so is a NaN or infinite value.
pub fn load_resnet<B: Backend>(encoder: &mut ResNet<B>, file: &Path) -> Result<LoadReport> {
    let tensors = read_file(file)?;
    load_encoder(encoder, &tensors, &file.display().to_string())
}

/// `--pretrained`: torchvision ResNet34 weights for the encoder (as [`load_resnet`]), or a
/// whole model of `arch` saved by its PyTorch twin — `segmentation_models_pytorch.Unet(
/// "resnet34", classes=N)` or fastai's `DynamicUnet` — or by unet-train (the same names, see
/// [`torch_renames`]), to continue training it. A file holding the arch's
/// head is taken as a whole model: every tensor of the model must be there, with its shape
/// (so the same number of classes), checked as [`load_resnet`] checks.
pub fn load_pretrained<B: Backend, M: Architecture<B>>(net: &mut M, file: &Path, arch: Arch) -> Result<LoadReport> {
    let tensors = read_file(file)?;
    let shown = file.display().to_string();
    let head = |a: Arch| match a {
        Arch::Smp => "segmentation_head.0.weight",
        Arch::Fastai => "layers.12.0.weight",
    };
    let other = match arch {
        Arch::Smp => Arch::Fastai,
        Arch::Fastai => Arch::Smp,
    };
    if tensors.contains_key(head(arch)) {
        load_whole(net, &tensors, arch, &shown)
    } else if tensors.contains_key(head(other)) {
        bail!("{shown} is a whole {other} model, not a {arch} one: train it with --arch {other}")
    } else {
        load_encoder(net.encoder_mut(), &tensors, &shown)
    }
}

/// Reads a `.pth`/`.pt` or `.safetensors` weight file's tensors.
fn read_file(file: &Path) -> Result<BTreeMap<String, FileTensor>> {
    if !file.is_file() {
        bail!("weights file {} does not exist", file.display());
    }
    let ext = file
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let shown = file.display();
    let bytes = std::fs::read(file).with_context(|| format!("reading weights {shown}"))?;
    read_tensors(&bytes, &ext, file).with_context(|| format!("weights file {shown}"))
}

/// A whole model of `arch` from a state dict under its PyTorch twin's names.
fn load_whole<B: Backend, M: Module<B>>(
    net: &mut M,
    tensors: &BTreeMap<String, FileTensor>,
    arch: Arch,
    shown: &str,
) -> Result<LoadReport> {
    let mut remapper = KeyRemapper::new();
    for (from, to) in torch_renames(arch) {
        remapper = remapper
            .add_pattern(from, *to)
            .map_err(|e| anyhow::anyhow!("internal: {e}"))?;
    }
    // the model's tensors under burn-store's PyTorch-style names, then under the twin's
    let snapshots = net.collect(None, Some(Box::new(BurnToPyTorchAdapter)), true);
    let shapes: BTreeMap<String, Vec<usize>> = snapshots.iter().map(|s| (s.full_path(), s.shape.to_vec())).collect();
    let (_, names) = remapper.remap(snapshots);
    let wanted = names.into_iter().map(|(t, o)| (t, (shapes[&o].clone(), o))).collect();
    let whose = format!("the {arch} model");
    load_named(
        net,
        tensors,
        &wanted,
        &whose,
        &format!("a whole {arch} UNet-ResNet34"),
        shown,
    )
}

/// torchvision ResNet34 weights into the encoder; `shown` names the file.
fn load_encoder<B: Backend>(
    encoder: &mut ResNet<B>,
    tensors: &BTreeMap<String, FileTensor>,
    shown: &str,
) -> Result<LoadReport> {
    // what the encoder takes, under PyTorch's names (burn-store's are the same)
    let wanted = encoder
        .collect(None, Some(Box::new(BurnToPyTorchAdapter)), true)
        .into_iter()
        .map(|s| (s.full_path(), (s.shape.to_vec(), s.full_path())))
        .collect();
    load_named(
        encoder,
        tensors,
        &wanted,
        "the encoder",
        "a torchvision ResNet34 state dict",
        shown,
    )
}

/// Loads into `net` the file's tensors named as `wanted` says (the file's name → the shape and
/// burn-store's PyTorch-style name), all checked before any is applied: every one there,
/// checked as [`pick`] does, no key left over but the ones every such file has. `whose`
/// ("the encoder") and `ask` ("a torchvision ResNet34 state dict") word the refusals.
fn load_named<B: Backend, M: Module<B>>(
    net: &mut M,
    tensors: &BTreeMap<String, FileTensor>,
    wanted: &BTreeMap<String, (Vec<usize>, String)>,
    whose: &str,
    ask: &str,
    shown: &str,
) -> Result<LoadReport> {
    let missing: Vec<&String> = wanted.keys().filter(|k| !tensors.contains_key(*k)).collect();
    if let Some(k) = missing.first() {
        bail!(
            "{shown}: {whose}'s {k} is not in the file ({} keys missing); is this {ask}?",
            missing.len()
        );
    }
    let shapes: BTreeMap<String, Vec<usize>> = wanted.iter().map(|(k, (s, _))| (k.clone(), s.clone())).collect();
    let picked = pick(&shapes, tensors, shown)?;
    let unused: Vec<String> = tensors.keys().filter(|k| !wanted.contains_key(*k)).cloned().collect();
    if let Some(k) = unused.iter().find(|k| !expected_unused(k)) {
        bail!("{shown}: key {k} matches nothing in {whose} (a different architecture or naming?)");
    }
    let picked: Vec<Picked> = picked
        .into_iter()
        .map(|(k, shape, bytes)| (wanted[&k].1.clone(), shape, bytes))
        .collect();
    apply(net, &picked, shown)?;
    Ok(LoadReport {
        applied: picked.len(),
        missing: Vec::new(),
        unused,
    })
}

/// A checked weight: its PyTorch name, shape and F32 values as little-endian bytes.
type Picked = (String, Vec<usize>, Vec<u8>);

/// The file's tensors for every key in `wanted`, each checked (shape, floating point, finite)
/// and converted to F32 (the conversion is logged); `shown` names the file in errors.
fn pick(
    wanted: &BTreeMap<String, Vec<usize>>,
    tensors: &BTreeMap<String, FileTensor>,
    shown: &str,
) -> Result<Vec<Picked>> {
    let mut converted = BTreeSet::new();
    let mut picked = Vec::with_capacity(wanted.len());
    for (k, shape) in wanted {
        let t = &tensors[k];
        ensure!(
            &t.shape == shape,
            "{shown}: {k} has shape {:?}, the model needs {shape:?}",
            t.shape
        );
        let Some(v) = &t.values else {
            bail!(
                "{shown}: {k} is of integer or boolean type {}; weights must be floating point (F32, F16, BF16 or F64)",
                t.dtype
            );
        };
        if let Some(i) = v.iter().position(|x| !x.is_finite()) {
            bail!(
                "{shown}: {k} holds a non-finite value ({} at index {i}); refusing weights that would make every output NaN",
                v[i]
            );
        }
        if t.dtype != "F32" {
            converted.insert(t.dtype.clone());
        }
        picked.push((
            k.clone(),
            shape.clone(),
            v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ));
    }
    if !converted.is_empty() {
        log::info!(
            "{shown}: converted {} tensors to F32",
            converted.into_iter().collect::<Vec<_>>().join("/")
        );
    }
    Ok(picked)
}

/// Applies checked weights to the encoder: one F32 safetensors buffer, through burn-store's
/// PyTorch adapter, every tensor required.
fn apply<B: Backend, M: Module<B>>(encoder: &mut M, picked: &[Picked], shown: &str) -> Result<()> {
    let views: Vec<(String, TensorView)> = picked
        .iter()
        .map(|(k, s, b)| TensorView::new(Dtype::F32, s.clone(), b).map(|v| (k.clone(), v)))
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("{shown}: {e}"))?;
    let buf = safetensors::serialize(views, None).map_err(|e| anyhow::anyhow!("{shown}: {e}"))?;
    let mut store = SafetensorsStore::from_bytes(Some(buf))
        .with_from_adapter(PyTorchToBurnAdapter)
        .skip_enum_variants(true)
        .allow_partial(false)
        .validate(true);
    let result = encoder
        .load_from(&mut store)
        .map_err(|e| anyhow::anyhow!("{shown}: {e}"))?;
    ensure!(
        result.errors.is_empty() && result.missing.is_empty(),
        "{shown}: {} tensors could not be applied",
        result.errors.len() + result.missing.len()
    );
    Ok(())
}

/// How tensors are renamed from burn-store's PyTorch-style names (burn's module paths,
/// PyTorch's BatchNorm names) to the exact state-dict names of the PyTorch model `arch`
/// corresponds to: for `smp`, `segmentation_models_pytorch.Unet("resnet34", classes=N)`
/// (`decoder.blocks.i.convj.{0,1}.*`, `segmentation_head.0.*`; the encoder's names are
/// torchvision's already); for `fastai`, fastai's `DynamicUnet(create_body(resnet34()),
/// n_out=N)`, whose layers are numbered: `layers.0` the encoder body (torchvision's children
/// 0, 1, 4–7), `layers.1` its BatchNorm, `layers.3` the middle convs, `layers.4`–`7` the
/// UnetBlocks, `layers.8` the last PixelShuffle_ICNR, `layers.11` the ResBlock, `layers.12` the
/// head. Regex patterns, applied in order (each output starts with a name no pattern takes).
pub fn torch_renames(arch: Arch) -> &'static [(&'static str, &'static str)] {
    match arch {
        Arch::Smp => &[
            (r"^blocks\.(\d+)\.(conv[12])\.conv\.", "decoder.blocks.${1}.${2}.0."),
            (r"^blocks\.(\d+)\.(conv[12])\.bn\.", "decoder.blocks.${1}.${2}.1."),
            (r"^head\.", "segmentation_head.0."),
        ],
        Arch::Fastai => &[
            (r"^encoder\.conv1\.", "layers.0.0."),
            (r"^encoder\.bn1\.", "layers.0.1."),
            (r"^encoder\.layer1\.", "layers.0.4."),
            (r"^encoder\.layer2\.", "layers.0.5."),
            (r"^encoder\.layer3\.", "layers.0.6."),
            (r"^encoder\.layer4\.", "layers.0.7."),
            (r"^bn\.", "layers.1."),
            (r"^middle1\.", "layers.3.0.0."),
            (r"^middle2\.", "layers.3.1.0."),
            (r"^blocks\.0\.shuf\.conv\.", "layers.4.shuf.0.0."),
            (r"^blocks\.1\.shuf\.conv\.", "layers.5.shuf.0.0."),
            (r"^blocks\.2\.shuf\.conv\.", "layers.6.shuf.0.0."),
            (r"^blocks\.3\.shuf\.conv\.", "layers.7.shuf.0.0."),
            (r"^blocks\.0\.(conv[12])\.", "layers.4.${1}.0."),
            (r"^blocks\.1\.(conv[12])\.", "layers.5.${1}.0."),
            (r"^blocks\.2\.(conv[12])\.", "layers.6.${1}.0."),
            (r"^blocks\.3\.(conv[12])\.", "layers.7.${1}.0."),
            (r"^blocks\.0\.bn\.", "layers.4.bn."),
            (r"^blocks\.1\.bn\.", "layers.5.bn."),
            (r"^blocks\.2\.bn\.", "layers.6.bn."),
            (r"^blocks\.3\.bn\.", "layers.7.bn."),
            (r"^shuf\.conv\.", "layers.8.0.0."),
            (r"^res1\.", "layers.11.convpath.0.0."),
            (r"^res2\.", "layers.11.convpath.1.0."),
            (r"^head\.", "layers.12.0."),
        ],
    }
}
