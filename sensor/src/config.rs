//! The extension's settings, read once from the function's environment.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::{Error, Result};

/// The default path of the hooks' socket (the hooks read `FNWATCH_SENSOR_SOCKET` too).
pub const DEFAULT_SOCKET: &str = "/tmp/fnwatch-sensor.sock";

/// Everything the extension is told by its environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// `AWS_LAMBDA_RUNTIME_API`: host:port of the Lambda APIs.
    pub runtime_api: String,
    /// The name the extension registers under (its file name in
    /// `/opt/extensions`, which Lambda requires).
    pub extension_name: String,
    /// `AWS_LAMBDA_FUNCTION_NAME`.
    pub function: String,
    /// `AWS_LAMBDA_FUNCTION_VERSION`.
    pub version: Option<String>,
    /// `AWS_REGION`.
    pub region: Option<String>,
    /// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`.
    pub memory_mb: Option<i64>,
    /// `FNWATCH_SENSOR_SOCKET`: the unix datagram socket the hooks write to.
    pub socket: PathBuf,
    /// `FNWATCH_SENSOR_STREAM`: ship to this Kinesis stream instead of stdout.
    pub stream: Option<String>,
    /// `FNWATCH_SENSOR_TELEMETRY_PORT`: the Telemetry API listener's port
    /// (0, the default: any free port).
    pub telemetry_port: u16,
    /// `FNWATCH_SENSOR_MAX_MESSAGE`: largest hook datagram accepted, bytes.
    pub max_message: usize,
    /// `FNWATCH_SENSOR_BUFFER_EVENTS`: most events held before shipping.
    pub buffer_events: usize,
    /// `FNWATCH_SENSOR_SAMPLE_BYTES`: most bytes of the triggering event kept.
    pub sample_bytes: usize,
    /// `FNWATCH_SENSOR_FLUSH_TIMEOUT_MS`: longest wait for shipping after a
    /// response before the extension lets the sandbox go on.
    pub flush_timeout: Duration,
    /// `FNWATCH_SENSOR_STATS_INTERVAL_S`: how often the stats line is logged
    /// (0: only at shutdown).
    pub stats_interval: Duration,
}

impl Config {
    /// Reads the settings from `env` (the process environment in `main`).
    pub fn from_env(env: &HashMap<String, String>) -> Result<Config> {
        let get = |k: &str| env.get(k).filter(|v| !v.is_empty()).cloned();
        let num = |name: &'static str, default: u64| -> Result<u64> {
            match get(name) {
                None => Ok(default),
                Some(v) => v.trim().parse().map_err(|_| Error::Config {
                    name,
                    why: format!("`{v}` is not a whole number"),
                }),
            }
        };
        let runtime_api = get("AWS_LAMBDA_RUNTIME_API").ok_or(Error::Config {
            name: "AWS_LAMBDA_RUNTIME_API",
            why: "not set: fnwatch-sensor runs as a Lambda extension (from /opt/extensions)".into(),
        })?;
        let function = get("AWS_LAMBDA_FUNCTION_NAME").ok_or(Error::Config {
            name: "AWS_LAMBDA_FUNCTION_NAME",
            why: "not set".into(),
        })?;
        let port = num("FNWATCH_SENSOR_TELEMETRY_PORT", 0)?;
        let telemetry_port = u16::try_from(port).map_err(|_| Error::Config {
            name: "FNWATCH_SENSOR_TELEMETRY_PORT",
            why: format!("{port} is not a port (0 to 65535)"),
        })?;
        let max_message = num("FNWATCH_SENSOR_MAX_MESSAGE", 65_536)?.clamp(256, 1 << 20) as usize;
        Ok(Config {
            runtime_api,
            extension_name: get("FNWATCH_SENSOR_NAME").unwrap_or_else(|| "fnwatch-sensor".into()),
            function,
            version: get("AWS_LAMBDA_FUNCTION_VERSION"),
            region: get("AWS_REGION").or_else(|| get("AWS_DEFAULT_REGION")),
            memory_mb: get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE").and_then(|v| v.parse().ok()),
            socket: PathBuf::from(
                get("FNWATCH_SENSOR_SOCKET").unwrap_or_else(|| DEFAULT_SOCKET.into()),
            ),
            stream: get("FNWATCH_SENSOR_STREAM"),
            telemetry_port,
            max_message,
            buffer_events: num("FNWATCH_SENSOR_BUFFER_EVENTS", 10_000)?.clamp(16, 1_000_000)
                as usize,
            sample_bytes: num("FNWATCH_SENSOR_SAMPLE_BYTES", 4_096)?.min(256 * 1024) as usize,
            flush_timeout: Duration::from_millis(num("FNWATCH_SENSOR_FLUSH_TIMEOUT_MS", 1_000)?),
            stats_interval: Duration::from_secs(num("FNWATCH_SENSOR_STATS_INTERVAL_S", 60)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn needs_the_runtime_api_and_names_it() {
        let e = Config::from_env(&env(&[("AWS_LAMBDA_FUNCTION_NAME", "f")])).unwrap_err();
        assert!(e.to_string().contains("AWS_LAMBDA_RUNTIME_API"), "{e}");
    }

    #[test]
    fn reads_settings_and_rejects_bad_numbers() {
        let base = [
            ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001"),
            ("AWS_LAMBDA_FUNCTION_NAME", "orders"),
            ("AWS_REGION", "eu-west-1"),
            ("FNWATCH_SENSOR_STREAM", "telemetry"),
        ];
        let c = Config::from_env(&env(&base)).unwrap();
        assert_eq!(c.function, "orders");
        assert_eq!(c.stream.as_deref(), Some("telemetry"));
        assert_eq!(c.region.as_deref(), Some("eu-west-1"));
        assert_eq!(c.socket, PathBuf::from(DEFAULT_SOCKET));
        let mut bad = base.to_vec();
        bad.push(("FNWATCH_SENSOR_TELEMETRY_PORT", "70000"));
        let e = Config::from_env(&env(&bad)).unwrap_err().to_string();
        assert!(
            e.contains("FNWATCH_SENSOR_TELEMETRY_PORT") && e.contains("70000"),
            "{e}"
        );
    }
}
