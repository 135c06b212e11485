//! The collector against an in-memory account: paging, the policy cache,
//! and the failures no emulator produces on demand (an `AccessDenied` on
//! one call), and writing a run exactly once.

#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};

use chrono::TimeZone;
use serde_json::{Value, json};

use super::api::*;
use super::collect::{CollectOptions, Region, collect, role_name};
use crate::decode::{DecodeState, decode_record};
use crate::event::{EventType, Position, VecSink};

#[derive(Default)]
struct Fake {
    functions: Vec<FunctionInfo>,
    page: usize,
    mappings: Vec<MappingInfo>,
    resource_policies: HashMap<String, String>,
    attached: HashMap<String, Vec<AttachedPolicy>>,
    managed: HashMap<String, String>,
    inline: HashMap<String, Vec<(String, String)>>,
    /// (call, key) pairs answered with AccessDenied.
    denied: HashSet<(&'static str, String)>,
}

impl Fake {
    fn check(&self, call: &'static str, key: &str) -> Result<(), CallError> {
        if self.denied.contains(&(call, key.to_string())) {
            return Err(CallError::Denied(format!(
                "AccessDenied: User: arn:aws:iam::123456789012:user/reader is not authorized to perform: {call}"
            )));
        }
        Ok(())
    }
}

fn page<T: Clone>(items: &[T], marker: Option<String>, size: usize) -> Page<T> {
    let start: usize = marker.map(|m| m.parse().unwrap()).unwrap_or(0);
    let end = (start + size).min(items.len());
    Page {
        items: items[start..end].to_vec(),
        next: (end < items.len()).then(|| end.to_string()),
    }
}

impl LambdaApi for Fake {
    async fn list_functions(
        &self,
        marker: Option<String>,
    ) -> Result<Page<FunctionInfo>, CallError> {
        self.check("lambda:ListFunctions", "")?;
        Ok(page(&self.functions, marker, self.page.max(1)))
    }
    async fn list_event_source_mappings(
        &self,
        marker: Option<String>,
    ) -> Result<Page<MappingInfo>, CallError> {
        self.check("lambda:ListEventSourceMappings", "")?;
        Ok(page(&self.mappings, marker, 100))
    }
    async fn get_function_policy(&self, function: &str) -> Result<Option<String>, CallError> {
        self.check("lambda:GetPolicy", function)?;
        Ok(self.resource_policies.get(function).cloned())
    }
}

impl IamApi for Fake {
    async fn list_attached_role_policies(
        &self,
        role: &str,
        marker: Option<String>,
    ) -> Result<Page<AttachedPolicy>, CallError> {
        self.check("iam:ListAttachedRolePolicies", role)?;
        let all = self.attached.get(role).cloned().unwrap_or_default();
        Ok(page(&all, marker, 1))
    }
    async fn get_policy_default_version(&self, arn: &str) -> Result<String, CallError> {
        self.check("iam:GetPolicy", arn)?;
        self.managed
            .contains_key(arn)
            .then(|| "v3".to_string())
            .ok_or_else(|| CallError::NotFound(arn.into()))
    }
    async fn get_policy_version(&self, arn: &str, version: &str) -> Result<String, CallError> {
        assert_eq!(version, "v3", "the default version is asked for");
        Ok(self.managed[arn].clone())
    }
    async fn list_role_policies(
        &self,
        role: &str,
        marker: Option<String>,
    ) -> Result<Page<String>, CallError> {
        self.check("iam:ListRolePolicies", role)?;
        let names: Vec<String> = self
            .inline
            .get(role)
            .map(|v| v.iter().map(|(n, _)| n.clone()).collect())
            .unwrap_or_default();
        Ok(page(&names, marker, 1))
    }
    async fn get_role_policy(&self, role: &str, name: &str) -> Result<String, CallError> {
        self.check("iam:GetRolePolicy", &format!("{role}/{name}"))?;
        Ok(self.inline[role]
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, d)| d.clone())
            .unwrap())
    }
}

const ACCOUNT: &str = "123456789012";
const S3_ALL: &str = "arn:aws:iam::123456789012:policy/s3-everything";

fn function(name: &str, role: &str) -> FunctionInfo {
    FunctionInfo {
        name: name.into(),
        arn: format!("arn:aws:lambda:us-east-1:{ACCOUNT}:function:{name}"),
        runtime: Some("python3.12".into()),
        handler: Some("app.handler".into()),
        memory_mb: Some(256),
        timeout_s: Some(30),
        role_arn: Some(format!("arn:aws:iam::{ACCOUNT}:role/service-role/{role}")),
        layers: vec![format!("arn:aws:lambda:us-east-1:{ACCOUNT}:layer:deps:2")],
        code_sha256: Some("f29a2igPMcY55VGhanw9KmalJzsjrQBT/USN8dN9bOU=".into()),
        version: Some("$LATEST".into()),
        env_keys: vec!["DB_PASSWORD".into(), "TABLE".into()],
        ..Default::default()
    }
}

/// Three roles sharing one managed policy, one of them with two inline
/// policies; five functions listed two a page.
fn account() -> Fake {
    let mut f = Fake {
        page: 2,
        ..Default::default()
    };
    for (name, role) in [
        ("orders-api", "orders-role"),
        ("orders-worker", "orders-role"),
        ("audit-job", "audit-role"),
        ("thumbs", "media-role"),
        ("resize", "media-role"),
    ] {
        f.functions.push(function(name, role));
    }
    for role in ["orders-role", "audit-role", "media-role"] {
        f.attached.insert(
            role.into(),
            vec![AttachedPolicy {
                name: "s3-everything".into(),
                arn: S3_ALL.into(),
            }],
        );
    }
    f.managed.insert(
        S3_ALL.into(),
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#
            .into(),
    );
    f.inline.insert(
        "orders-role".into(),
        vec![
            (
                "tables".into(),
                // URL-encoded, as IAM returns it.
                "%7B%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Action%22%3A%5B%22dynamodb%3AGetItem%22%2C%22dynamodb%3APutItem%22%5D%2C%22Resource%22%3A%22arn%3Aaws%3Adynamodb%3Aus-east-1%3A123456789012%3Atable%2Forders%22%7D%5D%7D".into(),
            ),
            (
                "queue".into(),
                r#"{"Statement":{"Effect":"Allow","Action":"sqs:SendMessage","Resource":"*"}}"#
                    .into(),
            ),
        ],
    );
    f.inline.insert(
        "audit-role".into(),
        vec![(
            "broad".into(),
            r#"{"Statement":[{"Effect":"Allow","NotAction":"iam:*","Resource":"*"}]}"#.into(),
        )],
    );
    f.mappings.push(MappingInfo {
        function_arn: format!("arn:aws:lambda:us-east-1:{ACCOUNT}:function:orders-worker:live"),
        event_source_arn: Some(format!("arn:aws:sqs:us-east-1:{ACCOUNT}:orders-q")),
        state: Some("Enabled".into()),
    });
    f.resource_policies.insert(
        "thumbs".into(),
        r#"{"Statement":[{"Effect":"Allow","Principal":{"Service":"s3.amazonaws.com"},"Action":"lambda:InvokeFunction","Resource":"*","Condition":{"ArnLike":{"AWS:SourceArn":"arn:aws:s3:::uploads"}}}]}"#.into(),
    );
    f
}

fn opts() -> CollectOptions {
    CollectOptions {
        account: ACCOUNT.into(),
        run_time: chrono::Utc.with_ymd_and_hms(2026, 12, 7, 6, 0, 0).unwrap(),
        concurrency: 4,
    }
}

fn events(inv: &super::Inventory) -> HashMap<String, Value> {
    inv.events
        .iter()
        .map(|e| (e.function.clone(), serde_json::from_str(&e.json).unwrap()))
        .collect()
}

fn run(fake: Fake) -> super::Inventory {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let regions = [Region {
            name: "us-east-1".to_string(),
            lambda: &fake,
        }];
        collect(&regions, &&fake, &opts()).await
    })
}

impl<T: LambdaApi> LambdaApi for &T {
    fn list_functions(
        &self,
        marker: Option<String>,
    ) -> impl std::future::Future<Output = Result<Page<FunctionInfo>, CallError>> + Send {
        (**self).list_functions(marker)
    }
    fn list_event_source_mappings(
        &self,
        marker: Option<String>,
    ) -> impl std::future::Future<Output = Result<Page<MappingInfo>, CallError>> + Send {
        (**self).list_event_source_mappings(marker)
    }
    fn get_function_policy(
        &self,
        function: &str,
    ) -> impl std::future::Future<Output = Result<Option<String>, CallError>> + Send {
        (**self).get_function_policy(function)
    }
}

impl<T: IamApi> IamApi for &T {
    fn list_attached_role_policies(
        &self,
        role: &str,
        marker: Option<String>,
    ) -> impl std::future::Future<Output = Result<Page<AttachedPolicy>, CallError>> + Send {
        (**self).list_attached_role_policies(role, marker)
    }
    fn get_policy_default_version(
        &self,
        arn: &str,
    ) -> impl std::future::Future<Output = Result<String, CallError>> + Send {
        (**self).get_policy_default_version(arn)
    }
    fn get_policy_version(
        &self,
        arn: &str,
        version: &str,
    ) -> impl std::future::Future<Output = Result<String, CallError>> + Send {
        (**self).get_policy_version(arn, version)
    }
    fn list_role_policies(
        &self,
        role: &str,
        marker: Option<String>,
    ) -> impl std::future::Future<Output = Result<Page<String>, CallError>> + Send {
        (**self).list_role_policies(role, marker)
    }
    fn get_role_policy(
        &self,
        role: &str,
        name: &str,
    ) -> impl std::future::Future<Output = Result<String, CallError>> + Send {
        (**self).get_role_policy(role, name)
    }
}

#[test]
fn every_function_once_with_policies_read_once_per_policy() {
    let inv = run(account());
    assert!(inv.problems.is_empty(), "{:?}", inv.problems);
    let ev = events(&inv);
    assert_eq!(ev.len(), 5);
    assert_eq!((inv.roles, inv.managed_policies), (3, 1));
    let calls: Vec<(&str, u64)> = inv.calls.iter().map(|(k, v)| (*k, *v)).collect();
    assert_eq!(
        calls,
        vec![
            // The managed policy all three roles attach: read once.
            ("iam:GetPolicy", 1),
            ("iam:GetPolicyVersion", 1),
            ("iam:GetRolePolicy", 3),
            ("iam:ListAttachedRolePolicies", 3),
            // orders-role's two inline names come one a page.
            ("iam:ListRolePolicies", 4),
            ("lambda:GetPolicy", 5),
            ("lambda:ListEventSourceMappings", 1),
            // Five functions, two a page.
            ("lambda:ListFunctions", 3),
        ]
    );
    let o = &ev["orders-worker"];
    assert_eq!(o["type"], "function_config");
    assert_eq!(o["time"], "2026-12-07T06:00:00.000Z");
    assert_eq!(o["source"], "inventory");
    assert_eq!(o["account"], ACCOUNT);
    assert_eq!(o["timeout_ms"], 30_000);
    assert_eq!(o["env_keys"], json!(["DB_PASSWORD", "TABLE"]));
    assert_eq!(
        o["permissions"],
        json!([
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "s3:*",
            "sqs:SendMessage"
        ])
    );
    // A mapping of a qualified ARN (an alias) is the function's trigger.
    assert_eq!(
        o["triggers"],
        json!(["arn:aws:sqs:us-east-1:123456789012:orders-q"])
    );
    assert_eq!(
        o["policies"],
        json!([
            S3_ALL,
            "inline:orders-role/queue",
            "inline:orders-role/tables"
        ])
    );
    assert_eq!(
        o["statements"][2],
        json!({"effect":"Allow","actions":["dynamodb:GetItem","dynamodb:PutItem"],
               "resources":["arn:aws:dynamodb:us-east-1:123456789012:table/orders"],
               "policy":"inline:orders-role/tables"})
    );
    assert_eq!(ev["thumbs"]["triggers"], json!(["arn:aws:s3:::uploads"]));
    assert_eq!(ev["resize"]["triggers"], json!([]));
    // NotAction: kept, and named as a grant that could not be judged.
    let a = &ev["audit-job"];
    assert_eq!(a["permissions"], json!(["s3:*"]));
    assert_eq!(a["statements"][1]["not_actions"], json!(["iam:*"]));
    assert!(
        a["unjudged_grants"][0]
            .as_str()
            .unwrap()
            .contains("allows every action except iam:* (NotAction)")
    );
    assert!(o.get("inventory_errors").is_none());
}

#[test]
fn access_denied_on_one_inline_policy_is_reported_and_the_rest_is_kept() {
    let mut fake = account();
    fake.denied
        .insert(("iam:GetRolePolicy", "orders-role/tables".into()));
    let inv = run(fake);
    assert_eq!(inv.events.len(), 5);
    assert_eq!(inv.problems.len(), 1, "{:?}", inv.problems);
    let p = &inv.problems[0];
    assert!(
        p.starts_with("iam:GetRolePolicy of inline policy `tables` of role orders-role failed, its grants are missing: access denied: AccessDenied"),
        "{p}"
    );
    let ev = events(&inv);
    for f in ["orders-api", "orders-worker"] {
        // The other grants of the role are there; the denied one is named.
        assert_eq!(ev[f]["permissions"], json!(["s3:*", "sqs:SendMessage"]));
        assert_eq!(ev[f]["inventory_errors"], json!([p]));
    }
    assert!(ev["thumbs"].get("inventory_errors").is_none());
    assert_eq!(ev["audit-job"]["statements"].as_array().unwrap().len(), 2);
}

#[test]
fn a_denied_listing_or_policy_fetch_names_the_call_and_the_object() {
    let mut fake = account();
    fake.denied
        .insert(("iam:ListAttachedRolePolicies", "media-role".into()));
    fake.denied.insert(("lambda:GetPolicy", "thumbs".into()));
    fake.denied.insert(("iam:GetPolicy", S3_ALL.into()));
    let inv = run(fake);
    let ev = events(&inv);
    let errs = |f: &str| -> Vec<String> {
        ev[f]["inventory_errors"]
            .as_array()
            .map(|a| a.iter().map(|v| v.as_str().unwrap().to_string()).collect())
            .unwrap_or_default()
    };
    let thumbs = errs("thumbs");
    assert!(thumbs.iter().any(|e| e.starts_with(
        "lambda:GetPolicy of function thumbs in us-east-1 failed, its resource-policy triggers are missing: access denied"
    )), "{thumbs:?}");
    assert!(thumbs.iter().any(|e| e.starts_with(
        "iam:ListAttachedRolePolicies of role media-role failed, its managed policies are missing"
    )));
    // The managed policy is denied for every role that attaches it.
    assert!(
        errs("orders-api")
            .iter()
            .any(|e| e.starts_with(&format!("iam:GetPolicy of {S3_ALL} failed: access denied")))
    );
    assert_eq!(
        ev["orders-api"]["permissions"],
        json!(["dynamodb:GetItem", "dynamodb:PutItem", "sqs:SendMessage"])
    );
    // Each problem once in the run's report, however many functions share it.
    let mut sorted = inv.problems.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), inv.problems.len());
}

#[test]
fn a_region_that_cannot_be_listed_fails_alone() {
    let mut denied = account();
    denied
        .denied
        .insert(("lambda:ListFunctions", String::new()));
    let ok = account();
    let iam = account();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let inv = rt.block_on(async {
        let regions = [
            Region {
                name: "eu-west-1".to_string(),
                lambda: &denied,
            },
            Region {
                name: "us-east-1".to_string(),
                lambda: &ok,
            },
        ];
        collect(&regions, &&iam, &opts()).await
    });
    assert_eq!(inv.events.len(), 5);
    assert!(inv.events.iter().all(|e| e.region == "us-east-1"));
    assert_eq!(inv.failed_regions.len(), 1);
    assert_eq!(inv.failed_regions[0].0, "eu-west-1");
    assert!(inv.problems[0].starts_with("lambda:ListFunctions in eu-west-1 failed"));
}

#[test]
fn events_decode_as_function_config_through_the_ingest_decoder() {
    let inv = run(account());
    let mut sink = VecSink::default();
    let mut state = DecodeState::default();
    for e in &inv.events {
        let pos = Position::file("inventory".into(), 1);
        decode_record(e.json.as_bytes(), &pos, &mut state, &mut sink);
    }
    assert!(sink.dead.is_empty(), "{:?}", sink.dead);
    assert_eq!(sink.events.len(), 5);
    let row = sink
        .events
        .iter()
        .find(|r| r.function == "orders-api")
        .unwrap();
    assert_eq!(row.event_type, EventType::FunctionConfig);
    assert_eq!(row.runtime.as_deref(), Some("python3.12"));
    assert_eq!(row.memory_mb, Some(256));
    assert_eq!(row.timeout_ms, Some(30_000));
    let perms: Vec<&str> = row
        .permissions
        .as_ref()
        .unwrap()
        .iter()
        .map(|s| s.as_ref())
        .collect();
    assert_eq!(
        perms,
        [
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "s3:*",
            "sqs:SendMessage"
        ]
    );
}

#[test]
fn role_names_come_from_role_arns_with_paths() {
    assert_eq!(
        role_name("arn:aws:iam::1:role/service-role/orders-role"),
        Some("orders-role")
    );
    assert_eq!(role_name("arn:aws:iam::1:role/plain"), Some("plain"));
    assert_eq!(role_name("arn:aws:iam::1:user/someone"), None);
    assert_eq!(role_name("arn:aws:iam::1:role/"), None);
}

#[test]
fn a_run_is_written_once_however_often_it_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("lake").display().to_string();
    let inv = run(account());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut lake = crate::lake::Lake::open_or_create(&spec).await.unwrap();
        let regions = vec!["us-east-1".to_string()];
        let t = opts().run_time.timestamp_millis();
        assert_eq!(
            super::last_run_ms(&lake, ACCOUNT, &regions).await.unwrap(),
            None
        );
        let first = super::write_run(&mut lake, ACCOUNT, &regions, t, &inv.events, 0)
            .await
            .unwrap();
        assert!(first.written);
        assert_eq!(first.counts.total_events(), 5);
        assert_eq!(first.counts.dead_letters, 0);
        let version = lake.events.version();
        // The same run again (a retry, a restart): nothing is added.
        let again = super::write_run(&mut lake, ACCOUNT, &regions, t, &inv.events, 0)
            .await
            .unwrap();
        assert!(!again.written);
        assert_eq!(lake.events.version(), version);
        // Another process's lake handle sees the run too.
        let mut other = crate::lake::Lake::open(&spec).await.unwrap();
        assert_eq!(
            super::last_run_ms(&other, ACCOUNT, &regions).await.unwrap(),
            Some(t)
        );
        let stale = super::write_run(&mut other, ACCOUNT, &regions, t - 1, &inv.events, 0)
            .await
            .unwrap();
        assert!(
            !stale.written,
            "an older run is not written after a newer one"
        );
        // The next run is.
        let next = super::write_run(&mut other, ACCOUNT, &regions, t + 1, &inv.events, 0)
            .await
            .unwrap();
        assert!(next.written);
        assert_eq!(
            super::last_run_ms(&other, ACCOUNT, &regions).await.unwrap(),
            Some(t + 1)
        );
        // A region the lake has no run for: no last run for the set.
        let more = vec!["us-east-1".to_string(), "eu-west-1".to_string()];
        assert_eq!(
            super::last_run_ms(&other, ACCOUNT, &more).await.unwrap(),
            None
        );
    });
}
