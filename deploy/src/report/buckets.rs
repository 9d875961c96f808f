//! How reports group episodes and prompts: by prompt length and by budget class (the summary
//! and the test-mode tables share these).

/// Upper edges (exclusive, prompt tokens) of the length buckets of the adaptation tables.
pub const LENGTH_EDGES: [usize; 4] = [64, 128, 256, 512];

/// The length bucket of a prompt of `tokens` tokens.
pub fn length_bucket(tokens: usize) -> usize {
    LENGTH_EDGES.iter().take_while(|&&e| tokens >= e).count()
}

/// The label of bucket `b`, e.g. `64-127`.
pub fn bucket_label(b: usize) -> String {
    match (b.checked_sub(1).map(|i| LENGTH_EDGES[i]), LENGTH_EDGES.get(b)) {
        (None, Some(hi)) => format!("<{hi}"),
        (Some(lo), Some(hi)) => format!("{lo}-{}", hi - 1),
        (Some(lo), None) => format!("{lo}+"),
        (None, None) => String::new(),
    }
}

/// The class a record names: records from before budgets have none, which is the seed's reward,
/// the one class `any` of a config without a `budget:` section.
pub fn class_label(budget: &str) -> &str {
    if budget.is_empty() {
        "any"
    } else {
        budget
    }
}
