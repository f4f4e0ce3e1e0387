//! Where everything is drawn: a layered, top-to-bottom layout of each machine (ours, small and
//! deterministic), nested machines first so that a Map or Parallel box is sized from what it
//! holds.
//!
//! Per machine: back edges are found by a depth-first search from the start marker and left
//! out of ranking; ranks are longest paths over the remaining edges; every edge crosses a
//! label layer between two ranks (so a label is a node of its own, and no label can overlap a
//! state or another label); long edges get one dummy node per layer they cross; the order
//! within each layer is improved by barycenter sweeps and adjacent swaps, keeping the order with
//! the fewest crossings; x positions come from alternating sweeps, each layer placed as close as
//! possible to its neighbours' barycenters while keeping nodes apart (an exact weighted
//! isotonic regression), then the main path and long edges are straightened where there is
//! room. Edges are orthogonal with rounded corners: down out of the middle of a state's
//! bottom, sideways only in the gaps between layers, on tracks (the edges out of one state
//! share one, as a bus; so do the edges into one), down into the middle of the target's top.
//! Back edges run up in lanes to the right of everything.

use std::collections::HashMap;

use super::{EdgeKind, Endpoint, Graph};

/// Approximate width of one character of a state name at 13px in a sans-serif font.
pub const NAME_CHAR_W: f64 = 7.5;
/// Approximate width of one character of an edge label at 11px monospace (0.6 em).
pub const LABEL_CHAR_W: f64 = 6.7;
/// A state box: two lines (the name, then the counts the live page writes).
pub const BOX_H: f64 = 44.0;
pub const BOX_MIN_W: f64 = 120.0;
/// Horizontal padding each side of a name.
pub const BOX_PAD: f64 = 14.0;
/// Height of the name and counts lines at the top of a Map or Parallel box.
pub const HEADER_H: f64 = 44.0;
/// Padding between a compound box and what it holds (sides and bottom).
pub const COMPOUND_PAD: f64 = 12.0;
/// Space between the branches of a Parallel.
pub const BRANCH_GAP: f64 = 14.0;
pub const LABEL_H: f64 = 16.0;
pub const LABEL_PAD: f64 = 4.0;
pub const START_R: f64 = 7.0;
pub const END_R: f64 = 9.0;
/// Space around a machine's drawing.
const MARGIN: f64 = 12.0;
/// Horizontal space between two nodes of a layer; smaller when one is an edge's dummy.
const NODE_SEP: f64 = 28.0;
const DUMMY_SEP: f64 = 12.0;
/// Least vertical space between two layers; more when the edges in it need more tracks.
const LAYER_GAP: f64 = 24.0;
/// Vertical space between two tracks of a gap (and horizontal space between two runs that
/// may share one).
const TRACK_SEP: f64 = 10.0;
/// Space between back-edge lanes (and between the drawing and the first lane).
const LANE_SEP: f64 = 14.0;
/// Radius of the rounded corners of back edges.
const CORNER: f64 = 6.0;

pub type Point = (f64, f64);

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Rect {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
}

impl Rect {
    pub fn right(&self) -> f64 {
        self.x + self.w
    }
    pub fn bottom(&self) -> f64 {
        self.y + self.h
    }
    pub fn cx(&self) -> f64 {
        self.x + self.w / 2.0
    }
    pub fn cy(&self) -> f64 {
        self.y + self.h / 2.0
    }
    /// Whether the two overlap in more than a shared border.
    pub fn overlaps(&self, o: &Rect) -> bool {
        self.x < o.right() && o.x < self.right() && self.y < o.bottom() && o.y < self.bottom()
    }
    /// Whether `o` lies inside (borders may touch).
    pub fn contains(&self, o: &Rect) -> bool {
        o.x >= self.x && o.y >= self.y && o.right() <= self.right() && o.bottom() <= self.bottom()
    }
    fn shift(&mut self, dx: f64, dy: f64) {
        self.x += dx;
        self.y += dy;
    }
}

/// One piece of an edge's path (absolute coordinates; a path starts with `Move`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Seg {
    Move(Point),
    Line(Point),
    /// A cubic Bézier: two control points, then the end.
    Curve(Point, Point, Point),
}

impl Seg {
    fn shift(&mut self, dx: f64, dy: f64) {
        let s = |p: &mut Point| {
            p.0 += dx;
            p.1 += dy;
        };
        match self {
            Seg::Move(p) | Seg::Line(p) => s(p),
            Seg::Curve(a, b, c) => {
                s(a);
                s(b);
                s(c);
            }
        }
    }
    /// The point the segment ends at.
    pub fn end(&self) -> Point {
        match *self {
            Seg::Move(p) | Seg::Line(p) | Seg::Curve(_, _, p) => p,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct EdgeLayout {
    pub path: Vec<Seg>,
    /// The box of the label (its text is centred in it).
    pub label: Option<Rect>,
    /// Whether it goes back up (a loop), drawn in a lane to the right.
    pub back: bool,
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MachineLayout {
    /// The area the machine is drawn in (a Parallel branch's box).
    pub area: Rect,
    /// Centre of the start marker.
    pub start: Point,
    /// Centre of the end marker, when some state ends the machine.
    pub end: Option<Point>,
}

/// Positions of everything, indexed as the graph's states, machines and edges.
#[derive(Clone, Debug)]
pub struct Layout {
    pub width: f64,
    pub height: f64,
    pub states: Vec<Rect>,
    pub machines: Vec<MachineLayout>,
    pub edges: Vec<EdgeLayout>,
}

/// The width a state name needs.
pub fn name_width(name: &str) -> f64 {
    name.chars().count() as f64 * NAME_CHAR_W
}

/// The box of a label text.
pub fn label_width(label: &str) -> f64 {
    label.chars().count() as f64 * LABEL_CHAR_W + 2.0 * LABEL_PAD
}

/// Lays out the whole graph.
pub fn layout(g: &Graph) -> Layout {
    let mut by_machine = vec![Vec::new(); g.machines.len()];
    for (i, e) in g.edges.iter().enumerate() {
        by_machine[g.edge_machine(e)].push(i);
    }
    let cx = Ctx {
        g,
        by_machine: &by_machine,
    };
    let sub = cx.machine(0);
    let mut out = Layout {
        width: sub.w,
        height: sub.h,
        states: vec![Rect::default(); g.states.len()],
        machines: vec![MachineLayout::default(); g.machines.len()],
        edges: vec![EdgeLayout::default(); g.edges.len()],
    };
    for (i, r) in sub.states {
        out.states[i] = r;
    }
    for (i, m) in sub.machines {
        out.machines[i] = m;
    }
    for (i, e) in sub.edges {
        out.edges[i] = e;
    }
    out
}

/// A machine's drawing in its own coordinates (origin at its top left).
#[derive(Default)]
struct Sub {
    w: f64,
    h: f64,
    states: Vec<(usize, Rect)>,
    /// Its own entry first, then those of the machines nested in it.
    machines: Vec<(usize, MachineLayout)>,
    edges: Vec<(usize, EdgeLayout)>,
}

impl Sub {
    fn shift(&mut self, dx: f64, dy: f64) {
        for (_, r) in &mut self.states {
            r.shift(dx, dy);
        }
        for (_, m) in &mut self.machines {
            m.area.shift(dx, dy);
            m.start.0 += dx;
            m.start.1 += dy;
            if let Some(e) = &mut m.end {
                e.0 += dx;
                e.1 += dy;
            }
        }
        for (_, e) in &mut self.edges {
            for s in &mut e.path {
                s.shift(dx, dy);
            }
            if let Some(l) = &mut e.label {
                l.shift(dx, dy);
            }
        }
    }
    fn absorb(&mut self, o: Sub) {
        self.states.extend(o.states);
        self.machines.extend(o.machines);
        self.edges.extend(o.edges);
    }
}

struct Ctx<'a> {
    g: &'a Graph,
    by_machine: &'a [Vec<usize>],
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Start,
    State(usize),
    End,
    /// A point of an edge crossing a layer; `label` when the edge's label sits there.
    Dummy {
        label: bool,
    },
}

/// A machine as a layered graph (see [`Ctx::layered`]).
struct Layered {
    nodes: Vec<Node>,
    ledges: Vec<LEdge>,
    /// Per node, the nodes of the next (previous) layer it is joined to.
    down: Vec<Vec<usize>>,
    up: Vec<Vec<usize>>,
    layers: usize,
    /// Markers and states: the nodes before the dummies.
    states: usize,
    /// The end marker's node, when the machine has one.
    end: Option<usize>,
    /// The drawings inside the Map and Parallel nodes, relative to their boxes.
    inner: HashMap<usize, Sub>,
}

/// A node of a machine's layered graph.
struct Node {
    kind: Kind,
    w: f64,
    h: f64,
    layer: usize,
    /// The node whose x a dummy follows (itself for the others).
    anchor: usize,
    /// The states (or markers) at the two ends of a dummy's edge (itself for the others).
    ends: (usize, usize),
}

impl Node {
    fn is_dummy(&self) -> bool {
        matches!(self.kind, Kind::Dummy { .. })
    }
}

/// An edge of the machine: the graph's edge index and its two nodes.
struct LEdge {
    edge: usize,
    from: usize,
    to: usize,
    back: bool,
    /// Forward edges: the nodes it passes, `from` and `to` included.
    chain: Vec<usize>,
}

impl Ctx<'_> {
    /// The box of a state, and for a Map or Parallel the drawing of what it holds, placed
    /// relative to the box's top left.
    fn state_box(&self, s: usize) -> (f64, f64, Option<Sub>) {
        let st = &self.g.states[s];
        let name_w = name_width(&st.name) + 2.0 * BOX_PAD;
        let base_w = name_w.max(BOX_MIN_W);
        if !st.is_compound() {
            return (base_w, BOX_H, None);
        }
        let mut subs: Vec<Sub> = st.machines.iter().map(|&m| self.machine(m)).collect();
        let total: f64 =
            subs.iter().map(|s| s.w).sum::<f64>() + BRANCH_GAP * (subs.len() - 1) as f64;
        let tallest = subs.iter().map(|s| s.h).fold(0.0, f64::max);
        let w = base_w.max(total + 2.0 * COMPOUND_PAD);
        let h = HEADER_H + tallest + COMPOUND_PAD;
        let mut x = (w - total) / 2.0;
        let mut inner = Sub::default();
        for mut sub in subs.drain(..) {
            // Branches side by side get boxes of one height; their drawings stay at the top.
            sub.machines[0].1.area.h = tallest;
            let sw = sub.w;
            sub.shift(x, HEADER_H);
            inner.absorb(sub);
            x += sw + BRANCH_GAP;
        }
        (w, h, Some(inner))
    }

    /// The drawing of machine `m`, in its own coordinates.
    fn machine(&self, m: usize) -> Sub {
        let lg = self.layered(m);
        let order = order_layers(&lg.nodes, lg.layers, &lg.down, &lg.up);
        let kinds: Vec<EdgeKind> = lg
            .ledges
            .iter()
            .map(|e| self.g.edges[e.edge].kind)
            .collect();
        let mut x = place_x(&lg.nodes, &order, &lg.down, &lg.up);
        align_main_path(
            &lg.nodes, &order, &lg.ledges, &lg.down, &lg.up, &kinds, &mut x,
        );
        straighten(&lg.nodes, &order, &lg.ledges, &mut x);
        self.draw(m, lg, &order, x)
    }

    /// Machine `m` as a layered graph: its markers and states (the Map and Parallel ones
    /// with their drawings), ranked, with a dummy wherever an edge crosses a layer.
    fn layered(&self, m: usize) -> Layered {
        let g = self.g;
        let mach = &g.machines[m];
        let edges = &self.by_machine[m];

        // Nodes: the start marker, the states, the end marker.
        let mut nodes = vec![Node {
            kind: Kind::Start,
            w: 2.0 * START_R,
            h: 2.0 * START_R,
            layer: 0,
            anchor: 0,
            ends: (0, 0),
        }];
        let mut local: HashMap<usize, usize> = HashMap::new();
        let mut inner: HashMap<usize, Sub> = HashMap::new();
        for &s in &mach.states {
            let (w, h, sub) = self.state_box(s);
            local.insert(s, nodes.len());
            if let Some(sub) = sub {
                inner.insert(nodes.len(), sub);
            }
            let v = nodes.len();
            nodes.push(Node {
                kind: Kind::State(s),
                w,
                h,
                layer: 0,
                anchor: v,
                ends: (v, v),
            });
        }
        let has_end = edges
            .iter()
            .any(|&e| matches!(g.edges[e].to, Endpoint::End(_)));
        let end = nodes.len();
        if has_end {
            nodes.push(Node {
                kind: Kind::End,
                w: 2.0 * END_R,
                h: 2.0 * END_R,
                layer: 0,
                anchor: end,
                ends: (end, end),
            });
        }
        let n = nodes.len();
        let node_of = |p: Endpoint| match p {
            Endpoint::Start(_) => 0,
            Endpoint::State(s) => local[&s],
            Endpoint::End(_) => end,
        };
        let mut ledges: Vec<LEdge> = edges
            .iter()
            .map(|&e| LEdge {
                edge: e,
                from: node_of(g.edges[e].from),
                to: node_of(g.edges[e].to),
                back: false,
                chain: Vec::new(),
            })
            .collect();
        let mut out: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (i, e) in ledges.iter().enumerate() {
            out[e.from].push(i);
        }

        mark_back_edges(n, &out, &mut ledges);
        let rank = ranks(n, &out, &ledges, has_end.then_some(end));
        let layers = 2 * rank.iter().copied().max().unwrap_or(0) + 1;
        for (v, node) in nodes.iter_mut().enumerate() {
            node.layer = 2 * rank[v];
        }

        // Every forward edge passes one dummy per layer between its ends; the first carries
        // its label.
        let mut down: Vec<Vec<usize>> = vec![Vec::new(); n];
        for le in ledges.iter_mut().filter(|e| !e.back) {
            let (lu, lv) = (nodes[le.from].layer, nodes[le.to].layer);
            let label = g.edges[le.edge].label.as_deref();
            le.chain.push(le.from);
            for layer in lu + 1..lv {
                let with_label = layer == lu + 1 && label.is_some();
                let (w, h) = match label {
                    Some(text) if with_label => (label_width(text), LABEL_H),
                    _ => (0.0, 0.0),
                };
                le.chain.push(nodes.len());
                nodes.push(Node {
                    kind: Kind::Dummy { label: with_label },
                    w,
                    h,
                    layer,
                    anchor: le.to,
                    ends: (le.from, le.to),
                });
                down.push(Vec::new());
            }
            le.chain.push(le.to);
            for pair in le.chain.windows(2) {
                down[pair[0]].push(pair[1]);
            }
        }
        let mut up: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
        for (a, succ) in down.iter().enumerate() {
            for &b in succ {
                up[b].push(a);
            }
        }
        // A long edge runs straight down out of a source it is the only edge of (and
        // sideways into its target); otherwise, and always with a label, straight into its
        // target.
        for le in ledges.iter().filter(|e| e.chain.len() > 2) {
            let labelled = g.edges[le.edge].label.is_some();
            let anchor = if !labelled && down[le.from].len() == 1 {
                le.from
            } else {
                le.to
            };
            for &d in &le.chain[1..le.chain.len() - 1] {
                nodes[d].anchor = anchor;
            }
        }
        Layered {
            nodes,
            ledges,
            down,
            up,
            layers,
            states: n,
            end: has_end.then_some(end),
            inner,
        }
    }

    /// Places the edges of a layered machine whose x positions are known (tracks for their
    /// sideways runs, lanes for the back edges), then everything's y, and draws it.
    fn draw(&self, m: usize, lg: Layered, order: &[Vec<usize>], mut x: Vec<f64>) -> Sub {
        let g = self.g;
        let Layered {
            nodes,
            ledges,
            down,
            up,
            layers,
            states: n,
            end,
            mut inner,
        } = lg;
        let has_end = end.is_some();
        let end = end.unwrap_or(0);
        let min_x = nodes
            .iter()
            .zip(&x)
            .map(|(node, x)| x - node.w / 2.0)
            .fold(f64::INFINITY, f64::min);
        for v in x.iter_mut() {
            *v += MARGIN - min_x;
        }
        let content_right = nodes
            .iter()
            .zip(&x)
            .map(|(node, x)| x + node.w / 2.0)
            .fold(0.0, f64::max);

        // Back edges: out of the source's right side (or its bottom, when something stands to
        // its right), up a lane right of the drawing, into the target's right side (or top).
        // Shorter ones get the inner lanes.
        let mut backs: Vec<usize> = (0..ledges.len()).filter(|&i| ledges[i].back).collect();
        backs.sort_by_key(|&i| {
            let e = &ledges[i];
            (nodes[e.from].layer - nodes[e.to].layer, i)
        });
        // Free on the right: no state, marker or label further right in its layer (lines of
        // other edges may be crossed).
        let rightmost = |v: usize| {
            let layer = &order[nodes[v].layer];
            let i = layer.iter().position(|&w| w == v).unwrap_or(0);
            layer[i + 1..]
                .iter()
                .all(|&w| nodes[w].kind == (Kind::Dummy { label: false }))
        };
        // Each back edge's lane stands just right of what is drawn in the layers it spans,
        // and of the lanes (with their labels) already placed over those layers.
        let mut right_of = vec![0.0f64; layers];
        for (node, x) in nodes.iter().zip(&x) {
            right_of[node.layer] = right_of[node.layer].max(x + node.w / 2.0);
        }
        let mut lanes = Vec::with_capacity(backs.len());
        let mut placed: Vec<((usize, usize), f64)> = Vec::new();
        for &i in &backs {
            let e = &ledges[i];
            let (top, bottom) = (
                nodes[e.to].layer.saturating_sub(1),
                (nodes[e.from].layer + 1).min(layers - 1),
            );
            let mut lane = right_of[top..=bottom].iter().copied().fold(0.0, f64::max);
            for &((a, b), end) in &placed {
                if a <= bottom && top <= b {
                    lane = lane.max(end);
                }
            }
            lane += LANE_SEP;
            let label = g.edges[e.edge].label.as_deref();
            placed.push((
                (top, bottom),
                lane + label.map_or(0.0, |t| label_width(t) + 4.0),
            ));
            lanes.push(lane);
        }
        let lanes_right = placed.iter().map(|p| p.1).fold(0.0, f64::max);
        let right = content_right.max(lanes_right);

        // The horizontal runs of the edges between two layers, each on a track of its gap:
        // the edges out of one node share a track (a bus), as do the edges into one node;
        // runs that overlap sideways get different tracks.
        let group_of = |a: usize, b: usize, id: usize| {
            if !nodes[a].is_dummy() && down[a].len() > 1 {
                Group::Out(a)
            } else if !nodes[b].is_dummy() && up[b].len() > 1 {
                Group::In(b)
            } else {
                Group::Alone(id)
            }
        };
        // Per gap: group -> (left, right).
        let mut runs: Vec<HashMap<Group, (f64, f64)>> = vec![HashMap::new(); layers];
        let mut add_run = |l: usize, gr: Group, x1: f64, x2: f64| {
            let (lo, hi) = (x1.min(x2), x1.max(x2));
            let e = runs[l].entry(gr).or_insert((lo, hi));
            e.0 = e.0.min(lo);
            e.1 = e.1.max(hi);
        };
        let mut run_id = 0;
        for le in ledges.iter().filter(|e| !e.back) {
            for pair in le.chain.windows(2) {
                let (a, b) = (pair[0], pair[1]);
                if (x[a] - x[b]).abs() >= 0.5 {
                    add_run(nodes[a].layer, group_of(a, b, run_id), x[a], x[b]);
                }
                run_id += 1;
            }
        }
        let back_exit = |v: usize| x[v] + 0.4 * nodes[v].w;
        let mut back_runs = Vec::with_capacity(backs.len());
        for (k, &i) in backs.iter().enumerate() {
            let le = &ledges[i];
            let exit = (!rightmost(le.from)).then(|| {
                let id = run_id;
                run_id += 1;
                add_run(
                    nodes[le.from].layer,
                    Group::Alone(id),
                    back_exit(le.from),
                    lanes[k],
                );
                id
            });
            let entry = (!rightmost(le.to)).then(|| {
                let id = run_id;
                run_id += 1;
                let l = nodes[le.to].layer.saturating_sub(1);
                add_run(l, Group::Alone(id), back_exit(le.to), lanes[k]);
                id
            });
            back_runs.push((exit, entry));
        }
        let (track, tracks) = assign_tracks(&runs);

        // Layer bands and the gaps under them, tall enough for their tracks.
        let mut band_h = vec![0.0f64; layers];
        for node in &nodes {
            band_h[node.layer] = band_h[node.layer].max(node.h);
        }
        // Tracks from 8px under the band, leaving 16px for the arrowheads below them.
        let needed = |t: usize| 8.0 + t.saturating_sub(1) as f64 * TRACK_SEP + 16.0;
        let gap: Vec<f64> = tracks.iter().map(|&t| LAYER_GAP.max(needed(t))).collect();
        let mut band_top = vec![0.0f64; layers];
        let mut y = MARGIN;
        for l in 0..layers {
            band_top[l] = y;
            y += band_h[l] + gap[l];
        }
        let bottom = band_top[layers - 1] + band_h[layers - 1];
        let band_bottom = |l: usize| band_top[l] + band_h[l];
        let track_y = |l: usize, gr: Group| {
            let t = track[l][&gr];
            let spare = gap[l] - needed(tracks[l]);
            band_bottom(l) + 8.0 + spare / 2.0 + t as f64 * TRACK_SEP
        };
        let rects: Vec<Rect> = nodes
            .iter()
            .zip(&x)
            .map(|(node, x)| Rect {
                x: x - node.w / 2.0,
                y: band_top[node.layer] + (band_h[node.layer] - node.h) / 2.0,
                w: node.w,
                h: node.h,
            })
            .collect();

        let mut sub = Sub::default();
        let mut area = MachineLayout {
            start: (rects[0].cx(), rects[0].cy()),
            end: has_end.then(|| (rects[end].cx(), rects[end].cy())),
            ..MachineLayout::default()
        };

        // Forward edges: out of the middle of the source's bottom, into the middle of the
        // target's top, sideways only on their tracks.
        let mut run_id = 0;
        for le in ledges.iter().filter(|e| !e.back) {
            let u = &rects[le.from];
            let mut pts = vec![(u.cx(), u.bottom())];
            let mut label = None;
            for pair in le.chain.windows(2) {
                let (a, b) = (pair[0], pair[1]);
                let rb = &rects[b];
                if (x[a] - x[b]).abs() >= 0.5 {
                    let ty = track_y(nodes[a].layer, group_of(a, b, run_id));
                    pts.push((x[a], ty));
                    pts.push((x[b], ty));
                }
                run_id += 1;
                if nodes[b].is_dummy() {
                    pts.push((x[b], band_top[nodes[b].layer]));
                    pts.push((x[b], band_bottom(nodes[b].layer)));
                } else {
                    pts.push((x[b], rb.y));
                }
                if nodes[b].kind == (Kind::Dummy { label: true }) {
                    label = Some(*rb);
                }
            }
            sub.edges.push((
                le.edge,
                EdgeLayout {
                    path: rounded(&simplify(pts), CORNER),
                    label,
                    back: false,
                },
            ));
        }

        let mut side_uses = vec![0usize; n];
        for (k, &i) in backs.iter().enumerate() {
            let le = &ledges[i];
            let (u, v) = (rects[le.from], rects[le.to]);
            let lane = lanes[k];
            let (exit, entry) = back_runs[k];
            let mut pts = Vec::new();
            match exit {
                None => {
                    let k = side_uses[le.from] as f64;
                    side_uses[le.from] += 1;
                    let y = (u.cy() + 7.0 + 5.0 * k).min(u.bottom() - 3.0);
                    pts.push((u.right(), y));
                    pts.push((lane, y));
                }
                Some(id) => {
                    let ex = back_exit(le.from);
                    let y = track_y(nodes[le.from].layer, Group::Alone(id));
                    pts.push((ex, u.bottom()));
                    pts.push((ex, y));
                    pts.push((lane, y));
                }
            }
            let lane_bottom = pts.last().map_or(0.0, |p| p.1);
            let lane_top = match entry {
                None => {
                    let k = side_uses[le.to] as f64;
                    side_uses[le.to] += 1;
                    let y = (v.cy() - 7.0 - 5.0 * k).max(v.y + 3.0);
                    pts.push((lane, y));
                    pts.push((v.right(), y));
                    y
                }
                Some(id) => {
                    let ex = back_exit(le.to);
                    let l = nodes[le.to].layer.saturating_sub(1);
                    let y = track_y(l, Group::Alone(id));
                    pts.push((lane, y));
                    pts.push((ex, y));
                    pts.push((ex, v.y));
                    y
                }
            };
            let label = g.edges[le.edge].label.as_deref().map(|text| Rect {
                x: lane + 4.0,
                y: (lane_top + lane_bottom) / 2.0 - LABEL_H / 2.0,
                w: label_width(text),
                h: LABEL_H,
            });
            sub.edges.push((
                le.edge,
                EdgeLayout {
                    path: rounded(&pts, CORNER),
                    label,
                    back: true,
                },
            ));
        }

        sub.w = right + MARGIN;
        sub.h = bottom + MARGIN;
        area.area = Rect {
            x: 0.0,
            y: 0.0,
            w: sub.w,
            h: sub.h,
        };
        sub.machines.push((m, area));
        for (v, node) in nodes.iter().enumerate() {
            if let Kind::State(s) = node.kind {
                sub.states.push((s, rects[v]));
                if let Some(mut nested) = inner.remove(&v) {
                    nested.shift(rects[v].x, rects[v].y);
                    sub.absorb(nested);
                }
            }
        }
        sub
    }
}

/// What shares a track: the runs out of one node, the runs into one node, or one run alone.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Group {
    Out(usize),
    In(usize),
    Alone(usize),
}

/// Tracks for the runs of each gap (group -> extent): a run takes the first track where it
/// overlaps nothing, so a gap needs as many as its most overlapped point. The track of each
/// group, and the number of tracks, per gap.
fn assign_tracks(runs: &[HashMap<Group, (f64, f64)>]) -> (Vec<HashMap<Group, usize>>, Vec<usize>) {
    let mut track = vec![HashMap::new(); runs.len()];
    let mut tracks = vec![0usize; runs.len()];
    for (l, gap) in runs.iter().enumerate() {
        let mut groups: Vec<(Group, (f64, f64))> = gap.iter().map(|(g, r)| (*g, *r)).collect();
        groups.sort_by(|a, b| {
            (a.1.0.total_cmp(&b.1.0))
                .then(a.1.1.total_cmp(&b.1.1))
                .then(a.0.cmp(&b.0))
        });
        let mut ends: Vec<f64> = Vec::new();
        for (gr, (lo, hi)) in groups {
            let t = match ends.iter().position(|&end| end + TRACK_SEP < lo) {
                Some(t) => t,
                None => {
                    ends.push(f64::NEG_INFINITY);
                    ends.len() - 1
                }
            };
            ends[t] = hi;
            track[l].insert(gr, t);
        }
        tracks[l] = ends.len();
    }
    (track, tracks)
}

/// Marks the edges that close a cycle, found by a depth-first search from the start marker
/// (node 0), then from each node not reached yet, in order.
fn mark_back_edges(n: usize, out: &[Vec<usize>], ledges: &mut [LEdge]) {
    #[derive(Clone, Copy, PartialEq)]
    enum Seen {
        No,
        Open,
        Done,
    }
    let mut seen = vec![Seen::No; n];
    let mut stack: Vec<(usize, usize)> = Vec::new();
    for root in 0..n {
        if seen[root] != Seen::No {
            continue;
        }
        seen[root] = Seen::Open;
        stack.push((root, 0));
        while let Some(top) = stack.last_mut() {
            let (u, k) = *top;
            if k < out[u].len() {
                top.1 += 1;
                let e = out[u][k];
                let v = ledges[e].to;
                match seen[v] {
                    Seen::No => {
                        seen[v] = Seen::Open;
                        stack.push((v, 0));
                    }
                    Seen::Open => ledges[e].back = true,
                    Seen::Done => {}
                }
            } else {
                seen[u] = Seen::Done;
                stack.pop();
            }
        }
    }
}

/// Longest-path ranks over the forward edges: the start marker 0, states from 1, the end
/// marker below everything. A state nothing leads to (unreachable) sits just above its first
/// successor rather than at the top.
fn ranks(n: usize, out: &[Vec<usize>], ledges: &[LEdge], end: Option<usize>) -> Vec<usize> {
    let mut indeg = vec![0usize; n];
    for e in ledges.iter().filter(|e| !e.back) {
        indeg[e.to] += 1;
    }
    let sources: Vec<bool> = indeg.iter().map(|&d| d == 0).collect();
    let mut rank: Vec<usize> = (0..n).map(|v| usize::from(v != 0)).collect();
    let mut queue: std::collections::VecDeque<usize> = (0..n).filter(|&v| indeg[v] == 0).collect();
    let mut topo = Vec::with_capacity(n);
    while let Some(u) = queue.pop_front() {
        topo.push(u);
        for &e in &out[u] {
            let le = &ledges[e];
            if le.back {
                continue;
            }
            rank[le.to] = rank[le.to].max(rank[u] + 1);
            indeg[le.to] -= 1;
            if indeg[le.to] == 0 {
                queue.push_back(le.to);
            }
        }
    }
    for &u in topo.iter().rev() {
        if u == 0 || !sources[u] {
            continue;
        }
        let succ = out[u]
            .iter()
            .filter(|&&e| !ledges[e].back)
            .map(|&e| rank[ledges[e].to])
            .min();
        if let Some(r) = succ {
            rank[u] = rank[u].max(r - 1);
        }
    }
    if let Some(end) = end {
        rank[end] = (0..n)
            .filter(|&v| v != end)
            .map(|v| rank[v])
            .max()
            .unwrap_or(0)
            + 1;
    }
    rank
}

/// The order of the nodes in each layer: depth-first discovery order, improved by barycenter
/// sweeps and adjacent swaps; the order with the fewest crossings wins.
fn order_layers(
    nodes: &[Node],
    layers: usize,
    down: &[Vec<usize>],
    up: &[Vec<usize>],
) -> Vec<Vec<usize>> {
    let n = nodes.len();
    let mut order: Vec<Vec<usize>> = vec![Vec::new(); layers];
    let mut seen = vec![false; n];
    for root in 0..n {
        if seen[root] {
            continue;
        }
        let mut stack = vec![root];
        while let Some(v) = stack.pop() {
            if seen[v] {
                continue;
            }
            seen[v] = true;
            order[nodes[v].layer].push(v);
            for &w in down[v].iter().rev() {
                if !seen[w] {
                    stack.push(w);
                }
            }
        }
    }
    let mut pos = vec![0usize; n];
    let index = |order: &[Vec<usize>], pos: &mut [usize]| {
        for layer in order {
            for (i, &v) in layer.iter().enumerate() {
                pos[v] = i;
            }
        }
    };
    index(&order, &mut pos);
    let mut best = order.clone();
    let mut best_crossings = crossings(&order, &pos, down);
    for sweep in 0..16 {
        if best_crossings == 0 {
            break;
        }
        if sweep % 2 == 0 {
            for layer in order.iter_mut().skip(1) {
                sort_by_barycenter(layer, &mut pos, up);
            }
        } else {
            for layer in order.iter_mut().rev().skip(1) {
                sort_by_barycenter(layer, &mut pos, down);
            }
        }
        transpose(&mut order, &mut pos, down, up);
        let c = crossings(&order, &pos, down);
        if c < best_crossings {
            best_crossings = c;
            best = order.clone();
        }
    }
    best
}

/// Sorts a layer by the mean position of each node's neighbours in the adjacent layer; nodes
/// without neighbours there keep their places.
fn sort_by_barycenter(layer: &mut [usize], pos: &mut [usize], nbrs: &[Vec<usize>]) {
    let slots: Vec<usize> = (0..layer.len())
        .filter(|&i| !nbrs[layer[i]].is_empty())
        .collect();
    let mut keyed: Vec<(f64, usize, usize)> = slots
        .iter()
        .map(|&i| {
            let v = layer[i];
            let sum: usize = nbrs[v].iter().map(|&w| pos[w]).sum();
            (sum as f64 / nbrs[v].len() as f64, i, v)
        })
        .collect();
    keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    for (&slot, &(_, _, v)) in slots.iter().zip(&keyed) {
        layer[slot] = v;
    }
    for (i, &v) in layer.iter().enumerate() {
        pos[v] = i;
    }
}

/// Swaps neighbours in a layer while that removes crossings (a few passes at most).
fn transpose(order: &mut [Vec<usize>], pos: &mut [usize], down: &[Vec<usize>], up: &[Vec<usize>]) {
    let pair = |a: usize, b: usize, pos: &[usize]| -> usize {
        let mut c = 0;
        for nbrs in [up, down] {
            for &x in &nbrs[a] {
                for &y in &nbrs[b] {
                    if pos[x] > pos[y] {
                        c += 1;
                    }
                }
            }
        }
        c
    };
    for _ in 0..4 {
        let mut improved = false;
        for layer in order.iter_mut() {
            for i in 1..layer.len() {
                let (a, b) = (layer[i - 1], layer[i]);
                if pair(b, a, pos) < pair(a, b, pos) {
                    layer.swap(i - 1, i);
                    pos[a] = i;
                    pos[b] = i - 1;
                    improved = true;
                }
            }
        }
        if !improved {
            break;
        }
    }
}

/// Edge crossings between all pairs of adjacent layers.
fn crossings(order: &[Vec<usize>], pos: &[usize], down: &[Vec<usize>]) -> usize {
    let mut total = 0;
    for layer in order {
        let mut ends: Vec<(usize, usize)> = Vec::new();
        for &a in layer {
            for &b in &down[a] {
                ends.push((pos[a], pos[b]));
            }
        }
        for i in 0..ends.len() {
            for j in i + 1..ends.len() {
                let (p, q) = (ends[i], ends[j]);
                if (p.0 < q.0 && p.1 > q.1) || (p.0 > q.0 && p.1 < q.1) {
                    total += 1;
                }
            }
        }
    }
    total
}

/// The least distance between the centres of two neighbours of a layer.
fn separation(a: &Node, b: &Node) -> f64 {
    let sep = if a.is_dummy() || b.is_dummy() {
        DUMMY_SEP
    } else {
        NODE_SEP
    };
    (a.w + b.w) / 2.0 + sep
}

/// x of each node's centre. Layers are packed, then placed again and again (down, up, ...,
/// ending down): each state pulled to the mean x of its neighbours in the layer just placed
/// (through dummies: to the far end of a long edge), each dummy to the node its edge follows.
fn place_x(
    nodes: &[Node],
    order: &[Vec<usize>],
    down: &[Vec<usize>],
    up: &[Vec<usize>],
) -> Vec<f64> {
    let mut x = vec![0.0f64; nodes.len()];
    for layer in order {
        let mut cur = 0.0;
        for (i, &v) in layer.iter().enumerate() {
            if i > 0 {
                cur += separation(&nodes[layer[i - 1]], &nodes[v]);
            }
            x[v] = cur;
        }
        let mid = cur / 2.0;
        for &v in layer {
            x[v] -= mid;
        }
    }
    let layers = order.len();
    const ROUNDS: usize = 13;
    for round in 0..ROUNDS {
        let downward = round % 2 == 0;
        let seq: Vec<usize> = if downward {
            (0..layers).collect()
        } else {
            (0..layers).rev().collect()
        };
        for l in seq {
            let layer = &order[l];
            let mut target = Vec::with_capacity(layer.len());
            for &v in layer {
                if nodes[v].is_dummy() {
                    // A label weighs as much as a state; a bare dummy yields to the states
                    // around it (`straighten` puts long edges on one line where it can).
                    let weight = if nodes[v].w > 0.0 { 1.0 } else { 0.3 };
                    target.push((x[nodes[v].anchor], weight));
                    continue;
                }
                let far: Vec<f64> = if downward {
                    up[v].iter().map(|&w| x[nodes[w].ends.0]).collect()
                } else {
                    down[v].iter().map(|&w| x[nodes[w].ends.1]).collect()
                };
                if far.is_empty() {
                    target.push((x[v], 0.05));
                } else {
                    target.push((far.iter().sum::<f64>() / far.len() as f64, 1.0));
                }
            }
            let placed = closest_placement(nodes, layer, &target);
            for (&v, px) in layer.iter().zip(placed) {
                x[v] = px;
            }
        }
    }
    x
}

/// The x of a layer's nodes, in order and at least `separation` apart, nearest (in weighted
/// least squares) to their targets: with `y_i = x_i - o_i` (o_i the sum of separations before
/// i) the constraints become `y_i <= y_{i+1}`, an isotonic regression, solved exactly by
/// pooling adjacent violators.
fn closest_placement(nodes: &[Node], layer: &[usize], target: &[(f64, f64)]) -> Vec<f64> {
    let mut offset = vec![0.0f64; layer.len()];
    for i in 1..layer.len() {
        offset[i] = offset[i - 1] + separation(&nodes[layer[i - 1]], &nodes[layer[i]]);
    }
    // Blocks of pooled nodes: (weight sum, weighted value sum, count).
    let mut blocks: Vec<(f64, f64, usize)> = Vec::new();
    for (i, &(t, w)) in target.iter().enumerate() {
        blocks.push((w, w * (t - offset[i]), 1));
        while blocks.len() >= 2 {
            let b = blocks[blocks.len() - 1];
            let a = blocks[blocks.len() - 2];
            if a.1 / a.0 > b.1 / b.0 {
                blocks.pop();
                let last = blocks.last_mut().expect("two blocks");
                *last = (a.0 + b.0, a.1 + b.1, a.2 + b.2);
            } else {
                break;
            }
        }
    }
    let mut out = Vec::with_capacity(layer.len());
    for (w, s, count) in blocks {
        let y = s / w;
        for _ in 0..count {
            out.push(y + offset[out.len()]);
        }
    }
    out
}

/// Where `v` (in its layer) could stand at `c` without coming nearer its neighbours than
/// their separation.
fn fits(nodes: &[Node], layer: &[usize], i: usize, c: f64, x: &[f64]) -> bool {
    let v = layer[i];
    let left = i
        .checked_sub(1)
        .is_none_or(|j| c - x[layer[j]] >= separation(&nodes[layer[j]], &nodes[v]) - 0.01);
    let right = layer
        .get(i + 1)
        .is_none_or(|&r| x[r] - c >= separation(&nodes[v], &nodes[r]) - 0.01);
    left && right
}

/// Moves `layer[i]` to `c` if that pushes nothing but bare dummies (lines of other edges,
/// which `straighten` may move again) aside; whether it did.
fn try_move(nodes: &[Node], layer: &[usize], i: usize, c: f64, x: &mut [f64]) -> bool {
    let bare = |v: usize| nodes[v].kind == (Kind::Dummy { label: false });
    let mut nx: Vec<f64> = layer.iter().map(|&v| x[v]).collect();
    nx[i] = c;
    for j in i + 1..layer.len() {
        let need = nx[j - 1] + separation(&nodes[layer[j - 1]], &nodes[layer[j]]);
        if nx[j] >= need - 0.01 {
            break;
        }
        if !bare(layer[j]) {
            return false;
        }
        nx[j] = need;
    }
    for j in (0..i).rev() {
        let need = nx[j + 1] - separation(&nodes[layer[j]], &nodes[layer[j + 1]]);
        if nx[j] <= need + 0.01 {
            break;
        }
        if !bare(layer[j]) {
            return false;
        }
        nx[j] = need;
    }
    for (&v, nxv) in layer.iter().zip(nx) {
        x[v] = nxv;
    }
    true
}

/// Puts a state right under the state it follows when it has no other way in and the edge is
/// the main path (a `Next`, a start edge, or the only edge out of its source), top down, so
/// that the main path runs straight where the neighbours leave room.
fn align_main_path(
    nodes: &[Node],
    order: &[Vec<usize>],
    ledges: &[LEdge],
    down: &[Vec<usize>],
    up: &[Vec<usize>],
    kinds: &[EdgeKind],
    x: &mut [f64],
) {
    let mut pos = vec![0usize; nodes.len()];
    for layer in order {
        for (i, &v) in layer.iter().enumerate() {
            pos[v] = i;
        }
    }
    let mut links: Vec<usize> = (0..ledges.len())
        .filter(|&i| {
            let e = &ledges[i];
            let main = matches!(kinds[i], EdgeKind::Next | EdgeKind::Start | EdgeKind::End)
                || down[e.from].len() == 1;
            // One rank apart: the chain is source, (bare) dummy, target.
            !e.back && e.chain.len() == 3 && main && up[e.to].len() == 1
        })
        .collect();
    links.sort_by_key(|&i| (nodes[ledges[i].from].layer, i));
    for i in links {
        let (a, b) = (ledges[i].from, ledges[i].to);
        let (xa, xb) = (x[a], x[b]);
        if !try_move(nodes, &order[nodes[b].layer], pos[b], xa, x) && down[a].len() == 1 {
            try_move(nodes, &order[nodes[a].layer], pos[a], xb, x);
        }
    }
}

/// Puts each long edge's dummies on one vertical line where the neighbours in their layers
/// leave room: at the target's x, else the source's, else one of their own.
fn straighten(nodes: &[Node], order: &[Vec<usize>], ledges: &[LEdge], x: &mut [f64]) {
    let mut pos = vec![0usize; nodes.len()];
    for layer in order {
        for (i, &v) in layer.iter().enumerate() {
            pos[v] = i;
        }
    }
    let fits = |d: usize, c: f64, x: &[f64]| fits(nodes, &order[nodes[d].layer], pos[d], c, x);
    // Twice: moving one edge's line can make room for another's.
    for le in ledges.iter().chain(ledges).filter(|e| e.chain.len() > 2) {
        let dummies = &le.chain[1..le.chain.len() - 1];
        let anchor = nodes[dummies[0]].anchor;
        let mut candidates = vec![x[anchor], x[le.to], x[le.from]];
        candidates.extend(dummies.iter().map(|&d| x[d]));
        if let Some(c) = candidates
            .into_iter()
            .find(|&c| dummies.iter().all(|&d| fits(d, c, x)))
        {
            for &d in dummies {
                x[d] = c;
            }
        }
    }
}

/// A polyline without repeated points or points in the middle of a straight run.
fn simplify(pts: Vec<Point>) -> Vec<Point> {
    let mut out: Vec<Point> = Vec::with_capacity(pts.len());
    for p in pts {
        if out.last().is_some_and(|q| dist(*q, p) < 0.01) {
            continue;
        }
        if out.len() >= 2 {
            let (a, b) = (out[out.len() - 2], out[out.len() - 1]);
            let same_x = (a.0 - b.0).abs() < 0.01 && (b.0 - p.0).abs() < 0.01;
            let same_y = (a.1 - b.1).abs() < 0.01 && (b.1 - p.1).abs() < 0.01;
            if same_x || same_y {
                out.pop();
            }
        }
        out.push(p);
    }
    out
}

/// An orthogonal polyline with rounded corners.
fn rounded(pts: &[Point], r: f64) -> Vec<Seg> {
    let mut path = vec![Seg::Move(pts[0])];
    for i in 1..pts.len().saturating_sub(1) {
        let (p, c, q) = (pts[i - 1], pts[i], pts[i + 1]);
        let d_in = dist(p, c);
        let d_out = dist(c, q);
        if d_in < 0.01 || d_out < 0.01 {
            continue;
        }
        let ri = r.min(d_in / 2.0);
        let ro = r.min(d_out / 2.0);
        let a = (c.0 + (p.0 - c.0) / d_in * ri, c.1 + (p.1 - c.1) / d_in * ri);
        let b = (
            c.0 + (q.0 - c.0) / d_out * ro,
            c.1 + (q.1 - c.1) / d_out * ro,
        );
        path.push(Seg::Line(a));
        path.push(Seg::Curve(c, c, b));
    }
    if let Some(&last) = pts.last() {
        path.push(Seg::Line(last));
    }
    path
}

fn dist(a: Point, b: Point) -> f64 {
    ((a.0 - b.0).powi(2) + (a.1 - b.1).powi(2)).sqrt()
}
