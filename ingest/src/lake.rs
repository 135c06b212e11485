//! The lake: a folder (or object-store prefix) holding the Delta tables
//! `events` and `dead_letters`, and a small `_fnwatch.json` marker saying which
//! lake format wrote it.
//!
//! Progress of every source is committed *in the same Delta commit* as the
//! data it covers, as Delta application transactions (`txn` actions): a file's
//! key maps to the number of its lines that are in the table. A reader never
//! sees half a flush, and a crash loses nothing that was committed.

use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use bytes::Bytes;
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::{Action, Add, StructType, Transaction};
use deltalake::logstore::ObjectStoreRef;
use deltalake::logstore::object_store::path::Path as ObjPath;
use deltalake::logstore::object_store::{
    Error as ObjectStoreError, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload,
};
use deltalake::parquet::basic::{Compression, ZstdLevel};
use deltalake::parquet::file::properties::{EnabledStatistics, WriterProperties};
use deltalake::parquet::schema::types::ColumnPath;
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::writer::{DeltaWriter, RecordBatchWriter, WriteMode};
use deltalake::{DeltaTable, DeltaTableError};
use serde::{Deserialize, Serialize};
use tracing::{debug, info};
use url::Url;

use crate::error::{IngestError, Result};
use crate::schema::{
    ALERT_PARTITIONS, DEAD_LETTER_PARTITIONS, EVENTS_PARTITIONS, LAKE_FORMAT_VERSION,
    alerts_schema, dead_letters_schema, events_schema,
};

/// Name of the marker file at the lake root.
pub const MARKER: &str = "_fnwatch.json";
/// Table names inside a lake.
pub const EVENTS: &str = "events";
pub const DEAD_LETTERS: &str = "dead_letters";
pub const ALERTS: &str = "alerts";

#[derive(Debug, Serialize, Deserialize)]
struct Marker {
    format: String,
    version: u32,
    #[serde(default)]
    created_by: String,
}

/// Where a lake lives: a local folder, or a prefix in an object store
/// (`s3://bucket/prefix`, through `object_store`).
#[derive(Debug, Clone)]
pub enum Location {
    Local(PathBuf),
    Remote(Url),
}

impl Location {
    /// Parses what the user gave as `--lake`.
    pub fn parse(spec: &str) -> Result<Location> {
        let unsupported = |why: String| IngestError::UnsupportedLocation {
            location: spec.to_string(),
            why,
        };
        if let Some((scheme, _)) = spec.split_once("://") {
            return match scheme {
                "file" => Url::parse(spec)
                    .ok()
                    .and_then(|u| u.to_file_path().ok())
                    .map(Location::Local)
                    .ok_or_else(|| unsupported("not a valid file:// URL".into())),
                "s3" | "s3a" => {
                    let mut url = Url::parse(spec)
                        .map_err(|e| unsupported(format!("not a valid URL: {e}")))?;
                    if url.host_str().is_none_or(str::is_empty) {
                        return Err(unsupported("the URL names no bucket".into()));
                    }
                    if !url.path().ends_with('/') {
                        let path = format!("{}/", url.path());
                        url.set_path(&path);
                    }
                    Ok(Location::Remote(url))
                }
                other => Err(unsupported(format!(
                    "`{other}://` lakes are not supported; use a local path or s3://bucket/prefix"
                ))),
            };
        }
        let p = PathBuf::from(spec);
        if p.is_absolute() {
            Ok(Location::Local(p))
        } else {
            std::env::current_dir()
                .map(|d| Location::Local(d.join(p)))
                .map_err(|source| IngestError::Storage {
                    path: spec.to_string(),
                    source,
                })
        }
    }

    /// The lake root as a URL ending in `/`.
    fn url(&self) -> Result<Url> {
        match self {
            Location::Remote(u) => Ok(u.clone()),
            Location::Local(p) => {
                Url::from_directory_path(p).map_err(|_| IngestError::UnsupportedLocation {
                    location: p.display().to_string(),
                    why: "cannot be expressed as a file URL".into(),
                })
            }
        }
    }

    /// URL of one of the lake's tables.
    fn table_url(&self, name: &str) -> Result<Url> {
        let base = self.url()?;
        base.join(&format!("{name}/"))
            .map_err(|e| IngestError::UnsupportedLocation {
                location: base.to_string(),
                why: format!("table `{name}`: {e}"),
            })
    }

    /// An object store rooted at the lake (credentials, region and endpoint
    /// from the standard `AWS_*` environment for `s3://`).
    fn store(&self) -> Result<ObjectStoreRef> {
        if let Location::Local(p) = self {
            std::fs::create_dir_all(p).map_err(|source| IngestError::Storage {
                path: p.display().to_string(),
                source,
            })?;
        }
        let url = self.url()?;
        deltalake::logstore::store_for(&url, std::iter::empty::<(String, String)>()).map_err(|e| {
            IngestError::UnsupportedLocation {
                location: url.to_string(),
                why: format!("cannot open its storage: {e}"),
            }
        })
    }
}

/// An open lake.
pub struct Lake {
    location: Location,
    display: String,
    store: ObjectStoreRef,
    pub events: DeltaTable,
    pub dead_letters: DeltaTable,
    /// Layout version in the lake's marker.
    format_version: u32,
}

impl std::fmt::Debug for Lake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lake")
            .field("location", &self.location)
            .finish()
    }
}

fn delta_err(table: &str, step: &'static str) -> impl FnOnce(DeltaTableError) -> IngestError {
    let table = table.to_string();
    move |source| IngestError::Delta {
        table,
        step,
        source: Box::new(source),
    }
}

fn store_err(display: &str, key: &str) -> impl FnOnce(ObjectStoreError) -> IngestError {
    let path = format!("{}/{key}", display.trim_end_matches('/'));
    move |source| IngestError::ObjectStore {
        path,
        source: Box::new(source),
    }
}

/// Reads an object of the lake; `None` when it does not exist.
async fn get_object(store: &dyn ObjectStore, display: &str, key: &str) -> Result<Option<Bytes>> {
    match store.get(&ObjPath::from(key)).await {
        Ok(r) => r.bytes().await.map(Some).map_err(store_err(display, key)),
        Err(ObjectStoreError::NotFound { .. }) => Ok(None),
        Err(e) => Err(store_err(display, key)(e)),
    }
}

fn check_marker(bytes: &[u8], display: &str) -> Result<Marker> {
    let marker: Marker = serde_json::from_slice(bytes).map_err(|e| IngestError::NotALake {
        path: display.to_string(),
        why: format!("{MARKER} is not valid: {e}"),
    })?;
    if marker.format != "fnwatch-lake" {
        return Err(IngestError::NotALake {
            path: display.to_string(),
            why: format!("{MARKER} names format `{}`", marker.format),
        });
    }
    if marker.version > LAKE_FORMAT_VERSION {
        return Err(IngestError::NewerLake {
            path: display.to_string(),
            found: marker.version,
            supported: LAKE_FORMAT_VERSION,
        });
    }
    Ok(marker)
}

async fn read_marker(store: &dyn ObjectStore, display: &str) -> Result<Marker> {
    match get_object(store, display, MARKER).await? {
        Some(bytes) => check_marker(&bytes, display),
        None => Err(IngestError::NotALake {
            path: display.to_string(),
            why: format!(
                "it has no {MARKER} (create a lake with `fnwatch ingest --lake {display} FILES`)"
            ),
        }),
    }
}

fn new_marker() -> Result<Vec<u8>> {
    let marker = Marker {
        format: "fnwatch-lake".into(),
        version: LAKE_FORMAT_VERSION,
        created_by: format!("fnwatch {}", env!("CARGO_PKG_VERSION")),
    };
    serde_json::to_vec_pretty(&marker).map_err(|e| IngestError::Internal(format!("marker: {e}")))
}

async fn open_table(location: &Location, display: &str, name: &str) -> Result<DeltaTable> {
    let url = location.table_url(name)?;
    deltalake::open_table(url).await.map_err(|e| match e {
        DeltaTableError::NotATable(_) | DeltaTableError::InvalidTableLocation(_) => {
            IngestError::NotALake {
                path: display.to_string(),
                why: format!("its `{name}` table is missing"),
            }
        }
        other => IngestError::Delta {
            table: name.to_string(),
            step: "open",
            source: Box::new(other),
        },
    })
}

/// The `events` columns this build writes that `table` lacks.
fn missing_event_columns(table: &DeltaTable) -> Result<Vec<deltalake::kernel::StructField>> {
    let have: std::collections::HashSet<String> = table
        .snapshot()
        .map_err(delta_err(EVENTS, "read the schema"))?
        .schema()
        .fields()
        .map(|f| f.name().to_string())
        .collect();
    let want: StructType = events_schema()
        .as_ref()
        .try_into_kernel()
        .map_err(|e| IngestError::Internal(format!("schema of `{EVENTS}`: {e}")))?;
    Ok(want
        .fields()
        .filter(|f| !have.contains(f.name()))
        .cloned()
        .collect())
}

/// Upgrades the `events` table of a lake made by an older build in place:
/// the columns added since (contract v1.1: `source`, `source_ip`,
/// `user_agent`, `event_id`, `statements`, `env_keys`) are added to the
/// table's schema in one metadata-only commit, and the files written before
/// read them as null. A lake another process upgraded first is re-read.
async fn upgrade_events(location: &Location, spec: &str, table: DeltaTable) -> Result<DeltaTable> {
    let missing = missing_event_columns(&table)?;
    if missing.is_empty() {
        return Ok(table);
    }
    let names: Vec<String> = missing.iter().map(|f| f.name().to_string()).collect();
    match table.add_columns().with_fields(missing).await {
        Ok(t) => {
            info!(lake = %spec, columns = %names.join(", "), "upgraded the events table: added the columns of contract v1.1");
            Ok(t)
        }
        Err(e) => {
            let t = open_table(location, spec, EVENTS).await?;
            if missing_event_columns(&t)?.is_empty() {
                return Ok(t);
            }
            Err(IngestError::Delta {
                table: EVENTS.to_string(),
                step: "add the columns of contract v1.1 (source, source_ip, user_agent, event_id, statements, env_keys) to a lake made by an older fnwatch",
                source: Box::new(e),
            })
        }
    }
}

/// Creates a table; when another process created it first, opens theirs.
async fn create_table(
    location: &Location,
    display: &str,
    name: &str,
    schema: &arrow::datatypes::Schema,
    partitions: &[&str],
) -> Result<DeltaTable> {
    if let Location::Local(root) = location {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).map_err(|source| IngestError::Storage {
            path: dir.display().to_string(),
            source,
        })?;
    }
    let url = location.table_url(name)?;
    let kernel: StructType = schema
        .try_into_kernel()
        .map_err(|e| IngestError::Internal(format!("schema of `{name}`: {e}")))?;
    let table = DeltaTable::try_from_url(url)
        .await
        .map_err(delta_err(name, "prepare"))?;
    let created = table
        .create()
        .with_table_name(name)
        .with_columns(kernel.fields().cloned())
        .with_partition_columns(partitions.iter().copied())
        .with_configuration_property(deltalake::TableProperty::CheckpointInterval, Some("50"))
        .await;
    match created {
        Ok(t) => Ok(t),
        Err(e) => match open_table(location, display, name).await {
            Ok(t) => {
                debug!(table = name, error = %e, "table created by another process first");
                Ok(t)
            }
            Err(_) => Err(delta_err(name, "create")(e)),
        },
    }
}

impl Lake {
    /// Opens an existing lake; a path that is not one is a clear error.
    pub async fn open(spec: &str) -> Result<Lake> {
        let location = Location::parse(spec)?;
        if let Location::Local(root) = &location
            && !root.is_dir()
        {
            return Err(IngestError::NotALake {
                path: spec.to_string(),
                why: "no such directory (create one with `fnwatch ingest --lake PATH FILES`)"
                    .into(),
            });
        }
        let store = location.store()?;
        let marker = read_marker(store.as_ref(), spec).await?;
        let events = open_table(&location, spec, EVENTS).await?;
        let events = upgrade_events(&location, spec, events).await?;
        let dead_letters = open_table(&location, spec, DEAD_LETTERS).await?;
        Ok(Lake {
            location,
            display: spec.to_string(),
            store,
            events,
            dead_letters,
            format_version: marker.version,
        })
    }

    /// Whether every file ingest into this lake recorded its files' probes
    /// (lakes created by builds of layout version 2 and later).
    pub fn records_file_probes(&self) -> bool {
        self.format_version >= 2
    }

    /// Opens a lake, creating it when the location does not exist or is empty.
    pub async fn open_or_create(spec: &str) -> Result<Lake> {
        match Location::parse(spec)? {
            Location::Local(root) => Lake::create_local(spec, &root).await,
            remote @ Location::Remote(_) => Lake::create_remote(spec, remote).await,
        }
    }

    async fn create_local(spec: &str, root: &Path) -> Result<Lake> {
        let storage = |source| IngestError::Storage {
            path: spec.to_string(),
            source,
        };
        let empty = match std::fs::read_dir(root) {
            Ok(mut it) => it.next().is_none(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
            Err(e) => return Err(storage(e)),
        };
        if !empty {
            return Lake::open(spec).await;
        }
        // Built beside its final place and renamed into it, so two
        // processes creating the same lake at once cannot leave half of one:
        // the first rename wins, the other opens the winner's lake.
        let parent = root
            .parent()
            .ok_or_else(|| IngestError::UnsupportedLocation {
                location: spec.to_string(),
                why: "a lake cannot be the file system root".into(),
            })?;
        std::fs::create_dir_all(parent).map_err(storage)?;
        let name = root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "lake".into());
        let building = parent.join(format!(".{name}.creating-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&building);
        std::fs::create_dir_all(&building).map_err(storage)?;
        let at = Location::Local(building.clone());
        create_table(&at, spec, EVENTS, &events_schema(), &EVENTS_PARTITIONS).await?;
        create_table(
            &at,
            spec,
            DEAD_LETTERS,
            &dead_letters_schema(),
            &DEAD_LETTER_PARTITIONS,
        )
        .await?;
        std::fs::write(building.join(MARKER), new_marker()?).map_err(storage)?;
        if let Err(e) = std::fs::rename(&building, root) {
            let _ = std::fs::remove_dir_all(&building);
            if root.join(MARKER).is_file() {
                // Another process created it first.
                return Lake::open(spec).await;
            }
            return Err(storage(e));
        }
        info!(lake = %spec, "created a new lake");
        Lake::open(spec).await
    }

    /// An object-store lake has no rename: the tables are created with
    /// Delta's own create-if-absent commit (a second creator opens the
    /// first one's table) and the marker last, with a conditional put, so a
    /// lake without its marker is one still being created.
    async fn create_remote(spec: &str, location: Location) -> Result<Lake> {
        let store = location.store()?;
        if get_object(store.as_ref(), spec, MARKER).await?.is_some() {
            return Lake::open(spec).await;
        }
        let listed = store
            .list_with_delimiter(None)
            .await
            .map_err(store_err(spec, ""))?;
        // The tables are folders; the marker (of a creator that finished
        // since the first read) is an object.
        let foreign = listed
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename())
            .find(|n| ![EVENTS, DEAD_LETTERS].contains(n))
            .or_else(|| {
                listed
                    .objects
                    .iter()
                    .filter_map(|o| o.location.filename())
                    .find(|n| *n != MARKER)
            });
        if let Some(other) = foreign {
            // Another creator may have finished between the two reads (and
            // its workers started writing beside the tables).
            if get_object(store.as_ref(), spec, MARKER).await?.is_some() {
                return Lake::open(spec).await;
            }
            return Err(IngestError::NotALake {
                path: spec.to_string(),
                why: format!("it has no {MARKER} and already holds `{other}`"),
            });
        }
        create_table(
            &location,
            spec,
            EVENTS,
            &events_schema(),
            &EVENTS_PARTITIONS,
        )
        .await?;
        create_table(
            &location,
            spec,
            DEAD_LETTERS,
            &dead_letters_schema(),
            &DEAD_LETTER_PARTITIONS,
        )
        .await?;
        let put = store
            .put_opts(
                &ObjPath::from(MARKER),
                PutPayload::from(new_marker()?),
                PutOptions::from(PutMode::Create),
            )
            .await;
        match put {
            Ok(_) => info!(lake = %spec, "created a new lake"),
            Err(ObjectStoreError::AlreadyExists { .. }) => {}
            Err(e) => return Err(store_err(spec, MARKER)(e)),
        }
        Lake::open(spec).await
    }

    /// Where the lake lives.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// An object store rooted at the lake, for the lake's own small files
    /// (models, Kinesis leases).
    pub fn store(&self) -> ObjectStoreRef {
        self.store.clone()
    }

    /// A local folder for state that belongs to this machine's use of the
    /// lake (delivery ledgers of alert outputs): the lake folder itself for a
    /// local lake; for an object-store lake `$FNWATCH_STATE_DIR` (default
    /// `~/.local/state/fnwatch`) then the bucket and prefix.
    pub fn local_state_root(&self) -> Result<PathBuf> {
        match &self.location {
            Location::Local(p) => Ok(p.clone()),
            Location::Remote(url) => {
                let base = match std::env::var_os("FNWATCH_STATE_DIR") {
                    Some(d) => PathBuf::from(d),
                    None => {
                        let home = std::env::var_os("HOME").ok_or_else(|| {
                            IngestError::UnsupportedLocation {
                                location: self.display.clone(),
                                why: "neither FNWATCH_STATE_DIR nor HOME is set for local state"
                                    .into(),
                            }
                        })?;
                        PathBuf::from(home).join(".local/state/fnwatch")
                    }
                };
                let mut p = base.join(url.scheme()).join(url.host_str().unwrap_or("_"));
                for seg in url
                    .path()
                    .split('/')
                    .filter(|s| !s.is_empty() && *s != "..")
                {
                    p = p.join(seg);
                }
                Ok(p)
            }
        }
    }

    /// The location as the user gave it.
    pub fn display(&self) -> &str {
        &self.display
    }

    /// URL of one of the lake's tables.
    pub fn table_url(&self, name: &str) -> Result<Url> {
        self.location.table_url(name)
    }

    /// Reads a small object of the lake (`None` if absent).
    pub async fn get_object(&self, key: &str) -> Result<Option<Bytes>> {
        get_object(self.store.as_ref(), &self.display, key).await
    }

    /// Writes a small object only if it does not exist yet (false if it does).
    pub async fn create_object(&self, key: &str, body: Vec<u8>) -> Result<bool> {
        let put = self
            .store
            .put_opts(
                &ObjPath::from(key),
                PutPayload::from(body),
                PutOptions::from(PutMode::Create),
            )
            .await;
        match put {
            Ok(_) => Ok(true),
            Err(ObjectStoreError::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(store_err(&self.display, key)(e)),
        }
    }

    /// Names of the objects directly under `prefix` (not recursive).
    pub async fn list_objects(&self, prefix: &str) -> Result<Vec<String>> {
        let listed = self
            .store
            .list_with_delimiter(Some(&ObjPath::from(prefix)))
            .await
            .map_err(store_err(&self.display, prefix))?;
        Ok(listed
            .objects
            .iter()
            .filter_map(|o| o.location.filename().map(str::to_string))
            .collect())
    }

    /// How a key of the lake is shown to the user.
    pub fn object_display(&self, key: &str) -> String {
        format!("{}/{key}", self.display.trim_end_matches('/'))
    }

    /// The last committed application-transaction version of `app_id` in a table.
    pub async fn txn_version(&self, table: &str, app_id: &str) -> Result<Option<i64>> {
        let t = match table {
            EVENTS => &self.events,
            DEAD_LETTERS => &self.dead_letters,
            other => return Err(IngestError::Internal(format!("no table `{other}`"))),
        };
        let state = t.snapshot().map_err(delta_err(table, "read snapshot"))?;
        state
            .transaction_version(t.log_store().as_ref(), app_id)
            .await
            .map_err(delta_err(table, "read transaction version"))
    }

    /// The `alerts` table, if detection has written to this lake.
    pub async fn alerts(&self) -> Result<Option<DeltaTable>> {
        let log = format!("{ALERTS}/_delta_log");
        if self.list_objects(&log).await?.is_empty() {
            return Ok(None);
        }
        open_table(&self.location, &self.display, ALERTS)
            .await
            .map(Some)
    }

    /// Appends alerts (a batch of [`alerts_schema`]) in one commit, creating
    /// the table on first use. The caller removes alerts already stored.
    pub async fn append_alerts(&self, batch: RecordBatch) -> Result<()> {
        let mut table = match self.alerts().await? {
            Some(t) => t,
            None => {
                create_table(
                    &self.location,
                    &self.display,
                    ALERTS,
                    &alerts_schema(),
                    &ALERT_PARTITIONS,
                )
                .await?
            }
        };
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let mut writer = RecordBatchWriter::for_table(&table)
            .map_err(delta_err(ALERTS, "prepare writer"))?
            .with_writer_properties(writer_properties(&WriteOptions::default(), ALERTS)?);
        writer
            .write(batch)
            .await
            .map_err(delta_err(ALERTS, "write"))?;
        writer
            .flush_and_commit(&mut table)
            .await
            .map_err(delta_err(ALERTS, "commit"))?;
        Ok(())
    }

    /// Re-reads both tables' latest versions.
    pub async fn refresh(&mut self) -> Result<()> {
        self.events
            .update_state()
            .await
            .map_err(delta_err(EVENTS, "refresh"))?;
        self.dead_letters
            .update_state()
            .await
            .map_err(delta_err(DEAD_LETTERS, "refresh"))
    }
}

/// How the writer lays out files.
#[derive(Debug, Clone)]
pub struct WriteOptions {
    /// zstd level of the Parquet files.
    pub zstd_level: i32,
    /// Rows per Parquet row group.
    pub row_group_rows: usize,
    /// A file is closed and a new one started past this size.
    pub target_file_bytes: u64,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            zstd_level: 1,
            row_group_rows: 256 * 1024,
            target_file_bytes: 128 * 1024 * 1024,
        }
    }
}

/// Leaf columns of lists whose values rarely repeat within a file.
const HIGH_CARDINALITY_LEAVES: [&[&str]; 1] = [&["answers", "list", "element"]];

/// Columns of `events` whose values rarely repeat within a file.
const HIGH_CARDINALITY: [&str; 12] = [
    "remote_ip",
    "time",
    "request_id",
    "duration_ms",
    "cpu_ms",
    "init_ms",
    "event_bytes",
    "event",
    "bytes_out",
    "bytes_in",
    "resource",
    "path",
];

/// Columns of `events` with min/max statistics (per page, and so per row group
/// and in the Delta log): the sort key, by which a file's pages can be
/// skipped, and the type. Rows are sorted by (function, time), so any other
/// column's range spans nearly all its values in every page and would prune
/// nothing, while computing it costs about a twentieth of ingest's CPU.
/// `dead_letters` and `alerts` are written in arrival order, so every column
/// of theirs keeps statistics (their `ingested_at` and `detected_at` ranges
/// let queries skip files).
const STATISTICS_COLUMNS: [&str; 3] = ["time", "type", "function"];

/// Parquet settings of the files of `table`.
fn writer_properties(o: &WriteOptions, table: &str) -> Result<WriterProperties> {
    let level = ZstdLevel::try_new(o.zstd_level)
        .map_err(|e| IngestError::Internal(format!("zstd level {}: {e}", o.zstd_level)))?;
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(level))
        .set_max_row_group_row_count(Some(o.row_group_rows))
        // Rows per step of the column writers (1,024 by default): most of the
        // 56 columns are null in most rows, and the writer's fixed cost per
        // step and column was about a tenth of ingest's CPU.
        .set_write_batch_size(8 * 1024)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_created_by(format!("fnwatch {}", env!("CARGO_PKG_VERSION")));
    // Near-unique columns: a dictionary only costs time before the writer
    // falls back to plain encoding, and zstd finds their repeats anyway.
    for col in HIGH_CARDINALITY {
        b = b.set_column_dictionary_enabled(ColumnPath::from(col), false);
    }
    for col in HIGH_CARDINALITY_LEAVES {
        let path = ColumnPath::new(col.iter().map(|p| p.to_string()).collect());
        b = b.set_column_dictionary_enabled(path, false);
    }
    if table == EVENTS {
        b = b.set_statistics_enabled(EnabledStatistics::None);
        for col in STATISTICS_COLUMNS {
            b = b.set_column_statistics_enabled(ColumnPath::from(col), EnabledStatistics::Page);
        }
    }
    Ok(b.build())
}

/// Sorts `events` batches into one batch ordered by (day, function, time):
/// each day's partition is one contiguous slice, the events of one invocation
/// end up together and each file is ordered for pruning by function and time.
///
/// Functions are ranked once, so the sort compares integers. When every input
/// batch is already in order (the file decoders sort their chunks), the batches
/// are merged and each column is copied in contiguous ranges; otherwise the
/// rows are sorted and gathered one by one, straight from the input batches.
pub fn sort_events(batches: &[RecordBatch]) -> Result<RecordBatch> {
    use arrow::array::{AsArray, TimestampMicrosecondArray};
    use foldhash::HashMap;
    let internal =
        |e: arrow::error::ArrowError| IngestError::Internal(format!("sorting events: {e}"));
    let schema = events_schema();
    let fi = schema.index_of("function").map_err(internal)?;
    let ti = schema.index_of("time").map_err(internal)?;
    let mut ranks: HashMap<&str, u32> = HashMap::default();
    for b in batches {
        let mut last = None;
        // Sorted batches hold each function's rows together: hash once per run.
        for f in b.column(fi).as_string::<i32>().iter().flatten() {
            if last != Some(f) {
                let next = ranks.len() as u32;
                ranks.entry(f).or_insert(next);
                last = Some(f);
            }
        }
    }
    let mut names: Vec<&str> = ranks.keys().copied().collect();
    names.sort_unstable();
    for (rank, name) in names.iter().enumerate() {
        ranks.insert(name, rank as u32);
    }
    // (day, function rank, time) of every row, per batch.
    let mut keys: Vec<Vec<SortKey>> = Vec::with_capacity(batches.len());
    for b in batches {
        let functions = b.column(fi).as_string::<i32>();
        let times = b
            .column(ti)
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .ok_or_else(|| {
                IngestError::Internal("events batch: `time` is not a timestamp".into())
            })?;
        let mut last_fn: Option<(&str, u32)> = None;
        let k: Vec<SortKey> = (0..b.num_rows())
            .map(|row| {
                let f = functions.value(row);
                let rank = match last_fn {
                    Some((name, rank)) if name == f => rank,
                    _ => {
                        let rank = ranks.get(f).copied().unwrap_or(u32::MAX);
                        last_fn = Some((f, rank));
                        rank
                    }
                };
                let t = times.value(row);
                (t.div_euclid(86_400_000_000), rank, t)
            })
            .collect();
        keys.push(k);
    }
    if keys.iter().all(|k| k.is_sorted()) {
        return merge_sorted(batches, &keys).map_err(internal);
    }
    let total: usize = batches.iter().map(|b| b.num_rows()).sum();
    let mut flat: Vec<(SortKey, u32, u32)> = Vec::with_capacity(total);
    for (bi, k) in keys.iter().enumerate() {
        flat.extend(
            k.iter()
                .enumerate()
                .map(|(row, &key)| (key, bi as u32, row as u32)),
        );
    }
    flat.sort_unstable();
    let pairs: Vec<(usize, usize)> = flat
        .iter()
        .map(|&(_, b, r)| (b as usize, r as usize))
        .collect();
    let refs: Vec<&RecordBatch> = batches.iter().collect();
    arrow::compute::interleave_record_batch(&refs, &pairs).map_err(internal)
}

/// (UTC day, function rank, time) of one row.
type SortKey = (i64, u32, i64);

/// Merges batches that are each in key order: picks contiguous ranges of rows
/// (a function's events of one input batch, typically) and copies each column
/// range by range.
fn merge_sorted(
    batches: &[RecordBatch],
    keys: &[Vec<SortKey>],
) -> std::result::Result<RecordBatch, arrow::error::ArrowError> {
    use arrow::array::{Array, ArrayRef};
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    let schema = events_schema();
    let mut cursor = vec![0usize; batches.len()];
    let mut heap: BinaryHeap<Reverse<(SortKey, usize)>> = keys
        .iter()
        .enumerate()
        .filter_map(|(b, k)| k.first().map(|&first| Reverse((first, b))))
        .collect();
    // (batch, start row, end row)
    let mut ranges: Vec<(usize, usize, usize)> = Vec::new();
    while let Some(Reverse((_, b))) = heap.pop() {
        let k = &keys[b];
        let start = cursor[b];
        let end = match heap.peek() {
            Some(Reverse((next, _))) => {
                // Rows of this batch up to the next batch's smallest key.
                start + 1 + k[start + 1..].partition_point(|key| key <= next)
            }
            None => k.len(),
        };
        ranges.push((b, start, end));
        cursor[b] = end;
        if end < k.len() {
            heap.push(Reverse((k[end], b)));
        }
    }
    if let [(b, 0, end)] = ranges[..]
        && end == batches[b].num_rows()
    {
        return Ok(batches[b].clone());
    }
    let mut columns = Vec::with_capacity(schema.fields().len());
    for c in 0..schema.fields().len() {
        let slices: Vec<ArrayRef> = ranges
            .iter()
            .map(|&(b, start, end)| batches[b].column(c).slice(start, end - start))
            .collect();
        let refs: Vec<&dyn Array> = slices.iter().map(|a| a.as_ref()).collect();
        columns.push(arrow::compute::concat(&refs)?);
    }
    RecordBatch::try_new(schema, columns)
}

/// What one commit wrote.
#[derive(Debug, Clone, Default)]
pub struct CommitSummary {
    pub events_version: Option<u64>,
    pub dead_letters_version: Option<u64>,
    pub files_added: usize,
    pub bytes_added: i64,
    /// Time spent flushing files to disk (local lakes).
    pub sync_seconds: f64,
}

/// Flushes files and folders of a local lake to disk (`fsync`), on the
/// blocking pool: object_store's local backend writes without it, so
/// without this a power cut after a commit could leave a commit file that
/// names data files the disk never got, or lose the commit file itself.
async fn sync_paths(paths: Vec<PathBuf>) -> Result<f64> {
    if paths.is_empty() {
        return Ok(0.0);
    }
    let started = std::time::Instant::now();
    tokio::task::spawn_blocking(move || {
        for p in &paths {
            std::fs::File::open(p)
                .and_then(|f| f.sync_all())
                .map_err(|source| IngestError::Storage {
                    path: format!("{} (flushing to disk)", p.display()),
                    source,
                })?;
        }
        Ok::<(), IngestError>(())
    })
    .await
    .map_err(|e| IngestError::Internal(format!("flushing files to disk: {e}")))??;
    Ok(started.elapsed().as_secs_f64())
}

/// The local paths to flush before committing `adds` to table `name`: each
/// data file, the folders that list them, and the table folder (which
/// lists new partition folders). Nothing for an object-store lake.
fn data_paths(lake: &Lake, name: &str, adds: &[Add]) -> Result<Vec<PathBuf>> {
    let Location::Local(root) = &lake.location else {
        return Ok(Vec::new());
    };
    let table = root.join(name);
    let base = lake.location.table_url(name)?;
    let mut files = Vec::with_capacity(adds.len());
    let mut dirs = std::collections::BTreeSet::new();
    for a in adds {
        // `path` is relative and URL-encoded, as the Delta protocol has it.
        let file = base
            .join(&a.path)
            .ok()
            .and_then(|u| u.to_file_path().ok())
            .ok_or_else(|| {
                IngestError::Internal(format!(
                    "table `{name}`: data file path `{}` is not a local path",
                    a.path
                ))
            })?;
        if let Some(d) = file.parent() {
            dirs.insert(d.to_path_buf());
        }
        files.push(file);
    }
    dirs.insert(table);
    files.extend(dirs);
    Ok(files)
}

/// The local paths to flush after commit `version` of table `name`: its
/// commit file and the log folder. Nothing for an object-store lake.
fn commit_paths(lake: &Lake, name: &str, version: u64) -> Vec<PathBuf> {
    let Location::Local(root) = &lake.location else {
        return Vec::new();
    };
    let log = root.join(name).join("_delta_log");
    vec![log.join(format!("{version:020}.json")), log]
}

/// Writes sorted runs of events into Parquet files of the `events` table.
/// Several lanes can write at once (each its own files); their files are
/// committed together by [`LakeWriter::commit`].
pub struct EventsLane {
    writer: RecordBatchWriter,
}

impl EventsLane {
    pub fn new(lake: &Lake, opts: &WriteOptions) -> Result<EventsLane> {
        let writer = RecordBatchWriter::for_table(&lake.events)
            .map_err(delta_err(EVENTS, "start writer"))?
            .with_writer_properties(writer_properties(opts, EVENTS)?)
            .with_target_file_size(opts.target_file_bytes);
        Ok(EventsLane { writer })
    }

    /// Sorts batches of events (any order) into one run and streams it into
    /// the open files, one zero-copy slice per day. Returns the rows written.
    pub async fn write_run(&mut self, batches: &[RecordBatch]) -> Result<usize> {
        use arrow::array::AsArray;
        if batches.iter().all(|b| b.num_rows() == 0) {
            return Ok(0);
        }
        let sorted = sort_events(batches)?;
        let rows = sorted.num_rows();
        let di = sorted
            .schema()
            .index_of("date")
            .map_err(|e| IngestError::Internal(format!("events batch: {e}")))?;
        let dates = sorted.column(di).as_string::<i32>().clone();
        let mut start = 0;
        while start < rows {
            let day = dates.value(start);
            let mut end = start + 1;
            while end < rows && dates.value(end) == day {
                end += 1;
            }
            let mut partition = indexmap::IndexMap::new();
            partition.insert(
                "date".to_string(),
                delta_kernel::expressions::Scalar::String(day.to_string()),
            );
            self.writer
                .write_partition(
                    sorted.slice(start, end - start),
                    &partition,
                    WriteMode::Default,
                )
                .await
                .map_err(delta_err(EVENTS, "write"))?;
            start = end;
        }
        Ok(rows)
    }

    /// Encoded bytes written since the last flush.
    pub fn buffered_bytes(&self) -> usize {
        self.writer.buffer_len()
    }

    /// Closes the open files; their `add` actions go to [`LakeWriter::commit`].
    pub async fn flush(&mut self) -> Result<Vec<Add>> {
        self.writer
            .flush()
            .await
            .map_err(delta_err(EVENTS, "flush"))
    }
}

/// Writes dead letters and commits a flush: the events files of every lane,
/// the dead letters, and the source positions they cover.
pub struct LakeWriter {
    dead_letters: RecordBatchWriter,
    dead_rows: u64,
    /// Test failpoint: abort the process between the dead-letter commit and
    /// the events commit of a flush.
    pub abort_between_commits: bool,
}

impl LakeWriter {
    pub fn new(lake: &Lake, opts: &WriteOptions) -> Result<LakeWriter> {
        let dead_letters = RecordBatchWriter::for_table(&lake.dead_letters)
            .map_err(delta_err(DEAD_LETTERS, "start writer"))?
            .with_writer_properties(writer_properties(opts, DEAD_LETTERS)?);
        Ok(LakeWriter {
            dead_letters,
            dead_rows: 0,
            abort_between_commits: false,
        })
    }

    /// Streams a batch of dead letters into the open files.
    pub async fn write_dead_letters(&mut self, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.dead_rows += batch.num_rows() as u64;
        self.dead_letters
            .write(batch)
            .await
            .map_err(delta_err(DEAD_LETTERS, "write"))
    }

    /// Commits the events files `event_adds` and the dead letters written so
    /// far, with the positions they cover. Dead letters commit first, then
    /// events: a crash between the two re-reads the source from the events
    /// position and skips dead letters up to theirs.
    pub async fn commit(
        &mut self,
        lake: &mut Lake,
        event_adds: Vec<Add>,
        positions: &[(String, i64)],
        metadata: serde_json::Map<String, serde_json::Value>,
    ) -> Result<CommitSummary> {
        let mut summary = CommitSummary::default();
        let txns: Vec<Transaction> = positions
            .iter()
            .map(|(id, v)| Transaction::new_with_last_update(id, *v, Some(now_ms())))
            .collect();
        if self.dead_rows > 0 {
            let adds = self
                .dead_letters
                .flush()
                .await
                .map_err(delta_err(DEAD_LETTERS, "flush"))?;
            summary.sync_seconds += sync_paths(data_paths(lake, DEAD_LETTERS, &adds)?).await?;
            summary.files_added += adds.len();
            summary.bytes_added += adds.iter().map(|a| a.size).sum::<i64>();
            let actions = adds.into_iter().map(Action::Add).collect();
            let v = commit_actions(
                &mut lake.dead_letters,
                DEAD_LETTERS,
                actions,
                txns.clone(),
                metadata.clone(),
            )
            .await?;
            summary.sync_seconds += sync_paths(commit_paths(lake, DEAD_LETTERS, v)).await?;
            summary.dead_letters_version = Some(v);
            self.dead_rows = 0;
            if self.abort_between_commits {
                tracing::warn!("failpoint: aborting between the dead-letter and events commits");
                std::process::abort();
            }
        }
        if !event_adds.is_empty() || !txns.is_empty() {
            summary.sync_seconds += sync_paths(data_paths(lake, EVENTS, &event_adds)?).await?;
            summary.files_added += event_adds.len();
            summary.bytes_added += event_adds.iter().map(|a| a.size).sum::<i64>();
            let actions = event_adds.into_iter().map(Action::Add).collect();
            let v = commit_actions(&mut lake.events, EVENTS, actions, txns, metadata).await?;
            summary.sync_seconds += sync_paths(commit_paths(lake, EVENTS, v)).await?;
            summary.events_version = Some(v);
        }
        debug!(
            files = summary.files_added,
            bytes = summary.bytes_added,
            sync_seconds = summary.sync_seconds,
            "lake commit"
        );
        Ok(summary)
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

async fn commit_actions(
    table: &mut DeltaTable,
    name: &str,
    actions: Vec<Action>,
    txns: Vec<Transaction>,
    metadata: serde_json::Map<String, serde_json::Value>,
) -> Result<u64> {
    let snapshot = table.snapshot().map_err(delta_err(name, "read snapshot"))?;
    let partition_by = Some(snapshot.metadata().partition_columns().to_vec());
    let props = CommitProperties::default()
        .with_application_transactions(txns)
        .with_metadata(metadata);
    let operation = DeltaOperation::Write {
        mode: SaveMode::Append,
        partition_by,
        predicate: None,
    };
    let finalized = CommitBuilder::from(props)
        .with_actions(actions)
        .build(Some(snapshot), table.log_store(), operation)
        .await
        .map_err(delta_err(name, "commit"))?;
    let version = finalized.version();
    table
        .update_state()
        .await
        .map_err(delta_err(name, "refresh after commit"))?;
    Ok(version)
}

/// What `compact` did to one table.
#[derive(Debug, Clone, Default)]
pub struct CompactSummary {
    pub table: String,
    pub files_removed: u64,
    pub files_added: u64,
    pub partitions_optimized: u64,
}

impl Lake {
    /// Runs Delta OPTIMIZE (bin-packing small files into files of about
    /// `target_bytes`) on both tables.
    pub async fn compact(
        &mut self,
        target_bytes: u64,
        opts: &WriteOptions,
    ) -> Result<Vec<CompactSummary>> {
        let target = std::num::NonZeroU64::new(target_bytes.max(1024 * 1024))
            .ok_or_else(|| IngestError::Internal("zero target size".into()))?;
        let mut out = Vec::new();
        for name in [EVENTS, DEAD_LETTERS] {
            let table = match name {
                EVENTS => self.events.clone(),
                _ => self.dead_letters.clone(),
            };
            let (table, metrics) = table
                .optimize()
                .with_target_size(target)
                .with_writer_properties(writer_properties(opts, name)?)
                .await
                .map_err(delta_err(name, "optimize"))?;
            info!(
                table = name,
                removed = metrics.num_files_removed,
                added = metrics.num_files_added,
                "compacted"
            );
            out.push(CompactSummary {
                table: name.to_string(),
                files_removed: metrics.num_files_removed,
                files_added: metrics.num_files_added,
                partitions_optimized: metrics.partitions_optimized,
            });
            match name {
                EVENTS => self.events = table,
                _ => self.dead_letters = table,
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::EventsBuilder;
    use crate::event::{EventRow, EventType};
    use arrow::array::{AsArray, TimestampMicrosecondArray};

    /// The writer's per-column settings name real leaf columns of the
    /// `events` files: a misspelt or renamed path would be silently ignored.
    #[test]
    fn column_settings_name_leaf_columns() {
        use deltalake::parquet::arrow::ArrowSchemaConverter;
        let parquet = ArrowSchemaConverter::new()
            .convert(&events_schema())
            .expect("events schema converts to Parquet");
        let leaves: Vec<String> = parquet
            .columns()
            .iter()
            .map(|c| c.path().string())
            .collect();
        let named = HIGH_CARDINALITY
            .iter()
            .chain(STATISTICS_COLUMNS.iter())
            .map(|c| c.to_string())
            .chain(HIGH_CARDINALITY_LEAVES.iter().map(|p| p.join(".")));
        for col in named {
            assert!(
                leaves.contains(&col),
                "{col} is not a leaf column: {leaves:?}"
            );
        }
    }

    fn batch(rows: &[(&'static str, i64)]) -> RecordBatch {
        let mut b = EventsBuilder::new(0);
        for (f, t) in rows {
            let mut r = EventRow::new(EventType::Dns, *t, *f);
            r.request_id = Some("r".into());
            r.query = Some("a.example.com".into());
            b.append(&r);
        }
        b.finish()
    }

    /// (function, time) of every row of an events batch.
    fn functions_and_times(b: &RecordBatch) -> Vec<(&str, i64)> {
        let f = b.column(2).as_string::<i32>();
        let t = b
            .column(0)
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .expect("time");
        (0..b.num_rows())
            .map(|i| (f.value(i), t.value(i)))
            .collect()
    }

    #[tokio::test]
    async fn a_local_commit_flushes_its_data_files_folders_and_commit_files() {
        const DAY: i64 = 86_400_000_000;
        let dir = tempfile::tempdir().expect("temp dir");
        let mut lake = Lake::open_or_create(dir.path().to_str().expect("utf-8"))
            .await
            .expect("lake");
        let opts = WriteOptions::default();
        let mut lane = EventsLane::new(&lake, &opts).expect("lane");
        lane.write_run(&[batch(&[("a", 20_000 * DAY), ("b", 20_001 * DAY)])])
            .await
            .expect("write");
        let adds = lane.flush().await.expect("flush");
        assert_eq!(adds.len(), 2, "one file per day");
        let paths = data_paths(&lake, EVENTS, &adds).expect("paths");
        let table = dir.path().join(EVENTS);
        // Two files, their two partition folders and the table folder, all
        // real paths on disk (a wrong path would be an error, not a no-op).
        assert_eq!(paths.len(), 5, "{paths:?}");
        assert!(paths.iter().all(|p| p.exists()), "{paths:?}");
        assert!(paths.contains(&table));
        assert_eq!(
            paths
                .iter()
                .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
                .count(),
            2
        );
        let mut writer = LakeWriter::new(&lake, &opts).expect("writer");
        let mut dead = crate::builder::DeadLettersBuilder::new(20_000 * DAY);
        dead.push(crate::event::DeadLetter::new(
            "bad",
            &crate::event::Position::file(std::sync::Arc::from("f"), 1),
            b"x",
        ));
        writer
            .write_dead_letters(dead.finish())
            .await
            .expect("dead");
        let summary = writer
            .commit(&mut lake, adds, &[("k".into(), 1)], serde_json::Map::new())
            .await
            .expect("commit");
        assert!(summary.sync_seconds > 0.0, "{summary:?}");
        for (name, v) in [
            (EVENTS, summary.events_version),
            (DEAD_LETTERS, summary.dead_letters_version),
        ] {
            let v = v.expect("committed");
            let paths = commit_paths(&lake, name, v);
            assert!(paths.iter().all(|p| p.exists()), "{paths:?}");
            assert!(paths[0].ends_with(format!("{v:020}.json")), "{paths:?}");
        }
    }

    #[tokio::test]
    async fn a_lake_made_before_the_v1_1_columns_is_upgraded_in_place_and_reads_them_as_null() {
        use deltalake::datafusion::prelude::SessionContext;
        const DAY: i64 = 86_400_000_000;
        const NEW: [&str; 6] = [
            "source",
            "source_ip",
            "user_agent",
            "event_id",
            "statements",
            "env_keys",
        ];
        let dir = tempfile::tempdir().expect("temp dir");
        let spec = dir.path().to_str().expect("utf-8");
        // A lake as a build before contract v1.1 made it: `events` without
        // the new columns, holding one row.
        let full = events_schema();
        let keep: Vec<usize> = (0..full.fields().len())
            .filter(|&i| !NEW.contains(&full.field(i).name().as_str()))
            .collect();
        drop(Lake::open_or_create(spec).await.expect("lake"));
        std::fs::remove_dir_all(dir.path().join(EVENTS)).expect("remove events");
        let location = Location::parse(spec).expect("location");
        let old_schema = full.project(&keep).expect("old schema");
        let old = create_table(&location, spec, EVENTS, &old_schema, &EVENTS_PARTITIONS)
            .await
            .expect("old table");
        let old_row = batch(&[("old", 20_000 * DAY)])
            .project(&keep)
            .expect("old row");
        old.write(vec![old_row]).await.expect("write the old row");

        // Opening it adds the columns; a new row is written with them.
        let mut lake = Lake::open(spec).await.expect("upgraded");
        let fields: Vec<String> = lake
            .events
            .snapshot()
            .expect("snapshot")
            .schema()
            .fields()
            .map(|f| f.name().to_string())
            .collect();
        assert!(
            NEW.iter().all(|n| fields.iter().any(|f| f == n)),
            "{fields:?}"
        );
        let mut b = EventsBuilder::new(0);
        let mut r = EventRow::new(EventType::ApiCall, 20_000 * DAY + 1, "new");
        r.service = Some("s3".into());
        r.action = Some("GetObject".into());
        r.source = Some("cloudtrail".into());
        b.append(&r);
        let opts = WriteOptions::default();
        let mut lane = EventsLane::new(&lake, &opts).expect("lane");
        lane.write_run(&[b.finish()]).await.expect("write");
        let adds = lane.flush().await.expect("flush");
        let mut writer = LakeWriter::new(&lake, &opts).expect("writer");
        writer
            .commit(&mut lake, adds, &[("k".into(), 1)], serde_json::Map::new())
            .await
            .expect("commit");

        // Both rows read back: the old one with the new columns null.
        let table = Lake::open(spec).await.expect("reopen").events;
        let ctx = SessionContext::new();
        table
            .update_datafusion_session(&ctx.state())
            .expect("session");
        let provider = table.table_provider().await.expect("provider");
        ctx.register_table("events", provider).expect("register");
        let out = ctx
            .sql("SELECT function, source, event_id FROM events ORDER BY function")
            .await
            .expect("query")
            .collect()
            .await
            .expect("rows");
        let rows = arrow::util::pretty::pretty_format_batches(&out)
            .expect("format")
            .to_string();
        assert!(
            rows.contains("| new      | cloudtrail |          |"),
            "{rows}"
        );
        assert!(
            rows.contains("| old      |            |          |"),
            "{rows}"
        );
    }

    #[test]
    fn sorted_batches_merge_like_a_full_sort() {
        const DAY: i64 = 86_400_000_000;
        let mut rows: Vec<(&'static str, i64)> = Vec::new();
        for i in 0..300i64 {
            let f = ["b", "a", "c", "aa"][(i % 4) as usize];
            rows.push((f, (i * 7919) % 1000 * DAY / 400 + i));
        }
        // The same rows as unsorted batches, and as batches each in order.
        let unsorted: Vec<RecordBatch> = rows.chunks(70).map(batch).collect();
        let sorted: Vec<RecordBatch> = unsorted
            .iter()
            .map(|b| sort_events(std::slice::from_ref(b)).expect("sort one"))
            .collect();
        let full = sort_events(&unsorted).expect("full sort");
        let merged = sort_events(&sorted).expect("merge");
        assert_eq!(merged.num_rows(), rows.len());
        assert_eq!(merged, full);
        let keys: Vec<(i64, &str, i64)> = functions_and_times(&merged)
            .into_iter()
            .map(|(f, t)| (t.div_euclid(DAY), f, t))
            .collect();
        assert!(keys.is_sorted());
    }

    #[test]
    fn runs_sort_by_day_function_time_across_batches() {
        const DAY: i64 = 86_400_000_000;
        let a = batch(&[("b", DAY + 5), ("a", 7), ("b", 3)]);
        let b = batch(&[("a", 2), ("a", DAY + 1), ("c", 1)]);
        let sorted = sort_events(&[a, b]).expect("sorted");
        assert_eq!(
            functions_and_times(&sorted),
            vec![
                ("a", 2),
                ("a", 7),
                ("b", 3),
                ("c", 1),
                ("a", DAY + 1),
                ("b", DAY + 5)
            ]
        );
        let dates = sorted
            .column_by_name("date")
            .expect("date")
            .as_string::<i32>();
        assert_eq!(dates.value(0), "1970-01-01");
        assert_eq!(dates.value(5), "1970-01-02");
    }

    #[test]
    fn files_carry_statistics_on_the_sort_key_only() {
        use deltalake::parquet::arrow::ArrowWriter;
        use deltalake::parquet::file::reader::{FileReader, SerializedFileReader};
        let rows: Vec<(&'static str, i64)> = (0..500i64)
            .map(|i| (["a", "b"][(i % 2) as usize], i))
            .collect();
        let sorted = sort_events(&[batch(&rows)]).expect("sorted");
        let props = writer_properties(&WriteOptions::default(), EVENTS).expect("properties");
        let mut out = Vec::new();
        let mut w = ArrowWriter::try_new(&mut out, sorted.schema(), Some(props)).expect("writer");
        w.write(&sorted).expect("write");
        w.close().expect("close");
        let reader = SerializedFileReader::new(bytes::Bytes::from(out)).expect("read back");
        let meta = reader.metadata();
        let rg = meta.row_group(0);
        let stats = |name: &str| {
            let c = rg
                .columns()
                .iter()
                .find(|c| c.column_path().string() == name)
                .unwrap_or_else(|| panic!("no column {name}"));
            (c.statistics().is_some(), c.column_index_offset().is_some())
        };
        for col in STATISTICS_COLUMNS {
            assert_eq!(stats(col), (true, true), "{col}: chunk and page statistics");
        }
        for col in ["request_id", "query", "ingested_at"] {
            assert_eq!(stats(col), (false, false), "{col}: no statistics");
        }
        let fi = schema_index("function");
        let f = rg.column(fi).statistics().expect("function statistics");
        assert_eq!(
            (f.min_bytes_opt(), f.max_bytes_opt()),
            (Some(&b"a"[..]), Some(&b"b"[..]))
        );
        // Dead letters and alerts arrive in time order: every column keeps them.
        for table in [DEAD_LETTERS, ALERTS] {
            let props = writer_properties(&WriteOptions::default(), table).expect("properties");
            for col in ["ingested_at", "detected_at", "reason"] {
                assert_eq!(
                    props.statistics_enabled(&ColumnPath::from(col)),
                    EnabledStatistics::Page,
                    "{table}.{col}"
                );
            }
        }
    }

    fn schema_index(name: &str) -> usize {
        events_schema().index_of(name).expect("column")
    }
}
