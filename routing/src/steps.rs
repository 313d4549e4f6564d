//! Turn-by-turn instructions in Spanish for the crew tablet: "Diríjase al norte por Calle 26",
//! "Gire a la derecha en Carrera 7", "En la glorieta, tome la segunda salida hacia …",
//! "Llegó a su destino".

use maps::{GeoPoint, Meters, TravelTime};
use serde::Serialize;

use crate::graph::{FLAG_ROUNDABOUT, RoadGraph};

/// The kind of manoeuvre at the start of a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Maneuver {
    /// Leave the start.
    Depart,
    /// Keep going (the street changes name or the road bends).
    Continue,
    /// A slight turn (20°–60°).
    SlightRight,
    /// A turn (60°–135°).
    Right,
    /// A sharp turn (135°–170°).
    SharpRight,
    /// A slight turn (20°–60°).
    SlightLeft,
    /// A turn (60°–135°).
    Left,
    /// A sharp turn (135°–170°).
    SharpLeft,
    /// Turn back.
    UTurn,
    /// Enter a roundabout and leave at exit `exit` (1 = first).
    Roundabout {
        /// Exit number.
        exit: u32,
    },
    /// The destination.
    Arrive,
}

/// One instruction.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    /// What to do, in Spanish.
    pub instruction: String,
    /// The manoeuvre.
    pub maneuver: Maneuver,
    /// The street driven after the manoeuvre, if named.
    pub street: Option<String>,
    /// Where the manoeuvre happens.
    pub location: GeoPoint,
    /// Distance driven until the next manoeuvre.
    pub distance: Meters,
    /// Time until the next manoeuvre.
    #[serde(rename = "duration_ms")]
    pub duration: TravelTime,
}

/// A piece of the route: an arc (or the part of it driven) with its length and time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Leg {
    pub(crate) arc: u32,
    pub(crate) distance: Meters,
    pub(crate) duration: TravelTime,
}

/// Approximate bearing from `a` to `b` in degrees from north (local flat earth: exact
/// enough to tell a left turn from a right one, and much cheaper than the great circle).
fn flat_bearing(a: GeoPoint, b: GeoPoint) -> f64 {
    let east = (b.lon() - a.lon()) * a.lat().to_radians().cos();
    let north = b.lat() - a.lat();
    east.atan2(north).to_degrees().rem_euclid(360.0)
}

/// Bearing of the first and of the last segment of an arc, degrees from north.
fn bearings(graph: &RoadGraph, arc: u32) -> (f64, f64) {
    let mut forward = graph.arc_points(arc);
    let first = forward
        .next()
        .and_then(|a| forward.find(|&b| b != a).map(|b| flat_bearing(a, b)));
    let mut backward = graph.arc_points(arc).rev();
    let last = backward
        .next()
        .and_then(|b| backward.find(|&a| a != b).map(|a| flat_bearing(a, b)));
    let first = first.unwrap_or(0.0);
    (first, last.unwrap_or(first))
}

/// Signed turn angle from `incoming` to `outgoing` bearings, in (−180, 180]; positive is
/// to the right (clockwise).
fn turn_angle(incoming: f64, outgoing: f64) -> f64 {
    let mut a = (outgoing - incoming).rem_euclid(360.0);
    if a > 180.0 {
        a -= 360.0;
    }
    a
}

fn classify(angle: f64) -> Maneuver {
    let magnitude = angle.abs();
    let right = angle > 0.0;
    match magnitude {
        m if m < 20.0 => Maneuver::Continue,
        m if m < 60.0 => {
            if right {
                Maneuver::SlightRight
            } else {
                Maneuver::SlightLeft
            }
        }
        m if m < 135.0 => {
            if right {
                Maneuver::Right
            } else {
                Maneuver::Left
            }
        }
        m if m < 170.0 => {
            if right {
                Maneuver::SharpRight
            } else {
                Maneuver::SharpLeft
            }
        }
        _ => Maneuver::UTurn,
    }
}

fn cardinal(bearing: f64) -> &'static str {
    const NAMES: [&str; 8] = [
        "norte", "noreste", "este", "sureste", "sur", "suroeste", "oeste", "noroeste",
    ];
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let i = ((bearing.rem_euclid(360.0) + 22.5) / 45.0) as usize % 8;
    NAMES[i]
}

fn ordinal(n: u32) -> String {
    const NAMES: [&str; 10] = [
        "primera", "segunda", "tercera", "cuarta", "quinta", "sexta", "séptima", "octava",
        "novena", "décima",
    ];
    NAMES
        .get((n as usize).wrapping_sub(1))
        .map_or_else(|| format!("salida número {n}"), |s| format!("{s} salida"))
}

/// The Spanish instruction for a manoeuvre onto `street`.
pub(crate) fn instruction(maneuver: Maneuver, street: Option<&str>, bearing: f64) -> String {
    let on = |prep: &str| street.map(|s| format!(" {prep} {s}")).unwrap_or_default();
    match maneuver {
        Maneuver::Depart => format!("Diríjase al {}{}", cardinal(bearing), on("por")),
        Maneuver::Continue => street.map_or_else(
            || "Continúe recto".to_owned(),
            |s| format!("Continúe por {s}"),
        ),
        Maneuver::SlightRight => format!("Gire ligeramente a la derecha{}", on("en")),
        Maneuver::Right => format!("Gire a la derecha{}", on("en")),
        Maneuver::SharpRight => format!("Gire bruscamente a la derecha{}", on("en")),
        Maneuver::SlightLeft => format!("Gire ligeramente a la izquierda{}", on("en")),
        Maneuver::Left => format!("Gire a la izquierda{}", on("en")),
        Maneuver::SharpLeft => format!("Gire bruscamente a la izquierda{}", on("en")),
        Maneuver::UTurn => format!("Haga un giro en U{}", on("en")),
        Maneuver::Roundabout { exit } => {
            format!("En la glorieta, tome la {}{}", ordinal(exit), on("hacia"))
        }
        Maneuver::Arrive => "Llegó a su destino".to_owned(),
    }
}

/// Builds the steps of a route from its legs; `geometry` gives the start and end points.
pub(crate) fn steps(graph: &RoadGraph, legs: &[Leg], geometry: &[GeoPoint]) -> Vec<Step> {
    let mut out: Vec<Step> = Vec::new();
    let start = geometry.first().copied().unwrap_or(graph.node_point[0]);
    let end = geometry.last().copied().unwrap_or(start);
    let mut i = 0;
    while i < legs.len() {
        let arc = legs[i].arc;
        let roundabout = graph.arc_flags[arc as usize] & FLAG_ROUNDABOUT != 0;
        let name = graph.arc_name(arc).map(str::to_owned);
        let (out_bearing, _) = bearings(graph, arc);
        let location = if i == 0 {
            start
        } else {
            graph.node_point[graph.arc_tail[arc as usize] as usize]
        };
        let mut maneuver = if i == 0 {
            Maneuver::Depart
        } else {
            let (_, in_bearing) = bearings(graph, legs[i - 1].arc);
            classify(turn_angle(in_bearing, out_bearing))
        };
        // Extend the step over following legs on the same street without a real choice.
        let mut j = i + 1;
        let mut exit = 0u32;
        if roundabout && i > 0 {
            // Count the exits passed while on the roundabout; the step is named after the
            // street taken when leaving it.
            while j < legs.len() && graph.arc_flags[legs[j].arc as usize] & FLAG_ROUNDABOUT != 0 {
                j += 1;
            }
            for leg in &legs[i..j] {
                let twin = graph.arc_twin[leg.arc as usize];
                let exits = graph
                    .edges_out(graph.arc_target[leg.arc as usize])
                    .map(|e| graph.edge_arc[e])
                    .filter(|&b| b != twin && graph.arc_flags[b as usize] & FLAG_ROUNDABOUT == 0)
                    .count();
                if exits > 0 {
                    exit += 1;
                }
            }
            maneuver = Maneuver::Roundabout { exit: exit.max(1) };
        }
        let street = if matches!(maneuver, Maneuver::Roundabout { .. }) {
            legs.get(j)
                .and_then(|l| graph.arc_name(l.arc))
                .map(str::to_owned)
        } else {
            name.clone()
        };
        if !matches!(maneuver, Maneuver::Roundabout { .. }) {
            while j < legs.len() {
                let next = legs[j].arc;
                let (_, prev_bearing) = bearings(graph, legs[j - 1].arc);
                let (next_bearing, _) = bearings(graph, next);
                let choice = graph.exits_after(legs[j - 1].arc) > 1;
                let same_name = graph.arc_name(next) == name.as_deref();
                let sharp = turn_angle(prev_bearing, next_bearing).abs() >= 45.0;
                let roundabout_next = graph.arc_flags[next as usize] & FLAG_ROUNDABOUT != 0;
                if !same_name || roundabout_next || (choice && sharp) {
                    break;
                }
                j += 1;
            }
        }
        // A "continue" onto the same street as the previous step is not worth a step.
        let distance = legs[i..j].iter().map(|l| l.distance).sum();
        let duration = legs[i..j].iter().map(|l| l.duration).sum();
        if maneuver == Maneuver::Continue
            && let Some(prev) = out.last_mut()
            && prev.street == street
        {
            prev.distance += distance;
            prev.duration += duration;
        } else {
            out.push(Step {
                instruction: instruction(maneuver, street.as_deref(), out_bearing),
                maneuver,
                street,
                location,
                distance,
                duration,
            });
        }
        i = j;
    }
    out.push(Step {
        instruction: instruction(Maneuver::Arrive, None, 0.0),
        maneuver: Maneuver::Arrive,
        street: None,
        location: end,
        distance: Meters::ZERO,
        duration: TravelTime::ZERO,
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instructions_read_as_spanish_sentences() {
        assert_eq!(
            instruction(Maneuver::Right, Some("Calle 45"), 0.0),
            "Gire a la derecha en Calle 45"
        );
        assert_eq!(
            instruction(Maneuver::Continue, Some("Avenida Caracas"), 0.0),
            "Continúe por Avenida Caracas"
        );
        assert_eq!(
            instruction(Maneuver::Depart, Some("Carrera 7"), 5.0),
            "Diríjase al norte por Carrera 7"
        );
        assert_eq!(
            instruction(Maneuver::Depart, None, 180.0),
            "Diríjase al sur"
        );
        assert_eq!(
            instruction(Maneuver::Roundabout { exit: 2 }, Some("Calle 80"), 0.0),
            "En la glorieta, tome la segunda salida hacia Calle 80"
        );
        assert_eq!(
            instruction(Maneuver::Left, None, 0.0),
            "Gire a la izquierda"
        );
        assert_eq!(
            instruction(Maneuver::Arrive, None, 0.0),
            "Llegó a su destino"
        );
    }

    #[test]
    fn turn_angles_are_signed_with_right_positive() {
        assert!((turn_angle(0.0, 90.0) - 90.0).abs() < 1e-9);
        assert!((turn_angle(0.0, 270.0) + 90.0).abs() < 1e-9);
        assert!((turn_angle(350.0, 10.0) - 20.0).abs() < 1e-9);
        assert_eq!(classify(90.0), Maneuver::Right);
        assert_eq!(classify(-90.0), Maneuver::Left);
        assert_eq!(classify(5.0), Maneuver::Continue);
        assert_eq!(classify(-40.0), Maneuver::SlightLeft);
        assert_eq!(classify(179.0), Maneuver::UTurn);
    }
}
