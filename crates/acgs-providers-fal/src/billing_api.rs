//! fal's billing events (`GET /v1/models/billing-events`, ADMIN-scoped key): what each request
//! was billed, looked up by request id, for `acgs spend reconcile`.

use acgs_core::Usd;
use acgs_core::provider::{Charge, FailureClass, ProviderError, ProviderResult};
use serde::Deserialize;

use crate::platform::Platform;

/// Most request ids fal takes in one lookup.
const IDS_PER_CALL: usize = 50;
/// Most pages read for one batch of ids.
const MAX_PAGES: usize = 20;
/// Most bytes read of one page.
const PAGE_CAP: u64 = 8 * 1024 * 1024;

/// What fal billed for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillingEvent {
    /// The queue request id.
    pub request_id: String,
    /// The endpoint billed.
    pub endpoint_id: String,
    /// The total after discounts (`cost_total`, else the nano-dollar estimate rounded half up),
    /// negative for a refund.
    pub cost: Usd,
}

#[derive(Deserialize)]
struct Page {
    billing_events: Vec<RawEvent>,
    #[serde(default)]
    next_cursor: Option<String>,
    #[serde(default)]
    has_more: bool,
}

#[derive(Deserialize)]
struct RawEvent {
    request_id: String,
    endpoint_id: String,
    #[serde(default)]
    cost_estimate_nano_usd: Option<serde_json::Number>,
    #[serde(default)]
    cost_total: Option<serde_json::Number>,
}

impl RawEvent {
    /// The cost from its decimal total after discounts when given, else its nano-dollar
    /// estimate; an event with neither is left out rather than read as free.
    fn into_event(self) -> Option<BillingEvent> {
        let cost = match (self.cost_total, self.cost_estimate_nano_usd) {
            (Some(total), _) => Usd::parse(&total.to_string()).ok()?,
            (None, Some(nano)) => {
                let nano = nano.as_i64()?;
                Usd::from_micros(nano.checked_add(500)?.div_euclid(1000))
            }
            (None, None) => return None,
        };
        Some(BillingEvent {
            request_id: self.request_id,
            endpoint_id: self.endpoint_id,
            cost,
        })
    }
}

impl Platform {
    /// The billing events of `request_ids` from `start` (a date, `YYYY-MM-DD`); requests fal has
    /// not billed yet are missing from the answer.
    pub async fn billing_events(
        &self,
        request_ids: &[String],
        start: &str,
    ) -> ProviderResult<Vec<BillingEvent>> {
        let mut events = Vec::new();
        for batch in request_ids.chunks(IDS_PER_CALL) {
            let mut cursor: Option<String> = None;
            for _ in 0..MAX_PAGES {
                let mut query: Vec<(&str, &str)> = vec![("start", start), ("limit", "1000")];
                query.extend(batch.iter().map(|id| ("request_id", id.as_str())));
                if let Some(cursor) = &cursor {
                    query.push(("cursor", cursor));
                }
                let page: Page = self.get("models/billing-events", &query, PAGE_CAP).await?;
                events.extend(
                    page.billing_events
                        .into_iter()
                        .filter_map(RawEvent::into_event),
                );
                cursor = page.next_cursor.filter(|_| page.has_more);
                if cursor.is_none() {
                    break;
                }
            }
            if cursor.is_some() {
                return Err(ProviderError::new(
                    FailureClass::Other,
                    "provider.too_many_events",
                    format!(
                        "fal has more than {MAX_PAGES} pages of billing events for these requests; reconcile a shorter span"
                    ),
                    Charge::Release,
                ));
            }
        }
        Ok(events)
    }
}
