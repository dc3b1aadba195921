//! The local binary's configuration: flags with matching environment variables.

use std::path::PathBuf;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(name = "berth", version, about = "Berth: a container registry mirror and host")]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "BERTH_LISTEN", default_value = "127.0.0.1:24817")]
    pub listen: String,

    /// Where blobs and metadata live [default: $XDG_DATA_HOME/berth or ~/.local/share/berth].
    #[arg(long, env = "BERTH_DATA_DIR")]
    pub data_dir: Option<PathBuf>,

    /// The URL clients reach Berth at (for absolute links) [default: from each request].
    #[arg(long, env = "BERTH_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// The admin password [default: generated on first start into <data-dir>/admin-password].
    #[arg(long, env = "BERTH_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,

    /// Token authentication on the registry (`on`), or Basic auth with anonymous reads of
    /// public content (`off`, for a trusted network).
    #[arg(long, env = "BERTH_TOKEN_AUTH", default_value = "on", value_parser = ["on", "off"])]
    pub token_auth: String,

    /// Lifetime of registry tokens, in seconds.
    #[arg(long, env = "BERTH_TOKEN_LIFETIME", default_value_t = 300, value_parser = clap::value_parser!(u64).range(30..=86400))]
    pub token_lifetime: u64,

    /// Read-only users, as `name:password[,name:password…]` (they may pull private content).
    #[arg(long, env = "BERTH_READONLY_USERS", hide_env_values = true)]
    pub readonly_users: Option<String>,

    /// Log filter, e.g. `info` or `berth=debug`.
    #[arg(long, env = "BERTH_LOG", default_value = "info")]
    pub log: String,
}

impl Config {
    pub fn data_dir(&self) -> PathBuf {
        if let Some(d) = &self.data_dir {
            return d.clone();
        }
        if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|x| !x.is_empty()) {
            return PathBuf::from(x).join("berth");
        }
        match std::env::var_os("HOME") {
            Some(h) => PathBuf::from(h).join(".local/share/berth"),
            None => PathBuf::from("berth-data"),
        }
    }
}
