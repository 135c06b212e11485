//! What each function does during a benign invocation: its sensor events
//! (a port of `activities` in tests/data/make_sample.py, plus the functions
//! added here).

use super::fleet::Kind;
use super::inv::Inv;
use super::util::{ALNUM, ALNUM_US, HEX, chance, date, int, pick, token, unif, uuid, weighted};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Success,
    Error,
    Timeout,
    Crash,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Success => "success",
            Status::Error => "error",
            Status::Timeout => "timeout",
            Status::Crash => "crash",
        }
    }
}

pub fn tmpname(inv: &mut Inv<'_>) -> String {
    format!("tmp{}", token(inv.r, 8, ALNUM_US))
}

/// The benign sensor events of one invocation.
pub fn activities(inv: &mut Inv<'_>, cold: bool, status: Status) {
    let f = inv.f;
    let acct = inv.w.account.clone();
    let reg = f.region;
    let ddb = format!("dynamodb.{reg}.amazonaws.com");
    let p_dns = if cold { 0.9 } else { 0.45 }; // warm sandboxes mostly hit the resolver cache
    if cold && chance(inv.r, 0.5) {
        inv.file("/etc/ssl/certs/ca-certificates.crt", "read", Some(0.01));
    }
    let ok = status == Status::Success;
    // Traced functions send X-Ray segments to the daemon's link-local address.
    if matches!(
        f.kind,
        Kind::OrdersApi | Kind::BillingWorker | Kind::WebhookRelay | Kind::SearchIndexer
    ) && chance(inv.r, 0.3)
    {
        let t = inv.t_at(Some(0.99));
        let bo = int(inv.r, 300, 1500);
        inv.flow_at("udp", None, "169.254.79.129", 2000, t, bo, 0);
    }

    match f.kind {
        Kind::OrdersApi => {
            let table = format!("arn:aws:dynamodb:{reg}:{acct}:table/orders");
            inv.lookup_and_connect(&ddb, p_dns, 0.35, (900, 3200), (400, 9000), 443, None);
            let action = *pick(inv.r, &["GetItem", "Query", "PutItem", "PutItem"]);
            let err = chance(inv.r, 0.01).then_some("ConditionalCheckFailedException");
            inv.api("dynamodb", action, Some(&table), err, None);
            if chance(inv.r, 0.35) {
                let err = chance(inv.r, 0.005).then_some("ProvisionedThroughputExceededException");
                inv.api("dynamodb", "PutItem", Some(&table), err, None);
            }
            if chance(inv.r, 0.3) {
                inv.lookup_and_connect(
                    &format!("sqs.{reg}.amazonaws.com"),
                    p_dns * 0.5,
                    0.3,
                    (700, 2200),
                    (300, 900),
                    443,
                    None,
                );
                inv.api(
                    "sqs",
                    "SendMessage",
                    Some(&format!("arn:aws:sqs:{reg}:{acct}:order-events")),
                    None,
                    None,
                );
            }
        }
        Kind::BillingWorker => {
            if cold || chance(inv.r, 0.05) {
                let arn = format!(
                    "arn:aws:secretsmanager:{reg}:{acct}:secret:prod/stripe-api-key-Xk3pQ9"
                );
                inv.api(
                    "secretsmanager",
                    "GetSecretValue",
                    Some(&arn),
                    None,
                    Some(0.02),
                );
            }
            inv.lookup_and_connect(
                "api.stripe.com",
                0.5,
                0.9,
                (1100, 2600),
                (1800, 7200),
                443,
                None,
            );
            inv.api(
                "dynamodb",
                "UpdateItem",
                Some(&format!("arn:aws:dynamodb:{reg}:{acct}:table/invoices")),
                None,
                None,
            );
            if chance(inv.r, 0.25) {
                inv.lookup_and_connect(&ddb, p_dns, 0.3, (800, 2000), (300, 1500), 443, None);
            }
            if chance(inv.r, 0.02) {
                // a stray call to a table it never needs
                inv.api(
                    "dynamodb",
                    "Scan",
                    Some(&format!("arn:aws:dynamodb:{reg}:{acct}:table/customers")),
                    None,
                    None,
                );
            }
        }
        Kind::Thumbnailer => {
            let key = token(inv.r, 12, HEX);
            let (src, dst) = (format!("/tmp/{key}.jpg"), format!("/tmp/{key}_256.jpg"));
            inv.lookup_and_connect(
                "acme-uploads.s3.amazonaws.com",
                0.4,
                0.95,
                (600, 1400),
                (180_000, 6_000_000),
                443,
                Some("s3-1-w.amazonaws.com"),
            );
            inv.api(
                "s3",
                "GetObject",
                Some(&format!("arn:aws:s3:::acme-uploads/incoming/{key}.jpg")),
                None,
                Some(0.05),
            );
            inv.file(&src, "write", Some(0.1));
            let args = [
                "convert",
                src.as_str(),
                "-resize",
                "256x256>",
                "-strip",
                dst.as_str(),
            ];
            inv.proc("/usr/bin/convert", &args, f.runtime_exe, Some(0.2));
            if ok {
                inv.file(&dst, "read", Some(0.85));
                inv.api(
                    "s3",
                    "PutObject",
                    Some(&format!("arn:aws:s3:::acme-thumbnails/256/{key}.jpg")),
                    None,
                    Some(0.9),
                );
                if chance(inv.r, 0.2) {
                    inv.file(&src, "delete", Some(0.95));
                }
            }
        }
        Kind::AuthToken => {
            if chance(inv.r, 0.35) {
                let denied = chance(inv.r, 0.01);
                let key = if denied {
                    "9a0e7c44-1b2d-4e5f-8a6b-0c1d2e3f4a5b"
                } else {
                    "2f6b1c9e-4d0a-4b7e-9c1d-6a3e8f0b5d21"
                };
                let arn = format!("arn:aws:kms:{reg}:{acct}:key/{key}");
                inv.api(
                    "kms",
                    "Decrypt",
                    Some(&arn),
                    denied.then_some("AccessDenied"),
                    None,
                );
            }
            let sessions = format!("arn:aws:dynamodb:{reg}:{acct}:table/sessions");
            inv.api("dynamodb", "GetItem", Some(&sessions), None, None);
            if chance(inv.r, 0.4) {
                inv.api("dynamodb", "UpdateItem", Some(&sessions), None, None);
            }
            if chance(inv.r, 0.35) {
                inv.lookup_and_connect(
                    &format!("cognito-idp.{reg}.amazonaws.com"),
                    p_dns,
                    0.6,
                    (600, 1500),
                    (900, 2600),
                    443,
                    None,
                );
            }
        }
        Kind::ReportExport => {
            let run = format!("report-{}", token(inv.r, 8, ALNUM));
            inv.file("/var/task/templates/report.html", "read", Some(0.01));
            inv.lookup_and_connect(
                &format!("athena.{reg}.amazonaws.com"),
                p_dns,
                0.9,
                (1500, 4000),
                (2000, 90_000),
                443,
                None,
            );
            let wg = format!("arn:aws:athena:{reg}:{acct}:workgroup/reports");
            inv.api("athena", "StartQueryExecution", Some(&wg), None, Some(0.05));
            inv.api("athena", "GetQueryResults", Some(&wg), None, Some(0.4));
            let db = "reports-db.cluster-c9x8y7z6w5v4.us-east-1.rds.amazonaws.com";
            if chance(inv.r, 0.6) {
                inv.lookup_and_connect(
                    db,
                    0.8,
                    1.0,
                    (4000, 40_000),
                    (40_000, 4_000_000),
                    5432,
                    None,
                );
            }
            let ps = format!("/tmp/{run}.ps");
            let pdf = format!("/tmp/{run}.pdf");
            inv.file(&ps, "write", Some(0.6));
            let out = format!("-sOutputFile={pdf}");
            let args = [
                "gs",
                "-q",
                "-dNOPAUSE",
                "-dBATCH",
                "-sDEVICE=pdfwrite",
                out.as_str(),
                ps.as_str(),
            ];
            if chance(inv.r, 0.4) {
                // subprocess.run(..., shell=True)
                let cmd = args.join(" ");
                inv.proc(
                    "/bin/sh",
                    &["/bin/sh", "-c", cmd.as_str()],
                    f.runtime_exe,
                    Some(0.65),
                );
                inv.proc("/usr/bin/gs", &args, "/bin/sh", Some(0.651));
            } else {
                inv.proc("/usr/bin/gs", &args, f.runtime_exe, Some(0.65));
            }
            if ok {
                inv.file(&pdf, "read", Some(0.9));
                let denied = chance(inv.r, 0.05);
                let bucket = if denied {
                    "acme-finance-archive"
                } else {
                    "acme-reports"
                };
                let arn = format!("arn:aws:s3:::{bucket}/daily/{run}.pdf");
                inv.api(
                    "s3",
                    "PutObject",
                    Some(&arn),
                    denied.then_some("AccessDenied"),
                    Some(0.93),
                );
            }
        }
        Kind::EmailSender => {
            if chance(inv.r, 0.2) {
                let t = *pick(inv.r, &["receipt", "welcome", "reset-password", "invoice"]);
                inv.file(&format!("/var/task/templates/{t}.html"), "read", Some(0.05));
            }
            if chance(inv.r, 0.5) {
                let arn = format!("arn:aws:dynamodb:{reg}:{acct}:table/email-preferences");
                inv.api("dynamodb", "GetItem", Some(&arn), None, Some(0.1));
            }
            inv.lookup_and_connect(
                &format!("email.{reg}.amazonaws.com"),
                p_dns,
                0.4,
                (2500, 30_000),
                (400, 900),
                443,
                None,
            );
            let err = chance(inv.r, 0.01).then_some("Throttling");
            inv.api(
                "ses",
                "SendEmail",
                Some(&format!(
                    "arn:aws:ses:{reg}:{acct}:identity/mail.acme.example"
                )),
                err,
                None,
            );
            if chance(inv.r, 0.04) {
                inv.lookup_and_connect(
                    "hooks.slack.com",
                    0.6,
                    1.0,
                    (700, 1600),
                    (200, 400),
                    443,
                    None,
                );
            }
        }
        Kind::SearchIndexer => {
            let host = "search-acme-products-4fj2k8xq1z.us-east-1.es.amazonaws.com";
            if cold {
                // the JVM sizes itself from the cgroup
                inv.file("/proc/self/cgroup", "read", Some(0.0));
                inv.file("/proc/self/mountinfo", "read", Some(0.0));
                let n = int(inv.r, 8, 30);
                inv.file(
                    &format!("/tmp/hsperfdata_sbx_user1051/{n}"),
                    "create",
                    Some(0.0),
                );
            }
            inv.lookup_and_connect(host, p_dns, 0.5, (6000, 260_000), (600, 4000), 443, None);
            inv.api(
                "es",
                "ESHttpPost",
                Some(&format!("arn:aws:es:{reg}:{acct}:domain/acme-products")),
                None,
                Some(0.5),
            );
            if cold {
                // the JVM asks for both address families on its first lookup
                inv.dns(host, Some(0.01), "AAAA", "NOERROR", None);
            }
        }
        Kind::WebhookRelay => {
            if chance(inv.r, 0.004) {
                // a customer endpoint whose domain lapsed
                inv.dns(
                    "hooks.retired-customer.example",
                    Some(0.2),
                    "A",
                    "NXDOMAIN",
                    None,
                );
            } else {
                let target = *weighted(
                    inv.r,
                    &[(0u8, 0.40), (1, 0.18), (2, 0.17), (3, 0.13), (4, 0.12)],
                );
                let host = match target {
                    0 => "hooks.slack.com".to_string(),
                    1 => "api.github.com".to_string(),
                    2 => inv.cdn_host(0.08),
                    3 => "hooks.zapier.com".to_string(),
                    _ => inv.apigw_host(0.08),
                };
                inv.lookup_and_connect(&host, 0.6, 0.95, (900, 5200), (150, 1200), 443, None);
            }
            if cold || chance(inv.r, 0.2) {
                let arn = format!(
                    "arn:aws:secretsmanager:{reg}:{acct}:secret:prod/webhook-signing-Qm41aZ"
                );
                inv.api("secretsmanager", "GetSecretValue", Some(&arn), None, None);
            }
            if chance(inv.r, 0.5) {
                // every delivered webhook is archived, in batches
                let day = date(inv.t0 as i64);
                let id = uuid(inv.r);
                inv.api(
                    "s3",
                    "PutObject",
                    Some(&format!(
                        "arn:aws:s3:::acme-webhook-archive/{day}/{id}.json"
                    )),
                    None,
                    None,
                );
            }
        }
        Kind::QueryRunner => {
            if cold || chance(inv.r, 0.03) {
                let arn =
                    format!("arn:aws:secretsmanager:{reg}:{acct}:secret:prod/warehouse-ro-7Hq2Lm");
                inv.api(
                    "secretsmanager",
                    "GetSecretValue",
                    Some(&arn),
                    None,
                    Some(0.02),
                );
            }
            if chance(inv.r, 0.75) {
                let db = "warehouse.cluster-ro-c7k2m9p4q1x8.us-east-1.rds.amazonaws.com";
                inv.lookup_and_connect(db, p_dns, 1.0, (600, 6000), (2000, 3_000_000), 5432, None);
            } else {
                inv.lookup_and_connect(
                    &format!("athena.{reg}.amazonaws.com"),
                    p_dns,
                    0.8,
                    (1500, 4000),
                    (2000, 60_000),
                    443,
                    None,
                );
                let wg = format!("arn:aws:athena:{reg}:{acct}:workgroup/analysts");
                inv.api("athena", "StartQueryExecution", Some(&wg), None, Some(0.05));
                inv.api("athena", "GetQueryExecution", Some(&wg), None, Some(0.4));
                if ok {
                    inv.api("athena", "GetQueryResults", Some(&wg), None, Some(0.8));
                    if chance(inv.r, 0.5) {
                        let id = uuid(inv.r);
                        inv.api(
                            "s3",
                            "GetObject",
                            Some(&format!("arn:aws:s3:::acme-athena-results/{id}.csv")),
                            None,
                            Some(0.85),
                        );
                    }
                }
            }
            if ok && chance(inv.r, 0.15) {
                let tmp = tmpname(inv);
                inv.file(&format!("/tmp/{tmp}.csv"), "write", Some(0.9));
            }
        }
        Kind::TemplatePreview => {
            if chance(inv.r, 0.7) {
                inv.api(
                    "dynamodb",
                    "GetItem",
                    Some(&format!("arn:aws:dynamodb:{reg}:{acct}:table/templates")),
                    None,
                    None,
                );
                inv.lookup_and_connect(&ddb, p_dns, 0.3, (700, 1800), (600, 6000), 443, None);
            }
            if chance(inv.r, 0.4) {
                let name = *pick(
                    inv.r,
                    &[
                        "receipt",
                        "welcome",
                        "cart-reminder",
                        "invoice",
                        "newsletter",
                    ],
                );
                inv.api(
                    "s3",
                    "GetObject",
                    Some(&format!("arn:aws:s3:::acme-email-templates/{name}.hbs")),
                    None,
                    None,
                );
            }
            if chance(inv.r, 0.3) {
                let part = *pick(inv.r, &["header", "footer", "button", "product-card"]);
                inv.file(&format!("/var/task/partials/{part}.hbs"), "read", Some(0.1));
            }
            if chance(inv.r, 0.35) {
                let host = inv.cdn_host(0.08);
                inv.lookup_and_connect(&host, 0.5, 0.9, (300, 900), (2000, 300_000), 443, None);
            }
        }
        Kind::PdfRender => {
            let job = token(inv.r, 10, ALNUM);
            let (host, bucket) = if chance(inv.r, 0.6) {
                let h = inv.bucket_host(0.08);
                let b = h.split('.').next().unwrap_or("tenant-docs").to_string();
                (h, b)
            } else {
                (
                    "acme-render-input.s3.us-east-1.amazonaws.com".to_string(),
                    "acme-render-input".to_string(),
                )
            };
            inv.lookup_and_connect(&host, 0.5, 0.95, (500, 1200), (20_000, 900_000), 443, None);
            inv.api(
                "s3",
                "GetObject",
                Some(&format!("arn:aws:s3:::{bucket}/jobs/{job}.html")),
                None,
                Some(0.05),
            );
            let html = format!("/tmp/{job}.html");
            let pdf = format!("/tmp/{job}.pdf");
            inv.file(&html, "write", Some(0.1));
            if chance(inv.r, 0.4) {
                let cdn = inv.cdn_host(0.08);
                inv.lookup_and_connect(&cdn, 0.5, 0.9, (300, 900), (5000, 400_000), 443, None);
            }
            if chance(inv.r, 0.7) {
                let mut args: Vec<String> = vec!["wkhtmltopdf".into(), "--quiet".into()];
                args.push("--page-size".into());
                args.push(pick(inv.r, &["A4", "Letter"]).to_string());
                if chance(inv.r, 0.3) {
                    args.push("--orientation".into());
                    args.push("Landscape".into());
                }
                if chance(inv.r, 0.5) {
                    args.push("--margin-top".into());
                    args.push(format!("{}mm", int(inv.r, 5, 25)));
                }
                if chance(inv.r, 0.3) {
                    args.push("--dpi".into());
                    args.push(pick(inv.r, &["150", "300"]).to_string());
                }
                if chance(inv.r, 0.4) {
                    args.push("--print-media-type".into());
                }
                args.push(html.clone());
                args.push(pdf.clone());
                inv.proc("/opt/bin/wkhtmltopdf", &args, f.runtime_exe, Some(0.2));
            } else {
                let mut args: Vec<String> = vec![
                    "chromium".into(),
                    "--headless=new".into(),
                    "--no-sandbox".into(),
                    "--disable-gpu".into(),
                    "--single-process".into(),
                ];
                if chance(inv.r, 0.5) {
                    args.push(format!(
                        "--virtual-time-budget={}",
                        pick(inv.r, &[2000, 5000, 10000])
                    ));
                }
                args.push(format!("--print-to-pdf={pdf}"));
                args.push(format!("file://{html}"));
                inv.proc("/opt/chromium/chromium", &args, f.runtime_exe, Some(0.2));
            }
            if ok {
                inv.file(&pdf, "read", Some(0.85));
                let day = date(inv.t0 as i64);
                let id = uuid(inv.r);
                inv.api(
                    "s3",
                    "PutObject",
                    Some(&format!("arn:aws:s3:::acme-rendered/{day}/{id}.pdf")),
                    None,
                    Some(0.9),
                );
                inv.api(
                    "dynamodb",
                    "UpdateItem",
                    Some(&format!("arn:aws:dynamodb:{reg}:{acct}:table/render-jobs")),
                    None,
                    Some(0.93),
                );
                inv.lookup_and_connect(&ddb, p_dns, 0.4, (600, 1500), (300, 900), 443, None);
            }
        }
        Kind::NightlyCleanup => {
            let sessions = format!("arn:aws:dynamodb:{reg}:{acct}:table/sessions");
            inv.lookup_and_connect(
                &ddb,
                0.9,
                1.0,
                (5000, 200_000),
                (50_000, 5_000_000),
                443,
                None,
            );
            inv.api("dynamodb", "Scan", Some(&sessions), None, Some(0.05));
            for _ in 0..int(inv.r, 3, 12) {
                let at = 0.1 + unif(inv.r) * 0.5;
                inv.api(
                    "dynamodb",
                    "BatchWriteItem",
                    Some(&sessions),
                    None,
                    Some(at),
                );
            }
            inv.lookup_and_connect(
                "acme-uploads.s3.amazonaws.com",
                0.9,
                1.0,
                (3000, 90_000),
                (20_000, 2_000_000),
                443,
                None,
            );
            for bucket in ["acme-uploads", "acme-thumbnails"] {
                let at = 0.6 + unif(inv.r) * 0.1;
                inv.api(
                    "s3",
                    "ListObjectsV2",
                    Some(&format!("arn:aws:s3:::{bucket}")),
                    None,
                    Some(at),
                );
                for _ in 0..int(inv.r, 1, 5) {
                    let at = 0.7 + unif(inv.r) * 0.25;
                    inv.api(
                        "s3",
                        "DeleteObjects",
                        Some(&format!("arn:aws:s3:::{bucket}")),
                        None,
                        Some(at),
                    );
                }
            }
            let day = date(inv.t0 as i64);
            inv.file(&format!("/tmp/cleanup-{day}.log"), "write", Some(0.97));
        }
    }
}

/// The new dependency a deploy introduced, used by a share of invocations.
pub fn new_dependency(inv: &mut Inv<'_>, cold: bool) {
    let Some(dep) = inv.st.new_dep.clone() else {
        return;
    };
    if !chance(inv.r, 0.65) {
        return;
    }
    inv.used_new_dep = true;
    let p_dns = if cold { 0.9 } else { 0.45 };
    inv.lookup_and_connect(&dep.host, p_dns, 1.0, (600, 4000), (200, 1200), 443, None);
    if let Some((service, action, resource)) = &dep.action
        && chance(inv.r, 0.3)
    {
        inv.api(service, action, Some(resource), None, None);
    }
}
