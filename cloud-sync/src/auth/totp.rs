//! RFC 6238 time-based one-time passwords, the optional second factor: HMAC-SHA-1, six
//! digits, 30-second steps, one step of clock drift either way — what every authenticator app
//! (Google Authenticator, Aegis, 1Password, FreeOTP...) does by default, so the `otpauth://`
//! URI we hand out is understood everywhere.
//!
//! HMAC-SHA-1 is ring's (already the process's one crypto library); RFC 4226's dynamic
//! truncation is the few lines below, held to the RFCs' published vectors by the tests.
//! Secrets are 160 random bits (RFC 4226's recommended length), shown once as base32.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use data_encoding::BASE32_NOPAD;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

use super::AuthError;

/// Digits in a code.
pub const DIGITS: u32 = 6;
/// Seconds per time step.
pub const STEP_SECS: u64 = 30;
/// Steps of clock drift accepted either way (a code from the previous or next 30 s).
pub(super) const DRIFT_STEPS: u64 = 1;
/// The issuer authenticator apps show next to the account.
pub(super) const ISSUER: &str = "Hallwatch";

/// A TOTP secret: 20 random bytes. Never printed by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecret([u8; Self::LEN]);

impl TotpSecret {
    /// Bytes in a secret (160 bits).
    pub const LEN: usize = 20;

    /// A new random secret.
    pub fn generate() -> Result<Self, AuthError> {
        let mut bytes = [0u8; Self::LEN];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| AuthError::Random)?;
        Ok(Self(bytes))
    }

    /// The secret from its bytes (unsealed from the database).
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    /// The raw bytes, for sealing.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Base32 without padding (RFC 4648), as people type it into an app: 32 letters and digits.
    pub fn base32(&self) -> String {
        BASE32_NOPAD.encode(&self.0)
    }

    /// The `otpauth://totp/...` URI (Google Authenticator's Key Uri Format) for `account`,
    /// which QR codes carry and apps import.
    pub fn otpauth_uri(&self, account: &str) -> String {
        format!(
            "otpauth://totp/{issuer}:{account}?secret={secret}&issuer={issuer}&algorithm=SHA1\
             &digits={DIGITS}&period={STEP_SECS}",
            issuer = percent_encode(ISSUER),
            account = percent_encode(account),
            secret = self.base32(),
        )
    }

    /// The code of time step `step` with `digits` digits (RFC 4226's HOTP with the step as
    /// the counter).
    pub fn code_at_step(&self, step: u64, digits: u32) -> u32 {
        hotp(&self.0, step, digits)
    }

    /// The time step a code matching `code` at `now` belongs to, if any: the current step or
    /// one either side of it. Every candidate is computed and compared, so the time taken
    /// says nothing about which matched.
    pub fn verify(&self, code: TotpCode, now: SystemTime) -> Option<u64> {
        let current = step_at(now);
        let mut matched = None;
        for step in current.saturating_sub(DRIFT_STEPS)..=current.saturating_add(DRIFT_STEPS) {
            if self.code_at_step(step, DIGITS) == code.0 && matched.is_none() {
                matched = Some(step);
            }
        }
        matched
    }
}

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret(..)")
    }
}

/// A code as typed: six ASCII digits; spaces are ignored ("123 456", as apps show it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TotpCode(u32);

impl TotpCode {
    /// The longest text considered at all (six digits and generous spacing).
    pub const MAX_TYPED: usize = 16;
}

/// Why a typed code is not one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a code is the 6 digits the authenticator app shows, e.g. \"123456\"")]
pub struct BadCode;

impl std::str::FromStr for TotpCode {
    type Err = BadCode;

    fn from_str(typed: &str) -> Result<Self, BadCode> {
        if typed.len() > Self::MAX_TYPED {
            return Err(BadCode);
        }
        let digits: String = typed.chars().filter(|c| *c != ' ').collect();
        if digits.len() != DIGITS as usize || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(BadCode);
        }
        digits.parse().map(Self).map_err(|_| BadCode)
    }
}

/// The RFC 6238 time step of `at` (seconds since the epoch / 30; 0 before the epoch).
pub fn step_at(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / STEP_SECS)
}

fn hotp(key: &[u8], counter: u64, digits: u32) -> u32 {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, key);
    let mac = hmac::sign(&key, &counter.to_be_bytes());
    let mac = mac.as_ref();
    // RFC 4226 §5.3: the low nibble of the last byte picks four bytes; the top bit is dropped.
    let offset = usize::from(mac[mac.len() - 1] & 0x0f);
    let word = u32::from_be_bytes([
        mac[offset] & 0x7f,
        mac[offset + 1],
        mac[offset + 2],
        mac[offset + 3],
    ]);
    word % 10u32.pow(digits)
}

/// RFC 3986 percent-encoding of everything but the unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// RFC 6238 appendix B's SHA-1 seed, "12345678901234567890".
    fn rfc_secret() -> TotpSecret {
        TotpSecret::from_bytes(b"12345678901234567890").unwrap()
    }

    #[test]
    fn rfc_4226_hotp_vectors() {
        let expected = [
            755224, 287082, 359152, 969429, 338314, 254676, 287922, 162583, 399871, 520489,
        ];
        for (counter, want) in expected.into_iter().enumerate() {
            assert_eq!(
                rfc_secret().code_at_step(counter as u64, 6),
                want,
                "counter {counter}"
            );
        }
    }

    #[test]
    fn rfc_6238_sha1_vectors() {
        // Appendix B: eight digits; our six are their last six.
        for (time, want) in [
            (59u64, 94287082u32),
            (1111111109, 7081804),
            (1111111111, 14050471),
            (1234567890, 89005924),
            (2000000000, 69279037),
            (20000000000, 65353130),
        ] {
            let at = UNIX_EPOCH + Duration::from_secs(time);
            let step = step_at(at);
            assert_eq!(rfc_secret().code_at_step(step, 8), want, "T = {time}");
            let six = TotpCode(want % 1_000_000);
            assert_eq!(rfc_secret().verify(six, at), Some(step), "T = {time}");
        }
    }

    #[test]
    fn one_step_of_drift_either_way_and_no_more() {
        let secret = rfc_secret();
        let at = UNIX_EPOCH + Duration::from_secs(1_234_567_890);
        let step = step_at(at);
        for (offset, accepted) in [(-2i64, false), (-1, true), (0, true), (1, true), (2, false)] {
            let s = step.checked_add_signed(offset).unwrap();
            let code = TotpCode(secret.code_at_step(s, DIGITS));
            let got = secret.verify(code, at);
            assert_eq!(got.is_some(), accepted, "offset {offset}");
            if accepted {
                assert_eq!(got, Some(s));
            }
        }
    }

    #[test]
    fn codes_are_six_digits_spaces_aside() {
        assert_eq!("123456".parse(), Ok(TotpCode(123_456)));
        assert_eq!("012 345".parse(), Ok(TotpCode(12_345)));
        for bad in [
            "",
            "12345",
            "1234567",
            "12345a",
            "+12345",
            "-12345",
            "１２３４５６",
            "1 2 3 4 5 6          ",
        ] {
            assert_eq!(bad.parse::<TotpCode>(), Err(BadCode), "{bad:?}");
        }
    }

    #[test]
    fn secrets_print_as_base32_and_an_otpauth_uri() {
        let secret = rfc_secret();
        assert_eq!(secret.base32(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        assert_eq!(
            secret.otpauth_uri("ann+ops@example.org"),
            "otpauth://totp/Hallwatch:ann%2Bops%40example.org?\
             secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Hallwatch&algorithm=SHA1\
             &digits=6&period=30"
        );
        assert_eq!(format!("{secret:?}"), "TotpSecret(..)");
        let a = TotpSecret::generate().unwrap();
        let b = TotpSecret::generate().unwrap();
        assert_ne!(a, b);
        assert!(TotpSecret::from_bytes(&[0; 19]).is_none());
    }
}
