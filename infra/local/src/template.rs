//! Reading `template.yaml` (AWS SAM) so the local stack is built from the same
//! file that is deployed.
//!
//! Short-form intrinsics (`!Ref`, `!Sub`, `!GetAtt`, ...) arrive from serde_norway
//! as [`Value::Tagged`]; long forms (`Ref`, `Fn::Sub`, ...) as one-key mappings.
//! Both are evaluated by [`Template::resolve`] against a [`Context`] that maps
//! logical ids to the physical names, URLs and ARNs the local stack created.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_norway::{Mapping, Value};

use crate::repo;

/// Account id moto uses by default; ARNs built locally must agree with it.
pub const LOCAL_ACCOUNT_ID: &str = "123456789012";
pub const LOCAL_REGION: &str = "us-east-1";
pub const LOCAL_STACK_NAME: &str = "coursewire-local";

/// Lambda's default timeout when neither the function nor Globals set one.
const LAMBDA_DEFAULT_TIMEOUT: u32 = 3;
const LAMBDA_DEFAULT_MEMORY: u32 = 128;
/// SAM's default BatchSize for SQS event sources.
const SQS_DEFAULT_BATCH_SIZE: u32 = 10;

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot read template {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("template {origin} is not valid YAML: {source}")]
    Yaml {
        origin: String,
        source: serde_norway::Error,
    },
    #[error("template {origin}: {message}")]
    Structure { origin: String, message: String },
    #[error("parameter override {name:?} is not declared in the template (declared: {declared})")]
    UnknownParameter { name: String, declared: String },
    #[error("parameter {name}: {value:?} is not one of the AllowedValues {allowed:?}")]
    NotAllowed {
        name: String,
        value: String,
        allowed: Vec<String>,
    },
    #[error("function {function}: {message}")]
    Function { function: String, message: String },
    #[error("function {function}: {source}")]
    FunctionResolve {
        function: String,
        source: ResolveError,
    },
    #[error(transparent)]
    RepoRoot(#[from] repo::RepoRootNotFound),
}

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("!Ref {0}: not a parameter, pseudo parameter or resource of the template")]
    UnknownRef(String),
    #[error("{0}: resource has no physical id in the context (not provisioned locally?)")]
    Unprovisioned(String),
    #[error("!GetAtt {resource}.{attribute}: attribute not known for this resource")]
    UnknownAttribute { resource: String, attribute: String },
    #[error("parameter {0} has no Default and no override")]
    MissingParameter(String),
    #[error("{function}: {detail}")]
    Malformed {
        function: &'static str,
        detail: String,
    },
    #[error("condition {0} is not defined in Conditions")]
    UnknownCondition(String),
    #[error("intrinsic {0} is not supported by the local stack")]
    Unsupported(String),
    #[error("expected a scalar for {what}, got {got}")]
    NotScalar { what: String, got: String },
    #[error("{what}: {value:?} is not a non-negative integer")]
    NotInteger { what: String, value: String },
}

/// A declared template parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct Parameter {
    pub name: String,
    pub param_type: String,
    pub default: Option<String>,
    pub allowed_values: Vec<String>,
    pub description: Option<String>,
}

impl Parameter {
    fn is_list(&self) -> bool {
        self.param_type == "CommaDelimitedList" || self.param_type.starts_with("List<")
    }
}

/// One entry of `Resources`.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    pub logical_id: String,
    pub resource_type: String,
    /// `Properties` (Null when absent).
    pub properties: Value,
    /// `Metadata` (Null when absent).
    pub metadata: Value,
    pub depends_on: Vec<String>,
    pub condition: Option<String>,
}

impl Resource {
    /// A property by name, unresolved.
    pub fn property(&self, name: &str) -> Option<&Value> {
        self.properties.get(name)
    }
}

/// What a provisioned (or otherwise known) resource resolves to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PhysicalResource {
    /// What `!Ref` returns (queue URL, table name, bus name, ...).
    pub ref_value: String,
    /// What `!GetAtt Res.<Attr>` returns.
    pub attributes: BTreeMap<String, String>,
}

impl PhysicalResource {
    pub fn new(ref_value: impl Into<String>) -> Self {
        Self {
            ref_value: ref_value.into(),
            attributes: BTreeMap::new(),
        }
    }

    pub fn with_attr(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.attributes.insert(name.into(), value.into());
        self
    }

    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attributes.get(name).map(String::as_str)
    }
}

/// Pseudo parameters plus the physical ids of resources, for resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    pub region: String,
    pub account_id: String,
    pub partition: String,
    pub stack_name: String,
    resources: BTreeMap<String, PhysicalResource>,
}

impl Default for Context {
    fn default() -> Self {
        Self::new(LOCAL_STACK_NAME)
    }
}

impl Context {
    /// A context for moto's defaults (us-east-1, account 123456789012).
    pub fn new(stack_name: impl Into<String>) -> Self {
        Self {
            region: LOCAL_REGION.to_owned(),
            account_id: LOCAL_ACCOUNT_ID.to_owned(),
            partition: "aws".to_owned(),
            stack_name: stack_name.into(),
            resources: BTreeMap::new(),
        }
    }

    pub fn insert(&mut self, logical_id: impl Into<String>, resource: PhysicalResource) {
        self.resources.insert(logical_id.into(), resource);
    }

    pub fn get(&self, logical_id: &str) -> Option<&PhysicalResource> {
        self.resources.get(logical_id)
    }

    pub fn resources(&self) -> impl Iterator<Item = (&str, &PhysicalResource)> {
        self.resources.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// `arn:<partition>:<service>:<region>:<account>:<resource>`.
    pub fn arn(&self, service: &str, resource: &str) -> String {
        format!(
            "arn:{}:{service}:{}:{}:{resource}",
            self.partition, self.region, self.account_id
        )
    }
}

/// An SQS event source of a function (`Events: X: Type: SQS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqsEventSource {
    /// The event's key under `Events`.
    pub name: String,
    /// Logical id of the queue (from `Queue: !GetAtt <Queue>.Arn`).
    pub queue_logical_id: String,
    pub batch_size: u32,
    pub maximum_batching_window_seconds: u32,
    pub report_batch_item_failures: bool,
    pub enabled: bool,
    /// `ScalingConfig.MaximumConcurrency`, if set.
    pub maximum_concurrency: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduleKind {
    /// `Type: Schedule` (EventBridge rule).
    Schedule,
    /// `Type: ScheduleV2` (EventBridge Scheduler).
    ScheduleV2,
}

/// A schedule event of a function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleEvent {
    pub name: String,
    pub kind: ScheduleKind,
    /// `rate(...)`, `cron(...)` (or `at(...)` for ScheduleV2).
    pub expression: String,
    pub enabled: bool,
    pub input: Option<String>,
    pub timezone: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionUrlSpec {
    pub auth_type: String,
    pub invoke_mode: Option<String>,
}

/// An `AWS::Serverless::Function` with Globals merged and values resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionSpec {
    pub logical_id: String,
    pub code_uri: Option<String>,
    /// `Metadata.BuildProperties.Binary`, else the last part of CodeUri.
    pub binary: String,
    pub environment: BTreeMap<String, String>,
    pub timeout_seconds: u32,
    pub memory_mb: u32,
    pub sqs_events: Vec<SqsEventSource>,
    pub function_url: Option<FunctionUrlSpec>,
    pub schedules: Vec<ScheduleEvent>,
}

impl FunctionSpec {
    pub fn has_function_url(&self) -> bool {
        self.function_url.is_some()
    }
}

/// A parsed SAM/CloudFormation template plus parameter overrides.
#[derive(Debug, Clone)]
pub struct Template {
    origin: String,
    parameters: BTreeMap<String, Parameter>,
    overrides: BTreeMap<String, String>,
    conditions: Mapping,
    mappings: Mapping,
    globals_function: Value,
    resources: Vec<Resource>,
    outputs: Mapping,
}

impl Template {
    /// `<repo>/template.yaml`.
    pub fn load_repo() -> Result<Self, TemplateError> {
        let root = repo::repo_root()?;
        Self::load(&root.join(repo::TEMPLATE_FILE))
    }

    pub fn load(path: &Path) -> Result<Self, TemplateError> {
        let text = std::fs::read_to_string(path).map_err(|source| TemplateError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse_with_origin(&text, path.display().to_string())
    }

    pub fn parse(yaml: &str) -> Result<Self, TemplateError> {
        Self::parse_with_origin(yaml, "<string>".to_owned())
    }

    fn parse_with_origin(yaml: &str, origin: String) -> Result<Self, TemplateError> {
        let root: Value = serde_norway::from_str(yaml).map_err(|source| TemplateError::Yaml {
            origin: origin.clone(),
            source,
        })?;
        let structure = |message: String| TemplateError::Structure {
            origin: origin.clone(),
            message,
        };
        let Value::Mapping(root) = root else {
            return Err(structure("the document is not a mapping".into()));
        };
        let section = |name: &str| -> Result<Mapping, TemplateError> {
            match root.get(name) {
                None | Some(Value::Null) => Ok(Mapping::new()),
                Some(Value::Mapping(m)) => Ok(m.clone()),
                Some(_) => Err(structure(format!("{name} is not a mapping"))),
            }
        };

        let mut parameters = BTreeMap::new();
        for (name, decl) in section("Parameters")? {
            let name =
                key_string(&name).ok_or_else(|| structure("non-string parameter name".into()))?;
            let param_type = decl
                .get("Type")
                .and_then(Value::as_str)
                .unwrap_or("String")
                .to_owned();
            let default = decl.get("Default").and_then(scalar_to_string);
            let allowed_values = decl
                .get("AllowedValues")
                .and_then(Value::as_sequence)
                .map(|s| s.iter().filter_map(scalar_to_string).collect())
                .unwrap_or_default();
            let description = decl
                .get("Description")
                .and_then(Value::as_str)
                .map(str::to_owned);
            parameters.insert(
                name.clone(),
                Parameter {
                    name,
                    param_type,
                    default,
                    allowed_values,
                    description,
                },
            );
        }

        let mut resources = Vec::new();
        for (id, body) in section("Resources")? {
            let logical_id =
                key_string(&id).ok_or_else(|| structure("non-string resource id".into()))?;
            let resource_type = body
                .get("Type")
                .and_then(Value::as_str)
                .ok_or_else(|| structure(format!("resource {logical_id} has no Type")))?
                .to_owned();
            let depends_on = match body.get("DependsOn") {
                Some(Value::String(s)) => vec![s.clone()],
                Some(Value::Sequence(s)) => s.iter().filter_map(scalar_to_string).collect(),
                _ => Vec::new(),
            };
            resources.push(Resource {
                logical_id,
                resource_type,
                properties: body.get("Properties").cloned().unwrap_or(Value::Null),
                metadata: body.get("Metadata").cloned().unwrap_or(Value::Null),
                depends_on,
                condition: body
                    .get("Condition")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            });
        }

        let globals_function = section("Globals")?
            .get("Function")
            .cloned()
            .unwrap_or(Value::Null);

        Ok(Self {
            parameters,
            overrides: BTreeMap::new(),
            conditions: section("Conditions")?,
            mappings: section("Mappings")?,
            globals_function,
            resources,
            outputs: section("Outputs")?,
            origin,
        })
    }

    /// Applies parameter overrides (validated against the declarations).
    pub fn with_overrides<I, K, V>(mut self, overrides: I) -> Result<Self, TemplateError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        for (name, value) in overrides {
            self.set_parameter(name, value)?;
        }
        Ok(self)
    }

    pub fn set_parameter(
        &mut self,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<(), TemplateError> {
        let (name, value) = (name.into(), value.into());
        let Some(param) = self.parameters.get(&name) else {
            return Err(TemplateError::UnknownParameter {
                name,
                declared: self
                    .parameters
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        };
        if !param.allowed_values.is_empty() && !param.allowed_values.contains(&value) {
            return Err(TemplateError::NotAllowed {
                name,
                value,
                allowed: param.allowed_values.clone(),
            });
        }
        self.overrides.insert(name, value);
        Ok(())
    }

    /// Where the template came from (path or `<string>`), for messages.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    pub fn parameters(&self) -> impl Iterator<Item = &Parameter> {
        self.parameters.values()
    }

    /// The effective value of a parameter: override, else Default.
    pub fn parameter_value(&self, name: &str) -> Option<&str> {
        self.overrides
            .get(name)
            .or_else(|| self.parameters.get(name)?.default.as_ref())
            .map(String::as_str)
    }

    /// Resources in file order.
    pub fn resources(&self) -> &[Resource] {
        &self.resources
    }

    pub fn resource(&self, logical_id: &str) -> Option<&Resource> {
        self.resources.iter().find(|r| r.logical_id == logical_id)
    }

    pub fn resources_of_type<'a>(
        &'a self,
        resource_type: &'a str,
    ) -> impl Iterator<Item = &'a Resource> + 'a {
        self.resources
            .iter()
            .filter(move |r| r.resource_type == resource_type)
    }

    pub fn output_names(&self) -> impl Iterator<Item = &str> {
        self.outputs.keys().filter_map(Value::as_str)
    }

    /// The resolved `Value` of an output.
    pub fn output(&self, name: &str, ctx: &Context) -> Result<String, ResolveError> {
        let value = self
            .outputs
            .get(name)
            .and_then(|o| o.get("Value"))
            .ok_or_else(|| ResolveError::Malformed {
                function: "Outputs",
                detail: format!("no output {name} with a Value"),
            })?;
        self.resolve_string(value, ctx, &format!("output {name}"))
    }

    /// Whether a resource's `Condition` (if any) holds.
    pub fn resource_enabled(
        &self,
        resource: &Resource,
        ctx: &Context,
    ) -> Result<bool, ResolveError> {
        match &resource.condition {
            Some(name) => self.condition(name, ctx),
            None => Ok(true),
        }
    }

    /// Evaluates a named condition from `Conditions`.
    pub fn condition(&self, name: &str, ctx: &Context) -> Result<bool, ResolveError> {
        let expr = self
            .conditions
            .get(name)
            .ok_or_else(|| ResolveError::UnknownCondition(name.to_owned()))?;
        self.eval_condition(expr, ctx, 0)
    }

    /// Resolves every intrinsic in `value`. `!Ref AWS::NoValue` removes the
    /// enclosing key or list item; at the top level it yields Null.
    pub fn resolve(&self, value: &Value, ctx: &Context) -> Result<Value, ResolveError> {
        Ok(self.resolve_opt(value, ctx, 0)?.unwrap_or(Value::Null))
    }

    /// Resolves `value` to a string (numbers and booleans are formatted).
    pub fn resolve_string(
        &self,
        value: &Value,
        ctx: &Context,
        what: &str,
    ) -> Result<String, ResolveError> {
        let resolved = self.resolve(value, ctx)?;
        scalar_to_string(&resolved).ok_or_else(|| ResolveError::NotScalar {
            what: what.to_owned(),
            got: describe(&resolved),
        })
    }

    /// Resolves `value` to a non-negative integer.
    pub fn resolve_u32(
        &self,
        value: &Value,
        ctx: &Context,
        what: &str,
    ) -> Result<u32, ResolveError> {
        let s = self.resolve_string(value, ctx, what)?;
        s.trim().parse().map_err(|_| ResolveError::NotInteger {
            what: what.to_owned(),
            value: s,
        })
    }

    /// Logical ids of template resources that `resource` needs first
    /// (`Ref`, `GetAtt`, `Sub` references and `DependsOn`).
    pub fn dependencies(&self, resource: &Resource) -> BTreeSet<String> {
        let mut ids = BTreeSet::new();
        collect_references(&resource.properties, &mut ids);
        ids.extend(resource.depends_on.iter().cloned());
        ids.retain(|id| id != &resource.logical_id && self.resource(id).is_some());
        ids
    }

    /// Every `AWS::Serverless::Function`, with Globals merged and values resolved.
    pub fn functions(&self, ctx: &Context) -> Result<Vec<FunctionSpec>, TemplateError> {
        let mut out = Vec::new();
        for resource in self.resources_of_type("AWS::Serverless::Function") {
            let enabled = self.resource_enabled(resource, ctx).map_err(|source| {
                TemplateError::FunctionResolve {
                    function: resource.logical_id.clone(),
                    source,
                }
            })?;
            if enabled {
                out.push(self.function_spec(resource, ctx)?);
            }
        }
        Ok(out)
    }

    fn function_spec(
        &self,
        resource: &Resource,
        ctx: &Context,
    ) -> Result<FunctionSpec, TemplateError> {
        let id = &resource.logical_id;
        let fail = |message: String| TemplateError::Function {
            function: id.clone(),
            message,
        };
        let wrap = |source: ResolveError| TemplateError::FunctionResolve {
            function: id.clone(),
            source,
        };
        let props = merge_globals(&self.globals_function, &resource.properties);

        let code_uri = match props.get("CodeUri") {
            Some(v @ (Value::String(_) | Value::Tagged(_) | Value::Mapping(_)))
                if !is_s3_location(v) =>
            {
                Some(self.resolve_string(v, ctx, "CodeUri").map_err(wrap)?)
            }
            _ => None,
        };
        let binary = resource
            .metadata
            .get("BuildProperties")
            .and_then(|b| b.get("Binary"))
            .and_then(scalar_to_string)
            .or_else(|| {
                code_uri.as_deref().and_then(|uri| {
                    Path::new(uri.trim_end_matches('/'))
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                })
            })
            .unwrap_or_else(|| id.clone());

        let mut environment = BTreeMap::new();
        if let Some(vars) = props
            .get("Environment")
            .and_then(|e| e.get("Variables"))
            .and_then(Value::as_mapping)
        {
            for (name, value) in vars {
                let name = key_string(name)
                    .ok_or_else(|| fail("non-string environment variable name".into()))?;
                let Some(resolved) = self.resolve_opt(value, ctx, 0).map_err(wrap)? else {
                    continue; // AWS::NoValue drops the variable.
                };
                let text = scalar_to_string(&resolved).ok_or_else(|| {
                    wrap(ResolveError::NotScalar {
                        what: format!("environment variable {name}"),
                        got: describe(&resolved),
                    })
                })?;
                environment.insert(name, text);
            }
        }

        let timeout_seconds = match props.get("Timeout") {
            Some(v) => self.resolve_u32(v, ctx, "Timeout").map_err(wrap)?,
            None => LAMBDA_DEFAULT_TIMEOUT,
        };
        let memory_mb = match props.get("MemorySize") {
            Some(v) => self.resolve_u32(v, ctx, "MemorySize").map_err(wrap)?,
            None => LAMBDA_DEFAULT_MEMORY,
        };
        let function_url = match props.get("FunctionUrlConfig") {
            Some(cfg @ Value::Mapping(_)) => {
                let resolved = self.resolve(cfg, ctx).map_err(wrap)?;
                Some(FunctionUrlSpec {
                    auth_type: resolved
                        .get("AuthType")
                        .and_then(scalar_to_string)
                        .unwrap_or_else(|| "AWS_IAM".to_owned()),
                    invoke_mode: resolved.get("InvokeMode").and_then(scalar_to_string),
                })
            }
            _ => None,
        };

        let mut sqs_events = Vec::new();
        let mut schedules = Vec::new();
        if let Some(events) = props.get("Events").and_then(Value::as_mapping) {
            for (name, event) in events {
                let name = key_string(name).ok_or_else(|| fail("non-string event name".into()))?;
                let event_type = event
                    .get("Type")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let ep = event.get("Properties").cloned().unwrap_or(Value::Null);
                match event_type {
                    "SQS" => {
                        sqs_events.push(self.sqs_event(&name, &ep, ctx).map_err(|e| match e {
                            SqsEventError::Resolve(source) => wrap(source),
                            SqsEventError::Queue(message) => {
                                fail(format!("event {name}: {message}"))
                            }
                        })?)
                    }
                    "Schedule" | "ScheduleV2" => schedules.push(
                        self.schedule_event(&name, event_type, &ep, ctx)
                            .map_err(wrap)?,
                    ),
                    other => {
                        tracing::debug!(function = %id, event = %name, event_type = other, "event type not run locally")
                    }
                }
            }
        }

        Ok(FunctionSpec {
            logical_id: id.clone(),
            code_uri,
            binary,
            environment,
            timeout_seconds,
            memory_mb,
            sqs_events,
            function_url,
            schedules,
        })
    }

    fn sqs_event(
        &self,
        name: &str,
        props: &Value,
        ctx: &Context,
    ) -> Result<SqsEventSource, SqsEventError> {
        let queue = props
            .get("Queue")
            .ok_or_else(|| SqsEventError::Queue("SQS event has no Queue".into()))?;
        let queue_logical_id = match intrinsic(queue) {
            Some(("Fn::GetAtt", args)) => getatt_args(args)
                .ok()
                .filter(|(_, attr)| attr == "Arn")
                .map(|(res, _)| res),
            _ => None,
        }
        .filter(|res| self.resource(res).is_some())
        .ok_or_else(|| {
            SqsEventError::Queue(
                "Queue must be `!GetAtt <QueueInThisTemplate>.Arn` to run locally".into(),
            )
        })?;
        let u32_or = |key: &str, default: u32| -> Result<u32, ResolveError> {
            match props.get(key) {
                Some(v) => self.resolve_u32(v, ctx, key),
                None => Ok(default),
            }
        };
        let report_batch_item_failures = match props.get("FunctionResponseTypes") {
            Some(v) => match self.resolve(v, ctx)? {
                Value::Sequence(items) => items
                    .iter()
                    .any(|i| i.as_str() == Some("ReportBatchItemFailures")),
                _ => false,
            },
            None => false,
        };
        let enabled = match props.get("Enabled") {
            Some(v) => self.resolve_string(v, ctx, "Enabled")? != "false",
            None => true,
        };
        let maximum_concurrency = match props
            .get("ScalingConfig")
            .and_then(|s| s.get("MaximumConcurrency"))
        {
            Some(v) => Some(self.resolve_u32(v, ctx, "ScalingConfig.MaximumConcurrency")?),
            None => None,
        };
        Ok(SqsEventSource {
            name: name.to_owned(),
            queue_logical_id,
            batch_size: u32_or("BatchSize", SQS_DEFAULT_BATCH_SIZE)?,
            maximum_batching_window_seconds: u32_or("MaximumBatchingWindowInSeconds", 0)?,
            report_batch_item_failures,
            enabled,
            maximum_concurrency,
        })
    }

    fn schedule_event(
        &self,
        name: &str,
        event_type: &str,
        props: &Value,
        ctx: &Context,
    ) -> Result<ScheduleEvent, ResolveError> {
        let (kind, expr_key) = if event_type == "ScheduleV2" {
            (ScheduleKind::ScheduleV2, "ScheduleExpression")
        } else {
            (ScheduleKind::Schedule, "Schedule")
        };
        let expression = match props.get(expr_key) {
            Some(v) => self.resolve_string(v, ctx, expr_key)?,
            None => {
                return Err(ResolveError::Malformed {
                    function: "Events",
                    detail: format!("{event_type} event {name} has no {expr_key}"),
                });
            }
        };
        let enabled = match (props.get("Enabled"), props.get("State")) {
            (Some(v), _) => self.resolve_string(v, ctx, "Enabled")? != "false",
            (None, Some(v)) => self.resolve_string(v, ctx, "State")? != "DISABLED",
            (None, None) => true,
        };
        let opt = |key: &str| -> Result<Option<String>, ResolveError> {
            props
                .get(key)
                .map(|v| self.resolve_string(v, ctx, key))
                .transpose()
        };
        Ok(ScheduleEvent {
            name: name.to_owned(),
            kind,
            expression,
            enabled,
            input: opt("Input")?,
            timezone: opt("ScheduleExpressionTimezone")?,
        })
    }

    // ------------------------------------------------------------ evaluation

    fn resolve_opt(
        &self,
        value: &Value,
        ctx: &Context,
        depth: usize,
    ) -> Result<Option<Value>, ResolveError> {
        if depth > 64 {
            return Err(ResolveError::Malformed {
                function: "template",
                detail: "intrinsics nested more than 64 deep".into(),
            });
        }
        if let Some((function, args)) = intrinsic(value) {
            return self.eval_intrinsic(function, args, ctx, depth + 1);
        }
        Ok(Some(match value {
            Value::Mapping(map) => {
                let mut out = Mapping::new();
                for (k, v) in map {
                    if let Some(v) = self.resolve_opt(v, ctx, depth + 1)? {
                        out.insert(k.clone(), v);
                    }
                }
                Value::Mapping(out)
            }
            Value::Sequence(items) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    if let Some(v) = self.resolve_opt(item, ctx, depth + 1)? {
                        out.push(v);
                    }
                }
                Value::Sequence(out)
            }
            // An unknown tag: keep its value, dropping the tag.
            Value::Tagged(t) => return self.resolve_opt(&t.value, ctx, depth + 1),
            other => other.clone(),
        }))
    }

    fn eval_intrinsic(
        &self,
        function: &str,
        args: &Value,
        ctx: &Context,
        depth: usize,
    ) -> Result<Option<Value>, ResolveError> {
        let malformed = |detail: &str| ResolveError::Malformed {
            function: static_name(function),
            detail: detail.to_owned(),
        };
        match function {
            "Ref" => {
                let name = self.resolve_string(args, ctx, "!Ref")?;
                self.eval_ref(&name, ctx)
            }
            "Fn::GetAtt" => {
                let (res, attr) = match args {
                    Value::Sequence(items) if items.len() == 2 => (
                        self.resolve_string(&items[0], ctx, "!GetAtt resource")?,
                        self.resolve_string(&items[1], ctx, "!GetAtt attribute")?,
                    ),
                    _ => getatt_args(args)?,
                };
                self.eval_getatt(&res, &attr, ctx)
                    .map(|s| Some(Value::String(s)))
            }
            "Fn::Sub" => {
                let (text, vars) = match args {
                    Value::String(s) => (s.clone(), Mapping::new()),
                    Value::Sequence(items) if items.len() == 2 => {
                        let text = items[0]
                            .as_str()
                            .ok_or_else(|| malformed("first element must be a string"))?
                            .to_owned();
                        let vars = match self.resolve(&items[1], ctx)? {
                            Value::Mapping(m) => m,
                            _ => return Err(malformed("second element must be a mapping")),
                        };
                        (text, vars)
                    }
                    _ => return Err(malformed("expects a string or [string, {vars}]")),
                };
                self.eval_sub(&text, &vars, ctx)
                    .map(|s| Some(Value::String(s)))
            }
            "Fn::Join" => {
                let Some([delim, list]) = args
                    .as_sequence()
                    .map(Vec::as_slice)
                    .and_then(|s| <&[Value; 2]>::try_from(s).ok())
                else {
                    return Err(malformed("expects [delimiter, [values]]"));
                };
                let delim = self.resolve_string(delim, ctx, "!Join delimiter")?;
                let parts = match self.resolve(list, ctx)? {
                    Value::Sequence(items) => items,
                    _ => return Err(malformed("second element must resolve to a list")),
                };
                let parts = parts
                    .iter()
                    .map(|p| {
                        scalar_to_string(p).ok_or_else(|| ResolveError::NotScalar {
                            what: "!Join element".into(),
                            got: describe(p),
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Some(Value::String(parts.join(&delim))))
            }
            "Fn::If" => {
                let Some([cond, yes, no]) = args
                    .as_sequence()
                    .map(Vec::as_slice)
                    .and_then(|s| <&[Value; 3]>::try_from(s).ok())
                else {
                    return Err(malformed(
                        "expects [condition, value_if_true, value_if_false]",
                    ));
                };
                let cond = cond
                    .as_str()
                    .ok_or_else(|| malformed("condition name must be a string"))?;
                let chosen = if self.condition(cond, ctx)? { yes } else { no };
                self.resolve_opt(chosen, ctx, depth)
            }
            "Fn::Select" => {
                let Some([index, list]) = args
                    .as_sequence()
                    .map(Vec::as_slice)
                    .and_then(|s| <&[Value; 2]>::try_from(s).ok())
                else {
                    return Err(malformed("expects [index, [values]]"));
                };
                let index = self.resolve_u32(index, ctx, "!Select index")? as usize;
                match self.resolve(list, ctx)? {
                    Value::Sequence(items) => items
                        .get(index)
                        .cloned()
                        .map(Some)
                        .ok_or_else(|| malformed("index out of range")),
                    _ => Err(malformed("second element must resolve to a list")),
                }
            }
            "Fn::Split" => {
                let Some([delim, text]) = args
                    .as_sequence()
                    .map(Vec::as_slice)
                    .and_then(|s| <&[Value; 2]>::try_from(s).ok())
                else {
                    return Err(malformed("expects [delimiter, string]"));
                };
                let delim = self.resolve_string(delim, ctx, "!Split delimiter")?;
                let text = self.resolve_string(text, ctx, "!Split source")?;
                Ok(Some(Value::Sequence(
                    text.split(delim.as_str())
                        .map(|s| Value::String(s.to_owned()))
                        .collect(),
                )))
            }
            "Fn::Base64" => {
                let text = self.resolve_string(args, ctx, "!Base64")?;
                Ok(Some(Value::String(
                    base64::engine::general_purpose::STANDARD.encode(text),
                )))
            }
            "Fn::FindInMap" => {
                let Some([map, top, second]) = args
                    .as_sequence()
                    .map(Vec::as_slice)
                    .and_then(|s| <&[Value; 3]>::try_from(s).ok())
                else {
                    return Err(malformed("expects [MapName, TopLevelKey, SecondLevelKey]"));
                };
                let map = self.resolve_string(map, ctx, "!FindInMap map")?;
                let top = self.resolve_string(top, ctx, "!FindInMap key")?;
                let second = self.resolve_string(second, ctx, "!FindInMap key")?;
                self.mappings
                    .get(map.as_str())
                    .and_then(|m| m.get(top.as_str()))
                    .and_then(|m| m.get(second.as_str()))
                    .cloned()
                    .map(Some)
                    .ok_or_else(|| malformed(&format!("no {map}.{top}.{second} in Mappings")))
            }
            "Fn::GetAZs" => Ok(Some(Value::Sequence(
                ["a", "b", "c"]
                    .iter()
                    .map(|z| Value::String(format!("{}{z}", ctx.region)))
                    .collect(),
            ))),
            "Fn::Equals" | "Fn::Not" | "Fn::And" | "Fn::Or" | "Condition" => {
                let mut map = Mapping::new();
                map.insert(Value::String(function.to_owned()), args.clone());
                self.eval_condition(&Value::Mapping(map), ctx, depth)
                    .map(|b| Some(Value::Bool(b)))
            }
            other => Err(ResolveError::Unsupported(other.to_owned())),
        }
    }

    fn eval_ref(&self, name: &str, ctx: &Context) -> Result<Option<Value>, ResolveError> {
        let s = |v: String| Ok(Some(Value::String(v)));
        match name {
            "AWS::Region" => return s(ctx.region.clone()),
            "AWS::AccountId" => return s(ctx.account_id.clone()),
            "AWS::Partition" => return s(ctx.partition.clone()),
            "AWS::StackName" => return s(ctx.stack_name.clone()),
            "AWS::URLSuffix" => return s("amazonaws.com".to_owned()),
            "AWS::StackId" => {
                return s(ctx.arn(
                    "cloudformation",
                    &format!(
                        "stack/{}/00000000-0000-0000-0000-000000000000",
                        ctx.stack_name
                    ),
                ));
            }
            "AWS::NotificationARNs" => return Ok(Some(Value::Sequence(Vec::new()))),
            "AWS::NoValue" => return Ok(None),
            _ => {}
        }
        if let Some(param) = self.parameters.get(name) {
            let value = self
                .parameter_value(name)
                .ok_or_else(|| ResolveError::MissingParameter(name.to_owned()))?;
            return Ok(Some(if param.is_list() {
                Value::Sequence(
                    value
                        .split(',')
                        .map(|p| Value::String(p.trim().to_owned()))
                        .collect(),
                )
            } else {
                Value::String(value.to_owned())
            }));
        }
        if let Some(physical) = ctx.get(name) {
            return s(physical.ref_value.clone());
        }
        if self.resource(name).is_some() {
            return Err(ResolveError::Unprovisioned(name.to_owned()));
        }
        Err(ResolveError::UnknownRef(name.to_owned()))
    }

    fn eval_getatt(
        &self,
        resource: &str,
        attribute: &str,
        ctx: &Context,
    ) -> Result<String, ResolveError> {
        match ctx.get(resource) {
            Some(physical) => physical.attr(attribute).map(str::to_owned).ok_or_else(|| {
                ResolveError::UnknownAttribute {
                    resource: resource.to_owned(),
                    attribute: attribute.to_owned(),
                }
            }),
            None if self.resource(resource).is_some() => Err(ResolveError::Unprovisioned(format!(
                "!GetAtt {resource}.{attribute}"
            ))),
            None => Err(ResolveError::UnknownRef(resource.to_owned())),
        }
    }

    fn eval_sub(&self, text: &str, vars: &Mapping, ctx: &Context) -> Result<String, ResolveError> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after.find('}').ok_or_else(|| ResolveError::Malformed {
                function: "Fn::Sub",
                detail: format!("unterminated ${{ in {text:?}"),
            })?;
            let var = &after[..end];
            if let Some(literal) = var.strip_prefix('!') {
                // `${!Literal}` is how Sub escapes a literal `${Literal}`.
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            } else {
                let var = var.trim();
                let value = if let Some(v) = vars.get(var) {
                    scalar_to_string(v).ok_or_else(|| ResolveError::NotScalar {
                        what: format!("!Sub variable {var}"),
                        got: describe(v),
                    })?
                } else if let Some((res, attr)) = var.split_once('.') {
                    self.eval_getatt(res, attr, ctx)?
                } else {
                    match self.eval_ref(var, ctx)? {
                        Some(v) => scalar_to_string(&v).ok_or_else(|| ResolveError::NotScalar {
                            what: format!("!Sub variable {var}"),
                            got: describe(&v),
                        })?,
                        None => String::new(),
                    }
                };
                out.push_str(&value);
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    fn eval_condition(
        &self,
        expr: &Value,
        ctx: &Context,
        depth: usize,
    ) -> Result<bool, ResolveError> {
        if depth > 64 {
            return Err(ResolveError::Malformed {
                function: "Conditions",
                detail: "conditions nested more than 64 deep (a cycle?)".into(),
            });
        }
        // `{Condition: Name}` is not an intrinsic elsewhere, so intrinsic() skips it.
        let condition_ref = expr
            .as_mapping()
            .filter(|m| m.len() == 1)
            .and_then(|m| m.get("Condition"));
        let Some((function, args)) = intrinsic(expr).or(condition_ref.map(|a| ("Condition", a)))
        else {
            return match self.resolve(expr, ctx)? {
                Value::Bool(b) => Ok(b),
                Value::String(s) if s == "true" || s == "false" => Ok(s == "true"),
                other => Err(ResolveError::Malformed {
                    function: "Conditions",
                    detail: format!("not a condition: {}", describe(&other)),
                }),
            };
        };
        let list = || {
            args.as_sequence().ok_or(ResolveError::Malformed {
                function: static_name(function),
                detail: "expects a list".into(),
            })
        };
        match function {
            "Condition" => {
                let name = args.as_str().ok_or(ResolveError::Malformed {
                    function: "Condition",
                    detail: "expects a condition name".into(),
                })?;
                let expr = self
                    .conditions
                    .get(name)
                    .ok_or_else(|| ResolveError::UnknownCondition(name.to_owned()))?;
                self.eval_condition(expr, ctx, depth + 1)
            }
            "Fn::Equals" => match list()?.as_slice() {
                [a, b] => {
                    let (a, b) = (self.resolve(a, ctx)?, self.resolve(b, ctx)?);
                    Ok(match (scalar_to_string(&a), scalar_to_string(&b)) {
                        (Some(a), Some(b)) => a == b,
                        _ => a == b,
                    })
                }
                _ => Err(ResolveError::Malformed {
                    function: "Fn::Equals",
                    detail: "expects two values".into(),
                }),
            },
            "Fn::Not" => match list()?.as_slice() {
                [c] => Ok(!self.eval_condition(c, ctx, depth + 1)?),
                _ => Err(ResolveError::Malformed {
                    function: "Fn::Not",
                    detail: "expects one condition".into(),
                }),
            },
            "Fn::And" => {
                for c in list()? {
                    if !self.eval_condition(c, ctx, depth + 1)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            "Fn::Or" => {
                for c in list()? {
                    if self.eval_condition(c, ctx, depth + 1)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            other => Err(ResolveError::Malformed {
                function: "Conditions",
                detail: format!("{other} is not a condition function"),
            }),
        }
    }
}

enum SqsEventError {
    Resolve(ResolveError),
    Queue(String),
}

impl From<ResolveError> for SqsEventError {
    fn from(e: ResolveError) -> Self {
        Self::Resolve(e)
    }
}

/// Recognises an intrinsic in short (`!Sub`) or long (`Fn::Sub:`) form and
/// returns its canonical long name and arguments.
pub fn intrinsic(value: &Value) -> Option<(&'static str, &Value)> {
    match value {
        Value::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            canonical_intrinsic(tag.trim_start_matches('!')).map(|f| (f, &tagged.value))
        }
        Value::Mapping(map) if map.len() == 1 => {
            let (key, args) = map.iter().next()?;
            let key = key.as_str()?;
            // `Condition` only means an intrinsic inside condition expressions,
            // where eval_condition handles it; elsewhere it is a plain key.
            if key == "Condition" {
                return None;
            }
            canonical_intrinsic(key).map(|f| (f, args))
        }
        _ => None,
    }
}

fn canonical_intrinsic(name: &str) -> Option<&'static str> {
    Some(match name.strip_prefix("Fn::").unwrap_or(name) {
        "Ref" => "Ref",
        "Sub" => "Fn::Sub",
        "GetAtt" => "Fn::GetAtt",
        "Join" => "Fn::Join",
        "If" => "Fn::If",
        "Select" => "Fn::Select",
        "Split" => "Fn::Split",
        "Base64" => "Fn::Base64",
        "FindInMap" => "Fn::FindInMap",
        "GetAZs" => "Fn::GetAZs",
        "ImportValue" => "Fn::ImportValue",
        "Cidr" => "Fn::Cidr",
        "Transform" => "Fn::Transform",
        "Equals" => "Fn::Equals",
        "Not" => "Fn::Not",
        "And" => "Fn::And",
        "Or" => "Fn::Or",
        "Condition" => "Condition",
        _ => return None,
    })
}

fn static_name(function: &str) -> &'static str {
    canonical_intrinsic(function).unwrap_or("intrinsic")
}

/// `Res.Attr` (short form) or `[Res, Attr]` with literal strings.
fn getatt_args(args: &Value) -> Result<(String, String), ResolveError> {
    let malformed = || ResolveError::Malformed {
        function: "Fn::GetAtt",
        detail: format!(
            "expects Resource.Attribute or [Resource, Attribute], got {}",
            describe(args)
        ),
    };
    match args {
        Value::String(s) => s
            .split_once('.')
            .map(|(r, a)| (r.to_owned(), a.to_owned()))
            .ok_or_else(malformed),
        Value::Sequence(items) => match items.as_slice() {
            [Value::String(r), Value::String(a)] => Ok((r.clone(), a.clone())),
            _ => Err(malformed()),
        },
        _ => Err(malformed()),
    }
}

/// Resource ids referenced anywhere in `value` (may include non-resources,
/// e.g. parameters; callers filter).
fn collect_references(value: &Value, ids: &mut BTreeSet<String>) {
    match intrinsic(value) {
        Some(("Ref", Value::String(name))) => {
            ids.insert(name.clone());
        }
        Some(("Fn::GetAtt", args)) => match getatt_args(args) {
            Ok((res, _)) => {
                ids.insert(res);
            }
            Err(_) => collect_references(args, ids),
        },
        Some(("Fn::Sub", args)) => {
            let (text, vars) = match args {
                Value::String(s) => (s.as_str(), None),
                Value::Sequence(items) if items.len() == 2 => {
                    (items[0].as_str().unwrap_or_default(), items[1].as_mapping())
                }
                _ => ("", None),
            };
            let mut rest = text;
            while let Some(start) = rest.find("${") {
                let after = &rest[start + 2..];
                let Some(end) = after.find('}') else { break };
                let var = after[..end].trim();
                let is_local = vars.is_some_and(|v| v.contains_key(var));
                if !var.starts_with('!') && !is_local {
                    let res = var.split_once('.').map_or(var, |(r, _)| r);
                    ids.insert(res.to_owned());
                }
                rest = &after[end + 1..];
            }
            if let Some(vars) = vars {
                collect_references(&Value::Mapping(vars.clone()), ids);
            }
        }
        Some((_, args)) => collect_references(args, ids),
        None => match value {
            Value::Mapping(m) => m.values().for_each(|v| collect_references(v, ids)),
            Value::Sequence(s) => s.iter().for_each(|v| collect_references(v, ids)),
            Value::Tagged(t) => collect_references(&t.value, ids),
            _ => {}
        },
    }
}

/// SAM's Globals rule: mappings merge recursively, lists concatenate (global
/// first), anything else (and intrinsics) the function's own value wins.
fn merge_globals(global: &Value, local: &Value) -> Value {
    match (global, local) {
        (Value::Null, l) => l.clone(),
        (g, Value::Null) => g.clone(),
        (Value::Mapping(g), Value::Mapping(l))
            if intrinsic(global).is_none() && intrinsic(local).is_none() =>
        {
            let mut out = g.clone();
            for (k, lv) in l {
                let merged = match g.get(k) {
                    Some(gv) => merge_globals(gv, lv),
                    None => lv.clone(),
                };
                out.insert(k.clone(), merged);
            }
            Value::Mapping(out)
        }
        (Value::Sequence(g), Value::Sequence(l)) => {
            Value::Sequence(g.iter().chain(l).cloned().collect())
        }
        (_, l) => l.clone(),
    }
}

fn is_s3_location(v: &Value) -> bool {
    v.as_mapping().is_some_and(|m| m.contains_key("Bucket"))
}

fn key_string(v: &Value) -> Option<String> {
    scalar_to_string(v)
}

/// Strings as they are; numbers and booleans formatted as CloudFormation does.
pub fn scalar_to_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(_) | Value::Number(_) | Value::String(_) => format!("{v:?}"),
        Value::Sequence(_) => "a list".into(),
        Value::Mapping(_) => "a mapping".into(),
        Value::Tagged(t) => format!("tagged value {}", t.tag),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context {
        let mut ctx = Context::new("stk");
        ctx.insert(
            "Q",
            PhysicalResource::new("http://127.0.0.1:5000/123456789012/q-dev")
                .with_attr("Arn", "arn:aws:sqs:us-east-1:123456789012:q-dev")
                .with_attr("QueueName", "q-dev"),
        );
        ctx.insert(
            "T",
            PhysicalResource::new("tbl-dev").with_attr(
                "Arn",
                "arn:aws:dynamodb:us-east-1:123456789012:table/tbl-dev",
            ),
        );
        ctx
    }

    const SMALL: &str = r#"
Parameters:
  Stage: {Type: String, Default: dev, AllowedValues: [dev, prod, test]}
  Size: {Type: Number, Default: 262144}
  Names: {Type: CommaDelimitedList, Default: "a,b"}
  NoDefault: {Type: String}
Conditions:
  IsProd: !Equals [!Ref Stage, prod]
  NotProd: {"Fn::Not": [{Condition: IsProd}]}
Globals:
  Function:
    Timeout: 30
    Environment:
      Variables: {STAGE: !Ref Stage, SHARED: global}
Resources:
  Q: {Type: AWS::SQS::Queue, Properties: {QueueName: !Sub "q-${Stage}"}}
  T: {Type: AWS::DynamoDB::Table, DependsOn: Q, Properties: {TableName: {"Fn::Sub": "tbl-${Stage}"}}}
  P:
    Type: AWS::SQS::Queue
    Condition: IsProd
  F:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/f
      Environment:
        Variables:
          SHARED: local
          URL: !Ref Q
          GONE: !If [IsProd, x, !Ref AWS::NoValue]
      Events:
        Tick: {Type: Schedule, Properties: {Schedule: rate(5 minutes), Enabled: false}}
        Tock: {Type: ScheduleV2, Properties: {ScheduleExpression: "cron(0 6 * * ? *)"}}
"#;

    #[test]
    fn resolves_short_and_long_forms() {
        let t = Template::parse(SMALL).unwrap();
        let c = ctx();
        let r = |yaml: &str| {
            t.resolve(&serde_norway::from_str(yaml).unwrap(), &c)
                .unwrap()
        };
        assert_eq!(r("!Ref Stage"), Value::from("dev"));
        assert_eq!(r("{Ref: Size}"), Value::from("262144"));
        assert_eq!(
            r("!Ref Q"),
            Value::from("http://127.0.0.1:5000/123456789012/q-dev")
        );
        assert_eq!(
            r("!GetAtt Q.Arn"),
            Value::from("arn:aws:sqs:us-east-1:123456789012:q-dev")
        );
        assert_eq!(r("{'Fn::GetAtt': [Q, QueueName]}"), Value::from("q-dev"));
        assert_eq!(
            r(
                "!Sub 'arn:${AWS::Partition}:x:${AWS::Region}:${AWS::AccountId}:${Stage}/${T}/${Q.QueueName}/${!Literal}'"
            ),
            Value::from("arn:aws:x:us-east-1:123456789012:dev/tbl-dev/q-dev/${Literal}")
        );
        assert_eq!(
            r("!Sub ['${Name}-${AWS::StackName}', {Name: !GetAtt Q.QueueName}]"),
            Value::from("q-dev-stk")
        );
        assert_eq!(r("!Join [',', [a, !Ref Stage, 3]]"), Value::from("a,dev,3"));
        assert_eq!(r("{'Fn::Join': ['-', !Ref Names]}"), Value::from("a-b"));
        assert_eq!(r("!If [IsProd, p, np]"), Value::from("np"));
        assert_eq!(r("!Select [1, !Split ['/', 'x/y/z']]"), Value::from("y"));
        assert_eq!(
            r("[a, !Ref AWS::NoValue, b]"),
            serde_norway::from_str::<Value>("[a, b]").unwrap()
        );
        assert!(t.condition("NotProd", &c).unwrap());
    }

    #[test]
    fn resolution_errors_are_specific() {
        let t = Template::parse(SMALL).unwrap();
        let c = ctx();
        let e = |yaml: &str| {
            t.resolve(&serde_norway::from_str(yaml).unwrap(), &c)
                .unwrap_err()
                .to_string()
        };
        assert!(e("!Ref Nope").contains("Nope"), "{}", e("!Ref Nope"));
        assert!(e("!Ref P").contains("not provisioned"));
        assert!(e("!GetAtt Q.StreamArn").contains("Q.StreamArn"));
        assert!(e("!Ref NoDefault").contains("no Default"));
        assert!(e("!Sub 'x-${Stage'").contains("unterminated"));
        assert!(e("!ImportValue x").contains("not supported"));
    }

    #[test]
    fn overrides_are_validated() {
        let t = Template::parse(SMALL).unwrap();
        assert!(
            t.clone()
                .with_overrides([("Nope", "x")])
                .unwrap_err()
                .to_string()
                .contains("Nope")
        );
        assert!(matches!(
            t.clone().with_overrides([("Stage", "qa")]),
            Err(TemplateError::NotAllowed { .. })
        ));
        let t = t.with_overrides([("Stage", "prod")]).unwrap();
        assert_eq!(t.parameter_value("Stage"), Some("prod"));
        let c = ctx();
        assert!(t.condition("IsProd", &c).unwrap());
        assert!(t.resource_enabled(t.resource("P").unwrap(), &c).unwrap());
    }

    #[test]
    fn dependencies_follow_refs_and_depends_on() {
        let t = Template::parse(SMALL).unwrap();
        let deps = t.dependencies(t.resource("T").unwrap());
        assert_eq!(deps.into_iter().collect::<Vec<_>>(), vec!["Q".to_owned()]);
        let deps = t.dependencies(t.resource("F").unwrap());
        assert_eq!(deps.into_iter().collect::<Vec<_>>(), vec!["Q".to_owned()]);
    }

    #[test]
    fn functions_merge_globals_and_read_schedules() {
        let t = Template::parse(SMALL).unwrap();
        let fs = t.functions(&ctx()).unwrap();
        assert_eq!(fs.len(), 1);
        let f = &fs[0];
        assert_eq!(f.binary, "f");
        assert_eq!(f.timeout_seconds, 30);
        assert_eq!(f.memory_mb, 128);
        assert_eq!(
            f.environment.get("SHARED").map(String::as_str),
            Some("local")
        );
        assert_eq!(f.environment.get("STAGE").map(String::as_str), Some("dev"));
        assert!(!f.environment.contains_key("GONE"));
        assert!(f.function_url.is_none());
        assert_eq!(f.schedules.len(), 2);
        let tick = f.schedules.iter().find(|s| s.name == "Tick").unwrap();
        assert_eq!(
            (tick.kind, tick.expression.as_str(), tick.enabled),
            (ScheduleKind::Schedule, "rate(5 minutes)", false)
        );
        let tock = f.schedules.iter().find(|s| s.name == "Tock").unwrap();
        assert_eq!(
            (tock.kind, tock.expression.as_str(), tock.enabled),
            (ScheduleKind::ScheduleV2, "cron(0 6 * * ? *)", true)
        );
    }

    /// A context as provisioning builds it for the real template.
    fn repo_ctx(t: &Template) -> Context {
        let mut c = Context::default();
        let stage = t.parameter_value("Stage").unwrap().to_owned();
        for (id, name) in [
            (
                "CanvasLiveEventsQueue",
                format!("canvas-live-events-{stage}"),
            ),
            (
                "CanvasLiveEventsDLQ",
                format!("canvas-live-events-{stage}-dlq"),
            ),
            ("ChangesQueue", format!("coursewire-changes-{stage}.fifo")),
            ("ChangesDLQ", format!("coursewire-changes-{stage}-dlq.fifo")),
            (
                "ExampleSubscriberQueue",
                format!("coursewire-example-subscriber-{stage}"),
            ),
            (
                "ExampleSubscriberDLQ",
                format!("coursewire-example-subscriber-{stage}-dlq"),
            ),
            ("ReconcileQueue", format!("coursewire-reconcile-{stage}")),
            ("ReconcileDLQ", format!("coursewire-reconcile-dlq-{stage}")),
            ("AccessQueue", format!("coursewire-access-{stage}")),
            ("AccessDLQ", format!("coursewire-access-dlq-{stage}")),
            (
                "RecordingsQueue",
                format!("coursewire-recordings-{stage}.fifo"),
            ),
            (
                "RecordingsDLQ",
                format!("coursewire-recordings-{stage}-dlq.fifo"),
            ),
        ] {
            c.insert(
                id,
                PhysicalResource::new(format!("http://localhost/123456789012/{name}"))
                    .with_attr("Arn", format!("arn:aws:sqs:us-east-1:123456789012:{name}"))
                    .with_attr("QueueName", name),
            );
        }
        for (id, table) in [
            ("InboxTable", "inbox"),
            ("CatalogTable", "catalog"),
            ("RateLimitTable", "rate-limits"),
            ("TeachingTable", "teaching"),
            ("RecordingsInboxTable", "recordings-inbox"),
            ("WebhookReplayTable", "webhook-replay"),
            ("IncidentsTable", "incidents"),
            ("AuditTable", "audit"),
            ("RecordingsTable", "recordings"),
        ] {
            c.insert(
                id,
                PhysicalResource::new(format!("coursewire-{table}-{stage}")).with_attr(
                    "Arn",
                    format!(
                        "arn:aws:dynamodb:us-east-1:123456789012:table/coursewire-{table}-{stage}"
                    ),
                ),
            );
        }
        let secret = format!(
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:coursewire/{stage}/canvas"
        );
        c.insert("CanvasCredentialsSecret", PhysicalResource::new(secret));
        for (id, name) in [
            ("PanoptoCredentialsSecret", "panopto"),
            ("PanoptoWebhookSecret", "panopto-webhook"),
        ] {
            c.insert(
                id,
                PhysicalResource::new(format!(
                    "arn:aws:secretsmanager:us-east-1:123456789012:secret:coursewire/{stage}/{name}"
                )),
            );
        }
        for (id, name) in [("AlarmTopic", "alarms"), ("IncidentsTopic", "incidents")] {
            c.insert(
                id,
                PhysicalResource::new(format!(
                    "arn:aws:sns:us-east-1:123456789012:coursewire-{name}-{stage}"
                )),
            );
        }
        let bus = format!("coursewire-{stage}");
        c.insert(
            "ChangeBus",
            PhysicalResource::new(bus.as_str()).with_attr(
                "Arn",
                format!("arn:aws:events:us-east-1:123456789012:event-bus/{bus}"),
            ),
        );
        c
    }

    #[test]
    fn repo_template_parses_and_resolves() {
        let t = Template::load_repo()
            .unwrap()
            .with_overrides([("Stage", "t1")])
            .unwrap();
        let c = repo_ctx(&t);
        let table = t.resource("InboxTable").unwrap();
        assert_eq!(table.resource_type, "AWS::DynamoDB::Table");
        assert_eq!(
            t.resolve_string(table.property("TableName").unwrap(), &c, "TableName")
                .unwrap(),
            "coursewire-inbox-t1"
        );
        let q = t.resource("CanvasLiveEventsQueue").unwrap();
        let redrive = t.resolve(q.property("RedrivePolicy").unwrap(), &c).unwrap();
        assert_eq!(
            redrive.get("deadLetterTargetArn").and_then(Value::as_str),
            Some("arn:aws:sqs:us-east-1:123456789012:canvas-live-events-t1-dlq")
        );
        assert!(t.dependencies(q).contains("CanvasLiveEventsDLQ"));
        assert_eq!(t.resources_of_type("AWS::SQS::Queue").count(), 12);
        assert_eq!(t.parameter_value("MaxEventBytes"), Some("262144"));
        assert_eq!(
            t.output("CanvasLiveEventsQueueArn", &c).unwrap(),
            "arn:aws:sqs:us-east-1:123456789012:canvas-live-events-t1"
        );
        // The function URL is made by SAM, so it resolves only once a runner supplies it.
        assert!(t.output("IngestUrl", &c).is_err());
    }

    #[test]
    fn every_alarm_pages_on_call_both_ways_through_the_encrypted_topic() {
        let t = Template::load_repo().unwrap();
        let alarms: Vec<&Resource> = t.resources_of_type("AWS::CloudWatch::Alarm").collect();
        assert!(alarms.len() >= 17, "{} alarms", alarms.len());
        let to_topic = |v: Option<&Value>| {
            v.and_then(Value::as_sequence).is_some_and(|targets| {
                !targets.is_empty()
                    && targets
                        .iter()
                        .all(|t| serde_norway::to_string(t).unwrap().contains("AlarmTopic"))
            })
        };
        for alarm in alarms {
            assert!(
                to_topic(alarm.property("AlarmActions")) && to_topic(alarm.property("OKActions")),
                "{}: AlarmActions and OKActions must both reach AlarmTopic",
                alarm.logical_id
            );
        }
        // A customer-managed key: with alias/aws/sns CloudWatch could not publish.
        let topic = t.resource("AlarmTopic").unwrap();
        let key = serde_norway::to_string(topic.property("KmsMasterKeyId").unwrap()).unwrap();
        assert!(key.contains("AlarmKey"), "{key}");
        let policy = serde_norway::to_string(
            t.resource("AlarmKey")
                .unwrap()
                .property("KeyPolicy")
                .unwrap(),
        )
        .unwrap();
        assert!(policy.contains("cloudwatch.amazonaws.com"), "{policy}");
    }

    #[test]
    fn repo_template_functions() {
        let t = Template::load_repo()
            .unwrap()
            .with_overrides([("CanvasJwtIssuer", "https://canvas.test")])
            .unwrap();
        let c = repo_ctx(&t);
        let fs = t.functions(&c).unwrap();
        // Every function of the template has a function crate the local stack can run.
        for f in &fs {
            assert!(
                crate::functions::description(&f.binary).is_some(),
                "{} (binary {}) has no description in functions::DESCRIPTIONS",
                f.logical_id,
                f.binary
            );
        }
        let https = fs
            .iter()
            .find(|f| f.logical_id == "IngestHttpsFunction")
            .unwrap();
        assert_eq!(https.binary, "ingest-https");
        assert_eq!(https.code_uri.as_deref(), Some("functions/ingest-https"));
        assert_eq!(https.timeout_seconds, 10);
        assert_eq!(https.memory_mb, 256);
        assert_eq!(
            https.function_url,
            Some(FunctionUrlSpec {
                auth_type: "NONE".into(),
                invoke_mode: None
            })
        );
        assert!(https.sqs_events.is_empty());
        let env = &https.environment;
        assert_eq!(env["INBOX_TABLE"], "coursewire-inbox-dev");
        assert_eq!(
            env["CHANGES_QUEUE_URL"],
            "http://localhost/123456789012/coursewire-changes-dev.fifo"
        );
        assert_eq!(
            env["CANVAS_JWKS_URL"],
            "https://8axpcl50e4.execute-api.us-east-1.amazonaws.com/main/jwks"
        );
        assert_eq!(env["CANVAS_JWT_ISSUER"], "https://canvas.test");
        assert_eq!(env["ALLOW_UNSIGNED_EVENTS"], "false");
        assert_eq!(env["MAX_EVENT_BYTES"], "262144");
        assert_eq!(env["JWKS_MIN_REFETCH_SECONDS"], "300");
        assert_eq!(env["STAGE"], "dev");
        assert_eq!(env["RUST_LOG"], "info");

        let sqs = fs
            .iter()
            .find(|f| f.logical_id == "IngestSqsFunction")
            .unwrap();
        assert_eq!(sqs.binary, "ingest-sqs");
        assert!(!sqs.has_function_url());
        assert_eq!(sqs.timeout_seconds, 30);
        assert_eq!(
            sqs.sqs_events,
            vec![SqsEventSource {
                name: "CanvasLiveEvents".into(),
                queue_logical_id: "CanvasLiveEventsQueue".into(),
                batch_size: 10,
                maximum_batching_window_seconds: 1,
                report_batch_item_failures: true,
                enabled: true,
                maximum_concurrency: None,
            }]
        );
        assert_eq!(sqs.environment["INBOX_TABLE"], "coursewire-inbox-dev");

        // The reconciler: its own queue (one course per message, bounded concurrency), a
        // schedule planning the whole account, and the Canvas client's environment.
        let reconciler = fs
            .iter()
            .find(|f| f.logical_id == "ReconcilerFunction")
            .unwrap();
        assert_eq!(reconciler.binary, "reconciler");
        assert_eq!(reconciler.sqs_events[0].queue_logical_id, "ReconcileQueue");
        assert_eq!(reconciler.sqs_events[0].batch_size, 1);
        assert_eq!(reconciler.sqs_events[0].maximum_concurrency, Some(4));
        assert_eq!(
            reconciler.schedules[0].input.as_deref(),
            Some(r#"{"all_courses": true}"#)
        );
        let env = &reconciler.environment;
        assert_eq!(env["RATE_LIMIT_TABLE"], "coursewire-rate-limits-dev");
        assert_eq!(
            env["CANVAS_SECRET_ID"],
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:coursewire/dev/canvas"
        );
        assert_eq!(env["CANVAS_OUTFLOW_PER_SEC"], "10");
        assert_eq!(env["CANVAS_HIGH_WATER"], "700");
        let keeper = fs
            .iter()
            .find(|f| f.logical_id == "TokenKeeperFunction")
            .unwrap();
        assert_eq!(keeper.schedules[0].expression, "rate(5 minutes)");
    }

    #[tokio::test]
    async fn template_passes_cfn_lint() {
        let root = crate::repo::repo_root().unwrap();
        let cfn_lint = crate::moto::ensure_venv_tool(&root, "cfn-lint")
            .await
            .unwrap();
        let out = tokio::process::Command::new(&cfn_lint)
            .arg(crate::repo::TEMPLATE_FILE)
            .current_dir(&root)
            .output()
            .await
            .unwrap();
        let report = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // cfn-lint's exit code is a bit set: 2 = errors, 4 = warnings, 8 = info.
        let code = out.status.code().expect("cfn-lint killed by a signal");
        assert_eq!(code & 2, 0, "cfn-lint found errors:\n{report}");
        assert_eq!(code & 4, 0, "cfn-lint found warnings:\n{report}");
        assert_eq!(code, 0, "cfn-lint failed:\n{report}");
    }
}
