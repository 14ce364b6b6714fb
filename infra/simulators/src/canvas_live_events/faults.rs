//! Every class of bad delivery coursewire must refuse, with the answer it must give: forged
//! and tampered tokens, unknown critical header extensions and claims of the wrong type (401),
//! oversized bodies (413), malformed JSON or envelopes from an
//! authenticated sender (400), and malformed SQS messages (recorded as rejects, removed from
//! the queue). The demo and the end-to-end tests send the same list.

use super::{EmitError, Emitter, KeyRing};
use serde_json::{Value, json};

/// How a bad delivery reaches coursewire.
#[derive(Debug, Clone)]
pub enum FaultDelivery {
    Https {
        body: Vec<u8>,
        content_type: &'static str,
    },
    Sqs {
        body: String,
        attributes: Vec<(&'static str, String)>,
    },
}

#[derive(Debug, Clone)]
pub struct Fault {
    /// What is wrong, for people.
    pub name: &'static str,
    pub delivery: FaultDelivery,
    /// The HTTP status coursewire must answer (HTTPS only).
    pub expect_status: Option<u16>,
    /// The reason code coursewire must report (metrics dimension / error code).
    pub expect_reason: &'static str,
}

const JWT: &str = "application/jwt";

/// The rejection classes, built around a valid event `sample` (a Canvas-format payload).
/// `max_event_bytes` is the receiver's size limit.
pub fn rejection_cases(
    ring: &KeyRing,
    emitter: &Emitter,
    sample: &Value,
    max_event_bytes: usize,
) -> Result<Vec<Fault>, EmitError> {
    let now = chrono::Utc::now().timestamp();
    let claims = emitter.claims(sample, now)?;
    let https = |name, body: String, status, reason| Fault {
        name,
        delivery: FaultDelivery::Https {
            body: body.into_bytes(),
            content_type: JWT,
        },
        expect_status: Some(status),
        expect_reason: reason,
    };

    let mut wrong_issuer = claims.clone();
    wrong_issuer["iss"] = json!("https://not-canvas.example");
    let mut malformed_envelope = claims.clone();
    if let Some(map) = malformed_envelope.as_object_mut() {
        map.remove("metadata");
        map.remove("body");
        map.insert("event".into(), json!("not a Canvas envelope"));
    }
    // A correctly signed token whose claims are cut short.
    let truncated_claims = {
        let text = claims.to_string();
        let cut = &text[..text.len() / 2];
        ring.sign_raw_claims(cut)
    };
    let mut exp_as_text = claims.clone();
    exp_as_text["exp"] = json!((now + 300).to_string());
    let mut nbf_as_text = claims.clone();
    nbf_as_text["nbf"] = json!("yesterday");
    let sample_json = sample.to_string();
    let event_name = sample
        .pointer("/metadata/event_name")
        .and_then(Value::as_str)
        .unwrap_or("course_updated")
        .to_string();
    let event_time = sample
        .pointer("/metadata/event_time")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();

    Ok(vec![
        https(
            "alg none (unsigned token)",
            ring.forge_alg_none(&claims),
            401,
            "algorithm_not_allowed",
        ),
        https(
            "HS256 signed with Canvas's public key",
            ring.forge_hs256_with_public_key(&claims),
            401,
            "algorithm_not_allowed",
        ),
        https(
            "kid not in Canvas's JWKS",
            ring.forge_unknown_kid(&claims),
            401,
            "unknown_kid",
        ),
        https(
            "payload tampered after signing",
            KeyRing::tamper(&ring.sign(&claims)),
            401,
            "bad_signature",
        ),
        https(
            "expired token",
            ring.sign(&emitter.claims(sample, now - 3600)?),
            401,
            "expired",
        ),
        https(
            "wrong issuer",
            ring.sign(&wrong_issuer),
            401,
            "wrong_issuer",
        ),
        https(
            "crit header naming an extension coursewire does not understand",
            ring.sign_with_critical_extension(&claims),
            401,
            "unsupported_crit",
        ),
        https(
            "exp claim that is a string, not a NumericDate",
            ring.sign(&exp_as_text),
            401,
            "invalid_claim_type",
        ),
        https(
            "nbf claim that is not a NumericDate",
            ring.sign(&nbf_as_text),
            401,
            "invalid_claim_type",
        ),
        https(
            "signed claims that are a JSON array, not an object",
            ring.sign(&json!([claims.clone()])),
            401,
            "invalid_claims",
        ),
        https(
            "unsigned JSON while signing is required",
            sample_json.clone(),
            401,
            "unsigned",
        ),
        Fault {
            name: "oversized body",
            delivery: FaultDelivery::Https {
                body: vec![b'a'; max_event_bytes + 1],
                content_type: JWT,
            },
            expect_status: Some(413),
            expect_reason: "payload_too_large",
        },
        https(
            "signed token with truncated JSON claims",
            truncated_claims,
            400,
            "invalid_json",
        ),
        https(
            "signed token with a malformed envelope",
            ring.sign(&malformed_envelope),
            400,
            "unrecognised_envelope",
        ),
        Fault {
            name: "SQS message with truncated JSON",
            delivery: FaultDelivery::Sqs {
                body: sample_json[..sample_json.len() / 2].to_string(),
                attributes: vec![
                    ("event_name", event_name.clone()),
                    ("event_time", event_time.clone()),
                ],
            },
            expect_status: None,
            expect_reason: "invalid_json",
        },
        Fault {
            name: "SQS message that is not a live event",
            delivery: FaultDelivery::Sqs {
                body: json!({"hello": "world"}).to_string(),
                attributes: vec![],
            },
            expect_status: None,
            expect_reason: "unrecognised_envelope",
        },
        Fault {
            name: "SQS message with an unreadable event time",
            delivery: FaultDelivery::Sqs {
                body: {
                    let mut bad = sample.clone();
                    bad["metadata"]["event_time"] = json!("last Tuesday");
                    bad.to_string()
                },
                attributes: vec![("event_name", event_name)],
            },
            expect_status: None,
            expect_reason: "invalid_event_time",
        },
    ])
}

impl Emitter {
    /// Sends one fault; returns the HTTP status for HTTPS faults.
    pub async fn send_fault(&self, fault: &Fault) -> Result<Option<u16>, EmitError> {
        match &fault.delivery {
            FaultDelivery::Https { body, content_type } => {
                let delivered = self.send_raw_https(body.clone(), content_type).await?;
                Ok(delivered.status())
            }
            FaultDelivery::Sqs { body, attributes } => {
                let attrs: Vec<(&str, &str)> =
                    attributes.iter().map(|(k, v)| (*k, v.as_str())).collect();
                self.send_raw_sqs(body.clone(), &attrs).await?;
                Ok(None)
            }
        }
    }
}
