/**
 * @provisio/allocation — Allocation policies as pure functions: hashed (weighted), geoLatency, static, custom webhook; dry-run
 */
export {}
