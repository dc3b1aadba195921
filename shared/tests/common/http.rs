//! One request through a router in process (`oneshot`, no server), and what came back.

use std::sync::OnceLock;

use axum::body::Body;
use axum::Router;
use base64::Engine as _;
use http::{HeaderMap, Method, StatusCode};
use serde_json::Value;
use tower::ServiceExt as _;

/// A response: status, headers and the whole body.
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    parsed: OnceLock<Value>,
}

impl Resp {
    /// The body as JSON, or `null` when it is not JSON.
    pub fn json(&self) -> Value {
        self.parsed().clone()
    }

    fn parsed(&self) -> &Value {
        self.parsed
            .get_or_init(|| serde_json::from_slice(&self.body).unwrap_or(Value::Null))
    }

    /// A header's value, or `""` when absent.
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    /// The first OCI error code of the body, or `""`.
    pub fn code(&self) -> &str {
        self.parsed()["errors"][0]["code"].as_str().unwrap_or("")
    }

    /// The `WWW-Authenticate` challenge, or `""`.
    pub fn challenge(&self) -> &str {
        self.header("www-authenticate")
    }

    /// Status and body, for assertion messages.
    pub fn text(&self) -> String {
        format!("{} {}", self.status, String::from_utf8_lossy(&self.body))
    }
}

/// A request being built: `Req::new(Method::GET, "/v2/").basic("admin", pw).send(&router)`.
pub struct Req {
    builder: http::request::Builder,
    body: Body,
}

impl Req {
    pub fn new(method: Method, uri: &str) -> Self {
        Req {
            builder: http::Request::builder().method(method).uri(uri),
            body: Body::empty(),
        }
    }

    pub fn get(uri: &str) -> Self {
        Self::new(Method::GET, uri)
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.builder = self.builder.header(name, value);
        self
    }

    /// Every `(name, value)` as a header.
    pub fn headers(self, headers: &[(&str, &str)]) -> Self {
        headers.iter().fold(self, |r, (k, v)| r.header(k, v))
    }

    /// An `Authorization` header, when there is one.
    pub fn auth(self, authorization: Option<&str>) -> Self {
        match authorization {
            Some(a) => self.header("authorization", a),
            None => self,
        }
    }

    /// Basic credentials.
    pub fn basic(self, user: &str, password: &str) -> Self {
        self.header("authorization", &basic(user, password))
    }

    pub fn body(mut self, body: impl Into<Body>) -> Self {
        self.body = body.into();
        self
    }

    /// A JSON body, with its content type.
    pub fn json(self, v: &Value) -> Self {
        self.header("content-type", "application/json")
            .body(serde_json::to_vec(v).unwrap())
    }

    pub async fn send(self, router: &Router) -> Resp {
        let resp = router
            .clone()
            .oneshot(self.builder.body(self.body).unwrap())
            .await
            .unwrap();
        let (status, headers) = (resp.status(), resp.headers().clone());
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec();
        Resp {
            status,
            headers,
            body,
            parsed: OnceLock::new(),
        }
    }
}

/// An `Authorization` value for Basic credentials.
pub fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// An `Authorization` value for a bearer token.
pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}
