//! What every stage binary shares: common flags, logging to stderr, the thread pool, progress
//! bars that only show on a terminal, and the mapping of errors to exit codes.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;

/// Flags every stage takes.
#[derive(Clone, Debug, clap::Args)]
pub struct Common {
    /// Worker threads for per-item work [default: all cores].
    #[arg(long, value_name = "N", global = true, value_parser = positive_usize)]
    pub threads: Option<usize>,
    /// Only print errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// More log output (-v info per item, -vv debug).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Info lines by default (long-running stages report each epoch); set by the stage.
    #[arg(skip)]
    pub chatty: bool,
}

/// The input-manifest flag of every stage that reads a manifest.
#[derive(Clone, Debug, clap::Args)]
pub struct InputArgs {
    /// Input manifest (`-` for stdin; its relative paths then resolve against the working directory).
    #[arg(short, long, value_name = "FILE", default_value = "-")]
    pub input: PathBuf,
}

/// The help of `--force`, the same on every stage (each declares the flag with
/// `#[arg(long, help = FORCE_HELP)]`).
pub const FORCE_HELP: &str = "Replace outputs this stage did not write, and redo what it would reuse (per-item files, a previous run); files it did not write inside its output folders are kept";

/// The output-manifest flags of every stage that writes a manifest.
#[derive(Clone, Debug, clap::Args)]
pub struct OutputArgs {
    /// Output manifest (`-` for stdout).
    #[arg(short, long, value_name = "FILE", default_value = "-")]
    pub output: PathBuf,
    #[arg(long, help = FORCE_HELP)]
    pub force: bool,
}

impl OutputArgs {
    /// Before any work: claims the output manifest (and `also`, e.g. the stage's output folder,
    /// which the stage checks itself) against a second run on the same outputs, and checks
    /// that the manifest may be replaced. Keep the returned [`Outputs`](crate::out::Outputs)
    /// until the manifest is written.
    pub fn prepare<'a>(
        &'a self,
        stage: &str,
        also: impl IntoIterator<Item = &'a std::path::Path>,
    ) -> Result<crate::out::Outputs> {
        let mut outputs = crate::out::Outputs::new(stage, self.force);
        outputs.manifest(&self.output)?;
        for p in also {
            outputs.claim(p, "--out-dir")?;
            outputs.lock(p)?;
        }
        Ok(outputs)
    }

    /// [`OutputArgs::prepare`] for one shard of a stage: the output manifest and a per-shard
    /// lock beside each shared folder are taken exclusively (the same shard cannot run twice),
    /// the folders themselves shared (the other shards write their own files there; an
    /// unsharded run of the stage on a folder waits for none and refuses while shards run).
    pub fn prepare_shard<'a>(
        &'a self,
        stage: &str,
        shared: impl IntoIterator<Item = &'a std::path::Path> + Clone,
        shard: crate::shard::Shard,
    ) -> Result<crate::out::Outputs> {
        let per_shard: Vec<PathBuf> = shared
            .clone()
            .into_iter()
            .map(|d| {
                let name = d
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_default();
                d.with_file_name(format!("{name}.{}", shard.tag()))
            })
            .collect();
        let mut outputs = self.prepare(stage, per_shard.iter().map(PathBuf::as_path))?;
        for d in shared {
            outputs.shared(d)?;
        }
        Ok(outputs)
    }

    /// Writes the manifest where `-o` says, atomically, refusing to clobber foreign files.
    pub fn write(&self, m: &crate::Manifest) -> Result<()> {
        m.write(&crate::Output::parse(&self.output), self.force)
    }
}

struct StderrLogger {
    stage: &'static str,
    level: log::LevelFilter,
}

/// The workspace's crates, as `log` names them in a record's target. Records from any other
/// crate (burn, cubecl, wgpu: burn-wgpu logs a line per kernel it autotunes) are shown only at
/// warning and above, or at every level with `-vv`.
pub const OWN_CRATES: &[&str] = &[
    "cheek_lab",
    "demo_faces",
    "facepipe_core",
    "facepipe_formats",
    "facepipe_fuzz",
    "facepipe_plot",
    "facepipe_testutil",
    "manifest_check",
    "manifest_merge",
    "photos",
    "report",
    "rgb2class",
    "split",
    "unet_eval",
    "unet_train",
    "unet",
    "xml_pairs",
];

fn own_record(target: &str) -> bool {
    let root = target.split("::").next().unwrap_or(target);
    OWN_CRATES.contains(&root)
}

impl log::Log for StderrLogger {
    fn enabled(&self, m: &log::Metadata) -> bool {
        let level = if own_record(m.target()) || self.level >= log::LevelFilter::Debug {
            self.level
        } else {
            self.level.min(log::LevelFilter::Warn)
        };
        m.level() <= level
    }
    fn log(&self, r: &log::Record) {
        if self.enabled(r.metadata()) {
            let lvl = match r.level() {
                log::Level::Error => "error",
                log::Level::Warn => "warning",
                log::Level::Info => "info",
                log::Level::Debug => "debug",
                log::Level::Trace => "trace",
            };
            say(format_args!("{}: {lvl}: {}", self.stage, r.args()));
        }
    }
    fn flush(&self) {}
}

impl Common {
    fn level(&self) -> log::LevelFilter {
        match (self.quiet, self.verbose) {
            (true, _) => log::LevelFilter::Error,
            (false, 0) if self.chatty => log::LevelFilter::Info,
            (false, 0) => log::LevelFilter::Warn,
            (false, 1) => log::LevelFilter::Info,
            _ => log::LevelFilter::Debug,
        }
    }

    /// Whether progress bars and the one-line summary should be shown.
    pub fn show_progress(&self) -> bool {
        !self.quiet && std::io::stderr().is_terminal()
    }

    /// A progress bar on stderr, hidden unless stderr is a terminal (and not `-q`).
    pub fn progress(&self, len: u64, what: &str) -> indicatif::ProgressBar {
        if !self.show_progress() {
            return indicatif::ProgressBar::hidden();
        }
        let pb = indicatif::ProgressBar::new(len);
        pb.set_style(
            indicatif::ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {per_sec} eta {eta}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        pb.set_prefix(what.to_string());
        pb
    }
}

/// Sets up logging and the rayon pool from the common flags.
pub fn init(stage: &'static str, common: &Common) -> Result<()> {
    let level = common.level();
    // A second init (tests calling `init` twice) keeps the first logger.
    if log::set_boxed_logger(Box::new(StderrLogger { stage, level })).is_ok() {
        log::set_max_level(level);
    }
    if let Some(n) = common.threads {
        anyhow::ensure!(n > 0, "--threads must be at least 1");
        // Fails only if the pool was already built (in tests); the first setting stands.
        let _ = rayon::ThreadPoolBuilder::new().num_threads(n).build_global();
    }
    Ok(())
}

/// Exit code for an error: a closed stdout pipe is not a failure (`stage | head`).
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The whole `main` of a stage: parse flags (usage errors exit 2), set up, run, and map an
/// error to a message on stderr and exit code 1.
pub fn main<A: Parser>(
    stage: &'static str,
    common: impl Fn(&A) -> &Common,
    run: impl FnOnce(A) -> Result<()>,
) -> ExitCode {
    let args = A::parse();
    let result = init(stage, common(&args)).and_then(|()| run(args));
    exit(stage, result)
}

/// [`main`] for long-running stages whose progress lines (info) show without `-v`.
pub fn main_chatty<A: Parser>(
    stage: &'static str,
    common: impl Fn(&mut A) -> &mut Common,
    run: impl FnOnce(A) -> Result<()>,
) -> ExitCode {
    let mut args = A::parse();
    common(&mut args).chatty = true;
    let result = init(stage, common(&mut args)).and_then(|()| run(args));
    exit(stage, result)
}

/// Writes a line to stderr. A closed or broken stderr (`stage ... 2>&1 | head -1`) is ignored:
/// logging never ends a run (`eprintln!` would panic there, and kill a training before its
/// model is written).
pub fn say(line: impl std::fmt::Display) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

fn exit(stage: &str, result: Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            say(format_args!("{stage}: error: {e:#}"));
            ExitCode::FAILURE
        }
    }
}

/// A group of flags (a `#[derive(clap::Args)]` settings type) as a command line with none of
/// them given has it: their defaults, from the one place they are written (the
/// `#[arg(default_value…)]`s). For `Default` impls of such settings types, so that a library
/// caller and the command line get the same values without the types importing the stage's
/// command line.
pub fn arg_defaults<T: clap::Args + clap::FromArgMatches>() -> T {
    let cmd = T::augment_args(clap::Command::new("defaults").no_binary_name(true));
    let matches = cmd
        .try_get_matches_from(std::iter::empty::<String>())
        .expect("every flag of the group has a default");
    T::from_arg_matches(&matches).expect("the defaults parse")
}

/// clap value parser: a whole number of at least 1.
pub fn positive_usize(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(v) => Ok(v),
        Err(_) => Err(format!("{s:?} is not a whole number")),
    }
}

/// clap value parser: a finite number (not NaN, not infinite).
pub fn finite_f64(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(format!("{s:?} is not a finite number")),
    }
}

/// clap value parser: a finite number above 0.
pub fn positive_f64(s: &str) -> Result<f64, String> {
    match finite_f64(s)? {
        v if v > 0.0 => Ok(v),
        _ => Err(format!("{s} is not above 0")),
    }
}

/// clap value parser: a fraction in [0, 1].
pub fn fraction(s: &str) -> Result<f64, String> {
    match finite_f64(s)? {
        v if (0.0..=1.0).contains(&v) => Ok(v),
        v => Err(format!("{v} is not in [0, 1]")),
    }
}

/// Parses `N` or `WxH` into (width, height).
pub fn parse_size(s: &str) -> Result<(u32, u32)> {
    let parse = |t: &str| -> Result<u32> {
        let v: u32 = t
            .trim()
            .parse()
            .with_context(|| format!("{t:?} is not a whole number"))?;
        anyhow::ensure!((8..=16384).contains(&v), "size {v} is outside 8..=16384");
        Ok(v)
    };
    match s.split_once(['x', 'X']) {
        Some((w, h)) => Ok((parse(w)?, parse(h)?)),
        None => {
            let v = parse(s)?;
            Ok((v, v))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use log::Log;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("256").unwrap(), (256, 256));
        assert_eq!(parse_size("320x240").unwrap(), (320, 240));
        assert!(parse_size("0").is_err());
        assert!(parse_size("axb").is_err());
        assert!(positive_usize("0").is_err() && positive_usize("3") == Ok(3));
        assert!(finite_f64("NaN").is_err() && finite_f64("inf").is_err() && finite_f64("-1.5") == Ok(-1.5));
        assert!(fraction("1.5").is_err() && fraction("0.35") == Ok(0.35));
        assert!(positive_f64("0").is_err());
    }

    #[test]
    fn dependencies_log_only_warnings_unless_very_verbose() {
        let meta = |target: &'static str, level| log::MetadataBuilder::new().target(target).level(level).build();
        let at = |level| StderrLogger { stage: "t", level };
        let info = at(log::LevelFilter::Info);
        assert!(info.enabled(&meta("unet::training::runner", log::Level::Info)));
        assert!(!info.enabled(&meta("cubecl_runtime::tune", log::Level::Info)));
        assert!(info.enabled(&meta("cubecl_runtime::tune", log::Level::Warn)));
        assert!(at(log::LevelFilter::Debug).enabled(&meta("cubecl_runtime::tune", log::Level::Info)));
        assert!(!at(log::LevelFilter::Error).enabled(&meta("wgpu_hal", log::Level::Warn)));
    }

    /// Every crate of the workspace is in [`OWN_CRATES`] (a new one would have its info lines
    /// hidden).
    #[test]
    fn own_crates_are_the_workspace() {
        let crates = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut names: Vec<String> = std::fs::read_dir(&crates)
            .unwrap()
            .filter_map(|e| {
                let toml = std::fs::read_to_string(e.ok()?.path().join("Cargo.toml")).ok()?;
                let name = toml.lines().find_map(|l| l.strip_prefix("name = "))?;
                Some(name.trim_matches('"').replace('-', "_"))
            })
            .collect();
        names.sort();
        let mut own: Vec<String> = OWN_CRATES.iter().map(|s| s.to_string()).collect();
        own.sort();
        assert_eq!(names, own);
    }
}
