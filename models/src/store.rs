//! Models are stored in the lake, versioned: `<lake>/_models/<name>/v000001.json`,
//! `v000002.json`, ... A new training run adds a version; detection uses the
//! latest unless told otherwise. The lake's object store holds them, so a
//! local folder and an `s3://` lake work alike; a version is written with a
//! create-if-absent put, so two training runs never overwrite each other.

use fnwatch_ingest::lake::Lake;

use crate::error::{ModelError, Result};
use crate::model::{MODEL_FORMAT, Model};

/// The key (inside the lake) of the folder holding a model's versions.
pub fn model_dir(name: &str) -> Result<String> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(ModelError::BadName(name.to_string()));
    }
    Ok(format!("_models/{name}"))
}

fn version_key(dir: &str, version: u32) -> String {
    format!("{dir}/v{version:06}.json")
}

async fn versions(lake: &Lake, dir: &str) -> Result<Vec<u32>> {
    let names = lake
        .list_objects(dir)
        .await
        .map_err(|e| ModelError::Store {
            action: "listing",
            path: lake.object_display(dir),
            source: Box::new(e),
        })?;
    let mut out: Vec<u32> = names
        .iter()
        .filter_map(|n| n.strip_prefix('v').and_then(|r| r.strip_suffix(".json")))
        .filter_map(|n| n.parse::<u32>().ok())
        .collect();
    out.sort_unstable();
    Ok(out)
}

/// The version number the next saved model of `name` gets.
pub async fn next_version(lake: &Lake, name: &str) -> Result<u32> {
    let dir = model_dir(name)?;
    Ok(versions(lake, &dir).await?.last().map_or(1, |v| v + 1))
}

/// Writes a model under its version, or the next free one when another
/// training run took that version meanwhile. Returns where it went.
pub async fn save(lake: &Lake, model: &mut Model) -> Result<String> {
    let dir = model_dir(&model.name)?;
    loop {
        let key = version_key(&dir, model.version);
        let bytes = serde_json::to_vec(model).map_err(|e| ModelError::Format {
            path: lake.object_display(&key),
            why: e.to_string(),
        })?;
        let created = lake
            .create_object(&key, bytes)
            .await
            .map_err(|e| ModelError::Store {
                action: "writing",
                path: lake.object_display(&key),
                source: Box::new(e),
            })?;
        if created {
            return Ok(lake.object_display(&key));
        }
        model.version = next_version(lake, &model.name).await?;
    }
}

/// Loads the latest version of a model, or a given version.
pub async fn load(lake: &Lake, name: &str, version: Option<u32>) -> Result<(Model, String)> {
    let dir = model_dir(name)?;
    let all = versions(lake, &dir).await?;
    let found = match version {
        Some(v) => all.into_iter().find(|n| *n == v),
        None => all.into_iter().next_back(),
    };
    let Some(v) = found else {
        return Err(ModelError::NoModel {
            name: name.to_string(),
            dir: lake.object_display(&dir),
        });
    };
    let key = version_key(&dir, v);
    let path = lake.object_display(&key);
    let bytes = lake
        .get_object(&key)
        .await
        .map_err(|e| ModelError::Store {
            action: "reading",
            path: path.clone(),
            source: Box::new(e),
        })?
        .ok_or_else(|| ModelError::NoModel {
            name: name.to_string(),
            dir: lake.object_display(&dir),
        })?;
    let model = Model::from_json(&bytes).map_err(|why| ModelError::Format {
        path: path.clone(),
        why,
    })?;
    if model.format != MODEL_FORMAT {
        return Err(ModelError::Format {
            path,
            why: format!("format {} (this build reads {MODEL_FORMAT})", model.format),
        });
    }
    Ok((model, path))
}
