//! Berth's sync worker on AWS Lambda: SQS batches of jobs, with partial batch failures.
//!
//! Configuration → clients built once at cold start → handler → `lambda_runtime::run`.

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    berth::lambda::init_tracing();
    let cfg = berth::lambda::config_from_env()?;
    let app = berth::lambda::build(&cfg, berth::lambda::Role::Worker).await?;
    // this execution environment is one worker; it heartbeats while it runs a job
    let beats = app.app.heartbeats(vec![berth::lambda::worker_name()]);
    let worker = beats.attend(app.app.worker());
    // the EMF documents of each batch's sync runs and upstream requests, written after it
    let emitter = berth::lambda::Emitter::new(&app.app);
    let (worker, queue, emitter) = (&worker, &app.queue, &emitter);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let deadline = i64::try_from(event.context.deadline).ok();
        let response = berth::lambda::handle_sqs(worker.as_ref(), queue.as_ref(), event.payload, deadline).await;
        emitter.flush().await;
        Ok::<_, lambda_runtime::Error>(response)
    }))
    .await
}
