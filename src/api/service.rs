//! The Step Functions actions: state machines (create, describe, list, update, delete, tags),
//! executions (StartSyncExecution, StartExecution, describe, list, stop) and definition
//! validation, with the request checks, error codes and message texts of the service.
//!
//! State machines live in one `Store` behind a mutex, taken briefly per request and never
//! across an await. Executions run on the API's shard pool: each is a `Record` carrying a
//! `Job` (its own compiled plan, name and ARNs), answered through a one-shot channel by the
//! pool's sink. STANDARD executions are kept (the last `retain_executions`) so Describe and
//! List answer for them; EXPRESS ones are not, as on AWS.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

mod test_state;
mod versions;

use super::ApiError;
use super::state_dir::{self, SavedAlias, SavedMachine, SavedRevision, SavedVersion};
use crate::asl::{self, MachineType};
use crate::exec::logging::{
    ExecutionLog, LogDestination, LogLevel, LogSettings, strip_execution_data,
};
use crate::exec::{HistoryEvent, Identity, PAYLOAD_LIMIT};
use crate::exec::{Recording, StateCounts};
use crate::json::{self, Str, Value};
use crate::plan;
use crate::random::Rng;
use crate::stream::driver::{Program, now_ms};
use crate::stream::shard::{INVALID_JSON, NOT_JSON_CAUSE, ResultSink, ShardConfig, ShardPool};
use crate::stream::{Disposition, Job, Processed, Record, Source};
use crate::tasks::Registry;
use crate::tasks::mock::MockConfig;

/// How the service is set up.
#[derive(Clone, Debug)]
pub struct Settings {
    pub region: String,
    pub account: String,
    /// Executions running at once; beyond it requests get `ThrottlingException`.
    pub max_executions: usize,
    /// Finished STANDARD executions kept for Describe/List (the oldest go first).
    pub retain_executions: usize,
    /// Where state machines and tags are kept across restarts (`None`: memory only).
    pub state_dir: Option<PathBuf>,
    /// A Step Functions Local mock configuration (`SFN_MOCK_CONFIG`), its text and where it
    /// came from; a state machine ARN ending in `#TestCase` runs with that case's mocks.
    pub mock_config: Option<(PathBuf, Vec<u8>)>,
    pub shards: ShardConfig,
    /// Where EXPRESS executions with a `loggingConfiguration` write their events, as JSON
    /// lines in the shape CloudWatch Logs receives them (`None`: standard error).
    pub execution_log: Option<PathBuf>,
    /// A log already open (shared with pipelines that log to the same destination, so
    /// their lines never interleave mid-line); used instead of opening `execution_log`.
    pub open_log: Option<ExecutionLog>,
}

impl Default for Settings {
    fn default() -> Settings {
        let identity = Identity::default();
        Settings {
            region: identity.region.to_string(),
            account: identity.account.to_string(),
            max_executions: 10_000,
            retain_executions: 10_000,
            state_dir: None,
            mock_config: None,
            shards: ShardConfig::default(),
            execution_log: None,
            open_log: None,
        }
    }
}

/// What one version of a state machine's definition and settings is; executions keep the
/// revision they started with (DescribeStateMachineForExecution).
struct Revision {
    definition: String,
    role_arn: String,
    updated_ms: i64,
    revision_id: String,
    logging: Value,
    tracing: Value,
    program: Program,
    /// What its executions' states did, one table per shard (each written by its shard).
    counts: Arc<[Arc<StateCounts>]>,
    /// The definition drawn for the workflow page, when first asked for.
    drawing: std::sync::OnceLock<Option<String>>,
}

#[derive(Clone)]
struct Machine {
    arn: String,
    name: String,
    kind: MachineType,
    created_ms: i64,
    tags: Vec<(String, String)>,
    revision: Arc<Revision>,
    /// Published versions by number, and the number the next one gets.
    versions: BTreeMap<u32, Version>,
    next_version: u32,
    aliases: BTreeMap<String, Alias>,
}

/// A published version: an immutable revision.
#[derive(Clone)]
struct Version {
    revision: Arc<Revision>,
    created_ms: i64,
    description: Option<String>,
}

/// An alias: one or two versions with the percentage of executions each gets.
#[derive(Clone)]
struct Alias {
    description: Option<String>,
    routing: Vec<(u32, u32)>,
    created_ms: i64,
    updated_ms: i64,
}

/// What a state machine ARN names beyond the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Qualifier<'a> {
    Latest,
    Version(u32),
    Alias(&'a str),
}

/// An execution's target, resolved: the revision it runs and how it was named.
struct Target {
    machine_arn: String,
    kind: MachineType,
    revision: Arc<Revision>,
    registry: Arc<Registry>,
    version_arn: Option<String>,
    alias_arn: Option<String>,
}

struct ExecutionEntry {
    arn: String,
    machine_arn: String,
    name: String,
    status: &'static str,
    start_ms: i64,
    stop_ms: Option<i64>,
    input: String,
    output: Option<String>,
    error: Option<String>,
    cause: Option<String>,
    revision: Arc<Revision>,
    version_arn: Option<String>,
    alias_arn: Option<String>,
    /// Set by StopExecution, for the shard to end the execution.
    cancel: Arc<AtomicBool>,
    /// Its history events, once it has ended.
    events: Vec<HistoryEvent>,
}

#[derive(Default)]
struct Store {
    machines: BTreeMap<u64, Machine>,
    by_name: HashMap<String, u64>,
    executions: BTreeMap<u64, ExecutionEntry>,
    by_arn: HashMap<String, u64>,
    /// Mock registries by (state machine, test case), built on first use.
    mocked: HashMap<(String, String), Arc<Registry>>,
}

impl Store {
    fn machine(&self, name: &str) -> Option<&Machine> {
        self.by_name.get(name).and_then(|s| self.machines.get(s))
    }

    fn machine_mut(&mut self, name: &str) -> Option<&mut Machine> {
        let seq = *self.by_name.get(name)?;
        self.machines.get_mut(&seq)
    }

    fn execution(&self, arn: &str) -> Option<&ExecutionEntry> {
        self.by_arn.get(arn).and_then(|s| self.executions.get(s))
    }
}

/// The API's sink: answers each execution's request with its result.
#[derive(Clone)]
struct Answers;

impl ResultSink for Answers {
    fn deliver(&mut self, mut result: Processed) -> Option<Vec<u8>> {
        let reply = result.job.as_mut().and_then(|j| j.reply.take());
        if let Some(reply) = reply {
            // The requester may have gone (a dropped connection); nothing is owed to it.
            let _ = reply.send(result);
        }
        None
    }
}

/// The service: settings, the store, and the shards that run executions.
pub struct Service {
    settings: Settings,
    registry: Arc<Registry>,
    pool: ShardPool,
    store: Mutex<Store>,
    in_flight: Arc<AtomicUsize>,
    seq: AtomicU64,
    log: ExecutionLog,
}

/// The one-Pass plan the API shards' drivers are built with; every API execution brings
/// its own plan in its `Job`, so this one never runs.
fn placeholder_plan() -> plan::Plan {
    let text = br#"{"StartAt":"Idle","States":{"Idle":{"Type":"Pass","End":true}}}"#;
    let validated = asl::load(text, MachineType::Express).expect("the placeholder is valid");
    plan::compile(&validated, "stepstream-api")
}

impl Service {
    /// Starts the shards and loads the state directory, if any.
    pub fn start(settings: Settings, registry: Registry) -> Result<Service, String> {
        let registry = Arc::new(registry);
        let pool = ShardPool::start(
            Arc::new(placeholder_plan()),
            Arc::clone(&registry),
            &settings.shards,
            Answers,
        )
        .map_err(|e| format!("cannot start the API's shard threads: {e}"))?;
        let log = match &settings.open_log {
            Some(log) => log.clone(),
            None => ExecutionLog::open(LogDestination::file_or_stderr(
                settings.execution_log.as_deref(),
            ))?,
        };
        let service = Service {
            log,
            settings,
            registry,
            pool,
            store: Mutex::new(Store::default()),
            in_flight: Arc::new(AtomicUsize::new(0)),
            seq: AtomicU64::new(1),
        };
        if let Some(dir) = service.settings.state_dir.clone() {
            let saved = state_dir::load(&dir)?;
            let mut store = service.lock();
            for m in saved {
                let machine = service.restore(m).map_err(|e| {
                    format!(
                        "{}: a saved state machine no longer loads: {e}",
                        dir.display()
                    )
                })?;
                let seq = service.next_seq();
                store.by_name.insert(machine.name.clone(), seq);
                store.machines.insert(seq, machine);
            }
        }
        Ok(service)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Store> {
        // A panic while holding the lock would be a bug; the store itself stays consistent
        // (every change is made whole), so keep serving.
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed)
    }

    fn uuid(&self) -> String {
        let seed = Rng::seed_from(&now_ms().to_le_bytes()) ^ self.next_seq().rotate_left(32);
        Rng::new(seed ^ std::process::id() as u64).uuid()
    }

    fn machine_arn(&self, name: &str) -> String {
        format!(
            "arn:aws:states:{}:{}:stateMachine:{name}",
            self.settings.region, self.settings.account
        )
    }

    /// Runs one action; `body` is the request's JSON object.
    pub async fn call(self: &Arc<Self>, action: &str, body: &Value) -> Result<Value, ApiError> {
        if body.as_object().is_none() {
            return Err(ApiError::new(
                "SerializationException",
                "The request body must be a JSON object",
            ));
        }
        match action {
            "CreateStateMachine" => self.create_state_machine(body),
            "DescribeStateMachine" => self.describe_state_machine(body),
            "ListStateMachines" => self.list_state_machines(body),
            "UpdateStateMachine" => self.update_state_machine(body),
            "DeleteStateMachine" => self.delete_state_machine(body),
            "ValidateStateMachineDefinition" => validate_definition(body),
            "StartSyncExecution" => self.start_sync_execution(body).await,
            "StartExecution" => self.start_execution(body).await,
            "DescribeExecution" => self.describe_execution(body),
            "GetExecutionHistory" => self.execution_history(body).await,
            "ListExecutions" => self.list_executions(body),
            "StopExecution" => self.stop_execution(body).await,
            "DescribeStateMachineForExecution" => self.describe_machine_for_execution(body),
            "PublishStateMachineVersion" => self.publish_version(body),
            "ListStateMachineVersions" => self.list_versions(body),
            "DeleteStateMachineVersion" => self.delete_version(body),
            "CreateStateMachineAlias" => self.create_alias(body),
            "DescribeStateMachineAlias" => self.describe_alias(body),
            "UpdateStateMachineAlias" => self.update_alias(body),
            "DeleteStateMachineAlias" => self.delete_alias(body),
            "ListStateMachineAliases" => self.list_aliases(body),
            "TestState" => self.test_state(body).await,
            "TagResource" => self.tag_resource(body),
            "UntagResource" => self.untag_resource(body),
            "ListTagsForResource" => self.list_tags(body),
            known if KNOWN_ACTIONS.contains(&known) => Err(ApiError::new(
                "UnknownOperationException",
                format!("stepstream does not implement {known} yet"),
            )),
            other => Err(ApiError::new(
                "UnknownOperationException",
                format!("'{other}' is not an action of AWSStepFunctions"),
            )),
        }
    }

    /// A saved machine, compiled again (a definition that no longer validates is an error).
    fn restore(&self, m: SavedMachine) -> Result<Machine, String> {
        let kind = m.kind;
        let revision = |r: SavedRevision| -> Result<Arc<Revision>, String> {
            let program = compile(&r.definition, &m.name, kind)
                .map_err(|e| format!("'{}': {}", m.name, e.message))?;
            Ok(Arc::new(Revision {
                definition: r.definition,
                role_arn: r.role_arn,
                updated_ms: r.updated_ms,
                revision_id: r.revision_id,
                logging: r.logging,
                tracing: r.tracing,
                counts: self.shard_counts(&program),
                drawing: Default::default(),
                program,
            }))
        };
        let mut versions = BTreeMap::new();
        for v in m.versions {
            let version = Version {
                revision: revision(v.revision)?,
                created_ms: v.created_ms,
                description: v.description,
            };
            versions.insert(v.number, version);
        }
        let aliases = m
            .aliases
            .into_iter()
            .map(|a| {
                let alias = Alias {
                    description: a.description,
                    routing: a.routing,
                    created_ms: a.created_ms,
                    updated_ms: a.updated_ms,
                };
                (a.name, alias)
            })
            .collect();
        Ok(Machine {
            arn: self.machine_arn(&m.name),
            revision: revision(m.latest)?,
            name: m.name,
            kind,
            created_ms: m.created_ms,
            tags: m.tags,
            next_version: m
                .next_version
                .max(versions.keys().last().map_or(1, |n| n + 1)),
            versions,
            aliases,
        })
    }

    fn save(&self, store: &Store) -> Result<(), ApiError> {
        let Some(dir) = &self.settings.state_dir else {
            return Ok(());
        };
        let revision = |r: &Revision| SavedRevision {
            definition: r.definition.clone(),
            role_arn: r.role_arn.clone(),
            updated_ms: r.updated_ms,
            revision_id: r.revision_id.clone(),
            logging: r.logging.clone(),
            tracing: r.tracing.clone(),
        };
        let saved: Vec<SavedMachine> = store
            .machines
            .values()
            .map(|m| SavedMachine {
                name: m.name.clone(),
                kind: m.kind,
                created_ms: m.created_ms,
                tags: m.tags.clone(),
                latest: revision(&m.revision),
                versions: m
                    .versions
                    .iter()
                    .map(|(n, v)| SavedVersion {
                        number: *n,
                        revision: revision(&v.revision),
                        created_ms: v.created_ms,
                        description: v.description.clone(),
                    })
                    .collect(),
                next_version: m.next_version,
                aliases: m
                    .aliases
                    .iter()
                    .map(|(name, a)| SavedAlias {
                        name: name.clone(),
                        description: a.description.clone(),
                        routing: a.routing.clone(),
                        created_ms: a.created_ms,
                        updated_ms: a.updated_ms,
                    })
                    .collect(),
            })
            .collect();
        state_dir::save(dir, &saved).map_err(|e| {
            ApiError::new(
                "ServiceUnavailable",
                format!("cannot save the state directory: {e}"),
            )
        })
    }

    /// Changes the machine `name` with `change` and saves; when the change fails or cannot
    /// be saved, the machine is left as it was. `missing` is the error for no such machine.
    fn mutate<R>(
        &self,
        name: &str,
        missing: impl FnOnce() -> ApiError,
        change: impl FnOnce(&mut Machine) -> Result<R, ApiError>,
    ) -> Result<R, ApiError> {
        let mut store = self.lock();
        let before = store.machine(name).cloned().ok_or_else(missing)?;
        let m = store.machine_mut(name).expect("the machine just found");
        let result = change(m).and_then(|r| self.save(&store).map(|()| r));
        if result.is_err()
            && let Some(m) = store.machine_mut(name)
        {
            *m = before;
        }
        result
    }

    // ----- state machines -----

    fn create_state_machine(&self, body: &Value) -> Result<Value, ApiError> {
        let name = string(body, "name", 1, 80)?.ok_or_else(|| missing("name"))?;
        let definition =
            string(body, "definition", 1, 1_048_576)?.ok_or_else(|| missing("definition"))?;
        let role_arn = string(body, "roleArn", 1, 256)?.ok_or_else(|| missing("roleArn"))?;
        let kind = machine_type(body)?;
        let logging = logging_configuration(body.get("loggingConfiguration"))?;
        let tracing = tracing_configuration(body.get("tracingConfiguration"))?;
        let tags = tag_list(body.get("tags"))?;
        let publish = body.get("publish").and_then(Value::as_bool) == Some(true);
        let version_description = string(body, "versionDescription", 0, 256)?;
        check_name(name)?;
        check_role_arn(role_arn)?;
        let program = compile(definition, name, kind)?;
        let mut store = self.lock();
        if let Some(m) = store.machine(name) {
            // Idempotent when everything matches the existing machine.
            let r = &m.revision;
            if m.kind == kind
                && r.definition == definition
                && r.role_arn == role_arn
                && r.logging == logging
                && r.tracing == tracing
            {
                return Ok(obj([
                    ("stateMachineArn", Some(Value::from(m.arn.clone()))),
                    ("creationDate", Some(ts(m.created_ms))),
                ]));
            }
            return Err(ApiError::new(
                "StateMachineAlreadyExists",
                format!("State Machine Already Exists: '{}'", m.arn),
            ));
        }
        let now = now_ms();
        let seq = self.next_seq();
        let mut machine = Machine {
            arn: self.machine_arn(name),
            name: name.to_string(),
            kind,
            created_ms: now,
            tags,
            revision: Arc::new(Revision {
                definition: definition.to_string(),
                role_arn: role_arn.to_string(),
                updated_ms: now,
                revision_id: self.uuid(),
                logging,
                tracing,
                counts: self.shard_counts(&program),
                drawing: Default::default(),
                program,
            }),
            versions: BTreeMap::new(),
            next_version: 1,
            aliases: BTreeMap::new(),
        };
        let version_arn = publish.then(|| machine.publish(now, version_description));
        let arn = machine.arn.clone();
        store.by_name.insert(name.to_string(), seq);
        store.machines.insert(seq, machine);
        if let Err(e) = self.save(&store) {
            store.by_name.remove(name);
            store.machines.remove(&seq);
            return Err(e);
        }
        Ok(obj([
            ("stateMachineArn", Some(Value::from(arn))),
            ("creationDate", Some(ts(now))),
            ("stateMachineVersionArn", version_arn.map(Value::from)),
        ]))
    }

    /// The machine an ARN names (`#TestCase` and version/alias suffixes are not accepted
    /// here), or the action's error.
    fn machine_name_of<'a>(&self, arn: &'a str) -> Result<&'a str, ApiError> {
        match self.target_of(arn)? {
            (name, Qualifier::Latest) => Ok(name),
            _ => Err(invalid_arn(&format!(
                "Resource type not valid in this context: a version or alias ARN ({arn})"
            ))),
        }
    }

    /// The machine a state machine ARN names and its version or alias, if any.
    fn target_of<'a>(&self, arn: &'a str) -> Result<(&'a str, Qualifier<'a>), ApiError> {
        let rest = self.arn_rest(arn)?;
        let Some((kind, tail)) = rest.split_once(':') else {
            return Err(invalid_arn(&format!("Invalid ARN prefix: {arn}")));
        };
        if kind != "stateMachine" {
            return Err(invalid_arn(&format!(
                "Resource type not valid in this context: {kind}"
            )));
        }
        let (name, qualifier) = match tail.split_once(':') {
            None => (tail, Qualifier::Latest),
            Some((name, q)) if !q.is_empty() && q.bytes().all(|b| b.is_ascii_digit()) => {
                let n = q
                    .parse()
                    .map_err(|_| invalid_arn(&format!("Invalid version: {q}")))?;
                (name, Qualifier::Version(n))
            }
            Some((name, q)) if !q.is_empty() && !q.contains(':') => (name, Qualifier::Alias(q)),
            Some(_) => return Err(invalid_arn(&format!("Invalid ARN: {arn}"))),
        };
        if name.is_empty() {
            return Err(invalid_arn(&format!("Invalid ARN: {arn}")));
        }
        Ok((name, qualifier))
    }

    /// What follows `arn:aws:states:REGION:ACCOUNT:` in one of this service's ARNs.
    fn arn_rest<'a>(&self, arn: &'a str) -> Result<&'a str, ApiError> {
        let mut parts = arn.splitn(6, ':');
        let (Some("arn"), Some(_partition), Some(service), Some(region), Some(account), Some(rest)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(invalid_arn(&format!("Invalid ARN prefix: {arn}")));
        };
        if service != "states" {
            return Err(invalid_arn(&format!("Invalid ARN prefix: {arn}")));
        }
        if region != self.settings.region || account != self.settings.account {
            return Err(invalid_arn(&format!(
                "the ARN's region and account ({region}, {account}) are not this service's ({}, {})",
                self.settings.region, self.settings.account
            )));
        }
        Ok(rest)
    }

    fn describe_state_machine(&self, body: &Value) -> Result<Value, ApiError> {
        let arn = required_arn(body, "stateMachineArn")?;
        let (name, qualifier) = self.target_of(arn)?;
        let store = self.lock();
        let m = store
            .machine(name)
            .ok_or_else(|| machine_does_not_exist(arn))?;
        let (r, description, shown_arn) = match qualifier {
            Qualifier::Latest => (&m.revision, None, m.arn.clone()),
            Qualifier::Version(n) => {
                let v = m
                    .versions
                    .get(&n)
                    .ok_or_else(|| machine_does_not_exist(arn))?;
                (&v.revision, v.description.clone(), arn.to_string())
            }
            Qualifier::Alias(_) => {
                return Err(invalid_arn(&format!(
                    "Resource type not valid in this context: an alias ARN ({arn}); use DescribeStateMachineAlias"
                )));
            }
        };
        Ok(obj([
            ("stateMachineArn", Some(Value::from(shown_arn))),
            ("name", Some(Value::from(m.name.clone()))),
            ("status", Some(Value::string("ACTIVE"))),
            ("definition", Some(Value::from(r.definition.clone()))),
            ("roleArn", Some(Value::from(r.role_arn.clone()))),
            ("type", Some(Value::string(type_name(m.kind)))),
            ("creationDate", Some(ts(m.created_ms))),
            ("loggingConfiguration", Some(r.logging.clone())),
            ("tracingConfiguration", Some(r.tracing.clone())),
            ("revisionId", Some(Value::from(r.revision_id.as_str()))),
            ("description", description.map(Value::from)),
        ]))
    }

    fn list_state_machines(&self, body: &Value) -> Result<Value, ApiError> {
        let limit = page_size(body, 1000)?;
        let after = page_token(body, "sm")?;
        let store = self.lock();
        let mut items = Vec::new();
        let mut next = None;
        for (seq, m) in store.machines.range(after..) {
            if items.len() == limit {
                next = Some(*seq);
                break;
            }
            items.push(obj([
                ("stateMachineArn", Some(Value::from(m.arn.clone()))),
                ("name", Some(Value::from(m.name.clone()))),
                ("type", Some(Value::string(type_name(m.kind)))),
                ("creationDate", Some(ts(m.created_ms))),
            ]));
        }
        Ok(obj([
            ("stateMachines", Some(Value::array(items))),
            ("nextToken", next.map(|s| token("sm", s))),
        ]))
    }

    fn update_state_machine(&self, body: &Value) -> Result<Value, ApiError> {
        let arn = required_arn(body, "stateMachineArn")?;
        let definition = string(body, "definition", 1, 1_048_576)?;
        let role_arn = string(body, "roleArn", 1, 256)?;
        let logging = body.get("loggingConfiguration");
        let tracing = body.get("tracingConfiguration");
        if definition.is_none() && role_arn.is_none() && logging.is_none() && tracing.is_none() {
            return Err(ApiError::new(
                "MissingRequiredParameter",
                "Either the definition, the role ARN, the LoggingConfiguration, or the TracingConfiguration must be specified",
            ));
        }
        let publish = body.get("publish").and_then(Value::as_bool) == Some(true);
        let version_description = string(body, "versionDescription", 0, 256)?;
        if let Some(r) = role_arn {
            check_role_arn(r)?;
        }
        let logging = logging
            .map(|l| logging_configuration(Some(l)))
            .transpose()?;
        let tracing = tracing
            .map(|t| tracing_configuration(Some(t)))
            .transpose()?;
        let name = self.machine_name_of(arn)?;
        let kind = {
            let store = self.lock();
            store
                .machine(name)
                .ok_or_else(|| machine_does_not_exist(arn))?
                .kind
        };
        // Compiled outside the lock: a large definition must not hold up other requests.
        let program = definition.map(|d| compile(d, name, kind)).transpose()?;
        let revision_id = self.uuid();
        let now = now_ms();
        let version_arn = self.mutate(
            name,
            || machine_does_not_exist(arn),
            |m| {
                let old = Arc::clone(&m.revision);
                m.revision = Arc::new(Revision {
                    definition: definition.map_or_else(|| old.definition.clone(), str::to_string),
                    role_arn: role_arn.map_or_else(|| old.role_arn.clone(), str::to_string),
                    updated_ms: now,
                    revision_id: revision_id.clone(),
                    logging: logging.unwrap_or_else(|| old.logging.clone()),
                    tracing: tracing.unwrap_or_else(|| old.tracing.clone()),
                    // A new definition counts from zero; the same one keeps its counts.
                    counts: match &program {
                        Some(p) => self.shard_counts(p),
                        None => Arc::clone(&old.counts),
                    },
                    drawing: Default::default(),
                    program: program.unwrap_or_else(|| old.program.clone()),
                });
                Ok(publish.then(|| m.publish(now, version_description)))
            },
        )?;
        Ok(obj([
            ("updateDate", Some(ts(now))),
            ("revisionId", Some(Value::from(revision_id))),
            ("stateMachineVersionArn", version_arn.map(Value::from)),
        ]))
    }

    fn delete_state_machine(&self, body: &Value) -> Result<Value, ApiError> {
        let arn = required_arn(body, "stateMachineArn")?;
        let name = self.machine_name_of(arn)?;
        let mut store = self.lock();
        // Deleting a machine that is not there succeeds, as on AWS. Its running executions
        // finish with the plan they started with.
        if let Some(seq) = store.by_name.remove(name) {
            let removed = store.machines.remove(&seq);
            if let Err(e) = self.save(&store) {
                if let Some(m) = removed {
                    store.by_name.insert(name.to_string(), seq);
                    store.machines.insert(seq, m);
                }
                return Err(e);
            }
        }
        Ok(Value::empty_object())
    }

    // ----- tags -----

    fn tag_resource(&self, body: &Value) -> Result<Value, ApiError> {
        let arn = required_arn(body, "resourceArn")?;
        let tags = tag_list(Some(body.get("tags").ok_or_else(|| missing("tags"))?))?;
        let name = self.tagged_machine(arn)?;
        self.mutate(name, || resource_not_found(arn), |m| {
            for (k, v) in tags {
                match m.tags.iter_mut().find(|(key, _)| *key == k) {
                    Some(entry) => entry.1 = v,
                    None => m.tags.push((k, v)),
                }
            }
            if m.tags.len() > MAX_TAGS {
                return Err(ApiError::new(
                    "TooManyTags",
                    format!(
                        "Too many tags: the resource would have {}, at most {MAX_TAGS} are allowed",
                        m.tags.len()
                    ),
                ));
            }
            Ok(())
        })?;
        Ok(Value::empty_object())
    }

    fn untag_resource(&self, body: &Value) -> Result<Value, ApiError> {
        let arn = required_arn(body, "resourceArn")?;
        let keys: Vec<String> = match body.get("tagKeys") {
            Some(Value::Array(a)) => a
                .as_slice()
                .iter()
                .map(|k| {
                    k.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| validation("tagKeys", "Member must be a list of strings"))
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(validation("tagKeys", "Member must be a list of strings")),
            None => return Err(missing("tagKeys")),
        };
        let name = self.tagged_machine(arn)?;
        self.mutate(
            name,
            || resource_not_found(arn),
            |m| {
                m.tags.retain(|(k, _)| !keys.contains(k));
                Ok(())
            },
        )?;
        Ok(Value::empty_object())
    }

    fn list_tags(&self, body: &Value) -> Result<Value, ApiError> {
        let arn = required_arn(body, "resourceArn")?;
        let name = self.tagged_machine(arn)?;
        let store = self.lock();
        let m = store.machine(name).ok_or_else(|| resource_not_found(arn))?;
        Ok(obj([("tags", Some(tags_json(&m.tags)))]))
    }

    fn tagged_machine<'a>(&self, arn: &'a str) -> Result<&'a str, ApiError> {
        let rest = self.arn_rest(arn)?;
        match rest.split_once(':') {
            Some(("stateMachine", name)) if !name.contains(':') => Ok(name),
            Some(("activity", _)) => Err(resource_not_found(arn)),
            _ => Err(invalid_arn(
                "Resource type not valid in this context: only state machines have tags here",
            )),
        }
    }

    // ----- executions -----

    /// What a start request's ARN runs: the latest revision, a version, or an alias's
    /// version (picked by its weights), with the mock registry of a `#TestCase` suffix.
    fn startable(&self, arn: &str) -> Result<Target, ApiError> {
        let (arn, case) = match arn.split_once('#') {
            Some((a, c)) => (a, Some(c)),
            None => (arn, None),
        };
        let (name, qualifier) = self.target_of(arn)?;
        let mut store = self.lock();
        let m = store
            .machine(name)
            .ok_or_else(|| machine_does_not_exist(arn))?;
        let (revision, version_arn, alias_arn) = match qualifier {
            Qualifier::Latest => (Arc::clone(&m.revision), None, None),
            Qualifier::Version(n) => {
                let v = m
                    .versions
                    .get(&n)
                    .ok_or_else(|| machine_does_not_exist(arn))?;
                (Arc::clone(&v.revision), Some(arn.to_string()), None)
            }
            Qualifier::Alias(alias) => {
                let a = m
                    .aliases
                    .get(alias)
                    .ok_or_else(|| resource_not_found(arn))?;
                let n = pick_version(&a.routing, self.next_seq());
                let v = m.versions.get(&n).ok_or_else(|| resource_not_found(arn))?;
                let version_arn = format!("{}:{n}", m.arn);
                (
                    Arc::clone(&v.revision),
                    Some(version_arn),
                    Some(arn.to_string()),
                )
            }
        };
        let (machine_arn, kind) = (m.arn.clone(), m.kind);
        let registry = match case {
            None => Arc::clone(&self.registry),
            Some(case) => self.mocked_registry(&mut store, name, case)?,
        };
        Ok(Target {
            machine_arn,
            kind,
            revision,
            registry,
            version_arn,
            alias_arn,
        })
    }

    fn mocked_registry(
        &self,
        store: &mut Store,
        machine: &str,
        case: &str,
    ) -> Result<Arc<Registry>, ApiError> {
        let key = (machine.to_string(), case.to_string());
        if let Some(r) = store.mocked.get(&key) {
            return Ok(Arc::clone(r));
        }
        let Some((path, text)) = &self.settings.mock_config else {
            return Err(ApiError::new(
                "InvalidArn",
                format!(
                    "Invalid Arn: the ARN names the test case '{case}', but no mock configuration is loaded (set SFN_MOCK_CONFIG or pass --mock-config)"
                ),
            ));
        };
        let mocks = MockConfig::parse(text, machine, case).map_err(|e| {
            ApiError::new(
                "InvalidArn",
                format!(
                    "Invalid Arn: test case '{case}' of '{machine}' in {}: {e}",
                    path.display()
                ),
            )
        })?;
        let mut registry = (*self.registry).clone();
        registry.mock(Arc::new(mocks));
        let registry = Arc::new(registry);
        store.mocked.insert(key, Arc::clone(&registry));
        Ok(registry)
    }

    /// Checks an execution request's name and input and builds its record; the receiver
    /// gets the result.
    fn prepare(
        &self,
        body: &Value,
        express: bool,
        target: Target,
        cancel: Option<Arc<AtomicBool>>,
    ) -> Result<(Record, oneshot::Receiver<Processed>, String, String), ApiError> {
        let name = match string(body, "name", 1, 80)? {
            Some(n) => {
                check_name(n)?;
                n.to_string()
            }
            None => self.uuid(),
        };
        let input = match body.get("input") {
            None | Some(Value::Null) => "{}".to_string(),
            Some(Value::String(s)) => s.to_string(),
            Some(_) => return Err(validation("input", "Member must be a string")),
        };
        if input.len() as u64 > PAYLOAD_LIMIT {
            return Err(ApiError::new(
                "InvalidExecutionInput",
                format!(
                    "Invalid State Machine Execution Input: the input is {} bytes, over the {PAYLOAD_LIMIT} byte limit",
                    input.len()
                ),
            ));
        }
        let machine_name = &target.revision.program.plan.name;
        let arn = if express {
            format!(
                "arn:aws:states:{}:{}:express:{machine_name}:{name}:{}",
                self.settings.region,
                self.settings.account,
                self.uuid()
            )
        } else {
            format!(
                "arn:aws:states:{}:{}:execution:{machine_name}:{name}",
                self.settings.region, self.settings.account
            )
        };
        let (tx, rx) = oneshot::channel();
        let job = Job {
            plan: Arc::clone(&target.revision.program.plan),
            registry: target.registry,
            name: Str::from(name.as_str()),
            arns: Arc::new((
                Str::from(arn.as_str()),
                Str::from(target.machine_arn.as_str()),
            )),
            started_ms: 0,
            stopped_ms: 0,
            error: None,
            cause: None,
            reply: Some(tx),
            // STANDARD: the whole history, for GetExecutionHistory; EXPRESS: what its log
            // keeps, if it logs.
            history: match cancel {
                Some(_) => Recording::Full,
                None => Recording::Log(LogSettings::of_configuration(&target.revision.logging)),
            },
            cancel,
            stop_request: false,
            history_request: None,
            events: Vec::new(),
            counts: None,
        };
        let mut record = Record {
            source: Source {
                topic: Str::new("api"),
                partition: 0,
                offset: self.next_seq() as i64,
            },
            // By its ARN, so StopExecution's request reaches the same shard.
            key: Some(arn.as_bytes().to_vec()),
            payload: input.clone().into_bytes(),
            received: std::time::Instant::now(),
            window: None,
            job: Some(Box::new(job)),
        };
        // The counts of the shard the record goes to, which alone writes them.
        let shard = self.pool.route(&record);
        if let Some(job) = record.job.as_mut() {
            job.counts = target.revision.counts.get(shard).cloned();
        }
        Ok((record, rx, arn, input))
    }

    /// Takes a slot of the in-flight bound, or `ThrottlingException`.
    fn admit(&self) -> Result<InFlight, ApiError> {
        let n = self.in_flight.fetch_add(1, Ordering::AcqRel);
        if n >= self.settings.max_executions {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return Err(ApiError::new(
                "ThrottlingException",
                format!(
                    "Rate exceeded: {} executions are running, the most this server runs at once (--max-executions)",
                    self.settings.max_executions
                ),
            ));
        }
        Ok(InFlight(Arc::clone(&self.in_flight)))
    }

    /// The state machines as the workflow page shows them: each one's current definition
    /// drawn (once per revision) and its states' counts summed over the shards.
    pub fn page_machines(&self) -> Vec<crate::metrics::MachineView> {
        let revisions: Vec<(String, String, MachineType, Arc<Revision>)> = self
            .lock()
            .machines
            .values()
            .map(|m| {
                (
                    m.name.clone(),
                    m.arn.clone(),
                    m.kind,
                    Arc::clone(&m.revision),
                )
            })
            .collect();
        revisions
            .into_iter()
            .map(|(name, arn, kind, r)| {
                let drawing = r
                    .drawing
                    .get_or_init(|| {
                        crate::graph::page_drawing(r.definition.as_bytes(), &format!("m-{name}"))
                    })
                    .clone();
                let counts: Vec<&StateCounts> = r.counts.iter().map(|c| &**c).collect();
                crate::metrics::MachineView {
                    states: crate::metrics::summarize(&r.program.plan, &counts),
                    name,
                    arn,
                    kind: type_name(kind),
                    drawing,
                }
            })
            .collect()
    }

    /// Fresh per-state counts for `program`, one table per shard.
    fn shard_counts(&self, program: &Program) -> Arc<[Arc<StateCounts>]> {
        (0..self.pool.shards())
            .map(|_| Arc::new(StateCounts::new(program.plan.states.len())))
            .collect()
    }

    async fn submit(&self, record: Record) -> Result<(), ApiError> {
        self.pool
            .submit_async(record)
            .await
            .map_err(|_| ApiError::new("ServiceUnavailable", "the server is stopping; retry later"))
    }

    async fn start_sync_execution(&self, body: &Value) -> Result<Value, ApiError> {
        let arn = required_arn(body, "stateMachineArn")?;
        let trace = string(body, "traceHeader", 0, 256)?;
        let metadata_only = match string(body, "includedData", 0, 64)? {
            None | Some("ALL_DATA") => false,
            Some("METADATA_ONLY") => true,
            Some(other) => {
                return Err(validation(
                    "includedData",
                    &format!(
                        "Member must satisfy enum value set: [ALL_DATA, METADATA_ONLY] (got '{other}')"
                    ),
                ));
            }
        };
        let target = self.startable(arn)?;
        let logging = target.revision.logging.clone();
        if target.kind != MachineType::Express {
            return Err(ApiError::new(
                "StateMachineTypeNotSupported",
                "This operation is not supported by this type of state machine",
            ));
        }
        let machine_arn = target.machine_arn.clone();
        let (record, rx, exec_arn, input) = self.prepare(body, true, target, None)?;
        let _slot = self.admit()?;
        self.submit(record).await?;
        let p = rx.await.map_err(|_| stopped())?;
        self.log_execution(&p, &exec_arn, &logging);
        let job = p.job.as_deref().ok_or_else(stopped)?;
        if p.status == "REJECTED" && job.error.as_deref() == Some(INVALID_JSON) {
            let cause = job.cause.as_deref().unwrap_or("");
            let why = cause.strip_prefix(NOT_JSON_CAUSE).unwrap_or(cause);
            return Err(invalid_input(why));
        }
        let output = match &p.disposition {
            Disposition::Output(b) if p.status == "SUCCEEDED" => {
                Some(String::from_utf8_lossy(b).into_owned())
            }
            _ => None,
        };
        let status = if p.status == "REJECTED" {
            "FAILED"
        } else {
            p.status
        };
        let duration = (job.stopped_ms - job.started_ms).max(0) as u64;
        let data = |v: Option<String>| {
            if metadata_only {
                None
            } else {
                v.map(Value::from)
            }
        };
        let details = Value::object_from([("included", Value::Bool(!metadata_only))]);
        Ok(obj([
            ("executionArn", Some(Value::from(exec_arn))),
            ("stateMachineArn", Some(Value::from(machine_arn))),
            ("name", Some(Value::String(job.name.clone()))),
            ("startDate", Some(ts(job.started_ms))),
            ("stopDate", Some(ts(job.stopped_ms))),
            ("status", Some(Value::string(status))),
            ("error", job.error.clone().map(Value::String)),
            ("cause", job.cause.clone().map(Value::String)),
            ("input", data(Some(input))),
            ("inputDetails", Some(details.clone())),
            ("output", data(output)),
            ("outputDetails", Some(details)),
            ("traceHeader", trace.map(Value::string)),
            (
                "billingDetails",
                Some(Value::object_from([
                    ("billedMemoryUsedInMB", Value::int(64)),
                    (
                        "billedDurationInMilliseconds",
                        Value::int(duration.div_ceil(100).max(1) as i64 * 100),
                    ),
                ])),
            ),
        ]))
    }

    async fn start_execution(self: &Arc<Self>, body: &Value) -> Result<Value, ApiError> {
        let arn = required_arn(body, "stateMachineArn")?;
        string(body, "traceHeader", 0, 256)?;
        let target = self.startable(arn)?;
        let logging = target.revision.logging.clone();
        let express = target.kind == MachineType::Express;
        let (machine_arn, revision) = (target.machine_arn.clone(), Arc::clone(&target.revision));
        let (version_arn, alias_arn) = (target.version_arn.clone(), target.alias_arn.clone());
        let cancel = Arc::new(AtomicBool::new(false));
        let (record, rx, exec_arn, input) = self.prepare(
            body,
            express,
            target,
            (!express).then(|| Arc::clone(&cancel)),
        )?;
        // Answered before it runs, so the input is checked here (StartSyncExecution leaves
        // it to the shard's one parse).
        if let Err(e) = json::parse(input.as_bytes()) {
            return Err(invalid_input(&e.to_string()));
        }
        let slot = self.admit()?;
        let now = now_ms();
        if !express {
            let mut store = self.lock();
            if let Some(e) = store.execution(&exec_arn) {
                // The same name and input while it runs: the same answer; else a conflict.
                if e.status == "RUNNING" && e.input == input {
                    return Ok(obj([
                        ("executionArn", Some(Value::from(e.arn.clone()))),
                        ("startDate", Some(ts(e.start_ms))),
                    ]));
                }
                return Err(ApiError::new(
                    "ExecutionAlreadyExists",
                    format!("Execution Already Exists: '{exec_arn}'"),
                ));
            }
            let seq = self.next_seq();
            store.by_arn.insert(exec_arn.clone(), seq);
            store.executions.insert(
                seq,
                ExecutionEntry {
                    arn: exec_arn.clone(),
                    machine_arn: machine_arn.clone(),
                    name: record
                        .job
                        .as_ref()
                        .map_or_else(String::new, |j| j.name.to_string()),
                    status: "RUNNING",
                    start_ms: now,
                    stop_ms: None,
                    input,
                    output: None,
                    error: None,
                    cause: None,
                    revision,
                    version_arn,
                    alias_arn,
                    cancel,
                    events: Vec::new(),
                },
            );
            self.forget_old_executions(&mut store);
        }
        if let Err(e) = self.submit(record).await {
            let mut store = self.lock();
            if let Some(seq) = store.by_arn.remove(&exec_arn) {
                store.executions.remove(&seq);
            }
            return Err(e);
        }
        let service = Arc::downgrade(self);
        let key = exec_arn.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let result = rx.await;
            let Some(service) = service.upgrade() else {
                return;
            };
            if express {
                if let Ok(p) = &result {
                    service.log_execution(p, &key, &logging);
                }
                return;
            }
            service.record_end(&key, result.ok());
        });
        Ok(obj([
            ("executionArn", Some(Value::from(exec_arn))),
            ("startDate", Some(ts(now))),
        ]))
    }

    /// Writes an EXPRESS execution's events to the execution log, as the
    /// `loggingConfiguration` of the revision it ran asks: every event (ALL), the failures (ERROR), or only how a
    /// failed execution ended (FATAL); the input and output only with `includeExecutionData`.
    fn log_execution(&self, p: &Processed, arn: &str, logging: &Value) {
        let Some(job) = p.job.as_deref() else {
            return;
        };
        let mut out = Vec::new();
        if LogSettings::of_configuration(logging).format(&job.events, arn, &mut out) > 0 {
            // Written through before the answer, so a client that reads the log once its
            // call returns finds the execution there.
            self.log.write(out);
            self.log.flush();
        }
    }

    /// Writes a finished STANDARD execution's result into its entry (unless it was stopped).
    fn record_end(&self, arn: &str, p: Option<Processed>) {
        let mut store = self.lock();
        let Some(seq) = store.by_arn.get(arn).copied() else {
            return;
        };
        let Some(e) = store.executions.get_mut(&seq) else {
            return;
        };
        if e.status == "ABORTED" {
            // Stopped: the events up to the stop, and the stop itself.
            if let Some(job) = p.and_then(|mut p| p.job.take()) {
                let mut events = job.events;
                let last = events.last().map_or(0, |l| l.id);
                events.push(HistoryEvent {
                    id: last + 1,
                    previous_id: last,
                    timestamp_ms: e.stop_ms.unwrap_or(job.stopped_ms),
                    kind: "ExecutionAborted",
                    details: obj([
                        ("error", e.error.clone().map(Value::from)),
                        ("cause", e.cause.clone().map(Value::from)),
                    ]),
                });
                e.events = events;
            }
            return;
        }
        if e.status != "RUNNING" {
            return;
        }
        let Some(mut p) = p else {
            e.status = "FAILED";
            e.stop_ms = Some(now_ms());
            e.error = Some("States.Runtime".into());
            e.cause = Some("the server stopped before the execution ended".into());
            return;
        };
        if let Some(j) = p.job.as_mut() {
            e.events = std::mem::take(&mut j.events);
        }
        let job = p.job.as_deref();
        e.status = if p.status == "REJECTED" {
            "FAILED"
        } else {
            p.status
        };
        e.stop_ms = Some(job.map_or_else(now_ms, |j| j.stopped_ms));
        if let Some(j) = job {
            e.start_ms = j.started_ms;
            e.error = j.error.as_ref().map(ToString::to_string);
            e.cause = j.cause.as_ref().map(ToString::to_string);
        }
        if let Disposition::Output(b) = &p.disposition
            && p.status == "SUCCEEDED"
        {
            e.output = Some(String::from_utf8_lossy(b).into_owned());
        }
    }

    fn forget_old_executions(&self, store: &mut Store) {
        while store.executions.len() > self.settings.retain_executions {
            let oldest_done = store
                .executions
                .iter()
                .find(|(_, e)| e.status != "RUNNING")
                .map(|(s, _)| *s);
            let Some(seq) = oldest_done else {
                return;
            };
            if let Some(e) = store.executions.remove(&seq) {
                store.by_arn.remove(&e.arn);
            }
        }
    }

    fn execution_entry<'a>(
        &self,
        store: &'a Store,
        arn: &str,
    ) -> Result<&'a ExecutionEntry, ApiError> {
        let rest = self.arn_rest(arn)?;
        match rest.split_once(':') {
            Some(("execution", _)) => {}
            Some(("express", _)) => {
                return Err(invalid_arn(
                    "Resource type not valid in this context: express",
                ));
            }
            Some((kind, _)) => {
                return Err(invalid_arn(&format!(
                    "Resource type not valid in this context: {kind}"
                )));
            }
            None => return Err(invalid_arn(&format!("Invalid ARN prefix: {arn}"))),
        }
        store.execution(arn).ok_or_else(|| {
            ApiError::new(
                "ExecutionDoesNotExist",
                format!("Execution Does Not Exist: '{arn}'"),
            )
        })
    }

    fn describe_execution(&self, body: &Value) -> Result<Value, ApiError> {
        let arn = required_arn(body, "executionArn")?;
        let store = self.lock();
        let e = self.execution_entry(&store, arn)?;
        let details = Value::object_from([("included", Value::Bool(true))]);
        Ok(obj([
            ("executionArn", Some(Value::from(e.arn.clone()))),
            ("stateMachineArn", Some(Value::from(e.machine_arn.clone()))),
            ("name", Some(Value::from(e.name.clone()))),
            ("status", Some(Value::string(e.status))),
            ("startDate", Some(ts(e.start_ms))),
            ("stopDate", e.stop_ms.map(ts)),
            ("input", Some(Value::from(e.input.clone()))),
            ("inputDetails", Some(details.clone())),
            ("output", e.output.clone().map(Value::from)),
            ("outputDetails", e.output.as_ref().map(|_| details)),
            ("error", e.error.clone().map(Value::from)),
            ("cause", e.cause.clone().map(Value::from)),
            ("redriveCount", Some(Value::int(0))),
            ("redriveStatus", Some(Value::string("NOT_REDRIVABLE"))),
            (
                "stateMachineVersionArn",
                e.version_arn.clone().map(Value::from),
            ),
            ("stateMachineAliasArn", e.alias_arn.clone().map(Value::from)),
        ]))
    }

    async fn execution_history(&self, body: &Value) -> Result<Value, ApiError> {
        let arn = required_arn(body, "executionArn")?;
        let limit = page_size(body, 1000)?;
        let reverse = body.get("reverseOrder").and_then(Value::as_bool) == Some(true);
        let with_data = body.get("includeExecutionData").and_then(Value::as_bool) != Some(false);
        let skip = page_token(body, "ev")? as usize;
        // A running execution's events are on its shard: asked for there (its ARN routes the
        // request as it routed the execution), without holding the store.
        let asked = {
            let store = self.lock();
            let e = self.execution_entry(&store, arn)?;
            (e.events.is_empty() && e.status == "RUNNING").then(|| {
                let (tx, rx) = oneshot::channel();
                (self.control_record(e, false, Some(tx)), rx)
            })
        };
        let mut so_far = None;
        if let Some((record, rx)) = asked {
            self.submit(record).await?;
            // No answer: it ended meanwhile, and its entry has the events.
            so_far = tokio::time::timeout(std::time::Duration::from_secs(5), rx)
                .await
                .ok()
                .and_then(Result::ok)
                .filter(|events: &Vec<HistoryEvent>| !events.is_empty());
        }
        let store = self.lock();
        let e = self.execution_entry(&store, arn)?;
        let started;
        let events: &[HistoryEvent] = if let Some(events) = &so_far
            && e.events.is_empty()
        {
            events
        } else if e.events.is_empty() {
            // Its events come when it ends; what is known is its start.
            started = [HistoryEvent {
                id: 1,
                previous_id: 0,
                timestamp_ms: e.start_ms,
                kind: "ExecutionStarted",
                details: obj([
                    ("input", Some(Value::from(e.input.clone()))),
                    (
                        "inputDetails",
                        Some(Value::object_from([("truncated", Value::Bool(false))])),
                    ),
                    ("roleArn", Some(Value::from(e.revision.role_arn.clone()))),
                ]),
            }];
            &started
        } else {
            &e.events
        };
        let ordered: Box<dyn Iterator<Item = &HistoryEvent>> = if reverse {
            Box::new(events.iter().rev())
        } else {
            Box::new(events.iter())
        };
        let items: Vec<Value> = ordered
            .skip(skip)
            .take(limit)
            .map(|ev| {
                if with_data {
                    return ev.to_json();
                }
                let mut ev = ev.clone();
                strip_execution_data(&mut ev.details);
                ev.to_json()
            })
            .collect();
        let next = (skip + items.len() < events.len()).then(|| token("ev", (skip + limit) as u64));
        Ok(obj([
            ("events", Some(Value::array(items))),
            ("nextToken", next),
        ]))
    }

    fn describe_machine_for_execution(&self, body: &Value) -> Result<Value, ApiError> {
        let arn = required_arn(body, "executionArn")?;
        let store = self.lock();
        let e = self.execution_entry(&store, arn)?;
        let r = &e.revision;
        Ok(obj([
            ("stateMachineArn", Some(Value::from(e.machine_arn.clone()))),
            ("name", Some(Value::String(r.program.plan.name.clone()))),
            ("definition", Some(Value::from(r.definition.clone()))),
            ("roleArn", Some(Value::from(r.role_arn.clone()))),
            ("updateDate", Some(ts(r.updated_ms))),
            ("loggingConfiguration", Some(r.logging.clone())),
            ("tracingConfiguration", Some(r.tracing.clone())),
            ("revisionId", Some(Value::from(r.revision_id.as_str()))),
        ]))
    }

    fn list_executions(&self, body: &Value) -> Result<Value, ApiError> {
        let arn = required_arn(body, "stateMachineArn")?;
        let filter = match string(body, "statusFilter", 0, 32)? {
            None => None,
            Some(
                s @ ("RUNNING" | "SUCCEEDED" | "FAILED" | "TIMED_OUT" | "ABORTED"
                | "PENDING_REDRIVE"),
            ) => Some(s),
            Some(other) => {
                return Err(validation(
                    "statusFilter",
                    &format!(
                        "Member must satisfy enum value set: [RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED, PENDING_REDRIVE] (got '{other}')"
                    ),
                ));
            }
        };
        let limit = page_size(body, 1000)?;
        let before = match body.get("nextToken") {
            None | Some(Value::Null) => u64::MAX,
            Some(_) => page_token(body, "ex")?,
        };
        let (name, qualifier) = self.target_of(arn)?;
        let store = self.lock();
        let m = store
            .machine(name)
            .ok_or_else(|| machine_does_not_exist(arn))?;
        if m.kind == MachineType::Express {
            return Err(ApiError::new(
                "StateMachineTypeNotSupported",
                "This operation is not supported by this type of state machine",
            ));
        }
        let mut items = Vec::new();
        let mut next = None;
        // Newest first, as the service lists them.
        for (seq, e) in store.executions.range(..=before).rev() {
            // A version or alias ARN lists the executions started through it.
            let through = match qualifier {
                Qualifier::Latest => true,
                Qualifier::Version(_) => e.version_arn.as_deref() == Some(arn),
                Qualifier::Alias(_) => e.alias_arn.as_deref() == Some(arn),
            };
            if e.machine_arn != m.arn || !through || filter.is_some_and(|f| f != e.status) {
                continue;
            }
            if items.len() == limit {
                next = Some(*seq);
                break;
            }
            items.push(obj([
                ("executionArn", Some(Value::from(e.arn.clone()))),
                ("stateMachineArn", Some(Value::from(e.machine_arn.clone()))),
                ("name", Some(Value::from(e.name.clone()))),
                ("status", Some(Value::string(e.status))),
                ("startDate", Some(ts(e.start_ms))),
                ("stopDate", e.stop_ms.map(ts)),
                ("redriveCount", Some(Value::int(0))),
                (
                    "stateMachineVersionArn",
                    e.version_arn.clone().map(Value::from),
                ),
                ("stateMachineAliasArn", e.alias_arn.clone().map(Value::from)),
            ]));
        }
        Ok(obj([
            ("executions", Some(Value::array(items))),
            ("nextToken", next.map(|s| token("ex", s))),
        ]))
    }

    async fn stop_execution(&self, body: &Value) -> Result<Value, ApiError> {
        let arn = required_arn(body, "executionArn")?;
        let error = string(body, "error", 0, 256)?;
        let cause = string(body, "cause", 0, 32_768)?;
        let now = now_ms();
        let (stop_date, poke) = {
            let mut store = self.lock();
            self.execution_entry(&store, arn)?;
            let seq = store.by_arn[arn];
            let e = store
                .executions
                .get_mut(&seq)
                .expect("an entry found by its ARN");
            let mut poke = None;
            if e.status == "RUNNING" {
                // Its result, if it comes before the shard ends it, is dropped (`record_end`).
                e.status = "ABORTED";
                e.stop_ms = Some(now);
                e.error = error.map(str::to_string);
                e.cause = cause.map(str::to_string);
                e.cancel.store(true, Ordering::Release);
                poke = Some(self.control_record(e, true, None));
            }
            (e.stop_ms.unwrap_or(now), poke)
        };
        if let Some(poke) = poke {
            self.submit(poke).await?;
        }
        Ok(obj([("stopDate", Some(ts(stop_date)))]))
    }

    /// The record that asks the shard of `e` (its key routes it there) to end it (`stop`), or
    /// for its history so far (`history_request`).
    fn control_record(
        &self,
        e: &ExecutionEntry,
        stop: bool,
        history_request: Option<oneshot::Sender<Vec<HistoryEvent>>>,
    ) -> Record {
        let job = Job {
            plan: Arc::clone(&e.revision.program.plan),
            registry: Arc::clone(&self.registry),
            name: Str::from(e.name.as_str()),
            arns: Arc::new((Str::from(e.arn.as_str()), Str::from(e.machine_arn.as_str()))),
            started_ms: 0,
            stopped_ms: 0,
            error: None,
            cause: None,
            reply: None,
            cancel: None,
            stop_request: stop,
            history_request,
            history: Recording::Off,
            events: Vec::new(),
            counts: None,
        };
        Record {
            source: Source {
                topic: Str::new("api"),
                partition: 0,
                offset: self.next_seq() as i64,
            },
            key: Some(e.arn.as_bytes().to_vec()),
            payload: Vec::new(),
            received: std::time::Instant::now(),
            window: None,
            job: Some(Box::new(job)),
        }
    }
}

/// A slot of the in-flight bound, given back when dropped.
struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The actions of the service's model that stepstream does not answer yet.
const KNOWN_ACTIONS: &[&str] = &[
    "CreateActivity",
    "DeleteActivity",
    "DescribeActivity",
    "DescribeMapRun",
    "GetActivityTask",
    "ListActivities",
    "ListMapRuns",
    "RedriveExecution",
    "SendTaskFailure",
    "SendTaskHeartbeat",
    "SendTaskSuccess",
    "UpdateMapRun",
];

const MAX_TAGS: usize = 50;

fn stopped() -> ApiError {
    ApiError::new(
        "ServiceUnavailable",
        "the server stopped before the execution ended; retry later",
    )
}

fn compile(definition: &str, name: &str, kind: MachineType) -> Result<Program, ApiError> {
    match asl::load(definition.as_bytes(), kind) {
        Ok(validated) => Ok(Program {
            plan: Arc::new(plan::compile(&validated, name)),
            registry: Arc::new(Registry::new()),
            counts: None,
        }),
        Err(diagnostics) => {
            let errors: Vec<String> = diagnostics
                .iter()
                .filter(|d| d.severity == asl::Severity::Error)
                .map(ToString::to_string)
                .collect();
            Err(ApiError::new(
                "InvalidDefinition",
                format!("Invalid State Machine Definition: '{}'", errors.join(", ")),
            ))
        }
    }
}

fn validate_definition(body: &Value) -> Result<Value, ApiError> {
    let definition =
        string(body, "definition", 1, 1_048_576)?.ok_or_else(|| missing("definition"))?;
    let kind = machine_type(body)?;
    let min = match string(body, "severity", 0, 16)? {
        None | Some("ERROR") => asl::Severity::Error,
        Some("WARNING") => asl::Severity::Warning,
        Some(other) => {
            return Err(validation(
                "severity",
                &format!("Member must satisfy enum value set: [ERROR, WARNING] (got '{other}')"),
            ));
        }
    };
    let max = match body.get("maxResults").and_then(Value::as_i64) {
        None | Some(0) => 100,
        Some(n) if (1..=100).contains(&n) => n as usize,
        Some(_) => {
            return Err(validation(
                "maxResults",
                "Member must have value less than or equal to 100",
            ));
        }
    };
    let diagnostics = match asl::load(definition.as_bytes(), kind) {
        Ok(v) => v.warnings().to_vec(),
        Err(d) => d,
    };
    let failed = diagnostics
        .iter()
        .any(|d| d.severity == asl::Severity::Error);
    let shown: Vec<Value> = diagnostics
        .iter()
        .filter(|d| min == asl::Severity::Warning || d.severity == asl::Severity::Error)
        .map(asl::Diagnostic::to_json)
        .collect();
    let truncated = shown.len() > max;
    Ok(obj([
        (
            "result",
            Some(Value::string(if failed { "FAIL" } else { "OK" })),
        ),
        (
            "diagnostics",
            Some(Value::array(shown.into_iter().take(max).collect())),
        ),
        ("truncated", Some(Value::Bool(truncated))),
    ]))
}

// ----- request fields -----

/// `1 validation error detected: Value ... at 'field' failed to satisfy constraint: ...`,
/// the service's validation text.
fn validation(field: &str, constraint: &str) -> ApiError {
    ApiError::new(
        "ValidationException",
        format!(
            "1 validation error detected: Value at '{field}' failed to satisfy constraint: {constraint}"
        ),
    )
}

fn missing(field: &str) -> ApiError {
    ApiError::new(
        "ValidationException",
        format!(
            "1 validation error detected: Value null at '{field}' failed to satisfy constraint: Member must not be null"
        ),
    )
}

/// An optional string field with its length bounds.
fn string<'a>(
    body: &'a Value,
    field: &str,
    min: usize,
    max: usize,
) -> Result<Option<&'a str>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => {
            let n = s.as_str().chars().count();
            if n < min {
                Err(validation(
                    field,
                    &format!("Member must have length greater than or equal to {min}"),
                ))
            } else if s.len() > max && n > max {
                Err(validation(
                    field,
                    &format!("Member must have length less than or equal to {max}"),
                ))
            } else {
                Ok(Some(s.as_str()))
            }
        }
        Some(_) => Err(validation(field, "Member must be a string")),
    }
}

fn required_arn<'a>(body: &'a Value, field: &str) -> Result<&'a str, ApiError> {
    string(body, field, 1, 256)?.ok_or_else(|| missing(field))
}

fn machine_type(body: &Value) -> Result<MachineType, ApiError> {
    match string(body, "type", 0, 16)? {
        None | Some("STANDARD") => Ok(MachineType::Standard),
        Some("EXPRESS") => Ok(MachineType::Express),
        Some(other) => Err(validation(
            "type",
            &format!("Member must satisfy enum value set: [STANDARD, EXPRESS] (got '{other}')"),
        )),
    }
}

fn type_name(kind: MachineType) -> &'static str {
    match kind {
        MachineType::Standard => "STANDARD",
        MachineType::Express => "EXPRESS",
    }
}

fn logging_configuration(v: Option<&Value>) -> Result<Value, ApiError> {
    let Some(v) = v else {
        return Ok(Value::object_from([
            ("level", Value::string("OFF")),
            ("includeExecutionData", Value::Bool(false)),
        ]));
    };
    let level = v.get("level").and_then(Value::as_str).unwrap_or("OFF");
    if LogLevel::parse(level).is_none() {
        return Err(ApiError::new(
            "InvalidLoggingConfiguration",
            format!(
                "Invalid Logging Configuration: level '{level}' is not one of ALL, ERROR, FATAL, OFF"
            ),
        ));
    }
    let include = v
        .get("includeExecutionData")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut pairs = vec![
        ("level", Value::string(level)),
        ("includeExecutionData", Value::Bool(include)),
    ];
    if let Some(d) = v.get("destinations") {
        pairs.push(("destinations", d.clone()));
    }
    Ok(Value::object_from(pairs))
}

fn tracing_configuration(v: Option<&Value>) -> Result<Value, ApiError> {
    let enabled = match v.map(|t| t.get("enabled")) {
        None | Some(None) => false,
        Some(Some(Value::Bool(b))) => *b,
        Some(Some(_)) => {
            return Err(ApiError::new(
                "InvalidTracingConfiguration",
                "Invalid Tracing Configuration: 'enabled' must be a boolean",
            ));
        }
    };
    Ok(Value::object_from([("enabled", Value::Bool(enabled))]))
}

fn tag_list(v: Option<&Value>) -> Result<Vec<(String, String)>, ApiError> {
    let Some(v) = v else {
        return Ok(Vec::new());
    };
    let Some(items) = v.as_array() else {
        return Err(validation("tags", "Member must be a list of tags"));
    };
    let mut tags: Vec<(String, String)> = Vec::new();
    for t in items.as_slice() {
        let key = t.get("key").and_then(Value::as_str).unwrap_or("");
        let value = t.get("value").and_then(Value::as_str).unwrap_or("");
        if key.is_empty() || key.chars().count() > 128 {
            return Err(validation(
                "tags.member.key",
                "Member must have length between 1 and 128",
            ));
        }
        if value.chars().count() > 256 {
            return Err(validation(
                "tags.member.value",
                "Member must have length less than or equal to 256",
            ));
        }
        match tags.iter_mut().find(|(k, _)| k == key) {
            Some(e) => e.1 = value.to_string(),
            None => tags.push((key.to_string(), value.to_string())),
        }
    }
    if tags.len() > MAX_TAGS {
        return Err(ApiError::new(
            "TooManyTags",
            format!(
                "Too many tags: {} given, at most {MAX_TAGS} are allowed",
                tags.len()
            ),
        ));
    }
    Ok(tags)
}

fn tags_json(tags: &[(String, String)]) -> Value {
    Value::array(
        tags.iter()
            .map(|(k, v)| {
                Value::object_from([
                    ("key", Value::from(k.as_str())),
                    ("value", Value::from(v.as_str())),
                ])
            })
            .collect(),
    )
}

/// Names of state machines and executions: no whitespace, brackets, wildcards, the
/// special characters AWS lists, or control characters.
fn check_name(name: &str) -> Result<(), ApiError> {
    let bad =
        |c: char| c.is_whitespace() || c.is_control() || "<>{}[]?*\"#%\\^|~`$&,;:/".contains(c);
    if name.chars().any(bad) {
        return Err(ApiError::new(
            "InvalidName",
            format!("Invalid Name: '{name}'"),
        ));
    }
    Ok(())
}

fn check_role_arn(arn: &str) -> Result<(), ApiError> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    if parts.len() != 6 || parts[0] != "arn" || parts[2] != "iam" || !parts[5].starts_with("role/")
    {
        return Err(ApiError::new(
            "InvalidArn",
            format!("Invalid Arn: 'Invalid role ARN: {arn}'"),
        ));
    }
    Ok(())
}

fn invalid_arn(why: &str) -> ApiError {
    ApiError::new("InvalidArn", format!("Invalid Arn: '{why}'"))
}

fn machine_does_not_exist(arn: &str) -> ApiError {
    ApiError::new(
        "StateMachineDoesNotExist",
        format!("State Machine Does Not Exist: '{arn}'"),
    )
}

fn resource_not_found(arn: &str) -> ApiError {
    ApiError::new("ResourceNotFound", format!("Resource not found: '{arn}'"))
}

fn page_size(body: &Value, max: i64) -> Result<usize, ApiError> {
    match body.get("maxResults") {
        None | Some(Value::Null) => Ok(100),
        Some(v) => match v.as_i64() {
            Some(0) => Ok(100),
            Some(n) if (1..=max).contains(&n) => Ok(n as usize),
            _ => Err(validation(
                "maxResults",
                &format!("Member must have value between 0 and {max}"),
            )),
        },
    }
}

/// A page token: the kind of list and where the next page starts, base64 so clients treat
/// it as opaque.
fn token(kind: &str, seq: u64) -> Value {
    use base64::Engine as _;
    Value::from(base64::engine::general_purpose::STANDARD.encode(format!("{kind}:{seq}")))
}

fn page_token(body: &Value, kind: &str) -> Result<u64, ApiError> {
    use base64::Engine as _;
    let Some(t) = body.get("nextToken") else {
        return Ok(0);
    };
    let text = match t {
        Value::Null => return Ok(0),
        Value::String(s) => s.as_str(),
        _ => return Err(validation("nextToken", "Member must be a string")),
    };
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| {
            s.strip_prefix(kind)
                .and_then(|r| r.strip_prefix(':'))
                .and_then(|n| n.parse().ok())
        })
        .ok_or_else(|| ApiError::new("InvalidToken", format!("Invalid Token: '{text}'")))
}

/// Epoch seconds, as the service's timestamps are.
fn ts(ms: i64) -> Value {
    Value::float(ms as f64 / 1000.0)
}

/// An object of the fields that are present.
fn obj<const N: usize>(pairs: [(&'static str, Option<Value>); N]) -> Value {
    Value::object_from(pairs.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))))
}

/// The version an alias sends execution `n` to: a draw by the weights (they add up to 100).
fn pick_version(routing: &[(u32, u32)], n: u64) -> u32 {
    let draw = (Rng::new(n ^ now_ms() as u64).next_u64() % 100) as u32;
    let mut acc = 0;
    for &(version, weight) in routing {
        acc += weight;
        if draw < acc {
            return version;
        }
    }
    routing.last().map_or(0, |r| r.0)
}

fn invalid_input(why: &str) -> ApiError {
    ApiError::new(
        "InvalidExecutionInput",
        format!("Invalid State Machine Execution Input: '{why}'"),
    )
}
