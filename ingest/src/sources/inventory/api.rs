//! The read-only Lambda and IAM calls the inventory makes, behind two
//! traits: the AWS SDK implements them (for AWS, or an emulator through an
//! endpoint URL); the tests implement them to produce what no emulator
//! does on demand (an `AccessDenied` on one call).

use std::future::Future;

/// Why one call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The credentials lack the permission (`AccessDenied*`, `UnauthorizedOperation`).
    #[error("access denied: {0}")]
    Denied(String),
    /// The object does not exist (`ResourceNotFoundException`, `NoSuchEntity`).
    #[error("not found: {0}")]
    NotFound(String),
    /// Anything else (network, throttling past the SDK's retries, a bad answer).
    #[error("{0}")]
    Other(String),
}

/// One function as `ListFunctions` describes it (environment variable
/// values are dropped at the SDK boundary: they never go further).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FunctionInfo {
    pub name: String,
    pub arn: String,
    pub runtime: Option<String>,
    pub handler: Option<String>,
    pub memory_mb: Option<i64>,
    pub timeout_s: Option<i64>,
    pub role_arn: Option<String>,
    pub layers: Vec<String>,
    pub code_sha256: Option<String>,
    pub version: Option<String>,
    pub package_type: Option<String>,
    pub architectures: Vec<String>,
    pub last_modified: Option<String>,
    /// Names of the environment variables, never their values.
    pub env_keys: Vec<String>,
}

/// One page of a listing.
#[derive(Debug, Clone, Default)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<String>,
}

/// One event source mapping.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MappingInfo {
    /// The function's ARN (possibly qualified with a version or alias).
    pub function_arn: String,
    pub event_source_arn: Option<String>,
    pub state: Option<String>,
}

/// The Lambda calls of one region.
pub trait LambdaApi: Send + Sync {
    /// `ListFunctions`, one page.
    fn list_functions(
        &self,
        marker: Option<String>,
    ) -> impl Future<Output = Result<Page<FunctionInfo>, CallError>> + Send;
    /// `ListEventSourceMappings` of every function of the region, one page.
    fn list_event_source_mappings(
        &self,
        marker: Option<String>,
    ) -> impl Future<Output = Result<Page<MappingInfo>, CallError>> + Send;
    /// `GetPolicy` of a function: its resource policy (`None` when it has none).
    fn get_function_policy(
        &self,
        function: &str,
    ) -> impl Future<Output = Result<Option<String>, CallError>> + Send;
}

/// A managed policy attached to a role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachedPolicy {
    pub name: String,
    pub arn: String,
}

/// The IAM calls (IAM is global: one client for every region).
pub trait IamApi: Send + Sync {
    /// `ListAttachedRolePolicies`, one page.
    fn list_attached_role_policies(
        &self,
        role: &str,
        marker: Option<String>,
    ) -> impl Future<Output = Result<Page<AttachedPolicy>, CallError>> + Send;
    /// `GetPolicy`: the managed policy's default version id.
    fn get_policy_default_version(
        &self,
        policy_arn: &str,
    ) -> impl Future<Output = Result<String, CallError>> + Send;
    /// `GetPolicyVersion`: the document (URL-encoded) of one version.
    fn get_policy_version(
        &self,
        policy_arn: &str,
        version: &str,
    ) -> impl Future<Output = Result<String, CallError>> + Send;
    /// `ListRolePolicies`, one page of inline policy names.
    fn list_role_policies(
        &self,
        role: &str,
        marker: Option<String>,
    ) -> impl Future<Output = Result<Page<String>, CallError>> + Send;
    /// `GetRolePolicy`: the document (URL-encoded) of an inline policy.
    fn get_role_policy(
        &self,
        role: &str,
        name: &str,
    ) -> impl Future<Output = Result<String, CallError>> + Send;
}

/// Where to reach AWS.
#[derive(Debug, Clone, Default)]
pub struct AwsEndpoint {
    /// AWS region; the standard chain (AWS_REGION, profile) when `None`.
    pub region: Option<String>,
    /// An AWS-compatible endpoint (an emulator, a VPC endpoint) for every service.
    pub endpoint_url: Option<String>,
}

/// Loads the standard AWS configuration chain (environment, profile, SSO,
/// container and instance roles) with the given overrides.
pub async fn load_config(endpoint: &AwsEndpoint) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(region) = &endpoint.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    if let Some(url) = &endpoint.endpoint_url {
        loader = loader.endpoint_url(url.clone());
    }
    loader.load().await
}

/// Classifies an SDK error by its AWS error code. An answer that carries no
/// code (a proxy's or an emulator's page) is shown by its HTTP status and
/// the start of its body, not as the SDK's whole error structure.
fn classify<E>(
    e: aws_sdk_lambda::error::SdkError<E, aws_sdk_lambda::config::http::HttpResponse>,
) -> CallError
where
    E: aws_sdk_lambda::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    use aws_sdk_lambda::error::ProvideErrorMetadata;
    let code = e.code().map(str::to_string);
    let message = match (e.code(), e.message()) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c.to_string(),
        _ => match e.raw_response() {
            Some(r) => {
                let body = r
                    .body()
                    .bytes()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default();
                format!(
                    "HTTP {} with an answer the SDK could not read: {}",
                    r.status().as_u16(),
                    crate::decode::truncate(body.trim(), 300)
                )
            }
            None => aws_sdk_lambda::error::DisplayErrorContext(&e).to_string(),
        },
    };
    match code.as_deref() {
        Some(c)
            if c.starts_with("AccessDenied")
                || c == "UnauthorizedOperation"
                || c == "UnrecognizedClientException"
                || c == "InvalidClientTokenId" =>
        {
            CallError::Denied(message)
        }
        Some("ResourceNotFoundException" | "NoSuchEntity") => CallError::NotFound(message),
        _ => CallError::Other(message),
    }
}

/// The AWS SDK's Lambda client of one region.
#[derive(Clone)]
pub struct SdkLambda {
    client: aws_sdk_lambda::Client,
    page_size: Option<i32>,
}

impl SdkLambda {
    pub fn new(config: &aws_config::SdkConfig) -> SdkLambda {
        SdkLambda {
            client: aws_sdk_lambda::Client::new(config),
            page_size: None,
        }
    }

    /// Asks for at most `n` items a page (1 to 50 for ListFunctions).
    pub fn with_page_size(mut self, n: i32) -> SdkLambda {
        self.page_size = Some(n.clamp(1, 50));
        self
    }
}

impl LambdaApi for SdkLambda {
    async fn list_functions(
        &self,
        marker: Option<String>,
    ) -> Result<Page<FunctionInfo>, CallError> {
        let out = self
            .client
            .list_functions()
            .set_marker(marker)
            .set_max_items(self.page_size)
            .send()
            .await
            .map_err(classify)?;
        let items = out
            .functions()
            .iter()
            .map(|f| FunctionInfo {
                name: f.function_name().unwrap_or_default().to_string(),
                arn: f.function_arn().unwrap_or_default().to_string(),
                runtime: f.runtime().map(|r| r.as_str().to_string()),
                handler: f.handler().map(str::to_string),
                memory_mb: f.memory_size().map(i64::from),
                timeout_s: f.timeout().map(i64::from),
                role_arn: f.role().map(str::to_string),
                layers: f
                    .layers()
                    .iter()
                    .filter_map(|l| l.arn().map(str::to_string))
                    .collect(),
                code_sha256: f.code_sha256().map(str::to_string),
                version: f.version().map(str::to_string),
                package_type: f.package_type().map(|p| p.as_str().to_string()),
                architectures: f
                    .architectures()
                    .iter()
                    .map(|a| a.as_str().to_string())
                    .collect(),
                last_modified: f.last_modified().map(str::to_string),
                env_keys: {
                    let mut keys: Vec<String> = f
                        .environment()
                        .and_then(|e| e.variables())
                        .map(|v| v.keys().cloned().collect())
                        .unwrap_or_default();
                    keys.sort();
                    keys
                },
            })
            .collect();
        Ok(Page {
            items,
            next: out.next_marker().map(str::to_string),
        })
    }

    async fn list_event_source_mappings(
        &self,
        marker: Option<String>,
    ) -> Result<Page<MappingInfo>, CallError> {
        let out = self
            .client
            .list_event_source_mappings()
            .set_marker(marker)
            .send()
            .await
            .map_err(classify)?;
        let items = out
            .event_source_mappings()
            .iter()
            .map(|m| MappingInfo {
                function_arn: m.function_arn().unwrap_or_default().to_string(),
                event_source_arn: m.event_source_arn().map(str::to_string),
                state: m.state().map(str::to_string),
            })
            .collect();
        Ok(Page {
            items,
            next: out.next_marker().map(str::to_string),
        })
    }

    async fn get_function_policy(&self, function: &str) -> Result<Option<String>, CallError> {
        match self
            .client
            .get_policy()
            .function_name(function)
            .send()
            .await
            .map_err(classify)
        {
            Ok(out) => Ok(out.policy().map(str::to_string)),
            Err(CallError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// The AWS SDK's IAM client.
#[derive(Clone)]
pub struct SdkIam {
    client: aws_sdk_iam::Client,
}

impl SdkIam {
    pub fn new(config: &aws_config::SdkConfig) -> SdkIam {
        SdkIam {
            client: aws_sdk_iam::Client::new(config),
        }
    }
}

fn next_marker(truncated: bool, marker: Option<&str>) -> Option<String> {
    if truncated {
        marker.map(str::to_string)
    } else {
        None
    }
}

impl IamApi for SdkIam {
    async fn list_attached_role_policies(
        &self,
        role: &str,
        marker: Option<String>,
    ) -> Result<Page<AttachedPolicy>, CallError> {
        let out = self
            .client
            .list_attached_role_policies()
            .role_name(role)
            .set_marker(marker)
            .send()
            .await
            .map_err(classify)?;
        let items = out
            .attached_policies()
            .iter()
            .filter_map(|p| {
                Some(AttachedPolicy {
                    name: p.policy_name().unwrap_or_default().to_string(),
                    arn: p.policy_arn()?.to_string(),
                })
            })
            .collect();
        Ok(Page {
            items,
            next: next_marker(out.is_truncated(), out.marker()),
        })
    }

    async fn get_policy_default_version(&self, policy_arn: &str) -> Result<String, CallError> {
        let out = self
            .client
            .get_policy()
            .policy_arn(policy_arn)
            .send()
            .await
            .map_err(classify)?;
        out.policy()
            .and_then(|p| p.default_version_id())
            .map(str::to_string)
            .ok_or_else(|| CallError::Other("the answer names no default version".into()))
    }

    async fn get_policy_version(
        &self,
        policy_arn: &str,
        version: &str,
    ) -> Result<String, CallError> {
        let out = self
            .client
            .get_policy_version()
            .policy_arn(policy_arn)
            .version_id(version)
            .send()
            .await
            .map_err(classify)?;
        out.policy_version()
            .and_then(|v| v.document())
            .map(str::to_string)
            .ok_or_else(|| CallError::Other("the answer holds no policy document".into()))
    }

    async fn list_role_policies(
        &self,
        role: &str,
        marker: Option<String>,
    ) -> Result<Page<String>, CallError> {
        let out = self
            .client
            .list_role_policies()
            .role_name(role)
            .set_marker(marker)
            .send()
            .await
            .map_err(classify)?;
        Ok(Page {
            items: out.policy_names().to_vec(),
            next: next_marker(out.is_truncated(), out.marker()),
        })
    }

    async fn get_role_policy(&self, role: &str, name: &str) -> Result<String, CallError> {
        let out = self
            .client
            .get_role_policy()
            .role_name(role)
            .policy_name(name)
            .send()
            .await
            .map_err(classify)?;
        Ok(out.policy_document().to_string())
    }
}

/// The account of the credentials (`sts:GetCallerIdentity`, which needs no
/// permission).
pub async fn caller_account(config: &aws_config::SdkConfig) -> Result<String, CallError> {
    let out = aws_sdk_sts::Client::new(config)
        .get_caller_identity()
        .send()
        .await
        .map_err(classify)?;
    out.account()
        .map(str::to_string)
        .ok_or_else(|| CallError::Other("GetCallerIdentity named no account".into()))
}
