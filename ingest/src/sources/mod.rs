//! Sources of telemetry records. Each component is a folder named after what
//! it talks to; the closed list is [`SourceConfig`].

pub mod file;
pub mod inventory;
pub mod kinesis;

use serde::Deserialize;

/// Every source fnwatch can read from, tagged by `type`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum SourceConfig {
    /// JSON Lines files (optionally gzip-compressed), folders of them, or stdin.
    File(file::FileSourceConfig),
}
