//! Prometheus metrics: typed metrics and collectors (prometheus-client) rendered in the
//! OpenMetrics text format, served at `GET /metrics` over HTTP/1.1. The actor counts its episodes
//! as they happen; the learner's figures are read from its state at each scrape (a collector).

use std::fmt;
use std::sync::Arc;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

/// A label value as the text format needs it: prometheus-client writes label values as given, so
/// a backslash, quote or newline (a device name may hold one) is escaped here.
pub fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// The exposition of `registry` (its metrics and collectors), ending with `# EOF`.
pub fn render(registry: &Registry) -> String {
    let mut text = String::new();
    if let Err(e) = encode(&mut text, registry) {
        tracing::warn!(error = %e, "metrics: a collector failed; the exposition is cut short");
    }
    text
}

/// A counter read at scrape time (a collector's).
pub fn scraped_counter(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: u64,
) -> fmt::Result {
    let c = ConstCounter::new(value);
    c.encode(encoder.encode_descriptor(name, help, None, c.metric_type())?)
}

/// A gauge read at scrape time (a collector's).
pub fn scraped_gauge(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: f64,
) -> fmt::Result {
    let g = ConstGauge::new(value);
    g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)
}

/// A counter read at scrape time with one sample per label set.
pub fn scraped_counters<S: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    samples: &[(S, u64)],
) -> fmt::Result {
    let kind = ConstCounter::new(0u64).metric_type();
    let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, v) in samples {
        ConstCounter::new(*v).encode(metric.encode_family(labels)?)?;
    }
    Ok(())
}

/// A gauge read at scrape time with one sample per label set.
pub fn scraped_gauges<S: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    samples: &[(S, f64)],
) -> fmt::Result {
    let kind = ConstGauge::new(0.0).metric_type();
    let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, v) in samples {
        ConstGauge::new(*v).encode(metric.encode_family(labels)?)?;
    }
    Ok(())
}

/// Renders the current metrics.
pub type Render = Arc<dyn Fn() -> String + Send + Sync>;

/// Serves `GET /metrics` on `listener` until the task is dropped or aborted.
pub async fn serve(listener: tokio::net::TcpListener, render: Render) -> std::io::Result<()> {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let render = render.clone();
            async move {
                let kind = "application/openmetrics-text; version=1.0.0; charset=utf-8";
                ([("content-type", kind)], render())
            }
        }),
    );
    axum::serve(listener, app).await
}
