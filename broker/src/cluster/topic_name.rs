//! Topic name rules, exactly as Apache Kafka's `Topic.validate` states them.

/// Longest legal topic name (Kafka keeps 249 so `<topic>-<partition>` folder names stay under 255 bytes).
pub const MAX_NAME_LENGTH: usize = 249;

/// Checks a topic name; the error text matches Kafka's so clients show a familiar message.
pub fn validate(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("Topic name is illegal, it can't be empty".to_string());
    }
    if name == "." || name == ".." {
        return Err("Topic name cannot be \".\" or \"..\"".to_string());
    }
    if name.len() > MAX_NAME_LENGTH {
        return Err(format!(
            "Topic name is illegal, it can't be longer than {MAX_NAME_LENGTH} characters, topic name: {name}"
        ));
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-') {
        return Err(format!(
            "Topic name \"{name}\" is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'"
        ));
    }
    Ok(())
}

/// Kafka refuses a topic whose name differs from an existing one only by '.' versus '_', because both map to
/// the same metric names.
pub fn collides(a: &str, b: &str) -> bool {
    a != b && a.replace('.', "_") == b.replace('.', "_")
}

/// Internal topics (`__consumer_offsets`, `__transaction_state`) are not produced to by clients.
pub fn is_internal(name: &str) -> bool {
    name == "__consumer_offsets" || name == "__transaction_state"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_legal_names_pass() {
        for ok in ["orders", "a.b_c-D9", &"x".repeat(249)] {
            assert!(validate(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn kafka_illegal_names_fail() {
        for bad in ["", ".", "..", "has space", "bad/slash", "é", &"a".repeat(250)] {
            assert!(validate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dot_and_underscore_collide() {
        assert!(collides("a.b", "a_b"));
        assert!(!collides("a.b", "a.b"));
        assert!(!collides("a.b", "a.c"));
    }
}
