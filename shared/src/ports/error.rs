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
    /// The disk or the quota holding the data is full (`ENOSPC`, `EDQUOT`). Nothing was stored:
    /// the write that failed left no partial item or file behind, and writes work again as soon
    /// as space is freed.
    #[error("out of storage space")]
    NoSpace(#[source] Source),
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

    /// Whether `e` or an error in its source chain says the storage is full: a
    /// [`StoreError::NoSpace`], or an I/O error of that kind. Lets the HTTP layers answer 507
    /// whatever service error wraps it.
    pub fn is_no_space_in(e: &(dyn StdError + 'static)) -> bool {
        let mut next = Some(e);
        while let Some(e) = next {
            if matches!(e.downcast_ref::<StoreError>(), Some(StoreError::NoSpace(_)))
                || e.downcast_ref::<std::io::Error>().is_some_and(Self::io_is_out_of_space)
            {
                return true;
            }
            next = e.source();
        }
        false
    }

    /// Whether an I/O error says the disk or the quota is full (`ENOSPC`, `EDQUOT`).
    pub fn io_is_out_of_space(e: &std::io::Error) -> bool {
        matches!(
            e.kind(),
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
        )
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::other(e)
    }
}
