//! Rendering query results: aligned table, CSV, JSON (array or lines), Parquet.

use std::io::Write;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::error::{AnalyticsError, Result};
use crate::session::QueryResult;

/// Output formats of `fnwatch sql`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// An aligned text table, for people.
    Table,
    /// A header line and plain rows (RFC 4180 quoting), for scripts.
    Csv,
    /// One JSON array of row objects.
    Json,
    /// One JSON object per line.
    Jsonl,
    /// A Parquet file.
    Parquet,
}

impl Format {
    pub const NAMES: &'static str = "table, csv, json, jsonl, parquet";

    pub fn parse(s: &str) -> Option<Format> {
        Some(match s {
            "table" => Format::Table,
            "csv" => Format::Csv,
            "json" => Format::Json,
            "jsonl" | "ndjson" => Format::Jsonl,
            "parquet" => Format::Parquet,
            _ => return None,
        })
    }
}

fn out_err(e: impl std::fmt::Display) -> AnalyticsError {
    AnalyticsError::Output(e.to_string())
}

/// Turns nested columns (lists, structs) into JSON text, for formats that
/// only hold scalars.
fn flatten_nested(
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let nested = |t: &DataType| {
        matches!(
            t,
            DataType::List(_) | DataType::LargeList(_) | DataType::Struct(_) | DataType::Map(..)
        )
    };
    if !schema.fields().iter().any(|f| nested(f.data_type())) {
        return Ok((schema.clone(), batches.to_vec()));
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            if nested(f.data_type()) {
                Field::new(f.name(), DataType::Utf8, true)
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    let new_schema = Arc::new(Schema::new(fields));
    let mut out = Vec::with_capacity(batches.len());
    for b in batches {
        let mut cols: Vec<ArrayRef> = Vec::with_capacity(b.num_columns());
        for (i, f) in schema.fields().iter().enumerate() {
            let col = b.column(i);
            if nested(f.data_type()) {
                cols.push(Arc::new(nested_to_json(col)?));
            } else {
                cols.push(col.clone());
            }
        }
        out.push(RecordBatch::try_new(new_schema.clone(), cols).map_err(out_err)?);
    }
    Ok((new_schema, out))
}

fn nested_to_json(col: &ArrayRef) -> Result<arrow::array::StringArray> {
    // Encode the column as JSON lines of single-field objects, then take the values.
    let field = Field::new("v", col.data_type().clone(), true);
    let schema = Arc::new(Schema::new(vec![field]));
    let batch = RecordBatch::try_new(schema, vec![col.clone()]).map_err(out_err)?;
    let mut buf = Vec::new();
    {
        let mut w = arrow::json::LineDelimitedWriter::new(&mut buf);
        w.write(&batch).map_err(out_err)?;
        w.finish().map_err(out_err)?;
    }
    let mut b = StringBuilder::new();
    for (i, line) in buf.split(|c| *c == b'\n').take(col.len()).enumerate() {
        if col.is_null(i) {
            b.append_null();
            continue;
        }
        let v: serde_json::Value = serde_json::from_slice(line).map_err(out_err)?;
        b.append_value(v.get("v").map(|x| x.to_string()).unwrap_or_default());
    }
    Ok(b.finish())
}

/// Writes a result in `format`.
pub fn write_result(
    result: &QueryResult,
    format: Format,
    out: &mut (dyn Write + Send),
) -> Result<()> {
    match format {
        Format::Table => {
            let (schema, batches) = flatten_nested(&result.schema, &result.batches)?;
            let table = arrow::util::pretty::pretty_format_batches_with_schema(schema, &batches)
                .map_err(out_err)?;
            writeln!(out, "{table}").map_err(out_err)?;
            let n = result.num_rows();
            writeln!(out, "({n} row{})", if n == 1 { "" } else { "s" }).map_err(out_err)?;
        }
        Format::Csv => {
            let (schema, batches) = flatten_nested(&result.schema, &result.batches)?;
            if batches.iter().all(|b| b.num_rows() == 0) {
                // The header alone.
                let names: Vec<String> = schema
                    .fields()
                    .iter()
                    .map(|f| csv_field(f.name()))
                    .collect();
                writeln!(out, "{}", names.join(",")).map_err(out_err)?;
            } else {
                let mut w = arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .with_timestamp_tz_format("%Y-%m-%dT%H:%M:%S%.6fZ".to_string())
                    .build(&mut *out);
                for b in &batches {
                    w.write(b).map_err(out_err)?;
                }
            }
        }
        Format::Json => {
            let mut w = arrow::json::ArrayWriter::new(&mut *out);
            let refs: Vec<&RecordBatch> = result.batches.iter().collect();
            w.write_batches(&refs).map_err(out_err)?;
            w.finish().map_err(out_err)?;
            if result.num_rows() == 0 {
                write!(out, "[]").map_err(out_err)?;
            }
            writeln!(out).map_err(out_err)?;
        }
        Format::Jsonl => {
            let mut w = arrow::json::LineDelimitedWriter::new(&mut *out);
            let refs: Vec<&RecordBatch> = result.batches.iter().collect();
            w.write_batches(&refs).map_err(out_err)?;
            w.finish().map_err(out_err)?;
        }
        Format::Parquet => {
            let props = parquet::file::properties::WriterProperties::builder()
                .set_compression(parquet::basic::Compression::ZSTD(
                    parquet::basic::ZstdLevel::default(),
                ))
                .build();
            let mut w =
                parquet::arrow::ArrowWriter::try_new(&mut *out, result.schema.clone(), Some(props))
                    .map_err(out_err)?;
            for b in &result.batches {
                w.write(b).map_err(out_err)?;
            }
            w.close().map_err(out_err)?;
        }
    }
    out.flush().map_err(out_err)
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The first column of the first row as text, for single-value queries in tests and tools.
pub fn scalar_text(result: &QueryResult) -> Option<String> {
    let b = result.batches.iter().find(|b| b.num_rows() > 0)?;
    let col = b.column(0);
    let formatter =
        arrow::util::display::ArrayFormatter::try_new(col.as_ref(), &Default::default()).ok()?;
    Some(formatter.value(0).to_string())
}
