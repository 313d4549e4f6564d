//! Routing for Regula: an OpenStreetMap road graph with congestion-aware ("velocidad
//! trancón") travel times, 30-minute catchments, ETAs from many ambulances to one incident,
//! routes with turn-by-turn steps, and snapping of points to roads.
//!
//! Pure and CPU-bound: no tokio, no clock. Callers pass the departure time; the shell runs
//! queries off the async runtime.
