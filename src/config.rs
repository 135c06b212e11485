//! `fnwatch.toml`: the configuration file, with `FNWATCH__...` environment
//! overrides.
//!
//! Found by `--config PATH` (default `./fnwatch.toml`). Every key can be
//! overridden from the environment: `FNWATCH__SECTION__KEY=value`, where a
//! table of an array (an `[[outputs]]` entry) is named by its `name` (case
//! does not matter, `-` may be written `_`) or its index:
//! `FNWATCH__OUTPUTS__SIEM__ADDRESS=10.0.0.5:6514`,
//! `FNWATCH__OUTPUTS__0__MIN_SEVERITY=high`. Values are read as TOML when
//! they parse as a TOML value (numbers, booleans, arrays, inline tables) and
//! as plain strings otherwise. Secrets never live here: outputs name the
//! environment variable or file that holds them.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use fnwatch_analytics::sinks::config::{OutputConfig, validate_outputs};
use serde::Deserialize;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where alerts are delivered (`fnwatch alerts send`, `detect --send`).
    #[serde(default)]
    pub outputs: Vec<OutputConfig>,
}

/// The default location.
pub const DEFAULT_PATH: &str = "fnwatch.toml";

/// Loads `path` (or `./fnwatch.toml`), applies the environment's overrides
/// and checks the result.
pub fn load(path: Option<&Path>) -> anyhow::Result<(Config, PathBuf)> {
    let path = path.map_or_else(|| PathBuf::from(DEFAULT_PATH), Path::to_path_buf);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "configuration file {} not found (give --config PATH; a commented example is infra/config/fnwatch.toml)",
            path.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let config = parse(&text, std::env::vars())
        .with_context(|| format!("configuration {}", path.display()))?;
    Ok((config, path))
}

/// Parses a configuration text with overrides from `env`.
pub fn parse(text: &str, env: impl Iterator<Item = (String, String)>) -> anyhow::Result<Config> {
    let mut doc: toml::Table = toml::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut overrides: Vec<(String, String)> =
        env.filter(|(k, _)| k.starts_with("FNWATCH__")).collect();
    overrides.sort();
    for (key, value) in overrides {
        apply_override(&mut doc, &key, &value)
            .with_context(|| format!("environment override {key}"))?;
    }
    let config: Config = toml::Value::Table(doc)
        .try_into()
        .map_err(|e: toml::de::Error| anyhow::anyhow!("{}", e.message()))?;
    validate_outputs(&config.outputs)?;
    Ok(config)
}

fn apply_override(doc: &mut toml::Table, key: &str, value: &str) -> anyhow::Result<()> {
    let parts: Vec<String> = key
        .trim_start_matches("FNWATCH__")
        .split("__")
        .map(str::to_ascii_lowercase)
        .collect();
    if parts.iter().any(String::is_empty) {
        bail!("empty key segment (use FNWATCH__SECTION__KEY)");
    }
    let parsed = parse_value(value);
    let mut table = doc;
    let mut i = 0;
    while i < parts.len() {
        let part = &parts[i];
        let last = i == parts.len() - 1;
        if last {
            table.insert(part.clone(), parsed);
            return Ok(());
        }
        let entry = table
            .entry(part.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        table = match entry {
            toml::Value::Table(t) => t,
            toml::Value::Array(items) => {
                // The next segment names an element: by index or by `name`.
                i += 1;
                let sel = &parts[i];
                let pos = match sel.parse::<usize>() {
                    Ok(n) if n < items.len() => n,
                    Ok(n) => bail!("`{part}` has {} entries, no index {n}", items.len()),
                    Err(_) => items
                        .iter()
                        .position(|t| {
                            t.get("name")
                                .and_then(toml::Value::as_str)
                                .is_some_and(|n| {
                                    n.to_ascii_lowercase().replace('-', "_")
                                        == sel.replace('-', "_")
                                })
                        })
                        .with_context(|| format!("no `{part}` entry is named `{sel}`"))?,
                };
                if i == parts.len() - 1 {
                    bail!(
                        "name a key inside the `{part}` entry (…__{}__KEY)",
                        sel.to_ascii_uppercase()
                    );
                }
                match &mut items[pos] {
                    toml::Value::Table(t) => t,
                    _ => bail!("`{part}` entry {pos} is not a table"),
                }
            }
            _ => bail!("`{part}` is not a table"),
        };
        i += 1;
    }
    Ok(())
}

/// `value` as a TOML value if it reads as one, else as a string.
fn parse_value(value: &str) -> toml::Value {
    let probe = format!("v = {value}");
    match toml::from_str::<toml::Table>(&probe) {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(value.to_string())),
        Err(_) => toml::Value::String(value.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
[[outputs]]
name = "siem"
type = "syslog"
protocol = "tcp"
address = "127.0.0.1:514"

[[outputs]]
name = "chat-ops"
type = "webhook"
url = "https://hooks.example.net/x"
"#;

    fn env(pairs: &[(&str, &str)]) -> impl Iterator<Item = (String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn overrides_by_name_and_index() {
        let c = parse(
            BASE,
            env(&[
                ("FNWATCH__OUTPUTS__SIEM__ADDRESS", "10.0.0.5:6514"),
                ("FNWATCH__OUTPUTS__CHAT_OPS__MIN_SEVERITY", "high"),
                ("FNWATCH__OUTPUTS__0__BATCH_SIZE", "50"),
                ("OTHER", "x"),
            ]),
        )
        .unwrap();
        let siem = &c.outputs[0];
        match &siem.sink {
            fnwatch_analytics::sinks::config::SinkConfig::Syslog(s) => {
                assert_eq!(s.address, "10.0.0.5:6514")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(siem.batch_size, Some(50));
        assert_eq!(c.outputs[1].min_severity.as_str(), "high");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let typo = BASE.replace("protocol = \"tcp\"", "protocl = \"tcp\"");
        let e = format!("{:#}", parse(&typo, env(&[])).unwrap_err());
        assert!(e.contains("protocl"), "{e}");
        let e = format!(
            "{:#}",
            parse(BASE, env(&[("FNWATCH__OUTPUTS__NOPE__ADDRESS", "x")])).unwrap_err()
        );
        assert!(e.contains("no `outputs` entry is named `nope`"), "{e}");
        let bad = BASE.replace("type = \"syslog\"", "type = \"kafka\"");
        let e = format!("{:#}", parse(&bad, env(&[])).unwrap_err());
        assert!(e.contains("kafka"), "{e}");
    }

    #[test]
    fn the_commented_example_parses() {
        let text = include_str!("../infra/config/fnwatch.toml");
        let c = parse(text, env(&[("SPLUNK_HEC_TOKEN_UNUSED", "x")])).unwrap();
        assert!(c.outputs.len() >= 4, "{}", c.outputs.len());
    }
}
