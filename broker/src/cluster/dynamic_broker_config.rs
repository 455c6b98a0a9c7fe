//! Broker configs that can change while the broker runs (AlterConfigs / IncrementalAlterConfigs on a BROKER
//! resource), as Kafka's `DynamicBrokerConfig` allows for the cluster-wide topic defaults.
//!
//! Only the broker defaults behind topic configs are dynamic, the same set Kafka lets an operator change without
//! a restart (`log.retention.ms`, `log.segment.bytes`, ...). Changes persist in the metadata image and apply at
//! once to every topic that does not override them. Everything else (listeners, data dir, node id) is static and
//! refused with a message saying so.

use std::collections::BTreeMap;

use crate::config::BrokerConfig;

/// Broker configs that may be set at run time, by Kafka name.
pub const DYNAMIC: &[&str] = &[
    "log.flush.interval.messages",
    "log.flush.interval.ms",
    "log.index.interval.bytes",
    "log.index.size.max.bytes",
    "log.message.timestamp.after.max.ms",
    "log.message.timestamp.before.max.ms",
    "log.message.timestamp.type",
    "log.retention.bytes",
    "log.retention.ms",
    "log.roll.ms",
    "log.segment.bytes",
    "log.segment.delete.delay.ms",
    "message.max.bytes",
];

/// Whether `name` can be changed at run time.
pub fn is_dynamic(name: &str) -> bool {
    DYNAMIC.contains(&name)
}

/// The static config with the run-time overrides applied. Fails, naming the key, if a name is not dynamic or a
/// value does not fit the setting's type.
pub fn apply(base: &BrokerConfig, overrides: &BTreeMap<String, String>) -> Result<BrokerConfig, String> {
    let mut json = serde_json::to_value(base).map_err(|e| e.to_string())?;
    let fields = json.as_object_mut().ok_or("broker config is not an object")?;
    for (name, value) in overrides {
        if !is_dynamic(name) {
            return Err(format!(
                "Cannot update broker config {name} at run time: it is read-only; set it in spate.toml, \
                 SPATE_BROKER_* or a flag and restart"
            ));
        }
        let field = name.replace('.', "_");
        let current = fields.get(&field).ok_or_else(|| format!("Unknown broker config {name}"))?;
        let parsed = match current {
            serde_json::Value::Number(_) => value
                .trim()
                .parse::<i64>()
                .map(serde_json::Value::from)
                .map_err(|_| format!("Invalid value {value} for configuration {name}: Not a number of type LONG"))?,
            serde_json::Value::Bool(_) => match value.trim() {
                "true" => serde_json::Value::Bool(true),
                "false" => serde_json::Value::Bool(false),
                _ => return Err(format!("Invalid value {value} for configuration {name}: Expected true or false")),
            },
            _ => serde_json::Value::String(value.clone()),
        };
        fields.insert(field, parsed);
    }
    let config: BrokerConfig = serde_json::from_value(json).map_err(|e| format!("Invalid broker config value: {e}"))?;
    if config.log_message_timestamp_type != "CreateTime" && config.log_message_timestamp_type != "LogAppendTime" {
        return Err(format!(
            "Invalid value {} for configuration log.message.timestamp.type: String must be one of: CreateTime, LogAppendTime",
            config.log_message_timestamp_type
        ));
    }
    let negative = |v: i64, min: i64, name: &str| {
        if v < min {
            Err(format!("Invalid value {v} for configuration {name}: Value must be at least {min}"))
        } else {
            Ok(())
        }
    };
    negative(config.log_retention_ms, -1, "log.retention.ms")?;
    negative(config.log_retention_bytes, -1, "log.retention.bytes")?;
    negative(config.log_roll_ms, 1, "log.roll.ms")?;
    negative(config.log_flush_interval_messages, 1, "log.flush.interval.messages")?;
    negative(config.log_flush_interval_ms, 0, "log.flush.interval.ms")?;
    negative(config.log_segment_bytes as i64, 14, "log.segment.bytes")?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn dynamic_values_override_the_static_ones() {
        let c = apply(&BrokerConfig::default(), &map(&[("log.retention.ms", "5000"), ("message.max.bytes", "77")]))
            .unwrap();
        assert_eq!(c.log_retention_ms, 5000);
        assert_eq!(c.message_max_bytes, 77);
    }

    #[test]
    fn static_configs_are_refused_by_name() {
        let err = apply(&BrokerConfig::default(), &map(&[("node.id", "7")])).unwrap_err();
        assert!(err.contains("node.id"), "{err}");
    }

    #[test]
    fn bad_values_are_refused_by_name() {
        for (k, v) in [("log.retention.ms", "soon"), ("log.roll.ms", "0"), ("log.message.timestamp.type", "Now")] {
            let err = apply(&BrokerConfig::default(), &map(&[(k, v)])).unwrap_err();
            assert!(err.contains(k), "{err}");
        }
    }

    #[test]
    fn every_dynamic_name_is_a_broker_config_field() {
        let json = serde_json::to_value(BrokerConfig::default()).unwrap();
        for name in DYNAMIC {
            assert!(json.get(name.replace('.', "_")).is_some(), "{name}");
        }
    }
}
