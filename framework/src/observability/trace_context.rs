//! W3C trace context (<https://www.w3.org/TR/trace-context/>) carried in record headers: the `traceparent`
//! type, its strict parse and format, and the context current for a handler (a tokio task-local).

use std::fmt;
use std::future::Future;
use std::sync::OnceLock;

use bytes::Bytes;

use crate::kafka_headers::{TRACEPARENT, TRACESTATE};
use crate::record::Headers;

/// The `sampled` bit of the trace flags.
pub const FLAG_SAMPLED: u8 = 0x01;

/// Length of a version-00 `traceparent`: `00-` + 32 + `-` + 16 + `-` + 2.
const TRACEPARENT_LEN: usize = 55;

/// The longest `tracestate` carried on (the spec lets a vendor drop longer ones).
const MAX_TRACESTATE_LEN: usize = 512;

/// A 16-byte trace id, shown as 32 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceId(pub [u8; 16]);

/// An 8-byte span (parent) id, shown as 16 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpanId(pub [u8; 8]);

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [0u8; 32];
    for (i, b) in bytes.iter().enumerate() {
        buf[2 * i] = HEX[(b >> 4) as usize];
        buf[2 * i + 1] = HEX[(b & 0x0f) as usize];
    }
    // Only ASCII hex digits were written.
    f.write_str(std::str::from_utf8(&buf[..bytes.len() * 2]).map_err(|_| fmt::Error)?)
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceId({self})")
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpanId({self})")
    }
}

/// Why a `traceparent` was rejected. Rejected headers are ignored (the record is handled in a new trace) and
/// counted in `spate_kafka_trace_context_invalid_total`; they are never an error for the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TraceParentError {
    /// Not 55 characters (version 00), or a later version without a `-` after the known fields.
    #[error("traceparent has the wrong length")]
    Length,
    /// A field is not lowercase hex, or a separator is not `-`.
    #[error("traceparent is not lowercase hex fields separated by `-`")]
    Format,
    /// Version `ff` is forbidden.
    #[error("traceparent version ff is invalid")]
    Version,
    /// The trace id is all zeros.
    #[error("traceparent has an all-zero trace id")]
    ZeroTraceId,
    /// The parent id is all zeros.
    #[error("traceparent has an all-zero parent id")]
    ZeroParentId,
}

/// A W3C trace context: trace id, the id of the span it belongs to, flags, and the vendor `tracestate`.
///
/// ```
/// use spate::observability::TraceContext;
/// let ctx = TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
/// assert_eq!(ctx.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
/// assert!(ctx.is_sampled());
/// let child = ctx.child();
/// assert_eq!(child.trace_id(), ctx.trace_id());
/// assert_ne!(child.span_id(), ctx.span_id());
/// assert_eq!(ctx.to_string(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct TraceContext {
    trace_id: TraceId,
    span_id: SpanId,
    flags: u8,
    trace_state: Option<Bytes>,
}

impl fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TraceContext")
            .field("traceparent", &format_args!("{self}"))
            .field("tracestate", &self.trace_state.as_deref().map(String::from_utf8_lossy))
            .finish()
    }
}

/// `traceparent` form: `00-<trace id>-<span id>-<flags>`.
impl fmt::Display for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("00-")?;
        write_hex(f, &self.trace_id.0)?;
        f.write_str("-")?;
        write_hex(f, &self.span_id.0)?;
        f.write_str("-")?;
        write_hex(f, &[self.flags])
    }
}

/// Value of each lowercase hex digit; 0xff for every other byte (uppercase hex is invalid per the spec).
const HEX_VALUE: [u8; 256] = {
    let mut t = [0xffu8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

// Every record of a listener is parsed: no branch per digit, one check at the end.
fn parse_hex<const N: usize>(s: &[u8]) -> Result<[u8; N], TraceParentError> {
    if s.len() != 2 * N {
        return Err(TraceParentError::Length);
    }
    let mut out = [0u8; N];
    let mut bad = 0u8;
    for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        let (hi, lo) = (HEX_VALUE[pair[0] as usize], HEX_VALUE[pair[1] as usize]);
        bad |= hi | lo;
        *o = (hi << 4) | (lo & 0x0f);
    }
    if bad & 0xf0 != 0 {
        return Err(TraceParentError::Format);
    }
    Ok(out)
}

fn nonzero_random<const N: usize>() -> [u8; N] {
    loop {
        let mut out = [0u8; N];
        for chunk in out.chunks_mut(8) {
            let r = fastrand::u64(..).to_le_bytes();
            chunk.copy_from_slice(&r[..chunk.len()]);
        }
        if out.iter().any(|b| *b != 0) {
            return out;
        }
    }
}

impl TraceContext {
    /// Parses a `traceparent` value strictly: lowercase hex only, no all-zero ids, version `ff` rejected,
    /// version 00 exactly 55 characters; a later version is read by its first four fields if what follows
    /// starts with `-`.
    pub fn parse(value: &str) -> Result<TraceContext, TraceParentError> {
        Self::parse_bytes(value.as_bytes())
    }

    /// [`parse`](Self::parse) on raw header bytes.
    pub fn parse_bytes(v: &[u8]) -> Result<TraceContext, TraceParentError> {
        if v.len() < TRACEPARENT_LEN {
            return Err(TraceParentError::Length);
        }
        let version = parse_hex::<1>(&v[0..2])?[0];
        if version == 0xff {
            return Err(TraceParentError::Version);
        }
        if version == 0 && v.len() != TRACEPARENT_LEN {
            return Err(TraceParentError::Length);
        }
        if v.len() > TRACEPARENT_LEN && v[TRACEPARENT_LEN] != b'-' {
            return Err(TraceParentError::Format);
        }
        if v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
            return Err(TraceParentError::Format);
        }
        let trace_id = parse_hex::<16>(&v[3..35])?;
        let span_id = parse_hex::<8>(&v[36..52])?;
        let flags = parse_hex::<1>(&v[53..55])?[0];
        if trace_id == [0; 16] {
            return Err(TraceParentError::ZeroTraceId);
        }
        if span_id == [0; 8] {
            return Err(TraceParentError::ZeroParentId);
        }
        Ok(TraceContext { trace_id: TraceId(trace_id), span_id: SpanId(span_id), flags, trace_state: None })
    }

    /// The context carried by `traceparent` (and `tracestate`) headers: `Ok(None)` without a `traceparent`,
    /// `Err` when it is invalid. With several `traceparent` headers the last one counts (Kafka's `lastHeader`).
    pub fn from_headers(headers: &Headers) -> Result<Option<TraceContext>, TraceParentError> {
        let Some(tp) = headers.get(TRACEPARENT) else {
            return Ok(None);
        };
        let mut ctx = Self::parse_bytes(tp)?;
        ctx.trace_state = headers
            .get(TRACESTATE)
            .filter(|s| !s.is_empty() && s.len() <= MAX_TRACESTATE_LEN)
            .map(Bytes::copy_from_slice);
        Ok(Some(ctx))
    }

    /// The start of a new trace: random ids, sampled.
    pub fn new_root() -> TraceContext {
        TraceContext {
            trace_id: TraceId(nonzero_random()),
            span_id: SpanId(nonzero_random()),
            flags: FLAG_SAMPLED,
            trace_state: None,
        }
    }

    /// A child: same trace id, flags and trace state, a new span id.
    pub fn child(&self) -> TraceContext {
        TraceContext {
            trace_id: self.trace_id,
            span_id: SpanId(nonzero_random()),
            flags: self.flags,
            trace_state: self.trace_state.clone(),
        }
    }

    /// The trace id.
    pub fn trace_id(&self) -> TraceId {
        self.trace_id
    }

    /// The id of the span this context stands for (the `parent-id` of what it is sent with).
    pub fn span_id(&self) -> SpanId {
        self.span_id
    }

    /// The trace flags.
    pub fn flags(&self) -> u8 {
        self.flags
    }

    /// Whether the `sampled` flag is set.
    pub fn is_sampled(&self) -> bool {
        self.flags & FLAG_SAMPLED != 0
    }

    /// The vendor `tracestate`, carried on unchanged.
    pub fn trace_state(&self) -> Option<&[u8]> {
        self.trace_state.as_deref()
    }

    /// Sets the vendor `tracestate`.
    pub fn with_trace_state(mut self, state: impl Into<Bytes>) -> Self {
        let s: Bytes = state.into();
        self.trace_state = (!s.is_empty() && s.len() <= MAX_TRACESTATE_LEN).then_some(s);
        self
    }

    /// Writes `traceparent` (and `tracestate`, when set) into `headers`.
    pub fn inject(&self, headers: &mut Headers) {
        headers.insert(TRACEPARENT, self.to_string());
        if let Some(s) = &self.trace_state {
            headers.insert(TRACESTATE, s.clone());
        }
    }

    /// Runs `fut` with this context current: [`current_trace`] returns it, and `KafkaTemplate` sends from inside
    /// carry a child of it.
    ///
    /// ```no_run
    /// # async fn f(template: spate::KafkaTemplate<String, String>) {
    /// use spate::observability::TraceContext;
    /// let ctx = TraceContext::new_root();
    /// ctx.clone().scope(async { template.send("orders", None, "hello".to_string()).await }).await.unwrap();
    /// // the record's traceparent has ctx's trace id
    /// # }
    /// ```
    pub fn scope<F: Future>(self, fut: F) -> impl Future<Output = F::Output> {
        CURRENT.scope(HandlingTrace::resolved(self), fut)
    }
}

/// The trace context of one record's (or batch's) handling: a child of the record's `traceparent`, else a new
/// trace made when first asked for. Most handlers neither send nor run under a subscriber that wants their span,
/// so a record without a `traceparent` never needs ids drawn; one with it is parsed and checked (an invalid header
/// is counted) and its child's span id drawn at once, which is one random number.
pub(crate) enum HandlingTrace {
    /// A child of the record's context (or a context given).
    Known(TraceContext),
    /// A new trace, drawn when first asked for. (`OnceLock::from` would go through the lock's slow path, which
    /// cost more than drawing ids.)
    Lazy(OnceLock<TraceContext>),
}

impl HandlingTrace {
    /// The trace of handling a record with these headers.
    pub(crate) fn for_headers(headers: &Headers) -> Self {
        match TraceContext::from_headers(headers) {
            Ok(Some(parent)) => HandlingTrace::Known(parent.child()),
            Ok(None) => Self::new_root(),
            Err(e) => {
                tracing::debug!(error = %e, "invalid traceparent header ignored");
                super::metrics::invalid_trace_context();
                Self::new_root()
            }
        }
    }

    /// A new trace (a batch has no single parent).
    pub(crate) fn new_root() -> Self {
        HandlingTrace::Lazy(OnceLock::new())
    }

    fn resolved(context: TraceContext) -> Self {
        HandlingTrace::Known(context)
    }

    /// The context, drawn on first use.
    pub(crate) fn get(&self) -> &TraceContext {
        match self {
            HandlingTrace::Known(context) => context,
            HandlingTrace::Lazy(root) => root.get_or_init(TraceContext::new_root),
        }
    }

    /// Runs `fut` with this trace current.
    pub(crate) fn scope<F: Future>(self, fut: F) -> impl Future<Output = F::Output> {
        CURRENT.scope(self, fut)
    }

    /// Runs `f` with this trace current, for code that polls a handler outside a future. A scoped thread-local
    /// holds a reference for the call: nothing is moved in and out, and the trace drawn inside is kept for the
    /// handling's continuation.
    pub(crate) fn in_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        SYNC_CURRENT.set(self, f)
    }
}

tokio::task_local! {
    static CURRENT: HandlingTrace;
}

scoped_tls::scoped_thread_local!(static SYNC_CURRENT: HandlingTrace);

/// Calls `f` with the current context. The task-local wins over the synchronous scope: a scope a handler opens
/// inside its first poll is nested in the container's.
fn with_current<R>(f: impl FnOnce(&TraceContext) -> R) -> Option<R> {
    if CURRENT.try_with(|_| ()).is_ok() {
        CURRENT.try_with(|t| f(t.get())).ok()
    } else if SYNC_CURRENT.is_set() {
        Some(SYNC_CURRENT.with(|t| f(t.get())))
    } else {
        None
    }
}

/// The trace context of the code running now: inside a listener's handler, the context of the record being
/// handled (a child of the record's `traceparent`); inside [`TraceContext::scope`], that context; elsewhere
/// `None`. It is a tokio task-local, so a task spawned from a handler starts without one (pass it on with
/// `current_trace().unwrap().scope(fut)`).
pub fn current_trace() -> Option<TraceContext> {
    with_current(TraceContext::clone)
}

/// The `traceparent` of a record about to be sent, unless it already has one: a child of the current context,
/// or the start of a new trace when there is none (as OpenTelemetry's Kafka producer instrumentation does).
pub(crate) fn inject_for_send(headers: &mut Headers) {
    if headers.get(TRACEPARENT).is_some() {
        return;
    }
    let ctx = with_current(TraceContext::child).unwrap_or_else(TraceContext::new_root);
    ctx.inject(headers);
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn valid_traceparent_round_trips() {
        let c = TraceContext::parse(VALID).unwrap();
        assert_eq!(c.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(c.span_id().to_string(), "00f067aa0ba902b7");
        assert_eq!(c.flags(), 1);
        assert_eq!(c.to_string(), VALID);
        let unsampled = TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").unwrap();
        assert!(!unsampled.is_sampled());
    }

    #[test]
    fn version_ff_is_invalid() {
        let v = VALID.replacen("00", "ff", 1);
        assert_eq!(TraceContext::parse(&v), Err(TraceParentError::Version));
    }

    #[test]
    fn future_versions_are_read_by_their_known_fields() {
        let v = VALID.replacen("00", "01", 1);
        assert_eq!(TraceContext::parse(&v).unwrap().trace_id(), TraceContext::parse(VALID).unwrap().trace_id());
        assert!(TraceContext::parse(&format!("{v}-extra")).is_ok());
        assert_eq!(TraceContext::parse(&format!("{v}extra")), Err(TraceParentError::Format));
        // Version 00 allows nothing after the flags.
        assert_eq!(TraceContext::parse(&format!("{VALID}-extra")), Err(TraceParentError::Length));
    }

    #[test]
    fn all_zero_ids_are_invalid() {
        let zero_trace = "00-00000000000000000000000000000000-00f067aa0ba902b7-01";
        assert_eq!(TraceContext::parse(zero_trace), Err(TraceParentError::ZeroTraceId));
        let zero_parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01";
        assert_eq!(TraceContext::parse(zero_parent), Err(TraceParentError::ZeroParentId));
    }

    #[test]
    fn wrong_lengths_are_invalid() {
        assert_eq!(TraceContext::parse(""), Err(TraceParentError::Length));
        assert_eq!(TraceContext::parse(&VALID[..54]), Err(TraceParentError::Length));
        // A shorter trace id shifts the separators.
        let short_trace = "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01x";
        assert_eq!(TraceContext::parse(short_trace), Err(TraceParentError::Format));
        assert_eq!(TraceContext::parse(&format!("{VALID}0")), Err(TraceParentError::Length));
    }

    #[test]
    fn uppercase_hex_is_invalid() {
        let upper = "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01";
        assert_eq!(TraceContext::parse(upper), Err(TraceParentError::Format));
        let upper_parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01";
        assert_eq!(TraceContext::parse(upper_parent), Err(TraceParentError::Format));
    }

    #[test]
    fn bad_separators_and_digits_are_invalid() {
        let v = VALID.replace('-', "_");
        assert_eq!(TraceContext::parse(&v), Err(TraceParentError::Format));
        let g = VALID.replacen('4', "g", 1);
        assert_eq!(TraceContext::parse(&g), Err(TraceParentError::Format));
    }

    #[test]
    fn headers_carry_context_and_trace_state() {
        let mut h = Headers::new();
        assert_eq!(TraceContext::from_headers(&h), Ok(None));
        h.insert(TRACEPARENT, "garbage");
        assert_eq!(TraceContext::from_headers(&h), Err(TraceParentError::Length));
        // The last header wins.
        h.insert(TRACEPARENT, VALID);
        h.insert(TRACESTATE, "congo=t61rcWkgMzE");
        let c = TraceContext::from_headers(&h).unwrap().unwrap();
        assert_eq!(c.trace_state(), Some(&b"congo=t61rcWkgMzE"[..]));
        let mut out = Headers::new();
        c.child().inject(&mut out);
        let back = TraceContext::from_headers(&out).unwrap().unwrap();
        assert_eq!(back.trace_id(), c.trace_id());
        assert_ne!(back.span_id(), c.span_id());
        assert_eq!(back.trace_state(), c.trace_state());
    }

    #[test]
    fn new_roots_are_valid_and_distinct() {
        let a = TraceContext::new_root();
        let b = TraceContext::new_root();
        assert_ne!(a.trace_id(), b.trace_id());
        assert_eq!(TraceContext::parse(&a.to_string()).unwrap(), a);
    }

    #[tokio::test]
    async fn sends_inside_a_scope_are_children_and_outside_new_roots() {
        let root = TraceContext::new_root();
        let mut inside = Headers::new();
        root.clone().scope(async { inject_for_send(&mut inside) }).await;
        let sent = TraceContext::from_headers(&inside).unwrap().unwrap();
        assert_eq!(sent.trace_id(), root.trace_id());
        assert_ne!(sent.span_id(), root.span_id());
        let mut outside = Headers::new();
        inject_for_send(&mut outside);
        assert_ne!(TraceContext::from_headers(&outside).unwrap().unwrap().trace_id(), root.trace_id());
        // A traceparent set by the caller is kept.
        let mut own = Headers::new();
        own.insert(TRACEPARENT, VALID);
        inject_for_send(&mut own);
        assert_eq!(own.len(), 1);
    }

    #[tokio::test]
    async fn a_handling_trace_is_drawn_once_and_kept_from_the_first_poll_into_the_continuation() {
        let trace = HandlingTrace::for_headers(&Headers::new());
        let first = trace.in_scope(current_trace).unwrap();
        let mut sent = Headers::new();
        trace.in_scope(|| inject_for_send(&mut sent));
        assert_eq!(TraceContext::from_headers(&sent).unwrap().unwrap().trace_id(), first.trace_id());
        let later = trace.scope(async { current_trace() }).await.unwrap();
        assert_eq!(later, first);
        assert!(current_trace().is_none());
    }

    #[test]
    fn a_record_with_a_traceparent_is_handled_in_a_child_of_it() {
        let mut h = Headers::new();
        h.insert(TRACEPARENT, VALID);
        let parent = TraceContext::parse(VALID).unwrap();
        let current = HandlingTrace::for_headers(&h).in_scope(current_trace).unwrap();
        assert_eq!(current.trace_id(), parent.trace_id());
        assert_ne!(current.span_id(), parent.span_id());
    }

    #[tokio::test]
    async fn a_scope_a_handler_opens_inside_its_first_poll_wins_over_the_containers() {
        let own = TraceContext::new_root();
        let trace = HandlingTrace::for_headers(&Headers::new());
        let seen = trace.in_scope(|| {
            let mut inner = std::pin::pin!(own.clone().scope(async { current_trace() }));
            let mut cx = std::task::Context::from_waker(futures::task::noop_waker_ref());
            match inner.as_mut().poll(&mut cx) {
                std::task::Poll::Ready(seen) => seen,
                std::task::Poll::Pending => None,
            }
        });
        assert_eq!(seen, Some(own));
    }
}
