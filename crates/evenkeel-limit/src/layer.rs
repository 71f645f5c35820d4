use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use evenkeel_core::event::{Events, Listener};
use evenkeel_core::{ConfigError, HttpClassifier};
use tower_layer::Layer;

use crate::algorithm::{Algorithm, Fixed};
use crate::body::Release;
use crate::handle::LimitHandle;
use crate::reject::{RejectWithError, Respond};
use crate::service::Limit;
use crate::shared::{Settings, Shared};

/// A [`Layer`] that limits how many requests its services have in flight
/// at once, with a fixed limit or one an [`Algorithm`] finds.
///
/// Build one with [`LimitLayer::fixed`] or [`LimitLayer::adaptive`]. The
/// layer is cheap to clone; all its clones, and every service they make,
/// share one limiter: one set of permits, one queue, one algorithm.
/// [`handle`](LimitLayer::handle) gives a view of it.
pub struct LimitLayer<A = Fixed, C = HttpClassifier, R = RejectWithError> {
    shared: Arc<Shared<A, C, R>>,
}

impl LimitLayer {
    /// A static limiter of `limit` permits. Requests wait for a permit
    /// (without bound, as tower's `ConcurrencyLimit` does) unless the
    /// builder says otherwise. `build` refuses a limit of 0.
    ///
    /// ```
    /// use std::time::Duration;
    /// use evenkeel_limit::LimitLayer;
    ///
    /// let layer = LimitLayer::fixed(16)
    ///     .max_queue(64)
    ///     .max_wait(Duration::from_secs(2))
    ///     .build()?;
    /// assert!(LimitLayer::fixed(0).build().is_err());
    /// # let _ = layer;
    /// # Ok::<(), evenkeel_core::ConfigError>(())
    /// ```
    pub fn fixed(limit: usize) -> LimitBuilder<Fixed> {
        LimitBuilder::new(Fixed::new(limit))
    }

    /// An adaptive limiter driven by `algorithm` ([`Aimd`](crate::Aimd),
    /// [`Gradient`](crate::Gradient), [`Vegas`](crate::Vegas) or your own).
    ///
    /// ```
    /// use evenkeel_limit::{Gradient, LimitLayer};
    ///
    /// let layer = LimitLayer::adaptive(Gradient::default()).name("llm").build()?;
    /// assert_eq!(layer.handle().limit(), 4);
    /// # Ok::<(), evenkeel_core::ConfigError>(())
    /// ```
    pub fn adaptive<A: Algorithm>(algorithm: A) -> LimitBuilder<A> {
        LimitBuilder::new(algorithm)
    }
}

impl<A, C, R> LimitLayer<A, C, R>
where
    A: Algorithm,
    C: Send + Sync + 'static,
    R: Send + Sync + 'static,
{
    /// A view of the shared limiter: limit, in flight, queued, rejected.
    pub fn handle(&self) -> LimitHandle {
        LimitHandle::new(self.shared.clone())
    }
}

impl<A, C, R> Clone for LimitLayer<A, C, R> {
    fn clone(&self) -> Self {
        LimitLayer {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S, A, C, R> Layer<S> for LimitLayer<A, C, R> {
    type Service = Limit<S, A, C, R>;

    fn layer(&self, inner: S) -> Self::Service {
        Limit::from_shared(inner, Arc::clone(&self.shared))
    }
}

impl<A: fmt::Debug, C: fmt::Debug, R: fmt::Debug> fmt::Debug for LimitLayer<A, C, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LimitLayer")
            .field("shared", &*self.shared)
            .finish()
    }
}

/// Builds a [`LimitLayer`]; [`build`](LimitBuilder::build) validates.
///
/// ```
/// use std::time::Duration;
/// use evenkeel_core::event::Event;
/// use evenkeel_limit::{Aimd, LimitLayer, Respond};
///
/// let layer = LimitLayer::adaptive(Aimd::builder().min_limit(1).fast_start(true).build()?)
///     .name("api.example.com")
///     .ceiling(64)
///     .max_queue(256)
///     .max_wait(Duration::from_secs(5))
///     .on_event(|event: &Event<'_>| {
///         if let Event::LimitChanged { name, limit } = event {
///             println!("{name}: limit {limit}");
///         }
///     })
///     .respond(Respond::http().retry_after(Some(Duration::from_secs(2))))
///     .build()?;
/// assert_eq!(layer.handle().ceiling(), Some(64));
/// # Ok::<(), evenkeel_core::ConfigError>(())
/// ```
pub struct LimitBuilder<A, C = HttpClassifier, R = RejectWithError> {
    algorithm: A,
    classifier: C,
    reject: R,
    max_queue: Option<usize>,
    max_wait: Option<Duration>,
    ceiling: Option<usize>,
    read_server_ceiling: bool,
    name: String,
    events: Events,
    release: Release,
}

impl<A: Algorithm> LimitBuilder<A> {
    fn new(algorithm: A) -> Self {
        LimitBuilder {
            algorithm,
            classifier: HttpClassifier::new(),
            reject: RejectWithError,
            max_queue: None,
            max_wait: None,
            ceiling: None,
            read_server_ceiling: true,
            name: String::from("limit"),
            events: Events::none(),
            release: Release::default(),
        }
    }
}

impl<A: Algorithm, C, R> LimitBuilder<A, C, R> {
    /// At most `n` requests wait for a permit; more are rejected at once
    /// (default: no bound).
    pub fn max_queue(mut self, n: usize) -> Self {
        self.max_queue = Some(n);
        self
    }

    /// A request that has waited `wait` for a permit is rejected (default:
    /// no bound).
    pub fn max_wait(mut self, wait: Duration) -> Self {
        self.max_wait = Some(wait);
        self
    }

    /// Rejects at once when no permit is free: no request waits. The same
    /// as `max_queue(0)`.
    pub fn reject_immediately(self) -> Self {
        self.max_queue(0)
    }

    /// Caps the limit, whatever the algorithm says (default none). The cap
    /// can be changed later through [`LimitHandle::set_ceiling`].
    pub fn ceiling(mut self, ceiling: usize) -> Self {
        self.ceiling = Some(ceiling);
        self
    }

    /// Whether an adaptive limiter caps its limit at the concurrency the
    /// server advertises in `RateLimit-Policy` (`qu="concurrent-requests"`)
    /// (default on).
    pub fn server_ceiling(mut self, on: bool) -> Self {
        self.read_server_ceiling = on;
        self
    }

    /// When a request gives its permit back (default
    /// [`Release::StreamEnd`]: event streams hold it until their body ends
    /// or is dropped, other answers give it back with their head).
    pub fn release(mut self, release: Release) -> Self {
        self.release = release;
        self
    }

    /// The name events and traces carry (default `"limit"`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Where [`Event::LimitChanged`](evenkeel_core::event::Event::LimitChanged)
    /// and [`Event::LimitRejected`](evenkeel_core::event::Event::LimitRejected)
    /// go (added to any given before).
    pub fn events(mut self, events: Events) -> Self {
        self.events = std::mem::take(&mut self.events).and(events);
        self
    }

    /// Shorthand for [`events`](LimitBuilder::events) with one listener.
    pub fn on_event(self, listener: impl Listener) -> Self {
        self.events(Events::new(listener))
    }

    /// How responses and errors are read into outcomes (default
    /// [`HttpClassifier`]; use `GrpcClassifier` for gRPC).
    pub fn classifier<C2>(self, classifier: C2) -> LimitBuilder<A, C2, R> {
        LimitBuilder {
            algorithm: self.algorithm,
            classifier,
            reject: self.reject,
            max_queue: self.max_queue,
            max_wait: self.max_wait,
            ceiling: self.ceiling,
            read_server_ceiling: self.read_server_ceiling,
            name: self.name,
            events: self.events,
            release: self.release,
        }
    }

    /// Answers rejected requests with a response instead of an error; see
    /// [`Respond`].
    pub fn respond(self, respond: Respond) -> LimitBuilder<A, C, Respond> {
        self.reject_with(respond)
    }

    /// Answers rejected requests with your own [`Reject`](crate::Reject).
    pub fn reject_with<R2>(self, reject: R2) -> LimitBuilder<A, C, R2> {
        LimitBuilder {
            algorithm: self.algorithm,
            classifier: self.classifier,
            reject,
            max_queue: self.max_queue,
            max_wait: self.max_wait,
            ceiling: self.ceiling,
            read_server_ceiling: self.read_server_ceiling,
            name: self.name,
            events: self.events,
            release: self.release,
        }
    }

    /// Validates and builds the layer.
    pub fn build(self) -> Result<LimitLayer<A, C, R>, ConfigError> {
        if self.algorithm.initial_limit() == 0 {
            let field = if A::ADAPTIVE {
                "initial_limit"
            } else {
                "limit"
            };
            return Err(ConfigError::new(
                field,
                "must be at least 1 (a limit of 0 would never admit a request)",
            ));
        }
        if self.ceiling == Some(0) {
            return Err(ConfigError::new("ceiling", "must be at least 1"));
        }
        if self.max_wait.is_some_and(|w| w.is_zero()) {
            return Err(ConfigError::new(
                "max_wait",
                "must be greater than zero (use reject_immediately to never wait)",
            ));
        }
        let settings = Settings {
            release: self.release,
            max_queue: self.max_queue.unwrap_or(usize::MAX),
            max_wait: self.max_wait,
            ceiling: self.ceiling,
            read_server_ceiling: self.read_server_ceiling && A::ADAPTIVE,
            classifier: self.classifier,
            reject: self.reject,
            name: self.name,
            events: self.events,
        };
        Ok(LimitLayer {
            shared: Arc::new(Shared::new(self.algorithm, settings)),
        })
    }
}

impl<A: fmt::Debug, C: fmt::Debug, R: fmt::Debug> fmt::Debug for LimitBuilder<A, C, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LimitBuilder")
            .field("algorithm", &self.algorithm)
            .field("classifier", &self.classifier)
            .field("reject", &self.reject)
            .field("max_queue", &self.max_queue)
            .field("max_wait", &self.max_wait)
            .field("ceiling", &self.ceiling)
            .field("server_ceiling", &self.read_server_ceiling)
            .field("name", &self.name)
            .field("events", &self.events)
            .field("release", &self.release)
            .finish()
    }
}
