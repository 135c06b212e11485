//! Settings of a file output.

use std::path::PathBuf;

use serde::Deserialize;

use crate::sinks::config::check_format;
use crate::sinks::render::Format;

/// `type = "file"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// The file (relative paths from the working directory).
    pub path: PathBuf,
    /// `json` (the alert contract, default), `ocsf-json` or `cef`.
    #[serde(default = "default_format")]
    pub format: Format,
    /// Rotate when the file would grow past this many bytes (default 100 MB).
    #[serde(default = "default_max")]
    pub max_bytes: u64,
    /// Rotated files kept (default 5).
    #[serde(default = "default_keep")]
    pub keep: u32,
}

fn default_format() -> Format {
    Format::Json
}
fn default_max() -> u64 {
    100_000_000
}
fn default_keep() -> u32 {
    5
}

impl FileConfig {
    pub fn validate(&self) -> Result<(), String> {
        check_format(
            self.format,
            &[Format::Json, Format::OcsfJson, Format::Cef],
            "a file output",
        )?;
        if self.path.as_os_str().is_empty() {
            return Err("`path` is empty".into());
        }
        if self.max_bytes < 4096 {
            return Err("`max_bytes` must be at least 4096".into());
        }
        Ok(())
    }
}
