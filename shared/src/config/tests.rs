#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use super::*;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn lambda(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let map = env(pairs);
    Config::for_lambda(&|name: &str| map.get(name).cloned())
}

const LAMBDA_BASE: &[(&str, &str)] = &[
    ("BERTH_BUCKET", "b"),
    ("BERTH_TABLE", "t"),
    ("BERTH_QUEUE_URL", "http://sqs/q"),
    ("BERTH_SECRET_ARN", "arn:admin"),
    ("BERTH_TOKEN_KEY_SECRET_ARN", "arn:token"),
    ("BERTH_FIELD_KEY_SECRET_ARN", "arn:field"),
];

fn lambda_with(extra: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let mut pairs = LAMBDA_BASE.to_vec();
    pairs.extend_from_slice(extra);
    lambda(&pairs)
}

#[test]
fn the_table_spells_every_setting_once() {
    let mut flags = std::collections::HashSet::new();
    let mut envs = std::collections::HashSet::new();
    for s in ALL {
        assert!(flags.insert(s.flag), "--{} twice", s.flag);
        assert!(envs.insert(s.env), "{} twice", s.env);
        assert!(s.env.starts_with("BERTH_"), "{}", s.env);
        assert_eq!(
            s.env,
            format!("BERTH_{}", s.flag.replace('-', "_").to_ascii_uppercase())
        );
        assert!(!s.help.is_empty());
    }
}

#[test]
fn every_default_is_valid_on_both_runtimes() {
    let none = |_: &Setting| None;
    let no_env = |_: &str| None;
    let local = Config::load(Runtime::Local, &none, &no_env).unwrap();
    let on_lambda = Config::load(Runtime::Lambda, &none, &no_env).unwrap();
    assert_eq!(local.listen, "127.0.0.1:24817");
    assert!(local.token_auth);
    assert_eq!(local.token_lifetime, Duration::from_secs(300));
    assert_eq!(local.redirect_ttl, Duration::from_secs(600));
    assert_eq!(local.task_retention, Some(Duration::from_secs(30 * 86_400)));
    assert_eq!(local.backend, Backend::Embedded);
    assert_eq!(on_lambda.backend, Backend::Aws);
    assert!(!local.s3_path_style);
    assert_eq!(local.log, "info");
    assert_eq!(local.max_connections, None);
    assert_eq!(
        (
            local.header_timeout,
            local.idle_timeout,
            local.busy_timeout,
            local.body_timeout
        ),
        (
            Duration::from_secs(10),
            Duration::from_secs(60),
            Duration::from_secs(2),
            Duration::from_secs(60)
        )
    );
}

#[test]
fn the_lambda_loader_names_every_missing_value() {
    let err = lambda(&[("BERTH_BUCKET", "b")]).unwrap_err().to_string();
    for name in [
        "BERTH_TABLE",
        "BERTH_QUEUE_URL",
        "BERTH_SECRET_ARN",
        "BERTH_FIELD_KEY_SECRET_ARN",
        "BERTH_TOKEN_KEY_SECRET_ARN",
    ] {
        assert!(err.contains(name), "{name}: {err}");
    }
    assert!(!err.contains("BERTH_BUCKET"), "{err}");
    // without token authentication the token key is not needed
    let err = lambda(&[("BERTH_TOKEN_AUTH", "off")]).unwrap_err().to_string();
    assert!(!err.contains("BERTH_TOKEN_KEY"), "{err}");
    let cfg = lambda_with(&[]).unwrap();
    assert_eq!(cfg.queue_url.as_deref(), Some("http://sqs/q"));
    assert_eq!(cfg.secret_arn.as_deref(), Some("arn:admin"));
}

#[test]
fn bad_values_are_all_named() {
    let err = lambda_with(&[
        ("BERTH_TOKEN_LIFETIME", "5"),
        ("BERTH_REDIRECT_TTL", "forever"),
        ("BERTH_TOKEN_AUTH", "maybe"),
        ("BERTH_S3_PATH_STYLE", "1"),
        ("BERTH_S3_PUBLIC_ENDPOINT", "localhost:4566"),
        ("BERTH_READONLY_USERS", "admin:x"),
    ])
    .unwrap_err();
    assert_eq!(err.0.len(), 6, "{err}");
    let err = err.to_string();
    assert!(
        err.contains("BERTH_TOKEN_LIFETIME (--token-lifetime) must be a number of seconds from 30 to 86400, not \"5\""),
        "{err}"
    );
    assert!(err.contains("BERTH_REDIRECT_TTL"), "{err}");
    assert!(
        err.contains("BERTH_TOKEN_AUTH (--token-auth) must be on or off, not \"maybe\""),
        "{err}"
    );
    assert!(
        err.contains("BERTH_S3_PATH_STYLE (--s3-path-style) must be on or off"),
        "{err}"
    );
    assert!(err.contains("BERTH_S3_PUBLIC_ENDPOINT"), "{err}");
    assert!(
        err.contains("BERTH_READONLY_USERS: invalid entry for user \"admin\""),
        "{err}"
    );
}

#[test]
fn path_style_follows_any_s3_endpoint_unless_set() {
    let style = |extra: &[(&str, &str)]| lambda_with(extra).unwrap().s3_path_style;
    assert!(!style(&[]));
    assert!(style(&[("AWS_ENDPOINT_URL", "http://localhost:4566")]));
    assert!(style(&[("AWS_ENDPOINT_URL_S3", "http://localhost:4566")]));
    assert!(!style(&[
        ("AWS_ENDPOINT_URL_S3", "http://localhost:4566"),
        ("BERTH_S3_PATH_STYLE", "off")
    ]));
    assert!(style(&[("BERTH_S3_PATH_STYLE", "on")]));
    // the S3 endpoint comes before the general one
    let cfg = lambda_with(&[
        ("AWS_ENDPOINT_URL", "http://general:1"),
        ("AWS_ENDPOINT_URL_S3", "http://s3:2"),
        ("BERTH_S3_PUBLIC_ENDPOINT", "http://localhost:2"),
    ])
    .unwrap();
    assert_eq!(cfg.s3_endpoint.as_deref(), Some("http://s3:2"));
    assert_eq!(cfg.s3_public_endpoint.as_deref(), Some("http://localhost:2"));
}

#[test]
fn settings_are_built_from_the_parsed_values() {
    let cfg = lambda_with(&[
        ("BERTH_TASK_RETENTION_DAYS", "0"),
        ("BERTH_REDIRECT_TTL", "120"),
        ("BERTH_PUBLIC_URL", "https://reg.example.com"),
        ("BERTH_REMOTE_PRIVATE_NETWORKS", "DENY"),
        ("BERTH_READONLY_USERS", "reader:pw, other:pw2"),
        ("BERTH_TOKEN_KEY_SEED", "seed"),
    ])
    .unwrap();
    assert_eq!(cfg.readonly_users.len(), 2);
    assert_eq!(cfg.readonly_users[1].name, "other");
    assert_eq!(cfg.readonly_users[1].password.expose(), "pw2");
    assert!(!format!("{cfg:?}").contains("pw2"), "secrets stay out of Debug");
    let s = cfg.settings(Some(token_key_from_seed("seed")), FieldKey::from_seed("f"), None);
    assert_eq!(s.registry.redirect_ttl, Duration::from_secs(120));
    assert_eq!(s.retention.tasks, None);
    assert_eq!(s.public_url.as_deref(), Some("https://reg.example.com"));
    assert!(matches!(s.auth, AuthMode::Token(_)));
    assert_eq!(s.remote_urls, UrlPolicy::new(PrivateNetworks::Deny));
    assert!(matches!(
        cfg.settings(None, FieldKey::from_seed("f"), None).auth,
        AuthMode::Basic
    ));
}

#[test]
fn the_token_key_depends_only_on_the_seed() {
    assert_eq!(token_key_from_seed("abc").kid(), token_key_from_seed("abc").kid());
    assert_ne!(token_key_from_seed("abc").kid(), token_key_from_seed("abd").kid());
}

#[test]
fn the_readme_lists_every_setting() {
    let readme = include_str!("../../../README.md");
    let start = readme.find("## Configuration").unwrap();
    let section = &readme[start..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
    for s in ALL {
        assert!(section.contains(&format!("`{}`", s.env)), "README lacks {}", s.env);
        assert!(section.contains(&format!("--{}", s.flag)), "README lacks --{}", s.flag);
    }
}

#[test]
fn logs_are_text_locally_and_json_on_lambda_unless_told() {
    let none = |_: &Setting| None;
    let no_env = |_: &str| None;
    let local = Config::load(Runtime::Local, &none, &no_env).unwrap();
    assert_eq!(LogFormat::or_default(local.log_format, Runtime::Local), LogFormat::Text);
    let on_lambda = lambda_with(&[]).unwrap();
    assert_eq!(
        LogFormat::or_default(on_lambda.log_format, Runtime::Lambda),
        LogFormat::Json
    );
    assert!(on_lambda.metrics_emf);
    let given = lambda_with(&[("BERTH_LOG_FORMAT", "TEXT"), ("BERTH_METRICS_EMF", "off")]).unwrap();
    assert_eq!(given.log_format, Some(LogFormat::Text));
    assert!(!given.metrics_emf);
    let err = lambda_with(&[("BERTH_LOG_FORMAT", "xml")]).unwrap_err().to_string();
    assert!(
        err.contains("BERTH_LOG_FORMAT") && err.contains("text or json"),
        "{err}"
    );
    // the functions read it before the configuration, the same way
    assert_eq!(LogFormat::parse(Some(" json "), Runtime::Local), Ok(LogFormat::Json));
    assert_eq!(LogFormat::parse(None, Runtime::Lambda), Ok(LogFormat::Json));
    assert!(LogFormat::parse(Some("xml"), Runtime::Lambda)
        .unwrap_err()
        .contains("BERTH_LOG_FORMAT"));
    // the metrics token is the local binary's, never shown
    let value = |s: &Setting| (s.env == "BERTH_METRICS_TOKEN").then(|| "s3cret".to_owned());
    let local = Config::load(Runtime::Local, &value, &no_env).unwrap();
    assert_eq!(local.metrics_token.as_ref().map(Secret::expose), Some("s3cret"));
    assert!(!format!("{local:?}").contains("s3cret"));
    assert_eq!(
        local.settings(None, FieldKey::from_seed("f"), None).metrics_token,
        local.metrics_token
    );
}
