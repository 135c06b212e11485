//! Unit tests of the function-level detectors, one rule at a time.

use super::*;

const LAMBDA_UA: &str = "Boto3/1.34.34 md/Botocore#1.34.34 ua/2.0 os/linux#5.10 md/arch#x86_64 lang/python#3.12.1 exec-env/AWS_Lambda_python3.12 Botocore/1.34.34";
const CLI_UA: &str = "aws-cli/2.15.10 md/awscrt#0.19.19 ua/2.0 os/linux#6.5.0 md/arch#x86_64 lang/python#3.11.6 md/command#s3api.list-objects";

fn call(t: i64, action: &str, resource: Option<&str>, ip: &str, ua: &str, denied: bool) -> Call {
    let (service, action) = action.split_once(':').unwrap_or(("s3", action));
    Call {
        time_us: t,
        service: service.to_string(),
        action: action.to_string(),
        resource: resource.map(str::to_string),
        source_ip: Some(ip.to_string()),
        user_agent: Some(ua.to_string()),
        denied,
        event_id: Some(format!("e-{t}")),
    }
}

/// A function that reads one bucket from Lambda, 50 times in training.
fn profile() -> FunctionProfile {
    let mut p = FunctionProfile::default();
    p.api_actions.insert("s3:GetObject".into(), 50);
    p.api_services.insert("s3".into());
    p.trail.calls = 50;
    p.trail.agents.insert(agent_family(LAMBDA_UA), 50);
    p.trail.networks.insert("3.91.0.0/16".into(), 50);
    p.trail
        .resources
        .insert("s3:GetObject|arn:aws:s3:::uploads/images/*".into(), 50);
    p
}

fn run(p: &FunctionProfile, calls: Vec<Call>, configs: Vec<ConfigSnapshot>) -> Vec<Alert> {
    let mut w = Window {
        calls,
        configs,
        ..Window::default()
    };
    let mut out = Vec::new();
    findings("thumbnailer", p, &mut w, &mut out);
    out.into_iter().map(|(_, a)| a).collect()
}

#[test]
fn clients_are_told_apart_by_product_and_lambdas_execution_environment() {
    assert_eq!(agent_family(LAMBDA_UA), "boto3|lambda");
    assert_eq!(agent_family(CLI_UA), "aws-cli");
    assert_eq!(
        agent_family("[aws-sdk-nodejs/3.490.0 exec-env/AWS_Lambda_nodejs20.x]"),
        "aws-sdk-nodejs|lambda"
    );
    assert_eq!(agent_family("lambda.amazonaws.com"), "service");
    assert_eq!(network_of("3.91.12.44"), "3.91.0.0/16");
    assert_eq!(network_of("2600:1f18:4a3:6901::1"), "2600:1f18:4a3::/48");
    assert!(aws_service_source("lambda.amazonaws.com") && !aws_service_source("3.91.12.44"));
}

#[test]
fn resources_fold_to_the_bucket_and_first_segment() {
    assert_eq!(
        resource_pattern("arn:aws:s3:::uploads/images/cat.jpg"),
        "arn:aws:s3:::uploads/images/*"
    );
    assert_eq!(
        resource_pattern("arn:aws:s3:::uploads/cat.jpg"),
        "arn:aws:s3:::uploads/*"
    );
    assert_eq!(
        resource_pattern("arn:aws:s3:::uploads"),
        "arn:aws:s3:::uploads"
    );
    assert_eq!(
        resource_pattern("arn:aws:dynamodb:us-east-1:123456789012:table/orders"),
        "arn:aws:dynamodb:us-east-1:123456789012:table/orders"
    );
}

#[test]
fn the_function_itself_raises_nothing() {
    let p = profile();
    let calls = (0..20)
        .map(|i| {
            call(
                i * 1_000_000,
                "s3:GetObject",
                Some("arn:aws:s3:::uploads/images/x.jpg"),
                "3.91.1.2",
                LAMBDA_UA,
                false,
            )
        })
        .collect();
    assert!(run(&p, calls, Vec::new()).is_empty());
}

#[test]
fn a_cli_with_the_functions_credentials_is_credential_exfiltration() {
    let p = profile();
    let calls = vec![
        call(
            1,
            "s3:ListObjects",
            Some("arn:aws:s3:::payroll"),
            "198.51.100.23",
            CLI_UA,
            true,
        ),
        call(
            2,
            "s3:GetObject",
            Some("arn:aws:s3:::uploads/images/x.jpg"),
            "198.51.100.23",
            CLI_UA,
            false,
        ),
    ];
    let alerts = run(&p, calls, Vec::new());
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let a = &alerts[0];
    assert_eq!(a.kind, Kind::CredentialExfiltration);
    assert_eq!(a.severity, Severity::High);
    assert_eq!(a.request_id, None);
    assert_eq!(a.evidence["source_ip"], "198.51.100.23");
    assert_eq!(a.evidence["calls"], 2);
    assert_eq!(a.evidence["denied"], 1);
    assert!(a.summary.contains("aws-cli"), "{}", a.summary);
    // The same finding on the same data has the same id.
    let again = run(
        &p,
        vec![
            call(1, "s3:ListObjects", None, "198.51.100.23", CLI_UA, true),
            call(2, "s3:GetObject", None, "198.51.100.23", CLI_UA, false),
        ],
        Vec::new(),
    );
    assert_eq!(again[0].id, a.id);
}

#[test]
fn a_new_network_counts_only_for_functions_with_fixed_networks() {
    let mut p = profile();
    let from = |ip: &str| {
        vec![call(
            1,
            "s3:GetObject",
            Some("arn:aws:s3:::uploads/images/x.jpg"),
            ip,
            LAMBDA_UA,
            false,
        )]
    };
    // 50 calls from one /16: a VPC's NAT.
    let alerts = run(&p, from("203.0.113.7"), Vec::new());
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].kind, Kind::CredentialExfiltration);
    assert!(
        run(&p, from("10.1.2.3"), Vec::new()).is_empty(),
        "a private address is not outside"
    );
    // Calls from many networks: a function outside a VPC.
    for n in 0..10 {
        p.trail.networks.insert(format!("{n}.{n}.0.0/16"), 5);
    }
    assert!(run(&p, from("203.0.113.7"), Vec::new()).is_empty());
}

#[test]
fn new_actions_and_new_resources_are_unusual_api_calls() {
    let p = profile();
    let alerts = run(
        &p,
        vec![
            call(
                1,
                "s3:GetObject",
                Some("arn:aws:s3:::finance-exports/q3.csv"),
                "3.91.1.2",
                LAMBDA_UA,
                false,
            ),
            call(
                2,
                "s3:PutObject",
                Some("arn:aws:s3:::uploads/images/y.jpg"),
                "3.91.1.2",
                LAMBDA_UA,
                false,
            ),
            call(3, "iam:ListRoles", None, "3.91.1.2", LAMBDA_UA, false),
        ],
        Vec::new(),
    );
    let kinds: Vec<(Kind, Severity, &str)> = alerts
        .iter()
        .map(|a| {
            (
                a.kind,
                a.severity,
                a.evidence["action"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert!(
        kinds.contains(&(Kind::UnusualApiCall, Severity::High, "ListRoles")),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&(Kind::UnusualApiCall, Severity::Medium, "PutObject")),
        "{kinds:?}"
    );
    let res = alerts
        .iter()
        .find(|a| a.summary.contains("a resource it does not normally use"))
        .expect("the new bucket");
    assert_eq!(
        res.evidence["resource"],
        "arn:aws:s3:::finance-exports/q3.csv"
    );
    assert_eq!(alerts.len(), 3);
}

#[test]
fn a_burst_of_denied_calls_is_raised_once_per_window() {
    let p = profile();
    let burst: Vec<Call> = (0..8)
        .map(|i| {
            call(
                i * 1_000_000,
                "secretsmanager:GetSecretValue",
                None,
                "3.91.1.2",
                LAMBDA_UA,
                true,
            )
        })
        .collect();
    let alerts = run(&p, burst.clone(), Vec::new());
    let denied: Vec<&Alert> = alerts
        .iter()
        .filter(|a| a.summary.contains("denied"))
        .collect();
    assert_eq!(denied.len(), 1, "{alerts:#?}");
    assert_eq!(denied[0].evidence["denied"], 8);
    // Four denied calls stay under the limit.
    let alerts = run(&p, burst[..4].to_vec(), Vec::new());
    assert!(alerts.iter().all(|a| !a.summary.contains("was denied")));
}

fn config(t: i64, code: &str, layers: &[&str], grants: &[&str]) -> ConfigSnapshot {
    ConfigSnapshot {
        time_us: t,
        code_sha256: Some(code.into()),
        role_arn: Some("arn:aws:iam::123456789012:role/thumbnailer".into()),
        layers: layers.iter().map(|s| s.to_string()).collect(),
        permissions: grants.iter().map(|s| s.to_string()).collect(),
        ..ConfigSnapshot::default()
    }
}

#[test]
fn configuration_changes_without_a_deploy_are_drift() {
    let mut p = profile();
    p.trail.config = Some(config(
        0,
        "abc",
        &["arn:aws:lambda:us-east-1:1:layer:pillow:3"],
        &["s3:GetObject"],
    ));
    let layer = config(
        10,
        "abc",
        &[
            "arn:aws:lambda:us-east-1:1:layer:pillow:3",
            "arn:aws:lambda:us-east-1:999:layer:x:1",
        ],
        &["s3:GetObject"],
    );
    let alerts = run(&p, Vec::new(), vec![layer.clone()]);
    assert_eq!(alerts.len(), 1);
    assert_eq!(
        (alerts[0].kind, alerts[0].severity),
        (Kind::ConfigDrift, Severity::Low)
    );
    assert_eq!(
        alerts[0].evidence["added_layers"][0],
        "arn:aws:lambda:us-east-1:999:layer:x:1"
    );
    // The same report again changes nothing more.
    let alerts = run(
        &p,
        Vec::new(),
        vec![
            layer.clone(),
            ConfigSnapshot {
                time_us: 20,
                ..layer.clone()
            },
        ],
    );
    assert_eq!(alerts.len(), 1);
    // Admin rights are high.
    let admin = config(
        10,
        "abc",
        &["arn:aws:lambda:us-east-1:1:layer:pillow:3"],
        &["s3:GetObject", "*"],
    );
    let alerts = run(&p, Vec::new(), vec![admin]);
    assert_eq!(alerts[0].severity, Severity::High);
    // A deploy (new code) explains it.
    let deploy = config(
        10,
        "def",
        &["arn:aws:lambda:us-east-1:999:layer:x:1"],
        &["s3:GetObject", "s3:PutObject"],
    );
    assert!(run(&p, Vec::new(), vec![deploy]).is_empty());
}

#[test]
fn wildcard_grants_are_judged_per_action_and_resource() {
    let statements = r#"[{"effect":"Allow","actions":["s3:*"],"resources":["*"]},
        {"effect":"Allow","actions":["dynamodb:GetItem"],"resources":["arn:aws:dynamodb:us-east-1:123456789012:table/orders"]},
        {"effect":"Allow","actions":["logs:CreateLogStream","logs:PutLogEvents"],"resources":["*"]}]"#;
    let used: Vec<Used<'_>> = vec![("s3:GetObject", Some("arn:aws:s3:::uploads/images/*"))];
    let j = over_broad(
        statements,
        &used,
        &["logs:CreateLogStream", "logs:PutLogEvents"],
    )
    .expect("statements");
    assert!(j.is_over_permissive() && !j.admin);
    assert_eq!(
        j.unused,
        vec!["dynamodb:GetItem on arn:aws:dynamodb:us-east-1:123456789012:table/orders"]
    );
    assert_eq!(j.broader_than_use.len(), 1);
    assert_eq!(j.broader_than_use[0]["grant"], "s3:*");
    assert_eq!(j.broader_than_use[0]["used_actions"][0], "s3:GetObject");
    // IAM's own spelling (Action/Resource as strings) reads the same.
    let iam = r#"[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::uploads/*"}]"#;
    let j = over_broad(iam, &used, &[]).expect("statements");
    assert!(!j.is_over_permissive(), "{j:?}");
    assert_eq!(j.used, vec!["s3:GetObject on arn:aws:s3:::uploads/*"]);
    // A grant on another bucket is unused even though the action is used.
    let other =
        r#"[{"Effect":"Allow","Action":["s3:GetObject"],"Resource":["arn:aws:s3:::payroll/*"]}]"#;
    let j = over_broad(other, &used, &[]).expect("statements");
    assert_eq!(j.unused, vec!["s3:GetObject on arn:aws:s3:::payroll/*"]);
    // Admin, and NotAction (everything but) is said to be judged as broad.
    let admin = r#"[{"Effect":"Allow","Action":"*","Resource":"*"}]"#;
    assert!(over_broad(admin, &used, &[]).expect("admin").admin);
    let not = r#"[{"Effect":"Allow","NotAction":"iam:*","Resource":"*"}]"#;
    let j = over_broad(not, &used, &[]).expect("not");
    assert!(j.admin && j.unjudged[0].contains("NotAction"), "{j:?}");
    assert!(over_broad("{}", &used, &[]).is_none());
}
