//! Berth on one machine: the registry and the management API on the embedded store (files +
//! redb), with jobs run in-process.
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

async fn run(cfg: config::Config) -> Result<(), String> {
    let data_dir = cfg.data_dir();
    std::fs::create_dir_all(&data_dir).map_err(|e| format!("cannot create {}: {e}", data_dir.display()))?;
    let auth = if cfg.token_auth == "on" {
        let tokens = Tokens::new(token_key(&data_dir)?, Duration::from_secs(cfg.token_lifetime));
        AuthMode::Token(Arc::new(tokens))
    } else {
        AuthMode::Basic
    };
    let settings = berth::app::Settings {
        public_url: cfg.public_url.clone(),
        auth,
        ..Default::default()
    };
    let local = berth::app::LocalApp::embedded(&data_dir, settings)
        .await
        .map_err(|e| format!("cannot open the data directory {}: {e:?}", data_dir.display()))?;
    let app = local.app.clone();

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
    let workers = local
        .jobs
        .start(app.worker(), 2, stop_rx)
        .await
        .map_err(|e| format!("cannot start the job runner: {e:?}"))?;

    let listener = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", cfg.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(%addr, data_dir = %data_dir.display(), "berth is serving");
    serve::serve(listener, app.router(), serve::shutdown_signal()).await;
    let _ = stop_tx.send(true);
    for w in workers {
        let _ = w.await;
    }
    tracing::info!("berth stopped");
    Ok(())
}
