//! The store's retention over the table port: upload sessions expire after their start,
//! finished tasks are removed once past their retention when new tasks are made, and nothing
//! else goes; sync checkpoints (expiring, in
//! parts) round-trip.

use std::time::Duration;

use crate::ports::StoreError;
use crate::store::{Retention, Store, Task, TaskState, UploadSession};

use super::Adapter;

fn upload() -> UploadSession {
    UploadSession {
        id: uuid::Uuid::new_v4(),
        repository: uuid::Uuid::new_v4(),
        created: chrono::Utc::now(),
    }
}

async fn finish(store: &Store, id: uuid::Uuid) {
    store
        .update_task::<StoreError>(id, |t| {
            t.state = TaskState::Completed;
            Ok(())
        })
        .await
        .unwrap();
}

/// A finished task written under the default retention.
async fn finished_task(store: &Store) -> Task {
    let task = Task::new("berth.sync");
    store.create_task(&task).await.unwrap();
    finish(store, task.id).await;
    task
}

/// With the default retention, uploads and finished tasks are kept.
pub async fn the_default_keeps_everything(a: &impl Adapter) {
    let keep = Store::new(a.table().await);
    let u = upload();
    keep.create_upload(&u).await.unwrap();
    assert_eq!(keep.upload(u.id).await.unwrap().map(|x| x.id), Some(u.id));
    let task = finished_task(&keep).await;
    assert_eq!(keep.task(task.id).await.unwrap().unwrap().state, TaskState::Completed);
}

/// With no retention at all, an upload is gone at once, and finished tasks are gone (from
/// reads, from the list and from its count) once the next task is made; a running task stays.
pub async fn no_retention_forgets(a: &impl Adapter) {
    let t = a.table().await;
    let task = finished_task(&Store::new(t.clone())).await;
    let forget = Store::with_retention(
        t,
        Retention {
            upload: Duration::ZERO,
            tasks: Some(Duration::ZERO),
        },
    );
    let u = upload();
    forget.create_upload(&u).await.unwrap();
    assert!(
        forget.upload(u.id).await.unwrap().is_none(),
        "an upload past its retention is gone"
    );
    let running = Task::new("berth.sync");
    forget.create_task(&running).await.unwrap();
    forget
        .update_task::<StoreError>(running.id, |t| {
            t.state = TaskState::Running;
            Ok(())
        })
        .await
        .unwrap();
    assert!(forget.task(task.id).await.unwrap().is_none(), "purged by the next task");
    assert!(forget.task(running.id).await.unwrap().is_some(), "a running task stays");
    finish(&forget, running.id).await;
    let next = Task::new("berth.sync");
    forget.create_task(&next).await.unwrap();
    assert!(
        forget.task(running.id).await.unwrap().is_none(),
        "a finished task past its retention is gone"
    );
    let listed: Vec<_> = forget.tasks().await.unwrap().into_iter().map(|t| t.id).collect();
    assert_eq!(listed, [next.id], "the list skips it too");
    let page = forget.task_range(crate::store::Page::ALL).await.unwrap();
    assert_eq!(page.count, 1, "and its count");
    assert_eq!(page.items.iter().map(|t| t.id).collect::<Vec<_>>(), [next.id]);
}

fn forever(a: std::sync::Arc<dyn crate::ports::Table>) -> Store {
    Store::with_retention(
        a,
        Retention {
            upload: Duration::ZERO,
            tasks: None,
        },
    )
}

/// Tasks kept forever stay once finished.
pub async fn tasks_kept_forever(a: &impl Adapter) {
    let forever = forever(a.table().await);
    let kept = finished_task(&forever).await;
    assert!(forever.task(kept.id).await.unwrap().is_some());
}

/// Sync checkpoints: in parts, replaced whole, removed.
pub async fn checkpoints(a: &impl Adapter) {
    let forever = forever(a.table().await);
    let task = uuid::Uuid::new_v4();
    assert_eq!(forever.checkpoint(task).await.unwrap(), None);
    let big: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
    forever.put_checkpoint(task, &big).await.unwrap();
    assert_eq!(forever.checkpoint(task).await.unwrap().as_deref(), Some(&big[..]));
    forever.put_checkpoint(task, b"small").await.unwrap();
    assert_eq!(forever.checkpoint(task).await.unwrap().as_deref(), Some(&b"small"[..]));
    forever.delete_checkpoint(task).await.unwrap();
    assert_eq!(forever.checkpoint(task).await.unwrap(), None);
    forever.delete_checkpoint(task).await.unwrap();
}
