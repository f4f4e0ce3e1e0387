//! `stepstream graph` through the real binary: every workflow under `configs/workflows/` is
//! drawn as well-formed SVG holding every state (nested ones included) as a `g.state` and as
//! text, and as DOT naming every state; an invalid definition exits 2 naming the problem's path.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use stepstream::json::{self, Value};

const SVG_NS: &str = "http://www.w3.org/2000/svg";

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_stepstream"))
}

fn graph(args: &[&str]) -> Output {
    bin()
        .arg("graph")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("the binary runs")
}

fn workflows() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/workflows");
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".asl.json"))
        .collect();
    out.sort();
    assert!(out.len() >= 5, "workflows under {}", dir.display());
    out
}

/// Every state name of a definition, nested machines (Map, Parallel branches) included.
fn state_names(machine: &Value, out: &mut Vec<String>) {
    let Some(states) = machine.get("States").and_then(Value::as_object) else {
        return;
    };
    for (name, state) in states.iter() {
        out.push(name.to_string());
        for key in ["ItemProcessor", "Iterator"] {
            if let Some(inner) = state.get(key) {
                state_names(inner, out);
            }
        }
        if let Some(branches) = state.get("Branches").and_then(Value::as_array) {
            for b in branches.iter() {
                state_names(b, out);
            }
        }
    }
}

fn names_of(path: &Path) -> Vec<String> {
    let def = json::parse(&std::fs::read(path).unwrap()).unwrap();
    let mut names = Vec::new();
    state_names(&def, &mut names);
    assert!(!names.is_empty());
    names
}

fn has_class(node: &roxmltree::Node, class: &str) -> bool {
    node.attribute("class")
        .is_some_and(|c| c.split_whitespace().any(|c| c == class))
}

#[test]
fn every_workflow_is_drawn_as_svg_with_every_state() {
    for path in workflows() {
        let out = graph(&[path.to_str().unwrap()]);
        let shown = path.display();
        assert!(
            out.status.success(),
            "{shown}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let doc = roxmltree::Document::parse(&text)
            .unwrap_or_else(|e| panic!("{shown}: not well-formed XML: {e}"));
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "svg", "{shown}");
        assert_eq!(root.tag_name().namespace(), Some(SVG_NS), "{shown}");
        assert!(root.attribute("viewBox").is_some(), "{shown}: a viewBox");

        let groups: Vec<roxmltree::Node> = doc
            .descendants()
            .filter(|n| n.has_tag_name((SVG_NS, "g")) && has_class(n, "state"))
            .collect();
        let texts: Vec<&str> = doc
            .descendants()
            .filter(|n| n.has_tag_name((SVG_NS, "text")))
            .filter_map(|n| n.text())
            .collect();
        let names = names_of(&path);
        assert_eq!(groups.len(), names.len(), "{shown}: one g.state per state");
        for name in &names {
            assert!(
                groups
                    .iter()
                    .any(|g| g.attribute("data-state") == Some(name.as_str())),
                "{shown}: {name} is a g.state"
            );
            assert!(texts.contains(&name.as_str()), "{shown}: {name} is written");
        }
    }
}

#[test]
fn every_workflow_is_drawn_as_dot_with_every_state() {
    for path in workflows() {
        let out = graph(&[path.to_str().unwrap(), "--format", "dot"]);
        let shown = path.display();
        assert!(out.status.success(), "{shown}");
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.starts_with("digraph "), "{shown}");
        assert_eq!(
            text.matches('{').count(),
            text.matches('}').count(),
            "{shown}: balanced braces"
        );
        for name in names_of(&path) {
            assert!(text.contains(&format!("\"{name}\"")), "{shown}: {name}");
        }
    }
}

#[test]
fn the_drawing_goes_to_a_file_or_comes_from_standard_input() {
    let path = &workflows()[0];
    let dir = std::env::temp_dir().join(format!("stepstream-graph-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("w.svg");
    let out = graph(&[path.to_str().unwrap(), "--output", file.to_str().unwrap()]);
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
    let written = std::fs::read_to_string(&file).unwrap();
    assert!(written.starts_with("<?xml"));
    std::fs::remove_dir_all(&dir).unwrap();

    let mut child = bin()
        .args(["graph", "-"])
        .stdin(std::fs::File::open(path).unwrap())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut piped = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut piped).unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(piped, written, "the same drawing");
}

#[test]
fn an_invalid_definition_exits_2_naming_the_path() {
    let dir = std::env::temp_dir().join(format!("stepstream-graph-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.asl.json");
    std::fs::write(
        &bad,
        r#"{"StartAt":"A","States":{"A":{"Type":"Pass","Next":"Nowhere"},"B":{"Type":"Succeed"}}}"#,
    )
    .unwrap();
    let out = graph(&[bad.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(out.stdout.is_empty());
    assert!(
        err.starts_with(&format!(
            "stepstream graph: {} is not a valid definition:",
            bad.display()
        )),
        "{err}"
    );
    assert!(err.contains("at /States/A/Next"), "{err}");

    let missing = dir.join("missing.asl.json");
    let out = graph(&[missing.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        err.starts_with(&format!(
            "stepstream graph: cannot read {}:",
            missing.display()
        )),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
