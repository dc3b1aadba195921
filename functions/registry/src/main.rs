//! Berth's OCI registry (`/v2`, `/token`, `/extensions`) on AWS Lambda behind API Gateway.
//! Blob GETs answer 307 to presigned S3 URLs, so no blob bytes pass through the function.
//!
//! Configuration → clients built once at cold start → router → `lambda_http::run`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    berth::lambda::init_tracing();
    let cfg = berth::lambda::config_from_env()?;
    let app = berth::lambda::build(&cfg, berth::lambda::Role::Registry).await?;
    let router = berth::lambda::observed(app.app.registry_router(), &app.app)
        .layer(axum::middleware::from_fn(berth::lambda::body_limit))
        .layer(axum::middleware::from_fn(berth::lambda::client_addr));
    lambda_http::run(router).await
}
