/**
 * @provisio/protocol — the Azure DPS wire vocabulary shared by every transport and the engine.
 */
export * from './models/index.js'
export * from './api-versions.js'
export * from './errors.js'
export * from './percent.js'
export * from './registration-id.js'
export * from './connection-string.js'
export * from './sas.js'
export * from './api.js'
export * from './time.js'
export * from './etag.js'
export * from './hub.js'
export * from './direct-method.js'
export * from './mqtt-dps-topics.js'
export * from './mqtt-hub-topics.js'
export * from './mqtt-topic-filter.js'
