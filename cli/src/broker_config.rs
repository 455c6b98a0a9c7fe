//! How `spate broker` arrives at its [`BrokerConfig`]: built-in defaults, then the `[broker]` section of
//! `spate.toml`, then `SPATE_BROKER_*` environment variables, then command-line flags, each layer overriding the
//! one before. A key that no layer may set, or a value of the wrong shape, stops start-up with a message naming
//! the key exactly as it was written and where (which file, which variable, which flag), because a typo in a
//! retention setting that is silently ignored is worse than a broker that does not start.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use serde::Serialize;
use spate_broker::config::StorageBackendKind;
use spate_broker::BrokerConfig;

pub const ENV_PREFIX: &str = "SPATE_BROKER_";
pub const DEFAULT_FILE: &str = "spate.toml";
pub const SECTION: &str = "broker";

/// The broker settings that have their own flag; everything else goes through `--set`.
#[derive(Debug, Default, Clone, Serialize)]
pub struct FlagSettings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advertised_listener: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_backend: Option<StorageBackendKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_id: Option<i32>,
}

/// Where the layers come from.
#[derive(Debug, Default, Clone)]
pub struct Sources {
    /// `--config`; without it `spate.toml` in the working directory is read when it exists.
    pub file: Option<PathBuf>,
    pub flags: FlagSettings,
    /// `--set key=value`, with Kafka's dotted names accepted (`log.retention.ms`).
    pub set: Vec<(String, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {} does not exist", .0.display())]
    MissingFile(PathBuf),
    #[error("unknown broker setting `{key}` ({origin}){}", did_you_mean(.suggestion))]
    UnknownKey { key: String, origin: String, suggestion: Option<&'static str> },
    #[error("{0}")]
    Invalid(String),
}

fn did_you_mean(s: &Option<&'static str>) -> String {
    s.map(|s| format!("; did you mean `{s}`?")).unwrap_or_default()
}

/// A provider with the name and key spelling of its source, so errors point at what the user wrote.
struct Named<P> {
    inner: P,
    metadata: Metadata,
}

impl<P: Provider> Provider for Named<P> {
    fn metadata(&self) -> Metadata {
        self.metadata.clone()
    }
    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        self.inner.data()
    }
}

/// A layer's data as read once, so what was checked for unknown keys is exactly what gets merged.
struct Loaded {
    metadata: Metadata,
    data: Map<Profile, Dict>,
}

impl Provider for Loaded {
    fn metadata(&self) -> Metadata {
        self.metadata.clone()
    }
    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(self.data.clone())
    }
}

/// The `[broker]` table of a TOML file; other tables belong to other parts of Spate and are left alone.
struct Section {
    path: PathBuf,
}

impl Provider for Section {
    fn metadata(&self) -> Metadata {
        Metadata::from("TOML file", self.path.as_path())
    }
    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let file = Toml::file_exact(&self.path).data()?;
        let section = match file.get(&Profile::Default).and_then(|d| d.get(SECTION)) {
            None => Dict::new(),
            Some(Value::Dict(_, dict)) => dict.clone(),
            Some(_) => {
                return Err(figment::Error::from(format!(
                    "`{SECTION}` in {} must be a table ([{SECTION}])",
                    self.path.display()
                )))
            }
        };
        Ok(Map::from([(Profile::Default, section)]))
    }
}

fn file_layer(path: &Path) -> Named<Section> {
    let shown = path.display().to_string();
    Named {
        inner: Section { path: path.to_path_buf() },
        metadata: Metadata::named(format!("file {shown}"))
            .interpolater(move |_: &Profile, k: &[&str]| format!("{shown}, [{SECTION}] {}", k.join("."))),
    }
}

fn env_layer() -> Named<Env> {
    Named {
        inner: Env::prefixed(ENV_PREFIX),
        metadata: Metadata::named("the environment").interpolater(|_: &Profile, k: &[&str]| {
            format!("environment variable {ENV_PREFIX}{}", k.join("_").to_ascii_uppercase())
        }),
    }
}

fn flags_layer(flags: &FlagSettings) -> Named<Serialized<FlagSettings>> {
    Named {
        inner: Serialized::defaults(flags.clone()),
        metadata: Metadata::named("the command line")
            .interpolater(|_: &Profile, k: &[&str]| format!("flag --{}", k.join("-").replace('_', "-"))),
    }
}

/// `--set` pairs, parsed like environment values (`true`, numbers, strings) so both behave alike.
struct SetPairs(Vec<(String, String)>);

impl Provider for SetPairs {
    fn metadata(&self) -> Metadata {
        Metadata::named("the command line")
            .interpolater(|_: &Profile, k: &[&str]| format!("flag --set {}", k.join(".")))
    }
    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let dict: Dict = self
            .0
            .iter()
            .map(|(k, v)| {
                let value: Value = v.parse().unwrap_or_else(|never: std::convert::Infallible| match never {});
                (normalize_key(k), value)
            })
            .collect();
        Ok(Map::from([(Profile::Default, dict)]))
    }
}

/// Kafka's spelling (`log.retention.ms`) and flag spelling (`log-retention-ms`) name the same setting.
fn normalize_key(key: &str) -> String {
    key.trim().replace(['.', '-'], "_").to_ascii_lowercase()
}

/// Every settable key, as serde knows it: asking serde to accept a key that cannot exist makes it list them,
/// which stays right however the broker's config struct changes.
fn known_keys() -> &'static [&'static str] {
    let probe = Figment::from(Serialized::defaults(Map::from([("\u{0}probe".to_string(), 0)])));
    match probe.extract::<BrokerConfig>() {
        Err(e) => e
            .into_iter()
            .find_map(|e| match e.kind {
                figment::error::Kind::UnknownField(_, expected) => Some(expected),
                _ => None,
            })
            .unwrap_or(&[]),
        Ok(_) => &[],
    }
}

/// The layers, lowest first.
fn layers(sources: &Sources) -> Result<Vec<Box<dyn Provider>>, ConfigError> {
    let mut layers: Vec<Box<dyn Provider>> = Vec::new();
    match &sources.file {
        Some(path) if !path.is_file() => return Err(ConfigError::MissingFile(path.clone())),
        Some(path) => layers.push(Box::new(file_layer(path))),
        None if Path::new(DEFAULT_FILE).is_file() => layers.push(Box::new(file_layer(Path::new(DEFAULT_FILE)))),
        None => {}
    }
    layers.push(Box::new(env_layer()));
    layers.push(Box::new(flags_layer(&sources.flags)));
    layers.push(Box::new(SetPairs(sources.set.clone())));
    Ok(layers)
}

pub fn load(sources: &Sources) -> Result<BrokerConfig, ConfigError> {
    let known = known_keys();
    let mut figment = Figment::from(Named {
        inner: Serialized::defaults(BrokerConfig::default()),
        metadata: Metadata::named("built-in defaults"),
    });
    for layer in layers(sources)? {
        let data = layer
            .data()
            .map_err(|e| ConfigError::Invalid(format!("cannot read {}: {}", layer.metadata().name, describe(e))))?;
        // Checked per layer, before merging, because only here is it known which layer brought the key.
        if !known.is_empty() {
            for key in data.get(&Profile::Default).into_iter().flat_map(|d| d.keys()) {
                if !known.contains(&key.as_str()) {
                    let origin = layer.metadata().interpolate(&Profile::Default, &[key.as_str()]);
                    return Err(ConfigError::UnknownKey { key: key.clone(), origin, suggestion: closest(key, known) });
                }
            }
        }
        figment = figment.merge(Loaded { metadata: layer.metadata(), data });
    }
    figment.extract::<BrokerConfig>().map_err(|e| ConfigError::Invalid(describe(e)))
}

/// One line per problem: what is wrong, the key as written, and which source gave it.
fn describe(error: figment::Error) -> String {
    error
        .into_iter()
        .map(|e| {
            let key = e.path.join(".");
            match &e.metadata {
                Some(md) if !e.path.is_empty() => {
                    let path: Vec<&str> = e.path.iter().map(String::as_str).collect();
                    let written = md.interpolate(&Profile::Default, &path);
                    format!("invalid value for broker setting `{key}` ({written}): {}", e.kind)
                }
                Some(md) => format!("invalid broker configuration from {}: {}", md.name, e.kind),
                None if !key.is_empty() => format!("invalid value for broker setting `{key}`: {}", e.kind),
                None => e.kind.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The known key nearest to a misspelt one, if it is near enough to be the likely intent.
fn closest(key: &str, known: &[&'static str]) -> Option<&'static str> {
    known
        .iter()
        .map(|k| (edit_distance(key, k), *k))
        .filter(|(d, k)| *d <= 3.max(k.len() / 5))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            current.push((previous[j] + cost).min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources_with_file(contents: &str) -> (tempfile::TempDir, Sources) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spate.toml");
        std::fs::write(&path, contents).unwrap();
        (dir, Sources { file: Some(path), ..Sources::default() })
    }

    #[test]
    fn known_keys_come_from_the_broker_config() {
        let keys = known_keys();
        assert!(keys.contains(&"listen"));
        assert!(keys.contains(&"log_retention_ms"));
    }

    #[test]
    fn file_section_overrides_defaults_and_other_sections_are_ignored() {
        let (_dir, sources) = sources_with_file("[broker]\nlog_retention_ms = 1234\n[app]\nanything = 1\n");
        let config = load(&sources).unwrap();
        assert_eq!(config.log_retention_ms, 1234);
        assert_eq!(config.node_id, BrokerConfig::default().node_id);
    }

    #[test]
    fn flags_override_the_file() {
        let (_dir, mut sources) = sources_with_file("[broker]\nlisten = \"127.0.0.1:1111\"\nnode_id = 3\n");
        sources.flags.listen = Some("127.0.0.1:2222".parse().unwrap());
        sources.set = vec![("log.retention.ms".into(), "99".into())];
        let config = load(&sources).unwrap();
        assert_eq!(config.listen.port(), 2222);
        assert_eq!(config.node_id, 3);
        assert_eq!(config.log_retention_ms, 99);
    }

    #[test]
    fn unknown_key_in_file_names_key_file_and_suggestion() {
        let (_dir, sources) = sources_with_file("[broker]\nlog_retension_ms = 5\n");
        let message = load(&sources).unwrap_err().to_string();
        assert!(message.contains("`log_retension_ms`"), "{message}");
        assert!(message.contains("spate.toml"), "{message}");
        assert!(message.contains("did you mean `log_retention_ms`"), "{message}");
    }

    #[test]
    fn bad_value_in_file_names_key_and_file() {
        let (_dir, sources) = sources_with_file("[broker]\nnode_id = \"one\"\n");
        let message = load(&sources).unwrap_err().to_string();
        assert!(message.contains("node_id"), "{message}");
        assert!(message.contains("spate.toml"), "{message}");
    }

    #[test]
    fn unknown_set_key_is_refused() {
        let sources = Sources { set: vec![("no.such.thing".into(), "1".into())], ..Sources::default() };
        let message = load(&sources).unwrap_err().to_string();
        assert!(message.contains("no_such_thing") && message.contains("--set"), "{message}");
    }

    #[test]
    fn missing_explicit_file_is_an_error() {
        let sources = Sources { file: Some("/nonexistent/spate.toml".into()), ..Sources::default() };
        assert!(matches!(load(&sources), Err(ConfigError::MissingFile(_))));
    }
}
