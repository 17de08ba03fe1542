use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use facepipe_core::Output;
use facepipe_core::cli::Common;
use rgb2class::{MaskCompression, OffPalette};

/// Turn RGB colour-coded label images into single-channel class-index masks (8-bit TIFF).
#[derive(Parser, Debug)]
#[command(
    version = facepipe_core::LONG_VERSION,
    after_help = "Palette: --palette FILE, else the input manifest's classes, else the Mut1ny table.\n\n\
                  Example:\n  rgb2class -i out/pairs.json -o out/masks.json --out-dir out/masks"
)]
struct Args {
    /// Input manifest (`-` for stdin).
    #[arg(short, long, value_name = "FILE", default_value = "-")]
    input: PathBuf,
    /// Output manifest (`-` for stdout).
    #[arg(short, long, value_name = "FILE", default_value = "-")]
    output: PathBuf,
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
    /// Redo every mask, and replace files that rgb2class did not write.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    common: Common,
}

fn main() -> ExitCode {
    facepipe_core::cli::main(
        rgb2class::STAGE,
        |a: &Args| &a.common,
        |a| {
            let cfg = rgb2class::Config {
                input: a.input,
                out_dir: a.out_dir,
                palette: a.palette,
                off_palette: a.off_palette,
                compression: a.compression,
                force: a.force,
            };
            let m = rgb2class::run(&cfg, &a.common.progress(0, "rgb2class"))?;
            m.write(&Output::parse(&a.output), a.force)
        },
    )
}
