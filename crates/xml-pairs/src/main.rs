use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use facepipe_core::cli::{Common, OutputArgs};

/// Read a Mut1ny training.xml into a facepipe manifest of image/label pairs.
#[derive(Parser, Debug)]
#[command(version = facepipe_core::LONG_VERSION, after_help = "Example:\n  xml-pairs -i data/training.xml -o out/pairs.json")]
struct Args {
    /// The dataset's training.xml (`-` for stdin; names then resolve against the working
    /// directory). `--xml` is the same flag.
    #[arg(short = 'i', long = "input", visible_alias = "xml", value_name = "FILE")]
    xml: PathBuf,
    #[command(flatten)]
    output: OutputArgs,
    /// Drop pairs whose image or label is missing (with a warning) instead of failing.
    #[arg(long)]
    skip_missing: bool,
    #[command(flatten)]
    common: Common,
}

fn main() -> ExitCode {
    facepipe_core::cli::main(
        xml_pairs::STAGE,
        |a: &Args| &a.common,
        |a| {
            let _locks = a.output.prepare(xml_pairs::STAGE, [])?;
            let m = xml_pairs::build(&xml_pairs::Config {
                xml: a.xml,
                skip_missing: a.skip_missing,
            })?;
            a.output.write(&m)?;
            log::info!("{} pairs", m.items.len());
            Ok(())
        },
    )
}
