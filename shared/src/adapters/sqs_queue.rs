//! The job queue port on SQS, and [`SqsPoller`], a consumer that runs jobs in a long-running
//! process (the local binary on the AWS backend; the Lambda function gets its messages from an
//! event source mapping instead).
//!
//! A message's body is the job as JSON; its `job-id` attribute repeats the id. On a FIFO queue
//! (a URL ending in `.fifo`) the job id is the deduplication id, so enqueueing a pending id
//! again is dropped by SQS; a standard queue may deliver a job twice, which handlers tolerate
//! (invariant 4).
//!
//! Delivery follows the queue port's [`RetryPolicy`] ([`RetryPolicy::SQS`] by default): a job
//! that succeeds, fails permanently, or a message that is not a job (poison: it can never
//! run), is deleted. A job that asks to be retried is hidden for a backoff that doubles with
//! each receive (`ApproximateReceiveCount`), so the queue's redrive policy (`maxReceiveCount`)
//! moves a job that keeps failing to the dead-letter queue. While a handler runs, the poller
//! keeps extending the message's visibility ([`LeaseTimings::JOB_MESSAGE`]), so a long job is
//! not delivered twice at the same time.
//!
//! Layering: `domain ← ports ← {store, adapters} ← services ← http ← app ← functions/*`;
//! implements `ports::JobQueue`; runs any `ports::JobHandler`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_sqs::types::{Message, MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName};
use aws_sdk_sqs::Client;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::aws::{is_not_found, store_error};
use crate::ports::{attempts_from_receives, Job, JobHandler, JobQueue, LeaseTimings, RetryPolicy, StoreError, Verdict};

/// The message attribute holding the job id.
pub const JOB_ID_ATTRIBUTE: &str = "job-id";
/// SQS's longest visibility timeout.
const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 3600);

/// The job queue port on one SQS queue.
#[derive(Clone)]
pub struct SqsJobQueue {
    client: Client,
    url: String,
}

impl SqsJobQueue {
    pub fn new(config: &SdkConfig, queue_url: impl Into<String>) -> Self {
        Self::from_client(Client::new(config), queue_url)
    }

    pub fn from_client(client: Client, queue_url: impl Into<String>) -> Self {
        SqsJobQueue {
            client,
            url: queue_url.into(),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

#[async_trait]
impl crate::ports::QueueDepth for SqsJobQueue {
    /// `ApproximateNumberOfMessages` plus `ApproximateNumberOfMessagesNotVisible`: one request.
    async fn depth(&self) -> Result<u64, StoreError> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .map_err(store_error)?;
        let attrs = out.attributes();
        let n = |name: QueueAttributeName| -> u64 {
            attrs
                .and_then(|a| a.get(&name))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Ok(n(QueueAttributeName::ApproximateNumberOfMessages)
            + n(QueueAttributeName::ApproximateNumberOfMessagesNotVisible))
    }
}

fn is_fifo(url: &str) -> bool {
    url.ends_with(".fifo")
}

#[async_trait]
impl JobQueue for SqsJobQueue {
    async fn enqueue(&self, job: Job) -> Result<(), StoreError> {
        let body = serde_json::to_string(&job)?;
        let id = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(&job.id)
            .build()
            .map_err(StoreError::other)?;
        let mut req = self
            .client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .message_attributes(JOB_ID_ATTRIBUTE, id);
        if is_fifo(&self.url) {
            req = req.message_group_id(&job.id).message_deduplication_id(&job.id);
        }
        req.send().await.map_err(store_error)?;
        Ok(())
    }
}

/// What [`create_queues_if_missing`] makes.
#[derive(Debug, Clone)]
pub struct QueueSpec {
    /// The queue's name (ending in `.fifo` for a FIFO queue); its dead-letter queue is named
    /// `<name>-dlq` (before the `.fifo`).
    pub name: String,
    /// Receives after which a message moves to the dead-letter queue.
    pub max_receive_count: u32,
    /// How long a received message stays hidden unless the consumer says otherwise.
    pub visibility_timeout: Duration,
}

impl QueueSpec {
    pub fn new(name: impl Into<String>) -> Self {
        QueueSpec {
            name: name.into(),
            max_receive_count: 5,
            visibility_timeout: Duration::from_secs(60),
        }
    }

    fn dlq_name(&self) -> String {
        match self.name.strip_suffix(".fifo") {
            Some(base) => format!("{base}-dlq.fifo"),
            None => format!("{}-dlq", self.name),
        }
    }
}

/// The URLs of a job queue and its dead-letter queue.
#[derive(Debug, Clone)]
pub struct Queues {
    pub url: String,
    pub dlq_url: String,
}

/// The URL of the queue called `name`; `NotFound` when there is none.
pub async fn queue_url(client: &Client, name: &str) -> Result<String, StoreError> {
    match client.get_queue_url().queue_name(name).send().await {
        Ok(out) => out
            .queue_url
            .ok_or_else(|| StoreError::other_msg("GetQueueUrl answered no URL")),
        Err(e) if is_not_found(&e) || is_missing_queue(&e) => Err(StoreError::NotFound),
        Err(e) => Err(store_error(e)),
    }
}

fn is_missing_queue<E: aws_sdk_sqs::error::ProvideErrorMetadata>(
    e: &aws_sdk_sqs::error::SdkError<E, aws_sdk_sqs::config::http::HttpResponse>,
) -> bool {
    super::aws::code(e).is_some_and(|c| c.contains("NonExistentQueue") || c.contains("QueueDoesNotExist"))
}

/// Creates the queue and its dead-letter queue when they do not exist, with a redrive policy
/// from one to the other. An existing queue is used as it is.
pub async fn create_queues_if_missing(client: &Client, spec: &QueueSpec) -> Result<Queues, StoreError> {
    let fifo = is_fifo(&spec.name);
    let create = |name: String, attrs: HashMap<QueueAttributeName, String>| {
        let mut attrs = attrs;
        if fifo {
            attrs.insert(QueueAttributeName::FifoQueue, "true".into());
        }
        client
            .create_queue()
            .queue_name(name)
            .set_attributes(Some(attrs))
            .send()
    };
    let dlq_name = spec.dlq_name();
    let dlq_url = match queue_url(client, &dlq_name).await {
        Ok(url) => url,
        Err(StoreError::NotFound) => {
            let retention = HashMap::from([(QueueAttributeName::MessageRetentionPeriod, "1209600".to_owned())]);
            let out = create(dlq_name.clone(), retention).await.map_err(store_error)?;
            tracing::info!(queue = %dlq_name, "created the dead-letter queue");
            out.queue_url
                .ok_or_else(|| StoreError::other_msg("CreateQueue answered no URL"))?
        }
        Err(e) => return Err(e),
    };
    let url = match queue_url(client, &spec.name).await {
        Ok(url) => url,
        Err(StoreError::NotFound) => {
            let attrs = client
                .get_queue_attributes()
                .queue_url(&dlq_url)
                .attribute_names(QueueAttributeName::QueueArn)
                .send()
                .await
                .map_err(store_error)?;
            let arn = attrs
                .attributes()
                .and_then(|a| a.get(&QueueAttributeName::QueueArn))
                .ok_or_else(|| StoreError::other_msg("the dead-letter queue has no ARN"))?;
            let redrive = serde_json::json!({
                "deadLetterTargetArn": arn,
                "maxReceiveCount": spec.max_receive_count.to_string(),
            });
            let visibility = spec.visibility_timeout.min(MAX_VISIBILITY).as_secs();
            let out = create(
                spec.name.clone(),
                HashMap::from([
                    (QueueAttributeName::RedrivePolicy, redrive.to_string()),
                    (QueueAttributeName::VisibilityTimeout, visibility.to_string()),
                ]),
            )
            .await
            .map_err(store_error)?;
            tracing::info!(queue = %spec.name, "created the job queue");
            out.queue_url
                .ok_or_else(|| StoreError::other_msg("CreateQueue answered no URL"))?
        }
        Err(e) => return Err(e),
    };
    Ok(Queues { url, dlq_url })
}

/// Takes jobs off an SQS queue and runs them (see the module documentation).
#[derive(Clone)]
pub struct SqsPoller {
    client: Client,
    url: String,
    wait: Duration,
    batch: i32,
    policy: RetryPolicy,
    heartbeat: Duration,
}

/// What became of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Done, failed for good, or not a job: deleted.
    Deleted,
    /// Hidden for a backoff; delivered again later, or moved to the dead-letter queue.
    Retried,
}

impl SqsPoller {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        SqsPoller {
            client,
            url: queue_url.into(),
            wait: Duration::from_secs(20),
            batch: 1,
            policy: RetryPolicy::SQS,
            heartbeat: LeaseTimings::JOB_MESSAGE.ttl,
        }
    }

    /// How long one receive waits for a message (long polling, at most 20 s).
    pub fn wait_time(mut self, wait: Duration) -> Self {
        self.wait = wait.min(Duration::from_secs(20));
        self
    }

    /// Messages taken per receive (1–10); they run one after the other.
    pub fn batch(mut self, n: i32) -> Self {
        self.batch = n.clamp(1, 10);
        self
    }

    /// The delay before the first retry, doubled with each receive up to `max`.
    pub fn backoff(mut self, first: Duration, max: Duration) -> Self {
        self.policy.first_backoff = first;
        self.policy.max_backoff = max.min(MAX_VISIBILITY);
        self
    }

    /// How long a running job's message is kept hidden, renewed at half that.
    pub fn heartbeat(mut self, visibility: Duration) -> Self {
        self.heartbeat = visibility.clamp(Duration::from_secs(2), MAX_VISIBILITY);
        self
    }

    /// The retry delay after the `receives`-th delivery.
    #[cfg(test)]
    fn delay(&self, receives: u32) -> Duration {
        self.policy.backoff(attempts_from_receives(receives))
    }

    /// Receives one batch (waiting up to the wait time) and runs it; returns what became of
    /// each message.
    pub async fn poll_once(&self, handler: &dyn JobHandler) -> Result<Vec<Outcome>, StoreError> {
        let messages = self.receive().await?;
        let mut outcomes = Vec::with_capacity(messages.len());
        for m in messages {
            outcomes.push(self.run(handler, m).await?);
        }
        Ok(outcomes)
    }

    async fn receive(&self) -> Result<Vec<Message>, StoreError> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(self.batch)
            .wait_time_seconds(self.wait.as_secs() as i32)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_attribute_names(JOB_ID_ATTRIBUTE)
            .send()
            .await
            .map_err(store_error)?;
        Ok(out.messages.unwrap_or_default())
    }

    async fn set_visibility(&self, receipt: &str, hidden: Duration) -> Result<(), StoreError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .visibility_timeout(hidden.min(MAX_VISIBILITY).as_secs() as i32)
            .send()
            .await
            .map_err(store_error)?;
        Ok(())
    }

    /// Runs one message's job and deletes or hides the message.
    async fn run(&self, handler: &dyn JobHandler, m: Message) -> Result<Outcome, StoreError> {
        let Some(receipt) = m.receipt_handle().map(str::to_owned) else {
            return Err(StoreError::other_msg("a received message has no receipt handle"));
        };
        let receives: u32 = m
            .attributes()
            .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
            .and_then(|n| n.parse().ok())
            .unwrap_or(1);
        let body = m.body().unwrap_or_default().as_bytes();
        let attempts = attempts_from_receives(receives);
        let (job, verdict) = self
            .with_heartbeat(&receipt, self.policy.run(handler, body, attempts, None))
            .await;
        let job_id = job.as_ref().map(|j| j.id.as_str()).or_else(|| {
            m.message_attributes()
                .and_then(|a| a.get(JOB_ID_ATTRIBUTE))
                .and_then(|v| v.string_value())
        });
        let kind = job.as_ref().map(Job::kind_name).unwrap_or_default();
        verdict.log(job_id.or(m.message_id()).unwrap_or("?"), &kind);
        match verdict {
            Verdict::Done | Verdict::Failed(_) | Verdict::Poison(_) => {}
            // visible again at once: the next receive continues the job
            Verdict::Continue => {
                self.set_visibility(&receipt, Duration::ZERO).await?;
                return Ok(Outcome::Retried);
            }
            Verdict::Retry { after, .. } => {
                self.set_visibility(&receipt, after).await?;
                return Ok(Outcome::Retried);
            }
            // the redrive policy moves it to the dead-letter queue at its next receive
            Verdict::GiveUp(_) => {
                self.set_visibility(&receipt, self.policy.max_backoff).await?;
                return Ok(Outcome::Retried);
            }
        }
        self.client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(&receipt)
            .send()
            .await
            .map_err(store_error)?;
        Ok(Outcome::Deleted)
    }

    /// Runs `work`, extending the message's visibility every half heartbeat meanwhile.
    async fn with_heartbeat<T>(&self, receipt: &str, work: impl std::future::Future<Output = T>) -> T {
        tokio::pin!(work);
        let every = self.heartbeat / 2;
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        loop {
            tokio::select! {
                r = &mut work => return r,
                _ = tick.tick() => {
                    if let Err(e) = self.set_visibility(receipt, self.heartbeat).await {
                        tracing::warn!(error = ?e, "could not extend a running job's visibility");
                    }
                }
            }
        }
    }

    /// Starts `workers` polling loops running jobs with `handler` until `stop` turns true. A
    /// job that has started runs to its end.
    pub fn start(
        &self,
        handler: Arc<dyn JobHandler>,
        workers: usize,
        stop: watch::Receiver<bool>,
    ) -> Vec<JoinHandle<()>> {
        (0..workers.max(1))
            .map(|_| {
                let poller = self.clone();
                let handler = handler.clone();
                let mut stop = stop.clone();
                tokio::spawn(async move {
                    loop {
                        if *stop.borrow() {
                            return;
                        }
                        let messages = tokio::select! {
                            r = poller.receive() => r,
                            _ = stop.changed() => return,
                        };
                        let result = match messages {
                            Ok(ms) => {
                                let mut r = Ok(());
                                for m in ms {
                                    if let Err(e) = poller.run(&*handler, m).await {
                                        r = Err(e);
                                    }
                                }
                                r
                            }
                            Err(e) => Err(e),
                        };
                        if let Err(e) = result {
                            tracing::warn!(error = ?e, "the SQS poller failed; trying again shortly");
                            tokio::select! {
                                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                                _ = stop.changed() => return,
                            }
                        }
                    }
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let conf = aws_sdk_sqs::Config::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build();
        let p = SqsPoller::new(Client::from_conf(conf), "u").backoff(Duration::from_secs(10), Duration::from_secs(60));
        assert_eq!(p.delay(1), Duration::from_secs(10));
        assert_eq!(p.delay(2), Duration::from_secs(20));
        assert_eq!(p.delay(3), Duration::from_secs(40));
        assert_eq!(p.delay(4), Duration::from_secs(60));
        assert_eq!(p.delay(1000), Duration::from_secs(60));
        assert_eq!(p.delay(0), Duration::from_secs(10));
    }

    #[test]
    fn dead_letter_names() {
        assert_eq!(QueueSpec::new("jobs").dlq_name(), "jobs-dlq");
        assert_eq!(QueueSpec::new("jobs.fifo").dlq_name(), "jobs-dlq.fifo");
    }
}
