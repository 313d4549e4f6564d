//! H3 hexagonal cells (over `h3o`), restricted to the resolutions Regula uses.
//!
//! | resolution | name | mean area | mean edge | used for |
//! |---|---|---|---|---|
//! | 7 | [`CellResolution::District`] | 5.16 km² | 1.41 km | demand heat maps by district, coordinator overview |
//! | 8 | [`CellResolution::Coverage`] | 0.737 km² | 531 m | coverage shares (units within 8/15 min), catchment aggregation, move-up suggestions |
//! | 9 | [`CellResolution::Block`] | 0.105 km² | 201 m | fine catchment outlines, incident clustering, map display |
//!
//! Bogotá's urban area (about 380 km²) is roughly 520 cells at resolution 8, which keeps a
//! city-wide coverage layer small enough to recompute after every dispatch.

use std::fmt;
use std::str::FromStr;

use h3o::{CellIndex, LatLng, Resolution};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::geojson::Area;
use crate::point::GeoPoint;

/// Why a cell could not be built or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CellError {
    /// Not an H3 index in hexadecimal.
    #[error(
        "{0:?} is not an H3 cell index (expected 15 hexadecimal digits, e.g. `88668c1a55fffff`)"
    )]
    Syntax(String),
    /// A valid H3 index at a resolution Regula does not use.
    #[error("H3 cell {cell} has resolution {resolution}; Regula uses resolutions 7, 8 and 9")]
    UnsupportedResolution {
        /// The cell.
        cell: String,
        /// Its resolution.
        resolution: u8,
    },
    /// Cells of mixed resolutions or duplicates given to [`Cell::dissolve`].
    #[error("cannot outline these cells: {0}")]
    Dissolve(String),
}

/// The H3 resolutions Regula uses (see the module docs for what each is for).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum CellResolution {
    /// Resolution 7 (≈5.2 km²).
    District,
    /// Resolution 8 (≈0.74 km²).
    Coverage,
    /// Resolution 9 (≈0.10 km²).
    Block,
}

impl CellResolution {
    /// The H3 resolution number.
    pub const fn number(self) -> u8 {
        match self {
            Self::District => 7,
            Self::Coverage => 8,
            Self::Block => 9,
        }
    }

    const fn h3o(self) -> Resolution {
        match self {
            Self::District => Resolution::Seven,
            Self::Coverage => Resolution::Eight,
            Self::Block => Resolution::Nine,
        }
    }

    fn from_h3o(r: Resolution) -> Option<Self> {
        match r {
            Resolution::Seven => Some(Self::District),
            Resolution::Eight => Some(Self::Coverage),
            Resolution::Nine => Some(Self::Block),
            _ => None,
        }
    }
}

/// One H3 cell at a resolution Regula uses. Written as the usual 15-digit hexadecimal
/// index (`88668c1a55fffff`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cell(CellIndex);

impl Cell {
    /// The cell containing `point`.
    pub fn containing(point: GeoPoint, resolution: CellResolution) -> Self {
        // GeoPoint guarantees finite, in-range coordinates, which is all LatLng checks.
        let ll = LatLng::new(point.lat(), point.lon())
            .unwrap_or_else(|_| unreachable!("GeoPoint is always a valid LatLng: {point:?}"));
        Self(ll.to_cell(resolution.h3o()))
    }

    /// The cell's resolution.
    pub fn resolution(self) -> CellResolution {
        CellResolution::from_h3o(self.0.resolution())
            .unwrap_or_else(|| unreachable!("Cell is only built at supported resolutions"))
    }

    /// The cell's centre.
    pub fn center(self) -> GeoPoint {
        let ll = LatLng::from(self.0);
        GeoPoint::new(ll.lng(), ll.lat())
            .unwrap_or_else(|e| unreachable!("H3 centres are valid coordinates: {e}"))
    }

    /// The cell's outline as a closed ring (first vertex repeated at the end).
    pub fn boundary(self) -> Vec<GeoPoint> {
        let mut ring: Vec<GeoPoint> = self
            .0
            .boundary()
            .iter()
            .filter_map(|ll| GeoPoint::new(ll.lng(), ll.lat()).ok())
            .collect();
        if let Some(&first) = ring.first() {
            ring.push(first);
        }
        ring
    }

    /// Area in square metres.
    pub fn area_m2(self) -> f64 {
        self.0.area_m2()
    }

    /// This cell and every cell within `k` steps of it.
    pub fn disk(self, k: u32) -> Vec<Self> {
        self.0
            .grid_disk::<Vec<_>>(k)
            .into_iter()
            .map(Self)
            .collect()
    }

    /// The outline of a set of cells of one resolution (duplicates are ignored), e.g. the
    /// area reachable within 30 minutes.
    pub fn dissolve(cells: impl IntoIterator<Item = Self>) -> Result<Area, CellError> {
        let mut indexes: Vec<CellIndex> = cells.into_iter().map(|c| c.0).collect();
        indexes.sort_unstable();
        indexes.dedup();
        let multi = h3o::geom::SolventBuilder::new()
            .build()
            .dissolve(indexes)
            .map_err(|e| CellError::Dissolve(e.to_string()))?;
        Area::new(multi).map_err(|e| CellError::Dissolve(e.to_string()))
    }

    /// The raw 64-bit H3 index.
    pub fn as_u64(self) -> u64 {
        u64::from(self.0)
    }
}

impl fmt::Debug for Cell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cell({})", self.0)
    }
}

impl fmt::Display for Cell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl FromStr for Cell {
    type Err = CellError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let index: CellIndex = s.parse().map_err(|_| CellError::Syntax(s.to_owned()))?;
        match CellResolution::from_h3o(index.resolution()) {
            Some(_) => Ok(Self(index)),
            None => Err(CellError::UnsupportedResolution {
                cell: s.to_owned(),
                resolution: u8::from(index.resolution()),
            }),
        }
    }
}

impl Serialize for Cell {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cell {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plaza_de_bolivar() -> GeoPoint {
        GeoPoint::new(-74.0760, 4.5981).unwrap()
    }

    #[test]
    fn a_point_lies_within_its_cell_and_close_to_the_centre() {
        for res in [
            CellResolution::District,
            CellResolution::Coverage,
            CellResolution::Block,
        ] {
            let cell = Cell::containing(plaza_de_bolivar(), res);
            assert_eq!(cell.resolution(), res);
            let edge = (cell.area_m2() / 2.598).sqrt(); // regular hexagon: A = 3√3/2 · e²
            assert!(cell.center().distance_to(plaza_de_bolivar()).get() <= edge * 1.01);
        }
    }

    #[test]
    fn resolution_8_cells_are_about_three_quarters_of_a_square_km() {
        let cell = Cell::containing(plaza_de_bolivar(), CellResolution::Coverage);
        assert!(
            (600_000.0..900_000.0).contains(&cell.area_m2()),
            "{}",
            cell.area_m2()
        );
    }

    #[test]
    fn text_round_trip_and_errors() {
        let cell = Cell::containing(plaza_de_bolivar(), CellResolution::Coverage);
        let text = cell.to_string();
        assert_eq!(text.len(), 15);
        assert_eq!(text.parse::<Cell>().unwrap(), cell);
        assert_eq!(
            serde_json::from_str::<Cell>(&serde_json::to_string(&cell).unwrap()).unwrap(),
            cell
        );
        assert!(matches!("zz".parse::<Cell>(), Err(CellError::Syntax(_))));
        // A resolution-5 cell is valid H3 but not one of ours.
        let res5 = "85283473fffffff".parse::<Cell>().unwrap_err();
        assert!(matches!(
            res5,
            CellError::UnsupportedResolution { resolution: 5, .. }
        ));
    }

    #[test]
    fn disk_of_one_has_seven_cells_and_dissolves_to_one_polygon() {
        let cell = Cell::containing(plaza_de_bolivar(), CellResolution::Block);
        let disk = cell.disk(1);
        assert_eq!(disk.len(), 7);
        let area = Cell::dissolve(disk.iter().copied().chain(disk.iter().copied())).unwrap();
        assert_eq!(area.polygons().len(), 1);
        let sum: f64 = disk.iter().map(|c| c.area_m2()).sum();
        let ratio = area.area_m2() / sum;
        assert!((0.97..1.03).contains(&ratio), "{ratio}");
    }

    #[test]
    fn boundary_is_a_closed_ring() {
        let ring = Cell::containing(plaza_de_bolivar(), CellResolution::Block).boundary();
        assert_eq!(ring.len(), 7);
        assert_eq!(ring.first(), ring.last());
    }

    #[test]
    fn mixed_resolutions_cannot_be_dissolved() {
        let a = Cell::containing(plaza_de_bolivar(), CellResolution::Block);
        let b = Cell::containing(plaza_de_bolivar(), CellResolution::Coverage);
        assert!(matches!(
            Cell::dissolve([a, b]),
            Err(CellError::Dissolve(_))
        ));
    }
}
