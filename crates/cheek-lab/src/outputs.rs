//! The files a run or a merge writes: locked and checked before any work, written at the end
//! (the scatter plot, the report, and last the CSV).

use std::path::{Path, PathBuf};

use anyhow::{Result, ensure};
use facepipe_core::Output;
use facepipe_core::out::{OutDir, Outputs};

use crate::agreement::Joined;
use crate::table::CSV_SIGNATURE;
use crate::{FaceRow, Report, STAGE, qc, scatter_path};

fn is_png(b: &[u8]) -> bool {
    b.starts_with(b"\x89PNG\r\n\x1a\n")
}

fn is_report(b: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(b).is_ok_and(|v| facepipe_formats::tag::CHEEK_LAB.names(&v))
}

/// The CSV (`-o`), the report (`--report`) and the scatter plot beside it, locked against a
/// second run for as long as this lives (keep it until the CSV is written).
pub(crate) struct Files<'a> {
    csv: &'a Path,
    report: Option<&'a Path>,
    scatter: Option<PathBuf>,
    claimed: Outputs,
}

impl<'a> Files<'a> {
    /// Locks and checks the outputs before any work: the CSV, the report and the scatter plot
    /// beside it (the QC folder is claimed with [`Files::qc_folder`]).
    pub(crate) fn guard(csv: &'a Path, report: Option<&'a Path>, force: bool) -> Result<Self> {
        let stdout = Path::new("-");
        ensure!(
            !(csv == stdout && report == Some(stdout)),
            "-o and --report cannot both be `-` (stdout)"
        );
        let scatter = report.filter(|r| *r != stdout).map(scatter_path);
        let mut claimed = Outputs::new(STAGE, force);
        claimed.file(csv, "-o", "a cheek-lab CSV", |b: &[u8]| {
            b.starts_with(CSV_SIGNATURE.as_bytes())
        })?;
        if let Some(r) = report {
            claimed.file(r, "--report", "a cheek-lab report", is_report)?;
        }
        if let Some(s) = &scatter {
            // named after the report, so the report's lock covers it
            claimed.beside(s, "the scatter plot beside --report", "a PNG", is_png)?;
        }
        Ok(Files {
            csv,
            report,
            scatter,
            claimed,
        })
    }

    /// Claims the QC folder (`--qc-dir`) before anything is measured: absent, empty, or holding
    /// only a previous run's pictures (anything else is refused, or kept with `--force`).
    pub(crate) fn qc_folder(&mut self, dir: &Path) -> Result<OutDir> {
        self.claimed.folder(dir, qc::MARKER, "--qc-dir", &|_| false)
    }

    /// Writes the scatter plot (with a reference), the report and, last, the CSV.
    pub(crate) fn write(&self, report: &Report, csv: &[u8], rows: &[FaceRow], joined: Option<&Joined>) -> Result<()> {
        if let Some(p) = self.report {
            if let (Some(j), Some(s)) = (joined, &self.scatter) {
                qc::scatter(s, rows, &j.per_face)?;
            }
            Output::parse(p).write(&facepipe_core::io::json_bytes(report)?)?;
        }
        Output::parse(self.csv).write(csv)
    }
}
