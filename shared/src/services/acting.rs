//! Who the request being handled acts for, known to the services it calls without passing
//! it through every call: the HTTP layer runs each authenticated request inside
//! [`with_actor`]; what a request makes (a pushed namespace and distribution) goes to that
//! caller.
//!
//! Layering: `domain ← ports ← {store, adapters} ← services ← http ← app ← functions/*`;
//! part of `services`.

use std::future::Future;
use std::sync::Arc;

use super::accounts::Identity;

tokio::task_local! {
    static ACTOR: Arc<Identity>;
}

/// Runs `request` acting for `who` (noted for the request's access log entry).
pub async fn with_actor<F: Future>(who: Arc<Identity>, request: F) -> F::Output {
    crate::observe::notes::note_user(who.user.as_deref());
    ACTOR.scope(who, request).await
}

/// Who the current request acts for, when the HTTP layer said.
pub fn actor() -> Option<Arc<Identity>> {
    ACTOR.try_with(Arc::clone).ok()
}
