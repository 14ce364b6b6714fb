//! Creates the template's tables, queues, buses and rules in moto (or any
//! AWS-compatible endpoint), so the local stack never drifts from what SAM
//! deploys.
//!
//! Supported: `AWS::DynamoDB::Table`, `AWS::SQS::Queue`, `AWS::Events::EventBus`,
//! `AWS::Events::Rule`, `AWS::SecretsManager::Secret`, `AWS::SNS::Topic`, `AWS::KMS::Key`
//! (with its key policy, found again on a re-run by an alias). Functions get
//! placeholder physical ids (so `!Ref`/`!GetAtt` to them resolve); everything else (IAM,
//! alarms, Lambda permissions, ...) is skipped.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types as ddb;
use aws_sdk_eventbridge::types as eb;
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::QueueAttributeName;
use serde_norway::Value;

use crate::template::{
    Context, FunctionSpec, PhysicalResource, ResolveError, Resource, Template, TemplateError,
    scalar_to_string,
};

pub const TABLE: &str = "AWS::DynamoDB::Table";
pub const QUEUE: &str = "AWS::SQS::Queue";
pub const EVENT_BUS: &str = "AWS::Events::EventBus";
pub const RULE: &str = "AWS::Events::Rule";
pub const SECRET: &str = "AWS::SecretsManager::Secret";
const SERVERLESS_FUNCTION: &str = "AWS::Serverless::Function";
const LAMBDA_FUNCTION: &str = "AWS::Lambda::Function";
const SNS_TOPIC: &str = "AWS::SNS::Topic";
const KMS_KEY: &str = "AWS::KMS::Key";

/// SQS attributes that CloudFormation exposes under the same name as a property.
const QUEUE_ATTRIBUTES: &[&str] = &[
    "DelaySeconds",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout",
    "KmsMasterKeyId",
    "KmsDataKeyReusePeriodSeconds",
    "SqsManagedSseEnabled",
    "RedrivePolicy",
    "RedriveAllowPolicy",
];
/// Only valid on FIFO queues (SQS rejects them on standard ones).
const FIFO_ATTRIBUTES: &[&str] = &[
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
];

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("resource {logical_id}: {source}")]
    Resolve {
        logical_id: String,
        source: ResolveError,
    },
    #[error("resource {logical_id} ({resource_type}): {message}")]
    Invalid {
        logical_id: String,
        resource_type: String,
        message: String,
    },
    #[error("resource {logical_id}: {operation} failed: {message}")]
    Aws {
        logical_id: String,
        operation: &'static str,
        message: String,
    },
    #[error("dependency cycle among resources: {0}")]
    Cycle(String),
    #[error("override for {0}: no such queue in the template")]
    UnknownOverrideTarget(String),
}

/// Local adjustments on top of the template.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// Template parameter overrides (e.g. a unique `Stage` per test).
    pub parameters: BTreeMap<String, String>,
    /// `AWS::StackName`; defaults to `coursewire-local`.
    pub stack_name: Option<String>,
    /// Queue logical id -> SQS attribute name -> value (e.g. a 1 s
    /// `VisibilityTimeout` so tests see redelivery quickly).
    pub queue_attributes: BTreeMap<String, BTreeMap<String, String>>,
    /// Queue logical id -> `maxReceiveCount` in its RedrivePolicy.
    pub max_receive_count: BTreeMap<String, u32>,
    /// Function logical id -> environment variables set over the template's, as someone
    /// editing a deployed function's configuration by hand would.
    pub function_environment: BTreeMap<String, BTreeMap<String, String>>,
}

impl Overrides {
    pub fn parameter(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.parameters.insert(name.into(), value.into());
        self
    }

    pub fn stack_name(mut self, name: impl Into<String>) -> Self {
        self.stack_name = Some(name.into());
        self
    }

    pub fn queue_attribute(
        mut self,
        queue: impl Into<String>,
        attribute: impl Into<String>,
        value: impl Into<String>,
    ) -> Self {
        self.queue_attributes
            .entry(queue.into())
            .or_default()
            .insert(attribute.into(), value.into());
        self
    }

    pub fn max_receive_count(mut self, queue: impl Into<String>, count: u32) -> Self {
        self.max_receive_count.insert(queue.into(), count);
        self
    }

    pub fn function_environment(
        mut self,
        function: impl Into<String>,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Self {
        self.function_environment
            .entry(function.into())
            .or_default()
            .insert(name.into(), value.into());
        self
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Created,
    /// Already there (re-run); attributes updated where the service allows.
    Existing,
    /// A physical id was made up for resolution only (functions).
    Placeholder,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionedResource {
    pub logical_id: String,
    pub resource_type: String,
    pub action: Action,
}

/// What [`provision`] made.
#[derive(Debug, Clone)]
pub struct Deployed {
    /// Logical id -> physical ids, for resolving anything else in the template.
    pub context: Context,
    /// Every function, its environment resolved against `context`.
    pub functions: Vec<FunctionSpec>,
    /// Provisioned and placeholder resources in creation order.
    pub resources: Vec<ProvisionedResource>,
    /// Effective parameter values.
    pub parameters: BTreeMap<String, String>,
}

impl Deployed {
    pub fn physical(&self, logical_id: &str) -> Option<&PhysicalResource> {
        self.context.get(logical_id)
    }

    /// What `!Ref <logical_id>` resolved to (queue URL, table name, bus name...).
    pub fn ref_value(&self, logical_id: &str) -> Option<&str> {
        self.physical(logical_id).map(|p| p.ref_value.as_str())
    }

    pub fn attr(&self, logical_id: &str, attribute: &str) -> Option<&str> {
        self.physical(logical_id)?.attr(attribute)
    }

    pub fn queue_url(&self, logical_id: &str) -> Option<&str> {
        self.attr(logical_id, "QueueUrl")
    }

    pub fn queue_arn(&self, logical_id: &str) -> Option<&str> {
        // Only queues carry a QueueUrl; other resources have an Arn too.
        self.queue_url(logical_id)?;
        self.attr(logical_id, "Arn")
    }

    pub fn table_name(&self, logical_id: &str) -> Option<&str> {
        self.attr(logical_id, "TableName")
    }

    pub fn function(&self, logical_id: &str) -> Option<&FunctionSpec> {
        self.functions.iter().find(|f| f.logical_id == logical_id)
    }
}

/// Creates (or finds) every supported resource of `template`, dependencies
/// first. Safe to run again against the same endpoint.
pub async fn provision(
    template: &Template,
    config: &SdkConfig,
    overrides: &Overrides,
) -> Result<Deployed, ProvisionError> {
    for queue in overrides
        .queue_attributes
        .keys()
        .chain(overrides.max_receive_count.keys())
    {
        if template.resource(queue).map(|r| r.resource_type.as_str()) != Some(QUEUE) {
            return Err(ProvisionError::UnknownOverrideTarget(queue.clone()));
        }
    }
    let template = template
        .clone()
        .with_overrides(overrides.parameters.clone())?;
    let mut ctx = Context::new(
        overrides
            .stack_name
            .clone()
            .unwrap_or_else(|| crate::template::LOCAL_STACK_NAME.to_owned()),
    );
    let clients = Clients {
        dynamodb: aws_sdk_dynamodb::Client::new(config),
        sqs: aws_sdk_sqs::Client::new(config),
        events: aws_sdk_eventbridge::Client::new(config),
        secrets: aws_sdk_secretsmanager::Client::new(config),
        sns: aws_sdk_sns::Client::new(config),
        kms: aws_sdk_kms::Client::new(config),
    };

    let mut resources = Vec::new();
    for resource in creation_order(&template)? {
        let enabled = template
            .resource_enabled(resource, &ctx)
            .map_err(|source| ProvisionError::Resolve {
                logical_id: resource.logical_id.clone(),
                source,
            })?;
        if !enabled {
            tracing::debug!(resource = %resource.logical_id, "condition false; skipped");
            continue;
        }
        let p = Provisioner {
            template: &template,
            resource,
            clients: &clients,
            overrides,
        };
        let outcome = match resource.resource_type.as_str() {
            TABLE => Some(p.table(&ctx).await?),
            QUEUE => Some(p.queue(&ctx).await?),
            EVENT_BUS => Some(p.event_bus(&ctx).await?),
            RULE => Some(p.rule(&ctx).await?),
            SECRET => Some(p.secret(&ctx).await?),
            SNS_TOPIC => Some(p.topic(&ctx).await?),
            KMS_KEY => Some(p.key(&ctx).await?),
            SERVERLESS_FUNCTION | LAMBDA_FUNCTION => Some(p.placeholder(&ctx)),
            other => {
                tracing::debug!(resource = %resource.logical_id, resource_type = other, "not provisioned locally");
                None
            }
        };
        if let Some((physical, action)) = outcome {
            tracing::debug!(resource = %resource.logical_id, id = %physical.ref_value, ?action, "provisioned");
            ctx.insert(resource.logical_id.clone(), physical);
            resources.push(ProvisionedResource {
                logical_id: resource.logical_id.clone(),
                resource_type: resource.resource_type.clone(),
                action,
            });
        }
    }

    let mut functions = template.functions(&ctx)?;
    for function in &mut functions {
        if let Some(extra) = overrides.function_environment.get(&function.logical_id) {
            function.environment.extend(extra.clone());
        }
    }
    let parameters = template
        .parameters()
        .filter_map(|p| {
            template
                .parameter_value(&p.name)
                .map(|v| (p.name.clone(), v.to_owned()))
        })
        .collect();
    Ok(Deployed {
        context: ctx,
        functions,
        resources,
        parameters,
    })
}

/// Resources ordered so that every resource comes after those it references
/// (Kahn's algorithm; ties keep file order).
fn creation_order(template: &Template) -> Result<Vec<&Resource>, ProvisionError> {
    let all = template.resources();
    let mut pending: BTreeMap<&str, BTreeSet<String>> = all
        .iter()
        .map(|r| (r.logical_id.as_str(), template.dependencies(r)))
        .collect();
    let mut order = Vec::with_capacity(all.len());
    while !pending.is_empty() {
        let ready = all.iter().find(|r| {
            pending
                .get(r.logical_id.as_str())
                .is_some_and(BTreeSet::is_empty)
        });
        let Some(ready) = ready else {
            return Err(ProvisionError::Cycle(
                pending.keys().copied().collect::<Vec<_>>().join(", "),
            ));
        };
        pending.remove(ready.logical_id.as_str());
        for deps in pending.values_mut() {
            deps.remove(&ready.logical_id);
        }
        order.push(ready);
    }
    Ok(order)
}

struct Clients {
    dynamodb: aws_sdk_dynamodb::Client,
    sqs: aws_sdk_sqs::Client,
    events: aws_sdk_eventbridge::Client,
    secrets: aws_sdk_secretsmanager::Client,
    sns: aws_sdk_sns::Client,
    kms: aws_sdk_kms::Client,
}

struct Provisioner<'a> {
    template: &'a Template,
    resource: &'a Resource,
    clients: &'a Clients,
    overrides: &'a Overrides,
}

type Outcome = Result<(PhysicalResource, Action), ProvisionError>;

impl Provisioner<'_> {
    fn id(&self) -> &str {
        &self.resource.logical_id
    }

    fn props(&self, ctx: &Context) -> Result<Value, ProvisionError> {
        self.template
            .resolve(&self.resource.properties, ctx)
            .map_err(|source| ProvisionError::Resolve {
                logical_id: self.id().to_owned(),
                source,
            })
    }

    fn invalid(&self, message: impl Into<String>) -> ProvisionError {
        ProvisionError::Invalid {
            logical_id: self.id().to_owned(),
            resource_type: self.resource.resource_type.clone(),
            message: message.into(),
        }
    }

    fn aws(&self, operation: &'static str, err: impl std::error::Error) -> ProvisionError {
        ProvisionError::Aws {
            logical_id: self.id().to_owned(),
            operation,
            message: DisplayErrorContext(err).to_string(),
        }
    }

    /// The explicit name property, else a deterministic `<stack>-<LogicalId>`
    /// (CloudFormation adds a random suffix; locally re-runs must find it again).
    fn name(&self, props: &Value, key: &str, ctx: &Context, max_len: usize) -> String {
        props
            .get(key)
            .and_then(scalar_to_string)
            .unwrap_or_else(|| {
                let mut name = format!("{}-{}", ctx.stack_name, self.id());
                name.truncate(max_len);
                name
            })
    }

    // ------------------------------------------------------------ DynamoDB

    async fn table(&self, ctx: &Context) -> Outcome {
        let props = self.props(ctx)?;
        let name = self.name(&props, "TableName", ctx, 255);
        let client = &self.clients.dynamodb;

        let existing = client.describe_table().table_name(&name).send().await;
        let (description, action) = match existing {
            Ok(out) => (out.table, Action::Existing),
            Err(_) => {
                let request = self.create_table_request(&props, &name)?;
                let out = request
                    .send()
                    .await
                    .map_err(|e| self.aws("CreateTable", e))?;
                (out.table_description, Action::Created)
            }
        };
        let description =
            description.ok_or_else(|| self.invalid("CreateTable returned no description"))?;

        if let Some(ttl) = props.get("TimeToLiveSpecification") {
            self.ensure_ttl(&name, ttl).await?;
        }
        let pitr = props
            .get("PointInTimeRecoverySpecification")
            .and_then(|p| bool_value(p.get("PointInTimeRecoveryEnabled")?));
        if pitr == Some(true) {
            let spec = ddb::PointInTimeRecoverySpecification::builder()
                .point_in_time_recovery_enabled(true)
                .build()
                .map_err(|e| self.invalid(e.to_string()))?;
            // Nothing local depends on PITR, so an endpoint without it is only noted.
            if let Err(e) = client
                .update_continuous_backups()
                .table_name(&name)
                .point_in_time_recovery_specification(spec)
                .send()
                .await
            {
                tracing::debug!(table = %name, error = %DisplayErrorContext(e), "PITR not enabled locally");
            }
        }

        let arn = description
            .table_arn
            .clone()
            .unwrap_or_else(|| ctx.arn("dynamodb", &format!("table/{name}")));
        let mut physical = PhysicalResource::new(&name)
            .with_attr("Arn", arn)
            .with_attr("TableName", &name);
        if let Some(stream) = description.latest_stream_arn {
            physical = physical.with_attr("StreamArn", stream);
        }
        Ok((physical, action))
    }

    fn create_table_request(
        &self,
        props: &Value,
        name: &str,
    ) -> Result<
        aws_sdk_dynamodb::operation::create_table::builders::CreateTableFluentBuilder,
        ProvisionError,
    > {
        let build_err = |e: aws_sdk_dynamodb::error::BuildError| self.invalid(e.to_string());
        let billing = props
            .get("BillingMode")
            .and_then(Value::as_str)
            .unwrap_or("PROVISIONED");
        let mut request = self
            .clients
            .dynamodb
            .create_table()
            .table_name(name)
            .billing_mode(ddb::BillingMode::from(billing));

        for def in seq(props, "AttributeDefinitions") {
            request = request.attribute_definitions(
                ddb::AttributeDefinition::builder()
                    .attribute_name(str_value(def, "AttributeName").unwrap_or_default())
                    .attribute_type(ddb::ScalarAttributeType::from(
                        str_value(def, "AttributeType").unwrap_or_default().as_str(),
                    ))
                    .build()
                    .map_err(build_err)?,
            );
        }
        request = request.set_key_schema(Some(self.key_schema(props.get("KeySchema"))?));
        if billing == "PROVISIONED" {
            request = request.provisioned_throughput(self.throughput(props)?);
        }
        for gsi in seq(props, "GlobalSecondaryIndexes") {
            let mut index = ddb::GlobalSecondaryIndex::builder()
                .index_name(str_value(gsi, "IndexName").unwrap_or_default())
                .set_key_schema(Some(self.key_schema(gsi.get("KeySchema"))?))
                .projection(projection(gsi.get("Projection")));
            if billing == "PROVISIONED" {
                index = index.provisioned_throughput(self.throughput(gsi)?);
            }
            request = request.global_secondary_indexes(index.build().map_err(build_err)?);
        }
        for lsi in seq(props, "LocalSecondaryIndexes") {
            request = request.local_secondary_indexes(
                ddb::LocalSecondaryIndex::builder()
                    .index_name(str_value(lsi, "IndexName").unwrap_or_default())
                    .set_key_schema(Some(self.key_schema(lsi.get("KeySchema"))?))
                    .projection(projection(lsi.get("Projection")))
                    .build()
                    .map_err(build_err)?,
            );
        }
        if let Some(stream) = props.get("StreamSpecification") {
            request = request.stream_specification(
                ddb::StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(ddb::StreamViewType::from(
                        str_value(stream, "StreamViewType")
                            .unwrap_or_else(|| "NEW_AND_OLD_IMAGES".into())
                            .as_str(),
                    ))
                    .build()
                    .map_err(build_err)?,
            );
        }
        if let Some(sse) = props.get("SSESpecification") {
            let mut spec = ddb::SseSpecification::builder()
                .enabled(sse.get("SSEEnabled").and_then(bool_value).unwrap_or(false));
            if let Some(kind) = str_value(sse, "SSEType") {
                spec = spec.sse_type(ddb::SseType::from(kind.as_str()));
            }
            if let Some(key) = str_value(sse, "KMSMasterKeyId") {
                spec = spec.kms_master_key_id(key);
            }
            request = request.sse_specification(spec.build());
        }
        if let Some(protect) = props.get("DeletionProtectionEnabled").and_then(bool_value) {
            request = request.deletion_protection_enabled(protect);
        }
        Ok(request)
    }

    fn key_schema(
        &self,
        schema: Option<&Value>,
    ) -> Result<Vec<ddb::KeySchemaElement>, ProvisionError> {
        let elements = schema
            .and_then(Value::as_sequence)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| self.invalid("KeySchema is missing or empty"))?;
        elements
            .iter()
            .map(|e| {
                ddb::KeySchemaElement::builder()
                    .attribute_name(str_value(e, "AttributeName").unwrap_or_default())
                    .key_type(ddb::KeyType::from(
                        str_value(e, "KeyType").unwrap_or_default().as_str(),
                    ))
                    .build()
                    .map_err(|err| self.invalid(err.to_string()))
            })
            .collect()
    }

    fn throughput(&self, props: &Value) -> Result<ddb::ProvisionedThroughput, ProvisionError> {
        let pt = props.get("ProvisionedThroughput");
        let units = |key: &str| {
            pt.and_then(|p| p.get(key))
                .and_then(scalar_to_string)
                .and_then(|s| s.parse::<i64>().ok())
                .unwrap_or(5)
        };
        ddb::ProvisionedThroughput::builder()
            .read_capacity_units(units("ReadCapacityUnits"))
            .write_capacity_units(units("WriteCapacityUnits"))
            .build()
            .map_err(|e| self.invalid(e.to_string()))
    }

    async fn ensure_ttl(&self, table: &str, spec: &Value) -> Result<(), ProvisionError> {
        let enabled = spec.get("Enabled").and_then(bool_value).unwrap_or(false);
        let Some(attribute) = str_value(spec, "AttributeName").filter(|_| enabled) else {
            return Ok(());
        };
        let client = &self.clients.dynamodb;
        let current = client
            .describe_time_to_live()
            .table_name(table)
            .send()
            .await
            .map_err(|e| self.aws("DescribeTimeToLive", e))?;
        let already = current.time_to_live_description.is_some_and(|d| {
            d.time_to_live_status == Some(ddb::TimeToLiveStatus::Enabled)
                && d.attribute_name.as_deref() == Some(attribute.as_str())
        });
        if already {
            return Ok(());
        }
        let spec = ddb::TimeToLiveSpecification::builder()
            .attribute_name(&attribute)
            .enabled(true)
            .build()
            .map_err(|e| self.invalid(e.to_string()))?;
        client
            .update_time_to_live()
            .table_name(table)
            .time_to_live_specification(spec)
            .send()
            .await
            .map_err(|e| self.aws("UpdateTimeToLive", e))?;
        Ok(())
    }

    // ------------------------------------------------------------ SQS

    async fn queue(&self, ctx: &Context) -> Outcome {
        let props = self.props(ctx)?;
        let fifo = props.get("FifoQueue").and_then(bool_value).unwrap_or(false);
        let mut name = self.name(&props, "QueueName", ctx, 80);
        if fifo && !name.ends_with(".fifo") {
            name.truncate(75);
            name.push_str(".fifo");
        }

        let mut attributes: BTreeMap<String, String> = BTreeMap::new();
        let fifo_only: &[&str] = if fifo { FIFO_ATTRIBUTES } else { &[] };
        for &key in QUEUE_ATTRIBUTES.iter().chain(fifo_only) {
            let Some(value) = props.get(key) else {
                continue;
            };
            let text = match value {
                // RedrivePolicy and RedriveAllowPolicy are JSON documents.
                Value::Mapping(_) => {
                    serde_json::to_string(value).map_err(|e| self.invalid(format!("{key}: {e}")))?
                }
                other => scalar_to_string(other)
                    .ok_or_else(|| self.invalid(format!("{key} must be a scalar")))?,
            };
            attributes.insert(key.to_owned(), text);
        }
        if let Some(extra) = self.overrides.queue_attributes.get(self.id()) {
            attributes.extend(extra.clone());
        }
        if let Some(&count) = self.overrides.max_receive_count.get(self.id()) {
            let policy = attributes.get("RedrivePolicy").ok_or_else(|| {
                self.invalid("maxReceiveCount override but the queue has no RedrivePolicy")
            })?;
            let mut policy: serde_json::Value = serde_json::from_str(policy)
                .map_err(|e| self.invalid(format!("RedrivePolicy is not JSON: {e}")))?;
            policy["maxReceiveCount"] = serde_json::Value::from(count);
            attributes.insert("RedrivePolicy".into(), policy.to_string());
        }
        let to_sdk = |attrs: &BTreeMap<String, String>| -> HashMap<QueueAttributeName, String> {
            attrs
                .iter()
                .map(|(k, v)| (QueueAttributeName::from(k.as_str()), v.clone()))
                .collect()
        };

        let client = &self.clients.sqs;
        let (url, action) = match client.get_queue_url().queue_name(&name).send().await {
            Ok(out) => {
                let url = out
                    .queue_url
                    .ok_or_else(|| self.invalid("GetQueueUrl returned no URL"))?;
                // Re-runs apply changed attributes; FifoQueue cannot change anyway.
                if !attributes.is_empty() {
                    client
                        .set_queue_attributes()
                        .queue_url(&url)
                        .set_attributes(Some(to_sdk(&attributes)))
                        .send()
                        .await
                        .map_err(|e| self.aws("SetQueueAttributes", e))?;
                }
                (url, Action::Existing)
            }
            Err(_) => {
                if fifo {
                    attributes.insert("FifoQueue".into(), "true".into());
                }
                let out = client
                    .create_queue()
                    .queue_name(&name)
                    .set_attributes(Some(to_sdk(&attributes)))
                    .send()
                    .await
                    .map_err(|e| self.aws("CreateQueue", e))?;
                let url = out
                    .queue_url
                    .ok_or_else(|| self.invalid("CreateQueue returned no URL"))?;
                (url, Action::Created)
            }
        };

        let arn = client
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| self.aws("GetQueueAttributes", e))?
            .attributes
            .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
            .unwrap_or_else(|| ctx.arn("sqs", &name));
        Ok((
            PhysicalResource::new(&url)
                .with_attr("Arn", arn)
                .with_attr("QueueName", &name)
                .with_attr("QueueUrl", &url),
            action,
        ))
    }

    // ------------------------------------------------------------ EventBridge

    async fn event_bus(&self, ctx: &Context) -> Outcome {
        let props = self.props(ctx)?;
        let name = self.name(&props, "Name", ctx, 256);
        let client = &self.clients.events;
        let (arn, action) = match client.describe_event_bus().name(&name).send().await {
            Ok(out) => (out.arn, Action::Existing),
            Err(_) => {
                let out = client
                    .create_event_bus()
                    .name(&name)
                    .send()
                    .await
                    .map_err(|e| self.aws("CreateEventBus", e))?;
                (out.event_bus_arn, Action::Created)
            }
        };
        let arn = arn.unwrap_or_else(|| ctx.arn("events", &format!("event-bus/{name}")));
        Ok((
            PhysicalResource::new(&name)
                .with_attr("Arn", arn)
                .with_attr("Name", &name),
            action,
        ))
    }

    /// A secret with the template's initial value; an existing secret keeps its value (locally
    /// as in AWS, credentials are put in after deployment).
    async fn secret(&self, ctx: &Context) -> Outcome {
        let props = self.props(ctx)?;
        let name = self.name(&props, "Name", ctx, 512);
        let client = &self.clients.secrets;
        let (arn, action) = match client.describe_secret().secret_id(&name).send().await {
            Ok(out) => (out.arn, Action::Existing),
            Err(_) => {
                let out = client
                    .create_secret()
                    .name(&name)
                    .set_description(str_value(&props, "Description"))
                    .secret_string(initial_secret(&props))
                    .send()
                    .await
                    .map_err(|e| self.aws("CreateSecret", e))?;
                (out.arn, Action::Created)
            }
        };
        let arn = arn.unwrap_or_else(|| ctx.arn("secretsmanager", &format!("secret:{name}")));
        Ok((PhysicalResource::new(&arn).with_attr("Id", &arn), action))
    }

    async fn rule(&self, ctx: &Context) -> Outcome {
        let props = self.props(ctx)?;
        let name = self.name(&props, "Name", ctx, 64);
        // EventBusName may be a name or an ARN; both are accepted by PutRule.
        let bus = str_value(&props, "EventBusName");
        let json = |key: &str| -> Result<Option<String>, ProvisionError> {
            match props.get(key) {
                None => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(v) => serde_json::to_string(v)
                    .map(Some)
                    .map_err(|e| self.invalid(format!("{key}: {e}"))),
            }
        };
        let client = &self.clients.events;
        // PutRule creates or updates; ask first only to report what happened.
        let existed = client
            .describe_rule()
            .name(&name)
            .set_event_bus_name(bus.clone())
            .send()
            .await
            .is_ok();
        let out = client
            .put_rule()
            .name(&name)
            .set_event_bus_name(bus.clone())
            .set_event_pattern(json("EventPattern")?)
            .set_schedule_expression(str_value(&props, "ScheduleExpression"))
            .set_description(str_value(&props, "Description"))
            .set_role_arn(str_value(&props, "RoleArn"))
            .state(eb::RuleState::from(
                str_value(&props, "State")
                    .unwrap_or_else(|| "ENABLED".into())
                    .as_str(),
            ))
            .send()
            .await
            .map_err(|e| self.aws("PutRule", e))?;
        let arn = out
            .rule_arn
            .unwrap_or_else(|| ctx.arn("events", &format!("rule/{name}")));

        let mut targets = Vec::new();
        for t in seq(&props, "Targets") {
            targets.push(self.target(t)?);
        }
        if !targets.is_empty() {
            let out = client
                .put_targets()
                .rule(&name)
                .set_event_bus_name(bus.clone())
                .set_targets(Some(targets))
                .send()
                .await
                .map_err(|e| self.aws("PutTargets", e))?;
            if out.failed_entry_count > 0 {
                let reasons: Vec<String> = out
                    .failed_entries()
                    .iter()
                    .map(|f| {
                        format!(
                            "{}: {}",
                            f.target_id().unwrap_or("?"),
                            f.error_message().unwrap_or("?")
                        )
                    })
                    .collect();
                return Err(self.invalid(format!("PutTargets rejected {}", reasons.join("; "))));
            }
        }

        // CloudFormation's Ref of a rule on a custom bus is "bus|rule".
        let bus_name = bus.as_deref().map(|b| b.rsplit('/').next().unwrap_or(b));
        let ref_value = match bus_name {
            Some(b) if b != "default" => format!("{b}|{name}"),
            _ => name.clone(),
        };
        Ok((
            PhysicalResource::new(ref_value).with_attr("Arn", arn),
            if existed {
                Action::Existing
            } else {
                Action::Created
            },
        ))
    }

    fn target(&self, t: &Value) -> Result<eb::Target, ProvisionError> {
        let mut target = eb::Target::builder()
            .set_id(str_value(t, "Id"))
            .set_arn(str_value(t, "Arn"))
            .set_role_arn(str_value(t, "RoleArn"))
            .set_input(str_value(t, "Input"))
            .set_input_path(str_value(t, "InputPath"));
        if let Some(dlq) = t.get("DeadLetterConfig").and_then(|d| str_value(d, "Arn")) {
            target = target.dead_letter_config(eb::DeadLetterConfig::builder().arn(dlq).build());
        }
        if let Some(retry) = t.get("RetryPolicy") {
            let int = |key: &str| {
                retry
                    .get(key)
                    .and_then(scalar_to_string)
                    .and_then(|s| s.parse::<i32>().ok())
            };
            target = target.retry_policy(
                eb::RetryPolicy::builder()
                    .set_maximum_retry_attempts(int("MaximumRetryAttempts"))
                    .set_maximum_event_age_in_seconds(int("MaximumEventAgeInSeconds"))
                    .build(),
            );
        }
        if let Some(group) = t
            .get("SqsParameters")
            .and_then(|s| str_value(s, "MessageGroupId"))
        {
            target =
                target.sqs_parameters(eb::SqsParameters::builder().message_group_id(group).build());
        }
        if let Some(tr) = t.get("InputTransformer") {
            let paths = tr
                .get("InputPathsMap")
                .and_then(Value::as_mapping)
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| Some((scalar_to_string(k)?, scalar_to_string(v)?)))
                        .collect::<HashMap<_, _>>()
                });
            target = target.input_transformer(
                eb::InputTransformer::builder()
                    .set_input_paths_map(paths)
                    .set_input_template(str_value(tr, "InputTemplate"))
                    .build()
                    .map_err(|e| self.invalid(e.to_string()))?,
            );
        }
        target
            .build()
            .map_err(|e| self.invalid(format!("target: {e}")))
    }

    // ------------------------------------------------------------ SNS

    /// CreateTopic is idempotent: a re-run gets the same topic back.
    async fn topic(&self, ctx: &Context) -> Outcome {
        let props = self.props(ctx)?;
        let name = self.name(&props, "TopicName", ctx, 256);
        // CreateTopic answers an existing topic's ARN too; asking first tells a re-run apart.
        let existing = ctx.arn("sns", &name);
        if self
            .clients
            .sns
            .get_topic_attributes()
            .topic_arn(&existing)
            .send()
            .await
            .is_ok()
        {
            let physical = PhysicalResource::new(&existing)
                .with_attr("TopicArn", &existing)
                .with_attr("TopicName", name);
            return Ok((physical, Action::Existing));
        }
        let mut create = self.clients.sns.create_topic().name(&name);
        // Encrypted as deployed, so a check of who may use the key sees the real one.
        if let Some(key) = str_value(&props, "KmsMasterKeyId") {
            create = create.attributes("KmsMasterKeyId", key);
        }
        let out = create
            .send()
            .await
            .map_err(|e| self.aws("CreateTopic", e))?;
        let arn = out
            .topic_arn
            .ok_or_else(|| self.invalid("CreateTopic returned no TopicArn"))?;
        let physical = PhysicalResource::new(&arn)
            .with_attr("TopicArn", &arn)
            .with_attr("TopicName", name);
        Ok((physical, Action::Created))
    }

    // ------------------------------------------------------------ KMS

    async fn key(&self, ctx: &Context) -> Outcome {
        let props = self.props(ctx)?;
        let alias = format!("alias/{}-{}", ctx.stack_name, self.id());
        let client = &self.clients.kms;
        if let Ok(out) = client.describe_key().key_id(&alias).send().await
            && let Some(meta) = out.key_metadata
        {
            let arn = meta.arn.unwrap_or_default();
            let physical = PhysicalResource::new(&meta.key_id)
                .with_attr("Arn", &arn)
                .with_attr("KeyId", &meta.key_id);
            return Ok((physical, Action::Existing));
        }
        let policy = match props.get("KeyPolicy") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(v) => Some(
                serde_json::to_string(v).map_err(|e| self.invalid(format!("KeyPolicy: {e}")))?,
            ),
        };
        let out = client
            .create_key()
            .set_description(str_value(&props, "Description"))
            .set_policy(policy)
            .send()
            .await
            .map_err(|e| self.aws("CreateKey", e))?;
        let meta = out
            .key_metadata
            .ok_or_else(|| self.invalid("CreateKey returned no KeyMetadata"))?;
        client
            .create_alias()
            .alias_name(&alias)
            .target_key_id(&meta.key_id)
            .send()
            .await
            .map_err(|e| self.aws("CreateAlias", e))?;
        let arn = meta.arn.unwrap_or_default();
        let physical = PhysicalResource::new(&meta.key_id)
            .with_attr("Arn", &arn)
            .with_attr("KeyId", &meta.key_id);
        Ok((physical, Action::Created))
    }

    // ------------------------------------------------------------ placeholders

    /// Physical ids for functions, which the local stack runs in-process rather than
    /// creates, so that references to them (e.g. a rule targeting a function) still resolve.
    fn placeholder(&self, ctx: &Context) -> (PhysicalResource, Action) {
        // Names may reference resources not provisioned; fall back to the default.
        let props = self.props(ctx).unwrap_or(Value::Null);
        let name = self.name(&props, "FunctionName", ctx, 64);
        let physical = PhysicalResource::new(&name)
            .with_attr("Arn", ctx.arn("lambda", &format!("function:{name}")));
        (physical, Action::Placeholder)
    }
}

fn seq<'v>(props: &'v Value, key: &str) -> impl Iterator<Item = &'v Value> {
    props
        .get(key)
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
}

fn str_value(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(scalar_to_string)
}

fn bool_value(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn projection(p: Option<&Value>) -> ddb::Projection {
    let kind = p
        .and_then(|p| str_value(p, "ProjectionType"))
        .unwrap_or_else(|| "ALL".into());
    let non_key = p
        .and_then(|p| p.get("NonKeyAttributes"))
        .and_then(Value::as_sequence)
        .map(|s| s.iter().filter_map(scalar_to_string).collect());
    ddb::Projection::builder()
        .projection_type(ddb::ProjectionType::from(kind.as_str()))
        .set_non_key_attributes(non_key)
        .build()
}

/// A secret's first value: `SecretString`, or what `GenerateSecretString` asks for (its
/// template with one random alphanumeric key added), as Secrets Manager does on create.
fn initial_secret(props: &Value) -> String {
    if let Some(text) = str_value(props, "SecretString") {
        return text;
    }
    let Some(generate) = props.get("GenerateSecretString") else {
        return String::new();
    };
    let length = generate
        .get("PasswordLength")
        .and_then(Value::as_u64)
        .unwrap_or(32) as usize;
    let random: String = (0..length)
        .map(|_| {
            const ALPHABET: &[u8] =
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
            ALPHABET[rand::random_range(0..ALPHABET.len())] as char
        })
        .collect();
    let Some(key) = str_value(generate, "GenerateStringKey") else {
        return random;
    };
    let mut document: serde_json::Map<String, serde_json::Value> =
        str_value(generate, "SecretStringTemplate")
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
    document.insert(key, serde_json::Value::String(random));
    serde_json::Value::Object(document).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::moto::MotoServer;
    use crate::repo::repo_root;

    #[tokio::test]
    async fn provisions_the_repo_template_idempotently() {
        let root = repo_root().unwrap();
        let moto = MotoServer::start(&root).await.unwrap();
        let config = moto.sdk_config();
        let template = Template::load_repo().unwrap();
        let overrides = Overrides::default()
            .parameter("Stage", "prov")
            .parameter("CanvasJwtIssuer", "https://canvas.test");

        let deployed = provision(&template, &config, &overrides).await.unwrap();
        let created: Vec<&str> = deployed
            .resources
            .iter()
            .filter(|r| r.action == Action::Created)
            .map(|r| r.logical_id.as_str())
            .collect();
        assert_eq!(
            created,
            [
                "InboxTable",
                "CatalogTable",
                "TeachingTable",
                "RecordingsInboxTable",
                "WebhookReplayTable",
                "IncidentsTable",
                "AuditTable",
                "RecordingsTable",
                "RateLimitTable",
                "CanvasCredentialsSecret",
                "PanoptoCredentialsSecret",
                "PanoptoWebhookSecret",
                "ChangeBus",
                "ExampleSubscriberDLQ",
                "ExampleSubscriberQueue",
                "ExampleSubscriberRule",
                "AccessDLQ",
                "AccessQueue",
                "AccessRule",
                "CanvasLiveEventsDLQ",
                "CanvasLiveEventsQueue",
                "ChangesDLQ",
                "ChangesQueue",
                "RecordingsDLQ",
                "RecordingsQueue",
                "ReconcileDLQ",
                "ReconcileQueue",
                "AlarmKey",
                "AlarmTopic",
                "IncidentsTopic"
            ]
        );
        // The alarm topic is encrypted with a key CloudWatch may use (with alias/aws/sns no
        // alarm would be delivered).
        let key = deployed.ref_value("AlarmKey").unwrap().to_string();
        let topic = aws_sdk_sns::Client::new(&config)
            .get_topic_attributes()
            .topic_arn(deployed.ref_value("AlarmTopic").unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(
            topic.attributes().and_then(|a| a.get("KmsMasterKeyId")),
            Some(&key)
        );
        let policy = aws_sdk_kms::Client::new(&config)
            .get_key_policy()
            .key_id(&key)
            .policy_name("default")
            .send()
            .await
            .unwrap();
        let policy: serde_json::Value =
            serde_json::from_str(policy.policy().unwrap_or_default()).unwrap();
        assert!(
            policy["Statement"].as_array().unwrap().iter().any(|s| {
                s["Principal"]["Service"] == "cloudwatch.amazonaws.com"
                    && s["Action"].to_string().contains("kms:GenerateDataKey")
            }),
            "{policy}"
        );
        // A generated secret is its template with the generated key.
        let secrets = aws_sdk_secretsmanager::Client::new(&config);
        let webhook = secrets
            .get_secret_value()
            .secret_id(deployed.ref_value("PanoptoWebhookSecret").unwrap())
            .send()
            .await
            .unwrap();
        let generated: serde_json::Value =
            serde_json::from_str(webhook.secret_string().unwrap()).unwrap();
        assert_eq!(generated["signing_secret"].as_str().map(str::len), Some(48));
        // The secret starts with the template's empty credentials and keeps what is put in
        // later across re-provisioning.
        let secret_arn = deployed.ref_value("CanvasCredentialsSecret").unwrap();
        let initial = secrets
            .get_secret_value()
            .secret_id(secret_arn)
            .send()
            .await
            .unwrap();
        assert!(
            initial
                .secret_string()
                .unwrap()
                .contains("\"refresh_token\":\"\"")
        );
        secrets
            .put_secret_value()
            .secret_id(secret_arn)
            .secret_string(r#"{"refresh_token":"kept"}"#)
            .send()
            .await
            .unwrap();

        // Table: keys, GSI, billing, TTL.
        let ddb = aws_sdk_dynamodb::Client::new(&config);
        assert_eq!(
            deployed.table_name("InboxTable"),
            Some("coursewire-inbox-prov")
        );
        let table = ddb
            .describe_table()
            .table_name("coursewire-inbox-prov")
            .send()
            .await
            .unwrap()
            .table
            .unwrap();
        let keys: Vec<(&str, &str)> = table
            .key_schema()
            .iter()
            .map(|k| (k.attribute_name(), k.key_type().as_str()))
            .collect();
        assert_eq!(keys, [("pk", "HASH")]);
        assert_eq!(
            table.billing_mode_summary().and_then(|b| b.billing_mode()),
            Some(&ddb::BillingMode::PayPerRequest)
        );
        let gsi = &table.global_secondary_indexes()[0];
        assert_eq!(gsi.index_name(), Some("by_time"));
        let gsi_keys: Vec<(&str, &str)> = gsi
            .key_schema()
            .iter()
            .map(|k| (k.attribute_name(), k.key_type().as_str()))
            .collect();
        assert_eq!(gsi_keys, [("time_bucket", "HASH"), ("time_key", "RANGE")]);
        assert_eq!(
            gsi.projection().and_then(|p| p.projection_type()),
            Some(&ddb::ProjectionType::All)
        );
        let ttl = ddb
            .describe_time_to_live()
            .table_name("coursewire-inbox-prov")
            .send()
            .await
            .unwrap()
            .time_to_live_description
            .unwrap();
        assert_eq!(ttl.attribute_name(), Some("expires_at"));
        assert_eq!(
            ttl.time_to_live_status(),
            Some(&ddb::TimeToLiveStatus::Enabled)
        );

        // Queues: redrive to the DLQs, FIFO settings.
        let sqs = aws_sdk_sqs::Client::new(&config);
        let attrs = |url: String| {
            let sqs = sqs.clone();
            async move {
                sqs.get_queue_attributes()
                    .queue_url(url)
                    .attribute_names(QueueAttributeName::All)
                    .send()
                    .await
                    .unwrap()
                    .attributes
                    .unwrap()
            }
        };
        let live_url = deployed
            .queue_url("CanvasLiveEventsQueue")
            .unwrap()
            .to_owned();
        assert!(live_url.ends_with("/canvas-live-events-prov"), "{live_url}");
        let live = attrs(live_url).await;
        assert_eq!(live[&QueueAttributeName::VisibilityTimeout], "180");
        let redrive: serde_json::Value =
            serde_json::from_str(&live[&QueueAttributeName::RedrivePolicy]).unwrap();
        assert_eq!(
            redrive["deadLetterTargetArn"],
            "arn:aws:sqs:us-east-1:123456789012:canvas-live-events-prov-dlq"
        );
        assert_eq!(
            redrive["maxReceiveCount"].to_string().trim_matches('"'),
            "5"
        );
        assert!(!live.contains_key(&QueueAttributeName::FifoQueue));
        let dlq = attrs(
            deployed
                .queue_url("CanvasLiveEventsDLQ")
                .unwrap()
                .to_owned(),
        )
        .await;
        assert_eq!(dlq[&QueueAttributeName::MessageRetentionPeriod], "1209600");

        let changes = attrs(deployed.queue_url("ChangesQueue").unwrap().to_owned()).await;
        assert_eq!(changes[&QueueAttributeName::FifoQueue], "true");
        assert_eq!(
            changes[&QueueAttributeName::ContentBasedDeduplication],
            "false"
        );
        assert_eq!(
            changes[&QueueAttributeName::DeduplicationScope],
            "messageGroup"
        );
        assert_eq!(
            changes[&QueueAttributeName::FifoThroughputLimit],
            "perMessageGroupId"
        );
        let redrive: serde_json::Value =
            serde_json::from_str(&changes[&QueueAttributeName::RedrivePolicy]).unwrap();
        assert_eq!(
            redrive["deadLetterTargetArn"],
            "arn:aws:sqs:us-east-1:123456789012:coursewire-changes-prov-dlq.fifo"
        );

        // Functions are resolved against what was created.
        let https = deployed.function("IngestHttpsFunction").unwrap();
        assert_eq!(https.environment["INBOX_TABLE"], "coursewire-inbox-prov");
        assert_eq!(
            https.environment["CHANGES_QUEUE_URL"],
            deployed.queue_url("ChangesQueue").unwrap()
        );
        assert_eq!(deployed.parameters["Stage"], "prov");

        // Second run: nothing new, attributes re-applied (here: an override).
        let again = provision(
            &template,
            &config,
            &overrides
                .clone()
                .queue_attribute("CanvasLiveEventsQueue", "VisibilityTimeout", "2")
                .max_receive_count("CanvasLiveEventsQueue", 3),
        )
        .await
        .unwrap();
        assert!(again.resources.iter().all(|r| r.action != Action::Created));
        assert_eq!(again.context, deployed.context);
        let kept = secrets
            .get_secret_value()
            .secret_id(secret_arn)
            .send()
            .await
            .unwrap();
        assert_eq!(kept.secret_string(), Some(r#"{"refresh_token":"kept"}"#));
        let live = attrs(again.queue_url("CanvasLiveEventsQueue").unwrap().to_owned()).await;
        assert_eq!(live[&QueueAttributeName::VisibilityTimeout], "2");
        let redrive: serde_json::Value =
            serde_json::from_str(&live[&QueueAttributeName::RedrivePolicy]).unwrap();
        assert_eq!(
            redrive["maxReceiveCount"].to_string().trim_matches('"'),
            "3"
        );
        let tables = ddb.list_tables().send().await.unwrap();
        let inboxes = tables
            .table_names()
            .iter()
            .filter(|t| t.as_str() == "coursewire-inbox-prov");
        assert_eq!(inboxes.count(), 1);
    }

    const BUS_TEMPLATE: &str = r#"
Parameters:
  Stage: {Type: String, Default: dev}
Resources:
  Rule:
    Type: AWS::Events::Rule
    Properties:
      EventBusName: !Ref Bus
      EventPattern:
        source: [coursewire]
        detail-type: [course.changed]
      Targets:
        - Id: to-queue
          Arn: !GetAtt Sink.Arn
          SqsParameters: {MessageGroupId: courses}
          DeadLetterConfig: {Arn: !GetAtt SinkDLQ.Arn}
          RetryPolicy: {MaximumRetryAttempts: 3}
  Bus:
    Type: AWS::Events::EventBus
    Properties: {Name: !Sub "coursewire-${Stage}"}
  Sink:
    Type: AWS::SQS::Queue
    Properties: {QueueName: !Sub "sink-${Stage}.fifo", FifoQueue: true, ContentBasedDeduplication: true}
  SinkDLQ:
    Type: AWS::SQS::Queue
  Unsupported:
    Type: AWS::IAM::Role
    Properties: {AssumeRolePolicyDocument: {}}
"#;

    #[tokio::test]
    async fn provisions_buses_and_rules_that_deliver_to_sqs() {
        let root = repo_root().unwrap();
        let moto = MotoServer::start(&root).await.unwrap();
        let config = moto.sdk_config();
        let template = Template::parse(BUS_TEMPLATE).unwrap();
        let deployed = provision(&template, &config, &Overrides::default().stack_name("stk"))
            .await
            .unwrap();
        let order: Vec<&str> = deployed
            .resources
            .iter()
            .map(|r| r.logical_id.as_str())
            .collect();
        assert_eq!(order, ["Bus", "Sink", "SinkDLQ", "Rule"]);
        assert_eq!(deployed.ref_value("Bus"), Some("coursewire-dev"));
        assert_eq!(deployed.ref_value("Rule"), Some("coursewire-dev|stk-Rule"));
        assert!(
            deployed
                .queue_url("SinkDLQ")
                .unwrap()
                .ends_with("/stk-SinkDLQ")
        );

        let events = aws_sdk_eventbridge::Client::new(&config);
        let targets = events
            .list_targets_by_rule()
            .rule("stk-Rule")
            .event_bus_name("coursewire-dev")
            .send()
            .await
            .unwrap();
        let target = &targets.targets()[0];
        assert_eq!(target.arn(), deployed.queue_arn("Sink").unwrap());
        assert_eq!(
            target.dead_letter_config().and_then(|d| d.arn()),
            deployed.queue_arn("SinkDLQ")
        );

        // moto forwards matching events to SQS targets: the local bus works.
        let entry = eb::PutEventsRequestEntry::builder()
            .event_bus_name("coursewire-dev")
            .source("coursewire")
            .detail_type("course.changed")
            .detail(r#"{"course_id":"1"}"#)
            .build();
        let put = events.put_events().entries(entry).send().await.unwrap();
        assert_eq!(put.failed_entry_count(), 0);
        let sqs = aws_sdk_sqs::Client::new(&config);
        let received = sqs
            .receive_message()
            .queue_url(deployed.queue_url("Sink").unwrap())
            .wait_time_seconds(2)
            .send()
            .await
            .unwrap();
        let body: serde_json::Value =
            serde_json::from_str(received.messages()[0].body().unwrap()).unwrap();
        assert_eq!(body["detail"]["course_id"], "1");

        // Idempotent with rules too.
        let again = provision(&template, &config, &Overrides::default().stack_name("stk"))
            .await
            .unwrap();
        assert_eq!(again.context, deployed.context);
        assert!(again.resources.iter().all(|r| r.action == Action::Existing));
    }

    #[tokio::test]
    async fn rejects_overrides_for_unknown_queues() {
        let template = Template::parse(BUS_TEMPLATE).unwrap();
        // Fails before contacting any endpoint.
        let config = crate::moto::sdk_config_for("http://127.0.0.1:9");
        let err = provision(
            &template,
            &config,
            &Overrides::default().queue_attribute("Nope", "VisibilityTimeout", "1"),
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("Nope"), "{err}");
    }

    #[test]
    fn order_puts_dependencies_first_and_detects_cycles() {
        let t = Template::parse(BUS_TEMPLATE).unwrap();
        let order: Vec<&str> = creation_order(&t)
            .unwrap()
            .iter()
            .map(|r| r.logical_id.as_str())
            .collect();
        assert_eq!(order, ["Bus", "Sink", "SinkDLQ", "Rule", "Unsupported"]);
        let cyclic = Template::parse(
            "Resources:\n  A: {Type: AWS::SQS::Queue, Properties: {QueueName: !Ref B}}\n  B: {Type: AWS::SQS::Queue, Properties: {QueueName: !Ref A}}\n",
        )
        .unwrap();
        assert!(matches!(
            creation_order(&cyclic),
            Err(ProvisionError::Cycle(_))
        ));
    }
}
