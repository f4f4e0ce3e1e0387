//! Rules over the whole definition that single fields cannot check: every transition lands on
//! a state of its own scope, every state can be reached, some state ends the workflow, state
//! names are unique, and the Express-only restrictions. Only `validate` makes a `Validated`.

use std::collections::HashMap;

use super::definition::*;
use super::diagnostic::{Diagnostic, code};
use super::parse::Parsed;

/// A definition with no errors: the only input `plan::compile` accepts.
#[derive(Clone, Debug)]
pub struct Validated {
    definition: Definition,
    machine_type: MachineType,
    warnings: Vec<Diagnostic>,
}

impl Validated {
    pub fn definition(&self) -> &Definition {
        &self.definition
    }
    pub fn machine_type(&self) -> MachineType {
        self.machine_type
    }
    /// Problems that do not stop the definition from running.
    pub fn warnings(&self) -> &[Diagnostic] {
        &self.warnings
    }
}

/// Checks a parsed definition; `Err` holds every diagnostic (errors first as found).
pub fn validate(parsed: Parsed, machine_type: MachineType) -> Result<Validated, Vec<Diagnostic>> {
    let mut diags = parsed.diagnostics;
    if let Some(def) = &parsed.definition {
        let mut names: HashMap<&str, &str> = HashMap::new();
        check_machine(&def.machine, "", machine_type, &mut names, &mut diags);
    }
    let has_error = diags
        .iter()
        .any(|d| d.severity == super::diagnostic::Severity::Error);
    match parsed.definition {
        Some(definition) if !has_error => Ok(Validated {
            definition,
            machine_type,
            warnings: diags,
        }),
        _ => Err(diags),
    }
}

fn targets(state: &State) -> Vec<(String, &str)> {
    let mut out = Vec::new();
    if let Transition::Next(n) = &state.transition {
        out.push((format!("{}/Next", state.location), n.as_str()));
    }
    let catchers: &[Catcher] = match &state.kind {
        Kind::Task(t) => &t.catch,
        Kind::Parallel(p) => &p.catch,
        Kind::Map(m) => &m.catch,
        _ => &[],
    };
    for (i, c) in catchers.iter().enumerate() {
        out.push((
            format!("{}/Catch[{i}]/Next", state.location),
            c.next.as_str(),
        ));
    }
    if let Kind::Choice(c) = &state.kind {
        for (i, rule) in c.choices.iter().enumerate() {
            out.push((
                format!("{}/Choices[{i}]/Next", state.location),
                rule.next.as_str(),
            ));
        }
        if let Some(d) = &c.default {
            out.push((format!("{}/Default", state.location), d.as_str()));
        }
    }
    out
}

fn is_terminal(state: &State) -> bool {
    matches!(state.kind, Kind::Succeed | Kind::Fail(_)) || state.transition == Transition::End
}

fn check_machine<'d>(
    machine: &'d Machine,
    base: &str,
    machine_type: MachineType,
    names: &mut HashMap<&'d str, &'d str>,
    diags: &mut Vec<Diagnostic>,
) {
    let index: HashMap<&str, usize> = machine
        .states
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect();
    let start = index.get(machine.start_at.as_str()).copied();
    if start.is_none() {
        diags.push(Diagnostic::error(
            code::MISSING_TRANSITION_TARGET,
            format!("{base}/StartAt"),
            format!("Missing 'Next' target: {}", machine.start_at),
        ));
    }
    let mut edges: Vec<Vec<usize>> = vec![Vec::new(); machine.states.len()];
    for (i, s) in machine.states.iter().enumerate() {
        if let Some(first) = names.insert(&s.name, &s.location) {
            diags.push(Diagnostic::error(
                code::DUPLICATE_STATE_NAME,
                s.location.clone(),
                format!(
                    "State name '{}' is already used at {first}: names must be unique in the whole definition",
                    s.name
                ),
            ));
        }
        for (loc, target) in targets(s) {
            match index.get(target) {
                Some(&j) => edges[i].push(j),
                None => diags.push(Diagnostic::error(
                    code::MISSING_TRANSITION_TARGET,
                    loc,
                    format!("Missing 'Next' target: {target}"),
                )),
            }
        }
        if machine_type == MachineType::Express {
            check_express(s, diags);
        }
        match &s.kind {
            Kind::Parallel(p) => {
                for (b, branch) in p.branches.iter().enumerate() {
                    let bbase = format!("{}/Branches[{b}]", s.location);
                    check_machine(branch, &bbase, machine_type, names, diags);
                }
            }
            Kind::Map(m) => {
                let field = if m.legacy_iterator {
                    "Iterator"
                } else {
                    "ItemProcessor"
                };
                let pbase = format!("{}/{field}", s.location);
                check_machine(&m.processor, &pbase, machine_type, names, diags);
            }
            _ => {}
        }
    }
    if !machine.states.iter().any(is_terminal) {
        diags.push(Diagnostic::error(
            code::MISSING_END_STATE,
            "",
            "Workflow has no terminal state",
        ));
        return;
    }
    // AWS's rule (observed): a state is reachable when it is StartAt or some transition of
    // its scope names it, even from a state that is itself unreachable.
    let mut seen = vec![false; machine.states.len()];
    if let Some(start) = start {
        seen[start] = true;
    }
    for e in edges.iter().flatten() {
        seen[*e] = true;
    }
    for (i, s) in machine.states.iter().enumerate() {
        if !seen[i] {
            diags.push(Diagnostic::error(
                code::MISSING_TRANSITION_TARGET,
                s.location.clone(),
                format!("State \"{}\" is not reachable.", s.name),
            ));
        }
    }
}

/// Express workflows run at most five minutes and cannot wait for callbacks or jobs.
fn check_express(s: &State, diags: &mut Vec<Diagnostic>) {
    if let Kind::Task(t) = &s.kind {
        let loc = format!("{}/Resource", s.location);
        if t.resource.ends_with(".sync") || t.resource.ends_with(".sync:2") {
            diags.push(Diagnostic::error(
                code::SCHEMA_VALIDATION_FAILED,
                loc,
                "Express state machines do not support the '.sync' service integration pattern",
            ));
        } else if t.resource.ends_with(".waitForTaskToken") {
            diags.push(Diagnostic::error(
                code::SCHEMA_VALIDATION_FAILED,
                loc,
                "Express state machines do not support the '.waitForTaskToken' service integration pattern",
            ));
        } else if t.resource.contains(":activity:") {
            diags.push(Diagnostic::error(
                code::SCHEMA_VALIDATION_FAILED,
                loc,
                "Express state machines do not support activities",
            ));
        }
    }
}
