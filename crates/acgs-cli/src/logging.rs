//! tracing on stderr through the redactor: text lines, or JSON objects `{ts, type: "log", …}`.
//! `ACGS_LOG` (an env-filter directive, dependency targets included) beats `-v`/`-vv`.

use std::fmt::Write as _;
use std::io::Write as _;

use acgs_core::redact::Redactor;
use serde_json::{Map, Value, json};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt as _};
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer};

/// Install the global subscriber.
pub(crate) fn init(
    directive: Option<&str>,
    verbose: u8,
    quiet: bool,
    json: bool,
    redactor: Redactor,
) {
    // A target directive is a prefix: `acgs` is every acgs crate and `acgs::http`. -v shows
    // each request, -vv acgs's debug lines; dependencies' debug lines only from -vvv (or
    // `ACGS_LOG`).
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "warn,acgs=info",
        (false, 2) => "info,acgs=debug",
        _ => "debug",
    };
    let filter = directive
        .and_then(|d| EnvFilter::try_new(d).ok())
        .unwrap_or_else(|| EnvFilter::new(default));
    let layer = RedactingLayer { redactor, json };
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(layer)
        .try_init();
}

struct RedactingLayer {
    redactor: Redactor,
    json: bool,
}

#[derive(Default)]
struct Fields {
    message: String,
    rest: Map<String, Value>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.message = text;
        } else {
            self.rest
                .insert(field.name().to_owned(), Value::String(text));
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            value.clone_into(&mut self.message);
        } else {
            self.rest
                .insert(field.name().to_owned(), Value::String(value.to_owned()));
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.rest.insert(field.name().to_owned(), json!(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.rest.insert(field.name().to_owned(), json!(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.rest.insert(field.name().to_owned(), json!(value));
    }
}

impl<S: Subscriber> Layer<S> for RedactingLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let meta = event.metadata();
        let level = meta.level().as_str().to_ascii_lowercase();
        let line = if self.json {
            json!({
                "ts": jiff::Timestamp::now().to_string(), "type": "log", "level": level,
                "target": meta.target(), "message": fields.message, "fields": fields.rest,
            })
            .to_string()
        } else {
            let mut line = format!("{level} {}: {}", meta.target(), fields.message);
            for (k, v) in &fields.rest {
                let v = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                let _ = write!(line, " {k}={v}");
            }
            line
        };
        // One write per line (stderr is unbuffered).
        let mut line = self.redactor.redact(&line).into_owned();
        line.push('\n');
        crate::ui::around_spinner(|| {
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
        });
    }
}
