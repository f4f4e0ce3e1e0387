//! The graph model, layout, SVG and DOT on small definitions and on the workloads.

use super::*;

fn graph(def: &str) -> Graph {
    Graph::from_json(def.as_bytes()).unwrap_or_else(|e| panic!("drawable: {e}"))
}

/// Every edge as `from -kind-> to: label`.
fn edges(g: &Graph) -> Vec<String> {
    g.edges
        .iter()
        .map(|e| {
            let mut s = format!(
                "{} -{}-> {}",
                g.endpoint_name(e.from),
                e.kind.as_str(),
                g.endpoint_name(e.to)
            );
            if let Some(l) = &e.label {
                s.push_str(": ");
                s.push_str(l);
            }
            s
        })
        .collect()
}

fn rect(g: &Graph, l: &Layout, name: &str) -> Rect {
    l.states[g.state(name).unwrap_or_else(|| panic!("{name} is a state"))]
}

/// Whether state `a` holds `b` (at any depth).
fn holds(g: &Graph, a: usize, b: usize) -> bool {
    let mut m = g.states[b].machine;
    while let Some(p) = g.machines[m].parent {
        if p == a {
            return true;
        }
        m = g.states[p].machine;
    }
    false
}

/// The points a path passes (its segments' ends).
fn points(path: &[Seg]) -> Vec<(f64, f64)> {
    path.iter().map(Seg::end).collect()
}

/// The layout's promises: boxes of different states never overlap unless one holds the
/// other, and then it encloses it; labels overlap no box and no other label; no edge passes
/// through a state box of its own machine; edges start and end on their states' borders.
fn check_layout(g: &Graph) {
    let l = layout(g);
    let n = g.states.len();
    for a in 0..n {
        let ra = l.states[a];
        assert!(ra.w > 0.0 && ra.h > 0.0, "{} has a box", g.states[a].name);
        assert!(
            ra.x >= 0.0 && ra.y >= 0.0 && ra.right() <= l.width && ra.bottom() <= l.height,
            "{} is inside the drawing",
            g.states[a].name
        );
        for b in a + 1..n {
            let rb = l.states[b];
            let (na, nb) = (&g.states[a].name, &g.states[b].name);
            if holds(g, a, b) {
                assert!(ra.contains(&rb), "{na} {ra:?} encloses {nb} {rb:?}");
            } else if holds(g, b, a) {
                assert!(rb.contains(&ra), "{nb} encloses {na}");
            } else {
                assert!(!ra.overlaps(&rb), "{na} {ra:?} and {nb} {rb:?} overlap");
            }
        }
    }
    let labels: Vec<(usize, Rect)> = l
        .edges
        .iter()
        .enumerate()
        .filter_map(|(i, e)| e.label.map(|r| (i, r)))
        .collect();
    for (i, (e, r)) in labels.iter().enumerate() {
        assert!(
            r.right() <= l.width,
            "label of edge {e} is inside the drawing"
        );
        for (s, box_) in l.states.iter().enumerate() {
            if !g.states[s].is_compound() {
                assert!(
                    !r.overlaps(box_),
                    "label {:?} overlaps {}",
                    g.edges[*e].label,
                    g.states[s].name
                );
            }
        }
        for (f, q) in &labels[i + 1..] {
            assert!(!r.overlaps(q), "labels of edges {e} and {f} overlap");
        }
    }
    for (i, e) in g.edges.iter().enumerate() {
        let m = g.edge_machine(e);
        let pts = points(&l.edges[i].path);
        assert!(pts.len() >= 2, "edge {i} has a path");
        for w in pts.windows(2) {
            let seg = Rect {
                x: w[0].0.min(w[1].0),
                y: w[0].1.min(w[1].1),
                w: (w[0].0 - w[1].0).abs(),
                h: (w[0].1 - w[1].1).abs(),
            };
            for &s in &g.machines[m].states {
                let r = l.states[s];
                let inner = Rect {
                    x: r.x + 1.0,
                    y: r.y + 1.0,
                    w: r.w - 2.0,
                    h: r.h - 2.0,
                };
                // A zero-width segment still "overlaps" when it runs inside.
                let hit = seg.x < inner.right()
                    && inner.x < seg.right().max(seg.x + 0.001)
                    && seg.y < inner.bottom()
                    && inner.y < seg.bottom().max(seg.y + 0.001);
                assert!(!hit, "{} passes through {}", edges(g)[i], g.states[s].name);
            }
        }
        let on_border = |r: Rect, p: (f64, f64)| {
            let near = |a: f64, b: f64| (a - b).abs() < 0.01;
            (near(p.0, r.x) || near(p.0, r.right()) || near(p.1, r.y) || near(p.1, r.bottom()))
                && p.0 >= r.x - 0.01
                && p.0 <= r.right() + 0.01
                && p.1 >= r.y - 0.01
                && p.1 <= r.bottom() + 0.01
        };
        if let Endpoint::State(s) = e.from {
            assert!(on_border(l.states[s], pts[0]), "edge {i} leaves its source");
        }
        if let Endpoint::State(s) = e.to {
            let last = *pts.last().unwrap();
            assert!(on_border(l.states[s], last), "edge {i} reaches its target");
        }
    }
}

const CHOICE: &str = r#"{"StartAt":"Route","States":{
  "Route":{"Type":"Choice","Choices":[
    {"Variable":"$.type","StringEquals":"order","Next":"Order"},
    {"Variable":"$.n","NumericGreaterThan":10,"Next":"Big"},
    {"Variable":"$.x","IsPresent":true,"Next":"Big"},
    {"Variable":"$.y","IsNull":false,"Next":"Big"},
    {"Variable":"$.v","NumericLessThanEqualsPath":"$.limit","Next":"Big"},
    {"And":[{"Variable":"$.a","BooleanEquals":true},
            {"Or":[{"Variable":"$.b","StringMatches":"x*"},{"Not":{"Variable":"$.c","NumericEquals":1.5}}]}],
     "Next":"Order"}],
   "Default":"Other"},
  "Order":{"Type":"Pass","End":true},
  "Big":{"Type":"Pass","Next":"Done"},
  "Other":{"Type":"Fail","Error":"Unknown"},
  "Done":{"Type":"Succeed"}}}"#;

#[test]
fn choice_rules_become_labelled_edges_and_the_default_its_own() {
    let g = graph(CHOICE);
    assert_eq!(
        edges(&g),
        [
            "(start) -start-> Route",
            r#"Route -choice-> Order: $.type == "order""#,
            "Route -choice-> Big: $.n > 10",
            "Route -choice-> Big: IsPresent $.x",
            "Route -choice-> Big: not IsNull $.y",
            "Route -choice-> Big: $.v <= $.limit",
            r#"Route -choice-> Order: $.a == true and ($.b matches "x*" or no…"#,
            "Route -default-> Other: default",
            "Order -end-> (end)",
            "Big -next-> Done",
            "Other -end-> (end)",
            "Done -end-> (end)",
        ]
    );
    let and = &g.edges[6];
    assert_eq!(
        and.full_label.as_deref(),
        Some(r#"$.a == true and ($.b matches "x*" or not $.c == 1.5)"#)
    );
    assert_eq!(and.label.as_ref().unwrap().chars().count(), LABEL_MAX);
    let route = &g.states[g.state("Route").unwrap()];
    assert!(route.start && !route.end);
    assert_eq!(route.path, "/States/Route");
    assert!(g.states[g.state("Other").unwrap()].end);

    // Ranks: the Choice above its targets, the three targets on one row, Done below Big.
    let l = layout(&g);
    let y = |name| rect(&g, &l, name).y;
    assert!(y("Route") < y("Order"));
    assert_eq!(y("Order"), y("Big"));
    assert_eq!(y("Big"), y("Other"));
    assert!(y("Big") < y("Done"));
    check_layout(&g);
}

#[test]
fn jsonata_conditions_are_shown_without_their_braces() {
    let g = graph(
        r#"{"QueryLanguage":"JSONata","StartAt":"C","States":{
        "C":{"Type":"Choice","Choices":[
          {"Condition":"{% $states.input.n > 10 %}","Next":"A"},
          {"Condition":"{%\n  $x = 'a very long condition that goes on and on'\n%}","Next":"A"},
          {"Condition":true,"Next":"A"}],"Default":"A"},
        "A":{"Type":"Succeed"}}}"#,
    );
    let labels: Vec<_> = g.edges.iter().filter_map(|e| e.label.clone()).collect();
    assert_eq!(
        labels,
        [
            "$states.input.n > 10",
            "$x = 'a very long condition that goes o…",
            "true",
            "default"
        ]
    );
}

#[test]
fn catchers_are_dashed_edges_named_by_their_errors() {
    let g = graph(
        r#"{"StartAt":"Call","States":{
        "Call":{"Type":"Task","Resource":"arn:aws:states:::lambda:invoke","Next":"Ok",
          "Retry":[{"ErrorEquals":["States.Timeout"]}],
          "Catch":[{"ErrorEquals":["States.TaskFailed","Custom.Error"],"Next":"Recover"},
                   {"ErrorEquals":["States.ALL"],"ResultPath":"$.e","Next":"Fail"}]},
        "Recover":{"Type":"Pass","Next":"Ok"},
        "Ok":{"Type":"Succeed"},
        "Fail":{"Type":"Fail"}}}"#,
    );
    assert_eq!(
        edges(&g),
        [
            "(start) -start-> Call",
            "Call -next-> Ok",
            "Call -catch-> Recover: catch: States.TaskFailed, Custom.Error",
            "Call -catch-> Fail: catch: States.ALL",
            "Recover -next-> Ok",
            "Ok -end-> (end)",
            "Fail -end-> (end)",
        ]
    );
    check_layout(&g);
    let svg = svg(&g);
    assert!(svg.contains(r#"<g class="edge e-catch" data-from="Call" data-to="Recover">"#));
    assert!(svg.contains(".e-catch .line{stroke:#c0504d;stroke-dasharray:"));
    let dot = dot(&g);
    assert!(dot.contains(
        r##""Call" -> "Fail" [label="catch: States.ALL", style=dashed, color="#c0504d""##
    ));
}

const NESTED: &str = r#"{"StartAt":"Fan","States":{
  "Fan":{"Type":"Parallel","Next":"After","Catch":[{"ErrorEquals":["States.ALL"],"Next":"After"}],
    "Branches":[
      {"StartAt":"Left","States":{"Left":{"Type":"Pass","End":true}}},
      {"StartAt":"Outer","States":{
        "Outer":{"Type":"Map","ItemProcessor":{"StartAt":"Inner","States":{
          "Inner":{"Type":"Map","Iterator":{"StartAt":"Leaf","States":{
            "Leaf":{"Type":"Wait","Seconds":1,"End":true}}},"End":true}}},"Next":"Last"},
        "Last":{"Type":"Succeed"}}}]},
  "After":{"Type":"Pass","End":true}}}"#;

#[test]
fn map_and_parallel_hold_their_machines_at_any_depth() {
    let g = graph(NESTED);
    let names: Vec<&str> = g.states.iter().map(|s| s.name.as_str()).collect();
    // Parents come before their children: the stable ids of the SVG.
    assert_eq!(
        names,
        ["Fan", "Left", "Outer", "Inner", "Leaf", "Last", "After"]
    );
    let paths: Vec<&str> = g.states.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/States/Fan",
            "/States/Fan/Branches[0]/States/Left",
            "/States/Fan/Branches[1]/States/Outer",
            "/States/Fan/Branches[1]/States/Outer/ItemProcessor/States/Inner",
            "/States/Fan/Branches[1]/States/Outer/ItemProcessor/States/Inner/Iterator/States/Leaf",
            "/States/Fan/Branches[1]/States/Last",
            "/States/After",
        ]
    );
    let fan = g.state("Fan").unwrap();
    assert_eq!(g.states[fan].machines.len(), 2);
    assert!(g.states[fan].is_compound());
    let leaf = g.state("Leaf").unwrap();
    assert!(holds(&g, fan, leaf));
    assert!(holds(&g, g.state("Inner").unwrap(), leaf));
    assert!(!holds(&g, g.state("Left").unwrap(), leaf));
    assert_eq!(g.machines.len(), 5);
    // Each nested machine has its own start and end edges; edges stay in their machine.
    assert_eq!(
        edges(&g),
        [
            "(start) -start-> Fan",
            "(start) -start-> Left",
            "Left -end-> (end)",
            "(start) -start-> Outer",
            "(start) -start-> Inner",
            "(start) -start-> Leaf",
            "Leaf -end-> (end)",
            "Inner -end-> (end)",
            "Outer -next-> Last",
            "Last -end-> (end)",
            "Fan -next-> After",
            "Fan -catch-> After: catch: States.ALL",
            "After -end-> (end)",
        ]
    );

    let l = layout(&g);
    check_layout(&g);
    // The branches of the Parallel side by side, each box around its states.
    let (b0, b1) = (g.states[fan].machines[0], g.states[fan].machines[1]);
    let (a0, a1) = (l.machines[b0].area, l.machines[b1].area);
    assert!(a0.right() <= a1.x, "branches side by side: {a0:?} {a1:?}");
    assert_eq!(a0.y, a1.y);
    assert!(l.states[fan].contains(&a0) && l.states[fan].contains(&a1));
    assert!(a0.contains(&rect(&g, &l, "Left")));
    assert!(a1.contains(&rect(&g, &l, "Leaf")));
    assert!(rect(&g, &l, "Fan").bottom() < rect(&g, &l, "After").y);
}

#[test]
fn a_loop_goes_back_up_beside_the_drawing() {
    let g = graph(
        r#"{"StartAt":"Poll","States":{
        "Poll":{"Type":"Task","Resource":"arn:aws:states:::lambda:invoke","Next":"Check"},
        "Check":{"Type":"Choice","Choices":[
            {"Variable":"$.done","BooleanEquals":true,"Next":"Done"},
            {"Variable":"$.again","BooleanEquals":true,"Next":"Check"}],
          "Default":"Wait"},
        "Wait":{"Type":"Wait","Seconds":5,"Next":"Poll"},
        "Done":{"Type":"Succeed"}}}"#,
    );
    let l = layout(&g);
    check_layout(&g);
    let y = |n| rect(&g, &l, n).y;
    assert!(y("Poll") < y("Check") && y("Check") < y("Wait") && y("Wait") == y("Done"));
    let back: Vec<String> = g
        .edges
        .iter()
        .enumerate()
        .filter(|(i, _)| l.edges[*i].back)
        .map(|(i, _)| edges(&g)[i].clone())
        .collect();
    assert_eq!(
        back,
        [
            "Check -choice-> Check: $.again == true",
            "Wait -next-> Poll"
        ]
    );
    for (i, e) in l.edges.iter().enumerate().filter(|(_, e)| e.back) {
        // Its lane: the rightmost vertical run, right of every state beside it.
        let pts = points(&e.path);
        let far = pts.iter().map(|p| p.0).fold(0.0, f64::max);
        let on_lane: Vec<f64> = pts.iter().filter(|p| p.0 == far).map(|p| p.1).collect();
        let (top, bottom) = (
            on_lane.iter().copied().fold(f64::INFINITY, f64::min),
            on_lane.iter().copied().fold(0.0, f64::max),
        );
        assert!(bottom > top, "back edge {i} goes up a lane");
        for r in &l.states {
            if r.y < bottom && top < r.bottom() {
                assert!(
                    far > r.right(),
                    "back edge {i} runs right of the states beside it"
                );
            }
        }
        let last = *points(&e.path).last().unwrap();
        let to = match g.edges[i].to {
            Endpoint::State(s) => l.states[s],
            _ => unreachable!(),
        };
        assert!(
            last.1 >= to.y && last.1 <= to.bottom(),
            "it comes back into its target"
        );
    }
}

#[test]
fn unreachable_states_are_drawn_too() {
    let g = graph(
        r#"{"StartAt":"A","States":{
        "A":{"Type":"Pass","Next":"B"},
        "B":{"Type":"Succeed"},
        "Orphan":{"Type":"Pass","Next":"B"},
        "Island":{"Type":"Pass","End":true}}}"#,
    );
    assert_eq!(g.states.len(), 4);
    let l = layout(&g);
    check_layout(&g);
    // The orphan sits just above the state it leads to, beside A.
    assert_eq!(rect(&g, &l, "Orphan").y, rect(&g, &l, "A").y);
    let svg = svg(&g);
    for name in ["Orphan", "Island"] {
        assert!(svg.contains(&format!("data-state=\"{name}\"")));
    }
}

#[test]
fn names_and_labels_are_escaped_in_the_svg() {
    let name = "A <&\"'> B";
    let def = format!(
        r#"{{"StartAt":"{n}","States":{{"{n}":{{"Type":"Choice","Choices":[
        {{"Variable":"$.t","StringEquals":"<b>&amp;","Next":"x\ny"}}],"Default":"x\ny"}},
        "x\ny":{{"Type":"Succeed"}}}}}}"#,
        n = name.replace('"', "\\\"")
    );
    let g = graph(&def);
    let text = svg(&g);
    assert!(text.contains(r#"data-state="A &lt;&amp;&quot;&apos;&gt; B""#));
    assert!(text.contains(r#"$.t == &quot;&lt;b&gt;&amp;amp;&quot;"#));
    assert!(!text.contains("<b>"));
    let doc = roxmltree::Document::parse(&text).expect("well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    assert_eq!(
        root.tag_name().namespace(),
        Some("http://www.w3.org/2000/svg")
    );
    let states: Vec<&str> = doc
        .descendants()
        .filter_map(|n| n.attribute("data-state"))
        .collect();
    assert_eq!(states, [name, "x\ny"]);
    let texts: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text") && n.attribute("class") == Some("name"))
        .filter_map(|n| n.text())
        .collect();
    assert_eq!(texts, [name, "x\ny"]);
}

#[test]
fn the_svg_keeps_the_contract_of_the_live_page() {
    let g = graph(NESTED);
    let text = svg(&g);
    assert!(text.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg "));
    let frag = svg_fragment(&g);
    assert!(frag.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert_eq!(&text[text.find("<svg").unwrap()..], frag);
    assert_eq!(svg(&graph(NESTED)), text, "deterministic");

    let doc = roxmltree::Document::parse(&text).unwrap();
    let root = doc.root_element();
    assert!(root.attribute("viewBox").is_some() && root.attribute("width").is_some());
    let states: Vec<_> = doc
        .descendants()
        .filter(|n| {
            n.has_tag_name("g")
                && n.attribute("class")
                    .is_some_and(|c| c.split(' ').any(|c| c == "state"))
        })
        .collect();
    assert_eq!(states.len(), g.states.len());
    for (i, node) in states.iter().enumerate() {
        let s = &g.states[i];
        assert_eq!(node.attribute("id"), Some(format!("state-{i}").as_str()));
        assert_eq!(node.attribute("data-state"), Some(s.name.as_str()));
        assert_eq!(node.attribute("data-path"), Some(s.path.as_str()));
        let class = node.attribute("class").unwrap();
        let want = format!(
            "state{} t-{}",
            if s.is_compound() { " compound" } else { "" },
            s.kind.to_lowercase()
        );
        assert_eq!(class, want);
        let kids: Vec<_> = node.children().filter(|c| c.is_element()).collect();
        fn class_of<'a>(c: &roxmltree::Node<'a, '_>) -> &'a str {
            c.attribute("class").unwrap_or("")
        }
        assert_eq!(class_of(&kids[0]), "box");
        let name = kids.iter().find(|c| class_of(c) == "name").unwrap();
        assert_eq!(name.text(), Some(s.name.as_str()));
        let counts = kids.iter().find(|c| class_of(c) == "counts").unwrap();
        assert_eq!(counts.text(), None, "counts are left for the page");
        let y = |c: &roxmltree::Node, a| c.attribute(a).unwrap().parse::<f64>().unwrap();
        assert!(y(counts, "y") > y(name, "y"), "counts under the name");
        let branches = kids.iter().filter(|c| class_of(c) == "branch").count();
        assert_eq!(branches, if s.kind == "Parallel" { 2 } else { 0 });
        let parent = g.machines[s.machine]
            .parent
            .map(|p| g.states[p].name.as_str());
        assert_eq!(node.attribute("data-parent"), parent);
    }
    let edge_nodes: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("g") && n.attribute("data-from").is_some())
        .collect();
    assert_eq!(edge_nodes.len(), g.edges.len());
    for (node, e) in edge_nodes.iter().zip(&g.edges) {
        assert_eq!(
            node.attribute("class").unwrap(),
            format!("edge e-{}", e.kind.as_str())
        );
        assert_eq!(node.attribute("data-from"), Some(g.endpoint_name(e.from)));
        assert_eq!(node.attribute("data-to"), Some(g.endpoint_name(e.to)));
        let label = node
            .children()
            .find(|c| c.attribute("class") == Some("label"))
            .and_then(|c| c.text());
        assert_eq!(label, e.label.as_deref());
        let path = node
            .children()
            .find(|c| c.attribute("class") == Some("line"))
            .unwrap();
        assert!(
            path.attribute("marker-end")
                .unwrap()
                .starts_with("url(#arrow")
        );
    }
    let starts = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("start-marker"))
        .count();
    let ends = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("end-marker"))
        .count();
    assert_eq!((starts, ends), (5, 5));

    let prefixed = svg_with(
        &g,
        &SvgOptions {
            prolog: false,
            id_prefix: "p1-".into(),
        },
    );
    assert!(prefixed.contains(r#"id="p1-state-0""#));
    assert!(prefixed.contains(r#"<marker id="p1-arrow""#));
    assert!(prefixed.contains(r#"marker-end="url(#p1-arrow)""#));
}

#[test]
fn dot_is_escaped_and_nests_clusters() {
    let g = graph(
        r#"{"StartAt":"Say \"hi\" \\ bye","States":{
        "Say \"hi\" \\ bye":{"Type":"Pass","Next":"Each"},
        "Each":{"Type":"Map","ItemProcessor":{"StartAt":"One","States":{"One":{"Type":"Pass","End":true}}},"Next":"Both"},
        "Both":{"Type":"Parallel","Branches":[
           {"StartAt":"L","States":{"L":{"Type":"Pass","End":true}}},
           {"StartAt":"R","States":{"R":{"Type":"Pass","End":true}}}],"End":true}}}"#,
    );
    let d = dot(&g);
    assert!(d.starts_with("digraph "));
    assert!(d.contains(r#""Say \"hi\" \\ bye" [label="Say \"hi\" \\ bye\nPass", shape=box"#));
    assert!(d.contains("subgraph \"cluster_1\" {"), "{d}");
    assert!(d.contains("subgraph \"cluster_3_0\" {"));
    assert!(d.contains("subgraph \"cluster_3_1\" {"));
    // Edges out of a compound leave its cluster from the inside.
    assert!(
        d.contains(r#""__end_1" -> "Both" [ltail="cluster_1"];"#),
        "{d}"
    );
    assert_eq!(d.matches('{').count(), d.matches('}').count());
    // Quotes are balanced on every line once escapes are taken out.
    for line in d.lines() {
        let unescaped = line.replace("\\\\", "").replace("\\\"", "");
        assert_eq!(unescaped.matches('"').count() % 2, 0, "{line}");
    }
    for s in &g.states {
        assert!(d.contains(&dot::quote(&s.name)));
    }
}

#[test]
fn what_cannot_be_drawn_says_where() {
    let err = |def: &str| Graph::from_json(def.as_bytes()).unwrap_err().to_string();
    assert_eq!(
        err(r#"{"States":{"A":{"Type":"Succeed"}}}"#),
        "'StartAt' is missing at /"
    );
    assert_eq!(
        err(r#"{"StartAt":"A","States":{"A":{"Type":"Pass","Next":"Nowhere"}}}"#),
        "'Nowhere' is not a state of this machine at /States/A/Next"
    );
    assert_eq!(
        err(
            r#"{"StartAt":"P","States":{"P":{"Type":"Parallel","End":true,"Branches":[{"StartAt":"P","States":{"P":{"Type":"Succeed"}}}]}}}"#
        ),
        "state name 'P' is already used at /States/P: names must be unique in the whole definition at /States/P/Branches[0]/States/P"
    );
    assert!(err("[1]").starts_with("expected a JSON object"));
    assert!(err("{").starts_with("not valid JSON"));
}

#[test]
fn long_labels_are_cut_on_characters() {
    assert_eq!(label::shorten("short", 40), "short");
    let s = "é".repeat(50);
    let cut = label::shorten(&s, 40);
    assert_eq!(cut.chars().count(), 40);
    assert!(cut.ends_with('…'));
}

#[test]
fn every_workload_lays_out_cleanly() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/workflows");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if !path.to_string_lossy().ends_with(".asl.json") {
            continue;
        }
        let g = Graph::from_json(&std::fs::read(&path).unwrap()).unwrap();
        check_layout(&g);
        seen += 1;
    }
    assert!(seen >= 5);
    for def in [CHOICE, NESTED] {
        check_layout(&graph(def));
    }
}

#[test]
fn choice_fan_out_shares_one_bus_and_labels_stand_over_their_targets() {
    let g = graph(
        r#"{"StartAt":"C","States":{
        "C":{"Type":"Choice","Choices":[
          {"Variable":"$.t","StringEquals":"a","Next":"A"},
          {"Variable":"$.t","StringEquals":"b","Next":"B"},
          {"Variable":"$.t","StringEquals":"c","Next":"D"}],"Default":"E"},
        "A":{"Type":"Succeed"},"B":{"Type":"Succeed"},"D":{"Type":"Succeed"},"E":{"Type":"Succeed"}}}"#,
    );
    let l = layout(&g);
    let c = rect(&g, &l, "C");
    let mut bus = None;
    for (i, e) in g.edges.iter().enumerate() {
        if !matches!(e.kind, EdgeKind::Choice | EdgeKind::Default) {
            continue;
        }
        let pts = points(&l.edges[i].path);
        assert_eq!(
            pts[0],
            (c.cx(), c.bottom()),
            "out of the middle of the Choice"
        );
        // The first horizontal run of every rule is at one height.
        let run = pts
            .windows(2)
            .find(|w| (w[0].1 - w[1].1).abs() < 0.01)
            .map(|w| w[0].1);
        if let Some(y) = run {
            assert_eq!(*bus.get_or_insert(y), y);
        }
        let label = l.edges[i].label.unwrap();
        let Endpoint::State(t) = e.to else { panic!() };
        let target = l.states[t];
        assert!(
            (label.cx() - target.cx()).abs() < 0.01,
            "label over {}",
            g.states[t].name
        );
    }
    assert!(bus.is_some());
}

/// A definition of `n` states with transitions picked by a small deterministic generator:
/// Choices to any state (loops included), Tasks with Catchers, some nested Maps.
fn random_definition(seed: u64, n: usize) -> String {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = move |m: usize| {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 33) % m as u64) as usize
    };
    let name = |i: usize| format!("S{i}");
    let mut states = Vec::new();
    for i in 0..n {
        let body = match next(6) {
            0 if i + 1 < n => {
                let rules: Vec<String> = (0..1 + next(3))
                    .map(|r| {
                        format!(
                            r#"{{"Variable":"$.v","NumericEquals":{r},"Next":"{}"}}"#,
                            name(next(n))
                        )
                    })
                    .collect();
                format!(
                    r#"{{"Type":"Choice","Choices":[{}],"Default":"{}"}}"#,
                    rules.join(","),
                    name(i + 1)
                )
            }
            1 if i + 1 < n => format!(
                r#"{{"Type":"Task","Resource":"arn:aws:states:::lambda:invoke","Next":"{}","Catch":[{{"ErrorEquals":["States.ALL"],"Next":"{}"}}]}}"#,
                name(i + 1),
                name(next(n))
            ),
            2 if i + 1 < n => format!(
                r#"{{"Type":"Map","ItemProcessor":{{"StartAt":"M{i}","States":{{"M{i}":{{"Type":"Pass","Next":"N{i}"}},"N{i}":{{"Type":"Succeed"}}}}}},"Next":"{}"}}"#,
                name(i + 1)
            ),
            3 => r#"{"Type":"Succeed"}"#.to_string(),
            _ if i + 1 < n => format!(r#"{{"Type":"Pass","Next":"{}"}}"#, name(next(n))),
            _ => r#"{"Type":"Pass","End":true}"#.to_string(),
        };
        states.push(format!(r#""{}":{body}"#, name(i)));
    }
    format!(r#"{{"StartAt":"S0","States":{{{}}}}}"#, states.join(","))
}

#[test]
fn random_machines_lay_out_cleanly() {
    for seed in 0..60 {
        let def = random_definition(seed, 3 + (seed as usize % 25));
        let g = graph(&def);
        check_layout(&g);
        assert_eq!(svg(&g), svg(&graph(&def)), "deterministic for seed {seed}");
    }
}
