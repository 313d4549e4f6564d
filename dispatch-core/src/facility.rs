//! Emergency departments and how a destination is chosen.
//!
//! Bogotá has 84 sites with an enabled emergency service (REPS, July 2026): 25 high, 22
//! medium and 37 low complexity. Public-network ED occupancy averaged 109.6 % in 2023 and
//! exceeded 130 % in 2024 against a standard below 95 %; providers report it three times a
//! day (09:00, 15:00, 21:00). A destination is therefore chosen by capability first, then by
//! travel time **plus a penalty for crowding**:
//!
//! ```text
//! score (minutes) = ETA + occupancy penalty
//! occupancy penalty = 0                               if occupancy ≤ 95 %
//!                   = 0.25 min × (occupancy − 95)     above 95 %, capped at 30 min
//! unknown or stale occupancy (no report in the last 8 h, i.e. a missed reporting round)
//!                   = treated as 110 % (public-network mean of 2023, 109.6 %) → 3.75 min
//! ```
//!
//! So a hospital at 135 % (10 min penalty) loses to one at 90 % that is up to 10 minutes
//! further away, but a hospital 20 minutes closer still wins. EDs on diversion are excluded.

use std::collections::BTreeSet;

use maps::{GeoPoint, Timestamp, TravelTime};
use serde::{Deserialize, Serialize};

use crate::fleet::Ownership;
use crate::ids::FacilityId;

/// Occupancy at or below which there is no penalty (the standard), in percent.
pub const OCCUPANCY_STANDARD_PERCENT: f64 = 95.0;
/// Penalty per percentage point above the standard.
pub const PENALTY_MINUTES_PER_POINT: f64 = 0.25;
/// Largest penalty.
pub const MAX_PENALTY_MINUTES: f64 = 30.0;
/// Occupancy assumed when the last report is missing or older than [`OCCUPANCY_STALE_AFTER`].
pub const ASSUMED_OCCUPANCY_PERCENT: f64 = 110.0;
/// A report older than this is stale (reports come every 6–12 hours).
pub const OCCUPANCY_STALE_AFTER: TravelTime = TravelTime::from_minutes(8 * 60);
/// Highest occupancy accepted in a report (single hospitals reached 354 % in 2025).
pub const MAX_OCCUPANCY_PERCENT: f64 = 1000.0;

/// Level of care of a facility (REPS `Complejidad`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum Complexity {
    /// Baja.
    Low,
    /// Mediana.
    Medium,
    /// Alta.
    High,
}

/// What a destination must be able to do for a specialty route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum Capability {
    /// Stroke unit / thrombolysis (route `acv`).
    Stroke,
    /// Cath lab / coronary care (route `sca`).
    Coronary,
    /// Trauma care (route `trauma`).
    Trauma,
    /// Obstetric emergencies (route `materno_perinatal`).
    Obstetric,
    /// Paediatric emergencies (route `pediatria`).
    Paediatric,
    /// Mental-health emergencies (route `salud_mental`).
    MentalHealth,
    /// Toxicology / poisoning care (route `intoxicacion`).
    Toxicology,
    /// Care of victims of sexual or domestic violence, with forensic kit (route `violencias`).
    ViolenceCare,
}

impl Capability {
    /// Every capability, in declaration order.
    pub const ALL: [Self; 8] = [
        Self::Stroke,
        Self::Coronary,
        Self::Trauma,
        Self::Obstetric,
        Self::Paediatric,
        Self::MentalHealth,
        Self::Toxicology,
        Self::ViolenceCare,
    ];

    /// Spanish label for consoles.
    pub fn label_es(self) -> &'static str {
        match self {
            Self::Stroke => "ACV",
            Self::Coronary => "síndrome coronario",
            Self::Trauma => "trauma",
            Self::Obstetric => "materno-perinatal",
            Self::Paediatric => "pediatría",
            Self::MentalHealth => "salud mental",
            Self::Toxicology => "toxicología",
            Self::ViolenceCare => "atención a violencias",
        }
    }
}

/// An occupancy report.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Occupancy {
    /// Patients in the observation area per lying place, × 100.
    pub percent: f64,
    /// When the facility reported it.
    pub reported_at: Timestamp,
}

/// A facility on diversion receives no ambulances.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Diversion {
    /// Why (e.g. "sin camas de observación", "falla eléctrica").
    pub reason: String,
    /// Since when.
    pub since: Timestamp,
}

/// Registration data of an emergency department.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FacilityRegistration {
    /// Id.
    pub id: FacilityId,
    /// Site name as in REPS.
    pub name: String,
    /// Entrance of the emergency department.
    pub location: GeoPoint,
    /// Level of care.
    pub complexity: Complexity,
    /// Capabilities for specialty routes.
    pub capabilities: BTreeSet<Capability>,
    /// Public or private.
    pub ownership: Ownership,
    /// Public subred (Norte, Centro Oriente, Sur, Sur Occidente), when known.
    pub subred: Option<String>,
}

/// An emergency department as the core knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Facility {
    /// Registration.
    pub registration: FacilityRegistration,
    /// Last occupancy report.
    pub occupancy: Option<Occupancy>,
    /// Diversion, if on.
    pub diversion: Option<Diversion>,
}

impl Facility {
    /// The occupancy used for ranking at `now` and whether it was assumed.
    pub fn effective_occupancy(&self, now: Timestamp) -> (f64, bool) {
        match self.occupancy {
            Some(o) if now.saturating_duration_since(o.reported_at) <= OCCUPANCY_STALE_AFTER => {
                (o.percent, false)
            }
            _ => (ASSUMED_OCCUPANCY_PERCENT, true),
        }
    }

    /// The crowding penalty at `now` (see the module docs).
    pub fn occupancy_penalty(&self, now: Timestamp) -> TravelTime {
        let (percent, _) = self.effective_occupancy(now);
        penalty_for(percent)
    }
}

/// The crowding penalty for an occupancy.
pub fn penalty_for(percent: f64) -> TravelTime {
    let minutes = ((percent - OCCUPANCY_STANDARD_PERCENT).max(0.0) * PENALTY_MINUTES_PER_POINT)
        .min(MAX_PENALTY_MINUTES);
    TravelTime::from_secs_f64_saturating(minutes * 60.0)
}

/// One ranked destination, with the reasons shown to the operator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationOption {
    /// The facility.
    pub facility: FacilityId,
    /// Its name.
    pub name: String,
    /// Travel time from the incident.
    pub eta: TravelTime,
    /// Crowding penalty added.
    pub penalty: TravelTime,
    /// `eta + penalty`, the ranking key.
    pub score: TravelTime,
    /// Whether it has the capability the route needs.
    pub has_capability: bool,
    /// Reasons in Spanish, for the console.
    pub reasons: Vec<String>,
}

/// Why a facility was left out of the ranking.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExcludedDestination {
    /// The facility.
    pub facility: FacilityId,
    /// Why, in Spanish.
    pub reason: String,
}

/// A destination recommendation: the best option first, then alternatives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationRanking {
    /// The capability the route asked for, if any.
    pub required: Option<Capability>,
    /// Ranked options (at most the requested number).
    pub options: Vec<DestinationOption>,
    /// Facilities excluded and why (diversion, unreachable).
    pub excluded: Vec<ExcludedDestination>,
    /// True when no facility with the capability was reachable and the ranking fell back
    /// to high-complexity EDs.
    pub fell_back: bool,
}

/// Ranks facilities for a patient: capability first (falling back to high complexity when
/// no capable facility is reachable), then `ETA + occupancy penalty`, excluding diversion.
///
/// `etas` holds, for each facility in the same order, the travel time from the incident or
/// `None` when unreachable.
pub fn rank_destinations<'a>(
    facilities: &[&'a Facility],
    etas: &[Option<TravelTime>],
    required: Option<Capability>,
    now: Timestamp,
    limit: usize,
) -> DestinationRanking {
    let mut excluded = Vec::new();
    let mut candidates: Vec<(&'a Facility, TravelTime)> = Vec::new();
    for (facility, eta) in facilities.iter().zip(etas) {
        let id = facility.registration.id.clone();
        if let Some(d) = &facility.diversion {
            excluded.push(ExcludedDestination {
                facility: id,
                reason: format!("en desvío: {}", d.reason),
            });
            continue;
        }
        match eta {
            Some(eta) => candidates.push((facility, *eta)),
            None => excluded.push(ExcludedDestination {
                facility: id,
                reason: "sin ruta desde el incidente".to_owned(),
            }),
        }
    }
    let capable = |f: &Facility| required.is_none_or(|c| f.registration.capabilities.contains(&c));
    let any_capable = candidates.iter().any(|(f, _)| capable(f));
    let fell_back = required.is_some() && !any_capable;
    let eligible = |f: &Facility| {
        if fell_back {
            f.registration.complexity == Complexity::High
        } else {
            capable(f)
        }
    };
    let mut options: Vec<DestinationOption> = candidates
        .iter()
        .filter(|(f, _)| eligible(f))
        .map(|(f, eta)| option(f, *eta, required, now))
        .collect();
    options.sort_by(|a, b| {
        a.score
            .cmp(&b.score)
            .then_with(|| a.facility.cmp(&b.facility))
    });
    options.truncate(limit);
    DestinationRanking {
        required,
        options,
        excluded,
        fell_back,
    }
}

fn option(
    f: &Facility,
    eta: TravelTime,
    required: Option<Capability>,
    now: Timestamp,
) -> DestinationOption {
    let (percent, assumed) = f.effective_occupancy(now);
    let penalty = penalty_for(percent);
    let has_capability = required.is_none_or(|c| f.registration.capabilities.contains(&c));
    let mut reasons = Vec::new();
    if let Some(c) = required {
        if has_capability {
            reasons.push(format!("capacidad {}", c.label_es()));
        } else {
            reasons.push(format!(
                "sin capacidad {} alcanzable: alta complejidad",
                c.label_es()
            ));
        }
    }
    reasons.push(format!("llegada estimada {eta}"));
    if assumed {
        reasons.push(format!(
            "ocupación sin reporte reciente: se asume {ASSUMED_OCCUPANCY_PERCENT:.0} % (+{penalty})"
        ));
    } else if penalty > TravelTime::ZERO {
        reasons.push(format!("ocupación {percent:.0} % (+{penalty})"));
    } else {
        reasons.push(format!("ocupación {percent:.0} %"));
    }
    DestinationOption {
        facility: f.registration.id.clone(),
        name: f.registration.name.clone(),
        eta,
        penalty,
        score: eta + penalty,
        has_capability,
        reasons,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        Timestamp::parse_rfc3339(s).unwrap()
    }

    fn facility(id: &str, complexity: Complexity, caps: &[Capability]) -> Facility {
        Facility {
            registration: FacilityRegistration {
                id: FacilityId::new(id).unwrap(),
                name: format!("Hospital {id}"),
                location: GeoPoint::new(-74.08, 4.6).unwrap(),
                complexity,
                capabilities: caps.iter().copied().collect(),
                ownership: Ownership::Public,
                subred: None,
            },
            occupancy: None,
            diversion: None,
        }
    }

    #[test]
    fn penalty_follows_the_documented_formula() {
        assert_eq!(penalty_for(80.0), TravelTime::ZERO);
        assert_eq!(penalty_for(95.0), TravelTime::ZERO);
        assert_eq!(penalty_for(135.0), TravelTime::from_minutes(10));
        assert_eq!(penalty_for(354.0), TravelTime::from_minutes(30));
    }

    #[test]
    fn stale_or_missing_reports_assume_110_percent() {
        let now = t("2026-11-23T20:00:00Z");
        let mut f = facility("A", Complexity::High, &[]);
        assert_eq!(f.effective_occupancy(now), (110.0, true));
        f.occupancy = Some(Occupancy {
            percent: 80.0,
            reported_at: t("2026-11-23T14:00:00Z"),
        });
        assert_eq!(f.effective_occupancy(now), (80.0, false));
        f.occupancy = Some(Occupancy {
            percent: 80.0,
            reported_at: t("2026-11-23T09:00:00Z"),
        });
        assert_eq!(f.effective_occupancy(now), (110.0, true));
    }

    #[test]
    fn capability_comes_before_travel_time() {
        let now = t("2026-11-23T20:00:00Z");
        let near = facility("NEAR", Complexity::Medium, &[]);
        let stroke = facility("STROKE", Complexity::High, &[Capability::Stroke]);
        let ranking = rank_destinations(
            &[&near, &stroke],
            &[
                Some(TravelTime::from_minutes(5)),
                Some(TravelTime::from_minutes(25)),
            ],
            Some(Capability::Stroke),
            now,
            5,
        );
        assert_eq!(ranking.options.len(), 1);
        assert_eq!(ranking.options[0].facility.as_str(), "STROKE");
        assert!(!ranking.fell_back);
        assert!(ranking.options[0].reasons[0].contains("ACV"));
    }

    #[test]
    fn crowding_can_outweigh_a_few_minutes_but_not_many() {
        let now = t("2026-11-23T20:00:00Z");
        let mut crowded = facility("CROWDED", Complexity::High, &[]);
        crowded.occupancy = Some(Occupancy {
            percent: 135.0,
            reported_at: now,
        });
        let mut calm = facility("CALM", Complexity::High, &[]);
        calm.occupancy = Some(Occupancy {
            percent: 90.0,
            reported_at: now,
        });
        let r = rank_destinations(
            &[&crowded, &calm],
            &[
                Some(TravelTime::from_minutes(10)),
                Some(TravelTime::from_minutes(15)),
            ],
            None,
            now,
            5,
        );
        assert_eq!(r.options[0].facility.as_str(), "CALM");
        assert_eq!(r.options[1].score, TravelTime::from_minutes(20));
        let r = rank_destinations(
            &[&crowded, &calm],
            &[
                Some(TravelTime::from_minutes(5)),
                Some(TravelTime::from_minutes(25)),
            ],
            None,
            now,
            5,
        );
        assert_eq!(r.options[0].facility.as_str(), "CROWDED");
    }

    #[test]
    fn diversion_and_unreachable_are_excluded_with_reasons() {
        let now = t("2026-11-23T20:00:00Z");
        let mut diverted = facility("DIV", Complexity::High, &[]);
        diverted.diversion = Some(Diversion {
            reason: "sin camas".into(),
            since: now,
        });
        let island = facility("ISLAND", Complexity::High, &[]);
        let ok = facility("OK", Complexity::Low, &[]);
        let r = rank_destinations(
            &[&diverted, &island, &ok],
            &[
                Some(TravelTime::from_minutes(1)),
                None,
                Some(TravelTime::from_minutes(9)),
            ],
            None,
            now,
            5,
        );
        assert_eq!(r.options.len(), 1);
        assert_eq!(r.excluded.len(), 2);
        assert!(r.excluded[0].reason.contains("desvío"));
        assert!(r.excluded[1].reason.contains("sin ruta"));
    }

    #[test]
    fn without_a_capable_facility_the_ranking_falls_back_to_high_complexity() {
        let now = t("2026-11-23T20:00:00Z");
        let low = facility("LOW", Complexity::Low, &[]);
        let high = facility("HIGH", Complexity::High, &[]);
        let r = rank_destinations(
            &[&low, &high],
            &[
                Some(TravelTime::from_minutes(2)),
                Some(TravelTime::from_minutes(20)),
            ],
            Some(Capability::Obstetric),
            now,
            5,
        );
        assert!(r.fell_back);
        assert_eq!(r.options.len(), 1);
        assert_eq!(r.options[0].facility.as_str(), "HIGH");
        assert!(!r.options[0].has_capability);
    }
}
