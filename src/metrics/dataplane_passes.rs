//! The dataplane's write passes, accumulated: a latency histogram and counters of netlink
//! operations, kernel refusals and repairs.
//!
//! Passes exist only as events on the dataplane's broadcast (a snapshot cannot say how long
//! the last hundred writes took), so a task follows it for the life of the server. The
//! broadcast is lossy by design (the dataplane never waits for a reader); passes this task
//! missed are counted, so a gap in the histogram shows instead of hiding.

use crate::agent::observe::DataplaneEvent;
use prometheus::core::Collector;
use prometheus::{HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

/// Seconds; from a single route written (tens of microseconds) to a first sync of a large
/// table (seconds).
const BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];

/// The pass kinds the dataplane reports, as label values.
const PASSES: &[&str] = &["first_sync", "change", "repair"];

/// The accumulated metrics; clones share the values.
#[derive(Clone)]
pub struct PassMetrics {
    programming: HistogramVec,
    operations: IntCounterVec,
    failures: IntCounterVec,
    repairs: IntCounter,
    lost: IntCounter,
}

/// The label value of a pass (`first sync` becomes `first_sync`).
fn pass_label(what: &str) -> String {
    what.replace(' ', "_")
}

impl PassMetrics {
    /// `with_dataplane`: the series of every pass kind exist from the start (at 0), so a rate
    /// over them is defined before the first write.
    pub fn new(with_dataplane: bool) -> Result<PassMetrics, prometheus::Error> {
        let m = PassMetrics {
            programming: HistogramVec::new(
                HistogramOpts::new(
                    "tortie_dataplane_programming_seconds",
                    "Time a dataplane pass took to compute its difference and write it to the kernel, by pass (first_sync, change, repair).",
                )
                .buckets(BUCKETS.to_vec()),
                &["pass"],
            )?,
            operations: IntCounterVec::new(
                Opts::new(
                    "tortie_dataplane_operations_total",
                    "Netlink operations (route adds, replacements, deletions) the dataplane wrote, by pass.",
                ),
                &["pass"],
            )?,
            failures: IntCounterVec::new(
                Opts::new(
                    "tortie_dataplane_kernel_failures_total",
                    "Netlink operations the kernel refused, by pass.",
                ),
                &["pass"],
            )?,
            repairs: IntCounter::new(
                "tortie_dataplane_repairs_total",
                "Routes a repair pass put back because the kernel no longer held what felix wrote (someone else removed or changed them).",
            )?,
            lost: IntCounter::new(
                "tortie_metrics_dataplane_events_lost_total",
                "Dataplane pass events the metrics task missed because it fell behind (those passes are absent from the histogram).",
            )?,
        };
        if with_dataplane {
            for p in PASSES {
                m.programming.with_label_values(&[*p]);
                m.operations.with_label_values(&[*p]);
                m.failures.with_label_values(&[*p]);
            }
        }
        Ok(m)
    }

    pub fn record(&self, ev: &DataplaneEvent) {
        let pass = pass_label(ev.what);
        self.programming
            .with_label_values(&[pass.as_str()])
            .observe(ev.took.as_secs_f64());
        self.operations
            .with_label_values(&[pass.as_str()])
            .inc_by(ev.ops as u64);
        self.failures
            .with_label_values(&[pass.as_str()])
            .inc_by(ev.failures as u64);
        if ev.what == "repair" {
            // A repair pass writes only what differs from what felix had written: each
            // operation is one route put back.
            self.repairs
                .inc_by(ev.ops.saturating_sub(ev.failures) as u64);
        }
    }

    pub fn lost(&self, n: u64) {
        self.lost.inc_by(n);
    }

    /// The collectors to register in a scrape's registry (they share these values).
    pub fn collectors(&self) -> Vec<Box<dyn Collector>> {
        vec![
            Box::new(self.programming.clone()),
            Box::new(self.operations.clone()),
            Box::new(self.failures.clone()),
            Box::new(self.repairs.clone()),
            Box::new(self.lost.clone()),
        ]
    }
}

/// Follows the dataplane's events until the broadcast closes (or the task is aborted).
pub fn follow(
    mut events: broadcast::Receiver<DataplaneEvent>,
    metrics: PassMetrics,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(ev) => metrics.record(&ev),
                Err(broadcast::error::RecvError::Lagged(n)) => metrics.lost(n),
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::proto::MetricFamily;
    use std::time::Duration;

    fn event(what: &'static str, ops: usize, failures: usize, ms: u64) -> DataplaneEvent {
        DataplaneEvent {
            what,
            ops,
            failures,
            took: Duration::from_millis(ms),
            routes: 10,
        }
    }

    fn family(m: &PassMetrics, name: &str) -> MetricFamily {
        m.collectors()
            .iter()
            .flat_map(|c| c.collect())
            .find(|f| f.name() == name)
            .unwrap_or_else(|| panic!("no family {name}"))
    }

    fn counter(m: &PassMetrics, name: &str, pass: &str) -> u64 {
        family(m, name)
            .get_metric()
            .iter()
            .find(|s| s.get_label().iter().any(|l| l.value() == pass))
            .map(|s| s.get_counter().get_value() as u64)
            .unwrap_or_else(|| panic!("no {name}{{pass={pass}}}"))
    }

    #[test]
    fn each_pass_is_one_histogram_sample_under_its_kind() {
        let m = PassMetrics::new(true).unwrap();
        m.record(&event("first sync", 40, 0, 30));
        m.record(&event("change", 1, 0, 1));
        m.record(&event("change", 2, 0, 2));
        let h = family(&m, "tortie_dataplane_programming_seconds");
        let count = |pass: &str| {
            h.get_metric()
                .iter()
                .find(|s| s.get_label().iter().any(|l| l.value() == pass))
                .map(|s| s.get_histogram().get_sample_count())
        };
        assert_eq!(count("first_sync"), Some(1));
        assert_eq!(count("change"), Some(2));
        assert_eq!(count("repair"), Some(0));
    }

    #[test]
    fn operations_and_refusals_are_counted_per_kind_and_repairs_count_routes_put_back() {
        let m = PassMetrics::new(true).unwrap();
        m.record(&event("change", 3, 1, 1));
        m.record(&event("repair", 5, 2, 1));
        m.record(&event("repair", 0, 0, 1));
        assert_eq!(
            counter(&m, "tortie_dataplane_operations_total", "change"),
            3
        );
        assert_eq!(
            counter(&m, "tortie_dataplane_operations_total", "repair"),
            5
        );
        assert_eq!(
            counter(&m, "tortie_dataplane_kernel_failures_total", "change"),
            1
        );
        assert_eq!(
            counter(&m, "tortie_dataplane_kernel_failures_total", "repair"),
            2
        );
        let repairs = family(&m, "tortie_dataplane_repairs_total");
        assert_eq!(repairs.get_metric()[0].get_counter().get_value(), 3.0);
    }

    #[test]
    fn without_a_dataplane_no_pass_series_exist() {
        let m = PassMetrics::new(false).unwrap();
        assert!(
            family(&m, "tortie_dataplane_programming_seconds")
                .get_metric()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn passes_missed_by_a_lagging_follower_are_counted_as_lost() {
        let (tx, rx) = broadcast::channel(2);
        let m = PassMetrics::new(true).unwrap();
        // Five events into a channel of two before the follower reads: three are lost.
        for _ in 0..5 {
            tx.send(event("change", 1, 0, 1)).unwrap();
        }
        let task = follow(rx, m.clone());
        drop(tx);
        task.await.unwrap();
        let lost = family(&m, "tortie_metrics_dataplane_events_lost_total");
        assert_eq!(lost.get_metric()[0].get_counter().get_value(), 3.0);
        assert_eq!(
            counter(&m, "tortie_dataplane_operations_total", "change"),
            2
        );
    }
}
