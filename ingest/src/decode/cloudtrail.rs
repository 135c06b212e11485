//! CloudTrail records (telemetry contract v1.1, section 6).
//!
//! CloudTrail sees every API call made with a function's role, including
//! calls made with credentials stolen from the function and used elsewhere.
//! A record arrives in one of three envelopes: a log file as CloudTrail
//! writes it to S3 (`{"Records": [...]}`, [`decode_log_file`]), a CloudWatch
//! Logs payload from a trail's log group (each message one record, see
//! [`super::cloudwatch`]), or an EventBridge event whose `detail` is the
//! record ([`decode_eventbridge`]).
//!
//! A record of a function's role session becomes an `api_call` event with
//! `source` = `cloudtrail` and no `request_id`; a record of any other identity
//! is counted as skipped; a record without `eventTime`, `eventSource` or
//! `eventName`, or whose assumed-role ARN cannot be read, is a dead letter.
//! Each record is read in one pass: known fields borrow from the input, the
//! others are copied as they are into the `extra` JSON object.

use std::borrow::Cow;
use std::fmt;

use serde::Deserializer as _;
use serde::de::{MapAccess, Visitor};
use serde_json::value::RawValue;

use super::telemetry_api::json_str;
use super::{parse_time_us, truncate};
use crate::event::{DeadLetter, EventRow, EventType, Position, Sink, Step};

/// What a CloudTrail record of another identity is counted as (see
/// [`crate::event::Sink::skipped`]).
pub const SKIPPED_IDENTITY: &str = "cloudtrail record of another identity";

/// The EventBridge detail-type of an API call recorded by CloudTrail.
pub const API_CALL_DETAIL_TYPE: &str = "AWS API Call via CloudTrail";
/// The EventBridge detail-type of a console sign-in (skipped).
pub const SIGN_IN_DETAIL_TYPE: &str = "AWS Console Sign In via CloudTrail";

/// Which CloudTrail envelope a JSON object is, by its top-level keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Envelope {
    /// `{"Records": [...]}`: a log file.
    LogFile,
    /// A CloudTrail digest file (`digestStartTime`): integrity data, no calls.
    Digest,
    /// An EventBridge event (`detail-type`).
    EventBridge,
    /// One bare record (`eventVersion` and `eventSource`), as a trail's log
    /// group, a delivery stream or a JSON-lines export carries it.
    Record,
}

/// The envelope of a JSON object text, if it is a CloudTrail one. Cheap for
/// everything else: only objects that mention one of the keys are probed.
pub(crate) fn envelope(text: &str) -> Option<Envelope> {
    #[derive(serde::Deserialize)]
    struct Probe<'a> {
        #[serde(rename = "Records", borrow, default)]
        records: Option<&'a RawValue>,
        #[serde(rename = "detail-type", borrow, default)]
        detail_type: Option<&'a RawValue>,
        #[serde(rename = "digestStartTime", borrow, default)]
        digest: Option<&'a RawValue>,
        #[serde(rename = "type", borrow, default)]
        native_type: Option<&'a RawValue>,
        #[serde(rename = "eventVersion", borrow, default)]
        event_version: Option<&'a RawValue>,
        #[serde(rename = "eventSource", borrow, default)]
        event_source: Option<&'a RawValue>,
    }
    if !(text.contains("\"Records\"")
        || text.contains("\"detail-type\"")
        || text.contains("\"digestStartTime\"")
        || text.contains("\"eventVersion\""))
    {
        return None;
    }
    let probe: Probe<'_> = serde_json::from_str(text).ok()?;
    if probe.native_type.is_some() {
        // A native event that happens to carry one of the keys in its extra fields.
        return None;
    }
    if probe.records.is_some() {
        Some(Envelope::LogFile)
    } else if probe.detail_type.is_some() {
        Some(Envelope::EventBridge)
    } else if probe.digest.is_some() {
        Some(Envelope::Digest)
    } else if probe.event_version.is_some() && probe.event_source.is_some() {
        Some(Envelope::Record)
    } else {
        None
    }
}

/// Decodes a CloudTrail log file: each element of `Records` is a record,
/// positioned by its index.
pub(crate) fn decode_log_file(text: &str, pos: &Position, sink: &mut dyn Sink) {
    #[derive(serde::Deserialize)]
    struct File<'a> {
        #[serde(rename = "Records", borrow)]
        records: &'a RawValue,
    }
    let file: File<'_> = match serde_json::from_str(text) {
        Ok(f) => f,
        Err(e) => {
            sink.dead_letter(DeadLetter::new(
                format!("cloudtrail log file is not a valid JSON object: {e}"),
                pos,
                text.as_bytes(),
            ));
            return;
        }
    };
    let records = file.records.get();
    if !records.starts_with('[') {
        sink.dead_letter(
            DeadLetter::new(
                format!(
                    "field `Records` of a cloudtrail log file is {}, expected an array",
                    super::telemetry_api::json_kind(file.records)
                ),
                pos,
                text.as_bytes(),
            )
            .with_field("Records"),
        );
        return;
    }
    let walked = super::for_each_element(records, |i, raw| {
        let p = pos.child(Step::Element(i));
        decode_record_text(raw, &p, sink);
    });
    if let Err(e) = walked {
        sink.dead_letter(DeadLetter::new(
            format!("field `Records` of a cloudtrail log file cannot be read: {e}"),
            pos,
            text.as_bytes(),
        ));
    }
}

/// Decodes an EventBridge event: an API call's `detail` is a record; a
/// console sign-in is skipped; any other detail-type is not CloudTrail.
pub(crate) fn decode_eventbridge(text: &str, pos: &Position, sink: &mut dyn Sink) {
    #[derive(serde::Deserialize)]
    struct Event<'a> {
        #[serde(rename = "detail-type", borrow)]
        detail_type: &'a RawValue,
        #[serde(borrow, default)]
        detail: Option<&'a RawValue>,
    }
    let ev: Event<'_> = match serde_json::from_str(text) {
        Ok(e) => e,
        Err(e) => {
            sink.dead_letter(DeadLetter::new(
                format!("eventbridge event is not a valid JSON object: {e}"),
                pos,
                text.as_bytes(),
            ));
            return;
        }
    };
    let detail_type = json_str(ev.detail_type).unwrap_or_default();
    match detail_type.as_ref() {
        API_CALL_DETAIL_TYPE => match ev.detail {
            Some(d) if d.get().starts_with('{') => decode_record_text(d.get(), pos, sink),
            _ => sink.dead_letter(
                DeadLetter::new(
                    "eventbridge cloudtrail event has no `detail` object",
                    pos,
                    text.as_bytes(),
                )
                .with_field("detail"),
            ),
        },
        SIGN_IN_DETAIL_TYPE => sink.skipped("cloudtrail console sign-in"),
        other => sink.dead_letter(
            DeadLetter::new(
                format!(
                    "eventbridge event of detail-type `{}` is not a cloudtrail record (expected `{API_CALL_DETAIL_TYPE}` or `{SIGN_IN_DETAIL_TYPE}`)",
                    truncate(other, 80)
                ),
                pos,
                text.as_bytes(),
            )
            .with_field("detail-type"),
        ),
    }
}

/// Whether a JSON object text looks like one CloudTrail record (a message of
/// a trail's CloudWatch Logs group).
pub(crate) fn looks_like_record(text: &str) -> bool {
    text.starts_with('{') && text.contains("\"eventVersion\"") && text.contains("\"eventSource\"")
}

/// Decodes one CloudTrail record (a JSON object text).
pub(crate) fn decode_record_text(text: &str, pos: &Position, sink: &mut dyn Sink) {
    match read_record(text) {
        Ok(Outcome::Call(row)) => sink.event(&row),
        Ok(Outcome::Skipped) => sink.skipped(SKIPPED_IDENTITY),
        Err(e) => {
            let mut dl = DeadLetter::new(e.reason, pos, text.as_bytes());
            dl.field = e.field.map(str::to_string);
            sink.dead_letter(dl)
        }
    }
}

/// What one record is.
#[derive(Debug)]
pub(crate) enum Outcome<'a> {
    /// An API call made with a function's role.
    Call(Box<EventRow<'a>>),
    /// A record of another identity (a user, a service, another role session).
    Skipped,
}

/// Why a record was rejected.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RecordError {
    pub field: Option<&'static str>,
    pub reason: String,
}

impl RecordError {
    fn field(field: &'static str, reason: impl Into<String>) -> Self {
        RecordError {
            field: Some(field),
            reason: reason.into(),
        }
    }
}

/// The fields of a record fnwatch reads; the rest goes to `extra` as is.
#[derive(Default)]
struct Fields<'a> {
    event_time: Option<Cow<'a, str>>,
    event_source: Option<Cow<'a, str>>,
    event_name: Option<Cow<'a, str>>,
    aws_region: Option<Cow<'a, str>>,
    source_ip: Option<Cow<'a, str>>,
    user_agent: Option<Cow<'a, str>>,
    error_code: Option<Cow<'a, str>>,
    recipient_account: Option<Cow<'a, str>>,
    event_id: Option<Cow<'a, str>>,
    identity: Option<&'a RawValue>,
    request_parameters: Option<&'a RawValue>,
    resources: Option<&'a RawValue>,
    /// The other members, as `"key":value` JSON text joined by commas.
    extra: String,
}

struct RecordVisitor;

impl<'de> Visitor<'de> for RecordVisitor {
    type Value = (Fields<'de>, Option<&'static str>);

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a cloudtrail record (a JSON object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut f = Fields::default();
        // The first known field whose value is not a string.
        let mut bad: Option<&'static str> = None;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            let raw: &'de RawValue = map.next_value()?;
            let slot = match key.as_ref() {
                "eventTime" => Some((&mut f.event_time, "eventTime")),
                "eventSource" => Some((&mut f.event_source, "eventSource")),
                "eventName" => Some((&mut f.event_name, "eventName")),
                "awsRegion" => Some((&mut f.aws_region, "awsRegion")),
                "sourceIPAddress" => Some((&mut f.source_ip, "sourceIPAddress")),
                "userAgent" => Some((&mut f.user_agent, "userAgent")),
                "errorCode" => Some((&mut f.error_code, "errorCode")),
                "recipientAccountId" => Some((&mut f.recipient_account, "recipientAccountId")),
                "eventID" => Some((&mut f.event_id, "eventID")),
                _ => None,
            };
            if let Some((slot, name)) = slot {
                if raw.get() == "null" {
                    continue;
                }
                match json_str(raw) {
                    Some(s) => *slot = Some(s),
                    None => {
                        bad.get_or_insert(name);
                    }
                }
                continue;
            }
            match key.as_ref() {
                "userIdentity" => f.identity = Some(raw),
                "requestParameters" => {
                    f.request_parameters = Some(raw);
                    push_member(&mut f.extra, &key, raw.get());
                }
                "resources" => {
                    f.resources = Some(raw);
                    push_member(&mut f.extra, &key, raw.get());
                }
                _ => push_member(&mut f.extra, &key, raw.get()),
            }
        }
        Ok((f, bad))
    }
}

fn push_member(out: &mut String, key: &str, value: &str) {
    if !out.is_empty() {
        out.push(',');
    }
    // Keys came out of JSON; writing them back needs their escapes again.
    out.push_str(&serde_json::to_string(key).unwrap_or_else(|_| "\"?\"".into()));
    out.push(':');
    out.push_str(value);
}

/// Reads one record: the call of a function's role, or a skip, or why not.
pub(crate) fn read_record(text: &str) -> Result<Outcome<'_>, RecordError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let (f, bad) = de
        .deserialize_map(RecordVisitor)
        .and_then(|v| de.end().map(|()| v))
        .map_err(|e| RecordError {
            field: None,
            reason: format!("cloudtrail record is not a valid JSON object: {e}"),
        })?;
    if let Some(name) = bad {
        return Err(RecordError::field(
            name,
            format!("field `{name}` of a cloudtrail record is not a string"),
        ));
    }
    let missing = |name: &'static str| {
        RecordError::field(
            name,
            format!(
                "cloudtrail record has no `{name}` (every record needs eventTime, eventSource and eventName)"
            ),
        )
    };
    let event_time = f.event_time.ok_or_else(|| missing("eventTime"))?;
    let event_source = f.event_source.ok_or_else(|| missing("eventSource"))?;
    let event_name = f.event_name.ok_or_else(|| missing("eventName"))?;
    let time_us = parse_time_us(&event_time).map_err(|why| {
        RecordError::field(
            "eventTime",
            why.replace("field `time`", "field `eventTime`"),
        )
    })?;
    let Some(identity) = f.identity else {
        return Ok(Outcome::Skipped);
    };
    let Some(session) = function_session(identity)? else {
        return Ok(Outcome::Skipped);
    };
    let account = f
        .recipient_account
        .or_else(|| session.account.clone())
        .filter(|a| a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit()));
    let service = match event_source.strip_suffix(".amazonaws.com") {
        Some(s) => Cow::Owned(s.to_string()),
        None => event_source,
    };
    let resource = first_resource_arn(f.resources).or_else(|| {
        f.request_parameters.and_then(|p| {
            resource_from_parameters(
                &service,
                p,
                f.aws_region.as_deref().unwrap_or(""),
                account.as_deref().unwrap_or(""),
            )
        })
    });
    let mut row = EventRow::new(EventType::ApiCall, time_us, session.function);
    row.account = account;
    row.region = f.aws_region;
    row.service = Some(service);
    row.action = Some(event_name);
    row.resource = resource.map(Cow::Owned);
    row.error_code = f.error_code;
    row.source = Some(Cow::Borrowed("cloudtrail"));
    row.source_ip = f.source_ip;
    row.user_agent = f.user_agent;
    row.event_id = f.event_id;
    let mut extra = f.extra;
    let role = format!(
        "\"role\":{}",
        serde_json::to_string(session.role.as_ref()).unwrap_or_default()
    );
    if !extra.is_empty() {
        extra.push(',');
    }
    extra.push_str(&role);
    row.extra = Some(format!("{{{extra}}}"));
    Ok(Outcome::Call(Box::new(row)))
}

/// The function behind an assumed-role session.
struct Session<'a> {
    function: Cow<'a, str>,
    role: Cow<'a, str>,
    account: Option<Cow<'a, str>>,
}

/// `userIdentity` of a function's role session: `type` `AssumedRole` and
/// `arn` `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`, where Lambda names
/// the session after the function. `None` for every other identity; an
/// error when the ARN of an assumed role cannot be read.
fn function_session(identity: &RawValue) -> Result<Option<Session<'_>>, RecordError> {
    #[derive(serde::Deserialize)]
    struct Identity<'a> {
        #[serde(rename = "type", borrow, default)]
        kind: Option<&'a RawValue>,
        #[serde(borrow, default)]
        arn: Option<&'a RawValue>,
    }
    let Ok(id) = serde_json::from_str::<Identity<'_>>(identity.get()) else {
        return Err(RecordError::field(
            "userIdentity",
            format!(
                "field `userIdentity` of a cloudtrail record is {}, expected an object",
                super::telemetry_api::json_kind(identity)
            ),
        ));
    };
    if id.kind.and_then(json_str).as_deref() != Some("AssumedRole") {
        return Ok(None);
    }
    let arn = id.arn.and_then(json_str).ok_or_else(|| {
        RecordError::field(
            "userIdentity.arn",
            "cloudtrail record of an assumed role has no `userIdentity.arn` string",
        )
    })?;
    let parsed = parse_assumed_role_arn(&arn).ok_or_else(|| {
        RecordError::field(
            "userIdentity.arn",
            format!(
                "field `userIdentity.arn` is not an assumed-role ARN (expected arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION): `{}`",
                truncate(&arn, 200)
            ),
        )
    })?;
    let (account, role, session) = parsed;
    if !is_function_session(session) {
        return Ok(None);
    }
    let own = |s: &str| Cow::Owned(s.to_string());
    Ok(Some(Session {
        function: own(session),
        role: own(role),
        account: Some(own(account)),
    }))
}

/// (account, role, session) of `arn:PARTITION:sts::ACCOUNT:assumed-role/ROLE/SESSION`.
fn parse_assumed_role_arn(arn: &str) -> Option<(&str, &str, &str)> {
    let mut parts = arn.splitn(6, ':');
    let (prefix, _partition, service, _region, account, resource) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    if prefix != "arn" || service != "sts" {
        return None;
    }
    let rest = resource.strip_prefix("assumed-role/")?;
    // Role names may carry a path in IAM, but the assumed-role ARN has only
    // the name: the session is what follows the last slash.
    let (role, session) = rest.rsplit_once('/')?;
    if role.is_empty() || session.is_empty() {
        return None;
    }
    Some((account, role, session))
}

/// Whether a role session name can be a Lambda function's: Lambda names
/// the session after the function (1 to 64 letters, digits, `-` and `_`).
/// Sessions that SDKs and tools name by default are not functions.
fn is_function_session(session: &str) -> bool {
    let valid = !session.is_empty()
        && session.len() <= 64
        && session
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid {
        return false;
    }
    let numbered = |prefix: &str| {
        session
            .strip_prefix(prefix)
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    // botocore, the Go, Java and JavaScript SDKs, and EC2 instance profiles
    // (whose sessions are instance ids).
    let tool = numbered("botocore-session-")
        || numbered("aws-go-sdk-")
        || numbered("aws-sdk-java-")
        || numbered("aws-sdk-js-")
        || session == "AWSCLI-Session"
        || (session.len() >= 10
            && session
                .strip_prefix("i-")
                .is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit())));
    !tool
}

/// The ARN of the first entry of a record's `resources`, when there is one.
fn first_resource_arn(resources: Option<&RawValue>) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Resource<'a> {
        #[serde(rename = "ARN", borrow, default)]
        arn: Option<Cow<'a, str>>,
    }
    let list: Vec<Resource<'_>> = serde_json::from_str(resources?.get()).ok()?;
    list.into_iter()
        .find_map(|r| r.arn.filter(|a| !a.is_empty()))
        .map(Cow::into_owned)
}

/// The ARN of the resource a call names in its `requestParameters`, for the
/// services whose ARN format is standard.
fn resource_from_parameters(
    service: &str,
    params: &RawValue,
    region: &str,
    account: &str,
) -> Option<String> {
    let map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(params.get()).ok()?;
    let get = |k: &str| {
        map.get(k)
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
    };
    let is_arn = |s: &str| s.starts_with("arn:");
    match service {
        "s3" => {
            let bucket = get("bucketName")?;
            Some(match get("key") {
                Some(key) => format!("arn:aws:s3:::{bucket}/{key}"),
                None => format!("arn:aws:s3:::{bucket}"),
            })
        }
        "dynamodb" => {
            let table = get("tableName")?;
            Some(if is_arn(table) {
                table.to_string()
            } else {
                format!("arn:aws:dynamodb:{region}:{account}:table/{table}")
            })
        }
        "secretsmanager" => {
            let id = get("secretId")?;
            Some(if is_arn(id) {
                id.to_string()
            } else {
                format!("arn:aws:secretsmanager:{region}:{account}:secret:{id}")
            })
        }
        "sqs" => {
            // https://sqs.REGION.amazonaws.com/ACCOUNT/NAME
            let url = get("queueUrl")?;
            let mut parts = url.trim_end_matches('/').rsplit('/');
            let name = parts.next()?;
            let acct = parts.next()?;
            let host = parts.next().unwrap_or("");
            let q_region = host
                .strip_prefix("sqs.")
                .and_then(|h| h.split('.').next())
                .filter(|r| !r.is_empty() && *r != "amazonaws")
                .unwrap_or(region);
            Some(format!("arn:aws:sqs:{q_region}:{acct}:{name}"))
        }
        "sns" => get("topicArn")
            .or_else(|| get("targetArn"))
            .map(str::to_string),
        "kms" => {
            let id = get("keyId")?;
            Some(if is_arn(id) {
                id.to_string()
            } else if id.starts_with("alias/") {
                format!("arn:aws:kms:{region}:{account}:{id}")
            } else {
                format!("arn:aws:kms:{region}:{account}:key/{id}")
            })
        }
        "ssm" => {
            let name = get("name")?;
            Some(if is_arn(name) {
                name.to_string()
            } else {
                format!(
                    "arn:aws:ssm:{region}:{account}:parameter/{}",
                    name.trim_start_matches('/')
                )
            })
        }
        "lambda" => {
            let name = get("functionName")?;
            Some(if is_arn(name) {
                name.to_string()
            } else {
                format!("arn:aws:lambda:{region}:{account}:function:{name}")
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests;
