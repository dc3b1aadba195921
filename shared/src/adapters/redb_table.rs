//! The table port on redb: one redb table keyed by `(pk, sk)`, each value prefixed with its
//! 8-byte revision. Writes run in their own transaction on the blocking pool; redb serializes
//! writers, which makes each conditional write atomic. Reads use MVCC snapshots.
//!
//! An expiring item has the top bit of its revision word set and its expiry (8 bytes, Unix
//! seconds) after it, and an entry in the `expiry` index, which [`RedbTable::sweep_expired`]
//! walks to remove what has expired. Reads skip expired items before the sweep gets to them.
//!
//! After an I/O error (a full disk, say) redb refuses every later transaction with
//! `PreviousIo` until the file is opened again, which repairs it. So an operation that fails
//! on I/O closes and reopens the database and runs once more; callers that meet the same
//! failure wait for that one reopen and then retry theirs. A write transaction that failed was
//! not committed, and the repair brings back the last committed state. Running out of space is
//! answered as [`StoreError::NoSpace`], and writes work again once space is freed.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::time::Duration;

use async_trait::async_trait;
use redb::{Database, Durability, ReadableTable, TableDefinition, WriteTransaction};

use crate::ports::durability::{note_write, scope_state, ScopeState};
use crate::ports::{
    check_cond, check_transact, expired, next_rev, query_matches, unix_now, Cond, Query, Row, StoreError, Table, Write,
    WriteOp,
};

/// How often the background thread makes pending writes durable.
pub const FLUSH_EVERY: Duration = Duration::from_millis(200);

const ITEMS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("items");
/// `(expires_at, pk, sk)` of every expiring item.
const EXPIRY: TableDefinition<(u64, &str, &str), ()> = TableDefinition::new("expiry");

/// Set in the revision word of an item that carries an expiry.
const EXPIRES: u64 = 1 << 63;

/// The embedded metadata table.
#[derive(Clone)]
pub struct RedbTable {
    inner: Arc<Inner>,
}

/// Opens the database file: at start, and again after an I/O error.
type Opener = Box<dyn Fn() -> Result<Database, redb::DatabaseError> + Send + Sync>;

struct Inner {
    open: Opener,
    handle: RwLock<Handle>,
    /// Writes committed so far (each without an fsync).
    written: AtomicU64,
    /// How many of them are durable (or were lost by a reopen: nothing to flush).
    durable: AtomicU64,
    /// Bumped by each reopen that lost writes not yet durable.
    lossy_reopens: AtomicU64,
    /// Whether the last failure that reopened the database was a full disk.
    full_disk: AtomicBool,
    /// Held while a durable commit is made.
    flushing: Mutex<()>,
}

/// The open database (`None` while a reopen has failed) and how many times it was reopened.
/// Operations hold the lock for reading; a reopen holds it for writing, so it starts once the
/// operations in flight are done, and the old handle is closed before the file is opened again
/// (redb locks the file).
struct Handle {
    db: Option<Database>,
    generation: u64,
}

fn err(e: impl Into<redb::Error>) -> StoreError {
    match e.into() {
        redb::Error::Io(io) if StoreError::io_is_out_of_space(&io) => StoreError::NoSpace(Box::new(io)),
        e => StoreError::other(e),
    }
}

/// Whether the error came from a failed I/O, after which redb needs the file reopened.
fn needs_reopen(e: &StoreError) -> bool {
    match e {
        StoreError::NoSpace(_) => true,
        StoreError::Other(source) => matches!(
            source.downcast_ref::<redb::Error>(),
            Some(redb::Error::Io(_) | redb::Error::PreviousIo)
        ),
        _ => false,
    }
}

impl Inner {
    /// Runs `f` on the database. When it fails on I/O, reopens the database and runs `f` once
    /// more; when that fails too, reopens again (so the next caller finds a usable handle) and
    /// returns the error.
    fn run<T>(&self, f: impl Fn(&Database) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let mut last = None;
        for _ in 0..2 {
            let (generation, result) = {
                let h = self.handle.read().unwrap_or_else(PoisonError::into_inner);
                (h.generation, h.db.as_ref().map(&f))
            };
            let failure = match result {
                Some(Ok(v)) => return Ok(v),
                Some(Err(e)) if !needs_reopen(&e) => return Err(e),
                Some(Err(e)) => {
                    tracing::warn!(error = ?e, "metadata database I/O failed; reopening it");
                    Some(e)
                }
                None => None,
            };
            if let Some(f) = &failure {
                self.full_disk
                    .store(matches!(f, StoreError::NoSpace(_)), Ordering::SeqCst);
            }
            if let Err(e) = self.reopen(generation) {
                // the operation's own error says more than the reopen's
                return Err(failure.unwrap_or(e));
            }
            last = failure;
        }
        Err(last.unwrap_or_else(|| StoreError::other_msg("the metadata database could not be reopened")))
    }

    /// Closes and reopens the database, unless someone else did since `seen`.
    fn reopen(&self, seen: u64) -> Result<(), StoreError> {
        let mut h = self.handle.write().unwrap_or_else(PoisonError::into_inner);
        if h.generation != seen && h.db.is_some() {
            return Ok(());
        }
        h.db = None;
        // what was committed without an fsync is gone with the old handle
        let written = self.written.load(Ordering::SeqCst);
        if self.durable.swap(written, Ordering::SeqCst) < written {
            self.lossy_reopens.fetch_add(1, Ordering::SeqCst);
            tracing::warn!("the writes not yet durable were lost with the failed database handle");
        }
        match (self.open)() {
            Ok(db) => {
                h.db = Some(db);
                h.generation += 1;
                tracing::info!(generation = h.generation, "reopened the metadata database");
                Ok(())
            }
            Err(e) => {
                let e = err(e);
                tracing::error!(error = ?e, "reopening the metadata database failed");
                Err(e)
            }
        }
    }
}

impl Inner {
    /// Makes every write committed before the call durable: one fsync'd commit, unless one that
    /// started after them already ran. Blocking.
    fn flush(&self) -> Result<(), StoreError> {
        let target = self.written.load(Ordering::SeqCst);
        if self.durable.load(Ordering::SeqCst) >= target {
            return Ok(());
        }
        let _one = self.flushing.lock().unwrap_or_else(PoisonError::into_inner);
        if self.durable.load(Ordering::SeqCst) >= target {
            return Ok(());
        }
        let upto = self.written.load(Ordering::SeqCst);
        let reopens = self.lossy_reopens.load(Ordering::SeqCst);
        self.run(|db| {
            let mut tx = db.begin_write().map_err(err)?;
            tx.set_durability(Durability::Immediate);
            tx.commit().map_err(err)
        })?;
        if self.lossy_reopens.load(Ordering::SeqCst) != reopens {
            return Err(self.lost());
        }
        self.durable.fetch_max(upto, Ordering::SeqCst);
        Ok(())
    }

    /// Refuses a write or flush of a scope that wrote before a reopen lost writes.
    fn check_scope(&self, scope: ScopeState) -> Result<(), StoreError> {
        match scope {
            ScopeState::Wrote(g) if g != self.lossy_reopens.load(Ordering::SeqCst) => Err(self.lost()),
            _ => Ok(()),
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Err(e) = self.flush() {
            tracing::error!(error = ?e, "the last writes could not be made durable at close");
        }
    }
}

/// Makes pending writes durable every [`FLUSH_EVERY`] until the table is dropped.
fn flush_in_background(inner: Weak<Inner>) {
    loop {
        std::thread::sleep(FLUSH_EVERY);
        let Some(inner) = inner.upgrade() else { return };
        if let Err(e) = inner.flush() {
            tracing::warn!(error = ?e, "making pending metadata writes durable failed");
        }
    }
}

impl Inner {
    /// What a scope whose writes were lost gets: `NoSpace` when a full disk lost them.
    fn lost(&self) -> StoreError {
        if self.full_disk.load(Ordering::SeqCst) {
            StoreError::NoSpace(Box::new(std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                "the disk filled up before this operation's metadata writes were durable; none of them is kept",
            )))
        } else {
            StoreError::other_msg(
                "the metadata database was reopened after an I/O error before this operation's writes were \
                 durable; none of them is kept, try again",
            )
        }
    }
}

/// A write transaction that commits without an fsync (see the module's documentation).
fn begin(db: &Database) -> Result<WriteTransaction, StoreError> {
    let mut tx = db.begin_write().map_err(err)?;
    tx.set_durability(Durability::None);
    Ok(tx)
}

fn word(raw: &[u8], at: usize) -> Result<u64, StoreError> {
    let bytes: [u8; 8] = raw
        .get(at..at + 8)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| StoreError::other_msg("corrupt item: shorter than its header"))?;
    Ok(u64::from_le_bytes(bytes))
}

/// An item's revision, expiry and the offset of its value.
fn header(raw: &[u8]) -> Result<(u64, Option<u64>, usize), StoreError> {
    let w = word(raw, 0)?;
    if w & EXPIRES == 0 {
        Ok((w, None, 8))
    } else {
        Ok((w & !EXPIRES, Some(word(raw, 8)?), 16))
    }
}

/// The item as a row, or `None` when it has expired at `now`.
fn live_row(sk: &str, raw: &[u8], now: u64) -> Result<Option<Row>, StoreError> {
    let (rev, exp, at) = header(raw)?;
    Ok((!expired(exp, now)).then(|| Row {
        sk: sk.to_owned(),
        rev,
        value: raw[at..].to_vec(),
    }))
}

fn encode(rev: u64, expires_at: Option<u64>, value: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(16 + value.len());
    match expires_at {
        None => buf.extend_from_slice(&rev.to_le_bytes()),
        Some(at) => {
            buf.extend_from_slice(&(rev | EXPIRES).to_le_bytes());
            buf.extend_from_slice(&at.to_le_bytes());
        }
    }
    buf.extend_from_slice(value);
    buf
}

type Items<'t> = redb::Table<'t, (&'static str, &'static str), &'static [u8]>;

/// A stored item's revision and expiry.
type Stored = Option<(u64, Option<u64>)>;

/// The stored item's revision and expiry, and its revision if it is live at `now`.
fn current(t: &Items, pk: &str, sk: &str, now: u64) -> Result<(Stored, Option<u64>), StoreError> {
    let Some(v) = t.get((pk, sk)).map_err(err)? else {
        return Ok((None, None));
    };
    let (rev, exp, _) = header(v.value())?;
    Ok((Some((rev, exp)), (!expired(exp, now)).then_some(rev)))
}

impl RedbTable {
    /// Opens (or creates) the database file.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let path = path.to_owned();
        Self::with_opener(Box::new(move || Database::create(&path)))
    }

    fn with_opener(open: Opener) -> Result<Self, StoreError> {
        let db = open().map_err(err)?;
        let tx = db.begin_write().map_err(err)?;
        tx.open_table(ITEMS).map_err(err)?;
        tx.open_table(EXPIRY).map_err(err)?;
        tx.commit().map_err(err)?;
        let inner = Arc::new(Inner {
            open,
            handle: RwLock::new(Handle {
                db: Some(db),
                generation: 0,
            }),
            written: AtomicU64::new(0),
            durable: AtomicU64::new(0),
            lossy_reopens: AtomicU64::new(0),
            full_disk: AtomicBool::new(false),
            flushing: Mutex::new(()),
        });
        let weak = Arc::downgrade(&inner);
        std::thread::Builder::new()
            .name("berth-flush".into())
            .spawn(move || flush_in_background(weak))
            .map_err(|e| StoreError::other_msg(format!("cannot start the flush thread: {e}")))?;
        Ok(RedbTable { inner })
    }

    /// Removes the items that have expired; returns how many.
    pub async fn sweep_expired(&self) -> Result<usize, StoreError> {
        self.write(|db| {
            let now = unix_now();
            let tx = begin(db)?;
            let n = {
                let mut items = tx.open_table(ITEMS).map_err(err)?;
                let mut expiry = tx.open_table(EXPIRY).map_err(err)?;
                let due: Vec<(u64, String, String)> = expiry
                    .range((0, "", "")..=(now, "\u{10FFFF}", "\u{10FFFF}"))
                    .map_err(err)?
                    .map(|e| {
                        e.map(|(k, _)| {
                            let (at, pk, sk) = k.value();
                            (at, pk.to_owned(), sk.to_owned())
                        })
                    })
                    .collect::<Result<_, _>>()
                    .map_err(err)?;
                for (at, pk, sk) in &due {
                    expiry.remove((*at, pk.as_str(), sk.as_str())).map_err(err)?;
                    if let (Some((_, Some(exp))), None) = current(&items, pk, sk, now)? {
                        if exp == *at {
                            items.remove((pk.as_str(), sk.as_str())).map_err(err)?;
                        }
                    }
                }
                due.len()
            };
            tx.commit().map_err(err)?;
            Ok(n)
        })
        .await
    }

    /// Runs a write transaction on the blocking pool, for the current write scope: refused when
    /// the scope wrote before a reopen lost writes; noted in the scope when it commits.
    async fn write<T: Send + 'static>(
        &self,
        f: impl Fn(&Database) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = self.inner.clone();
        let scope = scope_state();
        let (v, generation) = tokio::task::spawn_blocking(move || {
            inner.run(|db| {
                // checked under the handle's read lock, so no reopen comes between it and the
                // commit; a refusal is no I/O failure (the inner result), so it reopens nothing
                if let Err(e) = inner.check_scope(scope) {
                    return Ok(Err(e));
                }
                let v = f(db)?;
                inner.written.fetch_add(1, Ordering::SeqCst);
                Ok(Ok((v, inner.lossy_reopens.load(Ordering::SeqCst))))
            })
        })
        .await
        .map_err(|e| StoreError::other_msg(format!("blocking task failed: {e}")))???;
        note_write(generation);
        Ok(v)
    }
}

#[async_trait]
impl Table for RedbTable {
    async fn get(&self, pk: &str, sk: &str) -> Result<Option<Row>, StoreError> {
        self.inner.run(|db| {
            let tx = db.begin_read().map_err(err)?;
            let t = tx.open_table(ITEMS).map_err(err)?;
            match t.get((pk, sk)).map_err(err)? {
                None => Ok(None),
                Some(v) => live_row(sk, v.value(), unix_now()),
            }
        })
    }

    async fn put_expiring(
        &self,
        pk: &str,
        sk: &str,
        value: Vec<u8>,
        cond: Cond,
        expires_at: Option<u64>,
    ) -> Result<u64, StoreError> {
        let (pk, sk) = (pk.to_owned(), sk.to_owned());
        self.write(move |db| {
            let tx = begin(db)?;
            let rev = {
                let mut t = tx.open_table(ITEMS).map_err(err)?;
                let mut expiry = tx.open_table(EXPIRY).map_err(err)?;
                let (stored, live) = current(&t, &pk, &sk, unix_now())?;
                check_cond(cond, live)?;
                if let Some((_, Some(old))) = stored {
                    expiry.remove((old, pk.as_str(), sk.as_str())).map_err(err)?;
                }
                if let Some(at) = expires_at {
                    expiry.insert((at, pk.as_str(), sk.as_str()), ()).map_err(err)?;
                }
                let rev = next_rev(stored.map(|(r, _)| r));
                t.insert((pk.as_str(), sk.as_str()), encode(rev, expires_at, &value).as_slice())
                    .map_err(err)?;
                rev
            };
            tx.commit().map_err(err)?;
            Ok(rev)
        })
        .await
    }

    async fn delete(&self, pk: &str, sk: &str, cond: Cond) -> Result<(), StoreError> {
        let (pk, sk) = (pk.to_owned(), sk.to_owned());
        self.write(move |db| {
            let tx = begin(db)?;
            {
                let mut t = tx.open_table(ITEMS).map_err(err)?;
                let mut expiry = tx.open_table(EXPIRY).map_err(err)?;
                let (stored, live) = current(&t, &pk, &sk, unix_now())?;
                check_cond(cond, live)?;
                if cond == Cond::Absent {
                    return Ok(());
                }
                if let Some((_, Some(old))) = stored {
                    expiry.remove((old, pk.as_str(), sk.as_str())).map_err(err)?;
                }
                t.remove((pk.as_str(), sk.as_str())).map_err(err)?;
            }
            tx.commit().map_err(err)?;
            Ok(())
        })
        .await
    }

    async fn query(&self, pk: &str, q: Query) -> Result<Vec<Row>, StoreError> {
        self.inner.run(|db| {
            let tx = db.begin_read().map_err(err)?;
            let t = tx.open_table(ITEMS).map_err(err)?;
            let upper = format!("{}\u{10FFFF}", q.prefix);
            let (lo, hi): (&str, &str) = match (&q.after, q.reverse) {
                (Some(a), false) if a.as_str() > q.prefix.as_str() => (a.as_str(), upper.as_str()),
                (Some(a), true) if a.as_str() < upper.as_str() => (q.prefix.as_str(), a.as_str()),
                _ => (q.prefix.as_str(), upper.as_str()),
            };
            let range = t.range((pk, lo)..=(pk, hi)).map_err(err)?;
            let limit = q.limit.unwrap_or(usize::MAX);
            let now = unix_now();
            let mut rows = Vec::new();
            let mut push =
                |k: redb::AccessGuard<(&str, &str)>, v: redb::AccessGuard<&[u8]>| -> Result<bool, StoreError> {
                    let sk = k.value().1;
                    if query_matches(&q, sk) {
                        rows.extend(live_row(sk, v.value(), now)?);
                    }
                    Ok(rows.len() < limit)
                };
            if q.reverse {
                for item in range.rev() {
                    let (k, v) = item.map_err(err)?;
                    if !push(k, v)? {
                        break;
                    }
                }
            } else {
                for item in range {
                    let (k, v) = item.map_err(err)?;
                    if !push(k, v)? {
                        break;
                    }
                }
            }
            Ok(rows)
        })
    }

    async fn flush(&self) -> Result<(), StoreError> {
        let scope = scope_state();
        if scope == ScopeState::Clean {
            return Ok(()); // this unit of work wrote nothing
        }
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            inner.check_scope(scope)?;
            inner.flush()?;
            inner.check_scope(scope)
        })
        .await
        .map_err(|e| StoreError::other_msg(format!("blocking task failed: {e}")))?
    }

    async fn transact(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        check_transact(&writes)?;
        self.write(move |db| {
            let tx = begin(db)?;
            {
                let mut t = tx.open_table(ITEMS).map_err(err)?;
                let mut expiry = tx.open_table(EXPIRY).map_err(err)?;
                let now = unix_now();
                let mut stored = Vec::with_capacity(writes.len());
                for w in &writes {
                    let (s, live) = current(&t, &w.pk, &w.sk, now)?;
                    // a failed condition returns before commit: the transaction aborts whole
                    check_cond(w.cond, live)?;
                    stored.push(s);
                }
                for (w, s) in writes.iter().zip(stored) {
                    if matches!(w.op, WriteOp::Delete) && w.cond == Cond::Absent {
                        continue;
                    }
                    if let Some((_, Some(old))) = s {
                        expiry.remove((old, w.pk.as_str(), w.sk.as_str())).map_err(err)?;
                    }
                    match &w.op {
                        WriteOp::Put(value) => {
                            let rev = next_rev(s.map(|(r, _)| r));
                            t.insert((w.pk.as_str(), w.sk.as_str()), encode(rev, None, value).as_slice())
                                .map_err(err)?;
                        }
                        WriteOp::Delete => {
                            t.remove((w.pk.as_str(), w.sk.as_str())).map_err(err)?;
                        }
                    }
                }
            }
            tx.commit().map_err(err)?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests;
