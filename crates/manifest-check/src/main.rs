use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use facepipe_core::cli::Common;

/// Validate facepipe manifests (schema, reader rules, files) and print a summary of each.
#[derive(Parser, Debug)]
#[command(
    version = facepipe_core::LONG_VERSION,
    after_help = "Example:\n  manifest-check out/split.json --require mask --require split"
)]
struct Args {
    /// Manifests to check.
    #[arg(required = true, value_name = "FILE")]
    inputs: Vec<PathBuf>,
    /// Do not check that the files named by items exist.
    #[arg(long)]
    no_files: bool,
    /// An item field that every item must have (repeatable).
    #[arg(long, value_name = "FIELD")]
    require: Vec<String>,
    #[command(flatten)]
    common: Common,
}

fn main() -> ExitCode {
    facepipe_core::cli::main(
        "manifest-check",
        |a: &Args| &a.common,
        |a| {
            // every file is checked, and each bad one reported, before the exit status says so
            let mut bad = Vec::new();
            for input in a.inputs {
                let cfg = manifest_check::Config {
                    input: input.clone(),
                    check_files: !a.no_files,
                    require: a.require.clone(),
                };
                match manifest_check::check(&cfg) {
                    Ok(s) => {
                        if !a.common.quiet {
                            writeln!(std::io::stdout(), "{s}")?;
                        }
                    }
                    Err(e) => {
                        facepipe_core::cli::say(format_args!("manifest-check: error: {e:#}"));
                        bad.push(input.display().to_string());
                    }
                }
            }
            match bad.len() {
                0 => Ok(()),
                1 => anyhow::bail!("{} failed the check", bad[0]),
                n => anyhow::bail!("{n} manifests failed the check: {}", bad.join(", ")),
            }
        },
    )
}
