//! The shared vocabulary of Regula: where, how far, how long and when.
//!
//! Every other crate speaks in these types, so that a longitude is never confused with a
//! latitude, metres with seconds, or local time with UTC.
//!
//! # Layout
//! - [`point`]: [`GeoPoint`], a validated WGS84 longitude/latitude, great-circle distance and
//!   bearing, and [`BoundingBox`] with a Bogotá context ([`BoundingBox::BOGOTA`]) that catches
//!   swapped coordinates, a real mistake in the city's own open data.
//! - [`units`]: [`Meters`], [`TravelTime`] (integer milliseconds) and [`Speed`], with only the
//!   arithmetic that makes physical sense (`Meters / Speed = TravelTime`, …).
//! - [`time`]: [`Timestamp`] (UTC, integer milliseconds since the Unix epoch) with RFC 3339
//!   at the edges, Bogotá local time (UTC−5 all year, no daylight saving) for traffic
//!   profiles, and the [`Clock`] trait through which the shell hands time to the core.
//! - [`h3`]: [`Cell`], a wrapper over `h3o` restricted to the [`CellResolution`]s we use.
//! - [`geojson`]: conversion of points, polylines and areas to and from GeoJSON (RFC 7946).
//!
//! # Invariants
//! - A [`GeoPoint`] always holds finite coordinates with longitude in [−180, 180] and
//!   latitude in [−90, 90].
//! - Units never hold NaN or infinities; [`TravelTime`] is never negative.
//! - Nothing in this crate reads the clock, the file system or the network.

pub mod geojson;
pub mod h3;
pub mod point;
pub mod time;
pub mod units;

pub use crate::geojson::{Area, GeoJsonError, Polyline};
pub use crate::h3::{Cell, CellError, CellResolution};
pub use crate::point::{BoundingBox, GeoError, GeoPoint};
pub use crate::time::{
    BOGOTA_UTC_OFFSET_HOURS, Clock, LocalTime, ManualClock, TimeError, Timestamp, Weekday,
};
pub use crate::units::{Meters, Speed, TravelTime, UnitError};
