//! Whether the inputs of one page come from one run. Each stage records what it read by
//! sha256 (eval.json the model.json and manifest it used, a manifest's provenance every input
//! of every stage, a cheek-lab report the manifest it measured), so a model, an evaluation and
//! cheeks of different runs joined on one page are found, and the page says so at its top.

use std::collections::HashSet;

use crate::Inputs;

/// What does not belong together, one sentence each (empty when all is one run's).
pub fn mismatches(inputs: &Inputs) -> Vec<String> {
    let mut out = vec![];
    // the manifest and every file its stages read, by sha256
    let chain: Option<HashSet<&str>> = inputs.manifest.as_ref().map(|m| {
        std::iter::once(m.input.sha256.as_str())
            .chain(
                m.manifest
                    .provenance
                    .iter()
                    .flat_map(|s| s.inputs.iter().map(|i| i.sha256.as_str())),
            )
            .collect()
    });
    let manifest_shown = inputs
        .manifest
        .as_ref()
        .map(|m| m.input.path.clone())
        .unwrap_or_default();
    if let (Some(model), Some(eval)) = (&inputs.model, &inputs.eval)
        && eval.info.model.model_json_sha256 != model.model_json_sha256
    {
        out.push(format!(
            "the evaluation in {} was made with another model than {} (its model.json differs): its scores are not this model's",
            eval.dir.display(),
            model.dir.display()
        ));
    }
    if let (Some(model), Some(m)) = (&inputs.model, &inputs.manifest) {
        let predicted_by = m.manifest.provenance.iter().rev().find(|s| s.stage == "unet-eval");
        let model_json = predicted_by.and_then(|s| s.inputs.iter().find(|i| i.path.ends_with("model.json")));
        if let Some(mj) = model_json
            && mj.sha256 != model.model_json_sha256
        {
            out.push(format!(
                "the predictions in {manifest_shown} were made by another model ({}) than {}",
                mj.path,
                model.dir.display()
            ));
        }
    }
    if let (Some(chain), Some(eval)) = (&chain, &inputs.eval)
        && !chain.contains(eval.info.manifest.sha256.as_str())
    {
        out.push(format!(
            "the evaluation in {} scored {}, which is neither {manifest_shown} nor a manifest it was made from",
            eval.dir.display(),
            eval.info.manifest.path
        ));
    }
    if let Some(chain) = &chain {
        for c in &inputs.cheeks {
            if !chain.contains(c.info.input.sha256.as_str()) {
                out.push(format!(
                    "the cheeks in {} were measured on {}, which is neither {manifest_shown} nor a manifest it was made from: another dataset or run",
                    c.path.display(),
                    c.info.input.path
                ));
            }
        }
    }
    out
}
