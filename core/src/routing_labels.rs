//! Who holds an experiment's routing rules (an Istio VirtualService and DestinationRule, a
//! Gateway API HTTPRoute), as the iter8 labels on them tell it. Pure: the router adapters read
//! the labels, ask [`claim`], and look up in their cluster only what the labels cannot tell
//! (whether another experiment still runs).

/// Names the experiment holding the rules: `<experiment>.<namespace>`.
pub const EXPERIMENT: &str = "iter8-tools/experiment";
/// The rules' stage: [`Role`].
pub const ROLE: &str = "iter8-tools/role";

/// The stage of an experiment's routing rules (label [`ROLE`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Baseline only, while the candidate is not there yet (v0.2.1's `initializing`).
    Initializing,
    /// Both versions, while the experiment runs.
    Progressing,
    /// Done: free for the next experiment on the host or route to take over.
    Stable,
}

impl Role {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Initializing => "initializing",
            Role::Progressing => "progressing",
            Role::Stable => "stable",
        }
    }

    /// Reads a label value.
    pub fn parse(value: &str) -> Option<Role> {
        match value {
            "initializing" => Some(Role::Initializing),
            "progressing" => Some(Role::Progressing),
            "stable" => Some(Role::Stable),
            _ => None,
        }
    }
}

/// What the labels on routing rules say about who holds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim<'a> {
    /// Labelled with this experiment: ours.
    Ours,
    /// Free to take over: no experiment label (rules the user wrote), or role `stable` (left by
    /// an experiment that finished).
    Free,
    /// Labelled with another experiment (this label value): held while that experiment runs,
    /// free once it has completed or is gone. Only the cluster can tell which.
    Another(&'a str),
}

/// Who holds rules labelled `experiment_label` ([`EXPERIMENT`]) and `role_label` ([`ROLE`]),
/// for the experiment whose label value is `ours`.
pub fn claim<'a>(
    experiment_label: Option<&'a str>,
    role_label: Option<&str>,
    ours: &str,
) -> Claim<'a> {
    match experiment_label.unwrap_or("") {
        label if label == ours => Claim::Ours,
        "" => Claim::Free,
        _ if role_label.and_then(Role::parse) == Some(Role::Stable) => Claim::Free,
        label => Claim::Another(label),
    }
}

/// The experiment a [`Claim::Another`] label value names, as `(name, namespace)`; `None` for a
/// value that names no experiment (no `.`), whose rules count as held.
pub fn named_experiment(label_value: &str) -> Option<(&str, &str)> {
    label_value.rsplit_once('.')
}

/// Whether an experiment found in the cluster still holds the rules it labelled, from its
/// `status.phase` (absent before its first status write): until it has completed.
pub fn still_holds(phase: Option<&str>) -> bool {
    phase != Some(crate::model::Phase::Completed.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: &str = "reviews-v3-rollout.bookinfo-iter8";

    #[test]
    fn roles_read_back_what_they_write() {
        for role in [Role::Initializing, Role::Progressing, Role::Stable] {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("other"), None);
    }

    #[test]
    fn our_label_is_ours_whatever_the_role() {
        assert_eq!(claim(Some(OURS), Some("progressing"), OURS), Claim::Ours);
        assert_eq!(claim(Some(OURS), Some("stable"), OURS), Claim::Ours);
        assert_eq!(claim(Some(OURS), None, OURS), Claim::Ours);
    }

    #[test]
    fn rules_without_an_experiment_label_are_free() {
        assert_eq!(claim(None, None, OURS), Claim::Free);
        assert_eq!(claim(Some(""), Some("progressing"), OURS), Claim::Free);
    }

    #[test]
    fn rules_another_experiment_left_stable_are_free() {
        assert_eq!(
            claim(Some("other.bookinfo-iter8"), Some("stable"), OURS),
            Claim::Free
        );
    }

    #[test]
    fn a_label_names_the_experiment_and_its_namespace() {
        assert_eq!(
            named_experiment("reviews-v3-rollout.bookinfo-iter8"),
            Some(("reviews-v3-rollout", "bookinfo-iter8"))
        );
        assert_eq!(named_experiment("no-namespace"), None);
    }

    #[test]
    fn an_experiment_holds_its_rules_until_it_completes() {
        assert!(still_holds(None));
        assert!(still_holds(Some("Progressing")));
        assert!(still_holds(Some("Pause")));
        assert!(!still_holds(Some("Completed")));
    }

    #[test]
    fn rules_another_experiment_is_using_are_its_own_until_the_cluster_says_it_ended() {
        for role in [Some("initializing"), Some("progressing"), None] {
            assert_eq!(
                claim(Some("other.bookinfo-iter8"), role, OURS),
                Claim::Another("other.bookinfo-iter8"),
                "{role:?}"
            );
        }
    }
}
