//! A small world for scenario and property tests: a dispatch state, a manual clock, the
//! straight-line travel estimate, and a log of every event for replay checks.

#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::needless_pass_by_value
)]

use std::collections::BTreeSet;

use dispatch_core::facility::{Capability, Complexity, FacilityRegistration};
use dispatch_core::fleet::{Ownership, Provider, UnitKind, UnitRegistration};
use dispatch_core::ids::{EpsCode, FacilityId, OperatorId, UnitId};
use dispatch_core::model::{
    Assessment, Disposition, EpsAffiliation, Patient, Priority, Regime, Sex,
};
use dispatch_core::privacy::Sensitive;
use dispatch_core::{Command, Decision, Dispatch, Event, Policy, Rejection, StraightLine};
use maps::{GeoPoint, Timestamp, TravelTime};

pub struct World {
    pub dispatch: Dispatch,
    pub now: Timestamp,
    pub travel: StraightLine,
    pub log: Vec<(Timestamp, Event)>,
}

impl World {
    pub fn new() -> Self {
        Self::with_policy(Policy::default())
    }

    pub fn with_policy(policy: Policy) -> Self {
        Self {
            dispatch: Dispatch::new(policy),
            now: Timestamp::parse_rfc3339("2026-11-23T12:30:00Z").unwrap(),
            travel: StraightLine::default(),
            log: Vec::new(),
        }
    }

    pub fn advance(&mut self, by: TravelTime) {
        self.now = self.now + by;
    }

    /// Runs a command that must succeed; checks invariants afterwards.
    pub fn ok(&mut self, command: Command) -> Decision {
        let decision = self
            .dispatch
            .execute(&command, self.now, &self.travel)
            .unwrap_or_else(|r| panic!("{command:?} was refused: {r}"));
        for e in &decision.events {
            self.log.push((self.now, e.clone()));
        }
        let problems = self.dispatch.check_invariants();
        assert!(problems.is_empty(), "after {command:?}: {problems:#?}");
        decision
    }

    /// Runs a command that must be refused; checks that nothing changed.
    pub fn refused(&mut self, command: Command) -> Rejection {
        let before = self.dispatch.clone();
        let rejection = self
            .dispatch
            .execute(&command, self.now, &self.travel)
            .expect_err("the command should have been refused");
        assert_eq!(self.dispatch, before, "a refused command changed the state");
        rejection
    }

    /// Rebuilds a fresh state from the log and compares.
    pub fn assert_replay_reproduces_state(&self) {
        let mut replayed = Dispatch::new(self.dispatch.policy().clone());
        for (at, e) in &self.log {
            replayed.apply(*at, e).unwrap();
        }
        assert_eq!(replayed, self.dispatch, "replay diverged");
        // And through JSON, as the store keeps them.
        let mut from_json = Dispatch::new(self.dispatch.policy().clone());
        for (at, e) in &self.log {
            let text = serde_json::to_string(e).unwrap();
            let back: Event = serde_json::from_str(&text).unwrap();
            from_json.apply(*at, &back).unwrap();
        }
        assert_eq!(from_json, self.dispatch, "replay through JSON diverged");
    }
}

pub fn p(lon: f64, lat: f64) -> GeoPoint {
    GeoPoint::new(lon, lat).unwrap()
}

pub fn unit_id(s: &str) -> UnitId {
    UnitId::new(s).unwrap()
}

pub fn facility_id(s: &str) -> FacilityId {
    FacilityId::new(s).unwrap()
}

pub fn operator() -> OperatorId {
    OperatorId::new("ana.rojas").unwrap()
}

pub fn register_unit(id: &str, kind: UnitKind, at: GeoPoint) -> Command {
    Command::RegisterUnit {
        registration: UnitRegistration {
            id: unit_id(id),
            kind,
            provider: Provider {
                name: "Ambulancias Andinas SAS".into(),
                ownership: Ownership::Private,
            },
            base: at,
            crew: vec![Sensitive::new("Conductor 1".into())],
        },
    }
}

pub fn register_facility(id: &str, at: GeoPoint, caps: &[Capability]) -> Command {
    Command::RegisterFacility {
        registration: FacilityRegistration {
            id: facility_id(id),
            name: format!("Hospital {id}"),
            location: at,
            complexity: Complexity::High,
            capabilities: caps.iter().copied().collect::<BTreeSet<_>>(),
            ownership: Ownership::Public,
            subred: Some("Centro Oriente".into()),
        },
    }
}

pub fn assessment(
    level: u8,
    disposition: Disposition,
    capability: Option<Capability>,
) -> Assessment {
    let priority = match level {
        1 => Priority::Critical,
        2 => Priority::High,
        3 => Priority::Medium,
        _ => Priority::Low,
    };
    Assessment {
        level,
        priority,
        disposition,
        capability,
        route: capability.map(|c| format!("{c:?}").to_lowercase()),
        protocol: "sintomas_neurologicos@1#test".into(),
        summary: "Prueba".into(),
        triage: None,
    }
}

pub fn tam() -> Disposition {
    Disposition::Ambulance {
        unit: UnitKind::Tam,
    }
}

pub fn patient_with_eps(eps: &str) -> Patient {
    Patient {
        document: None,
        name: Some(Sensitive::new("Paciente de prueba".into())),
        age_years: Some(67.0),
        sex: Some(Sex::F),
        eps: EpsAffiliation::Affiliated {
            eps: EpsCode::new(eps).unwrap(),
            regime: Regime::Contributory,
        },
    }
}
