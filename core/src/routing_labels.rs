//! Who holds an experiment's routing rules (an Istio VirtualService and DestinationRule, a
//! Gateway API HTTPRoute), as the iter8 labels on them tell it. Pure: the router adapters read
//! the labels, ask [`claim`], and look up in their cluster only what the labels cannot tell
//! (whether another experiment still runs).

/// Names the experiment holding the rules: `<experiment>.<namespace>`.
pub const EXPERIMENT: &str = "iter8-tools/experiment";
/// The rules' stage (`initializing`, `progressing`, `stable`).
pub const ROLE: &str = "iter8-tools/role";
/// The [`ROLE`] of rules an experiment has finished with.
pub const ROLE_STABLE: &str = "stable";

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
        _ if role_label == Some(ROLE_STABLE) => Claim::Free,
        label => Claim::Another(label),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: &str = "reviews-v3-rollout.bookinfo-iter8";

    #[test]
    fn our_label_is_ours_whatever_the_role() {
        assert_eq!(claim(Some(OURS), Some("progressing"), OURS), Claim::Ours);
        assert_eq!(claim(Some(OURS), Some(ROLE_STABLE), OURS), Claim::Ours);
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
            claim(Some("other.bookinfo-iter8"), Some(ROLE_STABLE), OURS),
            Claim::Free
        );
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
