use std::process::ExitCode;

use clap::Parser;
use facepipe_core::cli::Common;

/// Left and right cheek CIE L*a*b* of every face from its segmentation, with ITA° and the
/// facial width-to-height ratio; with --reference, the agreement with hand measurements.
///
/// Each cheek is a square patch (50 px for a 300 px-wide face, scaled with the face) below the
/// eye, beside the nose, halfway down to the mouth; only skin pixels inside it are averaged
/// (mean sRGB, then converted: what Photoshop's Average filter gives). A cheek with too little
/// skin in its patch, or whose landmarks are hidden, is reported as not measurable, with the
/// reason, never as a number. "Left" is the subject's left (the image's right).
#[derive(Parser, Debug)]
#[command(
    version = facepipe_core::LONG_VERSION,
    after_help = "Examples:\n  cheek-lab -i out/predictions.json -o out/cheeks.csv --reference out/demo-data/participants.csv --report out/cheeks.json --qc-dir out/cheek-qc\n  cheek-lab -i out/split.json -o cheeks_true.csv --mask-field mask --white d50\n\nIn parts (each shard its own -o and --report):\n  for k in 0 1 2; do cheek-lab -i preds.json -o cheeks.$k.csv --report cheeks.$k.json --reference ref.csv --shard $k/3; done\n  cheek-lab --merge cheeks.0.json cheeks.1.json cheeks.2.json -o cheeks.csv --report cheeks.json --expect preds.json"
)]
struct Args {
    #[command(flatten)]
    cfg: cheek_lab::Config,
    #[command(flatten)]
    common: Common,
}

fn main() -> ExitCode {
    facepipe_core::cli::main(
        cheek_lab::STAGE,
        |a: &Args| &a.common,
        |a| {
            let cfg = &a.cfg;
            if let Some(r) = &cfg.summary {
                facepipe_core::cli::say(cheek_lab::summary(r)?);
                return Ok(());
            }
            if !cfg.merge.is_empty() {
                let report = cheek_lab::merge::merge(cfg)?;
                log::info!(
                    "{} shards: {} faces, {} cheeks measured, {} not measurable",
                    report.shards.len(),
                    report.faces,
                    report.cheeks_measured,
                    report.cheeks_not_measurable
                );
                return Ok(());
            }
            let report = cheek_lab::run(cfg, &a.common.progress(0, "cheek-lab"))?;
            log::info!(
                "{} faces, {} cheeks measured, {} not measurable",
                report.faces,
                report.cheeks_measured,
                report.cheeks_not_measurable
            );
            Ok(())
        },
    )
}
