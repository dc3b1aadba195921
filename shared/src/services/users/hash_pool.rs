//! Argon2 verification on a small fixed pool of threads, each reusing one work area, fed by a
//! bounded queue: what a password check may cost in memory and threads is fixed, whoever asks.

use std::sync::{mpsc, Arc, Mutex, OnceLock};

use argon2::password_hash::{Output, PasswordHash};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::oneshot;

/// Every hashing thread is busy and the queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Busy;

struct HashJob {
    hash: String,
    password: String,
    reply: oneshot::Sender<bool>,
}

/// A fixed pool of threads that verify passwords, fed by a bounded queue; started on first use.
/// The threads end when the pool is dropped.
pub(super) struct HashPool {
    threads: usize,
    queue: usize,
    sender: OnceLock<Option<mpsc::SyncSender<HashJob>>>,
}

impl HashPool {
    pub(super) fn new(threads: usize, queue: usize) -> Self {
        HashPool {
            threads: threads.max(1),
            queue: queue.max(1),
            sender: OnceLock::new(),
        }
    }

    fn start(&self) -> Option<mpsc::SyncSender<HashJob>> {
        let (tx, rx) = mpsc::sync_channel::<HashJob>(self.queue);
        let rx = Arc::new(Mutex::new(rx));
        let mut started = 0;
        for i in 0..self.threads {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("berth-hash-{i}"))
                .spawn(move || hash_worker(&rx));
            match spawned {
                Ok(_) => started += 1,
                Err(e) => tracing::error!(error = %e, "cannot start a password-hashing thread"),
            }
        }
        (started > 0).then_some(tx)
    }

    /// Whether `password` matches the PHC-format `hash`; `Busy` when the queue is full.
    pub(super) async fn verify(&self, hash: &str, password: &str) -> Result<bool, Busy> {
        let Some(tx) = self.sender.get_or_init(|| self.start()) else {
            return Ok(false);
        };
        let (reply, answer) = oneshot::channel();
        let job = HashJob {
            hash: hash.to_owned(),
            password: password.to_owned(),
            reply,
        };
        match tx.try_send(job) {
            Ok(()) => Ok(answer.await.unwrap_or(false)),
            Err(mpsc::TrySendError::Full(_)) => Err(Busy),
            Err(mpsc::TrySendError::Disconnected(_)) => Ok(false),
        }
    }
}

/// One hashing thread: takes jobs until the pool is dropped, reusing one work area.
fn hash_worker(jobs: &Mutex<mpsc::Receiver<HashJob>>) {
    let mut memory: Vec<Block> = Vec::new();
    loop {
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        let ok = verify_with(&mut memory, &job.hash, job.password.as_bytes());
        let _ = job.reply.send(ok);
    }
}

/// The largest Argon2 work area a stored hash may ask for (64 MiB); larger ones fail to verify.
const MAX_BLOCKS: usize = 64 * 1024;

/// Argon2 verification of `password` against a PHC-format `hash`, in the caller's work area
/// (grown when the hash needs more, never shrunk).
pub(super) fn verify_with(memory: &mut Vec<Block>, hash: &str, password: &[u8]) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from) {
        None => Version::default(),
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    if params.block_count() > MAX_BLOCKS {
        return false;
    }
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    if memory.len() < params.block_count() {
        memory.resize(params.block_count(), Block::default());
    }
    let mut out = [0u8; Output::MAX_LENGTH];
    let Some(out) = out.get_mut(..expected.len()) else {
        return false;
    };
    let argon = Argon2::new(algorithm, version, params);
    if argon
        .hash_password_into_with_memory(password, salt, out, &mut memory[..])
        .is_err()
    {
        return false;
    }
    // `Output`'s equality is constant-time
    Output::new(out).is_ok_and(|computed| computed == expected)
}

pub(super) const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$6nBvFxyn1bYM8o1Hf3Su4cWKbU2kjzBDXqgXdUCnz9A";
