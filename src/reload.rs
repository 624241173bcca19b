//! The outcome of the last configuration (re)load, shared by the wiring ([`crate::app`]) and
//! the renderers ([`crate::metrics`], [`crate::pages`]): a module low in the import order, so
//! that rendering does not depend on the wiring.

use std::sync::Mutex;

/// Result of the last configuration (re)load, for metrics and the landing page.
#[derive(Debug)]
pub struct ReloadStatus {
    inner: Mutex<(bool, f64, Option<String>)>,
}

impl ReloadStatus {
    /// A status as after a successful load, now.
    pub fn new() -> Self {
        ReloadStatus {
            inner: Mutex::new((true, crate::sys::duration::unix_now(), None)),
        }
    }

    /// `(last reload successful, unix time of the last successful load)`.
    pub fn get(&self) -> (bool, f64) {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        (g.0, g.1)
    }

    /// The error of the last failed reload, if the last one failed.
    pub fn last_error(&self) -> Option<String> {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .2
            .clone()
    }

    /// Records the outcome of a (re)load: success, or the error message.
    pub fn set(&self, result: Result<(), String>) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(()) => *g = (true, crate::sys::duration::unix_now(), None),
            Err(e) => {
                g.0 = false;
                g.2 = Some(e);
            }
        }
    }
}

impl Default for ReloadStatus {
    fn default() -> Self {
        Self::new()
    }
}
