//! Berth on one machine: the registry on the embedded store (files + redb), one process.
//!
//! Configuration → adapters → router → serve.

mod config;
mod serve;

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

async fn run(cfg: config::Config) -> Result<(), String> {
    let data_dir = cfg.data_dir();
    let app = berth::app::App::embedded(&data_dir, Default::default())
        .await
        .map_err(|e| format!("cannot open the data directory {}: {e:?}", data_dir.display()))?;
    let listener = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", cfg.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(%addr, data_dir = %data_dir.display(), "berth is serving");
    serve::serve(listener, app.router(), serve::shutdown_signal()).await;
    tracing::info!("berth stopped");
    Ok(())
}
