//! Answers that wait for durability: each request runs as one write scope
//! ([`crate::ports::durability`]), and its response is held until the table has made the
//! request's writes durable. A request that wrote nothing waits for nothing. When the writes
//! cannot be made durable (a full disk, a lost database handle) the client gets the error
//! instead of the answer, so nothing it was told is lost.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;

use super::errors::OciError;
use super::pulp::errors::ApiError;
use crate::ports::{write_scope, Table};
use crate::services::{ManageError, RegistryError};

/// `router`, answering only once each request's writes to `table` are durable.
pub fn durable_answers(router: Router, table: Arc<dyn Table>) -> Router {
    router.layer(axum::middleware::from_fn_with_state(table, answer_durably))
}

async fn answer_durably(State(table): State<Arc<dyn Table>>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let registry = path.starts_with("/v2") || path.starts_with("/token") || path.starts_with("/extensions");
    write_scope(async move {
        let response = next.run(req).await;
        match table.flush().await {
            Ok(()) => response,
            Err(e) => {
                tracing::error!(error = ?e, "the request's writes could not be made durable; answering an error");
                if registry {
                    OciError::from(RegistryError::from(e)).into_response()
                } else {
                    ApiError::from(ManageError::from(e)).into_response()
                }
            }
        }
    })
    .await
}
