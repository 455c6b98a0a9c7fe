//! The persistent key-value store, on redb (a maintained, pure-Rust embedded B-tree store with ACID
//! transactions), standing where Kafka Streams uses RocksDB. One database file per store and task, under
//! `<state.dir>/<application.id>/<task>/<store>.redb`. Writes commit without fsync (redb's `Durability::None`,
//! readable at once, like RocksDB's memtable); `flush()` makes them durable, as the runtime does at each commit.

use std::path::{Path, PathBuf};

use redb::{Database, Durability, ReadableTable, ReadableTableMetadata, TableDefinition};

use super::{KeyValueBytesStore, KeyValueEntries};
use crate::StreamsError;

const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("kv");

/// A key-value store in a redb database file.
pub struct RedbKeyValueStore {
    name: String,
    path: PathBuf,
    db: Database,
}

impl std::fmt::Debug for RedbKeyValueStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbKeyValueStore").field("name", &self.name).field("path", &self.path).finish()
    }
}

impl RedbKeyValueStore {
    /// Opens (or creates) the store `name` in the database file at `path`, creating its directory.
    pub fn open(name: &str, path: &Path) -> Result<Self, StreamsError> {
        let err = |e: &dyn std::fmt::Display| StreamsError::store(name, format!("{}: {e}", path.display()));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| err(&e))?;
        }
        let db = Database::create(path).map_err(|e| err(&e))?;
        let store = RedbKeyValueStore { name: name.to_owned(), path: path.to_owned(), db };
        store.write(Durability::Immediate, |_| Ok(()))?;
        Ok(store)
    }

    /// Where the database file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self, e: impl std::fmt::Display) -> StreamsError {
        StreamsError::store(&self.name, format!("{}: {e}", self.path.display()))
    }

    fn write<T>(
        &self,
        durability: Durability,
        f: impl FnOnce(&mut redb::Table<'_, &'static [u8], &'static [u8]>) -> Result<T, redb::StorageError>,
    ) -> Result<T, StreamsError> {
        let mut txn = self.db.begin_write().map_err(|e| self.error(e))?;
        txn.set_durability(durability);
        let out = {
            let mut table = txn.open_table(TABLE).map_err(|e| self.error(e))?;
            f(&mut table).map_err(|e| self.error(e))?
        };
        txn.commit().map_err(|e| self.error(e))?;
        Ok(out)
    }

    fn read<T>(
        &self,
        f: impl FnOnce(&redb::ReadOnlyTable<&'static [u8], &'static [u8]>) -> Result<T, redb::StorageError>,
    ) -> Result<T, StreamsError> {
        let txn = self.db.begin_read().map_err(|e| self.error(e))?;
        let table = txn.open_table(TABLE).map_err(|e| self.error(e))?;
        f(&table).map_err(|e| self.error(e))
    }
}

fn collect<'a>(
    iter: impl Iterator<
        Item = Result<(redb::AccessGuard<'a, &'static [u8]>, redb::AccessGuard<'a, &'static [u8]>), redb::StorageError>,
    >,
) -> Result<KeyValueEntries, redb::StorageError> {
    iter.map(|r| r.map(|(k, v)| (k.value().to_vec(), v.value().to_vec()))).collect()
}

impl KeyValueBytesStore for RedbKeyValueStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StreamsError> {
        self.read(|t| Ok(t.get(key)?.map(|v| v.value().to_vec())))
    }
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StreamsError> {
        self.write(Durability::None, |t| t.insert(key, value).map(|_| ()))
    }
    fn delete(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StreamsError> {
        self.write(Durability::None, |t| Ok(t.remove(key)?.map(|v| v.value().to_vec())))
    }
    fn range(&self, from: &[u8], to: &[u8]) -> Result<KeyValueEntries, StreamsError> {
        if from > to {
            return Ok(Vec::new());
        }
        self.read(|t| collect(t.range(from..=to)?))
    }
    fn all(&self) -> Result<KeyValueEntries, StreamsError> {
        self.read(|t| collect(t.iter()?))
    }
    fn approximate_num_entries(&self) -> Result<u64, StreamsError> {
        self.read(|t| t.len())
    }
    fn flush(&mut self) -> Result<(), StreamsError> {
        self.write(Durability::Immediate, |_| Ok(()))
    }
    fn persistent(&self) -> bool {
        true
    }
}

/// Window entries: `key length (u32) | key | window start (sign-flipped, big-endian) | sequence` → value, so one
/// key's windows are contiguous and in time order.
const WINDOWS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("windows");
/// The same entries by time first (`start | key length | key | sequence` → empty), to drop expired windows.
const WINDOWS_BY_TIME: TableDefinition<&[u8], &[u8]> = TableDefinition::new("windows_by_time");
/// Observed stream time, so retention holds across restarts.
const META: TableDefinition<&str, i64> = TableDefinition::new("meta");

fn flip(t: i64) -> [u8; 8] {
    ((t as u64) ^ (1 << 63)).to_be_bytes()
}

fn unflip(b: [u8; 8]) -> i64 {
    (u64::from_be_bytes(b) ^ (1 << 63)) as i64
}

fn window_key(key: &[u8], start: i64, seq: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(16 + key.len());
    k.extend_from_slice(&(key.len() as u32).to_be_bytes());
    k.extend_from_slice(key);
    k.extend_from_slice(&flip(start));
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

fn time_key(key: &[u8], start: i64, seq: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(16 + key.len());
    k.extend_from_slice(&flip(start));
    k.extend_from_slice(&(key.len() as u32).to_be_bytes());
    k.extend_from_slice(key);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// Splits a `WINDOWS` key into key, start and sequence.
fn parse_window_key(k: &[u8]) -> Option<(Vec<u8>, i64, u32)> {
    let (len, rest) = k.split_first_chunk::<4>()?;
    let len = u32::from_be_bytes(*len) as usize;
    if rest.len() != len + 12 {
        return None;
    }
    let (key, rest) = rest.split_at(len);
    let (start, seq) = rest.split_first_chunk::<8>()?;
    let seq: [u8; 4] = seq.try_into().ok()?;
    Some((key.to_vec(), unflip(*start), u32::from_be_bytes(seq)))
}

/// A window store in a redb database file (Kafka's RocksDB window store), with the same retention rules as
/// [`InMemoryWindowStore`](super::InMemoryWindowStore).
pub struct RedbWindowStore {
    kv: RedbKeyValueStore,
    retention: i64,
    retain_duplicates: bool,
    seq: u32,
    observed_stream_time: i64,
}

impl std::fmt::Debug for RedbWindowStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbWindowStore").field("store", &self.kv).field("retention", &self.retention).finish()
    }
}

impl RedbWindowStore {
    /// Opens (or creates) the window store `name` at `path`, keeping windows for `retention_ms`.
    pub fn open(name: &str, path: &Path, retention_ms: i64, retain_duplicates: bool) -> Result<Self, StreamsError> {
        let kv = RedbKeyValueStore::open(name, path)?;
        let txn = kv.db.begin_write().map_err(|e| kv.error(e))?;
        let observed = {
            let _ = txn.open_table(WINDOWS).map_err(|e| kv.error(e))?;
            let _ = txn.open_table(WINDOWS_BY_TIME).map_err(|e| kv.error(e))?;
            let meta = txn.open_table(META).map_err(|e| kv.error(e))?;
            let observed = meta.get("observed_stream_time").map_err(|e| kv.error(e))?.map(|v| v.value());
            observed.unwrap_or(i64::MIN)
        };
        txn.commit().map_err(|e| kv.error(e))?;
        Ok(RedbWindowStore { kv, retention: retention_ms, retain_duplicates, seq: 0, observed_stream_time: observed })
    }

    fn min_live_time(&self) -> i64 {
        self.observed_stream_time.saturating_sub(self.retention).saturating_add(1)
    }

    fn scan(&self, from: &[u8], to: &[u8]) -> Result<super::WindowEntries, StreamsError> {
        let min_live = self.min_live_time();
        let txn = self.kv.db.begin_read().map_err(|e| self.kv.error(e))?;
        let table = txn.open_table(WINDOWS).map_err(|e| self.kv.error(e))?;
        let mut out = Vec::new();
        for entry in table.range(from..=to).map_err(|e| self.kv.error(e))? {
            let (k, v) = entry.map_err(|e| self.kv.error(e))?;
            if let Some((key, start, _)) = parse_window_key(k.value()) {
                if start >= min_live {
                    out.push((key, start, v.value().to_vec()));
                }
            }
        }
        Ok(out)
    }
}

impl super::WindowBytesStore for RedbWindowStore {
    fn put(&mut self, key: &[u8], window_start: i64, value: Option<&[u8]>) -> Result<(), StreamsError> {
        self.observed_stream_time = self.observed_stream_time.max(window_start);
        let min_live = self.min_live_time();
        if window_start < min_live {
            tracing::debug!(window_start, "skipping a write to an expired window");
            return Ok(());
        }
        let seq = if self.retain_duplicates && value.is_some() {
            self.seq = self.seq.wrapping_add(1);
            self.seq
        } else {
            0
        };
        let observed = self.observed_stream_time;
        let mut txn = self.kv.db.begin_write().map_err(|e| self.kv.error(e))?;
        txn.set_durability(Durability::None);
        {
            let mut windows = txn.open_table(WINDOWS).map_err(|e| self.kv.error(e))?;
            let mut by_time = txn.open_table(WINDOWS_BY_TIME).map_err(|e| self.kv.error(e))?;
            let mut meta = txn.open_table(META).map_err(|e| self.kv.error(e))?;
            let wk = window_key(key, window_start, seq);
            let tk = time_key(key, window_start, seq);
            match value {
                Some(v) => {
                    windows.insert(wk.as_slice(), v).map_err(|e| self.kv.error(e))?;
                    by_time.insert(tk.as_slice(), &[][..]).map_err(|e| self.kv.error(e))?;
                }
                None => {
                    windows.remove(wk.as_slice()).map_err(|e| self.kv.error(e))?;
                    by_time.remove(tk.as_slice()).map_err(|e| self.kv.error(e))?;
                }
            }
            // Drop expired windows: everything before min_live in time order.
            let bound = flip(min_live);
            let expired: Vec<Vec<u8>> = by_time
                .range(..&bound[..])
                .map_err(|e| self.kv.error(e))?
                .map(|r| r.map(|(k, _)| k.value().to_vec()))
                .collect::<Result<_, _>>()
                .map_err(|e| self.kv.error(e))?;
            for tk in expired {
                by_time.remove(tk.as_slice()).map_err(|e| self.kv.error(e))?;
                let Some((start, rest)) = tk.split_first_chunk::<8>() else { continue };
                let Some((len, rest)) = rest.split_first_chunk::<4>() else { continue };
                let len = u32::from_be_bytes(*len) as usize;
                if rest.len() < len + 4 {
                    continue;
                }
                let (k, seq) = rest.split_at(len);
                let seq = seq.try_into().map(u32::from_be_bytes).unwrap_or(0);
                windows.remove(window_key(k, unflip(*start), seq).as_slice()).map_err(|e| self.kv.error(e))?;
            }
            meta.insert("observed_stream_time", observed).map_err(|e| self.kv.error(e))?;
        }
        txn.commit().map_err(|e| self.kv.error(e))
    }

    fn fetch(&self, key: &[u8], window_start: i64) -> Result<Option<Vec<u8>>, StreamsError> {
        Ok(self.fetch_range(key, window_start, window_start)?.into_iter().next().map(|(_, v)| v))
    }

    fn fetch_range(&self, key: &[u8], time_from: i64, time_to: i64) -> Result<Vec<(i64, Vec<u8>)>, StreamsError> {
        if time_from > time_to {
            return Ok(Vec::new());
        }
        let from = window_key(key, time_from, 0);
        let to = window_key(key, time_to, u32::MAX);
        Ok(self.scan(&from, &to)?.into_iter().map(|(_, start, v)| (start, v)).collect())
    }

    fn fetch_all(&self, time_from: i64, time_to: i64) -> Result<super::WindowEntries, StreamsError> {
        let all = self.scan(&[], &[0xff; 4])?;
        let mut out: super::WindowEntries =
            all.into_iter().filter(|(_, start, _)| *start >= time_from && *start <= time_to).collect();
        out.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        Ok(out)
    }

    fn all(&self) -> Result<super::WindowEntries, StreamsError> {
        self.fetch_all(i64::MIN, i64::MAX)
    }

    fn flush(&mut self) -> Result<(), StreamsError> {
        self.kv.flush()
    }
}

/// Session entries: `key length | key | end (sign-flipped) | start (sign-flipped)` → value.
const SESSIONS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("sessions");
/// The same by end first, to drop expired sessions.
const SESSIONS_BY_END: TableDefinition<&[u8], &[u8]> = TableDefinition::new("sessions_by_end");

fn session_key(key: &[u8], end: i64, start: i64) -> Vec<u8> {
    let mut k = Vec::with_capacity(20 + key.len());
    k.extend_from_slice(&(key.len() as u32).to_be_bytes());
    k.extend_from_slice(key);
    k.extend_from_slice(&flip(end));
    k.extend_from_slice(&flip(start));
    k
}

fn session_time_key(key: &[u8], end: i64, start: i64) -> Vec<u8> {
    let mut k = flip(end).to_vec();
    k.extend_from_slice(&session_key(key, end, start));
    k
}

fn parse_session_key(k: &[u8]) -> Option<(Vec<u8>, crate::Window)> {
    let (len, rest) = k.split_first_chunk::<4>()?;
    let len = u32::from_be_bytes(*len) as usize;
    if rest.len() != len + 16 {
        return None;
    }
    let (key, rest) = rest.split_at(len);
    let (end, start) = rest.split_first_chunk::<8>()?;
    let start: [u8; 8] = start.try_into().ok()?;
    Some((key.to_vec(), crate::Window::new(unflip(start), unflip(*end))))
}

/// A session store in a redb database file, with the retention rules of
/// [`InMemorySessionStore`](super::InMemorySessionStore).
pub struct RedbSessionStore {
    kv: RedbKeyValueStore,
    retention: i64,
    observed_stream_time: i64,
}

impl std::fmt::Debug for RedbSessionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbSessionStore").field("store", &self.kv).field("retention", &self.retention).finish()
    }
}

impl RedbSessionStore {
    /// Opens (or creates) the session store `name` at `path`, keeping sessions for `retention_ms`.
    pub fn open(name: &str, path: &Path, retention_ms: i64) -> Result<Self, StreamsError> {
        let kv = RedbKeyValueStore::open(name, path)?;
        let txn = kv.db.begin_write().map_err(|e| kv.error(e))?;
        let observed = {
            let _ = txn.open_table(SESSIONS).map_err(|e| kv.error(e))?;
            let _ = txn.open_table(SESSIONS_BY_END).map_err(|e| kv.error(e))?;
            let meta = txn.open_table(META).map_err(|e| kv.error(e))?;
            let observed = meta.get("observed_stream_time").map_err(|e| kv.error(e))?.map(|v| v.value());
            observed.unwrap_or(i64::MIN)
        };
        txn.commit().map_err(|e| kv.error(e))?;
        Ok(RedbSessionStore { kv, retention: retention_ms, observed_stream_time: observed })
    }

    fn min_live_end(&self) -> i64 {
        self.observed_stream_time.saturating_sub(self.retention).saturating_add(1)
    }

    fn scan(&self, from: &[u8], to: &[u8]) -> Result<super::SessionEntries, StreamsError> {
        let min_live = self.min_live_end();
        let txn = self.kv.db.begin_read().map_err(|e| self.kv.error(e))?;
        let table = txn.open_table(SESSIONS).map_err(|e| self.kv.error(e))?;
        let mut out = Vec::new();
        for entry in table.range(from..=to).map_err(|e| self.kv.error(e))? {
            let (k, v) = entry.map_err(|e| self.kv.error(e))?;
            if let Some((key, window)) = parse_session_key(k.value()) {
                if window.end >= min_live {
                    out.push((key, window, v.value().to_vec()));
                }
            }
        }
        Ok(out)
    }
}

impl super::SessionBytesStore for RedbSessionStore {
    fn find_sessions(
        &self,
        key: &[u8],
        earliest_session_end: i64,
        latest_session_start: i64,
    ) -> Result<Vec<(crate::Window, Vec<u8>)>, StreamsError> {
        let from = session_key(key, earliest_session_end, i64::MIN);
        let to = session_key(key, i64::MAX, i64::MAX);
        Ok(self
            .scan(&from, &to)?
            .into_iter()
            .filter(|(_, w, _)| w.start <= latest_session_start)
            .map(|(_, w, v)| (w, v))
            .collect())
    }

    fn put(&mut self, key: &[u8], window: crate::Window, value: Option<&[u8]>) -> Result<(), StreamsError> {
        if value.is_some() {
            self.observed_stream_time = self.observed_stream_time.max(window.end);
            if window.end < self.min_live_end() {
                return Ok(());
            }
        }
        let (observed, min_live) = (self.observed_stream_time, self.min_live_end());
        let mut txn = self.kv.db.begin_write().map_err(|e| self.kv.error(e))?;
        txn.set_durability(Durability::None);
        {
            let mut sessions = txn.open_table(SESSIONS).map_err(|e| self.kv.error(e))?;
            let mut by_end = txn.open_table(SESSIONS_BY_END).map_err(|e| self.kv.error(e))?;
            let mut meta = txn.open_table(META).map_err(|e| self.kv.error(e))?;
            let sk = session_key(key, window.end, window.start);
            let tk = session_time_key(key, window.end, window.start);
            match value {
                Some(v) => {
                    sessions.insert(sk.as_slice(), v).map_err(|e| self.kv.error(e))?;
                    by_end.insert(tk.as_slice(), &[][..]).map_err(|e| self.kv.error(e))?;
                }
                None => {
                    sessions.remove(sk.as_slice()).map_err(|e| self.kv.error(e))?;
                    by_end.remove(tk.as_slice()).map_err(|e| self.kv.error(e))?;
                }
            }
            let bound = flip(min_live);
            let expired: Vec<Vec<u8>> = by_end
                .range(..&bound[..])
                .map_err(|e| self.kv.error(e))?
                .map(|r| r.map(|(k, _)| k.value().to_vec()))
                .collect::<Result<_, _>>()
                .map_err(|e| self.kv.error(e))?;
            for tk in expired {
                by_end.remove(tk.as_slice()).map_err(|e| self.kv.error(e))?;
                if let Some(sk) = tk.get(8..) {
                    sessions.remove(sk).map_err(|e| self.kv.error(e))?;
                }
            }
            meta.insert("observed_stream_time", observed).map_err(|e| self.kv.error(e))?;
        }
        txn.commit().map_err(|e| self.kv.error(e))
    }

    fn all(&self) -> Result<super::SessionEntries, StreamsError> {
        let mut out = self.scan(&[], &[0xff; 4])?;
        out.sort_by(|a, b| (&a.0, a.1.end, a.1.start).cmp(&(&b.0, b.1.end, b.1.start)));
        Ok(out)
    }

    fn flush(&mut self) -> Result<(), StreamsError> {
        self.kv.flush()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::state::{SessionBytesStore, WindowBytesStore};
    use crate::Window;

    #[test]
    fn redb_session_store_finds_overlapping_sessions_and_drops_expired_ones() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = RedbSessionStore::open("s", &dir.path().join("s.redb"), 50).unwrap();
        s.put(b"k", Window::new(0, 10), Some(b"a")).unwrap();
        s.put(b"k", Window::new(30, 40), Some(b"b")).unwrap();
        s.put(b"k2", Window::new(5, 5), Some(b"c")).unwrap();
        let found: Vec<Window> = s.find_sessions(b"k", 8, 35).unwrap().into_iter().map(|(w, _)| w).collect();
        assert_eq!(found, vec![Window::new(0, 10), Window::new(30, 40)]);
        s.put(b"k", Window::new(0, 10), None).unwrap();
        assert_eq!(s.find_sessions(b"k", i64::MIN, i64::MAX).unwrap().len(), 1);
        s.put(b"k", Window::new(90, 100), Some(b"d")).unwrap(); // observed 100: ends before 51 expire
        let all: Vec<(Vec<u8>, Window)> = s.all().unwrap().into_iter().map(|(k, w, _)| (k, w)).collect();
        assert_eq!(all, vec![(b"k".to_vec(), Window::new(90, 100))]);
    }

    #[test]
    fn redb_window_store_fetches_by_key_and_time_and_drops_windows_past_retention() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = RedbWindowStore::open("w", &dir.path().join("w.redb"), 100, false).unwrap();
        s.put(b"a", 0, Some(b"0")).unwrap();
        s.put(b"a", 50, Some(b"50")).unwrap();
        s.put(b"ab", 50, Some(b"x")).unwrap();
        s.put(b"a", -5, Some(b"neg")).unwrap();
        let got: Vec<i64> = s.fetch_range(b"a", -10, 60).unwrap().into_iter().map(|(t, _)| t).collect();
        assert_eq!(got, vec![-5, 0, 50]);
        s.put(b"a", 50, Some(b"50b")).unwrap();
        assert_eq!(s.fetch(b"a", 50).unwrap(), Some(b"50b".to_vec()));
        s.put(b"a", 120, Some(b"120")).unwrap(); // observed 120: windows before 21 expire
        let got: Vec<i64> = s.fetch_range(b"a", i64::MIN, i64::MAX).unwrap().into_iter().map(|(t, _)| t).collect();
        assert_eq!(got, vec![50, 120]);
        assert_eq!(s.all().unwrap().len(), 3);
    }

    #[test]
    fn redb_window_store_keeps_duplicates_and_its_stream_time_across_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.redb");
        {
            let mut s = RedbWindowStore::open("w", &path, 10, true).unwrap();
            s.put(b"k", 100, Some(b"1")).unwrap();
            s.put(b"k", 100, Some(b"2")).unwrap();
            s.flush().unwrap();
        }
        let mut s = RedbWindowStore::open("w", &path, 10, true).unwrap();
        assert_eq!(s.fetch_range(b"k", 100, 100).unwrap().len(), 2);
        s.put(b"k", 50, Some(b"late")).unwrap(); // 50 < 100 - 10: expired even after reopening
        assert_eq!(s.fetch_range(b"k", 0, 200).unwrap().len(), 2);
    }

    #[test]
    fn redb_store_gets_puts_deletes_and_ranges_in_key_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = RedbKeyValueStore::open("s", &dir.path().join("s.redb")).unwrap();
        for k in [b"c", b"a", b"b", b"d"] {
            s.put(k, k).unwrap();
        }
        assert_eq!(s.get(b"a").unwrap(), Some(b"a".to_vec()));
        assert_eq!(s.delete(b"d").unwrap(), Some(b"d".to_vec()));
        let keys: Vec<Vec<u8>> = s.range(b"b", b"d").unwrap().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, vec![b"b".to_vec(), b"c".to_vec()]);
        assert_eq!(s.approximate_num_entries().unwrap(), 3);
    }

    #[test]
    fn redb_store_keeps_flushed_data_across_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        {
            let mut s = RedbKeyValueStore::open("s", &path).unwrap();
            s.put(b"k", b"v").unwrap();
            s.flush().unwrap();
        }
        let s = RedbKeyValueStore::open("s", &path).unwrap();
        assert_eq!(s.get(b"k").unwrap(), Some(b"v".to_vec()));
    }
}
