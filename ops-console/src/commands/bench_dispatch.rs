//! `regula bench dispatch`: how fast the core applies commands, recommends units and
//! destinations, and how fast the engine replays its log.
//!
//! - **apply**: a centre with Bogotá's 952 ambulances, 84 emergency departments and 500
//!   open incidents; a realistic mix of commands (GPS fixes, new incidents, assessments,
//!   assignments, crew status taps through to handover) is decided and applied one by one,
//!   each timed (`apply_us_p50/p99/max`). Travel times are the straight-line estimate here,
//!   so the figure is the core's own cost.
//! - **recommend**: ranking every available unit by ETA to an open incident and ranking the
//!   destinations (`recommend_ms_p50/p99`), on the road graph when `--graph` is given (the
//!   city is then placed inside the graph's area), else on the straight-line estimate.
//! - **replay**: a log of `--events` events (default 1,000,000: GPS fixes and whole incident
//!   stories) is written to a temporary SQLite file, then the engine rebuilds the state
//!   from it (`replay_events_per_s`).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use dispatch_core::fleet::{CrewStatus, GpsFix, UnitKind, UnitStatus};
use dispatch_core::ids::{FacilityId, IncidentId, OperatorId, UnitId};
use dispatch_core::model::IncidentStatus;
use dispatch_core::{Command, Dispatch, Policy, StraightLine, TravelTimes};
use maps::{BoundingBox, ManualClock, Timestamp, TravelTime};
use serde::Serialize;

use crate::clock::Stopwatch;
use crate::engine::{Engine, EngineConfig, journal};
use crate::simulation::{BOGOTA_URBAN, SyntheticCity, ambulance_assessment};
use crate::store::{Append, EventStore, StoreLocation};
use crate::travel::RoadTravelTimes;

/// `regula bench dispatch`
#[derive(Debug, Args)]
pub struct BenchDispatchArgs {
    /// Road graph for the recommendation figures (`regula osm import`); without it, the
    /// straight-line estimate.
    #[arg(long, value_name = "GRAPH")]
    pub graph: Option<PathBuf>,
    /// Events in the replayed log.
    #[arg(long, default_value_t = 1_000_000, value_name = "N")]
    pub events: u64,
    /// Commands timed for the apply figure.
    #[arg(long, default_value_t = 50_000, value_name = "N")]
    pub commands: usize,
    /// Recommendations timed.
    #[arg(long, default_value_t = 500, value_name = "N")]
    pub recommendations: usize,
    /// Seed of the synthetic city.
    #[arg(long, default_value_t = 2026)]
    pub seed: u64,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// What the benchmark prints.
#[derive(Debug, Serialize)]
struct Figures {
    units: usize,
    facilities: usize,
    open_incidents: usize,
    commands_timed: usize,
    apply_us_p50: f64,
    apply_us_p99: f64,
    apply_us_max: f64,
    /// The same mix with the road graph answering the ETA of each assignment (with
    /// `--graph`).
    apply_road_us_p99: Option<f64>,
    travel_times: &'static str,
    recommendations_timed: usize,
    recommend_ms_p50: f64,
    recommend_ms_p99: f64,
    replay_events: u64,
    replay_seconds: f64,
    replay_events_per_s: f64,
    log_bytes: u64,
    /// The replayed state saved as a snapshot: its size and the time to serialise and
    /// store it.
    snapshot_bytes: u64,
    snapshot_save_ms: f64,
    /// A restart from that snapshot (nothing after it to replay).
    restart_from_snapshot_ms: f64,
}

const OPEN_INCIDENTS: usize = 500;
const FACILITIES: usize = 84;
const FLEET: usize = 952;

pub(crate) fn run(args: &BenchDispatchArgs) -> anyhow::Result<ExitCode> {
    if args.commands == 0 || args.recommendations == 0 || args.events == 0 {
        anyhow::bail!("--commands, --recommendations and --events must be at least 1");
    }
    let straight = StraightLine::default();
    // Weekday morning peak in Bogotá (07:30 local).
    let start = Timestamp::parse_rfc3339("2026-11-23T12:30:00Z")?;
    let (region, city, road) = city_for(args)?;
    let travel: &dyn TravelTimes = match &road {
        Some(road) => road.as_ref(),
        None => &straight,
    };

    let mut centre = Centre::new(region, city, start);
    centre.populate(FLEET, FACILITIES, OPEN_INCIDENTS, &straight)?;
    let mut apply_us = centre.time_commands(args.commands, &straight);
    // The same mix again with the road graph answering the core's ETA questions.
    let mut apply_road_us = match &road {
        Some(road) => centre.time_commands(args.commands, road.as_ref()),
        None => Vec::new(),
    };
    let problems = centre.dispatch.check_invariants();
    anyhow::ensure!(problems.is_empty(), "invariants broken: {problems:?}");

    let open: Vec<IncidentId> = centre
        .dispatch
        .open_incidents()
        .filter(|i| i.dispatch_point().is_some())
        .map(|i| i.id)
        .collect();
    anyhow::ensure!(!open.is_empty(), "no open incident to recommend for");
    let mut recommend_ms = Vec::with_capacity(args.recommendations);
    for i in 0..args.recommendations {
        let incident = open[i % open.len()];
        let watch = Stopwatch::start();
        let units = centre
            .dispatch
            .recommend_units(incident, travel, centre.now);
        let destinations = centre
            .dispatch
            .recommend_destinations(incident, travel, centre.now);
        recommend_ms.push(watch.elapsed().as_secs_f64() * 1e3);
        anyhow::ensure!(
            units.is_ok() && destinations.is_ok(),
            "recommendation for {incident} failed"
        );
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let replayed = runtime.block_on(replay_benchmark(region, args.seed, start, args.events))?;

    let open_incidents = centre.dispatch.open_incidents().count();
    let figures = Figures {
        units: centre.dispatch.units().count(),
        facilities: centre.dispatch.facilities().count(),
        open_incidents,
        commands_timed: apply_us.len(),
        apply_us_p50: percentile(&mut apply_us, 0.50),
        apply_us_p99: percentile(&mut apply_us, 0.99),
        apply_us_max: percentile(&mut apply_us, 1.0),
        apply_road_us_p99: (!apply_road_us.is_empty())
            .then(|| percentile(&mut apply_road_us, 0.99)),
        travel_times: if road.is_some() {
            "road_graph"
        } else {
            "straight_line"
        },
        recommendations_timed: recommend_ms.len(),
        recommend_ms_p50: percentile(&mut recommend_ms, 0.50),
        recommend_ms_p99: percentile(&mut recommend_ms, 0.99),
        replay_events: replayed.events,
        replay_seconds: replayed.seconds,
        #[allow(clippy::cast_precision_loss)]
        replay_events_per_s: replayed.events as f64 / replayed.seconds.max(1e-9),
        log_bytes: replayed.log_bytes,
        snapshot_bytes: replayed.snapshot_bytes,
        snapshot_save_ms: replayed.snapshot_save_ms,
        restart_from_snapshot_ms: replayed.restart_from_snapshot_ms,
    };
    print(&figures, args.json)?;
    Ok(ExitCode::SUCCESS)
}

fn print(figures: &Figures, json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string(figures)?)?;
    } else {
        writeln!(
            out,
            "centre: {} units, {} facilities, {} open incidents",
            figures.units, figures.facilities, figures.open_incidents
        )?;
        writeln!(
            out,
            "apply ({} commands): p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs",
            figures.commands_timed,
            figures.apply_us_p50,
            figures.apply_us_p99,
            figures.apply_us_max
        )?;
        if let Some(p99) = figures.apply_road_us_p99 {
            writeln!(out, "apply with road-graph ETAs: p99 {p99:.1} µs")?;
        }
        writeln!(
            out,
            "recommend ({}, {} runs): p50 {:.2} ms, p99 {:.2} ms",
            figures.travel_times,
            figures.recommendations_timed,
            figures.recommend_ms_p50,
            figures.recommend_ms_p99
        )?;
        writeln!(
            out,
            "replay: {} events in {:.2} s = {:.0} events/s (log {:.1} MB)",
            figures.replay_events,
            figures.replay_seconds,
            figures.replay_events_per_s,
            mb(figures.log_bytes)
        )?;
        writeln!(
            out,
            "snapshot of that state: {:.1} MB serialised and saved in {:.0} ms; restart from it in {:.0} ms",
            mb(figures.snapshot_bytes),
            figures.snapshot_save_ms,
            figures.restart_from_snapshot_ms
        )?;
    }
    Ok(())
}

#[allow(clippy::cast_precision_loss)]
fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// Nearest-rank percentile (sorts in place).
fn percentile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}

/// What the replay measured.
struct Replayed {
    seconds: f64,
    log_bytes: u64,
    events: u64,
    snapshot_bytes: u64,
    snapshot_save_ms: f64,
    restart_from_snapshot_ms: f64,
}

/// The synthetic city: Bogotá's urban area on the straight-line estimate, or the road
/// graph's area with every point snapped to a road.
fn city_for(
    args: &BenchDispatchArgs,
) -> anyhow::Result<(BoundingBox, SyntheticCity, Option<Arc<RoadTravelTimes>>)> {
    let Some(path) = &args.graph else {
        return Ok((
            BOGOTA_URBAN,
            SyntheticCity::new(BOGOTA_URBAN, args.seed),
            None,
        ));
    };
    let road = Arc::new(RoadTravelTimes::load(path, None)?);
    let summary = road.with_router(|r| r.graph().summary());
    let region = BoundingBox {
        name: "el área del grafo vial",
        min_lon: summary.min.lon(),
        min_lat: summary.min.lat(),
        max_lon: summary.max.lon(),
        max_lat: summary.max.lat(),
    };
    let snapper = road.clone();
    let city = SyntheticCity::new(region, args.seed).with_placer(Box::new(move |p| {
        snapper.with_router(|r| r.snap(p).ok().map(|s| s.point))
    }));
    Ok((region, city, Some(road)))
}

/// Writes a log of at least `events` events (whole commands) from a plausible stream of
/// commands; returns the centre that wrote it and the events written.
async fn write_log(
    location: &StoreLocation,
    region: BoundingBox,
    seed: u64,
    start: Timestamp,
    events: u64,
) -> anyhow::Result<(Centre, u64)> {
    let store = EventStore::open(location).await?;
    let travel = StraightLine::default();
    let mut centre = Centre::new(region, SyntheticCity::new(region, seed ^ 0x5eed), start);
    let mut written = 0u64;
    let mut seq = 1u64;
    let mut pending: Vec<(String, Timestamp, Vec<crate::store::EncodedEvent>)> = Vec::new();
    let setup = centre.setup_commands(FLEET, FACILITIES);
    let mut setup = setup.into_iter();
    let mut number = 0u64;
    while written < events {
        let command = setup.next().unwrap_or_else(|| centre.next_command());
        let at = centre.now;
        let Ok(decision) = centre.dispatch.execute(&command, at, &travel) else {
            centre.observe(&command, false);
            continue;
        };
        centre.observe(&command, true);
        if decision.events.is_empty() {
            continue;
        }
        // Whole commands only: the log must be exactly what the state saw.
        let encoded = journal::encode(&decision.events)?;
        written += encoded.len() as u64;
        number += 1;
        pending.push((format!("bench-{number}"), at, encoded));
        if pending.len() >= 5_000 || written >= events {
            let mut appends = Vec::with_capacity(pending.len());
            for (key, at, encoded) in &pending {
                appends.push(Append {
                    command_key: key,
                    first_seq: seq,
                    recorded_at: *at,
                    events: encoded,
                    outbox: &[],
                    command: "bench",
                    fingerprint: "",
                });
                seq += encoded.len() as u64;
            }
            store.append_all(&appends).await?;
            pending.clear();
        }
    }
    store.close().await;
    Ok((centre, written))
}

/// Times the engine's replay of a log of at least `events` events, and its restart from
/// a snapshot of the replayed state.
async fn replay_benchmark(
    region: BoundingBox,
    seed: u64,
    start: Timestamp,
    events: u64,
) -> anyhow::Result<Replayed> {
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let path = dir.path().join("replay.db");
    let location = StoreLocation::Sqlite(path.clone());
    let (centre, events) = write_log(&location, region, seed, start, events).await?;
    let log_bytes = std::fs::metadata(&path).map_or(0, |m| m.len())
        + std::fs::metadata(path.with_extension("db-wal")).map_or(0, |m| m.len());
    let travel = StraightLine::default();

    let store = EventStore::open(&location).await?;
    let config = EngineConfig {
        policy: Policy {
            region,
            ..Policy::default()
        },
        ..EngineConfig::default()
    };
    let watch = Stopwatch::start();
    // The replay alone (no snapshot follower to start).
    let (engine, stats) = Engine::start(
        store.clone(),
        Arc::new(ManualClock::new(centre.now)),
        Arc::new(travel),
        None,
        EngineConfig {
            snapshot_every: 0,
            ..config.clone()
        },
    )
    .await?;
    let seconds = watch.elapsed().as_secs_f64();
    anyhow::ensure!(
        stats.events == events && stats.snapshot.is_none(),
        "replayed {} events, wrote {events}",
        stats.events
    );
    anyhow::ensure!(
        engine.state() == &centre.dispatch,
        "the replayed state differs from the state that wrote the log"
    );

    // The same state as a snapshot (the follower serialises and stores it off the engine's
    // task), then a restart from it as `regula serve` does it (restore, and a copy for the
    // next snapshots' follower).
    let watch = Stopwatch::start();
    let json = serde_json::to_string(engine.state())?;
    store
        .save_snapshot(stats.last_seq, centre.now, Dispatch::SNAPSHOT_FORMAT, &json)
        .await?;
    let snapshot_save_ms = watch.elapsed().as_secs_f64() * 1e3;
    drop(engine);
    let watch = Stopwatch::start();
    let (engine, restarted) = Engine::start(
        store.clone(),
        Arc::new(ManualClock::new(centre.now)),
        Arc::new(travel),
        None,
        config,
    )
    .await?;
    let restart_from_snapshot_ms = watch.elapsed().as_secs_f64() * 1e3;
    anyhow::ensure!(
        restarted.snapshot == Some(stats.last_seq) && restarted.events == 0,
        "the restart did not use the snapshot: {restarted:?}"
    );
    anyhow::ensure!(
        engine.state() == &centre.dispatch,
        "the state restored from the snapshot differs from the state that wrote the log"
    );
    store.close().await;
    Ok(Replayed {
        seconds,
        log_bytes,
        events,
        snapshot_bytes: json.len() as u64,
        snapshot_save_ms,
        restart_from_snapshot_ms,
    })
}

/// A centre driven by a plausible stream of commands.
struct Centre {
    dispatch: Dispatch,
    city: SyntheticCity,
    now: Timestamp,
    operator: OperatorId,
    units: Vec<UnitId>,
    facilities: Vec<FacilityId>,
    turn: u64,
}

impl Centre {
    fn new(region: BoundingBox, city: SyntheticCity, now: Timestamp) -> Self {
        Self {
            dispatch: Dispatch::new(Policy {
                region,
                ..Policy::default()
            }),
            city,
            now,
            operator: OperatorId::new("bench.operator").unwrap_or_else(|e| panic!("{e}")),
            units: Vec::new(),
            facilities: Vec::new(),
            turn: 0,
        }
    }

    fn setup_commands(&mut self, fleet: usize, facilities: usize) -> Vec<Command> {
        let mut commands = self.city.fleet(fleet);
        commands.extend(self.city.facilities(facilities));
        commands
    }

    /// Registers the fleet and facilities and opens incidents until `open` are open.
    fn populate(
        &mut self,
        fleet: usize,
        facilities: usize,
        open: usize,
        travel: &dyn TravelTimes,
    ) -> anyhow::Result<()> {
        for command in self.setup_commands(fleet, facilities) {
            self.dispatch
                .execute(&command, self.now, travel)
                .map_err(|r| anyhow::anyhow!("setup refused: {r}"))?;
            self.observe(&command, true);
        }
        while self.dispatch.open_incidents().count() < open {
            let command = self.city.open_incident(&self.operator);
            self.dispatch
                .execute(&command, self.now, travel)
                .map_err(|r| anyhow::anyhow!("setup refused: {r}"))?;
        }
        Ok(())
    }

    /// Remembers ids; advances the clock a little every command.
    fn observe(&mut self, command: &Command, applied: bool) {
        if applied {
            match command {
                Command::RegisterUnit { registration } => self.units.push(registration.id.clone()),
                Command::RegisterFacility { registration } => {
                    self.facilities.push(registration.id.clone());
                }
                _ => {}
            }
        }
        self.now = self.now + TravelTime::from_millis(50);
    }

    /// Decides and applies `n` commands of the mix, timing each (µs).
    fn time_commands(&mut self, n: usize, travel: &dyn TravelTimes) -> Vec<f64> {
        let mut micros = Vec::with_capacity(n);
        for _ in 0..n {
            let command = self.next_command();
            let watch = Stopwatch::start();
            let result = self.dispatch.execute(&command, self.now, travel);
            micros.push(watch.elapsed().as_secs_f64() * 1e6);
            self.observe(&command, result.is_ok());
        }
        micros
    }

    /// The next command of the mix: 70 % GPS fixes, the rest moves incident stories on.
    fn next_command(&mut self) -> Command {
        self.turn += 1;
        if self.units.is_empty() || self.city.below(10) < 7 {
            return self.gps_fix();
        }
        self.story_step()
    }

    fn gps_fix(&mut self) -> Command {
        let unit = self.units[self.city.below(self.units.len())].clone();
        let base = self.dispatch.unit(&unit).map_or_else(
            || self.city.point(),
            |u| u.last_fix.map_or(u.registration.base, |f| f.point),
        );
        // A few hundred metres from where it was.
        let to = self.city.point();
        let step = 0.003;
        let point = maps::GeoPoint::new(
            base.lon() + (to.lon() - base.lon()).clamp(-step, step),
            base.lat() + (to.lat() - base.lat()).clamp(-step, step),
        )
        .unwrap_or(base);
        Command::ReportPosition {
            unit,
            fix: GpsFix {
                point,
                at: self.now,
                speed: None,
            },
        }
    }

    /// Moves one incident along: open, assess, assign, then the crew's taps to handover.
    fn story_step(&mut self) -> Command {
        let open = self.dispatch.open_incidents().count();
        if open < OPEN_INCIDENTS || self.city.below(20) == 0 {
            return self.city.open_incident(&self.operator);
        }
        // Pick an open incident and move it.
        let skip = self.city.below(open);
        let Some(incident) = self.dispatch.open_incidents().nth(skip) else {
            return self.gps_fix();
        };
        let id = incident.id;
        if incident.assessment.is_none() {
            let kind = if self.city.below(4) == 0 {
                UnitKind::Tam
            } else {
                UnitKind::Tab
            };
            return Command::RecordAssessment {
                incident: id,
                assessment: ambulance_assessment(kind, None),
            };
        }
        if incident.patients.is_empty() {
            return Command::RecordPatient {
                incident: id,
                patient: self.city.patient(),
            };
        }
        if matches!(incident.status, IncidentStatus::AwaitingUnit) {
            let required = incident.required_unit().unwrap_or(UnitKind::Tab);
            let start = self.city.below(self.units.len());
            let unit = (0..self.units.len())
                .map(|i| &self.units[(start + i) % self.units.len()])
                .find(|u| {
                    self.dispatch.unit(u).is_some_and(|u| {
                        u.status.is_assignable() && u.registration.kind.satisfies(required)
                    })
                });
            if let Some(unit) = unit {
                return Command::AssignUnit {
                    incident: id,
                    unit: unit.clone(),
                    operator: self.operator.clone(),
                };
            }
            return self.gps_fix();
        }
        let Some(unit) = incident.units.iter().next().cloned() else {
            return self.gps_fix();
        };
        let status = match self.dispatch.unit(&unit).map(|u| &u.status) {
            Some(UnitStatus::Assigned { .. } | UnitStatus::Accepted { .. }) => CrewStatus::EnRoute,
            Some(UnitStatus::EnRoute { .. }) => CrewStatus::OnScene,
            Some(UnitStatus::OnScene { .. }) => CrewStatus::Transporting {
                destination: self.facilities[self.city.below(self.facilities.len())].clone(),
            },
            Some(UnitStatus::Transporting { .. }) => CrewStatus::AtHospital,
            Some(UnitStatus::AtHospital { .. }) => CrewStatus::HandedOver,
            _ => return self.gps_fix(),
        };
        Command::ReportStatus { unit, status }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let mut values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert!((percentile(&mut values, 0.99) - 99.0).abs() < f64::EPSILON);
        assert!((percentile(&mut values, 0.5) - 50.0).abs() < f64::EPSILON);
        assert!((percentile(&mut values, 1.0) - 100.0).abs() < f64::EPSILON);
        assert!(percentile(&mut [], 0.5).abs() < f64::EPSILON);
    }

    #[test]
    fn the_command_mix_keeps_the_centre_consistent_and_moves_stories_to_handover() {
        let travel = StraightLine::default();
        let start = Timestamp::parse_rfc3339("2026-11-23T12:30:00Z").unwrap();
        let mut centre = Centre::new(BOGOTA_URBAN, SyntheticCity::new(BOGOTA_URBAN, 1), start);
        centre.populate(100, 10, 50, &travel).unwrap();
        let mut applied = 0;
        for _ in 0..5_000 {
            let command = centre.next_command();
            let ok = centre
                .dispatch
                .execute(&command, centre.now, &travel)
                .is_ok();
            applied += usize::from(ok);
            centre.observe(&command, ok);
        }
        assert!(applied > 4_000, "most commands apply: {applied}");
        assert!(centre.dispatch.check_invariants().is_empty());
        assert!(
            centre.dispatch.transfers().any(|t| t.completed),
            "some stories reach the handover"
        );
    }
}
