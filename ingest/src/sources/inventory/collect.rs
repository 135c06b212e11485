//! The collector: every function of the account's regions, its triggers,
//! and its role's policies, as one `function_config` event each.
//!
//! Calls per run: per region, `ListFunctions` and `ListEventSourceMappings`
//! (all mappings of the region, paged, rather than one call per function)
//! and one `GetPolicy` per function; per distinct role,
//! `ListAttachedRolePolicies`, `ListRolePolicies` and one `GetRolePolicy`
//! per inline policy; per distinct managed policy (shared by any number of
//! roles), one `GetPolicy` and one `GetPolicyVersion`. `ListFunctions`
//! already carries each function's configuration, so no `GetFunction` is
//! needed. A call that fails is reported (which call, for which role or
//! function, why) and the run goes on; the events it would have filled say
//! what is missing in `inventory_errors`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use chrono::{DateTime, SecondsFormat, Utc};
use futures::StreamExt;
use serde_json::{Map, Value, json};
use tracing::{debug, warn};

use super::api::{AttachedPolicy, CallError, FunctionInfo, IamApi, LambdaApi, MappingInfo, Page};
use super::policy::{Expanded, PolicyRef, expand, resource_policy_triggers};

/// Counts of API calls by name (`lambda:ListFunctions`, ...).
#[derive(Debug, Default)]
pub struct CallCounts(Mutex<BTreeMap<&'static str, u64>>);

impl CallCounts {
    fn count(&self, call: &'static str) {
        if let Ok(mut m) = self.0.lock() {
            *m.entry(call).or_default() += 1;
        }
    }

    /// The counts so far.
    pub fn snapshot(&self) -> BTreeMap<&'static str, u64> {
        self.0.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

/// What a run found.
#[derive(Debug, Default)]
pub struct Inventory {
    /// One native `function_config` event (JSON text) per function.
    pub events: Vec<FunctionEvent>,
    /// API calls made, by name.
    pub calls: BTreeMap<&'static str, u64>,
    /// Every call that failed or answer that could not be read, one line each.
    pub problems: Vec<String>,
    /// Regions whose functions could not be listed at all: (region, why).
    pub failed_regions: Vec<(String, String)>,
    /// Distinct roles and managed policies read.
    pub roles: usize,
    pub managed_policies: usize,
}

/// One function's event.
#[derive(Debug, Clone)]
pub struct FunctionEvent {
    pub region: String,
    pub function: String,
    pub json: String,
}

/// The Lambda client of one region.
pub struct Region<L> {
    pub name: String,
    pub lambda: L,
}

/// How a run is made.
#[derive(Debug, Clone)]
pub struct CollectOptions {
    /// Account of the credentials, for functions whose ARN names none.
    pub account: String,
    /// The run's time: the `time` of every event it writes.
    pub run_time: DateTime<Utc>,
    /// Calls in flight at once.
    pub concurrency: usize,
}

/// The name of a role from its ARN (`arn:aws:iam::1:role/path/name` -> `name`).
pub fn role_name(arn: &str) -> Option<&str> {
    let (_, rest) = arn.split_once(":role/")?;
    rest.rsplit('/').next().filter(|n| !n.is_empty())
}

/// The account of an ARN (`arn:aws:lambda:r:ACCOUNT:...`).
fn arn_account(arn: &str) -> Option<&str> {
    arn.split(':').nth(4).filter(|a| !a.is_empty())
}

/// A function ARN without its version or alias qualifier.
fn unqualified(arn: &str) -> &str {
    // arn:aws:lambda:region:account:function:name[:qualifier]
    match arn.match_indices(':').nth(6) {
        Some((i, _)) => &arn[..i],
        None => arn,
    }
}

/// Every page of a listing; the call is counted once per page.
async fn all_pages<T, F, Fut>(
    calls: &CallCounts,
    name: &'static str,
    mut call: F,
) -> Result<Vec<T>, CallError>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: std::future::Future<Output = Result<Page<T>, CallError>>,
{
    let mut out = Vec::new();
    let mut marker = None;
    // A service that hands back the same marker forever must not keep the run going.
    let mut seen = BTreeSet::new();
    loop {
        calls.count(name);
        let page = call(marker.take()).await?;
        out.extend(page.items);
        match page.next {
            Some(m) if !m.is_empty() => {
                if !seen.insert(m.clone()) {
                    return Err(CallError::Other(format!(
                        "the service returned the page marker `{m}` twice"
                    )));
                }
                marker = Some(m);
            }
            _ => return Ok(out),
        }
    }
}

/// What was read of one role's policies.
#[derive(Debug, Default, Clone)]
struct RolePolicies {
    /// Policy names in the order read (managed by ARN, then inline).
    policies: Vec<String>,
    statements: Vec<Value>,
    permissions: BTreeSet<String>,
    unjudged: Vec<String>,
    errors: Vec<String>,
}

impl RolePolicies {
    fn add(&mut self, label: String, e: &Expanded) {
        for s in &e.statements {
            let mut s = s.clone();
            if let Value::Object(m) = &mut s {
                m.insert("policy".into(), json!(label));
            }
            self.statements.push(s);
        }
        self.permissions.extend(e.permissions.iter().cloned());
        self.unjudged.extend(e.unjudged.iter().cloned());
        self.errors.extend(e.errors.iter().cloned());
        self.policies.push(label);
    }
}

/// Runs the inventory of `regions` (IAM is read once for all of them).
pub async fn collect<L: LambdaApi, I: IamApi>(
    regions: &[Region<L>],
    iam: &I,
    opts: &CollectOptions,
) -> Inventory {
    let calls = CallCounts::default();
    let conc = opts.concurrency.max(1);
    let mut inv = Inventory::default();
    let problem = |inv: &mut Inventory, line: String| {
        warn!("{line}");
        inv.problems.push(line);
    };

    // 1. Functions, mappings and resource policies, region by region.
    struct Found {
        region: String,
        f: FunctionInfo,
        triggers: BTreeSet<String>,
        errors: Vec<String>,
    }
    let mut found: Vec<Found> = Vec::new();
    for region in regions {
        let r = region.name.as_str();
        let functions = match all_pages(&calls, "lambda:ListFunctions", |m| {
            region.lambda.list_functions(m)
        })
        .await
        {
            Ok(f) => f,
            Err(e) => {
                problem(
                    &mut inv,
                    format!(
                        "lambda:ListFunctions in {r} failed, no function of the region is inventoried: {e}"
                    ),
                );
                inv.failed_regions.push((r.to_string(), e.to_string()));
                continue;
            }
        };
        debug!(region = r, functions = functions.len(), "listed functions");
        let mut mapping_error = None;
        let mut by_function: HashMap<String, Vec<MappingInfo>> = HashMap::new();
        match all_pages(&calls, "lambda:ListEventSourceMappings", |m| {
            region.lambda.list_event_source_mappings(m)
        })
        .await
        {
            Ok(ms) => {
                for m in ms {
                    by_function
                        .entry(unqualified(&m.function_arn).to_string())
                        .or_default()
                        .push(m);
                }
            }
            Err(e) => {
                let line = format!(
                    "lambda:ListEventSourceMappings in {r} failed: event source mappings are missing from `triggers`: {e}"
                );
                problem(&mut inv, line.clone());
                mapping_error = Some(line);
            }
        }
        let policies: Vec<(usize, Result<Option<String>, CallError>)> =
            futures::stream::iter(functions.iter().enumerate())
                .map(|(i, f)| {
                    calls.count("lambda:GetPolicy");
                    let fut = region.lambda.get_function_policy(&f.name);
                    async move { (i, fut.await) }
                })
                .buffer_unordered(conc)
                .collect()
                .await;
        let mut policies: Vec<Option<Result<Option<String>, CallError>>> =
            policies.into_iter().fold(
                (0..functions.len()).map(|_| None).collect(),
                |mut v: Vec<_>, (i, p)| {
                    v[i] = Some(p);
                    v
                },
            );
        for (i, f) in functions.into_iter().enumerate() {
            let mut triggers = BTreeSet::new();
            let mut errors: Vec<String> = mapping_error.iter().cloned().collect();
            for m in by_function.get(unqualified(&f.arn)).into_iter().flatten() {
                if let Some(src) = &m.event_source_arn {
                    triggers.insert(src.clone());
                }
            }
            match policies[i].take() {
                Some(Ok(Some(doc))) => match resource_policy_triggers(&doc) {
                    Ok(t) => triggers.extend(t),
                    Err(e) => {
                        let line = format!(
                            "lambda:GetPolicy of function {} in {r}: {e}; its resource-policy triggers are missing",
                            f.name
                        );
                        problem(&mut inv, line.clone());
                        errors.push(line);
                    }
                },
                Some(Ok(None)) => {}
                Some(Err(e)) => {
                    let line = format!(
                        "lambda:GetPolicy of function {} in {r} failed, its resource-policy triggers are missing: {e}",
                        f.name
                    );
                    problem(&mut inv, line.clone());
                    errors.push(line);
                }
                None => {}
            }
            found.push(Found {
                region: r.to_string(),
                f,
                triggers,
                errors,
            });
        }
    }

    // 2. The roles' policy lists.
    let roles: BTreeSet<String> = found
        .iter()
        .filter_map(|x| x.f.role_arn.as_deref())
        .filter_map(role_name)
        .map(str::to_string)
        .collect();
    inv.roles = roles.len();
    type Listing = (
        String,
        Result<Vec<AttachedPolicy>, CallError>,
        Result<Vec<String>, CallError>,
    );
    let listings: Vec<Listing> = futures::stream::iter(roles.iter())
        .map(|role| {
            let calls = &calls;
            async move {
                let attached = all_pages(calls, "iam:ListAttachedRolePolicies", |m| {
                    iam.list_attached_role_policies(role, m)
                })
                .await;
                let inline = all_pages(calls, "iam:ListRolePolicies", |m| {
                    iam.list_role_policies(role, m)
                })
                .await;
                (role.clone(), attached, inline)
            }
        })
        .buffer_unordered(conc)
        .collect()
        .await;

    // 3. Documents: each managed policy once, however many roles attach it.
    let managed: BTreeSet<String> = listings
        .iter()
        .filter_map(|(_, a, _)| a.as_ref().ok())
        .flatten()
        .map(|p| p.arn.clone())
        .collect();
    inv.managed_policies = managed.len();
    let managed_docs: HashMap<String, Result<Expanded, String>> =
        futures::stream::iter(managed.iter())
            .map(|arn| {
                let calls = &calls;
                async move {
                    calls.count("iam:GetPolicy");
                    let version = match iam.get_policy_default_version(arn).await {
                        Ok(v) => v,
                        Err(e) => {
                            return (
                                arn.clone(),
                                Err(format!("iam:GetPolicy of {arn} failed: {e}")),
                            );
                        }
                    };
                    calls.count("iam:GetPolicyVersion");
                    let doc = match iam.get_policy_version(arn, &version).await {
                        Ok(d) => d,
                        Err(e) => {
                            return (
                                arn.clone(),
                                Err(format!(
                                    "iam:GetPolicyVersion of {arn} (version {version}) failed: {e}"
                                )),
                            );
                        }
                    };
                    let policy = PolicyRef::Managed { arn: arn.clone() };
                    (arn.clone(), Ok(expand(&doc, &policy)))
                }
            })
            .buffer_unordered(conc)
            .collect()
            .await;
    let inline_wanted: Vec<(String, String)> = listings
        .iter()
        .filter_map(|(role, _, i)| i.as_ref().ok().map(|names| (role, names)))
        .flat_map(|(role, names)| names.iter().map(move |n| (role.clone(), n.clone())))
        .collect();
    let inline_docs: HashMap<(String, String), Result<Expanded, String>> =
        futures::stream::iter(inline_wanted)
            .map(|(role, name)| {
                let calls = &calls;
                async move {
                    calls.count("iam:GetRolePolicy");
                    let res = match iam.get_role_policy(&role, &name).await {
                        Ok(doc) => Ok(expand(
                            &doc,
                            &PolicyRef::Inline {
                                role: role.clone(),
                                name: name.clone(),
                            },
                        )),
                        Err(e) => Err(format!(
                            "iam:GetRolePolicy of inline policy `{name}` of role {role} failed, its grants are missing: {e}"
                        )),
                    };
                    ((role, name), res)
                }
            })
            .buffer_unordered(conc)
            .collect()
            .await;
    let mut reported: BTreeSet<String> = BTreeSet::new();
    let mut role_policies: HashMap<String, RolePolicies> = HashMap::new();
    for (role, attached, inline) in listings {
        let mut rp = RolePolicies::default();
        match attached {
            Ok(mut list) => {
                list.sort_by(|a, b| a.arn.cmp(&b.arn));
                for p in list {
                    match managed_docs.get(&p.arn) {
                        Some(Ok(e)) => rp.add(p.arn.clone(), e),
                        Some(Err(why)) => rp.errors.push(why.clone()),
                        None => {}
                    }
                }
            }
            Err(e) => rp.errors.push(format!(
                "iam:ListAttachedRolePolicies of role {role} failed, its managed policies are missing: {e}"
            )),
        }
        match inline {
            Ok(mut names) => {
                names.sort();
                for name in names {
                    match inline_docs.get(&(role.clone(), name.clone())) {
                        Some(Ok(e)) => rp.add(format!("inline:{role}/{name}"), e),
                        Some(Err(why)) => rp.errors.push(why.clone()),
                        None => {}
                    }
                }
            }
            Err(e) => rp.errors.push(format!(
                "iam:ListRolePolicies of role {role} failed, its inline policies are missing: {e}"
            )),
        }
        for line in &rp.errors {
            if reported.insert(line.clone()) {
                problem(&mut inv, line.clone());
            }
        }
        role_policies.insert(role, rp);
    }

    // 4. One event per function.
    let time = opts.run_time.to_rfc3339_opts(SecondsFormat::Millis, true);
    let empty = RolePolicies::default();
    for x in found {
        let f = &x.f;
        let mut errors = x.errors;
        let role = f.role_arn.as_deref().and_then(role_name);
        if f.role_arn.is_some() && role.is_none() {
            errors.push(format!(
                "the role ARN `{}` names no role: its policies are missing",
                f.role_arn.as_deref().unwrap_or_default()
            ));
        }
        let rp = role.and_then(|r| role_policies.get(r)).unwrap_or(&empty);
        errors.extend(rp.errors.iter().cloned());
        let mut m = Map::new();
        m.insert("type".into(), json!("function_config"));
        m.insert("time".into(), json!(time));
        m.insert("function".into(), json!(f.name));
        let account = arn_account(&f.arn).unwrap_or(opts.account.as_str());
        m.insert("account".into(), json!(account));
        m.insert("region".into(), json!(x.region));
        if let Some(v) = &f.version {
            m.insert("version".into(), json!(v));
        }
        if let Some(v) = &f.runtime {
            m.insert("runtime".into(), json!(v));
        }
        if let Some(v) = &f.handler {
            m.insert("handler".into(), json!(v));
        }
        if let Some(v) = f.memory_mb {
            m.insert("memory_mb".into(), json!(v));
        }
        if let Some(v) = f.timeout_s {
            m.insert("timeout_ms".into(), json!(v.saturating_mul(1000)));
        }
        if let Some(v) = &f.role_arn {
            m.insert("role_arn".into(), json!(v));
        }
        m.insert("permissions".into(), json!(rp.permissions));
        m.insert("triggers".into(), json!(x.triggers));
        m.insert("layers".into(), json!(f.layers));
        if let Some(v) = &f.code_sha256 {
            m.insert("code_sha256".into(), json!(v));
        }
        m.insert("statements".into(), Value::Array(rp.statements.clone()));
        m.insert("env_keys".into(), json!(f.env_keys));
        m.insert("source".into(), json!("inventory"));
        // Beyond the contract's fields: kept in `extra`.
        m.insert("function_arn".into(), json!(f.arn));
        if let Some(v) = &f.package_type {
            m.insert("package_type".into(), json!(v));
        }
        if !f.architectures.is_empty() {
            m.insert("architectures".into(), json!(f.architectures));
        }
        if let Some(v) = &f.last_modified {
            m.insert("last_modified".into(), json!(v));
        }
        m.insert("policies".into(), json!(rp.policies));
        if !rp.unjudged.is_empty() {
            m.insert("unjudged_grants".into(), json!(rp.unjudged));
        }
        if !errors.is_empty() {
            m.insert("inventory_errors".into(), json!(errors));
        }
        inv.events.push(FunctionEvent {
            region: x.region,
            function: f.name.clone(),
            json: Value::Object(m).to_string(),
        });
    }
    inv.calls = calls.snapshot();
    inv
}
