use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use facepipe_core::cli::Common;
use unet::device::DeviceSpec;
use unet::model::Arch;
use unet::training::recipe::LrMax;

/// Trains a UNet-ResNet34 on a split manifest the fastai way and writes a model directory.
///
/// Default recipe (the reference workflow): fine_tune(1), lr_find, fit_one_cycle(12,
/// slice(1e-5, 1e-4)) with early stopping on valid loss (patience 2), at --size 448 --bs 12
/// --seed 2020. The directory gets model.json (written last), best and last weights (burn's
/// .bpk, and .safetensors that smp's Unet or fastai's DynamicUnet load as they are), metrics.csv, loss.png, lr_find.csv/png and a
/// checkpoint after every epoch; --resume continues a killed run from its last epoch.
#[derive(Parser, Debug)]
#[command(
    version = facepipe_core::LONG_VERSION,
    after_help = "Examples:\n  unet-train -i out/split.json --out-dir runs/mut1ny --device cuda --pretrained resnet34-b627a593.pth\n  unet-train -i out/split.json --out-dir runs/demo --arch smp --size 96 --bs 8 --fine-tune-epochs 2 --epochs 4 --no-lr-find"
)]
struct Args {
    /// Split manifest (items with image, mask and split; the classes).
    #[arg(short, long, value_name = "FILE", required_unless_present_any = ["summary", "list_devices", "check_device"])]
    input: Option<PathBuf>,
    /// Model directory to write (refused if it holds anything but a previous run).
    #[arg(long, value_name = "DIR", required_unless_present_any = ["summary", "list_devices", "check_device"])]
    out_dir: Option<PathBuf>,
    /// Print the summary of a finished model directory and exit.
    #[arg(long, value_name = "DIR", exclusive = true)]
    summary: Option<PathBuf>,
    /// List the devices this build can use (and wgpu's adapters) and exit.
    #[arg(long, exclusive = true)]
    list_devices: bool,
    /// Run every operation the model trains with on --device and on the CPU from the same
    /// inputs (forward and gradients, and both UNets' training step) and exit; exit 1 when one
    /// differs beyond float32 rounding.
    #[arg(long, conflicts_with_all = ["summary", "list_devices"])]
    check_device: bool,
    /// Decoder: fastai's DynamicUnet or the slim segmentation_models_pytorch one.
    #[arg(long, default_value = "fastai", value_parser = clap::value_parser!(Arch))]
    arch: Arch,
    /// Square input side in pixels, 32 to 2048 (any size; multiples of 32 waste nothing).
    #[arg(long, default_value_t = 448, value_parser = parse_size)]
    size: u32,
    /// Batch size.
    #[arg(long, default_value_t = 12, value_parser = facepipe_core::cli::positive_usize)]
    bs: usize,
    /// Seed for weights, crops and batch order.
    #[arg(long, default_value_t = 2020)]
    seed: u64,
    /// Recipe file (JSON); the reference recipe when absent.
    #[arg(long, value_name = "FILE")]
    recipe: Option<PathBuf>,
    /// Epochs of fine_tune's unfrozen fit.
    #[arg(long, value_name = "N")]
    fine_tune_epochs: Option<usize>,
    /// Epochs of the (last) fit_one_cycle.
    #[arg(long, value_name = "N")]
    epochs: Option<usize>,
    /// Learning rate of the (last) fit_one_cycle: a number, LO,HI (slice) or auto (lr_find's valley).
    #[arg(long, value_name = "LR", value_parser = unet_train::parse_lr)]
    lr: Option<LrMax>,
    /// Early-stopping patience in epochs, or `none`.
    #[arg(long, value_name = "N|none", value_parser = unet_train::parse_patience)]
    patience: Option<unet_train::Patience>,
    /// Training loss: ce (cross-entropy, the default), dice, focal or ce+dice (fastai's definitions).
    #[arg(long, value_name = "LOSS")]
    loss: Option<unet::training::loss::Loss>,
    /// Leave out the recipe's lr_find.
    #[arg(long)]
    no_lr_find: bool,
    /// ImageNet weights for the encoder: torchvision's resnet34 .pth or a .safetensors with its
    /// names. Or a whole model of --arch to continue training: its PyTorch twin's state dict
    /// (segmentation_models_pytorch's Unet, fastai's DynamicUnet) or a unet-train .safetensors.
    #[arg(long, value_name = "FILE")]
    pretrained: Option<PathBuf>,
    /// cpu, cuda[:N] (NVIDIA) or wgpu[:N] (Vulkan, Metal, DirectX 12); each GPU backend needs a
    /// build with its feature (--features cuda, --features wgpu): --list-devices shows them.
    #[arg(long, default_value = "cpu", value_parser = clap::value_parser!(DeviceSpec))]
    device: DeviceSpec,
    #[arg(long, help = facepipe_core::cli::FORCE_HELP, conflicts_with = "resume")]
    force: bool,
    /// Continue the run in --out-dir from its last completed epoch (same settings needed).
    #[arg(long)]
    resume: bool,
    /// Stop as a kill would after this many epochs (tests of --resume).
    #[arg(long, hide = true)]
    halt_after_epochs: Option<usize>,
    #[command(flatten)]
    common: Common,
}

fn parse_size(s: &str) -> Result<u32, String> {
    let v: u32 = s.parse().map_err(|_| format!("{s:?} is not a whole number"))?;
    unet::check_input_size(v).map(|()| v)
}

fn main() -> ExitCode {
    facepipe_core::cli::main_chatty(
        unet_train::STAGE,
        |a: &mut Args| &mut a.common,
        |a| {
            if a.list_devices {
                facepipe_core::cli::say(unet::device::describe().join("\n"));
                return Ok(());
            }
            if a.check_device {
                return unet_train::check_device(a.device);
            }
            if let Some(dir) = &a.summary {
                facepipe_core::cli::say(unet_train::summary(dir)?);
                return Ok(());
            }
            let (Some(input), Some(out_dir)) = (a.input, a.out_dir) else {
                anyhow::bail!("-i and --out-dir are required");
            };
            let edits = unet_train::RecipeEdits {
                fine_tune_epochs: a.fine_tune_epochs,
                epochs: a.epochs,
                lr: a.lr,
                patience: a.patience.map(|p| p.0),
                no_lr_find: a.no_lr_find,
                loss: a.loss,
            };
            let recipe = unet_train::build_recipe(a.recipe.as_ref(), &edits)?;
            let progress = a.common.progress(0, "train");
            let cfg = unet::training::TrainConfig {
                manifest: input,
                out_dir,
                arch: a.arch,
                size: a.size,
                bs: a.bs,
                seed: a.seed,
                recipe,
                pretrained: a.pretrained,
                device: a.device,
                force: a.force,
                resume: a.resume,
                halt_after_epochs: a.halt_after_epochs,
                progress,
            };
            let out = unet::training::train(&cfg)?;
            let b = &out.info.best.record;
            log::info!(
                "{}{}: {} epochs; best ({} epoch {}): valid_loss {:.4}, mean IoU {:.4} (foreground {:.4}), pixel accuracy {:.4}",
                if out.already_done { "already complete: " } else { "" },
                cfg.out_dir.display(),
                out.info.epochs,
                b.phase,
                b.epoch + 1,
                b.valid_loss,
                b.mean_iou,
                b.mean_iou_fg,
                b.pixel_accuracy
            );
            Ok(())
        },
    )
}
