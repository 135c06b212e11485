//! The simulated fleet: twelve functions, their configuration and the
//! address book their hosts resolve to.

use super::util::{self, fnv, mix};

/// Which behaviour (see `behave.rs`) a function has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    OrdersApi,
    BillingWorker,
    Thumbnailer,
    AuthToken,
    ReportExport,
    EmailSender,
    SearchIndexer,
    WebhookRelay,
    QueryRunner,
    TemplatePreview,
    PdfRender,
    NightlyCleanup,
}

/// How a function's `invocation` records reach the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reports {
    /// The in-function sensor writes native `invocation` events.
    Native,
    /// Every invocation is known only from CloudWatch Logs `REPORT` lines.
    CloudWatch,
}

#[derive(Debug, Clone)]
pub struct FnSpec {
    pub kind: Kind,
    pub name: &'static str,
    pub region: &'static str,
    pub runtime: &'static str,
    pub runtime_exe: &'static str,
    pub handler: &'static str,
    pub memory_mb: i64,
    pub timeout_ms: i64,
    /// Deployed version at the start of the simulation.
    pub version: u32,
    /// Share of the fleet's traffic (0 for scheduled-only functions).
    pub weight: f64,
    pub trigger: &'static str,
    pub dur_median: f64,
    pub dur_sigma: f64,
    /// cpu_ms / duration_ms.
    pub cpu_share: f64,
    pub mem_used: (i64, i64),
    pub cold_p: f64,
    pub init_median: f64,
    pub error_p: f64,
    pub timeout_p: f64,
    pub error_types: &'static [&'static str],
    pub event_bytes: (i64, i64),
    /// Probability that the sensor samples the triggering event.
    pub event_p: f64,
    pub permissions: Vec<String>,
    pub layers: Vec<String>,
    pub triggers: Vec<String>,
    pub reports: Reports,
    /// A timed-out invocation loses its sensor: its `invocation` arrives only
    /// as a CloudWatch Logs payload.
    pub timeout_via_logs: bool,
    /// Share of invocations reported through a Lambda Telemetry API batch.
    pub telemetry_api_share: f64,
    /// Its timeouts keep burning CPU (busy, not stuck).
    pub busy_timeouts: bool,
    /// Uses `dynamodb.<region>.amazonaws.com` (so an outage of it hangs the function).
    pub uses_dynamodb: bool,
}

impl FnSpec {
    /// Whether a permission pattern of the role grants `service:action`.
    pub fn grants(&self, service: &str, action: &str) -> bool {
        self.permissions.iter().any(|p| {
            if p == "*" {
                return true;
            }
            let Some((s, a)) = p.split_once(':') else {
                return false;
            };
            s == service
                && (a == "*"
                    || a == action
                    || a.strip_suffix('*')
                        .is_some_and(|pre| action.starts_with(pre)))
        })
    }

    pub fn code_sha256(&self, version: u32) -> String {
        util::fake_sha256_b64(&format!("{}:{}", self.name, version))
    }
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

/// The fleet of an account. Order matters: it is the order of the daily
/// `function_config` events.
pub fn fleet(account: &str) -> Vec<FnSpec> {
    let sensor = format!("arn:aws:lambda:us-east-1:{account}:layer:fnwatch-sensor:3");
    let insights =
        "arn:aws:lambda:us-east-1:580247275435:layer:LambdaInsightsExtension:53".to_string();
    let api = format!("arn:aws:execute-api:us-east-1:{account}:k7q2m9x4ab/prod");
    let base = |kind, name, runtime, runtime_exe, handler| FnSpec {
        kind,
        name,
        region: "us-east-1",
        runtime,
        runtime_exe,
        handler,
        memory_mb: 256,
        timeout_ms: 6000,
        version: 1,
        weight: 1.0,
        trigger: "apigateway",
        dur_median: 100.0,
        dur_sigma: 0.5,
        cpu_share: 0.3,
        mem_used: (80, 120),
        cold_p: 0.02,
        init_median: 300.0,
        error_p: 0.01,
        timeout_p: 0.001,
        error_types: &[],
        event_bytes: (300, 1000),
        event_p: 0.05,
        permissions: Vec::new(),
        layers: vec![sensor.clone()],
        triggers: Vec::new(),
        reports: Reports::Native,
        timeout_via_logs: false,
        telemetry_api_share: 0.0,
        busy_timeouts: false,
        uses_dynamodb: false,
    };
    const PY312: &str = "/var/lang/bin/python3.12";
    const PY311: &str = "/var/lang/bin/python3.11";
    const NODE: &str = "/var/lang/bin/node";
    const JAVA: &str = "/var/lang/bin/java";
    vec![
        FnSpec {
            version: 42,
            weight: 30.0,
            dur_median: 85.0,
            dur_sigma: 0.55,
            cpu_share: 0.35,
            mem_used: (78, 112),
            cold_p: 0.02,
            init_median: 420.0,
            error_p: 0.012,
            timeout_p: 0.002,
            error_types: &["KeyError", "ValueError", "ClientError"],
            event_bytes: (380, 2400),
            event_p: 0.05,
            permissions: s(&[
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:Query",
                "sqs:SendMessage",
                "events:PutEvents",
                "logs:CreateLogStream",
                "logs:PutLogEvents",
            ]),
            triggers: vec![format!("{api}/POST/orders"), format!("{api}/GET/orders/*")],
            timeout_via_logs: true,
            uses_dynamodb: true,
            ..base(
                Kind::OrdersApi,
                "orders-api",
                "python3.12",
                PY312,
                "app.handler",
            )
        },
        FnSpec {
            memory_mb: 512,
            timeout_ms: 30_000,
            version: 17,
            weight: 12.0,
            trigger: "sqs",
            dur_median: 420.0,
            dur_sigma: 0.6,
            cpu_share: 0.2,
            mem_used: (120, 190),
            cold_p: 0.03,
            init_median: 310.0,
            error_p: 0.03,
            timeout_p: 0.003,
            error_types: &[
                "Runtime.UnhandledPromiseRejection",
                "StripeAPIError",
                "StripeCardError",
            ],
            event_bytes: (900, 6000),
            event_p: 0.03,
            permissions: s(&[
                "dynamodb:*",
                "secretsmanager:GetSecretValue",
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:GetQueueAttributes",
                "logs:*",
            ]),
            layers: vec![sensor.clone(), insights.clone()],
            triggers: vec![format!("arn:aws:sqs:us-east-1:{account}:billing-jobs")],
            uses_dynamodb: true,
            ..base(
                Kind::BillingWorker,
                "billing-worker",
                "nodejs20.x",
                NODE,
                "index.handler",
            )
        },
        FnSpec {
            memory_mb: 1024,
            timeout_ms: 60_000,
            version: 8,
            weight: 10.0,
            trigger: "s3",
            dur_median: 1600.0,
            dur_sigma: 0.7,
            cpu_share: 0.8,
            mem_used: (310, 720),
            cold_p: 0.04,
            init_median: 900.0,
            error_p: 0.01,
            timeout_p: 0.008,
            error_types: &["PIL.UnidentifiedImageError", "Runtime.ExitError"],
            event_bytes: (1100, 1600),
            event_p: 0.04,
            permissions: s(&["s3:GetObject", "s3:PutObject", "logs:*"]),
            layers: vec![
                sensor.clone(),
                format!("arn:aws:lambda:us-east-1:{account}:layer:imagemagick:7"),
            ],
            triggers: s(&["arn:aws:s3:::acme-uploads"]),
            ..base(
                Kind::Thumbnailer,
                "thumbnailer",
                "python3.11",
                PY311,
                "thumbs.handler",
            )
        },
        FnSpec {
            memory_mb: 128,
            timeout_ms: 3000,
            version: 63,
            weight: 25.0,
            dur_median: 24.0,
            dur_sigma: 0.5,
            cpu_share: 0.45,
            mem_used: (61, 84),
            cold_p: 0.015,
            init_median: 240.0,
            error_p: 0.004,
            timeout_p: 0.0005,
            error_types: &["TokenExpiredError", "Runtime.UnhandledPromiseRejection"],
            event_bytes: (300, 1400),
            event_p: 0.03,
            permissions: s(&[
                "kms:Decrypt",
                "dynamodb:GetItem",
                "dynamodb:UpdateItem",
                "cognito-idp:*",
                "logs:CreateLogStream",
                "logs:PutLogEvents",
            ]),
            triggers: vec![format!("{api}/POST/token")],
            timeout_via_logs: true,
            uses_dynamodb: true,
            ..base(
                Kind::AuthToken,
                "auth-token",
                "nodejs20.x",
                NODE,
                "src/token.handler",
            )
        },
        FnSpec {
            memory_mb: 2048,
            timeout_ms: 900_000,
            version: 5,
            weight: 1.5,
            trigger: "schedule",
            dur_median: 48_000.0,
            dur_sigma: 0.6,
            cpu_share: 0.55,
            mem_used: (600, 1700),
            cold_p: 0.3,
            init_median: 1400.0,
            error_p: 0.03,
            timeout_p: 0.04,
            error_types: &[
                "botocore.exceptions.ClientError",
                "psycopg.OperationalError",
            ],
            event_bytes: (250, 400),
            event_p: 0.1,
            permissions: s(&[
                "athena:*",
                "s3:*",
                "glue:GetTable",
                "glue:GetPartitions",
                "rds-db:connect",
                "logs:*",
            ]),
            layers: vec![
                sensor.clone(),
                format!("arn:aws:lambda:us-east-1:{account}:layer:ghostscript:4"),
            ],
            triggers: vec![format!(
                "arn:aws:events:us-east-1:{account}:rule/nightly-reports"
            )],
            timeout_via_logs: true,
            ..base(
                Kind::ReportExport,
                "report-export",
                "python3.12",
                PY312,
                "export.main",
            )
        },
        FnSpec {
            region: "eu-west-1",
            memory_mb: 256,
            timeout_ms: 10_000,
            version: 29,
            weight: 10.0,
            trigger: "sns",
            dur_median: 190.0,
            dur_sigma: 0.5,
            cpu_share: 0.25,
            mem_used: (70, 98),
            cold_p: 0.03,
            init_median: 380.0,
            error_p: 0.008,
            timeout_p: 0.001,
            error_types: &["ClientError", "TemplateNotFound"],
            event_bytes: (700, 3000),
            event_p: 0.04,
            permissions: s(&[
                "ses:SendEmail",
                "ses:SendRawEmail",
                "dynamodb:GetItem",
                "logs:CreateLogStream",
                "logs:PutLogEvents",
            ]),
            layers: vec![format!(
                "arn:aws:lambda:eu-west-1:{account}:layer:fnwatch-sensor:3"
            )],
            triggers: vec![format!("arn:aws:sns:eu-west-1:{account}:outbound-email")],
            reports: Reports::CloudWatch,
            timeout_via_logs: true,
            ..base(
                Kind::EmailSender,
                "email-sender",
                "python3.12",
                PY312,
                "mailer.handler",
            )
        },
        FnSpec {
            memory_mb: 1536,
            timeout_ms: 120_000,
            version: 11,
            weight: 8.0,
            trigger: "dynamodb",
            dur_median: 310.0,
            dur_sigma: 0.7,
            cpu_share: 0.5,
            mem_used: (380, 640),
            cold_p: 0.05,
            init_median: 2900.0,
            error_p: 0.01,
            timeout_p: 0.002,
            error_types: &[
                "java.net.SocketTimeoutException",
                "com.fasterxml.jackson.core.JsonParseException",
            ],
            event_bytes: (2000, 48_000),
            event_p: 0.02,
            permissions: s(&[
                "es:ESHttpPost",
                "es:ESHttpPut",
                "dynamodb:GetRecords",
                "dynamodb:GetShardIterator",
                "dynamodb:DescribeStream",
                "dynamodb:ListStreams",
                "logs:*",
            ]),
            triggers: vec![format!(
                "arn:aws:dynamodb:us-east-1:{account}:table/products/stream/2026-10-02T08:14:51.120"
            )],
            timeout_via_logs: true,
            ..base(
                Kind::SearchIndexer,
                "search-indexer",
                "java21",
                JAVA,
                "com.acme.search.Indexer::handleRequest",
            )
        },
        FnSpec {
            memory_mb: 256,
            timeout_ms: 15_000,
            version: 24,
            weight: 12.0,
            trigger: "eventbridge",
            dur_median: 260.0,
            dur_sigma: 0.8,
            cpu_share: 0.15,
            mem_used: (88, 140),
            cold_p: 0.03,
            init_median: 290.0,
            error_p: 0.02,
            timeout_p: 0.004,
            error_types: &["FetchError", "Runtime.UnhandledPromiseRejection"],
            event_bytes: (500, 4000),
            event_p: 0.05,
            permissions: s(&[
                "secretsmanager:GetSecretValue",
                "s3:*",
                "iam:PassRole",
                "logs:*",
            ]),
            triggers: vec![
                format!("arn:aws:events:us-east-1:{account}:rule/webhook-fanout"),
                format!("{api}/POST/hooks/*"),
            ],
            telemetry_api_share: 0.005,
            ..base(
                Kind::WebhookRelay,
                "webhook-relay",
                "nodejs20.x",
                NODE,
                "relay.handler",
            )
        },
        FnSpec {
            memory_mb: 1024,
            timeout_ms: 30_000,
            version: 14,
            weight: 6.0,
            dur_median: 900.0,
            dur_sigma: 0.9,
            cpu_share: 0.3,
            mem_used: (150, 420),
            cold_p: 0.03,
            init_median: 650.0,
            error_p: 0.03,
            timeout_p: 0.004,
            error_types: &[
                "psycopg.errors.SyntaxError",
                "psycopg.errors.UndefinedColumn",
                "psycopg.errors.QueryCanceled",
            ],
            event_bytes: (400, 3000),
            event_p: 0.6,
            permissions: s(&[
                "rds-db:connect",
                "secretsmanager:GetSecretValue",
                "athena:*",
                "s3:*",
                "logs:*",
            ]),
            triggers: vec![format!("{api}/POST/query")],
            ..base(
                Kind::QueryRunner,
                "query-runner",
                "python3.12",
                PY312,
                "runner.handler",
            )
        },
        FnSpec {
            memory_mb: 512,
            timeout_ms: 10_000,
            version: 9,
            weight: 5.0,
            dur_median: 140.0,
            dur_sigma: 0.6,
            cpu_share: 0.55,
            mem_used: (90, 160),
            cold_p: 0.04,
            init_median: 330.0,
            error_p: 0.02,
            timeout_p: 0.001,
            error_types: &["HandlebarsParseError", "Runtime.UnhandledPromiseRejection"],
            event_bytes: (300, 5000),
            event_p: 0.5,
            permissions: s(&[
                "dynamodb:GetItem",
                "dynamodb:Query",
                "s3:GetObject",
                "s3:ListBucket",
                "logs:*",
            ]),
            triggers: vec![format!("{api}/POST/templates/preview")],
            uses_dynamodb: true,
            timeout_via_logs: true,
            ..base(
                Kind::TemplatePreview,
                "template-preview",
                "nodejs20.x",
                NODE,
                "preview.handler",
            )
        },
        FnSpec {
            memory_mb: 2048,
            timeout_ms: 120_000,
            version: 21,
            weight: 4.0,
            trigger: "sqs",
            dur_median: 2800.0,
            dur_sigma: 0.5,
            cpu_share: 0.7,
            mem_used: (400, 1100),
            cold_p: 0.05,
            init_median: 1100.0,
            error_p: 0.015,
            timeout_p: 0.004,
            error_types: &[
                "subprocess.CalledProcessError",
                "botocore.exceptions.ClientError",
            ],
            event_bytes: (600, 4000),
            event_p: 0.05,
            permissions: s(&[
                "s3:*",
                "dynamodb:GetItem",
                "dynamodb:UpdateItem",
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "kms:Decrypt",
                "logs:*",
            ]),
            layers: vec![
                sensor.clone(),
                format!("arn:aws:lambda:us-east-1:{account}:layer:wkhtmltopdf:2"),
            ],
            triggers: vec![format!("arn:aws:sqs:us-east-1:{account}:render-jobs")],
            uses_dynamodb: true,
            ..base(
                Kind::PdfRender,
                "pdf-render",
                "python3.11",
                PY311,
                "render.handler",
            )
        },
        FnSpec {
            memory_mb: 3008,
            timeout_ms: 300_000,
            version: 3,
            weight: 0.0,
            trigger: "schedule",
            dur_median: 90_000.0,
            dur_sigma: 0.5,
            cpu_share: 0.85,
            mem_used: (500, 1400),
            cold_p: 0.6,
            init_median: 700.0,
            error_p: 0.02,
            timeout_p: 0.15,
            error_types: &["botocore.exceptions.ClientError"],
            event_bytes: (250, 400),
            event_p: 0.3,
            permissions: s(&["*"]),
            triggers: vec![format!(
                "arn:aws:events:us-east-1:{account}:rule/nightly-cleanup"
            )],
            busy_timeouts: true,
            uses_dynamodb: true,
            ..base(
                Kind::NightlyCleanup,
                "nightly-cleanup",
                "python3.12",
                PY312,
                "cleanup.main",
            )
        },
    ]
}

// ---- the address book -----------------------------------------------------------

/// A host name always resolves to the same addresses, drawn from ranges its
/// operator really uses. Longest suffix first.
const HOST_PREFIXES: &[(&str, &[(u8, u8)])] = &[
    ("rds.amazonaws.com", &[(10, 0)]),
    (
        "cloudfront.net",
        &[(13, 224), (13, 225), (18, 64), (108, 138)],
    ),
    (
        "amazonaws.com",
        &[
            (3, 218),
            (52, 94),
            (52, 119),
            (54, 239),
            (35, 71),
            (18, 213),
        ],
    ),
    ("stripe.com", &[(54, 187), (54, 241)]),
    ("slack.com", &[(3, 120), (34, 193), (44, 224)]),
    ("github.com", &[(140, 82)]),
    ("zapier.com", &[(34, 199), (54, 86)]),
    ("segment.io", &[(52, 34), (54, 148)]),
    ("sentry.io", &[(34, 120), (35, 186)]),
    ("launchdarkly.com", &[(52, 45), (34, 237)]),
    ("datadoghq.com", &[(3, 233), (52, 200)]),
    ("supportxmr.com", &[(94, 130), (51, 15)]),
    ("nanopool.org", &[(51, 68), (141, 94)]),
    ("hashvault.pro", &[(95, 216), (135, 125)]),
    ("c3pool.org", &[(142, 202), (104, 243)]),
];

/// Addresses of hosts nobody in the table operates.
const DEFAULT_PREFIXES: &[(u8, u8)] = &[(104, 21), (172, 67), (45, 76), (185, 199), (95, 179)];

/// The first `n` (at most 2) IPv4 addresses of `host`.
pub fn host_ips(host: &str) -> [[u8; 4]; 2] {
    let pool = HOST_PREFIXES
        .iter()
        .find(|(suffix, _)| host == *suffix || host.ends_with(&format!(".{suffix}")))
        .map(|(_, p)| *p)
        .unwrap_or(DEFAULT_PREFIXES);
    let h = mix(fnv(host));
    let b = h.to_le_bytes();
    let (p0, p1) = pool[b[0] as usize % pool.len()];
    [
        [p0, p1, b[1] % 254 + 1, b[2] % 254 + 1],
        [p0, p1, b[3] % 254 + 1, b[4] % 254 + 1],
    ]
}

/// The IPv6 address of `host`.
pub fn host_ip6(host: &str) -> String {
    let h = mix(fnv(host) ^ 0x6666);
    format!(
        "2600:1f18:{:04x}:{:04x}::{:04x}",
        h & 0xffff,
        (h >> 16) & 0xffff,
        (h >> 32) & 0xffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_understands_wildcards() {
        let f = fleet("123456789012");
        let billing = f.iter().find(|f| f.name == "billing-worker").unwrap();
        assert!(billing.grants("dynamodb", "BatchWriteItem"));
        assert!(!billing.grants("iam", "ListUsers"));
        let cleanup = f.iter().find(|f| f.name == "nightly-cleanup").unwrap();
        assert!(cleanup.grants("iam", "CreateAccessKey"));
        assert_eq!(host_ips("api.stripe.com"), host_ips("api.stripe.com"));
        assert_eq!(host_ips("x.rds.amazonaws.com")[0][0], 10);
    }
}
