//! The API's state directory (`serve --state-dir DIR`): the state machines, their settings and
//! tags, kept in `DIR/state-machines.json` so they survive a restart. Every change rewrites
//! the file whole through a temporary file that is synced and renamed over it, so a crash
//! leaves the old file or the new one, never half of either. Executions are not kept.

use std::io::Write;
use std::path::Path;

use crate::asl::MachineType;
use crate::json::{self, Value};

const FILE: &str = "state-machines.json";

/// One state machine as saved.
#[derive(Clone, Debug, PartialEq)]
pub struct SavedMachine {
    pub name: String,
    pub kind: MachineType,
    pub definition: String,
    pub role_arn: String,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub revision_id: Option<String>,
    pub logging: Value,
    pub tracing: Value,
    pub tags: Vec<(String, String)>,
}

fn to_json(m: &SavedMachine) -> Value {
    let mut pairs = vec![
        ("name", Value::from(m.name.as_str())),
        (
            "type",
            Value::string(match m.kind {
                MachineType::Standard => "STANDARD",
                MachineType::Express => "EXPRESS",
            }),
        ),
        ("definition", Value::from(m.definition.as_str())),
        ("roleArn", Value::from(m.role_arn.as_str())),
        ("creationDateMs", Value::int(m.created_ms)),
        ("updateDateMs", Value::int(m.updated_ms)),
        ("loggingConfiguration", m.logging.clone()),
        ("tracingConfiguration", m.tracing.clone()),
        (
            "tags",
            Value::array(
                m.tags
                    .iter()
                    .map(|(k, v)| {
                        Value::object_from([
                            ("key", Value::from(k.as_str())),
                            ("value", Value::from(v.as_str())),
                        ])
                    })
                    .collect(),
            ),
        ),
    ];
    if let Some(r) = &m.revision_id {
        pairs.push(("revisionId", Value::from(r.as_str())));
    }
    Value::object_from(pairs)
}

fn from_json(v: &Value, at: usize) -> Result<SavedMachine, String> {
    let text = |field: &str| {
        v.get(field)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| format!("stateMachines[{at}].{field}: missing or not a string"))
    };
    let int = |field: &str| {
        v.get(field)
            .and_then(Value::as_i64)
            .ok_or_else(|| format!("stateMachines[{at}].{field}: missing or not an integer"))
    };
    let kind = match text("type")?.as_str() {
        "STANDARD" => MachineType::Standard,
        "EXPRESS" => MachineType::Express,
        other => {
            return Err(format!(
                "stateMachines[{at}].type: '{other}' is not STANDARD or EXPRESS"
            ));
        }
    };
    let mut tags = Vec::new();
    if let Some(list) = v.get("tags").and_then(Value::as_array) {
        for t in list.as_slice() {
            let key = t.get("key").and_then(Value::as_str);
            let value = t.get("value").and_then(Value::as_str);
            match (key, value) {
                (Some(k), Some(v)) => tags.push((k.to_string(), v.to_string())),
                _ => {
                    return Err(format!(
                        "stateMachines[{at}].tags: each needs a key and a value"
                    ));
                }
            }
        }
    }
    Ok(SavedMachine {
        name: text("name")?,
        kind,
        definition: text("definition")?,
        role_arn: text("roleArn")?,
        created_ms: int("creationDateMs")?,
        updated_ms: int("updateDateMs")?,
        revision_id: v
            .get("revisionId")
            .and_then(Value::as_str)
            .map(str::to_string),
        logging: v.get("loggingConfiguration").cloned().unwrap_or_default(),
        tracing: v.get("tracingConfiguration").cloned().unwrap_or_default(),
        tags,
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
        SavedMachine {
            name: name.to_string(),
            kind: MachineType::Express,
            definition: r#"{"StartAt":"P","States":{"P":{"Type":"Pass","End":true}}}"#.into(),
            role_arn: "arn:aws:iam::123456789012:role/r".into(),
            created_ms: 1_700_000_000_123,
            updated_ms: 1_700_000_000_456,
            revision_id: Some("rev".into()),
            logging: Value::object_from([("level", Value::string("OFF"))]),
            tracing: Value::object_from([("enabled", Value::Bool(false))]),
            tags: vec![("team".into(), "iot".into())],
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
