//! Verifier and key-cache behaviour against tokens signed here with aws-lc-rs.

use super::*;
use async_trait::async_trait;
use aws_lc_rs::rsa::{KeyPair, KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use serde_json::json;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

const ISSUER: &str = "https://canvas.test";

struct Signer {
    kid: String,
    key: KeyPair,
}

impl Signer {
    fn new(kid: &str) -> Self {
        Self {
            kid: kid.into(),
            key: KeyPair::generate(KeySize::Rsa2048).unwrap(),
        }
    }

    fn jwk(&self) -> serde_json::Value {
        let components: PublicKeyComponents<Vec<u8>> = self.key.public_key().into();
        json!({"kty": "RSA", "kid": self.kid, "use": "sig", "alg": "RS256",
               "n": URL_SAFE_NO_PAD.encode(&components.n), "e": URL_SAFE_NO_PAD.encode(&components.e)})
    }

    fn sign_with_header(&self, header: serde_json::Value, claims: &serde_json::Value) -> String {
        self.sign_segments(&header.to_string(), &claims.to_string())
    }

    /// Signs a header and claims text verbatim (valid JSON or not).
    fn sign_segments(&self, header: &str, claims: &str) -> String {
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        );
        let mut signature = vec![0; self.key.public_modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &aws_lc_rs::rand::SystemRandom::new(),
                signing_input.as_bytes(),
                &mut signature,
            )
            .unwrap();
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    fn sign(&self, claims: &serde_json::Value) -> String {
        self.sign_with_header(
            json!({"alg": "RS256", "typ": "JWT", "kid": self.kid}),
            claims,
        )
    }
}

/// A JWKS source whose keys tests can swap, counting fetches.
struct FakeSource {
    keys: Mutex<Result<serde_json::Value, String>>,
    fetches: AtomicUsize,
}

impl FakeSource {
    fn new(signers: &[&Signer]) -> Arc<Self> {
        let source = Arc::new(Self {
            keys: Mutex::new(Err(String::new())),
            fetches: AtomicUsize::new(0),
        });
        source.publish(signers);
        source
    }
    fn publish(&self, signers: &[&Signer]) {
        let keys: Vec<_> = signers.iter().map(|s| s.jwk()).collect();
        *self.keys.lock().unwrap() = Ok(json!({ "keys": keys }));
    }
    fn fail(&self) {
        *self.keys.lock().unwrap() = Err("connection refused".into());
    }
    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl JwksSource for FakeSource {
    async fn fetch(&self) -> Result<JwkSet, JwksError> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(5)).await;
        let keys = self
            .keys
            .lock()
            .unwrap()
            .clone()
            .map_err(JwksError::Fetch)?;
        serde_json::from_value(keys).map_err(|e| JwksError::Invalid(e.to_string()))
    }
}

fn verifier(source: Arc<FakeSource>, min_refetch: Duration) -> EventVerifier {
    let cache = KeyCache::new(
        source,
        KeyCacheSettings {
            min_refetch,
            max_age: Duration::from_secs(3600),
        },
    );
    EventVerifier::new(Arc::new(cache), ISSUER, 30)
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn event_claims() -> serde_json::Value {
    json!({
        "iss": ISSUER, "iat": now(), "exp": now() + 300,
        "metadata": {"event_name": "course_updated", "event_time": "2026-01-01T00:00:00.000Z"},
        "body": {"course_id": "1"}
    })
}

#[tokio::test]
async fn a_canvas_signed_event_verifies() {
    let signer = Signer::new("2026-11-a");
    let verifier = verifier(FakeSource::new(&[&signer]), Duration::from_secs(300));
    let claims = verifier
        .verify(&signer.sign(&event_claims()))
        .await
        .unwrap();
    assert_eq!(claims["body"]["course_id"], "1");
}

#[tokio::test]
async fn algorithm_confusion_is_refused_before_any_key_is_used() {
    let signer = Signer::new("k1");
    let source = FakeSource::new(&[&signer]);
    let verifier = verifier(source.clone(), Duration::from_secs(300));
    let claims = URL_SAFE_NO_PAD.encode(event_claims().to_string());

    let none = format!(
        "{}.{claims}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","kid":"k1"}"#)
    );
    assert_eq!(
        verifier.verify(&none).await,
        Err(VerifyError::AlgorithmNotAllowed("none".into()))
    );

    // HS256 keyed with the public key: the classic confusion attack.
    let public_pem = signer.jwk()["n"].as_str().unwrap().to_string();
    let mut hs = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    hs.kid = Some("k1".into());
    let forged = jsonwebtoken::encode(
        &hs,
        &event_claims(),
        &jsonwebtoken::EncodingKey::from_secret(public_pem.as_bytes()),
    )
    .unwrap();
    assert_eq!(
        verifier.verify(&forged).await,
        Err(VerifyError::AlgorithmNotAllowed("HS256".into()))
    );

    let no_alg = format!(
        "{}.{claims}.c2ln",
        URL_SAFE_NO_PAD.encode(r#"{"kid":"k1"}"#)
    );
    assert!(matches!(
        verifier.verify(&no_alg).await,
        Err(VerifyError::AlgorithmNotAllowed(_))
    ));
    assert_eq!(source.fetches(), 0, "no key lookup for refused algorithms");
}

#[tokio::test]
async fn kid_is_required_and_must_be_known() {
    let signer = Signer::new("k1");
    let verifier = verifier(FakeSource::new(&[&signer]), Duration::from_secs(300));
    let no_kid = signer.sign_with_header(json!({"alg": "RS256"}), &event_claims());
    assert_eq!(verifier.verify(&no_kid).await, Err(VerifyError::MissingKid));
    let stranger = Signer::new("not-canvas");
    assert_eq!(
        verifier.verify(&stranger.sign(&event_claims())).await,
        Err(VerifyError::UnknownKid)
    );
}

#[tokio::test]
async fn forged_kids_cannot_make_us_hammer_the_jwks_url() {
    let signer = Signer::new("k1");
    let source = FakeSource::new(&[&signer]);
    let verifier = verifier(source.clone(), Duration::from_secs(300));
    assert!(verifier.verify(&signer.sign(&event_claims())).await.is_ok());
    for i in 0..50 {
        let forged = signer.sign_with_header(
            json!({"alg": "RS256", "kid": format!("forged-{i}")}),
            &event_claims(),
        );
        assert_eq!(verifier.verify(&forged).await, Err(VerifyError::UnknownKid));
    }
    assert_eq!(
        source.fetches(),
        1,
        "unknown kids within the refetch interval must not re-fetch"
    );
}

#[tokio::test]
async fn a_rotated_key_is_picked_up_after_the_refetch_interval() {
    let old = Signer::new("2026-10");
    let new = Signer::new("2026-11");
    let source = FakeSource::new(&[&old]);
    let verifier = verifier(source.clone(), Duration::from_millis(100));
    assert!(verifier.verify(&old.sign(&event_claims())).await.is_ok());

    source.publish(&[&old, &new]);
    // Within the interval the new kid is unknown; after it one fetch finds it.
    assert_eq!(
        verifier.verify(&new.sign(&event_claims())).await,
        Err(VerifyError::UnknownKid)
    );
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(verifier.verify(&new.sign(&event_claims())).await.is_ok());
    assert!(
        verifier.verify(&old.sign(&event_claims())).await.is_ok(),
        "previous key still valid"
    );
    assert_eq!(source.fetches(), 2);
}

#[tokio::test]
async fn concurrent_misses_share_one_fetch() {
    let signer = Signer::new("k1");
    let source = FakeSource::new(&[&signer]);
    let verifier = Arc::new(verifier(source.clone(), Duration::from_secs(300)));
    let token = signer.sign(&event_claims());
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (verifier, token) = (verifier.clone(), token.clone());
            tokio::spawn(async move { verifier.verify(&token).await })
        })
        .collect();
    for task in tasks {
        assert!(task.await.unwrap().is_ok());
    }
    assert_eq!(source.fetches(), 1);
}

#[tokio::test]
async fn claims_are_checked() {
    let signer = Signer::new("k1");
    let verifier = verifier(FakeSource::new(&[&signer]), Duration::from_secs(300));
    let with = |patch: serde_json::Value| {
        let mut claims = event_claims();
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                claims.as_object_mut().unwrap().remove(k);
            } else {
                claims[k] = v.clone();
            }
        }
        signer.sign(&claims)
    };
    assert_eq!(
        verifier.verify(&with(json!({"exp": now() - 120}))).await,
        Err(VerifyError::Expired)
    );
    assert!(
        verifier
            .verify(&with(json!({"exp": now() - 10})))
            .await
            .is_ok(),
        "within leeway"
    );
    assert_eq!(
        verifier.verify(&with(json!({"nbf": now() + 120}))).await,
        Err(VerifyError::NotYetValid)
    );
    assert_eq!(
        verifier.verify(&with(json!({"iat": now() + 120}))).await,
        Err(VerifyError::IssuedInFuture)
    );
    assert_eq!(
        verifier
            .verify(&with(json!({"iss": "https://evil.test"})))
            .await,
        Err(VerifyError::WrongIssuer)
    );
    assert_eq!(
        verifier.verify(&with(json!({"iss": null}))).await,
        Err(VerifyError::MissingIssuer)
    );
    assert!(
        verifier
            .verify(&with(json!({"exp": null, "iat": null})))
            .await
            .is_ok(),
        "exp and iat are optional"
    );
    for claim in ["exp", "nbf", "iat"] {
        assert_eq!(
            verifier
                .verify(&with(json!({ claim: (now() + 600).to_string() })))
                .await,
            Err(VerifyError::ClaimNotNumeric {
                claim,
                found: "a string"
            }),
            "{claim} as a string"
        );
    }
    assert_eq!(
        verifier
            .verify(&signer.sign(&json!([event_claims()])))
            .await,
        Err(VerifyError::ClaimsNotObject)
    );
}

#[tokio::test]
async fn a_critical_extension_is_refused() {
    let signer = Signer::new("k1");
    let verifier = verifier(FakeSource::new(&[&signer]), Duration::from_secs(300));
    for crit in [json!(["b64"]), json!(["exp"]), json!([]), json!(null)] {
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": "k1", "crit": crit, "b64": true});
        let token = signer.sign_with_header(header, &event_claims());
        let refused = verifier.verify(&token).await.unwrap_err();
        assert_eq!(
            refused,
            VerifyError::UnsupportedCritical(crit.to_string()),
            "crit {crit}"
        );
        assert_eq!(refused.code(), "unsupported_crit");
    }
}

#[tokio::test]
async fn signed_claims_that_are_not_json_are_told_apart() {
    let signer = Signer::new("k1");
    let verifier = verifier(FakeSource::new(&[&signer]), Duration::from_secs(300));
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": "k1"});
    let token = signer.sign_segments(&header.to_string(), "{\"metadata\": {");
    assert_eq!(
        verifier.verify(&token).await,
        Err(VerifyError::ClaimsNotJson)
    );
}

#[tokio::test]
async fn a_tampered_payload_fails_the_signature() {
    let signer = Signer::new("k1");
    let verifier = verifier(FakeSource::new(&[&signer]), Duration::from_secs(300));
    let token = signer.sign(&event_claims());
    let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
    let mut claims = event_claims();
    claims["body"]["course_id"] = "2".into();
    parts[1] = URL_SAFE_NO_PAD.encode(claims.to_string());
    assert_eq!(
        verifier.verify(&parts.join(".")).await,
        Err(VerifyError::BadSignature)
    );
    assert_eq!(
        verifier.verify("not.a-token").await,
        Err(VerifyError::Malformed)
    );
}

#[tokio::test]
async fn unavailable_keys_are_transient_and_stale_keys_still_serve() {
    let signer = Signer::new("k1");
    let source = FakeSource::new(&[&signer]);
    source.fail();
    let cache = KeyCache::new(
        source.clone(),
        KeyCacheSettings {
            min_refetch: Duration::ZERO,
            max_age: Duration::ZERO,
        },
    );
    let verifier = EventVerifier::new(Arc::new(cache), ISSUER, 30);
    let err = verifier
        .verify(&signer.sign(&event_claims()))
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err:?}");

    source.publish(&[&signer]);
    assert!(verifier.verify(&signer.sign(&event_claims())).await.is_ok());
    source.fail();
    // Keys are stale (max_age 0) and the refresh fails: the cached key keeps working.
    assert!(verifier.verify(&signer.sign(&event_claims())).await.is_ok());
}
