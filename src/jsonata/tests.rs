//! Engine tests beyond the official suite (which `tests/jsonata.rs` runs through the CLI).

use super::*;
use crate::json;

fn eval(expr: &str, input: &str) -> Result<Option<String>, Error> {
    let e = compile(expr)?;
    let v = json::parse(input.as_bytes()).unwrap();
    Ok(e.evaluate(Some(&v), &[])?.map(|v| json::to_string(&v)))
}

fn ok(expr: &str, input: &str) -> String {
    eval(expr, input)
        .unwrap()
        .unwrap_or_else(|| "undefined".into())
}

fn code(expr: &str, input: &str) -> &'static str {
    eval(expr, input).unwrap_err().code
}

#[test]
fn paths_predicates_and_sequences() {
    let doc = r#"{"a":[{"b":1,"c":[1,2]},{"b":2,"c":[3]}],"s":"x"}"#;
    assert_eq!(ok("a.b", doc), "[1,2]");
    assert_eq!(ok("a[0].b", doc), "1");
    assert_eq!(ok("a.c", doc), "[1,2,3]");
    assert_eq!(ok("a[b=2].c", doc), "[3]");
    assert_eq!(ok("a[b=2].c[]", doc), "[3]");
    assert_eq!(ok("a.c[-1]", doc), "[2,3]");
    assert_eq!(ok("nothing", doc), "undefined");
    assert_eq!(ok("$count(a)", doc), "2");
}

#[test]
fn operators_and_strings() {
    assert_eq!(ok("1 + 2 * 3", "{}"), "7");
    assert_eq!(ok("'a' & 1 & true", "{}"), "\"a1true\"");
    assert_eq!(ok("3 in [1,2,3]", "{}"), "true");
    assert_eq!(ok("[1..4]", "{}"), "[1,2,3,4]");
    assert_eq!(code("'a' + 1", "{}"), "T2001");
    assert_eq!(code("1 < 'a'", "{}"), "T2009");
}

#[test]
fn lambdas_closures_and_tail_calls() {
    assert_eq!(
        ok(
            "($f := function($n, $acc){ $n = 0 ? $acc : $f($n - 1, $acc + $n) }; $f(100000, 0))",
            "{}"
        ),
        "5000050000"
    );
    assert_eq!(
        ok(
            "($add := function($a, $b){$a + $b}; $inc := $add(?, 1); $inc(41))",
            "{}"
        ),
        "42"
    );
    assert_eq!(
        ok("$map([1,2,3], function($v, $i){ $v * $i })", "{}"),
        "[0,2,6]"
    );
    assert_eq!(ok("($x := 5; function(){ $x }())", "{}"), "5");
}

#[test]
fn runaway_expressions_end_with_u1001() {
    assert_eq!(
        code("($f := function($n){ 1 + $f($n) }; $f(1))", "{}"),
        "U1001"
    );
    let e = compile("($f := function($n){ $f($n) }; $f(1))").unwrap();
    let opts = Options {
        limits: Limits {
            max_depth: 1000,
            time_limit_ms: 200,
        },
        ..Options::default()
    };
    let err = e.evaluate_with(None, &[], &opts).unwrap_err();
    assert_eq!(err.code, "U1001");
}

#[test]
fn deep_nesting_in_the_text_is_an_error_not_a_crash() {
    let text = "(".repeat(100_000);
    assert!(compile(&text).is_err());
    let text = format!("{}1{}", "[".repeat(5000), "]".repeat(5000));
    assert!(compile(&text).is_err());
}

#[test]
fn grouping_sorting_and_transform() {
    let doc = r#"{"o":[{"k":"a","v":1},{"k":"b","v":2},{"k":"a","v":3}]}"#;
    assert_eq!(ok("o{k: $sum(v)}", doc), r#"{"a":4,"b":2}"#);
    assert_eq!(ok("o^(>v).v", doc), "[3,2,1]");
    assert_eq!(
        ok("$ ~> |o|{'w': v * 10}, ['v']|", doc),
        r#"{"o":[{"k":"a","w":10},{"k":"b","w":20},{"k":"a","w":30}]}"#
    );
}

#[test]
fn step_functions_additions() {
    assert_eq!(ok("$partition([1,2,3,4,5], 2)", "{}"), "[[1,2],[3,4],[5]]");
    assert_eq!(ok("$range(0, 10, 5)", "{}"), "[0,5,10]");
    assert_eq!(ok("$range(1, 9, 9)", "{}"), "1");
    assert_eq!(
        ok("$hash('a', 'SHA-1')", "{}"),
        "\"86f7e437faa5a7fce15d1ddcb9eaeaea377667b8\""
    );
    assert_eq!(ok("$parse('{\"a\":[1]}').a", "{}"), "[1]");
    assert_eq!(ok("$random(7) = $random(7)", "{}"), "true");
    assert_eq!(ok("$length($uuid())", "{}"), "36");
}

#[test]
fn closure_bound_in_its_own_frame_is_freed() {
    // `$f` holds a lambda closed over the frame holding `$f`: the evaluation's end breaks it.
    let tree = parse_tree("$f := function($x){ $f($x) }", None).unwrap();
    let env = Frame::root();
    let frame = std::rc::Rc::downgrade(&env);
    {
        let mut ev = eval::Eval::new(Limits::default(), Some(0), Some(1));
        ev.eval(&tree, &Val::Undefined, &env).unwrap();
    }
    drop(env);
    assert!(frame.upgrade().is_none(), "the frame and its lambda leak");
}

#[test]
fn array_doubling_ends_at_the_size_limit() {
    let e = "($f := function($s, $x){ $x > 0 ? $f([$s, $s], $x) : $s }; $f('a', 1))";
    assert_eq!(code(e, "{}"), "U1001");
}

#[test]
fn path_squaring_ends_at_the_size_limit() {
    assert_eq!(
        code("($f := function($s){ $f($s.$s) }; $f([1, 2, 3]))", "{}"),
        "U1001"
    );
}

#[test]
fn pad_to_a_giant_width_is_a_limit_error() {
    assert_eq!(code("$pad('x', 1e12)", "{}"), "U1001");
    assert_eq!(code("$pad('x', -1e12, '#')", "{}"), "U1001");
}

#[test]
fn deeply_nested_built_value_is_a_limit_error() {
    let e = "$reduce([1..100000], function($a, $v){ [[$a]] }, [])";
    assert_eq!(code(e, "{}"), "U1001");
    let e = "$reduce([1..100000], function($a, $v){ {'a': $a} }, {})";
    assert_eq!(code(e, "{}"), "U1001");
    assert_eq!(ok("$string([[[1]]])", "{}"), r#""[[[1]]]""#);
}

#[test]
fn transform_update_holding_the_match_copies_it() {
    assert_eq!(
        ok("$ ~> |$|{'me': $}|", r#"{"a":1}"#),
        r#"{"a":1,"me":{"a":1}}"#
    );
}

#[test]
fn step_functions_leave_out_eval() {
    let e = compile("$eval('1 + 1')").unwrap();
    assert_eq!(e.evaluate(None, &[]).unwrap(), Some(json::Value::int(2)));
    let opts = Options {
        step_functions: true,
        ..Options::default()
    };
    assert_eq!(e.evaluate_with(None, &[], &opts).unwrap_err().code, "T1006");
    let e = compile("$parse('[1,2]')[1]").unwrap();
    assert_eq!(
        e.evaluate_with(None, &[], &opts).unwrap(),
        Some(json::Value::int(2))
    );
}

#[test]
fn constant_folding_keeps_the_meaning_of_predicates() {
    // `[0 + 1]` filters like the expression it is, whatever the folding made of it.
    let doc = r#"{"a":[[1,2,3],[4,5,6]]}"#;
    assert_eq!(ok("a[0 + 1]", doc), ok("a[($x := 1; $x)]", doc));
    assert_eq!(ok("a[0 + 1][0]", doc), "[4,5,6]");
    assert_eq!(ok("a[1][0]", doc), "4");
    assert_eq!(ok("60 * 60 & ' s'", "{}"), "\"3600 s\"");
    assert_eq!(code("1 / 0 + $x", "{}"), "D1001");
}

#[test]
fn simple_paths_agree_with_the_general_walk() {
    let doc = r#"{"a":{"b":{"c":[1,{"d":2}],"e":null},"f":"x"}}"#;
    // The same paths with a predicate that keeps everything take the general way.
    for (simple, general) in [
        ("a.b.c", "a[true].b.c"),
        ("a.b.c.d", "a[true].b.c.d"),
        ("a.b.e", "a[true].b.e"),
        ("a.f.g", "a[true].f.g"),
        ("a.b", "a[true].b"),
        ("a.zz.c", "a[true].zz.c"),
    ] {
        assert_eq!(ok(simple, doc), ok(general, doc), "{simple}");
    }
    assert_eq!(ok("$.a.b.c[1].d", doc), "2");
}

#[test]
fn object_constructors_with_literal_keys_agree_with_grouping() {
    let doc = r#"{"a":1,"b":"x","arr":[{"k":"p","v":1},{"k":"q","v":2},{"k":"p","v":3}]}"#;
    // One item, distinct literal keys: values in the pairs' order, undefined ones left out.
    assert_eq!(
        ok("{'z': a, 'y': b, 'none': nothing, 'c': a + 1}", doc),
        r#"{"z":1,"y":"x","c":2}"#
    );
    // The same keys written twice still collide, and a computed key still groups.
    assert_eq!(code("{'a': 1, 'a': 2}", doc), "D1009");
    assert_eq!(ok("arr{k: $sum(v)}", doc), r#"{"p":4,"q":2}"#);
    // Over a sequence the literal key gathers every item: the value sees them all.
    assert_eq!(ok("arr{'all': $count(v)}", doc), r#"{"all":3}"#);
    assert_eq!(ok("[]{'x': 1}", doc), r#"{"x":1}"#);
    // Integer-like keys are ordered as JavaScript orders them in both paths.
    assert_eq!(
        ok("{'b': 1, '2': 2, '1': 3}", doc),
        ok("$merge([{'b': 1}, {'2': 2}, {'1': 3}])", doc)
    );
}

#[test]
fn merge_of_json_objects_gives_what_the_general_merge_gives() {
    // `$merge` of input objects (and built ones holding input values) is built as JSON; the
    // same objects built by the expression take the general path. Both must agree: a later
    // key replaces in place, integral doubles print as integers, nested values are kept.
    let doc = r#"{"p":{"a":2.0,"b":[1,2.5],"c":{"d":3.0}},"q":{"b":"x","e":null}}"#;
    let want = r#"{"a":2,"b":"x","c":{"d":3.0},"e":null,"f":[1,2.5]}"#;
    assert_eq!(ok("$merge([p, q, {'f': p.b}])", doc), want);
    assert_eq!(
        ok(
            "$merge([{'a': 2, 'b': [1, 2.5], 'c': p.c}, {'b': 'x', 'e': null}, {'f': [1, 2.5]}])",
            doc
        ),
        want
    );
    // One object, not an array of them; an array of input objects.
    assert_eq!(ok("$merge(q)", doc), r#"{"b":"x","e":null}"#);
    assert_eq!(ok("$merge([[p, q]][0])", doc), ok("$merge([p, q])", doc));
    // A member that is not JSON (a function) keeps the general path, and stays callable.
    assert_eq!(ok("$merge([q, {'f': function(){ 7 }}]).f()", doc), "7");
}

#[test]
fn string_in_a_concatenation_writes_what_string_gives() {
    let doc = r#"{"n":3,"f":0.1,"big":123456789012345678,"a":["q\"\\\n\u0001é",1.5,true,null],"o":{"k":[1]}}"#;
    for part in [
        "n", "f", "big", "a", "o", "nothing", "1/3", "-0", "'s'", "$string",
    ] {
        let alone = ok(&format!("$string({part})"), doc);
        let text = serde_json::from_str::<Option<String>>(&alone.replace("undefined", "null"))
            .unwrap()
            .unwrap_or_default();
        let joined = ok(&format!("'<' & $string({part}) & '>'"), doc);
        assert_eq!(
            joined,
            serde_json::to_string(&format!("<{text}>")).unwrap(),
            "{part}"
        );
    }
    assert_eq!(
        ok("$string(a)", doc),
        r#""[\"q\\\"\\\\\\n\\u0001é\",1.5,true,null]""#
    );
    // The name rebound in the expression is the user's function, not the built-in.
    assert_eq!(
        ok("($string := function($x) {'X'}; 'a' & $string(1))", doc),
        "\"aX\""
    );
    // Errors keep the call's position and name.
    let e = eval("'a' & $string(1/0)", doc).unwrap_err();
    assert_eq!((e.code, e.position), ("D3001", 14));
}

#[test]
fn a_simple_path_reads_objects_of_any_shape_after_its_hint_learned_one() {
    // The hint remembers where `b` sat; objects with `b` elsewhere or without it still read
    // right, and the first shape again too.
    let e = compile("a.b").unwrap();
    let read = |doc: &str| {
        let v = json::parse(doc.as_bytes()).unwrap();
        e.evaluate(Some(&v), &[])
            .unwrap()
            .map(|v| json::to_string(&v))
    };
    assert_eq!(read(r#"{"a":{"b":1}}"#).as_deref(), Some("1"));
    assert_eq!(
        read(r#"{"x":0,"a":{"y":2,"z":4,"b":3}}"#).as_deref(),
        Some("3")
    );
    assert_eq!(read(r#"{"a":{"y":2}}"#), None);
    assert_eq!(read(r#"{"a":{"b":"again"}}"#).as_deref(), Some("\"again\""));
}

#[test]
fn spread_is_linear_and_keeps_jsonata_js_s_shapes() {
    let doc = r#"{"o":{"a":1,"b":[2]},"n":[[{"x":1}],[],[{"y":2},[{"z":3}]]]}"#;
    assert_eq!(ok("$spread(o)", doc), r#"[{"a":1},{"b":[2]}]"#);
    assert_eq!(ok("$spread(n)", doc), r#"[{"x":1},{"y":2},{"z":3}]"#);
    assert_eq!(ok("$spread([{'a': 1}])", doc), r#"[{"a":1}]"#);
    assert_eq!(ok("$spread([[]])", doc), "[]");
    assert_eq!(ok("$spread([])", doc), "undefined");
    assert_eq!(ok("$spread(5)", doc), "5");
    // Three million items: the old item-by-item append copied the result each time and
    // never ended. Now it is one pass, and the time budget still holds over it.
    let e = compile("$count($spread([1..3000000]))").unwrap();
    let options = Options {
        limits: Limits {
            max_depth: 500,
            time_limit_ms: 60_000,
        },
        ..Options::default()
    };
    let v = e.evaluate_with(None, &[], &options).unwrap();
    assert_eq!(v.map(|v| json::to_string(&v)).as_deref(), Some("3000000"));
}
