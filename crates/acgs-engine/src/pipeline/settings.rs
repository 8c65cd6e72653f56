//! A file's `settings`: how many steps run at once, and the run's limits — the configuration's,
//! which the file may tighten and never loosen.

use acgs_core::Usd;
use acgs_core::config::{Config, CostManagement};
use acgs_guard::budget::{CostOverrides, tighten};
use serde_saphyr::Spanned;

use super::schema::{self, Settings};

/// Steps running at once when the file does not say.
const DEFAULT_PARALLEL: u32 = 4;
/// The most steps running at once a file may ask for.
const MAX_PARALLEL: u32 = 32;

fn line<T>(s: &Spanned<T>) -> u32 {
    u32::try_from(s.referenced.line()).unwrap_or(0)
}

/// `max_parallel` and the run's limits; each problem goes to `problem` (line, code, message).
pub(super) fn settings(
    settings: &Settings,
    config: &Config,
    mut problem: impl FnMut(u32, &'static str, String),
) -> (usize, CostManagement) {
    let parallel = settings
        .max_parallel
        .as_ref()
        .map_or(DEFAULT_PARALLEL, |p| p.value);
    if !(1..=MAX_PARALLEL).contains(&parallel) {
        let at = settings.max_parallel.as_ref().map_or(0, line);
        let message = format!("max_parallel must be between 1 and {MAX_PARALLEL}");
        problem(at, "pipeline.setting", message);
    }
    let parallel = parallel.clamp(1, MAX_PARALLEL) as usize;
    let base = &config.cost_management;
    let Some(cost) = &settings.cost_management else {
        return (parallel, base.clone());
    };
    let at = line(cost);
    let mut usd = |value: &Option<schema::Scalar>, key: &str| {
        let value = value.as_ref()?;
        Usd::parse(&value.0)
            .map_err(|_| {
                let message = format!(
                    "settings.cost_management.{key}: `{}` is not an amount in dollars",
                    value.0
                );
                problem(at, "pipeline.setting", message);
            })
            .ok()
    };
    let overrides = CostOverrides {
        max_cost_per_run: usd(&cost.value.max_cost_per_run, "max_cost_per_run"),
        daily_limit: usd(&cost.value.daily_limit, "daily_limit"),
        warn_threshold: usd(&cost.value.warn_threshold, "warn_threshold"),
        require_confirmation: cost.value.require_confirmation,
    };
    let tightened = tighten(base, &overrides).unwrap_or_else(|key| {
        problem(at, "pipeline.loosens_limit", format!("settings.cost_management.{key} would loosen your configured limit; a pipeline may only tighten limits"));
        base.clone()
    });
    (parallel, tightened)
}
