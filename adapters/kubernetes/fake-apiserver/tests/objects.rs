//! Create, get, list, merge patch, replace, and the 404/409 `Status` bodies, over HTTP, for
//! every kind the operator uses; compared with what the real API server returns.

mod support;

use serde_json::json;
use support::*;

#[tokio::test]
async fn create_answers_201_with_the_fields_the_server_owns() {
    let (server, api) = start().await;
    for k in KINDS {
        let (code, created) = api.post(&k.collection(), &k.object("a", "one")).await;
        assert_eq!(code, 201, "{k:?}: {created}");
        let meta = &created["metadata"];
        assert_eq!(meta["name"], "a", "{k:?}");
        assert_eq!(meta["namespace"], NS, "{k:?}");
        assert!(meta["uid"].as_str().is_some_and(|u| u.len() == 36), "{k:?}");
        assert!(meta["creationTimestamp"].is_string(), "{k:?}");
        assert!(rv(&created) > 0, "{k:?}");
        assert_eq!(created["apiVersion"], k.api_version().as_str(), "{k:?}");
        assert_eq!(created["kind"], k.kind, "{k:?}");
        // generation starts at 1 where the real server keeps it, and is absent elsewhere.
        if k.generation {
            assert_eq!(meta["generation"], 1, "{k:?}");
        } else {
            assert!(meta.get("generation").is_none(), "{k:?}: {meta}");
        }
        // With a status subresource, create ignores the status it is sent.
        if k.status {
            assert!(created.get("status").is_none(), "{k:?}: {created}");
        }
        assert_eq!(field(&k, &created), "one", "{k:?}");
        let (code, got) = api.get(&k.path("a")).await;
        assert_eq!((code, &got), (200, &created), "{k:?}");
    }
    server.stop().await;
}

#[tokio::test]
async fn creating_an_existing_name_is_409_already_exists() {
    let (server, api) = start().await;
    for k in KINDS {
        api.post(&k.collection(), &k.object("a", "one")).await;
        let before = api.get(&k.path("a")).await.1;
        let (code, body) = api.post(&k.collection(), &k.object("a", "two")).await;
        assert_eq!(code, 409, "{k:?}");
        assert_eq!(
            body,
            failure(
                409,
                "AlreadyExists",
                format!("{} \"a\" already exists", k.qualified()),
                k.details("a")
            ),
            "{k:?}"
        );
        assert_eq!(api.get(&k.path("a")).await.1, before, "{k:?}: unchanged");
    }
    server.stop().await;
}

#[tokio::test]
async fn a_missing_object_is_404_not_found_for_every_verb() {
    let (server, api) = start().await;
    for k in KINDS {
        let want = failure(
            404,
            "NotFound",
            format!("{} \"nope\" not found", k.qualified()),
            k.details("nope"),
        );
        let path = k.path("nope");
        let mut replace = k.object("nope", "x");
        replace["metadata"]["resourceVersion"] = json!("1");
        for (verb, (code, body)) in [
            ("get", api.get(&path).await),
            (
                "merge patch",
                api.merge(&path, &json!({"metadata": {"labels": {"a": "b"}}}))
                    .await,
            ),
            ("put", api.put(&path, &replace).await),
            ("delete", api.delete(&path).await),
        ] {
            assert_eq!((code, &body), (404, &want), "{k:?} {verb}");
        }
        if k.status {
            let (code, body) = api
                .merge(
                    &format!("{path}/status"),
                    &json!({"status": {"observedGeneration": 1}}),
                )
                .await;
            assert_eq!((code, &body), (404, &want), "{k:?} status");
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn unknown_paths_and_missing_subresources_are_404_with_the_generic_status() {
    let (server, api) = start().await;
    let generic = failure(
        404,
        "NotFound",
        "the server could not find the requested resource".into(),
        json!({}),
    );
    assert_eq!(api.get("/apis").await, (404, generic.clone()));
    for k in KINDS.iter().filter(|k| !k.status) {
        api.post(&k.collection(), &k.object("a", "one")).await;
        let (code, body) = api
            .merge(&format!("{}/status", k.path("a")), &json!({"status": {}}))
            .await;
        assert_eq!((code, &body), (404, &generic), "{k:?} has no status");
    }
    // POST to an object's path is not a route of the real server's either.
    let k = KINDS[0];
    let (code, body) = api.post(&k.path("a"), &k.object("a", "one")).await;
    assert_eq!(code, 405, "{body}");
    assert_eq!(
        body,
        failure(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource".into(),
            json!({})
        )
    );
    server.stop().await;
}

#[tokio::test]
async fn list_filters_by_label_and_carries_the_collection_resource_version() {
    let (server, api) = start().await;
    for k in KINDS {
        let mut other = k.object("b", "two");
        other["metadata"]["labels"] = json!({"app": "ratings"});
        api.post(&k.collection(), &k.object("a", "one")).await;
        api.post(&k.collection(), &other).await;
        let (code, list) = api.get(&k.collection()).await;
        assert_eq!(code, 200, "{k:?}");
        assert_eq!(list["kind"], format!("{}List", k.kind), "{k:?}");
        assert_eq!(list["apiVersion"], k.api_version().as_str(), "{k:?}");
        let items = list["items"].as_array().unwrap();
        let names: Vec<&str> = items
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["a", "b"], "{k:?}");
        let list_rv = rv(&list);
        assert!(items.iter().all(|i| rv(i) <= list_rv), "{k:?}");
        let (_, selected) = api
            .get(&format!("{}?labelSelector=app%3Dratings", k.collection()))
            .await;
        let names: Vec<&str> = selected["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["b"], "{k:?}");
    }
    server.stop().await;
}

#[tokio::test]
async fn merge_patch_changes_what_it_names_and_null_removes() {
    let (server, api) = start().await;
    for k in KINDS {
        let (_, created) = api.post(&k.collection(), &k.object("a", "one")).await;
        let mut patch = k.with_field("two");
        patch["metadata"] = json!({"labels": {"app": null, "track": "canary"}});
        let (code, patched) = api.merge(&k.path("a"), &patch).await;
        assert_eq!(code, 200, "{k:?}: {patched}");
        assert_eq!(field(&k, &patched), "two", "{k:?}");
        assert_eq!(
            patched["metadata"]["labels"],
            json!({"track": "canary"}),
            "{k:?}"
        );
        assert!(rv(&patched) > rv(&created), "{k:?}");
        assert_eq!(
            patched["metadata"]["uid"], created["metadata"]["uid"],
            "{k:?}"
        );
        // A patch that changes nothing writes nothing: same resourceVersion.
        let (_, again) = api.merge(&k.path("a"), &patch).await;
        assert_eq!(rv(&again), rv(&patched), "{k:?}");
        // A stale resourceVersion in the patch is a precondition failure: 409 Conflict.
        let stale = json!({"metadata": {"resourceVersion": created["metadata"]["resourceVersion"], "labels": {"x": "y"}}});
        let (code, body) = api.merge(&k.path("a"), &stale).await;
        assert_eq!(code, 409, "{k:?}");
        assert_eq!(
            body,
            failure(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} \"a\": the object has been modified; please apply your changes to the latest version and try again",
                    k.qualified()
                ),
                k.details("a")
            ),
            "{k:?}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn replace_needs_the_current_resource_version() {
    let (server, api) = start().await;
    for k in KINDS {
        let (_, created) = api.post(&k.collection(), &k.object("a", "one")).await;
        let mut next = created.clone();
        *next.pointer_mut(k.field).unwrap() = json!("two");
        let (code, replaced) = api.put(&k.path("a"), &next).await;
        assert_eq!(code, 200, "{k:?}: {replaced}");
        assert_eq!(field(&k, &replaced), "two", "{k:?}");
        // The same body again carries the old resourceVersion.
        let (code, body) = api.put(&k.path("a"), &next).await;
        assert_eq!(code, 409, "{k:?}");
        assert_eq!(body["reason"], "Conflict", "{k:?}");
    }
    server.stop().await;
}

#[tokio::test]
async fn strategic_merge_patch_is_415_for_custom_resources_only() {
    let (server, api) = start().await;
    for k in KINDS {
        api.post(&k.collection(), &k.object("a", "one")).await;
        let (code, body) = api
            .patch(
                &k.path("a"),
                "application/strategic-merge-patch+json",
                &json!({"metadata": {"labels": {"x": "y"}}}),
            )
            .await;
        let custom = k.group.contains('.') && !k.group.ends_with("k8s.io");
        if custom {
            assert_eq!(code, 415, "{k:?}");
            assert_eq!(body["reason"], "UnsupportedMediaType", "{k:?}");
        } else {
            assert_eq!(code, 200, "{k:?}: {body}");
        }
    }
    server.stop().await;
}
