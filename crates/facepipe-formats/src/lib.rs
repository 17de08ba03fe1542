//! facepipe-formats: the files facepipe's stages publish for the next stage and for people,
//! one Rust type each, shared by the stage that writes the file and every reader of it (the
//! `report` stage, `unet-eval`, `--merge`, `--summary`). It holds no burn and no image code, so
//! a reader links the types without the writer.
//!
//! * [`model`]: `model.json` (what `unet-train` trained and how) and its training [`recipe`].
//! * [`metrics`]: `metrics.csv`, one row per epoch.
//! * [`eval`]: `eval.json` (what `unet-eval` scored).
//! * [`cheeks`]: the cheek-lab report (`--report`).
//! * [`tag`]: how each file names itself.
//!
//! The dataset manifest, the contract every stage (and a swapped-in script) speaks, stays in
//! `facepipe_core::manifest`; these are the files around it. With the `schema` feature each
//! format has a JSON Schema (`schemas/*.schema.json`, generated and checked by a test).

pub mod cheeks;
pub mod eval;
pub mod metrics;
pub mod model;
pub mod recipe;
pub mod tag;

pub use tag::Kind;

/// The JSON Schema of a format's top-level type (`schemas/*.schema.json`), with `schema`
/// pinned to the kind's name and `schema_version` to the versions this build reads.
#[cfg(feature = "schema")]
pub fn json_schema<T: schemars::JsonSchema>(kind: Kind) -> serde_json::Value {
    let mut v = serde_json::to_value(schemars::schema_for!(T)).expect("a schema is JSON");
    v["properties"]["schema"]["const"] = kind.tag.into();
    v["properties"]["schema_version"]["minimum"] = 1.into();
    v["properties"]["schema_version"]["maximum"] = kind.version.into();
    v
}
