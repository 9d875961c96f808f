//! One tracing setup for every CASRAP binary.

use tracing_subscriber::EnvFilter;

/// Quiet defaults for the noisy transport crates; `RUST_LOG` overrides everything.
const DEFAULT_FILTER: &str = "info,h2=warn,hyper=warn,tower=warn,tonic=info";

/// Installs a stderr `fmt` subscriber filtered by `RUST_LOG` (or [`DEFAULT_FILTER`]).
///
/// Safe to call more than once (later calls are no-ops), so tests and binaries can both call it.
pub fn init_tracing() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
