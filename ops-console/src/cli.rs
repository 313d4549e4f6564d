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
    /// Pruebas de rendimiento / Benchmarks that print their figures.
    #[command(subcommand)]
    Bench(BenchCommand),
}

/// `regula bench …`
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Núcleo de despacho / Dispatch core: apply, recommendation and replay figures.
    Dispatch(crate::commands::bench_dispatch::BenchDispatchArgs),
    /// Prueba de caídas / Crash test: kill -9 the server under load, check nothing is lost or duplicated.
    Crash(crate::commands::bench_crash::BenchCrashArgs),
    /// Carga SIP / SIP load: calls per second through gateway, engine and log (needs sipp).
    Load(crate::commands::bench_load::BenchLoadArgs),
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
