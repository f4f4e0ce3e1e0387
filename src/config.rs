//! The pipeline configuration (TOML): read field by field so that every problem is reported at
//! once with the key it concerns (`pipelines[1].input_topic: ...`), then checked as a whole
//! (topics do not collide). See `configs/stepstream.toml` for every key.
//!
//! This module owns the configuration as plain data and the one copy of its defaults
//! (`Runtime::default()`, `Http::default()`, the `DEFAULT_*` constants), which the command
//! line and the bench use too. It reads no file but the configuration itself and builds no
//! live object: files a key names (definitions, TLS certificates) are read, and clients
//! built, by the modules that use them (`tasks::Bindings::build` for `[[resources]]`). It
//! depends on no runtime module, so anything may depend on it.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::exec::logging::{LogDestination, LogLevel, LogSettings};

/// A validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub kafka: Kafka,
    pub runtime: Runtime,
    pub http: Http,
    /// The Step Functions API served next to the pipelines (`[api]`), if asked for.
    pub api: Option<Api>,
    pub pipelines: Vec<Pipeline>,
    /// What task resources are bound to (`[[resources]]`).
    pub resources: Vec<ResourceBinding>,
}

/// One `[[resources]]` entry: a resource ARN (or pattern) and what performs it.
#[derive(Clone, Debug)]
pub struct ResourceBinding {
    /// An ARN, or a pattern where `*` matches any run of characters.
    pub resource: String,
    pub kind: ResourceKind,
    /// For `lambda`: the Lambda Invoke API endpoint, `http://host:port` or `https://...`.
    pub endpoint: Option<String>,
    pub timeout_ms: u64,
    /// Hosts requests may reach (`name`, `name:port`, `*`); empty = loopback only.
    pub allowed_hosts: Vec<String>,
    /// Headers added to every request; `${NAME}` in a value is the environment variable NAME.
    pub headers: Vec<(String, String)>,
    /// For `kafka`: the bootstrap servers (default: `[kafka] brokers`).
    pub brokers: Option<String>,
    /// For `kafka`: the topic mapped integrations produce to (and the only one
    /// `kafka:produce` may name, when set).
    pub topic: Option<String>,
    /// For `http`: the `Authentication.ConnectionArn`s (an ARN or a pattern with `*`) this
    /// entry serves; `None`: every task of its resource.
    pub connection: Option<String>,
    /// For `lambda` and `http`: what https connections trust beyond the system's CA
    /// certificates (`ca_file`) and present (`client_cert_file`, `client_key_file`); `None` =
    /// the system's CA certificates only.
    pub tls: Option<TlsFiles>,
}

/// The TLS files of a `lambda` or `http` entry, as written. They are read (and a bad one
/// reported under its key) when the entry's resource is built, not while the configuration
/// is parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// `ca_file`: CA certificates (PEM) trusted besides the system's.
    pub ca_file: Option<PathBuf>,
    /// `client_cert_file` and `client_key_file`: the certificate chain and its private key
    /// (PEM) presented to servers that ask for one; always both or neither.
    pub client: Option<(PathBuf, PathBuf)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResourceKind {
    Lambda,
    Http,
    Kafka,
}

/// Reads only the `[[resources]]` of a configuration file (for `run` and `bench`, which need no
/// Kafka settings).
pub fn load_resources(path: &Path) -> Result<Vec<ResourceBinding>, ConfigError> {
    let err = |problems: Vec<String>| ConfigError {
        file: path.to_path_buf(),
        problems,
    };
    let text =
        std::fs::read_to_string(path).map_err(|e| err(vec![format!("cannot read it: {e}")]))?;
    parse_resources(&text).map_err(err)
}

/// Parses only the `[[resources]]` of configuration text; `${NAME}` in a header is the
/// environment variable NAME.
pub fn parse_resources(text: &str) -> Result<Vec<ResourceBinding>, Vec<String>> {
    let root: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| vec![format!("not valid TOML: {}", e.to_string().trim())])?;
    let mut r = Reader {
        problems: Vec::new(),
    };
    let out = r.resources(&root, |name| std::env::var(name).ok());
    if r.problems.is_empty() {
        Ok(out)
    } else {
        Err(r.problems)
    }
}

#[derive(Clone, Debug)]
pub struct Kafka {
    pub brokers: String,
    pub group_id: String,
    /// Passed to librdkafka unchanged (consumer and producer).
    pub options: BTreeMap<String, String>,
    /// Passed to the producer only.
    pub producer_options: BTreeMap<String, String>,
}

/// Map iterations a shard's executions run at once by default (`runtime.max_map_iterations`,
/// `--max-map-iterations`).
pub const DEFAULT_MAP_ITERATIONS: usize = 4096;

/// Executions in flight per shard by default (`runtime.max_in_flight`, `--max-in-flight`).
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1024;

/// The consumer group by default (`kafka.group_id`, `--group-id`).
pub const DEFAULT_GROUP_ID: &str = "stepstream";

/// The operations listener's address by default (`http.listen`).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9464";

/// A `[[resources]]` entry's per-request time limit by default (`timeout_seconds`).
pub const DEFAULT_RESOURCE_TIMEOUT_SECONDS: u64 = 60;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Runtime {
    /// Shard threads per pipeline.
    pub shards: usize,
    /// Executions in flight per shard.
    pub max_in_flight: usize,
    /// Records consumed but not yet delivered, over all partitions, before the partition
    /// readers stop taking more.
    pub max_pending: usize,
    /// How long revoked partitions and shutdown may take to finish their work.
    pub drain_timeout_ms: u64,
    /// Map iterations a shard's executions run at once, beyond the first of each Map state.
    pub max_map_iterations: usize,
}

/// What an empty (or missing) `[runtime]` section means.
impl Default for Runtime {
    fn default() -> Runtime {
        Runtime {
            shards: std::thread::available_parallelism().map_or(1, |n| n.get()),
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            max_pending: 10_000,
            drain_timeout_ms: 10_000,
            max_map_iterations: DEFAULT_MAP_ITERATIONS,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Http {
    /// `host:port` of the operations listener (`/`, `/metrics`, `/ping`, `/ready`); `None`
    /// = off.
    pub listen: Option<String>,
    /// AWS shared credentials file whose keys a request must present (HTTP Basic: access
    /// key id and secret access key); required for a listener beyond loopback.
    pub credentials: Option<PathBuf>,
}

/// What an empty (or missing) `[http]` section means: the listener on loopback.
impl Default for Http {
    fn default() -> Http {
        Http {
            listen: Some(DEFAULT_LISTEN.to_string()),
            credentials: None,
        }
    }
}

/// `[api]`: the flags of `stepstream serve`, as configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Api {
    pub listen: String,
    pub state_dir: Option<PathBuf>,
    /// AWS shared credentials file whose keys requests must be signed with; required for a
    /// listener beyond loopback.
    pub credentials: Option<PathBuf>,
    pub mock_config: Option<PathBuf>,
    pub max_executions: usize,
    /// Where EXPRESS executions with a loggingConfiguration write their events.
    pub execution_log: Option<PathBuf>,
}

/// Executions the API runs at once before it answers ThrottlingException.
pub const DEFAULT_API_MAX_EXECUTIONS: usize = 10_000;

#[derive(Clone, Debug)]
pub struct Pipeline {
    pub name: String,
    pub definition: PathBuf,
    pub input_topic: String,
    pub output_topic: String,
    pub dead_letter_topic: String,
    pub mock_file: Option<PathBuf>,
    /// Whether output and dead-letter records carry the `stepstream-*` headers.
    pub headers: bool,
    /// `ordering = "key"`: a record's execution starts only after the previous record with
    /// its key has finished (`"none"`, the default: records of a key start in order but may
    /// finish in any order).
    pub ordered_keys: bool,
    /// `[pipelines.logging]`: the events of its executions written as CloudWatch Logs
    /// receives them from Step Functions (as a state machine's `loggingConfiguration`).
    pub logging: Option<PipelineLogging>,
}

/// A pipeline's `logging` table: `level` (ALL, ERROR, FATAL, OFF), `include_execution_data`
/// (default false), `destination` (a file appended to; standard error when absent).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PipelineLogging {
    pub settings: LogSettings,
    pub destination: LogDestination,
}

/// Replaces each `${NAME}` with the environment variable NAME; the error is the missing name.
fn expand_env(text: &str, env: &impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let name = &after[..end];
        out.push_str(&env(name).ok_or_else(|| name.to_string())?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Everything wrong with a configuration.
#[derive(Debug)]
pub struct ConfigError {
    pub file: PathBuf,
    pub problems: Vec<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} is not a usable configuration:", self.file.display())?;
        for p in &self.problems {
            writeln!(f, "  {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

struct Reader {
    problems: Vec<String>,
}

impl Reader {
    fn table<'t>(&mut self, t: &'t toml::Table, key: &str, at: &str) -> Option<&'t toml::Table> {
        match t.get(key) {
            None => None,
            Some(toml::Value::Table(x)) => Some(x),
            Some(_) => {
                self.problems.push(format!("{at}{key}: must be a table"));
                None
            }
        }
    }

    fn string(&mut self, t: &toml::Table, key: &str, at: &str, required: bool) -> Option<String> {
        match t.get(key) {
            None if required => {
                self.problems
                    .push(format!("{at}{key}: required (a string)"));
                None
            }
            None => None,
            Some(toml::Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
            Some(toml::Value::String(_)) => {
                self.problems.push(format!("{at}{key}: must not be empty"));
                None
            }
            Some(other) => {
                self.problems.push(format!(
                    "{at}{key}: must be a string, found {}",
                    other.type_str()
                ));
                None
            }
        }
    }

    /// A pipeline's `logging` table, if it has one (OFF logs nothing and records nothing).
    fn pipeline_logging(&mut self, t: &toml::Table, at: &str) -> Option<PipelineLogging> {
        let table = self.table(t, "logging", at)?;
        let at = format!("{at}logging.");
        self.unknown(
            table,
            &["level", "include_execution_data", "destination"],
            &at,
        );
        let level = match self.string(table, "level", &at, true) {
            Some(name) => match LogLevel::parse(&name) {
                Some(level) => level,
                None => {
                    self.problems.push(format!(
                        "{at}level: '{name}' is not one of ALL, ERROR, FATAL, OFF"
                    ));
                    return None;
                }
            },
            None => return None,
        };
        let include_execution_data = self.boolean(table, "include_execution_data", &at, false);
        let path = self
            .string(table, "destination", &at, false)
            .map(PathBuf::from);
        let destination = LogDestination::file_or_stderr(path.as_deref());
        (level != LogLevel::Off).then_some(PipelineLogging {
            settings: LogSettings {
                level,
                include_execution_data,
            },
            destination,
        })
    }

    fn boolean(&mut self, t: &toml::Table, key: &str, at: &str, default: bool) -> bool {
        match t.get(key) {
            None => default,
            Some(toml::Value::Boolean(b)) => *b,
            Some(other) => {
                self.problems.push(format!(
                    "{at}{key}: must be true or false, found {}",
                    other.type_str()
                ));
                default
            }
        }
    }

    fn positive(&mut self, t: &toml::Table, key: &str, at: &str, default: u64) -> u64 {
        match t.get(key) {
            None => default,
            Some(toml::Value::Integer(i)) if *i > 0 => *i as u64,
            Some(toml::Value::Integer(i)) => {
                self.problems
                    .push(format!("{at}{key}: must be a positive integer, found {i}"));
                default
            }
            Some(other) => {
                self.problems.push(format!(
                    "{at}{key}: must be a positive integer, found {}",
                    other.type_str()
                ));
                default
            }
        }
    }

    fn options(&mut self, t: Option<&toml::Table>, at: &str) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for (k, v) in t.into_iter().flatten() {
            let text = match v {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                toml::Value::Float(f) => f.to_string(),
                other => {
                    self.problems.push(format!(
                        "{at}\"{k}\": librdkafka options are strings, numbers or booleans, found {}",
                        other.type_str()
                    ));
                    continue;
                }
            };
            out.insert(k.clone(), text);
        }
        out
    }

    /// The `[[resources]]` entries; `env` looks up environment variables for `${NAME}`.
    fn resources(
        &mut self,
        root: &toml::Table,
        env: impl Fn(&str) -> Option<String>,
    ) -> Vec<ResourceBinding> {
        let mut out = Vec::new();
        let default_brokers = root
            .get("kafka")
            .and_then(|k| k.get("brokers"))
            .and_then(toml::Value::as_str)
            .map(str::to_string);
        let items = match root.get("resources") {
            None => return out,
            Some(toml::Value::Array(items)) => items,
            Some(_) => {
                self.problems
                    .push("resources: must be an array of tables ([[resources]])".into());
                return out;
            }
        };
        for (i, item) in items.iter().enumerate() {
            let at = format!("resources[{i}].");
            let Some(t) = item.as_table() else {
                self.problems
                    .push(format!("resources[{i}]: must be a table"));
                continue;
            };
            self.unknown(
                t,
                &[
                    "resource",
                    "kind",
                    "endpoint",
                    "timeout_seconds",
                    "allowed_hosts",
                    "headers",
                    "brokers",
                    "topic",
                    "ca_file",
                    "client_cert_file",
                    "client_key_file",
                    "connection",
                ],
                &at,
            );
            let resource = self.string(t, "resource", &at, true);
            let kind = match self.string(t, "kind", &at, true).as_deref() {
                Some("lambda") => Some(ResourceKind::Lambda),
                Some("http") => Some(ResourceKind::Http),
                Some("kafka") => Some(ResourceKind::Kafka),
                Some("native") => {
                    self.problems.push(format!(
                        "{at}kind: 'native' resources are Rust functions bound in code (Registry::native); a config file cannot name one"
                    ));
                    None
                }
                Some(other) => {
                    self.problems.push(format!(
                        "{at}kind: '{other}' is not one of lambda, http, kafka"
                    ));
                    None
                }
                None => None,
            };
            let endpoint = self.string(t, "endpoint", &at, kind == Some(ResourceKind::Lambda));
            if let Some(e) = &endpoint {
                if !e.starts_with("http://") && !e.starts_with("https://") {
                    self.problems.push(format!(
                        "{at}endpoint: '{e}' must be an http:// or https:// URL"
                    ));
                } else if kind == Some(ResourceKind::Http) {
                    self.problems.push(format!(
                        "{at}endpoint: http resources take the URL from the task's ApiEndpoint; remove the key"
                    ));
                }
            }
            let timeout_ms =
                self.positive(t, "timeout_seconds", &at, DEFAULT_RESOURCE_TIMEOUT_SECONDS) * 1000;
            let mut allowed_hosts = Vec::new();
            match t.get("allowed_hosts") {
                None => {}
                Some(toml::Value::Array(hosts)) => {
                    for h in hosts {
                        match h.as_str() {
                            Some(h) if !h.trim().is_empty() => allowed_hosts.push(h.to_string()),
                            _ => self.problems.push(format!(
                                "{at}allowed_hosts: every entry must be a host name, host:port or \"*\""
                            )),
                        }
                    }
                }
                Some(other) => self.problems.push(format!(
                    "{at}allowed_hosts: must be an array of strings, found {}",
                    other.type_str()
                )),
            }
            // A lambda endpoint is allowed by being configured.
            if let Some(host) = endpoint
                .as_deref()
                .and_then(|e| {
                    e.strip_prefix("http://")
                        .or_else(|| e.strip_prefix("https://"))
                })
                .map(|rest| rest.split('/').next().unwrap_or(rest))
            {
                allowed_hosts.push(host.to_string());
            }
            let tls = self.tls(t, &at, kind);
            let connection = self.string(t, "connection", &at, false);
            if connection.is_some() && kind != Some(ResourceKind::Http) {
                self.problems.push(format!(
                    "{at}connection: only for kind = \"http\" (the Authentication.ConnectionArn of HTTP Tasks)"
                ));
            }
            let mut headers = Vec::new();
            match t.get("headers") {
                None => {}
                Some(toml::Value::Table(h)) => {
                    for (k, v) in h {
                        let Some(v) = v.as_str() else {
                            self.problems
                                .push(format!("{at}headers.{k}: must be a string"));
                            continue;
                        };
                        match expand_env(v, &env) {
                            Ok(v) => headers.push((k.clone(), v)),
                            Err(name) => self.problems.push(format!(
                                "{at}headers.{k}: environment variable {name} is not set"
                            )),
                        }
                    }
                }
                Some(other) => self.problems.push(format!(
                    "{at}headers: must be a table of strings, found {}",
                    other.type_str()
                )),
            }
            let brokers = self
                .string(t, "brokers", &at, false)
                .or_else(|| default_brokers.clone());
            let topic = self.string(t, "topic", &at, false);
            if kind == Some(ResourceKind::Kafka) {
                if brokers.is_none() {
                    self.problems.push(format!(
                        "{at}brokers: required for kind = \"kafka\" (or set [kafka] brokers)"
                    ));
                }
                let mapped = resource
                    .as_deref()
                    .is_some_and(|r| !r.ends_with(":::kafka:produce"));
                if mapped && topic.is_none() {
                    self.problems.push(format!(
                        "{at}topic: required to map {} onto Kafka",
                        resource.as_deref().unwrap_or("")
                    ));
                }
            } else {
                for key in ["brokers", "topic"] {
                    if t.contains_key(key) {
                        self.problems
                            .push(format!("{at}{key}: only for kind = \"kafka\""));
                    }
                }
            }
            if let (Some(resource), Some(kind)) = (resource, kind) {
                out.push(ResourceBinding {
                    resource,
                    kind,
                    endpoint: endpoint.map(|e| e.trim_end_matches('/').to_string()),
                    timeout_ms,
                    allowed_hosts,
                    headers,
                    brokers,
                    topic,
                    connection,
                    tls,
                });
            }
        }
        out
    }

    /// The TLS files of a `lambda` or `http` entry: only what can be checked without reading
    /// them (the files are read when the resource is built).
    fn tls(&mut self, t: &toml::Table, at: &str, kind: Option<ResourceKind>) -> Option<TlsFiles> {
        let ca_file = self.string(t, "ca_file", at, false);
        let cert = self.string(t, "client_cert_file", at, false);
        let key = self.string(t, "client_key_file", at, false);
        if ca_file.is_none() && cert.is_none() && key.is_none() {
            return None;
        }
        if kind == Some(ResourceKind::Kafka) {
            self.problems.push(format!(
                "{at}ca_file, client_cert_file, client_key_file: only for kind = \"lambda\" or \"http\" (TLS to Kafka goes in [kafka.options], e.g. \"security.protocol\" and \"ssl.ca.location\")"
            ));
            return None;
        }
        let client = match (cert, key) {
            (Some(c), Some(k)) => Some((PathBuf::from(c), PathBuf::from(k))),
            (None, None) => None,
            (Some(_), None) => {
                self.problems.push(format!(
                    "{at}client_key_file: required with client_cert_file (the certificate's private key, PEM)"
                ));
                return None;
            }
            (None, Some(_)) => {
                self.problems.push(format!(
                    "{at}client_cert_file: required with client_key_file (the client certificate chain, PEM)"
                ));
                return None;
            }
        };
        Some(TlsFiles {
            ca_file: ca_file.map(PathBuf::from),
            client,
        })
    }

    fn unknown(&mut self, t: &toml::Table, known: &[&str], at: &str) {
        for k in t.keys() {
            if !known.contains(&k.as_str()) {
                self.problems.push(format!(
                    "{at}{k}: unknown key (known here: {})",
                    known.join(", ")
                ));
            }
        }
    }
}

impl Config {
    /// Reads and checks a configuration file; relative paths in it are taken from the
    /// current directory, as they are written in the shipped examples.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let err = |problems: Vec<String>| ConfigError {
            file: path.to_path_buf(),
            problems,
        };
        let text =
            std::fs::read_to_string(path).map_err(|e| err(vec![format!("cannot read it: {e}")]))?;
        Config::parse(&text).map_err(err)
    }

    /// Parses configuration text.
    pub fn parse(text: &str) -> Result<Config, Vec<String>> {
        let root: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            vec![format!("not valid TOML: {}", e.to_string().trim())]
        })?;
        let mut r = Reader {
            problems: Vec::new(),
        };
        r.unknown(
            &root,
            &["kafka", "runtime", "http", "api", "pipelines", "resources"],
            "",
        );
        let resources = r.resources(&root, |name| std::env::var(name).ok());

        let kafka_t = r.table(&root, "kafka", "").cloned().unwrap_or_default();
        r.unknown(
            &kafka_t,
            &["brokers", "group_id", "options", "producer_options"],
            "kafka.",
        );
        let brokers = r.string(&kafka_t, "brokers", "kafka.", true);
        let group_id = r
            .string(&kafka_t, "group_id", "kafka.", false)
            .unwrap_or_else(|| DEFAULT_GROUP_ID.to_string());
        let options = {
            let t = r.table(&kafka_t, "options", "kafka.").cloned();
            r.options(t.as_ref(), "kafka.options.")
        };
        let producer_options = {
            let t = r.table(&kafka_t, "producer_options", "kafka.").cloned();
            r.options(t.as_ref(), "kafka.producer_options.")
        };

        let rt = r.table(&root, "runtime", "").cloned().unwrap_or_default();
        r.unknown(
            &rt,
            &[
                "shards",
                "max_in_flight",
                "max_pending",
                "drain_timeout_seconds",
                "max_map_iterations",
            ],
            "runtime.",
        );
        let d = Runtime::default();
        let runtime = Runtime {
            shards: r.positive(&rt, "shards", "runtime.", d.shards as u64) as usize,
            max_in_flight: r.positive(&rt, "max_in_flight", "runtime.", d.max_in_flight as u64)
                as usize,
            max_pending: r.positive(&rt, "max_pending", "runtime.", d.max_pending as u64) as usize,
            drain_timeout_ms: r.positive(
                &rt,
                "drain_timeout_seconds",
                "runtime.",
                d.drain_timeout_ms / 1000,
            ) * 1000,
            max_map_iterations: r.positive(
                &rt,
                "max_map_iterations",
                "runtime.",
                d.max_map_iterations as u64,
            ) as usize,
        };

        let http_t = r.table(&root, "http", "").cloned().unwrap_or_default();
        r.unknown(&http_t, &["listen", "credentials"], "http.");
        let http = Http {
            listen: match http_t.get("listen") {
                None => Http::default().listen,
                // An empty address turns the listener off.
                Some(toml::Value::String(s)) if s.trim().is_empty() => None,
                Some(_) => r.string(&http_t, "listen", "http.", false),
            },
            credentials: r
                .string(&http_t, "credentials", "http.", false)
                .map(PathBuf::from),
        };

        let api = r.table(&root, "api", "").cloned().map(|t| {
            r.unknown(
                &t,
                &[
                    "listen",
                    "state_dir",
                    "credentials",
                    "mock_config",
                    "max_executions",
                    "execution_log",
                ],
                "api.",
            );
            let path =
                |r: &mut Reader, key: &str| r.string(&t, key, "api.", false).map(PathBuf::from);
            Api {
                listen: r.string(&t, "listen", "api.", true).unwrap_or_default(),
                state_dir: path(&mut r, "state_dir"),
                credentials: path(&mut r, "credentials"),
                mock_config: path(&mut r, "mock_config"),
                execution_log: path(&mut r, "execution_log"),
                max_executions: r.positive(
                    &t,
                    "max_executions",
                    "api.",
                    DEFAULT_API_MAX_EXECUTIONS as u64,
                ) as usize,
            }
        });

        let mut pipelines = Vec::new();
        match root.get("pipelines") {
            None => r
                .problems
                .push("pipelines: at least one [[pipelines]] entry is required".into()),
            Some(toml::Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    let at = format!("pipelines[{i}].");
                    let Some(t) = item.as_table() else {
                        r.problems.push(format!("pipelines[{i}]: must be a table"));
                        continue;
                    };
                    r.unknown(
                        t,
                        &[
                            "name",
                            "definition",
                            "input_topic",
                            "output_topic",
                            "dead_letter_topic",
                            "mock_file",
                            "headers",
                            "ordering",
                            "logging",
                        ],
                        &at,
                    );
                    let logging = r.pipeline_logging(t, &at);
                    let p = (
                        r.string(t, "name", &at, true),
                        r.string(t, "definition", &at, true),
                        r.string(t, "input_topic", &at, true),
                        r.string(t, "output_topic", &at, true),
                        r.string(t, "dead_letter_topic", &at, true),
                        r.string(t, "mock_file", &at, false),
                    );
                    let headers = r.boolean(t, "headers", &at, true);
                    let ordered_keys = match r.string(t, "ordering", &at, false).as_deref() {
                        None | Some("none") => false,
                        Some("key") => true,
                        Some(other) => {
                            r.problems.push(format!(
                                "{at}ordering: '{other}' is not one of \"key\" (one execution per key at a time, in input order) or \"none\""
                            ));
                            false
                        }
                    };
                    if let (Some(name), Some(def), Some(input), Some(output), Some(dead), mock) = p
                    {
                        pipelines.push(Pipeline {
                            name,
                            definition: PathBuf::from(def),
                            input_topic: input,
                            output_topic: output,
                            dead_letter_topic: dead,
                            mock_file: mock.map(PathBuf::from),
                            headers,
                            ordered_keys,
                            logging,
                        });
                    }
                }
            }
            Some(_) => r
                .problems
                .push("pipelines: must be an array of tables ([[pipelines]])".into()),
        }
        // Whole-configuration rules.
        for (i, p) in pipelines.iter().enumerate() {
            for (j, q) in pipelines.iter().enumerate().skip(i + 1) {
                if p.input_topic == q.input_topic {
                    r.problems.push(format!(
                        "pipelines[{j}].input_topic: '{}' is already the input of pipelines[{i}] ('{}')",
                        q.input_topic, p.name
                    ));
                }
                if p.name == q.name {
                    r.problems
                        .push(format!("pipelines[{j}].name: '{}' is used twice", q.name));
                }
            }
            for (what, topic) in [
                ("output_topic", &p.output_topic),
                ("dead_letter_topic", &p.dead_letter_topic),
            ] {
                if pipelines.iter().any(|q| &q.input_topic == topic) {
                    r.problems.push(format!(
                        "pipelines[{i}].{what}: '{topic}' is also an input topic, which would loop records back"
                    ));
                }
            }
        }
        if !r.problems.is_empty() {
            return Err(r.problems);
        }
        Ok(Config {
            kafka: Kafka {
                brokers: brokers.unwrap_or_default(),
                group_id,
                options,
                producer_options,
            },
            runtime,
            http,
            api,
            pipelines,
            resources,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resources(text: &str, env: &[(&str, &str)]) -> Result<Vec<ResourceBinding>, Vec<String>> {
        let root: toml::Table = text.parse().unwrap();
        let mut r = Reader {
            problems: Vec::new(),
        };
        let out = r.resources(&root, |n| {
            env.iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.to_string())
        });
        if r.problems.is_empty() {
            Ok(out)
        } else {
            Err(r.problems)
        }
    }

    #[test]
    fn resources_bind_lambda_and_http_with_credentials_from_the_environment() {
        let b = resources(
            r#"
            [[resources]]
            resource = "arn:aws:lambda:us-east-1:123456789012:function:*"
            kind = "lambda"
            endpoint = "http://127.0.0.1:9001/"
            timeout_seconds = 5
            [[resources]]
            resource = "arn:aws:states:::http:invoke"
            kind = "http"
            allowed_hosts = ["api.internal:8443", "127.0.0.1"]
            headers = { Authorization = "Bearer ${API_TOKEN}", X-Team = "iot" }
            "#,
            &[("API_TOKEN", "s3cret")],
        )
        .unwrap();
        assert_eq!(b[0].kind, ResourceKind::Lambda);
        assert_eq!(b[0].endpoint.as_deref(), Some("http://127.0.0.1:9001"));
        assert_eq!(b[0].timeout_ms, 5000);
        // The endpoint of a lambda binding is allowed by being configured.
        assert_eq!(b[0].allowed_hosts, vec!["127.0.0.1:9001".to_string()]);
        assert_eq!(b[1].kind, ResourceKind::Http);
        assert_eq!(b[1].allowed_hosts.len(), 2);
        assert!(
            b[1].headers
                .contains(&("Authorization".into(), "Bearer s3cret".into()))
        );
    }

    #[test]
    fn resource_problems_name_their_key() {
        let problems = resources(
            r#"
            [[resources]]
            kind = "lambda"
            [[resources]]
            resource = "x"
            kind = "smtp"
            [[resources]]
            resource = "y"
            kind = "http"
            endpoint = "http://127.0.0.1/"
            headers = { Authorization = "${MISSING_TOKEN}" }
            allowed_hosts = "everything"
            topic = "t"
            [[resources]]
            resource = "arn:aws:states:::sqs:sendMessage"
            kind = "kafka"
            connection = "arn:aws:events:us-east-1:1:connection/x/*"
            "#,
            &[],
        )
        .unwrap_err();
        let text = problems.join("\n");
        for want in [
            "resources[0].resource: required",
            "resources[0].endpoint: required",
            "resources[1].kind: 'smtp' is not one of lambda, http, kafka",
            "resources[2].endpoint: http resources take the URL from the task's ApiEndpoint",
            "resources[2].headers.Authorization: environment variable MISSING_TOKEN is not set",
            "resources[2].allowed_hosts: must be an array of strings",
            "resources[2].topic: only for kind = \"kafka\"",
            "resources[3].brokers: required for kind = \"kafka\" (or set [kafka] brokers)",
            "resources[3].topic: required to map arn:aws:states:::sqs:sendMessage onto Kafka",
            "resources[3].connection: only for kind = \"http\"",
        ] {
            assert!(text.contains(want), "missing {want:?} in:\n{text}");
        }
    }

    #[test]
    fn tls_keys_are_checked_at_load_and_named() {
        let problems = resources(
            r#"
            [[resources]]
            resource = "a"
            kind = "http"
            ca_file = "/nonexistent/ca.pem"
            [[resources]]
            resource = "b"
            kind = "lambda"
            endpoint = "https://fn.internal"
            client_cert_file = "client.pem"
            [[resources]]
            resource = "arn:aws:states:::kafka:produce"
            kind = "kafka"
            brokers = "127.0.0.1:9092"
            ca_file = "ca.pem"
            [[resources]]
            resource = "c"
            kind = "lambda"
            endpoint = "ftp://fn.internal"
            "#,
            &[],
        )
        .unwrap_err();
        let text = problems.join("\n");
        for want in [
            "resources[1].client_key_file: required with client_cert_file",
            "resources[2].ca_file, client_cert_file, client_key_file: only for kind = \"lambda\" or \"http\"",
            "resources[3].endpoint: 'ftp://fn.internal' must be an http:// or https:// URL",
        ] {
            assert!(text.contains(want), "missing {want:?} in:\n{text}");
        }
        // The files are not read here: an unreadable ca_file is reported when the resource is
        // built (tasks::tests::unusable_tls_files_name_the_entry_key_and_path).
        assert!(!text.contains("resources[0]"), "{text}");
        // An https lambda endpoint is allowed by being configured, as an http one is.
        let b = resources(
            r#"
            [[resources]]
            resource = "b"
            kind = "lambda"
            endpoint = "https://fn.internal:8443/"
            "#,
            &[],
        )
        .unwrap();
        assert_eq!(b[0].allowed_hosts, vec!["fn.internal:8443".to_string()]);
        assert!(b[0].tls.is_none());
    }

    #[test]
    fn tls_files_are_plain_data_and_not_read_while_parsing() {
        let b = resources(
            r#"
            [[resources]]
            resource = "arn:aws:states:::http:invoke"
            kind = "http"
            ca_file = "/nonexistent"
            [[resources]]
            resource = "arn:aws:lambda:*"
            kind = "lambda"
            endpoint = "https://fn.internal"
            client_cert_file = "/nonexistent/client.pem"
            client_key_file = "/nonexistent/client.key"
            "#,
            &[],
        )
        .unwrap();
        assert_eq!(
            b[0].tls,
            Some(TlsFiles {
                ca_file: Some(PathBuf::from("/nonexistent")),
                client: None,
            })
        );
        assert_eq!(
            b[1].tls,
            Some(TlsFiles {
                ca_file: None,
                client: Some((
                    PathBuf::from("/nonexistent/client.pem"),
                    PathBuf::from("/nonexistent/client.key")
                )),
            })
        );
    }

    /// The smallest valid file: one pipeline, every optional section left out.
    const ONE_PIPELINE: &str = r#"[kafka]
        brokers = "b:9092"
        [[pipelines]]
        name = "p"
        definition = "d.json"
        input_topic = "i"
        output_topic = "o"
        dead_letter_topic = "d"
        "#;

    #[test]
    fn empty_sections_mean_the_one_set_of_defaults() {
        let base = ONE_PIPELINE;
        let empty = format!("{base}\n[runtime]\n[http]\n");
        for text in [base, &empty] {
            let c = Config::parse(text).unwrap();
            assert_eq!(c.runtime, Runtime::default());
            assert_eq!(c.http, Http::default());
            assert_eq!(c.kafka.group_id, DEFAULT_GROUP_ID);
        }
        // The values themselves, as documented in configs/stepstream.toml.
        let d = Runtime::default();
        assert_eq!(
            (
                d.max_in_flight,
                d.max_pending,
                d.drain_timeout_ms,
                d.max_map_iterations
            ),
            (1024, 10_000, 10_000, 4096)
        );
        assert_eq!(
            d.shards,
            std::thread::available_parallelism().map_or(1, |n| n.get())
        );
        assert_eq!(Http::default().listen.as_deref(), Some("127.0.0.1:9464"));
        let b = resources("[[resources]]\nresource = \"r\"\nkind = \"http\"\n", &[]).unwrap();
        assert_eq!(b[0].timeout_ms, 60_000);
    }

    #[test]
    fn the_shipped_example_is_valid() {
        let c = Config::load(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/configs/stepstream.toml"
        )))
        .unwrap();
        assert_eq!(c.kafka.brokers, "127.0.0.1:9092");
        assert_eq!(
            c.kafka.options.get("auto.offset.reset").map(String::as_str),
            Some("earliest")
        );
        assert_eq!(c.pipelines[0].input_topic, "iot-events");
        assert_eq!(c.runtime.max_map_iterations, 4096);
    }

    /// docker-compose.yml cannot run here (no Docker engine), so its parts are checked to
    /// agree: the config stepstream runs loads, its workflow compiles, its topics are the ones
    /// the compose file creates, and the events the producer replays exist.
    #[test]
    fn the_docker_example_agrees_with_the_compose_file() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let c = Config::load(&root.join("configs/docker.toml")).unwrap();
        let compose = std::fs::read_to_string(root.join("docker-compose.yml")).unwrap();
        let dockerfile = std::fs::read_to_string(root.join("Dockerfile")).unwrap();
        assert!(dockerfile.contains(r#""--config", "configs/docker.toml""#));
        // Its listener takes connections from beyond the container's loopback, so it has
        // credentials, and the host publishes it on loopback only.
        let keys = c.http.credentials.as_ref().expect("http.credentials");
        let text = std::fs::read_to_string(root.join(keys)).unwrap();
        assert!(crate::api::sigv4::parse_credentials_file(&text).is_ok());
        assert!(compose.contains(r#"ports: ["127.0.0.1:9464:9464"]"#));
        assert_eq!(c.kafka.brokers, "kafka:9092");
        assert!(compose.contains("PLAINTEXT://kafka:9092"));
        let created = compose
            .lines()
            .find(|l| l.contains("for t in"))
            .expect("the topics service's loop");
        for p in &c.pipelines {
            let def = std::fs::read(root.join(&p.definition)).unwrap();
            crate::asl::load(&def, crate::asl::MachineType::Express).unwrap();
            for topic in [&p.input_topic, &p.output_topic, &p.dead_letter_topic] {
                assert!(
                    created
                        .split_whitespace()
                        .any(|w| w.trim_end_matches(';') == topic),
                    "{topic} is not created by docker-compose.yml"
                );
            }
            assert!(compose.contains(&format!("--topic {}", p.input_topic)));
        }
        let events = std::fs::read_to_string(root.join("configs/events/iot-events.jsonl")).unwrap();
        assert!(compose.contains("/events/iot-events.jsonl"));
        // Mostly good events, and a few malformed ones on purpose, for the dead-letter topic.
        let good = events
            .lines()
            .filter(|l| crate::json::parse(l.as_bytes()).is_ok())
            .count();
        assert!(good > 900 && good < events.lines().count(), "{good}");
    }

    #[test]
    fn a_pipeline_logging_table_sets_its_execution_log() {
        let pipeline = |logging: &str| {
            Config::parse(&format!(
                "[kafka]\nbrokers = \"b:9092\"\n[[pipelines]]\nname = \"p\"\ndefinition = \"d.json\"\ninput_topic = \"i\"\noutput_topic = \"o\"\ndead_letter_topic = \"d\"\n{logging}"
            ))
        };
        let c = pipeline(
            "[pipelines.logging]\nlevel = \"ERROR\"\ninclude_execution_data = true\ndestination = \"/tmp/p.log\"",
        )
        .unwrap();
        assert_eq!(
            c.pipelines[0].logging,
            Some(PipelineLogging {
                settings: LogSettings {
                    level: LogLevel::Error,
                    include_execution_data: true,
                },
                destination: LogDestination::File(PathBuf::from("/tmp/p.log")),
            })
        );
        let stderr = pipeline("logging = { level = \"ALL\" }").unwrap();
        let l = stderr.pipelines[0].logging.as_ref().unwrap();
        assert_eq!(l.destination, LogDestination::Stderr);
        assert!(!l.settings.include_execution_data);
        // OFF is no log at all, and so no history recorded.
        assert_eq!(
            pipeline("logging = { level = \"OFF\" }").unwrap().pipelines[0].logging,
            None
        );
        assert_eq!(pipeline("").unwrap().pipelines[0].logging, None);
        let text = pipeline("logging = { level = \"LOUD\", includeExecutionData = true }")
            .unwrap_err()
            .join("\n");
        for want in [
            "pipelines[0].logging.level: 'LOUD' is not one of ALL, ERROR, FATAL, OFF",
            "pipelines[0].logging.includeExecutionData: unknown key",
        ] {
            assert!(text.contains(want), "missing {want:?} in:\n{text}");
        }
        let text = pipeline("logging = \"ALL\"").unwrap_err().join("\n");
        assert!(
            text.contains("pipelines[0].logging: must be a table"),
            "{text}"
        );
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let problems = Config::parse(
            r#"
            bogus = 1
            [kafka]
            group_id = 5
            [runtime]
            shards = 0
            [[pipelines]]
            name = "a"
            definition = "x.json"
            input_topic = "in"
            output_topic = "in"
            dead_letter_topic = "d0"
            [[pipelines]]
            name = "a"
            definition = "y.json"
            input_topic = "in"
            output_topic = "out"
            dead_letter_topic = "dlq"
            [[pipelines]]
            name = "c"
            definition = "z.json"
            input_topic = "in2"
            output_topic = "out2"
            ordering = "strict"
            "#,
        )
        .unwrap_err();
        let text = problems.join("\n");
        for want in [
            "bogus: unknown key",
            "kafka.brokers: required",
            "kafka.group_id: must be a string",
            "runtime.shards: must be a positive integer",
            "pipelines[2].dead_letter_topic: required",
            "pipelines[0].output_topic: 'in' is also an input topic",
            "pipelines[1].input_topic: 'in' is already the input of pipelines[0]",
            "pipelines[1].name: 'a' is used twice",
            "pipelines[2].ordering: 'strict' is not one of \"key\"",
        ] {
            assert!(text.contains(want), "missing {want:?} in:\n{text}");
        }
    }

    #[test]
    fn an_empty_listen_address_turns_the_listener_off() {
        let base = ONE_PIPELINE;
        assert_eq!(
            Config::parse(base).unwrap().http.listen.as_deref(),
            Some("127.0.0.1:9464")
        );
        let off = format!("{base}\n[http]\nlisten = \"\"\n");
        assert_eq!(Config::parse(&off).unwrap().http.listen, None);
        // Unordered unless asked.
        assert!(!Config::parse(base).unwrap().pipelines[0].ordered_keys);
        let ordered = format!("{base}ordering = \"key\"\n");
        assert!(Config::parse(&ordered).unwrap().pipelines[0].ordered_keys);
    }

    #[test]
    fn bad_toml_says_where() {
        let e = Config::parse("[kafka\nbrokers = 1").unwrap_err();
        assert!(
            e[0].contains("not valid TOML") && e[0].contains("line 1"),
            "{e:?}"
        );
    }

    #[test]
    fn an_api_section_is_read_with_its_defaults_and_checked() {
        let with = |api: &str| Config::parse(&format!("{ONE_PIPELINE}\n{api}"));
        assert_eq!(with("").unwrap().api, None);
        let api = with("[api]\nlisten = \"127.0.0.1:8083\"\nstate_dir = \"/var/lib/sfn\"")
            .unwrap()
            .api
            .unwrap();
        assert_eq!(
            api,
            Api {
                listen: "127.0.0.1:8083".into(),
                state_dir: Some(PathBuf::from("/var/lib/sfn")),
                credentials: None,
                mock_config: None,
                max_executions: DEFAULT_API_MAX_EXECUTIONS,
                execution_log: None,
            }
        );
        // Every key `serve` has a flag for is accepted (execution_log was refused once).
        let api = with("[api]\nlisten = \"127.0.0.1:0\"\nexecution_log = \"/tmp/x.log\"")
            .unwrap()
            .api
            .unwrap();
        assert_eq!(api.execution_log, Some(PathBuf::from("/tmp/x.log")));
        let http = with("[http]\nlisten = \"0.0.0.0:9464\"\ncredentials = \"/etc/ops\"")
            .unwrap()
            .http;
        assert_eq!(http.credentials, Some(PathBuf::from("/etc/ops")));
        let problems = with("[api]\nlisen = \"x\"\nmax_executions = 0").unwrap_err();
        assert!(
            problems.iter().any(|p| p.contains("api.lisen")),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.contains("api.listen")),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.contains("api.max_executions")),
            "{problems:?}"
        );
    }
}
