//! A pipeline's audit entries, written in the background: gathered for a few milliseconds so
//! that the entries of steps finishing together share one append and one sync; the run queues
//! its own entry after every step's and then waits for them all
//! ([`RunState::finish_background`]), which writes what is gathered at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use acgs_core::audit::{AuditEvent, AuditSink};
use tokio::task::JoinSet;

use super::{RunState, locked};

/// How long a pipeline's audit writer gathers entries before it writes them: the steps of one
/// level of a DAG finish within a few milliseconds of each other.
const AUDIT_GATHER_DELAY: Duration = Duration::from_millis(10);

/// Append `events` to `sink` at once, in order; the warning if they could not be written (a
/// failure to audit is reported loudly but does not undo what happened).
pub(crate) fn record_all(sink: &dyn AuditSink, events: Vec<AuditEvent>) -> Option<String> {
    match sink.record_all(events) {
        Ok(()) => None,
        Err(e) => {
            tracing::error!(
                code = acgs_core::UserFacing::code(&e),
                "audit entry not written"
            );
            Some(format!("the audit log could not be written: {e}"))
        }
    }
}

/// Audit entries waiting to be written, and the writer: one at a time, it gathers entries for
/// [`AUDIT_GATHER_DELAY`] (unless the run is ending), then writes everything waiting at once
/// (one lock, one sync) until nothing waits.
#[derive(Debug)]
pub(super) struct BackgroundAudit {
    waiting: Mutex<Waiting>,
    /// The writers started; each one's warnings.
    tasks: Mutex<JoinSet<Vec<String>>>,
    /// How long a writer gathers entries.
    gather: Duration,
    /// The run is ending: writers write at once.
    ending: AtomicBool,
    /// Wakes a gathering writer when the run ends.
    flush: tokio::sync::Notify,
}

impl Default for BackgroundAudit {
    fn default() -> Self {
        Self {
            waiting: Mutex::default(),
            tasks: Mutex::default(),
            gather: AUDIT_GATHER_DELAY,
            ending: AtomicBool::new(false),
            flush: tokio::sync::Notify::new(),
        }
    }
}

/// What waits for the writer.
#[derive(Debug, Default)]
struct Waiting {
    entries: Vec<AuditEvent>,
    /// A writer is running (it takes what is added).
    writing: bool,
}

impl BackgroundAudit {
    /// Wait for more entries to gather, unless the run is ending (or ends meanwhile).
    async fn gather(&self) {
        let flushed = self.flush.notified();
        tokio::pin!(flushed);
        flushed.as_mut().enable();
        if !self.ending.load(Ordering::Acquire) {
            tokio::select! {
                () = tokio::time::sleep(self.gather) => {}
                () = flushed => {}
            }
        }
    }

    /// Write what waits until nothing does; the warnings of what could not be written.
    fn write(&self, sink: &dyn AuditSink) -> Vec<String> {
        let mut warnings = Vec::new();
        loop {
            let entries = {
                let mut waiting = locked(&self.waiting);
                if waiting.entries.is_empty() {
                    waiting.writing = false;
                    return warnings;
                }
                std::mem::take(&mut waiting.entries)
            };
            warnings.extend(record_all(sink, entries));
        }
    }
}

impl RunState {
    /// Append a finished step's audit `entries` to `sink`: now (returning a warning if that
    /// failed), or in a pipeline's run in the background.
    pub(crate) fn audit(
        &self,
        sink: &Arc<dyn AuditSink>,
        entries: Vec<AuditEvent>,
    ) -> Option<String> {
        if !self.pipeline {
            return record_all(sink.as_ref(), entries);
        }
        self.audit_in_background(sink, entries);
        None
    }

    /// Queue audit `entries` for the background writer (see the module documentation); what
    /// could not be written is reported by [`RunState::finish_background`].
    pub(crate) fn audit_in_background(&self, sink: &Arc<dyn AuditSink>, entries: Vec<AuditEvent>) {
        let start_writer = {
            let mut waiting = locked(&self.audits.waiting);
            waiting.entries.extend(entries);
            !std::mem::replace(&mut waiting.writing, true)
        };
        if start_writer {
            let (sink, audits) = (Arc::clone(sink), Arc::clone(&self.audits));
            locked(&self.audits.tasks).spawn(async move {
                audits.gather().await;
                tokio::task::spawn_blocking(move || audits.write(sink.as_ref()))
                    .await
                    .unwrap_or_else(|e| vec![format!("audit entries were not written: {e}")])
            });
        }
    }

    /// Write the audit entries gathered in the background now, and wait for them; the warnings
    /// of those that failed. Entries added later are written at once.
    pub(crate) async fn finish_background(&self) -> Vec<String> {
        self.audits.ending.store(true, Ordering::Release);
        self.audits.flush.notify_waiters();
        let mut tasks = std::mem::take(&mut *locked(&self.audits.tasks));
        let mut warnings = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(failed) => warnings.extend(failed),
                Err(e) => warnings.push(format!("audit entries were not written: {e}")),
            }
        }
        warnings
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run_state::tests::run_dir;
    use acgs_storage::manifest::{Manifest, RunKind};

    /// Keeps the steps of the entries it records, one list per append; refuses an append with
    /// an entry of step `bad`.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<Vec<String>>>);

    impl Recorder {
        fn appends(&self) -> Vec<Vec<String>> {
            self.0.lock().expect("lock").clone()
        }
    }

    impl AuditSink for Recorder {
        fn record(&self, event: AuditEvent) -> Result<(), acgs_core::audit::AuditError> {
            self.record_all(vec![event])
        }

        fn record_all(&self, events: Vec<AuditEvent>) -> Result<(), acgs_core::audit::AuditError> {
            let steps: Vec<String> = events.into_iter().filter_map(|e| e.step).collect();
            if steps.iter().any(|s| s == "bad") {
                return Err(acgs_core::audit::AuditError("disk full".into()));
            }
            self.0.lock().expect("lock").push(steps);
            Ok(())
        }
    }

    fn entry(step: &str) -> AuditEvent {
        AuditEvent {
            step: Some(step.to_owned()),
            ..AuditEvent::default()
        }
    }

    #[tokio::test]
    async fn a_pipeline_audits_finished_steps_in_the_background_and_waits_for_them() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = run_dir(&tmp, "r3");
        let run = RunState::new(dir, Manifest::new(RunKind::Pipeline, "r3")).for_pipeline();
        let recorder = Arc::new(Recorder::default());
        let sink: Arc<dyn AuditSink> = recorder.clone();
        for step in ["a", "b", "c"] {
            assert_eq!(run.audit(&sink, vec![entry(step)]), None, "nothing waits");
        }
        assert_eq!(run.finish_background().await, Vec::<String>::new());
        let mut recorded = recorder.appends().concat();
        recorded.sort();
        assert_eq!(
            recorded,
            ["a", "b", "c"],
            "all written before the run goes on"
        );

        assert_eq!(run.audit(&sink, vec![entry("bad")]), None);
        let warnings = run.finish_background().await;
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("disk full"), "{warnings:?}");

        let single = RunState::new(run.dir.clone(), Manifest::new(RunKind::Single, "r3"));
        let warning = single.audit(&sink, vec![entry("bad")]);
        assert!(
            warning.is_some_and(|w| w.contains("disk full")),
            "written at once"
        );
    }

    #[tokio::test]
    async fn a_pipeline_gathers_audit_entries_into_one_append_written_at_once_when_it_ends() {
        let tmp = tempfile::tempdir().expect("tmp");
        let mut run = RunState::new(run_dir(&tmp, "r4"), Manifest::new(RunKind::Pipeline, "r4"))
            .for_pipeline();
        run.audits = Arc::new(BackgroundAudit {
            gather: Duration::from_secs(3600),
            ..BackgroundAudit::default()
        });
        let recorder = Arc::new(Recorder::default());
        let sink: Arc<dyn AuditSink> = recorder.clone();
        let promptly = Duration::from_secs(20);

        run.audit_in_background(&sink, vec![entry("a")]);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(recorder.appends().is_empty(), "the writer gathers");
        run.audit_in_background(&sink, vec![entry("b")]);
        let warnings = tokio::time::timeout(promptly, run.finish_background())
            .await
            .expect("the end of the run cuts the gathering short");
        assert_eq!(warnings, Vec::<String>::new());
        assert_eq!(recorder.appends(), [["a", "b"]], "one append for both");

        run.audit_in_background(&sink, vec![entry("c")]);
        tokio::time::timeout(promptly, async {
            while recorder.appends().len() < 2 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("once the run ends, entries are written at once");
        assert_eq!(recorder.appends()[1], ["c"]);
    }
}
