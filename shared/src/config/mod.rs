//! One configuration for both runtimes. [`table`] lists every setting (flag, environment
//! variable, default, kind, runtimes); [`Config::load`] parses them from any source of text
//! values into one typed [`Config`], naming every bad value at once. The local binary feeds it
//! from its command line (built from the same table), the Lambda functions from their
//! environment ([`Config::for_lambda`]); a setting both read therefore has one spelling, one
//! range and one meaning. [`Config::settings`] then builds the app's [`Settings`] in one place.
//!
//! Layering: beside `app` (`domain ← ports ← {store, adapters} ← services ← http ← app ←
//! functions/*`); it reads no environment itself and does no I/O.

pub mod table;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sha2::Digest as _;

use crate::app::Settings;
use crate::domain::{PrivateNetworks, RepoName, UrlPolicy};
use crate::services::tokens::{TokenKey, Tokens};
use crate::services::AuthMode;
use crate::store::{FieldKey, NodeLife, Retention};
use table::*;
pub use table::{Kind, Runtime, Runtimes, Setting, ALL};

/// A value that is never shown (`Debug` prints `"***"`).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"***\"")
    }
}

/// A read-only user from `BERTH_READONLY_USERS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadonlyUser {
    pub name: String,
    pub password: Secret,
}

/// Where the local binary keeps its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Embedded,
    Aws,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Embedded => "embedded",
            Backend::Aws => "aws",
        })
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl LogFormat {
    /// The format a runtime writes when none was given: text locally, JSON on Lambda.
    pub fn or_default(given: Option<LogFormat>, runtime: Runtime) -> LogFormat {
        given.unwrap_or(match runtime {
            Runtime::Local => LogFormat::Text,
            Runtime::Lambda => LogFormat::Json,
        })
    }

    /// `BERTH_LOG_FORMAT` as written (any case; blank: unset), else the runtime's default:
    /// text locally, JSON on Lambda. `Err` names the bad value.
    pub fn parse(value: Option<&str>, runtime: Runtime) -> Result<LogFormat, String> {
        match value.map(str::trim).filter(|v| !v.is_empty()) {
            None => Ok(Self::or_default(None, runtime)),
            Some(v) if v.eq_ignore_ascii_case("text") => Ok(LogFormat::Text),
            Some(v) if v.eq_ignore_ascii_case("json") => Ok(LogFormat::Json),
            Some(v) => Err(format!("{} must be text or json, not {v:?}", LOG_FORMAT.name())),
        }
    }
}

/// Every setting, typed. Settings a runtime does not read keep their defaults there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub listen: String,
    pub data_dir: Option<PathBuf>,
    pub public_url: Option<String>,
    pub admin_password: Option<Secret>,
    pub readonly_users: Vec<ReadonlyUser>,
    pub token_auth: bool,
    pub token_lifetime: Duration,
    pub redirect_ttl: Duration,
    pub pull_through_ttl: Duration,
    pub mirrors: crate::domain::MirrorRoutes,
    pub blob_copy_wait: Duration,
    /// How long a finished task is kept (`None`: until deleted).
    pub task_retention: Option<Duration>,
    pub remote_private_networks: PrivateNetworks,
    pub backend: Backend,
    pub bucket: Option<String>,
    pub table: Option<String>,
    pub queue_url: Option<String>,
    pub queue_name: Option<String>,
    /// Whether the bucket is addressed in the URL path: `BERTH_S3_PATH_STYLE` when given, else
    /// whether an S3 endpoint is set (emulators).
    pub s3_path_style: bool,
    /// The S3 endpoint Berth reaches (`AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL`; `None`:
    /// AWS's own).
    pub s3_endpoint: Option<String>,
    /// The S3 endpoint presigned URLs name, when clients reach S3 at another address.
    pub s3_public_endpoint: Option<String>,
    pub aws_init: bool,
    pub log: String,
    /// `BERTH_LOG_FORMAT` as given (`None`: the runtime's default, see [`LogFormat::or_default`]).
    pub log_format: Option<LogFormat>,
    /// The bearer token `GET /metrics` asks for (`None`: `/metrics` is off).
    pub metrics_token: Option<Secret>,
    /// Whether the Lambda functions write CloudWatch EMF lines.
    pub metrics_emf: bool,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub busy_timeout: Duration,
    pub body_timeout: Duration,
    pub max_connections: Option<u64>,
    pub secret_arn: Option<String>,
    pub token_key_secret_arn: Option<String>,
    pub token_key_seed: Option<Secret>,
    pub field_key_secret_arn: Option<String>,
    pub field_key_seed: Option<Secret>,
}

/// Every problem found in a configuration, joined by `; ` when shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub Vec<String>);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join("; "))
    }
}

impl std::error::Error for ConfigError {}

/// Reads the table's settings from one source, collecting problems.
struct Reader<'a> {
    runtime: Runtime,
    value: &'a dyn Fn(&Setting) -> Option<String>,
    problems: Vec<String>,
}

impl Reader<'_> {
    /// The given value (blank counts as unset), or the default; nothing for a setting this
    /// runtime does not read.
    fn raw(&self, s: &Setting) -> Option<String> {
        let given = if s.runtimes.includes(self.runtime) {
            (self.value)(s).filter(|v| !v.trim().is_empty())
        } else {
            None
        };
        given.or_else(|| s.default.map(str::to_owned))
    }

    fn text(&mut self, s: &Setting) -> Option<String> {
        debug_assert!(matches!(s.kind, Kind::Text | Kind::Path | Kind::Secret));
        self.raw(s)
    }

    fn url(&mut self, s: &Setting) -> Option<String> {
        let v = self.raw(s)?;
        match url::Url::parse(v.trim()) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => Some(v.trim().to_owned()),
            _ => {
                self.problems.push(format!(
                    "{} must be an http or https URL with a host, not {v:?}",
                    s.name()
                ));
                None
            }
        }
    }

    /// The chosen word (lower case), or `None` when unset without a default.
    fn choice(&mut self, s: &Setting) -> Option<&'static str> {
        let Kind::Choice(words) = s.kind else { return None };
        let v = self.raw(s)?;
        let found = words.iter().find(|w| w.eq_ignore_ascii_case(v.trim())).copied();
        if found.is_none() {
            self.problems
                .push(format!("{} must be {}, not {v:?}", s.name(), words.join(" or ")));
        }
        found.or_else(|| s.default.and_then(|d| words.iter().find(|w| **w == d).copied()))
    }

    fn on(&mut self, s: &Setting) -> Option<bool> {
        self.choice(s).map(|w| w == "on")
    }

    fn number(&mut self, s: &Setting) -> Option<u64> {
        let Kind::Number { min, max, unit } = s.kind else {
            return None;
        };
        let v = self.raw(s)?;
        match v.trim().parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Some(n),
            _ => {
                self.problems.push(format!(
                    "{} must be a number of {unit} from {min} to {max}, not {v:?}",
                    s.name()
                ));
                s.default.and_then(|d| d.parse().ok())
            }
        }
    }

    fn seconds(&mut self, s: &Setting) -> Duration {
        Duration::from_secs(self.number(s).unwrap_or_default())
    }

    fn switch(&mut self, s: &Setting) -> bool {
        let Some(v) = self.raw(s) else { return false };
        match v.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "y" | "on" => true,
            "0" | "false" | "no" | "n" | "off" => false,
            _ => {
                self.problems
                    .push(format!("{} must be true or false (1 or 0), not {v:?}", s.name()));
                false
            }
        }
    }

    fn mirrors(&mut self) -> crate::domain::MirrorRoutes {
        let default = self
            .text(&PULL_THROUGH_DEFAULT)
            .and_then(|v| match RepoName::parse(v.trim()) {
                Ok(n) => Some(n),
                Err(e) => {
                    self.problems.push(format!("{}: {e}", PULL_THROUGH_DEFAULT.env));
                    None
                }
            });
        let by_ns = match self
            .text(&PULL_THROUGH_NS)
            .map(|v| crate::domain::MirrorRoutes::parse_ns(&v))
        {
            Some(Ok(v)) => v,
            Some(Err(e)) => {
                self.problems.push(format!("{}: {e}", PULL_THROUGH_NS.env));
                Vec::new()
            }
            None => Vec::new(),
        };
        crate::domain::MirrorRoutes { default, by_ns }
    }

    fn readonly_users(&mut self, s: &Setting) -> Vec<ReadonlyUser> {
        let mut users = Vec::new();
        let Some(list) = self.raw(s) else { return users };
        for entry in list.split(',').filter(|e| !e.trim().is_empty()) {
            let Some((name, password)) = entry.trim().split_once(':') else {
                self.problems
                    .push(format!("{}: each entry must be name:password", s.env));
                continue;
            };
            if name.is_empty() || name == "admin" || password.is_empty() {
                self.problems
                    .push(format!("{}: invalid entry for user {name:?}", s.env));
                continue;
            }
            users.push(ReadonlyUser {
                name: name.to_owned(),
                password: Secret::new(password),
            });
        }
        users
    }
}

impl Config {
    /// Parses every setting `runtime` reads: `value` gives a setting's text as the front end
    /// received it (`None`: not given), `aws_env` the AWS SDK's own variables (the S3
    /// endpoint). The error names every bad value.
    pub fn load(
        runtime: Runtime,
        value: &dyn Fn(&Setting) -> Option<String>,
        aws_env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut r = Reader {
            runtime,
            value,
            problems: Vec::new(),
        };
        let s3_endpoint = table::S3_ENDPOINT_VARS
            .iter()
            .find_map(|name| aws_env(name).filter(|v| !v.trim().is_empty()));
        let cfg = Config {
            listen: r.text(&LISTEN).unwrap_or_default(),
            data_dir: r.text(&DATA_DIR).map(PathBuf::from),
            public_url: r.text(&PUBLIC_URL),
            admin_password: r.text(&ADMIN_PASSWORD).map(Secret),
            readonly_users: r.readonly_users(&READONLY_USERS),
            token_auth: r.on(&TOKEN_AUTH).unwrap_or(true),
            token_lifetime: r.seconds(&TOKEN_LIFETIME),
            redirect_ttl: r.seconds(&REDIRECT_TTL),
            pull_through_ttl: r.seconds(&PULL_THROUGH_TTL),
            mirrors: r.mirrors(),
            blob_copy_wait: r.seconds(&BLOB_COPY_WAIT),
            task_retention: r
                .number(&TASK_RETENTION_DAYS)
                .filter(|d| *d > 0)
                .map(|d| Duration::from_secs(d * 86_400)),
            remote_private_networks: r
                .choice(&REMOTE_PRIVATE_NETWORKS)
                .and_then(PrivateNetworks::parse)
                .unwrap_or_default(),
            backend: match (runtime, r.choice(&BACKEND)) {
                (Runtime::Lambda, _) | (_, Some("aws")) => Backend::Aws,
                _ => Backend::Embedded,
            },
            bucket: r.text(&BUCKET),
            table: r.text(&TABLE),
            queue_url: r.text(&QUEUE_URL),
            queue_name: r.text(&QUEUE_NAME),
            s3_path_style: r.on(&S3_PATH_STYLE).unwrap_or(s3_endpoint.is_some()),
            s3_endpoint,
            s3_public_endpoint: r.url(&S3_PUBLIC_ENDPOINT),
            aws_init: r.switch(&AWS_INIT),
            log: r.text(&LOG).unwrap_or_default(),
            log_format: r.choice(&LOG_FORMAT).map(|w| match w {
                "json" => LogFormat::Json,
                _ => LogFormat::Text,
            }),
            metrics_token: r.text(&METRICS_TOKEN).map(Secret),
            metrics_emf: r.on(&METRICS_EMF).unwrap_or(true),
            header_timeout: r.seconds(&HEADER_TIMEOUT),
            idle_timeout: r.seconds(&IDLE_TIMEOUT),
            busy_timeout: r.seconds(&BUSY_TIMEOUT),
            body_timeout: r.seconds(&BODY_TIMEOUT),
            max_connections: r.number(&MAX_CONNECTIONS),
            secret_arn: r.text(&SECRET_ARN),
            token_key_secret_arn: r.text(&TOKEN_KEY_SECRET_ARN),
            token_key_seed: r.text(&TOKEN_KEY_SEED).map(Secret),
            field_key_secret_arn: r.text(&FIELD_KEY_SECRET_ARN),
            field_key_seed: r.text(&FIELD_KEY_SEED).map(Secret),
        };
        if r.problems.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigError(r.problems))
        }
    }

    /// The Lambda functions' configuration from their environment (`var` reads one
    /// variable): every setting, the bucket, table and queue, and where each secret comes
    /// from. The error names every missing or bad value.
    pub fn for_lambda(var: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let value = |s: &Setting| var(s.env);
        let cfg = Config::load(Runtime::Lambda, &value, var)?;
        let mut problems = cfg.aws_problems();
        if cfg.secret_arn.is_none() && cfg.admin_password.is_none() {
            problems.push("BERTH_SECRET_ARN (or BERTH_ADMIN_PASSWORD) is not set".into());
        }
        if cfg.field_key_secret_arn.is_none() && cfg.field_key_seed.is_none() {
            problems.push("BERTH_FIELD_KEY_SECRET_ARN (or BERTH_FIELD_KEY_SEED) is not set".into());
        }
        if cfg.token_auth && cfg.token_key_secret_arn.is_none() && cfg.token_key_seed.is_none() {
            problems.push("BERTH_TOKEN_KEY_SECRET_ARN (or BERTH_TOKEN_KEY_SEED) is not set".into());
        }
        if problems.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigError(problems))
        }
    }

    /// What the AWS backend lacks: the bucket, the table, and one queue (by URL or by name).
    pub fn aws_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.bucket.is_none() {
            problems.push(format!("{} is missing", BUCKET.name()));
        }
        if self.table.is_none() {
            problems.push(format!("{} is missing", TABLE.name()));
        }
        match (&self.queue_url, &self.queue_name) {
            (None, None) => problems.push(format!("{} or {} is missing", QUEUE_URL.name(), QUEUE_NAME.name())),
            (Some(_), Some(_)) => {
                problems.push(format!("give {} or {}, not both", QUEUE_URL.name(), QUEUE_NAME.name()))
            }
            _ => {}
        }
        problems
    }

    /// The AWS backend's settings, or an error naming every missing or conflicting value.
    #[cfg(feature = "aws")]
    pub fn aws(&self) -> Result<crate::app::AwsSetup, String> {
        use crate::app::{AwsQueue, AwsSettings, AwsSetup, S3Endpoints};
        let queue = match (&self.queue_url, &self.queue_name) {
            (Some(url), None) => Some(AwsQueue::Url(url.clone())),
            (None, Some(name)) => Some(AwsQueue::Name(name.clone())),
            _ => None,
        };
        match (&self.bucket, &self.table, queue) {
            (Some(bucket), Some(table), Some(queue)) => Ok(AwsSetup {
                settings: AwsSettings {
                    bucket: bucket.clone(),
                    table: table.clone(),
                    queue,
                    s3_path_style: self.s3_path_style,
                    init: self.aws_init,
                },
                s3: S3Endpoints {
                    endpoint: self.s3_endpoint.clone(),
                    public: self.s3_public_endpoint.clone(),
                },
            }),
            _ => Err(format!("BERTH_BACKEND=aws: {}", self.aws_problems().join("; "))),
        }
    }

    /// The app's settings from this configuration and the keys the runtime found:
    /// `token_key` turns token authentication on (the runtime passes one only when
    /// `token_auth` is on and it serves the registry).
    pub fn settings(&self, token_key: Option<TokenKey>, field_key: FieldKey, node: Option<NodeLife>) -> Settings {
        let mut settings = Settings {
            public_url: self.public_url.clone(),
            auth: match token_key {
                Some(key) => AuthMode::Token(Arc::new(Tokens::new(key, self.token_lifetime))),
                None => AuthMode::Basic,
            },
            retention: Retention {
                tasks: self.task_retention,
                ..Default::default()
            },
            field_key: Some(Arc::new(field_key)),
            node,
            remote_urls: UrlPolicy::new(self.remote_private_networks),
            metrics_token: self.metrics_token.clone(),
            ..Default::default()
        };
        settings.registry.redirect_ttl = self.redirect_ttl;
        settings.registry.pull_through_ttl = self.pull_through_ttl;
        settings.registry.mirrors = self.mirrors.clone();
        settings.registry.copy_wait = self.blob_copy_wait;
        settings
    }
}

/// The ES256 signing key derived from a secret seed, the same in every instance given it.
pub fn token_key_from_seed(seed: &str) -> TokenKey {
    let mut counter = 0u32;
    loop {
        let mut h = sha2::Sha256::new();
        h.update(b"berth token key\0");
        h.update(seed.as_bytes());
        h.update(counter.to_be_bytes());
        if let Some(k) = TokenKey::from_scalar_bytes(&h.finalize().into()) {
            return k;
        }
        counter += 1;
    }
}

#[cfg(test)]
mod tests;
