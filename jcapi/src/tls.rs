//! TLS for the `tls` and `wss` listeners: the server certificate, and the optional
//! verification of client certificates against a CA (whose CN can then log in with
//! `clientcert`), with an optional revocation list.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, ServerConnection};

use crate::config::Tls;
use crate::Error;

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    jc_db::pem_certs(path).map_err(Error::Tls)
}

/// The rustls configuration of a TLS listener.
pub fn server_config(t: &Tls) -> Result<Arc<ServerConfig>, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = certs(&t.cert)?;
    let key = PrivateKeyDer::from_pem_file(&t.key)
        .map_err(|e| Error::Tls(format!("{}: {e}", t.key.display())))?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?;
    let builder = match &t.client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in certs(ca)? {
                roots
                    .add(cert)
                    .map_err(|e| Error::Tls(format!("{}: {e}", ca.display())))?;
            }
            let mut verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            if !t.require_client_cert {
                verifier = verifier.allow_unauthenticated();
            }
            if let Some(crl) = &t.crl {
                let crls = CertificateRevocationListDer::pem_file_iter(crl)
                    .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| Error::Tls(format!("{}: {e}", crl.display())))?;
                verifier = verifier.with_crls(crls);
            }
            let verifier = verifier.build().map_err(|e| Error::Tls(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(chain, key)
        .map_err(|e| Error::Tls(e.to_string()))?;
    Ok(Arc::new(config))
}

/// The names of the peer's verified certificate, if it presented one: every common name
/// of its subject, then its DNS, e-mail and URI subject alternative names.
pub fn peer_names(conn: &ServerConnection) -> Vec<String> {
    use x509_parser::extensions::GeneralName;
    let Some(cert) = conn.peer_certificates().and_then(|c| c.first()) else {
        return Vec::new();
    };
    let Ok((_, parsed)) = x509_parser::parse_x509_certificate(cert.as_ref()) else {
        return Vec::new();
    };
    let mut names: Vec<String> = parsed
        .subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok().map(str::to_owned))
        .collect();
    if let Ok(Some(san)) = parsed.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                GeneralName::DNSName(s) | GeneralName::RFC822Name(s) | GeneralName::URI(s) => {
                    names.push((*s).to_owned())
                }
                _ => {}
            }
        }
    }
    names
}
