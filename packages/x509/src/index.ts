/**
 * @provisio/x509 — X.509 for DPS: certificate/CSR parsing (pkijs), path validation with WASM signature checks, enrollment matching order, CA proof of possession, test PKI
 */
export {}
