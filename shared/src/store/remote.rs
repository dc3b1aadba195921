//! The remote record: where and how a sync fetches (Pulp's container remote), its download
//! policy and its extra headers.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::RepoName;
use crate::ports::{UpstreamConfig, UpstreamProxy, UpstreamTls};

/// How a remote's content is fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Everything is downloaded during the sync.
    #[default]
    Immediate,
    /// Manifests and configs at sync; layers on first pull, then stored.
    OnDemand,
    /// Manifests and configs at sync; layers passed through from upstream on every pull.
    Streamed,
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Immediate => "immediate",
            Policy::OnDemand => "on_demand",
            Policy::Streamed => "streamed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "immediate" => Some(Policy::Immediate),
            "on_demand" => Some(Policy::OnDemand),
            "streamed" => Some(Policy::Streamed),
            _ => None,
        }
    }
}

/// What a remote is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RemoteKind {
    /// One upstream repository (`upstream_name`), synced into a repository (Pulp's container
    /// remote).
    #[default]
    Container,
    /// A whole upstream registry, mirrored on demand through a pull-through distribution
    /// (Pulp's pull-through remote): `includes` / `excludes` filter upstream repository
    /// names, and `upstream_name` means nothing.
    PullThrough,
}

/// An upstream repository to sync from, or (kind `PullThrough`) an upstream registry to cache.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Remote {
    pub id: Uuid,
    pub name: String,
    pub url: String,
    pub upstream_name: RepoName,
    #[serde(default)]
    pub kind: RemoteKind,
    #[serde(default)]
    pub includes: Option<Vec<String>>,
    #[serde(default)]
    pub excludes: Option<Vec<String>>,
    #[serde(default)]
    pub policy: Policy,
    #[serde(default)]
    pub sigstore: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    /// Write-only in the API; never logged.
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default = "yes")]
    pub tls_validation: bool,
    #[serde(default)]
    pub download_concurrency: Option<u64>,
    #[serde(default)]
    pub rate_limit: Option<u64>,
    #[serde(default)]
    pub max_retries: Option<u64>,
    #[serde(default)]
    pub total_timeout: Option<f64>,
    #[serde(default)]
    pub connect_timeout: Option<f64>,
    #[serde(default)]
    pub sock_connect_timeout: Option<f64>,
    #[serde(default)]
    pub sock_read_timeout: Option<f64>,
    /// Extra request headers sent with every upstream request.
    #[serde(default)]
    pub headers: Option<RemoteHeaders>,
    #[serde(default)]
    pub ca_cert: Option<String>,
    #[serde(default)]
    pub client_cert: Option<String>,
    #[serde(default)]
    pub client_key: Option<String>,
    #[serde(default)]
    pub proxy_url: Option<String>,
    #[serde(default)]
    pub proxy_username: Option<String>,
    #[serde(default)]
    pub proxy_password: Option<String>,
    #[serde(default)]
    pub pulp_labels: BTreeMap<String, String>,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
}

fn yes() -> bool {
    true
}

fn seconds(s: Option<f64>) -> Option<std::time::Duration> {
    s.filter(|s| s.is_finite() && *s > 0.0)
        .map(std::time::Duration::from_secs_f64)
}

/// A remote's extra request headers, in order, each a valid HTTP header name and value.
/// Stored and rendered as Pulp spells them: a list of one-entry objects
/// (`[{"X-Api-Key": "…"}]`); a plain object is read too.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RemoteHeaders(Vec<(String, String)>);

impl RemoteHeaders {
    /// Headers from the API's JSON: a list of objects (or one object) whose values are
    /// strings; names and values must be valid in HTTP. The error says what is wrong.
    pub fn from_json(v: &serde_json::Value) -> Result<Self, String> {
        let mut out = Vec::new();
        let mut take = |o: &serde_json::Map<String, serde_json::Value>| -> Result<(), String> {
            for (k, v) in o {
                let value = v
                    .as_str()
                    .ok_or_else(|| format!("The value of {k:?} must be a string."))?;
                if http::HeaderName::from_bytes(k.as_bytes()).is_err() {
                    return Err(format!("{k:?} is not a valid header name."));
                }
                if http::HeaderValue::from_str(value).is_err() {
                    return Err(format!("The value of {k:?} is not a valid header value."));
                }
                out.push((k.clone(), value.to_owned()));
            }
            Ok(())
        };
        match v {
            serde_json::Value::Array(items) => {
                for i in items {
                    take(i.as_object().ok_or("Expected a list of objects.")?)?;
                }
            }
            serde_json::Value::Object(o) => take(o)?,
            _ => return Err("Expected a list of items.".into()),
        }
        Ok(RemoteHeaders(out))
    }

    /// The headers in order, as (name, value).
    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    /// Pulp's spelling: a list of one-entry objects.
    pub fn to_json(&self) -> serde_json::Value {
        self.0
            .iter()
            .map(|(k, v)| serde_json::json!({ k.as_str(): v }))
            .collect()
    }
}

impl Serialize for RemoteHeaders {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

impl<'de> Deserialize<'de> for RemoteHeaders {
    /// Lenient for what older versions stored: entries that are not a valid string header
    /// are left out (they were never sent).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        let objects: Vec<serde_json::Map<String, serde_json::Value>> = match v {
            serde_json::Value::Array(items) => items
                .into_iter()
                .filter_map(|i| match i {
                    serde_json::Value::Object(o) => Some(o),
                    _ => None,
                })
                .collect(),
            serde_json::Value::Object(o) => vec![o],
            _ => Vec::new(),
        };
        let mut out = Vec::new();
        for o in objects {
            for (k, v) in o {
                let valid = http::HeaderName::from_bytes(k.as_bytes()).is_ok();
                if let Some(v) = v.as_str().filter(|v| valid && http::HeaderValue::from_str(v).is_ok()) {
                    out.push((k, v.to_owned()));
                }
            }
        }
        Ok(RemoteHeaders(out))
    }
}

impl Remote {
    /// A remote with Pulp's defaults (immediate policy, TLS validation on, no filters).
    pub fn new(name: &str, url: &str, upstream_name: RepoName) -> Self {
        let now = Utc::now();
        Remote {
            id: Uuid::new_v4(),
            name: name.to_owned(),
            url: url.to_owned(),
            upstream_name,
            kind: RemoteKind::Container,
            includes: None,
            excludes: None,
            policy: Policy::Immediate,
            sigstore: None,
            username: None,
            password: None,
            tls_validation: true,
            download_concurrency: None,
            rate_limit: None,
            max_retries: None,
            total_timeout: None,
            connect_timeout: None,
            sock_connect_timeout: None,
            sock_read_timeout: None,
            headers: None,
            ca_cert: None,
            client_cert: None,
            client_key: None,
            proxy_url: None,
            proxy_username: None,
            proxy_password: None,
            pulp_labels: BTreeMap::new(),
            created: now,
            updated: now,
        }
    }

    /// The connection settings an upstream client needs.
    pub fn upstream_config(&self) -> UpstreamConfig {
        // the proxy and TLS settings are in the key too, so a client never outlives them
        let connection = {
            use sha2::Digest as _;
            let mut h = sha2::Sha256::new();
            for v in [
                &self.proxy_url,
                &self.proxy_username,
                &self.proxy_password,
                &self.ca_cert,
                &self.client_cert,
                &self.client_key,
            ] {
                h.update(v.as_deref().map_or(0u64, |v| v.len() as u64 + 1).to_be_bytes());
                h.update(v.as_deref().unwrap_or("").as_bytes());
            }
            hex::encode(&h.finalize()[..8])
        };
        let proxy = self.proxy_url.clone().filter(|u| !u.trim().is_empty());
        UpstreamConfig {
            key: format!("{}@{}#{connection}", self.id, self.updated.timestamp_micros()),
            url: self.url.clone(),
            upstream_name: self.upstream_name.clone(),
            username: self.username.clone(),
            password: self.password.clone(),
            tls_validation: self.tls_validation,
            download_concurrency: self.download_concurrency,
            rate_limit: self.rate_limit,
            max_retries: self.max_retries,
            total_timeout: seconds(self.total_timeout),
            connect_timeout: seconds(self.connect_timeout.or(self.sock_connect_timeout)),
            read_timeout: seconds(self.sock_read_timeout),
            headers: self.headers.as_ref().map(|h| h.pairs().to_vec()).unwrap_or_default(),
            proxy: proxy.map(|url| UpstreamProxy {
                url,
                username: self.proxy_username.clone(),
                password: self.proxy_password.clone(),
            }),
            tls: UpstreamTls {
                ca_cert: self.ca_cert.clone(),
                client_cert: self.client_cert.clone(),
                client_key: self.client_key.clone(),
            },
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn remote_headers_keep_pulp_s_spelling_and_read_what_older_versions_stored() {
        let h = RemoteHeaders::from_json(&json!([{"X-Api-Key": "k"}, {"Accept-Language": "en"}])).unwrap();
        assert_eq!(h.to_json(), json!([{"X-Api-Key": "k"}, {"Accept-Language": "en"}]));
        assert_eq!(
            RemoteHeaders::from_json(&json!({"X-A": "1"})).unwrap().pairs(),
            [("X-A".to_owned(), "1".to_owned())]
        );
        for bad in [
            json!("X: y"),
            json!([{"X": 1}]),
            json!([{"a b": "c"}]),
            json!([{"X": "a\nb"}]),
            json!(["X"]),
        ] {
            assert!(RemoteHeaders::from_json(&bad).is_err(), "{bad}");
        }
        // stored by an older version without checks: what can never be sent is left out
        let old: RemoteHeaders = serde_json::from_value(json!([{"X": 1, "Y": "ok"}, "junk", {"a b": "c"}])).unwrap();
        assert_eq!(old.pairs(), [("Y".to_owned(), "ok".to_owned())]);
        let back: RemoteHeaders = serde_json::from_value(serde_json::to_value(&h).unwrap()).unwrap();
        assert_eq!(back, h);
    }
}
