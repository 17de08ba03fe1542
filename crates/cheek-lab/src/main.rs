use std::path::PathBuf;
use std::process::ExitCode;

use cheek_lab::measure::Averaging;
use cheek_lab::{ClassNames, Faces, JoinOn};
use clap::Parser;
use facepipe_core::cli::Common;
use facepipe_core::colour::WhitePoint;

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
    /// Input manifest (`-` for stdin): items with `image` and the mask field; the classes.
    #[arg(short, long, value_name = "FILE", default_value = "-")]
    input: PathBuf,
    /// Output CSV, one row per face (written last; `-` for stdout).
    #[arg(short, long, value_name = "FILE", required_unless_present = "summary")]
    output: Option<PathBuf>,
    /// Print the summary of a report and exit.
    #[arg(long, value_name = "REPORT", exclusive = true)]
    summary: Option<PathBuf>,
    /// Measure only part K of N of the input's items (by sorted id); --report then holds the
    /// part's rows for --merge: K/N, or env (Slurm's array task, Kubernetes' completion
    /// index; env/N fixes N).
    #[arg(long, value_name = "K/N|env|env/N", conflicts_with = "merge")]
    shard: Option<facepipe_core::shard::ShardSpec>,
    /// Join the --report files of the N shards of one run into -o and --report: the rows in
    /// order and the agreement computed on all of them (QC pictures stay in the shards').
    #[arg(long, value_name = "SHARD_REPORT", num_args = 1.., conflicts_with_all = ["input", "reference", "qc_dir"])]
    merge: Vec<PathBuf>,
    /// With --merge: the manifest the shards read; rows keep its order (else by item id).
    #[arg(long, value_name = "INPUT", requires = "merge")]
    expect: Option<PathBuf>,
    /// Item field holding the class mask: the prediction or the ground truth.
    #[arg(long, default_value = "pred_mask", value_name = "FIELD")]
    mask_field: String,
    /// Reference CSV of hand measurements, one row per face.
    #[arg(long, value_name = "FILE")]
    reference: Option<PathBuf>,
    /// Reference id column.
    #[arg(long, default_value = "participant_id", value_name = "COLUMN")]
    ref_id: String,
    /// Reference columns of the subject's left cheek: L*,a*,b*.
    #[arg(long, default_value = "left_cheek_L,left_cheek_a,left_cheek_b", value_name = "L,A,B", value_parser = three)]
    ref_left: [String; 3],
    /// Reference columns of the subject's right cheek: L*,a*,b*.
    #[arg(
        long,
        default_value = "right_cheek_L,right_cheek_a,right_cheek_b",
        value_name = "L,A,B",
        value_parser = three
    )]
    ref_right: [String; 3],
    /// What the reference id is: ITEM#FACE (face 0 = largest) or the item id.
    #[arg(long, value_enum, default_value_t = JoinOn::FaceId)]
    join: JoinOn,
    /// Report (JSON) with counts and the agreement; a scatter plot is written next to it
    /// (`-` for stdout, then no scatter plot).
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Folder for QC pictures: each face with its patches, and a contact sheet.
    #[arg(long, value_name = "DIR")]
    qc_dir: Option<PathBuf>,
    /// Several faces in one image: measure the largest, or all.
    #[arg(long, value_enum, default_value_t = Faces::Largest)]
    faces: Faces,
    /// White point of L*a*b*: D65 (scikit-image's rgb2lab) or D50 (Photoshop, ICC).
    #[arg(long, value_enum, default_value_t = WhitePoint::D65)]
    white: WhitePoint,
    /// How a patch is averaged.
    #[arg(long, value_enum, default_value_t = Averaging::MeanRgb)]
    averaging: Averaging,
    /// Patch side in pixels for a face of --reference-face-width pixels.
    #[arg(long, default_value_t = 50.0, value_name = "PX", value_parser = facepipe_core::cli::positive_f64)]
    patch_px: f64,
    /// Face width (bizygomatic, pixels) at which the patch is --patch-px wide.
    #[arg(long, default_value_t = 300.0, value_name = "PX", value_parser = facepipe_core::cli::positive_f64)]
    reference_face_width: f64,
    /// Cheek centre out from the face's midline, in inter-eye distances.
    #[arg(long, default_value_t = 0.66, value_name = "X", value_parser = facepipe_core::cli::finite_f64)]
    cheek_out: f64,
    /// Cheek centre down from eye level, as a share of the way to the mouth (the lips' centre).
    #[arg(long, default_value_t = 0.5, value_name = "X", value_parser = facepipe_core::cli::finite_f64)]
    cheek_down: f64,
    /// Smallest share of the patch that must be skin.
    #[arg(long, default_value_t = 0.5, value_name = "FRACTION", value_parser = facepipe_core::cli::fraction)]
    min_skin: f64,
    /// Class of cheek skin.
    #[arg(long, default_value = "general face", value_name = "NAME")]
    skin_class: String,
    /// Class of the eyes (they place the cheeks).
    #[arg(long, default_value = "eyes", value_name = "NAME")]
    eye_class: String,
    /// Class of the nose (the cheeks sit beside it).
    #[arg(long, default_value = "nose", value_name = "NAME")]
    nose_class: String,
    /// Class of the lips (the cheeks sit halfway down to them).
    #[arg(long, default_value = "lips", value_name = "NAME")]
    lip_class: String,
    /// Class of the eyebrows (the top of the fWHR height).
    #[arg(long, default_value = "eyebrows", value_name = "NAME")]
    brow_class: String,
    /// Glasses: with sunglasses hiding the eyes, the lenses place them (ignored if not in the palette).
    #[arg(long, default_value = "specs/sunglasses", value_name = "NAME")]
    glasses_class: String,
    /// Classes that make up a face region (comma-separated).
    #[arg(
        long,
        default_value = "general face,eyes,nose,lips,eyebrows,teeth,facial hair,specs/sunglasses",
        value_name = "NAMES"
    )]
    face_classes: String,
    /// Replace outputs cheek-lab did not write.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    common: Common,
}

/// clap value parser of `--ref-left`/`--ref-right`: three column names (a bad value is a usage
/// error, exit 2).
fn three(s: &str) -> Result<[String; 3], String> {
    let v: Vec<String> = s.split(',').map(|x| x.trim().to_string()).collect();
    if v.iter().any(String::is_empty) {
        return Err(format!("an empty column name in {s:?}"));
    }
    <[String; 3]>::try_from(v).map_err(|_| format!("three column names are needed, L,a,b: got {s:?}"))
}

fn main() -> ExitCode {
    facepipe_core::cli::main(
        cheek_lab::STAGE,
        |a: &Args| &a.common,
        |a| {
            if let Some(r) = &a.summary {
                eprintln!("{}", cheek_lab::summary(r)?);
                return Ok(());
            }
            let Some(output) = a.output else {
                anyhow::bail!("-o/--output is required");
            };
            if !a.merge.is_empty() {
                let cfg = cheek_lab::merge::MergeConfig {
                    shards: a.merge,
                    output,
                    report: a.report,
                    expect: a.expect,
                    force: a.force,
                };
                let report = cheek_lab::merge::merge(&cfg)?;
                log::info!(
                    "{} shards: {} faces, {} cheeks measured, {} not measurable",
                    report.shards.len(),
                    report.faces,
                    report.cheeks_measured,
                    report.cheeks_not_measurable
                );
                return Ok(());
            }
            let cfg = cheek_lab::Config {
                input: a.input,
                output,
                mask_field: a.mask_field,
                reference: a.reference,
                ref_columns: cheek_lab::reference::Columns {
                    id: a.ref_id,
                    left: a.ref_left,
                    right: a.ref_right,
                },
                join: a.join,
                report: a.report,
                qc_dir: a.qc_dir,
                faces: a.faces,
                white: a.white,
                averaging: a.averaging,
                patch_px: a.patch_px,
                reference_face_width: a.reference_face_width,
                min_skin: a.min_skin,
                classes: ClassNames {
                    skin: a.skin_class,
                    eyes: a.eye_class,
                    nose: a.nose_class,
                    lips: a.lip_class,
                    brows: a.brow_class,
                    glasses: a.glasses_class,
                    face_region: a.face_classes.split(',').map(|s| s.trim().to_string()).collect(),
                },
                placement: cheek_lab::faces::Placement {
                    cheek_out: a.cheek_out,
                    cheek_down: a.cheek_down,
                    // the same point measured from the bottom of the nose (lips hidden)
                    cheek_down_nose: 0.8 * a.cheek_down / 0.5,
                    ..Default::default()
                },
                force: a.force,
                shard: a.shard.map(|s| s.resolve()).transpose()?,
            };
            let report = cheek_lab::run(&cfg, &a.common.progress(0, "cheek-lab"))?;
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
