//! Prometheus metrics: the text exposition format, written by hand (a few gauges and counters per
//! process), served at `GET /metrics` over HTTP/1.1.

use std::fmt::Write;
use std::sync::Arc;

/// Builds one exposition (`# HELP`, `# TYPE`, samples).
#[derive(Debug, Default)]
pub struct Exposition {
    text: String,
}

/// Escapes a label value (backslash, quote, newline).
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{v}")
    }
}

impl Exposition {
    pub fn new() -> Self {
        Self::default()
    }

    fn header(&mut self, name: &str, help: &str, kind: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    pub fn counter(mut self, name: &str, help: &str, value: f64) -> Self {
        self.header(name, help, "counter");
        let _ = writeln!(self.text, "{name} {}", number(value));
        self
    }

    pub fn gauge(mut self, name: &str, help: &str, value: f64) -> Self {
        self.header(name, help, "gauge");
        let _ = writeln!(self.text, "{name} {}", number(value));
        self
    }

    /// One metric with a sample per label set (`kind`: `gauge` or `counter`).
    pub fn labeled(
        mut self,
        name: &str,
        help: &str,
        kind: &str,
        samples: &[(Vec<(&str, String)>, f64)],
    ) -> Self {
        self.header(name, help, kind);
        for (labels, v) in samples {
            let l: Vec<String> =
                labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
            let _ = writeln!(self.text, "{name}{{{}}} {}", l.join(","), number(*v));
        }
        self
    }

    pub fn finish(self) -> String {
        self.text
    }
}

/// Renders the current metrics.
pub type Render = Arc<dyn Fn() -> String + Send + Sync>;

/// Serves `GET /metrics` on `listener` until the task is dropped or aborted.
pub async fn serve(listener: tokio::net::TcpListener, render: Render) -> std::io::Result<()> {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let render = render.clone();
            async move { ([("content-type", "text/plain; version=0.0.4")], render()) }
        }),
    );
    axum::serve(listener, app).await
}
