//! Splunk HTTP Event Collector events: `{"time", "host", "source",
//! "sourcetype", "index"?, "event"}`, where `event` is the alert contract's
//! object or its OCSF rendering.

use serde_json::{Map, Value};

use super::{Format, Origin, ocsf};
use crate::sinks::alert::AlertRecord;

/// Where HEC events say they come from.
#[derive(Debug, Clone)]
pub struct HecMeta {
    pub source: String,
    pub sourcetype: String,
    pub index: Option<String>,
}

/// Appends one HEC event object (no newline).
pub fn hec_event(
    a: &AlertRecord,
    format: Format,
    meta: &HecMeta,
    origin: &Origin,
    out: &mut String,
) {
    let event = match format {
        Format::OcsfJson => ocsf(a, origin),
        _ => a.contract_json(),
    };
    let mut m = Map::new();
    // Seconds with millisecond precision, as HEC expects.
    let secs = (a.time_us.div_euclid(1000) as f64) / 1000.0;
    m.insert(
        "time".into(),
        serde_json::Number::from_f64(secs).map_or(Value::Null, Value::Number),
    );
    m.insert("host".into(), origin.host.clone().into());
    m.insert("source".into(), meta.source.clone().into());
    m.insert("sourcetype".into(), meta.sourcetype.clone().into());
    if let Some(i) = &meta.index {
        m.insert("index".into(), i.clone().into());
    }
    m.insert("event".into(), event);
    super::push_json_line(out, &Value::Object(m).to_string());
}
