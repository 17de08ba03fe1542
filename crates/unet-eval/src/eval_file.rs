//! How `eval.json`'s scores are made: results grouped by split and scored (the file's types,
//! and what each score means, are `facepipe_formats::eval`'s).

use facepipe_core::metrics::{Confusion, mean_present};
use facepipe_core::palette::Class;

use crate::ItemResult;

pub use facepipe_formats::eval::{
    ClassScore, EvalFile, Group, ModelRef, Scores, Settings, ShardRef, Throughput, background,
};

pub(crate) fn group_name(r: &ItemResult, any_split: bool) -> &'static str {
    match (r.split, any_split) {
        (Some(facepipe_core::Split::Valid), _) => "valid",
        (Some(facepipe_core::Split::Train), _) => "train",
        (None, true) => "unsplit",
        (None, false) => "all",
    }
}

/// Groups the labelled results by split (valid first) and scores each; `any_split`: whether
/// any item of the run (every shard's) has a split, which names the items without one.
pub fn groups(results: &[ItemResult], classes: &[Class], any_split: bool) -> Vec<Group> {
    let mut out = Vec::new();
    for name in ["valid", "train", "unsplit", "all"] {
        let members: Vec<&ItemResult> = results
            .iter()
            .filter(|r| r.full.is_some() && group_name(r, any_split) == name)
            .collect();
        if members.is_empty() {
            continue;
        }
        let mut full = Confusion::new(classes.len());
        let mut model = Confusion::new(classes.len());
        let mut loss = 0.0;
        for r in &members {
            full.merge(r.full.as_ref().expect("labelled"));
            model.merge(r.model.as_ref().expect("labelled"));
            loss += r.model_loss_sum;
        }
        out.push(Group {
            name: name.into(),
            images: members.len(),
            full_resolution: Scores::from_confusion(&full, classes, None),
            model_resolution: Scores::from_confusion(&model, classes, Some(loss)),
        });
    }
    out
}

/// The number a contact sheet ranks by: mean foreground IoU, else mean IoU.
pub fn rank_score(c: &Confusion, classes: &[Class]) -> Option<f64> {
    let iou = c.iou();
    mean_present(&iou, background(classes)).or_else(|| mean_present(&iou, None))
}

/// What part of a run the results are, and how many images the contact sheet shows.
#[derive(Clone, Copy, Debug)]
pub struct Scope {
    /// Worst and best images on the contact sheet (each).
    pub contact: usize,
    /// Whether any item of the whole run (every shard) has a split; see [`groups`].
    pub any_split: bool,
    /// The part (`--shard K/N`), if not the whole input.
    pub shard: Option<facepipe_core::shard::Shard>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use facepipe_core::Split;
    use facepipe_core::metrics::Confusion;

    fn item(id: &str, split: Option<Split>, pred: &[u8], truth: &[u8], model_loss: f64) -> ItemResult {
        let mut c = Confusion::new(3);
        c.add(pred, truth);
        ItemResult {
            id: id.into(),
            split,
            image: id.into(),
            mask: Some(id.into()),
            width: pred.len() as u32,
            height: 1,
            tiles: 1,
            pred_mask: String::new(),
            colour: String::new(),
            overlay: String::new(),
            model: Some(c.clone()),
            full: Some(c),
            model_loss_sum: model_loss,
        }
    }

    use crate::test_classes as classes;

    #[test]
    fn groups_sum_images_and_skip_absent_classes() {
        let results = vec![
            // class 2 (eyes) is absent from every valid image and prediction
            item("a", Some(Split::Valid), &[0, 1, 1, 0], &[0, 1, 1, 1], 2.0),
            // background only, predicted right
            item("b", Some(Split::Valid), &[0, 0], &[0, 0], 0.5),
            // all ignored: counts nothing
            item("c", Some(Split::Valid), &[1, 2], &[255, 255], 0.0),
            item("d", Some(Split::Train), &[2], &[2], 0.1),
        ];
        let g = groups(&results, &classes(), true);
        assert_eq!(
            g.iter().map(|g| g.name.as_str()).collect::<Vec<_>>(),
            ["valid", "train"]
        );
        let v = &g[0].full_resolution;
        assert_eq!((g[0].images, v.pixels), (3, 6));
        assert_eq!(v.pixel_accuracy, Some(5.0 / 6.0));
        // background: inter 3, pred 4, truth 3 → IoU 3/4; skin: inter 2, pred 2, truth 3 → 2/3
        assert_eq!(v.per_class[0].iou, Some(0.75));
        assert_eq!(v.per_class[1].iou, Some(2.0 / 3.0));
        assert_eq!(v.per_class[2].iou, None);
        assert_eq!(v.mean_iou, Some((0.75 + 2.0 / 3.0) / 2.0));
        assert_eq!(v.mean_iou_fg, Some(2.0 / 3.0));
        assert_eq!(v.per_class[1].dice, Some(0.8));
        assert_eq!(v.confusion, vec![vec![3, 0, 0], vec![1, 2, 0], vec![0, 0, 0]]);
        assert_eq!(g[0].model_resolution.loss, Some(2.5 / 6.0));
        assert_eq!(v.loss, None);
        assert_eq!(g[1].full_resolution.mean_iou, Some(1.0));
        // the all-ignore image has no score of its own; background-only has no foreground one
        let c = results[2].full.as_ref().unwrap();
        assert_eq!((c.pixel_accuracy(), rank_score(c, &classes())), (None, None));
        assert_eq!(rank_score(results[1].full.as_ref().unwrap(), &classes()), Some(1.0));
    }

    #[test]
    fn items_without_a_split_form_their_own_group() {
        let only = vec![item("a", None, &[0], &[0], 0.0)];
        assert_eq!(groups(&only, &classes(), false)[0].name, "all");
        let mixed = vec![
            item("a", None, &[0], &[0], 0.0),
            item("b", Some(Split::Valid), &[1], &[1], 0.0),
        ];
        let names: Vec<String> = groups(&mixed, &classes(), true).into_iter().map(|g| g.name).collect();
        assert_eq!(names, ["valid", "unsplit"]);
    }
}
