//! The state layout: the features every actor computes and the learner expects, each normalised
//! to [0, 1]. Changing the list or a feature's meaning bumps [`LAYOUT_VERSION`]; the learner refuses
//! actors of another version.

/// Version of the layout below.
pub const LAYOUT_VERSION: u32 = 1;

/// The features, in order (the seed's set).
pub const FEATURES: &[&str] = &[
    "cpu_utilisation",
    "memory_available",
    "battery",
    "gpu_present",
    "gpu_utilisation",
    "gpu_memory_free",
    "prompt_tokens",
    "prompt_perplexity",
    "complexity",
];
