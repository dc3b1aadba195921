//! What the AWS adapters share: loading the SDK configuration, and mapping SDK errors into the
//! one [`StoreError`] of the ports.
//!
//! Layering: only `adapters::{dynamo_table, s3_blobs, sqs_queue}` and the wiring in `app` use
//! this module; services never see an SDK type.

use std::error::Error as StdError;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::config::Credentials;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

use crate::ports::StoreError;

/// The SDK configuration from the environment: region, credentials and `AWS_ENDPOINT_URL`
/// (for an emulator) as `aws-config` finds them.
pub async fn sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

/// An SDK configuration with everything given: an endpoint (an emulator such as moto),
/// a region and static credentials. Nothing is read from the environment that these
/// settings cover.
pub async fn sdk_config_for(endpoint: &str, region: &str, access_key: &str, secret_key: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(region.to_owned()))
        .credentials_provider(Credentials::new(access_key, secret_key, None, None, "berth-static"))
        .load()
        .await
}

/// Error codes with which AWS services ask callers to slow down.
const THROTTLING: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "SlowDown",
];

/// The HTTP status of a service's answer, when there was one.
pub(crate) fn status<E>(e: &SdkError<E, HttpResponse>) -> Option<u16> {
    e.raw_response().map(|r| r.status().as_u16())
}

/// The error code a service answered with (`NoSuchKey`, `ResourceNotFoundException`, …).
pub(crate) fn code<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> Option<&str> {
    match e {
        SdkError::ServiceError(se) => se.err().code(),
        _ => None,
    }
}

/// Maps an SDK error: a failed condition is `Conflict`, throttling is `Throttled`, transport
/// failures, timeouts and 5xx answers are `Unavailable`, anything else is `Other`. The SDK
/// error is kept as the source, never turned into a string.
pub(crate) fn store_error<E>(e: SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    match &e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            StoreError::Unavailable(Box::new(e))
        }
        SdkError::ServiceError(_) => {
            let code = code(&e).unwrap_or_default();
            if code == "ConditionalCheckFailedException" {
                StoreError::Conflict("the condition of the write did not hold".into())
            } else if THROTTLING.contains(&code) || status(&e) == Some(429) {
                StoreError::Throttled(Box::new(e))
            } else if status(&e).is_some_and(|s| s >= 500) {
                StoreError::Unavailable(Box::new(e))
            } else {
                StoreError::Other(Box::new(e))
            }
        }
        _ => StoreError::Other(Box::new(e)),
    }
}

/// Whether the service answered 404 (a missing key, bucket, table or queue).
pub(crate) fn is_not_found<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> bool {
    status(e) == Some(404)
        || matches!(
            code(e),
            Some(
                "NoSuchKey"
                    | "NotFound"
                    | "NoSuchBucket"
                    | "NoSuchUpload"
                    | "ResourceNotFoundException"
                    | "AWS.SimpleQueueService.NonExistentQueue"
                    | "QueueDoesNotExist"
            )
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::operation::put_item::PutItemError;
    use aws_sdk_dynamodb::types::error::ConditionalCheckFailedException;
    use aws_sdk_s3::primitives::SdkBody;

    fn service_error(status: u16, code: &str) -> SdkError<PutItemError, HttpResponse> {
        let meta = aws_sdk_dynamodb::error::ErrorMetadata::builder().code(code).build();
        let err = PutItemError::generic(meta);
        let resp = HttpResponse::new(status.try_into().unwrap(), SdkBody::empty());
        SdkError::service_error(err, resp)
    }

    #[test]
    fn errors_map_by_code_and_status() {
        // as the SDK deserializes it: the typed error with its code in the metadata
        let failed = ConditionalCheckFailedException::builder()
            .meta(
                aws_sdk_dynamodb::error::ErrorMetadata::builder()
                    .code("ConditionalCheckFailedException")
                    .build(),
            )
            .build();
        let e = SdkError::service_error(
            PutItemError::ConditionalCheckFailedException(failed),
            HttpResponse::new(400.try_into().unwrap(), SdkBody::empty()),
        );
        assert!(matches!(store_error(e), StoreError::Conflict(_)));
        assert!(matches!(
            store_error(service_error(400, "ProvisionedThroughputExceededException")),
            StoreError::Throttled(_)
        ));
        assert!(matches!(
            store_error(service_error(400, "ThrottlingException")),
            StoreError::Throttled(_)
        ));
        assert!(matches!(
            store_error(service_error(503, "SlowDown")),
            StoreError::Throttled(_)
        ));
        assert!(matches!(
            store_error(service_error(500, "InternalServerError")),
            StoreError::Unavailable(_)
        ));
        let other = store_error(service_error(400, "ValidationException"));
        assert!(matches!(other, StoreError::Other(_)));
        // the SDK error is the source, not a string
        let source = StdError::source(&other).unwrap();
        assert!(source.downcast_ref::<SdkError<PutItemError, HttpResponse>>().is_some());
        assert!(is_not_found(&service_error(400, "ResourceNotFoundException")));
        assert!(is_not_found(&service_error(404, "")));
        let timeout: SdkError<PutItemError, HttpResponse> = SdkError::timeout_error("slow");
        assert!(matches!(store_error(timeout), StoreError::Unavailable(_)));
    }
}
