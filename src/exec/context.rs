//! The context object (`$$`): what an execution knows about itself, produced field by field on
//! demand and built whole only for `$$` paths the compiler could not resolve to a field.

use crate::json::{Object, Str, Value};
use crate::plan::{ContextField, ContextSource};
use crate::time::Timestamp;

/// Where ARNs in the context object say the execution runs.
#[derive(Clone, Debug)]
pub struct Identity {
    pub region: Str,
    pub account: Str,
    pub role_arn: Str,
}

impl Default for Identity {
    fn default() -> Identity {
        Identity {
            region: Str::new("us-east-1"),
            account: Str::new("123456789012"),
            role_arn: Str::new("arn:aws:iam::123456789012:role/stepstream"),
        }
    }
}

/// What an execution knows about itself.
#[derive(Clone, Debug)]
pub struct ExecInfo {
    pub name: Str,
    pub machine: Str,
    pub start_ms: i64,
    /// The original input, kept only when a path reads `$$.Execution.Input`.
    pub input: Option<Value>,
    pub identity: Identity,
    /// The execution's and the state machine's ARNs, when given at the start.
    pub arns: Option<std::sync::Arc<(Str, Str)>>,
    /// A context object given whole (TestState's `context`): every field is read from it,
    /// except the Map item of an iteration and the variables.
    pub given: Option<Value>,
}

impl ExecInfo {
    pub fn execution_arn(&self) -> String {
        if let Some(arns) = &self.arns {
            return arns.0.to_string();
        }
        format!(
            "arn:aws:states:{}:{}:execution:{}:{}",
            self.identity.region, self.identity.account, self.machine, self.name
        )
    }

    pub fn state_machine_arn(&self) -> String {
        if let Some(arns) = &self.arns {
            return arns.1.to_string();
        }
        format!(
            "arn:aws:states:{}:{}:stateMachine:{}",
            self.identity.region, self.identity.account, self.machine
        )
    }
}

/// The context object as seen from one state of one fiber.
pub struct Ctx<'a> {
    pub info: &'a ExecInfo,
    pub state: &'a str,
    pub entered_ms: i64,
    pub retry_count: u32,
    /// `$$.Map.Item`, while evaluating a Map's `ItemSelector`.
    pub item: Option<(u32, &'a Value)>,
    /// The workflow variables, seen from the fiber's frame.
    pub vars: &'a super::vars::Frames,
    pub frame: u32,
}

impl Ctx<'_> {
    fn execution(&self) -> Value {
        let i = self.info;
        Value::object_from([
            ("Id", Value::from(i.execution_arn())),
            ("Input", i.input.clone().unwrap_or_default()),
            ("Name", Value::String(i.name.clone())),
            ("RoleArn", Value::String(i.identity.role_arn.clone())),
            (
                "StartTime",
                Value::from(Timestamp::from_millis(i.start_ms).to_iso8601()),
            ),
            ("RedriveCount", Value::int(0)),
        ])
    }

    fn state_object(&self) -> Value {
        Value::object_from([
            (
                "EnteredTime",
                Value::from(Timestamp::from_millis(self.entered_ms).to_iso8601()),
            ),
            ("Name", Value::string(self.state)),
            ("RetryCount", Value::int(self.retry_count as i64)),
        ])
    }

    fn map_item(&self) -> Option<Value> {
        let (index, value) = self.item?;
        Some(Value::object_from([
            ("Index", Value::int(index as i64)),
            ("Value", value.clone()),
        ]))
    }
}

impl ContextSource for Ctx<'_> {
    fn field_ref(&self, f: ContextField) -> Option<Option<&Value>> {
        match f {
            ContextField::Variable(slot) => Some(self.vars.get(self.frame, slot)),
            ContextField::MapItemValue => self.item.map(|(_, v)| Some(v)),
            _ => None,
        }
    }

    fn field(&self, f: ContextField) -> Option<Value> {
        use ContextField::*;
        if let Some(given) = &self.info.given {
            let own = match f {
                Variable(_) => true,
                Map | MapItem | MapItemIndex | MapItemValue => self.item.is_some(),
                _ => false,
            };
            if !own {
                return f.path().iter().try_fold(given, |v, k| v.get(k)).cloned();
            }
        }
        Some(match f {
            Whole => {
                let mut o = Object::with_capacity(4);
                o.push_unique(Str::new("Execution"), self.execution());
                o.push_unique(
                    Str::new("StateMachine"),
                    self.field(StateMachine).unwrap_or_default(),
                );
                o.push_unique(Str::new("State"), self.state_object());
                if let Some(item) = self.map_item() {
                    o.push_unique(Str::new("Map"), Value::object_from([("Item", item)]));
                }
                Value::object(o)
            }
            Execution => self.execution(),
            ExecutionId => Value::from(self.info.execution_arn()),
            ExecutionInput => self.info.input.clone().unwrap_or_default(),
            ExecutionName => Value::String(self.info.name.clone()),
            ExecutionRoleArn => Value::String(self.info.identity.role_arn.clone()),
            ExecutionStartTime => {
                Value::from(Timestamp::from_millis(self.info.start_ms).to_iso8601())
            }
            ExecutionRedriveCount => Value::int(0),
            StateMachine => Value::object_from([
                ("Id", Value::from(self.info.state_machine_arn())),
                ("Name", Value::String(self.info.machine.clone())),
            ]),
            StateMachineId => Value::from(self.info.state_machine_arn()),
            StateMachineName => Value::String(self.info.machine.clone()),
            State => self.state_object(),
            StateName => Value::string(self.state),
            StateEnteredTime => Value::from(Timestamp::from_millis(self.entered_ms).to_iso8601()),
            StateRetryCount => Value::int(self.retry_count as i64),
            Map => Value::object_from([("Item", self.map_item()?)]),
            MapItem => self.map_item()?,
            MapItemIndex => Value::int(self.item?.0 as i64),
            MapItemValue => self.item?.1.clone(),
            Task | TaskToken => return None,
            Variable(slot) => self.vars.get(self.frame, slot)?.clone(),
        })
    }
}
