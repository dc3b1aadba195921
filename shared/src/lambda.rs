//! The AWS runtime's glue: the configuration read from the environment (the table in
//! [`crate::config`], as the local binary reads it), the instance built once per cold start
//! (SDK clients, secrets, the accounts), and the SQS batch handler of the sync worker. The
//! three functions' `main.rs` files only call these.
//!
//! Layering: like `app`, this wires adapters into services; nothing here holds a rule.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};

use crate::app::{App, AwsApp};
use crate::config::{Config, ConfigError, LogFormat, Runtime, Secret};
use crate::observe::emf::{Emf, EmfSink};
use crate::ports::{attempts_from_receives, Job, RetryPolicy, Verdict};

/// The functions' configuration from their environment (template.yaml sets it): the table
/// of settings every runtime shares, plus where the secrets come from. The error names every
/// missing or bad variable.
pub fn config_from_env() -> Result<Config, ConfigError> {
    Config::for_lambda(&|name: &str| std::env::var(name).ok())
}

pub use crate::config::token_key_from_seed;

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
    /// The management API and the web page (`/ui`): the admin password (Basic auth) and the
    /// field key (remote credentials, web page sessions).
    Api,
    /// The registry: the admin password (`/token` logins) and the token key.
    Registry,
    /// The sync worker: only the field key (remote credentials).
    Worker,
}

/// Builds the instance: SDK clients once per cold start, the field key, and for the API and
/// the registry the accounts and (registry) the token key.
pub async fn build(cfg: &Config, role: Role) -> Result<AwsApp, String> {
    let sdk = crate::adapters::aws::sdk_config().await;
    let seed = |given: &Option<Secret>, arn: &Option<String>, field: &'static str| {
        let (given, arn, sdk) = (given.clone(), arn.clone(), &sdk);
        async move {
            match (given, arn) {
                (Some(s), _) => Ok(s.expose().to_owned()),
                (None, Some(arn)) => secret_field(sdk, &arn, field).await,
                (None, None) => Err(format!("no {field}")),
            }
        }
    };
    let token_key = if role == Role::Registry && cfg.token_auth {
        let seed = seed(&cfg.token_key_seed, &cfg.token_key_secret_arn, "token_key_seed").await?;
        Some(token_key_from_seed(&seed))
    } else {
        None
    };
    let field_seed = seed(&cfg.field_key_seed, &cfg.field_key_secret_arn, "field_key_seed").await?;
    let mut settings = cfg.settings(token_key, crate::store::FieldKey::from_seed(&field_seed), None);
    // blob bytes never pass through Lambda and API Gateway: misses go to the upstream's own
    // redirect target or wait for the sync worker's copy into S3
    settings.registry.relay_blobs = false;
    if cfg.metrics_emf {
        settings.emf = Some(EmfSink::new(Emf::new(function_name(role)), write_line));
    }
    let aws = cfg.aws()?;
    let app = AwsApp::connect_with(&sdk, &aws.settings, &aws.s3, settings)
        .await
        .map_err(|e| e.to_string())?;
    if role == Role::Worker {
        return Ok(app);
    }
    let password = seed(&cfg.admin_password, &cfg.secret_arn, "admin_password").await?;
    app.app.ensure_accounts(Some(&password), &cfg.readonly_users).await?;
    Ok(app)
}

/// The name of this execution environment of the sync-worker function as a worker, as Pulp
/// names its workers (`<pid>@<host>`): an id drawn at its cold start, at the function's name.
pub fn worker_name() -> String {
    let function = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "sync-worker".into());
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{}@{function}", &id[..12])
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

/// Logs filtered by `BERTH_LOG` (default `info`): one JSON object a line (the event's fields
/// at the top level), as CloudWatch Logs Insights reads them, unless `BERTH_LOG_FORMAT=text`.
/// CloudWatch stamps each line with its time.
pub fn init_tracing() {
    let filter = std::env::var("BERTH_LOG").unwrap_or_else(|_| "info".into());
    let filter = tracing_subscriber::EnvFilter::try_new(&filter).unwrap_or_else(|_| "info".into());
    let format = LogFormat::parse(std::env::var("BERTH_LOG_FORMAT").ok().as_deref(), Runtime::Lambda);
    let fmt = tracing_subscriber::fmt().with_env_filter(filter).without_time();
    match format {
        Ok(LogFormat::Text) => fmt.with_ansi(false).init(),
        _ => fmt
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
    }
    if let Err(e) = format {
        tracing::warn!("{e}; writing JSON");
    }
}

/// The `Function` dimension of this function's EMF documents: its Lambda name.
fn function_name(role: Role) -> String {
    std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| {
        match role {
            Role::Api => "api",
            Role::Registry => "registry",
            Role::Worker => "sync-worker",
        }
        .into()
    })
}

/// Writes one EMF document to standard output (which Lambda sends to CloudWatch Logs) in one
/// write, so that log lines never interleave with it.
fn write_line(doc: &str) {
    use std::io::Write as _;
    let line = format!("{doc}\n");
    let _ = std::io::stdout().lock().write_all(line.as_bytes());
}

/// Puts the request id API Gateway gave a request into its extensions, where the access log
/// takes it from (when the client sent none of its own).
pub async fn gateway_request_id(
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use lambda_http::request::RequestContext;
    use lambda_http::RequestExt as _;
    let id = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(c)) => c.request_id.clone(),
        Some(RequestContext::ApiGatewayV1(c)) => c.request_id.clone(),
        _ => None,
    };
    if let Some(id) = id {
        req.extensions_mut().insert(crate::http::access::GatewayRequestId(id));
    }
    next.run(req).await
}

/// How often one instance of a function writes the content totals as EMF (each write costs
/// the totals' table reads, about a hundred).
pub const CONTENT_EVERY: Duration = Duration::from_secs(300);

/// Writes, after each invocation, the EMF documents of what the invocation did that the
/// access log did not write (sync runs, upstream requests) and, at most every
/// [`CONTENT_EVERY`], the content the registry holds. Does nothing when EMF is off.
pub struct Emitter {
    app: App,
    last_content: Mutex<Option<Instant>>,
}

impl Emitter {
    pub fn new(app: &App) -> Arc<Self> {
        Arc::new(Emitter {
            app: app.clone(),
            last_content: Mutex::new(None),
        })
    }

    /// Writes what is due.
    pub async fn flush(&self) {
        let Some(sink) = &self.app.settings.emf else { return };
        let now = chrono::Utc::now().timestamp_millis();
        for doc in sink.emf.pending(&self.app.metrics.take_pending(), now) {
            sink.write(&doc);
        }
        let due = {
            let mut last = self.last_content.lock().unwrap_or_else(|e| e.into_inner());
            let due = last.is_none_or(|t| t.elapsed() >= CONTENT_EVERY);
            if due {
                *last = Some(Instant::now());
            }
            due
        };
        if !due {
            return;
        }
        match self.app.gauges().content().await {
            Ok(totals) => {
                let rows: Vec<(&str, u64, Option<u64>)> = totals
                    .iter()
                    .map(|t| (crate::services::observed::type_label(t.content_type), t.units, t.bytes))
                    .collect();
                for doc in Emf::content(&rows, now) {
                    sink.write(&doc);
                }
            }
            Err(e) => tracing::warn!(error = %e, "metrics: cannot read the content totals"),
        }
    }
}

/// An HTTP function's router as it runs on Lambda: API Gateway's request ids for the access
/// log, and the EMF documents each invocation owes written after its answer is made.
pub fn observed(router: axum::Router, app: &App) -> axum::Router {
    let emitter = Emitter::new(app);
    router
        .layer(axum::middleware::from_fn_with_state(emitter, flush_after))
        .layer(axum::middleware::from_fn(gateway_request_id))
}

async fn flush_after(
    axum::extract::State(emitter): axum::extract::State<Arc<Emitter>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let response = next.run(req).await;
    emitter.flush().await;
    response
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

    #[tokio::test]
    async fn each_request_writes_an_emf_document_under_api_gateway_s_request_id() {
        use tower::ServiceExt as _;
        // Given the API function's router with EMF on, When API Gateway hands it a request
        let lines = Arc::new(Mutex::new(Vec::<String>::new()));
        let written = lines.clone();
        let settings = crate::app::Settings {
            emf: Some(EmfSink::new(Emf::new("berth-api"), move |l: &str| {
                written.lock().unwrap().push(l.to_owned())
            })),
            ..Default::default()
        };
        let app = crate::app::LocalApp::in_memory_with(settings).app;
        let router = observed(app.api_router(), &app);
        let mut ctx = lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequestContext::default();
        ctx.request_id = Some("gw-123".into());
        let mut req = http::Request::get("/pulp/api/v3/status/")
            .body(axum::body::Body::empty())
            .unwrap();
        req.extensions_mut()
            .insert(lambda_http::request::RequestContext::ApiGatewayV2(ctx));
        let resp = router.clone().oneshot(req).await.unwrap();
        // Then the answer carries API Gateway's id
        assert_eq!(resp.headers()["x-request-id"], "gw-123");
        axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
        // and its EMF document names the function, the route, the status and the id; the
        // content totals (due at an instance's first invocation) come along
        let docs: Vec<serde_json::Value> = lines
            .lock()
            .unwrap()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let request: Vec<_> = docs.iter().filter(|d| d.get("Requests").is_some()).collect();
        assert_eq!(request.len(), 1, "{docs:?}");
        let d = request[0];
        assert_eq!(
            (&d["Function"], &d["Route"], &d["Status"], &d["RequestId"]),
            (
                &serde_json::json!("berth-api"),
                &serde_json::json!("/pulp/api/v3/status/"),
                &serde_json::json!(200),
                &serde_json::json!("gw-123")
            )
        );
        assert_eq!(d["_aws"]["CloudWatchMetrics"][0]["Namespace"], "Berth");
        let content: Vec<_> = docs.iter().filter(|d| d.get("ContentUnits").is_some()).collect();
        assert_eq!(content.len(), 4, "one per content type");
        // and the next invocation writes its own document only: the totals are not due again
        let n = lines.lock().unwrap().len();
        let req = http::Request::get("/pulp/api/v3/status/")
            .body(axum::body::Body::empty())
            .unwrap();
        let resp = router.oneshot(req).await.unwrap();
        axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
        assert_eq!(lines.lock().unwrap().len(), n + 1);
    }

    #[tokio::test]
    async fn the_environment_is_a_worker_that_heartbeats_when_it_runs_a_job() {
        // Given the sync worker's environment as a worker, When it handles a batch,
        // Then its heartbeat is in the table, running nothing once the batch is done
        let app = crate::app::LocalApp::in_memory().app;
        let name = worker_name();
        let (id, function) = name.split_once('@').unwrap();
        assert_eq!((id.len(), function), (12, "sync-worker"));
        let beats = app.heartbeats(vec![name.clone()]);
        let handler = beats.attend(std::sync::Arc::new(Script));
        let cleanup = crate::ports::OrphanJob {
            task: uuid::Uuid::new_v4(),
            protection_secs: 0,
            only: None,
        };
        let ok = serde_json::to_string(&Job::new("ok", crate::ports::JobKind::Orphans(cleanup))).unwrap();
        let before = chrono::Utc::now();
        handle_sqs(&*handler, &Sent::default(), sqs_event(&[&ok]), Some(DEADLINE)).await;
        let workers = app.store.workers().await.unwrap();
        assert_eq!(workers.len(), 1);
        assert_eq!(
            (workers[0].name.as_str(), workers[0].current_task),
            (name.as_str(), None)
        );
        assert!(workers[0].last_heartbeat >= before);
    }
}
