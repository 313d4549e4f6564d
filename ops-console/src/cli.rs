//! The `regula` command line (clap). Help texts are bilingual where operators read them.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Regula — orientación y regulación de urgencias de Bogotá (CRUE).
/// Emergency tele-triage and regulated ambulance dispatch for Bogotá.
#[derive(Debug, Parser)]
#[command(name = "regula", version, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Inicia el servidor de producción / Start the production server (HTTP: /health, /metrics).
    Serve(ServeArgs),
    /// Configuración / Configuration files.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Triage telefónico: protocolos y evaluación por lotes / Telephone triage: protocols and batch evaluation.
    #[command(subcommand)]
    Triage(TriageCommand),
    /// Datos de OpenStreetMap / OpenStreetMap data: import a PBF extract into a road graph.
    #[command(subcommand)]
    Osm(OsmCommand),
    /// Ruta más rápida con instrucciones / Quickest route with turn-by-turn steps (Spanish).
    Route(RouteArgs),
    /// Área alcanzable en N minutos / Area reachable within N minutes (JSON or GeoJSON).
    Catchment(CatchmentArgs),
    /// Tiempos de llegada de varios orígenes a un punto / ETAs from many origins to one point.
    Eta(EtaArgs),
    /// Grafo vial / Road graph tools.
    #[command(subcommand)]
    Routing(RoutingCommand),
    /// Pruebas de rendimiento / Benchmarks that print their figures.
    #[command(subcommand)]
    Bench(BenchCommand),
}

/// `regula serve`
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Archivo de configuración / Configuration file (TOML). Without it, built-in defaults.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Dirección de escucha / Address to listen on, overrides `server.listen` (e.g. 0.0.0.0:8080; port 0 = any free port).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Puerta SIP / SIP door: UDP and TCP address for emergency calls, overrides `sip.listen` (turns SIP on).
    #[arg(long, value_name = "ADDR")]
    pub sip_listen: Option<SocketAddr>,
    /// Registro de eventos / Event log: SQLite file or postgres:// URL; overrides `store.database_url` and `DATABASE_URL`.
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
}

/// `regula config …`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Valida un archivo y lista todos sus problemas / Check a file and list every problem (exit 1 if any).
    Check {
        /// The configuration file to check.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `regula triage …`
#[derive(Debug, Subcommand)]
pub enum TriageCommand {
    /// Valida los protocolos y lista cada problema con archivo y línea / Check the protocols and list every problem with file and line (exit 1 if any).
    Validate {
        /// Directorio de protocolos / Protocol directory (`*.toml`); without it, the built-in protocols.
        #[arg(long, value_name = "DIR")]
        protocols: Option<PathBuf>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Evalúa casos estructurados: un resultado JSON por línea / Evaluate structured cases: one JSON outcome per line (exit 1 only if the file or the protocols are unusable).
    Eval {
        /// Archivo de casos / Cases file: a JSON array of cases (see shared/triage/vocabulary.md).
        #[arg(long, value_name = "FILE")]
        cases: PathBuf,
        /// Directorio de protocolos / Protocol directory; without it, the built-in protocols.
        #[arg(long, value_name = "DIR")]
        protocols: Option<PathBuf>,
    },
}

/// `regula osm …`
#[derive(Debug, Subcommand)]
pub enum OsmCommand {
    /// Importa un extracto PBF y guarda el grafo vial / Import a PBF extract and save the road graph (progress bar on stderr).
    Import(OsmImportArgs),
}

/// `regula osm import`
#[derive(Debug, Args)]
pub struct OsmImportArgs {
    /// Extracto de OpenStreetMap / OpenStreetMap extract (`.osm.pbf`).
    #[arg(long, value_name = "FILE")]
    pub pbf: PathBuf,
    /// Archivo de grafo a escribir / Graph file to write.
    #[arg(long, value_name = "GRAPH")]
    pub out: PathBuf,
    /// Recortar a una caja / Keep only roads inside `min_lon,min_lat,max_lon,max_lat`.
    #[arg(long, value_name = "BBOX", allow_hyphen_values = true)]
    pub bbox: Option<String>,
    /// Conservar todas las partes / Keep every strongly connected part, not only the largest.
    #[arg(long)]
    pub keep_all_components: bool,
    /// Print the summary as JSON (`seconds`, `nodes`, `edges`, `road_km`, `dropped`, …).
    #[arg(long)]
    pub json: bool,
}

/// Options shared by routing queries.
#[derive(Debug, Args)]
pub struct RoutingQueryArgs {
    /// Grafo vial / Road graph from `regula osm import`.
    #[arg(long, value_name = "GRAPH")]
    pub graph: PathBuf,
    /// Hora de salida / Departure time, RFC 3339 (e.g. `2026-11-23T07:30:00-05:00`); default: now.
    #[arg(long, value_name = "RFC3339")]
    pub at: Option<maps::Timestamp>,
    /// Perfil de velocidades / Congestion profile (TOML); default: the built-in Bogotá profile.
    #[arg(long, value_name = "FILE")]
    pub profile: Option<PathBuf>,
    /// Vehículo de emergencia con sirena / Emergency vehicle with lights and siren.
    #[arg(long)]
    pub emergency: bool,
}

/// `regula route`
#[derive(Debug, Args)]
pub struct RouteArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub query: RoutingQueryArgs,
    /// Origen / Start, `lon,lat`.
    #[arg(long, value_name = "LON,LAT", allow_hyphen_values = true)]
    pub from: maps::GeoPoint,
    /// Destino / Destination, `lon,lat`.
    #[arg(long, value_name = "LON,LAT", allow_hyphen_values = true)]
    pub to: maps::GeoPoint,
    /// Print JSON (duration, distance, steps, geometry).
    #[arg(long)]
    pub json: bool,
    /// Print a GeoJSON Feature (the line, with steps as properties).
    #[arg(long, conflicts_with = "json")]
    pub geojson: bool,
}

/// `regula catchment`
#[derive(Debug, Args)]
pub struct CatchmentArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub query: RoutingQueryArgs,
    /// Origen / Source (e.g. an emergency department), `lon,lat`.
    #[arg(long, value_name = "LON,LAT", allow_hyphen_values = true)]
    pub from: maps::GeoPoint,
    /// Minutos / Budget in minutes.
    #[arg(long, default_value_t = 30)]
    pub minutes: u32,
    /// Resolución H3 / H3 resolution of the cells: 7, 8 or 9.
    #[arg(long, default_value_t = 9)]
    pub resolution: u8,
    /// Print JSON (cells with their earliest arrival, area).
    #[arg(long)]
    pub json: bool,
    /// Print a GeoJSON Feature (the drivable area's outline).
    #[arg(long, conflicts_with = "json")]
    pub geojson: bool,
}

/// `regula eta`
#[derive(Debug, Args)]
pub struct EtaArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub query: RoutingQueryArgs,
    /// Destino / Target (e.g. an incident), `lon,lat`.
    #[arg(long, value_name = "LON,LAT", allow_hyphen_values = true)]
    pub to: maps::GeoPoint,
    /// Orígenes / Origins (e.g. ambulances), `lon,lat`; repeat the flag.
    #[arg(
        long,
        value_name = "LON,LAT",
        required = true,
        allow_hyphen_values = true
    )]
    pub from: Vec<maps::GeoPoint>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `regula routing …`
#[derive(Debug, Subcommand)]
pub enum RoutingCommand {
    /// Exporta los arcos con su tiempo / Export every directed edge with its travel time (CSV).
    ExportEdges(ExportEdgesArgs),
}

/// `regula routing export-edges`
#[derive(Debug, Args)]
pub struct ExportEdgesArgs {
    /// Grafo vial / Road graph.
    #[arg(long, value_name = "GRAPH")]
    pub graph: PathBuf,
    /// Hora de salida / Departure time, RFC 3339.
    #[arg(long, value_name = "RFC3339")]
    pub at: maps::Timestamp,
    /// Archivo CSV a escribir / CSV file: `from_node,to_node,from_lon,from_lat,to_lon,to_lat,seconds`.
    #[arg(long, value_name = "OUT")]
    pub csv: PathBuf,
    /// Perfil de velocidades / Congestion profile (TOML); default: Bogotá.
    #[arg(long, value_name = "FILE")]
    pub profile: Option<PathBuf>,
    /// Tiempos de vehículo de emergencia / Emergency-vehicle times.
    #[arg(long)]
    pub emergency: bool,
}

/// `regula bench …`
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Enrutamiento / Routing: catchments, re-weighting, live updates, ETAs, routes, memory.
    Routing(BenchRoutingArgs),
    /// Núcleo de despacho / Dispatch core: apply, recommendation and replay figures.
    Dispatch(crate::commands::bench_dispatch::BenchDispatchArgs),
    /// Prueba de caídas / Crash test: kill -9 the server under load, check nothing is lost or duplicated.
    Crash(crate::commands::bench_crash::BenchCrashArgs),
    /// Carga SIP / SIP load: calls per second through gateway, engine and log (needs sipp).
    Load(crate::commands::bench_load::BenchLoadArgs),
    /// Fallas reales / Real faults: full disk, immutable WAL, second writer; nothing acknowledged may be lost (needs root).
    Faults(crate::commands::bench_faults::BenchFaultsArgs),
}

/// `regula bench routing`
#[derive(Debug, Args)]
pub struct BenchRoutingArgs {
    /// Grafo vial / Road graph.
    #[arg(long, value_name = "GRAPH")]
    pub graph: PathBuf,
    /// También medir la importación / Also time the import of this PBF extract.
    #[arg(long, value_name = "FILE")]
    pub pbf: Option<PathBuf>,
    /// Hora de salida / Departure, RFC 3339 (default: Monday 2026-11-23 07:30 Bogotá).
    #[arg(long, value_name = "RFC3339")]
    pub at: Option<maps::Timestamp>,
    /// Semilla de los puntos aleatorios / Seed of the random points.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}
