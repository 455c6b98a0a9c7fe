//! Record headers: Kafka's ordered list of (name, value) pairs, names may repeat.
//!
//! Consumed headers stay in their poll's buffer: the copy step writes every header of the records sharing one
//! buffer into one [`HeaderList`] of ranges, and each record's [`Headers`] is a view of its part of that list. A
//! record with headers then costs one reference count, where a `Bytes` per name and per value cost two more, each
//! taken once when the record is made and given back when it is dropped. Headers added by the application own
//! their bytes.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;

/// Record headers, in order; a name may repeat, as in Kafka.
///
/// ```
/// let mut h = spate::Headers::new();
/// h.insert("traceparent", "00-abc-def-01");
/// assert_eq!(h.get_str("traceparent"), Some("00-abc-def-01"));
/// ```
///
/// Cloning is a reference-count increment (the container hands a record to the handler once per attempt, and
/// most records carry a `traceparent`); the first change to a shared copy copies the list. No headers, no
/// allocation; the headers of consumed records are views into one list per poll buffer (no allocation per
/// record either).
#[derive(Clone, Default)]
pub struct Headers {
    list: Option<Arc<HeaderList>>,
    // This record's part of `list`: all of it, except for consumed records sharing their poll's list.
    start: usize,
    end: usize,
}

/// Headers and the buffer the consumed ones are in.
#[derive(Clone, Default)]
pub(crate) struct HeaderList {
    buf: Bytes,
    entries: Vec<Header>,
}

#[derive(Clone)]
pub(crate) struct Header {
    name: Part,
    value: Option<Part>,
}

/// The bytes of a header's name or value.
#[derive(Clone)]
enum Part {
    /// In the list's buffer.
    Shared(Range<usize>),
    /// Its own (added by the application).
    Own(Bytes),
}

static EMPTY: HeaderList = HeaderList { buf: Bytes::new(), entries: Vec::new() };

fn bytes<'a>(buf: &'a Bytes, part: &'a Part) -> &'a [u8] {
    match part {
        Part::Shared(range) => buf.get(range.clone()).unwrap_or_default(),
        Part::Own(b) => b,
    }
}

impl HeaderList {
    /// The list of consumed headers, once their buffer is filled: the copy step adds them with
    /// [`push_shared`](Self::push_shared) while it fills the buffer.
    pub(crate) fn with_buffer(self, buf: Bytes) -> Self {
        HeaderList { buf, ..self }
    }

    /// Adds a header whose name (UTF-8) and value are these ranges of the (future) buffer.
    pub(crate) fn push_shared(&mut self, name: Range<usize>, value: Option<Range<usize>>) {
        self.entries.push(Header { name: Part::Shared(name), value: value.map(Part::Shared) });
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    fn name<'a>(&'a self, h: &'a Header) -> &'a [u8] {
        bytes(&self.buf, &h.name)
    }

    fn name_str<'a>(&'a self, h: &'a Header) -> &'a str {
        // Names are UTF-8: taken from `&str`, or checked (and replaced if need be) when consumed.
        std::str::from_utf8(self.name(h)).unwrap_or_default()
    }

    fn value<'a>(&'a self, h: &'a Header) -> Option<&'a [u8]> {
        h.value.as_ref().map(|v| bytes(&self.buf, v))
    }
}

impl std::fmt::Debug for Headers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl PartialEq for Headers {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for Headers {}

impl Headers {
    /// No headers.
    pub const fn new() -> Self {
        Headers { list: None, start: 0, end: 0 }
    }

    /// The view of entries `start..end` of a shared list (a consumed record's headers).
    pub(crate) fn view(list: Arc<HeaderList>, start: usize, end: usize) -> Self {
        Headers { list: Some(list), start, end }
    }

    fn parts(&self) -> (&HeaderList, &[Header]) {
        let list = self.list.as_deref().unwrap_or(&EMPTY);
        (list, list.entries.get(self.start..self.end).unwrap_or_default())
    }

    fn list_mut(&mut self) -> &mut HeaderList {
        let shared_view = self.list.as_ref().is_some_and(|l| self.start != 0 || self.end != l.entries.len());
        if shared_view {
            let (list, entries) = self.parts();
            self.list = Some(Arc::new(HeaderList { buf: list.buf.clone(), entries: entries.to_vec() }));
            self.start = 0;
        }
        let list = Arc::make_mut(self.list.get_or_insert_with(Default::default));
        // Callers push or retain: the view follows the whole list.
        self.end = usize::MAX;
        list
    }

    fn fit_view(&mut self) {
        if self.end == usize::MAX {
            self.end = self.list.as_ref().map_or(0, |l| l.entries.len());
        }
    }

    fn push(&mut self, name: String, value: Option<Bytes>) -> &mut Self {
        let header = Header { name: Part::Own(Bytes::from(name)), value: value.map(Part::Own) };
        self.list_mut().entries.push(header);
        self.fit_view();
        self
    }

    /// Appends a header (names may repeat).
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<Bytes>) -> &mut Self {
        self.push(name.into(), Some(value.into()))
    }

    /// Appends a header with a null value.
    pub fn insert_null(&mut self, name: impl Into<String>) -> &mut Self {
        self.push(name.into(), None)
    }

    /// Removes every header with this name (Kafka's `Headers.remove`).
    pub fn remove(&mut self, name: &str) -> &mut Self {
        let (list, entries) = self.parts();
        if entries.iter().any(|h| list.name(h) == name.as_bytes()) {
            let list = self.list_mut();
            let buf = list.buf.clone();
            list.entries.retain(|h| bytes(&buf, &h.name) != name.as_bytes());
            self.fit_view();
        }
        self
    }

    /// The value of the last header with this name (Kafka's `lastHeader`).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        let (list, entries) = self.parts();
        entries.iter().rev().find(|h| list.name(h) == name.as_bytes()).and_then(|h| list.value(h))
    }

    /// [`get`](Self::get) as a 4-byte big-endian integer, as Kafka's Java serializers and Spring write partitions;
    /// `None` when absent or not 4 bytes.
    pub fn get_i32(&self, name: &str) -> Option<i32> {
        self.get(name).and_then(|v| <[u8; 4]>::try_from(v).ok()).map(i32::from_be_bytes)
    }

    /// [`get`](Self::get) as an 8-byte big-endian integer (offsets, timestamps); `None` when absent or not 8 bytes.
    pub fn get_i64(&self, name: &str) -> Option<i64> {
        self.get(name).and_then(|v| <[u8; 8]>::try_from(v).ok()).map(i64::from_be_bytes)
    }

    /// [`get`](Self::get) as UTF-8; `None` when absent or not UTF-8.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// All headers in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Option<&[u8]>)> {
        let (list, entries) = self.parts();
        entries.iter().map(move |h| (list.name_str(h), list.value(h)))
    }

    /// Number of headers.
    pub fn len(&self) -> usize {
        self.parts().1.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.parts().1.is_empty()
    }

    pub(crate) fn to_rdkafka(&self) -> Option<rdkafka::message::OwnedHeaders> {
        if self.is_empty() {
            return None;
        }
        let mut out = rdkafka::message::OwnedHeaders::new_with_capacity(self.len());
        for (k, v) in self.iter() {
            out = out.insert(rdkafka::message::Header { key: k, value: v });
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Headers `a=1`, `b=2`, `c` (null) in one consumed buffer.
    fn consumed() -> Arc<HeaderList> {
        let mut list = HeaderList::default();
        list.push_shared(0..1, Some(1..2));
        list.push_shared(2..3, Some(3..4));
        list.push_shared(4..5, None);
        Arc::new(list.with_buffer(Bytes::from_static(b"a1b2c")))
    }

    #[test]
    fn a_view_into_a_shared_header_list_shows_only_its_records_headers() {
        let h = Headers::view(consumed(), 1, 3);
        assert_eq!(h.len(), 2);
        assert_eq!(h.get("a"), None);
        assert_eq!(h.get_str("b"), Some("2"));
        assert_eq!(h.iter().collect::<Vec<_>>(), [("b", Some(&b"2"[..])), ("c", None)]);
    }

    #[test]
    fn changing_a_view_copies_it_and_leaves_the_shared_list_alone() {
        let list = consumed();
        let mut first = Headers::view(list.clone(), 0, 1);
        let second = Headers::view(list.clone(), 1, 2);
        first.insert("x", "y");
        assert_eq!(first.iter().map(|(n, _)| n).collect::<Vec<_>>(), ["a", "x"]);
        assert_eq!(first.get_str("a"), Some("1"));
        first.remove("a");
        assert_eq!(first.iter().map(|(n, _)| n).collect::<Vec<_>>(), ["x"]);
        assert_eq!(second.iter().map(|(n, _)| n).collect::<Vec<_>>(), ["b"]);
        assert_eq!(list.len(), 3);
    }

    #[test]
    fn headers_compare_by_content_not_by_representation() {
        let view = Headers::view(consumed(), 2, 3);
        let mut owned = Headers::new();
        owned.insert_null("c");
        assert_eq!(view, owned);
        assert_eq!(Headers::new(), Headers::view(Arc::new(HeaderList::default()), 0, 0));
    }

    #[test]
    fn the_last_header_of_a_name_wins_and_remove_takes_every_one() {
        let mut h = Headers::new();
        h.insert("n", "1").insert("m", "x").insert("n", "2");
        assert_eq!(h.get_str("n"), Some("2"));
        h.remove("n");
        assert_eq!(h.len(), 1);
        assert_eq!(h.get("n"), None);
        assert_eq!(format!("{h:?}"), r#"[("m", Some([120]))]"#);
    }
}
