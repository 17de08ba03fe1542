//! `facepipe-fuzz [TARGET|all] [N] [SECONDS]`: runs fuzz targets and prints what they did;
//! exits 1 if any input panicked (the first few are written to `fuzz-crash-TARGET-K.bin`).

use std::process::ExitCode;
use std::time::Duration;

#[allow(clippy::print_stdout)]
fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let which = args.first().map_or("all", String::as_str);
    let n: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let secs: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(600);
    let targets: Vec<&facepipe_fuzz::Target> = facepipe_fuzz::TARGETS
        .iter()
        .filter(|t| which == "all" || t.name == which)
        .collect();
    if targets.is_empty() {
        let names: Vec<&str> = facepipe_fuzz::TARGETS.iter().map(|t| t.name).collect();
        eprintln!(
            "facepipe-fuzz: error: unknown target {which:?} (targets: all, {})",
            names.join(", ")
        );
        return ExitCode::from(2);
    }
    let mut failed = false;
    for t in targets {
        let s = facepipe_fuzz::run(t, n, Duration::from_secs(secs), 2020);
        println!(
            "{:<10} {:>9} inputs in {:>6.1} s ({:>7.0}/s): {:>8} accepted, {:>9} refused with an error, {} panics   [{}]",
            t.name,
            s.inputs,
            s.seconds,
            s.inputs as f64 / s.seconds.max(1e-9),
            s.accepted,
            s.refused,
            s.panic_count,
            t.what
        );
        for (k, (input, msg)) in s.panics.iter().enumerate() {
            let f = format!("fuzz-crash-{}-{k}.bin", t.name);
            let _ = std::fs::write(&f, input);
            println!("  panic: {msg} (input in {f})");
        }
        failed |= s.panic_count > 0;
    }
    if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}
