/**
 * @provisio/x509 — X.509 for DPS: certificate parsing (a lean DER reader; PKI.js for CSRs), path building and
 * validation with signatures checked by the WASM core (@provisio/crypto), DPS certificate info
 * and thumbprints, CA proof of possession.
 */
export { X509Error, type X509ErrorCode } from './errors.js'
export {
  MAX_CERTIFICATE_BYTES,
  OID,
  KEY_USAGE,
  parseCertificate,
  decodeCertificateText,
  toPem,
  toHex,
  namesEqual,
  certificateInfo,
  describeCertificate,
  type Certificate,
  type Name,
  type RawExtension,
} from './certificate.js'
export { checkSignature, publicKeyOf } from './signature.js'
export { validatePath, type PathOptions, type ValidPath, type InvalidPath } from './path.js'
export { checkProofOfPossession, verificationCodeFrom, VERIFICATION_CODE_BYTES } from './pop.js'
export { sha1 } from './sha1.js'
export { checkHubDeviceCertificate, type HubX509Authentication } from './hub-auth.js'
export { parseCertificationRequest, MAX_CSR_BYTES, type CertificationRequest } from './csr.js'
export { issueLeafCertificate, requestedKeyType, type LeafCertificateRequest, type TbsSigner, type IssuerSignatureAlgorithm, type RequestedKeyType } from './issue.js'
