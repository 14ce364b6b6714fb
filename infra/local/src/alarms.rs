//! The template's CloudWatch alarms, evaluated on the local stack: moto does not evaluate
//! alarms, so this reads each `AWS::CloudWatch::Alarm` of `template.yaml` (single metric or
//! metric math), computes its periods from the EMF metrics the in-process functions emitted
//! and from SQS queue attributes sampled at each evaluation, and on every state change
//! publishes CloudWatch's alarm message to the alarm's actions, the real SNS topics in moto.
//!
//! Delivery pushes back as AWS does: a topic encrypted with a key whose policy does not let
//! `cloudwatch.amazonaws.com` use it (the AWS-managed `alias/aws/sns`, say) gets nothing,
//! and the transition says so.
//!
//! Evaluation is on a clock the caller gives, so a test can ask "and five minutes later?"
//! without waiting. Queue ages are approximated by how long a queue has been non-empty at
//! the evaluations seen (SQS's own `ApproximateAgeOfOldestMessage` is not in moto). Lambda's
//! `Errors` of a function are the invocations that failed (returned an error, panicked or
//! timed out) since the previous evaluation, as the local event sources counted them.

use crate::provision::Deployed;
use crate::template::{Template, TemplateError, scalar_to_string};
use aws_config::SdkConfig;
use chrono::{DateTime, TimeDelta, Utc};
use coursewire_runtime::telemetry::CollectingSink;
use serde_json::json;
use serde_norway::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum AlarmError {
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("alarm {alarm}: {reason}")]
    Invalid { alarm: String, reason: String },
    #[error("{0}")]
    Aws(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum State {
    #[serde(rename = "INSUFFICIENT_DATA")]
    InsufficientData,
    #[serde(rename = "OK")]
    Ok,
    #[serde(rename = "ALARM")]
    Alarm,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::InsufficientData => "INSUFFICIENT_DATA",
            State::Ok => "OK",
            State::Alarm => "ALARM",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Stat {
    Sum,
    Minimum,
    Maximum,
    Average,
    SampleCount,
    Percentile(f64),
}

impl Stat {
    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "Sum" => Stat::Sum,
            "Minimum" => Stat::Minimum,
            "Maximum" => Stat::Maximum,
            "Average" => Stat::Average,
            "SampleCount" => Stat::SampleCount,
            p => Stat::Percentile(p.strip_prefix('p')?.parse().ok()?),
        })
    }

    fn of(self, values: &[f64]) -> Option<f64> {
        if values.is_empty() {
            return None;
        }
        let n = values.len() as f64;
        Some(match self {
            Stat::Sum => values.iter().sum(),
            Stat::Minimum => values.iter().copied().fold(f64::INFINITY, f64::min),
            Stat::Maximum => values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            Stat::Average => values.iter().sum::<f64>() / n,
            Stat::SampleCount => n,
            Stat::Percentile(p) => {
                let mut sorted = values.to_vec();
                sorted.sort_by(f64::total_cmp);
                let rank = ((p / 100.0) * n).ceil().max(1.0) as usize;
                sorted[rank.min(sorted.len()) - 1]
            }
        })
    }
}

/// One metric an alarm reads.
#[derive(Debug, Clone, PartialEq)]
struct MetricQuery {
    namespace: String,
    name: String,
    dimensions: Vec<(String, String)>,
    stat: Stat,
}

/// A metric-math expression: numbers, metric ids, `+ - * /`, parentheses, `FILL(id, n)`.
#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Number(f64),
    Id(String),
    Fill(String, f64),
    Op(Box<Expr>, char, Box<Expr>),
}

impl Expr {
    fn parse(text: &str) -> Result<Self, String> {
        let tokens = tokenize(text)?;
        let mut pos = 0;
        let expr = sum(&tokens, &mut pos)?;
        if pos != tokens.len() {
            return Err(format!("unexpected {:?} in {text:?}", tokens[pos]));
        }
        Ok(expr)
    }

    fn eval(&self, values: &BTreeMap<String, Option<f64>>) -> Option<f64> {
        match self {
            Expr::Number(n) => Some(*n),
            Expr::Id(id) => values.get(id).copied().flatten(),
            Expr::Fill(id, n) => Some(values.get(id).copied().flatten().unwrap_or(*n)),
            Expr::Op(a, op, b) => {
                let (a, b) = (a.eval(values)?, b.eval(values)?);
                Some(match op {
                    '+' => a + b,
                    '-' => a - b,
                    '*' => a * b,
                    _ => a / b,
                })
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Number(f64),
    Word(String),
    Symbol(char),
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() || c == '.' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            out.push(Token::Number(
                word.parse().map_err(|_| format!("bad number {word}"))?,
            ));
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Token::Word(chars[start..i].iter().collect()));
        } else if "+-*/(),".contains(c) {
            out.push(Token::Symbol(c));
            i += 1;
        } else {
            return Err(format!("unsupported character {c:?} in {text:?}"));
        }
    }
    Ok(out)
}

fn sum(t: &[Token], pos: &mut usize) -> Result<Expr, String> {
    let mut left = product(t, pos)?;
    while let Some(Token::Symbol(op @ ('+' | '-'))) = t.get(*pos) {
        *pos += 1;
        left = Expr::Op(Box::new(left), *op, Box::new(product(t, pos)?));
    }
    Ok(left)
}

fn product(t: &[Token], pos: &mut usize) -> Result<Expr, String> {
    let mut left = atom(t, pos)?;
    while let Some(Token::Symbol(op @ ('*' | '/'))) = t.get(*pos) {
        *pos += 1;
        left = Expr::Op(Box::new(left), *op, Box::new(atom(t, pos)?));
    }
    Ok(left)
}

fn atom(t: &[Token], pos: &mut usize) -> Result<Expr, String> {
    let token = t.get(*pos).cloned().ok_or("the expression ends early")?;
    *pos += 1;
    match token {
        Token::Number(n) => Ok(Expr::Number(n)),
        Token::Symbol('(') => {
            let inner = sum(t, pos)?;
            expect(t, pos, ')')?;
            Ok(inner)
        }
        Token::Word(w) if w == "FILL" => {
            expect(t, pos, '(')?;
            let Some(Token::Word(id)) = t.get(*pos).cloned() else {
                return Err("FILL takes a metric id".into());
            };
            *pos += 1;
            expect(t, pos, ',')?;
            let Some(Token::Number(n)) = t.get(*pos).cloned() else {
                return Err("FILL takes a number".into());
            };
            *pos += 1;
            expect(t, pos, ')')?;
            Ok(Expr::Fill(id, n))
        }
        Token::Word(w) => Ok(Expr::Id(w)),
        other => Err(format!("unexpected {other:?}")),
    }
}

fn expect(t: &[Token], pos: &mut usize, c: char) -> Result<(), String> {
    if t.get(*pos) == Some(&Token::Symbol(c)) {
        *pos += 1;
        Ok(())
    } else {
        Err(format!("expected {c:?}"))
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Query {
    Metric(MetricQuery),
    Math {
        expression: Expr,
        metrics: BTreeMap<String, MetricQuery>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Missing {
    Breaching,
    NotBreaching,
    Ignore,
}

/// One alarm of the template, resolved against the deployed stack.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmSpec {
    pub logical_id: String,
    pub name: String,
    pub description: String,
    actions_enabled: bool,
    alarm_actions: Vec<String>,
    ok_actions: Vec<String>,
    query: Query,
    period: i64,
    evaluation_periods: u32,
    datapoints_to_alarm: u32,
    threshold: f64,
    comparison: String,
    missing: Missing,
}

impl AlarmSpec {
    fn from_properties(logical_id: &str, p: &Value) -> Result<Self, AlarmError> {
        let invalid = |reason: String| AlarmError::Invalid {
            alarm: logical_id.to_string(),
            reason,
        };
        let text = |v: &Value, key: &str| v.get(key).and_then(scalar_to_string);
        let number = |v: &Value, key: &str| -> Result<f64, AlarmError> {
            text(v, key)
                .and_then(|t| t.parse::<f64>().ok())
                .ok_or_else(|| invalid(format!("{key} is missing or not a number")))
        };
        let dimensions = |v: &Value| -> Vec<(String, String)> {
            v.get("Dimensions")
                .and_then(Value::as_sequence)
                .map(|ds| {
                    ds.iter()
                        .filter_map(|d| Some((text(d, "Name")?, text(d, "Value")?)))
                        .collect()
                })
                .unwrap_or_default()
        };
        let topics = |key: &str| -> Vec<String> {
            p.get(key)
                .and_then(Value::as_sequence)
                .map(|s| s.iter().filter_map(scalar_to_string).collect())
                .unwrap_or_default()
        };
        let (query, period) = match p.get("Metrics").and_then(Value::as_sequence) {
            None => {
                let stat = text(p, "Statistic")
                    .or_else(|| text(p, "ExtendedStatistic"))
                    .and_then(|s| Stat::parse(&s))
                    .ok_or_else(|| invalid("no Statistic or ExtendedStatistic".into()))?;
                let query = MetricQuery {
                    namespace: text(p, "Namespace").unwrap_or_default(),
                    name: text(p, "MetricName").unwrap_or_default(),
                    dimensions: dimensions(p),
                    stat,
                };
                (Query::Metric(query), number(p, "Period")? as i64)
            }
            Some(queries) => {
                let mut metrics = BTreeMap::new();
                let mut expression = None;
                let mut period = 60;
                for q in queries {
                    let id = text(q, "Id").unwrap_or_default();
                    if let Some(e) = text(q, "Expression") {
                        expression = Some(Expr::parse(&e).map_err(invalid)?);
                    } else if let Some(stat) = q.get("MetricStat") {
                        let metric = stat.get("Metric").unwrap_or(&Value::Null);
                        period = number(stat, "Period")? as i64;
                        metrics.insert(
                            id,
                            MetricQuery {
                                namespace: text(metric, "Namespace").unwrap_or_default(),
                                name: text(metric, "MetricName").unwrap_or_default(),
                                dimensions: dimensions(metric),
                                stat: text(stat, "Stat")
                                    .and_then(|s| Stat::parse(&s))
                                    .ok_or_else(|| invalid("a MetricStat without Stat".into()))?,
                            },
                        );
                    }
                }
                let expression =
                    expression.ok_or_else(|| invalid("Metrics without an Expression".into()))?;
                (
                    Query::Math {
                        expression,
                        metrics,
                    },
                    period,
                )
            }
        };
        let evaluation_periods = number(p, "EvaluationPeriods")? as u32;
        Ok(Self {
            logical_id: logical_id.to_string(),
            name: text(p, "AlarmName").unwrap_or_else(|| logical_id.to_string()),
            description: text(p, "AlarmDescription").unwrap_or_default(),
            actions_enabled: text(p, "ActionsEnabled").is_none_or(|t| t == "true"),
            alarm_actions: topics("AlarmActions"),
            ok_actions: topics("OKActions"),
            query,
            period,
            evaluation_periods,
            datapoints_to_alarm: text(p, "DatapointsToAlarm")
                .and_then(|t| t.parse().ok())
                .unwrap_or(evaluation_periods),
            threshold: number(p, "Threshold")?,
            comparison: text(p, "ComparisonOperator").unwrap_or_default(),
            missing: match text(p, "TreatMissingData").as_deref() {
                Some("breaching") => Missing::Breaching,
                Some("notBreaching") => Missing::NotBreaching,
                _ => Missing::Ignore,
            },
        })
    }

    fn breaches(&self, value: f64) -> bool {
        match self.comparison.as_str() {
            "GreaterThanThreshold" => value > self.threshold,
            "GreaterThanOrEqualToThreshold" => value >= self.threshold,
            "LessThanThreshold" => value < self.threshold,
            _ => value <= self.threshold,
        }
    }

    fn queries(&self) -> Vec<&MetricQuery> {
        match &self.query {
            Query::Metric(q) => vec![q],
            Query::Math { metrics, .. } => metrics.values().collect(),
        }
    }
}

/// A state change, and whether its message reached the alarm's topics.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Transition {
    pub alarm: String,
    pub from: State,
    pub to: State,
    pub reason: String,
    /// Topics that got the message; a topic CloudWatch may not publish to is not among them.
    pub delivered: Vec<String>,
    pub undeliverable: Vec<String>,
}

/// A sample of a queue's attributes.
#[derive(Debug, Clone, Copy)]
struct QueueSample {
    at: DateTime<Utc>,
    visible: f64,
    age_seconds: f64,
}

pub struct Alarms {
    specs: Vec<AlarmSpec>,
    states: BTreeMap<String, State>,
    metrics: Arc<CollectingSink>,
    queues: BTreeMap<String, String>,
    samples: BTreeMap<String, Vec<QueueSample>>,
    nonempty_since: BTreeMap<String, DateTime<Utc>>,
    /// Function name -> (evaluation time, errors since the evaluation before).
    function_errors: BTreeMap<String, Vec<(DateTime<Utc>, f64)>>,
    /// Function name -> errors counted up to the last evaluation.
    errors_seen: BTreeMap<String, u64>,
    sqs: aws_sdk_sqs::Client,
    sns: aws_sdk_sns::Client,
    kms: aws_sdk_kms::Client,
    region: String,
}

impl Alarms {
    /// Every alarm of the template, as deployed.
    pub fn load(
        deployed: &Deployed,
        aws: &SdkConfig,
        metrics: Arc<CollectingSink>,
    ) -> Result<Self, AlarmError> {
        let template = Template::load_repo()?.with_overrides(deployed.parameters.clone())?;
        let mut specs = Vec::new();
        for resource in template.resources_of_type("AWS::CloudWatch::Alarm") {
            let properties = template
                .resolve(&resource.properties, &deployed.context)
                .map_err(|e| AlarmError::Invalid {
                    alarm: resource.logical_id.clone(),
                    reason: e.to_string(),
                })?;
            specs.push(AlarmSpec::from_properties(
                &resource.logical_id,
                &properties,
            )?);
        }
        let queues = deployed
            .context
            .resources()
            .filter_map(|(_, r)| {
                Some((
                    r.attr("QueueName")?.to_string(),
                    r.attr("QueueUrl")?.to_string(),
                ))
            })
            .collect();
        Ok(Self {
            states: specs
                .iter()
                .map(|s| (s.name.clone(), State::InsufficientData))
                .collect(),
            specs,
            metrics,
            queues,
            samples: BTreeMap::new(),
            nonempty_since: BTreeMap::new(),
            function_errors: BTreeMap::new(),
            errors_seen: BTreeMap::new(),
            sqs: aws_sdk_sqs::Client::new(aws),
            sns: aws_sdk_sns::Client::new(aws),
            kms: aws_sdk_kms::Client::new(aws),
            region: deployed.context.region.clone(),
        })
    }

    pub fn specs(&self) -> &[AlarmSpec] {
        &self.specs
    }

    pub fn state(&self, alarm_name: &str) -> Option<State> {
        self.states.get(alarm_name).copied()
    }

    /// Evaluates every alarm as of `at`, publishing each state change to its actions.
    /// `errors` is every function's failed invocations so far, by function name.
    pub async fn evaluate(
        &mut self,
        at: DateTime<Utc>,
        errors: &BTreeMap<String, u64>,
    ) -> Result<Vec<Transition>, AlarmError> {
        self.sample_queues(at).await?;
        self.sample_errors(at, errors);
        let mut transitions = Vec::new();
        for spec in self.specs.clone() {
            let (to, reason) = self.judge(&spec, at);
            let from = self.state(&spec.name).unwrap_or(State::InsufficientData);
            let to = to.unwrap_or(from);
            if to == from {
                continue;
            }
            self.states.insert(spec.name.clone(), to);
            let topics = match to {
                State::Alarm => spec.alarm_actions.clone(),
                State::Ok => spec.ok_actions.clone(),
                State::InsufficientData => Vec::new(),
            };
            let mut transition = Transition {
                alarm: spec.name.clone(),
                from,
                to,
                reason,
                delivered: Vec::new(),
                undeliverable: Vec::new(),
            };
            if spec.actions_enabled {
                for topic in topics {
                    if self.publish(&spec, &transition, &topic, at).await? {
                        transition.delivered.push(topic);
                    } else {
                        transition.undeliverable.push(topic);
                    }
                }
            }
            tracing::info!(alarm = %spec.name, from = from.as_str(), to = to.as_str(), reason = %transition.reason, "alarm state changed");
            transitions.push(transition);
        }
        Ok(transitions)
    }

    /// The state the alarm's last `evaluation_periods` periods up to `at` call for (`None`:
    /// keep the current one), and why. A period is `(end - period, end]`, so a sample taken
    /// at `at` is in the latest.
    fn judge(&self, spec: &AlarmSpec, at: DateTime<Utc>) -> (Option<State>, String) {
        let mut breaching = 0;
        let mut seen = 0;
        let mut last = None;
        for i in 0..spec.evaluation_periods {
            let to = at - TimeDelta::seconds(spec.period * i64::from(i));
            let from = to - TimeDelta::seconds(spec.period);
            let value = self.datapoint(spec, from, to);
            if i == 0 {
                last = value;
            }
            let breach = match (value, spec.missing) {
                (Some(v), _) => Some(spec.breaches(v)),
                (None, Missing::Breaching) => Some(true),
                (None, Missing::NotBreaching) => Some(false),
                (None, Missing::Ignore) => None,
            };
            if let Some(b) = breach {
                seen += 1;
                breaching += usize::from(b);
            }
        }
        let reason = format!(
            "{breaching} of the last {} datapoints ({} s each) breached the threshold {} (latest: {})",
            spec.evaluation_periods,
            spec.period,
            spec.threshold,
            last.map_or("no data".to_string(), |v| format!("{v}"))
        );
        let state = if breaching >= spec.datapoints_to_alarm as usize {
            Some(State::Alarm)
        } else if seen > 0 {
            Some(State::Ok)
        } else {
            None
        };
        (state, reason)
    }

    fn datapoint(&self, spec: &AlarmSpec, from: DateTime<Utc>, to: DateTime<Utc>) -> Option<f64> {
        match &spec.query {
            Query::Metric(q) => self.value(q, from, to),
            Query::Math {
                expression,
                metrics,
            } => {
                let values = metrics
                    .iter()
                    .map(|(id, q)| (id.clone(), self.value(q, from, to)))
                    .collect();
                expression.eval(&values)
            }
        }
    }

    fn value(&self, q: &MetricQuery, from: DateTime<Utc>, to: DateTime<Utc>) -> Option<f64> {
        let values: Vec<f64> = if q.namespace == "AWS/SQS" {
            let queue = q
                .dimensions
                .iter()
                .find(|(k, _)| k == "QueueName")
                .map(|(_, v)| v.as_str())
                .unwrap_or_default();
            self.samples
                .get(queue)
                .map(|samples| {
                    samples
                        .iter()
                        .filter(|s| s.at > from && s.at <= to)
                        .filter_map(|s| match q.name.as_str() {
                            "ApproximateNumberOfMessagesVisible" => Some(s.visible),
                            "ApproximateAgeOfOldestMessage" => Some(s.age_seconds),
                            _ => None,
                        })
                        .collect()
                })
                .unwrap_or_default()
        } else if q.namespace == "AWS/Lambda" && q.name == "Errors" {
            let function = q
                .dimensions
                .iter()
                .find(|(k, _)| k == "FunctionName")
                .map(|(_, v)| v.as_str())
                .unwrap_or_default();
            self.function_errors
                .get(function)
                .map(|samples| {
                    samples
                        .iter()
                        .filter(|(at, _)| *at > from && *at <= to)
                        .map(|(_, n)| *n)
                        .collect()
                })
                .unwrap_or_default()
        } else {
            self.metrics
                .values_between(&q.name, &q.dimensions, from, to)
        };
        q.stat.of(&values)
    }

    /// The errors of each function since the last evaluation, stamped `at`.
    fn sample_errors(&mut self, at: DateTime<Utc>, errors: &BTreeMap<String, u64>) {
        for (function, &total) in errors {
            let seen = self
                .errors_seen
                .insert(function.clone(), total)
                .unwrap_or(0);
            self.function_errors
                .entry(function.clone())
                .or_default()
                .push((at, total.saturating_sub(seen) as f64));
        }
    }

    /// One sample of every queue an alarm reads, stamped `at`.
    async fn sample_queues(&mut self, at: DateTime<Utc>) -> Result<(), AlarmError> {
        let names: Vec<String> = self
            .specs
            .iter()
            .flat_map(|s| s.queries())
            .filter(|q| q.namespace == "AWS/SQS")
            .filter_map(|q| {
                q.dimensions
                    .iter()
                    .find(|(k, _)| k == "QueueName")
                    .map(|(_, v)| v.clone())
            })
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        for name in names {
            let Some(url) = self.queues.get(&name) else {
                continue;
            };
            let out = self
                .sqs
                .get_queue_attributes()
                .queue_url(url)
                .attribute_names(
                    aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages,
                )
                .attribute_names(
                    aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
                )
                .send()
                .await
                .map_err(|e| AlarmError::Aws(format!("GetQueueAttributes {name}: {e}")))?;
            let attribute = |a: aws_sdk_sqs::types::QueueAttributeName| -> f64 {
                out.attributes()
                    .and_then(|m| m.get(&a))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0.0)
            };
            let visible =
                attribute(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages);
            let in_flight = attribute(
                aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
            );
            let age_seconds = if visible + in_flight > 0.0 {
                let since = *self.nonempty_since.entry(name.clone()).or_insert(at);
                (at - since).num_milliseconds().max(0) as f64 / 1000.0
            } else {
                self.nonempty_since.remove(&name);
                0.0
            };
            self.samples.entry(name).or_default().push(QueueSample {
                at,
                visible,
                age_seconds,
            });
        }
        Ok(())
    }

    /// Publishes CloudWatch's message for `transition` on `topic`, if CloudWatch may: false
    /// when the topic's encryption key does not let `cloudwatch.amazonaws.com` use it.
    async fn publish(
        &self,
        spec: &AlarmSpec,
        transition: &Transition,
        topic: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, AlarmError> {
        let attributes = self
            .sns
            .get_topic_attributes()
            .topic_arn(topic)
            .send()
            .await
            .map_err(|e| AlarmError::Aws(format!("GetTopicAttributes {topic}: {e}")))?;
        if let Some(key) = attributes
            .attributes()
            .and_then(|a| a.get("KmsMasterKeyId"))
            && !self.cloudwatch_may_use(key).await
        {
            tracing::warn!(alarm = %spec.name, topic, key = %key, "CloudWatch may not use the topic's key: the alarm message is not delivered");
            return Ok(false);
        }
        let message = json!({
            "AlarmName": spec.name,
            "AlarmDescription": spec.description,
            "NewStateValue": transition.to.as_str(),
            "OldStateValue": transition.from.as_str(),
            "NewStateReason": transition.reason,
            "StateChangeTime": at.to_rfc3339(),
            "Region": self.region,
            "Trigger": {"Period": spec.period, "EvaluationPeriods": spec.evaluation_periods,
                        "Threshold": spec.threshold, "ComparisonOperator": spec.comparison},
        });
        let subject: String = format!(
            "{}: \"{}\" in {}",
            transition.to.as_str(),
            spec.name,
            self.region
        )
        .chars()
        .take(100)
        .collect();
        self.sns
            .publish()
            .topic_arn(topic)
            .subject(subject)
            .message(message.to_string())
            .send()
            .await
            .map_err(|e| AlarmError::Aws(format!("Publish {topic}: {e}")))?;
        Ok(true)
    }

    /// Whether the key's policy lets CloudWatch generate data keys with it (what publishing
    /// to an encrypted topic takes). AWS-managed keys (`alias/aws/...`) never do.
    async fn cloudwatch_may_use(&self, key: &str) -> bool {
        if key.starts_with("alias/aws/") {
            return false;
        }
        let Ok(out) = self
            .kms
            .get_key_policy()
            .key_id(key)
            .policy_name("default")
            .send()
            .await
        else {
            return false;
        };
        let Ok(policy) =
            serde_json::from_str::<serde_json::Value>(out.policy().unwrap_or_default())
        else {
            return false;
        };
        policy["Statement"].as_array().is_some_and(|statements| {
            statements.iter().any(|s| {
                s["Effect"] == "Allow"
                    && s["Principal"]["Service"]
                        .to_string()
                        .contains("cloudwatch.amazonaws.com")
                    && s["Action"].to_string().contains("kms:GenerateDataKey")
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_math_and_statistics() {
        let e = Expr::parse("(FILL(a, 0) + FILL(b, 0)) / (60 * 10)").unwrap();
        let values = BTreeMap::from([("a".to_string(), Some(900.0)), ("b".to_string(), None)]);
        assert_eq!(e.eval(&values), Some(1.5));
        assert_eq!(Expr::parse("a + b").unwrap().eval(&values), None);
        assert!(Expr::parse("a +").is_err());
        assert!(Expr::parse("SEARCH('x')").is_err());
        let v = [5.0, 1.0, 3.0, 2.0, 4.0];
        assert_eq!(Stat::Sum.of(&v), Some(15.0));
        assert_eq!(Stat::Minimum.of(&v), Some(1.0));
        assert_eq!(Stat::parse("p99").unwrap().of(&v), Some(5.0));
        assert_eq!(Stat::parse("p50").unwrap().of(&v), Some(3.0));
        assert_eq!(Stat::Maximum.of(&[]), None);
    }
}
