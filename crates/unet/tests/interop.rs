//! The `.safetensors` unet-train writes load into the PyTorch model they correspond to
//! (segmentation_models_pytorch's Unet for `--arch smp`, fastai's DynamicUnet for `fastai`): the
//! names and shapes of every tensor against the state dict of that model, listed once from the
//! PyTorch libraries (`tests/interop/torch_state_dicts.py`, committed as JSON).

use std::collections::BTreeMap;
use std::path::PathBuf;

use burn::backend::Flex;
use burn::backend::flex::FlexDevice;
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

#[test]
fn smp_weights_carry_segmentation_models_pytorch_names() {
    let (model, want) = torch_list("smp_unet_resnet34.json");
    let net = SmpUnet::<Flex>::new(11, &FlexDevice);
    let d = tempfile::tempdir().unwrap();
    save_weights(&net, d.path(), "m", Some(Arch::Smp)).unwrap();
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
fn fastai_weights_carry_dynamic_unet_names() {
    let (model, want) = torch_list("fastai_dynamic_unet_resnet34.json");
    let net = FastaiUnet::<Flex>::new(11, &FlexDevice);
    let d = tempfile::tempdir().unwrap();
    save_weights(&net, d.path(), "m", Some(Arch::Fastai)).unwrap();
    let got = written(&d.path().join("m.safetensors"));
    let missing: Vec<&String> = want.keys().filter(|k| !got.contains_key(*k)).collect();
    let extra: Vec<&String> = got.keys().filter(|k| !want.contains_key(*k)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "against {model}: missing {missing:?}, not in it {extra:?}"
    );
    assert_eq!(got, want, "shapes against {model}");
}
