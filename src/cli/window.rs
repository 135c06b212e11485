//! Time windows for `--from`/`--to`: RFC 3339 (`2026-11-04T00:00:00Z`), a
//! date (`2026-11-04`, midnight UTC), `now`, or relative to now (`-24h`,
//! `-7d`, `-30m`, `-90s`, `-2w`).

use anyhow::{Context, bail};
use chrono::{DateTime, NaiveDate, Utc};

/// "Now", overridable with `FNWATCH_NOW` (RFC 3339) so runs can be replayed.
pub fn now() -> anyhow::Result<DateTime<Utc>> {
    match std::env::var("FNWATCH_NOW") {
        Ok(v) => parse_abs(&v).with_context(|| format!("FNWATCH_NOW=`{v}`")),
        Err(_) => Ok(Utc::now()),
    }
}

fn parse_abs(s: &str) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d")
        && let Some(t) = d.and_hms_opt(0, 0, 0)
    {
        return Ok(t.and_utc());
    }
    bail!(
        "`{s}` is not a time: use RFC 3339 (2026-11-04T00:00:00Z), a date (2026-11-04), now, or a relative time (-24h, -7d)"
    )
}

/// Parses one bound of a window.
pub fn parse_time(s: &str, now: DateTime<Utc>) -> anyhow::Result<DateTime<Utc>> {
    let s = s.trim();
    if s == "now" {
        return Ok(now);
    }
    if let Some(rel) = s.strip_prefix('-') {
        let (num, unit) =
            rel.split_at(rel.find(|c: char| !c.is_ascii_digit()).unwrap_or(rel.len()));
        let n: i64 = num
            .parse()
            .with_context(|| format!("`{s}`: expected a number before the unit, as in -24h"))?;
        let secs = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            "w" => 7 * 86_400,
            _ => bail!("`{s}`: unknown unit `{unit}` (valid: s, m, h, d, w)"),
        };
        return chrono::TimeDelta::try_seconds(n.saturating_mul(secs))
            .and_then(|d| now.checked_sub_signed(d))
            .with_context(|| format!("`{s}` reaches before the start of time"));
    }
    parse_abs(s)
}

/// A half-open window [from, to).
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl Window {
    pub fn parse(from: &str, to: &str) -> anyhow::Result<Window> {
        let now = now()?;
        let w = Window {
            from: parse_time(from, now).context("--from")?,
            to: parse_time(to, now).context("--to")?,
        };
        if w.from >= w.to {
            bail!(
                "the window is empty: --from {} is not before --to {}",
                w.start_text(),
                w.end_text()
            );
        }
        Ok(w)
    }

    pub fn start_text(&self) -> String {
        self.from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    }

    pub fn end_text(&self) -> String {
        self.to.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    }

    /// The query that reads the window's events for the models.
    pub fn events_sql(&self, columns: &[&str]) -> String {
        let cols: Vec<String> = columns.iter().map(|c| format!("\"{c}\"")).collect();
        format!(
            "SELECT {} FROM events WHERE type <> 'log' \
             AND date >= '{}' AND date <= '{}' \
             AND time >= TIMESTAMP '{}' AND time < TIMESTAMP '{}'",
            cols.join(", "),
            self.from.format("%Y-%m-%d"),
            self.to.format("%Y-%m-%d"),
            self.from.format("%Y-%m-%dT%H:%M:%S%.6fZ"),
            self.to.format("%Y-%m-%dT%H:%M:%S%.6fZ"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_and_absolute_times() {
        let now = parse_abs("2026-11-24T12:00:00Z").unwrap();
        assert_eq!(
            parse_time("-24h", now).unwrap(),
            parse_abs("2026-11-23T12:00:00Z").unwrap()
        );
        assert_eq!(
            parse_time("-7d", now).unwrap(),
            parse_abs("2026-11-17T12:00:00Z").unwrap()
        );
        assert_eq!(parse_time("now", now).unwrap(), now);
        assert_eq!(
            parse_time("2026-11-04", now).unwrap(),
            parse_abs("2026-11-04T00:00:00Z").unwrap()
        );
        assert_eq!(
            parse_time("2026-11-04T01:00:00+01:00", now).unwrap(),
            parse_abs("2026-11-04T00:00:00Z").unwrap()
        );
        let e = parse_time("-3y", now).unwrap_err().to_string();
        assert!(e.contains("unknown unit"), "{e}");
        assert!(parse_time("yesterday", now).is_err());
        assert!(parse_time("-99999999999999999d", now).is_err());
    }
}
