//! Posterior and optimistic Bayesian routing, as iter8-analytics v0.2.1 designs them, made
//! deterministic and free of its indexing bugs.
//!
//! Per version and non-counter criterion a belief is fitted to the measurement (value `v` over
//! a sample `W`): with `min_max`, `Beta(1 + (W v - min W) / (max - min), 1 + (max W - W v) /
//! (max - min))` over `[min, max]`; without, `Normal(v, sqrt(1 / (W + 1)))` (mean 0 when
//! `W = 0`). A measurement without a value keeps the previous call's belief (the prior —
//! `Beta(1, 1)` or `Normal(0, 1)` — on the first call). Then [`TRIALS`] times: each version
//! draws a reward and, per criterion, a value from its belief (a counter metric uses its
//! measured value); a version that breaks a criterion (threshold: `x <= tolerance`; delta,
//! candidate only: `x <= (1 + tolerance) * baseline value`) gets no reward; the version with
//! the higher reward wins the trial (the baseline when neither is feasible). The candidate's
//! share is the percentage of trials it won, capped at `max_traffic_percentage`.
//!
//! The optimistic flavour clips every draw at its belief's mean on the favourable side (lower
//! for criteria, higher for the reward).
//!
//! Rewards: with a reward metric (`AnalysisRequest::reward`, measured as one extra reading after
//! the criteria's) each version's reward is drawn from its belief; without, v0.2.1's stand-in
//! is used: `Beta((n + 2) / 3, 2 (n + 2) / 3)` for the baseline and `Beta(2 (n + 2) / 3,
//! (n + 2) / 3)` for the candidate, `n` the version's sample size.
//!
//! Differences from v0.2.1 (on purpose): every criterion uses its own metric (v0.2.1 read the
//! first criterion's values for counters and deltas), the draws come from a seeded generator
//! (`AnalysisRequest::seed`, a stream of its own for each call count kept in the state), values outside
//! `min_max` are clamped into it, and the cap applies.

use serde::{Deserialize, Serialize};

use super::check_and_increment::{check_and_increment, conclusions};
use super::{AnalysisOutcome, AnalysisRequest, AnalyticsError};
use crate::measurement::MetricReadings;
use crate::model::{Assessment, CriterionAssessment, MinMax, Reading, ToleranceType};
use crate::plan::Criterion;
use crate::ports::{Draws, Randomness};

/// Trials per decision (v0.2.1's `max_trials`).
pub const TRIALS: u32 = 1000;

/// Which Bayesian routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// Posterior sampling.
    Posterior,
    /// Posterior sampling clipped at the mean on the favourable side.
    Optimistic,
}

/// A belief's parameters `[alpha, beta, gamma, sigma]`: Beta (alpha, beta) or Normal
/// (gamma = mean, sigma = standard deviation); the other two are `null`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct Belief(
    /// Beta alpha.
    pub Option<f64>,
    /// Beta beta.
    pub Option<f64>,
    /// Normal mean.
    pub Option<f64>,
    /// Normal standard deviation.
    pub Option<f64>,
);

impl Belief {
    /// The prior: `Beta(1, 1)` with a range, `Normal(0, 1)` without.
    pub fn prior(min_max: Option<&MinMax>) -> Self {
        match min_max {
            Some(_) => Belief(Some(1.0), Some(1.0), None, None),
            None => Belief(None, None, Some(0.0), Some(1.0)),
        }
    }

    /// The belief fitted to a measurement; `None` without a value.
    pub fn fit(reading: &Reading, min_max: Option<&MinMax>) -> Option<Self> {
        let v = reading.value?;
        let w = reading.sample_size.max(0.0);
        Some(match min_max {
            Some(mm) => {
                let span = mm.max - mm.min;
                let z = w * v.clamp(mm.min, mm.max);
                Belief(
                    Some(1.0 + (z - mm.min * w) / span),
                    Some(1.0 + (mm.max * w - z) / span),
                    None,
                    None,
                )
            }
            None => Belief(
                None,
                None,
                Some(if w > 0.0 { v } else { 0.0 }),
                Some((1.0 / (w + 1.0)).sqrt()),
            ),
        })
    }

    fn usable(&self, min_max: Option<&MinMax>) -> bool {
        let ok = |x: Option<f64>| x.is_some_and(|x| x.is_finite());
        match min_max {
            Some(_) => ok(self.0) && ok(self.1) && self.0 > Some(0.0) && self.1 > Some(0.0),
            None => ok(self.2) && ok(self.3) && self.3 >= Some(0.0),
        }
    }

    /// One draw; `higher_is_better` says which side the optimistic flavour keeps.
    fn draw(
        &self,
        min_max: Option<&MinMax>,
        flavor: Flavor,
        higher_is_better: bool,
        draws: &mut dyn Draws,
    ) -> f64 {
        let clip = |x: f64, mean: f64| match (flavor, higher_is_better) {
            (Flavor::Posterior, _) => x,
            (Flavor::Optimistic, false) => x.min(mean),
            (Flavor::Optimistic, true) => x.max(mean),
        };
        match (min_max, *self) {
            (Some(mm), Belief(Some(a), Some(b), _, _)) => {
                let x = clip(beta(draws, a, b), a / (a + b));
                mm.min + (mm.max - mm.min) * x
            }
            (_, Belief(_, _, Some(g), Some(s))) => clip(normal(draws, g, s), g),
            _ => f64::NAN,
        }
    }
}

/// One version's part of the state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct BayesianVersionState {
    /// The version's share after the decision.
    pub traffic_percentage: f64,
    /// Per criterion, in order (`[null, null, null, null]` for counter metrics).
    pub success_criterion_belief: Vec<Belief>,
    /// The reward metric's belief (all `null` without a reward metric).
    pub reward_belief: Belief,
}

/// The state carried between Bayesian routing calls (v0.2.1's shape plus the traffic and a
/// call count that varies the draws from one call to the next).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct BayesianState {
    /// Baseline part.
    pub baseline: BayesianVersionState,
    /// Candidate part.
    pub candidate: BayesianVersionState,
    /// How many decisions were made so far.
    pub iteration: u64,
}

/// The conclusion on whether the candidate won often enough.
pub fn confidence_conclusion(confidence: f64, candidate_share: f64) -> String {
    let not = if candidate_share < confidence * 100.0 {
        "not "
    } else {
        ""
    };
    format!("Required confidence of {confidence} was {not}reached")
}

/// A version's measured numbers and its beliefs, for the trials.
struct Arm {
    readings: Vec<Reading>,
    beliefs: Vec<Belief>,
    reward: Option<(Reading, Belief)>,
    requests: f64,
}

fn previous_belief(
    last: Option<&serde_json::Value>,
    version: &str,
    key: &str,
    index: Option<usize>,
) -> Option<Belief> {
    let mut v = last?.get(version)?.get(key)?;
    if let Some(i) = index {
        v = v.get(i)?;
    }
    Belief::deserialize(v).ok()
}

fn belief_for(reading: &Reading, min_max: Option<&MinMax>, previous: Option<Belief>) -> Belief {
    Belief::fit(reading, min_max)
        .filter(|b| b.usable(min_max))
        .or(previous.filter(|b| b.usable(min_max)))
        .unwrap_or_else(|| Belief::prior(min_max))
}

/// A Beta draw. Parameters that are not positive and finite are not drawn from: they give the
/// mean of what is left (or 0.5), as v0.2.1's sampler did not loop or fail on them.
fn beta(draws: &mut dyn Draws, alpha: f64, beta: f64) -> f64 {
    let drawable = |x: f64| x > 0.0 && x.is_finite();
    if drawable(alpha) && drawable(beta) {
        draws.beta(alpha, beta)
    } else if alpha + beta > 0.0 && (alpha + beta).is_finite() {
        (alpha / (alpha + beta)).clamp(0.0, 1.0)
    } else {
        0.5
    }
}

/// A normal draw; an `sd` that is negative or not finite gives `mean` without drawing.
fn normal(draws: &mut dyn Draws, mean: f64, sd: f64) -> f64 {
    if sd >= 0.0 && sd.is_finite() {
        draws.normal(mean, sd)
    } else {
        mean
    }
}

/// Decides the candidate's next share with posterior or optimistic Bayesian routing, drawing
/// from `randomness` (the request's seed, a stream per iteration).
///
/// `readings` holds one entry per criterion, plus one for the reward metric when
/// `request.reward` is set and it was measured (without it, v0.2.1's stand-in reward is used).
pub fn bayesian_routing(
    request: &AnalysisRequest,
    readings: &[MetricReadings],
    flavor: Flavor,
    randomness: &dyn Randomness,
) -> Result<AnalysisOutcome, AnalyticsError> {
    let n = request.criteria.len();
    let with_reward = match (&request.reward, readings.len()) {
        (_, l) if l == n => None,
        (Some(reward), l) if l == n + 1 => Some(reward),
        (_, l) => {
            return Err(AnalyticsError::Invalid(format!(
                "expected readings for {n} criteria{}, got {l}",
                if request.reward.is_some() {
                    " (and the reward)"
                } else {
                    ""
                }
            )));
        }
    };
    // The per-criterion verdicts and the measured numbers (absent values, rounding) are
    // check_and_increment's; the reward rides along as an always-met threshold.
    let mut assessing = AnalysisRequest {
        last_state: None,
        ..request.clone()
    };
    if let Some((metric, min_max)) = with_reward {
        assessing.criteria.push(Criterion {
            metric: metric.clone(),
            tolerance_type: ToleranceType::Threshold,
            tolerance: f64::INFINITY,
            sample_size: 0,
            stop_on_failure: false,
            min_max: min_max.clone(),
        });
    }
    let mut assessed = check_and_increment(&assessing, readings)?.assessment;
    let reward_assessment = if with_reward.is_some() {
        assessed.success_criteria.pop()
    } else {
        None
    };
    let criteria: Vec<CriterionAssessment> = assessed.success_criteria;

    let last_json = request.last_state.as_ref().map(|s| s.as_json());
    let last = match last_json {
        Some(v @ serde_json::Value::Object(m)) if !m.is_empty() => Some(v),
        _ => None,
    };
    let iteration = match last {
        None => 0,
        Some(l) => l.get("iteration").and_then(|i| i.as_u64()).unwrap_or(1),
    };
    let reward_range = with_reward.and_then(|(_, mm)| mm.as_ref());

    let arm = |version: &str, pick: fn(&CriterionAssessment) -> Option<Reading>| -> Arm {
        let readings: Vec<Reading> = criteria
            .iter()
            .map(|c| pick(c).unwrap_or_default())
            .collect();
        let beliefs = request
            .criteria
            .iter()
            .zip(&readings)
            .enumerate()
            .map(|(i, (c, r))| {
                if c.metric.is_counter {
                    Belief::default()
                } else {
                    let prev = previous_belief(last, version, "success_criterion_belief", Some(i));
                    belief_for(r, c.min_max.as_ref(), prev)
                }
            })
            .collect();
        let reward = reward_assessment.as_ref().map(|ra| {
            let r = pick(ra).unwrap_or_default();
            let prev = previous_belief(last, version, "reward_belief", None);
            (r, belief_for(&r, reward_range, prev))
        });
        Arm {
            requests: readings.first().map_or(0.0, |r| r.sample_size),
            readings,
            beliefs,
            reward,
        }
    };
    let arms = [
        arm("baseline", |c| c.baseline),
        arm("candidate", |c| c.candidate),
    ];

    let mut draws = randomness.draws(request.seed, iteration);
    let reward_is_counter = with_reward.is_some_and(|(m, _)| m.is_counter);
    let mut baseline_wins = 0u32;
    for _ in 0..TRIALS {
        let mut rewards = [None, None];
        for (v, arm) in arms.iter().enumerate() {
            let reward = match &arm.reward {
                Some((r, _)) if reward_is_counter => r.value.unwrap_or(f64::NAN),
                Some((_, belief)) => belief.draw(reward_range, flavor, true, &mut *draws),
                None => {
                    let total = arm.requests.max(0.0) + 2.0;
                    let alpha = if v == 0 {
                        total / 3.0
                    } else {
                        total * 2.0 / 3.0
                    };
                    beta(&mut *draws, alpha, total - alpha)
                }
            };
            let feasible = request.criteria.iter().enumerate().all(|(i, c)| {
                let x = if c.metric.is_counter {
                    arm.readings[i].value
                } else {
                    Some(arm.beliefs[i].draw(c.min_max.as_ref(), flavor, false, &mut *draws))
                };
                match (c.tolerance_type == ToleranceType::Delta, x) {
                    (_, None) => false,
                    (false, Some(x)) => x <= c.tolerance,
                    (true, _) if v == 0 => true,
                    (true, Some(x)) => arms[0].readings[i]
                        .value
                        .is_some_and(|b| x <= (1.0 + c.tolerance) * b),
                }
            });
            rewards[v] = if feasible && !reward.is_nan() {
                Some(reward)
            } else {
                None
            };
        }
        let baseline_wins_trial = match rewards {
            [_, None] => true,
            [None, Some(_)] => false,
            [Some(b), Some(c)] => b > c,
        };
        baseline_wins += u32::from(baseline_wins_trial);
    }
    let baseline_share = (f64::from(baseline_wins) / f64::from(TRIALS)) * 100.0;
    let won = 100.0 - baseline_share;
    let candidate = won.min(request.max_traffic_percentage).clamp(0.0, 100.0);

    let all_met = criteria.iter().all(|c| c.success_criterion_met);
    let abort = criteria.iter().any(|c| c.abort_experiment);
    let mut summary = Vec::new();
    if abort {
        summary.push(conclusions::ABORT.to_string());
    }
    summary.push(
        if all_met {
            conclusions::ALL_MET
        } else {
            conclusions::NOT_ALL_MET
        }
        .to_string(),
    );
    summary.push(confidence_conclusion(request.confidence, won));

    let version_state = |arm: &Arm, share: f64| BayesianVersionState {
        traffic_percentage: share,
        success_criterion_belief: arm.beliefs.clone(),
        reward_belief: arm.reward.map(|(_, b)| b).unwrap_or_default(),
    };
    let [b, c] = &arms;
    let state = BayesianState {
        baseline: version_state(b, 100.0 - candidate),
        candidate: version_state(c, candidate),
        iteration: iteration + 1,
    };
    AnalysisOutcome::with_state(
        candidate,
        Assessment {
            conclusions: summary,
            all_success_criteria_met: all_met,
            abort_experiment: abort,
            success_criteria: criteria,
        },
        &state,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Draws that hold the port to its contract and record what was drawn.
    #[derive(Default)]
    struct Recorded(Vec<(&'static str, f64, f64)>);

    impl Draws for Recorded {
        fn beta(&mut self, alpha: f64, beta: f64) -> f64 {
            assert!(alpha > 0.0 && beta > 0.0 && alpha.is_finite() && beta.is_finite());
            self.0.push(("beta", alpha, beta));
            0.25
        }
        fn normal(&mut self, mean: f64, sd: f64) -> f64 {
            assert!(sd >= 0.0 && sd.is_finite());
            self.0.push(("normal", mean, sd));
            mean + 1.0
        }
    }

    #[test]
    fn degenerate_parameters_give_the_mean_without_a_draw() {
        let mut d = Recorded::default();
        assert_eq!(beta(&mut d, 0.0, 0.0), 0.5);
        assert_eq!(beta(&mut d, -1.0, f64::INFINITY), 0.5);
        assert_eq!(beta(&mut d, f64::INFINITY, 1.0), 0.5);
        assert_eq!(beta(&mut d, 0.0, 5.0), 0.0);
        assert_eq!(beta(&mut d, 5.0, 0.0), 1.0);
        assert_eq!(normal(&mut d, 3.0, -1.0), 3.0);
        assert_eq!(normal(&mut d, 3.0, f64::NAN), 3.0);
        assert!(d.0.is_empty(), "{:?}", d.0);
        // Proper parameters are drawn from (a zero sd too: the stream stays as it was).
        assert_eq!(beta(&mut d, 2.0, 5.0), 0.25);
        assert_eq!(normal(&mut d, 3.0, 0.0), 4.0);
        assert_eq!(d.0, vec![("beta", 2.0, 5.0), ("normal", 3.0, 0.0)]);
    }

    #[test]
    fn beliefs_fit_as_v021() {
        let r = Reading {
            value: Some(0.2),
            sample_size: 10.0,
        };
        let mm = MinMax { min: 0.0, max: 1.0 };
        // alpha = 1 + (Z - min W) / (max - min) with Z = W v.
        assert_eq!(
            Belief::fit(&r, Some(&mm)),
            Some(Belief(Some(3.0), Some(9.0), None, None))
        );
        let b = Belief::fit(&r, None).unwrap();
        assert_eq!(b.2, Some(0.2));
        assert!((b.3.unwrap() - (1.0f64 / 11.0).sqrt()).abs() < 1e-15);
        let empty = Reading {
            value: Some(5.0),
            sample_size: 0.0,
        };
        assert_eq!(
            Belief::fit(&empty, None),
            Some(Belief(None, None, Some(0.0), Some(1.0)))
        );
        assert_eq!(Belief::fit(&Reading::default(), None), None);
    }

    #[test]
    fn values_outside_the_range_are_clamped() {
        let r = Reading {
            value: Some(7.0),
            sample_size: 4.0,
        };
        let mm = MinMax { min: 0.0, max: 1.0 };
        assert_eq!(
            Belief::fit(&r, Some(&mm)),
            Some(Belief(Some(5.0), Some(1.0), None, None))
        );
    }

    #[test]
    fn confidence_words() {
        assert_eq!(
            confidence_conclusion(0.95, 94.9),
            "Required confidence of 0.95 was not reached"
        );
        assert_eq!(
            confidence_conclusion(0.5, 50.0),
            "Required confidence of 0.5 was reached"
        );
    }
}
