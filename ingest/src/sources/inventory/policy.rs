//! IAM policy documents, read the way IAM evaluates them, into the
//! contract's `statements` (v1.1) and the flat `permissions` list.
//!
//! IAM hands documents back URL-encoded (`GetRolePolicy`,
//! `GetPolicyVersion`); `Statement` may be one object or an array, and
//! `Action`/`Resource` one string or an array. `NotAction` and `NotResource`
//! are kept as written (`not_actions`, `not_resources`): what they grant is
//! "everything but", which cannot be listed without the full catalogue of
//! AWS actions and resources, so each such grant is also named in
//! [`Expanded::unjudged`] and a `NotAction` grant adds nothing to
//! `permissions`. A statement that cannot be read is skipped and named in
//! [`Expanded::errors`]; the statements beside it are kept.

use serde_json::{Map, Value, json};

/// Which policy of the role a document is, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyRef {
    /// A managed policy attached to the role (AWS or customer managed).
    Managed { arn: String },
    /// An inline policy of the role.
    Inline { role: String, name: String },
}

impl std::fmt::Display for PolicyRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PolicyRef::Managed { arn } => write!(f, "managed policy {arn}"),
            PolicyRef::Inline { role, name } => write!(f, "inline policy `{name}` of role {role}"),
        }
    }
}

/// The statements of one policy document.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Expanded {
    /// Statements in the contract's shape (`effect`, `actions`, `resources`,
    /// `condition`; `not_actions`/`not_resources` when the document uses them).
    pub statements: Vec<Value>,
    /// Action patterns granted by `Allow` statements with `Action`.
    pub permissions: Vec<String>,
    /// Grants that could not be judged, each one sentence.
    pub unjudged: Vec<String>,
    /// Parts of the document that could not be read, each one sentence.
    pub errors: Vec<String>,
}

/// The JSON text of a policy document as IAM returns it: URL-encoded, or
/// (some emulators and older APIs) already plain JSON.
pub fn decode_document(raw: &str) -> Result<String, String> {
    let t = raw.trim();
    if t.starts_with('{') {
        return Ok(t.to_string());
    }
    percent_encoding::percent_decode_str(t)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|e| format!("the URL-encoded document is not UTF-8 once decoded: {e}"))
}

/// Reads one policy document (URL-encoded or plain JSON).
pub fn expand(raw: &str, policy: &PolicyRef) -> Expanded {
    let mut out = Expanded::default();
    let text = match decode_document(raw) {
        Ok(t) => t,
        Err(e) => {
            out.errors.push(format!("{policy}: {e}"));
            return out;
        }
    };
    let doc: Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            out.errors
                .push(format!("{policy}: the document is not valid JSON: {e}"));
            return out;
        }
    };
    let statements: Vec<&Value> = match doc.get("Statement") {
        Some(Value::Array(a)) => a.iter().collect(),
        Some(o @ Value::Object(_)) => vec![o],
        Some(other) => {
            out.errors.push(format!(
                "{policy}: `Statement` is {}, expected an object or an array of objects",
                kind(other)
            ));
            return out;
        }
        None => {
            out.errors
                .push(format!("{policy}: the document has no `Statement`"));
            return out;
        }
    };
    for (i, s) in statements.into_iter().enumerate() {
        match statement(s) {
            Ok(st) => {
                let label = match &st.sid {
                    Some(sid) => format!("statement {} (`{sid}`) of {policy}", i + 1),
                    None => format!("statement {} of {policy}", i + 1),
                };
                if st.allow {
                    match &st.actions {
                        Patterns::Listed(a) => out.permissions.extend(a.iter().cloned()),
                        Patterns::Not(a) => out.unjudged.push(format!(
                            "{label} allows every action except {} (NotAction): not listed in `permissions`",
                            a.join(", ")
                        )),
                    }
                    if let Patterns::Not(r) = &st.resources {
                        out.unjudged.push(format!(
                            "{label} allows its actions on every resource except {} (NotResource)",
                            r.join(", ")
                        ));
                    }
                }
                out.statements.push(st.to_json());
            }
            Err(why) => out
                .errors
                .push(format!("statement {} of {policy}: {why}", i + 1)),
        }
    }
    out
}

#[derive(Debug)]
enum Patterns {
    Listed(Vec<String>),
    Not(Vec<String>),
}

#[derive(Debug)]
struct Statement {
    sid: Option<String>,
    allow: bool,
    actions: Patterns,
    resources: Patterns,
    condition: Option<Value>,
}

impl Statement {
    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert(
            "effect".into(),
            json!(if self.allow { "Allow" } else { "Deny" }),
        );
        match &self.actions {
            Patterns::Listed(a) => m.insert("actions".into(), json!(a)),
            Patterns::Not(a) => {
                m.insert("actions".into(), json!([]));
                m.insert("not_actions".into(), json!(a))
            }
        };
        match &self.resources {
            Patterns::Listed(r) => m.insert("resources".into(), json!(r)),
            Patterns::Not(r) => {
                m.insert("resources".into(), json!([]));
                m.insert("not_resources".into(), json!(r))
            }
        };
        if let Some(c) = &self.condition {
            m.insert("condition".into(), c.clone());
        }
        Value::Object(m)
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A string or an array of strings.
fn strings(v: &Value, key: &str) -> Result<Vec<String>, String> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(a) => a
            .iter()
            .map(|x| match x {
                Value::String(s) => Ok(s.clone()),
                other => Err(format!("`{key}` holds {}, expected strings", kind(other))),
            })
            .collect(),
        other => Err(format!(
            "`{key}` is {}, expected a string or an array of strings",
            kind(other)
        )),
    }
}

/// `Action` or `NotAction` (exactly one of them).
fn patterns(s: &Map<String, Value>, key: &str, not_key: &str) -> Result<Patterns, String> {
    match (s.get(key), s.get(not_key)) {
        (Some(_), Some(_)) => Err(format!("it has both `{key}` and `{not_key}`")),
        (Some(v), None) => strings(v, key).map(Patterns::Listed),
        (None, Some(v)) => strings(v, not_key).map(Patterns::Not),
        (None, None) => Err(format!("it has neither `{key}` nor `{not_key}`")),
    }
}

fn statement(v: &Value) -> Result<Statement, String> {
    let s = v
        .as_object()
        .ok_or_else(|| format!("it is {}, expected an object", kind(v)))?;
    let allow = match s.get("Effect") {
        Some(Value::String(e)) if e == "Allow" => true,
        Some(Value::String(e)) if e == "Deny" => false,
        Some(Value::String(e)) => {
            return Err(format!(
                "`Effect` is `{}` (valid values: Allow, Deny)",
                crate::decode::truncate(e, 40)
            ));
        }
        Some(other) => return Err(format!("`Effect` is {}, expected a string", kind(other))),
        None => return Err("it has no `Effect`".into()),
    };
    let actions = patterns(s, "Action", "NotAction")?;
    let resources = patterns(s, "Resource", "NotResource")?;
    let condition = match s.get("Condition") {
        None | Some(Value::Null) => None,
        Some(c @ Value::Object(_)) => Some(c.clone()),
        Some(other) => {
            return Err(format!(
                "`Condition` is {}, expected an object",
                kind(other)
            ));
        }
    };
    let sid = s.get("Sid").and_then(Value::as_str).map(str::to_string);
    Ok(Statement {
        sid,
        allow,
        actions,
        resources,
        condition,
    })
}

/// The trigger a statement of a function's resource policy describes: the
/// source ARN its condition names (`AWS:SourceArn`), else its principal (a
/// service such as `s3.amazonaws.com`, or an account or role ARN).
pub fn resource_policy_triggers(raw: &str) -> Result<Vec<String>, String> {
    let text = decode_document(raw)?;
    let doc: Value = serde_json::from_str(&text)
        .map_err(|e| format!("the resource policy is not valid JSON: {e}"))?;
    let statements: Vec<&Value> = match doc.get("Statement") {
        Some(Value::Array(a)) => a.iter().collect(),
        Some(o @ Value::Object(_)) => vec![o],
        _ => return Err("the resource policy has no `Statement` list".into()),
    };
    let mut out = Vec::new();
    for s in statements {
        if s.get("Effect").and_then(Value::as_str) == Some("Deny") {
            continue;
        }
        if let Some(arn) = source_arn(s.get("Condition")) {
            out.push(arn);
            continue;
        }
        match s.get("Principal") {
            Some(Value::String(p)) => out.push(p.clone()),
            Some(Value::Object(p)) => {
                for v in p.values() {
                    if let Ok(list) = strings(v, "Principal") {
                        out.extend(list);
                    }
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

/// The value of an `AWS:SourceArn` key (any case) in any condition operator.
fn source_arn(condition: Option<&Value>) -> Option<String> {
    let ops = condition?.as_object()?;
    for keys in ops.values() {
        let Some(keys) = keys.as_object() else {
            continue;
        };
        for (k, v) in keys {
            if k.eq_ignore_ascii_case("aws:SourceArn") {
                match v {
                    Value::String(s) => return Some(s.clone()),
                    Value::Array(a) => {
                        if let Some(Value::String(s)) = a.first() {
                            return Some(s.clone());
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn managed() -> PolicyRef {
        PolicyRef::Managed {
            arn: "arn:aws:iam::123456789012:policy/p".into(),
        }
    }

    #[test]
    fn url_encoded_documents_with_a_single_statement_and_strings() {
        // As GetRolePolicy returns it.
        let raw = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%7B%22Effect%22%3A%22Allow%22%2C%22Action%22%3A%22s3%3A%2A%22%2C%22Resource%22%3A%22%2A%22%7D%7D";
        let e = expand(raw, &managed());
        assert!(e.errors.is_empty(), "{:?}", e.errors);
        assert_eq!(e.permissions, vec!["s3:*"]);
        assert_eq!(
            e.statements,
            vec![json!({"effect": "Allow", "actions": ["s3:*"], "resources": ["*"]})]
        );
    }

    #[test]
    fn arrays_conditions_and_deny_statements() {
        let raw = r#"{"Version":"2012-10-17","Statement":[
            {"Sid":"Read","Effect":"Allow","Action":["dynamodb:GetItem","dynamodb:Query"],
             "Resource":["arn:aws:dynamodb:us-east-1:1:table/orders"],
             "Condition":{"StringEquals":{"aws:RequestedRegion":"us-east-1"}}},
            {"Effect":"Deny","Action":"dynamodb:DeleteTable","Resource":"*"}]}"#;
        let e = expand(raw, &managed());
        assert!(e.errors.is_empty() && e.unjudged.is_empty());
        // Deny grants nothing.
        assert_eq!(e.permissions, vec!["dynamodb:GetItem", "dynamodb:Query"]);
        assert_eq!(e.statements.len(), 2);
        assert_eq!(
            e.statements[0]["condition"],
            json!({"StringEquals":{"aws:RequestedRegion":"us-east-1"}})
        );
        assert_eq!(e.statements[1]["effect"], "Deny");
    }

    #[test]
    fn not_action_and_not_resource_are_kept_and_named_as_unjudged() {
        let raw = r#"{"Statement":[
            {"Effect":"Allow","NotAction":["iam:*","organizations:*"],"Resource":"*"},
            {"Effect":"Allow","Action":"s3:GetObject","NotResource":"arn:aws:s3:::secret/*"}]}"#;
        let policy = PolicyRef::Inline {
            role: "r".into(),
            name: "broad".into(),
        };
        let e = expand(raw, &policy);
        assert!(e.errors.is_empty());
        assert_eq!(
            e.statements[0],
            json!({"effect":"Allow","actions":[],"not_actions":["iam:*","organizations:*"],"resources":["*"]})
        );
        assert_eq!(
            e.statements[1]["not_resources"],
            json!(["arn:aws:s3:::secret/*"])
        );
        // NotAction adds no permission; NotResource keeps its actions.
        assert_eq!(e.permissions, vec!["s3:GetObject"]);
        assert_eq!(e.unjudged.len(), 2);
        assert!(
            e.unjudged[0].contains("statement 1 of inline policy `broad` of role r")
                && e.unjudged[0].contains("every action except iam:*, organizations:*"),
            "{}",
            e.unjudged[0]
        );
        assert!(e.unjudged[1].contains("except arn:aws:s3:::secret/* (NotResource)"));
    }

    #[test]
    fn malformed_documents_and_statements_say_what_and_keep_the_rest() {
        let e = expand("{not json", &managed());
        assert!(e.statements.is_empty());
        assert!(
            e.errors[0].starts_with(
                "managed policy arn:aws:iam::123456789012:policy/p: the document is not valid JSON"
            ),
            "{:?}",
            e.errors
        );
        let e = expand(r#"{"Version":"2012-10-17"}"#, &managed());
        assert_eq!(
            e.errors,
            vec![
                "managed policy arn:aws:iam::123456789012:policy/p: the document has no `Statement`"
            ]
        );
        let raw = r#"{"Statement":[
            {"Effect":"Allow","Action":"sqs:SendMessage","Resource":"*"},
            {"Effect":"Maybe","Action":"s3:*","Resource":"*"},
            {"Effect":"Allow","Action":7,"Resource":"*"},
            {"Effect":"Allow","Action":"a:b","NotAction":"c:d","Resource":"*"},
            {"Effect":"Allow","Action":"kms:Decrypt"},
            "text"]}"#;
        let e = expand(raw, &managed());
        assert_eq!(e.permissions, vec!["sqs:SendMessage"]);
        assert_eq!(e.statements.len(), 1);
        let errs: Vec<&str> = e.errors.iter().map(String::as_str).collect();
        let p = "managed policy arn:aws:iam::123456789012:policy/p";
        assert_eq!(
            errs,
            vec![
                format!("statement 2 of {p}: `Effect` is `Maybe` (valid values: Allow, Deny)"),
                format!(
                    "statement 3 of {p}: `Action` is a number, expected a string or an array of strings"
                ),
                format!("statement 4 of {p}: it has both `Action` and `NotAction`"),
                format!("statement 5 of {p}: it has neither `Resource` nor `NotResource`"),
                format!("statement 6 of {p}: it is a string, expected an object"),
            ]
        );
    }

    #[test]
    fn resource_policies_give_source_arns_or_principals() {
        let raw = r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Principal":{"Service":"s3.amazonaws.com"},"Action":"lambda:InvokeFunction",
             "Resource":"arn:aws:lambda:us-east-1:1:function:f",
             "Condition":{"ArnLike":{"AWS:SourceArn":"arn:aws:s3:::uploads"}}},
            {"Effect":"Allow","Principal":{"Service":"apigateway.amazonaws.com"},"Action":"lambda:InvokeFunction","Resource":"*"},
            {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::999999999999:root"},"Action":"lambda:InvokeFunction","Resource":"*"}]}"#;
        assert_eq!(
            resource_policy_triggers(raw).expect("triggers"),
            vec![
                "arn:aws:s3:::uploads",
                "apigateway.amazonaws.com",
                "arn:aws:iam::999999999999:root"
            ]
        );
        assert!(resource_policy_triggers("[]").is_err());
    }
}
