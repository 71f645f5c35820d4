//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use bytes::Bytes;
use evenkeel_sim::{Sim, SimError};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use tower::ServiceExt;

/// A POST to the sim with an `x-request-id` and a body.
pub fn request(id: &str, body: &'static str) -> Request<Full<Bytes>> {
    Request::post("/v1/messages")
        .header("x-request-id", id)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap()
}

/// One call through a clone of the in-process sim.
pub async fn call(sim: &Sim, id: &str) -> Result<Response<Full<Bytes>>, SimError> {
    sim.clone().oneshot(request(id, "{}")).await
}

/// One call, which must be answered; returns its status code.
pub async fn status(sim: &Sim, id: &str) -> u16 {
    call(sim, id).await.expect("answered").status().as_u16()
}

/// A header as a string.
pub fn header<'a>(res: &'a Response<Full<Bytes>>, name: &str) -> Option<&'a str> {
    res.headers()
        .get(name)
        .map(|v| v.to_str().expect("ascii header"))
}

/// The body as JSON.
pub async fn json(res: Response<Full<Bytes>>) -> serde_json::Value {
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).expect("JSON body")
}
