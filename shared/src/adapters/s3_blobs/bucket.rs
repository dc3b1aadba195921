//! Making the bucket: public access blocked, default encryption, and the lifecycle rules that
//! clean up after uploads nobody finished.
//!
//! Layering: part of the S3 adapter (`adapters::s3_blobs`).

use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, BucketLocationConstraint, CreateBucketConfiguration,
    ExpirationStatus, LifecycleExpiration, LifecycleRule, LifecycleRuleFilter, PublicAccessBlockConfiguration,
    ServerSideEncryption, ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
};

use super::S3BlobStore;
use crate::adapters::aws::{code, is_not_found, store_error};
use crate::ports::StoreError;

/// Days after which the staged objects of an upload nobody finished are removed (an upload
/// session expires after 24 hours; its multipart upload is aborted after a day).
const STALE_UPLOAD_DAYS: i32 = 7;

impl S3BlobStore {
    /// Creates the bucket when it does not exist, then (best effort: failures are logged, as
    /// emulators lack some of it) blocks public access, turns on default encryption, and adds
    /// lifecycle rules that abort multipart uploads left unfinished for a day and remove the
    /// staged objects of uploads nobody finished in a week. Returns whether it created the bucket.
    pub async fn create_bucket_if_missing(&self) -> Result<bool, StoreError> {
        match self.client.head_bucket().bucket(&self.bucket).send().await {
            Ok(_) => return Ok(false),
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(store_error(e)),
        }
        let mut req = self.client.create_bucket().bucket(&self.bucket);
        let region = self.client.config().region().map(|r| r.as_ref().to_owned());
        if let Some(region) = region.filter(|r| r != "us-east-1") {
            req = req.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(region.as_str()))
                    .build(),
            );
        }
        match req.send().await {
            Ok(_) => {}
            Err(e) if code(&e) == Some("BucketAlreadyOwnedByYou") => {}
            Err(e) => return Err(store_error(e)),
        }
        tracing::info!(bucket = %self.bucket, "created the S3 bucket");

        let block = PublicAccessBlockConfiguration::builder()
            .block_public_acls(true)
            .ignore_public_acls(true)
            .block_public_policy(true)
            .restrict_public_buckets(true)
            .build();
        if let Err(e) = self
            .client
            .put_public_access_block()
            .bucket(&self.bucket)
            .public_access_block_configuration(block)
            .send()
            .await
        {
            tracing::warn!(bucket = %self.bucket, error = ?e, "could not block public access");
        }

        let sse = ServerSideEncryptionConfiguration::builder()
            .rules(
                ServerSideEncryptionRule::builder()
                    .apply_server_side_encryption_by_default(
                        ServerSideEncryptionByDefault::builder()
                            .sse_algorithm(ServerSideEncryption::Aes256)
                            .build()
                            .map_err(StoreError::other)?,
                    )
                    .build(),
            )
            .build()
            .map_err(StoreError::other)?;
        if let Err(e) = self
            .client
            .put_bucket_encryption()
            .bucket(&self.bucket)
            .server_side_encryption_configuration(sse)
            .send()
            .await
        {
            tracing::warn!(bucket = %self.bucket, error = ?e, "could not turn on default encryption");
        }

        let lifecycle = BucketLifecycleConfiguration::builder()
            .rules(
                LifecycleRule::builder()
                    .id("abort-incomplete-multipart-uploads")
                    .status(ExpirationStatus::Enabled)
                    .filter(LifecycleRuleFilter::builder().prefix("").build())
                    .abort_incomplete_multipart_upload(
                        AbortIncompleteMultipartUpload::builder()
                            .days_after_initiation(1)
                            .build(),
                    )
                    .build()
                    .map_err(StoreError::other)?,
            )
            .rules(
                LifecycleRule::builder()
                    .id("expire-stale-chunk-uploads")
                    .status(ExpirationStatus::Enabled)
                    .filter(LifecycleRuleFilter::builder().prefix("uploads/").build())
                    .expiration(LifecycleExpiration::builder().days(STALE_UPLOAD_DAYS).build())
                    .build()
                    .map_err(StoreError::other)?,
            )
            .build()
            .map_err(StoreError::other)?;
        if let Err(e) = self
            .client
            .put_bucket_lifecycle_configuration()
            .bucket(&self.bucket)
            .lifecycle_configuration(lifecycle)
            .send()
            .await
        {
            tracing::warn!(bucket = %self.bucket, error = ?e, "could not set the lifecycle rules");
        }
        Ok(true)
    }
}
