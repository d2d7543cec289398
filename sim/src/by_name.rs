//! Maps keyed by namespace, then name: a lookup borrows the two names instead of building an
//! owned `(String, String)` key (lookups run on every reconcile and query; inserts are rare).

use rustc_hash::FxHashMap;

/// Values by namespace, then name.
pub(crate) type ByName<T> = FxHashMap<String, FxHashMap<String, T>>;

/// Sets the value of `namespace`/`name`.
pub(crate) fn put<T>(map: &mut ByName<T>, namespace: &str, name: &str, value: T) {
    // Looked up before inserting: the namespace is almost always there already.
    let names = match map.get_mut(namespace) {
        Some(names) => names,
        None => map.entry(namespace.to_string()).or_default(),
    };
    names.insert(name.to_string(), value);
}

/// The value of `namespace`/`name`, created empty if there is none.
pub(crate) fn entry<'a, T: Default>(
    map: &'a mut ByName<T>,
    namespace: &str,
    name: &str,
) -> &'a mut T {
    map.entry(namespace.to_string())
        .or_default()
        .entry(name.to_string())
        .or_default()
}

/// Removes the value of `namespace`/`name`.
pub(crate) fn take<T>(map: &mut ByName<T>, namespace: &str, name: &str) -> Option<T> {
    map.get_mut(namespace)?.remove(name)
}

/// The value of `namespace`/`name`.
pub(crate) fn find<'a, T>(map: &'a ByName<T>, namespace: &str, name: &str) -> Option<&'a T> {
    map.get(namespace)?.get(name)
}
