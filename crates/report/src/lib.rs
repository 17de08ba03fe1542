//! The `report` stage: one self-contained `report.html` from what the chain wrote.
//!
//! It reads the outputs of the other stages by their file formats only (a dataset manifest, a
//! `unet-train` model directory, a `unet-eval` directory, `cheek-lab` reports), so it runs as
//! well on outputs made by a swapped-in stage that honours those formats. Every input is
//! optional; a section whose input was not given says so. Charts are SVG inside the page (the
//! browser draws their text with its own fonts), pictures are PNG data URIs: the page loads no
//! file, script, style sheet or font from anywhere, and reads the same offline, mailed, or
//! archived with the run.

mod consistency;
mod html;
mod inputs;
mod sections;
mod svg;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Result, ensure};

pub use inputs::Inputs;

pub const STAGE: &str = "report";

/// The mark in every page this stage writes, by which a rerun knows the file is its own.
const GENERATOR: &str = r#"<meta name="generator" content="facepipe report">"#;

/// The stage's flags.
#[derive(Clone, Debug, clap::Args)]
pub struct Config {
    /// The page to write (HTML; `-` for stdout).
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// A dataset manifest of the run: its items, classes, split and the provenance of every
    /// stage that wrote it (the latest one, e.g. unet-eval's predictions.json, holds them all).
    #[arg(long, value_name = "MANIFEST")]
    pub manifest: Option<PathBuf>,
    /// A unet-train model directory (model.json, metrics.csv).
    #[arg(long, value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// A unet-eval output directory (eval.json, contact_sheet.png).
    #[arg(long, value_name = "DIR")]
    pub eval: Option<PathBuf>,
    /// A cheek-lab --report (JSON); its CSV and QC folder are found from it. Repeat for
    /// several (e.g. on predicted and on true masks).
    #[arg(long, value_name = "REPORT")]
    pub cheeks: Vec<PathBuf>,
    /// The page's title.
    #[arg(long, default_value = "facepipe run")]
    pub title: String,
    #[arg(long, help = facepipe_core::cli::FORCE_HELP)]
    pub force: bool,
}

/// What a run wrote: the page's size and how long it took.
#[derive(Debug)]
pub struct Written {
    pub bytes: usize,
    pub seconds: f64,
}

/// Reads every input, builds the page and writes it (atomically, after every input was read).
pub fn run(cfg: &Config) -> Result<Written> {
    let start = Instant::now();
    ensure!(
        cfg.manifest.is_some() || cfg.model.is_some() || cfg.eval.is_some() || !cfg.cheeks.is_empty(),
        "nothing to report: give at least one of --manifest, --model, --eval, --cheeks"
    );
    let mut outputs = facepipe_core::out::Outputs::new(STAGE, cfg.force);
    outputs.file(&cfg.output, "output", "a facepipe report page", is_ours)?;
    let inputs = Inputs::read(cfg)?;
    for m in consistency::mismatches(&inputs) {
        log::warn!("these inputs are not from one run: {m}");
    }
    let page = render(&cfg.title, &inputs);
    facepipe_core::Output::parse(&cfg.output).write(page.as_bytes())?;
    Ok(Written {
        bytes: page.len(),
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// The whole page.
pub fn render(title: &str, inputs: &Inputs) -> String {
    let mut page = html::Page::new(title, GENERATOR);
    sections::overview(&mut page, inputs);
    for m in consistency::mismatches(inputs) {
        page.note(&format!("These inputs are not from one run: {m}."));
    }
    sections::dataset::write(&mut page, inputs.manifest.as_ref());
    sections::training::write(&mut page, inputs.model.as_ref());
    sections::evaluation::write(&mut page, inputs.eval.as_ref());
    sections::cheeks::write(&mut page, &inputs.cheeks);
    sections::provenance::write(&mut page, inputs);
    page.finish()
}

/// Whether `bytes` are a page this stage wrote (a rerun may replace it without `--force`).
pub fn is_ours(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(4096)];
    String::from_utf8_lossy(head).contains(GENERATOR)
}

/// A path given on the command line or read from a file, resolved against `base` when relative.
pub(crate) fn resolve(base: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() { p.to_path_buf() } else { base.join(p) }
}
