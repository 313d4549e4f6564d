//! Road classes: the OpenStreetMap `highway=*` values an emergency vehicle may drive on.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A drivable OpenStreetMap road class (`highway=*`). Links (`*_link`) are their own class
/// because their speeds differ from the roads they join.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoadClass {
    /// `highway=motorway`.
    Motorway,
    /// `highway=motorway_link`.
    MotorwayLink,
    /// `highway=trunk` (in Bogotá: Autopista Norte, NQS, Avenida Boyacá …).
    Trunk,
    /// `highway=trunk_link`.
    TrunkLink,
    /// `highway=primary`.
    Primary,
    /// `highway=primary_link`.
    PrimaryLink,
    /// `highway=secondary`.
    Secondary,
    /// `highway=secondary_link`.
    SecondaryLink,
    /// `highway=tertiary`.
    Tertiary,
    /// `highway=tertiary_link`.
    TertiaryLink,
    /// `highway=unclassified` (and the rare `highway=road`).
    Unclassified,
    /// `highway=residential`.
    Residential,
    /// `highway=living_street`.
    LivingStreet,
    /// `highway=service` (except parking aisles and drive-throughs).
    Service,
}

impl RoadClass {
    /// Every class, in a fixed order (the order of the enum; also the binary encoding).
    pub const ALL: [Self; 14] = [
        Self::Motorway,
        Self::MotorwayLink,
        Self::Trunk,
        Self::TrunkLink,
        Self::Primary,
        Self::PrimaryLink,
        Self::Secondary,
        Self::SecondaryLink,
        Self::Tertiary,
        Self::TertiaryLink,
        Self::Unclassified,
        Self::Residential,
        Self::LivingStreet,
        Self::Service,
    ];

    /// The number of classes.
    pub const COUNT: usize = Self::ALL.len();

    /// The `highway=*` value (also the name used in profile files).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Motorway => "motorway",
            Self::MotorwayLink => "motorway_link",
            Self::Trunk => "trunk",
            Self::TrunkLink => "trunk_link",
            Self::Primary => "primary",
            Self::PrimaryLink => "primary_link",
            Self::Secondary => "secondary",
            Self::SecondaryLink => "secondary_link",
            Self::Tertiary => "tertiary",
            Self::TertiaryLink => "tertiary_link",
            Self::Unclassified => "unclassified",
            Self::Residential => "residential",
            Self::LivingStreet => "living_street",
            Self::Service => "service",
        }
    }

    /// The class of an OSM `highway=*` value, if drivable. `road` (unknown type) counts as
    /// unclassified.
    pub fn from_highway(value: &str) -> Option<Self> {
        if value == "road" {
            return Some(Self::Unclassified);
        }
        Self::ALL.into_iter().find(|c| c.name() == value)
    }

    /// Position in [`RoadClass::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The class at position `index` in [`RoadClass::ALL`].
    pub fn from_index(index: usize) -> Option<Self> {
        Self::ALL.get(index).copied()
    }

    /// Motorways are one-way by default in OSM.
    pub(crate) const fn implies_oneway(self) -> bool {
        matches!(self, Self::Motorway)
    }
}

impl fmt::Display for RoadClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not a road class.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown road class {name:?}{}; known classes: {}", hint.as_ref().map(|h| format!(" (did you mean {h:?}?)")).unwrap_or_default(), RoadClass::ALL.map(RoadClass::name).join(", "))]
pub struct UnknownRoadClass {
    /// The name given.
    pub name: String,
    /// The closest known name, if any is close.
    pub hint: Option<&'static str>,
}

impl FromStr for RoadClass {
    type Err = UnknownRoadClass;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| UnknownRoadClass {
                name: s.to_owned(),
                hint: closest_name(s),
            })
    }
}

/// The class name with the smallest edit distance to `s`, if it is at most 3 edits away.
fn closest_name(s: &str) -> Option<&'static str> {
    RoadClass::ALL
        .into_iter()
        .map(|c| (edit_distance(s, c.name()), c.name()))
        .filter(|&(d, _)| d <= 3)
        .min_by_key(|&(d, _)| d)
        .map(|(_, n)| n)
}

/// Levenshtein distance over chars (short strings only).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, &cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_round_trips_through_its_name_and_index() {
        for (i, class) in RoadClass::ALL.into_iter().enumerate() {
            assert_eq!(class.name().parse::<RoadClass>().unwrap(), class);
            assert_eq!(RoadClass::from_highway(class.name()), Some(class));
            assert_eq!(class.index(), i);
            assert_eq!(RoadClass::from_index(i), Some(class));
        }
        assert_eq!(RoadClass::from_index(RoadClass::COUNT), None);
    }

    #[test]
    fn footways_cycleways_and_tracks_are_not_drivable() {
        for value in [
            "footway",
            "cycleway",
            "path",
            "pedestrian",
            "steps",
            "track",
            "busway",
        ] {
            assert_eq!(RoadClass::from_highway(value), None, "{value}");
        }
        assert_eq!(
            RoadClass::from_highway("road"),
            Some(RoadClass::Unclassified)
        );
    }

    #[test]
    fn unknown_class_names_get_a_hint() {
        let err = "residental".parse::<RoadClass>().unwrap_err();
        assert_eq!(err.hint, Some("residential"));
        assert!(
            err.to_string().contains("did you mean \"residential\""),
            "{err}"
        );
        let err = "autopista".parse::<RoadClass>().unwrap_err();
        assert_eq!(err.hint, None);
    }
}
