//! Watches over HTTP: from a resourceVersion (only later changes), from now (synthetic ADDED
//! events first), 410 Expired after compaction, and the events of a delete, for every kind
//! the operator uses.

mod support;

use std::time::Duration;

use support::*;

const QUIET: Duration = Duration::from_millis(300);
const WAIT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn a_watch_from_a_resource_version_sees_only_later_changes() {
    let (server, api) = start().await;
    for k in KINDS {
        let (_, a) = api.post(&k.collection(), &k.object("a", "one")).await;
        let (_, b) = api.post(&k.collection(), &k.object("b", "one")).await;
        // From a's version: b's creation (already past) and what happens next.
        let mut watch = api.watch_from(&k, &a).await;
        assert_eq!(watch.code, 200, "{k:?}");
        let (kind, obj) = watch.next(WAIT).await.expect("b's creation");
        assert_eq!((kind.as_str(), &obj), ("ADDED", &b), "{k:?}");
        let (_, patched) = api.merge(&k.path("a"), &k.with_field("two")).await;
        let (kind, obj) = watch.next(WAIT).await.expect("a's change");
        assert_eq!((kind.as_str(), &obj), ("MODIFIED", &patched), "{k:?}");
        assert_eq!(watch.next(QUIET).await, None, "{k:?}: nothing else");
        // From the latest version: nothing but the next change.
        let mut from_now = api.watch_from(&k, &patched).await;
        assert_eq!(from_now.next(QUIET).await, None, "{k:?}");
        let (_, c) = api.post(&k.collection(), &k.object("c", "one")).await;
        assert_eq!(
            from_now.next(WAIT).await,
            Some(("ADDED".to_string(), c)),
            "{k:?}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn a_watch_without_a_resource_version_starts_with_what_exists() {
    let (server, api) = start().await;
    for k in KINDS {
        let (_, a) = api.post(&k.collection(), &k.object("a", "one")).await;
        let mut watch = api.watch(&k.collection(), "").await;
        assert_eq!(
            watch.next(WAIT).await,
            Some(("ADDED".to_string(), a.clone())),
            "{k:?}"
        );
        // A watch of one object (field selector, as kube-rs watches a single name).
        let mut one = api
            .watch(&k.collection(), "fieldSelector=metadata.name%3Db")
            .await;
        assert_eq!(one.next(QUIET).await, None, "{k:?}");
        let (_, b) = api.post(&k.collection(), &k.object("b", "one")).await;
        assert_eq!(one.next(WAIT).await, Some(("ADDED".to_string(), b.clone())));
        assert_eq!(watch.next(WAIT).await, Some(("ADDED".to_string(), b)));
    }
    server.stop().await;
}

#[tokio::test]
async fn a_watch_from_a_compacted_resource_version_gets_410_expired_in_the_stream() {
    let (server, api) = start().await;
    for k in KINDS {
        let (_, a) = api.post(&k.collection(), &k.object("a", "one")).await;
        let mut running = api.watch_from(&k, &a).await;
        api.merge(&k.path("a"), &k.with_field("two")).await;
        server.compact();
        let (_, latest) = api.merge(&k.path("a"), &k.with_field("three")).await;
        // As the real server: HTTP 200, then one ERROR event carrying the Status.
        let mut expired = api.watch_from(&k, &a).await;
        assert_eq!(expired.code, 200, "{k:?}");
        let (kind, status) = expired.next(WAIT).await.expect("an ERROR event");
        assert_eq!(kind, "ERROR", "{k:?}");
        assert_eq!(status["kind"], "Status");
        assert_eq!(status["status"], "Failure");
        assert_eq!(status["reason"], "Expired");
        assert_eq!(status["code"], 410);
        let message = status["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!("too old resource version: {} (", rv(&a))),
            "{message}"
        );
        assert_eq!(expired.next(QUIET).await, None, "the stream ends");
        // The client relists and watches from the list's version: that works.
        let (_, list) = api.get(&k.collection()).await;
        let mut relisted = api.watch_from(&k, &list).await;
        assert_eq!(relisted.next(QUIET).await, None, "{k:?}");
        // A watch that was running before the compaction goes on.
        let events = running.drain(QUIET).await;
        assert_eq!(events.len(), 2, "{k:?}: {events:?}");
        assert_eq!(events[1], ("MODIFIED".to_string(), latest), "{k:?}");
    }
    server.stop().await;
}

#[tokio::test]
async fn a_watch_from_a_future_resource_version_gets_a_504_too_large_error_event() {
    let (server, api) = start().await;
    let k = KINDS[0];
    let (_, a) = api.post(&k.collection(), &k.object("a", "one")).await;
    let mut watch = api
        .watch(
            &k.collection(),
            &format!("resourceVersion={}", rv(&a) + 100),
        )
        .await;
    let (kind, status) = watch.next(WAIT).await.expect("an ERROR event");
    assert_eq!(kind, "ERROR");
    assert_eq!(status["code"], 504);
    assert_eq!(status["reason"], "Timeout");
    assert_eq!(
        status["details"]["causes"][0]["reason"],
        "ResourceVersionTooLarge"
    );
    server.stop().await;
}

#[tokio::test]
async fn delete_without_finalizers_is_one_deleted_event() {
    let (server, api) = start().await;
    for k in KINDS {
        let (_, a) = api.post(&k.collection(), &k.object("a", "one")).await;
        let mut watch = api.watch_from(&k, &a).await;
        let (code, body) = api.delete(&k.path("a")).await;
        assert_eq!(code, 200, "{k:?}");
        if k.returns_object {
            assert_eq!(body["metadata"]["name"], "a", "{k:?}: {body}");
            assert_eq!(body["kind"], k.kind, "{k:?}");
        } else {
            // The real server's answer when the object is gone at once.
            let mut details = k.details("a");
            details["uid"] = a["metadata"]["uid"].clone();
            assert_eq!(body, success(details), "{k:?}");
        }
        let (kind, gone) = watch.next(WAIT).await.expect("DELETED");
        assert_eq!(kind, "DELETED", "{k:?}");
        assert_eq!(gone["metadata"]["uid"], a["metadata"]["uid"], "{k:?}");
        assert!(
            rv(&gone) > rv(&a),
            "the deletion has its own version: {k:?}"
        );
        assert_eq!(api.get(&k.path("a")).await.0, 404, "{k:?}");
        // The name is free again: a new object, a new uid.
        let (code, again) = api.post(&k.collection(), &k.object("a", "one")).await;
        assert_eq!(code, 201, "{k:?}");
        assert_ne!(again["metadata"]["uid"], a["metadata"]["uid"], "{k:?}");
    }
    server.stop().await;
}

#[tokio::test]
async fn end_watches_closes_running_streams_and_new_ones_work() {
    let (server, api) = start().await;
    let k = KINDS[0];
    let (_, a) = api.post(&k.collection(), &k.object("a", "one")).await;
    let mut watch = api.watch_from(&k, &a).await;
    server.end_watches();
    assert!(
        watch.ended(WAIT).await,
        "the stream ends, not merely goes quiet"
    );
    let mut again = api.watch_from(&k, &a).await;
    let (_, b) = api.post(&k.collection(), &k.object("b", "one")).await;
    assert_eq!(again.next(WAIT).await, Some(("ADDED".to_string(), b)));
    server.stop().await;
}
