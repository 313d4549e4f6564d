//! The billing side of a closed transfer: a RIPS document (Resolución 2275 de 2023, JSON)
//! with the one service the CRUE can vouch for, for the patient's EPS.
//!
//! RIPS is the provider's (the ambulance operator's) record that supports its electronic
//! invoice. The regulation centre does not invoice, so it cannot fill every field: it knows
//! the patient as the caller described them, the CRUE authorisation code, the kind of
//! transfer and when it happened. [`TransferRips`] carries a RIPS document with exactly
//! those fields set, `null` everywhere else, and lists the missing fields by their JSON path
//! in [`TransferRips::to_complete`], so that the EPS can match the provider's invoice to
//! the regulated transfer and see what the provider must still supply.
//!
//! The service is an `otrosServicios` entry with `tipoOS` "02" (traslados). CUPS codes, as
//! seen in use (to be confirmed against the official CUPS table): 601T01 basic primary,
//! 602T01 medicalised primary, 601T02 / 602T02 the secondary versions.

use serde::{Deserialize, Serialize};

use crate::fleet::UnitKind;
use crate::model::{DocumentKind, Transfer, TransferKind};

/// `tipoOS` of transfers (traslados).
pub const TIPO_OS_TRASLADOS: &str = "02";

/// The CUPS code and name of a transfer by unit type and kind.
pub fn cups(unit: UnitKind, kind: TransferKind) -> (&'static str, &'static str) {
    match (unit, kind) {
        (UnitKind::Tab, TransferKind::Primary) => {
            ("601T01", "Traslado asistencial básico primario")
        }
        (UnitKind::Tam, TransferKind::Primary) => {
            ("602T01", "Traslado asistencial medicalizado primario")
        }
        (UnitKind::Tab, TransferKind::Secondary) => {
            ("601T02", "Traslado asistencial básico secundario")
        }
        (UnitKind::Tam, TransferKind::Secondary) => {
            ("602T02", "Traslado asistencial medicalizado secundario")
        }
    }
}

/// A RIPS document for one transfer, and what is left for the provider to fill.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferRips {
    /// The RIPS document (`null` where the CRUE does not know the value).
    pub rips: Rips,
    /// JSON paths (from the document's root) of the required fields left `null`.
    pub to_complete: Vec<String>,
}

/// The root of a RIPS JSON document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Rips {
    /// NIT of the provider that invoices.
    pub num_documento_id_obligado: Option<String>,
    /// Invoice number.
    pub num_factura: Option<String>,
    /// Credit/debit note type.
    pub tipo_nota: Option<String>,
    /// Credit/debit note number.
    pub num_nota: Option<String>,
    /// The users (patients) served.
    pub usuarios: Vec<RipsUsuario>,
}

/// A patient in a RIPS document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RipsUsuario {
    /// Identity document type (RIPS codes: CC, TI, RC, … AS/MS without identification).
    pub tipo_documento_identificacion: Option<String>,
    /// Identity document number.
    pub num_documento_identificacion: Option<String>,
    /// User type (affiliation regime and role).
    pub tipo_usuario: Option<String>,
    /// Date of birth (`AAAA-MM-DD`).
    pub fecha_nacimiento: Option<String>,
    /// Sex (left `null`: see [`TransferRips::for_transfer`]).
    pub cod_sexo: Option<String>,
    /// Country of residence (ISO 3166 numeric).
    pub cod_pais_residencia: Option<String>,
    /// Municipality of residence (DIVIPOLA).
    pub cod_municipio_residencia: Option<String>,
    /// Urban/rural zone of residence.
    pub cod_zona_territorial_residencia: Option<String>,
    /// Work incapacity (`SI`/`NO`).
    pub incapacidad: Option<String>,
    /// Position in the document, from 1.
    pub consecutivo: u32,
    /// Country of origin.
    pub cod_pais_origen: Option<String>,
    /// The services.
    pub servicios: RipsServicios,
}

/// The services of a patient; transfers are `otrosServicios`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RipsServicios {
    /// Other services (transfers among them).
    pub otros_servicios: Vec<RipsOtroServicio>,
}

/// An `otrosServicios` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RipsOtroServicio {
    /// REPS code of the provider.
    pub cod_prestador: Option<String>,
    /// Authorisation number: the CRUE authorisation code.
    pub num_autorizacion: Option<String>,
    /// MIPRES prescription id (not used for transfers).
    #[serde(rename = "idMIPRES")]
    pub id_mipres: Option<String>,
    /// When the service was provided (`AAAA-MM-DD HH:MM`, Bogotá time): departure with the
    /// patient.
    pub fecha_suministro_tecnologia: Option<String>,
    /// Service type: "02" traslados.
    #[serde(rename = "tipoOS")]
    pub tipo_os: String,
    /// CUPS code.
    pub cod_tecnologia_salud: String,
    /// CUPS name.
    pub nom_tecnologia_salud: String,
    /// Quantity.
    #[serde(rename = "cantidadOS")]
    pub cantidad_os: u32,
    /// Identity document type of the professional in charge.
    pub tipo_documento_identificacion: Option<String>,
    /// Identity document number of the professional in charge.
    pub num_documento_identificacion: Option<String>,
    /// Unit value.
    #[serde(rename = "vrUnitOS")]
    pub vr_unit_os: Option<u64>,
    /// Total value.
    pub vr_servicio: Option<u64>,
    /// Co-payment concept.
    pub concepto_recaudo: Option<String>,
    /// Co-payment value.
    pub valor_pago_moderador: Option<u64>,
    /// Invoice of the co-payment.
    #[serde(rename = "numFEVPagoModerador")]
    pub num_fev_pago_moderador: Option<String>,
    /// Position in the list, from 1.
    pub consecutivo: u32,
}

/// `AAAA-MM-DD HH:MM` in Bogotá time, as RIPS writes dates with time.
fn rips_datetime(at: maps::Timestamp) -> String {
    let text = at.to_bogota_rfc3339(); // 2026-11-23T07:30:00-05:00
    format!("{} {}", &text[..10], &text[11..16])
}

impl TransferRips {
    /// The RIPS document the CRUE can vouch for, for a closed transfer.
    pub fn for_transfer(transfer: &Transfer) -> Self {
        let (code, name) = cups(transfer.unit_kind, transfer.kind);
        let patient = transfer.patient.as_ref();
        let document = patient
            .and_then(|p| p.document.as_ref())
            .map(crate::privacy::Sensitive::expose);
        // Without a document RIPS uses AS (adult) / MS (minor) without identification.
        let document_kind = document.map(|d| d.kind).or_else(|| {
            patient.and_then(|p| p.age_years).map(|age| {
                if age >= 18.0 {
                    DocumentKind::AS
                } else {
                    DocumentKind::MS
                }
            })
        });
        let service = RipsOtroServicio {
            cod_prestador: None,
            num_autorizacion: Some(transfer.code.as_str().to_owned()),
            id_mipres: None,
            fecha_suministro_tecnologia: Some(rips_datetime(transfer.times.departed)),
            tipo_os: TIPO_OS_TRASLADOS.to_owned(),
            cod_tecnologia_salud: code.to_owned(),
            nom_tecnologia_salud: name.to_owned(),
            cantidad_os: 1,
            tipo_documento_identificacion: None,
            num_documento_identificacion: None,
            vr_unit_os: None,
            vr_servicio: None,
            concepto_recaudo: None,
            valor_pago_moderador: None,
            num_fev_pago_moderador: None,
            consecutivo: 1,
        };
        let usuario = RipsUsuario {
            tipo_documento_identificacion: document_kind.map(|k| k.code().to_owned()),
            num_documento_identificacion: document.map(|d| d.number.clone()),
            tipo_usuario: None,
            fecha_nacimiento: None,
            // Left to the provider: the code table of `codSexo` could not be confirmed
            // here, and a wrong letter would invert the patient's sex. The caller-reported
            // sex travels in the transfer record beside this document.
            cod_sexo: None,
            cod_pais_residencia: None,
            cod_municipio_residencia: None,
            cod_zona_territorial_residencia: None,
            incapacidad: None,
            consecutivo: 1,
            cod_pais_origen: None,
            servicios: RipsServicios {
                otros_servicios: vec![service],
            },
        };
        let rips = Rips {
            num_documento_id_obligado: None,
            num_factura: None,
            tipo_nota: None,
            num_nota: None,
            usuarios: vec![usuario],
        };
        let to_complete = rips.missing();
        Self { rips, to_complete }
    }
}

impl Rips {
    /// JSON paths of the required fields that are `null` (the note fields are optional).
    fn missing(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut need = |present: bool, path: String| {
            if !present {
                out.push(path);
            }
        };
        need(
            self.num_documento_id_obligado.is_some(),
            "numDocumentoIdObligado".into(),
        );
        need(self.num_factura.is_some(), "numFactura".into());
        for (i, u) in self.usuarios.iter().enumerate() {
            let at = |field: &str| format!("usuarios[{i}].{field}");
            need(
                u.tipo_documento_identificacion.is_some(),
                at("tipoDocumentoIdentificacion"),
            );
            need(
                u.num_documento_identificacion.is_some(),
                at("numDocumentoIdentificacion"),
            );
            need(u.tipo_usuario.is_some(), at("tipoUsuario"));
            need(u.fecha_nacimiento.is_some(), at("fechaNacimiento"));
            need(u.cod_sexo.is_some(), at("codSexo"));
            need(u.cod_pais_residencia.is_some(), at("codPaisResidencia"));
            need(
                u.cod_municipio_residencia.is_some(),
                at("codMunicipioResidencia"),
            );
            need(
                u.cod_zona_territorial_residencia.is_some(),
                at("codZonaTerritorialResidencia"),
            );
            need(u.incapacidad.is_some(), at("incapacidad"));
            need(u.cod_pais_origen.is_some(), at("codPaisOrigen"));
            for (j, s) in u.servicios.otros_servicios.iter().enumerate() {
                let at =
                    |field: &str| format!("usuarios[{i}].servicios.otrosServicios[{j}].{field}");
                need(s.cod_prestador.is_some(), at("codPrestador"));
                need(s.num_autorizacion.is_some(), at("numAutorizacion"));
                need(
                    s.fecha_suministro_tecnologia.is_some(),
                    at("fechaSuministroTecnologia"),
                );
                need(
                    s.tipo_documento_identificacion.is_some(),
                    at("tipoDocumentoIdentificacion"),
                );
                need(
                    s.num_documento_identificacion.is_some(),
                    at("numDocumentoIdentificacion"),
                );
                need(s.vr_unit_os.is_some(), at("vrUnitOS"));
                need(s.vr_servicio.is_some(), at("vrServicio"));
                need(s.concepto_recaudo.is_some(), at("conceptoRecaudo"));
                need(s.valor_pago_moderador.is_some(), at("valorPagoModerador"));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use maps::{Meters, Timestamp};

    use super::*;
    use crate::crue::AuthorizationCode;
    use crate::ids::{EpsCode, FacilityId, IncidentId, TransferId, UnitId};
    use crate::model::{EpsAffiliation, Patient, PatientDocument, Regime, Sex, TransferTimes};
    use crate::privacy::Sensitive;

    fn transfer(unit_kind: UnitKind, kind: TransferKind, patient: Option<Patient>) -> Transfer {
        let departed = Timestamp::parse_rfc3339("2026-11-23T12:42:10Z").unwrap();
        Transfer {
            id: TransferId::from_number(7),
            code: AuthorizationCode::issue_from(41, 2026).unwrap(),
            kind,
            incident: IncidentId::from_number(3),
            unit: UnitId::new("TAM-0001").unwrap(),
            unit_kind,
            provider: "Subred Norte".into(),
            crew: vec![Sensitive::new("Dra. Pérez".into())],
            origin: None,
            origin_facility: None,
            destination: FacilityId::new("ED-013").unwrap(),
            patient,
            times: TransferTimes {
                requested: None,
                assigned: None,
                en_route: None,
                on_scene: None,
                departed,
                arrived: None,
                handed_over: None,
            },
            distance_to_scene: Meters::new(2_000.0),
            distance_with_patient: Meters::new(3_500.0),
            completed: true,
        }
    }

    fn patient(document: Option<(DocumentKind, &str)>, age: Option<f64>) -> Patient {
        Patient {
            document: document.map(|(kind, number)| {
                Sensitive::new(PatientDocument {
                    kind,
                    number: number.into(),
                })
            }),
            name: None,
            age_years: age,
            sex: Some(Sex::F),
            eps: EpsAffiliation::Affiliated {
                eps: EpsCode::new("EPS037").unwrap(),
                regime: Regime::Contributory,
            },
        }
    }

    #[test]
    fn the_cups_code_follows_unit_type_and_transfer_kind() {
        assert_eq!(cups(UnitKind::Tab, TransferKind::Primary).0, "601T01");
        assert_eq!(cups(UnitKind::Tam, TransferKind::Primary).0, "602T01");
        assert_eq!(cups(UnitKind::Tab, TransferKind::Secondary).0, "601T02");
        assert_eq!(cups(UnitKind::Tam, TransferKind::Secondary).0, "602T02");
    }

    #[test]
    fn the_document_has_the_service_the_crue_vouches_for() {
        let t = transfer(
            UnitKind::Tam,
            TransferKind::Primary,
            Some(patient(Some((DocumentKind::CC, "79123456")), Some(58.0))),
        );
        let doc = TransferRips::for_transfer(&t);
        let json = serde_json::to_value(&doc.rips).unwrap();
        let user = &json["usuarios"][0];
        assert_eq!(user["tipoDocumentoIdentificacion"], "CC");
        assert_eq!(user["numDocumentoIdentificacion"], "79123456");
        assert!(user["codSexo"].is_null());
        assert_eq!(user["consecutivo"], 1);
        let service = &user["servicios"]["otrosServicios"][0];
        assert_eq!(service["numAutorizacion"], t.code.as_str());
        assert_eq!(service["tipoOS"], "02");
        assert_eq!(service["codTecnologiaSalud"], "602T01");
        assert_eq!(service["cantidadOS"], 1);
        // 12:42 UTC is 07:42 in Bogotá.
        assert_eq!(service["fechaSuministroTecnologia"], "2026-11-23 07:42");
        assert!(service["idMIPRES"].is_null());
        assert!(service["vrUnitOS"].is_null());
        assert!(json["numFactura"].is_null());
        // Every null required field is listed; known ones are not.
        assert!(doc.to_complete.contains(&"numFactura".to_owned()));
        assert!(
            doc.to_complete
                .contains(&"usuarios[0].servicios.otrosServicios[0].codPrestador".to_owned())
        );
        assert!(
            !doc.to_complete
                .iter()
                .any(|p| p.ends_with("numAutorizacion"))
        );
        assert!(
            !doc.to_complete
                .contains(&"usuarios[0].numDocumentoIdentificacion".to_owned())
        );
    }

    #[test]
    fn a_patient_without_a_document_is_coded_by_age_or_left_for_the_provider() {
        let adult = transfer(
            UnitKind::Tab,
            TransferKind::Secondary,
            Some(patient(None, Some(40.0))),
        );
        let doc = TransferRips::for_transfer(&adult);
        assert_eq!(
            doc.rips.usuarios[0]
                .tipo_documento_identificacion
                .as_deref(),
            Some("AS")
        );
        assert!(
            doc.to_complete
                .contains(&"usuarios[0].numDocumentoIdentificacion".to_owned())
        );
        let child = transfer(
            UnitKind::Tab,
            TransferKind::Primary,
            Some(patient(None, Some(4.0))),
        );
        assert_eq!(
            TransferRips::for_transfer(&child).rips.usuarios[0]
                .tipo_documento_identificacion
                .as_deref(),
            Some("MS")
        );
        let nobody =
            TransferRips::for_transfer(&transfer(UnitKind::Tab, TransferKind::Primary, None));
        assert!(
            nobody
                .to_complete
                .contains(&"usuarios[0].tipoDocumentoIdentificacion".to_owned())
        );
        assert!(
            nobody
                .to_complete
                .contains(&"usuarios[0].codSexo".to_owned())
        );
    }
}
