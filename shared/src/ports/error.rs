use std::error::Error as StdError;

type Source = Box<dyn StdError + Send + Sync + 'static>;

/// The one error every adapter maps its backend's errors into. The source error is kept for
/// the log; it is never shown to clients.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The item, blob or upload does not exist.
    #[error("not found")]
    NotFound,
    /// A conditional write failed: someone else wrote first, or the item already exists.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The bytes written do not hash to the digest they were stored under.
    #[error("digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch { expected: String, actual: String },
    /// A write was out of order (an upload chunk not starting at the current size).
    #[error("out of order: the upload is {size} bytes long")]
    OutOfOrder { size: u64 },
    /// The backend asks us to slow down.
    #[error("throttled")]
    Throttled(#[source] Source),
    /// The backend cannot be reached or failed transiently.
    #[error("unavailable")]
    Unavailable(#[source] Source),
    /// Reading the client's request body failed (the client went away or sent garbage).
    #[error("request body: {0}")]
    Body(#[source] Source),
    #[error("storage error")]
    Other(#[source] Source),
}

impl StoreError {
    pub fn other(e: impl StdError + Send + Sync + 'static) -> Self {
        StoreError::Other(Box::new(e))
    }

    pub fn other_msg(msg: impl Into<String>) -> Self {
        StoreError::Other(msg.into().into())
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, StoreError::NotFound)
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::other(e)
    }
}
