//! What is taken from a server when a unit's warm-ups are done, so the figures around the unit
//! (log-pattern counts of a managed server, the server's own `/metrics`) cover its measured
//! requests only.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::backend::managed::{self, ManagedServer};
use crate::backend::server_metrics::{self, Scraper};
use crate::runner::PhaseHook;

/// The snapshots of one unit, taken by the runner's phase hook.
pub(super) struct Snapshots<'a> {
    pub server: Option<&'a ManagedServer>,
    pub scraper: Option<&'a Scraper>,
    log: Mutex<Option<Vec<(String, u64)>>>,
    metrics: Mutex<Option<BTreeMap<String, f64>>>,
}

/// What a unit's server did between its measured start and its end.
#[derive(Default)]
pub(super) struct ServerFigures {
    pub log_pattern_counts: BTreeMap<String, u64>,
    /// The same patterns counted over the whole log, from the launch to the unit's end (startup
    /// warnings, such as FP8 scaling-factor ones, are logged before any request).
    pub log_pattern_counts_since_launch: BTreeMap<String, u64>,
    /// The distinct warnings the server logged from its launch to the unit's end.
    pub server_warnings: Vec<managed::LogWarning>,
    pub server_metrics: BTreeMap<String, f64>,
}

impl<'a> Snapshots<'a> {
    pub fn new(server: Option<&'a ManagedServer>, scraper: Option<&'a Scraper>) -> Self {
        Self {
            server,
            scraper,
            log: Mutex::new(None),
            metrics: Mutex::new(None),
        }
    }

    /// The differences between the snapshots and the server's state now.
    pub async fn figures(self) -> ServerFigures {
        let log_before = self.log.into_inner().ok().flatten();
        let metrics_before = self.metrics.into_inner().ok().flatten();
        let server_metrics = match (self.scraper, &metrics_before) {
            (Some(sc), Some(before)) => sc
                .scrape()
                .await
                .map(|after| server_metrics::derive(&server_metrics::delta(before, &after)))
                .unwrap_or_default(),
            _ => BTreeMap::new(),
        };
        let log_pattern_counts = match (self.server, &log_before) {
            (Some(s), Some(before)) => {
                // Give the log readers a moment to catch up with the last lines.
                tokio::time::sleep(Duration::from_millis(200)).await;
                managed::count_delta(before, &s.pattern_counts())
                    .into_iter()
                    .collect()
            }
            _ => BTreeMap::new(),
        };
        let (log_pattern_counts_since_launch, server_warnings) = match self.server {
            Some(s) => (s.pattern_counts().into_iter().collect(), s.warnings()),
            None => (BTreeMap::new(), Vec::new()),
        };
        ServerFigures {
            log_pattern_counts,
            log_pattern_counts_since_launch,
            server_warnings,
            server_metrics,
        }
    }
}

#[async_trait::async_trait]
impl PhaseHook for Snapshots<'_> {
    async fn measured_starting(&self) {
        if let Some(s) = self.server {
            // Let the log readers catch up with the warm-ups' last lines.
            tokio::time::sleep(Duration::from_millis(200)).await;
            if let Ok(mut g) = self.log.lock() {
                *g = Some(s.pattern_counts());
            }
        }
        if let Some(sc) = self.scraper {
            let m = sc.scrape().await;
            if let Ok(mut g) = self.metrics.lock() {
                *g = m;
            }
        }
    }
}
