//! [`Interrupt`]: how a signal reaches a running generation.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use acgs_core::provider::CancellationToken;

use crate::error::Signal;

/// Interrupts a run: which signal, and the token providers watch. Clones share one state.
#[derive(Debug, Clone, Default)]
pub struct Interrupt {
    token: CancellationToken,
    signal: Arc<AtomicU8>,
}

impl Interrupt {
    /// A fresh, unfired interrupt.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Fire it for `signal`: every clone sees it, and waits watching [`Interrupt::token`] end.
    pub fn fire(&self, signal: Signal) {
        self.signal.store(
            if signal == Signal::Terminate { 2 } else { 1 },
            Ordering::SeqCst,
        );
        self.token.cancel();
    }

    /// The token providers watch.
    #[must_use]
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// The signal, once fired.
    #[must_use]
    pub fn signal(&self) -> Option<Signal> {
        match self.signal.load(Ordering::SeqCst) {
            1 => Some(Signal::Interrupt),
            2 => Some(Signal::Terminate),
            _ => None,
        }
    }
}
