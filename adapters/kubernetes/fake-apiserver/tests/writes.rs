//! Server-side apply (create, update, field managers, conflicts), the status subresource and
//! `metadata.generation`, and delete with finalizers, over HTTP, for every kind the operator
//! uses; compared with what the real API server does.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::*;

const WAIT: Duration = Duration::from_secs(5);

fn generation(obj: &Value) -> Option<i64> {
    obj["metadata"]["generation"].as_i64()
}

#[tokio::test]
async fn apply_creates_then_updates_and_drops_what_the_manager_stops_applying() {
    let (server, api) = start().await;
    for k in KINDS {
        let path = k.path("a");
        let mut doc = k.applied("a", "one");
        doc["metadata"]["annotations"] = json!({"note": "first"});
        let (code, created) = api.apply(&path, "iter8", false, &doc).await;
        assert_eq!(code, 201, "{k:?}: {created}");
        assert_eq!(field(&k, &created), "one", "{k:?}");
        // Re-applying the same configuration is a no-op: same resourceVersion.
        let (code, same) = api.apply(&path, "iter8", false, &doc).await;
        assert_eq!((code, rv(&same)), (200, rv(&created)), "{k:?}");
        // A new value, and the annotation no longer applied: set, and removed.
        let next = k.applied("a", "two");
        let (code, updated) = api.apply(&path, "iter8", false, &next).await;
        assert_eq!(code, 200, "{k:?}: {updated}");
        assert_eq!(field(&k, &updated), "two", "{k:?}");
        assert!(
            updated["metadata"].get("annotations").is_none()
                || updated["metadata"]["annotations"].get("note").is_none(),
            "{k:?}: {updated}"
        );
        assert!(rv(&updated) > rv(&created), "{k:?}");
    }
    server.stop().await;
}

#[tokio::test]
async fn apply_conflicts_with_another_manager_unless_forced() {
    let (server, api) = start().await;
    for k in KINDS {
        let path = k.path("a");
        api.apply(&path, "iter8", false, &k.bare("a", "one")).await;
        let theirs = k.bare("a", "two");
        let (code, body) = api.apply(&path, "kubectl", false, &theirs).await;
        assert_eq!(code, 409, "{k:?}: {body}");
        // Worded as the real server (structured-merge-diff paths, the manager quoted), and
        // `details` with the causes only.
        assert_eq!(body["kind"], "Status", "{k:?}");
        assert_eq!(body["status"], "Failure");
        assert_eq!(body["reason"], "Conflict");
        assert_eq!(body["code"], 409);
        let message = body["message"].as_str().unwrap();
        assert!(
            message.starts_with("Apply failed with 1 conflict: conflict with \"iter8\": ."),
            "{k:?}: {message}"
        );
        let cause = &body["details"]["causes"][0];
        assert_eq!(cause["reason"], "FieldManagerConflict");
        assert_eq!(cause["message"], "conflict with \"iter8\"");
        assert!(cause["field"].as_str().unwrap().starts_with('.'), "{cause}");
        assert!(body["details"].get("name").is_none(), "{body}");
        // Unchanged, until forced.
        assert_eq!(field(&k, &api.get(&path).await.1), "one", "{k:?}");
        let (code, forced) = api.apply(&path, "kubectl", true, &theirs).await;
        assert_eq!(code, 200, "{k:?}: {forced}");
        assert_eq!(field(&k, &forced), "two", "{k:?}");
    }
    server.stop().await;
}

#[tokio::test]
async fn a_field_set_by_an_update_conflicts_with_its_manager_named_as_an_update() {
    let (server, api) = start().await;
    let k = KINDS[3]; // ConfigMap
    api.post(
        &format!("{}?fieldManager=kubectl-create", k.collection()),
        &k.object("a", "one"),
    )
    .await;
    assert_eq!((k.api_version().as_str(), k.kind), ("v1", "ConfigMap"));
    let (code, body) = api
        .apply(&k.path("a"), "iter8", false, &k.bare("a", "two"))
        .await;
    assert_eq!(code, 409, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            "Apply failed with 1 conflict: conflict with \"kubectl-create\" using v1 at "
        ) && message.ends_with(": .data.metrics"),
        "{message}"
    );
    server.stop().await;
}

#[tokio::test]
async fn apply_without_a_field_manager_is_422_about_the_patch_options() {
    let (server, api) = start().await;
    let k = KINDS[0];
    let (code, body) = api
        .patch(
            &k.path("a"),
            "application/apply-patch+yaml",
            &k.object("a", "one"),
        )
        .await;
    assert_eq!(code, 422, "{body}");
    assert_eq!(
        body,
        failure(
            422,
            "Invalid",
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch".into(),
            json!({
                "group": "meta.k8s.io",
                "kind": "PatchOptions",
                "causes": [{
                    "reason": "FieldValueRequired",
                    "message": "Required value: is required for apply patch",
                    "field": "fieldManager"
                }]
            })
        )
    );
    server.stop().await;
}

#[tokio::test]
async fn status_writes_change_only_status_and_spec_writes_only_spec() {
    let (server, api) = start().await;
    for k in KINDS.iter().filter(|k| k.status) {
        let path = k.path("a");
        let (_, created) = api.post(&k.collection(), &k.object("a", "one")).await;
        // A status patch that also tries to change the spec and a label.
        let mut patch = k.with_field("sneaky");
        patch["metadata"] = json!({"labels": {"sneaky": "yes"}});
        patch["status"] = json!({"observedGeneration": 1, "message": "ok"});
        let (code, after_status) = api.merge(&format!("{path}/status"), &patch).await;
        assert_eq!(code, 200, "{k:?}: {after_status}");
        assert_eq!(after_status["status"]["message"], "ok", "{k:?}");
        assert_eq!(field(k, &after_status), "one", "{k:?}: spec unchanged");
        // Custom resources and Deployments also keep their labels on a status write (the
        // real Service status strategy resets only the spec; the fake does not model that).
        if k.kind != "Service" {
            assert!(
                after_status["metadata"]["labels"].get("sneaky").is_none(),
                "{k:?}"
            );
        }
        assert!(rv(&after_status) > rv(&created), "{k:?}");
        assert_eq!(generation(&after_status), generation(&created), "{k:?}");
        // A main-resource patch that also tries to change the status.
        let mut patch = k.with_field("two");
        patch["status"] = json!({"message": "overwritten"});
        let (code, after_spec) = api.merge(&path, &patch).await;
        assert_eq!(code, 200, "{k:?}");
        assert_eq!(field(k, &after_spec), "two", "{k:?}");
        assert_eq!(
            after_spec["status"]["message"], "ok",
            "{k:?}: status unchanged"
        );
        if k.generation {
            assert_eq!(generation(&after_spec), Some(2), "{k:?}: spec change bumps");
        } else {
            assert_eq!(generation(&after_spec), None, "{k:?}");
        }
        // Metadata-only changes do not bump the generation.
        let (_, labelled) = api
            .merge(&path, &json!({"metadata": {"labels": {"track": "canary"}}}))
            .await;
        assert_eq!(generation(&labelled), generation(&after_spec), "{k:?}");
        assert!(rv(&labelled) > rv(&after_spec), "{k:?}");
        // PUT to /status with a stale resourceVersion is a conflict like any replace.
        let mut stale = after_status.clone();
        stale["status"]["message"] = json!("late");
        let (code, body) = api.put(&format!("{path}/status"), &stale).await;
        assert_eq!(
            (code, body["reason"].as_str()),
            (409, Some("Conflict")),
            "{k:?}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn without_a_status_subresource_status_is_an_ordinary_field() {
    let (server, api) = start().await;
    for k in KINDS.iter().filter(|k| !k.status) {
        let mut obj = k.object("a", "one");
        obj["status"] = json!({"note": "kept"});
        let (_, created) = api.post(&k.collection(), &obj).await;
        assert_eq!(created["status"]["note"], "kept", "{k:?}");
    }
    server.stop().await;
}

#[tokio::test]
async fn delete_with_finalizers_marks_then_removes_when_the_last_finalizer_goes() {
    let (server, api) = start().await;
    for k in KINDS {
        let path = k.path("a");
        let mut obj = k.object("a", "one");
        obj["metadata"]["finalizers"] = json!(["finalizer.iter8-tools"]);
        let (_, created) = api.post(&k.collection(), &obj).await;
        let mut watch = api.watch_from(&k, &created).await;

        let (code, marked) = api.delete(&path).await;
        assert_eq!(code, 200, "{k:?}: {marked}");
        assert!(
            marked["metadata"]["deletionTimestamp"].is_string(),
            "{k:?}: {marked}"
        );
        assert_eq!(marked["metadata"]["deletionGracePeriodSeconds"], 0, "{k:?}");
        assert_eq!(
            generation(&marked),
            generation(&created).map(|g| g + 1),
            "{k:?}: marking bumps the generation where there is one"
        );
        assert_eq!(
            api.get(&path).await,
            (200, marked.clone()),
            "{k:?}: still there"
        );
        assert_eq!(
            watch.next(WAIT).await,
            Some(("MODIFIED".to_string(), marked.clone())),
            "{k:?}"
        );
        // Deleting again changes nothing.
        let (code, again) = api.delete(&path).await;
        assert_eq!((code, rv(&again)), (200, rv(&marked)), "{k:?}");
        // No new finalizer while being deleted (422).
        let (code, body) = api
            .merge(
                &path,
                &json!({"metadata": {"finalizers": ["finalizer.iter8-tools", "other"]}}),
            )
            .await;
        assert_eq!(code, 422, "{k:?}: {body}");
        assert_eq!(body["reason"], "Invalid");
        // Other writes still work while the finalizer holds the object.
        let (code, _) = api.merge(&path, &k.with_field("two")).await;
        assert_eq!(code, 200, "{k:?}");
        assert_eq!(watch.next(WAIT).await.map(|e| e.0), Some("MODIFIED".into()));

        // The finalizer removed (as iter8 does, by merge patch): gone, and DELETED.
        let (code, last) = api
            .merge(&path, &json!({"metadata": {"finalizers": null}}))
            .await;
        assert_eq!(code, 200, "{k:?}: {last}");
        assert_eq!(api.get(&path).await.0, 404, "{k:?}");
        let (kind, gone) = watch.next(WAIT).await.expect("DELETED");
        assert_eq!(kind, "DELETED", "{k:?}");
        assert_eq!(gone["metadata"]["uid"], created["metadata"]["uid"]);
        assert!(gone["metadata"]["deletionTimestamp"].is_string(), "{k:?}");
        assert_eq!(field(&k, &gone), "two", "{k:?}");
    }
    server.stop().await;
}
