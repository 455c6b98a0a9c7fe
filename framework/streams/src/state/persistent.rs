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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

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
