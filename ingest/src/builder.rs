//! Columnar builders: decoded rows go straight into Arrow arrays.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int32Builder, Int64Builder, ListBuilder, RecordBatch,
    StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field};
use base64::Engine;

use crate::event::{DeadLetter, EventRow, EventType, Origin, Sink, Str};
use crate::schema::{dead_letters_schema, events_schema};

pub use crate::event::MAX_DEAD_LETTER_RAW;

fn opt_str(b: &mut StringBuilder, v: &Option<Str<'_>>) {
    match v {
        Some(s) => b.append_value(s),
        None => b.append_null(),
    }
}

fn opt_list(b: &mut ListBuilder<StringBuilder>, v: &Option<Vec<Str<'_>>>) {
    match v {
        Some(items) => {
            for i in items {
                b.values().append_value(i);
            }
            b.append(true);
        }
        None => b.append(false),
    }
}

/// The registrable domain (eTLD+1, from the public suffix list) and label
/// figures of a DNS query name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsFacts {
    pub registrable_domain: Option<String>,
    pub label_count: i32,
    pub query_length: i32,
    pub max_label_length: i32,
}

/// Derives [`DnsFacts`] from a query name (case and a trailing dot ignored).
pub fn dns_facts(query: &str) -> DnsFacts {
    let name = query.trim_end_matches('.');
    let lower;
    let name = if name.bytes().any(|b| b.is_ascii_uppercase()) {
        lower = name.to_ascii_lowercase();
        lower.as_str()
    } else {
        name
    };
    let mut label_count = 0i32;
    let mut max_label_length = 0i32;
    for label in name.split('.') {
        label_count += 1;
        max_label_length = max_label_length.max(label.len() as i32);
    }
    let registrable_domain = psl::domain_str(name).map(str::to_owned);
    DnsFacts {
        registrable_domain,
        label_count,
        query_length: name.len() as i32,
        max_label_length,
    }
}

/// Column groups of the `events` table: the columns only one event type
/// fills (a group per [`EventType`], numbered by its index) and the columns
/// every row may fill ([`COMMON`]).
const INV: usize = EventType::Invocation as usize;
const DNS: usize = EventType::Dns as usize;
const PROC: usize = EventType::Process as usize;
const NET: usize = EventType::Network as usize;
const FILE: usize = EventType::File as usize;
const API: usize = EventType::ApiCall as usize;
const CFG: usize = EventType::FunctionConfig as usize;
const LOG: usize = EventType::Log as usize;
const COMMON: usize = EventType::ALL.len();
/// The columns of the sort key and those derived from it (`time`, `type`,
/// `function`, `ingested_at`, `date`): every row has them.
const KEY: usize = COMMON + 1;
const ALL_GROUPS: u16 = u16::MAX;

const fn bit(group: usize) -> u16 {
    1 << group
}

/// The group of each `events` column, in schema order.
const COLUMN_GROUPS: [usize; 63] = [
    KEY, KEY, KEY, COMMON, COMMON, COMMON, COMMON, // time .. version
    INV, INV, INV, COMMON, INV, INV, COMMON, // duration_ms .. timeout_ms
    INV, INV, INV, INV, INV, // status .. event
    DNS, DNS, DNS, DNS, DNS, DNS, DNS, DNS, // query .. max_label_length
    PROC, PROC, PROC, PROC, // exe .. parent_exe
    NET, NET, NET, NET, NET, NET, NET, // direction .. bytes_in
    FILE, FILE, // path, op
    API, API, API, API, // service .. error_code
    CFG, CFG, CFG, CFG, CFG, CFG, CFG, // runtime .. code_sha256
    LOG, LOG, LOG,    // message, log_group, log_stream
    COMMON, // extra
    COMMON, API, API, API, CFG, CFG, // source, source_ip .. event_id, statements, env_keys
    KEY, KEY, // ingested_at, date
];

/// The [`KEY`] columns, in the order [`TypedEventsBuilder`] writes them out.
const KEY_COLUMNS: [usize; 5] = [0, 1, 2, 61, 62];

/// Builds an `events` batch from rows whose type-specific fields all belong
/// to their own type (what the native decoder guarantees: it moves any other
/// field to `extra`). Each row writes the common columns and its own type's
/// columns only; the other types' columns are laid out at the end, nulls
/// filled in one pass per column, their values taken over without a copy.
/// Most columns of a row are null, so this saves a null append per column
/// and row. The sort-key columns (`time`, `type`, `function`, `date`,
/// `ingested_at`) are kept as numbers and written out at the end, in order.
pub struct TypedEventsBuilder {
    common: EventsBuilder,
    per_type: Vec<EventsBuilder>,
    /// Type index of every row, in order.
    types: Vec<u8>,
    /// `time` of every row, in order.
    times: Vec<i64>,
    /// Function id of every row, in order.
    functions: Vec<u32>,
    /// Function ids in order of first appearance.
    function_ids: foldhash::HashMap<Box<str>, u32>,
    ingested_at_us: i64,
}

/// How big a finished chunk's columns were: rows of each type (and of all
/// types) and string bytes of each column. The chunks of one input are alike,
/// so builders sized after the last chunk rarely grow (each growth copies the
/// column and maps fresh pages).
#[derive(Debug, Clone, Default)]
pub struct ChunkShape {
    /// Rows per column group ([`COMMON`]: every row).
    rows: [usize; COMMON + 1],
    /// String bytes per column, in schema order (empty: not known yet).
    bytes: Vec<usize>,
}

/// (UTC day, function rank, time, row) of one appended row.
type RowKey = (i64, u32, i64, u32);

/// The order of rows by (day, function rank, time, arrival): what sorting
/// their [`RowKey`]s gives. Rows are first put in (day, function) buckets in
/// arrival order, in one pass; telemetry mostly arrives in time order, so a
/// bucket is then in order already or nearly so.
fn sort_order(times: &[i64], ranks: &[u32]) -> Vec<u32> {
    let n = times.len().min(ranks.len());
    let days = || times[..n].iter().map(|t| t.div_euclid(DAY_US));
    let (Some(first), Some(last)) = (days().min(), days().max()) else {
        return Vec::new();
    };
    let functions = ranks[..n]
        .iter()
        .filter(|&&r| r != u32::MAX)
        .max()
        .map_or(0, |&r| r as usize + 1)
        + 1;
    let span = usize::try_from(last.saturating_sub(first)).unwrap_or(usize::MAX);
    let buckets = span.saturating_add(1).saturating_mul(functions);
    if buckets > 4 * n + 64 {
        // Days far apart: a plain sort of the keys.
        let mut keys: Vec<RowKey> = (0..n)
            .map(|i| (times[i].div_euclid(DAY_US), ranks[i], times[i], i as u32))
            .collect();
        keys.sort_unstable();
        return keys.iter().map(|k| k.3).collect();
    }
    let bucket = |i: usize| {
        let day = (times[i].div_euclid(DAY_US) - first) as usize;
        let rank = if ranks[i] == u32::MAX {
            functions - 1
        } else {
            ranks[i] as usize
        };
        day * functions + rank
    };
    let mut starts = vec![0u32; buckets + 1];
    for i in 0..n {
        starts[bucket(i) + 1] += 1;
    }
    for b in 0..buckets {
        starts[b + 1] += starts[b];
    }
    let bounds = starts.clone();
    let mut order = vec![0u32; n];
    for i in 0..n {
        let b = bucket(i);
        order[starts[b] as usize] = i as u32;
        starts[b] += 1;
    }
    for w in bounds.windows(2) {
        let rows = &mut order[w[0] as usize..w[1] as usize];
        // Arrival order breaks ties; a stable sort is quick on the nearly
        // sorted rows of a bucket.
        if !rows.is_sorted_by_key(|&i| times[i as usize]) {
            rows.sort_by_key(|&i| times[i as usize]);
        }
    }
    order
}

const DAY_US: i64 = 86_400_000_000;

impl TypedEventsBuilder {
    pub fn with_capacity(ingested_at_us: i64, rows: usize) -> Self {
        let mut shape = ChunkShape::default();
        shape.rows[COMMON] = rows;
        Self::with_shape(ingested_at_us, &shape)
    }

    /// A builder with room for a chunk like `shape`, and a little more.
    pub fn with_shape(ingested_at_us: i64, shape: &ChunkShape) -> Self {
        let room = |n: usize| n + n / 8;
        let sized = |group: usize| {
            EventsBuilder::sized(ingested_at_us, |c| {
                if COLUMN_GROUPS[c] == group {
                    let bytes = shape.bytes.get(c).copied().unwrap_or(0);
                    (room(shape.rows[group]), room(bytes))
                } else {
                    (0, 0)
                }
            })
        };
        let rows = room(shape.rows[COMMON]);
        TypedEventsBuilder {
            common: sized(COMMON),
            per_type: (0..EventType::ALL.len()).map(sized).collect(),
            types: Vec::with_capacity(rows),
            times: Vec::with_capacity(rows),
            functions: Vec::with_capacity(rows),
            function_ids: foldhash::HashMap::default(),
            ingested_at_us,
        }
    }

    /// Appends one event; its fields of other types' columns are not stored.
    pub fn append(&mut self, r: &EventRow<'_>) {
        let t = r.event_type.index();
        self.types.push(t as u8);
        self.times.push(r.time_us);
        let next = self.function_ids.len() as u32;
        let id = match self.function_ids.get(r.function.as_ref()) {
            Some(&id) => id,
            None => {
                self.function_ids.insert(r.function.as_ref().into(), next);
                next
            }
        };
        self.functions.push(id);
        self.common.append_groups(r, bit(COMMON));
        self.per_type[t].append_groups(r, bit(t));
    }

    /// The rows as one batch, in the order they were appended.
    pub fn finish(self) -> Result<RecordBatch, arrow::error::ArrowError> {
        self.finish_inner(false, None)
    }

    /// The rows as one batch in (UTC day, function, time) order, rows of
    /// equal keys as appended. `shape`, when given, is set to this chunk's.
    ///
    /// Common columns are reordered whole; each of a type's own columns is
    /// reordered and spread out over the batch's rows in one gather. Should the ordered
    /// layout fail (not expected), the rows come out as appended, with a
    /// warning: the writer sorts unsorted batches itself.
    pub fn finish_sorted(
        self,
        shape: Option<&mut ChunkShape>,
    ) -> Result<RecordBatch, arrow::error::ArrowError> {
        self.finish_inner(true, shape)
    }

    fn finish_inner(
        mut self,
        sorted: bool,
        shape: Option<&mut ChunkShape>,
    ) -> Result<RecordBatch, arrow::error::ArrowError> {
        let columns: Vec<Option<ArrayRef>> = COLUMN_GROUPS
            .iter()
            .enumerate()
            .map(|(c, &group)| match group {
                KEY => None,
                COMMON => Some(self.common.finish_column(c)),
                _ => Some(self.per_type[group].finish_column(c)),
            })
            .collect();
        if let Some(shape) = shape {
            shape.rows = [0; COMMON + 1];
            shape.rows[COMMON] = self.types.len();
            for &t in &self.types {
                shape.rows[t as usize] += 1;
            }
            shape.bytes = columns
                .iter()
                .map(|c| c.as_ref().map_or(0, string_bytes))
                .collect();
        }
        // Functions by name.
        let mut names: Vec<(&str, u32)> = self
            .function_ids
            .iter()
            .map(|(name, &id)| (&**name, id))
            .collect();
        names.sort_unstable();
        if sorted {
            let mut rank_of = vec![0u32; names.len()];
            for (rank, &(_, id)) in names.iter().enumerate() {
                rank_of[id as usize] = rank as u32;
            }
            let ranks: Vec<u32> = self
                .functions
                .iter()
                .map(|&f| rank_of.get(f as usize).copied().unwrap_or(u32::MAX))
                .collect();
            let order = sort_order(&self.times, &ranks);
            // Already in order: nothing to move.
            if !order.iter().enumerate().all(|(k, &i)| k == i as usize) {
                match self.lay_out(&columns, &names, Some(&order)) {
                    Ok(batch) => return Ok(batch),
                    Err(e) => tracing::warn!(
                        error = %e,
                        "cannot lay out decoded events in order; the writer sorts them"
                    ),
                }
            }
        }
        self.lay_out(&columns, &names, None)
    }

    /// The batch of the finished `columns` (each type's own columns holding
    /// only the rows of that type; no sort-key columns), in `order` (row `k`
    /// of the batch is the `order[k]`-th row appended) or as appended.
    fn lay_out(
        &self,
        columns: &[Option<ArrayRef>],
        names: &[(&str, u32)],
        order: Option<&[u32]>,
    ) -> Result<RecordBatch, arrow::error::ArrowError> {
        use arrow::array::{UInt32Array, new_null_array};
        use arrow::buffer::{BooleanBuffer, MutableBuffer, NullBuffer};
        use arrow::compute::take;
        use arrow::error::ArrowError;
        let n = self.types.len();
        let types = EventType::ALL.len();
        let identity: Vec<u32>;
        let rows: &[u32] = match order {
            Some(order) => order,
            None => {
                identity = (0..n as u32).collect();
                &identity
            }
        };
        if rows.len() != n {
            return Err(ArrowError::InvalidArgumentError(format!(
                "an order of {} rows for {n} rows",
                rows.len()
            )));
        }
        // Rows of each type: as appended, the batch rows of each type (where
        // its own columns are spread out); when reordering, for each batch
        // row the row of its type's own columns that goes there (null in the
        // other types' gathers), so one `take` both reorders and spreads a
        // column.
        let mut positions: Vec<Vec<usize>> = vec![Vec::new(); types];
        let mut gathers: Vec<Option<(Vec<u32>, MutableBuffer)>> =
            (0..types).map(|_| None).collect();
        let mut seen = [0u32; EventType::ALL.len()];
        let index_in_type: Vec<u32> = match order {
            Some(_) => self
                .types
                .iter()
                .map(|&t| {
                    let i = seen[t as usize];
                    seen[t as usize] += 1;
                    i
                })
                .collect(),
            None => Vec::new(),
        };
        for (k, &i) in rows.iter().enumerate() {
            let i = i as usize;
            let t = *self.types.get(i).ok_or_else(|| {
                ArrowError::InvalidArgumentError(format!(
                    "row {i} of the order is not one of the {n} rows"
                ))
            })? as usize;
            match order {
                Some(_) => {
                    let (idx, valid) = gathers[t]
                        .get_or_insert_with(|| (vec![0u32; n], MutableBuffer::new_null(n)));
                    idx[k] = index_in_type[i];
                    arrow::util::bit_util::set_bit(valid.as_slice_mut(), k);
                }
                None => positions[t].push(k),
            }
        }
        let gathers: Vec<Option<UInt32Array>> = gathers
            .into_iter()
            .map(|g| {
                g.map(|(idx, valid)| {
                    let valid = NullBuffer::new(BooleanBuffer::new(valid.into(), 0, n));
                    UInt32Array::new(idx.into(), Some(valid))
                })
            })
            .collect();
        let common_order = order.map(|o| UInt32Array::from(o.to_vec()));
        // The sort-key columns, written out in order.
        let mut name_of = vec![""; names.len()];
        for &(name, id) in names {
            name_of[id as usize] = name;
        }
        let mut time = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
        let mut type_ = StringBuilder::with_capacity(n, n * 8);
        let mut function = StringBuilder::with_capacity(n, n * 16);
        let mut date = StringBuilder::with_capacity(n, n * 10);
        let mut ingested_at = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
        let mut last_day: Option<(i64, String)> = None;
        for &i in rows {
            let i = i as usize;
            let t = self.times[i];
            time.append_value(t);
            type_.append_value(EventType::ALL[self.types[i] as usize].as_str());
            function.append_value(
                name_of
                    .get(self.functions[i] as usize)
                    .copied()
                    .unwrap_or(""),
            );
            let day = t.div_euclid(DAY_US);
            match &last_day {
                Some((d, text)) if *d == day => date.append_value(text),
                _ => {
                    let text = day_text(day);
                    date.append_value(&text);
                    last_day = Some((day, text));
                }
            }
            ingested_at.append_value(self.ingested_at_us);
        }
        let mut keys: [Option<ArrayRef>; 5] = [
            Some(Arc::new(time.finish())),
            Some(Arc::new(type_.finish())),
            Some(Arc::new(function.finish())),
            Some(Arc::new(ingested_at.finish())),
            Some(Arc::new(date.finish())),
        ];
        let schema = events_schema();
        let mut cols = Vec::with_capacity(COLUMN_GROUPS.len());
        for (c, &group) in COLUMN_GROUPS.iter().enumerate() {
            let missing = || ArrowError::InvalidArgumentError(format!("no column {c}"));
            if group == KEY {
                let slot = KEY_COLUMNS
                    .iter()
                    .position(|&k| k == c)
                    .ok_or_else(missing)?;
                cols.push(keys[slot].take().ok_or_else(missing)?);
                continue;
            }
            let column = columns
                .get(c)
                .and_then(|c| c.as_ref())
                .ok_or_else(missing)?;
            if group == COMMON {
                cols.push(match &common_order {
                    Some(indices) => take(column.as_ref(), indices, None)?,
                    None => column.clone(),
                });
            } else if order.is_some() {
                if column.len() != seen[group] as usize {
                    return Err(ArrowError::InvalidArgumentError(format!(
                        "{} values of column {c} for {} rows",
                        column.len(),
                        seen[group]
                    )));
                }
                cols.push(match &gathers[group] {
                    Some(idx) if column.null_count() < column.len() => {
                        take(column.as_ref(), idx, None)?
                    }
                    _ => new_null_array(schema.field(c).data_type(), n),
                });
            } else {
                // Only the type's own columns of its builder are laid out.
                cols.push(spread(
                    column,
                    &positions[group],
                    n,
                    schema.field(c).data_type(),
                )?);
            }
        }
        RecordBatch::try_new(schema, cols)
    }
}

/// Bytes of the strings of a string or list-of-strings column.
fn string_bytes(column: &ArrayRef) -> usize {
    use arrow::array::AsArray;
    match column.data_type() {
        DataType::Utf8 => column.as_string::<i32>().values().len(),
        DataType::List(_) => column
            .as_list::<i32>()
            .values()
            .as_string_opt::<i32>()
            .map_or(0, |v| v.values().len()),
        _ => 0,
    }
}

/// Lays out `values` (one per position, in order) at `positions` of an array
/// of `len` rows, nulls elsewhere.
fn spread(
    values: &ArrayRef,
    positions: &[usize],
    len: usize,
    data_type: &DataType,
) -> Result<ArrayRef, arrow::error::ArrowError> {
    use arrow::array::{Array, AsArray, ListArray, PrimitiveArray, StringArray, new_null_array};
    use arrow::buffer::{BooleanBuffer, NullBuffer, OffsetBuffer, ScalarBuffer};
    use arrow::datatypes::{ArrowPrimitiveType, Float64Type, Int32Type, Int64Type};
    if values.len() != positions.len() {
        return Err(arrow::error::ArrowError::InvalidArgumentError(format!(
            "{} values for {} rows",
            values.len(),
            positions.len()
        )));
    }
    if values.null_count() == values.len() {
        return Ok(new_null_array(data_type, len));
    }
    let mut valid = arrow::buffer::MutableBuffer::new_null(len);
    let bits = valid.as_slice_mut();
    match values.nulls() {
        None => {
            for &i in positions {
                arrow::util::bit_util::set_bit(bits, i);
            }
        }
        Some(valid) => {
            for (j, &i) in positions.iter().enumerate() {
                if valid.is_valid(j) {
                    arrow::util::bit_util::set_bit(bits, i);
                }
            }
        }
    }
    let nulls = Some(NullBuffer::new(BooleanBuffer::new(valid.into(), 0, len)));
    // Offsets of a variable-size column: a null row ends where the row before it does.
    let spread_offsets = |src: &[i32]| -> OffsetBuffer<i32> {
        let mut out = Vec::with_capacity(len + 1);
        let mut last = src[0];
        out.push(last);
        for (j, &i) in positions.iter().enumerate() {
            out.resize(i + 1, last);
            last = src[j + 1];
            out.push(last);
        }
        out.resize(len + 1, last);
        OffsetBuffer::new(ScalarBuffer::from(out))
    };
    fn spread_primitive<T: ArrowPrimitiveType>(
        a: &PrimitiveArray<T>,
        positions: &[usize],
        len: usize,
        nulls: Option<NullBuffer>,
    ) -> ArrayRef {
        let mut out = vec![T::Native::default(); len];
        for (j, &i) in positions.iter().enumerate() {
            out[i] = a.value(j);
        }
        Arc::new(
            PrimitiveArray::<T>::new(ScalarBuffer::from(out), nulls)
                .with_data_type(a.data_type().clone()),
        )
    }
    Ok(match data_type {
        DataType::Utf8 => {
            let a = values.as_string::<i32>();
            Arc::new(StringArray::try_new(
                spread_offsets(a.value_offsets()),
                a.values().clone(),
                nulls,
            )?)
        }
        DataType::List(field) => {
            let a = values.as_list::<i32>();
            Arc::new(ListArray::try_new(
                field.clone(),
                spread_offsets(a.value_offsets()),
                a.values().clone(),
                nulls,
            )?)
        }
        DataType::Int64 => {
            spread_primitive(values.as_primitive::<Int64Type>(), positions, len, nulls)
        }
        DataType::Int32 => {
            spread_primitive(values.as_primitive::<Int32Type>(), positions, len, nulls)
        }
        DataType::Float64 => {
            spread_primitive(values.as_primitive::<Float64Type>(), positions, len, nulls)
        }
        other => {
            return Err(arrow::error::ArrowError::NotYetImplemented(format!(
                "spreading a {other} column"
            )));
        }
    })
}

/// Builds `events` record batches.
pub struct EventsBuilder {
    time: TimestampMicrosecondBuilder,
    function: StringBuilder,
    request_id: StringBuilder,
    account: StringBuilder,
    region: StringBuilder,
    version: StringBuilder,
    duration_ms: Float64Builder,
    billed_ms: Int64Builder,
    cpu_ms: Float64Builder,
    memory_mb: Int64Builder,
    max_memory_mb: Int64Builder,
    init_ms: Float64Builder,
    timeout_ms: Int64Builder,
    status: StringBuilder,
    error_type: StringBuilder,
    trigger: StringBuilder,
    event_bytes: Int64Builder,
    event: StringBuilder,
    query: StringBuilder,
    qtype: StringBuilder,
    rcode: StringBuilder,
    answers: ListBuilder<StringBuilder>,
    registrable_domain: StringBuilder,
    label_count: Int32Builder,
    query_length: Int32Builder,
    max_label_length: Int32Builder,
    exe: StringBuilder,
    args: ListBuilder<StringBuilder>,
    cmdline: StringBuilder,
    parent_exe: StringBuilder,
    direction: StringBuilder,
    protocol: StringBuilder,
    remote_ip: StringBuilder,
    remote_port: Int32Builder,
    remote_host: StringBuilder,
    bytes_out: Int64Builder,
    bytes_in: Int64Builder,
    path: StringBuilder,
    op: StringBuilder,
    service: StringBuilder,
    action: StringBuilder,
    resource: StringBuilder,
    error_code: StringBuilder,
    runtime: StringBuilder,
    handler: StringBuilder,
    role_arn: StringBuilder,
    permissions: ListBuilder<StringBuilder>,
    triggers: ListBuilder<StringBuilder>,
    layers: ListBuilder<StringBuilder>,
    code_sha256: StringBuilder,
    message: StringBuilder,
    log_group: StringBuilder,
    log_stream: StringBuilder,
    extra: StringBuilder,
    source: StringBuilder,
    source_ip: StringBuilder,
    user_agent: StringBuilder,
    event_id: StringBuilder,
    statements: StringBuilder,
    env_keys: ListBuilder<StringBuilder>,
    ingested_at: TimestampMicrosecondBuilder,
    type_: StringBuilder,
    date: StringBuilder,
    /// The UTC day cached for `date` (days since epoch, text).
    last_day: Option<(i64, String)>,
    ingested_at_us: i64,
    rows: usize,
}

impl EventsBuilder {
    /// A builder stamping `ingested_at_us` on every row.
    pub fn new(ingested_at_us: i64) -> Self {
        Self::with_capacity(ingested_at_us, 0)
    }

    /// A builder with room for about `rows` rows.
    pub fn with_capacity(ingested_at_us: i64, rows: usize) -> Self {
        // Every row has the common columns; most other columns are null for most rows.
        Self::sized(ingested_at_us, |c| {
            let dense = matches!(COLUMN_GROUPS[c], COMMON | KEY);
            (rows, if dense { rows * 16 } else { 0 })
        })
    }

    /// A builder with room for `size(c)` = (rows, string bytes) in column `c`
    /// (schema order).
    fn sized(ingested_at_us: i64, size: impl Fn(usize) -> (usize, usize)) -> Self {
        let ts =
            |c: usize| TimestampMicrosecondBuilder::with_capacity(size(c).0).with_timezone("UTC");
        let string = |c: usize| StringBuilder::with_capacity(size(c).0, size(c).1);
        let list = |c: usize| {
            let (rows, bytes) = size(c);
            ListBuilder::with_capacity(StringBuilder::with_capacity(rows, bytes), rows)
                .with_field(Arc::new(Field::new("element", DataType::Utf8, true)))
        };
        EventsBuilder {
            time: ts(0),
            function: string(2),
            request_id: string(3),
            account: string(4),
            region: string(5),
            version: string(6),
            duration_ms: Float64Builder::with_capacity(size(7).0),
            billed_ms: Int64Builder::with_capacity(size(8).0),
            cpu_ms: Float64Builder::with_capacity(size(9).0),
            memory_mb: Int64Builder::with_capacity(size(10).0),
            max_memory_mb: Int64Builder::with_capacity(size(11).0),
            init_ms: Float64Builder::with_capacity(size(12).0),
            timeout_ms: Int64Builder::with_capacity(size(13).0),
            status: string(14),
            error_type: string(15),
            trigger: string(16),
            event_bytes: Int64Builder::with_capacity(size(17).0),
            event: string(18),
            query: string(19),
            qtype: string(20),
            rcode: string(21),
            answers: list(22),
            registrable_domain: string(23),
            label_count: Int32Builder::with_capacity(size(24).0),
            query_length: Int32Builder::with_capacity(size(25).0),
            max_label_length: Int32Builder::with_capacity(size(26).0),
            exe: string(27),
            args: list(28),
            cmdline: string(29),
            parent_exe: string(30),
            direction: string(31),
            protocol: string(32),
            remote_ip: string(33),
            remote_port: Int32Builder::with_capacity(size(34).0),
            remote_host: string(35),
            bytes_out: Int64Builder::with_capacity(size(36).0),
            bytes_in: Int64Builder::with_capacity(size(37).0),
            path: string(38),
            op: string(39),
            service: string(40),
            action: string(41),
            resource: string(42),
            error_code: string(43),
            runtime: string(44),
            handler: string(45),
            role_arn: string(46),
            permissions: list(47),
            triggers: list(48),
            layers: list(49),
            code_sha256: string(50),
            message: string(51),
            log_group: string(52),
            log_stream: string(53),
            extra: string(54),
            source: string(55),
            source_ip: string(56),
            user_agent: string(57),
            event_id: string(58),
            statements: string(59),
            env_keys: list(60),
            ingested_at: ts(61),
            type_: string(1),
            date: string(62),
            last_day: None,
            ingested_at_us,
            rows: 0,
        }
    }

    /// Rows appended since the last [`finish`](Self::finish).
    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Appends one event.
    pub fn append(&mut self, r: &EventRow<'_>) {
        self.append_groups(r, ALL_GROUPS);
    }

    /// Appends the columns of the given groups (a bit per [`group`]) of one
    /// event; the other columns are left untouched.
    fn append_groups(&mut self, r: &EventRow<'_>, groups: u16) {
        self.rows += 1;
        if groups & bit(COMMON) != 0 {
            opt_str(&mut self.request_id, &r.request_id);
            opt_str(&mut self.account, &r.account);
            opt_str(&mut self.region, &r.region);
            opt_str(&mut self.version, &r.version);
            self.memory_mb.append_option(r.memory_mb);
            self.timeout_ms.append_option(r.timeout_ms);
            match &r.extra {
                Some(e) => self.extra.append_value(e),
                None => self.extra.append_null(),
            }
            opt_str(&mut self.source, &r.source);
        }
        if groups & bit(KEY) != 0 {
            self.time.append_value(r.time_us);
            self.function.append_value(&r.function);
            self.ingested_at.append_value(self.ingested_at_us);
            self.type_.append_value(r.event_type.as_str());
            let day = r.time_us.div_euclid(86_400_000_000);
            match &self.last_day {
                Some((d, text)) if *d == day => self.date.append_value(text),
                _ => {
                    let text = day_text(day);
                    self.date.append_value(&text);
                    self.last_day = Some((day, text));
                }
            }
        }
        if groups & bit(INV) != 0 {
            self.duration_ms.append_option(r.duration_ms);
            self.billed_ms.append_option(r.billed_ms);
            self.cpu_ms.append_option(r.cpu_ms);
            self.max_memory_mb.append_option(r.max_memory_mb);
            self.init_ms.append_option(r.init_ms);
            opt_str(&mut self.status, &r.status);
            opt_str(&mut self.error_type, &r.error_type);
            opt_str(&mut self.trigger, &r.trigger);
            self.event_bytes.append_option(r.event_bytes);
            opt_str(&mut self.event, &r.event);
        }
        if groups & bit(DNS) != 0 {
            opt_str(&mut self.query, &r.query);
            opt_str(&mut self.qtype, &r.qtype);
            opt_str(&mut self.rcode, &r.rcode);
            opt_list(&mut self.answers, &r.answers);
            match r.query.as_deref() {
                Some(q) if r.event_type == EventType::Dns => {
                    let f = dns_facts(q);
                    match &f.registrable_domain {
                        Some(d) => self.registrable_domain.append_value(d),
                        None => self.registrable_domain.append_null(),
                    }
                    self.label_count.append_value(f.label_count);
                    self.query_length.append_value(f.query_length);
                    self.max_label_length.append_value(f.max_label_length);
                }
                _ => {
                    self.registrable_domain.append_null();
                    self.label_count.append_null();
                    self.query_length.append_null();
                    self.max_label_length.append_null();
                }
            }
        }
        if groups & bit(PROC) != 0 {
            opt_str(&mut self.exe, &r.exe);
            opt_list(&mut self.args, &r.args);
            opt_str(&mut self.cmdline, &r.cmdline);
            opt_str(&mut self.parent_exe, &r.parent_exe);
        }
        if groups & bit(NET) != 0 {
            opt_str(&mut self.direction, &r.direction);
            opt_str(&mut self.protocol, &r.protocol);
            opt_str(&mut self.remote_ip, &r.remote_ip);
            self.remote_port.append_option(r.remote_port);
            opt_str(&mut self.remote_host, &r.remote_host);
            self.bytes_out.append_option(r.bytes_out);
            self.bytes_in.append_option(r.bytes_in);
        }
        if groups & bit(FILE) != 0 {
            opt_str(&mut self.path, &r.path);
            opt_str(&mut self.op, &r.op);
        }
        if groups & bit(API) != 0 {
            opt_str(&mut self.service, &r.service);
            opt_str(&mut self.action, &r.action);
            opt_str(&mut self.resource, &r.resource);
            opt_str(&mut self.error_code, &r.error_code);
            opt_str(&mut self.source_ip, &r.source_ip);
            opt_str(&mut self.user_agent, &r.user_agent);
            opt_str(&mut self.event_id, &r.event_id);
        }
        if groups & bit(CFG) != 0 {
            opt_str(&mut self.runtime, &r.runtime);
            opt_str(&mut self.handler, &r.handler);
            opt_str(&mut self.role_arn, &r.role_arn);
            opt_list(&mut self.permissions, &r.permissions);
            opt_list(&mut self.triggers, &r.triggers);
            opt_list(&mut self.layers, &r.layers);
            opt_str(&mut self.code_sha256, &r.code_sha256);
            opt_str(&mut self.statements, &r.statements);
            opt_list(&mut self.env_keys, &r.env_keys);
        }
        if groups & bit(LOG) != 0 {
            opt_str(&mut self.message, &r.message);
            opt_str(&mut self.log_group, &r.log_group);
            opt_str(&mut self.log_stream, &r.log_stream);
        }
    }

    /// The rows appended so far as one batch; the builder is empty afterwards.
    pub fn finish(&mut self) -> RecordBatch {
        let cols = self.finish_columns();
        match RecordBatch::try_new(events_schema(), cols) {
            Ok(b) => b,
            // The builders and the schema are defined together; a mismatch is a
            // bug caught by the unit tests, never an input problem.
            Err(e) => panic!("events builder does not match the events schema: {e}"),
        }
    }

    /// Every column in schema order (columns of groups not appended to are empty).
    fn finish_columns(&mut self) -> Vec<ArrayRef> {
        self.rows = 0;
        (0..COLUMN_GROUPS.len())
            .map(|c| self.finish_column(c))
            .collect()
    }

    /// Column `c` (in schema order) of the rows appended so far; the column's
    /// builder is empty afterwards, the others are left as they are.
    fn finish_column(&mut self, c: usize) -> ArrayRef {
        match c {
            0 => Arc::new(self.time.finish()),
            1 => Arc::new(self.type_.finish()),
            2 => Arc::new(self.function.finish()),
            3 => Arc::new(self.request_id.finish()),
            4 => Arc::new(self.account.finish()),
            5 => Arc::new(self.region.finish()),
            6 => Arc::new(self.version.finish()),
            7 => Arc::new(self.duration_ms.finish()),
            8 => Arc::new(self.billed_ms.finish()),
            9 => Arc::new(self.cpu_ms.finish()),
            10 => Arc::new(self.memory_mb.finish()),
            11 => Arc::new(self.max_memory_mb.finish()),
            12 => Arc::new(self.init_ms.finish()),
            13 => Arc::new(self.timeout_ms.finish()),
            14 => Arc::new(self.status.finish()),
            15 => Arc::new(self.error_type.finish()),
            16 => Arc::new(self.trigger.finish()),
            17 => Arc::new(self.event_bytes.finish()),
            18 => Arc::new(self.event.finish()),
            19 => Arc::new(self.query.finish()),
            20 => Arc::new(self.qtype.finish()),
            21 => Arc::new(self.rcode.finish()),
            22 => Arc::new(self.answers.finish()),
            23 => Arc::new(self.registrable_domain.finish()),
            24 => Arc::new(self.label_count.finish()),
            25 => Arc::new(self.query_length.finish()),
            26 => Arc::new(self.max_label_length.finish()),
            27 => Arc::new(self.exe.finish()),
            28 => Arc::new(self.args.finish()),
            29 => Arc::new(self.cmdline.finish()),
            30 => Arc::new(self.parent_exe.finish()),
            31 => Arc::new(self.direction.finish()),
            32 => Arc::new(self.protocol.finish()),
            33 => Arc::new(self.remote_ip.finish()),
            34 => Arc::new(self.remote_port.finish()),
            35 => Arc::new(self.remote_host.finish()),
            36 => Arc::new(self.bytes_out.finish()),
            37 => Arc::new(self.bytes_in.finish()),
            38 => Arc::new(self.path.finish()),
            39 => Arc::new(self.op.finish()),
            40 => Arc::new(self.service.finish()),
            41 => Arc::new(self.action.finish()),
            42 => Arc::new(self.resource.finish()),
            43 => Arc::new(self.error_code.finish()),
            44 => Arc::new(self.runtime.finish()),
            45 => Arc::new(self.handler.finish()),
            46 => Arc::new(self.role_arn.finish()),
            47 => Arc::new(self.permissions.finish()),
            48 => Arc::new(self.triggers.finish()),
            49 => Arc::new(self.layers.finish()),
            50 => Arc::new(self.code_sha256.finish()),
            51 => Arc::new(self.message.finish()),
            52 => Arc::new(self.log_group.finish()),
            53 => Arc::new(self.log_stream.finish()),
            54 => Arc::new(self.extra.finish()),
            55 => Arc::new(self.source.finish()),
            56 => Arc::new(self.source_ip.finish()),
            57 => Arc::new(self.user_agent.finish()),
            58 => Arc::new(self.event_id.finish()),
            59 => Arc::new(self.statements.finish()),
            60 => Arc::new(self.env_keys.finish()),
            61 => Arc::new(self.ingested_at.finish()),
            62 => Arc::new(self.date.finish()),
            _ => unreachable!("the events schema has {} columns", COLUMN_GROUPS.len()),
        }
    }
}

/// `YYYY-MM-DD` of a day number since the Unix epoch.
pub fn day_text(day: i64) -> String {
    let date = chrono::DateTime::from_timestamp(day * 86_400, 0)
        .map(|t| t.date_naive())
        .unwrap_or_default();
    date.format("%Y-%m-%d").to_string()
}

/// Builds `dead_letters` record batches.
pub struct DeadLettersBuilder {
    ingested_at_us: i64,
    rows: Vec<DeadLetter>,
}

impl DeadLettersBuilder {
    pub fn new(ingested_at_us: i64) -> Self {
        DeadLettersBuilder {
            ingested_at_us,
            rows: Vec::new(),
        }
    }

    pub fn push(&mut self, dl: DeadLetter) {
        self.rows.push(dl);
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Builds the batch of everything pushed; the builder is empty afterwards.
    pub fn finish(&mut self) -> RecordBatch {
        let rows = std::mem::take(&mut self.rows);
        dead_letters_batch(&rows, self.ingested_at_us)
    }
}

/// The raw bytes of a dead letter as stored: UTF-8 text when they are text,
/// base64 otherwise; truncated to [`MAX_DEAD_LETTER_RAW`]. `raw_size` is the
/// size of the rejected bytes before a dead letter kept only their start.
pub fn encode_raw(raw: &[u8], raw_size: usize) -> (String, &'static str, bool) {
    let truncated = raw.len() > MAX_DEAD_LETTER_RAW || raw_size > raw.len();
    let mut cut = &raw[..raw.len().min(MAX_DEAD_LETTER_RAW)];
    if let Ok(t) = std::str::from_utf8(cut) {
        return (t.to_string(), "utf8", truncated);
    }
    if truncated {
        // A multi-byte character may straddle the cut.
        if let Err(e) = std::str::from_utf8(cut)
            && e.error_len().is_none()
        {
            cut = &cut[..e.valid_up_to()];
            if let Ok(t) = std::str::from_utf8(cut) {
                return (t.to_string(), "utf8", truncated);
            }
        }
    }
    (
        base64::engine::general_purpose::STANDARD.encode(cut),
        "base64",
        truncated,
    )
}

fn dead_letters_batch(rows: &[DeadLetter], ingested_at_us: i64) -> RecordBatch {
    let n = rows.len();
    let mut ingested = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut reason = StringBuilder::new();
    let mut field = StringBuilder::new();
    let mut kind = StringBuilder::new();
    let mut source = StringBuilder::new();
    let mut line = Int64Builder::new();
    let mut shard = StringBuilder::new();
    let mut seq = StringBuilder::new();
    let mut inner = StringBuilder::new();
    let mut position = StringBuilder::new();
    let mut raw = StringBuilder::new();
    let mut enc = StringBuilder::new();
    let mut size = Int64Builder::new();
    let mut truncated = BooleanBuilder::new();
    let mut date = StringBuilder::new();
    let today = day_text(ingested_at_us.div_euclid(86_400_000_000));
    for dl in rows {
        ingested.append_value(ingested_at_us);
        reason.append_value(&dl.reason);
        match &dl.field {
            Some(f) => field.append_value(f),
            None => field.append_null(),
        }
        match &dl.position.origin {
            Origin::File { path, line: l } => {
                kind.append_value("file");
                source.append_value(path);
                line.append_value(*l as i64);
                shard.append_null();
                seq.append_null();
            }
            Origin::Kinesis {
                stream,
                shard: sh,
                sequence_number,
            } => {
                kind.append_value("kinesis");
                source.append_value(stream);
                line.append_null();
                shard.append_value(sh);
                seq.append_value(sequence_number);
            }
        }
        if dl.position.steps.is_empty() {
            inner.append_null();
        } else {
            inner.append_value(dl.position.steps_text());
        }
        position.append_value(dl.position.to_string());
        let (text, encoding, cut) = encode_raw(&dl.raw, dl.raw_size);
        raw.append_value(text);
        enc.append_value(encoding);
        size.append_value(dl.raw_size.max(dl.raw.len()) as i64);
        truncated.append_value(cut);
        date.append_value(&today);
    }
    let cols: Vec<ArrayRef> = vec![
        Arc::new(ingested.finish()),
        Arc::new(reason.finish()),
        Arc::new(field.finish()),
        Arc::new(kind.finish()),
        Arc::new(source.finish()),
        Arc::new(line.finish()),
        Arc::new(shard.finish()),
        Arc::new(seq.finish()),
        Arc::new(inner.finish()),
        Arc::new(position.finish()),
        Arc::new(raw.finish()),
        Arc::new(enc.finish()),
        Arc::new(size.finish()),
        Arc::new(truncated.finish()),
        Arc::new(date.finish()),
    ];
    match RecordBatch::try_new(dead_letters_schema(), cols) {
        Ok(b) => b,
        Err(e) => panic!("dead letter builder does not match the dead_letters schema: {e}"),
    }
}

/// Per-type event counts and other figures of a decode pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub events: [u64; EventType::ALL.len()],
    pub dead_letters: u64,
    pub skipped: u64,
    /// CloudTrail records of identities that are not a function's role
    /// session (users, services, other sessions): valid, not stored.
    pub skipped_cloudtrail: u64,
}

impl Counts {
    pub fn total_events(&self) -> u64 {
        self.events.iter().sum()
    }

    pub fn add(&mut self, other: &Counts) {
        for (a, b) in self.events.iter_mut().zip(other.events.iter()) {
            *a += b;
        }
        self.dead_letters += other.dead_letters;
        self.skipped += other.skipped;
        self.skipped_cloudtrail += other.skipped_cloudtrail;
    }
}

/// A [`Sink`] that appends events to an [`EventsBuilder`] and collects dead letters.
pub struct BatchSink {
    pub events: EventsBuilder,
    pub dead: Vec<DeadLetter>,
    pub counts: Counts,
}

impl BatchSink {
    pub fn new(ingested_at_us: i64) -> Self {
        Self::with_capacity(ingested_at_us, 0)
    }

    /// A sink with room for about `rows` events.
    pub fn with_capacity(ingested_at_us: i64, rows: usize) -> Self {
        BatchSink {
            events: EventsBuilder::with_capacity(ingested_at_us, rows),
            dead: Vec::new(),
            counts: Counts::default(),
        }
    }
}

impl Sink for BatchSink {
    fn event(&mut self, row: &EventRow<'_>) {
        self.counts.events[row.event_type.index()] += 1;
        self.events.append(row);
    }
    fn dead_letter(&mut self, dl: DeadLetter) {
        self.counts.dead_letters += 1;
        self.dead.push(dl);
    }
    fn skipped(&mut self, what: &'static str) {
        self.counts.skipped += 1;
        if what == crate::decode::cloudtrail::SKIPPED_IDENTITY {
            self.counts.skipped_cloudtrail += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `sort_order` is the order of the sorted row keys, whatever the input:
    /// in time order or not, one day or several, days far apart, unknown
    /// functions, ties.
    #[test]
    fn sort_order_is_the_order_of_sorted_keys() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let day = DAY_US;
        for case in 0..400 {
            let n = rng.random_range(0..300usize);
            let functions = rng.random_range(1..6u32);
            let spread = match case % 4 {
                0 => 1000,
                1 => 3 * day,
                2 => 5000 * day,
                _ => i64::MAX / 4,
            };
            let base = rng.random_range(-day..day);
            let mut times: Vec<i64> = (0..n).map(|_| base + rng.random_range(0..spread)).collect();
            if case % 3 == 0 {
                times.sort_unstable();
            }
            let ranks: Vec<u32> = (0..n)
                .map(|_| {
                    if rng.random_range(0..20) == 0 {
                        u32::MAX
                    } else {
                        rng.random_range(0..functions)
                    }
                })
                .collect();
            let mut keys: Vec<RowKey> = (0..n)
                .map(|i| (times[i].div_euclid(day), ranks[i], times[i], i as u32))
                .collect();
            keys.sort_unstable();
            let want: Vec<u32> = keys.iter().map(|k| k.3).collect();
            assert_eq!(sort_order(&times, &ranks), want, "case {case}");
        }
    }

    #[test]
    fn dns_facts_use_the_public_suffix_list() {
        let f = dns_facts("Abc.Pastebin.COM.");
        assert_eq!(f.registrable_domain.as_deref(), Some("pastebin.com"));
        assert_eq!(f.label_count, 3);
        assert_eq!(f.query_length, 16);
        assert_eq!(f.max_label_length, 8);
        let f = dns_facts("orders.s3.amazonaws.com");
        assert_eq!(
            f.registrable_domain.as_deref(),
            Some("orders.s3.amazonaws.com")
        );
        let f = dns_facts("www.example.co.uk");
        assert_eq!(f.registrable_domain.as_deref(), Some("example.co.uk"));
    }

    #[test]
    fn builder_matches_schema() {
        let mut b = EventsBuilder::new(0);
        let mut r = EventRow::new(EventType::Dns, 1_700_000_000_000_000, "f");
        r.query = Some("a.example.com".into());
        r.answers = Some(vec!["1.2.3.4".into()]);
        b.append(&r);
        let batch = b.finish();
        assert_eq!(batch.num_rows(), 1);
        assert_eq!(batch.schema(), events_schema());
    }

    /// Every native row of the shipped sample, plus rows with every optional
    /// field and with unknown fields: the typed builder lays out exactly what
    /// the plain one does.
    #[test]
    fn typed_builder_matches_plain_builder() {
        use std::io::Read;
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/sample.jsonl.gz");
        let mut text = String::new();
        flate2::read::GzDecoder::new(std::fs::File::open(path).expect("sample"))
            .read_to_string(&mut text)
            .expect("gzip");
        let extra_lines = [
            r#"{"type":"invocation","time":"2026-11-20T00:00:01Z","function":"f","request_id":"r1","duration_ms":3.5,"billed_ms":4,"cpu_ms":1.5,"memory_mb":128,"max_memory_mb":90,"init_ms":200.0,"timeout_ms":3000,"status":"error","error_type":"Boom","trigger":"api","event_bytes":12,"event":{"a":1},"query":"moved.example.com","custom":[1,2]}"#,
            r#"{"type":"dns","time":"2026-11-20T00:00:02Z","function":"f","request_id":"r1","query":"x.pastebin.com","qtype":"A","rcode":"NOERROR","answers":["1.2.3.4","5.6.7.8"],"exe":"/bin/sh"}"#,
            r#"{"type":"dns","time":"2026-11-20T00:00:02Z","function":"g","request_id":"r2","query":"localhost"}"#,
            r#"{"type":"function_config","time":"2026-11-20T00:00:03Z","function":"f","memory_mb":256,"timeout_ms":6000,"permissions":[],"layers":["l"]}"#,
        ];
        let rows: Vec<EventRow<'_>> = text
            .lines()
            .chain(extra_lines)
            .filter_map(|l| crate::decode::native::parse_native(l).ok())
            .collect();
        assert!(rows.len() > 2900, "{} rows", rows.len());
        for t in EventType::ALL.iter().filter(|t| **t != EventType::Log) {
            assert!(rows.iter().any(|r| r.event_type == *t), "no {t} row");
        }
        let mut plain = EventsBuilder::new(7);
        let mut typed = TypedEventsBuilder::with_capacity(7, 0);
        for r in &rows {
            plain.append(r);
            typed.append(r);
        }
        let typed = typed.finish().expect("typed batch");
        let plain = plain.finish();
        for (c, field) in events_schema().fields().iter().enumerate() {
            assert_eq!(
                typed.column(c).to_data(),
                plain.column(c).to_data(),
                "column {}",
                field.name()
            );
        }
        assert_eq!(typed, plain);

        // Sorted by (day, function, time), from a builder sized after the
        // last chunk: the rows come out as the plain builder lays them out
        // when they are appended in that order.
        let mut order: Vec<usize> = (0..rows.len()).collect();
        order.sort_by_key(|&i| {
            let r = &rows[i];
            (
                r.time_us.div_euclid(DAY_US),
                r.function.clone(),
                r.time_us,
                i,
            )
        });
        assert!(!order.is_sorted(), "the sample is not already in order");
        let mut shape = ChunkShape::default();
        for round in 0..2 {
            let mut typed = TypedEventsBuilder::with_shape(7, &shape);
            for r in &rows {
                typed.append(r);
            }
            let typed = typed.finish_sorted(Some(&mut shape)).expect("sorted batch");
            let mut plain = EventsBuilder::new(7);
            for &i in &order {
                plain.append(&rows[i]);
            }
            assert_eq!(typed, plain.finish(), "round {round}");
        }
        assert_eq!(shape.rows[COMMON], rows.len());
        assert_eq!(
            shape.rows[EventType::Dns.index()],
            rows.iter()
                .filter(|r| r.event_type == EventType::Dns)
                .count()
        );
        let event = events_schema().index_of("event").expect("event column");
        let event_bytes: usize = rows
            .iter()
            .filter_map(|r| r.event.as_deref())
            .map(str::len)
            .sum();
        assert_eq!(shape.bytes[event], event_bytes);
    }

    #[test]
    fn column_groups_follow_the_schema() {
        let schema = events_schema();
        assert_eq!(schema.fields().len(), COLUMN_GROUPS.len());
        let group = |name: &str| COLUMN_GROUPS[schema.index_of(name).expect(name)];
        assert_eq!(group("version"), COMMON);
        assert_eq!(group("duration_ms"), INV);
        assert_eq!(group("memory_mb"), COMMON);
        assert_eq!(group("max_label_length"), DNS);
        assert_eq!(group("parent_exe"), PROC);
        assert_eq!(group("bytes_in"), NET);
        assert_eq!(group("op"), FILE);
        assert_eq!(group("error_code"), API);
        assert_eq!(group("code_sha256"), CFG);
        assert_eq!(group("log_stream"), LOG);
        assert_eq!(group("extra"), COMMON);
        for (slot, &c) in KEY_COLUMNS.iter().enumerate() {
            assert_eq!(COLUMN_GROUPS[c], KEY, "key column {slot}");
        }
        let keys = ["time", "type", "function", "ingested_at", "date"];
        for (slot, name) in keys.iter().enumerate() {
            assert_eq!(KEY_COLUMNS[slot], schema.index_of(name).expect(name));
        }
        assert_eq!(
            COLUMN_GROUPS.iter().filter(|&&g| g == KEY).count(),
            keys.len()
        );
    }

    #[test]
    fn raw_bytes_are_text_or_base64() {
        assert_eq!(encode_raw(b"abc", 3), ("abc".to_string(), "utf8", false));
        let (t, e, _) = encode_raw(&[0xff, 0xfe], 2);
        assert_eq!((t.as_str(), e), ("//4=", "base64"));
    }
}
