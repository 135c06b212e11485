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

impl Model {
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
