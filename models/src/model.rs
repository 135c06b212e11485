//! The stored model: per function, what it normally does; for the fleet,
//! which sites any function resolves. Maps are ordered so a model file is
//! the same bytes for the same training data.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::numeric::NumericModel;
use crate::shell::ShellProfile;

/// Version of the model file layout.
pub const MODEL_FORMAT: u32 = 1;

/// A trained model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Model {
    pub format: u32,
    /// The model's name (`--model`), `default` unless told otherwise.
    pub name: String,
    /// Version number within the name, 1 for the first.
    pub version: u32,
    /// When it was trained (RFC 3339).
    pub trained_at: String,
    /// The training window (RFC 3339, `to` exclusive).
    pub from: String,
    pub to: String,
    /// Events read while training.
    pub events: u64,
    pub functions: BTreeMap<String, FunctionProfile>,
    /// Site (registrable domain, or `*.provider`) -> functions that resolve it.
    pub fleet_sites: BTreeMap<String, u32>,
}

/// A model file as read: each function's profile still JSON, parsed on
/// every core by [`Model::from_json`].
#[derive(Deserialize)]
struct RawModel<'a> {
    format: u32,
    name: String,
    version: u32,
    trained_at: String,
    from: String,
    to: String,
    events: u64,
    #[serde(borrow)]
    functions: BTreeMap<String, &'a serde_json::value::RawValue>,
    fleet_sites: BTreeMap<String, u32>,
}

impl Model {
    /// Reads a model file. A fleet's model holds thousands of profiles,
    /// and they are parsed in parallel (what `detect` waits for before it
    /// scores its first event).
    pub fn from_json(bytes: &[u8]) -> Result<Model, String> {
        use rayon::prelude::*;
        let raw: RawModel<'_> = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        let functions = raw
            .functions
            .into_par_iter()
            .map(|(name, profile)| {
                serde_json::from_str::<FunctionProfile>(profile.get())
                    .map(|p| (name.clone(), p))
                    .map_err(|e| format!("function `{name}`: {e}"))
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Model {
            format: raw.format,
            name: raw.name,
            version: raw.version,
            trained_at: raw.trained_at,
            from: raw.from,
            to: raw.to,
            events: raw.events,
            functions: functions.into_iter().collect(),
            fleet_sites: raw.fleet_sites,
        })
    }

    /// The functions that resolve a site in training.
    pub fn fleet_users(&self, site: &str) -> u32 {
        self.fleet_sites.get(site).copied().unwrap_or(0)
    }
}

/// What one function normally does.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FunctionProfile {
    pub invocations: u64,
    pub timeouts: u64,
    /// Timeouts that looked idle (little CPU, no I/O in their second half).
    pub idle_timeouts: u64,
    pub errors: u64,
    pub cold_starts: u64,
    /// Versions and code hashes seen: a new one is a deploy.
    pub versions: BTreeSet<String>,
    pub code_sha256: BTreeSet<String>,
    /// Latest permissions granted by the role (`function_config`).
    pub permissions: Vec<String>,
    pub role_arn: Option<String>,

    /// DNS name shapes and sites, with lookup counts.
    pub dns_names: BTreeMap<String, u64>,
    pub dns_sites: BTreeMap<String, u64>,
    /// Most lookups in one invocation, and most under one site.
    pub dns_max_per_invocation: u64,
    pub txt_max_per_invocation: u64,
    /// Lookups whose names looked like tunnelling (long random labels).
    pub dns_tunnel_like: u64,
    /// /24 networks of the addresses its lookups returned.
    pub resolved_prefixes: BTreeSet<String>,

    /// Executable shapes and `exe args-shape` with counts.
    pub exes: BTreeMap<String, u64>,
    pub arg_shapes: BTreeMap<String, u64>,

    /// Peers: `host-shape|port` and `site|port`, raw-IP /24 networks, ports.
    pub peers: BTreeMap<String, u64>,
    pub peer_sites: BTreeMap<String, u64>,
    pub raw_prefixes: BTreeSet<String>,
    pub ports: BTreeMap<i32, u64>,
    pub max_bytes_out: u64,

    /// File directories (`dir|read` or `dir|write`) and sensitive paths touched.
    pub file_dirs: BTreeMap<String, u64>,
    pub sensitive_paths: BTreeSet<String>,

    /// API `service:action` with counts; services; denied calls.
    pub api_actions: BTreeMap<String, u64>,
    pub api_services: BTreeSet<String>,
    pub denied_max_per_invocation: u64,

    /// Injection-detector findings in training events, `class|path` -> count,
    /// and how many event samples were seen.
    pub injection_paths: BTreeMap<String, u64>,
    pub event_samples: u64,

    /// The numeric model (absent with too few invocations).
    pub numeric: Option<NumericModel>,

    /// CloudTrail calls and the configuration (models made before them
    /// read as empty).
    #[serde(default)]
    pub trail: crate::trail::TrailProfile,
    /// What its shell command lines (`sh -c STRING`) run; `None` in models
    /// trained before command lines were parsed, which are then judged by
    /// executable and argument shape only.
    #[serde(default)]
    pub shell: Option<ShellProfile>,
}

impl FunctionProfile {
    pub fn spawns(&self) -> bool {
        !self.exes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> Model {
        let mut a = FunctionProfile {
            invocations: 120,
            timeouts: 2,
            ..FunctionProfile::default()
        };
        a.dns_sites.insert("example.com".into(), 7);
        a.exes.insert("/bin/sh".into(), 1);
        let b = FunctionProfile {
            max_bytes_out: 1 << 40,
            ..FunctionProfile::default()
        };
        Model {
            format: MODEL_FORMAT,
            name: "default".into(),
            version: 3,
            trained_at: "2026-11-05T00:00:00Z".into(),
            from: "2026-11-01T00:00:00Z".into(),
            to: "2026-11-05T00:00:00Z".into(),
            events: 9,
            functions: [("orders-api".to_string(), a), ("thumbs".to_string(), b)].into(),
            fleet_sites: [("example.com".to_string(), 1)].into(),
        }
    }

    #[test]
    fn parallel_parse_reads_what_serde_reads() {
        let bytes = serde_json::to_vec(&model()).expect("serialise");
        let parsed = Model::from_json(&bytes).expect("parse");
        let plain: Model = serde_json::from_slice(&bytes).expect("serde parse");
        assert_eq!(
            serde_json::to_vec(&parsed).expect("serialise"),
            serde_json::to_vec(&plain).expect("serialise")
        );
        assert_eq!(parsed.functions.len(), 2);
        assert_eq!(parsed.functions["orders-api"].dns_sites["example.com"], 7);
    }

    #[test]
    fn a_broken_profile_is_named() {
        let mut v = serde_json::to_value(model()).expect("value");
        v["functions"]["thumbs"]["invocations"] = serde_json::json!("many");
        let bytes = serde_json::to_vec(&v).expect("serialise");
        let err = Model::from_json(&bytes).expect_err("a string for a count");
        assert!(err.starts_with("function `thumbs`: invalid type"), "{err}");
        assert!(Model::from_json(b"{\"format\": 1").is_err());
    }
}
