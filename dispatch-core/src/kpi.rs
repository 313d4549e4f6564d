//! Key performance indicators, computed from the recorded timelines (themselves a fold of
//! the event log), per dispatch priority, with the reference standards beside them.
//!
//! | interval | from → to | standard shown |
//! |---|---|---|
//! | answer | call queued → taken by an operator | NENA: 90 % within 15 s (and 95 % within 20 s); NFPA 1225 (2022): 90 % within 10 s |
//! | processing | call taken → first unit assigned | NFPA 1225: 90 % within 60 s |
//! | turnout | first unit assigned → first unit en route | — |
//! | travel | first unit en route → first unit on scene | — |
//! | response | call queued → first unit on scene | England category 1: mean 7 min, 90th percentile 15 min; category 2: mean 18 min, 90th percentile 40 min (shown for critical and high priority) |
//! | on scene | first on scene → transport started | — |
//! | transport | transport started → at hospital | — |
//! | total | call queued (or incident opened) → patient handed over | SDS Bogotá 2024 baseline: median 31 min to arrival for critical/high |
//!
//! Percentiles use the nearest-rank method. The report covers what the live state holds:
//! open incidents and calls, and those finished within [`crate::Policy::history_retention`]
//! (a week by default) — a rolling window; older figures come from the event log.

use maps::{Timestamp, TravelTime};
use serde::{Deserialize, Serialize};

use crate::model::{Incident, Priority, Timeline};
use crate::state::Dispatch;

/// An interval measured between two milestones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum Interval {
    /// Queued → taken.
    Answer,
    /// Taken → first unit assigned.
    Processing,
    /// Assigned → en route.
    Turnout,
    /// En route → on scene.
    Travel,
    /// Queued → first unit on scene.
    Response,
    /// On scene → transport started.
    OnScene,
    /// Transport started → at hospital.
    Transport,
    /// Queued (or opened) → handed over.
    Total,
}

impl Interval {
    /// Every interval, in the order of an incident.
    pub const ALL: [Self; 8] = [
        Self::Answer,
        Self::Processing,
        Self::Turnout,
        Self::Travel,
        Self::Response,
        Self::OnScene,
        Self::Transport,
        Self::Total,
    ];

    fn measure(self, t: &Timeline) -> Option<TravelTime> {
        let start_of_call = t.call_offered.or(t.opened);
        let span = |a: Option<Timestamp>, b: Option<Timestamp>| b?.duration_since(a?);
        match self {
            Self::Answer => span(t.call_offered, t.call_answered),
            Self::Processing => span(t.call_answered.or(t.opened), t.first_assigned),
            Self::Turnout => span(t.first_assigned, t.first_en_route),
            Self::Travel => span(t.first_en_route, t.first_on_scene),
            Self::Response => span(start_of_call, t.first_on_scene),
            Self::OnScene => span(t.first_on_scene, t.transport_started),
            Self::Transport => span(t.transport_started, t.at_hospital),
            Self::Total => span(start_of_call, t.handed_over),
        }
    }
}

/// A reference standard: a share of cases within a limit, or a mean.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Standard {
    /// Who sets it.
    pub source: String,
    /// The target share of cases within `limit` (0.9 = 90 %), or `None` for a mean target.
    pub share: Option<f64>,
    /// The time limit (or target mean).
    pub limit: TravelTime,
    /// Share of measured cases within `limit`; `None` while nothing was measured (no
    /// cases is not 0 % compliance).
    pub achieved_share: Option<f64>,
}

/// Statistics of one interval for one priority (or all).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntervalStats {
    /// Which interval.
    pub interval: Interval,
    /// Which priority; `None` for all cases.
    pub priority: Option<Priority>,
    /// Cases measured.
    pub count: usize,
    /// Median.
    pub median: Option<TravelTime>,
    /// 90th percentile.
    pub p90: Option<TravelTime>,
    /// Mean.
    pub mean: Option<TravelTime>,
    /// Standards that apply.
    pub standards: Vec<Standard>,
}

/// The KPI report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KpiReport {
    /// Calls recorded.
    pub calls: usize,
    /// Of which abandoned before answer.
    pub abandoned: usize,
    /// Of which unanswered within the gateway's maximum time in queue and handed back to
    /// the carrier (overflow); unanswered like the abandoned ones, counted apart.
    pub overflowed: usize,
    /// Incidents recorded.
    pub incidents: usize,
    /// Per interval, for all calls/incidents then per priority.
    pub intervals: Vec<IntervalStats>,
}

/// Nearest-rank percentile of sorted values (`q` in 0..=1).
pub fn percentile(sorted: &[TravelTime], q: f64) -> Option<TravelTime> {
    if sorted.is_empty() {
        return None;
    }
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted.get(rank - 1).copied()
}

fn stats(
    interval: Interval,
    priority: Option<Priority>,
    mut values: Vec<TravelTime>,
) -> IntervalStats {
    values.sort_unstable();
    let count = values.len();
    let mean = (count > 0).then(|| {
        let total: u128 = values.iter().map(|v| u128::from(v.as_millis())).sum();
        TravelTime::from_millis(u64::try_from(total / count as u128).unwrap_or(u64::MAX))
    });
    let within = |limit: TravelTime| {
        #[allow(clippy::cast_precision_loss)]
        (count > 0).then(|| values.iter().filter(|v| **v <= limit).count() as f64 / count as f64)
    };
    let mut standards = Vec::new();
    let mut add = |source: &str, share: Option<f64>, limit: TravelTime| {
        standards.push(Standard {
            source: source.to_owned(),
            share,
            limit,
            achieved_share: within(limit),
        });
    };
    match (interval, priority) {
        (Interval::Answer, _) => {
            add("NENA (90 % ≤ 15 s)", Some(0.90), TravelTime::from_secs(15));
            add("NENA (95 % ≤ 20 s)", Some(0.95), TravelTime::from_secs(20));
            add(
                "NFPA 1225:2022 (90 % ≤ 10 s)",
                Some(0.90),
                TravelTime::from_secs(10),
            );
        }
        (Interval::Processing, _) => {
            add(
                "NFPA 1225:2022 (90 % ≤ 60 s)",
                Some(0.90),
                TravelTime::from_secs(60),
            );
        }
        (Interval::Response, Some(Priority::Critical)) => {
            add(
                "England cat. 1 (media 7 min)",
                None,
                TravelTime::from_minutes(7),
            );
            add(
                "England cat. 1 (p90 15 min)",
                Some(0.90),
                TravelTime::from_minutes(15),
            );
        }
        (Interval::Response, Some(Priority::High)) => {
            add(
                "England cat. 2 (media 18 min)",
                None,
                TravelTime::from_minutes(18),
            );
            add(
                "England cat. 2 (p90 40 min)",
                Some(0.90),
                TravelTime::from_minutes(40),
            );
        }
        _ => {}
    }
    IntervalStats {
        interval,
        priority,
        count,
        median: percentile(&values, 0.5),
        p90: percentile(&values, 0.9),
        mean,
        standards,
    }
}

/// Computes the report over every recorded call and incident.
pub fn report(dispatch: &Dispatch) -> KpiReport {
    let incidents: Vec<&Incident> = dispatch.incidents().collect();
    let mut intervals = Vec::new();
    for interval in Interval::ALL {
        let all: Vec<TravelTime> = if interval == Interval::Answer {
            // Every answered call counts, incident or not.
            dispatch
                .calls()
                .filter_map(|c| {
                    c.taken
                        .as_ref()
                        .and_then(|(_, at)| at.duration_since(c.offered_at))
                })
                .collect()
        } else {
            incidents
                .iter()
                .filter_map(|i| interval.measure(&i.timeline))
                .collect()
        };
        intervals.push(stats(interval, None, all));
        for priority in Priority::ALL {
            let values = incidents
                .iter()
                .filter(|i| i.priority() == Some(priority))
                .filter_map(|i| interval.measure(&i.timeline))
                .collect();
            intervals.push(stats(interval, Some(priority), values));
        }
    }
    KpiReport {
        calls: dispatch.calls().count(),
        abandoned: dispatch
            .calls()
            .filter(|c| c.status == crate::model::CallStatus::Abandoned)
            .count(),
        overflowed: dispatch
            .calls()
            .filter(|c| c.status == crate::model::CallStatus::Overflowed)
            .count(),
        incidents: incidents.len(),
        intervals,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(v: &[u64]) -> Vec<TravelTime> {
        v.iter().map(|s| TravelTime::from_secs(*s)).collect()
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v = secs(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        assert_eq!(percentile(&v, 0.5), Some(TravelTime::from_secs(5)));
        assert_eq!(percentile(&v, 0.9), Some(TravelTime::from_secs(9)));
        assert_eq!(percentile(&v, 1.0), Some(TravelTime::from_secs(10)));
        assert_eq!(percentile(&secs(&[7]), 0.9), Some(TravelTime::from_secs(7)));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn answer_times_are_compared_with_nena_and_nfpa() {
        let s = stats(Interval::Answer, None, secs(&[5, 8, 12, 14, 30]));
        assert_eq!(s.count, 5);
        assert_eq!(s.median, Some(TravelTime::from_secs(12)));
        let nena = &s.standards[0];
        assert!((nena.achieved_share.unwrap() - 0.8).abs() < 1e-9);
        let nfpa = &s.standards[2];
        assert!((nfpa.achieved_share.unwrap() - 0.4).abs() < 1e-9);
        assert_eq!(s.mean, Some(TravelTime::from_millis(13_800)));
    }

    #[test]
    fn no_cases_is_no_compliance_figure_rather_than_zero() {
        let s = stats(Interval::Answer, None, Vec::new());
        assert_eq!(s.count, 0);
        assert_eq!(s.median, None);
        assert!(!s.standards.is_empty());
        assert!(s.standards.iter().all(|st| st.achieved_share.is_none()));
    }

    #[test]
    fn intervals_need_both_milestones() {
        let t = Timeline {
            call_offered: Some(Timestamp::from_millis(0).unwrap()),
            call_answered: Some(Timestamp::from_millis(9_000).unwrap()),
            first_assigned: Some(Timestamp::from_millis(60_000).unwrap()),
            ..Timeline::default()
        };
        assert_eq!(Interval::Answer.measure(&t), Some(TravelTime::from_secs(9)));
        assert_eq!(
            Interval::Processing.measure(&t),
            Some(TravelTime::from_secs(51))
        );
        assert_eq!(Interval::Turnout.measure(&t), None);
    }
}
