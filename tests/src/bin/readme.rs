//! Calls the Anthropic Messages API through the evenkeel preset.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tower::ServiceExt;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let api_key = std::env::var("ANTHROPIC_API_KEY")?;
    let base_url =
        std::env::var("ANTHROPIC_BASE_URL").unwrap_or_else(|_| "https://api.anthropic.com".into());

    // Built once, cloned per request: clones share every quota, limit and budget.
    let client = evenkeel::Preset::builder()
        .endpoint(base_url) // primary; add `.endpoint(...)` for a backup
        .build_https()?;

    let body = r#"{"model":"claude-sonnet-4-5","max_tokens":256,
                   "messages":[{"role":"user","content":"Hello"}]}"#;
    let request = http::Request::post("/v1/messages")
        .header("x-api-key", api_key)
        .header("anthropic-version", "2023-06-01")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))?;
    let response = client.clone().oneshot(request).await?;
    let status = response.status();
    let text = response.into_body().collect().await?.to_bytes();
    println!("{status}: {}", String::from_utf8_lossy(&text));
    Ok(())
}
