//! Samples of triggering events (the `event` field of an invocation), and the
//! legitimate code-like content some functions receive: SQL for
//! `query-runner`, templates for `template-preview`.

use serde_json::{Map, Value, json};

use super::fleet::{FnSpec, Kind};
use super::util::{ALNUM, ALNUM_US, DIGITS, HEX, Rng, chance, int, pick, token, uuid};

const USER_AGENTS: &[&str] = &[
    "okhttp/4.12.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "python-requests/2.32.3",
    "acme-ios/5.14.2 (build 5140; iOS 18.1)",
    "axios/1.7.7",
    "Go-http-client/2.0",
];

const FIRST: &[&str] = &[
    "jdoe",
    "asmith",
    "m.garcia",
    "li.wei",
    "o'brien.k",
    "n.mueller",
    "priya.r",
    "tom_b",
    "sara.k",
    "ahmed.h",
];

fn headers(r: &mut Rng) -> Value {
    let mut h = Map::new();
    h.insert("user-agent".into(), Value::from(*pick(r, USER_AGENTS)));
    if chance(r, 0.5) {
        h.insert("content-type".into(), Value::from("application/json"));
    }
    if chance(r, 0.3) {
        h.insert("x-request-id".into(), Value::from(uuid(r)));
    }
    if chance(r, 0.2) {
        h.insert(
            "accept-language".into(),
            Value::from(*pick(
                r,
                &["en-US,en;q=0.9", "de-DE,de;q=0.8", "fr-FR", "ja-JP"],
            )),
        );
    }
    Value::Object(h)
}

fn apigw(
    r: &mut Rng,
    method: &str,
    path: &str,
    body: Option<Value>,
    query: Option<Value>,
) -> Value {
    let mut o = Map::new();
    o.insert("httpMethod".into(), Value::from(method));
    o.insert("path".into(), Value::from(path));
    o.insert("headers".into(), headers(r));
    if let Some(q) = query {
        o.insert("queryStringParameters".into(), q);
    }
    if let Some(b) = body {
        o.insert("body".into(), Value::from(b.to_string()));
    }
    Value::Object(o)
}

fn sku(r: &mut Rng) -> String {
    format!("{}-{}", pick(r, &["A", "B", "C", "K"]), int(r, 1, 2999))
}

/// A benign sample of the event that triggered an invocation of `f`.
pub fn benign(r: &mut Rng, f: &FnSpec, account: &str) -> Value {
    match f.kind {
        Kind::OrdersApi => {
            if chance(r, 0.3) {
                let id = format!("o-{}", int(r, 100_000, 999_999));
                let q = chance(r, 0.4)
                    .then(|| json!({"expand": pick(r, &["items", "shipping", "items,shipping"])}));
                return apigw(r, "GET", &format!("/orders/{id}"), None, q);
            }
            let mut body = json!({"sku": sku(r), "qty": int(r, 1, 5)});
            if chance(r, 0.2) {
                body["coupon"] =
                    Value::from(*pick(r, &["WINTER", "BF2026", "WELCOME10", "FREESHIP"]));
            }
            if chance(r, 0.15) {
                body["gift_note"] = Value::from(*pick(
                    r,
                    &[
                        "Happy birthday!",
                        "Merry Christmas, love M & J",
                        "Thanks for everything :)",
                        "Für dich",
                    ],
                ));
            }
            apigw(r, "POST", "/orders", Some(body), None)
        }
        Kind::AuthToken => {
            let body = if chance(r, 0.7) {
                json!({"username": pick(r, FIRST), "grant_type": "password"})
            } else {
                json!({"grant_type": "refresh_token", "refresh_token": token(r, 40, ALNUM)})
            };
            apigw(r, "POST", "/token", Some(body), None)
        }
        Kind::QueryRunner => {
            let mut body = json!({"sql": sql(r)});
            if chance(r, 0.5) {
                body["format"] = Value::from(*pick(r, &["csv", "json", "parquet"]));
            }
            if chance(r, 0.4) {
                body["limit"] = Value::from(*pick(r, &[100, 1000, 5000, 10000]));
            }
            if chance(r, 0.2) {
                body["workgroup"] = Value::from(*pick(r, &["analysts", "finance", "ops"]));
            }
            apigw(r, "POST", "/query", Some(body), None)
        }
        Kind::TemplatePreview => {
            let mut body = json!({"template": template(r)});
            if chance(r, 0.6) {
                body["data"] = json!({
                    "user": {"name": pick(r, &["Ana", "Bo", "Chen Li", "Dana O'Neil", "Émile"])},
                    "order": {"id": format!("o-{}", int(r, 100_000, 999_999)), "total": int(r, 5, 900)}
                });
            }
            if chance(r, 0.3) {
                body["engine"] = Value::from(*pick(r, &["handlebars", "nunjucks", "liquid"]));
            }
            apigw(r, "POST", "/templates/preview", Some(body), None)
        }
        Kind::BillingWorker => json!({"Records": [{"eventSource": "aws:sqs", "messageId": uuid(r),
            "body": json!({"invoice": format!("in_{}", token(r, 10, ALNUM_US)), "amount": int(r, 500, 90_000),
                           "currency": pick(r, &["usd", "eur", "gbp"])}).to_string()}]}),
        Kind::PdfRender => json!({"Records": [{"eventSource": "aws:sqs", "messageId": uuid(r),
            "body": json!({"job": format!("r-{}", token(r, 10, ALNUM)), "template": pick(r, &["invoice", "statement", "label", "packing-slip"]),
                           "page_size": pick(r, &["A4", "Letter"]), "locale": pick(r, &["en-US", "de-DE", "fr-FR"])}).to_string()}]}),
        Kind::Thumbnailer => {
            json!({"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "acme-uploads"},
            "object": {"key": format!("incoming/{}.{}", token(r, 12, HEX), pick(r, &["jpg", "jpg", "png", "webp"])),
                       "size": int(r, 80_000, 5_000_000)}}}]})
        }
        Kind::EmailSender => {
            json!({"Records": [{"EventSource": "aws:sns", "Sns": {"Subject": "outbound-email",
            "Message": json!({"template": pick(r, &["receipt", "welcome", "reset-password"]),
                              "to": format!("customer-{}@example.com", int(r, 1000, 99_999))}).to_string()}}]})
        }
        Kind::WebhookRelay => {
            json!({"source": "acme.orders", "detail-type": pick(r, &["OrderShipped", "OrderCreated", "RefundIssued"]),
            "detail": {"order": format!("o-{}", int(r, 100_000, 999_999)), "hook": pick(r, &["slack", "github", "zapier", "customer"])}})
        }
        Kind::SearchIndexer => json!({"Records": [{"eventName": pick(r, &["INSERT", "MODIFY"]),
            "dynamodb": {"Keys": {"sku": {"S": sku(r)}},
                         "NewImage": {"title": {"S": pick(r, &["Wool scarf", "Trail shoe 2", "Mug, 12oz", "USB-C cable (2 m)"])}}}}]}),
        Kind::ReportExport | Kind::NightlyCleanup => {
            let rule = if f.kind == Kind::ReportExport {
                "nightly-reports"
            } else {
                "nightly-cleanup"
            };
            json!({"source": "aws.events", "detail-type": "Scheduled Event",
                   "resources": [format!("arn:aws:events:us-east-1:{account}:rule/{rule}")]})
        }
    }
}

// ---- legitimate SQL ---------------------------------------------------------------

const TABLES: &[(&str, &[&str])] = &[
    ("sales", &["region", "total", "day", "channel", "sku"]),
    (
        "orders",
        &["order_id", "customer_id", "status", "created_at", "amount"],
    ),
    (
        "customers",
        &["customer_id", "country", "segment", "signup_date"],
    ),
    ("events", &["event_name", "user_id", "ts", "platform"]),
    ("inventory", &["sku", "warehouse", "on_hand", "updated_at"]),
    (
        "invoices",
        &["invoice_id", "customer_id", "due_date", "amount", "paid"],
    ),
];

fn day_literal(r: &mut Rng) -> String {
    format!("'2026-{:02}-{:02}'", int(r, 8, 11), int(r, 1, 28))
}

/// A realistic analyst query: quotes, comments, CTEs, unions, functions.
pub fn sql(r: &mut Rng) -> String {
    let (t, cols) = *pick(r, TABLES);
    let c1 = *pick(r, cols);
    let c2 = *pick(r, cols);
    match int(r, 0, 9) {
        0 => format!(
            "SELECT region, sum(total) FROM sales WHERE day >= {} GROUP BY region",
            day_literal(r)
        ),
        1 => format!(
            "SELECT {c1}, count(*) AS n FROM {t} WHERE {c2} IS NOT NULL GROUP BY {c1} ORDER BY n DESC LIMIT {}",
            pick(r, &[10, 20, 50, 100])
        ),
        2 => format!(
            "-- {}\nSELECT date_trunc('week', created_at) AS wk, sum(amount) FROM orders WHERE status = '{}' GROUP BY 1 ORDER BY 1",
            pick(r, &["weekly revenue", "ops dashboard", "asked by finance"]),
            pick(r, &["paid", "shipped", "refunded"])
        ),
        3 => format!(
            "WITH recent AS (SELECT * FROM orders WHERE created_at > now() - interval '{} days')\nSELECT c.country, count(*) FROM recent r JOIN customers c ON c.customer_id = r.customer_id GROUP BY c.country",
            int(r, 1, 90)
        ),
        4 => format!(
            "SELECT sku, on_hand FROM inventory WHERE warehouse IN ('{}', '{}') AND on_hand < {} /* low stock */",
            pick(r, &["FRA1", "IAD2", "DUB1"]),
            pick(r, &["SEA1", "NRT1", "GRU1"]),
            int(r, 5, 200)
        ),
        5 => format!(
            "SELECT 'eu' AS zone, count(*) FROM customers WHERE country IN ('DE','FR','IE')\nUNION ALL\nSELECT 'us', count(*) FROM customers WHERE country = 'US'{}",
            if chance(r, 0.5) { ";" } else { "" }
        ),
        6 => format!(
            "SELECT invoice_id, amount, CASE WHEN paid THEN 'paid' ELSE 'open' END AS state FROM invoices WHERE due_date < {} ORDER BY amount DESC",
            day_literal(r)
        ),
        7 => format!(
            "SELECT event_name, count(DISTINCT user_id) FROM events WHERE ts BETWEEN {} AND {} AND platform <> 'bot' GROUP BY event_name -- funnel",
            day_literal(r),
            day_literal(r)
        ),
        8 => format!(
            "SELECT customer_id, coalesce(segment, 'unknown') AS segment FROM customers WHERE signup_date >= {} AND segment LIKE '{}%'",
            day_literal(r),
            pick(r, &["smb", "ent", "mid"])
        ),
        _ => format!(
            "select o.order_id, o.amount from orders o where o.customer_id = '{}' and o.status != 'cancelled' order by o.created_at desc limit 25",
            format_args!("c-{}", int(r, 1000, 9999))
        ),
    }
}

// ---- legitimate templates ---------------------------------------------------------

/// A realistic email/page template (Handlebars / Nunjucks / Liquid).
pub fn template(r: &mut Rng) -> String {
    match int(r, 0, 7) {
        0 => "Hello {{ user.name }}, your order {{ order.id }} is on its way.".to_string(),
        1 => "Hi {{ user.name | default('there') }},\n{% if cart.items %}You left {{ cart.items | length }} items in your cart.{% endif %}".to_string(),
        2 => "<ul>{{#each items}}<li>{{this.name}} x {{this.qty}}</li>{{/each}}</ul>".to_string(),
        3 => format!(
            "{{% for item in order.items %}}{{{{ item.sku }}}}: {{{{ item.price * item.qty }}}} {}\n{{% endfor %}}Total: {{{{ order.total }}}}",
            pick(r, &["EUR", "USD", "GBP"])
        ),
        4 => "Dear {{ customer.first_name }},\n\nYour invoice {{ invoice.number }} of {{ invoice.amount | money }} is due on {{ invoice.due | date: \"%b %d\" }}.".to_string(),
        5 => format!(
            "{{{{#if user.vip}}}}Thanks for being a VIP, {{{{user.name}}}}!{{{{else}}}}Welcome back!{{{{/if}}}} Use code {} at checkout.",
            pick(r, &["WINTER", "THANKS15", "VIP2026"])
        ),
        6 => "{% raw %}{{ not_rendered }}{% endraw %} Your password reset link: {{ reset_url }} (valid for {{ ttl_minutes }} minutes)".to_string(),
        _ => format!(
            "<p style=\"color:#{}\">{{{{ headline }}}}</p>\n<!-- preview {} -->",
            token(r, 6, HEX),
            token(r, 4, DIGITS)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn samples_are_objects() {
        let mut r = Rng::seed_from_u64(3);
        for f in super::super::fleet::fleet("123456789012") {
            for _ in 0..20 {
                assert!(benign(&mut r, &f, "123456789012").is_object());
            }
        }
        let t = template(&mut r);
        assert!(t.contains("{{") || t.contains("{%"), "{t}");
    }
}
