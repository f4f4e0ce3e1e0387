//! The graph as a standalone SVG 1.1 document (or a fragment to inline in HTML), in the
//! shape the live workflow page relies on:
//!
//! * every state is `<g class="state t-TYPE" data-state="NAME" data-path="/States/..."
//!   data-type="Type" id="state-N">` holding `<rect class="box">`, `<text class="name">` and
//!   an empty `<text class="counts">` under the name for the page to fill. A Map or Parallel
//!   has `compound` in its classes and its box encloses its nested machines; a Parallel's
//!   group also holds one `<rect class="branch" data-machine="...">` per branch. Nested
//!   states are *siblings* that follow their compound (parents come first, so they are drawn
//!   above it) and carry `data-parent="NAME"`.
//! * every edge is `<g class="edge e-KIND" data-from="NAME|(start)" data-to="NAME|(end)">`
//!   (KIND: next, choice, default, catch, start, end; `back` added for a loop) holding
//!   `<path class="line">` and, when labelled, `<rect class="label-bg">` and
//!   `<text class="label">` (and a `<title>` with the whole text when it was shortened).
//! * each machine has a start marker `<circle class="start-marker" data-machine="PATH">` and
//!   an end marker `<g class="end-marker" data-machine="PATH">` (PATH empty at the top level).
//!
//! States, edges and markers sit in `<g class="states">`, `<g class="edges">` and
//! `<g class="markers">`, drawn in that order.

use std::fmt::Write;

use super::layout::{self, Layout, Point, Rect, Seg};
use super::{EdgeKind, Graph};

/// How to write the SVG.
#[derive(Clone, Debug, Default)]
pub struct SvgOptions {
    /// Start with the `<?xml ...?>` declaration (a standalone file).
    pub prolog: bool,
    /// Put before every `id` (and the references to them), so that several drawings can be
    /// inlined into one HTML page.
    pub id_prefix: String,
}

/// A standalone SVG document.
pub fn svg(g: &Graph) -> String {
    svg_with(
        g,
        &SvgOptions {
            prolog: true,
            ..SvgOptions::default()
        },
    )
}

/// The definition `text` drawn for the workflow page under `scope` (a pipeline's or state
/// machine's name): the `<svg>` element alone, its ids prefixed from `scope` so that several
/// drawings share one page; `None` when it cannot be drawn.
pub fn page_drawing(text: &[u8], scope: &str) -> Option<String> {
    let g = Graph::from_json(text).ok()?;
    let prefix: String = scope
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let opts = SvgOptions {
        prolog: false,
        id_prefix: format!("{prefix}-"),
    };
    Some(svg_with(&g, &opts))
}

/// The `<svg>` element alone, to inline in HTML.
pub fn svg_fragment(g: &Graph) -> String {
    svg_with(g, &SvgOptions::default())
}

const STYLE: &str = "
.stepstream-graph{font-family:system-ui,-apple-system,'Segoe UI',Roboto,'Helvetica Neue',Arial,sans-serif}
.stepstream-graph .box{fill:#f7f8fa;stroke:#8c96a8;stroke-width:1.2}
.stepstream-graph .t-task .box{fill:#eaf1fd;stroke:#5b7fc7}
.stepstream-graph .t-choice .box{fill:#fdf3e1;stroke:#c9973a}
.stepstream-graph .t-pass .box{fill:#edf6ee;stroke:#6a9f6a}
.stepstream-graph .t-wait .box{fill:#f3eefa;stroke:#8d74b8}
.stepstream-graph .t-succeed .box{fill:#dff2e6;stroke:#2f8f57}
.stepstream-graph .t-fail .box{fill:#fbe8e8;stroke:#c0504d}
.stepstream-graph .t-map .box{fill:#f0f5fa;stroke:#5a8db5}
.stepstream-graph .t-parallel .box{fill:#f7f4ec;stroke:#a08a4f}
.stepstream-graph .branch{fill:#fff;fill-opacity:.7;stroke:#c4bca4;stroke-dasharray:4 3}
.stepstream-graph .name{font-size:13px;fill:#1f2937;text-anchor:middle}
.stepstream-graph .counts{font-size:11px;fill:#4b5563;text-anchor:middle}
.stepstream-graph .line{fill:none;stroke:#6b7280;stroke-width:1.3}
.stepstream-graph .e-choice .line{stroke:#a8812f}
.stepstream-graph .e-default .line{stroke:#a8812f;stroke-dasharray:2 3}
.stepstream-graph .e-catch .line{stroke:#c0504d;stroke-dasharray:6 4}
.stepstream-graph .label{font-family:ui-monospace,Menlo,Consolas,'DejaVu Sans Mono',monospace;font-size:11px;fill:#374151;text-anchor:middle}
.stepstream-graph .e-catch .label{fill:#a33b38}
.stepstream-graph .label-bg{fill:#fff;fill-opacity:.92}
.stepstream-graph .start-marker{fill:#374151}
.stepstream-graph .end-marker .outer{fill:#fff;stroke:#374151;stroke-width:1.5}
.stepstream-graph .end-marker .inner{fill:#374151}
.stepstream-graph .arrow{fill:#6b7280}
.stepstream-graph .arrow-choice{fill:#a8812f}
.stepstream-graph .arrow-catch{fill:#c0504d}
";

/// The arrowheads, one per colour of line.
const ARROWS: &[(&str, &str)] = &[
    ("arrow", "arrow"),
    ("arrow-choice", "arrow-choice"),
    ("arrow-catch", "arrow-catch"),
];

fn arrow_for(kind: EdgeKind) -> &'static str {
    match kind {
        EdgeKind::Choice | EdgeKind::Default => "arrow-choice",
        EdgeKind::Catch => "arrow-catch",
        _ => "arrow",
    }
}

/// The SVG of a graph, as `opts` says.
pub fn svg_with(g: &Graph, opts: &SvgOptions) -> String {
    let l = layout::layout(g);
    let mut out = String::with_capacity(4096 + 600 * (g.states.len() + g.edges.len()));
    write_svg(&mut out, g, &l, opts).expect("writing to a String cannot fail");
    out
}

fn write_svg(out: &mut String, g: &Graph, l: &Layout, opts: &SvgOptions) -> std::fmt::Result {
    let p = &opts.id_prefix;
    if opts.prolog {
        out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    }
    let (w, h) = (num(l.width.ceil()), num(l.height.ceil()));
    writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" class=\"stepstream-graph\" \
         width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\">"
    )?;
    out.push_str("<defs>\n<style type=\"text/css\">");
    out.push_str(STYLE);
    out.push_str("</style>\n");
    for (id, class) in ARROWS {
        writeln!(
            out,
            "<marker id=\"{p}{id}\" class=\"{class}\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" \
             markerWidth=\"9\" markerHeight=\"9\" markerUnits=\"userSpaceOnUse\" orient=\"auto\">\
             <path d=\"M0,1 L10,5 L0,9 z\"/></marker>",
            p = esc(p)
        )?;
    }
    out.push_str("</defs>\n");

    out.push_str("<g class=\"states\">\n");
    for (i, s) in g.states.iter().enumerate() {
        let r = l.states[i];
        let compound = if s.is_compound() { " compound" } else { "" };
        write!(
            out,
            "<g class=\"state{compound} t-{}\" data-state=\"{}\" data-path=\"{}\" data-type=\"{}\"",
            type_class(&s.kind),
            esc(&s.name),
            esc(&s.path),
            esc(&s.kind)
        )?;
        if let Some(parent) = g.machines[s.machine].parent {
            write!(out, " data-parent=\"{}\"", esc(&g.states[parent].name))?;
        }
        writeln!(out, " id=\"{}state-{i}\">", esc(p))?;
        writeln!(
            out,
            "  <rect class=\"box\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"{}\"/>",
            num(r.x),
            num(r.y),
            num(r.w),
            num(r.h),
            if s.is_compound() { 8 } else { 6 }
        )?;
        if s.kind == "Parallel" {
            for &m in &s.machines {
                let a = l.machines[m].area;
                writeln!(
                    out,
                    "  <rect class=\"branch\" data-machine=\"{}\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"6\"/>",
                    esc(&g.machines[m].path),
                    num(a.x),
                    num(a.y),
                    num(a.w),
                    num(a.h)
                )?;
            }
        }
        writeln!(
            out,
            "  <text class=\"name\" x=\"{}\" y=\"{}\">{}</text>",
            num(r.cx()),
            num(r.y + 19.0),
            esc(&s.name)
        )?;
        writeln!(
            out,
            "  <text class=\"counts\" x=\"{}\" y=\"{}\"></text>",
            num(r.cx()),
            num(r.y + 35.0)
        )?;
        out.push_str("</g>\n");
    }
    out.push_str("</g>\n<g class=\"edges\">\n");
    for (i, e) in g.edges.iter().enumerate() {
        let el = &l.edges[i];
        let back = if el.back { " back" } else { "" };
        writeln!(
            out,
            "<g class=\"edge e-{}{back}\" data-from=\"{}\" data-to=\"{}\">",
            e.kind.as_str(),
            esc(g.endpoint_name(e.from)),
            esc(g.endpoint_name(e.to))
        )?;
        if let Some(full) = &e.full_label {
            writeln!(out, "  <title>{}</title>", esc(full))?;
        }
        writeln!(
            out,
            "  <path class=\"line\" d=\"{}\" marker-end=\"url(#{}{})\"/>",
            path_data(&el.path),
            esc(p),
            arrow_for(e.kind)
        )?;
        if let (Some(text), Some(r)) = (&e.label, el.label) {
            label(out, text, r)?;
        }
        out.push_str("</g>\n");
    }
    out.push_str("</g>\n<g class=\"markers\">\n");
    for (i, m) in g.machines.iter().enumerate() {
        let ml = &l.machines[i];
        let (x, y) = ml.start;
        writeln!(
            out,
            "<circle class=\"start-marker\" data-machine=\"{}\" cx=\"{}\" cy=\"{}\" r=\"{}\"/>",
            esc(&m.path),
            num(x),
            num(y),
            num(layout::START_R)
        )?;
        if let Some((x, y)) = ml.end {
            writeln!(
                out,
                "<g class=\"end-marker\" data-machine=\"{}\"><circle class=\"outer\" cx=\"{x}\" cy=\"{y}\" r=\"{}\"/>\
                 <circle class=\"inner\" cx=\"{x}\" cy=\"{y}\" r=\"{}\"/></g>",
                esc(&m.path),
                num(layout::END_R - 0.75),
                num(layout::END_R - 4.5),
                x = num(x),
                y = num(y)
            )?;
        }
    }
    out.push_str("</g>\n</svg>\n");
    Ok(())
}

fn label(out: &mut String, text: &str, r: Rect) -> std::fmt::Result {
    writeln!(
        out,
        "  <rect class=\"label-bg\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"3\"/>",
        num(r.x),
        num(r.y),
        num(r.w),
        num(r.h)
    )?;
    writeln!(
        out,
        "  <text class=\"label\" x=\"{}\" y=\"{}\">{}</text>",
        num(r.cx()),
        num(r.y + r.h - 4.5),
        esc(text)
    )
}

/// The `d` attribute of a path.
fn path_data(path: &[Seg]) -> String {
    let mut d = String::new();
    let pt = |d: &mut String, (x, y): Point| {
        let _ = write!(d, "{},{}", num(x), num(y));
    };
    for s in path {
        if !d.is_empty() {
            d.push(' ');
        }
        match *s {
            Seg::Move(p) => {
                d.push('M');
                pt(&mut d, p);
            }
            Seg::Line(p) => {
                d.push('L');
                pt(&mut d, p);
            }
            Seg::Curve(a, b, c) => {
                d.push('C');
                pt(&mut d, a);
                d.push(' ');
                pt(&mut d, b);
                d.push(' ');
                pt(&mut d, c);
            }
        }
    }
    d
}

/// The CSS class of a state type: `Task` -> `task` (anything but letters and digits dropped).
fn type_class(kind: &str) -> String {
    let c: String = kind
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if c.is_empty() { "unknown".into() } else { c }
}

/// A coordinate with one decimal at most.
fn num(v: f64) -> String {
    let r = (v * 10.0).round() / 10.0;
    if r == 0.0 {
        return "0".into();
    }
    if r.fract() == 0.0 {
        format!("{}", r as i64)
    } else {
        format!("{r:.1}")
    }
}

/// Text for XML character data and attribute values: markup characters as entities, and the
/// characters XML 1.0 cannot hold at all (most control characters) as U+FFFD.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // As references, so that attribute values keep them too.
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}
