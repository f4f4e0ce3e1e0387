//! Versions and aliases: PublishStateMachineVersion (and `publish` on create and update),
//! ListStateMachineVersions, DeleteStateMachineVersion, and the alias actions. A version is
//! an immutable revision numbered from 1 per state machine (`...:stateMachine:NAME:3`); an
//! alias (`...:stateMachine:NAME:live`) routes executions to one version, or to two by
//! weights that add up to 100. Starting through either ARN runs that revision.

use super::{
    Alias, ApiError, Machine, Qualifier, Service, Version, invalid_arn, machine_does_not_exist,
    missing, obj, page_size, page_token, required_arn, resource_not_found, string, token, ts,
    validation,
};
use crate::json::Value;
use crate::stream::driver::now_ms;

/// Versions a state machine may have, as on AWS.
const MAX_VERSIONS: usize = 1000;

impl Machine {
    /// Publishes the latest revision as a version, or names the version that already holds
    /// it (publishing an unchanged machine twice gives one version); its ARN.
    pub(super) fn publish(&mut self, now: i64, description: Option<&str>) -> String {
        let n = self.publish_number(now, description);
        format!("{}:{n}", self.arn)
    }

    fn publish_number(&mut self, now: i64, description: Option<&str>) -> u32 {
        let latest = &self.revision.revision_id;
        if let Some((n, _)) = self
            .versions
            .iter()
            .find(|(_, v)| &v.revision.revision_id == latest)
        {
            return *n;
        }
        let n = self.next_version;
        self.next_version += 1;
        self.versions.insert(
            n,
            Version {
                revision: std::sync::Arc::clone(&self.revision),
                created_ms: now,
                description: description.map(str::to_string),
            },
        );
        n
    }
}

impl Service {
    pub(super) fn publish_version(&self, body: &Value) -> Result<Value, ApiError> {
        let arn = required_arn(body, "stateMachineArn")?;
        let expected = string(body, "revisionId", 0, 64)?;
        let description = string(body, "description", 0, 256)?;
        let name = self.machine_name_of(arn)?;
        let now = now_ms();
        let (version_arn, created) = self.mutate(
            name,
            || machine_does_not_exist(arn),
            |m| {
                if let Some(r) = expected
                    && r != m.revision.revision_id
                {
                    return Err(ApiError::new(
                        "ConflictException",
                        format!(
                            "Failed to publish the State Machine version for revision {r}. The current State Machine revision is {}.",
                            m.revision.revision_id
                        ),
                    ));
                }
                if m.versions.len() >= MAX_VERSIONS {
                    return Err(ApiError::new(
                        "ServiceQuotaExceededException",
                        format!(
                            "The state machine has {MAX_VERSIONS} versions, the most allowed; delete some with DeleteStateMachineVersion"
                        ),
                    ));
                }
                let n = m.publish_number(now, description);
                Ok((format!("{}:{n}", m.arn), m.versions[&n].created_ms))
            },
        )?;
        Ok(obj([
            ("creationDate", Some(ts(created))),
            ("stateMachineVersionArn", Some(Value::from(version_arn))),
        ]))
    }

    pub(super) fn list_versions(&self, body: &Value) -> Result<Value, ApiError> {
        let arn = required_arn(body, "stateMachineArn")?;
        let limit = page_size(body, 1000)?;
        let below = match body.get("nextToken") {
            None | Some(Value::Null) => u64::MAX,
            Some(_) => page_token(body, "ver")?,
        };
        let name = self.machine_name_of(arn)?;
        let store = self.lock();
        let m = store
            .machine(name)
            .ok_or_else(|| machine_does_not_exist(arn))?;
        let mut items = Vec::new();
        let mut next = None;
        // Newest first, as the service lists them.
        for (n, v) in m.versions.range(..=below.min(u32::MAX as u64) as u32).rev() {
            if items.len() == limit {
                next = Some(*n as u64);
                break;
            }
            items.push(obj([
                (
                    "stateMachineVersionArn",
                    Some(Value::from(format!("{}:{n}", m.arn))),
                ),
                ("creationDate", Some(ts(v.created_ms))),
            ]));
        }
        Ok(obj([
            ("stateMachineVersions", Some(Value::array(items))),
            ("nextToken", next.map(|n| token("ver", n))),
        ]))
    }

    pub(super) fn delete_version(&self, body: &Value) -> Result<Value, ApiError> {
        let arn = required_arn(body, "stateMachineVersionArn")?;
        let (name, Qualifier::Version(n)) = self.target_of(arn)? else {
            return Err(invalid_arn(&format!(
                "Resource type not valid in this context: not a version ARN ({arn})"
            )));
        };
        // Deleting a version that is not there succeeds, as deleting a machine does.
        let result = self.mutate(
            name,
            || machine_does_not_exist(arn),
            |m| {
                if let Some((alias, _)) = m
                    .aliases
                    .iter()
                    .find(|(_, a)| a.routing.iter().any(|(v, _)| *v == n))
                {
                    return Err(ApiError::new(
                        "ConflictException",
                        format!(
                            "Version to be deleted must not be referenced by an alias. Current list of aliases referencing this version: [{}:{alias}]",
                            m.arn
                        ),
                    ));
                }
                m.versions.remove(&n);
                Ok(())
            },
        );
        match result {
            Err(e) if e.code == "StateMachineDoesNotExist" => Ok(Value::empty_object()),
            other => other.map(|()| Value::empty_object()),
        }
    }

    pub(super) fn create_alias(&self, body: &Value) -> Result<Value, ApiError> {
        let name = string(body, "name", 1, 80)?.ok_or_else(|| missing("name"))?;
        let description = string(body, "description", 0, 256)?;
        let (machine, routing) = self.routing(body)?;
        let valid = name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
            && !name.bytes().all(|b| b.is_ascii_digit());
        if !valid {
            return Err(ApiError::new(
                "InvalidName",
                format!(
                    "Invalid Name: '{name}' (an alias name has letters, digits, '_', '-' and '.', and not only digits)"
                ),
            ));
        }
        let now = now_ms();
        let (alias_arn, created) = self.mutate(
            &machine,
            || resource_not_found(&machine),
            |m| {
                check_versions(m, &routing)?;
                let alias_arn = format!("{}:{name}", m.arn);
                if let Some(a) = m.aliases.get(name) {
                    // The same alias again is idempotent; a different one conflicts.
                    if a.routing == routing && a.description.as_deref() == description {
                        return Ok((alias_arn, a.created_ms));
                    }
                    return Err(ApiError::new(
                        "ConflictException",
                        format!(
                            "Alias already exists with a different configuration: '{alias_arn}'"
                        ),
                    ));
                }
                m.aliases.insert(
                    name.to_string(),
                    Alias {
                        description: description.map(str::to_string),
                        routing,
                        created_ms: now,
                        updated_ms: now,
                    },
                );
                Ok((alias_arn, now))
            },
        )?;
        Ok(obj([
            ("stateMachineAliasArn", Some(Value::from(alias_arn))),
            ("creationDate", Some(ts(created))),
        ]))
    }

    /// The alias an ARN names: (machine name, alias name).
    fn alias_of<'a>(&self, arn: &'a str) -> Result<(&'a str, &'a str), ApiError> {
        match self.target_of(arn)? {
            (machine, Qualifier::Alias(alias)) => Ok((machine, alias)),
            _ => Err(invalid_arn(&format!(
                "Resource type not valid in this context: not an alias ARN ({arn})"
            ))),
        }
    }

    pub(super) fn describe_alias(&self, body: &Value) -> Result<Value, ApiError> {
        let arn = required_arn(body, "stateMachineAliasArn")?;
        let (machine, alias) = self.alias_of(arn)?;
        let store = self.lock();
        let m = store
            .machine(machine)
            .ok_or_else(|| resource_not_found(arn))?;
        let a = m
            .aliases
            .get(alias)
            .ok_or_else(|| resource_not_found(arn))?;
        Ok(obj([
            ("stateMachineAliasArn", Some(Value::from(arn))),
            ("name", Some(Value::from(alias))),
            ("description", a.description.clone().map(Value::from)),
            ("routingConfiguration", Some(routing_json(m, &a.routing))),
            ("creationDate", Some(ts(a.created_ms))),
            ("updateDate", Some(ts(a.updated_ms))),
        ]))
    }

    pub(super) fn update_alias(&self, body: &Value) -> Result<Value, ApiError> {
        let arn = required_arn(body, "stateMachineAliasArn")?;
        let (machine, alias) = self.alias_of(arn)?;
        let description = string(body, "description", 0, 256)?;
        let routing = match body.get("routingConfiguration") {
            None => None,
            Some(_) => {
                let (of, routing) = self.routing(body)?;
                if of != machine {
                    return Err(validation(
                        "routingConfiguration",
                        "the versions must belong to the alias's state machine",
                    ));
                }
                Some(routing)
            }
        };
        if description.is_none() && routing.is_none() {
            return Err(ApiError::new(
                "ValidationException",
                "Either the description or the routingConfiguration must be specified",
            ));
        }
        let now = now_ms();
        self.mutate(
            machine,
            || resource_not_found(arn),
            |m| {
                if let Some(r) = &routing {
                    check_versions(m, r)?;
                }
                let a = m
                    .aliases
                    .get_mut(alias)
                    .ok_or_else(|| resource_not_found(arn))?;
                if let Some(d) = description {
                    a.description = Some(d.to_string());
                }
                if let Some(r) = routing {
                    a.routing = r;
                }
                a.updated_ms = now;
                Ok(())
            },
        )?;
        Ok(obj([("updateDate", Some(ts(now)))]))
    }

    pub(super) fn delete_alias(&self, body: &Value) -> Result<Value, ApiError> {
        let arn = required_arn(body, "stateMachineAliasArn")?;
        let (machine, alias) = self.alias_of(arn)?;
        self.mutate(
            machine,
            || resource_not_found(arn),
            |m| {
                m.aliases
                    .remove(alias)
                    .map(drop)
                    .ok_or_else(|| resource_not_found(arn))
            },
        )?;
        Ok(Value::empty_object())
    }

    pub(super) fn list_aliases(&self, body: &Value) -> Result<Value, ApiError> {
        let arn = required_arn(body, "stateMachineArn")?;
        let limit = page_size(body, 1000)?;
        let skip = page_token(body, "alias")? as usize;
        let name = self.machine_name_of(arn)?;
        let store = self.lock();
        let m = store
            .machine(name)
            .ok_or_else(|| machine_does_not_exist(arn))?;
        let items: Vec<Value> = m
            .aliases
            .iter()
            .skip(skip)
            .take(limit)
            .map(|(alias, a)| {
                obj([
                    (
                        "stateMachineAliasArn",
                        Some(Value::from(format!("{}:{alias}", m.arn))),
                    ),
                    ("creationDate", Some(ts(a.created_ms))),
                ])
            })
            .collect();
        let next =
            (skip + items.len() < m.aliases.len()).then(|| token("alias", (skip + limit) as u64));
        Ok(obj([
            ("stateMachineAliases", Some(Value::array(items))),
            ("nextToken", next),
        ]))
    }

    /// An alias request's `routingConfiguration`: the machine its versions belong to and
    /// (version, weight) pairs, checked for shape (one or two entries, one machine,
    /// distinct versions, weights adding up to 100).
    fn routing(&self, body: &Value) -> Result<(String, Vec<(u32, u32)>), ApiError> {
        let field = "routingConfiguration";
        let items = match body.get(field) {
            Some(Value::Array(a)) => a.as_slice(),
            Some(_) => return Err(validation(field, "Member must be a list")),
            None => return Err(missing(field)),
        };
        if items.is_empty() || items.len() > 2 {
            return Err(validation(
                field,
                "Member must have length less than or equal to 2 and greater than or equal to 1",
            ));
        }
        let mut machine: Option<String> = None;
        let mut routing = Vec::new();
        for item in items {
            let arn = item
                .get("stateMachineVersionArn")
                .and_then(Value::as_str)
                .ok_or_else(|| missing("routingConfiguration.member.stateMachineVersionArn"))?;
            let weight = item
                .get("weight")
                .and_then(Value::as_i64)
                .filter(|w| (0..=100).contains(w))
                .ok_or_else(|| {
                    validation(
                        "routingConfiguration.member.weight",
                        "Member must have value between 0 and 100",
                    )
                })?;
            let (name, Qualifier::Version(n)) = self.target_of(arn)? else {
                return Err(invalid_arn(&format!(
                    "Resource type not valid in this context: routing needs version ARNs ({arn})"
                )));
            };
            match &machine {
                Some(m) if m != name => {
                    return Err(validation(
                        field,
                        "all versions must belong to the same state machine",
                    ));
                }
                _ => machine = Some(name.to_string()),
            }
            if routing.iter().any(|(v, _)| *v == n) {
                return Err(validation(field, "a version may appear once"));
            }
            routing.push((n, weight as u32));
        }
        if routing.iter().map(|(_, w)| w).sum::<u32>() != 100 {
            return Err(validation(field, "the weights must add up to 100"));
        }
        Ok((machine.unwrap_or_default(), routing))
    }
}

/// Every routed version exists.
fn check_versions(m: &Machine, routing: &[(u32, u32)]) -> Result<(), ApiError> {
    for (n, _) in routing {
        if !m.versions.contains_key(n) {
            return Err(resource_not_found(&format!("{}:{n}", m.arn)));
        }
    }
    Ok(())
}

fn routing_json(m: &Machine, routing: &[(u32, u32)]) -> Value {
    Value::array(
        routing
            .iter()
            .map(|(n, w)| {
                Value::object_from([
                    (
                        "stateMachineVersionArn",
                        Value::from(format!("{}:{n}", m.arn)),
                    ),
                    ("weight", Value::int(*w as i64)),
                ])
            })
            .collect(),
    )
}
