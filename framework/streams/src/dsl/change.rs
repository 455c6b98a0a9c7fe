//! What a KTable node forwards (Kafka's internal `Change<V>`): the new value and the one it replaced, so
//! downstream tables, joins and aggregations can undo the old one. `None` is absent (a tombstone).

/// A table update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change<V> {
    /// The value after the update (`None`: deleted).
    pub new_value: Option<V>,
    /// The value before (`None`: there was none).
    pub old_value: Option<V>,
}

impl<V> Change<V> {
    /// `Change { new_value, old_value }`.
    pub fn new(new_value: Option<V>, old_value: Option<V>) -> Self {
        Change { new_value, old_value }
    }
}

/// How a `Change` crosses a repartition topic (Kafka's `ChangedSerializer` does the same job): a flags byte
/// (1: new value present, 2: old value present), the new value's length as a big-endian u32 and its bytes, then
/// the old value's bytes.
impl<V: spate::Encode> spate::Encode for Change<V> {
    fn encode(&self) -> Result<Option<Vec<u8>>, spate::SerializationError> {
        let new = match &self.new_value {
            Some(v) => Some(v.encode()?.unwrap_or_default()),
            None => None,
        };
        let old = match &self.old_value {
            Some(v) => Some(v.encode()?.unwrap_or_default()),
            None => None,
        };
        let flags = u8::from(new.is_some()) | (u8::from(old.is_some()) << 1);
        let new = new.unwrap_or_default();
        let len = u32::try_from(new.len()).map_err(|_| spate::SerializationError {
            type_name: "Change",
            message: "value longer than 4 GiB".into(),
        })?;
        let mut out = vec![flags];
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&new);
        out.extend_from_slice(&old.unwrap_or_default());
        Ok(Some(out))
    }
}

impl<V: spate::Decode> spate::Decode for Change<V> {
    fn decode(data: Option<&[u8]>, part: spate::RecordPart) -> Result<Self, spate::DeserializationError> {
        let bad = |message: &str| spate::DeserializationError { part, type_name: "Change", message: message.into() };
        let bytes = data.ok_or_else(|| bad("null"))?;
        let (&flags, rest) = bytes.split_first().ok_or_else(|| bad("empty"))?;
        let (len, rest) = rest.split_first_chunk::<4>().ok_or_else(|| bad("no length"))?;
        let len = u32::from_be_bytes(*len) as usize;
        if rest.len() < len {
            return Err(bad("truncated"));
        }
        let (new, old) = rest.split_at(len);
        let new_value = if flags & 1 != 0 { Some(V::decode(Some(new), part)?) } else { None };
        let old_value = if flags & 2 != 0 { Some(V::decode(Some(old), part)?) } else { None };
        Ok(Change { new_value, old_value })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::Change;
    use spate::{Decode, Encode, RecordPart};

    #[test]
    fn a_change_survives_a_repartition_topic_round_trip() {
        for c in [
            Change::new(Some("new".to_string()), Some("old".to_string())),
            Change::new(None, Some("o".into())),
            Change::new(Some(String::new()), None),
        ] {
            let bytes = c.encode().unwrap();
            assert_eq!(Change::<String>::decode(bytes.as_deref(), RecordPart::Value).unwrap(), c);
        }
    }
}
