//! The table of settings: every setting Berth reads, with its flag, its environment variable,
//! its default, how its value is parsed and which runtimes read it. The local binary builds its
//! command line from this table and the Lambda loader reads the same entries from the
//! environment, so a setting is spelled and understood the same way on both.
//!
//! Layering: part of `config` (beside `app`); pure data.

/// Which runtimes read a setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtimes {
    /// The local binary and the Lambda functions.
    Both,
    /// The local binary only (listening, the data directory, connection bounds, …).
    Local,
    /// The Lambda functions only (Secrets Manager ARNs).
    Lambda,
}

/// One runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    Local,
    Lambda,
}

impl Runtimes {
    pub fn includes(self, runtime: Runtime) -> bool {
        matches!(
            (self, runtime),
            (Runtimes::Both, _) | (Runtimes::Local, Runtime::Local) | (Runtimes::Lambda, Runtime::Lambda)
        )
    }
}

/// How a setting's value is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Any text.
    Text,
    /// A file system path.
    Path,
    /// Text that is never shown (passwords, seeds).
    Secret,
    /// An `http` or `https` URL with a host.
    Url,
    /// One of the given words (any case).
    Choice(&'static [&'static str]),
    /// A whole number from `min` to `max`, counting `unit`.
    Number { min: u64, max: u64, unit: &'static str },
    /// A switch: a flag without a value, or a boolean word in the environment
    /// (`1`, `true`, `yes`, `on` / `0`, `false`, `no`, `off`).
    Switch,
}

/// One setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// The command-line flag, without the leading `--`.
    pub flag: &'static str,
    /// The environment variable.
    pub env: &'static str,
    /// The value when the setting is not given (`None`: unset, or derived as `help` says).
    pub default: Option<&'static str>,
    pub kind: Kind,
    pub runtimes: Runtimes,
    pub help: &'static str,
}

impl Setting {
    /// `BERTH_X (--x)`: how error messages name the setting.
    pub fn name(&self) -> String {
        format!("{} (--{})", self.env, self.flag)
    }
}

const ON_OFF: &[&str] = &["on", "off"];
const SECONDS: &str = "seconds";

pub const LISTEN: Setting = Setting {
    flag: "listen",
    env: "BERTH_LISTEN",
    default: Some("127.0.0.1:24817"),
    kind: Kind::Text,
    runtimes: Runtimes::Local,
    help: "Address to listen on.",
};

pub const DATA_DIR: Setting = Setting {
    flag: "data-dir",
    env: "BERTH_DATA_DIR",
    default: None,
    kind: Kind::Path,
    runtimes: Runtimes::Local,
    help: "Where blobs and metadata live [default: $XDG_DATA_HOME/berth or ~/.local/share/berth].",
};

pub const PUBLIC_URL: Setting = Setting {
    flag: "public-url",
    env: "BERTH_PUBLIC_URL",
    default: None,
    kind: Kind::Text,
    runtimes: Runtimes::Both,
    help: "The URL clients reach Berth at (for absolute links) [default: from each request].",
};

pub const ADMIN_PASSWORD: Setting = Setting {
    flag: "admin-password",
    env: "BERTH_ADMIN_PASSWORD",
    default: None,
    kind: Kind::Secret,
    runtimes: Runtimes::Both,
    help: "The admin password [default: locally, generated on first start into <data-dir>/admin-password; \
           on Lambda, read from BERTH_SECRET_ARN].",
};

pub const READONLY_USERS: Setting = Setting {
    flag: "readonly-users",
    env: "BERTH_READONLY_USERS",
    default: None,
    kind: Kind::Secret,
    runtimes: Runtimes::Both,
    help: "Read-only users, as `name:password[,name:password…]`: ordinary users holding the namespace consumer \
           role everywhere (they view and pull every namespace's distributions, private ones too).",
};

pub const TOKEN_AUTH: Setting = Setting {
    flag: "token-auth",
    env: "BERTH_TOKEN_AUTH",
    default: Some("on"),
    kind: Kind::Choice(ON_OFF),
    runtimes: Runtimes::Both,
    help: "Token authentication on the registry (`on`), or Basic auth with anonymous reads of public \
           content (`off`, for a trusted network).",
};

pub const TOKEN_LIFETIME: Setting = Setting {
    flag: "token-lifetime",
    env: "BERTH_TOKEN_LIFETIME",
    default: Some("300"),
    kind: Kind::Number {
        min: 30,
        max: 86_400,
        unit: SECONDS,
    },
    runtimes: Runtimes::Both,
    help: "Lifetime of registry tokens, in seconds.",
};

pub const REDIRECT_TTL: Setting = Setting {
    flag: "redirect-ttl",
    env: "BERTH_REDIRECT_TTL",
    default: Some("600"),
    kind: Kind::Number {
        min: 60,
        max: 43_200,
        unit: SECONDS,
    },
    runtimes: Runtimes::Both,
    help: "Lifetime of the presigned S3 URLs blob GETs redirect to, in seconds (backend `aws`).",
};

pub const PULL_THROUGH_TTL: Setting = Setting {
    flag: "pull-through-ttl",
    env: "BERTH_PULL_THROUGH_TTL",
    default: Some("300"),
    kind: Kind::Number {
        min: 0,
        max: 604_800,
        unit: SECONDS,
    },
    runtimes: Runtimes::Both,
    help: "How long a tag pulled through a cache is served before it is checked upstream again (one HEAD), in seconds.",
};

pub const BLOB_COPY_WAIT: Setting = Setting {
    flag: "blob-copy-wait",
    env: "BERTH_BLOB_COPY_WAIT",
    default: Some("20"),
    kind: Kind::Number {
        min: 0,
        max: 25,
        unit: SECONDS,
    },
    runtimes: Runtimes::Lambda,
    help: "How long a blob GET that misses (pull-through or on-demand) waits in the registry function for the sync \
           worker's copy into S3 when the upstream serves the bytes itself, before answering 503 with Retry-After.",
};

pub const PULL_THROUGH_DEFAULT: Setting = Setting {
    flag: "pull-through-default",
    env: "BERTH_PULL_THROUGH_DEFAULT",
    default: None,
    kind: Kind::Text,
    runtimes: Runtimes::Both,
    help: "The base path of the pull-through distribution that serves names no distribution serves, \
           so docker daemons can use Berth in their `registry-mirrors` (`library/busybox` pulls `<base path>/library/busybox`).",
};

pub const PULL_THROUGH_NS: Setting = Setting {
    flag: "pull-through-ns",
    env: "BERTH_PULL_THROUGH_NS",
    default: None,
    kind: Kind::Text,
    runtimes: Runtimes::Both,
    help: "Upstream hosts and the pull-through distributions caching them, as `host=base_path[,…]` \
           (`docker.io=hub,quay.io=quay`): a pull with containerd's `?ns=<host>` goes to that distribution.",
};

pub const TASK_RETENTION_DAYS: Setting = Setting {
    flag: "task-retention-days",
    env: "BERTH_TASK_RETENTION_DAYS",
    default: Some("30"),
    kind: Kind::Number {
        min: 0,
        max: 36_500,
        unit: "days",
    },
    runtimes: Runtimes::Both,
    help: "Days a finished task is kept before it is removed (0 keeps tasks until deleted).",
};

pub const REMOTE_PRIVATE_NETWORKS: Setting = Setting {
    flag: "remote-private-networks",
    env: "BERTH_REMOTE_PRIVATE_NETWORKS",
    default: Some("allow"),
    kind: Kind::Choice(&["allow", "deny"]),
    runtimes: Runtimes::Both,
    help: "Whether remotes may reach loopback and private network addresses (`allow`), or only public \
           ones (`deny`). Link-local, cloud metadata, unspecified, multicast and broadcast addresses are \
           refused either way.",
};

pub const BACKEND: Setting = Setting {
    flag: "backend",
    env: "BERTH_BACKEND",
    default: Some("embedded"),
    kind: Kind::Choice(&["embedded", "aws"]),
    runtimes: Runtimes::Local,
    help: "Where data lives: `embedded` (files and redb under the data directory) or `aws` (S3, DynamoDB \
           and SQS, honouring AWS_ENDPOINT_URL and the other AWS_* settings).",
};

pub const BUCKET: Setting = Setting {
    flag: "bucket",
    env: "BERTH_BUCKET",
    default: None,
    kind: Kind::Text,
    runtimes: Runtimes::Both,
    help: "The S3 bucket for blobs (backend `aws`).",
};

pub const TABLE: Setting = Setting {
    flag: "table",
    env: "BERTH_TABLE",
    default: None,
    kind: Kind::Text,
    runtimes: Runtimes::Both,
    help: "The DynamoDB table for metadata (backend `aws`).",
};

pub const QUEUE_URL: Setting = Setting {
    flag: "queue-url",
    env: "BERTH_QUEUE_URL",
    default: None,
    kind: Kind::Text,
    runtimes: Runtimes::Both,
    help: "The SQS queue for jobs, by URL (backend `aws`; or give BERTH_QUEUE_NAME).",
};

pub const QUEUE_NAME: Setting = Setting {
    flag: "queue-name",
    env: "BERTH_QUEUE_NAME",
    default: None,
    kind: Kind::Text,
    runtimes: Runtimes::Both,
    help: "The SQS queue for jobs, by name (backend `aws`; or give BERTH_QUEUE_URL).",
};

pub const S3_PATH_STYLE: Setting = Setting {
    flag: "s3-path-style",
    env: "BERTH_S3_PATH_STYLE",
    default: None,
    kind: Kind::Choice(ON_OFF),
    runtimes: Runtimes::Both,
    help: "Address the S3 bucket in the URL path (emulators) rather than the host name [default: `on` when \
           AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL is set, else `off`].",
};

pub const S3_PUBLIC_ENDPOINT: Setting = Setting {
    flag: "s3-public-endpoint",
    env: "BERTH_S3_PUBLIC_ENDPOINT",
    default: None,
    kind: Kind::Url,
    runtimes: Runtimes::Both,
    help: "The S3 endpoint clients reach, for the presigned URLs blob GETs redirect to, when it differs \
           from the one Berth uses (e.g. http://localhost:4566 while Berth reaches http://s3:4566) \
           [default: Berth's own endpoint].",
};

pub const AWS_INIT: Setting = Setting {
    flag: "aws-init",
    env: "BERTH_AWS_INIT",
    default: None,
    kind: Kind::Switch,
    runtimes: Runtimes::Local,
    help: "Create the bucket, the table and the queues (with a dead-letter queue) when missing (backend `aws`).",
};

pub const LOG: Setting = Setting {
    flag: "log",
    env: "BERTH_LOG",
    default: Some("info"),
    kind: Kind::Text,
    runtimes: Runtimes::Both,
    help: "Log filter, e.g. `info` or `berth=debug`.",
};

pub const LOG_FORMAT: Setting = Setting {
    flag: "log-format",
    env: "BERTH_LOG_FORMAT",
    default: None,
    kind: Kind::Choice(&["text", "json"]),
    runtimes: Runtimes::Both,
    help: "How log lines are written: `text` (readable) or `json` (one JSON object a line) [default: `text` \
           locally, `json` on Lambda].",
};

pub const METRICS_TOKEN: Setting = Setting {
    flag: "metrics-token",
    env: "BERTH_METRICS_TOKEN",
    default: None,
    kind: Kind::Secret,
    runtimes: Runtimes::Local,
    help: "Serve GET /metrics (Prometheus text format) to requests with `Authorization: Bearer <this token>` \
           [default: /metrics is off and answers 404].",
};

pub const METRICS_EMF: Setting = Setting {
    flag: "metrics-emf",
    env: "BERTH_METRICS_EMF",
    default: Some("on"),
    kind: Kind::Choice(ON_OFF),
    runtimes: Runtimes::Lambda,
    help: "Write CloudWatch Embedded Metric Format lines (namespace `Berth`) for each request and sync worker \
           invocation.",
};

pub const HEADER_TIMEOUT: Setting = Setting {
    flag: "header-timeout",
    env: "BERTH_HEADER_TIMEOUT",
    default: Some("10"),
    kind: Kind::Number {
        min: 1,
        max: 3600,
        unit: SECONDS,
    },
    runtimes: Runtimes::Local,
    help: "Seconds a client has to send a request's line and headers, counted from the connection's start \
           or from the request's first byte.",
};

pub const IDLE_TIMEOUT: Setting = Setting {
    flag: "idle-timeout",
    env: "BERTH_IDLE_TIMEOUT",
    default: Some("60"),
    kind: Kind::Number {
        min: 1,
        max: 86_400,
        unit: SECONDS,
    },
    runtimes: Runtimes::Local,
    help: "Seconds a connection may stay open with no request in flight and no bytes (or with a response \
           the client does not read).",
};

pub const BUSY_TIMEOUT: Setting = Setting {
    flag: "busy-timeout",
    env: "BERTH_BUSY_TIMEOUT",
    default: Some("2"),
    kind: Kind::Number {
        min: 1,
        max: 3600,
        unit: SECONDS,
    },
    runtimes: Runtimes::Local,
    help: "The header and idle timeouts, in seconds, while the server is near its connection cap (75 % of it).",
};

pub const BODY_TIMEOUT: Setting = Setting {
    flag: "body-timeout",
    env: "BERTH_BODY_TIMEOUT",
    default: Some("60"),
    kind: Kind::Number {
        min: 1,
        max: 86_400,
        unit: SECONDS,
    },
    runtimes: Runtimes::Local,
    help: "Seconds a request body may send nothing before the request ends with an error.",
};

pub const MAX_CONNECTIONS: Setting = Setting {
    flag: "max-connections",
    env: "BERTH_MAX_CONNECTIONS",
    default: None,
    kind: Kind::Number {
        min: 1,
        max: 1_000_000,
        unit: "connections",
    },
    runtimes: Runtimes::Local,
    help: "Open connections at most. At the cap a new connection takes the place of the one that has waited \
           longest with no request in flight, or is answered `503` with `Retry-After` when every one has a \
           request in flight [default: from the open-files limit, raised to its maximum at start: \
           (limit − 128) / 2, at most 10000].",
};

pub const SECRET_ARN: Setting = Setting {
    flag: "secret-arn",
    env: "BERTH_SECRET_ARN",
    default: None,
    kind: Kind::Text,
    runtimes: Runtimes::Lambda,
    help: "The Secrets Manager secret whose `admin_password` field is the admin password (or give \
           BERTH_ADMIN_PASSWORD).",
};

pub const TOKEN_KEY_SECRET_ARN: Setting = Setting {
    flag: "token-key-secret-arn",
    env: "BERTH_TOKEN_KEY_SECRET_ARN",
    default: None,
    kind: Kind::Text,
    runtimes: Runtimes::Lambda,
    help: "The Secrets Manager secret whose `token_key_seed` field derives the token signing key (or give \
           BERTH_TOKEN_KEY_SEED).",
};

pub const TOKEN_KEY_SEED: Setting = Setting {
    flag: "token-key-seed",
    env: "BERTH_TOKEN_KEY_SEED",
    default: None,
    kind: Kind::Secret,
    runtimes: Runtimes::Both,
    help: "A seed the token signing key is derived from, the same for every instance given it [default: \
           locally, a key generated on first start into <data-dir>/token-key.pem; on Lambda, \
           BERTH_TOKEN_KEY_SECRET_ARN].",
};

pub const FIELD_KEY_SECRET_ARN: Setting = Setting {
    flag: "field-key-secret-arn",
    env: "BERTH_FIELD_KEY_SECRET_ARN",
    default: None,
    kind: Kind::Text,
    runtimes: Runtimes::Lambda,
    help: "The Secrets Manager secret whose `field_key_seed` field derives the key remote credentials are \
           sealed with (or give BERTH_FIELD_KEY_SEED).",
};

pub const FIELD_KEY_SEED: Setting = Setting {
    flag: "field-key-seed",
    env: "BERTH_FIELD_KEY_SEED",
    default: None,
    kind: Kind::Secret,
    runtimes: Runtimes::Both,
    help: "A seed the key remote credentials are sealed with is derived from; instances sharing a table \
           need the same [default: locally, a key generated on first start into <data-dir>/field-key; \
           on Lambda, BERTH_FIELD_KEY_SECRET_ARN].",
};

/// Every setting, in the order `--help` lists them.
pub const ALL: &[Setting] = &[
    LISTEN,
    DATA_DIR,
    PUBLIC_URL,
    ADMIN_PASSWORD,
    TOKEN_AUTH,
    TOKEN_LIFETIME,
    REDIRECT_TTL,
    PULL_THROUGH_TTL,
    PULL_THROUGH_DEFAULT,
    BLOB_COPY_WAIT,
    PULL_THROUGH_NS,
    TASK_RETENTION_DAYS,
    REMOTE_PRIVATE_NETWORKS,
    READONLY_USERS,
    BACKEND,
    BUCKET,
    TABLE,
    QUEUE_URL,
    QUEUE_NAME,
    S3_PATH_STYLE,
    S3_PUBLIC_ENDPOINT,
    AWS_INIT,
    LOG,
    LOG_FORMAT,
    METRICS_TOKEN,
    METRICS_EMF,
    HEADER_TIMEOUT,
    IDLE_TIMEOUT,
    BUSY_TIMEOUT,
    BODY_TIMEOUT,
    MAX_CONNECTIONS,
    SECRET_ARN,
    TOKEN_KEY_SECRET_ARN,
    TOKEN_KEY_SEED,
    FIELD_KEY_SECRET_ARN,
    FIELD_KEY_SEED,
];

/// The S3 endpoint settings of the AWS SDK, in the order it prefers them; any of them makes
/// path-style addressing the default.
pub const S3_ENDPOINT_VARS: &[&str] = &["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"];
