//! `Accessor`: a JSONPath resolved at compile time into the cheapest way to read it.
//!
//! `$.a.b` becomes a list of member names walked without any parsing or allocation;
//! `$$.Map.Item.Value.x` becomes "the current item, then `$.x`", so the context object is
//! never built for the common context paths. Anything else (wildcards, filters, `..`) keeps
//! the general JSONPath evaluator. On a miss the general evaluator runs again to produce
//! Jayway's exact error text: the error path may be slow, the hit path may not.

use crate::json::{Str, Value};
use crate::jsonpath::{Path, PathError, Root, Segment, Selected};

/// A field of the context object that the executor can produce directly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContextField {
    /// The whole context object (`$$`).
    Whole,
    Execution,
    ExecutionId,
    ExecutionInput,
    ExecutionName,
    ExecutionRoleArn,
    ExecutionStartTime,
    ExecutionRedriveCount,
    StateMachine,
    StateMachineId,
    StateMachineName,
    State,
    StateName,
    StateEnteredTime,
    StateRetryCount,
    Map,
    MapItem,
    MapItemIndex,
    MapItemValue,
    Task,
    TaskToken,
    /// A workflow variable (`$name`), by the slot the compiler gave its name.
    Variable(u16),
}

/// Every field of the context object the executor produces, with where it sits: the names
/// from `$$` down. Both directions (a path's field, a field's path) are read off this table.
const FIELDS: [(ContextField, &[&str]); 20] = {
    use ContextField::*;
    [
        (Execution, &["Execution"]),
        (ExecutionId, &["Execution", "Id"]),
        (ExecutionInput, &["Execution", "Input"]),
        (ExecutionName, &["Execution", "Name"]),
        (ExecutionRoleArn, &["Execution", "RoleArn"]),
        (ExecutionStartTime, &["Execution", "StartTime"]),
        (ExecutionRedriveCount, &["Execution", "RedriveCount"]),
        (StateMachine, &["StateMachine"]),
        (StateMachineId, &["StateMachine", "Id"]),
        (StateMachineName, &["StateMachine", "Name"]),
        (State, &["State"]),
        (StateName, &["State", "Name"]),
        (StateEnteredTime, &["State", "EnteredTime"]),
        (StateRetryCount, &["State", "RetryCount"]),
        (Map, &["Map"]),
        (MapItem, &["Map", "Item"]),
        (MapItemIndex, &["Map", "Item", "Index"]),
        (MapItemValue, &["Map", "Item", "Value"]),
        (Task, &["Task"]),
        (TaskToken, &["Task", "Token"]),
    ]
};

impl ContextField {
    /// The field `name` one level below this one (`$$` → `Execution` → `Id`).
    fn child(self, name: &str) -> Option<ContextField> {
        if matches!(self, ContextField::Variable(_)) {
            return None;
        }
        let base = self.path();
        FIELDS
            .iter()
            .find(|(_, p)| {
                p.len() == base.len() + 1 && p.starts_with(base) && p[base.len()] == name
            })
            .map(|(f, _)| *f)
    }

    /// Where this field sits in the whole context object: the names from `$$` down (empty
    /// for `$$` itself and for variables, which are not in it).
    pub fn path(self) -> &'static [&'static str] {
        FIELDS
            .iter()
            .find(|(f, _)| *f == self)
            .map_or(&[], |(_, p)| p)
    }

    /// Whether reading this field needs the execution's original input kept around.
    pub fn needs_execution_input(self) -> bool {
        matches!(
            self,
            ContextField::Whole | ContextField::Execution | ContextField::ExecutionInput
        )
    }
}

/// Gives the executor's view of the context object.
pub trait ContextSource {
    /// The value of a context field; `None` when it does not exist here (`$$.Map` outside a
    /// Map iteration, `$$.Task.Token` without a callback).
    fn field(&self, f: ContextField) -> Option<Value>;

    /// The field lent where it lies, for those the source holds as values (a variable, the
    /// Map item's value): `Some(None)` when it does not exist, `None` when only `field`
    /// can give it.
    fn field_ref(&self, _f: ContextField) -> Option<Option<&Value>> {
        None
    }
}

/// How a path over the state's data is read.
#[derive(Clone, Debug)]
enum DataPath {
    Root,
    Members(Box<[Str]>),
    General,
}

/// A compiled path.
#[derive(Clone, Debug)]
pub struct Accessor {
    path: Path,
    data: DataPath,
    /// For `$$` paths: the deepest known field and the rest of the path below it.
    context: Option<(ContextField, Option<Box<Accessor>>)>,
}

fn data_path(p: &Path) -> DataPath {
    if p.is_root() {
        DataPath::Root
    } else if let Some(members) = p.member_chain() {
        DataPath::Members(members.into_boxed_slice())
    } else {
        DataPath::General
    }
}

impl Accessor {
    /// A compiled path; a `$name` path reads the slot set with `Path::set_variable_slot`.
    pub fn new(path: Path) -> Accessor {
        let data = data_path(&path);
        let context = match path.root() {
            Root::Data => None,
            Root::Context => Some(split_context(&path)),
            Root::Variable => {
                let id = path.variable_slot().unwrap_or(u16::MAX);
                let rest = (!path.is_root() || path.function().is_some()).then(|| {
                    Box::new(Accessor::new(Path::build(
                        path.text(),
                        Root::Data,
                        path.segments().to_vec(),
                        path.function(),
                    )))
                });
                Some((ContextField::Variable(id), rest))
            }
        };
        Accessor {
            path,
            data,
            context,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn text(&self) -> &str {
        self.path.text()
    }

    /// Whether this `$$` path is a context field and nothing below it.
    pub fn is_field_only(&self) -> bool {
        matches!(&self.context, Some((_, None)))
    }

    /// The context field this accessor starts from, if it reads `$$`.
    pub fn context_field(&self) -> Option<ContextField> {
        self.context.as_ref().map(|(f, _)| *f)
    }

    /// Reads the path: `$` paths from `data`, `$$` paths from `ctx`.
    #[inline]
    pub fn select<'v>(
        &self,
        data: &'v Value,
        ctx: &dyn ContextSource,
    ) -> Result<Selected<'v>, PathError> {
        match &self.context {
            None => self.select_data(data),
            Some((field, rest)) => {
                let Some(base) = ctx.field(*field) else {
                    return Err(self.context_miss(ctx));
                };
                match rest {
                    None => Ok(Selected::Owned(base)),
                    Some(rest) => match rest.select_data(&base) {
                        Ok(s) => Ok(Selected::Owned(s.into_owned())),
                        Err(_) => Err(self.context_miss(ctx)),
                    },
                }
            }
        }
    }

    #[inline]
    fn select_data<'v>(&self, data: &'v Value) -> Result<Selected<'v>, PathError> {
        match &self.data {
            DataPath::Root => Ok(Selected::Borrowed(data)),
            DataPath::Members(ms) => {
                let mut cur = data;
                for (m, hint) in ms.iter().zip(self.path.hints()) {
                    let found = match cur {
                        Value::Object(o) => hint.get(o, m),
                        _ => None,
                    };
                    match found {
                        Some(v) => cur = v,
                        None => return self.path.select(data),
                    }
                }
                Ok(Selected::Borrowed(cur))
            }
            DataPath::General => self.path.select(data),
        }
    }

    /// The exact error for a `$$` path that selects nothing, from the whole context object.
    #[cold]
    fn context_miss(&self, ctx: &dyn ContextSource) -> PathError {
        if let Some((ContextField::Variable(id), rest)) = &self.context {
            return match (ctx.field(ContextField::Variable(*id)), rest) {
                (Some(v), Some(rest)) => {
                    rest.path.select(&v).err().unwrap_or(PathError::NoResults {
                        path: self.path.normalized(),
                    })
                }
                _ => PathError::Undefined {
                    name: self.path.variable().unwrap_or_default().to_string(),
                },
            };
        }
        let whole = ctx.field(ContextField::Whole).unwrap_or_default();
        match self.path.select(&whole) {
            Err(e) => e,
            Ok(_) => PathError::NoResults {
                path: self.path.normalized(),
            },
        }
    }
}

fn split_context(path: &Path) -> (ContextField, Option<Box<Accessor>>) {
    let mut field = ContextField::Whole;
    let mut used = 0;
    if path.function().is_none() {
        for seg in path.segments() {
            match seg {
                Segment::Member(m) => match field.child(m) {
                    Some(f) => {
                        field = f;
                        used += 1;
                    }
                    None => break,
                },
                _ => break,
            }
        }
    }
    if used == 0 {
        // `$$` itself, or something the executor does not know field by field: evaluate the
        // whole path over the full context object.
        return (
            ContextField::Whole,
            (!path.is_root()).then(|| {
                Box::new(Accessor::new(Path::from_segments(
                    path.text(),
                    Root::Data,
                    path.segments().to_vec(),
                )))
            }),
        );
    }
    let rest: Vec<Segment> = path.segments()[used..].to_vec();
    if rest.is_empty() {
        return (field, None);
    }
    let rest_path = Path::from_segments(path.text(), Root::Data, rest);
    (field, Some(Box::new(Accessor::new(rest_path))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::{parse, to_string};

    struct Ctx;
    impl ContextSource for Ctx {
        fn field(&self, f: ContextField) -> Option<Value> {
            match f {
                ContextField::MapItemValue => Some(parse(br#"{"x":[1,2]}"#).unwrap()),
                ContextField::MapItemIndex => Some(Value::int(3)),
                ContextField::Whole => {
                    Some(parse(br#"{"Map":{"Item":{"Index":3,"Value":{"x":[1,2]}}}}"#).unwrap())
                }
                _ => None,
            }
        }
    }

    fn sel(path: &str, doc: &str) -> Result<String, String> {
        let d = parse(doc.as_bytes()).unwrap();
        Accessor::new(Path::parse(path).unwrap())
            .select(&d, &Ctx)
            .map(|s| to_string(s.value()))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn member_chains_read_directly_and_miss_with_jayway_errors() {
        assert_eq!(sel("$.a.b", r#"{"a":{"b":5}}"#).unwrap(), "5");
        assert_eq!(
            sel("$.a.c", r#"{"a":{"b":5}}"#).unwrap_err(),
            "No results for path: $['a']['c']"
        );
        assert_eq!(sel("$", "[1]").unwrap(), "[1]");
        assert_eq!(sel("$.a[*]", r#"{"a":[1,2]}"#).unwrap(), "[1,2]");
    }

    #[test]
    fn every_field_path_walks_back_to_the_same_field() {
        // Each step of every path is itself a field, so `$$.Map.Item.Index` resolves step by
        // step to the field that names it.
        for (f, path) in FIELDS {
            let walked = path
                .iter()
                .try_fold(ContextField::Whole, |at, name| at.child(name));
            assert_eq!(walked, Some(f), "{path:?}");
            assert_eq!(f.path(), path);
        }
        assert!(ContextField::Whole.path().is_empty());
        assert_eq!(ContextField::Whole.child("Nope"), None);
        assert_eq!(ContextField::Variable(0).child("Execution"), None);
    }

    #[test]
    fn context_paths_go_straight_to_their_field() {
        assert_eq!(sel("$$.Map.Item.Value.x[1]", "{}").unwrap(), "2");
        assert_eq!(sel("$$.Map.Item.Index", "{}").unwrap(), "3");
        assert_eq!(
            sel("$$.Task.Token", "{}").unwrap_err(),
            "Missing property in path $['Task']"
        );
        assert!(sel("$$.Map.Item.Value.nope", "{}").is_err());
        assert_eq!(
            Accessor::new(Path::parse("$$.Execution.Input.a").unwrap()).context_field(),
            Some(ContextField::ExecutionInput)
        );
    }
}
