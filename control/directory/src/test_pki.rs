//! The directory's types over `tandem_testkit::pki::TestPki` for this crate's unit tests: the test
//! kit returns plain PEM and DER (it links its own copy of this crate, whose types differ from the
//! ones under test), and these two traits turn that data into our `Verifier` and `Signer`.

pub(crate) use tandem_testkit::pki::{TestPki, TestSigner};

use crate::signing::Signer;
use crate::verify::Verifier;

/// A verifier trusting the PKI's root through its intermediate.
pub(crate) trait PkiVerifier {
    fn verifier(&self) -> Verifier;
}

impl PkiVerifier for TestPki {
    fn verifier(&self) -> Verifier {
        Verifier::from_pem(
            &[self.root_pem().as_bytes().to_vec()],
            &[self.intermediate_pem().as_bytes().to_vec()],
        )
        .expect("verifier")
    }
}

/// A [`Signer`] for an issued identity.
pub(crate) trait IdentitySigner {
    fn signer(&self) -> Signer;
}

impl IdentitySigner for TestSigner {
    fn signer(&self) -> Signer {
        Signer::from_pem(&self.key_pem, &self.cert_pem).expect("test signer")
    }
}
