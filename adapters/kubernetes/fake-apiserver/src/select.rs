//! Label selectors (`a=b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`) and the field
//! selectors every resource supports (`metadata.name`, `metadata.namespace`).

use serde_json::Value;

/// One requirement of a selector.
#[derive(Debug, Clone, PartialEq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed label or field selector.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

/// Splits on commas outside parentheses.
fn terms(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0;
    let mut cur = String::new();
    for c in text.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    out.push(cur);
    out.into_iter()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect()
}

fn set(text: &str) -> Result<Vec<String>, String> {
    let inner = text
        .trim()
        .strip_prefix('(')
        .and_then(|t| t.strip_suffix(')'))
        .ok_or_else(|| format!("expected a parenthesised set, got {text:?}"))?;
    Ok(inner.split(',').map(|v| v.trim().to_string()).collect())
}

impl Selector {
    /// Parses a selector; an empty text selects everything.
    pub fn parse(text: &str) -> Result<Selector, String> {
        let mut requirements = Vec::new();
        for term in terms(text) {
            let r = if let Some((k, v)) = term.split_once("!=") {
                Requirement::NotEquals(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = term.split_once("==") {
                Requirement::Equals(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = term.split_once('=') {
                Requirement::Equals(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = term.split_once(" notin ") {
                Requirement::NotIn(k.trim().into(), set(v)?)
            } else if let Some((k, v)) = term.split_once(" in ") {
                Requirement::In(k.trim().into(), set(v)?)
            } else if let Some(k) = term.strip_prefix('!') {
                Requirement::NotExists(k.trim().into())
            } else if term.contains(' ') || term.contains('(') {
                return Err(format!("unable to parse requirement: {term:?}"));
            } else {
                Requirement::Exists(term)
            };
            requirements.push(r);
        }
        Ok(Selector { requirements })
    }

    /// The keys the selector mentions.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.requirements.iter().map(|r| match r {
            Requirement::Equals(k, _)
            | Requirement::NotEquals(k, _)
            | Requirement::In(k, _)
            | Requirement::NotIn(k, _)
            | Requirement::Exists(k)
            | Requirement::NotExists(k) => k.as_str(),
        })
    }

    /// Whether a set of key/value pairs (labels, or an object's selectable fields) matches.
    pub fn matches(&self, lookup: impl Fn(&str) -> Option<String>) -> bool {
        self.requirements.iter().all(|r| match r {
            Requirement::Equals(k, v) => lookup(k).as_deref() == Some(v.as_str()),
            Requirement::NotEquals(k, v) => lookup(k).as_deref() != Some(v.as_str()),
            Requirement::In(k, vs) => lookup(k).is_some_and(|x| vs.contains(&x)),
            Requirement::NotIn(k, vs) => lookup(k).is_none_or(|x| !vs.contains(&x)),
            Requirement::Exists(k) => lookup(k).is_some(),
            Requirement::NotExists(k) => lookup(k).is_none(),
        })
    }
}

/// A label selector and a field selector together.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    labels: Selector,
    fields: Selector,
}

impl Filter {
    /// Parses `labelSelector` and `fieldSelector`; only `metadata.name` and `metadata.namespace`
    /// are selectable fields, as for custom resources.
    pub fn parse(labels: Option<&str>, fields: Option<&str>) -> Result<Filter, String> {
        let labels = Selector::parse(labels.unwrap_or(""))?;
        let fields = Selector::parse(fields.unwrap_or(""))?;
        if let Some(bad) = fields
            .keys()
            .find(|k| *k != "metadata.name" && *k != "metadata.namespace")
        {
            return Err(format!("field label not supported: {bad}"));
        }
        Ok(Filter { labels, fields })
    }

    /// Whether an object passes.
    pub fn matches(&self, obj: &Value) -> bool {
        let meta = &obj["metadata"];
        self.labels.matches(|k| {
            meta["labels"]
                .get(k)
                .and_then(Value::as_str)
                .map(str::to_string)
        }) && self.fields.matches(|k| {
            let field = k.strip_prefix("metadata.").unwrap_or(k);
            Some(meta[field].as_str().unwrap_or("").to_string())
        })
    }
}
