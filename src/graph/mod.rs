//! The drawing of a state machine (`stepstream graph`, and later the workflow page): the graph
//! model built from a definition's JSON (states, their nested machines, labelled edges), which
//! [`layout`] places, [`svg`] draws and [`dot`] writes as Graphviz text.
//!
//! The model is read from the JSON rather than from `asl::Definition` because a drawing needs
//! what the author wrote (the state's `Type`, the rule as written, the JSON path of each state),
//! not the compiled meaning. Callers validate first (`asl::load`); what is built here only
//! refuses what it cannot draw (a missing `StartAt`, a `Next` naming no state).

mod dot;
mod label;
pub mod layout;
mod svg;

use std::collections::HashMap;
use std::fmt;

use crate::json::{Object, Value};

pub use dot::dot;
pub use layout::{Layout, Rect, Seg, layout};
/// Text for XML and HTML: markup characters as entities (the workflow page uses it too).
pub(crate) use svg::esc as escape_markup;
pub use svg::{SvgOptions, page_drawing, svg, svg_fragment, svg_with};

/// What an edge means, which is also its CSS class (`e-next`, ...) in the SVG.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EdgeKind {
    /// From a machine's start marker to its `StartAt`.
    Start,
    /// A state's `Next`.
    Next,
    /// One rule of a Choice state, labelled with its condition.
    Choice,
    /// A Choice state's `Default`.
    Default,
    /// A Catcher, labelled with its `ErrorEquals`.
    Catch,
    /// From a terminal state (`End`, Succeed, Fail) to its machine's end marker.
    End,
}

impl EdgeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EdgeKind::Start => "start",
            EdgeKind::Next => "next",
            EdgeKind::Choice => "choice",
            EdgeKind::Default => "default",
            EdgeKind::Catch => "catch",
            EdgeKind::End => "end",
        }
    }
}

/// One end of an edge: a state (index into [`Graph::states`]) or the start or end marker of a
/// machine (index into [`Graph::machines`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Start(usize),
    State(usize),
    End(usize),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Edge {
    pub from: Endpoint,
    pub to: Endpoint,
    pub kind: EdgeKind,
    /// The short label drawn on the edge (at most [`LABEL_MAX`] characters).
    pub label: Option<String>,
    /// The whole text when `label` had to be shortened (drawn as a tooltip).
    pub full_label: Option<String>,
}

/// One state of the definition, at any depth.
#[derive(Clone, Debug)]
pub struct State {
    pub name: String,
    /// The `Type` as written: `Task`, `Choice`, `Map`, ...
    pub kind: String,
    /// Its JSON pointer in the definition, as diagnostics write it: `/States/Fetch`,
    /// `/States/Fan/Branches[0]/States/Left`.
    pub path: String,
    /// The machine it belongs to.
    pub machine: usize,
    /// Whether it is its machine's `StartAt`.
    pub start: bool,
    /// Whether an execution can end here (`End: true`, Succeed, Fail).
    pub end: bool,
    /// The machines nested in it: one for a Map, one per branch for a Parallel.
    pub machines: Vec<usize>,
}

impl State {
    /// Map and Parallel states are drawn as boxes around their nested machines.
    pub fn is_compound(&self) -> bool {
        !self.machines.is_empty()
    }
}

/// A machine (`StartAt` + `States`): the definition itself, a Map's `ItemProcessor` (or
/// `Iterator`), or one branch of a Parallel.
#[derive(Clone, Debug)]
pub struct Machine {
    /// JSON pointer of the object holding `StartAt` and `States`: `` at the top,
    /// `/States/Fan/Branches[1]`, `/States/Each/ItemProcessor`.
    pub path: String,
    /// The Map or Parallel state it is nested in.
    pub parent: Option<usize>,
    /// Its `StartAt` state.
    pub start_at: usize,
    /// Its states, in definition order.
    pub states: Vec<usize>,
}

/// A definition as a graph. States are numbered in definition order, each nested state right
/// after the state that holds it (so a parent always comes before its children); that index
/// is the stable `N` of `id="state-N"` in the SVG.
#[derive(Clone, Debug)]
pub struct Graph {
    pub states: Vec<State>,
    /// `machines[0]` is the definition itself.
    pub machines: Vec<Machine>,
    /// From the top machine down: a machine's start edge, then state by state the edges of
    /// the machines nested in it and its own (Choice rules, Default, Next, Catchers, end).
    pub edges: Vec<Edge>,
}

/// Why a definition cannot be drawn: a JSON pointer and what is wrong there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub location: String,
    pub message: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = if self.location.is_empty() {
            "/"
        } else {
            &self.location
        };
        write!(f, "{} at {at}", self.message)
    }
}

impl std::error::Error for Error {}

/// Edge labels longer than this many characters are cut, ending with `…`.
pub const LABEL_MAX: usize = 40;

impl Graph {
    /// The graph of a definition's JSON.
    pub fn from_definition(definition: &Value) -> Result<Graph, Error> {
        let mut b = Builder {
            g: Graph {
                states: Vec::new(),
                machines: Vec::new(),
                edges: Vec::new(),
            },
            names: HashMap::new(),
            bodies: Vec::new(),
        };
        let root = object(definition, "")?;
        b.machine(root, "", None)?;
        b.edges(0)?;
        Ok(b.g)
    }

    /// Parses definition text and builds its graph.
    pub fn from_json(text: &[u8]) -> Result<Graph, Error> {
        let v = crate::json::parse(text).map_err(|e| Error {
            location: String::new(),
            message: format!("not valid JSON: {e}"),
        })?;
        Graph::from_definition(&v)
    }

    /// The index of the state with this name (names are unique in a whole definition).
    pub fn state(&self, name: &str) -> Option<usize> {
        self.states.iter().position(|s| s.name == name)
    }

    /// The machine an edge is drawn in (both its ends belong to it).
    pub fn edge_machine(&self, e: &Edge) -> usize {
        match e.from {
            Endpoint::Start(m) | Endpoint::End(m) => m,
            Endpoint::State(s) => self.states[s].machine,
        }
    }

    /// The name of an endpoint as the SVG's `data-from`/`data-to` write it.
    pub fn endpoint_name(&self, p: Endpoint) -> &str {
        match p {
            Endpoint::Start(_) => "(start)",
            Endpoint::End(_) => "(end)",
            Endpoint::State(s) => &self.states[s].name,
        }
    }
}

struct Builder<'a> {
    g: Graph,
    /// Every state name seen so far, with its path.
    names: HashMap<String, String>,
    /// The JSON of each state.
    bodies: Vec<&'a Object>,
}

fn object<'a>(v: &'a Value, location: &str) -> Result<&'a Object, Error> {
    v.as_object().ok_or_else(|| Error {
        location: location.to_string(),
        message: format!("expected a JSON object, found {}", v.type_name()),
    })
}

fn field<'a>(o: &'a Object, base: &str, name: &str) -> Result<&'a Value, Error> {
    o.get(name).ok_or_else(|| Error {
        location: base.to_string(),
        message: format!("'{name}' is missing"),
    })
}

fn string<'a>(o: &'a Object, base: &str, name: &str) -> Result<&'a str, Error> {
    field(o, base, name)?.as_str().ok_or_else(|| Error {
        location: format!("{base}/{name}"),
        message: format!("'{name}' must be a string"),
    })
}

impl<'a> Builder<'a> {
    /// Adds the machine held by `o` (at `base`), its states and, recursively, the machines
    /// nested in them. Returns its index.
    fn machine(
        &mut self,
        o: &'a Object,
        base: &str,
        parent: Option<usize>,
    ) -> Result<usize, Error> {
        let m = self.g.machines.len();
        let start_name = string(o, base, "StartAt")?;
        let states_loc = format!("{base}/States");
        let states = object(field(o, base, "States")?, &states_loc)?;
        if states.is_empty() {
            return Err(Error {
                location: states_loc,
                message: "a machine needs at least one state".into(),
            });
        }
        self.g.machines.push(Machine {
            path: base.to_string(),
            parent,
            start_at: 0,
            states: Vec::new(),
        });
        for (name, body) in states.iter() {
            let path = format!("{states_loc}/{name}");
            if let Some(first) = self.names.insert(name.to_string(), path.clone()) {
                return Err(Error {
                    location: path,
                    message: format!(
                        "state name '{name}' is already used at {first}: names must be unique in the whole definition"
                    ),
                });
            }
            let body = object(body, &path)?;
            let kind = string(body, &path, "Type")?;
            let i = self.g.states.len();
            let end = matches!(kind, "Succeed" | "Fail")
                || body.get("End").and_then(Value::as_bool) == Some(true);
            self.g.states.push(State {
                name: name.to_string(),
                kind: kind.to_string(),
                path: path.clone(),
                machine: m,
                start: &**name == start_name,
                end,
                machines: Vec::new(),
            });
            self.g.machines[m].states.push(i);
            self.bodies.push(body);
            let nested = match kind {
                "Map" => {
                    let (key, inner) = match (body.get("ItemProcessor"), body.get("Iterator")) {
                        (Some(p), _) => ("ItemProcessor", p),
                        (None, Some(p)) => ("Iterator", p),
                        (None, None) => {
                            return Err(Error {
                                location: path,
                                message: "a Map needs 'ItemProcessor' (or 'Iterator')".into(),
                            });
                        }
                    };
                    let loc = format!("{path}/{key}");
                    vec![self.machine(object(inner, &loc)?, &loc, Some(i))?]
                }
                "Parallel" => {
                    let branches = field(body, &path, "Branches")?;
                    let branches = branches.as_array().ok_or_else(|| Error {
                        location: format!("{path}/Branches"),
                        message: "'Branches' must be an array".into(),
                    })?;
                    let mut ms = Vec::with_capacity(branches.len());
                    for (b, branch) in branches.iter().enumerate() {
                        let loc = format!("{path}/Branches[{b}]");
                        ms.push(self.machine(object(branch, &loc)?, &loc, Some(i))?);
                    }
                    ms
                }
                _ => Vec::new(),
            };
            self.g.states[i].machines = nested;
        }
        let start_at = self.g.machines[m]
            .states
            .iter()
            .copied()
            .find(|&i| self.g.states[i].start)
            .ok_or_else(|| Error {
                location: format!("{base}/StartAt"),
                message: format!(
                    "StartAt names '{start_name}', which is not a state of this machine"
                ),
            })?;
        self.g.machines[m].start_at = start_at;
        Ok(m)
    }

    /// The edges of machine `m`: its start edge, then state by state the edges of the
    /// machines nested in it and its own.
    fn edges(&mut self, m: usize) -> Result<(), Error> {
        let start_at = self.g.machines[m].start_at;
        self.edge(
            Endpoint::Start(m),
            Endpoint::State(start_at),
            EdgeKind::Start,
            None,
        );
        let states = self.g.machines[m].states.clone();
        let local: HashMap<String, usize> = states
            .iter()
            .map(|&i| (self.g.states[i].name.clone(), i))
            .collect();
        for i in states {
            for nested in self.g.states[i].machines.clone() {
                self.edges(nested)?;
            }
            let path = self.g.states[i].path.clone();
            self.state_edges(m, i, self.bodies[i], &path, &local)?;
        }
        Ok(())
    }

    fn edge(&mut self, from: Endpoint, to: Endpoint, kind: EdgeKind, label: Option<String>) {
        let (label, full_label) = match label {
            Some(text) => {
                let short = label::shorten(&text, LABEL_MAX);
                let full = (short != text).then_some(text);
                (Some(short), full)
            }
            None => (None, None),
        };
        self.g.edges.push(Edge {
            from,
            to,
            kind,
            label,
            full_label,
        });
    }

    fn state_edges(
        &mut self,
        m: usize,
        i: usize,
        body: &Object,
        path: &str,
        local: &HashMap<String, usize>,
    ) -> Result<(), Error> {
        let target = |loc: String, v: &Value| -> Result<usize, Error> {
            let name = v.as_str().ok_or_else(|| Error {
                location: loc.clone(),
                message: "a transition target must be a string".into(),
            })?;
            local.get(name).copied().ok_or_else(|| Error {
                location: loc,
                message: format!("'{name}' is not a state of this machine"),
            })
        };
        let from = Endpoint::State(i);
        if let Some(rules) = body.get("Choices").and_then(Value::as_array) {
            for (r, rule) in rules.iter().enumerate() {
                let loc = format!("{path}/Choices[{r}]");
                let Some(next) = rule.get("Next") else {
                    continue;
                };
                let to = target(format!("{loc}/Next"), next)?;
                let text = label::rule(rule);
                self.edge(from, Endpoint::State(to), EdgeKind::Choice, Some(text));
            }
        }
        if let Some(d) = body.get("Default") {
            let to = target(format!("{path}/Default"), d)?;
            let label = Some("default".to_string());
            self.edge(from, Endpoint::State(to), EdgeKind::Default, label);
        }
        if let Some(next) = body.get("Next") {
            let to = target(format!("{path}/Next"), next)?;
            self.edge(from, Endpoint::State(to), EdgeKind::Next, None);
        }
        if let Some(catchers) = body.get("Catch").and_then(Value::as_array) {
            for (c, catcher) in catchers.iter().enumerate() {
                let Some(next) = catcher.get("Next") else {
                    continue;
                };
                let to = target(format!("{path}/Catch[{c}]/Next"), next)?;
                let text = label::catcher(catcher);
                self.edge(from, Endpoint::State(to), EdgeKind::Catch, Some(text));
            }
        }
        if self.g.states[i].end {
            self.edge(from, Endpoint::End(m), EdgeKind::End, None);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
