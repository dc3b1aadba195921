//! Units of work whose table writes are made durable together.
//!
//! A table may make its writes visible at once and durable later, in groups (the embedded
//! table does: one fsync per request instead of one per write). Then what a client is told
//! must wait for [`Table::flush`], and a unit of work whose early writes were lost (the
//! database had to be reopened after an I/O error before they were durable) must not go on
//! writing, or it would leave its later writes without the earlier ones. A *write scope* is
//! that unit: the HTTP layer runs each request in one, the job worker each job. The table
//! notes in the scope which generation of the database its first write went to; once a
//! reopen has lost writes, every later write and flush of a scope that wrote before it fails.
//! Writes outside any scope (background sweeps, heartbeats) are single steps that need no
//! such check.
//!
//! [`Table::flush`]: super::Table::flush

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

/// No write in the scope yet.
const UNSET: u64 = u64::MAX;

struct Scope {
    /// The generation of the database the scope's first write went to, or [`UNSET`].
    generation: AtomicU64,
}

tokio::task_local! {
    static SCOPE: Scope;
}

/// Runs `work` as one write scope.
pub async fn write_scope<F: Future>(work: F) -> F::Output {
    SCOPE
        .scope(
            Scope {
                generation: AtomicU64::new(UNSET),
            },
            work,
        )
        .await
}

/// Where the current task stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeState {
    /// Outside any write scope.
    Unscoped,
    /// In a scope that has not written yet.
    Clean,
    /// In a scope whose first write went to this generation.
    Wrote(u64),
}

/// The current task's scope.
pub fn scope_state() -> ScopeState {
    SCOPE
        .try_with(|s| match s.generation.load(Ordering::SeqCst) {
            UNSET => ScopeState::Clean,
            g => ScopeState::Wrote(g),
        })
        .unwrap_or(ScopeState::Unscoped)
}

/// Notes that the current scope (if any) wrote to `generation`; the first note stays.
pub fn note_write(generation: u64) {
    let _ = SCOPE.try_with(|s| {
        let _ = s
            .generation
            .compare_exchange(UNSET, generation, Ordering::SeqCst, Ordering::SeqCst);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_scope_keeps_its_first_write() {
        assert_eq!(scope_state(), ScopeState::Unscoped);
        note_write(3); // outside a scope: nothing
        write_scope(async {
            assert_eq!(scope_state(), ScopeState::Clean);
            note_write(5);
            note_write(6);
            assert_eq!(scope_state(), ScopeState::Wrote(5));
            // a nested unit of work is a scope of its own
            write_scope(async { assert_eq!(scope_state(), ScopeState::Clean) }).await;
        })
        .await;
        assert_eq!(scope_state(), ScopeState::Unscoped);
    }
}
