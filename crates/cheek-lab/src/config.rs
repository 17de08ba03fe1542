//! The command line: every flag of `cheek-lab` (but the logging and thread flags all stages
//! share), derived with clap here and flattened by the binary, so that what a run is given
//! and what the user typed are one struct.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use facepipe_core::colour::WhitePoint;
use facepipe_core::shard::ShardSpec;

use crate::faces::Placement;
use crate::measure::Averaging;
use crate::reference;
use crate::roles::ClassNames;

pub use facepipe_formats::cheeks::{Faces, JoinOn};

/// What `cheek-lab` was asked to do: a measurement ([`crate::run`]), a merge of shards
/// ([`crate::merge::merge`]) or a report's summary ([`crate::summary`]). The flags in the
/// order `--help` lists them.
#[derive(clap::Args, Clone, Debug)]
pub struct Config {
    /// Input manifest (`-` for stdin): items with `image` and the mask field; the classes.
    #[arg(short, long, value_name = "FILE", default_value = "-")]
    pub input: PathBuf,
    /// Output CSV, one row per face (written last; `-` for stdout).
    #[arg(short, long, value_name = "FILE", required_unless_present = "summary")]
    pub output: Option<PathBuf>,
    /// Print the summary of a report and exit.
    #[arg(long, value_name = "REPORT", exclusive = true)]
    pub summary: Option<PathBuf>,
    /// Measure only part K of N of the input's items (by sorted id); --report then holds the
    /// part's rows for --merge: K/N, or env (Slurm's array task, Kubernetes' completion
    /// index; env/N fixes N).
    #[arg(long, value_name = "K/N|env|env/N", conflicts_with = "merge")]
    pub shard: Option<ShardSpec>,
    /// Join the --report files of the N shards of one run into -o and --report: the rows in
    /// order and the agreement computed on all of them (QC pictures stay in the shards').
    #[arg(long, value_name = "SHARD_REPORT", num_args = 1.., conflicts_with_all = ["input", "reference", "qc_dir"])]
    pub merge: Vec<PathBuf>,
    /// With --merge: the manifest the shards read; rows keep its order (else by item id).
    #[arg(long, value_name = "INPUT", requires = "merge")]
    pub expect: Option<PathBuf>,
    /// Item field holding the class mask: the prediction or the ground truth.
    #[arg(long, default_value = "pred_mask", value_name = "FIELD")]
    pub mask_field: String,
    /// Reference CSV of hand measurements, one row per face.
    #[arg(long, value_name = "FILE")]
    pub reference: Option<PathBuf>,
    /// `--ref-id`, `--ref-left`, `--ref-right`.
    #[command(flatten)]
    pub ref_columns: reference::Columns,
    /// What the reference id is: `face-id` (ITEM#FACE, face 0 = largest), `id` (the item id),
    /// or the name of an item field (e.g. a participant column carried from `photos`' CSV).
    #[arg(long, default_value = "face-id", value_name = "face-id|id|FIELD")]
    pub join: JoinOn,
    /// Report (JSON) with counts and the agreement; a scatter plot is written next to it
    /// (`-` for stdout, then no scatter plot).
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Folder for QC pictures: each face with its patches, and a contact sheet.
    #[arg(long, value_name = "DIR")]
    pub qc_dir: Option<PathBuf>,
    /// Several faces in one image: measure the largest, or all.
    #[arg(long, value_enum, default_value_t = Faces::Largest)]
    pub faces: Faces,
    /// White point of L*a*b*: D65 (scikit-image's rgb2lab) or D50 (Photoshop, ICC).
    #[arg(long, value_enum, default_value_t = WhitePoint::D65)]
    pub white: WhitePoint,
    /// How a patch is averaged.
    #[arg(long, value_enum, default_value_t = Averaging::MeanRgb)]
    pub averaging: Averaging,
    /// Patch side in pixels for a face of --reference-face-width pixels.
    #[arg(long, default_value_t = 50.0, value_name = "PX", value_parser = facepipe_core::cli::positive_f64)]
    pub patch_px: f64,
    /// Face width (bizygomatic, pixels) at which the patch is --patch-px wide.
    #[arg(long, default_value_t = 300.0, value_name = "PX", value_parser = facepipe_core::cli::positive_f64)]
    pub reference_face_width: f64,
    /// `--cheek-out`, `--cheek-down`.
    #[command(flatten)]
    pub placement: Placement,
    /// Smallest share of the patch that must be skin.
    #[arg(long, default_value_t = 0.5, value_name = "FRACTION", value_parser = facepipe_core::cli::fraction)]
    pub min_skin: f64,
    /// The `--*-class` flags and `--face-classes`.
    #[command(flatten)]
    pub classes: ClassNames,
    #[arg(long, help = facepipe_core::cli::FORCE_HELP)]
    pub force: bool,
}

impl Config {
    /// `-o` (clap requires it unless `--summary`, which runs nothing else).
    pub fn output(&self) -> Result<&Path> {
        self.output.as_deref().context("-o/--output is required")
    }
}
