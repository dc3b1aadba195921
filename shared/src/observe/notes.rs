//! What a request notes about itself for its access log entry while it is handled: who it acted
//! for. The access log runs each request inside [`scope`]; the code that authenticates a
//! caller calls [`note_user`] (`services::acting::with_actor`, the token endpoint). Outside a
//! scope (jobs, tests of services) noting does nothing.

use std::future::Future;
use std::sync::{Arc, Mutex};

tokio::task_local! {
    static NOTES: Arc<Notes>;
}

/// The notes of one request.
#[derive(Debug, Default)]
pub struct Notes {
    user: Mutex<Option<String>>,
}

impl Notes {
    /// The authenticated user the request acted for, if any.
    pub fn user(&self) -> Option<String> {
        self.user.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Runs `request` with `notes` as its notes.
pub async fn scope<F: Future>(notes: Arc<Notes>, request: F) -> F::Output {
    NOTES.scope(notes, request).await
}

/// Notes that the current request acts for `user` (an empty name or `None`: anonymous, which
/// leaves an earlier note as it was).
pub fn note_user(user: Option<&str>) {
    let Some(user) = user.filter(|u| !u.is_empty()) else {
        return;
    };
    let _ = NOTES.try_with(|n| {
        *n.user.lock().unwrap_or_else(|e| e.into_inner()) = Some(user.to_owned());
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_request_notes_its_user_inside_its_scope_only() {
        note_user(Some("outside"));
        let notes = Arc::new(Notes::default());
        scope(notes.clone(), async {
            note_user(None);
            note_user(Some(""));
            assert_eq!(notes.user(), None);
            note_user(Some("alice"));
            note_user(None);
        })
        .await;
        assert_eq!(notes.user().as_deref(), Some("alice"));
    }
}
