//! Recommendations an operator confirms: which unit, and how well the city stays covered.
//!
//! The core does not route; it asks a [`TravelTimes`] port, which the shell implements with
//! the `routing` crate (congestion-aware, on the real road graph) or, when no road graph is
//! loaded, with [`StraightLine`], a documented estimate.
//!
//! **Unit ranking.** Among assignable units of an acceptable kind (TAM when the need is TAM;
//! TAB or TAM when it is TAB), rank by ETA to the incident. ETAs within
//! [`ETA_TIE_WINDOW`] of each other count as a tie, broken by **fleet balance**: prefer the
//! exact kind needed (keep TAMs free when a TAB will do), then the unit whose district (H3
//! resolution 7) keeps the most other assignable units after it leaves, then the shorter ETA.

use std::collections::BTreeMap;

use maps::{Cell, GeoPoint, Meters, Speed, Timestamp, TravelTime};
use serde::{Deserialize, Serialize};

use crate::fleet::{Unit, UnitKind};
use crate::ids::UnitId;

/// ETAs closer than this are treated as equal and ranked by fleet balance.
pub const ETA_TIE_WINDOW: TravelTime = TravelTime::from_secs(60);

/// Travel times on the road network. Implementations must be deterministic for the same
/// inputs and state; `None` means unreachable.
pub trait TravelTimes {
    /// From each origin to `target` (e.g. ambulances to an incident). One-way streets make
    /// this differ from [`TravelTimes::times_from_source`].
    fn times_to_target(
        &self,
        target: GeoPoint,
        origins: &[GeoPoint],
        at: Timestamp,
    ) -> Vec<Option<TravelTime>>;

    /// From `source` to each target (e.g. an incident to emergency departments).
    fn times_from_source(
        &self,
        source: GeoPoint,
        targets: &[GeoPoint],
        at: Timestamp,
    ) -> Vec<Option<TravelTime>>;

    /// For each point, the shortest time from any source (coverage layers).
    fn times_from_nearest(
        &self,
        sources: &[GeoPoint],
        points: &[GeoPoint],
        at: Timestamp,
    ) -> Vec<Option<TravelTime>> {
        let mut best: Vec<Option<TravelTime>> = vec![None; points.len()];
        for &source in sources {
            for (slot, t) in best
                .iter_mut()
                .zip(self.times_from_source(source, points, at))
            {
                *slot = match (*slot, t) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
        }
        best
    }
}

/// An estimate used when no road graph is loaded: great-circle distance × a detour factor,
/// driven at a congested speed. Defaults: detour 1.4 (typical circuity of a grid city's
/// streets) at 23 km/h (the low end of Bogotá's 22.8–25 km/h peak average speeds,
/// Secretaría de Movilidad 2017–2023). Consoles label these times as estimates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StraightLine {
    /// Speed applied to the detoured distance.
    pub speed: Speed,
    /// Road distance ÷ straight-line distance.
    pub detour: f64,
}

impl Default for StraightLine {
    fn default() -> Self {
        Self {
            speed: Speed::from_kmh(23.0).unwrap_or(Speed::COLOMBIA_URBAN_LIMIT),
            detour: 1.4,
        }
    }
}

impl StraightLine {
    fn time(&self, a: GeoPoint, b: GeoPoint) -> TravelTime {
        (a.distance_to(b) * self.detour).at_speed(self.speed)
    }
}

impl TravelTimes for StraightLine {
    fn times_to_target(
        &self,
        target: GeoPoint,
        origins: &[GeoPoint],
        _: Timestamp,
    ) -> Vec<Option<TravelTime>> {
        origins
            .iter()
            .map(|&o| Some(self.time(o, target)))
            .collect()
    }

    fn times_from_source(
        &self,
        source: GeoPoint,
        targets: &[GeoPoint],
        _: Timestamp,
    ) -> Vec<Option<TravelTime>> {
        targets
            .iter()
            .map(|&t| Some(self.time(source, t)))
            .collect()
    }
}

/// Where a candidate's position came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum PositionSource {
    /// A recent GPS fix.
    Gps,
    /// No recent fix: its base.
    Base,
}

/// One ranked unit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnitCandidate {
    /// The unit.
    pub unit: UnitId,
    /// Its kind.
    pub kind: UnitKind,
    /// Provider name.
    pub provider: String,
    /// Travel time to the incident.
    pub eta: TravelTime,
    /// Position used for the ETA.
    pub position: GeoPoint,
    /// Whether that position is a GPS fix or the base.
    pub position_source: PositionSource,
    /// Other assignable units left in its district if it goes.
    pub district_reserve: usize,
}

/// The ranking shown to the operator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnitRecommendation {
    /// Kind needed.
    pub required: UnitKind,
    /// When the ETAs were computed.
    pub computed_at: Timestamp,
    /// Best first, at most the requested number.
    pub candidates: Vec<UnitCandidate>,
    /// Assignable units of an acceptable kind that were considered.
    pub considered: usize,
    /// Of those, how many had no route to the incident.
    pub unreachable: usize,
}

/// What a unit ranking is for.
#[derive(Clone, Copy)]
pub struct UnitQuery<'q> {
    /// Kind needed.
    pub required: UnitKind,
    /// Units to leave out (declined the incident, …).
    pub excluded: &'q dyn Fn(&UnitId) -> bool,
    /// The incident's point.
    pub target: GeoPoint,
    /// Now.
    pub now: Timestamp,
    /// Fixes older than this fall back to the unit's base.
    pub max_fix_age: TravelTime,
    /// How many candidates to return.
    pub limit: usize,
}

impl std::fmt::Debug for UnitQuery<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnitQuery")
            .field("required", &self.required)
            .field("target", &self.target)
            .field("now", &self.now)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

/// Ranks assignable units for an incident (see the module docs).
pub fn recommend_units<'a>(
    units: impl IntoIterator<Item = &'a Unit>,
    query: &UnitQuery<'_>,
    travel: &dyn TravelTimes,
) -> UnitRecommendation {
    let UnitQuery {
        required,
        excluded,
        target,
        now,
        max_fix_age,
        limit,
    } = *query;
    let assignable: Vec<&Unit> = units
        .into_iter()
        .filter(|u| u.status.is_assignable())
        .collect();
    let mut per_district: BTreeMap<Cell, usize> = BTreeMap::new();
    let positioned: Vec<(&Unit, GeoPoint, PositionSource, Cell)> = assignable
        .iter()
        .map(|u| {
            let p = u.position(now, max_fix_age);
            let source =
                if p == u.registration.base && u.fix_age(now).is_none_or(|a| a > max_fix_age) {
                    PositionSource::Base
                } else {
                    PositionSource::Gps
                };
            let district = u.district(now, max_fix_age);
            *per_district.entry(district).or_default() += 1;
            (*u, p, source, district)
        })
        .collect();
    let eligible: Vec<&(&Unit, GeoPoint, PositionSource, Cell)> = positioned
        .iter()
        .filter(|(u, ..)| u.registration.kind.satisfies(required) && !excluded(&u.registration.id))
        .collect();
    let origins: Vec<GeoPoint> = eligible.iter().map(|(_, p, ..)| *p).collect();
    let etas = travel.times_to_target(target, &origins, now);
    let mut unreachable = 0;
    // Rank light (index, eta, reserve) triples; build full candidates for the top only.
    let mut ranked: Vec<(usize, TravelTime, usize)> = Vec::with_capacity(eligible.len());
    for (index, ((_, _, _, district), eta)) in eligible.iter().zip(etas).enumerate() {
        let Some(eta) = eta else {
            unreachable += 1;
            continue;
        };
        let reserve = per_district
            .get(district)
            .map_or(0, |n| n.saturating_sub(1));
        ranked.push((index, eta, reserve));
    }
    let window = ETA_TIE_WINDOW.as_millis().max(1);
    let kind_of = |index: usize| eligible[index].0.registration.kind;
    let id_of = |index: usize| &eligible[index].0.registration.id;
    let cmp = |a: &(usize, TravelTime, usize), b: &(usize, TravelTime, usize)| {
        let bucket = |eta: TravelTime| eta.as_millis() / window;
        bucket(a.1)
            .cmp(&bucket(b.1))
            .then_with(|| (kind_of(a.0) != required).cmp(&(kind_of(b.0) != required)))
            .then_with(|| b.2.cmp(&a.2))
            .then_with(|| a.1.cmp(&b.1))
            .then_with(|| id_of(a.0).cmp(id_of(b.0)))
    };
    if ranked.len() > limit && limit > 0 {
        ranked.select_nth_unstable_by(limit - 1, cmp);
        ranked.truncate(limit);
    }
    ranked.sort_by(cmp);
    ranked.truncate(limit);
    let candidates: Vec<UnitCandidate> = ranked
        .into_iter()
        .map(|(index, eta, district_reserve)| {
            let (u, p, source, _) = eligible[index];
            UnitCandidate {
                unit: u.registration.id.clone(),
                kind: u.registration.kind,
                provider: u.registration.provider.name.clone(),
                eta,
                position: *p,
                position_source: *source,
                district_reserve,
            }
        })
        .collect();
    let considered = eligible.len();
    UnitRecommendation {
        required,
        computed_at: now,
        candidates,
        considered,
        unreachable,
    }
}

/// A place where demand arises, with its weight (population, or historical calls).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemandCell {
    /// The H3 cell (resolution 8 recommended).
    pub cell: Cell,
    /// Weight; 1.0 per cell when nothing better is known.
    pub weight: f64,
}

/// A suggestion to reposition an available unit into a coverage gap.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoveUp {
    /// The unit to move.
    pub unit: UnitId,
    /// Where to (the centre of the gap's cell).
    pub to: GeoPoint,
    /// The gap's cell.
    pub cell: Cell,
    /// Share of weighted demand within 8 minutes before and after the move.
    pub share_8_before: f64,
    /// After the move.
    pub share_8_after: f64,
}

/// How well the city is covered by assignable units right now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoverageReport {
    /// When computed.
    pub computed_at: Timestamp,
    /// Assignable units counted.
    pub units: usize,
    /// Demand cells evaluated.
    pub cells: usize,
    /// Weighted share of demand with a unit within 8 minutes.
    pub share_within_8_min: f64,
    /// Weighted share within 15 minutes.
    pub share_within_15_min: f64,
    /// Cells not reached within 8 minutes, heaviest first.
    pub gaps_8_min: Vec<Cell>,
    /// A suggested move-up, if one improves the 8-minute share.
    pub move_up: Option<MoveUp>,
}

/// Coverage threshold for the first band.
pub const COVERAGE_FAST: TravelTime = TravelTime::from_minutes(8);
/// Coverage threshold for the second band.
pub const COVERAGE_SLOW: TravelTime = TravelTime::from_minutes(15);
/// How many nearby units are tried for a move-up.
const MOVE_UP_CANDIDATES: usize = 5;

/// Computes coverage and, when a gap exists, the best single move-up among the units
/// nearest to the heaviest gap.
pub fn coverage<'a>(
    units: impl IntoIterator<Item = &'a Unit>,
    demand: &[DemandCell],
    travel: &dyn TravelTimes,
    now: Timestamp,
    max_fix_age: TravelTime,
) -> CoverageReport {
    let positions: Vec<(UnitId, GeoPoint)> = units
        .into_iter()
        .filter(|u| u.status.is_assignable())
        .map(|u| (u.registration.id.clone(), u.position(now, max_fix_age)))
        .collect();
    let centres: Vec<GeoPoint> = demand.iter().map(|d| d.cell.center()).collect();
    let total: f64 = demand.iter().map(|d| d.weight.max(0.0)).sum();
    let share = |times: &[Option<TravelTime>], limit: TravelTime| -> f64 {
        if total <= 0.0 {
            return 0.0;
        }
        demand
            .iter()
            .zip(times)
            .filter(|(_, t)| t.is_some_and(|t| t <= limit))
            .map(|(d, _)| d.weight.max(0.0))
            .sum::<f64>()
            / total
    };
    let sources: Vec<GeoPoint> = positions.iter().map(|(_, p)| *p).collect();
    let times = travel.times_from_nearest(&sources, &centres, now);
    let share_8 = share(&times, COVERAGE_FAST);
    let mut gaps: Vec<(f64, Cell, GeoPoint)> = demand
        .iter()
        .zip(&times)
        .zip(&centres)
        .filter(|((_, t), _)| t.is_none_or(|t| t > COVERAGE_FAST))
        .map(|((d, _), c)| (d.weight, d.cell, *c))
        .collect();
    gaps.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));

    let move_up = gaps.first().and_then(|&(_, cell, centre)| {
        let mut nearest: Vec<(Meters, usize)> = positions
            .iter()
            .enumerate()
            .map(|(i, (_, p))| (p.distance_to(centre), i))
            .collect();
        nearest.sort_by(|a, b| a.0.get().total_cmp(&b.0.get()).then(a.1.cmp(&b.1)));
        nearest
            .iter()
            .take(MOVE_UP_CANDIDATES)
            .map(|&(_, i)| {
                let mut moved = sources.clone();
                moved[i] = centre;
                let after = share(
                    &travel.times_from_nearest(&moved, &centres, now),
                    COVERAGE_FAST,
                );
                (after, i)
            })
            .filter(|(after, _)| *after > share_8)
            .max_by(|a, b| a.0.total_cmp(&b.0).then(b.1.cmp(&a.1)))
            .map(|(after, i)| MoveUp {
                unit: positions[i].0.clone(),
                to: centre,
                cell,
                share_8_before: share_8,
                share_8_after: after,
            })
    });
    CoverageReport {
        computed_at: now,
        units: positions.len(),
        cells: demand.len(),
        share_within_8_min: share_8,
        share_within_15_min: share(&times, COVERAGE_SLOW),
        gaps_8_min: gaps.into_iter().map(|(_, c, _)| c).collect(),
        move_up,
    }
}

#[cfg(test)]
mod tests {
    use maps::CellResolution;

    use super::*;
    use crate::fleet::{Ownership, Provider, UnitRegistration, UnitStatus};

    fn t0() -> Timestamp {
        Timestamp::parse_rfc3339("2026-11-23T12:30:00Z").unwrap()
    }

    fn unit(id: &str, kind: UnitKind, lon: f64, lat: f64) -> Unit {
        Unit::new(
            UnitRegistration {
                id: UnitId::new(id).unwrap(),
                kind,
                provider: Provider {
                    name: "Privada".into(),
                    ownership: Ownership::Private,
                },
                base: GeoPoint::new(lon, lat).unwrap(),
                crew: vec![],
            },
            t0(),
        )
    }

    fn incident_point() -> GeoPoint {
        GeoPoint::new(-74.08, 4.60).unwrap()
    }

    fn rank(units: &[Unit], required: UnitKind) -> UnitRecommendation {
        recommend_units(
            units,
            &UnitQuery {
                required,
                excluded: &|_| false,
                target: incident_point(),
                now: t0(),
                max_fix_age: TravelTime::from_minutes(2),
                limit: 5,
            },
            &StraightLine::default(),
        )
    }

    #[test]
    fn closest_available_tam_is_recommended_first_for_a_tam_need() {
        let units = vec![
            unit("TAB-NEAR", UnitKind::Tab, -74.081, 4.601),
            unit("TAM-FAR", UnitKind::Tam, -74.10, 4.63),
            unit("TAM-MID", UnitKind::Tam, -74.09, 4.61),
        ];
        let r = rank(&units, UnitKind::Tam);
        let ids: Vec<&str> = r.candidates.iter().map(|c| c.unit.as_str()).collect();
        assert_eq!(ids, ["TAM-MID", "TAM-FAR"]);
        assert_eq!(r.considered, 2);
    }

    #[test]
    fn a_tam_is_acceptable_for_a_tab_need_but_a_tied_tab_goes_first() {
        let units = vec![
            unit("TAM-1", UnitKind::Tam, -74.0805, 4.6005),
            unit("TAB-1", UnitKind::Tab, -74.0806, 4.6004),
        ];
        let r = rank(&units, UnitKind::Tab);
        assert_eq!(r.candidates[0].unit.as_str(), "TAB-1");
        assert_eq!(r.candidates[1].unit.as_str(), "TAM-1");
        // A TAM clearly closer still goes first.
        let units = vec![
            unit("TAM-1", UnitKind::Tam, -74.0801, 4.6001),
            unit("TAB-1", UnitKind::Tab, -74.11, 4.64),
        ];
        assert_eq!(
            rank(&units, UnitKind::Tab).candidates[0].unit.as_str(),
            "TAM-1"
        );
    }

    #[test]
    fn busy_and_excluded_units_are_not_recommended() {
        let mut busy = unit("TAB-BUSY", UnitKind::Tab, -74.0801, 4.6001);
        busy.status = UnitStatus::OutOfService {
            reason: crate::fleet::OutOfServiceReason::NoCrew,
            since: t0(),
        };
        let units = vec![
            busy,
            unit("TAB-DECLINED", UnitKind::Tab, -74.0802, 4.6002),
            unit("TAB-OK", UnitKind::Tab, -74.09, 4.61),
        ];
        let declined = UnitId::new("TAB-DECLINED").unwrap();
        let r = recommend_units(
            &units,
            &UnitQuery {
                required: UnitKind::Tab,
                excluded: &|u| *u == declined,
                target: incident_point(),
                now: t0(),
                max_fix_age: TravelTime::from_minutes(2),
                limit: 5,
            },
            &StraightLine::default(),
        );
        assert_eq!(r.candidates.len(), 1);
        assert_eq!(r.candidates[0].unit.as_str(), "TAB-OK");
    }

    #[test]
    fn ties_prefer_the_unit_leaving_a_well_stocked_district() {
        // Two equidistant units; one district has two more units in reserve.
        let units = vec![
            unit("TAB-LONELY", UnitKind::Tab, -74.0800, 4.6050),
            unit("TAB-CROWDED", UnitKind::Tab, -74.0800, 4.5950),
            unit("TAB-RES-1", UnitKind::Tab, -74.0801, 4.5951),
            unit("TAB-RES-2", UnitKind::Tab, -74.0802, 4.5952),
        ];
        let r = rank(&units, UnitKind::Tab);
        let first = &r.candidates[0];
        assert!(first.district_reserve >= 2, "{r:#?}");
    }

    #[test]
    fn straight_line_estimate_is_documented_speed_and_detour() {
        let a = GeoPoint::new(-74.0, 4.6).unwrap();
        let b = GeoPoint::new(-74.0, 4.7).unwrap(); // ~11.1 km
        let t = StraightLine::default().times_from_source(a, &[b], t0())[0].unwrap();
        // 11.12 km × 1.4 / 23 km/h ≈ 40.6 min
        assert!((t.as_minutes_f64() - 40.6).abs() < 0.3, "{t}");
    }

    #[test]
    fn coverage_counts_cells_within_8_and_15_minutes_and_suggests_a_move_up() {
        let demand: Vec<DemandCell> = [
            (-74.08, 4.60, 10.0),
            (-74.085, 4.605, 5.0),
            (-74.20, 4.62, 20.0), // far west gap, heaviest
        ]
        .iter()
        .map(|&(lon, lat, w)| DemandCell {
            cell: Cell::containing(GeoPoint::new(lon, lat).unwrap(), CellResolution::Coverage),
            weight: w,
        })
        .collect();
        let units = vec![
            unit("TAB-A", UnitKind::Tab, -74.081, 4.601),
            unit("TAB-B", UnitKind::Tab, -74.084, 4.604),
        ];
        let r = coverage(
            &units,
            &demand,
            &StraightLine::default(),
            t0(),
            TravelTime::from_minutes(2),
        );
        assert_eq!(r.units, 2);
        assert!((r.share_within_8_min - 15.0 / 35.0).abs() < 1e-9, "{r:#?}");
        assert_eq!(r.gaps_8_min.len(), 1);
        let mv = r.move_up.expect("a move-up into the western gap");
        assert!(mv.share_8_after > mv.share_8_before);
        // Moving one of two co-located units keeps the centre covered.
        assert!((mv.share_8_after - 1.0).abs() < 1e-9, "{mv:#?}");
    }

    #[test]
    fn no_units_means_no_coverage_and_no_move_up() {
        let demand = vec![DemandCell {
            cell: Cell::containing(incident_point(), CellResolution::Coverage),
            weight: 1.0,
        }];
        let r = coverage(
            &[],
            &demand,
            &StraightLine::default(),
            t0(),
            TravelTime::from_minutes(2),
        );
        assert!(r.share_within_8_min.abs() < f64::EPSILON);
        assert!(r.move_up.is_none());
    }
}
