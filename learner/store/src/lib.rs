//! What the CASRAP learner keeps on disk, readable without libtorch: the replay store (sled),
//! checkpoint folders (and the policy in them), and fleet-benchmark records. The learner writes
//! them; the orchestrator (`casrap`: export, reports, test mode) and actors read them.

pub mod checkpoint;
pub mod chunks;
pub mod episodes;
pub mod error;
pub mod fleet;
pub mod replay;
pub mod witness;

pub use error::{Error, Result};
