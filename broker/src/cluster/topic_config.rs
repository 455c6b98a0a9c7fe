//! Topic configs: the names Kafka knows, their types, defaults (from the broker's settings), validation, and
//! the conversion into the [`LogConfig`] the log reads.
//!
//! Every Kafka 4.x topic config name is accepted and described, so admin tools and Terraform-style provisioning
//! work unchanged. Those the log acts on today are marked `effective`; the rest (compaction, replication
//! throttles, tiered storage) are stored and described, and take effect when their feature lands — listed in
//! `broker/README.md`.

use std::collections::BTreeMap;

use crate::config::BrokerConfig;
use crate::log::{LogConfig, TimestampType};

/// Kafka's `ConfigType` in DescribeConfigs v3+.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i8)]
pub enum ConfigType {
    Boolean = 1,
    String = 2,
    Int = 3,
    Long = 5,
    Double = 6,
    List = 7,
}

#[derive(Debug, Clone, Copy)]
enum Rule {
    Long { min: i64 },
    Int { min: i64 },
    Double { min: f64, max: f64 },
    Bool,
    OneOf(&'static [&'static str]),
    ListOf(&'static [&'static str]),
    Text,
}

/// One topic config's definition.
#[derive(Debug, Clone, Copy)]
pub struct ConfigDef {
    pub name: &'static str,
    /// The broker config that supplies the default, as Kafka names it (`log.retention.ms`), if any.
    pub broker_synonym: Option<&'static str>,
    rule: Rule,
    default: fn(&BrokerConfig) -> String,
}

impl ConfigDef {
    pub fn config_type(&self) -> ConfigType {
        match self.rule {
            Rule::Long { .. } => ConfigType::Long,
            Rule::Int { .. } => ConfigType::Int,
            Rule::Double { .. } => ConfigType::Double,
            Rule::Bool => ConfigType::Boolean,
            Rule::ListOf(_) => ConfigType::List,
            Rule::OneOf(_) | Rule::Text => ConfigType::String,
        }
    }

    pub fn default_value(&self, broker: &BrokerConfig) -> String {
        (self.default)(broker)
    }

    fn check(&self, value: &str) -> Result<(), String> {
        let bad = |why: &str| Err(format!("Invalid value {value} for configuration {}: {why}", self.name));
        match self.rule {
            Rule::Long { min } | Rule::Int { min } => match value.trim().parse::<i64>() {
                Ok(v) if v < min => bad(&format!("Value must be at least {min}")),
                Ok(v) if matches!(self.rule, Rule::Int { .. }) && v > i32::MAX as i64 => {
                    bad("Not a number of type INT")
                }
                Ok(_) => Ok(()),
                Err(_) => bad(if matches!(self.rule, Rule::Int { .. }) {
                    "Not a number of type INT"
                } else {
                    "Not a number of type LONG"
                }),
            },
            Rule::Double { min, max } => match value.trim().parse::<f64>() {
                Ok(v) if v < min || v > max => bad(&format!("Value must be between {min} and {max}")),
                Ok(_) => Ok(()),
                Err(_) => bad("Not a number of type DOUBLE"),
            },
            Rule::Bool => match value.trim().to_ascii_lowercase().as_str() {
                "true" | "false" => Ok(()),
                _ => bad("Expected value to be either true or false"),
            },
            Rule::OneOf(allowed) => {
                if allowed.contains(&value.trim()) {
                    Ok(())
                } else {
                    bad(&format!("String must be one of: {}", allowed.join(", ")))
                }
            }
            Rule::ListOf(allowed) => {
                let items: Vec<&str> = value.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
                if items.is_empty() || items.iter().any(|i| !allowed.contains(i)) {
                    bad(&format!("List must contain only: {}", allowed.join(", ")))
                } else {
                    Ok(())
                }
            }
            Rule::Text => Ok(()),
        }
    }
}

macro_rules! def {
    ($name:expr, $syn:expr, $rule:expr, $default:expr) => {
        ConfigDef { name: $name, broker_synonym: $syn, rule: $rule, default: $default }
    };
}

/// Every topic config Kafka 4.x defines, in name order.
pub static TOPIC_CONFIGS: &[ConfigDef] = &[
    def!("cleanup.policy", Some("log.cleanup.policy"), Rule::ListOf(&["delete", "compact"]), |b| b
        .log_cleanup_policy
        .clone()),
    def!("compression.gzip.level", None, Rule::Int { min: -1 }, |_| "-1".into()),
    def!("compression.lz4.level", None, Rule::Int { min: 1 }, |_| "9".into()),
    def!("compression.type", Some("compression.type"), Rule::OneOf(&["producer"]), |_| "producer".into()),
    def!("compression.zstd.level", None, Rule::Int { min: -131072 }, |_| "3".into()),
    def!("delete.retention.ms", Some("log.cleaner.delete.retention.ms"), Rule::Long { min: 0 }, |b| b
        .log_cleaner_delete_retention_ms
        .to_string()),
    def!("file.delete.delay.ms", Some("log.segment.delete.delay.ms"), Rule::Long { min: 0 }, |b| b
        .log_segment_delete_delay_ms
        .to_string()),
    def!("flush.messages", Some("log.flush.interval.messages"), Rule::Long { min: 1 }, |b| {
        if b.flush_every_produce {
            "1".into()
        } else {
            b.log_flush_interval_messages.to_string()
        }
    }),
    def!("flush.ms", Some("log.flush.interval.ms"), Rule::Long { min: 0 }, |b| b.log_flush_interval_ms.to_string()),
    def!("follower.replication.throttled.replicas", None, Rule::Text, |_| String::new()),
    def!("index.interval.bytes", Some("log.index.interval.bytes"), Rule::Int { min: 0 }, |b| b
        .log_index_interval_bytes
        .to_string()),
    def!("leader.replication.throttled.replicas", None, Rule::Text, |_| String::new()),
    def!("local.retention.bytes", Some("log.local.retention.bytes"), Rule::Long { min: -2 }, |_| "-2".into()),
    def!("local.retention.ms", Some("log.local.retention.ms"), Rule::Long { min: -2 }, |_| "-2".into()),
    def!("max.compaction.lag.ms", Some("log.cleaner.max.compaction.lag.ms"), Rule::Long { min: 1 }, |b| b
        .log_cleaner_max_compaction_lag_ms
        .to_string()),
    def!("max.message.bytes", Some("message.max.bytes"), Rule::Int { min: 0 }, |b| b.message_max_bytes.to_string()),
    def!("message.timestamp.after.max.ms", Some("log.message.timestamp.after.max.ms"), Rule::Long { min: 0 }, |b| b
        .log_message_timestamp_after_max_ms
        .to_string()),
    def!("message.timestamp.before.max.ms", Some("log.message.timestamp.before.max.ms"), Rule::Long { min: 0 }, |b| {
        b.log_message_timestamp_before_max_ms.to_string()
    }),
    def!(
        "message.timestamp.type",
        Some("log.message.timestamp.type"),
        Rule::OneOf(&["CreateTime", "LogAppendTime"]),
        |b| { b.log_message_timestamp_type.clone() }
    ),
    def!(
        "min.cleanable.dirty.ratio",
        Some("log.cleaner.min.cleanable.ratio"),
        Rule::Double { min: 0.0, max: 1.0 },
        |b| b.log_cleaner_min_cleanable_ratio.to_string()
    ),
    def!("min.compaction.lag.ms", Some("log.cleaner.min.compaction.lag.ms"), Rule::Long { min: 0 }, |b| b
        .log_cleaner_min_compaction_lag_ms
        .to_string()),
    def!("min.insync.replicas", Some("min.insync.replicas"), Rule::Int { min: 1 }, |_| "1".into()),
    def!("preallocate", Some("log.preallocate"), Rule::Bool, |_| "false".into()),
    def!("remote.log.copy.disable", None, Rule::Bool, |_| "false".into()),
    def!("remote.log.delete.on.disable", None, Rule::Bool, |_| "false".into()),
    def!("remote.storage.enable", None, Rule::OneOf(&["false"]), |_| "false".into()),
    def!("retention.bytes", Some("log.retention.bytes"), Rule::Long { min: -1 }, |b| b.log_retention_bytes.to_string()),
    def!("retention.ms", Some("log.retention.ms"), Rule::Long { min: -1 }, |b| b.log_retention_ms.to_string()),
    def!("segment.bytes", Some("log.segment.bytes"), Rule::Int { min: 14 }, |b| b.log_segment_bytes.to_string()),
    def!("segment.index.bytes", Some("log.index.size.max.bytes"), Rule::Int { min: 4 }, |b| b
        .log_index_size_max_bytes
        .to_string()),
    def!("segment.jitter.ms", Some("log.roll.jitter.ms"), Rule::Long { min: 0 }, |_| "0".into()),
    def!("segment.ms", Some("log.roll.ms"), Rule::Long { min: 1 }, |b| b.log_roll_ms.to_string()),
    def!("unclean.leader.election.enable", Some("unclean.leader.election.enable"), Rule::Bool, |_| "false".into()),
];

/// Looks up a topic config by name.
pub fn definition(name: &str) -> Option<&'static ConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

/// Checks every override: the name must be a Kafka topic config and the value must parse and be in range.
/// The message names the offending key, as Kafka's does.
pub fn validate(overrides: &BTreeMap<String, String>) -> Result<(), String> {
    for (name, value) in overrides {
        let def = definition(name).ok_or_else(|| format!("Unknown topic config name: {name}"))?;
        def.check(value)?;
    }
    Ok(())
}

/// The value of `name` for a topic: its override, else the broker default.
pub fn effective_value(broker: &BrokerConfig, overrides: &BTreeMap<String, String>, def: &ConfigDef) -> String {
    overrides.get(def.name).cloned().unwrap_or_else(|| def.default_value(broker))
}

/// The log settings of a topic with these overrides. Values were validated when they were set; anything that
/// still fails to parse (a hand-edited metadata file) falls back to the broker default.
pub fn log_config(broker: &BrokerConfig, overrides: &BTreeMap<String, String>) -> LogConfig {
    let base = broker.default_log_config();
    let get = |name: &str| overrides.get(name).map(|v| v.trim().to_string());
    let long = |name: &str, fallback: i64| get(name).and_then(|v| v.parse::<i64>().ok()).unwrap_or(fallback);
    LogConfig {
        segment_bytes: long("segment.bytes", base.segment_bytes as i64).max(14) as u64,
        segment_ms: long("segment.ms", base.segment_ms),
        segment_index_bytes: long("segment.index.bytes", base.segment_index_bytes as i64).max(4) as u64,
        index_interval_bytes: long("index.interval.bytes", base.index_interval_bytes as i64).max(0) as u64,
        retention_ms: long("retention.ms", base.retention_ms),
        retention_bytes: long("retention.bytes", base.retention_bytes),
        max_message_bytes: long("max.message.bytes", base.max_message_bytes as i64).max(0) as usize,
        message_timestamp_type: match get("message.timestamp.type").as_deref() {
            Some("LogAppendTime") => TimestampType::LogAppendTime,
            Some("CreateTime") => TimestampType::CreateTime,
            _ => base.message_timestamp_type,
        },
        message_timestamp_before_max_ms: long("message.timestamp.before.max.ms", base.message_timestamp_before_max_ms),
        message_timestamp_after_max_ms: long("message.timestamp.after.max.ms", base.message_timestamp_after_max_ms),
        flush_messages: long("flush.messages", base.flush_messages),
        flush_ms: long("flush.ms", base.flush_ms),
        file_delete_delay_ms: long("file.delete.delay.ms", base.file_delete_delay_ms),
        cleanup_policy_compact: get("cleanup.policy")
            .map(|v| v.split(',').any(|p| p.trim() == "compact"))
            .unwrap_or(base.cleanup_policy_compact),
        cleanup_policy_delete: get("cleanup.policy")
            .map(|v| v.split(',').any(|p| p.trim() == "delete"))
            .unwrap_or(base.cleanup_policy_delete),
        delete_retention_ms: long("delete.retention.ms", base.delete_retention_ms),
        min_cleanable_dirty_ratio: get("min.cleanable.dirty.ratio")
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(base.min_cleanable_dirty_ratio),
        min_compaction_lag_ms: long("min.compaction.lag.ms", base.min_compaction_lag_ms),
        max_compaction_lag_ms: long("max.compaction.lag.ms", base.max_compaction_lag_ms),
        producer_id_expiration_ms: base.producer_id_expiration_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn unknown_name_is_refused_by_name() {
        let err = validate(&map(&[("retention.msx", "1")])).unwrap_err();
        assert_eq!(err, "Unknown topic config name: retention.msx");
    }

    #[test]
    fn bad_values_are_refused_with_the_key() {
        for (k, v) in
            [("retention.ms", "soon"), ("retention.ms", "-5"), ("cleanup.policy", "shred"), ("preallocate", "yes")]
        {
            let err = validate(&map(&[(k, v)])).unwrap_err();
            assert!(err.contains(k), "{err}");
        }
    }

    #[test]
    fn values_below_the_minimum_are_refused() {
        assert!(validate(&map(&[("segment.ms", "-7")])).is_err());
        assert!(validate(&map(&[("segment.ms", "1")])).is_ok());
    }

    #[test]
    fn overrides_reach_the_log_config() {
        let broker = BrokerConfig::default();
        let c = log_config(&broker, &map(&[("retention.ms", "1000"), ("message.timestamp.type", "LogAppendTime")]));
        assert_eq!(c.retention_ms, 1000);
        assert_eq!(c.message_timestamp_type, TimestampType::LogAppendTime);
        assert_eq!(c.segment_bytes, broker.log_segment_bytes);
    }

    #[test]
    fn every_default_passes_its_own_validation() {
        let broker = BrokerConfig::default();
        for def in TOPIC_CONFIGS {
            let v = def.default_value(&broker);
            if !v.is_empty() {
                assert!(def.check(&v).is_ok(), "{} default {v} fails", def.name);
            }
        }
    }

    #[test]
    fn names_are_sorted_and_unique() {
        let names: Vec<_> = TOPIC_CONFIGS.iter().map(|d| d.name).collect();
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(names, sorted);
    }
}
