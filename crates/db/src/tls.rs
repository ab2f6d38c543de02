//! TLS to PostgreSQL: libpq's `sslmode`, `sslrootcert`, `sslcert` and `sslkey` connection
//! parameters, taken out of a connection string and turned into a rustls connector.
//!
//! tokio-postgres knows only `sslmode=disable|prefer|require` and no certificate files, so
//! the daemons read libpq's TLS parameters themselves, with libpq's meaning:
//!
//! | `sslmode` | encrypted | server certificate checked |
//! |---|---|---|
//! | `disable` | never | — |
//! | `allow`, `prefer` (the default) | when the server offers it | no |
//! | `require` | always | against `sslrootcert` when it is given (as libpq does), else no |
//! | `verify-ca` | always | chain against `sslrootcert` |
//! | `verify-full` | always | chain against `sslrootcert`, and the host name |
//!
//! `sslcert` and `sslkey` (PEM files) give a client certificate for `cert` authentication.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};
use tokio_postgres::config::SslMode;

use crate::Error;

/// The connector every connection of a daemon uses; plain connections go through it too
/// (with `sslmode=disable`, or a server that refuses TLS under `prefer`).
pub type Tls = tokio_postgres_rustls::MakeRustlsConnect;

/// libpq's `sslmode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl Mode {
    fn parse(value: &str) -> Result<Mode, Error> {
        Ok(match value {
            "disable" => Mode::Disable,
            // libpq's `allow` tries plain first; trying TLS first is at least as safe.
            "allow" | "prefer" => Mode::Prefer,
            "require" => Mode::Require,
            "verify-ca" => Mode::VerifyCa,
            "verify-full" => Mode::VerifyFull,
            other => {
                return Err(Error::Dsn(format!(
                    "sslmode `{other}` is not one of disable, allow, prefer, require, \
                     verify-ca, verify-full"
                )))
            }
        })
    }
}

/// The TLS parameters of a connection string.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct TlsParams {
    mode: Option<String>,
    root_cert: Option<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
}

impl TlsParams {
    /// Takes the parameter `key` if it is one of ours.
    fn take(&mut self, key: &str, value: &str) -> bool {
        let slot = match key {
            "sslmode" => {
                self.mode = Some(value.to_owned());
                return true;
            }
            "sslrootcert" => &mut self.root_cert,
            "sslcert" => &mut self.cert,
            "sslkey" => &mut self.key,
            _ => return false,
        };
        *slot = Some(PathBuf::from(value));
        true
    }
}

/// Splits `dsn` (key-value or URL form) into the string tokio-postgres parses and the TLS
/// parameters it would not understand.
pub(crate) fn split(dsn: &str) -> Result<(String, TlsParams), Error> {
    let mut params = TlsParams::default();
    let rest = if let Some((base, query)) = url_query(dsn) {
        let kept: Vec<&str> = query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .filter(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                !params.take(&percent_decode(key), &percent_decode(value))
            })
            .collect();
        if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        }
    } else {
        let mut kept = Vec::new();
        for (key, value) in key_values(dsn)? {
            if !params.take(&key, &value) {
                kept.push(format!(
                    "{key}='{}'",
                    value.replace('\\', "\\\\").replace('\'', "\\'")
                ));
            }
        }
        kept.join(" ")
    };
    Ok((rest, params))
}

/// The part before `?` and the query of a `postgres://` or `postgresql://` URL.
fn url_query(dsn: &str) -> Option<(&str, &str)> {
    if !(dsn.starts_with("postgres://") || dsn.starts_with("postgresql://")) {
        return None;
    }
    Some(dsn.split_once('?').unwrap_or((dsn, "")))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// libpq's key-value syntax: `key = value` pairs separated by white space, a value either
/// bare or in single quotes, with `\` escaping the next character in both.
fn key_values(dsn: &str) -> Result<Vec<(String, String)>, Error> {
    let mut chars = dsn.chars().peekable();
    let mut pairs = Vec::new();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(pairs);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| !c.is_whitespace() && *c != '=') {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(Error::Dsn(format!(
                "connection string: `{key}` has no `=` and value"
            )));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    Some('\'') => break,
                    Some('\\') => value.extend(chars.next()),
                    Some(c) => value.push(c),
                    None => {
                        return Err(Error::Dsn(format!(
                            "connection string: the value of `{key}` has no closing quote"
                        )))
                    }
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        pairs.push((key, value));
    }
}

/// Applies the TLS parameters to `config` and builds the connector they describe.
pub(crate) fn connector(
    params: &TlsParams,
    config: &mut tokio_postgres::Config,
) -> Result<Tls, Error> {
    let mode = params
        .mode
        .as_deref()
        .map(Mode::parse)
        .transpose()?
        .unwrap_or(Mode::Prefer);
    config.ssl_mode(match mode {
        Mode::Disable => SslMode::Disable,
        Mode::Prefer => SslMode::Prefer,
        Mode::Require | Mode::VerifyCa | Mode::VerifyFull => SslMode::Require,
    });
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier: Arc<dyn ServerCertVerifier> = match (mode, &params.root_cert) {
        (Mode::VerifyCa | Mode::VerifyFull, None) => {
            return Err(Error::Dsn(format!(
                "sslmode={} needs sslrootcert, the CA file to check the server against",
                params.mode.as_deref().unwrap_or_default()
            )))
        }
        (Mode::Disable | Mode::Prefer, _) | (Mode::Require, None) => {
            Arc::new(Unverified(provider.clone()))
        }
        (Mode::Require | Mode::VerifyCa, Some(ca)) => Arc::new(ChainOnly(webpki(ca, &provider)?)),
        (Mode::VerifyFull, Some(ca)) => webpki(ca, &provider)?,
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Dsn(format!("TLS: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let client = match (&params.cert, &params.key) {
        (Some(cert), Some(key)) => {
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| Error::Dsn(format!("sslkey {}: {e}", key.display())))?;
            builder
                .with_client_auth_cert(certs(cert, "sslcert")?, key)
                .map_err(|e| Error::Dsn(format!("sslcert {}: {e}", cert.display())))?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => {
            return Err(Error::Dsn(
                "sslcert and sslkey go together: give both or neither".to_owned(),
            ))
        }
    };
    Ok(Tls::new(client))
}

/// The certificates of a PEM file; the error names the file and says what is wrong with it
/// (unreadable, not PEM, or no certificate in it). The gateway reads its files with it too.
pub fn pem_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in the file", path.display()));
    }
    Ok(certs)
}

fn certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, Error> {
    pem_certs(path).map_err(|e| Error::Dsn(format!("{what} {e}")))
}

/// A verifier of the chain and host name against the CAs in `ca`.
fn webpki(ca: &Path, provider: &Arc<CryptoProvider>) -> Result<Arc<dyn ServerCertVerifier>, Error> {
    let mut roots = RootCertStore::empty();
    for cert in certs(ca, "sslrootcert")? {
        roots
            .add(cert)
            .map_err(|e| Error::Dsn(format!("sslrootcert {}: {e}", ca.display())))?;
    }
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| Error::Dsn(format!("sslrootcert {}: {e}", ca.display())))?;
    Ok(verifier)
}

/// `verify-ca`: the chain must lead to the CA; the name in the certificate may differ from
/// the host connected to.
#[derive(Debug)]
struct ChainOnly(Arc<dyn ServerCertVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `prefer` and `require` without a CA: encrypted, but any certificate is taken (libpq's
/// meaning of those modes). The handshake signatures are still checked.
#[derive(Debug)]
struct Unverified(Arc<CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(mode: &str, root: Option<&str>) -> TlsParams {
        TlsParams {
            mode: Some(mode.to_owned()),
            root_cert: root.map(PathBuf::from),
            ..TlsParams::default()
        }
    }

    #[test]
    fn key_value_strings_lose_only_the_tls_parameters() {
        let (rest, p) = split(
            "host=/tmp  dbname = 'my db' sslmode=verify-full sslrootcert='/etc/ca dir/ca.pem' \
             password='it\\'s' sslcert=/c.pem sslkey=/k.pem",
        )
        .expect("parses");
        assert_eq!(rest, "host='/tmp' dbname='my db' password='it\\'s'");
        assert_eq!(p.mode.as_deref(), Some("verify-full"));
        assert_eq!(p.root_cert, Some(PathBuf::from("/etc/ca dir/ca.pem")));
        assert_eq!(p.cert, Some(PathBuf::from("/c.pem")));
        assert_eq!(p.key, Some(PathBuf::from("/k.pem")));
        let config: tokio_postgres::Config = rest.parse().expect("tokio-postgres parses the rest");
        assert_eq!(config.get_dbname(), Some("my db"));
        assert_eq!(config.get_password(), Some(&b"it's"[..]));
    }

    #[test]
    fn urls_lose_only_the_tls_parameters() {
        let (rest, p) = split(
            "postgresql://u:pw@db.example:5433/jc?sslmode=verify-ca&application_name=x&sslrootcert=%2Fca%20.pem",
        )
        .expect("parses");
        assert_eq!(
            rest,
            "postgresql://u:pw@db.example:5433/jc?application_name=x"
        );
        assert_eq!(p.mode.as_deref(), Some("verify-ca"));
        assert_eq!(p.root_cert, Some(PathBuf::from("/ca .pem")));
        let (rest, _) = split("postgres://h/db?sslmode=disable").expect("parses");
        assert_eq!(rest, "postgres://h/db");
        let (rest, p) = split("postgres://h/db").expect("parses");
        assert_eq!(
            (rest.as_str(), p),
            ("postgres://h/db", TlsParams::default())
        );
    }

    fn refused(params: &TlsParams) -> Error {
        match connector(params, &mut tokio_postgres::Config::new()) {
            Ok(_) => panic!("{params:?} was accepted"),
            Err(e) => e,
        }
    }

    #[test]
    fn bad_strings_and_modes_are_refused_with_the_reason() {
        let e = split("host=/tmp dbname").expect_err("no value");
        assert!(e.to_string().contains("`dbname` has no `=`"), "{e}");
        let e = split("password='open").expect_err("unterminated");
        assert!(e.to_string().contains("no closing quote"), "{e}");
        let e = refused(&params("verify", None));
        assert!(e.to_string().contains("sslmode `verify`"), "{e}");
        let e = refused(&params("verify-full", None));
        assert!(e.to_string().contains("needs sslrootcert"), "{e}");
        let e = refused(&params("verify-ca", Some("/nonexistent/ca.pem")));
        assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
        let half = TlsParams {
            cert: Some(PathBuf::from("/c.pem")),
            ..TlsParams::default()
        };
        let e = refused(&half);
        assert!(e.to_string().contains("go together"), "{e}");
    }

    #[test]
    fn modes_set_tokio_postgres_ssl_mode() {
        for (mode, expected) in [
            ("disable", SslMode::Disable),
            ("allow", SslMode::Prefer),
            ("prefer", SslMode::Prefer),
            ("require", SslMode::Require),
        ] {
            let mut config = tokio_postgres::Config::new();
            connector(&params(mode, None), &mut config).expect("builds");
            assert_eq!(config.get_ssl_mode(), expected, "{mode}");
        }
    }
}
