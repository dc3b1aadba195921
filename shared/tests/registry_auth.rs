//! Registry authentication: the challenge, `/token`, and every way a token or a credential
//! can be wrong. In process, on the in-memory store.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use base64::Engine as _;
use berth::app::{LocalApp, Settings};
use berth::domain::{media, Digest};
use berth::services::tokens::{Access, TokenKey, Tokens};
use berth::services::{AuthMode, DistributionSpec, Serves};
use berth::store::{Repository, RepositoryKind};
use common::http::{basic, bearer, Req, Resp};
use http::{Method, StatusCode};
use serde_json::{json, Value};

const HOST: &str = "reg.test:5000";
const PW: &str = "admin-pw";

struct T {
    local: LocalApp,
    router: Router,
    pem: String,
}

impl T {
    async fn new(token_auth: bool) -> T {
        let key = TokenKey::generate();
        let pem = key.to_pem().unwrap();
        let auth = if token_auth {
            AuthMode::Token(Arc::new(Tokens::new(key, Duration::from_secs(300))))
        } else {
            AuthMode::Basic
        };
        let local = LocalApp::in_memory_with(Settings {
            auth,
            ..Default::default()
        });
        let reader = berth::config::ReadonlyUser {
            name: "reader".into(),
            password: berth::config::Secret::new("reader-pw"),
        };
        local.app.ensure_accounts(Some(PW), &[reader]).await.unwrap();
        // a public and a private distribution with content
        let t = T {
            router: local.app.router(),
            local,
            pem,
        };
        for (name, private) in [("pub/app", false), ("priv/app", true)] {
            let r = t
                .local
                .app
                .manage
                .create_repository(Repository::new(name, RepositoryKind::Push))
                .await
                .unwrap();
            t.local
                .app
                .manage
                .create_distribution(DistributionSpec {
                    name: name.into(),
                    base_path: berth::domain::RepoName::parse(name).unwrap(),
                    serves: Serves::Latest(r.id),
                    private,
                    description: None,
                    pulp_labels: Default::default(),
                })
                .await
                .unwrap();
        }
        t
    }

    async fn send(&self, method: Method, uri: &str, auth: Option<&str>, body: Vec<u8>) -> Resp {
        self.send_host(method, uri, auth, body, HOST).await
    }

    async fn send_host(&self, method: Method, uri: &str, auth: Option<&str>, body: Vec<u8>, host: &str) -> Resp {
        Req::new(method, uri)
            .header("host", host)
            .auth(auth)
            .body(body)
            .send(&self.router)
            .await
    }

    /// A token from `/token` for the scopes, with optional Basic credentials.
    async fn token(&self, creds: Option<(&str, &str)>, scopes: &[&str]) -> (String, Value) {
        let q: Vec<String> = scopes.iter().map(|s| format!("scope={s}")).collect();
        let uri = format!("/token?service={HOST}&{}", q.join("&"));
        let auth = creds.map(|(u, p)| basic(u, p));
        let r = self.send(Method::GET, &uri, auth.as_deref(), vec![]).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.json());
        let token = r.json()["token"].as_str().unwrap().to_owned();
        assert_eq!(r.json()["access_token"], r.json()["token"]);
        assert_eq!(r.json()["expires_in"], 300);
        assert!(r.json()["issued_at"].is_string());
        let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap();
        (token, serde_json::from_slice(&claims).unwrap())
    }

    async fn push_blob(&self, name: &str, auth: Option<&str>) -> Resp {
        let d = Digest::sha256_of(b"layer");
        self.send(
            Method::POST,
            &format!("/v2/{name}/blobs/uploads/?digest={d}"),
            auth,
            b"layer".to_vec(),
        )
        .await
    }
}

#[tokio::test]
async fn the_challenge_names_realm_service_and_scope() {
    let t = T::new(true).await;
    let r = t.send(Method::GET, "/v2/", None, vec![]).await;
    assert_eq!((r.status, r.code()), (StatusCode::UNAUTHORIZED, "UNAUTHORIZED"));
    assert_eq!(
        r.challenge(),
        format!("Bearer realm=\"http://{HOST}/token\",service=\"{HOST}\"")
    );
    let r = t.send(Method::GET, "/v2/pub/app/tags/list", None, vec![]).await;
    assert_eq!(
        r.challenge(),
        format!("Bearer realm=\"http://{HOST}/token\",service=\"{HOST}\",scope=\"repository:pub/app:pull\"")
    );
    let r = t.push_blob("new/repo", None).await;
    assert!(r.challenge().ends_with("scope=\"repository:new/repo:pull,push\""));
    let r = t.send(Method::GET, "/v2/_catalog", None, vec![]).await;
    assert!(r.challenge().ends_with("scope=\"registry:catalog:*\""));
    // behind API Gateway or a TLS proxy the realm is https
    let resp = Req::get("/v2/")
        .header("host", HOST)
        .header("x-forwarded-proto", "https")
        .send(&t.router)
        .await;
    let challenge = resp.headers["www-authenticate"].to_str().unwrap().to_owned();
    assert!(
        challenge.starts_with(&format!("Bearer realm=\"https://{HOST}/token\"")),
        "{challenge}"
    );
    // the signature extension is guarded like a pull
    let sigs = format!("/extensions/v2/priv/app/signatures/{}", Digest::sha256_of(b"m"));
    let r = t.send(Method::GET, &sigs, None, vec![]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.challenge().ends_with("scope=\"repository:priv/app:pull\""));
    let (tok, _) = t
        .token(Some(("reader", "reader-pw")), &["repository:priv/app:pull"])
        .await;
    let r = t.send(Method::GET, &sigs, Some(&bearer(&tok)), vec![]).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN"),
        "past auth: no such manifest"
    );
    assert_eq!(r.headers["x-registry-supports-signatures"], "1");
}

#[tokio::test]
async fn anonymous_pulls_public_not_private() {
    let t = T::new(true).await;
    let (tok, claims) = t
        .token(
            None,
            &[
                "repository:pub/app:pull",
                "repository:priv/app:pull",
                "repository:pub/app:push",
            ],
        )
        .await;
    assert_eq!(claims["sub"], "");
    assert_eq!(
        claims["access"],
        json!([{"type": "repository", "name": "pub/app", "actions": ["pull"]}])
    );
    for k in ["iss", "aud", "exp", "iat", "nbf", "jti"] {
        assert!(!claims[k].is_null(), "{k}");
    }
    assert_eq!(claims["aud"], HOST);
    let r = t
        .send(Method::GET, "/v2/pub/app/tags/list", Some(&bearer(&tok)), vec![])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = t
        .send(Method::GET, "/v2/priv/app/tags/list", Some(&bearer(&tok)), vec![])
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.challenge().contains("error=\"insufficient_scope\""));
    // an anonymous ping with an anonymous token works (the client's login probe)
    let (anon, _) = t.token(None, &[]).await;
    assert_eq!(
        t.send(Method::GET, "/v2/", Some(&bearer(&anon)), vec![]).await.status,
        StatusCode::OK
    );
    // the catalog shows anonymous callers public content only
    let (cat, _) = t.token(None, &["registry:catalog:*"]).await;
    let r = t.send(Method::GET, "/v2/_catalog", Some(&bearer(&cat)), vec![]).await;
    assert_eq!(r.json()["repositories"], json!(["pub/app"]));
    let (cat, _) = t.token(Some(("reader", "reader-pw")), &["registry:catalog:*"]).await;
    let r = t.send(Method::GET, "/v2/_catalog", Some(&bearer(&cat)), vec![]).await;
    assert_eq!(r.json()["repositories"], json!(["priv/app", "pub/app"]));
}

#[tokio::test]
async fn users_get_what_they_may_have() {
    let t = T::new(true).await;
    // admin: pull and push anywhere, also new names
    let (tok, claims) = t.token(Some(("admin", PW)), &["repository:new/repo:pull,push"]).await;
    assert_eq!(claims["sub"], "admin");
    assert_eq!(claims["access"][0]["actions"], json!(["pull", "push"]));
    assert_eq!(
        t.push_blob("new/repo", Some(&bearer(&tok))).await.status,
        StatusCode::CREATED
    );
    // reader: pulls private, never pushes
    let (tok, claims) = t
        .token(Some(("reader", "reader-pw")), &["repository:priv/app:pull,push"])
        .await;
    assert_eq!(claims["access"][0]["actions"], json!(["pull"]));
    assert_eq!(
        t.send(Method::GET, "/v2/priv/app/tags/list", Some(&bearer(&tok)), vec![])
            .await
            .status,
        StatusCode::OK
    );
    let r = t.push_blob("priv/app", Some(&bearer(&tok))).await;
    assert_eq!((r.status, r.code()), (StatusCode::UNAUTHORIZED, "UNAUTHORIZED"));
    assert!(r.challenge().contains("insufficient_scope"));
    // anonymous callers can't tell a private name from a missing one
    let (_, claims) = t
        .token(None, &["repository:priv/app:pull", "repository:missing/x:pull"])
        .await;
    assert_eq!(claims["access"], json!([]));
}

#[tokio::test]
async fn bad_credentials_and_tokens_are_refused_and_write_nothing() {
    let t = T::new(true).await;
    // /token: wrong password, unknown user, malformed headers
    for auth in [
        basic("admin", "wrong"),
        basic("nobody", PW),
        "Basic !!!".into(),
        "Basic Zm9v".into(),
        "Bearer abc".into(),
    ] {
        let r = t
            .send(
                Method::GET,
                "/token?service=x&scope=repository:pub/app:pull",
                Some(&auth),
                vec![],
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{auth}");
        assert!(r.json().get("token").is_none());
    }
    // scopes that don't parse grant nothing
    let (_, claims) = t
        .token(
            Some(("admin", PW)),
            &["nonsense", "repository:UPPER:pull", "repository:a", "foo:bar:baz"],
        )
        .await;
    assert_eq!(claims["access"], json!([]));

    let (good, _) = t.token(Some(("admin", PW)), &["repository:a/one:pull,push"]).await;
    let parts: Vec<&str> = good.split('.').collect();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let forged_claims = {
        let mut c: Value = serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
        c["access"][0]["name"] = json!("a/two");
        b64.encode(serde_json::to_vec(&c).unwrap())
    };
    // a token signed by another key, and an expired one signed by the right key
    let foreign = Tokens::new(TokenKey::generate(), Duration::from_secs(300));
    let (foreign_tok, _) = foreign.issue(
        "admin",
        HOST,
        vec![Access {
            kind: "repository".into(),
            name: "a/one".into(),
            actions: vec!["push".into()],
        }],
    );
    let same_key = Tokens::new(TokenKey::from_pem(&t.pem).unwrap(), Duration::from_secs(300));
    let (expired, _) = same_key.issue_at(
        "admin",
        HOST,
        vec![Access {
            kind: "repository".into(),
            name: "a/one".into(),
            actions: vec!["push".into()],
        }],
        chrono::Utc::now().timestamp() - 3600,
    );
    let cases = [
        (
            "bad signature",
            format!("{}.{}.{}", parts[0], forged_claims, parts[2]),
            "a/two",
        ),
        (
            "alg none",
            format!("{}.{}.", b64.encode(br#"{"alg":"none","typ":"JWT"}"#), parts[1]),
            "a/one",
        ),
        ("foreign key", foreign_tok, "a/one"),
        ("expired", expired, "a/one"),
        ("garbage", "not.a.token".to_owned(), "a/one"),
    ];
    for (what, tok, repo) in cases {
        let r = t.push_blob(repo, Some(&bearer(&tok))).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::UNAUTHORIZED, "UNAUTHORIZED"),
            "{what}"
        );
        assert!(
            r.challenge().contains("error=\"invalid_token\""),
            "{what}: {}",
            r.challenge()
        );
    }
    // a token for another audience (service)
    let r = t
        .send_host(
            Method::POST,
            "/v2/a/one/blobs/uploads/",
            Some(&bearer(&good)),
            vec![],
            "other.host",
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.challenge().contains("invalid_token"));
    // a token for repository A used on B, a pull token used to push
    let r = t.push_blob("a/two", Some(&bearer(&good))).await;
    assert!(r.challenge().contains("insufficient_scope"));
    let (pull_only, _) = t.token(Some(("admin", PW)), &["repository:a/one:pull"]).await;
    let r = t.push_blob("a/one", Some(&bearer(&pull_only))).await;
    assert!(r.challenge().contains("insufficient_scope"));
    // a Basic header on the registry is not a token
    let r = t.push_blob("a/one", Some(&basic("admin", PW))).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // nothing of the above was written
    assert!(t.local.app.store.repository_by_name("a/one").await.unwrap().is_none());
    assert!(t.local.app.store.repository_by_name("a/two").await.unwrap().is_none());
    // and the good token works
    assert_eq!(
        t.push_blob("a/one", Some(&bearer(&good))).await.status,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn pushes_into_mirrors_are_denied() {
    let t = T::new(true).await;
    let r = t
        .local
        .app
        .manage
        .create_repository(Repository::new("mirror", RepositoryKind::Mirror))
        .await
        .unwrap();
    t.local
        .app
        .manage
        .create_distribution(DistributionSpec {
            name: "mirror".into(),
            base_path: berth::domain::RepoName::parse("mirror").unwrap(),
            serves: Serves::Latest(r.id),
            private: false,
            description: None,
            pulp_labels: Default::default(),
        })
        .await
        .unwrap();
    let (tok, _) = t.token(Some(("admin", PW)), &["repository:mirror:pull,push"]).await;
    let r = t.push_blob("mirror", Some(&bearer(&tok))).await;
    assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "DENIED"));
    let m = json!({"schemaVersion": 2, "mediaType": media::OCI_MANIFEST, "config": {"mediaType": media::OCI_IMAGE_CONFIG, "digest": Digest::sha256_of(b"{}"), "size": 2}, "layers": []});
    let r = t
        .send(
            Method::PUT,
            "/v2/mirror/manifests/latest",
            Some(&bearer(&tok)),
            serde_json::to_vec(&m).unwrap(),
        )
        .await;
    assert_eq!(r.code(), "DENIED");
}

#[tokio::test]
async fn with_token_auth_off_the_registry_takes_basic_auth() {
    let t = T::new(false).await;
    // an anonymous ping is challenged, so that clients holding credentials send them; the
    // empty credentials containers/image sends when it holds none count as anonymous
    for auth in [None, Some("Basic Og==")] {
        let r = t.send(Method::GET, "/v2/", auth, vec![]).await;
        assert_eq!((r.status, r.code()), (StatusCode::UNAUTHORIZED, "UNAUTHORIZED"));
        assert_eq!(r.challenge(), "Basic realm=\"berth\"");
        assert_eq!(
            t.send(Method::GET, "/v2/pub/app/tags/list", auth, vec![]).await.status,
            StatusCode::OK,
            "anonymous pulls of public content need no ping"
        );
    }
    // a login checks the password: a wrong one is refused, the right one answered 200
    let r = t
        .send(Method::GET, "/v2/", Some(&basic("admin", "wrong")), vec![])
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    for (u, p) in [("admin", PW), ("reader", "reader-pw")] {
        let r = t.send(Method::GET, "/v2/", Some(&basic(u, p)), vec![]).await;
        assert_eq!(r.status, StatusCode::OK, "{u}");
    }
    let r = t.send(Method::GET, "/v2/priv/app/tags/list", None, vec![]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.challenge(), "Basic realm=\"berth\"");
    let r = t.push_blob("x/y", None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = t.push_blob("x/y", Some(&basic("admin", "wrong"))).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = t.push_blob("x/y", Some(&basic("reader", "reader-pw"))).await;
    assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "DENIED"));
    assert_eq!(
        t.send(
            Method::GET,
            "/v2/priv/app/tags/list",
            Some(&basic("reader", "reader-pw")),
            vec![]
        )
        .await
        .status,
        StatusCode::OK
    );
    assert_eq!(
        t.push_blob("x/y", Some(&basic("admin", PW))).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        t.send(Method::GET, "/token", None, vec![]).await.status,
        StatusCode::NOT_FOUND
    );
}

/// `POST /token` with a form, as containerd and docker send it.
async fn post_token(t: &T, form: &[(&str, &str)]) -> Resp {
    let body = serde_urlencoded::to_string(form).unwrap();
    Req::new(Method::POST, "/token")
        .header("host", HOST)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.into_bytes())
        .send(&t.router)
        .await
}

#[tokio::test]
async fn the_oauth2_form_issues_tokens_for_a_password_and_refuses_a_wrong_one() {
    let t = T::new(true).await;
    let r = post_token(
        &t,
        &[
            ("grant_type", "password"),
            ("username", "admin"),
            ("password", PW),
            ("service", HOST),
            ("client_id", "containerd-client"),
            ("scope", "repository:priv/app:pull repository:x/y:pull,push"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    let body = r.json();
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(body["token"], body["access_token"]);
    assert_eq!(body["expires_in"], 300);
    assert_eq!(body["scope"], "repository:priv/app:pull repository:x/y:pull,push");
    assert!(body.get("refresh_token").is_none(), "no refresh token unless asked for");
    let r = t
        .send(Method::GET, "/v2/priv/app/tags/list", Some(&bearer(token)), vec![])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        t.push_blob("x/y", Some(&bearer(token))).await.status,
        StatusCode::CREATED
    );
    // a reader gets what a reader may do: a pull, no push
    let r = post_token(
        &t,
        &[
            ("grant_type", "password"),
            ("username", "reader"),
            ("password", "reader-pw"),
            ("service", HOST),
            ("scope", "repository:priv/app:pull,push"),
        ],
    )
    .await;
    assert_eq!(r.json()["scope"], "repository:priv/app:pull");
    // a wrong password, an unknown user: 401 with a Basic challenge
    for (u, p) in [("admin", "wrong"), ("nobody", "x")] {
        let r = post_token(
            &t,
            &[
                ("grant_type", "password"),
                ("username", u),
                ("password", p),
                ("service", HOST),
            ],
        )
        .await;
        assert_eq!((r.status, r.code()), (StatusCode::UNAUTHORIZED, "UNAUTHORIZED"), "{u}");
        assert_eq!(r.challenge(), "Basic realm=\"berth\"");
    }
    // malformed requests: 400, never a token
    for form in [
        vec![("username", "admin"), ("password", PW)],
        vec![("grant_type", "client_credentials")],
        vec![("grant_type", "password"), ("username", "admin")],
        vec![("grant_type", "refresh_token")],
    ] {
        let r = post_token(&t, &form).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{form:?}: {}", r.json());
        assert!(r.json()["errors"][0]["message"].is_string());
    }
    let r = Req::new(Method::POST, "/token")
        .header("host", HOST)
        .body(vec![b'a'; 70 * 1024])
        .send(&t.router)
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn refresh_tokens_stand_in_for_the_password_until_it_changes() {
    let t = T::new(true).await;
    // docker login: GET with offline_token=true
    let r = t
        .send(
            Method::GET,
            &format!("/token?service={HOST}&offline_token=true&client_id=docker"),
            Some(&basic("reader", "reader-pw")),
            vec![],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let refresh = r.json()["refresh_token"].as_str().unwrap().to_owned();
    // anonymous callers never get one
    let r = t
        .send(
            Method::GET,
            &format!("/token?service={HOST}&offline_token=true"),
            None,
            vec![],
        )
        .await;
    assert!(r.json().get("refresh_token").is_none());
    // the OAuth2 password grant gives one with access_type=offline
    let r = post_token(
        &t,
        &[
            ("grant_type", "password"),
            ("username", "reader"),
            ("password", "reader-pw"),
            ("service", HOST),
            ("access_type", "offline"),
        ],
    )
    .await;
    assert!(r.json()["refresh_token"].is_string());
    // traded for an access token with the user's rights
    let r = post_token(
        &t,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("service", HOST),
            ("scope", "repository:priv/app:pull,push"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    assert_eq!(r.json()["scope"], "repository:priv/app:pull");
    let token = r.json()["access_token"].as_str().unwrap().to_owned();
    let r = t
        .send(Method::GET, "/v2/priv/app/tags/list", Some(&bearer(&token)), vec![])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    // a refresh token is no access token, and an access token no refresh token
    let r = t
        .send(Method::GET, "/v2/priv/app/tags/list", Some(&bearer(&refresh)), vec![])
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = t.send(Method::GET, "/v2/", Some(&bearer(&refresh)), vec![]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = post_token(
        &t,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &token),
            ("service", HOST),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // nor is it good for another service, or once tampered with
    let r = post_token(
        &t,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("service", "other:5000"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = post_token(
        &t,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &format!("{refresh}x")),
            ("service", HOST),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // a new password (even the same one again) ends it
    t.local.app.users.set_user("reader", "reader-pw", false).await.unwrap();
    let r = post_token(
        &t,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("service", HOST),
        ],
    )
    .await;
    assert_eq!((r.status, r.code()), (StatusCode::UNAUTHORIZED, "UNAUTHORIZED"));
    assert!(r.json()["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("log in again"));
}
