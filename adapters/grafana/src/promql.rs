//! Turning an iter8 query template into a Grafana panel query: filling in iter8's placeholders
//! and adding label matchers to every series selector.

/// What to put in place of iter8's placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateValues<'a> {
    /// Replaces `$interval` (e.g. `$__rate_interval` or `$__range`).
    pub interval: &'a str,
    /// Replaces `$entity_labels` (the label that tells the versions apart).
    pub entity_labels: &'a str,
}

/// Fills in `$interval`, `$offset_str` (always empty: panels end at the dashboard's `to`) and
/// `$entity_labels`; other `$` words (Grafana variables) are left alone.
pub fn fill_template(template: &str, values: &TemplateValues<'_>) -> String {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let word_len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        let word = &after[..word_len];
        match word {
            "interval" => out.push_str(values.interval),
            "offset_str" => {}
            "entity_labels" => out.push_str(values.entity_labels),
            _ => {
                out.push('$');
                out.push_str(word);
            }
        }
        rest = &after[word_len..];
    }
    out.push_str(rest);
    out
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// Whether `text` ends with a metric name (an identifier not starting with a digit).
fn ends_with_metric_name(text: &str) -> bool {
    let trimmed = text.trim_end();
    let ident_start = trimmed
        .char_indices()
        .rev()
        .take_while(|(_, c)| is_ident_char(*c))
        .last()
        .map(|(i, _)| i);
    match ident_start {
        Some(i) => {
            let first = trimmed[i..].chars().next().unwrap_or('0');
            let before = trimmed[..i].chars().next_back();
            !first.is_ascii_digit() && before != Some('$')
        }
        None => false,
    }
}

/// Adds `matchers` (e.g. `a='x', b='y'`) to every series selector of a PromQL expression: inside
/// each `{...}`, and as a new `{...}` on a bare `metric[range]`. Text inside string literals is
/// left alone. Bare instant selectors without braces (`up`) are not recognised.
pub fn add_matchers(expr: &str, matchers: &str) -> String {
    let mut out = String::with_capacity(expr.len() + 4 * matchers.len());
    let mut chars = expr.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        if let Some(q) = quote {
            out.push(c);
            if c == '\\' && q != '`' {
                if let Some(escaped) = chars.next() {
                    out.push(escaped);
                }
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '\'' | '"' | '`' => {
                quote = Some(c);
                out.push(c);
            }
            '{' => {
                out.push('{');
                out.push_str(matchers);
                let mut lookahead = chars.clone();
                while lookahead.peek().is_some_and(|c| c.is_whitespace()) {
                    lookahead.next();
                }
                if lookahead.peek() != Some(&'}') {
                    out.push_str(", ");
                }
            }
            '[' if ends_with_metric_name(&out) => {
                let keep = out.trim_end().len();
                out.truncate(keep);
                out.push('{');
                out.push_str(matchers);
                out.push_str("}[");
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: TemplateValues<'static> = TemplateValues {
        interval: "$__rate_interval",
        entity_labels: "destination_workload",
    };

    #[test]
    fn fills_iter8_placeholders_only() {
        let t =
            "sum(increase(m{job='x'}[$interval]$offset_str)) by ($entity_labels, le) / $baseline";
        assert_eq!(
            fill_template(t, &RATE),
            "sum(increase(m{job='x'}[$__rate_interval])) by (destination_workload, le) / $baseline"
        );
        assert_eq!(fill_template("$intervals $", &RATE), "$intervals $");
    }

    #[test]
    fn adds_matchers_to_braced_selectors() {
        let e = "sum(increase(a{job='j', reporter='source'}[1m])) / sum(b{}[1m])";
        assert_eq!(
            add_matchers(e, "v='x'"),
            "sum(increase(a{v='x', job='j', reporter='source'}[1m])) / sum(b{v='x'}[1m])"
        );
    }

    #[test]
    fn adds_braces_to_bare_range_selectors_but_not_subqueries() {
        assert_eq!(
            add_matchers(
                "rate(up[5m]) + max_over_time(rate(x{}[1m])[5m:1m])",
                "v='x'"
            ),
            "rate(up{v='x'}[5m]) + max_over_time(rate(x{v='x'}[1m])[5m:1m])"
        );
        assert_eq!(
            add_matchers("rate(up [5m])", "v='x'"),
            "rate(up{v='x'}[5m])"
        );
    }

    #[test]
    fn leaves_string_literals_alone() {
        assert_eq!(
            add_matchers("a{l=~'{x}[1]', m=\"\\\"{\"}", "v='x'"),
            "a{v='x', l=~'{x}[1]', m=\"\\\"{\"}"
        );
    }
}
