//! The function as a whole: its CloudTrail calls and its configuration.
//!
//! A CloudTrail `api_call` (contract v1.1, section 6) has no request id: it
//! belongs to the function, not to an invocation, so it is judged per
//! function and time window. What is learnt per function ([`TrailProfile`]):
//! the clients that call with its role (user-agent families, and whether
//! the call came from inside Lambda: AWS's SDKs append
//! `exec-env/$AWS_EXECUTION_ENV`, `AWS_Lambda_<runtime>` there, to every
//! user agent), the networks the calls come from, the resources each action
//! touches (ARNs with per-item parts folded), the most denied calls in five
//! minutes, and the latest configuration (from `fnwatch inventory` or a
//! producer). What is raised ([`findings`]):
//! - `credential_exfiltration` (high): a call in the function's role session
//!   from a client the runtime never sends (the AWS CLI, an SDK without
//!   Lambda's execution environment), or from a public network the function
//!   never uses when its calls come from a few fixed networks (a VPC's NAT);
//!   AWS services calling on the function's behalf are not judged. This is
//!   what GuardDuty calls credential exfiltration, per function.
//! - `unusual_api_call`: an action the function never calls (high for
//!   reconnaissance and privilege actions), a resource it never touches with
//!   an action it does call, a burst of denied calls.
//! - `config_drift`: a configuration change that no deploy explains (a new
//!   layer, trigger, environment variable name or granted permission, with
//!   the code unchanged); `low` unless the role gains admin-like rights.
//!
//! And [`over_broad`] judges a role's policy statements against the calls
//! made (action and resource), for `over_permissive`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use fnwatch_ingest::alerts::{Kind, Severity, alert_id};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::alert::{Alert, rfc3339_us};
use crate::model::FunctionProfile;
use crate::names;
use crate::rows::Rows;

/// Width of the windows denied calls are counted in.
const DENIED_WINDOW_US: i64 = 5 * 60 * 1_000_000;

/// What CloudTrail and the configuration say about one function.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrailProfile {
    /// CloudTrail calls seen in training.
    pub calls: u64,
    /// User-agent families (see [`agent_family`]) with counts.
    pub agents: BTreeMap<String, u64>,
    /// Source networks (see [`network_of`]) with counts.
    pub networks: BTreeMap<String, u64>,
    /// `service:action|resource shape` with counts, from either source.
    pub resources: BTreeMap<String, u64>,
    /// Most denied CloudTrail calls in one five-minute window.
    pub denied_max_per_window: u64,
    /// The latest configuration seen.
    pub config: Option<ConfigSnapshot>,
}

impl TrailProfile {
    /// A profile with nothing learned (what an unknown function is judged by).
    pub const EMPTY: TrailProfile = TrailProfile {
        calls: 0,
        agents: BTreeMap::new(),
        networks: BTreeMap::new(),
        resources: BTreeMap::new(),
        denied_max_per_window: 0,
        config: None,
    };
}

/// A function's configuration, as the inventory (or a producer) reports it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConfigSnapshot {
    pub time_us: i64,
    pub version: Option<String>,
    pub code_sha256: Option<String>,
    pub role_arn: Option<String>,
    pub layers: BTreeSet<String>,
    pub triggers: BTreeSet<String>,
    pub env_keys: BTreeSet<String>,
    pub permissions: BTreeSet<String>,
    /// The role's policy statements, JSON text (contract v1.1).
    pub statements: Option<String>,
}

impl ConfigSnapshot {
    /// The configuration in row `i` (a `function_config`).
    pub fn from_row(rows: &Rows<'_>, i: usize, time_us: i64) -> ConfigSnapshot {
        let set = |v: Vec<&str>| v.into_iter().map(str::to_string).collect();
        ConfigSnapshot {
            time_us,
            version: rows.version.get(i).map(str::to_string),
            code_sha256: rows.code_sha256.get(i).map(str::to_string),
            role_arn: rows.role_arn.get(i).map(str::to_string),
            layers: set(rows.layers.get(i)),
            triggers: set(rows.triggers.get(i)),
            env_keys: set(rows.env_keys.get(i)),
            permissions: set(rows.permissions.get(i)),
            statements: rows.statements.get(i).map(str::to_string),
        }
    }
}

/// One CloudTrail call, as the detector keeps it.
#[derive(Debug, Clone)]
pub struct Call {
    pub time_us: i64,
    pub service: String,
    pub action: String,
    pub resource: Option<String>,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    pub denied: bool,
    pub event_id: Option<String>,
}

impl Call {
    /// The CloudTrail call in row `i`, if it is one (an `api_call` without a request id).
    pub fn from_row(rows: &Rows<'_>, i: usize, time_us: i64) -> Option<Call> {
        Some(Call {
            time_us,
            service: rows.service.get(i)?.to_string(),
            action: rows.action.get(i)?.to_string(),
            resource: rows.resource.get(i).map(str::to_string),
            source_ip: rows.source_ip.get(i).map(str::to_string),
            user_agent: rows.user_agent.get(i).map(str::to_string),
            denied: rows.error_code.get(i).is_some_and(crate::train::is_denied),
            event_id: rows.event_id.get(i).map(str::to_string),
        })
    }

    fn key(&self) -> String {
        format!("{}:{}", self.service, self.action)
    }
}

/// The family of a user agent: its first product name, lower case, with
/// `|lambda` when it says it runs in Lambda's execution environment, and
/// `service` for AWS services calling on the function's behalf.
pub fn agent_family(user_agent: &str) -> String {
    let ua = user_agent.trim().trim_start_matches('[');
    if ua.ends_with(".amazonaws.com") || ua == "AWS Internal" || ua.starts_with("awslambda") {
        return "service".to_string();
    }
    let product: String = ua
        .split(['/', ' '])
        .next()
        .unwrap_or("")
        .chars()
        .take(40)
        .collect::<String>()
        .to_ascii_lowercase();
    let product = if product.is_empty() {
        "unknown".to_string()
    } else {
        product
    };
    if in_lambda(ua) {
        format!("{product}|lambda")
    } else {
        product
    }
}

/// Whether a user agent says the call came from Lambda's execution
/// environment: the AWS SDKs append `exec-env/AWS_Lambda_<runtime>`.
pub fn in_lambda(user_agent: &str) -> bool {
    user_agent.contains("exec-env/AWS_Lambda")
}

/// Whether a CloudTrail `sourceIPAddress` is an AWS service calling on the
/// function's behalf (`lambda.amazonaws.com`, `AWS Internal`).
pub fn aws_service_source(source: &str) -> bool {
    source.ends_with(".amazonaws.com") || source == "AWS Internal"
}

/// The network of a source address: IPv4 /16, IPv6 /48, else the text.
pub fn network_of(source: &str) -> String {
    match source.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(v4)) => {
            let o = v4.octets();
            format!("{}.{}.0.0/16", o[0], o[1])
        }
        Ok(std::net::IpAddr::V6(v6)) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
        }
        Err(_) => source.to_string(),
    }
}

/// `service:action|resource shape`.
fn resource_key(key: &str, resource: &str) -> String {
    format!("{key}|{}", resource_pattern(resource))
}

/// An ARN with its per-item parts folded: an S3 object to its bucket and
/// first key segment, random-looking ids to `*`. The bucket, table, queue
/// or secret name stays: it is the identity a function's use is learnt by.
pub fn resource_pattern(arn: &str) -> String {
    if let Some(rest) = arn.strip_prefix("arn:aws:s3:::") {
        return match rest.split_once('/') {
            Some((bucket, key)) => match key.split_once('/') {
                Some((first, _)) => format!("arn:aws:s3:::{bucket}/{first}/*"),
                None => format!("arn:aws:s3:::{bucket}/*"),
            },
            None => arn.to_string(),
        };
    }
    names::resource_shape(arn)
}

/// Learns from training rows: the [`crate::train::Trainer`]'s part for
/// CloudTrail calls and configurations.
#[derive(Debug, Default)]
pub struct Learner {
    /// (function, five-minute window) -> denied CloudTrail calls.
    denied: HashMap<(u32, i64), u64>,
}

impl Learner {
    /// Folds a CloudTrail call of function `f` into its profile.
    pub fn call(&mut self, p: &mut FunctionProfile, f: u32, rows: &Rows<'_>, i: usize, t: i64) {
        let Some(call) = Call::from_row(rows, i, t) else {
            return;
        };
        let tp = &mut p.trail;
        tp.calls += 1;
        if let Some(ua) = &call.user_agent {
            *tp.agents.entry(agent_family(ua)).or_default() += 1;
        }
        if let Some(ip) = &call.source_ip {
            *tp.networks.entry(network_of(ip)).or_default() += 1;
        }
        let key = call.key();
        if call.denied {
            *self
                .denied
                .entry((f, t.div_euclid(DENIED_WINDOW_US)))
                .or_default() += 1;
        } else {
            if let Some(r) = &call.resource {
                *tp.resources.entry(resource_key(&key, r)).or_default() += 1;
            }
            *p.api_actions.entry(key).or_default() += 1;
            if !p.api_services.contains(&call.service) {
                p.api_services.insert(call.service);
            }
        }
    }

    /// Folds the resource of a sensor's API call (one with a request id).
    pub fn sensor_resource(p: &mut FunctionProfile, rows: &Rows<'_>, i: usize) {
        if let (Some(s), Some(a), Some(r)) = (
            rows.service.get(i),
            rows.action.get(i),
            rows.resource.get(i),
        ) && !rows.error_code.get(i).is_some_and(crate::train::is_denied)
        {
            *p.trail
                .resources
                .entry(resource_key(&format!("{s}:{a}"), r))
                .or_default() += 1;
        }
    }

    /// Keeps the latest configuration of function `p`.
    pub fn config(p: &mut FunctionProfile, rows: &Rows<'_>, i: usize, t: i64) {
        if p.trail.config.as_ref().is_none_or(|c| t >= c.time_us) {
            p.trail.config = Some(ConfigSnapshot::from_row(rows, i, t));
        }
    }

    /// Settles what needs the whole training window.
    pub fn finish(self, profiles: &mut [FunctionProfile]) {
        for ((f, _), n) in self.denied {
            if let Some(p) = profiles.get_mut(f as usize) {
                p.trail.denied_max_per_window = p.trail.denied_max_per_window.max(n);
            }
        }
    }
}

/// What the detector collects for one function in the window.
#[derive(Debug, Default)]
pub struct Window {
    pub calls: Vec<Call>,
    pub configs: Vec<ConfigSnapshot>,
    seen: BTreeSet<String>,
}

impl Window {
    /// A CloudTrail call in the window (a redelivered `event_id` counts once).
    pub fn call(&mut self, rows: &Rows<'_>, i: usize, t: i64) {
        let Some(call) = Call::from_row(rows, i, t) else {
            return;
        };
        if let Some(id) = &call.event_id
            && !self.seen.insert(id.clone())
        {
            return;
        }
        self.calls.push(call);
    }

    /// A configuration report in the window.
    pub fn config(&mut self, rows: &Rows<'_>, i: usize, t: i64) {
        self.configs.push(ConfigSnapshot::from_row(rows, i, t));
    }

    /// The latest configuration: the window's, else the baseline's.
    pub fn latest_config<'a>(&'a self, p: &'a FunctionProfile) -> Option<&'a ConfigSnapshot> {
        self.configs
            .iter()
            .max_by_key(|c| c.time_us)
            .or(p.trail.config.as_ref())
    }
}

/// The function-level findings of the window: credential use outside the
/// function, unusual CloudTrail calls, configuration drift.
pub fn findings(
    function: &str,
    p: &FunctionProfile,
    w: &mut Window,
    alerts: &mut Vec<(i64, Alert)>,
) {
    w.calls.sort_by_key(|c| c.time_us);
    w.configs.sort_by_key(|c| c.time_us);
    let outside = exfiltration(function, p, &w.calls, alerts);
    unusual_calls(function, p, &w.calls, &outside, alerts);
    drift(function, p, &w.configs, alerts);
}

/// Whether the function's calls come from a few fixed networks (a VPC's
/// NAT): only then is a new network news. Functions outside a VPC call from
/// whatever address Lambda gives them.
fn fixed_networks(p: &FunctionProfile) -> bool {
    let public: Vec<(&String, &u64)> = p
        .trail
        .networks
        .iter()
        .filter(|(n, _)| !aws_service_source(n))
        .collect();
    let calls: u64 = public.iter().map(|(_, c)| **c).sum();
    calls >= 20 && public.len() <= 3
}

fn public_address(ip: &str) -> bool {
    names::is_ip(ip) && !names::is_private_ip(ip)
}

/// Calls of the function's role session from a client or network the
/// function never uses; returns the indices of the calls they cover.
fn exfiltration(
    function: &str,
    p: &FunctionProfile,
    calls: &[Call],
    alerts: &mut Vec<(i64, Alert)>,
) -> BTreeSet<usize> {
    let fixed = fixed_networks(p);
    // (source address, client family) -> the calls.
    let mut groups: BTreeMap<(String, String), Vec<usize>> = BTreeMap::new();
    for (i, c) in calls.iter().enumerate() {
        let ip = c.source_ip.as_deref().unwrap_or("");
        if aws_service_source(ip) {
            continue;
        }
        let family = c
            .user_agent
            .as_deref()
            .map(agent_family)
            .unwrap_or_default();
        if family == "service" {
            continue;
        }
        let ua_known = p.trail.agents.contains_key(&family);
        let foreign_client = !family.is_empty() && !family.ends_with("|lambda") && !ua_known;
        let foreign_network =
            fixed && public_address(ip) && !p.trail.networks.contains_key(&network_of(ip));
        if foreign_client || foreign_network {
            groups.entry((ip.to_string(), family)).or_default().push(i);
        }
    }
    let mut covered = BTreeSet::new();
    for ((ip, family), idx) in groups {
        let first = &calls[idx[0]];
        let client = first.user_agent.clone().unwrap_or_default();
        let foreign_client = !family.ends_with("|lambda") && !p.trail.agents.contains_key(&family);
        let why = match (foreign_client, ip.is_empty()) {
            (true, false) => format!(
                "from {ip} with a client its runtime never sends ({})",
                names_short(&client)
            ),
            (true, true) => format!(
                "with a client its runtime never sends ({})",
                names_short(&client)
            ),
            (false, _) => format!("from {ip}, a network it never calls from"),
        };
        let mut actions: Vec<String> = idx.iter().map(|&i| calls[i].key()).collect();
        actions.dedup();
        let denied = idx.iter().filter(|&&i| calls[i].denied).count();
        let summary = format!(
            "{function}'s role credentials were used outside the function: {} {why}{}",
            crate::detect::plural(idx.len(), "call", "calls"),
            if denied > 0 {
                format!(", {denied} of them denied")
            } else {
                String::new()
            }
        );
        alerts.push((
            first.time_us,
            Alert {
                id: alert_id(
                    Kind::CredentialExfiltration,
                    function,
                    None,
                    &format!("{ip}|{family}|{}", first.time_us / 3_600_000_000),
                ),
                time: rfc3339_us(first.time_us),
                function: function.to_string(),
                request_id: None,
                kind: Kind::CredentialExfiltration,
                severity: Severity::High,
                score: Severity::High.score(if foreign_client { 0.9 } else { 0.6 }),
                summary,
                evidence: json!({
                    "source_ip": ip,
                    "user_agent": client,
                    "client_family": family,
                    "calls": idx.len(),
                    "denied": denied,
                    "actions": actions.iter().take(20).collect::<Vec<_>>(),
                    "resources": idx.iter().filter_map(|&i| calls[i].resource.as_deref()).take(10).collect::<Vec<_>>(),
                    "event_ids": idx.iter().filter_map(|&i| calls[i].event_id.as_deref()).take(10).collect::<Vec<_>>(),
                    "baseline": {
                        "cloudtrail_calls": p.trail.calls,
                        "clients": p.trail.agents.keys().take(10).collect::<Vec<_>>(),
                        "networks": p.trail.networks.keys().take(10).collect::<Vec<_>>(),
                        "fixed_networks": fixed,
                    }
                }),
            },
        ));
        covered.extend(idx);
    }
    covered
}

fn names_short(ua: &str) -> String {
    ua.chars().take(60).collect()
}

/// New actions, new resources of known actions, denied bursts.
fn unusual_calls(
    function: &str,
    p: &FunctionProfile,
    calls: &[Call],
    covered: &BTreeSet<usize>,
    alerts: &mut Vec<(i64, Alert)>,
) {
    let mut new_actions: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut new_resources: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut denied: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
    for (i, c) in calls.iter().enumerate() {
        if c.denied {
            denied
                .entry(c.time_us.div_euclid(DENIED_WINDOW_US))
                .or_default()
                .push(i);
        }
        if covered.contains(&i) {
            continue;
        }
        let key = c.key();
        if !p.api_actions.contains_key(&key) {
            new_actions.entry(key).or_default().push(i);
        } else if let Some(r) = &c.resource
            && !c.denied
        {
            let known_for_action = p
                .trail
                .resources
                .keys()
                .any(|k| k.starts_with(&format!("{key}|")));
            let rk = resource_key(&key, r);
            if known_for_action && !p.trail.resources.contains_key(&rk) {
                new_resources.entry(rk).or_default().push(i);
            }
        }
    }
    let mut push = |time_us: i64,
                    severity: Severity,
                    within: f64,
                    disc: String,
                    summary: String,
                    evidence: serde_json::Value| {
        alerts.push((
            time_us,
            Alert {
                id: alert_id(Kind::UnusualApiCall, function, None, &disc),
                time: rfc3339_us(time_us),
                function: function.to_string(),
                request_id: None,
                kind: Kind::UnusualApiCall,
                severity,
                score: severity.score(within),
                summary,
                evidence,
            },
        ));
    };
    let baseline = || {
        json!({
            "known_actions": crate::detect::top_keys(&p.api_actions, 8),
            "cloudtrail_calls": p.trail.calls,
        })
    };
    for (key, idx) in new_actions {
        let c = &calls[idx[0]];
        let sensitive = names::sensitive_action(&c.service, &c.action);
        let (severity, why) = if sensitive {
            (
                Severity::High,
                "a reconnaissance or privilege action it never calls".to_string(),
            )
        } else if !p.api_services.contains(&c.service) {
            (Severity::Medium, format!("it never calls {}", c.service))
        } else {
            (
                Severity::Medium,
                format!("it calls {} but never {}", c.service, c.action),
            )
        };
        push(
            c.time_us,
            severity,
            if sensitive { 0.8 } else { 0.5 },
            format!("cloudtrail|{key}|{}", c.time_us / 3_600_000_000),
            format!(
                "{function} called {key} ({} in CloudTrail): {why}",
                crate::detect::plural(idx.len(), "call", "calls")
            ),
            json!({
                "service": c.service, "action": c.action, "resource": c.resource,
                "source": "cloudtrail", "source_ip": c.source_ip, "user_agent": c.user_agent,
                "calls": idx.len(), "event_id": c.event_id, "baseline": baseline(),
            }),
        );
    }
    for (rk, idx) in new_resources {
        let c = &calls[idx[0]];
        let key = c.key();
        let known: Vec<&str> = p
            .trail
            .resources
            .keys()
            .filter_map(|k| k.strip_prefix(&format!("{key}|")))
            .take(8)
            .collect();
        push(
            c.time_us,
            Severity::Medium,
            0.5,
            format!("cloudtrail-resource|{rk}|{}", c.time_us / 3_600_000_000),
            format!(
                "{function} called {key} on {}, a resource it does not normally use",
                c.resource.as_deref().unwrap_or("")
            ),
            json!({
                "service": c.service, "action": c.action, "resource": c.resource,
                "resource_pattern": rk.split_once('|').map(|(_, r)| r),
                "source": "cloudtrail", "source_ip": c.source_ip, "user_agent": c.user_agent,
                "calls": idx.len(), "event_id": c.event_id,
                "baseline": { "resources_for_action": known, "cloudtrail_calls": p.trail.calls },
            }),
        );
    }
    let limit = (p.trail.denied_max_per_window * 2).max(5);
    for (bucket, idx) in denied {
        if (idx.len() as u64) < limit {
            continue;
        }
        let c = &calls[idx[0]];
        let mut actions: Vec<String> = idx.iter().map(|&i| calls[i].key()).collect();
        actions.sort();
        actions.dedup();
        let severity = if idx.len() >= 20 {
            Severity::High
        } else {
            Severity::Medium
        };
        push(
            c.time_us,
            severity,
            (idx.len() as f64 / 40.0).min(1.0),
            format!("cloudtrail-denied|{bucket}"),
            format!(
                "{function} was denied {} in five minutes (its most in training: {})",
                crate::detect::plural(idx.len(), "call", "calls"),
                p.trail.denied_max_per_window
            ),
            json!({
                "denied": idx.len(), "actions": actions, "source": "cloudtrail",
                "source_ips": idx.iter().filter_map(|&i| calls[i].source_ip.as_deref()).collect::<BTreeSet<_>>(),
                "baseline": { "denied_max_per_window": p.trail.denied_max_per_window },
            }),
        );
    }
}

/// Whether a grant is admin-like: every action, or all of IAM.
fn admin_like(grant: &str) -> bool {
    matches!(grant, "*" | "*:*") || grant.eq_ignore_ascii_case("iam:*")
}

/// Configuration changes that no deploy explains.
fn drift(
    function: &str,
    p: &FunctionProfile,
    configs: &[ConfigSnapshot],
    alerts: &mut Vec<(i64, Alert)>,
) {
    let mut prev = p.trail.config.clone();
    for c in configs {
        let Some(before) = prev.replace(c.clone()) else {
            continue;
        };
        let deployed = before.code_sha256 != c.code_sha256 || before.version != c.version;
        if deployed {
            continue;
        }
        let added = |a: &BTreeSet<String>, b: &BTreeSet<String>| -> Vec<String> {
            b.difference(a).cloned().collect()
        };
        let layers = added(&before.layers, &c.layers);
        let triggers = added(&before.triggers, &c.triggers);
        let env_keys = added(&before.env_keys, &c.env_keys);
        let grants = added(&before.permissions, &c.permissions);
        let role_changed = before.role_arn != c.role_arn && before.role_arn.is_some();
        if layers.is_empty()
            && triggers.is_empty()
            && env_keys.is_empty()
            && grants.is_empty()
            && !role_changed
        {
            continue;
        }
        let admin = grants.iter().any(|g| admin_like(g));
        let mut what = Vec::new();
        if !layers.is_empty() {
            what.push(format!("new layer {}", layers.join(", ")));
        }
        if !triggers.is_empty() {
            what.push(format!("new trigger {}", triggers.join(", ")));
        }
        if !env_keys.is_empty() {
            what.push(format!("new environment variable {}", env_keys.join(", ")));
        }
        if !grants.is_empty() {
            what.push(format!("role widened by {}", grants.join(", ")));
        }
        if role_changed {
            what.push(format!(
                "role changed to {}",
                c.role_arn.as_deref().unwrap_or("none")
            ));
        }
        let severity = if admin { Severity::High } else { Severity::Low };
        alerts.push((
            c.time_us,
            Alert {
                id: alert_id(
                    Kind::ConfigDrift,
                    function,
                    None,
                    &format!("{}|{}", c.time_us, what.join(";")),
                ),
                time: rfc3339_us(c.time_us),
                function: function.to_string(),
                request_id: None,
                kind: Kind::ConfigDrift,
                severity,
                score: severity.score(if admin { 0.9 } else { 0.3 }),
                summary: format!(
                    "{function}'s configuration changed without a deploy (same code): {}",
                    what.join("; ")
                ),
                evidence: json!({
                    "added_layers": layers, "added_triggers": triggers,
                    "added_env_keys": env_keys, "added_permissions": grants,
                    "role_arn": c.role_arn, "previous_role_arn": before.role_arn,
                    "admin_like": admin,
                    "code_sha256": c.code_sha256, "version": c.version,
                    "previous_observed_at": rfc3339_us(before.time_us),
                }),
            },
        ));
    }
}

/// One `Allow` statement of a role, as IAM evaluates it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Statement {
    #[serde(default)]
    pub effect: String,
    #[serde(default)]
    pub actions: Vec<String>,
    #[serde(default)]
    pub resources: Vec<String>,
    #[serde(default)]
    pub not_actions: Vec<String>,
    #[serde(default)]
    pub not_resources: Vec<String>,
    #[serde(default)]
    pub condition: Option<serde_json::Value>,
}

/// A used call: `service:action` and the resource it touched, if known.
pub type Used<'a> = (&'a str, Option<&'a str>);

/// What a role's statements grant that its calls do not use.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OverBroad {
    /// Grants no used call matched: `action on resource`.
    pub unused: Vec<String>,
    /// Wildcard grants that matched calls, with what they were used for.
    pub broader_than_use: Vec<serde_json::Value>,
    /// Grants that matched calls as they are.
    pub used: Vec<String>,
    /// Statements that could not be judged (NotAction, NotResource, conditions).
    pub unjudged: Vec<String>,
    pub admin: bool,
}

impl OverBroad {
    pub fn is_over_permissive(&self) -> bool {
        self.admin || !self.unused.is_empty() || !self.broader_than_use.is_empty()
    }
}

/// Judges the statements (JSON text of the contract's `statements`) against
/// the calls made, per action *and* resource: `s3:*` on `*` when only
/// `s3:GetObject` on one bucket is used is broader than the use. `None` when
/// the text is not a list of statements.
pub fn over_broad(statements: &str, used: &[Used<'_>], platform: &[&str]) -> Option<OverBroad> {
    let raw: Vec<serde_json::Value> = serde_json::from_str(statements).ok()?;
    let mut out = OverBroad::default();
    for s in raw {
        let Ok(st) = serde_json::from_value::<Statement>(lower_keys(s)) else {
            continue;
        };
        if !st.effect.eq_ignore_ascii_case("allow") {
            continue;
        }
        if !st.not_actions.is_empty() || !st.not_resources.is_empty() {
            out.admin |= st.not_actions.len() <= 2 && st.resources.iter().any(|r| r == "*");
            out.unjudged.push(format!(
                "NotAction {:?} / NotResource {:?}: grants everything but the listed, judged as broad",
                st.not_actions, st.not_resources
            ));
            continue;
        }
        let any_resource = st.resources.is_empty() || st.resources.iter().any(|r| r == "*");
        for a in &st.actions {
            if admin_like(a) && any_resource {
                out.admin = true;
            }
            let hits: Vec<&Used<'_>> = used
                .iter()
                .filter(|(u, r)| {
                    names::grant_matches(a, u)
                        && (any_resource
                            || r.is_none()
                            || st
                                .resources
                                .iter()
                                .any(|g| names::grant_matches(g, r.unwrap_or(""))))
                })
                .collect();
            let platform_hit = platform.iter().any(|u| names::grant_matches(a, u));
            let on = if any_resource {
                "*".to_string()
            } else {
                st.resources.join(", ")
            };
            if hits.is_empty() {
                if !platform_hit {
                    out.unused.push(format!("{a} on {on}"));
                }
                continue;
            }
            let mut actions: Vec<&str> = hits.iter().map(|(u, _)| *u).collect();
            actions.sort_unstable();
            actions.dedup();
            let mut resources: Vec<&str> = hits.iter().filter_map(|(_, r)| *r).collect();
            resources.sort_unstable();
            resources.dedup();
            let wild_action = a.contains('*');
            let wild_resource = any_resource && !resources.is_empty();
            if wild_action || wild_resource {
                out.broader_than_use.push(json!({
                    "grant": a,
                    "on": on,
                    "used_actions": actions,
                    "used_resources": resources.iter().take(10).collect::<Vec<_>>(),
                }));
            } else {
                out.used.push(format!("{a} on {on}"));
            }
        }
        if st.condition.is_some() {
            out.unjudged.push(format!(
                "{:?}: has a condition, judged without it",
                st.actions
            ));
        }
    }
    Some(out)
}

/// The statement's keys in the contract's spelling whatever the case IAM
/// documents used (`Effect`, `Action`, `Resource`, `NotAction`, ...).
fn lower_keys(v: serde_json::Value) -> serde_json::Value {
    let serde_json::Value::Object(m) = v else {
        return v;
    };
    let mut out = serde_json::Map::new();
    for (k, v) in m {
        let key = match k.to_ascii_lowercase().as_str() {
            "effect" => "effect",
            "action" | "actions" => "actions",
            "resource" | "resources" => "resources",
            "notaction" | "not_action" | "not_actions" | "notactions" => "not_actions",
            "notresource" | "not_resource" | "not_resources" | "notresources" => "not_resources",
            "condition" => "condition",
            _ => continue,
        };
        // IAM allows a single string where a list is meant.
        let v = match (key, v) {
            ("effect" | "condition", v) => v,
            (_, serde_json::Value::String(s)) => {
                serde_json::Value::Array(vec![serde_json::Value::String(s)])
            }
            (_, v) => v,
        };
        out.insert(key.to_string(), v);
    }
    serde_json::Value::Object(out)
}

#[cfg(test)]
mod tests;
