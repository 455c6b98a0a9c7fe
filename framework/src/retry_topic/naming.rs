//! Names of the retry topics and the DLT of a main topic, and which topic a failed delivery goes to next
//! (Spring's `DestinationTopicResolver`).

use super::configuration::{RetryTopicConfiguration, TopicSuffixingStrategy};

/// Where a failed record goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Destination {
    /// A retry topic, delivered after `delay_ms`, as delivery number `attempt`.
    Retry {
        /// The retry topic.
        topic: String,
        /// Milliseconds to wait before the delivery.
        delay_ms: u64,
        /// The delivery number it will be (2 for the first retry).
        attempt: u32,
    },
    /// The dead-letter topic.
    Dlt(String),
}

/// The topics derived from one main topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TopicChain {
    pub main: String,
    /// The retry topic of each retry delivery (index 0: the second delivery), with its delay.
    pub retries: Vec<(String, u64)>,
    pub dlt: String,
}

impl TopicChain {
    pub(crate) fn new(main: &str, config: &RetryTopicConfiguration) -> Self {
        let delays = config.delays();
        let retries = delays
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let suffix = match config.suffixing {
                    TopicSuffixingStrategy::SuffixWithDelayValue => format!("{}-{d}", config.retry_topic_suffix),
                    TopicSuffixingStrategy::SuffixWithIndexValue => format!("{}-{i}", config.retry_topic_suffix),
                };
                (format!("{main}{suffix}"), *d)
            })
            .collect();
        TopicChain { main: main.to_string(), retries, dlt: format!("{main}{}", config.dlt_suffix) }
    }

    /// Distinct retry topics, in the order of first use.
    pub(crate) fn retry_topics(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for (t, _) in &self.retries {
            if !out.contains(&t.as_str()) {
                out.push(t);
            }
        }
        out
    }

    /// Whether `topic` is one of this chain's topics (main, retry or DLT).
    pub(crate) fn owns(&self, topic: &str) -> bool {
        topic == self.main || topic == self.dlt || self.retries.iter().any(|(t, _)| t == topic)
    }

    /// Where a record goes after its `delivered`-th delivery (1: on the main topic) failed.
    pub(crate) fn next(&self, delivered: u32, retryable: bool) -> Destination {
        let index = delivered.saturating_sub(1) as usize;
        match self.retries.get(index) {
            Some((topic, delay_ms)) if retryable => {
                Destination::Retry { topic: topic.clone(), delay_ms: *delay_ms, attempt: delivered + 1 }
            }
            _ => Destination::Dlt(self.dlt.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retry_topic::RetryBackOff;

    #[test]
    fn delay_value_names_share_a_topic_per_delay() {
        let c = RetryTopicConfiguration::new().attempts(5).back_off(RetryBackOff::exponential(1000, 2.0, 2000));
        let chain = TopicChain::new("orders", &c);
        assert_eq!(chain.retry_topics(), vec!["orders-retry-1000", "orders-retry-2000"]);
        assert_eq!(chain.dlt, "orders-dlt");
        assert_eq!(
            chain.next(1, true),
            Destination::Retry { topic: "orders-retry-1000".into(), delay_ms: 1000, attempt: 2 }
        );
        assert_eq!(
            chain.next(4, true),
            Destination::Retry { topic: "orders-retry-2000".into(), delay_ms: 2000, attempt: 5 }
        );
        assert_eq!(chain.next(5, true), Destination::Dlt("orders-dlt".into()));
        assert_eq!(chain.next(1, false), Destination::Dlt("orders-dlt".into()));
    }

    #[test]
    fn index_names_give_each_retry_its_topic() {
        let c = RetryTopicConfiguration::new()
            .attempts(4)
            .suffixing_strategy(TopicSuffixingStrategy::SuffixWithIndexValue)
            .retry_topic_suffix("-r")
            .dlt_suffix("-dead");
        let chain = TopicChain::new("orders", &c);
        assert_eq!(chain.retry_topics(), vec!["orders-r-0", "orders-r-1", "orders-r-2"]);
        assert_eq!(chain.dlt, "orders-dead");
        assert!(chain.owns("orders-r-1") && chain.owns("orders") && !chain.owns("other"));
    }
}
