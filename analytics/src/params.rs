//! Named parameters of saved queries: `${name}` in the SQL, defaults declared
//! in the file's header as `-- @param name = value  what it means`, values
//! from `--param name=value`. Relative times (`-7d`, `-24h`, `-30m`, `-2w`)
//! become RFC 3339 UTC timestamps; numbers are inserted as they are; anything
//! else becomes a quoted SQL string.

use std::collections::BTreeMap;

use crate::error::{AnalyticsError, Result};

/// A parameter declared in a query file's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamDecl {
    pub name: String,
    pub default: String,
    pub doc: String,
}

/// The `-- @param name = value  doc` lines of a query file.
pub fn declared(sql: &str) -> Vec<ParamDecl> {
    sql.lines()
        .filter_map(|l| l.trim().strip_prefix("-- @param "))
        .filter_map(|rest| {
            let (name, rest) = rest.split_once('=')?;
            let rest = rest.trim();
            let (default, doc) = match rest.split_once("  ") {
                Some((v, d)) => (v.trim(), d.trim()),
                None => (rest, ""),
            };
            Some(ParamDecl {
                name: name.trim().to_string(),
                default: default.to_string(),
                doc: doc.to_string(),
            })
        })
        .collect()
}

/// The `${name}` placeholders used in the SQL, in order of first use.
pub fn used(sql: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut rest = sql;
    while let Some(i) = rest.find("${") {
        let after = &rest[i + 2..];
        match after.find('}') {
            Some(j) => {
                let name = after[..j].trim().to_string();
                if !out.contains(&name) {
                    out.push(name);
                }
                rest = &after[j + 1..];
            }
            None => break,
        }
    }
    out
}

/// Parses `-7d`-style offsets into microseconds.
fn relative_us(v: &str) -> Option<i64> {
    let body = v.strip_prefix('-')?;
    let (num, unit) = body.split_at(body.find(|c: char| !c.is_ascii_digit())?);
    let n: i64 = num.parse().ok()?;
    let unit_us: i64 = match unit {
        "s" => 1_000_000,
        "m" => 60_000_000,
        "h" => 3_600_000_000,
        "d" => 86_400_000_000,
        "w" => 604_800_000_000,
        _ => return None,
    };
    n.checked_mul(unit_us).map(|us| -us)
}

/// The SQL text a value stands for.
fn literal(value: &str, now_us: i64) -> String {
    if let Some(offset) = relative_us(value) {
        let t = chrono::DateTime::from_timestamp_micros(now_us + offset).unwrap_or_default();
        return format!("'{}'", t.format("%Y-%m-%dT%H:%M:%S%.6fZ"));
    }
    if !value.is_empty() && value.parse::<f64>().is_ok() && !value.starts_with('+') {
        return value.to_string();
    }
    format!("'{}'", value.replace('\'', "''"))
}

/// Replaces every `${name}` with its value: given ones first, then the
/// file's defaults. Unknown or missing parameters are errors that list what
/// the query takes.
pub fn substitute(sql: &str, given: &[(String, String)], now_us: i64) -> Result<String> {
    let decls = declared(sql);
    let used = used(sql);
    let mut values: BTreeMap<String, String> = decls
        .iter()
        .map(|d| (d.name.clone(), d.default.clone()))
        .collect();
    for (k, v) in given {
        if !used.contains(k) {
            return Err(AnalyticsError::Sql {
                message: format!(
                    "parameter `{k}` is not used by the query (it takes: {})",
                    if used.is_empty() {
                        "none".to_string()
                    } else {
                        used.join(", ")
                    }
                ),
                context: String::new(),
            });
        }
        values.insert(k.clone(), v.clone());
    }
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let Some(j) = after.find('}') else {
            out.push_str(&rest[i..]);
            rest = "";
            break;
        };
        let name = after[..j].trim();
        let value = values.get(name).ok_or_else(|| AnalyticsError::Sql {
            message: format!("the query needs parameter `{name}`: give --param {name}=VALUE"),
            context: String::new(),
        })?;
        out.push_str(&literal(value, now_us));
        rest = &after[j + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_428_000_000_000; // 2026-11-23T10:00:00Z

    #[test]
    fn defaults_given_values_and_relative_times() {
        let sql = "-- @param since = -7d  start of the window\n-- @param min = 3\nSELECT * FROM dns WHERE time >= ${since} AND n >= ${min} AND f = ${who}";
        assert_eq!(used(sql), vec!["since", "min", "who"]);
        assert_eq!(declared(sql)[0].doc, "start of the window");
        let out = substitute(sql, &[("who".into(), "o'brien".into())], NOW).expect("ok");
        assert!(
            out.ends_with("time >= '2026-11-16T10:00:00.000000Z' AND n >= 3 AND f = 'o''brien'"),
            "{out}"
        );
        let out = substitute(
            sql,
            &[
                ("who".into(), "x".into()),
                ("since".into(), "2026-11-01T00:00:00Z".into()),
            ],
            NOW,
        )
        .expect("ok");
        assert!(out.contains("time >= '2026-11-01T00:00:00Z'"), "{out}");
    }

    #[test]
    fn unknown_and_missing_parameters_are_errors() {
        let sql = "SELECT ${a}";
        let e = substitute(sql, &[("b".into(), "1".into())], NOW).expect_err("unknown");
        assert!(
            e.to_string()
                .contains("parameter `b` is not used by the query (it takes: a)"),
            "{e}"
        );
        let e = substitute(sql, &[], NOW).expect_err("missing");
        assert!(e.to_string().contains("--param a=VALUE"), "{e}");
    }
}
