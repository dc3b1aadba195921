//! The local binary's front end to the shared table of settings ([`berth::config`]): one flag
//! with its environment variable per setting the local binary reads, parsed by the same code
//! as on Lambda, so a setting means the same on both runtimes. The settings of this binary's
//! own server ([`SERVER_ONLY`]: HTTPS) are declared here the same way.

use std::path::PathBuf;

use berth::config::{Kind, Runtime, Runtimes, Setting, ALL};
use clap::{Arg, ArgAction, ArgMatches, Command};

pub use berth::config::Config;

use crate::tls::TlsFiles;

pub const TLS_CERT: Setting = Setting {
    flag: "tls-cert",
    env: "BERTH_TLS_CERT",
    default: None,
    kind: Kind::Path,
    runtimes: Runtimes::Local,
    help: "Serve HTTPS with the certificate chain in this PEM file (the server's certificate first, then \
           its intermediates), with --tls-key; read again when it changes.",
};

pub const TLS_KEY: Setting = Setting {
    flag: "tls-key",
    env: "BERTH_TLS_KEY",
    default: None,
    kind: Kind::Path,
    runtimes: Runtimes::Local,
    help: "The PEM file with the private key of --tls-cert's certificate (PKCS#8, RSA or EC); read again when \
           it changes.",
};

/// The settings only this binary's server reads.
pub const SERVER_ONLY: [&Setting; 2] = [&TLS_CERT, &TLS_KEY];

/// What the command line and the environment ask for.
pub struct Parsed {
    pub config: Config,
    /// Serve HTTPS with these files.
    pub tls: Option<TlsFiles>,
}

/// The command line: every setting the local binary reads, from the table, then this
/// binary's own.
pub fn command() -> Command {
    let mut cmd = Command::new("berth")
        .version(env!("CARGO_PKG_VERSION"))
        .about("Berth: a container registry mirror and host");
    for s in ALL.iter().filter(|s| s.runtimes.includes(Runtime::Local)) {
        cmd = cmd.arg(arg(s));
    }
    for s in SERVER_ONLY {
        cmd = cmd.arg(arg(s).value_hint(clap::ValueHint::FilePath));
    }
    cmd
}

fn arg(s: &'static Setting) -> Arg {
    let arg = Arg::new(s.flag).long(s.flag).env(s.env);
    let arg = match s.kind {
        Kind::Switch => {
            return arg
                .help(s.help.trim_end_matches('.'))
                .action(ArgAction::SetTrue)
                .value_parser(clap::builder::BoolishValueParser::new())
        }
        Kind::Secret => arg.hide_env_values(true),
        Kind::Path => arg.value_hint(clap::ValueHint::DirPath),
        _ => arg,
    };
    // values are checked by the shared parser (the same as on Lambda), not by clap
    let text = s.help.trim_end_matches('.');
    let help = match s.kind {
        Kind::Choice(words) => format!("{text} [possible values: {}]", words.join(", ")),
        Kind::Number { min, max, .. } => format!("{text} [{min}–{max}]"),
        _ => text.to_owned(),
    };
    let arg = arg.help(help).value_name(s.env.trim_start_matches("BERTH_"));
    match s.default {
        Some(d) => arg.default_value(d),
        None => arg,
    }
}

/// The configuration from parsed arguments.
fn from_matches(m: &ArgMatches) -> Result<Parsed, String> {
    let value = |s: &Setting| match s.kind {
        Kind::Switch => Some(m.get_flag(s.flag).to_string()),
        _ => m.get_one::<String>(s.flag).cloned(),
    };
    let aws_env = |name: &str| std::env::var(name).ok();
    let config = Config::load(Runtime::Local, &value, &aws_env).map_err(|e| e.to_string())?;
    let path = |s: &Setting| value(s).filter(|v| !v.trim().is_empty()).map(PathBuf::from);
    let tls = match (path(&TLS_CERT), path(&TLS_KEY)) {
        (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
        (None, None) => None,
        (Some(_), None) | (None, Some(_)) => {
            return Err(format!(
                "{} and {} go together: give both to serve HTTPS, or neither",
                TLS_CERT.name(),
                TLS_KEY.name()
            ))
        }
    };
    Ok(Parsed { config, tls })
}

/// The configuration from this process's arguments and environment; `--help`, `--version`
/// and malformed command lines end the process as clap does.
pub fn parse() -> Result<Parsed, String> {
    from_matches(&command().get_matches())
}

/// The configuration from `args` (the first is the program's name) and the environment.
#[cfg(test)]
pub fn try_parse_from<I, T>(args: I) -> Result<Config, String>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    try_parse_all_from(args).map(|p| p.config)
}

#[cfg(test)]
pub fn try_parse_all_from<I, T>(args: I) -> Result<Parsed, String>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let m = command().try_get_matches_from(args).map_err(|e| e.to_string())?;
    from_matches(&m)
}

/// The data directory: `--data-dir`, else `$XDG_DATA_HOME/berth`, else
/// `~/.local/share/berth`.
pub fn data_dir(cfg: &Config) -> PathBuf {
    if let Some(d) = &cfg.data_dir {
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

#[cfg(all(test, feature = "aws"))]
mod tests {
    use super::*;

    #[allow(clippy::unwrap_used)]
    fn parse_from(args: &[&str]) -> Config {
        try_parse_from(args).unwrap()
    }

    #[test]
    fn the_aws_backend_names_every_missing_value() {
        let cfg = parse_from(&["berth", "--backend", "aws", "--bucket", "b"]);
        let err = cfg.aws().unwrap_err();
        assert!(err.contains("BERTH_TABLE"), "{err}");
        assert!(err.contains("BERTH_QUEUE_URL"), "{err}");
        assert!(!err.contains("BERTH_BUCKET"), "{err}");
        let cfg = parse_from(&[
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
        let aws = cfg.aws().unwrap().settings;
        assert!(aws.s3_path_style && aws.init);
        assert!(matches!(aws.queue, berth::app::AwsQueue::Name(ref n) if n == "q"));
        let cfg = parse_from(&[
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
mod tls_tests {
    use super::*;

    #[test]
    fn the_tls_files_go_together() {
        let p = try_parse_all_from(["berth", "--tls-cert", "c.pem", "--tls-key", "k.pem"]).unwrap();
        assert_eq!(
            p.tls,
            Some(TlsFiles {
                cert: "c.pem".into(),
                key: "k.pem".into()
            })
        );
        assert!(try_parse_all_from(["berth"]).unwrap().tls.is_none());
        assert!(try_parse_all_from(["berth", "--tls-cert", " "]).unwrap().tls.is_none());
        let err = try_parse_all_from(["berth", "--tls-cert", "c.pem"]).err().unwrap();
        assert!(err.contains("BERTH_TLS_KEY (--tls-key)"), "{err}");
    }

    #[test]
    fn the_readme_lists_the_server_settings() {
        let readme = include_str!("../../../README.md");
        let start = readme.find("## Configuration").unwrap();
        let section = &readme[start..];
        let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
        for s in SERVER_ONLY {
            assert!(section.contains(&format!("`{}`", s.env)), "README lacks {}", s.env);
            assert!(section.contains(&format!("--{}", s.flag)), "README lacks --{}", s.flag);
        }
    }
}

#[cfg(test)]
mod remote_url_tests {
    use super::*;

    #[test]
    fn remote_private_networks_is_allow_or_deny() {
        let cfg = try_parse_from(["berth", "--remote-private-networks", "deny"]).unwrap();
        assert_eq!(cfg.remote_private_networks, berth::domain::PrivateNetworks::Deny);
        assert!(try_parse_from(["berth", "--remote-private-networks", "maybe"]).is_err());
    }
}

/// The same setting means the same on both runtimes: every setting both read, given the same
/// text on this binary's command line and in a Lambda function's environment, parses to the
/// same configuration or fails with the same message.
#[cfg(test)]
mod same_on_both_runtimes {
    use std::collections::HashMap;

    use berth::config::Runtimes;

    use super::*;

    /// What the Lambda functions need besides the setting under test.
    const LAMBDA_BASE: &[(&str, &str)] = &[
        ("BERTH_BUCKET", "b"),
        ("BERTH_TABLE", "t"),
        ("BERTH_QUEUE_URL", "http://sqs/q"),
        ("BERTH_SECRET_ARN", "arn:admin"),
        ("BERTH_TOKEN_KEY_SECRET_ARN", "arn:token"),
        ("BERTH_FIELD_KEY_SECRET_ARN", "arn:field"),
    ];

    fn samples(s: &Setting) -> Vec<String> {
        let mut v: Vec<String> = match s.kind {
            Kind::Choice(words) => words
                .iter()
                .map(|w| w.to_string())
                .chain(["OFF".into(), "maybe".into(), "1".into()])
                .collect(),
            Kind::Number { min, max, .. } => {
                let mut v = vec![
                    min.to_string(),
                    max.to_string(),
                    (max + 1).to_string(),
                    "ten".into(),
                    "-1".into(),
                ];
                if min > 0 {
                    v.push((min - 1).to_string());
                }
                v
            }
            Kind::Url => vec![
                "http://localhost:4566".into(),
                "https://s3.example.com/".into(),
                "localhost:4566".into(),
                "ftp://x".into(),
            ],
            Kind::Secret | Kind::Text | Kind::Path => vec!["x".into(), "reader:pw,other:pw2".into(), "admin:x".into()],
            Kind::Switch => vec!["1".into(), "0".into()],
        };
        v.push(" ".into());
        v
    }

    #[test]
    fn every_shared_setting_parses_alike() {
        let shared: Vec<_> = ALL.iter().filter(|s| s.runtimes == Runtimes::Both).collect();
        assert!(shared.len() >= 15, "{}", shared.len());
        let mut checked = 0;
        for s in shared {
            let mut inputs: Vec<Option<String>> = samples(s).into_iter().map(Some).collect();
            inputs.push(None);
            for input in inputs {
                // the local binary on the AWS backend, from its command line (and its checks
                // of the bucket, table and queue, which the Lambda loader makes too)
                let mut args = vec!["berth".to_owned(), "--backend=aws".to_owned()];
                let mut env: HashMap<String, String> = LAMBDA_BASE
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                for name in ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"] {
                    if let Ok(v) = std::env::var(name) {
                        env.insert(name.to_owned(), v);
                    }
                }
                for (k, v) in LAMBDA_BASE {
                    let base = ALL.iter().find(|b| b.env == *k && b.runtimes == Runtimes::Both);
                    if let Some(base) = base.filter(|b| b.env != s.env) {
                        args.push(format!("--{}={v}", base.flag));
                    }
                }
                if let Some(v) = &input {
                    args.push(format!("--{}={v}", s.flag));
                    env.insert(s.env.to_owned(), v.clone());
                } else {
                    env.remove(s.env);
                }
                let local = try_parse_from(&args).and_then(|cfg| match cfg.aws_problems() {
                    p if p.is_empty() => Ok(cfg),
                    p => Err(p.join("; ")),
                });
                let lambda = Config::for_lambda(&|name: &str| env.get(name).cloned()).map_err(|e| e.to_string());
                match (&local, &lambda) {
                    (Ok(l), Ok(a)) => {
                        // the Secrets Manager ARNs are read on Lambda only
                        let mut a = a.clone();
                        a.secret_arn = None;
                        a.token_key_secret_arn = None;
                        a.field_key_secret_arn = None;
                        assert_eq!(l, &a, "{} = {input:?}", s.env)
                    }
                    (Err(l), Err(a)) => assert_eq!(l, a, "{} = {input:?}", s.env),
                    _ => panic!("{} = {input:?}: locally {local:?}, on Lambda {lambda:?}", s.env),
                }
                checked += 1;
            }
        }
        assert!(checked > 60, "{checked}");
    }
}
