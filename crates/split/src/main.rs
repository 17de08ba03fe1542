use std::process::ExitCode;

use clap::Parser;
use facepipe_core::cli::{Common, InputArgs, OutputArgs};

/// Seeded train/valid split: sets every item's `split` to "train" or "valid".
///
/// Exactly floor(valid_pct * n) items go to valid; the choice depends only on the seed and
/// the item ids. --group-by keeps items sharing a field value on one side.
#[derive(Parser, Debug)]
#[command(
    version = facepipe_core::LONG_VERSION,
    after_help = "Example:\n  split -i out/masks.json -o out/split.json --valid-pct 0.35 --seed 2020 --group-by group"
)]
struct Args {
    #[command(flatten)]
    input: InputArgs,
    #[command(flatten)]
    output: OutputArgs,
    /// Share of items for validation, in [0, 1).
    #[arg(long, default_value_t = 0.35, value_parser = valid_pct)]
    valid_pct: f64,
    /// Random seed.
    #[arg(long, default_value_t = 2020)]
    seed: u64,
    /// Keep all items with the same value of this item field on one side (e.g. `group`).
    #[arg(long, value_name = "FIELD")]
    group_by: Option<String>,
    #[command(flatten)]
    common: Common,
}

fn valid_pct(s: &str) -> Result<f64, String> {
    match facepipe_core::cli::fraction(s)? {
        v if v < 1.0 => Ok(v),
        v => Err(format!("{v} leaves no training items: use a share below 1")),
    }
}

fn main() -> ExitCode {
    facepipe_core::cli::main(
        split::STAGE,
        |a: &Args| &a.common,
        |a| {
            let _locks = a.output.prepare(split::STAGE, [])?;
            let cfg = split::Config {
                input: a.input.input,
                valid_pct: a.valid_pct,
                seed: a.seed,
                group_by: a.group_by,
            };
            a.output.write(&split::run(&cfg)?)
        },
    )
}
