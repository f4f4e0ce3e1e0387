//! The graph as Graphviz DOT text (`stepstream graph --format dot`), for people who lay out
//! with Graphviz or feed another tool: one node per state (its name as the id, name and type
//! as the label, a shape per type), a cluster per Map or Parallel (and per Parallel branch)
//! holding the nested machines, start and end markers per machine, labelled edges.
//!
//! A compound state's own node heads its cluster; edges leaving it start at its nested
//! machine's end marker, clipped at the cluster's border (`ltail`), so that its successors are
//! ranked below everything it holds.

use std::collections::HashSet;
use std::fmt::Write;

use super::{EdgeKind, Endpoint, Graph};

/// Shape, fill and border of a state's node.
fn look(kind: &str) -> (&'static str, &'static str, &'static str) {
    match kind {
        "Task" => ("box", "#eaf1fd", "#5b7fc7"),
        "Choice" => ("diamond", "#fdf3e1", "#c9973a"),
        "Pass" => ("box", "#edf6ee", "#6a9f6a"),
        "Wait" => ("hexagon", "#f3eefa", "#8d74b8"),
        "Succeed" => ("oval", "#dff2e6", "#2f8f57"),
        "Fail" => ("octagon", "#fbe8e8", "#c0504d"),
        "Map" => ("box3d", "#f0f5fa", "#5a8db5"),
        "Parallel" => ("component", "#f7f4ec", "#a08a4f"),
        _ => ("box", "#f7f8fa", "#8c96a8"),
    }
}

/// A quoted DOT string: backslashes and quotes escaped, line breaks as `\n`.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

struct Writer<'a> {
    g: &'a Graph,
    out: String,
    /// Ids of the start and end markers per machine, chosen not to be state names.
    starts: Vec<String>,
    ends: Vec<String>,
    has_end: Vec<bool>,
}

/// The DOT text of a graph.
pub fn dot(g: &Graph) -> String {
    let names: HashSet<&str> = g.states.iter().map(|s| s.name.as_str()).collect();
    let free = |base: String| {
        let mut id = base;
        while names.contains(id.as_str()) {
            id.push('_');
        }
        id
    };
    let mut has_end = vec![false; g.machines.len()];
    for e in &g.edges {
        if let Endpoint::End(m) = e.to {
            has_end[m] = true;
        }
    }
    let mut w = Writer {
        g,
        out: String::with_capacity(1024 + 200 * (g.states.len() + g.edges.len())),
        starts: (0..g.machines.len())
            .map(|m| free(format!("__start_{m}")))
            .collect(),
        ends: (0..g.machines.len())
            .map(|m| free(format!("__end_{m}")))
            .collect(),
        has_end,
    };
    w.out.push_str("digraph \"state machine\" {\n");
    w.out.push_str(
        "  graph [rankdir=TB, compound=true, fontname=\"Helvetica\", fontsize=11, nodesep=0.35, ranksep=0.45];\n",
    );
    w.out.push_str(
        "  node [fontname=\"Helvetica\", fontsize=11, style=\"rounded,filled\", penwidth=1.2];\n",
    );
    w.out.push_str(
        "  edge [fontname=\"Helvetica\", fontsize=9, color=\"#6b7280\", arrowsize=0.7];\n",
    );
    w.machine(0, 1);
    for e in &g.edges {
        w.edge(e);
    }
    w.out.push_str("}\n");
    w.out
}

impl Writer<'_> {
    fn indent(&mut self, depth: usize) {
        for _ in 0..depth {
            self.out.push_str("  ");
        }
    }

    /// The markers and states of a machine, recursively.
    fn machine(&mut self, m: usize, depth: usize) {
        let g = self.g;
        self.indent(depth);
        let _ = writeln!(
            self.out,
            "{} [shape=circle, label=\"\", width=0.18, height=0.18, style=filled, fillcolor=\"#374151\", color=\"#374151\"];",
            quote(&self.starts[m])
        );
        if self.has_end[m] {
            self.indent(depth);
            let _ = writeln!(
                self.out,
                "{} [shape=doublecircle, label=\"\", width=0.12, height=0.12, style=filled, fillcolor=\"#374151\", color=\"#374151\"];",
                quote(&self.ends[m])
            );
        }
        for &s in &g.machines[m].states {
            let st = &g.states[s];
            let (shape, fill, border) = look(&st.kind);
            let node = format!(
                "{} [label={}, shape={shape}, fillcolor=\"{fill}\", color=\"{border}\"];",
                quote(&st.name),
                quote(&format!("{}\n{}", st.name, st.kind))
            );
            if !st.is_compound() {
                self.indent(depth);
                self.out.push_str(&node);
                self.out.push('\n');
                continue;
            }
            self.indent(depth);
            let _ = writeln!(self.out, "subgraph \"cluster_{s}\" {{");
            self.indent(depth + 1);
            let _ = writeln!(
                self.out,
                "label=\"\"; style=\"rounded,filled\"; fillcolor=\"{fill}\"; color=\"{border}\";"
            );
            self.indent(depth + 1);
            self.out.push_str(&node);
            self.out.push('\n');
            let branches = st.kind == "Parallel";
            for (b, &inner) in st.machines.iter().enumerate() {
                let mut d = depth + 1;
                if branches {
                    self.indent(d);
                    let _ = writeln!(self.out, "subgraph \"cluster_{s}_{b}\" {{");
                    self.indent(d + 1);
                    let _ = writeln!(
                        self.out,
                        "label=\"branch {}\"; style=\"rounded,dashed\"; color=\"#c4bca4\"; fillcolor=\"#ffffff\";",
                        b + 1
                    );
                    d += 1;
                }
                self.machine(inner, d);
                // The state's node heads its cluster: above each nested start marker.
                self.indent(d);
                let _ = writeln!(
                    self.out,
                    "{} -> {} [style=invis];",
                    quote(&st.name),
                    quote(&self.starts[inner])
                );
                if branches {
                    self.indent(depth + 1);
                    self.out.push_str("}\n");
                }
            }
            self.indent(depth);
            self.out.push_str("}\n");
        }
    }

    /// The id an edge leaves from, and the cluster it is clipped at when leaving a compound.
    fn tail(&self, p: Endpoint) -> (String, Option<usize>) {
        match p {
            Endpoint::Start(m) => (quote(&self.starts[m]), None),
            Endpoint::End(m) => (quote(&self.ends[m]), None),
            Endpoint::State(s) => {
                let st = &self.g.states[s];
                match st.machines.iter().find(|&&m| self.has_end[m]) {
                    Some(&m) => (quote(&self.ends[m]), Some(s)),
                    None => (quote(&st.name), None),
                }
            }
        }
    }

    fn head(&self, p: Endpoint) -> String {
        match p {
            Endpoint::Start(m) => quote(&self.starts[m]),
            Endpoint::End(m) => quote(&self.ends[m]),
            Endpoint::State(s) => quote(&self.g.states[s].name),
        }
    }

    fn edge(&mut self, e: &super::Edge) {
        let (tail, cluster) = self.tail(e.from);
        let mut attrs: Vec<String> = Vec::new();
        if let Some(label) = &e.label {
            attrs.push(format!("label={}", quote(label)));
        }
        match e.kind {
            EdgeKind::Catch => {
                attrs.push("style=dashed".into());
                attrs.push("color=\"#c0504d\"".into());
                attrs.push("fontcolor=\"#a33b38\"".into());
            }
            EdgeKind::Default => {
                attrs.push("style=dotted".into());
                attrs.push("color=\"#a8812f\"".into());
            }
            EdgeKind::Choice => attrs.push("color=\"#a8812f\"".into()),
            _ => {}
        }
        if let Some(s) = cluster {
            attrs.push(format!("ltail=\"cluster_{s}\""));
        }
        let _ = write!(self.out, "  {tail} -> {}", self.head(e.to));
        if !attrs.is_empty() {
            let _ = write!(self.out, " [{}]", attrs.join(", "));
        }
        self.out.push_str(";\n");
    }
}
