//! `fnwatch sensor package`: builds the Lambda layer of the in-function
//! sensor: the `fnwatch-sensor` extension, the exec wrapper and the runtime
//! hooks (which are built into this binary, so the layer matches it).
//!
//! Layout of the zip (a layer is unpacked under `/opt`):
//!
//! ```text
//! extensions/fnwatch-sensor          the extension (0755): Lambda starts it
//! fnwatch/fnwatch-wrapper            AWS_LAMBDA_EXEC_WRAPPER=/opt/fnwatch/fnwatch-wrapper
//! fnwatch/python/sitecustomize.py    loads the Python hook at interpreter start
//! fnwatch/python/fnwatch_hook.py     the Python hook (PEP 578 audit hooks)
//! fnwatch/node/fnwatch_hook.cjs      the Node.js hook (a `--require` preload)
//! ```
//!
//! The zip is written with the `zip` crate (deflate through flate2, already
//! in the tree), with fixed timestamps so that the same inputs give the same
//! bytes, and the same layer hash in Lambda.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

const WRAPPER: &str = include_str!("../../sensor/hooks/fnwatch-wrapper");
const PY_SITE: &str = include_str!("../../sensor/hooks/python/sitecustomize.py");
const PY_HOOK: &str = include_str!("../../sensor/hooks/python/fnwatch_hook.py");
const NODE_HOOK: &str = include_str!("../../sensor/hooks/node/fnwatch_hook.cjs");

/// The name of the layer zip written into `--out`.
pub const LAYER_ZIP: &str = "fnwatch-sensor-layer.zip";

#[derive(Debug, Args)]
pub struct SensorArgs {
    #[command(subcommand)]
    pub command: SensorCommand,
}

#[derive(Debug, Subcommand)]
pub enum SensorCommand {
    /// Build the Lambda layer zip: the extension, the exec wrapper, the runtime hooks.
    Package(PackageArgs),
}

#[derive(Debug, Args)]
pub struct PackageArgs {
    /// Folder to write `fnwatch-sensor-layer.zip` into (created when missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// The extension binary, built for the functions' architecture
    /// (`cargo build --release -p fnwatch-sensor --target ...`). Default:
    /// `fnwatch-sensor` beside this `fnwatch`.
    #[arg(long, value_name = "PATH")]
    pub extension: Option<PathBuf>,
}

pub async fn run(a: SensorArgs) -> anyhow::Result<()> {
    match a.command {
        SensorCommand::Package(p) => package(p),
    }
}

/// The architecture of an ELF executable, as Lambda names it.
fn elf_arch(bytes: &[u8]) -> Option<&'static str> {
    if bytes.len() < 20 || &bytes[..4] != b"\x7fELF" {
        return None;
    }
    // e_machine at offset 18, in the file's byte order (EI_DATA at 5).
    let m = if bytes[5] == 2 {
        u16::from_be_bytes([bytes[18], bytes[19]])
    } else {
        u16::from_le_bytes([bytes[18], bytes[19]])
    };
    Some(match m {
        62 => "x86_64",
        183 => "arm64",
        _ => "an architecture Lambda does not run",
    })
}

fn default_extension() -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe().context("finding this fnwatch binary")?;
    Ok(me.with_file_name("fnwatch-sensor"))
}

fn package(a: PackageArgs) -> anyhow::Result<()> {
    let ext_path = match a.extension {
        Some(p) => p,
        None => default_extension()?,
    };
    let ext = std::fs::read(&ext_path).with_context(|| {
        format!(
            "reading the extension {} (build it with `cargo build --release -p fnwatch-sensor`, or pass --extension PATH)",
            ext_path.display()
        )
    })?;
    let Some(arch) = elf_arch(&ext) else {
        bail!(
            "the extension {} is not a Linux executable (no ELF header); pass the fnwatch-sensor binary built for the functions' architecture",
            ext_path.display()
        );
    };
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("creating the output folder {}", a.out.display()))?;
    let out = a.out.join(LAYER_ZIP);
    let tmp = a.out.join(format!(".{LAYER_ZIP}.tmp"));
    let entries: [(&str, &[u8], u32); 5] = [
        ("extensions/fnwatch-sensor", &ext, 0o755),
        ("fnwatch/fnwatch-wrapper", WRAPPER.as_bytes(), 0o755),
        ("fnwatch/python/sitecustomize.py", PY_SITE.as_bytes(), 0o644),
        ("fnwatch/python/fnwatch_hook.py", PY_HOOK.as_bytes(), 0o644),
        ("fnwatch/node/fnwatch_hook.cjs", NODE_HOOK.as_bytes(), 0o644),
    ];
    write_zip(&tmp, &entries).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &out)
        .with_context(|| format!("moving {} to {}", tmp.display(), out.display()))?;
    let size = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    println!("wrote {} ({})", out.display(), super::human_bytes(size));
    for (name, data, mode) in &entries {
        println!(
            "  {mode:o}  {:>10}  {name}",
            super::human_bytes(data.len() as u64)
        );
    }
    println!("extension built for {arch} (the layer's compatible architecture)");
    println!(
        "use it: add the layer to a function and set AWS_LAMBDA_EXEC_WRAPPER=/opt/fnwatch/fnwatch-wrapper \
         (FNWATCH_SENSOR_STREAM=<stream> to ship to Kinesis instead of the function's log)"
    );
    Ok(())
}

fn write_zip(path: &Path, entries: &[(&str, &[u8], u32)]) -> anyhow::Result<()> {
    use zip::write::SimpleFileOptions;
    let file = std::fs::File::create(path)?;
    let mut z = zip::ZipWriter::new(std::io::BufWriter::new(file));
    for (name, data, mode) in entries {
        let opts = SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .last_modified_time(zip::DateTime::default())
            .unix_permissions(*mode);
        z.start_file(*name, opts)?;
        z.write_all(data)?;
    }
    let mut w = z.finish()?;
    w.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knows_lambdas_architectures() {
        let mut h = vec![0u8; 20];
        h[..4].copy_from_slice(b"\x7fELF");
        h[5] = 1;
        h[18] = 62;
        assert_eq!(elf_arch(&h), Some("x86_64"));
        h[18] = 183;
        assert_eq!(elf_arch(&h), Some("arm64"));
        assert_eq!(elf_arch(b"#!/bin/sh\necho hi\n"), None);
    }
}
