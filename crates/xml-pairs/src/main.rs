use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use facepipe_core::Output;
use facepipe_core::cli::Common;

/// Read a Mut1ny training.xml into a facepipe manifest of image/label pairs.
#[derive(Parser, Debug)]
#[command(version = facepipe_core::LONG_VERSION, after_help = "Example:\n  xml-pairs --xml data/training.xml -o out/pairs.json")]
struct Args {
    /// The dataset's training.xml (`-` for stdin; names then resolve against the working directory).
    #[arg(long, value_name = "FILE")]
    xml: PathBuf,
    /// Output manifest (`-` for stdout).
    #[arg(short, long, value_name = "FILE", default_value = "-")]
    output: PathBuf,
    /// Drop pairs whose image or label is missing (with a warning) instead of failing.
    #[arg(long)]
    skip_missing: bool,
    /// Replace an output file that is not a facepipe manifest.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    common: Common,
}

fn main() -> ExitCode {
    facepipe_core::cli::main(
        xml_pairs::STAGE,
        |a: &Args| &a.common,
        |a| {
            let m = xml_pairs::build(&xml_pairs::Config {
                xml: a.xml,
                skip_missing: a.skip_missing,
            })?;
            m.write(&Output::parse(&a.output), a.force)?;
            log::info!("{} pairs", m.items.len());
            Ok(())
        },
    )
}
