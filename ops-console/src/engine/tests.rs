//! The engine on a real SQLite file with a manual clock.

use std::sync::Arc;

use dispatch_core::fleet::{CrewStatus, UnitKind};
use dispatch_core::ids::{FacilityId, IncidentId, OperatorId, UnitId};
use dispatch_core::{Command, Event, Rejection, StraightLine};
use maps::{Clock, ManualClock, Timestamp, TravelTime};

use super::*;
use crate::simulation::{BOGOTA_URBAN, SyntheticCity, ambulance_assessment};
use crate::store::{EventStore, StoreLocation};

struct Fixture {
    _dir: tempfile::TempDir,
    location: StoreLocation,
    clock: Arc<ManualClock>,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let location = StoreLocation::Sqlite(dir.path().join("regula.db"));
        Self {
            _dir: dir,
            location,
            clock: Arc::new(ManualClock::new(
                Timestamp::parse_rfc3339("2026-11-23T12:30:00Z").unwrap(),
            )),
        }
    }

    async fn engine(
        &self,
    ) -> (
        EngineHandle,
        tokio::task::JoinHandle<EngineExit>,
        ReplayStats,
    ) {
        start_with(self, EngineConfig::default()).await
    }
}

/// Offers the incident to the first registered unit (key `assign`); returns the unit and
/// the reply.
async fn assign_first_unit(handle: &EngineHandle, incident: IncidentId) -> (UnitId, CommandReply) {
    let unit = snapshot(handle)
        .await
        .units()
        .next()
        .unwrap()
        .registration
        .id
        .clone();
    let reply = handle
        .command(
            key("assign"),
            Command::AssignUnit {
                incident,
                unit: unit.clone(),
                operator: operator(),
            },
        )
        .await
        .unwrap();
    (unit, reply)
}

fn key(s: &str) -> CommandKey {
    CommandKey::new(s).unwrap()
}

fn operator() -> OperatorId {
    OperatorId::new("ana.rojas").unwrap()
}

async fn snapshot(handle: &EngineHandle) -> Dispatch {
    handle.query(|state, _, _| state.clone()).await.unwrap()
}

/// Registers 3 units and 2 facilities, opens an incident assessed for a TAM.
async fn small_city(handle: &EngineHandle) -> IncidentId {
    let mut city = SyntheticCity::new(BOGOTA_URBAN, 3);
    for (i, command) in city
        .fleet(3)
        .into_iter()
        .chain(city.facilities(2))
        .enumerate()
    {
        handle
            .command(key(&format!("setup-{i}")), command)
            .await
            .unwrap();
    }
    let reply = handle
        .command(key("open"), city.open_incident(&operator()))
        .await
        .unwrap();
    let Event::IncidentOpened { incident, .. } = reply.events[0] else {
        panic!("{reply:?}")
    };
    handle
        .command(
            key("assess"),
            Command::RecordAssessment {
                incident,
                assessment: ambulance_assessment(UnitKind::Tab, None),
            },
        )
        .await
        .unwrap();
    incident
}

#[tokio::test]
async fn events_are_stored_before_subscribers_see_them() {
    let fixture = Fixture::new();
    let (handle, _task, _) = fixture.engine().await;
    let mut events = handle.subscribe();
    let mut city = SyntheticCity::new(BOGOTA_URBAN, 1);
    let command = city.fleet(1).remove(0);
    let reply = handle.command(key("register-1"), command).await.unwrap();
    assert_eq!((reply.first_seq, reply.last_seq), (1, 1));
    let Published::Event { seq, event, .. } = events.recv().await.unwrap() else {
        panic!("expected an event")
    };
    assert_eq!(seq, 1);
    assert_eq!(event.name(), "unit_registered");
    // A second reader of the same file already sees it.
    let reader = EventStore::inspect(&fixture.location).await.unwrap();
    assert_eq!(reader.summary().await.unwrap().last_seq, 1);
}

#[tokio::test]
async fn a_retried_command_is_applied_once() {
    let fixture = Fixture::new();
    let (handle, _task, _) = fixture.engine().await;
    let mut city = SyntheticCity::new(BOGOTA_URBAN, 1);
    let command = city.fleet(1).remove(0);
    let first = handle.command(key("k-1"), command.clone()).await.unwrap();
    let again = handle.command(key("k-1"), command).await.unwrap();
    assert!(!first.duplicate);
    assert!(again.duplicate);
    assert!(again.events.is_empty());
    assert_eq!(
        (again.first_seq, again.last_seq),
        (first.first_seq, first.last_seq)
    );
    assert_eq!(snapshot(&handle).await.units().count(), 1);
}

#[tokio::test]
async fn a_refused_command_stores_nothing_and_says_why() {
    let fixture = Fixture::new();
    let (handle, _task, _) = fixture.engine().await;
    let error = handle
        .command(
            key("bad"),
            Command::ReturnToService {
                unit: UnitId::new("TAB-9999").unwrap(),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(
        error,
        EngineError::Rejected(Rejection::Unknown {
            kind: "unit",
            id: "TAB-9999".into()
        })
    );
    let store = EventStore::inspect(&fixture.location).await.unwrap();
    assert_eq!(store.summary().await.unwrap().events, 0);
    // The key was not consumed: the same key can carry a valid command later.
    let mut city = SyntheticCity::new(BOGOTA_URBAN, 1);
    let reply = handle
        .command(key("bad"), city.fleet(1).remove(0))
        .await
        .unwrap();
    assert!(!reply.duplicate);
}

#[tokio::test]
async fn a_restart_replays_the_log_into_the_same_state_and_remembers_keys() {
    let fixture = Fixture::new();
    let before = {
        let (handle, task, _) = fixture.engine().await;
        let incident = small_city(&handle).await;
        assign_first_unit(&handle, incident).await;
        let state = snapshot(&handle).await;
        drop(handle);
        task.await.unwrap();
        state
    };
    let (handle, _task, stats) = fixture.engine().await;
    // Stopping saved a snapshot: the restart restores it (timers come from the state).
    assert_eq!(stats.snapshot, Some(stats.last_seq));
    assert_eq!(stats.events, 0);
    assert_eq!(
        stats.timers, 2,
        "the acceptance deadline and the unit's GPS watch are re-armed"
    );
    assert_eq!(snapshot(&handle).await, before);
    let error = handle
        .command(
            key("open"),
            Command::CloseIncident {
                incident: IncidentId::from_number(1),
                reason: dispatch_core::model::ClosureReason::Completed,
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&error, EngineError::KeyReused { original, .. } if original == "open_incident"),
        "keys survive a restart, with the command they named: {error}"
    );
}

#[tokio::test]
async fn an_unaccepted_offer_escalates_when_the_engine_clock_passes_the_deadline() {
    let fixture = Fixture::new();
    let (handle, _task, _) = fixture.engine().await;
    let incident = small_city(&handle).await;
    let state = snapshot(&handle).await;
    let first = state.units().next().unwrap().registration.id.clone();
    handle
        .command(
            key("assign"),
            Command::AssignUnit {
                incident,
                unit: first.clone(),
                operator: operator(),
            },
        )
        .await
        .unwrap();
    assert_eq!(handle.fire_due_timers().await.unwrap(), 0, "not yet due");
    fixture.clock.advance(TravelTime::from_secs(91));
    let mut events = handle.subscribe();
    assert_eq!(handle.fire_due_timers().await.unwrap(), 1);
    let mut names = Vec::new();
    while let Ok(Published::Event { event, .. }) = events.try_recv() {
        names.push(event.name());
    }
    assert_eq!(names, ["assignment_expired", "unit_assigned"]);
    let state = snapshot(&handle).await;
    let next = state
        .incident(incident)
        .unwrap()
        .units
        .iter()
        .next()
        .unwrap()
        .clone();
    assert_ne!(next, first);
}

#[tokio::test]
async fn a_second_writer_on_one_log_is_refused_naming_the_first() {
    let fixture = Fixture::new();
    let (handle, _task, _) = fixture.engine().await;
    let error = EventStore::open(&fixture.location).await.unwrap_err();
    let message = error.to_string();
    assert!(message.contains("in use by"), "{message}");
    assert!(
        message.contains(&format!("pid={}", std::process::id())),
        "{message}"
    );
    // The first goes on.
    let mut city = SyntheticCity::new(BOGOTA_URBAN, 1);
    handle
        .command(key("one"), city.fleet(1).into_iter().next().unwrap())
        .await
        .unwrap();
}

/// A SQLite connection of its own on the engine's log, bypassing the writer lock: what a
/// careless tool (or a second server without the lock) would do.
async fn raw_connection(fixture: &Fixture) -> sqlx::SqliteConnection {
    use sqlx::ConnectOptions;
    let StoreLocation::Sqlite(path) = &fixture.location else {
        unreachable!()
    };
    sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .busy_timeout(std::time::Duration::from_secs(10))
        .connect()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_failed_write_is_refused_and_nothing_is_acknowledged_until_the_store_answers() {
    use sqlx::Connection;
    let fixture = Fixture::new();
    let (handle, _task, _) = fixture.engine().await;
    let mut city = SyntheticCity::new(BOGOTA_URBAN, 1);
    let mut fleet = city.fleet(3).into_iter();
    handle
        .command(key("one"), fleet.next().unwrap())
        .await
        .unwrap();
    let before = snapshot(&handle).await;
    // Another connection holds SQLite's write lock: the engine's append times out.
    let mut blocker = raw_connection(&fixture).await;
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut blocker)
        .await
        .unwrap();
    let two = fleet.next().unwrap();
    let error = handle.command(key("two"), two.clone()).await.unwrap_err();
    assert!(matches!(error, EngineError::Storage(_)), "{error}");
    assert_eq!(snapshot(&handle).await, before, "nothing was applied");
    let status = handle.status();
    assert_eq!(status.state, "recovering", "{status:?}");
    assert!(!status.ready());
    sqlx::query("ROLLBACK").execute(&mut blocker).await.unwrap();
    blocker.close().await.unwrap();
    // The store answers again: the same key is applied now, as a new command at seq 2.
    let reply = handle.command(key("two"), two).await.unwrap();
    assert!(!reply.duplicate);
    assert_eq!(reply.first_seq, 2);
    assert!(handle.status().ready());
    let reader = EventStore::inspect(&fixture.location).await.unwrap();
    assert_eq!(reader.summary().await.unwrap().last_seq, reply.last_seq);
}

#[tokio::test]
async fn an_event_stored_behind_the_engines_back_is_applied_before_anything_else_is_written() {
    use sqlx::Connection;
    let fixture = Fixture::new();
    let (handle, _task, _) = fixture.engine().await;
    let mut city = SyntheticCity::new(BOGOTA_URBAN, 1);
    let mut fleet = city.fleet(3).into_iter();
    handle
        .command(key("one"), fleet.next().unwrap())
        .await
        .unwrap();
    let mut events = handle.subscribe();
    // Event 2 reaches the log without the engine (as when a COMMIT succeeded but its
    // answer was lost).
    let hidden = fleet.next().unwrap();
    let Command::RegisterUnit { registration } = &hidden else {
        unreachable!()
    };
    let hidden_id = registration.id.clone();
    let payload = journal::encode(&[Event::UnitRegistered {
        registration: registration.clone(),
    }])
    .unwrap();
    let mut raw = raw_connection(&fixture).await;
    sqlx::query(
        "INSERT INTO events (seq, recorded_at_ms, command_key, kind, version, payload) \
         VALUES (2, $1, 'hidden', $2, $3, $4)",
    )
    .bind(fixture.clock.now().as_millis())
    .bind(payload[0].kind)
    .bind(i64::from(payload[0].version))
    .bind(&payload[0].payload)
    .execute(&mut raw)
    .await
    .unwrap();
    raw.close().await.unwrap();
    // The engine's append at 2 finds the log elsewhere: refused, nothing applied.
    let three = fleet.next().unwrap();
    let error = handle
        .command(key("three"), three.clone())
        .await
        .unwrap_err();
    assert!(
        matches!(&error, EngineError::Storage(m) if m.contains("another writer")),
        "{error}"
    );
    // The retry first applies and publishes event 2, then stores the command at 3.
    let reply = handle.command(key("three"), three).await.unwrap();
    assert_eq!((reply.first_seq, reply.last_seq), (3, 3));
    let state = snapshot(&handle).await;
    assert!(state.units().any(|u| u.registration.id == hidden_id));
    let mut seqs = Vec::new();
    while let Ok(item) = events.try_recv() {
        if let Published::Event { seq, .. } = item {
            seqs.push(seq);
        }
    }
    assert_eq!(
        seqs,
        [2, 3],
        "each sequence number is published once, in order"
    );
}

#[tokio::test]
async fn a_completed_transfer_leaves_a_record_in_the_outbox_for_the_patients_eps() {
    let fixture = Fixture::new();
    let (handle, _task, _) = fixture.engine().await;
    let incident = small_city(&handle).await;
    let mut city = SyntheticCity::new(BOGOTA_URBAN, 9);
    let patient = loop {
        let p = city.patient();
        if matches!(
            p.eps,
            dispatch_core::model::EpsAffiliation::Affiliated { .. }
        ) {
            break p;
        }
    };
    handle
        .command(key("patient"), Command::RecordPatient { incident, patient })
        .await
        .unwrap();
    let (unit, _) = assign_first_unit(&handle, incident).await;
    let destination = FacilityId::new("ED-001").unwrap();
    for (i, status) in [
        CrewStatus::EnRoute,
        CrewStatus::OnScene,
        CrewStatus::Transporting {
            destination: destination.clone(),
        },
        CrewStatus::AtHospital,
        CrewStatus::HandedOver,
    ]
    .into_iter()
    .enumerate()
    {
        fixture.clock.advance(TravelTime::from_minutes(5));
        handle
            .command(
                key(&format!("status-{i}")),
                Command::ReportStatus {
                    unit: unit.clone(),
                    status,
                },
            )
            .await
            .unwrap();
    }
    let store = EventStore::inspect(&fixture.location).await.unwrap();
    let pending = store.pending_outbox(10).await.unwrap();
    let kinds: Vec<&str> = pending.iter().map(|m| m.kind.as_str()).collect();
    assert_eq!(kinds, ["pre_alert", "transfer_record"]);
    assert_eq!(pending[0].destination, "ED-001");
    assert!(pending[1].destination.starts_with("EPS"), "{pending:?}");
    assert_eq!(pending[1].idempotency_key, "transfer:TRF-000001");
    let state = snapshot(&handle).await;
    // The messages are self-contained: the closed record with its RIPS document, and the
    // pre-alert with the transfer as it started.
    let stored = state
        .transfer(dispatch_core::ids::TransferId::from_number(1))
        .unwrap();
    let record: serde_json::Value = serde_json::from_str(&pending[1].payload).unwrap();
    assert_eq!(record["kind"], "transfer_record");
    assert_eq!(
        serde_json::from_value::<dispatch_core::model::Transfer>(record["transfer"].clone())
            .unwrap(),
        *stored
    );
    assert!(stored.completed && stored.times.handed_over.is_some());
    let service = &record["rips"]["usuarios"][0]["servicios"]["otrosServicios"][0];
    assert_eq!(service["numAutorizacion"], stored.code.as_str());
    assert_eq!(service["tipoOS"], "02");
    assert!(
        record["rips_to_complete"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("numFactura"))
    );
    let pre_alert: serde_json::Value = serde_json::from_str(&pending[0].payload).unwrap();
    assert_eq!(pre_alert["facility"], "ED-001");
    assert_eq!(pre_alert["transfer"]["code"], stored.code.as_str());
    assert!(state.incident(incident).unwrap().is_closed());
    assert!(state.check_invariants().is_empty());
}

#[tokio::test]
async fn a_referral_reaches_the_patients_eps_with_what_it_needs_to_call_back() {
    use dispatch_core::model::{Assessment, Disposition, EpsAffiliation, ReferralKind};
    let fixture = Fixture::new();
    let (handle, _task, _) = fixture.engine().await;
    let mut city = SyntheticCity::new(BOGOTA_URBAN, 4);
    let reply = handle
        .command(key("open"), city.open_incident(&operator()))
        .await
        .unwrap();
    let Event::IncidentOpened { incident, .. } = reply.events[0] else {
        panic!("{reply:?}")
    };
    let patient = loop {
        let p = city.patient();
        if matches!(p.eps, EpsAffiliation::Affiliated { .. }) {
            break p;
        }
    };
    let EpsAffiliation::Affiliated { eps, .. } = patient.eps.clone() else {
        unreachable!()
    };
    handle
        .command(key("patient"), Command::RecordPatient { incident, patient })
        .await
        .unwrap();
    handle
        .command(
            key("assess"),
            Command::RecordAssessment {
                incident,
                assessment: Assessment {
                    level: 4,
                    priority: dispatch_core::model::Priority::Low,
                    disposition: Disposition::Referral {
                        modality: ReferralKind::TeleconsultPsychology,
                    },
                    capability: None,
                    route: None,
                    protocol: "ansiedad@1".into(),
                    summary: "Ansiedad sin riesgo".into(),
                    triage: None,
                },
            },
        )
        .await
        .unwrap();
    let store = EventStore::inspect(&fixture.location).await.unwrap();
    let pending = store.pending_outbox(10).await.unwrap();
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0].kind, "referral");
    assert_eq!(pending[0].destination, eps.to_string());
    let payload: serde_json::Value = serde_json::from_str(&pending[0].payload).unwrap();
    assert_eq!(payload["referral"]["kind"], "teleconsult_psychology");
    assert_eq!(payload["assessment"]["summary"], "Ansiedad sin riesgo");
    assert_eq!(payload["patients"].as_array().unwrap().len(), 1);
    assert!(payload.get("callback").is_some() && payload.get("location").is_some());
}

#[tokio::test]
async fn a_retry_older_than_the_key_memory_is_recognised_by_the_store() {
    let fixture = Fixture::new();
    let config = EngineConfig {
        key_memory: TravelTime::from_minutes(5),
        // The restart below replays the whole log (a snapshot would hold no keys).
        snapshot_every: 0,
        ..EngineConfig::default()
    };
    let (handle, task, _) = start_with(&fixture, config.clone()).await;
    let mut city = SyntheticCity::new(BOGOTA_URBAN, 1);
    let register = city.fleet(1).remove(0);
    let Command::RegisterUnit { registration } = &register else {
        panic!("{register:?}")
    };
    let unit = registration.id.clone();
    let first = handle
        .command(key("register"), register.clone())
        .await
        .unwrap();
    let off = Command::SetOutOfService {
        unit: unit.clone(),
        reason: dispatch_core::fleet::OutOfServiceReason::Refuelling,
    };
    let off_reply = handle.command(key("off"), off.clone()).await.unwrap();
    fixture.clock.advance(TravelTime::from_minutes(10));
    handle
        .command(key("back"), Command::ReturnToService { unit: unit.clone() })
        .await
        .unwrap();
    let before = snapshot(&handle).await;

    // The core would refuse it (the unit exists): the store says it was applied.
    let again = handle.command(key("register"), register).await.unwrap();
    assert!(again.duplicate);
    assert_eq!(again.first_seq, first.first_seq);
    // The core would accept it (the unit is in service again): the unique key refuses it.
    let again = handle.command(key("off"), off).await.unwrap();
    assert!(again.duplicate, "{again:?}");
    assert_eq!(again.first_seq, off_reply.first_seq);
    assert_eq!(snapshot(&handle).await, before);
    drop(handle);
    task.await.unwrap();

    // After a restart only the recent keys are in memory.
    let (engine, stats) = started(&fixture, config).await;
    assert_eq!(stats.events, 3);
    assert_eq!(
        engine.remembered_keys(),
        1,
        "only `back` is within 5 minutes"
    );
}

/// An engine on the fixture's log and clock, started (log replayed) but not spawned.
async fn started(fixture: &Fixture, config: EngineConfig) -> (Engine, ReplayStats) {
    let store = EventStore::open(&fixture.location).await.unwrap();
    Engine::start(
        store,
        fixture.clock.clone(),
        Arc::new(StraightLine::default()),
        None,
        config,
    )
    .await
    .unwrap()
}

async fn start_with(
    fixture: &Fixture,
    config: EngineConfig,
) -> (
    EngineHandle,
    tokio::task::JoinHandle<EngineExit>,
    ReplayStats,
) {
    let (engine, stats) = started(fixture, config).await;
    let (handle, task) = engine.spawn();
    (handle, task, stats)
}

#[tokio::test]
async fn a_restart_resumes_from_the_latest_snapshot_and_replays_only_what_follows() {
    let fixture = Fixture::new();
    let config = EngineConfig {
        snapshot_every: 4,
        ..EngineConfig::default()
    };
    let (handle, task, _) = start_with(&fixture, config.clone()).await;
    let incident = small_city(&handle).await;
    let state = snapshot(&handle).await;
    // The follower saves one every 4 events while the engine runs.
    let store = EventStore::inspect(&fixture.location).await.unwrap();
    let mut waited = 0;
    while store.latest_snapshot().await.unwrap().is_none() {
        assert!(waited < 500, "no snapshot saved while running");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        waited += 1;
    }
    drop(handle);
    task.await.unwrap(); // and a last one as the engine stops

    let saved = store.latest_snapshot().await.unwrap().unwrap();
    assert_eq!(saved.format, Dispatch::SNAPSHOT_FORMAT);
    let (handle, task, replay) = start_with(&fixture, config.clone()).await;
    assert_eq!(replay.snapshot, Some(saved.last_seq));
    assert_eq!(replay.events, 0);
    assert_eq!(snapshot(&handle).await, state);

    // Events after the snapshot are replayed on top of it.
    handle
        .command(
            key("assign"),
            Command::AssignUnit {
                incident,
                unit: state.units().next().unwrap().registration.id.clone(),
                operator: operator(),
            },
        )
        .await
        .unwrap();
    let state = snapshot(&handle).await;
    // Killed while it waits for the next request, before it could save a last snapshot:
    // as after a crash.
    task.abort();
    let _ = task.await;
    drop(handle);
    // The dropped engine's parts let go of the log a moment later (a killed process would
    // at once).
    for _ in 0..200 {
        match EventStore::open(&fixture.location).await {
            Ok(store) => {
                store.close().await;
                break;
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
        }
    }
    let (handle, _task, replay) = start_with(&fixture, config).await;
    assert_eq!(replay.snapshot, Some(saved.last_seq));
    assert!(replay.events >= 1, "{replay:?}");
    assert_eq!(snapshot(&handle).await, state);
}

#[tokio::test]
async fn an_unusable_snapshot_is_skipped_and_the_whole_log_replayed() {
    let fixture = Fixture::new();
    let no_snapshots = EngineConfig {
        snapshot_every: 0,
        ..EngineConfig::default()
    };
    let (handle, task, _) = start_with(&fixture, no_snapshots.clone()).await;
    small_city(&handle).await;
    let state = snapshot(&handle).await;
    let last_seq = state_last_seq(&fixture).await;
    drop(handle);
    task.await.unwrap();
    let store = EventStore::inspect(&fixture.location).await.unwrap();
    assert!(store.latest_snapshot().await.unwrap().is_none());
    let at = fixture.clock.now();
    for (seq, format, json) in [
        // Another format, garbage, and one ahead of the log: each newer than the last.
        (
            1,
            Dispatch::SNAPSHOT_FORMAT + 1,
            serde_json::to_string(&state).unwrap(),
        ),
        (2, Dispatch::SNAPSHOT_FORMAT, "{\"units\": 3}".to_owned()),
        (
            last_seq + 10,
            Dispatch::SNAPSHOT_FORMAT,
            serde_json::to_string(&Dispatch::new(dispatch_core::Policy::default())).unwrap(),
        ),
    ] {
        {
            // A writer of its own, closed before the engine takes the log.
            let writer = EventStore::open(&fixture.location).await.unwrap();
            writer.save_snapshot(seq, at, format, &json).await.unwrap();
            writer.close().await;
        }
        let (handle, task, replay) = start_with(&fixture, no_snapshots.clone()).await;
        assert_eq!(replay.snapshot, None, "snapshot {seq} should be skipped");
        assert_eq!(replay.events, last_seq);
        assert_eq!(snapshot(&handle).await, state);
        drop(handle);
        task.await.unwrap();
    }
}

async fn state_last_seq(fixture: &Fixture) -> u64 {
    EventStore::inspect(&fixture.location)
        .await
        .unwrap()
        .summary()
        .await
        .unwrap()
        .last_seq
}

#[tokio::test]
async fn a_log_that_does_not_replay_stops_the_start_with_the_event_named() {
    let fixture = Fixture::new();
    let store = EventStore::open(&fixture.location).await.unwrap();
    // A unit that was never registered becomes available: the log is inconsistent.
    store
        .append(&crate::store::Append {
            command_key: "forged",
            first_seq: 1,
            recorded_at: fixture.clock.now(),
            events: &journal::encode(&[Event::UnitAvailable {
                unit: UnitId::new("TAB-0001").unwrap(),
            }])
            .unwrap(),
            outbox: &[],
            command: "test",
            fingerprint: "",
        })
        .await
        .unwrap();
    let error = Engine::start(
        store,
        fixture.clock.clone(),
        Arc::new(StraightLine::default()),
        None,
        EngineConfig::default(),
    )
    .await
    .unwrap_err();
    assert!(
        error.to_string().contains("event 1 cannot be replayed"),
        "{error}"
    );
}

#[test]
fn command_keys_are_validated() {
    assert!(CommandKey::new("unit:TAB-1:fix:1700000000").is_ok());
    for bad in ["", "has space", "ñandú", &"x".repeat(MAX_KEY_LEN + 1)] {
        assert!(
            matches!(CommandKey::new(bad), Err(EngineError::BadKey(_))),
            "{bad:?}"
        );
    }
}

#[tokio::test]
async fn a_dispatch_is_followed_by_a_coverage_report_for_the_consoles() {
    let fixture = Fixture::new();
    let (handle, _task, _) = fixture.engine().await;
    let demand = Arc::new(SyntheticCity::new(BOGOTA_URBAN, 4).demand_cells(30));
    let watch =
        crate::coverage::spawn_watch(handle.clone(), Arc::new(StraightLine::default()), demand);
    let mut events = handle.subscribe();
    let incident = small_city(&handle).await;
    let (_, reply) = assign_first_unit(&handle, incident).await;
    let report = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            if let Published::Coverage { after_seq, report } = events.recv().await.unwrap()
                && after_seq >= reply.last_seq
            {
                return report;
            }
        }
    })
    .await
    .expect("a coverage report after the dispatch");
    assert_eq!(report.cells, 30);
    assert_eq!(report.units, 2, "the assigned unit no longer counts");
    assert!((0.0..=1.0).contains(&report.share_within_8_min));
    assert!(report.share_within_15_min >= report.share_within_8_min);
    watch.abort();
}

#[tokio::test]
async fn a_unit_silent_on_gps_is_flagged_to_operators_on_the_engine_clock() {
    let fixture = Fixture::new();
    let (handle, _task, _) = fixture.engine().await;
    let incident = small_city(&handle).await;
    let (unit, _) = assign_first_unit(&handle, incident).await;
    handle
        .command(
            key("en-route"),
            Command::ReportStatus {
                unit: unit.clone(),
                status: CrewStatus::EnRoute,
            },
        )
        .await
        .unwrap();
    let mut events = handle.subscribe();
    fixture.clock.advance(TravelTime::from_minutes(3));
    // The (now stale) acceptance deadline and the GPS watch.
    assert_eq!(handle.fire_due_timers().await.unwrap(), 2);
    let alert = events.try_recv().unwrap();
    let Published::Alert { message, .. } = alert else {
        panic!("{alert:?}")
    };
    assert!(message.contains(unit.as_str()), "{message}");
    // Alerts are derived, not stored: nothing was added to the log.
    let store = EventStore::inspect(&fixture.location).await.unwrap();
    let before = store.summary().await.unwrap().events;
    fixture.clock.advance(TravelTime::from_minutes(3));
    assert_eq!(handle.fire_due_timers().await.unwrap(), 1, "watched again");
    assert_eq!(store.summary().await.unwrap().events, before);
}
