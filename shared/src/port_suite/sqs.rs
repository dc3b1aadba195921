//! The SQS job queue's cases: delivery, retries and the dead-letter queue, FIFO dedupe, poison
//! messages, and the timings SQS promises (a retried job stays hidden for its backoff, a running
//! job's visibility is extended, a receive waits for a message). Each case takes an SQS client
//! and makes queues of its own, with unique names, so cases run in parallel on one server.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_sqs::Client;

use crate::adapters::sqs_queue::{create_queues_if_missing, Outcome, QueueSpec, SqsJobQueue, SqsPoller};
use crate::ports::{Job, JobError, JobHandler, JobQueue, Table};
use crate::store::{Repository, RepositoryKind, Store};

use super::job::{job, wait_for_version, VersionJob};
use super::moto::unique;

/// Records each delivery's attempt number and always asks to be retried.
struct Never(Mutex<Vec<u32>>);

#[async_trait]
impl JobHandler for Never {
    async fn handle(&self, job: &Job) -> Result<(), JobError> {
        self.0.lock().unwrap().push(job.attempts);
        Err(JobError::Retry("always".into()))
    }
}

/// Succeeds at once.
struct Done;

#[async_trait]
impl JobHandler for Done {
    async fn handle(&self, _: &Job) -> Result<(), JobError> {
        Ok(())
    }
}

/// Polls until `done` says so, at most `rounds` receives; returns the outcomes seen.
async fn poll_until(
    p: &SqsPoller,
    h: &dyn JobHandler,
    rounds: usize,
    done: impl Fn(&[Outcome]) -> bool,
) -> Vec<Outcome> {
    let mut seen = Vec::new();
    for _ in 0..rounds {
        seen.extend(p.poll_once(h).await.unwrap());
        if done(&seen) {
            return seen;
        }
    }
    panic!("the queue did not get there in {rounds} receives: {seen:?}");
}

/// A job that fails once is delivered again and makes one version; a redelivered finished job
/// makes no second one (invariant 4); a job that always fails goes to the dead-letter queue
/// after `maxReceiveCount` receives; running pollers pick up new jobs and stop when told.
pub async fn jobs(sqs: &Client, table: Arc<dyn Table>) {
    let store = Store::new(table);
    let repo = Repository::new("jobs/repo", RepositoryKind::Push);
    store.create_repository(&repo).await.unwrap();
    let spec = QueueSpec {
        max_receive_count: 2,
        visibility_timeout: Duration::from_secs(30),
        ..QueueSpec::new(unique("jobs"))
    };
    let queues = create_queues_if_missing(sqs, &spec).await.unwrap();
    let again = create_queues_if_missing(sqs, &spec).await.unwrap();
    assert_eq!(
        (again.url.as_str(), again.dlq_url.as_str()),
        (queues.url.as_str(), queues.dlq_url.as_str())
    );
    let q = SqsJobQueue::from_client(sqs.clone(), &queues.url);
    // retries come back at once
    let poller = SqsPoller::new(sqs.clone(), &queues.url)
        .wait_time(Duration::from_secs(1))
        .backoff(Duration::ZERO, Duration::ZERO);

    let h = VersionJob::new(&store, repo.id, 1);
    q.enqueue(job("j1", 1)).await.unwrap();
    let seen = poll_until(&poller, &h, 10, |s| s.contains(&Outcome::Deleted)).await;
    assert_eq!(seen, [Outcome::Retried, Outcome::Deleted]);
    assert_eq!(h.runs.load(Ordering::SeqCst), 2);
    assert_eq!(store.repository(repo.id).await.unwrap().unwrap().latest_version, 1);

    q.enqueue(job("j1", 1)).await.unwrap();
    poll_until(&poller, &h, 10, |s| s.contains(&Outcome::Deleted)).await;
    assert_eq!(h.runs.load(Ordering::SeqCst), 3);
    assert_eq!(store.repository(repo.id).await.unwrap().unwrap().latest_version, 1);

    let never = Never(Mutex::new(Vec::new()));
    q.enqueue(job("doomed", 0)).await.unwrap();
    for _ in 0..10 {
        if poller.poll_once(&never).await.unwrap().is_empty() {
            break;
        }
    }
    assert_eq!(*never.0.lock().unwrap(), [0, 1], "attempts count the deliveries before");
    assert!(poller.poll_once(&never).await.unwrap().is_empty());
    let dead = sqs
        .receive_message()
        .queue_url(&queues.dlq_url)
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap();
    let dead = dead.messages();
    assert_eq!(dead.len(), 1);
    let dead_job: Job = serde_json::from_str(dead[0].body().unwrap()).unwrap();
    assert_eq!(dead_job.id, "doomed");

    let h2 = Arc::new(VersionJob::new(&store, repo.id, 0));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let workers = poller.start(h2, 2, stop_rx);
    q.enqueue(job("j3", 3)).await.unwrap();
    wait_for_version(&store, repo.id, 2, Duration::from_millis(50)).await;
    assert_eq!(store.repository(repo.id).await.unwrap().unwrap().latest_version, 2);
    stop_tx.send(true).unwrap();
    for w in workers {
        tokio::time::timeout(Duration::from_secs(5), w).await.unwrap().unwrap();
    }
}

/// On a FIFO queue the job id deduplicates: a pending id enqueued again is one message.
pub async fn fifo_dedupes(sqs: &Client) {
    let queues = create_queues_if_missing(sqs, &QueueSpec::new(format!("{}.fifo", unique("fifo"))))
        .await
        .unwrap();
    assert!(queues.dlq_url.ends_with("-dlq.fifo"));
    let q = SqsJobQueue::from_client(sqs.clone(), &queues.url);
    q.enqueue(job("same", 1)).await.unwrap();
    q.enqueue(job("same", 1)).await.unwrap();
    let poller = SqsPoller::new(sqs.clone(), &queues.url)
        .wait_time(Duration::from_secs(1))
        .batch(10);
    assert_eq!(poller.poll_once(&Done).await.unwrap(), [Outcome::Deleted]);
    assert!(poller.poll_once(&Done).await.unwrap().is_empty());
}

/// A message that is not a job is deleted at once (it can never run), not retried into the
/// dead-letter queue.
pub async fn poison_is_dropped(sqs: &Client) {
    struct Unreachable;
    #[async_trait]
    impl JobHandler for Unreachable {
        async fn handle(&self, _: &Job) -> Result<(), JobError> {
            panic!("poison reached the handler")
        }
    }
    let queues = create_queues_if_missing(sqs, &QueueSpec::new(unique("poison")))
        .await
        .unwrap();
    for body in ["not a job", r#"{"id": "u", "kind": "no-such-kind", "payload": {}}"#] {
        sqs.send_message()
            .queue_url(&queues.url)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }
    let poller = SqsPoller::new(sqs.clone(), &queues.url)
        .wait_time(Duration::from_secs(1))
        .batch(10);
    let seen = poll_until(&poller, &Unreachable, 5, |s| s.len() == 2).await;
    assert_eq!(seen, [Outcome::Deleted, Outcome::Deleted]);
    assert!(poller.poll_once(&Unreachable).await.unwrap().is_empty());
}

/// A job that asks to be retried stays hidden for its backoff, then comes back with one more
/// attempt.
pub async fn a_retried_job_waits_out_its_backoff(sqs: &Client) {
    let queues = create_queues_if_missing(sqs, &QueueSpec::new(unique("backoff")))
        .await
        .unwrap();
    let q = SqsJobQueue::from_client(sqs.clone(), &queues.url);
    let backoff = Duration::from_secs(3);
    let poller = SqsPoller::new(sqs.clone(), &queues.url)
        .wait_time(Duration::from_secs(1))
        .backoff(backoff, backoff);
    let never = Never(Mutex::new(Vec::new()));
    q.enqueue(job("later", 0)).await.unwrap();

    // Given a job that failed and was hidden for 3 s
    poll_until(&poller, &never, 5, |s| s == [Outcome::Retried]).await;
    let hidden_at = Instant::now();
    // When the queue is polled at once, Then it is not there
    assert!(poller.poll_once(&never).await.unwrap().is_empty());
    // and it comes back once the backoff is over, with one more attempt
    poll_until(&poller, &never, 15, |s| !s.is_empty()).await;
    let after = hidden_at.elapsed();
    assert!(after >= backoff - Duration::from_millis(500), "back after {after:?}");
    assert!(after < backoff * 4, "back after {after:?}");
    assert_eq!(*never.0.lock().unwrap(), [0, 1]);
}

/// A job that runs longer than the queue's visibility timeout is not delivered to a second
/// consumer meanwhile: the poller keeps extending the message's visibility.
pub async fn a_running_job_is_not_delivered_twice(sqs: &Client) {
    struct Slow(Arc<tokio::sync::Notify>);
    #[async_trait]
    impl JobHandler for Slow {
        async fn handle(&self, _: &Job) -> Result<(), JobError> {
            self.0.notify_one();
            tokio::time::sleep(Duration::from_secs(6)).await;
            Ok(())
        }
    }
    let spec = QueueSpec {
        visibility_timeout: Duration::from_secs(2),
        ..QueueSpec::new(unique("heartbeat"))
    };
    let queues = create_queues_if_missing(sqs, &spec).await.unwrap();
    let q = SqsJobQueue::from_client(sqs.clone(), &queues.url);
    let poller = SqsPoller::new(sqs.clone(), &queues.url)
        .wait_time(Duration::from_secs(1))
        .heartbeat(Duration::from_secs(2));
    q.enqueue(job("long", 0)).await.unwrap();

    // Given a job that runs three times the queue's visibility timeout
    let started = Arc::new(tokio::sync::Notify::new());
    let running = {
        let (poller, slow) = (poller.clone(), Slow(started.clone()));
        tokio::spawn(async move { poll_until(&poller, &slow, 5, |s| !s.is_empty()).await })
    };
    started.notified().await;
    // When another consumer polls all that time, Then it never gets the message
    let other = SqsPoller::new(sqs.clone(), &queues.url).wait_time(Duration::from_secs(1));
    let t = Instant::now();
    while !running.is_finished() {
        assert!(other.poll_once(&Done).await.unwrap().is_empty(), "delivered twice");
        assert!(t.elapsed() < Duration::from_secs(30), "the job never ended");
    }
    assert_eq!(running.await.unwrap(), [Outcome::Deleted]);
    assert!(other.poll_once(&Done).await.unwrap().is_empty());
}

/// A receive waits up to its wait time for a message (long polling) and returns as soon as
/// one comes.
pub async fn a_receive_waits_for_a_message(sqs: &Client) {
    let queues = create_queues_if_missing(sqs, &QueueSpec::new(unique("wait")))
        .await
        .unwrap();
    let poller = SqsPoller::new(sqs.clone(), &queues.url).wait_time(Duration::from_secs(2));
    // on an empty queue the receive waits its whole wait time
    let t = Instant::now();
    assert!(poller.poll_once(&Done).await.unwrap().is_empty());
    assert!(t.elapsed() >= Duration::from_millis(1500), "{:?}", t.elapsed());

    // a message sent meanwhile ends the wait
    let q = SqsJobQueue::from_client(sqs.clone(), &queues.url);
    let poller = poller.wait_time(Duration::from_secs(20));
    let send = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        q.enqueue(job("soon", 0)).await.unwrap();
    });
    let t = Instant::now();
    assert_eq!(poller.poll_once(&Done).await.unwrap(), [Outcome::Deleted]);
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    send.await.unwrap();
}
