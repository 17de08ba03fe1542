use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use facepipe_core::cli::{Common, InputArgs, OutputArgs};
use rgb2class::{MaskCompression, OffPalette};

/// Turn RGB colour-coded label images into single-channel class-index masks (8-bit TIFF).
#[derive(Parser, Debug)]
#[command(
    version = facepipe_core::LONG_VERSION,
    after_help = "Palette: --palette FILE, else the input manifest's classes, else the Mut1ny table.\n\n\
                  Example:\n  rgb2class -i out/pairs.json -o out/masks.json --out-dir out/masks"
)]
struct Args {
    #[command(flatten)]
    input: InputArgs,
    #[command(flatten)]
    output: OutputArgs,
    /// Folder for the masks; each mirrors its label's path below the dataset root.
    #[arg(long, value_name = "DIR")]
    out_dir: PathBuf,
    /// Palette JSON: an array of {id, name, rgb} or an object with `classes`.
    #[arg(long, value_name = "FILE")]
    palette: Option<PathBuf>,
    /// Pixels whose colour is not exactly in the palette.
    #[arg(long, value_enum, default_value_t = OffPalette::Nearest)]
    off_palette: OffPalette,
    /// TIFF compression of the masks.
    #[arg(long, value_enum, default_value_t = MaskCompression::Packbits)]
    compression: MaskCompression,
    /// Convert only part K of N of the items (by sorted id), writing a manifest of that part
    /// (`manifest-merge` joins the parts): K/N, or env (Slurm's array task, Kubernetes'
    /// completion index; env/N fixes N). Shards may share --out-dir.
    #[arg(long, value_name = "K/N|env|env/N")]
    shard: Option<facepipe_core::shard::ShardSpec>,
    #[command(flatten)]
    common: Common,
}

fn main() -> ExitCode {
    facepipe_core::cli::main(
        rgb2class::STAGE,
        |a: &Args| &a.common,
        |a| {
            let shard = a.shard.map(|s| s.resolve()).transpose()?;
            let _locks = match shard {
                None => a.output.prepare(rgb2class::STAGE, [a.out_dir.as_path()])?,
                Some(s) => a.output.prepare_shard(rgb2class::STAGE, [a.out_dir.as_path()], s)?,
            };
            let cfg = rgb2class::Config {
                input: a.input.input,
                out_dir: a.out_dir,
                palette: a.palette,
                off_palette: a.off_palette,
                compression: a.compression,
                force: a.output.force,
                shard,
            };
            let m = rgb2class::run(&cfg, &a.common.progress(0, "rgb2class"))?;
            a.output.write(&m)
        },
    )
}
