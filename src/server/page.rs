//! The workflow page (`GET /`) and its JSON (`/api/pipelines`, `/api/pipelines/NAME/states`):
//! each pipeline's workflow drawn as SVG (drawn once, when the pipeline starts), with the
//! per-state counts the shards keep and the last dead letters, refreshed by a small script of
//! ours. Everything is in the binary: no CDN, no external fonts or scripts. Read-only.

use crate::json::{self, Value};
use crate::metrics::{MachineView, PipelineStats, StateSummary};

const SCRIPT: &str = include_str!("page.js");
const STYLE: &str = include_str!("page.css");

/// Text for HTML element content and attribute values (the drawing's escaping: markup
/// characters as entities).
pub fn escape_html(s: &str) -> String {
    crate::graph::escape_markup(s)
}

/// The page: one section per pipeline, then one per state machine of the API.
pub fn index(pipelines: &[PipelineStats], machines: &[MachineView]) -> String {
    let mut html = String::with_capacity(16 * 1024);
    html.push_str(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>stepstream: workflows</title><style>",
    );
    html.push_str(STYLE);
    html.push_str("</style></head><body><header><h1>stepstream</h1><span>");
    html.push_str(&format!(
        "{} pipeline(s), {} state machine(s) \u{b7} counts refresh every second \u{b7} <a style=\"color:#afb8c1\" href=\"metrics\">/metrics</a>",
        pipelines.len(),
        machines.len()
    ));
    html.push_str("</span></header>");
    if pipelines.len() + machines.len() > 1 {
        html.push_str("<nav>");
        for (i, p) in pipelines.iter().enumerate() {
            html.push_str(&format!(
                "<a href=\"#pipeline-{i}\">{}</a>",
                escape_html(&p.name)
            ));
        }
        for (i, m) in machines.iter().enumerate() {
            html.push_str(&format!(
                "<a href=\"#machine-{i}\">{} (API)</a>",
                escape_html(&m.name)
            ));
        }
        html.push_str("</nav>");
    }
    if pipelines.is_empty() && machines.is_empty() {
        html.push_str(
            "<section class=\"pipeline\"><p>No pipeline is running and no state machine is defined yet.</p></section>",
        );
    }
    for (i, p) in pipelines.iter().enumerate() {
        let name = escape_html(&p.name);
        html.push_str(&format!(
            "<section class=\"pipeline\" id=\"pipeline-{i}\" data-pipeline=\"{name}\">\
             <h2>{name}</h2><div class=\"totals\">&nbsp;</div><div class=\"drawing\">"
        ));
        match &p.drawing {
            Some(svg) => html.push_str(svg),
            None => html.push_str("<p>(no drawing for this workflow)</p>"),
        }
        html.push_str(
            "</div><h3>Last dead letters</h3><p class=\"dead-empty\">None yet.</p>\
             <table class=\"dead\"><thead><tr><th>time (UTC)</th><th>state</th><th>error</th>\
             <th>cause</th><th>source (topic/partition/offset)</th></tr></thead><tbody></tbody>\
             </table></section>",
        );
    }
    for (i, m) in machines.iter().enumerate() {
        let name = escape_html(&m.name);
        html.push_str(&format!(
            "<section class=\"pipeline machine\" id=\"machine-{i}\" data-machine=\"{name}\">\
             <h2>{name} <small>({} state machine of the API)</small></h2>\
             <div class=\"arn\">{}</div><div class=\"drawing\">",
            m.kind,
            escape_html(&m.arn)
        ));
        match &m.drawing {
            Some(svg) => html.push_str(svg),
            None => html.push_str("<p>(no drawing for this workflow)</p>"),
        }
        html.push_str("</div></section>");
    }
    html.push_str("<script>");
    html.push_str(SCRIPT);
    html.push_str("</script></body></html>\n");
    html
}

/// `/api/pipelines`: the pipelines' names and their executions by status.
pub fn pipelines_json(pipelines: &[PipelineStats]) -> String {
    let list = pipelines
        .iter()
        .map(|p| {
            Value::object_from([
                ("name", Value::string(&p.name)),
                ("executions", executions(p)),
                (
                    "states",
                    Value::int(p.plan.as_ref().map_or(0, |plan| plan.states.len()) as i64),
                ),
            ])
        })
        .collect();
    json::to_string(&Value::object_from([("pipelines", Value::array(list))]))
}

/// `/api/pipelines/NAME/states`: every state's counts, the executions by status and the last
/// dead letters.
pub fn states_json(p: &PipelineStats) -> String {
    let states = p.states().iter().map(state_json).collect();
    let dead = p
        .recent_dead_letters()
        .into_iter()
        .map(|d| {
            Value::object_from([
                ("at_ms", Value::int(d.at_ms)),
                ("error", Value::String(d.error)),
                ("cause", Value::String(d.cause)),
                ("state", d.state.map_or(Value::Null, Value::String)),
                ("source", d.source.to_json()),
            ])
        })
        .collect();
    json::to_string(&Value::object_from([
        ("pipeline", Value::string(&p.name)),
        ("executions", executions(p)),
        ("states", Value::array(states)),
        ("dead_letters", Value::array(dead)),
    ]))
}

/// `/api/machines`: the API's state machines.
pub fn machines_json(machines: &[MachineView]) -> String {
    let list = machines
        .iter()
        .map(|m| {
            Value::object_from([
                ("name", Value::string(&m.name)),
                ("stateMachineArn", Value::string(&m.arn)),
                ("type", Value::string(m.kind)),
                ("states", Value::int(m.states.len() as i64)),
            ])
        })
        .collect();
    json::to_string(&Value::object_from([("machines", Value::array(list))]))
}

/// `/api/machines/NAME/states`: every state's counts of the machine's current definition.
pub fn machine_states_json(m: &MachineView) -> String {
    json::to_string(&Value::object_from([
        ("machine", Value::string(&m.name)),
        ("stateMachineArn", Value::string(&m.arn)),
        ("type", Value::string(m.kind)),
        (
            "states",
            Value::array(m.states.iter().map(state_json).collect()),
        ),
    ]))
}

fn executions(p: &PipelineStats) -> Value {
    Value::object_from(
        p.executions()
            .into_iter()
            .map(|(status, n)| (status, Value::int(n as i64))),
    )
}

fn state_json(s: &StateSummary) -> Value {
    let ms = |q: f64| {
        s.quantile_ms(q)
            .map_or(Value::Null, |v| Value::int(v as i64))
    };
    let errors = s
        .errors
        .iter()
        .map(|(e, n)| {
            Value::object_from([
                ("error", Value::string(e)),
                ("count", Value::int(*n as i64)),
            ])
        })
        .collect();
    Value::object_from([
        ("name", Value::String(s.name.clone())),
        ("entered", Value::int(s.entered as i64)),
        ("succeeded", Value::int(s.succeeded as i64)),
        ("failed", Value::int(s.failed as i64)),
        ("retried", Value::int(s.retried as i64)),
        ("caught", Value::int(s.caught as i64)),
        ("errors", Value::array(errors)),
        ("p50_ms", ms(0.5)),
        ("p99_ms", ms(0.99)),
        ("duration_sum_ms", Value::int(s.duration_sum_ms as i64)),
    ])
}

/// A percent-encoded path segment, decoded (`None` when it is not UTF-8 or malformed).
pub fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_escaped_and_decoded() {
        assert_eq!(
            escape_html("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&apos;"
        );
        assert_eq!(percent_decode("orders%20v2").as_deref(), Some("orders v2"));
        assert_eq!(percent_decode("caf%C3%A9").as_deref(), Some("café"));
        assert_eq!(percent_decode("bad%2"), None);
        assert_eq!(percent_decode("bad%zz"), None);
    }

    #[test]
    fn the_page_has_a_section_per_pipeline_and_no_outside_resources() {
        let mut p = PipelineStats::new("orders<1>", Vec::new());
        p.drawing = Some("<svg xmlns=\"http://www.w3.org/2000/svg\"></svg>".to_string());
        let machine = MachineView {
            name: "api-one".to_string(),
            arn: "arn:aws:states:us-east-1:1:stateMachine:api-one".to_string(),
            kind: "EXPRESS",
            drawing: None,
            states: Vec::new(),
        };
        let html = index(&[p, PipelineStats::new("second", Vec::new())], &[machine]);
        assert!(html.contains("data-machine=\"api-one\""));
        assert!(html.contains("EXPRESS state machine of the API"));
        assert!(html.contains("data-pipeline=\"orders&lt;1&gt;\""));
        assert!(html.contains("<h2>second</h2>"));
        assert!(html.contains("<svg xmlns"));
        assert!(html.contains("(no drawing for this workflow)"));
        for outside in ["http://", "https://", "//cdn", "src=\""] {
            let allowed = "http://www.w3.org/2000/svg";
            assert!(
                !html.replace(allowed, "").contains(outside),
                "the page refers to {outside}"
            );
        }
    }
}
