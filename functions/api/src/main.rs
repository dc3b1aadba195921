//! Berth's management API (Pulp-compatible) on AWS Lambda behind API Gateway.
//!
//! Configuration → clients built once at cold start → router → `lambda_http::run`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    berth::lambda::init_tracing();
    let cfg = berth::lambda::config_from_env()?;
    let app = berth::lambda::build(&cfg, berth::lambda::Role::Api).await?;
    let router = berth::lambda::observed(app.app.api_router(), &app.app)
        .layer(axum::middleware::from_fn(berth::lambda::client_addr));
    lambda_http::run(router).await
}
