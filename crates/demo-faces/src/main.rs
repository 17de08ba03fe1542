use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use facepipe_core::cli::{Common, parse_size};

/// Generate a synthetic face-segmentation dataset in the Mut1ny layout.
///
/// Writes OUT/training.xml, OUT/samples/, OUT/labels/ (Mut1ny palette) and
/// OUT/participants.csv with the true cheek CIE L*a*b* (D65) of every face.
#[derive(Parser, Debug)]
#[command(version = facepipe_core::LONG_VERSION, after_help = "Example:\n  demo-faces --out-dir data/demo --count 200 --size 256 --seed 2020")]
struct Args {
    /// Output folder (created; a rerun replaces only the files demo-faces wrote there).
    /// `--out` is the same flag.
    #[arg(long = "out-dir", short = 'O', visible_alias = "out", value_name = "DIR")]
    out: PathBuf,
    /// Number of images.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..))]
    count: u32,
    /// Image size: N (square) or WxH.
    #[arg(long, default_value = "256", value_parser = parse_size)]
    size: (u32, u32),
    /// Random seed; the same seed gives byte-identical files.
    #[arg(long, default_value_t = 2020)]
    seed: u64,
    /// Images per samples/gNNN folder.
    #[arg(long, default_value_t = 25, value_parser = clap::value_parser!(u32).range(1..))]
    group_size: u32,
    /// Share of label images with anti-aliased (blended) class borders, like resized real masks.
    #[arg(long, default_value_t = 0.5, value_parser = facepipe_core::cli::fraction)]
    aa_labels: f64,
    /// Share of images with two faces.
    #[arg(long, default_value_t = 0.1, value_parser = facepipe_core::cli::fraction)]
    two_faces: f64,
    /// Also write each photo as a phone would, under OUT/phone/samples/ (JPEG; stored sideways
    /// or flipped with an EXIF orientation, in sRGB, Display P3 or Adobe RGB with the profile
    /// embedded): photos to try `photos`/`make measure` on, whose true cheek colours are the
    /// demo's.
    #[arg(long)]
    phone: bool,
    #[arg(long, help = facepipe_core::cli::FORCE_HELP)]
    force: bool,
    #[command(flatten)]
    common: Common,
}

fn main() -> ExitCode {
    facepipe_core::cli::main(
        "demo-faces",
        |a: &Args| &a.common,
        |a| {
            let cfg = demo_faces::Config {
                out: a.out,
                count: a.count,
                width: a.size.0,
                height: a.size.1,
                seed: a.seed,
                group_size: a.group_size,
                aa_labels: a.aa_labels,
                two_faces: a.two_faces,
                phone: a.phone,
                force: a.force,
            };
            let faces = demo_faces::run(&cfg, &a.common.progress(u64::from(cfg.count), "demo-faces"))?;
            log::info!(
                "wrote {} images with {} faces to {}",
                cfg.count,
                faces.len(),
                cfg.out.display()
            );
            Ok(())
        },
    )
}
