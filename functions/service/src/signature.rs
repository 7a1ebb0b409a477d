//! Request signatures (API.md, "Authentication: signed requests").
//!
//! `X-Aftersales-Signature: t=<unix seconds>,v1=<hex>` where `<hex>` is HMAC-SHA256 with the
//! webhook secret over `<t>.<raw body>`. Several `v1=` entries may be present while a secret is
//! rotated: any one that matches passes. The signature is checked before the timestamp, so
//! `stale_signature` only ever describes a request that was genuinely signed, just not now.
//! Time is passed in; nothing here reads the clock.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use jiff::Timestamp;
use sha2::Sha256;
use subtle::{Choice, ConstantTimeEq};

/// The request header that carries the signature.
pub const SIGNATURE_HEADER: &str = "X-Aftersales-Signature";

/// How far (in seconds, either way) a signature's `t` may be from `now`.
pub const TOLERANCE_SECONDS: i64 = 300;

/// Headers longer than this are refused unparsed (a few rotated signatures fit easily).
const MAX_HEADER_LEN: usize = 4096;

type HmacSha256 = Hmac<Sha256>;

/// A webhook signing secret. Its `Debug` never shows the secret.
#[derive(Clone)]
pub struct WebhookSecret(Vec<u8>);

/// Why a webhook secret was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("the webhook secret must not be empty")]
    Empty,
}

impl WebhookSecret {
    pub fn new(secret: impl Into<Vec<u8>>) -> Result<Self, SecretError> {
        let secret = secret.into();
        if secret.is_empty() {
            return Err(SecretError::Empty);
        }
        Ok(WebhookSecret(secret))
    }

    fn mac(&self, t: i64, body: &[u8]) -> [u8; 32] {
        // HMAC accepts keys of any length, so this cannot fail for a non-empty key.
        let mut mac = match HmacSha256::new_from_slice(&self.0) {
            Ok(mac) => mac,
            Err(_) => return [0; 32],
        };
        mac.update(t.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.finalize().into_bytes().into()
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

/// Why a request's signature was refused. `code()` is the API error code (always HTTP 401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the {SIGNATURE_HEADER} header is missing")]
    Missing,
    #[error("the {SIGNATURE_HEADER} header is malformed: {0}")]
    Malformed(&'static str),
    #[error("no v1 signature in the {SIGNATURE_HEADER} header matches the request")]
    NoMatch,
    #[error(
        "the signature was made at t={signed_at}, {skew_seconds} s from now; at most {TOLERANCE_SECONDS} s is accepted"
    )]
    Stale { signed_at: i64, skew_seconds: i64 },
}

impl SignatureError {
    /// The API error code: `invalid_signature` or `stale_signature`.
    pub fn code(&self) -> &'static str {
        match self {
            SignatureError::Missing | SignatureError::Malformed(_) | SignatureError::NoMatch => {
                "invalid_signature"
            }
            SignatureError::Stale { .. } => "stale_signature",
        }
    }
}

/// The header value for `body` signed with `secret` at `t`.
pub fn sign(secret: &WebhookSecret, t: Timestamp, body: &[u8]) -> String {
    sign_with_all(std::slice::from_ref(secret), t, body)
}

/// The header value with one `v1=` entry per secret, in order: what a sender emits while a
/// secret is being rotated, so receivers holding either secret accept it.
pub fn sign_with_all(secrets: &[WebhookSecret], t: Timestamp, body: &[u8]) -> String {
    let t = t.as_second();
    let mut header = format!("t={t}");
    for secret in secrets {
        header.push_str(",v1=");
        header.push_str(&hex::encode(secret.mac(t, body)));
    }
    header
}

/// Checks a request's signature header (`None` when the request had none) against `secret`.
/// Returns when the request was signed.
pub fn verify(
    header: Option<&str>,
    body: &[u8],
    secret: &WebhookSecret,
    now: Timestamp,
) -> Result<Timestamp, SignatureError> {
    verify_with_any(header, body, std::slice::from_ref(secret), now)
}

/// Like [`verify`], for a receiver that accepts several secrets while rotating its own.
pub fn verify_with_any(
    header: Option<&str>,
    body: &[u8],
    secrets: &[WebhookSecret],
    now: Timestamp,
) -> Result<Timestamp, SignatureError> {
    let parsed = parse(header.ok_or(SignatureError::Missing)?)?;

    let mut matched = Choice::from(0);
    for secret in secrets {
        let expected = secret.mac(parsed.t, body);
        for candidate in &parsed.v1 {
            matched |= candidate.as_slice().ct_eq(expected.as_slice());
        }
    }
    if !bool::from(matched) {
        return Err(SignatureError::NoMatch);
    }

    let skew_seconds = parsed.t.saturating_sub(now.as_second());
    if skew_seconds.unsigned_abs() > TOLERANCE_SECONDS.unsigned_abs() {
        return Err(SignatureError::Stale {
            signed_at: parsed.t,
            skew_seconds,
        });
    }
    Timestamp::from_second(parsed.t).map_err(|_| SignatureError::Malformed("t is out of range"))
}

struct ParsedHeader {
    t: i64,
    /// Decoded `v1` signatures; entries that are not 64 hex digits are dropped (they can never
    /// match) so that one garbled entry does not veto a valid one.
    v1: Vec<Vec<u8>>,
}

fn parse(header: &str) -> Result<ParsedHeader, SignatureError> {
    if header.len() > MAX_HEADER_LEN {
        return Err(SignatureError::Malformed("header is too long"));
    }
    let mut t = None;
    let mut v1 = Vec::new();
    let mut saw_v1 = false;
    for item in header.split(',') {
        let (key, value) = item
            .trim()
            .split_once('=')
            .ok_or(SignatureError::Malformed("expected key=value pairs"))?;
        match key {
            "t" => {
                if t.is_some() {
                    return Err(SignatureError::Malformed("t appears more than once"));
                }
                if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(SignatureError::Malformed("t must be unix seconds"));
                }
                let seconds = value
                    .parse::<i64>()
                    .map_err(|_| SignatureError::Malformed("t must be unix seconds"))?;
                t = Some(seconds);
            }
            "v1" => {
                saw_v1 = true;
                if let Ok(bytes) = hex::decode(value)
                    && bytes.len() == 32
                {
                    v1.push(bytes);
                }
            }
            // Other schemes (a future v2) are ignored so senders can add them first.
            _ => {}
        }
    }
    let t = t.ok_or(SignatureError::Malformed("t is missing"))?;
    if !saw_v1 {
        return Err(SignatureError::Malformed("no v1 signature"));
    }
    Ok(ParsedHeader { t, v1 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const BODY: &[u8] = br#"{"request_id":"evt_8f2c","channel":"web"}"#;
    const NOW: i64 = 1_795_000_000;

    fn secret(s: &str) -> WebhookSecret {
        WebhookSecret::new(s).unwrap()
    }

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(seconds).unwrap()
    }

    fn hex_for(secret: &WebhookSecret, t: i64, body: &[u8]) -> String {
        hex::encode(secret.mac(t, body))
    }

    #[test]
    fn signature_matches_an_independent_hmac_sha256_of_t_dot_body() {
        // Reference value: printf '1795000000.{}' | openssl dgst -sha256 -hmac whsec_test
        let header = sign(&secret("whsec_test"), at(NOW), b"{}");
        assert_eq!(
            header,
            "t=1795000000,v1=f50cd36baaae795dac63f86cd686693bcb16ea422cd6f180232b0f6ed3a6367d"
        );
    }

    #[test]
    fn a_freshly_signed_request_is_accepted_and_reports_when_it_was_signed() {
        let s = secret("whsec_test");
        let header = sign(&s, at(NOW), BODY);
        assert_eq!(verify(Some(&header), BODY, &s, at(NOW)), Ok(at(NOW)));
    }

    #[test]
    fn a_missing_header_is_an_invalid_signature() {
        let err = verify(None, BODY, &secret("whsec_test"), at(NOW)).unwrap_err();
        assert_eq!(err, SignatureError::Missing);
        assert_eq!(err.code(), "invalid_signature");
    }

    #[test]
    fn garbage_headers_are_malformed_invalid_signatures() {
        let s = secret("whsec_test");
        let good = hex_for(&s, NOW, BODY);
        let cases = [
            ("", "expected key=value pairs"),
            ("garbage", "expected key=value pairs"),
            ("t=,v1=00", "t must be unix seconds"),
            ("t=-5,v1=00", "t must be unix seconds"),
            ("t=12ab,v1=00", "t must be unix seconds"),
            ("t=99999999999999999999,v1=00", "t must be unix seconds"),
            ("v1=00", "t is missing"),
            ("t=1795000000", "no v1 signature"),
            ("t=1795000000,v0=abc", "no v1 signature"),
        ];
        for (header, reason) in cases {
            let err = verify(Some(header), BODY, &s, at(NOW)).unwrap_err();
            assert_eq!(err, SignatureError::Malformed(reason), "{header:?}");
            assert_eq!(err.code(), "invalid_signature");
        }
        let twice = format!("t={NOW},t={NOW},v1={good}");
        assert_eq!(
            verify(Some(&twice), BODY, &s, at(NOW)),
            Err(SignatureError::Malformed("t appears more than once"))
        );
        let long = format!("t={NOW},v1={good},{}", "x=y,".repeat(1100));
        assert_eq!(
            verify(Some(&long), BODY, &s, at(NOW)),
            Err(SignatureError::Malformed("header is too long"))
        );
    }

    #[test]
    fn a_v1_that_is_not_hex_of_the_right_length_never_matches() {
        let s = secret("whsec_test");
        let good = hex_for(&s, NOW, BODY);
        for v1 in [
            "zz",
            &good[..62],
            &format!("{good}00"),
            &good.to_uppercase()[..0],
        ] {
            let header = format!("t={NOW},v1={v1}");
            assert_eq!(
                verify(Some(&header), BODY, &s, at(NOW)),
                Err(SignatureError::NoMatch),
                "{v1}"
            );
        }
    }

    #[test]
    fn a_tampered_body_is_an_invalid_signature() {
        let s = secret("whsec_test");
        let header = sign(&s, at(NOW), BODY);
        let tampered = br#"{"request_id":"evt_8f2d","channel":"web"}"#;
        let err = verify(Some(&header), tampered, &s, at(NOW)).unwrap_err();
        assert_eq!(err, SignatureError::NoMatch);
        assert_eq!(err.code(), "invalid_signature");
    }

    #[test]
    fn a_tampered_t_is_an_invalid_signature_even_inside_the_tolerance() {
        let s = secret("whsec_test");
        let v1 = hex_for(&s, NOW, BODY);
        let header = format!("t={},v1={v1}", NOW + 1);
        assert_eq!(
            verify(Some(&header), BODY, &s, at(NOW)),
            Err(SignatureError::NoMatch)
        );
    }

    #[test]
    fn a_signature_made_with_another_secret_is_an_invalid_signature() {
        let header = sign(&secret("whsec_other"), at(NOW), BODY);
        assert_eq!(
            verify(Some(&header), BODY, &secret("whsec_test"), at(NOW)),
            Err(SignatureError::NoMatch)
        );
    }

    #[test]
    fn signatures_301_seconds_in_the_past_or_future_are_stale() {
        let s = secret("whsec_test");
        for skew in [-301, 301] {
            let header = sign(&s, at(NOW + skew), BODY);
            let err = verify(Some(&header), BODY, &s, at(NOW)).unwrap_err();
            assert_eq!(
                err,
                SignatureError::Stale {
                    signed_at: NOW + skew,
                    skew_seconds: skew
                }
            );
            assert_eq!(err.code(), "stale_signature");
        }
    }

    #[test]
    fn signatures_exactly_300_seconds_away_are_still_accepted() {
        let s = secret("whsec_test");
        for skew in [-300, 300] {
            let header = sign(&s, at(NOW + skew), BODY);
            assert_eq!(verify(Some(&header), BODY, &s, at(NOW)), Ok(at(NOW + skew)));
        }
    }

    #[test]
    fn a_stale_t_with_a_wrong_signature_is_invalid_not_stale() {
        let header = sign(&secret("whsec_other"), at(NOW - 3600), BODY);
        assert_eq!(
            verify(Some(&header), BODY, &secret("whsec_test"), at(NOW)),
            Err(SignatureError::NoMatch)
        );
    }

    #[test]
    fn during_rotation_any_one_matching_v1_passes() {
        let old = secret("whsec_old");
        let new = secret("whsec_new");
        let header = sign_with_all(&[old.clone(), new.clone()], at(NOW), BODY);
        assert_eq!(header.matches(",v1=").count(), 2);
        assert_eq!(verify(Some(&header), BODY, &old, at(NOW)), Ok(at(NOW)));
        assert_eq!(verify(Some(&header), BODY, &new, at(NOW)), Ok(at(NOW)));
        assert_eq!(
            verify(Some(&header), BODY, &secret("whsec_third"), at(NOW)),
            Err(SignatureError::NoMatch)
        );
    }

    #[test]
    fn a_garbled_extra_entry_and_unknown_schemes_do_not_veto_a_valid_v1() {
        let s = secret("whsec_test");
        let v1 = hex_for(&s, NOW, BODY);
        let header = format!("t={NOW}, v1=nothex, v2=abc, v1={v1}");
        assert_eq!(verify(Some(&header), BODY, &s, at(NOW)), Ok(at(NOW)));
    }

    #[test]
    fn a_receiver_holding_two_secrets_accepts_either() {
        let old = secret("whsec_old");
        let new = secret("whsec_new");
        let both = [old.clone(), new.clone()];
        for signer in [&old, &new] {
            let header = sign(signer, at(NOW), BODY);
            assert_eq!(
                verify_with_any(Some(&header), BODY, &both, at(NOW)),
                Ok(at(NOW))
            );
        }
    }

    #[test]
    fn an_empty_secret_is_refused() {
        assert_eq!(WebhookSecret::new("").err(), Some(SecretError::Empty));
        assert_eq!(
            WebhookSecret::new(Vec::new()).err(),
            Some(SecretError::Empty)
        );
    }

    #[test]
    fn debug_output_never_shows_the_secret() {
        let s = secret("whsec_super_secret_value");
        assert_eq!(format!("{s:?}"), "WebhookSecret(<redacted>)");
        assert_eq!(
            format!("{:#?}", Some(&s)),
            "Some(\n    WebhookSecret(<redacted>),\n)"
        );
    }

    proptest! {
        #[test]
        fn any_body_signed_then_verified_round_trips(
            body in proptest::collection::vec(any::<u8>(), 0..2048),
            key in proptest::collection::vec(any::<u8>(), 1..96),
            t in 0i64..4_000_000_000,
            skew in -TOLERANCE_SECONDS..=TOLERANCE_SECONDS,
        ) {
            let s = WebhookSecret::new(key).unwrap();
            let header = sign(&s, at(t), &body);
            prop_assert_eq!(verify(Some(&header), &body, &s, at(t + skew)), Ok(at(t)));
        }

        #[test]
        fn any_changed_body_fails_verification(
            body in proptest::collection::vec(any::<u8>(), 1..512),
            index in any::<prop::sample::Index>(),
            flip in 1u8..=255,
        ) {
            let s = secret("whsec_test");
            let header = sign(&s, at(NOW), &body);
            let mut changed = body.clone();
            let i = index.index(changed.len());
            changed[i] ^= flip;
            prop_assert_eq!(verify(Some(&header), &changed, &s, at(NOW)), Err(SignatureError::NoMatch));
        }
    }
}
