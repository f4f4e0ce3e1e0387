//! The API's state directory (`serve --state-dir DIR`): the state machines, their settings and
//! tags, kept in `DIR/state-machines.json` so they survive a restart. Every change rewrites
//! the file whole through a temporary file that is synced and renamed over it, so a crash
//! leaves the old file or the new one, never half of either. Executions are not kept.

use std::io::Write;
use std::path::Path;

use crate::asl::MachineType;
use crate::json::{self, Value};

const FILE: &str = "state-machines.json";

/// One definition and its settings as saved (the latest, or a published version's).
#[derive(Clone, Debug, PartialEq)]
pub struct SavedRevision {
    pub definition: String,
    pub role_arn: String,
    pub updated_ms: i64,
    pub revision_id: String,
    pub logging: Value,
    pub tracing: Value,
}

/// A published version as saved.
#[derive(Clone, Debug, PartialEq)]
pub struct SavedVersion {
    pub number: u32,
    pub revision: SavedRevision,
    pub created_ms: i64,
    pub description: Option<String>,
}

/// An alias as saved: (version, weight) pairs.
#[derive(Clone, Debug, PartialEq)]
pub struct SavedAlias {
    pub name: String,
    pub description: Option<String>,
    pub routing: Vec<(u32, u32)>,
    pub created_ms: i64,
    pub updated_ms: i64,
}

/// One state machine as saved.
#[derive(Clone, Debug, PartialEq)]
pub struct SavedMachine {
    pub name: String,
    pub kind: MachineType,
    pub created_ms: i64,
    pub tags: Vec<(String, String)>,
    pub latest: SavedRevision,
    pub versions: Vec<SavedVersion>,
    pub next_version: u32,
    pub aliases: Vec<SavedAlias>,
}

fn revision_json(r: &SavedRevision) -> Value {
    Value::object_from([
        ("definition", Value::from(r.definition.as_str())),
        ("roleArn", Value::from(r.role_arn.as_str())),
        ("updateDateMs", Value::int(r.updated_ms)),
        ("revisionId", Value::from(r.revision_id.as_str())),
        ("loggingConfiguration", r.logging.clone()),
        ("tracingConfiguration", r.tracing.clone()),
    ])
}

fn opt_text(s: &Option<String>) -> Value {
    s.as_deref().map(Value::from).unwrap_or_default()
}

fn to_json(m: &SavedMachine) -> Value {
    let pairs_json = |pairs: &[(String, String)]| {
        Value::array(
            pairs
                .iter()
                .map(|(k, v)| {
                    Value::object_from([
                        ("key", Value::from(k.as_str())),
                        ("value", Value::from(v.as_str())),
                    ])
                })
                .collect(),
        )
    };
    Value::object_from([
        ("name", Value::from(m.name.as_str())),
        (
            "type",
            Value::string(match m.kind {
                MachineType::Standard => "STANDARD",
                MachineType::Express => "EXPRESS",
            }),
        ),
        ("creationDateMs", Value::int(m.created_ms)),
        ("tags", pairs_json(&m.tags)),
        ("latest", revision_json(&m.latest)),
        (
            "versions",
            Value::array(
                m.versions
                    .iter()
                    .map(|v| {
                        Value::object_from([
                            ("number", Value::int(v.number as i64)),
                            ("revision", revision_json(&v.revision)),
                            ("creationDateMs", Value::int(v.created_ms)),
                            ("description", opt_text(&v.description)),
                        ])
                    })
                    .collect(),
            ),
        ),
        ("nextVersion", Value::int(m.next_version as i64)),
        (
            "aliases",
            Value::array(
                m.aliases
                    .iter()
                    .map(|a| {
                        Value::object_from([
                            ("name", Value::from(a.name.as_str())),
                            ("description", opt_text(&a.description)),
                            (
                                "routing",
                                Value::array(
                                    a.routing
                                        .iter()
                                        .map(|(v, w)| {
                                            Value::array(vec![
                                                Value::int(*v as i64),
                                                Value::int(*w as i64),
                                            ])
                                        })
                                        .collect(),
                                ),
                            ),
                            ("creationDateMs", Value::int(a.created_ms)),
                            ("updateDateMs", Value::int(a.updated_ms)),
                        ])
                    })
                    .collect(),
            ),
        ),
    ])
}

/// Reads fields of one saved object, naming where a problem is.
struct Fields<'a> {
    v: &'a Value,
    at: String,
}

impl Fields<'_> {
    fn text(&self, field: &str) -> Result<String, String> {
        self.v
            .get(field)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| format!("{}.{field}: missing or not a string", self.at))
    }

    fn opt_text(&self, field: &str) -> Option<String> {
        self.v
            .get(field)
            .and_then(Value::as_str)
            .map(str::to_string)
    }

    fn int(&self, field: &str) -> Result<i64, String> {
        self.v
            .get(field)
            .and_then(Value::as_i64)
            .ok_or_else(|| format!("{}.{field}: missing or not an integer", self.at))
    }

    fn list(&self, field: &str) -> Result<&[Value], String> {
        match self.v.get(field) {
            None => Ok(&[]),
            Some(Value::Array(a)) => Ok(a.as_slice()),
            Some(_) => Err(format!("{}.{field}: not an array", self.at)),
        }
    }

    fn sub(&self, field: &str) -> Result<Fields<'_>, String> {
        let v = self
            .v
            .get(field)
            .ok_or_else(|| format!("{}.{field}: missing", self.at))?;
        Ok(Fields {
            v,
            at: format!("{}.{field}", self.at),
        })
    }
}

fn revision_from(f: &Fields) -> Result<SavedRevision, String> {
    Ok(SavedRevision {
        definition: f.text("definition")?,
        role_arn: f.text("roleArn")?,
        updated_ms: f.int("updateDateMs")?,
        revision_id: f.text("revisionId")?,
        logging: f.v.get("loggingConfiguration").cloned().unwrap_or_default(),
        tracing: f.v.get("tracingConfiguration").cloned().unwrap_or_default(),
    })
}

fn from_json(v: &Value, at: usize) -> Result<SavedMachine, String> {
    let f = Fields {
        v,
        at: format!("stateMachines[{at}]"),
    };
    let kind = match f.text("type")?.as_str() {
        "STANDARD" => MachineType::Standard,
        "EXPRESS" => MachineType::Express,
        other => {
            return Err(format!(
                "{}.type: '{other}' is not STANDARD or EXPRESS",
                f.at
            ));
        }
    };
    let mut tags = Vec::new();
    for t in f.list("tags")? {
        match (
            t.get("key").and_then(Value::as_str),
            t.get("value").and_then(Value::as_str),
        ) {
            (Some(k), Some(v)) => tags.push((k.to_string(), v.to_string())),
            _ => return Err(format!("{}.tags: each needs a key and a value", f.at)),
        }
    }
    let mut versions = Vec::new();
    for (i, v) in f.list("versions")?.iter().enumerate() {
        let vf = Fields {
            v,
            at: format!("{}.versions[{i}]", f.at),
        };
        versions.push(SavedVersion {
            number: u32::try_from(vf.int("number")?)
                .map_err(|_| format!("{}.number: out of range", vf.at))?,
            revision: revision_from(&vf.sub("revision")?)?,
            created_ms: vf.int("creationDateMs")?,
            description: vf.opt_text("description"),
        });
    }
    let mut aliases = Vec::new();
    for (i, a) in f.list("aliases")?.iter().enumerate() {
        let af = Fields {
            v: a,
            at: format!("{}.aliases[{i}]", f.at),
        };
        let mut routing = Vec::new();
        for r in af.list("routing")? {
            let pair = r.as_array().map(|p| p.as_slice()).unwrap_or_default();
            match (
                pair.first().and_then(Value::as_i64),
                pair.get(1).and_then(Value::as_i64),
            ) {
                (Some(v), Some(w)) if v >= 0 && (0..=100).contains(&w) => {
                    routing.push((v as u32, w as u32))
                }
                _ => return Err(format!("{}.routing: each is [version, weight]", af.at)),
            }
        }
        aliases.push(SavedAlias {
            name: af.text("name")?,
            description: af.opt_text("description"),
            routing,
            created_ms: af.int("creationDateMs")?,
            updated_ms: af.int("updateDateMs")?,
        });
    }
    Ok(SavedMachine {
        name: f.text("name")?,
        kind,
        created_ms: f.int("creationDateMs")?,
        tags,
        latest: revision_from(&f.sub("latest")?)?,
        versions,
        next_version: u32::try_from(f.int("nextVersion").unwrap_or(1)).unwrap_or(1),
        aliases,
    })
}

/// Reads the saved state machines; a directory without the file has none. Creates the
/// directory when it is missing.
pub fn load(dir: &Path) -> Result<Vec<SavedMachine>, String> {
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("cannot create the state directory {}: {e}", dir.display()))?;
    let path = dir.join(FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let doc = json::parse(&bytes).map_err(|e| {
        format!(
            "{} is not valid JSON ({e}); move it away to start empty, or restore it from a backup",
            path.display()
        )
    })?;
    let list = doc
        .get("stateMachines")
        .and_then(Value::as_array)
        .ok_or_else(|| format!("{}: stateMachines: missing or not an array", path.display()))?;
    list.as_slice()
        .iter()
        .enumerate()
        .map(|(i, v)| from_json(v, i).map_err(|e| format!("{}: {e}", path.display())))
        .collect()
}

/// Replaces the saved state machines with `machines`, atomically.
pub fn save(dir: &Path, machines: &[SavedMachine]) -> std::io::Result<()> {
    let doc = Value::object_from([
        ("version", Value::int(1)),
        (
            "stateMachines",
            Value::array(machines.iter().map(to_json).collect()),
        ),
    ]);
    let path = dir.join(FILE);
    let tmp = dir.join(format!("{FILE}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(json::to_string_pretty(&doc).as_bytes())?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, &path)?;
    // The rename itself is durable once the directory is synced.
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(name: &str) -> SavedMachine {
        let revision = SavedRevision {
            definition: r#"{"StartAt":"P","States":{"P":{"Type":"Pass","End":true}}}"#.into(),
            role_arn: "arn:aws:iam::123456789012:role/r".into(),
            updated_ms: 1_700_000_000_456,
            revision_id: "rev".into(),
            logging: Value::object_from([("level", Value::string("OFF"))]),
            tracing: Value::object_from([("enabled", Value::Bool(false))]),
        };
        SavedMachine {
            name: name.to_string(),
            kind: MachineType::Express,
            created_ms: 1_700_000_000_123,
            tags: vec![("team".into(), "iot".into())],
            latest: revision.clone(),
            versions: vec![SavedVersion {
                number: 1,
                revision,
                created_ms: 1_700_000_000_500,
                description: Some("first".into()),
            }],
            next_version: 2,
            aliases: vec![SavedAlias {
                name: "live".into(),
                description: None,
                routing: vec![(1, 100)],
                created_ms: 1_700_000_000_600,
                updated_ms: 1_700_000_000_700,
            }],
        }
    }

    #[test]
    fn saved_machines_read_back_whole_and_the_temporary_file_is_gone() {
        let dir = std::env::temp_dir().join(format!("stepstream-state-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(load(&dir).unwrap(), Vec::new());
        let saved = vec![machine("a"), machine("b")];
        save(&dir, &saved).unwrap();
        assert_eq!(load(&dir).unwrap(), saved);
        assert!(!dir.join(format!("{FILE}.tmp")).exists());
        save(&dir, &saved[1..]).unwrap();
        assert_eq!(load(&dir).unwrap(), saved[1..].to_vec());
        std::fs::write(dir.join(FILE), b"{not json").unwrap();
        let err = load(&dir).unwrap_err();
        assert!(err.contains("is not valid JSON"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
