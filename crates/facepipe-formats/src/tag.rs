//! How facepipe's files name themselves: one rule for all of them.
//!
//! Every JSON file facepipe writes carries `"schema": "facepipe/<name>"` and
//! `"schema_version": N`, the two fields the dataset manifest has always had: `facepipe/dataset`,
//! `facepipe/model`, `facepipe/train-run`, `facepipe/eval`, `facepipe/cheek-lab`. A reader
//! refuses a file of another kind, naming what it found, and a version newer than it knows.
//!
//! Files written before the rule (facepipe 0.1 up to this change) named themselves
//! `"format": "facepipe.model"` and `"format_version": 1`; they are read as before (the
//! structs take `format`/`format_version` as aliases, and [`Kind::is`] the old name), and are
//! never written again.

use std::path::Path;

use anyhow::{Context, Result, ensure};
use serde::de::DeserializeOwned;

/// One kind of file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kind {
    /// What `schema` holds: `facepipe/<name>`.
    pub tag: &'static str,
    /// The name files written before the naming rule carry in `format`.
    pub old_tag: &'static str,
    /// The newest `schema_version` this build reads, and the one it writes.
    pub version: u32,
    /// Who writes it, for errors: "unet-train's model.json".
    pub written_by: &'static str,
}

/// `model.json` of a unet-train model directory.
pub const MODEL: Kind = Kind {
    tag: "facepipe/model",
    old_tag: "facepipe.model",
    version: 1,
    written_by: "unet-train's model.json",
};
/// `run.json` of a unet-train run directory (its settings, for `--resume`).
pub const TRAIN_RUN: Kind = Kind {
    tag: "facepipe/train-run",
    old_tag: "facepipe.train-run",
    version: 1,
    written_by: "unet-train's run.json",
};
/// `eval.json` of a unet-eval directory.
pub const EVAL: Kind = Kind {
    tag: "facepipe/eval",
    old_tag: "facepipe.eval",
    version: 1,
    written_by: "unet-eval's eval.json",
};
/// cheek-lab's `--report`.
pub const CHEEK_LAB: Kind = Kind {
    tag: "facepipe/cheek-lab",
    old_tag: "facepipe.cheek-lab",
    version: 1,
    written_by: "cheek-lab's --report",
};

impl Kind {
    /// Whether `name` (a `schema` or an old `format` value) names this kind.
    pub fn is(&self, name: &str) -> bool {
        name == self.tag || name == self.old_tag
    }

    /// The name a parsed document gives itself (`schema`, else the old `format`).
    pub fn name_in(doc: &serde_json::Value) -> Option<&str> {
        doc.get("schema").or_else(|| doc.get("format")).and_then(|v| v.as_str())
    }

    /// Whether a parsed document is one of these (by its name alone).
    pub fn names(&self, doc: &serde_json::Value) -> bool {
        Kind::name_in(doc).is_some_and(|n| self.is(n))
    }

    /// Checks a parsed document's name and version, with errors naming `path`.
    pub fn check(&self, path: &Path, doc: &serde_json::Value) -> Result<()> {
        let found = Kind::name_in(doc);
        ensure!(
            found.is_some_and(|n| self.is(n)),
            "{}: schema {} is not {:?} (is it {}?)",
            path.display(),
            found.map_or("(none)".to_string(), |n| format!("{n:?}")),
            self.tag,
            self.written_by
        );
        let version = doc
            .get("schema_version")
            .or_else(|| doc.get("format_version"))
            .and_then(|v| v.as_u64())
            .with_context(|| format!("{}: no schema_version", path.display()))?;
        ensure!(
            version <= u64::from(self.version),
            "{}: schema_version {version} is newer than this facepipe reads ({}); update facepipe",
            path.display(),
            self.version
        );
        Ok(())
    }

    /// Reads `path` as this kind: JSON, the name and version checked first (so a file of
    /// another kind says so rather than "missing field"), then the content, with the failing
    /// field's path in the error.
    pub fn read<T: DeserializeOwned>(&self, path: &Path) -> Result<T> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        self.parse(path, &bytes)
    }

    /// [`Kind::read`] of bytes already read from `path`.
    pub fn parse<T: DeserializeOwned>(&self, path: &Path, bytes: &[u8]) -> Result<T> {
        let doc: serde_json::Value =
            serde_json::from_slice(bytes).with_context(|| format!("{}: not JSON", path.display()))?;
        self.check(path, &doc)?;
        serde_path_to_error::deserialize(doc).with_context(|| format!("{}: unexpected content", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_and_new_names_are_read_and_others_refused() {
        let p = Path::new("m/model.json");
        let new = serde_json::json!({"schema": "facepipe/model", "schema_version": 1});
        let old = serde_json::json!({"format": "facepipe.model", "format_version": 1});
        MODEL.check(p, &new).unwrap();
        MODEL.check(p, &old).unwrap();
        let e = EVAL.check(p, &new).unwrap_err().to_string();
        assert!(
            e.contains("m/model.json") && e.contains("\"facepipe/model\"") && e.contains("unet-eval"),
            "{e}"
        );
        let newer = serde_json::json!({"schema": "facepipe/model", "schema_version": 2});
        let e = MODEL.check(p, &newer).unwrap_err().to_string();
        assert!(e.contains("newer"), "{e}");
        let e = MODEL.check(p, &serde_json::json!({})).unwrap_err().to_string();
        assert!(e.contains("(none)"), "{e}");
    }
}
