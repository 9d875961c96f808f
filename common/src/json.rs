//! JSON helpers the records share. JSON has no NaN, so serde_json writes a non-finite number as
//! `null`; [`nan_if_null`] reads it back as the NaN it was.

use serde::{Deserialize, Deserializer};

/// Reads a number that may be `null` (a non-finite number written by serde_json) as NaN.
pub fn nan_if_null<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}
