//! The `stepstream` command line: `validate`, `run`, `bench`. The only place that maps errors
//! to exit codes: 0 success, 1 invalid definition (validate) or failed execution (run),
//! 2 bad usage, unreadable files or an invalid definition given to `run`.

mod bench;

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};

use stepstream::api::sigv4::Credentials;
use stepstream::asl::{self, Diagnostic, MachineType};
use stepstream::config::{self, Config};
use stepstream::exec::Outcome;
use stepstream::json::{self, Value};
use stepstream::plan::{self, Plan};
use stepstream::random::Rng;
use stepstream::stream::driver::{self, Finished};
use stepstream::tasks::mock::{MockConfig, MockFile};
use stepstream::tasks::{Bindings, Registry};
use stepstream::time::Timestamp;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "stepstream",
    version,
    about = "AWS Step Functions Express workflows (Amazon States Language) on streams"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum Type {
    Standard,
    Express,
}

impl From<Type> for MachineType {
    fn from(t: Type) -> MachineType {
        match t {
            Type::Standard => MachineType::Standard,
            Type::Express => MachineType::Express,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Check a definition and print every problem (like ValidateStateMachineDefinition).
    Validate {
        /// The definition file (ASL JSON).
        definition: PathBuf,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        /// The state machine type whose rules apply.
        #[arg(long = "type", value_enum, default_value = "standard")]
        machine_type: Type,
    },
    /// Run one execution (like StartSyncExecution) and print its result as JSON.
    Run {
        definition: PathBuf,
        /// The execution input as JSON text.
        #[arg(long, conflicts_with = "input_file")]
        input: Option<String>,
        /// A file holding the execution input (otherwise standard input, else `{}`).
        #[arg(long)]
        input_file: Option<PathBuf>,
        /// Per-state mock file: {"MockedResponses": {"State": {"0": {"Return": ...}}}}.
        #[arg(long)]
        mock_file: Option<PathBuf>,
        /// AWS Step Functions Local mock configuration (needs --test-case).
        #[arg(long, requires = "test_case")]
        mock_config: Option<PathBuf>,
        /// The test case of --mock-config to use.
        #[arg(long, requires = "mock_config")]
        test_case: Option<String>,
        /// The state machine's name (default: the definition file's stem).
        #[arg(long)]
        name: Option<String>,
        /// The execution's name (default: a random UUID).
        #[arg(long)]
        execution_name: Option<String>,
        /// A configuration file whose [[resources]] bind the tasks' resources.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Evaluate one JSONata expression against a JSON document (like jq, for JSONata), with
    /// the functions Step Functions adds; the document comes from --input-file or standard
    /// input, and no document at all is JSONata's undefined.
    Jsonata {
        /// The expression (taken as written even when it starts with `-`).
        #[arg(allow_hyphen_values = true)]
        expr: String,
        /// A JSON file holding the input document.
        #[arg(long)]
        input_file: Option<PathBuf>,
        /// A JSON object of variable bindings (names without `$`).
        #[arg(long)]
        bindings_file: Option<PathBuf>,
        /// text: the result as JSON (nothing for undefined); json: {"result"}, {"undefined"}
        /// or {"error": {"code", "message", "position"}}.
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        /// Deepest nesting of evaluation steps before U1001.
        #[arg(long)]
        max_depth: Option<usize>,
        /// Time budget of the evaluation in milliseconds before U1001.
        #[arg(long)]
        timelimit_ms: Option<u64>,
        /// JSONata exactly as Step Functions offers it (no `$eval`; use `$parse`).
        #[arg(long)]
        step_functions: bool,
    },
    /// Draw a definition as a graph: SVG (states as boxes with room for counts, Choice rules
    /// and Catchers as labelled edges, Map and Parallel as nested boxes) or Graphviz DOT.
    Graph {
        /// The definition file (ASL JSON), or `-` for standard input.
        definition: PathBuf,
        #[arg(long, default_value = "svg", value_parser = ["svg", "dot"])]
        format: String,
        /// Write the drawing to this file instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Run the workflow on every JSON line of standard input (the embedded default: no
    /// broker); outputs go to standard output in input order, dead letters to stderr or a file.
    Process(ProcessArgs),
    /// Serve the AWS Step Functions API (AWS JSON 1.0): boto3, the AWS CLI and the SDKs
    /// create state machines and run executions here with --endpoint-url.
    Serve(ServeArgs),
    /// Measure executions per second and latency percentiles, in process.
    Bench {
        definition: PathBuf,
        /// The event every execution starts from (its eventId is made unique).
        #[arg(long)]
        input_file: PathBuf,
        #[arg(long)]
        mock_file: Option<PathBuf>,
        /// A configuration file whose [[resources]] bind the tasks' resources.
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long, default_value_t = 100_000)]
        executions: u64,
        /// Executions in flight at once (over all shards).
        #[arg(long, default_value_t = 1)]
        concurrency: usize,
        /// Shard threads.
        #[arg(long, default_value_t = 1)]
        shards: usize,
        /// FIELD=FILE: set FIELD from the JSON array in FILE, cycling per execution.
        #[arg(long)]
        rotate: Vec<String>,
        /// Start this many executions per second (open loop; the report says how far starts
        /// fell behind the schedule). Default: as fast as --concurrency allows.
        #[arg(long, conflicts_with = "brokers")]
        rate: Option<f64>,
        /// Run the executions through the streaming pipeline's shards and channels (as
        /// `process` does, without line I/O or a broker) instead of one driver per thread.
        #[arg(long, conflicts_with_all = ["brokers", "rate"])]
        pipeline: bool,
        /// Kafka mode: produce the events to fresh topics on these brokers, then time a
        /// passthrough (consume + produce, no workflow) and stepstream on them.
        #[arg(long)]
        brokers: Option<String>,
        /// Kafka mode: partitions of the bench topics.
        #[arg(long, default_value_t = 4, requires = "brokers")]
        partitions: i32,
        /// Kafka mode: results without stepstream's headers (and a passthrough without them).
        #[arg(long, requires = "brokers")]
        no_headers: bool,
        /// Kafka mode: use the existing empty topics PREFIX-in, PREFIX-copy, PREFIX-out and
        /// PREFIX-dlq instead of creating fresh ones.
        #[arg(long, requires = "brokers")]
        topic_prefix: Option<String>,
        /// API mode: StartSyncExecution against `stepstream serve` at this http://HOST:PORT
        /// over --concurrency keep-alive connections, beside a one-Pass baseline on it.
        #[arg(long, value_name = "URL", conflicts_with_all = ["brokers", "pipeline", "rate", "mock_file", "config", "rotate"])]
        api: Option<String>,
        /// The per-state counts (on in production): `off` runs without them, `compare` runs
        /// the executions both ways in 10 alternating slices and reports what counting costs.
        #[arg(long, value_enum, default_value = "on", conflicts_with_all = ["brokers", "api"])]
        state_counts: StateCounts,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum StateCounts {
    On,
    Off,
    Compare,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Ordering {
    None,
    Key,
}

/// The flags of `process`.
#[derive(clap::Args)]
struct ProcessArgs {
    /// The definition (for a single workflow). With --config, standard input and output are
    /// processed with the config's [[resources]].
    #[arg(required_unless_present = "config")]
    definition: Option<PathBuf>,
    /// Configuration (TOML, see configs/stepstream.toml): alone, the Kafka pipelines it
    /// describes; with a definition, only its [[resources]] are used.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Kafka bootstrap servers: run DEF on Kafka topics instead of standard input.
    #[arg(long, requires_all = ["input_topic", "output_topic", "dead_letter_topic"])]
    brokers: Option<String>,
    #[arg(long)]
    input_topic: Option<String>,
    #[arg(long)]
    output_topic: Option<String>,
    #[arg(long)]
    dead_letter_topic: Option<String>,
    #[arg(long, default_value = config::DEFAULT_GROUP_ID)]
    group_id: String,
    #[arg(long)]
    mock_file: Option<PathBuf>,
    /// Shard threads (default: the cores).
    #[arg(long)]
    shards: Option<usize>,
    /// Executions in flight per shard.
    #[arg(long, default_value_t = config::DEFAULT_MAX_IN_FLIGHT)]
    max_in_flight: usize,
    /// `key`: one execution per record key at a time, in input order (Kafka records' keys;
    /// standard input has none). `none`: records of a key start in order, finish in any.
    #[arg(long, value_enum, default_value = "none")]
    ordering: Ordering,
    /// Map iterations a shard's executions run at once, beyond the first of each Map state.
    #[arg(long, default_value_t = config::DEFAULT_MAP_ITERATIONS)]
    max_map_iterations: usize,
    /// Where dead letters go (JSON lines); default standard error.
    #[arg(long)]
    dead_letters: Option<PathBuf>,
    /// The state machine's name (default: the definition file's stem).
    #[arg(long)]
    name: Option<String>,
    /// Serve the operations listener (`/`: the workflow page, `/metrics`, `/ping`, `/ready`)
    /// on this host:port while standard input is processed (port 0 picks a free one; the
    /// address is logged); with --brokers, instead of the default 127.0.0.1:9464.
    #[arg(long)]
    http_listen: Option<String>,
    /// Write the events of the executions as CloudWatch Logs receives them from Step
    /// Functions (a state machine's `loggingConfiguration.level`): every event (ALL), the
    /// errors (ERROR), or how failed executions ended (FATAL).
    #[arg(long, value_enum, default_value = "OFF")]
    log_level: LogLevelArg,
    /// Keep the events' input and output in the execution log (`includeExecutionData`).
    #[arg(long)]
    log_execution_data: bool,
    /// Where the execution log goes (appended to); default standard error.
    #[arg(long, value_name = "FILE")]
    execution_log: Option<PathBuf>,
}

/// The pipelines' execution logs: one writer per destination, shared by the pipelines that
/// log to it.
#[derive(Default)]
struct ExecutionLogs(Vec<stepstream::exec::logging::ExecutionLog>);

impl ExecutionLogs {
    fn open(
        &mut self,
        l: &config::PipelineLogging,
    ) -> Result<stepstream::exec::logging::Logging, String> {
        Ok(stepstream::exec::logging::Logging {
            settings: l.settings,
            log: self.writer(&l.destination)?,
        })
    }

    /// The writer of `destination`, opened the first time it is asked for.
    fn writer(
        &mut self,
        destination: &stepstream::exec::logging::LogDestination,
    ) -> Result<stepstream::exec::logging::ExecutionLog, String> {
        if let Some(x) = self.0.iter().find(|x| x.destination() == destination) {
            return Ok(x.clone());
        }
        let x = stepstream::exec::logging::ExecutionLog::open(destination.clone())?;
        self.0.push(x.clone());
        Ok(x)
    }

    /// Waits until every line handed to the logs is written.
    fn flush(&self) {
        for l in &self.0 {
            l.flush();
        }
    }
}

/// `--log-level`, as `loggingConfiguration.level` names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
#[value(rename_all = "UPPER")]
enum LogLevelArg {
    #[value(alias = "off")]
    Off,
    #[value(alias = "all")]
    All,
    #[value(alias = "error")]
    Error,
    #[value(alias = "fatal")]
    Fatal,
}

impl ProcessArgs {
    /// The pipeline's execution log the flags ask for, if any.
    fn logging(&self) -> Option<config::PipelineLogging> {
        use stepstream::exec::logging::{LogDestination, LogLevel, LogSettings};
        let level = match self.log_level {
            LogLevelArg::Off => return None,
            LogLevelArg::All => LogLevel::All,
            LogLevelArg::Error => LogLevel::Error,
            LogLevelArg::Fatal => LogLevel::Fatal,
        };
        Some(config::PipelineLogging {
            settings: LogSettings {
                level,
                include_execution_data: self.log_execution_data,
            },
            destination: LogDestination::file_or_stderr(self.execution_log.as_deref()),
        })
    }
}

/// The flags of `serve`.
#[derive(clap::Args)]
struct ServeArgs {
    /// Also serve the operations listener on this host:port: the workflow page of the state
    /// machines (`/`, `/api/machines`), `/metrics`, `/ping`; beyond loopback it needs
    /// --credentials, whose keys requests present as HTTP Basic user and password.
    #[arg(long)]
    http_listen: Option<String>,
    /// Address to listen on; port 0 picks a free one (the address is logged). Anything
    /// other than a loopback address needs --credentials.
    #[arg(long, default_value = "127.0.0.1:8083")]
    listen: String,
    /// A configuration file whose [[resources]] bind the tasks' resources.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Keep state machines and tags here across restarts (default: memory only).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// A Step Functions Local mock configuration; `#TestCase` after a state machine ARN in
    /// StartExecution / StartSyncExecution picks the test case.
    #[arg(long, env = "SFN_MOCK_CONFIG")]
    mock_config: Option<PathBuf>,
    /// Shard threads running executions (default: the cores).
    #[arg(long)]
    shards: Option<usize>,
    /// Check every request's SigV4 signature against the keys of this file (the AWS shared
    /// credentials format: [profile] aws_access_key_id = ... aws_secret_access_key = ...).
    /// Required to listen beyond loopback.
    #[arg(long)]
    credentials: Option<PathBuf>,
    /// Executions running at once before requests get ThrottlingException.
    #[arg(long, default_value_t = 10_000)]
    max_executions: usize,
    /// Where EXPRESS executions of state machines with a loggingConfiguration write their
    /// events (JSON lines shaped as CloudWatch Logs receives them); default standard error.
    #[arg(long)]
    execution_log: Option<PathBuf>,
    /// The region and account in ARNs.
    #[arg(long, default_value = "us-east-1")]
    region: String,
    #[arg(long, default_value = "123456789012")]
    account: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate {
            definition,
            format,
            machine_type,
        } => validate(&definition, format, machine_type.into()),
        Command::Run {
            definition,
            input,
            input_file,
            mock_file,
            mock_config,
            test_case,
            name,
            execution_name,
            config,
        } => {
            let r = run(RunArgs {
                definition,
                input,
                input_file,
                mock_file,
                mock_config,
                test_case,
                name,
                execution_name,
                config,
            });
            match r {
                Ok(code) => code,
                Err(msg) => {
                    eprintln!("stepstream run: {msg}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Jsonata {
            expr,
            input_file,
            bindings_file,
            format,
            max_depth,
            timelimit_ms,
            step_functions,
        } => jsonata_mode(
            &expr,
            input_file,
            bindings_file,
            format,
            (max_depth, timelimit_ms, step_functions),
        ),
        Command::Graph {
            definition,
            format,
            output,
        } => match graph(&definition, &format, output.as_deref()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(msg) => {
                eprintln!("stepstream graph: {msg}");
                ExitCode::from(2)
            }
        },
        Command::Process(args) => match process_mode(args) {
            Ok(code) => code,
            Err(msg) => {
                eprintln!("stepstream process: {msg}");
                ExitCode::from(2)
            }
        },
        Command::Serve(args) => match serve(args) {
            Ok(code) => code,
            Err(msg) => {
                eprintln!("stepstream serve: {msg}");
                ExitCode::from(2)
            }
        },
        Command::Bench {
            definition,
            input_file,
            mock_file,
            config,
            executions,
            concurrency,
            shards,
            rotate,
            rate,
            pipeline,
            brokers,
            partitions,
            no_headers,
            topic_prefix,
            api,
            state_counts,
            format,
        } => {
            if let Some(url) = api {
                let r = bench::api::run_api(&bench::api::ApiOptions {
                    url,
                    definition,
                    input_file,
                    concurrency,
                    executions,
                });
                return bench_result(format, r.map(|b| (b.to_json(), b.to_text())));
            }
            let bindings = match &config {
                Some(c) => load_bindings(c),
                None => Ok(Bindings::default()),
            };
            if let Some(brokers) = brokers {
                let r = bindings.and_then(|bindings| {
                    bench::kafka::run_kafka(&bench::kafka::KafkaOptions {
                        brokers,
                        partitions: partitions.max(1),
                        definition,
                        input_file,
                        mock_file,
                        bindings,
                        executions,
                        shards: shards.max(1),
                        headers: !no_headers,
                        topic_prefix,
                    })
                });
                return bench_result(format, r.map(|k| (k.to_json(), k.to_text())));
            }
            let r = parse_rotate(&rotate).and_then(|rotate| {
                let opts = bench::Options {
                    definition,
                    input_file,
                    mock_file,
                    bindings: bindings?,
                    rate: rate.filter(|r| *r > 0.0),
                    executions,
                    concurrency,
                    shards,
                    rotate,
                    state_counts: state_counts != StateCounts::Off,
                };
                if state_counts == StateCounts::Compare {
                    if pipeline || opts.rate.is_some() {
                        return Err(
                            "--state-counts compare runs the in-process bench only (without --pipeline or --rate)"
                                .to_string(),
                        );
                    }
                    return bench::compare_state_counts(&opts, 10)
                        .map(|c| (c.to_json(), c.to_text()));
                }
                if pipeline {
                    bench::run_pipeline(&opts)
                } else {
                    bench::run(&opts)
                }
                .map(|b| (b.to_json(), b.to_text()))
            });
            bench_result(format, r)
        }
    }
}

/// Prints a bench report (as JSON or text) or its error; the exit code.
fn bench_result(format: Format, r: Result<(Value, String), String>) -> ExitCode {
    match r {
        Ok((json_report, text)) => {
            match format {
                Format::Json => println!("{}", json::to_string(&json_report)),
                Format::Text => print!("{text}"),
            }
            ExitCode::SUCCESS
        }
        Err(msg) => {
            eprintln!("stepstream bench: {msg}");
            ExitCode::from(2)
        }
    }
}

/// `FIELD=FILE` options: the file holds a JSON array of values.
fn parse_rotate(specs: &[String]) -> Result<Vec<(String, Vec<Value>)>, String> {
    specs
        .iter()
        .map(|spec| {
            let (field, file) = spec
                .split_once('=')
                .ok_or_else(|| format!("--rotate {spec}: expected FIELD=FILE"))?;
            let v = json::parse(&read(Path::new(file))?)
                .map_err(|e| format!("--rotate {spec}: {file} is not valid JSON: {e}"))?;
            match v {
                Value::Array(a) if !a.is_empty() => Ok((field.to_string(), a.to_vec())),
                _ => Err(format!(
                    "--rotate {spec}: {file} must hold a non-empty JSON array"
                )),
            }
        })
        .collect()
}

/// A registry with the resources of a configuration, answering from a per-state mock file
/// first when one is given.
fn registry(mock_file: Option<&Path>, bindings: &Bindings) -> Result<Registry, String> {
    let mut registry = Registry::new();
    registry.bind_all(bindings);
    if let Some(f) = mock_file {
        let m = MockFile::parse(&read(f)?).map_err(|e| format!("{}: {e}", f.display()))?;
        registry.mock(Arc::new(m));
    }
    Ok(registry)
}

/// The `[[resources]]` of a configuration file, read and built: a TLS file that cannot be
/// used is reported now, before anything starts.
fn load_bindings(path: &Path) -> Result<Bindings, String> {
    let resources = config::load_resources(path).map_err(|e| e.to_string())?;
    build_bindings(path, &resources)
}

/// Builds the bindings of `file`, reporting every entry that cannot be built as a problem of
/// that file, as the configuration's other problems are.
fn build_bindings(file: &Path, resources: &[config::ResourceBinding]) -> Result<Bindings, String> {
    Bindings::build(resources).map_err(|errors| {
        config::ConfigError {
            file: file.to_path_buf(),
            problems: errors.iter().map(ToString::to_string).collect(),
        }
        .to_string()
    })
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn validate(path: &Path, format: Format, machine_type: MachineType) -> ExitCode {
    let text = match read(path) {
        Ok(t) => t,
        Err(msg) => {
            eprintln!("stepstream validate: {msg}");
            return ExitCode::from(2);
        }
    };
    let diagnostics = match asl::load(&text, machine_type) {
        Ok(v) => v.warnings().to_vec(),
        Err(d) => d,
    };
    let failed = diagnostics
        .iter()
        .any(|d| d.severity == asl::Severity::Error);
    match format {
        Format::Json => {
            let out = Value::object_from([
                ("result", Value::string(if failed { "FAIL" } else { "OK" })),
                (
                    "diagnostics",
                    Value::array(diagnostics.iter().map(Diagnostic::to_json).collect()),
                ),
                ("truncated", Value::Bool(false)),
            ]);
            println!("{}", json::to_string_pretty(&out));
        }
        Format::Text => {
            for d in &diagnostics {
                println!("{} {}: {}", d.severity.as_str(), path.display(), d);
            }
            if failed {
                let n = diagnostics
                    .iter()
                    .filter(|d| d.severity == asl::Severity::Error)
                    .count();
                println!("{}: invalid ({n} error(s))", path.display());
            } else {
                println!("{}: valid", path.display());
            }
        }
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// `stepstream graph`: a valid definition drawn as SVG or DOT.
fn graph(path: &Path, format: &str, output: Option<&Path>) -> Result<(), String> {
    let (text, shown) = if path == Path::new("-") {
        let mut buf = Vec::new();
        std::io::stdin()
            .lock()
            .read_to_end(&mut buf)
            .map_err(|e| format!("cannot read standard input: {e}"))?;
        (buf, "standard input".to_string())
    } else {
        (read(path)?, path.display().to_string())
    };
    if let Err(diags) = asl::load(&text, MachineType::Standard) {
        let lines: Vec<String> = diags.iter().map(|d| format!("  {d}")).collect();
        return Err(format!(
            "{shown} is not a valid definition:\n{}",
            lines.join("\n")
        ));
    }
    let g = stepstream::graph::Graph::from_json(&text)
        .map_err(|e| format!("{shown} cannot be drawn: {e}"))?;
    let drawing = match format {
        "dot" => stepstream::graph::dot(&g),
        _ => stepstream::graph::svg(&g),
    };
    match output {
        Some(f) => {
            std::fs::write(f, drawing).map_err(|e| format!("cannot write {}: {e}", f.display()))
        }
        None => std::io::stdout()
            .lock()
            .write_all(drawing.as_bytes())
            .map_err(|e| format!("cannot write standard output: {e}")),
    }
}

fn process(definition: &Path, args: ProcessArgs) -> Result<ExitCode, String> {
    let plan = Arc::new(load_plan(
        definition,
        args.name.as_deref(),
        MachineType::Express,
    )?);
    let bindings = match &args.config {
        Some(c) => load_bindings(c)?,
        None => Bindings::default(),
    };
    let registry = registry(args.mock_file.as_deref(), &bindings)?;
    let mut config = stepstream::stream::shard::ShardConfig {
        max_in_flight: args.max_in_flight.max(1),
        max_map_iterations: args.max_map_iterations.max(1),
        ..Default::default()
    };
    if let Some(k) = args.shards {
        config.shards = k.max(1);
    }
    let mut logs = ExecutionLogs::default();
    if let Some(l) = args.logging() {
        config.logging = Some(logs.open(&l)?);
    }
    let mut dlq: Box<dyn Write + Send> = match &args.dead_letters {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).map_err(|e| format!("cannot create {}: {e}", p.display()))?,
        )),
        None => Box::new(std::io::stderr()),
    };
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout());
    let stdin = std::io::stdin();
    // The operations listener, when asked for, on a runtime of its own next to the shards;
    // the pipeline is on its page from the start, and its shards join when they start.
    let metrics = stepstream::metrics::Metrics::new();
    let ops_runtime = match args.http_listen.as_deref().filter(|l| !l.is_empty()) {
        Some(listen) => {
            let mut stats = stepstream::metrics::PipelineStats::new(&plan.name, Vec::new());
            stats.plan = Some(Arc::clone(&plan));
            stats.drawing = drawing(definition, &plan.name);
            metrics
                .pipelines
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(stats);
            let rt = io_runtime()?;
            let (listener, _) = rt.block_on(ops_listener(listen, "--http-listen", None))?;
            rt.spawn(stepstream::server::serve(
                listener,
                Arc::clone(&metrics),
                None,
            ));
            Some(rt)
        }
        None => None,
    };
    let observed = ops_runtime.as_ref().map(|_| &*metrics);
    let summary = stepstream::stream::lines::run(
        plan,
        Arc::new(registry),
        &config,
        stdin.lock(),
        &mut out,
        &mut dlq,
        observed,
    )
    .map_err(|e| format!("I/O error: {e}"))?;
    logs.flush();
    eprintln!(
        "stepstream process: {} record(s): {} output(s), {} dead letter(s)",
        summary.records, summary.outputs, summary.dead_letters
    );
    Ok(ExitCode::SUCCESS)
}

/// Chooses the mode: a config file (Kafka), a definition with --brokers (Kafka), or a
/// definition alone (standard input and output).
fn process_mode(mut args: ProcessArgs) -> Result<ExitCode, String> {
    match (
        args.config.take(),
        args.definition.take(),
        args.brokers.take(),
    ) {
        (Some(config), Some(def), None) => {
            args.config = Some(config);
            process(&def, args)
        }
        (Some(config), _, _) => kafka_process(config_from_file(&config)),
        (None, Some(def), Some(brokers)) => kafka_process(Ok((
            single_pipeline_config(def, brokers, args),
            Bindings::default(),
        ))),
        (None, Some(def), None) => process(&def, args),
        (None, None, _) => Err("give a definition or --config".to_string()),
    }
}

/// A configuration file, checked, with its `[[resources]]` built (so a bad TLS file is
/// reported with the rest, before anything starts).
fn config_from_file(path: &Path) -> Result<(Config, Bindings), String> {
    let config = Config::load(path).map_err(|e| e.to_string())?;
    let bindings = build_bindings(path, &config.resources)?;
    Ok((config, bindings))
}

/// The configuration `process DEF --brokers ...` runs: one pipeline, the flags where given,
/// the configuration file's defaults (`Runtime::default()`, `Http::default()`) elsewhere;
/// unlike a file without `[kafka.options]`, it reads new groups from the earliest offset.
fn single_pipeline_config(definition: PathBuf, brokers: String, args: ProcessArgs) -> Config {
    use stepstream::config::*;
    let logging = args.logging();
    let name = args.name.unwrap_or_else(|| machine_name(&definition));
    let defaults = Runtime::default();
    Config {
        api: None,
        kafka: Kafka {
            brokers,
            group_id: args.group_id,
            options: [("auto.offset.reset".to_string(), "earliest".to_string())].into(),
            producer_options: Default::default(),
        },
        runtime: Runtime {
            shards: args.shards.unwrap_or(defaults.shards),
            max_in_flight: args.max_in_flight,
            max_map_iterations: args.max_map_iterations.max(1),
            ..defaults
        },
        http: match args.http_listen {
            Some(listen) => Http {
                listen: Some(listen),
                credentials: None,
            },
            None => Http::default(),
        },
        pipelines: vec![Pipeline {
            name,
            definition,
            input_topic: args.input_topic.unwrap_or_default(),
            output_topic: args.output_topic.unwrap_or_default(),
            dead_letter_topic: args.dead_letter_topic.unwrap_or_default(),
            mock_file: args.mock_file,
            headers: true,
            ordered_keys: args.ordering == Ordering::Key,
            logging,
        }],
        resources: Vec::new(),
    }
}

/// Runs the Kafka pipelines until SIGINT or SIGTERM, then drains; exits 0 when every result
/// was delivered, 1 (with an `undelivered` log line) when some were not.
fn kafka_process(config: Result<(Config, Bindings), String>) -> Result<ExitCode, String> {
    use stepstream::stream::kafka::{self, Prepared};
    let (config, bindings) = config?;
    let mut prepared = Vec::new();
    let mut problems = Vec::new();
    let mut logs = ExecutionLogs::default();
    for p in &config.pipelines {
        let plan = match load_plan(&p.definition, Some(&p.name), MachineType::Express) {
            Ok(plan) => Arc::new(plan),
            Err(e) => {
                problems.push(format!("pipeline '{}': {e}", p.name));
                continue;
            }
        };
        let registry = match registry(p.mock_file.as_deref(), &bindings) {
            Ok(r) => r,
            Err(e) => {
                problems.push(format!("pipeline '{}': {e}", p.name));
                continue;
            }
        };
        let logging = match p.logging.as_ref().map(|l| logs.open(l)).transpose() {
            Ok(l) => l,
            Err(e) => {
                problems.push(format!("pipeline '{}': {e}", p.name));
                continue;
            }
        };
        prepared.push(Prepared {
            logging,
            drawing: drawing(&p.definition, &p.name),
            pipeline: p.clone(),
            plan,
            registry: Arc::new(registry),
        });
    }
    if !problems.is_empty() {
        return Err(problems.join("\n"));
    }
    // The Step Functions API next to the pipelines, with the same task resources.
    let api = match &config.api {
        Some(a) => {
            let mut registry = Registry::new();
            registry.bind_all(&bindings);
            let identity = stepstream::exec::Identity::default();
            // Its execution log shares the pipelines' writer when they log to the same place.
            let destination = stepstream::exec::logging::LogDestination::file_or_stderr(
                a.execution_log.as_deref(),
            );
            let (service, limits) = api_service(
                a,
                registry,
                None,
                identity.region.to_string(),
                identity.account.to_string(),
                Some(logs.writer(&destination)?),
            )?;
            Some((a.clone(), service, limits))
        }
        None => None,
    };
    let rt = io_runtime()?;
    let stopped = rt.block_on(async move {
        let metrics = stepstream::metrics::Metrics::new();
        if let Some((_, service, _)) = &api {
            let _ = metrics.machines.set(page_machines(service));
        }
        if let Some(listen) = config.http.listen.as_deref().filter(|l| !l.is_empty()) {
            let credentials = config.http.credentials.as_deref();
            let (listener, keys) = ops_listener(listen, "http.listen", credentials).await?;
            tokio::spawn(stepstream::server::serve(
                listener,
                Arc::clone(&metrics),
                keys,
            ));
        }
        let (tx, rx) = tokio::sync::watch::channel(false);
        let stop = stop_signal();
        tokio::spawn(async move {
            stop.await;
            let _ = tx.send(true);
        });
        if let Some((api, service, limits)) = api {
            let listener =
                bind_api(&api.listen, limits.credentials.is_some(), "api.listen").await?;
            let mut stopping = rx.clone();
            let stop = async move {
                let _ = stopping.wait_for(|s| *s).await;
            };
            let grace = std::time::Duration::from_secs(10);
            tokio::spawn(stepstream::api::serve(
                listener, service, limits, stop, grace,
            ));
        }
        kafka::run(&config, prepared, metrics, rx)
            .await
            .map_err(|e| e.to_string())
    });
    // Whatever still waits on a broker that stopped answering (a delivery, librdkafka's
    // destroy) is not waited for: the stop has already committed only what was delivered.
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    logs.flush();
    let stopped = stopped?;
    if stopped.undelivered > 0 {
        stepstream::log::warn(
            "undelivered",
            &[
                ("results", Value::int(stopped.undelivered as i64)),
                (
                    "meaning",
                    Value::string(
                        "these records were not committed; the next start runs them again",
                    ),
                ),
            ],
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// The runtime for the listeners and the Kafka clients (the shards have their own threads).
fn io_runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_stack_size(stepstream::json::STACK_FOR_DEPTH)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
}

/// `stepstream serve`: the API until SIGTERM or SIGINT.
fn serve(args: ServeArgs) -> Result<ExitCode, String> {
    let bindings = match &args.config {
        Some(c) => load_bindings(c)?,
        None => Bindings::default(),
    };
    let mut registry = Registry::new();
    registry.bind_all(&bindings);
    let api = config::Api {
        listen: args.listen,
        state_dir: args.state_dir,
        credentials: args.credentials,
        mock_config: args.mock_config,
        max_executions: args.max_executions,
        execution_log: args.execution_log,
    };
    let (service, limits) =
        api_service(&api, registry, args.shards, args.region, args.account, None)?;
    let rt = io_runtime()?;
    let served = rt.block_on(async {
        if let Some(listen) = args.http_listen.as_deref().filter(|l| !l.is_empty()) {
            // The workflow page of the state machines (and /metrics); beyond loopback only
            // with the API's credentials, presented as HTTP Basic.
            let metrics = stepstream::metrics::Metrics::new();
            let _ = metrics.machines.set(page_machines(&service));
            // Ready as soon as it serves: the API has no broker to connect to.
            metrics
                .connected
                .store(true, std::sync::atomic::Ordering::Relaxed);
            metrics
                .assigned
                .store(1, std::sync::atomic::Ordering::Relaxed);
            let credentials = api.credentials.as_deref();
            let (listener, keys) = ops_listener(listen, "--http-listen", credentials).await?;
            tokio::spawn(stepstream::server::serve(listener, metrics, keys));
        }
        let listener = bind_api(&api.listen, limits.credentials.is_some(), "--listen").await?;
        let stop = stop_signal();
        let grace = std::time::Duration::from_secs(10);
        stepstream::api::serve(listener, Arc::clone(&service), limits, stop, grace).await;
        Ok::<(), String>(())
    });
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    served?;
    // Executions still running (a STANDARD execution may wait for days) live in memory
    // only, as the API documents: they end with the process rather than holding up the stop.
    drop(service);
    Ok(ExitCode::SUCCESS)
}

/// Where the workflow page finds the API's state machines.
fn page_machines(service: &Arc<stepstream::api::Service>) -> stepstream::metrics::MachineSource {
    let service = Arc::clone(service);
    Arc::new(move || service.page_machines())
}

/// The API as `serve` or an `[api]` section sets it up: the service (its shards started,
/// the state directory loaded) and its request limits with the keys to check signatures.
fn api_service(
    api: &config::Api,
    registry: Registry,
    shards: Option<usize>,
    region: String,
    account: String,
    open_log: Option<stepstream::exec::logging::ExecutionLog>,
) -> Result<(Arc<stepstream::api::Service>, stepstream::api::Limits), String> {
    use stepstream::api;
    let mock_config = match &api.mock_config {
        Some(p) => Some((p.clone(), read(p)?)),
        None => None,
    };
    let credentials = match &api.credentials {
        Some(p) => {
            let text = String::from_utf8(read(p)?)
                .map_err(|_| format!("{} is not UTF-8 text", p.display()))?;
            Some(
                api::sigv4::parse_credentials_file(&text)
                    .map_err(|e| format!("{} (credentials): {e}", p.display()))?,
            )
        }
        None => None,
    };
    let mut shard_config = stepstream::stream::shard::ShardConfig::default();
    if let Some(n) = shards {
        shard_config.shards = n.max(1);
    }
    let settings = api::Settings {
        region,
        account,
        max_executions: api.max_executions.max(1),
        state_dir: api.state_dir.clone(),
        mock_config,
        shards: shard_config,
        execution_log: api.execution_log.clone(),
        open_log,
        ..api::Settings::default()
    };
    let service = Arc::new(api::Service::start(settings, registry)?);
    let limits = api::Limits {
        credentials,
        ..api::Limits::default()
    };
    Ok((service, limits))
}

/// Binds the operations listener's address (`what` names the setting) and logs it; with
/// `credentials`, the keys its requests must present. Beyond loopback it needs them.
async fn ops_listener(
    listen: &str,
    what: &str,
    credentials: Option<&Path>,
) -> Result<(tokio::net::TcpListener, Option<Arc<Credentials>>), String> {
    let keys = match credentials {
        Some(p) => {
            let text = String::from_utf8(read(p)?)
                .map_err(|_| format!("{} is not UTF-8 text", p.display()))?;
            Some(Arc::new(
                stepstream::api::sigv4::parse_credentials_file(&text)
                    .map_err(|e| format!("{} (http.credentials): {e}", p.display()))?,
            ))
        }
        None => None,
    };
    let listener = stepstream::server::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen} ({what}): {e}"))?;
    let local = listener
        .local_addr()
        .map_err(|e| format!("cannot read the listening address: {e}"))?;
    if !local.ip().is_loopback() && keys.is_none() {
        return Err(format!(
            "{local} ({what}) is not a loopback address: the operations listener serves beyond this machine only with credentials (http.credentials = FILE in the configuration, an AWS shared credentials file whose keys requests must present as HTTP Basic user and password)"
        ));
    }
    stepstream::log::info(
        "http_listening",
        &[("address", Value::from(local.to_string()))],
    );
    Ok((listener, keys))
}

/// The workflow of the definition at `path` drawn for the workflow page of pipeline `name`
/// (its ids prefixed so that several drawings share one page); `None` when it cannot be
/// read again or drawn, and the page says so.
fn drawing(path: &Path, name: &str) -> Option<String> {
    let text = std::fs::read(path).ok()?;
    stepstream::graph::page_drawing(&text, &format!("p-{name}"))
}

/// Binds the API's address (`what` names the setting); beyond loopback only when requests
/// are signed. Logs the address, which port 0 makes known only now.
async fn bind_api(
    listen: &str,
    signed: bool,
    what: &str,
) -> Result<tokio::net::TcpListener, String> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen} ({what}): {e}"))?;
    let local = listener
        .local_addr()
        .map_err(|e| format!("cannot read the listening address: {e}"))?;
    if !local.ip().is_loopback() && !signed {
        return Err(format!(
            "{local} is not a loopback address: serving the API beyond this machine needs credentials (--credentials FILE, or credentials in [api]), whose keys every request must be signed with"
        ));
    }
    stepstream::log::info(
        "api_listening",
        &[("address", Value::from(format!("http://{local}")))],
    );
    Ok(listener)
}

/// Resolves at the first SIGTERM or SIGINT; the handlers are installed when this is called,
/// so a signal that comes early still stops the process cleanly instead of killing it.
fn stop_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{Signal, SignalKind, signal};
    let term = signal(SignalKind::terminate()).ok();
    let interrupt = signal(SignalKind::interrupt()).ok();
    async move {
        let wait = |s: Option<Signal>| async move {
            match s {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = wait(interrupt) => {}
            _ = wait(term) => {}
        }
        stepstream::log::info("signal", &[("action", Value::string("stopping"))]);
    }
}

struct RunArgs {
    definition: PathBuf,
    input: Option<String>,
    input_file: Option<PathBuf>,
    mock_file: Option<PathBuf>,
    mock_config: Option<PathBuf>,
    test_case: Option<String>,
    name: Option<String>,
    execution_name: Option<String>,
    config: Option<PathBuf>,
}

/// Loads and compiles a definition, printing its diagnostics on failure.
pub fn load_plan(
    path: &Path,
    name: Option<&str>,
    machine_type: MachineType,
) -> Result<Plan, String> {
    let text = read(path)?;
    let validated = asl::load(&text, machine_type).map_err(|diags| {
        let lines: Vec<String> = diags.iter().map(|d| format!("  {d}")).collect();
        format!(
            "{} is not a valid definition:\n{}",
            path.display(),
            lines.join("\n")
        )
    })?;
    let name = name
        .map(str::to_string)
        .unwrap_or_else(|| machine_name(path));
    Ok(plan::compile(&validated, &name))
}

/// A state machine name from a file name: `orders.asl.json` -> `orders`.
fn machine_name(path: &Path) -> String {
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().to_string())
        .unwrap_or_default();
    file.split('.').next().unwrap_or("stepstream").to_string()
}

fn run(args: RunArgs) -> Result<ExitCode, String> {
    let plan = Arc::new(load_plan(
        &args.definition,
        args.name.as_deref(),
        MachineType::Express,
    )?);
    let (input_text, origin) = match (&args.input, &args.input_file) {
        (Some(t), _) => (t.clone().into_bytes(), "--input".to_string()),
        (None, Some(f)) => (read(f)?, f.display().to_string()),
        (None, None) => {
            let stdin = std::io::stdin();
            if stdin.is_terminal() {
                (b"{}".to_vec(), "default".to_string())
            } else {
                let mut buf = Vec::new();
                stdin
                    .lock()
                    .read_to_end(&mut buf)
                    .map_err(|e| format!("cannot read standard input: {e}"))?;
                if buf.iter().all(u8::is_ascii_whitespace) {
                    buf = b"{}".to_vec();
                }
                (buf, "standard input".to_string())
            }
        }
    };
    let input = json::parse(&input_text)
        .map_err(|e| format!("the input ({origin}) is not valid JSON: {e}"))?;

    let bindings = match &args.config {
        Some(c) => load_bindings(c)?,
        None => Bindings::default(),
    };
    let mut registry = registry(args.mock_file.as_deref(), &bindings)?;
    if let (Some(f), Some(case)) = (&args.mock_config, &args.test_case) {
        let m = MockConfig::parse(&read(f)?, &plan.name, case)
            .map_err(|e| format!("{}: {e}", f.display()))?;
        registry.mock(Arc::new(m));
    }

    let execution_name = args.execution_name.unwrap_or_else(|| {
        Rng::new(Rng::seed_from(&driver::now_ms().to_le_bytes()) ^ std::process::id() as u64).uuid()
    });
    let finished = driver::run_one(
        Arc::clone(&plan),
        Arc::new(registry),
        &execution_name,
        input.clone(),
        Some(input_text.len()),
    );
    let out = result_json(&plan, &finished, &input);
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{}", json::to_string_pretty(&out));
    Ok(match finished.outcome {
        Outcome::Succeeded(_) => ExitCode::SUCCESS,
        _ => ExitCode::from(1),
    })
}

/// The StartSyncExecution-shaped result.
fn result_json(plan: &Plan, f: &Finished<()>, input: &Value) -> Value {
    let identity = stepstream::exec::Identity::default();
    let machine_arn = format!(
        "arn:aws:states:{}:{}:stateMachine:{}",
        identity.region, identity.account, plan.name
    );
    let exec_arn = format!(
        "arn:aws:states:{}:{}:express:{}:{}",
        identity.region, identity.account, plan.name, f.name
    );
    let (output, error, cause) = match &f.outcome {
        Outcome::Succeeded(v) => (Value::from(json::to_string(v)), Value::Null, Value::Null),
        Outcome::Failed { error, cause } => (
            Value::Null,
            error.clone().map(Value::String).unwrap_or_default(),
            cause.clone().map(Value::String).unwrap_or_default(),
        ),
        Outcome::TimedOut { error, cause } => (
            Value::Null,
            Value::String(error.clone()),
            Value::String(cause.clone()),
        ),
    };
    Value::object_from([
        ("executionArn", Value::from(exec_arn)),
        ("stateMachineArn", Value::from(machine_arn)),
        ("name", Value::String(f.name.clone())),
        (
            "startDate",
            Value::from(Timestamp::from_millis(f.started_ms).to_iso8601()),
        ),
        (
            "stopDate",
            Value::from(Timestamp::from_millis(f.stopped_ms).to_iso8601()),
        ),
        ("status", Value::string(f.outcome.status())),
        ("input", Value::from(json::to_string(input))),
        ("output", output),
        ("error", error),
        ("cause", cause),
    ])
}

/// `stepstream jsonata`: one evaluation; exit 0 for a result or undefined, 1 for a JSONata
/// error, 2 for bad usage (unreadable or malformed files).
fn jsonata_mode(
    expr: &str,
    input_file: Option<PathBuf>,
    bindings_file: Option<PathBuf>,
    format: Format,
    (max_depth, timelimit_ms, step_functions): (Option<usize>, Option<u64>, bool),
) -> ExitCode {
    use stepstream::jsonata;
    let read_json = |path: &Path| -> Result<Value, String> {
        let bytes =
            std::fs::read(path).map_err(|e| format!("cannot read '{}': {e}", path.display()))?;
        json::parse(&bytes).map_err(|e| format!("'{}' is not JSON: {e}", path.display()))
    };
    let input = match &input_file {
        Some(p) => match read_json(p) {
            Ok(v) => Some(v),
            Err(e) => {
                eprintln!("stepstream jsonata: {e}");
                return ExitCode::from(2);
            }
        },
        None if !std::io::stdin().is_terminal() => {
            let mut buf = Vec::new();
            if let Err(e) = std::io::stdin().read_to_end(&mut buf) {
                eprintln!("stepstream jsonata: cannot read standard input: {e}");
                return ExitCode::from(2);
            }
            if buf.iter().all(|b| b.is_ascii_whitespace()) {
                None
            } else {
                match json::parse(&buf) {
                    Ok(v) => Some(v),
                    Err(e) => {
                        eprintln!("stepstream jsonata: standard input is not JSON: {e}");
                        return ExitCode::from(2);
                    }
                }
            }
        }
        None => None,
    };
    let mut bindings: Vec<(String, Value)> = Vec::new();
    if let Some(p) = &bindings_file {
        match read_json(p) {
            Ok(Value::Object(o)) => {
                bindings = o.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
            }
            Ok(_) => {
                eprintln!(
                    "stepstream jsonata: '{}' must hold a JSON object of bindings",
                    p.display()
                );
                return ExitCode::from(2);
            }
            Err(e) => {
                eprintln!("stepstream jsonata: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let mut options = jsonata::Options {
        step_functions,
        ..jsonata::Options::default()
    };
    if let Some(d) = max_depth {
        options.limits.max_depth = d;
    }
    if let Some(t) = timelimit_ms {
        options.limits.time_limit_ms = t;
    }
    let expr = expr.to_string();
    // Deep recursion (up to the depth limit) needs more stack than the main thread has.
    let worker = std::thread::Builder::new()
        .stack_size(json::STACK_FOR_DEPTH)
        .spawn(move || {
            let refs: Vec<(&str, Value)> = bindings
                .iter()
                .map(|(k, v)| (k.as_str(), v.clone()))
                .collect();
            jsonata::compile(&expr).and_then(|e| e.evaluate_with(input.as_ref(), &refs, &options))
        });
    let outcome = match worker.map(|h| h.join()) {
        Ok(Ok(r)) => r,
        _ => {
            eprintln!("stepstream jsonata: the evaluation thread failed");
            return ExitCode::from(3);
        }
    };
    let mut out = std::io::stdout().lock();
    let code = match (&outcome, format) {
        (Ok(Some(v)), Format::Text) => {
            let _ = writeln!(out, "{}", json::to_string(v));
            0
        }
        (Ok(None), Format::Text) => 0,
        (Err(e), Format::Text) => {
            eprintln!(
                "stepstream jsonata: {} at position {}: {}",
                e.code, e.position, e.message
            );
            1
        }
        (Ok(Some(v)), Format::Json) => {
            let _ = writeln!(out, "{{\"result\":{}}}", json::to_string(v));
            0
        }
        (Ok(None), Format::Json) => {
            let _ = writeln!(out, "{{\"undefined\":true}}");
            0
        }
        (Err(e), Format::Json) => {
            let err = Value::object_from([
                ("code", Value::string(e.code)),
                ("message", Value::string(&e.message)),
                ("position", Value::int(e.position as i64)),
            ]);
            let _ = writeln!(
                out,
                "{}",
                json::to_string(&Value::object_from([("error", err)]))
            );
            1
        }
    };
    ExitCode::from(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pipelines (and the API) logging to one destination share its writer, so their lines
    /// never interleave mid-line; other destinations get their own.
    #[test]
    fn one_execution_log_writer_per_destination() {
        use stepstream::exec::logging::LogDestination;
        let dir = std::env::temp_dir().join(format!("stepstream-logs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b) = (
            LogDestination::File(dir.join("a.log")),
            LogDestination::File(dir.join("b.log")),
        );
        let mut logs = ExecutionLogs::default();
        let first = logs.writer(&a).unwrap();
        assert!(first.same_writer(&logs.writer(&a).unwrap()));
        assert!(!first.same_writer(&logs.writer(&b).unwrap()));
        assert_eq!(logs.0.len(), 2);
        let missing = LogDestination::File(dir.join("no/such/dir/c.log"));
        let e = logs.writer(&missing).unwrap_err();
        assert!(
            e.contains("cannot open the execution log") && e.contains("c.log"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// `process DEF --brokers ...` with no other flags runs with what a configuration file
    /// with empty `[runtime]` and `[http]` sections means: one set of defaults, in config.rs.
    #[test]
    fn the_single_definition_defaults_are_the_config_file_defaults() {
        let cli = Cli::try_parse_from([
            "stepstream",
            "process",
            "d.asl.json",
            "--brokers",
            "b:9092",
            "--input-topic",
            "i",
            "--output-topic",
            "o",
            "--dead-letter-topic",
            "d",
        ])
        .unwrap();
        let Command::Process(args) = cli.command else {
            panic!("not process")
        };
        let flags = single_pipeline_config("d.asl.json".into(), "b:9092".into(), args);
        let file = Config::parse(
            r#"[kafka]
            brokers = "b:9092"
            [runtime]
            [http]
            [[pipelines]]
            name = "d"
            definition = "d.asl.json"
            input_topic = "i"
            output_topic = "o"
            dead_letter_topic = "d"
            "#,
        )
        .unwrap();
        assert_eq!(flags.runtime, file.runtime);
        assert_eq!(flags.runtime, config::Runtime::default());
        assert_eq!(flags.http, file.http);
        assert_eq!(flags.kafka.group_id, file.kafka.group_id);
        let (f, t) = (&flags.pipelines[0], &file.pipelines[0]);
        assert_eq!(
            (&f.name, f.headers, f.ordered_keys),
            (&t.name, t.headers, t.ordered_keys)
        );
        // The one deliberate difference: the flags read a new group from the earliest offset,
        // as the shipped configs/stepstream.toml does; a file without [kafka.options] leaves
        // librdkafka's default (latest).
        assert_eq!(
            flags
                .kafka
                .options
                .get("auto.offset.reset")
                .map(String::as_str),
            Some("earliest")
        );
        assert!(file.kafka.options.is_empty());
    }
}
