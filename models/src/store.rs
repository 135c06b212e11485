//! Models are stored in the lake, versioned: `<lake>/_models/<name>/v000001.json`,
//! `v000002.json`, ... A new training run adds a version; detection uses the
//! latest unless told otherwise.

use std::path::{Path, PathBuf};

use crate::error::{ModelError, Result};
use crate::model::{MODEL_FORMAT, Model};

/// The folder holding a model's versions.
pub fn model_dir(lake_root: &Path, name: &str) -> Result<PathBuf> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(ModelError::BadName(name.to_string()));
    }
    Ok(lake_root.join("_models").join(name))
}

fn versions(dir: &Path) -> Result<Vec<(u32, PathBuf)>> {
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(source) => {
            return Err(ModelError::Io {
                action: "listing",
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    for entry in rd.flatten() {
        let name = entry.file_name();
        let Some(s) = name.to_str() else { continue };
        if let Some(n) = s.strip_prefix('v').and_then(|r| r.strip_suffix(".json"))
            && let Ok(v) = n.parse::<u32>()
        {
            out.push((v, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// The version number the next saved model of `name` gets.
pub fn next_version(lake_root: &Path, name: &str) -> Result<u32> {
    let dir = model_dir(lake_root, name)?;
    Ok(versions(&dir)?.last().map(|(v, _)| v + 1).unwrap_or(1))
}

/// Writes a model (atomically: a temporary file renamed into place).
pub fn save(lake_root: &Path, model: &Model) -> Result<PathBuf> {
    let dir = model_dir(lake_root, &model.name)?;
    std::fs::create_dir_all(&dir).map_err(|source| ModelError::Io {
        action: "creating",
        path: dir.clone(),
        source,
    })?;
    let path = dir.join(format!("v{:06}.json", model.version));
    let tmp = dir.join(format!(".v{:06}.json.tmp", model.version));
    let bytes = serde_json::to_vec(model).map_err(|e| ModelError::Format {
        path: path.clone(),
        why: e.to_string(),
    })?;
    std::fs::write(&tmp, bytes).map_err(|source| ModelError::Io {
        action: "writing",
        path: tmp.clone(),
        source,
    })?;
    std::fs::rename(&tmp, &path).map_err(|source| ModelError::Io {
        action: "renaming",
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

/// Loads the latest version of a model, or a given version.
pub fn load(lake_root: &Path, name: &str, version: Option<u32>) -> Result<(Model, PathBuf)> {
    let dir = model_dir(lake_root, name)?;
    let all = versions(&dir)?;
    let found = match version {
        Some(v) => all.into_iter().find(|(n, _)| *n == v),
        None => all.into_iter().next_back(),
    };
    let Some((_, path)) = found else {
        return Err(ModelError::NoModel {
            name: name.to_string(),
            dir,
        });
    };
    let bytes = std::fs::read(&path).map_err(|source| ModelError::Io {
        action: "reading",
        path: path.clone(),
        source,
    })?;
    let model: Model = serde_json::from_slice(&bytes).map_err(|e| ModelError::Format {
        path: path.clone(),
        why: e.to_string(),
    })?;
    if model.format != MODEL_FORMAT {
        return Err(ModelError::Format {
            path,
            why: format!("format {} (this build reads {MODEL_FORMAT})", model.format),
        });
    }
    Ok((model, path))
}
