//! Canvas-style rotating RS256 signing keys and forgery helpers.
//!
//! Canvas publishes a JWKS that always lists three keys: the previous, the
//! current (the one in the middle, used for signing) and the next one, so a
//! receiver holding a cached JWKS keeps verifying across one rotation and
//! must re-fetch when it meets a kid it has never seen.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::hmac;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{Datelike, Months, NaiveDate, Utc};
use rand::Rng;
use serde_json::{Value, json};

/// Failures while creating or rotating keys.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// aws-lc could not generate an RSA key pair.
    #[error("RSA-2048 key generation failed")]
    Generate,
    /// The public key could not be serialised (X.509 SubjectPublicKeyInfo).
    #[error("public key encoding failed")]
    Encode,
}

/// Which of the three published keys to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySlot {
    /// The key that rotated out last; still published, no longer used to sign.
    Previous,
    /// The signing key (the middle entry of the JWKS).
    Current,
    /// Published ahead of time so receivers already hold it when it starts signing.
    Next,
}

/// One RSA-2048 key with its kid and precomputed public forms.
struct SigningKey {
    kid: String,
    pair: KeyPair,
    /// JWK modulus, base64url without padding.
    n: String,
    /// JWK exponent, base64url without padding.
    e: String,
    /// SubjectPublicKeyInfo PEM, the bytes a naive HS256 verifier would use as its secret.
    public_pem: String,
}

impl SigningKey {
    fn generate(kid: String) -> Result<Self, KeyError> {
        let pair = KeyPair::generate(KeySize::Rsa2048).map_err(|_| KeyError::Generate)?;
        let public = pair.public_key();
        let n = URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero());
        let e = URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero());
        let spki = public.as_der().map_err(|_| KeyError::Encode)?;
        Ok(Self {
            kid,
            n,
            e,
            public_pem: to_pem("PUBLIC KEY", spki.as_ref()),
            pair,
        })
    }

    fn jwk(&self) -> Value {
        json!({
            "kty": "RSA",
            "kid": self.kid,
            "use": "sig",
            "alg": "RS256",
            "n": self.n,
            "e": self.e,
        })
    }

    /// Compact RS256 JWS over `claims` with this key's kid (or `kid_override`).
    fn sign_rs256(&self, claims: &Value, kid_override: Option<&str>) -> String {
        self.sign_payload_segment(&URL_SAFE_NO_PAD.encode(claims.to_string()), kid_override)
    }

    /// Signs an already-encoded claims segment (which need not be valid JSON).
    fn sign_payload_segment(&self, payload: &str, kid_override: Option<&str>) -> String {
        let header = json!({
            "alg": "RS256",
            "typ": "JWT",
            "kid": kid_override.unwrap_or(&self.kid),
        });
        self.sign_input(&format!(
            "{}.{payload}",
            URL_SAFE_NO_PAD.encode(header.to_string())
        ))
    }

    /// Appends the RS256 signature of `signing_input` (`<header>.<payload>`).
    fn sign_input(&self, signing_input: &str) -> String {
        let mut signature = vec![0u8; self.pair.public_modulus_len()];
        self.pair
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                signing_input.as_bytes(),
                &mut signature,
            )
            .expect("PKCS#1 v1.5 signing with a valid in-memory key into a modulus-sized buffer cannot fail");
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }
}

/// Three published keys plus an outsider key used only for forgeries.
pub struct KeyRing {
    state: RwLock<Ring>,
    /// Never published: signs "valid signature, unknown kid" forgeries.
    outsider: SigningKey,
    /// Makes kids unique even when two rings are created in the same month.
    instance_tag: u32,
}

struct Ring {
    /// `[previous, current, next]`, the order Canvas publishes them in.
    keys: [Arc<SigningKey>; 3],
    /// Month index of the current key, so kids advance one month per rotation.
    generation: u32,
    base_month: NaiveDate,
}

static RING_COUNTER: AtomicU32 = AtomicU32::new(0);

impl KeyRing {
    /// Generates the three initial keys (previous, current, next) and the outsider key.
    pub fn new() -> Result<Self, KeyError> {
        let today = Utc::now().date_naive();
        let base_month = NaiveDate::from_ymd_opt(today.year(), today.month(), 1)
            .expect("the first day of the current month always exists");
        let instance_tag =
            rand::rng().random::<u32>() ^ RING_COUNTER.fetch_add(1, Ordering::Relaxed);
        // Generation 1 is current, so the previous key gets month index 0.
        let keys = [
            Arc::new(SigningKey::generate(make_kid(base_month, 0, instance_tag))?),
            Arc::new(SigningKey::generate(make_kid(base_month, 1, instance_tag))?),
            Arc::new(SigningKey::generate(make_kid(base_month, 2, instance_tag))?),
        ];
        let outsider_kid = format!("{}-outsider", make_kid(base_month, 1, instance_tag));
        Ok(Self {
            state: RwLock::new(Ring {
                keys,
                generation: 1,
                base_month,
            }),
            outsider: SigningKey::generate(outsider_kid)?,
            instance_tag,
        })
    }

    /// Monthly rotation: previous is dropped, current becomes previous, next
    /// becomes current and a freshly generated key becomes next.
    pub fn rotate(&self) -> Result<(), KeyError> {
        // Generate outside the lock so signers are not blocked by RSA keygen.
        let (base_month, next_generation) = {
            let ring = self.read();
            (ring.base_month, ring.generation + 2)
        };
        let fresh = Arc::new(SigningKey::generate(make_kid(
            base_month,
            next_generation,
            self.instance_tag,
        ))?);
        let mut ring = self.state.write().unwrap_or_else(PoisonError::into_inner);
        let [_, current, next] = ring.keys.clone();
        ring.keys = [current, next, fresh];
        ring.generation += 1;
        Ok(())
    }

    /// The JWKS document: `{"keys": [previous, current, next]}`.
    pub fn jwks(&self) -> Value {
        let ring = self.read();
        json!({ "keys": ring.keys.iter().map(|k| k.jwk()).collect::<Vec<_>>() })
    }

    /// Kids in JWKS order: previous, current, next.
    pub fn kids(&self) -> [String; 3] {
        let ring = self.read();
        ring.keys.clone().map(|k| k.kid.clone())
    }

    /// The kid that `sign` currently uses.
    pub fn current_kid(&self) -> String {
        self.key(KeySlot::Current).kid.clone()
    }

    /// PEM (SubjectPublicKeyInfo) of the current public key.
    pub fn current_public_pem(&self) -> String {
        self.key(KeySlot::Current).public_pem.clone()
    }

    /// Compact RS256 JWT signed with the current key,
    /// header `{"alg":"RS256","typ":"JWT","kid":<current kid>}`.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with(KeySlot::Current, claims)
    }

    /// Signs with a specific published key, e.g. `Next` to mimic Canvas having
    /// rotated before the receiver refreshed its cache.
    pub fn sign_with(&self, slot: KeySlot, claims: &Value) -> String {
        // Clone the Arc so the RSA operation runs without holding the lock.
        self.key(slot).sign_rs256(claims, None)
    }

    /// A correctly signed token whose claims are `claims_text` verbatim, valid JSON or not:
    /// for testing what a receiver does with garbage from an authenticated sender.
    pub fn sign_raw_claims(&self, claims_text: &str) -> String {
        self.key(KeySlot::Current)
            .sign_payload_segment(&URL_SAFE_NO_PAD.encode(claims_text), None)
    }

    /// A correctly signed token whose header also carries `crit` naming a JWS extension
    /// (`b64`, RFC 7797) that changes how the payload is read: a receiver that ignores `crit`
    /// accepts a token it does not understand.
    pub fn sign_with_critical_extension(&self, claims: &Value) -> String {
        let key = self.key(KeySlot::Current);
        let header = json!({
            "alg": "RS256", "typ": "JWT", "kid": key.kid, "crit": ["b64"], "b64": true,
        });
        key.sign_input(&signing_input(&header, claims))
    }

    /// Unsigned token (`alg: none`, empty signature) carrying the current kid.
    pub fn forge_alg_none(&self, claims: &Value) -> String {
        let header = json!({ "alg": "none", "typ": "JWT", "kid": self.current_kid() });
        format!("{}.", signing_input(&header, claims))
    }

    /// Algorithm-confusion attack: HS256 keyed with the current public key's
    /// PEM bytes, with the current kid, so a verifier that trusts the header's
    /// `alg` and feeds the JWKS key in as an HMAC secret would accept it.
    pub fn forge_hs256_with_public_key(&self, claims: &Value) -> String {
        let key = self.key(KeySlot::Current);
        let header = json!({ "alg": "HS256", "typ": "JWT", "kid": key.kid });
        let input = signing_input(&header, claims);
        let mac = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, key.public_pem.as_bytes()),
            input.as_bytes(),
        );
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(mac.as_ref()))
    }

    /// A correctly RS256-signed token from a key that is not in the JWKS,
    /// with a random, plausible-looking kid.
    pub fn forge_unknown_kid(&self, claims: &Value) -> String {
        let kid = format!(
            "{}_{:08x}",
            Utc::now().format("%Y-%m-%d"),
            rand::rng().random::<u32>()
        );
        self.outsider.sign_rs256(claims, Some(&kid))
    }

    /// Alters a claim in the payload segment while keeping the original header
    /// and signature: `body.workflow_state` is flipped when present, otherwise
    /// `exp` is pushed a day later (both are changes an attacker would want).
    /// A token whose payload is not JSON gets one character flipped instead.
    pub fn tamper(token: &str) -> String {
        let parts: Vec<&str> = token.splitn(3, '.').collect();
        let [header, payload, signature] = parts.as_slice() else {
            return flip_char(token);
        };
        let decoded = URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok());
        let new_payload = match decoded {
            Some(mut claims) => {
                tamper_claims(&mut claims);
                URL_SAFE_NO_PAD.encode(claims.to_string())
            }
            None => flip_char(payload),
        };
        format!("{header}.{new_payload}.{signature}")
    }

    fn key(&self, slot: KeySlot) -> Arc<SigningKey> {
        let ring = self.read();
        let index = match slot {
            KeySlot::Previous => 0,
            KeySlot::Current => 1,
            KeySlot::Next => 2,
        };
        Arc::clone(&ring.keys[index])
    }

    fn read(&self) -> RwLockReadGuard<'_, Ring> {
        // A panic while holding the lock cannot leave the ring half-rotated
        // (the array is replaced in one assignment), so poisoning is harmless.
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("kids", &self.kids())
            .finish()
    }
}

/// `YYYY-MM-01_<ring tag>` with the month advanced `generation` months from
/// `base`, so each rotation yields a new, monotonic, date-based kid.
fn make_kid(base: NaiveDate, generation: u32, tag: u32) -> String {
    let month = base
        .checked_add_months(Months::new(generation))
        .unwrap_or(base);
    format!("{}_{tag:08x}{generation:04}", month.format("%Y-%m-%d"))
}

fn signing_input(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

fn to_pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut pem = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        // base64 output is ASCII, so every chunk is valid UTF-8.
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str(&format!("-----END {label}-----\n"));
    pem
}

fn tamper_claims(claims: &mut Value) {
    if let Some(state) = claims.pointer_mut("/body/workflow_state") {
        let flipped = if state.as_str() == Some("deleted") {
            "active"
        } else {
            "deleted"
        };
        *state = Value::from(flipped);
        return;
    }
    let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
    if let Some(object) = claims.as_object_mut() {
        object.insert("exp".into(), Value::from(exp + 86_400));
    }
}

/// Replaces the middle character with a different base64url character.
fn flip_char(s: &str) -> String {
    let mut chars: Vec<char> = s.chars().collect();
    if chars.is_empty() {
        return "A".into();
    }
    let mid = chars.len() / 2;
    chars[mid] = if chars[mid] == 'A' { 'B' } else { 'A' };
    chars.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};

    fn claims() -> Value {
        let now = Utc::now().timestamp();
        json!({
            "metadata": { "event_name": "course_created", "event_time": "2025-09-01T10:00:00.123Z" },
            "body": { "course_id": "21070000000000056", "workflow_state": "available" },
            "iss": "canvas-sim",
            "iat": now,
            "exp": now + 300,
        })
    }

    /// Strict verification the way a receiver should do it: RS256 only, key
    /// looked up in the JWKS by the token's kid.
    fn verify(token: &str, jwks: &Value) -> Result<Value, String> {
        let header = decode_header(token).map_err(|e| format!("header: {e}"))?;
        let kid = header.kid.ok_or("no kid")?;
        let jwk = jwks["keys"]
            .as_array()
            .and_then(|keys| keys.iter().find(|k| k["kid"] == kid.as_str()))
            .ok_or_else(|| format!("kid {kid} not in JWKS"))?;
        let key = DecodingKey::from_rsa_components(
            jwk["n"].as_str().ok_or("n")?,
            jwk["e"].as_str().ok_or("e")?,
        )
        .map_err(|e| format!("key: {e}"))?;
        decode::<Value>(token, &key, &Validation::new(Algorithm::RS256))
            .map(|data| data.claims)
            .map_err(|e| format!("decode: {e}"))
    }

    /// Tries every published key, ignoring the kid, to prove a forgery is not
    /// accidentally valid under any of them.
    fn verifies_with_any_key(token: &str, jwks: &Value) -> bool {
        jwks["keys"].as_array().into_iter().flatten().any(|jwk| {
            let key = DecodingKey::from_rsa_components(
                jwk["n"].as_str().unwrap_or_default(),
                jwk["e"].as_str().unwrap_or_default(),
            );
            key.is_ok_and(|key| {
                decode::<Value>(token, &key, &Validation::new(Algorithm::RS256)).is_ok()
            })
        })
    }

    #[test]
    fn rotation_keeps_three_keys_and_shifts_them() {
        let ring = KeyRing::new().expect("keyring");
        let [prev, cur, next] = ring.kids();
        assert_eq!(ring.current_kid(), cur);
        let jwks = ring.jwks();
        let keys = jwks["keys"].as_array().expect("keys array");
        assert_eq!(keys.len(), 3);
        for key in keys {
            assert_eq!(key["kty"], "RSA");
            assert_eq!(key["use"], "sig");
            assert_eq!(key["alg"], "RS256");
            assert_eq!(key["e"], "AQAB");
            // 2048-bit modulus = 256 bytes = 342 base64url chars without padding.
            assert_eq!(key["n"].as_str().map(str::len), Some(342));
        }
        assert_eq!(
            keys[1]["kid"],
            cur.as_str(),
            "current kid is the middle one"
        );

        ring.rotate().expect("rotate");
        let [p2, c2, n2] = ring.kids();
        assert_eq!(p2, cur);
        assert_eq!(c2, next);
        assert!(n2 != prev && n2 != cur && n2 != next, "fresh kid {n2}");
        assert_eq!(ring.current_kid(), next);
        assert_eq!(ring.jwks()["keys"].as_array().map(Vec::len), Some(3));
        assert!(
            !ring.jwks().to_string().contains(&prev),
            "previous key dropped"
        );
    }

    #[test]
    fn signed_token_verifies_until_its_key_rotates_out() {
        let ring = KeyRing::new().expect("keyring");
        let token = ring.sign(&claims());
        let header = decode_header(&token).expect("header");
        assert_eq!(header.alg, Algorithm::RS256);
        assert_eq!(header.typ.as_deref(), Some("JWT"));
        assert_eq!(header.kid.as_deref(), Some(ring.current_kid().as_str()));
        let verified = verify(&token, &ring.jwks()).expect("verifies");
        assert_eq!(verified["body"]["course_id"], "21070000000000056");

        ring.rotate().expect("rotate 1");
        verify(&token, &ring.jwks()).expect("still verifies: its key is now 'previous'");

        ring.rotate().expect("rotate 2");
        let err = verify(&token, &ring.jwks()).expect_err("key rotated out");
        assert!(err.contains("not in JWKS"), "{err}");
        assert!(!verifies_with_any_key(&token, &ring.jwks()));

        // The next key is published before it signs, so a cached JWKS covers it.
        let jwks_before = ring.jwks();
        let from_next = ring.sign_with(KeySlot::Next, &claims());
        verify(&from_next, &jwks_before).expect("next key already published");
    }

    #[test]
    fn forged_tokens_fail_strict_rs256_validation() {
        let ring = KeyRing::new().expect("keyring");
        let jwks = ring.jwks();
        let c = claims();

        let none = ring.forge_alg_none(&c);
        assert!(none.ends_with('.'), "empty signature");
        assert!(verify(&none, &jwks).is_err());
        assert!(!verifies_with_any_key(&none, &jwks));

        let hs = ring.forge_hs256_with_public_key(&c);
        // It is a genuine attack token: a naive verifier keyed with the PEM accepts it...
        let naive = decode::<Value>(
            &hs,
            &DecodingKey::from_secret(ring.current_public_pem().as_bytes()),
            &Validation::new(Algorithm::HS256),
        );
        assert!(
            naive.is_ok(),
            "naive HS256 check accepts the forgery: {naive:?}"
        );
        // ...but strict RS256 validation rejects it.
        assert_eq!(
            decode_header(&hs).expect("header").kid,
            Some(ring.current_kid())
        );
        assert!(verify(&hs, &jwks).is_err());
        assert!(!verifies_with_any_key(&hs, &jwks));

        let unknown = ring.forge_unknown_kid(&c);
        let err = verify(&unknown, &jwks).expect_err("unknown kid");
        assert!(err.contains("not in JWKS"), "{err}");
        assert!(!verifies_with_any_key(&unknown, &jwks));

        let good = ring.sign(&c);
        let tampered = KeyRing::tamper(&good);
        assert_ne!(tampered, good);
        assert_eq!(
            tampered.rsplit('.').next(),
            good.rsplit('.').next(),
            "signature kept"
        );
        let err = verify(&tampered, &jwks).expect_err("tampered");
        assert!(err.contains("decode"), "{err}");
        let payload = tampered.split('.').nth(1).expect("payload segment");
        let flipped: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("b64")).expect("json");
        assert_eq!(flipped["body"]["workflow_state"], "deleted");
    }

    #[test]
    fn pem_wraps_spki() {
        let ring = KeyRing::new().expect("keyring");
        let pem = ring.current_public_pem();
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        assert!(pem.ends_with("-----END PUBLIC KEY-----\n"));
        // The PEM body is the SubjectPublicKeyInfo wrapping the JWK's modulus.
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = STANDARD.decode(body).expect("pem base64");
        let jwks = ring.jwks();
        let n = URL_SAFE_NO_PAD
            .decode(jwks["keys"][1]["n"].as_str().expect("n"))
            .expect("n b64");
        assert_eq!(der[0], 0x30, "DER SEQUENCE");
        assert!(
            der.windows(n.len()).any(|w| w == n.as_slice()),
            "modulus inside SPKI"
        );
    }
}
