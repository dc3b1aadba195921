//! The embedded table's own tests: a full disk, reopening, expiry and durability.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use redb::backends::FileBackend;

use super::*;

/// A file whose writes fail with "no space left on device" while `full` is set.
#[derive(Debug)]
struct Fillable {
    file: FileBackend,
    full: Arc<AtomicBool>,
}

impl Fillable {
    fn check(&self) -> io::Result<()> {
        if self.full.load(Ordering::SeqCst) {
            Err(io::Error::from(io::ErrorKind::StorageFull))
        } else {
            Ok(())
        }
    }
}

impl redb::StorageBackend for Fillable {
    fn len(&self) -> io::Result<u64> {
        self.file.len()
    }
    fn read(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        self.file.read(offset, len)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        if len > self.file.len()? {
            self.check()?;
        }
        self.file.set_len(len)
    }
    fn sync_data(&self, eventual: bool) -> io::Result<()> {
        self.file.sync_data(eventual)
    }
    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.check()?;
        self.file.write(offset, data)
    }
}

struct Disk {
    table: RedbTable,
    full: Arc<AtomicBool>,
    opens: Arc<AtomicUsize>,
    _dir: tempfile::TempDir,
}

fn disk() -> Disk {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.redb");
    let full = Arc::new(AtomicBool::new(false));
    let opens = Arc::new(AtomicUsize::new(0));
    let (f, o) = (full.clone(), opens.clone());
    let table = RedbTable::with_opener(Box::new(move || {
        o.fetch_add(1, Ordering::SeqCst);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        let file = FileBackend::new(file)?;
        redb::Builder::new().create_with_backend(Fillable { file, full: f.clone() })
    }))
    .unwrap();
    Disk {
        table,
        full,
        opens,
        _dir: dir,
    }
}

async fn value(t: &RedbTable, sk: &str) -> Option<Vec<u8>> {
    t.get("p", sk).await.unwrap().map(|r| r.value)
}

/// Given a unit of work that wrote, When its writes are lost before they were durable (the
/// flush meets a full disk and the handle is reopened), Then the flush fails, and so does
/// every later write and flush of that unit, so it never leaves its later writes without
/// its earlier ones; other units write again once space is freed, and what was durable
/// stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unit_of_work_whose_writes_were_lost_cannot_go_on() {
    let d = disk();
    let t = &d.table;
    t.put("p", "kept", b"k".to_vec(), Cond::Absent).await.unwrap();
    t.flush().await.unwrap();
    crate::ports::write_scope(async {
        t.put("p", "a", b"1".to_vec(), Cond::Absent).await.unwrap();
        assert_eq!(
            value(t, "a").await.as_deref(),
            Some(&b"1"[..]),
            "visible before it is durable"
        );
        d.full.store(true, Ordering::SeqCst);
        let e = t.flush().await.unwrap_err();
        assert!(matches!(e, StoreError::NoSpace(_)), "{e:?}");
        d.full.store(false, Ordering::SeqCst);
        // (a read opens the database again: the last reopen, on the full disk, failed)
        assert_eq!(value(t, "kept").await.as_deref(), Some(&b"k"[..]));
        let opens = d.opens.load(Ordering::SeqCst);
        // refused as the full disk it met, without reopening the (healthy) database again
        let e = t.put("p", "b", b"2".to_vec(), Cond::Absent).await.unwrap_err();
        assert!(matches!(e, StoreError::NoSpace(_)), "{e:?}");
        assert!(t.flush().await.is_err());
        assert_eq!(d.opens.load(Ordering::SeqCst), opens);
    })
    .await;
    assert_eq!(value(t, "a").await, None);
    assert_eq!(value(t, "b").await, None);
    assert_eq!(value(t, "kept").await.as_deref(), Some(&b"k"[..]));
    crate::ports::write_scope(async {
        // a unit that has not written yet flushes nothing and fails nothing
        t.flush().await.unwrap();
        t.put("p", "c", b"3".to_vec(), Cond::Absent).await.unwrap();
        t.flush().await.unwrap();
    })
    .await;
    assert_eq!(value(t, "c").await.as_deref(), Some(&b"3"[..]));
}

/// Writes flushed, or left to the background thread, or pending when the table is
/// dropped, are all in the file when it is opened again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_are_durable_after_a_flush_the_background_thread_or_a_close() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.redb");
    {
        let t = RedbTable::open(&path).unwrap();
        t.put("p", "flushed", b"1".to_vec(), Cond::Absent).await.unwrap();
        t.flush().await.unwrap();
        assert_eq!(
            t.inner.durable.load(Ordering::SeqCst),
            t.inner.written.load(Ordering::SeqCst)
        );
        t.put("p", "background", b"2".to_vec(), Cond::Absent).await.unwrap();
        let written = t.inner.written.load(Ordering::SeqCst);
        for _ in 0..50 {
            if t.inner.durable.load(Ordering::SeqCst) >= written {
                break;
            }
            tokio::time::sleep(FLUSH_EVERY / 4).await;
        }
        assert!(
            t.inner.durable.load(Ordering::SeqCst) >= written,
            "the background thread flushed"
        );
        t.put("p", "closed", b"3".to_vec(), Cond::Absent).await.unwrap();
    }
    // the background thread may still hold the table for a moment
    let t = (0..100)
        .find_map(|_| {
            RedbTable::open(&path).ok().or_else(|| {
                std::thread::sleep(Duration::from_millis(10));
                None
            })
        })
        .unwrap();
    for sk in ["flushed", "background", "closed"] {
        assert!(t.get("p", sk).await.unwrap().is_some(), "{sk}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_and_they_work_again_once_space_is_freed() {
    let d = disk();
    let t = &d.table;
    let one = t.put("p", "a", b"one".to_vec(), Cond::Any).await.unwrap();
    t.flush().await.unwrap();

    // When the disk fills up, a write is refused as NoSpace and nothing of it is committed
    d.full.store(true, Ordering::SeqCst);
    let e = t.put("p", "a", b"two".to_vec(), Cond::Any).await.unwrap_err();
    assert!(matches!(e, StoreError::NoSpace(_)), "{e:?}");
    let e = t.put("p", "b", b"new".to_vec(), Cond::Absent).await.unwrap_err();
    assert!(matches!(e, StoreError::NoSpace(_)), "{e:?}");
    assert!(
        d.opens.load(Ordering::SeqCst) > 1,
        "the database was reopened after the I/O error"
    );

    // Then, once space is freed, the same handle reads and writes again, without a restart
    d.full.store(false, Ordering::SeqCst);
    assert_eq!(value(t, "a").await.as_deref(), Some(&b"one"[..]));
    assert_eq!(value(t, "b").await, None);
    t.put("p", "b", b"new".to_vec(), Cond::Absent).await.unwrap();
    t.put("p", "a", b"two".to_vec(), Cond::Rev(one)).await.unwrap();
    assert_eq!(value(t, "a").await.as_deref(), Some(&b"two"[..]));
    assert_eq!(value(t, "b").await.as_deref(), Some(&b"new"[..]));
    let rows = t.query("p", Query::default()).await.unwrap();
    assert_eq!(rows.iter().map(|r| r.sk.as_str()).collect::<Vec<_>>(), ["a", "b"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_previous_io_error_is_repaired_by_one_reopen_for_every_caller() {
    let d = disk();
    let t = &d.table;
    t.put("p", "a", b"one".to_vec(), Cond::Any).await.unwrap();
    t.flush().await.unwrap();
    let generation = t.inner.handle.read().unwrap().generation;

    // Given a handle redb has marked as failed (an I/O error it has not been reopened after)
    d.full.store(true, Ordering::SeqCst);
    {
        let h = t.inner.handle.read().unwrap();
        let db = h.db.as_ref().unwrap();
        let tx = db.begin_write().unwrap();
        tx.open_table(ITEMS)
            .unwrap()
            .insert(("p", "x"), encode(1, None, b"x").as_slice())
            .unwrap();
        assert!(tx.commit().is_err());
        let e = db.begin_write().map(|_| ()).unwrap_err();
        assert!(matches!(redb::Error::from(e), redb::Error::PreviousIo));
    }
    d.full.store(false, Ordering::SeqCst);
    let opens = d.opens.load(Ordering::SeqCst);

    // When several callers meet it at once, the database is reopened once and each
    // caller's operation runs again and succeeds
    let calls = (0..8).map(|i| {
        let t = t.clone();
        tokio::spawn(async move { t.put("p", &format!("k{i}"), vec![i], Cond::Absent).await })
    });
    for c in futures::future::join_all(calls).await {
        c.unwrap().unwrap();
    }
    assert_eq!(d.opens.load(Ordering::SeqCst), opens + 1);
    assert_eq!(t.inner.handle.read().unwrap().generation, generation + 1);
    // the failed transaction was not committed; what was durable before it is there
    assert_eq!(value(t, "x").await, None);
    assert_eq!(value(t, "a").await.as_deref(), Some(&b"one"[..]));
    assert_eq!(t.query("p", Query::default()).await.unwrap().len(), 9);

    // A reopen asked for an older generation finds the work done
    t.inner.reopen(generation).unwrap();
    assert_eq!(d.opens.load(Ordering::SeqCst), opens + 1);
}

/// The sweep removes expired items (and only those), and what it removed stays gone
/// after a reopen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweep_removes_expired_items() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.redb");
    let now = crate::ports::unix_now();
    let gone = {
        let t = RedbTable::open(&path).unwrap();
        let gone = t
            .put_expiring("p", "gone", b"1".to_vec(), Cond::Any, Some(now - 1))
            .await
            .unwrap();
        t.put_expiring("p", "later", b"2".to_vec(), Cond::Any, Some(now + 3600))
            .await
            .unwrap();
        t.put("p", "kept", b"3".to_vec(), Cond::Any).await.unwrap();
        // expired, then written again without an expiry: no longer due
        t.put_expiring("p", "back", b"4".to_vec(), Cond::Any, Some(now - 1))
            .await
            .unwrap();
        t.put("p", "back", b"5".to_vec(), Cond::Absent).await.unwrap();
        assert_eq!(t.sweep_expired().await.unwrap(), 1);
        assert_eq!(t.sweep_expired().await.unwrap(), 0);
        gone
    };
    let t = RedbTable::open(&path).unwrap();
    let rows = t.query("p", Query::prefix("")).await.unwrap();
    let sks: Vec<_> = rows.iter().map(|r| r.sk.as_str()).collect();
    assert_eq!(sks, ["back", "kept", "later"]);
    // written again after the sweep: a fresh item, at a revision it never had
    assert_ne!(t.put("p", "gone", b"6".to_vec(), Cond::Absent).await.unwrap(), gone + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.redb");
    {
        let t = RedbTable::open(&path).unwrap();
        t.put("p", "s", b"v".to_vec(), Cond::Absent).await.unwrap();
    }
    let t = RedbTable::open(&path).unwrap();
    assert_eq!(t.get("p", "s").await.unwrap().unwrap().value, b"v");
}
