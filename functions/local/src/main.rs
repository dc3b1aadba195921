//! Berth on one machine: the registry and the management API on the embedded store (files +
//! redb), with jobs run in-process; or, with `BERTH_BACKEND=aws`, on S3, DynamoDB and SQS,
//! with an in-process poller running the queue's jobs.
//!
//! Configuration → adapters → router → serve.

mod config;
mod serve;

use std::io::Write;
use std::path::Path;

use std::sync::Arc;
use std::time::Duration;

use berth::services::tokens::{TokenKey, Tokens};
use berth::services::AuthMode;
use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cfg = config::Config::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&cfg.log)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match run(cfg).await {
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

/// The token signing key: `<data-dir>/token-key.pem`, generated on first start.
fn token_key(data_dir: &Path) -> Result<TokenKey, String> {
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

/// The key remote credentials are sealed with: `<data-dir>/field-key` (32 random bytes, hex),
/// generated on first start. Losing it loses the remotes' passwords, nothing else.
fn field_key(data_dir: &Path) -> Result<berth::store::FieldKey, String> {
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

/// How often the embedded store removes expired items and abandoned uploads.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(3600);

/// What runs the jobs: the in-process runner over the embedded table, or an SQS poller.
enum Runner {
    Local(Box<berth::app::LocalApp>),
    #[cfg(feature = "aws")]
    Sqs(berth::adapters::sqs_queue::SqsPoller),
}

#[cfg(feature = "aws")]
type AwsSettings = berth::app::AwsSettings;
/// A build without AWS support has no settings for it.
#[cfg(not(feature = "aws"))]
enum AwsSettings {}

#[cfg(feature = "aws")]
fn aws_settings(cfg: &config::Config) -> Result<AwsSettings, String> {
    cfg.aws()
}

#[cfg(not(feature = "aws"))]
fn aws_settings(_: &config::Config) -> Result<AwsSettings, String> {
    Err("BERTH_BACKEND=aws: this build has no AWS support (build it with `--features aws`)".into())
}

/// The app on S3, DynamoDB and SQS (creating them first with BERTH_AWS_INIT).
#[cfg(feature = "aws")]
async fn aws_backend(aws: AwsSettings, settings: berth::app::Settings) -> Result<(berth::app::App, Runner), String> {
    let sdk = berth::adapters::aws::sdk_config().await;
    let connected = berth::app::AwsApp::connect(&sdk, &aws, settings)
        .await
        .map_err(|e| format!("cannot reach the AWS backend: {e:?}"))?;
    tracing::info!(bucket = %aws.bucket, table = %aws.table, queue = %connected.queue_url, "on the AWS backend");
    Ok((connected.app, Runner::Sqs(connected.poller)))
}

#[cfg(not(feature = "aws"))]
async fn aws_backend(aws: AwsSettings, _: berth::app::Settings) -> Result<(berth::app::App, Runner), String> {
    match aws {}
}

async fn run(cfg: config::Config) -> Result<(), String> {
    // settings are checked before anything is written
    let aws = match cfg.backend.as_str() {
        "aws" => Some(aws_settings(&cfg)?),
        _ => None,
    };
    let data_dir = cfg.data_dir();
    std::fs::create_dir_all(&data_dir).map_err(|e| format!("cannot create {}: {e}", data_dir.display()))?;
    let (node, _node_lock) = node_life(&data_dir)?;
    let auth = if cfg.token_auth == "on" {
        let tokens = Tokens::new(token_key(&data_dir)?, Duration::from_secs(cfg.token_lifetime));
        AuthMode::Token(Arc::new(tokens))
    } else {
        AuthMode::Basic
    };
    let settings = berth::app::Settings {
        public_url: cfg.public_url.clone(),
        auth,
        retention: berth::store::Retention {
            tasks: (cfg.task_retention_days > 0).then(|| Duration::from_secs(cfg.task_retention_days * 86_400)),
            ..Default::default()
        },
        field_key: Some(Arc::new(field_key(&data_dir)?)),
        node: Some(node),
        remote_urls: berth::domain::UrlPolicy::new(
            berth::domain::PrivateNetworks::parse(&cfg.remote_private_networks)
                .ok_or("BERTH_REMOTE_PRIVATE_NETWORKS must be allow or deny")?,
        ),
        ..Default::default()
    };
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

    // the admin account: from BERTH_ADMIN_PASSWORD, or generated once and kept in the data dir
    let generated = app
        .users
        .ensure_admin(cfg.admin_password.as_deref())
        .await
        .map_err(|e| format!("cannot set up the admin account: {e:?}"))?;
    if let Some(p) = generated {
        let file = data_dir.join("admin-password");
        write_private(&file, &format!("{p}\n")).map_err(|e| format!("cannot write {}: {e}", file.display()))?;
        eprintln!("berth: created the admin account; its password (shown once) is: {p}");
        eprintln!(
            "berth: it is also in {} (owner-only); set BERTH_ADMIN_PASSWORD to choose your own",
            file.display()
        );
    }

    if let Some(list) = &cfg.readonly_users {
        for entry in list.split(',').filter(|e| !e.trim().is_empty()) {
            let (name, password) = entry
                .trim()
                .split_once(':')
                .ok_or_else(|| "BERTH_READONLY_USERS: each entry must be name:password".to_owned())?;
            if name.is_empty() || name == "admin" || password.is_empty() {
                return Err(format!("BERTH_READONLY_USERS: invalid entry for user {name:?}"));
            }
            app.users
                .set_user(name, password, false)
                .await
                .map_err(|e| format!("cannot set up user {name}: {e:?}"))?;
        }
    }

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let workers = match runner {
        Runner::Local(local) => {
            let mut workers = local
                .jobs
                .start(app.worker(), 2, stop_rx.clone())
                .await
                .map_err(|e| format!("cannot start the job runner: {e:?}"))?;
            workers.extend(local.start_housekeeping(HOUSEKEEPING_EVERY, stop_rx));
            workers
        }
        #[cfg(feature = "aws")]
        Runner::Sqs(poller) => poller.start(app.worker(), 2, stop_rx),
    };

    let listener = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", cfg.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(%addr, data_dir = %data_dir.display(), backend = %cfg.backend, "berth is serving");
    let limits = serve::Limits::from_config(&cfg);
    serve::serve(listener, app.router(), limits, serve::shutdown_signal()).await;
    let _ = stop_tx.send(true);
    for w in workers {
        let _ = w.await;
    }
    tracing::info!("berth stopped");
    Ok(())
}
