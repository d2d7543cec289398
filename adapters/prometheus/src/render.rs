//! Rendering a query template into PromQL, exactly as iter8-analytics v0.2.1 does.
//!
//! The templates are Python `string.Template`s with three placeholders:
//! - `$interval`: the window's length in whole seconds (truncated, at least 1), e.g. `1800s`;
//! - `$offset_str`: ` offset Ns` (leading space) when the window ended at least 1 s before
//!   `now`, `N` being the whole seconds since; otherwise empty;
//! - `$entity_labels`: the version's tag keys, comma-joined in sorted order (the order of the
//!   JSON object Go's encoder sent to iter8-analytics).
//!
//! `$$` is a literal `$`; `${name}` is the same as `$name`; any other placeholder is an error,
//! as `Template.substitute` raises one.

use chrono::{DateTime, Utc};
use iter8_core::measurement::{VersionTags, Window};

/// Why a template could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// The window starts after it ends (iter8-analytics' own message).
    #[error("Start time cannot exceed end time")]
    StartAfterEnd,
    /// A `$name` placeholder that is not one of `interval`, `offset_str`, `entity_labels`.
    #[error(
        "unknown placeholder `${0}` in query template (known: $interval, $offset_str, $entity_labels)"
    )]
    UnknownPlaceholder(String),
    /// A `$` followed by something that is not a name, `{name}` or `$`.
    #[error("invalid placeholder in query template: line {line}, col {col}")]
    InvalidPlaceholder {
        /// 1-based line of the `$`.
        line: usize,
        /// 1-based column of the `$`.
        col: usize,
    },
}

/// The values substituted into a template for one version over one window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderContext {
    /// `$interval`, e.g. `1800s`.
    pub interval: String,
    /// `$offset_str`, e.g. ` offset 300s`, or empty.
    pub offset_str: String,
    /// `$entity_labels`, e.g. `destination_workload,destination_workload_namespace`.
    pub entity_labels: String,
}

/// The window's length and its distance from `now`, in whole seconds, as iter8-analytics
/// computes them: `(interval, offset)` with `interval >= 1` and `offset` only when `>= 1`.
pub fn interval_and_offset(
    window: &Window,
    now: DateTime<Utc>,
) -> Result<(i64, Option<i64>), RenderError> {
    if window.start > window.end {
        return Err(RenderError::StartAfterEnd);
    }
    let interval = (window.end - window.start).num_seconds().max(1);
    let offset = if window.end < now {
        Some((now - window.end).num_seconds()).filter(|s| *s >= 1)
    } else {
        None
    };
    Ok((interval, offset))
}

impl RenderContext {
    /// The context for a version's tags over a window, seen from `now`.
    pub fn new(
        window: &Window,
        now: DateTime<Utc>,
        tags: &VersionTags,
    ) -> Result<Self, RenderError> {
        let (interval, offset) = interval_and_offset(window, now)?;
        Ok(RenderContext {
            interval: format!("{interval}s"),
            offset_str: offset.map(|s| format!(" offset {s}s")).unwrap_or_default(),
            entity_labels: tags
                .keys()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(","),
        })
    }

    fn lookup(&self, name: &str) -> Option<&str> {
        match name {
            "interval" => Some(&self.interval),
            "offset_str" => Some(&self.offset_str),
            "entity_labels" => Some(&self.entity_labels),
            _ => None,
        }
    }
}

fn is_id_start(c: char) -> bool {
    c == '_' || c.is_ascii_alphabetic()
}

fn is_id_continue(c: char) -> bool {
    c == '_' || c.is_ascii_alphanumeric()
}

/// Renders a template with `string.Template.substitute` semantics.
pub fn render(template: &str, ctx: &RenderContext) -> Result<String, RenderError> {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let invalid = || {
            let consumed = template.len() - rest.len() + pos;
            let before = &template[..consumed];
            let line = before.matches('\n').count() + 1;
            let col = consumed - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
            RenderError::InvalidPlaceholder { line, col }
        };
        let (name, consumed) = if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
            continue;
        } else if let Some(braced) = after.strip_prefix('{') {
            let end = braced.find('}').ok_or_else(invalid)?;
            let name = &braced[..end];
            let valid =
                name.chars().next().is_some_and(is_id_start) && name.chars().all(is_id_continue);
            if !valid {
                return Err(invalid());
            }
            (name, end + 2)
        } else {
            let len = if after.chars().next().is_some_and(is_id_start) {
                after
                    .find(|c: char| !is_id_continue(c))
                    .unwrap_or(after.len())
            } else {
                0
            };
            if len == 0 {
                return Err(invalid());
            }
            (&after[..len], len)
        };
        let value = ctx
            .lookup(name)
            .ok_or_else(|| RenderError::UnknownPlaceholder(name.to_string()))?;
        out.push_str(value);
        rest = &after[consumed..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(secs: i64, millis: u32) -> DateTime<Utc> {
        Utc.timestamp_opt(secs, millis * 1_000_000)
            .single()
            .unwrap()
    }

    fn tags() -> VersionTags {
        VersionTags::from([
            (
                "destination_workload_namespace".to_string(),
                "bookinfo".to_string(),
            ),
            ("destination_workload".to_string(), "reviews-v2".to_string()),
        ])
    }

    const SAMPLE: &str = "sum(increase(istio_requests_total{job='envoy-stats', reporter='source'}[$interval]$offset_str)) by ($entity_labels)";

    #[test]
    fn renders_the_stock_sample_size_template() {
        let w = Window {
            start: at(1000, 0),
            end: at(2800, 0),
        };
        let ctx = RenderContext::new(&w, at(2800, 0), &tags()).unwrap();
        assert_eq!(
            render(SAMPLE, &ctx).unwrap(),
            "sum(increase(istio_requests_total{job='envoy-stats', reporter='source'}[1800s])) by (destination_workload,destination_workload_namespace)"
        );
    }

    #[test]
    fn interval_is_truncated_with_a_minimum_of_one_second() {
        let now = at(5000, 0);
        let w = |s: (i64, u32), e: (i64, u32)| Window {
            start: at(s.0, s.1),
            end: at(e.0, e.1),
        };
        assert_eq!(
            interval_and_offset(&w((0, 0), (0, 0)), now),
            Ok((1, Some(5000)))
        );
        assert_eq!(interval_and_offset(&w((0, 0), (0, 999)), now).unwrap().0, 1);
        assert_eq!(interval_and_offset(&w((0, 0), (1, 999)), now).unwrap().0, 1);
        assert_eq!(
            interval_and_offset(&w((0, 500), (1800, 400)), now)
                .unwrap()
                .0,
            1799
        );
        assert_eq!(
            interval_and_offset(&w((10, 0), (9, 0)), now),
            Err(RenderError::StartAfterEnd)
        );
    }

    #[test]
    fn offset_only_from_one_whole_second_in_the_past() {
        let w = Window {
            start: at(0, 0),
            end: at(1800, 0),
        };
        let offset = |now| RenderContext::new(&w, now, &tags()).unwrap().offset_str;
        assert_eq!(offset(at(1800, 0)), "");
        assert_eq!(offset(at(1800, 999)), "");
        assert_eq!(
            offset(at(1799, 0)),
            "",
            "a window ending in the future has no offset"
        );
        assert_eq!(offset(at(1801, 0)), " offset 1s");
        assert_eq!(offset(at(2100, 700)), " offset 300s");
    }

    #[test]
    fn python_template_syntax() {
        let ctx = RenderContext {
            interval: "60s".into(),
            offset_str: String::new(),
            entity_labels: "a,b".into(),
        };
        assert_eq!(
            render("${interval}x $$5 $$interval", &ctx).unwrap(),
            "60sx $5 $interval"
        );
        assert_eq!(render("no placeholders", &ctx).unwrap(), "no placeholders");
        assert_eq!(
            render("x[$window]", &ctx),
            Err(RenderError::UnknownPlaceholder("window".into()))
        );
        // `$offset_strx` is one (unknown) name, as Python's greedy identifier match reads it.
        assert_eq!(
            render("$offset_strx", &ctx),
            Err(RenderError::UnknownPlaceholder("offset_strx".into()))
        );
        assert_eq!(
            render("ok\nbad $ here", &ctx),
            Err(RenderError::InvalidPlaceholder { line: 2, col: 5 })
        );
        assert_eq!(
            render("${1x}", &ctx),
            Err(RenderError::InvalidPlaceholder { line: 1, col: 1 })
        );
        assert_eq!(
            render("end $", &ctx),
            Err(RenderError::InvalidPlaceholder { line: 1, col: 5 })
        );
        assert_eq!(render("é$interval", &ctx).unwrap(), "é60s");
    }

    #[test]
    fn entity_labels_are_sorted_keys() {
        let w = Window {
            start: at(0, 0),
            end: at(60, 0),
        };
        let ctx = RenderContext::new(&w, at(60, 0), &tags()).unwrap();
        assert_eq!(
            ctx.entity_labels,
            "destination_workload,destination_workload_namespace"
        );
    }
}
