//! Berth's management API (Pulp-compatible) on AWS Lambda behind API Gateway.
//!
//! Configuration → clients built once at cold start → router → `lambda_http::run`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    berth::lambda::init_tracing();
    let cfg = berth::lambda::LambdaConfig::from_env()?;
    let app = berth::lambda::build(&cfg, berth::lambda::Role::Api).await?;
    lambda_http::run(app.app.api_router()).await
}
