//! Coverage after every change of the fleet: which share of the city's demand has an
//! assignable ambulance within 8 and 15 minutes, and where a unit should move up when a
//! zone is left uncovered.
//!
//! A background task watches the engine's stream. When an event changes which units are
//! assignable (a dispatch above all, but also a unit freed, taken out of or returned to
//! service), it takes a snapshot of the fleet between two commands, computes coverage off
//! the async runtime, and announces the report to every console; a suggested move-up is
//! also raised as an alert. Changes that arrive while a computation runs are coalesced into
//! one more computation.

use std::sync::Arc;

use dispatch_core::fleet::Unit;
use dispatch_core::recommend::{self, DemandCell};
use dispatch_core::{Event, TravelTimes};
use tokio::sync::broadcast;

use crate::engine::{EngineHandle, Published};

/// Whether an event can change which units are assignable, or where.
pub fn changes_coverage(event: &Event) -> bool {
    matches!(
        event,
        Event::UnitAssigned { .. }
            | Event::AssignmentDeclined { .. }
            | Event::AssignmentExpired { .. }
            | Event::AssignmentCancelled { .. }
            | Event::UnitAvailable { .. }
            | Event::UnitOutOfService { .. }
            | Event::UnitReturnedToService { .. }
            | Event::UnitRegistered { .. }
    )
}

/// Starts the watcher; it ends when the engine stops. With no demand cells it does nothing.
pub fn spawn_watch(
    engine: EngineHandle,
    travel: Arc<dyn TravelTimes + Send + Sync>,
    demand: Arc<Vec<DemandCell>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if demand.is_empty() {
            return;
        }
        let mut events = engine.subscribe();
        loop {
            // Wait for a change.
            let Some(mut last_seq) = next_change(&mut events).await else {
                return;
            };
            // Coalesce whatever else is already queued.
            while let Ok(item) = events.try_recv() {
                if let Published::Event { seq, event, .. } = item
                    && changes_coverage(&event)
                {
                    last_seq = last_seq.max(seq);
                }
            }
            let Ok((units, now, max_fix_age)) = engine
                .query(|d, _, now| {
                    let units: Vec<Unit> = d
                        .units()
                        .filter(|u| u.status.is_assignable())
                        .cloned()
                        .collect();
                    (units, now, d.policy().max_fix_age_for_position)
                })
                .await
            else {
                return;
            };
            let travel = travel.clone();
            let demand = demand.clone();
            let report = tokio::task::spawn_blocking(move || {
                recommend::coverage(units.iter(), &demand, travel.as_ref(), now, max_fix_age)
            })
            .await;
            let Ok(report) = report else {
                tracing::error!("coverage computation failed");
                continue;
            };
            metrics::gauge!("regula_coverage_share", "within" => "8min")
                .set(report.share_within_8_min);
            metrics::gauge!("regula_coverage_share", "within" => "15min")
                .set(report.share_within_15_min);
            if let Some(move_up) = &report.move_up {
                engine.announce(Published::Suggestion {
                    message: format!(
                        "Cobertura 8 min en {:.0} %: mover {} hacia ({:.4}, {:.4}) la subiría a {:.0} %",
                        move_up.share_8_before * 100.0,
                        move_up.unit,
                        move_up.to.lat(),
                        move_up.to.lon(),
                        move_up.share_8_after * 100.0
                    ),
                });
            }
            engine.announce(Published::Coverage {
                after_seq: last_seq,
                report: Box::new(report),
            });
        }
    })
}

/// The sequence number of the next event that changes coverage; `None` when the engine is
/// gone. A lagging receiver counts as a change (something was missed).
async fn next_change(events: &mut broadcast::Receiver<Published>) -> Option<u64> {
    loop {
        match events.recv().await {
            Ok(Published::Event { seq, event, .. }) if changes_coverage(&event) => {
                return Some(seq);
            }
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(_)) => return Some(0),
            Err(broadcast::error::RecvError::Closed) => return None,
        }
    }
}
