//! What a request costs against each quota, and how the cost is estimated.
//!
//! Every request costs one unit of the requests quota. Token quotas (the
//! tokens, input-tokens and output-tokens limits of LLM APIs) need an
//! estimate *before* the request is sent: the layer reserves it, and the
//! server's rate-limit headers on the response replace the estimate with
//! the truth.
//!
//! # Where the estimate comes from
//!
//! The layer asks its [`Estimate`] for a [`Cost`] when a request arrives.
//! An estimator sees `&http::Request<B>`: the method, URI, headers and
//! extensions, but not the body bytes, because a body is a stream that the
//! layer must not consume. Three ways to get a token estimate to the layer:
//!
//! 1. **A `Cost` extension** (the default estimator, [`PerRequest`], reads
//!    it). The code that builds the request has the prompt and
//!    `max_tokens` in hand; it inserts
//!    `request.extensions_mut().insert(Cost::new().with_input_tokens(n).with_output_tokens(m))`.
//!    Extensions survive the retry layer's resends. Every built-in
//!    estimator gives an explicit `Cost` extension precedence.
//! 2. **Headers** ([`Header`]): the cost is read from request headers that
//!    a gateway or the caller sets.
//! 3. **The body, when it is complete at once** ([`EstimateLayer`]): a
//!    small layer placed *outside* the retry layer (where the body is still
//!    the caller's `Full<Bytes>` or `String`) reads the whole body without
//!    consuming it, runs an [`EstimateBody`] such as [`Llm`] (input tokens
//!    from the JSON's size, output tokens from its `max_tokens`), and
//!    inserts the result as a `Cost` extension for the quota layer below.
//!
//! [`Llm`] also implements [`Estimate`] directly, from the body's exact size
//! hint (or `Content-Length`) alone, for stacks where the body cannot be
//! read: input tokens from the size, output tokens from its configured
//! default.
//!
//! # Exact and estimated costs
//!
//! A cost is *estimated* by default: an upper estimate such as `max_tokens`
//! is fine for reserving, but it says nothing exact about what the server
//! charged. Mark a cost [`exact`](Cost::exact) when it is what the server
//! will charge (a token count from the provider's tokenizer, a cost header
//! the server itself reads): the layer then also learns token quotas'
//! refill rates from what it observes between responses, as it always does
//! for the requests quota.

mod estimate;
mod json;
mod layer;

use evenkeel_headers::Resource;

pub use estimate::{Estimate, EstimateBody, FromFn, Header, Llm, PerRequest, from_fn};
pub use layer::{EstimateLayer, EstimateService, WholeBody};

/// The number of cost dimensions the layer meters: requests, tokens, input
/// tokens, output tokens.
pub(crate) const FIELDS: usize = 4;

/// What one request costs against each quota it may count in.
///
/// `Copy`, no allocation. Requests cost 1 by default; the combined tokens
/// cost defaults to input + output tokens unless set with
/// [`with_tokens`](Self::with_tokens).
///
/// ```
/// use evenkeel_quota::cost::Cost;
/// use evenkeel_headers::Resource;
///
/// let cost = Cost::new().with_input_tokens(1_200).with_output_tokens(1_024);
/// assert_eq!(cost.of(&Resource::Requests), Some(1));
/// assert_eq!(cost.of(&Resource::Tokens), Some(2_224));
/// assert_eq!(cost.of(&Resource::ContentBytes), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cost {
    requests: u64,
    tokens: Option<u64>,
    input_tokens: u64,
    output_tokens: u64,
    exact: bool,
}

impl Default for Cost {
    fn default() -> Self {
        Cost::new()
    }
}

impl Cost {
    /// One request, no tokens.
    pub const fn new() -> Self {
        Cost {
            requests: 1,
            tokens: None,
            input_tokens: 0,
            output_tokens: 0,
            exact: false,
        }
    }

    /// Sets the requests count (1 by default; a batch endpoint may count
    /// more).
    #[must_use]
    pub const fn with_requests(mut self, requests: u64) -> Self {
        self.requests = requests;
        self
    }

    /// Sets the combined tokens cost, overriding input + output tokens.
    #[must_use]
    pub const fn with_tokens(mut self, tokens: u64) -> Self {
        self.tokens = Some(tokens);
        self
    }

    /// Sets the input (prompt) tokens.
    #[must_use]
    pub const fn with_input_tokens(mut self, tokens: u64) -> Self {
        self.input_tokens = tokens;
        self
    }

    /// Sets the output tokens (for LLM APIs: `max_tokens`, the most the
    /// response may use).
    #[must_use]
    pub const fn with_output_tokens(mut self, tokens: u64) -> Self {
        self.output_tokens = tokens;
        self
    }

    /// Marks the token counts as exact: what the server will charge, not an
    /// upper estimate. See the [module docs](self).
    #[must_use]
    pub const fn exact(mut self, exact: bool) -> Self {
        self.exact = exact;
        self
    }

    /// Requests counted.
    pub const fn requests(&self) -> u64 {
        self.requests
    }

    /// The combined tokens cost: the explicit value, or input + output.
    pub const fn tokens(&self) -> u64 {
        match self.tokens {
            Some(t) => t,
            None => self.input_tokens.saturating_add(self.output_tokens),
        }
    }

    /// Input tokens.
    pub const fn input_tokens(&self) -> u64 {
        self.input_tokens
    }

    /// Output tokens.
    pub const fn output_tokens(&self) -> u64 {
        self.output_tokens
    }

    /// Whether the token counts are exact.
    pub const fn is_exact(&self) -> bool {
        self.exact
    }

    /// The cost against a quota of `resource`, or `None` for resources the
    /// layer does not meter (concurrency, content bytes, unknown units).
    pub fn of(&self, resource: &Resource) -> Option<u64> {
        field_of(resource).map(|i| self.fields()[i])
    }

    /// The costs in field order: requests, tokens, input, output.
    pub(crate) fn fields(&self) -> [u64; FIELDS] {
        [
            self.requests,
            self.tokens(),
            self.input_tokens,
            self.output_tokens,
        ]
    }
}

/// The field index of a metered resource.
pub(crate) fn field_of(resource: &Resource) -> Option<usize> {
    match resource {
        Resource::Requests => Some(0),
        Resource::Tokens => Some(1),
        Resource::InputTokens => Some(2),
        Resource::OutputTokens => Some(3),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combined_tokens_default_to_input_plus_output() {
        let c = Cost::new()
            .with_input_tokens(u64::MAX)
            .with_output_tokens(5);
        assert_eq!(c.tokens(), u64::MAX);
        assert_eq!(c.with_tokens(3).tokens(), 3);
        assert_eq!(c.of(&Resource::OutputTokens), Some(5));
        assert_eq!(c.of(&Resource::Other("x".into())), None);
    }
}
