use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use facepipe_core::cli::{Common, OutputArgs};

/// Join the manifests written by the shards of one stage (`--shard K/N`) into the manifest an
/// unsharded run writes; every part must be there once, and no item twice.
#[derive(Parser, Debug)]
#[command(
    version = facepipe_core::LONG_VERSION,
    after_help = "Example:\n  for k in 0 1 2; do rgb2class -i pairs.json -o masks.$k.json --out-dir masks --shard $k/3; done\n  \
                  manifest-merge -o masks.json --expect pairs.json masks.0.json masks.1.json masks.2.json"
)]
struct Args {
    /// The shards' manifests, in any order.
    #[arg(required = true, value_name = "SHARD")]
    shards: Vec<PathBuf>,
    /// The manifest the shards read: the parts must hold exactly its items, and the merged
    /// manifest keeps its order (else items are sorted by id).
    #[arg(long, value_name = "INPUT")]
    expect: Option<PathBuf>,
    #[command(flatten)]
    output: OutputArgs,
    #[command(flatten)]
    common: Common,
}

fn main() -> ExitCode {
    facepipe_core::cli::main(
        manifest_merge::STAGE,
        |a: &Args| &a.common,
        |a| {
            manifest_merge::refuse_input_as_output(&a.output.output, a.shards.iter().chain(a.expect.iter()))?;
            let _locks = a.output.prepare(manifest_merge::STAGE, std::iter::empty())?;
            let m = manifest_merge::run(&a.shards, a.expect.as_deref())?;
            a.output.write(&m)
        },
    )
}
