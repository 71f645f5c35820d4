//! The sim's streamed answers: Server-Sent Events in Anthropic's format,
//! with error events before or inside the stream.

use bytes::Bytes;
use serde_json::{Value, json};

use crate::config::ConfigError;

/// The error an injected error event carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum StreamFault {
    /// `overloaded_error` (the stream's 529). The default.
    #[default]
    Overloaded,
    /// `rate_limit_error` (the stream's 429).
    RateLimit,
    /// `api_error` (the stream's 500).
    Api,
}

impl StreamFault {
    fn error_type(self) -> &'static str {
        match self {
            StreamFault::Overloaded => "overloaded_error",
            StreamFault::RateLimit => "rate_limit_error",
            StreamFault::Api => "api_error",
        }
    }

    fn message(self) -> &'static str {
        match self {
            StreamFault::Overloaded => "Overloaded",
            StreamFault::RateLimit => "Rate limited",
            StreamFault::Api => "Internal server error",
        }
    }
}

/// How the sim streams: a request whose JSON body has `"stream": true` (or
/// every request, with [`always`](Streaming::always)) is answered with
/// `200 text/event-stream` in Anthropic's format: `message_start`,
/// `content_block_start`, `deltas` × `content_block_delta`,
/// `content_block_stop`, `message_delta`, `message_stop`. Error events are
/// drawn from the sim's seeded generator: `error_first` of the streams
/// send only an error event, `error_after` of the others stop with one
/// after `after_events` events.
///
/// ```
/// use evenkeel_sim::{Sim, StreamFault, Streaming};
///
/// let sim = Sim::builder()
///     .streaming(
///         Streaming::new()
///             .deltas(5)
///             .error_first(0.3)
///             .error_after(0.1, 2)
///             .fault(StreamFault::Overloaded),
///     )
///     .build()?;
/// # let _ = sim;
/// # Ok::<(), evenkeel_sim::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Streaming {
    pub(crate) always: bool,
    pub(crate) deltas: usize,
    pub(crate) error_first: f64,
    pub(crate) error_after: f64,
    pub(crate) after_events: usize,
    pub(crate) fault: StreamFault,
    pub(crate) first_attempt: bool,
}

impl Default for Streaming {
    fn default() -> Self {
        Streaming {
            always: false,
            deltas: 3,
            error_first: 0.0,
            error_after: 0.0,
            after_events: 1,
            fault: StreamFault::default(),
            first_attempt: false,
        }
    }
}

impl Streaming {
    /// Streams for requests that ask (`"stream": true`), three deltas, no
    /// errors.
    pub fn new() -> Self {
        Self::default()
    }

    /// Streams every successful answer, whatever the request says.
    pub fn always(mut self) -> Self {
        self.always = true;
        self
    }

    /// The number of `content_block_delta` events (default 3). Field:
    /// `stream.deltas`.
    pub fn deltas(mut self, deltas: usize) -> Self {
        self.deltas = deltas;
        self
    }

    /// The fraction of streams that send an error event first, and
    /// nothing else. Field: `stream.error_first`.
    pub fn error_first(mut self, fraction: f64) -> Self {
        self.error_first = fraction;
        self
    }

    /// The fraction of streams that stop with an error event after
    /// `events` events (at least 1: `message_start`). Fields:
    /// `stream.error_after`, `stream.after_events`.
    pub fn error_after(mut self, fraction: f64, events: usize) -> Self {
        self.error_after = fraction;
        self.after_events = events;
        self
    }

    /// The first attempt of every request that carries an `x-request-id`
    /// sends an error event first, and nothing else; later attempts of the
    /// same id stream as the other settings say. A server that refuses
    /// every stream once, without any randomness.
    pub fn error_on_first_attempt(mut self) -> Self {
        self.first_attempt = true;
        self
    }

    /// The error the injected events carry (default
    /// [`StreamFault::Overloaded`]).
    pub fn fault(mut self, fault: StreamFault) -> Self {
        self.fault = fault;
        self
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        for (field, p) in [
            ("stream.error_first", self.error_first),
            ("stream.error_after", self.error_after),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(ConfigError::new(
                    field,
                    format!("must be a fraction between 0 and 1, got {p}"),
                ));
            }
        }
        if self.error_first + self.error_after > 1.0 {
            return Err(ConfigError::new(
                "stream.error_after",
                "together with `stream.error_first` must be at most 1",
            ));
        }
        if self.after_events == 0 {
            return Err(ConfigError::new(
                "stream.after_events",
                "must be at least 1 (an error before any event is `error_first`)",
            ));
        }
        if self.deltas > 100_000 {
            return Err(ConfigError::new("stream.deltas", "must be at most 100000"));
        }
        Ok(())
    }

    /// Whether the request with `body` is answered with a stream.
    pub(crate) fn wants(&self, body: Option<&Bytes>) -> bool {
        self.always || body.is_some_and(|b| asks_for_stream(b))
    }

    /// Where the stream's error event goes, from one draw `u` in [0, 1).
    pub(crate) fn plan(&self, u: f64) -> Plan {
        if u < self.error_first {
            Plan::ErrorFirst
        } else if u < self.error_first + self.error_after {
            Plan::ErrorAfter(self.after_events)
        } else {
            Plan::Complete
        }
    }

    /// The stream's bytes.
    pub(crate) fn body(&self, plan: Plan, id: &str, input_tokens: u64) -> Bytes {
        let error = event(
            "error",
            &json!({
                "type": "error",
                "error": {"type": self.fault.error_type(), "message": self.fault.message()},
            }),
        );
        if plan == Plan::ErrorFirst {
            return Bytes::from(error);
        }
        let mut events = Vec::with_capacity(self.deltas + 5);
        events.push(event(
            "message_start",
            &json!({
                "type": "message_start",
                "message": {
                    "id": id, "type": "message", "role": "assistant",
                    "model": "evenkeel-sim", "content": [], "stop_reason": null,
                    "usage": {"input_tokens": input_tokens, "output_tokens": 1},
                },
            }),
        ));
        events.push(event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": 0,
                    "content_block": {"type": "text", "text": ""}}),
        ));
        for i in 0..self.deltas {
            events.push(event(
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": 0,
                        "delta": {"type": "text_delta", "text": format!("ok {i} ")}}),
            ));
        }
        events.push(event(
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": 0}),
        ));
        events.push(event(
            "message_delta",
            &json!({"type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                    "usage": {"output_tokens": self.deltas}}),
        ));
        events.push(event("message_stop", &json!({"type": "message_stop"})));
        if let Plan::ErrorAfter(n) = plan
            && n < events.len()
        {
            events.truncate(n);
            events.push(error);
        }
        Bytes::from(events.concat())
    }
}

/// Where a stream's error goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Plan {
    Complete,
    ErrorFirst,
    ErrorAfter(usize),
}

fn event(name: &str, data: &Value) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

/// `true` when `body` is a JSON object with `"stream": true`.
fn asks_for_stream(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("stream").and_then(Value::as_bool))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_and_bodies() {
        let s = Streaming::new().error_first(0.25).error_after(0.25, 2);
        assert_eq!(s.plan(0.1), Plan::ErrorFirst);
        assert_eq!(s.plan(0.3), Plan::ErrorAfter(2));
        assert_eq!(s.plan(0.9), Plan::Complete);
        let body = s.body(Plan::Complete, "msg_1", 3);
        let text = std::str::from_utf8(&body).unwrap();
        assert!(text.starts_with("event: message_start\n"));
        assert_eq!(text.matches("event: content_block_delta").count(), 3);
        assert!(text.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"));
        let body = s.body(Plan::ErrorAfter(2), "msg_1", 3);
        let text = std::str::from_utf8(&body).unwrap();
        assert_eq!(
            text.matches("\n\n").count(),
            3,
            "two events, then the error"
        );
        assert!(text.contains("event: error\ndata: {\"error\":{\"message\":\"Overloaded\",\"type\":\"overloaded_error\"},\"type\":\"error\"}"));
        assert!(asks_for_stream(br#"{"model":"m","stream":true}"#));
        assert!(!asks_for_stream(br#"{"stream":"yes"}"#));
        assert!(!asks_for_stream(b"\xff not json"));
    }

    #[test]
    fn validation_names_the_field() {
        let err = Streaming::new().error_first(1.5).validate().unwrap_err();
        assert_eq!(err.field(), "stream.error_first");
        let err = Streaming::new().error_after(0.5, 0).validate().unwrap_err();
        assert_eq!(err.field(), "stream.after_events");
        let err = Streaming::new()
            .error_first(0.6)
            .error_after(0.6, 1)
            .validate()
            .unwrap_err();
        assert_eq!(err.field(), "stream.error_after");
    }
}
