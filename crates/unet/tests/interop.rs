//! The `.safetensors` unet-train writes load into the PyTorch model they correspond to
//! (segmentation_models_pytorch's Unet for `--arch smp`, fastai's DynamicUnet for `fastai`): the
//! names and shapes of every tensor against the state dict of that model, listed once from the
//! PyTorch libraries (`tests/interop/torch_state_dicts.py`, committed as JSON).

use std::collections::BTreeMap;
use std::path::PathBuf;

use burn::backend::Flex;
use burn::backend::flex::FlexDevice;
use unet::model::weights::load_pretrained;
use unet::model::{Arch, FastaiUnet, SmpUnet};
use unet::model_dir::save_weights;

/// name → shape of a committed state-dict list, without PyTorch's `num_batches_tracked`
/// counters (burn keeps none; PyTorch's BatchNorm fills them in when a state dict lacks them,
/// so even a strict `load_state_dict` takes the file).
fn torch_list(file: &str) -> (String, BTreeMap<String, Vec<usize>>) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/interop")
        .join(file);
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let tensors = doc["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| !t["name"].as_str().unwrap().ends_with(".num_batches_tracked"))
        .map(|t| {
            let shape = t["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize);
            (t["name"].as_str().unwrap().to_string(), shape.collect())
        })
        .collect();
    (doc["model"].as_str().unwrap().to_string(), tensors)
}

/// name → shape of a safetensors file, every tensor F32.
fn written(path: &std::path::Path) -> BTreeMap<String, Vec<usize>> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(name, view)| {
            assert_eq!(view.dtype(), safetensors::Dtype::F32, "{name}");
            (name, view.shape().to_vec())
        })
        .collect()
}

/// Saves a fresh 11-class model of `arch` under its twin's names and compares every name and
/// shape with the committed list `file`.
fn names_match(file: &str, arch: Arch) {
    let (model, want) = torch_list(file);
    let d = tempfile::tempdir().unwrap();
    let saved = match arch {
        Arch::Smp => save_weights(&SmpUnet::<Flex>::new(11, &FlexDevice), d.path(), "m", Some(arch)),
        Arch::Fastai => save_weights(&FastaiUnet::<Flex>::new(11, &FlexDevice), d.path(), "m", Some(arch)),
    };
    saved.unwrap();
    let got = written(&d.path().join("m.safetensors"));
    let missing: Vec<&String> = want.keys().filter(|k| !got.contains_key(*k)).collect();
    let extra: Vec<&String> = got.keys().filter(|k| !want.contains_key(*k)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "against {model}: missing {missing:?}, not in it {extra:?}"
    );
    assert_eq!(got, want, "shapes against {model}");
}

#[test]
fn smp_weights_carry_segmentation_models_pytorch_names() {
    names_match("smp_unet_resnet34.json", Arch::Smp);
}

#[test]
fn fastai_weights_carry_dynamic_unet_names() {
    names_match("fastai_dynamic_unet_resnet34.json", Arch::Fastai);
}

/// A whole model saved under its PyTorch twin's names loads back as `--pretrained`, every
/// tensor in place: the same weights give the same burnpack bytes.
#[test]
fn a_whole_model_under_torch_names_loads_back() {
    let d = tempfile::tempdir().unwrap();
    let a = SmpUnet::<Flex>::new(3, &FlexDevice);
    save_weights(&a, d.path(), "a", Some(Arch::Smp)).unwrap();
    let mut b = SmpUnet::<Flex>::new(3, &FlexDevice);
    let report = load_pretrained(&mut b, &d.path().join("a.safetensors"), Arch::Smp).unwrap();
    assert!(report.applied > 200 && report.unused.is_empty(), "{report}");
    save_weights(&b, d.path(), "b", None).unwrap();
    save_weights(&a, d.path(), "a2", None).unwrap();
    assert_eq!(
        std::fs::read(d.path().join("b.bpk")).unwrap(),
        std::fs::read(d.path().join("a2.bpk")).unwrap()
    );

    let f = FastaiUnet::<Flex>::new(3, &FlexDevice);
    save_weights(&f, d.path(), "f", Some(Arch::Fastai)).unwrap();
    let mut g = FastaiUnet::<Flex>::new(3, &FlexDevice);
    load_pretrained(&mut g, &d.path().join("f.safetensors"), Arch::Fastai).unwrap();
    save_weights(&g, d.path(), "g", None).unwrap();
    save_weights(&f, d.path(), "f2", None).unwrap();
    assert_eq!(
        std::fs::read(d.path().join("g.bpk")).unwrap(),
        std::fs::read(d.path().join("f2.bpk")).unwrap()
    );

    // another number of classes: the head is named, nothing is applied
    let mut other = SmpUnet::<Flex>::new(5, &FlexDevice);
    let e = load_pretrained(&mut other, &d.path().join("a.safetensors"), Arch::Smp)
        .unwrap_err()
        .to_string();
    assert!(e.contains("segmentation_head.0.") && e.contains("has shape"), "{e}");
    // a model of the other arch is not taken for this one
    let e = load_pretrained(&mut g, &d.path().join("a.safetensors"), Arch::Fastai)
        .unwrap_err()
        .to_string();
    assert!(e.contains("is a whole smp model") && e.contains("--arch smp"), "{e}");
}
