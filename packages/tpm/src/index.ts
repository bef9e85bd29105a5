/**
 * @provisio/tpm — TPM 2.0 for DPS: structures, object Names, EK/SRK checks, the activation blob in software, a software TPM
 */
export {}
