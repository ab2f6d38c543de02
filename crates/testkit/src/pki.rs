//! A throw-away certificate authority for tests of TLS: a CA and certificates it issues
//! for a common name, valid for `localhost` and `127.0.0.1` or for names the test picks.

use std::path::{Path, PathBuf};

use crate::Error;

/// A CA whose certificate is `<dir>/<name>.pem`.
#[derive(Debug)]
pub struct Pki {
    pub ca_pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    dir: PathBuf,
    name: String,
}

/// A certificate issued by a [`Pki`], as PEM text and the files it was written to.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

fn rcgen_error(e: rcgen::Error) -> Error {
    Error::Setup(format!("cannot make a test certificate: {e}"))
}

fn write(path: &Path, text: &str) -> Result<(), Error> {
    std::fs::write(path, text).map_err(Error::io(format!("could not write {}", path.display())))
}

impl Pki {
    /// A new CA called `name`, its certificate written to `<dir>/<name>.pem`.
    pub fn new(dir: &Path, name: &str) -> Result<Pki, Error> {
        let mut params =
            rcgen::CertificateParams::new(Vec::<String>::new()).map_err(rcgen_error)?;
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let key = rcgen::KeyPair::generate().map_err(rcgen_error)?;
        let ca_pem = params.self_signed(&key).map_err(rcgen_error)?.pem();
        let pki = Pki {
            ca_pem,
            issuer: rcgen::Issuer::new(params, key),
            dir: dir.to_owned(),
            name: name.to_owned(),
        };
        write(&pki.ca_file(), &pki.ca_pem)?;
        Ok(pki)
    }

    /// The file holding the CA's certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join(format!("{}.pem", self.name))
    }

    /// A certificate for `cn`, valid for localhost and 127.0.0.1, written to
    /// `<dir>/<file>.pem` and `<dir>/<file>.key`.
    pub fn issue(&self, cn: &str, file: &str) -> Result<Issued, Error> {
        self.issue_for(cn, &["localhost", "127.0.0.1"], file)
    }

    /// A certificate for `cn` valid for the host names (or addresses) `names`.
    pub fn issue_for(&self, cn: &str, names: &[&str], file: &str) -> Result<Issued, Error> {
        let names = names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
        let mut params = rcgen::CertificateParams::new(names).map_err(rcgen_error)?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let key = rcgen::KeyPair::generate().map_err(rcgen_error)?;
        let cert = params.signed_by(&key, &self.issuer).map_err(rcgen_error)?;
        let issued = Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_file: self.dir.join(format!("{file}.pem")),
            key_file: self.dir.join(format!("{file}.key")),
        };
        write(&issued.cert_file, &issued.cert_pem)?;
        write(&issued.key_file, &issued.key_pem)?;
        Ok(issued)
    }
}
