//! The AWS runtime's glue: one typed configuration read from the environment, the instance
//! built once per cold start (SDK clients, secrets, the admin account), and the SQS batch
//! handler of the sync worker. The three functions' `main.rs` files only call these.
//!
//! Layering: like `app`, this wires adapters into services; nothing here holds a rule.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use sha2::Digest as _;

use crate::app::{AwsApp, AwsQueue, AwsSettings, Settings};
use crate::domain::{PrivateNetworks, UrlPolicy};
use crate::ports::{attempts_from_receives, Job, RetryPolicy, Verdict};
use crate::services::tokens::{TokenKey, Tokens};
use crate::services::AuthMode;

/// Everything the functions read from their environment (template.yaml sets it).
#[derive(Debug, Clone)]
pub struct LambdaConfig {
    pub bucket: String,
    pub table: String,
    pub queue_url: String,
    /// The secret holding `admin_password` (Secrets Manager), or …
    pub secret_arn: Option<String>,
    /// … the password itself (emulators and tests).
    pub admin_password: Option<String>,
    /// The secret holding `token_key_seed`, or …
    pub token_key_secret_arn: Option<String>,
    /// … the seed itself.
    pub token_key_seed: Option<String>,
    /// The secret holding `field_key_seed`, which seals remote credentials at rest.
    pub field_key_secret_arn: Option<String>,
    /// The field key seed itself (tests and emulators; takes precedence).
    pub field_key_seed: Option<String>,
    pub token_auth: bool,
    pub token_lifetime: Duration,
    pub redirect_ttl: Duration,
    /// How long a finished task is kept (`None`: until deleted).
    pub task_retention: Option<Duration>,
    pub public_url: Option<String>,
    pub s3_path_style: bool,
    /// Whether remotes may reach loopback and private networks
    /// (`BERTH_REMOTE_PRIVATE_NETWORKS`, `allow` by default).
    pub remote_private_networks: PrivateNetworks,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl LambdaConfig {
    /// Reads the configuration; the error names every missing or bad variable.
    pub fn from_env() -> Result<Self, String> {
        let mut errors = Vec::new();
        let mut required = |name: &str| {
            var(name).unwrap_or_else(|| {
                errors.push(format!("{name} is not set"));
                String::new()
            })
        };
        let bucket = required("BERTH_BUCKET");
        let table = required("BERTH_TABLE");
        let queue_url = required("BERTH_QUEUE_URL");
        let mut seconds = |name: &str, default: u64, min: u64, max: u64| match var(name) {
            None => Duration::from_secs(default),
            Some(v) => match v.parse::<u64>() {
                Ok(n) if (min..=max).contains(&n) => Duration::from_secs(n),
                _ => {
                    errors.push(format!(
                        "{name} must be a number of seconds from {min} to {max}, not {v:?}"
                    ));
                    Duration::from_secs(default)
                }
            },
        };
        let token_lifetime = seconds("BERTH_TOKEN_LIFETIME", 300, 30, 86_400);
        let redirect_ttl = seconds("BERTH_REDIRECT_TTL", 600, 60, 43_200);
        let task_retention = match var("BERTH_TASK_RETENTION_DAYS").map(|v| v.parse::<u64>()) {
            None => Some(Duration::from_secs(30 * 86_400)),
            Some(Ok(0)) => None,
            Some(Ok(days)) if days <= 36_500 => Some(Duration::from_secs(days * 86_400)),
            Some(_) => {
                errors.push("BERTH_TASK_RETENTION_DAYS must be a number of days from 0 to 36500".into());
                None
            }
        };
        let token_auth = match var("BERTH_TOKEN_AUTH").as_deref() {
            None | Some("on") => true,
            Some("off") => false,
            Some(v) => {
                errors.push(format!("BERTH_TOKEN_AUTH must be on or off, not {v:?}"));
                true
            }
        };
        let remote_private_networks = match var("BERTH_REMOTE_PRIVATE_NETWORKS") {
            None => PrivateNetworks::Allow,
            Some(v) => PrivateNetworks::parse(&v).unwrap_or_else(|| {
                errors.push(format!(
                    "BERTH_REMOTE_PRIVATE_NETWORKS must be allow or deny, not {v:?}"
                ));
                PrivateNetworks::Allow
            }),
        };
        let cfg = LambdaConfig {
            bucket,
            table,
            queue_url,
            secret_arn: var("BERTH_SECRET_ARN"),
            admin_password: var("BERTH_ADMIN_PASSWORD"),
            token_key_secret_arn: var("BERTH_TOKEN_KEY_SECRET_ARN"),
            token_key_seed: var("BERTH_TOKEN_KEY_SEED"),
            field_key_secret_arn: var("BERTH_FIELD_KEY_SECRET_ARN"),
            field_key_seed: var("BERTH_FIELD_KEY_SEED"),
            token_auth,
            token_lifetime,
            redirect_ttl,
            task_retention,
            public_url: var("BERTH_PUBLIC_URL"),
            s3_path_style: var("BERTH_S3_PATH_STYLE")
                .map(|v| v == "on" || v == "1" || v == "true")
                .unwrap_or_else(|| var("AWS_ENDPOINT_URL").is_some()),
            remote_private_networks,
        };
        if cfg.secret_arn.is_none() && cfg.admin_password.is_none() {
            errors.push("BERTH_SECRET_ARN (or BERTH_ADMIN_PASSWORD) is not set".into());
        }
        if cfg.field_key_secret_arn.is_none() && cfg.field_key_seed.is_none() {
            errors.push("BERTH_FIELD_KEY_SECRET_ARN (or BERTH_FIELD_KEY_SEED) is not set".into());
        }
        if cfg.token_auth && cfg.token_key_secret_arn.is_none() && cfg.token_key_seed.is_none() {
            errors.push("BERTH_TOKEN_KEY_SECRET_ARN (or BERTH_TOKEN_KEY_SEED) is not set".into());
        }
        if errors.is_empty() {
            Ok(cfg)
        } else {
            Err(errors.join("; "))
        }
    }
}

/// The ES256 signing key derived from a secret seed, the same in every function instance.
pub fn token_key_from_seed(seed: &str) -> TokenKey {
    let mut counter = 0u32;
    loop {
        let mut h = sha2::Sha256::new();
        h.update(b"berth token key\0");
        h.update(seed.as_bytes());
        h.update(counter.to_be_bytes());
        if let Some(k) = TokenKey::from_scalar_bytes(&h.finalize().into()) {
            return k;
        }
        counter += 1;
    }
}

async fn secret_field(sdk: &aws_config::SdkConfig, arn: &str, field: &str) -> Result<String, String> {
    let client = aws_sdk_secretsmanager::Client::new(sdk);
    let out = client.get_secret_value().secret_id(arn).send().await.map_err(|e| {
        format!(
            "cannot read the secret {arn}: {}",
            aws_sdk_secretsmanager::error::DisplayErrorContext(e)
        )
    })?;
    let text = out
        .secret_string()
        .ok_or_else(|| format!("the secret {arn} holds no string"))?;
    let v: serde_json::Value = serde_json::from_str(text).map_err(|_| format!("the secret {arn} is not JSON"))?;
    v[field]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("the secret {arn} has no field {field}"))
}

/// Which function is starting: each reads only the secrets it needs (and its IAM policy in
/// template.yaml allows only those).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The management API: the admin password (Basic auth).
    Api,
    /// The registry: the admin password (`/token` logins) and the token key.
    Registry,
    /// The sync worker: only the field key (remote credentials).
    Worker,
}

/// Builds the instance: SDK clients once per cold start, the field key, and for the API and
/// the registry the admin account and (registry) the token key.
pub async fn build(cfg: &LambdaConfig, role: Role) -> Result<AwsApp, String> {
    let sdk = crate::adapters::aws::sdk_config().await;
    let auth = if role == Role::Registry && cfg.token_auth {
        let seed = match (&cfg.token_key_seed, &cfg.token_key_secret_arn) {
            (Some(s), _) => s.clone(),
            (None, Some(arn)) => secret_field(&sdk, arn, "token_key_seed").await?,
            (None, None) => return Err("no token key seed".into()),
        };
        AuthMode::Token(Arc::new(Tokens::new(token_key_from_seed(&seed), cfg.token_lifetime)))
    } else {
        AuthMode::Basic
    };
    let field_seed = match (&cfg.field_key_seed, &cfg.field_key_secret_arn) {
        (Some(s), _) => s.clone(),
        (None, Some(arn)) => secret_field(&sdk, arn, "field_key_seed").await?,
        (None, None) => return Err("no field key seed".into()),
    };
    let mut settings = Settings {
        public_url: cfg.public_url.clone(),
        auth,
        field_key: Some(Arc::new(crate::store::FieldKey::from_seed(&field_seed))),
        remote_urls: UrlPolicy::new(cfg.remote_private_networks),
        ..Default::default()
    };
    settings.registry.redirect_ttl = cfg.redirect_ttl;
    settings.retention.tasks = cfg.task_retention;
    let aws = AwsSettings {
        bucket: cfg.bucket.clone(),
        table: cfg.table.clone(),
        queue: AwsQueue::Url(cfg.queue_url.clone()),
        s3_path_style: cfg.s3_path_style,
        init: false,
    };
    let app = AwsApp::connect(&sdk, &aws, settings)
        .await
        .map_err(|e| format!("cannot connect to the bucket, table or queue: {e:?}"))?;
    if role == Role::Worker {
        return Ok(app);
    }
    let password = match (&cfg.admin_password, &cfg.secret_arn) {
        (Some(p), _) => p.clone(),
        (None, Some(arn)) => secret_field(&sdk, arn, "admin_password").await?,
        (None, None) => return Err("no admin password".into()),
    };
    app.app
        .users
        .ensure_admin(Some(&password))
        .await
        .map_err(|e| format!("cannot set up the admin account: {e:?}"))?;
    Ok(app)
}

/// How long before the invocation's deadline a job stops to continue in a follow-up message
/// (at most a quarter of the invocation's time).
pub const DEADLINE_MARGIN_MS: i64 = 60_000;

/// The deadline a job gets from the invocation's (Unix milliseconds) at `now`: a margin
/// before it. A deadline already past is not a real one (emulators send placeholders, e.g.
/// `cargo lambda watch` sends 600000): the job then runs without one.
pub fn job_deadline(invocation_deadline_ms: Option<i64>, now_ms: i64) -> Option<i64> {
    let deadline = invocation_deadline_ms?;
    let remaining = deadline - now_ms;
    if remaining <= 0 {
        tracing::warn!(
            deadline,
            "the invocation's deadline has passed already; running jobs without one"
        );
        return None;
    }
    Some(deadline - DEADLINE_MARGIN_MS.min(remaining / 4))
}

/// Runs an SQS batch under the queue port's [`RetryPolicy::SQS`], like the SQS poller: records
/// whose job asks to be retried are reported as batch item failures (SQS redelivers them after
/// the visibility timeout, and its redrive policy takes jobs that keep failing to the
/// dead-letter queue). Permanent failures were recorded on their task and are dropped, and so
/// are records that are not jobs (they can never run). Jobs get the invocation's deadline
/// (`deadline_ms`, less a margin); one that reaches it having committed nothing is sent again as
/// a follow-up message, which continues the work (what was stored is not fetched again).
pub async fn handle_sqs(
    handler: &dyn crate::ports::JobHandler,
    follow_up: &dyn crate::ports::JobQueue,
    event: SqsEvent,
    deadline_ms: Option<i64>,
) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    let job_deadline = job_deadline(deadline_ms, chrono::Utc::now().timestamp_millis());
    for record in event.records {
        let id = record.message_id.clone().unwrap_or_default();
        let receives: u32 = record
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        let body = record.body.as_deref().unwrap_or_default().as_bytes();
        let (job, verdict) = RetryPolicy::SQS
            .run(handler, body, attempts_from_receives(receives), job_deadline)
            .await;
        let kind = job.as_ref().map(Job::kind_name).unwrap_or_default();
        verdict.log(job.as_ref().map_or(id.as_str(), |j| j.id.as_str()), &kind);
        match (verdict, job) {
            (Verdict::Continue, Some(job)) => {
                let next = Job {
                    deadline_ms: None,
                    ..job
                };
                if let Err(e) = follow_up.enqueue(next).await {
                    tracing::warn!(job = %id, error = %e, "could not send the follow-up; the message will be redelivered");
                    response.add_failure(id);
                }
            }
            (Verdict::Retry { .. } | Verdict::GiveUp(_), _) => response.add_failure(id),
            _ => {}
        }
    }
    response
}

/// The client's address as API Gateway gives it: the last entry of `X-Forwarded-For`, which
/// API Gateway appends itself (entries before it are the client's own and can be forged).
pub fn forwarded_client(headers: &http::HeaderMap) -> Option<std::net::IpAddr> {
    let value = headers.get_all("x-forwarded-for").iter().next_back()?.to_str().ok()?;
    value.rsplit(',').next()?.trim().parse().ok()
}

/// Runs each request with its client's address known to the password checks, which throttle
/// failed logins per client address as well as per user.
pub async fn client_addr(req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    match forwarded_client(req.headers()) {
        Some(addr) => crate::http::auth::with_client_addr(addr, next.run(req)).await,
        None => next.run(req).await,
    }
}

/// Answers requests whose body cannot pass API Gateway and Lambda (about 6 MB, less after
/// base64) with a clear error instead of letting the platform fail them obscurely.
pub const MAX_LAMBDA_BODY: u64 = 6 * 1024 * 1024 - 64 * 1024;

pub async fn body_limit(req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    use axum::response::IntoResponse;
    let too_big = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .is_some_and(|n| n > MAX_LAMBDA_BODY);
    if too_big {
        let e = crate::http::errors::OciError::http(
            crate::http::errors::HttpAnswer::BodyTooLarge,
            "request bodies over about 6 MB cannot pass API Gateway and Lambda; push large layers in chunks \
             (PATCH) of at most 5 MB, or sync them from an upstream registry",
        );
        return e.into_response();
    }
    next.run(req).await
}

/// Structured JSON logs, filtered by `BERTH_LOG` (default `info`), as CloudWatch wants them.
pub fn init_tracing() {
    let filter = std::env::var("BERTH_LOG").unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&filter).unwrap_or_else(|_| "info".into()))
        .with_current_span(false)
        .without_time()
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::JobError;

    #[test]
    fn the_client_is_the_address_api_gateway_appended() {
        let mut h = http::HeaderMap::new();
        assert_eq!(forwarded_client(&h), None);
        h.insert("x-forwarded-for", "6.6.6.6, 203.0.113.7".parse().unwrap());
        assert_eq!(forwarded_client(&h), Some("203.0.113.7".parse().unwrap()));
        h.insert("x-forwarded-for", "2001:db8::1".parse().unwrap());
        assert_eq!(forwarded_client(&h), Some("2001:db8::1".parse().unwrap()));
        h.insert("x-forwarded-for", "garbage".parse().unwrap());
        assert_eq!(forwarded_client(&h), None);
    }

    #[test]
    fn the_token_key_depends_only_on_the_seed() {
        assert_eq!(token_key_from_seed("abc").kid(), token_key_from_seed("abc").kid());
        assert_ne!(token_key_from_seed("abc").kid(), token_key_from_seed("abd").kid());
    }

    fn sqs_event(bodies: &[&str]) -> SqsEvent {
        let records: Vec<serde_json::Value> = bodies
            .iter()
            .enumerate()
            .map(|(i, b)| {
                serde_json::json!({
                    "messageId": format!("m{i}"), "receiptHandle": "r", "body": b,
                    "attributes": {"ApproximateReceiveCount": "3", "SentTimestamp": "1", "SenderId": "x",
                                   "ApproximateFirstReceiveTimestamp": "1"},
                    "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
                    "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:jobs", "awsRegion": "us-east-1"
                })
            })
            .collect();
        serde_json::from_value(serde_json::json!({ "Records": records })).unwrap()
    }

    #[test]
    fn jobs_stop_a_margin_before_the_invocation_deadline() {
        let now = 1_800_000_000_000;
        assert_eq!(job_deadline(None, now), None);
        assert_eq!(job_deadline(Some(now + 900_000), now), Some(now + 840_000));
        // a short invocation keeps three quarters of its time for the job
        assert_eq!(job_deadline(Some(now + 20_000), now), Some(now + 15_000));
        // a placeholder deadline in the past is ignored
        assert_eq!(job_deadline(Some(600_000), now), None);
    }

    const DEADLINE: i64 = 4_000_000_000_000;

    struct Script;
    #[async_trait::async_trait]
    impl crate::ports::JobHandler for Script {
        async fn handle(&self, job: &Job) -> Result<(), JobError> {
            assert_eq!(job.attempts, 2, "ApproximateReceiveCount 3 = two earlier deliveries");
            assert_eq!(job.deadline_ms, Some(DEADLINE - DEADLINE_MARGIN_MS));
            match job.id.as_str() {
                "ok" => Ok(()),
                "retry" => Err(JobError::Retry("later".into())),
                "long" => Err(JobError::Continue),
                _ => Err(JobError::Permanent("never".into())),
            }
        }
    }

    #[derive(Default)]
    struct Sent(std::sync::Mutex<Vec<Job>>);
    #[async_trait::async_trait]
    impl crate::ports::JobQueue for Sent {
        async fn enqueue(&self, job: Job) -> Result<(), crate::ports::StoreError> {
            self.0.lock().unwrap().push(job);
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_batch_reports_only_the_jobs_to_retry() {
        let job = |id: &str| {
            let cleanup = crate::ports::OrphanJob {
                task: uuid::Uuid::new_v4(),
                protection_secs: 0,
                only: None,
            };
            serde_json::to_string(&Job::new(id, crate::ports::JobKind::Orphans(cleanup))).unwrap()
        };
        let (ok, retry, bad, long) = (job("ok"), job("retry"), job("bad"), job("long"));
        // records that are not jobs (garbage, a kind this version does not know) are dropped
        let unknown = r#"{"id": "u", "kind": "no-such-kind", "payload": {}}"#;
        let event = sqs_event(&[&ok, &retry, &bad, "not json", &long, unknown]);
        let sent = Sent::default();
        let resp = handle_sqs(&Script, &sent, event, Some(DEADLINE)).await;
        let failed: Vec<_> = resp
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(failed, ["m1"]);
        // the job that reached its deadline went out again as a follow-up, without the deadline
        {
            let sent = sent.0.lock().unwrap();
            assert_eq!(sent.len(), 1);
            assert_eq!((sent[0].id.as_str(), sent[0].deadline_ms), ("long", None));
        }
        let wire = serde_json::to_value(&resp).unwrap();
        assert_eq!(wire["batchItemFailures"][0]["itemIdentifier"], "m1");
    }
}
