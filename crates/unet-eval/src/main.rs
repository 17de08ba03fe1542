use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use facepipe_core::cli::{Common, InputArgs, OutputArgs};
use unet::device::DeviceSpec;
use unet::inference::Weights;
use unet_eval::{Outside, Select};

/// Runs a trained UNet over a manifest: predicted masks at each image's full resolution,
/// `pred_mask` added to the items, and scores of the labelled ones.
///
/// The input items need `image`, and `mask` where labelled; the output manifest holds the
/// selected items, each with `pred_mask`.
///
/// The prediction is made from the model's centre crop/resize (and, by default, overlapping
/// square tiles covering the rest of a non-square image), its probabilities resized back and
/// the class taken at full resolution. --out-dir gets masks/, colour/, overlay/, eval.json,
/// per_image.csv, confusion.csv/png, contact_sheet.png and report.md; the output manifest
/// (the selected items) is written last.
#[derive(Parser, Debug)]
#[command(
    version = facepipe_core::LONG_VERSION,
    after_help = "Examples:\n  unet-eval --model runs/mut1ny -i out/split.json -o out/predictions.json --out-dir out/eval\n  unet-eval --model runs/mut1ny -i photos.json -o preds.json --out-dir preds --split all --device cuda --bs 32\n\nIn parts (each shard its own --out-dir; manifest-merge joins the manifests):\n  for k in 0 1 2; do unet-eval --model m -i split.json -o preds.$k.json --out-dir eval.$k --shard $k/3; done\n  unet-eval --merge eval.0 eval.1 eval.2 --out-dir eval --expect split.json\n  manifest-merge -o predictions.json --expect split.json preds.0.json preds.1.json preds.2.json"
)]
struct Args {
    /// Model directory written by unet-train (its model.json and weights).
    #[arg(long, value_name = "DIR", required_unless_present_any = ["summary", "merge", "list_devices"])]
    model: Option<PathBuf>,
    #[command(flatten)]
    input: InputArgs,
    #[command(flatten)]
    output: OutputArgs,
    /// Folder for the masks, pictures and reports (refused if it holds anything but a previous unet-eval).
    #[arg(long, value_name = "DIR", required_unless_present_any = ["summary", "list_devices"])]
    out_dir: Option<PathBuf>,
    /// Print the summary of a finished evaluation directory and exit.
    #[arg(long, value_name = "DIR", exclusive = true)]
    summary: Option<PathBuf>,
    /// List the devices this build can use (and wgpu's adapters) and exit.
    #[arg(long, exclusive = true)]
    list_devices: bool,
    /// Score only part K of N of the input's items (by sorted id), with --out-dir a folder of
    /// this shard's own: K/N, or env (Slurm's array task, Kubernetes' completion index; env/N
    /// fixes N). --merge joins the parts' scores, manifest-merge their manifests.
    #[arg(long, value_name = "K/N|env|env/N", conflicts_with = "merge")]
    shard: Option<facepipe_core::shard::ShardSpec>,
    /// Join the --out-dir folders of the N shards of one evaluation into --out-dir: the
    /// scores of all of them, as one run gives (the masks and pictures stay in the shards').
    #[arg(long, value_name = "SHARD_DIR", num_args = 1.., conflicts_with_all = ["model", "input", "output"])]
    merge: Vec<PathBuf>,
    /// With --merge: the manifest the shards read; per_image.csv keeps its order (else rows
    /// are sorted by id).
    #[arg(long, value_name = "INPUT", requires = "merge")]
    expect: Option<PathBuf>,
    /// Which items to run: those of one split, or all (scores are given per split).
    #[arg(long, value_enum, default_value_t = Select::All)]
    split: Select,
    /// Pixels outside the centre square of a non-square image: predicted from tiles, or not predicted (255).
    #[arg(long, value_enum, default_value_t = Outside::Tile)]
    outside: Outside,
    /// Which saved model: best (lowest valid loss) or last.
    #[arg(long, default_value = "best", value_parser = clap::value_parser!(Weights))]
    weights: Weights,
    /// cpu, cuda[:N] (NVIDIA) or wgpu[:N] (Vulkan, Metal, DirectX 12); each GPU backend needs a
    /// build with its feature (--features cuda, --features wgpu): --list-devices shows them.
    #[arg(long, default_value = "cpu", value_parser = clap::value_parser!(DeviceSpec))]
    device: DeviceSpec,
    /// Tiles per forward pass.
    #[arg(long, default_value_t = 8, value_parser = facepipe_core::cli::positive_usize)]
    bs: usize,
    /// Worst and best images on the contact sheet (each).
    #[arg(long, value_name = "N", default_value_t = 6)]
    contact: usize,
    #[command(flatten)]
    common: Common,
}

fn main() -> ExitCode {
    facepipe_core::cli::main_chatty(
        unet_eval::STAGE,
        |a: &mut Args| &mut a.common,
        |a| {
            if a.list_devices {
                facepipe_core::cli::say(unet::device::describe().join("\n"));
                return Ok(());
            }
            if let Some(dir) = &a.summary {
                facepipe_core::cli::say(unet_eval::report::summary(dir)?);
                return Ok(());
            }
            if !a.merge.is_empty() {
                let Some(out_dir) = a.out_dir else {
                    anyhow::bail!("--out-dir is required");
                };
                let cfg = unet_eval::merge::MergeConfig {
                    shards: a.merge,
                    out_dir,
                    expect: a.expect,
                    force: a.output.force,
                };
                let e = unet_eval::merge::merge(&cfg)?;
                unet_eval::report::log_summary(&e);
                return Ok(());
            }
            let (Some(model_dir), Some(out_dir)) = (a.model, a.out_dir) else {
                anyhow::bail!("--model and --out-dir are required");
            };
            let cfg = unet_eval::Config {
                model_dir,
                weights: a.weights,
                input: a.input.input,
                output: a.output.output,
                out_dir,
                select: a.split,
                outside: a.outside,
                device: a.device,
                bs: a.bs,
                contact: a.contact,
                force: a.output.force,
                shard: a.shard.map(|s| s.resolve()).transpose()?,
            };
            let o = unet_eval::run(&cfg, &a.common.progress(0, "unet-eval"))?;
            unet_eval::report::log_summary(&o.eval);
            Ok(())
        },
    )
}
