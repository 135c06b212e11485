//! The report as one self-contained HTML page: inline CSS, inline SVG
//! charts, no scripts, no outside requests. Every value is escaped (function
//! names, domains and summaries are attacker-influenced).

use std::fmt::Write;

use super::{Report, Section, charts};

/// HTML text with `<`, `>`, `&`, `"` and `'` escaped.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

const CSS: &str = r#"
body{font-family:-apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0;background:#f5f6f8;color:#1f2937}
header{background:#111827;color:#f9fafb;padding:20px 32px}
header h1{margin:0 0 4px;font-size:22px}
header p{margin:0;color:#9ca3af;font-size:13px}
main{padding:16px 32px 40px;max-width:1100px}
section{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:16px 20px;margin:16px 0}
h2{font-size:17px;margin:0 0 10px}
h3{font-size:14px;margin:14px 0 6px;color:#374151}
.cards{display:flex;flex-wrap:wrap;gap:12px}
.card{flex:1 1 120px;background:#f9fafb;border:1px solid #e5e7eb;border-radius:6px;padding:10px 12px}
.card b{display:block;font-size:22px}
.card span{font-size:12px;color:#6b7280}
table{border-collapse:collapse;width:100%;font-size:13px}
th{text-align:left;background:#f3f4f6;font-weight:600}
th,td{padding:5px 8px;border-bottom:1px solid #eef0f3;vertical-align:top}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.sev{display:inline-block;padding:1px 7px;border-radius:10px;font-size:11px;font-weight:600;color:#fff}
.critical{background:#7f1d1d}.high{background:#dc2626}.medium{background:#d97706}.low{background:#6b7280}
.empty{color:#6b7280;font-style:italic}
.note{color:#6b7280;font-size:12px}
svg{max-width:100%;height:auto}
"#;

/// Renders the page.
pub fn render(r: &Report) -> String {
    let mut h = String::with_capacity(64 * 1024);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{CSS}</style></head><body>",
        esc(&format!("{} {} – {}", r.title, r.from, r.to))
    );
    let _ = write!(
        h,
        "<header><h1>{}</h1><p>{} to {} (UTC) · baseline from {} · generated {}</p></header><main>",
        esc(&r.title),
        esc(&r.from),
        esc(&r.to),
        esc(&r.baseline_from),
        esc(&r.generated_at)
    );
    overview(&mut h, r);
    alerts(&mut h, r);
    drift(&mut h, r);
    reliability(&mut h, r);
    privilege(&mut h, r);
    domains(&mut h, r);
    health(&mut h, r);
    h.push_str("</main></body></html>\n");
    h
}

fn card(h: &mut String, value: &str, label: &str) {
    let _ = write!(
        h,
        "<div class=\"card\"><b>{}</b><span>{}</span></div>",
        esc(value),
        esc(label)
    );
}

fn overview(h: &mut String, r: &Report) {
    h.push_str("<section><h2>At a glance</h2><div class=\"cards\">");
    if let Some(v) = r.section("volume") {
        card(h, &fmt_num(v.num(0, "invocations")), "invocations");
        card(h, &fmt_num(v.num(0, "functions")), "functions");
        card(
            h,
            &fmt_num((v.num(0, "billed_gb_s") * 10.0).round() / 10.0),
            "billed GB-s",
        );
        card(h, &fmt_num(v.num(0, "errors")), "errors");
        card(h, &fmt_num(v.num(0, "timeouts")), "timeouts");
        card(h, &fmt_num(v.num(0, "cold_starts")), "cold starts");
    }
    if let Some(k) = r.section("alerts_by_kind") {
        let serious: f64 = (0..k.rows.len())
            .map(|i| k.num(i, "critical") + k.num(i, "high") + k.num(i, "medium"))
            .sum();
        card(h, &fmt_num(serious), "alerts, medium or worse");
    }
    if let Some(p) = r.section("pipeline_health") {
        card(
            h,
            &fmt_num(p.num(0, "dead_letters")),
            "dead-lettered records",
        );
    }
    h.push_str("</div>");
    if let Some(s) = r.section("invocations_by_hour") {
        let (from, to) = (parse_us(&r.from), parse_us(&r.to));
        let hours: Vec<i64> = (0..s.rows.len())
            .map(|i| parse_us(&s.text(i, "hour")))
            .collect();
        let col = |c: &str| (0..s.rows.len()).map(|i| s.num(i, c)).collect::<Vec<f64>>();
        h.push_str(&charts::time_series(
            "Invocations per hour",
            from,
            to,
            &hours,
            &[("invocations", col("invocations"))],
        ));
        h.push_str(&charts::time_series(
            "Errors and timeouts per hour",
            from,
            to,
            &hours,
            &[("errors", col("errors")), ("timeouts", col("timeouts"))],
        ));
    }
    h.push_str("</section>");
}

fn alerts(h: &mut String, r: &Report) {
    h.push_str("<section><h2>Alerts</h2>");
    if !r.has_alerts {
        h.push_str("<p class=\"empty\">The lake holds no alerts: run <code>fnwatch train</code> and <code>fnwatch detect</code> first.</p></section>");
        return;
    }
    if let Some(s) = r.section("alerts_by_hour")
        && !s.rows.is_empty()
    {
        let hours: Vec<i64> = (0..s.rows.len())
            .map(|i| parse_us(&s.text(i, "hour")))
            .collect();
        let col = |c: &str| (0..s.rows.len()).map(|i| s.num(i, c)).collect::<Vec<f64>>();
        h.push_str(&charts::time_series(
            "Alerts per hour",
            parse_us(&r.from),
            parse_us(&r.to),
            &hours,
            &[
                ("medium or worse", col("medium_or_worse")),
                ("all", col("alerts")),
            ],
        ));
    }
    h.push_str("<h3>By kind and severity</h3>");
    if let Some(s) = r.section("alerts_by_kind") {
        table(h, s, 50);
    }
    if let Some(s) = r.section("alerts_by_function")
        && !s.rows.is_empty()
    {
        let labels: Vec<String> = (0..s.rows.len()).map(|i| s.text(i, "function")).collect();
        let values: Vec<f64> = (0..s.rows.len())
            .map(|i| s.num(i, "medium_or_worse"))
            .collect();
        h.push_str(&charts::bars(
            "Functions with most alerts (medium or worse)",
            &labels,
            &values,
        ));
    }
    h.push_str("<h3>Top findings</h3>");
    match r.section("top_findings") {
        Some(s) if !s.rows.is_empty() => {
            h.push_str("<table><tr><th>time</th><th>severity</th><th>kind</th><th>function</th><th>what happened</th></tr>");
            for i in 0..s.rows.len() {
                let sev = s.text(i, "severity");
                let class = match sev.as_str() {
                    "critical" | "high" | "medium" | "low" => sev.as_str(),
                    _ => "low",
                };
                let _ = write!(
                    h,
                    "<tr><td>{}</td><td><span class=\"sev {class}\">{}</span></td><td>{}</td><td>{}</td><td>{}<br><span class=\"note\">alert {}</span></td></tr>",
                    esc(&s.text(i, "time")),
                    esc(&sev),
                    esc(&s.text(i, "kind")),
                    esc(&s.text(i, "function")),
                    esc(&s.text(i, "summary")),
                    esc(&s.text(i, "id")),
                );
            }
            h.push_str("</table>");
        }
        _ => h.push_str(
            "<p class=\"empty\">No alerts of medium severity or worse in this window.</p>",
        ),
    }
    h.push_str("</section>");
}

fn drift(h: &mut String, r: &Report) {
    let _ = write!(
        h,
        "<section><h2>Behaviour drift</h2><p class=\"note\">What functions did in this window that they never did between {} and {}.</p>",
        esc(&r.baseline_from),
        esc(&r.from)
    );
    for (name, title) in [
        ("drift_new_domains", "New domains"),
        ("drift_new_processes", "New processes"),
        ("drift_new_peers", "New network peers"),
    ] {
        let _ = write!(h, "<h3>{title}</h3>");
        if let Some(s) = r.section(name) {
            table(h, s, 50);
        }
    }
    h.push_str("</section>");
}

fn reliability(h: &mut String, r: &Report) {
    h.push_str("<section><h2>Timeouts and errors</h2>");
    if let Some(s) = r.section("timeouts_errors") {
        table(h, s, 20);
    }
    h.push_str("</section>");
}

fn privilege(h: &mut String, r: &Report) {
    h.push_str("<section><h2>Least privilege</h2><p class=\"note\">Roles that grant actions their function has not used.</p>");
    if let Some(s) = r.section("least_privilege") {
        table(h, s, 50);
    }
    h.push_str("</section>");
}

fn domains(h: &mut String, r: &Report) {
    h.push_str("<section><h2>Most resolved domains</h2>");
    if let Some(s) = r.section("top_domains") {
        if !s.rows.is_empty() {
            let labels: Vec<String> = (0..s.rows.len()).map(|i| s.text(i, "domain")).collect();
            let values: Vec<f64> = (0..s.rows.len()).map(|i| s.num(i, "lookups")).collect();
            h.push_str(&charts::bars(
                "DNS lookups by registrable domain",
                &labels,
                &values,
            ));
        }
        table(h, s, 20);
    }
    h.push_str("</section>");
}

fn health(h: &mut String, r: &Report) {
    h.push_str("<section><h2>Pipeline health</h2><p class=\"note\">Ingest lag is the time from an event to its arrival in the lake.</p>");
    if let Some(s) = r.section("pipeline_health") {
        table(h, s, 5);
    }
    h.push_str("</section>");
}

/// A section as a table (at most `max` rows).
fn table(h: &mut String, s: &Section, max: usize) {
    if s.rows.is_empty() {
        h.push_str("<p class=\"empty\">Nothing in this window.</p>");
        return;
    }
    h.push_str("<table><tr>");
    for c in &s.columns {
        let _ = write!(h, "<th>{}</th>", esc(c));
    }
    h.push_str("</tr>");
    for i in 0..s.rows.len().min(max) {
        h.push_str("<tr>");
        for c in &s.columns {
            let v = s.rows[i].get(c);
            let numeric = v.is_some_and(serde_json::Value::is_number);
            let _ = write!(
                h,
                "<td{}>{}</td>",
                if numeric { " class=\"n\"" } else { "" },
                esc(&s.text(i, c))
            );
        }
        h.push_str("</tr>");
    }
    h.push_str("</table>");
    if s.rows.len() > max {
        let _ = write!(
            h,
            "<p class=\"note\">{} more rows in the JSON report.</p>",
            s.rows.len() - max
        );
    }
}

/// `1234567` → `1,234,567` (integers), else one decimal; `NaN`, `∞` and
/// `-∞` as such (they have no digits to group).
pub fn fmt_num(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "∞".into() } else { "-∞".into() };
    }
    if v.fract() != 0.0 {
        let whole = fmt_num(v.trunc());
        return format!(
            "{whole}.{}",
            ((v.fract().abs() * 10.0).round() as i64).min(9)
        );
    }
    let s = format!("{}", v as i64);
    let (sign, digits) = s.strip_prefix('-').map_or(("", s.as_str()), |d| ("-", d));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    format!("{sign}{out}")
}

/// A timestamp text of the rows (RFC 3339-ish) in microseconds.
fn parse_us(s: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_micros())
        .or_else(|_| {
            chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
                .map(|t| t.and_utc().timestamp_micros())
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod fmt_tests {
    use super::fmt_num;

    #[test]
    fn numbers_group_and_non_finite_ones_end() {
        assert_eq!(fmt_num(1_234_567.0), "1,234,567");
        assert_eq!(fmt_num(-1234.25), "-1,234.3");
        // These recursed until the stack overflowed.
        assert_eq!(fmt_num(f64::NAN), "NaN");
        assert_eq!(fmt_num(f64::INFINITY), "∞");
        assert_eq!(fmt_num(f64::NEG_INFINITY), "-∞");
    }
}
