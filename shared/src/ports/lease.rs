//! Lease timings: how long a holder keeps something exclusively without renewing it, how often
//! it renews, and how long a newcomer waits for it. Every lease Berth takes is timed here, so
//! the numbers that must agree with each other (a renewal well inside the lifetime) sit side by
//! side.
//!
//! Layering: `domain ← ports ← {store, adapters} ← services ← http ← app ← functions/*`; plain
//! values the store, the services and the queue adapters read.

use std::time::Duration;

/// The timing of one kind of lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTimings {
    /// How long the lease lasts without renewal; a holder that stalls longer loses it.
    pub ttl: Duration,
    /// How often a long-running holder renews it (well inside `ttl`).
    pub renew_every: Duration,
    /// How long one attempt to take the lease waits while someone else holds it.
    pub wait: Duration,
}

impl LeaseTimings {
    /// A sync's hold on the repository it writes: renewed while the sync runs; the sync waits
    /// for a busy repository in short steps, checking for cancellation between them.
    pub const SYNC: LeaseTimings = LeaseTimings {
        ttl: Duration::from_secs(60),
        renew_every: Duration::from_secs(20),
        wait: Duration::from_secs(2),
    };

    /// A management write (adding or removing content, deleting a version): short, so it is
    /// never renewed; it waits a while for a running write to finish.
    pub const MANAGE: LeaseTimings = LeaseTimings {
        ttl: Duration::from_secs(60),
        renew_every: Duration::from_secs(20),
        wait: Duration::from_secs(20),
    };

    /// A push's write of a tag: like a management write, with a longer wait (a client's push
    /// should rather wait than fail).
    pub const PUSH: LeaseTimings = LeaseTimings {
        ttl: Duration::from_secs(60),
        renew_every: Duration::from_secs(20),
        wait: Duration::from_secs(30),
    };

    /// A job message a long-running queue consumer holds while the job runs (the SQS
    /// visibility timeout): renewed at half its lifetime, so a running job is not delivered to
    /// a second consumer.
    pub const JOB_MESSAGE: LeaseTimings = LeaseTimings {
        ttl: Duration::from_secs(60),
        renew_every: Duration::from_secs(30),
        wait: Duration::ZERO,
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_lease_is_renewed_well_inside_its_lifetime() {
        for l in [
            LeaseTimings::SYNC,
            LeaseTimings::MANAGE,
            LeaseTimings::PUSH,
            LeaseTimings::JOB_MESSAGE,
        ] {
            assert!(l.renew_every * 2 <= l.ttl, "{l:?}");
        }
    }
}
