//! What the two chaos runs share (`chaos_sim` in the simulation, `chaos_cluster` on the real
//! control plane): their command line, the names of the outcomes they count, and the report's
//! tables, so both reports read alike.

use std::collections::BTreeMap;
use std::fmt::{Display, Write as _};

use iter8_core::TrafficSplit;

/// A chaos run's options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// How many experiments the run creates.
    pub experiments: usize,
    /// The seed of the run's random faults.
    pub seed: u64,
}

impl Options {
    /// `--experiments N` and `--seed S` (default 1) among `args`; other arguments are ignored
    /// (cargo bench adds `--bench`). A value that is not a number is an error naming the flag.
    pub fn parse(args: &[String], default_experiments: usize) -> Result<Options, String> {
        let value = |flag: &str| -> Result<Option<u64>, String> {
            let Some(i) = args.iter().position(|a| a == flag) else {
                return Ok(None);
            };
            let v = args.get(i + 1).map(String::as_str).unwrap_or("");
            v.parse::<u64>()
                .map(Some)
                .map_err(|_| format!("{flag}: not a number: `{v}`"))
        };
        Ok(Options {
            experiments: value("--experiments")?.map_or(default_experiments, |n| n as usize),
            seed: value("--seed")?.unwrap_or(1),
        })
    }

    /// The options of this process' command line; a bad value ends the process (status 2).
    pub fn from_command_line(default_experiments: usize) -> Options {
        let args: Vec<String> = std::env::args().collect();
        Options::parse(&args, default_experiments).unwrap_or_else(|e| {
            eprintln!("{e}");
            std::process::exit(2);
        })
    }
}

/// The outcome of an experiment that waits for a candidate deleted before it started (as in
/// iter8 v0.2: not stuck).
pub const WAITING_FOR_CANDIDATE: &str = "waiting for its candidate (deleted before the start)";

/// The outcome row counting the iterations all experiments ran.
pub const ITERATIONS_RUN: &str = "iterations run";

/// The outcome of a completed experiment: promoted, or rolled back and why.
pub fn completed(promoted: bool, bad_candidate: bool, candidate_deleted: bool) -> &'static str {
    match (promoted, bad_candidate, candidate_deleted) {
        (true, _, _) => "completed: all traffic to the candidate",
        (false, _, true) => "completed: rolled back (candidate deleted)",
        (false, true, _) => "completed: rolled back (slow candidate)",
        (false, false, false) => "completed: rolled back (healthy candidate, faults)",
    }
}

/// Whether an experiment that has not completed is waiting for its candidate, as iter8 v0.2
/// does when the candidate is deleted before the start (`TargetsNotFound`): not stuck.
pub fn waits_for_candidate(candidate_deleted: bool, started: bool, message: Option<&str>) -> bool {
    candidate_deleted && !started && message.is_some_and(|m| m.starts_with("TargetsNotFound"))
}

/// Checks a completed experiment (`who`) and counts its outcome: routing serves (`served`) the
/// split its status says, the split sends all traffic to one version, and a slow or deleted
/// candidate is never promoted.
pub fn check_completed(
    who: &str,
    split: TrafficSplit,
    served: Option<TrafficSplit>,
    bad_candidate: bool,
    candidate_deleted: bool,
    violations: &mut Vec<String>,
    outcomes: &mut BTreeMap<&'static str, u64>,
) {
    if served != Some(split) {
        violations.push(format!(
            "{who}: status says {split:?}, routing serves {served:?}"
        ));
    }
    let promoted = split == TrafficSplit::ALL_CANDIDATE;
    if !promoted && split != TrafficSplit::ALL_BASELINE {
        violations.push(format!("{who}: completed with a split {split:?}"));
    }
    if promoted && (bad_candidate || candidate_deleted) {
        violations.push(format!(
            "{who}: promoted a candidate that is {}",
            if bad_candidate { "slow" } else { "deleted" }
        ));
    }
    *outcomes
        .entry(completed(promoted, bad_candidate, candidate_deleted))
        .or_default() += 1;
}

/// Checks that the iterations an experiment ran (`numbers`, in order) are 1, 2, ... with none
/// lost or repeated, and counts them.
pub fn check_iterations(
    who: &str,
    numbers: &[u64],
    violations: &mut Vec<String>,
    outcomes: &mut BTreeMap<&'static str, u64>,
) {
    if !numbers.iter().copied().eq(1..=numbers.len() as u64) {
        violations.push(format!(
            "{who}: iterations {numbers:?} (one lost or repeated)"
        ));
    }
    *outcomes.entry(ITERATIONS_RUN).or_default() += numbers.len() as u64;
}

/// Appends the faults, outcomes and violations sections of a report (Markdown).
pub fn write_tables<F: Display>(
    report: &mut String,
    faults: impl IntoIterator<Item = (F, u64)>,
    outcomes: &BTreeMap<&str, u64>,
    violations: &[String],
) {
    let _ = writeln!(report, "| fault injected | count |\n|---|---|");
    for (what, count) in faults {
        let _ = writeln!(report, "| {what} | {count} |");
    }
    let _ = writeln!(report, "\n| outcome | count |\n|---|---|");
    for (what, count) in outcomes {
        let _ = writeln!(report, "| {what} | {count} |");
    }
    let _ = writeln!(report, "\nInvariant violations: {}", violations.len());
    for v in violations {
        let _ = writeln!(report, "- {v}");
    }
}

/// Prints `report` and writes it to `dir/file` (a failure to write is said, not fatal: the
/// printed report stands).
pub fn publish(report: &str, dir: &str, file: &str) {
    print!("{report}");
    let path = format!("{dir}/{file}");
    if let Err(e) = std::fs::create_dir_all(dir).and_then(|()| std::fs::write(&path, report)) {
        eprintln!("could not write {path}: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn options_come_from_the_flags_or_the_defaults() {
        assert_eq!(
            Options::parse(&args(&["run", "--bench"]), 20),
            Ok(Options {
                experiments: 20,
                seed: 1
            })
        );
        assert_eq!(
            Options::parse(&args(&["run", "--seed", "7", "--experiments", "3"]), 20),
            Ok(Options {
                experiments: 3,
                seed: 7
            })
        );
    }

    #[test]
    fn a_value_that_is_not_a_number_is_an_error_naming_the_flag() {
        assert_eq!(
            Options::parse(&args(&["run", "--seed", "x"]), 20),
            Err("--seed: not a number: `x`".to_string())
        );
        assert_eq!(
            Options::parse(&args(&["run", "--experiments"]), 20),
            Err("--experiments: not a number: ``".to_string())
        );
    }

    #[test]
    fn a_completed_experiment_that_promoted_a_slow_candidate_is_a_violation() {
        let (mut violations, mut outcomes) = (Vec::new(), BTreeMap::new());
        let all = TrafficSplit::ALL_CANDIDATE;
        check_completed(
            "a",
            all,
            Some(all),
            false,
            false,
            &mut violations,
            &mut outcomes,
        );
        assert!(violations.is_empty(), "{violations:?}");
        check_completed(
            "b",
            all,
            Some(all),
            true,
            false,
            &mut violations,
            &mut outcomes,
        );
        assert_eq!(violations, ["b: promoted a candidate that is slow"]);
        assert_eq!(outcomes[completed(true, false, false)], 2);
    }

    #[test]
    fn iterations_must_run_from_one_without_a_gap() {
        let (mut violations, mut outcomes) = (Vec::new(), BTreeMap::new());
        check_iterations("a", &[1, 2, 3], &mut violations, &mut outcomes);
        assert!(violations.is_empty(), "{violations:?}");
        check_iterations("b", &[1, 3], &mut violations, &mut outcomes);
        assert_eq!(violations, ["b: iterations [1, 3] (one lost or repeated)"]);
        assert_eq!(outcomes[ITERATIONS_RUN], 5);
    }
}
