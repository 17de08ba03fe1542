//! facepipe-core: the contract shared by every facepipe stage.
//!
//! * [`manifest`]: the dataset manifest (types, read/write rules, JSON Schema).
//! * [`palette`]: classes and their label colours.
//! * [`paths`]: how paths in manifests resolve, and dataset-name confinement.
//! * [`images`]: image decoding within limits (no decompression bombs).
//! * [`photo`]: the one photo reader: EXIF orientation, ICC profiles to sRGB, broken files refused.
//! * [`atomic`]: the temporary-file rule: atomic writes, what may be replaced.
//! * [`io`]: input hashing, `-o` outputs (and the atomic writers, re-exported).
//! * [`out`]: what a stage may replace or delete, output locks, temporary files.
//! * [`colour`]: sRGB ⇄ CIE L\*a\*b\*.
//! * [`metrics`]: confusion matrix, dice, IoU and pixel accuracy with global sums.
//! * [`rng`]: the seeded PRNG behind every random choice.
//! * [`shard`]: `--shard K/N`, one of N parts of a manifest's items.
//! * [`cli`]: common flags, logging, exit codes.

pub mod atomic;
pub mod cli;
pub mod colour;
#[cfg(feature = "images")]
pub mod images;
pub mod io;
pub mod manifest;
#[cfg(feature = "images")]
pub mod mask;
pub mod metrics;
pub mod out;
pub mod palette;
pub mod paths;
#[cfg(feature = "images")]
pub mod photo;
pub mod rng;
pub mod shard;

pub use io::Output;
pub use manifest::{Item, Manifest, Split, Step};
pub use palette::Class;

/// The version recorded in provenance: the crate version only (not the git revision), so
/// that the same inputs give a byte-identical manifest across rebuilds of one release.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// `--version` text: the workspace version and the git revision it was built from.
pub const LONG_VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("FACEPIPE_GIT_REV"), ")");
