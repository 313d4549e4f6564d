//! Línea 123 demand from `emergency/bogota_linea123_demanda_jun2026_agregada.json`:
//! aggregates of 9,206 medical-incident rows (CRUE, 2026-06-01 to 2026-07-01).
//!
//! - `conteoPorHora` (raw counts by hour of day) is the source of the hourly curve; the
//!   raw normalised curve `curvaHoraCruda` is checked against it. `curvaHora` is kept apart
//!   as [`HourlyDemand::smoothed`]: the publishing repository replaced hours 17–18
//!   (`horasAnomalas`) by hand, so it is not the data.
//! - `porPrioridad` (Critica, Alta, Media, Baja) becomes [`PriorityCounts`].
//! - `porLocalidad` is kept with the names as written; [`super::geography::attach_demand`]
//!   matches them to the polygons.
//! - `factorDia` (day-of-week factors), when present, is kept.
//!
//! The counts are incident *rows* (an incident with several patients or vehicles counts
//! more than once) over one month; the simulator draws calls from them as rates.

use std::fmt;
use std::marker::PhantomData;

use dispatch_core::model::Priority;
use maps::{Timestamp, Weekday};
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use super::text::name_key;
use super::{RegionError, RegionWarning};

/// Counts (and curves) by hour of day, 0–23, Bogotá local time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HourlyDemand {
    /// Incident rows per hour of day over the whole period (`conteoPorHora`).
    pub counts: [u32; 24],
    /// `counts` divided by the busiest hour's count (1.0 at the peak), as `curvaHoraCruda`.
    pub curve: [f64; 24],
    /// The publisher's smoothed curve (`curvaHora`), when present: not data.
    pub smoothed: Option<[f64; 24]>,
    /// Hours the publisher flagged as anomalous (`horasAnomalas`).
    pub anomalous_hours: Vec<u8>,
}

impl HourlyDemand {
    /// All incident rows.
    pub fn total(&self) -> u64 {
        self.counts.iter().map(|&c| u64::from(c)).sum()
    }

    /// The share of the day's incidents that fall in `hour` (0 for hours ≥ 24).
    pub fn share(&self, hour: u8) -> f64 {
        let total = self.total();
        match self.counts.get(usize::from(hour)) {
            #[allow(clippy::cast_precision_loss)] // counts are far below 2^52
            Some(&c) if total > 0 => f64::from(c) / total as f64,
            _ => 0.0,
        }
    }

    /// The busiest hour (the earliest if tied).
    pub fn peak_hour(&self) -> u8 {
        let mut best = 0u8;
        for (h, hour) in (0u8..24).zip(self.counts) {
            if hour > self.counts[usize::from(best)] {
                best = h;
            }
        }
        best
    }
}

/// Incident rows by dispatch priority (`porPrioridad`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PriorityCounts {
    /// Crítica.
    pub critical: u32,
    /// Alta.
    pub high: u32,
    /// Media.
    pub medium: u32,
    /// Baja.
    pub low: u32,
}

impl PriorityCounts {
    /// Rows of one priority.
    pub fn count(&self, priority: Priority) -> u32 {
        match priority {
            Priority::Critical => self.critical,
            Priority::High => self.high,
            Priority::Medium => self.medium,
            Priority::Low => self.low,
        }
    }

    /// All rows.
    pub fn total(&self) -> u64 {
        Priority::ALL
            .iter()
            .map(|&p| u64::from(self.count(p)))
            .sum()
    }

    /// The share of one priority (0 when there are no rows).
    pub fn share(&self, priority: Priority) -> f64 {
        match self.total() {
            0 => 0.0,
            #[allow(clippy::cast_precision_loss)]
            total => f64::from(self.count(priority)) / total as f64,
        }
    }
}

/// The Línea 123 demand profile.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DemandProfile {
    /// `fuente`.
    pub source: String,
    /// Start of the period, 00:00 Bogotá time (`periodo.desde`).
    pub period_start: Timestamp,
    /// End of the period, exclusive (`periodo.hasta`).
    pub period_end: Timestamp,
    /// Whole days in the period.
    pub days: u32,
    /// `incidentes`.
    pub incidents: u32,
    /// By hour of day.
    pub hourly: HourlyDemand,
    /// Day-of-week factors (`factorDia`), Monday first, when present.
    pub weekday_factors: Option<[(Weekday, f64); 7]>,
    /// By priority.
    pub priorities: PriorityCounts,
    /// By localidad, names and order as in the file.
    pub by_localidad: Vec<(String, u32)>,
}

impl DemandProfile {
    /// Mean incident rows per day over the period.
    pub fn mean_per_day(&self) -> f64 {
        f64::from(self.incidents) / f64::from(self.days.max(1))
    }

    /// Mean incident rows in `hour` of an average day (the simulator's hourly rate).
    pub fn mean_in_hour(&self, hour: u8) -> f64 {
        self.hourly
            .counts
            .get(usize::from(hour))
            .map_or(0.0, |&c| f64::from(c) / f64::from(self.days.max(1)))
    }
}

/// A JSON object read as key/value pairs in file order, duplicates kept (serde's maps
/// would silently keep only the last of two equal keys).
#[derive(Debug)]
struct Pairs<V>(Vec<(String, V)>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Pairs<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PairsVisitor<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for PairsVisitor<V> {
            type Value = Pairs<V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut pairs = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, V>()? {
                    pairs.push((k, v));
                }
                Ok(Pairs(pairs))
            }
        }
        deserializer.deserialize_map(PairsVisitor(PhantomData))
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDemand {
    #[serde(default)]
    fuente: String,
    periodo: RawPeriod,
    incidentes: u32,
    conteo_por_hora: Pairs<u32>,
    curva_hora_cruda: Option<Pairs<f64>>,
    curva_hora: Option<Pairs<f64>>,
    #[serde(default)]
    horas_anomalas: Vec<u8>,
    factor_dia: Option<Pairs<f64>>,
    por_localidad: Pairs<u32>,
    por_prioridad: Pairs<u32>,
}

#[derive(Deserialize)]
struct RawPeriod {
    desde: String,
    hasta: String,
}

/// Parses the demand file's text (`file` names it in errors and warnings).
pub fn parse_demand(
    file: &str,
    text: &str,
) -> Result<(DemandProfile, Vec<RegionWarning>), RegionError> {
    let json_error = |(path, message): (String, String)| RegionError::Json {
        file: file.to_owned(),
        path,
        message,
    };
    let de = &mut serde_json::Deserializer::from_str(text);
    let raw: RawDemand = serde_path_to_error::deserialize(de)
        .map_err(|e| json_error((e.path().to_string(), e.inner().to_string())))?;
    let mut notes = Vec::new();
    let (period_start, period_end, days) = period(&raw.periodo).map_err(json_error)?;
    let hourly = hourly(&raw, &mut notes).map_err(json_error)?;
    let weekday_factors = match &raw.factor_dia {
        Some(pairs) => Some(by_weekday(pairs).map_err(json_error)?),
        None => None,
    };
    let priorities = by_priority(&raw.por_prioridad).map_err(json_error)?;
    if raw.por_localidad.0.is_empty() {
        return Err(json_error(("porLocalidad".into(), "no localidad".into())));
    }
    for (what, total) in [
        ("`conteoPorHora` counts", hourly.total()),
        ("`porPrioridad` counts", priorities.total()),
        (
            "`porLocalidad` counts",
            raw.por_localidad.0.iter().map(|(_, c)| u64::from(*c)).sum(),
        ),
    ] {
        if total != u64::from(raw.incidentes) {
            notes.push(format!(
                "`incidentes` is {} but {what} sum to {total}",
                raw.incidentes
            ));
        }
    }
    let warnings = notes
        .into_iter()
        .map(|message| RegionWarning::TotalsDisagree {
            file: file.to_owned(),
            message,
        })
        .collect();
    Ok((
        DemandProfile {
            source: raw.fuente,
            period_start,
            period_end,
            days,
            incidents: raw.incidentes,
            hourly,
            weekday_factors,
            priorities,
            by_localidad: raw.por_localidad.0,
        },
        warnings,
    ))
}

/// Start, end (00:00 Bogotá time) and whole days of `periodo`.
fn period(raw: &RawPeriod) -> Result<(Timestamp, Timestamp, u32), (String, String)> {
    let date = |field: &str, value: &str| {
        Timestamp::parse_rfc3339(&format!("{value}T00:00:00-05:00")).map_err(|e| {
            (
                field.to_owned(),
                format!("{value:?} is not a date YYYY-MM-DD ({e})"),
            )
        })
    };
    let start = date("periodo.desde", &raw.desde)?;
    let end = date("periodo.hasta", &raw.hasta)?;
    let days = u32::try_from(end.saturating_duration_since(start).as_millis() / 86_400_000)
        .unwrap_or(u32::MAX);
    if days == 0 {
        return Err((
            "periodo".to_owned(),
            format!(
                "`hasta` ({}) must be at least one day after `desde` ({})",
                raw.hasta, raw.desde
            ),
        ));
    }
    Ok((start, end, days))
}

/// The hourly counts and curves; a raw curve that disagrees with the counts is noted.
fn hourly(raw: &RawDemand, notes: &mut Vec<String>) -> Result<HourlyDemand, (String, String)> {
    let counts = by_hour(&raw.conteo_por_hora, "conteoPorHora")?;
    let peak = counts.iter().copied().max().unwrap_or(0);
    if peak == 0 {
        return Err(("conteoPorHora".to_owned(), "every hour is 0".to_owned()));
    }
    let curve = counts.map(|c| f64::from(c) / f64::from(peak));
    if let Some(given) = &raw.curva_hora_cruda {
        let given = by_hour(given, "curvaHoraCruda")?;
        if let Some(h) = (0..24).find(|&h| (given[h] - curve[h]).abs() > 0.001) {
            notes.push(format!(
                "curvaHoraCruda[{h}] is {} but conteoPorHora gives {:.4}; the counts are used",
                given[h], curve[h]
            ));
        }
    }
    let smoothed = match &raw.curva_hora {
        Some(pairs) => Some(by_hour(pairs, "curvaHora")?),
        None => None,
    };
    if let Some(&bad) = raw.horas_anomalas.iter().find(|&&h| h >= 24) {
        return Err((
            "horasAnomalas".to_owned(),
            format!("{bad} is not an hour 0–23"),
        ));
    }
    Ok(HourlyDemand {
        counts,
        curve,
        smoothed,
        anomalous_hours: raw.horas_anomalas.clone(),
    })
}

/// Exactly the keys "0" … "23", once each.
fn by_hour<V: Copy + Default>(pairs: &Pairs<V>, field: &str) -> Result<[V; 24], (String, String)> {
    let mut out = [V::default(); 24];
    let mut seen = [false; 24];
    for (key, value) in &pairs.0 {
        let hour = key
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|&h| h < 24)
            .ok_or_else(|| {
                (
                    format!("{field}.{key}"),
                    format!("{key:?} is not an hour 0–23"),
                )
            })?;
        if seen[hour] {
            return Err((
                format!("{field}.{key}"),
                format!("hour {hour} appears twice"),
            ));
        }
        seen[hour] = true;
        out[hour] = *value;
    }
    if let Some(missing) = seen.iter().position(|s| !s) {
        return Err((field.to_owned(), format!("hour {missing} is missing")));
    }
    Ok(out)
}

fn by_weekday(pairs: &Pairs<f64>) -> Result<[(Weekday, f64); 7], (String, String)> {
    const DAYS: [(&str, Weekday); 7] = [
        ("LUNES", Weekday::Monday),
        ("MARTES", Weekday::Tuesday),
        ("MIERCOLES", Weekday::Wednesday),
        ("JUEVES", Weekday::Thursday),
        ("VIERNES", Weekday::Friday),
        ("SABADO", Weekday::Saturday),
        ("DOMINGO", Weekday::Sunday),
    ];
    let mut out: [Option<f64>; 7] = [None; 7];
    for (key, value) in &pairs.0 {
        let index = DAYS
            .iter()
            .position(|(name, _)| *name == name_key(key))
            .ok_or_else(|| {
                (
                    format!("factorDia.{key}"),
                    format!("{key:?} is not a day of the week (lunes … domingo)"),
                )
            })?;
        if out[index].replace(*value).is_some() {
            return Err((format!("factorDia.{key}"), format!("{key:?} appears twice")));
        }
    }
    let mut result = [(Weekday::Monday, 0.0); 7];
    for (i, (name, day)) in DAYS.iter().enumerate() {
        let value = out[i].ok_or_else(|| {
            (
                "factorDia".to_owned(),
                format!("{} is missing", name.to_lowercase()),
            )
        })?;
        result[i] = (*day, value);
    }
    Ok(result)
}

fn by_priority(pairs: &Pairs<u32>) -> Result<PriorityCounts, (String, String)> {
    let mut counts: [Option<u32>; 4] = [None; 4];
    for (key, value) in &pairs.0 {
        let index = match name_key(key).as_str() {
            "CRITICA" => 0,
            "ALTA" => 1,
            "MEDIA" => 2,
            "BAJA" => 3,
            _ => {
                return Err((
                    format!("porPrioridad.{key}"),
                    format!("{key:?} is not a priority (Critica, Alta, Media, Baja)"),
                ));
            }
        };
        if counts[index].replace(*value).is_some() {
            return Err((
                format!("porPrioridad.{key}"),
                format!("{key:?} appears twice"),
            ));
        }
    }
    let get = |i: usize| {
        counts[i].ok_or_else(|| {
            (
                "porPrioridad".to_owned(),
                format!("{} is missing", Priority::ALL[i].label_es()),
            )
        })
    };
    Ok(PriorityCounts {
        critical: get(0)?,
        high: get(1)?,
        medium: get(2)?,
        low: get(3)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hours(f: impl Fn(usize) -> String) -> String {
        (0..24)
            .map(|h| format!("\"{h}\": {}", f(h)))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn sample(localidades: &str, priorities: &str) -> String {
        format!(
            r#"{{"fuente":"Llamadas 123","periodo":{{"desde":"2026-06-01","hasta":"2026-07-01"}},"incidentes":250,
            "conteoPorHora":{{{counts}}},"curvaHoraCruda":{{{curve}}},"horasAnomalas":[17],
            "factorDia":{{"lunes":1.1,"martes":1.0,"miércoles":1.0,"jueves":1.0,"viernes":1.0,"sábado":0.9,"domingo":0.9}},
            "porLocalidad":{{{localidades}}},"porPrioridad":{{{priorities}}}}}"#,
            counts = hours(|h| if h == 9 { "20".into() } else { "10".into() }),
            curve = hours(|h| if h == 9 { "1.0".into() } else { "0.5".into() }),
        )
    }

    const PRIORITIES: &str = r#""Alta":100,"Critica":80,"Media":50,"Baja":20"#;

    #[test]
    fn the_profile_is_read_with_hours_priorities_and_localidades() {
        let text = sample(r#""KENNEDY":210,"USAQUÉN":40"#, PRIORITIES);
        let (d, warnings) = parse_demand("d.json", &text).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(d.days, 30);
        assert_eq!(d.incidents, 250);
        assert_eq!(d.hourly.total(), 250);
        assert_eq!(d.hourly.peak_hour(), 9);
        assert!((d.hourly.curve[9] - 1.0).abs() < 1e-12);
        assert!((d.hourly.share(9) - 20.0 / 250.0).abs() < 1e-12);
        assert!((d.mean_in_hour(9) - 20.0 / 30.0).abs() < 1e-12);
        assert_eq!(d.hourly.anomalous_hours, [17]);
        assert_eq!(d.priorities.count(Priority::Critical), 80);
        assert!((d.priorities.share(Priority::Low) - 20.0 / 250.0).abs() < 1e-12);
        assert_eq!(d.by_localidad[1], ("USAQUÉN".to_owned(), 40));
        let factors = d.weekday_factors.unwrap();
        assert_eq!(factors[2], (Weekday::Wednesday, 1.0));
        assert_eq!(factors[0], (Weekday::Monday, 1.1));
    }

    #[test]
    fn totals_that_disagree_are_warnings() {
        // porLocalidad sums to 240 while incidentes is 250.
        let text = sample(r#""KENNEDY":240"#, PRIORITIES);
        let (_, warnings) = parse_demand("d.json", &text).unwrap();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert_eq!(
            warnings[0].to_string(),
            "d.json: `incidentes` is 250 but `porLocalidad` counts sum to 240"
        );
    }

    #[test]
    fn a_missing_hour_or_an_hour_out_of_range_is_refused() {
        let text = sample(r#""KENNEDY":250"#, PRIORITIES).replace("\"23\": 10", "\"24\": 10");
        let err = parse_demand("d.json", &text).unwrap_err();
        assert_eq!(
            err.to_string(),
            "d.json: at `conteoPorHora.24`: \"24\" is not an hour 0–23"
        );
        let text = sample(r#""KENNEDY":250"#, PRIORITIES).replace(",\"23\": 10", "");
        let err = parse_demand("d.json", &text).unwrap_err();
        assert!(err.to_string().contains("hour 23 is missing"), "{err}");
    }

    #[test]
    fn unknown_or_missing_priorities_are_refused() {
        let text = sample(
            r#""KENNEDY":240"#,
            r#""Alta":100,"Urgente":80,"Media":40,"Baja":20"#,
        );
        let err = parse_demand("d.json", &text).unwrap_err();
        assert!(err.to_string().contains("porPrioridad.Urgente"), "{err}");
        let text = sample(r#""KENNEDY":240"#, r#""Alta":100,"Media":40,"Baja":20"#);
        let err = parse_demand("d.json", &text).unwrap_err();
        assert!(err.to_string().contains("Crítica is missing"), "{err}");
    }

    #[test]
    fn wrong_types_name_the_json_path() {
        let text = sample(r#""KENNEDY":"mucho""#, PRIORITIES);
        let err = parse_demand("d.json", &text).unwrap_err();
        assert!(
            matches!(&err, RegionError::Json { path, .. } if path.starts_with("porLocalidad")),
            "{err:?}"
        );
        let err = parse_demand("d.json", "{\"periodo\":").unwrap_err();
        assert!(matches!(err, RegionError::Json { .. }), "{err:?}");
        let text = sample(r#""KENNEDY":250"#, PRIORITIES).replace("2026-07-01", "julio");
        let err = parse_demand("d.json", &text).unwrap_err();
        assert!(err.to_string().contains("periodo.hasta"), "{err}");
    }
}
