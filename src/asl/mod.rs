//! The Amazon States Language: definition text is parsed into a typed `Definition`
//! (`parse`), checked as a whole (`validate`) and only then handed to the compiler as a
//! `Validated`. Every problem is a `Diagnostic` with AWS's code, a location and a message.

mod definition;
mod diagnostic;
mod integrations;
mod parse;
mod validate;

pub use definition::*;
pub use diagnostic::{Diagnostic, Severity, Span, code};
pub use parse::{Parsed, parse, parse_value};
pub use validate::{Validated, validate};

/// Parses and validates definition text in one step.
pub fn load(text: &[u8], machine_type: MachineType) -> Result<Validated, Vec<Diagnostic>> {
    validate(parse(text), machine_type)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `CODE@location` of every diagnostic for a definition.
    fn problems(def: &str) -> Vec<String> {
        match load(def.as_bytes(), MachineType::Standard) {
            Ok(_) => Vec::new(),
            Err(d) => d
                .iter()
                .map(|d| format!("{}@{}", d.code, d.location))
                .collect(),
        }
    }

    fn messages(def: &str) -> Vec<String> {
        load(def.as_bytes(), MachineType::Standard)
            .err()
            .unwrap_or_default()
            .iter()
            .map(|d| d.to_string())
            .collect()
    }

    #[test]
    fn a_plain_machine_is_valid() {
        assert!(problems(r#"{"StartAt":"A","States":{"A":{"Type":"Pass","Next":"B"},"B":{"Type":"Succeed"}}}"#).is_empty());
    }

    #[test]
    fn not_json_and_not_an_object() {
        assert_eq!(problems("not a definition"), ["INVALID_JSON_DESCRIPTION@"]);
        assert_eq!(problems(" "), ["INVALID_JSON_DESCRIPTION@"]);
        assert_eq!(problems("[]"), ["INVALID_JSON_DESCRIPTION@"]);
    }

    #[test]
    fn required_fields_are_named_like_aws_names_them() {
        assert_eq!(
            messages("{}"),
            ["SCHEMA_VALIDATION_FAILED: These fields are required: [States, StartAt] at /"]
        );
        assert_eq!(
            messages(r#"{"States":{"S":{"Type":"Pass","End":true}}}"#),
            ["SCHEMA_VALIDATION_FAILED: These fields are required: [StartAt] at /"]
        );
    }

    #[test]
    fn every_problem_is_collected() {
        let p = problems(
            r#"{"StartAt":"A","Bogus":1,"States":{
                "A":{"Type":"Pass","Next":"Nope","Extra":true},
                "B":{"Type":"Task","Resource":"arn:aws:states:::dynamodb:query","End":true},
                "C":{"Type":"Wait","Timestamp":"2016-13-05T21:29:29Z","End":true},
                "D":{"Type":"Pass","Parameters":{"x.$":"$.a["},"End":true}}}"#,
        );
        for want in [
            "SCHEMA_VALIDATION_FAILED@/",
            "SCHEMA_VALIDATION_FAILED@/States/A",
            "SCHEMA_VALIDATION_FAILED@/States/B/Resource",
            "SCHEMA_VALIDATION_FAILED@/States/C/Timestamp",
            "SCHEMA_VALIDATION_FAILED@/States/D/Parameters",
            "MISSING_TRANSITION_TARGET@/States/A/Next",
        ] {
            assert!(p.contains(&want.to_string()), "missing {want} in {p:?}");
        }
    }

    #[test]
    fn path_errors_carry_the_byte() {
        let d = load(
            br#"{"StartAt":"A","States":{"A":{"Type":"Pass","InputPath":"$.a..","End":true}}}"#,
            MachineType::Standard,
        )
        .unwrap_err();
        assert_eq!(d[0].location, "/States/A/InputPath");
        assert_eq!(d[0].span.map(|s| s.start), Some(3));
        let d = load(
            br#"{"StartAt":"A","States":{"A":{"Type":"Pass","Parameters":{"k.$":"States.Format('x', $.a[)"},"End":true}}}"#,
            MachineType::Standard,
        )
        .unwrap_err();
        assert_eq!(d[0].span.map(|s| s.start), Some(23), "{}", d[0]);
    }

    #[test]
    fn graph_rules() {
        assert_eq!(
            problems(r#"{"StartAt":"X","States":{"A":{"Type":"Succeed"}}}"#),
            [
                "MISSING_TRANSITION_TARGET@/StartAt",
                "MISSING_TRANSITION_TARGET@/States/A"
            ]
        );
        assert_eq!(
            problems(
                r#"{"StartAt":"A","States":{"A":{"Type":"Pass","Next":"B"},"B":{"Type":"Pass","Next":"A"}}}"#
            ),
            ["MISSING_END_STATE@"]
        );
        assert_eq!(
            problems(
                r#"{"StartAt":"A","States":{"A":{"Type":"Pass","Next":"B"},"B":{"Type":"Pass","Next":"A"},"C":{"Type":"Succeed"}}}"#
            ),
            ["MISSING_TRANSITION_TARGET@/States/C"]
        );
        assert_eq!(
            problems(
                r#"{"StartAt":"C","States":{"C":{"Type":"Choice","Choices":[{"Variable":"$.a","IsPresent":true,"Next":"Z"}],"Default":"E"},"E":{"Type":"Succeed"}}}"#
            ),
            ["MISSING_TRANSITION_TARGET@/States/C/Choices[0]/Next"]
        );
    }

    #[test]
    fn transitions_cannot_leave_their_scope_and_names_are_unique() {
        let p = problems(
            r#"{"StartAt":"P","States":{"P":{"Type":"Parallel","End":true,"Branches":[
                {"StartAt":"X","States":{"X":{"Type":"Pass","Next":"P"}}},
                {"StartAt":"X","States":{"X":{"Type":"Succeed"}}}]}}}"#,
        );
        assert!(
            p.contains(
                &"MISSING_TRANSITION_TARGET@/States/P/Branches[0]/States/X/Next".to_string()
            ),
            "{p:?}"
        );
        assert!(
            p.contains(&"DUPLICATE_STATE_NAME@/States/P/Branches[1]/States/X".to_string()),
            "{p:?}"
        );
    }

    #[test]
    fn retry_and_catch_rules() {
        let p = problems(
            r#"{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"arn:aws:lambda:us-east-1:1:function:f","End":true,
               "Retry":[{"ErrorEquals":["States.ALL"]},{"ErrorEquals":["X"],"IntervalSeconds":0,"BackoffRate":0.5}],
               "Catch":[{"ErrorEquals":["States.ALL","Y"],"Next":"T"}]}}}"#,
        );
        for want in [
            "SCHEMA_VALIDATION_FAILED@/States/T/Retry[0]/ErrorEquals",
            "SCHEMA_VALIDATION_FAILED@/States/T/Retry[1]/IntervalSeconds",
            "SCHEMA_VALIDATION_FAILED@/States/T/Retry[1]/BackoffRate",
            "SCHEMA_VALIDATION_FAILED@/States/T/Catch[0]/ErrorEquals",
        ] {
            assert!(p.contains(&want.to_string()), "missing {want} in {p:?}");
        }
    }

    #[test]
    fn map_labels_and_modes() {
        let map = |label: &str| {
            format!(
                r#"{{"StartAt":"M","States":{{"M":{{"Type":"Map","Label":{label},"End":true,
                "ItemProcessor":{{"ProcessorConfig":{{"Mode":"DISTRIBUTED"}},"StartAt":"I","States":{{"I":{{"Type":"Succeed"}}}}}}}}}}}}"#
            )
        };
        assert!(problems(&map("\"ok-label_1\"")).is_empty());
        assert!(!problems(&map("\"\"")).is_empty());
        assert!(!problems(&map("\"a b\"")).is_empty());
        assert!(!problems(&map("\"x\\u009f\"")).is_empty());
        assert!(!problems(&map(&format!("\"{}\"", "x".repeat(41)))).is_empty());
    }

    #[test]
    fn express_rules_apply_to_express_machines_only() {
        let def = br#"{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"arn:aws:states:::lambda:invoke.waitForTaskToken","End":true}}}"#;
        assert!(load(def, MachineType::Standard).is_ok());
        let e = load(def, MachineType::Express).unwrap_err();
        assert_eq!(e[0].location, "/States/T/Resource");
    }

    fn state(body: &str) -> String {
        format!(r#"{{"StartAt":"A","States":{{"A":{body}}}}}"#)
    }

    fn jsonata_state(body: &str) -> String {
        format!(r#"{{"QueryLanguage":"JSONata","StartAt":"A","States":{{"A":{body}}}}}"#)
    }

    #[test]
    fn jsonata_and_variables_are_valid_in_both_languages() {
        assert!(problems(&jsonata_state(r#"{"Type":"Pass","Output":"{% $states.input %}","Assign":{"x":"{% 1 %}"},"End":true}"#)).is_empty());
        assert!(
            problems(&state(
                r#"{"Type":"Pass","Assign":{"x.$":"$.a","y":1},"End":true}"#
            ))
            .is_empty()
        );
        // A JSONPath definition may hold JSONata states.
        assert!(
            problems(&state(
                r#"{"Type":"Pass","QueryLanguage":"JSONata","Output":"{% $x %}","End":true}"#
            ))
            .is_empty()
        );
    }

    #[test]
    fn fields_of_the_other_query_language_are_refused_where_they_are() {
        for field in [
            r#""Parameters":{}"#,
            r#""InputPath":"$""#,
            r#""ResultPath":"$.r""#,
            r#""OutputPath":"$""#,
        ] {
            let p = problems(&jsonata_state(&format!(
                r#"{{"Type":"Pass",{field},"End":true}}"#
            )));
            // As AWS reports it: at the state, naming the field.
            assert_eq!(p, ["SCHEMA_VALIDATION_FAILED@/States/A"], "{field}");
            let name = field.split('"').nth(1).unwrap();
            let m = messages(&jsonata_state(&format!(
                r#"{{"Type":"Pass",{field},"End":true}}"#
            )));
            assert!(
                m[0].contains(&format!(
                    "The QueryLanguage is set to 'JSONata', but field '{name}' is only supported for the 'JSONPath' QueryLanguage"
                )),
                "{m:?}"
            );
        }
        assert_eq!(
            problems(&state(r#"{"Type":"Pass","Output":{},"End":true}"#)),
            ["SCHEMA_VALIDATION_FAILED@/States/A"]
        );
        assert_eq!(
            problems(&state(
                r#"{"Type":"Task","Resource":"arn:aws:states:::lambda:invoke","Arguments":{},"End":true}"#
            )),
            ["SCHEMA_VALIDATION_FAILED@/States/A"]
        );
        // A Map's processor takes the definition's language; it cannot set its own.
        assert_eq!(
            problems(&state(
                r#"{"Type":"Map","ItemProcessor":{"QueryLanguage":"JSONata","StartAt":"P","States":{"P":{"Type":"Pass","End":true}}},"End":true}"#
            )),
            ["SCHEMA_VALIDATION_FAILED@/States/A/ItemProcessor"]
        );
        // A JSONPath rule in a JSONata Choice, and a JSONata rule in a JSONPath one.
        assert_eq!(
            problems(&jsonata_state(
                r#"{"Type":"Choice","Choices":[{"Variable":"$.a","IsPresent":true,"Condition":true,"Next":"B"}],"Default":"B"},"B":{"Type":"Succeed"}"#
            )),
            [
                "SCHEMA_VALIDATION_FAILED@/States/A/Choices[0]/Variable",
                "SCHEMA_VALIDATION_FAILED@/States/A/Choices[0]/IsPresent"
            ]
        );
        assert!(
            problems(&state(
                r#"{"Type":"Choice","Choices":[{"Condition":true,"Next":"A"}],"Default":"A"}"#
            ))
            .contains(&"SCHEMA_VALIDATION_FAILED@/States/A/Choices[0]/Condition".to_string())
        );
        assert_eq!(
            problems(
                r#"{"QueryLanguage":"JSONata","StartAt":"A","States":{"A":{"Type":"Pass","QueryLanguage":"JSONPath","End":true}}}"#
            ),
            ["SCHEMA_VALIDATION_FAILED@/States/A/QueryLanguage"]
        );
    }

    #[test]
    fn jsonata_strings_are_checked_with_the_position_of_the_error() {
        // Step Functions gives expressions no input: a bare name is refused, by name.
        assert_eq!(
            problems(&jsonata_state(
                r#"{"Type":"Pass","Output":{"v":"{% phone & $states.input.x[y > 1].z %}"},"End":true}"#
            )),
            ["UNSUPPORTED_JSONATA_EXPRESSION@/States/A/Output/v"]
        );
        assert!(
            messages(&jsonata_state(
                r#"{"Type":"Pass","Output":"{% {'a': phone} %}","End":true}"#
            ))[0]
                .contains("Reference to 'phone' at the top level is not supported")
        );
        assert!(
            problems(&jsonata_state(
                r#"{"Type":"Pass","Output":"{% $map($states.input.a, function($v){ $v.b }) ~> $sum() %}","End":true}"#
            ))
            .is_empty()
        );
        assert_eq!(
            problems(&jsonata_state(
                r#"{"Type":"Pass","Output":{"a":"{% $x"},"End":true}"#
            )),
            ["SCHEMA_VALIDATION_FAILED@/States/A/Output/a"]
        );
        assert_eq!(
            problems(&jsonata_state(
                r#"{"Type":"Pass","Output":"{%  %}","End":true}"#
            )),
            ["SCHEMA_VALIDATION_FAILED@/States/A/Output"]
        );
        let def = jsonata_state(r#"{"Type":"Pass","Output":"{% 1 + ) %}","End":true}"#);
        let d = load(def.as_bytes(), MachineType::Standard).unwrap_err();
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].code, "INVALID_JSONATA_EXPRESSION");
        assert_eq!(d[0].location, "/States/A/Output");
        assert!(d[0].message.contains("'1 + )'"), "{}", d[0].message);
        // The span points at the `)` inside the field's string.
        assert_eq!(d[0].span.map(|s| s.start), Some(7));
        // Text around the markers makes the string a literal, not an expression.
        assert!(
            problems(&jsonata_state(
                r#"{"Type":"Pass","Output":" {% nope( %} ","End":true}"#
            ))
            .is_empty()
        );
        // A Condition must be a boolean or an expression.
        assert_eq!(
            problems(&jsonata_state(
                r#"{"Type":"Choice","Choices":[{"Condition":"yes","Next":"B"}],"Default":"B"},"B":{"Type":"Succeed"}"#
            )),
            ["SCHEMA_VALIDATION_FAILED@/States/A/Choices[0]/Condition"]
        );
    }

    #[test]
    fn variable_names_and_where_assign_goes_are_checked() {
        for bad in ["1x", "a-b", "states", ""] {
            assert_eq!(
                problems(&state(&format!(
                    r#"{{"Type":"Pass","Assign":{{"{bad}":1}},"End":true}}"#
                ))),
                [format!("SCHEMA_VALIDATION_FAILED@/States/A/Assign/{bad}")],
                "{bad:?}"
            );
        }
        assert!(
            problems(&state(
                r#"{"Type":"Pass","Assign":{"_ok1":1,"été":2},"End":true}"#
            ))
            .is_empty()
        );
        assert_eq!(
            problems(&state(r#"{"Type":"Succeed","Assign":{"x":1}}"#)),
            ["SCHEMA_VALIDATION_FAILED@/States/A/Assign"]
        );
        assert_eq!(
            problems(&state(r#"{"Type":"Pass","Assign":[1],"End":true}"#)),
            ["SCHEMA_VALIDATION_FAILED@/States/A/Assign"]
        );
    }
}
