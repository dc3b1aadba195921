//! Berth on one machine: the registry and the management API on the embedded store (files +
//! redb), with jobs run in-process; or, with `BERTH_BACKEND=aws`, on S3, DynamoDB and SQS,
//! with an in-process poller running the queue's jobs.
//!
//! Configuration → adapters → router → serve.

mod config;
mod serve;
mod tls;

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use berth::config::Backend;
use berth::services::tokens::TokenKey;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config::Parsed { config: cfg, tls } = match config::parse() {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("berth: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let logs = tracing_subscriber::fmt().with_env_filter(
        tracing_subscriber::EnvFilter::try_new(&cfg.log).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
    );
    match berth::config::LogFormat::or_default(cfg.log_format, berth::config::Runtime::Local) {
        // one JSON object a line, the event's fields at the top level
        berth::config::LogFormat::Json => logs
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
        berth::config::LogFormat::Text => logs.init(),
    }
    // a certificate and key that do not load are a configuration error
    let tls = match tls.map(tls::Tls::load).transpose() {
        Ok(tls) => tls,
        Err(e) => {
            eprintln!("berth: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    match run(cfg, tls).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("berth: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Writes `contents` to `path`, readable by the owner only.
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()
}

/// The token signing key: from `BERTH_TOKEN_KEY_SEED`, else `<data-dir>/token-key.pem`,
/// generated on first start.
fn token_key(cfg: &config::Config, data_dir: &Path) -> Result<TokenKey, String> {
    if let Some(seed) = &cfg.token_key_seed {
        return Ok(berth::config::token_key_from_seed(seed.expose()));
    }
    let file = data_dir.join("token-key.pem");
    match std::fs::read_to_string(&file) {
        Ok(pem) => TokenKey::from_pem(&pem).map_err(|e| format!("{}: {e}", file.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = TokenKey::generate();
            let pem = key.to_pem().map_err(|e| e.to_string())?;
            write_private(&file, &pem).map_err(|e| format!("cannot write {}: {e}", file.display()))?;
            tracing::info!(file = %file.display(), kid = key.kid(), "generated the token signing key");
            Ok(key)
        }
        Err(e) => Err(format!("cannot read {}: {e}", file.display())),
    }
}

/// The key remote credentials are sealed with: from `BERTH_FIELD_KEY_SEED`, else
/// `<data-dir>/field-key` (32 random bytes, hex), generated on first start. Losing it loses
/// the remotes' passwords, nothing else.
fn field_key(cfg: &config::Config, data_dir: &Path) -> Result<berth::store::FieldKey, String> {
    if let Some(seed) = &cfg.field_key_seed {
        return Ok(berth::store::FieldKey::from_seed(seed.expose()));
    }
    let file = data_dir.join("field-key");
    let parse = |s: &str| -> Option<[u8; 32]> { hex::decode(s.trim()).ok()?.try_into().ok() };
    match std::fs::read_to_string(&file) {
        Ok(s) => parse(&s)
            .map(|k| berth::store::FieldKey::from_bytes(&k))
            .ok_or_else(|| format!("{}: not 32 bytes of hex", file.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key: [u8; 32] = rand::random();
            write_private(&file, &format!("{}\n", hex::encode(key)))
                .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
            tracing::info!(file = %file.display(), "generated the field key for remote credentials");
            Ok(berth::store::FieldKey::from_bytes(&key))
        }
        Err(e) => Err(format!("cannot read {}: {e}", file.display())),
    }
}

/// This process as a life of the node `<data-dir>/node-id` names (generated on first start),
/// holding `<data-dir>/node.lock` so that one process at a time runs on a data directory: the
/// leases a killed earlier life held are then taken over at once after a restart. The lock is
/// held as long as the returned file is open.
fn node_life(data_dir: &Path) -> Result<(berth::store::NodeLife, std::fs::File), String> {
    let lock_file = data_dir.join("node.lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_file)
        .map_err(|e| format!("cannot open {}: {e}", lock_file.display()))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(format!(
                "another berth process is running on the data directory {} (it holds {})",
                data_dir.display(),
                lock_file.display()
            ))
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(format!("cannot lock {}: {e}", lock_file.display())),
    }
    let file = data_dir.join("node-id");
    let node = match std::fs::read_to_string(&file) {
        Ok(s) if !s.trim().is_empty() => s.trim().to_owned(),
        Ok(_) => return Err(format!("{} is empty", file.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = hex::encode(rand::random::<[u8; 16]>());
            std::fs::write(&file, format!("{id}\n")).map_err(|e| format!("cannot write {}: {e}", file.display()))?;
            id
        }
        Err(e) => return Err(format!("cannot read {}: {e}", file.display())),
    };
    Ok((berth::store::NodeLife::new(node), lock))
}

/// How many jobs run at once.
const JOB_WORKERS: usize = 2;

/// The names of this process's job workers, as Pulp names its workers (`<pid>@<host>`): the
/// worker's number, after the first 8 characters of the node id when there is one (it tells
/// apart processes of one host that share an AWS table), at the host name.
fn worker_names(node: Option<&berth::store::NodeLife>, n: usize) -> Vec<String> {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    let node: Option<String> = node.map(|n| n.node.chars().take(8).collect());
    (1..=n)
        .map(|i| match &node {
            Some(node) => format!("{node}-{i}@{host}"),
            None => format!("{i}@{host}"),
        })
        .collect()
}

/// How often the embedded store removes expired items and abandoned uploads.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(3600);

/// How often due schedules are looked for (one query of the schedules partition).
const SCHEDULES_EVERY: Duration = Duration::from_secs(1);

/// What runs the jobs: the in-process runner over the embedded table, or an SQS poller.
enum Runner {
    Local(Box<berth::app::LocalApp>),
    #[cfg(feature = "aws")]
    Sqs(berth::adapters::sqs_queue::SqsPoller),
}

#[cfg(feature = "aws")]
type AwsSetup = berth::app::AwsSetup;
/// A build without AWS support has no settings for it.
#[cfg(not(feature = "aws"))]
enum AwsSetup {}

#[cfg(feature = "aws")]
fn aws_settings(cfg: &config::Config) -> Result<AwsSetup, String> {
    cfg.aws()
}

#[cfg(not(feature = "aws"))]
fn aws_settings(_: &config::Config) -> Result<AwsSetup, String> {
    Err("BERTH_BACKEND=aws: this build has no AWS support (build it with `--features aws`)".into())
}

/// The app on S3, DynamoDB and SQS (creating them first with BERTH_AWS_INIT).
#[cfg(feature = "aws")]
async fn aws_backend(aws: AwsSetup, settings: berth::app::Settings) -> Result<(berth::app::App, Runner), String> {
    let sdk = berth::adapters::aws::sdk_config().await;
    let connected = berth::app::AwsApp::connect_with(&sdk, &aws.settings, &aws.s3, settings)
        .await
        .map_err(|e| format!("cannot reach the AWS backend: {e}"))?;
    tracing::info!(
        bucket = %aws.settings.bucket,
        table = %aws.settings.table,
        queue = %connected.queue_url,
        "on the AWS backend"
    );
    Ok((connected.app, Runner::Sqs(connected.poller)))
}

#[cfg(not(feature = "aws"))]
async fn aws_backend(aws: AwsSetup, _: berth::app::Settings) -> Result<(berth::app::App, Runner), String> {
    match aws {}
}

async fn run(cfg: config::Config, tls: Option<tls::Tls>) -> Result<(), String> {
    // settings are checked before anything is written
    let aws = match cfg.backend {
        Backend::Aws => Some(aws_settings(&cfg)?),
        Backend::Embedded => None,
    };
    let data_dir = config::data_dir(&cfg);
    std::fs::create_dir_all(&data_dir)
        .map_err(|e| format!("cannot create the data directory {}: {e}", data_dir.display()))?;
    let (node, _node_lock) = node_life(&data_dir)?;
    let token_key = if cfg.token_auth {
        Some(token_key(&cfg, &data_dir)?)
    } else {
        None
    };
    let settings = cfg.settings(token_key, field_key(&cfg, &data_dir)?, Some(node));
    let (app, runner) = match aws {
        Some(aws) => aws_backend(aws, settings).await?,
        None => {
            let local = berth::app::LocalApp::embedded(&data_dir, settings)
                .await
                .map_err(|e| format!("cannot open the data directory {}: {e:?}", data_dir.display()))?;
            (local.app.clone(), Runner::Local(Box::new(local)))
        }
    };

    // names and items that versions before atomic names could leave disagreeing
    match app.store.repair_names().await {
        Ok(done) => {
            for action in done.actions {
                tracing::warn!(%action, "repaired the names an earlier version left behind");
            }
        }
        Err(e) => tracing::warn!(error = ?e, "checking names failed; continuing"),
    }

    // the accounts: the admin's password from BERTH_ADMIN_PASSWORD, or generated once and kept
    // in the data dir; the read-only users from BERTH_READONLY_USERS
    let admin_password = cfg.admin_password.as_ref().map(|p| p.expose());
    let generated = app.ensure_accounts(admin_password, &cfg.readonly_users).await?;
    if let Some(p) = generated {
        let file = data_dir.join("admin-password");
        write_private(&file, &format!("{p}\n")).map_err(|e| format!("cannot write {}: {e}", file.display()))?;
        eprintln!("berth: created the admin account; its password (shown once) is: {p}");
        eprintln!(
            "berth: it is also in {} (owner-only); set BERTH_ADMIN_PASSWORD to choose your own",
            file.display()
        );
    }

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // the job runner's workers heartbeat while the process runs, idle or not
    let beats = app.heartbeats(worker_names(app.settings.node.as_ref(), JOB_WORKERS));
    let handler = beats.attend(app.worker());
    let mut workers = vec![
        beats.keep_beating(stop_rx.clone()),
        app.start_schedules(SCHEDULES_EVERY, stop_rx.clone()),
    ];
    match runner {
        Runner::Local(local) => {
            workers.extend(
                local
                    .jobs
                    .start(handler, JOB_WORKERS, stop_rx.clone())
                    .await
                    .map_err(|e| format!("cannot start the job runner: {e:?}"))?,
            );
            workers.extend(local.start_housekeeping(HOUSEKEEPING_EVERY, stop_rx));
        }
        #[cfg(feature = "aws")]
        Runner::Sqs(poller) => workers.extend(poller.start(handler, JOB_WORKERS, stop_rx)),
    }

    let listener = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", cfg.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(%addr, %scheme, data_dir = %data_dir.display(), backend = %cfg.backend, "berth is serving");
    if let (Some(_), Some(url)) = (&tls, &cfg.public_url) {
        if url.starts_with("http://") {
            tracing::warn!(public_url = %url, "serving HTTPS, but BERTH_PUBLIC_URL says http://");
        }
    }
    let limits = serve::Limits::from_config(&cfg);
    let acceptor = tls.as_ref().map(|t| {
        t.keep_current();
        t.acceptor()
    });
    serve::serve(listener, app.router(), limits, acceptor, serve::shutdown_signal()).await;
    let _ = stop_tx.send(true);
    for w in workers {
        let _ = w.await;
    }
    tracing::info!("berth stopped");
    Ok(())
}
