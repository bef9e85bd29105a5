/**
 * @provisio/engine — The transport-free provisioning service: enrollments, registrations, attestation, allocation, reprovisioning, operations, rate limits, events
 */
export {}
