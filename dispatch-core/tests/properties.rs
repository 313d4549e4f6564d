//! Property tests over random command sequences: whatever operators and crews do, the
//! invariants hold after every step, refused commands change nothing, and replaying the
//! events reproduces the state.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)]

mod support;

use dispatch_core::facility::Capability;
use dispatch_core::fleet::{CrewStatus, GpsFix, OutOfServiceReason, UnitKind, UnitStatus};
use dispatch_core::ids::{FacilityId, IncidentId, UnitId};
use dispatch_core::model::{ClosureReason, ConfirmedLocation, Disposition, ReferralKind};
use dispatch_core::{Command, Dispatch};
use maps::TravelTime;
use proptest::prelude::*;
use support::*;

#[derive(Debug, Clone)]
enum Action {
    Open {
        with_location: bool,
        spot: u8,
    },
    Assess {
        incident: u8,
        level: u8,
        tam: bool,
        referral: bool,
    },
    Assign {
        incident: u8,
        unit: u8,
    },
    Accept {
        unit: u8,
    },
    Decline {
        unit: u8,
    },
    Deadline {
        unit: u8,
    },
    Status {
        unit: u8,
        which: u8,
        facility: u8,
    },
    Gps {
        unit: u8,
        dx: i8,
        dy: i8,
        dt: u8,
    },
    Advance {
        secs: u16,
    },
    Cancel {
        incident: u8,
        unit: u8,
    },
    Close {
        incident: u8,
    },
    OutOfService {
        unit: u8,
    },
    BackInService {
        unit: u8,
    },
    Diversion {
        facility: u8,
        on: bool,
    },
    Destination {
        incident: u8,
        facility: u8,
    },
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        2 => (any::<bool>(), any::<u8>()).prop_map(|(with_location, spot)| Action::Open { with_location, spot }),
        2 => (any::<u8>(), 1u8..=5, any::<bool>(), prop::bool::weighted(0.2))
            .prop_map(|(incident, level, tam, referral)| Action::Assess { incident, level, tam, referral }),
        4 => (any::<u8>(), any::<u8>()).prop_map(|(incident, unit)| Action::Assign { incident, unit }),
        2 => any::<u8>().prop_map(|unit| Action::Accept { unit }),
        1 => any::<u8>().prop_map(|unit| Action::Decline { unit }),
        1 => any::<u8>().prop_map(|unit| Action::Deadline { unit }),
        6 => (any::<u8>(), any::<u8>(), any::<u8>()).prop_map(|(unit, which, facility)| Action::Status { unit, which, facility }),
        3 => (any::<u8>(), any::<i8>(), any::<i8>(), 1u8..120).prop_map(|(unit, dx, dy, dt)| Action::Gps { unit, dx, dy, dt }),
        2 => (1u16..600).prop_map(|secs| Action::Advance { secs }),
        1 => (any::<u8>(), any::<u8>()).prop_map(|(incident, unit)| Action::Cancel { incident, unit }),
        1 => any::<u8>().prop_map(|incident| Action::Close { incident }),
        1 => any::<u8>().prop_map(|unit| Action::OutOfService { unit }),
        1 => any::<u8>().prop_map(|unit| Action::BackInService { unit }),
        1 => (any::<u8>(), any::<bool>()).prop_map(|(facility, on)| Action::Diversion { facility, on }),
        1 => (any::<u8>(), any::<u8>()).prop_map(|(incident, facility)| Action::Destination { incident, facility }),
    ]
}

const UNITS: [(&str, UnitKind, f64, f64); 4] = [
    ("TAB-01", UnitKind::Tab, -74.080, 4.600),
    ("TAB-02", UnitKind::Tab, -74.120, 4.650),
    ("TAM-01", UnitKind::Tam, -74.060, 4.680),
    ("TAM-02", UnitKind::Tam, -74.150, 4.620),
];
const FACILITIES: [&str; 3] = ["H-A", "H-B", "H-C"];

fn world() -> World {
    // A short retention, so that closed incidents and finished calls leave the live state
    // within a generated story.
    let mut w = World::with_policy(dispatch_core::Policy {
        history_retention: TravelTime::from_minutes(10),
        ..dispatch_core::Policy::default()
    });
    for (id, kind, lon, lat) in UNITS {
        w.ok(register_unit(id, kind, p(lon, lat)));
    }
    w.ok(register_facility(
        "H-A",
        p(-74.09, 4.66),
        &[Capability::Stroke],
    ));
    w.ok(register_facility(
        "H-B",
        p(-74.07, 4.62),
        &[Capability::Trauma],
    ));
    w.ok(register_facility("H-C", p(-74.13, 4.61), &[]));
    w
}

fn unit(i: u8) -> UnitId {
    unit_id(UNITS[usize::from(i) % UNITS.len()].0)
}

fn facility(i: u8) -> FacilityId {
    facility_id(FACILITIES[usize::from(i) % FACILITIES.len()])
}

fn incident(w: &World, i: u8) -> Option<IncidentId> {
    let all: Vec<IncidentId> = w.dispatch.incidents().map(|x| x.id).collect();
    (!all.is_empty()).then(|| all[usize::from(i) % all.len()])
}

fn to_command(w: &World, a: &Action) -> Option<Command> {
    Some(match *a {
        Action::Open {
            with_location,
            spot,
        } => Command::OpenIncident {
            call: None,
            operator: operator(),
            summary: "Incidente aleatorio".into(),
            location: with_location.then(|| ConfirmedLocation {
                address: format!("Calle {spot} # 10-20"),
                point: p(
                    -74.15 + f64::from(spot) * 0.0004,
                    4.58 + f64::from(spot) * 0.0004,
                ),
            }),
        },
        Action::Assess {
            incident: i,
            level,
            tam: needs_tam,
            referral,
        } => Command::RecordAssessment {
            incident: incident(w, i)?,
            assessment: assessment(
                level,
                if referral {
                    Disposition::Referral {
                        modality: ReferralKind::TeleconsultGeneral,
                    }
                } else if needs_tam {
                    tam()
                } else {
                    Disposition::Ambulance {
                        unit: UnitKind::Tab,
                    }
                },
                None,
            ),
        },
        Action::Assign {
            incident: i,
            unit: u,
        } => Command::AssignUnit {
            incident: incident(w, i)?,
            unit: unit(u),
            operator: operator(),
        },
        Action::Accept { unit: u } | Action::Decline { unit: u } | Action::Deadline { unit: u } => {
            let id = unit(u);
            let assignment = w.dispatch.unit(&id)?.status.assignment()?;
            match a {
                Action::Accept { .. } => Command::AcceptAssignment {
                    unit: id,
                    assignment,
                },
                Action::Decline { .. } => Command::DeclineAssignment {
                    unit: id,
                    assignment,
                    reason: "Sin tripulación".into(),
                },
                _ => Command::AssignmentDeadlinePassed {
                    unit: id,
                    assignment,
                },
            }
        }
        Action::Status {
            unit: u,
            which,
            facility: f,
        } => Command::ReportStatus {
            unit: unit(u),
            status: match which % 7 {
                0 => CrewStatus::EnRoute,
                1 => CrewStatus::OnScene,
                2 => CrewStatus::Transporting {
                    destination: facility(f),
                },
                3 => CrewStatus::AtHospital,
                4 => CrewStatus::HandedOver,
                5 => CrewStatus::ClearedWithoutTransport {
                    reason: "Sin paciente".into(),
                },
                _ => CrewStatus::Available,
            },
        },
        Action::Gps {
            unit: u,
            dx,
            dy,
            dt,
        } => {
            let id = unit(u);
            let base = w.dispatch.unit(&id)?.last_fix.map_or_else(
                || w.dispatch.unit(&id).map(|x| x.registration.base),
                |f| Some(f.point),
            )?;
            Command::ReportPosition {
                unit: id,
                fix: GpsFix {
                    point: p(
                        (base.lon() + f64::from(dx) * 0.0002).clamp(-74.4, -74.0),
                        (base.lat() + f64::from(dy) * 0.0002).clamp(4.5, 4.8),
                    ),
                    at: w.now - TravelTime::from_secs(u64::from(dt)),
                    speed: None,
                },
            }
        }
        Action::Advance { .. } => return None,
        Action::Cancel {
            incident: i,
            unit: u,
        } => Command::CancelAssignment {
            incident: incident(w, i)?,
            unit: unit(u),
            reason: "Reasignación".into(),
        },
        Action::Close { incident: i } => Command::CloseIncident {
            incident: incident(w, i)?,
            reason: ClosureReason::Cancelled {
                reason: "Prueba".into(),
            },
        },
        Action::OutOfService { unit: u } => Command::SetOutOfService {
            unit: unit(u),
            reason: OutOfServiceReason::Refuelling,
        },
        Action::BackInService { unit: u } => Command::ReturnToService { unit: unit(u) },
        Action::Diversion { facility: f, on } => {
            if on {
                Command::StartDiversion {
                    facility: facility(f),
                    reason: "Sin camas".into(),
                }
            } else {
                Command::EndDiversion {
                    facility: facility(f),
                }
            }
        }
        Action::Destination {
            incident: i,
            facility: f,
        } => Command::ChooseDestination {
            incident: incident(w, i)?,
            facility: facility(f),
        },
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn invariants_hold_refusals_change_nothing_and_replay_reproduces_the_state(
        actions in prop::collection::vec(action(), 1..120)
    ) {
        let mut w = world();
        let mut snapshot = None;
        for (i, a) in actions.iter().enumerate() {
            if i == actions.len() / 2 {
                snapshot = Some((serde_json::to_string(&w.dispatch).unwrap(), w.log.len()));
            }
            if let Action::Advance { secs } = a {
                w.advance(TravelTime::from_secs(u64::from(*secs)));
                continue;
            }
            let Some(command) = to_command(&w, a) else { continue };
            let before = w.dispatch.clone();
            if let Ok(decision) = w.dispatch.execute(&command, w.now, &w.travel) {
                for e in decision.events {
                    w.log.push((w.now, e));
                }
            } else {
                prop_assert_eq!(&w.dispatch, &before, "refused {:?} changed the state", command);
            }
            let problems = w.dispatch.check_invariants();
            prop_assert!(problems.is_empty(), "after {:?}: {:?}", command, problems);
        }
        w.assert_replay_reproduces_state();
        // A snapshot taken halfway, plus the events after it, is the same state.
        let (json, from) = snapshot.unwrap();
        let mut restored: Dispatch = serde_json::from_str(&json).unwrap();
        restored.set_policy(w.dispatch.policy().clone());
        for (at, event) in &w.log[from..] {
            restored.apply(*at, event).unwrap();
        }
        prop_assert_eq!(&restored, &w.dispatch);
    }

    #[test]
    fn a_unit_never_serves_two_incidents_even_under_escalation(
        actions in prop::collection::vec(action(), 1..80)
    ) {
        let mut w = world();
        for a in &actions {
            if let Action::Advance { secs } = a {
                w.advance(TravelTime::from_secs(u64::from(*secs)));
                continue;
            }
            if let Some(command) = to_command(&w, a) {
                let _ = w.dispatch.execute(&command, w.now, &w.travel);
            }
            let mut seen = std::collections::BTreeSet::new();
            for inc in w.dispatch.incidents() {
                for u in &inc.units {
                    prop_assert!(seen.insert(u.clone()), "{} serves twice", u);
                    let status = &w.dispatch.unit(u).unwrap().status;
                    let free = matches!(status, UnitStatus::Available { .. } | UnitStatus::OutOfService { .. });
                    prop_assert!(!free, "{} is listed by an incident but free", u);
                }
            }
        }
    }
}
