//! Request validation as iter8-analytics v0.2.1 does it: flask_restplus `@api.expect(model,
//! validate=True)`, i.e. JSON Schema draft 4 over the swagger's models, reported as
//! `{"<dotted.path>": "<jsonschema message>"}`.
//!
//! Only what those models use is checked: `required`, `type` (`object`, `array`, `string`,
//! `number`, `integer`, `boolean`), `enum` and `minimum`. Formats (`date-time`) are not checked
//! (flask_restplus passes no format checker); unknown properties are allowed. Messages use
//! Python's `repr` of the offending value, as jsonschema does.

use serde_json::{Map, Value};

/// A property's type.
#[derive(Debug)]
pub enum Kind {
    /// A string.
    Str,
    /// One of these strings.
    StrEnum(&'static [&'static str]),
    /// A number (not a boolean).
    Number,
    /// An integer (a JSON number without a fraction or exponent).
    Integer,
    /// A boolean.
    Bool,
    /// Any object.
    Object,
    /// An object of a model.
    Model(&'static Model),
    /// An array of objects of a model.
    ArrayOf(&'static Model),
}

/// One property of a model.
#[derive(Debug)]
pub struct Prop {
    /// Its name.
    pub name: &'static str,
    /// Its type.
    pub kind: Kind,
    /// Its inclusive minimum, for numbers.
    pub minimum: Option<f64>,
}

/// A model: required properties (in the schema's order) and typed properties.
#[derive(Debug)]
pub struct Model {
    /// Names that must be present.
    pub required: &'static [&'static str],
    /// Properties that are checked when present.
    pub props: &'static [Prop],
}

const fn prop(name: &'static str, kind: Kind) -> Prop {
    Prop {
        name,
        kind,
        minimum: None,
    }
}

const fn min(name: &'static str, kind: Kind, minimum: f64) -> Prop {
    Prop {
        name,
        kind,
        minimum: Some(minimum),
    }
}

/// `version_definition`.
pub static VERSION_DEFINITION: Model = Model {
    required: &["start_time", "tags"],
    props: &[
        prop("start_time", Kind::Str),
        prop("end_time", Kind::Str),
        prop("tags", Kind::Object),
    ],
};

/// `min_max`.
pub static MIN_MAX: Model = Model {
    required: &["max", "min"],
    props: &[prop("min", Kind::Number), prop("max", Kind::Number)],
};

/// `reward`.
pub static REWARD: Model = Model {
    required: &[
        "is_counter",
        "metric_name",
        "metric_query_template",
        "metric_sample_size_query_template",
    ],
    props: &[
        prop("metric_name", Kind::Str),
        prop("is_counter", Kind::Bool),
        prop("absent_value", Kind::Str),
        prop("metric_query_template", Kind::Str),
        prop("metric_sample_size_query_template", Kind::Str),
        prop("min_max", Kind::Model(&MIN_MAX)),
    ],
};

const CRITERION_REQUIRED: &[&str] = &[
    "is_counter",
    "metric_name",
    "metric_query_template",
    "metric_sample_size_query_template",
    "type",
    "value",
];

/// `success_criterion_default`.
pub static SUCCESS_CRITERION_DEFAULT: Model = Model {
    required: CRITERION_REQUIRED,
    props: &[
        prop("metric_name", Kind::Str),
        prop("is_counter", Kind::Bool),
        prop("absent_value", Kind::Str),
        prop("metric_query_template", Kind::Str),
        prop("metric_sample_size_query_template", Kind::Str),
        prop("type", Kind::StrEnum(&["delta", "threshold"])),
        prop("value", Kind::Number),
        prop("sample_size", Kind::Integer),
        prop("stop_on_failure", Kind::Bool),
    ],
};

/// `success_criterion_br`.
pub static SUCCESS_CRITERION_BR: Model = Model {
    required: CRITERION_REQUIRED,
    props: &[
        prop("metric_name", Kind::Str),
        prop("is_counter", Kind::Bool),
        prop("absent_value", Kind::Str),
        prop("min_max", Kind::Model(&MIN_MAX)),
        prop("metric_query_template", Kind::Str),
        prop("metric_sample_size_query_template", Kind::Str),
        prop("type", Kind::StrEnum(&["delta", "threshold"])),
        prop("value", Kind::Number),
        prop("stop_on_failure", Kind::Bool),
    ],
};

/// `traffic_control_check_and_increment`.
pub static TRAFFIC_CONTROL_CHECK_AND_INCREMENT: Model = Model {
    required: &["success_criteria"],
    props: &[
        min("max_traffic_percent", Kind::Number, 0.0),
        min("step_size", Kind::Number, 0.1),
        prop(
            "success_criteria",
            Kind::ArrayOf(&SUCCESS_CRITERION_DEFAULT),
        ),
        prop("reward", Kind::Model(&REWARD)),
    ],
};

/// `traffic_control_epsilon_t_greedy`.
pub static TRAFFIC_CONTROL_EPSILON_T_GREEDY: Model = Model {
    required: &["success_criteria"],
    props: &[
        min("max_traffic_percent", Kind::Number, 0.0),
        prop(
            "success_criteria",
            Kind::ArrayOf(&SUCCESS_CRITERION_DEFAULT),
        ),
        prop("reward", Kind::Model(&REWARD)),
    ],
};

/// `traffic_control_br`.
pub static TRAFFIC_CONTROL_BR: Model = Model {
    required: &["success_criteria"],
    props: &[
        min("max_traffic_percent", Kind::Number, 0.0),
        prop("confidence", Kind::Number),
        prop("success_criteria", Kind::ArrayOf(&SUCCESS_CRITERION_BR)),
        prop("reward", Kind::Model(&REWARD)),
    ],
};

/// `check_and_increment_parameters`.
pub static CHECK_AND_INCREMENT_PARAMETERS: Model = Model {
    required: &["_last_state", "baseline", "candidate", "traffic_control"],
    props: &[
        prop("baseline", Kind::Model(&VERSION_DEFINITION)),
        prop("candidate", Kind::Model(&VERSION_DEFINITION)),
        prop(
            "traffic_control",
            Kind::Model(&TRAFFIC_CONTROL_CHECK_AND_INCREMENT),
        ),
        prop("_last_state", Kind::Object),
    ],
};

/// `epsilon_t_greedy_parameters`.
pub static EPSILON_T_GREEDY_PARAMETERS: Model = Model {
    required: &["_last_state", "baseline", "candidate", "traffic_control"],
    props: &[
        prop("baseline", Kind::Model(&VERSION_DEFINITION)),
        prop("candidate", Kind::Model(&VERSION_DEFINITION)),
        prop(
            "traffic_control",
            Kind::Model(&TRAFFIC_CONTROL_EPSILON_T_GREEDY),
        ),
        prop("_last_state", Kind::Object),
    ],
};

/// `bayesian_routing_parameters`.
pub static BAYESIAN_ROUTING_PARAMETERS: Model = Model {
    required: &["_last_state", "baseline", "candidate", "traffic_control"],
    props: &[
        prop("baseline", Kind::Model(&VERSION_DEFINITION)),
        prop("candidate", Kind::Model(&VERSION_DEFINITION)),
        prop("traffic_control", Kind::Model(&TRAFFIC_CONTROL_BR)),
        prop("_last_state", Kind::Object),
    ],
};

/// Validates `value` against `model`; `Err` holds every problem (dotted path -> message), as
/// flask_restplus reports them.
pub fn validate(value: &Value, model: &Model) -> Result<(), Map<String, Value>> {
    let mut errors = Map::new();
    check_model(value, model, &mut Vec::new(), &mut errors);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

fn report(errors: &mut Map<String, Value>, path: &[String], message: String) {
    errors.insert(path.join("."), Value::String(message));
}

fn check_model(
    value: &Value,
    model: &Model,
    path: &mut Vec<String>,
    errors: &mut Map<String, Value>,
) {
    let Some(object) = value.as_object() else {
        report(
            errors,
            path,
            format!("{} is not of type 'object'", repr(value)),
        );
        return;
    };
    for name in model.required {
        if !object.contains_key(*name) {
            path.push((*name).to_string());
            report(errors, path, format!("'{name}' is a required property"));
            path.pop();
        }
    }
    for p in model.props {
        if let Some(v) = object.get(p.name) {
            path.push(p.name.to_string());
            check_prop(v, p, path, errors);
            path.pop();
        }
    }
}

fn check_prop(value: &Value, p: &Prop, path: &mut Vec<String>, errors: &mut Map<String, Value>) {
    let type_error = |errors: &mut Map<String, Value>, path: &[String], ty: &str| {
        report(
            errors,
            path,
            format!("{} is not of type '{ty}'", repr(value)),
        );
    };
    match &p.kind {
        Kind::Str => {
            if !value.is_string() {
                type_error(errors, path, "string");
            }
        }
        Kind::StrEnum(allowed) => {
            if !value.is_string() {
                type_error(errors, path, "string");
            }
            if !value.as_str().is_some_and(|s| allowed.contains(&s)) {
                let list = allowed
                    .iter()
                    .map(|a| repr(&Value::String((*a).to_string())))
                    .collect::<Vec<_>>()
                    .join(", ");
                report(
                    errors,
                    path,
                    format!("{} is not one of [{list}]", repr(value)),
                );
            }
        }
        Kind::Number | Kind::Integer => {
            let ok = match &p.kind {
                Kind::Integer => value.is_i64() || value.is_u64(),
                _ => value.is_number(),
            };
            if !ok {
                let ty = if matches!(p.kind, Kind::Integer) {
                    "integer"
                } else {
                    "number"
                };
                type_error(errors, path, ty);
            } else if let (Some(m), Some(x)) = (p.minimum, value.as_f64())
                && x < m
            {
                report(
                    errors,
                    path,
                    format!(
                        "{} is less than the minimum of {}",
                        repr(value),
                        python_float(m)
                    ),
                );
            }
        }
        Kind::Bool => {
            if !value.is_boolean() {
                type_error(errors, path, "boolean");
            }
        }
        Kind::Object => {
            if !value.is_object() {
                type_error(errors, path, "object");
            }
        }
        Kind::Model(model) => check_model(value, model, path, errors),
        Kind::ArrayOf(model) => match value.as_array() {
            None => type_error(errors, path, "array"),
            Some(items) => {
                for (i, item) in items.iter().enumerate() {
                    path.push(i.to_string());
                    check_model(item, model, path, errors);
                    path.pop();
                }
            }
        },
    }
}

/// Python's `repr` of a float (`0.0`, `0.1`, `1e+16`).
pub fn python_float(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.into();
    }
    let abs = x.abs();
    if abs != 0.0 && !(1e-4..1e16).contains(&abs) {
        // Rust writes `1e16` / `1e-5`; Python writes `1e+16` / `1e-05`.
        let s = format!("{x:e}");
        let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let (sign, digits) = match exp.strip_prefix('-') {
            Some(d) => ("-", d),
            None => ("+", exp),
        };
        let digits = if digits.len() < 2 {
            format!("0{digits}")
        } else {
            digits.to_string()
        };
        return format!("{mantissa}e{sign}{digits}");
    }
    format!("{x:?}")
}

fn python_str(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Python's `repr` of a JSON value as `json.loads` would build it.
pub fn repr(value: &Value) -> String {
    match value {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (_, Some(u), _) => u.to_string(),
            (_, _, Some(f)) => python_float(f),
            _ => n.to_string(),
        },
        Value::String(s) => python_str(s),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(repr).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, v)| format!("{}: {}", python_str(k), repr(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn python_reprs() {
        assert_eq!(repr(&json!("abc")), "'abc'");
        assert_eq!(repr(&json!("it's")), "\"it's\"");
        assert_eq!(repr(&json!(null)), "None");
        assert_eq!(repr(&json!(true)), "True");
        assert_eq!(repr(&json!(10)), "10");
        assert_eq!(repr(&json!(10.0)), "10.0");
        assert_eq!(repr(&json!(0.1)), "0.1");
        assert_eq!(repr(&json!(1e16)), "1e+16");
        assert_eq!(repr(&json!(1.5e-5)), "1.5e-05");
        assert_eq!(repr(&json!([1, "a"])), "[1, 'a']");
        assert_eq!(repr(&json!({"a": false})), "{'a': False}");
    }

    #[test]
    fn missing_nested_field_is_named_by_its_path() {
        let body = json!({
            "baseline": {"tags": {}},
            "candidate": {"start_time": "x", "tags": {}},
            "traffic_control": {"success_criteria": [{"metric_name": 3}]},
            "_last_state": {}
        });
        let errors = validate(&body, &CHECK_AND_INCREMENT_PARAMETERS).unwrap_err();
        assert_eq!(
            errors["baseline.start_time"],
            "'start_time' is a required property"
        );
        assert_eq!(
            errors["traffic_control.success_criteria.0.metric_name"],
            "3 is not of type 'string'"
        );
        assert_eq!(
            errors["traffic_control.success_criteria.0.type"],
            "'type' is a required property"
        );
    }

    #[test]
    fn types_enums_and_minimums() {
        let body = json!({
            "baseline": {"start_time": "x", "tags": {}},
            "candidate": {"start_time": "x", "tags": {}},
            "traffic_control": {
                "step_size": 0.05,
                "max_traffic_percent": "50",
                "success_criteria": [{
                    "metric_name": "m", "is_counter": 1, "metric_query_template": "q",
                    "metric_sample_size_query_template": "s", "type": "ratio", "value": true,
                    "sample_size": 10.0
                }]
            },
            "_last_state": []
        });
        let errors = validate(&body, &CHECK_AND_INCREMENT_PARAMETERS).unwrap_err();
        let get = |k: &str| errors[k].as_str().unwrap().to_string();
        assert_eq!(
            get("traffic_control.step_size"),
            "0.05 is less than the minimum of 0.1"
        );
        assert_eq!(
            get("traffic_control.max_traffic_percent"),
            "'50' is not of type 'number'"
        );
        let c = "traffic_control.success_criteria.0";
        assert_eq!(
            get(&format!("{c}.is_counter")),
            "1 is not of type 'boolean'"
        );
        assert_eq!(
            get(&format!("{c}.type")),
            "'ratio' is not one of ['delta', 'threshold']"
        );
        assert_eq!(get(&format!("{c}.value")), "True is not of type 'number'");
        assert_eq!(
            get(&format!("{c}.sample_size")),
            "10.0 is not of type 'integer'"
        );
        assert_eq!(get("_last_state"), "[] is not of type 'object'");
        assert!(validate(&json!([]), &CHECK_AND_INCREMENT_PARAMETERS).is_err());
    }
}
