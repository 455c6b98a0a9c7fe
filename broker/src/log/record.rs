//! Walking the v2 records inside a (decompressed) batch without copying keys, values or headers.
//!
//! Validation needs every record's structure checked and its timestamp and offset delta; offset-for-timestamp
//! look-ups need the same two numbers. Nothing else of a record matters to the log, so this reads varints and
//! skips payloads. Every length is checked against the bytes actually present before it is used.
//!
//! Record layout: `length varint | attributes i8 | timestampDelta varlong | offsetDelta varint |
//! keyLength varint | key | valueLength varint | value | headerCount varint | (hKeyLen varint, hKey,
//! hValueLen varint, hValue)*`.

/// What the log needs of one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordInfo {
    pub timestamp_delta: i64,
    pub offset_delta: i32,
    /// False for a null key (compacted topics refuse those).
    pub has_key: bool,
}

/// One record with its payloads borrowed from the records section (the cleaner and control records need them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordView<'a> {
    pub attributes: i8,
    pub timestamp_delta: i64,
    pub offset_delta: i32,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    /// The headers exactly as encoded: header count varint, then the headers.
    pub raw_headers: &'a [u8],
}

/// Why a records section is malformed (Kafka: `InvalidRecordException`, INVALID_RECORD).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid record {index}: {reason}")]
pub struct RecordError {
    pub index: usize,
    pub reason: String,
}

/// Iterates the records of a records section. Stops after the first error.
pub struct RecordIter<'a> {
    buf: &'a [u8],
    pos: usize,
    index: usize,
    failed: bool,
}

impl<'a> RecordIter<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        RecordIter { buf, pos: 0, index: 0, failed: false }
    }

    /// Bytes not yet consumed; a well-formed batch has none left after its last record.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn read_one(&mut self) -> Result<RecordInfo, String> {
        let view = self.read_view()?;
        Ok(RecordInfo {
            timestamp_delta: view.timestamp_delta,
            offset_delta: view.offset_delta,
            has_key: view.key.is_some(),
        })
    }

    /// The next record with its payloads, or `None` at the end of the section.
    pub fn next_view(&mut self) -> Option<Result<RecordView<'a>, RecordError>> {
        if self.failed || self.pos >= self.buf.len() {
            return None;
        }
        let index = self.index;
        self.index += 1;
        match self.read_view() {
            Ok(view) => Some(Ok(view)),
            Err(reason) => {
                self.failed = true;
                Some(Err(RecordError { index, reason }))
            }
        }
    }

    fn read_view(&mut self) -> Result<RecordView<'a>, String> {
        let buf: &'a [u8] = self.buf;
        let mut cur = Cursor { buf, pos: self.pos };
        let length = cur.varint()?;
        if length < 0 {
            return Err(format!("negative record length {length}"));
        }
        let body_start = cur.pos;
        let body_end = body_start
            .checked_add(length as usize)
            .filter(|end| *end <= buf.len())
            .ok_or_else(|| format!("record length {length} exceeds the {} bytes left", buf.len() - body_start))?;
        let mut body = Cursor { buf: &buf[..body_end], pos: body_start };
        let attributes = body.byte()? as i8;
        let timestamp_delta = body.varlong()?;
        let offset_delta = body.varint()?;
        let key_len = body.varint()?;
        let key = body.take_nullable(key_len, "key")?;
        let value_len = body.varint()?;
        let value = body.take_nullable(value_len, "value")?;
        let headers_start = body.pos;
        let headers = body.varint()?;
        if headers < 0 {
            return Err(format!("negative header count {headers}"));
        }
        for _ in 0..headers {
            let key_len = body.varint()?;
            if key_len < 0 {
                return Err("null header key".to_string());
            }
            body.skip(key_len as usize)?;
            let value_len = body.varint()?;
            body.skip_nullable(value_len, "header value")?;
        }
        if body.pos != body_end {
            return Err(format!("record length {length} but its fields take {} bytes", body.pos - body_start));
        }
        self.pos = body_end;
        Ok(RecordView {
            attributes,
            timestamp_delta,
            offset_delta,
            key,
            value,
            raw_headers: &buf[headers_start..body_end],
        })
    }
}

impl Iterator for RecordIter<'_> {
    type Item = Result<RecordInfo, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.buf.len() {
            return None;
        }
        let index = self.index;
        self.index += 1;
        match self.read_one() {
            Ok(info) => Some(Ok(info)),
            Err(reason) => {
                self.failed = true;
                Some(Err(RecordError { index, reason }))
            }
        }
    }
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn byte(&mut self) -> Result<u8, String> {
        let b = *self.buf.get(self.pos).ok_or("record ends inside a varint")?;
        self.pos += 1;
        Ok(b)
    }

    fn raw_varint(&mut self, max_bytes: usize) -> Result<u64, String> {
        let mut value: u64 = 0;
        for i in 0..max_bytes {
            let b = self.byte()?;
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("varint too long".to_string())
    }

    fn varint(&mut self) -> Result<i32, String> {
        let raw = self.raw_varint(5)?;
        if raw > u64::from(u32::MAX) {
            return Err("varint overflows 32 bits".to_string());
        }
        let raw = raw as u32;
        Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32))
    }

    fn varlong(&mut self) -> Result<i64, String> {
        let raw = self.raw_varint(10)?;
        Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
    }

    fn skip(&mut self, n: usize) -> Result<(), String> {
        match self.pos.checked_add(n).filter(|end| *end <= self.buf.len()) {
            Some(end) => {
                self.pos = end;
                Ok(())
            }
            None => Err(format!("field of {n} bytes runs past the record")),
        }
    }

    fn take_nullable(&mut self, len: i32, what: &str) -> Result<Option<&'a [u8]>, String> {
        let start = self.pos;
        self.skip_nullable(len, what)?;
        Ok(if len < 0 { None } else { Some(&self.buf[start..self.pos]) })
    }

    fn skip_nullable(&mut self, len: i32, what: &str) -> Result<(), String> {
        match len {
            -1 => Ok(()),
            l if l < -1 => Err(format!("invalid {what} length {l}")),
            l => self.skip(l as usize),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::record_batch::{test_support::batch_with, RecordBatch};
    use kafka_protocol::records::Compression;

    #[test]
    fn reads_offset_and_timestamp_deltas_of_every_record() {
        let buf = batch_with(5, 100, Compression::None);
        let batch = RecordBatch::parse_prefix(&buf, 0).unwrap();
        let infos: Vec<_> = RecordIter::new(batch.records_bytes()).collect::<Result<_, _>>().unwrap();
        assert_eq!(infos.len(), 5);
        for (i, info) in infos.iter().enumerate() {
            assert_eq!(info.offset_delta, i as i32);
            assert_eq!(info.timestamp_delta, i as i64);
        }
    }

    #[test]
    fn a_record_longer_than_the_buffer_is_an_error() {
        let buf = batch_with(2, 100, Compression::None);
        let batch = RecordBatch::parse_prefix(&buf, 0).unwrap();
        let records = batch.records_bytes();
        let mut iter = RecordIter::new(&records[..records.len() - 2]);
        assert!(iter.next().unwrap().is_ok());
        let err = iter.next().unwrap().unwrap_err();
        assert_eq!(err.index, 1);
        assert!(iter.next().is_none());
    }

    #[test]
    fn overlong_varint_is_an_error() {
        let bytes = [0xffu8; 12];
        assert!(RecordIter::new(&bytes).next().unwrap().is_err());
    }
}
