use std::process::ExitCode;

use clap::Parser;
use facepipe_core::cli::Common;

/// One self-contained report.html of a run: the dataset (split, class balance, provenance),
/// the training (loss, per-class IoU, learning rates, lr_find), the evaluation (per-class
/// scores, confusion matrix, contact sheet) and the cheek colours (agreement with the
/// reference, why cheeks were not measurable, the QC sheet).
///
/// Charts are SVG and pictures are embedded: the page needs no network, script or font file.
/// Every input is optional; a section whose input is not given says so.
#[derive(Parser, Debug)]
#[command(
    version = facepipe_core::LONG_VERSION,
    after_help = "Example:\n  report -o out/report.html --manifest out/predictions.json --model out/model --eval out/eval --cheeks out/cheeks.json --cheeks out/cheeks_truth.json"
)]
struct Args {
    #[command(flatten)]
    cfg: report::Config,
    #[command(flatten)]
    common: Common,
}

fn main() -> ExitCode {
    facepipe_core::cli::main(
        report::STAGE,
        |a: &Args| &a.common,
        |a| {
            let w = report::run(&a.cfg)?;
            log::info!("{} bytes in {:.2} s", w.bytes, w.seconds);
            Ok(())
        },
    )
}
