use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use facepipe_core::cli::{Common, OutputArgs};
use facepipe_core::shard::ShardSpec;

/// A folder of photos (searched recursively) or a CSV listing them → a dataset manifest.
///
/// Each photo is read whole, as a viewer shows it: the manifest gives its size after EXIF
/// orientation, the orientation and colour profile applied, whether it has colour, and its
/// bytes' sha256. A CSV's other columns are carried into its items (for `cheek-lab --join`).
/// Missing, unreadable, truncated, duplicate and non-image files are refused, each named with
/// the reason, unless --skip-bad.
#[derive(Parser, Debug)]
#[command(
    version = facepipe_core::LONG_VERSION,
    after_help = "Examples:\n  photos -i study/photos -o out/photos.json\n  photos -i study/participants.csv --path-column photo -o out/photos.json --skip-bad"
)]
struct Args {
    /// A folder of photos (.jpg, .jpeg, .png, .tif, .tiff, .bmp; searched recursively, hidden
    /// files passed over), or a CSV file with a column naming them (relative to the CSV's
    /// folder, or absolute) and an optional `id` column.
    #[arg(short, long, value_name = "DIR|CSV")]
    input: PathBuf,
    #[command(flatten)]
    output: OutputArgs,
    /// The CSV column naming the photos [default: the first of image, photo, path, file].
    #[arg(long, value_name = "NAME")]
    path_column: Option<String>,
    /// Leave out photos that cannot be used (each logged, and listed with its reason in the
    /// manifest's `skipped`) instead of refusing them all.
    #[arg(long)]
    skip_bad: bool,
    /// Read only part K of N of the photos (by id; `env` takes K and N from a Slurm array or a
    /// Kubernetes indexed Job); `manifest-merge` joins the parts.
    #[arg(long, value_name = "K/N")]
    shard: Option<ShardSpec>,
    #[command(flatten)]
    common: Common,
}

fn main() -> ExitCode {
    facepipe_core::cli::main(
        photos::STAGE,
        |a: &Args| &a.common,
        |a| {
            let _locks = a.output.prepare(photos::STAGE, [])?;
            let cfg = photos::Config {
                input: a.input,
                path_column: a.path_column,
                skip_bad: a.skip_bad,
                shard: a.shard.as_ref().map(ShardSpec::resolve).transpose()?,
            };
            let m = photos::build(&cfg)?;
            a.output.write(&m)?;
            log::info!("{} photos", m.items.len());
            Ok(())
        },
    )
}
