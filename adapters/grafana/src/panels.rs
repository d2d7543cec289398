//! Grafana panel JSON (current dashboard schema): rows, time series and stat panels, and a
//! left-to-right grid layout.

use serde_json::{Value, json};

/// The panels' data source: the dashboard's `datasource` variable (a Prometheus data source).
pub fn datasource() -> Value {
    json!({"type": "prometheus", "uid": "${datasource}"})
}

/// One PromQL query of a panel, with its legend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// The PromQL expression (may use dashboard variables).
    pub expr: String,
    /// The series' legend (may use dashboard variables, e.g. `$candidate`).
    pub legend: String,
}

/// What a panel shows: its title, description, unit and queries, and where lines are drawn.
#[derive(Debug, Clone, PartialEq)]
pub struct PanelSpec {
    /// The panel's title.
    pub title: String,
    /// The panel's description (the `i` tooltip).
    pub description: String,
    /// Grafana unit id (`ms`, `reqps`, `percentunit`, `short`).
    pub unit: String,
    /// The queries, one series each (refIds A, B, C, ... in order).
    pub queries: Vec<Query>,
    /// Threshold values drawn as lines (time series) or used for colouring (stat).
    pub thresholds: Vec<f64>,
}

/// Places panels left to right, wrapping at Grafana's 24 columns.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Grid {
    x: u32,
    y: u32,
    row_height: u32,
}

impl Grid {
    /// The grid position for a panel of width `w` and height `h`.
    pub fn place(&mut self, w: u32, h: u32) -> Value {
        let w = w.clamp(1, 24);
        if self.x + w > 24 {
            self.new_line();
        }
        let pos = json!({"h": h.max(1), "w": w, "x": self.x, "y": self.y});
        self.x += w;
        self.row_height = self.row_height.max(h.max(1));
        pos
    }

    /// Starts a new line below everything placed so far.
    pub fn new_line(&mut self) {
        if self.x > 0 {
            self.y += self.row_height;
        }
        self.x = 0;
        self.row_height = 0;
    }
}

/// A (never collapsed) row header spanning the grid.
pub fn row(id: u32, title: &str, grid: &mut Grid) -> Value {
    grid.new_line();
    let pos = grid.place(24, 1);
    grid.new_line();
    json!({
        "type": "row",
        "id": id,
        "title": title,
        "collapsed": false,
        "panels": [],
        "gridPos": pos,
    })
}

/// A collapsed row spanning the grid, holding `nested` (id and spec of each time series panel,
/// shown when the row is expanded); the panels after it start right below it.
pub fn collapsed_row(id: u32, title: &str, grid: &mut Grid, nested: &[(u32, PanelSpec)]) -> Value {
    grid.new_line();
    let pos = grid.place(24, 1);
    grid.new_line();
    // Where Grafana puts them when the row is expanded: below it, 3 to a line.
    let mut inner = Grid {
        x: 0,
        y: grid.y,
        row_height: 0,
    };
    let panels: Vec<Value> = nested
        .iter()
        .map(|(id, spec)| timeseries(*id, spec, inner.place(8, 8)))
        .collect();
    json!({
        "type": "row",
        "id": id,
        "title": title,
        "collapsed": true,
        "panels": panels,
        "gridPos": pos,
    })
}

fn ref_id(i: usize) -> String {
    let letters = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut id = String::new();
    let mut n = i;
    loop {
        id.insert(0, letters[n % 26] as char);
        if n < 26 {
            break;
        }
        n = n / 26 - 1;
    }
    id
}

fn targets(queries: &[Query], instant: bool) -> Vec<Value> {
    queries
        .iter()
        .enumerate()
        .map(|(i, q)| {
            json!({
                "refId": ref_id(i),
                "datasource": datasource(),
                "editorMode": "code",
                "expr": q.expr,
                "legendFormat": q.legend,
                "range": !instant,
                "instant": instant,
            })
        })
        .collect()
}

fn threshold_steps(values: &[f64]) -> Value {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    sorted.dedup();
    let mut steps = vec![json!({"color": "green", "value": null})];
    steps.extend(sorted.iter().map(|v| json!({"color": "red", "value": v})));
    json!({"mode": "absolute", "steps": steps})
}

/// A time series panel; thresholds are drawn as dashed red lines.
pub fn timeseries(id: u32, spec: &PanelSpec, grid_pos: Value) -> Value {
    let thresholds_style = if spec.thresholds.is_empty() {
        "off"
    } else {
        "dashed"
    };
    json!({
        "type": "timeseries",
        "id": id,
        "title": spec.title,
        "description": spec.description,
        "datasource": datasource(),
        "gridPos": grid_pos,
        "targets": targets(&spec.queries, false),
        "fieldConfig": {
            "defaults": {
                "unit": spec.unit,
                "color": {"mode": "palette-classic"},
                "thresholds": threshold_steps(&spec.thresholds),
                "custom": {
                    "drawStyle": "line",
                    "lineWidth": 2,
                    "fillOpacity": 0,
                    "showPoints": "never",
                    "spanNulls": true,
                    "thresholdsStyle": {"mode": thresholds_style},
                },
            },
            "overrides": [],
        },
        "options": {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": true},
            "tooltip": {"mode": "multi", "sort": "none"},
        },
    })
}

/// A stat panel of instant queries; values at or over a threshold turn red.
pub fn stat(id: u32, spec: &PanelSpec, grid_pos: Value) -> Value {
    let color_mode = if spec.thresholds.is_empty() {
        "none"
    } else {
        "background"
    };
    json!({
        "type": "stat",
        "id": id,
        "title": spec.title,
        "description": spec.description,
        "datasource": datasource(),
        "gridPos": grid_pos,
        "targets": targets(&spec.queries, true),
        "fieldConfig": {
            "defaults": {
                "unit": spec.unit,
                "color": {"mode": "thresholds"},
                "thresholds": threshold_steps(&spec.thresholds),
            },
            "overrides": [],
        },
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": false},
            "colorMode": color_mode,
            "graphMode": "none",
            "textMode": "value_and_name",
            "orientation": "auto",
            "justifyMode": "auto",
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_wraps_at_24_columns() {
        let mut g = Grid::default();
        let a = g.place(8, 8);
        let b = g.place(8, 8);
        let c = g.place(12, 5);
        assert_eq!(a, json!({"h": 8, "w": 8, "x": 0, "y": 0}));
        assert_eq!(b, json!({"h": 8, "w": 8, "x": 8, "y": 0}));
        assert_eq!(c, json!({"h": 5, "w": 12, "x": 0, "y": 8}));
        g.new_line();
        assert_eq!(g.place(24, 1), json!({"h": 1, "w": 24, "x": 0, "y": 13}));
    }

    #[test]
    fn ref_ids_go_past_z() {
        assert_eq!(ref_id(0), "A");
        assert_eq!(ref_id(25), "Z");
        assert_eq!(ref_id(26), "AA");
        assert_eq!(ref_id(27), "AB");
    }

    #[test]
    fn thresholds_are_sorted_after_the_base_step() {
        assert_eq!(
            threshold_steps(&[200.0, 3.0, 200.0, f64::NAN]),
            json!({"mode": "absolute", "steps": [
                {"color": "green", "value": null},
                {"color": "red", "value": 3.0},
                {"color": "red", "value": 200.0},
            ]})
        );
    }
}
