//! cheek-lab's report (`--report`): what was measured, how, and how it compares with the
//! reference; with a shard's rows at full precision so that `--merge` can rebuild the run. The
//! per-face CSV's rows are [`FaceRow`]s.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;
use facepipe_core::colour::WhitePoint;
use facepipe_core::io::InputFile;
use serde::{Deserialize, Serialize};

use crate::tag;

/// Which faces of an image to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Faces {
    /// The largest face region only (the subject).
    Largest,
    /// Every face region (connected components), largest first.
    All,
}

/// Which of our values matches the reference's id column: written `face-id`, `id`, or the
/// name of an item field (`participant`, carried from the `photos` stage's CSV).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(into = "String", try_from = "String")]
pub enum JoinOn {
    /// `ID#FACE` (face 0 = largest): the demo's `participant_id`.
    FaceId,
    /// The item id (one face per image).
    Id,
    /// An item field's value (one face per image).
    Field(String),
}

impl std::str::FromStr for JoinOn {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s.trim() {
            "face-id" => JoinOn::FaceId,
            "id" => JoinOn::Id,
            "" => return Err("give face-id, id, or the name of an item field".into()),
            f => JoinOn::Field(f.to_string()),
        })
    }
}

impl TryFrom<String> for JoinOn {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<JoinOn> for String {
    fn from(j: JoinOn) -> String {
        j.to_string()
    }
}

impl std::fmt::Display for JoinOn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JoinOn::FaceId => f.write_str("face-id"),
            JoinOn::Id => f.write_str("id"),
            JoinOn::Field(name) => f.write_str(name),
        }
    }
}

impl JoinOn {
    /// What a face's key is, in words (for the message when nothing matches).
    pub fn describe(&self) -> String {
        match self {
            JoinOn::FaceId => "ITEM#FACE".into(),
            JoinOn::Id => "the item id".into(),
            JoinOn::Field(f) => format!("the item's {f:?} field"),
        }
    }
}

/// How a patch's pixels are averaged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum Averaging {
    /// Mean of the sRGB values, then converted: what Photoshop's Average filter followed by
    /// reading the Lab value does.
    MeanRgb,
    /// Mean of each pixel's L*a*b*.
    MeanLab,
}

/// One cheek: its colour or why there is none.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct CheekResult {
    /// `ok` or `not_measurable`.
    pub status: Cow<'static, str>,
    pub reason: String,
    pub lab: Option<[f64; 3]>,
    /// Standard deviation of the skin pixels' L*, a*, b* (population).
    pub sd: Option<[f64; 3]>,
    /// Skin pixels averaged.
    pub pixels: u32,
    /// The patch: x0, y0, x1, y1 (exclusive), clipped to the image.
    pub patch: Option<[u32; 4]>,
    pub ita: Option<f64>,
}

impl CheekResult {
    pub fn missing(reason: &str) -> Self {
        CheekResult {
            status: "not_measurable".into(),
            reason: reason.into(),
            lab: None,
            sd: None,
            pixels: 0,
            patch: None,
            ita: None,
        }
    }
}

/// Which columns of the reference CSV hold what: `--ref-id`, `--ref-left`, `--ref-right`.
#[derive(clap::Args, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Columns {
    /// Reference id column.
    #[arg(
        id = "ref_id",
        long = "ref-id",
        default_value = "participant_id",
        value_name = "COLUMN"
    )]
    pub id: String,
    /// Reference columns of the subject's left cheek: L*,a*,b*.
    #[arg(
        id = "ref_left",
        long = "ref-left",
        default_value = "left_cheek_L,left_cheek_a,left_cheek_b",
        value_name = "L,A,B",
        value_parser = three_columns
    )]
    pub left: [String; 3],
    /// Reference columns of the subject's right cheek: L*,a*,b*.
    #[arg(
        id = "ref_right",
        long = "ref-right",
        default_value = "right_cheek_L,right_cheek_a,right_cheek_b",
        value_name = "L,A,B",
        value_parser = three_columns
    )]
    pub right: [String; 3],
}

impl Default for Columns {
    /// The flags' defaults: the demo's `participants.csv`.
    fn default() -> Self {
        facepipe_core::cli::arg_defaults()
    }
}

/// clap value parser of `--ref-left`/`--ref-right`: three column names (a bad value is a usage
/// error, exit 2).
fn three_columns(s: &str) -> Result<[String; 3], String> {
    let v: Vec<String> = s.split(',').map(|x| x.trim().to_string()).collect();
    if v.iter().any(String::is_empty) {
        return Err(format!("an empty column name in {s:?}"));
    }
    <[String; 3]>::try_from(v).map_err(|_| format!("three column names are needed, L,a,b: got {s:?}"))
}

/// Summary statistics of a list of differences.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Spread {
    pub n: usize,
    pub median: Option<f64>,
    pub mean: Option<f64>,
    pub p90: Option<f64>,
    pub max: Option<f64>,
}

/// Agreement of one channel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Channel {
    pub channel: String,
    pub n: usize,
    pub pearson_r: Option<f64>,
    /// Mean of measured − reference.
    pub mean_bias: Option<f64>,
    pub mean_abs_diff: Option<f64>,
}

/// One face's row.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct FaceRow {
    pub id: String,
    pub face: usize,
    pub face_id: String,
    pub image: String,
    pub mask: String,
    pub faces_in_image: usize,
    pub face_pixels: usize,
    pub eye_distance_px: Option<f64>,
    pub face_width_px: Option<f64>,
    /// What the patch size was scaled from.
    pub scale_from: Cow<'static, str>,
    /// The eyes were placed from sunglasses.
    pub eyes_from_glasses: bool,
    pub patch_px: u32,
    pub fwhr: Option<f64>,
    pub fwhr_reason: String,
    pub left: CheekResult,
    pub right: CheekResult,
    #[serde(skip)]
    /// The eyes placed (x, y in pixels): for the QC pictures, not written.
    pub eyes: Vec<[f64; 2]>,
    #[serde(skip)]
    pub label: u32,
    /// The EXIF orientation the photo was shown with (none when it was not read).
    #[serde(default)]
    pub orientation: Option<u8>,
    /// The value of the item field `--join FIELD` names (none without it, or when the item
    /// has no such field).
    #[serde(default)]
    pub join_key: Option<String>,
    /// The photo's colour profile and what was done with it (`sRGB (no profile)`,
    /// `Display P3 → sRGB`, ...).
    #[serde(default)]
    pub colour_profile: String,
}

/// The comparison with the reference, as the report holds it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Agreement {
    pub reference: InputFile,
    pub id_column: String,
    pub join: JoinOn,
    pub faces_joined: usize,
    pub faces_without_reference: usize,
    pub reference_rows_unmatched: usize,
    pub cheeks_compared: usize,
    /// Joined cheeks with a reference value that could not be measured.
    pub cheeks_not_measurable: usize,
    pub delta_e76: Spread,
    pub delta_e2000: Spread,
    pub channels: Vec<Channel>,
}

/// `--report`: what was measured and how it compares.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Report {
    /// `facepipe/cheek-lab` (`facepipe.cheek-lab` before the naming rule, see [`crate::tag`]).
    #[serde(alias = "format")]
    pub schema: String,
    #[serde(alias = "format_version")]
    pub schema_version: u32,
    pub input: InputFile,
    pub mask_field: String,
    pub faces_mode: Faces,
    pub white_point: WhitePoint,
    pub averaging: Averaging,
    pub patch_px: f64,
    pub reference_face_width: f64,
    pub min_skin: f64,
    pub items: usize,
    pub faces: usize,
    pub cheeks_measured: usize,
    pub cheeks_not_measurable: usize,
    /// Reasons a cheek was not measurable, with counts.
    pub not_measurable: BTreeMap<String, usize>,
    pub fwhr_measured: usize,
    /// The photos read, by the colour profile applied (`sRGB (no profile)` where a photo has
    /// none and was taken as sRGB, `Display P3 → sRGB`, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub colour_profiles: BTreeMap<String, usize>,
    /// The photos shown turned or flipped by their EXIF orientation.
    #[serde(default)]
    pub photos_oriented: usize,
    pub warnings: Vec<String>,
    pub agreement: Option<Agreement>,
    /// The CSV (`-o`) and QC folder (`--qc-dir`) this run wrote, for readers of the report
    /// (the `report` stage): relative to the report's folder (absolute when the report went to
    /// stdout); absent when written to stdout or not asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csv: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qc_dir: Option<String>,
    /// A shard's measurements (`--shard K/N`): its counts and agreement are its part's only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardPart>,
    /// The shard reports a `--merge` joined.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<ShardRef>,
    pub facepipe_version: String,
}

/// What a shard's report holds so that `--merge` can rebuild the whole run's CSV and
/// agreement: every row at full precision and what the join needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ShardPart {
    /// `K/N`.
    pub shard: String,
    /// `--reference` as given (its sha256 is in `agreement.reference`).
    pub reference: Option<String>,
    pub ref_columns: Columns,
    pub join: JoinOn,
    /// The part's items in input order, each with its rows and warnings.
    pub items: Vec<ShardItem>,
}

/// One item of a shard.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ShardItem {
    pub id: String,
    pub rows: Vec<FaceRow>,
    pub warnings: Vec<String>,
}

/// One shard of a merged report.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ShardRef {
    pub shard: String,
    pub report: String,
    pub sha256: String,
}

impl Report {
    /// Reads and checks a cheek-lab report.
    pub fn read(path: &Path) -> Result<Report> {
        tag::CHEEK_LAB.read(path)
    }
}
