//! A bearer token read from a file that may be rotated (a mounted Kubernetes Secret, a projected
//! service-account token): re-read when the file's modification time changes, and on demand
//! after Prometheus answers 401.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use crate::settings::{Secret, SecretSource, SettingsError};

/// What errors call the token.
const WHAT: &str = "bearer token";

/// A token file and the token last read from it.
#[derive(Debug)]
pub struct TokenFile {
    path: PathBuf,
    last: Mutex<Loaded>,
}

#[derive(Debug)]
struct Loaded {
    token: Secret,
    modified: Option<SystemTime>,
}

fn modified(path: &Path) -> Option<SystemTime> {
    // metadata() follows symlinks: a Secret volume swaps its `..data` link on rotation.
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl TokenFile {
    /// Reads the token now, so a missing or empty file is reported at start-up.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, SettingsError> {
        let path = path.into();
        let modified = modified(&path);
        let token = SecretSource::File(path.clone()).load(WHAT)?;
        Ok(TokenFile {
            path,
            last: Mutex::new(Loaded { token, modified }),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The token, re-read first when the file's modification time changed.
    pub fn current(&self) -> Secret {
        let now = modified(&self.path);
        let mut last = self.lock();
        if now != last.modified {
            Self::reload_into(&self.path, &mut last, now);
        }
        last.token.clone()
    }

    /// Re-reads the file (after a 401); whether the token changed. A file that cannot be read
    /// or is empty keeps the last good token.
    pub fn reload(&self) -> bool {
        let now = modified(&self.path);
        let mut last = self.lock();
        Self::reload_into(&self.path, &mut last, now)
    }

    fn reload_into(path: &Path, last: &mut Loaded, modified: Option<SystemTime>) -> bool {
        // A file caught mid-rotation (missing, empty) keeps the last good token; the next
        // change or 401 tries again, and a lasting 401 shows in the query's error.
        match SecretSource::File(path.to_path_buf()).load(WHAT) {
            Ok(token) => {
                let changed = token != last.token;
                *last = Loaded { token, modified };
                changed
            }
            Err(_) => false,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Loaded> {
        self.last.lock().unwrap_or_else(|e| e.into_inner())
    }
}
