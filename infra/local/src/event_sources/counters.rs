//! Progress counters of the event sources.

use super::*;

/// Progress counters for the local runner's display. Each event source has
/// its own; fields that do not apply stay zero.
#[derive(Debug, Default)]
pub struct Counters {
    /// Handler invocations (batches, HTTP requests, schedule ticks).
    pub invocations: AtomicU64,
    /// Invocations that failed as a whole: `Err`, panic or timeout (Lambda's `Errors`).
    pub failed_invocations: AtomicU64,
    pub messages_received: AtomicU64,
    /// Messages deleted after a successful invocation.
    pub messages_deleted: AtomicU64,
    /// Messages left for redelivery (failed items, FIFO followers, failed batches).
    pub messages_failed: AtomicU64,
    /// Items the handler itself reported in `batchItemFailures`.
    pub batch_item_failures: AtomicU64,
    /// Failed messages that had reached `maxReceiveCount`: SQS moves them to
    /// the DLQ instead of delivering them again.
    pub messages_redriven: AtomicU64,
    /// SQS or transport errors while receiving or deleting.
    pub sqs_errors: AtomicU64,
}

/// A copy of [`Counters`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CounterSnapshot {
    pub invocations: u64,
    pub failed_invocations: u64,
    pub messages_received: u64,
    pub messages_deleted: u64,
    pub messages_failed: u64,
    pub batch_item_failures: u64,
    pub messages_redriven: u64,
    pub sqs_errors: u64,
}

impl Counters {
    pub fn snapshot(&self) -> CounterSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CounterSnapshot {
            invocations: get(&self.invocations),
            failed_invocations: get(&self.failed_invocations),
            messages_received: get(&self.messages_received),
            messages_deleted: get(&self.messages_deleted),
            messages_failed: get(&self.messages_failed),
            batch_item_failures: get(&self.batch_item_failures),
            messages_redriven: get(&self.messages_redriven),
            sqs_errors: get(&self.sqs_errors),
        }
    }
}

pub(super) fn add(counter: &AtomicU64, n: usize) {
    counter.fetch_add(n as u64, Ordering::Relaxed);
}
