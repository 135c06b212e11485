//! Anomaly reports: for a window, the saved queries of `queries/reports/`
//! run over the lake, rendered as self-contained HTML (inline CSS and SVG
//! charts), Markdown and JSON — the same data in each.
//!
//! Start at [`build`] (runs the queries into a [`Report`]), then
//! [`html::render`], [`markdown::render`] and [`Report::to_json`].

mod charts;
pub mod html;
pub mod markdown;

use std::collections::BTreeMap;

use arrow::array::RecordBatch;
use fnwatch_ingest::alerts::rfc3339_us;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::{AnalyticsError, Result};
use crate::params::substitute;
use crate::session::LakeSession;

/// The report's queries, compiled in from `queries/reports/` (name, SQL).
pub const QUERIES: [(&str, &str); 13] = [
    (
        "volume",
        include_str!("../../../queries/reports/volume.sql"),
    ),
    (
        "invocations_by_hour",
        include_str!("../../../queries/reports/invocations_by_hour.sql"),
    ),
    (
        "alerts_by_hour",
        include_str!("../../../queries/reports/alerts_by_hour.sql"),
    ),
    (
        "alerts_by_kind",
        include_str!("../../../queries/reports/alerts_by_kind.sql"),
    ),
    (
        "alerts_by_function",
        include_str!("../../../queries/reports/alerts_by_function.sql"),
    ),
    (
        "top_findings",
        include_str!("../../../queries/reports/top_findings.sql"),
    ),
    (
        "drift_new_domains",
        include_str!("../../../queries/reports/drift_new_domains.sql"),
    ),
    (
        "drift_new_processes",
        include_str!("../../../queries/reports/drift_new_processes.sql"),
    ),
    (
        "drift_new_peers",
        include_str!("../../../queries/reports/drift_new_peers.sql"),
    ),
    (
        "timeouts_errors",
        include_str!("../../../queries/reports/timeouts_errors.sql"),
    ),
    (
        "least_privilege",
        include_str!("../../../queries/reports/least_privilege.sql"),
    ),
    (
        "top_domains",
        include_str!("../../../queries/reports/top_domains.sql"),
    ),
    (
        "pipeline_health",
        include_str!("../../../queries/reports/pipeline_health.sql"),
    ),
];

/// The period a report covers.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Period {
    /// Start (inclusive), microseconds since the epoch.
    pub from_us: i64,
    /// End (exclusive).
    pub to_us: i64,
    /// Start of the baseline the drift sections compare with (it ends at `from`).
    pub baseline_from_us: i64,
}

/// One section: a query's columns and rows.
#[derive(Debug, Clone, Serialize)]
pub struct Section {
    pub columns: Vec<String>,
    pub rows: Vec<Map<String, Value>>,
}

impl Section {
    /// A cell as a number (0 when absent or not a number).
    pub fn num(&self, row: usize, col: &str) -> f64 {
        self.rows
            .get(row)
            .and_then(|r| r.get(col))
            .and_then(|v| {
                v.as_f64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            })
            .unwrap_or(0.0)
    }

    /// A cell as text ("" when absent).
    pub fn text(&self, row: usize, col: &str) -> String {
        match self.rows.get(row).and_then(|r| r.get(col)) {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
        }
    }
}

/// A built report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub title: String,
    pub from: String,
    pub to: String,
    pub baseline_from: String,
    pub generated_at: String,
    /// Whether the lake has an `alerts` table yet (`fnwatch detect` makes it).
    pub has_alerts: bool,
    pub sections: BTreeMap<String, Section>,
}

impl Report {
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.get(name)
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|_| "{}".into())
    }
}

/// Runs every report query for `period` over the session's lake.
pub async fn build(
    session: &LakeSession,
    period: Period,
    has_alerts: bool,
    generated_at_us: i64,
) -> Result<Report> {
    let params = [
        ("from".to_string(), rfc3339_us(period.from_us)),
        ("to".to_string(), rfc3339_us(period.to_us)),
        (
            "baseline_from".to_string(),
            rfc3339_us(period.baseline_from_us),
        ),
    ];
    let mut sections = BTreeMap::new();
    for (name, sql) in QUERIES {
        let used = crate::params::used(sql);
        let given: Vec<(String, String)> = params
            .iter()
            .filter(|(k, _)| used.contains(k))
            .cloned()
            .collect();
        let q = substitute(sql, &given, generated_at_us)?;
        let q = strip_comments(&q);
        let result = session
            .query(&q)
            .await
            .map_err(|e| AnalyticsError::SavedQuery {
                file: format!("queries/reports/{name}.sql"),
                message: e.to_string(),
            })?;
        let columns: Vec<String> = result
            .schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let rows = to_rows(&result.batches)?;
        sections.insert(name.to_string(), Section { columns, rows });
    }
    Ok(Report {
        title: "fnwatch report".into(),
        from: rfc3339_us(period.from_us),
        to: rfc3339_us(period.to_us),
        baseline_from: rfc3339_us(period.baseline_from_us),
        generated_at: rfc3339_us(generated_at_us),
        has_alerts,
        sections,
    })
}

fn strip_comments(sql: &str) -> String {
    let body: Vec<&str> = sql
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect();
    body.join("\n").trim().trim_end_matches(';').to_string()
}

/// Batches as JSON objects, nulls kept.
fn to_rows(batches: &[RecordBatch]) -> Result<Vec<Map<String, Value>>> {
    let mut buf = Vec::new();
    {
        let mut w = arrow::json::WriterBuilder::new()
            .with_explicit_nulls(true)
            .build::<_, arrow::json::writer::JsonArray>(&mut buf);
        for b in batches {
            w.write(b)
                .map_err(|e| AnalyticsError::Output(format!("report rows: {e}")))?;
        }
        w.finish()
            .map_err(|e| AnalyticsError::Output(format!("report rows: {e}")))?;
    }
    if buf.is_empty() {
        return Ok(Vec::new());
    }
    let v: Value = serde_json::from_slice(&buf)
        .map_err(|e| AnalyticsError::Output(format!("report rows: {e}")))?;
    Ok(match v {
        Value::Array(items) => items
            .into_iter()
            .filter_map(|i| match i {
                Value::Object(m) => Some(m),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    })
}
