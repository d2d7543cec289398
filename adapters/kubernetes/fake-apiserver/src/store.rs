//! The object store: resource versions, generations, finalizers and deletion, the status
//! subresource, server-side apply field ownership, and the event history watches replay.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{Value, json};

use crate::patch;
use crate::select::Filter;
use crate::status::{self, ApiError};

/// A resource type the server serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// API group (`""` for core).
    pub group: String,
    /// Version (`v1`, `v1alpha1`, ...).
    pub version: String,
    /// Plural name (`deployments`).
    pub plural: String,
    /// Kind (`Deployment`).
    pub kind: String,
    /// Namespaced (or cluster-scoped).
    pub namespaced: bool,
    /// Writes to the main resource ignore `.status`; `/status` writes only `.status`.
    pub status_subresource: bool,
    /// `metadata.generation` is kept and bumped on every change outside metadata and status.
    pub generation: bool,
    /// A delete that removes the object at once answers with the object (Services, Pods,
    /// ServiceAccounts: `ReturnDeletedObject` in the real registry), not a `Status`.
    pub returns_deleted_object: bool,
}

impl Resource {
    /// `plural.group` (`deployments.apps`), or `plural` for the core group.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// `group/version`, or `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

/// The resource served at `group/version/plural`. Well-known resources get their real kind,
/// scope and subresources; any other plural is served as a namespaced custom resource.
pub fn resource(group: &str, version: &str, plural: &str) -> Resource {
    let (kind, namespaced, status, generation) = match (group, plural) {
        ("", "namespaces") => ("Namespace", false, true, false),
        ("", "configmaps") => ("ConfigMap", true, false, false),
        ("", "secrets") => ("Secret", true, false, false),
        ("", "services") => ("Service", true, true, false),
        ("", "serviceaccounts") => ("ServiceAccount", true, false, false),
        ("", "events") => ("Event", true, false, false),
        ("", "pods") => ("Pod", true, true, false),
        ("apps", "deployments") => ("Deployment", true, true, true),
        ("coordination.k8s.io", "leases") => ("Lease", true, false, false),
        ("events.k8s.io", "events") => ("Event", true, false, false),
        ("iter8.tools", "experiments") => ("Experiment", true, true, true),
        ("networking.istio.io", "virtualservices") => ("VirtualService", true, true, true),
        ("networking.istio.io", "destinationrules") => ("DestinationRule", true, true, true),
        ("networking.istio.io", "gateways") => ("Gateway", true, true, true),
        ("apiextensions.k8s.io", "customresourcedefinitions") => {
            ("CustomResourceDefinition", false, true, true)
        }
        _ => ("", true, true, true),
    };
    let kind = if kind.is_empty() {
        let singular = plural.strip_suffix('s').unwrap_or(plural);
        let mut c = singular.chars();
        c.next()
            .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
            .unwrap_or_default()
    } else {
        kind.to_string()
    };
    Resource {
        group: group.to_string(),
        version: version.to_string(),
        plural: plural.to_string(),
        kind,
        namespaced,
        status_subresource: status,
        generation,
        returns_deleted_object: group.is_empty()
            && matches!(plural, "services" | "pods" | "serviceaccounts"),
    }
}

/// `ADDED`, `MODIFIED` or `DELETED`, with the object as it was then.
#[derive(Debug, Clone)]
pub struct Change {
    /// The resource version of the change.
    pub rv: u64,
    /// `ADDED`, `MODIFIED` or `DELETED`.
    pub kind: &'static str,
    /// The resource's group.
    pub group: String,
    /// The resource's plural.
    pub plural: String,
    /// The object's namespace (empty for cluster-scoped).
    pub namespace: String,
    /// The object.
    pub object: Value,
}

/// (group, plural, namespace, name).
type Key = (String, String, String, String);

/// How a write came in, for field ownership.
#[derive(Debug, Clone, PartialEq)]
pub enum Write<'a> {
    /// A create, replace or non-apply patch by a field manager.
    Update(&'a str),
    /// A server-side apply by a field manager.
    Apply {
        /// The field manager.
        manager: &'a str,
        /// `force=true`.
        force: bool,
    },
}

/// Who set a field last, and how: enough to word a conflict as the real server does.
#[derive(Debug, Clone, PartialEq)]
struct Owner {
    manager: String,
    /// Set by an update (create, replace, patch) rather than by apply.
    update: bool,
    api_version: String,
    time: String,
}

impl Owner {
    /// The manager as the real server prints it in conflicts: `"m"` for apply,
    /// `"m" using v1 at <time>` for an update.
    fn printed(&self) -> String {
        if self.update {
            format!(
                "{:?} using {} at {}",
                self.manager, self.api_version, self.time
            )
        } else {
            format!("{:?}", self.manager)
        }
    }
}

/// Every object, the change history, and field ownership.
#[derive(Debug, Default)]
pub struct Store {
    rv: u64,
    uids: u64,
    /// New watches from before this resource version are refused (compaction).
    compacted: u64,
    objects: BTreeMap<Key, Value>,
    history: Vec<Change>,
    owners: HashMap<Key, BTreeMap<String, Owner>>,
    applied: HashMap<(Key, String), BTreeSet<String>>,
}

/// The current time as Kubernetes writes it.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn key(res: &Resource, ns: &str, name: &str) -> Key {
    (
        res.group.clone(),
        res.plural.clone(),
        if res.namespaced {
            ns.to_string()
        } else {
            String::new()
        },
        name.to_string(),
    )
}

fn name_of(obj: &Value) -> String {
    obj["metadata"]["name"].as_str().unwrap_or("").to_string()
}

/// The object without its resourceVersion, for no-op detection.
fn comparable(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
        m.remove("managedFields");
    }
    o
}

/// The part of an object whose change bumps the generation: everything but metadata and status.
fn spec_part(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
        m.remove("apiVersion");
        m.remove("kind");
    }
    o
}

impl Store {
    /// The latest resource version.
    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    /// The changes after `rv`, oldest first: 410 `Expired` when `rv` was compacted away,
    /// 504 when the server has not reached it.
    pub fn changes_since(&self, rv: u64) -> Result<Vec<Change>, ApiError> {
        if rv > self.rv {
            return Err(ApiError::too_large(rv, self.rv));
        }
        if rv < self.compacted {
            return Err(ApiError::expired(rv, self.compacted));
        }
        Ok(self.changes_after(rv))
    }

    /// The changes after `rv` still in the history (for watches already running, which
    /// compaction does not end).
    pub fn changes_after(&self, rv: u64) -> Vec<Change> {
        let start = self.history.partition_point(|c| c.rv <= rv);
        self.history[start..].to_vec()
    }

    /// Compacts the change history, as etcd does: new watches from an older resource version
    /// fail with 410 `Expired`, and clients must list again. The entries stay for the watches
    /// already running, which compaction does not end.
    pub fn compact(&mut self) {
        self.compacted = self.rv;
    }

    /// One object.
    pub fn get(&self, res: &Resource, ns: &str, name: &str) -> Result<Value, ApiError> {
        self.objects
            .get(&key(res, ns, name))
            .cloned()
            .ok_or_else(|| ApiError::not_found(res, name))
    }

    /// The objects of a resource in a namespace (or all namespaces) that pass `filter`.
    pub fn list(&self, res: &Resource, ns: Option<&str>, filter: &Filter) -> Vec<Value> {
        self.objects
            .iter()
            .filter(|((g, p, n, _), _)| {
                *g == res.group && *p == res.plural && ns.is_none_or(|ns| ns == n)
            })
            .map(|(_, o)| o)
            .filter(|o| filter.matches(o))
            .cloned()
            .collect()
    }

    /// Creates an object (`POST`).
    pub fn create(
        &mut self,
        res: &Resource,
        ns: &str,
        mut obj: Value,
        write: Write<'_>,
    ) -> Result<Value, ApiError> {
        if !obj.is_object() {
            return Err(ApiError::bad_request("the body must be a JSON object"));
        }
        let meta = obj
            .as_object_mut()
            .and_then(|o| {
                Some(
                    o.entry("metadata")
                        .or_insert_with(|| json!({}))
                        .as_object_mut()?
                        .clone(),
                )
            })
            .unwrap_or_default();
        let mut name = meta
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if name.is_empty() {
            let Some(prefix) = meta.get("generateName").and_then(Value::as_str) else {
                return Err(ApiError::invalid(
                    res,
                    "",
                    "metadata.name: Required value: name or generateName is required".into(),
                ));
            };
            name = format!("{prefix}{:05x}", self.uids + 1);
        }
        if res.namespaced
            && let Some(body_ns) = meta.get("namespace").and_then(Value::as_str)
            && body_ns != ns
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        if self.objects.contains_key(&key(res, ns, &name)) {
            return Err(ApiError::already_exists(res, &name));
        }
        self.uids += 1;
        let m = &mut obj["metadata"];
        m["name"] = json!(name);
        if res.namespaced {
            m["namespace"] = json!(ns);
        }
        m["uid"] = json!(format!("00000000-0000-4000-8000-{:012x}", self.uids));
        m["creationTimestamp"] = json!(now());
        if let Some(o) = m.as_object_mut() {
            o.remove("deletionTimestamp");
            o.remove("generateName");
            if res.generation {
                o.insert("generation".into(), json!(1));
            } else {
                o.remove("generation");
            }
        }
        obj["apiVersion"] = json!(res.api_version());
        obj["kind"] = json!(res.kind);
        if res.status_subresource
            && let Some(o) = obj.as_object_mut()
        {
            o.remove("status");
        }
        let k = key(res, ns, &name);
        if let Write::Apply { manager, .. } = &write {
            self.applied.insert(
                (k.clone(), manager.to_string()),
                patch::leaves(&obj).into_keys().collect(),
            );
        }
        Ok(self.commit(res, k, None, obj, &write))
    }

    /// Replaces an object (`PUT`), or its status (`PUT .../status`).
    pub fn replace(
        &mut self,
        res: &Resource,
        ns: &str,
        name: &str,
        obj: Value,
        status_only: bool,
        manager: &str,
    ) -> Result<Value, ApiError> {
        let current = self.get(res, ns, name)?;
        let Some(rv) = obj["metadata"]["resourceVersion"].as_str() else {
            return Err(ApiError::invalid(
                res,
                name,
                "metadata.resourceVersion: Invalid value: 0x0: must be specified for an update"
                    .into(),
            ));
        };
        if current["metadata"]["resourceVersion"].as_str() != Some(rv) {
            return Err(ApiError::conflict(res, name));
        }
        let next = self.merge_rules(res, &current, obj, status_only, name)?;
        Ok(self.commit(
            res,
            key(res, ns, name),
            Some(current),
            next,
            &Write::Update(manager),
        ))
    }

    /// Patches an object or its status. `kind` is the patch's media type.
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &mut self,
        res: &Resource,
        ns: &str,
        name: &str,
        kind: &str,
        body: &Value,
        status_only: bool,
        write: Write<'_>,
    ) -> Result<Value, ApiError> {
        let k = key(res, ns, name);
        let current = match self.objects.get(&k) {
            Some(c) => c.clone(),
            None if matches!(write, Write::Apply { .. }) && !status_only => {
                let mut obj = body.clone();
                if obj["metadata"]["name"].as_str().is_none() {
                    obj["metadata"]["name"] = json!(name);
                }
                return self.create(res, ns, obj, write);
            }
            None => return Err(ApiError::not_found(res, name)),
        };
        if let Some(rv) = body["metadata"]["resourceVersion"].as_str()
            && current["metadata"]["resourceVersion"].as_str() != Some(rv)
        {
            return Err(ApiError::conflict(res, name));
        }
        let mut next = current.clone();
        match (kind, &write) {
            ("apply", Write::Apply { manager, force }) => {
                self.apply(&k, &mut next, body, manager, *force)?
            }
            ("merge" | "strategic", _) => patch::merge(&mut next, body),
            ("json", _) => {
                patch::json_patch(&mut next, body).map_err(|e| ApiError::invalid(res, name, e))?
            }
            (other, _) => return Err(ApiError::unsupported_media_type(other)),
        }
        if let Some(m) = next.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
            if let Some(rv) = current["metadata"]["resourceVersion"].as_str() {
                m.insert("resourceVersion".into(), json!(rv));
            }
        }
        let next = self.merge_rules(res, &current, next, status_only, name)?;
        Ok(self.commit(res, k, Some(current), next, &write))
    }

    /// Server-side apply: conflicts with other managers' fields unless forced; fields this
    /// manager applied before and no longer applies are removed.
    fn apply(
        &mut self,
        k: &Key,
        next: &mut Value,
        body: &Value,
        manager: &str,
        force: bool,
    ) -> Result<(), ApiError> {
        let wanted = patch::leaves(body);
        let owners = self.owners.get(k).cloned().unwrap_or_default();
        if !force {
            let conflicts: Vec<(String, String)> = wanted
                .iter()
                .filter_map(|(path, v)| {
                    let owner = owners.get(path)?;
                    (owner.manager != manager && next.pointer(path) != Some(v))
                        .then(|| (field_path(path), owner.printed()))
                })
                .collect();
            if !conflicts.is_empty() {
                return Err(ApiError::apply_conflict(&conflicts));
            }
        }
        let before = self
            .applied
            .get(&(k.clone(), manager.to_string()))
            .cloned()
            .unwrap_or_default();
        for path in before.iter().filter(|p| !wanted.contains_key(*p)) {
            if owners.get(path).is_none_or(|o| o.manager == manager) {
                patch::remove_path(next, path);
            }
        }
        patch::merge(next, &strip_nulls(body));
        self.applied.insert(
            (k.clone(), manager.to_string()),
            wanted.into_keys().collect(),
        );
        Ok(())
    }

    /// Keeps what the server owns: identity, timestamps, deletion, and (status subresource)
    /// the split between main resource and status.
    fn merge_rules(
        &self,
        res: &Resource,
        current: &Value,
        mut next: Value,
        status_only: bool,
        name: &str,
    ) -> Result<Value, ApiError> {
        if next["metadata"]["name"].as_str().is_some_and(|n| n != name) {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                next["metadata"]["name"].as_str().unwrap_or("")
            )));
        }
        if res.status_subresource {
            if status_only {
                let status = next.get("status").cloned();
                next = current.clone();
                match status {
                    Some(s) => next["status"] = s,
                    None => {
                        if let Some(o) = next.as_object_mut() {
                            o.remove("status");
                        }
                    }
                }
            } else if let Some(o) = next.as_object_mut() {
                match current.get("status") {
                    Some(s) => {
                        o.insert("status".into(), s.clone());
                    }
                    None => {
                        o.remove("status");
                    }
                }
            }
        }
        let cm = &current["metadata"];
        for field in [
            "uid",
            "creationTimestamp",
            "namespace",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ] {
            match cm.get(field) {
                Some(v) => next["metadata"][field] = v.clone(),
                None => {
                    if let Some(m) = next["metadata"].as_object_mut() {
                        m.remove(field);
                    }
                }
            }
        }
        next["metadata"]["name"] = json!(name);
        next["apiVersion"] = json!(res.api_version());
        next["kind"] = json!(res.kind);
        if cm.get("deletionTimestamp").is_some() {
            let before: BTreeSet<&str> = finalizers(current).collect();
            if let Some(added) = finalizers(&next).find(|f| !before.contains(f)) {
                return Err(ApiError::invalid(
                    res,
                    name,
                    format!(
                        "metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{{\"{added}\"}}"
                    ),
                ));
            }
        }
        Ok(next)
    }

    /// Deletes an object: at once without finalizers, otherwise marks it with a
    /// `deletionTimestamp` and leaves it until its last finalizer is removed.
    pub fn delete(&mut self, res: &Resource, ns: &str, name: &str) -> Result<Value, ApiError> {
        let current = self.get(res, ns, name)?;
        let k = key(res, ns, name);
        if finalizers(&current).next().is_none() {
            let uid = current["metadata"]["uid"]
                .as_str()
                .unwrap_or("")
                .to_string();
            self.rv += 1;
            let mut gone = current;
            gone["metadata"]["resourceVersion"] = json!(self.rv.to_string());
            self.objects.remove(&k);
            self.owners.remove(&k);
            self.applied.retain(|(key, _), _| *key != k);
            self.record("DELETED", &k, gone.clone());
            if res.returns_deleted_object {
                return Ok(gone);
            }
            return Ok(status::deleted(res, name, &uid));
        }
        if current["metadata"].get("deletionTimestamp").is_some() {
            return Ok(current);
        }
        let mut next = current.clone();
        next["metadata"]["deletionTimestamp"] = json!(now());
        next["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        if res.generation {
            let g = current["metadata"]["generation"].as_i64().unwrap_or(0);
            next["metadata"]["generation"] = json!(g + 1);
        }
        Ok(self.commit(res, k, Some(current), next, &Write::Update("")))
    }

    /// Stores a change: no-op writes change nothing; otherwise a new resource version, a
    /// generation bump for spec changes, field ownership, and the watch event.
    fn commit(
        &mut self,
        res: &Resource,
        k: Key,
        old: Option<Value>,
        mut next: Value,
        write: &Write<'_>,
    ) -> Value {
        if let Some(old) = &old
            && comparable(old) == comparable(&next)
        {
            return old.clone();
        }
        if res.generation
            && let Some(old) = &old
            && spec_part(old) != spec_part(&next)
        {
            let g = old["metadata"]["generation"].as_i64().unwrap_or(0);
            next["metadata"]["generation"] = json!(g + 1);
        }
        self.rv += 1;
        next["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        let (manager, update) = match write {
            Write::Update(m) => (*m, true),
            Write::Apply { manager, .. } => (*manager, false),
        };
        let owner = Owner {
            manager: manager.to_string(),
            update,
            api_version: res.api_version(),
            time: now(),
        };
        let before = old.as_ref().map(patch::leaves).unwrap_or_default();
        let after = patch::leaves(&next);
        let owners = self.owners.entry(k.clone()).or_default();
        owners.retain(|path, _| after.contains_key(path));
        if !manager.is_empty() {
            for (path, v) in &after {
                if before.get(path) != Some(v) {
                    owners.insert(path.clone(), owner.clone());
                }
            }
        }
        if next["metadata"].get("deletionTimestamp").is_some() && finalizers(&next).next().is_none()
        {
            self.objects.remove(&k);
            self.owners.remove(&k);
            self.applied.retain(|(key, _), _| *key != k);
            self.record("DELETED", &k, next.clone());
            return next;
        }
        let kind = if old.is_some() { "MODIFIED" } else { "ADDED" };
        self.objects.insert(k.clone(), next.clone());
        self.record(kind, &k, next.clone());
        next
    }

    fn record(&mut self, kind: &'static str, k: &Key, object: Value) {
        self.history.push(Change {
            rv: self.rv,
            kind,
            group: k.0.clone(),
            plural: k.1.clone(),
            namespace: k.2.clone(),
            object,
        });
    }

    /// The name of an object in a body, for messages.
    pub fn body_name(obj: &Value) -> String {
        name_of(obj)
    }
}

/// A JSON pointer as a field path of the real server's messages: `/spec/x` -> `.spec.x`.
fn field_path(pointer: &str) -> String {
    pointer
        .split('/')
        .skip(1)
        .map(|seg| format!(".{}", seg.replace("~1", "/").replace("~0", "~")))
        .collect()
}

fn finalizers(obj: &Value) -> impl Iterator<Item = &str> {
    obj["metadata"]["finalizers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

/// An applied configuration without `null`s (apply treats them as "not set").
fn strip_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), strip_nulls(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}
