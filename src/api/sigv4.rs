//! Verifying AWS Signature Version 4 on requests to the Step Functions API (AWS JSON 1.0,
//! service name `states`): the `Authorization` header form that the AWS SDKs and CLI send.
//! Parses the header, checks the clock and the credential scope, rebuilds the canonical
//! request and string to sign exactly as SigV4 defines them, and compares signatures in
//! constant time. Errors carry the `__type` and message AWS's JSON services answer with, so
//! an SDK raises the exception its users already know.
//!
//! Written here on top of `sha2` (HMAC-SHA256 and hex are a few lines each): signing
//! crates sign, while a verifier needs the canonical form itself and AWS's error texts.
//!
//! Not supported: presigned URLs (`X-Amz-Signature` in the query), SigV4a, the `Date`
//! header in place of `X-Amz-Date`, unsigned and streaming payloads. Session tokens are
//! accepted as signed headers like any other; they are not checked against an issuer.

use std::collections::HashMap;
use std::fmt;

use sha2::{Digest, Sha256};

use crate::time::{civil_from_days, days_from_civil};

/// The signing name of AWS Step Functions, the only service a credential may be scoped to.
pub const SERVICE: &str = "states";

/// The only algorithm SigV4 (as opposed to SigV4a) defines.
const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// How far `X-Amz-Date` may be from our clock, either way. AWS's JSON services allow five
/// minutes ("... (20180710T071714Z - 5 min.)" in their expiry messages).
const MAX_SKEW_SECS: i64 = 5 * 60;

/// The `__type`s a verification error can have.
pub const MISSING_AUTHENTICATION_TOKEN: &str = "MissingAuthenticationTokenException";
pub const INCOMPLETE_SIGNATURE: &str = "IncompleteSignatureException";
pub const INVALID_SIGNATURE: &str = "InvalidSignatureException";
pub const UNRECOGNIZED_CLIENT: &str = "UnrecognizedClientException";

/// What AWS's JSON 1.0 services answer when a request carries no SigV4 `Authorization`.
pub const MISSING_AUTHENTICATION_TOKEN_MESSAGE: &str = "Request is missing Authentication Token";
/// What AWS answers for an access key id it does not know.
pub const UNRECOGNIZED_CLIENT_MESSAGE: &str =
    "The security token included in the request is invalid.";
/// What AWS answers when the signature does not match (it then appends the canonical
/// request and string to sign it expected, as we do).
pub const SIGNATURE_MISMATCH_MESSAGE: &str = "The request signature we calculated does not \
     match the signature you provided. Check your AWS Secret Access Key and signing method. \
     Consult the service documentation for details.";

/// Access key ids and their secret access keys: the identities the API accepts.
#[derive(Clone, Default)]
pub struct Credentials {
    secrets: HashMap<String, String>,
}

impl Credentials {
    /// `(access key id, secret access key)` pairs; a repeated id keeps its last secret.
    pub fn new(keys: impl IntoIterator<Item = (String, String)>) -> Self {
        Credentials {
            secrets: keys.into_iter().collect(),
        }
    }

    /// No keys: every signed request is refused as an unknown client.
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// Whether `secret` is the secret access key of `access_key_id` (compared in time that
    /// does not depend on where they differ).
    pub fn accepts(&self, access_key_id: &str, secret: &str) -> bool {
        let Some(known) = self.secret(access_key_id) else {
            return false;
        };
        let (a, b) = (known.as_bytes(), secret.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
    }

    fn secret(&self, access_key_id: &str) -> Option<&str> {
        self.secrets.get(access_key_id).map(String::as_str)
    }
}

/// Reads keys from a file in the AWS shared credentials format (`~/.aws/credentials`):
/// every `[profile]` with an `aws_access_key_id` and an `aws_secret_access_key` is one key.
pub fn parse_credentials_file(text: &str) -> Result<Credentials, String> {
    let mut keys = Vec::new();
    let mut section = String::new();
    let (mut id, mut secret): (Option<String>, Option<String>) = (None, None);
    let mut finish = |section: &str, id: &mut Option<String>, secret: &mut Option<String>| {
        match (id.take(), secret.take()) {
            (Some(i), Some(s)) => keys.push((i, s)),
            (None, None) => {}
            _ => {
                return Err(format!(
                    "[{section}] needs both aws_access_key_id and aws_secret_access_key"
                ));
            }
        }
        Ok(())
    };
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            finish(&section, &mut id, &mut secret)?;
            section = name.trim().to_string();
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            return Err(format!(
                "line {}: expected 'name = value' or '[profile]'",
                n + 1
            ));
        };
        match k.trim() {
            "aws_access_key_id" => id = Some(v.trim().to_string()),
            "aws_secret_access_key" => secret = Some(v.trim().to_string()),
            _ => {}
        }
    }
    finish(&section, &mut id, &mut secret)?;
    if keys.is_empty() {
        return Err("no [profile] with aws_access_key_id and aws_secret_access_key".into());
    }
    Ok(Credentials::new(keys))
}

/// Shows the access key ids only, so a logged config never leaks a secret.
impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ids: Vec<&str> = self.secrets.keys().map(String::as_str).collect();
        ids.sort_unstable();
        f.debug_struct("Credentials")
            .field("access_key_ids", &ids)
            .finish_non_exhaustive()
    }
}

/// What the verifier needs of a request (the HTTP layer fills it from hyper's request).
#[derive(Clone, Copy, Debug)]
pub struct SignedRequest<'a> {
    /// As sent, e.g. `POST`.
    pub method: &'a str,
    /// The raw path as sent, still percent-encoded, e.g. `/`.
    pub path: &'a str,
    /// The raw query string without `?`, often empty.
    pub query: &'a str,
    /// Every header in the order received; names are compared case-insensitively and a
    /// name may repeat.
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
}

/// Who signed a request that verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub access_key_id: String,
    /// The region the credential was scoped to; any non-empty name is accepted.
    pub region: String,
}

/// Why a request was refused: the JSON error's `__type` and `message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigError {
    /// One of the `__type` constants of this module, e.g. [`INVALID_SIGNATURE`].
    pub code: &'static str,
    pub message: String,
}

impl SigError {
    /// The status AWS's JSON 1.0 services send these errors with (Step Functions reports
    /// `Status Code: 400; Error Code: UnrecognizedClientException`; DynamoDB, on the same
    /// protocol, answers every signature error with 400).
    pub const HTTP_STATUS: u16 = 400;

    fn new(code: &'static str, message: impl Into<String>) -> SigError {
        SigError {
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for SigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for SigError {}

/// Checks the `Authorization` header (`AWS4-HMAC-SHA256 Credential=AKID/DATE/REGION/states/
/// aws4_request, SignedHeaders=..., Signature=...`), `X-Amz-Date` (within five minutes of
/// `now_epoch_secs`, on the scope's day) and, when present, `X-Amz-Content-Sha256` (it must
/// be the body's hash). The checks run in the order AWS's JSON services run them, so the
/// same mistake gets the same answer.
pub fn verify(
    req: &SignedRequest,
    creds: &Credentials,
    now_epoch_secs: i64,
) -> Result<Verified, SigError> {
    verify_for_service(req, creds, now_epoch_secs, SERVICE)
}

/// [`verify`] for any service name: AWS's published examples sign for `iam`.
fn verify_for_service(
    req: &SignedRequest,
    creds: &Credentials,
    now: i64,
    service: &str,
) -> Result<Verified, SigError> {
    let auth = parse_authorization(req)?;

    // The date: well formed, then within the allowed skew.
    let amz_date = auth.amz_date.as_str();
    let Some(date_secs) = parse_amz_date(amz_date) else {
        return Err(SigError::new(
            INCOMPLETE_SIGNATURE,
            format!(
                "Date must be in ISO-8601 'basic format'. Got '{amz_date}'. \
                 See http://en.wikipedia.org/wiki/ISO_8601"
            ),
        ));
    };
    if date_secs < now.saturating_sub(MAX_SKEW_SECS) {
        return Err(SigError::new(
            INVALID_SIGNATURE,
            format!(
                "Signature expired: {amz_date} is now earlier than {} ({} - 5 min.)",
                format_amz_date(now.saturating_sub(MAX_SKEW_SECS)),
                format_amz_date(now)
            ),
        ));
    }
    if date_secs > now.saturating_add(MAX_SKEW_SECS) {
        return Err(SigError::new(
            INVALID_SIGNATURE,
            format!(
                "Signature not yet current: {amz_date} is still later than {} ({} + 5 min.)",
                format_amz_date(now.saturating_add(MAX_SKEW_SECS)),
                format_amz_date(now)
            ),
        ));
    }

    // The signed headers: `host` among them, and each one present in the request.
    let signed: Vec<&str> = auth.signed_headers.split(';').collect();
    if !signed.iter().any(|h| h.eq_ignore_ascii_case("host")) {
        return Err(SigError::new(
            INVALID_SIGNATURE,
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
        ));
    }
    for name in &signed {
        if name.is_empty() {
            return Err(SigError::new(
                INCOMPLETE_SIGNATURE,
                format!(
                    "SignedHeaders has an empty header name: '{}'. List the signed header \
                     names separated by single ';'.",
                    auth.signed_headers
                ),
            ));
        }
        if !req
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            return Err(SigError::new(
                INCOMPLETE_SIGNATURE,
                format!(
                    "'{name}' is listed in SignedHeaders but the request has no such header. \
                     Sign only the headers the request sends."
                ),
            ));
        }
    }

    if auth.algorithm != ALGORITHM {
        return Err(SigError::new(
            INCOMPLETE_SIGNATURE,
            format!(
                "Unsupported AWS 'algorithm': '{}' (only AWS4-HMAC-SHA256 for now). ",
                auth.algorithm
            ),
        ));
    }

    // The credential scope: key/date/region/service/aws4_request (trailing slashes ignored).
    let scope: Vec<&str> = auth.credential.trim_end_matches('/').split('/').collect();
    let &[key_id, scope_date, region, scope_service, terminator] = scope.as_slice() else {
        return Err(SigError::new(
            INCOMPLETE_SIGNATURE,
            format!(
                "Credential must have exactly 5 slash-delimited elements, e.g. \
                 keyid/date/region/service/term, got '{}'",
                auth.credential
            ),
        ));
    };
    let mut scope_errors = String::new();
    if region.is_empty() {
        scope_errors.push_str("Credential should be scoped to a valid region, not ''. ");
    }
    if scope_service != service {
        scope_errors.push_str(&format!(
            "Credential should be scoped to correct service: '{service}'. "
        ));
    }
    if terminator != "aws4_request" {
        scope_errors.push_str(&format!(
            "Credential should be scoped with a valid terminator: 'aws4_request', not \
             '{terminator}'. "
        ));
    }
    // `amz_date` parsed, so it is 16 ASCII bytes.
    let day = &amz_date[..8];
    if scope_date != day {
        scope_errors.push_str(&format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date \
             from HTTP: '{scope_date}' != '{day}', from '{amz_date}'."
        ));
    }
    if !scope_errors.is_empty() {
        return Err(SigError::new(INVALID_SIGNATURE, scope_errors));
    }

    let Some(secret) = creds.secret(key_id) else {
        return Err(SigError::new(
            UNRECOGNIZED_CLIENT,
            UNRECOGNIZED_CLIENT_MESSAGE,
        ));
    };

    let payload_hash = payload_hash(req)?;
    let canonical = canonical_request(req, &signed, auth.signed_headers, &payload_hash);
    let to_sign = string_to_sign(amz_date, scope_date, region, service, &canonical);
    let key = signing_key(secret, scope_date, region, service);
    let expected = hex(&hmac_sha256(&key, to_sign.as_bytes()));
    if !constant_time_eq(expected.as_bytes(), auth.signature.as_bytes()) {
        return Err(SigError::new(
            INVALID_SIGNATURE,
            format!(
                "{SIGNATURE_MISMATCH_MESSAGE}\n\nThe Canonical String for this request should \
                 have been\n'{canonical}'\n\nThe String-to-Sign should have been\n'{to_sign}'\n"
            ),
        ));
    }
    Ok(Verified {
        access_key_id: key_id.to_string(),
        region: region.to_string(),
    })
}

/// The parts of the `Authorization` header, and `X-Amz-Date` which it needs.
struct Authorization<'a> {
    algorithm: &'a str,
    credential: &'a str,
    signed_headers: &'a str,
    signature: &'a str,
    /// Canonicalised as a signed header would be (so repeated values fail to parse).
    amz_date: String,
}

fn parse_authorization<'a>(req: &SignedRequest<'a>) -> Result<Authorization<'a>, SigError> {
    let header = req
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| v.trim());
    // Anything but an AWS4 header is no SigV4 token at all (as AWS answers a Bearer token).
    let Some(header) = header.filter(|h| h.starts_with("AWS4-")) else {
        return Err(SigError::new(
            MISSING_AUTHENTICATION_TOKEN,
            MISSING_AUTHENTICATION_TOKEN_MESSAGE,
        ));
    };
    let (algorithm, params) = header
        .split_once(|c: char| c.is_ascii_whitespace())
        .unwrap_or((header, ""));
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for part in params.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((name, value)) = part.split_once('=') else {
            return Err(SigError::new(
                INCOMPLETE_SIGNATURE,
                format!(
                    "'{part}' not a valid key=value pair (missing equal-sign) in \
                     Authorization header: '{header}'."
                ),
            ));
        };
        let slot = match name.trim() {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed_headers,
            "Signature" => &mut signature,
            _ => continue,
        };
        slot.get_or_insert(value.trim());
    }
    let amz_date = header_value(req, "x-amz-date");

    let mut missing = String::new();
    for (name, value) in [
        ("Credential", credential),
        ("Signature", signature),
        ("SignedHeaders", signed_headers),
    ] {
        if value.is_none() {
            missing.push_str(&format!(
                "Authorization header requires '{name}' parameter. "
            ));
        }
    }
    if amz_date.is_none() {
        missing.push_str(
            "Authorization header requires existence of a 'X-Amz-Date' header (this API does \
             not take the 'Date' header in its place). ",
        );
    }
    match (credential, signed_headers, signature, amz_date) {
        (Some(credential), Some(signed_headers), Some(signature), Some(amz_date)) => {
            Ok(Authorization {
                algorithm,
                credential,
                signed_headers,
                signature,
                amz_date,
            })
        }
        _ => Err(SigError::new(
            INCOMPLETE_SIGNATURE,
            format!("{missing}Authorization={header}"),
        )),
    }
}

/// The canonical value of header `name` (lowercase): every value of that name in order,
/// each trimmed with inner runs of whitespace collapsed to one space, joined by commas.
/// `None` when the request has no such header.
fn header_value(req: &SignedRequest, name: &str) -> Option<String> {
    let mut out: Option<String> = None;
    for (_, value) in req
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
    {
        let out = match &mut out {
            Some(s) => {
                s.push(',');
                s
            }
            None => out.insert(String::new()),
        };
        for (i, word) in value.split_ascii_whitespace().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            out.push_str(word);
        }
    }
    out
}

/// The payload line of the canonical request: the hex SHA-256 of the body, or the
/// `X-Amz-Content-Sha256` value as sent, which must then be that same hash. (Taking the
/// header on trust would leave the body unauthenticated.)
fn payload_hash(req: &SignedRequest) -> Result<String, SigError> {
    let body_hash = hex(&Sha256::digest(req.body));
    match header_value(req, "x-amz-content-sha256") {
        None => Ok(body_hash),
        Some(claimed) if claimed.eq_ignore_ascii_case(&body_hash) => Ok(claimed),
        Some(_) => Err(SigError::new(
            INVALID_SIGNATURE,
            "The provided 'x-amz-content-sha256' header does not match what was computed. \
             Send the hex SHA-256 of the body, or leave the header out (this API takes no \
             unsigned or streaming payloads).",
        )),
    }
}

/// The canonical request: method, canonical URI, canonical query, canonical headers (in
/// the order signed, which a conforming signer sorted), the signed header list as sent,
/// and the payload hash.
fn canonical_request(
    req: &SignedRequest,
    signed: &[&str],
    signed_headers: &str,
    payload_hash: &str,
) -> String {
    let mut out = String::with_capacity(256 + req.path.len() + req.query.len());
    out.push_str(req.method);
    out.push('\n');
    canonical_uri(req.path, &mut out);
    out.push('\n');
    canonical_query(req.query, &mut out);
    out.push('\n');
    for name in signed {
        for c in name.chars() {
            out.push(c.to_ascii_lowercase());
        }
        out.push(':');
        out.push_str(&header_value(req, name).unwrap_or_default());
        out.push('\n');
    }
    out.push('\n');
    out.push_str(signed_headers);
    out.push('\n');
    out.push_str(payload_hash);
    out
}

/// The path as sent, normalised as RFC 3986 removes dot segments (AWS also drops empty
/// segments, so `//` is `/`), then every segment URI-encoded again: for services other
/// than S3 the already-encoded path is encoded a second time, `%20` becoming `%2520`, while
/// `/` stays `/`.
fn canonical_uri(path: &str, out: &mut String) {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    if path.starts_with('/') || path.is_empty() {
        out.push('/');
    }
    for (i, segment) in segments.iter().enumerate() {
        if i > 0 {
            out.push('/');
        }
        uri_encode(segment.as_bytes(), out);
    }
    if path.ends_with('/') && !segments.is_empty() {
        out.push('/');
    }
}

/// The query's parameters decoded, URI-encoded the one canonical way, sorted by name then
/// value, joined as `name=value` with `&` (a parameter without a value gets `name=`).
fn canonical_query(query: &str, out: &mut String) {
    if query.is_empty() {
        return;
    }
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let mut n = String::new();
            let mut v = String::new();
            uri_encode(&percent_decode(name), &mut n);
            uri_encode(&percent_decode(value), &mut v);
            (n, v)
        })
        .collect();
    pairs.sort_unstable();
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(name);
        out.push('=');
        out.push_str(value);
    }
}

/// SigV4's URI encoding: unreserved characters (`A-Z a-z 0-9 - . _ ~`) as they are,
/// every other byte as `%XX` with uppercase hex.
fn uri_encode(bytes: &[u8], out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 0xf) as usize] as char);
        }
    }
}

/// `%XX` escapes decoded; a `%` not followed by two hex digits stays as it is. `+` is a
/// plus sign, not a space (SigV4 signers encode spaces as `%20`).
fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex_digit(b[i + 1]), hex_digit(b[i + 2]))
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn string_to_sign(
    amz_date: &str,
    scope_date: &str,
    region: &str,
    service: &str,
    canonical_request: &str,
) -> String {
    format!(
        "{ALGORITHM}\n{amz_date}\n{scope_date}/{region}/{service}/aws4_request\n{}",
        hex(&Sha256::digest(canonical_request.as_bytes()))
    )
}

/// kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request").
fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let mut k_secret = Vec::with_capacity(4 + secret.len());
    k_secret.extend_from_slice(b"AWS4");
    k_secret.extend_from_slice(secret.as_bytes());
    let k_date = hmac_sha256(&k_secret, date.as_bytes());
    let k_region = hmac_sha256(&k_date, region.as_bytes());
    let k_service = hmac_sha256(&k_region, service.as_bytes());
    hmac_sha256(&k_service, b"aws4_request")
}

/// HMAC-SHA256 (RFC 2104): H((K ^ opad) || H((K ^ ipad) || data)), with a key longer than
/// the 64-byte block hashed first.
fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut ipad = [0x36u8; BLOCK];
    let mut opad = [0x5cu8; BLOCK];
    for i in 0..BLOCK {
        ipad[i] ^= block[i];
        opad[i] ^= block[i];
    }
    let inner = Sha256::new()
        .chain_update(ipad)
        .chain_update(data)
        .finalize();
    let outer = Sha256::new()
        .chain_update(opad)
        .chain_update(inner)
        .finalize();
    let mut out = [0u8; 32];
    out.copy_from_slice(&outer);
    out
}

/// Lowercase hex, as SigV4 prints hashes and signatures.
fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 0xf) as usize] as char);
    }
    out
}

/// Equal without an early exit, so the time taken does not say how many leading
/// characters of a guessed signature were right. (The length is no secret: 64.)
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

/// Seconds since the epoch of `YYYYMMDD'T'HHMMSS'Z'`, SigV4's timestamp; `None` for
/// anything else, including dates that do not exist.
fn parse_amz_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        b[r].iter().try_fold(0i64, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0'))
        })
    };
    let (year, month, day) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hour, minute, second) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&month) || day < 1 || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    // A day past the month's end (20150230) comes back as another date.
    if civil_from_days(days) != (year, month, day) {
        return None;
    }
    Some(days * 86_400 + hour * 3600 + minute * 60 + second)
}

/// `YYYYMMDD'T'HHMMSS'Z'` of seconds since the epoch, for the skew messages.
fn format_amz_date(secs: i64) -> String {
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 20240517T093015Z, the time every botocore fixture below was signed at.
    const NOW: i64 = 1_715_938_215;
    const AKID: &str = "AKIAIOSFODNN7EXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    const SESSION_AKID: &str = "ASIAIOSFODNN7EXAMPLE";
    const SESSION_SECRET: &str = "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY";

    fn creds() -> Credentials {
        Credentials::new([
            (AKID.to_string(), SECRET.to_string()),
            (SESSION_AKID.to_string(), SESSION_SECRET.to_string()),
        ])
    }

    /// An owned request, so a test can change one part of a fixture.
    #[derive(Clone, Debug)]
    struct Req {
        method: &'static str,
        path: String,
        query: String,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    impl Req {
        fn new(method: &'static str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Req {
            Req {
                method,
                path: path.to_string(),
                query: String::new(),
                headers: headers
                    .iter()
                    .map(|(n, v)| (n.to_string(), v.to_string()))
                    .collect(),
                body: body.to_vec(),
            }
        }

        fn with<T>(&self, f: impl FnOnce(&SignedRequest) -> T) -> T {
            let headers: Vec<(&str, &str)> = self
                .headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            f(&SignedRequest {
                method: self.method,
                path: &self.path,
                query: &self.query,
                headers: &headers,
                body: &self.body,
            })
        }

        fn check_with(&self, creds: &Credentials, now: i64) -> Result<Verified, SigError> {
            self.with(|r| verify(r, creds, now))
        }

        fn check(&self, now: i64) -> Result<Verified, SigError> {
            self.check_with(&creds(), now)
        }

        /// Replaces the first header called `name` (any case), or adds it.
        fn set(mut self, name: &str, value: &str) -> Req {
            match self
                .headers
                .iter_mut()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
            {
                Some(h) => h.1 = value.to_string(),
                None => self.headers.push((name.to_string(), value.to_string())),
            }
            self
        }

        /// Adds a header, even if one of that name is there.
        fn add(mut self, name: &str, value: &str) -> Req {
            self.headers.push((name.to_string(), value.to_string()));
            self
        }

        fn without(mut self, name: &str) -> Req {
            self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
            self
        }

        fn header(&self, name: &str) -> &str {
            let (_, v) = self
                .headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .expect("the fixture has this header");
            v
        }

        fn authorization_with(self, from: &str, to: &str) -> Req {
            let auth = self.header("Authorization").replace(from, to);
            self.set("Authorization", &auth)
        }
    }

    fn error(result: Result<Verified, SigError>) -> SigError {
        result.expect_err("the request must be refused")
    }

    // The botocore fixtures: botocore 1.43.11's `SigV4Auth(credentials, "states",
    // "us-east-1").add_auth(request)` with `botocore.auth.get_current_datetime` patched to
    // return 2024-05-17 09:30:15 UTC; the headers below are what it set, the Host being the
    // one its HTTP client sends for the URL.

    /// POST https://states.us-east-1.amazonaws.com/ as the SDKs send ListStateMachines.
    fn list_state_machines() -> Req {
        Req::new(
            "POST",
            "/",
            &[
                ("Host", "states.us-east-1.amazonaws.com"),
                ("Content-Type", "application/x-amz-json-1.0"),
                ("X-Amz-Target", "AWSStepFunctions.ListStateMachines"),
                ("X-Amz-Date", "20240517T093015Z"),
                (
                    "Authorization",
                    "AWS4-HMAC-SHA256 \
                     Credential=AKIAIOSFODNN7EXAMPLE/20240517/us-east-1/states/aws4_request, \
                     SignedHeaders=content-type;host;x-amz-date;x-amz-target, \
                     Signature=34c1715ac07c2657d9640b68a04628e2a5fe933f6314187101dfb3f993620dda",
                ),
                ("Content-Length", "17"),
            ],
            br#"{"maxResults":10}"#,
        )
    }

    /// POST http://localhost:8083/ StartExecution with temporary credentials.
    fn start_execution_with_session_token() -> Req {
        Req::new(
            "POST",
            "/",
            &[
                ("host", "localhost:8083"),
                ("content-type", "application/x-amz-json-1.0"),
                ("x-amz-target", "AWSStepFunctions.StartExecution"),
                ("x-amz-date", "20240517T093015Z"),
                (
                    "x-amz-security-token",
                    "FwoGZXIvYXdzEXAMPLETOKEN//////////wEaDEXAMPLE=",
                ),
                (
                    "authorization",
                    "AWS4-HMAC-SHA256 \
                     Credential=ASIAIOSFODNN7EXAMPLE/20240517/us-east-1/states/aws4_request, \
                     SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;\
                     x-amz-target, \
                     Signature=5daa10085854a2f78602d69c72fc4c1c989adabbac30a8afd9c0e6598a94c747",
                ),
            ],
            br#"{"stateMachineArn":"arn:aws:states:us-east-1:123456789012:stateMachine:hello","input":"{\"name\": \"world\"}"}"#,
        )
    }

    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        // RFC 4231 test case 2, and test case 6 (a key longer than the block).
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex(&hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    /// The IAM ListUsers example of AWS's "Signature Version 4 signing process" pages
    /// (create a canonical request, create a string to sign, calculate the signature), with
    /// the values they publish at each step.
    #[test]
    fn the_aws_documented_example_verifies_with_its_published_values() {
        let mut req = Req::new(
            "GET",
            "/",
            &[
                ("Host", "iam.amazonaws.com"),
                (
                    "Content-Type",
                    "application/x-www-form-urlencoded; charset=utf-8",
                ),
                ("X-Amz-Date", "20150830T123600Z"),
                (
                    "Authorization",
                    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, \
                     SignedHeaders=content-type;host;x-amz-date, \
                     Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7",
                ),
            ],
            b"",
        );
        req.query = "Action=ListUsers&Version=2010-05-08".to_string();
        let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
        let creds = Credentials::new([("AKIDEXAMPLE".to_string(), secret.to_string())]);
        let now = 1_440_938_160; // 20150830T123600Z

        let canonical = req.with(|r| {
            let signed = ["content-type", "host", "x-amz-date"];
            let payload = payload_hash(r).unwrap();
            canonical_request(r, &signed, "content-type;host;x-amz-date", &payload)
        });
        assert_eq!(
            canonical,
            "GET\n/\nAction=ListUsers&Version=2010-05-08\n\
             content-type:application/x-www-form-urlencoded; charset=utf-8\n\
             host:iam.amazonaws.com\nx-amz-date:20150830T123600Z\n\n\
             content-type;host;x-amz-date\n\
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hex(&Sha256::digest(canonical.as_bytes())),
            "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59"
        );
        let to_sign = string_to_sign(
            "20150830T123600Z",
            "20150830",
            "us-east-1",
            "iam",
            &canonical,
        );
        assert_eq!(
            to_sign,
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/iam/aws4_request\n\
             f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59"
        );
        let key = signing_key(secret, "20150830", "us-east-1", "iam");
        assert_eq!(
            hex(&key),
            "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
        );
        assert_eq!(
            hex(&hmac_sha256(&key, to_sign.as_bytes())),
            "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
        );

        let verified = req.with(|r| verify_for_service(r, &creds, now, "iam"));
        assert_eq!(
            verified,
            Ok(Verified {
                access_key_id: "AKIDEXAMPLE".to_string(),
                region: "us-east-1".to_string(),
            })
        );
        // Signed for IAM, so this API refuses it.
        let e = error(req.check_with(&creds, now));
        assert_eq!(e.code, INVALID_SIGNATURE);
        assert_eq!(
            e.message,
            "Credential should be scoped to correct service: 'states'. "
        );
    }

    /// AWS's "Examples of how to derive a signing key for Signature Version 4".
    #[test]
    fn the_aws_documented_signing_key_example() {
        assert_eq!(
            hex(&signing_key(
                "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                "20120215",
                "us-east-1",
                "iam"
            )),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
        );
    }

    #[test]
    fn a_request_botocore_signed_verifies() {
        let req = list_state_machines();
        assert_eq!(
            req.check(NOW),
            Ok(Verified {
                access_key_id: AKID.to_string(),
                region: "us-east-1".to_string(),
            })
        );
        // The intermediate values botocore logged while signing it.
        let (canonical, to_sign) = req.with(|r| {
            let auth = parse_authorization(r).unwrap();
            let signed: Vec<&str> = auth.signed_headers.split(';').collect();
            let c = canonical_request(r, &signed, auth.signed_headers, &payload_hash(r).unwrap());
            let s = string_to_sign(&auth.amz_date, "20240517", "us-east-1", SERVICE, &c);
            (c, s)
        });
        assert_eq!(
            canonical,
            "POST\n/\n\ncontent-type:application/x-amz-json-1.0\n\
             host:states.us-east-1.amazonaws.com\nx-amz-date:20240517T093015Z\n\
             x-amz-target:AWSStepFunctions.ListStateMachines\n\n\
             content-type;host;x-amz-date;x-amz-target\n\
             f8db0b3d7df530b04227257198bd7b0b3c7636749eb13b44517dc8cc8ab379f3"
        );
        assert_eq!(
            to_sign,
            "AWS4-HMAC-SHA256\n20240517T093015Z\n20240517/us-east-1/states/aws4_request\n\
             c81c45333bf31cf62abc0204472c65d495121181261c6a0801e34c7549a2ef1b"
        );
        // Headers that were not signed may come and go.
        let extra = req
            .set("User-Agent", "Boto3/1.0 \u{1F600}")
            .set("X-Other", "");
        assert!(extra.check(NOW).is_ok());
    }

    #[test]
    fn a_session_token_is_a_signed_header_like_any_other() {
        let req = start_execution_with_session_token();
        assert_eq!(
            req.check(NOW),
            Ok(Verified {
                access_key_id: SESSION_AKID.to_string(),
                region: "us-east-1".to_string(),
            })
        );
        let other_token = req.set("X-Amz-Security-Token", "FwoGZXIvYXdzOTHERTOKEN=");
        assert_eq!(error(other_token.check(NOW)).code, INVALID_SIGNATURE);
    }

    /// GET http://localhost:8083/foo%20bar/./baz//qux/?b=2&a=1&a=0&c&d=x%2Fy, signed by
    /// botocore: the path normalised and encoded a second time, the query sorted.
    #[test]
    fn path_and_query_are_canonicalised_as_botocore_does() {
        let mut req = Req::new(
            "GET",
            "/foo%20bar/./baz//qux/",
            &[
                ("Host", "localhost:8083"),
                ("X-Amz-Date", "20240517T093015Z"),
                (
                    "Authorization",
                    "AWS4-HMAC-SHA256 \
                     Credential=AKIAIOSFODNN7EXAMPLE/20240517/us-east-1/states/aws4_request, \
                     SignedHeaders=host;x-amz-date, \
                     Signature=8dbc0adc6b2eb5d297d7281da9afda0f855141bbd4d8b79ba57ce80aefc8581c",
                ),
            ],
            b"",
        );
        req.query = "b=2&a=1&a=0&c&d=x%2Fy".to_string();
        assert!(req.check(NOW).is_ok(), "{:?}", req.check(NOW));

        let uri = |p: &str| {
            let mut s = String::new();
            canonical_uri(p, &mut s);
            s
        };
        assert_eq!(uri("/foo%20bar/./baz//qux/"), "/foo%2520bar/baz/qux/");
        assert_eq!(uri("/"), "/");
        assert_eq!(uri(""), "/");
        assert_eq!(uri("/a/b/../c"), "/a/c");
        assert_eq!(uri("/../.."), "/");
        assert_eq!(uri("/~user/a b+c"), "/~user/a%20b%2Bc");
        let query = |q: &str| {
            let mut s = String::new();
            canonical_query(q, &mut s);
            s
        };
        assert_eq!(query(&req.query), "a=0&a=1&b=2&c=&d=x%2Fy");
        assert_eq!(query(""), "");
        // Decoded then encoded the one canonical way: uppercase hex, unreserved bare.
        assert_eq!(query("k=%7e%2f%zz&%41=+"), "A=%2B&k=~%2F%25zz");

        let moved = Req {
            path: "/foo%20bar/baz/qux".to_string(),
            ..req.clone()
        };
        assert_eq!(error(moved.check(NOW)).code, INVALID_SIGNATURE);
        let requeried = Req {
            query: "b=2&a=1&a=0&c&d=x%2Fz".to_string(),
            ..req
        };
        assert_eq!(error(requeried.check(NOW)).code, INVALID_SIGNATURE);
    }

    /// Botocore signed `X-Trace-Note: "   spaced    out\t value  "` and two `X-Multi`
    /// headers, `"first  one"` then `" second"`.
    #[test]
    fn header_values_are_trimmed_collapsed_and_joined_in_order() {
        let req = Req::new(
            "POST",
            "/",
            &[
                ("Host", "localhost:8083"),
                ("Content-Type", "application/x-amz-json-1.0"),
                ("X-Amz-Target", "AWSStepFunctions.ListActivities"),
                ("X-Trace-Note", "   spaced    out\t value  "),
                ("X-Multi", "first  one"),
                ("X-Multi", " second"),
                ("X-Amz-Date", "20240517T093015Z"),
                (
                    "Authorization",
                    "AWS4-HMAC-SHA256 \
                     Credential=AKIAIOSFODNN7EXAMPLE/20240517/us-east-1/states/aws4_request, \
                     SignedHeaders=content-type;host;x-amz-date;x-amz-target;x-multi;\
                     x-trace-note, \
                     Signature=f5421e4934b32305befcd283a69cdbf7d04a1cf1e0f9cce4e14cffceed62014d",
                ),
            ],
            b"{}",
        );
        assert!(req.check(NOW).is_ok(), "{:?}", req.check(NOW));
        req.with(|r| {
            assert_eq!(
                header_value(r, "x-trace-note").as_deref(),
                Some("spaced out value")
            );
            assert_eq!(
                header_value(r, "x-multi").as_deref(),
                Some("first one,second")
            );
            assert_eq!(header_value(r, "x-absent"), None);
        });
        // Whitespace alone is not what is signed; the words and their order are.
        let respaced = req.clone().set("X-Trace-Note", "spaced out    value");
        assert!(respaced.check(NOW).is_ok());
        let mut swapped = req.clone();
        let firsts: Vec<usize> = (0..swapped.headers.len())
            .filter(|&i| swapped.headers[i].0 == "X-Multi")
            .collect();
        swapped.headers.swap(firsts[0], firsts[1]);
        assert_eq!(error(swapped.check(NOW)).code, INVALID_SIGNATURE);
        let reworded = req.set("X-Trace-Note", "spaced outvalue");
        assert_eq!(error(reworded.check(NOW)).code, INVALID_SIGNATURE);
    }

    /// Botocore signed a CreateActivity that carries `X-Amz-Content-SHA256` itself.
    #[test]
    fn a_content_sha256_header_must_be_the_bodys_hash() {
        let req = Req::new(
            "POST",
            "/",
            &[
                ("Host", "localhost:8083"),
                ("Content-Type", "application/x-amz-json-1.0"),
                ("X-Amz-Target", "AWSStepFunctions.CreateActivity"),
                (
                    "X-Amz-Content-SHA256",
                    "26dba3998c572e52bf475c1bb66cef2a1e11b7d1aa8026a983e7ed5bf68bcade",
                ),
                ("X-Amz-Date", "20240517T093015Z"),
                (
                    "Authorization",
                    "AWS4-HMAC-SHA256 \
                     Credential=AKIAIOSFODNN7EXAMPLE/20240517/us-east-1/states/aws4_request, \
                     SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date;\
                     x-amz-target, \
                     Signature=4a4cf68f9679e723d252e94598790f4d279c3e26da6acf2f39d19aa9f4fbb86e",
                ),
            ],
            br#"{"name":"hello"}"#,
        );
        assert!(req.check(NOW).is_ok(), "{:?}", req.check(NOW));
        // The signature covers the header, so a body swapped under it must be caught.
        let swapped = Req {
            body: br#"{"name":"evil!"}"#.to_vec(),
            ..req.clone()
        };
        let e = error(swapped.check(NOW));
        assert_eq!(e.code, INVALID_SIGNATURE);
        assert!(e.message.starts_with(
            "The provided 'x-amz-content-sha256' header does not match what was computed."
        ));
        let unsigned = req.set("X-Amz-Content-SHA256", "UNSIGNED-PAYLOAD");
        assert_eq!(error(unsigned.check(NOW)).code, INVALID_SIGNATURE);
    }

    #[test]
    fn a_flipped_body_byte_fails_the_signature_with_awss_text() {
        let mut req = list_state_machines();
        req.body[14] ^= 0x01; // {"maxResults":10} -> ...:00}
        let e = error(req.check(NOW));
        assert_eq!(e.code, INVALID_SIGNATURE);
        assert!(
            e.message.starts_with(SIGNATURE_MISMATCH_MESSAGE),
            "{}",
            e.message
        );
        assert_eq!(
            SIGNATURE_MISMATCH_MESSAGE,
            "The request signature we calculated does not match the signature you provided. \
             Check your AWS Secret Access Key and signing method. Consult the service \
             documentation for details."
        );
        // Like AWS, it says what it expected, so a client author can diff their signer.
        assert!(
            e.message
                .contains("The Canonical String for this request should have been\n'POST\n/\n\n")
        );
        assert!(e.message.contains(
            "The String-to-Sign should have been\n'AWS4-HMAC-SHA256\n20240517T093015Z\n"
        ));
    }

    #[test]
    fn a_flipped_signature_fails() {
        let good = "34c1715ac07c2657d9640b68a04628e2a5fe933f6314187101dfb3f993620dda";
        for bad in [
            "34c1715ac07c2657d9640b68a04628e2a5fe933f6314187101dfb3f993620ddb",
            "44c1715ac07c2657d9640b68a04628e2a5fe933f6314187101dfb3f993620dda",
            "34C1715AC07C2657D9640B68A04628E2A5FE933F6314187101DFB3F993620DDA",
            "34c1715ac07c2657d9640b68a04628e2a5fe933f6314187101dfb3f993620dd",
            "",
        ] {
            let req = list_state_machines().authorization_with(good, bad);
            let e = error(req.check(NOW));
            assert_eq!(e.code, INVALID_SIGNATURE, "{bad}");
            assert!(e.message.starts_with(SIGNATURE_MISMATCH_MESSAGE), "{bad}");
        }
    }

    #[test]
    fn a_changed_date_fails() {
        // Same day and within the skew, so only the signature can catch it.
        let req = list_state_machines().set("X-Amz-Date", "20240517T093016Z");
        let e = error(req.check(NOW));
        assert_eq!(e.code, INVALID_SIGNATURE);
        assert!(e.message.starts_with(SIGNATURE_MISMATCH_MESSAGE));

        // Another day than the scope's.
        let next_day = list_state_machines().set("X-Amz-Date", "20240518T000100Z");
        let e = error(next_day.check(1_715_990_460)); // 20240518T000100Z
        assert_eq!(e.code, INVALID_SIGNATURE);
        assert_eq!(
            e.message,
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date \
             from HTTP: '20240517' != '20240518', from '20240518T000100Z'."
        );
    }

    #[test]
    fn keys_are_looked_up_and_their_secrets_used() {
        let unknown = list_state_machines().authorization_with(AKID, "AKIAUNKNOWNEXAMPLE00");
        let e = error(unknown.check(NOW));
        assert_eq!(e.code, UNRECOGNIZED_CLIENT);
        assert_eq!(
            e.message,
            "The security token included in the request is invalid."
        );
        // No keys at all: everyone is unknown.
        let none = Credentials::new([]);
        assert!(none.is_empty());
        assert_eq!(
            error(list_state_machines().check_with(&none, NOW)).code,
            UNRECOGNIZED_CLIENT
        );
        // The right key id with another secret.
        let rotated = Credentials::new([(AKID.to_string(), "not-the-secret".to_string())]);
        let e = error(list_state_machines().check_with(&rotated, NOW));
        assert_eq!(e.code, INVALID_SIGNATURE);
        assert!(e.message.starts_with(SIGNATURE_MISMATCH_MESSAGE));
        // Several keys: each signs for itself.
        assert!(creds().secret(SESSION_AKID).is_some());
        assert!(!creds().is_empty());
    }

    #[test]
    fn the_clock_may_be_five_minutes_off_either_way() {
        let req = list_state_machines();
        assert!(req.check(NOW + 300).is_ok());
        assert!(req.check(NOW - 300).is_ok());

        let e = error(req.check(NOW + 301));
        assert_eq!(e.code, INVALID_SIGNATURE);
        assert_eq!(
            e.message,
            "Signature expired: 20240517T093015Z is now earlier than 20240517T093016Z \
             (20240517T093516Z - 5 min.)"
        );
        let e = error(req.check(NOW - 301));
        assert_eq!(e.code, INVALID_SIGNATURE);
        assert_eq!(
            e.message,
            "Signature not yet current: 20240517T093015Z is still later than \
             20240517T093014Z (20240517T092514Z + 5 min.)"
        );
        // A clock at the ends of time is no reason to panic.
        assert_eq!(error(req.check(i64::MAX)).code, INVALID_SIGNATURE);
        assert_eq!(error(req.check(i64::MIN)).code, INVALID_SIGNATURE);
    }

    #[test]
    fn no_sigv4_authorization_is_a_missing_token() {
        for req in [
            list_state_machines().without("Authorization"),
            list_state_machines().set("Authorization", ""),
            list_state_machines().set("Authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.e30.x"),
            list_state_machines().set("Authorization", "AWS AKIAIOSFODNN7EXAMPLE:frJIUN8D="),
        ] {
            let e = error(req.check(NOW));
            assert_eq!(e.code, MISSING_AUTHENTICATION_TOKEN, "{req:?}");
            assert_eq!(e.message, "Request is missing Authentication Token");
        }
    }

    #[test]
    fn malformed_authorization_says_what_is_wrong() {
        let scope = "Credential=AKIAIOSFODNN7EXAMPLE/20240517/us-east-1/states/aws4_request";
        let sig = "Signature=34c1715ac07c2657d9640b68a04628e2a5fe933f6314187101dfb3f993620dda";
        let signed = "SignedHeaders=content-type;host;x-amz-date;x-amz-target";
        let cases: Vec<(Req, &str, String)> = vec![
            (
                list_state_machines().set("Authorization", &format!("AWS4-HMAC-SHA256 {scope}, {signed}")),
                INCOMPLETE_SIGNATURE,
                format!(
                    "Authorization header requires 'Signature' parameter. \
                     Authorization=AWS4-HMAC-SHA256 {scope}, {signed}"
                ),
            ),
            (
                list_state_machines().set("Authorization", "AWS4-HMAC-SHA256"),
                INCOMPLETE_SIGNATURE,
                "Authorization header requires 'Credential' parameter. Authorization header \
                 requires 'Signature' parameter. Authorization header requires \
                 'SignedHeaders' parameter. Authorization=AWS4-HMAC-SHA256"
                    .to_string(),
            ),
            (
                list_state_machines().without("X-Amz-Date"),
                INCOMPLETE_SIGNATURE,
                "Authorization header requires existence of a 'X-Amz-Date' header".to_string(),
            ),
            (
                list_state_machines().set("Authorization", &format!("AWS4-HMAC-SHA256 {scope}, SignedHeaders, {sig}")),
                INCOMPLETE_SIGNATURE,
                "'SignedHeaders' not a valid key=value pair (missing equal-sign) in \
                 Authorization header: 'AWS4-HMAC-SHA256"
                    .to_string(),
            ),
            (
                list_state_machines().set("X-Amz-Date", "2024-05-17T09:30:15Z"),
                INCOMPLETE_SIGNATURE,
                "Date must be in ISO-8601 'basic format'. Got '2024-05-17T09:30:15Z'. \
                 See http://en.wikipedia.org/wiki/ISO_8601"
                    .to_string(),
            ),
            (
                // Two dates join into one value that is no date.
                list_state_machines().add("x-amz-date", "20240517T093015Z"),
                INCOMPLETE_SIGNATURE,
                "Date must be in ISO-8601 'basic format'.".to_string(),
            ),
            (
                list_state_machines().authorization_with("AWS4-HMAC-SHA256 ", "AWS4-HMAC-SHA512 "),
                INCOMPLETE_SIGNATURE,
                "Unsupported AWS 'algorithm': 'AWS4-HMAC-SHA512' (only AWS4-HMAC-SHA256 for now). "
                    .to_string(),
            ),
            (
                list_state_machines().authorization_with("/us-east-1/states/aws4_request", "/us-east-1/states"),
                INCOMPLETE_SIGNATURE,
                "Credential must have exactly 5 slash-delimited elements, e.g. \
                 keyid/date/region/service/term, got 'AKIAIOSFODNN7EXAMPLE/20240517/us-east-1/states'"
                    .to_string(),
            ),
            (
                list_state_machines().authorization_with("aws4_request", "aws5_request"),
                INVALID_SIGNATURE,
                "Credential should be scoped with a valid terminator: 'aws4_request', not \
                 'aws5_request'. "
                    .to_string(),
            ),
            (
                list_state_machines().authorization_with("/us-east-1/states/", "//lambda/"),
                INVALID_SIGNATURE,
                "Credential should be scoped to a valid region, not ''. Credential should be \
                 scoped to correct service: 'states'. "
                    .to_string(),
            ),
            (
                list_state_machines().authorization_with("content-type;host;", "content-type;"),
                INVALID_SIGNATURE,
                "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."
                    .to_string(),
            ),
            (
                list_state_machines().without("Content-Type"),
                INCOMPLETE_SIGNATURE,
                "'content-type' is listed in SignedHeaders but the request has no such header."
                    .to_string(),
            ),
            (
                list_state_machines().authorization_with("content-type;host;", "content-type;;host;"),
                INCOMPLETE_SIGNATURE,
                "SignedHeaders has an empty header name".to_string(),
            ),
        ];
        for (req, code, message) in cases {
            let e = error(req.check(NOW));
            assert_eq!(e.code, code, "{req:?}: {}", e.message);
            assert!(
                e.message.starts_with(&message),
                "{req:?}:\n{}\nwanted\n{message}",
                e.message
            );
        }
        // Spacing and order inside the header are free; unknown parameters are ignored.
        let respaced = list_state_machines().set(
            "Authorization",
            &format!("  AWS4-HMAC-SHA256   {sig} ,{signed},Extra=1,  {scope}  "),
        );
        assert!(respaced.check(NOW).is_ok(), "{:?}", respaced.check(NOW));
    }

    #[test]
    fn amz_dates_are_strict() {
        assert_eq!(parse_amz_date("20240517T093015Z"), Some(NOW));
        assert_eq!(parse_amz_date("19700101T000000Z"), Some(0));
        assert_eq!(parse_amz_date("20240229T000000Z"), Some(1_709_164_800));
        for bad in [
            "20230229T000000Z",
            "20241301T000000Z",
            "20240100T000000Z",
            "20240517T243015Z",
            "20240517T096015Z",
            "20240517T093060Z",
            "20240517T093015",
            "20240517 093015Z",
            "2024051T0930150Z",
            "+0240517T093015Z",
            "2024０517T93015Z",
            "",
        ] {
            assert_eq!(parse_amz_date(bad), None, "{bad}");
        }
        assert_eq!(format_amz_date(NOW), "20240517T093015Z");
        assert_eq!(format_amz_date(-1), "19691231T235959Z");
    }

    #[test]
    fn credentials_never_print_their_secrets() {
        let shown = format!("{:?}", creds());
        assert!(
            shown.contains(AKID) && shown.contains(SESSION_AKID),
            "{shown}"
        );
        assert!(
            !shown.contains(SECRET) && !shown.contains(SESSION_SECRET),
            "{shown}"
        );
    }

    /// Garbage built from the pieces the parser looks for, plus stray bytes: every answer
    /// is one of the four refusals, and nothing panics.
    #[test]
    fn garbage_is_refused_without_panicking() {
        const PIECES: &[&str] = &[
            "AWS4-HMAC-SHA256",
            "AWS4-",
            " ",
            "\t",
            ",",
            ", ",
            "=",
            ";",
            "/",
            "%",
            "%4",
            "%zz",
            "Credential=",
            "SignedHeaders=",
            "Signature=",
            "AKIAIOSFODNN7EXAMPLE",
            "20240517",
            "us-east-1",
            "states",
            "aws4_request",
            "host",
            "x-amz-date",
            "é",
            "\u{1F600}",
            "..",
            "34c1715ac07c2657d9640b68a04628e2a5fe933f6314187101dfb3f993620dda",
            "T",
            "Z",
            "",
        ];
        struct Garbage(crate::random::Rng);
        impl Garbage {
            fn pick(&mut self, n: usize) -> usize {
                (self.0.next_u64() % n as u64) as usize
            }
            /// Up to `max - 1` pieces.
            fn draw(&mut self, max: usize) -> String {
                let count = self.pick(max);
                (0..count)
                    .map(|_| PIECES[self.pick(PIECES.len())])
                    .collect()
            }
        }
        let mut g = Garbage(crate::random::Rng::new(0x5167_4a11));
        let mut seen = std::collections::BTreeSet::new();
        let dates = [
            "20240517T093015Z",
            "20240517T093015",
            "2024051٣T093015Z",
            "",
            "Z",
        ];
        for _ in 0..5_000 {
            let auth = if g.pick(3) == 0 {
                // Mostly well formed, so the later checks run too.
                format!(
                    "AWS4-HMAC-SHA256 Credential={}, SignedHeaders={}, Signature={}",
                    g.draw(6),
                    g.draw(4),
                    g.draw(2)
                )
            } else {
                g.draw(12)
            };
            let date = dates[g.pick(dates.len())];
            let (name, value) = (g.draw(2), g.draw(3));
            let mut req = list_state_machines()
                .set("Authorization", &auth)
                .set("X-Amz-Date", date)
                .add(&name, &value);
            req.path = g.draw(5);
            req.query = g.draw(5);
            let e = error(req.check(NOW));
            assert!(
                [
                    MISSING_AUTHENTICATION_TOKEN,
                    INCOMPLETE_SIGNATURE,
                    INVALID_SIGNATURE,
                    UNRECOGNIZED_CLIENT
                ]
                .contains(&e.code),
                "{req:?}"
            );
            assert!(!e.message.is_empty());
            seen.insert(e.code);
        }
        // The garbage got past the first checks often enough to reach the later ones.
        assert_eq!(seen.len(), 3, "{seen:?}");
    }
}
