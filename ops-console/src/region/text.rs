//! Text-level helpers shared by the region-pack parsers: decoding bytes (UTF-8, BOM,
//! Windows-1252, mojibake), SaluData numbers (comma decimals, `%`, thousands dots),
//! accent- and article-insensitive name keys, and a small `;`-separated table reader that
//! remembers the line of every record.

use std::borrow::Cow;

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

use super::{RegionError, RegionWarning};

/// How a file's bytes were turned into text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decoding {
    /// Valid UTF-8 (a leading byte-order mark, if any, was removed).
    Utf8,
    /// Not UTF-8: decoded as Windows-1252, the encoding of SaluData's original downloads.
    Windows1252,
}

/// Decodes a data file: UTF-8 (BOM removed) or, when the bytes are not UTF-8,
/// Windows-1252. Text that reads as UTF-8 mis-decoded once ("Ã¡" for "á", "Ã±" for "ñ") is
/// repaired. Every step other than plain UTF-8 is reported as a warning for `file`.
pub(crate) fn decode(file: &str, bytes: &[u8]) -> (String, Vec<RegionWarning>) {
    let mut warnings = Vec::new();
    let (text, decoding) = if let Ok(text) = std::str::from_utf8(bytes) {
        (text.to_owned(), Decoding::Utf8)
    } else {
        let (text, _, _) = encoding_rs::WINDOWS_1252.decode(bytes);
        (text.into_owned(), Decoding::Windows1252)
    };
    let mut text = match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_owned(),
        None => text,
    };
    if decoding == Decoding::Windows1252 {
        warnings.push(RegionWarning::DecodedAsWindows1252 {
            file: file.to_owned(),
        });
    }
    if let Some(repaired) = repair_mojibake(&text) {
        text = repaired;
        warnings.push(RegionWarning::MojibakeRepaired {
            file: file.to_owned(),
        });
    }
    (text, warnings)
}

/// Repairs text that is UTF-8 decoded as Windows-1252 once (the usual mojibake of Spanish
/// accents): `None` when the text shows no sign of it or re-encoding does not give valid
/// UTF-8 with fewer suspicious characters.
fn repair_mojibake(text: &str) -> Option<String> {
    // A plain substring search first: counting characters is slow on megabytes of GeoJSON
    // in unoptimised builds.
    if !text.contains('Ã') && !text.contains('Â') {
        return None;
    }
    let suspicious = |s: &str| s.matches(['Ã', 'Â']).count();
    let before = suspicious(text);
    let (bytes, _, unmappable) = encoding_rs::WINDOWS_1252.encode(text);
    if unmappable {
        return None;
    }
    let repaired = String::from_utf8(bytes.into_owned()).ok()?;
    (suspicious(&repaired) < before).then_some(repaired)
}

/// A key for comparing Spanish place and category names: accents removed (`Á`→`A`,
/// `Ñ`→`N`), upper case, punctuation as spaces, single spaces, and a leading article
/// (`LA`, `EL`, `LOS`, `LAS`) dropped when more words follow. So `La Candelaria`,
/// `CANDELARIA` and `candelaria` share a key, as do `USAQUÉN` and `USAQUEN`.
pub fn name_key(name: &str) -> String {
    let folded: String = name
        .nfd()
        .filter(|c| !is_combining_mark(*c))
        .collect::<String>()
        .to_uppercase();
    let words: Vec<&str> = folded
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let skip = usize::from(words.len() > 1 && matches!(words[0], "LA" | "EL" | "LOS" | "LAS"));
    words[skip..].join(" ")
}

/// A decimal number as SaluData writes it: comma (`-74,0571`) or dot (`-74.0571`) as the
/// decimal mark, an optional trailing `%`. `None` for anything else, including NaN and
/// infinities.
pub(crate) fn parse_decimal(text: &str) -> Option<f64> {
    let t = text.trim();
    let t = t.strip_suffix('%').unwrap_or(t).trim_end();
    if t.is_empty() || t.contains(',') && t.contains('.') {
        return None;
    }
    if !t
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b',' | b'.' | b'-' | b'+'))
    {
        return None;
    }
    let normalised: Cow<'_, str> = if t.contains(',') {
        Cow::Owned(t.replacen(',', ".", 1))
    } else {
        Cow::Borrowed(t)
    };
    normalised.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// A whole count, optionally with dots as thousands separators (`7.937.898`).
pub(crate) fn parse_count(text: &str) -> Option<u64> {
    let t = text.trim();
    let mut groups = t.split('.');
    let first = groups.next()?;
    if first.is_empty() || first.len() > 3 && t.contains('.') {
        return None;
    }
    let mut digits = String::from(first);
    for g in groups {
        if g.len() != 3 {
            return None;
        }
        digits.push_str(g);
    }
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// One record of a [`Table`] with the line it starts on (the header is line 1).
#[derive(Debug, Clone)]
pub(crate) struct Row {
    /// 1-based line in the file.
    pub(crate) line: u64,
    fields: Vec<String>,
}

impl Row {
    /// The trimmed field at `column` (empty when the record is short).
    pub(crate) fn get(&self, column: usize) -> &str {
        self.fields.get(column).map_or("", |s| s.trim())
    }

    /// Whether every field is empty (the `;;;;` padding rows SaluData appends).
    pub(crate) fn is_blank(&self) -> bool {
        self.fields.iter().all(|f| f.trim().is_empty())
    }

    /// All fields, trimmed, for duplicate detection.
    pub(crate) fn key(&self) -> Vec<&str> {
        self.fields.iter().map(|f| f.trim()).collect()
    }
}

/// A [`Row`] with the file it comes from, to read fields with errors that name the file,
/// the line and the field.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RowReader<'a> {
    /// The file, as named in errors.
    pub(crate) file: &'a str,
    /// The record.
    pub(crate) row: &'a Row,
}

impl<'a> RowReader<'a> {
    /// The record's line.
    pub(crate) fn line(&self) -> u64 {
        self.row.line
    }

    /// The trimmed field (possibly empty).
    pub(crate) fn optional(&self, column: usize) -> &'a str {
        self.row.get(column)
    }

    /// The trimmed field, which must not be empty.
    pub(crate) fn required(&self, column: usize, field: &str) -> Result<&'a str, RegionError> {
        let value = self.row.get(column);
        if value.is_empty() {
            return Err(RegionError::EmptyField {
                file: self.file.to_owned(),
                line: self.row.line,
                field: field.to_owned(),
            });
        }
        Ok(value)
    }

    /// A required decimal ([`parse_decimal`]).
    pub(crate) fn decimal(&self, column: usize, field: &str) -> Result<f64, RegionError> {
        let value = self.required(column, field)?;
        parse_decimal(value).ok_or_else(|| self.not_a_number(field, value))
    }

    /// A required whole count ([`parse_count`]).
    pub(crate) fn count(&self, column: usize, field: &str) -> Result<u64, RegionError> {
        let value = self.required(column, field)?;
        parse_count(value).ok_or_else(|| self.not_a_number(field, value))
    }

    /// The error for a field that should be a number.
    pub(crate) fn not_a_number(&self, field: &str, value: &str) -> RegionError {
        RegionError::NotANumber {
            file: self.file.to_owned(),
            line: self.row.line,
            field: field.to_owned(),
            value: value.to_owned(),
        }
    }

    /// The error for a value outside a closed set.
    pub(crate) fn unknown(
        &self,
        field: &'static str,
        value: &str,
        expected: &'static str,
    ) -> RegionError {
        RegionError::UnknownValue {
            file: self.file.to_owned(),
            line: self.row.line,
            field,
            value: value.to_owned(),
            expected,
        }
    }
}

/// A `;`-separated table with a header row, as SaluData publishes them. Quoted fields
/// (`"a ""b"""`) are unquoted; every record must have as many fields as the header; blank
/// rows are kept (callers skip them with [`Row::is_blank`]).
#[derive(Debug, Clone)]
pub(crate) struct Table {
    file: String,
    headers: Vec<String>,
    pub(crate) rows: Vec<Row>,
}

impl Table {
    /// Reads `text` (the contents of `file`, named in errors).
    pub(crate) fn parse(file: &str, text: &str) -> Result<Self, RegionError> {
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(b';')
            .has_headers(true)
            .flexible(false)
            .from_reader(text.as_bytes());
        let csv_error = |e: &csv::Error| {
            let line = e.position().map_or(1, csv::Position::line);
            let message = match e.kind() {
                csv::ErrorKind::UnequalLengths {
                    expected_len, len, ..
                } => format!("the record has {len} fields, the header has {expected_len}"),
                _ => e.to_string(),
            };
            RegionError::Csv {
                file: file.to_owned(),
                line,
                message,
            }
        };
        let headers: Vec<String> = reader
            .headers()
            .map_err(|e| csv_error(&e))?
            .iter()
            .map(|h| h.trim().to_owned())
            .collect();
        if headers.iter().all(String::is_empty) {
            return Err(RegionError::Csv {
                file: file.to_owned(),
                line: 1,
                message: "the file is empty or has no header row".to_owned(),
            });
        }
        let mut rows = Vec::new();
        for record in reader.records() {
            let record = record.map_err(|e| csv_error(&e))?;
            let line = record.position().map_or(0, csv::Position::line);
            rows.push(Row {
                line,
                fields: record.iter().map(str::to_owned).collect(),
            });
        }
        Ok(Self {
            file: file.to_owned(),
            headers,
            rows,
        })
    }

    /// The index of the column whose header has the same [`name_key`] as `name`.
    pub(crate) fn column(&self, name: &'static str) -> Result<usize, RegionError> {
        let key = name_key(name);
        self.headers
            .iter()
            .position(|h| name_key(h) == key)
            .ok_or_else(|| RegionError::MissingColumn {
                file: self.file.clone(),
                column: name,
                found: self.headers.join(", "),
            })
    }

    /// The headers, trimmed.
    pub(crate) fn headers(&self) -> &[String] {
        &self.headers
    }

    /// The non-blank records, each with the file for its errors.
    pub(crate) fn records(&self) -> impl Iterator<Item = RowReader<'_>> {
        self.rows
            .iter()
            .filter(|r| !r.is_blank())
            .map(|row| RowReader {
                file: &self.file,
                row,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_keys_ignore_accents_case_punctuation_and_a_leading_article() {
        assert_eq!(name_key("USAQUÉN"), name_key("Usaquen"));
        assert_eq!(name_key("LA CANDELARIA"), "CANDELARIA");
        assert_eq!(name_key("Los Mártires"), name_key("LOS MARTIRES"));
        assert_eq!(name_key("ANTONIO NARIÑO"), "ANTONIO NARINO");
        assert_eq!(name_key("  Ciudad   Bolívar "), "CIUDAD BOLIVAR");
        assert_eq!(name_key("Crítica"), "CRITICA");
        // A lone article is a name, not an article.
        assert_eq!(name_key("La"), "LA");
        assert_ne!(name_key("Bosa"), name_key("Suba"));
    }

    #[test]
    fn decimals_accept_comma_or_dot_and_a_percent_sign_but_nothing_else() {
        assert_eq!(parse_decimal("-74,05710014"), Some(-74.057_100_14));
        assert_eq!(parse_decimal("4.651620869"), Some(4.651_620_869));
        assert_eq!(parse_decimal("73,27%"), Some(73.27));
        assert_eq!(parse_decimal(" 110,41 % "), Some(110.41));
        assert_eq!(parse_decimal(""), None);
        assert_eq!(parse_decimal("abc"), None);
        assert_eq!(parse_decimal("NaN"), None);
        assert_eq!(parse_decimal("inf"), None);
        assert_eq!(parse_decimal("1.234,5"), None);
        assert_eq!(parse_decimal("-74,05,71"), None);
    }

    #[test]
    fn counts_accept_thousands_dots_only_in_groups_of_three() {
        assert_eq!(parse_count("952"), Some(952));
        assert_eq!(parse_count("7.937.898"), Some(7_937_898));
        assert_eq!(parse_count("7.93"), None);
        assert_eq!(parse_count("7937.898"), None);
        assert_eq!(parse_count("-3"), None);
        assert_eq!(parse_count(""), None);
    }

    #[test]
    fn decoding_strips_a_bom_and_falls_back_to_windows_1252_with_a_warning() {
        let (text, warnings) = decode("a.csv", "\u{feff}Año;Mes".as_bytes());
        assert_eq!(text, "Año;Mes");
        assert!(warnings.is_empty());

        // "Año;Bogotá" in Windows-1252: ñ = 0xF1, á = 0xE1.
        let (text, warnings) = decode("b.csv", b"A\xf1o;Bogot\xe1");
        assert_eq!(text, "Año;Bogotá");
        assert_eq!(
            warnings,
            vec![RegionWarning::DecodedAsWindows1252 {
                file: "b.csv".into()
            }]
        );
    }

    #[test]
    fn mojibake_is_repaired_and_reported() {
        let original = "USAQUÉN;Ciudad Bolívar;Nariño;ÁREA";
        // UTF-8 bytes read as Windows-1252: the usual mojibake ("Ã‰", "Ã­", "Ã±", "Ã\u{81}").
        let (garbled, _, _) = encoding_rs::WINDOWS_1252.decode(original.as_bytes());
        assert!(garbled.contains("Ã±"), "{garbled}");
        let (text, warnings) = decode("c.csv", garbled.as_bytes());
        assert_eq!(text, original);
        assert_eq!(
            warnings,
            vec![RegionWarning::MojibakeRepaired {
                file: "c.csv".into()
            }]
        );
    }

    #[test]
    fn tables_report_the_line_of_a_short_record() {
        let err = Table::parse("t.csv", "a;b;c\n1;2;3\n4;5\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "t.csv: line 3: the record has 2 fields, the header has 3"
        );
        let table = Table::parse("t.csv", "a;\"b \"\"x\"\"\";c \n1;2;3\n;;\n").unwrap();
        assert_eq!(table.headers(), ["a", "b \"x\"", "c"]);
        assert_eq!(table.rows[0].line, 2);
        assert!(table.rows[1].is_blank());
        assert_eq!(table.column("C").unwrap(), 2);
        let err = table.column("Latitud").unwrap_err();
        assert!(
            err.to_string().contains("missing column `Latitud`"),
            "{err}"
        );
    }
}
