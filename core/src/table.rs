//! The `kubectl get experiments` table, laid out as kubectl lays out the CRD's printer columns.

use crate::model::Experiment;

/// The printer columns' headers, in order.
pub const HEADERS: [&str; 7] = [
    "NAME",
    "PHASE",
    "STATUS",
    "BASELINE",
    "PERCENTAGE",
    "CANDIDATE",
    "PERCENTAGE",
];

/// One experiment's row: name, phase, message, baseline and its share, candidate and its share.
pub fn row(exp: &Experiment) -> [String; 7] {
    let split = exp.status.split();
    [
        exp.name().to_string(),
        exp.status
            .phase
            .as_ref()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        exp.status.message.clone().unwrap_or_default(),
        exp.spec.target_service.baseline().to_string(),
        split.baseline.to_string(),
        exp.spec.target_service.candidate().to_string(),
        split.candidate.to_string(),
    ]
}

/// Lays out rows under the headers: each column as wide as its widest cell plus three spaces,
/// the last one unpadded; one line per row, each ending in a newline.
pub fn render<'a>(experiments: impl IntoIterator<Item = &'a Experiment>) -> String {
    let rows: Vec<[String; 7]> = experiments.into_iter().map(row).collect();
    let mut widths = HEADERS.map(str::len);
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (i, cell) in cells.enumerate() {
            text.push_str(cell);
            if i + 1 < widths.len() {
                let pad = widths[i] + 3 - cell.chars().count();
                text.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut HEADERS.iter().copied());
    for r in &rows {
        line(&mut r.iter().map(String::as_str));
    }
    out
}
