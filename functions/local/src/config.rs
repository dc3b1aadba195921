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

    /// Days a finished task is kept before it is removed (0 keeps tasks until deleted).
    #[arg(long, env = "BERTH_TASK_RETENTION_DAYS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(0..=36500))]
    pub task_retention_days: u64,

    /// Whether remotes may reach loopback and private network addresses (`allow`), or only
    /// public ones (`deny`). Link-local, cloud metadata, unspecified, multicast and broadcast
    /// addresses are refused either way.
    #[arg(long, env = "BERTH_REMOTE_PRIVATE_NETWORKS", default_value = "allow", value_parser = ["allow", "deny"])]
    pub remote_private_networks: String,

    /// Read-only users, as `name:password[,name:password…]` (they may pull private content).
    #[arg(long, env = "BERTH_READONLY_USERS", hide_env_values = true)]
    pub readonly_users: Option<String>,

    /// Where data lives: `embedded` (files and redb under the data directory) or `aws` (S3,
    /// DynamoDB and SQS, honouring AWS_ENDPOINT_URL and the other AWS_* settings).
    #[arg(long, env = "BERTH_BACKEND", default_value = "embedded", value_parser = ["embedded", "aws"])]
    pub backend: String,

    /// The S3 bucket for blobs (backend `aws`).
    #[arg(long, env = "BERTH_BUCKET")]
    pub bucket: Option<String>,

    /// The DynamoDB table for metadata (backend `aws`).
    #[arg(long, env = "BERTH_TABLE")]
    pub table: Option<String>,

    /// The SQS queue for jobs, by URL (backend `aws`; or give BERTH_QUEUE_NAME).
    #[arg(long, env = "BERTH_QUEUE_URL")]
    pub queue_url: Option<String>,

    /// The SQS queue for jobs, by name (backend `aws`; or give BERTH_QUEUE_URL).
    #[arg(long, env = "BERTH_QUEUE_NAME")]
    pub queue_name: Option<String>,

    /// Address the S3 bucket in the URL path (emulators) rather than the host name
    /// [default: `on` when AWS_ENDPOINT_URL is set, else `off`].
    #[arg(long, env = "BERTH_S3_PATH_STYLE", value_parser = ["on", "off"])]
    pub s3_path_style: Option<String>,

    /// Create the bucket, the table and the queues (with a dead-letter queue) when missing
    /// (backend `aws`).
    #[arg(long, env = "BERTH_AWS_INIT", action = clap::ArgAction::SetTrue,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub aws_init: bool,

    /// Log filter, e.g. `info` or `berth=debug`.
    #[arg(long, env = "BERTH_LOG", default_value = "info")]
    pub log: String,

    /// Seconds a client has to send a request's line and headers, counted from the connection's
    /// start or from the request's first byte.
    #[arg(long, env = "BERTH_HEADER_TIMEOUT", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub header_timeout: u64,

    /// Seconds a connection may stay open with no request in flight and no bytes (or with a
    /// response the client does not read).
    #[arg(long, env = "BERTH_IDLE_TIMEOUT", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub idle_timeout: u64,

    /// The header and idle timeouts, in seconds, while the server is near its connection cap
    /// (75 % of it).
    #[arg(long, env = "BERTH_BUSY_TIMEOUT", default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub busy_timeout: u64,

    /// Seconds a request body may send nothing before the request ends with an error.
    #[arg(long, env = "BERTH_BODY_TIMEOUT", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub body_timeout: u64,

    /// Open connections at most. At the cap a new connection takes the place of the one that
    /// has waited longest with no request in flight, or is answered `503` with `Retry-After`
    /// when every one has a request in flight [default: from the open-files limit, raised to
    /// its maximum at start: (limit − 128) / 2, at most 10000].
    #[arg(long, env = "BERTH_MAX_CONNECTIONS", value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_connections: Option<u64>,
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

    /// The AWS backend's settings, or an error naming every missing or conflicting value.
    #[cfg(feature = "aws")]
    pub fn aws(&self) -> Result<berth::app::AwsSettings, String> {
        let mut problems = Vec::new();
        if self.bucket.is_none() {
            problems.push("BERTH_BUCKET (--bucket) is missing");
        }
        if self.table.is_none() {
            problems.push("BERTH_TABLE (--table) is missing");
        }
        let queue = match (&self.queue_url, &self.queue_name) {
            (Some(url), None) => Some(berth::app::AwsQueue::Url(url.clone())),
            (None, Some(name)) => Some(berth::app::AwsQueue::Name(name.clone())),
            (None, None) => {
                problems.push("BERTH_QUEUE_URL (--queue-url) or BERTH_QUEUE_NAME (--queue-name) is missing");
                None
            }
            (Some(_), Some(_)) => {
                problems.push("give BERTH_QUEUE_URL (--queue-url) or BERTH_QUEUE_NAME (--queue-name), not both");
                None
            }
        };
        match (&self.bucket, &self.table, queue) {
            (Some(bucket), Some(table), Some(queue)) if problems.is_empty() => Ok(berth::app::AwsSettings {
                bucket: bucket.clone(),
                table: table.clone(),
                queue,
                s3_path_style: match self.s3_path_style.as_deref() {
                    Some(v) => v == "on",
                    None => std::env::var_os("AWS_ENDPOINT_URL").is_some_and(|v| !v.is_empty()),
                },
                init: self.aws_init,
            }),
            _ => Err(format!("BERTH_BACKEND=aws: {}", problems.join("; "))),
        }
    }
}

#[cfg(all(test, feature = "aws"))]
mod tests {
    use super::*;

    #[test]
    fn the_aws_backend_names_every_missing_value() {
        let cfg = Config::parse_from(["berth", "--backend", "aws", "--bucket", "b"]);
        let err = cfg.aws().unwrap_err();
        assert!(err.contains("BERTH_TABLE"), "{err}");
        assert!(err.contains("BERTH_QUEUE_URL"), "{err}");
        assert!(!err.contains("BERTH_BUCKET"), "{err}");
        let cfg = Config::parse_from([
            "berth",
            "--backend",
            "aws",
            "--bucket",
            "b",
            "--table",
            "t",
            "--queue-name",
            "q",
            "--s3-path-style",
            "on",
            "--aws-init",
        ]);
        let aws = cfg.aws().unwrap();
        assert!(aws.s3_path_style && aws.init);
        assert!(matches!(aws.queue, berth::app::AwsQueue::Name(ref n) if n == "q"));
        let cfg = Config::parse_from([
            "berth",
            "--table",
            "t",
            "--bucket",
            "b",
            "--queue-url",
            "u",
            "--queue-name",
            "q",
        ]);
        assert!(cfg.aws().unwrap_err().contains("not both"));
    }
}

#[cfg(test)]
mod remote_url_tests {
    use super::*;

    #[test]
    fn remote_private_networks_is_allow_or_deny() {
        let cfg = Config::try_parse_from(["berth", "--remote-private-networks", "deny"]).unwrap();
        assert_eq!(cfg.remote_private_networks, "deny");
        assert!(Config::try_parse_from(["berth", "--remote-private-networks", "maybe"]).is_err());
    }
}
